//! Configuration: the YAML schema, its defaults, and validation whose every complaint names the
//! file, line, column and key path.
//!
//! Each section lives in its own file; this module owns loading (file or embedded default),
//! turning parse errors into one-line messages with a "did you mean" for mistyped keys, and the
//! checks that span sections (duplicate rooms, peers, placeholder secrets).

pub mod federation;
pub mod http;
pub mod locate;
pub mod meshcore;
pub mod radio;
pub mod rooms;
pub mod server;
pub mod tun;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use federation::{FederationConfig, PeerConfig};
pub use http::HttpConfig;
pub use meshcore::MeshcoreConfig;
pub use radio::{RadioBackend, RadioConfig};
pub use rooms::{Psk, RoomConfig};
pub use server::ServerConfig;
pub use tun::{TunConfig, TunMode};

/// Where `run` looks when no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/meshroom-gw/config.yaml";

/// The commented example shipped to users; `meshroom-gw configfile` prints it.
pub const TEMPLATE: &str = include_str!("../../config/meshroom-gw.yaml");

/// Secrets that contain this marker are the template's placeholders, never accepted as real.
const PLACEHOLDER_MARKER: &str = "change-me";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub http: HttpConfig,
    pub rooms: Vec<RoomConfig>,
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    #[serde(default)]
    pub radio: RadioConfig,
    #[serde(default)]
    pub tun: TunConfig,
    #[serde(default)]
    pub federation: FederationConfig,
    #[serde(default)]
    pub meshcore: MeshcoreConfig,
}

impl Config {
    /// The configuration `run` uses when there is no file: one public room, HTTP on loopback,
    /// the simulated radio, state under the user's state directory.
    pub fn embedded_default() -> Config {
        Config {
            server: ServerConfig {
                state_dir: server::user_state_dir(),
                ..ServerConfig::default()
            },
            http: HttpConfig::default(),
            rooms: vec![RoomConfig {
                name: "Public".to_string(),
                psk: Psk::default(),
                description: "Public room of this meshroom-gw".to_string(),
                max_history: 1000,
                group: None,
                port: None,
                ..RoomConfig::default()
            }],
            peers: Vec::new(),
            radio: RadioConfig::default(),
            tun: TunConfig::default(),
            federation: FederationConfig::default(),
            meshcore: MeshcoreConfig::default(),
        }
    }

    pub fn room(&self, name: &str) -> Option<&RoomConfig> {
        self.rooms.iter().find(|r| r.name == name)
    }
}

/// Where a configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded default>"),
        }
    }
}

/// A loaded, validated configuration with the warnings it produced.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
    pub warnings: Vec<Issue>,
}

/// One complaint about a configuration, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Key path such as `rooms[1].max_history`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Issue>),
}

impl ConfigError {
    /// Exit status for configuration errors.
    pub const EXIT_STATUS: i32 = 2;
}

/// Checks made outside this module (by `settings`, with the sides' own rules), reported with the
/// file's checks: (key path, message) pairs.
pub type ExtraChecks<'a> = &'a dyn Fn(&Config) -> Vec<(String, String)>;

/// Loads the configuration `run` should use: `explicit` if given (it must exist), else the
/// default path if a file is there, else the embedded default. `settings::load` is the caller
/// that adds the sides' checks.
pub fn resolve_with(explicit: Option<&Path>, extra: ExtraChecks) -> Result<Loaded, ConfigError> {
    match explicit {
        Some(path) => load_file_with(path, extra),
        None if Path::new(DEFAULT_PATH).exists() => load_file_with(Path::new(DEFAULT_PATH), extra),
        None => Ok(Loaded {
            config: Config::embedded_default(),
            source: Source::Embedded,
            warnings: Vec::new(),
        }),
    }
}

/// Loads and checks one file (the file's own checks only).
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    load_file_with(path, &|_| Vec::new())
}

pub fn load_file_with(path: &Path, extra: ExtraChecks) -> Result<Loaded, ConfigError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: label.clone(),
        source,
    })?;
    let (config, warnings) = parse_with(&text, &label, extra)?;
    Ok(Loaded {
        config,
        source: Source::File(path.to_path_buf()),
        warnings,
    })
}

/// Parses and validates `text` (the file's own checks); `file` is the name used in messages.
pub fn parse(text: &str, file: &str) -> Result<(Config, Vec<Issue>), ConfigError> {
    parse_with(text, file, &|_| Vec::new())
}

/// Parses and validates `text`, adding `extra`'s problems to the file's own.
pub fn parse_with(
    text: &str,
    file: &str,
    extra: ExtraChecks,
) -> Result<(Config, Vec<Issue>), ConfigError> {
    let config: Config = serde_saphyr::from_str(text)
        .map_err(|e| ConfigError::Invalid(vec![parse_issue(text, file, &e)]))?;
    let mut report = Report {
        text,
        file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    validate(&config, &mut report);
    for (key, message) in extra(&config) {
        report.error(key, message);
    }
    if report.errors.is_empty() {
        Ok((config, report.warnings))
    } else {
        Err(ConfigError::Invalid(report.errors))
    }
}

fn parse_issue(text: &str, file: &str, err: &serde_saphyr::Error) -> Issue {
    let (line, column) = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line() as usize, l.column() as usize))
        .unwrap_or((1, 1));
    let raw = err.without_snippet().to_string();
    let message = humanize(strip_location(&raw));
    let key = locate::path_at(text, line);
    if message.starts_with("required key") {
        // The library points past the mapping that lacks the key; name the mapping instead.
        let parent = match key.rfind('.') {
            Some(i) if !key.ends_with(']') => key[..i].to_string(),
            _ if !key.ends_with(']') => String::new(),
            _ => key,
        };
        let (line, column) = if parent.is_empty() {
            (1, 1)
        } else {
            locate::position_of(text, &parent)
        };
        return Issue {
            file: file.to_string(),
            line,
            column,
            key: parent,
            message,
        };
    }
    Issue {
        file: file.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// The YAML library appends "at line X column Y"; we print the location in front instead.
fn strip_location(msg: &str) -> &str {
    let first = msg.lines().next().unwrap_or(msg);
    match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first.trim_end(),
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a suggestion.
fn humanize(msg: &str) -> String {
    let msg = msg.trim_start_matches("error: ").trim();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (given, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let expected: Vec<&str> = tail
            .split_once("expected ")
            .map(|(_, list)| list.trim_start_matches("one of "))
            .map(|list| {
                list.split(", ")
                    .map(|k| k.trim().trim_matches('`'))
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut out = format!("unknown key `{given}`");
        match closest(given, &expected) {
            Some(best) => out.push_str(&format!(" (did you mean `{best}`?)")),
            None if !expected.is_empty() => {
                out.push_str(&format!("; valid keys here: {}", expected.join(", ")))
            }
            None => {}
        }
        return out;
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (given, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let choices = tail
            .trim_start_matches(", expected ")
            .trim_start_matches("one of ");
        return format!("`{given}` is not a valid choice; use one of: {choices}");
    }
    for (ty, range) in [
        ("u8", "0 to 255"),
        ("u16", "0 to 65535"),
        ("u32", "0 to 4294967295"),
        ("u64", "0 or more"),
    ] {
        if msg == format!("invalid {ty}") {
            return format!("expected a whole number from {range}");
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        return format!("required key `{name}` is missing");
    }
    msg.to_string()
}

fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(given, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

struct Report<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
}

impl Report<'_> {
    fn issue(&self, key: String, message: String) -> Issue {
        let (line, column) = locate::position_of(self.text, &key);
        Issue {
            file: self.file.to_string(),
            line,
            column,
            key,
            message,
        }
    }
    fn error(&mut self, key: String, message: impl Into<String>) {
        let issue = self.issue(key, message.into());
        self.errors.push(issue);
    }
    fn warn(&mut self, key: String, message: impl Into<String>) {
        let issue = self.issue(key, message.into());
        self.warnings.push(issue);
    }
}

fn is_placeholder(secret: &str) -> bool {
    secret.to_ascii_lowercase().contains(PLACEHOLDER_MARKER)
}

fn validate(config: &Config, report: &mut Report<'_>) {
    if config.server.name.trim().is_empty() {
        report.error("server.name".into(), "must not be empty");
    }
    if config.rooms.is_empty() {
        report.error("rooms".into(), "at least one room is needed");
    }
    for (i, room) in config.rooms.iter().enumerate() {
        let key = |k: &str| format!("rooms[{i}].{k}");
        let name = room.name.trim();
        if name.is_empty() {
            report.error(key("name"), "a room needs a name");
        } else if room.name.len() > rooms::MAX_ROOM_NAME_BYTES {
            report.error(
                key("name"),
                format!(
                    "`{}` is {} bytes; a MeshCore advert carries at most {} bytes of name",
                    room.name,
                    room.name.len(),
                    rooms::MAX_ROOM_NAME_BYTES
                ),
            );
        } else if room.name != name || room.name.chars().any(|c| c.is_control() || c == '/') {
            report.error(
                key("name"),
                "must not start or end with spaces or contain control characters or `/`",
            );
        } else if let Some(first) = config.rooms[..i]
            .iter()
            .position(|r| r.name.eq_ignore_ascii_case(&room.name))
        {
            report.error(
                key("name"),
                format!("room `{}` is already defined as rooms[{first}]", room.name),
            );
        }
        if room.max_history == 0 || room.max_history > rooms::MAX_HISTORY_LIMIT {
            report.error(
                key("max_history"),
                format!(
                    "must be between 1 and {} (got {})",
                    rooms::MAX_HISTORY_LIMIT,
                    room.max_history
                ),
            );
        }
        if is_placeholder(room.psk.expose()) {
            report.error(
                key("psk"),
                "is still the example placeholder; set a password of your own (or \"\" for a public room)",
            );
        } else if room.psk.expose().len() > rooms::MESHCORE_PASSWORD_BYTES {
            report.warn(
                key("psk"),
                format!(
                    "is longer than {} bytes; MeshCore apps send at most {} password bytes, so radio logins compare only the first {}",
                    rooms::MESHCORE_PASSWORD_BYTES,
                    rooms::MESHCORE_PASSWORD_BYTES,
                    rooms::MESHCORE_PASSWORD_BYTES
                ),
            );
        }
        if room.port == Some(0) {
            report.error(key("port"), "port 0 is not a usable UDP port");
        }
        for (k, message) in room.access_problems() {
            report.error(key(k), message);
        }
    }
    for (i, peer) in config.peers.iter().enumerate() {
        let key = |k: &str| format!("peers[{i}].{k}");
        if peer.host.trim().is_empty() {
            report.error(key("host"), "a peer needs a host name or address");
        }
        if peer.port == 0 {
            report.error(key("port"), "port 0 is not a usable TCP port");
        }
        if peer.secret.is_empty() {
            report.error(key("secret"), "a peer needs a shared secret");
        } else if is_placeholder(peer.secret.expose()) {
            report.error(
                key("secret"),
                "is still the example placeholder; agree a secret with this peer's operator",
            );
        }
        if let Some(first) = config.peers[..i]
            .iter()
            .position(|p| p.host.eq_ignore_ascii_case(&peer.host) && p.port == peer.port)
        {
            report.error(
                key("host"),
                format!(
                    "peer {}:{} is already listed as peers[{first}]",
                    peer.host, peer.port
                ),
            );
        } else if !peer.secret.is_empty() {
            if let Some(first) = config.peers[..i]
                .iter()
                .position(|p| p.secret == peer.secret)
            {
                report.warn(
                    key("secret"),
                    format!("the same secret is used for peers[{first}]; give every pair of servers its own"),
                );
            }
        }
    }
    for (key, message) in config.federation.problems() {
        report.error(key.into(), message);
    }
    if config.http.status_allow.is_empty() {
        report.warn(
            "http.status_allow".into(),
            "is empty: nobody, not even this host, can read /status and /metrics",
        );
    }
    // The TUN section (where the rooms land on its range is checked in `settings`).
    for (key, message) in config.tun.check() {
        report.error(key, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_loads_and_names_no_placeholder() {
        let (config, warnings) = parse(TEMPLATE, "meshroom-gw.yaml").expect("template is valid");
        assert!(!config.rooms.is_empty());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn suggestion_for_typo() {
        let err = parse("rooms:\n  - name: a\n    max_histroy: 5\n", "c.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("c.yaml:3:"), "{text}");
        assert!(text.contains("rooms[0].max_histroy"), "{text}");
        assert!(text.contains("did you mean `max_history`"), "{text}");
    }

    #[test]
    fn psk_is_never_printed() {
        let psk = Psk::new("hunter2");
        assert!(!format!("{psk:?} {psk}").contains("hunter2"));
    }
}
