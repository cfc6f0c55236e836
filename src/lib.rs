//! meshroom-gw: a MeshCore multi-room server for Linux LoRa gateways.
//!
//! Map of the crate (see docs/DESIGN.md for the whole picture):
//! - [`config`]: the YAML schema, defaults and validation with file:line:column errors.
//! - [`post`]: the post types and the room clock rule (the ground floor).
//! - [`hub`]: rooms, posts, clocks, participants and fan-out — the centre every side plugs into.
//! - [`store`]: SQLite persistence with group commit.
//! - [`status`]: the figures behind `/status` and `/metrics`, and the sides' status sources.
//! - [`http`]: warp routes: `/status`, `/metrics`, the local post endpoint.
//! - [`settings`]: the configuration resolved into what the sides run with (run, reload, check-config).
//! - [`side`]: the context every side starts with.
//! - [`ratelog`]: log lines that repeat are counted, not repeated.
//! - [`textsafe`]: text from radio, TUN and peers escaped for a terminal.
//! - [`remote`]: the client address the shared HTTP listener hands to every side's routes.
//! - [`gateway`]: starts everything, handles signals, stops everything.
//! - [`cli`]: the `meshroom-gw` command line.
//! - [`meshcore`]: the MeshCore protocol core and room-server engine (radio side).
//! - [`radio`]: the LoRa radio (SX126x hardware or the simulated air), airtime and TX scheduling.
//! - [`tun`]: rooms as multicast groups on a TUN device (host side).
//! - [`federation`]: Noise-tunnel links to peer servers.
//! - [`ops`]: running as a service: systemd notifications, generated man pages and completions.
pub mod cli;
pub mod config;
pub mod federation;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod meshcore;
pub mod ops;
pub mod post;
pub mod radio;
pub mod ratelog;
pub mod remote;
pub mod settings;
pub mod side;
pub mod status;
pub mod store;
pub mod textsafe;
pub mod timefmt;
pub mod tun;
