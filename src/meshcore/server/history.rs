//! The posts a room can push (§10.5): a window of the room's newest committed posts, oldest
//! first, as the push scheduler needs them. Unlike the firmware's 32-post RAM ring it is as
//! deep as the room's `max_history` and is refilled from the store on start.

use std::collections::{HashSet, VecDeque};

use crate::meshcore::wire::advert::truncate_utf8;
use crate::meshcore::wire::identity::PublicKey;
use crate::meshcore::wire::message::MAX_PUSH_TEXT;

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
    /// Room clock timestamp: what `sync_since` is compared with.
    pub room_ts: u32,
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

/// Newest `capacity` posts, ordered by room timestamp.
#[derive(Debug)]
pub struct PostCache {
    posts: VecDeque<CachedPost>,
    ids: HashSet<[u8; 16]>,
    capacity: usize,
}

impl PostCache {
    pub fn new(capacity: usize) -> PostCache {
        PostCache {
            posts: VecDeque::new(),
            ids: HashSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Adds a post unless its id is already here; keeps room-timestamp order.
    pub fn insert(&mut self, post: RoomPost, now_ms: u64) -> bool {
        if self.ids.contains(&post.id) {
            return false;
        }
        let at = self
            .posts
            .partition_point(|p| p.post.room_ts <= post.room_ts);
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

    /// A new depth (a reloaded `max_history`): the oldest posts beyond it leave at once.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.trim();
    }

    fn trim(&mut self) {
        while self.posts.len() > self.capacity {
            if let Some(old) = self.posts.pop_front() {
                self.ids.remove(&old.post.id);
            }
        }
    }

    /// The oldest post newer than `sync_since` that `skip_author` did not write.
    pub fn next_after(&self, sync_since: u32, skip_author: &PublicKey) -> Option<&CachedPost> {
        let start = self.posts.partition_point(|p| p.post.room_ts <= sync_since);
        self.posts
            .iter()
            .skip(start)
            .find(|p| p.post.author != PostAuthor::Radio(*skip_author))
    }

    /// How many posts newer than `sync_since` `client` has not written (the keep-alive ACK's
    /// "unsynced" count).
    pub fn unsynced(&self, sync_since: u32, client: &PublicKey) -> usize {
        let start = self.posts.partition_point(|p| p.post.room_ts <= sync_since);
        self.posts
            .iter()
            .skip(start)
            .filter(|p| p.post.author != PostAuthor::Radio(*client))
            .count()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: u8, ts: u32, author: PostAuthor) -> RoomPost {
        RoomPost {
            id: [id; 16],
            room_ts: ts,
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
        assert_eq!(c.next_after(10, &me).unwrap().post.room_ts, 30);
        assert_eq!(c.unsynced(10, &me), 1);
        c.insert(post(4, 40, PostAuthor::Named("h".into())), 0);
        assert_eq!(c.len(), 3);
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
