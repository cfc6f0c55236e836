//! Runs one established-or-handshaking [`Link`] over a WebSocket and bridges it with the hub.
//!
//! The loop feeds the link wire messages, hub deliveries, commit results and timer ticks, and
//! carries out its actions: sending (through a writer task with a bounded queue, so a peer
//! that stops reading ends its link instead of growing memory), submitting posts to the hub
//! (acknowledged only once committed, in order), reading history pages for catch-up, and
//! persisting cursors (coalesced, written in the background through the hub's state store).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio::time::Instant;

use super::cursors::CURSOR_NS;
use super::frame::{ByeReason, Features};
use super::handshake::HandshakeError;
use super::link::{Action, CloseReason, Link, PeerUp};
use super::presence;
use super::registry::{Peer, Shared};
use super::rooms::Role;
use super::status::{lock, PeerState};
use super::wire::{BoxIn, BoxOut, WireIn, WireOut};
use crate::hub::{AuthorKind, HubError, NewPost, Participant, Submitted, Via};

/// Messages waiting for the writer task; beyond this the peer is not reading and the link ends.
const OUT_QUEUE: usize = 1024;
/// Close reasons a listener gives when it refuses a handshake (see `manager::accept`).
pub const REFUSALS: [&str; 4] = [
    "unknown key id",
    "secret mismatch",
    "handshake failed",
    "not a federation handshake",
];
/// State namespace of the peers' static keys pinned on first use (key: the peer's label).
pub const PIN_NS: &str = "federation.peer_key";
/// Deliveries taken from the hub in one go before the link seals what they produced.
const DELIVERY_BATCH: usize = 512;

/// How a session ended, for the dial loop's next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The link was up and then ended (peer gone, dead, malformed, shutdown…).
    AfterUp(String),
    /// Lost the tie-break against another link to the same peer.
    Duplicate,
    /// Refused during the handshake (wrong secret, unknown key id, rate limit).
    Rejected(String),
    /// Failed before coming up for another reason (connection dropped, timeout).
    Failed(String),
    Shutdown,
}

/// PSK-mismatch warnings given: "peer/server" + room → when. A peer that reconnects every few
/// seconds would otherwise repeat them on every link; they come again after an hour, or at
/// once when a room starts differing anew (a new room, another server behind the peer).
static PSK_WARNED: Mutex<BTreeMap<(String, String), std::time::Instant>> =
    Mutex::new(BTreeMap::new());
const PSK_REWARN: Duration = Duration::from_secs(3600);

/// The rooms of `mismatched` to warn about now for `peer`, remembering that they were.
fn psk_warnings_due(
    warned: &mut BTreeMap<(String, String), std::time::Instant>,
    peer: &str,
    mismatched: &[String],
    now: std::time::Instant,
) -> Vec<String> {
    // Forget rooms that agree again (so a new disagreement is told) and anything stale.
    warned.retain(|(p, room), at| {
        now.saturating_duration_since(*at) < PSK_REWARN && (p != peer || mismatched.contains(room))
    });
    let mut due = Vec::new();
    for room in mismatched {
        if let std::collections::btree_map::Entry::Vacant(e) =
            warned.entry((peer.to_string(), room.clone()))
        {
            e.insert(now);
            due.push(room.clone());
        }
    }
    due
}

type SubmitFuture = BoxFuture<'static, (u64, Result<Submitted, HubError>)>;

/// Background writer of cursors: keeps only the newest value per room.
struct CursorSaver {
    pending: Arc<Mutex<BTreeMap<String, u64>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl CursorSaver {
    fn start(shared: &Arc<Shared>, peer: &Arc<Peer>) -> Self {
        let pending: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
        let wake = Arc::new(Notify::new());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = shared.hub.state();
        let label = peer.label.clone();
        let task = {
            let pending = pending.clone();
            let wake = wake.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    let batch = std::mem::take(&mut *lock(&pending));
                    for (room, ts) in batch {
                        let key = format!("{label}/{room}");
                        if let Err(e) = state
                            .put(CURSOR_NS, &key, ts.to_string().into_bytes())
                            .await
                        {
                            tracing::warn!("federation: cannot persist cursor for {key}: {e}");
                        }
                    }
                    if stop.load(std::sync::atomic::Ordering::Acquire) && lock(&pending).is_empty()
                    {
                        return;
                    }
                    wake.notified().await;
                }
            })
        };
        CursorSaver {
            pending,
            wake,
            task,
            stop,
        }
    }

    fn save(&self, room: String, ts: u64) {
        lock(&self.pending).insert(room, ts);
        self.wake.notify_one();
    }

    async fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

pub struct Session {
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    remote: Option<SocketAddr>,
    link: Link,
    link_id: u64,
    out_tx: mpsc::Sender<WireOut>,
    writer: tokio::task::JoinHandle<()>,
    submits: FuturesOrdered<SubmitFuture>,
    /// Fires once the newest submit has reached the hub's queue (see `drive`).
    last_started: Option<oneshot::Receiver<()>>,
    cursors: CursorSaver,
    up: Option<PeerUp>,
    registered: bool,
    kick_tx: mpsc::Sender<()>,
    kick_rx: mpsc::Receiver<()>,
    seen_in: u64,
    seen_out: u64,
    seen_hop: u64,
    /// Withheld channel posts and presence reports already added to the peer's figures.
    seen_withheld: (u64, u64),
    ending: Option<Ending>,
    /// A close reason for the peer's WebSocket close frame.
    close_text: Option<String>,
    /// Tells the peer who is present here in each shared room.
    presence: presence::Reporter,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        peer: Arc<Peer>,
        remote: Option<SocketAddr>,
        link: Link,
        out: BoxOut,
    ) -> Self {
        let (out_tx, mut out_rx) = mpsc::channel::<WireOut>(OUT_QUEUE);
        let writer = tokio::spawn(async move {
            let mut out = out;
            while let Some(first) = out_rx.recv().await {
                let closing = matches!(first, WireOut::Close(_));
                if out.feed(first).await.is_err() {
                    return;
                }
                // Everything already queued goes out in one flush.
                let mut closed = closing;
                while !closed {
                    let Ok(m) = out_rx.try_recv() else { break };
                    closed = matches!(m, WireOut::Close(_));
                    if out.feed(m).await.is_err() {
                        return;
                    }
                }
                if out.flush().await.is_err() {
                    return;
                }
            }
            let _ = out.close().await;
        });
        let cursors = CursorSaver::start(&shared, &peer);
        let (kick_tx, kick_rx) = mpsc::channel(1);
        let link_id = shared.next_link_id();
        let presence = presence::Reporter::new(shared.hub.participants());
        Session {
            shared,
            peer,
            remote,
            link,
            link_id,
            out_tx,
            writer,
            submits: FuturesOrdered::new(),
            last_started: None,
            cursors,
            up: None,
            registered: false,
            kick_tx,
            kick_rx,
            seen_in: 0,
            seen_out: 0,
            seen_hop: 0,
            seen_withheld: (0, 0),
            ending: None,
            close_text: None,
            presence,
        }
    }

    fn remote_text(&self) -> String {
        self.remote
            .map(|a| a.to_string())
            .unwrap_or_else(|| self.peer.label.clone())
    }

    /// Runs until the link ends; returns how.
    pub async fn run(mut self, mut inp: BoxIn) -> Ending {
        let mut deliveries = self.shared.hub.subscribe();
        let mut shutdown = self.shared.shutdown.clone();
        if *shutdown.borrow() {
            self.link.shutdown(ByeReason::Shutdown);
        }
        self.drive().await;
        while self.ending.is_none() {
            let deadline = Instant::from_std(self.link.next_deadline());
            tokio::select! {
                msg = inp.next() => match msg {
                    Some(WireIn::Binary(m)) => self.link.on_message(&m, std::time::Instant::now()),
                    Some(WireIn::Closed(reason)) => self.peer_went_away(reason),
                    Some(WireIn::Unexpected) => {
                        lock(&self.peer.figures).malformed += 1;
                        self.end_with(Ending::Failed("peer sent a non-binary WebSocket message".into()));
                    }
                    Some(WireIn::Error(e)) => self.peer_went_away(Some(e)),
                    None => self.peer_went_away(None),
                },
                Some((seq, result)) = self.submits.next(), if !self.submits.is_empty() => {
                    self.on_submitted(seq, result);
                    // Take every other finished submit too, so one ack covers them all.
                    while let Some(Some((seq, result))) = self.submits.next().now_or_never() {
                        self.on_submitted(seq, result);
                    }
                }
                d = deliveries.recv() => {
                    self.on_delivery(d);
                    for _ in 0..DELIVERY_BATCH {
                        match deliveries.try_recv() {
                            Ok(d) => self.on_delivery(Ok(d)),
                            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                                self.on_delivery(Err(broadcast::error::RecvError::Lagged(n)))
                            }
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline) => self.link.tick(std::time::Instant::now()),
                _ = self.presence.ready(), if self.registered => self.report_presence(),
                Some(()) = self.kick_rx.recv() => self.link.shutdown(ByeReason::DuplicateLink),
                _ = shutdown.changed() => self.link.shutdown(ByeReason::Shutdown),
            }
            self.drive().await;
        }
        self.finish().await
    }

    fn end_with(&mut self, ending: Ending) {
        if self.ending.is_none() {
            self.ending = Some(ending);
        }
    }

    fn peer_went_away(&mut self, reason: Option<String>) {
        if self.up.is_some() {
            let text = reason.unwrap_or_else(|| "connection closed".into());
            tracing::info!(peer = %self.peer.label, remote = %self.remote_text(), "federation link ended: {text}");
            self.end_with(Ending::AfterUp(format!(
                "peer closed the connection: {text}"
            )));
        } else {
            match reason {
                // Only the listener's refusals mean "your secret is not accepted here"; any
                // other close before the link is up (a restart, a network error) is a failure.
                Some(r) if REFUSALS.contains(&r.as_str()) => {
                    self.end_with(Ending::Rejected(format!("peer refused the handshake: {r}")))
                }
                Some(r) => self.end_with(Ending::Failed(format!(
                    "connection closed during the handshake: {r}"
                ))),
                None => self.end_with(Ending::Failed(
                    "connection closed during the handshake".into(),
                )),
            }
        }
    }

    fn on_submitted(&mut self, seq: u64, result: Result<Submitted, HubError>) {
        match result {
            Ok(Submitted::Accepted(_)) => self.link.committed(seq),
            Ok(Submitted::Duplicate(_)) => {
                lock(&self.peer.figures).duplicates_in += 1;
                self.link.committed(seq);
            }
            Err(HubError::Invalid(why)) => {
                // It can never be stored; acknowledging lets the peer move on.
                tracing::warn!(peer = %self.peer.label, "federation: refused a post: {why}");
                self.link.committed(seq);
            }
            Err(HubError::UnknownRoom(room)) => {
                tracing::warn!(peer = %self.peer.label, "federation: post for room `{room}` which is gone");
                self.link.committed(seq);
            }
            Err(e) => {
                // Not committed: no ack; the peer resends after the next handshake.
                tracing::error!(peer = %self.peer.label, "federation: cannot store a post: {e}");
                self.link.shutdown(ByeReason::Shutdown);
            }
        }
    }

    fn on_delivery(&mut self, d: Result<crate::hub::Delivery, broadcast::error::RecvError>) {
        match d {
            Ok(d) => {
                let via_this = d.via.side == AuthorKind::Peer
                    && d.via.link.as_deref() == Some(self.peer.label.as_str());
                self.link.offer(d.post, via_this);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!(peer = %self.peer.label, "federation: fell {n} posts behind the hub; reading history");
                self.link.lagged();
            }
            Err(broadcast::error::RecvError::Closed) => {
                self.link.shutdown(ByeReason::Shutdown);
            }
        }
    }

    /// Carries out everything the link asked for.
    async fn drive(&mut self) {
        while let Some(action) = self.link.poll_action() {
            match action {
                Action::Send(m) => {
                    if self.out_tx.try_send(WireOut::Binary(m)).is_err() {
                        lock(&self.peer.figures).last_error = Some("peer stopped reading".into());
                        self.link.shutdown(ByeReason::Shutdown);
                        self.end_with(Ending::AfterUp("peer stopped reading".into()));
                    }
                }
                Action::Up(up) => self.on_up(up),
                Action::Deliver(incoming) => {
                    let hub = self.shared.hub.clone();
                    let p = incoming.post;
                    let ours = match super::outbound::origin_key(&p.origin) {
                        Some(key) => key.eq_ignore_ascii_case(&hex::encode(
                            self.shared.settings.static_key.public,
                        )),
                        None => p.origin == self.shared.hub.server_name(),
                    };
                    if ours {
                        lock(&self.peer.figures).echoes_in += 1;
                    }
                    let new = NewPost {
                        id: Some(p.id),
                        room: p.room,
                        author: p.author,
                        origin: Some(p.origin),
                        author_ts: p.author_ts,
                        text: p.text,
                        hops: p.hops,
                        via: Via::peer(self.peer.label.clone()),
                    };
                    let seq = incoming.seq;
                    // Submits run concurrently (so the hub commits them in groups) but must
                    // reach the hub's queue in arrival order, or the room clock would stamp
                    // them out of order: each one's first poll — the one that enqueues it —
                    // waits for the previous one's, and is exempt from tokio's coop budget
                    // (which could otherwise turn it into a Pending that enqueued nothing).
                    let (started_tx, started_rx) = oneshot::channel::<()>();
                    let previous = self.last_started.replace(started_rx);
                    self.submits.push_back(Box::pin(async move {
                        if let Some(previous) = previous {
                            let _ = previous.await;
                        }
                        let mut submit = Box::pin(tokio::task::unconstrained(hub.submit(new)));
                        let first = futures_util::poll!(submit.as_mut());
                        let _ = started_tx.send(());
                        let result = match first {
                            std::task::Poll::Ready(r) => r,
                            std::task::Poll::Pending => submit.await,
                        };
                        (seq, result)
                    }));
                }
                Action::FetchHistory {
                    room,
                    after_ts,
                    limit,
                } => match self.shared.hub.history_after(&room, after_ts, limit).await {
                    Ok(posts) => self.link.history(&room, posts, limit),
                    Err(e) => {
                        tracing::error!("federation: cannot read history of `{room}`: {e}");
                        self.link.shutdown(ByeReason::Shutdown);
                    }
                },
                Action::SaveCursor { room, room_ts } => {
                    self.peer.note_cursor(&room, room_ts);
                    self.cursors.save(room, room_ts);
                }
                Action::Presence(p) => {
                    if let Some(up) = &self.up {
                        presence::received(self.shared.hub.participants(), &up.server, p);
                    }
                }
                Action::Close(reason) => self.on_close(reason),
            }
        }
        self.update_figures();
        tokio::task::yield_now().await;
    }

    /// Is the key the peer presents the one this peer may have? Servers are told apart by
    /// their static key: never this server's own, never one another configured peer is linked
    /// with, and the pinned one (`peers[].key`, else the first one seen, kept in the state).
    fn check_identity(&self, up: &PeerUp) -> Result<(), String> {
        let key = hex::encode(up.static_key);
        if up.static_key == self.shared.settings.static_key.public {
            return Err(format!(
                "the peer presents this server's own static key {key} (a copy of this server's state?)"
            ));
        }
        for other in &self.shared.peers {
            if Arc::ptr_eq(other, &self.peer) {
                continue;
            }
            let f = lock(&other.figures);
            if f.state == PeerState::Connected && f.static_key.as_deref() == Some(key.as_str()) {
                return Err(format!(
                    "the peer presents static key {key}, already linked as peer {}: two peers cannot share a key",
                    other.label
                ));
            }
        }
        let state = self.shared.hub.state();
        let first_seen = state
            .get(PIN_NS, &self.peer.label)
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok());
        let (pinned, source) = match (self.peer.pinned, first_seen) {
            (Some(k), _) => (hex::encode(k), "peers[].key in the configuration"),
            (None, Some(k)) => (k, "first seen, kept in the state"),
            (None, None) => {
                tracing::info!(peer = %self.peer.label, key = %key, "federation: pinned the peer's static key on first use");
                let label = self.peer.label.clone();
                let value = key.clone().into_bytes();
                tokio::spawn(async move {
                    if let Err(e) = state.put(PIN_NS, &label, value).await {
                        tracing::warn!("federation: cannot keep the static key of {label}: {e}");
                    }
                });
                return Ok(());
            }
        };
        if pinned.eq_ignore_ascii_case(&key) {
            return Ok(());
        }
        Err(format!(
            "static key changed: the peer presents {key} but {pinned} is pinned ({source}); if the peer's key really changed, set peers[].key to the new key"
        ))
    }

    fn report_presence(&mut self) {
        let Some(up) = &self.up else { return };
        let reports = self
            .presence
            .reports(self.shared.hub.participants(), &up.rooms.shared);
        for p in reports {
            self.link.presence(p);
        }
    }

    fn on_up(&mut self, up: PeerUp) {
        if let Err(why) = self.check_identity(&up) {
            tracing::error!(peer = %self.peer.label, remote = %self.remote_text(), server = %crate::textsafe::escape(&up.server), "federation link refused: {why}");
            {
                let mut f = lock(&self.peer.figures);
                f.set_state(PeerState::KeyChanged);
                f.last_error = Some(why.clone());
            }
            self.close_text = Some("static key refused".into());
            self.link.shutdown(ByeReason::ProtocolError);
            self.end_with(Ending::Rejected(why));
            return;
        }
        let dialer_key = match up.role {
            Role::Dialer => self.shared.settings.static_key.public,
            Role::Listener => up.static_key,
        };
        if !self
            .peer
            .register(self.link_id, dialer_key, self.kick_tx.clone())
        {
            tracing::info!(peer = %self.peer.label, "federation: both sides dialled; keeping the other link");
            self.up = Some(up);
            self.link.shutdown(ByeReason::DuplicateLink);
            return;
        }
        self.registered = true;
        let direction = match up.role {
            Role::Dialer => "outbound",
            Role::Listener => "inbound",
        };
        tracing::info!(
            peer = %self.peer.label,
            remote = %self.remote_text(),
            server = %crate::textsafe::escape(&up.server),
            key = %hex::encode(up.static_key),
            direction,
            shared = ?up.rooms.shared,
            "federation link up"
        );
        let peer_key = format!(
            "{:p}/{}/{}",
            Arc::as_ptr(&self.peer),
            self.peer.label,
            up.server
        );
        for room in psk_warnings_due(
            &mut lock(&PSK_WARNED),
            &peer_key,
            &up.rooms.psk_mismatch,
            std::time::Instant::now(),
        ) {
            tracing::warn!(peer = %self.peer.label, server = %crate::textsafe::escape(&up.server), "federation: private room `{}` exists at the peer with a different PSK (or public); not shared on this link", crate::textsafe::escape(&room));
        }
        {
            let mut f = lock(&self.peer.figures);
            f.set_state(PeerState::Connected);
            f.last_error = None;
            f.server = Some(up.server.clone());
            f.static_key = Some(hex::encode(up.static_key));
            f.direction = Some(direction);
            f.shared_rooms = up.rooms.shared.clone();
            f.room_proof_failures +=
                (up.rooms.unverified_proofs + up.rooms.psk_mismatch.len()) as u64;
            f.psk_mismatch_rooms = up.rooms.psk_mismatch.clone();
            f.links_up += 1;
            let missing = up.features.missing(Features::ALL);
            f.features = up.features.names();
            f.missing_features = missing.names();
            f.note = (!missing.is_empty()).then(|| older_build_note(missing));
        }
        let missing = up.features.missing(Features::ALL);
        if !missing.is_empty() {
            tracing::warn!(
                peer = %self.peer.label,
                server = %crate::textsafe::escape(&up.server),
                "federation: {}",
                older_build_note(missing)
            );
        }
        let now = self.shared.hub.now();
        for room in &up.rooms.shared {
            let mut p = Participant::new(AuthorKind::Peer, self.peer.label.clone(), now);
            p.name = Some(up.server.clone());
            self.shared.hub.participants().join(room, p);
        }
        self.up = Some(up);
        self.presence.now();
    }

    fn on_close(&mut self, reason: CloseReason) {
        let remote = self.remote_text();
        if reason.is_malformed() {
            lock(&self.peer.figures).malformed += 1;
            tracing::warn!(peer = %self.peer.label, %remote, "federation link ended: {reason}");
        }
        let ending = match &reason {
            CloseReason::Local(ByeReason::DuplicateLink)
            | CloseReason::PeerBye(ByeReason::DuplicateLink) => Ending::Duplicate,
            CloseReason::Local(ByeReason::Shutdown) if *self.shared.shutdown.borrow() => {
                Ending::Shutdown
            }
            CloseReason::Handshake(HandshakeError::SecretMismatch) => {
                lock(&self.peer.figures).secret_mismatches += 1;
                self.shared.handshake_failed(self.remote);
                tracing::warn!(peer = %self.peer.label, %remote, "federation handshake refused: secret mismatch");
                self.close_text = Some("secret mismatch".into());
                Ending::Rejected("secret mismatch".into())
            }
            CloseReason::HandshakeTimeout if self.up.is_none() => {
                // Not a secret mismatch: the PSK never got checked. Counted apart.
                lock(&self.peer.figures).truncated_handshakes += 1;
                tracing::debug!(peer = %self.peer.label, %remote, "federation handshake timed out");
                self.close_text = Some("handshake timed out".into());
                Ending::Failed("handshake timed out".into())
            }
            CloseReason::Handshake(e) if self.up.is_none() => {
                tracing::warn!(peer = %self.peer.label, %remote, "federation handshake failed: {e}");
                self.close_text = Some("handshake failed".into());
                Ending::Rejected(e.to_string())
            }
            _ if self.up.is_some() => {
                if !reason.is_malformed() {
                    tracing::info!(peer = %self.peer.label, %remote, "federation link ended: {reason}");
                }
                Ending::AfterUp(reason.to_string())
            }
            _ => {
                tracing::info!(peer = %self.peer.label, %remote, "federation link failed: {reason}");
                Ending::Failed(reason.to_string())
            }
        };
        if self.close_text.is_none() {
            self.close_text = Some(match &reason {
                CloseReason::Local(_) => "closing".into(),
                other if other.is_malformed() => "malformed".into(),
                _ => "closing".into(),
            });
        }
        self.end_with(ending);
    }

    fn update_figures(&mut self) {
        let s = self.link.stats().clone();
        let active = self.registered && self.peer.is_active(self.link_id);
        let mut f = lock(&self.peer.figures);
        f.posts_in += s.posts_in - self.seen_in;
        f.posts_out += s.posts_out - self.seen_out;
        f.dropped_hop_limit += s.dropped_hop_limit - self.seen_hop;
        f.withheld_channel_posts += s.withheld_channel_posts - self.seen_withheld.0;
        f.withheld_presence += s.withheld_presence - self.seen_withheld.1;
        self.seen_in = s.posts_in;
        self.seen_out = s.posts_out;
        self.seen_hop = s.dropped_hop_limit;
        self.seen_withheld = (s.withheld_channel_posts, s.withheld_presence);
        if active {
            f.rtt_ms = s.rtt.map(|d| d.as_secs_f64() * 1000.0);
        }
    }

    async fn finish(mut self) -> Ending {
        let ending = self.ending.take().unwrap_or(Ending::Failed("ended".into()));
        // Status first: the link is over for the user now, whatever the teardown below takes.
        if self.registered && self.peer.unregister(self.link_id) {
            if let Some(up) = &self.up {
                for room in &up.rooms.shared {
                    self.shared
                        .hub
                        .participants()
                        .leave(room, AuthorKind::Peer, &self.peer.label);
                }
                self.shared
                    .hub
                    .participants()
                    .clear_remote(&up.server, &up.rooms.shared);
            }
            let mut f = lock(&self.peer.figures);
            f.shared_rooms.clear();
            f.rtt_ms = None;
            f.direction = None;
            // The dial loop moves it on (backing off, connecting) from here.
            f.set_state(PeerState::Connecting);
            if let Ending::AfterUp(why) = &ending {
                f.last_error = Some(why.clone());
            }
        }
        // Commits still running finish (their posts are stored) but are not acked: the peer
        // resends them after reconnecting and they come back as duplicates.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.submits.next().await.is_some() {}
        })
        .await;
        let _ = self
            .out_tx
            .try_send(WireOut::Close(self.close_text.take().unwrap_or_default()));
        drop(self.out_tx);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer).await;
        self.cursors.finish().await;
        ending
    }
}

/// What a peer on an older build misses, in words (log line and `/status` `note`).
fn older_build_note(missing: Features) -> String {
    let mut lacks = Vec::new();
    if missing.has(Features::PRESENCE) {
        lacks.push("presence (who is in a room here is not shown there)");
    }
    if missing.has(Features::CHANNEL_POSTS) {
        lacks.push("channel posts (rooms that keep a MeshCore channel are shared without the channel's messages)");
    }
    format!(
        "the peer runs an older meshroom-gw build that lacks {}; the link works without them; upgrade the peer to get them",
        lacks.join(" and ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_mismatch_is_told_once_per_peer_and_room_across_reconnects() {
        let mut warned = BTreeMap::new();
        let t0 = std::time::Instant::now();
        let ops = vec!["ops".to_string()];
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(psk_warnings_due(&mut warned, "a", &ops, t0), ops);
        // The same peer reconnecting every few seconds: nothing more.
        for s in 1..100 {
            assert!(psk_warnings_due(&mut warned, "a", &ops, at(s * 5)).is_empty());
        }
        // Another peer with the same room is its own warning.
        assert_eq!(psk_warnings_due(&mut warned, "b", &ops, at(10)), ops);
        // A room that starts differing is told at once, the old one not again.
        let both = vec!["ops".to_string(), "staff".to_string()];
        assert_eq!(
            psk_warnings_due(&mut warned, "a", &both, at(600)),
            vec!["staff".to_string()]
        );
        // Fixed, then broken again: told again.
        assert!(psk_warnings_due(&mut warned, "a", &[], at(700)).is_empty());
        assert_eq!(psk_warnings_due(&mut warned, "a", &ops, at(710)), ops);
        // Still differing an hour on: a reminder.
        assert!(psk_warnings_due(&mut warned, "a", &ops, at(710 + 3599)).is_empty());
        assert_eq!(
            psk_warnings_due(&mut warned, "a", &ops, at(710 + 3600)),
            ops
        );
    }
}
