//! The testkit every integration test binary shares (`mod common;`, or `#[path]` from a merged
//! binary's `main.rs`):
//!
//! - [`InProcess`]: a gateway in the test's own process on a temporary state directory — the
//!   config from YAML text, a real [`Hub`], [`StatusBoard`] and [`SideContext`], and optionally
//!   the MeshCore side on channels instead of a radio ([`InProcess::meshcore_on_channels`]);
//! - [`wait_until`] / [`wait_for`]: wait for a condition with a timeout (never a fixed sleep);
//! - [`Gateway`]: a real `meshroom-gw` process with a config in a temp dir, a free port and its
//!   own state directory; HTTP to it, waiting for `/status` or a log line, SIGHUP/SIGTERM;
//! - [`can_run_netns`] and [`Netns`]: the namespace preamble — skip loudly without root (fail
//!   under `CI=true`), a namespace per test with a unique name, deleted on drop.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use meshroom_gw::config::{self, Config};
use meshroom_gw::hub::Hub;
use meshroom_gw::meshcore::server::engine::Priority;
use meshroom_gw::meshcore::service::{self, MeshcoreHandle, RadioLink, Received, Transmitter};
use meshroom_gw::side::SideContext;
use meshroom_gw::status::StatusBoard;
use tokio::sync::{mpsc, watch};

pub const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Plain HTTP/1.1 over a fresh connection; returns (status, body).
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match text.find("\r\n\r\n") {
        Some(i) => dechunk(&text[..i], &text[i + 4..]),
        None => String::new(),
    };
    Ok((status, body))
}

fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("\r\n") {
        let Ok(len) = usize::from_str_radix(rest[..i].trim(), 16) else {
            break;
        };
        if len == 0 {
            break;
        }
        let start = i + 2;
        out.push_str(&rest[start..(start + len).min(rest.len())]);
        rest = &rest[(start + len + 2).min(rest.len())..];
    }
    out
}

/// A running gateway process.
pub struct Gateway {
    pub name: String,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    prefix: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Gateway {
    /// Writes a config (server, http and the given `body`: rooms, peers, …) into a fresh temp
    /// dir and starts the gateway. Without `radio:`/`tun:` in `body` the radio and TUN are off.
    pub fn start(name: &str, body: &str) -> Gateway {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        let mut gw = Gateway::configure(name, &dir, free_port(), body, &[]);
        gw._tmp = Some(tmp);
        gw.spawn();
        gw
    }

    /// Like `start`, in `dir` (kept by the caller), on `port`, with a command prefix such as
    /// `["ip", "netns", "exec", "ns1"]`.
    pub fn configure(name: &str, dir: &Path, port: u16, body: &str, prefix: &[&str]) -> Gateway {
        let listen = format!("http:\n  listen: \"127.0.0.1:{port}\"\n");
        // A body with an `http:` section of its own gets the listen address inside it.
        let body_has_http = body.starts_with("http:\n") || body.contains("\nhttp:\n");
        let mut yaml = format!(
            "server:\n  name: \"{name}\"\n  state_dir: \"{}\"\n{}",
            dir.join("state").display(),
            if body_has_http { "" } else { listen.as_str() }
        );
        if !body.contains("radio:") {
            yaml.push_str("radio:\n  backend: none\n");
        }
        if !body.contains("tun:") {
            yaml.push_str("tun:\n  enabled: off\n");
        }
        if body_has_http {
            yaml.push_str(&body.replacen("http:\n", &listen, 1));
        } else {
            yaml.push_str(body);
        }
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, yaml).expect("write config");
        Gateway {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            config_path,
            port,
            child: None,
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            _tmp: None,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Starts (or restarts) the process and waits until `/status` answers.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("gateway.log"))
            .expect("log file");
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("MESHROOM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start meshroom-gw"));
        self.wait_ready();
    }

    /// Waits until the log holds `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let found = wait_until(timeout, || self.log().contains(needle));
        let log = self.log();
        assert!(
            found,
            "gateway {}: no `{needle}` in the log:\n{log}",
            self.name
        );
        log
    }

    /// Sends SIGHUP (a configuration reload).
    pub fn sighup(&self) {
        unsafe {
            libc::kill(self.pid(), libc::SIGHUP);
        }
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.get("/status") {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "gateway {} exited with {status}:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "gateway {} did not answer /status:\n{}",
            self.name,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        http("GET", &self.addr(), path, &[], "")
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status").expect("GET /status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("status JSON")
    }

    /// Posts `text` as `author` into `room` through the local HTTP endpoint; returns the post id.
    pub fn post(&self, room: &str, author: &str, text: &str) -> String {
        self.try_post(room, author, text, None)
            .expect("post accepted")
    }

    pub fn try_post(
        &self,
        room: &str,
        author: &str,
        text: &str,
        psk: Option<&str>,
    ) -> Result<String, String> {
        let body = serde_json::json!({"text": text, "author": author}).to_string();
        let path = format!("/rooms/{}/posts", room.replace(' ', "%20"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(p) = psk {
            headers.push(("X-Room-Psk", p));
        }
        let (code, resp) =
            http("POST", &self.addr(), &path, &headers, &body).map_err(|e| e.to_string())?;
        if !(200..300).contains(&code) {
            return Err(format!("{code}: {resp}"));
        }
        let v: serde_json::Value = serde_json::from_str(&resp).map_err(|e| e.to_string())?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    /// The room's history (newest `limit`), oldest first.
    pub fn history(&self, room: &str, limit: usize) -> Vec<serde_json::Value> {
        self.history_with_psk(room, limit, None)
    }

    pub fn history_with_psk(
        &self,
        room: &str,
        limit: usize,
        psk: Option<&str>,
    ) -> Vec<serde_json::Value> {
        let path = format!("/rooms/{}/posts?limit={limit}", room.replace(' ', "%20"));
        let headers: Vec<(&str, &str)> = psk.map(|p| ("X-Room-Psk", p)).into_iter().collect();
        let (code, body) = http("GET", &self.addr(), &path, &headers, "").expect("GET history");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("history JSON")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status and how long the process took to stop.
    pub fn terminate(&mut self) -> Option<(ExitStatus, Duration)> {
        let mut c = self.child.take()?;
        let started = Instant::now();
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let status = c.wait().ok()?;
        Some((status, started.elapsed()))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Polls `cond` (every 20 ms) until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The async form of [`wait_until`]: polls `cond` every 10 ms on the runtime's timer.
pub async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gateway inside the test process: config from YAML text (its `state_dir` replaced by a
/// fresh temp dir), the hub, the status board and the context every side gets.
pub struct InProcess {
    pub config: Arc<Config>,
    pub hub: Hub,
    pub board: StatusBoard,
    pub ctx: SideContext,
    pub stop: watch::Sender<bool>,
    /// The state directory (kept by the caller or by `_tmp`).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl InProcess {
    /// Parses `yaml` (panics with the located error when it does not load) and opens the hub
    /// on a fresh temp dir.
    pub fn start(yaml: &str) -> InProcess {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut gw = InProcess::start_in(yaml, tmp.path());
        gw._tmp = Some(tmp);
        gw
    }

    /// Like [`InProcess::start`] on `dir` (kept by the caller: a restart opens it again).
    pub fn start_in(yaml: &str, dir: &Path) -> InProcess {
        let (mut cfg, _) = config::parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        cfg.server.state_dir = dir.to_path_buf();
        InProcess::with_config(cfg)
    }

    /// On a config built in code (its `state_dir` is used as is).
    pub fn with_config(cfg: Config) -> InProcess {
        let config = Arc::new(cfg);
        let dir = config.server.state_dir.clone();
        let hub = Hub::open(
            &config.server.name,
            &dir,
            &config.rooms,
            meshroom_gw::store::writer::system_clock(),
        )
        .expect("open hub");
        let board = StatusBoard::new(hub.clone(), config.clone());
        let (stop, shutdown) = watch::channel(false);
        let ctx = SideContext {
            config: config.clone(),
            hub: hub.clone(),
            status: board.clone(),
            shutdown,
        };
        InProcess {
            config,
            hub,
            board,
            ctx,
            stop,
            dir,
            _tmp: None,
        }
    }

    /// Starts the MeshCore side with channels in place of the radio.
    pub async fn meshcore_on_channels(&self) -> ChannelRadio {
        let (to_gw, rx) = mpsc::channel(64);
        let (out_tx, from_gw) = mpsc::unbounded_channel();
        let handle = service::spawn(
            &self.ctx,
            meshroom_gw::settings::engine_config(&self.config.meshcore),
            RadioLink {
                rx,
                tx: Arc::new(ChannelTx(out_tx)),
            },
        )
        .await
        .expect("MeshCore side starts");
        ChannelRadio {
            to_gw,
            from_gw,
            handle,
        }
    }

    /// Stops every side (the shutdown signal) and closes the hub: when this returns the store's
    /// writer thread has let go of the database.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.hub.close().await;
    }
}

/// Frames the MeshCore side transmits, and a way to hand it received ones.
pub struct ChannelRadio {
    pub to_gw: mpsc::Sender<Received>,
    pub from_gw: mpsc::UnboundedReceiver<(Vec<u8>, Priority)>,
    pub handle: MeshcoreHandle,
}

impl ChannelRadio {
    /// A frame "received over the air" by the gateway.
    pub async fn receive(&self, bytes: Vec<u8>) {
        let _ = self
            .to_gw
            .send(Received {
                bytes,
                rssi_dbm: -70,
                snr_db: 8.0,
                at: Instant::now(),
            })
            .await;
    }
}

struct ChannelTx(mpsc::UnboundedSender<(Vec<u8>, Priority)>);

impl Transmitter for ChannelTx {
    fn transmit(&self, frame: Vec<u8>, priority: Priority) {
        let _ = self.0.send((frame, priority));
    }
}

/// True when a network-namespace test may run; prints a loud SKIPPED otherwise, and fails under
/// `CI=true` (CI runs as root).
pub fn can_run_netns(test: &str) -> bool {
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root (network namespaces and TUN devices need it)")
    } else if !Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun is missing")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("the `ip` tool (iproute2) is missing")
    } else {
        None
    };
    match reason {
        None => true,
        Some(reason) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: cannot run under CI=true: {reason}");
            }
            eprintln!("\n*** SKIPPED {test}: {reason} ***\n");
            false
        }
    }
}

/// A network namespace of the test's own (unique name: process id, a sequence number and a
/// tag, so tests running side by side never share one), deleted on drop.
pub struct Netns {
    pub name: String,
}

static NETNS_SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "mrt-{}-{}-{}",
            std::process::id(),
            NETNS_SEQ.fetch_add(1, Ordering::Relaxed),
            tag
        );
        run_ip(&["netns", "add", &name]);
        run_ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Runs `f` on a thread inside this namespace; sockets it opens live in the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).expect("open netns");
            // setns on this thread only: the test's other threads stay where they are.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// `ip -n <ns> <args>` output (the test's view of the namespace).
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        let out = Command::new("ip").args(&full).output().expect("run ip");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn exec_prefix(&self) -> [&str; 4] {
        ["ip", "netns", "exec", self.name.as_str()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run_ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}
