//! Keys derived from secrets: the per-pair peer secret and each private room's PSK.
//!
//! Nothing here ever leaves the process in the clear. From the pair's secret we derive a
//! *key id* (which the dialer sends so the listener can pick the right secret without trying
//! each one) and the Noise PSK; both are HMAC-SHA256 outputs keyed by the secret under distinct
//! labels, so neither reveals the secret nor the other. A room's PSK is only used as the key
//! of the room-proof MAC (see `rooms`).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const KEY_ID_LABEL: &[u8] = b"meshroom-gw/federation/key-id/v1";
const NOISE_PSK_LABEL: &[u8] = b"meshroom-gw/federation/noise-psk/v1";
const ROOM_KEY_LABEL: &[u8] = b"meshroom-gw/federation/room-key/v1";

/// Identifies a pair secret on the wire without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 16]);

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", hex::encode(self.0))
    }
}

pub(crate) fn hmac32(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail; the fallback keeps it panic-free.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The secret shared by one pair of servers, with what is derived from it.
#[derive(Clone)]
pub struct PeerSecret {
    key_id: KeyId,
    noise_psk: [u8; 32],
}

impl PeerSecret {
    pub fn new(secret: &str) -> Self {
        let id = hmac32(secret.as_bytes(), &[KEY_ID_LABEL]);
        let mut key_id = [0u8; 16];
        key_id.copy_from_slice(&id[..16]);
        PeerSecret {
            key_id: KeyId(key_id),
            noise_psk: hmac32(secret.as_bytes(), &[NOISE_PSK_LABEL]),
        }
    }

    /// A secret presenting someone else's key id: what an attacker who saw a key id on the
    /// wire but does not hold the secret can build.
    #[cfg(test)]
    pub(crate) fn forged(key_id: KeyId, guess: &str) -> Self {
        PeerSecret {
            key_id,
            noise_psk: PeerSecret::new(guess).noise_psk,
        }
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub(crate) fn noise_psk(&self) -> &[u8; 32] {
        &self.noise_psk
    }
}

impl fmt::Debug for PeerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerSecret({:?}, <redacted>)", self.key_id)
    }
}

/// The MAC key derived from a private room's PSK.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey([u8; 32]);

impl RoomKey {
    pub fn new(psk: &str) -> Self {
        RoomKey(hmac32(psk.as_bytes(), &[ROOM_KEY_LABEL]))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RoomKey {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        _f.write_str("RoomKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_stable_distinct_and_not_the_secret() {
        let a = PeerSecret::new("correct horse battery staple");
        let b = PeerSecret::new("correct horse battery staple");
        let c = PeerSecret::new("correct horse battery stapler");
        assert_eq!(a.key_id(), b.key_id());
        assert_ne!(a.key_id(), c.key_id());
        assert_ne!(&a.key_id().0[..], &a.noise_psk()[..16]);
        let shown = format!("{a:?}");
        assert!(!shown.contains("horse"));
        assert!(!shown.contains(&hex::encode(a.noise_psk())));
    }
}
