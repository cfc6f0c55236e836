//! The gateway's radio thread sleeps: an idle radio wakes only for its health check, a frame
//! queued to send wakes it at once (it starts after its random backoff, not after the next poll),
//! and stopping the radio ends its sleep at once.
//!
//! The tests take one lock so that the per-thread figures read from /proc belong to the radio
//! thread of the test that reads them.

use meshroom_gw::radio::sim::{resolved_for, SimRadio};
use meshroom_gw::radio::{SimParams, TxPriority};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use sx126x::emu::{AirConfig, World};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Voluntary context switches of this process's `radio-sim` threads, by thread id.
fn radio_threads() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != "radio-sim" {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let n = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.push((t.file_name().to_string_lossy().into_owned(), n));
    }
    out
}

/// A simulated radio on a world of its own (no air directory), receiving; and its thread id.
fn idle_radio() -> (SimRadio, Option<String>) {
    let before: Vec<String> = radio_threads().into_iter().map(|(t, _)| t).collect();
    let params = SimParams {
        lora: LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5),
        listen_before_talk: false,
        ..SimParams::default()
    };
    let r = resolved_for(Path::new("/nonexistent/air"), &params);
    let world = World::new_realtime(5, AirConfig::default());
    let radio = SimRadio::on_world(world, &r, true).expect("radio");
    let start = Instant::now();
    while radio.handle.state() != "receiving" && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(radio.handle.state(), "receiving");
    let tid = radio_threads()
        .into_iter()
        .map(|(t, _)| t)
        .find(|t| !before.contains(t));
    (radio, tid)
}

fn switches(tid: &Option<String>) -> u64 {
    radio_threads()
        .into_iter()
        .find(|(t, _)| Some(t) == tid.as_ref())
        .map_or(0, |(_, n)| n)
}

fn waits(radio: &SimRadio) -> u64 {
    let s = radio.handle.driver_stats();
    s.waits_dio1 + s.waits_woken + s.waits_timed_out
}

#[test]
fn an_idle_radio_thread_sleeps_until_its_health_check() {
    let _serial = serial();
    let (radio, tid) = idle_radio();
    std::thread::sleep(Duration::from_millis(200));
    let (w0, s0) = (waits(&radio), switches(&tid));
    std::thread::sleep(Duration::from_secs(2));
    let (w1, s1) = (waits(&radio), switches(&tid));
    // The old thread looked at the queue every 20 ms: 100 wake-ups in 2 s.
    assert!(
        w1 - w0 <= 1,
        "{} receive waits ended in 2 s of idle",
        w1 - w0
    );
    assert!(tid.is_some(), "radio thread not found");
    assert!(
        s1 - s0 <= 4,
        "{} context switches of the idle radio thread in 2 s",
        s1 - s0
    );
}

#[test]
fn a_queued_frame_wakes_the_radio_thread_at_once() {
    let _serial = serial();
    let (radio, _) = idle_radio();
    let n = 20;
    let mut latencies = Vec::new();
    for i in 0..n {
        // Let the thread settle into its idle sleep.
        std::thread::sleep(Duration::from_millis(30));
        let sent_before = radio.world.tx_log().len();
        let queued_at = radio.world.now();
        radio
            .handle
            .transmit(vec![i as u8; 10], TxPriority::Reply)
            .expect("queued");
        let start = Instant::now();
        let record = loop {
            if let Some(r) = radio.world.tx_log().get(sent_before).cloned() {
                break r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "frame {i} never sent"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        latencies.push(record.t0.saturating_sub(queued_at));
        // Wait for the end of the frame before queueing the next.
        std::thread::sleep(record.time_on_air);
    }
    let max = latencies.iter().max().copied().unwrap_or_default();
    let mean = latencies.iter().sum::<Duration>() / n;
    println!("queued → on air: mean {mean:?}, max {max:?} (random backoff 0–50 ms included)");
    // A reply waits for its random backoff (≤ 50 ms) and no longer; the old thread added up to
    // 20 ms until its next look at the queue. Slack for a loaded machine.
    assert!(max < Duration::from_millis(50 + 15), "{latencies:?}");
    assert!(
        radio.handle.driver_stats().waits_woken >= u64::from(n),
        "every frame woke the thread: {:?}",
        radio.handle.driver_stats()
    );
}

#[test]
fn stopping_ends_the_radio_threads_sleep_at_once() {
    let _serial = serial();
    let (radio, _) = idle_radio();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    radio.handle.stop();
    while radio.handle.state() != "stopped" && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(radio.handle.state(), "stopped");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_dead_dio1_costs_latency_not_frames() {
    use sx126x::emu::Fault;
    let _serial = serial();
    let (radio, _) = idle_radio();
    let mut rx = radio.handle.subscribe();
    let mut next_frame = |within: Duration| {
        let start = Instant::now();
        loop {
            if let Ok(f) = rx.try_recv() {
                return Some(f.bytes.clone());
            }
            if start.elapsed() > within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    radio.world.inject_fault(radio.chip, Fault::DeadDio1);
    // The first frame waits for the health check's IRQ poll (5 s on the emulated chip) …
    radio
        .world
        .inject_rx(radio.chip, b"first, found by polling", -80.0);
    assert_eq!(
        next_frame(Duration::from_secs(8)).as_deref(),
        Some(&b"first, found by polling"[..])
    );
    // … after which the thread polls the chip until DIO1 works again.
    radio.world.inject_rx(radio.chip, b"second, soon", -80.0);
    assert_eq!(
        next_frame(Duration::from_secs(1)).as_deref(),
        Some(&b"second, soon"[..])
    );
    assert!(radio.handle.driver_stats().missed_dio1 >= 2);
}
