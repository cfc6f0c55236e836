//! Federation between real gateways on loopback: topologies, refusals, recovery after a crash,
//! a recorded link, the shared HTTP listener, and a scripted peer.

#[path = "../common/mod.rs"]
mod common;
#[path = "../federation_support/mod.rs"]
mod federation_support;

mod capture;
mod channel_bridge;
mod flood;
mod http;
mod identity;
mod presence;
mod protocol;
mod recovery;
mod refusals;
mod topologies;
