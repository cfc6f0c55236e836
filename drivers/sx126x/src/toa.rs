//! Exact LoRa time on air (Semtech formula, SX126x datasheet §6.1.4), in integer arithmetic.

use crate::params::{Bandwidth, LoRaParams};
use std::time::Duration;

/// Symbol time 2^SF / BW, rounded to the nanosecond.
pub fn symbol_time(sf: u8, bw: Bandwidth) -> Duration {
    let (num, den) = bw.hz_fraction();
    let ns = ((1u128 << sf.min(12)) * 1_000_000_000 * u128::from(den)) / u128::from(num);
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// RadioLib's LDRO rule (the one MeshCore runs with): symbol time ≥ 16 ms.
pub fn ldro_required(sf: u8, bw: Bandwidth) -> bool {
    symbol_time(sf, bw) >= Duration::from_millis(16)
}

/// Number of symbols × 4 (the formula has quarter symbols).
pub fn symbols_x4(p: &LoRaParams, len: usize) -> u64 {
    let sf = i64::from(p.spreading_factor);
    let cr = i64::from(p.coding_rate.code());
    let pl = i64::try_from(len).unwrap_or(i64::MAX / 16);
    let h = if p.implicit_header { 0 } else { 20 };
    let crc = if p.crc_on { 16 } else { 0 };
    let de = i64::from(p.ldro());
    let npre = i64::from(p.preamble_len);
    let (fixed_x4, bits, per_block) = if sf >= 7 {
        // Npre + 4.25 + 8
        (
            npre * 4 + 17 + 32,
            8 * pl + crc - 4 * sf + 8 + h,
            4 * (sf - 2 * de),
        )
    } else {
        // Npre + 6.25 + 8
        (npre * 4 + 25 + 32, 8 * pl + crc - 4 * sf + h, 4 * sf)
    };
    let blocks = if bits > 0 && per_block > 0 {
        (bits + per_block - 1) / per_block
    } else {
        0
    };
    u64::try_from(fixed_x4 + 4 * blocks * (cr + 4)).unwrap_or(0)
}

/// Exact time on air of a `len`-byte payload with these settings, rounded to the nanosecond.
pub fn time_on_air(p: &LoRaParams, len: usize) -> Duration {
    let (num, den) = p.bandwidth.hz_fraction();
    let sx4 = u128::from(symbols_x4(p, len));
    let ns = (sx4 * (1u128 << p.spreading_factor.min(12)) * 1_000_000_000 * u128::from(den)
        + 2 * u128::from(num))
        / (4 * u128::from(num));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// Time from the start of the transmission until the explicit header has been received.
pub fn header_end(p: &LoRaParams) -> Duration {
    let extra = if p.spreading_factor >= 7 { 17 } else { 25 };
    let sx4 = u64::from(p.preamble_len) * 4 + extra + 32;
    symbol_time(p.spreading_factor, p.bandwidth) * u32::try_from(sx4).unwrap_or(u32::MAX) / 4
}
