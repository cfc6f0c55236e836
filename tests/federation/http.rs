//! The federation endpoint on the shared HTTP listener: reachable from any address while
//! `/status` and `/metrics` stay limited to the allowed networks, and repeated failed
//! handshakes with unknown key ids from one address are refused as rate limited and counted.

use crate::common::{self, InProcess};

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use futures_util::{SinkExt, StreamExt};
use meshroom_gw::config::{Config, PeerConfig, Psk};
use meshroom_gw::http::{self, HttpState};
use tokio_tungstenite::tungstenite::Message;

use crate::federation_support::*;

#[tokio::test]
async fn federation_answers_any_address_but_status_stays_private() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default();
    config.server.state_dir = dir.path().to_path_buf();
    config.peers = vec![PeerConfig {
        host: "127.0.0.1".into(),
        port: common::free_port(),
        secret: Psk::new("http-test-secret"),
        key: None,
    }];
    let gw = InProcess::with_config(config);
    let fed = meshroom_gw::federation::spawn(&gw.ctx).unwrap();
    let routes = http::routes(
        HttpState {
            hub: gw.hub.clone(),
            board: gw.board.clone(),
            status_allow: Arc::new(RwLock::new(gw.config.http.status_allow.clone())),
            shutdown: gw.ctx.shutdown.clone(),
        },
        fed,
    );
    let outsider: SocketAddr = "203.0.113.5:40000".parse().unwrap();
    for path in ["/status", "/metrics"] {
        let resp = warp::test::request()
            .path(path)
            .remote_addr(outsider)
            .reply(&routes)
            .await;
        assert_eq!(resp.status(), 403, "{path} from outside");
    }
    let resp = warp::test::request()
        .path("/federation")
        .remote_addr(outsider)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .reply(&routes)
        .await;
    assert_eq!(resp.status(), 101, "the federation upgrade from outside");
    let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let resp = warp::test::request()
        .path("/status")
        .remote_addr(local)
        .reply(&routes)
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn repeated_unknown_key_ids_are_refused_then_rate_limited() {
    let plan = Plan::new("guarded");
    let secret_port = common::free_port();
    let gw = plan.start(&config(
        "  - name: \"Public\"\n",
        &[peer(secret_port, "guarded-secret")],
    ));
    let url = format!("ws://127.0.0.1:{}/federation", plan.port);
    // A syntactically valid first message whose key id nobody configured.
    let mut hello = b"MRGWFED\0\x01".to_vec();
    hello.extend_from_slice(&[0x5a; 16]);
    hello.extend_from_slice(&[0u8; 48]);
    for attempt in 0..5 {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt} connects: {e}"));
        ws.send(Message::binary(hello.clone())).await.unwrap();
        let reason = loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => {
                    break frame.map(|f| f.reason.to_string()).unwrap_or_default()
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        };
        assert_eq!(reason, "unknown key id");
    }
    // Over the limit, an unknown key id is closed as rate limited (after its key id was read:
    // a configured peer's key id from the same address is still tried).
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the sixth attempt connects");
    ws.send(Message::binary(hello.clone())).await.unwrap();
    let reason = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => {
                break frame.map(|f| f.reason.to_string()).unwrap_or_default()
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    assert_eq!(reason, "rate limited");
    let fed = gw.status()["federation"].clone();
    assert_eq!(fed["unknown_key_attempts"], 5, "{fed}");
    assert!(fed["rate_limited"].as_u64().unwrap() >= 1, "{fed}");
    assert!(fed["last_unknown_from"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    let log = gw.log();
    assert!(log.contains("unknown key id") && log.contains("127.0.0.1:"));
}
