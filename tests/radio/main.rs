//! The radio side on the simulated air and the emulated chip, and `radio probe`.

#[path = "../common/mod.rs"]
mod common;

mod hardware_path;
mod side;
mod sleep;
