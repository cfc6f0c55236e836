//! The MeshCore side: byte-exact protocol vectors, fuzzed parsers, the room-server engine
//! against software companions, the IO shell with a real hub, whole-gateway scenarios on a
//! virtual clock, and the final real-process, real-time proof on the simulated air.

#[path = "../common/mod.rs"]
mod common;

mod acl;
mod channel;
mod e2e;
mod engine;
mod field;
mod field_e2e;
mod footprint_deadlines;
mod footprint_push;
mod fuzz;
mod harness;
mod on_channels;
mod readme;
mod service;
mod vectors;
mod virtual_air;
