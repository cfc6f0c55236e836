//! SPI command execution on an emulated chip, per the emulator sheet: which commands are legal in
//! which mode, the status byte, BUSY timing, register and buffer access, IRQ latching, and the
//! chip's own timing once a command took effect (TX/RX/CAD start when BUSY falls, TxDone, the TX
//! and RX timeouts, CAD end). What a receiver hears is in [`super::reception`].

use super::chip::{param_len, read_len, EmuMode, Pending};
use super::reception::Source;
use super::world::{ChipId, Event, State, MS, US};
use crate::command::{self, irq, op, reg, CommandStatus};
use rand::Rng;

/// Generic command BUSY time (ns).
pub(super) const GENERIC_BUSY: u64 = 2 * US;
/// CalibrateImage BUSY time (ns).
pub(super) const CALIBRATE_IMAGE_BUSY: u64 = MS;

impl State {
    pub(super) fn busy(&self, chip: ChipId) -> bool {
        let c = &self.chips[chip];
        c.busy_stuck
            || self.now < c.busy_until
            || matches!(c.mode, EmuMode::Reset | EmuMode::Sleep { .. })
    }

    pub(super) fn set_busy(&mut self, chip: ChipId, d: u64) {
        let t = self.now + d;
        self.chips[chip].busy_until = t;
        self.schedule(t, Event::BusyFall { chip });
    }

    // ------------------------------------------------------------ SPI

    pub(super) fn transaction(&mut self, chip: ChipId, mosi: &[u8], miso: &mut [u8]) {
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
    pub(super) fn abort_activity(&mut self, chip: ChipId) {
        let now = self.now;
        if let EmuMode::Tx { tx_id } = self.chips[chip].mode {
            self.cut(tx_id, now);
        }
        self.chips[chip].pending = Pending::None;
        self.rx_timer_armed[chip] = false;
    }

    // ------------------------------------------------------------ the chip's own timing

    /// BUSY fell: a mode change issued by the last command takes effect (TX, RX or CAD starts).
    pub(super) fn busy_fall(&mut self, chip: ChipId, t: u64) {
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

    pub(super) fn tx_end(&mut self, chip: ChipId, gen: u64) {
        let c = &mut self.chips[chip];
        if c.gen != gen {
            return;
        }
        c.latch(irq::TX_DONE);
        c.cmd_status = CommandStatus::TxDone;
        let fb = c.fallback;
        c.set_mode(fb);
    }

    pub(super) fn tx_timeout(&mut self, chip: ChipId, gen: u64, tx: u64, t: u64) {
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

    pub(super) fn rx_timeout(&mut self, chip: ChipId, gen: u64) {
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

    pub(super) fn cad_end(&mut self, chip: ChipId, gen: u64, t: u64) {
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
        let id = self.start_transmission(
            Source::Chip(chip),
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
}
