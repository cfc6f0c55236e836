//! Plaintexts carried inside encrypted payloads (protocol sheet §7–§10): direct text, room
//! login request and reply, PATH bodies, requests, responses and the GET_STATUS body.
//!
//! Decrypted buffers carry zero padding up to a multiple of 16, so every parser here ends text
//! at the first NUL and never trusts the decrypted length.

use super::crypto::ack_hash;
use super::identity::PublicKey;
use super::packet::{Path, PayloadType, WireError};

/// Longest text a client sends (`MAX_TEXT_LEN`).
pub const MAX_TEXT_LEN: usize = 160;
/// Longest post text a room server stores, as the firmware does.
pub const MAX_POST_TEXT: usize = 150;
/// Longest datagram plaintext (§4).
pub const MAX_DATAGRAM_PLAINTEXT: usize = 167;
/// Longest text that fits a SIGNED_PLAIN push: 167 − ts(4) − flags(1) − prefix(4).
pub const MAX_PUSH_TEXT: usize = MAX_DATAGRAM_PLAINTEXT - 9;
/// Longest password a client sends.
pub const MAX_PASSWORD_LEN: usize = 15;

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn until_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// TXT_MSG flags' upper six bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxtType {
    Plain,
    CliData,
    SignedPlain,
    Other(u8),
}

impl TxtType {
    pub fn from_bits(v: u8) -> TxtType {
        match v {
            0 => TxtType::Plain,
            1 => TxtType::CliData,
            2 => TxtType::SignedPlain,
            o => TxtType::Other(o),
        }
    }
    pub fn bits(self) -> u8 {
        match self {
            TxtType::Plain => 0,
            TxtType::CliData => 1,
            TxtType::SignedPlain => 2,
            TxtType::Other(o) => o & 0x3F,
        }
    }
}

/// TXT_MSG plaintext: `timestamp(4) flags(1) [author_prefix(4) for SIGNED_PLAIN] text
/// [NUL attempt, when attempt > 3]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextMessage {
    pub timestamp: u32,
    pub txt_type: TxtType,
    /// Full attempt number; the flags byte keeps `attempt & 3`.
    pub attempt: u8,
    pub author_prefix: Option<[u8; 4]>,
    /// Raw text bytes (no NUL). Usually UTF-8; see [`TextMessage::text_lossy`].
    pub text: Vec<u8>,
}

impl TextMessage {
    pub fn plain(timestamp: u32, attempt: u8, text: &str) -> TextMessage {
        TextMessage {
            timestamp,
            txt_type: TxtType::Plain,
            attempt,
            author_prefix: None,
            text: text.as_bytes().to_vec(),
        }
    }

    pub fn signed(timestamp: u32, attempt: u8, author_prefix: [u8; 4], text: &str) -> TextMessage {
        TextMessage {
            timestamp,
            txt_type: TxtType::SignedPlain,
            attempt,
            author_prefix: Some(author_prefix),
            text: text.as_bytes().to_vec(),
        }
    }

    pub fn flags(&self) -> u8 {
        (self.txt_type.bits() << 2) | (self.attempt & 3)
    }

    pub fn parse(plain: &[u8]) -> Result<TextMessage, WireError> {
        if plain.len() < 5 {
            return Err(WireError::PayloadTooShort);
        }
        let timestamp = le32(plain);
        let flags = plain[4];
        let txt_type = TxtType::from_bits(flags >> 2);
        let mut body = &plain[5..];
        let author_prefix = if txt_type == TxtType::SignedPlain {
            if body.len() < 4 {
                return Err(WireError::PayloadTooShort);
            }
            let p = [body[0], body[1], body[2], body[3]];
            body = &body[4..];
            Some(p)
        } else {
            None
        };
        let text = until_nul(body);
        // An attempt above 3 travels after the text's NUL.
        let mut attempt = flags & 3;
        if let Some(&ext) = body.get(text.len() + 1) {
            if ext > 3 {
                attempt = ext;
            }
        }
        Ok(TextMessage {
            timestamp,
            txt_type,
            attempt,
            author_prefix,
            text: text.to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.push(self.flags());
        if let Some(p) = self.author_prefix {
            out.extend_from_slice(&p);
        }
        out.extend_from_slice(&self.text);
        if self.attempt > 3 {
            out.push(0);
            out.push(self.attempt);
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16 + self.text.len());
        self.emit(&mut v);
        v
    }

    /// §8: SHA-256(ts ‖ flags ‖ [prefix] ‖ text ‖ key)[0..4]. `key` is the sender's key for
    /// PLAIN/CLI and the recipient's for SIGNED_PLAIN pushes.
    pub fn ack_value(&self, key: &PublicKey) -> [u8; 4] {
        let ts = self.timestamp.to_le_bytes();
        let flags = [self.flags()];
        let prefix: &[u8] = match &self.author_prefix {
            Some(p) => p,
            None => &[],
        };
        ack_hash(&[&ts, &flags, prefix, &self.text, &key.0])
    }

    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }
}

/// Room login (ANON_REQ plaintext): `timestamp(4) sync_since(4) password(≤15, no NUL)`.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginRequest {
    pub timestamp: u32,
    pub sync_since: u32,
    pub password: Vec<u8>,
}

impl std::fmt::Debug for LoginRequest {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("timestamp", &self.timestamp)
            .field("sync_since", &self.sync_since)
            .field("password_len", &self.password.len())
            .finish()
    }
}

impl LoginRequest {
    pub fn parse(plain: &[u8]) -> Result<LoginRequest, WireError> {
        if plain.len() < 8 {
            return Err(WireError::PayloadTooShort);
        }
        let pw = until_nul(&plain[8..]);
        Ok(LoginRequest {
            timestamp: le32(plain),
            sync_since: le32(&plain[4..]),
            // The firmware keeps 15 bytes + NUL.
            password: pw[..pw.len().min(MAX_PASSWORD_LEN)].to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.sync_since.to_le_bytes());
        out.extend_from_slice(&self.password[..self.password.len().min(MAX_PASSWORD_LEN)]);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        self.emit(&mut v);
        v
    }
}

/// Response code of a successful room login.
pub const RESP_SERVER_LOGIN_OK: u8 = 0x00;
/// The firmware level a room server reports.
pub const FIRMWARE_VER_LEVEL: u8 = 1;

/// The 13-byte login reply (§10.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginReply {
    pub server_time: u32,
    pub resp_code: u8,
    /// Keep-alive interval / 16 s; 0 = clients send no keep-alives.
    pub keepalive_div16: u8,
    /// 1 admin, 2 when the permission byte is 0, else 0.
    pub admin_flag: u8,
    pub permissions: u8,
    pub random: [u8; 4],
    pub fw_level: u8,
}

impl LoginReply {
    pub const LEN: usize = 13;

    pub fn parse(b: &[u8]) -> Result<LoginReply, WireError> {
        if b.len() < LoginReply::LEN {
            return Err(WireError::PayloadTooShort);
        }
        Ok(LoginReply {
            server_time: le32(b),
            resp_code: b[4],
            keepalive_div16: b[5],
            admin_flag: b[6],
            permissions: b[7],
            random: [b[8], b[9], b[10], b[11]],
            fw_level: b[12],
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.server_time.to_le_bytes());
        out.extend_from_slice(&[
            self.resp_code,
            self.keepalive_div16,
            self.admin_flag,
            self.permissions,
        ]);
        out.extend_from_slice(&self.random);
        out.push(self.fw_level);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(LoginReply::LEN);
        self.emit(&mut v);
        v
    }
}

/// The "no extra" marker of a PATH body.
pub const PATH_EXTRA_NONE: u8 = 0xFF;

/// PATH plaintext: `path_len(1) path extra_type(1) extra…` (§8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathBody {
    pub path: Path,
    pub extra_type: u8,
    /// Extra bytes as decrypted (may carry zero padding at the end).
    pub extra: Vec<u8>,
}

impl PathBody {
    pub fn parse(plain: &[u8]) -> Result<PathBody, WireError> {
        let (path, rest) = Path::parse_prefixed(plain)?;
        let (&extra_type, extra) = rest.split_first().ok_or(WireError::PayloadTooShort)?;
        Ok(PathBody {
            path,
            extra_type,
            extra: extra.to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        self.path.emit_prefixed(out);
        out.push(self.extra_type);
        out.extend_from_slice(&self.extra);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32);
        self.emit(&mut v);
        v
    }

    /// The ACK value carried as extra, if any.
    pub fn ack(&self) -> Option<[u8; 4]> {
        if self.extra_type & 0x0F != PayloadType::Ack.as_u8() || self.extra_type == PATH_EXTRA_NONE
        {
            return None;
        }
        let e = self.extra.get(..4)?;
        Some([e[0], e[1], e[2], e[3]])
    }
}

/// Request types a room server answers (§9).
pub const REQ_GET_STATUS: u8 = 0x01;
pub const REQ_KEEP_ALIVE: u8 = 0x02;
pub const REQ_GET_TELEMETRY: u8 = 0x03;
pub const REQ_GET_ACCESS_LIST: u8 = 0x05;

/// REQ plaintext: `timestamp/tag(4) req_type(1) params…` (params keep any padding).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub timestamp: u32,
    pub req_type: u8,
    pub params: Vec<u8>,
}

impl Request {
    pub fn parse(plain: &[u8]) -> Result<Request, WireError> {
        if plain.len() < 5 {
            return Err(WireError::PayloadTooShort);
        }
        Ok(Request {
            timestamp: le32(plain),
            req_type: plain[4],
            params: plain[5..].to_vec(),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.push(self.req_type);
        out.extend_from_slice(&self.params);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        self.emit(&mut v);
        v
    }

    /// A keep-alive's `sync_since` (§10.6).
    pub fn keep_alive_sync_since(&self) -> Option<u32> {
        (self.req_type == REQ_KEEP_ALIVE && self.params.len() >= 4).then(|| le32(&self.params))
    }

    /// The keep-alive ACK: SHA-256(the 9 request bytes ‖ client key)[0..4].
    pub fn keep_alive_ack(&self, client: &PublicKey) -> [u8; 4] {
        let mut nine = Vec::with_capacity(9);
        nine.extend_from_slice(&self.timestamp.to_le_bytes());
        nine.push(self.req_type);
        nine.extend_from_slice(self.params.get(..4).unwrap_or(&[0, 0, 0, 0]));
        ack_hash(&[&nine, &client.0])
    }
}

/// RESPONSE plaintext: `the request's tag(4) body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub tag: u32,
    pub body: Vec<u8>,
}

impl Response {
    pub fn parse(plain: &[u8]) -> Result<Response, WireError> {
        if plain.len() < 4 {
            return Err(WireError::PayloadTooShort);
        }
        Ok(Response {
            tag: le32(plain),
            body: plain[4..].to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.to_le_bytes());
        out.extend_from_slice(&self.body);
    }
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.body.len());
        self.emit(&mut v);
        v
    }
}

/// The 52-byte GET_STATUS response body (§9), naturally aligned, little-endian.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusBody {
    pub batt_mv: u16,
    pub tx_queue: u16,
    pub noise_floor: i16,
    pub last_rssi: i16,
    pub pkts_recv: u32,
    pub pkts_sent: u32,
    pub airtime_s: u32,
    pub uptime_s: u32,
    pub sent_flood: u32,
    pub sent_direct: u32,
    pub recv_flood: u32,
    pub recv_direct: u32,
    pub err_flags: u16,
    /// SNR × 4.
    pub last_snr_x4: i16,
    pub direct_dups: u16,
    pub flood_dups: u16,
    pub n_posted: u16,
    pub n_post_push: u16,
}

impl StatusBody {
    pub const LEN: usize = 52;

    pub fn emit(&self, out: &mut Vec<u8>) {
        for v in [self.batt_mv, self.tx_queue] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.noise_floor, self.last_rssi] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.pkts_recv,
            self.pkts_sent,
            self.airtime_s,
            self.uptime_s,
            self.sent_flood,
            self.sent_direct,
            self.recv_flood,
            self.recv_direct,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.err_flags.to_le_bytes());
        out.extend_from_slice(&self.last_snr_x4.to_le_bytes());
        for v in [
            self.direct_dups,
            self.flood_dups,
            self.n_posted,
            self.n_post_push,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    pub fn parse(b: &[u8]) -> Result<StatusBody, WireError> {
        if b.len() < StatusBody::LEN {
            return Err(WireError::PayloadTooShort);
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let i16_at = |i: usize| i16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| le32(&b[i..]);
        Ok(StatusBody {
            batt_mv: u16_at(0),
            tx_queue: u16_at(2),
            noise_floor: i16_at(4),
            last_rssi: i16_at(6),
            pkts_recv: u32_at(8),
            pkts_sent: u32_at(12),
            airtime_s: u32_at(16),
            uptime_s: u32_at(20),
            sent_flood: u32_at(24),
            sent_direct: u32_at(28),
            recv_flood: u32_at(32),
            recv_direct: u32_at(36),
            err_flags: u16_at(40),
            last_snr_x4: i16_at(42),
            direct_dups: u16_at(44),
            flood_dups: u16_at(46),
            n_posted: u16_at(48),
            n_post_push: u16_at(50),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_is_52_bytes_and_round_trips() {
        let s = StatusBody {
            batt_mv: 1,
            last_rssi: -90,
            pkts_recv: 7,
            last_snr_x4: -22,
            n_post_push: 9,
            ..Default::default()
        };
        let mut v = vec![];
        s.emit(&mut v);
        assert_eq!(v.len(), StatusBody::LEN);
        assert_eq!(StatusBody::parse(&v).unwrap(), s);
    }

    #[test]
    fn extended_attempt_travels_after_the_nul() {
        let m = TextMessage::plain(5, 6, "hi");
        let v = m.to_vec();
        assert_eq!(v, [5, 0, 0, 0, 2, b'h', b'i', 0, 6]);
        assert_eq!(TextMessage::parse(&v).unwrap(), m);
    }
}
