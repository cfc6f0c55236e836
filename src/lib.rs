//! meshroom-gw: a MeshCore multi-room server for Linux LoRa gateways.
pub mod hub;
pub mod tun;
