//! Sending side of the sync protocol: which posts go to the peer, when, and what it has acked.
//!
//! Per shared room we keep `sent_ts` (highest local room timestamp, in microseconds
//! (`Post::room_us`, strictly increasing per room; so are the persisted cursors), handed to the wire or
//! skipped) and a `cursor` (everything up to it is acknowledged — this is what gets
//! persisted). Posts are numbered per link (`seq`, implicit on the wire); the peer acks
//! cumulatively, and at most `window` posts are unacknowledged.
//!
//! A room is either catching up — reading the hub's history after `sent_ts` in pages no larger
//! than the free window — or live, sending hub deliveries directly. Live deliveries that do not
//! fit the window wait in a small queue; if that queue overflows, the queue is dropped and the
//! room falls back to catching up from history. So a slow or stuck peer costs at most
//! `window + live_cap` posts of memory per room; the rest stays in the store.
//!
//! A delivery seen while catching up may have been committed after the history page was read,
//! so it forces one more page before the room goes live: nothing falls between the two.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::frame::{Features, WirePost};
use crate::hub::{AuthorKind, Post};

/// Most posts asked of the history in one page.
pub const MAX_PAGE: usize = 256;

/// Something the link must do on behalf of the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutEvent {
    /// Read up to `limit` posts of `room` with room timestamp greater than `after_ts`.
    FetchHistory {
        room: String,
        after_ts: u64,
        limit: usize,
    },
    /// The peer has everything of `room` up to `room_ts`: persist it.
    SaveCursor { room: String, room_ts: u64 },
}

#[derive(Debug)]
enum Mode {
    CatchUp { fetching: bool, newer_seen: bool },
    Live,
}

#[derive(Debug)]
struct RoomOut {
    sent_ts: u64,
    cursor: u64,
    mode: Mode,
    /// Deliveries waiting for window space, with whether each is only to be skipped over.
    live: VecDeque<(Arc<Post>, bool)>,
}

#[derive(Debug)]
struct InFlight {
    /// Done once the peer acks this seq (a skipped post carries the seq sent before it).
    seq: u64,
    room: String,
    room_ts: u64,
}

/// Protocol breach by the peer on the ack path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAck;

#[derive(Debug)]
pub struct Outbound {
    window: u64,
    live_cap: usize,
    hop_limit: u8,
    peer_server: String,
    identity: Option<Identity>,
    rooms: BTreeMap<String, RoomOut>,
    last_seq: u64,
    acked_seq: u64,
    inflight: VecDeque<InFlight>,
    ready: VecDeque<WirePost>,
    events: VecDeque<OutEvent>,
    /// Posts not sent because they would exceed the hop limit.
    pub skipped_hop_limit: u64,
    /// What the peer's build understands: posts it would refuse are not sent (see
    /// [`Outbound::with_peer_features`]).
    peer_features: Features,
    /// Channel posts not sent because the peer's build does not know them.
    pub withheld_channel_posts: u64,
    /// Times a room fell back from live to history because the peer was slow.
    pub fallbacks: u64,
}

/// Who is who on a link, by static key: servers are identified by their Noise static key, a
/// name is only for people (every Raspberry Pi is called `raspberrypi`).
#[derive(Debug, Clone)]
pub struct Identity {
    /// This server's name: the origin the hub gives posts that started here.
    pub local_name: String,
    /// This server's origin on the wire: `name@hex(static key)`.
    pub local_origin: String,
    /// The peer's static key, hex.
    pub peer_key: String,
}

/// The static key (hex) an origin names, when it carries one (`name@hex`).
pub fn origin_key(origin: &str) -> Option<&str> {
    let (_, key) = origin.rsplit_once('@')?;
    (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())).then_some(key)
}

/// `name@hex(key)`: a post origin that names a server by its key.
pub fn origin_of(name: &str, key: &[u8; 32]) -> String {
    format!("{name}@{}", hex::encode(key))
}

impl Outbound {
    /// Compares origins by static key from now on (see [`Identity`]).
    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The peer's build understands only `features`: a channel post is skipped over (the cursor
    /// moves past it, counted) for a peer that does not know channel posts — it would end the
    /// link at the first one as malformed.
    pub fn with_peer_features(mut self, features: Features) -> Self {
        self.peer_features = features;
        self
    }

    /// Did `origin` start at the peer (so the post need not go back)?
    fn started_at_peer(&self, origin: &str) -> bool {
        match (&self.identity, origin_key(origin)) {
            (Some(id), Some(key)) => key.eq_ignore_ascii_case(&id.peer_key),
            // A bare name: this server's own posts carry its name; other bare names are
            // from servers of an older build, compared by name as they always were.
            (Some(id), None) => origin != id.local_name && origin == self.peer_server,
            (None, _) => origin == self.peer_server,
        }
    }

    /// The origin a post carries on the wire: this server's own posts get its key.
    fn wire_origin(&self, origin: &str) -> String {
        match &self.identity {
            Some(id) if origin == id.local_name => id.local_origin.clone(),
            _ => origin.to_string(),
        }
    }

    pub fn new(
        window: u16,
        live_cap: usize,
        hop_limit: u8,
        peer_server: String,
        shared: &[String],
        cursors: &BTreeMap<String, u64>,
    ) -> Self {
        let mut rooms = BTreeMap::new();
        for name in shared {
            let cursor = cursors.get(name).copied().unwrap_or(0);
            rooms.insert(
                name.clone(),
                RoomOut {
                    sent_ts: cursor,
                    cursor,
                    mode: Mode::CatchUp {
                        fetching: false,
                        newer_seen: false,
                    },
                    live: VecDeque::new(),
                },
            );
        }
        let mut out = Outbound {
            window: u64::from(window.max(1)),
            live_cap,
            hop_limit,
            peer_server,
            identity: None,
            rooms,
            last_seq: 0,
            acked_seq: 0,
            inflight: VecDeque::new(),
            ready: VecDeque::new(),
            events: VecDeque::new(),
            skipped_hop_limit: 0,
            peer_features: Features::ALL,
            withheld_channel_posts: 0,
            fallbacks: 0,
        };
        out.pump();
        out
    }

    fn space(&self) -> u64 {
        self.window
            .saturating_sub(self.last_seq.saturating_sub(self.acked_seq))
    }

    pub fn unacked(&self) -> u64 {
        self.last_seq - self.acked_seq
    }

    /// Posts handed to the wire on this link so far.
    pub fn sent(&self) -> u64 {
        self.last_seq
    }

    pub fn next_event(&mut self) -> Option<OutEvent> {
        self.events.pop_front()
    }

    pub fn next_post(&mut self) -> Option<WirePost> {
        self.ready.pop_front()
    }

    /// A post committed on this server. `via_this_link`: it arrived over this very link, so
    /// the peer has it already and it is only skipped over.
    pub fn offer(&mut self, post: Arc<Post>, via_this_link: bool) {
        let space = self.space();
        let from_peer = self.started_at_peer(&post.origin);
        let Some(room) = self.rooms.get_mut(&post.room) else {
            return;
        };
        if post.room_us <= room.sent_ts {
            return;
        }
        match &mut room.mode {
            Mode::CatchUp { newer_seen, .. } => *newer_seen = true,
            Mode::Live => {
                let skip = via_this_link || from_peer;
                if skip && room.live.is_empty() {
                    // Nothing queued before it, so it can be skipped right now.
                    self.hand_over(post, true);
                } else if room.live.is_empty() && space > 0 {
                    self.hand_over(post, false);
                } else if room.live.len() >= self.live_cap {
                    room.live.clear();
                    room.mode = Mode::CatchUp {
                        fetching: false,
                        newer_seen: true,
                    };
                    self.fallbacks += 1;
                } else {
                    room.live.push_back((post, skip));
                }
            }
        }
        self.pump();
    }

    /// The hub's broadcast skipped deliveries: every live room re-reads history.
    pub fn lagged(&mut self) {
        for room in self.rooms.values_mut() {
            if matches!(room.mode, Mode::Live) {
                room.live.clear();
                room.mode = Mode::CatchUp {
                    fetching: false,
                    newer_seen: true,
                };
            }
        }
        self.pump();
    }

    /// A history page arrived (the answer to `FetchHistory` with that `limit`).
    pub fn history(&mut self, room_name: &str, posts: Vec<Post>, limit: usize) {
        let exhausted = posts.len() < limit;
        let mut overflowed = false;
        for post in posts {
            let sent_ts = match self.rooms.get(room_name) {
                Some(r) => r.sent_ts,
                None => return,
            };
            if post.room != room_name || post.room_us <= sent_ts {
                continue;
            }
            // Posts that started at the peer need not go back to it.
            let skip = self.started_at_peer(&post.origin);
            if !skip && self.space() == 0 {
                overflowed = true;
                break;
            }
            self.hand_over(Arc::new(post), skip);
        }
        if let Some(room) = self.rooms.get_mut(room_name) {
            if let Mode::CatchUp {
                fetching,
                newer_seen,
            } = &mut room.mode
            {
                *fetching = false;
                if exhausted && !overflowed && !*newer_seen {
                    room.mode = Mode::Live;
                } else if exhausted {
                    *newer_seen = false;
                }
            }
        }
        self.pump();
    }

    /// The peer acknowledged every post up to `upto`.
    pub fn acked(&mut self, upto: u64) -> Result<(), BadAck> {
        if upto > self.last_seq || upto < self.acked_seq {
            return Err(BadAck);
        }
        self.acked_seq = upto;
        self.settle();
        self.pump();
        Ok(())
    }

    /// Hands a post to the wire (or skips it), recording it in flight.
    fn hand_over(&mut self, post: Arc<Post>, skip: bool) {
        let Some(room) = self.rooms.get_mut(&post.room) else {
            return;
        };
        room.sent_ts = post.room_us;
        let too_far = post.hops >= self.hop_limit;
        if too_far && !skip {
            self.skipped_hop_limit += 1;
        }
        let unknown_to_peer = post.author.kind == AuthorKind::Channel
            && !self.peer_features.has(Features::CHANNEL_POSTS);
        if unknown_to_peer && !skip && !too_far {
            self.withheld_channel_posts += 1;
        }
        if !skip && !too_far && !unknown_to_peer {
            self.last_seq += 1;
            self.ready.push_back(WirePost {
                room: post.room.clone(),
                id: post.id,
                origin: self.wire_origin(&post.origin),
                author: post.author.clone(),
                author_ts: post.author_ts,
                hops: post.hops.saturating_add(1),
                text: post.text.clone(),
            });
        }
        self.inflight.push_back(InFlight {
            seq: self.last_seq,
            room: post.room.clone(),
            room_ts: post.room_us,
        });
        self.settle();
    }

    /// Retires in-flight entries the peer has covered and reports advanced cursors.
    fn settle(&mut self) {
        let mut advanced: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(front) = self.inflight.front() {
            if front.seq > self.acked_seq {
                break;
            }
            if let Some(e) = self.inflight.pop_front() {
                advanced.insert(e.room, e.room_ts);
            }
        }
        for (name, ts) in advanced {
            if let Some(room) = self.rooms.get_mut(&name) {
                if ts > room.cursor {
                    room.cursor = ts;
                    self.events.push_back(OutEvent::SaveCursor {
                        room: name,
                        room_ts: ts,
                    });
                }
            }
        }
    }

    /// Moves queued live posts into free window space and starts history reads.
    fn pump(&mut self) {
        let names: Vec<String> = self.rooms.keys().cloned().collect();
        for name in names {
            loop {
                let space = self.space();
                let Some(room) = self.rooms.get_mut(&name) else {
                    break;
                };
                match &mut room.mode {
                    Mode::Live => {
                        let next_skips = matches!(room.live.front(), Some((_, true)));
                        if space == 0 && !next_skips {
                            break;
                        }
                        match room.live.pop_front() {
                            Some((p, skip)) => self.hand_over(p, skip),
                            None => break,
                        }
                    }
                    Mode::CatchUp {
                        fetching,
                        newer_seen,
                    } => {
                        if !*fetching && space > 0 {
                            *fetching = true;
                            *newer_seen = false;
                            let limit = (space as usize).min(MAX_PAGE);
                            self.events.push_back(OutEvent::FetchHistory {
                                room: name.clone(),
                                after_ts: room.sent_ts,
                                limit,
                            });
                        }
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Author, AuthorKind, PostId};

    fn post(room: &str, ts: u64, origin: &str, hops: u8) -> Post {
        Post {
            id: PostId::fresh(),
            room: room.into(),
            author: Author {
                kind: AuthorKind::Local,
                id: "cli".into(),
                name: None,
            },
            origin: origin.into(),
            author_ts: ts,
            room_ts: ts,
            room_us: ts,
            text: format!("post {ts}"),
            hops,
        }
    }

    fn drain_posts(o: &mut Outbound) -> Vec<u64> {
        let mut v = Vec::new();
        while let Some(p) = o.next_post() {
            v.push(p.author_ts);
        }
        v
    }

    fn drain_events(o: &mut Outbound) -> Vec<OutEvent> {
        let mut v = Vec::new();
        while let Some(e) = o.next_event() {
            v.push(e);
        }
        v
    }

    fn outbound(window: u16, cursor: u64) -> Outbound {
        let mut cursors = BTreeMap::new();
        cursors.insert("lobby".to_string(), cursor);
        Outbound::new(window, 4, 8, "peer".into(), &["lobby".into()], &cursors)
    }

    #[test]
    fn catch_up_starts_at_the_persisted_cursor_and_goes_live() {
        let mut o = outbound(16, 10);
        assert_eq!(
            drain_events(&mut o),
            vec![OutEvent::FetchHistory {
                room: "lobby".into(),
                after_ts: 10,
                limit: 16
            }]
        );
        o.history("lobby", vec![post("lobby", 11, "me", 0)], 16);
        assert_eq!(drain_posts(&mut o), vec![11]);
        // Exhausted page: now live.
        o.offer(Arc::new(post("lobby", 12, "me", 0)), false);
        assert_eq!(drain_posts(&mut o), vec![12]);
        o.acked(2).unwrap();
        assert_eq!(
            drain_events(&mut o),
            vec![OutEvent::SaveCursor {
                room: "lobby".into(),
                room_ts: 12
            }]
        );
    }

    #[test]
    fn a_delivery_during_catch_up_forces_another_page() {
        let mut o = outbound(16, 0);
        drain_events(&mut o);
        o.offer(Arc::new(post("lobby", 5, "me", 0)), false);
        o.history("lobby", vec![], 16);
        assert!(matches!(
            drain_events(&mut o).as_slice(),
            [OutEvent::FetchHistory { after_ts: 0, .. }]
        ));
    }

    #[test]
    fn the_window_bounds_unacked_posts_and_a_stuck_peer_falls_back_to_history() {
        let mut o = outbound(2, 0);
        drain_events(&mut o);
        o.history("lobby", vec![], 2);
        for ts in 1..=20 {
            o.offer(Arc::new(post("lobby", ts, "me", 0)), false);
        }
        assert_eq!(drain_posts(&mut o), vec![1, 2]);
        assert_eq!(o.unacked(), 2);
        assert!(o.fallbacks >= 1);
        // After the ack the room reads history from what was sent, not from memory.
        o.acked(2).unwrap();
        let ev = drain_events(&mut o);
        assert!(ev.contains(&OutEvent::FetchHistory {
            room: "lobby".into(),
            after_ts: 2,
            limit: 2
        }));
    }

    #[test]
    fn posts_from_this_link_or_the_peer_are_skipped_but_cursor_moves() {
        let mut o = outbound(8, 0);
        drain_events(&mut o);
        o.history(
            "lobby",
            vec![post("lobby", 1, "peer", 1), post("lobby", 2, "me", 0)],
            8,
        );
        assert_eq!(drain_posts(&mut o), vec![2]);
        o.offer(Arc::new(post("lobby", 3, "third", 1)), true);
        assert!(drain_posts(&mut o).is_empty());
        o.acked(1).unwrap();
        let ev = drain_events(&mut o);
        assert!(ev.contains(&OutEvent::SaveCursor {
            room: "lobby".into(),
            room_ts: 3
        }));
    }

    #[test]
    fn hop_limit_stops_forwarding_and_bad_acks_are_refused() {
        let mut o = outbound(8, 0);
        drain_events(&mut o);
        o.history("lobby", vec![post("lobby", 1, "far", 8)], 8);
        assert!(drain_posts(&mut o).is_empty());
        assert_eq!(o.skipped_hop_limit, 1);
        assert_eq!(o.acked(5), Err(BadAck));
    }

    #[test]
    fn forwarded_posts_count_one_more_hop() {
        let mut o = outbound(8, 0);
        drain_events(&mut o);
        o.history("lobby", vec![post("lobby", 1, "far", 2)], 8);
        assert_eq!(o.next_post().map(|p| p.hops), Some(3));
    }
}
