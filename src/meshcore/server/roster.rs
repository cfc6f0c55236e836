//! A room's clients (the firmware's ACL, §10.2 and §10.7): who logged in, with which role,
//! their replay clock, `sync_since`, learnt route and push state; plus the guard that
//! rate-limits wrong passwords per key.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::meshcore::wire::crypto::SharedSecret;
use crate::meshcore::wire::identity::PublicKey;
use crate::meshcore::wire::packet::Path;

/// Permission byte's low 2 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Guest,
    ReadOnly,
    ReadWrite,
    Admin,
}

impl Role {
    pub fn permissions(self) -> u8 {
        match self {
            Role::Guest => 0,
            Role::ReadOnly => 1,
            Role::ReadWrite => 2,
            Role::Admin => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }
}

/// What survives a restart for one client of one room (kept in the hub's state store).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// Public key, hex.
    pub key: String,
    pub role: Role,
    /// Newest post timestamp (room clock) the client has acknowledged.
    pub sync_since: u32,
    /// The same in microseconds: the server-side push cursor (posts of a burst share a second;
    /// this says which of them the client has). 0 in records of older versions.
    #[serde(default)]
    pub cursor_us: u64,
    /// Newest timestamp seen from the client (replay check).
    pub last_ts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Unix seconds of the last time we heard the client.
    #[serde(default)]
    pub last_heard: u64,
}

/// A push waiting for its ACK.
#[derive(Clone, Debug)]
pub struct PendingPush {
    pub post_ts: u32,
    pub post_us: u64,
    pub ack: [u8; 4],
    pub deadline_ms: u64,
}

/// One logged-in client, at run time.
#[derive(Clone, Debug)]
pub struct Client {
    pub key: PublicKey,
    pub secret: SharedSecret,
    pub role: Role,
    pub sync_since: u32,
    /// Push cursor: room clock (µs) of the newest post the client has (see `ClientRecord`).
    pub cursor_us: u64,
    pub last_ts: u32,
    pub name: Option<String>,
    /// Direct route to the client, learnt from its PATH packets.
    pub out_path: Option<Path>,
    pub pending: Option<PendingPush>,
    /// Consecutive push timeouts; pushing stops at the limit until the client is heard again.
    pub push_failures: u32,
    /// No push before this monotonic time (the login reply goes out first).
    pub push_not_before_ms: u64,
    pub last_heard_ms: u64,
    pub last_heard_unix: u64,
    pub since_unix: u64,
    /// Listed as a participant (false after the silence timeout until heard again).
    pub present: bool,
}

impl Client {
    pub fn record(&self) -> ClientRecord {
        ClientRecord {
            key: self.key.to_hex(),
            role: self.role,
            sync_since: self.sync_since,
            cursor_us: self.cursor_us,
            last_ts: self.last_ts,
            name: self.name.clone(),
            last_heard: self.last_heard_unix,
        }
    }
}

/// Wrong-password bookkeeping for one key.
#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last_ms: u64,
    blocked_until_ms: u64,
}

/// Rate limit for wrong passwords: after `max_failures` in a row a key is ignored for
/// `block_ms`, wrong or right. Bounded: the oldest entry goes when full.
#[derive(Debug)]
pub struct LoginGuard {
    entries: HashMap<PublicKey, Failures>,
    max_failures: u32,
    block_ms: u64,
    capacity: usize,
}

impl LoginGuard {
    pub fn new(max_failures: u32, block_ms: u64, capacity: usize) -> LoginGuard {
        LoginGuard {
            entries: HashMap::new(),
            max_failures: max_failures.max(1),
            block_ms,
            capacity: capacity.max(1),
        }
    }

    pub fn is_blocked(&self, key: &PublicKey, now_ms: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|f| f.blocked_until_ms > now_ms)
    }

    /// Counts a wrong password; returns true when this failure starts a block.
    pub fn fail(&mut self, key: PublicKey, now_ms: u64) -> bool {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, f)| f.last_ms)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        let f = self.entries.entry(key).or_insert(Failures {
            count: 0,
            last_ms: now_ms,
            blocked_until_ms: 0,
        });
        // A block that has run out starts a fresh count.
        if f.blocked_until_ms != 0 && f.blocked_until_ms <= now_ms {
            f.count = 0;
            f.blocked_until_ms = 0;
        }
        f.count += 1;
        f.last_ms = now_ms;
        if f.count >= self.max_failures {
            f.blocked_until_ms = now_ms + self.block_ms;
            return true;
        }
        false
    }

    pub fn succeed(&mut self, key: &PublicKey) {
        self.entries.remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_block_a_key_for_a_while() {
        let mut g = LoginGuard::new(3, 1000, 2);
        let k = PublicKey([1; 32]);
        assert!(!g.fail(k, 0));
        assert!(!g.fail(k, 1));
        assert!(g.fail(k, 2));
        assert!(g.is_blocked(&k, 500));
        assert!(!g.is_blocked(&k, 1002));
        assert!(!g.fail(k, 1003), "count restarts after the block");
        g.fail(PublicKey([2; 32]), 5);
        g.fail(PublicKey([3; 32]), 6);
        assert_eq!(g.len(), 2, "bounded");
    }
}
