//! The output tables: their columns (one catalogue per table: name, Storage base type,
//! description), their rows, and their manifests, written by one [`Writer`].
//!
//! Existing users' incremental Storage tables have the columns listed in
//! `docs/output-tables.md`; a load whose CSV lacks one of them fails. So the columns are fixed
//! here, in that order, whatever the API answered (a missing field is an empty cell), and new
//! columns only ever go at the end.

use std::io::{BufWriter, Seek, SeekFrom, Write};

use anyhow::Result;
use log::info;
use serde_json::{json, Value};
use tempfile::NamedTempFile;

use crate::data_folder::DataFolder;
use crate::dbt_cloud::{FieldType, Run, RunStep, RUN_FIELDS};
use crate::error::Bug;
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
    fn name(self) -> &'static str {
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

const RUN_STEPS_COLUMNS: &[Column] = &[
    column("run_id", Base::Integer, "dbt Cloud run id"),
    column(
        "index",
        Base::Integer,
        "The step's position in the run, from 1",
    ),
    column("name", Base::String, "The step, e.g. Invoke dbt build"),
    column(
        "status",
        Base::Integer,
        "Step status: 1 Queued, 3 Running, 10 Success, 20 Error, 30 Cancelled",
    ),
    column("status_humanized", Base::String, "Run status in words"),
    column(
        "started_at",
        Base::Timestamp,
        "When the run began executing",
    ),
    column("finished_at", Base::Timestamp, "When the run finished"),
    column("duration", Base::String, "How long the step took"),
    column(
        "logs",
        Base::String,
        "The end of the step's log (at most 10,000 characters)",
    ),
];

const RUN_RESULTS_COLUMNS: &[Column] = &[
    column("run_id", Base::Integer, "dbt Cloud run id"),
    column(
        "unique_id",
        Base::String,
        "dbt's node id, e.g. model.jaffle_shop.orders",
    ),
    column(
        "resource_type",
        Base::String,
        "model, test, seed, snapshot, ... (from unique_id)",
    ),
    // dbt's node status is a word: success, error, fail, pass, skipped, ...
    column(
        "status",
        Base::String,
        "dbt's status: success, error, fail, pass, warn, skipped, runtime error",
    ),
    column(
        "execution_time",
        Base::Float,
        "Seconds dbt spent on the node",
    ),
    column(
        "rows_affected",
        Base::Integer,
        "Rows the node affected, as the adapter reported",
    ),
    column("failures", Base::Integer, "Failing rows of a test"),
    column("message", Base::String, "dbt's message, e.g. the error"),
    column("thread_id", Base::String, "dbt thread that ran the node"),
    column(
        "compile_started_at",
        Base::Timestamp,
        "When compiling the node started or ended",
    ),
    column(
        "compile_completed_at",
        Base::Timestamp,
        "When compiling the node started or ended",
    ),
    column(
        "execute_started_at",
        Base::Timestamp,
        "When executing the node started or ended",
    ),
    column(
        "execute_completed_at",
        Base::Timestamp,
        "When executing the node started or ended",
    ),
    column(
        "adapter_response",
        Base::String,
        "The adapter's response (JSON)",
    ),
    column(
        "step_index",
        Base::Integer,
        "The run step whose run_results.json holds the node (0 when dbt Cloud listed no steps)",
    ),
    column(
        "step_name",
        Base::String,
        "That step, e.g. Invoke dbt build",
    ),
];

const SOURCE_FRESHNESS_COLUMNS: &[Column] = &[
    column("run_id", Base::Integer, "dbt Cloud run id"),
    column(
        "step_index",
        Base::Integer,
        "The run step whose sources.json holds the source (0 when dbt Cloud listed no steps)",
    ),
    column(
        "unique_id",
        Base::String,
        "dbt's source id, e.g. source.jaffle_shop.raw.orders",
    ),
    column(
        "status",
        Base::String,
        "dbt's verdict: pass, warn, error, or runtime error when the check itself failed",
    ),
    column(
        "max_loaded_at",
        Base::Timestamp,
        "The newest loaded_at_field value dbt found",
    ),
    column("snapshotted_at", Base::Timestamp, "When dbt looked"),
    column(
        "max_loaded_at_time_ago_in_s",
        Base::Float,
        "Seconds between the newest load and the check",
    ),
    column(
        "criteria",
        Base::String,
        "warn_after, error_after and filter, as configured (JSON)",
    ),
    column(
        "error",
        Base::String,
        "Why the check failed (runtime error)",
    ),
    column(
        "execution_time",
        Base::Float,
        "Seconds dbt spent on the check",
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
    fn description(self) -> &'static str {
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
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Trigger => "dbt_cloud_trigger",
            Table::Run => "dbt_cloud_run",
            Table::RunSteps => "dbt_cloud_run_steps",
            Table::RunResults => "dbt_cloud_run_results",
            Table::SourceFreshness => "dbt_cloud_source_freshness",
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
            Table::RunSteps => RUN_STEPS_COLUMNS.to_vec(),
            Table::RunResults => RUN_RESULTS_COLUMNS.to_vec(),
            Table::SourceFreshness => SOURCE_FRESHNESS_COLUMNS.to_vec(),
        }
    }

    fn primary_key(self) -> &'static [&'static str] {
        match self {
            Table::Trigger | Table::Run => &["id"],
            Table::RunSteps => &["run_id", "index"],
            Table::RunResults | Table::SourceFreshness => &["run_id", "step_index", "unique_id"],
        }
    }

    /// Incremental on its key, and `write_always`, so that a failed job still records its run.
    fn manifest(self, bucket: &str, typed: bool) -> Value {
        let mut manifest = json!({
            "destination": format!("{bucket}.{}", self.name()),
            "incremental": true,
            "write_always": true,
            "delimiter": ",",
            "enclosure": "\"",
        });
        let columns = self.columns();
        let key = |column: &Column| self.primary_key().contains(&column.name);
        if typed {
            manifest["manifest_type"] = json!("output");
            manifest["has_header"] = json!(true);
            manifest["description"] = json!(self.description());
            manifest["schema"] = columns
                .iter()
                .map(|column| {
                    json!({
                        "name": column.name,
                        "data_type": {"base": {"type": column.base.name()}},
                        "nullable": !key(column),
                        "primary_key": key(column),
                        "description": column.description,
                    })
                })
                .collect();
        } else {
            manifest["primary_key"] = json!(self.primary_key());
            manifest["metadata"] = json!([{"key": "KBC.description", "value": self.description()}]);
            manifest["column_metadata"] = columns
                .iter()
                .map(|column| {
                    let metadata = json!([
                        {"key": "KBC.datatype.basetype", "value": column.base.name()},
                        {"key": "KBC.datatype.nullable", "value": if key(column) { "0" } else { "1" }},
                        {"key": "KBC.description", "value": column.description},
                    ]);
                    (column.name.to_owned(), metadata)
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        manifest
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

/// Rows of one table, checked against its columns.
pub struct Rows<'a> {
    table: Table,
    width: usize,
    writer: csv::Writer<&'a mut dyn Write>,
    count: usize,
}

impl<'a> Rows<'a> {
    fn new(table: Table, out: &'a mut dyn Write) -> Rows<'a> {
        Rows {
            table,
            width: table.columns().len(),
            writer: csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(out),
            count: 0,
        }
    }

    pub fn row<I, S>(&mut self, cells: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        // The sink of every cell: the token masked where a server echoed it, and no cell past
        // Keboola's limit.
        let record: csv::ByteRecord = cells.into_iter().map(|cell| kept(cell.as_ref())).collect();
        if record.len() != self.width {
            return Err(Bug(format!(
                "a row of {} has {} cells for {} columns",
                self.table.name(),
                record.len(),
                self.width
            ))
            .into());
        }
        self.writer.write_byte_record(&record)?;
        self.count += 1;
        Ok(())
    }
}

/// Keboola refuses a cell larger than 16 MB; the fields are bounded far below that already
/// ([`crate::dbt_cloud::FIELD_BUDGET`]), so this only guards what nothing else bounds.
const CELL_LIMIT: usize = 4_000_000;

/// A cell as written: the token masked, and cut when longer than [`CELL_LIMIT`].
fn kept(cell: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(cell) else {
        return cell.to_vec();
    };
    let text = crate::secret::mask(text);
    if text.len() <= CELL_LIMIT {
        return text.into_owned().into_bytes();
    }
    let mut end = CELL_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[end..].chars().count();
    format!("{}{}", &text[..end], crate::long_strings::mark(cut as u64)).into_bytes()
}

/// Writes the tables of one job into `out/tables`: each CSV and its manifest whole or not at all,
/// into the job's bucket, with native-types manifests when the project uses them (else legacy
/// ones with the base types as column metadata).
pub struct Writer<'a> {
    folder: &'a DataFolder,
    bucket: String,
    typed: bool,
}

impl<'a> Writer<'a> {
    pub fn new(folder: &'a DataFolder, bucket: String, typed: bool) -> Writer<'a> {
        Writer {
            folder,
            bucket,
            typed,
        }
    }

    pub fn folder(&self) -> &'a DataFolder {
        self.folder
    }

    /// A run table (trigger or run): the one row of `run`.
    pub fn run(&self, table: Table, run: &Run) -> Result<()> {
        let columns = table.columns();
        self.write(table, |rows| {
            rows.row(
                columns
                    .iter()
                    .map(|column| cell(run.cell(column.name).as_deref())),
            )
        })?;
        info!(
            "Wrote table {} (run {}, {})",
            table.name(),
            run.id,
            run.status
        );
        Ok(())
    }

    /// The run as last seen, and its steps.
    pub fn run_and_steps(&self, run: &Run) -> Result<()> {
        self.run(Table::Run, run)?;
        let steps = self.steps(run)?;
        info!("Wrote table {} ({steps} steps)", Table::RunSteps.name());
        Ok(())
    }

    /// A row per step the run reported (none when it has not started).
    fn steps(&self, run: &Run) -> Result<usize> {
        let run_id = run.id.to_string();
        self.write(Table::RunSteps, |rows| {
            run.steps
                .iter()
                .try_for_each(|step| rows.row(step_row(&run_id, step)))
        })
    }

    /// A table whose rows come in parts (a run step's file each), every part kept whole or left
    /// out: `fill` writes a part's rows and says whether to keep them (`None`: a part already
    /// written under another name); a part whose `fill` fails (a file that is not what it should
    /// be) is left out, its error returned in its place. Each part goes to a scratch file first,
    /// so that memory stays flat however many rows it has. Returns the rows written and each
    /// part's outcome; no table when no part was kept; `Err` when the table itself could not be
    /// written.
    #[allow(clippy::type_complexity)]
    pub fn parts<P, T>(
        &self,
        table: Table,
        parts: &[P],
        mut fill: impl FnMut(&P, &mut Rows) -> Result<Option<T>>,
    ) -> Result<(usize, Vec<Result<Option<T>>>)> {
        let mut kept: Vec<(NamedTempFile, usize)> = Vec::new();
        let mut outcomes = Vec::with_capacity(parts.len());
        for part in parts {
            let scratch = self.folder.scratch_file()?;
            let filled = {
                let mut out = BufWriter::new(scratch.as_file());
                let mut rows = Rows::new(table, &mut out);
                fill(part, &mut rows).and_then(|value| {
                    rows.writer.flush()?;
                    Ok((value, rows.count))
                })
            };
            outcomes.push(filled.map(|(value, count)| {
                if value.is_some() {
                    kept.push((scratch, count));
                }
                value
            }));
        }
        if kept.is_empty() {
            return Ok((0, outcomes));
        }
        let count = self.write_csv(table, |out| {
            let mut count = 0;
            for (part, rows) in &mut kept {
                let part = part.as_file_mut();
                part.seek(SeekFrom::Start(0))?;
                std::io::copy(part, out)?;
                count += *rows;
            }
            Ok(count)
        })?;
        Ok((count, outcomes))
    }

    /// `<table>.csv`, its rows given by `rows`, and its manifest. Returns the number of rows.
    fn write(&self, table: Table, rows: impl FnOnce(&mut Rows) -> Result<()>) -> Result<usize> {
        self.write_csv(table, |out| {
            let mut written = Rows::new(table, out);
            rows(&mut written)?;
            written.writer.flush()?;
            Ok(written.count)
        })
    }

    /// `<table>.csv`: its header, then what `body` writes (returning how many rows), and its
    /// manifest.
    fn write_csv(
        &self,
        table: Table,
        body: impl FnOnce(&mut dyn Write) -> Result<usize>,
    ) -> Result<usize> {
        let tables = self.folder.tables_dir();
        let columns = table.columns();
        let mut count = 0;
        self.folder
            .write_atomically(&tables.join(format!("{}.csv", table.name())), |out| {
                {
                    let mut header = Rows::new(table, &mut *out);
                    header
                        .writer
                        .write_record(columns.iter().map(|column| column.name))?;
                    header.writer.flush()?;
                }
                count = body(out)?;
                Ok(())
            })?;
        let manifest = table.manifest(&self.bucket, self.typed);
        self.folder.write_atomically(
            &tables.join(format!("{}.csv.manifest", table.name())),
            |out| {
                serde_json::to_writer_pretty(&mut *out, &manifest)?;
                Ok(out.write_all(b"\n")?)
            },
        )?;
        Ok(count)
    }
}

/// A step, in the order of [`RUN_STEPS_COLUMNS`].
fn step_row(run_id: &str, step: &RunStep) -> [String; 9] {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let status_humanized = match &step.status_humanized {
        Some(humanized) => humanized.clone(),
        None => step
            .status_code
            .map(|_| step.status.to_string())
            .unwrap_or_default(),
    };
    [
        run_id.to_owned(),
        step.index.to_string(),
        step.name.clone(),
        step.status_code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        status_humanized,
        text(&step.started_at),
        text(&step.finished_at),
        text(&step.duration),
        tail(step.logs.as_deref().unwrap_or_default(), STEP_LOG_CHARS),
    ]
}

/// Which step of the run a file came from, as the rows name it.
#[derive(Debug, Clone, Copy)]
pub struct StepCells<'a> {
    pub run_id: &'a str,
    pub index: u32,
    pub name: &'a str,
}

/// A node, in the order of [`RUN_RESULTS_COLUMNS`]; numbers exactly as dbt wrote them.
pub fn result_row(step: StepCells, node: &NodeResult) -> [String; 16] {
    let (compile_started, compile_completed) = node.phase("compile");
    let (execute_started, execute_completed) = node.phase("execute");
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    let number = |value: Option<String>| value.unwrap_or_default();
    [
        step.run_id.to_owned(),
        node.unique_id.clone(),
        node.resource_type().to_owned(),
        node.status.clone(),
        number(node.execution_time.map(|t| t.to_string())),
        number(node.rows_affected().map(|n| n.to_string())),
        number(node.failures.map(|n| n.to_string())),
        text(node.message.as_deref()),
        text(node.thread_id.as_deref()),
        text(compile_started),
        text(compile_completed),
        text(execute_started),
        text(execute_completed),
        cell(node.adapter_response.as_ref()),
        step.index.to_string(),
        step.name.to_owned(),
    ]
}

/// A source's freshness, in the order of [`SOURCE_FRESHNESS_COLUMNS`].
pub fn freshness_row(step: StepCells, source: &SourceResult) -> [String; 10] {
    let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
    let number = |value: Option<f64>| value.map(|n| n.to_string()).unwrap_or_default();
    [
        step.run_id.to_owned(),
        step.index.to_string(),
        source.unique_id.clone(),
        source.status.clone(),
        text(source.max_loaded_at.as_deref()),
        text(source.snapshotted_at.as_deref()),
        number(source.max_loaded_at_time_ago_in_s),
        cell(source.criteria.as_ref()),
        text(source.error.as_deref()),
        number(source.execution_time),
    ]
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

    fn base_type(table: Table, name: &str) -> &'static str {
        table
            .columns()
            .into_iter()
            .find(|column| column.name == name)
            .map(|column| column.base.name())
            .unwrap_or("none")
    }

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
        assert_eq!(
            step_row("1", &RunStep::default()).len(),
            Table::RunSteps.columns().len()
        );
        let node: NodeResult =
            serde_json::from_value(json!({"unique_id": "model.a.b", "status": "success"})).unwrap();
        let step = StepCells {
            run_id: "1",
            index: 4,
            name: "Invoke dbt build",
        };
        assert_eq!(
            result_row(step, &node).len(),
            Table::RunResults.columns().len()
        );
        let source: SourceResult =
            serde_json::from_value(json!({"unique_id": "source.a.b.c", "status": "pass"})).unwrap();
        assert_eq!(
            freshness_row(step, &source).len(),
            Table::SourceFreshness.columns().len()
        );
    }
}
