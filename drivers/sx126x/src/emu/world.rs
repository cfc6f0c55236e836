//! The emulated world: a clock (virtual or real time), the event queue, the chips and the air,
//! command execution per the emulator sheet (legality, status byte, BUSY timing, IRQ latching,
//! TX/RX/CAD timing), and the handles through which a driver reaches a chip.

use super::air::{
    can_demodulate, noise_floor_dbm, Air, AirConfig, Damage, RxConfig, Transmission, INJECTOR,
};
use super::chip::{
    param_len, read_len, rx_end_bits, Chip, ChipCounters, ChipProfile, EmuMode, Fault, Lock,
    Pending,
};
use super::wire::{self, AirMessage, AirSocket};
use crate::command::{self, irq, op, reg, ChipMode, CommandStatus};
use crate::hal::{BoardLines, HalError, SpiTransfer};
use crate::params::LoRaParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// Index of a chip in its world.
pub type ChipId = usize;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    BusyFall { chip: ChipId },
    TxEnd { chip: ChipId, gen: u64 },
    TxTimeout { chip: ChipId, gen: u64, tx: u64 },
    RxPreamble { chip: ChipId, tx: u64 },
    RxHeader { chip: ChipId, tx: u64 },
    RxEnd { chip: ChipId, tx: u64 },
    RxTimeout { chip: ChipId, gen: u64 },
    CadEnd { chip: ChipId, gen: u64 },
}

struct State {
    now: u64,
    chips: Vec<Chip>,
    air: Air,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    rng: StdRng,
    next_tx: u64,
    tx_log: Vec<TxRecord>,
    socket: Option<AirSocket>,
    remote_ids: HashMap<(u64, u64), u64>,
    rx_timer_armed: Vec<bool>,
    /// Generic command BUSY time (ns).
    generic_busy: u64,
    calibrate_image_busy: u64,
    air_errors: u64,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    /// Real-time mode: virtual nanoseconds = time since this instant.
    realtime: Option<Instant>,
}

/// Emulated chips and the air between them. Cheap to clone (shared).
#[derive(Clone)]
pub struct World {
    shared: Arc<Shared>,
}

fn dur_ns(d: Duration) -> u64 {
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
            shared: Arc::new(Shared {
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
                    remote_ids: HashMap::new(),
                    rx_timer_armed: Vec::new(),
                    generic_busy: 2 * US,
                    calibrate_image_busy: MS,
                    air_errors: 0,
                }),
                cond: Condvar::new(),
                realtime,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other handle.
        let mut st = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(start) = self.shared.realtime {
            let now = dur_ns(start.elapsed());
            st.run_until(now);
        }
        st
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
        let recv = socket.try_clone_socket()?;
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
        st.air_errors + st.socket.as_ref().map_or(0, |s| s.send_failures)
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
            None,
            INJECTOR,
            params,
            power_dbm,
            payload.to_vec(),
            now,
            None,
        );
        self.shared.cond.notify_all();
    }

    /// Blocks until `cond` holds or `timeout` passes (virtual: processes events up to it).
    fn wait_until(&self, timeout: Duration, cond: impl Fn(&State) -> bool) -> bool {
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
                } else {
                    st = self
                        .shared
                        .cond
                        .wait_timeout(st, Duration::from_nanos(gap))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            },
        }
    }
}

fn air_receiver(sock: std::os::unix::net::UnixDatagram, world: Weak<Shared>) {
    let mut buf = [0u8; 512];
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => Some(n),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(_) => return,
        };
        let Some(shared) = world.upgrade() else {
            return;
        };
        let Some(n) = n else { continue };
        let w = World { shared };
        let mut st = w.lock();
        match wire::decode(&buf[..n]) {
            Ok(msg) => st.remote(msg),
            Err(_) => st.air_errors += 1,
        }
        drop(st);
        w.shared.cond.notify_all();
    }
}

impl State {
    fn schedule(&mut self, t: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn next_event_time(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    fn process_next(&mut self) {
        if let Some(Reverse((t, _, ev))) = self.queue.pop() {
            self.now = self.now.max(t);
            self.stamp(t);
            self.handle(t, ev);
        }
    }

    /// Lets chips timestamp DIO1 edges with world time.
    fn stamp(&mut self, t: u64) {
        for c in &mut self.chips {
            c.now_ns = t;
        }
    }

    fn run_until(&mut self, t: u64) {
        while self.next_event_time().is_some_and(|n| n <= t) {
            self.process_next();
        }
        self.now = self.now.max(t);
    }

    fn busy(&self, chip: ChipId) -> bool {
        let c = &self.chips[chip];
        c.busy_stuck
            || self.now < c.busy_until
            || matches!(c.mode, EmuMode::Reset | EmuMode::Sleep { .. })
    }

    fn set_busy(&mut self, chip: ChipId, d: u64) {
        let t = self.now + d;
        self.chips[chip].busy_until = t;
        self.schedule(t, Event::BusyFall { chip });
    }

    fn rx_config(&self, chip: ChipId) -> RxConfig {
        let c = &self.chips[chip];
        let params = c.lora();
        RxConfig {
            params,
            ldro: c.ldro,
            noise_figure_db: c.noise_figure(self.air.config.noise_figure_db),
        }
    }

    // ------------------------------------------------------------ SPI

    fn transaction(&mut self, chip: ChipId, mosi: &[u8], miso: &mut [u8]) {
        miso.fill(0);
        let now = self.now;
        self.stamp(now);
        let generic = self.generic_busy;
        let c = &mut self.chips[chip];
        c.counters.transactions += 1;
        if c.absent || matches!(c.mode, EmuMode::Reset) || !c.nreset_high {
            return;
        }
        if let EmuMode::Sleep { warm } = c.mode {
            // NSS falling wakes the chip; the transaction itself is lost.
            c.counters.wakes += 1;
            if !warm {
                c.power_on_state();
            }
            c.set_mode(EmuMode::StbyRc);
            let d = if warm { 340 * US } else { 3_500 * US };
            self.set_busy(chip, d);
            return;
        }
        if self.busy(chip) {
            self.chips[chip].counters.busy_violations += 1;
            tracing::debug!(
                chip,
                opcode = mosi.first().copied().unwrap_or(0),
                "command sent while BUSY: dropped"
            );
            return;
        }
        let c = &mut self.chips[chip];
        let Some(&opcode) = mosi.first() else { return };
        let status = c.status_byte();
        miso.fill(status);
        let args = &mosi[1..];
        if let Some(n) = read_len(opcode) {
            // Read commands: byte 1 status, then data.
            if args.len() < 1 + n && opcode != op::GET_STATUS {
                c.cmd_status = CommandStatus::ProcessingError;
                c.counters.processing_errors += 1;
                self.set_busy(chip, generic);
                return;
            }
            let data = self.read_data(chip, opcode, n);
            for (i, b) in data.iter().enumerate() {
                if let Some(slot) = miso.get_mut(2 + i) {
                    *slot = *b;
                }
            }
            for slot in miso.iter_mut().skip(2 + data.len()) {
                *slot = 0;
            }
            self.set_busy(chip, generic);
            return;
        }
        match opcode {
            op::READ_REGISTER => {
                if args.len() < 3 {
                    self.processing_error(chip);
                    return;
                }
                let addr = u16::from_be_bytes([args[0], args[1]]);
                for (i, slot) in miso.iter_mut().enumerate().skip(4) {
                    *slot = self.read_register(chip, addr.wrapping_add((i - 4) as u16));
                }
                self.set_busy(chip, generic);
                return;
            }
            op::READ_BUFFER => {
                if args.len() < 2 {
                    self.processing_error(chip);
                    return;
                }
                let c = &mut self.chips[chip];
                let off = args[0];
                if c.rx_done_unread && off != c.rx_start {
                    c.counters.read_wrong_offset += 1;
                }
                c.rx_done_unread = false;
                for (i, slot) in miso.iter_mut().enumerate().skip(3) {
                    *slot = c.buffer[usize::from(off.wrapping_add((i - 3) as u8))];
                }
                self.set_busy(chip, generic);
                return;
            }
            _ => {}
        }
        let Some(need) = param_len(opcode) else {
            self.processing_error(chip);
            return;
        };
        if args.len() < need {
            self.processing_error(chip);
            return;
        }
        self.execute(chip, opcode, args);
    }

    fn processing_error(&mut self, chip: ChipId) {
        let c = &mut self.chips[chip];
        c.cmd_status = CommandStatus::ProcessingError;
        c.counters.processing_errors += 1;
        let g = self.generic_busy;
        self.set_busy(chip, g);
    }

    fn fail(&mut self, chip: ChipId) {
        let c = &mut self.chips[chip];
        c.cmd_status = CommandStatus::ExecFailure;
        c.counters.exec_failures += 1;
        let g = self.generic_busy;
        self.set_busy(chip, g);
    }

    fn read_register(&mut self, chip: ChipId, addr: u16) -> u8 {
        if (reg::RANDOM..reg::RANDOM + 4).contains(&addr) {
            return self.rng.gen();
        }
        self.chips[chip].reg(addr)
    }

    fn read_data(&mut self, chip: ChipId, opcode: u8, n: usize) -> Vec<u8> {
        let mut cfg = None;
        if opcode == op::GET_RSSI_INST && matches!(self.chips[chip].mode, EmuMode::Rx { .. }) {
            cfg = Some(self.rx_config(chip));
        }
        let rssi_now = cfg.map(|cfg| {
            let node = self.chips[chip].node;
            self.air.rssi_inst(&cfg, node, self.now)
        });
        let c = &mut self.chips[chip];
        let data = match opcode {
            op::GET_STATUS => vec![],
            op::GET_IRQ_STATUS => {
                if c.take_fault("spurious_irq") {
                    vec![0xFF, 0xFF]
                } else {
                    c.irq_status.to_be_bytes().to_vec()
                }
            }
            op::GET_RX_BUFFER_STATUS => vec![c.rx_len, c.rx_start],
            op::GET_PACKET_STATUS => c.packet_status.to_vec(),
            op::GET_RSSI_INST => {
                if let Some(dbm) = rssi_now {
                    c.last_rssi_inst = (-2.0 * dbm).round().clamp(0.0, 255.0) as u8;
                }
                vec![c.last_rssi_inst]
            }
            op::GET_DEVICE_ERRORS => c.device_errors.to_be_bytes().to_vec(),
            op::GET_PACKET_TYPE => vec![u8::from(c.packet_type_lora)],
            op::GET_STATS => c.stats.iter().flat_map(|s| s.to_be_bytes()).collect(),
            _ => vec![0; n],
        };
        data
    }

    /// Mode-change BUSY time from the current mode (sheet §2.1), plus the TCXO start-up delay
    /// when leaving STBY_RC needs the 32 MHz clock.
    fn transition_busy(&self, chip: ChipId, target: &str) -> u64 {
        let c = &self.chips[chip];
        let base = match (c.mode, target) {
            (EmuMode::StbyXosc, "fs") => 40 * US,
            (EmuMode::StbyXosc, "tx") => 105 * US,
            (EmuMode::StbyXosc, _) => 62 * US,
            (EmuMode::Fs, "tx") => 76 * US,
            (EmuMode::Fs, _) => 41 * US,
            (_, "fs") => 50 * US,
            (_, "tx") => 126 * US,
            (_, "xosc") => 31 * US,
            _ => 83 * US,
        };
        let tcxo = if c.mode == EmuMode::StbyRc && c.tcxo_configured {
            c.tcxo_delay_ns
        } else {
            0
        };
        base + tcxo
    }

    /// The 32 MHz clock can start (a TCXO board needs its DIO3 supply configured).
    fn clock_ok(&self, chip: ChipId) -> bool {
        let c = &self.chips[chip];
        !c.profile.tcxo || c.tcxo_configured
    }

    fn execute(&mut self, chip: ChipId, opcode: u8, a: &[u8]) {
        let generic = self.generic_busy;
        let mode = self.chips[chip].mode;
        let in_standby = matches!(mode, EmuMode::StbyRc | EmuMode::StbyXosc);
        let in_rc = mode == EmuMode::StbyRc;
        let in_tx = matches!(mode, EmuMode::Tx { .. });
        let mut busy = generic;
        match opcode {
            op::SET_STANDBY => {
                self.abort_activity(chip);
                let xosc = a[0] == 1;
                if xosc && !self.clock_ok(chip) {
                    self.chips[chip].set_mode(EmuMode::StbyRc);
                    self.fail(chip);
                    return;
                }
                if xosc && self.chips[chip].mode == EmuMode::StbyRc {
                    busy = self.transition_busy(chip, "xosc");
                }
                self.chips[chip].set_mode(if xosc {
                    EmuMode::StbyXosc
                } else {
                    EmuMode::StbyRc
                });
            }
            op::SET_SLEEP => {
                self.abort_activity(chip);
                let warm = a[0] & 0x04 != 0;
                let c = &mut self.chips[chip];
                c.set_mode(EmuMode::Sleep { warm });
                c.cmd_status = CommandStatus::Ok;
                c.busy_until = u64::MAX;
                return;
            }
            op::SET_FS | op::SET_TX | op::SET_RX | op::SET_CAD | op::SET_RX_DUTY_CYCLE => {
                if in_tx || !self.clock_ok(chip) {
                    self.fail(chip);
                    return;
                }
                if opcode == op::SET_RX && self.chips[chip].take_fault("refuse_rx") {
                    self.fail(chip);
                    return;
                }
                let target = match opcode {
                    op::SET_FS => "fs",
                    op::SET_TX => "tx",
                    _ => "rx",
                };
                busy = self.transition_busy(chip, target);
                let timeout = u32::from_be_bytes([
                    0,
                    a.first().copied().unwrap_or(0),
                    a.get(1).copied().unwrap_or(0),
                    a.get(2).copied().unwrap_or(0),
                ]);
                let timeout_ns =
                    (timeout != 0 && timeout != 0xFF_FFFF).then(|| u64::from(timeout) * 15_625);
                // Leaving RX/CAD stops any reception in progress.
                self.chips[chip].lock = None;
                let pending = match opcode {
                    op::SET_FS => {
                        self.chips[chip].set_mode(EmuMode::Fs);
                        Pending::None
                    }
                    op::SET_TX => Pending::StartTx { timeout_ns },
                    op::SET_RX => Pending::StartRx {
                        continuous: timeout == 0xFF_FFFF,
                        timeout_ns,
                    },
                    op::SET_RX_DUTY_CYCLE => Pending::StartRx {
                        continuous: true,
                        timeout_ns: None,
                    },
                    _ => Pending::StartCad,
                };
                self.chips[chip].pending = pending;
            }
            op::CALIBRATE | op::CALIBRATE_IMAGE | op::SET_DIO3_AS_TCXO_CTRL => {
                if !in_rc {
                    self.fail(chip);
                    return;
                }
                let c = &mut self.chips[chip];
                match opcode {
                    op::CALIBRATE => {
                        let parts = u64::from(a[0].count_ones());
                        busy = 3_500 * US * parts.max(1) / 7;
                        if c.profile.tcxo && !c.tcxo_configured {
                            c.device_errors |= command::device_error::XOSC_START;
                        } else {
                            c.device_errors &= !0x3F;
                        }
                    }
                    op::CALIBRATE_IMAGE => busy = self.calibrate_image_busy,
                    _ => {
                        c.tcxo_configured = true;
                        c.tcxo_delay_ns =
                            u64::from(u32::from_be_bytes([0, a[1], a[2], a[3]])) * 15_625;
                    }
                }
            }
            op::SET_PACKET_TYPE | op::SET_REGULATOR_MODE => {
                if !in_standby {
                    self.fail(chip);
                    return;
                }
                if opcode == op::SET_PACKET_TYPE {
                    self.chips[chip].packet_type_lora = a[0] == 1;
                }
            }
            _ => self.configure(chip, opcode, a),
        }
        let c = &mut self.chips[chip];
        c.cmd_status = CommandStatus::Ok;
        self.set_busy(chip, busy);
    }

    /// Commands accepted in any awake state (configuration, buffer, IRQ).
    fn configure(&mut self, chip: ChipId, opcode: u8, a: &[u8]) {
        let c = &mut self.chips[chip];
        match opcode {
            op::SET_RF_FREQUENCY => c.frequency_reg = u32::from_be_bytes([a[0], a[1], a[2], a[3]]),
            op::SET_PA_CONFIG => {
                c.pa_device_sel = a[2];
                c.regs.insert(reg::OCP, if a[2] == 0 { 0x38 } else { 0x18 });
            }
            op::SET_TX_PARAMS => c.power_dbm = a[0] as i8,
            op::SET_MODULATION_PARAMS => {
                c.sf = a[0].clamp(5, 12);
                c.bw_code = a[1];
                c.cr_code = a[2].clamp(1, 4);
                c.ldro = a[3] != 0;
            }
            op::SET_PACKET_PARAMS => {
                c.preamble = u16::from_be_bytes([a[0], a[1]]);
                c.implicit_header = a[2] == 1;
                c.payload_len = a[3];
                c.regs.insert(reg::PAYLOAD_LENGTH, a[3]);
                c.crc_on = a[4] == 1;
                c.invert_iq = a[5] == 1;
                c.iq_fix_due = true;
            }
            op::SET_BUFFER_BASE_ADDRESS => {
                c.tx_base = a[0];
                c.rx_base = a[1];
                c.rx_ptr = a[1];
            }
            op::SET_DIO_IRQ_PARAMS => {
                c.irq_mask = u16::from_be_bytes([a[0], a[1]]);
                c.dio1_mask = u16::from_be_bytes([a[2], a[3]]);
                c.update_dio1();
            }
            op::CLEAR_IRQ_STATUS => {
                c.irq_status &= !u16::from_be_bytes([a[0], a[1]]);
                c.update_dio1();
            }
            op::SET_DIO2_AS_RF_SWITCH_CTRL => c.dio2_rf_switch = a[0] == 1,
            op::SET_RX_TX_FALLBACK_MODE => {
                c.fallback = match a[0] {
                    0x30 => EmuMode::StbyXosc,
                    0x40 => EmuMode::Fs,
                    _ => EmuMode::StbyRc,
                }
            }
            op::SET_CAD_PARAMS => {
                c.cad_symbols = a[0].min(4);
                c.cad_exit_rx = a[3] == 1;
            }
            op::WRITE_REGISTER => {
                let addr = u16::from_be_bytes([a[0], a[1]]);
                for (i, v) in a[2..].iter().enumerate() {
                    let r = addr.wrapping_add(i as u16);
                    if (reg::VERSION..reg::VERSION + 16).contains(&r) {
                        continue; // read-only
                    }
                    if r == reg::TX_CLAMP && v & 0x1E == 0x1E {
                        c.clamp_fixed = true;
                    }
                    if r == reg::IQ_POLARITY {
                        c.iq_fix_due = false;
                    }
                    c.regs.insert(r, *v);
                }
            }
            op::WRITE_BUFFER => {
                let off = a[0];
                for (i, v) in a[1..].iter().enumerate() {
                    c.buffer[usize::from(off.wrapping_add(i as u8))] = *v;
                }
            }
            op::CLEAR_DEVICE_ERRORS => c.device_errors = 0,
            op::RESET_STATS => c.stats = [0; 3],
            // Accepted and not modelled further: RX timer behaviour knobs, CW test modes.
            _ => {}
        }
    }

    /// Stops TX (cutting the frame on air), RX and CAD.
    fn abort_activity(&mut self, chip: ChipId) {
        let now = self.now;
        if let EmuMode::Tx { tx_id } = self.chips[chip].mode {
            self.cut(tx_id, now);
        }
        self.chips[chip].pending = Pending::None;
        self.rx_timer_armed[chip] = false;
    }

    fn cut(&mut self, tx_id: u64, at: u64) {
        self.air.cut(tx_id, at);
        let Some(t) = self.air.get(tx_id) else { return };
        let (from, t0) = (t.from, t.t0);
        if let Some(sock) = self.socket.as_mut() {
            let msg = AirMessage::Cut {
                sender: from,
                tx_id,
                after: Duration::from_nanos(at.saturating_sub(t0)),
            };
            sock.broadcast(&wire::encode(&msg));
        }
    }

    // ------------------------------------------------------------ timed events

    fn handle(&mut self, t: u64, ev: Event) {
        match ev {
            Event::BusyFall { chip } => {
                let c = &self.chips[chip];
                if c.busy_until != t || c.busy_stuck {
                    return;
                }
                let pending = std::mem::replace(&mut self.chips[chip].pending, Pending::None);
                match pending {
                    Pending::None => {}
                    Pending::StartTx { timeout_ns } => self.start_tx(chip, t, timeout_ns),
                    Pending::StartRx {
                        continuous,
                        timeout_ns,
                    } => {
                        let c = &mut self.chips[chip];
                        if c.iq_fix_due {
                            c.counters.missing_iq_fix += 1;
                            c.iq_fix_due = false;
                        }
                        c.set_mode(EmuMode::Rx { continuous });
                        c.rx_since = t;
                        let gen = c.gen;
                        self.rx_timer_armed[chip] = timeout_ns.is_some();
                        if let Some(d) = timeout_ns {
                            self.schedule(t + d, Event::RxTimeout { chip, gen });
                        }
                    }
                    Pending::StartCad => {
                        let c = &mut self.chips[chip];
                        c.set_mode(EmuMode::Cad);
                        c.cad_started = t;
                        let sym = u64::try_from(c.lora().symbol_time().as_nanos()).unwrap_or(0);
                        let symbols = 1u64 << c.cad_symbols;
                        let gen = c.gen;
                        self.schedule(t + symbols * sym + sym / 2, Event::CadEnd { chip, gen });
                    }
                }
            }
            Event::TxEnd { chip, gen } => {
                let c = &mut self.chips[chip];
                if c.gen != gen {
                    return;
                }
                c.latch(irq::TX_DONE);
                c.cmd_status = CommandStatus::TxDone;
                let fb = c.fallback;
                c.set_mode(fb);
            }
            Event::TxTimeout { chip, gen, tx } => {
                if self.chips[chip].gen != gen {
                    return;
                }
                self.cut(tx, t);
                let c = &mut self.chips[chip];
                c.latch(irq::TIMEOUT);
                c.cmd_status = CommandStatus::Timeout;
                let fb = c.fallback;
                c.set_mode(fb);
            }
            Event::RxPreamble { chip, tx } => self.rx_preamble(chip, tx, t),
            Event::RxHeader { chip, tx } => self.rx_header(chip, tx),
            Event::RxEnd { chip, tx } => self.rx_end(chip, tx),
            Event::RxTimeout { chip, gen } => {
                if self.chips[chip].gen != gen || !self.rx_timer_armed[chip] {
                    return;
                }
                self.rx_timer_armed[chip] = false;
                let c = &mut self.chips[chip];
                c.latch(irq::TIMEOUT);
                c.cmd_status = CommandStatus::Timeout;
                let fb = c.fallback;
                c.set_mode(fb);
            }
            Event::CadEnd { chip, gen } => {
                if self.chips[chip].gen != gen {
                    return;
                }
                let cfg = self.rx_config(chip);
                let c = &self.chips[chip];
                let detected = self.air.cad_detects(&cfg, c.node, c.cad_started, t);
                let exit_rx = c.cad_exit_rx;
                let c = &mut self.chips[chip];
                c.latch(irq::CAD_DONE | if detected { irq::CAD_DETECTED } else { 0 });
                if exit_rx && detected {
                    c.set_mode(EmuMode::Rx { continuous: false });
                    c.rx_since = t;
                } else {
                    c.set_mode(EmuMode::StbyRc);
                }
            }
        }
    }

    fn start_tx(&mut self, chip: ChipId, t: u64, timeout_ns: Option<u64>) {
        let c = &mut self.chips[chip];
        if c.iq_fix_due {
            c.counters.missing_iq_fix += 1;
            c.iq_fix_due = false;
        }
        if c.profile.variant != crate::params::ChipVariant::Sx1261 && !c.clamp_fixed {
            c.counters.missing_clamp_fix += 1;
        }
        if c.rxen && !c.txen {
            c.counters.tx_with_rxen += 1;
        }
        c.counters.tx_started += 1;
        let params = c.lora();
        let len = usize::from(c.payload_len);
        let base = c.tx_base;
        let payload: Vec<u8> = (0..len)
            .map(|i| c.buffer[usize::from(base.wrapping_add(i as u8))])
            .collect();
        let power = c.radiated_dbm();
        let node = c.node;
        let id = self.start_transmission(
            Some(chip),
            node,
            params,
            power,
            payload,
            t,
            Some(self.chips[chip].ldro),
        );
        let c = &mut self.chips[chip];
        c.set_mode(EmuMode::Tx { tx_id: id });
        let gen = c.gen;
        let toa = u64::try_from(params.time_on_air(len).as_nanos()).unwrap_or(u64::MAX);
        match timeout_ns {
            Some(d) if d < toa => self.schedule(t + d, Event::TxTimeout { chip, gen, tx: id }),
            _ => self.schedule(t + toa, Event::TxEnd { chip, gen }),
        }
    }

    /// Puts a transmission on the air and schedules preamble detection at every local chip.
    #[allow(clippy::too_many_arguments)]
    fn start_transmission(
        &mut self,
        chip: Option<ChipId>,
        from: u64,
        params: LoRaParams,
        power_dbm: f32,
        payload: Vec<u8>,
        t0: u64,
        ldro: Option<bool>,
    ) -> u64 {
        let id = self.next_tx;
        self.next_tx += 1;
        let toa = params.time_on_air(payload.len());
        let tx = Transmission {
            id,
            from,
            params,
            ldro: ldro.unwrap_or_else(|| params.ldro()),
            power_dbm,
            payload,
            t0,
            t_end: t0 + dur_ns(toa),
            cut_at: None,
        };
        if chip.is_some() {
            if let Some(sock) = self.socket.as_mut() {
                let msg = AirMessage::Start {
                    sender: from,
                    tx_id: id,
                    params: LoRaParams {
                        power_dbm: 0,
                        ..params
                    },
                    ldro: tx.ldro,
                    power_dbm,
                    time_on_air: toa,
                    payload: tx.payload.clone(),
                };
                sock.broadcast(&wire::encode(&msg));
            }
        }
        self.tx_log.push(TxRecord {
            chip,
            node: from,
            t0: Duration::from_nanos(t0),
            time_on_air: toa,
            params,
            payload: tx.payload.clone(),
        });
        let t_pd = tx.t_preamble_detect();
        self.air.add(tx, t0);
        for other in 0..self.chips.len() {
            if Some(other) != chip {
                self.schedule(
                    t_pd,
                    Event::RxPreamble {
                        chip: other,
                        tx: id,
                    },
                );
            }
        }
        id
    }

    fn remote(&mut self, msg: AirMessage) {
        let now = self.now;
        match msg {
            AirMessage::Start {
                sender,
                tx_id,
                params,
                ldro,
                power_dbm,
                payload,
                ..
            } => {
                if self.chips.iter().any(|c| c.node == sender) {
                    return; // our own datagram echoed back
                }
                let id = self.start_transmission(
                    None,
                    sender,
                    params,
                    power_dbm,
                    payload,
                    now,
                    Some(ldro),
                );
                self.remote_ids.insert((sender, tx_id), id);
                if self.remote_ids.len() > 4096 {
                    self.remote_ids.clear();
                }
            }
            AirMessage::Cut {
                sender,
                tx_id,
                after,
            } => {
                if let Some(&id) = self.remote_ids.get(&(sender, tx_id)) {
                    if let Some(t0) = self.air.get(id).map(|t| t.t0) {
                        self.air.cut(id, t0 + dur_ns(after));
                    }
                }
            }
        }
    }

    fn rx_preamble(&mut self, chip: ChipId, tx: u64, t: u64) {
        let Some(p) = self.air.get(tx) else { return };
        let c = &self.chips[chip];
        if !matches!(c.mode, EmuMode::Rx { .. }) || c.node == p.from {
            return;
        }
        if p.cut_at.is_some_and(|cut| cut <= t) {
            return;
        }
        let cfg = self.rx_config(chip);
        if !can_demodulate(p, &cfg) || c.rx_since > p.t_critical() {
            return;
        }
        let power = self.air.rx_power(p, c.node);
        let snr = power - noise_floor_dbm(cfg.params.bandwidth, cfg.noise_figure_db);
        let margin = snr - super::air::snr_min_db(cfg.params.spreading_factor);
        if self.air.config.soft_threshold && margin.abs() < 3.0 {
            let p_lock = super::air::lock_probability(margin);
            if !self.rng.gen_bool(p_lock.clamp(0.0, 1.0)) {
                return;
            }
        } else if margin < 0.0 {
            return;
        }
        if let Some(l) = c.lock {
            // Preamble capture: a much stronger packet steals the lock before the header.
            if l.header_done || power < l.power_dbm + self.air.config.capture_db {
                return;
            }
        }
        let drop_p = self.air.config.drop_probability;
        if drop_p > 0.0 && self.rng.gen_bool(drop_p.clamp(0.0, 1.0)) {
            return;
        }
        let (t_hdr, t_end) = (p.t_header(), p.t_end);
        let c = &mut self.chips[chip];
        c.lock = Some(Lock {
            tx_id: tx,
            power_dbm: power,
            header_done: false,
        });
        c.latch(irq::PREAMBLE_DETECTED);
        self.schedule(t_hdr, Event::RxHeader { chip, tx });
        self.schedule(t_end, Event::RxEnd { chip, tx });
    }

    fn locked_on(&self, chip: ChipId, tx: u64) -> bool {
        let c = &self.chips[chip];
        matches!(c.mode, EmuMode::Rx { .. }) && c.lock.is_some_and(|l| l.tx_id == tx)
    }

    fn damage(&self, chip: ChipId, p: &Transmission, a: u64, b: u64) -> Damage {
        let cfg = self.rx_config(chip);
        let node = self.chips[chip].node;
        self.air.damage(p, &cfg, node, a, b)
    }

    fn rx_header(&mut self, chip: ChipId, tx: u64) {
        if !self.locked_on(chip, tx) {
            return;
        }
        let Some(p) = self.air.get(tx).cloned() else {
            return;
        };
        if self.damage(chip, &p, p.t_critical(), p.t_header()) == Damage::Damaged {
            let c = &mut self.chips[chip];
            c.lock = None;
            c.latch(irq::HEADER_ERR);
            return;
        }
        let c = &mut self.chips[chip];
        if let Some(l) = c.lock.as_mut() {
            l.header_done = true;
        }
        c.latch(irq::HEADER_VALID);
        self.rx_timer_armed[chip] = false;
    }

    fn rx_end(&mut self, chip: ChipId, tx: u64) {
        if !self.locked_on(chip, tx) {
            return;
        }
        let Some(p) = self.air.get(tx).cloned() else {
            return;
        };
        let mut crc_failed = self.damage(chip, &p, p.t_header(), p.t_end) == Damage::Damaged;
        if self.chips[chip].take_fault("crc_next") {
            crc_failed = true;
        }
        let cfg = self.rx_config(chip);
        let node = self.chips[chip].node;
        let (mut rssi, mut signal, mut snr) = self.air.link_figures(&p, &cfg, node, p.t0, p.t_end);
        let (rs, ss) = (self.air.config.rssi_sigma_db, self.air.config.snr_sigma_db);
        if rs > 0.0 {
            let e = rs * super::air::gaussian(self.rng.gen(), self.rng.gen()) as f32;
            rssi += e;
            signal += e;
        }
        if ss > 0.0 {
            snr += ss * super::air::gaussian(self.rng.gen(), self.rng.gen()) as f32;
        }
        let flips: Vec<(usize, u8)> = if crc_failed && !p.payload.is_empty() {
            (0..3)
                .map(|_| {
                    (
                        self.rng.gen_range(0..p.payload.len()),
                        self.rng.gen_range(1..=255u8),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let c = &mut self.chips[chip];
        let mut data = p.payload.clone();
        for (i, x) in flips {
            if let Some(b) = data.get_mut(i) {
                *b ^= x;
            }
        }
        let start = c.rx_ptr;
        for (i, b) in data.iter().enumerate() {
            c.buffer[usize::from(start.wrapping_add(i as u8))] = *b;
        }
        let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
        c.rx_start = start;
        c.rx_len = len;
        c.rx_done_unread = true;
        c.packet_status = [
            (-2.0 * rssi).round().clamp(0.0, 255.0) as u8,
            ((4.0 * snr).round().clamp(-128.0, 127.0) as i8) as u8,
            (-2.0 * signal).round().clamp(0.0, 255.0) as u8,
        ];
        c.stats[0] = c.stats[0].wrapping_add(1);
        if crc_failed {
            c.stats[1] = c.stats[1].wrapping_add(1);
        }
        c.lock = None;
        c.counters.rx_done += 1;
        c.cmd_status = CommandStatus::DataAvailable;
        let has_crc = p.params.crc_on;
        c.latch(rx_end_bits(crc_failed, has_crc));
        match c.mode {
            EmuMode::Rx { continuous: true } => c.rx_ptr = start.wrapping_add(len),
            _ => {
                let fb = c.fallback;
                c.set_mode(fb);
            }
        }
    }
}

/// SPI handle on one emulated chip.
pub struct EmuSpi {
    world: World,
    chip: ChipId,
}

impl SpiTransfer for EmuSpi {
    fn transfer(&mut self, tx: &[u8], rx: &mut [u8]) -> Result<(), HalError> {
        if rx.len() != tx.len() {
            return Err(HalError::Other("SPI rx and tx lengths differ".into()));
        }
        let mut st = self.world.lock();
        st.transaction(self.chip, tx, rx);
        drop(st);
        self.world.shared.cond.notify_all();
        Ok(())
    }
}

/// Board lines of one emulated chip.
pub struct EmuLines {
    world: World,
    chip: ChipId,
}

impl EmuLines {
    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn chip(&self) -> ChipId {
        self.chip
    }
}

impl BoardLines for EmuLines {
    fn set_reset(&mut self, high: bool) -> Result<(), HalError> {
        let mut st = self.world.lock();
        let chip = self.chip;
        let was_high = st.chips[chip].nreset_high;
        if !high {
            st.abort_activity(chip);
            let c = &mut st.chips[chip];
            c.nreset_high = false;
            c.set_mode(EmuMode::Reset);
        } else if !was_high {
            let c = &mut st.chips[chip];
            c.power_on_state();
            c.nreset_high = true;
            c.counters.resets += 1;
            c.set_mode(EmuMode::StbyRc);
            st.set_busy(chip, 3_500 * US);
        }
        drop(st);
        self.world.shared.cond.notify_all();
        Ok(())
    }

    fn busy(&mut self) -> Result<bool, HalError> {
        let st = self.world.lock();
        Ok(st.busy(self.chip))
    }

    fn wait_busy_low(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let chip = self.chip;
        Ok(self.world.wait_until(timeout, |st| !st.busy(chip)))
    }

    fn dio1(&mut self) -> Result<bool, HalError> {
        Ok(self.world.lock().chips[self.chip].dio1_level)
    }

    fn wait_dio1_rising(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let chip = self.chip;
        let edges = self.world.lock().chips[chip].dio1_edges;
        Ok(self
            .world
            .wait_until(timeout, |st| st.chips[chip].dio1_edges > edges))
    }

    fn delay(&mut self, d: Duration) {
        self.world.wait_until(d, |_| false);
    }

    fn set_txen(&mut self, on: bool) -> Result<(), HalError> {
        self.world.lock().chips[self.chip].txen = on;
        Ok(())
    }

    fn set_rxen(&mut self, on: bool) -> Result<(), HalError> {
        self.world.lock().chips[self.chip].rxen = on;
        Ok(())
    }
}
