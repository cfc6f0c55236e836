//! Federation relay: three servers A–B–C in one process, each with its own hub and SQLite store
//! (durable, group commit), linked by the real federation over loopback WebSockets + Noise.
//!
//! Prints, in one run:
//! 0. posts/s relayed A→B→C from a backlog: A holds the posts before B and C start; timed from
//!    their start until C has committed the last one (the relay alone);
//! 1. posts/s relayed A→B→C live: posts submitted at A as fast as A commits them, timed until
//!    the last one is committed at C (bounded by A's own ingest);
//! 2. p50/p99 latency per hop (commit at A → commit at B → commit at C) at a fixed rate;
//! 3. the raw `snow` transport rate for messages of the same size (one post per Noise
//!    message, encrypt + decrypt on this machine) — the limit the relay is compared with.
//!
//! Run: `cargo bench --bench federation_relay` (env `RELAY_POSTS`, `RELAY_RATE`,
//! `RELAY_LATENCY_POSTS`, `RELAY_TEXT_BYTES`, `RELAY_WINDOW` to vary). Asserts nothing.

mod support;
use support::{env_usize, percentile};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use meshroom_gw::config::{Config, PeerConfig, Psk, RoomConfig};
use meshroom_gw::federation::frame::{Batch, Frame, WirePost};
use meshroom_gw::federation::handshake::NOISE_PATTERN;
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, PostId, Via};
use meshroom_gw::side::SideContext;
use meshroom_gw::status::StatusBoard;
use meshroom_gw::store::writer::system_clock;
use tokio::sync::watch;

const ROOM: &str = "bench";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Commit times per post id, as seen by one server's fan-out.
type Seen = Arc<Mutex<HashMap<PostId, Instant>>>;

struct Server {
    hub: Hub,
    seen: Seen,
    _dir: tempfile::TempDir,
}

async fn start_server(
    name: &str,
    listener: tokio::net::TcpListener,
    peers: Vec<PeerConfig>,
    stop: watch::Receiver<bool>,
) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::embedded_default();
    config.server.name = name.to_string();
    config.server.state_dir = dir.path().to_path_buf();
    config.rooms = vec![RoomConfig {
        name: ROOM.to_string(),
        psk: Psk::new("bench-room-psk"),
        description: String::new(),
        max_history: 1_000_000,
        group: None,
        port: None,
        ..RoomConfig::default()
    }];
    config.peers = peers;
    config.federation.window = env_usize("RELAY_WINDOW", usize::from(config.federation.window))
        .clamp(1, usize::from(u16::MAX)) as u16;
    let config = Arc::new(config);
    let hub = Hub::open(name, dir.path(), &config.rooms, system_clock()).expect("hub");
    let ctx = SideContext {
        config: config.clone(),
        hub: hub.clone(),
        status: StatusBoard::new(hub.clone(), config.clone()),
        shutdown: stop.clone(),
    };
    let route = meshroom_gw::federation::spawn(&ctx)
        .expect("federation")
        .expect("peers configured");
    let mut http_stop = stop.clone();
    let edge = meshroom_gw::http::Edge::new(
        &config,
        Arc::new(std::sync::RwLock::new(config.http.status_allow.clone())),
    );
    tokio::spawn(meshroom_gw::http::serve(
        listener,
        route,
        edge,
        async move {
            let _ = http_stop.wait_for(|s| *s).await;
        },
    ));
    let seen: Seen = Arc::default();
    let mut deliveries = hub.subscribe();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            match deliveries.recv().await {
                Ok(d) => {
                    s.lock().unwrap().insert(d.post.id, Instant::now());
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            }
        }
    });
    Server {
        hub,
        seen,
        _dir: dir,
    }
}

fn peer(port: u16, secret: &str) -> PeerConfig {
    PeerConfig {
        host: "127.0.0.1".into(),
        port,
        secret: Psk::new(secret),
        key: None,
    }
}

fn new_post(text: &str) -> NewPost {
    NewPost {
        id: Some(PostId::fresh()),
        room: ROOM.to_string(),
        author: Author {
            kind: AuthorKind::Local,
            id: "bench".into(),
            name: Some("bench".into()),
        },
        origin: None,
        author_ts: 1_700_000_000,
        text: text.to_string(),
        hops: 0,
        via: Via::side(AuthorKind::Local),
    }
}

async fn wait_for(seen: &Seen, ids: &[PostId], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let s = seen.lock().unwrap();
            if ids.iter().all(|id| s.contains_key(id)) {
                return true;
            }
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Encrypt + decrypt of `size`-byte messages over an established XXpsk3 session.
fn raw_snow_rate(size: usize, seconds: f64) -> f64 {
    let psk = [7u8; 32];
    let params: snow::params::NoiseParams = NOISE_PATTERN.parse().unwrap();
    let ki = snow::Builder::new(params.clone())
        .generate_keypair()
        .unwrap();
    let kr = snow::Builder::new(params.clone())
        .generate_keypair()
        .unwrap();
    let mut i = snow::Builder::new(params.clone())
        .local_private_key(&ki.private)
        .psk(3, &psk)
        .build_initiator()
        .unwrap();
    let mut r = snow::Builder::new(params)
        .local_private_key(&kr.private)
        .psk(3, &psk)
        .build_responder()
        .unwrap();
    let (mut buf, mut out) = (vec![0u8; 65535], vec![0u8; 65535]);
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    let n = r.write_message(&[], &mut buf).unwrap();
    i.read_message(&buf[..n], &mut out).unwrap();
    let n = i.write_message(&[], &mut buf).unwrap();
    r.read_message(&buf[..n], &mut out).unwrap();
    let mut i = i.into_transport_mode().unwrap();
    let mut r = r.into_transport_mode().unwrap();
    let plain = vec![0x42u8; size];
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..1000 {
            let n = i.write_message(&plain, &mut buf).unwrap();
            let m = r.read_message(&buf[..n], &mut out).unwrap();
            std::hint::black_box(m);
        }
        count += 1000;
    }
    count as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let posts = env_usize("RELAY_POSTS", 20_000);
    let rate = env_usize("RELAY_RATE", 200);
    let latency_posts = env_usize("RELAY_LATENCY_POSTS", 1_000);
    let text_bytes = env_usize("RELAY_TEXT_BYTES", 100);
    let text: String = "x".repeat(text_bytes);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let (stop_tx, stop) = watch::channel(false);
        let la = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lb = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (pa, pb, pc) = (
            la.local_addr().unwrap().port(),
            lb.local_addr().unwrap().port(),
            lc.local_addr().unwrap().port(),
        );
        let a = start_server("A", la, vec![peer(pb, "bench-ab")], stop.clone()).await;

        // 0. Backlog relay: A holds posts before B and C exist; B and C start, catch up from
        //    A's history through B, and we time until C has committed them all. This is the
        //    relay alone, not bounded by how fast A ingests.
        let backlog: Vec<PostId> = (0..posts).map(|_| PostId::fresh()).collect();
        {
            let mut in_flight = FuturesUnordered::new();
            for id in &backlog {
                let mut p = new_post(&text);
                p.id = Some(*id);
                let hub = a.hub.clone();
                in_flight.push(async move { hub.submit(p).await });
                if in_flight.len() >= 256 {
                    let _ = in_flight.next().await;
                }
            }
            while in_flight.next().await.is_some() {}
        }
        let backlog_start = Instant::now();
        let b = start_server(
            "B",
            lb,
            vec![peer(pa, "bench-ab"), peer(pc, "bench-bc")],
            stop.clone(),
        )
        .await;
        let c = start_server("C", lc, vec![peer(pb, "bench-bc")], stop.clone()).await;
        let backlog_ok = wait_for(&c.seen, &backlog, Duration::from_secs(300)).await;
        let backlog_time = backlog_start.elapsed();
        let backlog_rate = backlog.len() as f64 / backlog_time.as_secs_f64();

        // Links up: a probe post crosses the chain.
        let probe = new_post("probe");
        let probe_id = probe.id.unwrap();
        a.hub.submit(probe).await.expect("probe");
        if !wait_for(&c.seen, &[probe_id], Duration::from_secs(30)).await {
            eprintln!("the chain did not come up");
            return;
        }

        // 1. Throughput: submit at A with many in flight (A's group commit), until C has all.
        let ids: Vec<PostId> = (0..posts).map(|_| PostId::fresh()).collect();
        let start = Instant::now();
        let mut in_flight = FuturesUnordered::new();
        for id in &ids {
            let mut p = new_post(&text);
            p.id = Some(*id);
            let hub = a.hub.clone();
            in_flight.push(async move { hub.submit(p).await });
            if in_flight.len() >= 256 {
                let _ = in_flight.next().await;
            }
        }
        while in_flight.next().await.is_some() {}
        let at_a = start.elapsed();
        let ok = wait_for(&c.seen, &ids, Duration::from_secs(300)).await;
        let at_c = start.elapsed();
        let relayed = ids.len() as f64 / at_c.as_secs_f64();

        // 2. Latency per hop at a fixed rate, one post at a time.
        let mut hop1 = Vec::new();
        let mut hop2 = Vec::new();
        let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
        let mut next = tokio::time::Instant::now();
        let mut lat_ids = Vec::new();
        let mut committed_at_a = HashMap::new();
        for _ in 0..latency_posts {
            tokio::time::sleep_until(next).await;
            next += period;
            let p = new_post(&text);
            let id = p.id.unwrap();
            let hub = a.hub.clone();
            // Submitted from its own task so a slow commit does not push the schedule.
            let t = tokio::spawn(async move {
                let _ = hub.submit(p).await;
                Instant::now()
            });
            lat_ids.push((id, t));
        }
        for (id, t) in lat_ids.drain(..) {
            if let Ok(at) = t.await {
                committed_at_a.insert(id, at);
            }
        }
        let all: Vec<PostId> = committed_at_a.keys().copied().collect();
        let lat_ok = wait_for(&c.seen, &all, Duration::from_secs(60)).await;
        {
            let sb = b.seen.lock().unwrap();
            let sc = c.seen.lock().unwrap();
            for (id, ta) in &committed_at_a {
                if let (Some(tb), Some(tc)) = (sb.get(id), sc.get(id)) {
                    hop1.push(tb.saturating_duration_since(*ta));
                    hop2.push(tc.saturating_duration_since(*tb));
                }
            }
        }
        hop1.sort();
        hop2.sort();

        // 3. The limit: raw snow at the size of one relayed post's frame.
        let frame = Frame::Post(WirePost {
            room: ROOM.into(),
            id: PostId::fresh(),
            origin: "A".into(),
            author: Author {
                kind: AuthorKind::Local,
                id: "bench".into(),
                name: Some("bench".into()),
            },
            author_ts: 1_700_000_000,
            hops: 1,
            text: text.clone(),
        });
        let frame_bytes = Batch::encoded_len(&frame);
        let raw = raw_snow_rate(frame_bytes, 2.0);

        println!("federation relay benchmark ({} CPUs)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
        println!(
            "  post text {text_bytes} B, post frame {frame_bytes} B, room private, 3 SQLite stores (WAL, group commit), window {}",
            env_usize("RELAY_WINDOW", 1024)
        );
        println!(
            "  backlog relay A→B→C (B, C start with {posts} posts waiting at A): {:.2} s = {backlog_rate:.0} posts/s{}",
            backlog_time.as_secs_f64(),
            if backlog_ok { "" } else { " [INCOMPLETE: not all arrived]" },
        );
        println!(
            "  live relay A→B→C: {posts} posts in {:.2} s = {relayed:.0} posts/s{} (A alone committed them in {:.2} s = {:.0} posts/s)",
            at_c.as_secs_f64(),
            if ok { "" } else { " [INCOMPLETE: not all arrived]" },
            at_a.as_secs_f64(),
            posts as f64 / at_a.as_secs_f64(),
        );
        println!(
            "  latency at {rate} posts/s over {} posts{}: hop A→B p50 {:.2} ms p99 {:.2} ms; hop B→C p50 {:.2} ms p99 {:.2} ms",
            hop1.len(),
            if lat_ok { "" } else { " [INCOMPLETE]" },
            ms(percentile(&hop1, 0.5)),
            ms(percentile(&hop1, 0.99)),
            ms(percentile(&hop2, 0.5)),
            ms(percentile(&hop2, 0.99)),
        );
        println!(
            "  raw snow {NOISE_PATTERN} transport, {frame_bytes} B messages (encrypt+decrypt, one core): {raw:.0} msgs/s"
        );
        println!(
            "  relay / raw = {:.1}% backlog, {:.1}% live (goal ≥ 20%)",
            100.0 * backlog_rate / raw,
            100.0 * relayed / raw
        );
        let _ = stop_tx.send(true);
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
}
