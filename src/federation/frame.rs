//! Federation frames: the messages peers exchange inside the Noise transport.
//!
//! One Noise transport message carries one or more frames, each prefixed by its length (u16,
//! big-endian). A frame starts with its type byte; the protocol version is fixed in the
//! handshake header and repeated in [`Hello`], so a later version can add frame types without
//! confusing this one (an unknown type is malformed and ends the link).
//!
//! ```text
//! batch  := { len:u16 frame }+
//! frame  := type:u8 body
//! Hello  (1): version:u8 server:str window:u16 public_rooms:u16{str} proofs:u16{[u8;32]}
//! Post   (2): seq is implicit (count of Post frames on this link, from 1)
//!             room:str id:[u8;16] origin:str author_kind:u8 author_id:str
//!             has_name:u8 [author_name:str] author_ts:u64 hops:u8 text:str
//! Ack    (3): upto_seq:u64        every Post up to this seq is committed by the receiver
//! Ping   (4): nonce:u64
//! Pong   (5): nonce:u64
//! Bye    (6): reason:u8           the sender is ending the link on purpose
//! Presence (7): room:str radio:u16 ip:u16 local:u16 names:u16{kind:u8 name:str}
//!             who is present at the sender's end of a shared room (replaces the last one)
//! ```
//!
//! Protocol version 1 is still what the handshake header and Hello say: the additions since
//! the first release (the Presence frame, author kind `channel`) are **features**, announced in
//! the Noise handshake payloads (message 2 from the listener, message 3 from the dialer), which
//! a first-release build sends empty and ignores. Each side sends the other only what the other
//! announced, so mixed fleets keep working; see [`Features`].

use super::codec::{Malformed, Reader, Writer};
use crate::hub::{Author, AuthorKind, PostId};

/// Protocol version spoken by this build.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest plaintext one Noise transport message may carry (65535 minus the AEAD tag).
pub const MAX_BATCH: usize = 65535 - 16;
/// Largest single frame; a frame never spans two transport messages.
pub const MAX_FRAME: usize = MAX_BATCH - 2;
/// Field limits: generous for any MeshCore or IP post, small enough to bound memory per frame.
pub const MAX_NAME: usize = 255;
pub const MAX_TEXT: usize = 16 * 1024;
pub const MAX_ROOMS: usize = 256;

const T_HELLO: u8 = 1;
const T_POST: u8 = 2;
const T_ACK: u8 = 3;
const T_PING: u8 = 4;
const T_PONG: u8 = 5;
const T_BYE: u8 = 6;
const T_PRESENCE: u8 = 7;
/// What a peer's build understands beyond the first release of protocol 1, announced in the
/// handshake payload as `revision:u8 features:u32` (big-endian; later revisions may append
/// fields, which this build ignores). An empty payload — all a first-release build sends — is
/// [`Features::NONE`]. Bits this build does not know are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features(u32);

/// Revision of the handshake payload this build writes.
const FEATURES_REVISION: u8 = 2;

impl Features {
    /// A first-release build: no Presence frames, no channel posts.
    pub const NONE: Features = Features(0);
    /// Presence frames (type 7).
    pub const PRESENCE: Features = Features(1);
    /// Posts whose author kind is `channel` (code 5).
    pub const CHANNEL_POSTS: Features = Features(2);
    /// Everything this build speaks.
    pub const ALL: Features = Features(1 | 2);

    /// Holds every feature of `f`.
    pub fn has(self, f: Features) -> bool {
        self.0 & f.0 == f.0
    }

    /// The features of `wanted` this set lacks.
    pub fn missing(self, wanted: Features) -> Features {
        Features(wanted.0 & !self.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Names for logs and `/status`.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.has(Features::PRESENCE) {
            v.push("presence");
        }
        if self.has(Features::CHANNEL_POSTS) {
            v.push("channel_posts");
        }
        v
    }

    /// The handshake payload announcing this set; none at all for [`Features::NONE`], exactly
    /// as a first-release build sends.
    pub fn encode(self) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut out = vec![FEATURES_REVISION];
        out.extend_from_slice(&self.0.to_be_bytes());
        out
    }

    /// Reads a peer's handshake payload.
    pub fn decode(payload: &[u8]) -> Result<Features, Malformed> {
        if payload.is_empty() {
            return Ok(Features::NONE);
        }
        let mut r = Reader::new(payload);
        let revision = r.u8("features revision")?;
        if revision < FEATURES_REVISION {
            return Err(Malformed("features revision"));
        }
        let bits = u32::from_be_bytes(r.array::<4>("features")?);
        Ok(Features(bits & Features::ALL.0))
    }
}

/// Display names one presence frame carries at most (the counts stay exact).
pub const MAX_PRESENCE_NAMES: usize = 64;

/// Who is present at the sender's end of one shared room: counts by side and display names
/// (never keys). See `presence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePresence {
    pub room: String,
    pub radio: u16,
    pub ip: u16,
    pub local: u16,
    pub names: Vec<(AuthorKind, String)>,
}

/// First frame each side sends once the handshake is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u8,
    /// The sender's server name (the `origin` of posts that enter there).
    pub server: String,
    /// How many unacknowledged posts the sender accepts in flight towards it.
    pub window: u16,
    /// Names of the sender's public rooms.
    pub public_rooms: Vec<String>,
    /// One MAC per private room of the sender, proving it holds that room's PSK (see `rooms`).
    pub proofs: Vec<[u8; 32]>,
}

/// A post as it travels between servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WirePost {
    pub room: String,
    pub id: PostId,
    pub origin: String,
    pub author: Author,
    pub author_ts: u64,
    /// Hops travelled including this one (the receiver stores it as is).
    pub hops: u8,
    pub text: String,
}

/// Why a side ends the link on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeReason {
    /// Shutting down.
    Shutdown,
    /// Both sides dialled each other; this link lost the tie-break.
    DuplicateLink,
    /// The other side broke the protocol.
    ProtocolError,
    /// Any reason this build does not know.
    Other(u8),
}

impl ByeReason {
    fn code(self) -> u8 {
        match self {
            ByeReason::Shutdown => 1,
            ByeReason::DuplicateLink => 2,
            ByeReason::ProtocolError => 3,
            ByeReason::Other(c) => c,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            1 => ByeReason::Shutdown,
            2 => ByeReason::DuplicateLink,
            3 => ByeReason::ProtocolError,
            c => ByeReason::Other(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Post(WirePost),
    Ack { upto_seq: u64 },
    Ping { nonce: u64 },
    Pong { nonce: u64 },
    Bye(ByeReason),
    Presence(WirePresence),
}

fn kind_code(k: AuthorKind) -> u8 {
    match k {
        AuthorKind::Radio => 1,
        AuthorKind::Ip => 2,
        AuthorKind::Peer => 3,
        AuthorKind::Local => 4,
        AuthorKind::Channel => 5,
    }
}

fn kind_from(c: u8) -> Result<AuthorKind, Malformed> {
    Ok(match c {
        1 => AuthorKind::Radio,
        2 => AuthorKind::Ip,
        3 => AuthorKind::Peer,
        4 => AuthorKind::Local,
        5 => AuthorKind::Channel,
        _ => return Err(Malformed("author kind")),
    })
}

impl Frame {
    /// Appends this frame (without its length prefix) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        match self {
            Frame::Hello(h) => {
                w.u8(T_HELLO);
                w.u8(h.version);
                w.string(&h.server, MAX_NAME);
                w.u16(h.window);
                let rooms = &h.public_rooms[..h.public_rooms.len().min(MAX_ROOMS)];
                w.u16(rooms.len() as u16);
                for r in rooms {
                    w.string(r, MAX_NAME);
                }
                let proofs = &h.proofs[..h.proofs.len().min(MAX_ROOMS)];
                w.u16(proofs.len() as u16);
                for p in proofs {
                    w.bytes(p);
                }
            }
            Frame::Post(p) => {
                w.u8(T_POST);
                w.string(&p.room, MAX_NAME);
                w.bytes(&p.id.0);
                w.string(&p.origin, MAX_NAME);
                w.u8(kind_code(p.author.kind));
                w.string(&p.author.id, MAX_NAME);
                match &p.author.name {
                    Some(n) => {
                        w.u8(1);
                        w.string(n, MAX_NAME);
                    }
                    None => w.u8(0),
                }
                w.u64(p.author_ts);
                w.u8(p.hops);
                w.string(&p.text, MAX_TEXT);
            }
            Frame::Ack { upto_seq } => {
                w.u8(T_ACK);
                w.u64(*upto_seq);
            }
            Frame::Ping { nonce } => {
                w.u8(T_PING);
                w.u64(*nonce);
            }
            Frame::Pong { nonce } => {
                w.u8(T_PONG);
                w.u64(*nonce);
            }
            Frame::Bye(reason) => {
                w.u8(T_BYE);
                w.u8(reason.code());
            }
            Frame::Presence(p) => {
                w.u8(T_PRESENCE);
                w.string(&p.room, MAX_NAME);
                w.u16(p.radio);
                w.u16(p.ip);
                w.u16(p.local);
                let names = &p.names[..p.names.len().min(MAX_PRESENCE_NAMES)];
                w.u16(names.len() as u16);
                for (kind, name) in names {
                    w.u8(kind_code(*kind));
                    w.string(name, MAX_NAME);
                }
            }
        }
    }

    /// Parses exactly one frame; trailing bytes are malformed.
    pub fn parse(bytes: &[u8]) -> Result<Frame, Malformed> {
        let mut r = Reader::new(bytes);
        let frame = match r.u8("frame type")? {
            T_HELLO => {
                let version = r.u8("hello version")?;
                let server = r.string(MAX_NAME, "hello server")?;
                let window = r.u16("hello window")?;
                let n = usize::from(r.u16("hello rooms")?);
                if n > MAX_ROOMS {
                    return Err(Malformed("hello room count"));
                }
                let mut public_rooms = Vec::with_capacity(n);
                for _ in 0..n {
                    public_rooms.push(r.string(MAX_NAME, "hello room")?);
                }
                let n = usize::from(r.u16("hello proofs")?);
                if n > MAX_ROOMS {
                    return Err(Malformed("hello proof count"));
                }
                let mut proofs = Vec::with_capacity(n);
                for _ in 0..n {
                    proofs.push(r.array::<32>("hello proof")?);
                }
                Frame::Hello(Hello {
                    version,
                    server,
                    window,
                    public_rooms,
                    proofs,
                })
            }
            T_POST => {
                let room = r.string(MAX_NAME, "post room")?;
                let id = PostId(r.array::<16>("post id")?);
                let origin = r.string(MAX_NAME, "post origin")?;
                let kind = kind_from(r.u8("author kind")?)?;
                let author_id = r.string(MAX_NAME, "author id")?;
                let name = match r.u8("author name flag")? {
                    0 => None,
                    1 => Some(r.string(MAX_NAME, "author name")?),
                    _ => return Err(Malformed("author name flag")),
                };
                let author_ts = r.u64("author ts")?;
                let hops = r.u8("hops")?;
                let text = r.string(MAX_TEXT, "post text")?;
                Frame::Post(WirePost {
                    room,
                    id,
                    origin,
                    author: Author {
                        kind,
                        id: author_id,
                        name,
                    },
                    author_ts,
                    hops,
                    text,
                })
            }
            T_ACK => Frame::Ack {
                upto_seq: r.u64("ack seq")?,
            },
            T_PING => Frame::Ping {
                nonce: r.u64("ping")?,
            },
            T_PONG => Frame::Pong {
                nonce: r.u64("pong")?,
            },
            T_BYE => Frame::Bye(ByeReason::from_code(r.u8("bye reason")?)),
            T_PRESENCE => {
                let room = r.string(MAX_NAME, "presence room")?;
                let radio = r.u16("presence radio")?;
                let ip = r.u16("presence ip")?;
                let local = r.u16("presence local")?;
                let n = usize::from(r.u16("presence names")?);
                if n > MAX_PRESENCE_NAMES {
                    return Err(Malformed("presence name count"));
                }
                let mut names = Vec::with_capacity(n);
                for _ in 0..n {
                    let kind = kind_from(r.u8("presence kind")?)?;
                    names.push((kind, r.string(MAX_NAME, "presence name")?));
                }
                Frame::Presence(WirePresence {
                    room,
                    radio,
                    ip,
                    local,
                    names,
                })
            }
            _ => return Err(Malformed("unknown frame type")),
        };
        r.finish("trailing bytes in frame")?;
        Ok(frame)
    }
}

/// Collects frames into one transport-message plaintext, never exceeding [`MAX_BATCH`].
#[derive(Default)]
pub struct Batch {
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Adds a frame if it fits. Returns `false` (and adds nothing) when it does not, so the
    /// caller seals this batch and starts another.
    pub fn push(&mut self, frame: &Frame) -> bool {
        self.scratch.clear();
        frame.emit(&mut self.scratch);
        if self.scratch.len() > MAX_FRAME || self.buf.len() + 2 + self.scratch.len() > MAX_BATCH {
            return false;
        }
        self.buf
            .extend_from_slice(&(self.scratch.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(&self.scratch);
        true
    }

    /// Size a frame would take in a batch, with its prefix.
    pub fn encoded_len(frame: &Frame) -> usize {
        let mut v = Vec::new();
        frame.emit(&mut v);
        v.len() + 2
    }

    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Splits a transport-message plaintext into its frames.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Frame>, Malformed> {
    let mut r = Reader::new(bytes);
    let mut frames = Vec::new();
    if r.is_empty() {
        return Err(Malformed("empty batch"));
    }
    while !r.is_empty() {
        let len = usize::from(r.u16("frame length")?);
        if len == 0 || len > MAX_FRAME {
            return Err(Malformed("frame length"));
        }
        frames.push(Frame::parse(r.take(len, "frame body")?)?);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post() -> WirePost {
        WirePost {
            room: "lobby".into(),
            id: PostId([7; 16]),
            origin: "berlin".into(),
            author: Author {
                kind: AuthorKind::Radio,
                id: "ab12".into(),
                name: Some("Ana".into()),
            },
            author_ts: 1_700_000_000,
            hops: 1,
            text: "hello from the mesh".into(),
        }
    }

    #[test]
    fn every_frame_round_trips_through_a_batch() {
        let frames = vec![
            Frame::Hello(Hello {
                version: PROTOCOL_VERSION,
                server: "berlin".into(),
                window: 256,
                public_rooms: vec!["lobby".into(), "ops".into()],
                proofs: vec![[9; 32]],
            }),
            Frame::Post(post()),
            Frame::Ack { upto_seq: 42 },
            Frame::Ping { nonce: 5 },
            Frame::Pong { nonce: 5 },
            Frame::Bye(ByeReason::DuplicateLink),
            Frame::Presence(WirePresence {
                room: "lobby".into(),
                radio: 2,
                ip: 1,
                local: 0,
                names: vec![(AuthorKind::Radio, "Ana".into())],
            }),
        ];
        let mut batch = Batch::default();
        for f in &frames {
            assert!(batch.push(f));
        }
        assert_eq!(parse_batch(&batch.take()).unwrap(), frames);
    }

    #[test]
    fn features_round_trip_and_a_first_release_payload_is_none() {
        assert_eq!(Features::decode(&[]).unwrap(), Features::NONE);
        assert!(Features::NONE.encode().is_empty());
        for f in [Features::PRESENCE, Features::CHANNEL_POSTS, Features::ALL] {
            assert_eq!(Features::decode(&f.encode()).unwrap(), f);
        }
        // A later revision with unknown bits and more fields: what we know is kept.
        let later = [3, 0xff, 0xff, 0xff, 0xff, 9, 9];
        assert_eq!(Features::decode(&later).unwrap(), Features::ALL);
        assert!(Features::decode(&[2, 0]).is_err());
        assert!(Features::decode(&[1, 0, 0, 0, 3]).is_err());
        assert_eq!(
            Features::PRESENCE.missing(Features::ALL),
            Features::CHANNEL_POSTS
        );
        assert_eq!(Features::ALL.names(), ["presence", "channel_posts"]);
    }

    #[test]
    fn batch_refuses_to_grow_past_one_noise_message() {
        let mut big = post();
        big.text = "x".repeat(MAX_TEXT);
        let mut batch = Batch::default();
        let mut n = 0;
        while batch.push(&Frame::Post(big.clone())) {
            n += 1;
        }
        assert!(n >= 3);
        assert!(batch.take().len() <= MAX_BATCH);
    }

    #[test]
    fn truncated_or_garbage_input_is_malformed() {
        let mut batch = Batch::default();
        batch.push(&Frame::Post(post()));
        let bytes = batch.take();
        for cut in 0..bytes.len() {
            assert!(parse_batch(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_batch(&[0, 1, 99]).is_err());
        assert!(parse_batch(&[0, 2, T_ACK, 0]).is_err());
        // A declared length that lies about the rest.
        assert!(parse_batch(&[0xff, 0xff, T_PING]).is_err());
    }
}
