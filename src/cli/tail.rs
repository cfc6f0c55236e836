//! `meshroom-gw tail --room NAME`: print a room's posts as they pass on the host.
//!
//! It joins the room's group on the TUN device like any host program would (so it shows up as
//! one of the room's `ip` clients), and for a private room opens the seal with the PSK from the
//! configuration. Datagrams that other host programs send to the group reach it directly
//! through the kernel's multicast loopback; they are printed as `ip:port: text`.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{bail, Context};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};

use crate::tun::datagram::{decode_post, WirePost};
use crate::tun::seal::SealKey;

/// A UDP socket bound to `group:port` (so it hears that group only, not every group on the
/// port) and joined to the group on the interface that has `interface` as its address.
/// `SO_REUSEADDR` lets several listeners share the group.
pub fn join_group(group: Ipv4Addr, port: u16, interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(group, port)),
    )?;
    let socket = UdpSocket::from(fd);
    socket.join_multicast_v4(&group, &interface)?;
    Ok(socket)
}

/// One line for a human: `[room_ts UTC] name (kind): text`.
pub fn format_post(post: &WirePost) -> String {
    let who = post.author.name.as_deref().unwrap_or(&post.author.id);
    format!(
        "[{}] {} ({}): {}",
        crate::timefmt::utc(post.room_ts),
        who,
        post.author.kind,
        post.text
    )
}

pub async fn run(config_path: Option<&Path>, room: &str, json: bool) -> anyhow::Result<()> {
    let loaded = crate::settings::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = &loaded.settings.config;
    let Some(room_cfg) = config.room(room) else {
        let names: Vec<&str> = config.rooms.iter().map(|r| r.name.as_str()).collect();
        bail!(
            "{} has no room named `{room}` (rooms: {})",
            loaded.source,
            names.join(", ")
        );
    };
    let Some(endpoint) = loaded
        .settings
        .tun_rooms
        .iter()
        .find(|e| e.room == room_cfg.name)
    else {
        bail!("room `{room}` has no multicast group");
    };
    let seal = room_cfg
        .is_private()
        .then(|| SealKey::derive(room_cfg.psk.expose(), &room_cfg.name));
    let socket = join_group(endpoint.group, endpoint.port, config.tun.address.addr())
        .with_context(|| {
            format!(
                "cannot join {}:{} on {} (is the gateway running with its TUN device?)",
                endpoint.group, endpoint.port, config.tun.device
            )
        })?;
    socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(socket)?;
    eprintln!(
        "tail: room `{}` on {}:{} ({}); Ctrl-C to stop",
        endpoint.room,
        endpoint.group,
        endpoint.port,
        if seal.is_some() {
            "private, sealed"
        } else {
            "public"
        }
    );
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = tokio::select! {
            r = socket.recv_from(&mut buf) => r.context("receiving")?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(payload) = buf.get(..n) else {
            continue;
        };
        let opened;
        let plain = match &seal {
            Some(key) => match key.open(payload) {
                Ok(p) => {
                    opened = p;
                    &opened[..]
                }
                Err(reason) => {
                    eprintln!("tail: {from}: datagram dropped ({})", reason.as_str());
                    continue;
                }
            },
            None => payload,
        };
        println!("{}", safe(&render(plain, from, json), json));
    }
}

/// A rendered line made safe for a terminal: control characters escaped (as `\u{1b}` for
/// people, as JSON `\u001b` escapes in JSON lines, which serde leaves raw for DEL and C1).
pub fn safe(line: &str, json: bool) -> String {
    if !json {
        return crate::textsafe::escape(line).into_owned();
    }
    line.chars()
        .map(|c| {
            if crate::textsafe::is_unsafe(c) {
                format!("\\u{:04x}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn render(plain: &[u8], from: SocketAddr, json: bool) -> String {
    match decode_post(plain) {
        Some(post) if json => serde_json::to_string(&post).unwrap_or_default(),
        Some(post) => format_post(&post),
        None => {
            let text = String::from_utf8_lossy(plain);
            let text = text.trim_end_matches(['\n', '\r']);
            if json {
                serde_json::json!({"from": from.to_string(), "raw": text}).to_string()
            } else {
                format!("{from}: {text}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{AuthorKind, PostId};
    use crate::tun::datagram::WireAuthor;

    #[test]
    fn control_characters_reach_the_terminal_escaped() {
        let post = WirePost {
            room: "general".into(),
            id: PostId([0; 16]),
            author: WireAuthor {
                kind: AuthorKind::Radio,
                id: "ab12".into(),
                name: Some("eve\u{1b}]0;owned\u{7}".into()),
            },
            origin: "gw".into(),
            author_ts: 0,
            room_ts: 1,
            text: "hi\u{1b}[2J\u{0}\u{7}\u{9b}".into(),
        };
        let plain = serde_json::to_vec(&post).unwrap();
        let from: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let line = safe(&render(&plain, from, false), false);
        assert!(!line.chars().any(crate::textsafe::is_unsafe), "{line:?}");
        assert!(line.contains("hi\\u{1b}[2J\\u{0}\\u{7}\\u{9b}"), "{line}");
        let line = safe(&render(&plain, from, true), true);
        assert!(!line.chars().any(crate::textsafe::is_unsafe), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["text"], "hi\u{1b}[2J\u{0}\u{7}\u{9b}",
            "stored text unchanged"
        );
    }

    #[test]
    fn posts_render_for_people_and_scripts() {
        let post = WirePost {
            room: "general".into(),
            id: PostId([0; 16]),
            author: WireAuthor {
                kind: AuthorKind::Radio,
                id: "ab12".into(),
                name: Some("alice".into()),
            },
            origin: "gw".into(),
            author_ts: 0,
            room_ts: 0,
            text: "hi".into(),
        };
        let line = serde_json::to_vec(&post).unwrap();
        let from: SocketAddr = "10.77.0.2:7077".parse().unwrap();
        assert_eq!(
            render(&line, from, false),
            "[1970-01-01 00:00:00Z] alice (radio): hi"
        );
        assert!(render(&line, from, true).starts_with("{\"room\":\"general\""));
        assert_eq!(render(b"plain\n", from, false), "10.77.0.2:7077: plain");
    }
}
