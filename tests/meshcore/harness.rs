//! The shared harness of the engine tests: the room-server engine against software companions
//! on an in-memory air (LoRa time on air, no collisions), with a fake hub that commits posts and
//! records what the engine asks it to keep. No IO, no real time: every test is deterministic.

use std::collections::HashMap;

use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use meshroom_gw::meshcore::server::engine::{Action, Engine, EngineConfig, Now, RoomSetup};
use meshroom_gw::meshcore::server::history::{PostAuthor, RoomPost};
use meshroom_gw::meshcore::server::roster::{ClientRecord, Role};
use meshroom_gw::meshcore::wire::identity::{LocalIdentity, PublicKey};

pub const T0: u32 = 1_750_000_000;

pub struct Radio {
    pub companion: Companion,
    pub events: Vec<CompanionEvent>,
    /// Drop everything this client transmits (it has gone away).
    pub mute: bool,
    /// Drop everything sent to this client.
    pub deaf: bool,
}

#[derive(Default)]
pub struct FakeHub {
    /// (room, id, room_ts, text)
    pub posts: Vec<(usize, [u8; 16], u32, String)>,
    pub clock: HashMap<usize, u32>,
    /// Hold commits instead of answering at once.
    pub hold: bool,
    pub held: Vec<meshroom_gw::meshcore::server::engine::RadioPost>,
    pub saved_clients: HashMap<(usize, String), ClientRecord>,
    pub saved_clock: HashMap<usize, u32>,
    pub saved_acl: Vec<(usize, PublicKey, Option<Role>)>,
}

pub struct Air {
    pub engine: Engine,
    pub radios: Vec<Radio>,
    pub hub: FakeHub,
    pub now: Now,
    /// (due mono ms, from: None = engine / Some(i) = radio i, frame)
    pub queue: Vec<(u64, Option<usize>, Vec<u8>)>,
    /// Frames the engine sent (for inspection).
    pub engine_tx: Vec<Vec<u8>>,
    /// (mono ms when handed over, delay ms) of each engine frame, same order as `engine_tx`.
    pub engine_tx_at: Vec<(u64, u64)>,
    pub drop_engine_tx: usize,
}

pub fn config() -> EngineConfig {
    EngineConfig {
        first_advert_delay_ms: 0,
        push_min_age_ms: 0,
        ..EngineConfig::default()
    }
}

pub fn room(name: &str, seed: u8, password: Option<&str>) -> RoomSetup {
    RoomSetup {
        name: name.to_string(),
        identity: LocalIdentity::from_seed(&[seed; 32]),
        password: password.map(|p| p.as_bytes().to_vec()),
        max_history: 100,
        access: Default::default(),
        clock: 0,
        clients: vec![],
        history: vec![],
    }
}

impl Air {
    /// A post from the host side (not a MeshCore user).
    pub fn host_post(&mut self, room: usize, name: &str, text: &str) -> u32 {
        let c = self.hub.clock.entry(room).or_insert(T0 - 1000);
        *c = (*c + 1).max(self.now.unix);
        let ts = *c;
        let id: [u8; 16] = rand::random();
        self.hub.posts.push((room, id, ts, text.to_string()));
        self.engine.room_post(
            self.now,
            room,
            RoomPost {
                id,
                room_ts: ts,
                room_us: ts as u64 * 1_000_000,
                author: PostAuthor::Named(name.to_string()),
                text: text.to_string(),
            },
        );
        ts
    }

    pub fn new(rooms: Vec<RoomSetup>, names: &[&str]) -> Air {
        Air::with_config(rooms, names, config())
    }

    pub fn with_config(rooms: Vec<RoomSetup>, names: &[&str], config: EngineConfig) -> Air {
        let now = Now {
            mono_ms: 0,
            unix: T0,
        };
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
                mute: false,
                deaf: false,
            })
            .collect();
        Air {
            engine: Engine::new(config, rooms, 7, now),
            radios,
            hub: FakeHub::default(),
            now,
            queue: vec![],
            engine_tx: vec![],
            engine_tx_at: vec![],
            drop_engine_tx: 0,
        }
    }

    pub fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Transmit {
                    frame, delay_ms, ..
                } => {
                    if self.drop_engine_tx > 0 {
                        self.drop_engine_tx -= 1;
                        continue;
                    }
                    self.engine_tx.push(frame.clone());
                    self.engine_tx_at.push((self.now.mono_ms, delay_ms));
                    self.queue.push((self.now.mono_ms + delay_ms, None, frame));
                }
                Action::Post(p) => {
                    if self.hub.hold {
                        self.hub.held.push(p);
                    } else {
                        self.commit(p);
                    }
                }
                Action::SaveClient { room, record } => {
                    self.hub
                        .saved_clients
                        .insert((room, record.key.clone()), record);
                }
                Action::SaveClock { room, clock } => {
                    self.hub.saved_clock.insert(room, clock);
                }
                Action::SaveAcl { room, key, role } => self.hub.saved_acl.push((room, key, role)),
                Action::FetchHistory {
                    room,
                    after_us,
                    limit,
                } => {
                    let page = self
                        .hub
                        .posts
                        .iter()
                        .filter(|(r, _, ts, _)| *r == room && *ts as u64 * 1_000_000 > after_us)
                        .take(limit)
                        .map(|(_, id, ts, text)| RoomPost {
                            id: *id,
                            room_ts: *ts,
                            room_us: *ts as u64 * 1_000_000,
                            author: PostAuthor::Named("host".into()),
                            text: text.clone(),
                        })
                        .collect();
                    self.engine.history_page(room, after_us, page);
                }
                Action::ParticipantsChanged { .. }
                | Action::Heard { .. }
                | Action::ChannelPost(_) => {}
            }
        }
    }

    pub fn commit(&mut self, p: meshroom_gw::meshcore::server::engine::RadioPost) {
        let dup = self
            .hub
            .posts
            .iter()
            .any(|(r, id, _, _)| *r == p.room && *id == p.id);
        if !dup {
            let c = self.hub.clock.entry(p.room).or_insert(T0 - 1000);
            *c = (*c + 1).max(self.now.unix);
            let ts = *c;
            self.hub.posts.push((p.room, p.id, ts, p.text.clone()));
            self.engine.room_post(
                self.now,
                p.room,
                RoomPost {
                    id: p.id,
                    room_ts: ts,
                    room_us: ts as u64 * 1_000_000,
                    author: PostAuthor::Radio(p.author),
                    text: p.text.clone(),
                },
            );
        }
        let acts = self.engine.post_committed(self.now, p.ticket, true);
        self.apply(acts);
    }

    pub fn radio_out(&mut self, i: usize, outs: Vec<Output>) {
        for o in outs {
            match o {
                Output::Transmit(f) => {
                    if !self.radios[i].mute {
                        self.queue.push((self.now.mono_ms, Some(i), f));
                    }
                }
                Output::Event(e) => self.radios[i].events.push(e),
            }
        }
    }

    /// Advances time in 50 ms steps, delivering every due frame to everyone else.
    pub fn run(&mut self, ms: u64) {
        let end = self.now.mono_ms + ms;
        while self.now.mono_ms < end {
            self.now.mono_ms += 50;
            if self.now.mono_ms % 1000 == 0 {
                self.now.unix += 1;
            }
            let acts = self.engine.tick(self.now);
            self.apply(acts);
            for i in 0..self.radios.len() {
                let outs = self.radios[i].companion.tick(self.now);
                self.radio_out(i, outs);
            }
            while let Some(pos) = self
                .queue
                .iter()
                .position(|(due, _, _)| *due <= self.now.mono_ms)
            {
                let (_, from, frame) = self.queue.remove(pos);
                if from.is_some() {
                    let acts = self.engine.handle_frame(self.now, &frame, -80, 6.5);
                    self.apply(acts);
                }
                for i in 0..self.radios.len() {
                    if Some(i) == from || self.radios[i].deaf {
                        continue;
                    }
                    let outs = self.radios[i].companion.handle_frame(self.now, &frame);
                    self.radio_out(i, outs);
                }
            }
        }
    }

    pub fn room_key(&self, room: usize) -> PublicKey {
        self.engine.room_public_key(room).unwrap()
    }

    pub fn login(&mut self, i: usize, room: usize, password: &str, sync_since: Option<u32>) {
        let key = self.room_key(room);
        let outs = self.radios[i]
            .companion
            .login(self.now, &key, password, sync_since)
            .unwrap();
        self.radio_out(i, outs);
    }

    pub fn post(&mut self, i: usize, room: usize, text: &str) -> u32 {
        let key = self.room_key(room);
        let (ts, outs) = self.radios[i].companion.post(self.now, &key, text).unwrap();
        self.radio_out(i, outs);
        ts
    }

    pub fn pushed(&self, i: usize) -> Vec<(usize, String)> {
        self.radios[i]
            .events
            .iter()
            .filter_map(|e| match e {
                CompanionEvent::Pushed { room, text, .. } => {
                    let r = (0..self.engine.room_count()).find(|&r| self.room_key(r) == *room)?;
                    Some((r, text.clone()))
                }
                _ => None,
            })
            .collect()
    }

    pub fn has_event(&self, i: usize, f: impl Fn(&CompanionEvent) -> bool) -> bool {
        self.radios[i].events.iter().any(f)
    }

    pub fn logged_in(&self, i: usize) -> bool {
        self.has_event(i, |e| matches!(e, CompanionEvent::LoggedIn { .. }))
    }
}

/// Lets the rooms advert so the companions discover them.
pub fn discovered(rooms: Vec<RoomSetup>, names: &[&str]) -> Air {
    let mut air = Air::new(rooms, names);
    air.run(2_000);
    for r in &air.radios {
        assert_eq!(
            r.companion.rooms().count(),
            air.engine.room_count(),
            "rooms discovered from adverts"
        );
    }
    air
}
