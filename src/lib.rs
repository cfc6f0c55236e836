//! meshroom-gw: a MeshCore multi-room server for Linux LoRa gateways.
pub mod federation;
pub mod hub;
pub mod meshcore;
pub mod tun;
