//! A room's MeshCore group channel, sans-IO: the room keeps the channel's history and, in bridge
//! mode, speaks on it.
//!
//! - **Wire** (protocol sheet §6; firmware `BaseChatMesh::sendGroupMessage` and
//!   `BaseChatMesh::onGroupDataRecv`): a GRP_TXT payload is `channel_hash(1) MAC(2) ciphertext`,
//!   the plaintext `timestamp(u32 LE) txt_type(1) "name: text"`, zero-padded to 16 bytes. Bits
//!   2–7 of `txt_type` are the text type (0 = plain), bits 0–1 an attempt number; the text is at
//!   most `MAX_TEXT_LEN` = 160 bytes including the `"name: "` prefix.
//! - **Post ids**: [`derive_post_id`] hashes the channel key, the timestamp and the text, so every
//!   gateway that hears a message makes the same id, and federation keeps one post.
//! - **Echo suppression**: ids heard on the air and ids of the room's posts (with every way this
//!   or another gateway may render them on the channel) are remembered, bounded. A post already
//!   on the air is not sent; a queued message another gateway sends first is withdrawn; a channel
//!   message relayed from a gateway on the same channel is sent byte-identical to the original,
//!   so nodes that heard it drop it by packet hash.
//! - **Rate**: at most `max_per_minute` messages, evenly spaced; what does not fit waits in a
//!   bounded queue, beyond that it is dropped and counted. The engine hands frames out at the
//!   lowest priority, below ACKs, pushes and adverts.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::config::rooms::ChannelMode;
use crate::meshcore::wire::crypto::ChannelKey;
use crate::meshcore::wire::packet::{PacketRepr, Path, PathLen, PayloadType, RouteType};
use crate::meshcore::wire::payload::{GroupMessage, Payload};
use crate::post::AuthorKind;

/// Longest channel text, `"name: "` prefix included (firmware `MAX_TEXT_LEN`).
pub const MAX_CHANNEL_TEXT: usize = 160;
/// What a cut text ends with.
pub const CUT_MARK: &str = "…";
/// Messages waiting for their turn on the air, per channel.
pub const QUEUE_LIMIT: usize = 32;
/// Ids remembered for echo suppression, per channel.
const RECENT_IDS: usize = 2048;
/// A post that entered the system at another server waits this long (ms, drawn per post) before
/// this gateway bridges it: its origin's gateway, which had it first, may share this air, and
/// when its copy is heard meanwhile this one is withdrawn. Without it both gateways key up
/// within milliseconds of each other and the two copies collide at every phone.
const REMOTE_HOLD_MS: std::ops::Range<u64> = 1_000..3_000;
/// Longest path a firmware repeater extends (`MAX_PATH_SIZE`, 1-byte hashes).
const MAX_PATH_HOPS: u8 = 64;

/// One room's binding, as resolved from its configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSetup {
    /// The room that keeps the channel.
    pub room: String,
    /// `Public`, `#name`, or a private channel's name (never its key).
    pub name: String,
    pub key: ChannelKey,
    pub mode: ChannelMode,
    pub max_per_minute: u32,
    /// `None`: a plain flood. `Some(0)`: zero hop. `Some(n)`: repeaters stop after `n` repeats.
    pub hop_limit: Option<u8>,
}

/// What a channel binding counts (`/status` under the room's `channel`, and `/metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounters {
    /// Messages on this channel that decrypted (flood repeats excluded).
    pub heard: u64,
    /// Posts the hub stored from the air.
    pub stored: u64,
    /// Messages already in the room (heard again, from another gateway, or our own echo).
    pub duplicates: u64,
    pub transmitted: u64,
    /// Bridged posts dropped because the queue behind the rate limit was full.
    pub rate_limited: u64,
    /// Bridged posts cut to fit a channel message.
    pub cut: u64,
    pub bad_mac: u64,
    /// Group data that is not plain text (`txt_type` ≠ 0) or too short.
    pub not_text: u64,
    /// Messages without a `"name: "` prefix (stored with an unknown sender).
    pub no_sender: u64,
    /// Bridged posts not sent because the channel already carried them.
    pub echo_suppressed: u64,
}

/// A decrypted channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelMessage {
    pub timestamp: u32,
    /// The name before `": "`, if any (whatever the sender chose to call itself).
    pub sender: Option<String>,
    /// The message after `": "` (the whole text when there is no sender).
    pub text: String,
    /// The text as it travelled, `"name: text"`.
    pub full_text: String,
}

/// Why a GRP_TXT was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    WrongHash,
    BadMac,
    NotText,
}

/// Checks the hash and MAC with `key` and decrypts (firmware `onGroupDataRecv`).
pub fn decode(key: &ChannelKey, g: &GroupMessage) -> Result<ChannelMessage, DecodeError> {
    if g.channel_hash != key.hash() {
        return Err(DecodeError::WrongHash);
    }
    let plain = g.open(key.secret()).map_err(|_| DecodeError::BadMac)?;
    if plain.len() < 5 || plain[4] >> 2 != 0 {
        return Err(DecodeError::NotText);
    }
    let timestamp = u32::from_le_bytes([plain[0], plain[1], plain[2], plain[3]]);
    let body = &plain[5..];
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    let full_text = String::from_utf8_lossy(&body[..end]).into_owned();
    if full_text.is_empty() {
        return Err(DecodeError::NotText);
    }
    let (sender, text) = match full_text.split_once(": ") {
        Some((name, text)) if !name.is_empty() => (Some(name.to_string()), text.to_string()),
        _ => (None, full_text.clone()),
    };
    Ok(ChannelMessage {
        timestamp,
        sender,
        text,
        full_text,
    })
}

/// The frame a firmware node sends for `full_text` at `timestamp` (`sendGroupMessage`: txt_type
/// 0, no NUL, a flood with an empty path), with `hop_limit` applied:
/// `Some(0)` is a zero-hop packet (`Mesh::sendZeroHop`), `Some(n)` prefills the path with
/// `64 − n` one-byte entries so that firmware repeaters — which extend a flood only while the
/// path has room (`Mesh::routeRecvPacket`) — repeat it `n` times at most.
pub fn encode(
    key: &ChannelKey,
    timestamp: u32,
    full_text: &str,
    hop_limit: Option<u8>,
) -> PacketRepr {
    let mut plain = Vec::with_capacity(5 + full_text.len());
    plain.extend_from_slice(&timestamp.to_le_bytes());
    plain.push(0);
    plain.extend_from_slice(full_text.as_bytes());
    let g = GroupMessage::seal(key.hash(), key.secret(), &plain);
    let payload = Payload::GrpTxt(g).to_vec();
    let (route, path) = match hop_limit {
        None => (RouteType::Flood, Path::empty()),
        Some(0) => (RouteType::Direct, Path::empty()),
        Some(n) => {
            let filler = MAX_PATH_HOPS.saturating_sub(n.min(63));
            // Distinct bytes, so no single repeater finds "its" hash many times over.
            let bytes: Vec<u8> = (0..filler)
                .map(|i| i.wrapping_mul(97).wrapping_add(0x5a))
                .collect();
            let path = PathLen::new(filler, 1)
                .and_then(|len| Path::new(len, &bytes))
                .unwrap_or_else(|_| Path::empty());
            (RouteType::Flood, path)
        }
    };
    PacketRepr::new(route, PayloadType::GrpTxt, path, payload)
}

/// The post id of a channel message: the same on every gateway that hears it.
pub fn derive_post_id(key: &ChannelKey, timestamp: u32, full_text: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"meshroom-gw/channel-post\0");
    h.update(key.secret().0);
    h.update(timestamp.to_le_bytes());
    h.update(full_text.as_bytes());
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    id
}

/// `"name: text"` within [`MAX_CHANNEL_TEXT`] bytes; `true` when it had to be cut.
pub fn render(name: &str, text: &str) -> (String, bool) {
    let name = if name.is_empty() { "?" } else { name };
    let full = format!("{name}: {text}");
    if full.len() <= MAX_CHANNEL_TEXT {
        return (full, false);
    }
    let budget = MAX_CHANNEL_TEXT - CUT_MARK.len();
    let mut end = budget;
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}{CUT_MARK}", &full[..end]), true)
}

/// A committed post of the room, as the bridge sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingPost {
    pub id: [u8; 16],
    pub kind: AuthorKind,
    /// The author's display name (`None`: unknown).
    pub author_name: Option<String>,
    /// The server where the post entered the system, when it is not this one.
    pub remote_origin: Option<String>,
    /// The server where the post entered the system (this one or another).
    pub origin: String,
    pub author_ts: u32,
    pub text: String,
}

/// A channel message heard on the air, for the hub to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPost {
    pub room: usize,
    pub id: [u8; 16],
    pub sender: Option<String>,
    pub timestamp: u32,
    pub text: String,
}

/// The binding's figures for `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    pub name: String,
    pub mode: &'static str,
    pub hash: String,
    pub max_per_minute: u32,
    pub hop_limit: Option<u8>,
    pub queued: usize,
    #[serde(flatten)]
    pub counters: ChannelCounters,
}

/// A bounded set of recent ids.
#[derive(Debug, Default)]
struct Recent {
    ring: VecDeque<[u8; 16]>,
    set: HashSet<[u8; 16]>,
}

impl Recent {
    fn insert(&mut self, id: [u8; 16]) {
        if !self.set.insert(id) {
            return;
        }
        if self.ring.len() >= RECENT_IDS {
            if let Some(old) = self.ring.pop_front() {
                self.set.remove(&old);
            }
        }
        self.ring.push_back(id);
    }
    fn contains(&self, id: &[u8; 16]) -> bool {
        self.set.contains(id)
    }
}

/// A bounded map from the ids a post may have on the channel to the post's id in the room.
#[derive(Debug, Default)]
struct Known {
    ring: VecDeque<[u8; 16]>,
    map: HashMap<[u8; 16], [u8; 16]>,
}

impl Known {
    fn insert(&mut self, wire_id: [u8; 16], post: [u8; 16]) {
        if self.map.insert(wire_id, post).is_some() {
            return;
        }
        if self.ring.len() >= RECENT_IDS {
            if let Some(old) = self.ring.pop_front() {
                self.map.remove(&old);
            }
        }
        self.ring.push_back(wire_id);
    }
    fn get(&self, wire_id: &[u8; 16]) -> Option<[u8; 16]> {
        self.map.get(wire_id).copied()
    }
}

#[derive(Debug)]
struct Queued {
    /// Id of the post in the room.
    post: [u8; 16],
    /// How long it waits once first due ([`REMOTE_HOLD_MS`] for a remote post, else 0), and
    /// from when it may go (set the first time it reaches the head of the queue).
    hold_ms: u64,
    not_before: Option<u64>,
    /// Id the message gets on the channel.
    wire_id: [u8; 16],
    timestamp: u32,
    text: String,
}

/// What a heard GRP_TXT was to this binding.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// New: store it.
    Post(ChannelPost),
    /// Already in the room or already heard.
    Duplicate,
    /// Not for this channel after all (MAC), or not a text message.
    Rejected(DecodeError),
}

/// One room's channel.
#[derive(Debug)]
pub struct ChannelBinding {
    room: usize,
    setup: ChannelSetup,
    counters: ChannelCounters,
    /// Ids heard on the air or sent by us.
    on_air: Recent,
    /// Ids of the room's posts and of their channel renderings → the post's id.
    known: Known,
    queue: VecDeque<Queued>,
    last_sent_ms: Option<u64>,
}

impl ChannelBinding {
    pub fn new(room: usize, setup: ChannelSetup) -> ChannelBinding {
        ChannelBinding {
            room,
            setup,
            counters: ChannelCounters::default(),
            on_air: Recent::default(),
            known: Known::default(),
            queue: VecDeque::new(),
            last_sent_ms: None,
        }
    }

    pub fn room(&self) -> usize {
        self.room
    }

    pub fn hash(&self) -> u8 {
        self.setup.key.hash()
    }

    pub fn setup(&self) -> &ChannelSetup {
        &self.setup
    }

    pub fn counters(&self) -> &ChannelCounters {
        &self.counters
    }

    pub fn status(&self) -> ChannelStatus {
        ChannelStatus {
            name: self.setup.name.clone(),
            mode: self.setup.mode.as_str(),
            hash: format!("{:02x}", self.setup.key.hash()),
            max_per_minute: self.setup.max_per_minute,
            hop_limit: self.setup.hop_limit,
            queued: self.queue.len(),
            counters: self.counters.clone(),
        }
    }

    /// A GRP_TXT whose hash is this channel's (the engine already dropped flood repeats by
    /// packet hash).
    pub fn on_air(&mut self, g: &GroupMessage) -> Heard {
        let msg = match decode(&self.setup.key, g) {
            Ok(m) => m,
            Err(e) => {
                match e {
                    DecodeError::BadMac => self.counters.bad_mac += 1,
                    DecodeError::NotText => self.counters.not_text += 1,
                    DecodeError::WrongHash => {}
                }
                return Heard::Rejected(e);
            }
        };
        self.counters.heard += 1;
        let id = derive_post_id(&self.setup.key, msg.timestamp, &msg.full_text);
        // Someone else put it (or another rendering of the same post) on the air: our copy
        // need not go.
        let post = self.known.get(&id).unwrap_or(id);
        let before = self.queue.len();
        self.queue.retain(|q| q.wire_id != id && q.post != post);
        self.counters.echo_suppressed += (before - self.queue.len()) as u64;
        if self.on_air.contains(&id) || self.known.get(&id).is_some() {
            self.counters.duplicates += 1;
            self.on_air.insert(id);
            return Heard::Duplicate;
        }
        self.on_air.insert(id);
        if msg.sender.is_none() {
            self.counters.no_sender += 1;
        }
        Heard::Post(ChannelPost {
            room: self.room,
            id,
            sender: msg.sender,
            timestamp: msg.timestamp,
            text: msg.text,
        })
    }

    /// The hub's answer for a post from the air: stored, or already there.
    pub fn committed(&mut self, id: [u8; 16], stored: bool) {
        self.known.insert(id, id);
        if stored {
            self.counters.stored += 1;
        } else {
            self.counters.duplicates += 1;
        }
    }

    /// A post committed to the room, from any side. Remembered for echo suppression; in bridge
    /// mode queued for the air unless it came from this channel or the air already carries it.
    pub fn offer(&mut self, p: &OutgoingPost) {
        self.known.insert(p.id, p.id);
        let name = p.author_name.clone().unwrap_or_default();
        // How a gateway elsewhere names this author: `name@origin`.
        let remote_name = if name.contains('@') {
            name.clone()
        } else {
            format!("{name}@{}", p.origin)
        };
        // Every rendering a gateway may give this post: ours and the other side's.
        let plain = render(&name, &p.text).0;
        let remote = render(&remote_name, &p.text).0;
        let exact = match (&p.kind, &p.author_name) {
            (AuthorKind::Channel, None) => p.text.clone(),
            _ => format!("{name}: {}", p.text),
        };
        let same_channel = p.kind == AuthorKind::Channel
            && derive_post_id(&self.setup.key, p.author_ts, &exact) == p.id;
        for text in [&plain, &remote] {
            self.known
                .insert(derive_post_id(&self.setup.key, p.author_ts, text), p.id);
        }
        if self.setup.mode != ChannelMode::Bridge {
            return;
        }
        // Never back onto the channel it came from.
        if p.kind == AuthorKind::Channel && p.remote_origin.is_none() {
            return;
        }
        let (text, cut) = if same_channel {
            // The message as the channel carried it elsewhere: byte-identical, same packet hash.
            (exact, false)
        } else if p.remote_origin.is_some() {
            render(&remote_name, &p.text)
        } else {
            render(&name, &p.text)
        };
        let wire_id = derive_post_id(&self.setup.key, p.author_ts, &text);
        if self.on_air.contains(&p.id) || self.on_air.contains(&wire_id) {
            self.counters.echo_suppressed += 1;
            return;
        }
        if self
            .queue
            .iter()
            .any(|q| q.post == p.id || q.wire_id == wire_id)
        {
            return;
        }
        if self.queue.len() >= QUEUE_LIMIT {
            self.counters.rate_limited += 1;
            return;
        }
        if cut {
            self.counters.cut += 1;
        }
        self.known.insert(wire_id, p.id);
        let hold_ms = if p.remote_origin.is_some() {
            rand::Rng::gen_range(&mut rand::thread_rng(), REMOTE_HOLD_MS)
        } else {
            0
        };
        self.queue.push_back(Queued {
            post: p.id,
            hold_ms,
            not_before: None,
            wire_id,
            timestamp: p.author_ts,
            text,
        });
    }

    /// The next frame to send, when the rate limit allows one now.
    pub fn poll(&mut self, now_ms: u64) -> Option<PacketRepr> {
        if self.setup.mode != ChannelMode::Bridge || self.queue.is_empty() {
            return None;
        }
        let spacing = 60_000 / u64::from(self.setup.max_per_minute.max(1));
        if self
            .last_sent_ms
            .is_some_and(|last| now_ms.saturating_sub(last) < spacing)
        {
            return None;
        }
        let head = self.queue.front_mut()?;
        if now_ms < *head.not_before.get_or_insert(now_ms + head.hold_ms) {
            return None;
        }
        let q = self.queue.pop_front()?;
        self.last_sent_ms = Some(now_ms);
        self.counters.transmitted += 1;
        self.on_air.insert(q.wire_id);
        self.on_air.insert(q.post);
        Some(encode(
            &self.setup.key,
            q.timestamp,
            &q.text,
            self.setup.hop_limit,
        ))
    }

    /// When [`poll`](Self::poll) will next hand out a frame (monotonic ms), if one is waiting.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.setup.mode != ChannelMode::Bridge || self.queue.is_empty() {
            return None;
        }
        let spacing = 60_000 / u64::from(self.setup.max_per_minute.max(1));
        let rate = self
            .last_sent_ms
            .map_or(0, |last| last.saturating_add(spacing));
        // A head whose hold has not started yet is due now: the poll starts it.
        let hold = self.queue.front().and_then(|q| q.not_before).unwrap_or(0);
        Some(rate.max(hold))
    }

    /// Messages waiting for the rate limit.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_cuts_at_a_char_boundary_with_the_mark() {
        let (t, cut) = render("alice", "hi");
        assert_eq!((t.as_str(), cut), ("alice: hi", false));
        let long = "é".repeat(200);
        let (t, cut) = render("bob", &long);
        assert!(cut);
        assert!(t.len() <= MAX_CHANNEL_TEXT, "{}", t.len());
        assert!(t.ends_with(CUT_MARK) && t.starts_with("bob: é"));
    }

    #[test]
    fn hop_limit_prefills_the_path() {
        let key = ChannelKey::new(&ChannelKey::PUBLIC).unwrap();
        let r = encode(&key, 1, "a: b", Some(8));
        assert_eq!(r.path.hops(), 56);
        assert!(r.route.is_flood());
        let z = encode(&key, 1, "a: b", Some(0));
        assert_eq!(z.route, RouteType::Direct);
        assert!(z.path.is_empty());
        let plain = encode(&key, 1, "a: b", None);
        assert!(plain.path.is_empty());
        assert_eq!(
            r.packet_hash(),
            plain.packet_hash(),
            "the path is not hashed"
        );
    }
}
