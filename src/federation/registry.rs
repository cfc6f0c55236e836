//! The state the manager and its sessions share: every configured [`Peer`] with the
//! one-link-per-pair registry and the peer's known cursors, and [`Shared`] (hub, settings,
//! status figures, the handshake rate limit, link ids).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::guard::HandshakeGuard;
use super::link::LinkSettings;
use super::rooms::LocalRoom;
use super::secret::{KeyId, PeerSecret, RoomKey};
use super::status::{lock, FederationStatus, PeerFigures, PeerState};
use crate::config::PeerConfig;
use crate::hub::Hub;

/// The link currently carrying a peer's rooms.
struct ActiveLink {
    id: u64,
    /// Static key of the side that dialled it: the tie-break between crossing dials.
    dialer_key: [u8; 32],
    kick: mpsc::Sender<()>,
}

/// One configured peer.
pub struct Peer {
    pub label: String,
    pub host: String,
    pub port: u16,
    pub secret: PeerSecret,
    /// `peers[].key` of the configuration: the only static key this peer may present.
    pub pinned: Option<[u8; 32]>,
    pub figures: Arc<Mutex<PeerFigures>>,
    active: Mutex<Option<ActiveLink>>,
    cursors: Mutex<BTreeMap<String, u64>>,
}

impl Peer {
    pub(super) fn new(cfg: &PeerConfig) -> Self {
        Peer {
            label: cfg.label(),
            host: cfg.host.clone(),
            port: cfg.port,
            secret: PeerSecret::new(cfg.secret.expose()),
            pinned: cfg.pinned_key().ok().flatten(),
            figures: Arc::new(Mutex::new(PeerFigures::new(&cfg.host, cfg.port))),
            active: Mutex::new(None),
            cursors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes `id` the peer's link unless a better one exists. Of two links, the one dialled
    /// by the server with the smaller static key stays — both ends compute the same answer,
    /// so exactly one link per pair survives crossing dials. Between links dialled by the same
    /// server, the newer wins (the older is most likely dead).
    pub fn register(&self, id: u64, dialer_key: [u8; 32], kick: mpsc::Sender<()>) -> bool {
        let mut active = lock(&self.active);
        if let Some(cur) = active.as_ref() {
            if dialer_key > cur.dialer_key {
                return false;
            }
            let _ = cur.kick.try_send(());
        }
        *active = Some(ActiveLink {
            id,
            dialer_key,
            kick,
        });
        true
    }

    /// Ends `id`'s turn as the peer's link. Returns `false` when another link had already
    /// taken over (then the figures and participants are that link's, not ours to clear).
    pub fn unregister(&self, id: u64) -> bool {
        let mut active = lock(&self.active);
        if active.as_ref().is_some_and(|a| a.id == id) {
            *active = None;
            true
        } else {
            false
        }
    }

    pub fn is_active(&self, id: u64) -> bool {
        lock(&self.active).as_ref().is_some_and(|a| a.id == id)
    }

    pub fn has_link(&self) -> bool {
        lock(&self.active).is_some()
    }

    /// Cursors only ever move forward, whichever link reports them.
    pub fn note_cursor(&self, room: &str, ts: u64) {
        let mut c = lock(&self.cursors);
        let e = c.entry(room.to_string()).or_insert(0);
        *e = (*e).max(ts);
    }

    pub fn known_cursors(&self) -> Vec<(String, u64)> {
        lock(&self.cursors)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    pub(super) fn set_state_if_idle(&self, state: PeerState, error: Option<String>) {
        if self.has_link() {
            return;
        }
        let mut f = lock(&self.figures);
        f.set_state(state);
        if error.is_some() {
            f.last_error = error;
        }
    }
}

/// Tunables of the manager beyond the link's.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub max_failed_handshakes: u32,
}

pub struct Shared {
    pub hub: Hub,
    pub settings: Arc<LinkSettings>,
    pub manager: ManagerSettings,
    pub peers: Vec<Arc<Peer>>,
    pub(super) by_key: HashMap<KeyId, usize>,
    pub(super) guard: Mutex<HandshakeGuard>,
    pub status: Arc<FederationStatus>,
    pub shutdown: watch::Receiver<bool>,
    pub(super) next_id: AtomicU64,
}

impl Shared {
    pub fn next_link_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a failed handshake from `remote` towards its rate limit.
    pub fn handshake_failed(&self, remote: Option<SocketAddr>) {
        if let Some(a) = remote {
            lock(&self.guard).failed(a.ip(), std::time::Instant::now());
        }
    }

    pub(super) fn local_rooms(&self) -> Vec<LocalRoom> {
        self.hub
            .rooms()
            .into_iter()
            .map(|r| LocalRoom {
                key: r.psk.as_ref().map(|p| RoomKey::new(p.expose())),
                name: r.name,
            })
            .collect()
    }
}
