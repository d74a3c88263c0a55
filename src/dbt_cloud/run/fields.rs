//! The fields of dbt Cloud's run that a Run keeps: the run and trigger tables' columns, with
//! what each holds and means.

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
