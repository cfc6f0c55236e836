//! Where each room lives on the host side: its multicast group and UDP port.
//!
//! A room's default group is derived from its name alone (and the configured room range), so
//! two federated servers that host the same room put it on the same group without any
//! configuration. A room may override its group and port; two rooms on one group are a
//! configuration error, because the kernel reports memberships (IGMP, `/proc/net/igmp`) per
//! group, not per port, and the room's host-side client count would be wrong.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

/// Fixed context of the group derivation. Changing it moves every room to another group, so
/// it carries a version.
pub const GROUP_DERIVATION_CONTEXT: &[u8] = b"meshroom-gw room group v1";

/// The default multicast group of `room` inside `range`:
/// the first four bytes of SHA-256(context || 0x00 || room name), masked to the range's host
/// bits. For ranges with at least two host bits the all-zeros and all-ones host parts are
/// avoided, so a /16 never yields e.g. `239.77.0.0`, which reads like a network address.
pub fn derive_group(room: &str, range: Ipv4Net) -> Ipv4Addr {
    let mut hasher = Sha256::new();
    hasher.update(GROUP_DERIVATION_CONTEXT);
    hasher.update([0u8]);
    hasher.update(room.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 4];
    first.copy_from_slice(&digest[..4]);
    let hash = u32::from_be_bytes(first);

    let host_bits = 32 - u32::from(range.prefix_len());
    let host_mask: u32 = if host_bits == 32 {
        u32::MAX
    } else {
        (1u32 << host_bits) - 1
    };
    let mut host = hash & host_mask;
    if host_bits >= 2 {
        if host == 0 {
            host = 1;
        } else if host == host_mask {
            host = host_mask - 1;
        }
    }
    Ipv4Addr::from(u32::from(range.network()) | host)
}

/// A room as the TUN side addresses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomEndpoint {
    pub room: String,
    pub group: Ipv4Addr,
    pub port: u16,
}

impl RoomEndpoint {
    pub fn socket(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.group, self.port)
    }
}

/// One room's wish as written in the configuration.
#[derive(Clone, Copy, Debug)]
pub struct RoomPlacement<'a> {
    pub room: &'a str,
    pub group: Option<Ipv4Addr>,
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GroupError {
    #[error("rooms {first:?} and {second:?} are both on multicast group {group}; give one of them another `group`")]
    Clash {
        first: String,
        second: String,
        group: Ipv4Addr,
    },
    #[error("room {room:?}: group {group} is outside the TUN room range {range} (tun.range), so it would not be routed to the device")]
    OutsideRange {
        room: String,
        group: Ipv4Addr,
        range: Ipv4Net,
    },
    #[error("room {room:?}: port 0 cannot be a room port")]
    PortZero { room: String },
}

/// Places every room on its group and port, or says which rooms clash.
pub fn place_rooms<'a>(
    rooms: impl IntoIterator<Item = RoomPlacement<'a>>,
    range: Ipv4Net,
    default_port: u16,
) -> Result<Vec<RoomEndpoint>, GroupError> {
    let mut by_group: HashMap<Ipv4Addr, String> = HashMap::new();
    let mut out = Vec::new();
    for wish in rooms {
        let group = wish.group.unwrap_or_else(|| derive_group(wish.room, range));
        if !range.contains(&group) {
            return Err(GroupError::OutsideRange {
                room: wish.room.to_string(),
                group,
                range,
            });
        }
        let port = wish.port.unwrap_or(default_port);
        if port == 0 {
            return Err(GroupError::PortZero {
                room: wish.room.to_string(),
            });
        }
        if let Some(first) = by_group.get(&group) {
            return Err(GroupError::Clash {
                first: first.clone(),
                second: wish.room.to_string(),
                group,
            });
        }
        by_group.insert(group, wish.room.to_string());
        out.push(RoomEndpoint {
            room: wish.room.to_string(),
            group,
            port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Ipv4Net {
        "239.77.0.0/16".parse().unwrap()
    }

    #[test]
    fn derivation_is_pinned_and_inside_the_range() {
        // Pinned values (recomputed independently from the documented formula): another server,
        // or a later version of this one, must put these rooms on exactly these groups, or
        // federated hosts would listen on different groups.
        assert_eq!(
            derive_group("general", range()),
            Ipv4Addr::new(239, 77, 177, 235)
        );
        assert_eq!(derive_group("ops", range()), Ipv4Addr::new(239, 77, 57, 58));
        assert_eq!(
            derive_group("test", range()),
            Ipv4Addr::new(239, 77, 250, 122)
        );
        let other: Ipv4Net = "239.1.0.0/16".parse().unwrap();
        assert_eq!(
            derive_group("general", other),
            Ipv4Addr::new(239, 1, 177, 235)
        );
    }

    #[test]
    fn derivation_never_picks_the_all_zero_or_all_one_host_part() {
        let tiny: Ipv4Net = "239.1.2.0/30".parse().unwrap();
        for i in 0..200 {
            let g = derive_group(&format!("room{i}"), tiny);
            let last = g.octets()[3];
            assert!(last == 1 || last == 2, "{g}");
        }
    }

    #[test]
    fn names_differing_in_case_get_different_groups() {
        assert_ne!(derive_group("Ops", range()), derive_group("ops", range()));
    }

    #[test]
    fn overrides_and_default_port_apply() {
        let placed = place_rooms(
            [
                RoomPlacement {
                    room: "a",
                    group: None,
                    port: None,
                },
                RoomPlacement {
                    room: "b",
                    group: Some(Ipv4Addr::new(239, 77, 9, 9)),
                    port: Some(9000),
                },
            ],
            range(),
            7077,
        )
        .unwrap();
        assert_eq!(placed[0].port, 7077);
        assert_eq!(placed[0].group, derive_group("a", range()));
        assert_eq!(placed[1].socket(), "239.77.9.9:9000".parse().unwrap());
    }

    #[test]
    fn two_rooms_on_one_group_are_an_error_even_on_different_ports() {
        let g = Some(Ipv4Addr::new(239, 77, 1, 1));
        let err = place_rooms(
            [
                RoomPlacement {
                    room: "a",
                    group: g,
                    port: Some(1),
                },
                RoomPlacement {
                    room: "b",
                    group: g,
                    port: Some(2),
                },
            ],
            range(),
            7077,
        )
        .unwrap_err();
        assert!(matches!(err, GroupError::Clash { .. }));
        assert!(err.to_string().contains("\"a\""));
        assert!(err.to_string().contains("\"b\""));
    }

    #[test]
    fn a_group_outside_the_range_is_an_error() {
        let err = place_rooms(
            [RoomPlacement {
                room: "a",
                group: Some(Ipv4Addr::new(239, 1, 1, 1)),
                port: None,
            }],
            range(),
            7077,
        )
        .unwrap_err();
        assert!(matches!(err, GroupError::OutsideRange { .. }));
    }
}
