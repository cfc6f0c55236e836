//! MeshCore's symmetric crypto and hashes (protocol sheet §3, §8, §11): AES-128-ECB with zero
//! padding, the 2-byte truncated HMAC-SHA256 (encrypt-then-MAC), the packet hash used for
//! dedup, ACK values, and channel keys.
//!
//! The key exchange that produces a [`SharedSecret`] lives with the identities (`identity.rs`).

use std::fmt;

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::packet::PayloadType;

/// AES block size; ciphertexts are always a multiple of it.
pub const CIPHER_BLOCK: usize = 16;
/// Truncated HMAC length on the wire.
pub const CIPHER_MAC: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CryptoError {
    #[error("ciphertext empty or not a multiple of 16 bytes")]
    BadLength,
    #[error("MAC does not verify")]
    BadMac,
    #[error("public key is not a valid Ed25519 point")]
    BadPublicKey,
}

/// A 32-byte secret shared by two parties (X25519 output, or a channel key zero-padded).
/// AES uses its first 16 bytes, the MAC all 32.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret(pub [u8; 32]);

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(..)")
    }
}

impl SharedSecret {
    fn cipher(&self) -> Aes128 {
        Aes128::new(GenericArray::from_slice(&self.0[..16]))
    }

    fn mac(&self, ciphertext: &[u8]) -> [u8; CIPHER_MAC] {
        // HMAC accepts any key length; a 32-byte key never fails.
        let mut m =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac());
        m.update(ciphertext);
        let tag = m.finalize().into_bytes();
        [tag[0], tag[1]]
    }

    /// Encrypt-then-MAC: returns `MAC(2) ‖ AES-ECB(plaintext zero-padded to 16)`.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = self.cipher();
        let blocks = plaintext.len().div_ceil(CIPHER_BLOCK).max(1);
        let mut out = vec![0u8; CIPHER_MAC + blocks * CIPHER_BLOCK];
        out[CIPHER_MAC..CIPHER_MAC + plaintext.len()].copy_from_slice(plaintext);
        for block in out[CIPHER_MAC..].chunks_exact_mut(CIPHER_BLOCK) {
            cipher.encrypt_block(GenericArray::from_mut_slice(block));
        }
        let mac = self.mac(&out[CIPHER_MAC..]);
        out[..CIPHER_MAC].copy_from_slice(&mac);
        out
    }

    /// Checks the MAC, then decrypts. The result keeps the zero padding: callers end text at
    /// the first NUL.
    pub fn open(&self, mac: [u8; CIPHER_MAC], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if ciphertext.is_empty() || ciphertext.len() % CIPHER_BLOCK != 0 {
            return Err(CryptoError::BadLength);
        }
        if self.mac(ciphertext) != mac {
            return Err(CryptoError::BadMac);
        }
        let cipher = self.cipher();
        let mut out = ciphertext.to_vec();
        for block in out.chunks_exact_mut(CIPHER_BLOCK) {
            cipher.decrypt_block(GenericArray::from_mut_slice(block));
        }
        Ok(out)
    }
}

fn unreachable_hmac() -> Hmac<Sha256> {
    // Hmac::new_from_slice only fails for fixed-size-key MACs; HMAC takes any length.
    unreachable!("HMAC-SHA256 accepts keys of any length")
}

/// §11: SHA-256(payload_type ‖ [TRACE only: path_len as u16 LE] ‖ payload)[0..8].
pub fn packet_hash(payload_type: PayloadType, path_len_encoded: u8, payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update([payload_type.as_u8()]);
    if payload_type == PayloadType::Trace {
        h.update((path_len_encoded as u16).to_le_bytes());
    }
    h.update(payload);
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// §8: an ACK value is the first 4 bytes of SHA-256 over the given parts (plaintext up to the
/// end of the text, then one public key).
pub fn ack_hash(parts: &[&[u8]]) -> [u8; 4] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A group channel (§6): 16- or 32-byte secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelKey {
    secret: SharedSecret,
    hash: u8,
}

impl fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelKey(hash {:02x})", self.hash)
    }
}

impl ChannelKey {
    /// The well-known Public channel key.
    pub const PUBLIC: [u8; 16] = [
        0x8b, 0x33, 0x87, 0xe9, 0xc5, 0xcd, 0xea, 0x6a, 0xc9, 0xe5, 0xed, 0xba, 0xa1, 0x15, 0xcd,
        0x72,
    ];

    /// A 16-byte key hashes over 16 bytes; a 32-byte key over 32 (the firmware treats a key
    /// whose upper half is zero as 128-bit).
    pub fn new(secret: &[u8]) -> Option<ChannelKey> {
        let mut buf = [0u8; 32];
        match secret.len() {
            16 | 32 => buf[..secret.len()].copy_from_slice(secret),
            _ => return None,
        }
        let hashed_len = if buf[16..].iter().all(|&b| b == 0) {
            16
        } else {
            32
        };
        let hash = Sha256::digest(&buf[..hashed_len])[0];
        Some(ChannelKey {
            secret: SharedSecret(buf),
            hash,
        })
    }

    /// `#name` channels: key = SHA-256 of the name including '#', first 16 bytes.
    pub fn hashtag(name: &str) -> ChannelKey {
        let tagged = if name.starts_with('#') {
            name.to_string()
        } else {
            format!("#{name}")
        };
        let d = Sha256::digest(tagged.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&d[..16]);
        // 16 bytes is always a valid length.
        ChannelKey::new(&key).unwrap_or_else(|| unreachable!("16-byte channel key"))
    }

    pub fn hash(&self) -> u8 {
        self.hash
    }
    pub fn secret(&self) -> &SharedSecret {
        &self.secret
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_padding() {
        let s = SharedSecret([7; 32]);
        let sealed = s.seal(b"0123456789abcdef!");
        assert_eq!(sealed.len(), 2 + 32);
        let plain = s.open([sealed[0], sealed[1]], &sealed[2..]).expect("opens");
        assert_eq!(&plain[..17], b"0123456789abcdef!");
        assert!(plain[17..].iter().all(|&b| b == 0));
        assert_eq!(
            s.open([sealed[0] ^ 1, sealed[1]], &sealed[2..]),
            Err(CryptoError::BadMac)
        );
        assert_eq!(s.open([0, 0], &sealed[2..5]), Err(CryptoError::BadLength));
    }

    #[test]
    fn public_and_hashtag_channel_hashes() {
        assert_eq!(ChannelKey::new(&ChannelKey::PUBLIC).unwrap().hash(), 0x11);
        let t = ChannelKey::hashtag("#test");
        assert_eq!(t.hash(), 0xd9);
        assert_eq!(
            hex::encode(&t.secret().0[..16]),
            "9cd8fcf22a47333b591d96a2b848b73f"
        );
    }
}
