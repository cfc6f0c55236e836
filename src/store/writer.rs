//! The single writer: posts, ids trimmed from history, and side state, committed in groups.
//!
//! The writer thread blocks for the first request, then takes every request already queued
//! (up to `MAX_BATCH`) into the same transaction. Replies and the commit callback run only after
//! the transaction is on disk, which is what lets the sides acknowledge a post safely.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use tokio::sync::{mpsc, oneshot};

use super::ids::Dedup;
use super::{rooms, schema, StoreError};
use crate::post::{next_room_us, Post, Via, US_PER_S};

/// Most requests one transaction takes: bounds the latency a single commit adds.
const MAX_BATCH: usize = 4096;
/// Queue length in front of the writer; submitters wait (backpressure) beyond it.
const QUEUE: usize = 16_384;
/// Most posts a room may hold beyond its `max_history` before it is trimmed back to it:
/// trimming in steps of up to 64 posts touches the oldest leaf and the trim statements once per
/// step instead of once per commit.
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
        /// The id was just drawn by the hub (`PostId::fresh`: the post enters the system here):
        /// it cannot be known yet, so the dedup is not asked.
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
    rooms: HashMap<String, Room>,
    /// Number of the next room table.
    next_tab: i64,
    dedup: Dedup,
    /// The counts saved at a stop may still be in the file: the first transaction clears them.
    counts_saved: bool,
}

/// What the writer knows of a room with a history table.
struct Room {
    tab: i64,
    /// Newest room timestamp (µs): `max(room_us)` at start, then every commit's.
    clock: u64,
    count: u64,
    /// Posts this transaction added.
    added: u64,
    /// A reload shrank the room's depth: trim to it in this transaction, not a step later.
    trim_now: bool,
    /// `(clock, count)` as of the last commit, restored when a transaction fails.
    committed: (u64, u64),
    insert: Arc<str>,
}

impl Room {
    fn new(tab: i64) -> Room {
        Room {
            tab,
            clock: 0,
            count: 0,
            added: 0,
            trim_now: false,
            committed: (0, 0),
            insert: format!(
                "INSERT INTO {} (room_us, {}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rooms::table(tab),
                rooms::COLUMNS
            )
            .into(),
        }
    }
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
        let mut rooms = HashMap::new();
        let mut next_tab = 1;
        let catalogue = rooms::all(&conn)?;
        for e in &catalogue {
            let table = rooms::table(e.tab);
            // The clock is the newest key (one descent); the count was saved at a clean stop,
            // else it takes a walk of the table.
            let last: Option<i64> =
                conn.query_row(&format!("SELECT max(room_us) FROM {table}"), [], |r| {
                    r.get(0)
                })?;
            let n = match e.kept {
                Some(n) => n,
                None => conn
                    .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })?
                    .max(0) as u64,
            };
            let mut room = Room::new(e.tab);
            room.count = n;
            room.clock = last.unwrap_or(0).max(0) as u64;
            room.committed = (room.clock, room.count);
            next_tab = next_tab.max(e.tab + 1);
            rooms.insert(e.name.clone(), room);
        }
        let history = rooms.values().map(|r: &Room| r.count).sum();
        let dedup = Dedup::load(&conn, &catalogue, history)?;
        Ok(State {
            conn,
            clock,
            limits,
            rooms,
            next_tab,
            dedup,
            counts_saved: true,
        })
    }

    fn found(&self) -> Found {
        self.rooms
            .iter()
            .filter(|(_, r)| r.count > 0)
            .map(|(name, r)| (name.clone(), (r.count, r.clock / US_PER_S)))
            .collect()
    }

    fn run_batch(&mut self, batch: &mut Vec<WriteOp>, on_commit: &mut OnCommit) {
        let mut pending = Vec::with_capacity(batch.len());
        let next_tab_before = self.next_tab;
        let result = self.write(batch, &mut pending);
        match result {
            Ok(()) => {
                for room in self.rooms.values_mut() {
                    room.committed = (room.clock, room.count);
                }
                for p in &pending {
                    if let Pending::Post(_, Some((post, via))) = p {
                        let history = self.rooms.get(&post.room).map_or(0, |r| r.count);
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
                // Nothing of this batch is on disk: forget its clock steps and new rooms, read
                // the waiting ids back, and tell every caller.
                self.rooms.retain(|_, room| room.tab < next_tab_before);
                for room in self.rooms.values_mut() {
                    (room.clock, room.count) = room.committed;
                    room.added = 0;
                    room.trim_now = false;
                }
                self.next_tab = next_tab_before;
                let history = self.rooms.values().map(|r| r.count).sum();
                let reloaded = rooms::all(&self.conn)
                    .and_then(|catalogue| self.dedup.reload(&self.conn, &catalogue, history));
                // A full disk fails every batch: one line, then a count once a minute.
                static COMMIT_FAILED: crate::ratelog::Throttle =
                    crate::ratelog::Throttle::per_minute();
                if let Some(held_back) = COMMIT_FAILED.hit() {
                    tracing::error!(
                        "store commit failed: {e}{}{}",
                        crate::ratelog::repeated(held_back),
                        reloaded
                            .err()
                            .map(|e| format!(
                                " (and the ids waiting for the index could not be read back: {e})"
                            ))
                            .unwrap_or_default()
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
        let tx = self.conn.transaction()?;
        let mut closing = false;
        let mut added = 0u64;
        for op in batch.drain(..) {
            match op {
                WriteOp::Post {
                    mut post,
                    via,
                    fresh,
                    reply,
                } => {
                    // A fresh id was drawn by the hub just now: it cannot be known.
                    if !fresh && self.dedup.known(&tx, &post.id.0)? {
                        pending.push(Pending::Post(reply, None));
                        continue;
                    }
                    let room = match self.rooms.get_mut(&post.room) {
                        Some(room) => room,
                        None => {
                            // The room's first post: its table and catalogue entry come with it.
                            let tab = self.next_tab;
                            rooms::create(&tx, &post.room, tab)?;
                            rooms::rebuild_view(&tx)?;
                            self.next_tab += 1;
                            self.rooms
                                .entry(post.room.clone())
                                .or_insert_with(|| Room::new(tab))
                        }
                    };
                    post.room_us = next_room_us(now_us, room.clock);
                    post.room_ts = post.room_us / US_PER_S;
                    insert_post(&tx, &room.insert, &post)?;
                    room.clock = post.room_us;
                    let first = room.count == 0 && room.added == 0;
                    room.added += 1;
                    self.dedup.added(room.tab, post.id.0, post.room_us, first);
                    added += 1;
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
                    for (name, limit) in &limits {
                        if let Some(room) = self.rooms.get_mut(name) {
                            room.trim_now |= room.count > u64::from(*limit);
                        }
                    }
                    self.limits = limits;
                }
                WriteOp::Flush(reply) => pending.push(Pending::Flush(reply)),
                WriteOp::Close => closing = true,
            }
        }
        for (name, room) in self.rooms.iter_mut() {
            if room.added == 0 && !room.trim_now {
                continue;
            }
            // Every room the hub accepts posts for has a limit (sent at start and on reload).
            let limit = self.limits.get(name).map_or(u64::MAX, |l| u64::from(*l));
            let count = room.count + room.added;
            let over =
                count > limit.saturating_add(trim_slack(limit)) || (room.trim_now && count > limit);
            if over {
                trim(&tx, room.tab, count - limit, &mut self.dedup)?;
            }
            room.count = if over { limit } else { count };
            room.added = 0;
            room.trim_now = false;
        }
        // At close the waiting ids are written, so the next start has none to read back.
        self.dedup.finish(&tx, now_us, added, closing)?;
        if closing {
            // A clean stop saves what the next start would otherwise count.
            let mut keep = tx.prepare_cached("UPDATE rooms SET kept = ?2 WHERE tab = ?1")?;
            for room in self.rooms.values() {
                keep.execute(params![room.tab, room.count.min(i64::MAX as u64) as i64])?;
            }
            self.dedup.save_counts(&tx)?;
        } else if self.counts_saved {
            tx.prepare_cached("UPDATE rooms SET kept = NULL")?
                .execute([])?;
            Dedup::forget_counts(&tx)?;
        }
        tx.commit()?;
        self.counts_saved = false;
        Ok(())
    }
}

/// Cuts the oldest `excess` posts of room table `tab`; their ids stay known for a while.
fn trim(tx: &Transaction<'_>, tab: i64, excess: u64, dedup: &mut Dedup) -> rusqlite::Result<()> {
    let table = rooms::table(tab);
    let through: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT room_us FROM {table} ORDER BY room_us ASC LIMIT 1 OFFSET ?1"
        ))?
        .query_row(
            [excess.saturating_sub(1).min(i64::MAX as u64) as i64],
            |r| r.get(0),
        )
        .optional()?;
    let Some(through) = through else {
        return Ok(());
    };
    let through = through.max(0) as u64;
    dedup.trim(tx, tab, through, excess)?;
    tx.prepare_cached(&format!("DELETE FROM {table} WHERE room_us <= ?1"))?
        .execute([through as i64])?;
    Ok(())
}

/// Inserts the post into its room's table (`insert`: that table's statement).
fn insert_post(tx: &Transaction<'_>, insert: &str, p: &Post) -> rusqlite::Result<()> {
    tx.prepare_cached(insert)?.execute(params![
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
    Ok(())
}
