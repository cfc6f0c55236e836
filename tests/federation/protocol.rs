//! A real gateway against a scripted peer built from the library's own sans-IO link: the
//! gateway keeps to the window a slow peer gave it (and catches up from history once acks
//! come), ends and counts a link that sends a malformed frame, and declares a silent peer dead
//! within seconds.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use meshroom_gw::federation::frame::Features;
use meshroom_gw::federation::handshake::StaticKey;
use meshroom_gw::federation::link::{Action, Incoming, Link, LinkSettings};
use meshroom_gw::federation::rooms::LocalRoom;
use meshroom_gw::federation::secret::PeerSecret;
use tokio_tungstenite::tungstenite::Message;

use crate::federation_support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A peer driven by the test: it answers nothing on its own except what the link does.
struct ScriptedPeer {
    ws: Ws,
    link: Link,
    received: Vec<Incoming>,
    closed: bool,
}

impl ScriptedPeer {
    async fn connect(port: u16, secret: &str, window: u16) -> ScriptedPeer {
        Self::connect_as(port, secret, window, Features::ALL).await
    }

    /// A peer announcing `features`: [`Features::NONE`] plays a first-release build (empty
    /// handshake payloads).
    async fn connect_as(port: u16, secret: &str, window: u16, features: Features) -> ScriptedPeer {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/federation"))
            .await
            .expect("connect");
        let settings = LinkSettings {
            server: "scripted".into(),
            static_key: StaticKey::generate().unwrap(),
            window,
            live_queue: 64,
            hop_limit: 8,
            keepalive: Duration::from_secs(1),
            dead_after: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            features,
        };
        let link = Link::dial(
            Arc::new(settings),
            &PeerSecret::new(secret),
            vec![LocalRoom {
                name: "Public".into(),
                key: None,
            }],
            BTreeMap::new(),
            Instant::now(),
        )
        .unwrap();
        let mut peer = ScriptedPeer {
            ws,
            link,
            received: Vec::new(),
            closed: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !peer.link.is_up() && Instant::now() < deadline {
            peer.pump(Duration::from_millis(100)).await;
        }
        assert!(peer.link.is_up(), "the scripted peer's link came up");
        peer
    }

    /// Sends what the link wants sent and feeds it what arrives, for `span`.
    async fn pump(&mut self, span: Duration) {
        let until = tokio::time::Instant::now() + span;
        loop {
            while let Some(action) = self.link.poll_action() {
                match action {
                    Action::Send(m) => {
                        if self.ws.send(Message::binary(m)).await.is_err() {
                            self.closed = true;
                        }
                    }
                    Action::Deliver(d) => self.received.push(d),
                    Action::FetchHistory { room, limit, .. } => {
                        self.link.history(&room, Vec::new(), limit)
                    }
                    Action::Close(_) => self.closed = true,
                    Action::Up(_) | Action::SaveCursor { .. } | Action::Presence(_) => {}
                }
            }
            if self.closed {
                return;
            }
            self.link.tick(Instant::now());
            match tokio::time::timeout_at(until, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Binary(b)))) => self.link.on_message(&b, Instant::now()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    self.closed = true;
                    return;
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn ack_all(&mut self) {
        for d in &self.received {
            self.link.committed(d.seq);
        }
    }
}

fn gateway(secret: &str) -> (Plan, common::Gateway) {
    let plan = Plan::new("gw");
    // The gateway also dials the scripted peer's configured address, where nobody listens;
    // the scripted peer dials in instead.
    let nobody = common::free_port();
    let gw = plan.start(&config(
        "  - name: \"Public\"\n    max_history: 1000\n",
        &[peer(nobody, secret)],
    ));
    (plan, gw)
}

#[tokio::test]
async fn a_peer_that_does_not_ack_gets_no_more_than_its_window_then_catches_up() {
    let secret = "scripted-window-secret";
    let (_plan, gw) = gateway(secret);
    let mut peer = ScriptedPeer::connect(_plan.port, secret, 16).await;
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(gw.post("Public", "ana", &format!("window post {i}")));
    }
    peer.pump(Duration::from_secs(2)).await;
    assert_eq!(
        peer.received.len(),
        16,
        "no acks: exactly the window arrives"
    );
    // The stuck peer costs the gateway nothing visible: it still serves status and posts.
    assert_eq!(gw.status()["rooms"][0]["history"]["count"], 100);
    // Acks open the window again; the rest comes from history, in order, each once.
    let deadline = Instant::now() + Duration::from_secs(20);
    while peer.received.len() < ids.len() && Instant::now() < deadline {
        peer.ack_all();
        peer.pump(Duration::from_millis(200)).await;
    }
    let got: Vec<String> = peer
        .received
        .iter()
        .map(|d| d.post.id.to_string())
        .collect();
    assert_eq!(got, ids, "every post once, in the order they were made");
    assert!(peer
        .received
        .iter()
        .all(|d| d.post.hops == 1 && d.post.origin.starts_with("gw@")));
}

#[tokio::test]
async fn a_malformed_frame_ends_the_link_and_is_counted() {
    let secret = "scripted-malformed-secret";
    let (plan, gw) = gateway(secret);
    let mut peer = ScriptedPeer::connect(plan.port, secret, 16).await;
    assert!(wait_until(SETTLE, || gw.status()["peers"][0]["state"] == "connected"));
    peer.ws
        .send(Message::binary(vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01]))
        .await
        .unwrap();
    peer.pump(Duration::from_secs(3)).await;
    assert!(peer.closed, "the gateway ended the link");
    assert!(wait_until(Duration::from_secs(5), || gw.status()["peers"]
        [0]["state"]
        != "connected"));
    let p = gw.status()["peers"][0].clone();
    assert_eq!(p["malformed"], 1, "{p}");
    assert!(p["shared_rooms"].as_array().unwrap().is_empty(), "{p}");
}

#[tokio::test]
async fn a_silent_peer_is_declared_dead_within_seconds() {
    let secret = "scripted-silent-secret";
    let (plan, gw) = gateway(secret);
    let peer = ScriptedPeer::connect(plan.port, secret, 16).await;
    assert!(wait_until(SETTLE, || gw.status()["peers"][0]["state"] == "connected"));
    // The peer keeps its TCP connection open but stops reading and answering entirely.
    let silent_since = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || gw.status()["peers"][0]["state"]
            != "connected"),
        "still connected after 10 s"
    );
    let took = silent_since.elapsed();
    // dead_after_s is 2 s in these tests.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let p = gw.status()["peers"][0].clone();
    assert!(
        p["last_error"].as_str().unwrap_or("").contains("keepalive"),
        "{p}"
    );
    drop(peer);
}

#[tokio::test]
async fn a_peer_on_an_older_build_stays_linked_and_is_told_what_it_misses() {
    let secret = "scripted-older-build-secret";
    let (plan, gw) = gateway(secret);
    let mut old = ScriptedPeer::connect_as(plan.port, secret, 16, Features::NONE).await;
    assert!(wait_until(SETTLE, || gw.status()["peers"][0]["state"] == "connected"));
    let p = gw.status()["peers"][0].clone();
    assert_eq!(p["features"], serde_json::json!([]), "{p}");
    assert_eq!(
        p["missing_features"],
        serde_json::json!(["presence", "channel_posts"]),
        "{p}"
    );
    let note = p["note"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("older meshroom-gw build"), "{p}");
    assert!(note.contains("upgrade the peer"), "{p}");
    assert!(
        p["last_error"].is_null(),
        "not an error: the link works: {p}"
    );
    let log = gw.wait_for_log("older meshroom-gw build", Duration::from_secs(5));
    assert!(log.contains("WARN"), "{log}");
    // Ordinary posts flow as before.
    let id = gw.post("Public", "ana", "for every build");
    let deadline = Instant::now() + Duration::from_secs(10);
    while old.received.is_empty() && Instant::now() < deadline {
        old.pump(Duration::from_millis(200)).await;
    }
    assert_eq!(old.received.len(), 1);
    assert_eq!(old.received[0].post.id.to_string(), id);
    assert!(!old.closed);
    drop(old);

    // A peer on this build (another gateway: the first pinned the older peer's key): every
    // feature, no note.
    let (plan, gw) = gateway(secret);
    let _current = ScriptedPeer::connect(plan.port, secret, 16).await;
    assert!(wait_until(SETTLE, || {
        let p = gw.status()["peers"][0].clone();
        p["state"] == "connected" && p["missing_features"] == serde_json::json!([])
    }));
    let p = gw.status()["peers"][0].clone();
    assert_eq!(
        p["features"],
        serde_json::json!(["presence", "channel_posts"]),
        "{p}"
    );
    assert!(p["note"].is_null(), "{p}");
}
