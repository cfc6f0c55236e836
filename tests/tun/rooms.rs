//! Rooms as multicast groups on a real TUN device, in a network namespace of the test's own:
//! host sockets counted as a room's `ip` clients, posts out as JSON datagrams, datagrams in as
//! posts, and nothing left behind when the gateway stops.

use crate::common;

use std::time::Duration;

use crate::tun_support::*;
use serde_json::Value;

const ROOMS: &str = "rooms:\n  - name: \"general\"\n  - name: \"ops\"\ntun:\n  enabled: on\n";

#[test]
fn joined_sockets_are_the_rooms_ip_clients() {
    if !can_run("joined_sockets_are_the_rooms_ip_clients") {
        return;
    }
    let ns = Netns::new("members");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        let (group, port) = room_group(&gw, "general");
        assert_eq!(ip_clients(&gw, "general"), 0);

        let first = join(group, port);
        assert!(
            wait_until(Duration::from_secs(2), || ip_clients(&gw, "general") == 1),
            "one joined socket must show as one ip client within 2 s: {}",
            gw.status()
        );
        assert_eq!(ip_clients(&gw, "ops"), 0, "only in its own room");

        // A group's second socket sends no IGMP: the count follows at the next query cycle
        // (`igmp_query_interval_s`, 10 s), when /proc/net/igmp is read again.
        let second = join(group, port);
        assert!(
            wait_until(Duration::from_secs(15), || ip_clients(&gw, "general") == 2),
            "two sockets count two within a query cycle: {}",
            gw.status()
        );

        drop(first);
        assert!(
            wait_until(Duration::from_secs(15), || ip_clients(&gw, "general") == 1),
            "a socket that leaves is gone within a query cycle"
        );
        drop(second);
        assert!(
            wait_until(Duration::from_secs(2), || ip_clients(&gw, "general") == 0),
            "the last socket leaving empties the room"
        );
        assert!(
            gw.status()["tun"]["igmp_in"].as_u64().unwrap() > 0,
            "IGMP reports were read"
        );
    });
}

#[test]
fn a_post_from_another_side_reaches_joined_sockets_of_its_room_only() {
    if !can_run("a_post_from_another_side_reaches_joined_sockets_of_its_room_only") {
        return;
    }
    let ns = Netns::new("out");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        let (g_general, port) = room_group(&gw, "general");
        let (g_ops, ops_port) = room_group(&gw, "ops");
        let general = join(g_general, port);
        let ops = join(g_ops, ops_port);

        let id = gw.post("general", "alice", "hello from http");
        let bytes = recv_one(&general, Duration::from_secs(3)).expect("datagram in general");
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one JSON line: {text:?}");
        let json: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(json["room"], "general");
        assert_eq!(json["id"], id);
        assert_eq!(json["text"], "hello from http");
        assert_eq!(json["author"]["kind"], "local");
        assert_eq!(json["author"]["name"], "alice");
        assert!(json["room_ts"].as_u64().unwrap() > 0);
        assert!(json["author_ts"].as_u64().unwrap() > 0);

        // No waiting to see that nothing comes: the room's own next post is the marker. Posts
        // leave the device in commit order, so had general's post reached ops, it would come
        // first.
        gw.post("ops", "bob", "ops only");
        let bytes = recv_one(&ops, Duration::from_secs(3)).expect("datagram in ops");
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["text"], "ops only", "ops must not hear general");
        gw.post("general", "alice", "general marker");
        let bytes = recv_one(&general, Duration::from_secs(3)).expect("marker in general");
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["text"], "general marker", "general must not hear ops");
        assert!(gw.status()["tun"]["datagrams_out"].as_u64().unwrap() >= 2);
    });
}

#[test]
fn a_datagram_to_the_group_becomes_a_post_by_its_sender() {
    if !can_run("a_datagram_to_the_group_becomes_a_post_by_its_sender") {
        return;
    }
    let ns = Netns::new("in");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(&name, &dir_path, ROOMS);
        let (group, port) = room_group(&gw, "general");
        let tx = sender();
        let from = tx.local_addr().unwrap().port();
        tx.send_to(b"plain hello\n", (group, port)).unwrap();
        assert!(
            wait_until(Duration::from_secs(3), || !gw
                .history("general", 10)
                .is_empty()),
            "datagram did not become a post: {}\n{}",
            gw.status()["tun"],
            gw.log()
        );
        let post = gw.history("general", 10).pop().unwrap();
        assert_eq!(post["text"], "plain hello");
        assert_eq!(post["author"]["kind"], "ip");
        assert_eq!(post["author"]["id"], format!("10.77.0.1:{from}"));
        assert!(post["author"].get("name").is_none_or(|n| n.is_null()));

        tx.send_to(
            br#"{"text":"named hello","author":{"name":"carol"}}"#,
            (group, port),
        )
        .unwrap();
        assert!(wait_until(Duration::from_secs(3), || gw
            .history("general", 10)
            .len()
            == 2));
        let post = gw.history("general", 10).pop().unwrap();
        assert_eq!(post["text"], "named hello");
        assert_eq!(post["author"]["name"], "carol");
        assert!(gw.history("ops", 10).is_empty(), "only its own room");

        // Malformed and non-UTF-8 datagrams change nothing and are counted.
        tx.send_to(&[0xff, 0xfe, 0xfd], (group, port)).unwrap();
        tx.send_to(b"{\"text\": ", (group, port)).unwrap();
        assert!(wait_until(Duration::from_secs(2), || dropped(
            &gw, "not_utf8"
        ) == 1
            && dropped(&gw, "malformed") == 1));
        assert_eq!(gw.history("general", 10).len(), 2);
        assert_eq!(gw.status()["tun"]["datagrams_in"], 2);
    });
}

#[test]
fn device_address_and_route_are_gone_after_the_gateway_stops() {
    if !can_run("device_address_and_route_are_gone_after_the_gateway_stops") {
        return;
    }
    let ns = Netns::new("cleanup");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let mut gw = ns.run(move || tun_gateway_in(&name, &dir_path, ROOMS));
    let link = ns.ip(&["link", "show", "meshroom0"]);
    assert!(link.contains("meshroom0") && link.contains("UP"), "{link}");
    assert!(ns.ip(&["-4", "addr", "show"]).contains("10.77.0.1/24"));
    assert!(ns
        .ip(&["route", "show"])
        .contains("239.77.0.0/16 dev meshroom0"));
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let off = ns.ip(&["-6", "addr", "show", "dev", "meshroom0"]);
        assert!(
            !off.contains("inet6"),
            "IPv6 must be off on the device: {off}"
        );
    }

    let (status, _) = gw.terminate().expect("gateway was running");
    assert!(status.success(), "clean exit: {status}\n{}", gw.log());
    let link = ns.ip(&["link", "show", "meshroom0"]);
    assert!(!link.contains("meshroom0:"), "device still there: {link}");
    assert!(!ns.ip(&["-4", "addr", "show"]).contains("10.77.0.1"));
    assert!(!ns.ip(&["route", "show"]).contains("239.77"));
    assert!(
        gw.log().contains("device, address and route removed"),
        "{}",
        gw.log()
    );
}

#[test]
fn ipv6_stays_off_on_the_device_when_proc_sys_is_read_only() {
    // Under systemd's ProtectKernelTunables=yes (our unit) /proc/sys is read-only, so the
    // disable_ipv6 sysctl cannot be written; the device must still carry no IPv6.
    if !can_run("ipv6_stays_off_on_the_device_when_proc_sys_is_read_only") {
        return;
    }
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("\n*** SKIPPED ipv6_stays_off…: this kernel has no IPv6 ***\n");
        return;
    }
    let ns = Netns::new("ro-sysctl");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().to_path_buf();
    let gw = ns.run(move || {
        let script = "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys \
                      && exec \"$0\" \"$@\"";
        let prefix = [
            "ip", "netns", "exec", &name, "unshare", "--mount", "--", "sh", "-c", script,
        ];
        let mut gw =
            common::Gateway::configure("tun-ro", &dir_path, common::free_port(), ROOMS, &prefix);
        gw.spawn();
        assert!(
            wait_until(Duration::from_secs(10), || gw.status()["tun"]["state"]
                == "up"),
            "{}",
            gw.log()
        );
        assert_eq!(
            gw.status()["tun"]["ipv6_disabled"],
            true,
            "{}",
            gw.status()["tun"]
        );
        gw
    });
    // A marker instead of a wait: a veth pair brought up in the same namespace now gets its
    // link-local address through duplicate address detection; once it has, the kernel has had
    // every chance to give the (earlier) TUN device one too.
    let out = ns.ip(&[
        "link", "add", "mrmark0", "type", "veth", "peer", "name", "mrmark1",
    ]);
    assert!(out.trim().is_empty(), "veth marker: {out}");
    ns.ip(&["link", "set", "mrmark0", "up"]);
    ns.ip(&["link", "set", "mrmark1", "up"]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let marker = ns.ip(&["-6", "addr", "show", "dev", "mrmark0"]);
            marker.contains("inet6 fe80") && !marker.contains("tentative")
        }),
        "the marker veth never got its link-local address: {}",
        ns.ip(&["-6", "addr", "show"])
    );
    let v6 = ns.ip(&["-6", "addr", "show", "dev", "meshroom0"]);
    assert!(
        !v6.contains("inet6"),
        "the device has an IPv6 address: {v6}"
    );
    drop(gw);
}
