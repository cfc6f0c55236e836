//! The `meshcore:` section: how the rooms behave as MeshCore room servers on the air — advert
//! timing, when a silent participant counts as gone, push retries and login rate limits. Every
//! field has a default, so the section can be left out.

use serde::{Deserialize, Serialize};

use crate::meshcore::server::engine::EngineConfig;

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeshcoreConfig {
    /// Seconds between zero-hop adverts of each room (0 = only the one at start).
    pub advert_interval_s: f64,
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
    /// Wrong passwords in a row from one key before that key is ignored for `login_block_s`.
    pub login_max_failures: u32,
    pub login_block_s: f64,
    /// Clients remembered per room; the one heard least recently is dropped when full.
    pub max_clients: usize,
}

impl Default for MeshcoreConfig {
    fn default() -> Self {
        MeshcoreConfig {
            advert_interval_s: 600.0,
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
            login_block_s: 300.0,
            max_clients: 100,
        }
    }
}

fn ms(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1000.0).round() as u64
    } else {
        0
    }
}

impl MeshcoreConfig {
    /// The engine's timers and limits.
    pub fn engine(&self) -> EngineConfig {
        let location = match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((
                (lat.clamp(-90.0, 90.0) * 1e6) as i32,
                (lon.clamp(-180.0, 180.0) * 1e6) as i32,
            )),
            _ => None,
        };
        EngineConfig {
            first_advert_delay_ms: ms(self.first_advert_delay_s),
            advert_interval_ms: ms(self.advert_interval_s),
            flood_advert_interval_ms: ms(self.flood_advert_interval_s),
            location,
            silence_timeout_ms: ms(self.silence_timeout_s),
            push_interval_ms: ms(self.push_interval_s),
            push_min_age_ms: ms(self.push_min_age_s),
            push_ack_timeout_flood_ms: ms(self.push_ack_timeout_flood_s),
            push_ack_timeout_direct_ms: ms(self.push_ack_timeout_direct_s),
            push_ack_timeout_per_hop_ms: ms(self.push_ack_timeout_per_hop_s),
            push_max_failures: self.push_max_failures,
            reply_delay_ms: ms(self.reply_delay_s),
            login_max_failures: self.login_max_failures,
            login_block_ms: ms(self.login_block_s),
            max_clients: self.max_clients.max(1),
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_engine_defaults() {
        assert_eq!(MeshcoreConfig::default().engine(), EngineConfig::default());
    }

    #[test]
    fn location_is_sent_in_millionths_of_a_degree() {
        let c = MeshcoreConfig {
            latitude: Some(37.5),
            longitude: Some(-122.25),
            ..MeshcoreConfig::default()
        };
        assert_eq!(c.engine().location, Some((37_500_000, -122_250_000)));
    }
}
