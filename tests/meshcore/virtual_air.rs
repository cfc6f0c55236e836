//! The MeshCore end-to-end scenarios on a virtual clock, in one process: the room-server engine
//! with a REAL hub (SQLite in a temp dir, keys in the state directory, client records and room
//! clocks in the hub's state store, exactly as the service keeps them) against software
//! companions on an in-memory air where every frame takes its LoRa time on air (US/Canada
//! preset, SF7, 62.5 kHz). Time only moves when the harness moves it, so every run is the same
//! and minutes of air take milliseconds. `e2e.rs` keeps the real-process, real-time proof.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use meshroom_gw::config;
use meshroom_gw::hub::{Author, AuthorKind, Delivery, Hub, NewPost, PostId, Submitted, Via};
use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use meshroom_gw::meshcore::keystore;
use meshroom_gw::meshcore::server::engine::{Action, Engine, Now, RoomSetup};
use meshroom_gw::meshcore::server::roster::ClientRecord;
use meshroom_gw::meshcore::service::room_post;
use meshroom_gw::meshcore::wire::identity::{LocalIdentity, PublicKey};
use rand::{Rng, SeedableRng};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};
use tokio::sync::broadcast;

/// The same gateway configuration as the real-process scenarios.
const YAML: &str = r#"
server:
  name: "mc-virtual"
rooms:
  - name: "Public"
  - name: "Club"
    psk: "club-secret"
  - name: "Other"
meshcore:
  advert_interval_s: 8.0
  first_advert_delay_s: 0.2
  push_min_age_s: 0.0
  push_interval_s: 0.5
  reply_delay_s: 0.1
"#;

const T0: u64 = 1_750_000_000;
/// The engine's timer period in the service.
const STEP_MS: u64 = 50;
/// Namespaces the service keeps its state under (`meshcore/service.rs`).
const NS_CLOCK: &str = "meshcore.clock";
fn ns_clients(room: &str) -> String {
    format!("meshcore.clients.{room}")
}

fn lora() -> LoRaParams {
    LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5)
}

fn toa_ms(len: usize) -> u64 {
    lora().time_on_air(len).as_millis() as u64
}

/// The gateway's MeshCore side with its hub, rebuilt from the state directory on a restart the
/// way `service::spawn` builds it.
struct Gw {
    hub: Hub,
    engine: Engine,
    rooms: Vec<String>,
    deliveries: broadcast::Receiver<Delivery>,
}

impl Gw {
    async fn open(dir: &Path, unix: Arc<AtomicU64>, now: Now) -> Gw {
        let (mut cfg, _) = config::parse(YAML, "virtual.yaml").unwrap();
        cfg.server.state_dir = dir.to_path_buf();
        let clock = unix.clone();
        let hub = Hub::open(
            &cfg.server.name,
            dir,
            &cfg.rooms,
            Arc::new(move || clock.load(Ordering::SeqCst)),
        )
        .expect("hub");
        let rooms: Vec<String> = hub.rooms().iter().map(|r| r.name.clone()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let identities = keystore::room_identities(hub.state_dir(), &rooms, &mut rng).unwrap();
        let state = hub.state();
        let mut setups = vec![];
        for (room, identity) in hub.rooms().iter().zip(identities) {
            let clock = state
                .get(NS_CLOCK, &room.name)
                .unwrap()
                .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                .unwrap_or(0);
            let clients: Vec<ClientRecord> = state
                .list(&ns_clients(&room.name))
                .unwrap()
                .into_iter()
                .map(|(_, v)| serde_json::from_slice(&v).unwrap())
                .collect();
            let history = hub
                .recent(&room.name, room.max_history as usize)
                .await
                .unwrap()
                .iter()
                .map(|p| room_post(p, hub.server_name()))
                .collect();
            setups.push(RoomSetup {
                name: room.name.clone(),
                identity,
                password: room.psk.as_ref().map(|p| p.expose().as_bytes().to_vec()),
                max_history: room.max_history as usize,
                access: Default::default(),
                clock,
                clients,
                history,
            });
        }
        let engine = Engine::new(
            meshroom_gw::settings::engine_config(&cfg.meshcore),
            setups,
            11,
            now,
        );
        let deliveries = hub.subscribe();
        Gw {
            hub,
            engine,
            rooms,
            deliveries,
        }
    }

    fn room(&self, name: &str) -> usize {
        self.rooms.iter().position(|r| r == name).unwrap()
    }

    fn key(&self, name: &str) -> PublicKey {
        self.engine.room_public_key(self.room(name)).unwrap()
    }

    fn counter(&self, name: &str) -> u64 {
        serde_json::to_value(self.engine.counters()).unwrap()[name]
            .as_u64()
            .unwrap_or(0)
    }
}

struct Radio {
    companion: Companion,
    events: Vec<CompanionEvent>,
    /// Away: hears nothing, sends nothing, its timers stand still.
    away: bool,
}

/// The air: frames in flight with the virtual time they finish arriving.
struct Air {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    unix: Arc<AtomicU64>,
    now: Now,
    gw: Option<Gw>,
    radios: Vec<Radio>,
    /// (due mono ms, from: None = gateway / Some(i) = radio i, frame)
    queue: Vec<(u64, Option<usize>, Vec<u8>)>,
}

impl Air {
    async fn new(names: &[&str]) -> Air {
        let tmp = tempfile::tempdir().unwrap();
        let unix = Arc::new(AtomicU64::new(T0));
        let now = Now {
            mono_ms: 0,
            unix: T0 as u32,
        };
        let gw = Gw::open(tmp.path(), unix.clone(), now).await;
        let radios = names
            .iter()
            .enumerate()
            .map(|(i, n)| Radio {
                companion: Companion::new(
                    LocalIdentity::from_seed(&[100 + i as u8; 32]),
                    n,
                    CompanionConfig::default(),
                    i as u64,
                ),
                events: vec![],
                away: false,
            })
            .collect();
        let mut air = Air {
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
            unix,
            now,
            gw: Some(gw),
            radios,
            queue: vec![],
        };
        // The rooms advert at start; every companion learns them.
        let rooms = air.gw().rooms.len();
        air.run_until(30_000, |a| {
            a.radios
                .iter()
                .all(|r| r.companion.rooms().count() == rooms)
        })
        .await;
        air
    }

    fn gw(&self) -> &Gw {
        self.gw.as_ref().expect("gateway running")
    }

    /// Runs the gateway's actions as the service does: transmit after the delay (plus the time
    /// on air), commit posts to the hub before the engine may ACK them, persist state.
    async fn apply(&mut self, actions: Vec<Action>) {
        let mut work = actions;
        while !work.is_empty() {
            let mut next = vec![];
            for a in work {
                let gw = self.gw.as_mut().expect("gateway running");
                match a {
                    Action::Transmit {
                        frame, delay_ms, ..
                    } => {
                        let due = self.now.mono_ms + delay_ms + toa_ms(frame.len());
                        self.queue.push((due, None, frame));
                    }
                    Action::Post(p) => {
                        let new = NewPost {
                            id: Some(PostId(p.id)),
                            room: gw.rooms[p.room].clone(),
                            author: Author {
                                kind: AuthorKind::Radio,
                                id: p.author.to_hex(),
                                name: p.author_name,
                            },
                            origin: None,
                            author_ts: p.author_ts as u64,
                            text: p.text,
                            hops: 0,
                            via: Via::side(AuthorKind::Radio),
                        };
                        let ok = matches!(
                            gw.hub.submit(new).await,
                            Ok(Submitted::Accepted(_)) | Ok(Submitted::Duplicate(_))
                        );
                        self.deliver_committed();
                        let gw = self.gw.as_mut().unwrap();
                        next.extend(gw.engine.post_committed(self.now, p.ticket, ok));
                    }
                    Action::SaveClient { room, record } => {
                        let v = serde_json::to_vec(&record).unwrap();
                        let ns = ns_clients(&gw.rooms[room]);
                        gw.hub.state().put(&ns, &record.key, v).await.unwrap();
                    }
                    Action::SaveClock { room, clock } => {
                        let name = gw.rooms[room].clone();
                        let bytes = clock.to_le_bytes().to_vec();
                        gw.hub.state().put(NS_CLOCK, &name, bytes).await.unwrap();
                    }
                    // A client behind the push window: a page from the store, as the service reads it.
                    Action::FetchHistory {
                        room,
                        after_us,
                        limit,
                    } => {
                        let name = gw.rooms[room].clone();
                        let server = gw.hub.server_name().to_string();
                        let page = gw
                            .hub
                            .history_after(&name, after_us, limit)
                            .await
                            .unwrap()
                            .iter()
                            .map(|p| room_post(p, &server))
                            .collect();
                        let gw = self.gw.as_mut().unwrap();
                        gw.engine.history_page(room, after_us, page);
                    }
                    // No room in these scenarios keeps a group channel or has an admin.
                    Action::ParticipantsChanged { .. }
                    | Action::Heard { .. }
                    | Action::ChannelPost(_)
                    | Action::SaveAcl { .. } => {}
                }
            }
            work = next;
        }
    }

    /// Hands every committed post to the engine's push windows (the hub's fan-out).
    fn deliver_committed(&mut self) {
        let gw = self.gw.as_mut().unwrap();
        while let Ok(d) = gw.deliveries.try_recv() {
            if let Some(room) = gw.rooms.iter().position(|r| *r == d.post.room) {
                let post = room_post(&d.post, gw.hub.server_name());
                gw.engine.room_post(self.now, room, post);
            }
        }
    }

    fn radio_out(&mut self, i: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Transmit(f) => {
                    if !self.radios[i].away {
                        let due = self.now.mono_ms + toa_ms(f.len());
                        self.queue.push((due, Some(i), f));
                    }
                }
                Output::Event(e) => self.radios[i].events.push(e),
            }
        }
    }

    /// One frame put on the air by a stranger (not one of the companions).
    fn inject(&mut self, frame: Vec<u8>) {
        let due = self.now.mono_ms + toa_ms(frame.len());
        self.queue.push((due, Some(usize::MAX), frame));
    }

    async fn step(&mut self) {
        self.now.mono_ms += STEP_MS;
        if self.now.mono_ms % 1000 == 0 {
            self.now.unix += 1;
            self.unix.store(u64::from(self.now.unix), Ordering::SeqCst);
        }
        if let Some(gw) = self.gw.as_mut() {
            let acts = gw.engine.tick(self.now);
            self.apply(acts).await;
        }
        for i in 0..self.radios.len() {
            if !self.radios[i].away {
                let outs = self.radios[i].companion.tick(self.now);
                self.radio_out(i, outs);
            }
        }
        self.queue.sort_by_key(|(due, _, _)| *due);
        while self
            .queue
            .first()
            .is_some_and(|(due, _, _)| *due <= self.now.mono_ms)
        {
            let (_, from, frame) = self.queue.remove(0);
            if from.is_some() {
                if let Some(gw) = self.gw.as_mut() {
                    let acts = gw.engine.handle_frame(self.now, &frame, -80, 6.5);
                    self.apply(acts).await;
                }
            }
            for i in 0..self.radios.len() {
                if Some(i) == from || self.radios[i].away {
                    continue;
                }
                let outs = self.radios[i].companion.handle_frame(self.now, &frame);
                self.radio_out(i, outs);
            }
        }
    }

    /// Advances the virtual clock by `ms`.
    async fn run(&mut self, ms: u64) {
        let end = self.now.mono_ms + ms;
        while self.now.mono_ms < end {
            self.step().await;
        }
    }

    /// Advances the virtual clock until `done` holds; panics after `limit_ms` of virtual time.
    async fn run_until(&mut self, limit_ms: u64, done: impl Fn(&Air) -> bool) {
        let end = self.now.mono_ms + limit_ms;
        while !done(self) {
            assert!(
                self.now.mono_ms < end,
                "not reached in {limit_ms} ms of virtual time; events: {:#?}",
                self.radios.iter().map(|r| &r.events).collect::<Vec<_>>()
            );
            self.step().await;
        }
    }

    fn has(&self, i: usize, f: impl Fn(&CompanionEvent) -> bool) -> bool {
        self.radios[i].events.iter().any(f)
    }

    fn logged_in(&self, i: usize, room: PublicKey) -> bool {
        self.has(
            i,
            |e| matches!(e, CompanionEvent::LoggedIn { room: r, .. } if *r == room),
        )
    }

    /// `client login`: returns whether the room answered before the companion gave up.
    async fn login(&mut self, i: usize, room: &str, password: &str) -> bool {
        let key = self.gw().key(room);
        let before = self.radios[i].events.len();
        let outs = self.radios[i]
            .companion
            .login(self.now, &key, password, None)
            .unwrap();
        self.radio_out(i, outs);
        let settled = |a: &Air| {
            a.radios[i].events[before..].iter().any(|e| {
                matches!(e, CompanionEvent::LoggedIn { room: r, .. }
                    | CompanionEvent::LoginTimedOut { room: r } if *r == key)
            })
        };
        self.run_until(120_000, settled).await;
        self.radios[i].events[before..]
            .iter()
            .any(|e| matches!(e, CompanionEvent::LoggedIn { room: r, .. } if *r == key))
    }

    /// `client post`: returns whether the room ACKed it before the companion gave up.
    async fn post(&mut self, i: usize, room: &str, text: &str) -> bool {
        let key = self.gw().key(room);
        let (ts, outs) = self.radios[i].companion.post(self.now, &key, text).unwrap();
        self.radio_out(i, outs);
        let done = |a: &Air| {
            a.has(i, |e| matches!(e, CompanionEvent::PostAcked { room: r, timestamp } | CompanionEvent::PostFailed { room: r, timestamp } if *r == key && *timestamp == ts))
        };
        self.run_until(120_000, done).await;
        self.has(i, |e| matches!(e, CompanionEvent::PostAcked { room: r, timestamp } if *r == key && *timestamp == ts))
    }

    /// A post on the host side (HTTP, CLI): committed by the hub, fanned out to the engine.
    async fn host_post(&mut self, room: &str, author: &str, text: &str, psk: Option<&str>) {
        let gw = self.gw.as_ref().unwrap();
        if let Some(psk) = psk {
            assert!(gw.hub.room(room).unwrap().psk.unwrap().expose() == psk);
        }
        gw.hub
            .submit(NewPost {
                id: None,
                room: room.into(),
                author: Author {
                    kind: AuthorKind::Local,
                    id: "http".into(),
                    name: Some(author.into()),
                },
                origin: None,
                author_ts: 0,
                text: text.into(),
                hops: 0,
                via: Via::side(AuthorKind::Local),
            })
            .await
            .unwrap();
        self.deliver_committed();
    }

    /// What radio `i` was pushed, as `[Room] text` lines (as `client listen` prints them).
    fn pushed(&self, i: usize) -> Vec<String> {
        let gw = self.gw();
        self.radios[i]
            .events
            .iter()
            .filter_map(|e| match e {
                CompanionEvent::Pushed { room, text, .. } => {
                    let name = gw.rooms.iter().find(|n| gw.key(n) == *room)?;
                    Some(format!("[{name}] {text}"))
                }
                _ => None,
            })
            .collect()
    }

    fn count(&self, i: usize, needle: &str) -> usize {
        self.pushed(i).iter().filter(|l| l.contains(needle)).count()
    }

    /// Stops the gateway (the hub's writer lets go of the database) and starts it again from
    /// the same state directory.
    async fn restart(&mut self) {
        let gw = self.gw.take().expect("running");
        gw.hub.flush().await;
        gw.hub.close().await;
        drop(gw);
        // Frames in flight from the old process are lost with it.
        self.queue.retain(|(_, from, _)| from.is_some());
        let gw = Gw::open(&self.dir, self.unix.clone(), self.now).await;
        self.gw = Some(gw);
    }

    /// A marker that proves the room's push pipe to radio `i` is flushed: a host post after
    /// everything else, waited for. Pushes go out oldest first, so anything queued before it
    /// (a second copy of an earlier post included) has arrived once the marker has.
    async fn flush_pushes(&mut self, i: usize, room: &str) {
        let text = format!("flush marker {}", self.now.mono_ms);
        self.host_post(room, "marker", &text, None).await;
        self.run_until(120_000, |a| a.count(i, &text) == 1).await;
    }
}

#[tokio::test]
async fn two_clients_in_the_public_room_and_a_host_post_with_its_author() {
    let mut air = Air::new(&["alice", "bob"]).await;
    assert!(air.login(1, "Public", "").await, "bob login");
    assert!(air.login(0, "Public", "anything goes").await, "alice login");
    assert!(air.post(0, "Public", "hello from alice").await, "acked");
    air.run_until(60_000, |a| a.count(1, "hello from alice") == 1)
        .await;
    // A post from the host side, shown with its author.
    air.host_post("Public", "carol", "from the host", None)
        .await;
    air.run_until(60_000, |a| a.count(1, "carol: from the host") == 1)
        .await;
    air.flush_pushes(1, "Public").await;
    let pushed = air.pushed(1);
    assert_eq!(
        air.count(1, "hello from alice"),
        1,
        "exactly once: {pushed:?}"
    );
    assert_eq!(
        air.count(1, "carol: from the host"),
        1,
        "exactly once: {pushed:?}"
    );
    assert!(pushed[0].starts_with("[Public]"), "{pushed:?}");
    // The radio post is in the room's history with a MeshCore author.
    let gw = air.gw();
    let history = gw.hub.recent("Public", 10).await.unwrap();
    assert!(history.iter().any(|p| p.text == "hello from alice"
        && p.author.kind == AuthorKind::Radio
        && p.author.id == air.radios[0].companion.public().to_hex()));
    assert!(gw.counter("login_ok") >= 2);
    assert!(gw.counter("posts_acked") >= 1);
}

#[tokio::test]
async fn private_room_wrong_password_gets_nothing_right_password_works() {
    let mut air = Air::new(&["mallory", "alice"]).await;
    assert!(
        !air.login(0, "Club", "guess").await,
        "a wrong password must not log in"
    );
    assert!(
        !air.post(0, "Club", "let me in").await,
        "no access without login"
    );
    let gw = air.gw();
    assert!(gw.hub.recent("Club", 10).await.unwrap().is_empty());
    assert!(
        gw.counter("login_failed") >= 1,
        "wrong passwords are counted"
    );
    assert!(
        air.login(1, "Club", "club-secret").await,
        "the right password"
    );
    assert!(air.post(1, "Club", "members only").await);
    let key = air.gw().key("Club");
    assert!(!air.logged_in(0, key));
}

#[tokio::test]
async fn a_client_in_two_rooms_gets_each_rooms_posts_and_only_those() {
    let mut air = Air::new(&["alice"]).await;
    assert!(air.login(0, "Public", "").await);
    assert!(air.login(0, "Club", "club-secret").await);
    air.host_post("Public", "pat", "to public", None).await;
    air.host_post("Club", "cat", "to club", Some("club-secret"))
        .await;
    air.host_post("Other", "oscar", "to other", None).await;
    air.run_until(60_000, |a| {
        a.pushed(0).contains(&"[Public] pat: to public".to_string())
            && a.pushed(0).contains(&"[Club] cat: to club".to_string())
    })
    .await;
    // Markers in both rooms alice is in: a push from Other would have come before them.
    air.flush_pushes(0, "Public").await;
    air.flush_pushes(0, "Club").await;
    assert_eq!(air.count(0, "to other"), 0, "{:?}", air.pushed(0));
}

#[tokio::test]
async fn away_client_gets_exactly_what_it_missed_across_a_gateway_restart() {
    let mut air = Air::new(&["alice", "bob"]).await;
    assert!(air.login(1, "Public", "").await);
    assert!(air.login(0, "Public", "").await);
    assert!(air.post(0, "Public", "one").await);
    air.run_until(60_000, |a| a.count(1, "one") == 1).await;
    // bob is away: two posts, and the gateway restarts in between.
    air.radios[1].away = true;
    assert!(air.post(0, "Public", "two").await);
    let keys_before: Vec<PublicKey> = ["Public", "Club"].iter().map(|r| air.gw().key(r)).collect();
    air.restart().await;
    assert!(
        air.post(0, "Public", "three").await,
        "alice's login survived the restart"
    );
    // bob comes back and logs in with its sync_since.
    air.radios[1].away = false;
    assert!(air.login(1, "Public", "").await);
    air.run_until(90_000, |a| {
        a.count(1, "two") == 1 && a.count(1, "three") == 1
    })
    .await;
    air.flush_pushes(1, "Public").await;
    let pushed = air.pushed(1);
    assert_eq!(
        air.count(1, "one"),
        1,
        "nothing already received: {pushed:?}"
    );
    assert_eq!(air.count(1, "two"), 1, "{pushed:?}");
    assert_eq!(air.count(1, "three"), 1, "{pushed:?}");
    // The rooms kept their identities.
    let keys_after: Vec<PublicKey> = ["Public", "Club"].iter().map(|r| air.gw().key(r)).collect();
    assert_eq!(keys_before, keys_after);
    let history = air.gw().hub.recent("Public", 10).await.unwrap();
    assert_eq!(history.len(), 4, "three posts and the marker");
}

#[tokio::test]
async fn junk_on_the_air_leaves_the_gateway_serving_with_counters() {
    let mut air = Air::new(&["alice", "eve"]).await;
    assert!(air.login(0, "Public", "").await);
    // A misbehaving radio: random bytes, truncated and tampered copies, replays.
    let key = air.gw().key("Public");
    let login = match air.radios[1]
        .companion
        .login(air.now, &key, "", None)
        .unwrap()
        .remove(0)
    {
        Output::Transmit(f) => f,
        _ => unreachable!(),
    };
    air.radios[1].away = true;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a75);
    for i in 0..32 {
        let frame = match i % 4 {
            0 => (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect(),
            1 => login[..rng.gen_range(1..login.len())].to_vec(),
            2 => {
                let mut f = login.clone();
                let n = f.len();
                f[n - 1] ^= 0x5a;
                f
            }
            _ => login.clone(),
        };
        // One at a time, each after the previous one's airtime.
        let toa = toa_ms(frame.len());
        air.inject(frame);
        air.run(toa + 250).await;
    }
    assert!(air.post(0, "Public", "still serving").await);
    let gw = air.gw();
    let counters = serde_json::to_value(gw.engine.counters()).unwrap();
    assert!(gw.engine.counters().dropped_total() > 0, "{counters}");
    assert!(gw.counter("bad_mac") > 0, "{counters}");
    assert!(
        counters["dropped"]["duplicate"].as_u64().unwrap_or(0) > 0,
        "replays are dropped: {counters}"
    );
}
