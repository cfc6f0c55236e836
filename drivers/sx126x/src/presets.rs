//! Board presets (common Pi HATs: SPI device, pins, TCXO, RF switch, chip) and region presets
//! (MeshCore community radio settings) as plain data. Any field can be overridden by the caller.

use crate::params::{Bandwidth, ChipVariant, CodingRate, TcxoVoltage};

/// How one HAT wires the chip. Pin numbers are line offsets on `gpiochip` (BCM numbers on a Pi).
#[derive(Debug, Clone, PartialEq)]
pub struct BoardPreset {
    pub name: &'static str,
    pub description: &'static str,
    pub chip: ChipVariant,
    pub spidev: &'static str,
    pub gpiochip: &'static str,
    /// Manual chip select on a GPIO (the kernel's CE line is not the chip's NSS).
    pub cs_pin: Option<u32>,
    pub dio1_pin: u32,
    pub busy_pin: u32,
    pub reset_pin: u32,
    pub txen_pin: Option<u32>,
    pub rxen_pin: Option<u32>,
    /// Lines that must be driven high for the module to work (antenna switch, enables).
    pub hold_high_pins: &'static [u32],
    pub tcxo: Option<TcxoVoltage>,
    pub dio2_rf_switch: bool,
    /// Highest chip power the board tolerates (external PA modules cap it).
    pub max_power_dbm: i8,
}

const fn board(name: &'static str, description: &'static str) -> BoardPreset {
    BoardPreset {
        name,
        description,
        chip: ChipVariant::Sx1262,
        spidev: "/dev/spidev0.0",
        gpiochip: "/dev/gpiochip0",
        cs_pin: None,
        dio1_pin: 16,
        busy_pin: 20,
        reset_pin: 18,
        txen_pin: None,
        rxen_pin: None,
        hold_high_pins: &[],
        tcxo: Some(TcxoVoltage::V1_8),
        dio2_rf_switch: true,
        max_power_dbm: 22,
    }
}

/// The HATs of the SPI/GPIO sheet's table.
pub const BOARDS: &[BoardPreset] = &[
    BoardPreset {
        cs_pin: Some(21),
        hold_high_pins: &[6],
        tcxo: None,
        ..board(
            "waveshare-sx1262",
            "Waveshare SX1262 LoRaWAN/GNSS HAT (NSS on GPIO21, ANT_SW GPIO6 held high)",
        )
    },
    BoardPreset {
        cs_pin: Some(21),
        txen_pin: Some(13),
        rxen_pin: Some(12),
        dio2_rf_switch: false,
        ..board("meshadv-pi-hat", "MeshAdv-Pi Hat, E22-900M30S (1 W PA)")
    },
    BoardPreset {
        reset_pin: 24,
        rxen_pin: Some(12),
        ..board("meshadv-mini", "MeshAdv Mini, E22-900M22S")
    },
    BoardPreset {
        chip: ChipVariant::Sx1268,
        cs_pin: Some(21),
        txen_pin: Some(6),
        rxen_pin: Some(12),
        dio2_rf_switch: false,
        ..board("e22-400m33s", "generic E22-400M33S (SX1268, 433 MHz)")
    },
    BoardPreset {
        cs_pin: Some(24),
        dio1_pin: 22,
        busy_pin: 27,
        reset_pin: 17,
        max_power_dbm: 18,
        ..board("zebrahat", "ZebraHat 1W / PiTastic 1W")
    },
    BoardPreset {
        dio1_pin: 22,
        busy_pin: 4,
        reset_pin: 18,
        rxen_pin: Some(25),
        ..board("nebrahat", "NebraHat 1W")
    },
    BoardPreset {
        dio1_pin: 6,
        busy_pin: 5,
        reset_pin: 18,
        hold_high_pins: &[26],
        ..board("pimesh-1w-v2", "PiMesh-1W V2 (E22P-868/915M30S)")
    },
    BoardPreset {
        dio1_pin: 22,
        busy_pin: 24,
        reset_pin: 16,
        hold_high_pins: &[12, 13],
        ..board("rak6421", "RAK6421 Pi HAT with RAK13300 in slot 1")
    },
    BoardPreset {
        spidev: "/dev/spidev1.0",
        dio1_pin: 26,
        busy_pin: 24,
        reset_pin: 25,
        dio2_rf_switch: false,
        ..board(
            "uconsole",
            "HackerGadgets uConsole LoRa module (TCXO assumed 1.8 V)",
        )
    },
];

impl BoardPreset {
    /// Driver settings for this board with the given LoRa parameters (power capped to the board).
    pub fn radio_settings(
        &self,
        mut lora: crate::params::LoRaParams,
    ) -> crate::params::RadioSettings {
        lora.power_dbm = lora.power_dbm.min(self.max_power_dbm);
        let mut s = crate::params::RadioSettings::new(self.chip, lora);
        s.tcxo = self.tcxo;
        s.dio2_rf_switch = self.dio2_rf_switch;
        s
    }
}

pub fn board_preset(name: &str) -> Option<&'static BoardPreset> {
    BOARDS.iter().find(|b| b.name.eq_ignore_ascii_case(name))
}

/// A region's radio settings and its usual duty-cycle limit.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionPreset {
    pub name: &'static str,
    pub description: &'static str,
    pub frequency_hz: u64,
    pub bandwidth: Bandwidth,
    pub spreading_factor: u8,
    pub coding_rate: CodingRate,
    /// Regulatory duty cycle in percent (ETSI g3 869.4–869.65 MHz and EU 433: 10 %; elsewhere
    /// no duty-cycle rule applies and 100 % means "unlimited").
    pub duty_cycle_percent: f32,
}

const fn region(
    name: &'static str,
    description: &'static str,
    frequency_hz: u64,
    bandwidth: Bandwidth,
    spreading_factor: u8,
    coding_rate: CodingRate,
    duty_cycle_percent: f32,
) -> RegionPreset {
    RegionPreset {
        name,
        description,
        frequency_hz,
        bandwidth,
        spreading_factor,
        coding_rate,
        duty_cycle_percent,
    }
}

use Bandwidth::{Khz125, Khz250, Khz62_5};
use CodingRate::{Cr4_5, Cr4_6, Cr4_8};

/// The MeshCore phone app's "Select Radio Settings" list (protocol sheet §1).
pub const REGIONS: &[RegionPreset] = &[
    region(
        "usa-canada",
        "USA/Canada (Recommended)",
        910_525_000,
        Khz62_5,
        7,
        Cr4_5,
        100.0,
    ),
    region(
        "eu-uk-narrow",
        "EU/UK (Narrow)",
        869_618_000,
        Khz62_5,
        8,
        Cr4_8,
        10.0,
    ),
    region(
        "eu-uk-old",
        "EU/UK (Deprecated, old default)",
        869_525_000,
        Khz250,
        11,
        Cr4_5,
        10.0,
    ),
    region(
        "switzerland",
        "Switzerland",
        869_618_000,
        Khz62_5,
        8,
        Cr4_8,
        10.0,
    ),
    region(
        "netherlands",
        "Netherlands",
        869_618_000,
        Khz62_5,
        7,
        Cr4_5,
        10.0,
    ),
    region(
        "czech-narrow",
        "Czech Republic (Narrow)",
        869_432_000,
        Khz62_5,
        7,
        Cr4_5,
        10.0,
    ),
    region(
        "portugal-868",
        "Portugal 868",
        869_618_000,
        Khz62_5,
        7,
        Cr4_6,
        10.0,
    ),
    region(
        "portugal-433",
        "Portugal 433",
        433_375_000,
        Khz62_5,
        9,
        Cr4_6,
        10.0,
    ),
    region(
        "eu-433-narrow",
        "EU 433 (Narrow)",
        433_650_000,
        Khz62_5,
        8,
        Cr4_8,
        10.0,
    ),
    region(
        "eu-433-long-range",
        "EU 433 (Long Range)",
        433_650_000,
        Khz250,
        11,
        Cr4_5,
        10.0,
    ),
    region(
        "australia",
        "Australia",
        915_800_000,
        Khz250,
        10,
        Cr4_5,
        100.0,
    ),
    region(
        "australia-narrow",
        "Australia (Narrow)",
        916_575_000,
        Khz62_5,
        7,
        Cr4_8,
        100.0,
    ),
    region(
        "australia-mid",
        "Australia (Mid)",
        915_075_000,
        Khz125,
        9,
        Cr4_5,
        100.0,
    ),
    region(
        "australia-sa-wa",
        "Australia SA, WA",
        923_125_000,
        Khz62_5,
        8,
        Cr4_8,
        100.0,
    ),
    region(
        "australia-qld",
        "Australia QLD",
        923_125_000,
        Khz62_5,
        8,
        Cr4_5,
        100.0,
    ),
    region(
        "new-zealand",
        "New Zealand",
        917_375_000,
        Khz250,
        11,
        Cr4_5,
        100.0,
    ),
    region(
        "new-zealand-narrow",
        "New Zealand (Narrow)",
        917_375_000,
        Khz62_5,
        7,
        Cr4_5,
        100.0,
    ),
    region("brazil", "Brazil", 923_125_000, Khz62_5, 8, Cr4_8, 100.0),
    region(
        "vietnam-narrow",
        "Vietnam (Narrow)",
        920_250_000,
        Khz62_5,
        8,
        Cr4_5,
        100.0,
    ),
    region(
        "vietnam-old",
        "Vietnam (Deprecated)",
        920_250_000,
        Khz250,
        11,
        Cr4_5,
        100.0,
    ),
];

pub fn region_preset(name: &str) -> Option<&'static RegionPreset> {
    REGIONS.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_unique() {
        for (i, b) in BOARDS.iter().enumerate() {
            assert!(BOARDS[..i].iter().all(|o| o.name != b.name));
            assert!(!(b.dio2_rf_switch && b.txen_pin.is_some()), "{}", b.name);
        }
        for (i, r) in REGIONS.iter().enumerate() {
            assert!(REGIONS[..i].iter().all(|o| o.name != r.name));
            let p = crate::params::LoRaParams::meshcore(
                r.frequency_hz,
                r.bandwidth,
                r.spreading_factor,
                r.coding_rate,
            );
            assert!(p.validate(ChipVariant::Sx1262).is_ok(), "{}", r.name);
        }
        assert_eq!(board_preset("MeshAdv-Mini").map(|b| b.reset_pin), Some(24));
        assert_eq!(
            region_preset("eu-uk-narrow").map(|r| r.spreading_factor),
            Some(8)
        );
    }
}
