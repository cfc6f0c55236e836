//! End to end on the simulated air: real gateway processes, and `meshroom-gw client` processes
//! as the MeshCore companions, each with its own emulated radio on a shared air directory.

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

    fn drain(&mut self, quiet: Duration) {
        while let Ok(line) = self.rx.recv_timeout(quiet) {
            self.lines.push(line);
        }
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
    listen.drain(Duration::from_secs(3));
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

#[test]
fn private_room_wrong_password_gets_nothing_right_password_works() {
    let (gw, air, _serial) = start();
    let mallory = Client::new(&gw, air.path(), "mallory");
    let r = mallory.run(&[
        "login",
        "--room",
        "Club",
        "--password",
        "guess",
        "--timeout",
        "14",
    ]);
    assert!(!r.ok, "a wrong password must not log in: {}", r.out);
    assert!(!r.out.contains("logged in"), "{}", r.out);
    let r = mallory.run(&["post", "--room", "Club", "--timeout", "15", "let me in"]);
    assert!(!r.ok, "no access without login: {}", r.out);
    assert!(gw
        .history_with_psk("Club", 10, Some("club-secret"))
        .is_empty());
    let failed = gw.status()["meshcore"]["counters"]["login_failed"]
        .as_u64()
        .unwrap();
    assert!(failed >= 1, "wrong passwords are counted");
    let alice = Client::new(&gw, air.path(), "alice");
    let r = alice.login("Club", "club-secret");
    assert!(r.ok, "the right password logs in: {}", r.out);
    let r = alice.post("Club", "members only");
    assert!(r.ok, "{}", r.out);
}

#[test]
fn a_client_in_two_rooms_gets_each_rooms_posts_and_only_those() {
    let (gw, air, _serial) = start();
    let alice = Client::new(&gw, air.path(), "alice");
    let mut listen = alice.listen(&[
        "--room",
        "Public",
        "--room",
        "Club",
        "--password",
        "club-secret",
        "--for",
        "200",
    ]);
    listen.wait_for("alice listening", Duration::from_secs(90), |l| {
        l == "listening"
    });
    gw.post("Public", "pat", "to public");
    gw.try_post("Club", "cat", "to club", Some("club-secret"))
        .expect("club post");
    gw.post("Other", "oscar", "to other");
    listen.wait_for("public post", Duration::from_secs(60), |l| {
        l.starts_with("[Public]") && l.ends_with("pat: to public")
    });
    listen.wait_for("club post", Duration::from_secs(60), |l| {
        l.starts_with("[Club]") && l.ends_with("cat: to club")
    });
    listen.drain(Duration::from_secs(5));
    assert_eq!(count(&listen.pushed(), "to other"), 0, "{:?}", listen.lines);
}

#[test]
fn away_client_gets_exactly_what_it_missed_across_a_gateway_restart() {
    let (mut gw, air, _serial) = start();
    let alice = Client::new(&gw, air.path(), "alice");
    let bob = Client::new(&gw, air.path(), "bob");
    assert!(bob.login("Public", "").ok);
    assert!(alice.login("Public", "").ok);
    let mut l = bob.listen(&["--room", "Public", "--count", "1", "--for", "90"]);
    assert!(alice.post("Public", "one").ok);
    l.wait_for("first post", Duration::from_secs(60), |l| {
        l.ends_with("> one")
    });
    drop(l);
    // bob is away: two posts, and the gateway restarts in between.
    assert!(alice.post("Public", "two").ok);
    let before = gw.status();
    gw.terminate();
    gw.spawn();
    assert!(
        alice.post("Public", "three").ok,
        "alice's key and login survived the restart"
    );
    // bob comes back and logs in with its sync_since.
    let mut l = bob.listen(&["--room", "Public", "--for", "120"]);
    l.wait_for("second post", Duration::from_secs(90), |l| {
        l.ends_with("> two")
    });
    l.wait_for("third post", Duration::from_secs(60), |l| {
        l.ends_with("> three")
    });
    l.drain(Duration::from_secs(4));
    let pushed = l.pushed();
    assert_eq!(
        count(&pushed, "> one"),
        0,
        "nothing already received: {pushed:?}"
    );
    assert_eq!(count(&pushed, "> two"), 1, "{pushed:?}");
    assert_eq!(count(&pushed, "> three"), 1, "{pushed:?}");
    // The rooms kept their identities.
    let after = gw.status();
    for room in ["Public", "Club"] {
        assert_eq!(
            before["meshcore"]["rooms"][room]["public_key"],
            after["meshcore"]["rooms"][room]["public_key"]
        );
    }
    assert_eq!(gw.history("Public", 10).len(), 3);
}

#[test]
fn junk_on_the_air_leaves_the_gateway_serving_with_counters() {
    let (gw, air, _serial) = start();
    let alice = Client::new(&gw, air.path(), "alice");
    assert!(alice.login("Public", "").ok);
    // A misbehaving radio: random bytes, truncated and tampered copies, replays.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = gw.status()["meshcore"]["rooms"]["Public"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    rt.block_on(async {
        use meshroom_gw::meshcore::companion::{Companion, CompanionConfig, Output};
        use meshroom_gw::meshcore::server::engine::Now;
        use meshroom_gw::meshcore::wire::identity::{LocalIdentity, PublicKey};
        use meshroom_gw::radio::{open_sim_standalone, SimParams, TxPriority};
        use rand::Rng;
        let cfg = meshroom_gw::config::load_file(&gw.config_path)
            .unwrap()
            .config;
        let radio = open_sim_standalone(air.path(), SimParams::from_config(&cfg.radio).unwrap())
            .await
            .unwrap();
        let room = PublicKey::from_hex(&key).unwrap();
        let mut eve = Companion::new(
            LocalIdentity::from_seed(&[66; 32]),
            "eve",
            CompanionConfig::default(),
            3,
        );
        eve.add_room(room, "Public", 0);
        let now = Now {
            mono_ms: 0,
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as u32,
        };
        let login: Vec<u8> = match eve.login(now, &room, "", None).unwrap().remove(0) {
            Output::Transmit(f) => f,
            _ => unreachable!(),
        };
        let mut rng = rand::thread_rng();
        let mut frames: Vec<Vec<u8>> = vec![];
        for i in 0..32 {
            frames.push(match i % 4 {
                0 => (0..rng.gen_range(1..200)).map(|_| rng.gen()).collect(),
                1 => login[..rng.gen_range(1..login.len())].to_vec(),
                2 => {
                    let mut f = login.clone();
                    let n = f.len();
                    f[n - 1] ^= 0x5a;
                    f
                }
                _ => login.clone(),
            });
        }
        // One at a time, each after the previous one's airtime, so they are not lost in our
        // own queue (the gateway's half-duplex radio still misses some: that is the air).
        for f in frames {
            let toa = radio.time_on_air(f.len().max(1));
            let _ = radio.transmit(f, TxPriority::Push);
            tokio::time::sleep(toa + Duration::from_millis(250)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let r = alice.post("Public", "still serving");
    assert!(r.ok, "{}", r.out);
    let s = gw.status();
    let c = &s["meshcore"]["counters"];
    assert!(s["meshcore"]["dropped_total"].as_u64().unwrap() > 0, "{s}");
    assert!(c["bad_mac"].as_u64().unwrap() > 0, "{s}");
    assert!(
        c["dropped"]["duplicate"].as_u64().unwrap_or(0) > 0,
        "replays are dropped: {s}"
    );
    let (code, metrics) = gw.get("/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("meshroom_meshcore_bad_mac_total"));
}
