//! One request budget for everything this component asks dbt Cloud, and one way through dbt
//! Cloud's 429 cooldown.
//!
//! dbt Cloud allows 5,000 requests a minute per account, shared with every other client of the
//! account (other configurations of this component in the same flow among them), and past it
//! answers every request of the account 429 for five minutes, usually without `Retry-After`. So
//! this component keeps to a share of that minute: at most the share's requests in any 60 s,
//! counted as the account's limit counts them (a sliding window of the requests sent). The share
//! is `max_requests_per_minute`, or sized by what the account is doing ([`super::share`]), and
//! may change while requests go. The last look and the cancel after a signal or the deadline are
//! never held by the share (they are counted in it): only the account's own cooldown holds them.
//! A window rather than a steady rate lets one run alone spend its share at once, and still keeps
//! eight runs together under the account's limit in every minute. The first 429 starts a
//! cooldown: every caller waits, and one probe at a time (after `Retry-After`, or at growing
//! intervals) asks whether it has ended, so that a cooldown costs a handful of 429s and not one per
//! worker and attempt. When a probe is answered, everyone goes on at half of what this run sent in
//! the refused window for a whole window, then climbs back to the share over the next three
//! (additive increase, multiplicative decrease). (A
//! crate such as `governor` gives a rate, but neither the shared cooldown nor a budget that changes
//! while in use.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::termination::{Terminated, Termination};
use crate::timing::Cooldown;

/// The share is never lowered below this many requests a minute.
const MIN_PER_MINUTE: f64 = 30.0;
/// After a cooldown and a window at the lowered share, the share climbs back by this part of the
/// ceiling each window.
const INCREASE_PER_WINDOW: f64 = 1.0 / 3.0;
/// How often a caller looks again while a probe is in flight.
const PROBE_CHECK: Duration = Duration::from_millis(50);

pub struct RateLimiter {
    cooldown: Cooldown,
    state: Mutex<State>,
}

struct State {
    /// The share: `max_requests_per_minute`, or what the account's activity allows.
    ceiling: f64,
    /// The share now: the ceiling, or less after a cooldown.
    per_minute: f64,
    /// From when `per_minute` climbs back (later than now while it holds after a cooldown).
    raised: Instant,
    /// Requests sent and not yet answered: each holds a place in the window.
    in_flight: usize,
    /// When each request of the last window was answered, oldest first. A request counts from
    /// its answer, which comes after dbt Cloud counted it: so no window of dbt Cloud's can hold
    /// more than the share, however long a request took to get there.
    answered: VecDeque<Instant>,
    cooling: Option<Cooling>,
    /// What the account's limit cost this run.
    throttling: Throttling,
    /// Requests sent, answered or not.
    sent: usize,
    /// Callers held by the share now, since when one first was, and how long in all some were.
    holding: usize,
    held_since: Option<Instant>,
    held: Duration,
}

/// What this run asked of dbt Cloud: how many requests, at what share a minute at most, how
/// long some request waited for the share (wall time, however many waited at once), and what
/// dbt Cloud's own limit cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub sent: usize,
    pub share: u32,
    pub held: Duration,
    pub throttling: Throttling,
}

struct Cooling {
    since: Instant,
    next_probe: Instant,
    interval: Duration,
    probing: bool,
}

/// What dbt Cloud's account-wide rate limit cost the run: how many requests it refused, and how
/// long every request waited for the account to cool down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    pub refused: usize,
    pub waited: Duration,
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

/// What holds a request back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// This run's own share of the account's requests.
    Share,
    /// dbt Cloud's cooldown of the account, after a 429.
    Cooldown,
}

/// Why a request may not go.
#[derive(Debug)]
pub enum NoPermit {
    Terminated(Terminated),
    /// The next request could go only after this deadline, held by `by`.
    PastDeadline {
        wait: Duration,
        by: Holder,
        share: u32,
    },
    /// dbt Cloud has answered 429 for longer than the cooldown's cap.
    CooledTooLong {
        since: Duration,
    },
}

impl RateLimiter {
    pub fn per_minute(requests: u32, cooldown: Cooldown) -> RateLimiter {
        let per_minute = f64::from(requests.max(1));
        RateLimiter {
            cooldown,
            state: Mutex::new(State {
                ceiling: per_minute,
                per_minute,
                raised: Instant::now(),
                in_flight: 0,
                answered: VecDeque::new(),
                cooling: None,
                throttling: Throttling::default(),
                sent: 0,
                holding: 0,
                held_since: None,
                held: Duration::ZERO,
            }),
        }
    }

    /// The share from now on. A share lowered by a cooldown climbs back to it as before; one at
    /// its old ceiling takes the new one at once.
    pub fn set_share(&self, requests: u32) {
        let mut state = self.lock();
        let share = f64::from(requests.max(1));
        let at_ceiling = state.per_minute >= state.ceiling && state.cooling.is_none();
        state.ceiling = share;
        if at_ceiling || state.per_minute > share {
            state.per_minute = share;
        }
    }

    /// What the run asked of dbt Cloud so far.
    pub fn usage(&self) -> Usage {
        let throttling = self.throttling();
        let state = self.lock();
        let holding = state
            .held_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        Usage {
            sent: state.sent,
            share: state.ceiling as u32,
            held: state.held + holding,
            throttling,
        }
    }

    /// What the account's limit has cost so far: refused requests, and the time waited, a
    /// cooldown still going included.
    pub fn throttling(&self) -> Throttling {
        let state = self.lock();
        let mut throttling = state.throttling;
        if let Some(cooling) = &state.cooling {
            throttling.waited += cooling.since.elapsed();
        }
        throttling
    }

    /// Waits until a request may go, but not past `deadline`: when the wait would cross it, waits
    /// until it and says so. An `urgent` request (the cancel and last look after a signal or the
    /// deadline) goes at once whatever the share holds; only a cooldown holds it.
    pub fn acquire(
        &self,
        termination: &Termination,
        deadline: Option<Instant>,
        urgent: bool,
    ) -> Result<Permit<'_>, NoPermit> {
        let mut held = Held {
            limiter: self,
            holding: false,
        };
        loop {
            let now = Instant::now();
            let (wait, by) = match self.try_acquire(now, urgent)? {
                Ok(probe) => {
                    return Ok(Permit {
                        limiter: self,
                        probe,
                        answered: false,
                    })
                }
                Err(hold) => hold,
            };
            held.by(by);
            if let Some(deadline) = deadline {
                if now.checked_add(wait).is_none_or(|then| then > deadline) {
                    // Up to the deadline, not less: a pause never ends a wait early.
                    let left = deadline.saturating_duration_since(now);
                    termination.sleep(left).map_err(NoPermit::Terminated)?;
                    return Err(NoPermit::PastDeadline {
                        wait: wait.saturating_sub(left),
                        by,
                        share: self.lock().ceiling as u32,
                    });
                }
            }
            termination.sleep(wait).map_err(NoPermit::Terminated)?;
        }
    }

    /// `Ok(Ok(is_probe))` when a request may go now, `Ok(Err((wait, by)))` when not yet.
    fn try_acquire(
        &self,
        now: Instant,
        urgent: bool,
    ) -> Result<Result<bool, (Duration, Holder)>, NoPermit> {
        let mut state = self.lock();
        if let Some(cooling) = &mut state.cooling {
            let since = now.saturating_duration_since(cooling.since);
            // A probe due at the cap (a capped `Retry-After`) still goes.
            if since > self.cooldown.max + self.cooldown.max_probe_interval {
                return Err(NoPermit::CooledTooLong { since });
            }
            if cooling.probing {
                return Ok(Err((PROBE_CHECK, Holder::Cooldown)));
            }
            if now < cooling.next_probe {
                return Ok(Err((cooling.next_probe - now, Holder::Cooldown)));
            }
            cooling.probing = true;
            return Ok(Ok(true));
        }
        let window = self.cooldown.window;
        if now > state.raised {
            let windows = (now - state.raised).as_secs_f64() / window.as_secs_f64();
            state.per_minute = (state.per_minute + state.ceiling * INCREASE_PER_WINDOW * windows)
                .min(state.ceiling);
            state.raised = now;
        }
        while state
            .answered
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= window)
        {
            state.answered.pop_front();
        }
        // At least one request a window, whatever the share.
        let share = (state.per_minute.floor() as usize).max(1);
        let held = state.in_flight + state.answered.len();
        if held < share || urgent {
            state.in_flight += 1;
            return Ok(Ok(false));
        }
        // The next goes when enough answered requests have left the window; while requests in
        // flight hold every place, look again shortly.
        let leaves = state
            .answered
            .get(held - share)
            .map_or(now, |at| *at + window);
        let wait = leaves.saturating_duration_since(now).max(PROBE_CHECK);
        Ok(Err((wait, Holder::Share)))
    }

    fn answer(&self, probe: bool, answer: Answer, now: Instant) {
        let mut state = self.lock();
        // Every request dbt Cloud may have counted takes a place in the window, from now.
        if !probe {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        state.sent += 1;
        state.answered.push_back(now);
        let cap = |pause: Duration| pause.min(self.cooldown.max);
        if let Answer::Throttled { .. } = answer {
            state.throttling.refused += 1;
        }
        match (answer, state.cooling.as_mut()) {
            (Answer::Throttled { retry_after }, None) => {
                self.cooldown_begins(&mut state, retry_after, now)
            }
            (Answer::Throttled { retry_after }, Some(cooling)) if probe => {
                cooling.probing = false;
                cooling.interval = (cooling.interval * 2).min(self.cooldown.max_probe_interval);
                let pause = retry_after.map_or(cooling.interval, cap);
                cooling.next_probe = now.checked_add(pause).unwrap_or(now);
            }
            (Answer::Answered, Some(cooling)) if probe => {
                let cooled = now.saturating_duration_since(cooling.since);
                info!(
                    "dbt Cloud's rate limit cooldown ended after {:.0} s; going on at {} a minute",
                    cooled.as_secs_f64(),
                    requests(state.per_minute)
                );
                state.throttling.waited += cooled;
                state.cooling = None;
                state.raised = now.checked_add(self.cooldown.window).unwrap_or(now);
            }
            (Answer::None, Some(cooling)) if probe => {
                cooling.probing = false;
                cooling.next_probe = now.checked_add(cooling.interval).unwrap_or(now);
            }
            // Requests sent before the cooldown began tell nothing new.
            _ => {}
        }
    }

    /// The first 429: every request waits for the probes, and the share is halved to what this
    /// run really sent; the account's limit said once.
    fn cooldown_begins(&self, state: &mut State, retry_after: Option<Duration>, now: Instant) {
        let first = retry_after.map_or(self.cooldown.first_probe, |pause: Duration| {
            pause.min(self.cooldown.max)
        });
        state.cooling = Some(Cooling {
            since: now,
            next_probe: now.checked_add(first).unwrap_or(now),
            interval: self.cooldown.first_probe,
            probing: false,
        });
        // Half of what this run really sent in the refused window: halving a share it
        // was not using would leave the account just as full.
        let sent = (state.answered.len() + state.in_flight) as f64;
        state.per_minute =
            (state.per_minute.min(sent) / 2.0).max(MIN_PER_MINUTE.min(state.ceiling));
        state.raised = now;
        let first_time = state.throttling.refused == 1;
        warn!(
            "dbt Cloud refused a request for its rate limit (HTTP 429{}): every request \
             waits, and one at a time asks whether the cooldown has ended (up to {:.0} s); \
             then at most {} a minute, climbing back",
            retry_after.map_or(String::new(), |after| format!(
                ", Retry-After {:.0} s",
                after.as_secs_f64()
            )),
            self.cooldown.max.as_secs_f64(),
            requests(state.per_minute)
        );
        if first_time {
            warn!(
                "The limit is the account's, not this run's: 5,000 requests a minute for \
                 everything that uses the dbt Cloud account (the other configurations of \
                 this component, other jobs and integrations), which then all wait five \
                 minutes. This run kept to {} a minute until then \
                 (max_requests_per_minute fixes a configuration's share)",
                requests(state.ceiling)
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A caller of [`RateLimiter::acquire`], while the share holds it: the time some caller is
/// held counts once, however many are.
struct Held<'a> {
    limiter: &'a RateLimiter,
    holding: bool,
}

impl Held<'_> {
    fn by(&mut self, holder: Holder) {
        let share = holder == Holder::Share;
        if share == self.holding {
            return;
        }
        let mut state = self.limiter.lock();
        let now = Instant::now();
        if share {
            state.holding += 1;
            state.held_since.get_or_insert(now);
        } else {
            end_hold(&mut state, now);
        }
        self.holding = share;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.holding {
            end_hold(&mut self.limiter.lock(), Instant::now());
        }
    }
}

fn end_hold(state: &mut State, now: Instant) {
    state.holding = state.holding.saturating_sub(1);
    if state.holding == 0 {
        if let Some(since) = state.held_since.take() {
            state.held += now.saturating_duration_since(since);
        }
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

/// A rate of requests in whole requests, with its noun: `1 request`, `550 requests`.
fn requests(per_minute: f64) -> String {
    crate::text::counted(format!("{per_minute:.0}"), "request", "requests")
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Cooldown = Cooldown {
        window: Duration::from_secs(60),
        first_probe: Duration::from_secs(5),
        max_probe_interval: Duration::from_secs(30),
        max: Duration::from_secs(330),
    };

    /// How many of `tries` requests at `at` may go, each answered at once.
    fn granted(limiter: &RateLimiter, at: Instant, tries: usize) -> usize {
        (0..tries)
            .filter(|_| match limiter.try_acquire(at, false) {
                Ok(Ok(probe)) => {
                    limiter.answer(probe, Answer::Answered, at);
                    true
                }
                _ => false,
            })
            .count()
    }

    fn wait(limiter: &RateLimiter, at: Instant) -> Duration {
        match limiter.try_acquire(at, false) {
            Ok(Err((wait, _))) => wait,
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn requests_in_flight_hold_their_places_until_answered() {
        let limiter = RateLimiter::per_minute(3, COOLDOWN);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(matches!(limiter.try_acquire(start, false), Ok(Ok(false))));
        }
        assert_eq!(wait(&limiter, start + Duration::from_secs(90)), PROBE_CHECK);
        // Answered late: each counts from its answer, a minute on.
        let answered = start + Duration::from_secs(100);
        for _ in 0..3 {
            limiter.answer(false, Answer::Answered, answered);
        }
        assert_eq!(
            wait(&limiter, answered + Duration::from_secs(30)),
            Duration::from_secs(30)
        );
        assert_eq!(granted(&limiter, answered + Duration::from_secs(60), 5), 3);
    }

    #[test]
    fn a_minutes_share_at_once_then_as_the_window_slides() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        assert_eq!(
            granted(&limiter, start, 700),
            600,
            "the minute's share at once"
        );
        let pause = wait(&limiter, start + Duration::from_secs(10));
        assert_eq!(
            pause,
            Duration::from_secs(50),
            "until the first leaves the window"
        );
        let later = start + Duration::from_secs(60);
        assert_eq!(
            granted(&limiter, later, 700),
            600,
            "the next minute's share, never more in any 60 s"
        );
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        for second in 0..120u64 {
            granted(&limiter, start + Duration::from_secs(second), 10);
        }
        assert_eq!(
            granted(&limiter, start + Duration::from_millis(119_500), 10),
            0,
            "600 in the last minute already"
        );
    }

    #[test]
    fn a_cooldown_holds_everyone_and_lets_one_probe_through_at_growing_intervals() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        assert_eq!(granted(&limiter, start, 399), 399);
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        // Other 429s of requests already in flight change nothing.
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        assert_eq!(wait(&limiter, start), Duration::from_secs(5));
        let first = start + Duration::from_secs(5);
        assert!(
            matches!(limiter.try_acquire(first, false), Ok(Ok(true))),
            "a probe"
        );
        assert_eq!(wait(&limiter, first), PROBE_CHECK, "one probe at a time");
        limiter.answer(true, Answer::Throttled { retry_after: None }, first);
        assert_eq!(wait(&limiter, first), Duration::from_secs(10));
        let second = first + Duration::from_secs(10);
        assert!(matches!(limiter.try_acquire(second, false), Ok(Ok(true))));
        limiter.answer(true, Answer::Throttled { retry_after: None }, second);
        assert_eq!(wait(&limiter, second), Duration::from_secs(20));
        let third = second + Duration::from_secs(20);
        assert!(matches!(limiter.try_acquire(third, false), Ok(Ok(true))));
        limiter.answer(true, Answer::Throttled { retry_after: None }, third);
        assert_eq!(
            wait(&limiter, third),
            Duration::from_secs(30),
            "the interval stops growing"
        );
        let fourth = third + Duration::from_secs(30);
        assert!(matches!(limiter.try_acquire(fourth, false), Ok(Ok(true))));
        limiter.answer(true, Answer::Answered, fourth);
        assert_eq!(
            granted(&limiter, fourth, 700),
            197,
            "the cooldown is over, at half of the 400 sent in the refused minute, less the three \
             probes of the last minute"
        );
        assert_eq!(
            limiter.throttling(),
            Throttling {
                refused: 5,
                waited: Duration::from_secs(65)
            }
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
            limiter.try_acquire(late, false),
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
            let permit = match limiter.try_acquire(first, false) {
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
    fn after_a_cooldown_the_share_climbs_back_to_the_ceiling() {
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        let start = Instant::now();
        assert_eq!(granted(&limiter, start, 599), 599);
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        let probe = start + Duration::from_secs(5);
        assert!(matches!(limiter.try_acquire(probe, false), Ok(Ok(true))));
        limiter.answer(true, Answer::Answered, probe);
        assert_eq!(limiter.lock().per_minute, 300.0);
        let held = probe + Duration::from_secs(59);
        granted(&limiter, held, 1);
        assert_eq!(limiter.lock().per_minute, 300.0, "held for a window");
        let later = probe + Duration::from_secs(90);
        granted(&limiter, later, 1);
        let share = limiter.lock().per_minute;
        assert!(
            (share - 400.0).abs() < 1e-6,
            "a third of the ceiling a window, after the first: {share}"
        );
        granted(&limiter, later + Duration::from_secs(500), 1);
        assert_eq!(limiter.lock().per_minute, 600.0, "never above the ceiling");
    }

    #[test]
    fn acquire_waits_for_the_window_and_not_past_a_deadline() {
        let limiter = RateLimiter::per_minute(20, COOLDOWN);
        let termination = Termination::none();
        for _ in 0..20 {
            limiter
                .acquire(&termination, None, false)
                .unwrap()
                .answered(Answer::Answered);
        }
        let started = Instant::now();
        let soon = started + Duration::from_millis(200);
        assert!(
            matches!(
                limiter.acquire(&termination, Some(soon), false),
                Err(NoPermit::PastDeadline { .. })
            ),
            "the 21st waits a minute, past the deadline"
        );
        assert!(
            Instant::now() >= soon,
            "held until the deadline, not given up before it"
        );
        limiter.answer(
            false,
            Answer::Throttled { retry_after: None },
            Instant::now(),
        );
        let soon = Instant::now() + Duration::from_millis(200);
        assert!(matches!(
            limiter.acquire(&termination, Some(soon), false),
            Err(NoPermit::PastDeadline { .. })
        ));
        assert!(Instant::now() >= soon);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_urgent_request_goes_whatever_the_share_holds_but_waits_for_a_cooldown() {
        let limiter = RateLimiter::per_minute(2, COOLDOWN);
        let start = Instant::now();
        assert_eq!(granted(&limiter, start, 5), 2);
        assert!(matches!(
            limiter.try_acquire(start, false),
            Ok(Err((_, Holder::Share)))
        ));
        assert!(
            matches!(limiter.try_acquire(start, true), Ok(Ok(false))),
            "not held by the share"
        );
        limiter.answer(false, Answer::Answered, start);
        assert_eq!(limiter.usage().sent, 3, "and counted in it");
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        assert!(
            matches!(
                limiter.try_acquire(start, true),
                Ok(Err((_, Holder::Cooldown)))
            ),
            "held by the account's cooldown"
        );
    }

    #[test]
    fn the_share_set_while_requests_go_is_the_share_from_then_on() {
        let limiter = RateLimiter::per_minute(550, COOLDOWN);
        let start = Instant::now();
        assert_eq!(granted(&limiter, start, 600), 550);
        limiter.set_share(2_500);
        assert_eq!(
            granted(&limiter, start, 3_000),
            1_950,
            "the rest of the larger share"
        );
        limiter.set_share(100);
        assert_eq!(granted(&limiter, start + Duration::from_secs(60), 200), 100);
        assert_eq!(limiter.usage().share, 100);
        assert_eq!(limiter.usage().sent, 2_600);
        // After a cooldown the share climbs back to the one set since, not at once.
        let limiter = RateLimiter::per_minute(600, COOLDOWN);
        assert_eq!(granted(&limiter, start, 599), 599);
        limiter.answer(false, Answer::Throttled { retry_after: None }, start);
        let probe = start + Duration::from_secs(5);
        assert!(matches!(limiter.try_acquire(probe, false), Ok(Ok(true))));
        limiter.answer(true, Answer::Answered, probe);
        limiter.set_share(2_000);
        assert_eq!(limiter.lock().per_minute, 300.0, "still halved");
        granted(&limiter, probe + Duration::from_secs(500), 1);
        assert_eq!(
            limiter.lock().per_minute,
            2_000.0,
            "climbed back to the new share"
        );
    }

    #[test]
    fn the_time_held_by_the_share_counts_once_however_many_wait() {
        let cooldown = Cooldown {
            window: Duration::from_millis(300),
            ..COOLDOWN
        };
        let limiter = RateLimiter::per_minute(1, cooldown);
        let termination = Termination::none();
        let started = Instant::now();
        limiter
            .acquire(&termination, None, false)
            .unwrap()
            .answered(Answer::Answered);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    limiter
                        .acquire(&termination, None, false)
                        .unwrap()
                        .answered(Answer::Answered)
                });
            }
        });
        let took = started.elapsed();
        let usage = limiter.usage();
        assert_eq!(usage.sent, 5);
        assert!(usage.held > Duration::ZERO);
        assert!(
            usage.held <= took,
            "held {:?} in {took:?}: four waiting at once count once",
            usage.held
        );
    }
}
