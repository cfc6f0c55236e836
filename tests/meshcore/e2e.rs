//! The final proof, end to end on the simulated air in real time: a real gateway process, and
//! `meshroom-gw client` processes as the MeshCore companions, each with its own emulated radio
//! on a shared air directory. The other scenarios (private room, two rooms, restart, junk on
//! the air) run on a virtual clock in `virtual_air.rs`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Gateway;

const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");

fn body(air: &Path) -> String {
    format!(
        r#"rooms:
  - name: "Public"
  - name: "Club"
    psk: "club-secret"
  - name: "Other"
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
        air.display()
    )
}

struct Client {
    name: String,
    state: PathBuf,
    gw_config: PathBuf,
    air: PathBuf,
}

struct Run {
    ok: bool,
    out: String,
}

impl Client {
    fn new(gw: &Gateway, air: &Path, name: &str) -> Client {
        Client {
            name: name.to_string(),
            state: gw.dir.join(format!("client-{name}")),
            gw_config: gw.config_path.clone(),
            air: air.to_path_buf(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.gw_config)
            .arg("client")
            .arg("--air")
            .arg(&self.air)
            .arg("--name")
            .arg(&self.name)
            .arg("--state")
            .arg(&self.state)
            .args(args)
            .env("MESHROOM_LOG", "warn")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run client");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Run {
            ok: out.status.success(),
            out: text,
        }
    }

    fn login(&self, room: &str, password: &str) -> Run {
        self.run(&[
            "login",
            "--room",
            room,
            "--password",
            password,
            "--timeout",
            "30",
        ])
    }

    fn post(&self, room: &str, text: &str) -> Run {
        self.run(&["post", "--room", room, "--timeout", "60", text])
    }

    /// A `listen` process whose output lines arrive on a channel.
    fn listen(&self, args: &[&str]) -> Listener {
        let mut all = vec!["listen"];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn listen");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Listener {
            child,
            rx,
            lines: vec![],
        }
    }
}

struct Listener {
    child: Child,
    rx: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Listener {
    /// Waits until a line satisfies `f`.
    fn wait_for(&mut self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        if self.lines.iter().any(|l| f(l)) {
            return;
        }
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
                let hit = f(&line);
                self.lines.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!(
            "{what}: not seen in {timeout:?}; output:\n{}",
            self.lines.join("\n")
        );
    }

    fn pushed(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with('['))
            .cloned()
            .collect()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scenario at a time: each runs a gateway and several emulated radios in real time, and
/// on a loaded machine running them side by side starves the emulators (frames get lost).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn start() -> (
    Gateway,
    tempfile::TempDir,
    std::sync::MutexGuard<'static, ()>,
) {
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let air = tempfile::tempdir().expect("air dir");
    let gw = Gateway::start("mc-e2e", &body(air.path()));
    (gw, air, guard)
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn two_clients_in_the_public_room_and_a_host_post_with_its_author() {
    let (gw, air, _serial) = start();
    let alice = Client::new(&gw, air.path(), "alice");
    let bob = Client::new(&gw, air.path(), "bob");
    let mut listen = bob.listen(&["--room", "Public", "--for", "150"]);
    listen.wait_for("bob listening", Duration::from_secs(60), |l| {
        l == "listening"
    });
    let r = alice.login("Public", "anything goes");
    assert!(r.ok, "alice login: {}", r.out);
    let r = alice.post("Public", "hello from alice");
    assert!(r.ok, "alice post: {}", r.out);
    assert!(r.out.contains("acked by Public"), "{}", r.out);
    listen.wait_for("alice's post at bob", Duration::from_secs(60), |l| {
        l.starts_with("[Public]") && l.ends_with("hello from alice")
    });
    // A post from the host side (HTTP), shown with its author.
    gw.post("Public", "carol", "from the host");
    listen.wait_for("host post at bob", Duration::from_secs(60), |l| {
        l.starts_with("[Public]") && l.ends_with("carol: from the host")
    });
    // A marker instead of waiting to see that nothing more comes: pushes go out oldest first,
    // so a second copy of either post would arrive before it.
    gw.post("Public", "marker", "flush marker");
    listen.wait_for("marker at bob", Duration::from_secs(60), |l| {
        l.starts_with("[Public]") && l.ends_with("marker: flush marker")
    });
    let pushed = listen.pushed();
    assert_eq!(
        count(&pushed, "hello from alice"),
        1,
        "exactly once: {pushed:?}"
    );
    assert_eq!(
        count(&pushed, "carol: from the host"),
        1,
        "exactly once: {pushed:?}"
    );
    // The radio post is in the room's history with a MeshCore author.
    let history = gw.history("Public", 10);
    assert!(
        history
            .iter()
            .any(|p| p["text"] == "hello from alice" && p["author"]["kind"] == "radio"),
        "{history:?}"
    );
    let s = gw.status();
    assert!(
        s["meshcore"]["counters"]["login_ok"].as_u64().unwrap() >= 2,
        "{s}"
    );
    assert!(
        s["meshcore"]["counters"]["posts_acked"].as_u64().unwrap() >= 1,
        "{s}"
    );
}
