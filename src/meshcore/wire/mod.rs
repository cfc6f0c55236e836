//! The MeshCore wire format (protocol sheet §2–§11), sans-IO: bytes in, checked views and owned
//! representations out, and back to the same bytes.
//!
//! - [`packet`]: the on-air frame (header, transport codes, encoded path, payload);
//! - [`payload`]: each payload type as it travels (encrypted payloads stay encrypted);
//! - [`advert`], [`message`]: signed adverts and the plaintexts inside encrypted payloads;
//! - [`control`]: CONTROL payloads (node discovery request and answer);
//! - [`crypto`]: AES-128-ECB + 2-byte HMAC, packet/ACK hashes, channel keys;
//! - [`identity`]: Ed25519 identities in the firmware's 64-byte form and their X25519 shared
//!   secrets.
pub mod advert;
pub mod control;
pub mod crypto;
pub mod identity;
pub mod message;
pub mod packet;
pub mod payload;
