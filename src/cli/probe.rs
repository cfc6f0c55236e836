//! `meshroom-gw radio probe`: opens the configured SPI device and GPIO lines, resets the chip,
//! reads status, version, device errors and the sync-word registers, tries a full bring-up, and
//! prints what is wrong in plain words. With the `sim` backend it probes an emulated chip, which
//! shows what a healthy radio looks like.

use crate::config::radio::{RadioBackend, RadioConfig};
use crate::radio::settings::Resolved;
use std::fmt::Write as _;
use sx126x::emu::{AirConfig, ChipProfile, World};
use sx126x::probe::{probe, ProbeStep};

/// The report, and whether every step passed.
pub fn render(header: &str, steps: &[ProbeStep]) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "{header}");
    for s in steps {
        let _ = writeln!(out, "{s}");
    }
    let ok = !steps.is_empty() && steps.iter().all(|s| s.ok);
    let _ = writeln!(
        out,
        "{}",
        if ok {
            "radio OK"
        } else {
            "radio NOT OK (see the arrows above)"
        }
    );
    (out, ok)
}

fn header(r: &Resolved) -> String {
    let w = &r.wiring;
    format!(
        "{} on {} (board {}): NRESET {}, BUSY {}, DIO1 {}{}{}{} on {}; TCXO {}; DIO2 RF switch {}",
        r.settings.chip.name(),
        w.spidev,
        r.board,
        w.reset,
        w.busy,
        w.dio1,
        w.cs.map(|p| format!(", NSS {p}")).unwrap_or_default(),
        w.txen.map(|p| format!(", TXEN {p}")).unwrap_or_default(),
        w.rxen.map(|p| format!(", RXEN {p}")).unwrap_or_default(),
        w.gpiochip,
        r.settings
            .tcxo
            .map(|v| format!("{} V", v.volts()))
            .unwrap_or_else(|| "none".into()),
        if r.settings.dio2_rf_switch {
            "on"
        } else {
            "off"
        },
    )
}

/// Probes the configured radio; returns the printed report and whether it passed.
pub fn run(cfg: &RadioConfig) -> anyhow::Result<(String, bool)> {
    let r = cfg.resolve().map_err(|p| {
        anyhow::anyhow!(
            "{}",
            p.iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    match r.backend {
        RadioBackend::None => Ok(("radio.backend is none: nothing to probe\n".into(), true)),
        RadioBackend::Sim => {
            let world = World::new_virtual(1, AirConfig::default());
            let chip = world.add_chip(ChipProfile {
                variant: r.settings.chip,
                tcxo: r.settings.tcxo.is_some(),
                external_pa_db: 0.0,
            });
            let mut drv =
                sx126x::Sx126x::new(world.spi(chip), world.lines(chip), r.settings.clone());
            let steps = probe(&mut drv);
            Ok(render(
                "backend sim: probing an emulated SX1262 (set radio.backend: sx126x for hardware)",
                &steps,
            ))
        }
        RadioBackend::Sx126x => probe_hardware(&r),
    }
}

#[cfg(target_os = "linux")]
fn probe_hardware(r: &Resolved) -> anyhow::Result<(String, bool)> {
    let head = header(r);
    match crate::radio::open_linux(&r.wiring) {
        Err(e) => {
            let step = ProbeStep {
                what: "open SPI and GPIO",
                ok: false,
                detail: e.to_string(),
                hint: open_hint(&e),
            };
            Ok(render(&head, &[step]))
        }
        Ok((spi, lines)) => {
            let mut drv = sx126x::Sx126x::new(spi, lines, r.settings.clone());
            let steps = probe(&mut drv);
            Ok(render(&head, &steps))
        }
    }
}

/// What to do about an open failure, without repeating the OS error the step line already
/// shows (the driver's explanation starts with it).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn open_hint(e: &sx126x::HalError) -> Option<String> {
    let text = e.to_string();
    let explained = sx126x::probe::explain_open_error(e);
    match explained.strip_prefix(&text) {
        Some(rest) => {
            let rest = rest.trim_start_matches([' ', '→']).trim();
            (!rest.is_empty()).then(|| rest.to_string())
        }
        None => Some(explained),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_hardware(r: &Resolved) -> anyhow::Result<(String, bool)> {
    Ok(render(
        &header(r),
        &[ProbeStep {
            what: "open SPI and GPIO",
            ok: false,
            detail: "not Linux".into(),
            hint: Some(
                "the sx126x backend needs Linux spidev and the GPIO character device".into(),
            ),
        }],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sx126x::probe::explain_open_error;
    use sx126x::HalError;

    fn io(what: &str, kind: std::io::ErrorKind) -> HalError {
        HalError::io(what, std::io::Error::from(kind))
    }

    #[test]
    fn open_errors_are_explained_in_plain_words() {
        let t = explain_open_error(&io(
            "open /dev/spidev0.0",
            std::io::ErrorKind::PermissionDenied,
        ));
        assert!(
            t.contains("permission denied") || t.contains("Permission denied"),
            "{t}"
        );
        assert!(t.contains("group spi"), "{t}");
        let t = explain_open_error(&io(
            "request BUSY line 20 on /dev/gpiochip0",
            std::io::ErrorKind::PermissionDenied,
        ));
        assert!(t.contains("group gpio"), "{t}");
        let t = explain_open_error(&io("open /dev/spidev0.0", std::io::ErrorKind::NotFound));
        assert!(t.contains("dtparam=spi=on"), "{t}");
        let t = explain_open_error(&io(
            "request DIO1 line 16 on /dev/gpiochip4",
            std::io::ErrorKind::NotFound,
        ));
        assert!(t.contains("Raspberry Pi 5"), "{t}");
        let t = explain_open_error(&io(
            "request NSS line 8 on /dev/gpiochip0",
            std::io::ErrorKind::ResourceBusy,
        ));
        assert!(t.contains("already in use"), "{t}");
    }

    #[test]
    fn the_sim_probe_shows_a_healthy_radio() {
        let (text, ok) = run(&RadioConfig::default()).expect("probe");
        assert!(ok, "{text}");
        assert!(text.contains("14 24 (MeshCore private 0x12)"), "{text}");
        assert!(text.contains("radio OK"));
    }

    #[test]
    fn a_missing_spidev_is_reported_with_what_to_do() {
        let cfg = RadioConfig {
            backend: RadioBackend::Sx126x,
            spidev: Some("/nonexistent/spidev9.9".into()),
            ..RadioConfig::default()
        };
        let (text, ok) = run(&cfg).expect("probe runs");
        assert!(!ok);
        assert!(text.contains("dtparam=spi=on"), "{text}");
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "the OS error is said once: {text}"
        );
    }
}
