//! The real driver against the SPI-level emulator: bring-up per board preset, MeshCore frames
//! through TX and RX, RSSI/SNR, IRQ handling, CAD, and recovery from faults.

mod common;

use common::*;
use std::time::Duration;
use sx126x::command::{device_error, op, reg, ChipMode};
use sx126x::emu::{ChipProfile, Fault};
use sx126x::hal::{BoardLines, SpiTransfer};
use sx126x::presets::{board_preset, BOARDS, REGIONS};
use sx126x::{DriverError, Sx126x};

#[test]
fn init_succeeds_for_every_board_preset_without_misusing_the_chip() {
    let region = sx126x::presets::region_preset("eu-uk-narrow").expect("region");
    for board in BOARDS {
        let world = world();
        let chip = world.add_chip(ChipProfile::for_board(board));
        let mut lora = sx126x::LoRaParams::meshcore(
            region.frequency_hz,
            region.bandwidth,
            region.spreading_factor,
            region.coding_rate,
        );
        if board.chip == sx126x::ChipVariant::Sx1268 {
            lora.frequency_hz = 433_650_000;
        }
        let mut drv = Sx126x::new(
            world.spi(chip),
            world.lines(chip),
            board.radio_settings(lora),
        );
        drv.init().unwrap_or_else(|e| panic!("{}: {e}", board.name));
        drv.start_receive()
            .unwrap_or_else(|e| panic!("{}: {e}", board.name));
        assert_eq!(world.chip_mode(chip), ChipMode::Rx, "{}", board.name);
        assert_eq!(world.register(chip, reg::SYNC_WORD_MSB), 0x14);
        assert_eq!(world.register(chip, reg::SYNC_WORD_LSB), 0x24);
        assert_eq!(world.register(chip, reg::RX_GAIN), 0x96, "boosted gain");
        assert_eq!(
            world.register(chip, reg::TX_CLAMP) & 0x1E,
            0x1E,
            "errata 15.2"
        );
        assert_eq!(
            world.register(chip, reg::IQ_POLARITY) & 0x04,
            0x04,
            "errata 15.4"
        );
        assert_eq!(drv.device_errors().expect("errors"), 0, "{}", board.name);
        assert_clean(&world, chip);
        assert_eq!(world.counters(chip).exec_failures, 0, "{}", board.name);
    }
}

#[test]
fn every_region_preset_initialises() {
    for region in REGIONS {
        let world = world();
        let lora = sx126x::LoRaParams::meshcore(
            region.frequency_hz,
            region.bandwidth,
            region.spreading_factor,
            region.coding_rate,
        );
        let (chip, _drv) = radio(&world, lora);
        assert_eq!(world.chip_mode(chip), ChipMode::Rx, "{}", region.name);
        assert_clean(&world, chip);
    }
}

#[test]
fn forgetting_the_tcxo_on_a_tcxo_board_is_reported_like_real_silicon() {
    let board = board_preset("meshadv-mini").expect("preset");
    let world = world();
    let chip = world.add_chip(ChipProfile::for_board(board));
    let mut settings = board.radio_settings(eu_narrow());
    settings.tcxo = None;
    let mut drv = Sx126x::new(world.spi(chip), world.lines(chip), settings);
    match drv.init() {
        Err(DriverError::DeviceErrors(bits)) => assert!(bits & device_error::XOSC_START != 0),
        other => panic!("expected XOSC start error, got {other:?}"),
    }
    let text =
        sx126x::probe::explain_driver_error(&DriverError::DeviceErrors(device_error::XOSC_START));
    assert!(text.contains("TCXO voltage"), "{text}");
}

#[test]
fn meshcore_frames_cross_from_one_driver_to_another_byte_exact() {
    let frames = meshcore_frames();
    assert!(frames.len() >= 10, "vectors found: {}", frames.len());
    let world = world();
    let (a, mut tx) = radio(&world, eu_narrow());
    let (b, mut rx) = radio(&world, eu_narrow());
    world.set_link_loss(a, b, 90.0);
    for (name, frame) in &frames {
        let toa = tx.transmit(frame).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(toa, eu_narrow().time_on_air(frame.len()));
        let got = rx
            .receive(Duration::from_secs(5))
            .expect("rx")
            .unwrap_or_else(|| panic!("{name} not received"));
        assert_eq!(&got.data, frame, "{name}");
        tx.start_receive().expect("back to rx");
    }
    assert_eq!(rx.stats().rx_packets, frames.len() as u64);
    assert_eq!(tx.stats().tx_packets, frames.len() as u64);
    assert_eq!(rx.stats().crc_errors, 0);
    assert_clean(&world, a);
    assert_clean(&world, b);
}

#[test]
fn rssi_and_snr_are_converted_from_the_packet_status() {
    let world = world();
    let (a, mut tx) = radio(&world, eu_narrow());
    let (b, mut rx) = radio(&world, eu_narrow());
    // 22 dBm − 130 dB = −108 dBm; noise floor at 62.5 kHz with NF 6 dB is −120.0 dBm.
    world.set_link_loss(a, b, 130.0);
    tx.transmit(b"hello").expect("tx");
    let p = rx
        .receive(Duration::from_secs(2))
        .expect("rx")
        .expect("packet");
    assert!(
        (p.signal_rssi_dbm - -108.0).abs() <= 0.5,
        "signal {}",
        p.signal_rssi_dbm
    );
    assert!((p.rssi_dbm - -107.7).abs() <= 0.5, "rssi {}", p.rssi_dbm);
    assert!((p.snr_db - 12.0).abs() <= 0.25, "snr {}", p.snr_db);
    // Below the SF8 floor (−10 dB): nothing is received at all.
    world.set_link_loss(a, b, 160.0);
    tx.transmit(b"too weak").expect("tx");
    assert!(rx.receive(Duration::from_secs(2)).expect("rx").is_none());
    // Negative SNR survives the two's-complement decoding.
    world.set_link_loss(a, b, 147.0);
    tx.transmit(b"weak").expect("tx");
    let p = rx
        .receive(Duration::from_secs(2))
        .expect("rx")
        .expect("weak packet");
    assert!((p.snr_db - -5.0).abs() <= 0.25, "snr {}", p.snr_db);
}

#[test]
fn rx_packets_land_one_after_another_in_the_buffer_and_are_read_from_the_start_pointer() {
    let world = world();
    let (b, mut rx) = radio(&world, eu_narrow());
    // Two packets before the host gets around to reading: the second one lands after the first.
    world.inject_rx(b, b"first packet", -80.0);
    world.advance(Duration::from_secs(1));
    let p1 = rx
        .receive(Duration::from_millis(10))
        .expect("rx")
        .expect("first");
    world.inject_rx(b, b"second packet", -80.0);
    let p2 = rx
        .receive(Duration::from_secs(2))
        .expect("rx")
        .expect("second");
    assert_eq!(p1.data, b"first packet");
    assert_eq!(p2.data, b"second packet");
    assert_clean(&world, b);
}

#[test]
fn irq_faults_are_counted_and_dropped() {
    let world = world();
    let (b, mut rx) = radio(&world, eu_narrow());
    world.inject_fault(b, Fault::CrcErrorNext);
    world.inject_rx(b, b"damaged", -80.0);
    assert!(rx.receive(Duration::from_secs(2)).expect("rx").is_none());
    assert_eq!(rx.stats().crc_errors, 1);
    world.inject_fault(b, Fault::SpuriousIrqRead);
    world.inject_rx(b, b"after spurious", -80.0);
    assert!(rx.receive(Duration::from_secs(2)).expect("rx").is_none());
    assert_eq!(rx.stats().spurious_irqs, 1);
    world.inject_rx(b, b"clean", -80.0);
    let p = rx
        .receive(Duration::from_secs(2))
        .expect("rx")
        .expect("clean packet");
    assert_eq!(p.data, b"clean");
    assert_clean(&world, b);
}

#[test]
fn cad_sees_a_transmission_and_a_quiet_channel() {
    let world = world();
    let (b, mut radio_b) = radio(&world, eu_narrow());
    assert!(!radio_b.channel_busy().expect("cad"));
    radio_b.start_receive().expect("rx");
    world.inject_rx(b, &[0x55; 200], -90.0);
    world.advance(Duration::from_millis(50));
    assert!(radio_b.channel_busy().expect("cad"));
    assert_eq!(radio_b.stats().cad_busy, 1);
    assert_clean(&world, b);
}

#[test]
fn a_stuck_busy_line_is_recovered_by_reset() {
    let world = world();
    let (b, mut rx) = radio(&world, eu_narrow());
    world.inject_fault(b, Fault::StuckBusy);
    world.inject_rx(b, b"x", -80.0);
    let err = loop {
        match rx.receive(Duration::from_secs(1)) {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, DriverError::BusyTimeout { .. }), "{err}");
    rx.recover().expect("recover");
    assert_eq!(rx.stats().resets, 1);
    world.inject_rx(b, b"after reset", -80.0);
    let p = rx
        .receive(Duration::from_secs(2))
        .expect("rx")
        .expect("packet");
    assert_eq!(p.data, b"after reset");
    assert_eq!(world.counters(b).busy_violations, 0);
}

#[test]
fn a_chip_that_fails_to_enter_rx_is_noticed_and_recovered() {
    let world = world();
    let (b, mut rx) = radio(&world, eu_narrow());
    world.inject_fault(b, Fault::RefuseRx(1));
    match rx.start_receive() {
        Err(DriverError::WrongMode {
            wanted: ChipMode::Rx,
            got,
            ..
        }) => assert_eq!(got, ChipMode::StbyRc),
        other => panic!("expected wrong mode, got {other:?}"),
    }
    rx.recover().expect("recover");
    assert_eq!(world.chip_mode(b), ChipMode::Rx);
    // A chip that silently falls out of RX is caught by the idle health check.
    world.inject_fault(b, Fault::FallOutOfRx);
    let err = rx
        .receive(Duration::from_millis(100))
        .expect_err("health check");
    assert!(matches!(err, DriverError::WrongMode { .. }), "{err}");
    rx.recover().expect("recover");
    assert_eq!(rx.stats().resets, 2);
    world.inject_rx(b, b"still alive", -80.0);
    assert_eq!(
        rx.receive(Duration::from_secs(2))
            .expect("rx")
            .expect("packet")
            .data,
        b"still alive"
    );
}

#[test]
fn device_errors_and_a_dead_dio1_lead_to_recovery() {
    let world = world();
    let (b, mut radio_b) = radio(&world, eu_narrow());
    world.inject_fault(b, Fault::DeviceErrors(device_error::PLL_LOCK));
    let err = radio_b
        .receive(Duration::from_millis(10))
        .expect_err("device error");
    assert!(matches!(err, DriverError::DeviceErrors(_)), "{err}");
    radio_b.recover().expect("recover");
    // A dead DIO1 is survived by polling the IRQ register: late, but nothing is lost.
    world.inject_fault(b, Fault::DeadDio1);
    radio_b.transmit(b"no edge").expect("tx by polling");
    radio_b.start_receive().expect("rx");
    world.inject_rx(b, b"polled", -80.0);
    let got = loop {
        if let Some(p) = radio_b.receive(Duration::from_millis(50)).expect("rx") {
            break p;
        }
    };
    assert_eq!(got.data, b"polled");
    assert_eq!(radio_b.stats().missed_dio1, 2);
    // A chip that never finishes a transmission (no TxDone, no timeout IRQ) is a TX timeout.
    world.inject_fault(b, Fault::StuckBusy);
    let err = radio_b.transmit(b"stuck").expect_err("tx");
    assert!(matches!(err, DriverError::BusyTimeout { .. }), "{err}");
    radio_b.recover().expect("recover");
    radio_b.transmit(b"done").expect("tx after reset");
    assert_eq!(radio_b.stats().resets, 2);
}

#[test]
fn a_command_sent_while_busy_is_lost_as_on_silicon() {
    let world = world();
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut spi = world.spi(chip);
    let mut lines = world.lines(chip);
    let mut rx = [0u8; 2];
    // Calibrate keeps BUSY high for ms; SetPacketType right after it must vanish.
    spi.transfer(&[op::CALIBRATE, 0x7F], &mut rx).expect("spi");
    spi.transfer(&[op::SET_PACKET_TYPE, 0x01], &mut rx)
        .expect("spi");
    assert_eq!(world.counters(chip).busy_violations, 1);
    assert!(lines
        .wait_busy_low(Duration::from_millis(10))
        .expect("busy"));
    let mut r = [0u8; 3];
    spi.transfer(&[op::GET_PACKET_TYPE, 0, 0], &mut r)
        .expect("spi");
    assert_eq!(r[2], 0, "packet type must still be GFSK");
    // Status byte: STBY_RC, and a read returns its status in byte 1.
    assert_eq!((r[1] >> 4) & 7, 2);
    // An unknown opcode reports a processing error on the next status.
    lines.wait_busy_low(Duration::from_millis(1)).expect("busy");
    spi.transfer(&[0x77, 0], &mut rx).expect("spi");
    lines.wait_busy_low(Duration::from_millis(1)).expect("busy");
    spi.transfer(&[op::GET_STATUS, 0], &mut rx).expect("spi");
    assert_eq!((rx[1] >> 1) & 7, 4);
}

#[test]
fn an_absent_chip_is_named_by_the_probe() {
    let world = world();
    let chip = world.add_chip(ChipProfile::sx1262());
    world.inject_fault(chip, Fault::Absent);
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, eu_narrow()),
    );
    let steps = sx126x::probe::probe(&mut drv);
    let text: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    assert!(!steps[0].ok, "{text:?}");
    assert!(
        text.join("\n").contains("nothing answers on MISO"),
        "{text:?}"
    );
}

#[test]
fn probe_reports_stuck_busy_in_plain_words() {
    let world = world();
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        sx126x::RadioSettings::new(sx126x::ChipVariant::Sx1262, eu_narrow()),
    );
    // BUSY stuck high even through reset: a wrong BUSY pin number looks exactly like this.
    drv.lines_mut().set_reset(false).expect("line");
    world.inject_fault(chip, Fault::StuckBusy);
    struct StuckLines(sx126x::emu::EmuLines);
    impl BoardLines for StuckLines {
        fn set_reset(&mut self, _high: bool) -> Result<(), sx126x::HalError> {
            Ok(())
        }
        fn busy(&mut self) -> Result<bool, sx126x::HalError> {
            Ok(true)
        }
        fn wait_busy_low(&mut self, t: Duration) -> Result<bool, sx126x::HalError> {
            self.0.delay(t);
            Ok(false)
        }
        fn dio1(&mut self) -> Result<bool, sx126x::HalError> {
            self.0.dio1()
        }
        fn wait_dio1_rising(&mut self, t: Duration) -> Result<bool, sx126x::HalError> {
            self.0.wait_dio1_rising(t)
        }
        fn delay(&mut self, d: Duration) {
            self.0.delay(d)
        }
    }
    let mut drv = Sx126x::new(
        world.spi(chip),
        StuckLines(world.lines(chip)),
        drv.settings().clone(),
    );
    let steps = sx126x::probe::probe(&mut drv);
    let all: String = steps
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("BUSY never went low") && all.contains("check the BUSY pin number"),
        "{all}"
    );
}

#[test]
fn probe_of_a_healthy_chip_passes_every_step() {
    let world = world();
    let board = board_preset("meshadv-mini").expect("preset");
    let chip = world.add_chip(ChipProfile::for_board(board));
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        board.radio_settings(eu_narrow()),
    );
    let steps = sx126x::probe::probe(&mut drv);
    for s in &steps {
        assert!(s.ok, "{s}");
    }
    assert!(steps
        .iter()
        .any(|s| s.detail.contains("14 24 (MeshCore private 0x12)")));
    assert_eq!(steps.len(), 8);
}

/// DIO1 rising between the driver's level read and its wait (another thread ran the clock) is
/// not lost: the wait counts edges since the read, as the kernel's edge queue does on Linux.
#[test]
fn an_edge_between_the_level_read_and_the_wait_is_not_missed() {
    let world = world();
    let (b, _drv) = radio(&world, eu_narrow());
    let mut lines = world.lines(b);
    assert!(!lines.dio1().expect("level"));
    world.inject_rx(b, b"in between", -80.0);
    world.advance(eu_narrow().time_on_air(10) + Duration::from_millis(1));
    let t = world.now();
    assert!(lines
        .wait_dio1_rising(Duration::from_secs(10))
        .expect("wait"));
    assert_eq!(world.now(), t, "returned at once");
}
