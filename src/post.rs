//! The `Post`: one message in one room, as every side of the gateway sees it.
//!
//! A post gets its globally unique [`PostId`] where it first entered the system (on this
//! server or on a federated one) and keeps it everywhere; that id is what makes deduplication
//! across radio retries, peers and restarts possible. The room timestamp is assigned by the
//! receiving server's room clock ([`next_room_us`], applied by the store's writer when it commits),
//! the author timestamp is what the author's device claimed.
//!
//! This is the ground floor: the store, the hub and every side use these types; they import
//! nothing of the gateway's own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which side of the gateway a post (or a participant) belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorKind {
    /// A MeshCore client on the LoRa side.
    Radio,
    /// A program on the gateway host, through the TUN multicast groups.
    Ip,
    /// A federated meshroom-gw server.
    Peer,
    /// The local HTTP/CLI post endpoint.
    Local,
    /// A MeshCore group channel a room keeps: the sender's name is whatever the message says.
    Channel,
}

impl AuthorKind {
    pub const ALL: [AuthorKind; 5] = [
        AuthorKind::Radio,
        AuthorKind::Ip,
        AuthorKind::Peer,
        AuthorKind::Local,
        AuthorKind::Channel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthorKind::Radio => "radio",
            AuthorKind::Ip => "ip",
            AuthorKind::Peer => "peer",
            AuthorKind::Local => "local",
            AuthorKind::Channel => "channel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        AuthorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AuthorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who wrote a post: the kind of side it was written on, an id that is stable on that side
/// (MeshCore public-key hex, host `ip:port`, …) and a display name when one is known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub kind: AuthorKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Author {
    /// The name to show a reader: the display name when known, else the id.
    pub fn display(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// Globally unique post id: 16 bytes, written as 32 lowercase hex digits.
///
/// A fresh id ([`PostId::fresh`]) starts with the Unix time in milliseconds (48 bits, big
/// endian, as in a UUIDv7) followed by 80 random bits. Ids made at about the same time sort
/// together, so the store's id index grows at its right edge instead of touching a random
/// leaf per post (an SD-card page per post saved). Ids from older versions, fully random,
/// remain valid: only their order is arbitrary.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PostId(pub [u8; 16]);

impl PostId {
    /// A new id for a post entering the system now.
    pub fn fresh() -> Self {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self::fresh_at(now_ms)
    }

    /// A new id stamped with `unix_ms` (the low 48 bits) and 80 random bits.
    pub fn fresh_at(unix_ms: u64) -> Self {
        let mut id: [u8; 16] = rand::random();
        id[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        PostId(id)
    }
}

impl fmt::Display for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostId({self})")
    }
}

impl FromStr for PostId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).map_err(|_| "a post id is 32 hex digits")?;
        Ok(PostId(out))
    }
}

impl Serialize for PostId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PostId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A committed post as stored and fanned out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: PostId,
    pub room: String,
    pub author: Author,
    /// Name of the server where the post first entered the system.
    pub origin: String,
    /// Unix seconds, as the author's device said.
    pub author_ts: u64,
    /// Unix seconds from this server's room clock: `room_us / 1_000_000`. Never decreasing within
    /// the room, but posts of a burst share a second; order and cursors use `room_us`.
    pub room_ts: u64,
    /// This server's room clock in Unix microseconds: strictly increasing within the room
    /// ([`next_room_us`]). The order of a room's history, and what `after` cursors (HTTP,
    /// federation) count in. Absent in JSON from older versions (0).
    #[serde(default)]
    pub room_us: u64,
    pub text: String,
    /// Federation hops travelled before reaching this server (0 = entered here).
    pub hops: u8,
}

/// Where a post came in on this server; fan-out hands it to every side but this one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Via {
    pub side: AuthorKind,
    /// For federation, the peer link the post came over (so it is not echoed back).
    pub link: Option<String>,
}

impl Via {
    pub fn side(side: AuthorKind) -> Self {
        Via { side, link: None }
    }
    pub fn peer(link: impl Into<String>) -> Self {
        Via {
            side: AuthorKind::Peer,
            link: Some(link.into()),
        }
    }
}

/// What a side hands to the hub.
#[derive(Clone, Debug)]
pub struct NewPost {
    /// `None`: the post enters the system here and gets a fresh id.
    pub id: Option<PostId>,
    pub room: String,
    pub author: Author,
    /// `None`: this server is the origin.
    pub origin: Option<String>,
    pub author_ts: u64,
    pub text: String,
    pub hops: u8,
    pub via: Via,
}

/// Microseconds per second of the room clock.
pub const US_PER_S: u64 = 1_000_000;

/// The room clock rule: a new post's room timestamp is `max(now, last + 1)` in microseconds, so
/// timestamps are strictly increasing within a room (history order, cursors) and follow the wall
/// clock: a burst of thousands of posts runs the clock ahead by as many microseconds, not
/// seconds. MeshCore, which counts in whole seconds, gets `room_us / 1e6` and a push cursor kept
/// by the server (see `meshcore::server::history`).
pub fn next_room_us(now_us: u64, last_us: u64) -> u64 {
    now_us.max(last_us + 1)
}

/// An `after` cursor from outside (HTTP `?after=`): a post's `room_us`, or whole Unix seconds
/// (a `room_ts`, as before version 2 of the store) when below 10^12 — then it means "after that
/// second", as it always did.
pub fn after_cursor_us(after: u64) -> u64 {
    const SECONDS_BELOW: u64 = 1_000_000_000_000;
    if after < SECONDS_BELOW {
        (after + 1) * US_PER_S - 1
    } else {
        after
    }
}

/// The server name people see in a post's origin. Origins that came over federation name the
/// server by its static key as well (`name@<64 hex digits>`); the key is for machines.
pub fn origin_name(origin: &str) -> &str {
    match origin.rsplit_once('@') {
        Some((name, key)) if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => origin,
    }
}

#[cfg(test)]
mod tests {
    use super::PostId;

    #[test]
    fn fresh_ids_sort_by_time_and_differ() {
        let a = PostId::fresh_at(1_800_000_000_000);
        let b = PostId::fresh_at(1_800_000_000_001);
        let a2 = PostId::fresh_at(1_800_000_000_000);
        assert!(a < b && a2 < b, "ids sort by their millisecond");
        assert_ne!(
            a, a2,
            "80 random bits tell ids of the same millisecond apart"
        );
        assert_eq!(&a.0[..6], &1_800_000_000_000u64.to_be_bytes()[2..]);
    }

    #[test]
    fn origin_names_drop_the_key() {
        let key = "ab".repeat(32);
        assert_eq!(super::origin_name(&format!("g1@{key}")), "g1");
        assert_eq!(super::origin_name("g1"), "g1");
        assert_eq!(super::origin_name("a@b"), "a@b");
    }
}
