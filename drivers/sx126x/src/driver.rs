//! The SX126x driver: command transport (BUSY before every transaction), initialisation per chip
//! and board, MeshCore LoRa packet settings, transmit, continuous receive, CAD, and fault recovery.
//!
//! Blocking by design; the gateway runs it on a dedicated thread. Every wait has a timeout, and
//! every fault surfaces as a [`DriverError`] that the caller answers with [`Sx126x::recover`]
//! (reset + re-initialise, counted in [`DriverStats::resets`]).

use crate::command::{self, irq, op, reg, ChipMode, Status};
use crate::hal::{BoardLines, HalError, SpiTransfer, WaitOutcome};
use crate::params::{ChipVariant, LoRaParams, RadioSettings};
use crate::wakeup::Wakeup;
use std::time::{Duration, Instant};

/// What went wrong talking to the chip.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("bus or line failure: {0}")]
    Hal(#[from] HalError),
    #[error("BUSY stayed high for {waited:?} before command 0x{opcode:02X}")]
    BusyTimeout { opcode: u8, waited: Duration },
    #[error("no chip answers (MISO reads 0x{0:02X}); check wiring, SPI device and chip select")]
    ChipAbsent(u8),
    #[error("unexpected chip version string {0:?}")]
    WrongChip(String),
    #[error("chip is in {got:?} after {after}, expected {wanted:?}")]
    WrongMode {
        after: &'static str,
        wanted: ChipMode,
        got: ChipMode,
    },
    #[error("device errors 0x{0:04X}: {desc}", desc = command::device_error::describe(*.0).join(", "))]
    DeviceErrors(u16),
    #[error("transmission did not finish within {0:?}")]
    TxTimeout(Duration),
    #[error("invalid radio parameters: {0}")]
    InvalidParams(String),
    #[error("payload of {0} bytes does not fit a LoRa frame (1..=255)")]
    PayloadSize(usize),
}

/// Counters a gateway shows in /status and /metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub crc_errors: u64,
    pub header_errors: u64,
    pub tx_timeouts: u64,
    /// Reset + re-initialisation after a fault.
    pub resets: u64,
    pub busy_timeouts: u64,
    pub wrong_mode: u64,
    pub device_errors: u64,
    /// IRQ reads of 0xFFFF or with no known bit (USB-SPI bridges, noise).
    pub spurious_irqs: u64,
    pub cad_runs: u64,
    pub cad_busy: u64,
    /// Transmissions held back because a frame was arriving ([`Sx126x::receiving`]).
    pub rx_busy: u64,
    /// Preamble detections that never became a frame, cleared as stale.
    pub stale_preambles: u64,
    /// IRQs found by polling after DIO1 gave no edge (dead or missed DIO1).
    pub missed_dio1: u64,
    /// [`Sx126x::receive_or_wake`] waits that ended on a DIO1 edge, on the caller's
    /// [`Wakeup`], or on their timeout: together, the radio thread's wake-ups while receiving.
    /// An idle radio only times out, once per health interval.
    pub waits_dio1: u64,
    pub waits_woken: u64,
    pub waits_timed_out: u64,
}

/// A received frame with its link figures.
#[derive(Debug, Clone, PartialEq)]
pub struct RxPacket {
    pub data: Vec<u8>,
    pub rssi_dbm: f32,
    pub snr_db: f32,
    pub signal_rssi_dbm: f32,
    /// When the driver saw DIO1 (wall clock of this process).
    pub irq_seen: Instant,
}

/// How [`Sx126x::receive_or_wake`] ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RxWait {
    /// A frame arrived.
    Packet(RxPacket),
    /// DIO1 rose for something that is not a frame to hand on (a damaged frame, counted; a
    /// spurious IRQ).
    Nothing,
    /// The caller's [`Wakeup`] was signalled.
    Woken,
    /// The timeout passed. The IRQ register was polled for a missed edge and, when due, the
    /// chip's mode and device errors were checked.
    TimedOut,
}

/// A transmission started with [`Sx126x::start_transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct PendingTx {
    pub toa: Duration,
    chip_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Uninitialised,
    Standby,
    Receiving,
}

/// IRQ sources enabled during receive (everything we want to read, DIO1 only on the ones that
/// end a packet so that a half-received packet does not wake us).
const RX_IRQ_MASK: u16 = irq::RX_DONE
    | irq::TIMEOUT
    | irq::CRC_ERR
    | irq::HEADER_VALID
    | irq::HEADER_ERR
    | irq::PREAMBLE_DETECTED;
const RX_DIO1_MASK: u16 = irq::RX_DONE | irq::HEADER_ERR | irq::TIMEOUT;
const TX_IRQ_MASK: u16 = irq::TX_DONE | irq::TIMEOUT;
const CAD_IRQ_MASK: u16 = irq::CAD_DONE | irq::CAD_DETECTED;

/// BUSY timeout after reset / calibration.
const LONG_BUSY: Duration = Duration::from_secs(1);

/// Default of [`Sx126x::health_interval`]: an idle radio reads the chip's status every 10 s.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);

pub struct Sx126x<S: SpiTransfer, L: BoardLines> {
    spi: S,
    lines: L,
    settings: RadioSettings,
    stats: DriverStats,
    phase: Phase,
    last_health_check: Option<Instant>,
    /// Since when [`Sx126x::receiving`] has seen a reception under way.
    rx_activity_since: Option<Instant>,
    /// How often an idle receiver checks chip mode and device errors (a chip that fell over
    /// gives no signal). A radio thread sleeps at most this long when nothing happens.
    pub health_interval: Duration,
}

impl<S: SpiTransfer, L: BoardLines> Sx126x<S, L> {
    pub fn new(spi: S, lines: L, settings: RadioSettings) -> Self {
        Sx126x {
            spi,
            lines,
            settings,
            stats: DriverStats::default(),
            phase: Phase::Uninitialised,
            last_health_check: None,
            rx_activity_since: None,
            health_interval: DEFAULT_HEALTH_INTERVAL,
        }
    }

    pub fn settings(&self) -> &RadioSettings {
        &self.settings
    }

    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    pub fn lines_mut(&mut self) -> &mut L {
        &mut self.lines
    }

    /// Normal BUSY timeout: a mode change from STBY_RC includes the TCXO start-up delay.
    fn busy_timeout(&self) -> Duration {
        Duration::from_millis(20) + self.settings.tcxo_delay
    }

    // ---------------------------------------------------------------- transport

    fn wait_ready(&mut self, opcode: u8, timeout: Duration) -> Result<(), DriverError> {
        if self.lines.wait_busy_low(timeout)? {
            Ok(())
        } else {
            self.stats.busy_timeouts += 1;
            Err(DriverError::BusyTimeout {
                opcode,
                waited: timeout,
            })
        }
    }

    /// One transaction: wait BUSY low, assert CS, clock, release CS.
    fn transact(&mut self, tx: &[u8], rx: &mut [u8]) -> Result<(), DriverError> {
        let opcode = tx.first().copied().unwrap_or(0);
        self.wait_ready(opcode, self.busy_timeout())?;
        self.lines.chip_select(true)?;
        let r = self.spi.transfer(tx, rx);
        self.lines.chip_select(false)?;
        r?;
        Ok(())
    }

    /// A write command; returns the status byte clocked out with the first parameter (the state
    /// *before* the command ran).
    pub fn command(&mut self, opcode: u8, params: &[u8]) -> Result<Status, DriverError> {
        let mut tx = Vec::with_capacity(1 + params.len());
        tx.push(opcode);
        tx.extend_from_slice(params);
        let mut rx = vec![0u8; tx.len()];
        self.transact(&tx, &mut rx)?;
        let status = rx.get(1).copied().unwrap_or(rx[0]);
        Ok(Status::decode(status))
    }

    /// A read command with `n` data bytes after the status byte.
    pub fn read_command(&mut self, opcode: u8, n: usize) -> Result<(u8, Vec<u8>), DriverError> {
        let mut tx = vec![0u8; 2 + n];
        tx[0] = opcode;
        let mut rx = vec![0u8; tx.len()];
        self.transact(&tx, &mut rx)?;
        Ok((rx[1], rx[2..].to_vec()))
    }

    pub fn get_status(&mut self) -> Result<Status, DriverError> {
        let mut rx = [0u8; 2];
        self.transact(&[op::GET_STATUS, 0], &mut rx)?;
        if command::looks_absent(rx[1]) {
            return Err(DriverError::ChipAbsent(rx[1]));
        }
        Ok(Status::decode(rx[1]))
    }

    pub fn read_registers(&mut self, addr: u16, n: usize) -> Result<Vec<u8>, DriverError> {
        let [hi, lo] = addr.to_be_bytes();
        let mut tx = vec![0u8; 4 + n];
        tx[0] = op::READ_REGISTER;
        tx[1] = hi;
        tx[2] = lo;
        let mut rx = vec![0u8; tx.len()];
        self.transact(&tx, &mut rx)?;
        Ok(rx[4..].to_vec())
    }

    pub fn read_register(&mut self, addr: u16) -> Result<u8, DriverError> {
        Ok(self.read_registers(addr, 1)?.first().copied().unwrap_or(0))
    }

    pub fn write_registers(&mut self, addr: u16, data: &[u8]) -> Result<(), DriverError> {
        let [hi, lo] = addr.to_be_bytes();
        let mut params = vec![hi, lo];
        params.extend_from_slice(data);
        self.command(op::WRITE_REGISTER, &params)?;
        Ok(())
    }

    /// Read-modify-write; always writes back (the errata fixes are defined as a write).
    fn modify_register(&mut self, addr: u16, f: impl Fn(u8) -> u8) -> Result<(), DriverError> {
        let v = self.read_register(addr)?;
        self.write_registers(addr, &[f(v)])
    }

    pub fn read_buffer(&mut self, offset: u8, n: usize) -> Result<Vec<u8>, DriverError> {
        let mut tx = vec![0u8; 3 + n];
        tx[0] = op::READ_BUFFER;
        tx[1] = offset;
        let mut rx = vec![0u8; tx.len()];
        self.transact(&tx, &mut rx)?;
        Ok(rx[3..].to_vec())
    }

    pub fn write_buffer(&mut self, offset: u8, data: &[u8]) -> Result<(), DriverError> {
        let mut params = Vec::with_capacity(1 + data.len());
        params.push(offset);
        params.extend_from_slice(data);
        self.command(op::WRITE_BUFFER, &params)?;
        Ok(())
    }

    pub fn irq_status(&mut self) -> Result<u16, DriverError> {
        let (_, d) = self.read_command(op::GET_IRQ_STATUS, 2)?;
        Ok(u16::from_be_bytes([d[0], d[1]]))
    }

    /// Clears exactly `bits` (never blindly everything: an IRQ latched in between would be lost).
    pub fn clear_irq(&mut self, bits: u16) -> Result<(), DriverError> {
        self.command(op::CLEAR_IRQ_STATUS, &bits.to_be_bytes())?;
        Ok(())
    }

    pub fn device_errors(&mut self) -> Result<u16, DriverError> {
        let (_, d) = self.read_command(op::GET_DEVICE_ERRORS, 2)?;
        Ok(u16::from_be_bytes([d[0], d[1]]))
    }

    pub fn clear_device_errors(&mut self) -> Result<(), DriverError> {
        self.command(op::CLEAR_DEVICE_ERRORS, &[0, 0])?;
        Ok(())
    }

    /// Instantaneous RSSI (meaningful in RX), dBm.
    pub fn rssi_inst(&mut self) -> Result<f32, DriverError> {
        let (_, d) = self.read_command(op::GET_RSSI_INST, 1)?;
        Ok(command::rssi_dbm(d[0]))
    }

    fn set_dio_irq(&mut self, mask: u16, dio1: u16) -> Result<(), DriverError> {
        let [m1, m0] = mask.to_be_bytes();
        let [d1, d0] = dio1.to_be_bytes();
        self.command(op::SET_DIO_IRQ_PARAMS, &[m1, m0, d1, d0, 0, 0, 0, 0])?;
        Ok(())
    }

    fn expect_mode(&mut self, after: &'static str, wanted: ChipMode) -> Result<(), DriverError> {
        let st = self.get_status()?;
        if st.mode == wanted {
            Ok(())
        } else {
            self.stats.wrong_mode += 1;
            Err(DriverError::WrongMode {
                after,
                wanted,
                got: st.mode,
            })
        }
    }

    fn standby(&mut self) -> Result<(), DriverError> {
        self.command(op::SET_STANDBY, &[0x00])?;
        self.phase = Phase::Standby;
        Ok(())
    }

    // ---------------------------------------------------------------- bring-up

    /// Pulses NRESET, waits for the cold start, and retries SetStandby(RC) until the chip reports
    /// STBY_RC (the first commands after reset are sometimes refused).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        self.phase = Phase::Uninitialised;
        self.lines.set_txen(false)?;
        self.lines.set_rxen(false)?;
        self.lines.set_reset(false)?;
        self.lines.delay(Duration::from_millis(1));
        self.lines.set_reset(true)?;
        self.wait_ready(op::SET_STANDBY, LONG_BUSY)?;
        let mut last = None;
        for _ in 0..100 {
            self.command(op::SET_STANDBY, &[0x00])?;
            match self.get_status() {
                Ok(st) if st.mode == ChipMode::StbyRc => return Ok(()),
                Ok(st) => {
                    last = Some(DriverError::WrongMode {
                        after: "reset",
                        wanted: ChipMode::StbyRc,
                        got: st.mode,
                    })
                }
                Err(e) => last = Some(e),
            }
            self.lines.delay(Duration::from_millis(10));
        }
        Err(last.unwrap_or(DriverError::ChipAbsent(0)))
    }

    /// Reads the 16-byte version string at 0x0320.
    pub fn version(&mut self) -> Result<String, DriverError> {
        let raw = self.read_registers(reg::VERSION, 16)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Full initialisation: reset, chip check, TCXO, regulator, calibration, RF switch, packet type,
    /// image calibration, frequency, PA (with the clamp errata), modulation, packet parameters (IQ
    /// errata), sync word, buffer base, RX gain. Leaves the chip in STBY_RC.
    pub fn init(&mut self) -> Result<(), DriverError> {
        let s = self.settings.clone();
        s.lora
            .validate(s.chip)
            .map_err(DriverError::InvalidParams)?;
        self.reset()?;
        let version = self.version()?;
        if !version.starts_with("SX126") {
            if version.bytes().all(|b| b == 0 || b == 0xFF) {
                return Err(DriverError::ChipAbsent(0));
            }
            return Err(DriverError::WrongChip(version));
        }
        if let Some(v) = s.tcxo {
            let delay = command::timeout_units(s.tcxo_delay).to_be_bytes();
            self.command(
                op::SET_DIO3_AS_TCXO_CTRL,
                &[v.code(), delay[1], delay[2], delay[3]],
            )?;
            // The chip tried the crystal first at power-on: XOSC_START_ERR is expected here.
            self.clear_device_errors()?;
        }
        self.command(op::SET_REGULATOR_MODE, &[u8::from(s.dcdc)])?;
        self.command(op::CALIBRATE, &[0x7F])?;
        self.wait_ready(op::CALIBRATE, LONG_BUSY)?;
        let errors = self.device_errors()?;
        if errors != 0 {
            self.stats.device_errors += 1;
            return Err(DriverError::DeviceErrors(errors));
        }
        self.command(
            op::SET_DIO2_AS_RF_SWITCH_CTRL,
            &[u8::from(s.dio2_rf_switch)],
        )?;
        self.command(op::SET_PACKET_TYPE, &[0x01])?;
        self.command(op::SET_RX_TX_FALLBACK_MODE, &[0x20])?;
        self.apply_radio(&s.lora)?;
        if s.rx_boosted_gain && s.chip != ChipVariant::Sx1261 {
            self.write_registers(reg::RX_GAIN, &[0x96])?;
            // Keep the boosted gain over warm sleep.
            self.write_registers(reg::RETENTION_LIST, &[0x01, 0x08, 0xAC])?;
        }
        self.clear_irq(irq::ALL)?;
        self.set_dio_irq(0, 0)?;
        self.expect_mode("init", ChipMode::StbyRc)?;
        self.phase = Phase::Standby;
        Ok(())
    }

    /// Frequency (with image calibration), PA, modulation, packet parameters and sync word.
    /// Must be called in STBY_RC (CalibrateImage is only accepted there).
    fn apply_radio(&mut self, p: &LoRaParams) -> Result<(), DriverError> {
        let (f1, f2) = command::image_calibration_pair(p.frequency_hz);
        self.command(op::CALIBRATE_IMAGE, &[f1, f2])?;
        self.wait_ready(op::CALIBRATE_IMAGE, LONG_BUSY)?;
        self.command(
            op::SET_RF_FREQUENCY,
            &command::frequency_register(p.frequency_hz).to_be_bytes(),
        )?;
        let chip = self.settings.chip;
        if chip != ChipVariant::Sx1261 {
            // Errata 15.2: PA over-protective clamping.
            self.modify_register(reg::TX_CLAMP, |v| v | 0x1E)?;
        }
        let (pa, power) = pa_config(chip, p.power_dbm, p.frequency_hz);
        self.command(op::SET_PA_CONFIG, &pa)?;
        self.command(op::SET_TX_PARAMS, &[power as u8, 0x04])?;
        if let Some(ma) = self.settings.ocp_ma {
            let v = u8::try_from(u32::from(ma) * 10 / 25).unwrap_or(u8::MAX);
            self.write_registers(reg::OCP, &[v])?;
        }
        self.command(
            op::SET_MODULATION_PARAMS,
            &[
                p.spreading_factor,
                p.bandwidth.code(),
                p.coding_rate.code(),
                u8::from(p.ldro()),
            ],
        )?;
        self.set_packet_params(p, 0xFF)?;
        self.write_registers(reg::SYNC_WORD_MSB, &p.sync_word)?;
        self.command(op::SET_BUFFER_BASE_ADDRESS, &[0, 0])?;
        Ok(())
    }

    /// Changes the LoRa settings of an initialised chip (goes through standby; caller re-enters RX).
    pub fn reconfigure(&mut self, p: LoRaParams) -> Result<(), DriverError> {
        p.validate(self.settings.chip)
            .map_err(DriverError::InvalidParams)?;
        self.standby()?;
        self.apply_radio(&p)?;
        self.settings.lora = p;
        Ok(())
    }

    /// SetPacketParams followed by the errata 15.4 IQ fix.
    fn set_packet_params(&mut self, p: &LoRaParams, len: u8) -> Result<(), DriverError> {
        let [pre1, pre0] = p.preamble_len.to_be_bytes();
        self.command(
            op::SET_PACKET_PARAMS,
            &[
                pre1,
                pre0,
                u8::from(p.implicit_header),
                len,
                u8::from(p.crc_on),
                u8::from(p.invert_iq),
            ],
        )?;
        let inverted = p.invert_iq;
        self.modify_register(reg::IQ_POLARITY, |v| {
            if inverted {
                v & !0x04
            } else {
                v | 0x04
            }
        })
    }

    // ---------------------------------------------------------------- transmit

    /// Sends one frame and waits for TxDone. Returns the time on air. On return the chip is in
    /// STBY_RC (the fallback mode); the caller re-enters receive.
    pub fn transmit(&mut self, payload: &[u8]) -> Result<Duration, DriverError> {
        let pending = self.start_transmit(payload)?;
        self.finish_transmit(pending)
    }

    /// First half of [`Sx126x::transmit`]: loads the frame and issues SetTx (from RX directly, as
    /// MeshCore does). The frame is on air when this returns.
    pub fn start_transmit(&mut self, payload: &[u8]) -> Result<PendingTx, DriverError> {
        let len = u8::try_from(payload.len())
            .ok()
            .filter(|&l| l > 0)
            .ok_or(DriverError::PayloadSize(payload.len()))?;
        let p = self.settings.lora;
        let toa = p.time_on_air(payload.len());
        self.set_packet_params(&p, len)?;
        self.set_dio_irq(TX_IRQ_MASK, TX_IRQ_MASK)?;
        self.command(op::SET_BUFFER_BASE_ADDRESS, &[0, 0])?;
        self.write_buffer(0, payload)?;
        self.clear_irq(irq::ALL)?;
        // Errata 15.1: modulation quality at 500 kHz.
        let bw500 = p.bandwidth == crate::params::Bandwidth::Khz500;
        self.modify_register(
            reg::TX_MODULATION,
            |v| if bw500 { v & !0x04 } else { v | 0x04 },
        )?;
        self.lines.set_rxen(false)?;
        self.lines.set_txen(true)?;
        // Chip timeout at 1.5 × ToA + 50 ms; a software guard beyond that catches a dead DIO1.
        let chip_timeout = toa * 3 / 2 + Duration::from_millis(50);
        let units = command::timeout_units(chip_timeout).to_be_bytes();
        self.command(op::SET_TX, &[units[1], units[2], units[3]])?;
        self.phase = Phase::Standby;
        Ok(PendingTx { toa, chip_timeout })
    }

    /// Second half of [`Sx126x::transmit`]: waits for TxDone (or the timeout).
    pub fn finish_transmit(&mut self, pending: PendingTx) -> Result<Duration, DriverError> {
        let PendingTx { toa, chip_timeout } = pending;
        let guard = chip_timeout + Duration::from_millis(100) + toa;
        let raised = self.lines.dio1()? || self.lines.wait_dio1_rising(guard)?;
        let bits = self.irq_status()?;
        self.lines.set_txen(false)?;
        self.clear_irq(bits)?;
        if bits & irq::TX_DONE != 0 && bits != 0xFFFF {
            if !raised {
                self.stats.missed_dio1 += 1;
            }
            self.stats.tx_packets += 1;
            return Ok(toa);
        }
        self.stats.tx_timeouts += 1;
        if !raised {
            tracing::warn!(irq = bits, "DIO1 never rose during transmit");
        }
        Err(DriverError::TxTimeout(if raised {
            chip_timeout
        } else {
            guard
        }))
    }

    // ---------------------------------------------------------------- receive

    /// Arms continuous receive and checks that the chip really entered RX.
    pub fn start_receive(&mut self) -> Result<(), DriverError> {
        let p = self.settings.lora;
        self.standby()?;
        self.set_dio_irq(RX_IRQ_MASK, RX_DIO1_MASK)?;
        self.command(op::SET_BUFFER_BASE_ADDRESS, &[0, 0])?;
        self.clear_irq(irq::ALL)?;
        self.set_packet_params(&p, 0xFF)?;
        self.lines.set_txen(false)?;
        self.lines.set_rxen(true)?;
        self.command(op::SET_RX, &[0xFF, 0xFF, 0xFF])?;
        self.expect_mode("SetRx", ChipMode::Rx)?;
        self.phase = Phase::Receiving;
        self.last_health_check = None;
        self.rx_activity_since = None;
        Ok(())
    }

    /// Waits up to `timeout` for a packet. `Ok(None)` when nothing arrived (or a damaged packet was
    /// counted and dropped). Periodically verifies that the chip is still in RX with no device
    /// errors, so a chip that silently fell out of RX is noticed.
    pub fn receive(&mut self, timeout: Duration) -> Result<Option<RxPacket>, DriverError> {
        if self.phase != Phase::Receiving {
            self.start_receive()?;
        }
        let raised = self.lines.dio1()? || self.lines.wait_dio1_rising(timeout)?;
        if !raised {
            return self.poll_after_timeout();
        }
        let irq_seen = Instant::now();
        self.handle_rx_irq(irq_seen)
    }

    /// Is a frame arriving right now, or waiting to be read? Going to standby (CAD, transmit)
    /// would abort it: a half-duplex radio must not talk over a frame it is hearing. Checks the
    /// latched IRQ flags as the firmware does before it transmits (MeshCore
    /// `src/helpers/CustomSX1262.h`, `isReceiving()`: PreambleDetected or HeaderValid). A
    /// detection that has not ended within the longest frame's time on air (a preamble of another
    /// network whose sync word did not match, which never ends in a header error) is cleared as
    /// stale and counted. Only meaningful while receiving; `false` otherwise.
    pub fn receiving(&mut self) -> Result<bool, DriverError> {
        if self.phase != Phase::Receiving {
            self.rx_activity_since = None;
            return Ok(false);
        }
        let bits = self.irq_status()?;
        if bits == 0xFFFF {
            return Ok(false);
        }
        if bits & RX_DIO1_MASK != 0 {
            // A frame ended and is waiting for the receive path (which clears the flags).
            self.stats.rx_busy += 1;
            return Ok(true);
        }
        if bits & (irq::PREAMBLE_DETECTED | irq::HEADER_VALID) == 0 {
            self.rx_activity_since = None;
            return Ok(false);
        }
        let now = Instant::now();
        let since = *self.rx_activity_since.get_or_insert(now);
        let longest = self.settings.lora.time_on_air(255);
        if now.duration_since(since) > longest {
            self.stats.stale_preambles += 1;
            self.rx_activity_since = None;
            self.clear_irq(bits & (irq::PREAMBLE_DETECTED | irq::HEADER_VALID))?;
            return Ok(false);
        }
        self.stats.rx_busy += 1;
        Ok(true)
    }

    /// [`Sx126x::receive`] that also ends when `wakeup` is signalled, sleeping until then: no
    /// SPI traffic and no wake-up while nothing happens. This is the radio thread's idle wait —
    /// DIO1 for frames, the wake-up for frames queued to send, and `timeout` (at most
    /// [`Sx126x::health_interval`] when idle) for the health check.
    pub fn receive_or_wake(
        &mut self,
        timeout: Duration,
        wakeup: &Wakeup,
    ) -> Result<RxWait, DriverError> {
        if self.phase != Phase::Receiving {
            self.start_receive()?;
        }
        let outcome = if self.lines.dio1()? {
            WaitOutcome::Dio1
        } else {
            self.lines.wait_dio1_or_wakeup(timeout, wakeup)?
        };
        let found = match outcome {
            WaitOutcome::Woken => {
                self.stats.waits_woken += 1;
                return Ok(RxWait::Woken);
            }
            WaitOutcome::Dio1 => {
                self.stats.waits_dio1 += 1;
                self.handle_rx_irq(Instant::now())?
            }
            WaitOutcome::TimedOut => {
                self.stats.waits_timed_out += 1;
                match self.poll_after_timeout()? {
                    None => return Ok(RxWait::TimedOut),
                    found => found,
                }
            }
        };
        Ok(found.map_or(RxWait::Nothing, RxWait::Packet))
    }

    /// A receive wait ended without an edge: edges get missed on loaded systems (and DIO1 can be
    /// miswired), so poll the IRQ register as a fallback, then run the health check when due.
    fn poll_after_timeout(&mut self) -> Result<Option<RxPacket>, DriverError> {
        let bits = self.irq_status()?;
        if bits != 0xFFFF && bits & RX_DIO1_MASK != 0 {
            self.stats.missed_dio1 += 1;
            return self.handle_rx_irq(Instant::now());
        }
        self.idle_check().map(|()| None)
    }

    fn idle_check(&mut self) -> Result<(), DriverError> {
        let now = Instant::now();
        let due = self
            .last_health_check
            .is_none_or(|t| now.duration_since(t) >= self.health_interval);
        if !due {
            return Ok(());
        }
        self.last_health_check = Some(now);
        let st = self.get_status()?;
        if st.mode != ChipMode::Rx {
            self.stats.wrong_mode += 1;
            return Err(DriverError::WrongMode {
                after: "idle receive",
                wanted: ChipMode::Rx,
                got: st.mode,
            });
        }
        let errors = self.device_errors()?;
        if errors != 0 {
            self.stats.device_errors += 1;
            return Err(DriverError::DeviceErrors(errors));
        }
        Ok(())
    }

    fn handle_rx_irq(&mut self, irq_seen: Instant) -> Result<Option<RxPacket>, DriverError> {
        // Whatever was under way has ended (or is read now): a new detection starts afresh.
        self.rx_activity_since = None;
        let bits = self.irq_status()?;
        if bits == 0xFFFF || bits & RX_IRQ_MASK == 0 {
            self.stats.spurious_irqs += 1;
            self.clear_irq(bits)?;
            return Ok(None);
        }
        if bits & irq::RX_DONE == 0 {
            // HeaderErr or Timeout: nothing to read; the chip keeps listening in continuous mode.
            if bits & irq::HEADER_ERR != 0 {
                self.stats.header_errors += 1;
            }
            self.clear_irq(bits)?;
            if bits & irq::TIMEOUT != 0 {
                self.phase = Phase::Standby;
            }
            return Ok(None);
        }
        if bits & irq::CRC_ERR != 0
            || (bits & irq::HEADER_ERR != 0 && bits & irq::HEADER_VALID == 0)
        {
            if bits & irq::CRC_ERR != 0 {
                self.stats.crc_errors += 1;
            } else {
                self.stats.header_errors += 1;
            }
            self.clear_irq(bits)?;
            return Ok(None);
        }
        let (_, rb) = self.read_command(op::GET_RX_BUFFER_STATUS, 2)?;
        let (len, start) = (rb[0], rb[1]);
        let data = self.read_buffer(start, usize::from(len))?;
        let (_, ps) = self.read_command(op::GET_PACKET_STATUS, 3)?;
        self.clear_irq(bits)?;
        if len == 0 {
            self.stats.spurious_irqs += 1;
            return Ok(None);
        }
        self.stats.rx_packets += 1;
        Ok(Some(RxPacket {
            data,
            rssi_dbm: command::rssi_dbm(ps[0]),
            snr_db: command::snr_db(ps[1]),
            signal_rssi_dbm: command::rssi_dbm(ps[2]),
            irq_seen,
        }))
    }

    // ---------------------------------------------------------------- CAD

    /// Channel activity detection over 4 symbols (8 from SF10 up); `true` = someone is sending.
    /// Leaves the chip in STBY_RC; the caller re-enters receive.
    pub fn channel_busy(&mut self) -> Result<bool, DriverError> {
        let p = self.settings.lora;
        self.standby()?;
        self.set_dio_irq(CAD_IRQ_MASK, CAD_IRQ_MASK)?;
        self.clear_irq(irq::ALL)?;
        let (code, symbols) = if p.spreading_factor >= 10 {
            (3, 8)
        } else {
            (2, 4)
        };
        self.command(
            op::SET_CAD_PARAMS,
            &[code, p.spreading_factor + 13, 10, 0x00, 0, 0, 0],
        )?;
        self.command(op::SET_CAD, &[])?;
        self.stats.cad_runs += 1;
        let window = p.symbol_time() * (symbols + 1) + self.busy_timeout();
        let raised = self.lines.dio1()? || self.lines.wait_dio1_rising(window)?;
        let bits = self.irq_status()?;
        self.clear_irq(bits)?;
        if !raised || bits & irq::CAD_DONE == 0 || bits == 0xFFFF {
            self.stats.wrong_mode += 1;
            return Err(DriverError::WrongMode {
                after: "SetCad",
                wanted: ChipMode::StbyRc,
                got: self.get_status()?.mode,
            });
        }
        let busy = bits & irq::CAD_DETECTED != 0;
        if busy {
            self.stats.cad_busy += 1;
        }
        Ok(busy)
    }

    // ---------------------------------------------------------------- faults

    /// Reset + full re-initialisation + receive, counted. Call after any [`DriverError`] other
    /// than invalid parameters.
    pub fn recover(&mut self) -> Result<(), DriverError> {
        self.stats.resets += 1;
        tracing::warn!(resets = self.stats.resets, "resetting the radio chip");
        self.init()?;
        self.start_receive()
    }
}

/// SetPaConfig bytes and SetTxParams power for a wanted output, per the datasheet's optimal rows:
/// pick the row whose target is ≥ wanted and lower SetTxParams by the difference.
pub fn pa_config(chip: ChipVariant, power_dbm: i8, frequency_hz: u64) -> ([u8; 4], i8) {
    match chip {
        ChipVariant::Sx1261 => {
            let p = power_dbm.clamp(-17, 15);
            if p >= 15 && frequency_hz > 400_000_000 {
                ([0x06, 0x00, 0x01, 0x01], 14)
            } else if p >= 11 {
                ([0x04, 0x00, 0x01, 0x01], p.min(14))
            } else {
                ([0x01, 0x00, 0x01, 0x01], p.saturating_add(3).min(13))
            }
        }
        ChipVariant::Sx1268 => {
            let p = power_dbm.clamp(-9, 22);
            ([0x04, 0x07, 0x00, 0x01], p)
        }
        ChipVariant::Sx1262 => {
            let p = power_dbm.clamp(-9, 22);
            let (row, target) = match p {
                21..=22 => ([0x04, 0x07, 0x00, 0x01], 22),
                18..=20 => ([0x03, 0x05, 0x00, 0x01], 20),
                15..=17 => ([0x02, 0x03, 0x00, 0x01], 17),
                _ => ([0x02, 0x02, 0x00, 0x01], 14),
            };
            (row, 22 - (target - p))
        }
    }
}
