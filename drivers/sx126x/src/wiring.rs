//! Where a chip is wired on a Linux board: the spidev device and the GPIO line offsets. Plain
//! data, available on every target so that configurations can be checked anywhere; the Linux
//! back-end (`linux`) opens it.

/// Line numbers are offsets on `gpiochip` (BCM numbers on a Pi).
#[derive(Debug, Clone, PartialEq)]
pub struct Wiring {
    pub spidev: String,
    pub speed_hz: u32,
    pub gpiochip: String,
    pub reset: u32,
    pub busy: u32,
    pub dio1: u32,
    pub txen: Option<u32>,
    pub rxen: Option<u32>,
    pub cs: Option<u32>,
    /// Lines driven high while the radio is open (e.g. a HAT's power or enable pin).
    pub hold_high: Vec<u32>,
}
