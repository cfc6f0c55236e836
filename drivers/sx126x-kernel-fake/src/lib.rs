//! An `LD_PRELOAD` library that puts an emulated SX126x HAT under an unmodified `meshroom-gw`
//! binary at the kernel interface: `open` of `/dev/spidevB.C` and `/dev/gpiochipN`, the spidev
//! and GPIO character-device (uAPI v2) ioctls, and the edge events read and polled from a line
//! request's file descriptor.
//!
//! The binary's crates (`spidev`, `gpiocdev`) call libc's `open64`, `ioctl`, `close` and
//! `realpath`; this library defines those symbols, answers for the configured device paths and
//! forwards everything else to libc (found with `dlsym(RTLD_NEXT)`). Fake descriptors are real
//! descriptors — a memfd for the device files, one end of a `SOCK_SEQPACKET` pair for each line
//! request — so `poll`, `epoll` and `read` work on them natively: a DIO1 edge is a
//! `struct gpio_v2_line_event` written into the other end.
//!
//! Without `MESHROOM_FAKE_BOARD` in the environment every call is forwarded untouched. The
//! variables are listed in [`board`].

pub mod board;
pub mod kernel;
pub mod uapi;

use board::BoardConfig;
use kernel::{FdKind, Kernel};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use sx126x::BoardLines;

/// Descriptors above this are never made fake (the bitmap below stays small and lock-free).
const MAX_FAKE_FD: usize = 65536;
static FAKE_FDS: [AtomicU64; MAX_FAKE_FD / 64] = [const { AtomicU64::new(0) }; MAX_FAKE_FD / 64];

/// Marks or unmarks a descriptor as fake; `false` when it is out of the bitmap's range.
pub(crate) fn mark_fake(fd: c_int, on: bool) -> bool {
    let Ok(i) = usize::try_from(fd) else {
        return false;
    };
    if i >= MAX_FAKE_FD {
        return false;
    }
    let bit = 1u64 << (i % 64);
    if on {
        FAKE_FDS[i / 64].fetch_or(bit, Ordering::SeqCst);
    } else {
        FAKE_FDS[i / 64].fetch_and(!bit, Ordering::SeqCst);
    }
    true
}

fn is_fake(fd: c_int) -> bool {
    usize::try_from(fd)
        .ok()
        .filter(|&i| i < MAX_FAKE_FD)
        .is_some_and(|i| FAKE_FDS[i / 64].load(Ordering::SeqCst) & (1u64 << (i % 64)) != 0)
}

thread_local! {
    /// Set while this thread is inside the fake: its own opens, closes and ioctls go to libc.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

fn inside() -> bool {
    // A thread being torn down has no thread-locals left: let libc have its calls.
    INSIDE.try_with(Cell::get).unwrap_or(true)
}

static CONFIG: OnceLock<Option<BoardConfig>> = OnceLock::new();

fn config() -> Option<&'static BoardConfig> {
    CONFIG
        .get_or_init(|| match BoardConfig::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("sx126x-kernel-fake: {e}; the fake is off");
                None
            }
        })
        .as_ref()
}

static KERNEL: Mutex<Option<Kernel>> = Mutex::new(None);

/// Runs `f` on the fake kernel (created on first use, with its DIO1 watcher thread), with this
/// thread marked as inside. `None` when the fake is off or could not start.
fn with_kernel<R>(f: impl FnOnce(&mut Kernel) -> R) -> Option<R> {
    let cfg = config()?;
    let _ = INSIDE.try_with(|c| c.set(true));
    let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            match Kernel::new(cfg.clone()) {
                Ok(k) => {
                    let lines = k.watch_lines();
                    *guard = Some(k);
                    let spawned = std::thread::Builder::new()
                        .name("fake-dio1".into())
                        .spawn(move || watch_dio1(lines));
                    if let Err(e) = spawned {
                        eprintln!("sx126x-kernel-fake: no DIO1 watcher thread: {e}");
                    }
                }
                Err(e) => {
                    eprintln!("sx126x-kernel-fake: {e}");
                    return None;
                }
            }
        }
        guard.as_mut().map(f)
    }));
    let _ = INSIDE.try_with(|c| c.set(false));
    match out {
        Ok(r) => r,
        Err(_) => {
            eprintln!("sx126x-kernel-fake: internal panic");
            None
        }
    }
}

/// Turns the chip's DIO1 rises into edge events between SPI transfers (while the binary
/// sleeps in `poll`).
fn watch_dio1(mut lines: sx126x::emu::EmuLines) {
    loop {
        if with_kernel(|k| k.sync_dio1()).is_none() {
            return;
        }
        let _ = lines.wait_dio1_rising(Kernel::WATCH_SLICE);
    }
}

/// The fake's counters (for a harness that loads this library in its own process).
pub fn stats() -> Option<kernel::Stats> {
    let guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_ref().map(|k| k.stats.clone())
}

fn set_errno(e: c_int) {
    // SAFETY: errno is thread-local and always valid.
    unsafe { *libc::__errno_location() = e };
}

/// Looks up libc's definition of a symbol we shadow.
fn next_symbol(cache: &OnceLock<usize>, name: &CStr) -> usize {
    *cache.get_or_init(|| {
        // SAFETY: dlsym with a NUL-terminated name.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) as usize }
    })
}

macro_rules! real {
    ($name:literal, $ty:ty) => {{
        static P: OnceLock<usize> = OnceLock::new();
        let p = next_symbol(&P, $name);
        if p == 0 {
            None
        } else {
            // SAFETY: the symbol libc exports under this name has this signature.
            Some(unsafe { std::mem::transmute::<usize, $ty>(p) })
        }
    }};
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, ...) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, ...) -> c_int;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type IoctlFn = unsafe extern "C" fn(c_int, c_ulong, ...) -> c_int;
type RealpathFn = unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut c_char;

/// Which fake device a path names, if any.
enum Target {
    Spi(String),
    Chip,
    Absent,
}

fn target(cfg: &BoardConfig, path: &str) -> Option<Target> {
    if cfg.spidevs.iter().any(|p| p == path) {
        Some(Target::Spi(path.to_string()))
    } else if path == cfg.gpiochip {
        Some(Target::Chip)
    } else if path.starts_with("/dev/spidev") || path.starts_with("/dev/gpiochip") {
        // The emulated board has no other SPI or GPIO devices (a real one on the test machine
        // must not be touched).
        Some(Target::Absent)
    } else {
        None
    }
}

/// `Some(result)` when `path` is one of the fake's; `None` to let libc open it.
unsafe fn fake_open(path: *const c_char, flags: c_int) -> Option<c_int> {
    if inside() || path.is_null() {
        return None;
    }
    let cfg = config()?;
    let p = CStr::from_ptr(path).to_str().ok()?;
    let t = target(cfg, p)?;
    let kind = match t {
        Target::Absent => {
            set_errno(libc::ENOENT);
            return Some(-1);
        }
        Target::Spi(dev) => {
            if cfg.deny.iter().any(|d| d == "spi") {
                set_errno(libc::EACCES);
                return Some(-1);
            }
            FdKind::Spi(dev)
        }
        Target::Chip => {
            if cfg.deny.iter().any(|d| d == "gpio") {
                set_errno(libc::EACCES);
                return Some(-1);
            }
            FdKind::Chip
        }
    };
    let mfd_flags = if flags & libc::O_CLOEXEC != 0 {
        libc::MFD_CLOEXEC
    } else {
        0
    };
    let r = with_kernel(|k| {
        let fd = libc::memfd_create(c"meshroom-fake-dev".as_ptr(), mfd_flags);
        if fd < 0 {
            return Err(*libc::__errno_location());
        }
        if !mark_fake(fd, true) {
            libc::close(fd);
            return Err(libc::EMFILE);
        }
        k.register(fd, kind);
        Ok(fd)
    });
    match r {
        Some(Ok(fd)) => Some(fd),
        Some(Err(e)) => {
            set_errno(e);
            Some(-1)
        }
        None => {
            set_errno(libc::ENODEV);
            Some(-1)
        }
    }
}

/// # Safety
/// libc's `open`.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = fake_open(path, flags) {
        return r;
    }
    match real!(c"open", OpenFn) {
        Some(f) => f(path, flags, mode),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// # Safety
/// libc's `open64`.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    if let Some(r) = fake_open(path, flags) {
        return r;
    }
    match real!(c"open64", OpenFn) {
        Some(f) => f(path, flags, mode),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// Absolute paths only: a relative path through a directory descriptor never names a device.
unsafe fn fake_openat(path: *const c_char, flags: c_int) -> Option<c_int> {
    if path.is_null() || *path != b'/' as c_char {
        return None;
    }
    fake_open(path, flags)
}

/// # Safety
/// libc's `openat`.
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    if let Some(r) = fake_openat(path, flags) {
        return r;
    }
    match real!(c"openat", OpenatFn) {
        Some(f) => f(dirfd, path, flags, mode),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// # Safety
/// libc's `openat64`.
#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    if let Some(r) = fake_openat(path, flags) {
        return r;
    }
    match real!(c"openat64", OpenatFn) {
        Some(f) => f(dirfd, path, flags, mode),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// # Safety
/// libc's `close`.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    let real = real!(c"close", CloseFn);
    if is_fake(fd) && !inside() {
        // Release, unmark and close under the kernel lock, so the number is not reused by a
        // concurrent fake open before it is unmarked.
        if let Some(r) = with_kernel(|k| {
            k.release(fd);
            mark_fake(fd, false);
            real.map(|f| f(fd))
        }) {
            return r.unwrap_or(-1);
        }
    }
    match real {
        Some(f) => f(fd),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// # Safety
/// libc's `ioctl` (the third argument is the only one any request takes).
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, request: c_ulong, arg: *mut c_void) -> c_int {
    if is_fake(fd) && !inside() {
        // c_ulong is u64 on the 64-bit targets and u32 on 32-bit ARM.
        #[allow(clippy::useless_conversion)]
        let cmd = u64::from(request);
        match with_kernel(|k| k.ioctl(fd, cmd, arg)) {
            Some(Ok(v)) => return v,
            Some(Err(e)) => {
                set_errno(e);
                return -1;
            }
            None => {}
        }
    }
    match real!(c"ioctl", IoctlFn) {
        Some(f) => f(fd, request, arg),
        None => {
            set_errno(libc::ENOSYS);
            -1
        }
    }
}

/// # Safety
/// libc's `realpath`. The fake device paths are their own canonical names (gpiocdev
/// canonicalises the chip path before opening it).
#[no_mangle]
pub unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    if !inside() && !path.is_null() {
        if let (Some(cfg), Ok(p)) = (config(), CStr::from_ptr(path).to_str()) {
            if matches!(target(cfg, p), Some(Target::Spi(_) | Target::Chip)) {
                let bytes = CStr::from_ptr(path).to_bytes_with_nul();
                let out = if resolved.is_null() {
                    libc::malloc(bytes.len()) as *mut c_char
                } else {
                    resolved
                };
                if out.is_null() {
                    set_errno(libc::ENOMEM);
                    return out;
                }
                std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, out, bytes.len());
                return out;
            }
        }
    }
    match real!(c"realpath", RealpathFn) {
        Some(f) => f(path, resolved),
        None => {
            set_errno(libc::ENOSYS);
            std::ptr::null_mut()
        }
    }
}
