//! Room admins and ACLs through the MeshCore side's IO shell, with a real hub (SQLite in a temp
//! dir) and a channel in place of the radio: an admin's `setperm` over the air is stored, shown
//! in /status, applied to logins, and still there after a restart (a new service on the same
//! state directory); `meshroom-gw acl`'s path (the hub's ACL) reaches the running rooms.

use std::time::{Duration, Instant};

use meshroom_gw::hub::Hub;
use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent};
use meshroom_gw::meshcore::wire::identity::LocalIdentity;
use meshroom_gw::status::StatusBoard;
use tokio::sync::watch;

use super::on_channels::{exchange, now};

const YAML: &str = r#"
server:
  name: "gw-test"
rooms:
  - name: "Public"
    admin_password: "boss-pass"
    allow_read_only: true
meshcore:
  first_advert_delay_s: 0.0
  push_min_age_s: 0.0
  push_interval_s: 0.1
  reply_delay_s: 0.0
"#;

struct Gw {
    hub: Hub,
    board: StatusBoard,
    stop: watch::Sender<bool>,
    radio: crate::common::ChannelRadio,
}

async fn start(dir: &std::path::Path) -> Gw {
    let gw = crate::common::InProcess::start_in(YAML, dir);
    let radio = gw.meshcore_on_channels().await;
    Gw {
        hub: gw.hub,
        board: gw.board,
        stop: gw.stop,
        radio,
    }
}

fn companion(seed: u8, name: &str) -> Companion {
    Companion::new(
        LocalIdentity::from_seed(&[seed; 32]),
        name,
        CompanionConfig::default(),
        seed as u64,
    )
}

fn logged_in_with(events: &[CompanionEvent]) -> Option<u8> {
    events.iter().rev().find_map(|e| match e {
        CompanionEvent::LoggedIn { permissions, .. } => Some(*permissions),
        _ => None,
    })
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setperm_over_the_air_is_stored_shown_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path()).await;
    let mut clients = vec![companion(1, "admin"), companion(2, "bob")];
    let mut events = vec![vec![], vec![]];
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        vec![],
        Duration::from_secs(5),
        |e| {
            e.iter().all(|ev| {
                ev.iter()
                    .any(|x| matches!(x, CompanionEvent::RoomDiscovered { .. }))
            })
        },
    )
    .await;
    let public = clients[0]
        .room_by_name("Public")
        .expect("Public advertised")
        .key;
    let outs = vec![
        (
            0,
            clients[0].login(now(), &public, "boss-pass", None).unwrap(),
        ),
        (1, clients[1].login(now(), &public, "", None).unwrap()),
    ];
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        outs,
        Duration::from_secs(5),
        |e| e.iter().all(|ev| logged_in_with(ev).is_some()),
    )
    .await;
    assert_eq!(logged_in_with(&events[0]), Some(3), "admin");
    assert_eq!(
        logged_in_with(&events[1]),
        Some(0),
        "a read-only guest (allow_read_only)"
    );

    // The admin makes bob a member (read-write) over the air.
    let bob = clients[1].public();
    let (_, o) = clients[0]
        .command(now(), &public, &format!("7f|setperm {} 2", bob.to_hex()))
        .unwrap();
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        vec![(0, o)],
        Duration::from_secs(5),
        |e| {
            e[0].iter()
                .any(|x| matches!(x, CompanionEvent::CliReply { .. }))
        },
    )
    .await;
    assert!(events[0].contains(&CompanionEvent::CliReply {
        room: public,
        text: "7f|OK".into()
    }));
    let hub = gw.hub.clone();
    until("the ACL entry in the store", Duration::from_secs(5), || {
        hub.acls().list("Public").unwrap() == vec![(bob.to_hex(), "read-write")]
    })
    .await;
    // /status shows bob's new role among the participants.
    let status = gw.board.status();
    let room = &status["rooms"][0];
    let shown = room["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == bob.to_hex())
        .expect("bob listed")
        .clone();
    assert_eq!(shown["role"], "read-write");

    // Restart: a new service on the same state directory.
    let _ = gw.stop.send(true);
    let _ = gw.radio.handle.task.await;
    gw.hub.close().await;
    let mut gw = start(dir.path()).await;
    let mut clients = vec![companion(2, "bob"), companion(3, "carol")];
    let mut events = vec![vec![], vec![]];
    for c in &mut clients {
        c.add_room(public, "Public", 0);
    }
    let outs = vec![
        (0, clients[0].login(now(), &public, "", None).unwrap()),
        (1, clients[1].login(now(), &public, "", None).unwrap()),
    ];
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        outs,
        Duration::from_secs(5),
        |e| e.iter().all(|ev| logged_in_with(ev).is_some()),
    )
    .await;
    assert_eq!(
        logged_in_with(&events[0]),
        Some(2),
        "bob is still a member after the restart"
    );
    assert_eq!(logged_in_with(&events[1]), Some(0), "carol is a guest");

    // `meshroom-gw acl Public remove …` goes through the hub: the running room follows.
    gw.hub
        .acls()
        .set("Public", &bob.to_hex(), None)
        .await
        .unwrap();
    gw.hub
        .acls()
        .set("Public", &clients[1].public().to_hex(), Some("read-write"))
        .await
        .unwrap();
    until(
        "carol's role in the participants",
        Duration::from_secs(5),
        || {
            gw.hub.participants().list("Public").iter().any(|p| {
                p.id == clients[1].public().to_hex() && p.role.as_deref() == Some("read-write")
            })
        },
    )
    .await;
    let (ts, o) = clients[1].post(now(), &public, "now I may post").unwrap();
    exchange(
        &mut gw.radio,
        &mut clients,
        &mut events,
        vec![(1, o)],
        Duration::from_secs(10),
        |e| {
            e[1].iter()
                .any(|x| matches!(x, CompanionEvent::PostAcked { .. }))
        },
    )
    .await;
    assert!(events[1].contains(&CompanionEvent::PostAcked {
        room: public,
        timestamp: ts
    }));
    let _ = gw.stop.send(true);
    let _ = gw.radio.handle.task.await;
    gw.hub.close().await;
}
