//! A dbt Cloud Run: the few fields our logic reads, typed, plus the fields the output tables
//! write. Nothing of an answer costs more memory than a budget: a field nothing reads is skipped
//! while it streams in, a field the tables write is kept up to [`FIELD_BUDGET`] ([`bounded`]),
//! the steps are read into typed values (never their `debug_logs`), at most [`MAX_STEPS`] of
//! them, and the run is shared rather than copied. What dbt Cloud sent that cannot be read as
//! its API documents, but need not stop the job (a status that is not a code, steps that are not
//! a list), is read leniently and said in [`Run::oddities`].
//!
//! [`bounded`]: super::bounded

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

use super::bounded::Bounded;
use super::ids::{RunId, WholeNumber};

/// The most memory one field of a run may take (its `trigger`, its `job`).
pub const FIELD_BUDGET: usize = 1_000_000;
/// The most all the fields of a run may take together.
const RUN_BUDGET: usize = 4_000_000;
/// Steps read of a run; real jobs have a dozen.
pub const MAX_STEPS: usize = 200;

/// The run status codes of the API: 1, 2, 3 in progress; 10, 20, 30 final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunStatus {
    Queued,
    Starting,
    Running,
    Success,
    Error,
    Cancelled,
    /// A code this component does not know; treated as still in progress.
    Other(i64),
    /// The answer had no status code (none, or something else than a code); treated as still in
    /// progress.
    #[default]
    Unknown,
}

impl RunStatus {
    pub fn from_code(code: i64) -> RunStatus {
        match code {
            1 => RunStatus::Queued,
            2 => RunStatus::Starting,
            3 => RunStatus::Running,
            10 => RunStatus::Success,
            20 => RunStatus::Error,
            30 => RunStatus::Cancelled,
            other => RunStatus::Other(other),
        }
    }

    /// The API's code, when the status has one.
    pub fn code(self) -> Option<i64> {
        match self {
            RunStatus::Queued => Some(1),
            RunStatus::Starting => Some(2),
            RunStatus::Running => Some(3),
            RunStatus::Success => Some(10),
            RunStatus::Error => Some(20),
            RunStatus::Cancelled => Some(30),
            RunStatus::Other(code) => Some(code),
            RunStatus::Unknown => None,
        }
    }

    /// Waiting for a slot or starting: not yet running.
    pub fn is_queued(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Starting)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Success | RunStatus::Error | RunStatus::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStatus::Queued => f.write_str("Queued"),
            RunStatus::Starting => f.write_str("Starting"),
            RunStatus::Running => f.write_str("Running"),
            RunStatus::Success => f.write_str("Success"),
            RunStatus::Error => f.write_str("Error"),
            RunStatus::Cancelled => f.write_str("Cancelled"),
            RunStatus::Other(code) => write!(f, "status {code}"),
            RunStatus::Unknown => f.write_str("status unknown"),
        }
    }
}

/// A step of the run, as the steps table writes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunStep {
    pub index: i64,
    pub name: String,
    pub status: RunStatus,
    /// The code as sent, for the table (`None` when absent or not a code).
    pub status_code: Option<i64>,
    pub status_humanized: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration: Option<String>,
    /// The step's log: its head and end when long (see `long_strings`).
    pub logs: Option<String>,
}

impl RunStep {
    /// dbt Cloud's own steps, before the job's commands: cloning the repository, writing the
    /// profile, and `dbt deps` (named `Invoke dbt with \`dbt deps\``, or `Invoke dbt deps`
    /// before).
    fn is_built_in(&self) -> bool {
        let name = self.name.trim().to_ascii_lowercase();
        if name.starts_with("clone ") || name.starts_with("create profile") {
            return true;
        }
        let command = name
            .strip_prefix("invoke dbt with ")
            .or_else(|| name.strip_prefix("invoke "))
            .unwrap_or(&name)
            .trim_matches('`');
        let command = command.strip_prefix("dbt ").unwrap_or(command);
        command == "deps" || command.starts_with("deps ")
    }

    /// The step as the trigger table's `run_steps` column writes it.
    fn to_json(&self) -> Value {
        json!({
            "index": self.index,
            "name": self.name,
            "status": self.status_code,
            "status_humanized": self.status_humanized,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "logs": self.logs,
        })
    }
}

/// A run as dbt Cloud answered it. Cloning one is cheap: its fields and steps are shared.
#[derive(Debug, Clone)]
pub struct Run {
    pub id: RunId,
    pub status: RunStatus,
    pub status_message: Option<String>,
    /// The run's page in the dbt Cloud UI.
    pub href: Option<String>,
    pub artifacts_saved: bool,
    pub has_started: bool,
    /// `account_id`, when it is a whole number.
    pub account: Option<u64>,
    /// `job_definition_id` (or `job_id`), when it is a whole number.
    pub job: Option<u64>,
    /// Empty unless the answer included `run_steps`.
    pub steps: Arc<[RunStep]>,
    /// Whether the answer had `run_steps` at all (an empty list is not a missing one).
    steps_sent: bool,
    oddities: Arc<[String]>,
    fields: Arc<Map<String, Value>>,
}

/// What a run field holds, for the tables' column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Integer,
    Boolean,
    Timestamp,
    /// Text, durations, and objects or lists as JSON.
    Text,
}

/// A field of dbt Cloud's run: its name, what it holds and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: FieldType,
    pub description: &'static str,
}

const fn field(name: &'static str, kind: FieldType, description: &'static str) -> Field {
    Field {
        name,
        kind,
        description,
    }
}

/// The fields a Run keeps, in the earlier component's order: the trigger table's columns, which
/// include every column of the run table and what our logic reads. Everything else in an answer
/// is skipped unread.
pub const RUN_FIELDS: &[Field] = &[
    field("id", FieldType::Integer, "dbt Cloud run id"),
    field("trigger_id", FieldType::Integer, "Id of the run's trigger"),
    field("account_id", FieldType::Integer, "dbt Cloud account id"),
    field(
        "environment_id",
        FieldType::Integer,
        "Deployment environment id",
    ),
    field("project_id", FieldType::Integer, "dbt project id"),
    field("job_definition_id", FieldType::Integer, "dbt Cloud job id"),
    field(
        "status",
        FieldType::Integer,
        "Run status: 1 Queued, 2 Starting, 3 Running, 10 Success, 20 Error, 30 Cancelled",
    ),
    field("dbt_version", FieldType::Text, "dbt version the run used"),
    field("git_branch", FieldType::Text, "Git branch checked out"),
    field("git_sha", FieldType::Text, "Git commit checked out"),
    field(
        "status_message",
        FieldType::Text,
        "dbt Cloud's message on the run's outcome",
    ),
    field(
        "owner_thread_id",
        FieldType::Text,
        "dbt Cloud worker that ran it",
    ),
    field(
        "executed_by_thread_id",
        FieldType::Text,
        "dbt Cloud worker that ran it",
    ),
    field(
        "deferring_run_id",
        FieldType::Integer,
        "Run whose state this run deferred to",
    ),
    field(
        "artifacts_saved",
        FieldType::Boolean,
        "Whether the run's artifacts were saved",
    ),
    field(
        "artifact_s3_path",
        FieldType::Text,
        "Where dbt Cloud stores the artifacts",
    ),
    field(
        "has_docs_generated",
        FieldType::Boolean,
        "Whether docs were generated",
    ),
    field(
        "has_sources_generated",
        FieldType::Boolean,
        "Whether source freshness was generated",
    ),
    field(
        "notifications_sent",
        FieldType::Boolean,
        "Whether notifications were sent",
    ),
    field(
        "blocked_by",
        FieldType::Text,
        "Runs this one waited for (JSON list)",
    ),
    field(
        "created_at",
        FieldType::Timestamp,
        "When the run was created (triggered)",
    ),
    field(
        "updated_at",
        FieldType::Timestamp,
        "When the run was last updated",
    ),
    field(
        "dequeued_at",
        FieldType::Timestamp,
        "When a worker picked the run up",
    ),
    field(
        "started_at",
        FieldType::Timestamp,
        "When the run began executing",
    ),
    field("finished_at", FieldType::Timestamp, "When the run finished"),
    field(
        "last_checked_at",
        FieldType::Timestamp,
        "When dbt Cloud last checked the run",
    ),
    field(
        "last_heartbeat_at",
        FieldType::Timestamp,
        "The run's last heartbeat",
    ),
    field(
        "should_start_at",
        FieldType::Timestamp,
        "When a scheduled run was due",
    ),
    field(
        "trigger",
        FieldType::Text,
        "The trigger: cause and overrides (JSON)",
    ),
    field("job", FieldType::Text, "The job definition (JSON)"),
    field("environment", FieldType::Text, "The environment (JSON)"),
    field("run_steps", FieldType::Text, "The run's steps (JSON list)"),
    field("status_humanized", FieldType::Text, "Run status in words"),
    field(
        "in_progress",
        FieldType::Boolean,
        "Whether the run was still in progress",
    ),
    field(
        "is_complete",
        FieldType::Boolean,
        "Whether the run had finished",
    ),
    field(
        "is_success",
        FieldType::Boolean,
        "Whether the run succeeded",
    ),
    field(
        "is_error",
        FieldType::Boolean,
        "Whether the run ended in error",
    ),
    field(
        "is_cancelled",
        FieldType::Boolean,
        "Whether the run was cancelled",
    ),
    field(
        "duration",
        FieldType::Text,
        "Time from creation to finish (HH:MM:SS)",
    ),
    field(
        "queued_duration",
        FieldType::Text,
        "Time spent queued (HH:MM:SS)",
    ),
    field(
        "run_duration",
        FieldType::Text,
        "Time spent running (HH:MM:SS)",
    ),
    field(
        "duration_humanized",
        FieldType::Text,
        "The duration in words",
    ),
    field(
        "queued_duration_humanized",
        FieldType::Text,
        "The duration in words",
    ),
    field(
        "run_duration_humanized",
        FieldType::Text,
        "The duration in words",
    ),
    field(
        "created_at_humanized",
        FieldType::Text,
        "The time in words, relative to the answer",
    ),
    field(
        "finished_at_humanized",
        FieldType::Text,
        "The time in words, relative to the answer",
    ),
    field(
        "retrying_run_id",
        FieldType::Integer,
        "Run this one retried",
    ),
    field(
        "can_retry",
        FieldType::Boolean,
        "Whether the run can be retried from its point of failure",
    ),
    field(
        "retry_not_supported_reason",
        FieldType::Text,
        "Why the run cannot be retried",
    ),
    field("job_id", FieldType::Integer, "dbt Cloud job id"),
    field(
        "is_running",
        FieldType::Boolean,
        "Whether the run was running",
    ),
    field("href", FieldType::Text, "The run's page in dbt Cloud"),
    field(
        "used_repo_cache",
        FieldType::Boolean,
        "Whether the run used the repository cache",
    ),
    field(
        "scribe_enabled",
        FieldType::Boolean,
        "dbt Cloud internal flag",
    ),
];

impl<'de> Deserialize<'de> for Run {
    /// Streams the run in, keeping [`RUN_FIELDS`] within their budget, reading the steps, and
    /// skipping the rest unread.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Run, D::Error> {
        let left = Cell::new(RUN_BUDGET);
        RunSeed { left: &left }.deserialize(deserializer)
    }
}

/// A list of runs, which share one budget: a list of a hundred runs costs no more than
/// [`LIST_BUDGET`], whatever each holds.
pub struct Runs(pub Vec<Run>);

/// The most all the runs of a list may take together.
const LIST_BUDGET: usize = 16_000_000;

impl<'de> Deserialize<'de> for Runs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Runs, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Runs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of runs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Runs, A::Error> {
                let left = Cell::new(LIST_BUDGET);
                let mut runs = Vec::new();
                while let Some(run) = seq.next_element_seed(RunSeed { left: &left })? {
                    runs.push(run);
                }
                Ok(Runs(runs))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// Reads one run, spending what it keeps (its fields, its steps' logs) from `left`.
struct RunSeed<'a> {
    left: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_> {
    type Value = Run;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Run, D::Error> {
        let read = deserializer.deserialize_map(self)?;
        Run::from_read(read).map_err(serde::de::Error::custom)
    }
}

/// What a run's answer held, before it is typed.
#[derive(Default)]
struct Read {
    fields: Map<String, Value>,
    steps: Option<Steps>,
}

impl<'de> Visitor<'de> for RunSeed<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a run: a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut read = Read::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "run_steps" {
                read.steps = Some(map.next_value_seed(StepsSeed { left: self.left })?);
            } else if RUN_FIELDS.iter().any(|field| field.name == key) {
                let budget = FIELD_BUDGET.min(self.left.get());
                let field = Cell::new(budget);
                let value = map.next_value_seed(Bounded { left: &field })?;
                self.left.set(self.left.get() - (budget - field.get()));
                read.fields.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(read)
    }
}

/// The steps of a run as sent: the first [`MAX_STEPS`] read, and how many there were; `None` in
/// `read` when `run_steps` was not a list (what it was instead).
struct Steps {
    read: Result<Vec<RunStep>, &'static str>,
    sent: usize,
}

/// Reads the steps, spending their logs from `left`.
struct StepsSeed<'a> {
    left: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for StepsSeed<'_> {
    type Value = Steps;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Steps, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StepsSeed<'_> {
    type Value = Steps;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of steps")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Steps, A::Error> {
        let mut steps = Vec::new();
        let mut sent = 0;
        while sent < MAX_STEPS {
            match seq.next_element::<StepHead>()? {
                Some(step) => {
                    sent += 1;
                    steps.extend(step.typed(self.left));
                }
                None => break,
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            sent += 1;
        }
        Ok(Steps {
            read: Ok(steps),
            sent,
        })
    }

    fn visit_unit<E>(self) -> Result<Steps, E> {
        Ok(Steps {
            read: Ok(Vec::new()),
            sent: 0,
        })
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Steps, E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Steps, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Steps {
            read: Err("an object"),
            sent: 0,
        })
    }

    fn visit_str<E>(self, _: &str) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("a string"),
            sent: 0,
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("true or false"),
            sent: 0,
        })
    }

    fn visit_i64<E>(self, _: i64) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("a number"),
            sent: 0,
        })
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Steps, E> {
        self.visit_i64(0)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Steps, E> {
        self.visit_i64(0)
    }
}

/// A step as sent: whatever each field holds, read as leniently as it can be; `debug_logs` and
/// everything else skipped unread.
#[derive(Deserialize)]
struct StepHead {
    #[serde(default)]
    index: Lenient,
    #[serde(default)]
    name: Lenient,
    #[serde(default)]
    status: Lenient,
    #[serde(default)]
    status_humanized: Lenient,
    #[serde(default)]
    started_at: Lenient,
    #[serde(default)]
    finished_at: Lenient,
    #[serde(default)]
    duration: Lenient,
    #[serde(default)]
    logs: Lenient,
}

impl StepHead {
    /// The step, its log spent from `left`: past it, the log is cut to what is left.
    fn typed(self, left: &Cell<usize>) -> Option<RunStep> {
        let status_code = self.status.code();
        let logs = self.logs.text().map(|log| {
            let budget = left.get();
            left.set(budget.saturating_sub(log.len()));
            if log.len() <= budget {
                return log;
            }
            // Its end, where dbt says what failed.
            let mut start = log.len() - budget;
            while !log.is_char_boundary(start) {
                start += 1;
            }
            let cut = log[..start].chars().count() as u64;
            format!("{}{}", crate::long_strings::mark(cut), &log[start..])
        });
        Some(RunStep {
            index: self.index.code().unwrap_or_default(),
            name: self.name.text().unwrap_or_default(),
            status: status_code.map_or(RunStatus::Unknown, RunStatus::from_code),
            status_code,
            status_humanized: self.status_humanized.text(),
            started_at: self.started_at.text(),
            finished_at: self.finished_at.text(),
            duration: self.duration.text(),
            logs,
        })
    }
}

/// A scalar read whatever its type; lists and objects skipped.
#[derive(Debug, Default)]
enum Lenient {
    #[default]
    Absent,
    Text(String),
    Integer(i64),
    Other,
}

impl Lenient {
    fn text(self) -> Option<String> {
        match self {
            Lenient::Text(text) => Some(text),
            Lenient::Integer(n) => Some(n.to_string()),
            Lenient::Absent | Lenient::Other => None,
        }
    }

    /// A whole number, or a string of digits.
    fn code(&self) -> Option<i64> {
        match self {
            Lenient::Integer(n) => Some(*n),
            Lenient::Text(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().ok()
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lenient, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E>(self, text: &str) -> Result<Lenient, E> {
                Ok(Lenient::Text(text.to_owned()))
            }
            fn visit_string<E>(self, text: String) -> Result<Lenient, E> {
                Ok(Lenient::Text(text))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Lenient, E> {
                Ok(Lenient::Integer(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Lenient, E> {
                Ok(i64::try_from(n).map_or(Lenient::Other, Lenient::Integer))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient::Absent)
            }
            fn visit_none<E>(self) -> Result<Lenient, E> {
                Ok(Lenient::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lenient, D::Error> {
                Lenient::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(Lenient::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Lenient::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A whole number among the fields, as dbt Cloud sends ids: a number or a string of digits.
fn whole(fields: &Map<String, Value>, name: &str) -> Option<u64> {
    match fields.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// The run's status from what was sent: a code (a number or a string of digits) is read as one;
/// anything else (a name, a fraction, an object) is unknown, taken as still in progress.
fn status_of(sent: Option<&Value>) -> (RunStatus, Option<String>) {
    let code = match sent {
        None | Some(Value::Null) => {
            return (
                RunStatus::Unknown,
                Some(
                    "dbt Cloud sent no status for the run; it is taken as still in progress"
                        .to_owned(),
                ),
            )
        }
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)),
        Some(Value::String(text))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(text.parse().unwrap_or(i64::MAX))
        }
        Some(_) => None,
    };
    match code {
        Some(code) => (RunStatus::from_code(code), None),
        None => {
            let shown = crate::text::truncate(&sent.map(Value::to_string).unwrap_or_default(), 40)
                .to_owned();
            (
                RunStatus::Unknown,
                Some(format!(
                    "dbt Cloud sent the run's status as {shown}, which is not a status code; \
                     the run is taken as still in progress"
                )),
            )
        }
    }
}

impl Run {
    fn from_read(read: Read) -> Result<Run, String> {
        let Read { fields, steps } = read;
        let id = match fields.get("id") {
            Some(id) => WholeNumber::deserialize(id).map_err(|e| e.to_string())?,
            None => return Err("missing field `id`".to_owned()),
        };
        let id = RunId::new(id.0).ok_or("the run has id 0")?;
        let (status, odd_status) = status_of(fields.get("status"));
        let mut oddities: Vec<String> = odd_status.into_iter().collect();
        let steps_sent = steps.is_some();
        let steps = match steps {
            None => Vec::new(),
            Some(Steps {
                read: Ok(read),
                sent,
            }) => {
                if sent > read.len() {
                    oddities.push(format!(
                        "dbt Cloud listed {sent} steps for run {id}; the first {} are read",
                        read.len()
                    ));
                }
                read
            }
            Some(Steps {
                read: Err(what), ..
            }) => {
                oddities.push(format!(
                    "dbt Cloud sent run {id}'s steps as {what}, not a list: no steps are read"
                ));
                Vec::new()
            }
        };
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned)
        };
        Ok(Run {
            id,
            status,
            status_message: text("status_message"),
            href: text("href"),
            artifacts_saved: fields.get("artifacts_saved").and_then(Value::as_bool) == Some(true),
            has_started: fields.get("started_at").is_some_and(|v| !v.is_null()),
            account: whole(&fields, "account_id"),
            job: whole(&fields, "job_definition_id").or_else(|| whole(&fields, "job_id")),
            steps: steps.into(),
            steps_sent,
            oddities: oddities.into(),
            fields: Arc::new(fields),
        })
    }

    /// What dbt Cloud sent that could not be read as its API documents, read leniently instead.
    pub fn oddities(&self) -> &[String] {
        &self.oddities
    }

    /// A table's cell: the field as kept, the steps as JSON.
    pub fn cell(&self, name: &str) -> Option<std::borrow::Cow<'_, Value>> {
        if name == "run_steps" {
            return self.steps_sent.then(|| {
                std::borrow::Cow::Owned(Value::Array(
                    self.steps.iter().map(RunStep::to_json).collect(),
                ))
            });
        }
        self.fields.get(name).map(std::borrow::Cow::Borrowed)
    }

    /// A field as the API sent it, `None` when it was absent.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// A timestamp field; run timestamps look like `2024-07-03 13:59:00.653171+00:00`.
    pub fn timestamp(&self, field: &str) -> Option<DateTime<Utc>> {
        let text = self.field(field)?.as_str()?;
        DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
            .or_else(|_| DateTime::parse_from_rfc3339(text))
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }

    /// The step that is running now, or the last one that started.
    pub fn current_step(&self) -> Option<&RunStep> {
        self.steps
            .iter()
            .rev()
            .find(|s| s.status == RunStatus::Running)
            .or_else(|| {
                self.steps
                    .iter()
                    .rev()
                    .find(|s| s.status != RunStatus::Queued)
            })
    }

    /// The steps that ran the job's dbt commands (`dbt source freshness`, `dbt build`, `dbt docs
    /// generate`, ...): those after dbt Cloud's own that started, in order.
    pub fn command_steps(&self) -> Vec<&RunStep> {
        let after = self
            .steps
            .iter()
            .rposition(RunStep::is_built_in)
            .map_or(0, |built_in| built_in + 1);
        self.steps[after..]
            .iter()
            .filter(|step| step.status != RunStatus::Queued)
            .collect()
    }

    /// The step whose `target/` the artifact endpoints read when no step is named.
    pub fn last_step(&self) -> Option<&RunStep> {
        self.steps.iter().max_by_key(|step| step.index)
    }

    pub fn failed_step(&self) -> Option<&RunStep> {
        self.steps.iter().find(|s| s.status == RunStatus::Error)
    }

    /// A step's log, as the run's answer carries it (its head and end, when long).
    pub fn step_log(&self, index: i64) -> Option<&str> {
        self.steps
            .iter()
            .find(|step| step.index == index)?
            .logs
            .as_deref()
    }

    /// How long the run waited in the queue and how long it ran, from `queued_duration` and
    /// `run_duration` (`HH:MM:SS`).
    pub fn queued_and_ran(&self) -> Option<(Duration, Duration)> {
        let duration = |name: &str| hms(self.field(name)?.as_str()?);
        Some((duration("queued_duration")?, duration("run_duration")?))
    }
}

/// A run lasts days at most; a duration past this is not one dbt Cloud measured.
const MAX_HOURS: u64 = 24 * 366;

/// `01:02:03` as a duration; hours may pass 24 (`24:00:36`), not a year.
fn hms(text: &str) -> Option<Duration> {
    let parts: Vec<u64> = text
        .trim()
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [h, m, s] if *h <= MAX_HOURS && *m < 60 && *s < 60 => {
            Some(Duration::from_secs(h * 3600 + m * 60 + s))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run_from(data: Value) -> Result<Run, String> {
        serde_json::from_value(data).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_a_sparse_run_and_keeps_the_fields_read() {
        let run = run_from(json!({
            "id": 70403103931_u64, "status": 3, "status_message": null, "href": "https://x/run/1",
            "started_at": "2024-07-03 13:59:00.653171+00:00", "new_field": [1, 2],
            "run_steps": [
                {"index": 1, "name": "Clone git repository", "status": 10},
                {"index": 2, "name": "Invoke dbt build", "status": 3},
                {"index": 3, "name": "Invoke dbt docs generate", "status": 1}
            ]
        }))
        .unwrap();
        assert_eq!(run.id.get(), 70403103931);
        assert_eq!(run.status, RunStatus::Running);
        assert!(run.has_started);
        assert!(!run.artifacts_saved);
        assert_eq!(run.current_step().unwrap().name, "Invoke dbt build");
        assert_eq!(
            run.field("new_field"),
            None,
            "a field nothing reads is skipped"
        );
        assert_eq!(run.field("status_message"), Some(&Value::Null));
        assert_eq!(run.field("absent"), None);
        let started = run.timestamp("started_at").unwrap();
        assert_eq!(started.to_rfc3339(), "2024-07-03T13:59:00.653171+00:00");
        assert_eq!(run.timestamp("href"), None);
    }

    #[test]
    fn refuses_what_is_not_a_run() {
        for (data, expected) in [
            (json!(null), "expected a run: a JSON object"),
            (json!([1]), "expected a run: a JSON object"),
            (json!({"status": 1}), "missing field `id`"),
            (json!({"id": "12a", "status": 1}), "invalid value"),
            (json!({"id": 1.5, "status": 1}), "invalid type"),
            (json!({"id": 0, "status": 1}), "id 0"),
            (json!({"id": -5, "status": 1}), "invalid value"),
        ] {
            let error = run_from(data.clone()).unwrap_err();
            assert!(error.contains(expected), "{data}: {error}");
        }
    }

    #[test]
    fn ids_may_be_strings_of_digits_and_a_missing_status_is_unknown() {
        let run = run_from(json!({"id": "70403103931", "status": "10"})).unwrap();
        assert_eq!(
            (run.id.get(), run.status),
            (70403103931, RunStatus::Success)
        );
        for status in [json!(null), json!(99)] {
            let run = run_from(json!({"id": 1, "status": status})).unwrap();
            assert!(
                matches!(run.status, RunStatus::Unknown | RunStatus::Other(99))
                    && !run.status.is_final(),
                "{status}"
            );
        }
        let run = run_from(json!({"id": 1})).unwrap();
        assert_eq!(run.status, RunStatus::Unknown);
        assert_eq!(run.status.to_string(), "status unknown");
    }

    #[test]
    fn the_command_steps_are_those_after_dbt_clouds_own_that_ran() {
        let steps = |names: &[(&str, u64)]| {
            let steps: Vec<Value> = names
                .iter()
                .enumerate()
                .map(|(i, (name, status))| json!({"index": i + 1, "name": name, "status": status}))
                .collect();
            run_from(json!({"id": 1, "status": 20, "run_steps": steps})).unwrap()
        };
        let today = steps(&[
            ("Clone git repository", 10),
            ("Create profile from connection Postgres", 10),
            ("Invoke dbt with `dbt deps`", 10),
            ("Invoke dbt with `dbt source freshness`", 10),
            ("Invoke dbt with `dbt build`", 20),
            ("Invoke dbt with `dbt docs generate`", 10),
        ]);
        let indexes: Vec<i64> = today.command_steps().iter().map(|s| s.index).collect();
        assert_eq!(indexes, [4, 5, 6]);
        assert_eq!(today.last_step().unwrap().index, 6);
        assert_eq!(today.failed_step().unwrap().index, 5);
        let older = steps(&[
            ("Clone Git Repository", 10),
            ("Create Profile from Connection Bigquery ", 10),
            ("Invoke dbt deps", 10),
            ("Invoke dbt run", 10),
            ("Invoke dbt test", 1),
        ]);
        let indexes: Vec<i64> = older.command_steps().iter().map(|s| s.index).collect();
        assert_eq!(indexes, [4], "a step still Queued never ran");
        let unknown = steps(&[("dbt build", 10)]);
        assert_eq!(
            unknown.command_steps().len(),
            1,
            "no built-in step: all are the job's"
        );
        let died = steps(&[("Clone git repository", 20)]);
        assert!(died.command_steps().is_empty());
    }

    #[test]
    fn durations_are_read_as_dbt_cloud_writes_them_and_absurd_ones_are_not() {
        assert_eq!(hms("24:00:36"), Some(Duration::from_secs(86_436)));
        assert_eq!(hms(" 00:01:02 "), Some(Duration::from_secs(62)));
        for absurd in [
            "5000000000000000:00:00",
            "18446744073709551615:59:59",
            "1:60:00",
            "1:2",
            "x:0:0",
        ] {
            assert_eq!(hms(absurd), None, "{absurd}");
        }
    }

    #[test]
    fn final_statuses() {
        let finals: Vec<i64> = [1, 2, 3, 10, 20, 30, 99]
            .into_iter()
            .filter(|&c| RunStatus::from_code(c).is_final())
            .collect();
        assert_eq!(finals, [10, 20, 30]);
    }
}
