//! `/events` against a real gateway: private rooms only with their PSK, the allow-list, the
//! subscriber cap, and load — 200 idle subscribers and one that never reads leave the hub's
//! commit rate as it was (both printed), the stalled one is dropped, and memory stays bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{http, Gateway};

const ROOMS: &str = "rooms:\n  - name: \"Public\"\n  - name: \"Quiet\"\n  - name: \"Club\"\n    psk: \"club-secret\"\n";
/// What the gateway allows at most (src/http/events.rs).
const MAX_SUBSCRIBERS: usize = 256;

/// An open `/events` response: status and what was read so far.
struct Sse {
    stream: TcpStream,
    status: u16,
    seen: String,
}

impl Sse {
    /// Connects and reads until the headers (and, on 200, the `ready` event) are in.
    fn open(addr: &str, path: &str, headers: &[(&str, &str)], rcvbuf: Option<usize>) -> Sse {
        let stream = TcpStream::connect(addr).expect("connect");
        if let Some(size) = rcvbuf {
            nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::RcvBuf, &size)
                .expect("SO_RCVBUF");
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        (&stream).write_all(req.as_bytes()).expect("send");
        let mut sse = Sse {
            stream,
            status: 0,
            seen: String::new(),
        };
        sse.read_until(|s| {
            s.contains("\r\n\r\n") && (!s.starts_with("HTTP/1.1 200") || s.contains("event:ready"))
        });
        sse.status = sse
            .seen
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        sse
    }

    /// Reads until `done(all read so far)` or the read timeout; returns whether it held.
    fn read_until(&mut self, done: impl Fn(&str) -> bool) -> bool {
        let mut buf = [0u8; 65536];
        while !done(&self.seen) {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        true
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Posts `n` posts of `size` bytes from `threads` loopback clients; returns posts per second.
fn commit_rate(gw: &Gateway, n: usize, size: usize, threads: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let addr = gw.addr();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (next, addr) = (next.clone(), addr.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let text = format!("{i:06} {}", "x".repeat(size));
                let (code, body) =
                    http("POST", &addr, "/rooms/Public/posts", &[], &text).expect("post request");
                assert_eq!(code, 201, "{body}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("poster");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn private_rooms_need_their_psk_and_public_streams_leave_them_out() {
    let gw = Gateway::start("events-psk", ROOMS);
    let addr = gw.addr();
    assert_eq!(Sse::open(&addr, "/events?room=Club", &[], None).status, 403);
    assert_eq!(
        Sse::open(&addr, "/events?room=Club&psk=wrong", &[], None).status,
        403
    );
    assert_eq!(
        Sse::open(&addr, "/events?room=Nowhere", &[], None).status,
        404
    );
    let mut all = Sse::open(&addr, "/events", &[], None);
    let mut club = Sse::open(
        &addr,
        "/events?room=Club",
        &[("X-Room-Psk", "club-secret")],
        None,
    );
    let mut club_q = Sse::open(&addr, "/events?room=Club&psk=club-secret", &[], None);
    assert_eq!((all.status, club.status, club_q.status), (200, 200, 200));
    gw.try_post("Club", "ana", "private words", Some("club-secret"))
        .expect("post");
    gw.post("Public", "ana", "public words");
    assert!(
        all.read_until(|s| s.contains("public words")),
        "{}",
        all.seen
    );
    assert!(!all.seen.contains("private words"), "{}", all.seen);
    assert!(club.read_until(|s| s.contains("private words")));
    assert!(club_q.read_until(|s| s.contains("private words")));
    assert!(club.seen.contains("event:post") && !club.seen.contains("public words"));
}

#[test]
fn the_page_and_the_stream_respect_the_allow_list() {
    let dir = tempfile::tempdir().expect("dir");
    let mut gw = Gateway::configure(
        "events-deny",
        dir.path(),
        crate::common::free_port(),
        ROOMS,
        &[],
    );
    let yaml = std::fs::read_to_string(&gw.config_path)
        .expect("config")
        .replace("http:\n", "http:\n  status_allow: [\"192.0.2.0/24\"]\n");
    std::fs::write(&gw.config_path, yaml).expect("config");
    gw.child = Some(
        std::process::Command::new(crate::common::BIN)
            .args(["run", "--config"])
            .arg(&gw.config_path)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let mut answer = None;
    for _ in 0..400 {
        if let Ok(a) = gw.get("/") {
            answer = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answer.expect("gateway answers").0, 403);
    assert_eq!(Sse::open(&gw.addr(), "/events", &[], None).status, 403);
    assert_ne!(gw.get("/assets/app.js").expect("get").0, 200);
}

#[test]
fn idle_subscribers_and_a_stalled_one_cost_the_hub_nothing() {
    // 200 subscribers from this one address: more than the listener lets one address hold by
    // default (the per-address cap is for strangers; this test is about /events' own bounds).
    let body = format!("http:\n  max_connections_per_address: 512\n{ROOMS}");
    let gw = Gateway::start("events-load", &body);
    let (n, size, threads) = (500, 4000, 4);
    // The machine is shared: each figure is the best of three rounds.
    let best = |gw: &Gateway| {
        let rounds: Vec<f64> = (0..3).map(|_| commit_rate(gw, n, size, threads)).collect();
        println!(
            "events: rounds {rounds:.0?} posts/s; /status events: {}",
            gw.status()["events"]
        );
        rounds.into_iter().fold(0.0, f64::max)
    };
    // Warm up past the room's max_history (1000), so that both measured phases pay for
    // trimming alike; then the baseline.
    commit_rate(&gw, 1100, size, threads);
    let rss_before = rss_kib(gw.pid());
    let without = best(&gw);

    // 200 idle subscribers (a room nobody posts to) and one that never reads the busy stream,
    // with a tiny receive buffer so its stall shows quickly.
    let idle: Vec<Sse> = (0..200)
        .map(|_| Sse::open(&gw.addr(), "/events?room=Quiet", &[], None))
        .collect();
    assert!(idle.iter().all(|s| s.status == 200));
    let with_idle = best(&gw);
    let stalled = Sse::open(&gw.addr(), "/events", &[], Some(4096));
    assert_eq!(stalled.status, 200);
    assert_eq!(gw.status()["events"]["subscribers"], 201);

    let with = best(&gw);
    let rss_after = rss_kib(gw.pid());
    let events = gw.status()["events"].clone();
    println!(
        "events: hub commit rate {without:.0} posts/s without subscribers, {with_idle:.0} posts/s with 200 idle ({:.0}%), {with:.0} posts/s with 200 idle + 1 that never reads ({:.0}%); best of 3 rounds of {n} posts of {size} bytes",
        100.0 * with_idle / without,
        100.0 * with / without
    );
    println!(
        "events: gateway RSS {} KiB before, {} KiB after ({:+} KiB); /status events: {events}",
        rss_before,
        rss_after,
        rss_after as i64 - rss_before as i64
    );
    assert_eq!(
        events["dropped_slow"], 1,
        "the stalled reader is dropped: {events}"
    );
    assert_eq!(events["subscribers"], 200, "{events}");
    // Bounded: the stalled client held at most its queue (256 events of ~4 KiB) before it
    // was dropped; 200 idle ones hold a task and a small queue each.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );

    // The cap: slots up to the limit, then 503.
    let mut more = Vec::new();
    loop {
        let s = Sse::open(&gw.addr(), "/events?room=Quiet", &[], None);
        if s.status != 200 {
            assert_eq!(s.status, 503, "{}", s.seen);
            break;
        }
        more.push(s);
        assert!(more.len() <= MAX_SUBSCRIBERS, "no cap");
    }
    assert_eq!(more.len() + idle.len(), MAX_SUBSCRIBERS);
    drop(stalled);
}

#[test]
fn open_streams_end_when_the_gateway_stops() {
    let mut gw = Gateway::start("events-stop", ROOMS);
    let mut streams: Vec<Sse> = (0..3)
        .map(|_| Sse::open(&gw.addr(), "/events", &[], None))
        .collect();
    assert!(streams.iter().all(|s| s.status == 200));
    let (status, took) = gw.terminate().expect("terminated");
    println!(
        "events: stopped in {} ms with 3 streams open",
        took.as_millis()
    );
    assert!(status.success(), "{status:?}");
    for s in &mut streams {
        // The server ended the stream (chunked terminator) rather than leaving it hanging.
        let ended = s.read_until(|seen| seen.ends_with("0\r\n\r\n"));
        assert!(ended, "{}", s.seen);
    }
    let log = gw.log();
    assert!(!log.contains("panicked"), "{log}");
}
