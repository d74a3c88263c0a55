//! The only code that talks HTTP: the dbt Cloud Administrative API v2 calls this component makes,
//! and the translation of the API's error answers into messages a user can act on.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use log::debug;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use super::ids::{AccountId, JobId, RunId};
use super::run::Run;
use super::url::BaseUrl;
use crate::error::UserError;
use crate::secret::ApiToken;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// For API calls: the whole answer; for downloads: each read (see reqwest's blocking client).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Error bodies are read only this far: enough for the envelope, never a whole HTML page.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// What get-run asks to include: the trigger and job for the run table, the steps for the logs.
const RUN_RELATED: &str = r#"["trigger","job","run_steps"]"#;

pub struct DbtCloud {
    http: Client,
    base: BaseUrl,
    token: ApiToken,
    account: AccountId,
}

impl DbtCloud {
    pub fn new(base: BaseUrl, token: ApiToken, account: AccountId) -> Result<DbtCloud> {
        let http = Client::builder()
            .user_agent(concat!("dbt-cloud-job-trigger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(READ_TIMEOUT)
            // Every path ends with `/`, so dbt Cloud has no reason to redirect; a redirect would
            // turn a POST into a GET, and could send the token to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("could not set up the HTTP client")?;
        Ok(DbtCloud {
            http,
            base,
            token,
            account,
        })
    }

    pub fn trigger_run(&self, job: JobId, cause: &str) -> Result<Run> {
        let url = self.api_url(&["jobs", &job.to_string(), "run", ""]);
        let body = json!({ "cause": cause });
        let request = self
            .request(Method::POST, url)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let data = self.call(request, &format!("job {job}"))?;
        decode_run(data)
    }

    /// The run with its trigger, job and steps.
    pub fn get_run(&self, run: RunId) -> Result<Run> {
        let mut url = self.api_url(&["runs", &run.to_string(), ""]);
        url.query_pairs_mut()
            .append_pair("include_related", RUN_RELATED);
        let data = self.call(self.request(Method::GET, url), &format!("run {run}"))?;
        decode_run(data)
    }

    /// Artifact paths relative to the run's `target/` folder; empty when there are none (yet).
    pub fn list_artifacts(&self, run: RunId) -> Result<Vec<String>> {
        let url = self.api_url(&["runs", &run.to_string(), "artifacts", ""]);
        let data = self.call(
            self.request(Method::GET, url),
            &format!("artifact list of run {run}"),
        )?;
        match data {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(path) => Ok(path),
                    other => Err(anyhow!(
                        "dbt Cloud listed an artifact that is not a path: {other}"
                    )),
                })
                .collect(),
            other => Err(anyhow!(
                "dbt Cloud's artifact list of run {run} is not a list: {}",
                truncate(&other.to_string(), 200)
            )),
        }
    }

    /// Streams one artifact into `out`, bytes as served, and returns how many there were.
    /// Fails when the body ends before its announced length.
    pub fn download_artifact(&self, run: RunId, path: &str, out: &mut dyn Write) -> Result<u64> {
        let mut segments = vec!["runs".to_owned(), run.to_string(), "artifacts".to_owned()];
        segments.extend(path.split('/').map(str::to_owned));
        let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let url = self.api_url(&segment_refs);
        let request = self
            .http
            .get(url.clone())
            .header(AUTHORIZATION, self.token.authorization_header())
            .header(ACCEPT, "*/*");
        let response = self.send(request, &url)?;
        let response = self.check_status(response, &format!("artifact {path} of run {run}"))?;
        let expected = response.content_length();
        let mut body = response;
        let written = io::copy(&mut body, out)
            .with_context(|| format!("downloading artifact {path} of run {run} failed"))?;
        if let Some(expected) = expected {
            if written != expected {
                return Err(UserError::new(format!(
                    "the download of artifact {path} of run {run} ended after {written} of {expected} bytes"
                ))
                .into());
            }
        }
        Ok(written)
    }

    fn api_url(&self, tail: &[&str]) -> Url {
        let account = self.account.to_string();
        let segments = ["api", "v2", "accounts", account.as_str()]
            .into_iter()
            .chain(tail.iter().copied());
        self.base.join(segments)
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(AUTHORIZATION, self.token.authorization_header())
            .header(ACCEPT, "application/json")
    }

    /// Sends an API request and returns the `data` of its envelope.
    fn call(&self, request: RequestBuilder, subject: &str) -> Result<Value> {
        let built = request.build().context("could not build the request")?;
        let url = built.url().clone();
        let response = self.send_built(built, &url)?;
        let response = self.check_status(response, subject)?;
        let body = response
            .bytes()
            .map_err(|e| reach_error(&self.base, &url, e))?;
        let envelope: Value = serde_json::from_slice(&body).map_err(|_| {
            UserError::new(format!(
                "{} answered {} with something that is not dbt Cloud's JSON API (it starts {:?}). \
                 Check dbt_cloud_url.",
                self.base,
                url.path(),
                truncate(&String::from_utf8_lossy(&body), 80)
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

    fn send(&self, request: RequestBuilder, url: &Url) -> Result<Response> {
        let built = request.build().context("could not build the request")?;
        self.send_built(built, url)
    }

    fn send_built(&self, request: reqwest::blocking::Request, url: &Url) -> Result<Response> {
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
        result.map_err(|e| reach_error(&self.base, url, e))
    }

    /// Passes a successful answer through; turns any other into a message naming `subject`.
    fn check_status(&self, response: Response, subject: &str) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
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
            StatusCode::BAD_REQUEST => {
                format!(
                    "dbt Cloud refused the request for {subject} as invalid ({detail}{})",
                    api_field_errors(&body)
                        .map(|e| format!("; {e}"))
                        .unwrap_or_default()
                )
            }
            StatusCode::TOO_MANY_REQUESTS => format!(
                "dbt Cloud's rate limit for account {} was reached ({detail}); it allows 5,000 \
                 requests a minute. Try again in a few minutes.",
                self.account
            ),
            s if s.is_server_error() => format!(
                "dbt Cloud failed to answer the request for {subject} ({detail}). This is on \
                 dbt Cloud's side; try again later."
            ),
            _ => {
                return Err(anyhow!(
                    "dbt Cloud answered {path} unexpectedly with {detail}"
                ))
            }
        };
        Err(UserError::new(message).into())
    }
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
