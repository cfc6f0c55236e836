//! Helpers for the federation end-to-end tests: peer lists, waiting for convergence, reading
//! a peer's status entry, counting posts by id.
#![allow(dead_code, unused_imports)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

pub use crate::common::wait_until;
use crate::common::{free_port, Gateway};

/// One planned gateway: name, port and temp dir, known before any of them starts so that
/// every peer list can name the others.
pub struct Plan {
    pub name: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Plan {
    pub fn new(name: &str) -> Plan {
        Plan {
            name: name.to_string(),
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes the config and starts the process.
    pub fn start(&self, body: &str) -> Gateway {
        let mut gw = Gateway::configure(&self.name, self.dir.path(), self.port, body, &[]);
        gw.spawn();
        gw
    }
}

/// A `peers:` entry.
pub fn peer(port: u16, secret: &str) -> String {
    format!("  - host: \"127.0.0.1\"\n    port: {port}\n    secret: \"{secret}\"\n")
}

/// Quick timers so the tests see reconnects within seconds.
pub const FAST_FEDERATION: &str =
    "federation:\n  keepalive_s: 0.5\n  dead_after_s: 2.0\n  backoff_min_s: 0.2\n  backoff_max_s: 2.0\n";

pub fn config(rooms: &str, peers: &[String]) -> String {
    let mut s = format!("rooms:\n{rooms}");
    if !peers.is_empty() {
        s.push_str("peers:\n");
        for p in peers {
            s.push_str(p);
        }
    }
    s.push_str(FAST_FEDERATION);
    s
}

/// The `/status` entry of the peer listening on `port`.
pub fn peer_status(gw: &Gateway, port: u16) -> Value {
    gw.status()["peers"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|p| p["port"].as_u64() == Some(u64::from(port)))
                .cloned()
        })
        .unwrap_or(Value::Null)
}

pub fn connected(gw: &Gateway, port: u16) -> bool {
    peer_status(gw, port)["state"] == "connected"
}

/// How often each post id appears in the room's history.
pub fn id_counts(gw: &Gateway, room: &str, psk: Option<&str>) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for p in gw.history_with_psk(room, 100_000, psk) {
        *out.entry(p["id"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    out
}

/// Texts in the room's history.
pub fn texts(gw: &Gateway, room: &str, psk: Option<&str>) -> Vec<String> {
    gw.history_with_psk(room, 100_000, psk)
        .iter()
        .map(|p| p["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub const SETTLE: Duration = Duration::from_secs(30);

/// Proves every link between `gws` is flushed: each gateway posts a marker into `room`, and
/// this waits until every gateway has every marker. A link carries its posts in order, so
/// whatever a gateway had to relay before its marker has arrived once the marker has. Returns
/// the markers' ids (to leave out of counts).
pub fn flush_links(gws: &[&Gateway], room: &str, psk: Option<&str>) -> Vec<String> {
    let marks: Vec<String> = gws
        .iter()
        .map(|g| {
            g.try_post(
                room,
                "marker",
                &format!("flush marker from {}", g.name),
                psk,
            )
            .expect("marker post")
        })
        .collect();
    assert!(
        wait_until(SETTLE, || gws.iter().all(|g| {
            let have = id_counts(g, room, psk);
            marks.iter().all(|m| have.contains_key(m))
        })),
        "flush markers did not reach every gateway"
    );
    marks
}

/// [`id_counts`] without the flush markers.
pub fn id_counts_without(
    gw: &Gateway,
    room: &str,
    psk: Option<&str>,
    marks: &[String],
) -> HashMap<String, usize> {
    let mut counts = id_counts(gw, room, psk);
    counts.retain(|id, _| !marks.contains(id));
    counts
}
