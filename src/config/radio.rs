//! The `radio:` section: which LoRa backend the gateway drives, the board and region presets
//! with explicit overrides, the duty-cycle budget, and the simulated air. Every field has a
//! default so the section can be omitted (the default is the simulated radio, EU/UK narrow).
//! Turning this into driver settings is `radio::settings`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RadioBackend {
    /// The SX126x driver on an emulated chip on the simulated air.
    #[default]
    Sim,
    /// The SX126x driver on real hardware over spidev + GPIO.
    Sx126x,
    /// No radio: rooms are served to the host and to peers only.
    None,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Regulator {
    #[default]
    Dcdc,
    Ldo,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RadioConfig {
    #[serde(default)]
    pub backend: RadioBackend,
    /// Board preset (`meshadv-mini`, `waveshare-sx1262`, … see the README); pins and chip
    /// settings below override it.
    #[serde(default = "default_board")]
    pub board: String,
    /// Region preset (`eu-uk-narrow`, `usa-canada`, … see the README); the explicit radio
    /// settings below override it.
    #[serde(default = "default_region")]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_mhz: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_khz: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spreading_factor: Option<u8>,
    /// Coding rate denominator 5..8 (4/5 .. 4/8), as MeshCore writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coding_rate: Option<u8>,
    /// Chip output power, dBm; unset: the board's limit (more than that is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_dbm: Option<i8>,
    /// Preamble length; default follows MeshCore (32 for SF ≤ 8, 16 for SF ≥ 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preamble: Option<u16>,
    /// Share of time the transmitter may be on, percent; default the region's legal limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duty_cycle_percent: Option<f32>,
    /// Sliding window over which the duty cycle is measured, seconds.
    #[serde(default = "default_window")]
    pub duty_cycle_window_s: u64,
    /// Listen before talk with channel activity detection.
    #[serde(default = "default_true")]
    pub listen_before_talk: bool,
    /// Frames waiting to be sent at most; when full the lowest priority is dropped first.
    #[serde(default = "default_queue")]
    pub tx_queue: usize,

    // Hardware (backend sx126x); each overrides the board preset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spidev: Option<String>,
    #[serde(default = "default_spi_speed")]
    pub spi_speed_hz: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpiochip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_pin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy_pin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dio1_pin: Option<u32>,
    /// `-1` removes a preset's pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txen_pin: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rxen_pin: Option<i64>,
    /// Manual chip select on a GPIO; `-1` = the kernel's CE line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cs_pin: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_high_pins: Option<Vec<u32>>,
    /// TCXO supply on DIO3 in volts; 0 = crystal board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcxo_volts: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dio2_rf_switch: Option<bool>,
    #[serde(default)]
    pub regulator: Regulator,

    // Simulated air (backend sim).
    /// Directory shared by every simulated radio on this machine.
    #[serde(default = "default_air_dir")]
    pub air_dir: PathBuf,
    /// Path loss between simulated radios, dB.
    #[serde(default = "default_loss")]
    pub sim_loss_db: f32,
    /// Share of receptions lost at random, percent.
    #[serde(default)]
    pub sim_drop_percent: f32,
    /// Gaussian noise on the RSSI the simulated chip reports (σ, dB).
    #[serde(default)]
    pub sim_rssi_sigma_db: f32,
    /// Gaussian noise on the SNR the simulated chip reports (σ, dB).
    #[serde(default)]
    pub sim_snr_sigma_db: f32,
}

impl Default for RadioConfig {
    fn default() -> Self {
        RadioConfig {
            backend: RadioBackend::default(),
            board: default_board(),
            region: default_region(),
            frequency_mhz: None,
            bandwidth_khz: None,
            spreading_factor: None,
            coding_rate: None,
            power_dbm: None,
            preamble: None,
            duty_cycle_percent: None,
            duty_cycle_window_s: default_window(),
            listen_before_talk: true,
            tx_queue: default_queue(),
            chip: None,
            spidev: None,
            spi_speed_hz: default_spi_speed(),
            gpiochip: None,
            reset_pin: None,
            busy_pin: None,
            dio1_pin: None,
            txen_pin: None,
            rxen_pin: None,
            cs_pin: None,
            hold_high_pins: None,
            tcxo_volts: None,
            dio2_rf_switch: None,
            regulator: Regulator::default(),
            air_dir: default_air_dir(),
            sim_loss_db: default_loss(),
            sim_drop_percent: 0.0,
            sim_rssi_sigma_db: 0.0,
            sim_snr_sigma_db: 0.0,
        }
    }
}

fn default_board() -> String {
    "meshadv-mini".into()
}

fn default_region() -> String {
    "eu-uk-narrow".into()
}

fn default_window() -> u64 {
    3600
}

fn default_true() -> bool {
    true
}

fn default_queue() -> usize {
    64
}

fn default_spi_speed() -> u32 {
    2_000_000
}

/// Shared by every user's simulated radios on this machine, so gateways and clients meet.
pub fn default_air_dir() -> PathBuf {
    PathBuf::from("/tmp/meshroom-air")
}

fn default_loss() -> f32 {
    100.0
}
