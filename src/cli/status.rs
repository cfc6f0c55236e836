//! `meshroom-gw status`: asks a running gateway for `/status` and prints it as a table (or the
//! JSON as it came).

use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Value;

use super::http::base_url;

pub async fn status(
    url: Option<String>,
    json: bool,
    config_path: Option<&Path>,
    timeout_s: f64,
) -> anyhow::Result<()> {
    let base = base_url(url, config_path)?;
    let answer = super::http::request(
        "GET",
        &format!("{base}/status"),
        &[],
        None,
        super::http::timeout(timeout_s),
    )
    .await?;
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
    print!("{}", render_status(&status, terminal_width()));
    Ok(())
}

/// Columns of the terminal `status` prints to; `None` when stdout is not a terminal (then
/// nothing is cut). The window size comes from `TIOCGWINSZ`, else `COLUMNS`, else 80.
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills the one `winsize` it is given; a zeroed `winsize` is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        return Some(ws.ws_col as usize);
    }
    Some(columns_from_env(std::env::var("COLUMNS").ok().as_deref()).unwrap_or(80))
}

fn columns_from_env(v: Option<&str>) -> Option<usize> {
    v.and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
}

/// A string from `/status` made safe for one table cell (no control characters, no newline).
fn cell(v: &Value) -> String {
    crate::textsafe::escape_line(v.as_str().unwrap_or("?")).into_owned()
}

fn safe(text: &str) -> String {
    crate::textsafe::escape_line(text).into_owned()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// A column of a [`Table`].
struct Column {
    header: &'static str,
    align: Align,
    /// Names and free text: may be cut (with `…`) to fit the terminal.
    shrinks: bool,
}

const fn col(header: &'static str, align: Align, shrinks: bool) -> Column {
    Column {
        header,
        align,
        shrinks,
    }
}

/// Columns sized to their content, and cut to the terminal width when there is one. Cells
/// must already be escaped. Each row may carry a note line printed under it, indented and
/// never cut (last errors are worth reading whole).
struct Table {
    columns: &'static [Column],
    rows: Vec<(Vec<String>, Option<String>)>,
}

/// Narrowest a cut column gets (its header may be cut too).
const MIN_CUT: usize = 6;
const GAP: &str = "  ";

/// Columns `s` takes on a terminal: a CJK character or an emoji takes two, a combining mark
/// none.
fn chars(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// `s` cut to `w` terminal columns, the last one `…` when anything was cut (a wide character
/// that would straddle the cut is left out whole).
fn fit(s: &str, w: usize) -> String {
    if chars(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push('…');
    out
}

impl Table {
    fn widths(&self, width: Option<usize>) -> Vec<usize> {
        let mut w: Vec<usize> = self.columns.iter().map(|c| chars(c.header)).collect();
        for (cells, _) in &self.rows {
            for (i, c) in cells.iter().enumerate().take(w.len()) {
                w[i] = w[i].max(chars(c));
            }
        }
        let Some(limit) = width else { return w };
        let total = |w: &[usize]| w.iter().sum::<usize>() + GAP.len() * w.len().saturating_sub(1);
        let last = w.len() - 1;
        while total(&w) > limit {
            // The free text at the end gives way first, then the widest name that still can.
            let i = if self.columns[last].shrinks && w[last] > MIN_CUT {
                last
            } else {
                match (0..w.len())
                    .filter(|&i| self.columns[i].shrinks && w[i] > MIN_CUT)
                    .max_by_key(|&i| (w[i], i))
                {
                    Some(i) => i,
                    None => break,
                }
            };
            w[i] -= 1;
        }
        w
    }

    fn render(&self, width: Option<usize>, out: &mut String) {
        let w = self.widths(width);
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_string()).collect();
        self.line(&w, &header, out);
        for (cells, note) in &self.rows {
            self.line(&w, cells, out);
            if let Some(note) = note {
                out.push_str("    ");
                out.push_str(note);
                out.push('\n');
            }
        }
    }

    fn line(&self, w: &[usize], cells: &[String], out: &mut String) {
        let mut line = String::new();
        let last = self.columns.len() - 1;
        for (i, c) in self.columns.iter().enumerate() {
            let text = fit(cells.get(i).map(String::as_str).unwrap_or(""), w[i]);
            if i > 0 {
                line.push_str(GAP);
            }
            let pad = " ".repeat(w[i] - chars(&text));
            match c.align {
                Align::Left if i == last => line.push_str(&text),
                Align::Left => {
                    line.push_str(&text);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(&text);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

const ROOM_COLUMNS: &[Column] = &[
    col("ROOM", Align::Left, true),
    col("ACCESS", Align::Left, false),
    col("CLIENTS r/ip", Align::Right, false),
    col("HISTORY", Align::Right, false),
    col("LAST POST", Align::Left, false),
];

const PEER_COLUMNS: &[Column] = &[
    col("PEER", Align::Left, true),
    col("STATE", Align::Left, false),
    col("POSTS IN", Align::Right, false),
    col("OUT", Align::Right, false),
    col("RTT", Align::Right, false),
    col("SHARED ROOMS", Align::Left, true),
];

/// The human table of `meshroom-gw status`, fitted to `width` columns when given (a terminal)
/// and whole otherwise. Everything that came from the network is escaped.
pub fn render_status(s: &Value, width: Option<usize>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let server = &s["server"];
    let _ = writeln!(
        out,
        "{} (meshroom-gw {}), up {}",
        cell(&server["name"]),
        cell(&server["version"]),
        human_duration(server["uptime_s"].as_u64().unwrap_or(0))
    );
    let _ = writeln!(out);
    let mut rooms = Table {
        columns: ROOM_COLUMNS,
        rows: Vec::new(),
    };
    for room in s["rooms"].as_array().into_iter().flatten() {
        let clients = &room["clients"];
        rooms.rows.push((
            vec![
                cell(&room["name"]),
                if room["private"].as_bool().unwrap_or(false) {
                    "private"
                } else {
                    "public"
                }
                .to_string(),
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
                    .unwrap_or_else(|| "-".into()),
            ],
            None,
        ));
    }
    rooms.render(width, &mut out);
    for line in channel_lines(&s["meshcore"]["rooms"]) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str(&remote_people(s));
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
        let table = Table {
            columns: PEER_COLUMNS,
            rows: peers.iter().map(peer_row).collect(),
        };
        table.render(width, &mut out);
    }
    if let Some(line) = federation_line(&s["federation"]) {
        let _ = writeln!(out, "\n{line}");
    }
    // Whatever a part above let through (the radio and TUN lines are built elsewhere):
    // nothing reaches the terminal raw.
    crate::textsafe::escape(&out).into_owned()
}

/// The server-wide federation figures (`federation` of `/status`): refusals not tied to a
/// configured peer.
fn federation_line(f: &Value) -> Option<String> {
    if !f.is_object() {
        return None;
    }
    let n = |k: &str| f[k].as_u64().unwrap_or(0);
    let mut line = format!(
        "federation: unknown key attempts {}",
        n("unknown_key_attempts")
    );
    if let Some(from) = f["last_unknown_from"].as_str() {
        line.push_str(&format!(" (last from {})", safe(from)));
    }
    line.push_str(&format!(
        ", rate-limited {}, truncated handshakes {}, malformed handshakes {}",
        n("rate_limited"),
        n("truncated_handshakes"),
        n("malformed_handshakes")
    ));
    if let Some(key) = f["static_key"].as_str().filter(|k| !k.is_empty()) {
        line.push_str(&format!("\n    this server's key {}", safe(key)));
    }
    Some(line)
}

/// One peer's cells in the `status` table, plus a note line for refusals and the last error
/// when there are any.
fn peer_row(p: &Value) -> (Vec<String>, Option<String>) {
    let shared = p["shared_rooms"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str())
                .map(safe)
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
    let host = cell(&p["host"]);
    let port = p["port"].as_u64().map(|n| n.to_string());
    let port = port.as_deref().unwrap_or("?");
    let label = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let cells = vec![
        label,
        cell(&p["state"]),
        count("posts_in"),
        count("posts_out"),
        rtt,
        if shared.is_empty() {
            "-".to_string()
        } else {
            shared
        },
    ];
    let mut notes = Vec::new();
    if let Some(server) = p["server"].as_str() {
        notes.push(format!("server {}", safe(server)));
    }
    for (key, what) in [
        ("secret_mismatches", "secret mismatches"),
        ("room_proof_failures", "unmatched room proofs"),
        ("truncated_handshakes", "truncated handshakes"),
        ("malformed", "malformed"),
    ] {
        if let Some(n) = p[key].as_u64().filter(|n| *n > 0) {
            notes.push(format!("{what}: {n}"));
        }
    }
    if let Some(rooms) = p["psk_mismatch_rooms"].as_array().filter(|r| !r.is_empty()) {
        let names: Vec<String> = rooms.iter().filter_map(|r| r.as_str()).map(safe).collect();
        notes.push(format!("PSK differs for: {}", names.join(", ")));
    }
    if let Some(err) = p["last_error"].as_str() {
        notes.push(format!("last error: {}", safe(err)));
    }
    if let Some(note) = p["note"].as_str() {
        notes.push(safe(note));
    }
    (cells, (!notes.is_empty()).then(|| notes.join("; ")))
}

/// One line per room that keeps a channel: name (never the key), mode and what it counted.
fn channel_lines(rooms: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (room, r) in rooms.as_object().into_iter().flatten() {
        let c = &r["channel"];
        if !c.is_object() {
            continue;
        }
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        out.push(format!(
            "  {} keeps channel {} ({}): heard {}, stored {}, duplicates {}, sent {}, rate-limited {}, cut {}, bad MAC {}",
            safe(room),
            cell(&c["name"]),
            cell(&c["mode"]),
            n("heard"),
            n("stored"),
            n("duplicates"),
            n("transmitted"),
            n("rate_limited"),
            n("cut"),
            n("bad_mac")
        ));
    }
    out
}

/// People present at federated servers, per room (`clients.remote` of `/status`); empty when
/// no peer reports anyone.
fn remote_people(s: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for room in s["rooms"].as_array().into_iter().flatten() {
        let clients = &room["clients"];
        let Some(remote) = clients["remote"].as_object().filter(|r| !r.is_empty()) else {
            continue;
        };
        if out.is_empty() {
            let _ = writeln!(out, "\nPEOPLE AT PEERS (room: federation-wide total)");
        }
        let _ = writeln!(
            out,
            "{}: {}",
            cell(&room["name"]),
            clients["federation_total"].as_u64().unwrap_or(0)
        );
        for (server, p) in remote {
            let names: Vec<String> = p["names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["name"].as_str())
                .map(safe)
                .collect();
            let _ = writeln!(
                out,
                "    at {}: {} (radio {}, ip {}, local {}){}",
                safe(server),
                p["total"].as_u64().unwrap_or(0),
                p["radio"].as_u64().unwrap_or(0),
                p["ip"].as_u64().unwrap_or(0),
                p["local"].as_u64().unwrap_or(0),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(": {}", names.join(", "))
                }
            );
        }
    }
    out
}

fn human_duration(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn channel_bindings_are_shown_by_name_and_mode() {
        let rooms = serde_json::json!({
            "Public": {"channel": {"name": "#ham", "mode": "bridge", "heard": 3, "stored": 2,
                        "duplicates": 1, "transmitted": 4, "rate_limited": 0, "cut": 1, "bad_mac": 0}},
            "Ops": {"channel": null}
        });
        let lines = super::channel_lines(&rooms);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("Public keeps channel #ham (bridge)"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("sent 4"), "{}", lines[0]);
    }

    #[test]
    fn people_at_peers_are_listed_per_room() {
        let s = serde_json::json!({"rooms": [
            {"name": "Public", "clients": {"federation_total": 3, "remote": {
                "carol": {"total": 2, "radio": 2, "ip": 0, "local": 0,
                          "names": [{"kind": "radio", "name": "Ana"}]}}}},
            {"name": "Ops", "clients": {"federation_total": 0, "remote": {}}}
        ]});
        let text = super::remote_people(&s);
        assert!(text.contains("Public: 3"), "{text}");
        assert!(
            text.contains("at carol: 2 (radio 2, ip 0, local 0): Ana"),
            "{text}"
        );
        assert!(!text.contains("Ops"), "{text}");
    }

    #[test]
    fn peer_rows_show_traffic_and_refusals() {
        let up = serde_json::json!({
            "host": "seattle.example", "port": 7070, "state": "connected",
            "posts_in": 12, "posts_out": 3, "rtt_ms": 41.26,
            "shared_rooms": ["Ops", "Public"], "server": "seattle",
            "secret_mismatches": 0, "room_proof_failures": 0, "malformed": 0,
            "psk_mismatch_rooms": [], "last_error": null
        });
        let (cells, note) = super::peer_row(&up);
        assert_eq!(cells[0], "seattle.example:7070");
        assert_eq!(cells[1], "connected");
        assert_eq!(cells[4], "41.3ms");
        assert_eq!(cells[5], "Ops, Public");
        assert_eq!(note.as_deref(), Some("server seattle"));
        let refused = serde_json::json!({
            "host": "::1", "port": 7071, "state": "rejected", "shared_rooms": [],
            "secret_mismatches": 4, "truncated_handshakes": 2,
            "last_error": "peer refused the handshake: unknown key id"
        });
        let (cells, note) = super::peer_row(&refused);
        assert_eq!(cells[0], "[::1]:7071");
        let note = note.unwrap();
        assert!(note.contains("secret mismatches: 4"), "{note}");
        assert!(note.contains("truncated handshakes: 2"), "{note}");
        assert!(
            note.contains("last error: peer refused the handshake"),
            "{note}"
        );
    }

    fn sample(room: &str, host: &str, server: &str) -> serde_json::Value {
        serde_json::json!({
            "server": {"name": "gw", "version": "0.1.0", "uptime_s": 75},
            "rooms": [
                {"name": room, "private": false,
                 "clients": {"total": 3, "radio": 2, "ip": 1},
                 "history": {"count": 10, "max": 500}, "last_post_at": null},
                {"name": "Ops", "private": true,
                 "clients": {"total": 0, "radio": 0, "ip": 0},
                 "history": {"count": 0, "max": 500}, "last_post_at": null}
            ],
            "peers": [
                {"host": host, "port": 7070, "state": "connected", "posts_in": 1,
                 "posts_out": 2, "rtt_ms": 3.0, "shared_rooms": [room], "server": server,
                 "last_error": "bad\u{1b}[31mred"},
                {"host": "b.example", "port": 7070, "state": "connecting",
                 "shared_rooms": []}
            ],
            "federation": {"static_key": "ab12", "unknown_key_attempts": 7,
                           "last_unknown_from": "203.0.113.9:40000", "rate_limited": 5,
                           "malformed_handshakes": 1, "truncated_handshakes": 200}
        })
    }

    fn table_rows<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| !l.starts_with(header))
            .take_while(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn long_names_widen_their_column_and_rows_stay_aligned() {
        let host = "gateway-number-seventeen.mountain-relay.long-domain.example.org";
        let text = super::render_status(&sample("Public", host, "seventeen"), None);
        let peers = table_rows(&text, "PEER");
        assert_eq!(peers.len(), 4, "{text}");
        // The host is shown whole and the next column starts at the same place on every row.
        assert!(
            peers[1].starts_with(&format!("{host}:7070  connected")),
            "{text}"
        );
        let state_at = peers[0].find("STATE").unwrap();
        assert_eq!(peers[1].find("connected"), Some(state_at), "{text}");
        assert_eq!(peers[3].find("connecting"), Some(state_at), "{text}");
        let rooms = table_rows(&text, "ROOM");
        let access_at = rooms[0].find("ACCESS").unwrap();
        assert_eq!(rooms[1].find("public"), Some(access_at), "{text}");
        assert_eq!(rooms[2].find("private"), Some(access_at), "{text}");
    }

    #[test]
    fn wide_characters_count_as_two_columns_and_rows_stay_aligned() {
        let text = super::render_status(&sample("会議室 📻", "gw2", "seventeen"), None);
        let rooms = table_rows(&text, "ROOM");
        let at = |line: &str, word: &str| super::chars(&line[..line.find(word).unwrap()]);
        let access = at(rooms[0], "ACCESS");
        assert_eq!(at(rooms[1], "public"), access, "{text}");
        assert_eq!(at(rooms[2], "private"), access, "{text}");
        // Cut to a narrow terminal: no line is wider than it, wide characters and all.
        let narrow = super::render_status(&sample(&"会議室".repeat(20), "gw2", "x"), Some(60));
        for line in table_rows(&narrow, "ROOM")
            .into_iter()
            .filter(|l| !l.starts_with("    "))
        {
            assert!(super::chars(line) <= 60, "{line:?} in\n{narrow}");
        }
        assert_eq!(super::fit("会議室", 4), "会…");
        assert_eq!(super::fit("会議室", 5), "会議…");
    }

    #[test]
    fn a_narrow_terminal_cuts_names_not_figures() {
        let host = "gateway-number-seventeen.mountain-relay.long-domain.example.org";
        let room = "A room with a very long name indeed, longer than any terminal";
        let text = super::render_status(&sample(room, host, "seventeen"), Some(60));
        for line in table_rows(&text, "ROOM")
            .into_iter()
            .chain(table_rows(&text, "PEER"))
            .filter(|l| !l.starts_with("    "))
        {
            assert!(line.chars().count() <= 60, "{line:?} in\n{text}");
        }
        let rooms = table_rows(&text, "ROOM");
        assert!(rooms[1].starts_with("A room with"), "{text}");
        assert!(
            rooms[1].contains('…') && rooms[1].contains("3 (2/1)"),
            "{text}"
        );
        assert!(rooms[1].contains("10/500"), "{text}");
        let peers = table_rows(&text, "PEER");
        assert!(peers[1].starts_with("gateway-number"), "{text}");
        assert!(
            peers[1].contains("connected") && peers[1].contains("3.0ms"),
            "{text}"
        );
        // Without a terminal nothing is cut.
        let whole = super::render_status(&sample(room, host, "seventeen"), None);
        assert!(whole.contains(room) && whole.contains(host), "{whole}");
        assert!(!whole.contains('…'), "{whole}");
    }

    #[test]
    fn control_characters_from_the_network_are_escaped() {
        let s = sample(
            "Pub\u{1b}]0;owned\u{7}lic",
            "evil\u{1b}[2J.example",
            "srv\u{0}x",
        );
        let text = super::render_status(&s, Some(100));
        assert!(
            !text
                .chars()
                .any(|c| crate::textsafe::is_unsafe(c) || c == '\t'),
            "{text:?}"
        );
        assert!(text.contains("Pub\\u{1b}]0;owned\\u{7}lic"), "{text}");
        assert!(text.contains("evil\\u{1b}[2J.example:7070"), "{text}");
        assert!(text.contains("server srv\\u{0}x"), "{text}");
        assert!(text.contains("last error: bad\\u{1b}[31mred"), "{text}");
        let mut people = s.clone();
        people["rooms"][0]["clients"]["remote"] = serde_json::json!({
            "pe\u{1b}er": {"total": 1, "radio": 1, "ip": 0, "local": 0,
                           "names": [{"kind": "radio", "name": "An\u{7}a\nX"}]}});
        let text = super::render_status(&people, None);
        assert!(text.contains("at pe\\u{1b}er: 1"), "{text}");
        assert!(text.contains(": An\\u{7}a\\nX"), "{text}");
        assert!(!text.chars().any(crate::textsafe::is_unsafe), "{text:?}");
    }

    #[test]
    fn federation_figures_are_shown() {
        let text = super::render_status(&sample("Public", "a.example", "a"), None);
        assert!(
            text.contains(
                "federation: unknown key attempts 7 (last from 203.0.113.9:40000), \
                 rate-limited 5, truncated handshakes 200, malformed handshakes 1"
            ),
            "{text}"
        );
        assert!(text.contains("this server's key ab12"), "{text}");
        let mut none = sample("Public", "a.example", "a");
        none.as_object_mut().unwrap().remove("federation");
        assert!(!super::render_status(&none, None).contains("federation:"));
    }

    #[test]
    fn columns_from_env_reads_a_positive_number() {
        assert_eq!(super::columns_from_env(Some("132")), Some(132));
        assert_eq!(super::columns_from_env(Some(" 0")), None);
        assert_eq!(super::columns_from_env(Some("wide")), None);
        assert_eq!(super::columns_from_env(None), None);
    }
}
