//! A federation link recorded byte for byte by a TCP proxy between two gateways: the posts
//! arrive, and the capture holds none of their text, the private room's name, or any secret.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::federation_support::*;

/// Forwards every connection on a fresh loopback port to `target`, recording both directions.
fn recording_proxy(target: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let capture = Arc::new(Mutex::new(Vec::new()));
    let cap = capture.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let cap = cap.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    loop {
                        match from.read(&mut buf) {
                            Ok(0) | Err(_) => {
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            Ok(n) => {
                                cap.lock().unwrap().extend_from_slice(&buf[..n]);
                                if to.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        }
    });
    (port, capture)
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn the_wire_carries_no_plaintext_of_posts_rooms_or_secrets() {
    let (a, b) = (Plan::new("alpha"), Plan::new("bravo"));
    let (proxy_port, capture) = recording_proxy(b.port);
    let secret = "capture-pair-secret-0815";
    let rooms = "  - name: \"Public\"\n  - name: \"Hideout\"\n    psk: \"hideout-psk-4711\"\n";
    // Alpha reaches bravo only through the proxy. Bravo knows alpha's secret but dials a port
    // where nobody listens, so the only link is the recorded one.
    let ga = a.start(&config(rooms, &[peer(proxy_port, secret)]));
    let nobody = common::free_port();
    let gb = b.start(&config(rooms, &[peer(nobody, secret)]));
    assert!(wait_until(SETTLE, || connected(&ga, proxy_port)));

    let public_text = "the eagle lands at noon";
    let private_text = "meet behind the old mill";
    let id1 = ga.post("Public", "ana", public_text);
    let id2 = ga
        .try_post("Hideout", "ana", private_text, Some("hideout-psk-4711"))
        .unwrap();
    let back = gb.post("Public", "bob", "a reply travelling the other way");
    assert!(wait_until(SETTLE, || {
        id_counts(&gb, "Public", None).contains_key(&id1)
            && id_counts(&gb, "Hideout", Some("hideout-psk-4711")).contains_key(&id2)
            && id_counts(&ga, "Public", None).contains_key(&back)
    }));
    // Markers both ways: everything sent before them is in the capture.
    flush_links(&[&ga, &gb], "Public", None);
    let bytes = capture.lock().unwrap().clone();
    assert!(
        contains(&bytes, "GET /federation"),
        "the capture is the federation link"
    );
    assert!(
        bytes.len() > 500,
        "the capture holds the traffic ({} bytes)",
        bytes.len()
    );
    for needle in [
        public_text,
        private_text,
        "a reply travelling",
        "Hideout",
        "Public",
        "hideout-psk-4711",
        secret,
        "alpha",
        "bravo",
    ] {
        assert!(
            !contains(&bytes, needle),
            "`{needle}` crossed the wire in plaintext"
        );
    }
    // Post ids travel inside the tunnel too.
    assert!(!contains(&bytes, &id1));
    let raw_id = hex::decode(&id1).unwrap();
    assert!(!bytes.windows(16).any(|w| w == raw_id.as_slice()));
}
