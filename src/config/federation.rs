//! The `peers:` list and the `federation:` section: which servers we share rooms with.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub host: String,
    #[serde(default = "default_peer_port")]
    pub port: u16,
    /// The secret this pair of servers shares; a different one for every pair.
    pub secret: super::rooms::Psk,
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
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            hop_limit: default_hop_limit(),
        }
    }
}

fn default_hop_limit() -> u8 {
    8
}
