//! The radio thread: owns the driver, feeds received frames to subscribers, sends queued frames
//! when the scheduler allows (with CAD first), and answers every driver fault with reset +
//! re-initialisation (with backoff) so the gateway keeps running.
//!
//! A blocking thread rather than a tokio task: the driver serialises commands behind BUSY and
//! waits on DIO1 with `poll()`, which is what a dedicated thread does best. It sleeps until
//! something happens: DIO1 (a frame), its [`Wakeup`] (a frame queued to send, or stop), the end of
//! a frame's backoff or duty-cycle wait, or the driver's health interval (10 s on hardware) at
//! which it reads the chip's status once. An idle radio wakes once per health interval.

use super::airtime::DutyCycle;
use super::scheduler::{Next, TxQueue};
use super::RxFrame;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use sx126x::params::LoRaParams;
use sx126x::{BoardLines, DriverError, DriverStats, RxWait, SpiTransfer, Sx126x, Wakeup};
use tokio::sync::broadcast;

/// How often the thread polls the IRQ register instead of sleeping on DIO1 once a frame was found
/// by polling (DIO1 dead or miswired): late frames rather than lost ones, until DIO1 works again.
const DEAD_DIO1_POLL: Duration = Duration::from_millis(50);

/// What the thread reports for /status.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub state: &'static str,
    pub driver: DriverStats,
    pub last_rssi_dbm: Option<f32>,
    pub last_snr_db: Option<f32>,
    pub last_error: Option<String>,
    /// Frames lost because the chip failed while sending them.
    pub tx_failed: u64,
}

/// State shared between the handle, the status source and the thread.
pub struct Shared {
    pub queue: Mutex<TxQueue>,
    pub duty: Mutex<DutyCycle>,
    pub snapshot: Mutex<Snapshot>,
    pub stop: AtomicBool,
    pub rx: broadcast::Sender<Arc<RxFrame>>,
    pub rng: Mutex<StdRng>,
    pub lora: LoRaParams,
    pub listen_before_talk: bool,
    /// The last hour, minute by minute, for the dashboard.
    pub activity: Mutex<super::activity::Activity>,
    /// Ends the thread's wait: [`Shared::wake`] after queueing a frame, [`Shared::request_stop`].
    pub wakeup: Wakeup,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn new(
        lora: LoRaParams,
        duty: DutyCycle,
        queue: usize,
        listen_before_talk: bool,
    ) -> Arc<Shared> {
        let (rx, _) = broadcast::channel(256);
        Arc::new(Shared {
            queue: Mutex::new(TxQueue::new(queue)),
            duty: Mutex::new(duty),
            snapshot: Mutex::new(Snapshot {
                state: "starting",
                ..Snapshot::default()
            }),
            stop: AtomicBool::new(false),
            rx,
            rng: Mutex::new(StdRng::from_entropy()),
            lora,
            listen_before_talk,
            activity: Mutex::new(super::activity::Activity::new(std::time::Instant::now())),
            wakeup: Wakeup::new(),
        })
    }

    /// Tells the thread to look at the queue now (call after queueing a frame).
    pub fn wake(&self) {
        self.wakeup.wake();
    }

    /// Stops the thread (at once, even in the middle of a long idle wait).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wakeup.wake();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn set_state(&self, state: &'static str, error: Option<String>) {
        let mut s = lock(&self.snapshot);
        s.state = state;
        if error.is_some() {
            s.last_error = error;
        }
    }
}

/// Starts the thread.
pub fn start<S, L>(
    drv: Sx126x<S, L>,
    shared: Arc<Shared>,
    name: &str,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    S: SpiTransfer + Send + 'static,
    L: BoardLines + Send + 'static,
{
    std::thread::Builder::new()
        .name(format!("radio-{name}"))
        .spawn(move || run(drv, &shared))
}

/// Sleeps `d` unless the gateway stops first (the wake-up ends the sleep; a queued frame does too,
/// and the loop sleeps again).
fn sleep_unless_stopped(shared: &Shared, d: Duration) {
    let end = Instant::now() + d;
    while !shared.stopped() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        shared.wakeup.wait(left);
    }
}

/// Brings the chip (back) up, retrying with backoff until it works or the gateway stops.
fn bring_up<S: SpiTransfer, L: BoardLines>(
    drv: &mut Sx126x<S, L>,
    shared: &Shared,
    first: bool,
) -> bool {
    let mut backoff = Duration::from_millis(500);
    let mut attempt_first = first;
    loop {
        if shared.stopped() {
            return false;
        }
        let r = if attempt_first {
            drv.init().and_then(|()| drv.start_receive())
        } else {
            drv.recover()
        };
        attempt_first = false;
        match r {
            Ok(()) => {
                shared.set_state("receiving", None);
                return true;
            }
            Err(e) => {
                let text = sx126x::probe::explain_driver_error(&e);
                tracing::error!("radio: {text}; retrying in {backoff:?}");
                shared.set_state("error", Some(text));
                publish_stats(drv, shared);
                sleep_unless_stopped(shared, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn publish_stats<S: SpiTransfer, L: BoardLines>(drv: &Sx126x<S, L>, shared: &Shared) {
    lock(&shared.snapshot).driver = drv.stats().clone();
}

fn run<S: SpiTransfer, L: BoardLines>(mut drv: Sx126x<S, L>, shared: &Shared) {
    if !bring_up(&mut drv, shared, true) {
        return;
    }
    let lora = shared.lora;
    let mut dio1_suspect = false;
    while !shared.stopped() {
        let now = Instant::now();
        let next = {
            let mut q = lock(&shared.queue);
            let mut d = lock(&shared.duty);
            q.next(
                now,
                &mut d,
                |n| lora.time_on_air(n),
                shared.listen_before_talk,
            )
        };
        // Sleep until the frame's backoff ends, or — nothing to send — until the health check;
        // DIO1 and the wake-up end the sleep earlier.
        let idle = if dio1_suspect {
            DEAD_DIO1_POLL
        } else {
            drv.health_interval
        };
        let wait = match next {
            Next::Send {
                frame,
                prio,
                listen,
                busy_since,
            } => {
                if let Err(e) = send(&mut drv, shared, frame, prio, listen, busy_since) {
                    fault(&mut drv, shared, e);
                }
                publish_stats(&drv, shared);
                continue;
            }
            Next::WaitUntil(t) => t.saturating_duration_since(now).min(idle),
            Next::Idle => idle,
        };
        let (missed, edges) = (drv.stats().missed_dio1, drv.stats().waits_dio1);
        match drv.receive_or_wake(wait, &shared.wakeup) {
            Ok(RxWait::Packet(p)) => {
                {
                    let mut s = lock(&shared.snapshot);
                    s.last_rssi_dbm = Some(p.rssi_dbm);
                    s.last_snr_db = Some(p.snr_db);
                }
                let frame = RxFrame {
                    bytes: p.data,
                    rssi_dbm: p.rssi_dbm,
                    snr_db: p.snr_db,
                    received_at: p.irq_seen,
                };
                lock(&shared.activity).received(Instant::now());
                // No subscriber is not an error: the frame is simply not wanted.
                let _ = shared.rx.send(Arc::new(frame));
            }
            Ok(RxWait::Nothing | RxWait::Woken | RxWait::TimedOut) => {}
            Err(e) => fault(&mut drv, shared, e),
        }
        if drv.stats().waits_dio1 > edges {
            dio1_suspect = false;
        } else if drv.stats().missed_dio1 > missed && !dio1_suspect {
            tracing::warn!("radio: a frame was found without a DIO1 edge; polling the chip until DIO1 works again");
            dio1_suspect = true;
        }
        // Every wake-up is counted (`waits_*`), so publish after each.
        publish_stats(&drv, shared);
    }
    shared.set_state("stopped", None);
}

fn send<S: SpiTransfer, L: BoardLines>(
    drv: &mut Sx126x<S, L>,
    shared: &Shared,
    frame: Vec<u8>,
    prio: super::TxPriority,
    listen: bool,
    busy_since: Option<Instant>,
) -> Result<(), DriverError> {
    // A frame arriving right now would be cut off by CAD or by our own transmission (the chip
    // is half-duplex): hold ours back like a busy channel, without touching the chip — whether
    // or not listen-before-talk is on, and only until the frame's busy wait runs out.
    let max_wait = lock(&shared.queue).max_lbt_wait;
    let may_wait =
        busy_since.is_none_or(|since| Instant::now().saturating_duration_since(since) < max_wait);
    if may_wait {
        let (arriving, error) = match drv.receiving() {
            Ok(b) => (b, None),
            // Put the frame back; the fault handler resets the chip.
            Err(e) => (true, Some(e)),
        };
        if arriving {
            let mut rng = lock(&shared.rng);
            let toa = shared.lora.time_on_air(frame.len());
            lock(&shared.queue).channel_busy(
                frame,
                prio,
                busy_since,
                Instant::now(),
                toa,
                &mut *rng,
            );
            return error.map_or(Ok(()), Err);
        }
    }
    if listen {
        let busy = drv.channel_busy();
        let busy = match busy {
            Ok(b) => b,
            Err(e) => {
                // Put the frame back; the fault handler resets the chip.
                let mut rng = lock(&shared.rng);
                lock(&shared.queue).channel_busy(
                    frame,
                    prio,
                    busy_since,
                    Instant::now(),
                    Duration::ZERO,
                    &mut *rng,
                );
                return Err(e);
            }
        };
        if busy {
            let mut rng = lock(&shared.rng);
            let toa = shared.lora.time_on_air(frame.len());
            lock(&shared.queue).channel_busy(
                frame,
                prio,
                busy_since,
                Instant::now(),
                toa,
                &mut *rng,
            );
            return drv.start_receive();
        }
    }
    shared.set_state("transmitting", None);
    match drv.transmit(&frame) {
        Ok(toa) => {
            let now = Instant::now();
            lock(&shared.duty).record(now, toa);
            lock(&shared.activity).sent(now, toa);
        }
        Err(e) => {
            lock(&shared.snapshot).tx_failed += 1;
            return Err(e);
        }
    }
    drv.start_receive()?;
    shared.set_state("receiving", None);
    Ok(())
}

fn fault<S: SpiTransfer, L: BoardLines>(drv: &mut Sx126x<S, L>, shared: &Shared, e: DriverError) {
    let text = sx126x::probe::explain_driver_error(&e);
    tracing::warn!("radio fault: {text}; resetting the chip");
    shared.set_state("recovering", Some(text));
    bring_up(drv, shared, false);
}
