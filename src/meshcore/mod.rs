//! MeshCore on the air: every room an identity that stock MeshCore apps can join.
//!
//! Layers, bottom up (all sans-IO except `service`):
//! - `packet`, `payload`, `advert`, `message`: the wire format (protocol sheet §2–§10) as
//!   checked views and owned representations that parse and emit byte for byte.
//! - `crypto`, `identity`: AES-128-ECB + 2-byte HMAC, packet/ACK hashes, channel keys, Ed25519
//!   identities in the firmware's 64-byte form and their X25519 shared secrets.
pub mod advert;
pub mod crypto;
pub mod identity;
pub mod message;
pub mod packet;
pub mod payload;

pub use advert::{Advert, AppData, NodeType};
pub use crypto::{ChannelKey, CryptoError, SharedSecret};
pub use identity::{LocalIdentity, PublicKey};
pub use packet::{Frame, PacketRepr, Path, PathLen, PayloadType, RouteType, WireError};
pub use payload::Payload;
