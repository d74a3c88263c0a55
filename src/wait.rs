//! Waiting for a run to become final, within `max_wait_time`.

use std::time::{Duration, Instant};

use log::{info, warn};

use crate::dbt_cloud::{Budget, DbtCloud, Run, RunStatus};
use crate::keboola::JobLimit;
use crate::retry::is_deadline;
use crate::termination::Terminated;
use crate::text::{counted, elapsed, minutes};

/// Never more often: a poll is a request against the account's shared rate limit.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Never rarer: a long run is still noticed within this of its end.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// While nothing changes, a line at most this often says the wait goes on.
const HEARTBEAT: Duration = Duration::from_secs(60);
/// With an expected duration, the first look comes this much before it.
const LEAD: Duration = Duration::from_millis(500);

/// When to look at the run next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Polling {
    /// `poll_interval` from the config.
    Fixed(Duration),
    /// From the job's recent successful runs, when it has any.
    Expecting(Duration),
    /// Soon after the trigger, then less often as the run goes on.
    Growing,
}

impl Polling {
    /// The expected duration is the median of the job's recent successful runs.
    pub fn from_history(mut durations: Vec<Duration>) -> Polling {
        if durations.is_empty() {
            return Polling::Growing;
        }
        durations.sort();
        Polling::Expecting(durations[durations.len() / 2])
    }

    /// The pause before the next poll, `elapsed` after the trigger.
    pub(crate) fn interval(&self, elapsed: Duration) -> Duration {
        let adaptive = match *self {
            Polling::Fixed(interval) => return interval.max(MIN_POLL_INTERVAL),
            Polling::Growing => elapsed / 10,
            // Rarely while the end is far, just before it, then more and more rarely past it.
            Polling::Expecting(expected) if elapsed + LEAD < expected => expected - LEAD - elapsed,
            Polling::Expecting(expected) => elapsed.saturating_sub(expected) / 4,
        };
        adaptive.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)
    }
}

/// Keboola kills a job at its time limit with SIGKILL: nothing cancelled, no run row. The wait
/// ends this long before (a quarter of a short limit), which leaves time to cancel the run and
/// write the tables.
const BEFORE_KILL: Duration = Duration::from_secs(120);

/// What bounds the wait: the user's `max_wait_time`, or, when it would end later, the job's
/// limit less [`BEFORE_KILL`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WaitBound {
    MaxWaitTime(Duration),
    JobLimit { wait: Duration, limit: JobLimit },
}

impl WaitBound {
    /// The bound on a wait that starts `elapsed` after the job began.
    pub fn new(max_wait: Duration, limit: JobLimit, elapsed: Duration) -> Self {
        let timeout = limit.duration();
        let left = timeout
            .saturating_sub(elapsed)
            .saturating_sub(BEFORE_KILL.min(timeout / 4));
        if left < max_wait {
            Self::JobLimit { wait: left, limit }
        } else {
            Self::MaxWaitTime(max_wait)
        }
    }

    pub fn wait(self) -> Duration {
        match self {
            Self::MaxWaitTime(wait) | Self::JobLimit { wait, .. } => wait,
        }
    }

    /// Said in the log before the wait, when it ends before `max_wait_time`.
    pub fn announce(self, max_wait: Duration) {
        if let Self::JobLimit { wait, limit } = self {
            info!(
                "The wait ends after {} instead of max_wait_time's {}: {limit} comes \
                 first, and the run must be recorded (and cancelled, with cancel_on_timeout) \
                 before it",
                counted(minutes(wait), "minute", "minutes"),
                minutes(max_wait),
            );
        }
    }

    /// How the timed-out message says what passed.
    pub fn describe(self) -> String {
        match self {
            Self::MaxWaitTime(limit) => {
                format!(
                    "finish within max_wait_time ({})",
                    counted(minutes(limit), "minute", "minutes")
                )
            }
            Self::JobLimit { wait, limit } => {
                format!(
                    "finish in the {} left before {limit}",
                    counted(minutes(wait), "minute", "minutes")
                )
            }
        }
    }
}

/// What bounds the wait: all of it, and the part the run spends queued.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// When the wait ends: `max_wait_time` (or the job's limit) from when it began.
    pub deadline: Instant,
    pub max_queue: Option<Duration>,
}

/// How the wait ended; each carries the run as last seen, for the run table.
pub enum WaitOutcome {
    /// The run reached Success, Error or Cancelled.
    Final(Run),
    /// `max_wait_time` passed with the run still in progress; `failing` says what dbt Cloud
    /// answered when the last looks failed up to the deadline.
    TimedOut { run: Run, failing: Option<String> },
    /// `max_queue_time` passed with the run still Queued or Starting.
    QueuedTooLong { run: Run },
    /// SIGTERM or SIGINT came.
    Terminated { run: Run, signal: &'static str },
    /// dbt Cloud could not be asked, even after retries.
    Failed { run: Run, error: anyhow::Error },
}

/// Polls get-run until the run is final or the wait's deadline has passed,
/// logging each change of status or step. The run that comes back is always get-run's, with
/// its trigger, job and steps, even when the run given is final already. The deadline is hard: retries, the rate limiter and
/// each request's timeout all end by it, whatever dbt Cloud does. `since` is when the run began, which the poll
/// schedule and the log count from: just now for a run we started, earlier for one we adopted.
pub fn until_final(
    client: &DbtCloud,
    run: Run,
    polling: Polling,
    bounds: Bounds,
    since: Instant,
) -> WaitOutcome {
    let deadline = bounds.deadline;
    // The queue's bound counts from when the run began, not from when we began waiting.
    let queue_deadline = bounds.max_queue.and_then(|max| since.checked_add(max));
    let mut last = run;
    let mut log = Narrator::new(&last, since);
    loop {
        let now = Instant::now();
        if now >= deadline && !last.status.is_final() {
            return WaitOutcome::TimedOut {
                run: last,
                failing: None,
            };
        }
        let queued = last.status.is_queued();
        if queued && queue_deadline.is_some_and(|end| now >= end) {
            return WaitOutcome::QueuedTooLong { run: last };
        }
        let until = match (queued, queue_deadline) {
            (true, Some(end)) => end.min(deadline),
            _ => deadline,
        };
        let pause = if last.status.is_final() {
            Duration::ZERO
        } else {
            polling
                .interval(now.saturating_duration_since(since))
                .min(until.saturating_duration_since(now))
        };
        if let Err(Terminated { signal }) = client.termination().sleep(pause) {
            return WaitOutcome::Terminated { run: last, signal };
        }
        match client.get_run(last.id, Budget::Until(deadline)) {
            Ok(run) => last = run,
            Err(error) => return failed(last, error),
        }
        log.saw(&last);
        if last.status.is_final() {
            return WaitOutcome::Final(last);
        }
    }
}

/// get-run could not be had: a signal, the deadline reached inside the retries, or a failure.
fn failed(last: Run, error: anyhow::Error) -> WaitOutcome {
    if let Some(Terminated { signal }) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Terminated>())
    {
        return WaitOutcome::Terminated { run: last, signal };
    }
    if is_deadline(&error) {
        return WaitOutcome::TimedOut {
            run: last,
            failing: Some(error.to_string()),
        };
    }
    WaitOutcome::Failed { run: last, error }
}

/// The wait's log: a line for each change of status or step, and one a minute while nothing
/// changes.
#[derive(Debug)]
pub(crate) struct Narrator {
    since: Instant,
    last_seen: String,
    last_said: Instant,
}

impl Narrator {
    pub(crate) fn new(run: &Run, since: Instant) -> Narrator {
        Narrator {
            since,
            last_seen: describe(run),
            last_said: Instant::now(),
        }
    }

    pub(crate) fn saw(&mut self, run: &Run) {
        let seen = describe(run);
        let took = elapsed(self.since.elapsed());
        // A status that is no code at all is said once by the client, as it is read.
        if seen != self.last_seen && matches!(run.status, RunStatus::Other(_)) {
            warn!(
                "Run {}: dbt Cloud answered with {seen}; taking the run as still in progress",
                run.id
            );
        } else if seen != self.last_seen {
            info!("Run {}: {seen} after {took}", run.id);
        } else if self.last_said.elapsed() >= HEARTBEAT {
            info!("Run {}: still {seen} after {took}", run.id);
        } else {
            return;
        }
        self.last_seen = seen;
        self.last_said = Instant::now();
    }
}

fn describe(run: &Run) -> String {
    match (run.status.is_final(), run.current_step()) {
        (false, Some(step)) => format!("{} (step {} {:?})", run.status, step.index, step.name),
        _ => run.status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn without_history_polls_often_at_first_and_rarely_later() {
        let polling = Polling::from_history(vec![]);
        assert_eq!(polling, Polling::Growing);
        assert_eq!(polling.interval(secs(0.0)), secs(1.0));
        assert_eq!(polling.interval(secs(25.0)), secs(2.5));
        assert_eq!(polling.interval(secs(7200.0)), secs(30.0));
    }

    #[test]
    fn with_history_looks_just_before_the_expected_end() {
        let polling = Polling::from_history(vec![secs(26.0), secs(24.0), secs(25.0)]);
        assert_eq!(polling, Polling::Expecting(secs(25.0)));
        assert_eq!(
            polling.interval(secs(0.0)),
            secs(24.5),
            "one look just before the end"
        );
        assert_eq!(polling.interval(secs(24.5)), secs(1.0), "then every second");
        assert_eq!(
            polling.interval(secs(33.0)),
            secs(2.0),
            "and rarer as it overruns"
        );
        let long = Polling::Expecting(secs(7200.0));
        assert_eq!(
            long.interval(secs(0.0)),
            secs(30.0),
            "never blind for longer than the cap"
        );
    }

    #[test]
    fn a_fixed_interval_is_kept_but_never_below_a_second() {
        assert_eq!(Polling::Fixed(secs(7.0)).interval(secs(100.0)), secs(7.0));
        assert_eq!(Polling::Fixed(secs(0.2)).interval(secs(0.0)), secs(1.0));
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_wait_ends_before_keboola_kills_the_job() {
        let local = |limit| JobLimit::Local(limit);
        // A wait that ends well before the kill is the user's.
        assert_eq!(
            WaitBound::new(30 * MINUTE, local(60 * MINUTE), MINUTE),
            WaitBound::MaxWaitTime(30 * MINUTE)
        );
        assert_eq!(
            WaitBound::new(90 * MINUTE, JobLimit::of(None), MINUTE),
            WaitBound::MaxWaitTime(90 * MINUTE),
            "the deployed day is far"
        );
        // One that would not: cut to leave two minutes, counted from the job's start.
        assert_eq!(
            WaitBound::new(60 * MINUTE, local(60 * MINUTE), MINUTE),
            WaitBound::JobLimit {
                wait: 57 * MINUTE,
                limit: local(60 * MINUTE)
            }
        );
        // A short limit keeps a quarter of itself.
        assert_eq!(
            WaitBound::new(10 * MINUTE, local(4 * MINUTE), Duration::ZERO),
            WaitBound::JobLimit {
                wait: 3 * MINUTE,
                limit: local(4 * MINUTE)
            }
        );
        // Past the point already: no wait at all, rather than an overflow.
        assert_eq!(
            WaitBound::new(10 * MINUTE, local(MINUTE), 2 * MINUTE).wait(),
            Duration::ZERO
        );
    }
}
