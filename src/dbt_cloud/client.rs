//! The only code that talks HTTP: the dbt Cloud Administrative API v2 calls this component makes,
//! their retries, and the translation of the API's error answers into messages a user can act on.
//!
//! GETs and cancel are retried on transport errors, 429 and 5xx. The trigger is not: when its
//! outcome is unknown, the job's newest runs are searched for the run it may have created, and
//! the trigger is sent again only when there is none (see [`DbtCloud::start_run`]).
//!
//! Every request waits for the one [`RateLimiter`], goes out on a thread that a signal abandons,
//! and tells the limiter how it was answered. Failures on our side of the wire (a full disk, a
//! certificate this machine does not trust) are not retried.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use log::{debug, info, warn};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::answer::{decode_envelope, read_limited, Envelope, Listed, Undecodable, Unreadable};
use super::ids::{AccountId, JobId, RunId, WholeNumber};
use super::rate_limit::{Answer, NoPermit, RateLimiter, Throttling};
use super::refusal::{Asked, Kind, Refusal};
use super::run::{Run, RunStatus, Runs};
use super::url::{is_safe_redirect, retirement, BaseUrl};
use super::Connection;
use crate::error::{Bug, UserError};
use crate::keboola::JobLimit;
use crate::retry::{is_deadline, retry, AttemptError, DeadlineReached, Retry, RetryPolicy};
use crate::secret::ApiToken;
use crate::termination::Termination;
use crate::text::truncate;
use crate::timing::Timing;

/// Error bodies are read only this far: enough for the envelope, never a whole HTML page.
pub(super) const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// What an answer may include beside a run or job (`include_related`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Related {
    Trigger,
    Job,
    RunSteps,
    Environment,
}

impl Related {
    /// The `include_related` parameter: a JSON list of names.
    fn param(related: &[Related]) -> String {
        let names: Vec<String> = related
            .iter()
            .map(|r| {
                format!(
                    "{:?}",
                    match r {
                        Related::Trigger => "trigger",
                        Related::Job => "job",
                        Related::RunSteps => "run_steps",
                        Related::Environment => "environment",
                    }
                )
            })
            .collect();
        format!("[{}]", names.join(","))
    }
}

/// What get-run asks to include: the trigger and job for the run table, the steps for the logs.
const RUN_RELATED: &[Related] = &[Related::Trigger, Related::Job, Related::RunSteps];
/// What the trigger answer carries, and so what an adopted run is listed with.
const TRIGGERED_RELATED: &[Related] = &[Related::Trigger, Related::Job];
/// The statuses of a run not yet final.
const IN_PROGRESS: &[RunStatus] = &[RunStatus::Queued, RunStatus::Starting, RunStatus::Running];
pub(super) const MAX_REDIRECTS: usize = 5;
/// How many of the job's newest runs are searched for one our lost trigger created.
const ADOPTION_WINDOW: usize = 20;
/// `Date` has whole seconds, and the answer takes a moment to come: a run our trigger created
/// may look this much older than our send, on dbt Cloud's clock as we estimate it.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(2);
/// A request's timeout is never cut below this by a deadline: a last look must be able to answer.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// A job's or an environment's name is kept this long at most.
const NAME_CHARS: usize = 1_000;
/// How many candidate runs an ambiguous lost trigger names.
const CANDIDATES_NAMED: usize = 5;

/// A job as the Job ID dropdown shows it and a name finds it; the rest of dbt Cloud's job is
/// skipped unread.
#[derive(Debug, serde::Deserialize)]
pub struct JobSummary {
    pub id: WholeNumber,
    pub name: Option<String>,
    #[serde(default)]
    pub project_id: Option<WholeNumber>,
    pub environment: Option<EnvironmentSummary>,
}

#[derive(Debug, serde::Deserialize)]
pub struct EnvironmentSummary {
    pub name: Option<String>,
    /// `production`, `staging`, or null for a general deployment environment.
    #[serde(default)]
    pub deployment_type: Option<String>,
    /// `deployment` or `development`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

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
    /// called: only where the run's own retry endpoint is absent.
    Rerun,
}

/// One call's plan: see [`DbtCloud::plan`].
struct Plan {
    policy: RetryPolicy,
    termination: Termination,
    /// Each attempt's, unless the deadline is nearer.
    timeout: Duration,
    deadline: Option<Instant>,
    /// The words for the deadline when it is a bound of the job's (a phase's, the job's limit)
    /// rather than the call's own, which its caller names.
    bound: Option<String>,
}

impl Plan {
    /// The next attempt's timeout: cut to the deadline, but never below [`MIN_TIMEOUT`], so that
    /// a last look can still be answered.
    fn timeout_now(&self) -> Duration {
        match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.timeout.min(left.max(MIN_TIMEOUT))
            }
            None => self.timeout,
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
    fn named(&self, error: anyhow::Error) -> anyhow::Error {
        match &self.bound {
            Some(bound) if is_deadline(&error) => error.context(bound.clone()),
            _ => error,
        }
    }
}

/// Keboola's limit on the job, as the client keeps to it.
#[derive(Debug, Clone, Copy)]
pub struct JobBound {
    /// No request goes on past this: the limit, less the time to record what the job has.
    pub deadline: Instant,
    pub limit: JobLimit,
}

/// A bound on one phase of the job (the calls before the run is started, or after it ended).
struct PhaseBound {
    until: Instant,
    /// What passed, in the words of the error that says so.
    passed: String,
}

/// The calls of a phase end by its bound until this is dropped; see [`DbtCloud::phase`].
pub struct Phase<'a> {
    client: &'a DbtCloud,
}

impl Drop for Phase<'_> {
    fn drop(&mut self) {
        *self.client.phase_bound() = None;
    }
}

/// How long a call may keep retrying.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Standard,
    /// While waiting for a run: until `max_wait_time` passes, and not a moment longer.
    Until(Instant),
    /// After SIGTERM: a quick try that fits the grace period.
    AfterSignal,
}

/// The trigger's POST, as each attempt sends it.
struct Post<'a> {
    job: JobId,
    cause: Option<&'a str>,
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

pub struct DbtCloud {
    pub(super) http: Client,
    pub(super) base: BaseUrl,
    pub(super) token: ApiToken,
    account: AccountId,
    pub(super) timing: Timing,
    pub(super) termination: Termination,
    limiter: RateLimiter,
    /// dbt Cloud's clock minus ours, from the `Date` of its latest answer.
    clock_offset: Mutex<Option<chrono::Duration>>,
    /// No request of the job goes on past Keboola's limit on it, less what the job needs to
    /// record what it has.
    pub(super) job: Option<JobBound>,
    /// The phase of the job under way, when it has a bound: calls with [`Budget::Standard`] end
    /// by it. Downloads do not: they have their throughput floor.
    phase: Mutex<Option<PhaseBound>>,
    /// What dbt Cloud sent that could only be read leniently, said once each.
    said: Mutex<std::collections::HashSet<String>>,
}

impl DbtCloud {
    pub fn new(
        connection: &Connection,
        max_requests_per_minute: u32,
        timing: Timing,
        termination: Termination,
    ) -> Result<DbtCloud> {
        let http = Client::builder()
            .user_agent(concat!("dbt-cloud-job-trigger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timing.connect_timeout)
            .timeout(timing.read_timeout)
            // API paths end with `/`, so dbt Cloud has no reason to redirect; a redirect would
            // turn a POST into a GET. Downloads follow redirects themselves, see below.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Bug(format!("could not set up the HTTP client: {e}")))?;
        Ok(DbtCloud {
            http,
            base: connection.dbt_cloud_url.clone(),
            token: connection.api_token.clone(),
            account: connection.account_id,
            timing,
            termination,
            limiter: RateLimiter::per_minute(max_requests_per_minute, timing.cooldown),
            clock_offset: Mutex::new(None),
            job: None,
            phase: Mutex::new(None),
            said: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// The same client, no request of which goes on past the job's deadline: it bounds every
    /// call's retries, pauses and timeouts, and every download.
    pub fn until(self, job: JobBound) -> DbtCloud {
        DbtCloud {
            job: Some(job),
            ..self
        }
    }

    /// Until the returned guard is dropped, every call with [`Budget::Standard`] ends by `until`
    /// (and its retries with it); `passed` names that bound in the error when it is reached.
    pub fn phase(&self, until: Instant, passed: String) -> Phase<'_> {
        *self.phase_bound() = Some(PhaseBound { until, passed });
        Phase { client: self }
    }

    fn phase_bound(&self) -> std::sync::MutexGuard<'_, Option<PhaseBound>> {
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The job's deadline, when it has one.
    pub(super) fn job_deadline(&self) -> Option<Instant> {
        self.job.map(|job| job.deadline)
    }

    /// What dbt Cloud's account-wide rate limit has cost the job so far.
    pub fn throttling(&self) -> Throttling {
        self.limiter.throttling()
    }

    pub fn termination(&self) -> &Termination {
        &self.termination
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// For the last look and the cancel once `max_wait_time` has passed: brief, bounded.
    pub fn after_deadline(&self) -> Budget {
        Budget::Until(Instant::now() + self.timing.after_deadline)
    }

    /// Starts a run of `job`, exactly once. A lost answer (a reset, a timeout, a 5xx) may hide
    /// a run that was created, so before sending again we look among the job's newest runs for
    /// one newer than the newest before our first attempt, created after that attempt on dbt
    /// Cloud's clock and (for a trigger) with our cause, and adopt it. A signal before the send
    /// means no send; a signal during it leaves the run it may have created to be found, so that
    /// the caller can record and cancel it.
    pub fn start_run(&self, job: JobId, start: &Start) -> Result<Run> {
        let baseline = self.baseline(job)?;
        self.termination.check()?;
        let (url, body, cause) = match start {
            Start::Trigger { cause, overrides } => {
                let mut body = overrides.clone();
                body.insert("cause".to_owned(), json!(cause));
                let url = self.api_url(&["jobs", &job.to_string(), "run", ""]);
                (url, Some(Value::Object(body)), Some(cause.as_str()))
            }
            Start::Retry(run) => {
                let url = self.api_url(&["runs", &run.to_string(), "retry", ""]);
                (url, None, None)
            }
            Start::Rerun => {
                let url = self.api_url(&["jobs", &job.to_string(), "rerun", ""]);
                (url, None, None)
            }
        };
        let subject = format!("job {job}");
        let mut sent = Sent::default();
        let plan = self.trigger_plan();
        let result = retry(
            &format!("POST {}", url.path()),
            &plan.policy,
            &plan.termination,
            || {
                let post = Post {
                    job,
                    cause,
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
            Ok(run) => return self.of_the_job(job, run),
            Err(error) => error,
        };
        let in_flight = crate::termination::is_terminated(&error) && sent.first.is_some();
        if !sent.maybe_created && !in_flight {
            return Err(error);
        }
        // An attempt may have created a run, and whatever ended the attempts (a signal, the
        // deadline, lookups that kept failing) the run must not be left behind without a row:
        // one more, brief, look for it.
        match self.find_started(job, cause, baseline, sent.first, Budget::AfterSignal) {
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

    /// The trigger's plan: its attempts end early enough before the job's deadline to look for
    /// the run a lost answer may hide, and record it.
    fn trigger_plan(&self) -> Plan {
        let plan = self.plan(Budget::Standard);
        match self.job {
            Some(job) => {
                let reserve = self.timing.trigger_need / 2;
                let until = job.deadline.checked_sub(reserve).unwrap_or(job.deadline);
                plan.no_later_than(until, format!("{} is near", job.limit))
            }
            None => plan,
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
                post.cause,
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
        if let Some(job) = self.job {
            let left = job.deadline.saturating_duration_since(Instant::now());
            if left < self.timing.trigger_need {
                let again = if sent.first.is_some() { " again" } else { "" };
                return Err(AttemptError::Fatal(
                    UserError::new(format!(
                        "Not triggering{again}: {} is near, {:.0} s away, and a trigger and the \
                         record of its run need {:.0} s; nothing was sent{again}. The log above \
                         says what took the job's time.",
                        job.limit,
                        left.as_secs_f64(),
                        self.timing.trigger_need.as_secs_f64()
                    ))
                    .into(),
                ));
            }
        }
        sent.first.get_or_insert_with(Utc::now);
        let answer = self.attempt::<Run>(Method::POST, post.url, post.body, post.subject, plan);
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

    /// The job's newest run, if it has any.
    pub fn newest_run(&self, job: JobId) -> Result<Option<Run>> {
        Ok(self
            .list_runs(job, 1, &[], &[], Budget::Standard)?
            .into_iter()
            .next())
    }

    /// The job's queued, starting and running runs, newest first, with trigger and job.
    pub fn runs_in_progress(&self, job: JobId) -> Result<Vec<Run>> {
        self.list_runs(job, 100, TRIGGERED_RELATED, IN_PROGRESS, Budget::Standard)
    }

    /// The run with its trigger, job and steps.
    pub fn get_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let mut url = self.api_url(&["runs", &run.to_string(), ""]);
        url.query_pairs_mut()
            .append_pair("include_related", &Related::param(RUN_RELATED));
        let answer = self.call(Method::GET, url, &format!("run {run}"), budget)?;
        self.the_run_asked(run, answer)
    }

    pub fn cancel_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let url = self.api_url(&["runs", &run.to_string(), "cancel", ""]);
        let answer = self.call(Method::POST, url, &format!("run {run}"), budget)?;
        self.the_run_asked(run, answer)
    }

    /// `answer`, when it is the run asked for, of our account: another is dbt Cloud's error,
    /// which nothing may be decided on.
    fn the_run_asked(&self, asked: RunId, answer: Run) -> Result<Run> {
        self.note_oddities(&answer);
        let account = self.account.get();
        if answer.id == asked && answer.account.is_none_or(|of| of == account) {
            return Ok(answer);
        }
        Err(Unreadable(format!(
            "dbt Cloud answered for run {asked} with run {} of account {}, not the run asked for in \
             account {account}; nothing is decided on that answer. If it persists, please report \
             it to dbt Cloud support.",
            answer.id,
            answer.account.map_or("unknown".to_owned(), |of| of.to_string()),
        ))
        .into())
    }

    /// A run dbt Cloud started for `job`, when it says so: a run of another job or account is
    /// dbt Cloud's error, and nothing is followed on it.
    fn of_the_job(&self, job: JobId, run: Run) -> Result<Run> {
        self.note_oddities(&run);
        let account = self.account.get();
        if run.job.is_none_or(|of| of == job.get()) && run.account.is_none_or(|of| of == account) {
            return Ok(run);
        }
        Err(Unreadable(format!(
            "dbt Cloud answered the start of job {job} in account {account} with run {} of job {} \
             in account {}; it is not followed. If it persists, please report it to dbt Cloud \
             support.",
            run.id,
            run.job.map_or("unknown".to_owned(), |of| of.to_string()),
            run.account
                .map_or("unknown".to_owned(), |of| of.to_string()),
        ))
        .into())
    }

    /// Says once what dbt Cloud sent that could only be read leniently.
    fn note_oddities(&self, run: &Run) {
        let mut said = self
            .said
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for oddity in run.oddities() {
            if said.insert(oddity.clone()) {
                warn!("{oddity}");
            }
        }
    }

    /// Artifact paths relative to the run's `target/` folder; empty when there are none (yet).
    pub fn list_artifacts(&self, run: RunId) -> Result<Vec<String>> {
        let url = self.api_url(&["runs", &run.to_string(), "artifacts", ""]);
        // null when the run produced none.
        let paths: Option<Vec<String>> = self.call(
            Method::GET,
            url,
            &format!("artifact list of run {run}"),
            Budget::Standard,
        )?;
        Ok(paths.unwrap_or_default())
    }

    /// How long the job's last few successful runs took, from creation to finish, newest first.
    pub fn recent_durations(&self, job: JobId, count: usize) -> Result<Vec<Duration>> {
        let runs = self.list_runs(job, count, &[], &[RunStatus::Success], Budget::Standard)?;
        Ok(runs
            .iter()
            .filter_map(|run| {
                let finished = run.timestamp("finished_at")?;
                (finished - run.timestamp("created_at")?).to_std().ok()
            })
            .collect())
    }

    /// Every job of the account, page by page, until a page is short or empty, a page repeats
    /// one already seen (a server that ignores the offset), or `budget` has passed: then what
    /// came, and why it stopped early. `total_count` is not trusted to end the list (dbt Cloud's
    /// may be understated); a page that fails after the first keeps the pages already read.
    pub fn list_jobs(&self, budget: Duration) -> Result<(Vec<JobSummary>, Option<String>)> {
        const PAGE: usize = 100;
        let started = Instant::now();
        let mut jobs: Vec<JobSummary> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = match self.jobs_page(PAGE, jobs.len()) {
                Ok(page) => page,
                Err(error) if jobs.is_empty() || crate::termination::is_terminated(&error) => {
                    return Err(error)
                }
                Err(error) => {
                    let note = format!(
                        "dbt Cloud stopped answering after {} jobs ({}); those are listed",
                        jobs.len(),
                        crate::text::cut(&format!("{error:#}"))
                    );
                    return Ok((jobs, Some(note)));
                }
            };
            let short = page.len() < PAGE;
            let new: Vec<JobSummary> = page
                .into_iter()
                .filter(|job| seen.insert(job.id.0))
                .collect();
            let repeated = new.is_empty();
            jobs.extend(new);
            if short || repeated {
                let note = (repeated && !short).then(|| {
                    format!(
                        "dbt Cloud sent a page of jobs again after {}; the list may be incomplete",
                        jobs.len()
                    )
                });
                return Ok((jobs, note));
            }
            if started.elapsed() >= budget {
                let note = format!(
                    "dbt Cloud was still sending pages of jobs after {} s; the first {} are listed",
                    budget.as_secs(),
                    jobs.len()
                );
                return Ok((jobs, Some(note)));
            }
        }
    }

    /// The first `limit` jobs: the cheapest call that proves the URL, the token and the account.
    pub fn list_jobs_page(&self, limit: usize) -> Result<Vec<JobSummary>> {
        self.jobs_page(limit, 0)
    }

    /// A page of jobs. A job that cannot be read (an id that is not a number, say) is left out,
    /// with a warning.
    fn jobs_page(&self, limit: usize, offset: usize) -> Result<Vec<JobSummary>> {
        let mut url = self.api_url(&["jobs", ""]);
        url.query_pairs_mut()
            .append_pair("include_related", &Related::param(&[Related::Environment]))
            .append_pair("order_by", "id")
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        let Listed::<JobSummary> { mut items, unread } =
            self.call(Method::GET, url, "jobs", Budget::Standard)?;
        // A name is a label: a long one costs memory for every job of the account, and helps no
        // one read the dropdown.
        let shorten = |name: &mut Option<String>| {
            if let Some(name) = name {
                *name = truncate(name, NAME_CHARS).to_owned();
            }
        };
        for job in &mut items {
            shorten(&mut job.name);
            if let Some(environment) = &mut job.environment {
                shorten(&mut environment.name);
            }
        }
        if let Some(first) = unread.first() {
            warn!(
                "dbt Cloud listed {} job(s) that could not be read, left out (the first: {})",
                unread.len(),
                crate::text::cut(first)
            );
        }
        Ok(items)
    }

    /// Whether the job exists: an error naming it when it does not.
    pub fn check_job(&self, job: JobId) -> Result<()> {
        let url = self.api_url(&["jobs", &job.to_string(), ""]);
        let _: serde::de::IgnoredAny =
            self.call(Method::GET, url, &format!("job {job}"), Budget::Standard)?;
        Ok(())
    }

    /// The job's newest runs, with their triggers.
    pub fn recent_runs(&self, job: JobId, count: usize) -> Result<Vec<Run>> {
        self.list_runs(job, count, &[Related::Trigger], &[], Budget::Standard)
    }

    /// The oldest run among the job's newest that our trigger created: with our cause, newer
    /// than the baseline, and created after our first send on dbt Cloud's clock (estimated from
    /// its answers' `Date`, so our own clock may be off). With neither the baseline nor dbt
    /// Cloud's clock known there is no telling ours from another client's: an error naming them.
    fn find_started(
        &self,
        job: JobId,
        cause: Option<&str>,
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
        let sent_on_their_clock = match (first_send, self.clock_offset()) {
            (Some(sent), Some(offset)) => sent
                .checked_add_signed(offset)
                .and_then(|sent| sent.checked_sub_signed(tolerance)),
            _ => None,
        };
        let candidates: Vec<Run> = runs
            .into_iter()
            .filter(|run| {
                let run_cause = run
                    .field("trigger")
                    .and_then(|t| t.get("cause"))
                    .and_then(Value::as_str);
                let newer = match baseline {
                    Baseline::Known(Some(before)) => run.id > before,
                    Baseline::Known(None) | Baseline::Unknown => true,
                };
                newer && cause.is_none_or(|cause| run_cause == Some(cause))
            })
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

    /// The job's newest runs, only those in `statuses` when some are given.
    fn list_runs(
        &self,
        job: JobId,
        limit: usize,
        related: &[Related],
        statuses: &[RunStatus],
        budget: Budget,
    ) -> Result<Vec<Run>> {
        let mut url = self.api_url(&["runs", ""]);
        let codes: Vec<String> = statuses
            .iter()
            .filter_map(|status| status.code())
            .map(|code| code.to_string())
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("job_definition_id", &job.to_string());
            match codes.as_slice() {
                [] => {}
                [code] => {
                    query.append_pair("status", code);
                }
                codes => {
                    query.append_pair("status__in", &format!("[{}]", codes.join(",")));
                }
            }
            query
                .append_pair("order_by", "-id")
                .append_pair("limit", &limit.to_string());
            if !related.is_empty() {
                query.append_pair("include_related", &Related::param(related));
            }
        }
        let Runs(listed) = self.call(Method::GET, url, &format!("runs of job {job}"), budget)?;
        Ok(self.only_asked(listed, job, statuses))
    }

    /// The listed runs that are what was asked for: of the job, in our account, in one of
    /// `statuses` when some were given. dbt Cloud's filters are not in its own spec, and a run
    /// that slipped through one (a finished run among those in progress, another job's) must not
    /// be skipped for, waited on, cancelled or adopted: it is left out, with a warning.
    fn only_asked(&self, listed: Vec<Run>, job: JobId, statuses: &[RunStatus]) -> Vec<Run> {
        let account = self.account.get();
        let (asked, strays): (Vec<Run>, Vec<Run>) = listed.into_iter().partition(|run| {
            run.account == Some(account)
                && run.job == Some(job.get())
                && (statuses.is_empty() || statuses.contains(&run.status))
        });
        for run in &asked {
            self.note_oddities(run);
        }
        if !strays.is_empty() {
            let named: Vec<String> = strays
                .iter()
                .take(CANDIDATES_NAMED)
                .map(|run| {
                    let id = |id: Option<u64>| id.map_or("unknown".to_owned(), |id| id.to_string());
                    format!(
                        "run {} (job {}, account {}, {})",
                        run.id,
                        id(run.job),
                        id(run.account),
                        run.status
                    )
                })
                .collect();
            let wanted = match statuses {
                [] => String::new(),
                statuses => {
                    let names: Vec<String> = statuses.iter().map(ToString::to_string).collect();
                    format!(", {}", names.join(" or "))
                }
            };
            warn!(
                "dbt Cloud listed {} run(s) that are not what was asked for (runs of job {job} in \
                 account {account}{wanted}), left out: {}",
                strays.len(),
                named.join(", ")
            );
        }
        asked
    }

    pub(super) fn api_url(&self, tail: &[&str]) -> Url {
        let account = self.account.to_string();
        let segments = ["api", "v2", "accounts", account.as_str()]
            .into_iter()
            .chain(tail.iter().copied());
        self.base.join(segments)
    }

    /// An API call with retries; returns the `data` of the answer's envelope, decoded as `T`
    /// while it streams in.
    fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: Url,
        subject: &str,
        budget: Budget,
    ) -> Result<T> {
        let plan = self.plan(budget);
        let what = format!("{method} {}", url.path());
        retry(&what, &plan.policy, &plan.termination, || {
            self.attempt(method.clone(), &url, None, subject, &plan)
        })
        .map(|envelope: Envelope<T>| envelope.data)
        .map_err(|error| plan.named(error))
    }

    /// How a call with `budget` goes, decided once: its retries, what stops them, each attempt's
    /// timeout, and the moment that no attempt, pause or wait for the rate limit may cross (the
    /// budget's own, the phase's and the job's, whichever comes first).
    fn plan(&self, budget: Budget) -> Plan {
        let (policy, timeout, deadline, termination) = match budget {
            Budget::Standard => (
                self.timing.retry,
                self.timing.read_timeout,
                None,
                self.termination.clone(),
            ),
            Budget::Until(deadline) => (
                self.timing.retry.until(deadline),
                self.timing.read_timeout,
                Some(deadline),
                self.termination.clone(),
            ),
            // After SIGTERM the calls must still go out: they are what records the cancel. A
            // cooldown in progress cannot be waited out in the grace period.
            Budget::AfterSignal => (
                self.timing.after_signal,
                self.timing.after_signal_timeout,
                Instant::now().checked_add(self.timing.after_signal.max_total),
                Termination::none(),
            ),
        };
        let mut plan = Plan {
            policy: policy.no_later_than(deadline),
            termination,
            timeout,
            deadline,
            bound: None,
        };
        if let (Budget::Standard, Some(phase)) = (budget, self.phase_bound().as_ref()) {
            plan = plan.no_later_than(phase.until, phase.passed.clone());
        }
        if let Some(job) = self.job {
            plan = plan.no_later_than(job.deadline, format!("{} is near", job.limit));
        }
        plan
    }

    fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        subject: &str,
        plan: &Plan,
    ) -> Result<Envelope<T>, AttemptError> {
        let what = format!("{method} {}", url.path());
        let (termination, deadline) = (&plan.termination, plan.deadline);
        let mut request = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.token.authorization_header())
            .header(ACCEPT, "application/json")
            .timeout(plan.timeout_now());
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let limit = self.timing.max_answer;
        let (status, headers, answer) =
            self.send(request, url, termination, deadline, move |response| {
                if response.status().is_success() {
                    Ok(decode_envelope::<T>(response, limit))
                } else {
                    Err(read_limited(response, ERROR_BODY_LIMIT))
                }
            })?;
        match answer {
            Ok(Ok(envelope)) => Ok(envelope),
            Ok(Err(undecodable)) => Err(self.undecodable(undecodable, url, &what, limit)),
            Err(body) => Err(self.refusal(status, &headers, &body, url, subject)),
        }
    }

    /// Why an answer could not be read, as an error that blames the right party.
    fn undecodable(&self, problem: Undecodable, url: &Url, what: &str, limit: u64) -> AttemptError {
        match problem {
            Undecodable::TooLarge => AttemptError::Fatal(
                UserError::new(format!(
                    "dbt Cloud's answer to {what} is larger than {}, more than any answer of the \
                     API should be; not read further. Check dbt_cloud_url, or ask dbt Cloud \
                     support what the answer holds.",
                    crate::text::size(limit)
                ))
                .into(),
            ),
            Undecodable::Broken(error) => AttemptError::retryable(UserError::new(format!(
                "dbt Cloud at {} broke off the answer to {what} ({error})",
                self.base
            ))),
            // Not JSON, or JSON that is not dbt Cloud's envelope: most likely not dbt Cloud's
            // API at the configured URL (a proxy's page, a web site, another service).
            Undecodable::NotTheApi { head } => AttemptError::Fatal(
                UserError::new(format!(
                    "{} answered {} with something that is not dbt Cloud's API answer (it starts \
                     {:?}). Check dbt_cloud_url: it must be your dbt Cloud account's access URL.",
                    self.base,
                    url.path(),
                    truncate(&String::from_utf8_lossy(&head), 80)
                ))
                .into(),
            ),
            // dbt Cloud's envelope, but its data is not what the API documents: dbt Cloud's
            // fault, which the user must see (and report).
            Undecodable::Data(error) => AttemptError::Fatal(
                Unreadable(format!(
                    "dbt Cloud's answer to {what} is not what its API documents: {}. This is dbt \
                     Cloud's answer, not your configuration; if it persists, please report it to \
                     this component's authors (with this message) and to dbt Cloud support.",
                    crate::text::cut(&error.to_string())
                ))
                .into(),
            ),
        }
    }

    /// Sends one request once the rate limit allows (`termination` and `deadline` end that wait),
    /// and runs `read` on its answer, on a thread that a signal abandons. Tells the rate limiter
    /// how the request was answered.
    pub(super) fn send<T: Send + 'static>(
        &self,
        request: RequestBuilder,
        url: &Url,
        termination: &Termination,
        deadline: Option<Instant>,
        read: impl FnOnce(Response) -> T + Send + 'static,
    ) -> Result<(StatusCode, HeaderMap, T), AttemptError> {
        let request = request.build().map_err(|e| {
            Bug(format!(
                "could not build the request for {}: {e}",
                url.path()
            ))
        })?;
        let permit = self
            .limiter
            .acquire(termination, deadline)
            .map_err(|refusal| self.limiter_refusal(refusal))?;
        let method = request.method().clone();
        let started = Instant::now();
        let http = self.http.clone();
        let result = termination.abandonable(move || {
            http.execute(request).map(|response| {
                let (status, headers) = (response.status(), response.headers().clone());
                (status, headers, read(response))
            })
        })?;
        match result {
            Ok((status, headers, value)) => {
                debug!(
                    "{method} {} -> {} in {} ms",
                    url.path(),
                    status.as_u16(),
                    started.elapsed().as_millis()
                );
                self.note_clock(&headers);
                permit.answered(match status {
                    StatusCode::TOO_MANY_REQUESTS => Answer::Throttled {
                        retry_after: self.retry_after(&headers),
                    },
                    _ => Answer::Answered,
                });
                Ok((status, headers, value))
            }
            Err(error) => {
                debug!(
                    "{method} {} -> failed after {} ms: {error}",
                    url.path(),
                    started.elapsed().as_millis()
                );
                drop(permit);
                Err(self.transport_error(url, error))
            }
        }
    }

    /// `Retry-After` in seconds or as a date, never longer than the cooldown's cap.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
        let asked = match value.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => (DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc)
                - Utc::now())
            .to_std()
            .unwrap_or_default(),
        };
        Some(asked.min(self.timing.cooldown.max))
    }

    fn note_clock(&self, headers: &HeaderMap) {
        let date = headers
            .get(DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok());
        if let Some(date) = date {
            let offset = date.with_timezone(&Utc) - Utc::now();
            *self
                .clock_offset
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(offset);
        }
    }

    /// Now, on dbt Cloud's clock as its answers' `Date` tells it (ours when none told it), so
    /// that the age of a run does not depend on this machine's clock.
    pub fn now_on_dbt_cloud(&self) -> DateTime<Utc> {
        let now = Utc::now();
        self.clock_offset()
            .and_then(|offset| now.checked_add_signed(offset))
            .unwrap_or(now)
    }

    fn clock_offset(&self) -> Option<chrono::Duration> {
        *self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn limiter_refusal(&self, refusal: NoPermit) -> AttemptError {
        match refusal {
            NoPermit::Terminated(terminated) => AttemptError::Fatal(terminated.into()),
            NoPermit::PastDeadline { wait } => AttemptError::Fatal(
                DeadlineReached(format!(
                    "dbt Cloud's rate limit holds requests for {:.0} s more",
                    wait.as_secs_f64()
                ))
                .into(),
            ),
            NoPermit::CooledTooLong { since } => AttemptError::Fatal(
                UserError::new(format!(
                    "dbt Cloud has answered account {}'s requests with HTTP 429 for {:.0} s, longer \
                     than its documented five-minute cooldown. Other clients of the account may be \
                     using its 5,000 requests a minute; try again later.",
                    self.account,
                    since.as_secs_f64()
                ))
                .into(),
            ),
        }
    }

    /// An answer other than 2xx, as the error of the attempt: its message names `subject`; 429
    /// and 5xx are worth another attempt, other refusals final.
    pub(super) fn refusal(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        url: &Url,
        subject: &str,
    ) -> AttemptError {
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| url.join(location).ok());
        let refusal = Refusal::new(status, body, self.retry_after(headers), location);
        let message = refusal.message(&Asked {
            subject,
            account: self.account,
            base: &self.base,
            path: url.path(),
            retired: self.base.is_retiring() && self.now_on_dbt_cloud() >= retirement(),
        });
        let error = UserError::refused(status.as_u16(), message);
        match refusal.kind() {
            Kind::Throttled => AttemptError::Throttled(error.into()),
            _ if refusal.retryable() => AttemptError::Retryable(Retry {
                retry_after: refusal.retry_after,
                ..Retry::new(error)
            }),
            _ => AttemptError::Fatal(error.into()),
        }
    }

    /// A request that got no answer. A connection that was never made means the request was not
    /// sent; a certificate this machine does not trust will not change with another attempt.
    fn transport_error(&self, url: &Url, error: reqwest::Error) -> AttemptError {
        let causes = causes(&error);
        let host = url.host_str().unwrap_or_default();
        if error.is_connect() && is_tls_failure(&error) {
            return AttemptError::Fatal(
                UserError::new(format!(
                    "The secure connection to {host} failed ({causes}). This machine does not trust \
                     the server's certificate, or the server does not speak TLS there: check \
                     dbt_cloud_url (and any proxy that intercepts TLS)."
                ))
                .into(),
            );
        }
        if error.is_connect() && names_no_host(&causes) {
            return AttemptError::Fatal(
                UserError::new(format!(
                    "The host {host} of dbt_cloud_url could not be found ({causes}). Check \
                     dbt_cloud_url for a typo: it must be your dbt Cloud account's access URL."
                ))
                .into(),
            );
        }
        let what = if error.is_timeout() {
            "did not answer in time"
        } else if error.is_connect() {
            "could not be reached"
        } else {
            "broke off the exchange"
        };
        AttemptError::Retryable(Retry {
            not_sent: error.is_connect() && !error.is_timeout(),
            // Said once: when the retries run out, their message adds that dbt Cloud may be down.
            ..Retry::new(UserError::new(format!(
                "dbt Cloud at {} {what} ({} {causes}). Check dbt_cloud_url and the network",
                self.base,
                url.path(),
            )))
        })
    }
}

fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut causes: Vec<String> = Vec::new();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Wrappers often repeat their source's text.
        if !causes.iter().any(|seen| seen.contains(&text)) {
            causes.push(text);
        }
        source = cause.source();
    }
    causes.join(": ")
}

/// Whether a connection failed because its host name names no host: not a valid DNS name, or
/// one the resolver says does not exist. That is a typo in dbt_cloud_url, not an outage; a
/// resolver that cannot answer now ("Temporary failure in name resolution") is one, and retried.
/// hyper's and rustls's errors are only text by then.
fn names_no_host(causes: &str) -> bool {
    causes.contains("invalid dns name")
        || (causes.contains("dns error") && !causes.contains("Temporary failure"))
}

/// A failed TLS handshake (an untrusted certificate, a wrong name, a server that does not speak
/// TLS): rustls's error under the connect error, sometimes wrapped as invalid data.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.is::<rustls::Error>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: look inside it.
        source = match cause.downcast_ref::<io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => cause.source(),
        };
    }
    false
}

/// Neither the baseline nor dbt Cloud's clock is known: the candidates cannot be told apart.
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

pub(super) fn redirect_target(headers: &HeaderMap, from: &Url) -> Result<Url> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("dbt Cloud redirected {} without a Location", from.path()))?;
    let target = from.join(location).with_context(|| {
        format!(
            "dbt Cloud redirected {} to an invalid location",
            from.path()
        )
    })?;
    if !is_safe_redirect(&target) {
        return Err(anyhow!(
            "dbt Cloud redirected {} to {}://{}, which is not https; refused",
            from.path(),
            target.scheme(),
            target.host_str().unwrap_or_default()
        ));
    }
    Ok(target)
}

/// The pure decoding steps, for the property tests in `no_panic_tests.rs`.
#[cfg(test)]
pub mod tests_support {
    pub use super::super::answer::tests_support::decode_answer;
    use super::super::refusal::{api_field_errors, api_user_message};

    pub fn error_details(body: &[u8]) -> (Option<String>, Option<String>) {
        (api_user_message(body), api_field_errors(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_is_not_there_is_told_from_a_resolver_that_is_down() {
        let sending =
            "error sending request for url (https://x.dbt.com/api/v2/): client error (Connect)";
        assert!(names_no_host(&format!(
            "{sending}: dns error: failed to lookup address information: Name or service not known"
        )));
        assert!(names_no_host(&format!("{sending}: invalid dns name")));
        assert!(!names_no_host(&format!(
            "{sending}: dns error: failed to lookup address information: Temporary failure in name resolution"
        )));
        assert!(!names_no_host(&format!(
            "{sending}: tcp connect error: Connection refused"
        )));
    }

    #[test]
    fn related_records_are_asked_for_as_the_api_spells_them() {
        assert_eq!(
            Related::param(RUN_RELATED),
            r#"["trigger","job","run_steps"]"#
        );
        assert_eq!(
            Related::param(&[Related::Environment]),
            r#"["environment"]"#
        );
        let codes: Vec<i64> = IN_PROGRESS.iter().filter_map(|s| s.code()).collect();
        assert_eq!(codes, [1, 2, 3]);
    }
}
