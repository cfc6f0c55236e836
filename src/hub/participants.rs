//! Who is in each room right now, per side: radio clients that logged in, host sockets that
//! joined the room's group, peers that share the room. Each side adds and removes its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::watch;

use super::AuthorKind;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Participant {
    pub kind: AuthorKind,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Unix seconds.
    pub since: u64,
    /// Unix seconds.
    pub last_heard: u64,
}

impl Participant {
    pub fn new(kind: AuthorKind, id: impl Into<String>, now: u64) -> Self {
        Participant {
            kind,
            id: id.into(),
            name: None,
            role: None,
            since: now,
            last_heard: now,
        }
    }
}

/// Participant counts of one room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub radio: usize,
    pub ip: usize,
    pub peer: usize,
    pub local: usize,
}

type Key = (AuthorKind, String);

/// Who a federated server says is present at its end of one shared room: counts by side and
/// the display names it knows (never keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RemotePresence {
    pub radio: usize,
    pub ip: usize,
    pub local: usize,
    /// `(side, display name)` of the members whose name is known, sorted.
    pub names: Vec<(AuthorKind, String)>,
}

impl RemotePresence {
    pub fn total(&self) -> usize {
        self.radio + self.ip + self.local
    }
}

pub struct Participants {
    rooms: Mutex<HashMap<String, BTreeMap<Key, Participant>>>,
    /// Presence reported by peers: room → server name → what it said.
    remote: Mutex<HashMap<String, BTreeMap<String, RemotePresence>>>,
    /// Bumped whenever the local membership (who, names, roles) changes; not on `touch`.
    changed: watch::Sender<u64>,
    /// Bumped whenever a peer's presence report changes.
    remote_changed: watch::Sender<u64>,
}

impl Default for Participants {
    fn default() -> Self {
        Participants {
            rooms: Mutex::default(),
            remote: Mutex::default(),
            changed: watch::Sender::new(0),
            remote_changed: watch::Sender::new(0),
        }
    }
}

impl Participants {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<Key, Participant>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes of the local membership (joins, leaves, names and roles), for presence reports.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Changes of what peers report (for the dashboard's live view).
    pub fn watch_remote(&self) -> watch::Receiver<u64> {
        self.remote_changed.subscribe()
    }

    /// What is present in `room` at this server, by side, for a peer that shares the room:
    /// local members only (peers are not relayed), display names where known.
    pub fn presence(&self, room: &str) -> RemotePresence {
        let mut out = RemotePresence::default();
        if let Some(members) = self.lock().get(room) {
            for p in members.values() {
                match p.kind {
                    AuthorKind::Radio => out.radio += 1,
                    AuthorKind::Ip => out.ip += 1,
                    AuthorKind::Local => out.local += 1,
                    // Channel senders are not participants of the room; peers are not relayed.
                    AuthorKind::Peer | AuthorKind::Channel => continue,
                }
                if let Some(name) = p.name.as_ref().filter(|n| !n.trim().is_empty()) {
                    out.names.push((p.kind, name.clone()));
                }
            }
        }
        out.names.sort();
        out
    }

    /// Records what `server` reports present in `room`; an empty report removes the entry.
    pub fn set_remote(&self, room: &str, server: &str, presence: RemotePresence) {
        let mut remote = self.remote.lock().unwrap_or_else(|p| p.into_inner());
        let servers = remote.entry(room.to_string()).or_default();
        let changed = if presence.total() == 0 {
            servers.remove(server).is_some()
        } else {
            servers
                .insert(server.to_string(), presence.clone())
                .as_ref()
                != Some(&presence)
        };
        if servers.is_empty() {
            remote.remove(room);
        }
        drop(remote);
        if changed {
            self.remote_changed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Forgets everything `server` reported in `rooms` (its link ended).
    pub fn clear_remote(&self, server: &str, rooms: &[String]) {
        for room in rooms {
            self.set_remote(room, server, RemotePresence::default());
        }
    }

    /// Presence at each peer in `room`, by server name.
    pub fn remote(&self, room: &str) -> BTreeMap<String, RemotePresence> {
        self.remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds `p` to `room`, or refreshes it (keeping its `since`) when already there.
    pub fn join(&self, room: &str, p: Participant) {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        let key = (p.kind, p.id.clone());
        let changed = match members.get_mut(&key) {
            Some(existing) => {
                existing.last_heard = p.last_heard;
                let mut changed = false;
                if p.name.is_some() && existing.name != p.name {
                    existing.name = p.name;
                    changed = true;
                }
                if p.role.is_some() && existing.role != p.role {
                    existing.role = p.role;
                    changed = true;
                }
                changed
            }
            None => {
                members.insert(key, p);
                true
            }
        };
        drop(rooms);
        if changed {
            self.bump();
        }
    }

    /// Marks a participant as heard at `now`; false when it is not in the room.
    pub fn touch(&self, room: &str, kind: AuthorKind, id: &str, now: u64) -> bool {
        let mut rooms = self.lock();
        match rooms
            .get_mut(room)
            .and_then(|m| m.get_mut(&(kind, id.to_string())))
        {
            Some(p) => {
                p.last_heard = now;
                true
            }
            None => false,
        }
    }

    pub fn leave(&self, room: &str, kind: AuthorKind, id: &str) -> bool {
        let mut rooms = self.lock();
        let left = rooms
            .get_mut(room)
            .and_then(|m| m.remove(&(kind, id.to_string())))
            .is_some();
        drop(rooms);
        if left {
            self.bump();
        }
        left
    }

    /// Replaces every participant of side `kind` in `room` with `list` (keeping `since` of
    /// those who stay).
    pub fn set_side(&self, room: &str, kind: AuthorKind, list: Vec<Participant>) {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        let mut old: BTreeMap<Key, Participant> = BTreeMap::new();
        let who = |p: &Participant| (p.id.clone(), p.name.clone(), p.role.clone());
        let mut before: Vec<_> = members
            .values()
            .filter(|p| p.kind == kind)
            .map(who)
            .collect();
        let mut after: Vec<_> = list.iter().map(who).collect();
        before.sort();
        after.sort();
        members.retain(|k, v| {
            if k.0 == kind {
                old.insert(k.clone(), v.clone());
                false
            } else {
                true
            }
        });
        for mut p in list {
            p.kind = kind;
            let key = (kind, p.id.clone());
            if let Some(prev) = old.get(&key) {
                p.since = prev.since;
            }
            members.insert(key, p);
        }
        drop(rooms);
        if before != after {
            self.bump();
        }
    }

    /// Removes participants of side `kind` not heard since `cutoff`; returns how many left.
    pub fn expire(&self, kind: AuthorKind, cutoff: u64) -> usize {
        let mut rooms = self.lock();
        let mut gone = 0;
        for members in rooms.values_mut() {
            let before = members.len();
            members.retain(|k, p| k.0 != kind || p.last_heard >= cutoff);
            gone += before - members.len();
        }
        drop(rooms);
        if gone > 0 {
            self.bump();
        }
        gone
    }

    pub fn list(&self, room: &str) -> Vec<Participant> {
        self.lock()
            .get(room)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn counts(&self, room: &str) -> Counts {
        let mut c = Counts::default();
        if let Some(members) = self.lock().get(room) {
            for (kind, _) in members.keys() {
                c.total += 1;
                match kind {
                    AuthorKind::Radio | AuthorKind::Channel => c.radio += 1,
                    AuthorKind::Ip => c.ip += 1,
                    AuthorKind::Peer => c.peer += 1,
                    AuthorKind::Local => c.local += 1,
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_count_separately_and_replace_their_own() {
        let p = Participants::default();
        p.join("R", Participant::new(AuthorKind::Radio, "ab12", 10));
        p.set_side(
            "R",
            AuthorKind::Ip,
            vec![
                Participant::new(AuthorKind::Ip, "a", 11),
                Participant::new(AuthorKind::Ip, "b", 11),
            ],
        );
        assert_eq!(p.counts("R").total, 3);
        assert_eq!(p.counts("R").ip, 2);
        p.set_side(
            "R",
            AuthorKind::Ip,
            vec![Participant::new(AuthorKind::Ip, "a", 20)],
        );
        let c = p.counts("R");
        assert_eq!((c.radio, c.ip), (1, 1));
        let a = p.list("R").into_iter().find(|x| x.id == "a").unwrap();
        assert_eq!(a.since, 11, "a participant who stays keeps its since");
        assert_eq!(p.expire(AuthorKind::Radio, 15), 1);
        assert_eq!(p.counts("R").radio, 0);
    }

    #[test]
    fn membership_changes_are_watched_and_presence_carries_no_keys() {
        let p = Participants::default();
        let mut w = p.watch();
        let mut ana = Participant::new(AuthorKind::Radio, "ab12cd", 10);
        ana.name = Some("Ana".into());
        p.join("R", ana.clone());
        assert!(w.has_changed().unwrap());
        w.mark_unchanged();
        p.join("R", ana);
        p.touch("R", AuthorKind::Radio, "ab12cd", 30);
        assert!(!w.has_changed().unwrap(), "refreshing is not a change");
        p.join("R", Participant::new(AuthorKind::Peer, "peer-1", 10));
        p.join("R", Participant::new(AuthorKind::Ip, "10.0.0.1:5000", 10));
        let pr = p.presence("R");
        assert_eq!((pr.radio, pr.ip, pr.local, pr.total()), (1, 1, 0, 2));
        assert_eq!(pr.names, vec![(AuthorKind::Radio, "Ana".to_string())]);
        p.set_remote("R", "berlin", pr.clone());
        assert_eq!(p.remote("R")["berlin"], pr);
        p.clear_remote("berlin", &["R".to_string()]);
        assert!(p.remote("R").is_empty());
    }
}
