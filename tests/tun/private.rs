//! A private room on the TUN device: the host sees that traffic exists and nothing of what it
//! says, and nobody without the PSK can post into it.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use crate::tun_support::*;
use meshroom_gw::tun::datagram::decode_post;
use meshroom_gw::tun::seal::SealKey;

const PSK: &str = "s3cret-club";
const ROOMS: &str = "rooms:\n  - name: \"club\"\n    psk: \"s3cret-club\"\ntun:\n  enabled: on\n";

/// A packet socket on the device: sees every packet the device carries, both ways.
fn capture(device: &str) -> OwnedFd {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, i32::from(proto)) };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let index = nix::net::if_::if_nametoindex(device).expect("device index");
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "bind packet socket: {}",
        std::io::Error::last_os_error()
    );
    fd
}

/// Everything captured so far.
fn drain(fd: &OwnedFd) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            return out;
        }
        out.push(buf[..n as usize].to_vec());
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn private_room_traffic_is_sealed_and_cannot_be_injected() {
    if !can_run("private_room_traffic_is_sealed_and_cannot_be_injected") {
        return;
    }
    let ns = Netns::new("private");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        let (group, port) = room_group(&gw, "club");
        let listener = join(group, port);
        let cap = capture("meshroom0");

        let secret = "the vault code is 4711";
        gw.try_post("club", "alice", secret, Some(PSK))
            .expect("post with the PSK");
        let sealed = recv_one(&listener, Duration::from_secs(3)).expect("a datagram for the room");
        assert!(
            !contains(&sealed, secret.as_bytes()),
            "plaintext reached the host socket"
        );
        assert_eq!(&sealed[..4], b"MRS1", "documented seal magic");
        // Wait for the capture to hold the room's datagram (IP and UDP headers around it).
        let mut packets = Vec::new();
        let seen = wait_until(Duration::from_secs(3), || {
            packets.extend(drain(&cap));
            packets.iter().any(|p| p.len() >= 28 + sealed.len())
        });
        assert!(
            seen,
            "the capture saw the room's datagram ({} packets)",
            packets.len()
        );
        for p in &packets {
            assert!(
                !contains(p, secret.as_bytes()),
                "plaintext in a capture of the device"
            );
            assert!(
                !contains(p, b"vault"),
                "plaintext in a capture of the device"
            );
            assert!(
                !contains(p, b"alice"),
                "author name in a capture of the device"
            );
        }
        // With the PSK the datagram opens to the documented JSON.
        let key = SealKey::derive(PSK, "club");
        let post = decode_post(&key.open(&sealed).expect("opens with the PSK")).unwrap();
        assert_eq!(post.text, secret);

        // Injection without the PSK changes nothing and is counted.
        let before = gw.history_with_psk("club", 100, Some(PSK)).len();
        let tx = sender();
        tx.send_to(b"unsealed words", (group, port)).unwrap();
        let wrong = SealKey::derive("guess", "club").seal_random(b"forged words");
        tx.send_to(&wrong, (group, port)).unwrap();
        assert!(
            wait_until(Duration::from_secs(2), || dropped(&gw, "unsealed") == 1
                && dropped(&gw, "bad_seal") == 1),
            "drops not counted: {}",
            gw.status()["tun"]
        );
        assert_eq!(
            gw.history_with_psk("club", 100, Some(PSK)).len(),
            before,
            "nothing was posted"
        );

        // A correctly sealed datagram posts.
        let right = key.seal_random(br#"{"text":"sealed hello","name":"dora"}"#);
        tx.send_to(&right, (group, port)).unwrap();
        assert!(wait_until(Duration::from_secs(3), || {
            gw.history_with_psk("club", 100, Some(PSK)).len() == before + 1
        }));
        let post = gw.history_with_psk("club", 100, Some(PSK)).pop().unwrap();
        assert_eq!(post["text"], "sealed hello");
        assert_eq!(post["author"]["name"], "dora");
        assert_eq!(post["author"]["kind"], "ip");
        // The posting socket is on 10.77.0.1, the kernel's address on the device.
        assert!(post["author"]["id"]
            .as_str()
            .unwrap()
            .starts_with(&Ipv4Addr::new(10, 77, 0, 1).to_string()));
    });
}

#[test]
fn a_psk_changed_by_sighup_reseals_the_room() {
    if !can_run("a_psk_changed_by_sighup_reseals_the_room") {
        return;
    }
    let ns = Netns::new("rekey");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        let (group, port) = room_group(&gw, "club");
        let listener = join(group, port);
        let tx = sender();
        let old = SealKey::derive(PSK, "club");
        let new = SealKey::derive("n3w-club-key", "club");

        let config = std::fs::read_to_string(&gw.config_path).unwrap();
        std::fs::write(&gw.config_path, config.replace(PSK, "n3w-club-key")).unwrap();
        gw.sighup();
        // The reload's log line is the marker that the hub published the new rooms; the side
        // follows them at once (no polling), so one probe sealed with the new PSK is enough.
        gw.wait_for_log("SIGHUP: reloaded", Duration::from_secs(10));
        tx.send_to(&new.seal_random(b"probe"), (group, port))
            .unwrap();
        assert!(
            wait_until(Duration::from_secs(3), || {
                !gw.history_with_psk("club", 100, Some("n3w-club-key"))
                    .is_empty()
            }),
            "the new PSK's seal was not accepted: {}",
            gw.status()["tun"]
        );
        let bad_before = dropped(&gw, "bad_seal");
        tx.send_to(&old.seal_random(b"old key words"), (group, port))
            .unwrap();
        assert!(wait_until(Duration::from_secs(2), || dropped(
            &gw, "bad_seal"
        ) == bad_before + 1));

        while recv_one(&listener, Duration::from_millis(100)).is_some() {}
        gw.try_post("club", "alice", "after the rekey", Some("n3w-club-key"))
            .expect("post with the new PSK");
        let sealed = recv_one(&listener, Duration::from_secs(3)).expect("room datagram");
        assert!(old.open(&sealed).is_err(), "still sealed with the old PSK");
        let post = decode_post(&new.open(&sealed).expect("opens with the new PSK")).unwrap();
        assert_eq!(post.text, "after the rekey");
    });
}
