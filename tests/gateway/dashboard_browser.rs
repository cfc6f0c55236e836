//! The dashboard in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`)
//! driven over WebDriver with a few plain HTTP calls. The page lists the configured rooms; a
//! post made with `meshroom-gw post` shows up without a reload (latency printed); a private
//! room's text is absent until its PSK is typed in; the radio gauge shows a figure; a screenshot
//! goes to `target/test-output/dashboard.png`.
//!
//! Skips (loudly) when Chromium or chromedriver is missing, unless CI is set: then it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, Gateway, BIN};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = format!("127.0.0.1:{port}");
        let ready = wait(Duration::from_secs(30), || {
            http("GET", &addr, "/status", &[], "")
                .ok()
                .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true)
        });
        assert!(ready, "chromedriver did not become ready");
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1200,1500",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let (code, body) =
            http("POST", &addr, "/session", &[], &caps.to_string()).expect("new session");
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session ({code}): {body}"))
            .to_string();
        Browser {
            driver,
            addr,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let headers = [("Content-Type", "application/json")];
        let (code, text) = http(method, &self.addr, &path, &headers, &body).expect("webdriver");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(code == 200, "{method} {path}: {code} {text}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element `{css}`: {v}"))
            .to_string()
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn page_has(&self, text: &str) -> bool {
        let script = format!(
            "return document.documentElement.outerHTML.includes({});",
            Value::from(text)
        );
        self.js(&script) == true
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.call("GET", "/screenshot", Value::Null);
        let png = base64_decode(b64.as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(to, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = http("DELETE", &self.addr, &path, &[], "");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 exchange with chromedriver, which keeps the connection open after answering
/// even when asked to close it: the body is read by its Content-Length.
fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    (&s).write_all(req.as_bytes())?;
    let mut r = BufReader::new(&s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut buf = vec![0; len];
    r.read_exact(&mut buf)?;
    Ok((status, String::from_utf8_lossy(&buf).into_owned()))
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Polls every 10 ms until `cond` holds or `timeout` passes.
fn wait(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn cli_post(gw: &Gateway, room: &str, text: &str) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&gw.config_path)
        .args(["post", "--room", room, "--author", "cli", text])
        .output()
        .expect("run meshroom-gw post");
    assert!(
        out.status.success(),
        "post failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-output");
    std::fs::create_dir_all(&dir).expect("test output dir");
    dir
}

#[test]
fn the_dashboard_in_headless_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
        }
        eprintln!("SKIPPED the_dashboard_in_headless_chromium: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
        return;
    }
    let air = tempfile::tempdir().expect("air dir");
    let gw = Gateway::start(
        "dash-test",
        &format!(
            "rooms:\n  - name: \"Public\"\n    description: \"for everyone\"\n  - name: \"Club\"\n    psk: \"club-secret\"\n  - name: \"Other\"\nradio:\n  backend: sim\n  region: eu-uk-narrow\n  air_dir: \"{}\"\nmeshcore:\n  first_advert_delay_s: 0.2\n",
            air.path().display()
        ),
    );
    // The room advert went out: the gauge has airtime to show.
    assert!(wait(Duration::from_secs(30), || gw.status()["radio"]
        ["airtime"]["used_ms"]
        .as_u64()
        .is_some_and(|ms| ms > 0)));

    let browser = Browser::start();
    browser.goto(&gw.url());
    assert!(
        wait(Duration::from_secs(30), || {
            browser.js(
            "return document.body.dataset.loaded === 'true' && document.body.dataset.live === 'true';"
        ) == true
        }),
        "the page never loaded and went live"
    );

    let rooms =
        browser.js("return [...document.querySelectorAll('.card.room')].map(e => e.dataset.room);");
    assert_eq!(rooms, json!(["Public", "Club", "Other"]));

    // A private post first: the page must not show it, though it shows later public ones.
    let secret = "the club meets at nine";
    cli_post(&gw, "Club", secret);
    let text = "hello from meshroom-gw post";
    let started = Instant::now();
    cli_post(&gw, "Public", text);
    let committed = Instant::now();
    assert!(
        wait(Duration::from_secs(10), || browser.page_has(text)),
        "the public post never appeared"
    );
    println!(
        "dashboard: the post appeared on the open page {} ms after `meshroom-gw post` returned ({} ms after it started)",
        committed.elapsed().as_millis(),
        started.elapsed().as_millis()
    );
    assert!(
        !browser.page_has(secret),
        "a private room's text showed without its PSK"
    );

    // The PSK, typed in: the history shows, and new posts of the room arrive live.
    browser.type_into(
        ".card[data-room='Club'] input[type=password]",
        "club-secret",
    );
    browser.click(".card[data-room='Club'] form.unlock button");
    assert!(
        wait(Duration::from_secs(10), || browser.page_has(secret)),
        "the private text did not show after its PSK was entered"
    );
    let live_secret = "and brings the cake";
    cli_post(&gw, "Club", live_secret);
    assert!(
        wait(Duration::from_secs(10), || browser.page_has(live_secret)),
        "a new private post did not arrive live after unlocking"
    );

    let gauge = browser.js(
        "const g = document.querySelector('#airtime-gauge'); return g ? [g.querySelector('.figure').textContent, g.dataset.percent] : null;",
    );
    let figure = gauge[0].as_str().unwrap_or_default();
    println!("dashboard: radio gauge reads `{figure}` ({}%)", gauge[1]);
    assert!(
        figure.ends_with(" s")
            && figure.contains(" s of ")
            && figure.chars().any(|c| c.is_ascii_digit()),
        "{gauge}"
    );
    let percent: f64 = gauge[1]
        .as_str()
        .unwrap_or("x")
        .parse()
        .expect("a percentage");
    assert!(percent > 0.0, "{gauge}");

    let shot = output_dir().join("dashboard.png");
    browser.screenshot(&shot);
    println!("dashboard: screenshot in {}", shot.display());
}
