//! State of one emulated SX126x: mode, registers, data buffer, IRQ latch, radio configuration as
//! the chip holds it, profile, counters and injected faults. Command execution lives in
//! `exec.rs` (it needs the clock and the air); this file holds the data and the pure helpers.

use crate::command::{irq, reg, ChipMode, CommandStatus, Status};
use crate::params::{Bandwidth, ChipVariant, CodingRate, LoRaParams};
use std::collections::{BTreeMap, HashMap};

/// What kind of chip on what kind of board.
#[derive(Debug, Clone, PartialEq)]
pub struct ChipProfile {
    pub variant: ChipVariant,
    /// The board has a TCXO on DIO3: until SetDIO3AsTcxoCtrl, the 32 MHz clock never starts.
    pub tcxo: bool,
    /// Gain of an external PA after the chip (E22-900M30S ≈ +8 dB).
    pub external_pa_db: f32,
}

impl ChipProfile {
    /// The chip as a board preset wires it.
    pub fn for_board(board: &crate::presets::BoardPreset) -> Self {
        ChipProfile {
            variant: board.chip,
            tcxo: board.tcxo.is_some(),
            external_pa_db: 0.0,
        }
    }

    pub fn sx1262() -> Self {
        ChipProfile {
            variant: ChipVariant::Sx1262,
            tcxo: false,
            external_pa_db: 0.0,
        }
    }
}

/// Injectable faults (emulator sheet §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// BUSY goes high and stays high until NRESET is pulsed.
    StuckBusy,
    /// The next `n` SetRx commands fail to execute (status 0x5, chip stays in standby).
    RefuseRx(u32),
    /// DIO1 never rises until NRESET is pulsed (IRQs still latch).
    DeadDio1,
    /// MISO reads all 0x00 (chip absent / not powered).
    Absent,
    /// The next received packet fails its CRC.
    CrcErrorNext,
    /// The next GetIrqStatus returns 0xFFFF.
    SpuriousIrqRead,
    /// Raise these device-error bits now.
    DeviceErrors(u16),
    /// The chip silently drops to STBY_RC (as after a brown-out glitch).
    FallOutOfRx,
}

/// Protocol-violation and activity counters, for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChipCounters {
    /// Transactions started while BUSY was high (dropped, as on silicon).
    pub busy_violations: u64,
    /// Commands refused in the current state (status 0x5).
    pub exec_failures: u64,
    /// Unknown opcode or too few parameters (status 0x4).
    pub processing_errors: u64,
    /// TX started on SX1262/8 without the 0x08D8 clamp fix since reset.
    pub missing_clamp_fix: u64,
    /// SetPacketParams not followed by the 0x0736 IQ fix before the next TX/RX.
    pub missing_iq_fix: u64,
    /// ReadBuffer after RxDone from an offset other than RxStartBufferPointer.
    pub read_wrong_offset: u64,
    /// TX with a GPIO RX switch line high.
    pub tx_with_rxen: u64,
    pub transactions: u64,
    pub resets: u64,
    pub tx_started: u64,
    pub rx_done: u64,
    pub wakes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmuMode {
    Reset,
    Sleep { warm: bool },
    StbyRc,
    StbyXosc,
    Fs,
    Tx { tx_id: u64 },
    Rx { continuous: bool },
    Cad,
}

impl EmuMode {
    pub fn status_mode(self) -> ChipMode {
        match self {
            EmuMode::StbyRc | EmuMode::Reset | EmuMode::Sleep { .. } => ChipMode::StbyRc,
            EmuMode::StbyXosc => ChipMode::StbyXosc,
            EmuMode::Fs => ChipMode::Fs,
            EmuMode::Tx { .. } => ChipMode::Tx,
            EmuMode::Rx { .. } | EmuMode::Cad => ChipMode::Rx,
        }
    }
}

/// What becomes true when BUSY falls after a mode-changing command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    None,
    StartTx {
        timeout_ns: Option<u64>,
    },
    StartRx {
        continuous: bool,
        timeout_ns: Option<u64>,
    },
    StartCad,
}

/// Receiver lock on a transmission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lock {
    pub tx_id: u64,
    pub power_dbm: f32,
    pub header_done: bool,
}

#[derive(Debug, Clone)]
pub struct Chip {
    pub profile: ChipProfile,
    pub node: u64,
    pub mode: EmuMode,
    /// Bumped on every mode change so that stale timed events are ignored.
    pub gen: u64,
    pub busy_until: u64,
    pub busy_stuck: bool,
    pub pending: Pending,
    pub cmd_status: CommandStatus,
    pub regs: BTreeMap<u16, u8>,
    pub buffer: [u8; 256],
    pub tx_base: u8,
    pub rx_base: u8,
    pub rx_ptr: u8,
    pub rx_len: u8,
    pub rx_start: u8,
    pub rx_done_unread: bool,
    pub irq_status: u16,
    pub irq_mask: u16,
    pub dio1_mask: u16,
    pub dio1_level: bool,
    pub dio1_dead: bool,
    /// Count of DIO1 rising edges (waiters compare against it).
    pub dio1_edges: u64,
    /// Real time of the last DIO1 rising edge (latency measurements).
    pub dio1_rise_at: Option<std::time::Instant>,
    /// World time of the last DIO1 rising edge (ns).
    pub dio1_rise_ns: u64,
    /// World time now (ns), maintained by the world before latching.
    pub now_ns: u64,
    pub packet_type_lora: bool,
    pub frequency_reg: u32,
    pub sf: u8,
    pub bw_code: u8,
    pub cr_code: u8,
    pub ldro: bool,
    pub preamble: u16,
    pub implicit_header: bool,
    pub payload_len: u8,
    pub crc_on: bool,
    pub invert_iq: bool,
    pub power_dbm: i8,
    pub pa_device_sel: u8,
    pub fallback: EmuMode,
    pub dio2_rf_switch: bool,
    pub tcxo_configured: bool,
    pub tcxo_delay_ns: u64,
    pub device_errors: u16,
    pub cad_symbols: u8,
    pub cad_exit_rx: bool,
    pub cad_started: u64,
    pub lock: Option<Lock>,
    pub rx_since: u64,
    /// Packet status of the last packet: raw RSSI, SNR, signal RSSI.
    pub packet_status: [u8; 3],
    pub last_rssi_inst: u8,
    pub stats: [u16; 3],
    pub clamp_fixed: bool,
    pub iq_fix_due: bool,
    pub txen: bool,
    pub rxen: bool,
    pub nreset_high: bool,
    pub faults: HashMap<&'static str, u32>,
    pub absent: bool,
    pub counters: ChipCounters,
}

fn default_registers(variant: ChipVariant) -> BTreeMap<u16, u8> {
    let mut r = BTreeMap::new();
    let version: &[u8; 16] = match variant {
        ChipVariant::Sx1268 => b"SX1268 V2D 2D02\0",
        _ => b"SX1261 V2D 2D02\0",
    };
    for (i, b) in version.iter().enumerate() {
        r.insert(reg::VERSION + i as u16, *b);
    }
    r.insert(reg::SYNC_WORD_MSB, 0x14);
    r.insert(reg::SYNC_WORD_LSB, 0x24);
    r.insert(reg::IQ_POLARITY, 0x0D);
    r.insert(reg::TX_MODULATION, 0x04);
    r.insert(reg::TX_CLAMP, 0xC8);
    r.insert(reg::OCP, 0x18);
    r.insert(reg::RX_GAIN, 0x94);
    r
}

impl Chip {
    pub fn new(profile: ChipProfile, node: u64) -> Self {
        let mut c = Chip::blank(profile, node);
        c.power_on_state();
        c
    }

    /// Everything a cold start restores.
    pub fn power_on_state(&mut self) {
        let keep = (
            self.profile.clone(),
            self.node,
            self.counters.clone(),
            self.gen,
        );
        let txen = self.txen;
        let rxen = self.rxen;
        let absent = self.absent;
        *self = Chip {
            regs: default_registers(keep.0.variant),
            ..Chip::blank(keep.0, keep.1)
        };
        self.counters = keep.2;
        self.gen = keep.3 + 1;
        self.txen = txen;
        self.rxen = rxen;
        self.absent = absent;
        if self.profile.tcxo {
            // The chip tried the crystal at power-on and found nothing.
            self.device_errors |= crate::command::device_error::XOSC_START;
        }
    }

    fn blank(profile: ChipProfile, node: u64) -> Chip {
        Chip {
            profile,
            node,
            mode: EmuMode::StbyRc,
            gen: 0,
            busy_until: 0,
            busy_stuck: false,
            pending: Pending::None,
            cmd_status: CommandStatus::Ok,
            regs: BTreeMap::new(),
            buffer: [0; 256],
            tx_base: 0,
            rx_base: 0,
            rx_ptr: 0,
            rx_len: 0,
            rx_start: 0,
            rx_done_unread: false,
            irq_status: 0,
            irq_mask: 0,
            dio1_mask: 0,
            dio1_level: false,
            dio1_dead: false,
            dio1_edges: 0,
            dio1_rise_at: None,
            dio1_rise_ns: 0,
            now_ns: 0,
            packet_type_lora: false,
            frequency_reg: 0,
            sf: 7,
            bw_code: Bandwidth::Khz125.code(),
            cr_code: 1,
            ldro: false,
            preamble: 8,
            implicit_header: false,
            payload_len: 0xFF,
            crc_on: true,
            invert_iq: false,
            power_dbm: 14,
            pa_device_sel: 0,
            fallback: EmuMode::StbyRc,
            dio2_rf_switch: false,
            tcxo_configured: false,
            tcxo_delay_ns: 0,
            device_errors: 0,
            cad_symbols: 2,
            cad_exit_rx: false,
            cad_started: 0,
            lock: None,
            rx_since: 0,
            packet_status: [0; 3],
            last_rssi_inst: 0xFF,
            stats: [0; 3],
            clamp_fixed: false,
            iq_fix_due: false,
            txen: false,
            rxen: false,
            nreset_high: true,
            faults: HashMap::new(),
            absent: false,
            counters: ChipCounters::default(),
        }
    }

    pub fn status_byte(&self) -> u8 {
        Status {
            mode: self.mode.status_mode(),
            command: self.cmd_status,
        }
        .encode()
    }

    pub fn reg(&self, addr: u16) -> u8 {
        self.regs.get(&addr).copied().unwrap_or(0)
    }

    /// Latch events through IrqMask and recompute DIO1; returns true on a DIO1 rising edge.
    pub fn latch(&mut self, events: u16) -> bool {
        self.irq_status |= events & self.irq_mask;
        self.update_dio1()
    }

    pub fn update_dio1(&mut self) -> bool {
        let level = !self.dio1_dead && (self.irq_status & self.dio1_mask) != 0;
        let rose = level && !self.dio1_level;
        self.dio1_level = level;
        if rose {
            self.dio1_edges += 1;
            self.dio1_rise_at = Some(std::time::Instant::now());
            self.dio1_rise_ns = self.now_ns;
        }
        rose
    }

    pub fn set_mode(&mut self, mode: EmuMode) {
        if !matches!(mode, EmuMode::Rx { .. }) {
            self.lock = None;
        }
        self.mode = mode;
        self.gen += 1;
    }

    /// The LoRa parameters the chip currently holds.
    pub fn lora(&self) -> LoRaParams {
        LoRaParams {
            frequency_hz: crate::command::frequency_from_register(self.frequency_reg),
            bandwidth: Bandwidth::from_code(self.bw_code).unwrap_or(Bandwidth::Khz125),
            spreading_factor: self.sf,
            coding_rate: CodingRate::from_code(self.cr_code).unwrap_or(CodingRate::Cr4_5),
            preamble_len: self.preamble,
            crc_on: self.crc_on,
            implicit_header: self.implicit_header,
            invert_iq: self.invert_iq,
            sync_word: [self.reg(reg::SYNC_WORD_MSB), self.reg(reg::SYNC_WORD_LSB)],
            power_dbm: self.power_dbm,
        }
    }

    /// Radiated power: SetTxParams clipped to the PA, plus the board's external PA.
    pub fn radiated_dbm(&self) -> f32 {
        let (lo, hi) = if self.pa_device_sel == 1 {
            (-17, 15)
        } else {
            (-9, 22)
        };
        f32::from(self.power_dbm.clamp(lo, hi)) + self.profile.external_pa_db
    }

    pub fn noise_figure(&self, base: f32) -> f32 {
        if self.reg(reg::RX_GAIN) == 0x96 {
            base
        } else {
            base + 3.0
        }
    }

    pub fn take_fault(&mut self, key: &'static str) -> bool {
        match self.faults.get_mut(key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

/// Minimum parameter bytes after the opcode for each write-type command; `None` = unknown.
pub fn param_len(opcode: u8) -> Option<usize> {
    use crate::command::op;
    Some(match opcode {
        op::SET_STANDBY
        | op::SET_SLEEP
        | op::STOP_TIMER_ON_PREAMBLE
        | op::SET_LORA_SYMB_NUM_TIMEOUT
        | op::SET_REGULATOR_MODE
        | op::CALIBRATE
        | op::SET_RX_TX_FALLBACK_MODE
        | op::SET_DIO2_AS_RF_SWITCH_CTRL
        | op::SET_PACKET_TYPE => 1,
        op::SET_FS | op::SET_CAD | op::SET_TX_CONTINUOUS_WAVE | op::SET_TX_INFINITE_PREAMBLE => 0,
        op::SET_TX | op::SET_RX => 3,
        op::SET_RX_DUTY_CYCLE => 6,
        op::CALIBRATE_IMAGE
        | op::CLEAR_IRQ_STATUS
        | op::SET_TX_PARAMS
        | op::SET_BUFFER_BASE_ADDRESS
        | op::CLEAR_DEVICE_ERRORS => 2,
        op::SET_PA_CONFIG
        | op::SET_DIO3_AS_TCXO_CTRL
        | op::SET_RF_FREQUENCY
        | op::SET_MODULATION_PARAMS => 4,
        op::SET_DIO_IRQ_PARAMS => 8,
        op::SET_PACKET_PARAMS => 6,
        op::SET_CAD_PARAMS => 7,
        op::WRITE_REGISTER => 2,
        op::WRITE_BUFFER => 1,
        op::RESET_STATS => 6,
        _ => return None,
    })
}

/// Bytes of data after the status byte for read-type commands; `None` = not a read command.
pub fn read_len(opcode: u8) -> Option<usize> {
    use crate::command::op;
    Some(match opcode {
        op::GET_STATUS => 0,
        op::GET_IRQ_STATUS | op::GET_RX_BUFFER_STATUS | op::GET_DEVICE_ERRORS => 2,
        op::GET_PACKET_STATUS => 3,
        op::GET_RSSI_INST | op::GET_PACKET_TYPE => 1,
        op::GET_STATS => 6,
        _ => return None,
    })
}

/// IRQ bits a receiver reports for a finished packet, by damage.
pub fn rx_end_bits(crc_failed: bool, has_crc: bool) -> u16 {
    if crc_failed && has_crc {
        irq::RX_DONE | irq::CRC_ERR
    } else {
        irq::RX_DONE
    }
}
