//! The Noise handshake of a federation link: `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`.
//!
//! ```text
//! dialer → listener   header(25) ‖ noise msg 1      header = "MRGWFED\0" ‖ version:u8 ‖ key id:16
//! listener → dialer   noise msg 2
//! dialer → listener   noise msg 3                   (carries the PSK: a wrong secret fails here)
//! ```
//! The plaintext header tells the listener which pair secret to use; the whole header is the
//! Noise prologue, so tampering with the key id or version breaks the handshake. XX means each
//! side learns the other's static key; the PSK is what authenticates the pair.
//!
//! Messages 2 and 3 carry each side's [`Features`] as their (encrypted) payload: a
//! first-release build sends them empty and ignores what it reads there, so both old and new
//! builds complete the same handshake, and each learns what the other understands.

use snow::{Builder, HandshakeState};
use thiserror::Error;

use super::frame::{Features, PROTOCOL_VERSION};
use super::secret::{KeyId, PeerSecret};

pub const NOISE_PATTERN: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";
const MAGIC: &[u8; 8] = b"MRGWFED\0";
pub const HEADER_LEN: usize = 8 + 1 + 16;
/// Largest Noise message (the spec's limit).
pub const MAX_NOISE_MESSAGE: usize = 65535;

/// Why a handshake did not complete. None of these carry secret material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    #[error("not a federation handshake")]
    NotFederation,
    #[error("the peer speaks federation protocol v{0}; this server speaks v{v}: the older one needs an upgrade", v = PROTOCOL_VERSION)]
    Version(u8),
    #[error("unknown key id (no peer is configured with this secret)")]
    UnknownKeyId,
    #[error("secret mismatch (handshake authentication failed)")]
    SecretMismatch,
    #[error("handshake message out of order or malformed")]
    Protocol,
    #[error("noise setup failed: {0}")]
    Setup(String),
}

/// A server's long-term X25519 static key pair.
#[derive(Clone)]
pub struct StaticKey {
    pub private: [u8; 32],
    pub public: [u8; 32],
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticKey(public {})", hex::encode(self.public))
    }
}

impl StaticKey {
    pub fn generate() -> Result<Self, HandshakeError> {
        let builder = Builder::new(params()?);
        let kp = builder
            .generate_keypair()
            .map_err(|e| HandshakeError::Setup(e.to_string()))?;
        Self::from_private(&kp.private)
    }

    /// Rebuilds the pair from the 32 private bytes kept in the state directory.
    pub fn from_private(private: &[u8]) -> Result<Self, HandshakeError> {
        let private: [u8; 32] = private
            .try_into()
            .map_err(|_| HandshakeError::Setup("static key must be 32 bytes".into()))?;
        let secret = x25519_dalek::StaticSecret::from(private);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Ok(StaticKey { private, public })
    }
}

fn params() -> Result<snow::params::NoiseParams, HandshakeError> {
    NOISE_PATTERN
        .parse()
        .map_err(|e: snow::Error| HandshakeError::Setup(e.to_string()))
}

fn header(key_id: KeyId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8] = PROTOCOL_VERSION;
    h[9..].copy_from_slice(&key_id.0);
    h
}

/// Reads the plaintext header of the dialer's first message.
pub fn parse_header(msg: &[u8]) -> Result<(KeyId, &[u8]), HandshakeError> {
    if msg.len() < HEADER_LEN || &msg[..8] != MAGIC {
        return Err(HandshakeError::NotFederation);
    }
    if msg[8] != PROTOCOL_VERSION {
        return Err(HandshakeError::Version(msg[8]));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&msg[9..HEADER_LEN]);
    Ok((KeyId(id), &msg[HEADER_LEN..]))
}

fn build(
    key: &StaticKey,
    secret: &PeerSecret,
    initiator: bool,
) -> Result<HandshakeState, HandshakeError> {
    let prologue = header(secret.key_id());
    let b = Builder::new(params()?)
        .local_private_key(&key.private)
        .psk(3, secret.noise_psk())
        .prologue(&prologue);
    let r = if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    };
    r.map_err(|e| HandshakeError::Setup(e.to_string()))
}

/// Starts the dialer's side: returns the state and the first message to send.
pub fn initiate(
    key: &StaticKey,
    secret: &PeerSecret,
) -> Result<(HandshakeState, Vec<u8>), HandshakeError> {
    let mut hs = build(key, secret, true)?;
    let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
    msg[..HEADER_LEN].copy_from_slice(&header(secret.key_id()));
    let n = hs
        .write_message(&[], &mut msg[HEADER_LEN..])
        .map_err(|_| HandshakeError::Protocol)?;
    msg.truncate(HEADER_LEN + n);
    Ok((hs, msg))
}

/// Dialer: reads message 2 (with the listener's features), returns message 3 carrying `ours`.
/// A handshake done here may still be refused by the listener (a wrong PSK shows only when it
/// reads message 3).
pub fn initiator_finish(
    hs: &mut HandshakeState,
    msg2: &[u8],
    ours: Features,
) -> Result<(Vec<u8>, Features), HandshakeError> {
    let payload = read(hs, msg2).map_err(|_| HandshakeError::Protocol)?;
    let theirs = Features::decode(&payload).map_err(|_| HandshakeError::Protocol)?;
    Ok((write(hs, &ours.encode())?, theirs))
}

/// Reads one handshake message; returns its payload.
fn read(hs: &mut HandshakeState, incoming: &[u8]) -> Result<Vec<u8>, snow::Error> {
    let mut payload = vec![0u8; MAX_NOISE_MESSAGE];
    let n = hs.read_message(incoming, &mut payload)?;
    payload.truncate(n);
    Ok(payload)
}

/// Writes one handshake message with `payload`.
fn write(hs: &mut HandshakeState, payload: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
    let n = hs
        .write_message(payload, &mut out)
        .map_err(|_| HandshakeError::Protocol)?;
    out.truncate(n);
    Ok(out)
}

/// Listener: given the secret the key id named, reads message 1 and returns message 2, which
/// carries `ours`.
pub fn respond(
    key: &StaticKey,
    secret: &PeerSecret,
    msg1_body: &[u8],
    ours: Features,
) -> Result<(HandshakeState, Vec<u8>), HandshakeError> {
    let mut hs = build(key, secret, false)?;
    read(&mut hs, msg1_body).map_err(|_| HandshakeError::Protocol)?;
    let out = write(&mut hs, &ours.encode())?;
    Ok((hs, out))
}

/// Listener: reads message 3 and returns the dialer's features. Failure here means the dialer
/// does not hold the pair's secret.
pub fn responder_finish(hs: &mut HandshakeState, msg3: &[u8]) -> Result<Features, HandshakeError> {
    let payload = read(hs, msg3).map_err(|_| HandshakeError::SecretMismatch)?;
    Features::decode(&payload).map_err(|_| HandshakeError::Protocol)
}
