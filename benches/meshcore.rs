//! MeshCore side benchmark (prints plain text; run with `cargo bench --bench meshcore`).
//!
//! 1. Protocol-core cost per received frame: `Engine::handle_frame` (parse, dedup, MAC check,
//!    decrypt, dispatch) for posts, logins, push ACKs and junk, in µs per frame.
//! 2. Post → ACK latency through the real IO shell and hub (SQLite commit in a temp dir): from
//!    the moment a post's frame is handed over as received to the moment its ACK is handed to the
//!    radio's transmit scheduler. Airtime is not included; p50/p99 over sequential posts.

mod support;
use support::percentile;

use std::sync::Arc;
use std::time::{Duration, Instant};

use meshroom_gw::config;
use meshroom_gw::hub::Hub;
use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, Output};
use meshroom_gw::meshcore::server::engine::{Engine, EngineConfig, Now, Priority, RoomSetup};
use meshroom_gw::meshcore::service::{self, RadioLink, Received, Transmitter};
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::meshcore::wire::packet::{PacketRepr, PayloadType};
use meshroom_gw::side::SideContext;
use meshroom_gw::status::StatusBoard;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};

const T0: u32 = 1_750_000_000;

fn frames_of(outs: Vec<Output>) -> Vec<Vec<u8>> {
    outs.into_iter()
        .filter_map(|o| match o {
            Output::Transmit(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn core_cost() {
    const CLIENTS: usize = 40;
    let rooms = vec![
        RoomSetup {
            name: "Public".into(),
            identity: LocalIdentity::from_seed(&[1; 32]),
            password: None,
            max_history: 1000,
            access: Default::default(),
            clock: 0,
            clients: vec![],
            history: vec![],
        },
        RoomSetup {
            name: "Club".into(),
            identity: LocalIdentity::from_seed(&[3; 32]),
            password: Some(b"club".to_vec()),
            max_history: 1000,
            access: Default::default(),
            clock: 0,
            clients: vec![],
            history: vec![],
        },
    ];
    let mut now = Now {
        mono_ms: 0,
        unix: T0,
    };
    let mut engine = Engine::new(EngineConfig::default(), rooms, 1, now);
    let room_key = engine.room_public_key(0).unwrap();
    let mut clients: Vec<Companion> = (0..CLIENTS)
        .map(|i| {
            let mut c = Companion::new(
                LocalIdentity::from_seed(&[10 + i as u8; 32]),
                "c",
                CompanionConfig::default(),
                i as u64,
            );
            c.add_room(room_key, "Public", 0);
            c
        })
        .collect();
    // Log everyone in (this also warms the secret cache, as a running room has).
    for c in clients.iter_mut() {
        for f in frames_of(c.login(now, &room_key, "", None).unwrap()) {
            engine.handle_frame(now, &f, -90, 5.0);
        }
    }
    now.unix += 10;
    let n = 4000;
    let posts: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            now.unix += 1;
            let c = &mut clients[i % CLIENTS];
            frames_of(
                c.post(
                    now,
                    &room_key,
                    "a typical post of modest length, about sixty bytes",
                )
                .unwrap()
                .1,
            )
            .remove(0)
        })
        .collect();
    let logins: Vec<Vec<u8>> = (0..n / 4)
        .map(|i| {
            let mut c = Companion::new(
                LocalIdentity::from_seed(&[
                    (i % 200) as u8,
                    (i / 200) as u8,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                    7,
                ]),
                "x",
                CompanionConfig::default(),
                1,
            );
            c.add_room(room_key, "Public", 0);
            frames_of(c.login(now, &room_key, "pw", None).unwrap()).remove(0)
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let junk: Vec<Vec<u8>> = (0..n)
        .map(|_| (0..rng.gen_range(10..120)).map(|_| rng.gen()).collect())
        .collect();
    // Foreign-but-valid datagrams aimed at our hash with a wrong MAC.
    let bad_mac: Vec<Vec<u8>> = posts
        .iter()
        .map(|f| {
            let mut f = f.clone();
            let l = f.len();
            f[l - 1] ^= 0x55;
            f
        })
        .collect();

    let run = |label: &str, frames: &[Vec<u8>], engine: &mut Engine, now: &mut Now| {
        let t = Instant::now();
        let mut actions = 0usize;
        for f in frames {
            now.mono_ms += 1;
            let acts = engine.handle_frame(*now, f, -90, 5.0);
            actions += acts.len();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / frames.len() as f64;
        println!(
            "  {label:<44} {us:>8.1} µs/frame  ({} frames, {actions} actions)",
            frames.len()
        );
    };
    println!(
        "protocol core, per received frame (Engine::handle_frame, 2 rooms, {CLIENTS} clients):"
    );
    run(
        "TXT_MSG post (MAC + AES decrypt + dispatch)",
        &posts,
        &mut engine,
        &mut now,
    );
    run("TXT_MSG with a bad MAC", &bad_mac, &mut engine, &mut now);
    run(
        "ANON_REQ login, new key (ECDH + decrypt)",
        &logins,
        &mut engine,
        &mut now,
    );
    run("random junk", &junk, &mut engine, &mut now);
    let tick_t = Instant::now();
    let ticks = 1000;
    for _ in 0..ticks {
        now.mono_ms += 50;
        let _ = engine.tick(now);
    }
    println!(
        "  {:<44} {:>8.1} µs/tick",
        "tick (timers, push scheduling)",
        tick_t.elapsed().as_secs_f64() * 1e6 / ticks as f64
    );
}

struct ChannelRadio(mpsc::UnboundedSender<(Vec<u8>, Priority, Instant)>);

impl Transmitter for ChannelRadio {
    fn transmit(&self, frame: Vec<u8>, priority: Priority) {
        let _ = self.0.send((frame, priority, Instant::now()));
    }
}

async fn post_to_ack() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "rooms:\n  - name: \"Public\"\nmeshcore:\n  first_advert_delay_s: 3600.0\n  reply_delay_s: 0.0\n";
    let (mut cfg, _) = config::parse(yaml, "bench.yaml").unwrap();
    cfg.server.state_dir = dir.path().to_path_buf();
    let cfg = Arc::new(cfg);
    let hub = Hub::open(
        &cfg.server.name,
        dir.path(),
        &cfg.rooms,
        meshroom_gw::store::writer::system_clock(),
    )
    .unwrap();
    let board = StatusBoard::new(hub.clone(), cfg.clone());
    let (_stop, shutdown) = watch::channel(false);
    let ctx = SideContext {
        config: cfg,
        hub: hub.clone(),
        status: board.clone(),
        shutdown,
    };
    let (to_gw, rx) = mpsc::channel(64);
    let (out_tx, mut from_gw) = mpsc::unbounded_channel();
    let _handle = service::spawn(
        &ctx,
        meshroom_gw::settings::engine_config(&ctx.config.meshcore),
        RadioLink {
            rx,
            tx: Arc::new(ChannelRadio(out_tx)),
        },
    )
    .await
    .unwrap();
    let room_key = meshroom_gw::meshcore::keystore::load(
        &meshroom_gw::meshcore::keystore::key_path(&dir.path().join("meshcore"), "Public"),
    )
    .unwrap()
    .public();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let mut now = Now { mono_ms: 0, unix };
    let mut alice = Companion::new(
        LocalIdentity::from_seed(&[42; 32]),
        "alice",
        CompanionConfig::default(),
        1,
    );
    alice.add_room(room_key, "Public", 0);
    let send = |f: Vec<u8>| Received {
        bytes: f,
        rssi_dbm: -80,
        snr_db: 5.0,
        at: Instant::now(),
    };
    for f in frames_of(alice.login(now, &room_key, "", None).unwrap()) {
        to_gw.send(send(f)).await.unwrap();
    }
    // The login reply.
    let _ = tokio::time::timeout(Duration::from_secs(2), from_gw.recv()).await;
    let n = 300;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        now.unix += 1;
        let f = frames_of(
            alice
                .post(now, &room_key, &format!("post number {i}"))
                .unwrap()
                .1,
        )
        .remove(0);
        let sent = send(f);
        let t0 = sent.at;
        to_gw.send(sent).await.unwrap();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), from_gw.recv()).await {
                Ok(Some((frame, prio, at))) => {
                    let p = PacketRepr::from_bytes(&frame).unwrap();
                    if p.payload_type == PayloadType::Ack || p.payload_type == PayloadType::Path {
                        assert_eq!(prio, Priority::Reply);
                        lat.push((at - t0).as_secs_f64() * 1000.0);
                        break;
                    }
                }
                _ => panic!("no ACK for post {i}"),
            }
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!("post -> ACK handed to the TX scheduler (real hub, SQLite commit; airtime excluded), {n} posts:");
    println!(
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn main() {
    core_cost();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(post_to_ack());
}
