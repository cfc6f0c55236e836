//! Presence over federation with three real gateways (a triangle): a MeshCore client logs in at
//! C over the simulated air; A's `/status` (and `meshroom-gw status`) show it under the shared
//! room as present at C, and not under a room A does not share with C; it disappears after the
//! client falls silent and leaves C's room.

use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::{Gateway, BIN};
use crate::federation_support::*;
use serde_json::Value;

fn room<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["rooms"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or(&Value::Null)
}

/// What `gw` says is present at `server` in `room` (Null when nothing).
fn remote_at(gw: &Gateway, room_name: &str, server: &str) -> Value {
    room(&gw.status(), room_name)["clients"]["remote"][server].clone()
}

fn client_login(gw: &Gateway, air: &std::path::Path, name: &str, room: &str, password: &str) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&gw.config_path)
        .args(["client", "--air"])
        .arg(air)
        .args(["--name", name, "--state"])
        .arg(gw.dir.join(format!("client-{name}")))
        .args([
            "login",
            "--room",
            room,
            "--password",
            password,
            "--timeout",
            "30",
        ])
        .env("MESHROOM_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run client");
    assert!(
        out.status.success(),
        "login to {room} failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        gw.log()
    );
}

#[test]
fn a_client_at_c_appears_at_a_for_shared_rooms_only_and_leaves() {
    let air = tempfile::tempdir().expect("air dir");
    let (a, b, c) = (Plan::new("alpha"), Plan::new("bravo"), Plan::new("charlie"));
    let (ab, bc, ca) = ("secret-ab", "secret-bc", "secret-ca");
    // Club's PSK differs between A and C: not shared between them. B and C share it.
    let rooms_a = "  - name: \"Public\"\n  - name: \"Club\"\n    psk: \"club-at-alpha\"\n";
    let rooms_bc = "  - name: \"Public\"\n  - name: \"Club\"\n    psk: \"club-at-charlie\"\n";
    let radio_c = format!(
        "radio:\n  backend: sim\n  region: usa-canada\n  air_dir: \"{}\"\nmeshcore:\n  advert_interval_s: 4.0\n  first_advert_delay_s: 0.2\n  reply_delay_s: 0.1\n  silence_timeout_s: 4.0\n",
        air.path().display()
    );
    let ga = a.start(&config(rooms_a, &[peer(b.port, ab), peer(c.port, ca)]));
    let gb = b.start(&config(rooms_bc, &[peer(a.port, ab), peer(c.port, bc)]));
    let gc = c.start(&format!(
        "{}{radio_c}",
        config(rooms_bc, &[peer(b.port, bc), peer(a.port, ca)])
    ));
    assert!(
        wait_until(SETTLE, || connected(&ga, b.port)
            && connected(&ga, c.port)
            && connected(&gb, c.port)),
        "links did not come up:\n{}\n{}\n{}",
        ga.log(),
        gb.log(),
        gc.log()
    );

    client_login(&gc, air.path(), "Ana", "Public", "");
    let logged_in = Instant::now();
    let at_c = room(&gc.status(), "Public")["clients"]["radio"].clone();
    assert_eq!(at_c, 1, "C lists the client: {}", gc.status());

    assert!(
        wait_until(SETTLE, || remote_at(&ga, "Public", "charlie")["radio"] == 1),
        "A never showed the client at C:\n{}\n{}",
        ga.status(),
        gc.log()
    );
    println!(
        "presence: the client logged in at C appeared in A's /status {} ms after its login completed",
        logged_in.elapsed().as_millis()
    );
    let status = ga.status();
    let public = room(&status, "Public");
    assert_eq!(public["clients"]["federation_total"], 1, "{public}");
    println!(
        "presence: A shows at charlie {}",
        public["clients"]["remote"]["charlie"]
    );
    // Names, never keys: the client's public key (as C lists it) appears nowhere at A.
    let key = room(&gc.status(), "Public")["participants"][0]["id"]
        .as_str()
        .expect("C lists the client's key")
        .to_string();
    assert!(key.len() >= 16, "{key}");
    assert!(
        !status.to_string().contains(&key),
        "A knows the key: {status}"
    );

    client_login(&gc, air.path(), "Ana", "Club", "club-at-charlie");
    // A does not share Club with C: nothing of C's people there, though B (which shares it
    // with C) hears of the client.
    assert!(
        wait_until(SETTLE, || remote_at(&gb, "Club", "charlie")["radio"] == 1),
        "B never heard of the client in Club: {}",
        gb.status()
    );
    let club_at_a = room(&ga.status(), "Club")["clients"].clone();
    assert_eq!(club_at_a["remote"], serde_json::json!({}), "{club_at_a}");
    assert_eq!(club_at_a["federation_total"], 0, "{club_at_a}");

    // `meshroom-gw status` at A lists the people at C.
    let out = Command::new(BIN)
        .args(["status", "--url", &ga.url()])
        .output()
        .expect("run status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("at charlie: 1 (radio 1"), "{table}");

    // The client falls silent in Public: C drops it after its silence timeout and A follows.
    let silent = logged_in;
    assert!(
        wait_until(SETTLE, || remote_at(&ga, "Public", "charlie").is_null()),
        "the client never left A's view: {}",
        ga.status()
    );
    println!(
        "presence: gone from A's /status {} ms after the client's last word in Public (C's silence timeout is 4 s)",
        silent.elapsed().as_millis()
    );
    assert_eq!(
        room(&ga.status(), "Public")["clients"]["federation_total"],
        0
    );
    drop((ga, gb, gc));
}
