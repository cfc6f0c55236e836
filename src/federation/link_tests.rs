//! Two in-memory links talking to each other: the handshake, room negotiation, sync and
//! failure paths of [`super::link::Link`] without sockets or real time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::frame::{ByeReason, Features};
use super::handshake::{parse_header, HandshakeError, StaticKey};
use super::link::{Action, CloseReason, Link, LinkSettings, PeerUp};
use super::rooms::LocalRoom;
use super::secret::{PeerSecret, RoomKey};
use crate::hub::{Author, AuthorKind, Post, PostId};

fn settings(server: &str) -> Arc<LinkSettings> {
    settings_with(server, Features::ALL)
}

fn settings_with(server: &str, features: Features) -> Arc<LinkSettings> {
    Arc::new(LinkSettings {
        server: server.into(),
        static_key: StaticKey::generate().unwrap(),
        window: 4,
        live_queue: 8,
        hop_limit: 8,
        keepalive: Duration::from_secs(2),
        dead_after: Duration::from_secs(6),
        handshake_timeout: Duration::from_secs(10),
        features,
    })
}

fn rooms(list: &[(&str, Option<&str>)]) -> Vec<LocalRoom> {
    list.iter()
        .map(|(n, p)| LocalRoom {
            name: n.to_string(),
            key: p.map(RoomKey::new),
        })
        .collect()
}

/// Everything one side produced, split by kind.
#[derive(Default)]
struct Out {
    sends: Vec<Vec<u8>>,
    ups: Vec<PeerUp>,
    delivers: Vec<super::link::Incoming>,
    fetches: Vec<(String, u64, usize)>,
    cursors: Vec<(String, u64)>,
    closes: Vec<CloseReason>,
    presences: Vec<super::frame::WirePresence>,
}

fn drain(link: &mut Link) -> Out {
    let mut o = Out::default();
    while let Some(a) = link.poll_action() {
        match a {
            Action::Send(m) => o.sends.push(m),
            Action::Up(u) => o.ups.push(u),
            Action::Deliver(d) => o.delivers.push(d),
            Action::FetchHistory {
                room,
                after_ts,
                limit,
            } => o.fetches.push((room, after_ts, limit)),
            Action::SaveCursor { room, room_ts } => o.cursors.push((room, room_ts)),
            Action::Presence(p) => o.presences.push(p),
            Action::Close(r) => o.closes.push(r),
        }
    }
    o
}

fn post(room: &str, ts: u64, text: &str) -> Post {
    Post {
        id: PostId::fresh(),
        room: room.into(),
        author: Author {
            kind: AuthorKind::Ip,
            id: "10.77.0.1:5000".into(),
            name: None,
        },
        origin: "a".into(),
        author_ts: ts,
        room_ts: ts,
        room_us: ts,
        text: text.into(),
        hops: 0,
    }
}

struct Pair {
    a: Link,
    b: Link,
    a_out: Out,
    b_out: Out,
    now: Instant,
}

impl Pair {
    /// Delivers messages both ways until quiet, collecting non-send actions.
    fn pump(&mut self) {
        for _ in 0..50 {
            let to_b = std::mem::take(&mut self.a_out.sends);
            let to_a = std::mem::take(&mut self.b_out.sends);
            if to_a.is_empty() && to_b.is_empty() {
                return;
            }
            for m in to_b {
                self.b.on_message(&m, self.now);
            }
            for m in to_a {
                self.a.on_message(&m, self.now);
            }
            merge(&mut self.a_out, drain(&mut self.a));
            merge(&mut self.b_out, drain(&mut self.b));
        }
    }
}

fn merge(into: &mut Out, from: Out) {
    into.sends.extend(from.sends);
    into.ups.extend(from.ups);
    into.delivers.extend(from.delivers);
    into.fetches.extend(from.fetches);
    into.cursors.extend(from.cursors);
    into.closes.extend(from.closes);
    into.presences.extend(from.presences);
}

fn connect(
    a_rooms: &[(&str, Option<&str>)],
    b_rooms: &[(&str, Option<&str>)],
    a_secret: &str,
    b_secret: &str,
) -> Result<Pair, HandshakeError> {
    connect_with(
        a_rooms,
        b_rooms,
        a_secret,
        b_secret,
        [Features::ALL, Features::ALL],
    )
}

/// `connect` with the features each side announces (`[dialer a, listener b]`).
fn connect_with(
    a_rooms: &[(&str, Option<&str>)],
    b_rooms: &[(&str, Option<&str>)],
    a_secret: &str,
    b_secret: &str,
    features: [Features; 2],
) -> Result<Pair, HandshakeError> {
    let now = Instant::now();
    let sa = PeerSecret::new(a_secret);
    let sb = PeerSecret::new(b_secret);
    let mut a = Link::dial(
        settings_with("a", features[0]),
        &sa,
        rooms(a_rooms),
        BTreeMap::new(),
        now,
    )?;
    let mut a_out = drain(&mut a);
    let msg1 = a_out.sends.remove(0);
    let (key_id, body) = parse_header(&msg1)?;
    // The listener knows exactly one secret; an unknown key id never reaches Noise.
    if key_id != sb.key_id() {
        return Err(HandshakeError::UnknownKeyId);
    }
    let mut b = Link::accept(
        settings_with("b", features[1]),
        &sb,
        rooms(b_rooms),
        BTreeMap::new(),
        body,
        now,
    )?;
    let b_out = drain(&mut b);
    let mut p = Pair {
        a,
        b,
        a_out,
        b_out,
        now,
    };
    p.pump();
    Ok(p)
}

#[test]
fn matching_secrets_bring_the_link_up_with_the_shared_rooms_only() {
    let p = connect(
        &[("lobby", None), ("ops", Some("x")), ("club", Some("a-psk"))],
        &[("lobby", None), ("ops", Some("x")), ("club", Some("b-psk"))],
        "s3cret",
        "s3cret",
    )
    .unwrap();
    assert!(p.a.is_up() && p.b.is_up());
    assert_eq!(p.a_out.ups.len(), 1);
    assert_eq!(p.a_out.ups[0].server, "b");
    assert_eq!(p.b_out.ups[0].server, "a");
    let shared = vec!["lobby".to_string(), "ops".to_string()];
    assert_eq!(p.a_out.ups[0].rooms.shared, shared);
    assert_eq!(p.b_out.ups[0].rooms.shared, shared);
    assert_eq!(p.a_out.ups[0].rooms.unverified_proofs, 1);
    // Both sides start catching up on every shared room from cursor 0.
    assert_eq!(p.a_out.fetches.len(), 2);
}

#[test]
fn a_wrong_secret_is_an_unknown_key_id_before_any_noise() {
    assert_eq!(
        connect(&[("lobby", None)], &[("lobby", None)], "one", "two").err(),
        Some(HandshakeError::UnknownKeyId)
    );
}

#[test]
fn a_header_whose_key_id_was_swapped_fails_at_the_first_message() {
    // The key id is bound into the prologue: changing it in transit breaks message 1.
    let now = Instant::now();
    let real = PeerSecret::new("real");
    let fake = PeerSecret::new("guess");
    let mut a = Link::dial(settings("mallory"), &fake, vec![], BTreeMap::new(), now).unwrap();
    let mut msg1 = drain(&mut a).sends.remove(0);
    msg1[9..25].copy_from_slice(&real.key_id().0);
    let (_, body) = parse_header(&msg1).unwrap();
    let r = Link::accept(settings("b"), &real, vec![], BTreeMap::new(), body, now);
    assert_eq!(r.err(), Some(HandshakeError::Protocol));
}

#[test]
fn a_replayed_key_id_without_the_secret_is_a_secret_mismatch_before_any_room_data() {
    let now = Instant::now();
    let real = PeerSecret::new("real");
    let forged = PeerSecret::forged(real.key_id(), "guess");
    let mut a = Link::dial(
        settings("mallory"),
        &forged,
        rooms(&[("lobby", None)]),
        BTreeMap::new(),
        now,
    )
    .unwrap();
    let msg1 = drain(&mut a).sends.remove(0);
    let (_, body) = parse_header(&msg1).unwrap();
    let mut b = Link::accept(
        settings("b"),
        &real,
        rooms(&[("lobby", None)]),
        BTreeMap::new(),
        body,
        now,
    )
    .unwrap();
    let msg2 = drain(&mut b).sends.remove(0);
    a.on_message(&msg2, now);
    let a_out = drain(&mut a);
    assert_eq!(a_out.sends.len(), 2, "message 3 and the dialer's hello");
    for m in a_out.sends {
        b.on_message(&m, now);
    }
    let b_out = drain(&mut b);
    assert!(
        matches!(
            b_out.closes.as_slice(),
            [CloseReason::Handshake(HandshakeError::SecretMismatch)]
        ),
        "{:?}",
        b_out.closes
    );
    assert!(
        b_out.sends.is_empty(),
        "the listener sends nothing after the failure"
    );
    assert!(b_out.ups.is_empty() && b_out.delivers.is_empty());
}

#[test]
fn posts_flow_are_acked_after_commit_and_cursors_advance() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    // Both sides answer their initial fetch with an empty history: live.
    p.a.history("lobby", vec![], 4);
    p.b.history("lobby", vec![], 4);
    merge(&mut p.a_out, drain(&mut p.a));
    let hello = post("lobby", 100, "hello B, this is A");
    p.a.offer(Arc::new(hello.clone()), false);
    merge(&mut p.a_out, drain(&mut p.a));
    p.pump();
    assert_eq!(p.b_out.delivers.len(), 1);
    let d = p.b_out.delivers.remove(0);
    assert_eq!(d.post.id, hello.id);
    assert_eq!(d.post.text, hello.text);
    assert_eq!(d.post.hops, 1);
    assert!(p.a_out.cursors.is_empty(), "no cursor before the commit");
    p.b.committed(d.seq);
    merge(&mut p.b_out, drain(&mut p.b));
    p.pump();
    assert_eq!(p.a_out.cursors, vec![("lobby".to_string(), 100)]);
    assert_eq!(p.a.stats().posts_out, 1);
    assert_eq!(p.b.stats().posts_in, 1);
}

#[test]
fn no_plaintext_of_a_post_crosses_the_wire() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    p.a.history("lobby", vec![], 4);
    drain(&mut p.a);
    p.a.offer(Arc::new(post("lobby", 1, "the eagle lands at noon")), false);
    let out = drain(&mut p.a);
    assert!(!out.sends.is_empty());
    for m in &out.sends {
        assert!(!m.windows(5).any(|w| w == b"eagle"));
        assert!(!m.windows(5).any(|w| w == b"lobby"));
    }
}

#[test]
fn a_corrupted_message_ends_the_link_as_malformed() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    p.a.history("lobby", vec![], 4);
    drain(&mut p.a);
    p.a.offer(Arc::new(post("lobby", 1, "x")), false);
    let mut m = drain(&mut p.a).sends.remove(0);
    m[3] ^= 0x40;
    p.b.on_message(&m, p.now);
    let out = drain(&mut p.b);
    assert_eq!(out.closes.len(), 1);
    assert!(out.closes[0].is_malformed());
    assert!(p.b.is_closed());
}

#[test]
fn a_silent_peer_is_declared_dead_within_the_deadline() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    let t0 = p.now;
    p.a.tick(t0 + Duration::from_secs(2));
    let out = drain(&mut p.a);
    assert_eq!(out.sends.len(), 1, "a ping after the keepalive interval");
    p.a.tick(t0 + Duration::from_secs(6));
    let out = drain(&mut p.a);
    assert!(matches!(out.closes.as_slice(), [CloseReason::Dead]));
    assert!(p.a.next_deadline() <= t0 + Duration::from_secs(6));
}

#[test]
fn ping_pong_measures_round_trip_time() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    let t = p.now + Duration::from_secs(2);
    p.a.tick(t);
    let ping = drain(&mut p.a).sends;
    for m in ping {
        p.b.on_message(&m, t);
    }
    let pong = drain(&mut p.b).sends;
    for m in pong {
        p.a.on_message(&m, t + Duration::from_millis(30));
    }
    assert_eq!(p.a.stats().rtt, Some(Duration::from_millis(30)));
}

#[test]
fn the_sender_keeps_to_the_window_the_receiver_gave() {
    // B gave a window of 4 in its Hello.
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    p.a.history("lobby", vec![], 4);
    drain(&mut p.a);
    for ts in 1..=4 {
        p.a.offer(Arc::new(post("lobby", ts, "x")), false);
    }
    let first = drain(&mut p.a).sends;
    // A respects the window: more offers produce nothing until acks come.
    p.a.offer(Arc::new(post("lobby", 5, "x")), false);
    assert!(drain(&mut p.a).sends.is_empty());
    assert_eq!(p.a.unacked(), 4);
    for m in first {
        p.b.on_message(&m, p.now);
    }
    assert_eq!(drain(&mut p.b).delivers.len(), 4);
}

#[test]
fn shutdown_tells_the_peer_why() {
    let mut p = connect(&[("lobby", None)], &[("lobby", None)], "s", "s").unwrap();
    p.a.shutdown(ByeReason::DuplicateLink);
    let out = drain(&mut p.a);
    assert!(matches!(
        out.closes.as_slice(),
        [CloseReason::Local(ByeReason::DuplicateLink)]
    ));
    for m in out.sends {
        p.b.on_message(&m, p.now);
    }
    assert!(matches!(
        drain(&mut p.b).closes.as_slice(),
        [CloseReason::PeerBye(ByeReason::DuplicateLink)]
    ));
}

#[test]
fn a_post_for_an_unshared_room_ends_the_link() {
    // A offers "secret" privately with a different PSK, so it is not shared; a forged post
    // for it must not be accepted by B.
    let mut p = connect(
        &[("lobby", None)],
        &[("lobby", None), ("secret", Some("pw"))],
        "s",
        "s",
    )
    .unwrap();
    p.a.history("lobby", vec![], 4);
    drain(&mut p.a);
    // Not shared on A either, so A never sends it.
    p.a.offer(Arc::new(post("secret", 1, "x")), false);
    assert!(drain(&mut p.a).sends.is_empty());
}

#[test]
fn presence_goes_only_for_shared_rooms() {
    use super::frame::WirePresence;
    let mut p = connect(
        &[("lobby", None), ("club", Some("a-psk"))],
        &[("lobby", None), ("club", Some("b-psk"))],
        "s3cret",
        "s3cret",
    )
    .unwrap();
    let report = |room: &str| WirePresence {
        room: room.into(),
        radio: 1,
        ip: 0,
        local: 0,
        names: vec![(AuthorKind::Radio, "Ana".into())],
    };
    // `club` differs in PSK, so it is not shared: the link refuses to send it.
    p.a.presence(report("club"));
    p.a.presence(report("lobby"));
    merge(&mut p.a_out, drain(&mut p.a));
    p.pump();
    assert_eq!(p.b_out.presences, vec![report("lobby")]);
    assert!(p.b_out.closes.is_empty());
}

#[test]
fn a_first_release_peer_gets_neither_presence_nor_channel_posts_and_the_link_stays_up() {
    use super::frame::WirePresence;
    // Either side may be the older build: it announces nothing (empty handshake payloads,
    // exactly what a first-release build sends) and ignores what the newer side announces.
    for old_is_dialer in [true, false] {
        let features = if old_is_dialer {
            [Features::NONE, Features::ALL]
        } else {
            [Features::ALL, Features::NONE]
        };
        let mut p =
            connect_with(&[("lobby", None)], &[("lobby", None)], "s", "s", features).unwrap();
        assert!(p.a.is_up() && p.b.is_up());
        let (new, new_out, old_out) = if old_is_dialer {
            (&mut p.b, &mut p.b_out, &mut p.a_out)
        } else {
            (&mut p.a, &mut p.a_out, &mut p.b_out)
        };
        // Each side learnt what the other speaks.
        assert_eq!(new_out.ups[0].features, Features::NONE);
        assert_eq!(old_out.ups[0].features, Features::ALL);
        assert_eq!(new.peer_features(), Features::NONE);
        new.history("lobby", vec![], 4);
        merge(new_out, drain(new));
        new.presence(WirePresence {
            room: "lobby".into(),
            radio: 1,
            ip: 0,
            local: 0,
            names: vec![],
        });
        let mut heard = post("lobby", 100, "alice: heard on Public");
        heard.author = Author {
            kind: AuthorKind::Channel,
            id: "channel:alice".into(),
            name: Some("alice".into()),
        };
        let mut plain = post("lobby", 101, "from the host");
        // Posts that started at the newer side (never skipped as coming from the peer).
        let here = if old_is_dialer { "b" } else { "a" };
        heard.origin = here.into();
        plain.origin = here.into();
        new.offer(Arc::new(heard), false);
        new.offer(Arc::new(plain.clone()), false);
        merge(new_out, drain(new));
        assert_eq!(new.stats().withheld_presence, 1);
        assert_eq!(new.stats().withheld_channel_posts, 1);
        p.pump();
        let old_out = if old_is_dialer {
            &mut p.a_out
        } else {
            &mut p.b_out
        };
        // Only the plain post arrives; nothing the older build would call malformed.
        assert!(old_out.presences.is_empty());
        assert_eq!(old_out.delivers.len(), 1, "old is dialer: {old_is_dialer}");
        assert_eq!(old_out.delivers[0].post.id, plain.id);
        let seq = old_out.delivers[0].seq;
        let old = if old_is_dialer { &mut p.a } else { &mut p.b };
        old.committed(seq);
        let o = drain(old);
        if old_is_dialer {
            merge(&mut p.a_out, o);
        } else {
            merge(&mut p.b_out, o);
        }
        p.pump();
        // The cursor moved past the withheld post too.
        let new_out = if old_is_dialer { &p.b_out } else { &p.a_out };
        assert_eq!(new_out.cursors.last(), Some(&("lobby".to_string(), 101)));
        assert!(p.a_out.closes.is_empty() && p.b_out.closes.is_empty());
    }
}
