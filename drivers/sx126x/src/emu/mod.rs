//! An SPI-level SX126x emulator and a simulated air.
//!
//! [`World`] holds a clock (virtual for deterministic tests, or real time for running gateways),
//! any number of emulated chips, and the air between them. Each chip is reached through
//! [`EmuSpi`] and [`EmuLines`], which implement the same traits as the Linux back-ends, so the
//! real driver runs against it unmodified. The air can also span processes through Unix datagram
//! sockets in a shared directory (see [`wire`]).

mod air;
mod chip;
pub mod wire;
mod world;

pub use air::{snr_min_db, AirConfig};
pub use chip::{ChipCounters, ChipProfile, Fault};
pub use world::{ChipId, EmuLines, EmuSpi, TxRecord, World};
