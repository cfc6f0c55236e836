//! The public edge holds under a flood: a gateway run with an open-file limit of 1,024 (soft
//! and hard, so raising it at start cannot help) while 2,000 idle connections, 500 that send
//! half a request header and 200 truncated federation handshakes — from 50 loopback addresses,
//! reopened as soon as the gateway closes them — keep coming. Meanwhile `/status` from an
//! allowed network answers every time (p99 printed), a configured peer links up, the gateway's
//! file descriptors stay bounded and its log holds only a handful of lines about it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::Gateway;
use crate::federation_support::*;
use meshroom_gw::federation::secret::PeerSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const SECRET: &str = "flood-test-pair-secret";
const ATTACKERS: u8 = 50;

fn raise_own_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((source, 0)))?;
    tokio::time::timeout(Duration::from_secs(5), s.connect(to))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

#[derive(Clone, Copy)]
enum Kind {
    Idle,
    HalfHeader,
    TruncatedHandshake,
}

/// One flooding socket, reopened whenever the gateway closes it, until `stop`.
async fn flood(
    kind: Kind,
    n: usize,
    to: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    let key_id = PeerSecret::new(SECRET).key_id();
    let source = Ipv4Addr::new(127, 0, 0, 10 + (n % usize::from(ATTACKERS)) as u8);
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut s) = connect_from(source, to).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let sent = match kind {
            Kind::Idle => Ok(()),
            Kind::HalfHeader => {
                s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .await
            }
            Kind::TruncatedHandshake => {
                let upgrade = "GET /federation HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
                let mut r = s.write_all(upgrade.as_bytes()).await;
                let mut buf = [0u8; 1024];
                if r.is_ok() {
                    r = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 && buf.starts_with(b"HTTP/1.1 101") => Ok(()),
                        _ => Err(std::io::Error::other("no upgrade")),
                    };
                }
                if r.is_ok() {
                    // A masked binary frame announcing 100 bytes, of which only the plaintext
                    // header (with the configured peer's key id) ever comes.
                    let mut header = b"MRGWFED\0".to_vec();
                    header.push(1);
                    header.extend_from_slice(&key_id.0);
                    let mut frame = vec![0x82, 0x80 | 100, 0, 0, 0, 0];
                    frame.extend_from_slice(&header);
                    r = s.write_all(&frame).await;
                }
                r
            }
        };
        if sent.is_ok() {
            // Hold it until the gateway closes it (or the test ends).
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if stop.load(Ordering::Relaxed) { return; }
                    }
                }
            }
        }
        // Back again soon after the gateway closed it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[test]
fn the_edge_holds_under_a_connection_flood() {
    raise_own_limit();
    let a = Plan::new("alpha");
    let b = Plan::new("beta");
    let rooms = "  - name: \"Public\"\n";
    // Alpha: status only from 127.0.0.1; 5 s header timeout so the flood is held for a while.
    let mut alpha = Gateway::configure(
        "alpha",
        &a.path(),
        a.port,
        &config(rooms, &[peer(b.port, SECRET)]),
        &["prlimit", "--nofile=1024:1024", "--"],
    );
    let yaml = std::fs::read_to_string(&alpha.config_path)
        .unwrap()
        .replace(
            "http:\n",
            "http:\n  status_allow: [\"127.0.0.1/32\"]\n  header_timeout_s: 5\n",
        );
    std::fs::write(&alpha.config_path, yaml).unwrap();
    alpha.spawn();
    let pid = alpha.pid();
    let to: SocketAddr = alpha.addr().parse().unwrap();
    let baseline_fds = fd_count(pid);
    let log_lines_before = alpha.log().lines().count();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (kind, count) in [
        (Kind::Idle, 2000),
        (Kind::HalfHeader, 500),
        (Kind::TruncatedHandshake, 200),
    ] {
        for n in 0..count {
            tasks.push(rt.spawn(flood(kind, n, to, stop.clone(), opened.clone())));
        }
    }
    // Let the flood build up: at least the 2,700 sockets opened once.
    assert!(
        wait_until(Duration::from_secs(60), || opened.load(Ordering::Relaxed)
            >= 2700),
        "the flood did not get going ({} opened)",
        opened.load(Ordering::Relaxed)
    );

    // /status from the allowed network answers every time.
    let mut times = Vec::new();
    let mut max_fds = 0;
    for _ in 0..200 {
        let t = Instant::now();
        let (code, body) = alpha.get("/status").expect("/status during the flood");
        times.push(t.elapsed());
        assert_eq!(code, 200, "{body}");
        max_fds = max_fds.max(fd_count(pid));
        std::thread::sleep(Duration::from_millis(10));
    }
    let status_p99 = p99(times.clone());

    // A configured peer links up while the flood goes on.
    let t = Instant::now();
    let _beta = b.start(&config(rooms, &[peer(a.port, SECRET)]));
    let linked = wait_until(Duration::from_secs(5), || connected(&alpha, b.port));
    let link_time = t.elapsed();
    max_fds = max_fds.max(fd_count(pid));
    let status = alpha.status();
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    });
    drop(rt);

    let http = &status["http"];
    let fed = &status["federation"];
    let log = alpha.log();
    let flood_lines: Vec<&str> = log
        .lines()
        .skip(log_lines_before)
        .filter(|l| !l.contains("federation link up") && !l.contains("serving room"))
        .collect();
    eprintln!(
        "flood: {} sockets opened; /status p99 {:.1} ms (max {:.1} ms) over {} requests; \
         peer linked in {:.2} s; gateway fds: {} before, at most {} during; \
         http: {}; federation: {}; {} log lines during the flood",
        opened.load(Ordering::Relaxed),
        status_p99.as_secs_f64() * 1000.0,
        times.iter().max().unwrap().as_secs_f64() * 1000.0,
        times.len(),
        link_time.as_secs_f64(),
        baseline_fds,
        max_fds,
        http,
        fed,
        flood_lines.len()
    );
    for l in &flood_lines {
        eprintln!("  log: {l}");
    }
    assert!(linked, "the peer did not link within 5 s:\n{log}");
    let cap = http["connections"]["max"].as_u64().unwrap() as usize;
    assert!(
        max_fds <= baseline_fds + cap + 16,
        "{max_fds} fds with a connection cap of {cap}"
    );
    assert!(max_fds < 1024, "{max_fds} fds: at the limit");
    assert_eq!(http["accept_errors"], 0, "accept failed: {http}");
    assert!(
        http["refused_full"].as_u64().unwrap() + http["refused_per_address"].as_u64().unwrap() > 0,
        "the caps were never reached: {http}"
    );
    assert!(
        flood_lines.len() <= 8,
        "too many log lines about the flood:\n{}",
        flood_lines.join("\n")
    );
}
