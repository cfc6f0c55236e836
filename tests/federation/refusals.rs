//! What must not cross: a peer with the wrong secret is refused (and `/status` says so), and a
//! room with the same name but another PSK is neither shared nor named.

use crate::federation_support::*;

#[test]
fn a_peer_with_the_wrong_secret_is_refused_and_status_shows_it() {
    let (a, b) = (Plan::new("alpha"), Plan::new("bravo"));
    let rooms = "  - name: \"Public\"\n";
    let ga = a.start(&config(rooms, &[peer(b.port, "alpha-thinks-this")]));
    let gb = b.start(&config(rooms, &[peer(a.port, "bravo-thinks-that")]));
    assert!(
        wait_until(SETTLE, || {
            let pa = peer_status(&ga, b.port);
            pa["state"] == "rejected" && pa["secret_mismatches"].as_u64().unwrap_or(0) >= 1
        }),
        "alpha never saw the refusal: {}",
        peer_status(&ga, b.port)
    );
    assert!(wait_until(SETTLE, || {
        gb.status()["federation"]["unknown_key_attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    }));
    let pa = peer_status(&ga, b.port);
    assert!(
        pa["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown key id"),
        "{pa}"
    );
    assert!(pa["shared_rooms"].as_array().unwrap().is_empty());
    // Nothing flows, and no secret shows anywhere in status, metrics or logs.
    // Nothing flows: alpha posts, then tries the link again (another refusal) — had the post
    // had a way across, it would have taken it by then.
    let refused = pa["secret_mismatches"].as_u64().unwrap_or(0);
    ga.post("Public", "ana", "should stay at alpha");
    assert!(
        wait_until(SETTLE, || peer_status(&ga, b.port)["secret_mismatches"]
            .as_u64()
            .unwrap_or(0)
            > refused),
        "alpha did not try again"
    );
    assert!(texts(&gb, "Public", None).is_empty());
    let (_, metrics) = ga.get("/metrics").unwrap();
    assert!(metrics.contains("meshroom_peer_secret_mismatches_total"));
    for text in [
        ga.status().to_string(),
        gb.status().to_string(),
        metrics,
        ga.log(),
        gb.log(),
    ] {
        assert!(!text.contains("alpha-thinks-this"));
        assert!(!text.contains("bravo-thinks-that"));
    }
    assert!(gb.log().contains("unknown key id"), "refusal is logged");
    assert!(gb.log().contains("127.0.0.1:"), "with the remote address");
}

#[test]
fn same_room_name_with_another_psk_is_not_shared() {
    let (a, b) = (Plan::new("alpha"), Plan::new("bravo"));
    let secret = "pair-secret-alpha-bravo";
    let rooms_a = "  - name: \"Public\"\n  - name: \"Club\"\n    psk: \"club-psk-alpha\"\n";
    let rooms_b = "  - name: \"Public\"\n  - name: \"Club\"\n    psk: \"club-psk-bravo\"\n";
    let ga = a.start(&config(rooms_a, &[peer(b.port, secret)]));
    let gb = b.start(&config(rooms_b, &[peer(a.port, secret)]));
    assert!(wait_until(SETTLE, || connected(&ga, b.port) && connected(&gb, a.port)));
    ga.try_post("Club", "ana", "club talk at alpha", Some("club-psk-alpha"))
        .unwrap();
    gb.try_post("Club", "bob", "club talk at bravo", Some("club-psk-bravo"))
        .unwrap();
    // Markers both ways after the club posts: a club post that crossed would be there now.
    flush_links(&[&ga, &gb], "Public", None);
    assert_eq!(
        texts(&gb, "Club", Some("club-psk-bravo")),
        vec!["club talk at bravo"]
    );
    assert_eq!(
        texts(&ga, "Club", Some("club-psk-alpha")),
        vec!["club talk at alpha"]
    );
    for (g, port) in [(&ga, b.port), (&gb, a.port)] {
        let p = peer_status(g, port);
        assert_eq!(p["shared_rooms"], serde_json::json!(["Public"]), "{p}");
        assert!(p["room_proof_failures"].as_u64().unwrap() >= 1, "{p}");
    }
}
