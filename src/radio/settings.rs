//! Turns the `radio:` section into driver settings: board preset + overrides → chip, pins,
//! TCXO, RF switch; region preset + overrides → LoRa parameters and the duty-cycle default.
//! Every complaint names the key it is about.

use crate::config::radio::{RadioBackend, RadioConfig, Regulator};
use std::path::PathBuf;
use std::time::Duration;
use sx126x::params::{
    meshcore_preamble, Bandwidth, ChipVariant, CodingRate, LoRaParams, RadioSettings, TcxoVoltage,
};
use sx126x::presets::{board_preset, region_preset, BOARDS, REGIONS};

/// Where the chip is wired; the driver crate's type, so the Linux back-end opens it as is.
pub use sx126x::wiring::Wiring;

/// Everything the radio side needs, resolved and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub backend: RadioBackend,
    pub board: &'static str,
    pub region: &'static str,
    pub settings: RadioSettings,
    pub wiring: Wiring,
    pub duty_cycle_percent: f32,
    pub duty_cycle_window: Duration,
    pub listen_before_talk: bool,
    pub tx_queue: usize,
    pub air_dir: PathBuf,
    pub sim_loss_db: f32,
    pub sim_drop_probability: f64,
    pub sim_rssi_sigma_db: f32,
    pub sim_snr_sigma_db: f32,
}

fn pin(
    v: Option<i64>,
    preset: Option<u32>,
    key: &str,
    problems: &mut Vec<(String, String)>,
) -> Option<u32> {
    match v {
        None => preset,
        Some(-1) => None,
        Some(n) => match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                problems.push((
                    format!("radio.{key}"),
                    format!("{n} is not a line number (use -1 for none)"),
                ));
                None
            }
        },
    }
}

impl RadioConfig {
    /// Resolves presets and overrides; `Err` lists (key, message) pairs.
    pub fn resolve(&self) -> Result<Resolved, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let board = match board_preset(&self.board) {
            Some(b) => b,
            None => {
                let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
                problems.push((
                    "radio.board".into(),
                    format!(
                        "unknown board `{}`; known: {}",
                        self.board,
                        names.join(", ")
                    ),
                ));
                &BOARDS[0]
            }
        };
        let region = match region_preset(&self.region) {
            Some(r) => r,
            None => {
                let names: Vec<&str> = REGIONS.iter().map(|r| r.name).collect();
                problems.push((
                    "radio.region".into(),
                    format!(
                        "unknown region `{}`; known: {}",
                        self.region,
                        names.join(", ")
                    ),
                ));
                &REGIONS[1]
            }
        };
        let chip = match &self.chip {
            None => board.chip,
            Some(c) => ChipVariant::parse(c).unwrap_or_else(|| {
                problems.push((
                    "radio.chip".into(),
                    format!("`{c}` is not sx1261, sx1262 or sx1268"),
                ));
                board.chip
            }),
        };
        let frequency_hz = self
            .frequency_mhz
            .map(|f| (f * 1e6).round() as u64)
            .unwrap_or(region.frequency_hz);
        let bandwidth = match self.bandwidth_khz {
            None => region.bandwidth,
            Some(k) => Bandwidth::from_khz(k).unwrap_or_else(|| {
                problems.push(("radio.bandwidth_khz".into(), format!("{k} kHz is not a LoRa bandwidth (7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500)")));
                region.bandwidth
            }),
        };
        let sf = self.spreading_factor.unwrap_or(region.spreading_factor);
        let cr = match self.coding_rate {
            None => region.coding_rate,
            Some(d) => CodingRate::from_denominator(d).unwrap_or_else(|| {
                problems.push((
                    "radio.coding_rate".into(),
                    format!("{d} is not 5..8 (4/5 .. 4/8)"),
                ));
                region.coding_rate
            }),
        };
        let mut lora = LoRaParams::meshcore(frequency_hz, bandwidth, sf, cr);
        lora.preamble_len = self.preamble.unwrap_or_else(|| meshcore_preamble(sf));
        lora.power_dbm = match self.power_dbm {
            None => board.max_power_dbm,
            Some(p) if p > board.max_power_dbm => {
                problems.push((
                    "radio.power_dbm".into(),
                    format!(
                        "{p} dBm is more than board {} allows (at most {} dBm); set {} or less, or leave power_dbm out for the board's limit",
                        board.name, board.max_power_dbm, board.max_power_dbm
                    ),
                ));
                board.max_power_dbm
            }
            Some(p) => p,
        };
        if let Err(e) = lora.validate(chip) {
            problems.push(("radio".into(), e));
        }
        let mut settings = RadioSettings::new(chip, lora);
        settings.tcxo = match self.tcxo_volts {
            None => board.tcxo,
            Some(0.0) => None,
            Some(v) => TcxoVoltage::from_volts(v).or_else(|| {
                problems.push(("radio.tcxo_volts".into(), format!("{v} V is not a TCXO supply the chip offers (1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3; 0 = crystal)")));
                board.tcxo
            }),
        };
        settings.dio2_rf_switch = self.dio2_rf_switch.unwrap_or(board.dio2_rf_switch);
        settings.dcdc = self.regulator == Regulator::Dcdc;
        let wiring = Wiring {
            spidev: self
                .spidev
                .clone()
                .unwrap_or_else(|| board.spidev.to_string()),
            speed_hz: self.spi_speed_hz,
            gpiochip: self
                .gpiochip
                .clone()
                .unwrap_or_else(|| board.gpiochip.to_string()),
            reset: self.reset_pin.unwrap_or(board.reset_pin),
            busy: self.busy_pin.unwrap_or(board.busy_pin),
            dio1: self.dio1_pin.unwrap_or(board.dio1_pin),
            txen: pin(self.txen_pin, board.txen_pin, "txen_pin", &mut problems),
            rxen: pin(self.rxen_pin, board.rxen_pin, "rxen_pin", &mut problems),
            cs: pin(self.cs_pin, board.cs_pin, "cs_pin", &mut problems),
            hold_high: self
                .hold_high_pins
                .clone()
                .unwrap_or_else(|| board.hold_high_pins.to_vec()),
        };
        let duty = self.duty_cycle_percent.unwrap_or(region.duty_cycle_percent);
        if !(duty > 0.0 && duty <= 100.0) {
            problems.push((
                "radio.duty_cycle_percent".into(),
                format!("{duty} is not in (0, 100]"),
            ));
        }
        if self.duty_cycle_window_s == 0 {
            problems.push((
                "radio.duty_cycle_window_s".into(),
                "must be at least 1 second".into(),
            ));
        }
        if self.tx_queue == 0 {
            problems.push((
                "radio.tx_queue".into(),
                "must hold at least one frame".into(),
            ));
        }
        if !(0.0..=100.0).contains(&self.sim_drop_percent) {
            problems.push((
                "radio.sim_drop_percent".into(),
                format!("{} is not a percentage", self.sim_drop_percent),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Resolved {
            backend: self.backend,
            board: board.name,
            region: region.name,
            settings,
            wiring,
            duty_cycle_percent: duty,
            duty_cycle_window: Duration::from_secs(self.duty_cycle_window_s),
            listen_before_talk: self.listen_before_talk,
            tx_queue: self.tx_queue,
            air_dir: self.air_dir.clone(),
            sim_loss_db: self.sim_loss_db,
            sim_drop_probability: f64::from(self.sim_drop_percent) / 100.0,
            sim_rssi_sigma_db: self.sim_rssi_sigma_db.max(0.0),
            sim_snr_sigma_db: self.sim_snr_sigma_db.max(0.0),
        })
    }

    /// Problems as (key, message) pairs, for the configuration checker.
    pub fn problems(&self) -> Vec<(String, String)> {
        if self.backend == RadioBackend::None {
            return Vec::new();
        }
        self.resolve().err().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_to_meshcore_eu_narrow_on_the_simulated_air() {
        let r = RadioConfig::default().resolve().expect("defaults");
        assert_eq!(r.backend, RadioBackend::Sim);
        assert_eq!(r.settings.lora.frequency_hz, 869_618_000);
        assert_eq!(r.settings.lora.spreading_factor, 8);
        assert_eq!(r.settings.lora.preamble_len, 32);
        assert_eq!(r.settings.lora.sync_word, [0x14, 0x24]);
        assert_eq!(r.duty_cycle_percent, 10.0);
        assert_eq!(r.settings.tcxo, Some(TcxoVoltage::V1_8));
        assert_eq!(r.wiring.reset, 24);
    }

    #[test]
    fn overrides_win_over_presets() {
        let cfg = RadioConfig {
            board: "zebrahat".into(),
            region: "usa-canada".into(),
            spreading_factor: Some(9),
            busy_pin: Some(5),
            cs_pin: Some(-1),
            tcxo_volts: Some(0.0),
            duty_cycle_percent: Some(50.0),
            ..RadioConfig::default()
        };
        let r = cfg.resolve().expect("valid");
        assert_eq!(r.settings.lora.frequency_hz, 910_525_000);
        assert_eq!(r.settings.lora.spreading_factor, 9);
        assert_eq!(r.settings.lora.preamble_len, 16);
        assert_eq!(
            r.settings.lora.power_dbm, 18,
            "ZebraHat caps the chip at 18 dBm"
        );
        assert_eq!(r.wiring.busy, 5);
        assert_eq!(r.wiring.cs, None);
        assert_eq!(r.settings.tcxo, None);
        assert_eq!(r.duty_cycle_percent, 50.0);
    }

    #[test]
    fn mistakes_name_their_key() {
        let cfg = RadioConfig {
            board: "no-such-hat".into(),
            bandwidth_khz: Some(100.0),
            coding_rate: Some(9),
            duty_cycle_percent: Some(0.0),
            ..RadioConfig::default()
        };
        let keys: Vec<String> = cfg.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "radio.board",
                "radio.bandwidth_khz",
                "radio.coding_rate",
                "radio.duty_cycle_percent"
            ]
        );
        let cfg = RadioConfig {
            frequency_mhz: Some(2400.0),
            ..RadioConfig::default()
        };
        assert!(cfg.problems()[0].1.contains("outside"));
    }
}
