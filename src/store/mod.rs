//! Durable storage in SQLite: posts, one table per room (`rooms`; trimmed to each room's
//! `max_history`; the room clock is their newest timestamp), the ids of history and of posts
//! recently trimmed from it (`ids`, the dedup), and the small key-value state of the sides.
//!
//! All writes go through one writer thread (`writer`) that commits in groups: whatever arrived
//! while the previous commit was on its way to disk goes into the next transaction, so a burst
//! costs one fsync, not one per post. Reads use their own connection (WAL lets them run beside
//! the writer).

pub mod ids;
pub mod rooms;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::post::{Author, AuthorKind, Post, PostId};

pub use writer::WriteOp;

pub const DB_FILE: &str = "meshroom.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database {path} cannot be used: {reason}{}", advice(.reason))]
    Unreadable { path: PathBuf, reason: String },
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the post could not be committed: {0}")]
    Commit(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store has shut down")]
    Closed,
}

/// Read side of the store, shared by everyone.
#[derive(Clone)]
pub struct Reader {
    conn: Arc<Mutex<Connection>>,
}

pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join(DB_FILE)
}

/// What to do about an unusable database: a permission problem is not fixed by moving it.
fn advice(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if ["readonly", "read-only", "permission", "unable to open"]
        .iter()
        .any(|w| r.contains(w))
    {
        " (make the state directory and the database writable by the gateway's user)"
    } else {
        " (move it away to start afresh; it is never overwritten)"
    }
}

/// Creates the state directory (0700: private-room history lives here) and the database file
/// (0600, before SQLite opens it; its -wal and -shm files take the same mode).
pub fn ensure_state_dir(state_dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |source| StoreError::StateDir {
        path: state_dir.to_path_buf(),
        source,
    };
    if !state_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(err)?;
    }
    let db = db_path(state_dir);
    if !db.exists() {
        // A read-only directory shows up when SQLite opens the database, with its advice.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&db);
    }
    Ok(())
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, StoreError> {
        Ok(Reader {
            conn: Arc::new(Mutex::new(schema::open(path, false)?)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&conn)?)
    }

    /// Posts of `room` with a room timestamp (µs, [`Post::room_us`]) after `after_us`, oldest
    /// first.
    pub fn posts_after(
        &self,
        room: &str,
        after_us: u64,
        limit: usize,
    ) -> Result<Vec<Post>, StoreError> {
        self.room_query(
            room,
            "WHERE room_us > ?1 ORDER BY room_us ASC LIMIT ?2",
            after_us.min(i64::MAX as u64) as i64,
            limit,
        )
    }

    /// The newest `limit` posts of `room`, oldest first.
    pub fn recent(&self, room: &str, limit: usize) -> Result<Vec<Post>, StoreError> {
        let mut posts =
            self.room_query(room, "WHERE ?1 ORDER BY room_us DESC LIMIT ?2", 1, limit)?;
        posts.reverse();
        Ok(posts)
    }

    /// Posts of `room`'s table selected by `filter` (`?1`: `arg`, `?2`: `limit`); a room that
    /// never had a post has none.
    fn room_query(
        &self,
        room: &str,
        filter: &str,
        arg: i64,
        limit: usize,
    ) -> Result<Vec<Post>, StoreError> {
        self.with(|c| {
            let Some(tab) = rooms::lookup(c, room)? else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare_cached(&format!(
                "SELECT room_us, {} FROM {} {filter}",
                rooms::COLUMNS,
                rooms::table(tab)
            ))?;
            let rows = stmt.query_map(params![arg, limit.min(i64::MAX as usize) as i64], |r| {
                row_to_post(room, r)
            })?;
            rows.filter_map(|r| r.transpose()).collect()
        })
    }

    pub fn kv_get(&self, ns: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
                params![ns, key],
                |r| r.get(0),
            )
            .optional()
        })
    }

    pub fn kv_list(&self, ns: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key")?;
            let rows = stmt.query_map([ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}

/// A row of a room table (`room_us` then [`rooms::COLUMNS`]); rows written by a newer version
/// with an unknown author kind are skipped.
fn row_to_post(room: &str, r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Post>> {
    let id: Vec<u8> = r.get(1)?;
    let kind: String = r.get(2)?;
    let (Ok(id), Some(kind)) = (
        <[u8; 16]>::try_from(id.as_slice()),
        AuthorKind::parse(&kind),
    ) else {
        return Ok(None);
    };
    let room_us = r.get::<_, i64>(0)?.max(0) as u64;
    Ok(Some(Post {
        id: PostId(id),
        room: room.to_string(),
        room_ts: room_us / crate::post::US_PER_S,
        room_us,
        author: Author {
            kind,
            id: r.get(3)?,
            name: r.get(4)?,
        },
        origin: r.get(5)?,
        author_ts: r.get::<_, i64>(6)? as u64,
        text: r.get(7)?,
        hops: r.get::<_, i64>(8)?.clamp(0, 255) as u8,
    }))
}
