//! One request-rate ceiling for everything this component asks dbt Cloud, and one way through
//! dbt Cloud's 429 cooldown.
//!
//! dbt Cloud allows 5,000 requests a minute per account, shared with every other client of the
//! account, and past it answers every request 429 for five minutes, usually without `Retry-After`.
//! A token bucket keeps us under our share however many downloads are in flight. The first 429
//! starts a cooldown: every caller waits, and one probe at a time (after `Retry-After`, or at
//! growing intervals) asks whether it has ended, so that a cooldown costs a handful of 429s and not
//! one per worker and attempt. When a probe is answered, everyone goes on at half the rate, which
//! then climbs back by a twentieth of the ceiling every ten seconds (additive increase,
//! multiplicative decrease). (A crate such as `governor` gives the bucket, but neither the shared
//! cooldown nor a rate that changes while in use.)

use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::termination::{Terminated, Termination};
use crate::timing::Cooldown;

/// The rate is never lowered below this many requests a second.
const MIN_PER_SECOND: f64 = 0.5;
/// After a cooldown the rate climbs back by this share of the ceiling each second.
const INCREASE_PER_SECOND: f64 = 1.0 / 200.0;
/// How often a caller looks again while a probe is in flight.
const PROBE_CHECK: Duration = Duration::from_millis(50);

pub struct RateLimiter {
    ceiling: f64,
    cooldown: Cooldown,
    state: Mutex<State>,
}

struct State {
    per_second: f64,
    /// One second's worth of requests may go at once.
    capacity: f64,
    tokens: f64,
    refilled: Instant,
    cooling: Option<Cooling>,
}

struct Cooling {
    since: Instant,
    next_probe: Instant,
    interval: Duration,
    probing: bool,
}

/// Leave to send one request. Say how it was answered with [`Permit::answered`]; a permit
/// dropped unanswered counts as a request that got no answer.
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    probe: bool,
    answered: bool,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Throttled {
        retry_after: Option<Duration>,
    },
    /// Any other HTTP answer: the account is not cooling down.
    Answered,
    /// No answer (a reset, a timeout): it tells nothing about the cooldown.
    None,
}

/// Why a request may not go.
#[derive(Debug)]
pub enum NoPermit {
    Terminated(Terminated),
    /// The next request could go only after this deadline.
    PastDeadline {
        wait: Duration,
    },
    /// dbt Cloud has answered 429 for longer than the cooldown's cap.
    CooledTooLong {
        since: Duration,
    },
}

impl RateLimiter {
    pub fn per_minute(requests: u32, cooldown: Cooldown) -> RateLimiter {
        let per_second = f64::from(requests.max(1)) / 60.0;
        let capacity = per_second.max(1.0);
        RateLimiter {
            ceiling: per_second,
            cooldown,
            state: Mutex::new(State {
                per_second,
                capacity,
                tokens: capacity,
                refilled: Instant::now(),
                cooling: None,
            }),
        }
    }

    /// Waits until a request may go, but not past `deadline`.
    pub fn acquire(
        &self,
        termination: &Termination,
        deadline: Option<Instant>,
    ) -> Result<Permit<'_>, NoPermit> {
        loop {
            let now = Instant::now();
            let wait = match self.try_acquire(now)? {
                Ok(probe) => {
                    return Ok(Permit {
                        limiter: self,
                        probe,
                        answered: false,
                    })
                }
                Err(wait) => wait,
            };
            if let Some(deadline) = deadline {
                if now.checked_add(wait).is_none_or(|then| then > deadline) {
                    return Err(NoPermit::PastDeadline { wait });
                }
            }
            termination.sleep(wait).map_err(NoPermit::Terminated)?;
        }
    }

    /// `Ok(Ok(is_probe))` when a request may go now, `Ok(Err(wait))` when not yet.
    fn try_acquire(&self, now: Instant) -> Result<Result<bool, Duration>, NoPermit> {
        let mut state = self.lock();
        if let Some(cooling) = &mut state.cooling {
            let since = now.saturating_duration_since(cooling.since);
            // A probe due at the cap (a capped `Retry-After`) still goes.
            if since > self.cooldown.max + self.cooldown.max_probe_interval {
                return Err(NoPermit::CooledTooLong { since });
            }
            if cooling.probing {
                return Ok(Err(PROBE_CHECK));
            }
            if now < cooling.next_probe {
                return Ok(Err(cooling.next_probe - now));
            }
            cooling.probing = true;
            return Ok(Ok(true));
        }
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.per_second =
            (state.per_second + self.ceiling * INCREASE_PER_SECOND * elapsed).min(self.ceiling);
        state.capacity = state.per_second.max(1.0);
        state.tokens = (state.tokens + elapsed * state.per_second).min(state.capacity);
        state.refilled = now;
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return Ok(Ok(false));
        }
        Ok(Err(Duration::from_secs_f64(
            (1.0 - state.tokens) / state.per_second,
        )))
    }

    fn answer(&self, probe: bool, answer: Answer, now: Instant) {
        let mut state = self.lock();
        let cap = |pause: Duration| pause.min(self.cooldown.max);
        match (answer, state.cooling.as_mut()) {
            (Answer::Throttled { retry_after }, None) => {
                let first = retry_after.map_or(self.cooldown.first_probe, cap);
                state.cooling = Some(Cooling {
                    since: now,
                    next_probe: now.checked_add(first).unwrap_or(now),
                    interval: self.cooldown.first_probe,
                    probing: false,
                });
                state.per_second = (state.per_second / 2.0).max(MIN_PER_SECOND.min(self.ceiling));
                state.capacity = state.per_second.max(1.0);
                state.tokens = state.tokens.min(state.capacity);
                warn!(
                    "dbt Cloud's rate limit was reached (HTTP 429{}): every request waits, and \
                     one at a time asks whether the cooldown has ended (up to {:.0} s); then at \
                     most {:.0} requests a minute, climbing back",
                    retry_after.map_or(String::new(), |after| format!(
                        ", Retry-After {:.0} s",
                        after.as_secs_f64()
                    )),
                    self.cooldown.max.as_secs_f64(),
                    state.per_second * 60.0
                );
            }
            (Answer::Throttled { retry_after }, Some(cooling)) if probe => {
                cooling.probing = false;
                cooling.interval = (cooling.interval * 2).min(self.cooldown.max_probe_interval);
                let pause = retry_after.map_or(cooling.interval, cap);
                cooling.next_probe = now.checked_add(pause).unwrap_or(now);
            }
            (Answer::Answered, Some(cooling)) if probe => {
                info!(
                    "dbt Cloud's rate limit cooldown ended after {:.0} s; going on at {:.0} requests a minute",
                    now.saturating_duration_since(cooling.since).as_secs_f64(),
                    state.per_second * 60.0
                );
                state.cooling = None;
                state.refilled = now;
            }
            (Answer::None, Some(cooling)) if probe => {
                cooling.probing = false;
                cooling.next_probe = now.checked_add(cooling.interval).unwrap_or(now);
            }
            // Requests sent before the cooldown began tell nothing new.
            _ => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Permit<'_> {
    pub fn answered(mut self, answer: Answer) {
        self.answered = true;
        self.limiter.answer(self.probe, answer, Instant::now());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.limiter
                .answer(self.probe, Answer::None, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Cooldown = Cooldown {
        first_probe: Duration::from_secs(5),
        max_probe_interval: Duration::from_secs(30),
        max: Duration::from_secs(330),
    };

    fn granted(limiter: &RateLimiter, at: Instant, tries: usize) -> usize {
        (0..tries)
            .filter(|_| matches!(limiter.try_acquire(at), Ok(Ok(_))))
            .count()
    }

    fn wait(limiter: &RateLimiter, at: Instant) -> Duration {
        match limiter.try_acquire(at) {
            Ok(Err(wait)) => wait,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn a_burst_of_one_second_then_the_steady_rate() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        assert_eq!(
            granted(&limiter, start, 30),
            10,
            "one second's worth at once"
        );
        let pause = wait(&limiter, start);
        assert!(
            pause > Duration::from_millis(90) && pause <= Duration::from_millis(100),
            "{pause:?}"
        );
        assert_eq!(granted(&limiter, start + Duration::from_millis(100), 1), 1);
        let later = start + Duration::from_secs(60);
        assert_eq!(
            granted(&limiter, later, 30),
            10,
            "the bucket holds no more than its capacity"
        );
    }

    #[test]
    fn a_cooldown_holds_everyone_and_lets_one_probe_through_at_growing_intervals() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        // Other 429s of requests already in flight change nothing.
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        assert_eq!(wait(&limiter, start), Duration::from_secs(5));
        let first = start + Duration::from_secs(5);
        assert!(
            matches!(limiter.try_acquire(first), Ok(Ok(true))),
            "a probe"
        );
        assert_eq!(wait(&limiter, first), PROBE_CHECK, "one probe at a time");
        limiter.answer(true, Answer::Throttled { retry_after: None }, first);
        assert_eq!(wait(&limiter, first), Duration::from_secs(10));
        let second = first + Duration::from_secs(10);
        assert!(matches!(limiter.try_acquire(second), Ok(Ok(true))));
        limiter.answer(true, Answer::Throttled { retry_after: None }, second);
        assert_eq!(wait(&limiter, second), Duration::from_secs(20));
        let third = second + Duration::from_secs(20);
        assert!(matches!(limiter.try_acquire(third), Ok(Ok(true))));
        limiter.answer(true, Answer::Throttled { retry_after: None }, third);
        assert_eq!(
            wait(&limiter, third),
            Duration::from_secs(30),
            "the interval stops growing"
        );
        let fourth = third + Duration::from_secs(30);
        assert!(matches!(limiter.try_acquire(fourth), Ok(Ok(true))));
        limiter.answer(true, Answer::Answered, fourth);
        assert_eq!(
            granted(&limiter, fourth, 30),
            5,
            "the cooldown is over, at half the rate"
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap_and_a_cooldown_ends_at_the_cap() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        let absurd = Duration::from_secs(u64::MAX);
        limiter.answer(
            false,
            Answer::Throttled {
                retry_after: Some(absurd),
            },
            start,
        );
        assert_eq!(wait(&limiter, start), Duration::from_secs(330));
        let late = start + Duration::from_secs(361);
        assert!(matches!(
            limiter.try_acquire(late),
            Err(NoPermit::CooledTooLong { .. })
        ));
    }

    #[test]
    fn a_probe_without_an_answer_frees_the_way_for_the_next() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        let first = start + Duration::from_secs(5);
        {
            let permit = match limiter.try_acquire(first) {
                Ok(Ok(true)) => Permit {
                    limiter: &limiter,
                    probe: true,
                    answered: false,
                },
                other => panic!("{other:?}"),
            };
            drop(permit);
        }
        let pause = wait(&limiter, Instant::now());
        assert!(pause <= Duration::from_secs(5), "{pause:?}");
    }

    #[test]
    fn after_a_cooldown_the_rate_climbs_back_to_the_ceiling() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        let probe = start + Duration::from_secs(5);
        assert!(matches!(limiter.try_acquire(probe), Ok(Ok(true))));
        limiter.answer(true, Answer::Answered, probe);
        assert_eq!(limiter.lock().per_second, 5.0);
        let later = probe + Duration::from_secs(50);
        granted(&limiter, later, 1);
        let rate = limiter.lock().per_second;
        assert!(
            (rate - 7.5).abs() < 1e-9,
            "a quarter of the ceiling in 50 s: {rate}"
        );
        granted(&limiter, later + Duration::from_secs(500), 1);
        assert_eq!(limiter.lock().per_second, 10.0, "never above the ceiling");
    }

    #[test]
    fn acquire_waits_for_the_next_token_and_not_past_a_deadline() {
        let limiter = RateLimiter::per_minute(1200, COOLDOWN);
        let termination = Termination::none();
        let start = Instant::now();
        for _ in 0..25 {
            limiter
                .acquire(&termination, None)
                .unwrap()
                .answered(Answer::Answered);
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(240),
            "20 at once, then 5 at 20 a second: {took:?}"
        );
        limiter.answer(
            false,
            Answer::Throttled { retry_after: None },
            Instant::now(),
        );
        let soon = Instant::now() + Duration::from_secs(1);
        assert!(matches!(
            limiter.acquire(&termination, Some(soon)),
            Err(NoPermit::PastDeadline { .. })
        ));
    }
}
