//! The MeshCore on-air frame: header, optional transport codes, encoded path, payload
//! (protocol sheet §2).
//!
//! Two layers, as in `smoltcp::wire`: [`Frame`] is a checked, zero-copy view over a received
//! buffer, and [`PacketRepr`] is the owned, high-level representation that [`PacketRepr::parse`]
//! builds from a view and [`PacketRepr::emit`] writes back byte for byte. The payload stays raw
//! bytes here; `payload.rs` gives each payload type its own representation.

use std::fmt;

use thiserror::Error;

/// Longest frame a LoRa packet carries (`MAX_TRANS_UNIT`).
pub const MAX_TRANS_UNIT: usize = 255;
/// Longest payload a receiver accepts (`MAX_PACKET_PAYLOAD`).
pub const MAX_PACKET_PAYLOAD: usize = 184;
/// Longest path, in bytes (`MAX_PATH_SIZE`).
pub const MAX_PATH_SIZE: usize = 64;

/// Why a frame was not accepted. Every variant is a drop reason with its own counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
pub enum WireError {
    #[error("frame shorter than its header")]
    Truncated,
    #[error("frame longer than 255 bytes")]
    TooLong,
    #[error("payload version above 0")]
    UnsupportedVersion,
    #[error("path hash size code 3 is reserved")]
    BadPathHashSize,
    #[error("path longer than 64 bytes")]
    PathTooLong,
    #[error("payload longer than 184 bytes")]
    PayloadTooLong,
    #[error("payload shorter than its type's minimum")]
    PayloadTooShort,
    #[error("reserved payload type")]
    ReservedPayloadType,
}

impl WireError {
    /// Stable label for counters and `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::TooLong => "too_long",
            WireError::UnsupportedVersion => "unsupported_version",
            WireError::BadPathHashSize => "bad_path_hash_size",
            WireError::PathTooLong => "path_too_long",
            WireError::PayloadTooLong => "payload_too_long",
            WireError::PayloadTooShort => "payload_too_short",
            WireError::ReservedPayloadType => "reserved_payload_type",
        }
    }
}

/// Header bits 0–1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteType {
    TransportFlood = 0,
    Flood = 1,
    Direct = 2,
    TransportDirect = 3,
}

impl RouteType {
    fn from_bits(bits: u8) -> RouteType {
        match bits & 0x03 {
            0 => RouteType::TransportFlood,
            1 => RouteType::Flood,
            2 => RouteType::Direct,
            _ => RouteType::TransportDirect,
        }
    }

    /// Route types 0 and 3 carry the 4 bytes of transport codes.
    pub fn has_transport_codes(self) -> bool {
        matches!(self, RouteType::TransportFlood | RouteType::TransportDirect)
    }

    pub fn is_flood(self) -> bool {
        matches!(self, RouteType::TransportFlood | RouteType::Flood)
    }
}

/// Header bits 2–5 (protocol sheet §2, payload type table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    Req = 0x00,
    Response = 0x01,
    TxtMsg = 0x02,
    Ack = 0x03,
    Advert = 0x04,
    GrpTxt = 0x05,
    GrpData = 0x06,
    AnonReq = 0x07,
    Path = 0x08,
    Trace = 0x09,
    Multipart = 0x0A,
    Control = 0x0B,
    RawCustom = 0x0F,
}

impl PayloadType {
    pub fn from_u8(v: u8) -> Option<PayloadType> {
        Some(match v {
            0x00 => PayloadType::Req,
            0x01 => PayloadType::Response,
            0x02 => PayloadType::TxtMsg,
            0x03 => PayloadType::Ack,
            0x04 => PayloadType::Advert,
            0x05 => PayloadType::GrpTxt,
            0x06 => PayloadType::GrpData,
            0x07 => PayloadType::AnonReq,
            0x08 => PayloadType::Path,
            0x09 => PayloadType::Trace,
            0x0A => PayloadType::Multipart,
            0x0B => PayloadType::Control,
            0x0F => PayloadType::RawCustom,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The encoded `path_len` byte: hop count in bits 0–5, hash size − 1 in bits 6–7.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PathLen(u8);

impl PathLen {
    /// Zero hops with 1-byte hashes: what a flood originator sends.
    pub const EMPTY: PathLen = PathLen(0);

    /// Checks the size code and the 64-byte limit.
    pub fn from_encoded(byte: u8) -> Result<PathLen, WireError> {
        let p = PathLen(byte);
        if byte >> 6 == 3 {
            return Err(WireError::BadPathHashSize);
        }
        if p.byte_len() > MAX_PATH_SIZE {
            return Err(WireError::PathTooLong);
        }
        Ok(p)
    }

    /// `hash_size` must be 1, 2 or 3 and `hops * hash_size` at most 64.
    pub fn new(hops: u8, hash_size: u8) -> Result<PathLen, WireError> {
        if !(1..=3).contains(&hash_size) {
            return Err(WireError::BadPathHashSize);
        }
        if hops > 63 {
            return Err(WireError::PathTooLong);
        }
        PathLen::from_encoded(((hash_size - 1) << 6) | hops)
    }

    pub fn encoded(self) -> u8 {
        self.0
    }
    pub fn hops(self) -> u8 {
        self.0 & 0x3F
    }
    pub fn hash_size(self) -> u8 {
        (self.0 >> 6) + 1
    }
    pub fn byte_len(self) -> usize {
        self.hops() as usize * self.hash_size() as usize
    }
}

impl fmt::Debug for PathLen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PathLen({} hops x {} B)", self.hops(), self.hash_size())
    }
}

/// A path: the encoded length and the hash bytes it covers.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Path {
    len: PathLen,
    bytes: Vec<u8>,
}

impl Path {
    /// An empty path with 1-byte hashes.
    pub fn empty() -> Path {
        Path::default()
    }

    /// Builds a path from its encoded length and exactly `len.byte_len()` bytes.
    pub fn new(len: PathLen, bytes: &[u8]) -> Result<Path, WireError> {
        if bytes.len() != len.byte_len() {
            return Err(WireError::Truncated);
        }
        Ok(Path {
            len,
            bytes: bytes.to_vec(),
        })
    }

    /// Reads `path_len` then the path bytes from the front of `buf`; returns the rest.
    pub fn parse_prefixed(buf: &[u8]) -> Result<(Path, &[u8]), WireError> {
        let (&first, rest) = buf.split_first().ok_or(WireError::Truncated)?;
        let len = PathLen::from_encoded(first)?;
        let n = len.byte_len();
        if rest.len() < n {
            return Err(WireError::Truncated);
        }
        let (bytes, rest) = rest.split_at(n);
        Ok((Path::new(len, bytes)?, rest))
    }

    /// Writes `path_len` then the path bytes.
    pub fn emit_prefixed(&self, out: &mut Vec<u8>) {
        out.push(self.len.encoded());
        out.extend_from_slice(&self.bytes);
    }

    pub fn len(&self) -> PathLen {
        self.len
    }
    pub fn hops(&self) -> u8 {
        self.len().hops()
    }
    pub fn is_empty(&self) -> bool {
        self.hops() == 0
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn hash_size(&self) -> u8 {
        self.len().hash_size()
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Path[{}x{}B: {}]",
            self.hops(),
            self.hash_size(),
            hex::encode(&self.bytes)
        )
    }
}

mod field {
    pub const HEADER: usize = 0;
    pub const TRANSPORT_CODES: core::ops::Range<usize> = 1..5;
}

/// A checked, read-only view of one received frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
    path_len_at: usize,
    path_len: PathLen,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks every limit of §2: length, version, path size code and length, payload length.
    /// The payload type is not checked here (see [`Frame::payload_type`]).
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let b = buffer.as_ref();
        if b.len() > MAX_TRANS_UNIT {
            return Err(WireError::TooLong);
        }
        let header = *b.first().ok_or(WireError::Truncated)?;
        if header >> 6 != 0 {
            return Err(WireError::UnsupportedVersion);
        }
        let path_len_at = if RouteType::from_bits(header).has_transport_codes() {
            field::TRANSPORT_CODES.end
        } else {
            1
        };
        let path_len = PathLen::from_encoded(*b.get(path_len_at).ok_or(WireError::Truncated)?)?;
        let payload_at = path_len_at + 1 + path_len.byte_len();
        if b.len() < payload_at {
            return Err(WireError::Truncated);
        }
        if b.len() - payload_at > MAX_PACKET_PAYLOAD {
            return Err(WireError::PayloadTooLong);
        }
        Ok(Frame {
            buffer,
            path_len_at,
            path_len,
        })
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn header(&self) -> u8 {
        self.bytes()[field::HEADER]
    }
    pub fn route_type(&self) -> RouteType {
        RouteType::from_bits(self.header())
    }
    /// `None` for the reserved values 0x0C–0x0E.
    pub fn payload_type(&self) -> Option<PayloadType> {
        PayloadType::from_u8((self.header() >> 2) & 0x0F)
    }
    pub fn transport_codes(&self) -> Option<[u16; 2]> {
        if !self.route_type().has_transport_codes() {
            return None;
        }
        let c = &self.bytes()[field::TRANSPORT_CODES];
        Some([
            u16::from_le_bytes([c[0], c[1]]),
            u16::from_le_bytes([c[2], c[3]]),
        ])
    }
    pub fn path_len(&self) -> PathLen {
        self.path_len
    }
    pub fn path(&self) -> &[u8] {
        let start = self.path_len_at + 1;
        &self.bytes()[start..start + self.path_len.byte_len()]
    }
    pub fn payload(&self) -> &[u8] {
        &self.bytes()[self.path_len_at + 1 + self.path_len.byte_len()..]
    }
}

/// A whole packet, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketRepr {
    pub route: RouteType,
    pub payload_type: PayloadType,
    /// Present exactly when `route.has_transport_codes()`.
    pub transport_codes: Option<[u16; 2]>,
    pub path: Path,
    pub payload: Vec<u8>,
}

impl PacketRepr {
    /// Parses a checked frame; rejects reserved payload types.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Result<PacketRepr, WireError> {
        let payload_type = frame.payload_type().ok_or(WireError::ReservedPayloadType)?;
        Ok(PacketRepr {
            route: frame.route_type(),
            payload_type,
            transport_codes: frame.transport_codes(),
            path: Path::new(frame.path_len(), frame.path())?,
            payload: frame.payload().to_vec(),
        })
    }

    /// Checks and parses raw bytes in one step.
    pub fn from_bytes(bytes: &[u8]) -> Result<PacketRepr, WireError> {
        PacketRepr::parse(&Frame::new_checked(bytes)?)
    }

    /// A packet without transport codes.
    pub fn new(route: RouteType, payload_type: PayloadType, path: Path, payload: Vec<u8>) -> Self {
        let transport_codes = route.has_transport_codes().then_some([0, 0]);
        PacketRepr {
            route,
            payload_type,
            transport_codes,
            path,
            payload,
        }
    }

    pub fn header(&self) -> u8 {
        (self.payload_type.as_u8() << 2) | self.route as u8
    }

    pub fn buffer_len(&self) -> usize {
        let codes = if self.route.has_transport_codes() {
            4
        } else {
            0
        };
        1 + codes + 1 + self.path.bytes().len() + self.payload.len()
    }

    /// Appends the frame's bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.header());
        if self.route.has_transport_codes() {
            let codes = self.transport_codes.unwrap_or([0, 0]);
            out.extend_from_slice(&codes[0].to_le_bytes());
            out.extend_from_slice(&codes[1].to_le_bytes());
        }
        self.path.emit_prefixed(out);
        out.extend_from_slice(&self.payload);
    }

    /// The frame's bytes, checked against the limits a receiver applies.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WireError> {
        if self.payload.len() > MAX_PACKET_PAYLOAD {
            return Err(WireError::PayloadTooLong);
        }
        let mut out = Vec::with_capacity(self.buffer_len());
        self.emit(&mut out);
        Ok(out)
    }

    /// The firmware's dedup hash (§11): SHA-256(type ‖ [TRACE: path_len u16 LE] ‖ payload)[0..8].
    pub fn packet_hash(&self) -> [u8; 8] {
        crate::meshcore::wire::crypto::packet_hash(
            self.payload_type,
            self.path.len().encoded(),
            &self.payload,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_len_encoding_examples_from_the_sheet() {
        assert_eq!(PathLen::from_encoded(0x05).unwrap().byte_len(), 5);
        let p = PathLen::from_encoded(0x45).unwrap();
        assert_eq!((p.hops(), p.hash_size(), p.byte_len()), (5, 2, 10));
        let p = PathLen::from_encoded(0x8A).unwrap();
        assert_eq!((p.hops(), p.hash_size(), p.byte_len()), (10, 3, 30));
        assert_eq!(PathLen::from_encoded(0xC1), Err(WireError::BadPathHashSize));
        // 22 three-byte hops = 66 bytes > 64.
        assert_eq!(
            PathLen::from_encoded(0x80 | 22),
            Err(WireError::PathTooLong)
        );
        assert_eq!(PathLen::new(5, 2).unwrap().encoded(), 0x45);
    }

    #[test]
    fn transport_codes_round_trip() {
        let repr = PacketRepr {
            route: RouteType::TransportFlood,
            payload_type: PayloadType::TxtMsg,
            transport_codes: Some([0x1234, 0]),
            path: Path::new(PathLen::new(2, 2).unwrap(), &[1, 2, 3, 4]).unwrap(),
            payload: vec![9; 20],
        };
        let bytes = repr.to_bytes().unwrap();
        assert_eq!(&bytes[..6], &[0x08, 0x34, 0x12, 0, 0, 0x42]);
        assert_eq!(PacketRepr::from_bytes(&bytes).unwrap(), repr);
    }

    #[test]
    fn limits_are_enforced() {
        assert_eq!(
            Frame::new_checked(&[0x41u8, 0][..]).err(),
            Some(WireError::UnsupportedVersion)
        );
        let mut big = vec![0x09, 0x00];
        big.extend(std::iter::repeat_n(0u8, 185));
        assert_eq!(
            Frame::new_checked(&big[..]).err(),
            Some(WireError::PayloadTooLong)
        );
        assert_eq!(
            Frame::new_checked(&[0x09u8, 0x03, 1, 2][..]).err(),
            Some(WireError::Truncated)
        );
        assert_eq!(
            PacketRepr::from_bytes(&[0x0Cu8 << 2 | 1, 0, 1, 2]).err(),
            Some(WireError::ReservedPayloadType)
        );
    }
}
