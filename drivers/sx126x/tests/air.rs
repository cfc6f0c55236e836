//! The simulated air: delivery after the exact time on air, half duplex, collisions and capture,
//! channel separation, and a frame crossing between two processes.

mod common;

use common::*;
use std::time::{Duration, Instant};
use sx126x::emu::{AirConfig, ChipProfile, World};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};
use sx126x::Sx126x;

#[test]
fn a_frame_arrives_exactly_one_time_on_air_after_it_starts() {
    let world = world();
    let (a, mut tx) = radio(&world, eu_narrow());
    let (b, mut rx) = radio(&world, eu_narrow());
    for len in [1usize, 10, 100, 255] {
        let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
        tx.transmit(&frame).expect("tx");
        let p = rx
            .receive(Duration::from_secs(5))
            .expect("rx")
            .expect("frame");
        assert_eq!(p.data, frame);
        let sent = world.tx_log().last().cloned().expect("logged");
        assert_eq!(sent.chip, Some(a));
        assert_eq!(sent.time_on_air, eu_narrow().time_on_air(len));
        assert_eq!(
            world.dio1_rise_time(b) - sent.t0,
            sent.time_on_air,
            "{len} B"
        );
        tx.start_receive().expect("rx again");
    }
}

#[test]
fn a_transmitting_radio_hears_nothing() {
    let world = world();
    let (a, mut ra) = radio(&world, eu_narrow());
    let (b, mut rb) = radio(&world, eu_narrow());
    // A sends a long frame; B starts its own short frame while A's is on air.
    let long = ra.start_transmit(&[0xAA; 200]).expect("tx a");
    world.advance(Duration::from_millis(5));
    rb.transmit(b"short").expect("tx b");
    rb.start_receive().expect("b back to rx");
    ra.finish_transmit(long).expect("tx a done");
    ra.start_receive().expect("a back to rx");
    assert!(
        ra.receive(Duration::from_secs(3)).expect("rx").is_none(),
        "A was transmitting"
    );
    assert!(
        rb.receive(Duration::from_secs(3)).expect("rx").is_none(),
        "B missed A's preamble while sending"
    );
    assert_eq!(world.counters(a).rx_done + world.counters(b).rx_done, 0);
}

fn collision(weaker_by_db: f32) -> (Option<Vec<u8>>, u64) {
    let world = world();
    let (a, mut ra) = radio(&world, eu_narrow());
    let (b, mut rb) = radio(&world, eu_narrow());
    let (c, mut rc) = radio(&world, eu_narrow());
    world.set_link_loss(a, c, 100.0);
    world.set_link_loss(b, c, 100.0 + weaker_by_db);
    let pa = ra.start_transmit(b"from A, the stronger one").expect("a");
    let pb = rb.start_transmit(b"from B").expect("b");
    ra.finish_transmit(pa).expect("a done");
    rb.finish_transmit(pb).expect("b done");
    let got = rc
        .receive(Duration::from_secs(3))
        .expect("rx")
        .map(|p| p.data);
    let errors = rc.stats().header_errors + rc.stats().crc_errors;
    (got, errors)
}

#[test]
fn equal_power_collision_loses_both_frames() {
    let (got, errors) = collision(0.0);
    assert_eq!(got, None);
    assert_eq!(errors, 1, "the locked frame fails its header");
}

#[test]
fn a_much_stronger_frame_captures_the_receiver() {
    let (got, errors) = collision(10.0);
    assert_eq!(got.as_deref(), Some(&b"from A, the stronger one"[..]));
    assert_eq!(errors, 0);
}

#[test]
fn radios_on_other_channels_or_spreading_factors_hear_nothing() {
    let world = world();
    let (_, mut tx) = radio(&world, eu_narrow());
    let (_, mut same) = radio(&world, eu_narrow());
    let mut other_freq = eu_narrow();
    other_freq.frequency_hz = 869_525_000;
    let (_, mut off_channel) = radio(&world, other_freq);
    let (_, mut other_sf) = radio(
        &world,
        LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 9, CodingRate::Cr4_8),
    );
    let (_, mut other_bw) = radio(
        &world,
        LoRaParams::meshcore(869_618_000, Bandwidth::Khz125, 8, CodingRate::Cr4_8),
    );
    tx.transmit(b"only for SF8 at 869.618").expect("tx");
    assert!(same.receive(Duration::from_secs(2)).expect("rx").is_some());
    for r in [&mut off_channel, &mut other_sf, &mut other_bw] {
        assert!(r.receive(Duration::from_secs(2)).expect("rx").is_none());
        assert_eq!(r.stats().header_errors + r.stats().crc_errors, 0);
    }
}

#[test]
fn a_different_coding_rate_is_still_received_because_it_travels_in_the_header() {
    let world = world();
    let (_, mut tx) = radio(
        &world,
        LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 8, CodingRate::Cr4_5),
    );
    let (_, mut rx) = radio(&world, eu_narrow());
    tx.transmit(b"cr 4/5").expect("tx");
    assert_eq!(
        rx.receive(Duration::from_secs(2))
            .expect("rx")
            .expect("frame")
            .data,
        b"cr 4/5"
    );
}

#[test]
fn configurable_loss_drops_frames() {
    let world = World::new_virtual(
        7,
        AirConfig {
            drop_probability: 1.0,
            ..AirConfig::default()
        },
    );
    let (_, mut tx) = radio(&world, eu_narrow());
    let (_, mut rx) = radio(&world, eu_narrow());
    tx.transmit(b"lost").expect("tx");
    assert!(rx.receive(Duration::from_secs(2)).expect("rx").is_none());
}

const CHILD_ENV: &str = "SX126X_AIR_CHILD_DIR";

fn usa() -> LoRaParams {
    LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5)
}

/// Runs only as the child process of `a_frame_crosses_between_two_processes`.
#[test]
fn cross_process_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let world = World::new_realtime(99, AirConfig::default());
    world
        .join_air_dir(std::path::Path::new(&dir))
        .expect("join air");
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, usa()),
    );
    drv.init().expect("init");
    drv.transmit(b"hello from another process").expect("tx");
}

#[test]
fn a_frame_crosses_between_two_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::new_realtime(1, AirConfig::default());
    world.join_air_dir(dir.path()).expect("join air");
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut rx = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, usa()),
    );
    rx.init().expect("init");
    rx.start_receive().expect("rx");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "cross_process_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .spawn()
        .expect("spawn child");
    let start = Instant::now();
    let mut got = None;
    while start.elapsed() < Duration::from_secs(20) && got.is_none() {
        got = rx.receive(Duration::from_millis(100)).expect("rx");
    }
    let status = child.wait().expect("child");
    assert!(status.success(), "child failed");
    let p = got.expect("frame from the other process");
    assert_eq!(p.data, b"hello from another process");
    assert!(
        p.rssi_dbm < -70.0 && p.rssi_dbm > -85.0,
        "default 100 dB loss from 22 dBm: {}",
        p.rssi_dbm
    );
    assert_eq!(world.air_errors(), 0);
}

#[test]
fn the_soft_threshold_makes_reception_near_the_floor_probabilistic() {
    let world = World::new_virtual(
        21,
        AirConfig {
            soft_threshold: true,
            ..AirConfig::default()
        },
    );
    let (a, mut tx) = radio(&world, eu_narrow());
    let (b, mut rx) = radio(&world, eu_narrow());
    // 22 dBm − 152 dB = −130 dBm, 10 dB below the −120 dBm noise floor: SNRmin at SF8.
    world.set_link_loss(a, b, 152.0);
    let mut got = 0;
    for _ in 0..200 {
        tx.transmit(&[0x33; 16]).expect("tx");
        tx.start_receive().expect("rx");
        if rx.receive(Duration::from_secs(2)).expect("rx").is_some() {
            got += 1;
        }
    }
    assert!(
        (60..=140).contains(&got),
        "about half should arrive: {got}/200"
    );
    // Well above the floor nothing is lost.
    world.set_link_loss(a, b, 140.0);
    for _ in 0..50 {
        tx.transmit(&[0x44; 16]).expect("tx");
        tx.start_receive().expect("rx");
        assert!(rx.receive(Duration::from_secs(2)).expect("rx").is_some());
    }
}

#[test]
fn measurement_noise_spreads_the_reported_rssi() {
    let world = World::new_virtual(
        22,
        AirConfig {
            rssi_sigma_db: 1.0,
            snr_sigma_db: 0.5,
            ..AirConfig::default()
        },
    );
    let (a, mut tx) = radio(&world, eu_narrow());
    let (b, mut rx) = radio(&world, eu_narrow());
    world.set_link_loss(a, b, 110.0);
    let mut rssi = Vec::new();
    for _ in 0..100 {
        tx.transmit(&[0x55; 8]).expect("tx");
        tx.start_receive().expect("rx");
        rssi.push(
            rx.receive(Duration::from_secs(2))
                .expect("rx")
                .expect("frame")
                .rssi_dbm,
        );
    }
    let mean = rssi.iter().sum::<f32>() / rssi.len() as f32;
    let spread = rssi.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / rssi.len() as f32;
    assert!((mean - -88.0).abs() < 0.5, "mean {mean}");
    assert!(
        spread.sqrt() > 0.5 && spread.sqrt() < 1.6,
        "σ {}",
        spread.sqrt()
    );
}

/// Any program may join the air directory with a node id of its choosing. One that picked 0 — the
/// id of frames injected by tests, which reach every chip with no path loss — used to arrive 100 dB
/// too strong: a burst of its long SF12 / 7.8 kHz frames drowned everything else on the channel
/// for their whole airtime (≈ 57 s per 50-byte frame).
#[test]
fn a_radio_with_node_id_zero_on_the_air_directory_gets_the_normal_path_loss() {
    use sx126x::emu::wire::{self, AirMessage};
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway = World::new_realtime(31, AirConfig::default());
    gateway.join_air_dir(dir.path()).expect("join air");
    let g = gateway.add_chip(ChipProfile::sx1262());
    let settings = sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, usa());
    let mut rx = Sx126x::new(gateway.spi(g), gateway.lines(g), settings.clone());
    rx.init().expect("init");
    rx.start_receive().expect("rx");
    let client = World::new_realtime(32, AirConfig::default());
    client.join_air_dir(dir.path()).expect("join air");
    let c = client.add_chip(ChipProfile::sx1262());
    let mut tx = Sx126x::new(client.spi(c), client.lines(c), settings);
    tx.init().expect("init");
    // The other radio: a 19 s SF12 / 7.8 kHz frame on the same frequency, sender id 0.
    let slow = LoRaParams::meshcore(usa().frequency_hz, Bandwidth::Khz7_8, 12, CodingRate::Cr4_8);
    let start = wire::encode(&AirMessage::Start {
        sender: 0,
        tx_id: 1,
        params: LoRaParams {
            power_dbm: 0,
            ..slow
        },
        ldro: slow.ldro(),
        power_dbm: 22.0,
        time_on_air: slow.time_on_air(1),
        payload: vec![0x42],
    });
    let raw = std::os::unix::net::UnixDatagram::unbound().expect("socket");
    for e in std::fs::read_dir(dir.path()).expect("air dir").flatten() {
        raw.send_to(&start, e.path()).expect("send");
    }
    std::thread::sleep(Duration::from_millis(50));
    tx.transmit(b"while the slow frame is on air").expect("tx");
    let start = Instant::now();
    let mut got = None;
    while got.is_none() && start.elapsed() < Duration::from_secs(3) {
        got = rx.receive(Duration::from_millis(100)).expect("rx");
    }
    assert_eq!(
        got.map(|p| p.data).as_deref(),
        Some(&b"while the slow frame is on air"[..]),
        "an SF12 / 7.8 kHz frame at the same power does not drown SF7 / 62.5 kHz (stats {:?})",
        rx.stats()
    );
}

/// The air forgets finished transmissions after a while; a frame still being received must
/// still see every transmission that overlapped it, even when it lasts minutes (SF12 / 7.8 kHz).
#[test]
fn a_collision_early_in_a_minutes_long_frame_is_remembered_at_its_end() {
    let world = world();
    let slow = LoRaParams::meshcore(869_618_000, Bandwidth::Khz7_8, 12, CodingRate::Cr4_8);
    let (_, mut long_tx) = radio(&world, slow);
    let (g, mut rx) = radio(&world, slow);
    let (_, mut short_tx) = radio(&world, slow);
    let mut elsewhere = slow;
    elsewhere.frequency_hz = 869_400_000;
    let (_, mut other_channel) = radio(&world, elsewhere);
    // 200 bytes: 183 s on air.
    let long = long_tx.start_transmit(&[0x11; 200]).expect("long");
    assert!(long.toa > Duration::from_secs(180));
    // A frame of equal power on the same channel during the long frame's payload …
    world.advance(Duration::from_secs(20));
    short_tx.transmit(&[0x22; 1]).expect("short");
    // … and, more than a minute after it ended, traffic on another channel.
    world.advance(Duration::from_secs(80));
    other_channel.transmit(&[0x33; 1]).expect("elsewhere");
    long_tx.finish_transmit(long).expect("long done");
    let mut got = None;
    for _ in 0..5 {
        if let Some(p) = rx.receive(Duration::from_secs(60)).expect("rx") {
            got = Some(p.data);
        }
    }
    assert_eq!(got, None, "the long frame collided and must fail");
    assert_eq!(rx.stats().crc_errors, 1, "{:?}", rx.stats());
    assert_clean(&world, g);
}
