//! The per-(peer, room) federation cursors in the hub's state store: their namespace and
//! loading them for a new link.

use std::collections::BTreeMap;

use super::registry::{Peer, Shared};

/// Namespace of the per-(peer, room) cursors in the hub's state store; key `host:port/room`.
pub const CURSOR_NS: &str = "federation.cursor";

/// Cursors of `peer` as persisted, merged with what this process already knows.
pub fn load_cursors(shared: &Shared, peer: &Peer) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let prefix = format!("{}/", peer.label);
    match shared.hub.state().list(CURSOR_NS) {
        Ok(entries) => {
            for (key, value) in entries {
                let Some(room) = key.strip_prefix(&prefix) else {
                    continue;
                };
                if let Some(ts) = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    out.insert(room.to_string(), ts);
                }
            }
        }
        Err(e) => tracing::warn!("federation: cannot read cursors: {e}"),
    }
    for (room, ts) in peer.known_cursors() {
        let e = out.entry(room).or_insert(0);
        *e = (*e).max(ts);
    }
    out
}
