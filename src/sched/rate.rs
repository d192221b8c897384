//! `--max-rate`: a cap on the calls per second of a whole run, shared by every thread.
//!
//! A token bucket in its GCRA form (generic cell rate algorithm): one atomic "theoretical
//! arrival time" that each call pushes one period further. A call may go when that time is at
//! most [`BURST`] ahead of now, so calls leave evenly spaced (at most a millisecond's worth at
//! once), and time spent idle is not saved up into a burst later. Lock-free: one
//! compare-and-swap per call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far ahead of now calls may be granted: the largest burst is this long's worth of calls.
const BURST: Duration = Duration::from_millis(1);
/// Highest cap accepted (calls per second): one period must be at least a nanosecond.
pub const RATE_PER_S_MAX: f64 = 1e9;

/// A rate limit shared by the threads of a run.
#[derive(Debug)]
pub struct RateLimiter {
    start: Instant,
    period_ns: u64,
    /// Nanoseconds since `start` at which the next call is due.
    tat_ns: AtomicU64,
    calls_per_s: f64,
}

impl RateLimiter {
    /// At most `calls_per_s` calls per second (clamped to `(0, RATE_PER_S_MAX]`).
    pub fn new(calls_per_s: f64) -> Self {
        let calls_per_s = calls_per_s.clamp(1e-3, RATE_PER_S_MAX);
        RateLimiter {
            start: Instant::now(),
            period_ns: (1e9 / calls_per_s).round().max(1.0) as u64,
            tat_ns: AtomicU64::new(0),
            calls_per_s,
        }
    }

    pub fn calls_per_s(&self) -> f64 {
        self.calls_per_s
    }

    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// Takes one call's token when one is available at `now`.
    pub fn try_take(&self, now: Instant) -> bool {
        let now_ns = self.ns(now);
        let burst_ns = BURST.as_nanos() as u64;
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_ns);
            if start > now_ns + burst_ns {
                return false;
            }
            match self.tat_ns.compare_exchange_weak(
                tat,
                start + self.period_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }

    /// When the next token will be available (for a thread to sleep until then).
    pub fn next_available(&self) -> Instant {
        let tat = self.tat_ns.load(Ordering::Relaxed);
        let burst_ns = BURST.as_nanos() as u64;
        self.start + Duration::from_nanos(tat.saturating_sub(burst_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_evenly_and_saves_no_burst() {
        let r = RateLimiter::new(10_000.0); // one call per 100 µs
        let t0 = r.start + Duration::from_secs(1);
        // At one instant: the 1 ms burst allowance and the call due now, nothing more.
        let granted = (0..100).filter(|_| r.try_take(t0)).count();
        assert_eq!(granted, 11);
        assert!(r.next_available() > t0);
        // Over the next 100 ms of fine-grained polling: 1000 more, give or take one.
        let mut n = 0;
        for us in 1..=100_000u64 {
            if r.try_take(t0 + Duration::from_micros(us)) {
                n += 1;
            }
        }
        assert!((999..=1001).contains(&n), "{n} calls in 100 ms");
        // A long idle spell does not save up calls.
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..100).filter(|_| r.try_take(later)).count(), 11);
    }
}
