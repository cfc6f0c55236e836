//! The MeshCore side's IO shell with a real hub (SQLite in a temp dir) and a channel in place
//! of the radio: radio posts are committed before their ACK, host posts reach radio clients
//! with their author shown, and a restart keeps identities, history, clocks and sync state.

use std::time::Duration;

use meshroom_gw::hub::{Author, AuthorKind, NewPost, Via};
use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent};
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::meshcore::wire::packet::{PacketRepr, PayloadType};
use meshroom_gw::meshcore::wire::payload::Payload;

use super::on_channels::{exchange, now};
use crate::common::{ChannelRadio, InProcess};

const YAML: &str = r#"
server:
  name: "gw-test"
rooms:
  - name: "Public"
  - name: "Club"
    psk: "club-secret"
meshcore:
  first_advert_delay_s: 0.0
  push_min_age_s: 0.0
  push_interval_s: 0.1
  reply_delay_s: 0.0
"#;

/// The testkit's in-process gateway with its MeshCore side on channels.
struct Gw {
    gw: InProcess,
    radio: ChannelRadio,
}

async fn start(dir: &std::path::Path) -> Gw {
    let gw = InProcess::start_in(YAML, dir);
    let radio = gw.meshcore_on_channels().await;
    Gw { gw, radio }
}

fn companion(seed: u8, name: &str) -> Companion {
    Companion::new(
        LocalIdentity::from_seed(&[seed; 32]),
        name,
        CompanionConfig::default(),
        seed as u64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radio_posts_are_committed_then_acked_and_host_posts_are_pushed_with_their_author() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path()).await;
    let mut clients = vec![companion(1, "alice"), companion(2, "bob")];
    let mut events = vec![vec![], vec![]];
    // Rooms advert at start; both companions learn them.
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        vec![],
        Duration::from_secs(5),
        |e| {
            e[0].iter()
                .filter(|x| matches!(x, CompanionEvent::RoomDiscovered { .. }))
                .count()
                == 2
        },
    )
    .await;
    let public = clients[0]
        .room_by_name("Public")
        .expect("Public advertised")
        .key;
    let club = clients[0]
        .room_by_name("Club")
        .expect("Club advertised")
        .key;
    assert_ne!(public.hash_byte(), club.hash_byte());
    let outs = vec![
        (0, clients[0].login(now(), &public, "", None).unwrap()),
        (1, clients[1].login(now(), &public, "x", None).unwrap()),
    ];
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        outs,
        Duration::from_secs(5),
        |e| {
            e.iter().all(|ev| {
                ev.iter()
                    .any(|x| matches!(x, CompanionEvent::LoggedIn { .. }))
            })
        },
    )
    .await;
    assert_eq!(gw.gw.hub.participants().counts("Public").radio, 2);

    let (ts, o) = clients[0].post(now(), &public, "over the air").unwrap();
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        vec![(0, o)],
        Duration::from_secs(10),
        |e| {
            e[0].iter()
                .any(|x| matches!(x, CompanionEvent::PostAcked { .. }))
                && e[1]
                    .iter()
                    .any(|x| matches!(x, CompanionEvent::Pushed { .. }))
        },
    )
    .await;
    assert!(events[0].contains(&CompanionEvent::PostAcked {
        room: public,
        timestamp: ts
    }));
    let stored = gw.gw.hub.recent("Public", 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].author.kind, AuthorKind::Radio);
    assert_eq!(stored[0].author.id, clients[0].public().to_hex());
    assert_eq!(stored[0].author_ts, ts as u64);

    // A post made on the host side.
    gw.gw
        .hub
        .submit(NewPost {
            id: None,
            room: "Public".into(),
            author: Author {
                kind: AuthorKind::Local,
                id: "cli".into(),
                name: Some("carol".into()),
            },
            origin: None,
            author_ts: 0,
            text: "from the host".into(),
            hops: 0,
            via: Via::side(AuthorKind::Local),
        })
        .await
        .unwrap();
    exchange(&mut gw.radio, &mut clients, &mut events, vec![], Duration::from_secs(10), |e| {
        e.iter().all(|ev| ev.iter().any(|x| matches!(x, CompanionEvent::Pushed { text, .. } if text == "carol: from the host")))
    })
    .await;
    for ev in &events {
        assert!(ev.iter().any(
            |x| matches!(x, CompanionEvent::Pushed { text, .. } if text == "carol: from the host")
        ));
    }
    let status = gw.gw.board.status();
    let mc = &status["meshcore"];
    assert_eq!(mc["counters"]["login_ok"], 2);
    assert_eq!(mc["counters"]["posts_acked"], 1);
    assert_eq!(mc["rooms"]["Public"]["clients"], 2);
    assert!(mc["post_to_ack_ms"]["p50"].as_f64().is_some());

    // Restart: same identity, advert clock still rising, clients remembered.
    let advert_ts = |frames: &[Vec<u8>]| {
        frames
            .iter()
            .filter_map(|f| PacketRepr::from_bytes(f).ok())
            .filter(|p| p.payload_type == PayloadType::Advert)
            .filter_map(|p| match Payload::parse(p.payload_type, &p.payload) {
                Ok(Payload::Advert(a)) => Some((a.public_key, a.timestamp)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let _ = gw.gw.stop.send(true);
    let _ = gw.radio.handle.task.await;
    gw.gw.hub.flush().await;
    let clock_before = gw
        .gw
        .hub
        .state()
        .get("meshcore.clock", "Public")
        .unwrap()
        .unwrap();
    // The writer thread has let go of the database when `close` returns.
    gw.gw.shutdown().await;
    let mut gw = start(dir.path()).await;
    let mut fresh = vec![companion(3, "carol")];
    let mut ev3 = vec![vec![]];
    let frames = exchange(
        &mut gw.radio,
        &mut fresh,
        &mut ev3,
        vec![],
        Duration::from_secs(5),
        |e| {
            e[0].iter()
                .filter(|x| matches!(x, CompanionEvent::RoomDiscovered { .. }))
                .count()
                == 2
        },
    )
    .await;
    let adverts = advert_ts(&frames);
    let (_, ts_after) = adverts
        .iter()
        .find(|(k, _)| *k == public)
        .expect("same Public key after restart");
    assert!(*ts_after > u32::from_le_bytes(clock_before.try_into().unwrap()));
    assert_eq!(
        gw.gw.board.status()["meshcore"]["rooms"]["Public"]["clients"],
        2
    );
    assert_eq!(gw.gw.hub.recent("Public", 10).await.unwrap().len(), 2);
    gw.gw.shutdown().await;
}
