//! The exactly-once trigger. A lost answer (a reset, a timeout, a 5xx) may hide a run that was
//! created, so before sending again the job's newest runs are searched for the run it may have
//! started, and that run is adopted; the trigger is sent again only when there is none. Whether
//! answered or found, the run must be a new one that our request started (`NotNew` otherwise).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use log::{info, warn};
use reqwest::{Method, Url};
use serde_json::{json, Value};

use super::client::{DbtCloud, CANDIDATES_NAMED, TRIGGERED_RELATED};
use super::ids::{JobId, RunId};
use super::plan::{Budget, Plan};
use super::refusal::Refused;
use super::run::Run;
use crate::error::UserError;
use crate::retry::{is_deadline, retry, AttemptError};

/// How many of the job's newest runs are searched for one our lost trigger created.
const ADOPTION_WINDOW: usize = 20;
/// `Date` has whole seconds, and the answer takes a moment to come: a run our trigger created
/// may look this much older than our send, on dbt Cloud's clock as we estimate it.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(2);

/// How a run is started.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run, with the cause and the trigger body's optional fields.
    Trigger {
        cause: String,
        overrides: serde_json::Map<String, Value>,
    },
    /// One failed run resumed from its point of failure (`POST /runs/R/retry/`).
    Retry(RunId),
    /// The job's rerun endpoint, which resumes whatever run is the job's newest when it is
    /// called: only where the run's own retry endpoint is absent, to resume this failed run.
    Rerun(RunId),
}

/// How the run our request started is told from others the job's list may hold: by our cause,
/// or, for a resume of a failed run (which takes no cause), as a rerun (`cause_category`) newer
/// than that run, not one the scheduler, a pull request or another client started at the same
/// moment.
#[derive(Debug, Clone, Copy)]
enum Ours<'a> {
    Cause(&'a str),
    Resume(RunId),
}

impl Ours<'_> {
    /// The failed run resumed, which the resumed run must be newer than.
    fn resumes(self) -> Option<RunId> {
        match self {
            Ours::Cause(_) => None,
            Ours::Resume(failed) => Some(failed),
        }
    }

    fn started(self, run: &Run) -> bool {
        let trigger = |field: &str| {
            run.field("trigger")
                .and_then(|t| t.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match self {
            // dbt Cloud stores the cause trimmed, as Django REST framework does a text field.
            Ours::Cause(cause) => trigger("cause").as_deref().map(str::trim) == Some(cause.trim()),
            // A run whose trigger does not say is not told apart: the baseline and the clock
            // still bound it.
            Ours::Resume(_) => trigger("cause_category").is_none_or(|category| category == "rerun"),
        }
    }
}

/// dbt Cloud answered a start with a run that is not new: the run it resumes, or one not newer
/// than the job's newest before the request. It is not followed as the started run; a resume
/// goes on with a fresh run (`component::start`).
#[derive(Debug)]
pub struct NotNew {
    pub answered: RunId,
    /// The run the answer must have been newer than.
    pub newer_than: RunId,
}

impl NotNew {
    pub fn of(error: &anyhow::Error) -> Option<&NotNew> {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<NotNew>())
    }
}

impl std::fmt::Display for NotNew {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dbt Cloud answered with run {}, which is not a new run (a new one is newer than run \
             {})",
            self.answered, self.newer_than
        )
    }
}

impl std::error::Error for NotNew {}

/// The trigger's POST, as each attempt sends it.
struct Post<'a> {
    job: JobId,
    ours: Ours<'a>,
    baseline: Baseline,
    url: &'a Url,
    body: Option<&'a Value>,
    subject: &'a str,
}

/// What the attempts so far tell: when the first was sent, and whether one may have created a
/// run although its answer was lost.
#[derive(Default)]
struct Sent {
    first: Option<DateTime<Utc>>,
    maybe_created: bool,
}

/// The newest run of the job before we triggered, which a run we created must be newer than.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    Known(Option<RunId>),
    Unknown,
}

impl Baseline {
    /// The run a run started now must be newer than: the newest before, and the run resumed.
    fn floor(self, resumes: Option<RunId>) -> Option<RunId> {
        let before = match self {
            Baseline::Known(newest) => newest,
            Baseline::Unknown => None,
        };
        before.into_iter().chain(resumes).max()
    }
}

impl DbtCloud {
    /// Starts a run of `job`, exactly once. A lost answer (a reset, a timeout, a 5xx) may hide
    /// a run that was created, so before sending again we look among the job's newest runs for
    /// one newer than the newest before our first attempt, created after that attempt on dbt
    /// Cloud's clock and (for a trigger) with our cause, and adopt it. A signal before the send
    /// means no send; a signal during it leaves the run it may have created to be found, so that
    /// the caller can record and cancel it.
    pub fn start_run(&self, job: JobId, start: &Start) -> Result<Run> {
        let baseline = self.baseline(job)?;
        self.wire.termination().check()?;
        let (url, body, ours) = self.request(job, start);
        let floor = baseline.floor(ours.resumes());
        let subject = format!("job {job}");
        let mut sent = Sent::default();
        let plan = self.wire.trigger_plan();
        let result = retry(
            &format!("POST {}", url.path()),
            &plan.policy,
            &plan.termination,
            || {
                let post = Post {
                    job,
                    ours,
                    baseline,
                    url: &url,
                    body: body.as_ref(),
                    subject: &subject,
                };
                self.start_attempt(&post, &plan, &mut sent)
            },
        )
        .map_err(|error| plan.named(error));
        let error = match result {
            Ok(run) => return new_run(self.of_the_job(job, run)?, floor),
            Err(error) => error,
        };
        let in_flight = crate::termination::is_terminated(&error) && sent.first.is_some();
        if !sent.maybe_created && !in_flight {
            return Err(error);
        }
        // An attempt may have created a run, and whatever ended the attempts (a signal, the
        // deadline, lookups that kept failing) the run must not be left behind without a row:
        // one more, brief, look for it.
        match self.find_started(job, ours, baseline, sent.first, Budget::AfterSignal) {
            Ok(Some(run)) if crate::termination::is_terminated(&error) => {
                info!("The trigger was interrupted, but it started run {}", run.id);
                Ok(run)
            }
            Ok(Some(run)) => {
                info!(
                    "The trigger's answer was lost, but it started run {}: adopting it",
                    run.id
                );
                Ok(run)
            }
            _ => Err(error),
        }
    }

    /// The POST that starts the run: its URL, its body, and how its run is told.
    fn request<'a>(&self, job: JobId, start: &'a Start) -> (Url, Option<Value>, Ours<'a>) {
        match start {
            Start::Trigger { cause, overrides } => {
                let mut body = overrides.clone();
                body.insert("cause".to_owned(), json!(cause));
                let url = self.wire.api_url(&["jobs", &job.to_string(), "run", ""]);
                (url, Some(Value::Object(body)), Ours::Cause(cause))
            }
            Start::Retry(failed) => {
                let url = self
                    .wire
                    .api_url(&["runs", &failed.to_string(), "retry", ""]);
                (url, None, Ours::Resume(*failed))
            }
            Start::Rerun(failed) => {
                let url = self.wire.api_url(&["jobs", &job.to_string(), "rerun", ""]);
                (url, None, Ours::Resume(*failed))
            }
        }
    }

    /// One attempt at the trigger's POST; after an attempt that may have created a run, first a
    /// look for that run. Nothing is sent when the job's limit is too near for a trigger and its
    /// row.
    fn start_attempt(
        &self,
        post: &Post,
        plan: &Plan,
        sent: &mut Sent,
    ) -> Result<Run, AttemptError> {
        if sent.maybe_created {
            let found = self.find_started(
                post.job,
                post.ours,
                post.baseline,
                sent.first,
                Budget::Standard,
            )?;
            if let Some(run) = found {
                info!(
                    "The answer was lost, but it started run {}: adopting it",
                    run.id
                );
                return Ok(run);
            }
        }
        if let Some(job) = self.wire.job() {
            let left = job.deadline.saturating_duration_since(Instant::now());
            if left < self.wire.timing().trigger_need {
                let again = if sent.first.is_some() { " again" } else { "" };
                return Err(AttemptError::Fatal(
                    UserError::new(format!(
                        "Not triggering{again}: {} is near, {:.0} s away, and a trigger and the \
                         record of its run need {:.0} s; nothing was sent{again}. The log above \
                         says what took the job's time.",
                        job.limit,
                        left.as_secs_f64(),
                        self.wire.timing().trigger_need.as_secs_f64()
                    ))
                    .into(),
                ));
            }
        }
        sent.first.get_or_insert_with(Utc::now);
        let answer =
            self.wire
                .attempt::<Run>(Method::POST, post.url, post.body, post.subject, plan);
        answer.map(|answer| answer.data).inspect_err(|error| {
            if let AttemptError::Retryable(failure) = error {
                sent.maybe_created |= !failure.not_sent;
            }
        })
    }

    /// The job's newest run before the trigger, read twice before it is given up as unknown. A
    /// refusal the user must fix (the token, the job, the certificate, dbt Cloud unreachable)
    /// would refuse the trigger too: it ends the job at once.
    fn baseline(&self, job: JobId) -> Result<Baseline> {
        for attempt in 1..=2 {
            match self.newest_run(job) {
                Ok(newest) => return Ok(Baseline::Known(newest.map(|run| run.id))),
                Err(error)
                    if crate::termination::is_terminated(&error)
                        || crate::error::is_user_error(&error)
                        || Refused::of(&error).is_some()
                        || is_deadline(&error) =>
                {
                    return Err(error)
                }
                Err(error) => warn!(
                    "Could not list the job's runs before triggering (read {attempt} of 2): {error:#}"
                ),
            }
        }
        Ok(Baseline::Unknown)
    }

    /// The oldest run among the job's newest that our trigger created: told as ours (`Ours`),
    /// newer than the baseline and the run it resumes, and created after our first send on dbt
    /// Cloud's clock (estimated from its answers' `Date`, so our own clock may be off). With
    /// neither the baseline nor dbt Cloud's clock known there is no telling ours from another
    /// client's: an error naming them.
    fn find_started(
        &self,
        job: JobId,
        ours: Ours,
        baseline: Baseline,
        first_send: Option<DateTime<Utc>>,
        budget: Budget,
    ) -> Result<Option<Run>> {
        let runs = self
            .list_runs(job, ADOPTION_WINDOW, TRIGGERED_RELATED, &[], budget)
            .context(
                "the trigger's answer was lost, and the job's runs could not be listed to see \
                 whether it created one; not triggering again, so as not to start the job twice",
            )?;
        // Checked: both the offset and `created_at` come from the server.
        let tolerance = chrono::Duration::from_std(CLOCK_TOLERANCE).unwrap_or_default();
        let sent_on_their_clock = match (first_send, self.wire.clock_offset()) {
            (Some(sent), Some(offset)) => sent
                .checked_add_signed(offset)
                .and_then(|sent| sent.checked_sub_signed(tolerance)),
            _ => None,
        };
        let floor = baseline.floor(ours.resumes());
        let candidates: Vec<Run> = runs
            .into_iter()
            .filter(|run| floor.is_none_or(|floor| run.id > floor) && ours.started(run))
            .collect();
        let after_send = |run: &Run| match sent_on_their_clock {
            Some(sent) => run
                .timestamp("created_at")
                .is_some_and(|created| created >= sent),
            None => true,
        };
        if matches!(baseline, Baseline::Unknown)
            && sent_on_their_clock.is_none()
            && !candidates.is_empty()
        {
            return Err(undecidable(&candidates));
        }
        Ok(candidates
            .into_iter()
            .filter(after_send)
            .min_by_key(|run| run.id))
    }
}

/// `run`, when it is new: newer than `floor`.
fn new_run(run: Run, floor: Option<RunId>) -> Result<Run> {
    match floor {
        Some(floor) if run.id <= floor => Err(NotNew {
            answered: run.id,
            newer_than: floor,
        }
        .into()),
        _ => Ok(run),
    }
}

fn undecidable(candidates: &[Run]) -> anyhow::Error {
    let named: Vec<String> = candidates
        .iter()
        .take(CANDIDATES_NAMED)
        .map(|run| {
            format!(
                "run {} ({})",
                run.id,
                run.href.as_deref().unwrap_or("no link")
            )
        })
        .collect();
    UserError::new(format!(
        "The trigger's answer was lost, and neither the job's runs before it nor dbt Cloud's \
         clock could be read, so there is no telling whether it started one of these runs with \
         the same cause: {}. Not triggering again, so as not to start the job twice; check them \
         in dbt Cloud.",
        named.join(", ")
    ))
    .into()
}
