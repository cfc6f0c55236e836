//! The `rooms:` list: what each hosted room is called, who may enter it, and how much it remembers.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Largest `max_history` accepted: beyond this a room's history is a database, not a chat log.
pub const MAX_HISTORY_LIMIT: u32 = 1_000_000;
/// A MeshCore advert carries at most 31 bytes of name.
pub const MAX_ROOM_NAME_BYTES: usize = 31;
/// MeshCore clients send at most 15 password bytes in a login.
pub const MESHCORE_PASSWORD_BYTES: usize = 15;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoomConfig {
    pub name: String,
    /// Empty: a public room. Set: a private room whose login password this is.
    #[serde(default)]
    pub psk: Psk,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_max_history")]
    pub max_history: u32,
    /// Multicast group of the room on the TUN side; derived from the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Ipv4Addr>,
    /// UDP port of the room's multicast group; the `tun.port` default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

fn default_max_history() -> u32 {
    1000
}

impl RoomConfig {
    pub fn is_private(&self) -> bool {
        !self.psk.is_empty()
    }
}

/// A room's pre-shared key. Its `Debug` and `Display` never show the secret, so it cannot leak
/// into a log line or a status page by accident.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Psk(String);

impl Psk {
    pub fn new(secret: impl Into<String>) -> Self {
        Psk(secret.into())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The secret itself: for key derivation and password comparison only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Psk(none)")
        } else {
            f.write_str("Psk(<redacted>)")
        }
    }
}

impl fmt::Display for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}
