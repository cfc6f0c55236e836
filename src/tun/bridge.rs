//! The sans-IO heart of the TUN side: packets from the device in, posts and membership news
//! out; posts in, packets for the device out. No sockets, no clock: `now` is an argument and
//! nonces come from the caller.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::hub::{Author, AuthorKind, NewPost, Post, Via};
use crate::tun::counters::{Counters, DropReason};
use crate::tun::datagram::{encode_post, parse_inbound};
use crate::tun::group::RoomEndpoint;
use crate::tun::igmp::{GroupReport, IgmpMessage};
use crate::tun::packet::{self, TunPacket};
use crate::tun::seal::{SealKey, NONCE_LEN};

/// A room as the bridge serves it.
#[derive(Clone, Debug)]
pub struct BridgeRoom {
    pub endpoint: RoomEndpoint,
    /// `Some` for a private room.
    pub seal: Option<SealKey>,
}

/// What a packet from the device asks of the shell.
#[derive(Debug)]
pub enum FromDevice {
    /// Hand this post to the hub.
    Post(NewPost),
    /// The host's memberships changed (or were re-announced).
    Membership(Vec<GroupReport>),
    /// Nothing to do (counted where it was a drop).
    Nothing,
}

#[derive(Debug)]
pub struct Bridge {
    /// Where the gateway's own datagrams come from.
    source: Ipv4Addr,
    by_socket: HashMap<SocketAddrV4, BridgeRoom>,
    by_name: HashMap<String, BridgeRoom>,
    /// Largest UDP payload that fits the device MTU unfragmented.
    max_payload: usize,
    /// Largest post text accepted from the host, in bytes.
    max_text: usize,
}

impl Bridge {
    pub fn new(source: Ipv4Addr, rooms: Vec<BridgeRoom>, mtu: u16, max_text: usize) -> Self {
        let by_socket = rooms
            .iter()
            .map(|r| (r.endpoint.socket(), r.clone()))
            .collect();
        let by_name = rooms
            .into_iter()
            .map(|r| (r.endpoint.room.clone(), r))
            .collect();
        Bridge {
            source,
            by_socket,
            by_name,
            max_payload: packet::max_udp_payload(mtu),
            max_text,
        }
    }

    pub fn room(&self, name: &str) -> Option<&BridgeRoom> {
        self.by_name.get(name)
    }

    /// Reads one packet the kernel wrote to the device.
    pub fn from_device(&self, bytes: &[u8], now: u64, counters: &Counters) -> FromDevice {
        let parsed = match packet::parse(bytes) {
            Ok(p) => p,
            Err(reason) => {
                counters.count_drop(reason);
                return FromDevice::Nothing;
            }
        };
        match parsed {
            TunPacket::Udp { src, dst, payload } => {
                match self.datagram_to_post(src, dst, payload, now) {
                    Ok(post) => FromDevice::Post(post),
                    Err(reason) => {
                        counters.count_drop(reason);
                        FromDevice::Nothing
                    }
                }
            }
            TunPacket::Igmp(msg) => {
                Counters::bump(&counters.igmp_in);
                match msg {
                    IgmpMessage::Report(groups) => FromDevice::Membership(groups),
                    IgmpMessage::Query => FromDevice::Nothing,
                }
            }
            TunPacket::Other => FromDevice::Nothing,
        }
    }

    fn datagram_to_post(
        &self,
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &[u8],
        now: u64,
    ) -> Result<NewPost, DropReason> {
        let room = self.by_socket.get(&dst).ok_or(DropReason::NoRoom)?;
        if payload.len() > self.max_payload {
            return Err(DropReason::Oversized);
        }
        let opened;
        let plain = match &room.seal {
            Some(key) => {
                opened = key.open(payload)?;
                &opened[..]
            }
            None => payload,
        };
        let inbound = parse_inbound(plain, &room.endpoint.room, self.max_text)?;
        Ok(NewPost {
            id: inbound.id,
            room: room.endpoint.room.clone(),
            author: Author {
                kind: AuthorKind::Ip,
                id: src.to_string(),
                name: inbound.name,
            },
            origin: None,
            author_ts: inbound.author_ts.unwrap_or(now),
            text: inbound.text,
            hops: 0,
            via: Via::side(AuthorKind::Ip),
        })
    }

    /// The packet that carries `post` to its room's group, or why there is none. `Ok(None)`
    /// when the room has no group here (not a room of this server).
    pub fn to_device(
        &self,
        post: &Post,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Option<Vec<u8>>, DropReason> {
        let Some(room) = self.by_name.get(&post.room) else {
            return Ok(None);
        };
        let line = encode_post(post);
        let payload = match &room.seal {
            Some(key) => key.seal(nonce, &line),
            None => line,
        };
        if payload.len() > self.max_payload {
            return Err(DropReason::OversizedOut);
        }
        let src = SocketAddrV4::new(self.source, room.endpoint.port);
        Ok(Some(packet::build_udp(
            src,
            room.endpoint.socket(),
            &payload,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::PostId;
    use crate::tun::datagram::decode_post;

    fn bridge() -> Bridge {
        Bridge::new(
            Ipv4Addr::new(10, 77, 0, 2),
            vec![
                BridgeRoom {
                    endpoint: RoomEndpoint {
                        room: "general".into(),
                        group: Ipv4Addr::new(239, 77, 0, 1),
                        port: 7077,
                    },
                    seal: None,
                },
                BridgeRoom {
                    endpoint: RoomEndpoint {
                        room: "ops".into(),
                        group: Ipv4Addr::new(239, 77, 0, 2),
                        port: 7077,
                    },
                    seal: Some(SealKey::derive("hunter2", "ops")),
                },
            ],
            1500,
            1000,
        )
    }

    fn host() -> SocketAddrV4 {
        "10.77.0.1:40000".parse().unwrap()
    }

    fn to(room_group: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let dst = SocketAddrV4::new(Ipv4Addr::from(room_group), 7077);
        packet::build_udp(host(), dst, payload)
    }

    fn post(room: &str, text: &str) -> Post {
        Post {
            id: PostId([1; 16]),
            room: room.into(),
            author: Author {
                kind: AuthorKind::Radio,
                id: "ab".into(),
                name: None,
            },
            origin: "gw".into(),
            author_ts: 1,
            room_ts: 2,
            room_us: 2_000_000,
            text: text.into(),
            hops: 0,
        }
    }

    #[test]
    fn a_datagram_to_a_public_group_becomes_a_post_by_the_sender() {
        let c = Counters::default();
        let FromDevice::Post(p) = bridge().from_device(&to([239, 77, 0, 1], b"hello\n"), 99, &c)
        else {
            panic!("no post")
        };
        assert_eq!(p.room, "general");
        assert_eq!(p.text, "hello");
        assert_eq!(p.author.kind, AuthorKind::Ip);
        assert_eq!(p.author.id, "10.77.0.1:40000");
        assert_eq!(p.author.name, None);
        assert_eq!(p.author_ts, 99);
        assert_eq!(p.via, Via::side(AuthorKind::Ip));
        assert_eq!(c.dropped_total(), 0);
    }

    #[test]
    fn a_post_leaves_as_json_to_its_group_from_the_gateway_address() {
        let pkt = bridge()
            .to_device(&post("general", "hi all"), [0; 12])
            .unwrap()
            .unwrap();
        let TunPacket::Udp { src, dst, payload } = packet::parse(&pkt).unwrap() else {
            panic!("not udp")
        };
        assert_eq!(src, "10.77.0.2:7077".parse().unwrap());
        assert_eq!(dst, "239.77.0.1:7077".parse().unwrap());
        assert_eq!(decode_post(payload).unwrap().text, "hi all");
        assert_eq!(
            bridge()
                .to_device(&post("elsewhere", "x"), [0; 12])
                .unwrap(),
            None
        );
    }

    #[test]
    fn private_room_traffic_is_sealed_both_ways() {
        let b = bridge();
        let pkt = b
            .to_device(&post("ops", "launch at dawn"), [9; 12])
            .unwrap()
            .unwrap();
        assert!(
            !pkt.windows(6).any(|w| w == b"launch"),
            "plaintext on the wire"
        );
        let TunPacket::Udp { payload, .. } = packet::parse(&pkt).unwrap() else {
            panic!("not udp")
        };
        let key = SealKey::derive("hunter2", "ops");
        assert_eq!(
            decode_post(&key.open(payload).unwrap()).unwrap().text,
            "launch at dawn"
        );

        let c = Counters::default();
        assert!(matches!(
            b.from_device(&to([239, 77, 0, 2], b"plain text"), 1, &c),
            FromDevice::Nothing
        ));
        assert_eq!(c.dropped(DropReason::Unsealed), 1);
        let wrong = SealKey::derive("guess", "ops").seal([1; 12], b"injected");
        assert!(matches!(
            b.from_device(&to([239, 77, 0, 2], &wrong), 1, &c),
            FromDevice::Nothing
        ));
        assert_eq!(c.dropped(DropReason::BadSeal), 1);
        let right = key.seal([2; 12], b"{\"text\":\"ok\",\"name\":\"ann\"}");
        let FromDevice::Post(p) = b.from_device(&to([239, 77, 0, 2], &right), 1, &c) else {
            panic!("sealed datagram did not post")
        };
        assert_eq!((p.room.as_str(), p.text.as_str()), ("ops", "ok"));
        assert_eq!(p.author.name.as_deref(), Some("ann"));
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let b = bridge();
        let c = Counters::default();
        let other_port = packet::build_udp(host(), "239.77.0.1:9999".parse().unwrap(), b"x");
        b.from_device(&other_port, 1, &c);
        assert_eq!(c.dropped(DropReason::NoRoom), 1);
        b.from_device(&to([239, 77, 0, 1], &[0xc3, 0x28]), 1, &c);
        assert_eq!(c.dropped(DropReason::NotUtf8), 1);
        b.from_device(&to([239, 77, 0, 1], &[b'a'; 1001]), 1, &c);
        assert_eq!(c.dropped(DropReason::Oversized), 1);
        b.from_device(&[0x45, 0, 0], 1, &c);
        assert_eq!(c.dropped(DropReason::BadPacket), 1);
        let long = post("general", &"x".repeat(1500));
        assert_eq!(b.to_device(&long, [0; 12]), Err(DropReason::OversizedOut));
    }
}
