//! The room-server engine: every configured room as a MeshCore room server on one radio,
//! sans-IO.
//!
//! Frames and the time go in ([`Engine::handle_frame`], [`Engine::tick`]); [`Action`]s come
//! out: frames to transmit with a priority, posts for the hub to commit, client state and room
//! clocks to persist, participant changes. The engine never reads a clock, touches a socket or
//! waits: the service (`service.rs`) does that, and tests drive the engine directly.
//!
//! A post is ACKed only after the hub has committed it: the engine emits [`Action::Post`] with
//! a [`PostTicket`], and sends the ACK when the caller reports the outcome through
//! [`Engine::post_committed`].

use std::collections::{HashMap, VecDeque};

use rand::rngs::StdRng;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::channel::{
    ChannelBinding, ChannelPost, ChannelSetup, ChannelStatus, Heard, OutgoingPost,
};
use super::counters::{Counters, RoomCounters};
use super::dedup::Dedup;
use super::history::RoomPost;
use super::room::{DatagramOutcome, IncomingPost, Room};
use super::roster::{ClientRecord, Role};
use crate::meshcore::wire;
use crate::meshcore::wire::advert::NodeType;
use crate::meshcore::wire::control::DiscoverReq;
use crate::meshcore::wire::identity::{LocalIdentity, PublicKey};
use crate::meshcore::wire::message::StatusBody;
use crate::meshcore::wire::packet::{Frame, PacketRepr, PayloadType, RouteType};
use crate::meshcore::wire::payload::Payload;

/// The time, as the caller sees it: a monotonic clock for timers and the wall clock for
/// MeshCore timestamps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds on a monotonic clock (any origin).
    pub mono_ms: u64,
    /// Unix seconds.
    pub unix: u32,
}

/// Transmit priority: the scheduler sends login replies and ACKs before pushes before adverts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    Reply,
    Push,
    Advert,
    /// Bridged channel messages: after everything else.
    Channel,
}

/// Index of a room in the order the engine was given them.
pub type RoomId = usize;

/// Identifies a post waiting for the hub's commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PostTicket(pub u64);

/// A post received over the air, to be committed by the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioPost {
    pub ticket: PostTicket,
    pub room: RoomId,
    /// Stable id derived from (room, author, timestamp, text): a retry of the same post gets the
    /// same id, so the hub reports it as a duplicate instead of storing it twice.
    pub id: [u8; 16],
    pub author: PublicKey,
    /// The author's advert name, when heard.
    pub author_name: Option<String>,
    pub author_ts: u32,
    pub text: String,
}

/// A participant as the hub's participant list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub key: PublicKey,
    pub name: Option<String>,
    pub role: Role,
    pub since_unix: u64,
    pub last_heard_unix: u64,
}

/// What the engine asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Transmit this frame, not before `delay_ms` from now.
    Transmit {
        frame: Vec<u8>,
        priority: Priority,
        delay_ms: u64,
    },
    /// Commit this post, then call [`Engine::post_committed`].
    Post(RadioPost),
    /// Persist a client's sync state (survives restarts).
    SaveClient { room: RoomId, record: ClientRecord },
    /// Persist the room's clock (adverts and login replies never go back in time).
    SaveClock { room: RoomId, clock: u32 },
    /// The room's participant list changed: read [`Engine::participants`].
    ParticipantsChanged { room: RoomId },
    /// A participant was heard.
    Heard { room: RoomId, key: PublicKey },
    /// Store this channel message in its room, then call [`Engine::channel_committed`].
    ChannelPost(ChannelPost),
    /// Read up to `limit` posts of the room after the room clock `after_us` (µs) from the store
    /// for a client behind the push window, then call [`Engine::history_page`] (or
    /// [`Engine::history_failed`]).
    FetchHistory {
        room: RoomId,
        after_us: u64,
        limit: usize,
    },
    /// An admin changed the room's access list over the air: persist it (`None`: removed).
    SaveAcl {
        room: RoomId,
        key: PublicKey,
        role: Option<Role>,
    },
}

/// A room's access rules and location, besides its password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomAccess {
    /// Gives admin at login (only its first 15 bytes travel).
    pub admin_password: Option<Vec<u8>>,
    /// A wrong or empty password gets a read-only guest login (private room); everyone not on
    /// the ACL is a read-only guest (public room).
    pub allow_read_only: bool,
    /// The access list, restored from the store.
    pub acl: Vec<(PublicKey, Role)>,
    /// Advertised location (degrees × 1e6); the engine-wide one when `None`.
    pub location: Option<(i32, i32)>,
}

/// The radio's settings, as `get radio` shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RadioInfo {
    /// MHz, as the firmware prints it (e.g. `869.525`).
    pub frequency_mhz: String,
    /// kHz (e.g. `250.0`).
    pub bandwidth_khz: String,
    pub spreading_factor: u8,
    /// Denominator (5–8).
    pub coding_rate: u8,
    pub power_dbm: i8,
}

/// Everything the engine needs to know about one room at start.
#[derive(Clone, Debug)]
pub struct RoomSetup {
    pub name: String,
    pub identity: LocalIdentity,
    /// `None`: public room (any password). `Some`: the login password (the PSK; only its first
    /// 15 bytes can travel, so only those are compared).
    pub password: Option<Vec<u8>>,
    pub max_history: usize,
    /// Last timestamp the room issued (adverts, login replies), restored from the store.
    pub clock: u32,
    /// Clients remembered from before the restart.
    pub clients: Vec<ClientRecord>,
    /// The room's newest posts, oldest first: up to the push window
    /// ([`super::history::PUSH_WINDOW`]); older ones are read from the store when needed.
    pub history: Vec<RoomPost>,
    /// Admin password, read-only guests, ACL, location.
    pub access: RoomAccess,
}

/// Timers and limits. Durations in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// First zero-hop advert after start.
    pub first_advert_delay_ms: u64,
    /// Zero-hop advert period (0 = only the first).
    pub advert_interval_ms: u64,
    /// Zero-hop advert period while the gateway is new (after each start), as the firmware
    /// adverts every 2 minutes on new installs; 0 = off.
    pub early_advert_interval_ms: u64,
    /// Zero-hop adverts per room sent at the early period before the regular one applies.
    pub early_adverts: u32,
    /// A DISCOVER_REQ is answered after a random delay up to this (several nodes may answer).
    pub discovery_jitter_ms: u64,
    /// DISCOVER_REQs answered at most per window (the firmware's repeater: 4 per 2 minutes).
    pub discovery_max: u32,
    pub discovery_window_ms: u64,
    /// Radio settings for `get radio` (None: no radio).
    pub radio: Option<RadioInfo>,
    /// Flood advert period (0 = never).
    pub flood_advert_interval_ms: u64,
    /// Advertised location (degrees × 1e6), if any.
    pub location: Option<(i32, i32)>,
    /// A participant not heard for this long leaves the list.
    pub silence_timeout_ms: u64,
    /// Pause after a push before the next push round.
    pub push_interval_ms: u64,
    /// Pause after a round with nothing to push.
    pub push_idle_interval_ms: u64,
    /// A post is pushed once it is this old (lets the author's ACK go first).
    pub push_min_age_ms: u64,
    /// No push to a client this soon after its login (the login reply goes first).
    pub push_after_login_ms: u64,
    pub push_ack_timeout_flood_ms: u64,
    pub push_ack_timeout_direct_ms: u64,
    pub push_ack_timeout_per_hop_ms: u64,
    /// Consecutive push timeouts after which a client is skipped until heard again.
    pub push_max_failures: u32,
    /// Delay before a login reply or request response.
    pub reply_delay_ms: u64,
    /// Distinct wrong passwords in a row before a key is ignored for a while.
    pub login_max_failures: u32,
    /// The first block; each further one lasts twice as long, up to `login_block_ms`.
    pub login_block_first_ms: u64,
    pub login_block_ms: u64,
    /// Clients per room; the least recently heard is dropped when full.
    pub max_clients: usize,
    pub dedup_capacity: usize,
    /// Rooms that keep a group channel (`rooms[].channel`).
    pub channels: Vec<ChannelSetup>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            first_advert_delay_ms: 2_000,
            advert_interval_ms: 10 * 60_000,
            early_advert_interval_ms: 2 * 60_000,
            early_adverts: 5,
            discovery_jitter_ms: 400,
            discovery_max: 4,
            discovery_window_ms: 120_000,
            radio: None,
            flood_advert_interval_ms: 12 * 3_600_000,
            location: None,
            silence_timeout_ms: 3_600_000,
            push_interval_ms: 1_200,
            push_idle_interval_ms: 150,
            push_min_age_ms: 1_000,
            push_after_login_ms: 2_000,
            push_ack_timeout_flood_ms: 12_000,
            push_ack_timeout_direct_ms: 4_000,
            push_ack_timeout_per_hop_ms: 2_000,
            push_max_failures: 3,
            reply_delay_ms: 300,
            login_max_failures: 5,
            login_block_first_ms: 30_000,
            login_block_ms: 300_000,
            max_clients: 100,
            dedup_capacity: 256,
            channels: Vec::new(),
        }
    }
}

/// A post waiting for its commit, and the ACKs to send when it is committed.
#[derive(Debug)]
struct PendingPost {
    ticket: PostTicket,
    room: RoomId,
    id: [u8; 16],
    client: PublicKey,
    acks: Vec<[u8; 4]>,
}

/// Pending posts kept at most; older ones are forgotten (the client retries).
const MAX_PENDING_POSTS: usize = 64;
/// Advert names remembered at most.
const MAX_NAMES: usize = 512;

/// Shared state a room handler works with.
pub(crate) struct Ctx<'a> {
    pub now: Now,
    pub config: &'a EngineConfig,
    pub rng: &'a mut StdRng,
    pub counters: &'a mut Counters,
    pub dedup: &'a mut Dedup,
    pub out: &'a mut Vec<Action>,
    pub names: &'a HashMap<PublicKey, (String, u32)>,
    pub started_ms: u64,
}

/// A post by the room itself (an admin's `room.post`), to commit without an ACK.
#[derive(Debug)]
pub(crate) struct SystemPost {
    pub room: RoomId,
    pub text: String,
}

impl Ctx<'_> {
    /// Queues a frame and marks it seen so a repeater's echo is not taken for new traffic.
    pub fn send(&mut self, repr: PacketRepr, priority: Priority, delay_ms: u64) {
        let Ok(frame) = repr.to_bytes() else {
            // Only our own builders get here, and they respect the limits; count rather than panic.
            self.counters.drop("tx_too_long");
            return;
        };
        self.dedup.insert(repr.packet_hash());
        self.counters.frames_tx += 1;
        if repr.route.is_flood() {
            self.counters.sent_flood += 1;
        } else {
            self.counters.sent_direct += 1;
        }
        self.out.push(Action::Transmit {
            frame,
            priority,
            delay_ms,
        });
    }

    pub fn status_body(&self) -> StatusBody {
        let c = &self.counters;
        let clamp16 = |v: u64| v.min(u16::MAX as u64) as u16;
        let clamp32 = |v: u64| v.min(u32::MAX as u64) as u32;
        StatusBody {
            batt_mv: 0,
            tx_queue: 0,
            noise_floor: 0,
            last_rssi: c.last_rssi,
            pkts_recv: clamp32(c.frames_rx),
            pkts_sent: clamp32(c.frames_tx),
            airtime_s: 0,
            uptime_s: clamp32(self.now.mono_ms.saturating_sub(self.started_ms) / 1000),
            sent_flood: clamp32(c.sent_flood),
            sent_direct: clamp32(c.sent_direct),
            recv_flood: clamp32(c.recv_flood),
            recv_direct: clamp32(c.recv_direct),
            err_flags: 0,
            last_snr_x4: c.last_snr_x4,
            direct_dups: clamp16(c.direct_dups),
            flood_dups: clamp16(c.flood_dups),
            n_posted: clamp16(c.posts_received),
            n_post_push: clamp16(c.pushes_sent),
        }
    }

    pub fn name_of(&self, key: &PublicKey) -> Option<String> {
        self.names.get(key).map(|(n, _)| n.clone())
    }
}

/// The post id a radio post gets: the same bytes for a retry, different for anything else.
pub fn radio_post_id(room: &PublicKey, author: &PublicKey, ts: u32, text: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"meshroom-gw/meshcore-post\0");
    h.update(room.0);
    h.update(author.0);
    h.update(ts.to_le_bytes());
    h.update(text);
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    id
}

/// Every room on one radio.
pub struct Engine {
    config: EngineConfig,
    rooms: Vec<Room>,
    dedup: Dedup,
    counters: Counters,
    rng: StdRng,
    names: HashMap<PublicKey, (String, u32)>,
    pending_posts: VecDeque<PendingPost>,
    next_ticket: u64,
    started_ms: u64,
    channels: Vec<ChannelBinding>,
    /// Unix time the engine started: the rooms' "changed since" for DISCOVER_REQ.
    started_unix: u32,
    /// When recent DISCOVER_REQs were answered (rate limit).
    discoveries: VecDeque<u64>,
}

impl Engine {
    /// `seed` feeds the random bytes of replies and push attempts (fixed in tests).
    pub fn new(config: EngineConfig, rooms: Vec<RoomSetup>, seed: u64, now: Now) -> Engine {
        let rooms: Vec<Room> = rooms
            .into_iter()
            .enumerate()
            .map(|(i, setup)| Room::new(i, setup, &config, now))
            .collect();
        let channels = config
            .channels
            .iter()
            .filter_map(|c| {
                let room = rooms.iter().position(|r| r.name() == c.room)?;
                Some(ChannelBinding::new(room, c.clone()))
            })
            .collect();
        Engine {
            channels,
            dedup: Dedup::new(config.dedup_capacity),
            config,
            rooms,
            counters: Counters::default(),
            rng: StdRng::seed_from_u64(seed),
            names: HashMap::new(),
            pending_posts: VecDeque::new(),
            next_ticket: 1,
            started_ms: now.mono_ms,
            started_unix: now.unix,
            discoveries: VecDeque::new(),
        }
    }

    fn split<'a>(&'a mut self, now: Now, out: &'a mut Vec<Action>) -> (&'a mut Vec<Room>, Ctx<'a>) {
        let Engine {
            config,
            rooms,
            dedup,
            counters,
            rng,
            names,
            started_ms,
            ..
        } = self;
        (
            rooms,
            Ctx {
                now,
                config,
                rng,
                counters,
                dedup,
                out,
                names,
                started_ms: *started_ms,
            },
        )
    }

    /// One received frame. Malformed, foreign, duplicate or unauthenticated frames are
    /// counted and dropped.
    pub fn handle_frame(
        &mut self,
        now: Now,
        bytes: &[u8],
        rssi_dbm: i16,
        snr_db: f32,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        self.counters.frames_rx += 1;
        self.counters.bytes_rx += bytes.len() as u64;
        self.counters.last_rssi = rssi_dbm;
        self.counters.last_snr_x4 = (snr_db * 4.0)
            .round()
            .clamp(i16::MIN as f32, i16::MAX as f32) as i16;
        let repr = match Frame::new_checked(bytes).and_then(|f| PacketRepr::parse(&f)) {
            Ok(r) => r,
            Err(e) => {
                self.counters.drop(e.label());
                return out;
            }
        };
        let flood = repr.route.is_flood();
        if flood {
            self.counters.recv_flood += 1;
        } else {
            self.counters.recv_direct += 1;
        }
        if !self.dedup.insert(repr.packet_hash()) {
            if flood {
                self.counters.flood_dups += 1;
            } else {
                self.counters.direct_dups += 1;
            }
            self.counters.drop("duplicate");
            return out;
        }
        let payload = match Payload::parse(repr.payload_type, &repr.payload) {
            Ok(p) => p,
            Err(e) => {
                self.counters.drop(e.label());
                return out;
            }
        };
        // A direct packet with hops left is on its way to someone else; we do not repeat.
        // ACKs overheard in transit still count (the firmware's "early received" ACKs).
        if !flood && !repr.path.is_empty() && !matches!(payload, Payload::Ack(_)) {
            self.counters.drop("in_transit");
            return out;
        }
        match payload {
            Payload::AnonReq(req) => self.dispatch_login(now, &repr, &req, &mut out),
            Payload::TxtMsg(d) | Payload::Req(d) | Payload::Path(d) => {
                self.dispatch_datagram(now, &repr, &d, &mut out)
            }
            Payload::Ack(ack) => self.dispatch_ack(now, ack.crc, &mut out),
            Payload::GrpTxt(g) => self.dispatch_channel(&g, &mut out),
            Payload::Multipart(m)
                if m.inner_type == PayloadType::Ack.as_u8() && m.data.len() >= 4 =>
            {
                let crc = [m.data[0], m.data[1], m.data[2], m.data[3]];
                self.dispatch_ack(now, crc, &mut out)
            }
            Payload::Control(_) => self.dispatch_control(now, &repr, snr_db, &mut out),
            Payload::Advert(a) => {
                if !a.verify() {
                    self.counters.drop("bad_signature");
                    return out;
                }
                self.counters.adverts_heard += 1;
                let Ok(app) = a.app_data() else {
                    self.counters.drop("bad_advert");
                    return out;
                };
                let Some(name) = app.name.filter(|n| !n.is_empty()) else {
                    return out;
                };
                if self.rooms.iter().any(|r| r.public() == a.public_key) {
                    return out;
                }
                // Replay check: an advert no newer than the last one from that key is ignored.
                if let Some((_, ts)) = self.names.get(&a.public_key) {
                    if a.timestamp <= *ts {
                        self.counters.replays += 1;
                        return out;
                    }
                }
                if self.names.len() >= MAX_NAMES && !self.names.contains_key(&a.public_key) {
                    if let Some(oldest) = self
                        .names
                        .iter()
                        .min_by_key(|(_, (_, ts))| *ts)
                        .map(|(k, _)| *k)
                    {
                        self.names.remove(&oldest);
                    }
                }
                self.names.insert(a.public_key, (name.clone(), a.timestamp));
                for room in &mut self.rooms {
                    if room.rename_client(&a.public_key, &name) {
                        out.push(Action::ParticipantsChanged { room: room.id() });
                    }
                }
            }
            _ => self.counters.drop("not_for_us"),
        }
        out
    }

    /// CONTROL: a zero-hop DISCOVER_REQ asking for room servers is answered by every room
    /// (src/Mesh.cpp `onRecvPacket` hands only zero-hop CONTROL packets with bit 7 set to
    /// `onControlDataRecv`; examples/simple_repeater/MyMesh.cpp `onControlDataRecv` answers when
    /// the type filter names its node type, at most 4 requests per 2 minutes).
    fn dispatch_control(
        &mut self,
        now: Now,
        repr: &PacketRepr,
        snr_db: f32,
        out: &mut Vec<Action>,
    ) {
        if repr.route.is_flood() || !repr.path.is_empty() {
            self.counters.drop("control_not_zero_hop");
            return;
        }
        let Some(req) = DiscoverReq::parse(&repr.payload) else {
            self.counters.drop("not_for_us");
            return;
        };
        if !req.wants(NodeType::RoomServer) {
            self.counters.drop("discover_other_type");
            return;
        }
        self.counters.discover_requests += 1;
        let window = self.config.discovery_window_ms;
        while self
            .discoveries
            .front()
            .is_some_and(|t| now.mono_ms.saturating_sub(*t) >= window)
        {
            self.discoveries.pop_front();
        }
        if self.discoveries.len() >= self.config.discovery_max.max(1) as usize {
            self.counters.drop("discover_rate_limited");
            return;
        }
        self.discoveries.push_back(now.mono_ms);
        // "since": only nodes changed since then answer; our rooms change when the gateway starts.
        if req.since != 0 && self.started_unix < req.since {
            return;
        }
        let (rooms, mut ctx) = self.split(now, out);
        for room in rooms.iter_mut() {
            room.answer_discovery(&mut ctx, &req, snr_db);
        }
    }

    fn dispatch_login(
        &mut self,
        now: Now,
        repr: &PacketRepr,
        req: &wire::payload::AnonReq,
        out: &mut Vec<Action>,
    ) {
        let (rooms, mut ctx) = self.split(now, out);
        let mut matched = false;
        let mut hash_hit = false;
        for room in rooms.iter_mut().filter(|r| r.hash() == req.dest_hash) {
            hash_hit = true;
            if room.on_login(&mut ctx, repr, req) {
                matched = true;
                break;
            }
        }
        if !hash_hit {
            ctx.counters.drop("not_for_us");
        } else if !matched {
            ctx.counters.bad_mac += 1;
        }
    }

    fn dispatch_datagram(
        &mut self,
        now: Now,
        repr: &PacketRepr,
        d: &wire::payload::Datagram,
        out: &mut Vec<Action>,
    ) {
        let (rooms, mut ctx) = self.split(now, out);
        let mut hash_hit = false;
        let mut bad_mac = false;
        let mut handled = None;
        for room in rooms.iter_mut().filter(|r| r.hash() == d.dest_hash) {
            hash_hit = true;
            match room.on_datagram(&mut ctx, repr, d) {
                DatagramOutcome::Handled(post) => {
                    handled = Some(post);
                    break;
                }
                DatagramOutcome::BadMac => bad_mac = true,
                DatagramOutcome::NoClient => {}
            }
        }
        let system = rooms
            .iter_mut()
            .filter_map(|r| r.take_system_post())
            .collect::<Vec<_>>();
        for p in system {
            self.queue_system_post(now, p, out);
        }
        match handled {
            Some(Some(post)) => self.queue_post(post, out),
            Some(None) => {}
            None if bad_mac => self.counters.bad_mac += 1,
            None if hash_hit => self.counters.drop("unknown_sender"),
            None => self.counters.drop("not_for_us"),
        }
    }

    fn queue_post(&mut self, p: IncomingPost, out: &mut Vec<Action>) {
        // A retry while the first copy is still being committed: ACK both when it lands.
        if let Some(pending) = self
            .pending_posts
            .iter_mut()
            .find(|x| x.id == p.id && x.room == p.room)
        {
            pending.acks.push(p.ack);
            return;
        }
        let ticket = PostTicket(self.next_ticket);
        self.next_ticket += 1;
        if self.pending_posts.len() >= MAX_PENDING_POSTS {
            self.pending_posts.pop_front();
            self.counters.drop("pending_posts_full");
        }
        self.pending_posts.push_back(PendingPost {
            ticket,
            room: p.room,
            id: p.id,
            client: p.author,
            acks: vec![p.ack],
        });
        out.push(Action::Post(RadioPost {
            ticket,
            room: p.room,
            id: p.id,
            author: p.author,
            author_name: self.names.get(&p.author).map(|(n, _)| n.clone()),
            author_ts: p.author_ts,
            text: p.text,
        }));
    }

    /// A GRP_TXT: to the binding whose channel hash and MAC it matches.
    fn dispatch_channel(&mut self, g: &wire::payload::GroupMessage, out: &mut Vec<Action>) {
        let mut tried = false;
        for binding in self
            .channels
            .iter_mut()
            .filter(|b| b.hash() == g.channel_hash)
        {
            tried = true;
            match binding.on_air(g) {
                Heard::Post(p) => return out.push(Action::ChannelPost(p)),
                Heard::Duplicate => return,
                Heard::Rejected(super::channel::DecodeError::BadMac) => {}
                Heard::Rejected(_) => return,
            }
        }
        self.counters.drop(if tried {
            "channel_bad_mac"
        } else {
            "not_for_us"
        });
    }

    /// The hub's answer for a channel post: `stored` false when it was already there (or could
    /// not be stored).
    pub fn channel_committed(&mut self, room: RoomId, id: [u8; 16], stored: bool) {
        if let Some(b) = self.channels.iter_mut().find(|b| b.room() == room) {
            b.committed(id, stored);
        }
    }

    /// A committed post of `room` (any side): in bridge mode it goes out on the room's channel,
    /// at the rate limit, from [`Engine::tick`].
    pub fn channel_offer(&mut self, room: RoomId, post: &OutgoingPost) {
        if let Some(b) = self.channels.iter_mut().find(|b| b.room() == room) {
            b.offer(post);
        }
    }

    /// The room's channel binding, for `/status`.
    pub fn channel_status(&self, room: RoomId) -> Option<ChannelStatus> {
        self.channels
            .iter()
            .find(|b| b.room() == room)
            .map(|b| b.status())
    }

    fn queue_system_post(&mut self, now: Now, p: SystemPost, out: &mut Vec<Action>) {
        let Some(room) = self.rooms.get(p.room) else {
            return;
        };
        let key = room.public();
        let name = room.name().to_string();
        let id = radio_post_id(&key, &key, now.unix, p.text.as_bytes());
        let ticket = PostTicket(self.next_ticket);
        self.next_ticket += 1;
        self.pending_posts.push_back(PendingPost {
            ticket,
            room: p.room,
            id,
            client: key,
            acks: Vec::new(),
        });
        if self.pending_posts.len() > MAX_PENDING_POSTS {
            self.pending_posts.pop_front();
            self.counters.drop("pending_posts_full");
        }
        out.push(Action::Post(RadioPost {
            ticket,
            room: p.room,
            id,
            author: key,
            author_name: Some(name),
            author_ts: now.unix,
            text: p.text,
        }));
    }

    fn dispatch_ack(&mut self, now: Now, crc: [u8; 4], out: &mut Vec<Action>) {
        let (rooms, mut ctx) = self.split(now, out);
        for room in rooms.iter_mut() {
            if room.on_ack(&mut ctx, crc) {
                return;
            }
        }
        ctx.counters.drop("unexpected_ack");
    }

    /// The hub's answer for a post: `committed` is true for `Accepted` and `Duplicate` (both
    /// mean the post is safely stored), false when it could not be stored (no ACK: the client
    /// will retry).
    pub fn post_committed(&mut self, now: Now, ticket: PostTicket, committed: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(at) = self.pending_posts.iter().position(|p| p.ticket == ticket) else {
            return out;
        };
        let Some(pending) = self.pending_posts.remove(at) else {
            return out;
        };
        if !committed {
            return out;
        }
        let (rooms, mut ctx) = self.split(now, &mut out);
        if let Some(room) = rooms.get_mut(pending.room) {
            for ack in pending.acks {
                room.send_post_ack(&mut ctx, &pending.client, ack);
            }
        }
        out
    }

    /// A committed post of a room, whatever side it came from (including our own radio
    /// posts, which other radio clients must receive). Duplicates by id are ignored.
    pub fn room_post(&mut self, now: Now, room: RoomId, post: RoomPost) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.add_post(post, now.mono_ms);
        }
    }

    /// The answer to [`Action::FetchHistory`]: the room's posts after `after_us`, oldest first.
    pub fn history_page(&mut self, room: RoomId, after_us: u64, posts: Vec<RoomPost>) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.history_page(after_us, posts);
        }
    }

    /// A [`Action::FetchHistory`] could not be answered; the next push round asks again.
    pub fn history_failed(&mut self, room: RoomId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.history_failed();
        }
    }

    /// Timers: adverts, push rounds, push ACK timeouts, participant silence.
    pub fn tick(&mut self, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        let mut channels = std::mem::take(&mut self.channels);
        let (rooms, mut ctx) = self.split(now, &mut out);
        for room in rooms.iter_mut() {
            room.tick(&mut ctx);
        }
        for b in &mut channels {
            if let Some(repr) = b.poll(now.mono_ms) {
                ctx.send(repr, Priority::Channel, 0);
            }
        }
        self.channels = channels;
        out
    }

    /// The earliest monotonic time (ms) at which [`Engine::tick`] has work: the caller sleeps
    /// until then or until a frame, a commit or a post arrives, and asks again after each event.
    /// `None`: no timer is running (only an event can create work).
    pub fn next_deadline(&self) -> Option<u64> {
        let rooms = self
            .rooms
            .iter()
            .filter_map(|r| r.next_deadline(&self.config));
        // A bridged channel message waiting for its rate limit is a timer too.
        let channels = self.channels.iter().filter_map(|b| b.next_deadline());
        rooms.chain(channels).min()
    }

    /// Applies a room's new password (`None`: public) to logins from now on; clients already
    /// logged in stay logged in.
    pub fn set_room_password(&mut self, room: RoomId, password: Option<Vec<u8>>) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.set_password(password);
        }
    }

    /// A reloaded room's admin password, `allow_read_only` and location (its ACL is kept).
    pub fn set_room_access(&mut self, room: RoomId, access: RoomAccess) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.set_access(access);
        }
    }

    /// An ACL change made outside the air (`meshroom-gw acl`, or our own change coming back
    /// from the store): `None` removes the key. Logged-in clients take the role at once.
    pub fn set_acl(&mut self, room: RoomId, key: PublicKey, role: Option<Role>) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.apply_acl(key, role);
        }
    }

    /// The room's access list, sorted by key.
    pub fn acl(&self, room: RoomId) -> Vec<(PublicKey, Role)> {
        self.rooms.get(room).map(|r| r.acl()).unwrap_or_default()
    }

    /// A reloaded `max_history`: the room's push window takes the new depth.
    pub fn set_room_max_history(&mut self, room: RoomId, max_history: usize) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.set_max_history(max_history);
        }
    }

    pub fn room_by_name(&self, name: &str) -> Option<RoomId> {
        self.rooms.iter().position(|r| r.name() == name)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    pub fn room_name(&self, room: RoomId) -> Option<&str> {
        self.rooms.get(room).map(|r| r.name())
    }

    pub fn room_public_key(&self, room: RoomId) -> Option<PublicKey> {
        self.rooms.get(room).map(|r| r.public())
    }

    /// Logged-in clients heard within the silence timeout.
    pub fn participants(&self, room: RoomId) -> Vec<ParticipantInfo> {
        self.rooms
            .get(room)
            .map(|r| r.participants())
            .unwrap_or_default()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn room_counters(&self, room: RoomId) -> Option<&RoomCounters> {
        self.rooms.get(room).map(|r| r.counters())
    }

    /// Clients known to a room (logged in since they were last forgotten).
    pub fn client_count(&self, room: RoomId) -> usize {
        self.rooms.get(room).map(|r| r.client_count()).unwrap_or(0)
    }

    pub fn history_len(&self, room: RoomId) -> usize {
        self.rooms.get(room).map(|r| r.history_len()).unwrap_or(0)
    }

    /// Routes are flood or direct; exposed for diagnostics.
    pub fn route_of(&self, room: RoomId, client: &PublicKey) -> Option<RouteType> {
        self.rooms.get(room)?.route_of(client)
    }
}
