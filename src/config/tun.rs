//! The `tun:` section: the TUN device on which every room is a multicast group.
//!
//! Every field has a default, so the section can be left out: `meshroom0`, kernel side
//! 10.77.0.1/24, the gateway's own datagrams from 10.77.0.2, rooms in 239.77.0.0/16 on port 7077.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunMode {
    /// Create the device when the process may (CAP_NET_ADMIN and /dev/net/tun), else warn and go on.
    #[default]
    Auto,
    /// The device is required: failing to create it is an error.
    On,
    Off,
}

/// `enabled:` takes `auto`, `on`/`off`, or a YAML boolean.
impl<'de> Deserialize<'de> for TunMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(TunMode::On),
            Raw::Bool(false) => Ok(TunMode::Off),
            Raw::Word(w) => match w.to_ascii_lowercase().as_str() {
                "auto" => Ok(TunMode::Auto),
                "on" | "true" | "yes" => Ok(TunMode::On),
                "off" | "false" | "no" => Ok(TunMode::Off),
                _ => Err(serde::de::Error::custom(format!(
                    "`{w}` is not auto, on, off, true or false"
                ))),
            },
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TunConfig {
    #[serde(default)]
    pub enabled: TunMode,
    /// Name of the TUN device.
    #[serde(default = "default_device")]
    pub device: String,
    /// The kernel's address on the device, with the prefix of the on-link subnet.
    #[serde(default = "default_address")]
    pub address: Ipv4Net,
    /// Source address of the gateway's own datagrams: inside `address`'s subnet so that
    /// reverse-path filters accept them, and not the kernel's address.
    #[serde(default = "default_source")]
    pub source: Ipv4Addr,
    /// Multicast range routed over the device; default room groups are derived inside it.
    #[serde(default = "default_range")]
    pub range: Ipv4Net,
    /// Default UDP port of every room's group.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Device MTU. A post leaves as one unfragmented datagram, so this bounds the longest post
    /// the host sees (posts that do not fit are counted as `oversized_out`).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Seconds between IGMP general queries, which make the kernel re-announce its groups.
    #[serde(default = "default_query_interval")]
    pub igmp_query_interval_s: u8,
}

impl Default for TunConfig {
    fn default() -> Self {
        TunConfig {
            enabled: TunMode::default(),
            device: default_device(),
            address: default_address(),
            source: default_source(),
            range: default_range(),
            port: default_port(),
            mtu: default_mtu(),
            igmp_query_interval_s: default_query_interval(),
        }
    }
}

fn default_device() -> String {
    "meshroom0".to_string()
}

fn default_address() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(10, 77, 0, 1), 24).unwrap_or_default()
}

fn default_source() -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 2)
}

fn default_range() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(239, 77, 0, 0), 16).unwrap_or_default()
}

fn default_port() -> u16 {
    7077
}

fn default_mtu() -> u16 {
    9000
}

fn default_query_interval() -> u8 {
    10
}

/// Smallest MTU IPv4 guarantees (RFC 791).
const MIN_MTU: u16 = 576;

impl TunConfig {
    /// Problems in this section, as (key path, message). Where the rooms land on the range is
    /// checked with the tun side's own rules in `settings`.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut err = |k: &str, m: String| out.push((k.to_string(), m));
        let name = self.device.as_str();
        if name.is_empty()
            || name.len() > 15
            || name.contains(['/', ':'])
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            err(
                "tun.device",
                format!("`{name}` is not a usable interface name (1 to 15 characters, no spaces, `/` or `:`)"),
            );
        }
        if !self.range.network().is_multicast() {
            err(
                "tun.range",
                format!("{} is not a multicast range", self.range),
            );
        } else if self.range.prefix_len() < 4
            || Ipv4Net::new(Ipv4Addr::new(224, 0, 0, 0), 24).is_ok_and(|local| {
                local.contains(&self.range.network()) || self.range.contains(&local.network())
            })
        {
            err(
                "tun.range",
                format!("{} overlaps 224.0.0.0/24, which the kernel uses for IGMP and other link-local protocols", self.range),
            );
        }
        if self.address.contains(&self.range.network()) {
            err("tun.range", "must not overlap tun.address".to_string());
        }
        if self.address.addr().is_multicast() || self.address.prefix_len() > 30 {
            err(
                "tun.address",
                format!("{} must be a unicast address with a prefix of at most /30, so tun.source fits beside it", self.address),
            );
        }
        if !self.address.contains(&self.source) || self.source == self.address.addr() {
            err(
                "tun.source",
                format!(
                    "{} must be inside {} and not the kernel's own address, or reverse-path filters drop the gateway's datagrams",
                    self.source, self.address
                ),
            );
        }
        if self.port == 0 {
            err("tun.port", "port 0 is not a usable UDP port".to_string());
        }
        if self.mtu < MIN_MTU {
            err("tun.mtu", format!("must be at least {MIN_MTU}"));
        }
        if self.igmp_query_interval_s == 0 {
            err(
                "tun.igmp_query_interval_s",
                "must be at least 1".to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn load(text: &str) -> Result<crate::config::Config, String> {
        parse(text, "test.yaml")
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_section_can_be_left_out() {
        let c = load("rooms:\n  - name: a\n").unwrap();
        assert_eq!(c.tun.enabled, TunMode::Auto);
        assert_eq!(c.tun.device, "meshroom0");
        assert_eq!(c.tun.address.to_string(), "10.77.0.1/24");
        assert_eq!(c.tun.source, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(c.tun.range.to_string(), "239.77.0.0/16");
        assert_eq!(c.tun.port, 7077);
        assert!(TunConfig::default().check().is_empty());
    }

    #[test]
    fn enabled_takes_words_and_booleans() {
        for (word, mode) in [
            ("auto", TunMode::Auto),
            ("on", TunMode::On),
            ("off", TunMode::Off),
            ("true", TunMode::On),
            ("false", TunMode::Off),
        ] {
            let c = load(&format!("rooms:\n  - name: a\ntun:\n  enabled: {word}\n")).unwrap();
            assert_eq!(c.tun.enabled, mode, "{word}");
        }
        assert!(load("rooms:\n  - name: a\ntun:\n  enabled: maybe\n").is_err());
    }

    #[test]
    fn bad_addresses_are_refused() {
        let err = load("rooms:\n  - name: a\ntun:\n  source: 10.78.0.2\n").unwrap_err();
        assert!(err.contains("tun.source"), "{err}");
        let err = load("rooms:\n  - name: a\ntun:\n  range: 10.0.0.0/8\n").unwrap_err();
        assert!(err.contains("not a multicast range"), "{err}");
        let err = load("rooms:\n  - name: a\ntun:\n  range: 224.0.0.0/16\n").unwrap_err();
        assert!(err.contains("224.0.0.0/24"), "{err}");
        let err = load("rooms:\n  - name: a\ntun:\n  device: \"has space\"\n").unwrap_err();
        assert!(err.contains("tun.device"), "{err}");
        let err = load("rooms:\n  - name: a\ntun:\n  mtu: 100\n").unwrap_err();
        assert!(err.contains("tun.mtu"), "{err}");
    }
}
