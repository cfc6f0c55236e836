//! The over-the-air admin CLI: what a room answers to an admin's TXT_MSG of type CLI_DATA.
//! Sans-IO: a command line and a view of the room in, a one-message reply and at most one
//! effect out.
//!
//! Command strings and reply formats follow the firmware (examples/simple_room_server/MyMesh.cpp,
//! `handleCommand`: the optional `XX|` prefix echoed, `setperm`, `get acl`, `room.post`; and
//! src/helpers/CommonCLI.cpp, `handleCommand`/`handleGetCmd`: `ver`, `clock`, `advert`,
//! `advert.zerohop`, `get …` as `> value`; src/helpers/StatsFormatHelper.h: the `stats-*` JSON).
//! Settings that live in the configuration file are refused with the key to edit: the file is
//! the one source of truth, and a change made over the air would be lost at the next reload.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::counters::Counters;
use super::engine::EngineConfig;
use super::roster::Role;
use crate::meshcore::wire::identity::PublicKey;
use crate::meshcore::wire::message::MAX_TEXT_LEN;

/// What the command asks the room to do besides replying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CliEffect {
    SetRole(PublicKey, Role),
    /// A post by the room itself (the firmware's `addSystemPost`).
    RoomPost(String),
    Advert {
        flood: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliOutcome {
    /// The reply text, prefix included; empty: no reply.
    pub reply: String,
    pub effect: Option<CliEffect>,
}

/// What a command may read.
pub struct CliView<'a> {
    pub room_name: &'a str,
    pub public: PublicKey,
    pub now_unix: u32,
    pub uptime_s: u32,
    pub counters: &'a Counters,
    pub config: &'a EngineConfig,
    pub location: Option<(i32, i32)>,
    pub allow_read_only: bool,
    pub acl: &'a BTreeMap<PublicKey, Role>,
    /// Keys a `setperm` prefix may name (the ACL's, the room's clients', adverts heard).
    pub known: &'a [PublicKey],
}

/// The gateway's version, as `ver` shows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where a setting that the firmware changes over the air lives here.
fn config_key(setting: &str) -> Option<&'static str> {
    let s = setting.split_whitespace().next().unwrap_or("");
    Some(match s {
        "name" => "rooms[].name",
        "guest.password" => "rooms[].psk",
        "allow.read.only" => "rooms[].allow_read_only",
        "lat" => "rooms[].latitude (or meshcore.latitude)",
        "lon" => "rooms[].longitude (or meshcore.longitude)",
        "advert.interval" => "meshcore.advert_interval_s",
        "flood.advert.interval" => "meshcore.flood_advert_interval_s",
        "radio" => "radio.frequency_mhz, bandwidth_khz, spreading_factor, coding_rate",
        "freq" => "radio.frequency_mhz",
        "tx" => "radio.power_dbm",
        "af" | "dutycycle" => "radio.duty_cycle_percent",
        "prv.key" => "the room key file in <state_dir>/meshcore",
        _ => return None,
    })
}

/// `HH:MM - D/M/YYYY UTC`, the firmware's `clock` reply.
pub fn clock_text(unix: u32) -> String {
    let (y, m, d) = crate::timefmt::civil(i64::from(unix / 86_400));
    let rem = unix % 86_400;
    format!(
        "{:02}:{:02} - {d}/{m}/{y} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn degrees(v: i32) -> String {
    format!("{:.6}", f64::from(v) / 1e6)
}

/// Runs one command line (as received: trailing CR/LF and NULs allowed).
pub fn run(line: &str, view: &CliView) -> CliOutcome {
    let line = line
        .trim_end_matches(['\r', '\n', '\0'])
        .trim_start_matches(' ');
    // Optional correlation prefix "XX|" (MyMesh.cpp `handleCommand`: `strlen > 4 && [2] == '|'`).
    let (prefix, command) = match line.as_bytes() {
        b if b.len() > 4 && b[2] == b'|' && line.is_char_boundary(3) => line.split_at(3),
        _ => ("", line),
    };
    let (reply, effect) = command_reply(command, view);
    let mut text = format!("{prefix}{reply}");
    if text.len() > MAX_TEXT_LEN {
        let mut cut = MAX_TEXT_LEN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    CliOutcome {
        reply: text,
        effect,
    }
}

fn word_is(command: &str, word: &str) -> bool {
    command == word || command.starts_with(&format!("{word} "))
}

fn command_reply(command: &str, view: &CliView) -> (String, Option<CliEffect>) {
    let c = view.counters;
    if let Some(args) = command.strip_prefix("setperm ") {
        return setperm(args, view);
    }
    if command == "get acl" {
        return (acl_text(view), None);
    }
    if let Some(text) = command.strip_prefix("room.post") {
        let text = text.trim_start_matches(' ');
        if text.is_empty() {
            return ("ERR empty message".into(), None);
        }
        return ("OK".into(), Some(CliEffect::RoomPost(text.to_string())));
    }
    if word_is(command, "advert.zerohop") {
        return (
            "OK - zerohop advert sent".into(),
            Some(CliEffect::Advert { flood: false }),
        );
    }
    if word_is(command, "advert") {
        return (
            "OK - Advert sent".into(),
            Some(CliEffect::Advert { flood: true }),
        );
    }
    if command.starts_with("clock sync") || command.starts_with("time ") {
        return (
            "Err - the gateway keeps the host's clock (NTP); it is not set over the air".into(),
            None,
        );
    }
    if word_is(command, "clock") {
        return (clock_text(view.now_unix), None);
    }
    if word_is(command, "ver") {
        return (format!("meshroom-gw v{VERSION} (Build: v{VERSION})"), None);
    }
    if word_is(command, "board") {
        return ("meshroom-gw gateway (Linux)".into(), None);
    }
    if word_is(command, "stats-core") {
        return (
            format!(
                "{{\"battery_mv\":0,\"uptime_secs\":{},\"errors\":0,\"queue_len\":0}}",
                view.uptime_s
            ),
            None,
        );
    }
    if word_is(command, "stats-radio") {
        return (
            format!(
                "{{\"noise_floor\":0,\"last_rssi\":{},\"last_snr\":{:.2},\"tx_air_secs\":0,\"rx_air_secs\":0}}",
                c.last_rssi,
                f64::from(c.last_snr_x4) / 4.0
            ),
            None,
        );
    }
    if word_is(command, "stats-packets") {
        return (
            format!(
                "{{\"recv\":{},\"sent\":{},\"flood_tx\":{},\"direct_tx\":{},\"flood_rx\":{},\"direct_rx\":{},\"recv_errors\":{}}}",
                c.frames_rx,
                c.frames_tx,
                c.sent_flood,
                c.sent_direct,
                c.recv_flood,
                c.recv_direct,
                c.dropped_total()
            ),
            None,
        );
    }
    if let Some(key) = command.strip_prefix("get ") {
        return (get(key.trim(), view), None);
    }
    if let Some(setting) = command.strip_prefix("set ") {
        let reply = match config_key(setting) {
            Some(key) => format!("Err - set {key} in the configuration file"),
            None => {
                "Err - settings live in the configuration file (see meshroom-gw configfile)".into()
            }
        };
        return (reply, None);
    }
    if command.starts_with("password") {
        return (
            "Err - set rooms[].admin_password in the configuration file".into(),
            None,
        );
    }
    if command.starts_with("clear stats") {
        return (
            "Err - counters are cumulative (they feed /metrics) and are not reset".into(),
            None,
        );
    }
    for word in [
        "reboot",
        "poweroff",
        "shutdown",
        "clkreboot",
        "start ota",
        "erase",
    ] {
        if word_is(command, word) {
            return (
                "Err - not over the air: restart the gateway on its host (systemctl restart meshroom-gw)"
                    .into(),
                None,
            );
        }
    }
    ("Unknown command".into(), None)
}

fn get(key: &str, view: &CliView) -> String {
    let cfg = view.config;
    match key {
        "name" => format!("> {}", view.room_name),
        "public.key" => format!("> {}", view.public.to_hex()),
        "role" => "> room_server".into(),
        "radio" => match &cfg.radio {
            Some(r) => format!(
                "> {},{},{},{}",
                r.frequency_mhz, r.bandwidth_khz, r.spreading_factor, r.coding_rate
            ),
            None => "> none (no radio configured)".into(),
        },
        "freq" => match &cfg.radio {
            Some(r) => format!("> {}", r.frequency_mhz),
            None => "> none".into(),
        },
        "tx" => match &cfg.radio {
            Some(r) => format!("> {}", r.power_dbm),
            None => "> none".into(),
        },
        "lat" => format!("> {}", view.location.map_or("0".into(), |l| degrees(l.0))),
        "lon" => format!("> {}", view.location.map_or("0".into(), |l| degrees(l.1))),
        "advert.interval" => format!("> {}", cfg.advert_interval_ms / 60_000),
        "flood.advert.interval" => format!("> {}", cfg.flood_advert_interval_ms / 3_600_000),
        "allow.read.only" => format!("> {}", if view.allow_read_only { "on" } else { "off" }),
        "repeat" => "> off".into(),
        "guest.password" | "password" => {
            "Err - not shown over the air; it is rooms[].psk in the configuration file".into()
        }
        "prv.key" => "Err - not shown over the air".into(),
        other => format!("Err - unknown config: {other}"),
    }
}

/// `setperm {pubkey-hex} {permissions}` (MyMesh.cpp `handleCommand`): the role is the
/// permissions' low two bits. A whole key always works; a shorter prefix must name exactly one
/// key the room knows.
fn setperm(args: &str, view: &CliView) -> (String, Option<CliEffect>) {
    let mut parts = args.split_whitespace();
    let (Some(hex), Some(perms)) = (parts.next(), parts.next()) else {
        return ("Err - bad params".into(), None);
    };
    let hex = &hex[..hex.len().min(64)];
    let Ok(prefix) = hex::decode(&hex[..hex.len() & !1]) else {
        return ("Err - bad pubkey".into(), None);
    };
    let Ok(perms) = perms.parse::<u8>() else {
        return ("Err - bad params".into(), None);
    };
    if prefix.is_empty() {
        return ("Err - bad pubkey".into(), None);
    }
    let key = if prefix.len() == 32 {
        let mut k = [0u8; 32];
        k.copy_from_slice(&prefix);
        PublicKey(k)
    } else {
        let mut matches: Vec<&PublicKey> = view
            .known
            .iter()
            .chain(view.acl.keys())
            .filter(|k| k.0.starts_with(&prefix))
            .collect();
        matches.sort();
        matches.dedup();
        match matches.as_slice() {
            [one] => **one,
            [] => {
                return (
                    "Err - invalid params (no known key has that prefix)".into(),
                    None,
                )
            }
            _ => {
                return (
                    "Err - invalid params (prefix names several keys)".into(),
                    None,
                )
            }
        }
    };
    if key == view.public {
        return ("Err - invalid params".into(), None);
    }
    (
        "OK".into(),
        Some(CliEffect::SetRole(key, Role::from_permissions(perms))),
    )
}

/// The ACL, one entry a line: permissions in hex and the key's first 6 bytes (the firmware's
/// serial `get acl` prints `%02X` and the key).
fn acl_text(view: &CliView) -> String {
    if view.acl.is_empty() {
        return "ACL: empty".into();
    }
    let mut out = format!("ACL ({}):", view.acl.len());
    let budget = MAX_TEXT_LEN - 24;
    for (i, (key, role)) in view.acl.iter().enumerate() {
        let line = format!("\n{:02X} {}", role.permissions(), hex::encode(&key.0[..6]));
        if out.len() + line.len() > budget {
            let _ = write!(out, "\n+{} more (meshroom-gw acl)", view.acl.len() - i);
            break;
        }
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(
        counters: &'a Counters,
        config: &'a EngineConfig,
        acl: &'a BTreeMap<PublicKey, Role>,
        known: &'a [PublicKey],
    ) -> CliView<'a> {
        CliView {
            room_name: "Public",
            public: PublicKey([9; 32]),
            now_unix: 1_750_000_000,
            uptime_s: 42,
            counters,
            config,
            location: Some((52_370_216, 4_895_168)),
            allow_read_only: false,
            acl,
            known,
        }
    }

    #[test]
    fn replies_follow_the_firmware_formats_and_echo_the_prefix() {
        let (c, cfg, acl) = (
            Counters::default(),
            EngineConfig::default(),
            BTreeMap::new(),
        );
        let known = [PublicKey([0xAB; 32]), PublicKey([0xAC; 32])];
        let v = view(&c, &cfg, &acl, &known);
        assert_eq!(run("A1|clock\r", &v).reply, "A1|15:06 - 15/6/2025 UTC");
        assert_eq!(run("get name", &v).reply, "> Public");
        assert_eq!(run("get lat", &v).reply, "> 52.370216");
        assert!(run("B2|ver", &v).reply.starts_with("B2|meshroom-gw v"));
        assert_eq!(
            run("set name Other", &v).reply,
            "Err - set rooms[].name in the configuration file"
        );
        assert_eq!(
            run("password hunter2", &v).reply,
            "Err - set rooms[].admin_password in the configuration file"
        );
        assert!(run("get guest.password", &v)
            .reply
            .starts_with("Err - not shown"));
        assert_eq!(run("frobnicate", &v).reply, "Unknown command");
        let out = run("setperm abab 2", &v);
        assert_eq!(out.reply, "OK");
        assert_eq!(
            out.effect,
            Some(CliEffect::SetRole(PublicKey([0xAB; 32]), Role::ReadWrite))
        );
        assert!(run("setperm a 2", &v).reply.starts_with("Err - bad pubkey"));
        assert!(run("setperm zz 2", &v)
            .reply
            .starts_with("Err - bad pubkey"));
        assert!(run("setperm ab", &v).reply.starts_with("Err - bad params"));
        assert_eq!(
            run("room.post hello all", &v).effect,
            Some(CliEffect::RoomPost("hello all".into()))
        );
        assert_eq!(run("room.post ", &v).reply, "ERR empty message");
        assert_eq!(
            run("advert.zerohop", &v).effect,
            Some(CliEffect::Advert { flood: false })
        );
        assert!(run("stats-packets", &v).reply.starts_with("{\"recv\":0,"));
    }

    #[test]
    fn acl_listing_fits_one_message() {
        let (c, cfg) = (Counters::default(), EngineConfig::default());
        let acl: BTreeMap<PublicKey, Role> = (0..40u8)
            .map(|i| (PublicKey([i; 32]), Role::ReadWrite))
            .collect();
        let v = view(&c, &cfg, &acl, &[]);
        let text = run("XY|get acl", &v).reply;
        assert!(text.len() <= MAX_TEXT_LEN);
        assert!(text.starts_with("XY|ACL (40):\n02 000000000000"));
        assert!(text.contains("more (meshroom-gw acl)"));
    }
}
