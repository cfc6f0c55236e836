//! The TUN side on a real device, each test in a network namespace of its own (skipped loudly
//! without root, failing under `CI=true`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../tun_support/mod.rs"]
mod tun_support;

mod private;
mod rooms;
mod tail;
mod unavailable;
