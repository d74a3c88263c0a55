//! config.json, turned into typed values once. Nothing past this module sees raw JSON.
//!
//! The rules follow the earlier Python component's configs, so that they keep working: ids may be
//! numbers or strings of digits, `max_wait_time` a number of minutes or a string holding one.
//! Each key of `parameters` is defined once, in `parameters.rs`; here they are read and grouped into
//! the settings each part of the job takes.

mod kinds;
mod parameters;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::dbt_cloud::{AccountId, Connection, JobId, RunId};
use crate::error::{user_error, UserError};
use crate::text::cut;
use parameters::{echo, Parameters, *};
pub use parameters::{Described, Selection, FORM_ONLY_KEYS, PARAMETERS};

/// A year, like `MAX_WAIT_MINUTES`: keeps the deadline arithmetic far from overflow.
const MAX_PROCESS_TIMEOUT_SECONDS: f64 = 31_536_000.0;

/// What to do when a run of the job is already queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfRunning {
    /// Trigger a new run regardless.
    Trigger,
    /// Adopt the newest such run and wait for it as if we had triggered it.
    Wait,
    /// Cancel them, then trigger.
    Replace,
    /// Trigger nothing and succeed, naming the run in progress.
    Skip,
    /// Trigger nothing and fail, naming the run in progress.
    Fail,
}

/// Which job: by id, or by its name, narrowed by where it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRef {
    Id(JobId),
    Name(JobName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobName {
    pub name: String,
    pub environment_name: Option<String>,
    pub environment_type: Option<EnvironmentType>,
    pub project_id: Option<u64>,
}

/// An environment's kind, from its deployment type (or `development`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvironmentType {
    Production,
    Staging,
    Development,
}

impl EnvironmentType {
    pub fn name(self) -> &'static str {
        match self {
            EnvironmentType::Production => "production",
            EnvironmentType::Staging => "staging",
            EnvironmentType::Development => "development",
        }
    }
}

/// A run to follow instead of triggering one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRef {
    Id(RunId),
    /// The job's newest run, finished or not.
    Latest,
}

/// What config.json asks for: the job, or one of the synchronous actions of the UI.
#[derive(Debug, Clone)]
pub enum Request {
    Run(Box<Config>),
    /// Checks the URL, the token, the account and, when given (by id or name), the job.
    TestConnection(Connection, Option<JobRef>),
    /// Every job of the account, for the Job ID dropdown.
    ListJobs(Connection),
    /// The job's last runs, for a validation button.
    ListRecentRuns(Connection, JobRef),
}

pub const ACTIONS: &[&str] = &["run", "testConnection", "listJobs", "listRecentRuns"];

/// The job, as config.json describes it, grouped by the part of the job that reads each setting.
#[derive(Debug, Clone)]
pub struct Config {
    pub connection: Connection,
    pub job: JobRef,
    /// `run_id`: follow this run instead of starting one.
    pub follow: Option<RunRef>,
    pub start: StartPolicy,
    pub wait: Wait,
    pub artifacts: ArtifactSettings,
    /// When false, a run that ends in Error or Cancelled is a warning, and the exit code 0.
    pub fail_on_run_error: bool,
    /// When true, a warned node or a stale source fails the job (after its tables).
    pub fail_on_warnings: bool,
    /// Whether to cancel the dbt run when SIGTERM or SIGINT comes while it is in progress.
    pub on_stop: OnStop,
    /// This run's share of the account's requests a minute; `None`: sized by what the account
    /// is doing.
    pub max_requests_per_minute: Option<u32>,
    pub debug: bool,
    /// `storage.output.data_type_support`, when config.json sets it.
    pub data_type_support: Option<DataTypeSupport>,
    /// `runtime.process_timeout`: when Keboola kills the job, counted from its start.
    pub process_timeout: Option<Duration>,
    /// What the parser ignored, for the log.
    pub warnings: Vec<String>,
    /// What the parser took from where, for the log.
    pub notes: Vec<String>,
}

/// How the run comes to be: triggered with these, or adopted, or resumed.
#[derive(Debug, Clone)]
pub struct StartPolicy {
    /// The cause configured; `None`: one naming the Keboola job.
    pub cause: Option<String>,
    /// Fields added to the trigger body, each checked against the API's definition.
    pub trigger_overrides: Map<String, Value>,
    pub if_running: IfRunning,
    /// Resume the job's newest run from its point of failure when it ended in Error...
    pub retry_failed: bool,
    /// ...less than this long ago.
    pub retry_within: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// Trigger and return at once.
    No,
    /// Poll until the run is final, within these bounds.
    UpTo(WaitSettings),
}

/// `cancel_on_terminate`: what a stop does to a run in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Set to true: cancel it, whoever started it.
    Cancel,
    /// Set to false: leave it going.
    Leave,
    /// Not set: cancel a run this job started, leave one it followed or adopted.
    CancelOwnRuns,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitSettings {
    /// `max_wait_time`.
    pub max: Duration,
    /// A fixed interval between polls, instead of the adaptive schedule.
    pub poll_interval: Option<Duration>,
    /// Cancel the dbt run when `max_wait_time` (or `max_queue_time`) passes.
    pub cancel_on_timeout: bool,
    /// `max_queue_time`: how long the run may sit in Queued or Starting.
    pub max_queue: Option<Duration>,
    /// `wait_for_chained_jobs`: the runs dbt Cloud starts when this one ends are waited for too.
    pub chain: bool,
}

#[derive(Debug, Clone)]
pub struct ArtifactSettings {
    /// False with `ignore_artifacts`: only run_results.json is fetched, for its table.
    pub download: bool,
    /// `artifacts_include`; `None`: every artifact.
    pub selection: Option<Selection>,
    /// When false, a failed artifact is a warning as long as the others came.
    pub must_succeed: bool,
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// In bytes: a larger artifact fails instead of filling the disk.
    pub max_size: u64,
    /// Also pack the artifacts into `out/files/dbt_artifacts_<run_id>.zip`.
    pub zip: bool,
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
    let Value::Object(root) = root else {
        return user_error("config.json must be a JSON object");
    };
    let parameters =
        match root.get("parameters") {
            Some(Value::Object(parameters)) => parameters,
            None | Some(Value::Null) => return user_error(
                "config.json has no \"parameters\": account_id, #api_key and job_id (or job_name) are required",
            ),
            Some(_) => return user_error("config.json's \"parameters\" must be a JSON object"),
        };
    let p = Parameters(parameters);
    let request = match action(&root)? {
        "run" => job(&p, &root).map(|config| Request::Run(Box::new(config))),
        // The UI calls these with the form as it is, perhaps half filled: only what the action
        // needs is read.
        "testConnection" => locate(&p, true).and_then(|located| {
            let job = if located.job.is_some() || p.given(JOB_NAME.key) {
                Some(job_ref(&p, located.job)?)
            } else {
                None
            };
            Ok(Request::TestConnection(located.connection, job))
        }),
        "listJobs" => connection(&p).map(Request::ListJobs),
        "listRecentRuns" => locate(&p, true).and_then(|located| {
            let job = job_ref(&p, located.job)?;
            Ok(Request::ListRecentRuns(located.connection, job))
        }),
        other => Err(format!(
            "config.json's action \"{}\" is unknown; the known actions are {}",
            cut(other),
            ACTIONS.join(", ")
        )),
    };
    request.map_err(|message| UserError::new(message).into())
}

/// config.json's `action`, `run` when absent or empty.
fn action(root: &Map<String, Value>) -> Result<&str> {
    match root.get("action") {
        None | Some(Value::Null) => Ok("run"),
        Some(Value::String(action)) if action.is_empty() => Ok("run"),
        Some(Value::String(action)) => Ok(action),
        Some(other) => user_error(format!(
            "config.json's \"action\" must be a string, got {}",
            echo(other)
        )),
    }
}

/// Where dbt Cloud is and who we are there, and the job: `account_id` and `job_id` as given, or
/// taken from a page URL pasted into `dbt_cloud_url` when left out (said in `notes`).
struct Located {
    connection: Connection,
    job: Option<JobId>,
    notes: Vec<String>,
}

/// `with_job`: whether the job is read at all (the job list's dropdown runs on a form whose job
/// field may hold anything).
fn locate(p: &Parameters, with_job: bool) -> Result<Located, String> {
    let (dbt_cloud_url, page) = DBT_CLOUD_URL.read(p)?;
    let mut notes = Vec::new();
    let mut pick = |key: &str, given: Option<u64>, pasted: Option<u64>| match (given, pasted) {
        (Some(given), Some(pasted)) if given != pasted => Err(format!(
            "{key} is {given}, but dbt_cloud_url is a page of {key} {pasted}: correct one of them, \
             or leave {key} out to take it from the URL"
        )),
        (Some(given), _) => Ok(Some(given)),
        (None, Some(pasted)) => {
            notes.push(format!("{key} {pasted} is taken from dbt_cloud_url"));
            Ok(Some(pasted))
        }
        (None, None) => Ok(None),
    };
    let account = pick(
        ACCOUNT_ID.key,
        ACCOUNT_ID.read_if_given(p)?.map(|n| n.get()),
        page.account,
    )?;
    let job = if with_job {
        pick(JOB_ID.key, JOB_ID.read(p)?.map(|n| n.get()), page.job)?
    } else {
        None
    };
    let required = |key: &str| format!("{key} is required: a positive integer");
    let account_id = account
        .and_then(AccountId::new)
        .ok_or_else(|| required(ACCOUNT_ID.key))?;
    Ok(Located {
        connection: Connection {
            dbt_cloud_url,
            account_id,
            api_token: API_KEY.read(p)?,
        },
        job: job.and_then(JobId::new),
        notes,
    })
}

fn connection(p: &Parameters) -> Result<Connection, String> {
    locate(p, false).map(|located| located.connection)
}

/// The job's id, given or taken from the pasted URL.
/// Exactly one of `job_id` (or a job page's URL) and `job_name`; the environment and project
/// narrow a name only.
fn job_ref(p: &Parameters, id: Option<JobId>) -> Result<JobRef, String> {
    let name = JOB_NAME.read(p)?;
    let narrowing = [ENVIRONMENT_NAME.key, ENVIRONMENT_TYPE.key, PROJECT_ID.key]
        .into_iter()
        .find(|key| p.given(key));
    match (id, name) {
        (Some(_), Some(_)) => Err(format!(
            "{} and {} both name the job: give one of them",
            JOB_ID.key, JOB_NAME.key
        )),
        (Some(id), None) => match narrowing {
            Some(key) => Err(format!(
                "{key} narrows {} down to one job; with {} it has no use: leave it out",
                JOB_NAME.key, JOB_ID.key
            )),
            None => Ok(JobRef::Id(id)),
        },
        (None, Some(name)) => Ok(JobRef::Name(JobName {
            name,
            environment_name: ENVIRONMENT_NAME.read(p)?,
            environment_type: ENVIRONMENT_TYPE.read(p)?,
            project_id: PROJECT_ID.read(p)?.map(|id| id.get()),
        })),
        (None, None) => Err(format!(
            "{} is required (or {}): a positive integer",
            JOB_ID.key, JOB_NAME.key
        )),
    }
}

/// `run_id` follows a run that exists: what only starting one uses is said to be unused, when it
/// is set to anything but its default.
fn unused_by_a_followed_run(start: &StartPolicy) -> Option<String> {
    unused(
        "run_id follows a run that exists, so nothing is started",
        [
            (start.if_running != IfRunning::Trigger, IF_RUNNING.key),
            (start.retry_failed, RETRY_FAILED.key),
            (start.cause.is_some(), CAUSE.key),
            (!start.trigger_overrides.is_empty(), TRIGGER_OVERRIDES.key),
        ],
    )
}

/// Without `wait_for_result` the run's end is never seen: what only judges it is said to be
/// unused, when it is set to anything but its default.
fn unused_without_waiting(
    wait: &Wait,
    fail_on_warnings: bool,
    max_queue: bool,
    chain: bool,
) -> Option<String> {
    if *wait != Wait::No {
        return None;
    }
    unused(
        "wait_for_result is off, so the run is not waited for",
        [
            (fail_on_warnings, FAIL_ON_WARNINGS.key),
            (max_queue, MAX_QUEUE_TIME.key),
            (chain, WAIT_FOR_CHAINED_JOBS.key),
        ],
    )
}

/// The warning naming the keys set (`true`) that are not used, and `why`.
fn unused<const N: usize>(why: &str, keys: [(bool, &str); N]) -> Option<String> {
    let set: Vec<&str> = keys
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
    (!set.is_empty()).then(|| {
        format!(
            "{why}: {} {} not used",
            set.join(", "),
            crate::text::plural(set.len(), "is", "are")
        )
    })
}

fn job(p: &Parameters, root: &Map<String, Value>) -> Result<Config, String> {
    let located = locate(p, true)?;
    let follow = RUN_ID.read(p)?;
    let max_requests_per_minute = MAX_REQUESTS_PER_MINUTE
        .read(p)?
        .map(|count| u32::try_from(count.get()).unwrap_or(u32::MAX));
    let start = StartPolicy {
        cause: cause(p)?,
        trigger_overrides: TRIGGER_OVERRIDES.read(p)?.unwrap_or_default(),
        if_running: IF_RUNNING.read(p)?,
        retry_failed: RETRY_FAILED.read(p)?,
        retry_within: Duration::from_secs_f64(RETRY_FAILED_WITHIN.read(p)? * 60.0),
    };
    let wait = wait(p, follow.is_some())?;
    let fail_on_warnings = FAIL_ON_WARNINGS.read(p)?;
    let max_queue = MAX_QUEUE_TIME.read(p)?.is_some();
    let chain = WAIT_FOR_CHAINED_JOBS.read(p)?;
    let warnings = retiring_url(&located.connection)
        .into_iter()
        .chain(max_requests_per_minute.and_then(past_the_accounts_limit))
        .chain(follow.and_then(|_| unused_by_a_followed_run(&start)))
        .chain(unused_without_waiting(
            &wait,
            fail_on_warnings,
            max_queue,
            chain,
        ))
        .chain(parameters::unknown_keys(p))
        .collect();
    Ok(Config {
        job: job_ref(p, located.job)?,
        follow,
        connection: located.connection,
        notes: located.notes,
        start,
        wait,
        artifacts: ArtifactSettings {
            download: !IGNORE_ARTIFACTS.read(p)?,
            selection: ARTIFACTS_INCLUDE.read(p)?.flatten(),
            must_succeed: ARTIFACTS_MUST_SUCCEED.read(p)?,
            concurrency: usize::try_from(ARTIFACT_CONCURRENCY.read(p)?.get()).unwrap_or(usize::MAX),
            max_size: (MAX_ARTIFACT_SIZE.read(p)? * 1e6).round() as u64,
            zip: ARTIFACTS_ZIP.read(p)?,
        },
        fail_on_run_error: FAIL_ON_RUN_ERROR.read(p)?,
        fail_on_warnings,
        // A run this job did not start (followed, or adopted with `if_running: wait`) is not
        // ours to cancel, unless the user says so.
        on_stop: match (
            p.given(CANCEL_ON_TERMINATE.key),
            CANCEL_ON_TERMINATE.read(p)?,
        ) {
            (false, _) => OnStop::CancelOwnRuns,
            (true, true) => OnStop::Cancel,
            (true, false) => OnStop::Leave,
        },
        max_requests_per_minute,
        debug: DEBUG.read(p)?,
        data_type_support: data_type_support(root),
        process_timeout: process_timeout(root)?,
        warnings,
    })
}

/// `cause` as configured; the value the form saved before the cause named the Keboola job is no
/// cause: the run then gets one that names its job.
fn cause(p: &Parameters) -> Result<Option<String>, String> {
    Ok(CAUSE.read(p)?.filter(|cause| cause != FORMER_DEFAULT_CAUSE))
}

/// The warning for a share above what dbt Cloud allows the whole account.
fn past_the_accounts_limit(per_minute: u32) -> Option<String> {
    (u64::from(per_minute) > ACCOUNT_REQUESTS_PER_MINUTE).then(|| {
        format!(
            "max_requests_per_minute is {per_minute}, above the {ACCOUNT_REQUESTS_PER_MINUTE} \
             requests a minute dbt Cloud allows the whole account: past that it refuses every \
             request of the account, this job's and others', for five minutes. Keep it below, \
             and lower still when other configurations or tools use the account at once."
        )
    })
}

/// The warning for a `dbt_cloud_url` that dbt Labs retires, before any request goes to it.
pub fn retiring_url(connection: &Connection) -> Option<String> {
    connection.dbt_cloud_url.is_retiring().then(|| {
        format!(
            "dbt_cloud_url {} is a getdbt.com region URL, which dbt Labs retires on {}: from then \
             on it no longer serves API requests. Set dbt_cloud_url to your account's own access \
             URL (in dbt Cloud: Account settings → Access URLs, e.g. https://ab123.us1.dbt.com).",
            connection.dbt_cloud_url,
            crate::dbt_cloud::RETIREMENT_DAY
        )
    })
}

/// Every wait setting is checked, also when not waiting: a typo is found before it matters.
fn wait(p: &Parameters, following: bool) -> Result<Wait, String> {
    let settings = WaitSettings {
        max: Duration::from_secs_f64(MAX_WAIT_TIME.read(p)? * 60.0),
        poll_interval: POLL_INTERVAL.read(p)?.map(Duration::from_secs_f64),
        cancel_on_timeout: if following && !p.given(CANCEL_ON_TIMEOUT.key) {
            false
        } else {
            CANCEL_ON_TIMEOUT.read(p)?
        },
        max_queue: MAX_QUEUE_TIME
            .read(p)?
            .map(|minutes| Duration::from_secs_f64(minutes * 60.0)),
        chain: WAIT_FOR_CHAINED_JOBS.read(p)?,
    };
    Ok(if WAIT_FOR_RESULT.read(p)? {
        Wait::UpTo(settings)
    } else {
        Wait::No
    })
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
        Some(seconds)
            if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_PROCESS_TIMEOUT_SECONDS =>
        {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(format!(
            "config.json's runtime.process_timeout must be a number of seconds greater than 0, got {}",
            echo(value)
        )),
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
            Request::Run(config) => Ok(*config),
            other => panic!("not a run: {other:?}"),
        }
    }

    fn minimal() -> Value {
        json!({"account_id": 1, "job_id": 2, "#api_key": "dbtc_token", "dbt_cloud_url": "https://ab123.us1.dbt.com"})
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
        // Twenty thousand of them: ten named, then a count.
        let mut many = with("colour", json!("blue"));
        for i in 0..20_000 {
            many[format!("stray_{i:05}")] = json!(i);
        }
        let warnings = parse_parameters(many).unwrap().warnings;
        assert_eq!(warnings.len(), 11);
        assert_eq!(
            warnings[10],
            "parameters has 19991 more unknown keys, which are ignored"
        );
    }

    #[test]
    fn ids_come_from_a_pasted_page_url_when_left_out_and_must_agree_when_given() {
        let page = "https://ab123.us1.dbt.com/deploy/11/projects/2/jobs/33";
        let config = parse_parameters(json!({"#api_key": "t", "dbt_cloud_url": page})).unwrap();
        assert_eq!(config.connection.account_id.get(), 11);
        assert_eq!(config.job, JobRef::Id(JobId::new(33).unwrap()));
        assert_eq!(
            config.connection.dbt_cloud_url.to_string(),
            "https://ab123.us1.dbt.com"
        );
        assert_eq!(
            config.notes,
            [
                "account_id 11 is taken from dbt_cloud_url",
                "job_id 33 is taken from dbt_cloud_url"
            ]
        );
        let same =
            json!({"#api_key": "t", "dbt_cloud_url": page, "account_id": 11, "job_id": "33"});
        assert!(parse_parameters(same).unwrap().notes.is_empty());
        let other = json!({"#api_key": "t", "dbt_cloud_url": page, "job_id": 34});
        assert_eq!(
            parse_parameters(other).unwrap_err().to_string(),
            "job_id is 34, but dbt_cloud_url is a page of job_id 33: correct one of them, or leave \
             job_id out to take it from the URL"
        );
    }

    #[test]
    fn a_job_by_name_a_run_to_follow_and_a_queue_bound() {
        let named = json!({"account_id": 1, "#api_key": "t", "job_name": "Nightly build",
            "environment_type": "production", "project_id": "270542"});
        let config = parse_parameters(named).unwrap();
        assert_eq!(
            config.job,
            JobRef::Name(JobName {
                name: "Nightly build".into(),
                environment_name: None,
                environment_type: Some(EnvironmentType::Production),
                project_id: Some(270542),
            })
        );
        for (parameters, expected) in [
            (
                with("job_name", json!("x")),
                "job_id and job_name both name the job: give one of them",
            ),
            (
                with("environment_name", json!("Prod")),
                "environment_name narrows job_name down to one job; with job_id it has no use",
            ),
            (
                json!({"account_id": 1, "#api_key": "t", "job_name": "x", "environment_type": "prod"}),
                r#"environment_type must be "production", "staging" or "development", got "prod""#,
            ),
            (
                with("run_id", json!("newest")),
                r#"run_id must be a run id or "latest", got "newest""#,
            ),
            (
                with("max_queue_time", json!(0)),
                "max_queue_time must be a number of minutes greater than 0",
            ),
            (
                with("if_running", json!("ignore")),
                r#"if_running must be "trigger", "wait", "replace", "skip" or "fail", got "ignore""#,
            ),
        ] {
            let message = parse_parameters(parameters.clone())
                .unwrap_err()
                .to_string();
            assert!(message.starts_with(expected), "{parameters}: {message}");
        }
        // What only starting a run uses is said to be unused by a followed one.
        let mut unused = with("run_id", json!("latest"));
        unused["if_running"] = json!("wait");
        unused["cause"] = json!("nightly");
        unused["retry_failed"] = json!(false);
        assert_eq!(
            parse_parameters(unused).unwrap().warnings,
            ["run_id follows a run that exists, so nothing is started: if_running, cause are not used"]
        );
        assert_eq!(
            parse_parameters(with("run_id", json!("latest")))
                .unwrap()
                .warnings,
            Vec::<String>::new()
        );
        // What only the wait uses is said to be unused without it.
        let mut not_waiting = with("fail_on_warnings", json!(true));
        not_waiting["max_queue_time"] = json!("12");
        assert_eq!(
            parse_parameters(not_waiting.clone()).unwrap().warnings,
            ["wait_for_result is off, so the run is not waited for: fail_on_warnings, max_queue_time are not used"]
        );
        not_waiting["fail_on_warnings"] = json!(false);
        assert_eq!(
            parse_parameters(not_waiting.clone()).unwrap().warnings,
            ["wait_for_result is off, so the run is not waited for: max_queue_time is not used"]
        );
        let mut chain = with("wait_for_chained_jobs", json!(true));
        assert_eq!(
            parse_parameters(chain.clone()).unwrap().warnings,
            ["wait_for_result is off, so the run is not waited for: wait_for_chained_jobs is not used"]
        );
        chain["wait_for_result"] = json!(true);
        let config = parse_parameters(chain).unwrap();
        assert!(config.warnings.is_empty());
        assert!(matches!(
            config.wait,
            Wait::UpTo(WaitSettings { chain: true, .. })
        ));
        not_waiting["wait_for_result"] = json!(true);
        not_waiting["fail_on_warnings"] = json!(true);
        assert_eq!(
            parse_parameters(not_waiting).unwrap().warnings,
            Vec::<String>::new()
        );
        // A followed run is not ours to cancel, unless the config says so.
        let mut follow = with("run_id", json!("latest"));
        follow["wait_for_result"] = json!(true);
        follow["max_queue_time"] = json!("12");
        let config = parse_parameters(follow.clone()).unwrap();
        assert_eq!(config.follow, Some(RunRef::Latest));
        assert_eq!(config.on_stop, OnStop::CancelOwnRuns);
        let Wait::UpTo(wait) = config.wait else {
            panic!("waiting")
        };
        assert!(!wait.cancel_on_timeout);
        assert_eq!(wait.max_queue, Some(Duration::from_secs(720)));
        follow["run_id"] = json!(70403103000u64);
        follow["cancel_on_terminate"] = json!(true);
        let config = parse_parameters(follow).unwrap();
        assert_eq!(
            config.follow,
            Some(RunRef::Id(RunId::new(70403103000).unwrap()))
        );
        assert_eq!(config.on_stop, OnStop::Cancel);
        assert_eq!(
            parse_parameters(json!({"account_id": 1, "#api_key": "t"}))
                .unwrap_err()
                .to_string(),
            "job_id is required (or job_name): a positive integer"
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
        let mut saved_before = minimal();
        saved_before
            .as_object_mut()
            .unwrap()
            .remove("dbt_cloud_url");
        let config = parse_parameters(saved_before).unwrap();
        let warnings = &config.warnings;
        assert_eq!(
            warnings,
            &["dbt_cloud_url https://cloud.getdbt.com is a getdbt.com region URL, which dbt Labs retires on February 3, 2027: from then on it no longer serves API requests. Set dbt_cloud_url to your account's own access URL (in dbt Cloud: Account settings → Access URLs, e.g. https://ab123.us1.dbt.com)."]
        );
        // The same host written as a fully qualified name, in capitals, with its port: the
        // same warning.
        let fully_qualified =
            parse_parameters(with("dbt_cloud_url", json!("CLOUD.getdbt.com.:443"))).unwrap();
        assert_eq!(&fully_qualified.warnings, warnings);
        assert_eq!(config.connection.account_id.get(), 1);
        assert_eq!(config.job, JobRef::Id(JobId::new(2).unwrap()));
        assert_eq!(config.start.cause, None, "a cause naming the Keboola job");
        assert_eq!(config.start.retry_within, Duration::from_secs(3600));
        assert_eq!(config.wait, Wait::No);
        assert_eq!(
            config.connection.dbt_cloud_url.to_string(),
            "https://cloud.getdbt.com"
        );
        assert!(config.artifacts.download);
        assert!(config.artifacts.must_succeed);
        assert_eq!(config.on_stop, OnStop::CancelOwnRuns);
        assert_eq!(config.artifacts.concurrency, 8);
        assert_eq!(config.artifacts.max_size, 10_000_000_000);
        assert_eq!(config.max_requests_per_minute, None);
        let config = parse_parameters(with("max_requests_per_minute", json!(6000))).unwrap();
        assert_eq!(config.max_requests_per_minute, Some(6000));
        assert_eq!(
            config.warnings,
            ["max_requests_per_minute is 6000, above the 5000 requests a minute dbt Cloud allows the whole account: past that it refuses every request of the account, this job's and others', for five minutes. Keep it below, and lower still when other configurations or tools use the account at once."]
        );
        assert!(config.start.trigger_overrides.is_empty());
        assert_eq!(config.start.if_running, IfRunning::Trigger);
        assert!(!config.start.retry_failed);
        assert!(config.fail_on_run_error);
        assert!(!config.fail_on_warnings);
        assert!(config.artifacts.selection.is_none());
        assert!(!config.artifacts.zip);
        assert!(!config.debug);
        let waiting = parse_parameters(with("wait_for_result", json!(true))).unwrap();
        assert_eq!(
            waiting.wait,
            Wait::UpTo(WaitSettings {
                max: Duration::from_secs(3600),
                poll_interval: None,
                cancel_on_timeout: false,
                max_queue: None,
                chain: false,
            })
        );
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
        assert_eq!(config.job, JobRef::Id(JobId::new(678).unwrap()));
        let Wait::UpTo(wait) = config.wait else {
            panic!("waiting")
        };
        assert_eq!(wait.max, Duration::from_secs(90));
        assert_eq!(
            config.connection.dbt_cloud_url.to_string(),
            "https://emea.dbt.com"
        );
        assert!(!config.artifacts.download);
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
        assert_eq!(config.start.cause, None);
        for (cause, expected) in [
            (json!(""), None),
            (json!("Triggered from Keboola"), None),
            (json!("nightly"), Some("nightly".to_owned())),
        ] {
            let config = parse_parameters(with("cause", cause.clone())).unwrap();
            assert_eq!(config.start.cause, expected, "{cause}");
        }
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
                "job_id is required (or job_name): a positive integer",
            ),
            (with("#api_key", json!("")), "#api_key is required"),
            (
                with("#api_key", json!(" ")),
                "#api_key must be a non-empty token",
            ),
            (with("#api_key", json!(42)), "#api_key must be a string"),
            (with("cause", json!("  ")), "cause must not be empty"),
            (
                with("retry_failed_within", json!(0)),
                "retry_failed_within must be a number of minutes greater than 0 and at most 43200",
            ),
            (with("retry_failed_within", json!(-5)), "got -5"),
            (with("retry_failed_within", json!(1e9)), "at most 43200"),
            (with("retry_failed_within", json!("60")), r#"got "60""#),
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
        assert_eq!(
            config.start.trigger_overrides.len(),
            6,
            "nulls are left out"
        );
        for (overrides, expected) in [
            (json!({"branch": "x"}), "trigger_overrides has an unknown key \"branch\"; the valid keys are git_sha, git_branch,"),
            (json!({"git_branch": " "}), "trigger_overrides.git_branch must be a non-empty string, got \" \""),
            (json!({"threads_override": 0}), "trigger_overrides.threads_override must be an integer of at least 1, got 0"),
            (json!({"threads_override": "8"}), "must be an integer of at least 1, got \"8\""),
            (json!({"generate_docs_override": "yes"}), "generate_docs_override must be true or false"),
            (json!({"steps_override": "dbt build"}), "steps_override must be a non-empty list of dbt commands"),
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
                    .start
                    .if_running,
                expected
            );
        }
        for (key, value, expected) in [
            (
                "if_running",
                json!("ignore"),
                r#"if_running must be "trigger", "wait", "replace", "skip" or "fail", got "ignore""#,
            ),
            ("if_running", json!(1), "if_running must be a string, got 1"),
            (
                "artifacts_include",
                json!("*.json"),
                "artifacts_include must be a list of glob patterns",
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
        // What the form saves for an emptied list, and emptied overrides: not set.
        let config = parse_parameters(with("artifacts_include", json!([]))).unwrap();
        assert!(config.artifacts.selection.is_none());
        let emptied = json!({"git_branch": "", "steps_override": [], "threads_override": null});
        let config = parse_parameters(with("trigger_overrides", emptied)).unwrap();
        assert!(config.start.trigger_overrides.is_empty());
        let config =
            parse_parameters(with("artifacts_include", json!(["*.json", "run/**/*.sql"]))).unwrap();
        let paths = ["manifest.json", "run/a.sql", "compiled/a.sql"].map(String::from);
        let selection = config.artifacts.selection.unwrap();
        let (selected, unused) = selection.filter(paths.to_vec());
        assert_eq!(selected, ["manifest.json", "run/a.sql"]);
        assert!(unused.is_empty());
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
            Request::TestConnection(_, Some(JobRef::Id(job))) => assert_eq!(job.get(), 7),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request("listRecentRuns", with_job).unwrap(),
            Request::ListRecentRuns(_, _)
        ));
        let error = request("listRecentRuns", no_job.clone())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "job_id is required (or job_name): a positive integer"
        );
        let named = json!({"account_id": 1, "#api_key": "t", "job_name": "Nightly"});
        for action in ["testConnection", "listRecentRuns"] {
            match request(action, named.clone()).unwrap() {
                Request::TestConnection(_, Some(JobRef::Name(job)))
                | Request::ListRecentRuns(_, JobRef::Name(job)) => assert_eq!(job.name, "Nightly"),
                other => panic!("{action}: {other:?}"),
            }
        }
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
