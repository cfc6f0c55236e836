//! LoRa modem parameters and the chip/board settings the driver initialises from.

use std::time::Duration;

/// LoRa bandwidths the SX126x supports. Odd bandwidths are exact fractions of 125 kHz.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bandwidth {
    Khz7_8,
    Khz10_4,
    Khz15_6,
    Khz20_8,
    Khz31_25,
    Khz41_7,
    Khz62_5,
    Khz125,
    Khz250,
    Khz500,
}

impl Bandwidth {
    pub const ALL: [Bandwidth; 10] = [
        Bandwidth::Khz7_8,
        Bandwidth::Khz10_4,
        Bandwidth::Khz15_6,
        Bandwidth::Khz20_8,
        Bandwidth::Khz31_25,
        Bandwidth::Khz41_7,
        Bandwidth::Khz62_5,
        Bandwidth::Khz125,
        Bandwidth::Khz250,
        Bandwidth::Khz500,
    ];

    /// Bandwidth in Hz as an exact fraction (numerator, denominator).
    pub fn hz_fraction(self) -> (u64, u64) {
        match self {
            Bandwidth::Khz7_8 => (15_625, 2),
            Bandwidth::Khz10_4 => (125_000, 12),
            Bandwidth::Khz15_6 => (15_625, 1),
            Bandwidth::Khz20_8 => (125_000, 6),
            Bandwidth::Khz31_25 => (31_250, 1),
            Bandwidth::Khz41_7 => (125_000, 3),
            Bandwidth::Khz62_5 => (62_500, 1),
            Bandwidth::Khz125 => (125_000, 1),
            Bandwidth::Khz250 => (250_000, 1),
            Bandwidth::Khz500 => (500_000, 1),
        }
    }

    /// Bandwidth in Hz, rounded (for display and frequency tolerance).
    pub fn hz(self) -> u32 {
        let (n, d) = self.hz_fraction();
        u32::try_from((n + d / 2) / d).unwrap_or(u32::MAX)
    }

    /// SetModulationParams code.
    pub fn code(self) -> u8 {
        match self {
            Bandwidth::Khz7_8 => 0x00,
            Bandwidth::Khz10_4 => 0x08,
            Bandwidth::Khz15_6 => 0x01,
            Bandwidth::Khz20_8 => 0x09,
            Bandwidth::Khz31_25 => 0x02,
            Bandwidth::Khz41_7 => 0x0A,
            Bandwidth::Khz62_5 => 0x03,
            Bandwidth::Khz125 => 0x04,
            Bandwidth::Khz250 => 0x05,
            Bandwidth::Khz500 => 0x06,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Bandwidth::ALL.into_iter().find(|b| b.code() == code)
    }

    /// Parses a kHz figure as written in configs ("62.5", "125", 7.8 …) within 0.1 kHz.
    pub fn from_khz(khz: f64) -> Option<Self> {
        Bandwidth::ALL
            .into_iter()
            .find(|b| (f64::from(b.hz()) / 1000.0 - khz).abs() < 0.1)
    }

    pub fn khz(self) -> f64 {
        let (n, d) = self.hz_fraction();
        n as f64 / d as f64 / 1000.0
    }
}

/// LoRa coding rate 4/5 .. 4/8 (MeshCore writes these as 5..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodingRate {
    Cr4_5,
    Cr4_6,
    Cr4_7,
    Cr4_8,
}

impl CodingRate {
    /// 1..4, the `CR` of the time-on-air formula and the SetModulationParams code.
    pub fn code(self) -> u8 {
        match self {
            CodingRate::Cr4_5 => 1,
            CodingRate::Cr4_6 => 2,
            CodingRate::Cr4_7 => 3,
            CodingRate::Cr4_8 => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(CodingRate::Cr4_5),
            2 => Some(CodingRate::Cr4_6),
            3 => Some(CodingRate::Cr4_7),
            4 => Some(CodingRate::Cr4_8),
            _ => None,
        }
    }

    /// From the MeshCore/RadioLib denominator notation 5..8.
    pub fn from_denominator(d: u8) -> Option<Self> {
        d.checked_sub(4).and_then(CodingRate::from_code)
    }

    pub fn denominator(self) -> u8 {
        self.code() + 4
    }
}

/// Everything that determines what goes on air.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoRaParams {
    pub frequency_hz: u64,
    pub bandwidth: Bandwidth,
    /// Spreading factor 5..=12.
    pub spreading_factor: u8,
    pub coding_rate: CodingRate,
    /// Preamble length in symbols.
    pub preamble_len: u16,
    pub crc_on: bool,
    pub implicit_header: bool,
    pub invert_iq: bool,
    /// The two sync-word register bytes (0x0740, 0x0741).
    pub sync_word: [u8; 2],
    /// Chip output power (SetTxParams), dBm.
    pub power_dbm: i8,
}

/// MeshCore's private sync word 0x12 as the SX126x registers hold it.
pub const MESHCORE_SYNC_WORD: [u8; 2] = [0x14, 0x24];

/// MeshCore's preamble rule: 32 symbols for SF ≤ 8, 16 for SF ≥ 9.
pub fn meshcore_preamble(sf: u8) -> u16 {
    if sf <= 8 {
        32
    } else {
        16
    }
}

impl LoRaParams {
    /// MeshCore packet settings for a frequency/BW/SF/CR: explicit header, CRC on, normal IQ,
    /// sync word 0x12, preamble by SF.
    pub fn meshcore(frequency_hz: u64, bandwidth: Bandwidth, sf: u8, cr: CodingRate) -> Self {
        LoRaParams {
            frequency_hz,
            bandwidth,
            spreading_factor: sf,
            coding_rate: cr,
            preamble_len: meshcore_preamble(sf),
            crc_on: true,
            implicit_header: false,
            invert_iq: false,
            sync_word: MESHCORE_SYNC_WORD,
            power_dbm: 22,
        }
    }

    /// Symbol time 2^SF / BW.
    pub fn symbol_time(&self) -> Duration {
        crate::toa::symbol_time(self.spreading_factor, self.bandwidth)
    }

    /// Low data-rate optimisation, RadioLib's rule: on when the symbol time is ≥ 16 ms.
    pub fn ldro(&self) -> bool {
        crate::toa::ldro_required(self.spreading_factor, self.bandwidth)
    }

    /// Exact time on air of a `len`-byte payload.
    pub fn time_on_air(&self, len: usize) -> Duration {
        crate::toa::time_on_air(self, len)
    }

    /// Checks ranges the chip would reject.
    pub fn validate(&self, chip: ChipVariant) -> Result<(), String> {
        if !(5..=12).contains(&self.spreading_factor) {
            return Err(format!(
                "spreading factor {} outside 5..12",
                self.spreading_factor
            ));
        }
        let (lo, hi) = chip.frequency_range_hz();
        if self.frequency_hz < lo || self.frequency_hz > hi {
            return Err(format!(
                "frequency {:.3} MHz outside the {} range {}..{} MHz",
                self.frequency_hz as f64 / 1e6,
                chip.name(),
                lo / 1_000_000,
                hi / 1_000_000
            ));
        }
        if self.spreading_factor <= 6 && self.preamble_len < 12 {
            return Err("SF5/SF6 need a preamble of at least 12 symbols".into());
        }
        let (pmin, pmax) = chip.power_range_dbm();
        if self.power_dbm < pmin || self.power_dbm > pmax {
            return Err(format!(
                "power {} dBm outside {}..{} dBm for {}",
                self.power_dbm,
                pmin,
                pmax,
                chip.name()
            ));
        }
        Ok(())
    }
}

/// Which member of the family is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChipVariant {
    Sx1261,
    Sx1262,
    Sx1268,
}

impl ChipVariant {
    pub fn name(self) -> &'static str {
        match self {
            ChipVariant::Sx1261 => "SX1261",
            ChipVariant::Sx1262 => "SX1262",
            ChipVariant::Sx1268 => "SX1268",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sx1261" => Some(ChipVariant::Sx1261),
            "sx1262" => Some(ChipVariant::Sx1262),
            "sx1268" => Some(ChipVariant::Sx1268),
            _ => None,
        }
    }

    pub fn frequency_range_hz(self) -> (u64, u64) {
        match self {
            ChipVariant::Sx1268 => (410_000_000, 810_000_000),
            _ => (150_000_000, 960_000_000),
        }
    }

    /// SetTxParams range for the PA this chip uses.
    pub fn power_range_dbm(self) -> (i8, i8) {
        match self {
            ChipVariant::Sx1261 => (-17, 15),
            _ => (-9, 22),
        }
    }

    /// Prefix the version register (0x0320) starts with. The SX1262 reads "SX1261".
    pub fn version_prefix(self) -> &'static str {
        match self {
            ChipVariant::Sx1268 => "SX1268",
            _ => "SX1261",
        }
    }
}

/// DIO3 TCXO supply voltage codes 0..7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcxoVoltage {
    V1_6,
    V1_7,
    V1_8,
    V2_2,
    V2_4,
    V2_7,
    V3_0,
    V3_3,
}

impl TcxoVoltage {
    pub const ALL: [TcxoVoltage; 8] = [
        TcxoVoltage::V1_6,
        TcxoVoltage::V1_7,
        TcxoVoltage::V1_8,
        TcxoVoltage::V2_2,
        TcxoVoltage::V2_4,
        TcxoVoltage::V2_7,
        TcxoVoltage::V3_0,
        TcxoVoltage::V3_3,
    ];

    pub fn code(self) -> u8 {
        match self {
            TcxoVoltage::V1_6 => 0,
            TcxoVoltage::V1_7 => 1,
            TcxoVoltage::V1_8 => 2,
            TcxoVoltage::V2_2 => 3,
            TcxoVoltage::V2_4 => 4,
            TcxoVoltage::V2_7 => 5,
            TcxoVoltage::V3_0 => 6,
            TcxoVoltage::V3_3 => 7,
        }
    }

    pub fn volts(self) -> f32 {
        [1.6, 1.7, 1.8, 2.2, 2.4, 2.7, 3.0, 3.3][usize::from(self.code())]
    }

    pub fn from_volts(v: f32) -> Option<Self> {
        TcxoVoltage::ALL
            .into_iter()
            .find(|t| (t.volts() - v).abs() < 0.05)
    }
}

/// How the driver brings up a particular chip on a particular board.
#[derive(Debug, Clone, PartialEq)]
pub struct RadioSettings {
    pub chip: ChipVariant,
    /// TCXO on DIO3 (voltage); `None` = crystal.
    pub tcxo: Option<TcxoVoltage>,
    /// TCXO start-up delay programmed with SetDIO3AsTcxoCtrl.
    pub tcxo_delay: Duration,
    /// DIO2 drives the RF switch.
    pub dio2_rf_switch: bool,
    /// DC-DC regulator (all common modules have the inductor); `false` = LDO.
    pub dcdc: bool,
    /// RX boosted gain (MeshCore default on SX1262/8).
    pub rx_boosted_gain: bool,
    /// Over-current limit written after SetPaConfig, mA (None = chip default for the PA).
    pub ocp_ma: Option<u16>,
    pub lora: LoRaParams,
}

impl RadioSettings {
    pub fn new(chip: ChipVariant, lora: LoRaParams) -> Self {
        RadioSettings {
            chip,
            tcxo: None,
            tcxo_delay: Duration::from_millis(5),
            dio2_rf_switch: true,
            dcdc: true,
            rx_boosted_gain: true,
            ocp_ma: None,
            lora,
        }
    }
}
