//! IPv4 packets on the TUN device, built and read with `smoltcp::wire`.
//!
//! What the kernel writes to the device (host → gateway) is either a UDP datagram to a group, an
//! IGMP message about the host's memberships, or something we have no use for (other traffic
//! that happens to be routed there). What we write is a UDP datagram from the gateway's own
//! address to a room's group, or an IGMP general query.

use std::net::{Ipv4Addr, SocketAddrV4};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr};

use crate::tun::counters::DropReason;
use crate::tun::igmp::{self, IgmpMessage};

/// IPv4 header as we emit it (no options).
pub const IPV4_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
/// All-systems group, where general queries go (RFC 3376 §4.1.12).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// One packet the kernel wrote to the device.
#[derive(Debug, PartialEq, Eq)]
pub enum TunPacket<'a> {
    Udp {
        src: SocketAddrV4,
        dst: SocketAddrV4,
        payload: &'a [u8],
    },
    Igmp(IgmpMessage),
    /// Valid, but neither UDP nor IGMP (or not IPv4): not ours to handle.
    Other,
}

/// Reads one packet. Damaged packets are `BadPacket`; fragments are `Oversized` (a room
/// datagram must fit the device MTU, and we do not reassemble).
pub fn parse(bytes: &[u8]) -> Result<TunPacket<'_>, DropReason> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => {}
        Some(6) => return Ok(TunPacket::Other),
        _ => return Err(DropReason::BadPacket),
    }
    let ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::BadPacket)?;
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::Oversized);
    }
    let caps = ChecksumCapabilities::default();
    let repr = Ipv4Repr::parse(&ip, &caps).map_err(|_| DropReason::BadPacket)?;
    let payload = ip.payload();
    match repr.next_header {
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).map_err(|_| DropReason::BadPacket)?;
            let src_ip = IpAddress::Ipv4(repr.src_addr);
            let dst_ip = IpAddress::Ipv4(repr.dst_addr);
            let udp_repr =
                UdpRepr::parse(&udp, &src_ip, &dst_ip, &caps).map_err(|_| DropReason::BadPacket)?;
            Ok(TunPacket::Udp {
                src: SocketAddrV4::new(repr.src_addr, udp_repr.src_port),
                dst: SocketAddrV4::new(repr.dst_addr, udp_repr.dst_port),
                payload: udp.payload(),
            })
        }
        IpProtocol::Igmp => igmp::parse(payload)
            .map(TunPacket::Igmp)
            .map_err(|_| DropReason::BadPacket),
        _ => Ok(TunPacket::Other),
    }
}

/// Largest UDP payload that fits one unfragmented packet on a device with this MTU.
pub fn max_udp_payload(mtu: u16) -> usize {
    usize::from(mtu).saturating_sub(IPV4_HEADER_LEN + UDP_HEADER_LEN)
}

/// A UDP datagram from `src` to `dst`, with IPv4 and UDP checksums filled in. TTL 1: a room
/// datagram is for this host only and must never be forwarded.
pub fn build_udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let udp_len = UDP_HEADER_LEN + payload.len();
    let ip_repr = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        next_header: IpProtocol::Udp,
        payload_len: udp_len,
        hop_limit: 1,
    };
    let mut buf = vec![0u8; IPV4_HEADER_LEN + udp_len];
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip_repr.emit(&mut ip, &caps);
    let udp_repr = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    udp_repr.emit(
        &mut udp,
        &IpAddress::Ipv4(*src.ip()),
        &IpAddress::Ipv4(*dst.ip()),
        payload.len(),
        |out| out.copy_from_slice(payload),
        &caps,
    );
    buf
}

/// An IGMPv3 general query from `src` to all systems.
pub fn build_general_query(src: Ipv4Addr, max_resp_tenths: u16, interval_secs: u8) -> Vec<u8> {
    let query = igmp::general_query(max_resp_tenths, interval_secs);
    let caps = ChecksumCapabilities::default();
    let ip_repr = Ipv4Repr {
        src_addr: src,
        dst_addr: ALL_SYSTEMS,
        next_header: IpProtocol::Igmp,
        payload_len: query.len(),
        hop_limit: 1,
    };
    let mut buf = vec![0u8; IPV4_HEADER_LEN + query.len()];
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..]);
    ip_repr.emit(&mut ip, &caps);
    ip.payload_mut().copy_from_slice(&query);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a() -> SocketAddrV4 {
        "10.77.0.2:7077".parse().unwrap()
    }
    fn g() -> SocketAddrV4 {
        "239.77.1.2:7077".parse().unwrap()
    }

    #[test]
    fn built_datagram_reads_back_with_valid_checksums() {
        let pkt = build_udp(a(), g(), b"hello");
        assert_eq!(pkt.len(), 20 + 8 + 5);
        let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.hop_limit(), 1);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(&IpAddress::Ipv4(*a().ip()), &IpAddress::Ipv4(*g().ip())));
        assert_ne!(udp.checksum(), 0);
        assert_eq!(
            parse(&pkt).unwrap(),
            TunPacket::Udp {
                src: a(),
                dst: g(),
                payload: b"hello"
            }
        );
    }

    #[test]
    fn a_packet_as_linux_sends_it_parses() {
        // 10.77.0.1:40000 -> 239.77.1.2:7077 "hi", as written by the kernel (checksums by hand:
        // the test must not trust our own builder).
        let pkt: [u8; 30] = [
            0x45, 0x00, 0x00, 0x1e, 0x12, 0x34, 0x40, 0x00, 0x01, 0x11, 0x00, 0x00, 10, 77, 0, 1,
            239, 77, 1, 2, //
            0x9c, 0x40, 0x1b, 0xa5, 0x00, 0x0a, 0x00, 0x00, b'h', b'i',
        ];
        let mut pkt = pkt.to_vec();
        let sum = ones_complement(&pkt[..20]);
        pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut pseudo = vec![10, 77, 0, 1, 239, 77, 1, 2, 0, 17, 0, 10];
        pseudo.extend_from_slice(&pkt[20..]);
        let sum = ones_complement(&pseudo);
        pkt[26..28].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            parse(&pkt).unwrap(),
            TunPacket::Udp {
                src: "10.77.0.1:40000".parse().unwrap(),
                dst: g(),
                payload: b"hi"
            }
        );
    }

    fn ones_complement(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for chunk in data.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn igmp_with_router_alert_option_parses() {
        // Linux sends reports with a 4-byte Router Alert option (IHL 6).
        let mut report = vec![0x22, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 239, 77, 1, 2];
        smoltcp::wire::IgmpPacket::new_unchecked(&mut report[..]).fill_checksum();
        let mut pkt = vec![
            0x46, 0xc0, 0, 0, 0, 0, 0x40, 0, 1, 2, 0, 0, 10, 77, 0, 1, 224, 0, 0, 22, 0x94, 4, 0, 0,
        ];
        let total = (pkt.len() + report.len()) as u16;
        pkt[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = ones_complement(&pkt);
        pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        pkt.extend_from_slice(&report);
        let TunPacket::Igmp(IgmpMessage::Report(groups)) = parse(&pkt).unwrap() else {
            panic!("not a report");
        };
        assert_eq!(groups[0].group, Ipv4Addr::new(239, 77, 1, 2));
        assert_eq!(groups[0].member, Some(true));
    }

    #[test]
    fn general_query_packet_is_valid() {
        let pkt = build_general_query(Ipv4Addr::new(10, 77, 0, 2), 10, 5);
        let ip = Ipv4Packet::new_checked(&pkt[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), ALL_SYSTEMS);
        assert_eq!(ip.hop_limit(), 1);
        assert_eq!(parse(&pkt).unwrap(), TunPacket::Igmp(IgmpMessage::Query));
    }

    #[test]
    fn damaged_and_foreign_packets() {
        let good = build_udp(a(), g(), b"hello");
        let mut bad_ip_sum = good.clone();
        bad_ip_sum[10] ^= 0xff;
        assert_eq!(parse(&bad_ip_sum), Err(DropReason::BadPacket));
        let mut bad_udp_sum = good.clone();
        let last = bad_udp_sum.len() - 1;
        bad_udp_sum[last] ^= 0xff;
        assert_eq!(parse(&bad_udp_sum), Err(DropReason::BadPacket));
        let mut fragment = good.clone();
        fragment[6] = 0x20; // more fragments
        let sum = {
            fragment[10] = 0;
            fragment[11] = 0;
            ones_complement(&fragment[..20])
        };
        fragment[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse(&fragment), Err(DropReason::Oversized));
        assert_eq!(parse(&[0x60, 0, 0, 0]), Ok(TunPacket::Other));
        assert_eq!(parse(&[]), Err(DropReason::BadPacket));
        for len in 0..good.len() {
            let _ = parse(&good[..len]);
        }
        assert_eq!(max_udp_payload(1500), 1472);
        assert_eq!(max_udp_payload(10), 0);
    }
}
