//! The `sim` backend: the real driver on an emulated SX1262 in a real-time emulator world that
//! joins the shared air directory, so every gateway and client on the machine hears each other.

use super::airtime::DutyCycle;
use super::settings::{Resolved, Wiring};
use super::worker::{self, Shared};
use super::{RadioHandle, SimParams};
use crate::config::radio::RadioBackend;
use std::path::Path;
use sx126x::emu::{AirConfig, ChipId, ChipProfile, World};
use sx126x::params::{ChipVariant, RadioSettings};

/// A running simulated radio with its emulator (kept for tests and benchmarks).
pub struct SimRadio {
    pub handle: RadioHandle,
    pub world: World,
    pub chip: ChipId,
}

/// Makes sure the air directory exists and every local user may join it.
fn prepare_air_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Sticky and world-writable like /tmp: anyone may add a radio, nobody may remove
            // another user's socket.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
        }
    }
    Ok(())
}

impl SimRadio {
    /// Starts a simulated radio. With `air_dir` joined, frames cross to other processes.
    pub fn open(r: &Resolved, stop_on_drop: bool) -> std::io::Result<SimRadio> {
        let air = AirConfig {
            default_loss_db: r.sim_loss_db,
            drop_probability: r.sim_drop_probability,
            rssi_sigma_db: r.sim_rssi_sigma_db,
            snr_sigma_db: r.sim_snr_sigma_db,
            ..AirConfig::default()
        };
        let world = World::new_realtime(rand::random(), air);
        prepare_air_dir(&r.air_dir)?;
        world.join_air_dir(&r.air_dir)?;
        Self::on_world(world, r, stop_on_drop)
    }

    /// Starts a simulated radio on an existing world (in-process air only unless the world
    /// joined a directory).
    pub fn on_world(world: World, r: &Resolved, stop_on_drop: bool) -> std::io::Result<SimRadio> {
        let chip = world.add_chip(ChipProfile {
            variant: r.settings.chip,
            tcxo: r.settings.tcxo.is_some(),
            external_pa_db: 0.0,
        });
        let mut drv = sx126x::Sx126x::new(world.spi(chip), world.lines(chip), r.settings.clone());
        // An emulated chip only fails when a test injects a fault: notice it within 5 s.
        drv.health_interval = std::time::Duration::from_secs(5);
        let shared = Shared::new(
            r.settings.lora,
            DutyCycle::new(r.duty_cycle_percent, r.duty_cycle_window),
            r.tx_queue,
            r.listen_before_talk,
        );
        worker::start(drv, shared.clone(), "sim")?;
        Ok(SimRadio {
            handle: RadioHandle::new(shared, stop_on_drop),
            world,
            chip,
        })
    }
}

/// Resolved settings for a standalone simulated radio.
pub fn resolved_for(air_dir: &Path, p: &SimParams) -> Resolved {
    Resolved {
        backend: RadioBackend::Sim,
        board: "emulated",
        region: "custom",
        settings: RadioSettings::new(ChipVariant::Sx1262, p.lora),
        wiring: Wiring {
            spidev: String::new(),
            speed_hz: 0,
            gpiochip: String::new(),
            reset: 0,
            busy: 0,
            dio1: 0,
            txen: None,
            rxen: None,
            cs: None,
            hold_high: Vec::new(),
        },
        duty_cycle_percent: p.duty_cycle_percent,
        duty_cycle_window: p.duty_cycle_window,
        listen_before_talk: p.listen_before_talk,
        tx_queue: 64,
        air_dir: air_dir.to_path_buf(),
        sim_loss_db: p.loss_db,
        sim_drop_probability: p.drop_probability,
        sim_rssi_sigma_db: 0.0,
        sim_snr_sigma_db: 0.0,
    }
}
