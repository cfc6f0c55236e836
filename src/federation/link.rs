//! One federation link as a sans-IO state machine: handshake, Hello exchange, sync, keepalive.
//!
//! Like boringtun's tunnel, the link never touches a socket or a clock: the IO shell feeds it
//! wire messages, hub events and the current time, and drains [`Action`]s — messages to send,
//! posts to submit, history to read, cursors to persist, the link going up or ending. A link
//! that ends (for any reason) says so once with [`Action::Close`] and ignores everything after.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use snow::{HandshakeState, TransportState};
use thiserror::Error;

use super::codec::Malformed;
use super::frame::{
    parse_batch, Batch, ByeReason, Features, Frame, Hello, WirePost, WirePresence, PROTOCOL_VERSION,
};
use super::handshake::{self, HandshakeError, StaticKey, MAX_NOISE_MESSAGE};
use super::inbound::Inbound;
use super::outbound::{OutEvent, Outbound};
use super::rooms::{self, LocalRoom, Negotiated, Role};
use super::secret::PeerSecret;
use crate::hub::Post;

/// Tunables of a link, from the `federation:` config section.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// This server's name, sent in Hello and used as post origin.
    pub server: String,
    pub static_key: StaticKey,
    /// Posts we accept unacknowledged from the peer (told to it in Hello).
    pub window: u16,
    /// Live posts queued per room beyond the window before falling back to history.
    pub live_queue: usize,
    /// Posts that have travelled this many hops are not forwarded further.
    pub hop_limit: u8,
    pub keepalive: Duration,
    /// Nothing heard for this long: the link is dead.
    pub dead_after: Duration,
    pub handshake_timeout: Duration,
    /// What this server announces in the handshake ([`Features::ALL`]; a test plays a
    /// first-release build with [`Features::NONE`]).
    pub features: Features,
}

/// Why a link ended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("{0}")]
    Malformed(#[from] Malformed),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("no keepalive from peer")]
    Dead,
    #[error("peer closed the link ({0:?})")]
    PeerBye(ByeReason),
    #[error("closed locally ({0:?})")]
    Local(ByeReason),
}

impl CloseReason {
    /// Malformed input and protocol breaches are counted separately in status.
    pub fn is_malformed(&self) -> bool {
        matches!(self, CloseReason::Malformed(_) | CloseReason::Protocol(_))
    }
}

/// The link is up: who the peer is and what it shares with us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUp {
    pub server: String,
    pub static_key: [u8; 32],
    pub role: Role,
    pub rooms: Negotiated,
    /// What the peer's build understands; it is sent nothing else.
    pub features: Features,
}

/// A post received from the peer, to hand to the hub; report back with [`Link::committed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub seq: u64,
    pub post: WirePost,
}

#[derive(Debug)]
pub enum Action {
    /// Send this message (one WebSocket binary message).
    Send(Vec<u8>),
    Up(PeerUp),
    Deliver(Incoming),
    FetchHistory {
        room: String,
        after_ts: u64,
        limit: usize,
    },
    SaveCursor {
        room: String,
        room_ts: u64,
    },
    /// The peer says who is present at its end of a shared room.
    Presence(WirePresence),
    /// The link is over; send anything queued before, then drop the connection.
    Close(CloseReason),
}

// One Phase per link and a handful of links per server: boxing `Up` would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Phase {
    DialerAwaitReply(Box<HandshakeState>),
    ListenerAwaitFinish(Box<HandshakeState>),
    AwaitHello(Box<TransportState>, Vec<u8>),
    Up {
        transport: Box<TransportState>,
        outbound: Outbound,
        inbound: Inbound,
        shared: Vec<String>,
    },
    Closed,
}

/// Counters a link keeps for status.
#[derive(Debug, Default, Clone)]
pub struct LinkStats {
    pub posts_in: u64,
    pub posts_out: u64,
    pub dropped_hop_limit: u64,
    pub rtt: Option<Duration>,
    /// Channel posts not sent because the peer's build does not know them.
    pub withheld_channel_posts: u64,
    /// Presence reports not sent because the peer's build does not know them.
    pub withheld_presence: u64,
}

pub struct Link {
    settings: Arc<LinkSettings>,
    role: Role,
    rooms: Vec<LocalRoom>,
    cursors: BTreeMap<String, u64>,
    phase: Phase,
    started: Instant,
    last_rx: Instant,
    last_ping: Instant,
    ping: Option<(u64, Instant)>,
    frames: VecDeque<Frame>,
    actions: VecDeque<Action>,
    stats: LinkStats,
    peer_server: Option<String>,
    /// Learnt in the handshake; [`Features::NONE`] until then.
    peer_features: Features,
    close_reported: bool,
}

impl Link {
    fn new(
        settings: Arc<LinkSettings>,
        role: Role,
        rooms: Vec<LocalRoom>,
        cursors: BTreeMap<String, u64>,
        phase: Phase,
        now: Instant,
    ) -> Self {
        Link {
            settings,
            role,
            rooms,
            cursors,
            phase,
            started: now,
            last_rx: now,
            last_ping: now,
            ping: None,
            frames: VecDeque::new(),
            actions: VecDeque::new(),
            stats: LinkStats::default(),
            peer_server: None,
            peer_features: Features::NONE,
            close_reported: false,
        }
    }

    /// Starts a link we dial. The first action is the message to send.
    pub fn dial(
        settings: Arc<LinkSettings>,
        secret: &PeerSecret,
        rooms: Vec<LocalRoom>,
        cursors: BTreeMap<String, u64>,
        now: Instant,
    ) -> Result<Self, HandshakeError> {
        let (hs, msg1) = handshake::initiate(&settings.static_key, secret)?;
        let mut link = Link::new(
            settings,
            Role::Dialer,
            rooms,
            cursors,
            Phase::DialerAwaitReply(Box::new(hs)),
            now,
        );
        link.actions.push_back(Action::Send(msg1));
        Ok(link)
    }

    /// Accepts a link a peer dialled. `msg1_body` is the first message after its header (see
    /// [`handshake::parse_header`], which tells the shell which secret and cursors to pass).
    pub fn accept(
        settings: Arc<LinkSettings>,
        secret: &PeerSecret,
        rooms: Vec<LocalRoom>,
        cursors: BTreeMap<String, u64>,
        msg1_body: &[u8],
        now: Instant,
    ) -> Result<Self, HandshakeError> {
        let (hs, msg2) =
            handshake::respond(&settings.static_key, secret, msg1_body, settings.features)?;
        let mut link = Link::new(
            settings,
            Role::Listener,
            rooms,
            cursors,
            Phase::ListenerAwaitFinish(Box::new(hs)),
            now,
        );
        link.actions.push_back(Action::Send(msg2));
        Ok(link)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Up { .. })
    }

    pub fn is_closed(&self) -> bool {
        self.close_reported
    }

    /// Posts sent and not yet acknowledged by the peer.
    pub fn unacked(&self) -> u64 {
        match &self.phase {
            Phase::Up { outbound, .. } => outbound.unacked(),
            _ => 0,
        }
    }

    fn close(&mut self, reason: CloseReason) {
        // `on_message` parks the phase as Closed while it works, so a flag, not the phase,
        // says whether the close was already reported.
        if self.close_reported {
            return;
        }
        self.close_reported = true;
        self.phase = Phase::Closed;
        self.frames.clear();
        self.actions.push_back(Action::Close(reason));
    }

    /// Ends the link on purpose, telling the peer why when the tunnel is up.
    pub fn shutdown(&mut self, reason: ByeReason) {
        if matches!(self.phase, Phase::Up { .. } | Phase::AwaitHello(..)) {
            self.frames.clear();
            self.frames.push_back(Frame::Bye(reason));
            self.flush();
        }
        self.close(CloseReason::Local(reason));
    }

    /// One message from the wire.
    pub fn on_message(&mut self, msg: &[u8], now: Instant) {
        if msg.len() > MAX_NOISE_MESSAGE {
            self.close(Malformed("oversized message").into());
            return;
        }
        self.last_rx = now;
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        match phase {
            Phase::Closed => {}
            Phase::DialerAwaitReply(mut hs) => {
                match handshake::initiator_finish(&mut hs, msg, self.settings.features) {
                    Ok((msg3, theirs)) => {
                        self.peer_features = theirs;
                        self.actions.push_back(Action::Send(msg3));
                        self.enter_transport(*hs);
                    }
                    Err(e) => self.close(e.into()),
                }
            }
            Phase::ListenerAwaitFinish(mut hs) => match handshake::responder_finish(&mut hs, msg) {
                Ok(theirs) => {
                    self.peer_features = theirs;
                    self.enter_transport(*hs);
                }
                Err(e) => self.close(e.into()),
            },
            Phase::AwaitHello(mut transport, hh) => {
                let frames = match decrypt(&mut transport, msg) {
                    Ok(f) => f,
                    Err(e) => return self.close(e),
                };
                let mut it = frames.into_iter();
                match it.next() {
                    Some(Frame::Hello(hello)) => {
                        self.phase = Phase::AwaitHello(transport, hh);
                        self.on_hello(hello, now);
                        for f in it {
                            self.on_frame(f, now);
                        }
                    }
                    Some(Frame::Bye(r)) => self.close(CloseReason::PeerBye(r)),
                    _ => self.close(CloseReason::Protocol("expected hello")),
                }
            }
            Phase::Up {
                mut transport,
                outbound,
                inbound,
                shared,
            } => {
                let frames = decrypt(&mut transport, msg);
                self.phase = Phase::Up {
                    transport,
                    outbound,
                    inbound,
                    shared,
                };
                match frames {
                    Ok(frames) => {
                        for f in frames {
                            self.on_frame(f, now);
                        }
                    }
                    Err(e) => self.close(e),
                }
            }
        }
        self.collect_outbound();
    }

    fn enter_transport(&mut self, hs: HandshakeState) {
        let hh = hs.get_handshake_hash().to_vec();
        match hs.into_transport_mode() {
            Ok(t) => {
                let (public_rooms, proofs) = rooms::offer(&self.rooms, self.role, &hh);
                self.frames.push_back(Frame::Hello(Hello {
                    version: PROTOCOL_VERSION,
                    server: self.settings.server.clone(),
                    window: self.settings.window,
                    public_rooms,
                    proofs,
                }));
                self.phase = Phase::AwaitHello(Box::new(t), hh);
            }
            Err(_) => self.close(HandshakeError::Protocol.into()),
        }
    }

    fn on_hello(&mut self, hello: Hello, now: Instant) {
        if hello.version != PROTOCOL_VERSION {
            return self.close(HandshakeError::Version(hello.version).into());
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::AwaitHello(transport, hh) = phase else {
            self.phase = phase;
            return self.close(CloseReason::Protocol("unexpected hello"));
        };
        let negotiated = rooms::negotiate(
            &self.rooms,
            self.role.other(),
            &hh,
            &hello.public_rooms,
            &hello.proofs,
        );
        let static_key = transport
            .get_remote_static()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .unwrap_or([0; 32]);
        let outbound = Outbound::new(
            hello.window,
            self.settings.live_queue,
            self.settings.hop_limit,
            hello.server.clone(),
            &negotiated.shared,
            &self.cursors,
        )
        .with_identity(super::outbound::Identity {
            local_name: self.settings.server.clone(),
            local_origin: super::outbound::origin_of(
                &self.settings.server,
                &self.settings.static_key.public,
            ),
            peer_key: hex::encode(static_key),
        })
        .with_peer_features(self.peer_features);
        self.peer_server = Some(hello.server.clone());
        self.phase = Phase::Up {
            transport,
            outbound,
            inbound: Inbound::new(self.settings.window),
            shared: negotiated.shared.clone(),
        };
        self.last_ping = now;
        self.actions.push_back(Action::Up(PeerUp {
            server: hello.server,
            static_key,
            role: self.role,
            rooms: negotiated,
            features: self.peer_features,
        }));
    }

    fn on_frame(&mut self, frame: Frame, now: Instant) {
        let Phase::Up {
            outbound,
            inbound,
            shared,
            ..
        } = &mut self.phase
        else {
            return;
        };
        match frame {
            Frame::Hello(_) => self.close(CloseReason::Protocol("second hello")),
            Frame::Post(post) => {
                if !shared.contains(&post.room) {
                    return self.close(CloseReason::Protocol("post for a room that is not shared"));
                }
                let seq = match inbound.arrived() {
                    Ok(s) => s,
                    Err(_) => return self.close(CloseReason::Protocol("window exceeded")),
                };
                self.stats.posts_in += 1;
                if post.hops > self.settings.hop_limit {
                    // Acked so the sender moves on, but not stored: it has gone too far.
                    self.stats.dropped_hop_limit += 1;
                    inbound.done(seq);
                } else {
                    self.actions
                        .push_back(Action::Deliver(Incoming { seq, post }));
                }
            }
            Frame::Ack { upto_seq } => {
                if outbound.acked(upto_seq).is_err() {
                    self.close(CloseReason::Protocol("ack beyond what was sent"));
                }
            }
            Frame::Ping { nonce } => self.frames.push_back(Frame::Pong { nonce }),
            Frame::Pong { nonce } => {
                if let Some((n, sent)) = self.ping {
                    if n == nonce {
                        self.stats.rtt = Some(now.saturating_duration_since(sent));
                        self.ping = None;
                    }
                }
            }
            Frame::Bye(r) => self.close(CloseReason::PeerBye(r)),
            Frame::Presence(p) => {
                if !shared.contains(&p.room) {
                    return self.close(CloseReason::Protocol(
                        "presence for a room that is not shared",
                    ));
                }
                self.actions.push_back(Action::Presence(p));
            }
        }
    }

    /// Tells the peer who is present here in a room; only for rooms this link shares.
    /// A peer whose build does not know presence is told nothing (counted).
    pub fn presence(&mut self, p: WirePresence) {
        if let Phase::Up { shared, .. } = &self.phase {
            if !shared.contains(&p.room) {
                return;
            }
            if self.peer_features.has(Features::PRESENCE) {
                self.frames.push_back(Frame::Presence(p));
            } else {
                self.stats.withheld_presence += 1;
            }
        }
    }

    /// What the peer's build understands (known once the handshake is done).
    pub fn peer_features(&self) -> Features {
        self.peer_features
    }

    /// A post committed on this server (from any side). `via_this_link`: it came over this link.
    pub fn offer(&mut self, post: Arc<Post>, via_this_link: bool) {
        if let Phase::Up { outbound, .. } = &mut self.phase {
            outbound.offer(post, via_this_link);
        }
        self.collect_outbound();
    }

    fn sync_withheld(&mut self) {
        if let Phase::Up { outbound, .. } = &self.phase {
            self.stats.withheld_channel_posts = outbound.withheld_channel_posts;
        }
    }

    /// The hub's fan-out dropped deliveries for us; re-read history.
    pub fn lagged(&mut self) {
        if let Phase::Up { outbound, .. } = &mut self.phase {
            outbound.lagged();
        }
        self.collect_outbound();
    }

    /// The answer to [`Action::FetchHistory`].
    pub fn history(&mut self, room: &str, posts: Vec<Post>, limit: usize) {
        if let Phase::Up { outbound, .. } = &mut self.phase {
            outbound.history(room, posts, limit);
        }
        self.collect_outbound();
    }

    /// The hub is done with incoming post `seq` (committed, duplicate, or refused for good).
    pub fn committed(&mut self, seq: u64) {
        if let Phase::Up { inbound, .. } = &mut self.phase {
            inbound.done(seq);
            if let Some(upto) = inbound.take_ack() {
                self.frames.push_back(Frame::Ack { upto_seq: upto });
            }
        }
    }

    /// Timers: keepalive pings, dead-link and handshake timeouts.
    pub fn tick(&mut self, now: Instant) {
        match &self.phase {
            Phase::Closed => return,
            Phase::Up { .. } => {}
            _ => {
                if now.saturating_duration_since(self.started) >= self.settings.handshake_timeout {
                    return self.close(CloseReason::HandshakeTimeout);
                }
            }
        }
        if now.saturating_duration_since(self.last_rx) >= self.settings.dead_after {
            return self.close(CloseReason::Dead);
        }
        if self.is_up() && now.saturating_duration_since(self.last_ping) >= self.settings.keepalive
        {
            self.last_ping = now;
            let nonce: u64 = rand::random();
            // A ping still unanswered is superseded: RTT is measured on the latest one.
            self.ping = Some((nonce, now));
            self.frames.push_back(Frame::Ping { nonce });
        }
    }

    /// When [`Link::tick`] should run next.
    pub fn next_deadline(&self) -> Instant {
        let dead = self.last_rx + self.settings.dead_after;
        match self.phase {
            Phase::Up { .. } => dead.min(self.last_ping + self.settings.keepalive),
            Phase::Closed => dead,
            _ => dead.min(self.started + self.settings.handshake_timeout),
        }
    }

    fn collect_outbound(&mut self) {
        self.sync_withheld();
        if let Phase::Up { outbound, .. } = &mut self.phase {
            while let Some(ev) = outbound.next_event() {
                self.actions.push_back(match ev {
                    OutEvent::FetchHistory {
                        room,
                        after_ts,
                        limit,
                    } => Action::FetchHistory {
                        room,
                        after_ts,
                        limit,
                    },
                    OutEvent::SaveCursor { room, room_ts } => {
                        self.cursors.insert(room.clone(), room_ts);
                        Action::SaveCursor { room, room_ts }
                    }
                });
            }
        }
    }

    /// Seals queued frames (acks, pongs, then posts) into as few messages as fit.
    fn flush(&mut self) {
        let (transport, outbound) = match &mut self.phase {
            Phase::Up {
                transport,
                outbound,
                ..
            } => (transport, Some(outbound)),
            Phase::AwaitHello(transport, _) => (transport, None),
            _ => return,
        };
        let mut frames: Vec<Frame> = self.frames.drain(..).collect();
        if let Some(o) = outbound {
            while let Some(p) = o.next_post() {
                frames.push(Frame::Post(p));
            }
        }
        if frames.is_empty() {
            return;
        }
        let mut batch = Batch::default();
        let mut sealed = Vec::new();
        let mut failed = false;
        for frame in &frames {
            if !batch.push(frame) {
                match seal(transport, &batch.take()) {
                    Some(m) => sealed.push(m),
                    None => failed = true,
                }
                // A frame within the field limits always fits an empty batch; one that does
                // not is never sent half-formed.
                if !batch.push(frame) {
                    continue;
                }
            }
            if matches!(frame, Frame::Post(_)) {
                self.stats.posts_out += 1;
            }
        }
        if !batch.is_empty() {
            match seal(transport, &batch.take()) {
                Some(m) => sealed.push(m),
                None => failed = true,
            }
        }
        for m in sealed {
            self.actions.push_back(Action::Send(m));
        }
        if failed {
            self.close(CloseReason::Protocol("encryption failed"));
        }
    }

    /// The next thing for the shell to do. Pending frames are sealed only when every other
    /// action is out, so everything produced by one round of input shares few messages.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.actions.is_empty() {
            self.flush();
        }
        self.actions.pop_front()
    }
}

fn decrypt(transport: &mut TransportState, msg: &[u8]) -> Result<Vec<Frame>, CloseReason> {
    let mut plain = vec![0u8; msg.len()];
    let n = transport
        .read_message(msg, &mut plain)
        .map_err(|_| CloseReason::Malformed(Malformed("message does not decrypt")))?;
    plain.truncate(n);
    Ok(parse_batch(&plain)?)
}

fn seal(transport: &mut TransportState, plain: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; plain.len() + 16];
    let n = transport.write_message(plain, &mut out).ok()?;
    out.truncate(n);
    Some(out)
}
