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

#[derive(Default)]
pub struct Tallies {
    rooms: Mutex<HashMap<String, RoomTally>>,
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
        let mut rooms = self.lock();
        let t = rooms.entry(post.room.clone()).or_default();
        t.history = history;
        t.last_post_at = Some(post.room_ts);
        match via.side {
            AuthorKind::Radio => t.posts_in_radio += 1,
            AuthorKind::Ip => t.posts_in_ip += 1,
            AuthorKind::Peer => t.posts_in_peer += 1,
            AuthorKind::Local => t.posts_in_local += 1,
            AuthorKind::Channel => t.posts_in_channel += 1,
        }
    }

    pub fn get(&self, room: &str) -> RoomTally {
        self.lock().get(room).cloned().unwrap_or_default()
    }
}
