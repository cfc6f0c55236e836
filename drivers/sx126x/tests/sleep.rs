//! A radio that sleeps: the driver's receive wait ends on DIO1 or on a [`Wakeup`] and on nothing
//! else (no periodic wake-ups, in real and in virtual time); the air directory's receiver thread
//! blocks without a timeout and ends with its world; and a participant on the air that never
//! reads stops nobody.
//!
//! The tests take one lock so that per-thread figures read from /proc are not mixed up with
//! another test's threads.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use sx126x::emu::{AirConfig, ChipProfile, World};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};
use sx126x::{RxWait, Sx126x, Wakeup};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn usa() -> LoRaParams {
    LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5)
}

/// A real-time radio on its own world, initialised and receiving.
fn realtime_radio(seed: u64, air_dir: Option<&Path>) -> (World, EmuRadio) {
    let world = World::new_realtime(seed, AirConfig::default());
    if let Some(dir) = air_dir {
        world.join_air_dir(dir).expect("join air");
    }
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, usa()),
    );
    drv.init().expect("init");
    drv.start_receive().expect("rx");
    (world, drv)
}

/// (tid, voluntary context switches) of this process's threads called `name`.
fn threads_named(name: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push((t.file_name().to_string_lossy().into_owned(), switches));
    }
    out
}

fn own_switches() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_idle_receive_wait_sleeps_through_to_its_timeout() {
    let _serial = serial();
    let (_world, mut drv) = realtime_radio(1, None);
    let wakeup = Wakeup::new();
    let before = own_switches();
    let start = Instant::now();
    let r = drv
        .receive_or_wake(Duration::from_millis(800), &wakeup)
        .expect("wait");
    let took = start.elapsed();
    let switches = own_switches() - before;
    assert_eq!(r, RxWait::TimedOut);
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // One sleep to the timeout, plus the odd preemption; the old 20 ms polling made 40.
    assert!(
        switches <= 5,
        "{switches} context switches in an idle 800 ms wait"
    );
    assert_eq!(drv.stats().waits_timed_out, 1);
}

#[test]
fn a_wakeup_ends_the_wait_at_once_in_real_time() {
    let _serial = serial();
    let (_world, mut drv) = realtime_radio(1, None);
    let wakeup = Wakeup::new();
    let waker = wakeup.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        waker.wake();
    });
    let start = Instant::now();
    let r = drv
        .receive_or_wake(Duration::from_secs(30), &wakeup)
        .expect("wait");
    assert_eq!(r, RxWait::Woken);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(!wakeup.is_pending(), "the wait consumes the wake-up");
    t.join().expect("waker");
    // A wake-up given before the wait is not lost either.
    wakeup.wake();
    let start = Instant::now();
    let r = drv
        .receive_or_wake(Duration::from_secs(30), &wakeup)
        .expect("wait");
    assert_eq!(r, RxWait::Woken);
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(drv.stats().waits_woken, 2);
}

#[test]
fn in_virtual_time_a_wakeup_ends_the_wait_without_moving_the_clock() {
    let _serial = serial();
    let world = world();
    let (b, mut drv) = radio(&world, eu_narrow());
    let wakeup = Wakeup::new();
    wakeup.wake();
    let t0 = world.now();
    assert_eq!(
        drv.receive_or_wake(Duration::from_secs(60), &wakeup)
            .expect("wait"),
        RxWait::Woken
    );
    assert_eq!(world.now(), t0);
    // DIO1 ends it too, at the end of the frame, not at the timeout.
    world.inject_rx(b, b"frame", -80.0);
    match drv
        .receive_or_wake(Duration::from_secs(60), &wakeup)
        .expect("wait")
    {
        RxWait::Packet(p) => assert_eq!(p.data, b"frame"),
        other => panic!("expected the frame, got {other:?}"),
    }
    assert_eq!(
        world.dio1_rise_time(b) - t0,
        eu_narrow().time_on_air(5),
        "woken by DIO1 at the end of the frame"
    );
    assert!(world.now() - t0 < eu_narrow().time_on_air(5) + Duration::from_millis(1));
    // Nothing at all: the full timeout passes, once.
    let t1 = world.now();
    assert_eq!(
        drv.receive_or_wake(Duration::from_secs(60), &wakeup)
            .expect("wait"),
        RxWait::TimedOut
    );
    assert!(world.now() - t1 >= Duration::from_secs(60));
    assert_clean(&world, b);
}

#[test]
fn the_air_receiver_sleeps_while_the_air_is_quiet_and_ends_with_its_world() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let before: Vec<String> = threads_named("sim-air-rx")
        .into_iter()
        .map(|(tid, _)| tid)
        .collect();
    let world = World::new_realtime(3, AirConfig::default());
    world.join_air_dir(dir.path()).expect("join air");
    std::thread::sleep(Duration::from_millis(100));
    let mine = |list: Vec<(String, u64)>| {
        list.into_iter()
            .find(|(tid, _)| !before.contains(tid))
            .map(|(_, n)| n)
    };
    let at_start = mine(threads_named("sim-air-rx")).expect("receiver thread");
    std::thread::sleep(Duration::from_millis(1200));
    let after = mine(threads_named("sim-air-rx")).expect("receiver thread");
    // The old receiver woke every 200 ms to look for a dropped world.
    assert!(
        after - at_start <= 1,
        "{} wake-ups of an idle air receiver in 1.2 s",
        after - at_start
    );
    let sockets = || {
        std::fs::read_dir(dir.path())
            .expect("air dir")
            .flatten()
            .count()
    };
    assert_eq!(sockets(), 1);
    drop(world);
    let start = Instant::now();
    while mine(threads_named("sim-air-rx")).is_some() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        mine(threads_named("sim-air-rx")).is_none(),
        "the receiver thread outlived its world"
    );
    assert_eq!(sockets(), 0, "the socket file is removed");
}

#[test]
fn a_participant_that_never_reads_stops_nobody() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    // A program on the air that was suspended: bound, never read, its queue already full.
    let silent_path = dir.path().join("00000000deadbeef.sock");
    let silent = UnixDatagram::bind(&silent_path).expect("silent socket");
    let filler = UnixDatagram::unbound().expect("filler");
    filler.set_nonblocking(true).expect("nonblocking");
    let mut queued = 0;
    while queued < 100_000 && filler.send_to(&[0u8; 64], &silent_path).is_ok() {
        queued += 1;
    }
    assert!(
        queued > 0 && queued < 100_000,
        "queue of {queued} never filled"
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let air = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let (world_a, mut a) = realtime_radio(1, Some(&air));
        let (world_b, mut b) = realtime_radio(2, Some(&air));
        let mut heard = Vec::new();
        for i in 0..3u8 {
            let frame = vec![0xA0 + i; 12];
            a.transmit(&frame).expect("a sends");
            a.start_receive().expect("a back to rx");
            heard.push(receive_within(&mut b, Duration::from_secs(5)));
            let frame = vec![0xB0 + i; 12];
            b.transmit(&frame).expect("b sends");
            b.start_receive().expect("b back to rx");
            heard.push(receive_within(&mut a, Duration::from_secs(5)));
        }
        let _ = done_tx.send((
            heard,
            world_a.air_dropped() + world_b.air_dropped(),
            world_a.air_errors() + world_b.air_errors(),
        ));
    });
    let (heard, dropped, errors) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a radio froze: the air blocked on a participant that does not read");
    let want: Vec<Option<Vec<u8>>> = (0..3u8)
        .flat_map(|i| [Some(vec![0xA0 + i; 12]), Some(vec![0xB0 + i; 12])])
        .collect();
    assert_eq!(heard, want);
    assert!(
        dropped >= 6,
        "every frame to the silent participant is counted as lost: {dropped}"
    );
    assert_eq!(errors, 0);
    drop(silent);
}

fn receive_within(drv: &mut EmuRadio, within: Duration) -> Option<Vec<u8>> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(p) = drv.receive(Duration::from_millis(200)).expect("rx") {
            return Some(p.data);
        }
    }
    None
}
