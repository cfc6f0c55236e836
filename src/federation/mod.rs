//! Federation: peered meshroom-gw servers share their rooms over Noise tunnels.
//!
//! Sans-IO core (bytes, hub events and `now` in; actions out):
//! - [`codec`]: bounds-checked field reader/writer;
//! - [`frame`]: the frames peers exchange inside the tunnel, batched per Noise message;
//! - [`secret`]: key id, Noise PSK and room keys derived from secrets;
//! - [`handshake`]: `Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s` with the key id in the prologue;
//! - [`rooms`]: which rooms a link shares, proven by MACs over the handshake hash;
//! - [`outbound`] / [`inbound`]: the sync protocol — cursors, window, catch-up, acks;
//! - [`link`]: one link's state machine tying the above together, with keepalives.
pub mod codec;
pub mod frame;
pub mod handshake;
pub mod inbound;
pub mod link;
#[cfg(test)]
mod link_tests;
pub mod outbound;
pub mod rooms;
pub mod secret;
