//! Adapts a [`RadioHandle`] to the MeshCore side's `RadioLink` (a channel of received frames and
//! a transmitter), so wiring the two in the gateway is one call.

use super::{RadioHandle, TxPriority};
use crate::meshcore::engine::Priority;
use crate::meshcore::service::{RadioLink, Received, Transmitter};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};

struct RadioTransmitter(RadioHandle);

impl Transmitter for RadioTransmitter {
    fn transmit(&self, frame: Vec<u8>, priority: Priority) {
        let prio = match priority {
            Priority::Reply => TxPriority::Reply,
            Priority::Push => TxPriority::Push,
            Priority::Advert => TxPriority::Advert,
        };
        // Refusals are counted in the radio's status; the engine retries what needs retrying.
        if let Err(e) = self.0.transmit(frame, prio) {
            tracing::debug!("radio refused a frame: {e}");
        }
    }
}

/// The MeshCore side's view of this radio. Spawns a task forwarding received frames; it ends when
/// the MeshCore side drops its receiver.
pub fn meshcore_link(radio: &RadioHandle) -> RadioLink {
    let (tx, rx) = mpsc::channel(256);
    let mut frames = radio.subscribe();
    tokio::spawn(async move {
        loop {
            match frames.recv().await {
                Ok(f) => {
                    let r = Received {
                        bytes: f.bytes.clone(),
                        rssi_dbm: f
                            .rssi_dbm
                            .round()
                            .clamp(f32::from(i16::MIN), f32::from(i16::MAX))
                            as i16,
                        snr_db: f.snr_db,
                        at: f.received_at,
                    };
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("MeshCore side fell behind the radio: {n} frames dropped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    RadioLink {
        rx,
        tx: Arc::new(RadioTransmitter(radio.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::{open_sim_standalone, SimParams};
    use std::time::Duration;

    #[tokio::test]
    async fn frames_cross_the_link_both_ways() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = open_sim_standalone(dir.path(), SimParams::default())
            .await
            .expect("a");
        let b = open_sim_standalone(dir.path(), SimParams::default())
            .await
            .expect("b");
        for r in [&a, &b] {
            for _ in 0..200 {
                if r.state() == "receiving" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let link_a = meshcore_link(&a);
        let mut link_b = meshcore_link(&b);
        link_a.tx.transmit(vec![1, 2, 3, 4], Priority::Reply);
        let got = tokio::time::timeout(Duration::from_secs(5), link_b.rx.recv())
            .await
            .expect("in time")
            .expect("frame");
        assert_eq!(got.bytes, [1, 2, 3, 4]);
        assert!((-80..=-76).contains(&got.rssi_dbm), "{}", got.rssi_dbm);
    }
}
