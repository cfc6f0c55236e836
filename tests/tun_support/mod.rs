//! Network-namespace harness of the TUN tests: every test gets its own namespace (created with
//! `ip netns add`, deleted afterwards), runs the gateway in it through `ip netns exec`, and does
//! its own socket and HTTP work from a thread that has entered the namespace — so nothing a test
//! does touches the host's network.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::{free_port, Gateway};

/// True when the test may run; prints a loud SKIPPED otherwise, and fails under `CI=true`.
pub fn can_run(test: &str) -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root (network namespaces and TUN devices need it)")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun is missing")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("the `ip` tool (iproute2) is missing")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: cannot run under CI=true: {reason}");
            }
            eprintln!("\n*** SKIPPED {test}: {reason} ***\n");
            false
        }
    }
}

/// A network namespace of our own, deleted on drop.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "mrtun-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            tag
        );
        run_ip(&["netns", "add", &name]);
        run_ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `f` on a thread inside this namespace; sockets it opens live in the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open netns");
            // setns on this thread only: the test's other threads stay where they are.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// `ip -n <ns> <args>` output (the test's view of the namespace; the gateway never runs `ip`).
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        let out = Command::new("ip").args(&full).output().expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

/// Starts a gateway inside namespace `ns` (through `ip netns exec`) with config `body`; waits
/// for `/status`. Call from inside [`Netns::run`], so that the test reaches its HTTP side.
pub fn gateway_in(ns: &str, dir: &std::path::Path, body: &str) -> Gateway {
    let prefix = ["ip", "netns", "exec", ns];
    let mut gw = Gateway::configure("tun-test", dir, free_port(), body, &prefix);
    gw.spawn();
    gw
}

/// Like [`gateway_in`], and waits until the TUN side is up.
pub fn tun_gateway_in(ns: &str, dir: &std::path::Path, body: &str) -> Gateway {
    let gw = gateway_in(ns, dir, body);
    let up = wait_until(Duration::from_secs(10), || {
        gw.status()["tun"]["state"] == "up"
    });
    assert!(up, "TUN side not up: {}\n{}", gw.status()["tun"], gw.log());
    gw
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

pub fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The room's `ip` client count in `/status`.
pub fn ip_clients(gw: &Gateway, room: &str) -> u64 {
    let status = gw.status();
    status["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["name"] == room))
        .and_then(|r| r["clients"]["ip"].as_u64())
        .unwrap_or(u64::MAX)
}

/// The room's group and port as `/status` reports them.
pub fn room_group(gw: &Gateway, room: &str) -> (Ipv4Addr, u16) {
    let status = gw.status();
    let entry = status["tun"]["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["room"] == room))
        .cloned()
        .unwrap_or_else(|| panic!("room {room} not in tun status: {}", status["tun"]));
    (
        entry["group"].as_str().unwrap().parse().unwrap(),
        entry["port"].as_u64().unwrap() as u16,
    )
}

pub fn dropped(gw: &Gateway, reason: &str) -> u64 {
    gw.status()["tun"]["dropped"][reason]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// A host socket that joined the room's group on the TUN device (as `tail` does).
pub fn join(group: Ipv4Addr, port: u16) -> UdpSocket {
    let s = meshroom_gw::cli::tail::join_group(group, port, Ipv4Addr::new(10, 77, 0, 1))
        .expect("join group");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s
}

/// Receives datagrams until `limit`, returning the first one.
pub fn recv_one(s: &UdpSocket, limit: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = s.recv(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// A plain sender socket (multicast TTL 1, default interface by route: the TUN device).
pub fn sender() -> UdpSocket {
    UdpSocket::bind("0.0.0.0:0").expect("sender socket")
}
