//! ADVERT (protocol sheet §5): a node announcing its public key, clock and app data, signed
//! over `pubkey ‖ timestamp ‖ appdata`. Room servers advertise node type 3 under their name.

use super::identity::{LocalIdentity, PublicKey, PUB_KEY_SIZE, SIGNATURE_SIZE};
use super::packet::WireError;

/// Longest app data (`MAX_ADVERT_DATA_SIZE`).
pub const MAX_ADVERT_DATA_SIZE: usize = 32;

const FLAG_LOCATION: u8 = 0x10;
const FLAG_FEAT1: u8 = 0x20;
const FLAG_FEAT2: u8 = 0x40;
const FLAG_NAME: u8 = 0x80;

/// Advert flags' low nibble.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    None,
    Chat,
    Repeater,
    RoomServer,
    Sensor,
    Reserved(u8),
}

impl NodeType {
    pub fn from_nibble(n: u8) -> NodeType {
        match n & 0x0F {
            0 => NodeType::None,
            1 => NodeType::Chat,
            2 => NodeType::Repeater,
            3 => NodeType::RoomServer,
            4 => NodeType::Sensor,
            other => NodeType::Reserved(other),
        }
    }
    pub fn nibble(self) -> u8 {
        match self {
            NodeType::None => 0,
            NodeType::Chat => 1,
            NodeType::Repeater => 2,
            NodeType::RoomServer => 3,
            NodeType::Sensor => 4,
            NodeType::Reserved(n) => n & 0x0F,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::None => "none",
            NodeType::Chat => "chat",
            NodeType::Repeater => "repeater",
            NodeType::RoomServer => "room",
            NodeType::Sensor => "sensor",
            NodeType::Reserved(_) => "reserved",
        }
    }
}

/// The decoded app data: `flags [lat i32][lon i32] [feat1 u16] [feat2 u16] [name…]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppData {
    pub node_type: NodeType,
    /// Degrees × 1e6 (latitude, longitude).
    pub location: Option<(i32, i32)>,
    pub feat1: Option<u16>,
    pub feat2: Option<u16>,
    pub name: Option<String>,
}

impl AppData {
    /// A room server's app data; the name is cut at a UTF-8 boundary to fit 32 bytes.
    pub fn room(name: &str, location: Option<(i32, i32)>) -> AppData {
        AppData {
            node_type: NodeType::RoomServer,
            location,
            feat1: None,
            feat2: None,
            name: Some(name.to_string()),
        }
    }

    pub fn chat(name: &str) -> AppData {
        AppData {
            node_type: NodeType::Chat,
            location: None,
            feat1: None,
            feat2: None,
            name: Some(name.to_string()),
        }
    }

    pub fn parse(b: &[u8]) -> Result<AppData, WireError> {
        let b = &b[..b.len().min(MAX_ADVERT_DATA_SIZE)];
        let (&flags, mut rest) = b.split_first().ok_or(WireError::PayloadTooShort)?;
        let mut take = |n: usize| -> Result<&[u8], WireError> {
            if rest.len() < n {
                return Err(WireError::PayloadTooShort);
            }
            let (h, r) = rest.split_at(n);
            rest = r;
            Ok(h)
        };
        let i32_at = |s: &[u8]| i32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        let location = if flags & FLAG_LOCATION != 0 {
            let lat = i32_at(take(4)?);
            let lon = i32_at(take(4)?);
            Some((lat, lon))
        } else {
            None
        };
        let feat1 = if flags & FLAG_FEAT1 != 0 {
            let s = take(2)?;
            Some(u16::from_le_bytes([s[0], s[1]]))
        } else {
            None
        };
        let feat2 = if flags & FLAG_FEAT2 != 0 {
            let s = take(2)?;
            Some(u16::from_le_bytes([s[0], s[1]]))
        } else {
            None
        };
        let name = (flags & FLAG_NAME != 0).then(|| String::from_utf8_lossy(rest).into_owned());
        Ok(AppData {
            node_type: NodeType::from_nibble(flags),
            location,
            feat1,
            feat2,
            name,
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut flags = self.node_type.nibble();
        if self.location.is_some() {
            flags |= FLAG_LOCATION;
        }
        if self.feat1.is_some() {
            flags |= FLAG_FEAT1;
        }
        if self.feat2.is_some() {
            flags |= FLAG_FEAT2;
        }
        if self.name.is_some() {
            flags |= FLAG_NAME;
        }
        out.push(flags);
        if let Some((lat, lon)) = self.location {
            out.extend_from_slice(&lat.to_le_bytes());
            out.extend_from_slice(&lon.to_le_bytes());
        }
        if let Some(f) = self.feat1 {
            out.extend_from_slice(&f.to_le_bytes());
        }
        if let Some(f) = self.feat2 {
            out.extend_from_slice(&f.to_le_bytes());
        }
        if let Some(name) = &self.name {
            let room = MAX_ADVERT_DATA_SIZE - (out.len() - start);
            out.extend_from_slice(truncate_utf8(name, room).as_bytes());
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(MAX_ADVERT_DATA_SIZE);
        self.emit(&mut v);
        v
    }
}

/// The longest prefix of `s` that fits `max` bytes and ends on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// An ADVERT payload: `pubkey(32) timestamp(4) signature(64) appdata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub public_key: PublicKey,
    pub timestamp: u32,
    pub signature: [u8; SIGNATURE_SIZE],
    /// Raw app data as it travelled (the signature covers these exact bytes).
    pub appdata: Vec<u8>,
}

const ADVERT_FIXED: usize = PUB_KEY_SIZE + 4 + SIGNATURE_SIZE;

impl Advert {
    pub fn parse(b: &[u8]) -> Result<Advert, WireError> {
        if b.len() < ADVERT_FIXED {
            return Err(WireError::PayloadTooShort);
        }
        let mut public_key = [0u8; PUB_KEY_SIZE];
        public_key.copy_from_slice(&b[..PUB_KEY_SIZE]);
        let timestamp = u32::from_le_bytes([b[32], b[33], b[34], b[35]]);
        let mut signature = [0u8; SIGNATURE_SIZE];
        signature.copy_from_slice(&b[36..ADVERT_FIXED]);
        Ok(Advert {
            public_key: PublicKey(public_key),
            timestamp,
            signature,
            appdata: b[ADVERT_FIXED..].to_vec(),
        })
    }

    fn signed_message(public_key: &PublicKey, timestamp: u32, appdata: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(PUB_KEY_SIZE + 4 + appdata.len());
        m.extend_from_slice(&public_key.0);
        m.extend_from_slice(&timestamp.to_le_bytes());
        m.extend_from_slice(appdata);
        m
    }

    /// Builds and signs an advert for `identity`.
    pub fn sign(identity: &LocalIdentity, timestamp: u32, appdata: &AppData) -> Advert {
        let appdata = appdata.to_vec();
        let public_key = identity.public();
        let signature = identity.sign(&Advert::signed_message(&public_key, timestamp, &appdata));
        Advert {
            public_key,
            timestamp,
            signature,
            appdata,
        }
    }

    /// Whether the signature covers `pubkey ‖ timestamp ‖ appdata`.
    pub fn verify(&self) -> bool {
        let m = Advert::signed_message(&self.public_key, self.timestamp, &self.appdata);
        self.public_key.verify(&m, &self.signature)
    }

    pub fn app_data(&self) -> Result<AppData, WireError> {
        AppData::parse(&self.appdata)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.public_key.0);
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.appdata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let a = AppData::room("ääääääääääääääääääääää", Some((0, 0)));
        let v = a.to_vec();
        assert!(v.len() <= MAX_ADVERT_DATA_SIZE);
        let back = AppData::parse(&v).unwrap();
        assert_eq!(back.name.unwrap().chars().count(), 11);
        let a = AppData::room("a-very-long-room-name-that-does-not-fit", None);
        assert_eq!(a.to_vec().len(), MAX_ADVERT_DATA_SIZE);
    }
}
