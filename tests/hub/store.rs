//! The room hub on its SQLite store, in process: dedup, room clocks across restarts and clock
//! jumps, history depth, fan-out, and refusing a database it cannot read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use meshroom_gw::config::{Psk, RoomConfig};
use meshroom_gw::hub::{Author, AuthorKind, Hub, HubError, NewPost, PostId, Submitted, Via};

fn room(name: &str, max_history: u32) -> RoomConfig {
    RoomConfig {
        name: name.into(),
        psk: Psk::default(),
        description: String::new(),
        max_history,
        group: None,
        port: None,
        ..RoomConfig::default()
    }
}

/// A wall clock the test can set, in whole seconds (the store's clock counts microseconds).
fn settable(start: u64) -> (Arc<AtomicU64>, meshroom_gw::store::writer::WallClock) {
    let now = Arc::new(AtomicU64::new(start));
    let n = now.clone();
    (now, Arc::new(move || n.load(Ordering::SeqCst) * 1_000_000))
}

fn post(room: &str, id: Option<PostId>, text: &str) -> NewPost {
    NewPost {
        id,
        room: room.into(),
        author: Author {
            kind: AuthorKind::Ip,
            id: "10.77.0.1:5000".into(),
            name: Some("tester".into()),
        },
        origin: None,
        author_ts: 1,
        text: text.into(),
        hops: 0,
        via: Via::side(AuthorKind::Ip),
    }
}

async fn accept(hub: &Hub, p: NewPost) -> Arc<meshroom_gw::hub::Post> {
    match hub.submit(p).await.expect("submit") {
        Submitted::Accepted(p) => p,
        Submitted::Duplicate(id) => panic!("unexpected duplicate {id}"),
    }
}

#[tokio::test]
async fn a_post_id_seen_before_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = settable(1_800_000_000);
    let hub = Hub::open("A", dir.path(), &[room("R", 10)], clock).unwrap();
    let id = PostId::fresh();
    let first = accept(&hub, post("R", Some(id), "hello")).await;
    assert_eq!(first.id, id);
    assert_eq!(first.origin, "A");
    match hub
        .submit(post("R", Some(id), "hello again"))
        .await
        .unwrap()
    {
        Submitted::Duplicate(d) => assert_eq!(d, id),
        other => panic!("expected duplicate, got {other:?}"),
    }
    let history = hub.recent("R", 100).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, "hello");
    assert_eq!(hub.tallies().get("R").posts_in_ip, 1);
}

#[tokio::test]
async fn room_timestamps_strictly_increase_across_restart_and_clock_set_back() {
    let dir = tempfile::tempdir().unwrap();
    let (now, clock) = settable(1_800_000_000);
    let mut last = 0;
    {
        let hub = Hub::open("A", dir.path(), &[room("R", 100)], clock.clone()).unwrap();
        for i in 0..5 {
            let p = accept(&hub, post("R", None, &format!("burst {i}"))).await;
            assert!(
                p.room_us > last,
                "room clock went from {last} to {}",
                p.room_us
            );
            assert_eq!(p.room_ts, p.room_us / 1_000_000);
            last = p.room_us;
        }
        // Five posts in one wall-clock second: the room clock steps a microsecond each, never
        // repeats, and stays in that second.
        assert_eq!(last, 1_800_000_000_000_004);
        hub.flush().await;
    }
    // Restart with the wall clock set back an hour (a Pi booting without an RTC).
    now.store(1_800_000_000 - 3600, Ordering::SeqCst);
    let hub = Hub::open("A", dir.path(), &[room("R", 100)], clock).unwrap();
    let p = accept(&hub, post("R", None, "after restart")).await;
    assert_eq!(p.room_us, last + 1, "the room clock never goes back");
    now.store(1_800_000_100, Ordering::SeqCst);
    let p2 = accept(&hub, post("R", None, "clock caught up")).await;
    assert_eq!(
        p2.room_ts, 1_800_000_100,
        "max(now, last + 1) follows the wall clock again"
    );
    let ts: Vec<u64> = hub
        .recent("R", 100)
        .await
        .unwrap()
        .iter()
        .map(|p| p.room_us)
        .collect();
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "{ts:?}");
    assert_eq!(hub.tallies().get("R").last_post_at, Some(1_800_000_100));
}

#[tokio::test]
async fn history_keeps_the_newest_max_history_posts_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = settable(1_800_000_000);
    {
        let hub = Hub::open(
            "A",
            dir.path(),
            &[room("R", 3), room("S", 50)],
            clock.clone(),
        )
        .unwrap();
        for i in 0..10 {
            accept(&hub, post("R", None, &format!("r{i}"))).await;
        }
        accept(&hub, post("S", None, "other room")).await;
        let texts: Vec<String> = hub
            .recent("R", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(texts, ["r7", "r8", "r9"]);
        assert_eq!(hub.tallies().get("R").history, 3);
    }
    let hub = Hub::open("A", dir.path(), &[room("R", 3), room("S", 50)], clock).unwrap();
    let texts: Vec<String> = hub
        .recent("R", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(texts, ["r7", "r8", "r9"]);
    assert_eq!(hub.tallies().get("R").history, 3);
    assert_eq!(
        hub.recent("S", 100).await.unwrap().len(),
        1,
        "rooms keep their own history"
    );
    let after = hub.recent("R", 100).await.unwrap()[0].room_us;
    let newer: Vec<String> = hub
        .history_after("R", after, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(newer, ["r8", "r9"]);
}

#[tokio::test]
async fn every_side_sees_committed_posts_with_where_they_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = settable(1_800_000_000);
    let hub = Hub::open("A", dir.path(), &[room("R", 10)], clock).unwrap();
    let mut rx = hub.subscribe();
    let mut p = post("R", None, "from a peer");
    p.via = Via::peer("b.example:7070");
    p.origin = Some("B".into());
    p.hops = 1;
    accept(&hub, p).await;
    let d = rx.recv().await.unwrap();
    assert_eq!(d.post.text, "from a peer");
    assert_eq!(d.post.origin, "B");
    assert_eq!(d.via.link.as_deref(), Some("b.example:7070"));
    assert_eq!(hub.tallies().get("R").posts_in_peer, 1);
}

#[tokio::test]
async fn bad_posts_and_unknown_rooms_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = settable(1_800_000_000);
    let hub = Hub::open("A", dir.path(), &[room("R", 10)], clock).unwrap();
    assert!(matches!(
        hub.submit(post("Nope", None, "x")).await,
        Err(HubError::UnknownRoom(_))
    ));
    assert!(matches!(
        hub.submit(post("R", None, "   ")).await,
        Err(HubError::Invalid(_))
    ));
    let long = "x".repeat(meshroom_gw::hub::MAX_TEXT_BYTES + 1);
    assert!(matches!(
        hub.submit(post("R", None, &long)).await,
        Err(HubError::Invalid(_))
    ));
    assert!(hub.recent("R", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn side_state_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (_, clock) = settable(1_800_000_000);
    {
        let hub = Hub::open("A", dir.path(), &[room("R", 10)], clock.clone()).unwrap();
        hub.state()
            .put("cursor", "peer-b/R", b"42".to_vec())
            .await
            .unwrap();
    }
    let hub = Hub::open("A", dir.path(), &[room("R", 10)], clock).unwrap();
    assert_eq!(
        hub.state().get("cursor", "peer-b/R").unwrap(),
        Some(b"42".to_vec())
    );
    assert_eq!(hub.state().list("cursor").unwrap().len(), 1);
}

#[test]
fn a_database_that_cannot_be_read_is_an_error_not_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(meshroom_gw::store::DB_FILE);
    std::fs::write(
        &db,
        b"this is not a database, but somebody's data".repeat(100),
    )
    .unwrap();
    let (_, clock) = settable(1_800_000_000);
    let err = match Hub::open("A", dir.path(), &[room("R", 10)], clock) {
        Ok(_) => panic!("opened a file that is not a database"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("cannot be used"), "{err}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        b"this is not a database, but somebody's data".repeat(100),
        "the file is left untouched"
    );
}
