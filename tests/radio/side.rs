//! The gateway's radio side on the simulated air: frames between radios, priority, the
//! duty-cycle budget, /status and /metrics of a running gateway, and `meshroom-gw radio probe`.

use crate::common::{self, wait_for};

use meshroom_gw::radio::{open_sim_standalone, RadioHandle, SimParams, TxPriority};
use std::path::Path;
use std::time::{Duration, Instant};
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};

fn usa() -> LoRaParams {
    LoRaParams::meshcore(910_525_000, Bandwidth::Khz62_5, 7, CodingRate::Cr4_5)
}

fn params() -> SimParams {
    SimParams {
        lora: usa(),
        ..SimParams::default()
    }
}

async fn next_frame(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<meshroom_gw::radio::RxFrame>>,
    within: Duration,
) -> Option<Vec<u8>> {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Ok(f)) => Some(f.bytes.clone()),
        _ => None,
    }
}

async fn wait_receiving(r: &RadioHandle) {
    wait_for(Duration::from_secs(5), || r.state() == "receiving").await;
    assert_eq!(r.state(), "receiving");
}

#[tokio::test]
async fn two_simulated_radios_exchange_frames_through_the_shared_air() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio a");
    let b = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio b");
    wait_receiving(&a).await;
    wait_receiving(&b).await;
    let mut rx = b.subscribe();
    let frame = b"\x11\x00hello over the simulated air".to_vec();
    let sent = Instant::now();
    a.transmit(frame.clone(), TxPriority::Reply)
        .expect("queued");
    let got = next_frame(&mut rx, Duration::from_secs(5))
        .await
        .expect("frame");
    assert_eq!(got, frame);
    let took = sent.elapsed();
    let toa = a.time_on_air(frame.len());
    assert!(
        took >= toa,
        "a frame cannot arrive before its time on air ({took:?} < {toa:?})"
    );
}

#[tokio::test]
async fn replies_overtake_queued_adverts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio a");
    let b = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio b");
    wait_receiving(&a).await;
    wait_receiving(&b).await;
    let mut rx = b.subscribe();
    for i in 0..3u8 {
        a.transmit(vec![0xA0 + i; 12], TxPriority::Advert)
            .expect("advert");
    }
    a.transmit(vec![0x01; 12], TxPriority::Reply)
        .expect("reply");
    let first = next_frame(&mut rx, Duration::from_secs(5))
        .await
        .expect("frame");
    assert_eq!(first[0], 0x01, "the reply goes first");
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(
            next_frame(&mut rx, Duration::from_secs(5))
                .await
                .expect("advert")[0],
        );
    }
    assert_eq!(rest, [0xA0, 0xA1, 0xA2]);
}

#[tokio::test]
async fn the_duty_cycle_budget_holds_frames_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 0.5 % of 60 s = 300 ms of airtime; a 10-byte frame takes 131.584 ms: two fit.
    let limited = SimParams {
        duty_cycle_percent: 0.5,
        duty_cycle_window: Duration::from_secs(60),
        ..params()
    };
    let a = open_sim_standalone(dir.path(), limited)
        .await
        .expect("radio a");
    let b = open_sim_standalone(dir.path(), params())
        .await
        .expect("radio b");
    wait_receiving(&a).await;
    wait_receiving(&b).await;
    assert_eq!(a.time_on_air(10), Duration::from_micros(131_584));
    let mut rx = b.subscribe();
    for i in 0..4u8 {
        a.transmit(vec![i; 10], TxPriority::Push).expect("queued");
    }
    let mut got = 0;
    while got < 2 && next_frame(&mut rx, Duration::from_secs(5)).await.is_some() {
        got += 1;
    }
    // No waiting to see that nothing else comes: once two frames are queued and the budget
    // has no room for a third, nothing more can go out in this window.
    wait_for(Duration::from_secs(5), || {
        a.queued() == 2 && a.airtime_remaining() < a.time_on_air(10)
    })
    .await;
    while let Ok(f) = rx.try_recv() {
        got += 1;
        eprintln!("unexpected frame {:?}", f.bytes);
    }
    assert_eq!(got, 2, "only two frames fit the budget");
    assert_eq!(a.queued(), 2, "the rest wait for the window");
    assert!(a.airtime_remaining() < a.time_on_air(10));
    // A frame longer than the whole budget is refused at once.
    assert!(a.transmit(vec![0; 255], TxPriority::Reply).is_err());
}

fn air_yaml(dir: &Path) -> String {
    format!(
        "rooms:\n  - name: Public\nradio:\n  backend: sim\n  region: usa-canada\n  air_dir: \"{}\"\n",
        dir.display()
    )
}

#[tokio::test]
async fn a_running_gateway_reports_its_radio_and_counts_what_it_hears() {
    let air = tempfile::tempdir().expect("tempdir");
    let gw = tokio::task::spawn_blocking({
        let yaml = air_yaml(air.path());
        move || common::Gateway::start("radio-gw", &yaml)
    })
    .await
    .expect("gateway");
    let client = open_sim_standalone(air.path(), params())
        .await
        .expect("client radio");
    wait_receiving(&client).await;
    // Give the gateway's radio thread time to finish bring-up.
    let mut radio = serde_json::Value::Null;
    wait_for(Duration::from_secs(5), || {
        radio = gw.status()["radio"].clone();
        radio["state"] == "receiving"
    })
    .await;
    assert_eq!(radio["backend"], "sim", "{radio}");
    assert_eq!(radio["state"], "receiving", "{radio}");
    assert_eq!(radio["frequency_mhz"], 910.525);
    assert_eq!(radio["spreading_factor"], 7);
    assert_eq!(radio["airtime"]["duty_cycle_percent"], 100.0);
    client
        .transmit(vec![0x42; 20], TxPriority::Push)
        .expect("queued");
    let mut rx_count = 0;
    wait_for(Duration::from_secs(5), || {
        rx_count = gw.status()["radio"]["packets"]["rx"].as_u64().unwrap_or(0);
        rx_count > 0
    })
    .await;
    assert_eq!(rx_count, 1);
    let radio = gw.status()["radio"].clone();
    let rssi = radio["last_rssi_dbm"].as_f64().expect("rssi");
    assert!((-80.0..=-76.0).contains(&rssi), "22 dBm − 100 dB: {rssi}");
    let (code, metrics) = gw.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("meshroom_radio_rx_packets_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("meshroom_radio_airtime_window_remaining_seconds"));
    assert!(metrics.contains("meshroom_radio_tx_dropped_total{class=\"advert\"} 0"));
}

#[test]
fn radio_probe_explains_a_healthy_sim_and_a_missing_spi_device() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "rooms:\n  - name: Public\nradio:\n  backend: sim\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshroom-gw"))
        .args(["radio", "probe", "--config"])
        .arg(&cfg)
        .output()
        .expect("run probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("radio OK"), "{text}");
    std::fs::write(
        &cfg,
        "rooms:\n  - name: Public\nradio:\n  backend: sx126x\n  board: meshadv-mini\n  spidev: /nonexistent/spidev7.0\n",
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshroom-gw"))
        .args(["radio", "probe", "--config"])
        .arg(&cfg)
        .output()
        .expect("run probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("dtparam=spi=on") && text.contains("NOT OK"),
        "{text}"
    );
}

#[tokio::test]
async fn a_chip_fault_is_recovered_and_the_radio_keeps_working() {
    use meshroom_gw::config::radio::RadioConfig;
    use meshroom_gw::radio::sim::SimRadio;
    use sx126x::emu::{AirConfig, Fault, World};
    let cfg = RadioConfig {
        region: "usa-canada".into(),
        listen_before_talk: false,
        ..RadioConfig::default()
    };
    let resolved = cfg.resolve().expect("settings");
    let world = World::new_realtime(11, AirConfig::default());
    let radio = SimRadio::on_world(world.clone(), &resolved, true).expect("radio");
    wait_receiving(&radio.handle).await;
    let mut rx = radio.handle.subscribe();
    // The chip's BUSY line sticks: every command times out until the chip is reset.
    world.inject_fault(radio.chip, Fault::StuckBusy);
    wait_for(Duration::from_secs(10), || {
        radio.handle.driver_stats().resets > 0
    })
    .await;
    assert_eq!(radio.handle.driver_stats().resets, 1);
    wait_receiving(&radio.handle).await;
    world.inject_rx(radio.chip, b"after the reset", -80.0);
    assert_eq!(
        next_frame(&mut rx, Duration::from_secs(5)).await.as_deref(),
        Some(&b"after the reset"[..])
    );
    // A chip that silently leaves RX is noticed by the idle check and reset as well.
    world.inject_fault(radio.chip, Fault::FallOutOfRx);
    wait_for(Duration::from_secs(10), || {
        radio.handle.driver_stats().resets >= 2
    })
    .await;
    assert_eq!(radio.handle.driver_stats().resets, 2);
    wait_receiving(&radio.handle).await;
    radio
        .handle
        .transmit(vec![7; 10], TxPriority::Reply)
        .expect("queued");
    wait_for(Duration::from_secs(5), || {
        radio.handle.driver_stats().tx_packets > 0
    })
    .await;
    assert_eq!(radio.handle.driver_stats().tx_packets, 1);
}
