//! The radio side on the simulated air and the emulated chip, and `radio probe`.

#[path = "../common/mod.rs"]
mod common;

mod hardware_path;
mod receiving;
mod side;
mod sleep;
