//! A half-duplex radio must not talk over a frame it is hearing: a frame queued while another
//! arrives waits until the arriving one is read (it used to cut it off with CAD's standby or its
//! own transmission — the channel_bridge flake).

use crate::common::wait_for;

use meshroom_gw::radio::{open_sim_standalone, RadioHandle, SimParams, TxPriority};
use std::time::{Duration, Instant};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};

fn params() -> SimParams {
    SimParams {
        lora: LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5),
        ..SimParams::default()
    }
}

async fn wait_receiving(r: &RadioHandle) {
    wait_for(Duration::from_secs(5), || r.state() == "receiving").await;
    assert_eq!(r.state(), "receiving");
}

#[tokio::test]
async fn a_frame_queued_while_another_arrives_waits_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio a");
    let b = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio b");
    wait_receiving(&a).await;
    wait_receiving(&b).await;
    let mut at_a = a.subscribe();
    let mut at_b = b.subscribe();

    // A long frame from a (about 0.8 s on the air)…
    let long: Vec<u8> = (0..255u32).map(|i| i as u8).collect();
    let toa = a.time_on_air(long.len());
    a.transmit(long.clone(), TxPriority::Reply).expect("queued");
    assert!(wait_for(Duration::from_secs(5), || a.state() == "transmitting").await);
    // …and b has something to say when a's frame is well under way (its preamble long
    // detected, its end far off).
    let started = Instant::now();
    while started.elapsed() < toa / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let short = b"\x11\x00b's reply".to_vec();
    b.transmit(short.clone(), TxPriority::Reply)
        .expect("queued");

    // b hears a's frame whole, then sends its own, which a (back in receive) hears.
    let got = tokio::time::timeout(Duration::from_secs(10), at_b.recv())
        .await
        .expect("b heard nothing: its own frame cut a's off")
        .expect("rx");
    assert_eq!(got.bytes, long);
    let got = tokio::time::timeout(Duration::from_secs(10), at_a.recv())
        .await
        .expect("a heard nothing from b")
        .expect("rx");
    assert_eq!(got.bytes, short);
    assert!(b.driver_stats().rx_busy >= 1, "{:?}", b.driver_stats());
    assert_eq!(
        b.driver_stats().cad_busy,
        0,
        "b never ran CAD over a's frame"
    );
}
