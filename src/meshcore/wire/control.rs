//! CONTROL payloads (type 0x0B, unencrypted): node discovery.
//!
//! Layouts from the firmware's docs/payloads.md ("Control data", DISCOVER_REQ, DISCOVER_RESP)
//! and examples/simple_repeater/MyMesh.cpp (`onControlDataRecv`, `sendNodeDiscoverReq`):
//!
//! - DISCOVER_REQ: `flags(1)` = 0x80 | prefix_only (bit 0), `type_filter(1)` (bit `1 << ADV_TYPE_*`
//!   for each node type asked for), `tag(4)` (random, little-endian as sent), optional `since(4)`
//!   (Unix seconds; 0 = any).
//! - DISCOVER_RESP: `flags(1)` = 0x90 | node type (low nibble), `snr(1)` (signed, the request's SNR
//!   × 4), `tag(4)` (echoed), then the public key: 32 bytes, or its first 8 when the request asked
//!   for `prefix_only`.
//!
//! Src/Mesh.cpp (`onRecvPacket`) hands a CONTROL packet with bit 7 of the first byte set to
//! `onControlDataRecv` only when it is direct with no path (zero-hop); it is never forwarded.

use super::advert::NodeType;
use super::identity::PublicKey;

/// Upper nibble of a DISCOVER_REQ's flags.
pub const CTL_DISCOVER_REQ: u8 = 0x80;
/// Upper nibble of a DISCOVER_RESP's flags.
pub const CTL_DISCOVER_RESP: u8 = 0x90;
/// Key bytes in a `prefix_only` answer.
pub const DISCOVER_PREFIX_LEN: usize = 8;

/// A node discovery request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverReq {
    pub prefix_only: bool,
    /// Bit `1 << node type` for every type asked for.
    pub type_filter: u8,
    pub tag: u32,
    /// Only nodes changed since this Unix time should answer (0: all).
    pub since: u32,
}

impl DiscoverReq {
    /// Parses the whole CONTROL payload (flags byte included); `None` when it is not a
    /// discovery request or is too short (the firmware wants at least 6 bytes).
    pub fn parse(b: &[u8]) -> Option<DiscoverReq> {
        if b.len() < 6 || b[0] & 0xF0 != CTL_DISCOVER_REQ {
            return None;
        }
        let since = match b.get(6..10) {
            Some(s) => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            None => 0,
        };
        Some(DiscoverReq {
            prefix_only: b[0] & 1 != 0,
            type_filter: b[1],
            tag: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            since,
        })
    }

    /// Asks for nodes of `types`.
    pub fn new(types: &[NodeType], tag: u32) -> DiscoverReq {
        DiscoverReq {
            prefix_only: false,
            type_filter: types.iter().fold(0, |m, t| m | (1 << t.nibble())),
            tag,
            since: 0,
        }
    }

    pub fn wants(&self, t: NodeType) -> bool {
        self.type_filter & (1 << t.nibble()) != 0
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(10);
        v.push(CTL_DISCOVER_REQ | u8::from(self.prefix_only));
        v.push(self.type_filter);
        v.extend_from_slice(&self.tag.to_le_bytes());
        v.extend_from_slice(&self.since.to_le_bytes());
        v
    }
}

/// A node discovery answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoverResp {
    pub node_type: NodeType,
    /// SNR of the request as the answering node heard it, × 4.
    pub snr_x4: i8,
    pub tag: u32,
    /// The whole key, or its first 8 bytes.
    pub key: Vec<u8>,
}

impl DiscoverResp {
    /// The answer of `key` to `req`, heard at `snr_db`.
    pub fn answer(req: &DiscoverReq, node_type: NodeType, key: &PublicKey, snr_db: f32) -> Self {
        let n = if req.prefix_only {
            DISCOVER_PREFIX_LEN
        } else {
            key.0.len()
        };
        DiscoverResp {
            node_type,
            snr_x4: (snr_db * 4.0).round().clamp(-128.0, 127.0) as i8,
            tag: req.tag,
            key: key.0[..n].to_vec(),
        }
    }

    /// `None` when it is not a discovery answer or is too short for a key prefix.
    pub fn parse(b: &[u8]) -> Option<DiscoverResp> {
        if b.len() < 6 + DISCOVER_PREFIX_LEN || b[0] & 0xF0 != CTL_DISCOVER_RESP {
            return None;
        }
        Some(DiscoverResp {
            node_type: NodeType::from_nibble(b[0]),
            snr_x4: b[1] as i8,
            tag: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            key: b[6..].iter().take(32).copied().collect(),
        })
    }

    /// The full key, when the answer carries it.
    pub fn public_key(&self) -> Option<PublicKey> {
        <[u8; 32]>::try_from(self.key.as_slice())
            .ok()
            .map(PublicKey)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(6 + self.key.len());
        v.push(CTL_DISCOVER_RESP | self.node_type.nibble());
        v.push(self.snr_x4 as u8);
        v.extend_from_slice(&self.tag.to_le_bytes());
        v.extend_from_slice(&self.key);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_answer_round_trip_with_the_firmware_layout() {
        // sendNodeDiscoverReq: 0x80, 1 << ADV_TYPE_REPEATER (2), tag, since 0.
        let req = DiscoverReq::parse(&[0x80, 0x04, 1, 2, 3, 4, 0, 0, 0, 0]).unwrap();
        assert!(req.wants(NodeType::Repeater) && !req.wants(NodeType::RoomServer));
        assert_eq!(req.tag, 0x0403_0201);
        assert_eq!(
            DiscoverReq::new(&[NodeType::RoomServer], 7).to_vec()[..2],
            [0x80, 0x08]
        );
        let key = PublicKey([0xAB; 32]);
        let short = DiscoverReq {
            prefix_only: true,
            ..req.clone()
        };
        let resp = DiscoverResp::answer(&short, NodeType::RoomServer, &key, -2.25);
        let bytes = resp.to_vec();
        assert_eq!(bytes[..6], [0x93, (-9i8) as u8, 1, 2, 3, 4]);
        assert_eq!(bytes.len(), 6 + 8);
        assert_eq!(DiscoverResp::parse(&bytes).unwrap(), resp);
        let full = DiscoverResp::answer(&req, NodeType::RoomServer, &key, 6.5).to_vec();
        assert_eq!(full.len(), 6 + 32);
        assert_eq!(DiscoverResp::parse(&full).unwrap().public_key(), Some(key));
        assert!(DiscoverReq::parse(&[0x80, 0x08, 1]).is_none());
        assert!(DiscoverReq::parse(&[0x90, 0x08, 1, 2, 3, 4]).is_none());
    }
}
