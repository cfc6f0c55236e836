//! Shared-room negotiation: which rooms a link carries.
//!
//! A room is shared when both servers have it under the same name *and* with the same PSK.
//! Public rooms are offered by name. A private room is offered only as a MAC keyed by (a key
//! derived from) its PSK over the Noise handshake hash, the sender's role and the room name:
//! a peer holding the same PSK and name recomputes and finds it; a peer without it sees 32
//! random-looking bytes that differ on every link, so it learns neither the name nor that the
//! room exists. Binding the role stops a peer from reflecting our own proof back to us.

use std::collections::BTreeSet;

use super::secret::{hmac32, RoomKey};

const PROOF_LABEL: &[u8] = b"meshroom-gw/federation/room-proof/v1";

/// Which end of the handshake a side was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Dialer,
    Listener,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Dialer => b'D',
            Role::Listener => b'L',
        }
    }
    pub fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Listener,
            Role::Listener => Role::Dialer,
        }
    }
}

/// A room of this server as federation sees it.
#[derive(Debug, Clone)]
pub struct LocalRoom {
    pub name: String,
    /// `None`: public room.
    pub key: Option<RoomKey>,
}

fn proof(key: &RoomKey, role: Role, handshake_hash: &[u8], name: &str) -> [u8; 32] {
    hmac32(
        key.bytes(),
        &[PROOF_LABEL, &[role.byte()], handshake_hash, name.as_bytes()],
    )
}

/// What this side puts in its Hello: public names and private-room proofs (sorted, so the
/// order says nothing about the configuration).
pub fn offer(
    rooms: &[LocalRoom],
    role: Role,
    handshake_hash: &[u8],
) -> (Vec<String>, Vec<[u8; 32]>) {
    let mut public = Vec::new();
    let mut proofs = Vec::new();
    for r in rooms {
        match &r.key {
            None => public.push(r.name.clone()),
            Some(k) => proofs.push(proof(k, role, handshake_hash, &r.name)),
        }
    }
    proofs.sort_unstable();
    (public, proofs)
}

/// Outcome of comparing the peer's offer with our rooms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// Rooms both sides carry, sorted by name.
    pub shared: Vec<String>,
    /// Private-room proofs from the peer that match none of our rooms (a room we lack, or one
    /// whose PSK differs from ours).
    pub unverified_proofs: usize,
    /// Our private rooms the peer offered as public: same name, different PSK.
    pub psk_mismatch: Vec<String>,
}

pub fn negotiate(
    rooms: &[LocalRoom],
    peer_role: Role,
    handshake_hash: &[u8],
    peer_public: &[String],
    peer_proofs: &[[u8; 32]],
) -> Negotiated {
    let peer_public: BTreeSet<&str> = peer_public.iter().map(String::as_str).collect();
    let peer_proofs: BTreeSet<&[u8; 32]> = peer_proofs.iter().collect();
    let mut out = Negotiated::default();
    let mut matched = 0usize;
    for r in rooms {
        match &r.key {
            None => {
                if peer_public.contains(r.name.as_str()) {
                    out.shared.push(r.name.clone());
                }
            }
            Some(k) => {
                if peer_proofs.contains(&proof(k, peer_role, handshake_hash, &r.name)) {
                    matched += 1;
                    out.shared.push(r.name.clone());
                } else if peer_public.contains(r.name.as_str()) {
                    out.psk_mismatch.push(r.name.clone());
                }
            }
        }
    }
    out.shared.sort();
    out.shared.dedup();
    out.unverified_proofs = peer_proofs.len().saturating_sub(matched);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, psk: Option<&str>) -> LocalRoom {
        LocalRoom {
            name: name.into(),
            key: psk.map(RoomKey::new),
        }
    }

    #[test]
    fn same_name_same_psk_is_shared_different_psk_is_not() {
        let hh = [3u8; 32];
        let a = vec![
            room("lobby", None),
            room("ops", Some("ops-secret")),
            room("club", Some("club-a")),
        ];
        let b = vec![
            room("lobby", None),
            room("ops", Some("ops-secret")),
            room("club", Some("club-b")),
            room("only-b", None),
        ];
        let (a_pub, a_proofs) = offer(&a, Role::Dialer, &hh);
        let (b_pub, b_proofs) = offer(&b, Role::Listener, &hh);
        let at_a = negotiate(&a, Role::Listener, &hh, &b_pub, &b_proofs);
        let at_b = negotiate(&b, Role::Dialer, &hh, &a_pub, &a_proofs);
        assert_eq!(at_a.shared, vec!["lobby".to_string(), "ops".to_string()]);
        assert_eq!(at_b.shared, at_a.shared);
        assert_eq!(at_a.unverified_proofs, 1);
        assert_eq!(at_b.unverified_proofs, 1);
    }

    #[test]
    fn proofs_never_contain_the_room_name_and_change_per_link() {
        let a = vec![room("secret-club", Some("pw"))];
        let (public, p1) = offer(&a, Role::Dialer, &[1; 32]);
        let (_, p2) = offer(&a, Role::Dialer, &[2; 32]);
        assert!(public.is_empty());
        assert_ne!(p1, p2);
    }

    #[test]
    fn a_reflected_proof_does_not_verify() {
        let hh = [5u8; 32];
        let a = vec![room("ops", Some("pw"))];
        let (_, mine) = offer(&a, Role::Dialer, &hh);
        // The peer (listener) sends our own proof back without knowing the PSK.
        let got = negotiate(&a, Role::Listener, &hh, &[], &mine);
        assert!(got.shared.is_empty());
    }

    #[test]
    fn public_versus_private_same_name_is_reported_not_shared() {
        let hh = [0u8; 32];
        let a = vec![room("ops", Some("pw"))];
        let got = negotiate(&a, Role::Listener, &hh, &["ops".to_string()], &[]);
        assert!(got.shared.is_empty());
        assert_eq!(got.psk_mismatch, vec!["ops".to_string()]);
    }
}
