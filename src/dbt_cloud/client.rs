//! The only code that talks HTTP: the dbt Cloud Administrative API v2 calls this component makes,
//! their retries, and the translation of the API's error answers into messages a user can act on.
//!
//! GETs and cancel are retried on transport errors, 429 and 5xx. The trigger is not: when its
//! outcome is unknown, the job's newest runs are searched for the run it may have created, and
//! the trigger is sent again only when there is none (see [`DbtCloud::trigger_run`]).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use log::{debug, info, warn};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use super::ids::{AccountId, JobId, RunId};
use super::rate_limit::RateLimiter;
use super::run::Run;
use super::url::{is_safe_redirect, BaseUrl};
use super::Connection;
use crate::error::UserError;
use crate::retry::{retry, AttemptError, RetryPolicy};
use crate::secret::ApiToken;
use crate::termination::Termination;
use crate::timing::Timing;

/// Error bodies are read only this far: enough for the envelope, never a whole HTML page.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// What get-run asks to include: the trigger and job for the run table, the steps for the logs.
const RUN_RELATED: &str = r#"["trigger","job","run_steps"]"#;
/// What the trigger answer carries, and so what an adopted run is listed with.
const TRIGGERED_RELATED: &str = r#"["trigger","job"]"#;
const MAX_REDIRECTS: usize = 5;
/// How many of the job's newest runs are searched for one our lost trigger created.
const ADOPTION_WINDOW: usize = 20;
/// Clock skew allowed between us and dbt Cloud when matching a run by creation time.
const CLOCK_SKEW: Duration = Duration::from_secs(120);

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
    /// While waiting for a run: as long as `max_wait_time` leaves room.
    Until(Instant),
    /// After SIGTERM: a quick try that fits the grace period.
    AfterSignal,
}

pub struct DbtCloud {
    http: Client,
    base: BaseUrl,
    token: ApiToken,
    account: AccountId,
    timing: Timing,
    termination: Termination,
    limiter: RateLimiter,
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
            limiter: RateLimiter::per_minute(max_requests_per_minute),
        })
    }

    pub fn termination(&self) -> &Termination {
        &self.termination
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.timing.retry
    }

    /// Starts a run of `job`, exactly once. A lost answer (a reset, a timeout, a 5xx) may hide
    /// a run that was created, so before sending again we look among the job's newest runs for
    /// one newer than the newest before our first attempt (and, for a trigger, with our cause),
    /// and adopt it.
    pub fn start_run(&self, job: JobId, start: &Start) -> Result<Run> {
        let newest_before = match self.newest_run(job) {
            Ok(newest) => newest.map(|run| run.id),
            Err(error) => {
                debug!("could not list the job's runs before triggering ({error:#}); matching by time instead");
                None
            }
        };
        let sent_at = Utc::now();
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
        let mut attempts = 0;
        retry(
            &format!("POST {}", url.path()),
            &self.timing.retry,
            &self.termination,
            || {
                attempts += 1;
                if attempts > 1 {
                    if let Some(run) = self.find_started(job, cause, newest_before, sent_at)? {
                        info!(
                            "The answer was lost, but it started run {}: adopting it",
                            run.id
                        );
                        return Ok(run);
                    }
                }
                let data = self.attempt(
                    Method::POST,
                    &url,
                    body.as_ref(),
                    &subject,
                    self.timing.read_timeout,
                    &self.termination,
                )?;
                Ok(decode_run(data)?)
            },
        )
    }

    /// The job's newest run, if it has any.
    pub fn newest_run(&self, job: JobId) -> Result<Option<Run>> {
        Ok(self.list_runs(job, 1, None, None)?.into_iter().next())
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
        decode_runs(self.call(
            Method::GET,
            url,
            &format!("runs of job {job}"),
            Budget::Standard,
        )?)
    }

    /// The run with its trigger, job and steps.
    pub fn get_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let mut url = self.api_url(&["runs", &run.to_string(), ""]);
        url.query_pairs_mut()
            .append_pair("include_related", RUN_RELATED);
        decode_run(self.call(Method::GET, url, &format!("run {run}"), budget)?)
    }

    pub fn cancel_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let url = self.api_url(&["runs", &run.to_string(), "cancel", ""]);
        decode_run(self.call(Method::POST, url, &format!("run {run}"), budget)?)
    }

    /// Artifact paths relative to the run's `target/` folder; empty when there are none (yet).
    pub fn list_artifacts(&self, run: RunId) -> Result<Vec<String>> {
        let url = self.api_url(&["runs", &run.to_string(), "artifacts", ""]);
        let data = self.call(
            Method::GET,
            url,
            &format!("artifact list of run {run}"),
            Budget::Standard,
        )?;
        artifact_paths(data).map_err(|e| anyhow!("dbt Cloud's artifact list of run {run} {e}"))
    }

    /// One attempt at streaming an artifact into `out`, bytes as served. Redirects are followed,
    /// but the token goes only to the dbt Cloud host. A short body is retryable.
    pub fn download_artifact(
        &self,
        run: RunId,
        path: &str,
        out: &mut dyn Write,
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
            let response = self.send(request, &url, &self.termination)?;
            if response.status().is_redirection() {
                url = redirect_target(&response, &url).map_err(AttemptError::Fatal)?;
                debug!(
                    "{subject} is redirected to {}",
                    url.host_str().unwrap_or_default()
                );
                continue;
            }
            // Right after a run finishes, a listed artifact can still be on its way.
            if response.status() == StatusCode::NOT_FOUND {
                return Err(AttemptError::retryable(anyhow!(
                    "{subject} is not there yet (HTTP 404)"
                )));
            }
            let response = self.check_status(response, &subject)?;
            let expected = response.content_length();
            let mut body = response;
            // Fixed-size reads into the caller's buffered file: memory does not grow with the
            // artifact. (Reading straight into a 256 KB buffer measured no faster and 4 MB heavier.)
            let written = io::copy(&mut body, out).map_err(|e| {
                AttemptError::retryable(anyhow!("downloading {subject} broke off: {e}"))
            })?;
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
        let runs = self.list_runs(job, count, None, Some(10))?;
        Ok(runs
            .iter()
            .filter_map(|run| {
                let finished = run.timestamp("finished_at")?;
                (finished - run.timestamp("created_at")?).to_std().ok()
            })
            .collect())
    }

    /// Every job of the account, all pages, each with its environment.
    pub fn list_jobs(&self) -> Result<Vec<Value>> {
        const PAGE: usize = 100;
        let mut jobs = Vec::new();
        loop {
            let page = self.jobs_page(PAGE, jobs.len())?;
            let last = page.len() < PAGE;
            jobs.extend(page);
            if last {
                return Ok(jobs);
            }
        }
    }

    /// The first `limit` jobs: the cheapest call that proves the URL, the token and the account.
    pub fn list_jobs_page(&self, limit: usize) -> Result<Vec<Value>> {
        self.jobs_page(limit, 0)
    }

    fn jobs_page(&self, limit: usize, offset: usize) -> Result<Vec<Value>> {
        let mut url = self.api_url(&["jobs", ""]);
        url.query_pairs_mut()
            .append_pair("include_related", r#"["environment"]"#)
            .append_pair("order_by", "id")
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        match self.call(Method::GET, url, "jobs", Budget::Standard)? {
            Value::Array(page) => Ok(page),
            other => Err(anyhow!(
                "dbt Cloud's list of jobs is not a list but {}",
                truncate(&other.to_string(), 100)
            )),
        }
    }

    /// The job as dbt Cloud describes it; an error naming it when it does not exist.
    pub fn get_job(&self, job: JobId) -> Result<Value> {
        let url = self.api_url(&["jobs", &job.to_string(), ""]);
        self.call(Method::GET, url, &format!("job {job}"), Budget::Standard)
    }

    /// The job's newest runs, with their triggers.
    pub fn recent_runs(&self, job: JobId, count: usize) -> Result<Vec<Run>> {
        self.list_runs(job, count, Some(r#"["trigger"]"#), None)
    }

    /// The oldest run among the job's newest that could be the one our trigger created: newer
    /// than the newest run before it (or, if that is unknown, created since), with our cause.
    fn find_started(
        &self,
        job: JobId,
        cause: Option<&str>,
        newest_before: Option<RunId>,
        sent_at: DateTime<Utc>,
    ) -> Result<Option<Run>> {
        let runs = self
            .list_runs(job, ADOPTION_WINDOW, Some(TRIGGERED_RELATED), None)
            .context("the trigger's answer was lost, and the job's runs could not be listed to see whether it \
                      created one; not triggering again, so as not to start the job twice")?;
        let ours = |run: &Run| {
            let newer = match newest_before {
                Some(before) => run.id > before,
                None => run
                    .timestamp("created_at")
                    .is_some_and(|at| at + CLOCK_SKEW >= sent_at),
            };
            let run_cause = run
                .field("trigger")
                .and_then(|t| t.get("cause"))
                .and_then(Value::as_str);
            newer && cause.is_none_or(|cause| run_cause == Some(cause))
        };
        Ok(runs.into_iter().filter(ours).min_by_key(|run| run.id))
    }

    /// The job's newest runs, optionally only those with one `status` code.
    fn list_runs(
        &self,
        job: JobId,
        limit: usize,
        related: Option<&str>,
        status: Option<u8>,
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
        match self.call(
            Method::GET,
            url,
            &format!("runs of job {job}"),
            Budget::Standard,
        )? {
            Value::Array(items) => items.into_iter().map(decode_run).collect(),
            other => Err(anyhow!(
                "dbt Cloud's list of runs is not a list but {}",
                truncate(&other.to_string(), 100)
            )),
        }
    }

    fn api_url(&self, tail: &[&str]) -> Url {
        let account = self.account.to_string();
        let segments = ["api", "v2", "accounts", account.as_str()]
            .into_iter()
            .chain(tail.iter().copied());
        self.base.join(segments)
    }

    /// An API call with retries; returns the `data` of the answer's envelope.
    fn call(&self, method: Method, url: Url, subject: &str, budget: Budget) -> Result<Value> {
        let (policy, timeout) = match budget {
            Budget::Standard => (self.timing.retry, self.timing.read_timeout),
            Budget::Until(deadline) => {
                (self.timing.retry.until(deadline), self.timing.read_timeout)
            }
            Budget::AfterSignal => (self.timing.after_signal, self.timing.after_signal_timeout),
        };
        let what = format!("{method} {}", url.path());
        // After SIGTERM the calls must still go out: they are what records the cancel.
        let termination = match budget {
            Budget::AfterSignal => Termination::none(),
            _ => self.termination.clone(),
        };
        retry(&what, &policy, &termination, || {
            self.attempt(method.clone(), &url, None, subject, timeout, &termination)
        })
    }

    fn attempt(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        subject: &str,
        timeout: Duration,
        termination: &Termination,
    ) -> Result<Value, AttemptError> {
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
        let response = self.send(request, url, termination)?;
        let response = self.check_status(response, subject)?;
        let bytes = response
            .bytes()
            .map_err(|e| AttemptError::retryable(reach_error(&self.base, url, e)))?;
        decode_envelope(&bytes, &self.base, url).map_err(AttemptError::Fatal)
    }

    /// Sends one request once the rate limit allows; `termination` ends that wait early.
    fn send(
        &self,
        request: RequestBuilder,
        url: &Url,
        termination: &Termination,
    ) -> Result<Response, AttemptError> {
        let request = request.build().context("could not build the request")?;
        self.limiter.acquire(termination)?;
        let method = request.method().clone();
        let started = Instant::now();
        let result = self.http.execute(request);
        match &result {
            Ok(response) => debug!(
                "{method} {} -> {} in {} ms",
                url.path(),
                response.status().as_u16(),
                started.elapsed().as_millis()
            ),
            Err(error) => debug!(
                "{method} {} -> failed after {} ms: {error}",
                url.path(),
                started.elapsed().as_millis()
            ),
        }
        result.map_err(|e| AttemptError::retryable(reach_error(&self.base, url, e)))
    }

    /// Passes a successful answer through; turns any other into a message naming `subject`.
    /// 429 and 5xx are retryable, other refusals final.
    fn check_status(&self, response: Response, subject: &str) -> Result<Response, AttemptError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let path = response.url().path().to_owned();
        let mut body = Vec::new();
        // The body only adds detail to the message: an unreadable one still leaves the status.
        let _ = response.take(ERROR_BODY_LIMIT).read_to_end(&mut body);
        let api_message = api_user_message(&body);
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
            StatusCode::NOT_FOUND => format!(
                "dbt Cloud has no {subject} in account {}, or the token may not see it ({detail}). \
                 Check account_id, job_id and the token's permissions.",
                self.account
            ),
            StatusCode::BAD_REQUEST => format!(
                "dbt Cloud refused the request for {subject} as invalid ({detail}{})",
                api_field_errors(&body)
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ),
            StatusCode::TOO_MANY_REQUESTS => {
                // Without Retry-After, as long as the longest backoff: dbt Cloud cools down for minutes.
                let pause = retry_after.unwrap_or(self.timing.retry.max_delay);
                let rate = self.limiter.throttled(pause);
                warn!(
                    "dbt Cloud throttled account {}: every request waits {:.1} s, then goes at most {rate:.0} a minute",
                    self.account,
                    pause.as_secs_f64()
                );
                return Err(AttemptError::Retryable {
                    error: UserError::new(format!(
                        "dbt Cloud's rate limit for account {} was reached ({detail}); it allows \
                         5,000 requests a minute and then cools down for five minutes",
                        self.account
                    ))
                    .into(),
                    retry_after,
                });
            }
            s if s.is_server_error() => {
                return Err(AttemptError::Retryable {
                    error: UserError::new(format!(
                        "dbt Cloud failed to answer the request for {subject} ({detail})"
                    ))
                    .into(),
                    retry_after,
                })
            }
            _ => {
                return Err(AttemptError::Fatal(anyhow!(
                    "dbt Cloud answered {path} unexpectedly with {detail}"
                )))
            }
        };
        Err(AttemptError::Fatal(UserError::new(message).into()))
    }
}

/// The `data` of an answer's envelope. A body that is not JSON means the URL is not dbt Cloud's
/// API (a proxy's page, a web site): the user's to check.
fn decode_envelope(body: &[u8], base: &BaseUrl, url: &Url) -> Result<Value> {
    let envelope: Value = serde_json::from_slice(body).map_err(|_| {
        UserError::new(format!(
            "{base} answered {} with something that is not dbt Cloud's JSON API (it starts {:?}). \
             Check dbt_cloud_url.",
            url.path(),
            truncate(&String::from_utf8_lossy(body), 80)
        ))
    })?;
    match envelope {
        Value::Object(mut map) => Ok(map.remove("data").unwrap_or(Value::Null)),
        other => Err(anyhow!(
            "dbt Cloud's answer to {} is not an envelope object: {}",
            url.path(),
            truncate(&other.to_string(), 200)
        )),
    }
}

/// The list answer's `data`: paths, or null when the run produced none.
fn artifact_paths(data: Value) -> Result<Vec<String>, String> {
    match data {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(path) => Ok(path),
                other => Err(format!(
                    "holds something that is not a path: {}",
                    truncate(&other.to_string(), 100)
                )),
            })
            .collect(),
        other => Err(format!(
            "is not a list: {}",
            truncate(&other.to_string(), 100)
        )),
    }
}

fn redirect_target(response: &Response, from: &Url) -> Result<Url> {
    let location = response
        .headers()
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

fn decode_runs(data: Value) -> Result<Vec<Run>> {
    match data {
        Value::Array(items) => items.into_iter().map(decode_run).collect(),
        other => Err(anyhow!(
            "dbt Cloud's list of runs is not a list but {}",
            truncate(&other.to_string(), 100)
        )),
    }
}

fn decode_run(data: Value) -> Result<Run> {
    Run::from_json(data).map_err(|e| anyhow!("dbt Cloud's answer is not a run we can read: {e}"))
}

/// A transport failure: DNS, refused connection, TLS, timeout. reqwest's message names the URL,
/// which never holds the token.
fn reach_error(base: &BaseUrl, url: &Url, error: reqwest::Error) -> anyhow::Error {
    let what = if error.is_timeout() {
        "did not answer in time"
    } else if error.is_connect() {
        "could not be reached"
    } else {
        "broke off the exchange"
    };
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    let mut causes = Vec::new();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    UserError::new(format!(
        "dbt Cloud at {base} {what} ({} {}). Check dbt_cloud_url and the network; if it \
         persists, dbt Cloud may be down.",
        url.path(),
        causes.join(": ")
    ))
    .into()
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

    pub fn decode_answer(body: &[u8]) -> Result<Value> {
        let base = BaseUrl::default_url();
        decode_envelope(body, &base, &base.join(["api", "v2", ""]))
    }

    pub fn decode_artifact_list(data: Value) -> Result<Vec<String>, String> {
        artifact_paths(data)
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
