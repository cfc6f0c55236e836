//! The TUN side in `/status` (under `tun`) and `/metrics` (`meshroom_tun_*`).

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use crate::config::TunConfig;
use crate::status::{Metrics, StatusSource};
use crate::tun::counters::{Counters, DropReason};
use crate::tun::group::RoomEndpoint;

/// What the running side shows; the counters are shared with the IO tasks.
#[derive(Debug)]
pub struct TunStatus {
    pub device: String,
    address: String,
    source: String,
    range: String,
    mtu: u16,
    ipv6_disabled: bool,
    rooms: Vec<RoomEndpoint>,
    listeners: Mutex<Vec<(String, u32)>>,
    counters: Arc<Counters>,
}

impl TunStatus {
    pub fn new(
        cfg: &TunConfig,
        rooms: &[RoomEndpoint],
        ipv6_disabled: bool,
        counters: Arc<Counters>,
    ) -> Self {
        TunStatus {
            device: cfg.device.clone(),
            address: cfg.address.to_string(),
            source: cfg.source.to_string(),
            range: cfg.range.to_string(),
            mtu: cfg.mtu,
            ipv6_disabled,
            rooms: rooms.to_vec(),
            listeners: Mutex::new(Vec::new()),
            counters,
        }
    }

    pub fn set_listeners(&self, counts: Vec<(String, u32)>) {
        *self.listeners.lock().unwrap_or_else(|p| p.into_inner()) = counts;
    }

    fn listeners_of(&self, room: &str) -> u32 {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(r, _)| r == room)
            .map_or(0, |(_, n)| *n)
    }
}

/// The `StatusSource` registered with the board.
pub struct TunStatusSource(pub Arc<TunStatus>);

impl StatusSource for TunStatusSource {
    fn key(&self) -> &'static str {
        "tun"
    }

    fn status(&self) -> Value {
        let s = &self.0;
        let c = &s.counters;
        let mut dropped = Map::new();
        for reason in DropReason::ALL {
            dropped.insert(reason.as_str().to_string(), json!(c.dropped(reason)));
        }
        let rooms: Vec<Value> = s
            .rooms
            .iter()
            .map(|r| {
                json!({
                    "room": r.room,
                    "group": r.group.to_string(),
                    "port": r.port,
                    "listeners": s.listeners_of(&r.room),
                })
            })
            .collect();
        json!({
            "device": s.device,
            "state": "up",
            "address": s.address,
            "source": s.source,
            "range": s.range,
            "mtu": s.mtu,
            "ipv6_disabled": s.ipv6_disabled,
            "rooms": rooms,
            "datagrams_in": Counters::get(&c.datagrams_in),
            "datagrams_out": Counters::get(&c.datagrams_out),
            "igmp_in": Counters::get(&c.igmp_in),
            "queries_out": Counters::get(&c.queries_out),
            "dropped_total": c.dropped_total(),
            "dropped": dropped,
        })
    }

    fn metrics(&self, out: &mut Metrics) {
        let c = &self.0.counters;
        out.gauge("meshroom_tun_up", "1 when the TUN device is up", &[], 1.0);
        out.counter(
            "meshroom_tun_datagrams_total",
            "Room datagrams through the TUN device",
            &[("direction", "in")],
            Counters::get(&c.datagrams_in),
        );
        out.counter(
            "meshroom_tun_datagrams_total",
            "Room datagrams through the TUN device",
            &[("direction", "out")],
            Counters::get(&c.datagrams_out),
        );
        for reason in DropReason::ALL {
            out.counter(
                "meshroom_tun_dropped_total",
                "Datagrams the TUN side dropped, by reason",
                &[("reason", reason.as_str())],
                c.dropped(reason),
            );
        }
        for r in &self.0.rooms {
            out.gauge(
                "meshroom_tun_listeners",
                "Host sockets joined to a room's group",
                &[("room", &r.room)],
                f64::from(self.0.listeners_of(&r.room)),
            );
        }
    }
}

/// The TUN side's line in the `meshroom-gw status` table, from its `/status` value.
pub fn status_line(tun: &Value) -> Option<String> {
    let state = tun["state"].as_str()?;
    let device = tun["device"].as_str().unwrap_or("meshroom0");
    Some(match state {
        "up" => format!(
            "TUN {device}: up, rooms in {} on port(s) {}; datagrams in {}, out {}, dropped {}",
            tun["range"].as_str().unwrap_or("?"),
            ports(tun),
            tun["datagrams_in"].as_u64().unwrap_or(0),
            tun["datagrams_out"].as_u64().unwrap_or(0),
            tun["dropped_total"].as_u64().unwrap_or(0),
        ),
        other => format!(
            "TUN {device}: {other}{}",
            tun["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    })
}

fn ports(tun: &Value) -> String {
    let mut ports: Vec<u64> = tun["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["port"].as_u64())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_says_up_or_why_not() {
        let up = json!({"state": "up", "device": "meshroom0", "range": "239.77.0.0/16",
            "rooms": [{"port": 7077}, {"port": 7078}, {"port": 7077}],
            "datagrams_in": 3, "datagrams_out": 5, "dropped_total": 1});
        assert_eq!(
            status_line(&up).unwrap(),
            "TUN meshroom0: up, rooms in 239.77.0.0/16 on port(s) 7077,7078; datagrams in 3, out 5, dropped 1"
        );
        let down = json!({"state": "unavailable", "device": "meshroom0",
            "reason": "not permitted to create TUN device (needs CAP_NET_ADMIN)"});
        assert_eq!(
            status_line(&down).unwrap(),
            "TUN meshroom0: unavailable (not permitted to create TUN device (needs CAP_NET_ADMIN))"
        );
        assert_eq!(status_line(&json!(null)), None);
    }
}
