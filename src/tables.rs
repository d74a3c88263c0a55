//! The output tables and their manifests: the triggered run and the run as last seen (one row
//! each), the run's steps, and its results per dbt node.
//!
//! Existing users' incremental Storage tables have the columns listed in
//! `docs/output-tables.md`; a load whose CSV lacks one of them fails. So the columns are fixed
//! here, in that order, whatever the API answered (a missing field is an empty cell), and new
//! columns only ever go at the end.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use crate::data_folder::DataFolder;
use crate::dbt_cloud::{Run, RunStatus, RUN_FIELDS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The Run in the trigger answer.
    Trigger,
    /// The Run from get-run, with its trigger, job and steps.
    Run,
    /// One row per step of the run.
    RunSteps,
    /// One row per dbt node of the run's `run_results.json`.
    RunResults,
}

const RUN_STEPS_COLUMNS: &[&str] = &[
    "run_id",
    "index",
    "name",
    "status",
    "status_humanized",
    "started_at",
    "finished_at",
    "duration",
    "logs",
];

const RUN_RESULTS_COLUMNS: &[&str] = &[
    "run_id",
    "unique_id",
    "resource_type",
    "status",
    "execution_time",
    "rows_affected",
    "failures",
    "message",
    "thread_id",
    "compile_started_at",
    "compile_completed_at",
    "execute_started_at",
    "execute_completed_at",
    "adapter_response",
];

/// Every field a Run keeps, in the earlier component's order: the run's own definition of what it
/// keeps is this table's columns (`docs/output-tables.md`).
const TRIGGER_COLUMNS: &[&str] = RUN_FIELDS;

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

impl Table {
    fn description(self) -> &'static str {
        match self {
            Table::Trigger => "dbt Cloud runs as triggered by this component (one row per trigger)",
            Table::Run => "dbt Cloud runs as last seen by this component: final when it waited",
            Table::RunSteps => "The steps of dbt Cloud runs, with the end of each step's log",
            Table::RunResults => {
                "dbt's run_results.json: one row per model, test, seed or snapshot"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Trigger => "dbt_cloud_trigger",
            Table::Run => "dbt_cloud_run",
            Table::RunSteps => "dbt_cloud_run_steps",
            Table::RunResults => "dbt_cloud_run_results",
        }
    }

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Trigger => TRIGGER_COLUMNS,
            Table::Run => RUN_COLUMNS,
            Table::RunSteps => RUN_STEPS_COLUMNS,
            Table::RunResults => RUN_RESULTS_COLUMNS,
        }
    }

    fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Trigger | Table::Run => &["id"],
            Table::RunSteps => &["run_id", "index"],
            Table::RunResults => &["run_id", "unique_id"],
        }
    }
}

/// Rows of one table, checked against its columns.
pub struct Rows<'a> {
    table: Table,
    writer: csv::Writer<&'a mut dyn Write>,
    count: usize,
}

impl Rows<'_> {
    pub fn row<I, S>(&mut self, cells: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let record = csv::ByteRecord::from_iter(cells);
        anyhow::ensure!(
            record.len() == self.table.columns().len(),
            "a row of {} has {} cells for {} columns",
            self.table.name(),
            record.len(),
            self.table.columns().len()
        );
        self.writer.write_byte_record(&record)?;
        self.count += 1;
        Ok(())
    }
}

/// The Storage bucket the earlier component wrote to, which downstream SQL reads.
pub fn bucket_for(config_id: Option<&str>) -> String {
    let id = config_id
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .unwrap_or("000000000");
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("in.c-dbt-cloud-job-trigger-{id}")
}

/// Writes `<table>.csv`, its rows given by `rows`, and its manifest into `out/tables`, each
/// whole or not at all. `typed`: the native-types manifest (a `schema` with base types), else the
/// legacy one (base types as column metadata). Returns the number of rows.
pub fn write(
    folder: &DataFolder,
    table: Table,
    bucket: &str,
    typed: bool,
    rows: impl FnOnce(&mut Rows) -> Result<()>,
) -> Result<usize> {
    let csv_path = folder.tables_dir().join(format!("{}.csv", table.name()));
    let mut count = 0;
    folder.write_atomically(&csv_path, |out| {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(out);
        writer.write_record(table.columns())?;
        let mut rows_writer = Rows {
            table,
            writer,
            count: 0,
        };
        rows(&mut rows_writer)?;
        rows_writer.writer.flush()?;
        count = rows_writer.count;
        Ok(())
    })?;
    let manifest = manifest(table, bucket, typed);
    let manifest_path = folder
        .tables_dir()
        .join(format!("{}.csv.manifest", table.name()));
    folder.write_atomically(&manifest_path, |out| {
        serde_json::to_writer_pretty(&mut *out, &manifest)?;
        Ok(out.write_all(b"\n")?)
    })?;
    Ok(count)
}

/// A run table: the one row of `run`.
pub fn write_run(
    folder: &DataFolder,
    table: Table,
    run: &Run,
    bucket: &str,
    typed: bool,
) -> Result<()> {
    write(folder, table, bucket, typed, |rows| {
        rows.row(table.columns().iter().map(|column| cell(run.field(column))))
    })?;
    Ok(())
}

/// The steps table: a row per step the run reported (none when it has not started).
pub fn write_run_steps(folder: &DataFolder, run: &Run, bucket: &str, typed: bool) -> Result<usize> {
    let steps = match run.field("run_steps") {
        Some(Value::Array(steps)) => steps.as_slice(),
        _ => &[],
    };
    write(folder, Table::RunSteps, bucket, typed, |rows| {
        for step in steps {
            let field = |name: &str| cell(step.get(name));
            let status_humanized = match step.get("status_humanized") {
                Some(Value::String(s)) => s.clone(),
                _ => step
                    .get("status")
                    .and_then(Value::as_i64)
                    .map(|code| RunStatus::from_code(code).to_string())
                    .unwrap_or_default(),
            };
            rows.row([
                run.id.to_string(),
                field("index"),
                field("name"),
                field("status"),
                status_humanized,
                field("started_at"),
                field("finished_at"),
                field("duration"),
                tail(&field("logs"), STEP_LOG_CHARS),
            ])?;
        }
        Ok(())
    })
}

/// Each step's log is cut to its last this many characters: where dbt reports what failed.
pub const STEP_LOG_CHARS: usize = 10_000;

/// The end of `text`, at most `max_chars` characters, marked when cut.
fn tail(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().skip(count - max_chars).collect();
    format!("[first {} characters cut]\n{kept}", count - max_chars)
}

/// Incremental on `id`, and `write_always`, so that a failed job still records its run.
fn manifest(table: Table, bucket: &str, typed: bool) -> Value {
    let mut manifest = json!({
        "destination": format!("{bucket}.{}", table.name()),
        "incremental": true,
        "write_always": true,
        "delimiter": ",",
        "enclosure": "\"",
    });
    let columns = table.columns();
    if typed {
        manifest["manifest_type"] = json!("output");
        manifest["has_header"] = json!(true);
        manifest["description"] = json!(table.description());
        manifest["schema"] = columns
            .iter()
            .map(|&name| {
                let key = table.primary_key().contains(&name);
                json!({
                    "name": name,
                    "data_type": {"base": {"type": base_type(table, name)}},
                    "nullable": !key,
                    "primary_key": key,
                    "description": column_description(table, name),
                })
            })
            .collect();
    } else {
        manifest["primary_key"] = json!(table.primary_key());
        manifest["metadata"] = json!([{"key": "KBC.description", "value": table.description()}]);
        manifest["column_metadata"] = columns
            .iter()
            .map(|&name| {
                let key = table.primary_key().contains(&name);
                let metadata = json!([
                    {"key": "KBC.datatype.basetype", "value": base_type(table, name)},
                    {"key": "KBC.datatype.nullable", "value": if key { "0" } else { "1" }},
                    {"key": "KBC.description", "value": column_description(table, name)},
                ]);
                (name.to_owned(), metadata)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    manifest
}

/// Storage's base type of a column: ids and codes INTEGER, flags BOOLEAN, `*_at` TIMESTAMP, the
/// rest (durations, humanized texts, JSON objects) STRING.
fn base_type(table: Table, column: &str) -> &'static str {
    #[rustfmt::skip]
    const INTEGERS: &[&str] = &[
        "id", "trigger_id", "account_id", "environment_id", "project_id", "job_definition_id",
        "job_id", "status", "deferring_run_id", "retrying_run_id", "run_id", "index",
        "rows_affected", "failures",
    ];
    match (table, column) {
        // dbt's node status is a word: success, error, fail, pass, skipped, ...
        (Table::RunResults, "status") => return "STRING",
        (_, "execution_time") => return "FLOAT",
        _ => {}
    }
    const BOOLEANS: &[&str] = &[
        "artifacts_saved",
        "has_docs_generated",
        "has_sources_generated",
        "notifications_sent",
        "in_progress",
        "is_complete",
        "is_success",
        "is_error",
        "is_cancelled",
        "is_running",
        "can_retry",
        "used_repo_cache",
        "scribe_enabled",
    ];
    if INTEGERS.contains(&column) {
        "INTEGER"
    } else if BOOLEANS.contains(&column) {
        "BOOLEAN"
    } else if column.ends_with("_at") {
        "TIMESTAMP"
    } else {
        "STRING"
    }
}

fn column_description(table: Table, column: &str) -> &'static str {
    match (table, column) {
        (Table::RunSteps, "name") => return "The step, e.g. Invoke dbt build",
        (Table::RunSteps, "status") => {
            return "Step status: 1 Queued, 3 Running, 10 Success, 20 Error, 30 Cancelled"
        }
        (Table::RunSteps, "duration") => return "How long the step took",
        (Table::RunResults, "status") => {
            return "dbt's status: success, error, fail, pass, warn, skipped, runtime error"
        }
        (Table::RunResults, "message") => return "dbt's message, e.g. the error",
        _ => {}
    }
    match column {
        "run_id" => "dbt Cloud run id",
        "index" => "The step's position in the run, from 1",
        "logs" => "The end of the step's log (at most 10,000 characters)",
        "unique_id" => "dbt's node id, e.g. model.jaffle_shop.orders",
        "resource_type" => "model, test, seed, snapshot, ... (from unique_id)",
        "execution_time" => "Seconds dbt spent on the node",
        "rows_affected" => "Rows the node affected, as the adapter reported",
        "failures" => "Failing rows of a test",
        "thread_id" => "dbt thread that ran the node",
        "compile_started_at" | "compile_completed_at" => "When compiling the node started or ended",
        "execute_started_at" | "execute_completed_at" => "When executing the node started or ended",
        "adapter_response" => "The adapter's response (JSON)",
        "id" => "dbt Cloud run id",
        "trigger_id" => "Id of the run's trigger",
        "account_id" => "dbt Cloud account id",
        "environment_id" => "Deployment environment id",
        "project_id" => "dbt project id",
        "job_definition_id" | "job_id" => "dbt Cloud job id",
        "status" => {
            "Run status: 1 Queued, 2 Starting, 3 Running, 10 Success, 20 Error, 30 Cancelled"
        }
        "status_humanized" => "Run status in words",
        "status_message" => "dbt Cloud's message on the run's outcome",
        "dbt_version" => "dbt version the run used",
        "git_branch" => "Git branch checked out",
        "git_sha" => "Git commit checked out",
        "owner_thread_id" | "executed_by_thread_id" => "dbt Cloud worker that ran it",
        "deferring_run_id" => "Run whose state this run deferred to",
        "retrying_run_id" => "Run this one retried",
        "artifacts_saved" => "Whether the run's artifacts were saved",
        "artifact_s3_path" => "Where dbt Cloud stores the artifacts",
        "has_docs_generated" => "Whether docs were generated",
        "has_sources_generated" => "Whether source freshness was generated",
        "notifications_sent" => "Whether notifications were sent",
        "blocked_by" => "Runs this one waited for (JSON list)",
        "created_at" => "When the run was created (triggered)",
        "updated_at" => "When the run was last updated",
        "dequeued_at" => "When a worker picked the run up",
        "started_at" => "When the run began executing",
        "finished_at" => "When the run finished",
        "last_checked_at" => "When dbt Cloud last checked the run",
        "last_heartbeat_at" => "The run's last heartbeat",
        "should_start_at" => "When a scheduled run was due",
        "trigger" => "The trigger: cause and overrides (JSON)",
        "job" => "The job definition (JSON)",
        "environment" => "The environment (JSON)",
        "run_steps" => "The run's steps (JSON list)",
        "in_progress" => "Whether the run was still in progress",
        "is_complete" => "Whether the run had finished",
        "is_success" => "Whether the run succeeded",
        "is_error" => "Whether the run ended in error",
        "is_cancelled" => "Whether the run was cancelled",
        "is_running" => "Whether the run was running",
        "duration" => "Time from creation to finish (HH:MM:SS)",
        "queued_duration" => "Time spent queued (HH:MM:SS)",
        "run_duration" => "Time spent running (HH:MM:SS)",
        "duration_humanized" | "queued_duration_humanized" | "run_duration_humanized" => {
            "The duration in words"
        }
        "created_at_humanized" | "finished_at_humanized" => {
            "The time in words, relative to the answer"
        }
        "can_retry" => "Whether the run can be retried from its point of failure",
        "retry_not_supported_reason" => "Why the run cannot be retried",
        "href" => "The run's page in dbt Cloud",
        "used_repo_cache" => "Whether the run used the repository cache",
        "scribe_enabled" => "dbt Cloud internal flag",
        _ => "A field of the dbt Cloud run",
    }
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
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&Value::Null)), "");
        assert_eq!(cell(Some(&json!("a \"b\""))), "a \"b\"");
        assert_eq!(cell(Some(&json!(70403103931_u64))), "70403103931");
        assert_eq!(cell(Some(&json!(1.5))), "1.5");
        assert_eq!(cell(Some(&json!(false))), "false");
        assert_eq!(
            cell(Some(&json!({"cause": "x", "n": [1, null]}))),
            r#"{"cause":"x","n":[1,null]}"#
        );
    }

    #[test]
    fn long_logs_keep_their_end() {
        assert_eq!(tail("short", 10), "short");
        assert_eq!(tail("0123456789abc", 4), "[first 9 characters cut]\n9abc");
        assert_eq!(tail("ééééé", 2), "[first 3 characters cut]\néé");
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
    fn bucket_names() {
        assert_eq!(bucket_for(None), "in.c-dbt-cloud-job-trigger-000000000");
        assert_eq!(bucket_for(Some("")), "in.c-dbt-cloud-job-trigger-000000000");
        assert_eq!(
            bucket_for(Some("12345")),
            "in.c-dbt-cloud-job-trigger-12345"
        );
        assert_eq!(
            bucket_for(Some("a b/c")),
            "in.c-dbt-cloud-job-trigger-a-b-c"
        );
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
        .map(|c| (c, base_type(Table::Run, c)))
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
    fn every_column_has_its_own_description() {
        for table in [
            Table::Trigger,
            Table::Run,
            Table::RunSteps,
            Table::RunResults,
        ] {
            for column in table.columns() {
                assert_ne!(
                    column_description(table, column),
                    "A field of the dbt Cloud run",
                    "{column}"
                );
            }
        }
    }

    #[test]
    fn every_run_column_is_a_field_the_run_keeps() {
        for table in [Table::Trigger, Table::Run] {
            for column in table.columns() {
                assert!(
                    RUN_FIELDS.contains(column),
                    "{column} of {} is skipped when a run is read",
                    table.name()
                );
            }
        }
    }

    #[test]
    fn column_lists_have_no_duplicates() {
        for table in [
            Table::Trigger,
            Table::Run,
            Table::RunSteps,
            Table::RunResults,
        ] {
            let mut columns = table.columns().to_vec();
            columns.sort_unstable();
            columns.dedup();
            assert_eq!(columns.len(), table.columns().len(), "{table:?}");
        }
    }
}
