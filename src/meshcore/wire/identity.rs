//! Ed25519 identities as MeshCore keeps them (protocol sheet §3): the 64-byte "expanded"
//! private key (clamped scalar ‖ nonce prefix), signing from it, and the X25519 shared secret
//! computed from two Ed25519 keys.

use std::fmt;

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::{Signature, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha512};

use super::crypto::{CryptoError, SharedSecret};

pub const PUB_KEY_SIZE: usize = 32;
pub const PRV_KEY_SIZE: usize = 64;
pub const SIGNATURE_SIZE: usize = 64;

/// An Ed25519 public key; its first byte is the node's 1-byte "hash".
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; PUB_KEY_SIZE]);

impl PublicKey {
    pub fn from_slice(b: &[u8]) -> Option<PublicKey> {
        Some(PublicKey(b.try_into().ok()?))
    }

    pub fn from_hex(s: &str) -> Option<PublicKey> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(PublicKey(out))
    }

    /// The 1-byte hash used as dest/src hash and path entry.
    pub fn hash_byte(&self) -> u8 {
        self.0[0]
    }

    /// The 4-byte author prefix of SIGNED_PLAIN pushes.
    pub fn prefix4(&self) -> [u8; 4] {
        [self.0[0], self.0[1], self.0[2], self.0[3]]
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Verifies a standard Ed25519 signature; an invalid key simply fails.
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_SIZE]) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        vk.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(&self.0[..6]))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Our own identity: the firmware-format private key and what is derived from it.
pub struct LocalIdentity {
    prv: [u8; PRV_KEY_SIZE],
    esk: ExpandedSecretKey,
    verifying: VerifyingKey,
    public: PublicKey,
}

impl Clone for LocalIdentity {
    fn clone(&self) -> Self {
        LocalIdentity::from_prv64(&self.prv)
    }
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalIdentity({:?})", self.public)
    }
}

impl LocalIdentity {
    /// From the firmware's 64-byte private key. The public key is derived from the first 32
    /// bytes as given, like the firmware's import.
    pub fn from_prv64(prv: &[u8; PRV_KEY_SIZE]) -> LocalIdentity {
        let esk = ExpandedSecretKey::from_bytes(prv);
        let verifying = VerifyingKey::from(&esk);
        let public = PublicKey(verifying.to_bytes());
        LocalIdentity {
            prv: *prv,
            esk,
            verifying,
            public,
        }
    }

    /// From a 32-byte seed the way the firmware expands it: SHA-512, clamp the lower half.
    pub fn from_seed(seed: &[u8; 32]) -> LocalIdentity {
        let digest = Sha512::digest(seed);
        let mut prv = [0u8; PRV_KEY_SIZE];
        prv.copy_from_slice(&digest);
        prv[0] &= 248;
        prv[31] &= 63;
        prv[31] |= 64;
        LocalIdentity::from_prv64(&prv)
    }

    /// A fresh identity whose hash byte is neither 0x00 nor 0xFF and not in `avoid_hashes`
    /// (so rooms on one radio are told apart by their first byte).
    pub fn generate(rng: &mut impl RngCore, avoid_hashes: &[u8]) -> LocalIdentity {
        loop {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let id = LocalIdentity::from_seed(&seed);
            let h = id.public.hash_byte();
            if h != 0x00 && h != 0xFF && !avoid_hashes.contains(&h) {
                return id;
            }
        }
    }

    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The 64-byte key in firmware format (for the key file; never logged).
    pub fn prv64(&self) -> &[u8; PRV_KEY_SIZE] {
        &self.prv
    }

    /// Deterministic Ed25519 signature (RFC 8032) made from the expanded key.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_SIZE] {
        raw_sign::<Sha512>(&self.esk, message, &self.verifying).to_bytes()
    }

    /// X25519 of our clamped scalar (the first 32 bytes) and the peer's Ed25519 point mapped to
    /// Montgomery form. No KDF follows (§3).
    pub fn shared_secret(&self, peer: &PublicKey) -> Result<SharedSecret, CryptoError> {
        let point = CompressedEdwardsY(peer.0)
            .decompress()
            .ok_or(CryptoError::BadPublicKey)?;
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&self.prv[..32]);
        let shared = point.to_montgomery().mul_clamped(scalar);
        Ok(SharedSecret(shared.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn generated_identities_avoid_reserved_and_taken_hash_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut taken = vec![];
        for _ in 0..50 {
            let id = LocalIdentity::generate(&mut rng, &taken);
            let h = id.public().hash_byte();
            assert!(h != 0 && h != 0xFF && !taken.contains(&h));
            taken.push(h);
        }
    }

    #[test]
    fn secrets_agree_and_signatures_verify() {
        let a = LocalIdentity::from_seed(&[1; 32]);
        let b = LocalIdentity::from_seed(&[2; 32]);
        assert_eq!(
            a.shared_secret(&b.public()).unwrap(),
            b.shared_secret(&a.public()).unwrap()
        );
        let sig = a.sign(b"msg");
        assert!(a.public().verify(b"msg", &sig));
        assert!(!a.public().verify(b"msh", &sig));
        assert!(!b.public().verify(b"msg", &sig));
    }
}
