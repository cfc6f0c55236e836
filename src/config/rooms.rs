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
    /// MeshCore admin password (at most 15 bytes, not the PSK): a radio login with it is the
    /// room's admin (over-the-air CLI, ACL). Empty: no admin login. Never shown.
    #[serde(default, skip_serializing_if = "Psk::is_empty")]
    pub admin_password: Psk,
    /// Anyone may read: a wrong or empty password (private room), or any password (public
    /// room), logs in as a read-only guest; only the PSK (private) or an ACL role gives posting.
    #[serde(default)]
    pub allow_read_only: bool,
    /// Location this room adverts (degrees); overrides `meshcore.latitude`/`longitude`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig {
            name: String::new(),
            psk: Psk::default(),
            description: String::new(),
            max_history: default_max_history(),
            group: None,
            port: None,
            admin_password: Psk::default(),
            allow_read_only: false,
            latitude: None,
            longitude: None,
        }
    }
}

fn default_max_history() -> u32 {
    1000
}

impl RoomConfig {
    pub fn is_private(&self) -> bool {
        !self.psk.is_empty()
    }

    /// Problems of the MeshCore access and location keys, as (key under `rooms[i].`, message).
    pub fn access_problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let admin = self.admin_password.expose();
        if admin.len() > MESHCORE_PASSWORD_BYTES {
            out.push((
                "admin_password",
                format!(
                    "is {} bytes; a MeshCore login carries at most {MESHCORE_PASSWORD_BYTES}",
                    admin.len()
                ),
            ));
        } else if !admin.is_empty() {
            let psk = self.psk.expose().as_bytes();
            if admin.as_bytes() == &psk[..psk.len().min(MESHCORE_PASSWORD_BYTES)] {
                out.push((
                    "admin_password",
                    "must differ from the room's psk (as the radio compares them)".to_string(),
                ));
            }
        }
        match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) => {
                if !(-90.0..=90.0).contains(&lat) {
                    out.push(("latitude", format!("{lat} is not between -90 and 90")));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    out.push(("longitude", format!("{lon} is not between -180 and 180")));
                }
            }
            (Some(_), None) => out.push(("longitude", "is needed with latitude".to_string())),
            (None, Some(_)) => out.push(("latitude", "is needed with longitude".to_string())),
            (None, None) => {}
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_password_and_location_are_checked() {
        let room = |psk: &str, admin: &str, lat: Option<f64>, lon: Option<f64>| RoomConfig {
            name: "R".into(),
            psk: Psk::new(psk),
            admin_password: Psk::new(admin),
            latitude: lat,
            longitude: lon,
            ..RoomConfig::default()
        };
        assert!(room("club", "boss", Some(47.3), Some(8.5))
            .access_problems()
            .is_empty());
        let keys = |r: RoomConfig| {
            r.access_problems()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(room("club", "club", None, None)), ["admin_password"]);
        // Only the first 15 bytes of a PSK travel: an admin password equal to them clashes.
        assert_eq!(
            keys(room("0123456789abcdefXYZ", "0123456789abcde", None, None)),
            ["admin_password"]
        );
        assert_eq!(
            keys(room("", "sixteen-bytes-xx", None, None)),
            ["admin_password"]
        );
        assert_eq!(keys(room("", "", Some(91.0), Some(0.0))), ["latitude"]);
        assert_eq!(keys(room("", "", Some(1.0), None)), ["longitude"]);
        assert!(!format!("{:?}", room("", "boss", None, None)).contains("boss"));
    }
}
