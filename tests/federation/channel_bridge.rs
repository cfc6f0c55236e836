//! Issue 13 end to end with real processes on the simulated air: `meshroom-gw` gateways whose
//! room keeps the Public channel, federated with each other, and `meshroom-gw client channel`
//! processes as phones on the channel.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Gateway;
use crate::federation_support::{
    connected, id_counts, peer, wait_until, Plan, FAST_FEDERATION, SETTLE,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");
const SECRET: &str = "g1-g2-federation-secret";

/// One scenario at a time: several emulated radios in real time per scenario.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn body(air: &Path, mode: &str, peer_port: u16) -> String {
    format!(
        r#"rooms:
  - name: "Chan"
    channel:
      name: public
      mode: {mode}
      max_per_minute: 6
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
peers:
{}{FAST_FEDERATION}"#,
        air.display(),
        peer(peer_port, SECRET)
    )
}

fn client(gw: &Gateway, air: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(&gw.config_path)
        .arg("client")
        .arg("--air")
        .arg(air)
        .arg("--name")
        .arg(name)
        .arg("--state")
        .arg(gw.dir.join(format!("client-{name}")))
        .args(args)
        .env("MESHROOM_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Output {
    let out = c.output().expect("run client");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A client process whose stdout lines arrive on a channel.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    fn spawn(mut c: Command) -> Lines {
        let mut child = c.stdout(Stdio::piped()).spawn().expect("spawn client");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Lines {
            child,
            rx,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        if self.seen.iter().any(|l| f(l)) {
            return;
        }
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(200)) {
                let hit = f(&line);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("{what}: not seen in {timeout:?}:\n{}", self.seen.join("\n"));
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `text` on Public from a phone named `name` until `heard` says a gateway has it,
/// like a person pressing send again: every repeat is the identical packet (same timestamp),
/// which receivers keep once. A channel message is a single unacknowledged flood, and the
/// simulated air loses frames as the real one does (two radios starting within one CAD window
/// collide). Returns how many sends it took.
fn send_until(gw: &Gateway, air: &Path, name: &str, text: &str, heard: impl Fn() -> bool) -> usize {
    const ATTEMPTS: usize = 5;
    let mut ts: Option<String> = None;
    for attempt in 1..=ATTEMPTS {
        let mut args = vec!["channel", "send", "--channel", "public"];
        if let Some(ts) = ts.as_deref() {
            args.extend(["--timestamp", ts]);
        }
        args.push(text);
        let out = run(client(gw, air, name, &args));
        let stdout = String::from_utf8_lossy(&out.stdout);
        // "sent on Public (ts 1796148126)": repeats carry the first send's timestamp.
        if ts.is_none() {
            ts = stdout
                .lines()
                .find_map(|l| l.strip_prefix("sent on Public (ts "))
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_string);
            assert!(ts.is_some(), "no timestamp in: {stdout}");
        }
        // The frame is on the air when the client exits; a gateway stores it within moments
        // of hearing it. Wait for it generously before pressing send again.
        if wait_until(Duration::from_secs(10), &heard) {
            println!("{name}: \"{text}\" stored after {attempt} send(s)");
            return attempt;
        }
    }
    panic!("\"{text}\" from {name} not heard after {ATTEMPTS} sends");
}

fn channel(gw: &Gateway) -> Value {
    gw.status()["meshcore"]["rooms"]["Chan"]["channel"].clone()
}

fn texts(gw: &Gateway) -> Vec<Value> {
    gw.history("Chan", 1000)
}

/// Two federated gateways; the plans (their temp dirs) come last so the processes stop first.
fn start_pair(
    air1: &Path,
    mode1: &str,
    air2: &Path,
    mode2: &str,
) -> (Gateway, Gateway, Plan, Plan) {
    let p1 = Plan::new("g1");
    let p2 = Plan::new("g2");
    let g1 = p1.start(&body(air1, mode1, p2.port));
    let g2 = p2.start(&body(air2, mode2, p1.port));
    assert!(
        wait_until(SETTLE, || connected(&g1, g2.port)
            && connected(&g2, g1.port)),
        "federation did not connect"
    );
    (g1, g2, p1, p2)
}

#[test]
fn a_channel_message_in_one_city_reaches_the_channel_in_the_other() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let air_a = tempfile::tempdir().unwrap();
    let air_b = tempfile::tempdir().unwrap();
    let (g1, g2, _p1, _p2) = start_pair(air_a.path(), "listen", air_b.path(), "bridge");

    // A phone in city B listens on Public.
    let mut bob = Lines::spawn(client(
        &g2,
        air_b.path(),
        "bob",
        &["channel", "listen", "--channel", "public", "--for", "90"],
    ));
    bob.wait_for("bob listening", SETTLE, |l| {
        l.starts_with("listening on Public")
    });

    // A phone in city A says something on Public.
    send_until(&g1, air_a.path(), "alice", "hello from city A", || {
        !texts(&g1).is_empty()
    });

    // Stored once in G1's room, as a channel post with an unauthenticated author…
    assert!(
        wait_until(SETTLE, || texts(&g1).len() == 1),
        "{:?}",
        texts(&g1)
    );
    let p = &texts(&g1)[0];
    assert_eq!(p["text"], "hello from city A");
    assert_eq!(p["author"]["kind"], "channel");
    assert_eq!(p["author"]["id"], "channel:alice");
    // …federated to G2 with the same id…
    assert!(wait_until(SETTLE, || texts(&g2).len() == 1));
    assert_eq!(texts(&g2)[0]["id"], p["id"]);
    // …and sent by G2 on city B's air, where bob's phone hears it (as alice, same timestamp:
    // the very packet alice's phone sent).
    bob.wait_for("the bridged message", SETTLE, |l| {
        l.starts_with("<Public>") && l.ends_with("alice: hello from city A")
    });
    assert_eq!(channel(&g2)["transmitted"], 1);
    // Listen mode never transmits.
    assert_eq!(channel(&g1)["transmitted"], 0);
    assert_eq!(channel(&g1)["stored"], 1);
    assert_eq!(channel(&g1)["mode"], "listen");
    assert!(channel(&g1).get("key").is_none());

    // Someone who was away logs into G1's room and gets the channel's history as a push.
    let mut carol = Lines::spawn(client(
        &g1,
        air_a.path(),
        "carol",
        &["listen", "--room", "Chan", "--count", "1", "--for", "90"],
    ));
    carol.wait_for("the channel history pushed", SETTLE, |l| {
        l.starts_with("[Chan]") && l.ends_with("hello from city A")
    });

    // A post made at G1's HTTP endpoint goes out on city B's channel as name@g1.
    g1.post("Chan", "dora", "hello from the host");
    bob.wait_for("the host post", SETTLE, |l| {
        l.ends_with("dora@g1: hello from the host")
    });
    assert!(wait_until(SETTLE, || channel(&g2)["transmitted"] == 2));
    assert_eq!(channel(&g1)["transmitted"], 0);
}

#[test]
fn two_bridging_gateways_on_one_air_store_once_and_send_at_most_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let air = tempfile::tempdir().unwrap();
    let (g1, g2, _p1, _p2) = start_pair(air.path(), "bridge", air.path(), "bridge");
    let mut bob = Lines::spawn(client(
        &g2,
        air.path(),
        "bob",
        &["channel", "listen", "--channel", "public", "--for", "120"],
    ));
    bob.wait_for("bob listening", SETTLE, |l| {
        l.starts_with("listening on Public")
    });

    send_until(&g1, air.path(), "alice", "one air", || {
        !texts(&g1).is_empty() || !texts(&g2).is_empty()
    });
    g1.post("Chan", "dora", "from the host");
    let settled = |gw: &Gateway| {
        let t = texts(gw);
        t.len() >= 2
    };
    assert!(wait_until(SETTLE, || settled(&g1) && settled(&g2)));
    // Let any echo happen: the bridged host post must be on the air and heard by both.
    bob.wait_for("the host post on the air", SETTLE, |l| {
        l.ends_with(": from the host")
    });
    assert!(wait_until(SETTLE, || {
        let (c1, c2) = (channel(&g1), channel(&g2));
        c1["duplicates"].as_u64().unwrap_or(0) + c2["duplicates"].as_u64().unwrap_or(0) >= 1
    }));
    for gw in [&g1, &g2] {
        let counts = id_counts(gw, "Chan", None);
        assert_eq!(counts.len(), 2, "{}: {:?}", gw.name, texts(gw));
        assert!(counts.values().all(|&n| n == 1));
        let c = channel(gw);
        // alice's message came from this very air: never sent back. The host post: at most
        // once per gateway.
        assert!(c["transmitted"].as_u64().unwrap() <= 1, "{}: {c}", gw.name);
    }
    let total = channel(&g1)["transmitted"].as_u64().unwrap()
        + channel(&g2)["transmitted"].as_u64().unwrap();
    assert!((1..=2).contains(&total), "{total}");
}

/// A bridged room with a duty-cycle budget, no peers.
fn burst_body(air: &Path) -> String {
    format!(
        r#"rooms:
  - name: "Chan"
    channel:
      name: public
      mode: bridge
      max_per_minute: 4
radio:
  backend: sim
  region: usa-canada
  duty_cycle_percent: 10
  duty_cycle_window_s: 60
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

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[test]
fn a_burst_of_host_posts_keeps_the_rate_limit_and_the_duty_cycle_and_acks_go_first() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let air = tempfile::tempdir().unwrap();
    let plan = Plan::new("gb");
    let gw = plan.start(&burst_body(air.path()));
    // A phone logged into the room before the burst.
    run(client(
        &gw,
        air.path(),
        "rita",
        &["login", "--room", "Chan", "--timeout", "30"],
    ));

    const BURST: usize = 100;
    let spacing = Duration::from_secs(60 / 4);
    let began = Instant::now();
    // Rita posts from the air while the host's burst goes in.
    let rita = {
        let mut c = client(
            &gw,
            air.path(),
            "rita",
            &[
                "post",
                "--room",
                "Chan",
                "--timeout",
                "60",
                "rita during the burst",
            ],
        );
        std::thread::spawn(move || {
            let t = Instant::now();
            let out = c.output().expect("run client");
            (out, t.elapsed())
        })
    };
    for i in 0..BURST {
        gw.post("Chan", "host", &format!("burst {i}"));
    }
    let (out, took) = rita.join().unwrap();
    assert!(
        out.status.success(),
        "rita's post got no ACK:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let st = gw.status();
    println!(
        "rita's post during a burst of {BURST} host posts: acked, `client post` took {took:?} \
         (process start, its advert, the post and the ACK); gateway post→ACK {}",
        st["meshcore"]["post_to_ack_ms"]
    );

    // Every post was offered to the channel: sent, waiting, or dropped at the full queue.
    let offered = (BURST + 1) as u64;
    assert!(wait_until(SETTLE, || {
        let c = channel(&gw);
        u(&c["transmitted"]) + u(&c["queued"]) + u(&c["rate_limited"]) == offered
    }));
    // Watch the channel send for a while: never faster than max_per_minute, never over the
    // duty-cycle budget (every sample, whatever the machine's speed).
    let mut samples = 0;
    let watched = wait_until(Duration::from_secs(60), || {
        let st = gw.status();
        let c = &st["meshcore"]["rooms"]["Chan"]["channel"];
        let a = &st["radio"]["airtime"];
        let sent = u(&c["transmitted"]);
        // At most one at once, then one per spacing (a slow machine only lengthens the time).
        let allowed_by_rate = began.elapsed().as_secs() / spacing.as_secs() + 1;
        assert!(
            sent <= allowed_by_rate,
            "{sent} sent in {:?}: {c}",
            began.elapsed()
        );
        assert!(u(&a["used_ms"]) <= u(&a["allowed_ms"]), "{a}");
        samples += 1;
        sent >= 3
    });
    assert!(
        watched,
        "the channel sent fewer than 3 in a minute: {}",
        channel(&gw)
    );
    let c = channel(&gw);
    let st = gw.status();
    println!(
        "channel after the burst: transmitted {}, queued {}, rate_limited {} ({samples} samples); \
         radio airtime {}, tx_queue {}",
        c["transmitted"],
        c["queued"],
        c["rate_limited"],
        st["radio"]["airtime"],
        st["radio"]["tx_queue"]
    );
    // The queue is bounded: most of the burst was dropped and counted, not held.
    assert!(
        u(&c["rate_limited"]) >= offered - 32 - u(&c["transmitted"]),
        "{c}"
    );
    assert!(u(&c["queued"]) <= 32, "{c}");
    // All 101 posts are in the room, whatever the channel could carry.
    assert_eq!(texts(&gw).len(), BURST + 1);
}
