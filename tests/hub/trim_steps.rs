//! History is trimmed in steps: a room may run up to a 16th (at most 63 posts) over its
//! `max_history` and is then cut back to it in one statement; the trimmed ids stay duplicates;
//! a reload that shrinks a room trims it exactly, at once.

use meshroom_gw::config::RoomConfig;
use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, PostId, Submitted, Via};
use meshroom_gw::store::writer::{system_clock, trim_slack};

fn room(name: &str, max_history: u32) -> RoomConfig {
    RoomConfig {
        name: name.into(),
        max_history,
        ..RoomConfig::default()
    }
}

fn post(id: PostId, text: &str) -> NewPost {
    NewPost {
        id: Some(id),
        room: "R".into(),
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

#[test]
fn the_slack_is_a_sixteenth_capped_at_63_and_none_for_small_rooms() {
    assert_eq!(trim_slack(3), 0);
    assert_eq!(trim_slack(15), 0);
    assert_eq!(trim_slack(160), 10);
    assert_eq!(trim_slack(1000), 62);
    assert_eq!(trim_slack(1_000_000), 63);
}

#[tokio::test]
async fn a_room_trims_in_steps_and_never_holds_more_than_its_slack_over() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 160u64;
    let hub = Hub::open("A", dir.path(), &[room("R", limit as u32)], system_clock()).unwrap();
    let ids: Vec<PostId> = (0..400).map(|_| PostId::fresh()).collect();
    let mut most = 0u64;
    for (i, id) in ids.iter().enumerate() {
        let accepted = hub.submit(post(*id, &format!("p{i}"))).await.unwrap();
        assert!(matches!(accepted, Submitted::Accepted(_)));
        let held = hub.recent("R", 10_000).await.unwrap().len() as u64;
        assert_eq!(
            held,
            hub.tallies().get("R").history,
            "the tally counts what is held"
        );
        assert!(
            held <= limit + trim_slack(limit),
            "{held} posts held after {i}"
        );
        most = most.max(held);
    }
    assert_eq!(most, limit + trim_slack(limit), "the room ran a step over");
    // What is held is the newest posts, in order, and every trimmed id is still a duplicate.
    let held = hub.recent("R", 10_000).await.unwrap();
    let first = ids.len() - held.len();
    assert_eq!(
        held.iter().map(|p| p.id).collect::<Vec<_>>(),
        ids[first..].to_vec()
    );
    for id in &ids[..first] {
        assert!(matches!(
            hub.submit(post(*id, "again")).await.unwrap(),
            Submitted::Duplicate(_)
        ));
    }
    // A reload that shrinks the room trims it to the new depth exactly, before it returns
    // to the caller's next read.
    hub.reload_rooms(&[room("R", 100)]).await;
    hub.flush().await;
    assert_eq!(hub.recent("R", 10_000).await.unwrap().len(), 100);
    hub.submit(post(PostId::fresh(), "after the reload"))
        .await
        .unwrap();
    assert_eq!(hub.tallies().get("R").history, 101);
    hub.close().await;
}
