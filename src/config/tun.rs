//! The `tun:` section: the TUN device on which every room is a multicast group.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunMode {
    /// Create the device when the process may (CAP_NET_ADMIN and /dev/net/tun), else warn and go on.
    #[default]
    Auto,
    /// The device is required: failing to create it is an error.
    On,
    Off,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TunConfig {
    #[serde(default)]
    pub enabled: TunMode,
    #[serde(default = "default_device")]
    pub device: String,
    /// Default UDP port of every room's group.
    #[serde(default = "default_port")]
    pub port: u16,
}

impl Default for TunConfig {
    fn default() -> Self {
        TunConfig {
            enabled: TunMode::default(),
            device: default_device(),
            port: default_port(),
        }
    }
}

fn default_device() -> String {
    "meshroom0".to_string()
}

fn default_port() -> u16 {
    7077
}
