//! Radio path benchmark (plain text, no assertions):
//! 1. added latency from the emulated chip's DIO1 rising edge to the frame handed to the rest of
//!    the gateway (the `RadioHandle::subscribe` channel), emulator in real-time mode, through the
//!    real driver and the gateway's radio thread — p50/p99/max;
//! 2. frames per second through emulator + air (two drivers, virtual clock: how fast the
//!    emulation itself runs, independent of LoRa airtime).

mod support;
use support::percentile;

use meshroom_gw::config::radio::RadioConfig;
use meshroom_gw::radio::sim::SimRadio;
use std::time::{Duration, Instant};
use sx126x::emu::{AirConfig, ChipProfile, World};
use sx126x::params::{Bandwidth, ChipVariant, CodingRate, LoRaParams, RadioSettings};
use sx126x::Sx126x;

fn latency(frames: usize) {
    // SF7 / 500 kHz keeps the airtime per frame short (≈ 19 ms for 20 B); the path measured is
    // the same for every modem setting.
    let cfg = RadioConfig {
        bandwidth_khz: Some(500.0),
        spreading_factor: Some(7),
        duty_cycle_percent: Some(100.0),
        listen_before_talk: false,
        ..RadioConfig::default()
    };
    let Ok(resolved) = cfg.resolve() else {
        println!("latency: radio settings did not resolve");
        return;
    };
    let world = World::new_realtime(3, AirConfig::default());
    let Ok(radio) = SimRadio::on_world(world.clone(), &resolved, true) else {
        println!("latency: cannot start the simulated radio");
        return;
    };
    let mut rx = radio.handle.subscribe();
    let start = Instant::now();
    while radio.handle.state() != "receiving" && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut samples = Vec::with_capacity(frames);
    let frame = [0x5Au8; 20];
    for _ in 0..frames {
        world.inject_rx(radio.chip, &frame, -80.0);
        match rx.blocking_recv() {
            Ok(f) => {
                let handed = Instant::now();
                if let Some(edge) = world.dio1_rise_at(radio.chip) {
                    samples.push(handed.saturating_duration_since(edge));
                }
                debug_assert_eq!(f.bytes, frame);
            }
            Err(_) => break,
        }
    }
    samples.sort();
    println!(
        "DIO1 edge → frame handed to the gateway ({} frames, real-time emulator, 20 B at SF7/500 kHz): p50 {:?}  p99 {:?}  max {:?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}

fn throughput(frames: usize) {
    let lora = LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 8, CodingRate::Cr4_8);
    let world = World::new_virtual(5, AirConfig::default());
    let a = world.add_chip(ChipProfile::sx1262());
    let b = world.add_chip(ChipProfile::sx1262());
    let settings = RadioSettings::new(ChipVariant::Sx1262, lora);
    let mut tx = Sx126x::new(world.spi(a), world.lines(a), settings.clone());
    let mut rx = Sx126x::new(world.spi(b), world.lines(b), settings);
    if tx
        .init()
        .and_then(|()| rx.init())
        .and_then(|()| rx.start_receive())
        .is_err()
    {
        println!("throughput: init failed");
        return;
    }
    let frame = [0xC3u8; 50];
    let started = Instant::now();
    let sim_start = world.now();
    let mut got = 0usize;
    for _ in 0..frames {
        if tx.transmit(&frame).is_err() {
            break;
        }
        if let Ok(Some(_)) = rx.receive(Duration::from_secs(5)) {
            got += 1;
        }
    }
    let wall = started.elapsed();
    let simulated = world.now() - sim_start;
    println!(
        "emulator + air, virtual clock: {got}/{frames} frames of 50 B in {wall:.2?} wall = {:.0} frames/s ({:.0}× faster than real time; {:.1} s of airtime simulated)",
        got as f64 / wall.as_secs_f64(),
        simulated.as_secs_f64() / wall.as_secs_f64(),
        simulated.as_secs_f64()
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    latency(if quick { 50 } else { 500 });
    throughput(if quick { 200 } else { 5000 });
}
