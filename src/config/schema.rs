//! The table of every configuration key — its type, range, default and meaning — and the walk
//! that checks a file's [`tree`](super::tree) against it.
//!
//! The same table renders the key reference in README and in `meshroom-gw.yaml(5)`, so the
//! documentation cannot drift from what is checked. The walk reports every unknown key,
//! duplicate, missing key and wrongly typed or out-of-range value at once, in the operator's
//! words ("expected a whole number from 1 to 1,000,000, found `lots`"), drops what it refused,
//! and hands the rest on as JSON for the typed reading, so the cross-key checks still run on
//! whatever could be read.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::tree::{Node, Value};

/// What a key holds.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Text; a plain number is taken as its text.
    Text,
    /// Text that is never echoed in messages.
    Secret,
    /// A file or directory path: non-empty text.
    Path,
    Bool,
    /// A whole number in `min..=max`.
    Int(i64, i64),
    /// A number (decimals allowed) in `min..=max`.
    Num(f64, f64),
    /// One of these words.
    Choice(&'static [&'static str]),
    /// `auto`, `on`/`off` or a YAML boolean.
    Switch,
    /// `address:port`.
    SocketAddr,
    /// An IPv4 address.
    Ipv4,
    /// An IPv4 network `a.b.c.d/len`.
    Ipv4Net,
    /// An IPv4 or IPv6 network.
    IpNet,
    /// Transmit power in dBm: any `i8`; the board's limit is checked with the board preset.
    Power,
    /// A list of networks.
    NetList,
    /// A list of GPIO line numbers.
    PinList,
    /// A section of keys.
    Section(&'static [Key]),
    /// A list of items, each a group of these keys.
    Items(&'static [Key], &'static str),
    /// A word (`public`, `#name`) or a group of these keys (a room's `channel:`).
    WordOrSection(&'static [Key]),
}

/// One key of the file.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as shown to people; `None` when the key is required.
    pub default: Option<&'static str>,
    /// `~`/null is accepted and means "not set" (the default applies).
    pub nullable: bool,
    pub doc: &'static str,
}

const fn key(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default: Some(default),
        nullable: false,
        doc,
    }
}

/// A key that may be left unset (`~` allowed), its default described by `default`.
const fn unset(name: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default: Some(default),
        nullable: true,
        doc,
    }
}

const fn required(name: &'static str, kind: Kind, doc: &'static str) -> Key {
    Key {
        name,
        kind,
        default: None,
        nullable: false,
        doc,
    }
}

const PORT: Kind = Kind::Int(1, 65535);
const PIN: Kind = Kind::Int(0, 1023);
const OPTIONAL_PIN: Kind = Kind::Int(-1, 1023);
const SECONDS: Kind = Kind::Num(0.0, 31_536_000.0);
const POSITIVE_SECONDS: Kind = Kind::Num(0.001, 31_536_000.0);

pub const SERVER: &[Key] = &[
    key(
        "name",
        Kind::Text,
        "the host name",
        "Shown in /status; the origin of posts that enter the system here.",
    ),
    key(
        "state_dir",
        Kind::Path,
        "/var/lib/meshroom-gw (without a file: the user's state directory)",
        "Directory of the SQLite history, room identities and keys.",
    ),
];

pub const HTTP: &[Key] = &[
    key(
        "listen",
        Kind::SocketAddr,
        "127.0.0.1:7070",
        "Address of /status, /metrics, local posting and federation.",
    ),
    key(
        "status_allow",
        Kind::NetList,
        "[127.0.0.0/8, ::1/128]",
        "Networks that may read /status, /metrics and room history; others get 403.",
    ),
    key(
        "max_connections",
        Kind::Int(1, 1_000_000),
        "4096",
        "Connections the listener holds at once (also bounded by the open-file limit).",
    ),
    key(
        "max_connections_per_address",
        Kind::Int(1, 1_000_000),
        "32",
        "Connections one remote address may hold at once.",
    ),
    key(
        "reserved_connections",
        Kind::Int(0, 1_000_000),
        "64",
        "Connections kept back for status_allow networks and configured peers' addresses.",
    ),
    key(
        "header_timeout_s",
        POSITIVE_SECONDS,
        "10",
        "Seconds a client has to send a request head (also the idle keep-alive limit).",
    ),
    key(
        "request_timeout_s",
        POSITIVE_SECONDS,
        "30",
        "Seconds one request, body included, may take before it is answered 408.",
    ),
];

pub const CHANNEL: &[Key] = &[
    required("name", Kind::Text, "`public`, `#name`, or a private channel's name."),
    key("key", Kind::Secret, "none (public or hashtag channel)", "A private channel's 16-byte secret as 32 hex digits or base64; the room must be private too."),
    key("mode", Kind::Choice(&["listen", "bridge"]), "listen", "listen: keep the channel's history only; bridge: the room's other posts go out on the channel too."),
    key("max_per_minute", Kind::Int(1, 60), "1", "Bridge mode: channel messages sent per minute at most."),
    unset("hop_limit", Kind::Int(0, 63), "a plain flood", "Bridge mode: repeats a bridged message may travel."),
];

pub const ROOM: &[Key] = &[
    required("name", Kind::Text, "1 to 31 bytes (a MeshCore advert's name field), unique ignoring case, no `/`."),
    key("psk", Kind::Secret, "\"\"", "Empty: a public room. Set: a private room and its login password (MeshCore sends at most 15 bytes)."),
    key("description", Kind::Text, "\"\"", "Shown in /status."),
    key("max_history", Kind::Int(1, 1_000_000), "1000", "Posts the room keeps and replays to clients that were away."),
    unset("group", Kind::Ipv4, "derived from the name inside tun.range", "The room's multicast group on the TUN device."),
    unset("port", PORT, "tun.port", "UDP port of the room's multicast group."),
    key("admin_password", Kind::Secret, "\"\"", "MeshCore admin login (at most 15 bytes, not the PSK; never shown). Empty: no admin login."),
    key("allow_read_only", Kind::Bool, "false", "Anyone may read: a wrong or empty password (private room) or any password (public room) logs in as a read-only guest; posting needs the PSK or an ACL role."),
    unset("latitude", Kind::Num(-90.0, 90.0), "meshcore.latitude", "The room's location in its adverts (degrees)."),
    unset("longitude", Kind::Num(-180.0, 180.0), "meshcore.longitude", "The room's location in its adverts (degrees)."),
    unset("channel", Kind::WordOrSection(CHANNEL), "none", "The MeshCore group channel the room keeps: `public`, `\"#name\"`, or name/key/mode/max_per_minute/hop_limit."),
];

pub const PEER: &[Key] = &[
    required(
        "host",
        Kind::Text,
        "Host name or address of a federated meshroom-gw server.",
    ),
    key(
        "port",
        PORT,
        "7070",
        "Its HTTP port (federation runs on its http.listen).",
    ),
    required(
        "secret",
        Kind::Secret,
        "The secret this pair of servers shares; a different one for every pair.",
    ),
    unset(
        "key",
        Kind::Text,
        "pinned on first contact",
        "The peer's Noise static public key (hex or base64), to pin it instead of trusting the first one seen.",
    ),
];

pub const RADIO: &[Key] = &[
    key(
        "backend",
        Kind::Choice(&["sim", "sx126x", "none"]),
        "sim",
        "sim: an emulated SX126x on the simulated air; sx126x: hardware; none: no radio.",
    ),
    key(
        "board",
        Kind::Text,
        "meshadv-mini",
        "Board preset (`meshroom-gw radio presets` lists them); the keys below override it.",
    ),
    key(
        "region",
        Kind::Text,
        "eu-uk-narrow",
        "Region preset: frequency, bandwidth, spreading factor, coding rate, duty cycle.",
    ),
    unset(
        "frequency_mhz",
        Kind::Num(150.0, 960.0),
        "the region's",
        "Carrier frequency, MHz.",
    ),
    unset(
        "bandwidth_khz",
        Kind::Num(7.8, 500.0),
        "the region's",
        "LoRa bandwidth, kHz (7.8, 10.4, 15.6, 20.8, 31.25, 41.7, 62.5, 125, 250, 500).",
    ),
    unset(
        "spreading_factor",
        Kind::Int(5, 12),
        "the region's",
        "LoRa spreading factor.",
    ),
    unset(
        "coding_rate",
        Kind::Int(5, 8),
        "the region's",
        "Coding rate denominator: 5 to 8 for 4/5 to 4/8.",
    ),
    unset(
        "power_dbm",
        Kind::Power,
        "the board's limit",
        "Chip output power, dBm; more than the board allows is refused.",
    ),
    unset(
        "preamble",
        Kind::Int(6, 65535),
        "32 for SF ≤ 8, 16 above",
        "Preamble length in symbols, as MeshCore uses.",
    ),
    unset(
        "duty_cycle_percent",
        Kind::Num(0.001, 100.0),
        "the region's legal limit",
        "Share of time the transmitter may be on, percent.",
    ),
    key(
        "duty_cycle_window_s",
        Kind::Int(1, 86_400),
        "3600",
        "Sliding window over which the duty cycle is measured, seconds.",
    ),
    key(
        "listen_before_talk",
        Kind::Bool,
        "true",
        "Check the channel (CAD) before transmitting.",
    ),
    key(
        "tx_queue",
        Kind::Int(1, 10_000),
        "64",
        "Frames waiting to be sent at most; when full the lowest priority is dropped first.",
    ),
    unset(
        "chip",
        Kind::Choice(&["sx1261", "sx1262", "sx1268"]),
        "the board's",
        "Chip variant.",
    ),
    unset(
        "spidev",
        Kind::Path,
        "the board's",
        "SPI device, e.g. /dev/spidev0.0.",
    ),
    key(
        "spi_speed_hz",
        Kind::Int(100_000, 16_000_000),
        "2000000",
        "SPI clock, Hz.",
    ),
    unset(
        "gpiochip",
        Kind::Path,
        "the board's",
        "GPIO character device, e.g. /dev/gpiochip0.",
    ),
    unset("reset_pin", PIN, "the board's", "NRESET line."),
    unset("busy_pin", PIN, "the board's", "BUSY line."),
    unset("dio1_pin", PIN, "the board's", "DIO1 (interrupt) line."),
    unset(
        "txen_pin",
        OPTIONAL_PIN,
        "the board's",
        "Transmit-enable line of an external PA; -1 removes the board's.",
    ),
    unset(
        "rxen_pin",
        OPTIONAL_PIN,
        "the board's",
        "Receive-enable line of an LNA; -1 removes the board's.",
    ),
    unset(
        "cs_pin",
        OPTIONAL_PIN,
        "the board's",
        "Manual chip select on a GPIO line; -1 uses the kernel's CE line.",
    ),
    unset(
        "hold_high_pins",
        Kind::PinList,
        "the board's",
        "Lines driven high while the radio runs (antenna switches, module enables).",
    ),
    unset(
        "tcxo_volts",
        Kind::Num(0.0, 3.3),
        "the board's",
        "TCXO supply on DIO3, volts (1.6 to 3.3); 0 for a crystal.",
    ),
    unset(
        "dio2_rf_switch",
        Kind::Bool,
        "the board's",
        "DIO2 drives the module's RF switch.",
    ),
    key(
        "regulator",
        Kind::Choice(&["dcdc", "ldo"]),
        "dcdc",
        "The chip's power regulator.",
    ),
    key(
        "air_dir",
        Kind::Path,
        "/tmp/meshroom-air",
        "Directory shared by every simulated radio on this machine (backend sim).",
    ),
    key(
        "sim_loss_db",
        Kind::Num(0.0, 200.0),
        "100",
        "Path loss between simulated radios, dB.",
    ),
    key(
        "sim_drop_percent",
        Kind::Num(0.0, 100.0),
        "0",
        "Share of simulated receptions lost at random, percent.",
    ),
    key(
        "sim_rssi_sigma_db",
        Kind::Num(0.0, 50.0),
        "0",
        "Gaussian noise on the simulated RSSI (σ, dB).",
    ),
    key(
        "sim_snr_sigma_db",
        Kind::Num(0.0, 50.0),
        "0",
        "Gaussian noise on the simulated SNR (σ, dB).",
    ),
];

pub const TUN: &[Key] = &[
    key(
        "enabled",
        Kind::Switch,
        "auto",
        "auto: create the device when allowed, else warn; on: required; off: never.",
    ),
    key(
        "device",
        Kind::Text,
        "meshroom0",
        "Name of the TUN device (1 to 15 characters).",
    ),
    key(
        "address",
        Kind::Ipv4Net,
        "10.77.0.1/24",
        "The kernel's address on the device, with the on-link prefix.",
    ),
    key(
        "source",
        Kind::Ipv4,
        "10.77.0.2",
        "Source address of the gateway's own datagrams (inside tun.address's subnet).",
    ),
    key(
        "range",
        Kind::Ipv4Net,
        "239.77.0.0/16",
        "Multicast range routed over the device; rooms' default groups lie in it.",
    ),
    key(
        "port",
        PORT,
        "7077",
        "Default UDP port of every room's group.",
    ),
    key(
        "mtu",
        Kind::Int(576, 65535),
        "9000",
        "Device MTU; bounds the longest post the host sees.",
    ),
    key(
        "igmp_query_interval_s",
        Kind::Int(1, 255),
        "10",
        "Seconds between IGMP general queries.",
    ),
];

pub const FEDERATION: &[Key] = &[
    key(
        "hop_limit",
        Kind::Int(1, 255),
        "8",
        "How many servers a post may cross.",
    ),
    key(
        "keepalive_s",
        POSITIVE_SECONDS,
        "2",
        "Seconds between keepalive pings on a link.",
    ),
    key(
        "dead_after_s",
        POSITIVE_SECONDS,
        "6",
        "Seconds without a word before a link counts as dead (longer than keepalive_s).",
    ),
    key(
        "backoff_min_s",
        POSITIVE_SECONDS,
        "1",
        "First reconnect delay, seconds; doubles per failure.",
    ),
    key(
        "backoff_max_s",
        POSITIVE_SECONDS,
        "60",
        "Longest reconnect delay, seconds.",
    ),
    key(
        "window",
        Kind::Int(1, 65535),
        "1024",
        "Posts a peer may send before waiting for our acknowledgement.",
    ),
    key(
        "live_queue",
        Kind::Int(1, 1_000_000),
        "1024",
        "Live posts queued per room for a slow peer before it is served from history.",
    ),
    key(
        "max_failed_handshakes",
        Kind::Int(0, 1_000_000),
        "5",
        "Failed handshakes per address and minute before it is refused for a minute.",
    ),
    key(
        "static_key",
        Kind::Path,
        "federation.key",
        "This server's Noise static key (relative to server.state_dir), created with mode 0600.",
    ),
];

pub const MESHCORE: &[Key] = &[
    key(
        "advert_interval_s",
        SECONDS,
        "600",
        "Seconds between zero-hop adverts of each room (0: only at start).",
    ),
    key(
        "flood_advert_interval_s",
        SECONDS,
        "43200",
        "Seconds between flood adverts (0: never).",
    ),
    key(
        "early_advert_interval_s",
        SECONDS,
        "120",
        "Zero-hop advert period for the first early_adverts adverts after start, so phones find a new gateway soon (0: off).",
    ),
    key(
        "early_adverts",
        Kind::Int(0, 1000),
        "5",
        "How many adverts after start use early_advert_interval_s.",
    ),
    key(
        "first_advert_delay_s",
        SECONDS,
        "2",
        "Seconds after start before the first advert.",
    ),
    unset(
        "latitude",
        Kind::Num(-90.0, 90.0),
        "unset",
        "Latitude advertised by every room, degrees.",
    ),
    unset(
        "longitude",
        Kind::Num(-180.0, 180.0),
        "unset",
        "Longitude advertised by every room, degrees.",
    ),
    key(
        "silence_timeout_s",
        SECONDS,
        "3600",
        "A radio client not heard for this long leaves the participant list.",
    ),
    key(
        "push_interval_s",
        SECONDS,
        "1.2",
        "Pause after a push before the next push round.",
    ),
    key(
        "push_min_age_s",
        SECONDS,
        "1",
        "A post is pushed once it is this old.",
    ),
    key(
        "push_ack_timeout_flood_s",
        SECONDS,
        "12",
        "ACK timeout of a flooded push.",
    ),
    key(
        "push_ack_timeout_direct_s",
        SECONDS,
        "4",
        "ACK timeout of a direct push, plus push_ack_timeout_per_hop_s per hop.",
    ),
    key(
        "push_ack_timeout_per_hop_s",
        SECONDS,
        "2",
        "Added to a direct push's ACK timeout per hop.",
    ),
    key(
        "push_max_failures",
        Kind::Int(1, 1000),
        "3",
        "Push timeouts in a row before a client is skipped until heard again.",
    ),
    key(
        "reply_delay_s",
        SECONDS,
        "0.3",
        "Delay before a login reply or a response.",
    ),
    key(
        "login_max_failures",
        Kind::Int(1, 1000),
        "5",
        "Wrong passwords in a row from one key before it is ignored for login_block_s.",
    ),
    key(
        "login_block_first_s",
        SECONDS,
        "30",
        "How long such a key is first ignored; each further block lasts twice as long, up to login_block_s.",
    ),
    key(
        "login_block_s",
        SECONDS,
        "300",
        "The longest a key is ignored after wrong passwords.",
    ),
    key(
        "max_clients",
        Kind::Int(1, 100_000),
        "100",
        "Clients remembered per room.",
    ),
];

/// The top level of the file.
pub const TOP: &[Key] = &[
    key(
        "server",
        Kind::Section(SERVER),
        "",
        "This gateway's name and where it keeps its state.",
    ),
    key(
        "http",
        Kind::Section(HTTP),
        "",
        "The HTTP side: /status, /metrics, posting, federation.",
    ),
    required(
        "rooms",
        Kind::Items(ROOM, "room"),
        "The rooms this gateway hosts: at least one.",
    ),
    key(
        "peers",
        Kind::Items(PEER, "peer"),
        "[]",
        "Other meshroom-gw servers to share rooms with.",
    ),
    key(
        "radio",
        Kind::Section(RADIO),
        "",
        "The LoRa radio: backend, board and region presets, overrides.",
    ),
    key(
        "tun",
        Kind::Section(TUN),
        "",
        "The TUN device on which every room is a multicast group.",
    ),
    key(
        "federation",
        Kind::Section(FEDERATION),
        "",
        "How links to the peers behave.",
    ),
    key(
        "meshcore",
        Kind::Section(MESHCORE),
        "",
        "How the rooms behave as MeshCore room servers on the air.",
    ),
];

/// One mistake the walk found: where, under which key path, and what.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

/// What the walk gives back.
pub struct Walked {
    pub findings: Vec<Finding>,
    /// Key paths whose value was refused (or filled in to keep reading): later checks on them
    /// (or below them) would only repeat the walk's complaint.
    pub tainted: Vec<String>,
    /// The file with what was refused left out, ready for the typed reading.
    pub json: Json,
    /// Where each key path's value starts.
    pub positions: BTreeMap<String, (usize, usize)>,
}

/// Checks `root` against the table.
pub fn walk(root: &Node) -> Walked {
    let mut w = Walker {
        findings: Vec::new(),
        tainted: Vec::new(),
        positions: BTreeMap::new(),
    };
    let json = match &root.value {
        Value::Map(_) => w.section(root, "", TOP),
        _ => {
            w.find(
                root,
                "rooms",
                format!(
                    "the file must be `key: value` sections starting with `rooms:`, found {}",
                    root.describe()
                ),
            );
            w.tainted.push("rooms".into());
            let mut m = Map::new();
            m.insert("rooms".into(), Json::Array(Vec::new()));
            Json::Object(m)
        }
    };
    Walked {
        findings: w.findings,
        tainted: w.tainted,
        json,
        positions: w.positions,
    }
}

struct Walker {
    findings: Vec<Finding>,
    tainted: Vec<String>,
    positions: BTreeMap<String, (usize, usize)>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Walker {
    fn find(&mut self, at: &Node, key: &str, message: String) {
        self.findings.push(Finding {
            line: at.line,
            column: at.column,
            key: key.to_string(),
            message,
        });
    }

    /// A refused value: reported and left out.
    fn refuse(&mut self, at: &Node, path: &str, message: String) -> Option<Json> {
        self.find(at, path, message);
        self.tainted.push(path.to_string());
        None
    }

    fn section(&mut self, node: &Node, path: &str, keys: &'static [Key]) -> Json {
        let mut out = Map::new();
        let Value::Map(entries) = &node.value else {
            return Json::Object(out);
        };
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (k, v) in entries {
            let name = match &k.value {
                Value::Scalar { text, .. } => text.as_str(),
                _ => {
                    self.find(
                        k,
                        path,
                        "a key must be a plain word, not a list or a group".into(),
                    );
                    continue;
                }
            };
            let full = join(path, name);
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                let where_ = if path.is_empty() {
                    "the file".to_string()
                } else {
                    format!("`{path}`")
                };
                self.find(
                    k,
                    &full,
                    format!("`{name}` appears twice in {where_} (first on line {first}); keep one"),
                );
                continue;
            }
            seen.push((name, k.line));
            let Some(spec) = keys.iter().find(|s| s.name == name) else {
                let names: Vec<&str> = keys.iter().map(|s| s.name).collect();
                let mut msg = format!("unknown key `{name}`");
                match closest(name, &names) {
                    Some(best) => msg.push_str(&format!(" (did you mean `{best}`?)")),
                    None => msg.push_str(&format!("; valid keys here: {}", names.join(", "))),
                }
                self.find(k, &full, msg);
                continue;
            };
            self.positions.insert(full.clone(), (v.line, v.column));
            if v.is_null() && spec.nullable {
                continue;
            }
            if let Some(value) = self.value(v, &full, spec) {
                out.insert(name.to_string(), value);
            }
        }
        for spec in keys.iter().filter(|s| s.default.is_none()) {
            if seen.iter().any(|(n, _)| *n == spec.name) {
                if !out.contains_key(spec.name) {
                    // Present but refused: fill it so the rest can still be read.
                    out.insert(spec.name.into(), placeholder(spec, path));
                }
                continue;
            }
            let full = join(path, spec.name);
            let message = if path.is_empty() {
                "required section `rooms` is missing: the file needs a `rooms:` list with at least one room, e.g. `rooms:` then `  - name: Public`".to_string()
            } else {
                format!(
                    "required key `{}` is missing ({})",
                    spec.name,
                    lower_first(spec.doc)
                )
            };
            let key = if path.is_empty() {
                full.clone()
            } else {
                path.to_string()
            };
            self.find(node, &key, message);
            self.tainted.push(full);
            out.insert(spec.name.into(), placeholder(spec, path));
        }
        Json::Object(out)
    }

    fn value(&mut self, v: &Node, path: &str, spec: &Key) -> Option<Json> {
        let expected = expectation(spec);
        if v.is_null() {
            return self.refuse(
                v,
                path,
                format!("expected {expected}, found {}", v.describe()),
            );
        }
        let wrong = |v: &Node| format!("expected {expected}, found {}", v.describe());
        match spec.kind {
            Kind::Section(keys) => match &v.value {
                Value::Map(_) => Some(self.section(v, path, keys)),
                _ => self.refuse(v, path, wrong(v)),
            },
            Kind::Items(keys, item) => {
                let Value::Seq(items) = &v.value else {
                    return self.refuse(v, path, wrong(v));
                };
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    self.positions.insert(p.clone(), (it.line, it.column));
                    match &it.value {
                        Value::Map(_) => out.push(self.section(it, &p, keys)),
                        _ => {
                            let hint = match (&it.value, keys.first()) {
                                (Value::Scalar { text, .. }, Some(first)) if !it.is_null() => {
                                    format!("; write `- {}: {}`", first.name, text)
                                }
                                _ => String::new(),
                            };
                            self.refuse(
                                it,
                                &p,
                                format!(
                                    "expected a {item} (`{}:` and the other keys of a {item}), found {}{hint}",
                                    keys.first().map_or("", |k| k.name),
                                    it.describe()
                                ),
                            );
                            // Keep the indexes of the items after it.
                            let mut m = Map::new();
                            for k in keys.iter().filter(|k| k.default.is_none()) {
                                m.insert(k.name.into(), placeholder(k, &p));
                            }
                            out.push(Json::Object(m));
                        }
                    }
                }
                Some(Json::Array(out))
            }
            Kind::WordOrSection(keys) => match &v.value {
                Value::Map(_) => Some(self.section(v, path, keys)),
                Value::Scalar { text, .. } => Some(Json::String(text.to_string())),
                _ => self.refuse(v, path, wrong(v)),
            },
            Kind::NetList | Kind::PinList => {
                let Value::Seq(items) = &v.value else {
                    return self.refuse(v, path, wrong(v));
                };
                let item_kind = if matches!(spec.kind, Kind::NetList) {
                    Kind::IpNet
                } else {
                    PIN
                };
                let item_spec = Key {
                    kind: item_kind,
                    nullable: false,
                    ..*spec
                };
                let mut out = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    if let Some(j) = self.value(it, &format!("{path}[{i}]"), &item_spec) {
                        out.push(j);
                    }
                }
                Some(Json::Array(out))
            }
            _ => {
                let Value::Scalar { text, plain } = &v.value else {
                    return self.refuse(v, path, wrong(v));
                };
                match scalar(spec.kind, text, *plain) {
                    Ok(j) => Some(j),
                    Err(Some(extra)) => self.refuse(v, path, format!("{}{extra}", wrong(v))),
                    Err(None) => self.refuse(v, path, wrong(v)),
                }
            }
        }
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f
            .to_lowercase()
            .chain(c)
            .collect::<String>()
            .trim_end_matches('.')
            .to_string(),
        None => String::new(),
    }
}

/// A stand-in for a required value that was missing or refused, so the rest of the file can
/// still be read; checks on it are suppressed (its path is tainted).
fn placeholder(spec: &Key, path: &str) -> Json {
    match spec.kind {
        Kind::Items(..) | Kind::NetList | Kind::PinList => Json::Array(Vec::new()),
        Kind::Section(_) => Json::Object(Map::new()),
        // Unique per place, so it clashes with nothing.
        _ => Json::String(format!("{path}.{}", spec.name)),
    }
}

fn is_plain_number(text: &str) -> bool {
    text.parse::<f64>().is_ok() || text.starts_with("0x") || text.starts_with("0o")
}

fn is_plain_bool(text: &str) -> bool {
    matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE")
}

/// Reads one scalar as `kind`; `Err(Some(note))` adds a note to "expected …, found …".
fn scalar(kind: Kind, text: &str, plain: bool) -> Result<Json, Option<String>> {
    match kind {
        Kind::Text | Kind::Secret => {
            if plain && is_plain_bool(text) {
                return Err(Some(format!(
                    "; put it in quotes (\"{text}\") if you mean the word"
                )));
            }
            Ok(Json::String(text.to_string()))
        }
        Kind::Path => {
            if plain && (is_plain_number(text) || is_plain_bool(text)) {
                return Err(Some(format!(
                    "; put it in quotes (\"{text}\") if it is a name"
                )));
            }
            if text.trim().is_empty() {
                return Err(None);
            }
            Ok(Json::String(text.to_string()))
        }
        Kind::Bool => match (plain, text) {
            (true, "true" | "True" | "TRUE") => Ok(Json::Bool(true)),
            (true, "false" | "False" | "FALSE") => Ok(Json::Bool(false)),
            _ => Err(None),
        },
        Kind::Int(min, max) => {
            if !plain {
                return Err(Some("; numbers are written without quotes".into()));
            }
            let n: i64 = text.replace('_', "").parse().map_err(|_| None::<String>)?;
            if n < min || n > max {
                return Err(None);
            }
            Ok(Json::from(n))
        }
        Kind::Power => scalar(Kind::Int(-128, 127), text, plain),
        Kind::Num(min, max) => {
            if !plain {
                return Err(Some("; numbers are written without quotes".into()));
            }
            let n: f64 = text.replace('_', "").parse().map_err(|_| None::<String>)?;
            if !n.is_finite() || n < min || n > max {
                return Err(None);
            }
            serde_json::Number::from_f64(n)
                .map(Json::Number)
                .ok_or(None)
        }
        Kind::Choice(words) => {
            if words.contains(&text) {
                Ok(Json::String(text.to_string()))
            } else {
                Err(None)
            }
        }
        Kind::Switch => match text.to_ascii_lowercase().as_str() {
            "auto" | "on" | "off" | "true" | "false" | "yes" | "no" => {
                Ok(Json::String(text.to_ascii_lowercase()))
            }
            _ => Err(None),
        },
        Kind::SocketAddr => parsed::<std::net::SocketAddr>(text),
        Kind::Ipv4 => parsed::<std::net::Ipv4Addr>(text),
        Kind::Ipv4Net => parsed::<ipnet::Ipv4Net>(text),
        Kind::IpNet => parsed::<ipnet::IpNet>(text),
        Kind::NetList
        | Kind::PinList
        | Kind::Section(_)
        | Kind::Items(..)
        | Kind::WordOrSection(_) => Err(None),
    }
}

fn parsed<T: std::str::FromStr>(text: &str) -> Result<Json, Option<String>> {
    text.parse::<T>()
        .map(|_| Json::String(text.to_string()))
        .map_err(|_| None)
}

/// Thousands separated with commas, as people write ranges.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    if n.unsigned_abs() < 100_000 {
        // Ports and the like read better without separators.
        return n.to_string();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        grouped(x as i64)
    } else {
        x.to_string()
    }
}

/// What a key expects, in words: "a whole number from 1 to 1,000,000".
pub fn expectation(spec: &Key) -> String {
    match spec.kind {
        Kind::Text => "text".into(),
        Kind::Secret => "text (a password; \"\" for none)".into(),
        Kind::Path => "a path (non-empty text)".into(),
        Kind::Bool => "true or false".into(),
        Kind::Int(min, max) => format!("a whole number from {} to {}", grouped(min), grouped(max)),
        Kind::Power => {
            "a whole number of dBm, at most the board's limit (22 for most boards)".into()
        }
        Kind::Num(min, max) => format!("a number from {} to {}", num(min), num(max)),
        Kind::Choice(words) => format!("one of {}", words.join(", ")),
        Kind::Switch => "auto, on or off (or true/false)".into(),
        Kind::SocketAddr => "an address and port such as 127.0.0.1:7070 or [::1]:7070".into(),
        Kind::Ipv4 => "an IPv4 address such as 239.77.1.2".into(),
        Kind::Ipv4Net => "an IPv4 network such as 10.77.0.1/24".into(),
        Kind::IpNet => "a network such as 192.168.1.0/24 or ::1/128".into(),
        Kind::NetList => "a list of networks such as [127.0.0.0/8, ::1/128]".into(),
        Kind::PinList => "a list of GPIO line numbers such as [6, 26]".into(),
        Kind::Section(_) => "a group of `key: value` lines, indented under it".into(),
        Kind::WordOrSection(_) => {
            "`public`, a `\"#name\"`, or a group of `name:`, `key:`, `mode:` lines".into()
        }
        Kind::Items(keys, item) => format!(
            "a list of {item}s, each starting `- {}:`",
            keys.first().map_or("", |k| k.name)
        ),
    }
}

/// Closest of `candidates` to `given`, if close enough to be a typo.
pub fn closest<'a>(given: &str, candidates: &[&'a str]) -> Option<&'a str> {
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

/// Every leaf key with its full path (`rooms[].name`), for the reference tables.
pub fn leaves() -> Vec<(String, &'static Key)> {
    fn visit(prefix: &str, keys: &'static [Key], out: &mut Vec<(String, &'static Key)>) {
        for k in keys {
            let path = join(prefix, k.name);
            match k.kind {
                Kind::Section(sub) => visit(&path, sub, out),
                Kind::Items(sub, _) => visit(&format!("{path}[]"), sub, out),
                Kind::WordOrSection(sub) => {
                    out.push((path.clone(), k));
                    visit(&path, sub, out);
                }
                _ => out.push((path, k)),
            }
        }
    }
    let mut out = Vec::new();
    visit("", TOP, &mut out);
    out
}

/// Every section (and its introduction), for the reference's headings.
pub fn sections() -> impl Iterator<Item = &'static Key> {
    TOP.iter()
}

fn default_text(k: &Key) -> String {
    match k.default {
        None => "required".into(),
        Some("") => String::new(),
        Some(d) => d.to_string(),
    }
}

/// README's key reference, a Markdown table.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | accepted | meaning |\n|---|---|---|---|\n");
    for (path, k) in leaves() {
        out.push_str(&format!(
            "| `{path}` | {} | {} | {} |\n",
            default_text(k).replace('|', "\\|"),
            expectation(k).replace('|', "\\|"),
            k.doc.replace('|', "\\|")
        ));
    }
    out
}

/// Escapes text for roff.
pub fn roff(text: &str) -> String {
    let mut out = text.replace('\\', "\\\\").replace('-', "\\-");
    if out.starts_with(['.', '\'']) {
        out.insert_str(0, "\\&");
    }
    out
}

/// The KEYS section of `meshroom-gw.yaml(5)`, in roff.
pub fn roff_keys() -> String {
    let mut out = String::new();
    for section in sections() {
        out.push_str(&format!(
            ".SS {}\n{}\n",
            roff(section.name),
            roff(section.doc)
        ));
        let prefix = match section.kind {
            Kind::Items(..) => format!("{}[]", section.name),
            _ => section.name.to_string(),
        };
        for (path, k) in leaves().into_iter().filter(|(p, _)| {
            p.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with('.'))
        }) {
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR ({}; default: {})\n{}\n",
                roff(&path),
                roff(&expectation(k)),
                roff(&default_text(k)),
                roff(k.doc)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(1_000_000), "1,000,000");
        assert_eq!(grouped(-17), "-17");
        assert_eq!(grouped(65535), "65535");
    }

    #[test]
    fn every_leaf_has_words() {
        for (path, k) in leaves() {
            assert!(!k.doc.is_empty(), "{path}");
        }
    }
}

/// The table and the typed sections must name the same keys; a field added to a section's
/// struct needs its row here (with type, default and meaning), or the walk calls it unknown.
#[cfg(test)]
mod drift {
    use super::*;
    use serde::de::DeserializeOwned;

    /// The field names serde knows for `T`, read from its "unknown field" complaint.
    fn serde_fields<T: DeserializeOwned>() -> Vec<String> {
        let err = serde_json::from_value::<T>(serde_json::json!({"\u{1}": 0}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let list = err.split_once("expected").map_or("", |(_, l)| l);
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    fn names(keys: &[Key]) -> Vec<String> {
        let mut v: Vec<String> = keys.iter().map(|k| k.name.to_string()).collect();
        v.sort();
        v
    }

    fn check<T: DeserializeOwned>(section: &str, keys: &[Key]) {
        let mut fields = serde_fields::<T>();
        fields.sort();
        assert_eq!(
            fields,
            names(keys),
            "the `{section}` rows of src/config/schema.rs and its struct disagree"
        );
    }

    #[test]
    fn the_table_names_every_field() {
        use crate::config::*;
        check::<Config>("top level", TOP);
        check::<ServerConfig>("server", SERVER);
        check::<HttpConfig>("http", HTTP);
        check::<RoomConfig>("rooms", ROOM);
        check::<PeerConfig>("peers", PEER);
        check::<RadioConfig>("radio", RADIO);
        check::<TunConfig>("tun", TUN);
        check::<FederationConfig>("federation", FEDERATION);
        check::<MeshcoreConfig>("meshcore", MESHCORE);
    }
}
