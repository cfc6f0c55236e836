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
        let minutes = lock(&self.shared.activity).series(Instant::now());
        let last_hour = json!({
            "minute_s": 60,
            "airtime_ms": minutes.iter().map(|m| m.airtime_ms).collect::<Vec<_>>(),
            "tx": minutes.iter().map(|m| m.tx).collect::<Vec<_>>(),
            "rx": minutes.iter().map(|m| m.rx).collect::<Vec<_>>(),
        });
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
            "last_hour": last_hour,
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

/// One line for the `meshroom-gw status` table, from the `radio` value of `/status`.
pub fn status_line(radio: &Value) -> Option<String> {
    let state = radio["state"].as_str()?;
    let backend = radio["backend"].as_str().unwrap_or("?");
    if radio["frequency_mhz"].is_null() {
        return Some(format!(
            "radio {backend}: {state}{}",
            radio["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let air = &radio["airtime"];
    let mut line = format!(
        "radio {backend} ({}): {state}, {} MHz SF{} {} kHz; rx {} tx {} crc errors {}; airtime {:.1}/{:.1} s in {} s ({}%)",
        radio["chip"].as_str().unwrap_or("?"),
        radio["frequency_mhz"],
        radio["spreading_factor"],
        radio["bandwidth_khz"],
        radio["packets"]["rx"].as_u64().unwrap_or(0),
        radio["packets"]["tx"].as_u64().unwrap_or(0),
        radio["packets"]["crc_errors"].as_u64().unwrap_or(0),
        air["used_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        air["allowed_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        air["window_s"].as_u64().unwrap_or(0),
        air["duty_cycle_percent"],
    );
    if let (Some(r), Some(s)) = (
        radio["last_rssi_dbm"].as_f64(),
        radio["last_snr_db"].as_f64(),
    ) {
        line.push_str(&format!("; last {r:.1} dBm / {s:.2} dB"));
    }
    let resets = radio["chip_resets"].as_u64().unwrap_or(0);
    if resets > 0 {
        line.push_str(&format!("; {resets} chip resets"));
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reads_the_status_value() {
        let v = json!({
            "backend": "sim", "state": "receiving", "chip": "SX1262 (emulated)",
            "frequency_mhz": 869.618, "spreading_factor": 8, "bandwidth_khz": 62.5,
            "packets": {"rx": 3, "tx": 1, "crc_errors": 0},
            "airtime": {"used_ms": 2311, "allowed_ms": 360000, "window_s": 3600, "duty_cycle_percent": 10.0},
            "last_rssi_dbm": -78.0, "last_snr_db": 9.25, "chip_resets": 0
        });
        let line = status_line(&v).expect("line");
        assert_eq!(
            line,
            "radio sim (SX1262 (emulated)): receiving, 869.618 MHz SF8 62.5 kHz; rx 3 tx 1 crc errors 0; airtime 2.3/360.0 s in 3600 s (10.0%); last -78.0 dBm / 9.25 dB"
        );
        let off =
            json!({"backend": "none", "state": "not running", "reason": "radio.backend is none"});
        assert_eq!(
            status_line(&off).expect("line"),
            "radio none: not running (radio.backend is none)"
        );
    }
}
