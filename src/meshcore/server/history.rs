//! The posts a room can push (§10.5): a small window of the room's newest committed posts,
//! oldest first, as the push scheduler needs them (like the firmware's 32-post RAM ring). A
//! client further behind is served from the store: the engine asks for a page of history after
//! the client's cursor ([`PUSH_WINDOW`] posts at a time), so memory does not grow with
//! `max_history`.
//!
//! Order and cursors use the room clock in microseconds (`room_us`, strictly increasing); the
//! wire carries whole seconds (`room_ts`), which posts of a burst may share, so each client's
//! push cursor is kept here, server-side, in microseconds.

use std::collections::{HashSet, VecDeque};

use crate::meshcore::wire::advert::truncate_utf8;
use crate::meshcore::wire::identity::PublicKey;
use crate::meshcore::wire::message::MAX_PUSH_TEXT;

/// Newest posts kept in RAM per room, and the page size of a read for a client behind them.
pub const PUSH_WINDOW: usize = 64;

/// A push cursor (µs) from a whole-second `sync_since` a client sent: everything up to the end
/// of that second, unless the server's own cursor lies within it (then it knows better).
pub fn cursor_from_sync_since(sync_since: u32, known_us: u64) -> u64 {
    let s = u64::from(sync_since);
    if known_us / 1_000_000 == s {
        known_us
    } else {
        s * 1_000_000 + 999_999
    }
}
/// Who a pushed post is shown as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostAuthor {
    /// A MeshCore user: pushed with that key's 4-byte prefix, text unchanged.
    Radio(PublicKey),
    /// Anyone else (host, federated peer, CLI): pushed under the room's own key as
    /// `"<name>: <text>"`, so readers still see who wrote it.
    Named(String),
}

/// A committed post as the radio side pushes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomPost {
    /// The hub's post id (dedups a post that arrives both as a commit and as a delivery).
    pub id: [u8; 16],
    /// Room clock timestamp in whole seconds: what goes on the air and `sync_since` counts in.
    pub room_ts: u32,
    /// Room clock in microseconds: the order, and what push cursors count in.
    pub room_us: u64,
    pub author: PostAuthor,
    pub text: String,
}

impl RoomPost {
    /// The author prefix and the text exactly as they go into a SIGNED_PLAIN push; text that
    /// does not fit is cut on a character boundary and ends in "…" so the cut is visible.
    pub fn push_body(&self, room_key: &PublicKey) -> ([u8; 4], String, bool) {
        let (prefix, full) = match &self.author {
            PostAuthor::Radio(k) => (k.prefix4(), self.text.clone()),
            PostAuthor::Named(name) => (room_key.prefix4(), format!("{name}: {}", self.text)),
        };
        if full.len() <= MAX_PUSH_TEXT {
            return (prefix, full, false);
        }
        let cut = truncate_utf8(&full, MAX_PUSH_TEXT - '…'.len_utf8());
        (prefix, format!("{cut}…"), true)
    }
}

#[derive(Clone, Debug)]
pub struct CachedPost {
    pub post: RoomPost,
    /// Monotonic time it was added (pushes wait until a post has settled).
    pub added_ms: u64,
}

/// Newest `capacity` posts, ordered by room clock; every post newer than
/// [`PostCache::complete_after`] is here.
#[derive(Debug)]
pub struct PostCache {
    posts: VecDeque<CachedPost>,
    ids: HashSet<[u8; 16]>,
    capacity: usize,
    complete_after: u64,
}

impl PostCache {
    pub fn new(capacity: usize) -> PostCache {
        PostCache {
            posts: VecDeque::new(),
            ids: HashSet::new(),
            capacity: capacity.max(1),
            complete_after: 0,
        }
    }

    /// A cache holding `newest` (the room's newest posts, oldest first, as read from the store
    /// with a limit of `read_limit`): when the read was cut, older posts exist in the store.
    pub fn with_newest(capacity: usize, newest: Vec<RoomPost>, read_limit: usize) -> PostCache {
        let mut cache = PostCache::new(capacity);
        let cut = newest.len() >= read_limit;
        let oldest = newest.first().map(|p| p.room_us);
        for p in newest {
            cache.insert(p, 0);
        }
        if cut {
            if let Some(oldest) = oldest {
                cache.complete_after = cache.complete_after.max(oldest.saturating_sub(1));
            }
        }
        cache
    }

    /// Adds a post unless its id is already here; keeps room-clock order.
    pub fn insert(&mut self, post: RoomPost, now_ms: u64) -> bool {
        if self.ids.contains(&post.id) || post.room_us <= self.complete_after {
            return false;
        }
        let at = self
            .posts
            .partition_point(|p| p.post.room_us <= post.room_us);
        self.ids.insert(post.id);
        self.posts.insert(
            at,
            CachedPost {
                post,
                added_ms: now_ms,
            },
        );
        self.trim();
        true
    }

    /// A new depth (a reloaded `max_history`, capped at the window): the oldest posts beyond it
    /// leave at once.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.posts.len() > self.capacity {
            if let Some(old) = self.posts.pop_front() {
                self.ids.remove(&old.post.id);
                self.complete_after = self.complete_after.max(old.post.room_us);
            }
        }
    }

    /// Every post with a room clock above this is in the cache; older ones are in the store.
    pub fn complete_after(&self) -> u64 {
        self.complete_after
    }

    /// The oldest post after the cursor `after_us` that `skip_author` did not write.
    pub fn next_after(&self, after_us: u64, skip_author: &PublicKey) -> Option<&CachedPost> {
        let start = self.posts.partition_point(|p| p.post.room_us <= after_us);
        self.posts
            .iter()
            .skip(start)
            .find(|p| p.post.author != PostAuthor::Radio(*skip_author))
    }

    /// How many posts after the cursor `after_us` `client` has not written (the keep-alive
    /// ACK's "unsynced" count; a client behind the window has at least a window's worth).
    pub fn unsynced(&self, after_us: u64, client: &PublicKey) -> usize {
        let start = self.posts.partition_point(|p| p.post.room_us <= after_us);
        let here = self
            .posts
            .iter()
            .skip(start)
            .filter(|p| p.post.author != PostAuthor::Radio(*client))
            .count();
        if after_us < self.complete_after {
            here.max(self.capacity)
        } else {
            here
        }
    }

    pub fn len(&self) -> usize {
        self.posts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.posts.is_empty()
    }

    pub fn newest_ts(&self) -> Option<u32> {
        self.posts.back().map(|p| p.post.room_ts)
    }
}

/// A page of older history read for a client behind the window: every post in
/// `(after_us, end_us]`, oldest first.
#[derive(Debug, Default)]
pub struct Backlog {
    pub after_us: u64,
    pub end_us: u64,
    pub posts: Vec<RoomPost>,
}

impl Backlog {
    /// Whether this page answers "what comes after `cursor_us`".
    pub fn covers(&self, cursor_us: u64) -> bool {
        self.after_us <= cursor_us && cursor_us < self.end_us
    }

    pub fn next_after(&self, after_us: u64, skip_author: &PublicKey) -> Option<&RoomPost> {
        self.posts
            .iter()
            .find(|p| p.room_us > after_us && p.author != PostAuthor::Radio(*skip_author))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: u8, ts: u32, author: PostAuthor) -> RoomPost {
        RoomPost {
            id: [id; 16],
            room_ts: ts,
            room_us: ts as u64 * 1_000_000,
            author,
            text: format!("p{id}"),
        }
    }

    #[test]
    fn finds_oldest_unsynced_post_not_written_by_the_client() {
        let me = PublicKey([1; 32]);
        let mut c = PostCache::new(3);
        assert!(c.insert(post(2, 20, PostAuthor::Radio(me)), 0));
        assert!(c.insert(post(1, 10, PostAuthor::Named("h".into())), 0));
        assert!(!c.insert(post(1, 10, PostAuthor::Named("h".into())), 0));
        assert!(c.insert(post(3, 30, PostAuthor::Named("h".into())), 0));
        assert_eq!(c.next_after(0, &me).unwrap().post.room_ts, 10);
        assert_eq!(c.next_after(10_000_000, &me).unwrap().post.room_ts, 30);
        assert_eq!(c.unsynced(10_000_000, &me), 1);
        c.insert(post(4, 40, PostAuthor::Named("h".into())), 0);
        assert_eq!(c.len(), 3);
        assert_eq!(c.complete_after(), 10_000_000, "post 1 left the window");
        assert_eq!(c.next_after(0, &me).unwrap().post.room_ts, 30);
    }

    #[test]
    fn named_authors_are_shown_and_long_text_is_visibly_cut() {
        let room = PublicKey([9; 32]);
        let p = post(1, 1, PostAuthor::Named("carol@host".into()));
        let (prefix, text, cut) = p.push_body(&room);
        assert_eq!(
            (prefix, text.as_str(), cut),
            ([9; 4], "carol@host: p1", false)
        );
        let mut long = p.clone();
        long.text = "x".repeat(300);
        let (_, text, cut) = long.push_body(&room);
        assert!(cut && text.len() <= MAX_PUSH_TEXT && text.ends_with('…'));
    }
}
