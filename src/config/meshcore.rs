//! The `meshcore:` section: how the rooms behave as MeshCore room servers on the air — advert
//! timing, when a silent participant counts as gone, push retries and login rate limits. Every
//! field has a default, so the section can be left out. `settings::engine_config` turns it into
//! the engine's timers.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshcoreConfig {
    /// Seconds between zero-hop adverts of each room (0 = only the one at start).
    pub advert_interval_s: f64,
    /// Zero-hop advert period for the first `early_adverts` adverts after start (0 = off).
    pub early_advert_interval_s: f64,
    pub early_adverts: u32,
    /// Seconds between flood adverts of each room (0 = never).
    pub flood_advert_interval_s: f64,
    /// Seconds after start before the first zero-hop advert.
    pub first_advert_delay_s: f64,
    /// Location advertised by every room (degrees); left out when unset.
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// A logged-in radio client not heard for this long leaves the participant list.
    pub silence_timeout_s: f64,
    /// Pause after a push before the next push round (per room).
    pub push_interval_s: f64,
    /// A post is pushed once it is this old, so its author's ACK goes out first.
    pub push_min_age_s: f64,
    /// ACK timeout of a flooded push.
    pub push_ack_timeout_flood_s: f64,
    /// ACK timeout of a direct push: this plus `push_ack_timeout_per_hop_s` × (hops + 1).
    pub push_ack_timeout_direct_s: f64,
    pub push_ack_timeout_per_hop_s: f64,
    /// Push timeouts in a row after which a client is skipped until it is heard again.
    pub push_max_failures: u32,
    /// Delay before a login reply or a request's response.
    pub reply_delay_s: f64,
    /// Distinct wrong passwords in a row from one key before that key is ignored: first for
    /// `login_block_first_s`, each further time twice as long, at most `login_block_s`.
    pub login_max_failures: u32,
    pub login_block_first_s: f64,
    pub login_block_s: f64,
    /// Clients remembered per room; the one heard least recently is dropped when full.
    pub max_clients: usize,
}

impl Default for MeshcoreConfig {
    fn default() -> Self {
        MeshcoreConfig {
            advert_interval_s: 600.0,
            early_advert_interval_s: 120.0,
            early_adverts: 5,
            flood_advert_interval_s: 43_200.0,
            first_advert_delay_s: 2.0,
            latitude: None,
            longitude: None,
            silence_timeout_s: 3_600.0,
            push_interval_s: 1.2,
            push_min_age_s: 1.0,
            push_ack_timeout_flood_s: 12.0,
            push_ack_timeout_direct_s: 4.0,
            push_ack_timeout_per_hop_s: 2.0,
            push_max_failures: 3,
            reply_delay_s: 0.3,
            login_max_failures: 5,
            login_block_first_s: 30.0,
            login_block_s: 300.0,
            max_clients: 100,
        }
    }
}
