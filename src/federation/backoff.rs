//! Reconnect delays: exponential from `min` to `max`, with jitter so that servers restarted
//! together do not dial in lockstep.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt after one more failure. `jitter` in `[0, 1)` picks a
    /// point in the upper half of the step: never less than half the nominal delay, so the
    /// growth stays visible, never more than `max`.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let step = self.min.as_secs_f64() * 2f64.powi(self.failures.min(30) as i32);
        let nominal = step.min(self.max.as_secs_f64());
        self.failures = self.failures.saturating_add(1);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::from_secs_f64(nominal * (0.5 + 0.5 * j))
    }

    /// A link came up: the next failure starts from `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_about_a_second_to_at_most_a_minute() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let delays: Vec<f64> = (0..10).map(|_| b.next_delay(0.999).as_secs_f64()).collect();
        assert!((delays[0] - 1.0).abs() < 0.01);
        assert!((delays[1] - 2.0).abs() < 0.01);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert!(delays.iter().all(|d| *d <= 60.0));
        assert!(delays[9] > 59.0);
        let low = Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).next_delay(0.0);
        assert_eq!(low, Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay(0.5) < Duration::from_secs(1));
    }
}
