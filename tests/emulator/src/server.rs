//! HTTP: routing, the token check, and the answers in dbt Cloud's envelope.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use chrono::Utc;

use crate::fault::{Bloat, Fault};
use crate::record::RecordedRequest;
use crate::scenario::RetryAfter;
use crate::scenario::{generated_byte, Content, Job, JobState, RateLimit};
use crate::state::{job_json, trigger_json, RunRecord, State};

pub struct Shared {
    pub state: Mutex<State>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub faults: Mutex<HashMap<Endpoint, VecDeque<Fault>>>,
    /// Faults for the requests to an endpoint whose query has one `key=value`; these come first.
    pub faults_where: Mutex<Vec<QueryFaults>>,
    /// Files served without a token at `/files/<path>`: the "second host" of a redirect.
    pub files: Mutex<HashMap<String, Vec<u8>>>,
    pub limit: Mutex<Limit>,
    pub clock: Mutex<Clock>,
    /// Every API answer's text with each `from` replaced by its `to`, in order: what no JSON
    /// library writes (a lone surrogate escape, as Python's does for an undecodable byte).
    pub rewrites: Mutex<Vec<(String, String)>>,
}

/// The account-wide rate limit, when a test sets one, and what it did.
#[derive(Default)]
pub struct Limit {
    pub rule: Option<RateLimit>,
    /// Requests answered normally within the window, oldest first.
    recent: VecDeque<Instant>,
    cooling_until: Option<Instant>,
    /// How many requests were answered 429 by the limit.
    pub throttled: usize,
}

impl Limit {
    /// `Some(seconds left)` when this request is refused.
    fn check(&mut self, now: Instant) -> Option<u64> {
        let rule = self.rule?;
        if let Some(until) = self.cooling_until {
            if now < until {
                self.throttled += 1;
                return Some((until - now).as_secs_f64().ceil() as u64);
            }
            self.cooling_until = None;
            self.recent.clear();
        }
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= rule.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= rule.requests {
            self.cooling_until = Some(now + rule.cooldown);
            self.throttled += 1;
            return Some(rule.cooldown.as_secs_f64().ceil() as u64);
        }
        self.recent.push_back(now);
        None
    }
}

/// dbt Cloud's clock as the emulator shows it: in `created_at` and in the `Date` header.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub skew: chrono::Duration,
    pub date_header: bool,
}

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            skew: chrono::Duration::zero(),
            date_header: true,
        }
    }
}

impl Clock {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + self.skew
    }
}

/// Faults for the requests to `endpoint` whose query has `key=value`.
pub struct QueryFaults {
    pub endpoint: Endpoint,
    pub key: String,
    pub value: String,
    pub faults: VecDeque<Fault>,
}

/// Closes the connection a request came on, without an answer. Set per connection by the
/// accept loop, so that a fault can drop exactly that connection.
#[derive(Clone)]
pub struct Killer(pub Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>);

impl Killer {
    async fn kill(&self) -> Response {
        if let Some(kill) = self.0.lock().unwrap().take() {
            let _ = kill.send(());
        }
        std::future::pending().await
    }
}

const BODY_LIMIT: usize = 16 * 1024 * 1024;
const NOT_FOUND: &str = "The requested resource was not found. Please check that you have the \
    proper permissions. If you believe you are seeing this message in error, please contact support.";

pub async fn handle(shared: Arc<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let killer = parts.extensions.get::<Killer>().cloned();
    let body = to_bytes(body, BODY_LIMIT).await.unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
    };
    shared.requests.lock().unwrap().push(recorded.clone());
    let clock = *shared.clock.lock().unwrap();
    let mut response = answer_with_faults(&shared, &recorded, killer).await;
    let rewrites = shared.rewrites.lock().unwrap().clone();
    if !rewrites.is_empty() && recorded.path.starts_with("/api/") {
        response = rewritten(response, &rewrites).await;
    }
    if clock.date_header {
        let date = clock.now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        response
            .headers_mut()
            .insert(header::DATE, HeaderValue::from_str(&date).unwrap());
    }
    response
}

async fn answer_with_faults(
    shared: &Arc<Shared>,
    recorded: &RecordedRequest,
    killer: Option<Killer>,
) -> Response {
    if let Some(file) = recorded.path.strip_prefix("/files/") {
        return match shared.files.lock().unwrap().get(file) {
            Some(content) => artifact(file, Content::Bytes(content.clone())),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        };
    }
    let refused = {
        let mut limit = shared.limit.lock().unwrap();
        let says = limit
            .rule
            .map_or(RetryAfter::Never, |rule| rule.retry_after);
        limit.check(Instant::now()).map(|left| match says {
            RetryAfter::Never => None,
            RetryAfter::SecondsLeft => Some(HeaderValue::from(left)),
            RetryAfter::Zero => Some(HeaderValue::from(0)),
            RetryAfter::Past => {
                let past = Utc::now() - chrono::Duration::seconds(60);
                HeaderValue::from_str(&past.format("%a, %d %b %Y %H:%M:%S GMT").to_string()).ok()
            }
        })
    };
    if let Some(retry_after) = refused {
        return throttled(retry_after);
    }
    let fault = endpoint_of(&recorded.path).and_then(|endpoint| {
        let query = Query::parse(recorded.query.as_deref());
        let matching = shared
            .faults_where
            .lock()
            .unwrap()
            .iter_mut()
            .find(|q| {
                q.endpoint == endpoint
                    && query.first(&q.key) == Some(q.value.as_str())
                    && !q.faults.is_empty()
            })
            .and_then(|q| q.faults.pop_front());
        matching.or_else(|| {
            shared
                .faults
                .lock()
                .unwrap()
                .get_mut(&endpoint)
                .and_then(VecDeque::pop_front)
        })
    });
    let skew = shared.clock.lock().unwrap().skew;
    let answer = || {
        let now = Instant::now();
        let mut state = shared.state.lock().unwrap();
        state.enqueue_chained(now);
        route(&mut state, recorded, now, skew)
    };
    match fault {
        None => answer(),
        Some(Fault::Delay(delay)) => {
            let response = answer();
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).expect("a valid status code");
            error(status, status_message(status), Value::Null)
        }
        Some(Fault::TooManyRequests { retry_after }) => too_many_requests(retry_after),
        Some(Fault::Unavailable { retry_after }) => {
            let status = StatusCode::SERVICE_UNAVAILABLE;
            let mut response = error(status, status_message(status), Value::Null);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Some(Fault::HtmlPage(code)) => {
            let status = StatusCode::from_u16(code).expect("a valid status code");
            let page = format!("<html><head><title>{status}</title></head><body><center><h1>{status}</h1></center><hr><center>nginx</center></body></html>\n");
            (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
        }
        Some(Fault::Reset) => match killer {
            Some(killer) => killer.kill().await,
            None => answer(),
        },
        Some(Fault::CreateThenDrop) => {
            drop(answer());
            match killer {
                Some(killer) => killer.kill().await,
                None => answer(),
            }
        }
        Some(Fault::CutBody) => cut_short(answer()).await,
        Some(Fault::Json(code, body)) => {
            let status = StatusCode::from_u16(code).expect("a valid status code");
            (status, axum::Json(body)).into_response()
        }
        Some(Fault::Redirect(location)) => {
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }
        Some(Fault::Trickle { bytes, tick }) => trickle(answer(), bytes.max(1), tick).await,
        Some(Fault::Patch(fields)) => patched(answer(), fields).await,
        Some(Fault::Padded { bytes }) => padded(answer(), bytes).await,
        Some(Fault::Bloated(bloat)) => patched(answer(), bloated(&bloat)).await,
        Some(Fault::NoLength) => {
            let (mut parts, body) = answer().into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let stream = body.into_data_stream();
            Response::from_parts(parts, Body::from_stream(stream))
        }
    }
}

/// The answer with `fields` of its envelope's `data` replaced.
async fn patched(response: Response, fields: Map<String, Value>) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut envelope: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if let Some(Value::Object(data)) = envelope.get_mut("data") {
        data.extend(fields);
    }
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The answer with its text rewritten, raw: `to` may make it JSON no serializer writes.
async fn rewritten(response: Response, rewrites: &[(String, String)]) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for (from, to) in rewrites {
        text = text.replace(from, to);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(text))
}

/// The fields [`Fault::Bloated`] puts in an answer's `data`.
fn bloated(bloat: &Bloat) -> Map<String, Value> {
    let step = |index: usize, log: &str| {
        json!({
            "id": index, "run_id": 1, "account_id": 1, "index": index,
            "name": "Invoke dbt with `dbt build`", "status": 10, "status_humanized": "Success",
            "logs": log, "debug_logs": log, "duration": "00:00:01",
            "started_at": "2026-11-28 10:00:00.000000+00:00",
            "finished_at": "2026-11-28 10:00:01.000000+00:00",
        })
    };
    let mut fields = Map::new();
    match bloat {
        Bloat::Steps(count) => {
            // Small steps: a million of them are about 57 MB.
            let steps: Vec<Value> = (1..=*count)
                .map(|i| json!({"id": i, "index": i, "name": "dbt build", "status": 10}))
                .collect();
            fields.insert("run_steps".into(), Value::Array(steps));
        }
        Bloat::StepLogs(bytes) => {
            let log = "x".repeat(bytes / 8);
            let steps: Vec<Value> = (1..=4).map(|i| step(i, &log)).collect();
            fields.insert("run_steps".into(), Value::Array(steps));
        }
        Bloat::Field { name, bytes } => {
            let kilobyte = "k".repeat(1000);
            let mut object = Map::new();
            object.insert("cause".into(), json!("Triggered from Keboola"));
            for i in 0..bytes / 1000 {
                object.insert(format!("k{i}"), json!(kilobyte));
            }
            fields.insert(name.clone(), Value::Object(object));
        }
    }
    fields
}

/// The answer with `"padding": [0, 0, ...]` of about `bytes` bytes first in its `data`, made
/// while it is sent, so that a huge answer costs the emulator no memory.
async fn padded(response: Response, bytes: u64) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let (mut parts, body) = response.into_parts();
    let whole = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&whole).into_owned();
    let Some(at) = text.find("\"data\":{").map(|i| i + "\"data\":{".len()) else {
        return Response::from_parts(parts, Body::from(whole));
    };
    let zeros = bytes / 2;
    let head = format!("{}\"padding\":[", &text[..at]);
    let tail = format!("0],{}", &text[at..]);
    let length = head.len() as u64 + zeros * 2 + tail.len() as u64;
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let padding = futures_util::stream::unfold(0u64, move |sent| async move {
        (sent < zeros).then(|| {
            let n = CHUNK.min(zeros - sent);
            let chunk = "0,".repeat(n as usize);
            (
                Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)),
                sent + n,
            )
        })
    });
    let stream = futures_util::stream::iter([Ok(axum::body::Bytes::from(head))])
        .chain(padding)
        .chain(futures_util::stream::iter([Ok(axum::body::Bytes::from(
            tail,
        ))]));
    Response::from_parts(parts, Body::from_stream(stream))
}

fn too_many_requests(retry_after: Option<u64>) -> Response {
    throttled(retry_after.map(HeaderValue::from))
}

fn throttled(retry_after: Option<HeaderValue>) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "Request was throttled.",
        Value::Null,
    );
    if let Some(value) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The same answer and length, sent `bytes` at a time every `tick`.
async fn trickle(response: Response, bytes: usize, tick: std::time::Duration) -> Response {
    let (mut parts, body) = response.into_parts();
    let all = to_bytes(body, usize::MAX).await.unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(all.len()));
    let chunks = futures_util::stream::unfold(0usize, move |offset| {
        let all = all.clone();
        async move {
            if offset >= all.len() {
                return None;
            }
            if offset > 0 {
                tokio::time::sleep(tick).await;
            }
            let end = (offset + bytes).min(all.len());
            Some((Ok::<_, std::io::Error>(all.slice(offset..end)), end))
        }
    });
    Response::from_parts(parts, Body::from_stream(chunks))
}

/// The same answer and headers, announcing the full length but ending halfway.
async fn cut_short(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    // The pause lets hyper flush the head and the first half before the error drops the connection.
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(half)]);
    let then_fail = futures_util::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        Err(std::io::Error::other("cut short by a fault"))
    });
    Response::from_parts(parts, Body::from_stream(first.chain(then_fail)))
}

fn status_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        500 => "There was a server error. Please contact support!",
        502 => "Bad gateway.",
        503 => "Service temporarily unavailable.",
        504 => "Gateway timeout.",
        _ => "There was an error.",
    }
}

/// An endpoint of the API; fault injection (later) is keyed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /accounts/A/`: the account; without a token, how dbt Labs documents telling an IP
    /// allow-list's refusal from a token's.
    GetAccount,
    ListJobs,
    GetJob,
    Trigger,
    Rerun,
    /// `POST /runs/R/retry/`: one failed run resumed.
    Retry,
    ListRuns,
    GetRun,
    Cancel,
    ListArtifacts,
    DownloadArtifact,
}

/// The endpoint a path addresses, for fault lookup; `None` for paths the API does not have.
fn endpoint_of(path: &str) -> Option<Endpoint> {
    let rest = path.strip_prefix("/api/v2/accounts/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let (endpoint, _) = classify(&segments)?;
    Some(endpoint)
}

/// `segments`: the path after `/api/v2/accounts/`, split on `/` (the account id first).
fn classify(segments: &[&str]) -> Option<(Endpoint, Method)> {
    let is_download = segments.len() > 4
        && segments[1] == "runs"
        && segments[3] == "artifacts"
        && !segments[4].is_empty();
    let tail = if is_download {
        &segments[1..]
    } else {
        segments
            .get(1..)?
            .split_last()
            .map_or(&[][..], |(_, init)| init)
    };
    let found = match tail {
        [] => (Endpoint::GetAccount, Method::GET),
        ["jobs"] => (Endpoint::ListJobs, Method::GET),
        ["jobs", _] => (Endpoint::GetJob, Method::GET),
        ["jobs", _, "run"] => (Endpoint::Trigger, Method::POST),
        ["jobs", _, "rerun"] => (Endpoint::Rerun, Method::POST),
        ["runs"] => (Endpoint::ListRuns, Method::GET),
        ["runs", _] => (Endpoint::GetRun, Method::GET),
        ["runs", _, "cancel"] => (Endpoint::Cancel, Method::POST),
        ["runs", _, "retry"] => (Endpoint::Retry, Method::POST),
        ["runs", _, "artifacts"] => (Endpoint::ListArtifacts, Method::GET),
        ["runs", _, "artifacts", ..] => (Endpoint::DownloadArtifact, Method::GET),
        _ => return None,
    };
    Some(found)
}

fn route(
    state: &mut State,
    request: &RecordedRequest,
    now: Instant,
    skew: chrono::Duration,
) -> Response {
    let Some(rest) = request.path.strip_prefix("/api/v2/accounts/") else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null);
    };
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segment_refs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some((endpoint, method)) = classify(&segment_refs) else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null);
    };
    let is_download = endpoint == Endpoint::DownloadArtifact;
    // Like Django's APPEND_SLASH: a path without the final `/` is redirected to the one with it.
    if !request.path.ends_with('/') && !is_download {
        let mut location = format!("{}/", request.path);
        if let Some(query) = &request.query {
            location.push('?');
            location.push_str(query);
        }
        return (
            StatusCode::MOVED_PERMANENTLY,
            [(header::LOCATION, location)],
        )
            .into_response();
    }
    if let Some(refusal) = refusal(state, request, &segments[0]) {
        return refusal;
    }
    if request.method != method.as_str() {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(json!({ "detail": format!("Method \"{}\" not allowed.", request.method) })),
        )
            .into_response();
    }
    let account_id: u64 = segments[0]
        .parse()
        .expect("refusal() checked the account id");
    let id = segments.get(2).and_then(|s| s.parse::<u64>().ok());
    let query = Query::parse(request.query.as_deref());
    match endpoint {
        Endpoint::GetAccount => match state.accounts.get(&account_id) {
            Some(account) => ok(account_json(account)),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::ListJobs => list_jobs(state, account_id, &query),
        Endpoint::GetJob => match id.and_then(|id| job_of(state, account_id, id)) {
            Some(job) => ok(job_json(job, &query.related())),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::Trigger => trigger(state, account_id, id, &request.body, now, skew),
        Endpoint::Rerun => rerun(state, account_id, id, now, skew),
        Endpoint::Retry => match run_of(state, account_id, id) {
            Some(run_id) => retry(state, run_id, now, skew),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::ListRuns => list_runs(state, account_id, &query, now),
        Endpoint::GetRun => match run_of(state, account_id, id) {
            Some(run_id) => ok(state
                .view(run_id, now)
                .unwrap()
                .to_json(&state.base_url, &query.related())),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::Cancel => match run_of(state, account_id, id) {
            Some(run_id) => cancel(state, run_id, now),
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::ListArtifacts => match run_of(state, account_id, id) {
            Some(run_id) => {
                let listed = state
                    .view(run_id, now)
                    .unwrap()
                    .listed_artifacts(query.step())
                    .map(|artifacts| {
                        artifacts
                            .iter()
                            .map(|a| Value::String(a.path.clone()))
                            .collect::<Vec<_>>()
                    });
                ok(listed.map_or(Value::Null, Value::Array))
            }
            None => error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null),
        },
        Endpoint::DownloadArtifact => {
            let path = segments[4..].join("/");
            let found = run_of(state, account_id, id).and_then(|run_id| {
                let view = state.view(run_id, now).unwrap();
                view.listed_artifacts(query.step())?
                    .iter()
                    .find(|a| a.path == path)
                    .map(|a| a.content.clone())
            });
            match found {
                Some(Content::Missing) | None => {
                    error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null)
                }
                Some(content) => artifact(&path, content),
            }
        }
    }
}

/// `Token x` or `Bearer x`; then the account must exist, be visible to the token, and have API
/// access. `None` when the request may proceed.
fn refusal(state: &State, request: &RecordedRequest, account: &str) -> Option<Response> {
    // The allow-list is checked before the token: without one, a blocked address is told
    // `Forbidden: Access denied` and an allowed one that no credentials came (dbt Labs' docs).
    let addressed = account.parse::<u64>().ok();
    if let Some(blocked) = addressed
        .and_then(|id| state.accounts.get(&id))
        .filter(|account| !account.allows_this_address)
    {
        return Some(error(
            StatusCode::FORBIDDEN,
            "Forbidden: Access denied",
            json!({"account_id": blocked.id, "user_id": null, "is_service_token": true, "account_access_denied": true}),
        ));
    }
    let Some(authorization) = request.header("authorization") else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
            Value::Null,
        ));
    };
    let token = authorization
        .strip_prefix("Token ")
        .or_else(|| authorization.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(accounts) = token.and_then(|t| state.tokens.get(t)) else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "Invalid token.",
            Value::Null,
        ));
    };
    let account = account
        .parse::<u64>()
        .ok()
        .filter(|id| accounts.contains(id))
        .and_then(|id| state.accounts.get(&id));
    match account {
        None => Some(error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null)),
        Some(account) if !account.api_access => Some(error(
            StatusCode::UNAUTHORIZED,
            "The API is not accessible to unpaid accounts.",
            Value::Null,
        )),
        Some(_) => None,
    }
}

/// An account as `GET /accounts/A/` answers it: every field the spec requires.
fn account_json(account: &crate::scenario::Account) -> Value {
    let at = "2024-01-15T09:00:00.000000Z";
    json!({
        "id": account.id, "name": account.name, "state": 1, "plan": "enterprise",
        "identifier": format!("act_{}", account.id), "locked": false, "lock_reason": "",
        "lock_cause": "trial_expired", "unlocked_at": at, "pending_cancel": false,
        "run_slots": 5, "developer_seats": 10, "read_only_seats": 10, "it_seats": 1,
        "explorer_seats": 0, "analyst_seats": 0, "queue_limit": 50,
        "run_duration_limit_seconds": 86400, "pod_memory_request_mebibytes": 600,
        "develop_pod_memory_request_mebibytes": 0, "run_locked_until": at,
        "copilot_locked_until": at, "agent_credit_locked": false, "business_critical": false,
        "billing_email_address": "billing@example.com", "enterprise_login_slug": "",
        "git_auth_level": "team", "groups": [], "account_migration_events": [],
        "starter_repo_url": "", "static_subdomain": "", "vanity_subdomain": "",
        "trial_end_date": at, "created_at": at, "updated_at": at,
    })
}

fn job_of(state: &State, account_id: u64, job_id: u64) -> Option<&Job> {
    state
        .jobs
        .get(&job_id)
        .filter(|job| job.account_id == account_id)
}

fn run_of(state: &State, account_id: u64, run_id: Option<u64>) -> Option<u64> {
    let run = state.runs.get(&run_id?)?;
    (run.account_id == account_id).then_some(run.id)
}

fn trigger(
    state: &mut State,
    account_id: u64,
    job_id: Option<u64>,
    body: &[u8],
    now: Instant,
    skew: chrono::Duration,
) -> Response {
    let Some(job) = job_id.and_then(|id| job_of(state, account_id, id)).cloned() else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null);
    };
    let mut body: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => return invalid(json!({"non_field_errors": ["Invalid data. Expected a dictionary."]})),
    };
    // A Django REST framework CharField: the cause is stored trimmed.
    if let Some(Value::String(cause)) = body.get_mut("cause") {
        *cause = cause.trim().to_owned();
    }
    match body.get("cause") {
        Some(Value::String(cause)) if !cause.is_empty() => {}
        Some(Value::String(_)) => {
            return invalid(json!({"cause": ["This field may not be blank."]}))
        }
        _ => return invalid(json!({"cause": ["This field is required."]})),
    }
    create_run(
        state,
        &job,
        account_id,
        trigger_json(&job, &body),
        now,
        skew,
    )
}

/// Retries the job's newest run from its point of failure when it failed, else triggers anew:
/// either way a new run, whose trigger says `rerun`.
fn rerun(
    state: &mut State,
    account_id: u64,
    job_id: Option<u64>,
    now: Instant,
    skew: chrono::Duration,
) -> Response {
    let Some(job) = job_id.and_then(|id| job_of(state, account_id, id)).cloned() else {
        return error(StatusCode::NOT_FOUND, NOT_FOUND, Value::Null);
    };
    let newest = newest_run_of(state, job.id);
    let failed = newest.is_some_and(|id| state.view(id, now).is_some_and(|v| v.status() == 20));
    let cause = match (failed, newest) {
        (true, Some(id)) => format!("Retry of run {id} from the point of failure"),
        _ => "Rerun of the job".to_owned(),
    };
    let mut trigger = trigger_json(&job, &Map::from_iter([("cause".to_owned(), json!(cause))]));
    trigger["cause_category"] = json!("rerun");
    create_run(state, &job, account_id, trigger, now, skew)
}

/// Resumes one failed run from its point of failure, as a new run, when it is its job's newest,
/// ended in Error, and can be retried; else 400 with dbt Cloud's reason code (the answer's
/// wording is ours: dbt's docs do not show it).
fn retry(state: &mut State, run_id: u64, now: Instant, skew: chrono::Duration) -> Response {
    let view = state.view(run_id, now).unwrap();
    let job = view.job.clone();
    let newest = newest_run_of(state, job.id);
    let reason = if newest != Some(run_id) {
        Some("RETRY_NOT_LATEST_RUN".to_owned())
    } else if view.status() != 20 {
        Some("RETRY_NOT_FAILED_RUN".to_owned())
    } else {
        job.retry_refused.clone()
    };
    if let Some(reason) = reason {
        return error(
            StatusCode::BAD_REQUEST,
            "This run cannot be retried.",
            json!({"run": [reason]}),
        );
    }
    let account_id = view.run.account_id;
    let cause = format!("Retry of run {run_id} from the point of failure");
    let mut trigger = trigger_json(&job, &Map::from_iter([("cause".to_owned(), json!(cause))]));
    trigger["cause_category"] = json!("rerun");
    create_run(state, &job, account_id, trigger, now, skew)
}

fn create_run(
    state: &mut State,
    job: &Job,
    account_id: u64,
    trigger: Value,
    now: Instant,
    skew: chrono::Duration,
) -> Response {
    let id = state.next_run_id();
    state.runs.insert(
        id,
        RunRecord {
            id,
            job_id: job.id,
            account_id,
            trigger,
            created: now,
            created_at: chrono::Utc::now() + skew,
            cancelled_after: None,
            cancelled_because: None,
            timeline: job.timeline,
            outcome: job.outcome,
            children_enqueued: false,
        },
    );
    let related = ["trigger".to_owned(), "job".to_owned()];
    ok(state
        .view(id, now)
        .unwrap()
        .to_json(&state.base_url, &related))
}

fn cancel(state: &mut State, run_id: u64, now: Instant) -> Response {
    state.cancel(run_id, now);
    ok(state
        .view(run_id, now)
        .unwrap()
        .to_json(&state.base_url, &[]))
}

/// The account's jobs; deleted ones only when `state` asks for them (it defaults to active).
fn list_jobs(state: &State, account_id: u64, query: &Query) -> Response {
    let (wanted, named): (&[JobState], &str) = match query.first("state") {
        None | Some("active") | Some("1") => (&[JobState::Active], "active"),
        Some("deleted") | Some("2") => (&[JobState::Deleted], "deleted"),
        Some("all") => (&[JobState::Active, JobState::Deleted], "all"),
        Some(other) => {
            return invalid(
                json!({"state": [format!("Select a valid choice. {other} is not one of the available choices.")]}),
            )
        }
    };
    let jobs: Vec<Value> = state
        .jobs
        .values()
        .filter(|job| job.account_id == account_id && wanted.contains(&job.state))
        .map(|job| job_json(job, &query.related()))
        .collect();
    let mut filters = Map::new();
    filters.insert("account_id".into(), json!(account_id));
    filters.insert("state".into(), json!(named));
    paged(jobs, query, "id", filters)
}

fn list_runs(state: &State, account_id: u64, query: &Query, now: Instant) -> Response {
    let job_filter = query
        .first("job_definition_id")
        .and_then(|v| v.parse::<u64>().ok());
    let mut statuses: Vec<u64> = query
        .list("status__in")
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    statuses.extend(query.first("status").and_then(|s| s.parse::<u64>().ok()));
    let related = query.related();
    let mut views: Vec<_> = state
        .runs
        .values()
        .filter(|run| {
            run.account_id == account_id && job_filter.is_none_or(|job| run.job_id == job)
        })
        .filter_map(|run| state.view(run.id, now))
        .filter(|view| statuses.is_empty() || statuses.contains(&view.status()))
        .collect();
    let order_by = query.first("order_by").unwrap_or("id").to_owned();
    // Ids grow with creation time, so id order is also created_at order.
    match order_by.trim_start_matches('-') {
        "id" | "created_at" => views.sort_by_key(|v| v.run.id),
        "finished_at" => views.sort_by_key(|v| (v.run.created + v.run.timeline.total(), v.run.id)),
        _ => return invalid(json!({"order_by": [format!("Invalid ordering field: {order_by}")]})),
    }
    if order_by.starts_with('-') {
        views.reverse();
    }
    let mut filters = Map::new();
    filters.insert("account_id".into(), json!(account_id));
    if let Some(job) = job_filter {
        filters.insert("job_definition_id".into(), json!(job));
    }
    let runs = views
        .iter()
        .map(|v| v.to_json(&state.base_url, &related))
        .collect();
    paged(runs, query, &order_by, filters)
}

fn paged(
    items: Vec<Value>,
    query: &Query,
    order_by: &str,
    filters: Map<String, Value>,
) -> Response {
    let limit = match query.first("limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => return invalid(json!({"limit": ["Ensure this value is between 1 and 100."]})),
    };
    let offset = match query.first("offset").map(str::parse::<usize>) {
        None => 0,
        Some(Ok(offset)) => offset,
        Some(Err(_)) => return invalid(json!({"offset": ["A valid integer is required."]})),
    };
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let mut filters = filters;
    filters.insert("limit".into(), json!(limit));
    filters.insert("offset".into(), json!(offset));
    let body = json!({
        "status": success_status(),
        "data": page,
        "extra": {
            "filters": filters,
            "order_by": order_by,
            "pagination": {"count": page.len(), "total_count": total},
        },
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn artifact(path: &str, content: Content) -> Response {
    let content_type = match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("sql") | Some("txt") | Some("md") => "text/plain; charset=utf-8",
        Some("parquet") => "application/x-parquet",
        _ => "application/octet-stream",
    };
    let mut response = match content {
        Content::Bytes(bytes) => Response::new(Body::from(bytes)),
        Content::Missing => unreachable!("a missing artifact answers 404 before this"),
        Content::Generated { size } => {
            let mut response = Response::new(Body::from_stream(generate(size)));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            response
        }
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A generated artifact's bytes, made chunk by chunk as the client reads them.
fn generate(
    size: u64,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    const CHUNK: u64 = 64 * 1024;
    futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= size {
            return None;
        }
        let end = (offset + CHUNK).min(size);
        let chunk: Vec<u8> = (offset..end).map(generated_byte).collect();
        Some((Ok(axum::body::Bytes::from(chunk)), end))
    })
}

fn success_status() -> Value {
    json!({"code": 200, "is_success": true, "user_message": "Success!", "developer_message": ""})
}

fn ok(data: Value) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"status": success_status(), "data": data})),
    )
        .into_response()
}

fn invalid(data: Value) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "The request was invalid. Please double check the provided data and try again.",
        data,
    )
}

fn error(status: StatusCode, user_message: &str, data: Value) -> Response {
    let body = json!({
        "status": {
            "code": status.as_u16(),
            "is_success": false,
            "user_message": user_message,
            "developer_message": Value::Null,
        },
        "data": data,
    });
    (status, axum::Json(body)).into_response()
}

/// Query parameters, with `include_related` read in every encoding clients use: a JSON list,
/// a comma-separated list, a repeated key, or Python's list repr.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query(pairs)
    }

    fn first(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k == &format!("{key}[]"))
            .flat_map(|(_, v)| {
                v.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .map(|item| {
                item.trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .trim()
                    .to_owned()
            })
            .filter(|item| !item.is_empty())
            .collect()
    }

    fn related(&self) -> Vec<String> {
        self.list("include_related")
    }

    /// `step`: which step's `target/` the artifact endpoints read (1-based; the last without it).
    fn step(&self) -> Option<usize> {
        self.first("step").and_then(|step| step.parse().ok())
    }
}

/// The id of the job's newest run, if it has any.
fn newest_run_of(state: &State, job_id: u64) -> Option<u64> {
    state
        .runs
        .values()
        .rev()
        .find(|run| run.job_id == job_id)
        .map(|run| run.id)
}
