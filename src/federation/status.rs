//! What `/status` and `/metrics` show about federation: per peer its link state, shared rooms,
//! traffic, round-trip time and refusals; globally the handshakes nobody could place.
//!
//! Never a secret: peers are named `host:port`, keys by their public half only.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::status::{Metrics, StatusSource};

/// The states a user sees for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Connecting,
    Connected,
    BackingOff,
    /// The last attempt was refused (wrong secret, unknown key id, rate limit); retrying with
    /// backoff.
    Rejected,
    /// The peer presented another static key than the pinned one; refused until the pin is
    /// changed (`peers[].key`).
    KeyChanged,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::BackingOff => "backing off",
            PeerState::Rejected => "rejected",
            PeerState::KeyChanged => "key_changed",
        }
    }
    const ALL: [PeerState; 5] = [
        PeerState::Connecting,
        PeerState::Connected,
        PeerState::BackingOff,
        PeerState::Rejected,
        PeerState::KeyChanged,
    ];
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Figures of one configured peer.
#[derive(Debug, Clone)]
pub struct PeerFigures {
    pub host: String,
    pub port: u16,
    pub state: PeerState,
    /// Unix seconds when `state` was entered.
    pub since: u64,
    pub last_error: Option<String>,
    /// The peer's server name and static public key, once a link came up.
    pub server: Option<String>,
    pub static_key: Option<String>,
    /// "outbound" (we dialled) or "inbound" for the current link.
    pub direction: Option<&'static str>,
    pub shared_rooms: Vec<String>,
    pub posts_in: u64,
    pub posts_out: u64,
    pub rtt_ms: Option<f64>,
    pub links_up: u64,
    /// Handshakes with this peer that failed because the secrets differ.
    pub secret_mismatches: u64,
    /// Private-room proofs from the peer that matched none of our rooms, plus our private rooms
    /// it offered as public.
    pub room_proof_failures: u64,
    /// Our private rooms the peer has under the same name with another PSK (or public).
    pub psk_mismatch_rooms: Vec<String>,
    pub malformed: u64,
    /// Handshakes with this peer's key id that never completed (timed out before the PSK).
    pub truncated_handshakes: u64,
    pub dropped_hop_limit: u64,
    /// Posts from the peer this server already had (another route was faster).
    pub duplicates_in: u64,
    /// Posts from the peer that started on this very server: should stay 0 (no echo).
    pub echoes_in: u64,
    /// What the peer's build understands beyond the first release (`presence`,
    /// `channel_posts`), and what it lacks, with a line saying what that means.
    pub features: Vec<&'static str>,
    pub missing_features: Vec<&'static str>,
    pub note: Option<String>,
    /// Sent nothing of these because the peer's build does not know them.
    pub withheld_channel_posts: u64,
    pub withheld_presence: u64,
}

impl PeerFigures {
    pub fn new(host: &str, port: u16) -> Self {
        PeerFigures {
            host: host.to_string(),
            port,
            state: PeerState::Connecting,
            since: unix_now(),
            last_error: None,
            server: None,
            static_key: None,
            direction: None,
            shared_rooms: Vec::new(),
            posts_in: 0,
            posts_out: 0,
            rtt_ms: None,
            links_up: 0,
            secret_mismatches: 0,
            room_proof_failures: 0,
            psk_mismatch_rooms: Vec::new(),
            malformed: 0,
            truncated_handshakes: 0,
            dropped_hop_limit: 0,
            duplicates_in: 0,
            echoes_in: 0,
            features: Vec::new(),
            missing_features: Vec::new(),
            note: None,
            withheld_channel_posts: 0,
            withheld_presence: 0,
        }
    }

    pub fn set_state(&mut self, state: PeerState) {
        if self.state != state {
            self.state = state;
            self.since = unix_now();
        }
    }

    fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn json(&self) -> Value {
        json!({
            "host": self.host,
            "port": self.port,
            "state": self.state.as_str(),
            "since": self.since,
            "last_error": self.last_error,
            "server": self.server,
            "static_key": self.static_key,
            "direction": self.direction,
            "shared_rooms": self.shared_rooms,
            "posts_in": self.posts_in,
            "posts_out": self.posts_out,
            "rtt_ms": self.rtt_ms,
            "links_up": self.links_up,
            "secret_mismatches": self.secret_mismatches,
            "room_proof_failures": self.room_proof_failures,
            "psk_mismatch_rooms": self.psk_mismatch_rooms,
            "malformed": self.malformed,
            "truncated_handshakes": self.truncated_handshakes,
            "dropped_hop_limit": self.dropped_hop_limit,
            "duplicates_in": self.duplicates_in,
            "echoes_in": self.echoes_in,
            "features": self.features,
            "missing_features": self.missing_features,
            "note": self.note,
            "withheld": {
                "channel_posts": self.withheld_channel_posts,
                "presence": self.withheld_presence,
            },
        })
    }
}

/// Figures not tied to one configured peer.
#[derive(Debug, Clone, Default)]
pub struct GlobalFigures {
    pub static_key: String,
    /// Handshakes whose key id matched no configured peer.
    pub unknown_key_attempts: u64,
    pub last_unknown_from: Option<String>,
    /// Handshake attempts refused by the per-address rate limit.
    pub rate_limited: u64,
    pub malformed_handshakes: u64,
    /// Connections closed before their first handshake message was complete.
    pub truncated_handshakes: u64,
}

/// Shared by the peer manager (writer) and the status board (reader).
#[derive(Default)]
pub struct FederationStatus {
    pub peers: Vec<Arc<Mutex<PeerFigures>>>,
    pub global: Mutex<GlobalFigures>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The "peers" key of `/status`: one object per configured peer.
pub struct PeersSource(pub Arc<FederationStatus>);

impl StatusSource for PeersSource {
    fn key(&self) -> &'static str {
        "peers"
    }

    fn status(&self) -> Value {
        Value::Array(self.0.peers.iter().map(|p| lock(p).json()).collect())
    }

    fn metrics(&self, out: &mut Metrics) {
        for p in &self.0.peers {
            let f = lock(p).clone();
            let label = f.label();
            let peer = [("peer", label.as_str())];
            for s in PeerState::ALL {
                out.gauge(
                    "meshroom_peer_state",
                    "1 for the peer's current link state.",
                    &[("peer", label.as_str()), ("state", s.as_str())],
                    if f.state == s { 1.0 } else { 0.0 },
                );
            }
            out.gauge(
                "meshroom_peer_shared_rooms",
                "Rooms shared with the peer on the current link.",
                &peer,
                f.shared_rooms.len() as f64,
            );
            out.counter(
                "meshroom_peer_posts_in_total",
                "Posts received from the peer.",
                &peer,
                f.posts_in,
            );
            out.counter(
                "meshroom_peer_posts_out_total",
                "Posts sent to the peer.",
                &peer,
                f.posts_out,
            );
            if let Some(rtt) = f.rtt_ms {
                out.gauge(
                    "meshroom_peer_rtt_seconds",
                    "Round-trip time of the last keepalive.",
                    &peer,
                    rtt / 1000.0,
                );
            }
            out.counter(
                "meshroom_peer_duplicates_in_total",
                "Posts from the peer this server already had.",
                &peer,
                f.duplicates_in,
            );
            out.counter(
                "meshroom_peer_links_up_total",
                "Links to the peer that completed the handshake.",
                &peer,
                f.links_up,
            );
            out.counter(
                "meshroom_peer_secret_mismatches_total",
                "Handshakes with the peer refused because the secrets differ.",
                &peer,
                f.secret_mismatches,
            );
            out.counter(
                "meshroom_peer_room_proof_failures_total",
                "Private-room proofs from the peer that matched none of our rooms.",
                &peer,
                f.room_proof_failures,
            );
            out.counter(
                "meshroom_peer_malformed_total",
                "Links to the peer ended by a malformed frame or protocol breach.",
                &peer,
                f.malformed,
            );
        }
    }
}

/// The "federation" key of `/status`: this server's key and refusals not tied to a peer.
pub struct FederationSource(pub Arc<FederationStatus>);

impl StatusSource for FederationSource {
    fn key(&self) -> &'static str {
        "federation"
    }

    fn status(&self) -> Value {
        let g = lock(&self.0.global).clone();
        json!({
            "static_key": g.static_key,
            "unknown_key_attempts": g.unknown_key_attempts,
            "last_unknown_from": g.last_unknown_from,
            "rate_limited": g.rate_limited,
            "malformed_handshakes": g.malformed_handshakes,
            "truncated_handshakes": g.truncated_handshakes,
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let g = lock(&self.0.global).clone();
        out.counter(
            "meshroom_federation_unknown_key_total",
            "Federation handshakes whose key id matched no configured peer.",
            &[],
            g.unknown_key_attempts,
        );
        out.counter(
            "meshroom_federation_rate_limited_total",
            "Federation handshakes refused by the per-address rate limit.",
            &[],
            g.rate_limited,
        );
        out.counter(
            "meshroom_federation_malformed_handshakes_total",
            "Federation connections that did not start with a valid handshake.",
            &[],
            g.malformed_handshakes,
        );
        out.counter(
            "meshroom_federation_truncated_handshakes_total",
            "Federation connections closed before their first handshake message was complete.",
            &[],
            g.truncated_handshakes,
        );
    }
}
