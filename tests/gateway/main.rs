//! Whole gateway processes and the command line: `check-config`, `/status` and `/metrics`,
//! signals (SIGTERM, SIGKILL, SIGHUP reloads and what they change on the radio and TUN sides),
//! and systemd's notify protocol. One test binary (linking each costs minutes on 2 cores).

#[path = "../common/mod.rs"]
mod common;
#[path = "../tun_support/mod.rs"]
mod tun_support;

mod channel_config;
mod config_check;
mod config_errors;
mod dashboard_browser;
mod dashboard_events;
mod full_disk;
mod http_edge;
mod process;
mod reload;
mod systemd_notify;
mod terminal_escape;
