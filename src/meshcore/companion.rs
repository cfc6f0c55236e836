//! A MeshCore companion (the client side of a room server), sans-IO: discovers rooms from
//! their adverts, logs in, posts with ACK and retries, receives pushed posts and ACKs them the
//! way a companion radio does (PATH+ACK for a flooded push, a bare ACK for a direct one).
//!
//! `meshroom-gw client` runs it on the simulated air; tests drive it directly against the
//! room-server engine.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use super::server::dedup::Dedup;
use super::server::engine::Now;
use super::wire::advert::{Advert, AppData, NodeType};
use super::wire::control::{DiscoverReq, DiscoverResp};
use super::wire::crypto::SharedSecret;
use super::wire::identity::{LocalIdentity, PublicKey};
use super::wire::message::{
    LoginReply, LoginRequest, PathBody, Request, Response, TextMessage, TxtType, MAX_PASSWORD_LEN,
    MAX_POST_TEXT,
};
use super::wire::packet::{Frame, PacketRepr, Path, PayloadType, RouteType};
use super::wire::payload::{Ack, AnonReq, Control, Datagram, Payload};

/// A room this companion knows.
#[derive(Clone, Debug)]
pub struct KnownRoom {
    pub key: PublicKey,
    pub name: String,
    /// Newest post timestamp received from the room (sent as `sync_since` at login).
    pub sync_since: u32,
    pub logged_in: bool,
    pub out_path: Option<Path>,
    secret: SharedSecret,
    /// Pushes already shown with timestamp `sync_since` (a hash of author and text each): a room
    /// server stamps in whole seconds, so several posts of a burst share one.
    shown_at_sync_since: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompanionEvent {
    RoomDiscovered {
        room: PublicKey,
        name: String,
    },
    LoggedIn {
        room: PublicKey,
        server_time: u32,
        permissions: u8,
    },
    /// No login reply in time (wrong password, or not heard).
    LoginTimedOut {
        room: PublicKey,
    },
    PostAcked {
        room: PublicKey,
        timestamp: u32,
    },
    /// No ACK after every attempt.
    PostFailed {
        room: PublicKey,
        timestamp: u32,
    },
    /// A post pushed by the room (SIGNED_PLAIN): room clock timestamp, author key prefix, text.
    Pushed {
        room: PublicKey,
        room_ts: u32,
        author_prefix: [u8; 4],
        text: String,
    },
    /// A RESPONSE to a request of ours (tag = the request's timestamp).
    Response {
        room: PublicKey,
        tag: u32,
        body: Vec<u8>,
    },
    /// A plain message from the room (e.g. why a post was refused).
    Notice {
        room: PublicKey,
        text: String,
    },
    /// A room server answered a discovery request (its key, or only a prefix of it, and the
    /// SNR at which it heard the request); `ours`: the request was ours.
    Discovered {
        key: Vec<u8>,
        snr_x4: i8,
        tag: u32,
        ours: bool,
    },
    /// The reply to an admin CLI command (TXT_MSG CLI_DATA), prefix included.
    CliReply {
        room: PublicKey,
        text: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Transmit(Vec<u8>),
    Event(CompanionEvent),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CompanionError {
    #[error("no room with that key has been heard")]
    UnknownRoom,
    #[error("post is {0} bytes; a room stores at most {MAX_POST_TEXT}")]
    TooLong(usize),
    #[error("post is empty")]
    Empty,
}

#[derive(Debug)]
struct PendingPost {
    room: PublicKey,
    msg: TextMessage,
    ack: [u8; 4],
    deadline_ms: u64,
}

/// Timers of the companion. Durations in milliseconds.
#[derive(Clone, Debug)]
pub struct CompanionConfig {
    pub post_ack_timeout_flood_ms: u64,
    pub post_ack_timeout_direct_ms: u64,
    /// Attempts per post (first try included).
    pub post_attempts: u8,
    pub login_timeout_ms: u64,
}

impl Default for CompanionConfig {
    fn default() -> Self {
        CompanionConfig {
            post_ack_timeout_flood_ms: 12_000,
            post_ack_timeout_direct_ms: 6_000,
            post_attempts: 3,
            login_timeout_ms: 15_000,
        }
    }
}

pub struct Companion {
    identity: LocalIdentity,
    name: String,
    config: CompanionConfig,
    clock: u32,
    rooms: HashMap<PublicKey, KnownRoom>,
    pending_posts: Vec<PendingPost>,
    pending_logins: HashMap<PublicKey, u64>,
    dedup: Dedup,
    rng: StdRng,
    /// Tags of our discovery requests still being answered.
    discover_tags: Vec<u32>,
}

impl Companion {
    pub fn new(
        identity: LocalIdentity,
        name: &str,
        config: CompanionConfig,
        seed: u64,
    ) -> Companion {
        Companion {
            identity,
            name: name.to_string(),
            config,
            clock: 0,
            rooms: HashMap::new(),
            pending_posts: Vec::new(),
            pending_logins: HashMap::new(),
            dedup: Dedup::new(256),
            rng: StdRng::seed_from_u64(seed),
            discover_tags: Vec::new(),
        }
    }

    pub fn public(&self) -> PublicKey {
        self.identity.public()
    }

    /// Last timestamp issued (persist it so a later run never reuses one).
    pub fn clock(&self) -> u32 {
        self.clock
    }

    pub fn set_clock(&mut self, clock: u32) {
        self.clock = self.clock.max(clock);
    }

    fn next_ts(&mut self, now: Now) -> u32 {
        self.clock = now.unix.max(self.clock.saturating_add(1));
        self.clock
    }

    /// Remembers a room (from a saved state or an exported advert).
    pub fn add_room(&mut self, key: PublicKey, name: &str, sync_since: u32) -> bool {
        let Ok(secret) = self.identity.shared_secret(&key) else {
            return false;
        };
        let e = self.rooms.entry(key).or_insert(KnownRoom {
            key,
            name: name.to_string(),
            sync_since,
            logged_in: false,
            out_path: None,
            secret,
            shown_at_sync_since: Vec::new(),
        });
        e.name = name.to_string();
        e.sync_since = e.sync_since.max(sync_since);
        true
    }

    pub fn rooms(&self) -> impl Iterator<Item = &KnownRoom> {
        self.rooms.values()
    }

    pub fn room(&self, key: &PublicKey) -> Option<&KnownRoom> {
        self.rooms.get(key)
    }

    pub fn room_by_name(&self, name: &str) -> Option<&KnownRoom> {
        self.rooms.values().find(|r| r.name == name)
    }

    fn send(&mut self, repr: PacketRepr, out: &mut Vec<Output>) {
        if let Ok(frame) = repr.to_bytes() {
            self.dedup.insert(repr.packet_hash());
            out.push(Output::Transmit(frame));
        }
    }

    fn route_to(room: &KnownRoom) -> (RouteType, Path) {
        match &room.out_path {
            Some(p) => (RouteType::Direct, p.clone()),
            None => (RouteType::Flood, Path::empty()),
        }
    }

    /// Our own advert (chat node, zero-hop) so rooms show our name.
    pub fn advert(&mut self, now: Now) -> Vec<Output> {
        let ts = self.next_ts(now);
        let advert = Advert::sign(&self.identity, ts, &AppData::chat(&self.name));
        let mut out = Vec::new();
        self.send(
            PacketRepr::new(
                RouteType::Direct,
                PayloadType::Advert,
                Path::empty(),
                Payload::Advert(advert).to_vec(),
            ),
            &mut out,
        );
        out
    }

    /// Logs in to a room; `sync_since` defaults to the newest post already received.
    pub fn login(
        &mut self,
        now: Now,
        room: &PublicKey,
        password: &str,
        sync_since: Option<u32>,
    ) -> Result<Vec<Output>, CompanionError> {
        let ts = self.next_ts(now);
        let r = self.rooms.get(room).ok_or(CompanionError::UnknownRoom)?;
        let pw = password.as_bytes();
        let req = LoginRequest {
            timestamp: ts,
            sync_since: sync_since.unwrap_or(r.sync_since),
            password: pw[..pw.len().min(MAX_PASSWORD_LEN)].to_vec(),
        };
        let anon = AnonReq::seal(
            room.hash_byte(),
            self.identity.public(),
            &r.secret,
            &req.to_vec(),
        );
        let (route, path) = Self::route_to(r);
        let mut out = Vec::new();
        self.pending_logins
            .insert(*room, now.mono_ms + self.config.login_timeout_ms);
        self.send(
            PacketRepr::new(
                route,
                PayloadType::AnonReq,
                path,
                Payload::AnonReq(anon).to_vec(),
            ),
            &mut out,
        );
        Ok(out)
    }

    /// Sends a request (GET_STATUS, KEEP_ALIVE, …) to a room; the answer arrives as
    /// [`CompanionEvent::Response`] (or as an ACK for a keep-alive). Returns the request's tag.
    pub fn request(
        &mut self,
        now: Now,
        room: &PublicKey,
        req_type: u8,
        params: &[u8],
    ) -> Result<(u32, Vec<Output>), CompanionError> {
        let ts = self.next_ts(now);
        let r = self.rooms.get(room).ok_or(CompanionError::UnknownRoom)?;
        let req = Request {
            timestamp: ts,
            req_type,
            params: params.to_vec(),
        };
        let d = Datagram::seal(
            room.hash_byte(),
            self.identity.public().hash_byte(),
            &r.secret,
            &req.to_vec(),
        );
        let (route, path) = Self::route_to(r);
        let mut out = Vec::new();
        self.send(
            PacketRepr::new(route, PayloadType::Req, path, Payload::Req(d).to_vec()),
            &mut out,
        );
        Ok((ts, out))
    }

    /// Sends a zero-hop DISCOVER_REQ for room servers (as a phone app does through its
    /// companion radio's CMD_SEND_CONTROL_DATA); answers arrive as
    /// [`CompanionEvent::Discovered`]. Returns the request's tag.
    pub fn discover(&mut self) -> (u32, Vec<Output>) {
        let tag: u32 = self.rng.gen();
        let req = DiscoverReq::new(&[NodeType::RoomServer], tag).to_vec();
        if self.discover_tags.len() >= 8 {
            self.discover_tags.remove(0);
        }
        self.discover_tags.push(tag);
        let mut out = Vec::new();
        let payload = Payload::Control(Control {
            flags: req[0],
            data: req[1..].to_vec(),
        });
        self.send(
            PacketRepr::new(
                RouteType::Direct,
                PayloadType::Control,
                Path::empty(),
                payload.to_vec(),
            ),
            &mut out,
        );
        (tag, out)
    }

    /// Sends an admin CLI command (TXT_MSG of type CLI_DATA) to a room; the reply arrives as
    /// [`CompanionEvent::CliReply`]. No ACK comes for a command; returns its timestamp.
    pub fn command(
        &mut self,
        now: Now,
        room: &PublicKey,
        line: &str,
    ) -> Result<(u32, Vec<Output>), CompanionError> {
        let ts = self.next_ts(now);
        let r = self.rooms.get(room).ok_or(CompanionError::UnknownRoom)?;
        let msg = TextMessage {
            timestamp: ts,
            txt_type: TxtType::CliData,
            attempt: 0,
            author_prefix: None,
            text: line.as_bytes().to_vec(),
        };
        let d = Datagram::seal(
            room.hash_byte(),
            self.identity.public().hash_byte(),
            &r.secret,
            &msg.to_vec(),
        );
        let (route, path) = Self::route_to(r);
        let mut out = Vec::new();
        self.send(
            PacketRepr::new(
                route,
                PayloadType::TxtMsg,
                path,
                Payload::TxtMsg(d).to_vec(),
            ),
            &mut out,
        );
        Ok((ts, out))
    }

    /// Posts text to a room (logged in or not: the room decides).
    pub fn post(
        &mut self,
        now: Now,
        room: &PublicKey,
        text: &str,
    ) -> Result<(u32, Vec<Output>), CompanionError> {
        if text.is_empty() {
            return Err(CompanionError::Empty);
        }
        if text.len() > MAX_POST_TEXT {
            return Err(CompanionError::TooLong(text.len()));
        }
        if !self.rooms.contains_key(room) {
            return Err(CompanionError::UnknownRoom);
        }
        let ts = self.next_ts(now);
        let msg = TextMessage::plain(ts, 0, text);
        let mut out = Vec::new();
        self.send_post(now, *room, msg, &mut out);
        Ok((ts, out))
    }

    /// Sends a post as-is, without the companion's own length checks (tests use it to see
    /// what the room does with what a stock client would never send).
    pub fn post_unchecked(
        &mut self,
        now: Now,
        room: &PublicKey,
        text: &str,
    ) -> Result<(u32, Vec<Output>), CompanionError> {
        if !self.rooms.contains_key(room) {
            return Err(CompanionError::UnknownRoom);
        }
        let ts = self.next_ts(now);
        let mut out = Vec::new();
        self.send_post(now, *room, TextMessage::plain(ts, 0, text), &mut out);
        Ok((ts, out))
    }

    fn send_post(&mut self, now: Now, room: PublicKey, msg: TextMessage, out: &mut Vec<Output>) {
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let ack = msg.ack_value(&self.identity.public());
        let d = Datagram::seal(
            room.hash_byte(),
            self.identity.public().hash_byte(),
            &r.secret,
            &msg.to_vec(),
        );
        let (route, path) = Self::route_to(r);
        let timeout = if route.is_flood() {
            self.config.post_ack_timeout_flood_ms
        } else {
            self.config.post_ack_timeout_direct_ms
        };
        self.pending_posts
            .retain(|p| !(p.room == room && p.msg.timestamp == msg.timestamp));
        self.pending_posts.push(PendingPost {
            room,
            msg,
            ack,
            deadline_ms: now.mono_ms + timeout,
        });
        self.send(
            PacketRepr::new(
                route,
                PayloadType::TxtMsg,
                path,
                Payload::TxtMsg(d).to_vec(),
            ),
            out,
        );
    }

    /// Retries posts without ACK, gives up after the last attempt, times out logins.
    pub fn tick(&mut self, now: Now) -> Vec<Output> {
        let mut out = Vec::new();
        let due: Vec<usize> = (0..self.pending_posts.len())
            .filter(|&i| self.pending_posts[i].deadline_ms <= now.mono_ms)
            .collect();
        for i in due.into_iter().rev() {
            let p = self.pending_posts.remove(i);
            if p.msg.attempt + 1 >= self.config.post_attempts {
                out.push(Output::Event(CompanionEvent::PostFailed {
                    room: p.room,
                    timestamp: p.msg.timestamp,
                }));
            } else {
                let mut msg = p.msg;
                msg.attempt += 1;
                self.send_post(now, p.room, msg, &mut out);
            }
        }
        let timed_out: Vec<PublicKey> = self
            .pending_logins
            .iter()
            .filter(|(_, d)| **d <= now.mono_ms)
            .map(|(k, _)| *k)
            .collect();
        for room in timed_out {
            self.pending_logins.remove(&room);
            out.push(Output::Event(CompanionEvent::LoginTimedOut { room }));
        }
        out
    }

    pub fn pending_posts(&self) -> usize {
        self.pending_posts.len()
    }

    /// One frame from the air.
    pub fn handle_frame(&mut self, _now: Now, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        let Ok(repr) = Frame::new_checked(bytes).and_then(|f| PacketRepr::parse(&f)) else {
            return out;
        };
        if !self.dedup.insert(repr.packet_hash()) {
            return out;
        }
        let Ok(payload) = Payload::parse(repr.payload_type, &repr.payload) else {
            return out;
        };
        if !repr.route.is_flood() && !repr.path.is_empty() && !matches!(payload, Payload::Ack(_)) {
            return out;
        }
        match payload {
            Payload::Advert(a) => self.on_advert(&a, &mut out),
            Payload::Control(_) if repr.path.is_empty() && !repr.route.is_flood() => {
                if let Some(resp) = DiscoverResp::parse(&repr.payload) {
                    // Answers to other nodes' requests are news too: the room is in range.
                    if resp.node_type == NodeType::RoomServer {
                        out.push(Output::Event(CompanionEvent::Discovered {
                            ours: self.discover_tags.contains(&resp.tag),
                            key: resp.key,
                            snr_x4: resp.snr_x4,
                            tag: resp.tag,
                        }));
                    }
                }
            }
            Payload::Ack(a) => self.on_ack(a.crc, &mut out),
            Payload::Path(d) | Payload::Response(d) | Payload::TxtMsg(d) => {
                if d.dest_hash != self.identity.public().hash_byte() {
                    return out;
                }
                // Try every known room with that hash until one MAC verifies.
                let found = self
                    .rooms
                    .values()
                    .filter(|r| r.key.hash_byte() == d.src_hash)
                    .find_map(|r| d.open(&r.secret).ok().map(|p| (r.key, p)));
                let Some((room, plain)) = found else {
                    return out;
                };
                match repr.payload_type {
                    PayloadType::Path => self.on_path(room, &plain, &mut out),
                    PayloadType::Response => self.on_login_reply(room, &plain, &mut out),
                    _ => self.on_text(room, &repr, &plain, &mut out),
                }
            }
            _ => {}
        }
        out
    }

    fn on_advert(&mut self, a: &Advert, out: &mut Vec<Output>) {
        let Ok(app) = a.app_data() else {
            return;
        };
        if app.node_type != NodeType::RoomServer || !a.verify() {
            return;
        }
        let Some(name) = app.name else {
            return;
        };
        let new = !self.rooms.contains_key(&a.public_key);
        if self.add_room(a.public_key, &name, 0) && new {
            out.push(Output::Event(CompanionEvent::RoomDiscovered {
                room: a.public_key,
                name,
            }));
        }
    }

    fn on_ack(&mut self, crc: [u8; 4], out: &mut Vec<Output>) {
        if let Some(i) = self.pending_posts.iter().position(|p| p.ack == crc) {
            let p = self.pending_posts.remove(i);
            out.push(Output::Event(CompanionEvent::PostAcked {
                room: p.room,
                timestamp: p.msg.timestamp,
            }));
        }
    }

    fn on_path(&mut self, room: PublicKey, plain: &[u8], out: &mut Vec<Output>) {
        let Ok(body) = PathBody::parse(plain) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(&room) {
            r.out_path = Some(body.path.clone());
        }
        if body.extra_type == PayloadType::Response.as_u8() {
            self.on_login_reply(room, &body.extra, out);
        } else if let Some(ack) = body.ack() {
            self.on_ack(ack, out);
        }
    }

    fn on_login_reply(&mut self, room: PublicKey, plain: &[u8], out: &mut Vec<Output>) {
        if self.pending_logins.remove(&room).is_none() {
            if let Ok(r) = Response::parse(plain) {
                out.push(Output::Event(CompanionEvent::Response {
                    room,
                    tag: r.tag,
                    body: r.body,
                }));
            }
            return;
        }
        let Ok(reply) = LoginReply::parse(plain) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(&room) {
            r.logged_in = true;
        }
        out.push(Output::Event(CompanionEvent::LoggedIn {
            room,
            server_time: reply.server_time,
            permissions: reply.permissions,
        }));
    }

    fn on_text(&mut self, room: PublicKey, repr: &PacketRepr, plain: &[u8], out: &mut Vec<Output>) {
        let Ok(msg) = TextMessage::parse(plain) else {
            return;
        };
        let me = self.identity.public();
        // SIGNED_PLAIN is ACKed with our key, PLAIN with the sender's (§8).
        let (ack, event) = match msg.txt_type {
            TxtType::SignedPlain => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    return;
                };
                // A retry of a push we already have is ACKed again but not shown twice; another
                // post sharing the newest second is new.
                let digest = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    msg.author_prefix.hash(&mut h);
                    msg.text.hash(&mut h);
                    h.finish()
                };
                let fresh = if msg.timestamp > r.sync_since {
                    r.sync_since = msg.timestamp;
                    r.shown_at_sync_since.clear();
                    r.shown_at_sync_since.push(digest);
                    true
                } else if msg.timestamp == r.sync_since && !r.shown_at_sync_since.contains(&digest)
                {
                    if r.shown_at_sync_since.len() >= 4096 {
                        r.shown_at_sync_since.clear();
                    }
                    r.shown_at_sync_since.push(digest);
                    true
                } else {
                    false
                };
                let event = fresh.then(|| CompanionEvent::Pushed {
                    room,
                    room_ts: msg.timestamp,
                    author_prefix: msg.author_prefix.unwrap_or_default(),
                    text: msg.text_lossy(),
                });
                (msg.ack_value(&me), event)
            }
            TxtType::CliData => {
                // CLI replies are not ACKed.
                out.push(Output::Event(CompanionEvent::CliReply {
                    room,
                    text: msg.text_lossy(),
                }));
                return;
            }
            TxtType::Plain => (
                msg.ack_value(&room),
                Some(CompanionEvent::Notice {
                    room,
                    text: msg.text_lossy(),
                }),
            ),
            _ => return,
        };
        let Some(r) = self.rooms.get(&room) else {
            return;
        };
        let extra = vec![0, self.rng.gen()];
        if repr.route.is_flood() {
            let mut e = ack.to_vec();
            e.extend_from_slice(&extra);
            let body = PathBody {
                path: repr.path.clone(),
                extra_type: PayloadType::Ack.as_u8(),
                extra: e,
            };
            let d = Datagram::seal(room.hash_byte(), me.hash_byte(), &r.secret, &body.to_vec());
            self.send(
                PacketRepr::new(
                    RouteType::Flood,
                    PayloadType::Path,
                    Path::empty(),
                    Payload::Path(d).to_vec(),
                ),
                out,
            );
        } else {
            let (route, path) = Self::route_to(r);
            self.send(
                PacketRepr::new(
                    route,
                    PayloadType::Ack,
                    path,
                    Payload::Ack(Ack { crc: ack, extra }).to_vec(),
                ),
                out,
            );
        }
        if let Some(e) = event {
            out.push(Output::Event(e));
        }
    }
}
