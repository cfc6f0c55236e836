//! The hardware path, run for real: the unmodified `meshroom-gw` binary with `radio.backend:
//! sx126x` opens `/dev/spidevB.C` and `/dev/gpiochipN`, and the `sx126x-kernel-fake` preload
//! library answers those opens, the spidev and GPIO uAPI v2 ioctls and the line request's edge
//! events from the SX126x emulator, whose chip joins a simulated air directory. Software MeshCore
//! clients (`meshroom-gw client`) on the same directory talk to the gateway through it.
//!
//! By default the binary and the library are the debug builds of this workspace (the library is
//! built on first use). `.ci/hardware-path` runs the same tests on the release builds by setting
//! `MESHROOM_HW_BIN` and `MESHROOM_HW_FAKE_LIB`.

use crate::common::{wait_until, Gateway};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use sx126x::presets::{BoardPreset, BOARDS};

/// The gateway binary under test.
fn binary() -> PathBuf {
    std::env::var_os("MESHROOM_HW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_meshroom-gw")))
}

/// The preload library: `MESHROOM_HW_FAKE_LIB`, else this profile's build (built once here:
/// `cargo test --test radio` alone does not build other packages' libraries).
fn fake_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(p) = std::env::var_os("MESHROOM_HW_FAKE_LIB") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/radio-HASH
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "sx126x-kernel-fake",
            "--target-dir",
        ])
        .arg(&target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building sx126x-kernel-fake failed");
        let lib = profile_dir.join("libsx126x_kernel_fake.so");
        assert!(lib.exists(), "{} missing after the build", lib.display());
        lib
    })
    .clone()
}

/// The presets to run: all, or the comma-separated names in `MESHROOM_HW_BOARDS` (the arm64 run
/// under qemu-user takes one to stay short).
fn boards() -> Vec<&'static BoardPreset> {
    match std::env::var("MESHROOM_HW_BOARDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|n| {
                sx126x::presets::board_preset(n.trim()).expect("MESHROOM_HW_BOARDS: a preset name")
            })
            .collect(),
        _ => BOARDS.iter().collect(),
    }
}

/// The region each board's chip can use (the SX1268 board is a 433 MHz one).
fn region_for(b: &BoardPreset) -> &'static str {
    match b.chip {
        sx126x::ChipVariant::Sx1268 => "eu-433-narrow",
        _ => "usa-canada",
    }
}

/// The `radio:` section for a board, with extra keys (indented two spaces).
fn radio_section(b: &BoardPreset, extra: &str) -> String {
    format!(
        "radio:\n  backend: sx126x\n  board: {}\n  region: {}\n{extra}",
        b.name,
        region_for(b)
    )
}

/// Environment that turns the fake on for a board.
fn fake_env(b: &BoardPreset, trace: &Path, more: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("LD_PRELOAD".into(), fake_lib().display().to_string()),
        ("MESHROOM_FAKE_BOARD".into(), b.name.to_string()),
        ("MESHROOM_FAKE_TRACE".into(), trace.display().to_string()),
    ];
    env.extend(more.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

struct ProbeRun {
    ok: bool,
    out: String,
    trace: String,
}

/// `meshroom-gw radio probe` on a board through the fake.
fn probe(b: &BoardPreset, radio_extra: &str, env_extra: &[(&str, String)]) -> ProbeRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("config.yaml");
    let yaml = format!(
        "server:\n  name: \"hw\"\n  state_dir: \"{}\"\nrooms:\n  - name: \"Public\"\ntun:\n  enabled: off\n{}",
        dir.path().join("state").display(),
        radio_section(b, radio_extra)
    );
    std::fs::write(&cfg, yaml).expect("write config");
    let trace = dir.path().join("trace");
    let out = Command::new(binary())
        .args(["radio", "probe", "--config"])
        .arg(&cfg)
        .envs(fake_env(b, &trace, env_extra))
        .stdin(Stdio::null())
        .output()
        .expect("run radio probe");
    ProbeRun {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        trace: std::fs::read_to_string(&trace).unwrap_or_default(),
    }
}

#[test]
fn every_board_preset_passes_radio_probe_through_the_kernel_interface() {
    for b in boards() {
        let r = probe(b, "", &[]);
        assert!(
            r.ok,
            "{}: probe failed:\n{}\ntrace:\n{}",
            b.name, r.out, r.trace
        );
        assert!(r.out.contains("radio OK"), "{}: {}", b.name, r.out);
        // The lines were requested the way the board needs them: NRESET an output driven high,
        // BUSY an input, DIO1 an input with rising-edge detection (uAPI v2 flags).
        let flags = |line: u32, want: &str| {
            let needle = format!("{line}:");
            assert!(
                r.trace.lines().any(|l| l.contains("request lines")
                    && l.contains(&format!("\"{needle}"))
                    && l.contains(want)),
                "{}: line {line} not requested with {want}:\n{}",
                b.name,
                r.trace
            );
        };
        flags(b.reset_pin, "NRESET:0x8\"");
        flags(b.busy_pin, "BUSY:0x4\"");
        flags(b.dio1_pin, "DIO1:0x14\"");
        if let Some(cs) = b.cs_pin {
            flags(cs, "NSS:0x8\"");
        }
        // DIO1 reached the binary as an edge event read from the line request.
        assert!(
            r.out
                .contains("DIO1 rose on the chip's RX timeout interrupt"),
            "{}: {}",
            b.name,
            r.out
        );
        assert!(
            r.trace.contains("DIO1 rise (module)"),
            "{}: {}",
            b.name,
            r.trace
        );
        eprintln!("{}: radio probe OK through spidev + GPIO cdev", b.name);
    }
}

fn board(name: &str) -> &'static BoardPreset {
    sx126x::presets::board_preset(name).expect("preset")
}

#[test]
fn wiring_mistakes_are_diagnosed_in_plain_words() {
    struct Mistake {
        what: &'static str,
        board: &'static str,
        radio: &'static str,
        env: Vec<(&'static str, String)>,
        words: &'static [&'static str],
    }
    let cases = vec![
        Mistake {
            what: "BUSY on the wrong pin (one pulled down)",
            board: "meshadv-mini",
            radio: "  busy_pin: 21\n",
            env: vec![],
            words: &[
                "BUSY read low while NRESET held the chip in reset",
                "check the BUSY pin number",
            ],
        },
        Mistake {
            what: "BUSY on the wrong pin (one pulled up)",
            board: "meshadv-mini",
            radio: "  busy_pin: 4\n",
            env: vec![],
            words: &["BUSY never went low", "check the BUSY pin number"],
        },
        Mistake {
            what: "DIO1 on the wrong pin",
            board: "meshadv-mini",
            radio: "  dio1_pin: 26\n",
            env: vec![],
            words: &["DIO1 did not rise", "DIO1 is not on the configured pin"],
        },
        Mistake {
            what: "NRESET on the wrong pin",
            board: "meshadv-mini",
            radio: "  reset_pin: 23\n",
            env: vec![],
            words: &["the chip was not reset", "check the NRESET pin number"],
        },
        Mistake {
            what: "the wrong spidev (CE1 instead of CE0)",
            board: "meshadv-mini",
            radio: "  spidev: /dev/spidev0.1\n",
            env: vec![],
            words: &["nothing answers on MISO", "check the SPI device"],
        },
        Mistake {
            what: "a spidev that does not exist (SPI not enabled)",
            board: "meshadv-mini",
            radio: "  spidev: /dev/spidev1.0\n",
            env: vec![],
            words: &["dtparam=spi=on"],
        },
        Mistake {
            what: "a HAT's enable pin not held high",
            board: "pimesh-1w-v2",
            radio: "  hold_high_pins: []\n",
            env: vec![],
            words: &[
                "BUSY never went low",
                "enable pin held high",
                "hold_high_pins",
            ],
        },
        Mistake {
            what: "a TCXO module configured as a crystal board",
            board: "meshadv-mini",
            radio: "  tcxo_volts: 0\n",
            env: vec![],
            words: &["the module seems to have a TCXO", "set the TCXO voltage"],
        },
        Mistake {
            what: "a manual-NSS HAT configured with the kernel's chip select",
            board: "waveshare-sx1262",
            radio: "  cs_pin: -1\n",
            env: vec![],
            words: &["nothing answers on MISO", "manual NSS pin?"],
        },
        Mistake {
            what: "NSS set to the SPI controller's CE0 line",
            board: "waveshare-sx1262",
            radio: "  cs_pin: 8\n",
            env: vec![],
            words: &[
                "Device or resource busy",
                "already in use (by the SPI controller as a chip select",
            ],
        },
        Mistake {
            what: "the Raspberry Pi 5's old gpiochip number",
            board: "meshadv-mini",
            radio: "  gpiochip: /dev/gpiochip4\n",
            env: vec![],
            words: &["no such GPIO chip", "Raspberry Pi 5"],
        },
        Mistake {
            what: "a user not in group spi",
            board: "meshadv-mini",
            radio: "",
            env: vec![("MESHROOM_FAKE_DENY", "spi".to_string())],
            words: &["Permission denied", "group spi"],
        },
    ];
    for m in &cases {
        let r = probe(board(m.board), m.radio, &m.env);
        assert!(!r.ok, "{}: probe passed:\n{}", m.what, r.out);
        assert!(r.out.contains("radio NOT OK"), "{}: {}", m.what, r.out);
        for w in m.words {
            assert!(
                r.out.contains(w),
                "{}: no `{w}` in the diagnosis:\n{}",
                m.what,
                r.out
            );
        }
        let diagnosis: Vec<&str> = r.out.lines().filter(|l| l.contains('→')).collect();
        eprintln!("{}:\n  {}", m.what, diagnosis.join("\n  "));
    }
}

// ------------------------------------------------------------------------ gateway + clients

fn gateway_body(b: &BoardPreset, advert_interval_s: f64) -> String {
    format!(
        r#"rooms:
  - name: "Public"
{}meshcore:
  advert_interval_s: {advert_interval_s}
  first_advert_delay_s: 0.2
  push_min_age_s: 0.0
  push_interval_s: 0.5
  reply_delay_s: 0.1
"#,
        radio_section(b, "")
    )
}

/// A gateway process with the fake preloaded and the chip on `air`.
fn start_gateway(
    b: &BoardPreset,
    air: &Path,
    advert_interval_s: f64,
) -> (Gateway, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("gateway dir");
    let trace = tmp.path().join("trace");
    let env = fake_env(
        b,
        &trace,
        &[("MESHROOM_FAKE_AIR", air.display().to_string())],
    );
    // The testkit runs `<prefix…> <debug binary> run --config …`. This prefix is
    // `sh -c 'shift; exec env K=V… BINARY "$@"' sh`: it drops the debug binary's path ($1) and
    // execs the binary under test (same pid) with the fake's environment.
    let mut words: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    words.push(binary().display().to_string());
    let script = format!(
        "exec env {} \"$@\"",
        words
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let prefix = ["sh", "-c", &format!("shift; {script}"), "sh"];
    let mut gw = Gateway::configure(
        &format!("hw-{}", b.name),
        tmp.path(),
        crate::common::free_port(),
        &gateway_body(b, advert_interval_s),
        &prefix,
    );
    gw.spawn();
    (gw, tmp)
}

fn trace_of(gw_dir: &Path) -> String {
    std::fs::read_to_string(gw_dir.join("trace")).unwrap_or_default()
}

struct Client {
    name: String,
    state: PathBuf,
    gw_config: PathBuf,
    air: PathBuf,
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
        let mut c = Command::new(binary());
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
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().expect("run client");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn listen(&self, room: &str, secs: u32) -> Listener {
        let secs = secs.to_string();
        let mut child = self
            .command(&["listen", "--room", room, "--for", &secs])
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
    fn wait_for(&mut self, what: &str, timeout: Duration, f: impl Fn(&str) -> bool) {
        if self.lines.iter().any(|l| f(l)) {
            return;
        }
        let deadline = Instant::now() + timeout;
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
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gateway at a time: each runs emulated radios in real time, and a loaded machine running
/// several side by side starves them.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_gateway_on_every_board_preset_serves_clients_through_the_kernel_interface() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for b in boards() {
        let started = Instant::now();
        let air = tempfile::tempdir().expect("air dir");
        let (gw, _dir) = start_gateway(b, air.path(), 8.0);
        gw.wait_for_log("radio: ", Duration::from_secs(30));
        let alice = Client::new(&gw, air.path(), "alice");
        let bob = Client::new(&gw, air.path(), "bob");
        let mut listen = bob.listen("Public", 150);
        listen.wait_for(
            &format!("{}: bob listening", b.name),
            Duration::from_secs(60),
            |l| l == "listening",
        );
        let (ok, out) = alice.run(&[
            "login",
            "--room",
            "Public",
            "--password",
            "pw",
            "--timeout",
            "30",
        ]);
        assert!(ok, "{}: alice login: {out}\n{}", b.name, gw.log());
        let (ok, out) = alice.run(&[
            "post",
            "--room",
            "Public",
            "--timeout",
            "60",
            "hello over spidev",
        ]);
        assert!(ok, "{}: alice post: {out}", b.name);
        assert!(out.contains("acked by Public"), "{}: {out}", b.name);
        listen.wait_for(
            &format!("{}: alice's post pushed to bob", b.name),
            Duration::from_secs(60),
            |l| l.starts_with("[Public]") && l.ends_with("hello over spidev"),
        );
        gw.post("Public", "carol", "from the host");
        listen.wait_for(
            &format!("{}: host post pushed to bob", b.name),
            Duration::from_secs(60),
            |l| l.starts_with("[Public]") && l.ends_with("carol: from the host"),
        );
        let s = gw.status();
        assert!(
            s["meshcore"]["counters"]["posts_acked"]
                .as_u64()
                .unwrap_or(0)
                >= 1,
            "{}: {s}",
            b.name
        );
        let trace = trace_of(&gw.dir);
        let rises = trace.matches("DIO1 rise (module)").count();
        let frames = trace.lines().filter(|l| l.contains(" spi ")).count();
        assert!(rises > 0, "{}: no DIO1 edge in the trace", b.name);
        eprintln!(
            "{}: login, post + ACK, two pushes through spidev/GPIO in {:.1} s ({frames} SPI transfers, {rises} DIO1 edges)",
            b.name,
            started.elapsed().as_secs_f64()
        );
    }
}

/// Opcode histogram of the SPI transfers in a trace's lines.
fn opcodes<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut h = BTreeMap::new();
    for l in lines {
        let mut it = l.split_whitespace();
        if it.nth(1) != Some("spi") {
            continue;
        }
        // "<t> spi <dev> tx <opcode> …"
        if let Some(op) = it.nth(2) {
            *h.entry(op.to_string()).or_insert(0) += 1;
        }
    }
    h
}

#[test]
fn idle_spi_traffic_is_counted_by_the_harness() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let b = board("meshadv-mini");
    let air = tempfile::tempdir().expect("air dir");
    // One advert right after start, then none for an hour: what follows is idle.
    let (gw, _dir) = start_gateway(b, air.path(), 3600.0);
    // The first advert went out (SetTx, then its TX-done edge) and the radio is receiving again.
    assert!(
        wait_until(Duration::from_secs(30), || {
            let t = trace_of(&gw.dir);
            let tx = t.find(" tx 83 ");
            tx.is_some_and(|i| t[i..].contains(" tx 82 "))
        }),
        "no advert sent:\n{}",
        trace_of(&gw.dir)
    );
    let before = trace_of(&gw.dir).lines().count();
    let start = Instant::now();
    // The window: until the radio thread has run two health checks (GetStatus) — at least one
    // whole health interval, however long that takes on this machine.
    assert!(
        wait_until(Duration::from_secs(120), || {
            let t = trace_of(&gw.dir);
            t.lines()
                .skip(before)
                .filter(|l| l.contains(" tx C0 "))
                .count()
                >= 2
        }),
        "no periodic health check seen:\n{}",
        trace_of(&gw.dir)
    );
    let window = start.elapsed();
    let trace = trace_of(&gw.dir);
    let idle: Vec<&str> = trace.lines().skip(before).collect();
    let hist = opcodes(idle.iter().copied());
    let total: u64 = hist.values().sum();
    eprintln!(
        "idle: {total} SPI transfers in {:.2} s ({:.1}/s): {hist:?} (12 = GetIrqStatus, C0 = GetStatus, 17 = GetDeviceErrors)",
        window.as_secs_f64(),
        total as f64 / window.as_secs_f64()
    );
    // At idle the binary only reads: the health check (GetStatus, GetDeviceErrors) and, on a
    // radio thread that polls, GetIrqStatus. Nothing reconfigures or restarts the chip.
    for op in hist.keys() {
        assert!(
            ["C0", "17", "12"].contains(&op.as_str()),
            "unexpected command 0x{op} at idle: {hist:?}"
        );
    }
}
