//! Service-manager notifications (`sd_notify`) for a `Type=notify` unit.
//!
//! systemd only counts the service as started once `READY=1` arrives, so `systemctl start` and
//! units ordered after ours wait until HTTP really listens. Around a SIGHUP reload the gateway sends
//! `RELOADING=1` … `READY=1` so `systemctl reload` returns when the new configuration is applied,
//! and `STOPPING=1` on the way out. Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use sd_notify::NotifyState;

/// The gateway is serving: HTTP listens and every side has started.
pub fn ready(status: &str) {
    send(
        "READY=1",
        &[NotifyState::Ready, NotifyState::Status(status)],
    );
}

/// A SIGHUP reload begins; must be followed by [`reloaded`].
pub fn reloading() {
    // systemd ≥ 253 matches RELOADING=1 to the reload it asked for by MONOTONIC_USEC; older
    // versions ignore the field.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING=1", &[NotifyState::Reloading, now]),
        Err(_) => send("RELOADING=1", &[NotifyState::Reloading]),
    }
}

/// A reload has finished, successfully or not: the gateway is serving again. `status` says which
/// configuration runs (shown by `systemctl status`).
pub fn reloaded(status: &str) {
    send(
        "READY=1",
        &[NotifyState::Ready, NotifyState::Status(status)],
    );
}

/// The gateway is shutting down.
pub fn stopping() {
    send(
        "STOPPING=1",
        &[NotifyState::Stopping, NotifyState::Status("stopping")],
    );
}

fn send(what: &str, states: &[NotifyState<'_>]) {
    // A lost notification costs a start timeout at worst; it is never a reason to stop serving.
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("cannot notify the service manager ({what}): {e}");
    }
}
