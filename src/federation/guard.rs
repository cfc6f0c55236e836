//! Rate limit for failed federation handshakes, per remote address.
//!
//! A wrong secret (or a scanner) gets `max_failures` attempts per minute; after that the
//! address is refused before any Noise work until the minute is over. The table is bounded:
//! when full, the oldest entry goes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const MAX_ENTRIES: usize = 4096;

#[derive(Debug)]
struct Strikes {
    first: Instant,
    count: u32,
}

#[derive(Debug)]
pub struct HandshakeGuard {
    max_failures: u32,
    table: HashMap<IpAddr, Strikes>,
    /// Attempts refused because their address was over the limit.
    pub refused: u64,
}

impl HandshakeGuard {
    pub fn new(max_failures: u32) -> Self {
        HandshakeGuard {
            max_failures: max_failures.max(1),
            table: HashMap::new(),
            refused: 0,
        }
    }

    /// May `ip` try a handshake now?
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.table.get(&ip) {
            Some(s) if now.saturating_duration_since(s.first) >= WINDOW => {
                self.table.remove(&ip);
                true
            }
            Some(s) if s.count >= self.max_failures => {
                self.refused += 1;
                false
            }
            _ => true,
        }
    }

    /// `ip` failed a handshake (unknown key id, wrong secret, garbage).
    pub fn failed(&mut self, ip: IpAddr, now: Instant) {
        if !self.table.contains_key(&ip) && self.table.len() >= MAX_ENTRIES {
            if let Some(oldest) = self
                .table
                .iter()
                .min_by_key(|(_, s)| s.first)
                .map(|(ip, _)| *ip)
            {
                self.table.remove(&oldest);
            }
        }
        let s = self.table.entry(ip).or_insert(Strikes {
            first: now,
            count: 0,
        });
        if now.saturating_duration_since(s.first) >= WINDOW {
            *s = Strikes {
                first: now,
                count: 0,
            };
        }
        s.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_are_refused_for_the_rest_of_the_minute() {
        let mut g = HandshakeGuard::new(3);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(g.allow(ip, t0));
            g.failed(ip, t0);
        }
        assert!(!g.allow(ip, t0 + Duration::from_secs(30)));
        assert!(g.allow(other, t0), "other addresses are not affected");
        assert!(g.allow(ip, t0 + Duration::from_secs(61)));
        assert_eq!(g.refused, 1);
    }
}
