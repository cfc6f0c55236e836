//! MeshCore in the field, end to end: a real gateway on the simulated air and
//! `meshroom-gw client` processes. Rooms are found by discovery long before their first advert;
//! `client rooms` fails clearly when nothing answers; in a room anyone may read, a guest's post
//! is refused until `meshroom-gw acl` (through the running gateway) makes them a member; an admin
//! runs `get acl` and `setperm` over the air.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");

fn body(air: &Path) -> String {
    format!(
        r#"rooms:
  - name: "Public"
  - name: "Board"
    admin_password: "boss-pass"
    allow_read_only: true
  - name: "Club"
    psk: "club-secret"
radio:
  backend: sim
  region: usa-canada
  air_dir: "{}"
meshcore:
  # The first advert is 10 minutes away: only discovery can find the rooms in time.
  first_advert_delay_s: 600.0
  advert_interval_s: 600.0
  push_min_age_s: 0.0
  push_interval_s: 0.5
  reply_delay_s: 0.1
"#,
        air.display()
    )
}

struct Run {
    ok: bool,
    out: String,
}

fn client(gw: &Gateway, air: &Path, name: &str, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&gw.config_path)
        .arg("client")
        .arg("--air")
        .arg(air)
        .arg("--name")
        .arg(name)
        .arg("--state")
        .arg(gw.dir.join(format!("client-{name}")))
        .args(args)
        .env("MESHROOM_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run client");
    Run {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn acl(gw: &Gateway, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&gw.config_path)
        .arg("acl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run acl");
    Run {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The only radio participant of `room` in /status.
fn only_participant(gw: &Gateway, room: &str) -> Option<serde_json::Value> {
    let status = gw.status();
    let list = status["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["name"] == room)?["participants"]
        .as_array()?
        .clone();
    match list.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

#[test]
fn client_rooms_says_clearly_when_nothing_answers() {
    let air = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::configure(
        "no-gw",
        dir.path(),
        crate::common::free_port(),
        &body(air.path()),
        &[],
    );
    let r = client(&gw, air.path(), "lonely", &["rooms", "--listen", "3"]);
    assert!(!r.ok, "exit status 1 when no room was heard:\n{}", r.out);
    assert!(r.out.contains("0 rooms known"), "{}", r.out);
    assert!(
        r.out
            .contains("no room answered the discovery request or adverted in 3 s"),
        "{}",
        r.out
    );
}

#[test]
fn rooms_are_found_by_discovery_and_members_are_managed_locally_and_over_the_air() {
    let air = tempfile::tempdir().unwrap();
    let gw = Gateway::start("mc-field", &body(air.path()));
    // Every room answers the discovery request and adverts right after, though the
    // scheduled first advert is 10 minutes away.
    let r = client(&gw, air.path(), "bob", &["rooms", "--listen", "15"]);
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("discovery answer from"), "{}", r.out);
    for room in ["Public", "Board", "Club"] {
        assert!(
            r.out
                .lines()
                .any(|l| l.trim_start().starts_with(room) && !l.contains("not heard now")),
            "{room} found:\n{}",
            r.out
        );
    }

    // Board: anyone reads, members post. bob is a guest: his post is refused with a note.
    let r = client(
        &gw,
        air.path(),
        "bob",
        &["post", "--room", "Board", "--timeout", "25", "guest here"],
    );
    assert!(!r.ok, "{}", r.out);
    assert!(r.out.contains("logged in to Board"), "{}", r.out);
    assert!(r.out.contains("permissions 0"), "{}", r.out);
    assert!(r.out.contains("read-only"), "the room says why:\n{}", r.out);
    let bob = only_participant(&gw, "Board").expect("bob in /status");
    assert_eq!(bob["role"], "guest");
    let bob_key = bob["id"].as_str().unwrap().to_string();

    // The operator makes bob a member through the running gateway.
    let r = acl(&gw, &["Board", "set", &bob_key, "read-write"]);
    assert!(r.ok, "{}", r.out);
    assert!(
        r.out.contains(&format!("read-write {bob_key}")),
        "{}",
        r.out
    );
    let r = client(
        &gw,
        air.path(),
        "bob",
        &["post", "--room", "Board", "--timeout", "40", "member now"],
    );
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("acked by Board"), "{}", r.out);
    assert!(r.out.contains("permissions 2"), "{}", r.out);

    // The admin, over the air: `get acl`, then bob down to read-only with a key prefix.
    let r = client(
        &gw,
        air.path(),
        "admin",
        &[
            "cli",
            "--room",
            "Board",
            "--password",
            "boss-pass",
            "a1|get acl",
        ],
    );
    assert!(r.ok, "{}", r.out);
    assert!(r.out.contains("permissions 3"), "admin login:\n{}", r.out);
    assert!(r.out.contains("a1|ACL (1):"), "{}", r.out);
    assert!(
        r.out.contains(&format!("02 {}", &bob_key[..12])),
        "{}",
        r.out
    );
    let line = format!("setperm {} 1", &bob_key[..16]);
    let r = client(
        &gw,
        air.path(),
        "admin",
        &["cli", "--room", "Board", "--password", "", &line],
    );
    assert!(r.ok, "{}", r.out);
    assert!(r.out.lines().any(|l| l == "OK"), "{}", r.out);
    let r = acl(&gw, &["Board"]);
    assert!(
        r.out.contains(&format!("read-only  {bob_key}")),
        "{}",
        r.out
    );
    // Settings owned by the configuration file are refused, naming the key.
    let r = client(
        &gw,
        air.path(),
        "admin",
        &["cli", "--room", "Board", "set guest.password x"],
    );
    assert!(
        r.out
            .contains("Err - set rooms[].psk in the configuration file"),
        "{}",
        r.out
    );
    // And the list can be edited from this host only, never from elsewhere.
    let r = acl(&gw, &["Board", "remove", &bob_key[..10]]);
    assert!(
        r.ok && r.out.contains("0 ACL entries in Board"),
        "{}",
        r.out
    );
    let r = acl(&gw, &["Nowhere"]);
    assert!(
        !r.ok && r.out.contains("no room named `Nowhere`"),
        "{}",
        r.out
    );
}
