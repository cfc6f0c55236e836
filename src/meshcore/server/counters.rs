//! What the MeshCore side counts: frames in and out, drops by reason, bad MACs, replays,
//! logins, posts, pushes and ACKs. The engine updates these; the service publishes them in
//! `/status` and `/metrics`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Engine-wide counters (all rooms together).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    pub frames_rx: u64,
    pub bytes_rx: u64,
    pub frames_tx: u64,
    pub recv_flood: u64,
    pub recv_direct: u64,
    pub sent_flood: u64,
    pub sent_direct: u64,
    pub flood_dups: u64,
    pub direct_dups: u64,
    /// Dropped frames by reason ("duplicate", "truncated", "not_for_us", …).
    pub dropped: BTreeMap<&'static str, u64>,
    pub bad_mac: u64,
    pub replays: u64,
    pub login_ok: u64,
    pub login_failed: u64,
    pub login_rate_limited: u64,
    pub posts_received: u64,
    pub posts_refused: u64,
    pub posts_acked: u64,
    pub pushes_sent: u64,
    pub push_acks: u64,
    pub push_timeouts: u64,
    pub pushes_truncated: u64,
    pub paths_learned: u64,
    pub keep_alives: u64,
    pub status_requests: u64,
    pub adverts_sent: u64,
    pub adverts_heard: u64,
    /// Zero-hop DISCOVER_REQ asking for room servers, and the answers sent (one per room).
    pub discover_requests: u64,
    pub discover_answers: u64,
    /// Admin CLI commands run, and GET_TELEMETRY / GET_ACCESS_LIST answered.
    pub cli_commands: u64,
    pub telemetry_requests: u64,
    pub access_list_requests: u64,
    /// Last received signal, for GET_STATUS.
    pub last_rssi: i16,
    pub last_snr_x4: i16,
}

impl Counters {
    pub fn drop(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_insert(0) += 1;
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Per-room counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RoomCounters {
    pub logins: u64,
    pub login_failed: u64,
    pub posts_received: u64,
    pub posts_acked: u64,
    pub pushes_sent: u64,
    pub push_acks: u64,
    pub push_timeouts: u64,
}
