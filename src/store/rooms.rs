//! Where a room's history lives: one table per room, named by a number from the `rooms`
//! catalogue, keyed by the room clock.
//!
//! A table per room makes every new post an append at the right edge of its room's B-tree, a
//! rowid table, where SQLite splits a full leaf by starting a new one (its "quick balance"):
//! one page per commit most of the time, pages packed full. One table clustered by (room, time)
//! appends in the middle of the tree instead, and every split there rewrites three leaves and
//! their parent, which is most of what a post at radio rate wrote to the card.
//!
//! The catalogue also keeps, per room, the room time up to which the room's ids are in the id
//! index (`ids_through`, see `ids`). A `posts` view joins the room tables back into one for
//! people inspecting the file with `sqlite3`.

use rusqlite::{params, Connection, OptionalExtension};

/// The columns of a room table after its key, in the order the store reads and writes them.
pub const COLUMNS: &str = "id, author_kind, author_id, author_name, origin, author_ts, text, hops";

/// SQLite's limit on the arms of one compound SELECT: the `posts` view covers this many rooms.
const VIEW_ROOMS_MAX: usize = 500;

pub const CATALOGUE: &str = "
-- Room name → number of its history table (room_<tab>); ids_through: every post of the room
-- up to this room time (µs) has its id in post_ids; kept: the room's post count as of the last
-- clean stop, NULL once the gateway has written again (a start then counts the table).
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    tab INTEGER NOT NULL UNIQUE,
    ids_through INTEGER NOT NULL DEFAULT 0,
    kept INTEGER
);
";

/// The history table of catalogue number `tab`.
pub fn table(tab: i64) -> String {
    format!("room_{tab}")
}

/// A room's entry in the catalogue, as loaded at start.
pub struct Entry {
    pub name: String,
    pub tab: i64,
    pub ids_through: u64,
    /// The post count saved at the last clean stop, if nothing was written since.
    pub kept: Option<u64>,
}

pub fn all(conn: &Connection) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare("SELECT name, tab, ids_through, kept FROM rooms ORDER BY tab")?;
    let rows = stmt.query_map([], |r| {
        Ok(Entry {
            name: r.get(0)?,
            tab: r.get(1)?,
            ids_through: r.get::<_, i64>(2)?.max(0) as u64,
            kept: r.get::<_, Option<i64>>(3)?.map(|n| n.max(0) as u64),
        })
    })?;
    rows.collect()
}

/// The table number of `room`, if it ever had a post.
pub fn lookup(conn: &Connection, room: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT tab FROM rooms WHERE name = ?1")?
        .query_row([room], |r| r.get(0))
        .optional()
}

/// Enters `room` in the catalogue as number `tab` and creates its table (the caller rebuilds
/// the `posts` view). Runs inside the caller's transaction.
pub fn create(conn: &Connection, room: &str, tab: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO rooms (name, tab, ids_through) VALUES (?1, ?2, 0)",
        params![room, tab],
    )?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            room_us INTEGER PRIMARY KEY,
            id BLOB NOT NULL,
            author_kind TEXT NOT NULL,
            author_id TEXT NOT NULL,
            author_name TEXT,
            origin TEXT NOT NULL,
            author_ts INTEGER NOT NULL,
            text TEXT NOT NULL,
            hops INTEGER NOT NULL
        );",
        table(tab)
    ))
}

/// `posts`: every room's history as one relation (room, room_us, id, …), for inspection only;
/// the gateway reads the room tables. It covers the first [`VIEW_ROOMS_MAX`] rooms.
pub fn rebuild_view(conn: &Connection) -> rusqlite::Result<()> {
    let entries = all(conn)?;
    let arms: Vec<String> = entries
        .iter()
        .take(VIEW_ROOMS_MAX)
        .map(|e| {
            format!(
                "SELECT '{}' AS room, room_us, {COLUMNS} FROM {}",
                e.name.replace('\'', "''"),
                table(e.tab)
            )
        })
        .collect();
    let body = if arms.is_empty() {
        "SELECT NULL AS room, NULL AS room_us, NULL AS id, NULL AS author_kind, NULL AS author_id,
                NULL AS author_name, NULL AS origin, NULL AS author_ts, NULL AS text, NULL AS hops
         WHERE 0"
            .to_string()
    } else {
        arms.join(" UNION ALL ")
    };
    conn.execute_batch(&format!(
        "DROP VIEW IF EXISTS posts; CREATE VIEW posts AS {body};"
    ))
}
