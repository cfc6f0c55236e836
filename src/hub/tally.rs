//! Per-room figures for `/status` and `/metrics`: history size, posts in by side, last post.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{AuthorKind, Post, Via};

#[derive(Clone, Debug, Default, Serialize)]
pub struct RoomTally {
    pub history: u64,
    pub posts_in_radio: u64,
    pub posts_in_ip: u64,
    pub posts_in_peer: u64,
    pub posts_in_local: u64,
    pub posts_in_channel: u64,
    /// Room timestamp of the newest post.
    pub last_post_at: Option<u64>,
}

impl RoomTally {
    pub fn posts_in(&self, kind: AuthorKind) -> u64 {
        match kind {
            AuthorKind::Radio => self.posts_in_radio,
            AuthorKind::Ip => self.posts_in_ip,
            AuthorKind::Peer => self.posts_in_peer,
            AuthorKind::Local => self.posts_in_local,
            AuthorKind::Channel => self.posts_in_channel,
        }
    }
}

/// Hours kept by [`Tallies::hourly`].
pub const HOURS: usize = 24;

/// Posts committed per wall-clock hour over the last [`HOURS`] (a ring keyed by the hour).
#[derive(Clone, Debug, Default)]
struct Hourly {
    /// `(unix hour, posts)`, one slot per hour modulo [`HOURS`].
    slots: [(u64, u64); HOURS],
}

impl Hourly {
    fn add(&mut self, hour: u64) {
        let slot = &mut self.slots[(hour % HOURS as u64) as usize];
        if slot.0 != hour {
            *slot = (hour, 0);
        }
        slot.1 += 1;
    }

    /// Oldest first, ending with the hour `now_hour`.
    fn series(&self, now_hour: u64) -> Vec<u64> {
        (0..HOURS as u64)
            .rev()
            .map(|back| {
                let hour = now_hour.saturating_sub(back);
                let slot = self.slots[(hour % HOURS as u64) as usize];
                if slot.0 == hour && hour + back == now_hour {
                    slot.1
                } else {
                    0
                }
            })
            .collect()
    }
}

fn unix_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 3600)
        .unwrap_or(0)
}

#[derive(Default)]
pub struct Tallies {
    rooms: Mutex<HashMap<String, RoomTally>>,
    hourly: Mutex<HashMap<String, Hourly>>,
}

impl Tallies {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RoomTally>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts from what the store holds: `(history count, newest room timestamp)` per room.
    pub(crate) fn seed(&self, found: &HashMap<String, (u64, u64)>) {
        let mut rooms = self.lock();
        for (room, (n, newest)) in found {
            let t = rooms.entry(room.clone()).or_default();
            t.history = *n;
            t.last_post_at = Some(*newest);
        }
    }

    pub(crate) fn record(&self, post: &Post, via: &Via, history: u64) {
        // Called for every committed post on the writer thread: the room's entry is looked up
        // by reference and only created (its name cloned) the first time.
        let mut rooms = self.lock();
        let t = match rooms.get_mut(&post.room) {
            Some(t) => t,
            None => rooms.entry(post.room.clone()).or_default(),
        };
        t.history = history;
        t.last_post_at = Some(post.room_ts);
        match via.side {
            AuthorKind::Radio => t.posts_in_radio += 1,
            AuthorKind::Ip => t.posts_in_ip += 1,
            AuthorKind::Peer => t.posts_in_peer += 1,
            AuthorKind::Local => t.posts_in_local += 1,
            AuthorKind::Channel => t.posts_in_channel += 1,
        }
        drop(rooms);
        let mut hourly = self.hourly.lock().unwrap_or_else(|p| p.into_inner());
        let ring = match hourly.get_mut(&post.room) {
            Some(ring) => ring,
            None => hourly.entry(post.room.clone()).or_default(),
        };
        ring.add(unix_hour());
    }

    /// Posts committed into `room` in each of the last 24 wall-clock hours, oldest first, the
    /// current (partial) hour last. Counts since the gateway started.
    pub fn hourly(&self, room: &str) -> Vec<u64> {
        self.hourly
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room)
            .map(|h| h.series(unix_hour()))
            .unwrap_or_else(|| vec![0; HOURS])
    }

    pub fn get(&self, room: &str) -> RoomTally {
        self.lock().get(room).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_ring_forgets_hours_older_than_a_day() {
        let mut h = Hourly::default();
        h.add(1000);
        h.add(1000);
        h.add(1010);
        let s = h.series(1010);
        assert_eq!(s.len(), HOURS);
        assert_eq!(s[HOURS - 1], 1);
        assert_eq!(s[HOURS - 11], 2);
        // A day later the old slots read as zero, and a reused slot starts over.
        assert_eq!(h.series(1000 + HOURS as u64).iter().sum::<u64>(), 1);
        h.add(1000 + HOURS as u64);
        assert_eq!(h.series(1000 + HOURS as u64)[HOURS - 1], 1);
    }
}
