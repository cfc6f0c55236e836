//! From the configuration file to the settings the sides run with, in one place: `run`, a
//! reload (SIGHUP) and `check-config` all come through here, so they can never disagree, and
//! every default lives once (in the `config` section that declares it).
//!
//! `config` describes the file and checks what the file alone can tell (ranges, names,
//! duplicates, placeholders). The checks that need a side's own rules — the radio's board and
//! region presets, the rooms' places on the TUN multicast range — are made here, with the same
//! file:line:column:key messages, before anything starts.

use std::path::Path;

use crate::config::{self, Config, ConfigError, Issue, Loaded, Source};
use crate::meshcore::server::channel::{ChannelSetup, MAX_CHANNEL_TEXT};
use crate::meshcore::server::engine::EngineConfig;
use crate::meshcore::wire::crypto::ChannelKey;
use crate::radio::settings::Resolved as RadioSettings;
use crate::tun::group::{place_rooms, GroupError, RoomEndpoint, RoomPlacement};

/// What the sides run with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config: Config,
    /// `None` when `radio.backend` is `none`.
    pub radio: Option<RadioSettings>,
    /// The MeshCore room servers' timers and limits.
    pub meshcore: EngineConfig,
    /// Where each room lives on the TUN device.
    pub tun_rooms: Vec<RoomEndpoint>,
}

/// A configuration that loaded, checked and resolved, with where it came from.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub settings: Settings,
    pub source: Source,
    pub warnings: Vec<Issue>,
}

/// The configuration `run` uses: `explicit` if given (it must exist), else the default path if
/// a file is there, else the embedded default.
pub fn load(explicit: Option<&Path>) -> Result<Prepared, ConfigError> {
    prepare(config::resolve_with(explicit, &problems)?)
}

/// One file, as a reload reads it.
pub fn load_file(path: &Path) -> Result<Prepared, ConfigError> {
    prepare(config::load_file_with(path, &problems)?)
}

/// Parses and checks `text` (`file` names it in messages) as `check-config` would.
pub fn parse(text: &str, file: &str) -> Result<(Settings, Vec<Issue>), ConfigError> {
    let (config, warnings) = config::parse_with(text, file, &problems)?;
    let settings = resolve(config).map_err(|p| unlocated(file, p))?;
    Ok((settings, warnings))
}

fn prepare(loaded: Loaded) -> Result<Prepared, ConfigError> {
    let Loaded {
        config,
        source,
        warnings,
    } = loaded;
    let settings = resolve(config).map_err(|p| unlocated(&source.to_string(), p))?;
    Ok(Prepared {
        settings,
        source,
        warnings,
    })
}

/// Only reached if `problems` and `resolve` disagreed; still a readable error.
fn unlocated(file: &str, problems: Vec<(String, String)>) -> ConfigError {
    ConfigError::Invalid(
        problems
            .into_iter()
            .map(|(key, message)| Issue {
                file: file.to_string(),
                line: 1,
                column: 1,
                key,
                message,
            })
            .collect(),
    )
}

/// What the sides' rules make of a configuration: the resolved radio and room places, and every
/// problem found on the way. One pass serves both [`resolve`] and [`problems`].
struct Checked {
    radio: Option<RadioSettings>,
    tun_rooms: Vec<RoomEndpoint>,
    problems: Vec<(String, String)>,
}

fn check(config: &Config) -> Checked {
    let mut problems = Vec::new();
    let radio = match config.radio.backend {
        config::RadioBackend::None => None,
        _ => match config.radio.resolve() {
            Ok(r) => Some(r),
            Err(p) => {
                problems.extend(p);
                None
            }
        },
    };
    let tun_rooms = match tun_rooms(config) {
        Ok(rooms) => rooms,
        Err(e) => {
            problems.extend(group_problem(config, &e));
            Vec::new()
        }
    };
    problems.extend(channel_airtime_problems(config, radio.as_ref()));
    Checked {
        radio,
        tun_rooms,
        problems,
    }
}

/// Resolves a checked configuration; `Err` lists (key path, message) pairs.
pub fn resolve(config: Config) -> Result<Settings, Vec<(String, String)>> {
    let Checked {
        radio,
        tun_rooms,
        problems,
    } = check(&config);
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut meshcore = engine_config(&config.meshcore);
    meshcore.radio = radio.as_ref().map(radio_info);
    Ok(Settings {
        meshcore: EngineConfig {
            channels: channel_setups(&config),
            ..meshcore
        },
        radio,
        tun_rooms,
        config,
    })
}

/// The side-level problems of a configuration, as (key path, message) pairs.
pub fn problems(config: &Config) -> Vec<(String, String)> {
    check(config).problems
}

/// The rooms' channel bindings, with their keys (the file checks already refused bad ones).
pub fn channel_setups(config: &Config) -> Vec<ChannelSetup> {
    config
        .rooms
        .iter()
        .filter_map(|room| {
            let c = room.channel.as_ref()?.resolve().ok()?;
            Some(ChannelSetup {
                room: room.name.clone(),
                name: c.name,
                key: ChannelKey::new(&c.secret)?,
                mode: c.mode,
                max_per_minute: c.max_per_minute,
                hop_limit: c.hop_limit,
            })
        })
        .collect()
}

/// Share of the duty-cycle budget that bridged channel messages may take at most; the rest
/// stays for ACKs, login replies, pushes and adverts.
pub const CHANNEL_AIRTIME_SHARE: f64 = 0.5;

/// Frame length of the longest channel message: header, path length, the hop-limit filler,
/// channel hash, MAC and 176 bytes of ciphertext (5 + 160 bytes of plaintext, padded).
pub fn channel_frame_len(hop_limit: Option<u8>) -> usize {
    let filler = match hop_limit {
        Some(h) if h > 0 => 64 - usize::from(h.min(63)),
        _ => 0,
    };
    let plain = 5 + MAX_CHANNEL_TEXT;
    2 + filler + 3 + plain.div_ceil(16) * 16
}

/// A bridge whose `max_per_minute` longest messages would take more than
/// [`CHANNEL_AIRTIME_SHARE`] of the radio's duty-cycle budget.
fn channel_airtime_problems(
    config: &Config,
    radio: Option<&RadioSettings>,
) -> Vec<(String, String)> {
    let Some(radio) = radio else {
        return Vec::new();
    };
    if radio.duty_cycle_percent >= 100.0 {
        return Vec::new();
    }
    let budget_ms_per_min = f64::from(radio.duty_cycle_percent) / 100.0 * 60_000.0;
    let mut out = Vec::new();
    for (i, room) in config.rooms.iter().enumerate() {
        let Some(c) = room.channel.as_ref().and_then(|c| c.resolve().ok()) else {
            continue;
        };
        if c.mode != config::rooms::ChannelMode::Bridge {
            continue;
        }
        let toa_ms = radio
            .settings
            .lora
            .time_on_air(channel_frame_len(c.hop_limit))
            .as_secs_f64()
            * 1000.0;
        let allowed = (budget_ms_per_min * CHANNEL_AIRTIME_SHARE / toa_ms).floor() as u32;
        if c.max_per_minute > allowed {
            out.push((
                format!("rooms[{i}].channel.max_per_minute"),
                format!(
                    "{} channel messages a minute of up to {:.0} ms on air each would take more than half of the {}% duty cycle ({:.0} ms a minute); at most {allowed}",
                    c.max_per_minute, toa_ms, radio.duty_cycle_percent, budget_ms_per_min
                ),
            ));
        }
    }
    out
}

/// Where each room lives on the TUN device, or the first clash.
pub fn tun_rooms(config: &Config) -> Result<Vec<RoomEndpoint>, GroupError> {
    place_rooms(
        config.rooms.iter().map(|r| RoomPlacement {
            room: &r.name,
            group: r.group,
            port: r.port,
        }),
        config.tun.range,
        config.tun.port,
    )
}

fn group_problem(config: &Config, e: &GroupError) -> Option<(String, String)> {
    let room = match e {
        GroupError::Clash { second, .. } => second,
        GroupError::OutsideRange { room, .. } => room,
        // The rooms' own check already says this, at `rooms[i].port`.
        GroupError::PortZero { .. } => return None,
    };
    let key = config
        .rooms
        .iter()
        .position(|r| &r.name == room)
        .map_or_else(|| "rooms".to_string(), |i| format!("rooms[{i}].group"));
    Some((key, e.to_string()))
}

fn ms(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1000.0).round() as u64
    } else {
        0
    }
}

/// The radio's settings as the admin CLI's `get radio` shows them (the firmware's
/// `freq,bw,sf,cr`).
fn radio_info(r: &RadioSettings) -> crate::meshcore::server::engine::RadioInfo {
    let lora = &r.settings.lora;
    crate::meshcore::server::engine::RadioInfo {
        frequency_mhz: format!("{}", lora.frequency_hz as f64 / 1e6),
        bandwidth_khz: format!("{:.1}", lora.bandwidth.khz()),
        spreading_factor: lora.spreading_factor,
        coding_rate: lora.coding_rate.denominator(),
        power_dbm: lora.power_dbm,
    }
}

/// The MeshCore engine's timers and limits from the `meshcore:` section.
pub fn engine_config(c: &config::MeshcoreConfig) -> EngineConfig {
    let location = match (c.latitude, c.longitude) {
        (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((
            (lat.clamp(-90.0, 90.0) * 1e6) as i32,
            (lon.clamp(-180.0, 180.0) * 1e6) as i32,
        )),
        _ => None,
    };
    EngineConfig {
        first_advert_delay_ms: ms(c.first_advert_delay_s),
        advert_interval_ms: ms(c.advert_interval_s),
        early_advert_interval_ms: ms(c.early_advert_interval_s),
        early_adverts: c.early_adverts,
        flood_advert_interval_ms: ms(c.flood_advert_interval_s),
        location,
        silence_timeout_ms: ms(c.silence_timeout_s),
        push_interval_ms: ms(c.push_interval_s),
        push_min_age_ms: ms(c.push_min_age_s),
        push_ack_timeout_flood_ms: ms(c.push_ack_timeout_flood_s),
        push_ack_timeout_direct_ms: ms(c.push_ack_timeout_direct_s),
        push_ack_timeout_per_hop_ms: ms(c.push_ack_timeout_per_hop_s),
        push_max_failures: c.push_max_failures,
        reply_delay_ms: ms(c.reply_delay_s),
        login_max_failures: c.login_max_failures,
        login_block_first_ms: ms(c.login_block_first_s),
        login_block_ms: ms(c.login_block_s),
        max_clients: c.max_clients.max(1),
        ..EngineConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MeshcoreConfig;

    fn load(text: &str) -> Result<Settings, String> {
        parse(text, "test.yaml")
            .map(|(s, _)| s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn meshcore_defaults_match_the_engine_defaults() {
        assert_eq!(
            engine_config(&MeshcoreConfig::default()),
            EngineConfig::default()
        );
    }

    #[test]
    fn location_is_sent_in_millionths_of_a_degree() {
        let c = MeshcoreConfig {
            latitude: Some(37.5),
            longitude: Some(-122.25),
            ..MeshcoreConfig::default()
        };
        assert_eq!(engine_config(&c).location, Some((37_500_000, -122_250_000)));
    }

    #[test]
    fn the_embedded_default_resolves() {
        let s = resolve(Config::embedded_default()).expect("embedded default");
        assert_eq!(s.tun_rooms.len(), s.config.rooms.len());
        assert!(s.radio.is_some());
    }

    #[test]
    fn two_rooms_on_one_group_are_refused_with_the_line() {
        let text = "rooms:\n  - name: a\n    group: 239.77.1.1\n  - name: b\n    group: 239.77.1.1\n    port: 9000\n";
        let err = load(text).unwrap_err();
        assert!(err.contains("rooms[1].group"), "{err}");
        assert!(err.contains("test.yaml:5"), "{err}");
        assert!(err.contains("239.77.1.1"), "{err}");
    }

    #[test]
    fn a_group_outside_the_range_is_refused() {
        let err = load("rooms:\n  - name: a\n    group: 239.1.1.1\n").unwrap_err();
        assert!(err.contains("outside"), "{err}");
    }

    #[test]
    fn radio_problems_are_reported_with_the_file_checks() {
        let err = load("rooms:\n  - name: \"\"\nradio:\n  board: no-such-board\n").unwrap_err();
        assert!(err.contains("radio.board"), "{err}");
        assert!(err.contains("rooms[0].name"), "{err}");
    }
}
