//! The two output tables, one row each, and their manifests.
//!
//! Existing users' incremental Storage tables have the columns listed in
//! `docs/output-tables.md`; a load whose CSV lacks one of them fails. So the columns are fixed
//! here, in that order, whatever the API answered (a missing field is an empty cell), and new
//! columns only ever go at the end.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use crate::data_folder::DataFolder;
use crate::dbt_cloud::Run;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// The Run in the trigger answer.
    Trigger,
    /// The Run from get-run, with its trigger, job and steps.
    Run,
}

#[rustfmt::skip]
const TRIGGER_COLUMNS: &[&str] = &[
    "id", "trigger_id", "account_id", "environment_id", "project_id", "job_definition_id",
    "status", "dbt_version", "git_branch", "git_sha", "status_message", "owner_thread_id",
    "executed_by_thread_id", "deferring_run_id", "artifacts_saved", "artifact_s3_path",
    "has_docs_generated", "has_sources_generated", "notifications_sent", "blocked_by",
    "created_at", "updated_at", "dequeued_at", "started_at", "finished_at", "last_checked_at",
    "last_heartbeat_at", "should_start_at", "trigger", "job", "environment", "run_steps",
    "status_humanized", "in_progress", "is_complete", "is_success", "is_error", "is_cancelled",
    "duration", "queued_duration", "run_duration", "duration_humanized",
    "queued_duration_humanized", "run_duration_humanized", "created_at_humanized",
    "finished_at_humanized", "retrying_run_id", "can_retry", "retry_not_supported_reason",
    "job_id", "is_running", "href", "used_repo_cache", "scribe_enabled",
];

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
    pub fn name(self) -> &'static str {
        match self {
            Table::Trigger => "dbt_cloud_trigger",
            Table::Run => "dbt_cloud_run",
        }
    }

    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Trigger => TRIGGER_COLUMNS,
            Table::Run => RUN_COLUMNS,
        }
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

/// Writes `<table>.csv` and its manifest into `out/tables`, each whole or not at all.
pub fn write(folder: &DataFolder, table: Table, run: &Run, bucket: &str) -> Result<PathBuf> {
    let csv_path = folder.tables_dir().join(format!("{}.csv", table.name()));
    folder.write_atomically(&csv_path, |out| write_csv(out, table, run))?;
    let manifest = json!({
        "destination": format!("{bucket}.{}", table.name()),
        "incremental": true,
        "primary_key": ["id"],
        "write_always": true,
        "delimiter": ",",
        "enclosure": "\"",
    });
    let manifest_path = folder
        .tables_dir()
        .join(format!("{}.csv.manifest", table.name()));
    folder.write_atomically(&manifest_path, |out| {
        serde_json::to_writer_pretty(&mut *out, &manifest)?;
        Ok(out.write_all(b"\n")?)
    })?;
    Ok(csv_path)
}

fn write_csv(out: &mut dyn Write, table: Table, run: &Run) -> Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    writer.write_record(table.columns())?;
    writer.write_record(table.columns().iter().map(|column| cell(run.field(column))))?;
    writer.flush()?;
    Ok(())
}

/// null → empty; strings as they are; numbers as JSON writes them; true/false; objects and
/// lists as compact JSON, so that SQL can parse them.
fn cell(value: Option<&Value>) -> String {
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
    fn column_lists_have_no_duplicates() {
        for table in [Table::Trigger, Table::Run] {
            let mut columns = table.columns().to_vec();
            columns.sort_unstable();
            columns.dedup();
            assert_eq!(columns.len(), table.columns().len(), "{table:?}");
        }
    }
}
