//! The engine on deadlines: it says when it next needs to run, and an idle room server has no
//! timer but its adverts.

use meshroom_gw::meshcore::server::engine::{Action, Engine, EngineConfig, Now, RoomSetup};
use meshroom_gw::meshcore::server::history::{PostAuthor, RoomPost};
use meshroom_gw::meshcore::wire::identity::LocalIdentity;

const T0: u32 = 1_750_000_000;

fn setup(name: &str, seed: u8) -> RoomSetup {
    RoomSetup {
        name: name.to_string(),
        identity: LocalIdentity::from_seed(&[seed; 32]),
        password: None,
        max_history: 32,
        access: Default::default(),
        clock: 0,
        clients: Vec::new(),
        history: Vec::new(),
    }
}

fn at(ms: u64) -> Now {
    Now {
        mono_ms: ms,
        unix: T0 + (ms / 1000) as u32,
    }
}

#[test]
fn an_idle_engine_sleeps_until_its_next_advert() {
    let config = EngineConfig {
        first_advert_delay_ms: 2_000,
        advert_interval_ms: 600_000,
        flood_advert_interval_ms: 0,
        // Not the early adverts of a new gateway: the regular period from the start.
        early_adverts: 0,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config, vec![setup("a", 1), setup("b", 2)], 7, at(0));
    // Two rooms, staggered: the first advert is the earliest deadline.
    assert_eq!(engine.next_deadline(), Some(2_000));
    // Nothing to do before it.
    assert!(engine.tick(at(1_000)).is_empty());
    let acts = engine.tick(at(2_000));
    assert_eq!(
        acts.iter()
            .filter(|a| matches!(a, Action::Transmit { .. }))
            .count(),
        1
    );
    assert_eq!(
        engine.next_deadline(),
        Some(2_700),
        "the second room's advert"
    );
    engine.tick(at(2_700));
    assert_eq!(
        engine.next_deadline(),
        Some(602_000),
        "then the next period"
    );
    // A post in a room nobody is logged in to creates no timer.
    engine.room_post(
        at(3_000),
        0,
        RoomPost {
            id: [1; 16],
            room_ts: T0 + 3,
            room_us: (T0 as u64 + 3) * 1_000_000,
            author: PostAuthor::Named("host".into()),
            text: "hello".into(),
        },
    );
    assert_eq!(engine.next_deadline(), Some(602_000));
}
