//! The radio side of the gateway: a [`RadioHandle`] the MeshCore side sends and receives frames
//! through, backed by the SX126x driver on real hardware (`sx126x`) or on an emulated chip on the
//! shared simulated air (`sim`), chosen by the `radio:` section of the configuration.
//!
//! - [`settings`]: presets + overrides → driver settings.
//! - [`airtime`]: duty-cycle budget over a sliding window.
//! - [`scheduler`]: priority queue with backoff, listen-before-talk and a memory bound.
//! - [`worker`]: the radio thread (driver, faults, recovery).
//! - [`status`]: `/status` and `/metrics`.
//! - [`sim`]: the simulated backend. (`meshroom-gw radio probe` lives in `cli::probe`.)

pub mod activity;
pub mod airtime;
pub mod scheduler;
pub mod settings;
pub mod sim;
pub mod status;
pub mod worker;

pub use scheduler::{TxPriority, TxRejected};

use crate::config::radio::{RadioBackend, RadioConfig};
use crate::status::StatusBoard;
use anyhow::Context;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sx126x::params::LoRaParams;
use tokio::sync::broadcast;
use worker::{lock, Shared};

/// A LoRa frame as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RxFrame {
    pub bytes: Vec<u8>,
    pub rssi_dbm: f32,
    pub snr_db: f32,
    /// When the radio raised its IRQ for this frame.
    pub received_at: Instant,
}

struct Inner {
    shared: Arc<Shared>,
    /// Standalone radios stop when the last handle goes; gateway radios stop on shutdown.
    stop_on_drop: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.shared.request_stop();
        }
    }
}

/// The rest of the gateway's way to the radio. Cheap to clone.
#[derive(Clone)]
pub struct RadioHandle {
    inner: Arc<Inner>,
}

impl RadioHandle {
    fn new(shared: Arc<Shared>, stop_on_drop: bool) -> Self {
        RadioHandle {
            inner: Arc::new(Inner {
                shared,
                stop_on_drop,
            }),
        }
    }

    /// Queues a frame; returns at once. Lower classes are dropped first when the queue is full.
    pub fn transmit(&self, frame: Vec<u8>, prio: TxPriority) -> Result<(), TxRejected> {
        let shared = &self.inner.shared;
        if shared.stop.load(Ordering::Relaxed) {
            return Err(TxRejected::Stopped);
        }
        let toa = shared.lora.time_on_air(frame.len().max(1));
        {
            let d = lock(&shared.duty);
            if d.percent() < 100.0 && toa > d.allowed() {
                return Err(TxRejected::OverBudget);
            }
        }
        let queued = {
            let mut rng = lock(&shared.rng);
            lock(&shared.queue).push(frame, prio, Instant::now(), &mut *rng)
        };
        shared.wake();
        queued
    }

    /// Every frame received from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RxFrame>> {
        self.inner.shared.rx.subscribe()
    }

    /// Exact time on air of a frame of `len` bytes with this radio's settings.
    pub fn time_on_air(&self, len: usize) -> Duration {
        self.inner.shared.lora.time_on_air(len)
    }

    /// The radio settings in use.
    pub fn params(&self) -> LoRaParams {
        self.inner.shared.lora
    }

    /// Airtime left in the current duty-cycle window.
    pub fn airtime_remaining(&self) -> Duration {
        lock(&self.inner.shared.duty).remaining(Instant::now())
    }

    /// Current state of the radio thread ("receiving", "transmitting", "recovering", …).
    pub fn state(&self) -> &'static str {
        lock(&self.inner.shared.snapshot).state
    }

    /// The driver's counters (packets, CRC errors, chip resets, …) as last published.
    pub fn driver_stats(&self) -> sx126x::DriverStats {
        lock(&self.inner.shared.snapshot).driver.clone()
    }

    /// Frames waiting to be sent.
    pub fn queued(&self) -> usize {
        lock(&self.inner.shared.queue).len()
    }

    /// Stops the radio thread.
    pub fn stop(&self) {
        self.inner.shared.request_stop();
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }
}

fn resolve(cfg: &RadioConfig) -> anyhow::Result<settings::Resolved> {
    cfg.resolve().map_err(|problems| {
        anyhow::anyhow!(
            "{}",
            problems
                .iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Starts the radio with its resolved settings; `None` (no radio) when `radio.backend` is
/// `none`. The radio registers its status source and stops when `shutdown` flips. It takes only
/// what it uses: it never touches the hub.
pub async fn spawn(
    settings: Option<&settings::Resolved>,
    board: &StatusBoard,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<RadioHandle>> {
    let Some(r) = settings else {
        board.absent(
            "radio",
            json!({"backend": "none", "state": "not running", "reason": "radio.backend is none"}),
        );
        tracing::info!("radio: backend none, running without a radio");
        return Ok(None);
    };
    let (handle, status) = match r.backend {
        RadioBackend::Sim => {
            let sim = sim::SimRadio::open(r, false).context("cannot start the simulated radio")?;
            tracing::info!(
                "radio: simulated SX1262 on the air in {} ({:.3} MHz, SF{}, {} kHz)",
                r.air_dir.display(),
                r.settings.lora.frequency_hz as f64 / 1e6,
                r.settings.lora.spreading_factor,
                r.settings.lora.bandwidth.khz()
            );
            let status = status::RadioStatus {
                backend: "sim",
                board: "emulated",
                region: r.region,
                chip: "SX1262 (emulated)",
                shared: sim.handle.shared().clone(),
            };
            (sim.handle, status)
        }
        RadioBackend::Sx126x => open_hardware(r)?,
        RadioBackend::None => return Ok(None),
    };
    board.register(Arc::new(status));
    let shared = handle.shared().clone();
    tokio::spawn(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        shared.request_stop();
    });
    Ok(Some(handle))
}

#[cfg(target_os = "linux")]
fn open_hardware(r: &settings::Resolved) -> anyhow::Result<(RadioHandle, status::RadioStatus)> {
    let (spi, lines) = open_linux(&r.wiring)
        .map_err(|e| anyhow::anyhow!("{}", sx126x::probe::explain_open_error(&e)))?;
    let drv = sx126x::Sx126x::new(spi, lines, r.settings.clone());
    let shared = Shared::new(
        r.settings.lora,
        airtime::DutyCycle::new(r.duty_cycle_percent, r.duty_cycle_window),
        r.tx_queue,
        r.listen_before_talk,
    );
    worker::start(drv, shared.clone(), "sx126x").context("cannot start the radio thread")?;
    tracing::info!(
        "radio: {} on {} (board {}), {:.3} MHz SF{} {} kHz",
        r.settings.chip.name(),
        r.wiring.spidev,
        r.board,
        r.settings.lora.frequency_hz as f64 / 1e6,
        r.settings.lora.spreading_factor,
        r.settings.lora.bandwidth.khz()
    );
    let status = status::RadioStatus {
        backend: "sx126x",
        board: r.board,
        region: r.region,
        chip: r.settings.chip.name(),
        shared: shared.clone(),
    };
    Ok((RadioHandle::new(shared, false), status))
}

#[cfg(not(target_os = "linux"))]
fn open_hardware(_r: &settings::Resolved) -> anyhow::Result<(RadioHandle, status::RadioStatus)> {
    anyhow::bail!("the sx126x backend needs Linux (spidev and the GPIO character device)")
}

/// Opens spidev and the GPIO lines of a wiring.
#[cfg(target_os = "linux")]
pub fn open_linux(
    w: &settings::Wiring,
) -> Result<(sx126x::linux::LinuxSpi, sx126x::linux::LinuxBoard), sx126x::HalError> {
    sx126x::linux::open(w)
}

/// Settings of a standalone simulated radio (the `client` CLI, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    pub lora: LoRaParams,
    pub loss_db: f32,
    pub drop_probability: f64,
    pub duty_cycle_percent: f32,
    pub duty_cycle_window: Duration,
    pub listen_before_talk: bool,
}

impl Default for SimParams {
    /// MeshCore EU/UK narrow, no duty-cycle limit (a client is not a fixed station).
    fn default() -> Self {
        let r = RadioConfig::default().resolve();
        let lora = r.map(|r| r.settings.lora).unwrap_or_else(|_| {
            LoRaParams::meshcore(
                869_618_000,
                sx126x::Bandwidth::Khz62_5,
                8,
                sx126x::CodingRate::Cr4_8,
            )
        });
        SimParams {
            lora,
            loss_db: 100.0,
            drop_probability: 0.0,
            duty_cycle_percent: 100.0,
            duty_cycle_window: Duration::from_secs(3600),
            listen_before_talk: true,
        }
    }
}

impl SimParams {
    /// The same radio settings a gateway with this `radio:` section uses.
    pub fn from_config(cfg: &RadioConfig) -> anyhow::Result<Self> {
        let r = resolve(cfg)?;
        Ok(SimParams {
            lora: r.settings.lora,
            loss_db: r.sim_loss_db,
            drop_probability: r.sim_drop_probability,
            duty_cycle_percent: 100.0,
            duty_cycle_window: r.duty_cycle_window,
            listen_before_talk: r.listen_before_talk,
        })
    }
}

/// A simulated radio on the air in `air_dir`, outside any gateway. Stops when the last handle
/// is dropped.
pub async fn open_sim_standalone(air_dir: &Path, params: SimParams) -> anyhow::Result<RadioHandle> {
    let r = sim::resolved_for(air_dir, &params);
    let sim = sim::SimRadio::open(&r, true).context("cannot start the simulated radio")?;
    Ok(sim.handle)
}
