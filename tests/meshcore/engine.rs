//! The room-server engine against software companions on an in-memory air, with a fake hub
//! that commits posts. No IO, no real time: every test is deterministic.

use std::collections::HashSet;

use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use meshroom_gw::meshcore::server::engine::{Action, Engine, EngineConfig, Now};
use meshroom_gw::meshcore::server::history::{PostAuthor, RoomPost};
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::meshcore::wire::message::{StatusBody, REQ_GET_STATUS};
use meshroom_gw::meshcore::wire::packet::{PacketRepr, PayloadType};
use rand::{Rng, SeedableRng};

use super::harness::*;

#[test]
fn two_clients_in_a_public_room_one_posts_the_other_receives_it_once() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    // Names come from adverts.
    for i in 0..2 {
        let outs = air.radios[i].companion.advert(air.now);
        air.radio_out(i, outs);
    }
    air.login(0, 0, "anything", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    assert!(air.logged_in(0) && air.logged_in(1));
    let ts = air.post(0, 0, "hello room");
    air.run(20_000);
    assert!(air.has_event(0, |e| *e
        == CompanionEvent::PostAcked {
            room: air.room_key(0),
            timestamp: ts
        }));
    assert_eq!(air.pushed(1), vec![(0, "hello room".to_string())]);
    assert_eq!(
        air.pushed(0),
        vec![],
        "the author does not get its own post back"
    );
    assert_eq!(air.hub.posts.len(), 1);
    // The push carries alice's key prefix.
    let alice = air.radios[0].companion.public();
    assert!(air.has_event(1, |e| matches!(e, CompanionEvent::Pushed { author_prefix, .. } if *author_prefix == alice.prefix4())));
    let parts = air.engine.participants(0);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().any(|p| p.name.as_deref() == Some("alice")));
    let c = air.engine.counters();
    assert_eq!((c.login_ok, c.posts_acked, c.push_acks), (2, 1, 1));
    // bob's sync state followed the ACK.
    let saved = &air.hub.saved_clients[&(0, air.radios[1].companion.public().to_hex())];
    assert_eq!(saved.sync_since, air.hub.posts[0].2);
}

#[test]
fn private_room_wrong_password_gets_no_reply_right_one_works_and_guessing_is_rate_limited() {
    let mut air = discovered(
        vec![room("Private", 2, Some("sesame-sesame-open-up"))],
        &["mallory", "alice"],
    );
    let before = air.engine_tx.len();
    air.login(0, 0, "guess", None);
    air.run(16_000);
    assert_eq!(
        air.engine_tx.len(),
        before,
        "no reply at all to a wrong password"
    );
    assert!(air.has_event(0, |e| matches!(e, CompanionEvent::LoginTimedOut { .. })));
    assert!(!air.logged_in(0));
    assert_eq!(air.engine.counters().login_failed, 1);
    // No access: a post from mallory is not stored and not ACKed.
    air.post(0, 0, "let me in");
    air.run(40_000);
    assert!(air.hub.posts.is_empty());
    assert!(air.has_event(0, |e| matches!(e, CompanionEvent::PostFailed { .. })));
    // Only the first 15 bytes of the PSK travel; they log in.
    air.login(1, 0, "sesame-sesame-open-up", None);
    air.run(2_000);
    assert!(air.logged_in(1));
    // Repeated guesses block the key, even for a right password afterwards (a repeated
    // password is a retry and counts once, so these differ).
    for k in 0..5 {
        air.login(0, 0, &format!("wrong{k}"), None);
        air.run(100);
    }
    air.login(0, 0, "sesame-sesame-o", None);
    air.run(2_000);
    assert!(!air.logged_in(0));
    assert!(air.engine.counters().login_rate_limited >= 1);
    assert_eq!(air.engine.counters().login_failed, 5);
}

#[test]
fn ack_leaves_only_after_commit_and_a_retry_is_acked_but_stored_once() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice"]);
    air.login(0, 0, "", None);
    air.run(2_000);
    air.hub.hold = true;
    let acks_before = air.engine.counters().posts_acked;
    let ts = air.post(0, 0, "slow commit");
    air.run(1_000);
    assert_eq!(air.hub.held.len(), 1);
    assert_eq!(
        air.engine.counters().posts_acked,
        acks_before,
        "no ACK before the commit"
    );
    air.hub.hold = false;
    let p = air.hub.held.remove(0);
    air.commit(p);
    air.run(1_000);
    assert!(air.has_event(
        0,
        |e| matches!(e, CompanionEvent::PostAcked { timestamp, .. } if *timestamp == ts)
    ));
    // The ACK is lost: the client retries the same post (same timestamp and text).
    let ts2 = air.post(0, 0, "lost ack");
    air.drop_engine_tx = 1;
    air.run(30_000);
    assert!(air.has_event(
        0,
        |e| matches!(e, CompanionEvent::PostAcked { timestamp, .. } if *timestamp == ts2)
    ));
    assert_eq!(
        air.hub.posts.iter().filter(|p| p.3 == "lost ack").count(),
        1,
        "stored once"
    );
    assert_eq!(air.hub.posts.len(), 2);
}

#[test]
fn too_long_post_is_refused_with_a_notice_and_no_ack() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice"]);
    air.login(0, 0, "", None);
    air.run(2_000);
    let key = air.room_key(0);
    let long = "x".repeat(151);
    assert!(
        air.radios[0].companion.post(air.now, &key, &long).is_err(),
        "the companion refuses too"
    );
    let (_, outs) = air.radios[0]
        .companion
        .post_unchecked(air.now, &key, &long)
        .unwrap();
    air.radio_out(0, outs);
    air.run(40_000);
    assert!(air.hub.posts.is_empty());
    assert!(air.has_event(0, |e| matches!(e, CompanionEvent::Notice { text, .. } if text.contains("not stored") && text.contains("150"))));
    assert!(air.has_event(0, |e| matches!(e, CompanionEvent::PostFailed { .. })));
    assert!(air.engine.counters().posts_refused >= 1);
}

#[test]
fn a_replayed_login_and_a_replayed_post_are_dropped() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice"]);
    air.login(0, 0, "", None);
    air.run(2_000);
    air.post(0, 0, "one");
    air.run(3_000);
    let alice_frames: Vec<Vec<u8>> = air.engine_tx.clone();
    let _ = alice_frames;
    // A clone of alice with an old clock: timestamps below the last seen.
    let mut clone = Companion::new(
        LocalIdentity::from_seed(&[100; 32]),
        "alice",
        CompanionConfig::default(),
        9,
    );
    clone.add_room(air.room_key(0), "Public", 0);
    let old = Now {
        mono_ms: air.now.mono_ms,
        unix: T0 - 500,
    };
    let replies_before = air.engine_tx.len();
    let replays_before = air.engine.counters().replays;
    for o in clone.login(old, &air.room_key(0), "", Some(0)).unwrap() {
        if let Output::Transmit(f) = o {
            let a = air.engine.handle_frame(air.now, &f, -90, 1.0);
            air.apply(a);
        }
    }
    // An empty password from a known client reuses the entry without a replay check (as the
    // firmware does), so use a non-empty one for the replay case.
    for o in clone.login(old, &air.room_key(0), "pw", Some(0)).unwrap() {
        if let Output::Transmit(f) = o {
            let a = air.engine.handle_frame(air.now, &f, -90, 1.0);
            air.apply(a);
        }
    }
    let (_, outs) = clone.post(old, &air.room_key(0), "replayed").unwrap();
    for o in outs {
        if let Output::Transmit(f) = o {
            let a = air.engine.handle_frame(air.now, &f, -90, 1.0);
            air.apply(a);
        }
    }
    air.run(1_000);
    assert!(air.engine.counters().replays >= replays_before + 2);
    assert_eq!(air.hub.posts.len(), 1, "replayed post not stored");
    // Exactly one frame (the reply to the empty-password re-login) left.
    assert_eq!(air.engine_tx.len(), replies_before + 1);
    // The same frame heard twice is handled once.
    let dup_before = air
        .engine
        .counters()
        .dropped
        .get("duplicate")
        .copied()
        .unwrap_or(0);
    let f = air.engine_tx.last().unwrap().clone();
    let a = air.engine.handle_frame(air.now, &f, -90, 1.0);
    assert!(a.is_empty());
    assert_eq!(air.engine.counters().dropped["duplicate"], dup_before + 1);
}

#[test]
fn away_client_gets_exactly_what_it_missed_after_login_with_sync_since() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    air.login(0, 0, "", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    air.post(0, 0, "first");
    air.run(20_000);
    assert_eq!(air.pushed(1).len(), 1);
    let bob_sync = air.radios[1]
        .companion
        .room(&air.room_key(0))
        .unwrap()
        .sync_since;
    // bob goes away; two posts happen.
    air.radios[1].deaf = true;
    air.radios[1].mute = true;
    air.post(0, 0, "second");
    air.run(5_000);
    air.post(0, 0, "third");
    air.run(60_000);
    // bob is back and logs in with its sync_since.
    air.radios[1].deaf = false;
    air.radios[1].mute = false;
    air.login(1, 0, "", Some(bob_sync));
    air.run(30_000);
    let got: Vec<String> = air.pushed(1).into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, vec!["first", "second", "third"]);
}

#[test]
fn pushes_stop_after_repeated_timeouts_and_resume_when_the_client_is_heard() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    air.login(0, 0, "", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    air.radios[1].deaf = true;
    air.post(0, 0, "are you there");
    air.run(120_000);
    let c = air.engine.counters();
    assert_eq!(
        c.push_timeouts, 3,
        "three failures, then the client is skipped"
    );
    let sent = c.pushes_sent;
    air.run(60_000);
    assert_eq!(
        air.engine.counters().pushes_sent,
        sent,
        "no more pushes while it is silent"
    );
    // bob speaks again: the push resumes and is delivered.
    air.radios[1].deaf = false;
    air.post(1, 0, "back");
    air.run(30_000);
    assert!(air.pushed(1).iter().any(|(_, t)| t == "are you there"));
}

#[test]
fn a_client_in_two_rooms_gets_each_rooms_posts_and_only_those() {
    let mut air = discovered(
        vec![room("Alpha", 1, None), room("Beta", 3, Some("beta-pass"))],
        &["alice", "bob", "carol"],
    );
    assert_ne!(air.room_key(0).hash_byte(), air.room_key(1).hash_byte());
    air.login(0, 0, "", None);
    air.login(0, 1, "beta-pass", None);
    air.login(1, 0, "", None);
    air.login(2, 1, "beta-pass", None);
    air.run(3_000);
    air.post(1, 0, "to alpha");
    air.post(2, 1, "to beta");
    air.run(40_000);
    let mut got = air.pushed(0);
    got.sort();
    assert_eq!(
        got,
        vec![(0, "to alpha".to_string()), (1, "to beta".to_string())]
    );
    assert_eq!(air.pushed(1), vec![]);
    assert_eq!(air.pushed(2), vec![]);
}

#[test]
fn host_posts_reach_radio_clients_with_the_author_shown() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice"]);
    air.login(0, 0, "", None);
    air.run(2_000);
    air.host_post(0, "carol@host", "hi from the host");
    air.run(10_000);
    assert_eq!(
        air.pushed(0),
        vec![(0, "carol@host: hi from the host".to_string())]
    );
    let room_prefix = air.room_key(0).prefix4();
    assert!(air.has_event(0, |e| matches!(e, CompanionEvent::Pushed { author_prefix, .. } if *author_prefix == room_prefix)));
}

#[test]
fn flood_login_is_answered_with_a_path_and_the_route_is_learnt_from_the_push_ack() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    air.login(0, 0, "", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    let reply = PacketRepr::from_bytes(&air.engine_tx[air.engine_tx.len() - 1]).unwrap();
    assert_eq!(
        reply.payload_type,
        PayloadType::Path,
        "flooded login gets a PATH reply"
    );
    // The companion learnt a route from that PATH and now posts direct.
    assert!(air.radios[0]
        .companion
        .room(&air.room_key(0))
        .unwrap()
        .out_path
        .is_some());
    air.post(0, 0, "direct now");
    air.run(20_000);
    assert!(
        air.engine.counters().paths_learned >= 1,
        "bob's PATH+ACK taught the room a route"
    );
    assert_eq!(
        air.engine.route_of(0, &air.radios[1].companion.public()),
        Some(meshroom_gw::meshcore::wire::packet::RouteType::Direct)
    );
}

#[test]
fn get_status_returns_the_52_byte_body() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice"]);
    air.login(0, 0, "", None);
    air.run(2_000);
    let key = air.room_key(0);
    let (tag, outs) = air.radios[0]
        .companion
        .request(air.now, &key, REQ_GET_STATUS, &[0; 8])
        .unwrap();
    air.radio_out(0, outs);
    air.run(2_000);
    let body = air.radios[0]
        .events
        .iter()
        .find_map(|e| match e {
            CompanionEvent::Response { tag: t, body, .. } if *t == tag => Some(body.clone()),
            _ => None,
        })
        .expect("a status response");
    let status = StatusBody::parse(&body).unwrap();
    assert!(status.pkts_recv >= 2);
    assert_eq!(status.last_rssi, -80);
    assert_eq!(status.last_snr_x4, 26);
}

#[test]
fn restart_keeps_clock_clients_and_history() {
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    air.login(0, 0, "", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    air.post(0, 0, "before restart");
    air.run(20_000);
    let clock = air.hub.saved_clock[&0];
    // Restart with the wall clock behind (a Pi without RTC).
    let mut setup = room("Public", 1, None);
    setup.clock = clock;
    setup.clients = air.hub.saved_clients.values().cloned().collect();
    setup.history = air
        .hub
        .posts
        .iter()
        .map(|(_, id, ts, text)| RoomPost {
            id: *id,
            room_ts: *ts,
            room_us: *ts as u64 * 1_000_000,
            author: PostAuthor::Radio(air.radios[0].companion.public()),
            text: text.clone(),
        })
        .collect();
    let now = Now {
        mono_ms: 0,
        unix: T0 - 3600,
    };
    let mut engine = Engine::new(config(), vec![setup], 1, now);
    assert_eq!(engine.history_len(0), 1);
    assert_eq!(engine.client_count(0), 2);
    let acts = engine.tick(Now {
        mono_ms: 100,
        unix: T0 - 3600,
    });
    let advert = acts
        .iter()
        .find_map(|a| match a {
            Action::Transmit { frame, .. } => Some(PacketRepr::from_bytes(frame).unwrap()),
            _ => None,
        })
        .expect("an advert at start");
    let Ok(meshroom_gw::meshcore::wire::payload::Payload::Advert(a)) =
        meshroom_gw::meshcore::wire::payload::Payload::parse(advert.payload_type, &advert.payload)
    else {
        panic!("advert")
    };
    assert!(
        a.timestamp > clock,
        "advert clock kept going up across the restart"
    );
    // bob already has the post (sync state restored): nothing is pushed to him again.
    let mut pushed = 0;
    for t in 1..100 {
        for a in engine.tick(Now {
            mono_ms: 100 + t * 200,
            unix: T0 - 3600,
        }) {
            if matches!(a, Action::Transmit { .. }) {
                pushed += 1;
            }
        }
    }
    assert_eq!(pushed, 0);
}

#[test]
fn participants_leave_after_the_silence_timeout() {
    let cfg = EngineConfig {
        silence_timeout_ms: 10_000,
        ..config()
    };
    let mut air = Air::with_config(vec![room("Public", 1, None)], &["alice"], cfg);
    air.run(500);
    air.login(0, 0, "", None);
    air.run(2_000);
    assert_eq!(air.engine.participants(0).len(), 1);
    air.run(12_000);
    assert_eq!(air.engine.participants(0).len(), 0);
    air.post(0, 0, "hi");
    air.run(1_000);
    assert_eq!(air.engine.participants(0).len(), 1, "back when heard");
}

#[test]
fn random_truncated_and_tampered_frames_never_panic_and_are_counted() {
    let mut air = discovered(
        vec![room("Public", 1, None), room("Two", 3, Some("pw"))],
        &["alice"],
    );
    air.login(0, 0, "", None);
    air.run(2_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut valid: Vec<Vec<u8>> = air.engine_tx.clone();
    let key = air.room_key(0);
    let (_, outs) = air.radios[0]
        .companion
        .post(air.now, &key, "sample")
        .unwrap();
    for o in outs {
        if let Output::Transmit(f) = o {
            valid.push(f);
        }
    }
    let hashes: HashSet<u8> = [air.room_key(0).hash_byte(), air.room_key(1).hash_byte()].into();
    for i in 0..6_000u64 {
        let now = Now {
            mono_ms: air.now.mono_ms + i,
            unix: T0 + 100,
        };
        let frame: Vec<u8> = match i % 4 {
            0 => (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
            1 => {
                let v = &valid[rng.gen_range(0..valid.len())];
                v[..rng.gen_range(0..=v.len())].to_vec()
            }
            2 => {
                let mut v = valid[rng.gen_range(0..valid.len())].clone();
                let at = rng.gen_range(0..v.len());
                v[at] ^= 1 << rng.gen_range(0..8);
                v
            }
            _ => {
                // Well-formed envelopes aimed at our rooms with garbage inside.
                let mut v = vec![rng.gen_range(0..16u8) << 2 | rng.gen_range(0..4u8), 0];
                if v[0] & 3 == 0 || v[0] & 3 == 3 {
                    v.splice(1..1, [0, 0, 0, 0]);
                }
                v.push(*hashes.iter().next().unwrap());
                v.extend((0..rng.gen_range(0..120)).map(|_| rng.gen::<u8>()));
                v
            }
        };
        let acts = air.engine.handle_frame(now, &frame, -100, -5.0);
        // Only the genuine post (possibly with a flipped header or path bit, which the MAC
        // does not cover) can become a post; junk never does.
        assert!(
            acts.iter()
                .all(|a| !matches!(a, Action::Post(p) if p.text != "sample")),
            "junk never becomes a post"
        );
        let _ = air.engine.tick(now);
    }
    let c = air.engine.counters();
    assert!(c.dropped_total() > 3_000, "{c:?}");
    assert!(c.bad_mac > 0);
    // Still serving: a real post goes through.
    air.now.mono_ms += 30_000;
    air.post(0, 0, "still alive");
    air.run(5_000);
    assert!(air.hub.posts.iter().any(|p| p.3 == "still alive"));
}

#[test]
fn keep_alive_is_answered_direct_with_the_unsynced_count_only_when_a_route_is_known() {
    use meshroom_gw::meshcore::wire::message::REQ_KEEP_ALIVE;
    use meshroom_gw::meshcore::wire::payload::Payload;
    let mut air = discovered(vec![room("Public", 1, None)], &["alice", "bob"]);
    air.login(0, 0, "", None);
    air.login(1, 0, "", None);
    air.run(2_000);
    let key = air.room_key(0);
    // The room has no route to bob yet (it learns one from bob's PATH): bob's direct
    // keep-alive is processed but not answered.
    let sent_before = air.engine_tx.len();
    let (_, outs) = air.radios[1]
        .companion
        .request(air.now, &key, REQ_KEEP_ALIVE, &[0; 4])
        .unwrap();
    air.radio_out(1, outs);
    air.run(1_000);
    let answered = air.engine_tx[sent_before..]
        .iter()
        .any(|f| PacketRepr::from_bytes(f).is_ok_and(|p| p.payload_type == PayloadType::Ack));
    assert!(!answered, "no route, no keep-alive answer");
    // alice posts; bob ACKs the flooded push with a PATH, which teaches the room his route.
    air.post(0, 0, "one");
    air.run(15_000);
    assert_eq!(air.pushed(1).len(), 1);
    air.host_post(0, "carol", "two");
    air.radios[1].deaf = true;
    air.run(500);
    air.radios[1].deaf = false;
    let sent_before = air.engine_tx.len();
    let (_, outs) = air.radios[1]
        .companion
        .request(air.now, &key, REQ_KEEP_ALIVE, &[0; 4])
        .unwrap();
    air.radio_out(1, outs);
    air.run(300);
    let ack = air.engine_tx[sent_before..]
        .iter()
        .filter_map(|f| PacketRepr::from_bytes(f).ok())
        .find(|p| p.payload_type == PayloadType::Ack)
        .expect("keep-alive ACK");
    assert_eq!(
        ack.route,
        meshroom_gw::meshcore::wire::packet::RouteType::Direct
    );
    let Ok(Payload::Ack(a)) = Payload::parse(ack.payload_type, &ack.payload) else {
        panic!("ACK payload")
    };
    assert_eq!(
        a.extra,
        vec![1],
        "one post (carol's) not yet acknowledged by bob"
    );
    assert!(air.engine.counters().keep_alives >= 1);
}

#[test]
fn a_new_psk_applies_to_the_next_login() {
    let mut air = discovered(vec![room("Club", 2, Some("old-pass"))], &["alice", "bob"]);
    air.engine.set_room_password(0, Some(b"new-pass".to_vec()));
    air.login(0, 0, "old-pass", None);
    air.login(1, 0, "new-pass", None);
    air.run(16_000);
    assert!(!air.logged_in(0), "the old PSK no longer works");
    assert!(air.logged_in(1), "the new PSK does");
}
