//! `/proc/net/igmp`: how many sockets of this network namespace joined each group, per device.
//!
//! IGMP on the device says only whether *some* socket listens to a group; the `Users` column
//! here says how many do, which is the room's `ip` client count. The file looks like:
//!
//! ```text
//! (tabs shown as spaces)
//! Idx    Device    : Count Querier    Group    Users Timer    Reporter
//! 1    lo        :     1      V3
//!                 010000E0     1 0:00000000        0
//! 4    meshroom0 :     2      V3
//!                 02014DEF     2 0:00000000        0
//! ```
//! The group is the address's 32 bits in network byte order printed as one host-order `%08X`
//! word, so its bytes are read back in host order.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Parses the file's text and returns, for `device` only, the socket count of every group.
/// Lines it does not understand are skipped: the file is the kernel's, but a parse of it must
/// never take the gateway down.
pub fn group_users(text: &str, device: &str) -> HashMap<Ipv4Addr, u32> {
    let mut out = HashMap::new();
    let mut in_device = false;
    for line in text.lines() {
        if line.starts_with("Idx") {
            continue;
        }
        if !line.starts_with(char::is_whitespace) {
            // "<idx>\t<name padded>: <count> <querier>"
            in_device = line
                .split_once(char::is_whitespace)
                .and_then(|(_, rest)| rest.split_once(':'))
                .is_some_and(|(name, _)| name.trim() == device);
            continue;
        }
        if !in_device {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(group), Some(users)) = (fields.next(), fields.next()) else {
            continue;
        };
        let (Ok(raw), Ok(users)) = (u32::from_str_radix(group, 16), users.parse::<u32>()) else {
            continue;
        };
        let group = Ipv4Addr::from(raw.to_ne_bytes());
        *out.entry(group).or_insert(0) += users;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_word(addr: Ipv4Addr) -> String {
        // What the kernel prints: the network-order bytes read as a host-order word.
        format!("{:08X}", u32::from_ne_bytes(addr.octets()))
    }

    #[test]
    fn counts_users_of_the_device_only() {
        let text = format!(
            "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n\
             1\tlo        :     1      V3\n\
             \t\t\t\t{}     1 0:00000000\t\t0\n\
             4\tmeshroom0 :     3      V3\n\
             \t\t\t\t{}     2 0:00000000\t\t0\n\
             \t\t\t\t{}     1 0:00000000\t\t0\n\
             \t\t\t\t{}     1 0:00000000\t\t0\n\
             5\tmeshroom01:     1      V3\n\
             \t\t\t\t{}     7 0:00000000\t\t0\n",
            hex_word(Ipv4Addr::new(224, 0, 0, 1)),
            hex_word(Ipv4Addr::new(239, 77, 1, 2)),
            hex_word(Ipv4Addr::new(239, 77, 3, 4)),
            hex_word(Ipv4Addr::new(224, 0, 0, 1)),
            hex_word(Ipv4Addr::new(239, 77, 1, 2)),
        );
        let users = group_users(&text, "meshroom0");
        assert_eq!(users.get(&Ipv4Addr::new(239, 77, 1, 2)), Some(&2));
        assert_eq!(users.get(&Ipv4Addr::new(239, 77, 3, 4)), Some(&1));
        assert_eq!(users.get(&Ipv4Addr::new(224, 0, 0, 1)), Some(&1));
        assert_eq!(users.len(), 3);
        assert_eq!(
            group_users(&text, "meshroom01").get(&Ipv4Addr::new(239, 77, 1, 2)),
            Some(&7)
        );
        assert!(group_users(&text, "eth0").is_empty());
    }

    #[test]
    fn long_device_names_without_padding() {
        let text = format!(
            "7\tmeshroom-longnm:     1      V3\n\t\t\t\t{}     3 0:00000000\t\t0\n",
            hex_word(Ipv4Addr::new(239, 77, 9, 9))
        );
        assert_eq!(
            group_users(&text, "meshroom-longnm").get(&Ipv4Addr::new(239, 77, 9, 9)),
            Some(&3)
        );
    }

    #[test]
    fn garbage_is_skipped() {
        let text =
            "junk\n\t\t\tZZZZ 1\n4\tmeshroom0 : 1 V3\n\t\t\t\tnothex x\n\t\t\t\t\n\u{0}\u{ff}";
        assert!(group_users(text, "meshroom0").is_empty());
    }
}
