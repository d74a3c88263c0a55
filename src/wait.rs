//! Waiting for a run to become final, within `max_wait_time`.

use std::time::{Duration, Instant};

use log::info;

use crate::dbt_cloud::{Budget, DbtCloud, Run};
use crate::termination::Terminated;

const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How the wait ended; each carries the run as last seen, for the run table.
pub enum WaitOutcome {
    /// The run reached Success, Error or Cancelled.
    Final(Run),
    /// `max_wait_time` passed with the run still in progress.
    TimedOut { run: Run, limit: Duration },
    /// SIGTERM or SIGINT came.
    Terminated { run: Run, signal: &'static str },
    /// dbt Cloud could not be asked, even after retries.
    Failed { run: Run, error: anyhow::Error },
}

/// Polls get-run until the run is final or `max_wait` has passed since `since`, logging each
/// change of status or step.
pub fn until_final(client: &DbtCloud, run: Run, max_wait: Duration, since: Instant) -> WaitOutcome {
    let deadline = since + max_wait;
    let mut last = run;
    let mut last_seen = describe(&last);
    loop {
        if last.status.is_final() {
            return WaitOutcome::Final(last);
        }
        let now = Instant::now();
        if now >= deadline {
            return WaitOutcome::TimedOut {
                run: last,
                limit: max_wait,
            };
        }
        let pause = poll_interval(now - since).min(deadline - now);
        if let Err(Terminated { signal }) = client.termination().sleep(pause) {
            return WaitOutcome::Terminated { run: last, signal };
        }
        match client.get_run(last.id, Budget::Until(deadline)) {
            Ok(run) => last = run,
            Err(error) => {
                return match error.downcast::<Terminated>() {
                    Ok(Terminated { signal }) => WaitOutcome::Terminated { run: last, signal },
                    Err(error) => WaitOutcome::Failed { run: last, error },
                }
            }
        }
        let seen = describe(&last);
        if seen != last_seen {
            info!("Run {}: {seen} after {}", last.id, elapsed(since.elapsed()));
            last_seen = seen;
        }
    }
}

/// Short at first, so that a quick run is noticed at once, then longer as the run goes on, so
/// that a two-hour run does not cost thousands of requests.
fn poll_interval(elapsed: Duration) -> Duration {
    (elapsed / 10).clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL)
}

fn describe(run: &Run) -> String {
    match (run.status.is_final(), run.current_step()) {
        (false, Some(step)) => format!("{} (step {} {:?})", run.status, step.index, step.name),
        _ => run.status.to_string(),
    }
}

/// `95 s` as `1m 35s`: what a person reads in a log.
pub fn elapsed(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!(
            "{}h {}m {}s",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_often_at_first_and_rarely_later() {
        assert_eq!(poll_interval(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            poll_interval(Duration::from_secs(30)),
            Duration::from_secs(3)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(7200)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn elapsed_reads_like_a_person_wrote_it() {
        assert_eq!(elapsed(Duration::from_millis(4_900)), "4s");
        assert_eq!(elapsed(Duration::from_secs(95)), "1m 35s");
        assert_eq!(elapsed(Duration::from_secs(3_723)), "1h 2m 3s");
    }
}
