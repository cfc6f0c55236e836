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
    if let Some(note) = p["note"].as_str() {
        notes.push(note.to_string());
    }
    if !notes.is_empty() {
        line.push_str("\n    ");
        line.push_str(&notes.join("; "));
    }
    line
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
            "  {room} keeps channel {} ({}): heard {}, stored {}, duplicates {}, sent {}, rate-limited {}, cut {}, bad MAC {}",
            c["name"].as_str().unwrap_or("?"),
            c["mode"].as_str().unwrap_or("?"),
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
            room["name"].as_str().unwrap_or("?"),
            clients["federation_total"].as_u64().unwrap_or(0)
        );
        for (server, p) in remote {
            let names: Vec<&str> = p["names"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["name"].as_str())
                .collect();
            let _ = writeln!(
                out,
                "    at {server}: {} (radio {}, ip {}, local {}){}",
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
