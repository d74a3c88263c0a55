//! config.json, turned into typed values once. Nothing past this module sees raw JSON.
//!
//! The rules follow the earlier Python component's configs, so that they keep working: ids may be
//! numbers or strings of digits, `max_wait_time` a number of minutes or a string holding one.
//! [`PARAMETERS`] is the one definition of the keys, their kinds and defaults: the parser reads
//! its defaults from it, and a test holds the UI form (`configSchema.json`) to it.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::dbt_cloud::{AccountId, BaseUrl, Connection, JobId, DEFAULT_BASE_URL};
use crate::error::{user_error, UserError};
use crate::secret::ApiToken;

/// dbt Cloud clients cut the cause at 255 characters; we refuse rather than change what was asked.
const MAX_CAUSE_CHARS: usize = 255;
/// A wait longer than a year is a typo, and would overflow `Duration` arithmetic further on.
const MAX_WAIT_MINUTES: f64 = 525_600.0;
const MAX_ARTIFACT_CONCURRENCY: u64 = 32;
const MAX_REQUESTS_PER_MINUTE: u64 = 1_000_000;
const MAX_POLL_INTERVAL_SECONDS: f64 = 3_600.0;
/// A terabyte: past any artifact dbt writes, and within `u64` bytes.
const MAX_ARTIFACT_SIZE_MB: f64 = 1_000_000.0;
/// A year, like `MAX_WAIT_MINUTES`: keeps the deadline arithmetic far from overflow.
const MAX_PROCESS_TIMEOUT_SECONDS: f64 = 31_536_000.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Integer,
    Number,
    String,
    Boolean,
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    Required,
    /// Absent means "not set" (e.g. `poll_interval`: the adaptive schedule).
    Unset,
    Boolean(bool),
    Integer(u64),
    Number(f64),
    String(&'static str),
}

#[derive(Debug)]
pub struct Parameter {
    pub key: &'static str,
    pub kind: Kind,
    pub default: Default,
}

const fn parameter(key: &'static str, kind: Kind, default: Default) -> Parameter {
    Parameter { key, kind, default }
}

/// Every key `parameters` may hold. Any other key is ignored with a warning that names the
/// closest of these: a typo such as `max_wait_tme` would otherwise silently fall back to a
/// default, but failing the job for a key the form no longer shows would punish the user.
pub const PARAMETERS: &[Parameter] = &[
    parameter(
        "dbt_cloud_url",
        Kind::String,
        Default::String(DEFAULT_BASE_URL),
    ),
    parameter("account_id", Kind::Integer, Default::Required),
    parameter("#api_key", Kind::String, Default::Required),
    parameter("job_id", Kind::Integer, Default::Required),
    parameter(
        "cause",
        Kind::String,
        Default::String("Triggered from Keboola"),
    ),
    parameter("wait_for_result", Kind::Boolean, Default::Boolean(false)),
    parameter("max_wait_time", Kind::Number, Default::Number(60.0)),
    parameter("ignore_artifacts", Kind::Boolean, Default::Boolean(false)),
    parameter(
        "artifacts_must_succeed",
        Kind::Boolean,
        Default::Boolean(true),
    ),
    parameter("cancel_on_terminate", Kind::Boolean, Default::Boolean(true)),
    parameter("cancel_on_timeout", Kind::Boolean, Default::Boolean(false)),
    parameter("poll_interval", Kind::Number, Default::Unset),
    parameter("artifact_concurrency", Kind::Integer, Default::Integer(8)),
    // Ten times the largest manifest.json we have seen, so that only a runaway answer meets it.
    parameter("max_artifact_size", Kind::Number, Default::Number(10_000.0)),
    // A fifth of dbt Cloud's 5,000 requests a minute per account, which every other client of
    // the account (schedulers, the IDE, other pipelines) shares.
    parameter(
        "max_requests_per_minute",
        Kind::Integer,
        Default::Integer(1_000),
    ),
    parameter("trigger_overrides", Kind::Object, Default::Unset),
    parameter("if_running", Kind::String, Default::String("trigger")),
    parameter("retry_failed", Kind::Boolean, Default::Boolean(false)),
    parameter("fail_on_run_error", Kind::Boolean, Default::Boolean(true)),
    parameter("artifacts_include", Kind::Array, Default::Unset),
    parameter("artifacts_zip", Kind::Boolean, Default::Boolean(false)),
    parameter("debug", Kind::Boolean, Default::Boolean(false)),
];

/// Keys the form itself saves without the parser needing them: its buttons. Ignored silently.
pub const FORM_ONLY_KEYS: &[&str] = &["test_connection", "recent_runs"];

/// The trigger body's optional fields (`TriggerRunRequestRequest` of the API), by kind.
const OVERRIDES: &[(&str, Override)] = &[
    ("git_sha", Override::Text),
    ("git_branch", Override::Text),
    ("schema_override", Override::Text),
    ("dbt_version_override", Override::Text),
    ("threads_override", Override::Count { min: 1 }),
    ("target_name_override", Override::Text),
    ("generate_docs_override", Override::Flag),
    ("timeout_seconds_override", Override::Count { min: 0 }),
    ("steps_override", Override::Commands),
    ("azure_pull_request_id", Override::Count { min: 1 }),
    ("github_pull_request_id", Override::Count { min: 1 }),
    ("gitlab_merge_request_id", Override::Count { min: 1 }),
];

#[derive(Debug, Clone, Copy)]
enum Override {
    /// A non-empty string.
    Text,
    /// An integer of at least `min`.
    Count {
        min: u64,
    },
    Flag,
    /// A non-empty list of non-empty dbt commands.
    Commands,
}

/// What to do when a run of the job is already queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfRunning {
    /// Trigger a new run regardless.
    Trigger,
    /// Adopt the newest such run and wait for it as if we had triggered it.
    Wait,
    /// Cancel them, then trigger.
    Replace,
}

/// What config.json asks for: the job, or one of the synchronous actions of the UI.
#[derive(Debug, Clone)]
pub enum Request {
    Run(Config),
    /// Checks the URL, the token, the account and, when given, the job.
    TestConnection(Connection, Option<JobId>),
    /// Every job of the account, for the Job ID dropdown.
    ListJobs(Connection),
    /// The job's last runs, for a validation button.
    ListRecentRuns(Connection, JobId),
}

pub const ACTIONS: &[&str] = &["run", "testConnection", "listJobs", "listRecentRuns"];

#[derive(Debug, Clone)]
pub struct Config {
    pub connection: Connection,
    pub job_id: JobId,
    pub cause: String,
    pub wait: Wait,
    pub download_artifacts: bool,
    /// When false, a failed artifact is a warning as long as the others came.
    pub artifacts_must_succeed: bool,
    /// Cancel the dbt run when SIGTERM or SIGINT comes while waiting.
    pub cancel_on_terminate: bool,
    /// Cancel the dbt run when `max_wait_time` passes.
    pub cancel_on_timeout: bool,
    /// A fixed interval between polls, instead of the adaptive schedule.
    pub poll_interval: Option<Duration>,
    /// Downloads in flight at once.
    pub artifact_concurrency: usize,
    /// In bytes: a larger artifact fails instead of filling the disk.
    pub max_artifact_size: u64,
    /// The ceiling on this component's requests to dbt Cloud.
    pub max_requests_per_minute: u32,
    pub debug: bool,
    /// `storage.output.data_type_support`, when config.json sets it.
    pub data_type_support: Option<DataTypeSupport>,
    /// Fields added to the trigger body, each checked against the API's definition.
    pub trigger_overrides: Map<String, Value>,
    pub if_running: IfRunning,
    /// Rerun from the point of failure when the job's newest run ended in Error.
    pub retry_failed: bool,
    /// When false, a run that ends in Error or Cancelled is a warning, and the exit code 0.
    pub fail_on_run_error: bool,
    /// Glob patterns over artifact paths; `None`: every artifact.
    pub artifacts_include: Option<Vec<String>>,
    /// Also pack the artifacts into `out/files/dbt_artifacts_<run_id>.zip`.
    pub artifacts_zip: bool,
    /// `runtime.process_timeout`: when Keboola kills the job, counted from its start.
    pub process_timeout: Option<Duration>,
    /// What the parser ignored, for the log.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Trigger and return at once.
    No,
    /// Poll until the run is final, but no longer than this.
    UpTo(Duration),
}

/// Whether the project uses native data types: typed table manifests, or legacy ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataTypeSupport {
    Authoritative,
    Hints,
    None,
}

impl DataTypeSupport {
    /// `KBC_DATA_TYPE_SUPPORT`'s and config.json's values; anything else means none.
    pub fn from_name(name: &str) -> DataTypeSupport {
        match name.trim() {
            "authoritative" => DataTypeSupport::Authoritative,
            "hints" => DataTypeSupport::Hints,
            _ => DataTypeSupport::None,
        }
    }

    pub fn typed(self) -> bool {
        self != DataTypeSupport::None
    }
}

/// Reads and parses `config.json`. Every failure is the user's to fix.
pub fn load(path: &Path) -> Result<Request> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return user_error(format!(
                "config.json not found at {}: pass the data folder with --data-dir or KBC_DATADIR",
                path.display()
            ))
        }
        Err(e) => {
            return user_error(format!(
                "config.json at {} cannot be read: {e}",
                path.display()
            ))
        }
    };
    parse(&text)
}

pub fn parse(text: &[u8]) -> Result<Request> {
    let root: Value = serde_json::from_slice(text)
        .map_err(|e| UserError::new(format!("config.json is not valid JSON: {e}")))?;
    let Value::Object(mut root) = root else {
        return user_error("config.json must be a JSON object");
    };
    let parameters =
        match root.remove("parameters") {
            Some(Value::Object(parameters)) => parameters,
            None | Some(Value::Null) => return user_error(
                "config.json has no \"parameters\": account_id, job_id and #api_key are required",
            ),
            Some(_) => return user_error("config.json's \"parameters\" must be a JSON object"),
        };
    let action = match root.get("action") {
        None | Some(Value::Null) => "run",
        Some(Value::String(action)) if action.is_empty() => "run",
        Some(Value::String(action)) => action.as_str(),
        Some(other) => {
            return user_error(format!(
                "config.json's \"action\" must be a string, got {}",
                echo(other)
            ))
        }
    };
    let p = Parameters(&parameters);
    let request = match action {
        "run" => process_timeout(&root)
            .and_then(|timeout| from_parameters(&p, data_type_support(&root), timeout))
            .map(Request::Run),
        // The UI calls these with the form as it is, perhaps half filled: only what the action
        // needs is read.
        "testConnection" => {
            connection(&p).and_then(|c| Ok(Request::TestConnection(c, p.optional_id("job_id")?)))
        }
        "listJobs" => connection(&p).map(Request::ListJobs),
        "listRecentRuns" => {
            connection(&p).and_then(|c| Ok(Request::ListRecentRuns(c, job_id(&p)?)))
        }
        other => Err(format!(
            "config.json's action \"{}\" is unknown; the known actions are {}",
            cut(other),
            ACTIONS.join(", ")
        )),
    };
    request.map_err(|message| UserError::new(message).into())
}

/// `storage.output.data_type_support`, when present.
fn data_type_support(root: &Map<String, Value>) -> Option<DataTypeSupport> {
    let value = root
        .get("storage")?
        .get("output")?
        .get("data_type_support")?
        .as_str()?;
    Some(DataTypeSupport::from_name(value))
}

/// `parameters`, read key by key with the defaults of [`PARAMETERS`].
struct Parameters<'a>(&'a Map<String, Value>);

impl Parameters<'_> {
    /// The value, `None` when absent or null.
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn default(&self, key: &str) -> Default {
        PARAMETERS
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("{key} is not in PARAMETERS"))
            .default
    }

    fn boolean(&self, key: &str) -> Result<bool, String> {
        match (self.get(key), self.default(key)) {
            (None, Default::Boolean(default)) => Ok(default),
            (Some(Value::Bool(b)), _) => Ok(*b),
            (Some(other), _) => Err(format!("{key} must be true or false, got {}", echo(other))),
            (None, default) => unreachable!("{key} is boolean with default {default:?}"),
        }
    }

    /// A positive integer no larger than `max`, or the default.
    fn integer(&self, key: &str, max: u64) -> Result<u64, String> {
        let n = match (self.get(key), self.default(key)) {
            (None, Default::Integer(default)) => return Ok(default),
            (None, _) => return Err(format!("{key} is required: a positive integer")),
            (value, _) => positive_integer(key, value)?,
        };
        if n > max {
            return Err(format!("{key} must be at most {max}, got {n}"));
        }
        Ok(n)
    }

    fn optional_id(&self, key: &str) -> Result<Option<JobId>, String> {
        self.get(key)
            .map(|value| {
                positive_integer(key, Some(value)).map(|n| JobId::new(n).expect("positive"))
            })
            .transpose()
    }

    fn string(&self, key: &str) -> Result<Option<&str>, String> {
        match self.get(key) {
            None => Ok(match self.default(key) {
                Default::String(default) => Some(default),
                _ => None,
            }),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{key} must be a string, got {}", echo(other))),
        }
    }

    /// A number, or a string holding one (the Python component's configs have both).
    fn number(&self, key: &str) -> Option<Result<f64, ()>> {
        let value = match self.get(key) {
            None => match self.default(key) {
                Default::Number(default) => return Some(Ok(default)),
                _ => return None,
            },
            Some(value) => value,
        };
        Some(match value {
            Value::Number(n) => n.as_f64().ok_or(()),
            Value::String(s) => s.trim().parse::<f64>().map_err(|_| ()),
            _ => Err(()),
        })
    }
}

fn connection(p: &Parameters) -> Result<Connection, String> {
    let dbt_cloud_url = p.string("dbt_cloud_url")?.expect("the URL has a default");
    let dbt_cloud_url = BaseUrl::parse(dbt_cloud_url)
        // Only the scheme and host are echoed: users paste tokens into URLs.
        .map_err(|why| {
            format!(
                "dbt_cloud_url ({}) is not usable: {why}",
                scheme_and_host(dbt_cloud_url)
            )
        })?;
    let account_id = AccountId::new(p.integer("account_id", u64::MAX)?).expect("positive");
    let api_token = match p.get("#api_key") {
        None => {
            return Err(
                "#api_key is required: a dbt Cloud service token or personal access token".into(),
            )
        }
        Some(Value::String(token)) => ApiToken::new(token)
            .ok_or("#api_key must be a non-empty token without spaces or line breaks")?,
        // Never echo the value: it is a secret even when mistyped.
        Some(_) => return Err("#api_key must be a string".into()),
    };
    Ok(Connection {
        dbt_cloud_url,
        account_id,
        api_token,
    })
}

fn job_id(p: &Parameters) -> Result<JobId, String> {
    Ok(JobId::new(p.integer("job_id", u64::MAX)?).expect("positive"))
}

fn from_parameters(
    p: &Parameters,
    data_type_support: Option<DataTypeSupport>,
    process_timeout: Option<Duration>,
) -> Result<Config, String> {
    let warnings =
        p.0.keys()
            .filter(|key| {
                !PARAMETERS.iter().any(|known| known.key == key.as_str())
                    && !FORM_ONLY_KEYS.contains(&key.as_str())
            })
            .map(|key| unknown_key(key))
            .collect();
    let connection = connection(p)?;
    let job_id = job_id(p)?;
    let cause = match p.string("cause")? {
        Some(cause) if cause.trim().is_empty() => return Err("cause must not be empty".into()),
        Some(cause) if cause.chars().count() > MAX_CAUSE_CHARS => {
            return Err(format!(
                "cause must be at most {MAX_CAUSE_CHARS} characters, got {}",
                cause.chars().count()
            ))
        }
        cause => cause.expect("the cause has a default").to_owned(),
    };
    let max_wait = match p
        .number("max_wait_time")
        .expect("max_wait_time has a default")
    {
        Ok(minutes) if minutes.is_finite() && minutes > 0.0 && minutes <= MAX_WAIT_MINUTES => {
            Duration::from_secs_f64(minutes * 60.0)
        }
        _ => {
            return Err(format!(
                "max_wait_time must be a number of minutes greater than 0 and at most \
                 {MAX_WAIT_MINUTES} (fractions allowed, e.g. 0.5), got {}",
                echo(p.get("max_wait_time").expect("the default is valid"))
            ))
        }
    };
    let poll_interval = match (p.number("poll_interval"), p.get("poll_interval")) {
        (None, _) => None,
        (Some(Ok(seconds)), Some(Value::Number(_))) if (1.0..=MAX_POLL_INTERVAL_SECONDS).contains(&seconds) => {
            Some(Duration::from_secs_f64(seconds))
        }
        (_, value) => {
            return Err(format!(
                "poll_interval must be a number of seconds from 1 to {MAX_POLL_INTERVAL_SECONDS}, got {}",
                echo(value.expect("a value was given"))
            ))
        }
    };
    let max_artifact_size = match p
        .number("max_artifact_size")
        .expect("max_artifact_size has a default")
    {
        Ok(mb) if mb.is_finite() && mb > 0.0 && mb <= MAX_ARTIFACT_SIZE_MB => {
            (mb * 1e6).round() as u64
        }
        _ => {
            return Err(format!(
                "max_artifact_size must be a number of megabytes greater than 0 and at most \
                 {MAX_ARTIFACT_SIZE_MB} (fractions allowed), got {}",
                echo(p.get("max_artifact_size").expect("the default is valid"))
            ))
        }
    };
    Ok(Config {
        connection,
        job_id,
        cause,
        wait: if p.boolean("wait_for_result")? {
            Wait::UpTo(max_wait)
        } else {
            Wait::No
        },
        download_artifacts: !p.boolean("ignore_artifacts")?,
        artifacts_must_succeed: p.boolean("artifacts_must_succeed")?,
        cancel_on_terminate: p.boolean("cancel_on_terminate")?,
        cancel_on_timeout: p.boolean("cancel_on_timeout")?,
        poll_interval,
        artifact_concurrency: p.integer("artifact_concurrency", MAX_ARTIFACT_CONCURRENCY)? as usize,
        max_artifact_size,
        max_requests_per_minute: p.integer("max_requests_per_minute", MAX_REQUESTS_PER_MINUTE)?
            as u32,
        debug: p.boolean("debug")?,
        data_type_support,
        trigger_overrides: trigger_overrides(p.get("trigger_overrides"))?,
        if_running: match p.string("if_running")? {
            Some("trigger") => IfRunning::Trigger,
            Some("wait") => IfRunning::Wait,
            Some("replace") => IfRunning::Replace,
            other => {
                return Err(format!(
                    "if_running must be \"trigger\", \"wait\" or \"replace\", got {}",
                    echo(&Value::from(other.unwrap_or_default()))
                ))
            }
        },
        retry_failed: p.boolean("retry_failed")?,
        fail_on_run_error: p.boolean("fail_on_run_error")?,
        artifacts_include: artifacts_include(p.get("artifacts_include"))?,
        artifacts_zip: p.boolean("artifacts_zip")?,
        process_timeout,
        warnings,
    })
}

/// The warning for a key nobody reads, with the known key it most likely meant.
fn unknown_key(key: &str) -> String {
    let closest = PARAMETERS
        .iter()
        .map(|known| (strsim::jaro_winkler(key, known.key), known.key))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(similarity, _)| *similarity >= 0.85);
    match closest {
        Some((_, known)) => format!(
            "parameters has an unknown key \"{}\", which is ignored: did you mean {known}?",
            cut(key)
        ),
        None => format!(
            "parameters has an unknown key \"{}\", which is ignored; the known keys are {}",
            cut(key),
            PARAMETERS
                .iter()
                .map(|p| p.key)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `runtime.process_timeout`: the seconds after which Keboola kills the job, when the
/// configuration sets them.
fn process_timeout(root: &Map<String, Value>) -> Result<Option<Duration>, String> {
    let Some(value) = root
        .get("runtime")
        .and_then(|runtime| runtime.get("process_timeout"))
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_PROCESS_TIMEOUT_SECONDS => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(format!(
            "config.json's runtime.process_timeout must be a number of seconds greater than 0, got {}",
            echo(value)
        )),
    }
}

/// How much of a wrong value an error echoes: enough to recognise it, never a whole document.
const ECHO_CHARS: usize = 200;

/// A value as config.json holds it, cut for an error message.
fn echo(value: &Value) -> String {
    cut(&value.to_string())
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        Some((end, _)) => format!(
            "{}… ({} characters in all)",
            &text[..end],
            text.chars().count()
        ),
        None => text.to_owned(),
    }
}

/// `https://host` of what the user gave as dbt_cloud_url, or a placeholder: never a user name,
/// password, path or query, where a token may have been pasted.
fn scheme_and_host(input: &str) -> String {
    let trimmed = input.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    match reqwest::Url::parse(&with_scheme) {
        Ok(url) => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        Err(_) => "not a URL".to_owned(),
    }
}

fn trigger_overrides(value: Option<&Value>) -> Result<Map<String, Value>, String> {
    let overrides = match value {
        None => return Ok(Map::new()),
        Some(Value::Object(overrides)) => overrides,
        Some(other) => {
            return Err(format!(
                "trigger_overrides must be an object, got {}",
                echo(other)
            ))
        }
    };
    let valid = || {
        OVERRIDES
            .iter()
            .map(|(key, _)| *key)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut checked = Map::new();
    for (key, value) in overrides {
        if value.is_null() {
            continue;
        }
        let Some((_, kind)) = OVERRIDES.iter().find(|(known, _)| known == key) else {
            return Err(format!(
                "trigger_overrides has an unknown key \"{}\"; the valid keys are {}",
                cut(key),
                valid()
            ));
        };
        let ok = match kind {
            Override::Text => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            Override::Count { min } => value.as_u64().is_some_and(|n| n >= *min),
            Override::Flag => value.is_boolean(),
            Override::Commands => value.as_array().is_some_and(|commands| {
                !commands.is_empty()
                    && commands
                        .iter()
                        .all(|c| c.as_str().is_some_and(|c| !c.trim().is_empty()))
            }),
        };
        if !ok {
            let expected = match kind {
                Override::Text => "a non-empty string".to_owned(),
                Override::Count { min } => format!("an integer of at least {min}"),
                Override::Flag => "true or false".to_owned(),
                Override::Commands => {
                    "a non-empty list of dbt commands, e.g. [\"dbt build -s orders+\"]".to_owned()
                }
            };
            return Err(format!(
                "trigger_overrides.{} must be {expected}, got {}",
                cut(key),
                echo(value)
            ));
        }
        checked.insert(key.clone(), value.clone());
    }
    Ok(checked)
}

/// Glob patterns, each checked here so that a typo is refused before anything runs.
fn artifacts_include(value: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    let patterns = match value {
        None => return Ok(None),
        Some(Value::Array(patterns)) => patterns,
        Some(other) => {
            return Err(format!(
                "artifacts_include must be a list of glob patterns, e.g. [\"*.json\", \"run/**/*.sql\"], got {}",
                echo(other)
            ))
        }
    };
    let mut checked = Vec::new();
    for pattern in patterns {
        let Some(text) = pattern.as_str().filter(|t| !t.trim().is_empty()) else {
            return Err(format!(
                "artifacts_include must hold non-empty strings, got {}",
                echo(pattern)
            ));
        };
        globset::Glob::new(text)
            .map_err(|e| format!("artifacts_include has an invalid pattern {text:?}: {e}"))?;
        checked.push(text.to_owned());
    }
    if checked.is_empty() {
        return Err("artifacts_include must hold at least one pattern; leave it out to download every artifact (or set ignore_artifacts)".into());
    }
    Ok(Some(checked))
}

fn positive_integer(key: &str, value: Option<&Value>) -> Result<u64, String> {
    let parsed = match value {
        None => return Err(format!("{key} is required: a positive integer")),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u64>().ok()
            } else {
                None
            }
        }
        Some(_) => None,
    };
    match (parsed, value) {
        (Some(n), _) if n > 0 => Ok(n),
        (_, Some(value)) => Err(format!(
            "{key} must be a positive integer, got {}",
            echo(value)
        )),
        (_, None) => unreachable!("None returned above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_user_error;
    use serde_json::json;

    fn parse_parameters(parameters: Value) -> Result<Config> {
        let text = json!({ "parameters": parameters, "action": "run", "storage": {} }).to_string();
        match parse(text.as_bytes())? {
            Request::Run(config) => Ok(config),
            other => panic!("not a run: {other:?}"),
        }
    }

    fn minimal() -> Value {
        json!({"account_id": 1, "job_id": 2, "#api_key": "dbtc_token"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut parameters = minimal();
        parameters[key] = value;
        parameters
    }

    #[test]
    fn a_stray_key_is_ignored_with_a_warning_naming_the_key_meant() {
        let config = parse_parameters(with("max_wait_tme", json!(5))).unwrap();
        assert_eq!(config.wait, Wait::No);
        assert_eq!(
            config.warnings,
            ["parameters has an unknown key \"max_wait_tme\", which is ignored: did you mean max_wait_time?"]
        );
        let config = parse_parameters(with("#api_kee", json!("x"))).unwrap();
        assert!(
            config.warnings[0].ends_with("did you mean #api_key?"),
            "{:?}",
            config.warnings
        );
        let config = parse_parameters(with("colour", json!("blue"))).unwrap();
        assert!(
            config.warnings[0].starts_with(
                "parameters has an unknown key \"colour\", which is ignored; the known keys are dbt_cloud_url, account_id,"
            ),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn the_forms_buttons_are_ignored_silently() {
        let mut parameters = minimal();
        for key in FORM_ONLY_KEYS {
            parameters[*key] = Value::Null;
        }
        parameters["recent_runs"] = json!({"clicked": true});
        let config = parse_parameters(parameters).unwrap();
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn the_process_timeout_comes_from_runtime() {
        let run = |root: Value| match parse(root.to_string().as_bytes()) {
            Ok(Request::Run(config)) => Ok(config.process_timeout),
            Ok(other) => panic!("{other:?}"),
            Err(error) => Err(error.to_string()),
        };
        let root = |runtime: Value| json!({"parameters": minimal(), "runtime": runtime});
        assert_eq!(run(json!({"parameters": minimal()})), Ok(None));
        assert_eq!(run(root(json!({}))), Ok(None));
        assert_eq!(run(root(json!({"process_timeout": null}))), Ok(None));
        assert_eq!(
            run(root(json!({"process_timeout": 7200}))),
            Ok(Some(Duration::from_secs(7200)))
        );
        for wrong in [json!(0), json!(-5), json!("1h"), json!(1e300)] {
            let message = run(root(json!({"process_timeout": wrong}))).unwrap_err();
            assert!(
                message.starts_with(
                    "config.json's runtime.process_timeout must be a number of seconds"
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn defaults() {
        let config = parse_parameters(minimal()).unwrap();
        assert_eq!(config.connection.account_id.get(), 1);
        assert_eq!(config.job_id.get(), 2);
        assert_eq!(config.cause, "Triggered from Keboola");
        assert_eq!(config.wait, Wait::No);
        assert_eq!(
            config.connection.dbt_cloud_url.to_string(),
            "https://cloud.getdbt.com"
        );
        assert!(config.download_artifacts);
        assert!(config.artifacts_must_succeed);
        assert!(config.cancel_on_terminate);
        assert!(!config.cancel_on_timeout);
        assert_eq!(config.poll_interval, None);
        assert_eq!(config.artifact_concurrency, 8);
        assert_eq!(config.max_requests_per_minute, 1_000);
        assert!(config.trigger_overrides.is_empty());
        assert_eq!(config.if_running, IfRunning::Trigger);
        assert!(!config.retry_failed);
        assert!(config.fail_on_run_error);
        assert_eq!(config.artifacts_include, None);
        assert!(!config.artifacts_zip);
        assert!(!config.debug);
    }

    #[test]
    fn python_component_config_still_parses() {
        let config = parse_parameters(json!({
            "account_id": "12345", "job_id": " 678 ", "#api_key": "dbtc_x",
            "cause": "nightly", "wait_for_result": true, "max_wait_time": "1.5",
            "dbt_cloud_url": "emea.dbt.com/", "ignore_artifacts": true, "debug": true
        }))
        .unwrap();
        assert_eq!(config.connection.account_id.get(), 12345);
        assert_eq!(config.job_id.get(), 678);
        assert_eq!(config.wait, Wait::UpTo(Duration::from_secs(90)));
        assert_eq!(
            config.connection.dbt_cloud_url.to_string(),
            "https://emea.dbt.com"
        );
        assert!(!config.download_artifacts);
        assert!(config.debug);
    }

    #[test]
    fn unknown_root_keys_are_ignored_and_nulls_mean_default() {
        let text = json!({
            "parameters": with("cause", Value::Null), "image_parameters": {}, "authorization": {},
            "shared_code_row_ids": [], "variables_id": "5"
        });
        let Request::Run(config) = parse(text.to_string().as_bytes()).unwrap() else {
            panic!("a run")
        };
        assert_eq!(config.cause, "Triggered from Keboola");
    }

    #[test]
    fn each_invalid_value_is_named() {
        let cases = [
            (
                with("account_id", json!("abc")),
                r#"account_id must be a positive integer, got "abc""#,
            ),
            (
                with("account_id", json!(0)),
                "account_id must be a positive integer, got 0",
            ),
            (
                with("account_id", json!(-3)),
                "account_id must be a positive integer, got -3",
            ),
            (
                with("account_id", json!(1.5)),
                "account_id must be a positive integer, got 1.5",
            ),
            (
                with("job_id", json!("12a")),
                r#"job_id must be a positive integer, got "12a""#,
            ),
            (
                with("job_id", json!(true)),
                "job_id must be a positive integer, got true",
            ),
            (
                with("job_id", json!("")),
                r#"job_id must be a positive integer, got """#,
            ),
            (
                with("#api_key", json!("")),
                "#api_key must be a non-empty token",
            ),
            (with("#api_key", json!(42)), "#api_key must be a string"),
            (with("cause", json!("")), "cause must not be empty"),
            (with("cause", json!(7)), "cause must be a string, got 7"),
            (
                with("cause", json!("x".repeat(256))),
                "cause must be at most 255 characters, got 256",
            ),
            (
                with("wait_for_result", json!("yes")),
                r#"wait_for_result must be true or false, got "yes""#,
            ),
            (
                with("max_wait_time", json!(0)),
                "max_wait_time must be a number of minutes greater than 0",
            ),
            (with("max_wait_time", json!(-1)), "got -1"),
            (with("max_wait_time", json!("soon")), r#"got "soon""#),
            (with("max_wait_time", json!(1e300)), "max_wait_time must be"),
            (
                with("dbt_cloud_url", json!("http://cloud.getdbt.com")),
                "must use https://",
            ),
            (
                with("dbt_cloud_url", json!(5)),
                "dbt_cloud_url must be a string, got 5",
            ),
            (
                with("ignore_artifacts", json!("false")),
                "ignore_artifacts must be true or false",
            ),
            (
                with("debug", json!(1)),
                "debug must be true or false, got 1",
            ),
        ];
        for (parameters, expected) in cases {
            let error = parse_parameters(parameters.clone()).unwrap_err();
            assert!(is_user_error(&error), "{parameters}");
            let message = error.to_string();
            assert!(message.contains(expected), "{parameters}: {message}");
        }
    }

    #[test]
    fn trigger_overrides_are_type_checked() {
        let overrides = json!({
            "git_branch": "feature/x", "threads_override": 8, "generate_docs_override": true,
            "steps_override": ["dbt build -s orders+"], "github_pull_request_id": 42,
            "timeout_seconds_override": 0, "schema_override": null
        });
        let config = parse_parameters(with("trigger_overrides", overrides)).unwrap();
        assert_eq!(config.trigger_overrides.len(), 6, "nulls are left out");
        for (overrides, expected) in [
            (json!({"branch": "x"}), "trigger_overrides has an unknown key \"branch\"; the valid keys are git_sha, git_branch,"),
            (json!({"git_branch": ""}), "trigger_overrides.git_branch must be a non-empty string, got \"\""),
            (json!({"threads_override": 0}), "trigger_overrides.threads_override must be an integer of at least 1, got 0"),
            (json!({"threads_override": "8"}), "must be an integer of at least 1, got \"8\""),
            (json!({"generate_docs_override": "yes"}), "generate_docs_override must be true or false"),
            (json!({"steps_override": "dbt build"}), "steps_override must be a non-empty list of dbt commands"),
            (json!({"steps_override": []}), "steps_override must be a non-empty list"),
            (json!({"steps_override": ["dbt run", ""]}), "steps_override must be a non-empty list"),
            (json!(["git_sha"]), "trigger_overrides must be an object"),
        ] {
            let message = parse_parameters(with("trigger_overrides", overrides.clone())).unwrap_err().to_string();
            assert!(message.contains(expected), "{overrides}: {message}");
        }
    }

    #[test]
    fn run_policies_and_artifact_selection() {
        for (value, expected) in [
            ("trigger", IfRunning::Trigger),
            ("wait", IfRunning::Wait),
            ("replace", IfRunning::Replace),
        ] {
            assert_eq!(
                parse_parameters(with("if_running", json!(value)))
                    .unwrap()
                    .if_running,
                expected
            );
        }
        for (key, value, expected) in [
            (
                "if_running",
                json!("skip"),
                r#"if_running must be "trigger", "wait" or "replace", got "skip""#,
            ),
            ("if_running", json!(1), "if_running must be a string, got 1"),
            (
                "artifacts_include",
                json!("*.json"),
                "artifacts_include must be a list of glob patterns",
            ),
            (
                "artifacts_include",
                json!([]),
                "artifacts_include must hold at least one pattern",
            ),
            (
                "artifacts_include",
                json!(["run/[a"]),
                "artifacts_include has an invalid pattern \"run/[a\"",
            ),
            (
                "artifacts_include",
                json!([3]),
                "artifacts_include must hold non-empty strings, got 3",
            ),
            (
                "retry_failed",
                json!("true"),
                "retry_failed must be true or false",
            ),
            (
                "fail_on_run_error",
                json!(0),
                "fail_on_run_error must be true or false",
            ),
            (
                "artifacts_zip",
                json!({}),
                "artifacts_zip must be true or false",
            ),
        ] {
            let message = parse_parameters(with(key, value.clone()))
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{key}={value}: {message}");
        }
        let config =
            parse_parameters(with("artifacts_include", json!(["*.json", "run/**/*.sql"]))).unwrap();
        assert_eq!(
            config.artifacts_include.unwrap(),
            ["*.json", "run/**/*.sql"]
        );
    }

    #[test]
    fn required_keys() {
        for key in ["account_id", "job_id", "#api_key"] {
            let mut parameters = minimal();
            parameters.as_object_mut().unwrap().remove(key);
            let message = parse_parameters(parameters).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("{key} is required")),
                "{message}"
            );
        }
    }

    #[test]
    fn malformed_files() {
        for (text, expected) in [
            ("", "config.json is not valid JSON"),
            ("{\"parameters\": ", "config.json is not valid JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "has no \"parameters\""),
            (
                "{\"parameters\": []}",
                "\"parameters\" must be a JSON object",
            ),
        ] {
            let error = parse(text.as_bytes()).unwrap_err();
            assert!(is_user_error(&error));
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn sync_actions_read_only_what_they_need() {
        let request = |action: &str, parameters: Value| {
            parse(
                json!({"action": action, "parameters": parameters})
                    .to_string()
                    .as_bytes(),
            )
        };
        let half_filled =
            json!({"account_id": 1, "#api_key": "t", "max_wait_time": "", "job_id": ""});
        assert!(matches!(
            request("listJobs", half_filled.clone()).unwrap(),
            Request::ListJobs(_)
        ));
        let no_job = json!({"account_id": 1, "#api_key": "t"});
        assert!(matches!(
            request("testConnection", no_job.clone()).unwrap(),
            Request::TestConnection(_, None)
        ));
        let with_job = json!({"account_id": 1, "#api_key": "t", "job_id": "7"});
        match request("testConnection", with_job.clone()).unwrap() {
            Request::TestConnection(_, Some(job)) => assert_eq!(job.get(), 7),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request("listRecentRuns", with_job).unwrap(),
            Request::ListRecentRuns(_, _)
        ));
        let error = request("listRecentRuns", no_job.clone())
            .unwrap_err()
            .to_string();
        assert_eq!(error, "job_id is required: a positive integer");
        let error = request("listJobs", json!({"#api_key": "t"}))
            .unwrap_err()
            .to_string();
        assert_eq!(error, "account_id is required: a positive integer");
        let error = request("deploy", no_job).unwrap_err();
        assert!(is_user_error(&error));
        assert_eq!(
            error.to_string(),
            "config.json's action \"deploy\" is unknown; the known actions are run, testConnection, listJobs, listRecentRuns"
        );
    }

    #[test]
    fn data_type_support_comes_from_storage_output() {
        let text =
            |storage: Value| json!({"parameters": minimal(), "storage": storage}).to_string();
        for (storage, expected) in [
            (
                json!({"output": {"data_type_support": "authoritative"}}),
                Some(DataTypeSupport::Authoritative),
            ),
            (
                json!({"output": {"data_type_support": "hints"}}),
                Some(DataTypeSupport::Hints),
            ),
            (
                json!({"output": {"data_type_support": "none"}}),
                Some(DataTypeSupport::None),
            ),
            (json!({"output": {}}), None),
            (json!({}), None),
        ] {
            let Request::Run(config) = parse(text(storage.clone()).as_bytes()).unwrap() else {
                panic!()
            };
            assert_eq!(config.data_type_support, expected, "{storage}");
        }
    }

    #[test]
    fn the_token_never_appears_in_errors_or_debug() {
        let secret = "dbtc_do_not_print_me";
        let config = parse_parameters(with("#api_key", json!(secret))).unwrap();
        assert!(!format!("{config:?}").contains(secret));
        let error = parse_parameters(with("#api_key", json!([secret]))).unwrap_err();
        assert!(!format!("{error:?} {error}").contains(secret));
    }
}
