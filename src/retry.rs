//! Retries with exponential backoff and jitter, within a budget of attempts and total time.
//!
//! Callers decide what is worth another attempt ([`AttemptError`]); this module decides when,
//! and when to give up. Giving up is a [`UserError`] that says what kept failing, how often and
//! for how long: dbt Cloud being down is not something we can fix.
//!
//! A 429 is not an ordinary failure: the rate limiter makes every caller wait out dbt Cloud's
//! cooldown together, so a throttled attempt spends none of the attempts and none of the time
//! budget. It has a budget of its own, [`RetryPolicy::max_throttled`], which covers the
//! documented five-minute cooldown. A deadline, when set, bounds everything: a call that is still
//! failing when it comes has reached the deadline ([`DeadlineReached`]), after pausing up to it
//! and never past it, so that a long `Retry-After` does not end a wait early.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use log::{debug, warn};

use crate::error::UserError;
use crate::termination::Termination;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// `None`: as many as the deadline allows.
    pub max_attempts: Option<u32>,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts later than this after the first one, not counting 429 cooldowns.
    pub max_total: Duration,
    /// How long a call may go on being answered 429, from the first; each cooldown itself is
    /// bounded by the rate limiter.
    pub max_throttled: Duration,
    /// No attempt starts after this, and no pause crosses it.
    pub deadline: Option<Instant>,
}

impl RetryPolicy {
    /// The same policy, with attempts and time bounded by `deadline` alone (while waiting for a
    /// run: `max_wait_time` is the budget).
    pub fn until(self, deadline: Instant) -> RetryPolicy {
        RetryPolicy {
            max_attempts: None,
            max_total: Duration::MAX,
            max_throttled: Duration::MAX,
            deadline: Some(self.deadline.map_or(deadline, |d| d.min(deadline))),
            ..self
        }
    }

    /// The same policy, its attempts and pauses also ending by `deadline` when there is one.
    pub fn no_later_than(self, deadline: Option<Instant>) -> RetryPolicy {
        let Some(deadline) = deadline else {
            return self;
        };
        RetryPolicy {
            deadline: Some(self.deadline.map_or(deadline, |d| d.min(deadline))),
            ..self
        }
    }

    /// The pause before the next attempt, or `None` when the attempts or the total time are
    /// spent. `jitter` in [0, 1) spreads clients that failed together; `retry_after` from the
    /// server wins when it asks for longer. Deadlines are the caller's to apply.
    fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| attempts_made >= max) {
            return None;
        }
        let exponent = attempts_made.saturating_sub(1).min(20);
        let backoff = self
            .first_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let jittered = backoff.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        let delay = retry_after.map_or(jittered, |asked| asked.max(jittered));
        let within_total = elapsed
            .checked_add(delay)
            .is_some_and(|end| end <= self.max_total);
        within_total.then_some(delay)
    }
}

/// An attempt that failed in a way worth trying again.
pub struct Retry {
    pub error: anyhow::Error,
    /// The server asked for at least this pause.
    pub retry_after: Option<Duration>,
    /// A budget of the caller's own, shared with other calls: no attempt after this.
    pub not_after: Option<Instant>,
    /// Logged at debug level only: the caller reports the outcome once, in its own words.
    pub quiet: bool,
    /// The request never left this machine (no connection was made), so it did nothing.
    pub not_sent: bool,
}

impl Retry {
    pub fn new(error: impl Into<anyhow::Error>) -> Retry {
        Retry {
            error: error.into(),
            retry_after: None,
            not_after: None,
            quiet: false,
            not_sent: false,
        }
    }
}

/// A time budget that several calls share, counted from the first time one of them needs it:
/// listed artifacts that keep answering 404 wait for them all together, not one after another.
pub struct SharedBudget {
    length: Duration,
    started: OnceLock<Instant>,
}

impl SharedBudget {
    pub fn new(length: Duration) -> SharedBudget {
        SharedBudget {
            length,
            started: OnceLock::new(),
        }
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    /// Whether the budget has been started and has ended.
    pub fn has_ended(&self) -> bool {
        self.started
            .get()
            .is_some_and(|started| started.elapsed() >= self.length)
    }

    /// When the budget ends; the first call starts it.
    pub fn ends(&self) -> Instant {
        let started = *self.started.get_or_init(Instant::now);
        started.checked_add(self.length).unwrap_or(started)
    }
}

/// A call could not be answered before its deadline: a failure or a pause of the rate limit
/// reached it. The caller says which limit that was; the error's context says what was failing.
#[derive(Debug)]
pub struct DeadlineReached(pub String);

impl std::fmt::Display for DeadlineReached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `error` is a deadline reached, not a failure of its own.
pub fn is_deadline(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<DeadlineReached>())
}

impl std::error::Error for DeadlineReached {}

/// How one attempt failed.
pub enum AttemptError {
    /// Worth another attempt: a connection error, a timeout, a cut body, 5xx.
    Retryable(Retry),
    /// 429: the rate limiter holds the next attempt until dbt Cloud's cooldown ends.
    Throttled(anyhow::Error),
    /// Another attempt would fail the same way.
    Fatal(anyhow::Error),
}

impl AttemptError {
    pub fn retryable(error: impl Into<anyhow::Error>) -> AttemptError {
        AttemptError::Retryable(Retry::new(error))
    }
}

impl<E: Into<anyhow::Error>> From<E> for AttemptError {
    fn from(error: E) -> AttemptError {
        AttemptError::Fatal(error.into())
    }
}

/// Runs `attempt` until it succeeds, fails fatally, or the policy's budget is spent. A signal
/// ends the pauses and stops any further attempt.
pub fn retry<T>(
    what: &str,
    policy: &RetryPolicy,
    termination: &Termination,
    mut attempt: impl FnMut() -> Result<T, AttemptError>,
) -> anyhow::Result<T> {
    let mut attempts = Attempts::new(what, policy);
    loop {
        termination.check()?;
        match attempt() {
            Ok(value) => return Ok(value),
            Err(AttemptError::Fatal(error)) => return Err(error),
            Err(AttemptError::Throttled(error)) => attempts.throttled(error)?,
            Err(AttemptError::Retryable(failure)) => match attempts.failed(failure)? {
                Next::Pause(pause) => termination.sleep(pause)?,
                Next::Deadline { left, last } => {
                    termination.sleep(left)?;
                    return Err(last);
                }
            },
        }
    }
}

/// What follows a failed attempt.
enum Next {
    Pause(Duration),
    /// The next attempt would come after the deadline: wait `left` for it, then give up with
    /// the failure.
    Deadline {
        left: Duration,
        last: anyhow::Error,
    },
}

/// The attempts of one call so far, against its policy.
struct Attempts<'a> {
    what: &'a str,
    policy: &'a RetryPolicy,
    started: Instant,
    made: u32,
    /// Since when the call has been answered 429, while it is.
    throttled_since: Option<Instant>,
    /// Time spent answered 429, which does not count against `max_total`.
    excused: Duration,
}

impl<'a> Attempts<'a> {
    fn new(what: &'a str, policy: &'a RetryPolicy) -> Attempts<'a> {
        Attempts {
            what,
            policy,
            started: Instant::now(),
            made: 0,
            throttled_since: None,
            excused: Duration::ZERO,
        }
    }

    /// A 429: the rate limiter holds the next attempt (up to the deadline, see
    /// [`crate::dbt_cloud`]); this only bounds how long that goes on.
    fn throttled(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        let since = *self.throttled_since.get_or_insert_with(Instant::now);
        if self.policy.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(DeadlineReached(format!(
                "{} was still refused by dbt Cloud's rate limit: {error:#}",
                self.what
            ))
            .into());
        }
        if self.policy.max_throttled.is_zero() {
            return Err(UserError::new(format!(
                "{} was refused by dbt Cloud's rate limit: {error:#}",
                self.what
            ))
            .into());
        }
        if since.elapsed() >= self.policy.max_throttled {
            return Err(UserError::new(format!(
                "{} was refused by dbt Cloud's rate limit for {:.0} s: {error:#}. Other clients of \
                 the account may be using its 5,000 requests a minute; lower \
                 max_requests_per_minute or try again later.",
                self.what,
                since.elapsed().as_secs_f64()
            ))
            .into());
        }
        debug!(
            "{} was throttled ({error:#}); the rate limiter holds the next attempt",
            self.what
        );
        Ok(())
    }

    /// A failure worth another attempt: the pause before it, the wait for the deadline, or the
    /// error that gives up.
    fn failed(&mut self, failure: Retry) -> anyhow::Result<Next> {
        self.made += 1;
        if let Some(since) = self.throttled_since.take() {
            self.excused += since.elapsed();
        }
        let Some(pause) = self.policy.next_delay(
            self.made,
            self.started.elapsed().saturating_sub(self.excused),
            failure.retry_after,
            fastrand::f64(),
        ) else {
            return Err(self.given_up(failure));
        };
        let now = Instant::now();
        let crosses =
            |deadline: Instant| now.checked_add(pause).is_none_or(|then| then >= deadline);
        if failure.not_after.is_some_and(crosses) {
            return Err(self.given_up(failure));
        }
        if let Some(deadline) = self.policy.deadline.filter(|d| crosses(*d)) {
            debug!(
                "{} failed ({:#}); the deadline comes before another attempt",
                self.what, failure.error
            );
            let last = DeadlineReached(format!(
                "{} was still failing: {:#}",
                self.what, failure.error
            ))
            .into();
            return Ok(Next::Deadline {
                left: deadline.saturating_duration_since(now),
                last,
            });
        }
        let deadline = match (self.policy.deadline, failure.not_after) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let line = format!(
            "{} failed ({:#}); retrying in {:.1} s ({})",
            self.what,
            failure.error,
            pause.as_secs_f64(),
            self.budget(deadline)
        );
        if failure.quiet {
            debug!("{line}");
        } else {
            warn!("{line}");
        }
        Ok(Next::Pause(pause))
    }

    fn given_up(&self, failure: Retry) -> anyhow::Error {
        let (what, made) = (self.what, self.made);
        let took = self.started.elapsed().as_secs_f64();
        let attempts = crate::text::counted(made, "attempt", "attempts");
        if failure.not_after.is_some() {
            // The caller's own budget ended: its error says why, not dbt Cloud's health.
            return failure.error.context(format!(
                "{what}: given up after {attempts} over {took:.1} s"
            ));
        }
        let last = format!("{:#}", failure.error);
        UserError::new(format!(
            "{what} kept failing: {attempts} over {took:.1} s, the last one with: {}. dbt Cloud \
             may be down or throttling this account; try again later.",
            last.trim_end_matches('.')
        ))
        .into()
    }

    /// The budget, so that a reader knows how long this may go on.
    fn budget(&self, deadline: Option<Instant>) -> String {
        match (self.policy.max_attempts, deadline) {
            (None, Some(deadline)) => format!(
                "attempt {}, for up to {:.0} s",
                self.made + 1,
                deadline
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
            ),
            (Some(max), _) => format!(
                "attempt {} of {max}, within {:.0} s",
                self.made + 1,
                self.policy.max_total.as_secs_f64()
            ),
            (None, None) => format!("attempt {}", self.made + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: Some(5),
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        max_total: Duration::from_secs(60),
        max_throttled: Duration::from_secs(330),
        deadline: None,
    };

    #[test]
    fn backs_off_exponentially_with_jitter_up_to_the_cap() {
        let at = |attempts, jitter| POLICY.next_delay(attempts, Duration::ZERO, None, jitter);
        assert_eq!(at(1, 0.0), Some(Duration::from_millis(500)));
        assert_eq!(
            at(1, 0.999_999),
            Some(Duration::from_secs(1)).map(|d| d.mul_f64(0.999_999_5))
        );
        assert_eq!(at(2, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(at(3, 0.0), Some(Duration::from_secs(2)));
        assert_eq!(at(4, 1.0), Some(Duration::from_secs(8)));
        assert_eq!(at(5, 0.0), None, "five attempts made: the budget is spent");
    }

    #[test]
    fn honours_retry_after_and_the_total_time() {
        let asked = Some(Duration::from_secs(30));
        assert_eq!(
            POLICY.next_delay(1, Duration::ZERO, asked, 0.5),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            POLICY.next_delay(1, Duration::from_secs(31), asked, 0.5),
            None,
            "30 s more would pass 60 s"
        );
        let absurd = Some(Duration::from_secs(u64::MAX));
        assert_eq!(
            POLICY.next_delay(1, Duration::from_secs(1), absurd, 0.5),
            None,
            "no overflow"
        );
    }

    #[test]
    fn a_deadline_replaces_the_attempts_and_the_total_time() {
        let waiting = POLICY.until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(waiting.max_attempts, None);
        assert_eq!(
            waiting.next_delay(40, Duration::from_secs(5000), None, 0.0),
            Some(Duration::from_secs(4)),
            "attempts and total time no longer count"
        );
        let sooner = Instant::now() + Duration::from_secs(1);
        assert_eq!(waiting.until(sooner).deadline, Some(sooner));
    }

    /// A call still failing at its deadline has reached the deadline, at the deadline: not
    /// earlier because the next pause (a `Retry-After`) would cross it, and not as "kept failing".
    #[test]
    fn a_deadline_crossed_by_failures_is_reached_at_the_deadline() {
        let termination = Termination::none();
        for retry_after in [None, Some(Duration::from_secs(300))] {
            let quick = RetryPolicy {
                first_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(40),
                ..POLICY
            }
            .until(Instant::now() + Duration::from_millis(300));
            let started = Instant::now();
            let result: anyhow::Result<()> = retry("GET /x/", &quick, &termination, || {
                Err(AttemptError::Retryable(Retry {
                    retry_after,
                    ..Retry::new(anyhow::anyhow!("HTTP 503"))
                }))
            });
            let error = result.unwrap_err();
            assert!(is_deadline(&error), "{retry_after:?}: {error:#}");
            assert_eq!(
                error.to_string(),
                "GET /x/ was still failing: HTTP 503",
                "{retry_after:?}"
            );
            let took = started.elapsed();
            assert!(
                took >= Duration::from_millis(300) && took < Duration::from_millis(400),
                "{retry_after:?}: {took:?}"
            );
        }
    }

    #[test]
    fn throttled_attempts_spend_their_own_budget_not_the_attempts() {
        let termination = Termination::none();
        let policy = RetryPolicy {
            max_attempts: Some(2),
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
            max_total: Duration::from_millis(50),
            max_throttled: Duration::from_millis(200),
            deadline: None,
        };
        let mut calls = 0;
        let value = retry("GET /x/", &policy, &termination, || {
            calls += 1;
            match calls {
                1..=20 => {
                    std::thread::sleep(Duration::from_millis(5));
                    Err(AttemptError::Throttled(anyhow::anyhow!("HTTP 429")))
                }
                21 => Err(AttemptError::retryable(anyhow::anyhow!("HTTP 502"))),
                _ => Ok(calls),
            }
        });
        assert_eq!(
            value.unwrap(),
            22,
            "100 ms throttled spent neither attempts nor time"
        );

        let started = Instant::now();
        let result: anyhow::Result<()> = retry("GET /x/", &policy, &termination, || {
            std::thread::sleep(Duration::from_millis(5));
            Err(AttemptError::Throttled(anyhow::anyhow!("HTTP 429")))
        });
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("refused by dbt Cloud's rate limit"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_millis(400));
    }

    #[test]
    fn retry_stops_on_fatal_and_reports_a_spent_budget_as_a_user_error() {
        let termination = Termination::none();
        let quick = RetryPolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..POLICY
        };
        let mut calls = 0;
        let result: anyhow::Result<()> = retry("GET /x/", &quick, &termination, || {
            calls += 1;
            Err(AttemptError::retryable(anyhow::anyhow!("HTTP 502")))
        });
        let error = result.unwrap_err();
        assert_eq!(calls, 5);
        assert!(crate::error::is_user_error(&error));
        assert!(
            error
                .to_string()
                .starts_with("GET /x/ kept failing: 5 attempts over"),
            "{error}"
        );
        assert!(error.to_string().contains("HTTP 502"), "{error}");

        let mut calls = 0;
        let result: anyhow::Result<()> = retry("GET /x/", &quick, &termination, || {
            calls += 1;
            Err(AttemptError::Fatal(anyhow::anyhow!("HTTP 404")))
        });
        assert_eq!(
            (calls, result.unwrap_err().to_string()),
            (1, "HTTP 404".to_owned())
        );

        let mut calls = 0;
        let value = retry("GET /x/", &quick, &termination, || {
            calls += 1;
            if calls < 3 {
                Err(AttemptError::retryable(anyhow::anyhow!("reset")))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(value.unwrap(), 3);
    }
}
