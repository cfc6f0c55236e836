//! Packet dedup (protocol sheet §11): a bounded ring of recently seen packet hashes, so a flood
//! heard again over another route, a repeater echoing our own packet, or a replayed frame is
//! handled once.

use std::collections::{HashSet, VecDeque};

/// Remembers the last `capacity` packet hashes; memory stays bounded whatever arrives.
#[derive(Debug)]
pub struct Dedup {
    ring: VecDeque<[u8; 8]>,
    set: HashSet<[u8; 8]>,
    capacity: usize,
}

impl Dedup {
    pub fn new(capacity: usize) -> Dedup {
        Dedup {
            ring: VecDeque::with_capacity(capacity),
            set: HashSet::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    /// Records `hash`; returns `false` when it was already known.
    pub fn insert(&mut self, hash: [u8; 8]) -> bool {
        if self.set.contains(&hash) {
            return false;
        }
        if self.ring.len() == self.capacity {
            if let Some(old) = self.ring.pop_front() {
                self.set.remove(&old);
            }
        }
        self.ring.push_back(hash);
        self.set.insert(hash);
        true
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_hashes_and_forgets_old_ones() {
        let mut d = Dedup::new(2);
        assert!(d.insert([1; 8]));
        assert!(!d.insert([1; 8]));
        assert!(d.insert([2; 8]));
        assert!(d.insert([3; 8]));
        assert_eq!(d.len(), 2);
        assert!(d.insert([1; 8]), "evicted hash is new again");
    }
}
