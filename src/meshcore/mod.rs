//! MeshCore on the air: every room an identity that stock MeshCore apps can join.
//!
//! Sans-IO (bytes, events and the time in; results and actions out — no clock, file, socket or
//! radio of their own):
//! - [`wire`]: the wire format (protocol sheet §2–§11) — `packet`, `payload`, `advert`,
//!   `message`, `crypto`, `identity`;
//! - [`server`]: the room server for every room on one radio — `engine` (with `room`, `roster`,
//!   `history`, `dedup`, `counters`);
//! - [`companion`]: the client side (what a phone's companion radio does).
//!
//! IO shell (files, tokio, the radio):
//! - [`keystore`]: the rooms' private keys on disk;
//! - [`service`]: the tokio task that runs the engine against the radio (a [`service::RadioLink`],
//!   which the gateway makes from its radio) and the hub.
pub mod companion;
pub mod keystore;
pub mod server;
pub mod service;
pub mod wire;

pub use server::engine::{
    Action, Engine, EngineConfig, Now, PostTicket, Priority, RadioPost, RoomId, RoomSetup,
};
pub use server::history::{PostAuthor, RoomPost};
pub use server::roster::{ClientRecord, Role};
pub use wire::advert::{Advert, AppData, NodeType};
pub use wire::crypto::{ChannelKey, CryptoError, SharedSecret};
pub use wire::identity::{LocalIdentity, PublicKey};
pub use wire::packet::{Frame, PacketRepr, Path, PathLen, PayloadType, RouteType, WireError};
pub use wire::payload::Payload;
