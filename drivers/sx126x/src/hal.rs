//! The two boundaries the driver talks through: one SPI transaction, and the board's GPIO lines.
//!
//! Both the Linux back-end and the emulator implement these; the driver never sees which one it has.

use crate::wakeup::Wakeup;
use std::time::{Duration, Instant};

/// Why [`BoardLines::wait_dio1_or_wakeup`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// DIO1 rose (if the wake-up was signalled too, it stays pending for the next wait).
    Dio1,
    /// The [`Wakeup`] was signalled (and is consumed).
    Woken,
    /// Neither happened within the timeout.
    TimedOut,
}

/// Slice length of the default [`BoardLines::wait_dio1_or_wakeup`] for back-ends that cannot wait
/// on both at once.
const SLICE: Duration = Duration::from_millis(20);

/// Failure of the bus or of a line; carries the OS error when there is one so that callers can
/// explain it (permission denied, no such device, line busy).
#[derive(Debug, thiserror::Error)]
pub enum HalError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl HalError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        HalError::Io {
            what: what.into(),
            source,
        }
    }

    /// The OS error kind, if this came from the OS.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            HalError::Io { source, .. } => Some(source.kind()),
            HalError::Other(_) => None,
        }
    }
}

/// One chip-select assertion, full duplex: `rx.len() == tx.len()`.
pub trait SpiTransfer {
    fn transfer(&mut self, tx: &[u8], rx: &mut [u8]) -> Result<(), HalError>;
}

/// The board's lines around the chip. Optional lines default to "not wired" (no-op).
pub trait BoardLines {
    /// Drive NRESET (`true` = high = chip running).
    fn set_reset(&mut self, high: bool) -> Result<(), HalError>;
    /// Current BUSY level (`true` = high = chip cannot take a command).
    fn busy(&mut self) -> Result<bool, HalError>;
    /// Wait until BUSY is low; `Ok(false)` when `timeout` elapsed first.
    fn wait_busy_low(&mut self, timeout: Duration) -> Result<bool, HalError>;
    /// Current DIO1 level.
    fn dio1(&mut self) -> Result<bool, HalError>;
    /// Wait for a DIO1 rising edge; `Ok(false)` on timeout. Callers check the level first because
    /// DIO1 is a level: an IRQ latched before the wait produces no new edge.
    fn wait_dio1_rising(&mut self, timeout: Duration) -> Result<bool, HalError>;
    /// Wait for a DIO1 rising edge or for `wakeup`, whichever comes first, sleeping in between
    /// (no periodic wake-ups). The default waits on DIO1 in short slices and checks the wake-up
    /// between them; the Linux back-end and the emulator wait on both at once.
    fn wait_dio1_or_wakeup(
        &mut self,
        timeout: Duration,
        wakeup: &Wakeup,
    ) -> Result<WaitOutcome, HalError> {
        wait_in_slices(self, timeout, wakeup)
    }
    /// Sleep (virtual time on the emulator).
    fn delay(&mut self, d: Duration);
    /// RF switch TX enable, if the board has one on a GPIO.
    fn set_txen(&mut self, _on: bool) -> Result<(), HalError> {
        Ok(())
    }
    /// RF switch RX enable, if the board has one on a GPIO.
    fn set_rxen(&mut self, _on: bool) -> Result<(), HalError> {
        Ok(())
    }
    /// Manual chip select (boards whose NSS is not a kernel CE line); `true` = asserted (low).
    fn chip_select(&mut self, _asserted: bool) -> Result<(), HalError> {
        Ok(())
    }
}

/// Waits for DIO1 in slices of 20 ms and checks `wakeup` between them: the default of
/// [`BoardLines::wait_dio1_or_wakeup`] for back-ends that cannot wait on both at once.
pub fn wait_in_slices<L: BoardLines + ?Sized>(
    lines: &mut L,
    timeout: Duration,
    wakeup: &Wakeup,
) -> Result<WaitOutcome, HalError> {
    let end = Instant::now() + timeout;
    loop {
        if wakeup.take() {
            return Ok(WaitOutcome::Woken);
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(WaitOutcome::TimedOut);
        }
        if lines.wait_dio1_rising(left.min(SLICE))? {
            return Ok(WaitOutcome::Dio1);
        }
    }
}
