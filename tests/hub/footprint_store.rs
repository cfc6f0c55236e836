//! The store sized for a Pi: room time stays near the wall clock through a burst, dedup covers
//! history and recently trimmed ids, and a version-1 database is migrated in place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use meshroom_gw::config::{Psk, RoomConfig};
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, PostId, Submitted, Via};

fn room(name: &str, max_history: u32) -> RoomConfig {
    RoomConfig {
        name: name.into(),
        psk: Psk::default(),
        description: String::new(),
        max_history,
        group: None,
        ..RoomConfig::default()
    }
}

fn post(room: &str, id: Option<PostId>, text: &str) -> NewPost {
    NewPost {
        id,
        room: room.into(),
        author: Author {
            kind: AuthorKind::Peer,
            id: "peer".into(),
            name: None,
        },
        origin: Some("elsewhere".into()),
        author_ts: 1,
        text: text.into(),
        hops: 1,
        via: Via::peer("p"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_2000_posts_keeps_room_time_within_a_minute_of_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(
        "A",
        dir.path(),
        &[room("R", 10_000)],
        meshroom_gw::store::writer::system_clock(),
    )
    .unwrap();
    // Submitted all at once, as a federation catch-up does: group commits of many posts.
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let hub = hub.clone();
        tasks.push(tokio::spawn(async move {
            hub.submit(post("R", None, &format!("burst {i}"))).await
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Submitted::Accepted(_)));
    }
    let posts = hub.recent("R", 5000).await.unwrap();
    assert_eq!(posts.len(), 2000);
    assert!(
        posts.windows(2).all(|w| w[0].room_us < w[1].room_us),
        "strictly increasing room clock"
    );
    let newest = posts.last().unwrap().room_ts;
    let now = hub.now();
    assert!(
        newest <= now + 60,
        "room time ran {} s ahead of the wall clock",
        newest.saturating_sub(now)
    );
    // The HTTP/federation cursor reads on without a gap from any post.
    let mid = &posts[999];
    let after = hub.history_after("R", mid.room_us, 5000).await.unwrap();
    assert_eq!(after.len(), 1000);
    assert_eq!(after[0].id, posts[1000].id);
    hub.close().await;
}

#[tokio::test]
async fn an_id_trimmed_from_history_is_still_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::open(
        "A",
        dir.path(),
        &[room("R", 2)],
        meshroom_gw::store::writer::system_clock(),
    )
    .unwrap();
    let first = PostId::fresh();
    assert!(matches!(
        hub.submit(post("R", Some(first), "one")).await.unwrap(),
        Submitted::Accepted(_)
    ));
    for i in 0..5 {
        hub.submit(post("R", None, &format!("more {i}")))
            .await
            .unwrap();
    }
    assert_eq!(hub.recent("R", 10).await.unwrap().len(), 2);
    // A peer offers the old post again: recognised although it left history.
    assert!(matches!(
        hub.submit(post("R", Some(first), "one")).await.unwrap(),
        Submitted::Duplicate(_)
    ));
    // And one still in history is a duplicate too.
    let kept = hub.recent("R", 1).await.unwrap()[0].id;
    assert!(matches!(
        hub.submit(post("R", Some(kept), "again")).await.unwrap(),
        Submitted::Duplicate(_)
    ));
    hub.close().await;
}

#[tokio::test]
async fn a_version_1_database_is_migrated_with_its_history_clock_and_cursors() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meshroom.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '1');
             CREATE TABLE room_clock (room TEXT PRIMARY KEY, last_ts INTEGER NOT NULL);
             CREATE TABLE posts (seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB NOT NULL,
                room TEXT NOT NULL, room_ts INTEGER NOT NULL, author_kind TEXT NOT NULL,
                author_id TEXT NOT NULL, author_name TEXT, origin TEXT NOT NULL,
                author_ts INTEGER NOT NULL, text TEXT NOT NULL, hops INTEGER NOT NULL);
             CREATE INDEX posts_by_room ON posts (room, room_ts);
             CREATE TABLE seen (id BLOB PRIMARY KEY, room TEXT NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key));
             INSERT INTO kv VALUES ('federation.cursor', 'h:1/R', CAST('4000000001' AS BLOB));
             INSERT INTO kv VALUES ('meshcore.clock', 'R', x'01020304');",
        )
        .unwrap();
        for (i, ts) in [(1u8, 4_000_000_000i64), (2, 4_000_000_001)] {
            c.execute(
                "INSERT INTO posts (id, room, room_ts, author_kind, author_id, author_name, origin, author_ts, text, hops)
                 VALUES (?1, 'R', ?2, 'ip', 'h', NULL, 'A', 1, ?3, 0)",
                rusqlite::params![vec![i; 16], ts, format!("old {i}")],
            )
            .unwrap();
            c.execute(
                "INSERT INTO seen (id, room, at) VALUES (?1, 'R', 1)",
                [vec![i; 16]],
            )
            .unwrap();
        }
        // An id trimmed long ago under version 1.
        c.execute(
            "INSERT INTO seen (id, room, at) VALUES (?1, 'R', 1)",
            [vec![9u8; 16]],
        )
        .unwrap();
        c.execute("INSERT INTO room_clock VALUES ('R', 4000000001)", [])
            .unwrap();
    }
    // The wall clock is far behind the stored room clock (no RTC): the clock still never goes back.
    let now = Arc::new(AtomicU64::new(3_000_000_000));
    let n = now.clone();
    let clock = Arc::new(move || n.load(Ordering::SeqCst) * 1_000_000);
    let hub = Hub::open("A", dir.path(), &[room("R", 100)], clock).unwrap();
    let posts = hub.recent("R", 10).await.unwrap();
    assert_eq!(
        posts.iter().map(|p| p.room_us).collect::<Vec<_>>(),
        [4_000_000_000_000_000, 4_000_000_001_000_000]
    );
    assert_eq!(posts[1].room_ts, 4_000_000_001);
    assert_eq!(hub.tallies().get("R").history, 2);
    let p = match hub.submit(post("R", None, "new")).await.unwrap() {
        Submitted::Accepted(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(p.room_us, 4_000_000_001_000_001);
    assert!(matches!(
        hub.submit(post("R", Some(PostId([1; 16])), "old 1"))
            .await
            .unwrap(),
        Submitted::Duplicate(_)
    ));
    let state = hub.state();
    assert_eq!(
        state.get("federation.cursor", "h:1/R").unwrap().unwrap(),
        b"4000000001000000".to_vec(),
        "federation cursors count in the room clock's new unit"
    );
    assert_eq!(
        state.get("meshcore.clock", "R").unwrap().unwrap(),
        vec![1, 2, 3, 4]
    );
    hub.close().await;
}

/// What the writer answers to one post with a given id (not drawn by the hub).
async fn write_post(
    writer: &tokio::sync::mpsc::Sender<meshroom_gw::store::WriteOp>,
    room: &str,
    id: PostId,
) -> meshroom_gw::store::writer::PostOutcome {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let mut p = meshroom_gw::hub::Post {
        id,
        room: room.into(),
        room_ts: 0,
        room_us: 0,
        author: Author {
            kind: AuthorKind::Peer,
            id: "peer".into(),
            name: None,
        },
        origin: "elsewhere".into(),
        author_ts: 1,
        text: format!("post {id}"),
        hops: 1,
    };
    p.text.truncate(40);
    writer
        .send(meshroom_gw::store::WriteOp::Post {
            post: p,
            via: Via::peer("p"),
            fresh: false,
            reply,
        })
        .await
        .unwrap();
    answer.await.unwrap().unwrap()
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn ids_still_waiting_for_the_index_are_duplicates_after_a_crash() {
    use meshroom_gw::store::writer::{self, PostOutcome};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meshroom.db");
    let limits: std::collections::HashMap<String, u32> =
        [("R".to_string(), 1000), ("S".to_string(), 1000)].into();
    let ids: Vec<PostId> = (0..40).map(|_| PostId::fresh()).collect();
    {
        let (tx, _, thread) = writer::start(
            &db,
            writer::system_clock(),
            limits.clone(),
            Box::new(|_, _, _| {}),
        )
        .unwrap();
        for (i, id) in ids.iter().enumerate() {
            let room = if i % 2 == 0 { "R" } else { "S" };
            assert!(matches!(
                write_post(&tx, room, *id).await,
                PostOutcome::Stored(_)
            ));
        }
        // Committed and acknowledged, but their ids wait in RAM for a group to fill.
        assert_eq!(count(&db, "SELECT count(*) FROM post_ids"), 0);
        // The process dies: the writer ends without its closing step.
        drop(tx);
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap();
    }
    let (tx, found, thread) =
        writer::start(&db, writer::system_clock(), limits, Box::new(|_, _, _| {})).unwrap();
    assert_eq!(found["R"].0 + found["S"].0, 40);
    for (i, id) in ids.iter().enumerate() {
        let room = if i % 2 == 0 { "R" } else { "S" };
        assert!(
            matches!(write_post(&tx, room, *id).await, PostOutcome::Duplicate),
            "post {i} was accepted twice after the crash"
        );
    }
    // A clean stop writes the waiting ids, so the next start has none to read back.
    tx.send(meshroom_gw::store::WriteOp::Close).await.unwrap();
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(count(&db, "SELECT count(*) FROM post_ids"), 40);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM rooms WHERE ids_through = 0 OR ids_through IS NULL"
        ),
        0
    );
}

#[tokio::test]
async fn a_version_2_database_is_migrated_to_a_table_per_room() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meshroom.db");
    let kept = |i: u8| PostId([i; 16]);
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '2');
             CREATE TABLE posts (room TEXT NOT NULL, room_ts INTEGER NOT NULL, id BLOB NOT NULL,
                author_kind TEXT NOT NULL, author_id TEXT NOT NULL, author_name TEXT,
                origin TEXT NOT NULL, author_ts INTEGER NOT NULL, text TEXT NOT NULL,
                hops INTEGER NOT NULL, PRIMARY KEY (room, room_ts)) WITHOUT ROWID;
             CREATE UNIQUE INDEX posts_by_id ON posts (id);
             CREATE TABLE seen (id BLOB NOT NULL UNIQUE, at INTEGER NOT NULL);
             CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, key));
             INSERT INTO kv VALUES ('federation.cursor', 'h:1/R', CAST('4000000001000000' AS BLOB));",
        )
        .unwrap();
        for (i, room, ts) in [
            (1u8, "R", 4_000_000_000_000_000i64),
            (2, "R", 4_000_000_000_000_001),
            (3, "it's", 4_000_000_000_000_005),
        ] {
            c.execute(
                "INSERT INTO posts (id, room, room_ts, author_kind, author_id, author_name, origin, author_ts, text, hops)
                 VALUES (?1, ?2, ?3, 'ip', 'h', 'ann', 'A', 1, ?4, 0)",
                rusqlite::params![&kept(i).0[..], room, ts, format!("old {i}")],
            )
            .unwrap();
        }
        // An id trimmed from history under version 2, a minute before the restart.
        c.execute(
            "INSERT INTO seen (id, at) VALUES (?1, 2999999940)",
            [vec![9u8; 16]],
        )
        .unwrap();
    }
    let now = Arc::new(AtomicU64::new(3_000_000_000));
    let n = now.clone();
    let clock = Arc::new(move || n.load(Ordering::SeqCst) * 1_000_000);
    let hub = Hub::open("A", dir.path(), &[room("R", 100), room("it's", 100)], clock).unwrap();
    let posts = hub.recent("R", 10).await.unwrap();
    assert_eq!(
        posts
            .iter()
            .map(|p| (p.id, p.text.as_str()))
            .collect::<Vec<_>>(),
        [(kept(1), "old 1"), (kept(2), "old 2")]
    );
    assert_eq!(hub.recent("it's", 10).await.unwrap()[0].id, kept(3));
    assert_eq!(hub.tallies().get("R").history, 2);
    // The clock goes on from the newest post; ids in history and trimmed ones are duplicates.
    match hub.submit(post("R", None, "new")).await.unwrap() {
        Submitted::Accepted(p) => assert_eq!(p.room_us, 4_000_000_000_000_002),
        other => panic!("{other:?}"),
    }
    for id in [kept(1), kept(3), PostId([9; 16])] {
        let again = hub.submit(post("R", Some(id), "again")).await.unwrap();
        assert!(matches!(again, Submitted::Duplicate(_)), "{id}: {again:?}");
    }
    assert_eq!(
        hub.state()
            .get("federation.cursor", "h:1/R")
            .unwrap()
            .unwrap(),
        b"4000000001000000".to_vec(),
        "cursors already count microseconds"
    );
    hub.close().await;
    // The `posts` view README shows still lists every room's history.
    let c = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, i64, String)> = c
        .prepare("SELECT room, room_us, text FROM posts ORDER BY room_us")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("R".to_string(), 4_000_000_000_000_000, "old 1".to_string()),
            ("R".to_string(), 4_000_000_000_000_001, "old 2".to_string()),
            ("R".to_string(), 4_000_000_000_000_002, "new".to_string()),
            (
                "it's".to_string(),
                4_000_000_000_000_005,
                "old 3".to_string()
            ),
        ]
    );
    let version: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "3");
}

#[tokio::test]
async fn counts_saved_at_a_clean_stop_are_not_trusted_after_a_later_crash() {
    use meshroom_gw::store::writer;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meshroom.db");
    let limits: std::collections::HashMap<String, u32> = [("R".to_string(), 1000)].into();
    let start = || {
        writer::start(
            &db,
            writer::system_clock(),
            limits.clone(),
            Box::new(|_, _, _| {}),
        )
        .unwrap()
    };
    let stop = |thread: std::thread::JoinHandle<()>| {
        tokio::task::spawn_blocking(move || thread.join().unwrap())
    };
    // Five posts, then a clean stop: the count is saved for the next start.
    let (tx, _, thread) = start();
    for _ in 0..5 {
        write_post(&tx, "R", PostId::fresh()).await;
    }
    tx.send(meshroom_gw::store::WriteOp::Close).await.unwrap();
    stop(thread).await.unwrap();
    assert_eq!(count(&db, "SELECT kept FROM rooms"), 5);
    // A start reads it; three more posts, then the process dies.
    let (tx, found, thread) = start();
    assert_eq!(found["R"].0, 5);
    for _ in 0..3 {
        write_post(&tx, "R", PostId::fresh()).await;
    }
    drop(tx);
    stop(thread).await.unwrap();
    // The saved count went with the first write: this start counts the table.
    let (tx, found, thread) = start();
    assert_eq!(found["R"].0, 8);
    drop(tx);
    stop(thread).await.unwrap();
}
