//! The radio's entry in `/status` (key "radio") and its `/metrics` families.

use super::scheduler::TxPriority;
use super::worker::{lock, Shared};
use crate::status::{Metrics, StatusSource};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

pub struct RadioStatus {
    pub backend: &'static str,
    pub board: &'static str,
    pub region: &'static str,
    pub chip: &'static str,
    pub shared: Arc<Shared>,
}

impl StatusSource for RadioStatus {
    fn key(&self) -> &'static str {
        "radio"
    }

    fn status(&self) -> Value {
        let lora = self.shared.lora;
        let snap = lock(&self.shared.snapshot).clone();
        let (used, remaining, allowed, window, percent, total) = {
            let mut d = lock(&self.shared.duty);
            let now = Instant::now();
            (
                d.used(now),
                d.remaining(now),
                d.allowed(),
                d.window(),
                d.percent(),
                d.total(),
            )
        };
        let (queued, qstats) = {
            let q = lock(&self.shared.queue);
            (q.len(), q.stats.clone())
        };
        json!({
            "backend": self.backend,
            "state": snap.state,
            "chip": self.chip,
            "board": self.board,
            "region": self.region,
            "frequency_mhz": lora.frequency_hz as f64 / 1e6,
            "bandwidth_khz": lora.bandwidth.khz(),
            "spreading_factor": lora.spreading_factor,
            "coding_rate": format!("4/{}", lora.coding_rate.denominator()),
            "power_dbm": lora.power_dbm,
            "airtime": {
                "duty_cycle_percent": percent,
                "window_s": window.as_secs(),
                "allowed_ms": allowed.as_millis() as u64,
                "used_ms": used.as_millis() as u64,
                "remaining_ms": remaining.as_millis() as u64,
                "total_ms": total.as_millis() as u64,
            },
            "packets": {
                "rx": snap.driver.rx_packets,
                "tx": snap.driver.tx_packets,
                "crc_errors": snap.driver.crc_errors,
                "header_errors": snap.driver.header_errors,
                "tx_failed": snap.tx_failed,
            },
            "last_rssi_dbm": snap.last_rssi_dbm,
            "last_snr_db": snap.last_snr_db,
            "chip_resets": snap.driver.resets,
            "last_error": snap.last_error,
            "tx_queue": {
                "queued": queued,
                "dropped": {
                    "reply": qstats.dropped[0],
                    "push": qstats.dropped[1],
                    "advert": qstats.dropped[2],
                },
                "rejected": qstats.rejected,
                "deferred_by_duty_cycle": qstats.deferred_by_duty_cycle,
                "channel_busy": qstats.lbt_busy,
            },
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let snap = lock(&self.shared.snapshot).clone();
        let (used, remaining, total) = {
            let mut d = lock(&self.shared.duty);
            let now = Instant::now();
            (d.used(now), d.remaining(now), d.total())
        };
        let (queued, qstats) = {
            let q = lock(&self.shared.queue);
            (q.len(), q.stats.clone())
        };
        let d = &snap.driver;
        out.counter(
            "meshroom_radio_rx_packets_total",
            "LoRa frames received intact",
            &[],
            d.rx_packets,
        );
        out.counter(
            "meshroom_radio_tx_packets_total",
            "LoRa frames sent",
            &[],
            d.tx_packets,
        );
        out.counter(
            "meshroom_radio_crc_errors_total",
            "LoRa frames dropped for a payload CRC error",
            &[],
            d.crc_errors,
        );
        out.counter(
            "meshroom_radio_header_errors_total",
            "LoRa frames lost to a header error",
            &[],
            d.header_errors,
        );
        out.counter(
            "meshroom_radio_chip_resets_total",
            "Chip resets after a fault",
            &[],
            d.resets,
        );
        out.counter(
            "meshroom_radio_tx_failed_total",
            "Frames lost because the chip failed while sending",
            &[],
            snap.tx_failed,
        );
        out.counter(
            "meshroom_radio_airtime_seconds_total",
            "Airtime used since start",
            &[],
            total.as_secs(),
        );
        out.gauge(
            "meshroom_radio_airtime_window_used_seconds",
            "Airtime used in the duty-cycle window",
            &[],
            used.as_secs_f64(),
        );
        out.gauge(
            "meshroom_radio_airtime_window_remaining_seconds",
            "Airtime left in the duty-cycle window",
            &[],
            remaining.as_secs_f64(),
        );
        if let Some(r) = snap.last_rssi_dbm {
            out.gauge(
                "meshroom_radio_last_rssi_dbm",
                "RSSI of the last frame received",
                &[],
                f64::from(r),
            );
        }
        if let Some(s) = snap.last_snr_db {
            out.gauge(
                "meshroom_radio_last_snr_db",
                "SNR of the last frame received",
                &[],
                f64::from(s),
            );
        }
        out.gauge(
            "meshroom_radio_tx_queue_length",
            "Frames waiting to be sent",
            &[],
            queued as f64,
        );
        for (p, dropped) in TxPriority::ALL.iter().zip(qstats.dropped) {
            out.counter(
                "meshroom_radio_tx_dropped_total",
                "Frames dropped from a full transmit queue, by class",
                &[("class", p.name())],
                dropped,
            );
        }
    }
}
