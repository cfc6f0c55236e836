//! IGMP as the kernel speaks it on the TUN device: membership reports in (v1, v2 and v3) and
//! the general queries we send.
//!
//! Linux reports joins and leaves with IGMPv3 by default (RFC 3376 §4.2). `smoltcp::wire` reads
//! only the 8-byte v1/v2 messages, so the v3 report and the v3 query are laid out here; the
//! checksum is smoltcp's (`IgmpPacket::fill_checksum`/`verify_checksum` cover the whole buffer).

use std::net::Ipv4Addr;

use smoltcp::wire::{IgmpPacket, IgmpRepr};

/// IGMP message types (RFC 3376 §4).
const TYPE_QUERY: u8 = 0x11;
const TYPE_V1_REPORT: u8 = 0x12;
const TYPE_V2_REPORT: u8 = 0x16;
const TYPE_V2_LEAVE: u8 = 0x17;
const TYPE_V3_REPORT: u8 = 0x22;

/// Fixed part of a v3 report: type, reserved, checksum, reserved, number of group records.
const V3_REPORT_HEADER: usize = 8;
/// Fixed part of one group record: type, aux data len, number of sources, group.
const V3_RECORD_HEADER: usize = 8;
/// A v3 query without sources (RFC 3376 §4.1).
pub const V3_QUERY_LEN: usize = 12;

/// The v3 group record types (RFC 3376 §4.2.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordType {
    ModeIsInclude,
    ModeIsExclude,
    ChangeToInclude,
    ChangeToExclude,
    AllowNewSources,
    BlockOldSources,
}

impl RecordType {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            _ => return None,
        })
    }
}

/// What a report says about one group on the reporting interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupReport {
    pub group: Ipv4Addr,
    /// `Some(true)`: some socket listens to the group; `Some(false)`: none does any more;
    /// `None`: the source list changed and the report alone does not say (count again).
    pub member: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IgmpMessage {
    /// Somebody (usually we ourselves, looped) asked who listens.
    Query,
    Report(Vec<GroupReport>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IgmpError {
    #[error("IGMP message too short")]
    Truncated,
    #[error("IGMP checksum wrong")]
    Checksum,
    #[error("unknown IGMP message type {0:#04x}")]
    UnknownType(u8),
    #[error("unknown IGMPv3 group record type {0}")]
    UnknownRecord(u8),
    #[error("IGMP group address is not multicast")]
    NotMulticast,
}

/// Parses one IGMP message (the IPv4 payload).
pub fn parse(bytes: &[u8]) -> Result<IgmpMessage, IgmpError> {
    let packet = IgmpPacket::new_checked(bytes).map_err(|_| IgmpError::Truncated)?;
    if !packet.verify_checksum() {
        return Err(IgmpError::Checksum);
    }
    let kind = bytes.first().copied().ok_or(IgmpError::Truncated)?;
    match kind {
        TYPE_QUERY => Ok(IgmpMessage::Query),
        TYPE_V1_REPORT | TYPE_V2_REPORT | TYPE_V2_LEAVE => {
            match IgmpRepr::parse(&packet).map_err(|_| IgmpError::NotMulticast)? {
                IgmpRepr::MembershipReport { group_addr, .. } => {
                    Ok(IgmpMessage::Report(vec![GroupReport {
                        group: group_addr,
                        member: Some(true),
                    }]))
                }
                IgmpRepr::LeaveGroup { group_addr } => Ok(IgmpMessage::Report(vec![GroupReport {
                    group: group_addr,
                    member: Some(false),
                }])),
                IgmpRepr::MembershipQuery { .. } => Ok(IgmpMessage::Query),
            }
        }
        TYPE_V3_REPORT => parse_v3_report(bytes).map(IgmpMessage::Report),
        other => Err(IgmpError::UnknownType(other)),
    }
}

fn be16(bytes: &[u8], at: usize) -> Result<u16, IgmpError> {
    let b = bytes.get(at..at + 2).ok_or(IgmpError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn parse_v3_report(bytes: &[u8]) -> Result<Vec<GroupReport>, IgmpError> {
    let count = be16(bytes, 6)?;
    let mut at = V3_REPORT_HEADER;
    let mut out = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let header = bytes
            .get(at..at + V3_RECORD_HEADER)
            .ok_or(IgmpError::Truncated)?;
        let record_type =
            RecordType::from_byte(header[0]).ok_or(IgmpError::UnknownRecord(header[0]))?;
        let aux_words = usize::from(header[1]);
        let sources = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let group = Ipv4Addr::new(header[4], header[5], header[6], header[7]);
        if !group.is_multicast() {
            return Err(IgmpError::NotMulticast);
        }
        let len = V3_RECORD_HEADER + 4 * sources + 4 * aux_words;
        if bytes.len() < at + len {
            return Err(IgmpError::Truncated);
        }
        at += len;
        // Any-source listening is EXCLUDE mode with no excluded sources; source-specific
        // listening is INCLUDE mode with sources. INCLUDE with none means nobody listens.
        let member = match record_type {
            RecordType::ModeIsExclude | RecordType::ChangeToExclude => Some(true),
            RecordType::ModeIsInclude | RecordType::ChangeToInclude => Some(sources > 0),
            RecordType::AllowNewSources => Some(true),
            RecordType::BlockOldSources => None,
        };
        out.push(GroupReport { group, member });
    }
    Ok(out)
}

/// Encodes a max response time of `tenths` of a second as a v3 Max Resp Code (RFC 3376 §4.1.1).
fn max_resp_code(tenths: u16) -> u8 {
    if tenths < 128 {
        return tenths as u8;
    }
    // Floating point form: mantissa 4 bits, exponent 3 bits, value = (mant | 0x10) << (exp + 3).
    let mut exp = 0u8;
    let mut mant = u32::from(tenths) >> 3;
    while mant > 0x1f && exp < 7 {
        mant >>= 1;
        exp += 1;
    }
    0x80 | (exp << 4) | ((mant as u8) & 0x0f)
}

/// A general v3 query: "who listens to anything?", answered by the kernel with one
/// current-state record per joined group within `max_resp_tenths`.
pub fn general_query(max_resp_tenths: u16, query_interval_secs: u8) -> [u8; V3_QUERY_LEN] {
    let mut buf = [0u8; V3_QUERY_LEN];
    buf[0] = TYPE_QUERY;
    buf[1] = max_resp_code(max_resp_tenths);
    // Group 0.0.0.0 (general query), then S=0 and QRV=2, QQIC, no sources.
    buf[8] = 2;
    buf[9] = query_interval_secs.min(127);
    let mut packet = IgmpPacket::new_unchecked(&mut buf[..]);
    packet.fill_checksum();
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
        bytes[2] = 0;
        bytes[3] = 0;
        IgmpPacket::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    #[test]
    fn v3_join_and_leave_as_linux_sends_them() {
        // Captured shape of Linux's report when a socket joins 239.77.1.2: one
        // CHANGE_TO_EXCLUDE record without sources.
        let join = with_checksum(vec![
            0x22, 0, 0, 0, 0, 0, 0, 1, //
            4, 0, 0, 0, 239, 77, 1, 2,
        ]);
        assert_eq!(
            parse(&join).unwrap(),
            IgmpMessage::Report(vec![GroupReport {
                group: Ipv4Addr::new(239, 77, 1, 2),
                member: Some(true)
            }])
        );
        let leave = with_checksum(vec![
            0x22, 0, 0, 0, 0, 0, 0, 1, //
            3, 0, 0, 0, 239, 77, 1, 2,
        ]);
        assert_eq!(
            parse(&leave).unwrap(),
            IgmpMessage::Report(vec![GroupReport {
                group: Ipv4Addr::new(239, 77, 1, 2),
                member: Some(false)
            }])
        );
    }

    #[test]
    fn v3_answer_to_a_query_lists_every_group_and_skips_sources_and_aux_data() {
        let report = with_checksum(vec![
            0x22, 0, 0, 0, 0, 0, 0, 3, //
            2, 0, 0, 0, 239, 77, 1, 2, // MODE_IS_EXCLUDE {}
            1, 1, 0, 1, 239, 77, 3, 4, 10, 77, 0, 9, 0xde, 0xad, 0xbe,
            0xef, // IS_INCLUDE {src}, 1 aux word
            6, 0, 0, 1, 239, 77, 5, 6, 10, 0, 0, 1, // BLOCK_OLD {src}
        ]);
        let IgmpMessage::Report(groups) = parse(&report).unwrap() else {
            panic!("not a report")
        };
        assert_eq!(
            groups,
            vec![
                GroupReport {
                    group: Ipv4Addr::new(239, 77, 1, 2),
                    member: Some(true)
                },
                GroupReport {
                    group: Ipv4Addr::new(239, 77, 3, 4),
                    member: Some(true)
                },
                GroupReport {
                    group: Ipv4Addr::new(239, 77, 5, 6),
                    member: None
                },
            ]
        );
    }

    #[test]
    fn v2_report_and_leave_go_through_smoltcp() {
        let mut report = [0u8; 8];
        IgmpRepr::MembershipReport {
            group_addr: Ipv4Addr::new(239, 77, 0, 9),
            version: smoltcp::wire::IgmpVersion::Version2,
        }
        .emit(&mut IgmpPacket::new_unchecked(&mut report[..]));
        assert_eq!(
            parse(&report).unwrap(),
            IgmpMessage::Report(vec![GroupReport {
                group: Ipv4Addr::new(239, 77, 0, 9),
                member: Some(true)
            }])
        );
        let mut leave = [0u8; 8];
        IgmpRepr::LeaveGroup {
            group_addr: Ipv4Addr::new(239, 77, 0, 9),
        }
        .emit(&mut IgmpPacket::new_unchecked(&mut leave[..]));
        assert_eq!(
            parse(&leave).unwrap(),
            IgmpMessage::Report(vec![GroupReport {
                group: Ipv4Addr::new(239, 77, 0, 9),
                member: Some(false)
            }])
        );
    }

    #[test]
    fn damaged_reports_are_errors_not_panics() {
        let good = with_checksum(vec![0x22, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 239, 77, 1, 2]);
        let mut bad_sum = good.clone();
        bad_sum[15] ^= 1;
        assert_eq!(parse(&bad_sum), Err(IgmpError::Checksum));
        // Claims two records, carries one.
        let short = with_checksum(vec![0x22, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 239, 77, 1, 2]);
        assert_eq!(parse(&short), Err(IgmpError::Truncated));
        // Claims 100 sources.
        let sources = with_checksum(vec![0x22, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 100, 239, 77, 1, 2]);
        assert_eq!(parse(&sources), Err(IgmpError::Truncated));
        let unicast = with_checksum(vec![0x22, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0, 10, 0, 0, 1]);
        assert_eq!(parse(&unicast), Err(IgmpError::NotMulticast));
        let record = with_checksum(vec![0x22, 0, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0, 239, 77, 1, 2]);
        assert_eq!(parse(&record), Err(IgmpError::UnknownRecord(9)));
        assert_eq!(parse(&[0x22, 0, 0]), Err(IgmpError::Truncated));
        let unknown = with_checksum(vec![0x42, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(&unknown), Err(IgmpError::UnknownType(0x42)));
        for len in 0..good.len() {
            let _ = parse(&good[..len]);
        }
    }

    #[test]
    fn general_query_is_a_valid_v3_query() {
        let q = general_query(10, 5);
        assert_eq!(
            q.len(),
            12,
            "12 bytes makes Linux treat it as v3 and stay in v3 mode"
        );
        assert_eq!(q[0], 0x11);
        assert_eq!(q[1], 10);
        assert_eq!(&q[4..8], &[0, 0, 0, 0]);
        assert_eq!(q[8], 2);
        assert_eq!(q[9], 5);
        assert!(IgmpPacket::new_checked(&q[..]).unwrap().verify_checksum());
        assert_eq!(parse(&q), Ok(IgmpMessage::Query));
    }

    #[test]
    fn long_response_times_use_the_floating_point_code() {
        assert_eq!(max_resp_code(127), 127);
        // 128 tenths = (0x10 | 0) << 3.
        assert_eq!(max_resp_code(128), 0x80);
        // 31744 tenths = (0x1f) << 10, the largest code.
        assert_eq!(max_resp_code(31744), 0xff);
    }
}
