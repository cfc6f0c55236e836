//! The emulated world: the clock (virtual or real time) and its event queue, the chips and the air
//! they share, the cross-process air receiver, and [`World`], the handle tests and gateways drive
//! it through.
//!
//! What happens inside lives next door: [`super::exec`] runs SPI commands and the chip's own
//! timing, [`super::reception`] puts transmissions on the air and decides what each receiver makes
//! of them, and [`super::handles`] holds the driver-facing [`EmuSpi`] and [`EmuLines`].

use super::air::{Air, AirConfig, INJECTOR};
use super::chip::{Chip, ChipCounters, ChipProfile, EmuMode, Fault};
use super::exec::{CALIBRATE_IMAGE_BUSY, GENERIC_BUSY};
pub use super::handles::{EmuLines, EmuSpi};
use super::reception::Source;
use super::wire::{self, AirReceiver, AirSocket};
use crate::command::ChipMode;
use crate::params::LoRaParams;
use crate::wakeup::WakeHook;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Index of a chip in its world.
pub type ChipId = usize;

pub(super) const US: u64 = 1_000;
pub(super) const MS: u64 = 1_000_000;

/// A transmission as logged by the world (for tests).
#[derive(Debug, Clone, PartialEq)]
pub struct TxRecord {
    pub chip: Option<ChipId>,
    pub node: u64,
    pub t0: Duration,
    pub time_on_air: Duration,
    pub params: LoRaParams,
    pub payload: Vec<u8>,
}

/// A timed event on the world's clock. Events a chip outgrew (it changed mode since) carry the
/// chip's `gen` of the time and are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Event {
    BusyFall { chip: ChipId },
    TxEnd { chip: ChipId, gen: u64 },
    TxTimeout { chip: ChipId, gen: u64, tx: u64 },
    RxPreamble { chip: ChipId, tx: u64 },
    RxHeader { chip: ChipId, tx: u64 },
    RxEnd { chip: ChipId, tx: u64 },
    RxTimeout { chip: ChipId, gen: u64 },
    CadEnd { chip: ChipId, gen: u64 },
}

/// Everything behind the world's lock: the clock, the event queue, the chips, the air and this
/// process's socket on the air directory. Its methods are spread over `world.rs` (the queue),
/// `exec.rs` (commands) and `reception.rs` (the air).
pub(super) struct State {
    pub(super) now: u64,
    pub(super) chips: Vec<Chip>,
    pub(super) air: Air,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    pub(super) rng: StdRng,
    pub(super) next_tx: u64,
    pub(super) tx_log: Vec<TxRecord>,
    pub(super) socket: Option<AirSocket>,
    /// Datagrams for the air directory, sent when the lock is released (never under it).
    pub(super) outbox: Vec<Vec<u8>>,
    pub(super) remote_ids: HashMap<(u64, u64), u64>,
    pub(super) rx_timer_armed: Vec<bool>,
    /// Generic command BUSY time (ns).
    pub(super) generic_busy: u64,
    pub(super) calibrate_image_busy: u64,
    air_errors: u64,
}

/// The lock and the condition variable every waiter of the world sleeps on.
pub(super) struct Shared {
    state: Mutex<State>,
    pub(super) cond: Condvar,
    /// Real-time mode: virtual nanoseconds = time since this instant.
    realtime: Option<Instant>,
    /// What a [`crate::Wakeup`] calls to wake this world's waiters.
    wake_hook: WakeHook,
}

/// The world's lock, held. Releasing it sends the datagrams queued for the air directory, so no
/// socket IO ever happens under the lock.
pub(super) struct Locked<'a> {
    guard: Option<MutexGuard<'a, State>>,
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("the world's lock is held")
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("the world's lock is held")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            release(guard);
        }
    }
}

/// Unlocks, then sends what the state queued for the air directory.
fn release(mut st: MutexGuard<'_, State>) {
    if st.outbox.is_empty() {
        return;
    }
    let datagrams = std::mem::take(&mut st.outbox);
    let sender = st.socket.as_ref().map(AirSocket::sender);
    drop(st);
    if let Some(sender) = sender {
        for d in &datagrams {
            sender.broadcast(d);
        }
    }
}

/// Emulated chips and the air between them. Cheap to clone (shared).
#[derive(Clone)]
pub struct World {
    pub(super) shared: Arc<Shared>,
}

pub(super) fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl World {
    /// Deterministic world: time moves only when a driver waits or a test advances it.
    pub fn new_virtual(seed: u64, air: AirConfig) -> World {
        World::build(seed, air, None)
    }

    /// Real-time world (for running gateways and the latency benchmark).
    pub fn new_realtime(seed: u64, air: AirConfig) -> World {
        World::build(seed, air, Some(Instant::now()))
    }

    fn build(seed: u64, air: AirConfig, realtime: Option<Instant>) -> World {
        World {
            shared: Arc::new_cyclic(|weak: &Weak<Shared>| Shared {
                state: Mutex::new(State {
                    now: 0,
                    chips: Vec::new(),
                    air: Air::new(air),
                    queue: BinaryHeap::new(),
                    seq: 0,
                    rng: StdRng::seed_from_u64(seed),
                    next_tx: 1,
                    tx_log: Vec::new(),
                    socket: None,
                    outbox: Vec::new(),
                    remote_ids: HashMap::new(),
                    rx_timer_armed: Vec::new(),
                    generic_busy: GENERIC_BUSY,
                    calibrate_image_busy: CALIBRATE_IMAGE_BUSY,
                    air_errors: 0,
                }),
                cond: Condvar::new(),
                realtime,
                wake_hook: wake_hook(weak.clone()),
            }),
        }
    }

    pub(super) fn lock(&self) -> Locked<'_> {
        let mut st = Locked {
            guard: Some(self.shared.lock_state()),
        };
        if let Some(start) = self.shared.realtime {
            let now = dur_ns(start.elapsed());
            st.run_until(now);
        }
        st
    }

    /// The hook a [`crate::Wakeup`] waited on together with this world's DIO1 lines calls.
    pub(super) fn wake_hook(&self) -> WakeHook {
        self.shared.wake_hook.clone()
    }

    /// Adds a chip (after power-on: BUSY low, STBY_RC).
    pub fn add_chip(&self, profile: ChipProfile) -> ChipId {
        let mut st = self.lock();
        let node = loop {
            let n: u64 = st.rng.gen();
            if n != INJECTOR && st.chips.iter().all(|c| c.node != n) {
                break n;
            }
        };
        st.chips.push(Chip::new(profile, node));
        st.rx_timer_armed.push(false);
        st.chips.len() - 1
    }

    /// Joins a cross-process air directory (real-time worlds only). Radios of this world are
    /// heard by other processes on that directory and vice versa.
    pub fn join_air_dir(&self, dir: &Path) -> std::io::Result<()> {
        if self.shared.realtime.is_none() {
            return Err(std::io::Error::other(
                "a virtual-clock world cannot share its air across processes",
            ));
        }
        let node = {
            let mut st = self.lock();
            st.rng.gen::<u64>()
        };
        let socket = AirSocket::bind(dir, node)?;
        let recv = socket.receiver()?;
        self.lock().socket = Some(socket);
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        std::thread::Builder::new()
            .name("sim-air-rx".into())
            .spawn(move || air_receiver(recv, weak))?;
        Ok(())
    }

    pub fn spi(&self, chip: ChipId) -> EmuSpi {
        EmuSpi {
            world: self.clone(),
            chip,
        }
    }

    pub fn lines(&self, chip: ChipId) -> EmuLines {
        EmuLines {
            world: self.clone(),
            chip,
            edges_at_read: None,
        }
    }

    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.lock().now)
    }

    /// Moves virtual time forward (processing every event on the way); real time: sleeps.
    pub fn advance(&self, d: Duration) {
        if self.shared.realtime.is_some() {
            std::thread::sleep(d);
            return;
        }
        let mut st = self.lock();
        let target = st.now.saturating_add(dur_ns(d));
        st.run_until(target);
        self.shared.cond.notify_all();
    }

    pub fn node_id(&self, chip: ChipId) -> u64 {
        self.lock().chips.get(chip).map_or(0, |c| c.node)
    }

    /// Path loss from one chip to another (asymmetric).
    pub fn set_link_loss(&self, from: ChipId, to: ChipId, loss_db: f32) {
        let mut st = self.lock();
        let (f, t) = (st.chips[from].node, st.chips[to].node);
        st.air.set_link_loss(f, t, loss_db);
    }

    /// Path loss for frames from a remote node (another process) to a local chip.
    pub fn set_remote_link_loss(&self, from_node: u64, to: ChipId, loss_db: f32) {
        let mut st = self.lock();
        let t = st.chips[to].node;
        st.air.set_link_loss(from_node, t, loss_db);
    }

    pub fn set_air_config(&self, cfg: AirConfig) {
        self.lock().air.config = cfg;
    }

    pub fn counters(&self, chip: ChipId) -> ChipCounters {
        self.lock().chips[chip].counters.clone()
    }

    pub fn chip_mode(&self, chip: ChipId) -> ChipMode {
        self.lock().chips[chip].mode.status_mode()
    }

    pub fn register(&self, chip: ChipId, addr: u16) -> u8 {
        self.lock().chips[chip].reg(addr)
    }

    /// Transmissions seen on this world's air, oldest first (the most recent 4096 at least).
    pub fn tx_log(&self) -> Vec<TxRecord> {
        self.lock().tx_log.clone()
    }

    /// World time at which DIO1 of `chip` last rose.
    pub fn dio1_rise_time(&self, chip: ChipId) -> Duration {
        Duration::from_nanos(self.lock().chips[chip].dio1_rise_ns)
    }

    /// Real time at which DIO1 of `chip` last rose.
    pub fn dio1_rise_at(&self, chip: ChipId) -> Option<Instant> {
        self.lock().chips[chip].dio1_rise_at
    }

    /// Air datagrams that could not be decoded or sent.
    pub fn air_errors(&self) -> u64 {
        let st = self.lock();
        st.air_errors + st.socket.as_ref().map_or(0, |s| s.sender().failures())
    }

    /// Air datagrams another participant lost because it did not read its socket (its queue was
    /// full); the sender never waits for it.
    pub fn air_dropped(&self) -> u64 {
        self.lock()
            .socket
            .as_ref()
            .map_or(0, |s| s.sender().dropped())
    }

    pub fn inject_fault(&self, chip: ChipId, fault: Fault) {
        let mut st = self.lock();
        let now = st.now;
        let c = &mut st.chips[chip];
        match fault {
            Fault::StuckBusy => c.busy_stuck = true,
            Fault::RefuseRx(n) => {
                c.faults.insert("refuse_rx", n);
            }
            Fault::DeadDio1 => {
                c.dio1_dead = true;
                c.update_dio1();
            }
            Fault::Absent => c.absent = true,
            Fault::CrcErrorNext => {
                c.faults.insert("crc_next", 1);
            }
            Fault::SpuriousIrqRead => {
                c.faults.insert("spurious_irq", 1);
            }
            Fault::DeviceErrors(bits) => c.device_errors |= bits,
            Fault::FallOutOfRx => {
                if matches!(c.mode, EmuMode::Rx { .. }) {
                    c.set_mode(EmuMode::StbyRc);
                }
            }
        }
        let _ = now;
        self.shared.cond.notify_all();
    }

    /// Puts a frame on the air as if sent from a node with no path loss to `chip`, with the
    /// chip's current radio settings, radiated at `power_dbm`.
    pub fn inject_rx(&self, chip: ChipId, payload: &[u8], power_dbm: f32) {
        let mut st = self.lock();
        let params = st.chips[chip].lora();
        let now = st.now;
        st.start_transmission(
            Source::Injector,
            params,
            power_dbm,
            payload.to_vec(),
            now,
            None,
        );
        self.shared.cond.notify_all();
    }

    /// Blocks until `cond` holds or `timeout` passes (virtual: processes events up to it).
    pub(super) fn wait_until(&self, timeout: Duration, cond: impl Fn(&State) -> bool) -> bool {
        let mut st = self.lock();
        let deadline = st.now.saturating_add(dur_ns(timeout));
        match self.shared.realtime {
            None => loop {
                if cond(&st) {
                    return true;
                }
                match st.next_event_time() {
                    Some(t) if t <= deadline => st.process_next(),
                    _ => {
                        st.now = st.now.max(deadline);
                        let ok = cond(&st);
                        self.shared.cond.notify_all();
                        return ok;
                    }
                }
            },
            Some(start) => loop {
                let now = dur_ns(start.elapsed());
                st.run_until(now);
                if cond(&st) {
                    self.shared.cond.notify_all();
                    return true;
                }
                if now >= deadline {
                    return false;
                }
                let wake = st.next_event_time().unwrap_or(u64::MAX).min(deadline);
                let gap = wake.saturating_sub(now);
                if gap < 300 * US {
                    // Condvar timeouts are coarse; BUSY gaps are µs.
                    drop(st);
                    std::thread::yield_now();
                    st = self.lock();
                } else if !st.outbox.is_empty() {
                    // A transmission started while we ran the clock: it goes out before we sleep.
                    drop(st);
                    st = self.lock();
                } else {
                    // Sleeps until the next event or the deadline; a notify (SPI, an air
                    // datagram, a Wakeup) makes it look again. Nothing wakes it periodically.
                    let guard = st.guard.take().expect("the world's lock is held");
                    st.guard = Some(
                        self.shared
                            .cond
                            .wait_timeout(guard, Duration::from_nanos(gap))
                            .map(|(g, _)| g)
                            .unwrap_or_else(|p| p.into_inner().0),
                    );
                }
            },
        }
    }
}

/// The thread that reads this process's air socket: each datagram becomes a remote transmission.
/// It blocks in `recv` with no timeout and ends when the world (and with it the socket) is gone.
fn air_receiver(rx: AirReceiver, world: Weak<Shared>) {
    let mut buf = [0u8; 512];
    while let Some(n) = rx.recv(&mut buf) {
        let Some(shared) = world.upgrade() else {
            return;
        };
        let w = World { shared };
        let mut st = w.lock();
        match wire::decode(&buf[..n]) {
            Ok(msg) => st.remote(msg),
            Err(_) => st.air_errors += 1,
        }
        drop(st);
        // Waiters recompute their sleep: the new transmission brings events.
        w.shared.cond.notify_all();
    }
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other handle.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Wakes every waiter of the world behind `weak`. Taking the lock first means a waiter is either
/// before its check (and sees the wake-up pending) or already asleep (and gets the notify).
fn wake_hook(weak: Weak<Shared>) -> WakeHook {
    Arc::new(move || {
        if let Some(shared) = weak.upgrade() {
            drop(shared.lock_state());
            shared.cond.notify_all();
        }
    })
}

impl State {
    pub(super) fn schedule(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    pub(super) fn next_event_time(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    pub(super) fn process_next(&mut self) {
        if let Some(Reverse((t, _, ev))) = self.queue.pop() {
            self.now = self.now.max(t);
            self.stamp(t);
            self.handle(t, ev);
        }
    }

    /// Lets chips timestamp DIO1 edges with world time.
    pub(super) fn stamp(&mut self, t: u64) {
        for c in &mut self.chips {
            c.now_ns = t;
        }
    }

    pub(super) fn run_until(&mut self, t: u64) {
        while self.next_event_time().is_some_and(|n| n <= t) {
            self.process_next();
        }
        self.now = self.now.max(t);
    }

    /// Runs one timed event: the chip's own timing in [`super::exec`], reception in
    /// [`super::reception`].
    fn handle(&mut self, t: u64, ev: Event) {
        match ev {
            Event::BusyFall { chip } => self.busy_fall(chip, t),
            Event::TxEnd { chip, gen } => self.tx_end(chip, gen),
            Event::TxTimeout { chip, gen, tx } => self.tx_timeout(chip, gen, tx, t),
            Event::RxPreamble { chip, tx } => self.rx_preamble(chip, tx, t),
            Event::RxHeader { chip, tx } => self.rx_header(chip, tx),
            Event::RxEnd { chip, tx } => self.rx_end(chip, tx),
            Event::RxTimeout { chip, gen } => self.rx_timeout(chip, gen),
            Event::CadEnd { chip, gen } => self.cad_end(chip, gen, t),
        }
    }
}
