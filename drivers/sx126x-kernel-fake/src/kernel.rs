//! The fake kernel: the device files' state (spidev settings, GPIO lines and their requests), the
//! emulated chip behind them, and the board between the two (which line reaches which pin of the
//! chip, pulls on undriven lines, the module's enable lines, a GPIO chip select).
//!
//! Every ioctl answers the way the kernel's `spidev.c` and `gpiolib-cdev.c` answer it, errors
//! included; the comments name the kernel function each rule comes from.

use crate::board::{default_pull, BoardConfig, NUM_LINES};
use crate::uapi::*;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;
use sx126x::emu::{AirConfig, ChipId, ChipProfile, EmuLines, EmuSpi, World};
use sx126x::{BoardLines, SpiTransfer};

/// The SX126x's highest SPI clock (datasheet §8.1: 16 MHz).
const CHIP_MAX_SPI_HZ: u32 = 16_000_000;
/// Mode bits the BCM2835 SPI controller supports (`spi-bcm2835.c`: CPOL, CPHA, CS_HIGH, NO_CS).
const CONTROLLER_MODE_BITS: u32 = SPI_CPHA | SPI_CPOL | 0x04 | 0x40;
/// Bits the spi core drops with a warning rather than refusing (`spi_setup`).
const UGLY_MODE_BITS: u32 = SPI_TX_DUAL | SPI_TX_QUAD | SPI_RX_DUAL | SPI_RX_QUAD | 0x2000 | 0x4000;

/// What a fake file descriptor is.
#[derive(Debug, Clone, PartialEq)]
pub enum FdKind {
    Spi(String),
    Chip,
    Request,
}

struct SpiDev {
    mode: u32,
    bits: u8,
    speed_hz: u32,
}

#[derive(Default)]
struct Pin {
    /// The request fd holding the line.
    owner: Option<RawFd>,
    consumer: String,
    flags: u64,
    /// Physical level the host drives (outputs keep their level after release, as on a Pi).
    driven: Option<bool>,
    /// Held by a kernel driver (an SPI chip select).
    kernel: Option<String>,
}

struct Req {
    lines: Vec<u32>,
    flags: Vec<u64>,
    /// Our end of the socket pair; edge events are written here.
    writer: OwnedFd,
    seqno: u32,
    line_seqno: Vec<u32>,
}

/// Counters the harness reports (also visible in the trace).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub spi_messages: u64,
    /// Chip-select assertions that reached the chip, by first byte (opcode).
    pub chip_frames: BTreeMap<u8, u64>,
    pub frames_nobody_heard: u64,
    pub dio1_events: u64,
    pub events_dropped: u64,
}

pub struct Kernel {
    pub cfg: BoardConfig,
    world: World,
    chip: ChipId,
    spi: EmuSpi,
    lines: EmuLines,
    pub fds: HashMap<RawFd, FdKind>,
    spidevs: HashMap<String, SpiDev>,
    pins: Vec<Pin>,
    requests: HashMap<RawFd, Req>,
    powered: bool,
    nreset_seen: bool,
    txen_seen: bool,
    rxen_seen: bool,
    dio1_last: bool,
    pub stats: Stats,
    trace: Option<File>,
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 3);
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{x:02X}"));
    }
    s
}

/// The bit stream delayed by one bit: what a device sampling on the wrong clock edge sees.
fn shift_one_bit(b: &mut [u8]) {
    let mut carry = 0u8;
    for x in b.iter_mut() {
        let next = *x & 1;
        *x = (*x >> 1) | (carry << 7);
        carry = next;
    }
}

/// # Safety
/// `p` must point to readable memory holding a `T`.
unsafe fn read_arg<T: Copy>(p: *mut libc::c_void) -> Result<T, i32> {
    if p.is_null() {
        return Err(libc::EFAULT);
    }
    Ok(std::ptr::read_unaligned(p as *const T))
}

/// # Safety
/// `p` must point to writable memory for a `T`.
unsafe fn write_arg<T: Copy>(p: *mut libc::c_void, v: T) -> Result<(), i32> {
    if p.is_null() {
        return Err(libc::EFAULT);
    }
    std::ptr::write_unaligned(p as *mut T, v);
    Ok(())
}

impl Kernel {
    pub fn new(cfg: BoardConfig) -> Result<Kernel, String> {
        let seed = realtime_ns() ^ u64::from(std::process::id());
        let world = World::new_realtime(seed, AirConfig::default());
        let chip = world.add_chip(ChipProfile {
            variant: cfg.board.chip,
            tcxo: cfg.tcxo,
            external_pa_db: 0.0,
        });
        if let Some(dir) = &cfg.air_dir {
            let dir = std::path::Path::new(dir);
            std::fs::create_dir_all(dir).map_err(|e| format!("air dir {}: {e}", dir.display()))?;
            world
                .join_air_dir(dir)
                .map_err(|e| format!("join air dir {}: {e}", dir.display()))?;
        }
        let trace = match &cfg.trace {
            Some(p) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("trace {p}: {e}"))?,
            ),
            None => None,
        };
        let mut pins: Vec<Pin> = (0..NUM_LINES).map(|_| Pin::default()).collect();
        for (line, name) in cfg.kernel_lines() {
            pins[line as usize].kernel = Some(name);
        }
        let spidevs = cfg
            .spidevs
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    SpiDev {
                        mode: 0,
                        bits: 8,
                        speed_hz: 125_000_000,
                    },
                )
            })
            .collect();
        let mut k = Kernel {
            spi: world.spi(chip),
            lines: world.lines(chip),
            world,
            chip,
            cfg,
            fds: HashMap::new(),
            spidevs,
            pins,
            requests: HashMap::new(),
            powered: true,
            nreset_seen: true,
            txen_seen: false,
            rxen_seen: false,
            dio1_last: false,
            stats: Stats::default(),
            trace,
        };
        k.trace_line(&format!(
            "board {} chip {} tcxo {} on {}; NRESET {} BUSY {} DIO1 {}{}{}{}{}",
            k.cfg.board.name,
            k.cfg.board.chip.name(),
            k.cfg.tcxo,
            k.cfg.chip_spidev,
            k.cfg.wiring.reset,
            k.cfg.wiring.busy,
            k.cfg.wiring.dio1,
            k.cfg
                .wiring
                .nss
                .map(|p| format!(" NSS {p}"))
                .unwrap_or_default(),
            k.cfg
                .wiring
                .txen
                .map(|p| format!(" TXEN {p}"))
                .unwrap_or_default(),
            k.cfg
                .wiring
                .rxen
                .map(|p| format!(" RXEN {p}"))
                .unwrap_or_default(),
            if k.cfg.wiring.enable.is_empty() {
                String::new()
            } else {
                format!(" enable {:?}", k.cfg.wiring.enable)
            }
        ));
        k.apply_board();
        Ok(k)
    }

    /// A handle on the chip's lines for the DIO1 watcher thread.
    pub fn watch_lines(&self) -> EmuLines {
        self.world.lines(self.chip)
    }

    fn trace_line(&mut self, text: &str) {
        if let Some(f) = self.trace.as_mut() {
            let ns = monotonic_ns();
            let _ = writeln!(
                f,
                "{}.{:06} {text}",
                ns / 1_000_000_000,
                (ns % 1_000_000_000) / 1000
            );
        }
    }

    fn role(&self, line: u32) -> &'static str {
        let w = &self.cfg.wiring;
        if line == w.reset {
            "NRESET"
        } else if line == w.busy {
            "BUSY"
        } else if line == w.dio1 {
            "DIO1"
        } else if w.nss == Some(line) {
            "NSS"
        } else if w.txen == Some(line) {
            "TXEN"
        } else if w.rxen == Some(line) {
            "RXEN"
        } else if w.enable.contains(&line) {
            "enable"
        } else {
            "n/c"
        }
    }

    // ----------------------------------------------------------------------- the board

    /// Physical level of a line: the host's output if it drives one, else what the module drives
    /// (BUSY, DIO1), else the pull (the module pulls NRESET up; the SoC's default pulls elsewhere,
    /// or the bias the request asked for).
    fn level(&mut self, line: u32) -> bool {
        let pin = &self.pins[line as usize];
        if let Some(v) = pin.driven {
            return v;
        }
        let flags = pin.flags;
        let w = &self.cfg.wiring;
        if self.powered && line == w.busy {
            return self.lines.busy().unwrap_or(true);
        }
        if self.powered && line == w.dio1 {
            return self.lines.dio1().unwrap_or(false);
        }
        if line == w.reset {
            return true;
        }
        if flags & FLAG_BIAS_PULL_UP != 0 {
            true
        } else if flags & (FLAG_BIAS_PULL_DOWN | FLAG_BIAS_DISABLED) != 0 {
            false
        } else {
            default_pull(line)
        }
    }

    /// Propagates the host-driven lines to the module: power (enable lines), NRESET, the RF
    /// switch; then DIO1 edges.
    fn apply_board(&mut self) {
        let enable = self.cfg.wiring.enable.clone();
        let powered = enable.iter().all(|&l| self.level(l));
        let reset_line = self.cfg.wiring.reset;
        let nreset = self.level(reset_line);
        if powered != self.powered {
            self.powered = powered;
            if powered {
                let _ = self.lines.set_reset(false);
                if nreset {
                    let _ = self.lines.set_reset(true);
                }
                self.trace_line("module powered (enable lines high)");
            } else {
                let _ = self.lines.set_reset(false);
                self.trace_line("module unpowered (an enable line is low)");
            }
            self.nreset_seen = nreset;
        } else if powered && nreset != self.nreset_seen {
            let _ = self.lines.set_reset(nreset);
            self.nreset_seen = nreset;
        }
        if let Some(l) = self.cfg.wiring.txen {
            let v = self.level(l);
            if v != self.txen_seen {
                let _ = self.lines.set_txen(v);
                self.txen_seen = v;
            }
        }
        if let Some(l) = self.cfg.wiring.rxen {
            let v = self.level(l);
            if v != self.rxen_seen {
                let _ = self.lines.set_rxen(v);
                self.rxen_seen = v;
            }
        }
        self.sync_dio1();
    }

    /// Compares DIO1 with its last known level and queues an edge event on every request that
    /// watches that edge (`edge_irq_thread`: edges are of the logical value, so ACTIVE_LOW swaps
    /// them).
    pub fn sync_dio1(&mut self) {
        let line = self.cfg.wiring.dio1;
        if self.pins[line as usize].driven.is_some() {
            return;
        }
        let level = self.powered && self.lines.dio1().unwrap_or(false);
        if level == self.dio1_last {
            return;
        }
        self.dio1_last = level;
        self.trace_line(&format!(
            "gpio {line} DIO1 {} (module)",
            if level { "rise" } else { "fall" }
        ));
        let mut dropped = 0;
        let mut sent = 0;
        for req in self.requests.values_mut() {
            let Some(idx) = req.lines.iter().position(|&l| l == line) else {
                continue;
            };
            let flags = req.flags[idx];
            let logical = level ^ (flags & FLAG_ACTIVE_LOW != 0);
            let (wanted, id) = if logical {
                (flags & FLAG_EDGE_RISING != 0, EVENT_RISING_EDGE)
            } else {
                (flags & FLAG_EDGE_FALLING != 0, EVENT_FALLING_EDGE)
            };
            if !wanted {
                continue;
            }
            req.seqno = req.seqno.wrapping_add(1);
            req.line_seqno[idx] = req.line_seqno[idx].wrapping_add(1);
            let ev = LineEvent {
                timestamp_ns: if flags & FLAG_EVENT_CLOCK_REALTIME != 0 {
                    realtime_ns()
                } else {
                    monotonic_ns()
                },
                id,
                offset: line,
                seqno: req.seqno,
                line_seqno: req.line_seqno[idx],
                padding: [0; 6],
            };
            // SAFETY: writing a plain struct's bytes to our own socket.
            let n = unsafe {
                libc::write(
                    req.writer.as_raw_fd(),
                    &ev as *const LineEvent as *const libc::c_void,
                    std::mem::size_of::<LineEvent>(),
                )
            };
            // A full queue loses the event, as the kernel's kfifo does when nobody reads.
            if n == std::mem::size_of::<LineEvent>() as isize {
                sent += 1;
            } else {
                dropped += 1;
            }
        }
        self.stats.dio1_events += sent;
        self.stats.events_dropped += dropped;
    }

    // ------------------------------------------------------------------------ open/close

    pub fn is_spidev(&self, path: &str) -> bool {
        self.spidevs.contains_key(path)
    }

    pub fn register(&mut self, fd: RawFd, kind: FdKind) {
        self.trace_line(&format!("open fd {fd} {kind:?}"));
        self.fds.insert(fd, kind);
    }

    /// A fake fd is being closed: a line request gives its lines back (`linereq_free`).
    pub fn release(&mut self, fd: RawFd) {
        let Some(kind) = self.fds.remove(&fd) else {
            return;
        };
        if kind == FdKind::Request {
            if let Some(req) = self.requests.remove(&fd) {
                for &l in &req.lines {
                    let p = &mut self.pins[l as usize];
                    p.owner = None;
                    p.consumer.clear();
                    // Inputs lose their bias and edge flags; outputs keep driving their level.
                    p.flags = 0;
                }
                self.trace_line(&format!("release lines {:?}", req.lines));
            }
        }
        self.apply_board();
    }

    // ----------------------------------------------------------------------------- ioctl

    /// # Safety
    /// `arg` is the caller's ioctl argument; it is dereferenced as the command says.
    pub unsafe fn ioctl(
        &mut self,
        fd: RawFd,
        cmd: u64,
        arg: *mut libc::c_void,
    ) -> Result<i32, i32> {
        match self.fds.get(&fd).cloned() {
            Some(FdKind::Spi(dev)) => self.spi_ioctl(&dev, cmd, arg),
            Some(FdKind::Chip) => self.chip_ioctl(cmd, arg),
            Some(FdKind::Request) => self.request_ioctl(fd, cmd, arg),
            None => Err(libc::EBADF),
        }
    }

    /// `spidev_ioctl`.
    unsafe fn spi_ioctl(
        &mut self,
        dev: &str,
        cmd: u64,
        arg: *mut libc::c_void,
    ) -> Result<i32, i32> {
        if ioc_type(cmd) != SPI_IOC_MAGIC {
            return Err(libc::ENOTTY);
        }
        let Some(d) = self.spidevs.get_mut(dev) else {
            return Err(libc::ENODEV);
        };
        match cmd {
            SPI_IOC_RD_MODE => write_arg(arg, (d.mode & 0xFF) as u8).map(|()| 0),
            SPI_IOC_RD_MODE32 => write_arg(arg, d.mode).map(|()| 0),
            SPI_IOC_RD_LSB_FIRST => write_arg(arg, u8::from(d.mode & 0x08 != 0)).map(|()| 0),
            SPI_IOC_RD_BITS_PER_WORD => write_arg(arg, d.bits).map(|()| 0),
            SPI_IOC_RD_MAX_SPEED_HZ => write_arg(arg, d.speed_hz).map(|()| 0),
            SPI_IOC_WR_MODE | SPI_IOC_WR_MODE32 => {
                let tmp: u32 = if cmd == SPI_IOC_WR_MODE {
                    u32::from(read_arg::<u8>(arg)?)
                } else {
                    read_arg::<u32>(arg)?
                };
                if tmp & !SPI_MODE_USER_MASK != 0 {
                    return Err(libc::EINVAL);
                }
                let mut mode = if cmd == SPI_IOC_WR_MODE {
                    (d.mode & !0xFF) | tmp
                } else {
                    tmp
                };
                // spi_setup: dual/quad bits are dropped with a warning, others refused.
                mode &= !UGLY_MODE_BITS;
                if mode & !CONTROLLER_MODE_BITS != 0 {
                    return Err(libc::EINVAL);
                }
                d.mode = mode;
                let t = format!("spi {dev} mode {mode:#x}");
                self.trace_line(&t);
                Ok(0)
            }
            SPI_IOC_WR_LSB_FIRST => {
                // The BCM2835 controller cannot shift LSB first.
                if read_arg::<u8>(arg)? != 0 {
                    return Err(libc::EINVAL);
                }
                Ok(0)
            }
            SPI_IOC_WR_BITS_PER_WORD => {
                let b = read_arg::<u8>(arg)?;
                // bcm2835: bits_per_word_mask = SPI_BPW_MASK(8); 0 means 8.
                if b != 0 && b != 8 {
                    return Err(libc::EINVAL);
                }
                d.bits = 8;
                Ok(0)
            }
            SPI_IOC_WR_MAX_SPEED_HZ => {
                let hz = read_arg::<u32>(arg)?;
                if hz == 0 {
                    return Err(libc::EINVAL);
                }
                d.speed_hz = hz;
                let t = format!("spi {dev} speed {hz} Hz");
                self.trace_line(&t);
                Ok(0)
            }
            _ if ioc_nr(cmd) == 0 && ioc_dir(cmd) == IOC_WRITE => {
                // spidev_get_ioc_message
                let size = ioc_size(cmd);
                let one = std::mem::size_of::<SpiIocTransfer>();
                if size % one != 0 {
                    return Err(libc::EINVAL);
                }
                let n = size / one;
                if n == 0 {
                    return Ok(0);
                }
                if arg.is_null() {
                    return Err(libc::EFAULT);
                }
                let xfers: Vec<SpiIocTransfer> = (0..n)
                    .map(|i| std::ptr::read_unaligned((arg as *const SpiIocTransfer).add(i)))
                    .collect();
                self.spi_message(dev, &xfers)
            }
            _ => Err(libc::ENOTTY),
        }
    }

    /// `spidev_message`: checks every transfer, then clocks each chip-select assertion through
    /// the module (or through nothing). Returns the total length, as the kernel does.
    unsafe fn spi_message(&mut self, dev: &str, xfers: &[SpiIocTransfer]) -> Result<i32, i32> {
        let (mut total, mut tx_total, mut rx_total) = (0usize, 0usize, 0usize);
        for x in xfers {
            let len = x.len as usize;
            if len == 0 {
                continue;
            }
            total += len;
            if total > i32::MAX as usize {
                return Err(libc::EMSGSIZE);
            }
            if x.rx_buf != 0 {
                rx_total += len;
                if rx_total > SPIDEV_BUFSIZ {
                    return Err(libc::EMSGSIZE);
                }
            }
            if x.tx_buf != 0 {
                tx_total += len;
                if tx_total > SPIDEV_BUFSIZ {
                    return Err(libc::EMSGSIZE);
                }
            }
            // __spi_validate: single-wire only in this mode; 8-bit words only on this controller.
            if x.tx_nbits > 1 || x.rx_nbits > 1 {
                return Err(libc::EINVAL);
            }
            if x.bits_per_word != 0 && x.bits_per_word != 8 {
                return Err(libc::EINVAL);
            }
        }
        self.stats.spi_messages += 1;
        let (mode, dev_speed) = {
            let d = &self.spidevs[dev];
            (d.mode, d.speed_hz)
        };
        // Group transfers into chip-select assertions (cs_change ends one early).
        let mut frame: Vec<&SpiIocTransfer> = Vec::new();
        for (i, x) in xfers.iter().enumerate() {
            frame.push(x);
            if x.cs_change != 0 || i + 1 == xfers.len() {
                self.clock_frame(dev, mode, dev_speed, &frame);
                frame.clear();
            }
        }
        Ok(total as i32)
    }

    unsafe fn clock_frame(
        &mut self,
        dev: &str,
        mode: u32,
        dev_speed: u32,
        frame: &[&SpiIocTransfer],
    ) {
        let mut tx = Vec::new();
        for x in frame {
            let len = x.len as usize;
            if x.tx_buf != 0 {
                tx.extend_from_slice(std::slice::from_raw_parts(x.tx_buf as *const u8, len));
            } else {
                tx.extend(std::iter::repeat_n(0u8, len));
            }
        }
        let mut rx = vec![0u8; tx.len()];
        let speed = frame
            .iter()
            .map(|x| {
                if x.speed_hz != 0 {
                    x.speed_hz
                } else {
                    dev_speed
                }
            })
            .max()
            .unwrap_or(dev_speed);
        let nss_ok = match self.cfg.wiring.nss {
            None => true,
            Some(l) => self.pins[l as usize].driven == Some(false),
        };
        let reaches = dev == self.cfg.chip_spidev && self.powered && nss_ok && !tx.is_empty();
        let note = if reaches {
            let wrong_edge = mode & (SPI_CPHA | SPI_CPOL) != 0;
            let mut seen = tx.clone();
            if wrong_edge {
                shift_one_bit(&mut seen);
            }
            let _ = self.spi.transfer(&seen, &mut rx);
            if wrong_edge || speed > CHIP_MAX_SPI_HZ {
                shift_one_bit(&mut rx);
            }
            *self.stats.chip_frames.entry(tx[0]).or_insert(0) += 1;
            ""
        } else {
            // MISO floats; BCM 9 is pulled down.
            self.stats.frames_nobody_heard += 1;
            if dev != self.cfg.chip_spidev {
                " (no chip on this spidev)"
            } else if !self.powered {
                " (module unpowered)"
            } else {
                " (chip not selected: its NSS line is not driven low)"
            }
        };
        let mut off = 0;
        for x in frame {
            let len = x.len as usize;
            if x.rx_buf != 0 {
                std::ptr::copy_nonoverlapping(rx[off..].as_ptr(), x.rx_buf as *mut u8, len);
            }
            off += len;
        }
        let t = format!("spi {dev} tx {} rx {}{note}", hex(&tx), hex(&rx));
        self.trace_line(&t);
        self.sync_dio1();
    }

    /// `gpio_ioctl` on the chip file.
    unsafe fn chip_ioctl(&mut self, cmd: u64, arg: *mut libc::c_void) -> Result<i32, i32> {
        match cmd {
            GPIO_GET_CHIPINFO_IOCTL => {
                let mut ci = ChipInfo {
                    name: [0; GPIO_MAX_NAME_SIZE],
                    label: [0; GPIO_MAX_NAME_SIZE],
                    lines: NUM_LINES,
                };
                let name = self
                    .cfg
                    .gpiochip
                    .rsplit('/')
                    .next()
                    .unwrap_or("gpiochip0")
                    .to_string();
                set_name(&mut ci.name, &name);
                set_name(&mut ci.label, "pinctrl-bcm2711");
                write_arg(arg, ci).map(|()| 0)
            }
            GPIO_V2_GET_LINEINFO_IOCTL | GPIO_V2_GET_LINEINFO_WATCH_IOCTL => {
                let mut li: LineInfo = read_arg(arg)?;
                // lineinfo_get: padding must be zero, the offset must exist.
                if li.padding.iter().any(|&p| p != 0) {
                    return Err(libc::EINVAL);
                }
                if li.offset >= NUM_LINES {
                    return Err(libc::EINVAL);
                }
                let p = &self.pins[li.offset as usize];
                set_name(&mut li.name, &format!("GPIO{}", li.offset));
                let mut flags = p.flags;
                if p.owner.is_some() || p.kernel.is_some() {
                    flags |= FLAG_USED;
                }
                if p.driven.is_some() {
                    flags = (flags & !FLAG_INPUT) | FLAG_OUTPUT;
                } else {
                    flags = (flags & !FLAG_OUTPUT) | FLAG_INPUT;
                }
                let consumer = p.kernel.clone().unwrap_or_else(|| p.consumer.clone());
                set_name(&mut li.consumer, &consumer);
                li.flags = flags;
                li.num_attrs = 0;
                li.attrs = [LineAttribute::default(); GPIO_V2_LINE_NUM_ATTRS_MAX];
                write_arg(arg, li).map(|()| 0)
            }
            GPIO_GET_LINEINFO_UNWATCH_IOCTL => {
                let off: u32 = read_arg(arg)?;
                if off >= NUM_LINES {
                    return Err(libc::EINVAL);
                }
                Ok(0)
            }
            GPIO_V2_GET_LINE_IOCTL => self.line_request(arg),
            // The v1 ABI is not served (a kernel built without CONFIG_GPIO_CDEV_V1), and
            // anything else is not a GPIO ioctl: gpio_ioctl answers both with EINVAL.
            _ => Err(libc::EINVAL),
        }
    }

    /// `linereq_create`.
    unsafe fn line_request(&mut self, arg: *mut libc::c_void) -> Result<i32, i32> {
        let mut lr: LineRequest = read_arg(arg)?;
        let n = lr.num_lines as usize;
        if n == 0 || n > GPIO_V2_LINES_MAX {
            return Err(libc::EINVAL);
        }
        if lr.padding.iter().any(|&p| p != 0) {
            return Err(libc::EINVAL);
        }
        lr.config.validate(n)?;
        let offsets = lr.offsets[..n].to_vec();
        for (i, &off) in offsets.iter().enumerate() {
            if off >= NUM_LINES {
                return Err(libc::EINVAL);
            }
            // gpiod_request_user: a line held by anyone (or twice in this request) is busy.
            let p = &self.pins[off as usize];
            if p.owner.is_some() || p.kernel.is_some() || offsets[..i].contains(&off) {
                let t = format!(
                    "request line {off} refused: busy ({})",
                    p.kernel.clone().unwrap_or_else(|| p.consumer.clone())
                );
                self.trace_line(&t);
                return Err(libc::EBUSY);
            }
        }
        let mut sv = [0 as RawFd; 2];
        if libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        ) != 0
        {
            return Err(*libc::__errno_location());
        }
        let (app, ours) = (sv[0], sv[1]);
        // Edges up to now belong to the requests that existed before this one.
        self.sync_dio1();
        let writer = OwnedFd::from_raw_fd(ours);
        let fl = libc::fcntl(ours, libc::F_GETFL);
        libc::fcntl(ours, libc::F_SETFL, fl | libc::O_NONBLOCK);
        if !crate::mark_fake(app, true) {
            libc::close(app);
            return Err(libc::EMFILE);
        }
        let consumer = name_of(&lr.consumer);
        let mut flags = Vec::with_capacity(n);
        for (i, &off) in offsets.iter().enumerate() {
            let f = lr.config.flags_of(i);
            let p = &mut self.pins[off as usize];
            p.owner = Some(app);
            p.consumer = consumer.clone();
            p.flags = f;
            p.driven = if f & FLAG_OUTPUT != 0 {
                Some(lr.config.output_value_of(i) ^ (f & FLAG_ACTIVE_LOW != 0))
            } else {
                None
            };
            flags.push(f);
        }
        let t = format!(
            "request lines {offsets:?} \"{consumer}\" flags {:?} → fd {app}",
            flags
                .iter()
                .zip(&offsets)
                .map(|(f, &o)| format!("{o}:{}:{f:#x}", self.role(o)))
                .collect::<Vec<_>>()
        );
        self.trace_line(&t);
        self.requests.insert(
            app,
            Req {
                lines: offsets.clone(),
                flags,
                writer,
                seqno: 0,
                line_seqno: vec![0; n],
            },
        );
        self.fds.insert(app, FdKind::Request);
        for &off in &offsets {
            self.trace_level(off);
        }
        lr.fd = app;
        write_arg(arg, lr)?;
        self.apply_board();
        Ok(0)
    }

    fn trace_level(&mut self, line: u32) {
        if let Some(v) = self.pins[line as usize].driven {
            let t = format!("gpio {line} {} out {}", self.role(line), u8::from(v));
            self.trace_line(&t);
        }
    }

    /// `linereq_ioctl`.
    unsafe fn request_ioctl(
        &mut self,
        fd: RawFd,
        cmd: u64,
        arg: *mut libc::c_void,
    ) -> Result<i32, i32> {
        let Some(req) = self.requests.get(&fd) else {
            return Err(libc::EBADF);
        };
        let lines = req.lines.clone();
        let flags = req.flags.clone();
        match cmd {
            GPIO_V2_LINE_GET_VALUES_IOCTL => {
                // linereq_get_values
                let mut lv: LineValues = read_arg(arg)?;
                self.sync_dio1();
                let mut bits = 0u64;
                let mut any = false;
                for (i, &l) in lines.iter().enumerate() {
                    if lv.mask & (1 << i) != 0 {
                        any = true;
                        if self.level(l) ^ (flags[i] & FLAG_ACTIVE_LOW != 0) {
                            bits |= 1 << i;
                        }
                    }
                }
                if !any {
                    return Err(libc::EINVAL);
                }
                lv.bits = bits;
                write_arg(arg, lv).map(|()| 0)
            }
            GPIO_V2_LINE_SET_VALUES_IOCTL => {
                // linereq_set_values: every masked line must be an output (EPERM), one at least.
                let lv: LineValues = read_arg(arg)?;
                let mut set = Vec::new();
                for (i, &l) in lines.iter().enumerate() {
                    if lv.mask & (1 << i) != 0 {
                        if flags[i] & FLAG_OUTPUT == 0 {
                            let t = format!("set line {l} refused: input (EPERM)");
                            self.trace_line(&t);
                            return Err(libc::EPERM);
                        }
                        set.push((
                            l,
                            (lv.bits & (1 << i) != 0) ^ (flags[i] & FLAG_ACTIVE_LOW != 0),
                        ));
                    }
                }
                if set.is_empty() {
                    return Err(libc::EINVAL);
                }
                for (l, v) in set {
                    let p = &mut self.pins[l as usize];
                    if p.driven != Some(v) {
                        p.driven = Some(v);
                        self.trace_level(l);
                    }
                }
                self.apply_board();
                Ok(0)
            }
            GPIO_V2_LINE_SET_CONFIG_IOCTL => {
                // linereq_set_config
                let lc: LineConfig = read_arg(arg)?;
                lc.validate(lines.len())?;
                let mut new_flags = Vec::with_capacity(lines.len());
                for (i, &l) in lines.iter().enumerate() {
                    let f = lc.flags_of(i);
                    let p = &mut self.pins[l as usize];
                    p.flags = f;
                    p.driven = if f & FLAG_OUTPUT != 0 {
                        Some(lc.output_value_of(i) ^ (f & FLAG_ACTIVE_LOW != 0))
                    } else {
                        None
                    };
                    new_flags.push(f);
                    self.trace_level(l);
                }
                if let Some(r) = self.requests.get_mut(&fd) {
                    r.flags = new_flags;
                }
                self.apply_board();
                Ok(0)
            }
            _ => Err(libc::EINVAL),
        }
    }

    /// How long the watcher waits for a DIO1 edge before looking again (it also looks after
    /// every SPI transfer and line change, so this only bounds a missed-wake-up race).
    pub const WATCH_SLICE: Duration = Duration::from_millis(100);
}
