//! Airtime accounting and the duty-cycle budget over a sliding window (sans-IO: the caller passes
//! `now`). A frame may start only if the airtime already used in the window plus its own time on
//! air stays within `percent` of the window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct DutyCycle {
    window: Duration,
    allowed: Duration,
    percent: f32,
    /// (end of transmission, its time on air), oldest first.
    sent: VecDeque<(Instant, Duration)>,
    total: Duration,
}

impl DutyCycle {
    pub fn new(percent: f32, window: Duration) -> Self {
        let p = f64::from(percent.clamp(0.0, 100.0)) / 100.0;
        DutyCycle {
            window,
            allowed: window.mul_f64(p),
            percent,
            sent: VecDeque::new(),
            total: Duration::ZERO,
        }
    }

    pub fn percent(&self) -> f32 {
        self.percent
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Airtime budget per window.
    pub fn allowed(&self) -> Duration {
        self.allowed
    }

    /// Total airtime ever recorded.
    pub fn total(&self) -> Duration {
        self.total
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(end, _)) = self.sent.front() {
            if now.saturating_duration_since(end) >= self.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Airtime used in the window ending now.
    pub fn used(&mut self, now: Instant) -> Duration {
        self.expire(now);
        self.sent.iter().map(|&(_, d)| d).sum()
    }

    pub fn remaining(&mut self, now: Instant) -> Duration {
        self.allowed.saturating_sub(self.used(now))
    }

    /// `None` when a frame of `toa` may start now, else the earliest time it may.
    pub fn wait_for(&mut self, now: Instant, toa: Duration) -> Option<Instant> {
        if self.percent >= 100.0 {
            return None;
        }
        if toa > self.allowed {
            // Never fits; the scheduler drops such frames instead of waiting forever.
            return Some(now + self.window);
        }
        let mut used = self.used(now);
        if used + toa <= self.allowed {
            return None;
        }
        // Walk forward through expiries until enough has left the window.
        for &(end, d) in &self.sent {
            used = used.saturating_sub(d);
            if used + toa <= self.allowed {
                return Some(end + self.window);
            }
        }
        Some(now + self.window)
    }

    /// Records a transmission that ended at `end`.
    pub fn record(&mut self, end: Instant, toa: Duration) {
        self.sent.push_back((end, toa));
        self.total += toa;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_percent_of_a_minute_is_six_seconds_of_airtime() {
        let t0 = Instant::now();
        let mut dc = DutyCycle::new(10.0, Duration::from_secs(60));
        assert_eq!(dc.allowed(), Duration::from_secs(6));
        for i in 0..5 {
            let now = t0 + Duration::from_secs(i);
            assert_eq!(dc.wait_for(now, Duration::from_secs(1)), None);
            dc.record(now + Duration::from_secs(1), Duration::from_secs(1));
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(dc.used(now), Duration::from_secs(5));
        assert_eq!(dc.wait_for(now, Duration::from_millis(900)), None);
        // 2 s do not fit until the first second has left the window (ended at t0+1 s).
        assert_eq!(
            dc.wait_for(now, Duration::from_secs(2)),
            Some(t0 + Duration::from_secs(61))
        );
        // At t0+62 s the frames that ended at t0+1 s and t0+2 s have left the window.
        assert_eq!(
            dc.remaining(t0 + Duration::from_secs(62)),
            Duration::from_secs(3)
        );
        assert_eq!(dc.total(), Duration::from_secs(5));
    }

    #[test]
    fn unlimited_regions_never_wait() {
        let mut dc = DutyCycle::new(100.0, Duration::from_secs(60));
        let now = Instant::now();
        dc.record(now, Duration::from_secs(59));
        assert_eq!(dc.wait_for(now, Duration::from_secs(5)), None);
    }
}
