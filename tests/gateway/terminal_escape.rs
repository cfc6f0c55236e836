//! Terminal injection, end to end: a post carrying ESC, NUL and BEL (in its text and its
//! author) reaches the people reading the room — `meshroom-gw client listen` on the simulated
//! air and `meshroom-gw tail` on the TUN side — escaped, with no raw control byte on their
//! output, while the stored text stays as it came.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{self, Gateway};
use crate::tun_support::{can_run, ip_clients, tun_gateway_in, wait_until, Netns};

/// What an attacker posts: clear the screen, set the window title, ring the bell, a NUL.
const TEXT: &str = "hi \u{1b}[2J\u{1b}]0;owned\u{7} bell\u{7} end\u{0} after the NUL";
const AUTHOR: &str = "mal\u{1b}[31mlory";

/// The escaped forms a person must see. MeshCore text ends at its first NUL (the firmware
/// keeps text as a C string, and `wire::message` reads it so), so the radio shows the text up
/// to the NUL; the TUN side carries it whole.
const SEEN_ON_RADIO: &str = "hi \\u{1b}[2J\\u{1b}]0;owned\\u{7} bell\\u{7} end";
const SEEN_TEXT: &str = "hi \\u{1b}[2J\\u{1b}]0;owned\\u{7} bell\\u{7} end\\u{0} after the NUL";
const SEEN_AUTHOR: &str = "mal\\u{1b}[31mlory";

/// A child process whose stdout lines arrive as raw bytes (nothing decoded or cleaned).
struct Output {
    child: Child,
    rx: mpsc::Receiver<Vec<u8>>,
    lines: Vec<Vec<u8>>,
}

impl Output {
    fn spawn(mut cmd: Command) -> Output {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Output {
            child,
            rx,
            lines: Vec::new(),
        }
    }

    /// The first line satisfying `f`, waiting up to `timeout`.
    fn wait_for(&mut self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) -> Vec<u8> {
        if let Some(l) = self.lines.iter().find(|l| f(&String::from_utf8_lossy(l))) {
            return l.clone();
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
                let hit = f(&String::from_utf8_lossy(&line));
                self.lines.push(line.clone());
                if hit {
                    return line;
                }
            }
        }
        let mut rest = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_end(&mut rest);
        }
        panic!(
            "{what}: not seen in {timeout:?}; output:\n{}",
            self.lines
                .iter()
                .map(|l| format!("{:?}", String::from_utf8_lossy(l)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// No byte that a terminal would act on: C0 (newline was the line end; tab none here), DEL,
/// and C1 (as UTF-8, U+0080..U+009F are C2 80..C2 9F).
fn assert_no_raw_controls(line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    assert!(
        !line.iter().any(|&b| b < 0x20 || b == 0x7f),
        "raw control byte in {text:?}"
    );
    assert!(
        !text.chars().any(meshroom_gw::textsafe::is_unsafe),
        "raw control character in {text:?}"
    );
}

/// The stored post keeps every byte as it came.
fn assert_stored_as_sent(gw: &Gateway, room: &str) {
    let history = gw.history(room, 10);
    assert!(
        history
            .iter()
            .any(|p| p["text"] == TEXT && p["author"]["name"] == AUTHOR),
        "stored text changed: {history:?}"
    );
}

#[test]
fn client_listen_shows_a_post_with_esc_nul_bel_escaped() {
    let air = tempfile::tempdir().expect("air dir");
    let body = format!(
        r#"rooms:
  - name: "Public"
radio:
  backend: sim
  region: usa-canada
  air_dir: "{}"
meshcore:
  advert_interval_s: 8.0
  first_advert_delay_s: 0.2
  push_min_age_s: 0.0
  push_interval_s: 0.5
  reply_delay_s: 0.1
"#,
        air.path().display()
    );
    let gw = Gateway::start("escape-listen", &body);
    let mut cmd = Command::new(common::BIN);
    cmd.arg("--config")
        .arg(&gw.config_path)
        .arg("client")
        .arg("--air")
        .arg(air.path())
        .arg("--name")
        .arg("reader")
        .arg("--state")
        .arg(gw.dir.join("client-reader"))
        .args(["listen", "--room", "Public", "--for", "150"])
        .env("MESHROOM_LOG", "warn");
    let mut listen = Output::spawn(cmd);
    listen.wait_for("the listener logged in", Duration::from_secs(60), |l| {
        l == "listening"
    });
    gw.post("Public", AUTHOR, TEXT);
    let line = listen.wait_for("the post at the listener", Duration::from_secs(60), |l| {
        l.starts_with("[Public]") && l.contains(" end")
    });
    let text = String::from_utf8_lossy(&line);
    assert!(
        text.ends_with(&format!("{SEEN_AUTHOR}: {SEEN_ON_RADIO}")),
        "{text:?}"
    );
    assert_no_raw_controls(&line);
    for l in &listen.lines {
        assert_no_raw_controls(l);
    }
    assert_stored_as_sent(&gw, "Public");
}

#[test]
fn tail_shows_a_post_with_esc_nul_bel_escaped() {
    if !can_run("tail_shows_a_post_with_esc_nul_bel_escaped") {
        return;
    }
    let ns = Netns::new("esc-tail");
    let name = ns.name.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_path = dir.path().to_path_buf();
    ns.run(move || {
        let gw = tun_gateway_in(
            &name,
            &dir_path,
            "rooms:\n  - name: \"general\"\ntun:\n  enabled: on\n",
        );
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &name,
            common::BIN,
            "tail",
            "--room",
            "general",
        ])
        .arg("--config")
        .arg(&gw.config_path);
        let mut tail = Output::spawn(cmd);
        assert!(
            wait_until(Duration::from_secs(10), || ip_clients(&gw, "general") == 1),
            "tail never joined the room's group"
        );
        gw.post("general", AUTHOR, TEXT);
        let line = tail.wait_for("the post at tail", Duration::from_secs(10), |l| {
            l.contains("after the NUL")
        });
        let text = String::from_utf8_lossy(&line);
        assert!(text.contains(SEEN_TEXT), "{text:?}");
        assert!(text.contains(SEEN_AUTHOR), "{text:?}");
        assert_no_raw_controls(&line);
        assert_stored_as_sent(&gw, "general");
    });
}
