//! Durable storage in SQLite: posts (trimmed to each room's `max_history`; the room clock is
//! their newest timestamp), ids recently trimmed from history, and the small key-value state of
//! the sides.
//!
//! All writes go through one writer thread (`writer`) that commits in groups: whatever arrived
//! while the previous commit was on its way to disk goes into the next transaction, so a burst
//! costs one fsync, not one per post. Reads use their own connection (WAL lets them run beside
//! the writer).

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
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, room, room_ts, author_kind, author_id, author_name, origin, author_ts, text, hops
                 FROM posts WHERE room = ?1 AND room_ts > ?2 ORDER BY room_ts ASC LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![room, after_us.min(i64::MAX as u64) as i64, limit as i64],
                row_to_post,
            )?;
            rows.filter_map(|r| r.transpose()).collect()
        })
    }

    /// The newest `limit` posts of `room`, oldest first.
    pub fn recent(&self, room: &str, limit: usize) -> Result<Vec<Post>, StoreError> {
        let mut posts = self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, room, room_ts, author_kind, author_id, author_name, origin, author_ts, text, hops
                 FROM posts WHERE room = ?1 ORDER BY room_ts DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![room, limit as i64], row_to_post)?;
            rows.filter_map(|r| r.transpose()).collect::<rusqlite::Result<Vec<_>>>()
        })?;
        posts.reverse();
        Ok(posts)
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

/// A row of `posts`; rows written by a newer version with an unknown author kind are skipped.
fn row_to_post(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Post>> {
    let id: Vec<u8> = r.get(0)?;
    let kind: String = r.get(3)?;
    let (Ok(id), Some(kind)) = (
        <[u8; 16]>::try_from(id.as_slice()),
        AuthorKind::parse(&kind),
    ) else {
        return Ok(None);
    };
    let room_us = r.get::<_, i64>(2)?.max(0) as u64;
    Ok(Some(Post {
        id: PostId(id),
        room: r.get(1)?,
        room_ts: room_us / crate::post::US_PER_S,
        room_us,
        author: Author {
            kind,
            id: r.get(4)?,
            name: r.get(5)?,
        },
        origin: r.get(6)?,
        author_ts: r.get::<_, i64>(7)? as u64,
        text: r.get(8)?,
        hops: r.get::<_, i64>(9)?.clamp(0, 255) as u8,
    }))
}
