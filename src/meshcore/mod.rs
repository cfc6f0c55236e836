//! MeshCore on the air: every room an identity that stock MeshCore apps can join.
//!
//! Layers, bottom up (all sans-IO except `service`):
//! - `packet`, `payload`, `advert`, `message`: the wire format (protocol sheet §2–§10) as
//!   checked views and owned representations that parse and emit byte for byte.
//! - `crypto`, `identity`: AES-128-ECB + 2-byte HMAC, packet/ACK hashes, channel keys, Ed25519
//!   identities in the firmware's 64-byte form and their X25519 shared secrets.
//! - `companion`: the client side (what a phone's companion radio does), sans-IO too.
//! - `engine` (with `room`, `roster`, `history`, `dedup`, `counters`): the room server for
//!   every room on one radio — frames and time in, actions out.
pub mod advert;
pub mod client_cli;
pub mod companion;
pub mod counters;
pub mod crypto;
pub mod dedup;
pub mod engine;
pub mod history;
pub mod identity;
pub mod keystore;
pub mod message;
pub mod packet;
pub mod payload;
pub mod radio_link;
pub(crate) mod room;
pub mod roster;
pub mod service;

pub use advert::{Advert, AppData, NodeType};
pub use crypto::{ChannelKey, CryptoError, SharedSecret};
pub use engine::{
    Action, Engine, EngineConfig, Now, PostTicket, Priority, RadioPost, RoomId, RoomSetup,
};
pub use history::{PostAuthor, RoomPost};
pub use identity::{LocalIdentity, PublicKey};
pub use packet::{Frame, PacketRepr, Path, PathLen, PayloadType, RouteType, WireError};
pub use payload::Payload;
pub use roster::{ClientRecord, Role};
