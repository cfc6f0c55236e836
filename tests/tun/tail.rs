//! `meshroom-gw tail --room NAME`: joins the room's group like any host program (so it counts as
//! an `ip` client) and prints the room's posts, opening a private room's seal with the PSK from
//! the configuration.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::tun_support::*;
use serde_json::Value;

const ROOMS: &str = "rooms:\n  - name: \"general\"\n  - name: \"club\"\n    psk: \"s3cret-club\"\ntun:\n  enabled: on\n";

#[test]
fn tail_prints_public_and_private_posts() {
    if !can_run("tail_prints_public_and_private_posts") {
        return;
    }
    let ns = Netns::new("tail");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        for (room, psk) in [("general", None), ("club", Some("s3cret-club"))] {
            let mut tail = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &name,
                    common::BIN,
                    "tail",
                    "--json",
                    "--room",
                    room,
                ])
                .arg("--config")
                .arg(&gw.config_path)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start tail");
            let stdout = tail.stdout.take().unwrap();
            let (lines_tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if lines_tx.send(line).is_err() {
                        return;
                    }
                }
            });
            assert!(
                wait_until(Duration::from_secs(3), || ip_clients(&gw, room) == 1),
                "tail shows as the room's ip client"
            );
            let text = format!("hello {room} tail");
            gw.try_post(room, "erin", &text, psk).expect("post");
            let line = lines
                .recv_timeout(Duration::from_secs(3))
                .expect("tail printed a post");
            let post: Value = serde_json::from_str(&line).expect("JSON line");
            assert_eq!(post["text"], text.as_str());
            assert_eq!(post["room"], room);
            assert_eq!(post["author"]["name"], "erin");
            let _ = tail.kill();
            let _ = tail.wait();
            assert!(wait_until(Duration::from_secs(3), || ip_clients(&gw, room) == 0));
        }
    });
}
