//! What the TUN side counts: datagrams in and out, and every datagram it drops, by reason.
//!
//! Dropping is the only answer to bad input from the host (nobody to send an error to), so the
//! counts are how a user finds out why a post did not arrive: they show in `/status` under
//! `tun.dropped` and in `/metrics` as `meshroom_tun_dropped_total{reason=…}`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a datagram (or packet) was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed IPv4 packet (bad header, checksum, truncated).
    BadPacket,
    /// A fragment, or a payload above the size limit.
    Oversized,
    /// Payload is not UTF-8.
    NotUtf8,
    /// Payload looks like JSON but is not the documented shape, or the text is empty.
    Malformed,
    /// The JSON names another room than the group it was sent to.
    WrongRoom,
    /// A private room received a datagram that is not sealed.
    Unsealed,
    /// A private room received a sealed datagram that does not open with the room's key.
    BadSeal,
    /// The hub refused the post (invalid, unknown room, store error).
    Rejected,
    /// The hub already had this post id (a replayed or echoed datagram).
    Duplicate,
    /// A post too large to leave as one datagram within the device MTU.
    OversizedOut,
    /// A UDP datagram to a group and port that is no room of this server.
    NoRoom,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::BadPacket,
        DropReason::Oversized,
        DropReason::NotUtf8,
        DropReason::Malformed,
        DropReason::WrongRoom,
        DropReason::Unsealed,
        DropReason::BadSeal,
        DropReason::Rejected,
        DropReason::Duplicate,
        DropReason::OversizedOut,
        DropReason::NoRoom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BadPacket => "bad_packet",
            DropReason::Oversized => "oversized",
            DropReason::NotUtf8 => "not_utf8",
            DropReason::Malformed => "malformed",
            DropReason::WrongRoom => "wrong_room",
            DropReason::Unsealed => "unsealed",
            DropReason::BadSeal => "bad_seal",
            DropReason::Rejected => "rejected",
            DropReason::Duplicate => "duplicate",
            DropReason::OversizedOut => "oversized_out",
            DropReason::NoRoom => "no_room",
        }
    }

    fn index(self) -> usize {
        match self {
            DropReason::BadPacket => 0,
            DropReason::Oversized => 1,
            DropReason::NotUtf8 => 2,
            DropReason::Malformed => 3,
            DropReason::WrongRoom => 4,
            DropReason::Unsealed => 5,
            DropReason::BadSeal => 6,
            DropReason::Rejected => 7,
            DropReason::Duplicate => 8,
            DropReason::OversizedOut => 9,
            DropReason::NoRoom => 10,
        }
    }
}

/// Lock-free counters shared between the IO tasks and the status source.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams from the host that became posts.
    pub datagrams_in: AtomicU64,
    /// Datagrams written to the device (one per post).
    pub datagrams_out: AtomicU64,
    /// IGMP messages read from the device.
    pub igmp_in: AtomicU64,
    /// IGMP queries written to the device.
    pub queries_out: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Counters {
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(c) = self.dropped.get(reason.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .get(reason.index())
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped(*r)).sum()
    }

    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let c = Counters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.count_drop(*r);
            }
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.dropped(*r), i as u64 + 1, "{}", r.as_str());
        }
        assert_eq!(c.dropped_total(), (1..=11).sum::<u64>());
    }
}
