//! One room as a MeshCore room server (protocol sheet §10): its identity and clock, login,
//! posts, pushes, PATH learning, keep-alive and GET_STATUS requests, adverts, and its client
//! list. Called by the engine with a [`Ctx`]; never does IO.

use std::collections::HashMap;

use rand::Rng;

use super::acl::{clip_password, Access};
use super::admin::{self, CliEffect, CliView};
use super::counters::RoomCounters;
use super::engine::{
    Action, Ctx, EngineConfig, Now, ParticipantInfo, Priority, RoomAccess, RoomId, RoomSetup,
    SystemPost,
};
use super::history::{cursor_from_sync_since, Backlog, PostCache, RoomPost, PUSH_WINDOW};
use super::roster::{Client, Failure, LoginGuard, PendingPush, Role};
use crate::meshcore::wire;
use crate::meshcore::wire::advert::{Advert, AppData, NodeType};
use crate::meshcore::wire::control::{DiscoverReq, DiscoverResp};
use crate::meshcore::wire::crypto::{CryptoError, SharedSecret};
use crate::meshcore::wire::identity::{LocalIdentity, PublicKey};
use crate::meshcore::wire::message::{
    LoginReply, LoginRequest, PathBody, Request, Response, TextMessage, TxtType,
    FIRMWARE_VER_LEVEL, MAX_POST_TEXT, REQ_GET_ACCESS_LIST, REQ_GET_STATUS, REQ_GET_TELEMETRY,
    REQ_KEEP_ALIVE, RESP_SERVER_LOGIN_OK,
};
use crate::meshcore::wire::packet::{PacketRepr, Path, PayloadType, RouteType};
use crate::meshcore::wire::payload::{Ack, AnonReq, Control, Datagram, Payload};

/// A post decoded from a client, before the hub has it.
#[derive(Debug)]
pub struct IncomingPost {
    pub room: RoomId,
    pub id: [u8; 16],
    pub author: PublicKey,
    pub author_ts: u32,
    pub text: String,
    pub ack: [u8; 4],
}

/// Advert again on a discovery request unless the room adverted this recently (requests from
/// several phones at once share one advert; the discovery rate limit bounds the rest).
const DISCOVERY_ADVERT_GAP_MS: u64 = 5_000;
/// Delay of an advert an admin asked for (CommonCLI.cpp: 1500 ms, so the reply goes first).
const CLI_ADVERT_DELAY_MS: u64 = 1_500;
/// Admin entries at most in a GET_ACCESS_LIST answer (7 bytes each; fits any return path).
const MAX_ACCESS_LIST: usize = 12;

/// What a room made of a datagram addressed to its hash.
pub enum DatagramOutcome {
    /// No logged-in client has the sender's hash.
    NoClient,
    /// Candidates exist but none of their secrets verifies the MAC.
    BadMac,
    Handled(Option<IncomingPost>),
}

/// What a client gets pushed next.
enum Next {
    /// This post (added to the window at this monotonic time; 0 for posts read from the store).
    Post(RoomPost, u64),
    /// Posts after this cursor must be read from the store first.
    Fetch(u64),
    Nothing,
}

/// Shared secrets of recent anonymous senders, so a burst of logins costs one ECDH each.
const ECDH_CACHE: usize = 64;
/// Wrong-password entries remembered per room.
const LOGIN_GUARD_CAPACITY: usize = 256;

pub struct Room {
    id: RoomId,
    name: String,
    identity: LocalIdentity,
    public: PublicKey,
    access: Access,
    location: Option<(i32, i32)>,
    clients: Vec<Client>,
    guard: LoginGuard,
    ecdh_cache: HashMap<PublicKey, SharedSecret>,
    cache: PostCache,
    /// Older history read for a client behind the window, and whether a read is under way.
    backlog: Backlog,
    fetching: bool,
    clock: u32,
    next_zero_hop_ms: u64,
    next_flood_ms: u64,
    /// Zero-hop adverts sent since start (the early period counts them).
    zero_hop_adverts: u32,
    last_advert_ms: Option<u64>,
    /// A post by the room itself waiting for the engine to queue it.
    system_post: Option<String>,
    next_push_ms: u64,
    rr_cursor: usize,
    counters: RoomCounters,
}

fn datagram_payload(ptype: PayloadType, d: Datagram) -> Vec<u8> {
    let p = match ptype {
        PayloadType::Req => Payload::Req(d),
        PayloadType::Response => Payload::Response(d),
        PayloadType::Path => Payload::Path(d),
        _ => Payload::TxtMsg(d),
    };
    p.to_vec()
}

impl Room {
    pub fn new(id: RoomId, setup: RoomSetup, config: &EngineConfig, now: Now) -> Room {
        let public = setup.identity.public();
        let window = setup.max_history.clamp(1, PUSH_WINDOW);
        let cache = PostCache::with_newest(window, setup.history, window);
        let access = Access {
            password: setup.password.map(clip_password),
            admin_password: setup.access.admin_password.clone().map(clip_password),
            allow_read_only: setup.access.allow_read_only,
            acl: setup.access.acl.iter().copied().collect(),
        };
        let mut room = Room {
            id,
            name: setup.name,
            public,
            access,
            location: setup.access.location,
            clients: Vec::new(),
            guard: LoginGuard::new(
                config.login_max_failures,
                config.login_block_first_ms,
                config.login_block_ms,
                LOGIN_GUARD_CAPACITY,
            ),
            ecdh_cache: HashMap::new(),
            cache,
            backlog: Backlog::default(),
            fetching: false,
            clock: setup.clock,
            // Stagger rooms so their adverts do not collide.
            next_zero_hop_ms: now.mono_ms + config.first_advert_delay_ms + id as u64 * 700,
            next_flood_ms: now.mono_ms + config.flood_advert_interval_ms + id as u64 * 700,
            zero_hop_adverts: 0,
            last_advert_ms: None,
            system_post: None,
            next_push_ms: now.mono_ms,
            rr_cursor: 0,
            counters: RoomCounters::default(),
            identity: setup.identity,
        };
        for rec in setup.clients {
            let Some(key) = PublicKey::from_hex(&rec.key) else {
                continue;
            };
            let Ok(secret) = room.identity.shared_secret(&key) else {
                continue;
            };
            if room.clients.len() >= config.max_clients {
                break;
            }
            room.clients.push(Client {
                key,
                secret,
                role: room.access.acl.get(&key).copied().unwrap_or(rec.role),
                sync_since: rec.sync_since,
                cursor_us: cursor_from_sync_since(rec.sync_since, rec.cursor_us),
                last_ts: rec.last_ts,
                name: rec.name,
                out_path: None,
                pending: None,
                push_failures: 0,
                push_not_before_ms: now.mono_ms,
                last_heard_ms: 0,
                last_heard_unix: rec.last_heard,
                since_unix: rec.last_heard,
                present: false,
            });
        }
        room
    }

    pub fn id(&self) -> RoomId {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn public(&self) -> PublicKey {
        self.public
    }
    pub fn hash(&self) -> u8 {
        self.public.hash_byte()
    }
    pub fn counters(&self) -> &RoomCounters {
        &self.counters
    }
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }
    pub fn history_len(&self) -> usize {
        self.cache.len()
    }

    pub fn route_of(&self, key: &PublicKey) -> Option<RouteType> {
        let c = self.clients.iter().find(|c| c.key == *key)?;
        Some(if c.out_path.is_some() {
            RouteType::Direct
        } else {
            RouteType::Flood
        })
    }

    pub fn participants(&self) -> Vec<ParticipantInfo> {
        self.clients
            .iter()
            .filter(|c| c.present)
            .map(|c| ParticipantInfo {
                key: c.key,
                name: c.name.clone(),
                role: c.role,
                since_unix: c.since_unix,
                last_heard_unix: c.last_heard_unix,
            })
            .collect()
    }

    pub fn rename_client(&mut self, key: &PublicKey, name: &str) -> bool {
        match self.clients.iter_mut().find(|c| c.key == *key) {
            Some(c) if c.name.as_deref() != Some(name) => {
                c.name = Some(name.to_string());
                c.present
            }
            _ => false,
        }
    }

    /// A changed PSK (configuration reload) applies to the next login.
    pub fn set_password(&mut self, password: Option<Vec<u8>>) {
        self.access.password = password.map(clip_password);
    }

    /// A reloaded admin password, `allow_read_only` and location; the ACL is the store's.
    pub fn set_access(&mut self, access: RoomAccess) {
        self.access.admin_password = access.admin_password.map(clip_password);
        self.access.allow_read_only = access.allow_read_only;
        self.location = access.location;
    }

    pub fn acl(&self) -> Vec<(PublicKey, Role)> {
        self.access.acl.iter().map(|(k, r)| (*k, *r)).collect()
    }

    /// Sets or removes a key's ACL role; a logged-in client takes it at once (removed: it keeps
    /// its role until it logs in again).
    pub fn apply_acl(&mut self, key: PublicKey, role: Option<Role>) {
        match role {
            Some(r) => {
                self.access.acl.insert(key, r);
                if let Some(c) = self.clients.iter_mut().find(|c| c.key == key) {
                    c.role = r;
                }
            }
            None => {
                self.access.acl.remove(&key);
            }
        }
    }

    pub fn take_system_post(&mut self) -> Option<SystemPost> {
        self.system_post.take().map(|text| SystemPost {
            room: self.id,
            text,
        })
    }

    /// Answers a DISCOVER_REQ for room servers: the answer layout of
    /// examples/simple_repeater/MyMesh.cpp `onControlDataRecv` (flags 0x90 | node type, SNR × 4,
    /// the tag, the key or its 8-byte prefix), sent zero-hop after a random delay. Then, unless
    /// the room adverted lately, a zero-hop advert, so the asker also learns the room's name.
    pub fn answer_discovery(&mut self, ctx: &mut Ctx, req: &DiscoverReq, snr_db: f32) {
        let resp = DiscoverResp::answer(req, NodeType::RoomServer, &self.public, snr_db).to_vec();
        let Some((&flags, data)) = resp.split_first() else {
            return;
        };
        let control = Payload::Control(Control {
            flags,
            data: data.to_vec(),
        });
        let delay = ctx.rng.gen_range(0..=ctx.config.discovery_jitter_ms);
        ctx.counters.discover_answers += 1;
        ctx.send(
            PacketRepr::new(
                RouteType::Direct,
                PayloadType::Control,
                Path::empty(),
                control.to_vec(),
            ),
            Priority::Reply,
            delay,
        );
        let now = ctx.now.mono_ms;
        if self
            .last_advert_ms
            .is_none_or(|t| now.saturating_sub(t) >= DISCOVERY_ADVERT_GAP_MS)
        {
            self.send_advert(ctx, RouteType::Direct, delay + 100, false);
        }
    }

    pub fn set_max_history(&mut self, max_history: usize) {
        self.cache.set_capacity(max_history.clamp(1, PUSH_WINDOW));
    }

    /// A page of history after `after_us` read from the store (the answer to
    /// [`Action::FetchHistory`] with that `limit`).
    pub fn history_page(&mut self, after_us: u64, posts: Vec<RoomPost>) {
        self.fetching = false;
        let end_us = posts.last().map_or(after_us, |p| p.room_us);
        self.backlog = Backlog {
            after_us,
            end_us,
            posts,
        };
    }

    /// A read of history failed: the next push round asks again.
    pub fn history_failed(&mut self) {
        self.fetching = false;
    }

    /// What a client gets next: a post from the window or the backlog page, or the cursor to
    /// read the store after. Own posts are passed over (the second value: the cursor may move
    /// past them).
    fn next_for(&self, idx: usize) -> Next {
        let c = &self.clients[idx];
        let mut from = c.cursor_us;
        if from >= self.cache.complete_after() {
            return match self.cache.next_after(from, &c.key) {
                Some(p) => Next::Post(p.post.clone(), p.added_ms),
                None => Next::Nothing,
            };
        }
        if self.backlog.covers(from) {
            if let Some(p) = self.backlog.next_after(from, &c.key) {
                return Next::Post(p.clone(), 0);
            }
            from = self.backlog.end_us;
            if from >= self.cache.complete_after() {
                return match self.cache.next_after(from, &c.key) {
                    Some(p) => Next::Post(p.post.clone(), p.added_ms),
                    None => Next::Nothing,
                };
            }
        }
        Next::Fetch(from)
    }

    pub fn add_post(&mut self, post: RoomPost, now_ms: u64) {
        self.cache.insert(post, now_ms);
    }

    /// The room clock: unix time, but never at or below what was already issued.
    fn next_clock(&mut self, ctx: &mut Ctx) -> u32 {
        self.clock = ctx.now.unix.max(self.clock.saturating_add(1));
        ctx.out.push(Action::SaveClock {
            room: self.id,
            clock: self.clock,
        });
        self.clock
    }

    fn heard(&mut self, ctx: &mut Ctx, idx: usize) {
        let c = &mut self.clients[idx];
        c.last_heard_ms = ctx.now.mono_ms;
        c.last_heard_unix = ctx.now.unix as u64;
        ctx.out.push(Action::Heard {
            room: self.id,
            key: c.key,
        });
        if !c.present {
            c.present = true;
            c.since_unix = ctx.now.unix as u64;
            ctx.out.push(Action::ParticipantsChanged { room: self.id });
        }
    }

    fn save_client(&self, ctx: &mut Ctx, idx: usize) {
        ctx.out.push(Action::SaveClient {
            room: self.id,
            record: self.clients[idx].record(),
        });
    }

    // ---------------------------------------------------------------- sending

    fn send_datagram(
        &self,
        ctx: &mut Ctx,
        idx: usize,
        ptype: PayloadType,
        plain: &[u8],
        prio: Priority,
        delay: u64,
    ) {
        let c = &self.clients[idx];
        let d = Datagram::seal(c.key.hash_byte(), self.hash(), &c.secret, plain);
        let (route, path) = match &c.out_path {
            Some(p) => (RouteType::Direct, p.clone()),
            None => (RouteType::Flood, Path::empty()),
        };
        ctx.send(
            PacketRepr::new(route, ptype, path, datagram_payload(ptype, d)),
            prio,
            delay,
        );
    }

    /// A flood PATH to the client carrying `path` (how its packet reached us) and an extra.
    fn send_flood_path(
        &self,
        ctx: &mut Ctx,
        idx: usize,
        path: Path,
        extra_type: PayloadType,
        extra: Vec<u8>,
        delay: u64,
    ) {
        let c = &self.clients[idx];
        let body = PathBody {
            path,
            extra_type: extra_type.as_u8(),
            extra,
        };
        let d = Datagram::seal(c.key.hash_byte(), self.hash(), &c.secret, &body.to_vec());
        ctx.send(
            PacketRepr::new(
                RouteType::Flood,
                PayloadType::Path,
                Path::empty(),
                Payload::Path(d).to_vec(),
            ),
            Priority::Reply,
            delay,
        );
    }

    fn send_bare_ack(&self, ctx: &mut Ctx, idx: usize, ack: Ack, delay: u64) {
        let c = &self.clients[idx];
        let (route, path) = match &c.out_path {
            Some(p) => (RouteType::Direct, p.clone()),
            None => (RouteType::Flood, Path::empty()),
        };
        ctx.send(
            PacketRepr::new(route, PayloadType::Ack, path, Payload::Ack(ack).to_vec()),
            Priority::Reply,
            delay,
        );
    }

    /// A reply to a request: PATH+RESPONSE when it came by flood, else a RESPONSE datagram.
    fn send_response(&self, ctx: &mut Ctx, idx: usize, came: &PacketRepr, body: Vec<u8>) {
        let delay = ctx.config.reply_delay_ms;
        if came.route.is_flood() {
            self.send_flood_path(
                ctx,
                idx,
                came.path.clone(),
                PayloadType::Response,
                body,
                delay,
            );
        } else {
            self.send_datagram(
                ctx,
                idx,
                PayloadType::Response,
                &body,
                Priority::Reply,
                delay,
            );
        }
    }

    /// Sends the ACK of a committed post: a bare 4-byte ACK (the `ack_hash` alone), direct along
    /// the client's route when one is known, else flooded — exactly what the room-server firmware
    /// sends (examples/simple_room_server/MyMesh.cpp, `onPeerDataRecv`: `createAck(ack_hash)`
    /// then `sendFloodReply` or `sendDirect`). No attempt or random bytes: at least one client
    /// library rejects an ACK that is not exactly 4 bytes.
    pub fn send_post_ack(&mut self, ctx: &mut Ctx, client: &PublicKey, ack: [u8; 4]) {
        let Some(idx) = self.clients.iter().position(|c| c.key == *client) else {
            return;
        };
        ctx.counters.posts_acked += 1;
        self.counters.posts_acked += 1;
        self.send_bare_ack(
            ctx,
            idx,
            Ack {
                crc: ack,
                extra: Vec::new(),
            },
            0,
        );
    }

    // ---------------------------------------------------------------- receiving

    fn secret_for(&mut self, key: &PublicKey) -> Result<SharedSecret, CryptoError> {
        if let Some(c) = self.clients.iter().find(|c| c.key == *key) {
            return Ok(c.secret.clone());
        }
        if let Some(s) = self.ecdh_cache.get(key) {
            return Ok(s.clone());
        }
        let s = self.identity.shared_secret(key)?;
        if self.ecdh_cache.len() >= ECDH_CACHE {
            self.ecdh_cache.clear();
        }
        self.ecdh_cache.insert(*key, s.clone());
        Ok(s)
    }

    /// ANON_REQ login (§10.2). Returns false when the MAC does not verify for this room.
    pub fn on_login(&mut self, ctx: &mut Ctx, repr: &PacketRepr, req: &AnonReq) -> bool {
        let Ok(secret) = self.secret_for(&req.sender) else {
            ctx.counters.drop("bad_public_key");
            return true;
        };
        let plain = match req.open(&secret) {
            Ok(p) => p,
            Err(_) => return false,
        };
        let Ok(login) = LoginRequest::parse(&plain) else {
            ctx.counters.drop("bad_login");
            return true;
        };
        let now_ms = ctx.now.mono_ms;
        if self.guard.is_blocked(&req.sender, now_ms) {
            ctx.counters.login_rate_limited += 1;
            return true;
        }
        let existing = self.clients.iter().position(|c| c.key == req.sender);
        // The firmware's "blank password from a known client": answered even with an old
        // timestamp, which then changes nothing.
        let reuse = login.password.is_empty() && existing.is_some();
        let current = existing.map(|i| self.clients[i].role);
        let Some(role) = self
            .access
            .login_role(&req.sender, &login.password, current)
        else {
            // Wrong password: no reply at all, as the firmware does. A client's retry (the same
            // timestamp, or the same password again) counts once.
            ctx.counters.login_failed += 1;
            self.counters.login_failed += 1;
            let key = hex::encode(&req.sender.0[..4]);
            match self
                .guard
                .fail(req.sender, now_ms, login.timestamp, &login.password)
            {
                Failure::Blocked { block_ms } => tracing::warn!(
                    room = %self.name,
                    key = %key,
                    block_s = block_ms / 1000,
                    "repeated wrong passwords; ignoring this key for a while"
                ),
                Failure::Counted(n) => {
                    tracing::info!(room = %self.name, key = %key, attempts = n, "wrong password")
                }
                Failure::Retry => {}
            }
            return true;
        };
        self.guard.succeed(&req.sender);
        let idx = match existing {
            Some(i) => {
                let c = &mut self.clients[i];
                if login.timestamp <= c.last_ts {
                    if !reuse {
                        ctx.counters.replays += 1;
                        return true;
                    }
                    // A known client's blank-password login: answered, nothing else changes.
                } else {
                    c.role = role;
                    c.sync_since = login.sync_since;
                    c.cursor_us = cursor_from_sync_since(login.sync_since, c.cursor_us);
                    c.last_ts = login.timestamp;
                    c.pending = None;
                    c.push_failures = 0;
                }
                i
            }
            None => {
                if self.clients.len() >= ctx.config.max_clients {
                    self.evict_one();
                }
                self.clients.push(Client {
                    key: req.sender,
                    secret,
                    role,
                    sync_since: login.sync_since,
                    cursor_us: cursor_from_sync_since(login.sync_since, 0),
                    last_ts: login.timestamp,
                    name: ctx.name_of(&req.sender),
                    out_path: None,
                    pending: None,
                    push_failures: 0,
                    push_not_before_ms: 0,
                    last_heard_ms: now_ms,
                    last_heard_unix: ctx.now.unix as u64,
                    since_unix: ctx.now.unix as u64,
                    present: false,
                });
                self.clients.len() - 1
            }
        };
        if repr.route.is_flood() {
            // The client's route may have changed; the PATH we send teaches it a new one.
            self.clients[idx].out_path = None;
        }
        self.clients[idx].push_not_before_ms = now_ms + ctx.config.push_after_login_ms;
        self.heard(ctx, idx);
        self.save_client(ctx, idx);
        ctx.counters.login_ok += 1;
        self.counters.logins += 1;
        let role = self.clients[idx].role;
        // Reply layout of MyMesh.cpp `onAnonDataRecv`: byte 6 is 1 for an admin, 2 when the
        // permissions are 0 (a guest), else 0; byte 7 the permissions byte.
        let reply = LoginReply {
            server_time: self.next_clock(ctx),
            resp_code: RESP_SERVER_LOGIN_OK,
            keepalive_div16: 0,
            admin_flag: match role {
                Role::Admin => 1,
                Role::Guest => 2,
                _ => 0,
            },
            permissions: role.permissions(),
            random: ctx.rng.gen(),
            fw_level: FIRMWARE_VER_LEVEL,
        };
        self.send_response(ctx, idx, repr, reply.to_vec());
        true
    }

    fn evict_one(&mut self) {
        if let Some(i) = self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.role != Role::Admin)
            .min_by_key(|(_, c)| c.last_heard_ms)
            .map(|(i, _)| i)
        {
            self.clients.remove(i);
        }
    }

    /// TXT_MSG, REQ or PATH from a client.
    pub fn on_datagram(
        &mut self,
        ctx: &mut Ctx,
        repr: &PacketRepr,
        d: &Datagram,
    ) -> DatagramOutcome {
        let mut any = false;
        let mut found = None;
        for (i, c) in self.clients.iter().enumerate() {
            if c.key.hash_byte() != d.src_hash {
                continue;
            }
            any = true;
            if let Ok(plain) = d.open(&c.secret) {
                found = Some((i, plain));
                break;
            }
        }
        let Some((idx, plain)) = found else {
            return if any {
                DatagramOutcome::BadMac
            } else {
                DatagramOutcome::NoClient
            };
        };
        self.heard(ctx, idx);
        let post = match repr.payload_type {
            PayloadType::TxtMsg => self.on_text(ctx, idx, &plain),
            PayloadType::Req => {
                self.on_request(ctx, repr, idx, &plain);
                None
            }
            PayloadType::Path => {
                self.on_path(ctx, idx, &plain);
                None
            }
            _ => None,
        };
        DatagramOutcome::Handled(post)
    }

    fn on_text(&mut self, ctx: &mut Ctx, idx: usize, plain: &[u8]) -> Option<IncomingPost> {
        let Ok(msg) = TextMessage::parse(plain) else {
            ctx.counters.drop("bad_text");
            return None;
        };
        if !matches!(msg.txt_type, TxtType::Plain | TxtType::CliData) {
            ctx.counters.drop("unsupported_text_type");
            return None;
        }
        let c = &mut self.clients[idx];
        // Any text means the client is back: pushes resume.
        c.push_failures = 0;
        if msg.timestamp < c.last_ts {
            ctx.counters.replays += 1;
            return None;
        }
        let is_retry = msg.timestamp == c.last_ts;
        c.last_ts = msg.timestamp;
        if msg.txt_type == TxtType::CliData {
            self.on_cli(ctx, idx, &msg, is_retry);
            return None;
        }
        if !c.role.may_post() {
            // A guest or read-only member: no ACK (MyMesh.cpp `onPeerDataRecv` refuses guests
            // without a reply); we also say why once, so the app's "not delivered" is explained.
            ctx.counters.posts_refused += 1;
            if !is_retry {
                let note = format!(
                    "[{}] read-only: your post was not stored (ask an admin for posting rights)",
                    self.name
                );
                self.send_note(ctx, idx, &note);
            }
            return None;
        }
        let key = c.key;
        self.save_client(ctx, idx);
        ctx.counters.posts_received += 1;
        self.counters.posts_received += 1;
        if msg.text.is_empty() {
            ctx.counters.drop("empty_post");
            return None;
        }
        if msg.text.len() > MAX_POST_TEXT {
            // Refuse clearly: no ACK (the app shows the post as not delivered) and a note from
            // the room saying why.
            ctx.counters.posts_refused += 1;
            let note = format!(
                "[{}] post not stored: {} bytes, the limit is {MAX_POST_TEXT}",
                self.name,
                msg.text.len()
            );
            self.send_note(ctx, idx, &note);
            return None;
        }
        Some(IncomingPost {
            room: self.id,
            id: super::engine::radio_post_id(&self.public, &key, msg.timestamp, &msg.text),
            author: key,
            author_ts: msg.timestamp,
            text: msg.text_lossy(),
            ack: msg.ack_value(&key),
        })
    }

    /// A plain message from the room to one client.
    fn send_note(&mut self, ctx: &mut Ctx, idx: usize, note: &str) {
        let ts = self.next_clock(ctx);
        let reply = TextMessage::plain(ts, 0, wire::advert::truncate_utf8(note, MAX_POST_TEXT));
        self.send_datagram(
            ctx,
            idx,
            PayloadType::TxtMsg,
            &reply.to_vec(),
            Priority::Reply,
            ctx.config.reply_delay_ms,
        );
    }

    /// An admin CLI command (TXT_MSG CLI_DATA). As MyMesh.cpp `onPeerDataRecv`: only admins
    /// are answered, never with an ACK, and a retry (same timestamp) gets no second reply; the
    /// reply is a TXT_MSG of type CLI_DATA whose timestamp differs from the command's.
    fn on_cli(&mut self, ctx: &mut Ctx, idx: usize, msg: &TextMessage, is_retry: bool) {
        if self.clients[idx].role != Role::Admin {
            ctx.counters.drop("cli_not_admin");
            return;
        }
        if is_retry {
            return;
        }
        ctx.counters.cli_commands += 1;
        let mut known: Vec<PublicKey> = self.clients.iter().map(|c| c.key).collect();
        known.extend(ctx.names.keys().copied());
        let line = msg.text_lossy();
        let outcome = {
            let view = CliView {
                room_name: &self.name,
                public: self.public,
                now_unix: ctx.now.unix,
                uptime_s: (ctx.now.mono_ms.saturating_sub(ctx.started_ms) / 1000) as u32,
                counters: ctx.counters,
                config: ctx.config,
                location: self.location.or(ctx.config.location),
                allow_read_only: self.access.allow_read_only,
                acl: &self.access.acl,
                known: &known,
            };
            admin::run(&line, &view)
        };
        // Only the command's name is logged: arguments may be secrets (`password …`).
        let name: String = {
            let line = line.trim_start();
            let line = line
                .get(3..)
                .filter(|_| line.as_bytes().get(2) == Some(&b'|'))
                .unwrap_or(line);
            let mut words = line.split_whitespace();
            match words.next() {
                Some(w @ ("get" | "set")) => format!("{w} {}", words.next().unwrap_or("")),
                Some(w) => w.to_string(),
                None => String::new(),
            }
        };
        tracing::info!(room = %self.name, admin = %hex::encode(&self.clients[idx].key.0[..4]), command = %name, "admin command");
        if !outcome.reply.is_empty() {
            let mut ts = ctx.now.unix;
            if ts == msg.timestamp {
                ts += 1;
            }
            let reply = TextMessage {
                timestamp: ts,
                txt_type: TxtType::CliData,
                attempt: 0,
                author_prefix: None,
                text: outcome.reply.into_bytes(),
            };
            self.send_datagram(
                ctx,
                idx,
                PayloadType::TxtMsg,
                &reply.to_vec(),
                Priority::Reply,
                ctx.config.reply_delay_ms,
            );
        }
        match outcome.effect {
            Some(CliEffect::SetRole(key, role)) => {
                self.apply_acl(key, Some(role));
                if let Some(i) = self.clients.iter().position(|c| c.key == key) {
                    self.save_client(ctx, i);
                }
                ctx.out.push(Action::SaveAcl {
                    room: self.id,
                    key,
                    role: Some(role),
                });
                ctx.out.push(Action::ParticipantsChanged { room: self.id });
            }
            Some(CliEffect::RoomPost(text)) => self.system_post = Some(text),
            Some(CliEffect::Advert { flood }) => {
                let route = if flood {
                    RouteType::Flood
                } else {
                    RouteType::Direct
                };
                self.send_advert(ctx, route, CLI_ADVERT_DELAY_MS, false);
            }
            None => {}
        }
    }

    fn on_request(&mut self, ctx: &mut Ctx, repr: &PacketRepr, idx: usize, plain: &[u8]) {
        let Ok(req) = Request::parse(plain) else {
            ctx.counters.drop("bad_request");
            return;
        };
        let c = &mut self.clients[idx];
        // Equal timestamps are allowed for requests; lower ones are replays.
        if req.timestamp < c.last_ts {
            ctx.counters.replays += 1;
            return;
        }
        c.last_ts = req.timestamp;
        c.push_failures = 0;
        match req.req_type {
            REQ_KEEP_ALIVE => {
                // Only honoured when it came direct (§10.6).
                if repr.route.is_flood() {
                    ctx.counters.drop("flood_keep_alive");
                    return;
                }
                ctx.counters.keep_alives += 1;
                if let Some(since) = req.keep_alive_sync_since() {
                    if since != 0 {
                        c.sync_since = since;
                        c.cursor_us = cursor_from_sync_since(since, c.cursor_us);
                    }
                }
                c.pending = None;
                let key = c.key;
                let has_route = c.out_path.is_some();
                let cursor = c.cursor_us;
                self.save_client(ctx, idx);
                if has_route {
                    let unsynced = self.cache.unsynced(cursor, &key).min(255) as u8;
                    let ack = Ack {
                        crc: req.keep_alive_ack(&key),
                        extra: vec![unsynced],
                    };
                    self.send_bare_ack(ctx, idx, ack, 0);
                }
            }
            REQ_GET_STATUS => {
                ctx.counters.status_requests += 1;
                let mut body = Vec::with_capacity(4 + 52);
                let status = ctx.status_body();
                let resp = Response {
                    tag: req.timestamp,
                    body: {
                        status.emit(&mut body);
                        body
                    },
                };
                self.send_response(ctx, idx, repr, resp.to_vec());
            }
            REQ_GET_TELEMETRY => {
                ctx.counters.telemetry_requests += 1;
                let role = c.role;
                let body = self.telemetry(ctx, role, req.params.first().copied().unwrap_or(0));
                let resp = Response {
                    tag: req.timestamp,
                    body,
                };
                self.send_response(ctx, idx, repr, resp.to_vec());
            }
            REQ_GET_ACCESS_LIST => {
                // Admins only, and only with both reserved bytes zero; anyone else gets no
                // answer (MyMesh.cpp `handleRequest` returns 0).
                if c.role != Role::Admin || req.params.get(..2).is_some_and(|p| p != [0, 0]) {
                    ctx.counters.drop("access_list_refused");
                    return;
                }
                ctx.counters.access_list_requests += 1;
                let resp = Response {
                    tag: req.timestamp,
                    body: self.access_list(),
                };
                self.send_response(ctx, idx, repr, resp.to_vec());
            }
            _ => ctx.counters.drop("unsupported_request"),
        }
    }

    /// GET_TELEMETRY's body, Cayenne LPP (src/helpers/sensors/LPPDataHelpers.h): the supply
    /// voltage on channel 1 (TELEM_CHANNEL_SELF; 0.00 V: a gateway has no battery to report),
    /// then for anyone but a guest the room's location as LPP GPS (1e-4 degrees, 3 bytes each,
    /// altitude 0). MyMesh.cpp `handleRequest`: a guest's permission mask is 0, base telemetry
    /// only; `params[0]` is an inverted mask of what else to leave out.
    fn telemetry(&self, ctx: &Ctx, role: Role, inverse_mask: u8) -> Vec<u8> {
        const CHANNEL_SELF: u8 = 1;
        const LPP_VOLTAGE: u8 = 116;
        const LPP_GPS: u8 = 136;
        let mut b = vec![CHANNEL_SELF, LPP_VOLTAGE, 0, 0];
        let mask = if role == Role::Guest {
            0
        } else {
            !inverse_mask
        };
        // TELEM_PERM_LOCATION is bit 1 of the mask (SensorManager.h).
        if mask & 0x02 != 0 {
            if let Some((lat, lon)) = self.location.or(ctx.config.location) {
                b.extend_from_slice(&[CHANNEL_SELF, LPP_GPS]);
                for v in [lat / 100, lon / 100, 0] {
                    b.extend_from_slice(&v.to_be_bytes()[1..]);
                }
            }
        }
        b
    }

    /// GET_ACCESS_LIST's body: for each admin, the key's first 6 bytes and the permissions byte
    /// (MyMesh.cpp `handleRequest`: non-admin entries are skipped). Admins on the ACL and admins
    /// logged in with the admin password.
    fn access_list(&self) -> Vec<u8> {
        let mut admins: Vec<PublicKey> = self
            .access
            .acl
            .iter()
            .filter(|(_, r)| **r == Role::Admin)
            .map(|(k, _)| *k)
            .chain(
                self.clients
                    .iter()
                    .filter(|c| c.role == Role::Admin)
                    .map(|c| c.key),
            )
            .collect();
        admins.sort();
        admins.dedup();
        let mut body = Vec::new();
        for k in admins.iter().take(MAX_ACCESS_LIST) {
            body.extend_from_slice(&k.0[..6]);
            body.push(Role::Admin.permissions());
        }
        body
    }

    fn on_path(&mut self, ctx: &mut Ctx, idx: usize, plain: &[u8]) {
        let Ok(body) = PathBody::parse(plain) else {
            ctx.counters.drop("bad_path");
            return;
        };
        self.clients[idx].out_path = Some(body.path.clone());
        ctx.counters.paths_learned += 1;
        if let Some(ack) = body.ack() {
            self.ack_push(ctx, idx, ack);
        }
    }

    /// A bare ACK: is it for a push of ours?
    pub fn on_ack(&mut self, ctx: &mut Ctx, crc: [u8; 4]) -> bool {
        let Some(idx) = self
            .clients
            .iter()
            .position(|c| c.pending.as_ref().is_some_and(|p| p.ack == crc))
        else {
            return false;
        };
        self.heard(ctx, idx);
        self.ack_push(ctx, idx, crc)
    }

    fn ack_push(&mut self, ctx: &mut Ctx, idx: usize, crc: [u8; 4]) -> bool {
        let c = &mut self.clients[idx];
        let Some(p) = c.pending.as_ref().filter(|p| p.ack == crc) else {
            return false;
        };
        c.sync_since = c.sync_since.max(p.post_ts);
        c.cursor_us = c.cursor_us.max(p.post_us);
        c.pending = None;
        c.push_failures = 0;
        ctx.counters.push_acks += 1;
        self.counters.push_acks += 1;
        self.save_client(ctx, idx);
        true
    }

    // ---------------------------------------------------------------- timers

    pub fn tick(&mut self, ctx: &mut Ctx) {
        let now = ctx.now.mono_ms;
        self.advert_if_due(ctx);
        for c in &mut self.clients {
            if c.pending.as_ref().is_some_and(|p| p.deadline_ms <= now) {
                c.pending = None;
                c.push_failures += 1;
                ctx.counters.push_timeouts += 1;
                self.counters.push_timeouts += 1;
            }
        }
        let silence = ctx.config.silence_timeout_ms;
        let mut changed = false;
        for c in &mut self.clients {
            if c.present && now.saturating_sub(c.last_heard_ms) > silence {
                c.present = false;
                changed = true;
            }
        }
        if changed {
            ctx.out.push(Action::ParticipantsChanged { room: self.id });
        }
        if now >= self.next_push_ms {
            let pushed = self.push_round(ctx);
            self.next_push_ms = now
                + if pushed {
                    ctx.config.push_interval_ms
                } else {
                    ctx.config.push_idle_interval_ms
                };
        }
    }

    /// The earliest monotonic time (ms) at which [`Room::tick`] has something to do: an advert,
    /// a push ACK timeout, a participant falling silent, or a push that is ready (a client with
    /// an unsynced post, once the push pacing, the post's settling time and the client's
    /// post-login pause allow). `None`: nothing until a frame or a post arrives.
    pub fn next_deadline(&self, config: &EngineConfig) -> Option<u64> {
        let mut at = self.next_zero_hop_ms;
        if config.flood_advert_interval_ms > 0 {
            at = at.min(self.next_flood_ms);
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.present {
                at = at.min(
                    c.last_heard_ms
                        .saturating_add(config.silence_timeout_ms)
                        .saturating_add(1),
                );
            }
            if let Some(p) = &c.pending {
                at = at.min(p.deadline_ms);
                continue;
            }
            if c.push_failures >= config.push_max_failures {
                continue;
            }
            let added_ms = match self.next_for(i) {
                Next::Post(_, added_ms) => added_ms,
                // A read is due (or under way: its answer is an event of its own).
                Next::Fetch(_) if !self.fetching => 0,
                Next::Fetch(_) | Next::Nothing => continue,
            };
            let ready = self
                .next_push_ms
                .max(c.push_not_before_ms)
                .max(added_ms.saturating_add(config.push_min_age_ms));
            at = at.min(ready);
        }
        (at != u64::MAX).then_some(at)
    }

    /// The zero-hop advert period now: the early one for the first `early_adverts` (the firmware
    /// adverts every 2 minutes on new installs: examples/simple_room_server/MyMesh.cpp sets
    /// `advert_interval = 1`, in 2-minute units), then the configured one.
    fn zero_hop_interval(&self, config: &EngineConfig) -> u64 {
        let regular = config.advert_interval_ms;
        let early = config.early_advert_interval_ms;
        if early > 0 && regular > early && self.zero_hop_adverts < config.early_adverts {
            early
        } else {
            regular
        }
    }

    fn advert_if_due(&mut self, ctx: &mut Ctx) {
        let now = ctx.now.mono_ms;
        let route = if now >= self.next_flood_ms && ctx.config.flood_advert_interval_ms > 0 {
            self.next_flood_ms = now + ctx.config.flood_advert_interval_ms;
            RouteType::Flood
        } else if now >= self.next_zero_hop_ms {
            RouteType::Direct
        } else {
            return;
        };
        self.send_advert(ctx, route, 0, true);
    }

    /// Sends the room's advert (with its location, flag 0x10, when one is set). A scheduled one
    /// (`scheduled`) also sets the next zero-hop time — a flood advert reaches the neighbours
    /// too, so it stands in for one; an extra advert (after a discovery request, or asked for by
    /// an admin) leaves the schedule alone.
    fn send_advert(&mut self, ctx: &mut Ctx, route: RouteType, delay_ms: u64, scheduled: bool) {
        let now = ctx.now.mono_ms;
        if scheduled {
            self.zero_hop_adverts = self.zero_hop_adverts.saturating_add(1);
            let interval = self.zero_hop_interval(ctx.config);
            self.next_zero_hop_ms = if interval > 0 {
                now + delay_ms + interval
            } else {
                u64::MAX
            };
        }
        self.last_advert_ms = Some(now + delay_ms);
        let ts = self.next_clock(ctx);
        let location = self.location.or(ctx.config.location);
        let advert = Advert::sign(&self.identity, ts, &AppData::room(&self.name, location));
        ctx.counters.adverts_sent += 1;
        ctx.send(
            PacketRepr::new(
                route,
                PayloadType::Advert,
                Path::empty(),
                Payload::Advert(advert).to_vec(),
            ),
            Priority::Advert,
            delay_ms,
        );
    }

    /// One round of the push scheduler: the next eligible client in round-robin order gets the
    /// oldest post it has not acknowledged. Returns whether something was pushed.
    fn push_round(&mut self, ctx: &mut Ctx) -> bool {
        let n = self.clients.len();
        let now = ctx.now.mono_ms;
        for step in 0..n {
            let idx = (self.rr_cursor + step) % n;
            let c = &self.clients[idx];
            if c.pending.is_some()
                || c.push_failures >= ctx.config.push_max_failures
                || c.push_not_before_ms > now
            {
                continue;
            }
            let (post, added_ms) = match self.next_for(idx) {
                Next::Post(post, added_ms) => (post, added_ms),
                Next::Nothing => continue,
                Next::Fetch(after_us) => {
                    // Everything up to `after_us` is the client's own: it has those.
                    let c = &mut self.clients[idx];
                    c.cursor_us = c.cursor_us.max(after_us);
                    if !self.fetching {
                        self.fetching = true;
                        ctx.out.push(Action::FetchHistory {
                            room: self.id,
                            after_us,
                            limit: PUSH_WINDOW,
                        });
                    }
                    continue;
                }
            };
            if now.saturating_sub(added_ms) < ctx.config.push_min_age_ms {
                continue;
            }
            self.rr_cursor = (idx + 1) % n;
            self.push(ctx, idx, &post);
            return true;
        }
        false
    }

    fn push(&mut self, ctx: &mut Ctx, idx: usize, post: &RoomPost) {
        let (prefix, text, cut) = post.push_body(&self.public);
        if cut {
            ctx.counters.pushes_truncated += 1;
        }
        let attempt: u8 = ctx.rng.gen_range(0..4);
        let msg = TextMessage::signed(post.room_ts, attempt, prefix, &text);
        let c = &self.clients[idx];
        let ack = msg.ack_value(&c.key);
        let timeout = match &c.out_path {
            None => ctx.config.push_ack_timeout_flood_ms,
            Some(p) => {
                ctx.config.push_ack_timeout_direct_ms
                    + ctx.config.push_ack_timeout_per_hop_ms * (p.hops() as u64 + 1)
            }
        };
        self.send_datagram(
            ctx,
            idx,
            PayloadType::TxtMsg,
            &msg.to_vec(),
            Priority::Push,
            0,
        );
        self.clients[idx].pending = Some(PendingPush {
            post_ts: post.room_ts,
            post_us: post.room_us,
            ack,
            deadline_ms: ctx.now.mono_ms + timeout,
        });
        ctx.counters.pushes_sent += 1;
        self.counters.pushes_sent += 1;
    }
}
