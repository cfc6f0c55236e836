//! Linux back-ends of the two driver traits: `/dev/spidevB.C` through the `spidev` crate, and the
//! board's lines through the GPIO character device (uAPI v2) with `gpiocdev`.
//!
//! Both are blocking; the driver thread waits on DIO1 with `poll()` on the line-request fd (a
//! rising-edge event) together with the thread's [`Wakeup`] eventfd, so no CPU is spent and no
//! periodic wake-up happens while the radio is idle.

use crate::hal::{BoardLines, HalError, SpiTransfer, WaitOutcome};
use crate::wakeup::Wakeup;
use gpiocdev::line::{EdgeDetection, Value};
use gpiocdev::Request;
use spidev::{SpiModeFlags, Spidev, SpidevOptions, SpidevTransfer};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

pub use crate::wiring::Wiring as LinuxWiring;

/// An open spidev device configured for the SX126x (mode 0, 8 bit).
pub struct LinuxSpi {
    dev: Spidev,
}

impl LinuxSpi {
    pub fn open(path: &str, speed_hz: u32) -> Result<Self, HalError> {
        let mut dev = Spidev::open(path).map_err(|e| HalError::io(format!("open {path}"), e))?;
        let opts = SpidevOptions::new()
            .bits_per_word(8)
            .max_speed_hz(speed_hz)
            .mode(SpiModeFlags::SPI_MODE_0)
            .build();
        dev.configure(&opts)
            .map_err(|e| HalError::io(format!("configure {path}"), e))?;
        Ok(LinuxSpi { dev })
    }
}

impl SpiTransfer for LinuxSpi {
    fn transfer(&mut self, tx: &[u8], rx: &mut [u8]) -> Result<(), HalError> {
        let mut xfer = SpidevTransfer::read_write(tx, rx);
        self.dev
            .transfer(&mut xfer)
            .map_err(|e| HalError::io("SPI transfer", e))
    }
}

fn gpio_err(what: String, e: gpiocdev::Error) -> HalError {
    let errno = match &e {
        gpiocdev::Error::Os(n) => Some(n.0),
        gpiocdev::Error::Uapi(_, gpiocdev_uapi::Error::Os(n)) => Some(n.0),
        _ => None,
    };
    match errno {
        Some(n) if n != 0 => HalError::io(what, std::io::Error::from_raw_os_error(n)),
        _ => HalError::Other(format!("{what}: {e}")),
    }
}

/// The board's lines, each in its own request (outputs with their initial level so nothing
/// glitches; BUSY as input; DIO1 as input with rising-edge events).
pub struct LinuxBoard {
    reset: (Request, u32),
    busy: (Request, u32),
    dio1: (Request, u32),
    txen: Option<(Request, u32)>,
    rxen: Option<(Request, u32)>,
    cs: Option<(Request, u32)>,
    _hold_high: Option<Request>,
}

fn output(chip: &str, line: u32, high: bool, role: &str) -> Result<(Request, u32), HalError> {
    let v = if high { Value::Active } else { Value::Inactive };
    Request::builder()
        .on_chip(chip)
        .with_consumer(format!("meshroom-gw {role}"))
        .with_line(line)
        .as_output(v)
        .request()
        .map(|r| (r, line))
        .map_err(|e| gpio_err(format!("request {role} line {line} on {chip}"), e))
}

impl LinuxBoard {
    pub fn open(w: &LinuxWiring) -> Result<Self, HalError> {
        let chip = w.gpiochip.as_str();
        let reset = output(chip, w.reset, true, "NRESET")?;
        let busy = Request::builder()
            .on_chip(chip)
            .with_consumer("meshroom-gw BUSY")
            .with_line(w.busy)
            .as_input()
            .request()
            .map(|r| (r, w.busy))
            .map_err(|e| gpio_err(format!("request BUSY line {} on {chip}", w.busy), e))?;
        let dio1 = Request::builder()
            .on_chip(chip)
            .with_consumer("meshroom-gw DIO1")
            .with_line(w.dio1)
            .as_input()
            .with_edge_detection(EdgeDetection::RisingEdge)
            .request()
            .map(|r| (r, w.dio1))
            .map_err(|e| gpio_err(format!("request DIO1 line {} on {chip}", w.dio1), e))?;
        let txen = w.txen.map(|l| output(chip, l, false, "TXEN")).transpose()?;
        let rxen = w.rxen.map(|l| output(chip, l, false, "RXEN")).transpose()?;
        let cs = w.cs.map(|l| output(chip, l, true, "NSS")).transpose()?;
        let hold = if w.hold_high.is_empty() {
            None
        } else {
            Some(
                Request::builder()
                    .on_chip(chip)
                    .with_consumer("meshroom-gw enable")
                    .with_lines(&w.hold_high)
                    .as_output(Value::Active)
                    .request()
                    .map_err(|e| {
                        gpio_err(
                            format!("request enable lines {:?} on {chip}", w.hold_high),
                            e,
                        )
                    })?,
            )
        };
        Ok(LinuxBoard {
            reset,
            busy,
            dio1,
            txen,
            rxen,
            cs,
            _hold_high: hold,
        })
    }

    fn level((req, line): &(Request, u32), role: &str) -> Result<bool, HalError> {
        req.value(*line)
            .map(|v| v == Value::Active)
            .map_err(|e| gpio_err(format!("read {role} line {line}"), e))
    }

    fn drive((req, line): &(Request, u32), high: bool, role: &str) -> Result<(), HalError> {
        let v = if high { Value::Active } else { Value::Inactive };
        req.set_value(*line, v)
            .map_err(|e| gpio_err(format!("drive {role} line {line}"), e))
    }

    /// Reads every queued edge event: the level is what matters, stale edges would wake us again.
    fn drain_dio1_edges(&self) {
        let req = &self.dio1.0;
        while req.has_edge_event().unwrap_or(false) {
            if req.read_edge_event().is_err() {
                break;
            }
        }
    }
}

impl BoardLines for LinuxBoard {
    fn set_reset(&mut self, high: bool) -> Result<(), HalError> {
        Self::drive(&self.reset, high, "NRESET")
    }

    fn busy(&mut self) -> Result<bool, HalError> {
        Self::level(&self.busy, "BUSY")
    }

    fn wait_busy_low(&mut self, timeout: Duration) -> Result<bool, HalError> {
        // BUSY lasts µs for commands and ms for mode changes: spin briefly, then sleep in steps.
        let start = Instant::now();
        loop {
            if !self.busy()? {
                return Ok(true);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Ok(false);
            }
            if waited > Duration::from_micros(100) {
                std::thread::sleep(Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn dio1(&mut self) -> Result<bool, HalError> {
        Self::level(&self.dio1, "DIO1")
    }

    fn wait_dio1_rising(&mut self, timeout: Duration) -> Result<bool, HalError> {
        let (req, line) = &self.dio1;
        let got = req
            .wait_edge_event(timeout)
            .map_err(|e| gpio_err(format!("wait for DIO1 line {line}"), e))?;
        if got {
            self.drain_dio1_edges();
        }
        Ok(got)
    }

    fn wait_dio1_or_wakeup(
        &mut self,
        timeout: Duration,
        wakeup: &Wakeup,
    ) -> Result<WaitOutcome, HalError> {
        let Some(wake_fd) = wakeup.fd().map(|fd| fd.as_raw_fd()) else {
            // No eventfd (out of descriptors): DIO1 in slices, the wake-up checked in between.
            return crate::hal::wait_in_slices(self, timeout, wakeup);
        };
        let line = self.dio1.1;
        let end = Instant::now() + timeout;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: self.dio1.0.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let left = end.saturating_duration_since(Instant::now());
            // Round up so a sub-millisecond remainder does not spin.
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: two valid pollfd entries on fds that live as long as `self` and `wakeup`.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if n < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(HalError::io(format!("poll DIO1 line {line}"), err));
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                return Err(HalError::Other(format!(
                    "poll DIO1 line {line}: line request failed (revents 0x{:x})",
                    fds[0].revents
                )));
            }
            if fds[0].revents & libc::POLLIN != 0 {
                self.drain_dio1_edges();
                return Ok(WaitOutcome::Dio1);
            }
            if fds[1].revents & libc::POLLIN != 0 && wakeup.take() {
                return Ok(WaitOutcome::Woken);
            }
            if n == 0 && Instant::now() >= end {
                return Ok(WaitOutcome::TimedOut);
            }
        }
    }

    fn delay(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn set_txen(&mut self, on: bool) -> Result<(), HalError> {
        match &self.txen {
            Some(l) => Self::drive(l, on, "TXEN"),
            None => Ok(()),
        }
    }

    fn set_rxen(&mut self, on: bool) -> Result<(), HalError> {
        match &self.rxen {
            Some(l) => Self::drive(l, on, "RXEN"),
            None => Ok(()),
        }
    }

    fn chip_select(&mut self, asserted: bool) -> Result<(), HalError> {
        match &self.cs {
            Some(l) => Self::drive(l, !asserted, "NSS"),
            None => Ok(()),
        }
    }
}

/// Opens both halves.
pub fn open(w: &LinuxWiring) -> Result<(LinuxSpi, LinuxBoard), HalError> {
    let spi = LinuxSpi::open(&w.spidev, w.speed_hz)?;
    let board = LinuxBoard::open(w)?;
    Ok((spi, board))
}
