//! How long a call may go on: the [`Budget`] its caller gives, and the [`Plan`] the transport
//! makes of it once (retries, what stops them, each attempt's timeout, the deadline), bounded
//! by the job's limit ([`JobBound`]) and by the phase under way ([`Phase`]).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::keboola::JobLimit;
use crate::retry::{is_deadline, AttemptError, DeadlineReached, RetryPolicy};
use crate::termination::Termination;
use crate::timing::Timing;

/// No attempt's timeout is cut below this near a deadline, so that a last look can still be
/// answered.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a call may keep retrying.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Standard,
    /// While waiting for a run: until `max_wait_time` passes, and not a moment longer.
    Until(Instant),
    /// The last look and the cancel once the wait has ended: until then, and never held by the
    /// run's own share of requests (only dbt Cloud's cooldown may hold them).
    Final(Instant),
    /// After SIGTERM: a quick try that fits the grace period, never held by the run's share.
    AfterSignal,
    /// One attempt, not retried (not even after a 429): for what the job can do without.
    Once,
}

/// What a download is for, which decides what bounds it besides the job's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An artifact kept for the user: its throughput floor bounds it, not the phase under way
    /// (a large artifact may take longer than any wait).
    Keep,
    /// A file fetched only to be read (a step's results, for the tables): it ends by the
    /// phase's bound like an API call, and none starts past it.
    Read,
}

/// Keboola's limit on the job, as the client keeps to it.
#[derive(Debug, Clone, Copy)]
pub struct JobBound {
    /// No request goes on past this: the limit, less the time to record what the job has.
    pub deadline: Instant,
    pub limit: JobLimit,
}

impl JobBound {
    /// The words for this bound when it is reached.
    fn near(&self) -> String {
        format!("{} is near", self.limit)
    }
}

/// A bound on one phase of the job (the calls before the run is started, or after it ended).
struct PhaseBound {
    until: Instant,
    /// What passed, in the words of the error that says so.
    passed: String,
}

/// The bounds every plan keeps to: the job's limit, and the phase under way.
#[derive(Default)]
pub(super) struct Bounds {
    job: Option<JobBound>,
    /// The phase under way, when it has a bound: calls with [`Budget::Standard`] end by it, and
    /// downloads for [`Purpose::Read`]. Artifacts kept do not: they have their throughput floor.
    phase: Mutex<Option<PhaseBound>>,
}

/// The calls of a phase end by its bound until this is dropped; see [`Bounds::phase`].
pub struct Phase<'a> {
    bounds: &'a Bounds,
}

impl Drop for Phase<'_> {
    fn drop(&mut self) {
        *self.bounds.phase_bound() = None;
    }
}

impl Bounds {
    pub(super) fn of_the_job(job: JobBound) -> Bounds {
        Bounds {
            job: Some(job),
            phase: Mutex::new(None),
        }
    }

    pub(super) fn job(&self) -> Option<JobBound> {
        self.job
    }

    /// Until the returned guard is dropped, every call with [`Budget::Standard`] (or `Once`) and
    /// every download of a file only read ends by `until` (and its retries with it); `passed`
    /// names that bound in the error when it is reached.
    pub(super) fn phase(&self, until: Instant, passed: String) -> Phase<'_> {
        *self.phase_bound() = Some(PhaseBound { until, passed });
        Phase { bounds: self }
    }

    fn phase_bound(&self) -> MutexGuard<'_, Option<PhaseBound>> {
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How a call with `budget` goes, decided once: its retries, what stops them, each attempt's
    /// timeout, and the moment that no attempt, pause or wait for the rate limit may cross (the
    /// budget's own, the phase's and the job's, whichever comes first).
    pub(super) fn plan(&self, budget: Budget, timing: &Timing, termination: &Termination) -> Plan {
        let (policy, timeout, deadline, termination) = match budget {
            Budget::Standard => (timing.retry, timing.read_timeout, None, termination.clone()),
            Budget::Once => (
                RetryPolicy {
                    max_attempts: Some(1),
                    max_throttled: Duration::ZERO,
                    ..timing.retry
                },
                timing.read_timeout,
                None,
                termination.clone(),
            ),
            Budget::Until(deadline) | Budget::Final(deadline) => (
                timing.retry.until(deadline),
                timing.read_timeout,
                Some(deadline),
                termination.clone(),
            ),
            // After SIGTERM the calls must still go out: they are what records the cancel. A
            // cooldown in progress cannot be waited out in the grace period.
            Budget::AfterSignal => (
                timing.after_signal,
                timing.after_signal_timeout,
                Instant::now().checked_add(timing.after_signal.max_total),
                Termination::none(),
            ),
        };
        let mut plan = Plan {
            policy: policy.no_later_than(deadline),
            termination,
            timeout,
            deadline,
            bound: None,
            urgent: matches!(budget, Budget::Final(_) | Budget::AfterSignal),
            cutoff: None,
        };
        if let (Budget::Standard | Budget::Once, Some(phase)) =
            (budget, self.phase_bound().as_ref())
        {
            plan = plan.no_later_than(phase.until, phase.passed.clone());
        }
        self.within_the_job(plan)
    }

    /// A download's plan: the standard retries within the job's limit. An artifact kept has no
    /// phase's bound (its throughput floor instead); a file only read ends by the phase's, and
    /// no attempt of it starts past that bound.
    pub(super) fn download_plan(
        &self,
        purpose: Purpose,
        timing: &Timing,
        termination: &Termination,
    ) -> Plan {
        let plan = Plan {
            policy: timing.retry,
            termination: termination.clone(),
            timeout: timing.read_timeout,
            deadline: None,
            bound: None,
            urgent: false,
            cutoff: None,
        };
        let plan = match (purpose, self.phase_bound().as_ref()) {
            (Purpose::Read, Some(phase)) => Plan {
                cutoff: Some(phase.until),
                ..plan.no_later_than(phase.until, phase.passed.clone())
            },
            _ => plan,
        };
        self.within_the_job(plan)
    }

    /// The trigger's plan: its attempts end early enough before the job's deadline to look for
    /// the run a lost answer may hide, and record it.
    pub(super) fn trigger_plan(&self, timing: &Timing, termination: &Termination) -> Plan {
        let plan = self.plan(Budget::Standard, timing, termination);
        match self.job {
            Some(job) => {
                let reserve = timing.trigger_need / 2;
                let until = job.deadline.checked_sub(reserve).unwrap_or(job.deadline);
                plan.no_later_than(until, job.near())
            }
            None => plan,
        }
    }

    fn within_the_job(&self, plan: Plan) -> Plan {
        match self.job {
            Some(job) => Plan {
                cutoff: Some(
                    plan.cutoff
                        .map_or(job.deadline, |cutoff| cutoff.min(job.deadline)),
                ),
                ..plan.no_later_than(job.deadline, job.near())
            },
            None => plan,
        }
    }
}

/// One call's plan: see [`Bounds::plan`].
pub(super) struct Plan {
    pub(super) policy: RetryPolicy,
    pub(super) termination: Termination,
    /// Each attempt's, unless the deadline is nearer.
    timeout: Duration,
    pub(super) deadline: Option<Instant>,
    /// The words for the deadline when it is a bound of the job's (a phase's, the job's limit)
    /// rather than the call's own, which its caller names.
    bound: Option<String>,
    /// The cancel and last look after a signal or the deadline: never held by the run's share.
    pub(super) urgent: bool,
    /// What no request starts after and none goes on past: the job's deadline, whatever the call
    /// (a last look included), so that the tables and the message are written before the kill;
    /// for a file only read, the phase's bound too.
    pub(super) cutoff: Option<Instant>,
}

impl Plan {
    /// The next attempt's timeout: cut to the deadline, but never below [`MIN_TIMEOUT`], so that
    /// a last look can still be answered.
    pub(super) fn timeout_now(&self) -> Duration {
        let timeout = match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.timeout.min(left.max(MIN_TIMEOUT))
            }
            None => self.timeout,
        };
        self.left_before_cutoff()
            .map_or(timeout, |left| timeout.min(left))
    }

    /// How long is left before the cutoff, when the plan has one.
    pub(super) fn left_before_cutoff(&self) -> Option<Duration> {
        self.cutoff
            .map(|cutoff| cutoff.saturating_duration_since(Instant::now()))
    }

    /// Whether a request may still start: never once the cutoff has passed.
    pub(super) fn may_start(&self) -> Result<(), AttemptError> {
        match self.left_before_cutoff() {
            Some(left) if left.is_zero() => Err(AttemptError::Fatal(
                DeadlineReached("not sent".to_owned()).into(),
            )),
            _ => Ok(()),
        }
    }

    /// The same plan, ending by `deadline` too.
    fn no_later_than(self, deadline: Instant, bound: String) -> Plan {
        if self.deadline.is_some_and(|own| own <= deadline) {
            return self;
        }
        Plan {
            policy: self.policy.no_later_than(Some(deadline)),
            deadline: Some(deadline),
            bound: Some(bound),
            ..self
        }
    }

    /// A deadline reached, named when it is the job's.
    pub(super) fn named(&self, error: anyhow::Error) -> anyhow::Error {
        match &self.bound {
            Some(bound) if is_deadline(&error) => error.context(bound.clone()),
            _ => error,
        }
    }
}
