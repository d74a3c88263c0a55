//! One request-rate ceiling for everything this component asks dbt Cloud.
//!
//! dbt Cloud allows 5,000 requests a minute per account, shared with every other client of the
//! account, and answers 429 with a five-minute cooldown past it. A token bucket keeps us under
//! our share however many downloads are in flight; a 429 pauses every caller together and halves
//! the rate, because the account is busier than we assumed. (A crate such as `governor` gives the
//! bucket, but neither the shared pause nor a rate that can be lowered while in use.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::termination::{Terminated, Termination};

/// The rate is never lowered below this many requests a second.
const MIN_PER_SECOND: f64 = 0.5;

pub struct RateLimiter {
    bucket: Mutex<Bucket>,
}

struct Bucket {
    per_second: f64,
    /// One second's worth of requests may go at once.
    capacity: f64,
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
}

impl RateLimiter {
    pub fn per_minute(requests: u32) -> RateLimiter {
        let per_second = f64::from(requests.max(1)) / 60.0;
        let capacity = per_second.max(1.0);
        RateLimiter {
            bucket: Mutex::new(Bucket {
                per_second,
                capacity,
                tokens: capacity,
                refilled: Instant::now(),
                paused_until: None,
            }),
        }
    }

    /// Waits until a request may go.
    pub fn acquire(&self, termination: &Termination) -> Result<(), Terminated> {
        loop {
            let wait = self.try_acquire(Instant::now());
            if wait.is_zero() {
                return Ok(());
            }
            termination.sleep(wait)?;
        }
    }

    /// Takes a token and returns zero, or returns how long to wait before asking again.
    fn try_acquire(&self, now: Instant) -> Duration {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(until) = bucket.paused_until {
            if now < until {
                return until - now;
            }
            bucket.paused_until = None;
        }
        let refill =
            now.saturating_duration_since(bucket.refilled).as_secs_f64() * bucket.per_second;
        bucket.tokens = (bucket.tokens + refill).min(bucket.capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - bucket.tokens) / bucket.per_second)
    }

    /// dbt Cloud answered 429: everyone waits `pause`, then goes on at half the rate.
    /// Returns the new rate in requests a minute.
    pub fn throttled(&self, pause: Duration) -> f64 {
        let now = Instant::now();
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let until = now + pause;
        bucket.paused_until = Some(
            bucket
                .paused_until
                .map_or(until, |current| current.max(until)),
        );
        bucket.per_second = (bucket.per_second / 2.0).max(MIN_PER_SECOND.min(bucket.per_second));
        bucket.capacity = bucket.per_second.max(1.0);
        bucket.tokens = bucket.tokens.min(bucket.capacity);
        bucket.per_second * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_then_the_steady_rate() {
        let limiter = RateLimiter::per_minute(600);
        let start = Instant::now();
        let granted = (0..30)
            .filter(|_| limiter.try_acquire(start).is_zero())
            .count();
        assert_eq!(granted, 10, "one second's worth at once");
        let wait = limiter.try_acquire(start);
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert!(limiter
            .try_acquire(start + Duration::from_millis(100))
            .is_zero());
        let later = start + Duration::from_secs(60);
        let granted = (0..30)
            .filter(|_| limiter.try_acquire(later).is_zero())
            .count();
        assert_eq!(granted, 10, "the bucket holds no more than its capacity");
    }

    #[test]
    fn a_429_pauses_everyone_and_halves_the_rate() {
        let limiter = RateLimiter::per_minute(600);
        assert_eq!(limiter.throttled(Duration::from_secs(2)), 300.0);
        let now = Instant::now();
        let wait = limiter.try_acquire(now);
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
        assert!(limiter.try_acquire(now + Duration::from_secs(2)).is_zero());
        assert_eq!(limiter.throttled(Duration::ZERO), 150.0);
        for _ in 0..10 {
            limiter.throttled(Duration::ZERO);
        }
        assert_eq!(
            limiter.throttled(Duration::ZERO),
            30.0,
            "never below one request every 2 s"
        );
    }

    #[test]
    fn acquire_waits_for_the_next_token() {
        let limiter = RateLimiter::per_minute(1200);
        let termination = Termination::none();
        let start = Instant::now();
        for _ in 0..25 {
            limiter.acquire(&termination).unwrap();
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(240),
            "20 at once, then 5 at 20 a second: {took:?}"
        );
    }
}
