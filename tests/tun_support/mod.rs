//! TUN test helpers on top of the testkit's namespaces ([`Netns`]): every test gets its own
//! namespace, runs the gateway in it through `ip netns exec`, and does its own socket and HTTP
//! work from a thread that has entered the namespace — so nothing a test does touches the host's
//! network.
#![allow(dead_code, unused_imports)]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

pub use crate::common::{can_run_netns, wait_until, Netns};
use crate::common::{free_port, Gateway};

/// True when the test may run; prints a loud SKIPPED otherwise, and fails under `CI=true`.
pub fn can_run(test: &str) -> bool {
    can_run_netns(test)
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
