//! A room's clients (the firmware's ACL, §10.2 and §10.7): who logged in, with which role,
//! their replay clock, `sync_since`, learnt route and push state; plus the guard that
//! rate-limits wrong passwords per key.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// Login timestamp and password digest of the last failure counted: a client's retry
    /// repeats one or both, and a retry is the same attempt, not another guess.
    last_login_ts: u32,
    last_password: [u8; 8],
    /// Blocks this key has earned so far; each one lasts twice the one before.
    blocks: u32,
    blocked_until_ms: u64,
}

/// Rate limit for wrong passwords: after `max_failures` distinct wrong attempts a key is ignored
/// for a while, wrong or right; the first block lasts `first_block_ms`, each further one twice
/// the one before, up to `max_block_ms`. A success forgets the key. Bounded: the oldest entry
/// goes when full.
#[derive(Debug)]
pub struct LoginGuard {
    entries: HashMap<PublicKey, Failures>,
    max_failures: u32,
    first_block_ms: u64,
    max_block_ms: u64,
    capacity: usize,
}

/// What a wrong password led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A retry of an attempt already counted.
    Retry,
    /// Counted; `n` wrong attempts in a row so far.
    Counted(u32),
    /// Counted, and the key is now ignored for this long.
    Blocked { block_ms: u64 },
}

impl LoginGuard {
    pub fn new(
        max_failures: u32,
        first_block_ms: u64,
        max_block_ms: u64,
        capacity: usize,
    ) -> LoginGuard {
        LoginGuard {
            entries: HashMap::new(),
            max_failures: max_failures.max(1),
            first_block_ms: first_block_ms.min(max_block_ms),
            max_block_ms,
            capacity: capacity.max(1),
        }
    }

    pub fn is_blocked(&self, key: &PublicKey, now_ms: u64) -> bool {
        self.entries
            .get(key)
            .is_some_and(|f| f.blocked_until_ms > now_ms)
    }

    /// Counts a wrong `password` sent in a login stamped `login_ts`. The same timestamp or the
    /// same password as the last counted failure is a retry and counts once.
    pub fn fail(&mut self, key: PublicKey, now_ms: u64, login_ts: u32, password: &[u8]) -> Failure {
        let digest = {
            let d = Sha256::digest(password);
            let mut v = [0u8; 8];
            v.copy_from_slice(&d[..8]);
            v
        };
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
            last_login_ts: 0,
            last_password: [0; 8],
            blocks: 0,
            blocked_until_ms: 0,
        });
        f.last_ms = now_ms;
        let blocked_out = f.blocked_until_ms != 0 && f.blocked_until_ms <= now_ms;
        if f.count > 0 && !blocked_out && (login_ts == f.last_login_ts || digest == f.last_password)
        {
            return Failure::Retry;
        }
        // A block that has run out starts a fresh count (but the next block is longer).
        if blocked_out {
            f.count = 0;
            f.blocked_until_ms = 0;
        }
        f.count += 1;
        f.last_login_ts = login_ts;
        f.last_password = digest;
        if f.count >= self.max_failures {
            let block_ms = self
                .first_block_ms
                .saturating_mul(1u64 << f.blocks.min(20))
                .min(self.max_block_ms);
            f.blocks += 1;
            f.blocked_until_ms = now_ms + block_ms;
            return Failure::Blocked { block_ms };
        }
        Failure::Counted(f.count)
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
    fn distinct_failures_block_a_key_for_growing_times_and_retries_count_once() {
        let mut g = LoginGuard::new(3, 1000, 3000, 2);
        let k = PublicKey([1; 32]);
        assert_eq!(g.fail(k, 0, 10, b"a"), Failure::Counted(1));
        assert_eq!(
            g.fail(k, 1, 10, b"b"),
            Failure::Retry,
            "same login timestamp"
        );
        assert_eq!(g.fail(k, 2, 11, b"a"), Failure::Retry, "same password");
        assert_eq!(g.fail(k, 3, 12, b"c"), Failure::Counted(2));
        assert_eq!(g.fail(k, 4, 13, b"d"), Failure::Blocked { block_ms: 1000 });
        assert!(g.is_blocked(&k, 500));
        assert!(!g.is_blocked(&k, 1004));
        assert_eq!(
            g.fail(k, 1005, 14, b"d"),
            Failure::Counted(1),
            "count restarts"
        );
        g.fail(k, 1006, 15, b"e");
        assert_eq!(
            g.fail(k, 1007, 16, b"f"),
            Failure::Blocked { block_ms: 2000 }
        );
        g.fail(k, 3008, 17, b"g");
        g.fail(k, 3009, 18, b"h");
        let capped = g.fail(k, 3010, 19, b"i");
        assert_eq!(capped, Failure::Blocked { block_ms: 3000 });
        g.succeed(&k);
        assert!(!g.is_blocked(&k, 3011));
        g.fail(PublicKey([2; 32]), 5, 1, b"x");
        g.fail(PublicKey([3; 32]), 6, 1, b"x");
        assert_eq!(g.len(), 2, "bounded");
    }
}
