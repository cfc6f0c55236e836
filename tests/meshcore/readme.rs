//! The README's MeshCore client demo, run verbatim: the block under "A demo on one machine" is
//! taken from README.md as it is and run by `sh` with real processes (the gateway on its
//! embedded default configuration and simulated radio, `meshroom-gw client` companions on the
//! same air). The demo uses fixed places (HTTP on 127.0.0.1:7070, the air in /tmp/meshroom-air,
//! state under $HOME), so it runs in namespaces of its own: a network namespace (its own
//! loopback), a mount namespace with a private /tmp, and a PID namespace so every process it
//! started ends with it. That needs root; without it the test says so and passes (CI runs as
//! root).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshroom-gw");

/// The shell lines of the README's demo block.
fn demo_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("A demo on one machine")
        .expect("the README has the demo");
    let rest = &readme[start..];
    let open = rest.find("```\n").expect("demo block opens") + 4;
    let close = rest[open..].find("```").expect("demo block closes");
    rest[open..open + close].to_string()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn the_readme_client_demo_runs_as_written() {
    if !is_root() {
        eprintln!("SKIPPED: the README demo needs root for its own network/mount/PID namespaces");
        return;
    }
    if Path::new("/etc/meshroom-gw/config.yaml").exists() {
        eprintln!(
            "SKIPPED: /etc/meshroom-gw/config.yaml exists; the demo expects the embedded default"
        );
        return;
    }
    let demo = demo_block();
    assert!(demo.contains("meshroom-gw client --name alice post --room Public"));
    let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
    let out_dir = tempfile::tempdir().unwrap();
    let log = out_dir.path().join("demo.log");
    // Set the scene (private /tmp, loopback up, a fresh HOME, the binary on PATH), run the
    // README's lines unchanged, then give bob's listener time to print (the test stops the
    // namespace as soon as it has what it waits for).
    let script = format!(
        "mount -t tmpfs none /tmp && ip link set lo up && mkdir -p /tmp/home && cd /tmp/home\n\
         export HOME=/tmp/home XDG_STATE_HOME=/tmp/home/.local/state PATH=\"{bin_dir}:$PATH\" MESHROOM_LOG=warn\n\
         unset MESHROOM_CONFIG MESHROOM_PSK\n\
         {demo}\n\
         echo DEMO-LINES-DONE\n\
         sleep 120\n"
    );
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("unshare");
    let deadline = Instant::now() + Duration::from_secs(100);
    let mut text = String::new();
    let done = loop {
        text.clear();
        std::fs::File::open(&log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        if text.contains("carol: hello from the host") {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "the demo did not get that far:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    // Both companions found the room: by name, or at least by its answer to their discovery
    // request (on a busy air its advert may still be on its way when --listen runs out).
    let found = lines
        .iter()
        .filter(|l| {
            l.starts_with("1 rooms known:")
                || (l.contains("(name not heard yet)") && l.contains("answered the discovery"))
        })
        .count();
    assert_eq!(found, 2, "{text}");
    // alice logged in first and her post was acknowledged.
    assert!(text.contains("logging in to Public first"), "{text}");
    assert!(text.contains("acked by Public"), "{text}");
    // bob printed both posts, in order, as the README shows them.
    let shape = |l: &&str, tail: &str| {
        let parts: Vec<&str> = l.splitn(4, ' ').collect();
        parts.len() == 4
            && parts[0] == "[Public]"
            && parts[1].parse::<u32>().is_ok()
            && parts[2].len() == 10
            && parts[2].starts_with('<')
            && parts[3] == tail
    };
    let air = lines
        .iter()
        .position(|l| shape(l, "hello from the air"))
        .unwrap_or_else(|| panic!("bob's line for alice's post:\n{text}"));
    let host = lines
        .iter()
        .position(|l| shape(l, "carol: hello from the host"))
        .unwrap_or_else(|| panic!("bob's line for carol's post:\n{text}"));
    assert!(air < host, "{text}");
}
