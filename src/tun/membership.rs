//! Who listens to each room on the host: the room's `ip` participants.
//!
//! Two sources, because neither alone is enough. IGMP reports on the device arrive the moment
//! the first socket joins or the last one leaves, but say nothing about how many sockets listen.
//! `/proc/net/igmp` has the per-group socket count, but only when somebody reads it. So a report
//! about a room's group makes the shell read the file at once, and the file is also read on a
//! short period to catch the second and third sockets (which send no IGMP). Without a readable
//! file the reports alone give each room 0 or 1 listener.
//!
//! Sans-IO: the caller feeds reports, file snapshots and `now` (Unix seconds), and asks which
//! rooms' listener lists changed.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::tun::group::RoomEndpoint;
use crate::tun::igmp::GroupReport;

/// One host-side listener of a room, as the participant list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// `<device>/<group>#<n>`: the kernel does not say which process a socket belongs to.
    pub id: String,
    /// Unix seconds when the count first reached this listener.
    pub since: u64,
}

#[derive(Debug)]
struct GroupState {
    room: String,
    /// The last IGMP report said someone listens.
    reported: bool,
    /// The last `/proc/net/igmp` read, if one succeeded.
    users: Option<u32>,
    /// `since` of each listener slot; its length is the published count.
    slots: Vec<u64>,
}

impl GroupState {
    fn count(&self) -> u32 {
        self.users.unwrap_or(u32::from(self.reported))
    }
}

#[derive(Debug)]
pub struct Membership {
    device: String,
    groups: HashMap<Ipv4Addr, GroupState>,
}

impl Membership {
    pub fn new(device: &str, rooms: &[RoomEndpoint]) -> Self {
        let groups = rooms
            .iter()
            .map(|r| {
                (
                    r.group,
                    GroupState {
                        room: r.room.clone(),
                        reported: false,
                        users: None,
                        slots: Vec::new(),
                    },
                )
            })
            .collect();
        Membership {
            device: device.to_string(),
            groups,
        }
    }

    /// Takes an IGMP report; true when it concerns a room (so the counts should be read now).
    pub fn on_report(&mut self, reports: &[GroupReport]) -> bool {
        let mut relevant = false;
        for report in reports {
            if let Some(state) = self.groups.get_mut(&report.group) {
                relevant = true;
                if let Some(member) = report.member {
                    state.reported = member;
                }
            }
        }
        relevant
    }

    /// Takes a fresh read of `/proc/net/igmp` (group → sockets, for our device).
    pub fn on_proc(&mut self, users: &HashMap<Ipv4Addr, u32>) {
        for (group, state) in self.groups.iter_mut() {
            let n = users.get(group).copied().unwrap_or(0);
            state.users = Some(n);
            state.reported = n > 0;
        }
    }

    /// The file could not be read: fall back to what IGMP says.
    pub fn on_proc_unavailable(&mut self) {
        for state in self.groups.values_mut() {
            state.users = None;
        }
    }

    /// Brings every room's listener list up to date and returns the rooms whose list changed,
    /// with the new list.
    pub fn settle(&mut self, now: u64) -> Vec<(String, Vec<Listener>)> {
        let mut changed = Vec::new();
        for (group, state) in self.groups.iter_mut() {
            let want = state.count() as usize;
            if want == state.slots.len() {
                continue;
            }
            // Keep the oldest listeners' `since`: the kernel does not say which socket left,
            // and "the newest one left" keeps long-standing listeners stable in the list.
            state.slots.resize(want, now);
            let list = state
                .slots
                .iter()
                .enumerate()
                .map(|(i, since)| Listener {
                    id: format!("{}/{}#{}", self.device, group, i + 1),
                    since: *since,
                })
                .collect();
            changed.push((state.room.clone(), list));
        }
        changed.sort_by(|a, b| a.0.cmp(&b.0));
        changed
    }

    /// Current listener count of every room.
    pub fn counts(&self) -> Vec<(String, u32)> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .map(|s| (s.room.clone(), s.slots.len() as u32))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms() -> Vec<RoomEndpoint> {
        vec![
            RoomEndpoint {
                room: "a".into(),
                group: Ipv4Addr::new(239, 77, 0, 1),
                port: 7077,
            },
            RoomEndpoint {
                room: "b".into(),
                group: Ipv4Addr::new(239, 77, 0, 2),
                port: 7077,
            },
        ]
    }

    #[test]
    fn proc_counts_are_the_truth_and_only_changes_are_reported() {
        let mut m = Membership::new("meshroom0", &rooms());
        assert!(m.settle(100).is_empty());
        let mut users = HashMap::new();
        users.insert(Ipv4Addr::new(239, 77, 0, 1), 2);
        users.insert(Ipv4Addr::new(224, 0, 0, 1), 1);
        m.on_proc(&users);
        let changed = m.settle(100);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].0, "a");
        assert_eq!(
            changed[0].1,
            vec![
                Listener {
                    id: "meshroom0/239.77.0.1#1".into(),
                    since: 100
                },
                Listener {
                    id: "meshroom0/239.77.0.1#2".into(),
                    since: 100
                },
            ]
        );
        assert!(m.settle(101).is_empty(), "nothing changed");
        users.insert(Ipv4Addr::new(239, 77, 0, 1), 3);
        m.on_proc(&users);
        let changed = m.settle(105);
        assert_eq!(changed[0].1[2].since, 105);
        assert_eq!(changed[0].1[0].since, 100);
        users.clear();
        m.on_proc(&users);
        let changed = m.settle(110);
        assert_eq!(changed, vec![("a".to_string(), vec![])]);
        assert_eq!(m.counts(), vec![("a".to_string(), 0), ("b".to_string(), 0)]);
    }

    #[test]
    fn reports_alone_give_zero_or_one_and_flag_room_groups() {
        let mut m = Membership::new("meshroom0", &rooms());
        m.on_proc_unavailable();
        let join = [GroupReport {
            group: Ipv4Addr::new(239, 77, 0, 2),
            member: Some(true),
        }];
        assert!(m.on_report(&join));
        assert_eq!(m.settle(1)[0].1.len(), 1);
        let other = [GroupReport {
            group: Ipv4Addr::new(224, 0, 0, 251),
            member: Some(true),
        }];
        assert!(!m.on_report(&other));
        let unknown = [GroupReport {
            group: Ipv4Addr::new(239, 77, 0, 2),
            member: None,
        }];
        assert!(
            m.on_report(&unknown),
            "a source change still asks for a recount"
        );
        assert!(m.settle(2).is_empty());
        let leave = [GroupReport {
            group: Ipv4Addr::new(239, 77, 0, 2),
            member: Some(false),
        }];
        m.on_report(&leave);
        assert_eq!(m.settle(3), vec![("b".to_string(), vec![])]);
    }
}
