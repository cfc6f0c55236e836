//! The SX126x command set as data: opcodes, IRQ bits, registers, the status byte and the
//! parameter encodings (frequency register, image-calibration bands, CAD symbol codes).

/// Command opcodes (datasheet §13, sx126x-driver sheet §3).
pub mod op {
    pub const SET_STANDBY: u8 = 0x80;
    pub const SET_SLEEP: u8 = 0x84;
    pub const SET_FS: u8 = 0xC1;
    pub const SET_TX: u8 = 0x83;
    pub const SET_RX: u8 = 0x82;
    pub const STOP_TIMER_ON_PREAMBLE: u8 = 0x9F;
    pub const SET_LORA_SYMB_NUM_TIMEOUT: u8 = 0xA0;
    pub const SET_RX_DUTY_CYCLE: u8 = 0x94;
    pub const SET_CAD: u8 = 0xC5;
    pub const SET_TX_CONTINUOUS_WAVE: u8 = 0xD1;
    pub const SET_TX_INFINITE_PREAMBLE: u8 = 0xD2;
    pub const SET_REGULATOR_MODE: u8 = 0x96;
    pub const CALIBRATE: u8 = 0x89;
    pub const CALIBRATE_IMAGE: u8 = 0x98;
    pub const SET_PA_CONFIG: u8 = 0x95;
    pub const SET_RX_TX_FALLBACK_MODE: u8 = 0x93;
    pub const WRITE_REGISTER: u8 = 0x0D;
    pub const READ_REGISTER: u8 = 0x1D;
    pub const WRITE_BUFFER: u8 = 0x0E;
    pub const READ_BUFFER: u8 = 0x1E;
    pub const SET_DIO_IRQ_PARAMS: u8 = 0x08;
    pub const GET_IRQ_STATUS: u8 = 0x12;
    pub const CLEAR_IRQ_STATUS: u8 = 0x02;
    pub const SET_DIO2_AS_RF_SWITCH_CTRL: u8 = 0x9D;
    pub const SET_DIO3_AS_TCXO_CTRL: u8 = 0x97;
    pub const SET_RF_FREQUENCY: u8 = 0x86;
    pub const SET_PACKET_TYPE: u8 = 0x8A;
    pub const GET_PACKET_TYPE: u8 = 0x11;
    pub const SET_TX_PARAMS: u8 = 0x8E;
    pub const SET_MODULATION_PARAMS: u8 = 0x8B;
    pub const SET_PACKET_PARAMS: u8 = 0x8C;
    pub const SET_CAD_PARAMS: u8 = 0x88;
    pub const SET_BUFFER_BASE_ADDRESS: u8 = 0x8F;
    pub const GET_STATUS: u8 = 0xC0;
    pub const GET_RSSI_INST: u8 = 0x15;
    pub const GET_RX_BUFFER_STATUS: u8 = 0x13;
    pub const GET_PACKET_STATUS: u8 = 0x14;
    pub const GET_DEVICE_ERRORS: u8 = 0x17;
    pub const CLEAR_DEVICE_ERRORS: u8 = 0x07;
    pub const GET_STATS: u8 = 0x10;
    pub const RESET_STATS: u8 = 0x00;
}

/// IRQ register bits.
pub mod irq {
    pub const TX_DONE: u16 = 0x0001;
    pub const RX_DONE: u16 = 0x0002;
    pub const PREAMBLE_DETECTED: u16 = 0x0004;
    pub const SYNC_WORD_VALID: u16 = 0x0008;
    pub const HEADER_VALID: u16 = 0x0010;
    pub const HEADER_ERR: u16 = 0x0020;
    pub const CRC_ERR: u16 = 0x0040;
    pub const CAD_DONE: u16 = 0x0080;
    pub const CAD_DETECTED: u16 = 0x0100;
    pub const TIMEOUT: u16 = 0x0200;
    pub const ALL: u16 = 0x43FF;
}

/// Registers the driver touches.
pub mod reg {
    pub const VERSION: u16 = 0x0320;
    pub const SYNC_WORD_MSB: u16 = 0x0740;
    pub const SYNC_WORD_LSB: u16 = 0x0741;
    pub const IQ_POLARITY: u16 = 0x0736;
    pub const TX_MODULATION: u16 = 0x0889;
    pub const TX_CLAMP: u16 = 0x08D8;
    pub const OCP: u16 = 0x08E7;
    pub const RX_GAIN: u16 = 0x08AC;
    pub const RETENTION_LIST: u16 = 0x029F;
    pub const PAYLOAD_LENGTH: u16 = 0x0702;
    pub const RANDOM: u16 = 0x0819;
}

/// Device error bits (GetDeviceErrors).
pub mod device_error {
    pub const RC64K_CALIB: u16 = 1 << 0;
    pub const RC13M_CALIB: u16 = 1 << 1;
    pub const PLL_CALIB: u16 = 1 << 2;
    pub const ADC_CALIB: u16 = 1 << 3;
    pub const IMG_CALIB: u16 = 1 << 4;
    pub const XOSC_START: u16 = 1 << 5;
    pub const PLL_LOCK: u16 = 1 << 6;
    pub const PA_RAMP: u16 = 1 << 8;

    /// Plain-words names of the set bits.
    pub fn describe(bits: u16) -> Vec<&'static str> {
        const NAMES: [(u16, &str); 8] = [
            (RC64K_CALIB, "RC64k calibration failed"),
            (RC13M_CALIB, "RC13M calibration failed"),
            (PLL_CALIB, "PLL calibration failed"),
            (ADC_CALIB, "ADC calibration failed"),
            (IMG_CALIB, "image calibration failed"),
            (
                XOSC_START,
                "crystal/TCXO did not start (check the TCXO voltage setting)",
            ),
            (PLL_LOCK, "PLL did not lock"),
            (PA_RAMP, "PA ramp failed"),
        ];
        NAMES
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Chip mode as reported in status bits 6:4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChipMode {
    StbyRc,
    StbyXosc,
    Fs,
    Rx,
    Tx,
    Unknown(u8),
}

impl ChipMode {
    pub fn code(self) -> u8 {
        match self {
            ChipMode::StbyRc => 2,
            ChipMode::StbyXosc => 3,
            ChipMode::Fs => 4,
            ChipMode::Rx => 5,
            ChipMode::Tx => 6,
            ChipMode::Unknown(c) => c,
        }
    }

    pub fn from_code(c: u8) -> Self {
        match c {
            2 => ChipMode::StbyRc,
            3 => ChipMode::StbyXosc,
            4 => ChipMode::Fs,
            5 => ChipMode::Rx,
            6 => ChipMode::Tx,
            other => ChipMode::Unknown(other),
        }
    }
}

/// Command status, bits 3:1 of the status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    Ok,
    DataAvailable,
    Timeout,
    ProcessingError,
    ExecFailure,
    TxDone,
    Other(u8),
}

impl CommandStatus {
    pub fn code(self) -> u8 {
        match self {
            CommandStatus::Ok => 1,
            CommandStatus::DataAvailable => 2,
            CommandStatus::Timeout => 3,
            CommandStatus::ProcessingError => 4,
            CommandStatus::ExecFailure => 5,
            CommandStatus::TxDone => 6,
            CommandStatus::Other(c) => c,
        }
    }

    pub fn from_code(c: u8) -> Self {
        match c {
            1 => CommandStatus::Ok,
            2 => CommandStatus::DataAvailable,
            3 => CommandStatus::Timeout,
            4 => CommandStatus::ProcessingError,
            5 => CommandStatus::ExecFailure,
            6 => CommandStatus::TxDone,
            other => CommandStatus::Other(other),
        }
    }
}

/// A decoded status byte. Bit 7 is reserved and masked off (silicon sets it on write commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub mode: ChipMode,
    pub command: CommandStatus,
}

impl Status {
    pub fn decode(byte: u8) -> Self {
        Status {
            mode: ChipMode::from_code((byte >> 4) & 0x07),
            command: CommandStatus::from_code((byte >> 1) & 0x07),
        }
    }

    pub fn encode(self) -> u8 {
        ((self.mode.code() & 0x07) << 4) | ((self.command.code() & 0x07) << 1)
    }
}

/// `true` when a MISO byte looks like nothing is driving the line (no chip, wiring fault).
pub fn looks_absent(byte: u8) -> bool {
    byte == 0x00 || byte == 0xFF
}

/// RF frequency register value for `hz`, exact and rounded: `hz × 2^25 / 32 MHz`.
pub fn frequency_register(hz: u64) -> u32 {
    // 2^25 / 32e6 reduces to 2^17 / 125 000; the product fits u64 for any sub-GHz frequency.
    let num = hz.saturating_mul(1 << 17);
    let v = (num + 62_500) / 125_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Inverse of [`frequency_register`] (rounded to the nearest Hz).
pub fn frequency_from_register(reg: u32) -> u64 {
    (u64::from(reg) * 125_000 + (1 << 16)) >> 17
}

/// CalibrateImage argument pair for the band containing `hz` (the sheet's exact table; frequencies
/// between table bands use the nearest band below, which is what the table's bands cover in
/// practice for the MeshCore presets).
pub fn image_calibration_pair(hz: u64) -> (u8, u8) {
    let mhz = hz / 1_000_000;
    if mhz >= 902 {
        (0xE1, 0xE9)
    } else if mhz >= 863 {
        (0xD7, 0xDB)
    } else if mhz >= 779 {
        (0xC1, 0xC5)
    } else if mhz >= 470 {
        (0x75, 0x81)
    } else {
        (0x6B, 0x6F)
    }
}

/// Timeouts are in units of 15.625 µs (64 per ms), 24 bits; saturates at the largest finite value.
pub fn timeout_units(d: std::time::Duration) -> u32 {
    let units = d.as_micros().saturating_mul(64) / 1000;
    u32::try_from(units).unwrap_or(u32::MAX).min(0x00FF_FFFE)
}

/// Converts 24-bit timeout units back to a duration.
pub fn units_to_duration(units: u32) -> std::time::Duration {
    std::time::Duration::from_nanos(u64::from(units) * 15_625)
}

/// Packet RSSI in dBm from the raw GetPacketStatus byte.
pub fn rssi_dbm(raw: u8) -> f32 {
    -(f32::from(raw)) / 2.0
}

/// Packet SNR in dB from the raw (two's complement) GetPacketStatus byte.
pub fn snr_db(raw: u8) -> f32 {
    f32::from(raw as i8) / 4.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_register_matches_sheet() {
        assert_eq!(frequency_register(869_525_000), 0x3658_6666);
        assert_eq!(frequency_register(869_618_000), 0x3659_E354);
        assert_eq!(frequency_register(910_525_000), 0x38E8_6666);
        assert_eq!(frequency_register(915_000_000), 0x3930_0000);
        assert_eq!(frequency_register(915_800_000), 0x393C_CCCD);
        assert_eq!(frequency_register(916_575_000), 0x3949_3333);
        assert_eq!(frequency_register(433_650_000), 0x1B1A_6666);
        assert_eq!(frequency_from_register(0x3930_0000), 915_000_000);
    }

    #[test]
    fn status_byte_masks_reserved_bit() {
        let s = Status::decode(0xA2);
        assert_eq!(s.mode, ChipMode::StbyRc);
        assert_eq!(s.command, CommandStatus::Ok);
        assert_eq!(Status::decode(0x2A).command, CommandStatus::ExecFailure);
        assert_eq!(Status::decode(0x52).mode, ChipMode::Rx);
    }

    #[test]
    fn rssi_snr_conversion() {
        assert_eq!(rssi_dbm(0xB4), -90.0);
        assert_eq!(snr_db(0x28), 10.0);
        assert_eq!(snr_db(0xEC), -5.0);
        assert_eq!(snr_db(0x80), -32.0);
    }

    #[test]
    fn image_bands() {
        assert_eq!(image_calibration_pair(869_618_000), (0xD7, 0xDB));
        assert_eq!(image_calibration_pair(915_000_000), (0xE1, 0xE9));
        assert_eq!(image_calibration_pair(433_650_000), (0x6B, 0x6F));
    }
}
