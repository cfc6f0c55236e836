//! The `http:` section: where `/status`, `/metrics`, the local post endpoint and the federation
//! endpoint listen, and which networks may read the status pages.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Networks whose clients may read `/status` and `/metrics`. Everyone else gets 403.
    #[serde(default = "default_status_allow")]
    pub status_allow: Vec<IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            status_allow: default_status_allow(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}

fn default_status_allow() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("literal network"),
        "::1/128".parse().expect("literal network"),
    ]
}
