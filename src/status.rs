//! The figures behind `/status` (JSON) and `/metrics` (Prometheus text), gathered from the hub
//! and from the status sources that each side registers.

use std::fmt::Write as _;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::{json, Value};

use crate::config::Config;
use crate::hub::{AuthorKind, Hub};

/// A side's contribution to `/status` and `/metrics`.
pub trait StatusSource: Send + Sync {
    /// Key of this side's object in `/status`: "radio", "tun", "peers", "meshcore"…
    fn key(&self) -> &'static str;
    fn status(&self) -> Value;
    fn metrics(&self, out: &mut Metrics);
}

/// Prometheus text exposition, written one family at a time.
#[derive(Default)]
pub struct Metrics {
    text: String,
    declared: std::collections::HashSet<String>,
}

impl Metrics {
    /// One sample; `help` and `kind` ("counter" / "gauge") are written once per family.
    pub fn sample(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if self.declared.insert(name.to_string()) {
            let _ = writeln!(self.text, "# HELP {name} {help}");
            let _ = writeln!(self.text, "# TYPE {name} {kind}");
        }
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{k}=\"{}\"", escape_label(v));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(name, "counter", help, labels, value as f64);
    }

    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "gauge", help, labels, value);
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Everything `/status` is made of.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Board>,
}

struct Board {
    hub: Hub,
    started: Instant,
    config: RwLock<Arc<Config>>,
    sources: RwLock<Vec<Arc<dyn StatusSource>>>,
    /// Sides that are not running and why (e.g. "tun": "no CAP_NET_ADMIN").
    absent: RwLock<Vec<(&'static str, Value)>>,
}

impl StatusBoard {
    pub fn new(hub: Hub, config: Arc<Config>) -> Self {
        StatusBoard {
            inner: Arc::new(Board {
                hub,
                started: Instant::now(),
                config: RwLock::new(config),
                sources: RwLock::new(Vec::new()),
                absent: RwLock::new(Vec::new()),
            }),
        }
    }

    pub fn register(&self, source: Arc<dyn StatusSource>) {
        let key = source.key();
        self.inner
            .absent
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(k, _)| *k != key);
        self.inner
            .sources
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(source);
    }

    /// Records that a side is not running, with the value `/status` shows under its key.
    pub fn absent(&self, key: &'static str, value: Value) {
        let mut absent = self.inner.absent.write().unwrap_or_else(|p| p.into_inner());
        absent.retain(|(k, _)| *k != key);
        absent.push((key, value));
    }

    pub fn set_config(&self, config: Arc<Config>) {
        *self.inner.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    fn sources(&self) -> Vec<Arc<dyn StatusSource>> {
        self.inner
            .sources
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn uptime_s(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    pub fn status(&self) -> Value {
        let hub = &self.inner.hub;
        let config = self
            .inner
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let rooms: Vec<Value> = hub
            .rooms()
            .iter()
            .map(|room| {
                let counts = hub.participants().counts(&room.name);
                let tally = hub.tallies().get(&room.name);
                let remote = hub.participants().remote(&room.name);
                let here = counts.total - counts.peer;
                let federation_total = here + remote.values().map(|p| p.total()).sum::<usize>();
                let remote: serde_json::Map<String, Value> = remote
                    .into_iter()
                    .map(|(server, p)| {
                        let names: Vec<Value> = p
                            .names
                            .iter()
                            .map(|(kind, name)| json!({"kind": kind.as_str(), "name": name}))
                            .collect();
                        let v = json!({
                            "total": p.total(), "radio": p.radio, "ip": p.ip,
                            "local": p.local, "names": names,
                        });
                        (server, v)
                    })
                    .collect();
                json!({
                    "name": room.name,
                    "description": room.description,
                    "private": room.is_private(),
                    "clients": {
                        "total": counts.total,
                        "radio": counts.radio,
                        "ip": counts.ip,
                        "peer": counts.peer,
                        "remote": remote,
                        "federation_total": federation_total,
                    },
                    "history": { "count": tally.history, "max": room.max_history },
                    "posts_in": {
                        "radio": tally.posts_in(AuthorKind::Radio),
                        "ip": tally.posts_in(AuthorKind::Ip),
                        "peer": tally.posts_in(AuthorKind::Peer),
                        "local": tally.posts_in(AuthorKind::Local),
                        "channel": tally.posts_in(AuthorKind::Channel),
                    },
                    "last_post_at": tally.last_post_at,
                    "posts_per_hour": hub.tallies().hourly(&room.name),
                    // Who is in the room now, with each radio client's role.
                    "participants": hub.participants().list(&room.name),
                })
            })
            .collect();
        let mut out = json!({
            "server": {
                "name": hub.server_name(),
                "version": env!("CARGO_PKG_VERSION"),
                "uptime_s": self.uptime_s(),
            },
            "rooms": rooms,
        });
        let obj = out.as_object_mut().expect("built as an object");
        for (key, value) in self
            .inner
            .absent
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            obj.insert((*key).to_string(), value.clone());
        }
        for source in self.sources() {
            obj.insert(source.key().to_string(), source.status());
        }
        if !obj.contains_key("peers") {
            let peers: Vec<Value> = config
                .peers
                .iter()
                .map(|p| json!({"host": p.host, "port": p.port, "state": "not started"}))
                .collect();
            obj.insert("peers".into(), Value::Array(peers));
        }
        for key in ["radio", "tun"] {
            obj.entry(key)
                .or_insert_with(|| json!({"state": "not running"}));
        }
        out
    }

    pub fn metrics(&self) -> String {
        let hub = &self.inner.hub;
        let mut m = Metrics::default();
        m.gauge(
            "meshroom_uptime_seconds",
            "Seconds since the gateway started.",
            &[],
            self.uptime_s() as f64,
        );
        for room in hub.rooms() {
            let name = room.name.as_str();
            let counts = hub.participants().counts(name);
            for (kind, n) in [
                ("radio", counts.radio),
                ("ip", counts.ip),
                ("peer", counts.peer),
            ] {
                m.gauge(
                    "meshroom_room_clients",
                    "Participants present in the room, by side.",
                    &[("room", name), ("kind", kind)],
                    n as f64,
                );
            }
            let tally = hub.tallies().get(name);
            m.gauge(
                "meshroom_room_history_posts",
                "Posts kept in the room's history.",
                &[("room", name)],
                tally.history as f64,
            );
            m.gauge(
                "meshroom_room_history_max",
                "The room's max_history.",
                &[("room", name)],
                room.max_history as f64,
            );
            for kind in AuthorKind::ALL {
                m.counter(
                    "meshroom_room_posts_in_total",
                    "Posts accepted into the room, by the side they came from.",
                    &[("room", name), ("side", kind.as_str())],
                    tally.posts_in(kind),
                );
            }
            if let Some(ts) = tally.last_post_at {
                m.gauge(
                    "meshroom_room_last_post_timestamp_seconds",
                    "Room timestamp of the newest post.",
                    &[("room", name)],
                    ts as f64,
                );
            }
        }
        for source in self.sources() {
            source.metrics(&mut m);
        }
        m.into_text()
    }
}
