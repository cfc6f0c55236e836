//! TUN side throughput and latency, on a real TUN device in a network namespace of its own
//! (the bench process `unshare`s one, so the host's network is never touched):
//! - host → hub: datagrams/s from a host socket to the room's group until committed as posts;
//! - hub → socket: datagrams/s from committed posts to a joined host socket, and the latency
//!   from the hub's fan-out to the socket's receive, p50/p99.
//!
//! Needs root (a TUN device); prints SKIPPED otherwise. Prints figures, asserts nothing.
//! Run: `cargo bench --bench tun_throughput` (env `TUN_BENCH_POSTS`, default 5000).

mod support;
use support::percentile;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meshroom_gw::cli::tail::join_group;
use meshroom_gw::config;
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, Via};
use meshroom_gw::side::SideContext;
use meshroom_gw::status::StatusBoard;
use meshroom_gw::store::writer::system_clock;
use meshroom_gw::tun::datagram::decode_post;

fn main() {
    let posts: usize = std::env::var("TUN_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    if unsafe { libc::geteuid() } != 0 || !std::path::Path::new("/dev/net/tun").exists() {
        println!("SKIPPED tun_throughput: needs root and /dev/net/tun");
        return;
    }
    // A fresh network namespace for this process (still single-threaded here).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        println!(
            "SKIPPED tun_throughput: unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "server:\n  name: bench\n  state_dir: \"{}\"\nradio:\n  backend: none\nrooms:\n  - name: bench\n    max_history: 100000\ntun:\n  enabled: on\n",
        dir.path().display()
    );
    let (config, _) = config::parse(&yaml, "bench.yaml").expect("bench config");
    let config = Arc::new(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let hub = Hub::open("bench", dir.path(), &config.rooms, system_clock()).expect("hub");
        let board = StatusBoard::new(hub.clone(), config.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ctx = SideContext {
            config: config.clone(),
            hub: hub.clone(),
            status: board.clone(),
            shutdown: stop_rx,
        };
        let rooms = meshroom_gw::settings::tun_rooms(&config).expect("rooms");
        let endpoint = rooms[0].clone();
        let side = meshroom_gw::tun::spawn(ctx, rooms)
            .await
            .expect("tun side")
            .expect("tun side runs");
        println!(
            "tun_throughput: {posts} posts per direction, room on {}:{}, device MTU {}",
            endpoint.group, endpoint.port, config.tun.mtu
        );

        host_to_hub(&hub, endpoint.group, endpoint.port, posts).await;
        hub_to_socket(&hub, endpoint.group, endpoint.port, posts).await;

        let status = board.status();
        println!(
            "tun counters: datagrams in {}, out {}, dropped {}",
            status["tun"]["datagrams_in"],
            status["tun"]["datagrams_out"],
            status["tun"]["dropped_total"]
        );
        let _ = stop_tx.send(true);
        let _ = side.await;
    });
}

/// A host socket sends datagrams to the group; counts until the hub has committed them. At most
/// `WINDOW` datagrams are outstanding, so the figure is a sustained rate, not a burst into
/// socket buffers.
async fn host_to_hub(hub: &Hub, group: Ipv4Addr, port: u16, posts: usize) {
    const WINDOW: usize = 256;
    let mut deliveries = hub.subscribe();
    let tx = tokio::net::UdpSocket::bind("0.0.0.0:0")
        .await
        .expect("sender");
    let started = Instant::now();
    let mut sent = 0usize;
    let mut committed = 0usize;
    let mut stalled = false;
    while committed < posts {
        while sent < posts && sent - committed < WINDOW {
            let text = format!("bench datagram {sent}");
            if tx.send_to(text.as_bytes(), (group, port)).await.is_err() {
                break;
            }
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(2), deliveries.recv()).await {
            Ok(Ok(d)) if d.via.side == AuthorKind::Ip => committed += 1,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => committed += n as usize,
            Ok(Err(_)) => break,
            Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "host -> hub : {committed}/{posts} datagrams committed as posts in {:.2?} = {:.0} datagrams/s{}",
        elapsed,
        committed as f64 / elapsed.as_secs_f64(),
        if stalled { " (stalled: some datagrams lost)" } else { "" }
    );
}

/// Committed posts go out to a joined socket; throughput, and latency from the hub's fan-out
/// (seen by a subscriber of our own) to the socket's receive.
async fn hub_to_socket(hub: &Hub, group: Ipv4Addr, port: u16, posts: usize) {
    const SUBMITTERS: usize = 256;
    let socket = join_group(group, port, Ipv4Addr::new(10, 77, 0, 1)).expect("join");
    // A listener that expects bursts asks for a big receive buffer; with the default (~208 KiB)
    // a burst of thousands of posts overflows it while this process's two runtime threads are
    // busy committing, and the figure would measure the listener, not the gateway.
    let _ = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBuf, &(4 << 20));
    socket.set_nonblocking(true).expect("nonblocking");
    let socket = tokio::net::UdpSocket::from_std(socket).expect("tokio socket");
    // Give the kernel a moment to report the membership (not needed for delivery, but keeps
    // the figure free of first-join effects).
    tokio::time::sleep(Duration::from_millis(200)).await;

    let fanned_out: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut deliveries = hub.subscribe();
    let stamps = fanned_out.clone();
    let stamper = tokio::spawn(async move {
        while let Ok(d) = deliveries.recv().await {
            if d.via.side == AuthorKind::Local {
                stamps
                    .lock()
                    .unwrap()
                    .insert(d.post.id.to_string(), Instant::now());
            }
        }
    });
    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        let mut received = Vec::with_capacity(posts);
        while received.len() < posts {
            match tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let at = Instant::now();
                    if let Some(post) = decode_post(&buf[..n]) {
                        received.push((post.id.to_string(), at));
                    }
                }
                _ => break,
            }
        }
        received
    });

    let started = Instant::now();
    let per_task = posts / SUBMITTERS;
    let tasks: Vec<_> = (0..SUBMITTERS)
        .map(|t| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let _ = hub
                        .submit(NewPost {
                            id: None,
                            room: "bench".into(),
                            author: Author {
                                kind: AuthorKind::Local,
                                id: format!("bench{t}"),
                                name: None,
                            },
                            origin: None,
                            author_ts: 0,
                            text: format!("bench post {t}/{i}"),
                            hops: 0,
                            via: Via::side(AuthorKind::Local),
                        })
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let expected = per_task * SUBMITTERS;
    let received = receiver.await.unwrap_or_default();
    let elapsed = received
        .last()
        .map(|(_, at)| at.duration_since(started))
        .unwrap_or_else(|| started.elapsed());
    stamper.abort();
    let stamps = fanned_out.lock().unwrap();
    let mut latencies: Vec<Duration> = received
        .iter()
        .filter_map(|(id, at)| stamps.get(id).map(|s| at.saturating_duration_since(*s)))
        .collect();
    latencies.sort();
    println!(
        "hub -> socket: {}/{expected} posts received in {:.2?} = {:.0} datagrams/s ({SUBMITTERS} submitters)",
        received.len(),
        elapsed,
        received.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "hub -> socket latency (fan-out to socket receive): p50 {:.1?}  p99 {:.1?}  max {:.1?}  (n={})",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        latencies.len()
    );
}
