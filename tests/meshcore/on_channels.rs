//! Software companions against a gateway whose MeshCore side runs on channels (the testkit's
//! `InProcess::meshcore_on_channels`): the clock they share and the loop that carries frames
//! both ways until a condition holds.

use std::time::{Duration, Instant};

use meshroom_gw::meshcore::companion::{Companion, CompanionEvent, Output};
use meshroom_gw::meshcore::server::engine::Now;

use crate::common::ChannelRadio;

pub fn now() -> Now {
    Now {
        mono_ms: START.with(|s| s.elapsed().as_millis() as u64),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Runs the air between the gateway and the companions until `done` or the timeout.
pub async fn exchange(
    radio: &mut ChannelRadio,
    clients: &mut [Companion],
    events: &mut [Vec<CompanionEvent>],
    outs: Vec<(usize, Vec<Output>)>,
    timeout: Duration,
    done: impl Fn(&[Vec<CompanionEvent>]) -> bool,
) -> Vec<Vec<u8>> {
    let mut gw_frames = vec![];
    let mut pending: Vec<(usize, Vec<Output>)> = outs;
    let deadline = Instant::now() + timeout;
    loop {
        for (i, outs) in pending.drain(..) {
            for o in outs {
                match o {
                    Output::Transmit(f) => radio.receive(f).await,
                    Output::Event(e) => events[i].push(e),
                }
            }
        }
        if done(events) || Instant::now() > deadline {
            return gw_frames;
        }
        match tokio::time::timeout(Duration::from_millis(50), radio.from_gw.recv()).await {
            Ok(Some((frame, _))) => {
                for (i, c) in clients.iter_mut().enumerate() {
                    let o = c.handle_frame(now(), &frame);
                    pending.push((i, o));
                }
                gw_frames.push(frame);
            }
            Ok(None) => return gw_frames,
            Err(_) => {
                for (i, c) in clients.iter_mut().enumerate() {
                    let o = c.tick(now());
                    pending.push((i, o));
                }
            }
        }
    }
}
