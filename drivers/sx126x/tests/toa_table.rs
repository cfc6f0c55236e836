//! Time on air equals the worked table of the emulator sheet (§11.2), every row and column,
//! plus the MeshCore preset examples.

use std::time::Duration;
use sx126x::params::{Bandwidth, CodingRate, LoRaParams};

/// (SF, BW, LDRO, CR denominator, [10 B pre 16, 255 B pre 16, 10 B pre 32, 255 B pre 32] in µs)
const TABLE: &[(u8, Bandwidth, bool, u8, [u64; 4])] = &[
    (
        7,
        Bandwidth::Khz62_5,
        false,
        5,
        [98816, 815616, 131584, 848384],
    ),
    (
        7,
        Bandwidth::Khz62_5,
        false,
        8,
        [123392, 1270272, 156160, 1303040],
    ),
    (
        8,
        Bandwidth::Khz62_5,
        false,
        5,
        [177152, 1446912, 242688, 1512448],
    ),
    (
        8,
        Bandwidth::Khz62_5,
        false,
        8,
        [214016, 2245632, 279552, 2311168],
    ),
    (
        9,
        Bandwidth::Khz62_5,
        false,
        5,
        [354304, 2566144, 485376, 2697216],
    ),
    (
        9,
        Bandwidth::Khz62_5,
        false,
        8,
        [428032, 3966976, 559104, 4098048],
    ),
    (
        10,
        Bandwidth::Khz62_5,
        true,
        5,
        [708608, 5705728, 970752, 5967872],
    ),
    (
        10,
        Bandwidth::Khz62_5,
        true,
        8,
        [856064, 8851456, 1118208, 9113600],
    ),
    (
        11,
        Bandwidth::Khz62_5,
        true,
        5,
        [1417216, 10264576, 1941504, 10788864],
    ),
    (
        11,
        Bandwidth::Khz62_5,
        true,
        8,
        [1712128, 15867904, 2236416, 16392192],
    ),
    (
        12,
        Bandwidth::Khz62_5,
        true,
        5,
        [2506752, 18563072, 3555328, 19611648],
    ),
    (
        12,
        Bandwidth::Khz62_5,
        true,
        8,
        [2899968, 28590080, 3948544, 29638656],
    ),
    (
        7,
        Bandwidth::Khz125,
        false,
        5,
        [49408, 407808, 65792, 424192],
    ),
    (
        7,
        Bandwidth::Khz125,
        false,
        8,
        [61696, 635136, 78080, 651520],
    ),
    (
        8,
        Bandwidth::Khz125,
        false,
        5,
        [88576, 723456, 121344, 756224],
    ),
    (
        8,
        Bandwidth::Khz125,
        false,
        8,
        [107008, 1122816, 139776, 1155584],
    ),
    (
        9,
        Bandwidth::Khz125,
        false,
        5,
        [177152, 1283072, 242688, 1348608],
    ),
    (
        9,
        Bandwidth::Khz125,
        false,
        8,
        [214016, 1983488, 279552, 2049024],
    ),
    (
        10,
        Bandwidth::Khz125,
        false,
        5,
        [354304, 2361344, 485376, 2492416],
    ),
    (
        10,
        Bandwidth::Khz125,
        false,
        8,
        [428032, 3639296, 559104, 3770368],
    ),
    (
        11,
        Bandwidth::Khz125,
        true,
        5,
        [708608, 5132288, 970752, 5394432],
    ),
    (
        11,
        Bandwidth::Khz125,
        true,
        8,
        [856064, 7933952, 1118208, 8196096],
    ),
    (
        12,
        Bandwidth::Khz125,
        true,
        5,
        [1253376, 9281536, 1777664, 9805824],
    ),
    (
        12,
        Bandwidth::Khz125,
        true,
        8,
        [1449984, 14295040, 1974272, 14819328],
    ),
    (
        7,
        Bandwidth::Khz250,
        false,
        5,
        [24704, 203904, 32896, 212096],
    ),
    (
        7,
        Bandwidth::Khz250,
        false,
        8,
        [30848, 317568, 39040, 325760],
    ),
    (
        8,
        Bandwidth::Khz250,
        false,
        5,
        [44288, 361728, 60672, 378112],
    ),
    (
        8,
        Bandwidth::Khz250,
        false,
        8,
        [53504, 561408, 69888, 577792],
    ),
    (
        9,
        Bandwidth::Khz250,
        false,
        5,
        [88576, 641536, 121344, 674304],
    ),
    (
        9,
        Bandwidth::Khz250,
        false,
        8,
        [107008, 991744, 139776, 1024512],
    ),
    (
        10,
        Bandwidth::Khz250,
        false,
        5,
        [177152, 1180672, 242688, 1246208],
    ),
    (
        10,
        Bandwidth::Khz250,
        false,
        8,
        [214016, 1819648, 279552, 1885184],
    ),
    (
        11,
        Bandwidth::Khz250,
        false,
        5,
        [313344, 2156544, 444416, 2287616],
    ),
    (
        11,
        Bandwidth::Khz250,
        false,
        8,
        [362496, 3311616, 493568, 3442688],
    ),
    (
        12,
        Bandwidth::Khz250,
        true,
        5,
        [626688, 4640768, 888832, 4902912],
    ),
    (
        12,
        Bandwidth::Khz250,
        true,
        8,
        [724992, 7147520, 987136, 7409664],
    ),
];

fn params(sf: u8, bw: Bandwidth, cr: u8, pre: u16) -> LoRaParams {
    let cr = CodingRate::from_denominator(cr).expect("table coding rate");
    let mut p = LoRaParams::meshcore(915_000_000, bw, sf, cr);
    p.preamble_len = pre;
    p
}

#[test]
fn every_row_of_the_worked_table() {
    assert_eq!(TABLE.len(), 36);
    for &(sf, bw, ldro, cr, expect) in TABLE {
        let cases = [(10usize, 16u16), (255, 16), (10, 32), (255, 32)];
        for (i, &(len, pre)) in cases.iter().enumerate() {
            let p = params(sf, bw, cr, pre);
            assert_eq!(p.ldro(), ldro, "LDRO for SF{sf} {bw:?}");
            assert_eq!(
                p.time_on_air(len),
                Duration::from_micros(expect[i]),
                "SF{sf} {bw:?} CR4/{cr} {len} B preamble {pre}"
            );
        }
    }
}

#[test]
fn meshcore_preset_examples() {
    let usa = params(7, Bandwidth::Khz62_5, 5, 32);
    assert_eq!(usa.time_on_air(1), Duration::from_micros(100_864));
    assert_eq!(usa.time_on_air(100), Duration::from_micros(397_824));
    assert_eq!(usa.time_on_air(255), Duration::from_micros(848_384));
    let eu = params(8, Bandwidth::Khz62_5, 8, 32);
    assert_eq!(eu.time_on_air(1), Duration::from_micros(214_016));
    assert_eq!(eu.time_on_air(100), Duration::from_micros(1_033_216));
    assert_eq!(eu.time_on_air(255), Duration::from_micros(2_311_168));
    let old_eu = params(11, Bandwidth::Khz250, 5, 16);
    assert_eq!(old_eu.time_on_air(255), Duration::from_micros(2_156_544));
}

#[test]
fn meshcore_preamble_follows_sf() {
    assert_eq!(
        LoRaParams::meshcore(869_618_000, Bandwidth::Khz62_5, 8, CodingRate::Cr4_8).preamble_len,
        32
    );
    assert_eq!(
        LoRaParams::meshcore(869_525_000, Bandwidth::Khz250, 11, CodingRate::Cr4_5).preamble_len,
        16
    );
}
