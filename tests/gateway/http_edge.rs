//! HTTP statuses as HTTP means them, on a real listener served by `http::serve`: 413 for big
//! bodies, chunked bodies accepted (bounded), 405 + Allow for wrong methods, HEAD answered,
//! 400 for bad queries, 404 only for unknown paths, JSON content types in any case, a JSON
//! reason on every refusal — and the CLI printing that reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use meshroom_gw::config::Config;
use meshroom_gw::http::{self, HttpState};
use meshroom_gw::hub::Hub;
use meshroom_gw::status::StatusBoard;
use meshroom_gw::store::writer::system_clock;
use serde_json::Value;

struct Server {
    addr: SocketAddr,
    room: String,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default();
    config.server.state_dir = dir.path().to_path_buf();
    let config = Arc::new(config);
    let hub = Hub::open("edge", dir.path(), &config.rooms, system_clock()).unwrap();
    let room = hub.rooms()[0].name.clone();
    let board = StatusBoard::new(hub.clone(), config.clone());
    let allow = Arc::new(RwLock::new(config.http.status_allow.clone()));
    let routes = http::routes(
        HttpState {
            hub,
            board,
            status_allow: allow.clone(),
            shutdown: tokio::sync::watch::channel(false).1,
        },
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let edge = http::Edge::new(&config, allow);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(http::serve(listener, routes, edge, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    Server {
        addr,
        room,
        _stop: stop_tx,
        _dir: dir,
    }
}

/// Status, lower-cased head and body of one raw exchange (the connection closes after it).
fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before a big body is all written.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(i) = find(&out, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&out[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    let head_only = head.contains("head ") || request.starts_with(b"HEAD ");
                    if head_only || len.is_some_and(|l| out.len() >= i + 4 + l) {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let i = text.find("\r\n\r\n").unwrap_or(text.len());
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.get(i + 4..).unwrap_or("").to_string();
    (status, text[..i].to_ascii_lowercase(), body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {body}"))
        .to_string()
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_their_proper_status_and_a_json_reason() {
    let srv = start().await;
    let addr = srv.addr;
    let posts = format!("/rooms/{}/posts", srv.room);
    let posts2 = posts.clone();
    tokio::task::spawn_blocking(move || {
        let posts = posts2;
        // Too large: 17 KB and 10 MB, with a Content-Length.
        for size in [17 * 1024, 10 * 1024 * 1024] {
            let body = vec![b'a'; size];
            let len = size.to_string();
            let (status, _, body) = raw(
                addr,
                &request(
                    "POST",
                    &posts,
                    &[("content-type", "text/plain"), ("content-length", &len)],
                    &body,
                ),
            );
            assert_eq!(status, 413, "{size} bytes");
            assert!(reason(&body).contains("at most 16384 bytes"), "{body}");
        }
        // Chunked: accepted when small…
        let (status, _, body) = raw(
            addr,
            &request(
                "POST",
                &posts,
                &[
                    ("content-type", "text/plain"),
                    ("transfer-encoding", "chunked"),
                ],
                b"5\r\nhello\r\n6\r\n chunk\r\n0\r\n\r\n",
            ),
        );
        assert_eq!(status, 201, "chunked post: {body}");
        // …and 413 when it grows past the limit.
        let mut big = Vec::new();
        for _ in 0..20 {
            big.extend_from_slice(b"400\r\n");
            big.extend_from_slice(&[b'x'; 0x400]);
            big.extend_from_slice(b"\r\n");
        }
        big.extend_from_slice(b"0\r\n\r\n");
        let (status, _, body) = raw(
            addr,
            &request("POST", &posts, &[("transfer-encoding", "chunked")], &big),
        );
        assert_eq!(status, 413, "big chunked post");
        reason(&body);
        // Content types in any case, with parameters, are JSON.
        let json = br#"{"text":"typed","author":"ann"}"#;
        let len = json.len().to_string();
        let (status, _, body) = raw(
            addr,
            &request(
                "POST",
                &posts,
                &[
                    ("content-type", "Application/JSON; charset=utf-8"),
                    ("content-length", &len),
                ],
                json,
            ),
        );
        assert_eq!(status, 201, "{body}");
        // Wrong methods on known paths: 405 with Allow.
        for (method, path, allow) in [
            ("PUT", "/status", "get, head"),
            ("DELETE", "/status", "get, head"),
            ("POST", "/metrics", "get, head"),
            ("DELETE", posts.as_str(), "get, head, post"),
        ] {
            let (status, head, body) = raw(
                addr,
                &request(method, path, &[("content-length", "0")], b""),
            );
            assert_eq!(status, 405, "{method} {path}");
            assert!(head.contains(&format!("allow: {allow}")), "{head}");
            reason(&body);
        }
        // HEAD /status: the headers, no body.
        let (status, head, body) = raw(addr, &request("HEAD", "/status", &[], b""));
        assert_eq!(status, 200);
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(body.is_empty(), "HEAD answered a body: {body:?}");
        // Bad queries: 400.
        for q in ["limit=abc", "limit=-1", "limit=0", "after=x"] {
            let (status, _, body) = raw(addr, &request("GET", &format!("{posts}?{q}"), &[], b""));
            assert_eq!(status, 400, "?{q}");
            assert!(reason(&body).contains(q.split('=').next().unwrap()));
        }
        let (status, _, body) = raw(addr, &request("GET", &format!("{posts}?limit=2"), &[], b""));
        assert_eq!(status, 200, "{body}");
        let texts: Vec<Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(texts.len(), 2);
        // 404 only for unknown paths (and unknown rooms).
        let (status, _, body) = raw(addr, &request("GET", "/nope", &[], b""));
        assert_eq!(status, 404);
        assert_eq!(reason(&body), "no such endpoint");
        let (status, _, body) = raw(addr, &request("GET", "/rooms/nope/posts", &[], b""));
        assert_eq!(status, 404);
        assert!(reason(&body).contains("no room named"));
    })
    .await
    .unwrap();

    // The CLI prints the server's reason.
    let long = "x".repeat(20_000);
    let err = meshroom_gw::cli::post::post(
        srv.room.clone(),
        None,
        Some(format!("http://{addr}")),
        long,
        None,
        10.0,
    )
    .await
    .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("failed (413): a post is at most 16384 bytes"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_clients_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default();
    config.server.state_dir = dir.path().to_path_buf();
    config.http.header_timeout_s = 0.5;
    let config = Arc::new(config);
    let hub = Hub::open("edge", dir.path(), &config.rooms, system_clock()).unwrap();
    let board = StatusBoard::new(hub.clone(), config.clone());
    let allow = Arc::new(RwLock::new(config.http.status_allow.clone()));
    let routes = http::routes(
        HttpState {
            hub,
            board,
            status_allow: allow.clone(),
            shutdown: tokio::sync::watch::channel(false).1,
        },
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let edge = http::Edge::new(&config, allow);
    tokio::spawn(http::serve(
        listener,
        routes,
        edge.clone(),
        std::future::pending(),
    ));
    tokio::task::spawn_blocking(move || {
        // Nothing sent, half a header sent: both closed by the server (read gives EOF).
        for sent in [&b""[..], b"GET /status HTTP/1.1\r\nHost: x\r\n"] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(sent).unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf);
            assert!(n.is_ok(), "expected the server to close, got {n:?}");
        }
    })
    .await
    .unwrap();
    // Every slot is free again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while edge.open() != (0, 0) {
        assert!(std::time::Instant::now() < deadline, "slots still held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_gives_up_on_a_silent_server() {
    // Accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let url = format!("http://{addr}");
    let err = meshroom_gw::cli::status::status(Some(url.clone()), false, None, 0.5)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("did not answer within 0.5 s"),
        "{err:#}"
    );
    let err =
        meshroom_gw::cli::post::post("Public".into(), None, Some(url), "hi".into(), None, 0.5)
            .await
            .unwrap_err();
    assert!(
        format!("{err:#}").contains("did not answer within 0.5 s"),
        "{err:#}"
    );
}

#[test]
fn a_missing_config_file_is_an_error_not_a_fallback() {
    for args in [
        &["status", "--config", "/missing/meshroom.yaml"][..],
        &[
            "post",
            "--room",
            "Public",
            "--config",
            "/missing/meshroom.yaml",
            "hi",
        ][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshroom-gw"))
            .args(args)
            .env_remove("MESHROOM_CONFIG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains("/missing/meshroom.yaml"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn the_state_directory_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = Config::embedded_default();
    let hub = Hub::open("edge", &state, &config.rooms, system_clock()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("meshroom.db")), 0o600);
    drop(hub);
}
