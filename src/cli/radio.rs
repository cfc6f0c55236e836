//! `meshroom-gw radio presets` and `meshroom-gw radio probe`.

use std::path::Path;

use super::{RadioCommand, EXIT_CONFIG};

/// `meshroom-gw radio …`; returns the exit status.
pub fn radio(action: RadioCommand, config_path: Option<&Path>) -> i32 {
    match action {
        RadioCommand::Presets => {
            print!("{}", render_presets());
            0
        }
        RadioCommand::Probe => {
            let loaded = match crate::config::resolve(config_path) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_CONFIG;
                }
            };
            match super::probe::run(&loaded.config.radio) {
                Ok((text, ok)) => {
                    print!("{text}");
                    if ok {
                        0
                    } else {
                        1
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    EXIT_CONFIG
                }
            }
        }
    }
}

/// ", held high 12 13" for boards that need lines driven high (antenna switches, enables).
fn held_high(pins: &[u32]) -> String {
    if pins.is_empty() {
        return String::new();
    }
    let list: Vec<String> = pins.iter().map(u32::to_string).collect();
    format!(", held high {}", list.join(" "))
}

/// The preset tables of `meshroom-gw radio presets`.
pub fn render_presets() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "boards (radio.board):");
    for b in sx126x::presets::BOARDS {
        let _ = writeln!(
            out,
            "  {:<18} {} — {} on {}, NRESET {} BUSY {} DIO1 {}{}{}{}{}, TCXO {}, DIO2 switch {}",
            b.name,
            b.description,
            b.chip.name(),
            b.spidev,
            b.reset_pin,
            b.busy_pin,
            b.dio1_pin,
            b.cs_pin.map(|p| format!(" NSS {p}")).unwrap_or_default(),
            b.txen_pin.map(|p| format!(" TXEN {p}")).unwrap_or_default(),
            b.rxen_pin.map(|p| format!(" RXEN {p}")).unwrap_or_default(),
            held_high(b.hold_high_pins),
            b.tcxo
                .map(|v| format!("{} V", v.volts()))
                .unwrap_or_else(|| "none".into()),
            if b.dio2_rf_switch { "on" } else { "off" }
        );
    }
    let _ = writeln!(out, "regions (radio.region):");
    for r in sx126x::presets::REGIONS {
        let _ = writeln!(
            out,
            "  {:<20} {:<34} {:.3} MHz, {} kHz, SF{}, CR 4/{}, duty cycle {}%",
            r.name,
            r.description,
            r.frequency_hz as f64 / 1e6,
            r.bandwidth.khz(),
            r.spreading_factor,
            r.coding_rate.denominator(),
            r.duty_cycle_percent
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_list_the_held_high_pins() {
        let text = render_presets();
        for board in sx126x::presets::BOARDS {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(board.name))
                .expect("a line per board");
            assert!(line.contains(&held_high(board.hold_high_pins)), "{line}");
        }
        let rak = text
            .lines()
            .find(|l| l.contains("rak6421"))
            .expect("rak6421");
        assert!(rak.contains("held high 12 13"), "{rak}");
        let pimesh = text
            .lines()
            .find(|l| l.contains("pimesh-1w-v2"))
            .expect("pimesh");
        assert!(pimesh.contains("held high 26"), "{pimesh}");
    }
}
