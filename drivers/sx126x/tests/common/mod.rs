//! Shared test helpers: emulated radios with the real driver, and the MeshCore test vectors.
#![allow(dead_code)]

use sx126x::emu::{AirConfig, ChipId, ChipProfile, EmuLines, EmuSpi, World};
use sx126x::params::{Bandwidth, ChipVariant, CodingRate, LoRaParams, RadioSettings};
use sx126x::Sx126x;

pub type EmuRadio = Sx126x<EmuSpi, EmuLines>;

/// EU/UK narrow: 869.618 MHz, 62.5 kHz, SF8, CR 4/8 (MeshCore's build default).
pub fn eu_narrow() -> LoRaParams {
    LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 8, CodingRate::Cr4_8)
}

pub fn world() -> World {
    World::new_virtual(42, AirConfig::default())
}

/// A plain SX1262 (crystal, DIO2 switch) running the driver, initialised and receiving.
pub fn radio(world: &World, lora: LoRaParams) -> (ChipId, EmuRadio) {
    let chip = world.add_chip(ChipProfile::sx1262());
    let mut drv = Sx126x::new(
        world.spi(chip),
        world.lines(chip),
        RadioSettings::new(ChipVariant::Sx1262, lora),
    );
    drv.init().expect("init");
    drv.start_receive().expect("rx");
    (chip, drv)
}

/// Asserts the driver never misused the chip.
pub fn assert_clean(world: &World, chip: ChipId) {
    let c = world.counters(chip);
    assert_eq!(c.busy_violations, 0, "BUSY violations: {c:?}");
    assert_eq!(c.processing_errors, 0, "processing errors: {c:?}");
    assert_eq!(c.missing_iq_fix, 0, "IQ errata: {c:?}");
    assert_eq!(c.missing_clamp_fix, 0, "clamp errata: {c:?}");
    assert_eq!(c.read_wrong_offset, 0, "RX pointer: {c:?}");
    assert_eq!(c.tx_with_rxen, 0, "RF switch: {c:?}");
}

fn collect(v: &serde_json::Value, key: &str, out: &mut Vec<(String, Vec<u8>)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect(x, k, out);
            }
        }
        serde_json::Value::String(s)
            if (key.contains("raw_hex") || key.starts_with("case_")) && key.ends_with("hex") =>
        {
            if let Ok(b) = hex::decode(s) {
                if !b.is_empty() && b.len() <= 255 {
                    out.push((key.to_string(), b));
                }
            }
        }
        _ => {}
    }
}

/// Every on-air MeshCore frame in the repository's tests/vectors/*.json.
pub fn meshcore_frames() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("vector file");
        let v: serde_json::Value = serde_json::from_str(&text).expect("vector json");
        let mut frames = Vec::new();
        collect(&v, "", &mut frames);
        let name = f
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        out.extend(frames.into_iter().map(|(k, b)| (format!("{name}.{k}"), b)));
    }
    out
}
