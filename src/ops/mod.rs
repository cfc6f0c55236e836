//! Operating the gateway as an installed service: readiness and reload notifications to systemd,
//! and the manual pages and shell completions the Debian package ships, generated from the
//! command-line definition so they never drift from it.

pub mod docs;
pub mod notify;
