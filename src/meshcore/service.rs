//! The MeshCore side's IO shell: connects the sans-IO [`Engine`] to the radio (frames in, frames
//! out with a priority) and to the hub (posts committed before they are ACKed, every committed
//! post pushed, client sync state and room clocks persisted, participants listed), and
//! publishes its counters as the `meshcore` status source.
//!
//! The radio is reached through a [`RadioLink`]: a channel of received frames and a
//! [`Transmitter`]. The gateway adapts its radio backend to it, tests and benchmarks use
//! channels directly.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::keystore;
use super::server::channel::{ChannelPost, OutgoingPost};
use super::server::engine::{
    Action, Engine, EngineConfig, Now, PostTicket, Priority, RadioPost, RoomAccess, RoomSetup,
};
use super::server::history::{PostAuthor, RoomPost, PUSH_WINDOW};
use super::server::roster::{ClientRecord, Role};
use super::wire::identity::PublicKey;
use crate::hub::participants::Participant;
use crate::hub::{Author, AuthorKind, Hub, NewPost, Post, PostId, RoomInfo, Submitted, Via};
use crate::side::SideContext;
use crate::status::{Metrics, StatusSource};

/// A frame the radio received.
#[derive(Clone, Debug)]
pub struct Received {
    pub bytes: Vec<u8>,
    pub rssi_dbm: i16,
    pub snr_db: f32,
    /// When its last byte arrived (post → ACK latency is measured from here).
    pub at: Instant,
}

/// Where the engine's frames go: the radio's transmit scheduler.
pub trait Transmitter: Send + Sync + 'static {
    fn transmit(&self, frame: Vec<u8>, priority: Priority);
}

/// The radio as the MeshCore side sees it.
pub struct RadioLink {
    pub rx: mpsc::Receiver<Received>,
    pub tx: Arc<dyn Transmitter>,
}

/// Namespaces in the hub's state store.
const NS_CLOCK: &str = "meshcore.clock";
fn ns_clients(room: &str) -> String {
    format!("meshcore.clients.{room}")
}

/// Longest sleep when the engine has no timer running (a cheap safety net, not a tick).
const IDLE_WAKE: Duration = Duration::from_secs(3600);
/// Shortest pause between two timer runs, so a deadline the engine cannot act on yet never
/// turns into a busy loop.
const MIN_TIMER_GAP: Duration = Duration::from_millis(2);

/// A room's access settings as the engine takes them (the ACL comes from the store).
fn room_access(room: &RoomInfo) -> RoomAccess {
    RoomAccess {
        admin_password: room
            .admin_password
            .as_ref()
            .map(|p| p.expose().as_bytes().to_vec()),
        allow_read_only: room.allow_read_only,
        acl: Vec::new(),
        location: room.location.and_then(|(lat, lon)| micro_degrees(lat, lon)),
    }
}

/// Degrees as the advert carries them (× 1e6), when finite.
pub fn micro_degrees(lat: f64, lon: f64) -> Option<(i32, i32)> {
    (lat.is_finite() && lon.is_finite()).then(|| {
        (
            (lat.clamp(-90.0, 90.0) * 1e6).round() as i32,
            (lon.clamp(-180.0, 180.0) * 1e6).round() as i32,
        )
    })
}

/// A room's ACL as the hub keeps it.
fn load_acl(hub: &Hub, room: &str) -> Vec<(PublicKey, Role)> {
    hub.acls()
        .list(room)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, r)| Some((PublicKey::from_hex(&k)?, Role::parse(r)?)))
        .collect()
}
/// Post → ACK latency samples kept for the percentiles in `/status`.
const LATENCY_SAMPLES: usize = 1024;

/// Latency from a post's last radio byte to its ACK handed to the transmitter.
#[derive(Default)]
struct AckLatency {
    samples: Vec<f64>,
    next: usize,
}

impl AckLatency {
    fn add(&mut self, ms: f64) {
        if self.samples.len() < LATENCY_SAMPLES {
            self.samples.push(ms);
        } else {
            self.samples[self.next] = ms;
            self.next = (self.next + 1) % LATENCY_SAMPLES;
        }
    }
    fn percentile(&self, p: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut s = self.samples.clone();
        s.sort_by(|a, b| a.total_cmp(b));
        let i = ((s.len() - 1) as f64 * p).round() as usize;
        s.get(i).copied()
    }
}

/// What `/status` and `/metrics` read; shared with the running loop.
pub struct MeshcoreStatus {
    engine: Arc<Mutex<Engine>>,
    latency: Mutex<AckLatency>,
    /// Times the side's loop woke up (a frame, a commit, a post, a reload or a timer).
    wakeups: AtomicU64,
}

impl MeshcoreStatus {
    /// Times the side's loop has woken up since start (idle cost, see the footprint bench).
    pub fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StatusSource for MeshcoreStatus {
    fn key(&self) -> &'static str {
        "meshcore"
    }

    fn status(&self) -> Value {
        let engine = lock(&self.engine);
        let c = engine.counters();
        let mut rooms = serde_json::Map::new();
        for r in 0..engine.room_count() {
            let name = engine.room_name(r).unwrap_or("?").to_string();
            let key = engine
                .room_public_key(r)
                .map(|k| k.to_hex())
                .unwrap_or_default();
            rooms.insert(
                name,
                json!({
                    "public_key": key,
                    "hash": key.get(..2).unwrap_or(""),
                    "clients": engine.client_count(r),
                    "participants": engine.participants(r).len(),
                    "history": engine.history_len(r),
                    "acl": engine.acl(r).len(),
                    "counters": engine.room_counters(r),
                    "channel": engine.channel_status(r),
                }),
            );
        }
        let lat = lock(&self.latency);
        json!({
            "rooms": rooms,
            "counters": c,
            "dropped_total": c.dropped_total(),
            "wakeups": self.wakeups(),
            "post_to_ack_ms": {
                "samples": lat.samples.len(),
                "p50": lat.percentile(0.5),
                "p99": lat.percentile(0.99),
            },
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let engine = lock(&self.engine);
        let c = engine.counters();
        let total = [
            ("frames_rx", c.frames_rx, "Frames received from the radio"),
            ("frames_tx", c.frames_tx, "Frames handed to the radio"),
            (
                "bad_mac",
                c.bad_mac,
                "Datagrams for our rooms whose MAC did not verify",
            ),
            (
                "replays",
                c.replays,
                "Logins, posts and requests dropped as replays",
            ),
            ("login_ok", c.login_ok, "Successful logins"),
            (
                "login_failed",
                c.login_failed,
                "Logins with a wrong password",
            ),
            (
                "login_rate_limited",
                c.login_rate_limited,
                "Logins ignored because the key failed too often",
            ),
            (
                "posts_received",
                c.posts_received,
                "Posts received over the air",
            ),
            ("posts_refused", c.posts_refused, "Posts refused (too long)"),
            (
                "posts_acked",
                c.posts_acked,
                "Posts acknowledged after commit",
            ),
            (
                "pushes_sent",
                c.pushes_sent,
                "Posts pushed to radio clients",
            ),
            ("push_acks", c.push_acks, "Pushes acknowledged by clients"),
            (
                "push_timeouts",
                c.push_timeouts,
                "Pushes without ACK in time",
            ),
            ("adverts_sent", c.adverts_sent, "Room adverts sent"),
        ];
        for (name, v, help) in total {
            out.counter(&format!("meshroom_meshcore_{name}_total"), help, &[], v);
        }
        for (reason, v) in &c.dropped {
            out.counter(
                "meshroom_meshcore_dropped_total",
                "Frames dropped, by reason",
                &[("reason", reason)],
                *v,
            );
        }
        for r in 0..engine.room_count() {
            let name = engine.room_name(r).unwrap_or("?");
            out.gauge(
                "meshroom_meshcore_room_clients",
                "Radio clients logged in to the room",
                &[("room", name)],
                engine.client_count(r) as f64,
            );
            if let Some(rc) = engine.room_counters(r) {
                out.counter(
                    "meshroom_meshcore_room_posts_received_total",
                    "Posts received over the air, per room",
                    &[("room", name)],
                    rc.posts_received,
                );
                out.counter(
                    "meshroom_meshcore_room_pushes_sent_total",
                    "Pushes sent, per room",
                    &[("room", name)],
                    rc.pushes_sent,
                );
            }
        }
        for r in 0..engine.room_count() {
            let (Some(name), Some(ch)) = (engine.room_name(r), engine.channel_status(r)) else {
                continue;
            };
            let labels = [("room", name), ("channel", ch.name.as_str())];
            let c = &ch.counters;
            for (what, v, help) in [
                ("heard", c.heard, "Channel messages heard on the air"),
                ("stored", c.stored, "Channel messages stored as posts"),
                (
                    "duplicates",
                    c.duplicates,
                    "Channel messages already in the room",
                ),
                (
                    "transmitted",
                    c.transmitted,
                    "Room posts sent on the channel",
                ),
                (
                    "rate_limited",
                    c.rate_limited,
                    "Room posts not sent: over the channel's rate limit",
                ),
                ("cut", c.cut, "Room posts cut to fit a channel message"),
                (
                    "bad_mac",
                    c.bad_mac,
                    "Messages with the channel's hash whose MAC did not verify",
                ),
                (
                    "not_text",
                    c.not_text,
                    "Channel data that is not plain text",
                ),
                (
                    "echo_suppressed",
                    c.echo_suppressed,
                    "Room posts not sent: the channel already carried them",
                ),
            ] {
                out.counter(
                    &format!("meshroom_meshcore_channel_{what}_total"),
                    help,
                    &labels,
                    v,
                );
            }
            out.gauge(
                "meshroom_meshcore_channel_queued",
                "Room posts waiting for the channel's rate limit",
                &labels,
                ch.queued as f64,
            );
        }
        let lat = lock(&self.latency);
        for (q, p) in [("0.5", 0.5), ("0.99", 0.99)] {
            if let Some(v) = lat.percentile(p) {
                out.gauge(
                    "meshroom_meshcore_post_to_ack_ms",
                    "Post received to its ACK handed to the radio",
                    &[("quantile", q)],
                    v,
                );
            }
        }
    }
}

/// The running MeshCore side.
pub struct MeshcoreHandle {
    pub status: Arc<MeshcoreStatus>,
    pub task: tokio::task::JoinHandle<()>,
}

/// How a committed post is shown on the air: MeshCore authors of this server by their key,
/// anyone else by name (with the server they wrote on, when it is not this one).
pub fn room_post(post: &Post, server_name: &str) -> RoomPost {
    let radio_key = (post.author.kind == AuthorKind::Radio && post.origin == server_name)
        .then(|| PublicKey::from_hex(&post.author.id))
        .flatten();
    let author = match radio_key {
        Some(k) => PostAuthor::Radio(k),
        None => {
            let mut name = match &post.author.name {
                // Channel senders are unauthenticated: shown as `channel:name`.
                _ if post.author.kind == AuthorKind::Channel => post.author.id.clone(),
                Some(n) if !n.is_empty() => n.clone(),
                // A bare MeshCore key is long; its first bytes identify it well enough.
                _ => post.author.id.chars().take(12).collect(),
            };
            if post.origin != server_name && !name.contains('@') {
                name = format!("{name}@{}", crate::post::origin_name(&post.origin));
            }
            PostAuthor::Named(name)
        }
    };
    RoomPost {
        id: post.id.0,
        room_ts: post.room_ts.min(u32::MAX as u64) as u32,
        room_us: post.room_us,
        author,
        text: post.text.clone(),
    }
}

/// A channel sender's author id: marked as a channel name, which anyone can claim.
pub fn channel_author_id(sender: Option<&str>) -> String {
    format!("channel:{}", sender.unwrap_or("?"))
}

/// A committed post as the channel bridge sees it.
pub fn outgoing(post: &Post, server_name: &str) -> OutgoingPost {
    let author_name = match (&post.author.name, post.author.kind) {
        (Some(n), _) if !n.is_empty() => Some(n.clone()),
        (_, AuthorKind::Channel) => None,
        // A bare key or address is long; its first characters identify it well enough.
        _ => Some(post.author.id.chars().take(12).collect()),
    };
    OutgoingPost {
        id: post.id.0,
        kind: post.author.kind,
        author_name,
        remote_origin: (post.origin != server_name).then(|| post.origin.clone()),
        origin: crate::post::origin_name(&post.origin).to_string(),
        author_ts: post.author_ts.min(u64::from(u32::MAX)) as u32,
        text: post.text.clone(),
    }
}

fn now_of(start: Instant, hub: &Hub) -> Now {
    Now {
        mono_ms: start.elapsed().as_millis() as u64,
        unix: hub.now().min(u32::MAX as u64) as u32,
    }
}

/// Loads identities and state, starts the loop, registers the status source.
pub async fn spawn(
    ctx: &SideContext,
    engine_config: EngineConfig,
    link: RadioLink,
) -> anyhow::Result<MeshcoreHandle> {
    let hub = ctx.hub.clone();
    let rooms = hub.rooms();
    let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
    let identities = keystore::room_identities(hub.state_dir(), &names, &mut rand::thread_rng())
        .context("cannot load or create the rooms' MeshCore identities")?;
    let state = hub.state();
    let mut setups = Vec::with_capacity(rooms.len());
    for (room, identity) in rooms.iter().zip(identities) {
        let clock = state
            .get(NS_CLOCK, &room.name)
            .ok()
            .flatten()
            .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0);
        let clients: Vec<ClientRecord> = state
            .list(&ns_clients(&room.name))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .collect();
        // Only the push window is kept in RAM; a client further behind is served from the store.
        let window = (room.max_history as usize).clamp(1, PUSH_WINDOW);
        let history = hub
            .recent(&room.name, window)
            .await
            .unwrap_or_default()
            .iter()
            .map(|p| room_post(p, hub.server_name()))
            .collect();
        let mut access = room_access(room);
        access.acl = load_acl(&hub, &room.name);
        tracing::info!(room = %room.name, public_key = %identity.public(), clients = clients.len(), acl = access.acl.len(), "MeshCore room server");
        setups.push(RoomSetup {
            name: room.name.clone(),
            identity,
            password: room.psk.as_ref().map(|p| p.expose().as_bytes().to_vec()),
            max_history: room.max_history as usize,
            clock,
            clients,
            history,
            access,
        });
    }
    let start = Instant::now();
    let engine = Engine::new(engine_config, setups, rand::random(), now_of(start, &hub));
    let engine = Arc::new(Mutex::new(engine));
    let status = Arc::new(MeshcoreStatus {
        engine: engine.clone(),
        latency: Mutex::new(AckLatency::default()),
        wakeups: AtomicU64::new(0),
    });
    ctx.status.register(status.clone());
    let task = tokio::spawn(run(
        hub,
        engine,
        status.clone(),
        link,
        ctx.shutdown.clone(),
        start,
    ));
    Ok(MeshcoreHandle { status, task })
}

/// A page of history read for the engine: `(room, after_us, posts or None when the read failed)`.
type Page = (usize, u64, Option<Vec<RoomPost>>);

enum Persist {
    Client { room: String, record: ClientRecord },
    Clock { room: String, clock: u32 },
}

/// Writes client records and clocks in order, coalescing bursts.
async fn persist_loop(hub: Hub, mut rx: mpsc::UnboundedReceiver<Persist>) {
    let state = hub.state();
    while let Some(op) = rx.recv().await {
        let result = match op {
            Persist::Client { room, record } => match serde_json::to_vec(&record) {
                Ok(v) => state.put(&ns_clients(&room), &record.key, v).await,
                Err(_) => Ok(()),
            },
            Persist::Clock { room, clock } => {
                state
                    .put(NS_CLOCK, &room, clock.to_le_bytes().to_vec())
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!("cannot persist MeshCore state: {e}");
        }
    }
}

struct Shell {
    hub: Hub,
    engine: Arc<Mutex<Engine>>,
    status: Arc<MeshcoreStatus>,
    tx: Arc<dyn Transmitter>,
    persist: mpsc::UnboundedSender<Persist>,
    commits: mpsc::UnboundedSender<(PostTicket, bool)>,
    pages: mpsc::UnboundedSender<Page>,
    /// When each pending post's frame arrived.
    arrived: HashMap<PostTicket, Instant>,
    room_names: Vec<String>,
    start: Instant,
}

impl Shell {
    fn now(&self) -> Now {
        now_of(self.start, &self.hub)
    }

    fn apply(
        &mut self,
        actions: Vec<Action>,
        arrived: Option<Instant>,
        acking: Option<PostTicket>,
    ) {
        for a in actions {
            match a {
                Action::Transmit {
                    frame,
                    priority,
                    delay_ms,
                } => {
                    if let Some(t) = acking.and_then(|t| self.arrived.remove(&t)) {
                        lock(&self.status.latency).add(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    if delay_ms == 0 {
                        self.tx.transmit(frame, priority);
                    } else {
                        let tx = self.tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                            tx.transmit(frame, priority);
                        });
                    }
                }
                Action::Post(p) => {
                    if let Some(t) = arrived {
                        self.arrived.insert(p.ticket, t);
                    }
                    self.submit(p);
                }
                Action::SaveClient { room, record } => {
                    if let Some(name) = self.room_names.get(room) {
                        let _ = self.persist.send(Persist::Client {
                            room: name.clone(),
                            record,
                        });
                    }
                }
                Action::SaveClock { room, clock } => {
                    if let Some(name) = self.room_names.get(room) {
                        let _ = self.persist.send(Persist::Clock {
                            room: name.clone(),
                            clock,
                        });
                    }
                }
                Action::ChannelPost(p) => self.submit_channel(p),
                Action::ParticipantsChanged { room } => self.publish_participants(room),
                Action::FetchHistory {
                    room,
                    after_us,
                    limit,
                } => self.fetch_history(room, after_us, limit),
                Action::SaveAcl { room, key, role } => self.save_acl(room, key, role),
                Action::Heard { room, key } => {
                    if let Some(name) = self.room_names.get(room) {
                        let now = self.hub.now();
                        self.hub
                            .participants()
                            .touch(name, AuthorKind::Radio, &key.to_hex(), now);
                    }
                }
            }
        }
        if self.arrived.len() > 256 {
            // Tickets whose commit never came back: keep the map bounded.
            self.arrived.clear();
        }
    }

    /// Persists an ACL change an admin made over the air; the hub then announces it (and the
    /// engine, which has it already, applies it again harmlessly).
    fn save_acl(&self, room: usize, key: PublicKey, role: Option<Role>) {
        let Some(name) = self.room_names.get(room).cloned() else {
            return;
        };
        let acls = self.hub.acls();
        tokio::spawn(async move {
            let role = role.map(Role::as_str);
            match acls.set(&name, &key.to_hex(), role).await {
                Ok(()) => {
                    tracing::info!(room = %name, key = %hex::encode(&key.0[..4]), role = role.unwrap_or("removed"), "ACL changed over the air")
                }
                Err(e) => tracing::warn!(room = %name, "cannot store an ACL change: {e}"),
            }
        });
    }

    /// An ACL change from the hub (`meshroom-gw acl`, or ours coming back).
    fn follow_acl(&self, change: crate::hub::AclChange) {
        let Some(room) = self.room_names.iter().position(|n| *n == change.room) else {
            return;
        };
        let Some(key) = PublicKey::from_hex(&change.key) else {
            return;
        };
        let role = change.role.and_then(Role::parse);
        lock(&self.engine).set_acl(room, key, role);
        self.publish_participants(room);
    }

    fn publish_participants(&self, room: usize) {
        let Some(name) = self.room_names.get(room) else {
            return;
        };
        let list = lock(&self.engine)
            .participants(room)
            .into_iter()
            .map(|p| Participant {
                kind: AuthorKind::Radio,
                id: p.key.to_hex(),
                name: p.name,
                role: Some(p.role.as_str().to_string()),
                since: p.since_unix,
                last_heard: p.last_heard_unix,
            })
            .collect();
        self.hub
            .participants()
            .set_side(name, AuthorKind::Radio, list);
    }

    /// Reads a page of history off the loop; the answer comes back as an event.
    fn fetch_history(&self, room: usize, after_us: u64, limit: usize) {
        let Some(name) = self.room_names.get(room).cloned() else {
            return;
        };
        let hub = self.hub.clone();
        let pages = self.pages.clone();
        tokio::spawn(async move {
            let page = match hub.history_after(&name, after_us, limit).await {
                Ok(posts) => Some(
                    posts
                        .iter()
                        .map(|p| room_post(p, hub.server_name()))
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(room = %name, "cannot read history for a push: {e}");
                    None
                }
            };
            let _ = pages.send((room, after_us, page));
        });
    }

    fn submit(&self, p: RadioPost) {
        let Some(room) = self.room_names.get(p.room).cloned() else {
            return;
        };
        let hub = self.hub.clone();
        let commits = self.commits.clone();
        tokio::spawn(async move {
            let new = NewPost {
                id: Some(PostId(p.id)),
                room,
                author: Author {
                    kind: AuthorKind::Radio,
                    id: p.author.to_hex(),
                    name: p.author_name,
                },
                origin: None,
                author_ts: p.author_ts as u64,
                text: p.text,
                hops: 0,
                via: Via::side(AuthorKind::Radio),
            };
            let ok = match hub.submit(new).await {
                Ok(Submitted::Accepted(_)) | Ok(Submitted::Duplicate(_)) => true,
                Err(e) => {
                    tracing::warn!("radio post not stored (no ACK; the client will retry): {e}");
                    false
                }
            };
            let _ = commits.send((p.ticket, ok));
        });
    }

    /// A message heard on a room's channel: stored like any post (kind `channel`, the derived id
    /// so that every gateway that heard it makes the same post).
    fn submit_channel(&self, p: ChannelPost) {
        let Some(room) = self.room_names.get(p.room).cloned() else {
            return;
        };
        let hub = self.hub.clone();
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let new = NewPost {
                id: Some(PostId(p.id)),
                room,
                author: Author {
                    kind: AuthorKind::Channel,
                    id: channel_author_id(p.sender.as_deref()),
                    name: p.sender,
                },
                origin: None,
                author_ts: u64::from(p.timestamp),
                text: p.text,
                hops: 0,
                via: Via::side(AuthorKind::Channel),
            };
            let stored = match hub.submit(new).await {
                Ok(Submitted::Accepted(_)) => true,
                Ok(Submitted::Duplicate(_)) => false,
                Err(e) => {
                    tracing::warn!("channel message not stored: {e}");
                    false
                }
            };
            lock(&engine).channel_committed(p.room, p.id, stored);
        });
    }

    /// Applies a configuration reload: changed PSKs to the next logins, changed history depths to
    /// the push windows.
    fn follow_rooms(&self, rooms: &[RoomInfo]) {
        let mut engine = lock(&self.engine);
        for (i, name) in self.room_names.iter().enumerate() {
            if let Some(room) = rooms.iter().find(|r| &r.name == name) {
                engine.set_room_password(
                    i,
                    room.psk.as_ref().map(|p| p.expose().as_bytes().to_vec()),
                );
                engine.set_room_max_history(i, room.max_history as usize);
                engine.set_room_access(i, room_access(room));
            }
        }
    }

    /// After the fan-out lagged: refill each room's push window from the store.
    async fn refill(&mut self) {
        let server = self.hub.server_name().to_string();
        for (i, name) in self.room_names.iter().enumerate() {
            let Some(room) = self.hub.room(name) else {
                continue;
            };
            let window = (room.max_history as usize).clamp(1, PUSH_WINDOW);
            if let Ok(posts) = self.hub.recent(name, window).await {
                let now = self.now();
                let mut engine = lock(&self.engine);
                for p in &posts {
                    engine.room_post(now, i, room_post(p, &server));
                }
            }
        }
    }
}

async fn run(
    hub: Hub,
    engine: Arc<Mutex<Engine>>,
    status: Arc<MeshcoreStatus>,
    link: RadioLink,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    start: Instant,
) {
    let RadioLink { mut rx, tx } = link;
    let (persist_tx, persist_rx) = mpsc::unbounded_channel();
    let persist_task = tokio::spawn(persist_loop(hub.clone(), persist_rx));
    let (commit_tx, mut commit_rx) = mpsc::unbounded_channel();
    let (page_tx, mut page_rx) = mpsc::unbounded_channel::<Page>();
    let room_names = {
        let e = lock(&engine);
        (0..e.room_count())
            .filter_map(|i| e.room_name(i).map(str::to_string))
            .collect()
    };
    let mut deliveries = hub.subscribe();
    let mut shell = Shell {
        hub,
        engine,
        status,
        tx,
        persist: persist_tx,
        commits: commit_tx,
        pages: page_tx,
        arrived: HashMap::new(),
        room_names,
        start,
    };
    for room in 0..shell.room_names.len() {
        shell.publish_participants(room);
    }
    let mut rooms = shell.hub.watch_rooms();
    // Event driven: after every event the engine says when its next timer is due, and the loop
    // sleeps until then or until the next frame, commit, post or reload.
    let mut last_timer = tokio::time::Instant::now();
    let mut acl_changes = shell.hub.acls().subscribe();
    loop {
        let wake = {
            let next = lock(&shell.engine).next_deadline();
            let floor = last_timer + MIN_TIMER_GAP;
            match next {
                Some(ms) => {
                    let due = start + Duration::from_millis(ms);
                    tokio::time::Instant::from_std(due).max(floor)
                }
                None => tokio::time::Instant::now() + IDLE_WAKE,
            }
        };
        shell.status.wakeups.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                let now = shell.now();
                let acts = lock(&shell.engine).handle_frame(now, &frame.bytes, frame.rssi_dbm, frame.snr_db);
                shell.apply(acts, Some(frame.at), None);
            }
            Some((ticket, ok)) = commit_rx.recv() => {
                let now = shell.now();
                let acts = lock(&shell.engine).post_committed(now, ticket, ok);
                shell.apply(acts, None, Some(ticket));
                shell.arrived.remove(&ticket);
            }
            Some((room, after_us, page)) = page_rx.recv() => {
                let mut engine = lock(&shell.engine);
                match page {
                    Some(posts) => engine.history_page(room, after_us, posts),
                    None => engine.history_failed(room),
                }
            }
            d = deliveries.recv() => match d {
                Ok(d) => {
                    let now = shell.now();
                    if let Some(room) = shell.room_names.iter().position(|n| *n == d.post.room) {
                        let post = room_post(&d.post, shell.hub.server_name());
                        let mut engine = lock(&shell.engine);
                        engine.room_post(now, room, post);
                        engine.channel_offer(room, &outgoing(&d.post, shell.hub.server_name()));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("MeshCore side fell {n} posts behind; refilling from the store");
                    shell.refill().await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            change = acl_changes.recv() => match change {
                Ok(change) => shell.follow_acl(change),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Missed notices: the store has the truth.
                    let mut engine = lock(&shell.engine);
                    for (i, name) in shell.room_names.iter().enumerate() {
                        for (key, role) in load_acl(&shell.hub, name) {
                            engine.set_acl(i, key, Some(role));
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {}
            },
            Ok(()) = rooms.changed() => {
                let rooms = rooms.borrow_and_update().clone();
                shell.follow_rooms(&rooms);
            }
            _ = tokio::time::sleep_until(wake) => {
                last_timer = tokio::time::Instant::now();
                let now = shell.now();
                let acts = lock(&shell.engine).tick(now);
                shell.apply(acts, None, None);
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    drop(shell);
    let _ = persist_task.await;
}
