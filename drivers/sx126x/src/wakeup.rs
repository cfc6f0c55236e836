//! [`Wakeup`]: a way to end a radio thread's wait from another thread (a frame was queued to send,
//! the gateway is stopping), so the thread can sleep on DIO1 without waking up periodically.
//!
//! On Linux the wake-up is an `eventfd` that the hardware back-end polls together with the DIO1
//! line request ([`crate::BoardLines::wait_dio1_or_wakeup`]); the emulator is told through a hook
//! that notifies its clock's condition variable. [`Wakeup::wait`] sleeps on the wake-up alone
//! (retry backoffs).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Called by [`Wakeup::wake`] after the wake-up is pending (the emulator notifies its waiters).
pub(crate) type WakeHook = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Pending {
    set: bool,
    hook: Option<WakeHook>,
}

struct Inner {
    pending: Mutex<Pending>,
    cond: Condvar,
    #[cfg(target_os = "linux")]
    fd: Option<std::os::fd::OwnedFd>,
}

/// A wake-up signal for one waiting thread. Cheap to clone; every clone signals the same waiter.
///
/// [`Wakeup::wake`] leaves the wake-up *pending* until a wait returns because of it (or
/// [`Wakeup::take`] clears it), so a wake that happens just before the wait starts is never lost.
#[derive(Clone)]
pub struct Wakeup {
    inner: Arc<Inner>,
}

impl Default for Wakeup {
    fn default() -> Self {
        Wakeup::new()
    }
}

impl std::fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeup")
            .field("pending", &self.is_pending())
            .finish()
    }
}

impl Wakeup {
    /// A new wake-up, not pending. On Linux it owns an eventfd; if the process is out of file
    /// descriptors, the hardware back-end falls back to waiting in short slices.
    pub fn new() -> Self {
        Wakeup {
            inner: Arc::new(Inner {
                pending: Mutex::new(Pending::default()),
                cond: Condvar::new(),
                #[cfg(target_os = "linux")]
                fd: eventfd(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, Pending> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the current (or the next) wait of the thread that owns this wake-up.
    pub fn wake(&self) {
        let hook = {
            let mut p = self.state();
            p.set = true;
            // Under the lock, so the eventfd is readable exactly while `set` is true.
            self.signal_fd();
            p.hook.clone()
        };
        self.inner.cond.notify_all();
        if let Some(hook) = hook {
            hook();
        }
    }

    #[cfg(target_os = "linux")]
    fn signal_fd(&self) {
        if let Some(fd) = &self.inner.fd {
            use std::os::fd::AsRawFd;
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. A full counter
            // (EAGAIN) still leaves the fd readable, which is all a waiter needs.
            let _ = unsafe {
                libc::write(
                    fd.as_raw_fd(),
                    std::ptr::from_ref(&one).cast::<libc::c_void>(),
                    8,
                )
            };
        }
    }

    #[cfg(target_os = "linux")]
    fn drain_fd(&self) {
        if let Some(fd) = &self.inner.fd {
            use std::os::fd::AsRawFd;
            let mut counter: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd we own; EAGAIN
            // (nothing to drain) is fine.
            let _ = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    std::ptr::from_mut(&mut counter).cast::<libc::c_void>(),
                    8,
                )
            };
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn signal_fd(&self) {}

    #[cfg(not(target_os = "linux"))]
    fn drain_fd(&self) {}

    /// Whether a wake-up is pending (does not clear it).
    pub fn is_pending(&self) -> bool {
        self.state().set
    }

    /// Clears a pending wake-up; `true` if there was one.
    pub fn take(&self) -> bool {
        let mut p = self.state();
        self.drain_fd();
        std::mem::take(&mut p.set)
    }

    /// Sleeps until woken (`true`, the wake-up is consumed) or until `timeout` passes (`false`).
    pub fn wait(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut p = self.state();
        loop {
            if p.set {
                self.drain_fd();
                p.set = false;
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            p = self
                .inner
                .cond
                .wait_timeout(p, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
        }
    }

    /// The eventfd a Linux back-end polls (readable while a wake-up is pending), if there is one.
    #[cfg(target_os = "linux")]
    pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.inner.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Installs the hook [`Wakeup::wake`] calls (the emulator's way to wake its clock's waiters).
    /// It runs on the waking thread, after the wake-up is pending and with no lock of ours held.
    pub(crate) fn set_hook(&self, hook: WakeHook) {
        let mut p = self.state();
        if !p.hook.as_ref().is_some_and(|h| Arc::ptr_eq(h, &hook)) {
            p.hook = Some(hook);
        }
    }
}

#[cfg(target_os = "linux")]
fn eventfd() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: eventfd(2) with constant flags; a non-negative result is a new fd we then own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "no eventfd for the radio wake-up; waiting in short slices instead"
        );
        return None;
    }
    // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wake_before_the_wait_is_not_lost_and_is_consumed_once() {
        let w = Wakeup::new();
        assert!(!w.wait(Duration::from_millis(1)));
        w.clone().wake();
        assert!(w.is_pending());
        assert!(w.wait(Duration::from_secs(5)));
        assert!(!w.is_pending());
        assert!(!w.take());
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_at_once() {
        let w = Wakeup::new();
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            w2.wake();
        });
        let start = Instant::now();
        assert!(w.wait(Duration::from_secs(10)));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().expect("waker");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_eventfd_is_readable_exactly_while_a_wake_is_pending() {
        use std::os::fd::AsRawFd;
        let w = Wakeup::new();
        let readable = |w: &Wakeup| {
            let fd = w.fd().expect("eventfd").as_raw_fd();
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, zero timeout.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable(&w));
        w.wake();
        w.wake();
        assert!(readable(&w));
        assert!(w.take());
        assert!(!readable(&w));
    }
}
