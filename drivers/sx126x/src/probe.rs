//! Bring-up diagnostics: reset the chip, read status, version, device errors and the sync-word
//! registers, try a full initialisation, and say in plain words what is wrong and what to check.
//! Works on any back-end, so the diagnostics are tested against the emulator.

use crate::command::reg;
use crate::command::{device_error, ChipMode};
use crate::driver::{DriverError, Sx126x};
use crate::hal::{BoardLines, HalError, SpiTransfer};

/// One line of the probe's report.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStep {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
    /// What to do about it (only on failures and warnings).
    pub hint: Option<String>,
}

impl std::fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "[{mark}] {}: {}", self.what, self.detail)?;
        if let Some(h) = &self.hint {
            write!(f, "\n       → {h}")?;
        }
        Ok(())
    }
}

/// Explains a failure to open the SPI device or a GPIO line.
pub fn explain_open_error(err: &HalError) -> String {
    let text = err.to_string();
    let is_spi = text.contains("spidev") || text.contains("SPI");
    let kind = err.io_kind();
    match kind {
        Some(std::io::ErrorKind::PermissionDenied) if is_spi => format!(
            "{text} → add the user to group spi (`sudo usermod -aG spi <user>`, then log in again) or run as root"
        ),
        Some(std::io::ErrorKind::PermissionDenied) => format!(
            "{text} → add the user to group gpio (`sudo usermod -aG gpio <user>`, then log in again) or run as root"
        ),
        Some(std::io::ErrorKind::NotFound) if is_spi => format!(
            "{text} → SPI is not enabled or the bus/chip-select is wrong: put `dtparam=spi=on` in /boot/firmware/config.txt and reboot, and check the configured spidev path"
        ),
        Some(std::io::ErrorKind::NotFound) => format!(
            "{text} → no such GPIO chip: check the gpiochip path (Raspberry Pi 5: /dev/gpiochip0 on kernels from 6.6.45, /dev/gpiochip4 before)"
        ),
        Some(std::io::ErrorKind::ResourceBusy) => format!(
            "{text} → that line is already in use (by the SPI controller as a chip select, or by another program such as meshtasticd): check the pin numbers and stop the other user"
        ),
        Some(std::io::ErrorKind::InvalidInput) => {
            format!("{text} → the line number does not exist on this GPIO chip: check the pin numbers and the gpiochip path")
        }
        _ => text,
    }
}

/// Explains a driver error in terms of what to check on the board.
pub fn explain_driver_error(err: &DriverError) -> String {
    match err {
        DriverError::BusyTimeout { .. } => format!(
            "{err} → BUSY never went low: check the BUSY pin number, the NRESET pin number and that the module is powered (some HATs need an enable pin held high: radio.hold_high_pins)"
        ),
        DriverError::ChipAbsent(_) => format!(
            "{err} → nothing answers on MISO: check the SPI device, the chip-select (manual NSS pin?), the wiring and the module's power (some HATs need an enable pin held high: radio.hold_high_pins)"
        ),
        DriverError::WrongChip(_) => format!("{err} → this does not look like an SX126x; check the chip select and the board preset"),
        DriverError::DeviceErrors(bits) if bits & device_error::XOSC_START != 0 => format!(
            "{err} → the 32 MHz reference did not start: if the module has a TCXO (most E22 modules and 1 W HATs do), set the TCXO voltage (usually 1.8 V); if it has a crystal, remove the TCXO setting"
        ),
        DriverError::WrongMode { .. } => format!(
            "{err} → the chip refused to change mode: usually a missing or wrong TCXO setting, or an unstable supply"
        ),
        DriverError::Hal(h) => explain_open_error(h),
        other => other.to_string(),
    }
}

/// Runs the probe sequence. Stops at the first step that makes the rest meaningless.
pub fn probe<S: SpiTransfer, L: BoardLines>(drv: &mut Sx126x<S, L>) -> Vec<ProbeStep> {
    let mut steps = Vec::new();
    match drv.reset() {
        Ok(()) => steps.push(ProbeStep {
            what: "reset",
            ok: true,
            detail: "NRESET pulsed, BUSY went low, chip in STBY_RC".into(),
            hint: None,
        }),
        Err(e) => {
            steps.push(ProbeStep {
                what: "reset",
                ok: false,
                detail: e.to_string(),
                hint: Some(explain_driver_error(&e)),
            });
            return steps;
        }
    }
    if let Some(step) = check_reset_and_busy(drv) {
        let ok = step.ok;
        steps.push(step);
        if !ok {
            return steps;
        }
    }
    match drv.get_status() {
        Ok(st) => steps.push(ProbeStep {
            what: "status",
            ok: st.mode == ChipMode::StbyRc,
            detail: format!("mode {:?}, last command {:?}", st.mode, st.command),
            hint: None,
        }),
        Err(e) => {
            steps.push(ProbeStep {
                what: "status",
                ok: false,
                detail: e.to_string(),
                hint: Some(explain_driver_error(&e)),
            });
            return steps;
        }
    }
    match drv.version() {
        Ok(v) => {
            let ok = v.starts_with("SX126");
            steps.push(ProbeStep {
                what: "version",
                ok,
                detail: format!("{v:?}"),
                hint: (!ok).then(|| {
                    "the version register does not read \"SX126…\": wrong chip select or not an SX126x".to_string()
                }),
            });
        }
        Err(e) => steps.push(ProbeStep {
            what: "version",
            ok: false,
            detail: e.to_string(),
            hint: Some(explain_driver_error(&e)),
        }),
    }
    match drv.device_errors() {
        Ok(bits) => {
            let tcxo_configured = drv.settings().tcxo.is_some();
            let names = device_error::describe(bits);
            let xosc_only = bits == device_error::XOSC_START;
            steps.push(ProbeStep {
                what: "device errors",
                ok: bits == 0 || (xosc_only && tcxo_configured),
                detail: if bits == 0 {
                    "none".into()
                } else {
                    format!("0x{bits:04X} ({})", names.join(", "))
                },
                hint: match (bits, tcxo_configured) {
                    (0, _) => None,
                    (b, true) if b == device_error::XOSC_START => Some(
                        "expected before the TCXO is switched on; initialisation clears it".into(),
                    ),
                    (b, false) if b & device_error::XOSC_START != 0 => Some(
                        "the module seems to have a TCXO: set the TCXO voltage (usually 1.8 V) in the radio config".into(),
                    ),
                    _ => Some("initialisation recalibrates; if errors persist the module may be damaged".into()),
                },
            });
        }
        Err(e) => steps.push(ProbeStep {
            what: "device errors",
            ok: false,
            detail: e.to_string(),
            hint: Some(explain_driver_error(&e)),
        }),
    }
    match drv.read_registers(reg::SYNC_WORD_MSB, 2) {
        Ok(sw) => steps.push(ProbeStep {
            what: "sync word",
            ok: sw.len() == 2 && sw[0] & 0x0F == 4 && sw[1] & 0x0F == 4,
            detail: format!(
                "registers 0x0740/0x0741 = {:02X} {:02X}{}",
                sw.first().copied().unwrap_or(0),
                sw.get(1).copied().unwrap_or(0),
                if sw == [0x14, 0x24] {
                    " (MeshCore private 0x12)"
                } else {
                    ""
                }
            ),
            hint: None,
        }),
        Err(e) => steps.push(ProbeStep {
            what: "sync word",
            ok: false,
            detail: e.to_string(),
            hint: Some(explain_driver_error(&e)),
        }),
    }
    match drv.init().and_then(|()| drv.start_receive()) {
        Ok(()) => {
            steps.push(ProbeStep {
                what: "initialise + receive",
                ok: true,
                detail: format!(
                    "{} ready at {:.3} MHz, SF{}, {} kHz",
                    drv.settings().chip.name(),
                    drv.settings().lora.frequency_hz as f64 / 1e6,
                    drv.settings().lora.spreading_factor,
                    drv.settings().lora.bandwidth.khz()
                ),
                hint: None,
            });
            steps.push(check_dio1(drv));
        }
        Err(e) => steps.push(ProbeStep {
            what: "initialise + receive",
            ok: false,
            detail: e.to_string(),
            hint: Some(explain_driver_error(&e)),
        }),
    }
    steps
}

/// NRESET and BUSY wiring: BUSY must read high while NRESET holds the chip in reset, and a
/// register written before the pulse must be back at its default after it. A BUSY line on the
/// wrong pin reads its pull instead (the driver would then talk to a busy chip), and an NRESET on
/// the wrong pin leaves the chip running (recovery after a fault would not reset it).
/// `None` when the bus itself fails (the other steps report that).
fn check_reset_and_busy<S: SpiTransfer, L: BoardLines>(
    drv: &mut Sx126x<S, L>,
) -> Option<ProbeStep> {
    const MARK: [u8; 2] = [0x3A, 0x5C];
    drv.write_registers(reg::SYNC_WORD_MSB, &MARK).ok()?;
    let lines = drv.lines_mut();
    lines.set_reset(false).ok()?;
    lines.delay(std::time::Duration::from_millis(1));
    let busy_in_reset = lines.busy().ok()?;
    lines.set_reset(true).ok()?;
    drv.reset().ok()?;
    let survived = drv.read_registers(reg::SYNC_WORD_MSB, 2).ok()? == MARK;
    let step = |ok, detail: &str, hint: Option<&str>| ProbeStep {
        what: "NRESET and BUSY lines",
        ok,
        detail: detail.to_string(),
        hint: hint.map(str::to_string),
    };
    Some(match (survived, busy_in_reset) {
        (false, true) => step(true, "BUSY high while NRESET was low; the pulse reset the chip", None),
        (true, _) => step(
            false,
            "a register written before the NRESET pulse kept its value: the chip was not reset",
            Some("NRESET is not on the configured pin: check the NRESET pin number (radio.reset_pin)"),
        ),
        (false, false) => step(
            false,
            "BUSY read low while NRESET held the chip in reset",
            Some("BUSY is not on the configured pin (the line only reads its pull): check the BUSY pin number (radio.busy_pin)"),
        ),
    })
}

/// DIO1 wiring: a receive with a 10 ms timeout must raise DIO1 (the timeout IRQ is routed to it);
/// the chip's IRQ status tells a DIO1 on the wrong pin from a chip that raised nothing. Leaves the
/// chip receiving.
fn check_dio1<S: SpiTransfer, L: BoardLines>(drv: &mut Sx126x<S, L>) -> ProbeStep {
    use crate::command::{irq, op};
    let wait = std::time::Duration::from_millis(500);
    let run = |drv: &mut Sx126x<S, L>| -> Result<(bool, u16), DriverError> {
        drv.command(op::SET_STANDBY, &[0x00])?;
        drv.clear_irq(irq::ALL)?;
        // 640 × 15.625 µs = 10 ms.
        drv.command(op::SET_RX, &[0x00, 0x02, 0x80])?;
        let rose = drv.lines_mut().dio1()? || drv.lines_mut().wait_dio1_rising(wait)?;
        let bits = drv.irq_status()?;
        drv.clear_irq(irq::ALL)?;
        drv.start_receive()?;
        Ok((rose, bits))
    };
    let line = |ok, detail: String, hint: Option<String>| ProbeStep {
        what: "DIO1 interrupt",
        ok,
        detail,
        hint,
    };
    match run(drv) {
        Ok((true, _)) => line(true, "DIO1 rose on the chip's RX timeout interrupt".into(), None),
        Ok((false, bits)) if bits & irq::TIMEOUT != 0 => line(
            false,
            format!("the chip raised its RX timeout interrupt (IRQ status 0x{bits:04X}) but DIO1 did not rise within {wait:?}"),
            Some("DIO1 is not on the configured pin: check the DIO1 pin number (radio.dio1_pin); without it every packet is noticed late".into()),
        ),
        Ok((false, bits)) => line(
            false,
            format!("no interrupt within {wait:?} (IRQ status 0x{bits:04X})"),
            Some("the chip did not time out its receive: check the TCXO setting and the module's power".into()),
        ),
        Err(e) => line(false, e.to_string(), Some(explain_driver_error(&e))),
    }
}
