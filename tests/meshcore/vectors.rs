//! Byte-exact checks against every file in `tests/vectors/` (copied from the MeshCore protocol reference; see its README), both directions: parse
//! each `raw_hex` and compare the fields, then build the frame from the fields and compare the
//! bytes. A mismatch here means a stock MeshCore app would not understand us.

use meshroom_gw::meshcore::wire::advert::{Advert, AppData, NodeType};
use meshroom_gw::meshcore::wire::crypto::ChannelKey;
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::meshcore::wire::message::{
    LoginReply, LoginRequest, PathBody, Request, TextMessage, TxtType,
};
use meshroom_gw::meshcore::wire::packet::{PacketRepr, Path, PathLen, PayloadType, RouteType};
use meshroom_gw::meshcore::wire::payload::{Ack, AnonReq, Datagram, GroupMessage, Payload};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

fn hs(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn identity(name: &str) -> LocalIdentity {
    let ids = vector("identities.json");
    let prv: [u8; 64] = h(&ids["identities"][name]["prv64"]).try_into().unwrap();
    LocalIdentity::from_prv64(&prv)
}

fn bytes(p: &PacketRepr) -> Vec<u8> {
    p.to_bytes().unwrap()
}

fn path(hops: &[u8]) -> Path {
    Path::new(PathLen::new(hops.len() as u8, 1).unwrap(), hops).unwrap()
}

#[test]
fn identities_keys_and_shared_secrets() {
    let ids = vector("identities.json");
    for name in ["alice", "bob", "room"] {
        let v = &ids["identities"][name];
        let seed: [u8; 32] = h(&v["seed"]).try_into().unwrap();
        let from_seed = LocalIdentity::from_seed(&seed);
        assert_eq!(from_seed.prv64().to_vec(), h(&v["prv64"]), "{name} prv64");
        let id = identity(name);
        assert_eq!(id.public().0.to_vec(), h(&v["pub"]), "{name} pub");
        assert_eq!(vec![id.public().hash_byte()], h(&v["hash_byte"]));
    }
    for (a, b) in [("alice", "bob"), ("alice", "room"), ("bob", "room")] {
        let want = h(&ids["shared_secrets"][format!("{a}<->{b}")]);
        let ia = identity(a);
        let ib = identity(b);
        assert_eq!(ia.shared_secret(&ib.public()).unwrap().0.to_vec(), want);
        assert_eq!(ib.shared_secret(&ia.public()).unwrap().0.to_vec(), want);
    }
}

fn check_group(file: &str, key: ChannelKey) {
    let v = vector(file);
    let raw = h(&v["raw_hex"]);
    let f = &v["fields"];
    // Parse direction.
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(p.route, RouteType::Flood);
    assert_eq!(p.payload_type, PayloadType::GrpTxt);
    assert!(p.path.is_empty());
    let Payload::GrpTxt(g) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not GRP_TXT")
    };
    assert_eq!(vec![g.channel_hash], h(&f["channel_hash"]));
    assert_eq!(vec![key.hash()], h(&v["channel"]["channel_hash_byte"]));
    assert_eq!(g.mac.to_vec(), h(&f["mac"]));
    assert_eq!(g.ciphertext, h(&f["ciphertext"]));
    let plain = g.open(key.secret()).unwrap();
    assert_eq!(plain, h(&f["plaintext_padded"]));
    let msg = TextMessage::parse(&plain).unwrap();
    assert_eq!(msg.txt_type, TxtType::Plain);
    assert_eq!(msg.text_lossy(), "alice: hello mesh");
    assert_eq!(
        msg.timestamp.to_le_bytes().to_vec(),
        h(&f["plaintext_fields"]["timestamp_le"])
    );
    assert_eq!(p.packet_hash().to_vec(), h(&v["packet_hash_8"]));
    // Build direction.
    let built = GroupMessage::seal(
        key.hash(),
        key.secret(),
        &TextMessage::plain(1735689600, 0, "alice: hello mesh").to_vec(),
    );
    let repr = PacketRepr::new(
        RouteType::Flood,
        PayloadType::GrpTxt,
        Path::empty(),
        Payload::GrpTxt(built).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
}

#[test]
fn group_text_public_channel() {
    check_group(
        "grp_txt_public.json",
        ChannelKey::new(&ChannelKey::PUBLIC).unwrap(),
    );
}

#[test]
fn group_text_hashtag_channel() {
    check_group("grp_txt_hashtag_test.json", ChannelKey::hashtag("#test"));
}

#[test]
fn room_advert_with_and_without_location() {
    let v = vector("advert_room.json");
    let f = &v["fields"];
    let room = identity("room");
    for (raw, location) in [
        (h(&v["raw_hex"]), Some((37_500_000, -122_250_000))),
        (h(&v["variant_without_location_raw_hex"]), None),
    ] {
        let p = PacketRepr::from_bytes(&raw).unwrap();
        assert_eq!(
            (p.route, p.payload_type),
            (RouteType::Flood, PayloadType::Advert)
        );
        let Payload::Advert(a) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
            panic!("not an advert")
        };
        assert_eq!(a.public_key.0.to_vec(), h(&f["pubkey"]));
        assert_eq!(a.timestamp.to_le_bytes().to_vec(), h(&f["timestamp_le"]));
        assert!(a.verify(), "signature verifies");
        let app = a.app_data().unwrap();
        assert_eq!(app.node_type, NodeType::RoomServer);
        assert_eq!(app.location, location);
        assert_eq!(app.name.as_deref(), Some("meshroom-gw"));
        if location.is_some() {
            assert_eq!(a.signature.to_vec(), h(&f["signature"]));
            assert_eq!(a.appdata, h(&f["appdata"]));
            assert_eq!(p.packet_hash().to_vec(), h(&v["packet_hash_8"]));
        }
        let mut tampered = a.clone();
        tampered.timestamp += 1;
        assert!(
            !tampered.verify(),
            "a changed timestamp breaks the signature"
        );
        // Build direction: sign with the firmware-format key.
        let built = Advert::sign(&room, 1735689660, &AppData::room("meshroom-gw", location));
        let repr = PacketRepr::new(
            RouteType::Flood,
            PayloadType::Advert,
            Path::empty(),
            Payload::Advert(built).to_vec(),
        );
        assert_eq!(bytes(&repr), raw);
    }
}

#[test]
fn direct_text_ack_and_path_return() {
    let v = vector("txt_msg_alice_to_bob.json");
    let alice = identity("alice");
    let bob = identity("bob");
    let secret = bob.shared_secret(&alice.public()).unwrap();
    assert_eq!(secret.0.to_vec(), h(&v["shared_secret"]));
    let f = &v["fields"];
    for (key, route) in [
        ("raw_hex_direct_zero_hop", RouteType::Direct),
        ("raw_hex_flood", RouteType::Flood),
    ] {
        let raw = h(&v[key]);
        let p = PacketRepr::from_bytes(&raw).unwrap();
        assert_eq!((p.route, p.payload_type), (route, PayloadType::TxtMsg));
        let Payload::TxtMsg(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
            panic!("not TXT_MSG")
        };
        assert_eq!(vec![d.dest_hash], h(&f["dest_hash"]));
        assert_eq!(vec![d.src_hash], h(&f["src_hash"]));
        assert_eq!(d.mac.to_vec(), h(&f["mac"]));
        assert_eq!(d.ciphertext, h(&f["ciphertext"]));
        let plain = d.open(&secret).unwrap();
        let want_plain = h(&v["plaintext"]);
        assert_eq!(&plain[..want_plain.len()], &want_plain[..]);
        let msg = TextMessage::parse(&plain).unwrap();
        assert_eq!((msg.timestamp, msg.attempt), (1735689720, 0));
        assert_eq!(msg.text_lossy(), "hello bob");
        assert_eq!(msg.ack_value(&alice.public()).to_vec(), h(&v["ack_crc_4"]));
        assert_eq!(p.packet_hash().to_vec(), h(&v["packet_hash_8"]));
        // Build.
        let d = Datagram::seal(
            bob.public().hash_byte(),
            alice.public().hash_byte(),
            &secret,
            &TextMessage::plain(1735689720, 0, "hello bob").to_vec(),
        );
        let repr = PacketRepr::new(
            route,
            PayloadType::TxtMsg,
            Path::empty(),
            Payload::TxtMsg(d).to_vec(),
        );
        assert_eq!(bytes(&repr), raw);
    }
    // Bare ACK.
    let raw = h(&v["ack_packet_direct_zero_hop_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    let Payload::Ack(a) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not an ACK")
    };
    assert_eq!(a.crc.to_vec(), h(&v["ack_crc_4"]));
    let ack = Ack {
        crc: a.crc,
        extra: vec![],
    };
    let repr = PacketRepr::new(
        RouteType::Direct,
        PayloadType::Ack,
        Path::empty(),
        Payload::Ack(ack).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
    // Flood PATH carrying the ACK, from bob back to alice.
    let raw = h(&v["path_return_with_ack_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Flood, PayloadType::Path)
    );
    let Payload::Path(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not PATH")
    };
    assert_eq!((d.dest_hash, d.src_hash), (0xe4, 0x03));
    let plain = alice.shared_secret(&bob.public()).unwrap();
    let inner = d.open(&plain).unwrap();
    let want_inner = h(&v["path_return_inner_plain"]);
    assert_eq!(&inner[..want_inner.len()], &want_inner[..]);
    let body = PathBody::parse(&inner).unwrap();
    assert_eq!(body.path.bytes(), &[0x5a, 0x6b]);
    assert_eq!(body.ack().map(|a| a.to_vec()), Some(h(&v["ack_crc_4"])));
    let built = PathBody {
        path: path(&[0x5a, 0x6b]),
        extra_type: PayloadType::Ack.as_u8(),
        extra: hs("ac2a62cf0042"),
    };
    assert_eq!(built.to_vec(), want_inner);
    let d = Datagram::seal(0xe4, 0x03, &secret, &built.to_vec());
    let repr = PacketRepr::new(
        RouteType::Flood,
        PayloadType::Path,
        Path::empty(),
        Payload::Path(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
}

fn check_login(file: &str, sync_since: u32, password: &str) {
    let v = vector(file);
    let raw = h(&v["raw_hex"]);
    let f = &v["fields"];
    let room = identity("room");
    let alice = identity("alice");
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Flood, PayloadType::AnonReq)
    );
    let Payload::AnonReq(a) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not ANON_REQ")
    };
    assert_eq!(vec![a.dest_hash], h(&f["dest_hash"]));
    assert_eq!(a.sender.0.to_vec(), h(&f["sender_pubkey"]));
    assert_eq!(a.mac.to_vec(), h(&f["mac"]));
    assert_eq!(a.ciphertext, h(&f["ciphertext"]));
    let secret = room.shared_secret(&a.sender).unwrap();
    assert_eq!(secret.0.to_vec(), h(&v["ecdh_secret(room,alice)"]));
    let plain = a.open(&secret).unwrap();
    let want = h(&v["plaintext"]);
    assert_eq!(&plain[..want.len()], &want[..]);
    let login = LoginRequest::parse(&plain).unwrap();
    assert_eq!(login.timestamp, 1735689780);
    assert_eq!(login.sync_since, sync_since);
    assert_eq!(login.password, password.as_bytes());
    assert_eq!(p.packet_hash().to_vec(), h(&v["packet_hash_8"]));
    // Build.
    let req = LoginRequest {
        timestamp: 1735689780,
        sync_since,
        password: password.as_bytes().to_vec(),
    };
    let secret = alice.shared_secret(&room.public()).unwrap();
    let anon = AnonReq::seal(
        room.public().hash_byte(),
        alice.public(),
        &secret,
        &req.to_vec(),
    );
    let repr = PacketRepr::new(
        RouteType::Flood,
        PayloadType::AnonReq,
        Path::empty(),
        Payload::AnonReq(anon).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
}

#[test]
fn room_login_guest_password() {
    check_login("anon_req_login_guest.json", 0, "hello");
}

#[test]
fn room_login_admin_with_sync_since() {
    check_login("anon_req_login_admin_sync.json", 1735689700, "password");
}

#[test]
fn login_reply_as_flood_path_and_as_direct_response() {
    let v = vector("login_response.json");
    let room = identity("room");
    let alice = identity("alice");
    let secret = room.shared_secret(&alice.public()).unwrap();
    let reply13 = h(&v["login_reply_13"]);
    let reply = LoginReply::parse(&reply13).unwrap();
    assert_eq!(reply.server_time.to_le_bytes().to_vec(), hs("39867467"));
    assert_eq!(
        (
            reply.resp_code,
            reply.keepalive_div16,
            reply.admin_flag,
            reply.permissions
        ),
        (0, 0, 0, 2)
    );
    assert_eq!(
        (reply.random, reply.fw_level),
        ([0xde, 0xad, 0xbe, 0xef], 1)
    );
    assert_eq!(reply.to_vec(), reply13);

    // Case A: flood PATH with the request's path and the reply as RESPONSE extra.
    let raw = h(&v["case_A_path_packet_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Flood, PayloadType::Path)
    );
    let Payload::Path(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not PATH")
    };
    assert_eq!((d.dest_hash, d.src_hash), (0xe4, 0xee));
    let inner = d
        .open(&alice.shared_secret(&room.public()).unwrap())
        .unwrap();
    let want_inner = h(&v["case_A_inner_plain"]);
    assert_eq!(&inner[..want_inner.len()], &want_inner[..]);
    let body = PathBody::parse(&inner).unwrap();
    assert_eq!(body.path.bytes(), &[0xa1, 0xb2]);
    assert_eq!(body.extra_type, PayloadType::Response.as_u8());
    assert_eq!(LoginReply::parse(&body.extra).unwrap(), reply);
    let built = PathBody {
        path: path(&[0xa1, 0xb2]),
        extra_type: PayloadType::Response.as_u8(),
        extra: reply13.clone(),
    };
    let d = Datagram::seal(0xe4, 0xee, &secret, &built.to_vec());
    let repr = PacketRepr::new(
        RouteType::Flood,
        PayloadType::Path,
        Path::empty(),
        Payload::Path(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);

    // Case B: RESPONSE sent direct along [b2, a1].
    let raw = h(&v["case_B_response_direct_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Direct, PayloadType::Response)
    );
    assert_eq!(p.path.bytes(), &[0xb2, 0xa1]);
    let Payload::Response(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not RESPONSE")
    };
    let inner = d.open(&secret).unwrap();
    assert_eq!(LoginReply::parse(&inner).unwrap(), reply);
    let d = Datagram::seal(0xe4, 0xee, &secret, &reply13);
    let repr = PacketRepr::new(
        RouteType::Direct,
        PayloadType::Response,
        path(&[0xb2, 0xa1]),
        Payload::Response(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
}

#[test]
fn room_post_push_and_keep_alive() {
    let v = vector("room_post_push_keepalive.json");
    let room = identity("room");
    let alice = identity("alice");
    let bob = identity("bob");
    let s_alice = room.shared_secret(&alice.public()).unwrap();
    let s_bob = room.shared_secret(&bob.public()).unwrap();

    // (1) alice's post, direct via a1,b2.
    let post = &v["post"];
    let raw = h(&post["raw_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Direct, PayloadType::TxtMsg)
    );
    assert_eq!(p.path.bytes(), &[0xa1, 0xb2]);
    let Payload::TxtMsg(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not TXT_MSG")
    };
    assert_eq!((d.dest_hash, d.src_hash), (0xee, 0xe4));
    let msg = TextMessage::parse(&d.open(&s_alice).unwrap()).unwrap();
    assert_eq!(
        (msg.timestamp, msg.text_lossy().as_str()),
        (1735689800, "first post!")
    );
    assert_eq!(
        msg.ack_value(&alice.public()).to_vec(),
        h(&post["ack_crc_4"])
    );
    let d = Datagram::seal(
        0xee,
        0xe4,
        &s_alice,
        &TextMessage::plain(1735689800, 0, "first post!").to_vec(),
    );
    let repr = PacketRepr::new(
        RouteType::Direct,
        PayloadType::TxtMsg,
        path(&[0xa1, 0xb2]),
        Payload::TxtMsg(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
    // pymc-core's variant (extra NUL, one more block) decrypts to the same post.
    let p = PacketRepr::from_bytes(&h(&post["pymc_core_raw_hex"])).unwrap();
    let Payload::TxtMsg(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not TXT_MSG")
    };
    assert_eq!(TextMessage::parse(&d.open(&s_alice).unwrap()).unwrap(), msg);

    // (2) the push to bob: SIGNED_PLAIN with alice's prefix, flooded.
    let push = &v["push"];
    let raw = h(&push["raw_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Flood, PayloadType::TxtMsg)
    );
    let Payload::TxtMsg(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not TXT_MSG")
    };
    assert_eq!((d.dest_hash, d.src_hash), (0x03, 0xee));
    let plain = d.open(&bob.shared_secret(&room.public()).unwrap()).unwrap();
    let want = h(&push["plaintext"]);
    assert_eq!(&plain[..want.len()], &want[..]);
    let m = TextMessage::parse(&plain).unwrap();
    assert_eq!(m.txt_type, TxtType::SignedPlain);
    assert_eq!((m.timestamp, m.attempt), (1735689801, 1));
    assert_eq!(m.author_prefix, Some(alice.public().prefix4()));
    assert_eq!(m.text_lossy(), "first post!");
    assert_eq!(
        m.ack_value(&bob.public()).to_vec(),
        h(&push["expected_ack_crc_4"])
    );
    let built = TextMessage::signed(1735689801, 1, alice.public().prefix4(), "first post!");
    let d = Datagram::seal(0x03, 0xee, &s_bob, &built.to_vec());
    let repr = PacketRepr::new(
        RouteType::Flood,
        PayloadType::TxtMsg,
        Path::empty(),
        Payload::TxtMsg(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);

    // (3) bob's keep-alive via repeater 77, and the server's 5-byte ACK.
    let ka = &v["keepalive"];
    let raw = h(&ka["raw_hex"]);
    let p = PacketRepr::from_bytes(&raw).unwrap();
    assert_eq!(
        (p.route, p.payload_type),
        (RouteType::Direct, PayloadType::Req)
    );
    assert_eq!(p.path.bytes(), &[0x77]);
    let Payload::Req(d) = Payload::parse(p.payload_type, &p.payload).unwrap() else {
        panic!("not REQ")
    };
    assert_eq!((d.dest_hash, d.src_hash), (0xee, 0x03));
    let plain = d.open(&s_bob).unwrap();
    let want = h(&ka["plaintext"]);
    assert_eq!(&plain[..want.len()], &want[..]);
    let req = Request::parse(&plain).unwrap();
    assert_eq!(req.keep_alive_sync_since(), Some(1735689801));
    assert_eq!(
        req.keep_alive_ack(&bob.public()).to_vec(),
        h(&ka["server_ack_crc_4"])
    );
    let built = Request {
        timestamp: req.timestamp,
        req_type: 2,
        params: 1735689801u32.to_le_bytes().to_vec(),
    };
    let d = Datagram::seal(0xee, 0x03, &s_bob, &built.to_vec());
    let repr = PacketRepr::new(
        RouteType::Direct,
        PayloadType::Req,
        path(&[0x77]),
        Payload::Req(d).to_vec(),
    );
    assert_eq!(bytes(&repr), raw);
    let ack_raw = h(&ka["server_ack_packet_hex"]);
    let ack = Ack {
        crc: req.keep_alive_ack(&bob.public()),
        extra: vec![0],
    };
    let repr = PacketRepr::new(
        RouteType::Direct,
        PayloadType::Ack,
        path(&[0x77]),
        Payload::Ack(ack.clone()).to_vec(),
    );
    assert_eq!(bytes(&repr), ack_raw);
    let p = PacketRepr::from_bytes(&ack_raw).unwrap();
    assert_eq!(
        Payload::parse(p.payload_type, &p.payload).unwrap(),
        Payload::Ack(ack)
    );
}

/// Every vector frame survives parse → emit unchanged, and every proper prefix of it is either
/// rejected or parsed without panicking.
#[test]
fn every_vector_frame_round_trips_and_truncations_never_panic() {
    let mut frames = vec![];
    for file in std::fs::read_dir(format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let path = file.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        collect_frames(&serde_json::from_str(&text).unwrap(), &mut frames);
    }
    assert!(frames.len() >= 15, "found {} frames", frames.len());
    for raw in frames {
        let p = PacketRepr::from_bytes(&raw).unwrap();
        assert_eq!(bytes(&p), raw);
        let payload = Payload::parse(p.payload_type, &p.payload).unwrap();
        assert_eq!(payload.to_vec(), p.payload);
        for cut in 0..raw.len() {
            if let Ok(p) = PacketRepr::from_bytes(&raw[..cut]) {
                let _ = Payload::parse(p.payload_type, &p.payload);
            }
        }
    }
}

fn collect_frames(v: &Value, out: &mut Vec<Vec<u8>>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let is_frame = k.contains("raw_hex") || k.ends_with("_hex") && !k.contains("inner");
                match v {
                    Value::String(s) if is_frame && s.len() >= 8 => {
                        if let Ok(b) = hex::decode(s) {
                            out.push(b);
                        }
                    }
                    _ => collect_frames(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_frames(v, out)),
        _ => {}
    }
}
