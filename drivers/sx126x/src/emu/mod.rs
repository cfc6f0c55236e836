//! An SPI-level SX126x emulator and a simulated air.
//!
//! [`World`] holds a clock (virtual for deterministic tests, or real time for running gateways),
//! any number of emulated chips, and the air between them. Each chip is reached through
//! [`EmuSpi`] and [`EmuLines`], which implement the same traits as the Linux back-ends, so the
//! real driver runs against it unmodified. The air can also span processes through Unix datagram
//! sockets in a shared directory (see [`wire`]).
//!
//! One concept per file:
//!
//! | file | owns |
//! |---|---|
//! | `world.rs` | the clock and its event queue, waiting on it, the [`World`] handle (set-up, faults, inspection), the cross-process air receiver |
//! | `chip.rs` | the state of one chip (mode, registers, buffer, IRQ latch, settings, counters) and pure helpers |
//! | `exec.rs` | SPI command execution: legality per mode, status byte, BUSY timing, IRQ latching, TX/RX/CAD start and their timeouts |
//! | `reception.rs` | transmissions entering and leaving the air, and what each receiver makes of them (lock, capture, damage, packet status) |
//! | `air.rs` | the link model and the collision rules (sans chips, sans clock) |
//! | `handles.rs` | [`EmuSpi`] and [`EmuLines`], the driver's way in |
//! | `wire.rs` | the cross-process datagram format and the air-directory socket |

mod air;
mod chip;
mod exec;
mod handles;
mod reception;
pub mod wire;
mod world;

pub use air::{snr_min_db, AirConfig};
pub use chip::{ChipCounters, ChipProfile, Fault};
pub use world::{ChipId, EmuLines, EmuSpi, TxRecord, World};
