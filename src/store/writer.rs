//! The single writer: posts, ids seen, room clocks and side state, committed in groups.
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
use crate::post::{next_room_ts, Post, Via};

/// Most requests one transaction takes: bounds the latency a single commit adds.
const MAX_BATCH: usize = 4096;
/// Queue length in front of the writer; submitters wait (backpressure) beyond it.
const QUEUE: usize = 16_384;
/// How long an id is remembered after its post left history.
const SEEN_RETENTION_S: u64 = 30 * 24 * 3600;

/// Wall clock in Unix seconds; a function so tests can set it back.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> WallClock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

/// What the store holds per room at start: `(history count, newest room timestamp)`.
pub type Found = HashMap<String, (u64, u64)>;

/// Outcome of a post write.
#[derive(Debug)]
pub enum PostOutcome {
    /// Committed with this room timestamp.
    Stored(Post),
    /// The id was seen before; nothing written.
    Duplicate,
}

pub enum WriteOp {
    /// `post.room_ts` is ignored: the room clock assigns it.
    Post {
        post: Post,
        via: Via,
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
pub type OnCommit = Box<dyn FnMut(&Post, &Via, u64) + Send>;

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
    let found = state
        .counts
        .iter()
        .map(|(room, n)| {
            (
                room.clone(),
                (*n, state.newest.get(room).copied().unwrap_or(0)),
            )
        })
        .collect();
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
    /// Room timestamp of the newest stored post, per room, as found at start.
    newest: HashMap<String, u64>,
    conn: Connection,
    clock: WallClock,
    limits: HashMap<String, u32>,
    clocks: HashMap<String, u64>,
    counts: HashMap<String, u64>,
    batches: u64,
}

enum Pending {
    Post(
        oneshot::Sender<Result<PostOutcome, StoreError>>,
        Option<(Post, Via)>,
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
        {
            let mut stmt = conn.prepare("SELECT room, last_ts FROM room_clock")?;
            for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (room, ts) = row?;
                clocks.insert(room, ts as u64);
            }
        }
        let mut counts = HashMap::new();
        let mut newest = HashMap::new();
        {
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
                newest.insert(room.clone(), last as u64);
                counts.insert(room, n as u64);
            }
        }
        Ok(State {
            newest,
            conn,
            clock,
            limits,
            clocks,
            counts,
            batches: 0,
        })
    }

    fn run_batch(&mut self, batch: &mut Vec<WriteOp>, on_commit: &mut OnCommit) {
        let mut pending = Vec::with_capacity(batch.len());
        let clocks_before = self.clocks.clone();
        let counts_before = self.counts.clone();
        let result = self.write(batch, &mut pending);
        match result {
            Ok(()) => {
                for p in &pending {
                    if let Pending::Post(_, Some((post, via))) = p {
                        on_commit(post, via, self.counts.get(&post.room).copied().unwrap_or(0));
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
                tracing::error!("store commit failed: {e}");
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
        let now = (self.clock)();
        let tx = self.conn.transaction()?;
        let mut touched: HashMap<String, u64> = HashMap::new();
        for op in batch.drain(..) {
            match op {
                WriteOp::Post {
                    mut post,
                    via,
                    reply,
                } => {
                    if !insert_seen(&tx, &post, now)? {
                        pending.push(Pending::Post(reply, None));
                        continue;
                    }
                    let last = self.clocks.get(&post.room).copied().unwrap_or(0);
                    post.room_ts = next_room_ts(now, last);
                    self.clocks.insert(post.room.clone(), post.room_ts);
                    insert_post(&tx, &post)?;
                    *touched.entry(post.room.clone()).or_default() += 1;
                    pending.push(Pending::Post(reply, Some((post, via))));
                }
                WriteOp::Put {
                    ns,
                    key,
                    value,
                    reply,
                } => {
                    tx.execute(
                        "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3)
                         ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value",
                        params![ns, key, value],
                    )?;
                    pending.push(Pending::Unit(reply));
                }
                WriteOp::Delete { ns, key, reply } => {
                    tx.execute(
                        "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
                        params![ns, key],
                    )?;
                    pending.push(Pending::Unit(reply));
                }
                WriteOp::SetLimits(limits) => self.limits = limits,
                WriteOp::Flush(reply) => pending.push(Pending::Flush(reply)),
                WriteOp::Close => {}
            }
        }
        for (room, added) in touched {
            // Every room the hub accepts posts for has a limit (sent at start and on reload).
            let limit = self.limits.get(&room).map_or(u64::MAX, |l| u64::from(*l));
            let ts = self.clocks.get(&room).copied().unwrap_or(0);
            tx.execute(
                "INSERT INTO room_clock (room, last_ts) VALUES (?1, ?2)
                 ON CONFLICT (room) DO UPDATE SET last_ts = excluded.last_ts",
                params![room, ts as i64],
            )?;
            let count = self.counts.get(&room).copied().unwrap_or(0) + added;
            if count > limit {
                tx.execute(
                    "DELETE FROM posts WHERE room = ?1 AND room_ts <=
                       (SELECT room_ts FROM posts WHERE room = ?1 ORDER BY room_ts DESC LIMIT 1 OFFSET ?2)",
                    params![room, limit as i64],
                )?;
            }
            self.counts.insert(room, count.min(limit));
        }
        self.batches += 1;
        if self.batches % 10_000 == 1 {
            tx.execute(
                "DELETE FROM seen WHERE at < ?1 AND id NOT IN (SELECT id FROM posts)",
                [now.saturating_sub(SEEN_RETENTION_S) as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Records the id; false when it was already there (a duplicate).
fn insert_seen(tx: &Transaction<'_>, post: &Post, now: u64) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached("INSERT OR IGNORE INTO seen (id, room, at) VALUES (?1, ?2, ?3)")?
        .execute(params![&post.id.0[..], post.room, now as i64])?;
    Ok(n == 1)
}

fn insert_post(tx: &Transaction<'_>, p: &Post) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO posts (id, room, room_ts, author_kind, author_id, author_name, origin, author_ts, text, hops)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        &p.id.0[..],
        p.room,
        p.room_ts as i64,
        p.author.kind.as_str(),
        p.author.id,
        p.author.name,
        p.origin,
        p.author_ts as i64,
        p.text,
        p.hops as i64
    ])?;
    Ok(())
}
