//! Retries with exponential backoff and jitter, within a budget of attempts and total time.
//!
//! Callers decide what is worth another attempt ([`AttemptError::Retryable`]); this module
//! decides when, and when to give up. Giving up is a [`UserError`] that says what kept failing,
//! how often and for how long: dbt Cloud being down is not something we can fix.

use std::time::{Duration, Instant};

use log::warn;

use crate::error::UserError;
use crate::termination::Termination;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// No new attempt starts later than this after the first one.
    pub max_total: Duration,
}

impl RetryPolicy {
    /// The same policy, allowed to go on until `deadline` (while waiting for a run: a 429's
    /// five-minute cooldown must not fail the job when `max_wait_time` leaves room for it).
    pub fn until(self, deadline: Instant) -> RetryPolicy {
        RetryPolicy {
            max_attempts: u32::MAX,
            max_total: self
                .max_total
                .max(deadline.saturating_duration_since(Instant::now())),
            ..self
        }
    }

    /// The pause before the next attempt, or `None` when the budget is spent. `jitter` in [0, 1)
    /// spreads clients that failed together; `retry_after` from the server wins when it asks
    /// for longer.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let exponent = attempts_made.saturating_sub(1).min(20);
        let backoff = self
            .first_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let jittered = backoff.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        let delay = retry_after.map_or(jittered, |asked| asked.max(jittered));
        (elapsed + delay <= self.max_total).then_some(delay)
    }
}

/// How one attempt failed.
pub enum AttemptError {
    /// Worth another attempt: a connection error, a timeout, a cut body, 429, 5xx.
    Retryable {
        error: anyhow::Error,
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Fatal(anyhow::Error),
}

impl AttemptError {
    pub fn retryable(error: impl Into<anyhow::Error>) -> AttemptError {
        AttemptError::Retryable {
            error: error.into(),
            retry_after: None,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for AttemptError {
    fn from(error: E) -> AttemptError {
        AttemptError::Fatal(error.into())
    }
}

/// Runs `attempt` until it succeeds, fails fatally, or the policy's budget is spent. `on_retry`
/// sees each retryable failure before the pause (the trigger uses it to look for a run that
/// was created although the answer was lost). Pauses end early on SIGTERM.
pub fn retry<T>(
    what: &str,
    policy: &RetryPolicy,
    termination: &Termination,
    mut attempt: impl FnMut() -> Result<T, AttemptError>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut attempts_made = 0;
    loop {
        attempts_made += 1;
        let (error, retry_after) = match attempt() {
            Ok(value) => return Ok(value),
            Err(AttemptError::Fatal(error)) => return Err(error),
            Err(AttemptError::Retryable { error, retry_after }) => (error, retry_after),
        };
        let Some(delay) = policy.next_delay(
            attempts_made,
            started.elapsed(),
            retry_after,
            fastrand::f64(),
        ) else {
            return Err(UserError::new(format!(
                "{what} kept failing: {attempts_made} attempts over {:.1} s, the last one with: {error:#}. \
                 dbt Cloud may be down or throttling this account; try again later.",
                started.elapsed().as_secs_f64()
            ))
            .into());
        };
        // The budget, so that a reader knows how long this may go on.
        let total = policy.max_total.as_secs_f64();
        let budget = match policy.max_attempts {
            u32::MAX => format!("attempt {}, for up to {total:.0} s", attempts_made + 1),
            max => format!(
                "attempt {} of {max}, within {total:.0} s",
                attempts_made + 1
            ),
        };
        warn!(
            "{what} failed ({error:#}); retrying in {:.1} s ({budget})",
            delay.as_secs_f64()
        );
        termination.sleep(delay)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        max_total: Duration::from_secs(60),
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
        let cooldown = Some(Duration::from_secs(300));
        assert_eq!(POLICY.next_delay(1, Duration::ZERO, cooldown, 0.5), None);
        let waiting = POLICY.until(Instant::now() + Duration::from_secs(3600));
        assert_eq!(
            waiting.next_delay(40, Duration::ZERO, cooldown, 0.5),
            Some(Duration::from_secs(300))
        );
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
