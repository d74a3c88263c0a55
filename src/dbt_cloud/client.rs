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

use std::io::{self, Read, Write};
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
use serde::Deserialize;
use serde_json::{json, Value};

use super::ids::{AccountId, JobId, RunId, WholeNumber};
use super::rate_limit::{Answer, RateLimiter, Refusal};
use super::run::Run;
use super::url::{is_safe_redirect, BaseUrl};
use super::Connection;
use crate::error::UserError;
use crate::retry::{retry, AttemptError, DeadlineReached, Retry, SharedBudget};
use crate::secret::ApiToken;
use crate::termination::Termination;
use crate::timing::{Stall, Timing};

/// Error bodies are read only this far: enough for the envelope, never a whole HTML page.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// What get-run asks to include: the trigger and job for the run table, the steps for the logs.
const RUN_RELATED: &str = r#"["trigger","job","run_steps"]"#;
/// What the trigger answer carries, and so what an adopted run is listed with.
const TRIGGERED_RELATED: &str = r#"["trigger","job"]"#;
const MAX_REDIRECTS: usize = 5;
/// How many of the job's newest runs are searched for one our lost trigger created.
const ADOPTION_WINDOW: usize = 20;
/// `Date` has whole seconds, and the answer takes a moment to come: a run our trigger created
/// may look this much older than our send, on dbt Cloud's clock as we estimate it.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(2);
/// A request's timeout is never cut below this by a deadline: a last look must be able to answer.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How many candidate runs an ambiguous lost trigger names.
const CANDIDATES_NAMED: usize = 5;

/// A job as the Job ID dropdown shows it; the rest of dbt Cloud's job is skipped unread.
#[derive(Debug, serde::Deserialize)]
pub struct JobSummary {
    pub id: WholeNumber,
    pub name: Option<String>,
    pub environment: Option<Named>,
}

#[derive(Debug, serde::Deserialize)]
pub struct Named {
    pub name: Option<String>,
}

/// How a run is started.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run, with the cause and the trigger body's optional fields.
    Trigger {
        cause: String,
        overrides: serde_json::Map<String, Value>,
    },
    /// The job's rerun endpoint: from the point of failure of its newest run.
    Rerun,
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

/// Where each attempt of a download writes: a fresh sink per attempt, and what a complete one
/// becomes (e.g. a scratch file ready to be renamed into place).
pub trait Destination {
    type Sink: Write;
    type Done;
    /// Fails only for this machine's reasons, already worded for the user.
    fn open(&self) -> Result<Self::Sink>;
    /// Flushes the complete sink; a failure here is the disk's, not the network's.
    fn finish(&self, sink: Self::Sink) -> io::Result<Self::Done>;
}

/// What a download may cost before it is given up.
pub struct DownloadLimits<'a> {
    /// Bytes: a larger artifact fails rather than fill the disk.
    pub max_size: u64,
    /// Listed artifacts that answer 404 share this budget.
    pub missing: &'a SharedBudget,
}

/// The newest run of the job before we triggered, which a run we created must be newer than.
#[derive(Debug, Clone, Copy)]
enum Baseline {
    Known(Option<RunId>),
    Unknown,
}

pub struct DbtCloud {
    http: Client,
    base: BaseUrl,
    token: ApiToken,
    account: AccountId,
    timing: Timing,
    termination: Termination,
    limiter: RateLimiter,
    /// dbt Cloud's clock minus ours, from the `Date` of its latest answer.
    clock_offset: Mutex<Option<chrono::Duration>>,
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
            .context("could not set up the HTTP client")?;
        Ok(DbtCloud {
            http,
            base: connection.dbt_cloud_url.clone(),
            token: connection.api_token.clone(),
            account: connection.account_id,
            timing,
            termination,
            limiter: RateLimiter::per_minute(max_requests_per_minute, timing.cooldown),
            clock_offset: Mutex::new(None),
        })
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
        let (url, body) = match start {
            Start::Trigger { cause, overrides } => {
                let mut body = overrides.clone();
                body.insert("cause".to_owned(), json!(cause));
                (
                    self.api_url(&["jobs", &job.to_string(), "run", ""]),
                    Some(Value::Object(body)),
                )
            }
            Start::Rerun => (self.api_url(&["jobs", &job.to_string(), "rerun", ""]), None),
        };
        let cause = match start {
            Start::Trigger { cause, .. } => Some(cause.as_str()),
            Start::Rerun => None,
        };
        let subject = format!("job {job}");
        let mut first_send: Option<DateTime<Utc>> = None;
        let mut maybe_created = false;
        let result = retry(
            &format!("POST {}", url.path()),
            &self.timing.retry,
            &self.termination,
            || {
                if maybe_created {
                    let found =
                        self.find_started(job, cause, baseline, first_send, Budget::Standard)?;
                    if let Some(run) = found {
                        info!(
                            "The answer was lost, but it started run {}: adopting it",
                            run.id
                        );
                        return Ok(run);
                    }
                }
                first_send.get_or_insert_with(Utc::now);
                let outcome = self.attempt::<Run>(
                    Method::POST,
                    &url,
                    body.as_ref(),
                    &subject,
                    Budget::Standard,
                    &self.termination,
                );
                match outcome {
                    Ok(answer) => Ok(answer.data),
                    Err(AttemptError::Retryable(failure)) => {
                        maybe_created |= !failure.not_sent;
                        Err(AttemptError::Retryable(failure))
                    }
                    Err(other) => Err(other),
                }
            },
        );
        match result {
            Err(error) if crate::termination::is_terminated(&error) && first_send.is_some() => {
                // The POST was in flight: dbt Cloud may have created the run all the same.
                match self.find_started(job, cause, baseline, first_send, Budget::AfterSignal) {
                    Ok(Some(run)) => {
                        info!("The trigger was interrupted, but it started run {}", run.id);
                        Ok(run)
                    }
                    _ => Err(error),
                }
            }
            other => other,
        }
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
                        || crate::error::is_user_error(&error) =>
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
            .list_runs(job, 1, None, None, Budget::Standard)?
            .into_iter()
            .next())
    }

    /// The job's queued, starting and running runs, newest first, with trigger and job.
    pub fn runs_in_progress(&self, job: JobId) -> Result<Vec<Run>> {
        let mut url = self.api_url(&["runs", ""]);
        url.query_pairs_mut()
            .append_pair("job_definition_id", &job.to_string())
            .append_pair("status__in", "[1,2,3]")
            .append_pair("order_by", "-id")
            .append_pair("limit", "100")
            .append_pair("include_related", TRIGGERED_RELATED);
        self.call(
            Method::GET,
            url,
            &format!("runs of job {job}"),
            Budget::Standard,
        )
    }

    /// The run with its trigger, job and steps.
    pub fn get_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let mut url = self.api_url(&["runs", &run.to_string(), ""]);
        url.query_pairs_mut()
            .append_pair("include_related", RUN_RELATED);
        self.call(Method::GET, url, &format!("run {run}"), budget)
    }

    pub fn cancel_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let url = self.api_url(&["runs", &run.to_string(), "cancel", ""]);
        self.call(Method::POST, url, &format!("run {run}"), budget)
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

    /// Streams an artifact into a fresh `destination` sink per attempt, bytes as served, retried
    /// like every other call: a short, broken or stalled body is tried again from the start, so
    /// that a broken attempt's bytes never mix with the next. Returns what the destination made
    /// of the complete sink, and the bytes written.
    pub fn download_artifact<D: Destination>(
        &self,
        run: RunId,
        path: &str,
        limits: &DownloadLimits,
        destination: &D,
    ) -> Result<(D::Done, u64)> {
        let local = |error: io::Error| {
            AttemptError::Fatal(
                UserError::new(format!("could not save artifact {path}: {error}")).into(),
            )
        };
        let what = format!("Downloading artifact {path}");
        retry(&what, &self.timing.retry, &self.termination, || {
            let mut sink = destination.open().map_err(AttemptError::Fatal)?;
            let bytes = self.download_attempt(run, path, &mut sink, limits)?;
            Ok((destination.finish(sink).map_err(local)?, bytes))
        })
    }

    /// One attempt at streaming an artifact into `out`. Redirects are followed, but the token
    /// goes only to the dbt Cloud host. A short, broken or stalled body is retryable; one past
    /// `limits.max_size`, or one that cannot be written, is not.
    fn download_attempt(
        &self,
        run: RunId,
        path: &str,
        out: &mut dyn Write,
        limits: &DownloadLimits,
    ) -> Result<u64, AttemptError> {
        let mut segments = vec!["runs".to_owned(), run.to_string(), "artifacts".to_owned()];
        segments.extend(path.split('/').map(str::to_owned));
        let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let mut url = self.api_url(&segment_refs);
        let subject = format!("artifact {path} of run {run}");
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.http.get(url.clone()).header(ACCEPT, "*/*");
            if self.base.same_origin(&url) {
                request = request.header(AUTHORIZATION, self.token.authorization_header());
            }
            let (status, headers, response) =
                self.send(request, &url, &self.termination, None, |response| response)?;
            if status.is_redirection() {
                url = redirect_target(&headers, &url).map_err(AttemptError::Fatal)?;
                debug!(
                    "{subject} is redirected to {}",
                    url.host_str().unwrap_or_default()
                );
                continue;
            }
            // Right after a run finishes, a listed artifact can still be on its way; the wait for
            // all missing artifacts together is bounded.
            if status == StatusCode::NOT_FOUND {
                let ends = limits.missing.ends();
                let missing = anyhow!(
                    "{subject} is listed but not there (HTTP 404), within the {:.0} s that all \
                     missing artifacts share",
                    limits.missing.length().as_secs_f64()
                );
                if Instant::now() >= ends {
                    return Err(AttemptError::Fatal(missing));
                }
                return Err(AttemptError::Retryable(Retry {
                    not_after: Some(ends),
                    quiet: true,
                    ..Retry::new(missing)
                }));
            }
            if !status.is_success() {
                let body = read_limited(response, ERROR_BODY_LIMIT);
                return Err(self.refusal(status, &headers, &body, &url, &subject));
            }
            let expected = response.content_length();
            if let Some(size) = expected.filter(|&size| size > limits.max_size) {
                return Err(AttemptError::Fatal(too_large(
                    &subject,
                    size,
                    limits.max_size,
                )));
            }
            let written = copy_body(
                response,
                out,
                &subject,
                limits.max_size,
                self.timing.stall,
                &self.termination,
            )?;
            return match expected {
                Some(expected) if written != expected => Err(AttemptError::retryable(anyhow!(
                    "the download of {subject} ended after {written} of {expected} bytes"
                ))),
                _ => Ok(written),
            };
        }
        Err(AttemptError::Fatal(anyhow!(
            "{subject} was redirected more than {MAX_REDIRECTS} times"
        )))
    }

    /// How long the job's last few successful runs took, from creation to finish, newest first.
    pub fn recent_durations(&self, job: JobId, count: usize) -> Result<Vec<Duration>> {
        let runs = self.list_runs(job, count, None, Some(10), Budget::Standard)?;
        Ok(runs
            .iter()
            .filter_map(|run| {
                let finished = run.timestamp("finished_at")?;
                (finished - run.timestamp("created_at")?).to_std().ok()
            })
            .collect())
    }

    /// Every job of the account, all pages, each with its environment.
    /// Every job of the account, page by page, until a page is short or empty, the `total_count`
    /// dbt Cloud gave is reached, a page repeats one already seen (a server that ignores the
    /// offset), or `budget` has passed: then what came, and why it stopped early.
    pub fn list_jobs(&self, budget: Duration) -> Result<(Vec<JobSummary>, Option<String>)> {
        const PAGE: usize = 100;
        let started = Instant::now();
        let mut jobs: Vec<JobSummary> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let (page, total) = self.jobs_page(PAGE, jobs.len())?;
            let short = page.len() < PAGE;
            let new: Vec<JobSummary> = page
                .into_iter()
                .filter(|job| seen.insert(job.id.0))
                .collect();
            let repeated = new.is_empty();
            jobs.extend(new);
            if short || repeated || total.is_some_and(|total| jobs.len() as u64 >= total) {
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
        Ok(self.jobs_page(limit, 0)?.0)
    }

    /// A page of jobs, and how many the account has when dbt Cloud says.
    fn jobs_page(&self, limit: usize, offset: usize) -> Result<(Vec<JobSummary>, Option<u64>)> {
        let mut url = self.api_url(&["jobs", ""]);
        url.query_pairs_mut()
            .append_pair("include_related", r#"["environment"]"#)
            .append_pair("order_by", "id")
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        let answer = self.call_envelope(Method::GET, url, "jobs", Budget::Standard)?;
        Ok((answer.data, answer.total_count))
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
        self.list_runs(job, count, Some(r#"["trigger"]"#), None, Budget::Standard)
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
            .list_runs(job, ADOPTION_WINDOW, Some(TRIGGERED_RELATED), None, budget)
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
            return Err(UserError::new(format!(
                "The trigger's answer was lost, and neither the job's runs before it nor dbt \
                 Cloud's clock could be read, so there is no telling whether it started one of \
                 these runs with the same cause: {}. Not triggering again, so as not to start the \
                 job twice; check them in dbt Cloud.",
                named.join(", ")
            ))
            .into());
        }
        Ok(candidates
            .into_iter()
            .filter(after_send)
            .min_by_key(|run| run.id))
    }

    /// The job's newest runs, optionally only those with one `status` code.
    fn list_runs(
        &self,
        job: JobId,
        limit: usize,
        related: Option<&str>,
        status: Option<u8>,
        budget: Budget,
    ) -> Result<Vec<Run>> {
        let mut url = self.api_url(&["runs", ""]);
        url.query_pairs_mut()
            .append_pair("job_definition_id", &job.to_string())
            .append_pair("order_by", "-id")
            .append_pair("limit", &limit.to_string());
        if let Some(status) = status {
            url.query_pairs_mut()
                .append_pair("status", &status.to_string());
        }
        if let Some(related) = related {
            url.query_pairs_mut()
                .append_pair("include_related", related);
        }
        self.call(Method::GET, url, &format!("runs of job {job}"), budget)
    }

    fn api_url(&self, tail: &[&str]) -> Url {
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
        Ok(self.call_envelope(method, url, subject, budget)?.data)
    }

    fn call_envelope<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: Url,
        subject: &str,
        budget: Budget,
    ) -> Result<Envelope<T>> {
        let policy = match budget {
            Budget::Standard => self.timing.retry,
            Budget::Until(deadline) => self.timing.retry.until(deadline),
            Budget::AfterSignal => self.timing.after_signal,
        };
        let what = format!("{method} {}", url.path());
        // After SIGTERM the calls must still go out: they are what records the cancel.
        let termination = match budget {
            Budget::AfterSignal => Termination::none(),
            _ => self.termination.clone(),
        };
        retry(&what, &policy, &termination, || {
            self.attempt(method.clone(), &url, None, subject, budget, &termination)
        })
    }

    fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        subject: &str,
        budget: Budget,
        termination: &Termination,
    ) -> Result<Envelope<T>, AttemptError> {
        let what = format!("{method} {}", url.path());
        let (timeout, deadline) = match budget {
            Budget::Standard => (self.timing.read_timeout, None),
            Budget::Until(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (
                    self.timing.read_timeout.min(left.max(MIN_TIMEOUT)),
                    Some(deadline),
                )
            }
            // A cooldown in progress cannot be waited out in the grace period.
            Budget::AfterSignal => (
                self.timing.after_signal_timeout,
                Instant::now().checked_add(self.timing.after_signal.max_total),
            ),
        };
        let mut request = self
            .http
            .request(method, url.clone())
            .header(AUTHORIZATION, self.token.authorization_header())
            .header(ACCEPT, "application/json")
            .timeout(timeout);
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
            // dbt Cloud's envelope, but its data is not what the API documents: ours to look at.
            Undecodable::Data(error) => AttemptError::Fatal(anyhow!(
                "dbt Cloud's answer to {what} could not be read: {error}"
            )),
        }
    }

    /// Sends one request once the rate limit allows (`termination` and `deadline` end that wait),
    /// and runs `read` on its answer, on a thread that a signal abandons. Tells the rate limiter
    /// how the request was answered.
    fn send<T: Send + 'static>(
        &self,
        request: RequestBuilder,
        url: &Url,
        termination: &Termination,
        deadline: Option<Instant>,
        read: impl FnOnce(Response) -> T + Send + 'static,
    ) -> Result<(StatusCode, HeaderMap, T), AttemptError> {
        let request = request.build().context("could not build the request")?;
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

    fn clock_offset(&self) -> Option<chrono::Duration> {
        *self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn limiter_refusal(&self, refusal: Refusal) -> AttemptError {
        match refusal {
            Refusal::Terminated(terminated) => AttemptError::Fatal(terminated.into()),
            Refusal::PastDeadline { wait } => AttemptError::Fatal(
                anyhow::Error::new(DeadlineReached).context(format!(
                    "dbt Cloud's rate limit holds requests for {:.0} s more, past the time left",
                    wait.as_secs_f64()
                )),
            ),
            Refusal::CooledTooLong { since } => AttemptError::Fatal(
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

    /// Turns an answer other than 2xx into a message naming `subject`. 429 and 5xx are worth
    /// another attempt, other refusals final.
    fn refusal(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        url: &Url,
        subject: &str,
    ) -> AttemptError {
        let api_message = api_user_message(body);
        let detail = match &api_message {
            Some(message) => format!("HTTP {}: {message}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        let message = match status {
            StatusCode::UNAUTHORIZED => token_refused(&detail, self.account, &self.base),
            StatusCode::FORBIDDEN => format!(
                "dbt Cloud denied access to {subject} of account {} ({detail}). Check the token's \
                 permissions and the account's IP allow-list.",
                self.account
            ),
            StatusCode::NOT_FOUND => {
                return AttemptError::Fatal(
                    UserError::not_found(format!(
                        "dbt Cloud has no {subject} in account {}, or the token may not see it \
                         ({detail}). Check account_id, job_id and the token's permissions.",
                        self.account
                    ))
                    .into(),
                )
            }
            StatusCode::BAD_REQUEST => format!(
                "dbt Cloud refused the request for {subject} as invalid ({detail}{})",
                api_field_errors(body)
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ),
            StatusCode::TOO_MANY_REQUESTS => {
                return AttemptError::Throttled(
                    UserError::new(format!(
                        "dbt Cloud's rate limit for account {} was reached ({detail}); it allows \
                         5,000 requests a minute and then cools down for five minutes",
                        self.account
                    ))
                    .into(),
                );
            }
            s if s.is_server_error() => {
                return AttemptError::Retryable(Retry {
                    retry_after: self.retry_after(headers),
                    ..Retry::new(UserError::new(format!(
                        "dbt Cloud failed to answer the request for {subject} ({detail})"
                    )))
                })
            }
            // A redirect, a conflict, a teapot: not dbt Cloud's API as documented, so most
            // likely not dbt Cloud at all (a proxy, a login page, another service).
            _ => {
                let moved = headers
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|location| url.join(location).ok())
                    .map(|to| format!(", redirecting to {}", to.host_str().unwrap_or_default()))
                    .unwrap_or_default();
                return AttemptError::Fatal(
                    UserError::new(format!(
                        "{} answered {} unexpectedly with {detail}{moved}. Check dbt_cloud_url: it \
                         must be your dbt Cloud account's access URL.",
                        self.base,
                        url.path()
                    ))
                    .into(),
                );
            }
        };
        AttemptError::Fatal(UserError::new(message).into())
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
        let what = if error.is_timeout() {
            "did not answer in time"
        } else if error.is_connect() {
            "could not be reached"
        } else {
            "broke off the exchange"
        };
        AttemptError::Retryable(Retry {
            not_sent: error.is_connect() && !error.is_timeout(),
            ..Retry::new(UserError::new(format!(
                "dbt Cloud at {} {what} ({} {causes}). Check dbt_cloud_url and the network; if it \
                 persists, dbt Cloud may be down.",
                self.base,
                url.path(),
            )))
        })
    }
}

/// Streams a download's body into `out`, counting bytes. A read that fails, or a body slower than
/// `stall` allows, is the network's (retryable); a write that fails is ours (not retried).
fn copy_body(
    mut body: Response,
    out: &mut dyn Write,
    subject: &str,
    max_size: u64,
    stall: Stall,
    termination: &Termination,
) -> Result<u64, AttemptError> {
    let mut buffer = [0u8; 8 * 1024];
    let mut written = 0u64;
    let mut window = (Instant::now(), 0u64);
    loop {
        termination.check()?;
        let read = match body.read(&mut buffer) {
            Ok(0) => return Ok(written),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(AttemptError::retryable(anyhow!(
                    "downloading {subject} broke off: {e}"
                )))
            }
        };
        written += read as u64;
        if written > max_size {
            return Err(AttemptError::Fatal(too_large(subject, written, max_size)));
        }
        out.write_all(&buffer[..read]).map_err(|e| {
            AttemptError::Fatal(UserError::new(format!("could not save {subject}: {e}")).into())
        })?;
        if window.0.elapsed() >= stall.window {
            if written - window.1 < stall.min_bytes {
                return Err(AttemptError::retryable(anyhow!(
                    "{subject} came at {} in the last {:.0} s, slower than the {}/s a download \
                     must keep up; broken off",
                    crate::text::size(written - window.1),
                    stall.window.as_secs_f64(),
                    crate::text::size(stall.min_bytes / stall.window.as_secs().max(1))
                )));
            }
            window = (Instant::now(), written);
        }
    }
}

fn too_large(subject: &str, size: u64, max_size: u64) -> anyhow::Error {
    UserError::new(format!(
        "{subject} is larger than max_artifact_size ({} > {}); not saved. Raise \
         max_artifact_size, or leave it out with artifacts_include.",
        crate::text::size(size),
        crate::text::size(max_size)
    ))
    .into()
}

/// At most `limit` bytes of an answer that only adds detail to a message.
fn read_limited(response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    // An unreadable body still leaves the status.
    let _ = response.take(limit).read_to_end(&mut body);
    body
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

/// An answer's envelope: its `data`, and for lists the `total_count` of `extra.pagination`.
struct Envelope<T> {
    data: T,
    total_count: Option<u64>,
}

/// Why an answer could not be read.
enum Undecodable {
    /// Past the ceiling on an answer's size.
    TooLarge,
    /// The connection broke while the answer came.
    Broken(String),
    /// Not JSON, or not dbt Cloud's envelope (an object with `data`); its first bytes.
    NotTheApi { head: Vec<u8> },
    /// dbt Cloud's envelope, but a `data` unlike the API's: serde names the field.
    Data(serde_json::Error),
}

/// Reads `body` as dbt Cloud's envelope while it streams in: `data` decoded as `T`, the rest
/// skipped, never more than `limit` bytes read.
fn decode_envelope<T: DeserializeOwned>(
    body: impl Read,
    limit: u64,
) -> Result<Envelope<T>, Undecodable> {
    let mut capped = Capped {
        inner: body,
        read: 0,
        limit,
        head: Vec::new(),
    };
    let in_data = std::cell::Cell::new(false);
    let decoded = {
        let mut deserializer =
            serde_json::Deserializer::from_reader(io::BufReader::new(&mut capped));
        serde::de::DeserializeSeed::deserialize(
            EnvelopeSeed::<T> {
                in_data: &in_data,
                data: std::marker::PhantomData,
            },
            &mut deserializer,
        )
        .and_then(|envelope| deserializer.end().map(|()| envelope))
    };
    decoded.map_err(|error| {
        if capped.read > capped.limit {
            Undecodable::TooLarge
        } else if error.classify() == serde_json::error::Category::Io {
            Undecodable::Broken(error.to_string())
        } else if in_data.get() && error.classify() == serde_json::error::Category::Data {
            Undecodable::Data(error)
        } else {
            Undecodable::NotTheApi { head: capped.head }
        }
    })
}

/// A reader that fails once more than `limit` bytes came, and keeps the first few for messages.
struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
    head: Vec<u8>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        const HEAD: usize = 80;
        let read = self.inner.read(buf)?;
        if self.head.len() < HEAD {
            let take = read.min(HEAD - self.head.len());
            self.head.extend_from_slice(&buf[..take]);
        }
        self.read += read as u64;
        if self.read > self.limit {
            return Err(io::Error::other("the answer is larger than the ceiling"));
        }
        Ok(read)
    }
}

/// Decodes the envelope, noting when `data` is being read: an error there is a `data` unlike the
/// API's, an error elsewhere means the answer is not the API's at all.
struct EnvelopeSeed<'a, T> {
    in_data: &'a std::cell::Cell<bool>,
    data: std::marker::PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> serde::de::DeserializeSeed<'de> for EnvelopeSeed<'_, T> {
    type Value = Envelope<T>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Envelope<T>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for EnvelopeSeed<'_, T> {
    type Value = Envelope<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("dbt Cloud's answer: an object with data")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope<T>, A::Error> {
        #[derive(Deserialize)]
        struct Extra {
            pagination: Option<Pagination>,
        }
        #[derive(Deserialize)]
        struct Pagination {
            total_count: Option<u64>,
        }
        let mut data = None;
        let mut total_count = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "data" if data.is_none() => {
                    self.in_data.set(true);
                    data = Some(map.next_value::<T>()?);
                    self.in_data.set(false);
                }
                "extra" => {
                    let extra = map.next_value::<Option<Extra>>()?;
                    total_count = extra.and_then(|extra| extra.pagination?.total_count);
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let data = data.ok_or_else(|| serde::de::Error::missing_field("data"))?;
        Ok(Envelope { data, total_count })
    }
}

fn redirect_target(headers: &HeaderMap, from: &Url) -> Result<Url> {
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

fn token_refused(detail: &str, account: AccountId, base: &BaseUrl) -> String {
    let mut message = format!(
        "dbt Cloud refused the API token ({detail}). Check #api_key: it must be a service token \
         or personal access token of account {account} (the API needs a Team or Enterprise plan)."
    );
    if base.is_default() {
        message.push_str(
            " If your account has its own access URL (Account settings → Account information, \
             e.g. https://ab123.us1.dbt.com), set dbt_cloud_url to it: cloud.getdbt.com refuses \
             accounts on cell-based access URLs.",
        );
    }
    message
}

fn api_user_message(body: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    let message = envelope
        .pointer("/status/user_message")
        .or_else(|| envelope.pointer("/detail"))?
        .as_str()?;
    Some(truncate(message.trim(), 500).to_owned())
}

/// The 400 envelope's `data` maps each bad field to its errors.
fn api_field_errors(body: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    let data = envelope.get("data")?.as_object()?;
    let parts: Vec<String> = data
        .iter()
        .map(|(field, errors)| format!("{field}: {errors}"))
        .collect();
    (!parts.is_empty()).then(|| truncate(&parts.join("; "), 500).to_owned())
}

fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The pure decoding steps, for the property tests in `no_panic_tests.rs`.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// `Some` when the answer decodes as `T`.
    pub fn decode_answer<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
        decode_envelope::<T>(body, 1 << 20)
            .ok()
            .map(|answer| answer.data)
    }

    pub fn error_details(body: &[u8]) -> (Option<String>, Option<String>) {
        (api_user_message(body), api_field_errors(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_on_the_default_url_suggests_the_access_url() {
        let account = AccountId::new(7).unwrap();
        let default = token_refused("HTTP 401: Invalid token.", account, &BaseUrl::default_url());
        assert!(default.starts_with("dbt Cloud refused the API token (HTTP 401: Invalid token.)"));
        assert!(default.contains("set dbt_cloud_url to it"), "{default}");
        let cell = BaseUrl::parse("ab123.us1.dbt.com").unwrap();
        let other = token_refused("HTTP 401: Invalid token.", account, &cell);
        assert!(!other.contains("dbt_cloud_url"), "{other}");
    }

    #[test]
    fn api_messages_are_read_from_the_envelope_or_detail_and_never_assumed_json() {
        let envelope = br#"{"status": {"code": 401, "is_success": false, "user_message": "Invalid token.", "developer_message": null}, "data": null}"#;
        assert_eq!(
            api_user_message(envelope).as_deref(),
            Some("Invalid token.")
        );
        assert_eq!(
            api_user_message(br#"{"detail": "Method \"GET\" not allowed."}"#).as_deref(),
            Some("Method \"GET\" not allowed.")
        );
        assert_eq!(api_user_message(b"<html>502 Bad Gateway</html>"), None);
        let invalid = br#"{"status": {"user_message": "The request was invalid."}, "data": {"cause": ["This field is required."]}}"#;
        assert_eq!(
            api_field_errors(invalid).as_deref(),
            Some(r#"cause: ["This field is required."]"#)
        );
    }
}
