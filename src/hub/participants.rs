//! Who is in each room right now, per side: radio clients that logged in, host sockets that
//! joined the room's group, peers that share the room. Each side adds and removes its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Serialize;

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

#[derive(Default)]
pub struct Participants {
    rooms: Mutex<HashMap<String, BTreeMap<Key, Participant>>>,
}

impl Participants {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<Key, Participant>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `p` to `room`, or refreshes it (keeping its `since`) when already there.
    pub fn join(&self, room: &str, p: Participant) {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        let key = (p.kind, p.id.clone());
        match members.get_mut(&key) {
            Some(existing) => {
                existing.last_heard = p.last_heard;
                if p.name.is_some() {
                    existing.name = p.name;
                }
                if p.role.is_some() {
                    existing.role = p.role;
                }
            }
            None => {
                members.insert(key, p);
            }
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
        rooms
            .get_mut(room)
            .and_then(|m| m.remove(&(kind, id.to_string())))
            .is_some()
    }

    /// Replaces every participant of side `kind` in `room` with `list` (keeping `since` of
    /// those who stay).
    pub fn set_side(&self, room: &str, kind: AuthorKind, list: Vec<Participant>) {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_string()).or_default();
        let mut old: BTreeMap<Key, Participant> = BTreeMap::new();
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
}
