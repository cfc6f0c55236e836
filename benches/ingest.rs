//! Durable ingest: posts/s through the hub into SQLite with group commit, and the time from
//! hand-in (`Hub::submit`) to commit, p50/p99. Prints figures; asserts nothing.
//!
//! Run: `cargo bench --bench ingest` (env `INGEST_POSTS`, `INGEST_SUBMITTERS` to vary).

mod support;
use support::{env_usize, percentile};

use std::time::Instant;

use meshroom_gw::config::{Psk, RoomConfig};
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, Submitted, Via};
use meshroom_gw::store::writer::system_clock;

fn main() {
    let posts = env_usize("INGEST_POSTS", 200_000);
    let submitters = env_usize("INGEST_SUBMITTERS", 256);
    let rooms: Vec<RoomConfig> = (0..4)
        .map(|i| RoomConfig {
            name: format!("room{i}"),
            psk: Psk::default(),
            description: String::new(),
            max_history: 1000,
            group: None,
            port: None,
            ..RoomConfig::default()
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let hub = Hub::open("bench", dir.path(), &rooms, system_clock()).expect("hub");
        let per_task = posts / submitters;
        let started = Instant::now();
        let tasks: Vec<_> = (0..submitters)
            .map(|t| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_task);
                    for i in 0..per_task {
                        let post = NewPost {
                            id: None,
                            room: format!("room{}", (t + i) % 4),
                            author: Author {
                                kind: AuthorKind::Ip,
                                id: format!("10.77.0.1:{t}"),
                                name: None,
                            },
                            origin: None,
                            author_ts: 0,
                            text: format!(
                                "post {i} from submitter {t}: a message of ordinary length"
                            ),
                            hops: 0,
                            via: Via::side(AuthorKind::Ip),
                        };
                        let handed_in = Instant::now();
                        match hub.submit(post).await {
                            Ok(Submitted::Accepted(_)) => latencies.push(handed_in.elapsed()),
                            other => panic!("post not accepted: {other:?}"),
                        }
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(posts);
        for t in tasks {
            latencies.extend(t.await.expect("task"));
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let n = latencies.len();
        println!("durable ingest (hub + SQLite WAL, synchronous=FULL, group commit)");
        println!("  posts:            {n} into 4 rooms (max_history 1000, trimming on)");
        println!("  submitters:       {submitters} concurrent tasks");
        println!("  elapsed:          {:.2} s", elapsed.as_secs_f64());
        println!(
            "  throughput:       {:.0} posts/s",
            n as f64 / elapsed.as_secs_f64()
        );
        println!(
            "  hand-in→commit:   p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    });
}
