//! The SQLite schema and how a database is opened: WAL, full sync, and a refusal to start
//! fresh over a file that is not ours or cannot be read.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;

/// Bumped when the schema changes; an unknown newer version is refused.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS room_clock (room TEXT PRIMARY KEY, last_ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS posts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id BLOB NOT NULL,
    room TEXT NOT NULL,
    room_ts INTEGER NOT NULL,
    author_kind TEXT NOT NULL,
    author_id TEXT NOT NULL,
    author_name TEXT,
    origin TEXT NOT NULL,
    author_ts INTEGER NOT NULL,
    text TEXT NOT NULL,
    hops INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_by_room ON posts (room, room_ts);
-- Ids seen, kept longer than history so a late duplicate is still recognised.
-- Keyed by the id alone (WITHOUT ROWID): one B-tree insert per post, no second index.
CREATE TABLE IF NOT EXISTS seen (id BLOB PRIMARY KEY, room TEXT NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
-- Durable state of the sides: client sync state, peer cursors, advert clocks.
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key));
";

pub fn open(path: &Path, write: bool) -> Result<Connection, StoreError> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let unreadable = |e: rusqlite::Error| StoreError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let conn = Connection::open_with_flags(path, flags).map_err(unreadable)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(unreadable)?;
    // Touching the schema is the first read: a file that is not a database fails here.
    let existing: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
        .map_err(unreadable)?;
    if write {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unreadable)?;
        // FULL: a commit is on disk before we acknowledge the posts in it.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unreadable)?;
        // 16 MiB of page cache keeps the id and room indexes in memory on a Pi.
        conn.pragma_update(None, "cache_size", -16_000)
            .map_err(unreadable)?;
        if existing > 0 {
            check_version(&conn, path)?;
        }
        conn.execute_batch(SCHEMA).map_err(unreadable)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(unreadable)?;
    }
    Ok(conn)
}

fn check_version(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .ok();
    match version.and_then(|v| v.parse::<i64>().ok()) {
        Some(v) if v <= SCHEMA_VERSION => Ok(()),
        Some(v) => Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("schema version {v} is newer than this meshroom-gw ({SCHEMA_VERSION})"),
        }),
        None => Err(StoreError::Unreadable {
            path: path.to_path_buf(),
            reason: "this SQLite file is not a meshroom-gw database".to_string(),
        }),
    }
}
