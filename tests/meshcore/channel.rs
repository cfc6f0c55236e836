//! Issue 13 at the engine level (sans-IO): a room bound to a MeshCore group channel decodes the
//! shared GRP_TXT vectors, sends byte-identical frames, makes the same post id on every gateway,
//! never echoes, respects its rate limit below ACKs, and counts bad input without panicking.

use meshroom_gw::meshcore::server::channel::{
    decode, derive_post_id, encode, ChannelMode, ChannelSetup, OutgoingPost, MAX_CHANNEL_TEXT,
};
use meshroom_gw::meshcore::server::engine::{
    Action, Engine, EngineConfig, Now, Priority, RoomSetup,
};
use meshroom_gw::meshcore::wire::crypto::ChannelKey;
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::meshcore::wire::packet::{PacketRepr, Path, PathLen, PayloadType, RouteType};
use meshroom_gw::meshcore::wire::payload::{GroupMessage, Payload};
use meshroom_gw::post::AuthorKind;
use serde_json::Value;

const TS: u32 = 1_735_689_600;

fn vector(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn raw(v: &Value) -> Vec<u8> {
    hex::decode(v["raw_hex"].as_str().unwrap()).unwrap()
}

fn public() -> ChannelKey {
    ChannelKey::new(&ChannelKey::PUBLIC).unwrap()
}

fn setup(name: &str, key: ChannelKey, mode: ChannelMode, per_min: u32) -> ChannelSetup {
    ChannelSetup {
        room: "Chan".into(),
        name: name.into(),
        key,
        mode,
        max_per_minute: per_min,
        hop_limit: None,
    }
}

fn engine_with(channel: ChannelSetup, seed: u8) -> Engine {
    let config = EngineConfig {
        first_advert_delay_ms: 0,
        advert_interval_ms: 0,
        flood_advert_interval_ms: 0,
        channels: vec![channel],
        ..EngineConfig::default()
    };
    let room = RoomSetup {
        name: "Chan".into(),
        identity: LocalIdentity::from_seed(&[seed; 32]),
        password: None,
        max_history: 100,
        access: Default::default(),
        clock: 0,
        clients: vec![],
        history: vec![],
    };
    Engine::new(config, vec![room], seed as u64, now(0))
}

fn now(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix: TS + (ms / 1000) as u32,
    }
}

fn channel_posts(actions: &[Action]) -> Vec<meshroom_gw::meshcore::server::channel::ChannelPost> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ChannelPost(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn channel_frames(actions: &[Action]) -> Vec<Vec<u8>> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Transmit {
                frame,
                priority: Priority::Channel,
                ..
            } => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

fn local_post(id: u8, name: &str, text: &str, origin: Option<&str>) -> OutgoingPost {
    OutgoingPost {
        id: [id; 16],
        kind: AuthorKind::Local,
        author_name: Some(name.into()),
        remote_origin: origin.map(str::to_string),
        origin: origin.unwrap_or("g1").to_string(),
        author_ts: TS,
        text: text.into(),
    }
}

/// Ticks the engine from `from` to `to` ms in 50 ms steps, collecting channel frames.
fn run(engine: &mut Engine, from: u64, to: u64) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut t = from;
    while t <= to {
        frames.extend(channel_frames(&engine.tick(now(t))));
        t += 50;
    }
    frames
}

#[test]
fn shared_vectors_decrypt_through_a_binding_and_the_bridge_sends_them_byte_identical() {
    for (file, key, name) in [
        ("grp_txt_public.json", public(), "Public"),
        (
            "grp_txt_hashtag_test.json",
            ChannelKey::hashtag("#test"),
            "#test",
        ),
    ] {
        let v = vector(file);
        let mut e = engine_with(setup(name, key.clone(), ChannelMode::Bridge, 60), 1);
        let posts = channel_posts(&e.handle_frame(now(0), &raw(&v), -80, 5.0));
        assert_eq!(posts.len(), 1, "{file}");
        let p = &posts[0];
        assert_eq!(p.sender.as_deref(), Some("alice"));
        assert_eq!(p.text, "hello mesh");
        assert_eq!(p.timestamp, TS);
        assert_eq!(p.id, derive_post_id(&key, TS, "alice: hello mesh"));

        // The room sends the same message as a firmware node would: same bytes.
        let mut e = engine_with(setup(name, key.clone(), ChannelMode::Bridge, 60), 2);
        e.channel_offer(0, &local_post(9, "alice", "hello mesh", None));
        let frames = run(&mut e, 0, 100);
        assert_eq!(frames, vec![raw(&v)], "{file}");
        assert_eq!(
            encode(&key, TS, "alice: hello mesh", None)
                .to_bytes()
                .unwrap(),
            raw(&v)
        );
        let st = e.channel_status(0).unwrap();
        assert_eq!(st.counters.transmitted, 1);
        assert_eq!(st.name, name);
    }
}

#[test]
fn flood_repeats_are_one_post_and_two_gateways_make_the_same_id() {
    let v = vector("grp_txt_public.json");
    let frame = raw(&v);
    let mut g1 = engine_with(setup("Public", public(), ChannelMode::Listen, 4), 1);
    let mut g2 = engine_with(setup("Public", public(), ChannelMode::Listen, 4), 2);
    let p1 = channel_posts(&g1.handle_frame(now(0), &frame, -80, 5.0));
    let p2 = channel_posts(&g2.handle_frame(now(0), &frame, -80, 5.0));
    assert_eq!(p1.len(), 1);
    assert_eq!(p1[0].id, p2[0].id, "same message, same id on both gateways");
    // A repeater's copy: one more hop in the path, same packet hash.
    let mut repeated = PacketRepr::from_bytes(&frame).unwrap();
    repeated.path = Path::new(PathLen::new(1, 1).unwrap(), &[0x42]).unwrap();
    let again = g1.handle_frame(now(10), &repeated.to_bytes().unwrap(), -90, 1.0);
    assert!(channel_posts(&again).is_empty());
    assert_eq!(g1.counters().dropped.get("duplicate"), Some(&1));
    g1.channel_committed(0, p1[0].id, true);
    let st = g1.channel_status(0).unwrap();
    assert_eq!((st.counters.heard, st.counters.stored), (1, 1));
    // Listen mode never transmits, whatever the room receives.
    g1.channel_offer(0, &local_post(1, "bob", "hi", None));
    g1.channel_offer(0, &local_post(2, "carol", "hi", Some("far")));
    assert!(run(&mut g1, 0, 120_000).is_empty());
    assert_eq!(g1.channel_status(0).unwrap().counters.transmitted, 0);
}

#[test]
fn bridging_gateways_that_hear_each_other_do_not_echo() {
    // G1 and G2 share the room (federation) and the air. A room client posts at G1.
    let mut g1 = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 1);
    let mut g2 = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 2);
    let post = local_post(7, "bob", "over the hill", None);
    g1.channel_offer(0, &post);
    // G2 got it by federation: a remote author, rendered bob@g1.
    g2.channel_offer(
        0,
        &OutgoingPost {
            remote_origin: Some("g1".into()),
            ..post.clone()
        },
    );
    let f1 = run(&mut g1, 0, 100);
    assert_eq!(f1.len(), 1);
    // G2 hears G1's message before its own turn: it withdraws its copy and stores nothing.
    let heard = g2.handle_frame(now(60), &f1[0], -70, 6.0);
    assert!(channel_posts(&heard).is_empty(), "the room has it already");
    assert!(run(&mut g2, 100, 120_000).is_empty(), "G2 never sends it");
    let st2 = g2.channel_status(0).unwrap();
    assert_eq!(
        (st2.counters.duplicates, st2.counters.echo_suppressed),
        (1, 1)
    );
    // G1 hears its own message repeated: nothing new.
    let mut rep = PacketRepr::from_bytes(&f1[0]).unwrap();
    rep.path = Path::new(PathLen::new(1, 1).unwrap(), &[0x11]).unwrap();
    assert!(
        channel_posts(&g1.handle_frame(now(200), &rep.to_bytes().unwrap(), -70, 6.0)).is_empty()
    );

    // The other way round: G2 sends bob@g1 first; G1 knows that rendering of its post too.
    let mut g1 = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 3);
    g1.channel_offer(0, &local_post(8, "bob", "again", None));
    let mut g2 = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 4);
    g2.channel_offer(0, &local_post(8, "bob", "again", Some("g1")));
    // A remote post waits its hold (1–3 s) before it goes.
    let f2 = run(&mut g2, 0, 5_000);
    let s = decode(&public(), &group(&f2[0])).unwrap();
    assert_eq!(s.full_text, "bob@g1: again");
    assert!(channel_posts(&g1.handle_frame(now(60), &f2[0], -70, 6.0)).is_empty());
    assert!(
        run(&mut g1, 100, 120_000).is_empty(),
        "G1 withdrew its copy"
    );
}

#[test]
fn channel_posts_are_never_sent_back_and_relays_of_the_same_channel_are_exact() {
    let v = vector("grp_txt_public.json");
    let key = public();
    let id = derive_post_id(&key, TS, "alice: hello mesh");
    let channel_post = |origin: Option<&str>| OutgoingPost {
        id,
        kind: AuthorKind::Channel,
        author_name: Some("alice".into()),
        remote_origin: origin.map(str::to_string),
        origin: origin.unwrap_or("here").to_string(),
        author_ts: TS,
        text: "hello mesh".into(),
    };
    // Heard here: never back onto the channel.
    let mut g = engine_with(setup("Public", key.clone(), ChannelMode::Bridge, 60), 1);
    g.channel_offer(0, &channel_post(None));
    assert!(run(&mut g, 0, 120_000).is_empty());
    // Heard by another city's gateway on the same channel: sent as the original packet.
    let mut g2 = engine_with(setup("Public", key.clone(), ChannelMode::Bridge, 60), 2);
    g2.channel_offer(0, &channel_post(Some("city-a")));
    assert_eq!(run(&mut g2, 0, 5_000), vec![raw(&v)]);
    // A gateway that heard it on the air already does not send it again.
    let mut g3 = engine_with(setup("Public", key.clone(), ChannelMode::Bridge, 60), 3);
    assert_eq!(
        channel_posts(&g3.handle_frame(now(0), &raw(&v), -80, 5.0)).len(),
        1
    );
    g3.channel_offer(0, &channel_post(Some("city-a")));
    assert!(run(&mut g3, 0, 120_000).is_empty());
}

#[test]
fn a_burst_of_100_posts_respects_the_rate_limit_and_leaves_acks_first() {
    let mut g = engine_with(setup("Public", public(), ChannelMode::Bridge, 4), 1);
    for i in 0..100u8 {
        g.channel_offer(0, &local_post(i, "host", &format!("post {i}"), None));
    }
    let st = g.channel_status(0).unwrap();
    assert_eq!(st.queued, 32, "bounded queue");
    assert_eq!(st.counters.rate_limited, 68, "the rest dropped and counted");
    // Every sliding minute holds at most 4 channel frames.
    let mut sent_at = Vec::new();
    let mut t = 0;
    while t <= 600_000 {
        let acts = g.tick(now(t));
        for a in &acts {
            if let Action::Transmit { priority, .. } = a {
                // Nothing the engine sends for the channel outranks an ACK.
                assert!(*priority > Priority::Reply && *priority > Priority::Push);
                if *priority == Priority::Channel {
                    sent_at.push(t);
                }
            }
        }
        t += 50;
    }
    assert_eq!(sent_at.len(), 32, "the whole queue, at 4 a minute");
    assert!(sent_at[31] >= 7 * 60_000);
    for w in sent_at.windows(5) {
        assert!(w[4] - w[0] >= 60_000, "5 frames within a minute: {w:?}");
    }
    assert!(Priority::Channel > Priority::Advert);
}

fn group(frame: &[u8]) -> GroupMessage {
    let r = PacketRepr::from_bytes(frame).unwrap();
    match Payload::parse(r.payload_type, &r.payload).unwrap() {
        Payload::GrpTxt(g) => g,
        _ => panic!("not GRP_TXT"),
    }
}

fn grp_frame(g: &GroupMessage) -> Vec<u8> {
    PacketRepr::new(
        RouteType::Flood,
        PayloadType::GrpTxt,
        Path::empty(),
        Payload::GrpTxt(g.clone()).to_vec(),
    )
    .to_bytes()
    .unwrap()
}

#[test]
fn bad_input_is_counted_and_never_panics() {
    let key = public();
    let mut g = engine_with(setup("Public", key.clone(), ChannelMode::Listen, 4), 1);
    let good = group(&raw(&vector("grp_txt_public.json")));
    // Bad MAC.
    let mut bad = good.clone();
    bad.mac[0] ^= 0xff;
    assert!(channel_posts(&g.handle_frame(now(0), &grp_frame(&bad), -80, 5.0)).is_empty());
    // Wrong hash: some other channel.
    let mut other = good.clone();
    other.channel_hash ^= 0x01;
    assert!(channel_posts(&g.handle_frame(now(1), &grp_frame(&other), -80, 5.0)).is_empty());
    // txt_type ≠ 0 (a signed or CLI text type).
    let mut plain = TS.to_le_bytes().to_vec();
    plain.push(2 << 2);
    plain.extend_from_slice(b"alice: signed");
    let typed = GroupMessage::seal(key.hash(), key.secret(), &plain);
    assert!(channel_posts(&g.handle_frame(now(2), &grp_frame(&typed), -80, 5.0)).is_empty());
    // Too short to hold a timestamp and a type.
    let short = GroupMessage::seal(key.hash(), key.secret(), &[1, 2, 3]);
    assert!(channel_posts(&g.handle_frame(now(3), &grp_frame(&short), -80, 5.0)).is_empty());
    // No "name: " separator: stored with an unknown sender.
    let mut plain = (TS + 1).to_le_bytes().to_vec();
    plain.push(0);
    plain.extend_from_slice(b"just words");
    let anon = GroupMessage::seal(key.hash(), key.secret(), &plain);
    let p = channel_posts(&g.handle_frame(now(4), &grp_frame(&anon), -80, 5.0));
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].sender.as_deref(), p[0].text.as_str()),
        (None, "just words")
    );
    // Invalid UTF-8 and garbage ciphertext lengths.
    let mut plain = (TS + 2).to_le_bytes().to_vec();
    plain.push(0);
    plain.extend_from_slice(&[0xff, 0xfe, b':', b' ', 0xc3]);
    let junk = GroupMessage::seal(key.hash(), key.secret(), &plain);
    assert_eq!(
        channel_posts(&g.handle_frame(now(5), &grp_frame(&junk), -80, 5.0)).len(),
        1
    );
    let odd = GroupMessage {
        channel_hash: key.hash(),
        mac: [0, 0],
        ciphertext: vec![1; 7],
    };
    assert!(channel_posts(&g.handle_frame(now(6), &grp_frame(&odd), -80, 5.0)).is_empty());
    let st = g.channel_status(0).unwrap();
    assert_eq!(
        st.counters.bad_mac, 2,
        "bad MAC and a ciphertext of 7 bytes"
    );
    assert_eq!(st.counters.not_text, 2);
    assert_eq!(st.counters.no_sender, 1);
    assert_eq!(st.counters.heard, 2);
    assert_eq!(g.counters().dropped.get("not_for_us"), Some(&1));
    // Arbitrary bytes after a GRP_TXT header never panic.
    for n in 0..200u16 {
        let mut f = vec![0x15, 0x00, key.hash()];
        f.extend((0..n).map(|i| (i.wrapping_mul(31) ^ n) as u8));
        let _ = g.handle_frame(now(10 + u64::from(n)), &f, -80, 5.0);
    }
}

#[test]
fn too_long_posts_are_cut_and_counted() {
    let mut g = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 1);
    g.channel_offer(0, &local_post(1, "dave", &"x".repeat(400), None));
    let f = run(&mut g, 0, 100);
    let m = decode(&public(), &group(&f[0])).unwrap();
    assert!(m.full_text.ends_with('…'));
    assert!(m.full_text.len() <= MAX_CHANNEL_TEXT);
    assert_eq!(g.channel_status(0).unwrap().counters.cut, 1);
    assert!(f[0].len() <= 255);
}

#[test]
fn a_post_from_another_server_waits_its_hold_so_the_origin_gateway_goes_first() {
    // Two bridging gateways on one air get a post at the same moment (its origin's, and this
    // one's by federation): this one holds back 1–3 s, long enough to hear the origin's copy.
    let mut g = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 5);
    g.channel_offer(0, &local_post(3, "bob", "far away", Some("g1")));
    assert!(run(&mut g, 0, 950).is_empty(), "held for at least a second");
    assert_eq!(run(&mut g, 1_000, 3_050).len(), 1, "and sent within three");
    // A post that entered the system here goes at once.
    let mut h = engine_with(setup("Public", public(), ChannelMode::Bridge, 60), 6);
    h.channel_offer(0, &local_post(4, "bob", "near", None));
    assert_eq!(run(&mut h, 0, 100).len(), 1);
}
