//! Each table's columns, in order: name, Storage base type, description, and how its cell is
//! read from a row's source, so that the header, the manifest and every row come from one list.
//!
//! Existing users' incremental Storage tables have the columns listed in
//! `docs/output-tables.md`; a load whose CSV lacks one of them fails. So the columns are fixed
//! here, in that order, whatever the API answered (a missing field is an empty cell), and new
//! columns only ever go at the end.

use serde_json::Value;

use crate::chain::Link;
use crate::dbt_cloud::{FieldType, RunStep, RUN_FIELDS};
use crate::freshness::SourceResult;
use crate::run_results::NodeResult;
use crate::text::tail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The Run in the trigger answer.
    Trigger,
    /// The Run from get-run, with its trigger, job and steps.
    Run,
    /// One row per step of the run.
    RunSteps,
    /// One row per dbt node of each step's `run_results.json`.
    RunResults,
    /// One row per source of each step's `sources.json` (`dbt source freshness`).
    SourceFreshness,
    /// One row per job chained to the run (`wait_for_chained_jobs`): which run started which.
    RunChain,
}

/// Storage's base types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
}

impl Base {
    pub(super) fn name(self) -> &'static str {
        match self {
            Base::String => "STRING",
            Base::Integer => "INTEGER",
            Base::Float => "FLOAT",
            Base::Boolean => "BOOLEAN",
            Base::Timestamp => "TIMESTAMP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub base: Base,
    pub description: &'static str,
}

const fn column(name: &'static str, base: Base, description: &'static str) -> Column {
    Column {
        name,
        base,
        description,
    }
}

/// A column, and how its cell is read: `F` takes what the row is made of.
struct Of<F> {
    column: Column,
    cell: F,
}

const fn of<F>(name: &'static str, base: Base, description: &'static str, cell: F) -> Of<F> {
    Of {
        column: column(name, base, description),
        cell,
    }
}

/// A step's cell, from the run's id and the step.
type StepCell = fn(&str, &RunStep) -> String;
/// A node's cell, from its step and the node.
type NodeCell = fn(&StepCells<'_>, &NodeResult) -> String;
/// A source's cell, from its step and the source.
type SourceCell = fn(&StepCells<'_>, &SourceResult) -> String;
/// A chained job's cell.
type LinkCell = fn(&Link) -> String;

/// The run table's columns, by name from the run's fields: the earlier component's, then ours.
#[rustfmt::skip]
const RUN_COLUMNS: &[&str] = &[
    "id", "trigger_id", "account_id", "project_id", "job_definition_id", "status", "git_branch",
    "git_sha", "status_message", "created_at", "updated_at", "dequeued_at", "started_at",
    "finished_at", "last_checked_at", "last_heartbeat_at", "owner_thread_id",
    "executed_by_thread_id", "artifacts_saved", "artifact_s3_path", "has_docs_generated",
    "trigger", "job", "duration", "queued_duration", "run_duration", "duration_humanized",
    "queued_duration_humanized", "run_duration_humanized", "finished_at_humanized",
    "status_humanized", "created_at_humanized",
    // Added by this component, after the earlier component's columns.
    "environment_id", "job_id", "dbt_version", "in_progress", "is_complete", "is_success",
    "is_error", "is_cancelled", "is_running", "href",
];

const RUN_STEPS_COLUMNS: &[Of<StepCell>] = &[
    of("run_id", Base::Integer, "dbt Cloud run id", |run, _| {
        run.to_owned()
    }),
    of(
        "index",
        Base::Integer,
        "The step's position in the run, from 1",
        |_, step| step.index.to_string(),
    ),
    of(
        "name",
        Base::String,
        "The step, e.g. Invoke dbt build",
        |_, step| step.name.clone(),
    ),
    of(
        "status",
        Base::Integer,
        "Step status: 1 Queued, 3 Running, 10 Success, 20 Error, 30 Cancelled",
        |_, step| number(step.status_code),
    ),
    of(
        "status_humanized",
        Base::String,
        "Run status in words",
        |_, step| match &step.status_humanized {
            Some(humanized) => humanized.clone(),
            None => step
                .status_code
                .map(|_| step.status.to_string())
                .unwrap_or_default(),
        },
    ),
    of(
        "started_at",
        Base::Timestamp,
        "When the run began executing",
        |_, step| text(step.started_at.as_deref()),
    ),
    of(
        "finished_at",
        Base::Timestamp,
        "When the run finished",
        |_, step| text(step.finished_at.as_deref()),
    ),
    of(
        "duration",
        Base::String,
        "How long the step took",
        |_, step| text(step.duration.as_deref()),
    ),
    of(
        "logs",
        Base::String,
        "The end of the step's log (at most 10,000 characters)",
        |_, step| tail(step.logs.as_deref().unwrap_or_default(), STEP_LOG_CHARS),
    ),
];

/// Numbers exactly as dbt wrote them.
const RUN_RESULTS_COLUMNS: &[Of<NodeCell>] = &[
    of("run_id", Base::Integer, "dbt Cloud run id", |step, _| {
        step.run_id.to_owned()
    }),
    of(
        "unique_id",
        Base::String,
        "dbt's node id, e.g. model.jaffle_shop.orders",
        |_, node| node.unique_id(),
    ),
    of(
        "resource_type",
        Base::String,
        "model, test, seed, snapshot, ... (from unique_id)",
        |_, node| node.resource_type(),
    ),
    of(
        "status",
        Base::String,
        "dbt's status in dbt Core's words, whatever the engine: success, error, fail, pass, warn, skipped, runtime error, reused, no-op",
        |_, node| node.status.as_str().to_owned(),
    ),
    of(
        "execution_time",
        Base::Float,
        "Seconds dbt spent on the node",
        |_, node| node.execution_time.cell(),
    ),
    of(
        "rows_affected",
        Base::Integer,
        "Rows the node affected, as the adapter reported",
        |_, node| node.rows_affected(),
    ),
    of(
        "failures",
        Base::Integer,
        "Failing rows of a test",
        |_, node| node.failures.cell(),
    ),
    of(
        "message",
        Base::String,
        "dbt's message, e.g. the error",
        |_, node| node.message.cell(),
    ),
    of(
        "thread_id",
        Base::String,
        "dbt thread that ran the node",
        |_, node| node.thread_id.cell(),
    ),
    of(
        "compile_started_at",
        Base::Timestamp,
        "When compiling the node started or ended",
        |_, node| node.phase("compile").0,
    ),
    of(
        "compile_completed_at",
        Base::Timestamp,
        "When compiling the node started or ended",
        |_, node| node.phase("compile").1,
    ),
    of(
        "execute_started_at",
        Base::Timestamp,
        "When executing the node started or ended",
        |_, node| node.phase("execute").0,
    ),
    of(
        "execute_completed_at",
        Base::Timestamp,
        "When executing the node started or ended",
        |_, node| node.phase("execute").1,
    ),
    of(
        "adapter_response",
        Base::String,
        "The adapter's response (JSON)",
        |_, node| cell(node.adapter_response.as_ref()),
    ),
    of(
        "step_index",
        Base::Integer,
        "The run step whose run_results.json holds the node (0 when dbt Cloud listed no steps)",
        |step, _| step.index.to_string(),
    ),
    of(
        "step_name",
        Base::String,
        "That step, e.g. Invoke dbt build",
        |step, _| step.name.to_owned(),
    ),
    of(
        "state_decision_id",
        Base::String,
        "The decision of dbt's state-aware orchestration behind the node's status, when dbt wrote one",
        |_, node| node.state_decision_id.cell(),
    ),
];

/// Which run started which: keyed by the job and the run whose end started it, since a job
/// whose run never appeared has no run id.
const RUN_CHAIN_COLUMNS: &[Of<LinkCell>] = &[
    of(
        "started_by_run_id",
        Base::Integer,
        "The run whose end started the chained job's run: this component's run, or a chained one",
        |link| link.parent_run.to_string(),
    ),
    of(
        "job_id",
        Base::Integer,
        "The chained job (set to run when the job of started_by_run_id finishes)",
        |link| link.job.to_string(),
    ),
    of("job_name", Base::String, "The chained job's name", |link| {
        link.job_name.clone()
    }),
    of(
        "run_id",
        Base::Integer,
        "The chained job's run; empty when none appeared",
        |link| link.run().map(|run| run.id.to_string()).unwrap_or_default(),
    ),
    of(
        "started_by_job_id",
        Base::Integer,
        "The job of started_by_run_id",
        |link| link.parent_job.to_string(),
    ),
    of(
        "depth",
        Base::Integer,
        "1 for a job chained to this component's job, 2 for one chained to that, ...",
        |link| link.depth.to_string(),
    ),
    of(
        "outcome",
        Base::String,
        "The run's status as last seen (Success, Error, Cancelled, Running, ...), or never appeared",
        Link::outcome,
    ),
];

const SOURCE_FRESHNESS_COLUMNS: &[Of<SourceCell>] = &[
    of("run_id", Base::Integer, "dbt Cloud run id", |step, _| {
        step.run_id.to_owned()
    }),
    of(
        "step_index",
        Base::Integer,
        "The run step whose sources.json holds the source (0 when dbt Cloud listed no steps)",
        |step, _| step.index.to_string(),
    ),
    of(
        "unique_id",
        Base::String,
        "dbt's source id, e.g. source.jaffle_shop.raw.orders",
        |_, source| source.unique_id(),
    ),
    of(
        "status",
        Base::String,
        "dbt's verdict in dbt Core's words, whatever the engine: pass, warn, error, or runtime error when the check itself failed",
        |_, source| source.status.as_str().to_owned(),
    ),
    of(
        "max_loaded_at",
        Base::Timestamp,
        "The newest loaded_at_field value dbt found",
        |_, source| source.max_loaded_at.cell(),
    ),
    of(
        "snapshotted_at",
        Base::Timestamp,
        "When dbt looked",
        |_, source| source.snapshotted_at.cell(),
    ),
    of(
        "max_loaded_at_time_ago_in_s",
        Base::Float,
        "Seconds between the newest load and the check",
        |_, source| source.max_loaded_at_time_ago_in_s.cell(),
    ),
    of(
        "criteria",
        Base::String,
        "warn_after, error_after and filter, as configured (JSON)",
        |_, source| cell(source.criteria.as_ref()),
    ),
    of(
        "error",
        Base::String,
        "Why the check failed (runtime error)",
        |_, source| source.error.cell(),
    ),
    of(
        "execution_time",
        Base::Float,
        "Seconds dbt spent on the check",
        |_, source| source.execution_time.cell(),
    ),
];

/// Each step's log is cut to its last this many characters, the mark that says so included:
/// where dbt reports what failed.
const STEP_LOG_CHARS: usize = 10_000;

/// A run field as a column.
fn run_column(name: &str) -> Option<Column> {
    let field = RUN_FIELDS.iter().find(|field| field.name == name)?;
    let base = match field.kind {
        FieldType::Integer => Base::Integer,
        FieldType::Boolean => Base::Boolean,
        FieldType::Timestamp => Base::Timestamp,
        FieldType::Text => Base::String,
    };
    Some(column(field.name, base, field.description))
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Trigger,
        Table::Run,
        Table::RunSteps,
        Table::RunResults,
        Table::SourceFreshness,
        Table::RunChain,
    ];

    pub(super) fn description(self) -> &'static str {
        match self {
            Table::Trigger => "dbt Cloud runs as triggered by this component (one row per trigger)",
            Table::Run => "dbt Cloud runs as last seen by this component: final when it waited",
            Table::RunSteps => "The steps of dbt Cloud runs, with the end of each step's log",
            Table::RunResults => {
                "dbt's run_results.json of each step: one row per model, test, seed or snapshot"
            }
            Table::SourceFreshness => {
                "dbt's sources.json of each step: one row per source whose freshness was checked"
            }
            Table::RunChain => {
                "The runs dbt Cloud started when the run ended (jobs chained to its job), to any depth"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Trigger => "dbt_cloud_trigger",
            Table::Run => "dbt_cloud_run",
            Table::RunSteps => "dbt_cloud_run_steps",
            Table::RunResults => "dbt_cloud_run_results",
            Table::SourceFreshness => "dbt_cloud_source_freshness",
            Table::RunChain => "dbt_cloud_run_chain",
        }
    }

    /// The columns, in order. A run table's column that is not a run field (a test rules it
    /// out) would be left out rather than written empty.
    pub fn columns(self) -> Vec<Column> {
        match self {
            Table::Trigger => RUN_FIELDS
                .iter()
                .filter_map(|f| run_column(f.name))
                .collect(),
            Table::Run => RUN_COLUMNS
                .iter()
                .filter_map(|name| run_column(name))
                .collect(),
            Table::RunSteps => cells(RUN_STEPS_COLUMNS),
            Table::RunResults => cells(RUN_RESULTS_COLUMNS),
            Table::SourceFreshness => cells(SOURCE_FRESHNESS_COLUMNS),
            Table::RunChain => cells(RUN_CHAIN_COLUMNS),
        }
    }

    pub(super) fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Trigger | Table::Run => &["id"],
            Table::RunSteps => &["run_id", "index"],
            Table::RunResults | Table::SourceFreshness => &["run_id", "step_index", "unique_id"],
            Table::RunChain => &["started_by_run_id", "job_id"],
        }
    }
}

fn cells<F>(catalogue: &[Of<F>]) -> Vec<Column> {
    catalogue.iter().map(|of| of.column).collect()
}

/// A chained job's row.
pub fn link_row(link: &Link) -> impl Iterator<Item = String> + '_ {
    RUN_CHAIN_COLUMNS.iter().map(move |of| (of.cell)(link))
}

/// A step's row.
pub fn step_row<'a>(run_id: &'a str, step: &'a RunStep) -> impl Iterator<Item = String> + 'a {
    RUN_STEPS_COLUMNS
        .iter()
        .map(move |of| (of.cell)(run_id, step))
}

/// Which step of the run a file came from, as the rows name it.
#[derive(Debug, Clone, Copy)]
pub struct StepCells<'a> {
    pub run_id: &'a str,
    pub index: u32,
    pub name: &'a str,
}

/// A node's row.
pub fn result_row<'a>(
    step: &'a StepCells<'a>,
    node: &'a NodeResult,
) -> impl Iterator<Item = String> + 'a {
    RUN_RESULTS_COLUMNS
        .iter()
        .map(move |of| (of.cell)(step, node))
}

/// A source's row.
pub fn freshness_row<'a>(
    step: &'a StepCells<'a>,
    source: &'a SourceResult,
) -> impl Iterator<Item = String> + 'a {
    SOURCE_FRESHNESS_COLUMNS
        .iter()
        .map(move |of| (of.cell)(step, source))
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

fn number(value: Option<impl ToString>) -> String {
    value.map(|n| n.to_string()).unwrap_or_default()
}

/// null → empty; strings as they are; numbers as JSON writes them; true/false; objects and
/// lists as compact JSON, so that SQL can parse them.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {

    /// `ALL` is what the writable check goes through: a table left out of it could find its file
    /// unwritable only after the run was triggered. A new table fails the match first.
    #[test]
    fn all_holds_every_table() {
        let every = |table: Table| match table {
            Table::Trigger
            | Table::Run
            | Table::RunSteps
            | Table::RunResults
            | Table::SourceFreshness
            | Table::RunChain => table,
        };
        let names: std::collections::BTreeSet<&str> = Table::ALL
            .iter()
            .map(|table| every(*table).name())
            .collect();
        assert_eq!(names.len(), 6);
    }

    use serde_json::json;

    use super::*;

    fn base_type(table: Table, name: &str) -> &'static str {
        table
            .columns()
            .into_iter()
            .find(|column| column.name == name)
            .map(|column| column.base.name())
            .unwrap_or("none")
    }

    fn owned(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        pairs
            .iter()
            .map(|&(name, value)| (name, value.to_owned()))
            .collect()
    }

    /// A row's cells beside the table's column names, to be read by name.
    fn row(table: Table, cells: impl Iterator<Item = String>) -> Vec<(&'static str, String)> {
        let names = table.columns().into_iter().map(|column| column.name);
        let row: Vec<(&str, String)> = names.zip(cells).collect();
        assert_eq!(row.len(), table.columns().len(), "{table:?}");
        row
    }

    #[test]
    fn long_logs_keep_their_end() {
        assert_eq!(tail("short", 10), "short");
        let long = "x".repeat(27_146);
        let kept = tail(&long, STEP_LOG_CHARS);
        assert_eq!(kept.chars().count(), STEP_LOG_CHARS, "the mark counts");
        assert!(
            kept.starts_with("[first 17175 characters cut]\nxxx"),
            "{}",
            &kept[..40]
        );
        assert_eq!(tail("short", 10), "short");
    }

    #[test]
    fn result_and_step_types() {
        assert_eq!(base_type(Table::RunResults, "status"), "STRING");
        assert_eq!(base_type(Table::RunSteps, "status"), "INTEGER");
        assert_eq!(base_type(Table::RunResults, "execution_time"), "FLOAT");
        assert_eq!(
            base_type(Table::RunResults, "execute_completed_at"),
            "TIMESTAMP"
        );
        assert_eq!(base_type(Table::RunResults, "rows_affected"), "INTEGER");
    }

    #[test]
    fn base_types() {
        let typed: Vec<(&str, &str)> = [
            "id",
            "status",
            "is_success",
            "can_retry",
            "finished_at",
            "created_at_humanized",
            "duration",
            "trigger",
            "owner_thread_id",
        ]
        .into_iter()
        .map(|c| (c, base_type(Table::Trigger, c)))
        .collect();
        assert_eq!(
            typed,
            [
                ("id", "INTEGER"),
                ("status", "INTEGER"),
                ("is_success", "BOOLEAN"),
                ("can_retry", "BOOLEAN"),
                ("finished_at", "TIMESTAMP"),
                ("created_at_humanized", "STRING"),
                ("duration", "STRING"),
                ("trigger", "STRING"),
                ("owner_thread_id", "STRING"),
            ]
        );
    }

    #[test]
    fn every_run_column_is_a_field_the_run_keeps() {
        assert_eq!(Table::Run.columns().len(), RUN_COLUMNS.len());
        assert_eq!(Table::Trigger.columns().len(), RUN_FIELDS.len());
    }

    #[test]
    fn column_lists_have_no_duplicates_and_rows_fit_them() {
        for table in [
            Table::Trigger,
            Table::Run,
            Table::RunSteps,
            Table::RunResults,
            Table::SourceFreshness,
        ] {
            let mut names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), table.columns().len(), "{table:?}");
        }
        let run_id = "70403103000";
        let step = RunStep {
            index: 4,
            name: "Invoke dbt build".into(),
            status_code: Some(20),
            started_at: Some("2026-01-01 02:00:00".into()),
            finished_at: Some("2026-01-01 02:09:00".into()),
            duration: Some("00:09:00".into()),
            logs: Some("ERROR".into()),
            ..RunStep::default()
        };
        assert_eq!(
            row(Table::RunSteps, step_row(run_id, &step)),
            owned(&[
                ("run_id", run_id),
                ("index", "4"),
                ("name", "Invoke dbt build"),
                ("status", "20"),
                ("status_humanized", "status unknown"),
                ("started_at", "2026-01-01 02:00:00"),
                ("finished_at", "2026-01-01 02:09:00"),
                ("duration", "00:09:00"),
                ("logs", "ERROR"),
            ])
        );
        let node: NodeResult = serde_json::from_value(json!({
            "unique_id": "model.a.b", "status": "error", "execution_time": 1.25,
            "failures": 3, "message": "boom", "thread_id": "Thread-1",
            "adapter_response": {"rows_affected": 7},
            "timing": [
                {"name": "compile", "started_at": "c0", "completed_at": "c1"},
                {"name": "execute", "started_at": "e0", "completed_at": "e1"}
            ]
        }))
        .unwrap();
        let step = StepCells {
            run_id,
            index: 4,
            name: "Invoke dbt build",
        };
        assert_eq!(
            row(Table::RunResults, result_row(&step, &node)),
            owned(&[
                ("run_id", run_id),
                ("unique_id", "model.a.b"),
                ("resource_type", "model"),
                ("status", "error"),
                ("execution_time", "1.25"),
                ("rows_affected", "7"),
                ("failures", "3"),
                ("message", "boom"),
                ("thread_id", "Thread-1"),
                ("compile_started_at", "c0"),
                ("compile_completed_at", "c1"),
                ("execute_started_at", "e0"),
                ("execute_completed_at", "e1"),
                ("adapter_response", r#"{"rows_affected":7}"#),
                ("step_index", "4"),
                ("step_name", "Invoke dbt build"),
                ("state_decision_id", ""),
            ])
        );
        let source: SourceResult = serde_json::from_value(json!({
            "unique_id": "source.a.b.c", "status": "warn", "max_loaded_at": "m",
            "snapshotted_at": "s", "max_loaded_at_time_ago_in_s": 90.5,
            "criteria": {"warn_after": {"count": 1}}, "error": null, "execution_time": 0.5
        }))
        .unwrap();
        assert_eq!(
            row(Table::SourceFreshness, freshness_row(&step, &source)),
            owned(&[
                ("run_id", run_id),
                ("step_index", "4"),
                ("unique_id", "source.a.b.c"),
                ("status", "warn"),
                ("max_loaded_at", "m"),
                ("snapshotted_at", "s"),
                ("max_loaded_at_time_ago_in_s", "90.5"),
                ("criteria", r#"{"warn_after":{"count":1}}"#),
                ("error", ""),
                ("execution_time", "0.5"),
            ])
        );
    }

    #[test]
    fn the_step_status_column_describes_codes_as_the_api_names_them() {
        let status = RUN_STEPS_COLUMNS
            .iter()
            .find(|of| of.column.name == "status")
            .unwrap();
        let (_, codes) = status.column.description.split_once(": ").unwrap();
        for pair in codes.split(", ") {
            let (code, name) = pair.split_once(' ').unwrap();
            let status = crate::dbt_cloud::RunStatus::from_code(code.parse().unwrap());
            assert_eq!(status.to_string(), name, "{pair}");
        }
    }
}
