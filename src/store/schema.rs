//! The SQLite schema and how a database is opened: WAL, full sync, and a refusal to start
//! fresh over a file that is not ours or cannot be read. Older schema versions are migrated
//! in place, in one transaction, when the writer opens the file.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{ids, rooms, StoreError};

/// Bumped when the schema changes; an unknown newer version is refused.
/// 1: room timestamps in seconds, every id ever seen in `seen`, a `room_clock` row per room.
/// 2: room timestamps in microseconds, posts clustered by (room, room_ts) with a unique id
///    index (dedup), `seen` only for ids trimmed from history, the clock from `max(room_ts)`.
/// 3: a history table per room keyed by room time (`rooms`), the ids of history (written in
///    sorted groups) and of recently trimmed posts in `post_ids` with their room table and
///    time (`ids`), a `posts` view for inspection.
pub const SCHEMA_VERSION: i64 = 3;

/// Page size of a new database. Smaller pages mean fewer bytes written per small commit (a post
/// at radio rate touches one leaf page, a WAL frame of page + 24 bytes); existing databases
/// keep theirs.
pub const PAGE_SIZE: u32 = 1024;
/// Writer page cache, KiB: the hot leaves of the room tables and the id index on a Pi.
const WRITER_CACHE_KIB: i64 = 2048;
/// Reader page cache, KiB.
const READER_CACHE_KIB: i64 = 1024;
/// Prepared statements the writer keeps: the insert and trim statements of the busy rooms.
const WRITER_STATEMENTS: usize = 128;
/// Prepared statements a reader keeps (history reads are rare; a statement is re-prepared in
/// microseconds, and each kept one costs a few KiB on a Pi).
const READER_STATEMENTS: usize = 32;
/// WAL pages after which a commit checkpoints (the WAL stays near this size: ~1 MiB of 1 KiB
/// pages). A leaf rewritten by many small commits reaches the database file once per
/// checkpoint, so a longer interval writes less to the card.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 1000;
/// A WAL left bigger than this after a checkpoint is truncated to it.
const JOURNAL_SIZE_LIMIT: i64 = 3 << 19;

/// The federation's per-(peer, room) cursors (namespace `federation.cursor`, decimal room
/// timestamps): version 2 changes their unit with the room clock's, so the migration scales
/// them too.
const FEDERATION_CURSOR_NS: &str = "federation.cursor";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
    conn.set_prepared_statement_cache_capacity(if write {
        WRITER_STATEMENTS
    } else {
        READER_STATEMENTS
    });
    if !write {
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
            .map_err(unreadable)?;
        return Ok(conn);
    }
    if existing == 0 {
        // Only takes effect before the first table exists (and before WAL).
        conn.pragma_update(None, "page_size", PAGE_SIZE)
            .map_err(unreadable)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(unreadable)?;
    // FULL: a commit is on disk before we acknowledge the posts in it.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(unreadable)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(unreadable)?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
        .map_err(unreadable)?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(unreadable)?;
    if existing > 0 {
        let version = check_version(&conn, path)?;
        if version < 2 {
            migrate_v1(&conn).map_err(unreadable)?;
        }
        if version < 3 {
            migrate_v2(&conn).map_err(unreadable)?;
        }
    }
    conn.execute_batch(SCHEMA).map_err(unreadable)?;
    conn.execute_batch(rooms::CATALOGUE).map_err(unreadable)?;
    conn.execute_batch(ids::SCHEMA).map_err(unreadable)?;
    if existing == 0 {
        rooms::rebuild_view(&conn).map_err(unreadable)?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(unreadable)?;
    Ok(conn)
}

/// Version 1 → 2, in one transaction: room timestamps (and the federation cursors that point
/// into them) from seconds to microseconds, posts re-clustered by room, `seen` reduced to the
/// ids no longer in history, `room_clock` dropped (the clock is `max(room_ts)` now).
fn migrate_v1(conn: &Connection) -> rusqlite::Result<()> {
    let posts_cols =
        "room, room_ts, id, author_kind, author_id, author_name, origin, author_ts, text, hops";
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE posts_v2 (
            room TEXT NOT NULL, room_ts INTEGER NOT NULL, id BLOB NOT NULL,
            author_kind TEXT NOT NULL, author_id TEXT NOT NULL, author_name TEXT,
            origin TEXT NOT NULL, author_ts INTEGER NOT NULL, text TEXT NOT NULL,
            hops INTEGER NOT NULL, PRIMARY KEY (room, room_ts)) WITHOUT ROWID;
         INSERT OR IGNORE INTO posts_v2 ({posts_cols})
            SELECT room, room_ts * 1000000, id, author_kind, author_id, author_name, origin,
                   author_ts, text, hops FROM posts ORDER BY room, room_ts;
         CREATE TABLE seen_v2 (id BLOB NOT NULL UNIQUE, at INTEGER NOT NULL);
         INSERT OR IGNORE INTO seen_v2 (id, at)
            SELECT id, at FROM seen WHERE id NOT IN (SELECT id FROM posts) ORDER BY at;
         DROP TABLE posts;
         DROP TABLE seen;
         DROP TABLE IF EXISTS room_clock;
         ALTER TABLE posts_v2 RENAME TO posts;
         ALTER TABLE seen_v2 RENAME TO seen;
         UPDATE kv SET value = CAST(CAST(CAST(CAST(value AS TEXT) AS INTEGER) * 1000000 AS TEXT) AS BLOB)
            WHERE ns = '{FEDERATION_CURSOR_NS}';
         COMMIT;"
    ))
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

/// Version 2 → 3, in one transaction: each room's posts move to a table of their own (in
/// room-time order), their ids and the trimmed ids of `seen` (as table 0) to `post_ids` (in id
/// order), and the clustered `posts` table and its id index give way to the `posts` view.
fn migrate_v2(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(rooms::CATALOGUE)?;
        conn.execute_batch(ids::SCHEMA)?;
        let names: Vec<String> = {
            let mut stmt = conn.prepare("SELECT DISTINCT room FROM posts ORDER BY room")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (i, name) in names.iter().enumerate() {
            let tab = i as i64 + 1;
            rooms::create(conn, name, tab)?;
            conn.execute(
                &format!(
                    "INSERT INTO {} (room_us, {cols}) SELECT room_ts, {cols} FROM posts
                     WHERE room = ?1 ORDER BY room_ts",
                    rooms::table(tab),
                    cols = rooms::COLUMNS
                ),
                [name],
            )?;
            conn.execute(
                "UPDATE rooms SET ids_through =
                   (SELECT coalesce(max(room_ts), 0) FROM posts WHERE room = ?1) WHERE tab = ?2",
                rusqlite::params![name, tab],
            )?;
        }
        conn.execute_batch(
            "INSERT OR IGNORE INTO post_ids (id, tab, room_us)
                SELECT p.id, r.tab, p.room_ts FROM posts p JOIN rooms r ON r.name = p.room
                ORDER BY p.id;
             -- Trimmed under version 2: no room table, their trim time as their age.
             INSERT OR IGNORE INTO post_ids (id, tab, room_us)
                SELECT id, 0, at * 1000000 FROM seen ORDER BY id;
             DROP INDEX IF EXISTS posts_by_id;
             DROP TABLE posts;
             DROP TABLE seen;",
        )?;
        rooms::rebuild_view(conn)?;
        conn.execute_batch("COMMIT")
    })();
    result.inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .ok();
    match version.and_then(|v| v.parse::<i64>().ok()) {
        Some(v) if v <= SCHEMA_VERSION => Ok(v),
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
