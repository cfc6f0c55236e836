//! Three real gateways on loopback: a chain A–B–C and a triangle A–B–C–A. Every post reaches
//! every server exactly once, and nobody gets its own posts back.

use crate::federation_support::*;

const ROOMS: &str = "  - name: \"Public\"\n  - name: \"Ops\"\n    psk: \"ops-psk-shared\"\n";

#[test]
fn chain_relays_both_ways_exactly_once() {
    let (a, b, c) = (Plan::new("alpha"), Plan::new("bravo"), Plan::new("charlie"));
    let ab = "secret-alpha-bravo";
    let bc = "secret-bravo-charlie";
    let ga = a.start(&config(ROOMS, &[peer(b.port, ab)]));
    let gb = b.start(&config(ROOMS, &[peer(a.port, ab), peer(c.port, bc)]));
    let gc = c.start(&config(ROOMS, &[peer(b.port, bc)]));
    assert!(
        wait_until(SETTLE, || connected(&ga, b.port)
            && connected(&gc, b.port)
            && connected(&gb, a.port)
            && connected(&gb, c.port)),
        "links did not come up:\n{}\n{}",
        ga.log(),
        gb.log()
    );

    let from_a = ga.post("Public", "ana", "hello from alpha");
    let from_c = gc.post("Public", "carl", "hello from charlie");
    let private_a = ga
        .try_post("Ops", "ana", "ops note from alpha", Some("ops-psk-shared"))
        .expect("post to Ops");
    assert!(wait_until(SETTLE, || {
        id_counts(&gc, "Public", None).contains_key(&from_a)
            && id_counts(&ga, "Public", None).contains_key(&from_c)
            && id_counts(&gc, "Ops", Some("ops-psk-shared")).contains_key(&private_a)
    }));
    // A stray duplicate would have arrived before the flush markers.
    let marks = flush_links(&[&ga, &gb, &gc], "Public", None);
    for gw in [&ga, &gb, &gc] {
        let counts = id_counts_without(gw, "Public", None, &marks);
        assert_eq!(
            counts.get(&from_a),
            Some(&1),
            "{} has alpha's post once",
            gw.name
        );
        assert_eq!(
            counts.get(&from_c),
            Some(&1),
            "{} has charlie's post once",
            gw.name
        );
        assert_eq!(counts.len(), 2, "{} has nothing else", gw.name);
    }
    let at_c = gc.history("Public", 10);
    let a_post = at_c.iter().find(|p| p["id"] == from_a.as_str()).unwrap();
    // The origin names the server by its static key: `alpha@<hex key>`.
    assert!(
        a_post["origin"].as_str().unwrap().starts_with("alpha@"),
        "{a_post}"
    );
    assert_eq!(a_post["hops"], 2, "alpha → bravo → charlie is two hops");
    assert_eq!(a_post["text"], "hello from alpha");
    // The relay shows both peers with the rooms they share and the traffic.
    // The round-trip time comes with the first keepalive answered (every 0.5 s here).
    assert!(wait_until(SETTLE, || peer_status(&gb, a.port)["rtt_ms"].is_number()));
    let b_to_a = peer_status(&gb, a.port);
    assert_eq!(b_to_a["shared_rooms"], serde_json::json!(["Ops", "Public"]));
    assert!(b_to_a["posts_in"].as_u64().unwrap() >= 2);
    assert!(b_to_a["rtt_ms"].is_number(), "{b_to_a}");
    assert!(peer_status(&gb, c.port)["posts_out"].as_u64().unwrap() >= 2);
}

#[test]
fn triangle_converges_exactly_once_without_echo() {
    let (a, b, c) = (Plan::new("alpha"), Plan::new("bravo"), Plan::new("charlie"));
    let (ab, bc, ca) = ("tri-ab-secret", "tri-bc-secret", "tri-ca-secret");
    let ga = a.start(&config(ROOMS, &[peer(b.port, ab), peer(c.port, ca)]));
    let gb = b.start(&config(ROOMS, &[peer(a.port, ab), peer(c.port, bc)]));
    let gc = c.start(&config(ROOMS, &[peer(b.port, bc), peer(a.port, ca)]));
    let all = [(&ga, &b, &c), (&gb, &a, &c), (&gc, &a, &b)];
    assert!(wait_until(SETTLE, || all
        .iter()
        .all(|(g, x, y)| connected(g, x.port) && connected(g, y.port))));

    let mut ids = Vec::new();
    for i in 0..10 {
        for gw in [&ga, &gb, &gc] {
            ids.push(gw.post("Public", &gw.name, &format!("{} says {i}", gw.name)));
        }
    }
    assert!(
        wait_until(SETTLE, || [&ga, &gb, &gc].iter().all(|g| id_counts(
            g, "Public", None
        )
        .len()
            == ids.len())),
        "not converged"
    );
    let marks = flush_links(&[&ga, &gb, &gc], "Public", None);
    for gw in [&ga, &gb, &gc] {
        let counts = id_counts_without(gw, "Public", None, &marks);
        for id in &ids {
            assert_eq!(counts.get(id), Some(&1), "{} has {id} once", gw.name);
        }
        assert_eq!(counts.len(), ids.len());
        for p in gw.status()["peers"].as_array().unwrap() {
            assert_eq!(p["echoes_in"], 0, "{} got its own post back: {p}", gw.name);
        }
    }
    // Each pair keeps exactly one link although both sides dial: the two ends agree on
    // which one (one calls it outbound, the other inbound).
    for (g1, p1, g2, p2) in [(&ga, &a, &gb, &b), (&gb, &b, &gc, &c), (&gc, &c, &ga, &a)] {
        let one = peer_status(g1, p2.port);
        let other = peer_status(g2, p1.port);
        assert_eq!(one["state"], "connected");
        assert_eq!(other["state"], "connected");
        let dirs = [one["direction"].as_str(), other["direction"].as_str()];
        assert!(
            dirs == [Some("outbound"), Some("inbound")]
                || dirs == [Some("inbound"), Some("outbound")],
            "{} and {} disagree on their link: {dirs:?}",
            g1.name,
            g2.name
        );
    }
}
