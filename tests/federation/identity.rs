//! Servers are known by their Noise static key, not their name: two servers both called
//! `raspberrypi` federate and exchange posts both ways; a peer that comes back with another
//! static key is refused (pinned on first use) and `/status` says `key_changed`.

use crate::federation_support::*;

const SECRET: &str = "identity-pair-secret";
const ROOMS: &str = "  - name: \"Public\"\n";

#[test]
fn two_servers_with_one_name_exchange_posts_and_a_changed_key_is_refused() {
    let a = Plan::new("raspberrypi");
    let b = Plan::new("raspberrypi");
    let gw_a = a.start(&config(ROOMS, &[peer(b.port, SECRET)]));
    let mut gw_b = b.start(&config(ROOMS, &[peer(a.port, SECRET)]));
    assert!(
        wait_until(SETTLE, || connected(&gw_a, b.port)
            && connected(&gw_b, a.port)),
        "no link:\n{}\n{}",
        gw_a.log(),
        gw_b.log()
    );
    gw_a.post("Public", "ann", "from a");
    gw_b.post("Public", "bob", "from b");
    for gw in [&gw_a, &gw_b] {
        assert!(
            wait_until(SETTLE, || {
                let t = texts(gw, "Public", None);
                t.contains(&"from a".to_string()) && t.contains(&"from b".to_string())
            }),
            "posts did not cross: {:?}",
            texts(gw, "Public", None)
        );
    }
    assert_eq!(peer_status(&gw_a, b.port)["echoes_in"], 0);
    // Origins name the server by key.
    let hist = gw_b.history("Public", 10);
    let from_a = hist.iter().find(|p| p["text"] == "from a").unwrap();
    let key_a = gw_a.status()["federation"]["static_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(from_a["origin"], format!("raspberrypi@{key_a}"));

    // B loses its key (a new install under the same address): A refuses it.
    gw_b.terminate();
    std::fs::remove_file(b.path().join("state").join("federation.key")).unwrap();
    gw_b.spawn();
    assert!(
        wait_until(SETTLE, || peer_status(&gw_a, b.port)["state"]
            == "key_changed"),
        "A did not refuse the changed key: {}\n{}",
        peer_status(&gw_a, b.port),
        gw_a.log()
    );
    let log = gw_a.log();
    assert!(log.contains("static key changed"), "{log}");
    assert!(peer_status(&gw_a, b.port)["last_error"]
        .as_str()
        .unwrap()
        .contains("set peers[].key"));
}
