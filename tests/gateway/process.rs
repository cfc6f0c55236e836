//! Whole gateway processes: `/status` and `/metrics`, the network allow-list, the `status`
//! table, clean shutdown on SIGTERM, and no acknowledged post lost to SIGKILL.

use crate::common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::Gateway;

const ROOMS: &str = "rooms:\n  - name: \"Town Square\"\n    description: \"everyone\"\n    max_history: 100000\n  - name: Ops\n    psk: \"opspass\"\n    max_history: 50\n";

#[test]
fn status_and_metrics_describe_rooms_and_posts() {
    let gw = Gateway::start("alpha", ROOMS);
    gw.post("Town Square", "carol", "first");
    gw.try_post("Ops", "dave", "secret plans", Some("opspass"))
        .unwrap();
    let s = gw.status();
    assert_eq!(s["server"]["name"], "alpha");
    let rooms = s["rooms"].as_array().unwrap();
    let town = rooms.iter().find(|r| r["name"] == "Town Square").unwrap();
    assert_eq!(town["private"], false);
    assert_eq!(town["description"], "everyone");
    assert_eq!(town["history"]["count"], 1);
    assert_eq!(town["history"]["max"], 100000);
    assert_eq!(town["posts_in"]["local"], 1);
    assert!(town["last_post_at"].as_u64().unwrap() > 1_700_000_000);
    for key in ["total", "radio", "ip"] {
        assert!(town["clients"][key].is_u64(), "clients.{key} in {town}");
    }
    let ops = rooms.iter().find(|r| r["name"] == "Ops").unwrap();
    assert_eq!(ops["private"], true);
    assert!(s["peers"].is_array() && s["radio"].is_object() && s["tun"].is_object());
    let body = s.to_string();
    assert!(!body.contains("opspass"), "a PSK appears in /status");

    let (code, metrics) = gw.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("meshroom_room_posts_in_total{room=\"Town Square\",side=\"local\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("meshroom_room_history_posts{room=\"Ops\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("opspass"));
    assert!(!gw.log().contains("opspass"), "a PSK appears in the log");
}

#[test]
fn private_rooms_need_their_psk_and_posting_is_loopback_only() {
    let gw = Gateway::start("beta", ROOMS);
    let err = gw.try_post("Ops", "eve", "let me in", None).unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    let err = gw
        .try_post("Ops", "eve", "let me in", Some("guess"))
        .unwrap_err();
    assert!(err.starts_with("403"), "{err}");
    let err = gw.try_post("Nowhere", "eve", "hi", None).unwrap_err();
    assert!(err.starts_with("404"), "{err}");
    assert_eq!(gw.status()["rooms"][1]["history"]["count"], 0);
}

#[test]
fn status_is_refused_to_networks_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::configure("gamma", dir.path(), common::free_port(), ROOMS, &[]);
    // Only a far-away network may read status: loopback is refused.
    let yaml = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace("http:\n", "http:\n  status_allow: [\"192.0.2.0/24\"]\n");
    std::fs::write(&gw.config_path, yaml).unwrap();
    let child = Command::new(common::BIN)
        .args(["run", "--config"])
        .arg(&gw.config_path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    gw.child = Some(child);
    let mut answer = (0, String::new());
    common::wait_until(Duration::from_secs(10), || match gw.get("/status") {
        Ok(a) => {
            answer = a;
            true
        }
        Err(_) => false,
    });
    assert_eq!(answer.0, 403, "{}", answer.1);
    assert_eq!(gw.get("/metrics").unwrap().0, 403);
    // Posting from this host still works: it is not a status read.
    assert!(gw.try_post("Town Square", "x", "still here", None).is_ok());
}

#[test]
fn status_command_prints_the_table() {
    let gw = Gateway::start(
        "delta",
        &format!(
            "{ROOMS}peers:\n  - host: \"127.0.0.1\"\n    port: 9\n    secret: \"pairsecret\"\n"
        ),
    );
    gw.post("Town Square", "carol", "hello");
    let out = Command::new(common::BIN)
        .args(["status", "--url", &gw.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let town = table
        .lines()
        .find(|l| l.starts_with("Town Square"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        town.contains("public") && town.contains("1/100000"),
        "{town}"
    );
    let ops = table.lines().find(|l| l.starts_with("Ops")).unwrap();
    assert!(
        ops.contains("private") && ops.contains("0/50") && ops.trim_end().ends_with('-'),
        "{ops}"
    );
    assert!(table.contains("127.0.0.1:9"), "peers are listed:\n{table}");
    assert!(!table.contains("pairsecret"));

    let json = Command::new(common::BIN)
        .args(["status", "--json", "--url", &gw.url()])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["server"]["name"], "delta");

    // The post subcommand reaches the same gateway, PSK taken from the config file.
    let out = Command::new(common::BIN)
        .args(["post", "--config"])
        .arg(&gw.config_path)
        .args(["--room", "Ops", "--author", "cli", "from the command line"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops = gw.history_with_psk("Ops", 10, Some("opspass"));
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0]["text"], "from the command line");
    assert_eq!(ops[0]["author"]["name"], "cli");
    let http = Command::new(common::BIN)
        .args(["status", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(http.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&http.stderr).contains("is the gateway running"));
}

#[test]
fn sigterm_stops_cleanly_within_two_seconds() {
    let mut gw = Gateway::start("epsilon", ROOMS);
    gw.post("Town Square", "carol", "before stop");
    let (status, took) = gw.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    gw.spawn();
    assert_eq!(gw.history("Town Square", 10).len(), 1);
}

#[test]
fn sigkill_in_a_burst_loses_no_acknowledged_post() {
    let mut gw = Gateway::start("zeta", ROOMS);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let addr = gw.addr();
            let acked = acked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let body =
                        serde_json::json!({"text": format!("w{w} post {i}"), "author": "burst"})
                            .to_string();
                    match common::http(
                        "POST",
                        &addr,
                        "/rooms/Town%20Square/posts",
                        &[("Content-Type", "application/json")],
                        &body,
                    ) {
                        Ok((201, resp)) => {
                            let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
                            acked
                                .lock()
                                .unwrap()
                                .push(v["id"].as_str().unwrap().to_string());
                        }
                        _ => break,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    assert!(
        common::wait_until(Duration::from_secs(60), || acked.lock().unwrap().len()
            >= 300),
        "the writers did not get 300 posts acknowledged"
    );
    gw.kill9();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    gw.spawn();
    let stored: std::collections::HashSet<String> = gw
        .history("Town Square", 10_000)
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged posts lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    assert!(acked.len() >= 300);
}

#[test]
fn sighup_reloads_rooms_without_a_restart() {
    let gw = Gateway::start("eta", ROOMS);
    let pid = gw.pid();
    let yaml = std::fs::read_to_string(&gw.config_path).unwrap();
    let changed = yaml
        .replace(
            "description: \"everyone\"",
            "description: \"everyone, reloaded\"",
        )
        .replace("max_history: 50", "max_history: 60")
        + "  - name: Newcomer\n";
    std::fs::write(&gw.config_path, changed).unwrap();
    gw.sighup();
    let mut s = gw.status();
    let reloaded = common::wait_until(Duration::from_secs(20), || {
        s = gw.status();
        s["rooms"][0]["description"] == "everyone, reloaded"
    });
    assert!(reloaded, "SIGHUP did not reload:\n{}", gw.log());
    assert_eq!(s["rooms"][1]["history"]["max"], 60);
    assert_eq!(
        s["rooms"].as_array().unwrap().len(),
        2,
        "a new room needs a restart"
    );
    assert_eq!(gw.pid(), pid);
    // The log line follows the status change by a moment: wait for it rather than race it.
    let log = gw.wait_for_log("need a restart", Duration::from_secs(10));
    assert!(log.contains("Newcomer") && log.contains("restart"), "{log}");
}
