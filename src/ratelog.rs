//! Rate-limited log lines: the first occurrence is logged, repeats within the period are only
//! counted, and the next line after the period says how many were held back.
//!
//! ```
//! use meshroom_gw::ratelog::Throttle;
//! static FULL: Throttle = Throttle::per_minute();
//! if let Some(held_back) = FULL.hit() {
//!     tracing::warn!("disk full{}", meshroom_gw::ratelog::repeated(held_back));
//! }
//! ```

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One kind of repeated log line.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub const fn new(period: Duration) -> Self {
        Throttle {
            period,
            state: Mutex::new(State {
                last: None,
                held_back: 0,
            }),
        }
    }

    pub const fn per_minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// Another occurrence. `Some(n)`: log it now, `n` earlier occurrences were held back since
    /// the last line; `None`: hold this one back.
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    pub fn hit_at(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                s.held_back += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.held_back))
            }
        }
    }
}

/// The tail of a throttled line: "" or " (…repeated N times since the last report)".
pub fn repeated(held_back: u64) -> String {
    if held_back == 0 {
        String::new()
    } else {
        format!(" (…repeated {held_back} times since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_reported_with_the_next_line() {
        let t = Throttle::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(t.hit_at(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.hit_at(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(t.hit_at(t0 + Duration::from_secs(61)), Some(5));
        assert_eq!(repeated(5), " (…repeated 5 times since the last report)");
        assert_eq!(repeated(0), "");
    }

    #[test]
    fn a_burst_of_failures_is_one_line_then_one_count_a_minute() {
        // 420 failed batches in a few seconds, as a full disk gives them.
        let t = Throttle::per_minute();
        let t0 = Instant::now();
        let lines: Vec<u64> = (0..420u64)
            .filter_map(|i| t.hit_at(t0 + Duration::from_millis(i * 10)))
            .collect();
        assert_eq!(lines, vec![0]);
        // Still failing a minute on: one line carrying the count of what was held back.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(t.hit_at(later), Some(419));
        assert_eq!(t.hit_at(later + Duration::from_secs(1)), None);
        assert_eq!(t.hit_at(later + Duration::from_secs(60)), Some(1));
    }
}
