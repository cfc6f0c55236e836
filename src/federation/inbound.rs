//! Receiving side of the sync protocol: numbering incoming posts and acknowledging only what
//! this server has committed.
//!
//! Posts on a link are numbered from 1 in arrival order. The IO shell reports each as
//! committed (or deliberately dropped) when the hub is done with it; the ack sent back is the
//! highest seq below which everything is done, so an ack never covers a post that could still
//! be lost in a crash. More than `window` posts outstanding is a protocol breach by the peer.

use std::collections::VecDeque;

/// The peer sent beyond the window it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowExceeded;

#[derive(Debug)]
pub struct Inbound {
    window: u64,
    received: u64,
    done_upto: u64,
    /// Completion flags for seqs `done_upto + 1 ..= received`.
    pending: VecDeque<bool>,
    acked: u64,
}

impl Inbound {
    pub fn new(window: u16) -> Self {
        Inbound {
            window: u64::from(window.max(1)),
            received: 0,
            done_upto: 0,
            pending: VecDeque::new(),
            acked: 0,
        }
    }

    /// Numbers a newly arrived post.
    pub fn arrived(&mut self) -> Result<u64, WindowExceeded> {
        if self.received - self.done_upto >= self.window {
            return Err(WindowExceeded);
        }
        self.received += 1;
        self.pending.push_back(false);
        Ok(self.received)
    }

    /// The post `seq` is committed (or dropped for good). Unknown seqs are ignored.
    pub fn done(&mut self, seq: u64) {
        if seq <= self.done_upto || seq > self.received {
            return;
        }
        let idx = (seq - self.done_upto - 1) as usize;
        if let Some(flag) = self.pending.get_mut(idx) {
            *flag = true;
        }
        while self.pending.front() == Some(&true) {
            self.pending.pop_front();
            self.done_upto += 1;
        }
    }

    /// The ack to send, if it moved since the last one.
    pub fn take_ack(&mut self) -> Option<u64> {
        if self.done_upto > self.acked {
            self.acked = self.done_upto;
            Some(self.acked)
        } else {
            None
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_only_the_committed_prefix() {
        let mut i = Inbound::new(8);
        let a = i.arrived().unwrap();
        let b = i.arrived().unwrap();
        let c = i.arrived().unwrap();
        i.done(b);
        assert_eq!(i.take_ack(), None);
        i.done(a);
        assert_eq!(i.take_ack(), Some(2));
        i.done(c);
        assert_eq!(i.take_ack(), Some(3));
        assert_eq!(i.take_ack(), None);
    }

    #[test]
    fn a_peer_ignoring_the_window_is_caught() {
        let mut i = Inbound::new(2);
        i.arrived().unwrap();
        i.arrived().unwrap();
        assert_eq!(i.arrived(), Err(WindowExceeded));
        i.done(1);
        assert!(i.arrived().is_ok());
    }
}
