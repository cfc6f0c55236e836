//! The last hour of radio activity, minute by minute: airtime used and frames sent and received,
//! recorded where they happen (the radio thread) for the dashboard's charts.

use std::time::{Duration, Instant};

/// Minutes kept.
pub const MINUTES: usize = 60;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Minute {
    pub airtime_ms: u64,
    pub tx: u64,
    pub rx: u64,
}

/// A ring of [`MINUTES`] one-minute buckets counted from `start`.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// `(minute number since start, figures)`, one slot per minute modulo [`MINUTES`].
    slots: [(u64, Minute); MINUTES],
}

impl Activity {
    pub fn new(start: Instant) -> Self {
        Activity {
            start,
            slots: [(u64::MAX, Minute::default()); MINUTES],
        }
    }

    fn minute(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.start).as_secs() / 60
    }

    fn slot(&mut self, at: Instant) -> &mut Minute {
        let m = self.minute(at);
        let slot = &mut self.slots[(m % MINUTES as u64) as usize];
        if slot.0 != m {
            *slot = (m, Minute::default());
        }
        &mut slot.1
    }

    pub fn sent(&mut self, at: Instant, toa: Duration) {
        let s = self.slot(at);
        s.tx += 1;
        s.airtime_ms += toa.as_millis() as u64;
    }

    pub fn received(&mut self, at: Instant) {
        self.slot(at).rx += 1;
    }

    /// The last [`MINUTES`] minutes, oldest first, the current (partial) minute last.
    pub fn series(&self, now: Instant) -> Vec<Minute> {
        let current = self.minute(now);
        (0..MINUTES as u64)
            .rev()
            .map(|back| match current.checked_sub(back) {
                Some(m) => {
                    let slot = self.slots[(m % MINUTES as u64) as usize];
                    if slot.0 == m {
                        slot.1
                    } else {
                        Minute::default()
                    }
                }
                None => Minute::default(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_roll_over_and_old_ones_read_as_zero() {
        let t0 = Instant::now();
        let mut a = Activity::new(t0);
        a.sent(t0, Duration::from_millis(120));
        a.received(t0 + Duration::from_secs(61));
        a.received(t0 + Duration::from_secs(62));
        let s = a.series(t0 + Duration::from_secs(90));
        assert_eq!(s.len(), MINUTES);
        assert_eq!(s[MINUTES - 1].rx, 2);
        assert_eq!(s[MINUTES - 2].tx, 1);
        assert_eq!(s[MINUTES - 2].airtime_ms, 120);
        let later = a.series(t0 + Duration::from_secs(60 * 61));
        assert!(later.iter().all(|m| *m == Minute::default()));
    }
}
