//! B is SIGKILLed in the middle of a stream of posts from A and restarted: C (behind B) ends
//! with every post A made, each exactly once — nothing lost in B's crash, nothing doubled by
//! the catch-up after it.

use std::time::Duration;

use crate::federation_support::*;

#[test]
fn relay_killed_mid_stream_loses_and_doubles_nothing() {
    let (a, b, c) = (Plan::new("alpha"), Plan::new("bravo"), Plan::new("charlie"));
    let (ab, bc) = ("kill-ab-secret", "kill-bc-secret");
    let rooms = "  - name: \"Public\"\n    max_history: 5000\n";
    let ga = a.start(&config(rooms, &[peer(b.port, ab)]));
    let mut gb = b.start(&config(rooms, &[peer(a.port, ab), peer(c.port, bc)]));
    let gc = c.start(&config(rooms, &[peer(b.port, bc)]));
    assert!(wait_until(SETTLE, || connected(&ga, b.port) && connected(&gc, b.port)));

    const TOTAL: usize = 300;
    let mut ids = Vec::with_capacity(TOTAL);
    for i in 0..TOTAL {
        ids.push(ga.post("Public", "ana", &format!("stream post {i}")));
        if i == 100 {
            // Mid-stream, with posts in flight between A, B and C.
            gb.kill9();
        }
        if i == 200 {
            gb.spawn();
        }
    }
    assert!(
        wait_until(Duration::from_secs(60), || id_counts(&gc, "Public", None)
            .len()
            >= TOTAL),
        "charlie has {} of {TOTAL}:\n{}",
        id_counts(&gc, "Public", None).len(),
        gb.log()
    );
    // Anything doubled by the catch-up would have arrived before the flush markers.
    let marks = flush_links(&[&ga, &gb, &gc], "Public", None);
    let counts = id_counts_without(&gc, "Public", None, &marks);
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "charlie has {id} exactly once");
    }
    assert_eq!(counts.len(), TOTAL);
    // Charlie has them in A's order: catch-up is oldest first and each hop hands posts to its
    // store in arrival order, so a crash and restart in the middle do not scramble the room.
    let order: Vec<usize> = texts(&gc, "Public", None)
        .iter()
        .filter_map(|t| t.strip_prefix("stream post ")?.parse().ok())
        .collect();
    if let Some(i) = order.windows(2).position(|w| w[0] > w[1]) {
        panic!(
            "charlie's order breaks at {i}: {:?}",
            &order[i.saturating_sub(3)..(i + 4).min(order.len())]
        );
    }
    let at_b = id_counts_without(&gb, "Public", None, &marks);
    assert!(ids.iter().all(|id| at_b.get(id) == Some(&1)));
}
