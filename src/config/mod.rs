//! Configuration: the YAML schema, its defaults, and validation whose every complaint names the
//! file, line, column and key path.
//!
//! Each section lives in its own file; this module owns loading (file or embedded default),
//! turning parse errors into one-line messages with a "did you mean" for mistyped keys, and the
//! checks that span sections (duplicate rooms, peers, placeholder secrets).

pub mod base64;
pub mod federation;
pub mod http;
pub mod locate;
pub mod meshcore;
pub mod radio;
pub mod rooms;
pub mod schema;
pub mod server;
pub mod tree;
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

    /// The room called `name`, in any case (room names are unique ignoring case).
    pub fn room(&self, name: &str) -> Option<&RoomConfig> {
        self.rooms.iter().find(|r| r.name == name).or_else(|| {
            self.rooms
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(name))
        })
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

/// Like [`resolve_with`] with the file's own checks only: for commands that read a few keys of
/// the configuration (`http.listen`, `radio:`) and need not judge the rest by the sides' rules.
pub fn resolve(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    resolve_with(explicit, &|_| Vec::new())
}

/// Loads and checks one file (the file's own checks only).
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    load_file_with(path, &|_| Vec::new())
}

pub fn load_file_with(path: &Path, extra: ExtraChecks) -> Result<Loaded, ConfigError> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        file: label.clone(),
        source,
    })?;
    let text = utf8(&bytes, &label)?;
    let (config, warnings) = parse_with(text, &label, extra)?;
    Ok(Loaded {
        config,
        source: Source::File(path.to_path_buf()),
        warnings,
    })
}

/// The file as text, or an error at the first byte that is not UTF-8.
fn utf8<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let prefix = String::from_utf8_lossy(good);
        let line = prefix.matches('\n').count() + 1;
        let line_start = prefix.rfind('\n').map_or(0, |i| i + 1);
        let column = prefix[line_start..].chars().count() + 1;
        let key = locate::path_at(&prefix, line);
        ConfigError::Invalid(vec![Issue {
            file: file.to_string(),
            line,
            column,
            key: if key.is_empty() { "rooms".into() } else { key },
            message: format!(
                "the file is not UTF-8 text: byte 0x{:02X} cannot start a character here; save the file as UTF-8 (editors call it \"UTF-8\" or \"Unicode\")",
                bytes[e.valid_up_to()]
            ),
        }])
    })
}

/// Parses and validates `text` (the file's own checks); `file` is the name used in messages.
pub fn parse(text: &str, file: &str) -> Result<(Config, Vec<Issue>), ConfigError> {
    parse_with(text, file, &|_| Vec::new())
}

/// Parses and validates `text`, adding `extra`'s problems to the file's own. Every mistake is
/// reported in one go, ordered by line: the schema walk (unknown keys, duplicates, types,
/// ranges) first drops what it refused, then the typed checks run on the rest.
pub fn parse_with(
    text: &str,
    file: &str,
    extra: ExtraChecks,
) -> Result<(Config, Vec<Issue>), ConfigError> {
    let root = match tree::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let what = if text.trim().is_empty() {
                "the file is empty"
            } else {
                "the file holds only comments"
            };
            return Err(ConfigError::Invalid(vec![Issue {
                file: file.to_string(),
                line: 1,
                column: 1,
                key: "rooms".into(),
                message: format!(
                    "{what}; it needs at least a `rooms:` list with one room, e.g. `rooms:` then `  - name: Public` (`meshroom-gw configfile` prints a commented example)"
                ),
            }]));
        }
        Err(e) => {
            let key = locate::path_at(text, e.line);
            return Err(ConfigError::Invalid(vec![Issue {
                file: file.to_string(),
                line: e.line,
                column: e.column,
                key,
                message: e.message,
            }]));
        }
    };
    let walked = schema::walk(&root);
    let mut report = Report {
        text,
        file,
        positions: walked.positions,
        tainted: walked.tainted,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for f in walked.findings {
        report.errors.push(Issue {
            file: file.to_string(),
            line: f.line,
            column: f.column,
            key: f.key,
            message: f.message,
        });
    }
    match serde_json::from_value::<Config>(walked.json) {
        Ok(config) => {
            validate(&config, &mut report);
            for (key, message) in extra(&config) {
                report.error(key, message);
            }
            finish(report, config)
        }
        Err(e) => {
            // The walk refuses everything the typed reading would; should the two ever
            // disagree, still say something useful.
            if report.errors.is_empty() {
                report.error(String::new(), format!("cannot be read: {e}"));
            }
            Err(ConfigError::Invalid(sorted(report.errors)))
        }
    }
}

fn sorted(mut issues: Vec<Issue>) -> Vec<Issue> {
    issues.sort_by_key(|a| (a.line, a.column));
    issues.dedup();
    issues
}

fn finish(report: Report<'_>, config: Config) -> Result<(Config, Vec<Issue>), ConfigError> {
    if report.errors.is_empty() {
        Ok((config, sorted(report.warnings)))
    } else {
        Err(ConfigError::Invalid(sorted(report.errors)))
    }
}

struct Report<'a> {
    text: &'a str,
    file: &'a str,
    /// Where each key path's value starts, from the file's tree.
    positions: std::collections::BTreeMap<String, (usize, usize)>,
    /// Paths the schema walk already complained about (or filled in): no second complaint.
    tainted: Vec<String>,
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
}

impl Report<'_> {
    fn position(&self, key: &str) -> (usize, usize) {
        let mut path = key;
        loop {
            if let Some(p) = self.positions.get(path) {
                return *p;
            }
            match path.rfind(['.', '[']) {
                Some(i) => path = &path[..i],
                None => return locate::position_of(self.text, key),
            }
        }
    }
    fn is_tainted(&self, key: &str) -> bool {
        self.tainted.iter().any(|t| {
            key == t || (key.starts_with(t.as_str()) && key[t.len()..].starts_with(['.', '[']))
        })
    }
    fn issue(&self, key: String, message: String) -> Issue {
        let (line, column) = self.position(&key);
        Issue {
            file: self.file.to_string(),
            line,
            column,
            key,
            message,
        }
    }
    fn error(&mut self, key: String, message: impl Into<String>) {
        if self.is_tainted(&key) {
            return;
        }
        let issue = self.issue(key, message.into());
        self.errors.push(issue);
    }
    fn warn(&mut self, key: String, message: impl Into<String>) {
        if self.is_tainted(&key) {
            return;
        }
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
            let earlier = &config.rooms[first].name;
            let note = if *earlier == room.name {
                String::new()
            } else {
                format!(" (`{earlier}`: names are compared ignoring case)")
            };
            report.error(
                key("name"),
                format!(
                    "room `{}` is already defined as rooms[{first}]{note}; give each room its own name",
                    room.name
                ),
            );
        }
        if room.max_history == 0 || room.max_history > rooms::MAX_HISTORY_LIMIT {
            report.error(
                key("max_history"),
                format!(
                    "expected a whole number from 1 to {}, found {}",
                    schema::grouped(i64::from(rooms::MAX_HISTORY_LIMIT)),
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
        check_channel(config, i, report);
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

/// A room's `channel:` binding: well formed, private channels only in private rooms, and one
/// room per channel.
fn check_channel(config: &Config, i: usize, report: &mut Report<'_>) {
    let Some(spec) = &config.rooms[i].channel else {
        return;
    };
    let key = |k: &str| {
        if k.is_empty() {
            format!("rooms[{i}].channel")
        } else {
            format!("rooms[{i}].channel.{k}")
        }
    };
    let resolved = match spec.resolve() {
        Ok(r) => r,
        Err((field, message)) => return report.error(key(field), message),
    };
    if resolved.private && !config.rooms[i].is_private() {
        report.error(
            key(""),
            format!(
                "private channel `{}` in a public room: anyone who logs in would read it; give the room a psk",
                resolved.name
            ),
        );
    }
    if let Some(first) = config.rooms[..i].iter().position(|r| {
        r.channel
            .as_ref()
            .and_then(|c| c.resolve().ok())
            .is_some_and(|c| c.secret == resolved.secret)
    }) {
        report.error(
            key(""),
            format!(
                "channel `{}` is already kept by rooms[{first}]; one room per channel",
                resolved.name
            ),
        );
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
