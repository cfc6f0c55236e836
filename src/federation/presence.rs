//! Presence over federation: each server tells its peers, per shared room, who is present at its
//! end — counts by side and the display names it knows, never keys — and tells again (debounced)
//! whenever that changes. Reports go only for rooms the link shares, so a peer that does not hold
//! a private room's PSK learns nothing of its members. Members that are themselves peer links are
//! not relayed: every server reports its own people.
//!
//! [`Reporter`] is the sending half a session runs; [`received`] files what a peer reported into
//! the hub's participants (`clients.remote` in `/status`), and the session forgets it when the
//! link ends.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::frame::{WirePresence, MAX_PRESENCE_NAMES};
use crate::hub::{Participants, RemotePresence};

/// How long membership must be still before a report goes out: a burst of logins (or a TUN
/// membership scan) becomes one frame per room.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

fn clamp(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The wire form of what is present in `room` here.
pub fn to_wire(room: &str, p: &RemotePresence) -> WirePresence {
    WirePresence {
        room: room.to_string(),
        radio: clamp(p.radio),
        ip: clamp(p.ip),
        local: clamp(p.local),
        names: p.names.iter().take(MAX_PRESENCE_NAMES).cloned().collect(),
    }
}

/// Files a peer's report (already checked by the link to be for a shared room).
pub fn received(participants: &Participants, server: &str, p: WirePresence) {
    let presence = RemotePresence {
        radio: usize::from(p.radio),
        ip: usize::from(p.ip),
        local: usize::from(p.local),
        names: p.names,
    };
    participants.set_remote(&p.room, server, presence);
}

/// Decides when to report and what changed since the last report on this link.
pub struct Reporter {
    changes: watch::Receiver<u64>,
    due: Option<Instant>,
    sent: BTreeMap<String, WirePresence>,
}

impl Reporter {
    pub fn new(participants: &Participants) -> Self {
        let mut changes = participants.watch();
        changes.mark_unchanged();
        Reporter {
            changes,
            due: None,
            sent: BTreeMap::new(),
        }
    }

    /// Report at once (the link just came up).
    pub fn now(&mut self) {
        self.due = Some(Instant::now());
    }

    /// Resolves when a report is due. Cancel-safe: a `select!` may drop it at any point.
    pub async fn ready(&mut self) {
        loop {
            match self.due {
                Some(due) => {
                    tokio::time::sleep_until(due).await;
                    return;
                }
                None => {
                    if self.changes.changed().await.is_err() {
                        // The hub is gone; nothing will change again.
                        std::future::pending::<()>().await;
                    }
                    self.due = Some(Instant::now() + DEBOUNCE);
                }
            }
        }
    }

    /// The reports to send now: the shared rooms whose presence differs from what this link
    /// last sent (a room that emptied is reported empty once).
    pub fn reports(&mut self, participants: &Participants, shared: &[String]) -> Vec<WirePresence> {
        self.due = None;
        self.changes.mark_unchanged();
        let mut out = Vec::new();
        for room in shared {
            let now = to_wire(room, &participants.presence(room));
            let before = self.sent.get(room);
            let unchanged = match before {
                Some(b) => *b == now,
                None => now.radio == 0 && now.ip == 0 && now.local == 0,
            };
            if !unchanged {
                self.sent.insert(room.clone(), now.clone());
                out.push(now);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{AuthorKind, Participant};

    #[tokio::test]
    async fn reports_only_shared_rooms_and_only_changes() {
        let parts = Participants::default();
        let mut r = Reporter::new(&parts);
        let shared = vec!["lobby".to_string()];
        let mut ana = Participant::new(AuthorKind::Radio, "aa11", 1);
        ana.name = Some("Ana".into());
        parts.join("lobby", ana);
        let mut bob = Participant::new(AuthorKind::Radio, "bb22", 1);
        bob.name = Some("Bob".into());
        parts.join("secret", bob);
        tokio::time::timeout(Duration::from_secs(5), r.ready())
            .await
            .expect("a change makes a report due");
        let sent = r.reports(&parts, &shared);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].room, "lobby");
        assert_eq!(sent[0].names, vec![(AuthorKind::Radio, "Ana".to_string())]);
        // Nothing changed: nothing to send.
        r.now();
        r.ready().await;
        assert!(r.reports(&parts, &shared).is_empty());
        // Ana leaves: the room is reported empty once.
        parts.leave("lobby", AuthorKind::Radio, "aa11");
        r.ready().await;
        let sent = r.reports(&parts, &shared);
        assert_eq!((sent.len(), sent[0].radio), (1, 0));
        received(&parts, "c", sent[0].clone());
        assert!(parts.remote("lobby").is_empty());
    }
}
