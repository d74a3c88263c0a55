//! A dbt Cloud Run: the few fields our logic reads, typed, plus the fields the output tables
//! write, untouched. Anything else in the answer is skipped while it streams in, so that a huge
//! field we do not read costs no memory.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::ids::{RunId, WholeNumber};

/// The run status codes of the API: 1, 2, 3 in progress; 10, 20, 30 final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Starting,
    Running,
    Success,
    Error,
    Cancelled,
    /// A code this component does not know; treated as still in progress.
    Other(i64),
    /// The answer had no status (null or absent); treated as still in progress.
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

    /// Neither a status this component knows, nor final: worth a warning.
    pub fn is_unknown(self) -> bool {
        matches!(self, RunStatus::Other(_) | RunStatus::Unknown)
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    pub index: i64,
    pub name: String,
    pub status: RunStatus,
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
}

#[derive(Debug, Clone)]
pub struct Run {
    pub id: RunId,
    pub status: RunStatus,
    pub status_message: Option<String>,
    /// The run's page in the dbt Cloud UI.
    pub href: Option<String>,
    pub artifacts_saved: bool,
    pub has_started: bool,
    /// Empty unless the answer included `run_steps`.
    pub steps: Vec<RunStep>,
    fields: Map<String, Value>,
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

/// The typed part of a Run. Missing and null optional fields are tolerated: real answers carry
/// many nulls, and new fields appear over time.
#[derive(Deserialize)]
struct RunHead {
    id: WholeNumber,
    status: Option<WholeNumber>,
    status_message: Option<String>,
    href: Option<String>,
    artifacts_saved: Option<bool>,
    started_at: Option<Value>,
    run_steps: Option<Vec<StepHead>>,
}

#[derive(Deserialize)]
struct StepHead {
    index: Option<i64>,
    name: Option<String>,
    status: Option<i64>,
}

impl<'de> Deserialize<'de> for Run {
    /// Streams the run in, keeping [`RUN_FIELDS`] and skipping the rest unread.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Run, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Map<String, Value>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a run: a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if RUN_FIELDS.iter().any(|field| field.name == key) {
                        let value = map.next_value()?;
                        fields.insert(key, value);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(fields)
            }
        }
        let fields = deserializer.deserialize_map(Fields)?;
        Run::from_fields(fields).map_err(serde::de::Error::custom)
    }
}

impl Run {
    fn from_fields(fields: Map<String, Value>) -> Result<Run, String> {
        let head =
            RunHead::deserialize(&Value::Object(fields.clone())).map_err(|e| e.to_string())?;
        let id = RunId::new(head.id.0).ok_or("the run has id 0")?;
        let steps = head
            .run_steps
            .unwrap_or_default()
            .into_iter()
            .map(|step| RunStep {
                index: step.index.unwrap_or_default(),
                name: step.name.unwrap_or_default(),
                status: RunStatus::from_code(step.status.unwrap_or_default()),
            })
            .collect();
        Ok(Run {
            id,
            status: head.status.map_or(RunStatus::Unknown, |code| {
                i64::try_from(code.0).map_or(RunStatus::Other(i64::MAX), RunStatus::from_code)
            }),
            status_message: head.status_message.filter(|m| !m.trim().is_empty()),
            href: head.href.filter(|h| !h.trim().is_empty()),
            artifacts_saved: head.artifacts_saved.unwrap_or(false),
            has_started: head.started_at.is_some_and(|v| !v.is_null()),
            steps,
            fields,
        })
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

    /// A step's log, as the run's answer carries it (its end, when long).
    pub fn step_log(&self, index: i64) -> Option<&str> {
        self.field("run_steps")?
            .as_array()?
            .iter()
            .find(|step| step.get("index").and_then(Value::as_i64) == Some(index))?
            .get("logs")?
            .as_str()
    }

    /// How long the run waited in the queue and how long it ran, from `queued_duration` and
    /// `run_duration` (`HH:MM:SS`).
    pub fn queued_and_ran(&self) -> Option<(Duration, Duration)> {
        let duration = |name: &str| hms(self.field(name)?.as_str()?);
        Some((duration("queued_duration")?, duration("run_duration")?))
    }
}

/// `01:02:03` as a duration; hours may pass 24 (`24:00:36`).
fn hms(text: &str) -> Option<Duration> {
    let parts: Vec<u64> = text
        .trim()
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [h, m, s] if *m < 60 && *s < 60 => Some(Duration::from_secs(h * 3600 + m * 60 + s)),
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
                run.status.is_unknown() && !run.status.is_final(),
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
    fn final_statuses() {
        let finals: Vec<i64> = [1, 2, 3, 10, 20, 30, 99]
            .into_iter()
            .filter(|&c| RunStatus::from_code(c).is_final())
            .collect();
        assert_eq!(finals, [10, 20, 30]);
    }
}
