//! One request on the wire: the call plan, the rate limit, the send on a thread a signal
//! abandons, the answer read while it streams in, and what a refusal, a `Retry-After`, a
//! redirect or a failed connection means. The only code that talks HTTP; the endpoints
//! (client.rs), the trigger (trigger.rs) and the downloads (download.rs) go through it.
//!
//! Every request waits for the one [`RateLimiter`], goes out on a thread that a signal abandons,
//! and tells the limiter how it was answered. Failures on our side of the wire (a full disk, a
//! certificate this machine does not trust) are not retried.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use log::debug;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, DATE, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::answer::{decode_envelope, read_limited, Envelope, Undecodable, Unreadable};
use super::ids::AccountId;
use super::plan::{Bounds, Budget, JobBound, Phase, Plan, Purpose};
use super::rate_limit::{Answer, Holder, NoPermit, RateLimiter, Usage};
use super::refusal::{Asked, Refusal, RefusalKind};
use super::url::{is_safe_redirect, retirement, BaseUrl};
use super::Connection;
use crate::error::{Bug, UserError};
use crate::retry::{retry, AttemptError, DeadlineReached, Retry};
use crate::secret::ApiToken;
use crate::termination::Termination;
use crate::text::truncate;
use crate::timing::Timing;

/// Error bodies are read only this far: enough for the envelope, never a whole HTML page.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// Redirects a download follows; API calls follow none.
const MAX_REDIRECTS: usize = 5;

/// What a GET of a file brought: its body to stream, or dbt Cloud's word that it is not there.
pub(super) enum Fetched {
    Body(Response),
    NotFound,
}

pub(super) struct Transport {
    http: Client,
    base: BaseUrl,
    token: ApiToken,
    account: AccountId,
    timing: Timing,
    termination: Termination,
    limiter: RateLimiter,
    /// dbt Cloud's clock minus ours, from the `Date` of its latest answer.
    clock_offset: Mutex<Option<chrono::Duration>>,
    /// No request of the job goes on past Keboola's limit on it (less what the job needs to
    /// record what it has), nor past the bound of the phase under way.
    bounds: Bounds,
}

impl Transport {
    pub(super) fn new(
        connection: &Connection,
        max_requests_per_minute: u32,
        timing: Timing,
        termination: Termination,
    ) -> Result<Transport> {
        let http = Client::builder()
            .user_agent(concat!("dbt-cloud-job-trigger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timing.connect_timeout)
            .timeout(timing.read_timeout)
            // API paths end with `/`, so dbt Cloud has no reason to redirect; a redirect would
            // turn a POST into a GET. Downloads follow redirects themselves, see [`Self::fetch`].
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Bug(format!("could not set up the HTTP client: {e}")))?;
        Ok(Transport {
            http,
            base: connection.dbt_cloud_url.clone(),
            token: connection.api_token.clone(),
            account: connection.account_id,
            timing,
            termination,
            limiter: RateLimiter::per_minute(max_requests_per_minute, timing.cooldown),
            clock_offset: Mutex::new(None),
            bounds: Bounds::default(),
        })
    }

    /// The same transport, no request of which goes on past the job's deadline.
    pub(super) fn until(self, job: JobBound) -> Transport {
        Transport {
            bounds: Bounds::of_the_job(job),
            ..self
        }
    }

    /// See [`Bounds::phase`].
    pub(super) fn phase(&self, until: Instant, passed: String) -> Phase<'_> {
        self.bounds.phase(until, passed)
    }

    pub(super) fn job(&self) -> Option<JobBound> {
        self.bounds.job()
    }

    pub(super) fn account(&self) -> AccountId {
        self.account
    }

    pub(super) fn timing(&self) -> &Timing {
        &self.timing
    }

    pub(super) fn termination(&self) -> &Termination {
        &self.termination
    }

    pub(super) fn usage(&self) -> Usage {
        self.limiter.usage()
    }

    /// The share of the account's requests from now on.
    pub(super) fn set_share(&self, per_minute: u32) {
        self.limiter.set_share(per_minute)
    }

    pub(super) fn plan(&self, budget: Budget) -> Plan {
        self.bounds.plan(budget, &self.timing, &self.termination)
    }

    pub(super) fn trigger_plan(&self) -> Plan {
        self.bounds.trigger_plan(&self.timing, &self.termination)
    }

    pub(super) fn download_plan(&self, purpose: Purpose) -> Plan {
        self.bounds
            .download_plan(purpose, &self.timing, &self.termination)
    }

    /// The URL of `tail` under the account's API.
    pub(super) fn api_url(&self, tail: &[&str]) -> Url {
        let account = self.account.to_string();
        let segments = ["api", "v2", "accounts", account.as_str()]
            .into_iter()
            .chain(tail.iter().copied());
        self.base.join(segments)
    }

    /// An API call with retries; returns the `data` of the answer's envelope, decoded as `T`
    /// while it streams in.
    pub(super) fn call<T: DeserializeOwned + Send + 'static>(
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

    /// One attempt at an API request: the `data` of its answer, or why there is none.
    pub(super) fn attempt<T: DeserializeOwned + Send + 'static>(
        &self,
        method: Method,
        url: &Url,
        body: Option<&Value>,
        subject: &str,
        plan: &Plan,
    ) -> Result<Envelope<T>, AttemptError> {
        let what = format!("{method} {}", url.path());
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
        let (status, headers, answer) = self.send(request, url, plan, move |response| {
            if !response.status().is_success() {
                Err(read_limited(response, ERROR_BODY_LIMIT))
            } else if response
                .content_length()
                .is_some_and(|length| length > limit)
            {
                // An answer that says it is past the ceiling is refused before it is read.
                Ok(Err(Undecodable::TooLarge))
            } else {
                Ok(decode_envelope::<T>(response, limit))
            }
        })?;
        match answer {
            Ok(Ok(envelope)) => {
                crate::long_strings::warn_lone_surrogates(
                    envelope.lone_surrogates,
                    &format!("dbt Cloud's answer to {what}"),
                );
                Ok(envelope)
            }
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

    /// Whether dbt Cloud refuses this machine's address for the account (an IP allow-list), from
    /// one GET of the account without the token, as dbt Labs documents: "Authentication
    /// credentials were not provided." when the address may reach the account, "Forbidden:
    /// Access denied" when its allow-list blocks it. `None` when the answer says neither, or
    /// none came: then nothing is known.
    pub(super) fn address_refused(&self) -> Option<bool> {
        let plan = self.plan(Budget::Standard);
        let url = self.api_url(&[""]);
        let request = self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            .timeout(plan.timeout_now());
        let (status, _, body) = self
            .send(request, &url, &plan, |response| {
                read_limited(response, ERROR_BODY_LIMIT)
            })
            .ok()?;
        let said = super::refusal::api_user_message(&body)?;
        match status {
            StatusCode::FORBIDDEN if said.contains("Access denied") => Some(true),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
                if said.contains("credentials were not provided") =>
            {
                Some(false)
            }
            _ => None,
        }
    }

    /// One GET of a file, following up to [`MAX_REDIRECTS`] redirects, with the token only for
    /// dbt Cloud's own host: its body to stream, or a 404; any other refusal is the attempt's
    /// error, naming `subject`.
    pub(super) fn fetch(
        &self,
        mut url: Url,
        subject: &str,
        plan: &Plan,
    ) -> Result<Fetched, AttemptError> {
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self.http.get(url.clone()).header(ACCEPT, "*/*");
            // A download's reads each have the read timeout; near its cutoff (the job's
            // deadline, or the phase's bound for a file only read), the download as a whole
            // ends by it.
            if let Some(left) = plan
                .left_before_cutoff()
                .filter(|left| *left < self.timing.read_timeout)
            {
                request = request.timeout(left);
            }
            if self.base.same_origin(&url) {
                request = request.header(AUTHORIZATION, self.token.authorization_header());
            }
            let (status, headers, response) =
                self.send(request, &url, plan, |response| response)?;
            if status.is_redirection() {
                url = redirect_target(&headers, &url).map_err(AttemptError::Fatal)?;
                debug!(
                    "{subject} is redirected to {}",
                    url.host_str().unwrap_or_default()
                );
                continue;
            }
            if status == StatusCode::NOT_FOUND {
                return Ok(Fetched::NotFound);
            }
            if !status.is_success() {
                let body = read_limited(response, ERROR_BODY_LIMIT);
                return Err(self.refusal(status, &headers, &body, &url, subject));
            }
            return Ok(Fetched::Body(response));
        }
        Err(AttemptError::Fatal(anyhow!(
            "{subject} was redirected more than {MAX_REDIRECTS} times"
        )))
    }

    /// Sends one request once the rate limit allows (the plan's termination and deadline end
    /// that wait; an urgent plan's request is not held by the run's own share), and runs `read`
    /// on its answer, on a thread that a signal abandons. Tells the rate limiter how the request
    /// was answered.
    fn send<T: Send + 'static>(
        &self,
        request: RequestBuilder,
        url: &Url,
        plan: &Plan,
        read: impl FnOnce(Response) -> T + Send + 'static,
    ) -> Result<(StatusCode, HeaderMap, T), AttemptError> {
        let termination = &plan.termination;
        let request = request.build().map_err(|e| {
            Bug(format!(
                "could not build the request for {}: {e}",
                url.path()
            ))
        })?;
        plan.may_start()?;
        let permit = self
            .limiter
            .acquire(termination, plan.deadline, plan.urgent)
            .map_err(|refusal| self.limiter_refusal(refusal))?;
        // The rate limit may have held it up to the deadline.
        plan.may_start()?;
        let method = request.method().clone();
        let started = Instant::now();
        let http = self.http.clone();
        let result = termination
            .abandonable(plan.cutoff, move || {
                http.execute(request).map(|response| {
                    let (status, headers) = (response.status(), response.headers().clone());
                    (status, headers, read(response))
                })
            })?
            .ok_or_else(|| {
                AttemptError::Fatal(
                    DeadlineReached(format!("{method} {} given up in flight", url.path())).into(),
                )
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

    /// `Retry-After` in seconds or as a date, never longer than the cooldown's cap. One that asks
    /// for no pause at all (`0`, or a date already past) says nothing: the retries and the
    /// cooldown's probes then come at their growing intervals, not back to back.
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
        Some(asked.min(self.timing.cooldown.max)).filter(|pause| !pause.is_zero())
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
    pub(super) fn now_on_dbt_cloud(&self) -> DateTime<Utc> {
        let now = Utc::now();
        self.clock_offset()
            .and_then(|offset| now.checked_add_signed(offset))
            .unwrap_or(now)
    }

    /// dbt Cloud's clock minus ours, when one of its answers told it.
    pub(super) fn clock_offset(&self) -> Option<chrono::Duration> {
        *self
            .clock_offset
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn limiter_refusal(&self, refusal: NoPermit) -> AttemptError {
        match refusal {
            NoPermit::Terminated(terminated) => AttemptError::Fatal(terminated.into()),
            NoPermit::PastDeadline {
                wait,
                by: Holder::Share,
                share,
            } => AttemptError::Fatal(
                DeadlineReached(format!(
                    "this run's own share of dbt Cloud's requests ({share} a minute) holds \
                     requests for {:.0} s more",
                    wait.as_secs_f64()
                ))
                .into(),
            ),
            NoPermit::PastDeadline {
                wait,
                by: Holder::Cooldown,
                ..
            } => AttemptError::Fatal(
                DeadlineReached(format!(
                    "dbt Cloud's account-wide rate limit (its cooldown after HTTP 429) holds \
                     requests for {:.0} s more",
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
    fn refusal(
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
        let error = refusal.refused(&Asked {
            subject,
            account: self.account,
            base: &self.base,
            path: url.path(),
            retired: self.base.is_retiring() && self.now_on_dbt_cloud() >= retirement(),
        });
        match refusal.kind() {
            RefusalKind::Throttled => AttemptError::Throttled(error.into()),
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
}
