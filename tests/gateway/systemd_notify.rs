//! The gateway under a `Type=notify` unit: systemd learns that it is ready only once HTTP listens,
//! follows a `systemctl reload` (SIGHUP) from RELOADING=1 to READY=1 — also when the new file is
//! broken — and hears STOPPING=1 on SIGTERM. The test plays systemd: it owns the NOTIFY_SOCKET.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const WAIT: Duration = Duration::from_secs(30);

fn config(state_dir: &Path, port: u16, room: &str) -> String {
    format!(
        "server:\n  name: notify-test\n  state_dir: \"{}\"\nhttp:\n  listen: \"127.0.0.1:{port}\"\n\
         rooms:\n  - name: \"{room}\"\n    psk: \"\"\nradio:\n  backend: none\ntun:\n  enabled: off\n",
        state_dir.display()
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Collects notification datagrams until one contains `wanted`; returns everything received.
fn wait_for(sock: &UnixDatagram, gateway: &mut Child, wanted: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l == wanted);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                if let Ok(Some(status)) = gateway.try_wait() {
                    panic!("gateway exited ({status}) before sending {wanted}; got {seen:?}");
                }
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {wanted} within {WAIT:?}; got {seen:?}");
}

#[test]
fn readiness_reload_and_stop_are_reported_to_systemd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = free_port();
    let config_path = dir.path().join("config.yaml");
    let state = dir.path().join("state");
    std::fs::write(&config_path, config(&state, port, "Lobby")).expect("write config");

    let mut gateway = Command::new(env!("CARGO_BIN_EXE_meshroom-gw"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("MESHROOM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start meshroom-gw");
    let pid = Pid::from_raw(i32::try_from(gateway.id()).expect("pid"));

    let ready = wait_for(&sock, &mut gateway, "READY=1");
    let last = ready.last().cloned().unwrap_or_default();
    assert!(last.contains("STATUS=serving 1 rooms"), "{last:?}");
    // READY=1 means "clients can connect now": HTTP must already accept.
    TcpStream::connect(("127.0.0.1", port)).expect("HTTP listens once READY=1 was sent");

    // systemctl reload: RELOADING=1 first, READY=1 once the file is applied.
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let reload = wait_for(&sock, &mut gateway, "READY=1");
    let all = reload.join("");
    let reloading_at = all.find("RELOADING=1").expect("RELOADING=1 before READY=1");
    assert!(reloading_at < all.rfind("READY=1").unwrap_or(0), "{all:?}");
    assert!(all.contains("MONOTONIC_USEC="), "{all:?}");
    assert!(all.contains("STATUS=reloaded"), "{all:?}");

    // A broken file on reload: the service must still become READY (or systemctl reload would
    // hang until its timeout), and its status says the old configuration keeps running.
    std::fs::write(&config_path, "rooms: [\n").expect("break config");
    kill(pid, Signal::SIGHUP).expect("SIGHUP");
    let failed = wait_for(&sock, &mut gateway, "READY=1").join("");
    assert!(failed.contains("RELOADING=1"), "{failed:?}");
    assert!(failed.contains("STATUS=reload failed"), "{failed:?}");

    kill(pid, Signal::SIGTERM).expect("SIGTERM");
    wait_for(&sock, &mut gateway, "STOPPING=1");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = gateway.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut err) = gateway.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    assert!(status.success(), "exit {status}; stderr: {stderr}");
}
