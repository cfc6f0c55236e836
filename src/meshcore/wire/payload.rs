//! The payload of each packet type, as it travels (protocol sheet §2 table, §4). Encrypted
//! payloads stay encrypted here: a [`Datagram`] holds its MAC and ciphertext, and the
//! plaintexts inside have their own representations in `message.rs`.
//!
//! Every representation has `parse(&[u8])` (checking the type's minimum length) and `emit`,
//! and `emit(parse(b)) == b` for every accepted `b`.

use super::advert::Advert;
use super::crypto::{CryptoError, SharedSecret, CIPHER_MAC};
use super::identity::{PublicKey, PUB_KEY_SIZE};
use super::packet::{PayloadType, WireError};

fn split<const N: usize>(b: &[u8]) -> Result<([u8; N], &[u8]), WireError> {
    if b.len() < N {
        return Err(WireError::PayloadTooShort);
    }
    let (head, rest) = b.split_at(N);
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok((out, rest))
}

/// REQ, RESPONSE, TXT_MSG and PATH share this envelope:
/// `dest_hash(1) src_hash(1) MAC(2) ciphertext`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub dest_hash: u8,
    pub src_hash: u8,
    pub mac: [u8; CIPHER_MAC],
    pub ciphertext: Vec<u8>,
}

impl Datagram {
    pub fn parse(b: &[u8]) -> Result<Datagram, WireError> {
        let ([dest_hash, src_hash, m0, m1], ciphertext) = split::<4>(b)?;
        if ciphertext.is_empty() {
            return Err(WireError::PayloadTooShort);
        }
        Ok(Datagram {
            dest_hash,
            src_hash,
            mac: [m0, m1],
            ciphertext: ciphertext.to_vec(),
        })
    }

    /// Encrypts `plaintext` for the pair that shares `secret`.
    pub fn seal(dest_hash: u8, src_hash: u8, secret: &SharedSecret, plaintext: &[u8]) -> Datagram {
        let sealed = secret.seal(plaintext);
        Datagram {
            dest_hash,
            src_hash,
            mac: [sealed[0], sealed[1]],
            ciphertext: sealed[CIPHER_MAC..].to_vec(),
        }
    }

    pub fn open(&self, secret: &SharedSecret) -> Result<Vec<u8>, CryptoError> {
        secret.open(self.mac, &self.ciphertext)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.dest_hash, self.src_hash, self.mac[0], self.mac[1]]);
        out.extend_from_slice(&self.ciphertext);
    }
}

/// ANON_REQ: `dest_hash(1) sender_pubkey(32) MAC(2) ciphertext`; the key is
/// ECDH(recipient, sender_pubkey).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnonReq {
    pub dest_hash: u8,
    pub sender: PublicKey,
    pub mac: [u8; CIPHER_MAC],
    pub ciphertext: Vec<u8>,
}

impl AnonReq {
    pub fn parse(b: &[u8]) -> Result<AnonReq, WireError> {
        let ([dest_hash], rest) = split::<1>(b)?;
        let (sender, rest) = split::<PUB_KEY_SIZE>(rest)?;
        let (mac, ciphertext) = split::<CIPHER_MAC>(rest)?;
        if ciphertext.is_empty() {
            return Err(WireError::PayloadTooShort);
        }
        Ok(AnonReq {
            dest_hash,
            sender: PublicKey(sender),
            mac,
            ciphertext: ciphertext.to_vec(),
        })
    }

    pub fn seal(dest_hash: u8, sender: PublicKey, secret: &SharedSecret, plain: &[u8]) -> AnonReq {
        let sealed = secret.seal(plain);
        AnonReq {
            dest_hash,
            sender,
            mac: [sealed[0], sealed[1]],
            ciphertext: sealed[CIPHER_MAC..].to_vec(),
        }
    }

    pub fn open(&self, secret: &SharedSecret) -> Result<Vec<u8>, CryptoError> {
        secret.open(self.mac, &self.ciphertext)
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.dest_hash);
        out.extend_from_slice(&self.sender.0);
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.ciphertext);
    }
}

/// ACK: the 4-byte value, then any extra bytes (attempt + random, unsynced count). Only the
/// first 4 bytes are compared (§8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub crc: [u8; 4],
    pub extra: Vec<u8>,
}

impl Ack {
    pub fn parse(b: &[u8]) -> Result<Ack, WireError> {
        let (crc, extra) = split::<4>(b)?;
        Ok(Ack {
            crc,
            extra: extra.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.crc);
        out.extend_from_slice(&self.extra);
    }
}

/// GRP_TXT / GRP_DATA: `channel_hash(1) MAC(2) ciphertext`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMessage {
    pub channel_hash: u8,
    pub mac: [u8; CIPHER_MAC],
    pub ciphertext: Vec<u8>,
}

impl GroupMessage {
    pub fn parse(b: &[u8]) -> Result<GroupMessage, WireError> {
        let ([channel_hash, m0, m1], ciphertext) = split::<3>(b)?;
        if ciphertext.is_empty() {
            return Err(WireError::PayloadTooShort);
        }
        Ok(GroupMessage {
            channel_hash,
            mac: [m0, m1],
            ciphertext: ciphertext.to_vec(),
        })
    }
    pub fn seal(channel_hash: u8, secret: &SharedSecret, plain: &[u8]) -> GroupMessage {
        let sealed = secret.seal(plain);
        GroupMessage {
            channel_hash,
            mac: [sealed[0], sealed[1]],
            ciphertext: sealed[CIPHER_MAC..].to_vec(),
        }
    }
    pub fn open(&self, secret: &SharedSecret) -> Result<Vec<u8>, CryptoError> {
        secret.open(self.mac, &self.ciphertext)
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.channel_hash);
        out.extend_from_slice(&self.mac);
        out.extend_from_slice(&self.ciphertext);
    }
}

/// TRACE: `tag(4) auth(4) flags(1)` then path hashes and SNRs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub tag: u32,
    pub auth: u32,
    pub flags: u8,
    pub hops: Vec<u8>,
}

impl Trace {
    pub fn parse(b: &[u8]) -> Result<Trace, WireError> {
        let (head, hops) = split::<9>(b)?;
        Ok(Trace {
            tag: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            auth: u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            flags: head[8],
            hops: hops.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.to_le_bytes());
        out.extend_from_slice(&self.auth.to_le_bytes());
        out.push(self.flags);
        out.extend_from_slice(&self.hops);
    }
}

/// MULTIPART: `byte0 = remaining<<4 | inner_type`, then the inner bytes (multi-ACK today).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub remaining: u8,
    pub inner_type: u8,
    pub data: Vec<u8>,
}

impl Multipart {
    pub fn parse(b: &[u8]) -> Result<Multipart, WireError> {
        let ([b0], data) = split::<1>(b)?;
        Ok(Multipart {
            remaining: b0 >> 4,
            inner_type: b0 & 0x0F,
            data: data.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push((self.remaining << 4) | (self.inner_type & 0x0F));
        out.extend_from_slice(&self.data);
    }
}

/// CONTROL: `flags(1)` (upper nibble = subtype) and data, unencrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub flags: u8,
    pub data: Vec<u8>,
}

impl Control {
    pub fn parse(b: &[u8]) -> Result<Control, WireError> {
        let ([flags], data) = split::<1>(b)?;
        Ok(Control {
            flags,
            data: data.to_vec(),
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.flags);
        out.extend_from_slice(&self.data);
    }
}

/// Any payload, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Req(Datagram),
    Response(Datagram),
    TxtMsg(Datagram),
    Ack(Ack),
    Advert(Advert),
    GrpTxt(GroupMessage),
    GrpData(GroupMessage),
    AnonReq(AnonReq),
    Path(Datagram),
    Trace(Trace),
    Multipart(Multipart),
    Control(Control),
    RawCustom(Vec<u8>),
}

impl Payload {
    pub fn parse(payload_type: PayloadType, b: &[u8]) -> Result<Payload, WireError> {
        Ok(match payload_type {
            PayloadType::Req => Payload::Req(Datagram::parse(b)?),
            PayloadType::Response => Payload::Response(Datagram::parse(b)?),
            PayloadType::TxtMsg => Payload::TxtMsg(Datagram::parse(b)?),
            PayloadType::Ack => Payload::Ack(Ack::parse(b)?),
            PayloadType::Advert => Payload::Advert(Advert::parse(b)?),
            PayloadType::GrpTxt => Payload::GrpTxt(GroupMessage::parse(b)?),
            PayloadType::GrpData => Payload::GrpData(GroupMessage::parse(b)?),
            PayloadType::AnonReq => Payload::AnonReq(AnonReq::parse(b)?),
            PayloadType::Path => Payload::Path(Datagram::parse(b)?),
            PayloadType::Trace => Payload::Trace(Trace::parse(b)?),
            PayloadType::Multipart => Payload::Multipart(Multipart::parse(b)?),
            PayloadType::Control => Payload::Control(Control::parse(b)?),
            PayloadType::RawCustom => {
                if b.is_empty() {
                    return Err(WireError::PayloadTooShort);
                }
                Payload::RawCustom(b.to_vec())
            }
        })
    }

    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Req(_) => PayloadType::Req,
            Payload::Response(_) => PayloadType::Response,
            Payload::TxtMsg(_) => PayloadType::TxtMsg,
            Payload::Ack(_) => PayloadType::Ack,
            Payload::Advert(_) => PayloadType::Advert,
            Payload::GrpTxt(_) => PayloadType::GrpTxt,
            Payload::GrpData(_) => PayloadType::GrpData,
            Payload::AnonReq(_) => PayloadType::AnonReq,
            Payload::Path(_) => PayloadType::Path,
            Payload::Trace(_) => PayloadType::Trace,
            Payload::Multipart(_) => PayloadType::Multipart,
            Payload::Control(_) => PayloadType::Control,
            Payload::RawCustom(_) => PayloadType::RawCustom,
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Req(d) | Payload::Response(d) | Payload::TxtMsg(d) | Payload::Path(d) => {
                d.emit(out)
            }
            Payload::Ack(a) => a.emit(out),
            Payload::Advert(a) => a.emit(out),
            Payload::GrpTxt(g) | Payload::GrpData(g) => g.emit(out),
            Payload::AnonReq(a) => a.emit(out),
            Payload::Trace(t) => t.emit(out),
            Payload::Multipart(m) => m.emit(out),
            Payload::Control(c) => c.emit(out),
            Payload::RawCustom(r) => out.extend_from_slice(r),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.emit(&mut v);
        v
    }
}
