//! The single writer: posts, ids trimmed from history, and side state, committed in groups.
//!
//! The writer thread blocks for the first request, then takes every request already queued
//! (up to `MAX_BATCH`) into the same transaction. Replies and the commit callback run only after
//! the transaction is on disk, which is what lets the sides acknowledge a post safely.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::{schema, StoreError};
use crate::post::{next_room_us, Post, Via, US_PER_S};

/// Most requests one transaction takes: bounds the latency a single commit adds.
const MAX_BATCH: usize = 4096;
/// Queue length in front of the writer; submitters wait (backpressure) beyond it.
const QUEUE: usize = 16_384;
/// How long an id is remembered after its post left history: a peer re-offers posts from its
/// cursor (the federation's catch-up), which trails what it sent by little; a week covers a
/// peer that was away for days.
const SEEN_RETENTION_S: u64 = 7 * 24 * 3600;
/// Trimmed ids remembered at most; beyond it the oldest go first.
const SEEN_MAX_ROWS: u64 = 65_536;
/// Rows the purge looks at per batch: expiry goes in small steps, never a long delete.
const SEEN_PURGE_STEP: i64 = 64;
/// Most posts a room may hold beyond its `max_history` before it is trimmed back to it (and
/// `seen` rows beyond its cap before they are purged): trimming in steps of up to 64 posts
/// touches the oldest leaf and the trim statements once per step instead of once per commit.
const TRIM_STEP_MAX: u64 = 63;

/// How far a room with depth `limit` may grow before it is trimmed back to `limit`: a 16th
/// of it, at most [`TRIM_STEP_MAX`] (so a room of 15 or fewer posts is trimmed exactly).
pub fn trim_slack(limit: u64) -> u64 {
    (limit / 16).min(TRIM_STEP_MAX)
}

/// Wall clock in Unix microseconds; a function so tests can set it back.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
    })
}

/// What the store holds per room at start: `(history count, newest room timestamp in Unix
/// seconds)`.
pub type Found = HashMap<String, (u64, u64)>;

/// Outcome of a post write.
#[derive(Debug)]
pub enum PostOutcome {
    /// Committed with this room timestamp (the same allocation the fan-out carries).
    Stored(Arc<Post>),
    /// The id is in history or was trimmed from it recently; nothing written.
    Duplicate,
}

pub enum WriteOp {
    /// `post.room_ts` is ignored: the room clock assigns it.
    Post {
        post: Post,
        via: Via,
        /// The id was just drawn at random by the hub (the post enters the system here): it
        /// cannot have been trimmed from history, so `seen` is not asked.
        fresh: bool,
        reply: oneshot::Sender<Result<PostOutcome, StoreError>>,
    },
    Put {
        ns: String,
        key: String,
        value: Vec<u8>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Delete {
        ns: String,
        key: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Per-room history depth, sent at start and on reload.
    SetLimits(HashMap<String, u32>),
    /// Replies once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
    /// Commits what is queued before it, then ends the writer thread (the database is closed
    /// when the thread's handle is joined).
    Close,
}

/// Called in commit order, after the commit, for every stored post.
pub type OnCommit = Box<dyn FnMut(&Arc<Post>, &Via, u64) + Send>;

/// Opens (or creates) the database and starts the writer thread. Returns the queue into it,
/// and the history count and newest room timestamp per room as found, for the hub's
/// bookkeeping, and the thread's handle. The thread commits what is queued and ends on
/// `WriteOp::Close` or when the last sender is dropped; callers that need everything on disk
/// send `WriteOp::Flush` and wait for it.
pub fn start(
    path: &Path,
    clock: WallClock,
    limits: HashMap<String, u32>,
    mut on_commit: OnCommit,
) -> Result<(mpsc::Sender<WriteOp>, Found, std::thread::JoinHandle<()>), StoreError> {
    let conn = schema::open(path, true)?;
    let mut state = State::load(conn, clock, limits)?;
    let found = state.found();
    let (sender, mut rx) = mpsc::channel::<WriteOp>(QUEUE);
    let thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            let mut closing = false;
            while let Some(first) = rx.blocking_recv() {
                closing |= matches!(first, WriteOp::Close);
                batch.push(first);
                while batch.len() < MAX_BATCH && !closing {
                    match rx.try_recv() {
                        Ok(op) => {
                            closing |= matches!(op, WriteOp::Close);
                            batch.push(op);
                        }
                        Err(_) => break,
                    }
                }
                state.run_batch(&mut batch, &mut on_commit);
                if closing {
                    break;
                }
            }
        })
        .map_err(|e| StoreError::Unreadable {
            path: path.to_path_buf(),
            reason: format!("cannot start the writer thread: {e}"),
        })?;
    Ok((sender, found, thread))
}

struct State {
    conn: Connection,
    clock: WallClock,
    limits: HashMap<String, u32>,
    /// Newest room timestamp (µs) per room: `max(room_ts)` at start, then every commit's.
    clocks: HashMap<String, u64>,
    counts: HashMap<String, u64>,
    /// Rows in `seen`.
    seen_rows: u64,
    batches: u64,
}

// Posts are the common case; boxing them would cost an allocation per post.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Post(
        oneshot::Sender<Result<PostOutcome, StoreError>>,
        Option<(Arc<Post>, Via)>,
    ),
    Unit(oneshot::Sender<Result<(), StoreError>>),
    Flush(oneshot::Sender<()>),
}

impl State {
    fn load(
        conn: Connection,
        clock: WallClock,
        limits: HashMap<String, u32>,
    ) -> Result<State, StoreError> {
        let mut clocks = HashMap::new();
        let mut counts = HashMap::new();
        {
            // One walk of the (room, room_ts) key: the count and the clock of every room.
            let mut stmt =
                conn.prepare("SELECT room, count(*), max(room_ts) FROM posts GROUP BY room")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (room, n, last) = row?;
                clocks.insert(room.clone(), last.max(0) as u64);
                counts.insert(room, n.max(0) as u64);
            }
        }
        let seen_rows: i64 = conn.query_row("SELECT count(*) FROM seen", [], |r| r.get(0))?;
        Ok(State {
            conn,
            clock,
            limits,
            clocks,
            counts,
            seen_rows: seen_rows.max(0) as u64,
            batches: 0,
        })
    }

    fn found(&self) -> Found {
        self.counts
            .iter()
            .map(|(room, n)| {
                let newest = self.clocks.get(room).copied().unwrap_or(0) / US_PER_S;
                (room.clone(), (*n, newest))
            })
            .collect()
    }

    fn run_batch(&mut self, batch: &mut Vec<WriteOp>, on_commit: &mut OnCommit) {
        let mut pending = Vec::with_capacity(batch.len());
        let clocks_before = self.clocks.clone();
        let counts_before = self.counts.clone();
        let seen_before = self.seen_rows;
        let result = self.write(batch, &mut pending);
        match result {
            Ok(()) => {
                for p in &pending {
                    if let Pending::Post(_, Some((post, via))) = p {
                        let history = self.counts.get(&post.room).copied().unwrap_or(0);
                        on_commit(post, via, history);
                    }
                }
                for p in pending {
                    match p {
                        Pending::Post(reply, Some((post, _))) => {
                            let _ = reply.send(Ok(PostOutcome::Stored(post)));
                        }
                        Pending::Post(reply, None) => {
                            let _ = reply.send(Ok(PostOutcome::Duplicate));
                        }
                        Pending::Unit(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                        Pending::Flush(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            }
            Err(e) => {
                // Nothing of this batch is on disk: forget its clock steps and tell every caller.
                self.clocks = clocks_before;
                self.counts = counts_before;
                self.seen_rows = seen_before;
                // A full disk fails every batch: one line, then a count once a minute.
                static COMMIT_FAILED: crate::ratelog::Throttle =
                    crate::ratelog::Throttle::per_minute();
                if let Some(held_back) = COMMIT_FAILED.hit() {
                    tracing::error!(
                        "store commit failed: {e}{}",
                        crate::ratelog::repeated(held_back)
                    );
                }
                let msg = e.to_string();
                for p in pending {
                    let err = || StoreError::Commit(msg.clone());
                    match p {
                        Pending::Post(reply, _) => {
                            let _ = reply.send(Err(err()));
                        }
                        Pending::Unit(reply) => {
                            let _ = reply.send(Err(err()));
                        }
                        Pending::Flush(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            }
        }
    }

    fn write(
        &mut self,
        batch: &mut Vec<WriteOp>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), StoreError> {
        let now_us = (self.clock)();
        let now_s = now_us / US_PER_S;
        let tx = self.conn.transaction()?;
        // Per room written to: posts added, and whether it must be trimmed to its depth now
        // (a reload shrank it) rather than when it is a step over.
        let mut touched: HashMap<String, (u64, bool)> = HashMap::new();
        for op in batch.drain(..) {
            match op {
                WriteOp::Post {
                    mut post,
                    via,
                    fresh,
                    reply,
                } => {
                    if !fresh && self.seen_rows > 0 && was_trimmed(&tx, &post)? {
                        pending.push(Pending::Post(reply, None));
                        continue;
                    }
                    let last = self.clocks.get(&post.room).copied().unwrap_or(0);
                    post.room_us = next_room_us(now_us, last);
                    post.room_ts = post.room_us / US_PER_S;
                    // The unique id index refuses a post already in history.
                    if !insert_post(&tx, &post)? {
                        pending.push(Pending::Post(reply, None));
                        continue;
                    }
                    // The room's entries exist after its first post: no key allocation per post.
                    match self.clocks.get_mut(&post.room) {
                        Some(c) => *c = post.room_us,
                        None => {
                            self.clocks.insert(post.room.clone(), post.room_us);
                        }
                    }
                    match touched.get_mut(&post.room) {
                        Some((added, _)) => *added += 1,
                        None => {
                            touched.insert(post.room.clone(), (1, false));
                        }
                    }
                    pending.push(Pending::Post(reply, Some((Arc::new(post), via))));
                }
                WriteOp::Put {
                    ns,
                    key,
                    value,
                    reply,
                } => {
                    tx.prepare_cached(
                        "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute(params![ns, key, value])?;
                    pending.push(Pending::Unit(reply));
                }
                WriteOp::Delete { ns, key, reply } => {
                    tx.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?
                        .execute(params![ns, key])?;
                    pending.push(Pending::Unit(reply));
                }
                WriteOp::SetLimits(limits) => {
                    // Rooms whose depth shrank are trimmed in this very transaction.
                    for (room, limit) in &limits {
                        if self.counts.get(room).copied().unwrap_or(0) > u64::from(*limit) {
                            touched.entry(room.clone()).or_default().1 = true;
                        }
                    }
                    self.limits = limits;
                }
                WriteOp::Flush(reply) => pending.push(Pending::Flush(reply)),
                WriteOp::Close => {}
            }
        }
        for (room, (added, now)) in touched {
            // Every room the hub accepts posts for has a limit (sent at start and on reload).
            let limit = self.limits.get(&room).map_or(u64::MAX, |l| u64::from(*l));
            let count = self.counts.get(&room).copied().unwrap_or(0) + added;
            let over = count > limit.saturating_add(trim_slack(limit)) || (now && count > limit);
            if over {
                let excess = (count - limit) as i64;
                // The oldest leave history; their ids are remembered for a while.
                self.seen_rows +=
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO seen (id, at)
                         SELECT id, ?3 FROM posts WHERE room = ?1 ORDER BY room_ts ASC LIMIT ?2",
                    )?
                    .execute(params![room, excess, now_s as i64])? as u64;
                tx.prepare_cached(
                    "DELETE FROM posts WHERE room = ?1 AND room_ts <=
                       (SELECT room_ts FROM posts WHERE room = ?1 ORDER BY room_ts ASC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![room, excess - 1])?;
            }
            self.counts.insert(room, if over { limit } else { count });
        }
        self.batches += 1;
        self.seen_rows = purge_seen(&tx, self.seen_rows, self.batches, now_s)?;
        tx.commit()?;
        Ok(())
    }
}

/// Forgets trimmed ids in small steps: the oldest beyond the row cap, and (every 64th batch)
/// the oldest past the retention time. Returns the rows left.
fn purge_seen(
    tx: &Transaction<'_>,
    seen_rows: u64,
    batches: u64,
    now_s: u64,
) -> rusqlite::Result<u64> {
    if seen_rows == 0 {
        return Ok(0);
    }
    let over = seen_rows.saturating_sub(SEEN_MAX_ROWS) as i64;
    // Past the cap by a step: the oldest go in one statement, not one row per commit.
    let removed = if over > TRIM_STEP_MAX as i64 {
        tx.prepare_cached(
            "DELETE FROM seen WHERE rowid IN (SELECT rowid FROM seen ORDER BY rowid LIMIT ?1)",
        )?
        .execute([over])?
    } else if batches % 64 == 1 {
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
    Ok(seen_rows.saturating_sub(removed as u64))
}

/// Whether the id was trimmed from history recently (a late duplicate).
fn was_trimmed(tx: &Transaction<'_>, post: &Post) -> rusqlite::Result<bool> {
    let mut stmt = tx.prepare_cached("SELECT 1 FROM seen WHERE id = ?1")?;
    stmt.exists([&post.id.0[..]])
}

/// Inserts the post; false when its id is already in history (a duplicate).
fn insert_post(tx: &Transaction<'_>, p: &Post) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO posts (room, room_ts, id, author_kind, author_id, author_name, origin, author_ts, text, hops)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            p.room,
            p.room_us as i64,
            &p.id.0[..],
            p.author.kind.as_str(),
            p.author.id,
            p.author.name,
            p.origin,
            p.author_ts as i64,
            p.text,
            p.hops as i64
        ])?;
    Ok(n == 1)
}
