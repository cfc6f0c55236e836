//! The `meshroom-gw` command line: `run`, `status`, `check-config`, `configfile`, `post`, `tail`,
//! and `generate` (man pages, completions).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::config::{self, ConfigError};

#[derive(Debug, Parser)]
#[command(
    name = "meshroom-gw",
    version,
    about = "MeshCore multi-room server for LoRa gateways, with rooms on a TUN device and federation",
    propagate_version = true
)]
pub struct Cli {
    /// Configuration file [default: /etc/meshroom-gw/config.yaml, else the embedded default]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "MESHROOM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (radio, rooms, TUN, federation, HTTP) until SIGTERM.
    Run,
    /// Show rooms, clients and peers of a running gateway.
    Status {
        /// Base URL of the gateway's HTTP side [default: from the configuration's http.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration file and exit (status 2 when it has errors).
    CheckConfig,
    /// Print a commented configuration template.
    Configfile,
    /// Post a message into a room of a running gateway (from this host).
    Post {
        /// Room name.
        #[arg(long)]
        room: String,
        /// Name shown as the author.
        #[arg(long)]
        author: Option<String>,
        /// Base URL of the gateway's HTTP side [default: from the configuration's http.listen]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The message.
        text: String,
    },
    /// Print a room's posts as they pass on the host: joins the room's multicast group on the
    /// TUN device (opening a private room's seal with the PSK from the configuration).
    Tail {
        /// Room name.
        #[arg(long)]
        room: String,
        /// Print each post as its JSON line.
        #[arg(long)]
        json: bool,
    },
    /// A software MeshCore companion on the simulated air: list rooms, log in, post, listen.
    Client {
        /// Directory of the simulated air [default: radio.air_dir of the configuration]
        #[arg(long, value_name = "DIR")]
        air: Option<PathBuf>,
        /// This client's name (shown in its adverts).
        #[arg(long, default_value = "client")]
        name: String,
        /// Where the client keeps its key and what it learnt
        /// [default: ~/.local/state/meshroom-gw/client-NAME]
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        #[command(subcommand)]
        action: crate::meshcore::client_cli::ClientCommand,
    },
    /// Radio tools: bring-up diagnostics, presets.
    Radio {
        #[command(subcommand)]
        action: RadioCommand,
    },
    /// Write the manual pages, or print a shell completion script.
    // Visible on purpose: clap's completion generators list hidden subcommands anyway, and
    // `generate completions SHELL` is as useful to someone who installed with cargo.
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[derive(Debug, Subcommand)]
pub enum RadioCommand {
    /// Open the configured SPI/GPIO, reset the chip, read status, device errors and sync word,
    /// try a full bring-up, and explain what is wrong.
    Probe,
    /// List the board and region presets the `radio:` section accepts.
    Presets,
}

/// `meshroom-gw radio …`; returns the exit status.
pub fn radio(action: RadioCommand, config_path: Option<&Path>) -> i32 {
    match action {
        RadioCommand::Presets => {
            print!("{}", render_presets());
            0
        }
        RadioCommand::Probe => {
            let loaded = match config::resolve(config_path) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("{e}");
                    return EXIT_CONFIG;
                }
            };
            match crate::radio::probe::run(&loaded.config.radio) {
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

/// The preset tables of `meshroom-gw radio presets`.
pub fn render_presets() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "boards (radio.board):");
    for b in sx126x::presets::BOARDS {
        let _ = writeln!(
            out,
            "  {:<18} {} — {} on {}, NRESET {} BUSY {} DIO1 {}{}{}{}, TCXO {}, DIO2 switch {}",
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

/// What `meshroom-gw generate` writes.
#[derive(Debug, Subcommand)]
pub enum Generate {
    /// Write meshroom-gw.1 and one page per subcommand into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Runs `meshroom-gw generate`.
pub fn generate(what: Generate) -> i32 {
    match what {
        Generate::Man { dir } => match crate::ops::docs::write_man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                0
            }
            Err(e) => {
                eprintln!(
                    "error: cannot write the manual pages to {}: {e}",
                    dir.display()
                );
                1
            }
        },
        Generate::Completions { shell } => {
            crate::ops::docs::write_completions(shell, &mut std::io::stdout());
            0
        }
    }
}

/// Exit status of a configuration error.
pub const EXIT_CONFIG: i32 = ConfigError::EXIT_STATUS;

pub fn check_config(path: Option<&Path>) -> i32 {
    match config::resolve(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{}: OK ({} rooms, {} peers)",
                loaded.source,
                loaded.config.rooms.len(),
                loaded.config.peers.len()
            );
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_CONFIG
        }
    }
}

/// The base URL to reach the gateway that `config` describes.
fn base_url(explicit: Option<String>, config_path: Option<&Path>) -> String {
    if let Some(url) = explicit {
        return url.trim_end_matches('/').to_string();
    }
    let listen = config::resolve(config_path)
        .map(|l| l.config.http.listen)
        .unwrap_or_else(|_| config::HttpConfig::default().listen);
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}", listen.port())
}

pub async fn status(
    url: Option<String>,
    json: bool,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    let base = base_url(url, config_path);
    let answer = crate::http::client::request("GET", &format!("{base}/status"), &[], None).await?;
    if answer.status != 200 {
        bail!(
            "{base}/status answered {}: {}",
            answer.status,
            answer.body.trim()
        );
    }
    if json {
        println!("{}", answer.body);
        return Ok(());
    }
    let status: Value = serde_json::from_str(&answer.body).context("/status is not JSON")?;
    print!("{}", render_status(&status));
    Ok(())
}

/// The human table of `meshroom-gw status`.
pub fn render_status(s: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let server = &s["server"];
    let _ = writeln!(
        out,
        "{} (meshroom-gw {}), up {}",
        server["name"].as_str().unwrap_or("?"),
        server["version"].as_str().unwrap_or("?"),
        human_duration(server["uptime_s"].as_u64().unwrap_or(0))
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:>16} {:>13}  LAST POST",
        "ROOM", "ACCESS", "CLIENTS r/ip", "HISTORY"
    );
    for room in s["rooms"].as_array().into_iter().flatten() {
        let clients = &room["clients"];
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:>16} {:>13}  {}",
            room["name"].as_str().unwrap_or("?"),
            if room["private"].as_bool().unwrap_or(false) {
                "private"
            } else {
                "public"
            },
            format!(
                "{} ({}/{})",
                clients["total"].as_u64().unwrap_or(0),
                clients["radio"].as_u64().unwrap_or(0),
                clients["ip"].as_u64().unwrap_or(0)
            ),
            format!(
                "{}/{}",
                room["history"]["count"].as_u64().unwrap_or(0),
                room["history"]["max"].as_u64().unwrap_or(0)
            ),
            room["last_post_at"]
                .as_u64()
                .map(crate::timefmt::utc)
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(line) = crate::radio::status::status_line(&s["radio"]) {
        let _ = writeln!(out, "\n{line}");
    }
    if let Some(line) = crate::tun::status::status_line(&s["tun"]) {
        let _ = writeln!(out, "\n{line}");
    }
    let peers = s["peers"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out);
    if peers.is_empty() {
        let _ = writeln!(out, "no peers configured");
    } else {
        let _ = writeln!(
            out,
            "{:<28} {:<12} {:>9} {:>9} {:>8}  SHARED ROOMS",
            "PEER", "STATE", "POSTS IN", "OUT", "RTT"
        );
        for p in peers {
            let _ = writeln!(out, "{}", peer_row(&p));
        }
    }
    out
}

/// One peer's line in the `status` table, plus an indented line for refusals and the last
/// error when there are any.
fn peer_row(p: &Value) -> String {
    let shared = p["shared_rooms"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let count = |k: &str| {
        p[k].as_u64()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "-".into())
    };
    let rtt = p["rtt_ms"]
        .as_f64()
        .map(|ms| format!("{ms:.1}ms"))
        .unwrap_or_else(|| "-".into());
    let host = p["host"].as_str().unwrap_or("?");
    let label = if host.contains(':') {
        format!("[{host}]:{}", p["port"])
    } else {
        format!("{host}:{}", p["port"])
    };
    let mut line = format!(
        "{:<28} {:<12} {:>9} {:>9} {:>8}  {}",
        label,
        p["state"].as_str().unwrap_or("?"),
        count("posts_in"),
        count("posts_out"),
        rtt,
        if shared.is_empty() {
            "-".to_string()
        } else {
            shared
        }
    );
    let mut notes = Vec::new();
    if let Some(server) = p["server"].as_str() {
        notes.push(format!("server {server}"));
    }
    for (key, what) in [
        ("secret_mismatches", "secret mismatches"),
        ("room_proof_failures", "unmatched room proofs"),
        ("malformed", "malformed"),
    ] {
        if let Some(n) = p[key].as_u64().filter(|n| *n > 0) {
            notes.push(format!("{what}: {n}"));
        }
    }
    if let Some(rooms) = p["psk_mismatch_rooms"].as_array().filter(|r| !r.is_empty()) {
        let names: Vec<&str> = rooms.iter().filter_map(|r| r.as_str()).collect();
        notes.push(format!("PSK differs for: {}", names.join(", ")));
    }
    if let Some(err) = p["last_error"].as_str() {
        notes.push(format!("last error: {err}"));
    }
    if !notes.is_empty() {
        line.push_str("\n    ");
        line.push_str(&notes.join("; "));
    }
    line
}

fn human_duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub async fn post(
    room: String,
    author: Option<String>,
    url: Option<String>,
    text: String,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    let base = base_url(url, config_path);
    // A private room's PSK comes from the configuration (never from the command line, where
    // other users could read it in the process list) or from MESHROOM_PSK.
    let psk = std::env::var("MESHROOM_PSK").ok().or_else(|| {
        config::resolve(config_path)
            .ok()
            .and_then(|l| l.config.room(&room).map(|r| r.psk.expose().to_string()))
            .filter(|p| !p.is_empty())
    });
    let body = serde_json::json!({ "text": text, "author": author }).to_string();
    let encoded = percent_encoding::utf8_percent_encode(&room, percent_encoding::NON_ALPHANUMERIC);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(p) = psk.as_deref() {
        headers.push((crate::http::PSK_HEADER, p));
    }
    let answer = crate::http::client::request(
        "POST",
        &format!("{base}/rooms/{encoded}/posts"),
        &headers,
        Some(body),
    )
    .await?;
    if !(200..300).contains(&answer.status) {
        let msg = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(answer.body);
        bail!("posting to `{room}` failed ({}): {msg}", answer.status);
    }
    let v: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    println!("posted to {room} as {}", v["id"].as_str().unwrap_or("?"));
    Ok(())
}

/// `meshroom-gw client …`: radio settings and air directory come from the configuration when
/// there is one, so the client hears the gateway.
pub async fn client(
    air: Option<PathBuf>,
    name: String,
    state: Option<PathBuf>,
    action: crate::meshcore::client_cli::ClientCommand,
    config_path: Option<&Path>,
) -> anyhow::Result<()> {
    use crate::meshcore::client_cli;
    let radio = config::resolve(config_path)
        .map(|l| l.config.radio)
        .unwrap_or_default();
    let params = crate::radio::SimParams::from_config(&radio)?;
    let opts = client_cli::ClientOptions {
        air: air.unwrap_or(radio.air_dir),
        state: state.unwrap_or_else(|| client_cli::default_state_dir(&name)),
        name,
        params,
    };
    client_cli::run(opts, action).await
}

#[cfg(test)]
mod tests {

    #[test]
    fn peer_rows_show_traffic_and_refusals() {
        let up = serde_json::json!({
            "host": "seattle.example", "port": 7070, "state": "connected",
            "posts_in": 12, "posts_out": 3, "rtt_ms": 41.26,
            "shared_rooms": ["Ops", "Public"], "server": "seattle",
            "secret_mismatches": 0, "room_proof_failures": 0, "malformed": 0,
            "psk_mismatch_rooms": [], "last_error": null
        });
        let row = super::peer_row(&up);
        assert!(row.starts_with("seattle.example:7070"), "{row}");
        assert!(row.contains("connected") && row.contains("41.3ms"), "{row}");
        assert!(
            row.contains("Ops, Public") && row.contains("server seattle"),
            "{row}"
        );
        let refused = serde_json::json!({
            "host": "::1", "port": 7071, "state": "rejected", "shared_rooms": [],
            "secret_mismatches": 4, "last_error": "peer refused the handshake: unknown key id"
        });
        let row = super::peer_row(&refused);
        assert!(row.starts_with("[::1]:7071"), "{row}");
        assert!(row.contains("secret mismatches: 4"), "{row}");
        assert!(
            row.contains("last error: peer refused the handshake"),
            "{row}"
        );
    }
}
