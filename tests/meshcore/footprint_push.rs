//! The bounded push window with a real hub and the MeshCore side over channels: a client far
//! behind is served from the store in order with no gap, and a client logged in through a
//! burst receives every post although many share a second.

use std::time::{Duration, Instant};

use meshroom_gw::hub::{Author, AuthorKind, Hub, NewPost, Via};
use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, CompanionEvent, Output};
use meshroom_gw::meshcore::server::engine::{Now, Priority};
use meshroom_gw::meshcore::service::Received;
use meshroom_gw::meshcore::wire::identity::{LocalIdentity, PublicKey};
use tokio::sync::{mpsc, watch};

const YAML: &str = r#"
server:
  name: "gw-test"
rooms:
  - name: "Public"
    max_history: 10000
meshcore:
  first_advert_delay_s: 0.0
  push_min_age_s: 0.0
  push_interval_s: 0.001
  reply_delay_s: 0.0
"#;

struct Gw {
    hub: Hub,
    _stop: watch::Sender<bool>,
    to_gw: mpsc::Sender<Received>,
    from_gw: mpsc::UnboundedReceiver<(Vec<u8>, Priority)>,
}

async fn start(dir: &std::path::Path) -> Gw {
    let gw = crate::common::InProcess::start_in(YAML, dir);
    let radio = gw.meshcore_on_channels().await;
    Gw {
        hub: gw.hub,
        _stop: gw.stop,
        to_gw: radio.to_gw,
        from_gw: radio.from_gw,
    }
}

fn now() -> Now {
    Now {
        mono_ms: START.with(|s| s.elapsed().as_millis() as u64),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32,
    }
}

thread_local! {
    static START: Instant = Instant::now();
}

/// Runs the air between the gateway and one companion until `done` or the timeout.
async fn exchange(
    gw: &mut Gw,
    client: &mut Companion,
    events: &mut Vec<CompanionEvent>,
    outs: Vec<Output>,
    timeout: Duration,
    done: impl Fn(&[CompanionEvent]) -> bool,
) {
    let mut pending = outs;
    let deadline = Instant::now() + timeout;
    loop {
        for o in pending.drain(..) {
            match o {
                Output::Transmit(f) => {
                    let _ = gw
                        .to_gw
                        .send(Received {
                            bytes: f,
                            rssi_dbm: -70,
                            snr_db: 8.0,
                            at: Instant::now(),
                        })
                        .await;
                }
                Output::Event(e) => events.push(e),
            }
        }
        if done(events) || Instant::now() > deadline {
            return;
        }
        match tokio::time::timeout(Duration::from_millis(50), gw.from_gw.recv()).await {
            Ok(Some((frame, _))) => pending = client.handle_frame(now(), &frame),
            Ok(None) => return,
            Err(_) => pending = client.tick(now()),
        }
    }
}

fn host_post(text: String) -> NewPost {
    NewPost {
        id: None,
        room: "Public".into(),
        author: Author {
            kind: AuthorKind::Local,
            id: "cli".into(),
            name: Some("carol".into()),
        },
        origin: None,
        author_ts: 0,
        text,
        hops: 0,
        via: Via::side(AuthorKind::Local),
    }
}

fn pushed(events: &[CompanionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            CompanionEvent::Pushed { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

async fn discover(gw: &mut Gw, client: &mut Companion) -> PublicKey {
    let mut events = vec![];
    exchange(
        gw,
        client,
        &mut events,
        vec![],
        Duration::from_secs(10),
        |e| {
            e.iter()
                .any(|x| matches!(x, CompanionEvent::RoomDiscovered { .. }))
        },
    )
    .await;
    client
        .room_by_name("Public")
        .expect("Public advertised")
        .key
}

async fn login(gw: &mut Gw, client: &mut Companion, room: &PublicKey, sync_since: Option<u32>) {
    let mut events = vec![];
    let outs = client.login(now(), room, "", sync_since).unwrap();
    exchange(
        gw,
        client,
        &mut events,
        outs,
        Duration::from_secs(10),
        |e| {
            e.iter()
                .any(|x| matches!(x, CompanionEvent::LoggedIn { .. }))
        },
    )
    .await;
    assert!(
        events
            .iter()
            .any(|x| matches!(x, CompanionEvent::LoggedIn { .. })),
        "login failed: {events:?}"
    );
}

fn companion() -> Companion {
    Companion::new(
        LocalIdentity::from_seed(&[7; 32]),
        "alice",
        CompanionConfig::default(),
        7,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_5000_posts_behind_receives_all_of_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path()).await;
    let mut client = companion();
    let room = discover(&mut gw, &mut client).await;
    // The client was away while 5,000 posts were made (far more than the RAM window).
    for i in 0..5000 {
        gw.hub.submit(host_post(format!("p{i}"))).await.unwrap();
    }
    login(&mut gw, &mut client, &room, Some(0)).await;
    let mut events = vec![];
    exchange(
        &mut gw,
        &mut client,
        &mut events,
        vec![],
        Duration::from_secs(600),
        |e| pushed(e).len() >= 5000,
    )
    .await;
    let got = pushed(&events);
    let want: Vec<String> = (0..5000).map(|i| format!("carol: p{i}")).collect();
    assert_eq!(got.len(), 5000, "received {} of 5000", got.len());
    assert!(got == want, "out of order or with a gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_logged_in_through_a_2000_post_burst_receives_every_post() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = start(dir.path()).await;
    let mut client = companion();
    let room = discover(&mut gw, &mut client).await;
    login(&mut gw, &mut client, &room, None).await;
    // A burst as a federation catch-up brings it: all submitted at once.
    let hub = gw.hub.clone();
    let burst = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for i in 0..2000 {
            let hub = hub.clone();
            tasks.push(tokio::spawn(async move {
                hub.submit(host_post(format!("b{i}"))).await.unwrap()
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut events = vec![];
    exchange(
        &mut gw,
        &mut client,
        &mut events,
        vec![],
        Duration::from_secs(600),
        |e| pushed(e).len() >= 2000,
    )
    .await;
    burst.await.unwrap();
    let stored = gw.hub.recent("Public", 5000).await.unwrap();
    assert_eq!(stored.len(), 2000);
    let newest = stored.last().unwrap().room_ts;
    assert!(
        newest <= gw.hub.now() + 60,
        "room time ran {} s ahead",
        newest.saturating_sub(gw.hub.now())
    );
    let seconds: std::collections::HashSet<u64> = stored.iter().map(|p| p.room_ts).collect();
    assert!(seconds.len() < 2000, "posts of the burst share seconds");
    // In room order, every post, none twice.
    let want: Vec<String> = stored
        .iter()
        .map(|p| format!("carol: {}", p.text))
        .collect();
    let got = pushed(&events);
    assert_eq!(got.len(), 2000, "received {} of 2000", got.len());
    assert!(got == want, "out of order, missing or repeated");
}
