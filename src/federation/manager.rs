//! The peer manager: dials every configured peer (with backoff), accepts links on the
//! `/federation` WebSocket route, keeps exactly one link per peer, and creates the shared state
//! the sessions use ([`Shared`]: hub, settings, status figures, the handshake rate limit).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::backoff::Backoff;
use super::cursors::load_cursors;
use super::guard::HandshakeGuard;
use super::handshake::parse_header;
use super::link::{Link, LinkSettings};
use super::registry::{ManagerSettings, Peer, Shared};
use super::session::{Ending, Session};
use super::status::{lock, FederationStatus, PeerState};
use super::wire::{self, WireIn, WireOut, MAX_WIRE_MESSAGE};
use crate::config::PeerConfig;
use crate::hub::Hub;
use crate::ratelog::{repeated, Throttle};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The running federation side.
#[derive(Clone)]
pub struct Federation {
    shared: Arc<Shared>,
}

impl Federation {
    pub fn new(
        hub: Hub,
        settings: LinkSettings,
        manager: ManagerSettings,
        peers: &[PeerConfig],
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let peers: Vec<Arc<Peer>> = peers.iter().map(|p| Arc::new(Peer::new(p))).collect();
        let mut by_key = HashMap::new();
        for (i, p) in peers.iter().enumerate() {
            // Two peers with one secret cannot be told apart; the first wins (config warns).
            by_key.entry(p.secret.key_id()).or_insert(i);
        }
        let status = Arc::new(FederationStatus {
            peers: peers.iter().map(|p| p.figures.clone()).collect(),
            global: Mutex::default(),
        });
        lock(&status.global).static_key = hex::encode(settings.static_key.public);
        Federation {
            shared: Arc::new(Shared {
                hub,
                settings: Arc::new(settings),
                guard: Mutex::new(HandshakeGuard::new(manager.max_failed_handshakes)),
                manager,
                peers,
                by_key,
                status,
                shutdown,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    pub fn status(&self) -> Arc<FederationStatus> {
        self.shared.status.clone()
    }

    /// Starts one dial loop per configured peer.
    pub fn start_dialing(&self) {
        for peer in &self.shared.peers {
            tokio::spawn(dial_loop(self.shared.clone(), peer.clone()));
        }
    }

    /// The `/federation` WebSocket route. It answers any address: the handshake, not the
    /// network, decides who may federate. Nothing is refused before its key id is read: a
    /// handshake naming a configured peer's key id is always tried (a Noise message costs a few
    /// DH operations, and the shared listener bounds connections per address); failures from
    /// an address are rate-limited only for key ids nobody configured.
    pub fn route(&self) -> BoxedFilter<(Response,)> {
        let shared = self.shared.clone();
        let upgrade = warp::path!("federation")
            .and(warp::ws())
            .and(crate::remote::remote())
            .map(move |ws: warp::ws::Ws, remote: Option<SocketAddr>| {
                let shared = shared.clone();
                ws.max_message_size(MAX_WIRE_MESSAGE)
                    .max_frame_size(MAX_WIRE_MESSAGE)
                    .on_upgrade(move |socket| accept(shared, socket, remote))
                    .into_response()
            });
        // Anything else on the path: a plain request (426) or another method (405).
        let other =
            warp::path!("federation")
                .and(warp::method())
                .map(|method: warp::http::Method| {
                    let (status, msg) = if method == warp::http::Method::GET {
                        (
                            StatusCode::UPGRADE_REQUIRED,
                            "federation links are WebSocket connections",
                        )
                    } else {
                        (
                            StatusCode::METHOD_NOT_ALLOWED,
                            "this endpoint answers GET only",
                        )
                    };
                    let mut r = warp::reply::with_status(
                        warp::reply::json(&serde_json::json!({ "error": msg })),
                        status,
                    )
                    .into_response();
                    r.headers_mut().insert(
                        warp::http::header::ALLOW,
                        warp::http::HeaderValue::from_static("GET"),
                    );
                    r
                });
        upgrade.or(other).unify().boxed()
    }
}

static TRUNCATED: Throttle = Throttle::per_minute();
static MALFORMED: Throttle = Throttle::per_minute();
static UNKNOWN_KEY: Throttle = Throttle::per_minute();

async fn accept(shared: Arc<Shared>, socket: warp::ws::WebSocket, remote: Option<SocketAddr>) {
    use futures_util::{SinkExt, StreamExt};
    let (mut out, mut inp) = wire::from_warp(socket);
    let remote_text = remote.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
    let ip = remote
        .map(|a| crate::remote::canonical(a.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let first = tokio::time::timeout(shared.settings.handshake_timeout, inp.next()).await;
    let msg = match first {
        Ok(Some(WireIn::Binary(m))) => m,
        _ => {
            // Connections that never complete their first message: scanners, or someone
            // replaying a sniffed prefix. Counted, not held against any peer.
            lock(&shared.status.global).truncated_handshakes += 1;
            shared.handshake_failed(remote);
            if let Some(n) = TRUNCATED.hit() {
                tracing::warn!(remote = %remote_text, "federation: connection closed without a complete handshake (counted in /status federation.truncated_handshakes){}", repeated(n));
            }
            let _ = out
                .send(WireOut::Close("expected a handshake".into()))
                .await;
            return;
        }
    };
    let over_limit = || !lock(&shared.guard).allow(ip, std::time::Instant::now());
    let (key_id, body) = match parse_header(&msg) {
        Ok(x) => x,
        Err(e) => {
            if over_limit() {
                lock(&shared.status.global).rate_limited += 1;
            } else {
                lock(&shared.status.global).malformed_handshakes += 1;
                shared.handshake_failed(remote);
                if let Some(n) = MALFORMED.hit() {
                    tracing::warn!(remote = %remote_text, "federation handshake refused: {e}{}", repeated(n));
                }
            }
            let _ = out
                .send(WireOut::Close("not a federation handshake".into()))
                .await;
            return;
        }
    };
    let Some(peer) = shared
        .by_key
        .get(&key_id)
        .and_then(|i| shared.peers.get(*i))
        .cloned()
    else {
        if over_limit() {
            lock(&shared.status.global).rate_limited += 1;
            let _ = out.send(WireOut::Close("rate limited".into())).await;
            return;
        }
        {
            let mut g = lock(&shared.status.global);
            g.unknown_key_attempts += 1;
            g.last_unknown_from = Some(remote_text.clone());
        }
        shared.handshake_failed(remote);
        if let Some(n) = UNKNOWN_KEY.hit() {
            tracing::warn!(remote = %remote_text, "federation handshake refused: unknown key id (no peer is configured with this secret){}", repeated(n));
        }
        let _ = out.send(WireOut::Close("unknown key id".into())).await;
        return;
    };
    let cursors = load_cursors(&shared, &peer);
    let link = match Link::accept(
        shared.settings.clone(),
        &peer.secret,
        shared.local_rooms(),
        cursors,
        body,
        std::time::Instant::now(),
    ) {
        Ok(l) => l,
        Err(e) => {
            // The first message did not parse as Noise: malformed, not a secret mismatch
            // (the PSK only shows in the third message).
            lock(&peer.figures).malformed += 1;
            lock(&shared.status.global).malformed_handshakes += 1;
            if let Some(n) = MALFORMED.hit() {
                tracing::warn!(peer = %peer.label, remote = %remote_text, "federation handshake refused: {e}{}", repeated(n));
            }
            let _ = out.send(WireOut::Close("handshake failed".into())).await;
            return;
        }
    };
    let ending = Session::new(shared.clone(), peer.clone(), remote, link, out)
        .run(inp)
        .await;
    if let Ending::AfterUp(why) | Ending::Failed(why) = &ending {
        peer.set_state_if_idle(PeerState::Connecting, Some(why.clone()));
    }
}

async fn dial_loop(shared: Arc<Shared>, peer: Arc<Peer>) {
    let mut backoff = Backoff::new(shared.manager.backoff_min, shared.manager.backoff_max);
    let mut shutdown = shared.shutdown.clone();
    let url = format!("ws://{}/federation", peer.label);
    let ws_config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_WIRE_MESSAGE))
        .max_frame_size(Some(MAX_WIRE_MESSAGE));
    loop {
        if *shutdown.borrow() {
            return;
        }
        // While a link (either direction) carries this peer, there is nothing to dial.
        while peer.has_link() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return,
            }
        }
        peer.set_state_if_idle(PeerState::Connecting, None);
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config), true),
        );
        let outcome = tokio::select! {
            r = attempt => r,
            _ = shutdown.changed() => return,
        };
        let ending = match outcome {
            Ok(Ok((ws, _response))) => {
                let remote = ws.get_ref().get_ref_peer_addr();
                let (out, inp) = wire::from_tungstenite(ws);
                match Link::dial(
                    shared.settings.clone(),
                    &peer.secret,
                    shared.local_rooms(),
                    load_cursors(&shared, &peer),
                    std::time::Instant::now(),
                ) {
                    Ok(link) => {
                        Session::new(shared.clone(), peer.clone(), remote, link, out)
                            .run(inp)
                            .await
                    }
                    Err(e) => Ending::Failed(e.to_string()),
                }
            }
            Ok(Err(e)) => {
                use tokio_tungstenite::tungstenite::Error as WsError;
                match e {
                    WsError::Http(resp) if resp.status() == StatusCode::TOO_MANY_REQUESTS => {
                        Ending::Rejected("peer rate-limits us after failed handshakes".into())
                    }
                    WsError::Http(resp) => Ending::Failed(format!(
                        "peer answered HTTP {} (no federation endpoint?)",
                        resp.status()
                    )),
                    other => Ending::Failed(format!("cannot connect: {other}")),
                }
            }
            Err(_) => Ending::Failed("connect timed out".into()),
        };
        let jitter: f64 = rand::random();
        let delay = match ending {
            Ending::Shutdown => return,
            Ending::Duplicate => continue,
            Ending::AfterUp(why) => {
                backoff.reset();
                peer.set_state_if_idle(PeerState::BackingOff, Some(why));
                backoff.next_delay(jitter)
            }
            Ending::Rejected(why)
                if why.starts_with("static key") || why.contains("static key ") =>
            {
                // Logged and shown (key_changed) by the session already.
                peer.set_state_if_idle(PeerState::KeyChanged, Some(why));
                backoff.next_delay(jitter)
            }
            Ending::Rejected(why) => {
                if !why.contains("rate-limits") {
                    lock(&peer.figures).secret_mismatches += 1;
                }
                tracing::warn!(peer = %peer.label, "federation: {why}");
                peer.set_state_if_idle(PeerState::Rejected, Some(why));
                backoff.next_delay(jitter)
            }
            Ending::Failed(why) => {
                tracing::debug!(peer = %peer.label, "federation: {why}");
                peer.set_state_if_idle(PeerState::BackingOff, Some(why));
                backoff.next_delay(jitter)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Helper so the dial loop can name the TCP peer of a tungstenite stream.
trait PeerAddr {
    fn get_ref_peer_addr(&self) -> Option<SocketAddr>;
}

impl PeerAddr for tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream> {
    fn get_ref_peer_addr(&self) -> Option<SocketAddr> {
        match self {
            tokio_tungstenite::MaybeTlsStream::Plain(s) => s.peer_addr().ok(),
            _ => None,
        }
    }
}
