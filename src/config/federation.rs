//! The `peers:` list and the `federation:` section: which servers we share rooms with, and how
//! the links between us behave (hop limit, keepalives, reconnect backoff, flow-control windows).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub host: String,
    #[serde(default = "default_peer_port")]
    pub port: u16,
    /// The secret this pair of servers shares; a different one for every pair.
    pub secret: super::rooms::Psk,
    /// The peer's Noise static public key (hex, or base64), pinned: a link presenting any
    /// other key is refused. Without it the first key seen is pinned (kept in the state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl PeerConfig {
    /// The pinned static key, when `key` is set: 64 hex digits or 44 characters of base64.
    pub fn pinned_key(&self) -> Result<Option<[u8; 32]>, String> {
        let Some(text) = self.key.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let bytes = if text.len() == 64 {
            hex::decode(text).ok()
        } else {
            super::base64::decode(text)
        };
        match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
            Some(k) => Ok(Some(k)),
            None => Err(format!(
                "peers[{}].key: expected the peer's static public key, 64 hex digits or 44 characters of base64 (as its /status federation.static_key shows)",
                self.label()
            )),
        }
    }

    /// How the peer is named in logs, `/status` and cursors: `host:port`.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn default_peer_port() -> u16 {
    7070
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// How many servers a post may cross before it is no longer forwarded.
    #[serde(default = "default_hop_limit")]
    pub hop_limit: u8,
    /// Seconds between keepalive pings on an idle or busy link (also measures round-trip time).
    #[serde(default = "default_keepalive_s")]
    pub keepalive_s: f64,
    /// Seconds without hearing anything from a peer before its link counts as dead.
    #[serde(default = "default_dead_after_s")]
    pub dead_after_s: f64,
    /// First reconnect delay in seconds; doubles per failure (with jitter) up to `backoff_max_s`.
    #[serde(default = "default_backoff_min_s")]
    pub backoff_min_s: f64,
    #[serde(default = "default_backoff_max_s")]
    pub backoff_max_s: f64,
    /// Posts a peer may send us before waiting for our acknowledgement.
    #[serde(default = "default_window")]
    pub window: u16,
    /// Live posts queued per room for a slow peer before falling back to reading history.
    #[serde(default = "default_live_queue")]
    pub live_queue: usize,
    /// Failed handshakes from one address within a minute before it is refused for a minute.
    #[serde(default = "default_max_failed_handshakes")]
    pub max_failed_handshakes: u32,
    /// File (relative to `server.state_dir` unless absolute) holding this server's Noise
    /// static key; created with mode 0600 on first start.
    #[serde(default = "default_static_key")]
    pub static_key: std::path::PathBuf,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            hop_limit: default_hop_limit(),
            keepalive_s: default_keepalive_s(),
            dead_after_s: default_dead_after_s(),
            backoff_min_s: default_backoff_min_s(),
            backoff_max_s: default_backoff_max_s(),
            window: default_window(),
            live_queue: default_live_queue(),
            max_failed_handshakes: default_max_failed_handshakes(),
            static_key: default_static_key(),
        }
    }
}

impl FederationConfig {
    /// Problems with the section, as (key, message) pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.hop_limit == 0 {
            out.push(("federation.hop_limit", "must be at least 1".to_string()));
        }
        if !positive(self.keepalive_s) {
            out.push((
                "federation.keepalive_s",
                "must be a positive number of seconds".into(),
            ));
        }
        if !positive(self.dead_after_s) || self.dead_after_s <= self.keepalive_s {
            out.push((
                "federation.dead_after_s",
                "must be longer than keepalive_s".into(),
            ));
        }
        if !positive(self.backoff_min_s) || !positive(self.backoff_max_s) {
            out.push((
                "federation.backoff_min_s",
                "backoff delays must be positive".into(),
            ));
        } else if self.backoff_max_s < self.backoff_min_s {
            out.push((
                "federation.backoff_max_s",
                "must not be shorter than backoff_min_s".into(),
            ));
        }
        if self.window == 0 {
            out.push(("federation.window", "must be at least 1".into()));
        }
        if self.live_queue == 0 {
            out.push(("federation.live_queue", "must be at least 1".into()));
        }
        out
    }
}

fn default_hop_limit() -> u8 {
    8
}
fn default_keepalive_s() -> f64 {
    2.0
}
fn default_dead_after_s() -> f64 {
    6.0
}
fn default_backoff_min_s() -> f64 {
    1.0
}
fn default_backoff_max_s() -> f64 {
    60.0
}
fn default_window() -> u16 {
    // Deep enough that a link is not stop-and-wait on the peer's fsync; bounded so a peer's
    // in-flight posts stay a few MB at most (window x 4 KiB texts).
    1024
}
fn default_live_queue() -> usize {
    1024
}
fn default_max_failed_handshakes() -> u32 {
    5
}
fn default_static_key() -> std::path::PathBuf {
    std::path::PathBuf::from("federation.key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_labels_bracket_ipv6() {
        assert!(FederationConfig::default().problems().is_empty());
        let p = PeerConfig {
            host: "::1".into(),
            port: 7070,
            secret: super::super::rooms::Psk::new("x"),
            key: None,
        };
        assert_eq!(p.label(), "[::1]:7070");
        assert_eq!(p.pinned_key(), Ok(None));
        let key = [0xabu8; 32];
        let hex_pin = PeerConfig {
            key: Some(hex::encode(key)),
            ..p.clone()
        };
        assert_eq!(hex_pin.pinned_key(), Ok(Some(key)));
        let b64 = PeerConfig {
            key: Some("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=".into()),
            ..p.clone()
        };
        assert_eq!(b64.pinned_key(), Ok(Some(key)));
        let bad = PeerConfig {
            key: Some("nope".into()),
            ..p
        };
        assert!(bad.pinned_key().is_err());
    }

    #[test]
    fn a_dead_timeout_shorter_than_the_keepalive_is_refused() {
        let c = FederationConfig {
            dead_after_s: 1.0,
            ..FederationConfig::default()
        };
        assert_eq!(c.problems()[0].0, "federation.dead_after_s");
    }
}
