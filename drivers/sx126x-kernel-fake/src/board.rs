//! The emulated board: which device files exist, where the chip really is wired, and what the
//! other lines do — read from the environment of the process the library is preloaded into.
//!
//! | variable | meaning |
//! |---|---|
//! | `MESHROOM_FAKE_BOARD` | board preset whose wiring the emulated HAT has (turns the fake on) |
//! | `MESHROOM_FAKE_WIRING` | overrides, `role=pin` separated by commas: `reset`, `busy`, `dio1`, `nss`, `txen`, `rxen`, `enable` (repeatable); `nss=-1` = the kernel's CE line; `enable=-1` clears the list |
//! | `MESHROOM_FAKE_TCXO` | `1`/`0`: the module has a TCXO (default: as the preset) |
//! | `MESHROOM_FAKE_SPIDEVS` | device files that exist, comma-separated (default: the preset's bus, CE0 and CE1) |
//! | `MESHROOM_FAKE_CHIP_SPIDEV` | the one the chip answers on (default: the preset's) |
//! | `MESHROOM_FAKE_GPIOCHIP` | the GPIO chip device (default: the preset's; must be `/dev/gpiochipN`) |
//! | `MESHROOM_FAKE_AIR` | simulated-air directory the chip joins (default: none, a deaf chip) |
//! | `MESHROOM_FAKE_TRACE` | file that gets one line per SPI transfer and line change |
//! | `MESHROOM_FAKE_DENY` | `spi` and/or `gpio`: opening those devices fails with EACCES (a user not in the group) |

use sx126x::presets::{board_preset, BoardPreset};

pub const ENV_BOARD: &str = "MESHROOM_FAKE_BOARD";
pub const ENV_WIRING: &str = "MESHROOM_FAKE_WIRING";
pub const ENV_TCXO: &str = "MESHROOM_FAKE_TCXO";
pub const ENV_SPIDEVS: &str = "MESHROOM_FAKE_SPIDEVS";
pub const ENV_CHIP_SPIDEV: &str = "MESHROOM_FAKE_CHIP_SPIDEV";
pub const ENV_GPIOCHIP: &str = "MESHROOM_FAKE_GPIOCHIP";
pub const ENV_AIR: &str = "MESHROOM_FAKE_AIR";
pub const ENV_TRACE: &str = "MESHROOM_FAKE_TRACE";
pub const ENV_DENY: &str = "MESHROOM_FAKE_DENY";

/// Lines of the emulated GPIO chip (a Raspberry Pi's pinctrl-bcm2711 has 58; BCM 0–27 reach the
/// header).
pub const NUM_LINES: u32 = 58;

/// How the emulated module is really wired (BCM line offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct TrueWiring {
    pub reset: u32,
    pub busy: u32,
    pub dio1: u32,
    /// The chip's NSS on a GPIO; `None` = on the kernel's CE line of its spidev.
    pub nss: Option<u32>,
    pub txen: Option<u32>,
    pub rxen: Option<u32>,
    /// Lines that power or enable the module: it answers only while all are high.
    pub enable: Vec<u32>,
}

/// Everything the fake needs to know, from the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardConfig {
    pub board: &'static BoardPreset,
    pub wiring: TrueWiring,
    pub tcxo: bool,
    pub spidevs: Vec<String>,
    pub chip_spidev: String,
    pub gpiochip: String,
    pub air_dir: Option<String>,
    pub trace: Option<String>,
    /// Device kinds (`spi`, `gpio`) whose files the user may not open.
    pub deny: Vec<String>,
}

fn parse_pin(v: &str, key: &str) -> Result<Option<u32>, String> {
    if v.trim() == "-1" {
        return Ok(None);
    }
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|&p| p < NUM_LINES)
        .map(Some)
        .ok_or_else(|| format!("{ENV_WIRING}: {key}={v} is not a line offset below {NUM_LINES}"))
}

/// Applies `role=pin,…` overrides to a wiring.
pub fn apply_overrides(w: &mut TrueWiring, spec: &str) -> Result<(), String> {
    let mut enable_reset = false;
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{ENV_WIRING}: `{item}` is not role=pin"))?;
        let pin = parse_pin(v, k)?;
        let need = |p: Option<u32>| p.ok_or_else(|| format!("{ENV_WIRING}: {k} needs a line"));
        match k.trim() {
            "reset" => w.reset = need(pin)?,
            "busy" => w.busy = need(pin)?,
            "dio1" => w.dio1 = need(pin)?,
            "nss" => w.nss = pin,
            "txen" => w.txen = pin,
            "rxen" => w.rxen = pin,
            "enable" => {
                if !enable_reset {
                    w.enable.clear();
                    enable_reset = true;
                }
                w.enable.extend(pin);
            }
            other => return Err(format!("{ENV_WIRING}: unknown role `{other}`")),
        }
    }
    Ok(())
}

/// The spidev path's bus number (`/dev/spidev0.1` → 0).
fn bus_of(path: &str) -> Option<&str> {
    path.strip_prefix("/dev/spidev")?.split('.').next()
}

impl BoardConfig {
    /// `Ok(None)` when the fake is not asked for (no `MESHROOM_FAKE_BOARD`).
    pub fn from_env() -> Result<Option<BoardConfig>, String> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let Some(name) = get(ENV_BOARD) else {
            return Ok(None);
        };
        let board =
            board_preset(&name).ok_or_else(|| format!("{ENV_BOARD}: no preset `{name}`"))?;
        let mut wiring = TrueWiring {
            reset: board.reset_pin,
            busy: board.busy_pin,
            dio1: board.dio1_pin,
            nss: board.cs_pin,
            txen: board.txen_pin,
            rxen: board.rxen_pin,
            enable: board.hold_high_pins.to_vec(),
        };
        if let Some(spec) = get(ENV_WIRING) {
            apply_overrides(&mut wiring, &spec)?;
        }
        let tcxo = match get(ENV_TCXO).as_deref() {
            None => board.tcxo.is_some(),
            Some("1") => true,
            Some("0") => false,
            Some(v) => return Err(format!("{ENV_TCXO}: `{v}` is not 0 or 1")),
        };
        let chip_spidev = get(ENV_CHIP_SPIDEV).unwrap_or_else(|| board.spidev.to_string());
        let spidevs = match get(ENV_SPIDEVS) {
            Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
            None => {
                let bus = bus_of(&chip_spidev).unwrap_or("0");
                vec![format!("/dev/spidev{bus}.0"), format!("/dev/spidev{bus}.1")]
            }
        };
        let gpiochip = get(ENV_GPIOCHIP).unwrap_or_else(|| board.gpiochip.to_string());
        Ok(Some(BoardConfig {
            board,
            wiring,
            tcxo,
            spidevs,
            chip_spidev,
            gpiochip,
            air_dir: get(ENV_AIR),
            trace: get(ENV_TRACE),
            deny: get(ENV_DENY)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
        }))
    }

    /// Lines the kernel holds as SPI chip selects for the enabled buses (EBUSY to a request),
    /// with the consumer name the kernel shows: spi0 CE0/CE1 are BCM 8/7, spi1 CE0/CE1 are 18/17.
    pub fn kernel_lines(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for dev in &self.spidevs {
            let Some(rest) = dev.strip_prefix("/dev/spidev") else {
                continue;
            };
            let line = match rest {
                "0.0" => 8,
                "0.1" => 7,
                "1.0" => 18,
                "1.1" => 17,
                _ => continue,
            };
            let (bus, cs) = rest.split_once('.').unwrap_or(("0", "0"));
            out.push((line, format!("spi{bus} CS{cs}")));
        }
        out
    }
}

/// The level an undriven line reads: a Raspberry Pi pulls BCM 0–8 up and the rest down at boot
/// (BCM2711 datasheet, table of GPIO default pulls).
pub fn default_pull(line: u32) -> bool {
    line <= 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_pins_and_lists() {
        let mut w = TrueWiring {
            reset: 18,
            busy: 20,
            dio1: 16,
            nss: Some(21),
            txen: None,
            rxen: None,
            enable: vec![6],
        };
        apply_overrides(&mut w, "busy=21, nss=-1,enable=12,enable=13").unwrap();
        assert_eq!(w.busy, 21);
        assert_eq!(w.nss, None);
        assert_eq!(w.enable, vec![12, 13]);
        assert!(apply_overrides(&mut w, "busy=99").is_err());
        assert!(apply_overrides(&mut w, "miso=3").is_err());
        assert!(apply_overrides(&mut w, "busy=-1").is_err());
    }
}
