//! The kernel's user-space ABI the fake serves, written from the kernel's own headers
//! (`include/uapi/linux/gpio.h`, `include/uapi/linux/spi/spidev.h`, `include/uapi/asm-generic/ioctl.h`)
//! rather than taken from the crates the binary uses, so a layout mistake in those crates shows up
//! as a failure here instead of being mirrored.

/// `_IOC(dir, type, nr, size)` of asm-generic/ioctl.h (x86-64, arm, arm64 and riscv use it).
pub const fn ioc(dir: u64, ty: u8, nr: u8, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}
pub const IOC_WRITE: u64 = 1;
pub const IOC_READ: u64 = 2;

pub const fn ioc_type(cmd: u64) -> u8 {
    ((cmd >> 8) & 0xFF) as u8
}
pub const fn ioc_nr(cmd: u64) -> u8 {
    (cmd & 0xFF) as u8
}
pub const fn ioc_dir(cmd: u64) -> u64 {
    (cmd >> 30) & 3
}
pub const fn ioc_size(cmd: u64) -> usize {
    ((cmd >> 16) & 0x3FFF) as usize
}

// ------------------------------------------------------------------------------------ spidev

pub const SPI_IOC_MAGIC: u8 = b'k';
pub const SPI_CPHA: u32 = 0x01;
pub const SPI_CPOL: u32 = 0x02;
/// `SPI_MODE_USER_MASK` (spidev.h): the mode bits user space may set.
pub const SPI_MODE_USER_MASK: u32 = (1 << 18) - 1;
pub const SPI_TX_DUAL: u32 = 0x100;
pub const SPI_TX_QUAD: u32 = 0x200;
pub const SPI_RX_DUAL: u32 = 0x400;
pub const SPI_RX_QUAD: u32 = 0x800;

pub const SPI_IOC_RD_MODE: u64 = ioc(IOC_READ, SPI_IOC_MAGIC, 1, 1);
pub const SPI_IOC_WR_MODE: u64 = ioc(IOC_WRITE, SPI_IOC_MAGIC, 1, 1);
pub const SPI_IOC_RD_LSB_FIRST: u64 = ioc(IOC_READ, SPI_IOC_MAGIC, 2, 1);
pub const SPI_IOC_WR_LSB_FIRST: u64 = ioc(IOC_WRITE, SPI_IOC_MAGIC, 2, 1);
pub const SPI_IOC_RD_BITS_PER_WORD: u64 = ioc(IOC_READ, SPI_IOC_MAGIC, 3, 1);
pub const SPI_IOC_WR_BITS_PER_WORD: u64 = ioc(IOC_WRITE, SPI_IOC_MAGIC, 3, 1);
pub const SPI_IOC_RD_MAX_SPEED_HZ: u64 = ioc(IOC_READ, SPI_IOC_MAGIC, 4, 4);
pub const SPI_IOC_WR_MAX_SPEED_HZ: u64 = ioc(IOC_WRITE, SPI_IOC_MAGIC, 4, 4);
pub const SPI_IOC_RD_MODE32: u64 = ioc(IOC_READ, SPI_IOC_MAGIC, 5, 4);
pub const SPI_IOC_WR_MODE32: u64 = ioc(IOC_WRITE, SPI_IOC_MAGIC, 5, 4);

/// `SPI_IOC_MESSAGE(n)`.
pub const fn spi_ioc_message(n: usize) -> u64 {
    ioc(
        IOC_WRITE,
        SPI_IOC_MAGIC,
        0,
        n * std::mem::size_of::<SpiIocTransfer>(),
    )
}

/// `struct spi_ioc_transfer`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SpiIocTransfer {
    pub tx_buf: u64,
    pub rx_buf: u64,
    pub len: u32,
    pub speed_hz: u32,
    pub delay_usecs: u16,
    pub bits_per_word: u8,
    pub cs_change: u8,
    pub tx_nbits: u8,
    pub rx_nbits: u8,
    pub word_delay_usecs: u8,
    pub pad: u8,
}

/// spidev's `bufsiz` module parameter default: the most one message may carry each way.
pub const SPIDEV_BUFSIZ: usize = 4096;

// ------------------------------------------------------------------------------- GPIO cdev v2

pub const GPIO_MAGIC: u8 = 0xB4;
pub const GPIO_MAX_NAME_SIZE: usize = 32;
pub const GPIO_V2_LINES_MAX: usize = 64;
pub const GPIO_V2_LINE_NUM_ATTRS_MAX: usize = 10;

pub const FLAG_USED: u64 = 1 << 0;
pub const FLAG_ACTIVE_LOW: u64 = 1 << 1;
pub const FLAG_INPUT: u64 = 1 << 2;
pub const FLAG_OUTPUT: u64 = 1 << 3;
pub const FLAG_EDGE_RISING: u64 = 1 << 4;
pub const FLAG_EDGE_FALLING: u64 = 1 << 5;
pub const FLAG_OPEN_DRAIN: u64 = 1 << 6;
pub const FLAG_OPEN_SOURCE: u64 = 1 << 7;
pub const FLAG_BIAS_PULL_UP: u64 = 1 << 8;
pub const FLAG_BIAS_PULL_DOWN: u64 = 1 << 9;
pub const FLAG_BIAS_DISABLED: u64 = 1 << 10;
pub const FLAG_EVENT_CLOCK_REALTIME: u64 = 1 << 11;
pub const FLAG_EVENT_CLOCK_HTE: u64 = 1 << 12;

const DIRECTION_FLAGS: u64 = FLAG_INPUT | FLAG_OUTPUT;
const DRIVE_FLAGS: u64 = FLAG_OPEN_DRAIN | FLAG_OPEN_SOURCE;
pub const EDGE_FLAGS: u64 = FLAG_EDGE_RISING | FLAG_EDGE_FALLING;
const BIAS_FLAGS: u64 = FLAG_BIAS_PULL_UP | FLAG_BIAS_PULL_DOWN | FLAG_BIAS_DISABLED;
/// `GPIO_V2_LINE_VALID_FLAGS` (gpiolib-cdev.c): what a request may set (USED is info only).
const VALID_FLAGS: u64 = FLAG_ACTIVE_LOW
    | DIRECTION_FLAGS
    | DRIVE_FLAGS
    | BIAS_FLAGS
    | EDGE_FLAGS
    | FLAG_EVENT_CLOCK_REALTIME
    | FLAG_EVENT_CLOCK_HTE;

pub const ATTR_ID_FLAGS: u32 = 1;
pub const ATTR_ID_OUTPUT_VALUES: u32 = 2;
pub const ATTR_ID_DEBOUNCE: u32 = 3;

pub const EVENT_RISING_EDGE: u32 = 1;
pub const EVENT_FALLING_EDGE: u32 = 2;

/// `struct gpiochip_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ChipInfo {
    pub name: [u8; GPIO_MAX_NAME_SIZE],
    pub label: [u8; GPIO_MAX_NAME_SIZE],
    pub lines: u32,
}

/// `struct gpio_v2_line_attribute` (the union is 8 bytes: flags, values or debounce_period_us).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LineAttribute {
    pub id: u32,
    pub padding: u32,
    pub value: u64,
}

/// `struct gpio_v2_line_config_attribute`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LineConfigAttribute {
    pub attr: LineAttribute,
    pub mask: u64,
}

/// `struct gpio_v2_line_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LineConfig {
    pub flags: u64,
    pub num_attrs: u32,
    pub padding: [u32; 5],
    pub attrs: [LineConfigAttribute; GPIO_V2_LINE_NUM_ATTRS_MAX],
}

/// `struct gpio_v2_line_request`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LineRequest {
    pub offsets: [u32; GPIO_V2_LINES_MAX],
    pub consumer: [u8; GPIO_MAX_NAME_SIZE],
    pub config: LineConfig,
    pub num_lines: u32,
    pub event_buffer_size: u32,
    pub padding: [u32; 5],
    pub fd: i32,
}

/// `struct gpio_v2_line_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct LineInfo {
    pub name: [u8; GPIO_MAX_NAME_SIZE],
    pub consumer: [u8; GPIO_MAX_NAME_SIZE],
    pub offset: u32,
    pub num_attrs: u32,
    pub flags: u64,
    pub attrs: [LineAttribute; GPIO_V2_LINE_NUM_ATTRS_MAX],
    pub padding: [u32; 4],
}

/// `struct gpio_v2_line_values`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LineValues {
    pub bits: u64,
    pub mask: u64,
}

/// `struct gpio_v2_line_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct LineEvent {
    pub timestamp_ns: u64,
    pub id: u32,
    pub offset: u32,
    pub seqno: u32,
    pub line_seqno: u32,
    pub padding: [u32; 6],
}

pub const GPIO_GET_CHIPINFO_IOCTL: u64 =
    ioc(IOC_READ, GPIO_MAGIC, 0x01, std::mem::size_of::<ChipInfo>());
pub const GPIO_GET_LINEINFO_UNWATCH_IOCTL: u64 = ioc(IOC_READ | IOC_WRITE, GPIO_MAGIC, 0x0C, 4);
pub const GPIO_V2_GET_LINEINFO_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x05,
    std::mem::size_of::<LineInfo>(),
);
pub const GPIO_V2_GET_LINEINFO_WATCH_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x06,
    std::mem::size_of::<LineInfo>(),
);
pub const GPIO_V2_GET_LINE_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x07,
    std::mem::size_of::<LineRequest>(),
);
pub const GPIO_V2_LINE_SET_CONFIG_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x0D,
    std::mem::size_of::<LineConfig>(),
);
pub const GPIO_V2_LINE_GET_VALUES_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x0E,
    std::mem::size_of::<LineValues>(),
);
pub const GPIO_V2_LINE_SET_VALUES_IOCTL: u64 = ioc(
    IOC_READ | IOC_WRITE,
    GPIO_MAGIC,
    0x0F,
    std::mem::size_of::<LineValues>(),
);

/// `gpio_v2_line_flags_validate` of gpiolib-cdev.c: the flag combinations the kernel refuses
/// (EINVAL), in its order. HTE timestamps are refused with EOPNOTSUPP as on a kernel without HTE.
pub fn validate_flags(flags: u64) -> Result<(), i32> {
    if flags & !VALID_FLAGS != 0 {
        return Err(libc::EINVAL);
    }
    if flags & FLAG_EVENT_CLOCK_HTE != 0 {
        return Err(libc::EOPNOTSUPP);
    }
    if flags & FLAG_INPUT != 0 && flags & FLAG_OUTPUT != 0 {
        return Err(libc::EINVAL);
    }
    if flags & EDGE_FLAGS != 0 && flags & FLAG_INPUT == 0 {
        return Err(libc::EINVAL);
    }
    if flags & FLAG_OPEN_DRAIN != 0 && flags & FLAG_OPEN_SOURCE != 0 {
        return Err(libc::EINVAL);
    }
    if flags & DRIVE_FLAGS != 0 && flags & FLAG_OUTPUT == 0 {
        return Err(libc::EINVAL);
    }
    if flags & BIAS_FLAGS != 0 && flags & DIRECTION_FLAGS == 0 {
        return Err(libc::EINVAL);
    }
    let up = flags & FLAG_BIAS_PULL_UP != 0;
    let down = flags & FLAG_BIAS_PULL_DOWN != 0;
    if (flags & FLAG_BIAS_DISABLED != 0 && (up || down)) || (up && down) {
        return Err(libc::EINVAL);
    }
    Ok(())
}

impl LineConfig {
    /// `gpio_v2_line_config_flags`: the flags of the `idx`-th requested line.
    pub fn flags_of(&self, idx: usize) -> u64 {
        let n = (self.num_attrs as usize).min(GPIO_V2_LINE_NUM_ATTRS_MAX);
        for a in &self.attrs[..n] {
            if a.attr.id == ATTR_ID_FLAGS && a.mask & (1 << idx) != 0 {
                return a.attr.value;
            }
        }
        self.flags
    }

    /// `gpio_v2_line_config_output_value`.
    pub fn output_value_of(&self, idx: usize) -> bool {
        let n = (self.num_attrs as usize).min(GPIO_V2_LINE_NUM_ATTRS_MAX);
        for a in &self.attrs[..n] {
            if a.attr.id == ATTR_ID_OUTPUT_VALUES && a.mask & (1 << idx) != 0 {
                return a.attr.value & (1 << idx) != 0;
            }
        }
        false
    }

    fn debounced(&self, idx: usize) -> bool {
        let n = (self.num_attrs as usize).min(GPIO_V2_LINE_NUM_ATTRS_MAX);
        self.attrs[..n].iter().any(|a| {
            a.attr.id == ATTR_ID_DEBOUNCE && a.mask & (1 << idx) != 0 && a.attr.value as u32 != 0
        })
    }

    /// `gpio_v2_line_config_validate`.
    pub fn validate(&self, num_lines: usize) -> Result<(), i32> {
        if self.num_attrs as usize > GPIO_V2_LINE_NUM_ATTRS_MAX {
            return Err(libc::EINVAL);
        }
        if self.padding.iter().any(|&p| p != 0) {
            return Err(libc::EINVAL);
        }
        for i in 0..num_lines {
            let f = self.flags_of(i);
            validate_flags(f)?;
            if self.debounced(i) && f & FLAG_INPUT == 0 {
                return Err(libc::EINVAL);
            }
        }
        Ok(())
    }
}

/// A NUL-terminated name field as text.
pub fn name_of(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Text into a NUL-terminated name field (truncated like the kernel's strscpy).
pub fn set_name(dst: &mut [u8; GPIO_MAX_NAME_SIZE], s: &str) {
    *dst = [0; GPIO_MAX_NAME_SIZE];
    let n = s.len().min(GPIO_MAX_NAME_SIZE - 1);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::size_of;

    #[test]
    fn layouts_match_the_kernel_header() {
        assert_eq!(size_of::<ChipInfo>(), 68);
        assert_eq!(size_of::<LineAttribute>(), 16);
        assert_eq!(size_of::<LineConfigAttribute>(), 24);
        assert_eq!(size_of::<LineConfig>(), 272);
        assert_eq!(size_of::<LineRequest>(), 592);
        assert_eq!(size_of::<LineInfo>(), 256);
        assert_eq!(size_of::<LineValues>(), 16);
        assert_eq!(size_of::<LineEvent>(), 48);
        assert_eq!(size_of::<SpiIocTransfer>(), 32);
        // Values as printed by a C program including <linux/gpio.h> / <linux/spi/spidev.h>.
        assert_eq!(GPIO_GET_CHIPINFO_IOCTL, 0x8044_B401);
        assert_eq!(GPIO_V2_GET_LINE_IOCTL, 0xC250_B407);
        assert_eq!(GPIO_V2_GET_LINEINFO_IOCTL, 0xC100_B405);
        assert_eq!(GPIO_V2_LINE_SET_CONFIG_IOCTL, 0xC110_B40D);
        assert_eq!(GPIO_V2_LINE_GET_VALUES_IOCTL, 0xC010_B40E);
        assert_eq!(GPIO_V2_LINE_SET_VALUES_IOCTL, 0xC010_B40F);
        assert_eq!(SPI_IOC_WR_MODE, 0x4001_6B01);
        assert_eq!(SPI_IOC_WR_MAX_SPEED_HZ, 0x4004_6B04);
        assert_eq!(spi_ioc_message(1), 0x4020_6B00);
    }

    #[test]
    fn the_kernels_flag_rules() {
        assert!(validate_flags(FLAG_INPUT | FLAG_EDGE_RISING).is_ok());
        assert!(validate_flags(FLAG_OUTPUT | FLAG_EDGE_RISING).is_err());
        assert!(validate_flags(FLAG_INPUT | FLAG_OUTPUT).is_err());
        assert!(validate_flags(FLAG_BIAS_PULL_UP).is_err());
        assert!(validate_flags(FLAG_INPUT | FLAG_BIAS_PULL_UP | FLAG_BIAS_PULL_DOWN).is_err());
        assert!(validate_flags(FLAG_INPUT | FLAG_OPEN_DRAIN).is_err());
        assert!(validate_flags(FLAG_USED | FLAG_INPUT).is_err());
    }
}
