//! A dbt Cloud Run: the few fields our logic reads, typed, plus the fields the output tables
//! write. Nothing of an answer costs more memory than a budget: a field nothing reads is skipped
//! while it streams in, a field the tables write is kept up to [`FIELD_BUDGET`] ([`bounded`]),
//! the steps are read into typed values (never their `debug_logs`), at most [`MAX_STEPS`] of
//! them, and the run is shared rather than copied. What dbt Cloud sent that cannot be read as
//! its API documents, but need not stop the job (a status that is not a code, steps that are not
//! a list), is read leniently and said in [`Run::oddities`].
//!
//! [`bounded`]: super::bounded

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

mod fields;
mod read;

pub use fields::{FieldType, RUN_FIELDS};
pub use read::Runs;

use super::ids::RunId;

/// The most memory one field of a run may take (its `trigger`, its `job`).
pub const FIELD_BUDGET: usize = 1_000_000;
/// The most all the fields of a run may take together.
const RUN_BUDGET: usize = 4_000_000;
/// Steps read of a run; real jobs have a dozen.
pub const MAX_STEPS: usize = 200;
/// A step's text fields but its log (name, times, status in words) are cut to this many
/// characters, the mark that says so included; a name a selector makes long is a few hundred.
pub const STEP_TEXT_CHARS: usize = 1_000;

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

/// The API's run status codes and their names: the one table of them, which reading, the list
/// filter, messages and the tables' descriptions all go by.
const STATUSES: [(RunStatus, i64, &str); 6] = [
    (RunStatus::Queued, 1, "Queued"),
    (RunStatus::Starting, 2, "Starting"),
    (RunStatus::Running, 3, "Running"),
    (RunStatus::Success, 10, "Success"),
    (RunStatus::Error, 20, "Error"),
    (RunStatus::Cancelled, 30, "Cancelled"),
];

impl RunStatus {
    /// The statuses of a run not yet final.
    pub const IN_PROGRESS: &'static [RunStatus] =
        &[RunStatus::Queued, RunStatus::Starting, RunStatus::Running];

    pub fn from_code(code: i64) -> RunStatus {
        STATUSES
            .iter()
            .find(|(_, known, _)| *known == code)
            .map_or(RunStatus::Other(code), |(status, _, _)| *status)
    }

    /// The API's code, when the status has one.
    pub fn code(self) -> Option<i64> {
        match self {
            RunStatus::Other(code) => Some(code),
            status => STATUSES
                .iter()
                .find(|(known, _, _)| *known == status)
                .map(|(_, code, _)| *code),
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
            RunStatus::Other(code) => write!(f, "status {code}"),
            RunStatus::Unknown => f.write_str("status unknown"),
            status => {
                let name = STATUSES.iter().find(|(known, _, _)| known == status);
                f.write_str(name.map_or("status unknown", |(_, _, name)| name))
            }
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
    /// Steps that leave no results of dbt's: dbt Cloud's own (cloning the repository, writing
    /// the profile) and `dbt deps` (named `Invoke dbt with \`dbt deps\``, or `Invoke dbt deps`
    /// before), dbt Cloud's or one of the job's commands. Told by name, wherever they stand: a
    /// job may run `dbt deps` again between its commands.
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

impl Run {
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
    /// generate`, ...): every step that started but those whose names say they leave no
    /// results, in order.
    pub fn command_steps(&self) -> Vec<&RunStep> {
        self.steps
            .iter()
            .filter(|step| !step.is_built_in() && step.status != RunStatus::Queued)
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
        let deps_again = steps(&[
            ("Clone git repository", 10),
            ("Invoke dbt with `dbt deps`", 10),
            ("Invoke dbt with `dbt seed`", 10),
            ("Invoke dbt with `dbt build`", 10),
            ("Invoke dbt with `dbt deps --upgrade`", 10),
            ("Invoke dbt with `dbt docs generate`", 10),
        ]);
        let indexes: Vec<i64> = deps_again.command_steps().iter().map(|s| s.index).collect();
        assert_eq!(
            indexes,
            [3, 4, 6],
            "a `dbt deps` between commands hides none"
        );
    }

    /// Logs past the run's budget keep their ends, and every log, cut as it streamed in or past
    /// the budget, says how long it was as dbt wrote it.
    #[test]
    fn long_logs_past_the_budget_keep_their_ends_and_count_what_was_written() {
        let log: String = "😀 ok\n".repeat(30_000) + "the end 🏁";
        let steps: Vec<Value> = (1..=100)
            .map(|index| json!({"index": index, "name": "Invoke dbt build", "status": 10, "logs": log}))
            .collect();
        let answer = json!({"id": 1, "status": 10, "run_steps": steps}).to_string();
        let run: Run =
            serde_json::from_reader(crate::long_strings::CutLongStrings::new(answer.as_bytes()))
                .unwrap();
        let kept: usize = run
            .steps
            .iter()
            .map(|s| s.logs.as_ref().unwrap().len())
            .sum();
        assert!(
            kept <= RUN_BUDGET + 100 * (4 * 1024 + 64),
            "within the budget but for each log's end and mark: {kept}"
        );
        for step in run.steps.iter() {
            let logs = step.logs.as_deref().unwrap();
            assert!(logs.ends_with("the end 🏁"), "step {}", step.index);
            let written = crate::long_strings::as_written(logs);
            assert_eq!(
                written.chars(),
                log.chars().count() as u64,
                "step {}",
                step.index
            );
        }
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

    /// Every description that names status codes names them as the one table does, so that a
    /// code added or renamed there cannot leave a column's description behind.
    pub(crate) fn assert_codes_as_the_api_names_them(description: &str) {
        let (_, codes) = description.split_once(": ").expect("a list of codes");
        for pair in codes.split(", ") {
            let (code, name) = pair.split_once(' ').expect("a code and its name");
            let status = RunStatus::from_code(code.parse().expect("a code"));
            assert_eq!(status.to_string(), name, "{description}");
        }
    }

    #[test]
    fn the_run_status_column_describes_every_code() {
        let status = RUN_FIELDS.iter().find(|f| f.name == "status").unwrap();
        assert_codes_as_the_api_names_them(status.description);
        let described = status.description.matches(", ").count() + 1;
        assert_eq!(described, STATUSES.len(), "{}", status.description);
        assert_eq!(RunStatus::from_code(7), RunStatus::Other(7));
        assert_eq!(RunStatus::Other(7).to_string(), "status 7");
        assert_eq!(RunStatus::Unknown.code(), None);
    }
}
