//! The seal of a private room's datagrams: ChaCha20-Poly1305 under a key derived from the PSK.
//!
//! Host programs without the room's PSK see that a private room has traffic (sizes, times) but
//! nothing of what it says, and cannot post into it.
//!
//! **Key.** `HKDF-SHA256(salt = none, ikm = PSK as UTF-8, info = "meshroom-gw tun seal v1" ||
//! 0x00 || room name as UTF-8)`, 32 bytes. The room name in `info` gives two rooms that share a
//! PSK different keys; every server with the same room name and PSK derives the same key. A PSK
//! is a password: the seal is as strong as the PSK is hard to guess.
//!
//! **Datagram** (UDP payload), all sizes in bytes:
//!
//! | offset | size | content                                                    |
//! |--------|------|------------------------------------------------------------|
//! | 0      | 4    | magic `4d 52 53 31` (`"MRS1"`: meshroom sealed, version 1)  |
//! | 4      | 12   | nonce, fresh random bytes for every datagram               |
//! | 16     | n    | ChaCha20-Poly1305 ciphertext of the plaintext payload      |
//! | 16 + n | 16   | Poly1305 tag                                               |
//!
//! The associated data is the 4 magic bytes. The plaintext is exactly what a public room would
//! carry (the JSON line of `datagram.rs`, or plain text inbound). Overhead: 32 bytes. A replayed
//! datagram opens fine but carries a post id the hub has already seen, so it posts nothing.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::tun::counters::DropReason;

pub const SEAL_MAGIC: [u8; 4] = *b"MRS1";
pub const SEAL_KDF_CONTEXT: &[u8] = b"meshroom-gw tun seal v1";
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const SEAL_OVERHEAD: usize = SEAL_MAGIC.len() + NONCE_LEN + TAG_LEN;

/// A room's seal key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SealKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    pub fn derive(psk: &str, room: &str) -> Self {
        let mut info = Vec::with_capacity(SEAL_KDF_CONTEXT.len() + 1 + room.len());
        info.extend_from_slice(SEAL_KDF_CONTEXT);
        info.push(0);
        info.extend_from_slice(room.as_bytes());
        let mut key = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's 255 * 32 byte limit, so expand cannot fail.
        let _ = Hkdf::<Sha256>::new(None, psk.as_bytes()).expand(&info, &mut key);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
        key.fill(0);
        SealKey { cipher }
    }

    /// Seals `plaintext` with the given nonce; the caller supplies fresh random bytes.
    pub fn seal(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8]) -> Vec<u8> {
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &SEAL_MAGIC,
                },
            )
            // ChaCha20-Poly1305 only fails for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
        out.extend_from_slice(&SEAL_MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Seals with a fresh random nonce.
    pub fn seal_random(&self, plaintext: &[u8]) -> Vec<u8> {
        self.seal(rand::random(), plaintext)
    }

    /// Opens a sealed datagram: `Unsealed` if it does not carry the seal at all, `BadSeal` if it
    /// does but was not sealed with this key (or was altered).
    pub fn open(&self, datagram: &[u8]) -> Result<Vec<u8>, DropReason> {
        let (magic, rest) = datagram
            .split_first_chunk::<4>()
            .ok_or(DropReason::Unsealed)?;
        if *magic != SEAL_MAGIC {
            return Err(DropReason::Unsealed);
        }
        let (nonce, sealed) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(DropReason::BadSeal)?;
        if sealed.len() < TAG_LEN {
            return Err(DropReason::BadSeal);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &SEAL_MAGIC,
                },
            )
            .map_err(|_| DropReason::BadSeal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_datagram_has_the_documented_layout_and_opens() {
        let key = SealKey::derive("hunter2", "ops");
        let nonce = [7u8; 12];
        let sealed = key.seal(nonce, b"secret words");
        assert_eq!(&sealed[..4], b"MRS1");
        assert_eq!(&sealed[4..16], &nonce);
        assert_eq!(sealed.len(), b"secret words".len() + SEAL_OVERHEAD);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open(&sealed).unwrap(), b"secret words");
    }

    #[test]
    fn key_derivation_matches_hkdf_sha256_with_the_documented_info() {
        // Independent recomputation of the documented derivation.
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(None, b"hunter2")
            .expand(b"meshroom-gw tun seal v1\0ops", &mut okm)
            .unwrap();
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&okm));
        let nonce = [1u8; 12];
        let mut expect = SEAL_MAGIC.to_vec();
        expect.extend_from_slice(&nonce);
        expect.extend(
            cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: b"x",
                        aad: b"MRS1",
                    },
                )
                .unwrap(),
        );
        assert_eq!(SealKey::derive("hunter2", "ops").seal(nonce, b"x"), expect);
    }

    #[test]
    fn random_nonces_differ() {
        let key = SealKey::derive("p", "r");
        assert_ne!(key.seal_random(b"same"), key.seal_random(b"same"));
    }

    #[test]
    fn wrong_key_other_room_tampering_and_plain_text_are_refused() {
        let key = SealKey::derive("hunter2", "ops");
        let sealed = key.seal([3; 12], b"hello");
        assert_eq!(
            SealKey::derive("hunter3", "ops").open(&sealed),
            Err(DropReason::BadSeal)
        );
        assert_eq!(
            SealKey::derive("hunter2", "ops2").open(&sealed),
            Err(DropReason::BadSeal)
        );
        let mut bent = sealed.clone();
        let last = bent.len() - 1;
        bent[last] ^= 1;
        assert_eq!(key.open(&bent), Err(DropReason::BadSeal));
        assert_eq!(key.open(b"hello"), Err(DropReason::Unsealed));
        assert_eq!(key.open(b"MRS"), Err(DropReason::Unsealed));
        assert_eq!(key.open(b"MRS1short"), Err(DropReason::BadSeal));
        assert_eq!(key.open(&sealed[..20]), Err(DropReason::BadSeal));
    }

    #[test]
    fn debug_does_not_show_key_material() {
        assert_eq!(
            format!("{:?}", SealKey::derive("hunter2", "ops")),
            "SealKey(<redacted>)"
        );
    }
}
