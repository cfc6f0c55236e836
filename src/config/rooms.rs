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
    /// The MeshCore group channel this room keeps (and, in bridge mode, speaks on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelSpec>,
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
            channel: None,
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

/// Bridge mode's default rate limit: channel messages sent per minute at most.
pub const DEFAULT_CHANNEL_MAX_PER_MINUTE: u32 = 1;

/// `channel:` of a room: `public`, `"#name"`, or a mapping
/// `{name, key, mode, max_per_minute, hop_limit}` (a `key` makes it a private channel).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ChannelSpec {
    Name(String),
    Full(ChannelBindingConfig),
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelBindingConfig {
    pub name: String,
    /// A private channel's 16-byte secret, as 32 hex digits or base64 (as MeshCore apps share it).
    #[serde(default, skip_serializing_if = "ChannelSecret::is_empty")]
    pub key: ChannelSecret,
    #[serde(default)]
    pub mode: ChannelMode,
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// Repeats a bridged message may travel (absent: a plain flood, as a phone sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_limit: Option<u8>,
}

fn default_max_per_minute() -> u32 {
    DEFAULT_CHANNEL_MAX_PER_MINUTE
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// Keep the channel's history; never transmit.
    #[default]
    Listen,
    /// Both ways: the room's other posts go out on the channel too.
    Bridge,
}

impl ChannelMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelMode::Listen => "listen",
            ChannelMode::Bridge => "bridge",
        }
    }
}

/// A private channel's key as written in the file. Like [`Psk`], never shown by `Debug` or
/// `Display`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ChannelSecret(String);

impl ChannelSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        ChannelSecret(secret.into())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The 16 key bytes: 32 hex digits or base64 of 16 bytes.
    pub fn bytes(&self) -> Option<[u8; 16]> {
        let s = self.0.trim();
        let mut out = [0u8; 16];
        if s.len() == 32 && hex::decode_to_slice(s, &mut out).is_ok() {
            return Some(out);
        }
        let raw = super::base64::decode(s)?;
        out.copy_from_slice(raw.get(..16).filter(|_| raw.len() == 16)?);
        Some(out)
    }
}

impl fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "ChannelSecret(none)"
        } else {
            "ChannelSecret(<redacted>)"
        })
    }
}

impl fmt::Display for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

/// The well-known Public channel's key (MeshCore's `PUBLIC_GROUP_PSK`).
pub const PUBLIC_CHANNEL_KEY: [u8; 16] = [
    0x8b, 0x33, 0x87, 0xe9, 0xc5, 0xcd, 0xea, 0x6a, 0xc9, 0xe5, 0xed, 0xba, 0xa1, 0x15, 0xcd, 0x72,
];

/// A binding as the sides use it: what the file says, resolved to a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ResolvedChannel {
    /// What status pages show: `Public`, `#name`, or the private channel's name.
    pub name: String,
    pub secret: [u8; 16],
    /// A private channel (its key came from the file).
    pub private: bool,
    pub mode: ChannelMode,
    pub max_per_minute: u32,
    pub hop_limit: Option<u8>,
}

impl fmt::Debug for ResolvedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedChannel")
            .field("name", &self.name)
            .field("private", &self.private)
            .field("mode", &self.mode)
            .field("max_per_minute", &self.max_per_minute)
            .field("hop_limit", &self.hop_limit)
            .finish_non_exhaustive()
    }
}

impl ChannelSpec {
    fn parts(&self) -> (&str, Option<&ChannelSecret>, ChannelMode, u32, Option<u8>) {
        match self {
            ChannelSpec::Name(n) => (n, None, ChannelMode::Listen, default_max_per_minute(), None),
            ChannelSpec::Full(b) => (
                &b.name,
                (!b.key.is_empty()).then_some(&b.key),
                b.mode,
                b.max_per_minute,
                b.hop_limit,
            ),
        }
    }

    /// The key path below `channel` that a problem is about, and the message.
    pub fn resolve(&self) -> Result<ResolvedChannel, (&'static str, String)> {
        use sha2::{Digest, Sha256};
        let (name, key, mode, max_per_minute, hop_limit) = self.parts();
        let name = name.trim();
        let field = match self {
            ChannelSpec::Name(_) => "",
            ChannelSpec::Full(_) => "name",
        };
        if name.is_empty() {
            return Err((field, "a channel needs a name (`public`, `\"#name\"`, or a private channel's name with its key)".into()));
        }
        if name.len() > 31 {
            return Err((field, format!("`{name}` is longer than 31 bytes")));
        }
        if mode == ChannelMode::Bridge && max_per_minute == 0 {
            return Err((
                "max_per_minute",
                "a bridge needs at least 1 message per minute (or use mode: listen)".into(),
            ));
        }
        if max_per_minute > 60 {
            return Err((
                "max_per_minute",
                format!("{max_per_minute} is more than one channel message a second; at most 60"),
            ));
        }
        if hop_limit.is_some_and(|h| h > 63) {
            return Err(("hop_limit", "a MeshCore path holds at most 63 hops".into()));
        }
        let (name, secret, private) = match key {
            Some(k) => {
                if name.eq_ignore_ascii_case("public") || name.starts_with('#') {
                    return Err(("key", format!("`{name}` is a well-known channel; its key is derived, leave `key` out (or give a private channel its own name)")));
                }
                let Some(secret) = k.bytes() else {
                    return Err((
                        "key",
                        "a channel key is 16 bytes: 32 hex digits or base64".into(),
                    ));
                };
                (name.to_string(), secret, true)
            }
            None if name.eq_ignore_ascii_case("public") => {
                ("Public".to_string(), PUBLIC_CHANNEL_KEY, false)
            }
            None if name.starts_with('#') && name.len() > 1 => {
                let d = Sha256::digest(name.as_bytes());
                let mut secret = [0u8; 16];
                secret.copy_from_slice(&d[..16]);
                (name.to_string(), secret, false)
            }
            None => {
                let key_field = if field.is_empty() { "" } else { "key" };
                return Err((key_field, format!("`{name}` is neither `public` nor a `#hashtag` channel: a private channel needs `name` and `key`")));
            }
        };
        Ok(ResolvedChannel {
            name,
            secret,
            private,
            mode,
            max_per_minute,
            hop_limit,
        })
    }
}

#[cfg(test)]
mod channel_tests {
    use super::*;

    #[test]
    fn keys_parse_as_hex_or_base64_and_never_print() {
        let hex_key = ChannelSecret::new("8b3387e9c5cdea6ac9e5edbaa115cd72");
        let b64_key = ChannelSecret::new("izOH6cXN6mrJ5e26oRXNcg==");
        assert_eq!(hex_key.bytes(), Some(PUBLIC_CHANNEL_KEY));
        assert_eq!(b64_key.bytes(), Some(PUBLIC_CHANNEL_KEY));
        assert_eq!(ChannelSecret::new("abc").bytes(), None);
        assert!(!format!("{hex_key:?} {hex_key}").contains("8b33"));
        let spec = ChannelSpec::Full(ChannelBindingConfig {
            name: "ops".into(),
            key: b64_key,
            mode: ChannelMode::Bridge,
            max_per_minute: 4,
            hop_limit: None,
        });
        let r = spec.resolve().unwrap();
        assert!(r.private);
        assert!(!format!("{r:?}").contains("139"), "{r:?}");
    }

    #[test]
    fn well_known_names_resolve() {
        let p = ChannelSpec::Name("public".into()).resolve().unwrap();
        assert_eq!(
            (p.name.as_str(), p.secret, p.private),
            ("Public", PUBLIC_CHANNEL_KEY, false)
        );
        let t = ChannelSpec::Name("#test".into()).resolve().unwrap();
        assert_eq!(hex::encode(t.secret), "9cd8fcf22a47333b591d96a2b848b73f");
        assert!(ChannelSpec::Name("ops".into()).resolve().is_err());
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
