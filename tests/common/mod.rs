//! Test harness shared by the end-to-end tests: starts real `meshroom-gw` processes with a
//! config in a temp dir, free ports and their own state directory, and talks HTTP to them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

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
        let mut yaml = format!(
            "server:\n  name: \"{name}\"\n  state_dir: \"{}\"\nhttp:\n  listen: \"127.0.0.1:{port}\"\n",
            dir.join("state").display()
        );
        if !body.contains("radio:") {
            yaml.push_str("radio:\n  backend: none\n");
        }
        if !body.contains("tun:") {
            yaml.push_str("tun:\n  enabled: off\n");
        }
        yaml.push_str(body);
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
