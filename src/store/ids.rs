//! Deduplication by post id: every id in history, and the ids trimmed from history recently.
//!
//! `post_ids` holds both, one lookup for the dedup check. Each row names the room table and the
//! room time of its post, so whether a post is still in history is a comparison with its room's
//! *floor* (the oldest room time kept, held in RAM): trimming a room deletes a range of its table
//! and moves the floor, and touches no id at all.
//! - The ids of new posts are written in sorted groups of [`GROUP`], not per commit: the ids
//!   committed since the last group wait in RAM, where the dedup check finds them too. A commit
//!   at radio rate thus writes its room's leaf and nothing else. After a crash the waiting ids
//!   are found again from the room tables: every post after its room's `ids_through` mark (see
//!   `rooms`).
//! - The ids of trimmed posts stay while their post's room time is less than
//!   [`SEEN_RETENTION_S`] old, and at most [`SEEN_MAX_ROWS`] of them, so a peer that offers one
//!   again is still recognised. A purge walks `post_ids` a small step per transaction (in id
//!   order, which for fresh ids is age order) and deletes the trimmed ones past those bounds.
//!
//! Fresh ids start with their millisecond (`PostId::fresh`), so a group lands on a few
//! neighbouring leaves at the right edge of `post_ids`.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::rooms;

/// Ids that wait in RAM before they are written to `post_ids` together (~40 bytes each).
pub const GROUP: usize = 256;
/// How long the id of a trimmed post is remembered, counted from the post's room time: a peer
/// re-offers posts from its cursor (the federation's catch-up), which trails what it sent by
/// little; a week covers a peer that was away for days.
pub const SEEN_RETENTION_S: u64 = 7 * 24 * 3600;
/// Ids of trimmed posts remembered at most; beyond it the purge takes them regardless of age.
pub const SEEN_MAX_ROWS: u64 = 65_536;
/// Rows of `post_ids` the purge looks at per transaction, plus two per post the transaction
/// added (so it keeps up with a flood): expiry goes in small steps, never a long delete.
const PURGE_STEP: u64 = 64;

/// `meta` key of the trimmed-id count saved at a clean stop.
const TRIMMED_KEY: &str = "trimmed_ids_at_stop";

pub const SCHEMA: &str = "
-- The dedup: the id of every post in history and of posts trimmed from it recently, with the
-- room table (rooms.tab) and room time of the post. Written in sorted groups.
CREATE TABLE IF NOT EXISTS post_ids (
    id BLOB PRIMARY KEY,
    tab INTEGER NOT NULL,
    room_us INTEGER NOT NULL
) WITHOUT ROWID;
";

pub struct Dedup {
    /// Committed ids not yet in `post_ids`, with their room table and room time.
    pending: HashMap<[u8; 16], (i64, u64)>,
    /// Per room table, the oldest room time still in history; a table with no entry has no
    /// post (its ids, if any, are all trimmed). Table 0 holds ids trimmed under schema 2.
    floors: HashMap<i64, u64>,
    /// Ids of trimmed posts in `post_ids`.
    trimmed_rows: u64,
    /// Where the purge goes on: the last id it looked at.
    purge_after: Vec<u8>,
    /// Ids of trimmed posts kept at most ([`SEEN_MAX_ROWS`]).
    cap: u64,
}

impl Dedup {
    /// Reads the floors, the ids committed but not yet grouped (after a crash), and how many
    /// trimmed ids there are. `rooms`: the catalogue; `history`: posts in all room tables.
    pub fn load(
        conn: &Connection,
        rooms: &[rooms::Entry],
        history: u64,
    ) -> rusqlite::Result<Dedup> {
        let mut dedup = Dedup {
            pending: HashMap::new(),
            floors: HashMap::new(),
            trimmed_rows: 0,
            purge_after: Vec::new(),
            cap: SEEN_MAX_ROWS,
        };
        dedup.reload(conn, rooms, history)?;
        Ok(dedup)
    }

    /// Forgets what this process held and reads it back from the database (at start, and after
    /// a failed commit rolled back).
    pub fn reload(
        &mut self,
        conn: &Connection,
        rooms: &[rooms::Entry],
        history: u64,
    ) -> rusqlite::Result<()> {
        self.pending.clear();
        self.floors.clear();
        for e in rooms {
            let table = rooms::table(e.tab);
            let floor: Option<i64> =
                conn.query_row(&format!("SELECT min(room_us) FROM {table}"), [], |r| {
                    r.get(0)
                })?;
            if let Some(floor) = floor {
                self.floors.insert(e.tab, floor.max(0) as u64);
            }
            // Once per room at start: not worth a place in the statement cache.
            let mut stmt = conn.prepare(&format!(
                "SELECT id, room_us FROM {table} WHERE room_us > ?1"
            ))?;
            let rows = stmt.query_map([e.ids_through.min(i64::MAX as u64) as i64], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, room_us) = row?;
                if let Ok(id) = <[u8; 16]>::try_from(id.as_slice()) {
                    self.pending.insert(id, (e.tab, room_us.max(0) as u64));
                }
            }
        }
        // Saved at a clean stop; else: rows are the flushed ids of history plus the trimmed ones.
        let saved: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [TRIMMED_KEY],
                |r| r.get(0),
            )
            .optional()?;
        self.trimmed_rows = match saved.and_then(|v| v.parse().ok()) {
            Some(n) => n,
            None => {
                let rows: i64 =
                    conn.query_row("SELECT count(*) FROM post_ids", [], |r| r.get(0))?;
                let flushed_history = history.saturating_sub(self.pending.len() as u64);
                (rows.max(0) as u64).saturating_sub(flushed_history)
            }
        };
        Ok(())
    }

    /// At a clean stop: the count of trimmed ids, so the next start need not count them.
    pub fn save_counts(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
            .execute(params![TRIMMED_KEY, self.trimmed_rows.to_string()])?;
        Ok(())
    }

    /// The first write after a start: the saved count is stale from now on.
    pub fn forget_counts(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.prepare_cached("DELETE FROM meta WHERE key = ?1")?
            .execute([TRIMMED_KEY])?;
        Ok(())
    }

    /// Whether `id` is in history or was trimmed from it recently.
    pub fn known(&self, tx: &Transaction<'_>, id: &[u8; 16]) -> rusqlite::Result<bool> {
        Ok(self.pending.contains_key(id)
            || tx
                .prepare_cached("SELECT 1 FROM post_ids WHERE id = ?1")?
                .exists([&id[..]])?)
    }

    /// A post with this id was inserted into room table `tab` at `room_us`; `first`: the table
    /// was empty, so this post sets its floor.
    pub fn added(&mut self, tab: i64, id: [u8; 16], room_us: u64, first: bool) {
        self.pending.insert(id, (tab, room_us));
        if first {
            self.floors.insert(tab, room_us);
        }
    }

    /// Room table `tab` is about to lose its posts up to `through_us` (`n` of them): the waiting
    /// ids are written first, so that every trimmed id is in `post_ids`, then the floor moves.
    pub fn trim(
        &mut self,
        tx: &Transaction<'_>,
        tab: i64,
        through_us: u64,
        n: u64,
    ) -> rusqlite::Result<()> {
        self.write_group(tx)?;
        self.floors.insert(tab, through_us.saturating_add(1));
        self.trimmed_rows += n;
        Ok(())
    }

    /// End of a transaction's work (`added`: posts it added): writes the waiting ids once there
    /// are a group of them (or when `all`, at close) and purges trimmed ids by a step.
    pub fn finish(
        &mut self,
        tx: &Transaction<'_>,
        now_us: u64,
        added: u64,
        all: bool,
    ) -> rusqlite::Result<()> {
        if self.pending.len() >= GROUP || all {
            self.write_group(tx)?;
        }
        if self.trimmed_rows > 0 {
            self.purge(tx, now_us, PURGE_STEP + 2 * added)?;
        }
        Ok(())
    }

    /// Writes the waiting ids, sorted, with the new `ids_through` of their rooms.
    fn write_group(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<([u8; 16], (i64, u64))> = self.pending.drain().collect();
        ids.sort_unstable_by_key(|(id, _)| *id);
        let mut through: HashMap<i64, u64> = HashMap::new();
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO post_ids (id, tab, room_us) VALUES (?1, ?2, ?3)",
        )?;
        for (id, (tab, room_us)) in &ids {
            insert.execute(params![&id[..], tab, *room_us as i64])?;
            let t = through.entry(*tab).or_default();
            *t = (*t).max(*room_us);
        }
        let mut mark = tx.prepare_cached("UPDATE rooms SET ids_through = ?2 WHERE tab = ?1")?;
        for (tab, room_us) in through {
            mark.execute(params![tab, room_us.min(i64::MAX as u64) as i64])?;
        }
        Ok(())
    }

    /// Looks at the next `step` rows of `post_ids` (wrapping round) and deletes the ids of
    /// trimmed posts older than the retention, or any while there are more than the cap. Runs of
    /// neighbouring doomed ids (the oldest posts, usually) go in one range delete.
    fn purge(&mut self, tx: &Transaction<'_>, now_us: u64, step: u64) -> rusqlite::Result<()> {
        let expired_before = now_us.saturating_sub(SEEN_RETENTION_S * crate::post::US_PER_S);
        let mut looked = 0u64;
        let mut deleted = 0u64;
        // Inclusive id ranges to delete, each with its row count.
        let mut runs: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT id, tab, room_us FROM post_ids WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![
                self.purge_after.as_slice(),
                step.min(i64::MAX as u64) as i64
            ])?;
            let mut over = self.trimmed_rows.saturating_sub(self.cap);
            let mut in_run = false;
            while let Some(r) = rows.next()? {
                looked += 1;
                let id = r.get_ref(0)?.as_blob()?;
                let tab: i64 = r.get(1)?;
                let room_us = r.get::<_, i64>(2)?.max(0) as u64;
                let trimmed = self.floors.get(&tab).is_none_or(|floor| room_us < *floor);
                if trimmed && (over > 0 || room_us < expired_before) {
                    over = over.saturating_sub(1);
                    match runs.last_mut() {
                        Some((_, last, n)) if in_run => {
                            last.clear();
                            last.extend_from_slice(id);
                            *n += 1;
                        }
                        _ => runs.push((id.to_vec(), id.to_vec(), 1)),
                    }
                    in_run = true;
                } else {
                    in_run = false;
                }
                self.purge_after.clear();
                self.purge_after.extend_from_slice(id);
            }
        }
        if looked < step {
            // The end of the table: the next step starts again from the first id.
            self.purge_after.clear();
        }
        let mut delete = tx.prepare_cached("DELETE FROM post_ids WHERE id >= ?1 AND id <= ?2")?;
        for (first, last, n) in &runs {
            delete.execute(params![first.as_slice(), last.as_slice()])?;
            deleted += n;
        }
        self.trimmed_rows = self.trimmed_rows.saturating_sub(deleted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with room table 1 holding posts at room times 91..=100 (the floor is 91) and
    /// `post_ids` rows for room times 1..=100, ids in the same order.
    fn setup() -> (Connection, Dedup) {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
            .unwrap();
        conn.execute_batch(rooms::CATALOGUE).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        rooms::create(&conn, "R", 1).unwrap();
        for t in 1..=100u64 {
            let id = [t as u8; 16];
            conn.execute(
                "INSERT INTO post_ids (id, tab, room_us) VALUES (?1, 1, ?2)",
                params![&id[..], t as i64],
            )
            .unwrap();
            if t > 90 {
                conn.execute(
                    &format!(
                        "INSERT INTO {} (room_us, {}) VALUES (?1, ?2, 'ip', 'a', NULL, 'A', 0, 'x', 0)",
                        rooms::table(1),
                        rooms::COLUMNS
                    ),
                    params![t as i64, &id[..]],
                )
                .unwrap();
                conn.execute("UPDATE rooms SET ids_through = ?1", [t as i64])
                    .unwrap();
            }
        }
        let dedup = Dedup::load(&conn, &rooms::all(&conn).unwrap(), 10).unwrap();
        (conn, dedup)
    }

    fn left(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT room_us FROM post_ids ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn the_purge_keeps_history_and_the_newest_trimmed_ids_up_to_the_cap() {
        let (mut conn, mut dedup) = setup();
        assert_eq!((dedup.trimmed_rows, dedup.pending.len()), (90, 0));
        dedup.cap = 30;
        let tx = conn.transaction().unwrap();
        // Small steps: the walk goes on where it stopped, and wraps round.
        for _ in 0..10 {
            dedup.purge(&tx, 1000, 16).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(left(&conn), (61..=100).collect::<Vec<_>>());
        assert_eq!(dedup.trimmed_rows, 30);
    }

    #[test]
    fn the_purge_forgets_trimmed_ids_past_the_retention_but_never_history() {
        let (mut conn, mut dedup) = setup();
        let week = SEEN_RETENTION_S * crate::post::US_PER_S;
        let tx = conn.transaction().unwrap();
        // Young: nothing goes.
        dedup.purge(&tx, 1000, 1000).unwrap();
        assert_eq!(left(&tx).len(), 100);
        // A week after room time 50: posts 1..=49 are forgotten, the rest stays.
        dedup.purge(&tx, 50 + week, 1000).unwrap();
        assert_eq!(left(&tx), (50..=100).collect::<Vec<_>>());
        // Long after: every trimmed id goes, the ten in history stay.
        dedup.purge(&tx, 1000 * week, 1000).unwrap();
        assert_eq!(left(&tx), (91..=100).collect::<Vec<_>>());
        assert_eq!(dedup.trimmed_rows, 0);
        tx.commit().unwrap();
    }
}
