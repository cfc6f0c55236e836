//! The room hub: the centre of the gateway. Every post enters here from exactly one side, is
//! deduplicated by id, stamped by the room clock (`max(now, last + 1)` in µs), committed,
//! and fanned out to every other side.
//!
//! The hub owns the room list, the per-room tallies shown in `/status`, the participants, and
//! the handles to the store. Sides hold a cheap clone.

pub mod acl;
pub mod participants;
pub mod state;
pub mod tally;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, oneshot, watch};

pub use crate::post::{Author, AuthorKind, NewPost, Post, PostId, Via};
pub use acl::{AclChange, Acls};
pub use participants::{Counts, Participant, Participants, RemotePresence};
pub use state::StateStore;
pub use tally::{RoomTally, Tallies};

use crate::config::{Psk, RoomConfig};
use crate::store::writer::{PostOutcome, WallClock};
use crate::store::{self, Reader, StoreError, WriteOp};

/// Longest post text accepted from any side, in bytes. MeshCore pushes carry far less (the
/// radio side refuses what it cannot send); this bounds what a peer or a host program can store.
pub const MAX_TEXT_BYTES: usize = 4096;

/// How many deliveries a slow side may fall behind before it misses some (it then catches up
/// from history).
const FANOUT_BACKLOG: usize = 4096;

/// What the sides need to know of a room.
#[derive(Clone, Debug)]
pub struct RoomInfo {
    pub name: String,
    pub description: String,
    pub psk: Option<Psk>,
    pub max_history: u32,
    /// MeshCore admin password (`None`: no admin login).
    pub admin_password: Option<Psk>,
    /// Wrong/empty passwords (private) or everyone not on the ACL (public) read as guests.
    pub allow_read_only: bool,
    /// The room's own advertised location (degrees), if set.
    pub location: Option<(f64, f64)>,
}

impl RoomInfo {
    pub fn is_private(&self) -> bool {
        self.psk.is_some()
    }
}

impl From<&RoomConfig> for RoomInfo {
    fn from(r: &RoomConfig) -> Self {
        RoomInfo {
            name: r.name.clone(),
            description: r.description.clone(),
            psk: (!r.psk.is_empty()).then(|| r.psk.clone()),
            max_history: r.max_history,
            admin_password: (!r.admin_password.is_empty()).then(|| r.admin_password.clone()),
            allow_read_only: r.allow_read_only,
            location: r.latitude.zip(r.longitude),
        }
    }
}

/// The room list as the sides see it; a new value is published on every reload.
pub type Rooms = Arc<Vec<RoomInfo>>;

/// A committed post on its way to the other sides.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub post: Arc<Post>,
    pub via: Via,
}

#[derive(Debug)]
pub enum Submitted {
    /// Committed: safe to acknowledge.
    Accepted(Arc<Post>),
    /// This id was seen before; nothing changed (acknowledge it again).
    Duplicate(PostId),
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("no room named `{0}`")]
    UnknownRoom(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the gateway is shutting down")]
    Closed,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    server_name: String,
    state_dir: PathBuf,
    rooms: watch::Sender<Rooms>,
    writer: tokio::sync::mpsc::Sender<WriteOp>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Reader,
    fanout: broadcast::Sender<Delivery>,
    participants: Participants,
    tallies: Arc<Tallies>,
    clock: WallClock,
    acl_changes: broadcast::Sender<AclChange>,
}

impl Hub {
    /// Opens the store in `state_dir` and starts the writer.
    pub fn open(
        server_name: &str,
        state_dir: &Path,
        rooms: &[RoomConfig],
        clock: WallClock,
    ) -> Result<Hub, HubError> {
        store::ensure_state_dir(state_dir)?;
        let db = store::db_path(state_dir);
        let (fanout, _) = broadcast::channel(FANOUT_BACKLOG);
        let tallies = Arc::new(Tallies::default());
        let limits = rooms
            .iter()
            .map(|r| (r.name.clone(), r.max_history))
            .collect::<HashMap<_, _>>();
        let on_commit = {
            let fanout = fanout.clone();
            let tallies = tallies.clone();
            Box::new(move |post: &Arc<Post>, via: &Via, history: u64| {
                tallies.record(post, via, history);
                // Nobody listening (no side started yet) is not an error.
                if fanout.receiver_count() > 0 {
                    let _ = fanout.send(Delivery {
                        post: post.clone(),
                        via: via.clone(),
                    });
                }
            })
        };
        let (writer, counts, writer_thread) =
            store::writer::start(&db, clock.clone(), limits, on_commit)?;
        tallies.seed(&counts);
        let reader = Reader::open(&db)?;
        Ok(Hub {
            inner: Arc::new(Inner {
                server_name: server_name.to_string(),
                state_dir: state_dir.to_path_buf(),
                rooms: watch::Sender::new(Arc::new(rooms.iter().map(RoomInfo::from).collect())),
                writer,
                writer_thread: Mutex::new(Some(writer_thread)),
                reader,
                fanout,
                participants: Participants::default(),
                tallies,
                clock,
                acl_changes: broadcast::channel(256).0,
            }),
        })
    }

    pub fn server_name(&self) -> &str {
        &self.inner.server_name
    }

    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// Unix seconds by the hub's wall clock.
    pub fn now(&self) -> u64 {
        (self.inner.clock)() / crate::post::US_PER_S
    }

    /// Unix microseconds by the hub's wall clock (the room clock's unit).
    pub fn now_us(&self) -> u64 {
        (self.inner.clock)()
    }

    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.inner.rooms.borrow().as_ref().clone()
    }

    /// The room called `name`, in any case (names are unique ignoring case); the returned
    /// `RoomInfo` carries the configured spelling, which is what history and posts are kept under.
    pub fn room(&self, name: &str) -> Option<RoomInfo> {
        let rooms = self.inner.rooms.borrow();
        rooms
            .iter()
            .find(|r| r.name == name)
            .or_else(|| rooms.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
            .cloned()
    }

    /// Whether `name` is a room, in any case, without copying its `RoomInfo` (the submit path).
    fn has_room(&self, name: &str) -> bool {
        self.inner
            .rooms
            .borrow()
            .iter()
            .any(|r| r.name == name || r.name.eq_ignore_ascii_case(name))
    }

    /// The room list, updated at once when a reload changes it: sides wait on `changed()`
    /// instead of polling for new PSKs or history depths.
    pub fn watch_rooms(&self) -> watch::Receiver<Rooms> {
        self.inner.rooms.subscribe()
    }

    /// Applies changed descriptions, PSKs and history depths of the existing rooms. Returns the
    /// names of rooms added or removed in `rooms`, which only a restart can apply.
    pub async fn reload_rooms(&self, rooms: &[RoomConfig]) -> Vec<String> {
        let mut needs_restart = Vec::new();
        let mut current = self.rooms();
        for r in rooms {
            match current.iter_mut().find(|c| c.name == r.name) {
                Some(c) => *c = RoomInfo::from(r),
                None => needs_restart.push(r.name.clone()),
            }
        }
        for c in current.iter() {
            if !rooms.iter().any(|r| r.name == c.name) {
                needs_restart.push(c.name.clone());
            }
        }
        let limits = current
            .iter()
            .map(|r| (r.name.clone(), r.max_history))
            .collect();
        // The store trims to the new depths before any side sees them.
        let _ = self.inner.writer.send(WriteOp::SetLimits(limits)).await;
        self.inner.rooms.send_replace(Arc::new(current));
        needs_restart
    }

    /// Stores a post and returns once it is committed (or recognised as a duplicate).
    pub async fn submit(&self, new: NewPost) -> Result<Submitted, HubError> {
        if !self.has_room(&new.room) {
            return Err(HubError::UnknownRoom(new.room));
        }
        if new.text.trim().is_empty() {
            return Err(HubError::Invalid("a post needs some text".into()));
        }
        if new.text.len() > MAX_TEXT_BYTES {
            return Err(HubError::Invalid(format!(
                "a post is at most {MAX_TEXT_BYTES} bytes (got {})",
                new.text.len()
            )));
        }
        let fresh = new.id.is_none();
        let id = new.id.unwrap_or_else(PostId::fresh);
        let post = Post {
            id,
            room: new.room,
            author: new.author,
            origin: new.origin.unwrap_or_else(|| self.inner.server_name.clone()),
            author_ts: new.author_ts,
            room_ts: 0,
            room_us: 0,
            text: new.text,
            hops: new.hops,
        };
        let (reply, answer) = oneshot::channel();
        self.inner
            .writer
            .send(WriteOp::Post {
                post,
                via: new.via,
                fresh,
                reply,
            })
            .await
            .map_err(|_| HubError::Closed)?;
        match answer.await.map_err(|_| HubError::Closed)?? {
            PostOutcome::Stored(post) => Ok(Submitted::Accepted(post)),
            PostOutcome::Duplicate => Ok(Submitted::Duplicate(id)),
        }
    }

    /// Every committed post, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.inner.fanout.subscribe()
    }

    /// Posts of `room` with a room timestamp in microseconds ([`Post::room_us`]) after
    /// `after_room_us`, oldest first. The read runs on a blocking thread, never on the async
    /// workers.
    pub async fn history_after(
        &self,
        room: &str,
        after_room_us: u64,
        limit: usize,
    ) -> Result<Vec<Post>, HubError> {
        let (reader, room) = (self.inner.reader.clone(), room.to_string());
        blocking(move || reader.posts_after(&room, after_room_us, limit)).await
    }

    /// The newest `limit` posts of `room`, oldest first (read on a blocking thread).
    pub async fn recent(&self, room: &str, limit: usize) -> Result<Vec<Post>, HubError> {
        let (reader, room) = (self.inner.reader.clone(), room.to_string());
        blocking(move || reader.recent(&room, limit)).await
    }

    pub fn participants(&self) -> &Participants {
        &self.inner.participants
    }

    pub fn tallies(&self) -> &Tallies {
        &self.inner.tallies
    }

    pub fn state(&self) -> StateStore {
        StateStore::new(self.inner.writer.clone(), self.inner.reader.clone())
    }

    /// The rooms' access lists (durable, with change notices).
    pub fn acls(&self) -> Acls {
        Acls::new(self.state(), self.inner.acl_changes.clone())
    }

    /// Waits until everything submitted so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.inner.writer.send(WriteOp::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Commits everything submitted so far, ends the writer thread and waits for it: when this
    /// returns the writer has let go of the database. Later submits fail with `Closed`.
    pub async fn close(&self) {
        let _ = self.inner.writer.send(WriteOp::Close).await;
        let thread = self
            .inner
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Runs a store read on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, HubError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(HubError::Closed),
    }
}
