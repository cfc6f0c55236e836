//! Transmissions entering and leaving the air — from a local chip, from a test's injector, or
//! from another process on the air directory — and what each local receiver makes of them:
//! preamble lock (with capture), header and payload damage, packet status, the received buffer.

use super::air::{can_demodulate, noise_floor_dbm, Damage, RxConfig, Transmission, INJECTOR};
use super::chip::{rx_end_bits, EmuMode, Lock};
use super::wire::{self, AirMessage};
use super::world::{dur_ns, ChipId, Event, State, TxRecord};
use crate::command::{irq, CommandStatus};
use crate::params::LoRaParams;
use rand::Rng;
use std::time::Duration;

/// Transmissions the world's log keeps (the most recent ones).
pub(super) const TX_LOG_KEPT: usize = 4096;

/// Where a transmission comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A local chip.
    Chip(ChipId),
    /// A test's [`super::World::inject_rx`]: no path loss to anyone.
    Injector,
    /// Another process on the air directory, by its node id (any value, 0 included).
    Remote(u64),
}

impl State {
    pub(super) fn rx_config(&self, chip: ChipId) -> RxConfig {
        let c = &self.chips[chip];
        let params = c.lora();
        RxConfig {
            params,
            ldro: c.ldro,
            noise_figure_db: c.noise_figure(self.air.config.noise_figure_db),
        }
    }

    pub(super) fn cut(&mut self, tx_id: u64, at: u64) {
        self.air.cut(tx_id, at);
        let Some(t) = self.air.get(tx_id) else { return };
        let (from, t0) = (t.from, t.t0);
        if self.socket.is_some() {
            let msg = AirMessage::Cut {
                sender: from,
                tx_id,
                after: Duration::from_nanos(at.saturating_sub(t0)),
            };
            self.outbox.push(wire::encode(&msg));
        }
    }

    /// Puts a transmission on the air and schedules preamble detection at every local chip.
    pub(super) fn start_transmission(
        &mut self,
        source: Source,
        params: LoRaParams,
        power_dbm: f32,
        payload: Vec<u8>,
        t0: u64,
        ldro: Option<bool>,
    ) -> u64 {
        let id = self.next_tx;
        self.next_tx += 1;
        let (chip, from) = match source {
            Source::Chip(c) => (Some(c), self.chips[c].node),
            Source::Injector => (None, INJECTOR),
            Source::Remote(node) => (None, node),
        };
        let toa = params.time_on_air(payload.len());
        let tx = Transmission {
            id,
            from,
            injected: source == Source::Injector,
            params,
            ldro: ldro.unwrap_or_else(|| params.ldro()),
            power_dbm,
            payload,
            t0,
            t_end: t0 + dur_ns(toa),
            cut_at: None,
        };
        // Local transmissions go out to the air directory (when the lock is released).
        if chip.is_some() && self.socket.is_some() {
            let msg = AirMessage::Start {
                sender: from,
                tx_id: id,
                params: LoRaParams {
                    power_dbm: 0,
                    ..params
                },
                ldro: tx.ldro,
                power_dbm,
                time_on_air: toa,
                payload: tx.payload.clone(),
            };
            self.outbox.push(wire::encode(&msg));
        }
        self.tx_log.push(TxRecord {
            chip,
            node: from,
            t0: Duration::from_nanos(t0),
            time_on_air: toa,
            params,
            payload: tx.payload.clone(),
        });
        if self.tx_log.len() > TX_LOG_KEPT + TX_LOG_KEPT / 4 {
            // A gateway's world runs for months: keep the recent past only.
            let excess = self.tx_log.len() - TX_LOG_KEPT;
            self.tx_log.drain(..excess);
        }
        let t_pd = tx.t_preamble_detect();
        self.air.add(tx, t0);
        for other in 0..self.chips.len() {
            if Some(other) != chip {
                self.schedule(
                    t_pd,
                    Event::RxPreamble {
                        chip: other,
                        tx: id,
                    },
                );
            }
        }
        id
    }

    pub(super) fn remote(&mut self, msg: AirMessage) {
        let now = self.now;
        match msg {
            AirMessage::Start {
                sender,
                tx_id,
                params,
                ldro,
                power_dbm,
                payload,
                ..
            } => {
                if self.chips.iter().any(|c| c.node == sender) {
                    return; // our own datagram echoed back
                }
                let id = self.start_transmission(
                    Source::Remote(sender),
                    params,
                    power_dbm,
                    payload,
                    now,
                    Some(ldro),
                );
                self.remote_ids.insert((sender, tx_id), id);
                if self.remote_ids.len() > 4096 {
                    self.remote_ids.clear();
                }
            }
            AirMessage::Cut {
                sender,
                tx_id,
                after,
            } => {
                if let Some(&id) = self.remote_ids.get(&(sender, tx_id)) {
                    if let Some(t0) = self.air.get(id).map(|t| t.t0) {
                        self.air.cut(id, t0 + dur_ns(after));
                    }
                }
            }
        }
    }

    pub(super) fn rx_preamble(&mut self, chip: ChipId, tx: u64, t: u64) {
        let Some(p) = self.air.get(tx) else { return };
        let c = &self.chips[chip];
        if !matches!(c.mode, EmuMode::Rx { .. }) || c.node == p.from {
            return;
        }
        if p.cut_at.is_some_and(|cut| cut <= t) {
            return;
        }
        let cfg = self.rx_config(chip);
        if !can_demodulate(p, &cfg) || c.rx_since > p.t_critical() {
            return;
        }
        let power = self.air.rx_power(p, c.node);
        let snr = power - noise_floor_dbm(cfg.params.bandwidth, cfg.noise_figure_db);
        let margin = snr - super::air::snr_min_db(cfg.params.spreading_factor);
        if self.air.config.soft_threshold && margin.abs() < 3.0 {
            let p_lock = super::air::lock_probability(margin);
            if !self.rng.gen_bool(p_lock.clamp(0.0, 1.0)) {
                return;
            }
        } else if margin < 0.0 {
            return;
        }
        if let Some(l) = c.lock {
            // Preamble capture: a much stronger packet steals the lock before the header.
            if l.header_done || power < l.power_dbm + self.air.config.capture_db {
                return;
            }
        }
        let drop_p = self.air.config.drop_probability;
        if drop_p > 0.0 && self.rng.gen_bool(drop_p.clamp(0.0, 1.0)) {
            return;
        }
        let (t_hdr, t_end) = (p.t_header(), p.t_end);
        let c = &mut self.chips[chip];
        c.lock = Some(Lock {
            tx_id: tx,
            power_dbm: power,
            header_done: false,
        });
        c.latch(irq::PREAMBLE_DETECTED);
        self.schedule(t_hdr, Event::RxHeader { chip, tx });
        self.schedule(t_end, Event::RxEnd { chip, tx });
    }

    fn locked_on(&self, chip: ChipId, tx: u64) -> bool {
        let c = &self.chips[chip];
        matches!(c.mode, EmuMode::Rx { .. }) && c.lock.is_some_and(|l| l.tx_id == tx)
    }

    fn damage(&self, chip: ChipId, p: &Transmission, a: u64, b: u64) -> Damage {
        let cfg = self.rx_config(chip);
        let node = self.chips[chip].node;
        self.air.damage(p, &cfg, node, a, b)
    }

    pub(super) fn rx_header(&mut self, chip: ChipId, tx: u64) {
        if !self.locked_on(chip, tx) {
            return;
        }
        let Some(p) = self.air.get(tx).cloned() else {
            return;
        };
        if self.damage(chip, &p, p.t_critical(), p.t_header()) == Damage::Damaged {
            let c = &mut self.chips[chip];
            c.lock = None;
            c.latch(irq::HEADER_ERR);
            return;
        }
        let c = &mut self.chips[chip];
        if let Some(l) = c.lock.as_mut() {
            l.header_done = true;
        }
        c.latch(irq::HEADER_VALID);
        self.rx_timer_armed[chip] = false;
    }

    pub(super) fn rx_end(&mut self, chip: ChipId, tx: u64) {
        if !self.locked_on(chip, tx) {
            return;
        }
        let Some(p) = self.air.get(tx).cloned() else {
            return;
        };
        let mut crc_failed = self.damage(chip, &p, p.t_header(), p.t_end) == Damage::Damaged;
        if self.chips[chip].take_fault("crc_next") {
            crc_failed = true;
        }
        let cfg = self.rx_config(chip);
        let node = self.chips[chip].node;
        let (mut rssi, mut signal, mut snr) = self.air.link_figures(&p, &cfg, node, p.t0, p.t_end);
        let (rs, ss) = (self.air.config.rssi_sigma_db, self.air.config.snr_sigma_db);
        if rs > 0.0 {
            let e = rs * super::air::gaussian(self.rng.gen(), self.rng.gen()) as f32;
            rssi += e;
            signal += e;
        }
        if ss > 0.0 {
            snr += ss * super::air::gaussian(self.rng.gen(), self.rng.gen()) as f32;
        }
        let flips: Vec<(usize, u8)> = if crc_failed && !p.payload.is_empty() {
            (0..3)
                .map(|_| {
                    (
                        self.rng.gen_range(0..p.payload.len()),
                        self.rng.gen_range(1..=255u8),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        let c = &mut self.chips[chip];
        let mut data = p.payload.clone();
        for (i, x) in flips {
            if let Some(b) = data.get_mut(i) {
                *b ^= x;
            }
        }
        let start = c.rx_ptr;
        for (i, b) in data.iter().enumerate() {
            c.buffer[usize::from(start.wrapping_add(i as u8))] = *b;
        }
        let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
        c.rx_start = start;
        c.rx_len = len;
        c.rx_done_unread = true;
        c.packet_status = [
            (-2.0 * rssi).round().clamp(0.0, 255.0) as u8,
            ((4.0 * snr).round().clamp(-128.0, 127.0) as i8) as u8,
            (-2.0 * signal).round().clamp(0.0, 255.0) as u8,
        ];
        c.stats[0] = c.stats[0].wrapping_add(1);
        if crc_failed {
            c.stats[1] = c.stats[1].wrapping_add(1);
        }
        c.lock = None;
        c.counters.rx_done += 1;
        c.cmd_status = CommandStatus::DataAvailable;
        let has_crc = p.params.crc_on;
        c.latch(rx_end_bits(crc_failed, has_crc));
        match c.mode {
            EmuMode::Rx { continuous: true } => c.rx_ptr = start.wrapping_add(len),
            _ => {
                let fb = c.fallback;
                c.set_mode(fb);
            }
        }
    }
}
