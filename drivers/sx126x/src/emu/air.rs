//! The simulated air: transmissions on it, the link model (loss, drop), and the reception and
//! collision rules of the emulator sheet §11 (co-channel, timing, capture, imperfect SF
//! orthogonality, SINR).

use crate::params::{Bandwidth, LoRaParams};
use std::collections::HashMap;

/// Node identity on the air (one per emulated chip, or per remote radio).
pub type NodeId = u64;

/// Node id of frames injected by tests (they reach everyone with no path loss). Local chips never
/// get this id; a remote radio may, and is then an ordinary radio.
pub const INJECTOR: NodeId = 0;

/// Link model knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct AirConfig {
    /// Path loss between any two nodes unless overridden per link, dB.
    pub default_loss_db: f32,
    /// Extra probability of losing a reception outright, 0..1.
    pub drop_probability: f64,
    /// Same-SF capture threshold, dB.
    pub capture_db: f32,
    /// Noise figure added to the thermal floor (boosted RX gain), dB.
    pub noise_figure_db: f32,
    /// Gaussian measurement noise on reported packet RSSI (σ, dB); 0 = exact.
    pub rssi_sigma_db: f32,
    /// Gaussian measurement noise on reported packet SNR (σ, dB); 0 = exact.
    pub snr_sigma_db: f32,
    /// Soften the demodulation cliff: near SNRmin a frame is locked with a logistic probability
    /// (≈ 1 % at −1 dB, 50 % at the floor, ≈ 99 % at +1 dB) instead of all-or-nothing.
    pub soft_threshold: bool,
}

impl Default for AirConfig {
    fn default() -> Self {
        AirConfig {
            default_loss_db: 100.0,
            drop_probability: 0.0,
            capture_db: 6.0,
            noise_figure_db: 6.0,
            rssi_sigma_db: 0.0,
            snr_sigma_db: 0.0,
            soft_threshold: false,
        }
    }
}

/// Demodulation floor per SF (Semtech figures), dB.
pub fn snr_min_db(sf: u8) -> f32 {
    match sf {
        5 => -2.5,
        6 => -5.0,
        7 => -7.5,
        8 => -10.0,
        9 => -12.5,
        10 => -15.0,
        11 => -17.5,
        _ => -20.0,
    }
}

/// Imperfect orthogonality (Croce et al.), rows wanted SF7..12, columns interferer SF7..12.
const ISO: [[f32; 6]; 6] = [
    [1.0, -8.0, -9.0, -9.0, -9.0, -9.0],
    [-11.0, 1.0, -11.0, -12.0, -13.0, -13.0],
    [-15.0, -13.0, 1.0, -13.0, -14.0, -15.0],
    [-19.0, -18.0, -17.0, 1.0, -17.0, -18.0],
    [-22.0, -22.0, -21.0, -20.0, 1.0, -20.0],
    [-25.0, -25.0, -25.0, -24.0, -23.0, 1.0],
];

/// Probability of locking onto a frame `margin_db` above (or below) the demodulation floor when
/// the soft threshold is on.
pub fn lock_probability(margin_db: f32) -> f64 {
    1.0 / (1.0 + (-4.6 * f64::from(margin_db)).exp())
}

/// One standard normal sample (Box–Muller) from two uniform samples in (0, 1].
pub fn gaussian(u1: f64, u2: f64) -> f64 {
    (-2.0 * u1.max(f64::MIN_POSITIVE).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

pub fn dbm_to_mw(dbm: f32) -> f64 {
    10f64.powf(f64::from(dbm) / 10.0)
}

pub fn mw_to_dbm(mw: f64) -> f32 {
    (10.0 * mw.max(1e-30).log10()) as f32
}

pub fn noise_floor_dbm(bw: Bandwidth, nf_db: f32) -> f32 {
    -174.0 + 10.0 * (f64::from(bw.hz())).log10() as f32 + nf_db
}

/// One transmission as the air sees it. Times in ns on the world clock.
#[derive(Debug, Clone)]
pub struct Transmission {
    pub id: u64,
    pub from: NodeId,
    /// Injected by a test: no path loss (not "sent by node 0", which a remote radio may be).
    pub injected: bool,
    pub params: LoRaParams,
    pub ldro: bool,
    /// Radiated power, dBm.
    pub power_dbm: f32,
    pub payload: Vec<u8>,
    pub t0: u64,
    pub t_end: u64,
    /// Set when the sender stopped early (timeout, standby): the rest of the frame never went out.
    pub cut_at: Option<u64>,
}

impl Transmission {
    pub fn symbol_ns(&self) -> u64 {
        u64::try_from(self.params.symbol_time().as_nanos()).unwrap_or(u64::MAX)
    }

    /// When the explicit header has been received.
    pub fn t_header(&self) -> u64 {
        self.t0 + u64::try_from(crate::toa::header_end(&self.params).as_nanos()).unwrap_or(0)
    }

    /// Start of the critical section: the last 5 preamble symbols.
    pub fn t_critical(&self) -> u64 {
        self.t0 + u64::from(self.params.preamble_len.saturating_sub(5)) * self.symbol_ns()
    }

    /// Time of preamble detection (4 symbols in, or the whole preamble if shorter).
    pub fn t_preamble_detect(&self) -> u64 {
        self.t0 + u64::from(self.params.preamble_len.min(4)) * self.symbol_ns()
    }

    /// On air (energy) at any time within `[a, b)`.
    pub fn overlaps(&self, a: u64, b: u64) -> bool {
        let end = self.cut_at.unwrap_or(self.t_end).min(self.t_end);
        self.t0 < b && end > a
    }

    fn band_overlaps(&self, other: &LoRaParams) -> bool {
        let df = self.params.frequency_hz.abs_diff(other.frequency_hz);
        let half = (u64::from(self.params.bandwidth.hz()) + u64::from(other.bandwidth.hz())) / 2;
        df < half
    }
}

/// What the receiver configuration is at the moment it might lock.
#[derive(Debug, Clone, Copy)]
pub struct RxConfig {
    pub params: LoRaParams,
    pub ldro: bool,
    pub noise_figure_db: f32,
}

/// Rule 1 + 2 of §11.3: same SF/BW/IQ/sync word/LDRO/header mode, co-channel (≤ BW/4).
pub fn can_demodulate(tx: &Transmission, rx: &RxConfig) -> bool {
    let a = &tx.params;
    let b = &rx.params;
    a.spreading_factor == b.spreading_factor
        && a.bandwidth == b.bandwidth
        && a.invert_iq == b.invert_iq
        && a.sync_word == b.sync_word
        && a.implicit_header == b.implicit_header
        && tx.ldro == rx.ldro
        && a.frequency_hz.abs_diff(b.frequency_hz) <= u64::from(b.bandwidth.hz() / 4)
}

/// The air: recent transmissions and the link table.
#[derive(Debug, Default)]
pub struct Air {
    pub config: AirConfig,
    pub on_air: Vec<Transmission>,
    links: HashMap<(NodeId, NodeId), f32>,
}

/// Outcome of the interference test over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    None,
    Damaged,
}

impl Air {
    pub fn new(config: AirConfig) -> Self {
        Air {
            config,
            on_air: Vec::new(),
            links: HashMap::new(),
        }
    }

    pub fn set_link_loss(&mut self, from: NodeId, to: NodeId, loss_db: f32) {
        self.links.insert((from, to), loss_db);
    }

    pub fn loss(&self, from: NodeId, to: NodeId) -> f32 {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.config.default_loss_db)
    }

    pub fn rx_power(&self, tx: &Transmission, to: NodeId) -> f32 {
        if tx.injected {
            return tx.power_dbm;
        }
        tx.power_dbm - self.loss(tx.from, to)
    }

    pub fn get(&self, id: u64) -> Option<&Transmission> {
        self.on_air.iter().find(|t| t.id == id)
    }

    pub fn add(&mut self, tx: Transmission, now: u64) {
        // Forget what ended a minute ago — unless a frame still on air started before that: its
        // reception is judged at its end against everything that overlapped it, and SF12 at
        // 7.8 kHz lasts up to almost four minutes.
        let oldest_on_air = self
            .on_air
            .iter()
            .filter(|t| t.t_end > now)
            .map(|t| t.t0)
            .min()
            .unwrap_or(u64::MAX);
        let horizon = now.saturating_sub(60_000_000_000).min(oldest_on_air);
        self.on_air.retain(|t| t.t_end >= horizon);
        self.on_air.push(tx);
    }

    pub fn cut(&mut self, id: u64, at: u64) {
        if let Some(t) = self.on_air.iter_mut().find(|t| t.id == id) {
            if at < t.t_end {
                t.cut_at = Some(at);
            }
        }
    }

    /// Interference power (mW) at `to` from transmissions other than `wanted` overlapping [a, b)
    /// and sharing band with `rx`.
    fn interferers<'a>(
        &'a self,
        wanted: u64,
        rx: &'a LoRaParams,
        to: NodeId,
        a: u64,
        b: u64,
    ) -> impl Iterator<Item = (&'a Transmission, f32)> + 'a {
        self.on_air
            .iter()
            .filter(move |t| {
                t.id != wanted && t.from != to && t.overlaps(a, b) && t.band_overlaps(rx)
            })
            .map(move |t| (t, self.rx_power(t, to)))
    }

    /// §11.5 rule 2 over [a, b): capture thresholds and SINR; plus truncation by the sender.
    pub fn damage(&self, p: &Transmission, rx: &RxConfig, to: NodeId, a: u64, b: u64) -> Damage {
        if let Some(cut) = p.cut_at {
            if cut < b {
                return Damage::Damaged;
            }
        }
        let pp = self.rx_power(p, to);
        let noise = dbm_to_mw(noise_floor_dbm(rx.params.bandwidth, rx.noise_figure_db));
        let mut sum_i = 0.0;
        for (q, pq) in self.interferers(p.id, &rx.params, to, a, b) {
            sum_i += dbm_to_mw(pq);
            let sf_p = p.params.spreading_factor;
            let sf_q = q.params.spreading_factor;
            let threshold = if sf_p == sf_q && p.params.bandwidth == q.params.bandwidth {
                self.config.capture_db
            } else if (7..=12).contains(&sf_p)
                && (7..=12).contains(&sf_q)
                && p.params.bandwidth == q.params.bandwidth
            {
                ISO[usize::from(sf_p - 7)][usize::from(sf_q - 7)]
            } else {
                // Different bandwidths overlapping in frequency: treat as noise only.
                f32::NEG_INFINITY
            };
            if pp - pq < threshold {
                return Damage::Damaged;
            }
        }
        let sinr = pp - mw_to_dbm(noise + sum_i);
        if sinr < snr_min_db(p.params.spreading_factor) {
            return Damage::Damaged;
        }
        Damage::None
    }

    /// RSSI of the packet, signal RSSI and SNR at `to` over [a, b) (GetPacketStatus model).
    pub fn link_figures(
        &self,
        p: &Transmission,
        rx: &RxConfig,
        to: NodeId,
        a: u64,
        b: u64,
    ) -> (f32, f32, f32) {
        let s = self.rx_power(p, to);
        let n = dbm_to_mw(noise_floor_dbm(rx.params.bandwidth, rx.noise_figure_db));
        let i: f64 = self
            .interferers(p.id, &rx.params, to, a, b)
            .map(|(_, pq)| dbm_to_mw(pq))
            .sum();
        let rssi = mw_to_dbm(dbm_to_mw(s) + n + i);
        let snr = s - mw_to_dbm(n + i);
        (rssi, s, snr)
    }

    /// Energy detector: noise plus every in-band transmission on air at `now`.
    pub fn rssi_inst(&self, rx: &RxConfig, to: NodeId, now: u64) -> f32 {
        let n = dbm_to_mw(noise_floor_dbm(rx.params.bandwidth, rx.noise_figure_db));
        let e: f64 = self
            .on_air
            .iter()
            .filter(|t| t.from != to && t.overlaps(now, now + 1) && t.band_overlaps(&rx.params))
            .map(|t| dbm_to_mw(self.rx_power(t, to)))
            .sum();
        mw_to_dbm(n + e)
    }

    /// CAD: some same-SF/BW co-channel transmission during [a, b) with SNR ≥ SNRmin − 2 dB.
    pub fn cad_detects(&self, rx: &RxConfig, to: NodeId, a: u64, b: u64) -> bool {
        let n = noise_floor_dbm(rx.params.bandwidth, rx.noise_figure_db);
        self.on_air.iter().any(|t| {
            t.from != to
                && t.overlaps(a, b)
                && t.params.spreading_factor == rx.params.spreading_factor
                && t.params.bandwidth == rx.params.bandwidth
                && t.params.frequency_hz.abs_diff(rx.params.frequency_hz)
                    <= u64::from(rx.params.bandwidth.hz() / 4)
                && self.rx_power(t, to) - n >= snr_min_db(rx.params.spreading_factor) - 2.0
        })
    }
}
