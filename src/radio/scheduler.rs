//! The transmit queue of one radio (sans-IO): three priority classes (`Reply` > `Push` >
//! `Advert`), a random backoff per frame, listen-before-talk retries, the duty-cycle budget, and a
//! bound on memory — when the queue is full the lowest-priority, oldest frame is dropped first
//! and counted.

use super::airtime::DutyCycle;
use rand::Rng;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Priority class of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxPriority {
    /// ACKs, login replies: someone is waiting for them.
    Reply,
    /// Posts pushed to clients.
    Push,
    /// Adverts: periodic, can always wait.
    Advert,
}

impl TxPriority {
    pub const ALL: [TxPriority; 3] = [TxPriority::Reply, TxPriority::Push, TxPriority::Advert];

    pub fn name(self) -> &'static str {
        match self {
            TxPriority::Reply => "reply",
            TxPriority::Push => "push",
            TxPriority::Advert => "advert",
        }
    }

    fn index(self) -> usize {
        match self {
            TxPriority::Reply => 0,
            TxPriority::Push => 1,
            TxPriority::Advert => 2,
        }
    }

    /// Upper bound of the random delay before a first attempt (spreads out answers of several
    /// gateways hearing the same request).
    fn backoff_max(self) -> Duration {
        match self {
            TxPriority::Reply => Duration::from_millis(50),
            TxPriority::Push => Duration::from_millis(300),
            TxPriority::Advert => Duration::from_millis(1000),
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRejected {
    #[error("frame of {0} bytes does not fit a LoRa packet (1..=255)")]
    Size(usize),
    #[error("transmit queue full of equal or higher priority frames")]
    QueueFull,
    #[error("frame needs more airtime than the whole duty-cycle budget")]
    OverBudget,
    #[error("the radio is stopped")]
    Stopped,
}

#[derive(Debug, Clone)]
struct Queued {
    frame: Vec<u8>,
    prio: TxPriority,
    not_before: Instant,
    /// When listen-before-talk first found the channel busy for this frame.
    busy_since: Option<Instant>,
}

/// What the radio thread should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Transmit this now (after CAD if `listen` is set). `busy_since` goes back into
    /// [`TxQueue::channel_busy`] if CAD finds the channel busy.
    Send {
        frame: Vec<u8>,
        prio: TxPriority,
        listen: bool,
        busy_since: Option<Instant>,
    },
    /// Nothing may go before this instant.
    WaitUntil(Instant),
    Idle,
}

/// Counters shown in /status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub dropped: [u64; 3],
    pub rejected: u64,
    pub deferred_by_duty_cycle: u64,
    pub lbt_busy: u64,
}

pub struct TxQueue {
    queue: VecDeque<Queued>,
    capacity: usize,
    pub stats: QueueStats,
    /// After this long of a busy channel a frame goes anyway (MeshCore does the same).
    pub max_lbt_wait: Duration,
}

impl TxQueue {
    pub fn new(capacity: usize) -> Self {
        TxQueue {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            stats: QueueStats::default(),
            max_lbt_wait: Duration::from_secs(4),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Enqueues with a random backoff. When full, evicts the oldest frame of the lowest class
    /// below `prio`; if there is none, the new frame is rejected.
    pub fn push(
        &mut self,
        frame: Vec<u8>,
        prio: TxPriority,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<(), TxRejected> {
        if frame.is_empty() || frame.len() > 255 {
            self.stats.rejected += 1;
            return Err(TxRejected::Size(frame.len()));
        }
        if self.queue.len() >= self.capacity {
            let victim = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, q)| q.prio > prio)
                .max_by_key(|(i, q)| (q.prio, std::cmp::Reverse(*i)))
                .map(|(i, _)| i);
            match victim {
                Some(i) => {
                    if let Some(q) = self.queue.remove(i) {
                        self.stats.dropped[q.prio.index()] += 1;
                    }
                }
                None => {
                    self.stats.dropped[prio.index()] += 1;
                    return Err(TxRejected::QueueFull);
                }
            }
        }
        let max = prio.backoff_max().as_micros() as u64;
        let backoff = Duration::from_micros(rng.gen_range(0..=max));
        self.queue.push_back(Queued {
            frame,
            prio,
            not_before: now + backoff,
            busy_since: None,
        });
        Ok(())
    }

    /// Picks the highest-priority ready frame (oldest first within a class), honouring backoff
    /// and the duty-cycle budget. Frames that can never fit the budget are dropped.
    pub fn next(
        &mut self,
        now: Instant,
        duty: &mut DutyCycle,
        toa: impl Fn(usize) -> Duration,
        lbt: bool,
    ) -> Next {
        // Drop frames that exceed the entire budget.
        let allowed = duty.allowed();
        let unlimited = duty.percent() >= 100.0;
        let before = self.queue.len();
        let mut dropped = [0u64; 3];
        self.queue.retain(|q| {
            let keep = unlimited || toa(q.frame.len()) <= allowed;
            if !keep {
                dropped[q.prio.index()] += 1;
            }
            keep
        });
        if self.queue.len() != before {
            for (d, n) in self.stats.dropped.iter_mut().zip(dropped) {
                *d += n;
            }
        }
        let best = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(i, q)| (q.prio, *i))
            .map(|(i, q)| (i, q.not_before, q.frame.len(), q.busy_since));
        let Some((i, not_before, len, busy_since)) = best else {
            return Next::Idle;
        };
        // Strict priority: a lower class never overtakes a waiting higher one.
        if not_before > now {
            return Next::WaitUntil(not_before);
        }
        if let Some(t) = duty.wait_for(now, toa(len)) {
            self.stats.deferred_by_duty_cycle += 1;
            return Next::WaitUntil(t);
        }
        let listen = lbt
            && busy_since
                .is_none_or(|since| now.saturating_duration_since(since) < self.max_lbt_wait);
        match self.queue.remove(i) {
            Some(q) => Next::Send {
                frame: q.frame,
                prio: q.prio,
                listen,
                busy_since: q.busy_since,
            },
            None => Next::Idle,
        }
    }

    /// Listen-before-talk found the channel busy: put the frame back at the front of its class
    /// with a random delay of up to about one frame time.
    #[allow(clippy::too_many_arguments)]
    pub fn channel_busy(
        &mut self,
        frame: Vec<u8>,
        prio: TxPriority,
        busy_since: Option<Instant>,
        now: Instant,
        frame_time: Duration,
        rng: &mut impl Rng,
    ) {
        self.stats.lbt_busy += 1;
        let max = frame_time.as_micros().max(1000) as u64;
        let delay = Duration::from_micros(rng.gen_range(max / 4..=max));
        let busy_since = Some(busy_since.unwrap_or(now));
        self.queue.push_front(Queued {
            frame,
            prio,
            not_before: now + delay,
            busy_since,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn toa(len: usize) -> Duration {
        Duration::from_millis(10 * len as u64)
    }

    #[test]
    fn replies_go_before_pushes_before_adverts() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Instant::now();
        let mut q = TxQueue::new(10);
        let mut duty = DutyCycle::new(100.0, Duration::from_secs(60));
        q.push(vec![3], TxPriority::Advert, now, &mut rng)
            .expect("queued");
        q.push(vec![2], TxPriority::Push, now, &mut rng)
            .expect("queued");
        q.push(vec![1], TxPriority::Reply, now, &mut rng)
            .expect("queued");
        let later = now + Duration::from_secs(2);
        let order: Vec<u8> = (0..3)
            .map(|_| match q.next(later, &mut duty, toa, false) {
                Next::Send { frame, .. } => frame[0],
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, [1, 2, 3]);
        assert_eq!(q.next(later, &mut duty, toa, false), Next::Idle);
    }

    #[test]
    fn a_full_queue_drops_the_lowest_class_first_and_counts_it() {
        let mut rng = StdRng::seed_from_u64(2);
        let now = Instant::now();
        let mut q = TxQueue::new(3);
        for i in 0..3 {
            q.push(vec![i], TxPriority::Advert, now, &mut rng)
                .expect("queued");
        }
        q.push(vec![9], TxPriority::Reply, now, &mut rng)
            .expect("evicts an advert");
        assert_eq!(q.stats.dropped, [0, 0, 1]);
        q.push(vec![8], TxPriority::Push, now, &mut rng)
            .expect("evicts an advert");
        q.push(vec![7], TxPriority::Push, now, &mut rng)
            .expect("evicts the last advert");
        assert_eq!(q.stats.dropped, [0, 0, 3]);
        assert_eq!(
            q.push(vec![6], TxPriority::Advert, now, &mut rng),
            Err(TxRejected::QueueFull)
        );
        assert_eq!(
            q.push(vec![5], TxPriority::Push, now, &mut rng),
            Err(TxRejected::QueueFull)
        );
        assert_eq!(q.stats.dropped, [0, 1, 4]);
        assert_eq!(q.len(), 3);
        // A flood never grows the queue.
        for _ in 0..10_000 {
            let _ = q.push(vec![0; 200], TxPriority::Reply, now, &mut rng);
        }
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn the_duty_cycle_budget_holds_frames_back() {
        let mut rng = StdRng::seed_from_u64(3);
        let now = Instant::now();
        let mut q = TxQueue::new(10);
        let mut duty = DutyCycle::new(10.0, Duration::from_secs(10));
        duty.record(now, Duration::from_millis(900));
        q.push(vec![0; 20], TxPriority::Reply, now, &mut rng)
            .expect("queued");
        let later = now + Duration::from_millis(100);
        match q.next(later, &mut duty, toa, true) {
            Next::WaitUntil(t) => assert_eq!(t, now + Duration::from_secs(10)),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.stats.deferred_by_duty_cycle, 1);
        // A frame longer than the whole budget is dropped, not kept forever.
        q.push(vec![0; 150], TxPriority::Push, now, &mut rng)
            .expect("queued");
        let _ = q.next(later, &mut duty, toa, true);
        assert_eq!(q.stats.dropped[1], 1);
    }

    #[test]
    fn a_busy_channel_defers_and_eventually_forces_the_send() {
        let mut rng = StdRng::seed_from_u64(4);
        let now = Instant::now();
        let mut q = TxQueue::new(10);
        let mut duty = DutyCycle::new(100.0, Duration::from_secs(10));
        q.push(vec![1], TxPriority::Reply, now, &mut rng)
            .expect("queued");
        let t = now + Duration::from_secs(1);
        let Next::Send {
            frame,
            prio,
            listen,
            busy_since,
        } = q.next(t, &mut duty, toa, true)
        else {
            panic!("send")
        };
        assert!(listen);
        q.channel_busy(
            frame,
            prio,
            busy_since,
            t,
            Duration::from_millis(100),
            &mut rng,
        );
        assert!(matches!(
            q.next(t, &mut duty, toa, true),
            Next::WaitUntil(_)
        ));
        let t2 = t + Duration::from_secs(1);
        let Next::Send {
            frame,
            prio,
            listen,
            busy_since,
        } = q.next(t2, &mut duty, toa, true)
        else {
            panic!("send")
        };
        assert!(listen, "still within max_lbt_wait");
        q.channel_busy(
            frame,
            prio,
            busy_since,
            t2,
            Duration::from_millis(100),
            &mut rng,
        );
        let much_later = t + Duration::from_secs(5);
        let Next::Send { listen, .. } = q.next(much_later, &mut duty, toa, true) else {
            panic!("send")
        };
        assert!(!listen, "after max_lbt_wait the frame goes without CAD");
        assert_eq!(q.stats.lbt_busy, 2);
    }
}
