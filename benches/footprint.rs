//! What the gateway costs a Raspberry Pi, in one run (prints figures; asserts nothing):
//! 1. idle wake-ups per second per thread of a running `meshroom-gw` (seed config with the
//!    simulated radio, and with `radio: none`), from the voluntary + nonvoluntary context
//!    switches in `/proc/PID/task/*/status` over a window;
//! 2. RSS and start-up time (spawn → `/status` answers) with 100 rooms × 1000 kept posts, at
//!    `max_history` 1000 and 1,000,000;
//! 3. durable ingest through the hub beside raw SQLite inserting the same rows in batches of
//!    4096 (WAL, synchronous=FULL): into the store's
//!    own tables (a table per room and the id index, created by the store's code; the ratio is
//!    the hub's own cost), and into the one clustered table with a unique id index that schema
//!    version 2 used (what the obvious layout costs). Three points: an empty database, right
//!    after (every room at its `max_history`, each post trimming one), and after the fill;
//! 4. bytes written to storage per post at one post per commit (`/proc/self/io` write_bytes).
//!
//! Run: `cargo bench --bench footprint`. Env: `FOOTPRINT_IDLE_S` (window, default 20),
//! `FOOTPRINT_FILL` (posts before the last ingest figure, default 1,000,000),
//! `FOOTPRINT_INGEST_HISTORY` (`max_history` of the four ingest rooms, default 10,000),
//! `FOOTPRINT_INGEST` (posts per ingest figure, default 50,000), `FOOTPRINT_ONLY` (a comma list
//! of `idle`, `rss`, `ingest`, `bytes`: run only those parts; default all),
//! `FOOTPRINT_SUBMITTERS` (concurrent submitters per ingest figure, comma list, default
//! `256,4096`).
//! The gateway runs with `tun.enabled: off` (the bench does not create a device on the host).

mod support;
use support::env_usize;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshroom_gw::config::{Psk, RoomConfig};
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, Via};
use meshroom_gw::store::writer::system_clock;

const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");

fn main() {
    let idle_s = env_usize("FOOTPRINT_IDLE_S", 20) as u64;
    let fill = env_usize("FOOTPRINT_FILL", 1_000_000);
    let ingest = env_usize("FOOTPRINT_INGEST", 50_000);
    let only = std::env::var("FOOTPRINT_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only.split(',').any(|p| p.trim() == name);
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("footprint");
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");

    if part("idle") {
        println!("== idle wake-ups per second ({idle_s} s window, after 3 s settling) ==");
    }
    for backend in ["sim", "none"].into_iter().filter(|_| part("idle")) {
        let dir = base.join(format!("idle-{backend}"));
        let cfg = seed_config(&dir, backend, 1, 1000);
        let mut gw = Gateway::start(&dir, &cfg);
        std::thread::sleep(Duration::from_secs(3));
        let before = switches(gw.pid());
        std::thread::sleep(Duration::from_secs(idle_s));
        let after = switches(gw.pid());
        let mut total = 0.0;
        let mut rows = Vec::new();
        for (tid, (name, n)) in &after {
            let was = before.get(tid).map_or(0, |(_, n)| *n);
            let rate = n.saturating_sub(was) as f64 / idle_s as f64;
            total += rate;
            rows.push((name.clone(), *tid, rate));
        }
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        println!("radio: {backend}: {total:.2} wake-ups/s for the process");
        for (name, tid, rate) in rows.iter().filter(|r| r.2 > 0.0) {
            println!("    {name:<16} (tid {tid}) {rate:.2}/s");
        }
        gw.stop();
    }

    if part("rss") {
        println!("\n== RSS and start-up, 100 rooms x 1000 kept posts, radio: none ==");
    }
    for max_history in [1000u32, 1_000_000].into_iter().filter(|_| part("rss")) {
        let dir = base.join(format!("rooms-{max_history}"));
        let rooms = rooms(100, max_history);
        fill_rooms(&dir, &rooms, 1000);
        let cfg = seed_config(&dir, "none", 100, max_history);
        let started = Instant::now();
        let mut gw = Gateway::start(&dir, &cfg);
        let up = started.elapsed();
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_kib(gw.pid());
        println!(
            "max_history {max_history:>9}: start-up to /status {:>6.1} ms, RSS {:>6.1} MB",
            up.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0
        );
        gw.stop();
    }

    let rt = runtime();
    if part("ingest") {
        ingest_vs_raw(&rt, &base, fill, ingest);
    }
    if part("bytes") {
        bytes_per_post(&rt, &base);
    }
}

fn ingest_vs_raw(rt: &tokio::runtime::Runtime, base: &Path, fill: usize, ingest: usize) {
    println!(
        "\n== durable ingest vs raw SQLite (same rows, batches of 4096; the store's tables, and one clustered table) =="
    );
    let dir = base.join("ingest");
    std::fs::create_dir_all(&dir).expect("dir");
    let ingest_rooms = rooms(4, env_usize("FOOTPRINT_INGEST_HISTORY", 10_000) as u32);
    let raw = Raw::open(&dir.join("raw.db"), Layout::Store);
    let clustered = Raw::open(&dir.join("clustered.db"), Layout::Clustered);
    // Group commit takes what is queued: with 4096 submitters the hub's groups are as big as
    // the baseline's transactions, so the ratio is the hub's own cost per post; 256 is a busy
    // gateway's worth of concurrent posts.
    let concurrency: Vec<usize> = std::env::var("FOOTPRINT_SUBMITTERS")
        .unwrap_or_else(|_| "256,4096".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    rt.block_on(async {
        let hub = Hub::open("bench", &dir, &ingest_rooms, system_clock()).expect("hub");
        let mut next = 0usize;
        // "at start" begins on an empty database (the rooms fill up during it); "rooms full"
        // follows at once, every post now trimming one; "after fill" after `fill` posts.
        for (label, target) in [("at start", 0usize), ("rooms full", 0), ("after fill", fill)] {
            if target > next {
                let t = Instant::now();
                submit_many(&hub, next, target - next, 256).await;
                raw.insert(next, target - next);
                clustered.insert(next, target - next);
                println!(
                    "  (filled to {target} posts in {:.1} s)",
                    t.elapsed().as_secs_f64()
                );
                // The fill left hundreds of MB to write back; let it reach the disk first, so
                // the kernel's writeback does not fall on the figures that follow.
                nix::unistd::sync();
                next = target;
            }
            // Interleaved in rounds, so that load from elsewhere on the machine falls on both
            // sides of the ratio alike.
            let rounds = 5;
            let step = ingest.div_ceil(rounds);
            let mut raw_s = 0.0;
            let mut clustered_s = 0.0;
            let mut hub_s = vec![0.0; concurrency.len()];
            let raw_first = next;
            for round in 0..rounds {
                let t = Instant::now();
                raw.insert(raw_first + round * step, step);
                raw_s += t.elapsed().as_secs_f64();
                let t = Instant::now();
                clustered.insert(raw_first + round * step, step);
                clustered_s += t.elapsed().as_secs_f64();
                for (k, &submitters) in concurrency.iter().enumerate() {
                    let t = Instant::now();
                    submit_many(&hub, next, step, submitters).await;
                    hub_s[k] += t.elapsed().as_secs_f64();
                    next += step;
                }
            }
            let raw_rate = (rounds * step) as f64 / raw_s;
            let clustered_rate = (rounds * step) as f64 / clustered_s;
            for (k, &submitters) in concurrency.iter().enumerate() {
                let hub_rate = (rounds * step) as f64 / hub_s[k];
                println!(
                    "{label:<11}: hub {hub_rate:>8.0} posts/s ({submitters:>4} submitters), raw SQLite {raw_rate:>8.0} rows/s, ratio {:.2}x",
                    hub_rate / raw_rate
                );
            }
            println!(
                "{label:<11}: one clustered table + unique id index (schema v2) {clustered_rate:>8.0} rows/s"
            );
            for (k, &submitters) in concurrency.iter().enumerate() {
                let hub_rate = (rounds * step) as f64 / hub_s[k];
                println!(
                    "{label:<11}: hub / clustered table ({submitters:>4} submitters) {:.2}x",
                    hub_rate / clustered_rate
                );
            }
        }
        hub.close().await;
    });
}

fn bytes_per_post(rt: &tokio::runtime::Runtime, base: &Path) {
    println!("\n== bytes written per post, one post per commit ==");
    for max_history in [1000u32, 1_000_000] {
        rt.block_on(async {
            let dir = base.join(format!("bytes-{max_history}"));
            let rooms = rooms(4, max_history);
            let hub = Hub::open("bench", &dir, &rooms, system_clock()).expect("hub");
            // Warm up past the first checkpoints and into trimming (steady state).
            for i in 0..5000 {
                let _ = hub.submit(new_post(i)).await;
            }
            let n = 2000;
            let before = write_bytes();
            for i in 0..n {
                let _ = hub.submit(new_post(5000 + i)).await;
            }
            let written = write_bytes().saturating_sub(before);
            println!(
            "max_history {max_history:>9} ({}): {:.1} KB per post ({n} posts, {:.1} MB written)",
            if max_history == 1000 { "trimming" } else { "no trimming" },
            written as f64 / n as f64 / 1024.0,
            written as f64 / 1e6
        );
            hub.close().await;
        });
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn rooms(n: usize, max_history: u32) -> Vec<RoomConfig> {
    (0..n)
        .map(|i| RoomConfig {
            name: if n == 1 {
                "Public".to_string()
            } else {
                format!("room{i:03}")
            },
            psk: Psk::default(),
            description: String::new(),
            max_history,
            group: None,
            ..RoomConfig::default()
        })
        .collect()
}

fn text(i: usize) -> String {
    format!("post number {i}: the quick brown fox jumps over the lazy dog, on a LoRa mesh")
}

fn new_post(i: usize) -> NewPost {
    NewPost {
        id: None,
        room: format!("room{:03}", i % 4),
        author: Author {
            kind: AuthorKind::Ip,
            id: "10.77.0.1:5000".into(),
            name: Some("bench".into()),
        },
        origin: None,
        author_ts: 1_800_000_000,
        text: text(i),
        hops: 0,
        via: Via::side(AuthorKind::Ip),
    }
}

/// `n` posts from `submitters` concurrent tasks (group commit batches them).
async fn submit_many(hub: &Hub, first: usize, n: usize, submitters: usize) {
    let submitters = submitters.min(n.max(1));
    let tasks: Vec<_> = (0..submitters)
        .map(|t| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut i = t;
                while i < n {
                    let _ = hub.submit(new_post(first + i)).await;
                    i += submitters;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

fn fill_rooms(dir: &Path, rooms: &[RoomConfig], per_room: usize) {
    runtime().block_on(async {
        let hub = Hub::open("meshroom-gw", dir, rooms, system_clock()).expect("hub");
        let names: Vec<String> = rooms.iter().map(|r| r.name.clone()).collect();
        let tasks: Vec<_> = names
            .into_iter()
            .map(|room| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for i in 0..per_room {
                        let mut p = new_post(i);
                        p.room = room.clone();
                        let _ = hub.submit(p).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        hub.close().await;
    });
}

/// The seed configuration (config/meshroom-gw.yaml) with a state directory, a free HTTP port,
/// the radio backend, `n` rooms, and no TUN device.
fn seed_config(dir: &Path, backend: &str, n: usize, max_history: u32) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/meshroom-gw.yaml"
    ))
    .expect("seed config");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut room_list = String::from("rooms:\n");
    for r in rooms(n, max_history) {
        room_list.push_str(&format!(
            "  - name: \"{}\"\n    max_history: {}\n",
            r.name, r.max_history
        ));
    }
    let mut out = String::new();
    let mut skipping = false;
    for line in seed.lines() {
        if line.starts_with("rooms:") {
            out.push_str(&room_list);
            skipping = true;
            continue;
        }
        if skipping {
            if line.starts_with(' ') || line.starts_with('#') || line.is_empty() {
                continue;
            }
            skipping = false;
        }
        let line = if line.trim_start().starts_with("state_dir:") {
            format!("  state_dir: \"{}\"", dir.join("state").display())
        } else if line.trim_start().starts_with("listen:") && line.contains("7070") {
            format!("  listen: \"127.0.0.1:{port}\"")
        } else if line.trim_start().starts_with("backend:") {
            format!(
                "  backend: {backend}\n  air_dir: \"{}\"",
                dir.join("air").display()
            )
        } else if line.trim_start().starts_with("enabled: auto") {
            "  enabled: off".to_string()
        } else {
            line.to_string()
        };
        out.push_str(&line);
        out.push('\n');
    }
    let path = dir.join("meshroom-gw.yaml");
    std::fs::write(&path, out).expect("config");
    // The rooms were filled straight into this directory's state.
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let db = dir.join("meshroom.db");
    if db.exists() {
        for f in ["meshroom.db", "meshroom.db-wal", "meshroom.db-shm"] {
            let _ = std::fs::rename(dir.join(f), state.join(f));
        }
    }
    path
}

struct Gateway {
    child: Child,
}

impl Gateway {
    fn start(_dir: &Path, config: &Path) -> Gateway {
        let text = std::fs::read_to_string(config).expect("config");
        let listen = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("listen: \"127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse::<u16>().ok())
            .expect("listen port");
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start meshroom-gw");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if status_ok(listen) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not answer /status"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        Gateway { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn status_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Per thread: (name, voluntary + nonvoluntary context switches).
fn switches(pid: u32) -> std::collections::BTreeMap<u32, (String, u64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(tid) = t.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue;
        };
        let mut name = String::new();
        let mut n = 0;
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("Name:") {
                name = v.trim().to_string();
            } else if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
        out.insert(tid, (name, n));
    }
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Where the baseline puts the rows.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// The store's own tables, made by the store's code: a table per room keyed by room time
    /// and the `post_ids` index, each id written in the same transaction as its row.
    Store,
    /// Schema version 2: one table clustered by (room, room time) with a unique id index.
    Clustered,
}

/// The baseline: the same rows (time-ordered ids, as the hub draws them), 4096 per
/// transaction, WAL, `synchronous=FULL`: what SQLite itself costs for this data, so the ratio
/// shows only the hub's own overhead. It never trims.
struct Raw {
    conn: rusqlite::Connection,
    layout: Layout,
    /// The insert statement of each room table (store layout), made once as the hub does.
    inserts: Vec<String>,
}

impl Raw {
    fn open(path: &Path, layout: Layout) -> Raw {
        use meshroom_gw::store::{ids, rooms};
        let conn = rusqlite::Connection::open(path).expect("raw db");
        conn.pragma_update(None, "page_size", meshroom_gw::store::schema::PAGE_SIZE)
            .expect("page size");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("sync");
        match layout {
            Layout::Store => {
                conn.execute_batch(rooms::CATALOGUE).expect("catalogue");
                conn.execute_batch(ids::SCHEMA).expect("ids");
                for tab in 1..=4 {
                    rooms::create(&conn, &format!("room{:03}", tab - 1), tab).expect("room");
                }
            }
            Layout::Clustered => conn
                .execute_batch(
                    "CREATE TABLE IF NOT EXISTS posts (
                    room TEXT NOT NULL, room_ts INTEGER NOT NULL, id BLOB NOT NULL,
                    author_kind TEXT NOT NULL, author_id TEXT NOT NULL, author_name TEXT,
                    origin TEXT NOT NULL, author_ts INTEGER NOT NULL, text TEXT NOT NULL,
                    hops INTEGER NOT NULL, PRIMARY KEY (room, room_ts)) WITHOUT ROWID;
                 CREATE UNIQUE INDEX IF NOT EXISTS posts_by_id ON posts (id);",
                )
                .expect("table"),
        }
        let inserts = (1..=4)
            .map(|tab| {
                format!(
                    "INSERT INTO {} (room_us, {}) VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    rooms::table(tab),
                    rooms::COLUMNS
                )
            })
            .collect();
        Raw {
            conn,
            layout,
            inserts,
        }
    }

    fn insert(&self, first: usize, n: usize) {
        let mut i = 0;
        while i < n {
            let tx = self.conn.unchecked_transaction().expect("tx");
            for k in i..(i + 4096).min(n) {
                let id = meshroom_gw::hub::PostId::fresh().0;
                let p = new_post(first + k);
                let room_ts = (first + k) as i64;
                let row = rusqlite::params![
                    &id[..],
                    p.author.kind.as_str(),
                    p.author.id,
                    p.author.name,
                    "bench",
                    p.author_ts as i64,
                    p.text,
                    p.hops as i64
                ];
                match self.layout {
                    Layout::Store => {
                        let tab = ((first + k) % 4) as i64 + 1;
                        tx.prepare_cached(&self.inserts[tab as usize - 1])
                            .expect("stmt")
                            .execute(rusqlite::params_from_iter(
                                row.iter()
                                    .copied()
                                    .chain([&room_ts as &dyn rusqlite::ToSql]),
                            ))
                            .expect("insert");
                        tx.prepare_cached(
                            "INSERT INTO post_ids (id, tab, room_us) VALUES (?1, ?2, ?3)",
                        )
                        .expect("stmt")
                        .execute(rusqlite::params![&id[..], tab, room_ts])
                        .expect("insert id");
                    }
                    Layout::Clustered => {
                        tx.prepare_cached(
                            "INSERT INTO posts (id, author_kind, author_id, author_name, origin, author_ts, text, hops, room, room_ts)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        )
                        .expect("stmt")
                        .execute(rusqlite::params_from_iter(
                            row.iter()
                                .copied()
                                .chain([&p.room as &dyn rusqlite::ToSql, &room_ts]),
                        ))
                        .expect("insert");
                    }
                }
            }
            tx.commit().expect("commit");
            i += 4096;
        }
    }
}
