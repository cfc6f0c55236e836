//! `meshroom-gw client`: a software MeshCore companion on the simulated air, built on the same
//! protocol core as the gateway ([`Companion`]). It discovers rooms from their adverts, logs in
//! with a password, posts and waits for the ACK, and prints pushed posts (ACKing them).
//!
//! Each client keeps its identity and what it learnt (rooms, `sync_since`, its clock) in a
//! state directory, so separate invocations act as one device. Output is one line per fact,
//! flushed at once, so scripts and tests can follow it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use crate::meshcore::keystore;
use crate::meshcore::server::engine::Now;
use crate::meshcore::wire::crypto::ChannelKey;
use crate::meshcore::wire::identity::{LocalIdentity, PublicKey};
use crate::meshcore::wire::message::REQ_KEEP_ALIVE;
use crate::radio::{RadioHandle, SimParams, TxPriority};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Ask the rooms in range to answer (a discovery request), listen for their answers and
    /// adverts, and list the rooms heard (and remembered). Exit status 1 when none was heard.
    Rooms {
        /// Seconds to listen.
        #[arg(long, default_value_t = 10.0)]
        listen: f64,
    },
    /// Log in to a room (waits for the room's advert if it was never heard).
    Login {
        #[arg(long)]
        room: String,
        /// The room's password (its PSK; any password works in a public room).
        #[arg(long, default_value = "")]
        password: String,
        /// Ask for the posts after this room timestamp [default: the newest one received].
        #[arg(long)]
        sync_since: Option<u32>,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 20.0)]
        timeout: f64,
    },
    /// Log in to a room (with --password; a public room takes any), post a message and wait for
    /// its ACK (exit status 1 without one).
    Post {
        #[arg(long)]
        room: String,
        /// The room's password (its PSK; empty re-uses an earlier login or enters a public room).
        #[arg(long, default_value = "")]
        password: String,
        /// Seconds to wait (the post is retried meanwhile).
        #[arg(long, default_value_t = 45.0)]
        timeout: f64,
        text: String,
    },
    /// Log in to a room with its admin password and run one admin command over the air
    /// (`ver`, `clock`, `get acl`, `setperm KEY ROLE`, `room.post TEXT`, …); prints the reply.
    Cli {
        #[arg(long)]
        room: String,
        /// The room's admin password (empty re-uses an earlier admin login).
        #[arg(long, default_value = "")]
        password: String,
        /// Seconds to wait for the reply.
        #[arg(long, default_value_t = 20.0)]
        timeout: f64,
        /// The command line.
        command: String,
    },
    /// Log in to rooms and print every pushed post, ACKing it.
    Listen {
        /// Rooms to log in to (repeatable).
        #[arg(long = "room", required = true)]
        rooms: Vec<String>,
        /// Password for those rooms; empty re-uses an earlier login.
        #[arg(long, default_value = "")]
        password: String,
        /// Stop after this many seconds [default: run until killed].
        #[arg(long = "for")]
        duration: Option<f64>,
        /// Stop after this many posts.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Send on or listen to a group channel, as a phone does (no room involved).
    #[command(subcommand)]
    Channel(ChannelCommand),
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Send one message on a channel (a flood, like a phone's "send to channel").
    Send {
        /// `public`, `#name`, or a private channel's name (with --key).
        #[arg(long, default_value = "public")]
        channel: String,
        /// A private channel's key (32 hex digits or base64).
        #[arg(long)]
        key: Option<String>,
        /// The message's timestamp [default: now]. Sending again with the timestamp printed
        /// by an earlier send repeats the identical packet (same name and text), which
        /// receivers keep once — like pressing send again when nobody seemed to hear it.
        #[arg(long)]
        timestamp: Option<u32>,
        /// Seconds to wait for the frame to be on the air (exit status 1 if it is not).
        #[arg(long, default_value_t = 20.0)]
        timeout: f64,
        text: String,
    },
    /// Print every message heard on a channel: `<channel> <timestamp> name: text`.
    Listen {
        #[arg(long, default_value = "public")]
        channel: String,
        #[arg(long)]
        key: Option<String>,
        /// Stop after this many seconds [default: run until killed].
        #[arg(long = "for")]
        duration: Option<f64>,
        /// Stop after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
}

fn channel_key(channel: &str, key: Option<String>) -> anyhow::Result<(String, ChannelKey)> {
    use crate::config::rooms::{ChannelBindingConfig, ChannelSecret, ChannelSpec};
    let spec = match key {
        Some(k) => ChannelSpec::Full(ChannelBindingConfig {
            name: channel.to_string(),
            key: ChannelSecret::new(k),
            mode: Default::default(),
            max_per_minute: 1,
            hop_limit: None,
        }),
        None => ChannelSpec::Name(channel.to_string()),
    };
    let r = spec.resolve().map_err(|(_, m)| anyhow::anyhow!("{m}"))?;
    let key = ChannelKey::new(&r.secret).context("a channel key is 16 bytes")?;
    Ok((r.name, key))
}

async fn channel_command(s: &mut Session, command: ChannelCommand) -> anyhow::Result<()> {
    use crate::meshcore::server::channel::{decode, encode, render};
    use crate::meshcore::wire::packet::PacketRepr;
    use crate::meshcore::wire::payload::Payload;
    match command {
        ChannelCommand::Send {
            channel,
            key,
            timestamp,
            timeout,
            text,
        } => {
            let (name, key) = channel_key(&channel, key)?;
            let ts = timestamp.unwrap_or(s.now().unix);
            let (full, _) = render(&s.opts.name, &text);
            let frame = encode(&key, ts, &full, None).to_bytes()?;
            s.radio
                .transmit(frame, TxPriority::Reply)
                .map_err(|e| anyhow::anyhow!("radio refused the frame: {e}"))?;
            s.queued_frames += 1;
            // Stay on the air until the frame has gone out: leaving earlier cuts it off.
            let timeout = Duration::from_secs_f64(if timeout.is_finite() && timeout > 0.0 {
                timeout
            } else {
                0.0
            });
            if !s.drain(timeout).await {
                bail!("the frame was not sent within {} s", timeout.as_secs_f64());
            }
            say(&format!("sent on {name} (ts {ts})"));
            Ok(())
        }
        ChannelCommand::Listen {
            channel,
            key,
            duration,
            count,
        } => {
            let (name, key) = channel_key(&channel, key)?;
            let end = duration
                .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
            let limit = count.unwrap_or(usize::MAX);
            let mut seen = std::collections::HashSet::new();
            say(&format!("listening on {name}"));
            while seen.len() < limit {
                let left = end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let frame = match tokio::time::timeout(left, s.rx.recv()).await {
                    Ok(Ok(f)) => f,
                    Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                    _ => break,
                };
                let Ok(repr) = PacketRepr::from_bytes(&frame.bytes) else {
                    continue;
                };
                let Ok(Payload::GrpTxt(g)) = Payload::parse(repr.payload_type, &repr.payload)
                else {
                    continue;
                };
                let Ok(m) = decode(&key, &g) else { continue };
                if seen.insert(repr.packet_hash()) {
                    say(&format!(
                        "<{name}> {} {}",
                        m.timestamp,
                        crate::textsafe::escape(&m.full_text)
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Options every client command shares.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub air: PathBuf,
    pub state: PathBuf,
    pub name: String,
    pub params: SimParams,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedRoom {
    name: String,
    key: String,
    sync_since: u32,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedState {
    clock: u32,
    rooms: Vec<SavedRoom>,
}

/// The default state directory of a named client.
pub fn default_state_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("meshroom-gw").join(format!("client-{name}"))
}

struct Session {
    opts: ClientOptions,
    companion: Companion,
    radio: RadioHandle,
    rx: broadcast::Receiver<std::sync::Arc<crate::radio::RxFrame>>,
    start: Instant,
    events: Vec<CompanionEvent>,
    advertised: bool,
    /// Frames handed to the radio (to know when all are on the air).
    queued_frames: u64,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Session {
    async fn open(opts: ClientOptions) -> anyhow::Result<Session> {
        std::fs::create_dir_all(&opts.state)
            .with_context(|| format!("cannot create {}", opts.state.display()))?;
        let key_path = opts.state.join("identity.key");
        let identity = if key_path.exists() {
            keystore::load(&key_path)?
        } else {
            let id = LocalIdentity::generate(&mut rand::thread_rng(), &[]);
            keystore::save(&key_path, &id)?;
            id
        };
        let config = CompanionConfig {
            login_timeout_ms: LOGIN_RETRY.as_millis() as u64,
            post_attempts: 4,
            post_ack_timeout_flood_ms: 10_000,
            ..CompanionConfig::default()
        };
        let mut companion = Companion::new(identity, &opts.name, config, rand::random());
        let saved = load_state(&opts.state);
        companion.set_clock(saved.clock);
        for r in &saved.rooms {
            if let Some(k) = PublicKey::from_hex(&r.key) {
                companion.add_room(k, &r.name, r.sync_since);
            }
        }
        let radio = crate::radio::open_sim_standalone(&opts.air, opts.params.clone())
            .await
            .context("cannot join the simulated air")?;
        let rx = radio.subscribe();
        let s = Session {
            opts,
            companion,
            radio,
            rx,
            start: Instant::now(),
            events: Vec::new(),
            advertised: false,
            queued_frames: 0,
        };
        Ok(s)
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.start.elapsed().as_millis() as u64,
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as u32)
                .unwrap_or(0),
        }
    }

    fn apply(&mut self, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Transmit(f) => match self.radio.transmit(f, TxPriority::Reply) {
                    Ok(()) => self.queued_frames += 1,
                    Err(e) => say(&format!("! radio refused a frame: {e}")),
                },
                Output::Event(e) => self.events.push(e),
            }
        }
    }

    /// Runs the air until `deadline`, or until `done` says so; returns the events seen.
    async fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&CompanionEvent, &Companion) -> bool,
    ) -> bool {
        loop {
            for e in std::mem::take(&mut self.events) {
                if matches!(
                    e,
                    CompanionEvent::Pushed { .. } | CompanionEvent::RoomDiscovered { .. }
                ) {
                    // Keep sync_since on disk before saying anything: the process may be
                    // stopped as soon as the line is read.
                    self.save();
                }
                self.report(&e);
                if done(&e, &self.companion) {
                    self.save();
                    return true;
                }
            }
            let now_i = Instant::now();
            if now_i >= deadline {
                self.save();
                return false;
            }
            let wait = (deadline - now_i).min(Duration::from_millis(100));
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Ok(frame)) => {
                    let outs = self.companion.handle_frame(self.now(), &frame.bytes);
                    self.apply(outs);
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    self.save();
                    return false;
                }
                Err(_) => {
                    let outs = self.companion.tick(self.now());
                    self.apply(outs);
                }
            }
        }
    }

    /// Keeps the session on the air until every frame handed to the radio has been sent
    /// (the radio's transmitted count reached it and nothing is queued), at most `timeout`.
    async fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let sent = self.radio.driver_stats().tx_packets;
            if sent >= self.queued_frames && self.radio.queued() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            // The radio thread publishes its counters after each frame: poll them.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn room_name(&self, key: &PublicKey) -> String {
        self.companion
            .room(key)
            .map(|r| crate::textsafe::escape_line(&r.name).into_owned())
            .unwrap_or_else(|| hex::encode(&key.0[..4]))
    }

    fn report(&self, e: &CompanionEvent) {
        match e {
            CompanionEvent::RoomDiscovered { room, name } => say(&format!(
                "room {} {}",
                crate::textsafe::escape_line(name),
                room.to_hex()
            )),
            CompanionEvent::LoggedIn {
                room,
                server_time,
                permissions,
            } => say(&format!(
                "logged in to {} (server time {server_time}, permissions {permissions})",
                self.room_name(room)
            )),
            CompanionEvent::LoginTimedOut { room } => say(&format!(
                "no reply from {} (wrong password?)",
                self.room_name(room)
            )),
            CompanionEvent::PostAcked { room, timestamp } => say(&format!(
                "acked by {} (ts {timestamp})",
                self.room_name(room)
            )),
            CompanionEvent::PostFailed { room, .. } => {
                say(&format!("no ACK from {}", self.room_name(room)))
            }
            CompanionEvent::Pushed {
                room,
                room_ts,
                author_prefix,
                text,
            } => say(&format!(
                "[{}] {} <{}> {}",
                self.room_name(room),
                room_ts,
                hex::encode(author_prefix),
                crate::textsafe::escape(text)
            )),
            CompanionEvent::Notice { room, text } => say(&format!(
                "notice from {}: {}",
                self.room_name(room),
                crate::textsafe::escape(text)
            )),
            CompanionEvent::Discovered {
                key, snr_x4, ours, ..
            } => say(&format!(
                "discovery answer from {}{}",
                hex::encode(&key[..key.len().min(8)]),
                if *ours {
                    format!(" (heard us at SNR {:.2} dB)", f32::from(*snr_x4) / 4.0)
                } else {
                    " (to another node's request)".to_string()
                }
            )),
            CompanionEvent::CliReply { text, .. } => say(&crate::textsafe::escape(text)),
            CompanionEvent::Response { .. } => {}
        }
    }

    fn save(&self) {
        let state = SavedState {
            clock: self.companion.clock(),
            rooms: self
                .companion
                .rooms()
                .map(|r| SavedRoom {
                    name: r.name.clone(),
                    key: r.key.to_hex(),
                    sync_since: r.sync_since,
                })
                .collect(),
        };
        if let Ok(text) = serde_json::to_vec_pretty(&state) {
            let path = self.opts.state.join("state.json");
            let tmp = path.with_extension("json.tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }

    /// The room's key: remembered, or waited for from its adverts.
    async fn find_room(&mut self, name: &str, wait: Duration) -> anyhow::Result<PublicKey> {
        if let Some(r) = self.companion.room_by_name(name) {
            return Ok(r.key);
        }
        say(&format!("waiting for an advert of room {name}"));
        let target = name.to_string();
        let end = Instant::now() + wait;
        while Instant::now() < end {
            // Rooms answer a discovery request at once and advert right after.
            let (_, outs) = self.companion.discover();
            self.apply(outs);
            let until = end.min(Instant::now() + DISCOVER_AGAIN * 4);
            let found = self
                .run_until(
                    until,
                    |e, _| matches!(e, CompanionEvent::RoomDiscovered { name, .. } if *name == target),
                )
                .await;
            if let (true, Some(r)) = (found, self.companion.room_by_name(name)) {
                return Ok(r.key);
            }
        }
        bail!(
            "no advert of room {name} heard in {} s (is the gateway running on this air?)",
            wait.as_secs()
        )
    }

    /// Logs in, asking again every few seconds (a frame can be lost on a busy or half-duplex
    /// air) until a reply arrives or `timeout` runs out.
    async fn login(
        &mut self,
        room: &PublicKey,
        password: &str,
        sync_since: Option<u32>,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let key = *room;
        // Let the room learn our name (an advert is long on the air: only when we log in).
        if !self.advertised {
            self.advertised = true;
            let outs = self.companion.advert(self.now());
            self.apply(outs);
        }
        while Instant::now() < deadline {
            let Ok(outs) = self.companion.login(self.now(), room, password, sync_since) else {
                return false;
            };
            self.apply(outs);
            let attempt_end = deadline.min(Instant::now() + LOGIN_RETRY);
            let answered = self
                .run_until(
                    attempt_end,
                    |e, _| matches!(e, CompanionEvent::LoggedIn { room, .. } if *room == key),
                )
                .await;
            if answered {
                return true;
            }
        }
        say(&format!(
            "no reply from {} (wrong password?)",
            self.room_name(room)
        ));
        false
    }
}

/// How long to wait for answers before asking again (`rooms`, and ×4 while waiting for a room).
const DISCOVER_AGAIN: Duration = Duration::from_millis(1_500);

/// How often `listen` sends each room a keep-alive.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(15);

/// How long one login attempt waits before asking again.
const LOGIN_RETRY: Duration = Duration::from_secs(6);

fn load_state(dir: &Path) -> SavedState {
    std::fs::read(dir.join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Runs one client command.
pub async fn run(opts: ClientOptions, command: ClientCommand) -> anyhow::Result<()> {
    let mut s = Session::open(opts).await?;
    let secs = |v: f64| Duration::from_secs_f64(if v.is_finite() && v > 0.0 { v } else { 0.0 });
    match command {
        ClientCommand::Channel(c) => channel_command(&mut s, c).await,
        ClientCommand::Rooms { listen } => {
            // Ask at once (rooms answer within a second and advert right after), and again
            // every 1–2 s (random, so two clients started together do not keep colliding)
            // until something answers, in case the gateway is still starting or a frame was
            // lost.
            let end = Instant::now() + secs(listen);
            let mut heard: Vec<Vec<u8>> = Vec::new();
            let mut asked = Instant::now() - Duration::from_secs(60);
            while Instant::now() < end {
                // Ask again while nothing answered, or (less often: the room adverts at most
                // every 5 s) while a room that answered has not been heard by name.
                let unnamed = heard
                    .iter()
                    .any(|h| !s.companion.rooms().any(|r| r.key.0.starts_with(h)));
                let pause = if heard.is_empty() { 1.0 } else { 3.0 };
                if (heard.is_empty() || unnamed) && asked.elapsed() >= DISCOVER_AGAIN.mul_f64(pause)
                {
                    let (_, outs) = s.companion.discover();
                    s.apply(outs);
                    asked = Instant::now();
                }
                let again = DISCOVER_AGAIN.mul_f64(0.7 + rand::random::<f64>() * 0.6);
                let until = end.min(Instant::now() + again);
                s.run_until(until, |e, _| {
                    match e {
                        CompanionEvent::Discovered { key, .. } => note_heard(&mut heard, key),
                        CompanionEvent::RoomDiscovered { room, .. } => {
                            note_heard(&mut heard, &room.0)
                        }
                        _ => {}
                    }
                    false
                })
                .await;
            }
            let mut rooms: Vec<_> = s
                .companion
                .rooms()
                .map(|r| (r.name.clone(), r.key))
                .collect();
            rooms.sort();
            say(&format!("{} rooms known:", rooms.len()));
            for (name, key) in &rooms {
                let name = crate::textsafe::escape_line(name);
                let now = if heard.iter().any(|h| key.0.starts_with(h)) {
                    ""
                } else {
                    "  (remembered; not heard now)"
                };
                say(&format!("  {name:<24} {}{now}", key.to_hex()));
            }
            for h in &heard {
                if !rooms.iter().any(|(_, k)| k.0.starts_with(h)) {
                    say(&format!(
                        "  (name not heard yet)      {}  answered the discovery request; its advert should follow",
                        hex::encode(h)
                    ));
                }
            }
            if heard.is_empty() {
                bail!(
                    "no room answered the discovery request or adverted in {listen} s; is the gateway running, on this air ({}) and these radio settings?",
                    s.opts.air.display()
                );
            }
            Ok(())
        }
        ClientCommand::Login {
            room,
            password,
            sync_since,
            timeout,
        } => {
            let key = s.find_room(&room, secs(timeout)).await?;
            if s.login(&key, &password, sync_since, secs(timeout)).await {
                Ok(())
            } else {
                bail!("login to {room} failed: no reply")
            }
        }
        ClientCommand::Post {
            room,
            password,
            timeout,
            text,
        } => {
            let key = s.find_room(&room, secs(timeout)).await?;
            // A room takes posts only from a logged-in client: log in first (a blank password
            // re-uses the room's record of us, and any password enters a public room).
            say(&format!("logging in to {room} first"));
            if !s.login(&key, &password, None, secs(20.0)).await {
                bail!(
                    "login to {room} failed: no reply (a private room needs its PSK as --password)"
                );
            }
            let (ts, outs) = s.companion.post(s.now(), &key, &text)?;
            s.apply(outs);
            let mut acked = false;
            s.run_until(Instant::now() + secs(timeout), |e, _| match e {
                CompanionEvent::PostAcked { timestamp, .. } if *timestamp == ts => {
                    acked = true;
                    true
                }
                CompanionEvent::PostFailed { timestamp, .. } => *timestamp == ts,
                _ => false,
            })
            .await;
            if acked {
                Ok(())
            } else {
                bail!("post to {room} was not acknowledged")
            }
        }
        ClientCommand::Cli {
            room,
            password,
            timeout,
            command,
        } => {
            let key = s.find_room(&room, secs(timeout)).await?;
            if !s.login(&key, &password, None, secs(timeout)).await {
                bail!("login to {room} failed: no reply");
            }
            // Only an admin login is answered (the login reply's permissions say so).
            let (_, outs) = s.companion.command(s.now(), &key, &command)?;
            s.apply(outs);
            let replied = s
                .run_until(
                    Instant::now() + secs(timeout),
                    |e, _| matches!(e, CompanionEvent::CliReply { room, .. } if *room == key),
                )
                .await;
            if replied {
                Ok(())
            } else {
                bail!("no reply from {room} (only an admin login gets answers: --password must be the room's admin_password)")
            }
        }
        ClientCommand::Listen {
            rooms,
            password,
            duration,
            count,
        } => {
            let deadline = duration.map(|d| Instant::now() + secs(d));
            let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
            let end = deadline.unwrap_or(far);
            let mut keys = Vec::with_capacity(rooms.len());
            for room in &rooms {
                let key = s.find_room(room, secs(60.0)).await?;
                if !s.login(&key, &password, None, secs(20.0)).await {
                    bail!("login to {room} failed: no reply");
                }
                keys.push(key);
            }
            say("listening");
            let mut seen = 0usize;
            let limit = count.unwrap_or(usize::MAX);
            loop {
                let chunk_end = end.min(Instant::now() + KEEP_ALIVE_EVERY);
                let done = s
                    .run_until(chunk_end, |e, _| {
                        if matches!(e, CompanionEvent::Pushed { .. }) {
                            seen += 1;
                        }
                        seen >= limit
                    })
                    .await;
                if done || Instant::now() >= end {
                    break;
                }
                // Like a companion app: a keep-alive tells each room we are still here, so a
                // room that stopped pushing after lost ACKs resumes (sync_since 0 = keep ours).
                for key in &keys {
                    let now = s.now();
                    if let Ok((_, outs)) =
                        s.companion
                            .request(now, key, REQ_KEEP_ALIVE, &0u32.to_le_bytes())
                    {
                        s.apply(outs);
                    }
                }
            }
            Ok(())
        }
    }
}

/// `meshroom-gw client …`: radio settings and air directory come from the configuration when
/// there is one, so the client hears the gateway.
pub async fn client(
    air: Option<PathBuf>,
    name: String,
    state: Option<PathBuf>,
    action: ClientCommand,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    let radio = crate::config::resolve(config_path)
        .map(|l| l.config.radio)
        .unwrap_or_default();
    let params = crate::radio::SimParams::from_config(&radio)?;
    let opts = ClientOptions {
        air: air.unwrap_or(radio.air_dir),
        state: state.unwrap_or_else(|| default_state_dir(&name)),
        name,
        params,
    };
    run(opts, action).await
}

/// Remembers a room heard by its key or a prefix of it, once: an answer with an 8-byte prefix and
/// an advert with the whole key are the same room.
fn note_heard(heard: &mut Vec<Vec<u8>>, key: &[u8]) {
    if let Some(h) = heard
        .iter_mut()
        .find(|h| h.starts_with(key) || key.starts_with(h))
    {
        if key.len() > h.len() {
            *h = key.to_vec();
        }
        return;
    }
    heard.push(key.to_vec());
}
