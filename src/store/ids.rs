//! Deduplication by post id: every id in history, and the ids trimmed from history recently.
//!
//! - `post_ids` holds the ids of the posts in history. It is written in sorted groups of
//!   [`GROUP`], not per commit: the ids committed since the last group wait in RAM
//!   ([`Dedup::pending`]), where the dedup check finds them too. A commit at radio rate thus
//!   writes its room's leaf and nothing else. After a crash the waiting ids are found again from
//!   the room tables: every post after its room's `ids_through` mark (see `rooms`).
//! - `seen` holds ids trimmed from history, for [`SEEN_RETENTION_S`] and at most
//!   [`SEEN_MAX_ROWS`], in trim order, so a peer that offers one again is still recognised; it is
//!   purged in small steps.
//!
//! Fresh ids start with their millisecond (`PostId::fresh`), so a group lands on a few
//! neighbouring leaves at the right edge of `post_ids`.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, Transaction};

use super::rooms;

/// Ids that wait in RAM before they are written to `post_ids` together (16 bytes each).
pub const GROUP: usize = 256;
/// How long an id is remembered after its post left history: a peer re-offers posts from its
/// cursor (the federation's catch-up), which trails what it sent by little; a week covers a
/// peer that was away for days.
pub const SEEN_RETENTION_S: u64 = 7 * 24 * 3600;
/// Trimmed ids remembered at most; beyond it the oldest go first.
pub const SEEN_MAX_ROWS: u64 = 65_536;
/// Rows the purge looks at per batch: expiry goes in small steps, never a long delete.
const SEEN_PURGE_STEP: i64 = 64;
/// `seen` rows beyond its cap before the excess is purged in one statement.
const SEEN_PURGE_SLACK: i64 = 63;

pub const SCHEMA: &str = "
-- Ids of the posts in history (dedup), written in sorted groups.
CREATE TABLE IF NOT EXISTS post_ids (id BLOB PRIMARY KEY) WITHOUT ROWID;
-- Ids trimmed from history, remembered for a bounded window. Row order is trim order, so the
-- oldest go first in small steps.
CREATE TABLE IF NOT EXISTS seen (id BLOB NOT NULL UNIQUE, at INTEGER NOT NULL);
";

pub struct Dedup {
    /// Committed ids not yet in `post_ids`.
    pending: HashSet<[u8; 16]>,
    /// Table numbers of the rooms with pending ids: their `ids_through` moves at the next group.
    rooms: HashSet<i64>,
    /// Rows in `seen`.
    seen_rows: u64,
    batches: u64,
}

impl Dedup {
    /// The ids committed but not yet grouped (after a crash, or a failed commit), from the room
    /// tables, and the size of `seen`.
    pub fn load(conn: &Connection) -> rusqlite::Result<Dedup> {
        let mut dedup = Dedup {
            pending: HashSet::new(),
            rooms: HashSet::new(),
            seen_rows: 0,
            batches: 0,
        };
        dedup.reload(conn)?;
        Ok(dedup)
    }

    /// Forgets what this process held and reads it back from the database (after a failed
    /// commit rolled back).
    pub fn reload(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.pending.clear();
        self.rooms.clear();
        for e in rooms::all(conn)? {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT id FROM {} WHERE room_us > ?1",
                rooms::table(e.tab)
            ))?;
            let ids = stmt.query_map([e.ids_through.min(i64::MAX as u64) as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })?;
            for id in ids {
                if let Ok(id) = <[u8; 16]>::try_from(id?.as_slice()) {
                    self.pending.insert(id);
                    self.rooms.insert(e.tab);
                }
            }
        }
        let seen: i64 = conn.query_row("SELECT count(*) FROM seen", [], |r| r.get(0))?;
        self.seen_rows = seen.max(0) as u64;
        Ok(())
    }

    /// Whether `id` is in history or was trimmed from it recently.
    pub fn known(&self, tx: &Transaction<'_>, id: &[u8; 16]) -> rusqlite::Result<bool> {
        if self.pending.contains(id) {
            return Ok(true);
        }
        if tx
            .prepare_cached("SELECT 1 FROM post_ids WHERE id = ?1")?
            .exists([&id[..]])?
        {
            return Ok(true);
        }
        Ok(self.seen_rows > 0
            && tx
                .prepare_cached("SELECT 1 FROM seen WHERE id = ?1")?
                .exists([&id[..]])?)
    }

    /// A post with this id was inserted into room table `tab`.
    pub fn added(&mut self, tab: i64, id: [u8; 16]) {
        self.pending.insert(id);
        self.rooms.insert(tab);
    }

    /// The posts with these ids left history at `now_s`: their ids move to `seen`.
    pub fn trimmed(
        &mut self,
        tx: &Transaction<'_>,
        ids: &[[u8; 16]],
        now_s: u64,
    ) -> rusqlite::Result<()> {
        for id in ids {
            if !self.pending.remove(id) {
                tx.prepare_cached("DELETE FROM post_ids WHERE id = ?1")?
                    .execute([&id[..]])?;
            }
            self.seen_rows += tx
                .prepare_cached("INSERT OR IGNORE INTO seen (id, at) VALUES (?1, ?2)")?
                .execute(params![&id[..], now_s as i64])? as u64;
        }
        Ok(())
    }

    /// End of a transaction's work: writes the waiting ids once there are a group of them (or
    /// when `all`, at close), with the new `ids_through` of their rooms (`clocks`: each room
    /// table's newest room time), and purges `seen` by a step.
    pub fn finish(
        &mut self,
        tx: &Transaction<'_>,
        clocks: &HashMap<i64, u64>,
        now_s: u64,
        all: bool,
    ) -> rusqlite::Result<()> {
        if self.pending.len() >= GROUP || (all && !self.pending.is_empty()) {
            let mut ids: Vec<[u8; 16]> = self.pending.drain().collect();
            ids.sort_unstable();
            let mut insert =
                tx.prepare_cached("INSERT OR IGNORE INTO post_ids (id) VALUES (?1)")?;
            for id in &ids {
                insert.execute([&id[..]])?;
            }
            let mut mark = tx.prepare_cached("UPDATE rooms SET ids_through = ?2 WHERE tab = ?1")?;
            for tab in self.rooms.drain() {
                let through = clocks.get(&tab).copied().unwrap_or(0);
                mark.execute(params![tab, through.min(i64::MAX as u64) as i64])?;
            }
        }
        self.batches += 1;
        self.purge_seen(tx, now_s)
    }

    /// Ids waiting in RAM (for tests and the bench).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Forgets trimmed ids in small steps: the oldest beyond the row cap, and (every 64th batch)
    /// the oldest past the retention time.
    fn purge_seen(&mut self, tx: &Transaction<'_>, now_s: u64) -> rusqlite::Result<()> {
        if self.seen_rows == 0 {
            return Ok(());
        }
        let over = self.seen_rows.saturating_sub(SEEN_MAX_ROWS) as i64;
        // Past the cap by a step: the oldest go in one statement, not one row per commit.
        let removed = if over > SEEN_PURGE_SLACK {
            tx.prepare_cached(
                "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen ORDER BY rowid LIMIT ?1)",
            )?
            .execute([over])?
        } else if self.batches % 64 == 1 {
            tx.prepare_cached(
                "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM
                       (SELECT rowid, at FROM seen ORDER BY rowid LIMIT ?1) WHERE at < ?2)",
            )?
            .execute(params![
                SEEN_PURGE_STEP,
                now_s.saturating_sub(SEEN_RETENTION_S) as i64
            ])?
        } else {
            0
        };
        self.seen_rows = self.seen_rows.saturating_sub(removed as u64);
        Ok(())
    }
}
