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
    /// Connections the listener holds at once (further bounded by the open-file limit).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one remote address may hold at once (allowed networks and configured
    /// peers' addresses first use a reserved pool of their own).
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Connections kept back for `status_allow` networks and configured peers' addresses.
    #[serde(default = "default_reserved_connections")]
    pub reserved_connections: usize,
    /// Seconds a client has to send a complete request head, counted from connecting or from
    /// the previous answer on a kept-alive connection (so also the idle keep-alive limit).
    #[serde(default = "default_header_timeout_s")]
    pub header_timeout_s: f64,
    /// Seconds one request (its body included) may take before it is answered 408.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            status_allow: default_status_allow(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            reserved_connections: default_reserved_connections(),
            header_timeout_s: default_header_timeout_s(),
            request_timeout_s: default_request_timeout_s(),
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

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_address() -> usize {
    32
}

fn default_reserved_connections() -> usize {
    64
}

fn default_header_timeout_s() -> f64 {
    10.0
}

fn default_request_timeout_s() -> f64 {
    30.0
}
