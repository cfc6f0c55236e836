//! `meshroom-gw check-config`: the seed config loads as written, and every broken config gives
//! one line a person can act on (file:line:column, key path, what is wrong) and exit status 2.

use crate::common;

use std::process::Command;

const SEED: &str = r#"rooms:
  - name: "RegionMesh-Public"
    psk: ""
    description: "Public community channel for the region"
    max_history: 1000
  - name: "EmergencyNet"
    psk: "secretkeyhere"
    description: "For emergency coordinators only"
    max_history: 500
  - name: "ClubNet"
    psk: "clubsecretkey"
    description: "For club members"
    max_history: 200
peers:
  - host: "room-server-portland.example.com"
    port: 7070
    secret: "shared-peer-secret"
"#;

fn check(yaml: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn seed_config_loads_as_written() {
    let (code, stdout, stderr) = check(SEED);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("3 rooms, 1 peer)"), "{stdout}");
    // No secret ever appears in what check-config prints.
    for secret in ["secretkeyhere", "clubsecretkey", "shared-peer-secret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
}

#[test]
fn shipped_template_loads() {
    let out = Command::new(common::BIN)
        .arg("configfile")
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, _, stderr) = check(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn warnings_do_not_fail_the_check() {
    let yaml = "rooms:\n  - name: A\n    psk: \"a-very-long-password-of-20\"\npeers:\n  - host: a\n    secret: s1\n  - host: b\n    secret: s1\n";
    let (code, _, stderr) = check(yaml);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("rooms[0].psk") && stderr.contains("15 bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("peers[1].secret") && stderr.contains("same secret"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("a-very-long-password-of-20"),
        "a PSK leaked: {stderr}"
    );
}

/// (config, line, key path, words the message must contain)
const BROKEN: &[(&str, usize, &str, &str)] = &[
    (
        "rooms:\n  - name: A\n    max_histroy: 5\n",
        3,
        "rooms[0].max_histroy",
        "did you mean `max_history`",
    ),
    (
        "rooms:\n  - name: A\nhttpp:\n  listen: \"127.0.0.1:1\"\n",
        3,
        "httpp",
        "did you mean `http`",
    ),
    (
        "rooms:\n  - name: A\n  - name: a\n",
        3,
        "rooms[1].name",
        "already defined",
    ),
    (
        "rooms:\n  - name: \"\"\n",
        2,
        "rooms[0].name",
        "needs a name",
    ),
    (
        "rooms:\n  - name: \"ThisRoomNameIsWayTooLongForAnAdvert\"\n",
        2,
        "rooms[0].name",
        "31 bytes",
    ),
    (
        "rooms:\n  - name: A\n    max_history: 0\n",
        3,
        "rooms[0].max_history",
        "from 1 to 1,000,000",
    ),
    (
        "rooms:\n  - name: A\n    max_history: 99999999\n",
        3,
        "rooms[0].max_history",
        "from 1 to 1,000,000",
    ),
    (
        "rooms:\n  - name: A\n    max_history: lots\n",
        3,
        "rooms[0].max_history",
        "",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - host: h\n    port: 70000\n    secret: s\n",
        5,
        "peers[0].port",
        "",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - host: h\n    port: 0\n    secret: s\n",
        5,
        "peers[0].port",
        "from 1 to 65535, found `0`",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - host: h\n    secret: \"\"\n",
        5,
        "peers[0].secret",
        "needs a shared secret",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - host: h\n    secret: a\n  - host: h\n    secret: b\n",
        6,
        "peers[1].host",
        "already listed",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - port: 7070\n    secret: s\n",
        4,
        "peers[0]",
        "`host` is missing",
    ),
    ("rooms: []\n", 1, "rooms", "at least one room"),
    ("server:\n  name: x\n", 1, "", "`rooms` is missing"),
    (
        "rooms:\n  - name: A\nhttp:\n  listen: \"not-an-address\"\n",
        4,
        "http.listen",
        "",
    ),
    (
        "rooms:\n  - name: A\nhttp:\n  status_allow: [\"10.0.0.0/33\"]\n",
        4,
        "http.status_allow",
        "",
    ),
    (
        "rooms:\n  - name: A\n    psk: \"CHANGE-ME\"\n",
        3,
        "rooms[0].psk",
        "placeholder",
    ),
    (
        "rooms:\n  - name: A\npeers:\n  - host: h\n    secret: \"CHANGE-ME\"\n",
        5,
        "peers[0].secret",
        "placeholder",
    ),
    (
        "rooms:\n  - name: A\nradio:\n  backend: lora9000\n",
        4,
        "radio.backend",
        "",
    ),
    (
        "rooms:\n  - name: A\n    port: 0\n",
        3,
        "rooms[0].port",
        "from 1 to 65535, found `0`",
    ),
    ("rooms:\n  - name: A\n   bad indent: [\n", 3, "", ""),
    (
        "rooms:\n  - name: A\nradio:\n  backend: sx126x\n  board: nosuchhat\n",
        5,
        "radio.board",
        "nosuchhat",
    ),
];

#[test]
fn broken_configs_name_file_line_and_key_and_exit_2() {
    assert!(BROKEN.len() >= 15);
    let mut failures = Vec::new();
    for (yaml, line, key, words) in BROKEN {
        let (code, _stdout, stderr) = check(yaml);
        let first = stderr.lines().next().unwrap_or_default().to_string();
        let located = format!("gw.yaml:{line}:");
        let ok = code == 2
            && stderr.lines().count() == 1
            && first.contains(&located)
            && first.contains(key)
            && first.contains(words);
        if !ok {
            failures.push(format!(
                "config:\n{yaml}\nexpected exit 2 and one line with `{located}`, `{key}`, `{words}`; got exit {code}:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(common::BIN)
        .args(["check-config", "--config", "/nonexistent/meshroom.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/meshroom.yaml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}
