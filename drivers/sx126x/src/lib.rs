//! SX1261/SX1262/SX1268 LoRa driver for meshroom-gw.
//!
//! The driver ([`driver::Sx126x`]) is written against two small traits ([`hal::SpiTransfer`] and
//! [`hal::BoardLines`]) so that the same code runs on Linux hardware ([`linux`], spidev + the GPIO
//! character device) and on the SPI-level chip emulator ([`emu`]), where several emulated chips share
//! a simulated air that can span processes.
//!
//! The driver is blocking on purpose: one radio = one dedicated thread that owns the chip, which is
//! what the chip wants (commands are strictly serialised behind BUSY) and keeps DIO1 latency low.

pub mod command;
pub mod driver;
pub mod emu;
pub mod hal;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod params;
pub mod presets;
pub mod probe;
pub mod toa;
pub mod wakeup;
pub mod wiring;

pub use driver::{DriverError, DriverStats, PendingTx, RxPacket, RxWait, Sx126x};
pub use hal::{BoardLines, HalError, SpiTransfer, WaitOutcome};
pub use params::{Bandwidth, ChipVariant, CodingRate, LoRaParams, RadioSettings, TcxoVoltage};
pub use wakeup::Wakeup;
