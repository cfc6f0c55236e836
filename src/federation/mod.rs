//! Federation: peered meshroom-gw servers share their rooms over Noise tunnels.
//!
//! Sans-IO core (bytes, hub events and `now` in; actions out):
//! - [`codec`]: bounds-checked field reader/writer;
//! - [`frame`]: the frames peers exchange inside the tunnel, batched per Noise message;
//! - [`secret`]: key id, Noise PSK and room keys derived from secrets;
//! - [`handshake`]: `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s` with the key id in the prologue;
//! - [`rooms`]: which rooms a link shares, proven by MACs over the handshake hash;
//! - [`outbound`] / [`inbound`]: the sync protocol — cursors, window, catch-up, acks;
//! - [`link`]: one link's state machine tying the above together, with keepalives.
//!
//! IO shell (tokio): [`manager`] dials peers with [`backoff`], accepts on the `/federation`
//! WebSocket route (rate-limited by [`guard`]), keeps one link per peer; [`session`] runs one
//! link over a [`wire`] and bridges it with the hub; [`registry`] is the state both share (the
//! peers, one link per pair, the hub and settings); [`cursors`] are the per-(peer, room) sync
//! cursors in the state store; [`keyfile`] keeps the static key; [`status`] is what `/status`
//! and `/metrics` show; [`presence`] tells peers who is in each shared room. Dependencies run manager → session → registry/cursors, never back.
pub mod backoff;
pub mod codec;
pub mod cursors;
pub mod frame;
pub mod guard;
pub mod handshake;
pub mod inbound;
pub mod keyfile;
pub mod link;
#[cfg(test)]
mod link_tests;
pub mod manager;
pub mod outbound;
pub mod presence;
pub mod registry;
pub mod rooms;
pub mod secret;
pub mod session;
pub mod status;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::side::SideContext;

/// Starts federation: loads (or creates) the static key, registers the "peers" and
/// "federation" status sources, dials every configured peer, and returns the `/federation`
/// route for the HTTP server. `None` when no peers are configured.
pub fn spawn(ctx: &SideContext) -> anyhow::Result<Option<BoxedFilter<(Response,)>>> {
    let config = &ctx.config;
    if config.peers.is_empty() {
        return Ok(None);
    }
    for p in &config.peers {
        p.pinned_key().map_err(anyhow::Error::msg)?;
    }
    let fed = &config.federation;
    let key_path = if fed.static_key.is_absolute() {
        fed.static_key.clone()
    } else {
        ctx.hub.state_dir().join(&fed.static_key)
    };
    let static_key = keyfile::load_or_create(&key_path)?;
    let secs = |s: f64, fallback: f64| {
        Duration::from_secs_f64(if s.is_finite() && s > 0.0 {
            s
        } else {
            fallback
        })
    };
    let settings = link::LinkSettings {
        server: ctx.hub.server_name().to_string(),
        static_key,
        window: fed.window.max(1),
        live_queue: fed.live_queue.max(1),
        hop_limit: fed.hop_limit.max(1),
        keepalive: secs(fed.keepalive_s, 2.0),
        dead_after: secs(fed.dead_after_s, 6.0),
        handshake_timeout: Duration::from_secs(10),
        features: frame::Features::ALL,
    };
    let manager_settings = registry::ManagerSettings {
        backoff_min: secs(fed.backoff_min_s, 1.0),
        backoff_max: secs(fed.backoff_max_s, 60.0),
        max_failed_handshakes: fed.max_failed_handshakes,
    };
    let federation = manager::Federation::new(
        ctx.hub.clone(),
        settings,
        manager_settings,
        &config.peers,
        ctx.shutdown.clone(),
    );
    let status = federation.status();
    ctx.status
        .register(Arc::new(status::PeersSource(status.clone())));
    ctx.status
        .register(Arc::new(status::FederationSource(status)));
    federation.start_dialing();
    tracing::info!(
        peers = config.peers.len(),
        "federation: dialling peers; accepting links on /federation"
    );
    Ok(Some(federation.route()))
}
