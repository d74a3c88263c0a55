//! The emulator's world: accounts, tokens, jobs and runs, and how a run looks at a given moment.
//! A run's state is derived from the time since it was created, so nothing needs a clock thread.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::scenario::{Account, Artifact, Job, Outcome, Timeline};

pub const FIRST_RUN_ID: u64 = 70403103000;

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub id: u64,
    pub job_id: u64,
    pub account_id: u64,
    pub trigger: Value,
    pub created: Instant,
    pub created_at: DateTime<Utc>,
    pub cancelled_after: Option<Duration>,
    /// Who cancelled it, in `status_message` (`Cancelled by user.` when `None`).
    pub cancelled_because: Option<String>,
    /// The job's, when the run was created (history runs have their own).
    pub timeline: Timeline,
    pub outcome: Outcome,
    /// Its end has enqueued the runs of the jobs chained to its job (`crate::chain`).
    pub children_enqueued: bool,
}

#[derive(Default)]
pub struct State {
    pub base_url: String,
    pub accounts: HashMap<u64, Account>,
    /// Token → the accounts it may see.
    pub tokens: HashMap<String, Vec<u64>>,
    pub jobs: BTreeMap<u64, Job>,
    pub runs: BTreeMap<u64, RunRecord>,
    /// How long after a run ends the runs of the jobs chained to its job are enqueued.
    pub chain_delay: Duration,
}

/// The phase of a run at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Starting,
    Running { steps_done: usize },
    Final { status: u64, at: Duration },
}

pub struct RunView<'a> {
    pub run: &'a RunRecord,
    pub job: &'a Job,
    pub age: Duration,
    phase: Phase,
}

impl State {
    pub fn view(&self, run_id: u64, now: Instant) -> Option<RunView<'_>> {
        let run = self.runs.get(&run_id)?;
        let job = self.jobs.get(&run.job_id)?;
        let age = now.saturating_duration_since(run.created);
        Some(RunView {
            run,
            job,
            age,
            phase: phase(run, job, age),
        })
    }

    /// Someone cancels the run now (nothing changes once it is final).
    pub fn cancel(&mut self, run_id: u64, now: Instant) {
        let Some(age) = self.view(run_id, now).map(|view| view.age) else {
            return;
        };
        if let Some(run) = self.runs.get_mut(&run_id) {
            run.cancelled_after.get_or_insert(age);
        }
    }

    pub fn next_run_id(&self) -> u64 {
        self.runs
            .keys()
            .next_back()
            .map_or(FIRST_RUN_ID, |id| id + 1)
    }
}

impl RunRecord {
    /// When the run ends (after its creation) and with which status, as things stand: a
    /// cancel moves the end earlier.
    pub fn ending(&self) -> (Duration, u64) {
        let natural_end = self.timeline.total();
        match self.cancelled_after {
            Some(cancel) if cancel < natural_end => (cancel, 30),
            _ => (
                natural_end,
                match self.outcome {
                    Outcome::Success => 10,
                    Outcome::Error => 20,
                    Outcome::Cancelled => 30,
                },
            ),
        }
    }
}

fn phase(run: &RunRecord, job: &Job, age: Duration) -> Phase {
    let t = &run.timeline;
    let (end, status) = run.ending();
    if age >= end {
        return Phase::Final { status, at: end };
    }
    if age < t.queued {
        Phase::Queued
    } else if age < t.queued + t.starting {
        Phase::Starting
    } else {
        let into = (age - t.queued - t.starting).as_secs_f64() / t.running.as_secs_f64().max(1e-9);
        let steps_done =
            ((into * job.steps.len() as f64) as usize).min(job.steps.len().saturating_sub(1));
        Phase::Running { steps_done }
    }
}

impl RunView<'_> {
    pub fn status(&self) -> u64 {
        match self.phase {
            Phase::Queued => 1,
            Phase::Starting => 2,
            Phase::Running { .. } => 3,
            Phase::Final { status, .. } => status,
        }
    }

    fn finished_after(&self) -> Option<Duration> {
        match self.phase {
            Phase::Final { at, .. } => Some(at),
            _ => None,
        }
    }

    /// A run cancelled before it started has no artifacts, ever.
    fn started_after(&self) -> Option<Duration> {
        let start = self.run.timeline.queued + self.run.timeline.starting;
        match self.finished_after() {
            Some(end) if end <= start => None,
            _ if self.age >= start => Some(start),
            _ => None,
        }
    }

    pub fn artifacts_saved(&self) -> bool {
        match (self.finished_after(), self.started_after()) {
            (Some(end), Some(_)) => self.age >= end + self.job.artifacts_saved_after,
            _ => false,
        }
    }

    /// The artifacts of `step` (the last step's for `None`). `None`: the run, or that step,
    /// produced none; `Some(empty)`: not uploaded yet.
    pub fn listed_artifacts(&self, step: Option<usize>) -> Option<&[Artifact]> {
        let end = self.finished_after()?;
        self.started_after()?;
        let artifacts = self.job.artifacts_of_step(step)?;
        if self.age >= end + self.job.artifacts_listed_after {
            Some(artifacts)
        } else {
            Some(&[])
        }
    }

    pub fn to_json(&self, base_url: &str, related: &[String]) -> Value {
        let run = self.run;
        let job = self.job;
        let status = self.status();
        let at = |offset: Duration| run_timestamp(run.created_at + offset);
        let finished_after = self.finished_after();
        // A run cancelled while queued was never dequeued.
        let reached =
            |offset: Duration| self.age >= offset && finished_after.is_none_or(|end| end >= offset);
        let dequeued_after = reached(run.timeline.queued).then_some(run.timeline.queued);
        let started_after = self.started_after();
        let total = finished_after.unwrap_or(self.age);
        let queued = dequeued_after.unwrap_or(self.age);
        let running = started_after.map_or(Duration::ZERO, |start| total.saturating_sub(start));
        let includes = |name: &str| related.iter().any(|r| r == name);
        let is_final = finished_after.is_some();
        let status_message = match status {
            20 => json!(job.error_message),
            30 => json!(run
                .cancelled_because
                .as_deref()
                .unwrap_or("Cancelled by user.")),
            _ => Value::Null,
        };
        json!({
            "id": run.id,
            "trigger_id": run.id + 1_000_000,
            "account_id": run.account_id,
            "environment_id": job.environment_id,
            "project_id": job.project_id,
            "job_definition_id": job.id,
            "status": status,
            "dbt_version": job.dbt_version,
            "git_branch": started_after.map(|_| "main"),
            "git_sha": started_after.map(|_| "8d6f1f2c0a5e4b3f9e7d6c5b4a39281706f5e4d3"),
            "status_message": status_message,
            "owner_thread_id": Value::Null,
            "executed_by_thread_id": started_after.map(|_| "dbt-run-70403103-abcde"),
            "deferring_run_id": Value::Null,
            "artifacts_saved": self.artifacts_saved(),
            "artifact_s3_path": started_after.map(|_| format!("prod-us-c1/runs/{}/artifacts/target", run.id)),
            "has_docs_generated": false,
            "has_sources_generated": false,
            "notifications_sent": is_final,
            "blocked_by": [],
            "created_at": at(Duration::ZERO),
            "updated_at": at(finished_after.unwrap_or(self.age)),
            "dequeued_at": dequeued_after.map(at),
            "started_at": started_after.map(at),
            "finished_at": finished_after.map(at),
            "last_checked_at": started_after.map(|_| at(total)),
            "last_heartbeat_at": started_after.map(|_| at(total)),
            "should_start_at": Value::Null,
            "trigger": if includes("trigger") { run.trigger.clone() } else { Value::Null },
            "job": if includes("job") { internal_job_json(job) } else { Value::Null },
            "environment": if includes("environment") { environment_json(job) } else { Value::Null },
            "run_steps": if includes("run_steps") { self.steps_json() } else { json!([]) },
            "deprecation": Value::Null,
            "status_humanized": status_humanized(status),
            "in_progress": !is_final,
            "is_complete": is_final,
            "is_success": status == 10,
            "is_error": status == 20,
            "is_cancelled": status == 30,
            "duration": hms(total),
            "queued_duration": hms(queued),
            "run_duration": hms(running),
            "duration_humanized": humanized(total),
            "queued_duration_humanized": humanized(queued),
            "run_duration_humanized": humanized(running),
            "created_at_humanized": format!("{} ago", humanized(self.age)),
            "finished_at_humanized": finished_after.map_or("0 minutes from now".to_owned(), |end| format!("{} ago", humanized(self.age - end))),
            "retrying_run_id": Value::Null,
            "can_retry": status == 20 && job.retry_refused.is_none(),
            "retry_not_supported_reason": match (status, &job.retry_refused) {
                (20, None) => Value::Null,
                (20, Some(reason)) => json!(reason),
                _ => json!("RETRY_NOT_FAILED_RUN"),
            },
            "job_id": job.id,
            "is_running": status == 3,
            "href": format!("{base_url}/deploy/{}/projects/{}/runs/{}/", run.account_id, job.project_id, run.id),
            "used_repo_cache": Value::Null,
            "audit": Value::Null,
            "scribe_enabled": true,
        })
    }

    fn steps_json(&self) -> Value {
        let job = self.job;
        let count = match self.phase {
            Phase::Queued | Phase::Starting => 0,
            Phase::Running { steps_done } => (steps_done + 1).min(job.steps.len()),
            Phase::Final { .. } if self.started_after().is_none() => 0,
            Phase::Final { .. } => job.steps.len(),
        };
        let steps: Vec<Value> = job.steps[..count]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let last = i + 1 == count;
                let failing = job.failing_step.unwrap_or(job.steps.len());
                let status = match self.phase {
                    Phase::Running { .. } if last => 3,
                    Phase::Final { status: 20, .. } if i + 1 == failing => 20,
                    Phase::Final { status: 20, .. } => 10,
                    Phase::Final { status, .. } if last => status,
                    _ => 10,
                };
                json!({
                    "run_id": self.run.id,
                    "account_id": self.run.account_id,
                    "index": job
                        .step_indexes
                        .as_ref()
                        .and_then(|indexes| indexes.get(i).copied())
                        .unwrap_or(i as i64 + 1),
                    "status": status,
                    "name": name,
                    "logs": match (&job.failed_step_log, status) {
                        (Some(log), 20) => log.clone(),
                        _ => format!("{name}\n"),
                    },
                    "debug_logs": Value::Null,
                    "log_path": Value::Null,
                    "debug_log_path": Value::Null,
                })
            })
            .collect();
        Value::Array(steps)
    }
}

/// The trigger object the run answer carries: every RunTrigger field of the spec.
pub fn trigger_json(job: &Job, body: &serde_json::Map<String, Value>) -> Value {
    let field = |name: &str| body.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "cause": field("cause"),
        "job_definition_id": job.id,
        "git_branch": field("git_branch"),
        "git_sha": field("git_sha"),
        "azure_pull_request_id": field("azure_pull_request_id"),
        "github_pull_request_id": field("github_pull_request_id"),
        "gitlab_merge_request_id": field("gitlab_merge_request_id"),
        "non_native_pull_request_id": field("non_native_pull_request_id"),
        "schema_override": field("schema_override"),
        "dbt_version_override": field("dbt_version_override"),
        "threads_override": field("threads_override"),
        "target_name_override": field("target_name_override"),
        "generate_docs_override": field("generate_docs_override"),
        "timeout_seconds_override": field("timeout_seconds_override"),
        "steps_override": field("steps_override"),
        "cause_category": "api",
    })
}

fn internal_job_json(job: &Job) -> Value {
    json!({
        "account_id": job.account_id,
        "project_id": job.project_id,
        "environment_id": job.environment_id,
        "name": job.name,
        "dbt_version": Value::Null,
        "deferring_environment_id": Value::Null,
        "deferring_job_definition_id": Value::Null,
        "description": "",
        "execute_steps": ["dbt build"],
        "execution": {"timeout_seconds": 0},
        "generate_docs": false,
        "job_type": "scheduled",
        "lifecycle_webhooks": false,
        "run_compare_changes": false,
        "compare_changes_flags": "--select state:modified",
        "run_generate_sources": false,
        "run_lint": false,
        "errors_on_lint_failure": true,
        "cost_optimization_features": [],
        "settings": {"threads": 4, "target_name": "default"},
        "state": job.state.code(),
        "triggers_on_draft_pr": false,
        "triggers": {"github_webhook": false, "schedule": true, "git_provider_webhook": false, "on_merge": false, "custom_branch_only": false},
        "schedule": {"cron": "0 2 * * *", "date": "custom_cron", "time": "every_hour"},
    })
}

/// A job as get-job and list-jobs answer it (HumanReadableJobDefinitionResponse): the run's
/// job definition with an id, a few more fields, and a schedule in words.
pub fn job_json(job: &Job, related: &[String]) -> Value {
    let mut answer = internal_job_json(job);
    let environment = if related.iter().any(|r| r == "environment") {
        environment_json(job)
    } else {
        Value::Null
    };
    let more = json!({
        "id": job.id,
        "is_deferrable": true,
        "lifecycle_webhooks_url": Value::Null,
        "raw_dbt_version": Value::Null,
        "run_failure_count": 0,
        "job_completion_trigger_condition": job.completion_trigger.as_ref().map(|trigger| json!({
            "condition": {
                "job_id": trigger.job_id,
                "project_id": trigger.project_id,
                "statuses": trigger.statuses,
            }
        })),
        // Not in the spec, but in real answers (dbt-jobs-as-code, OpenMetadata's recording).
        "deactivated": job.deactivated,
        "deactivation_reason": Value::Null,
        "created_at": "2024-03-25T13:47:20.129690Z",
        "updated_at": "2024-03-25T13:47:20.129707Z",
        "account": Value::Null,
        "project": Value::Null,
        "environment": environment,
        "fusion_readiness": Value::Null,
        "schedule": {"cron": "0 2 * * *", "date": {"type": "custom_cron", "cron": "0 2 * * *"}, "time": {"type": "every_hour", "interval": 1}},
        "generate_sources": false,
    });
    for (key, value) in more.as_object().unwrap() {
        answer[key] = value.clone();
    }
    answer
}

fn environment_json(job: &Job) -> Value {
    json!({
        "account_id": job.account_id,
        "project_id": job.project_id,
        "name": job.environment_name,
        "connection_id": 11,
        "credentials_id": 22,
        "repository_id": 33,
        "extended_attributes_id": Value::Null,
        "custom_branch": Value::Null,
        "use_custom_branch": false,
        "dbt_project_subdirectory": Value::Null,
        "dbt_version": job.dbt_version,
        "supports_docs": true,
        "deployment_type": match job.environment_type.as_str() {
            "development" => Value::Null,
            other => json!(other),
        },
        "type": match job.environment_type.as_str() {
            "development" => "development",
            _ => "deployment",
        },
        "created_by_id": Value::Null,
        "state": 1,
    })
}

fn status_humanized(status: u64) -> &'static str {
    match status {
        1 => "Queued",
        2 => "Starting",
        3 => "Running",
        10 => "Success",
        20 => "Error",
        30 => "Cancelled",
        _ => "Unknown",
    }
}

fn run_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string()
}

fn hms(duration: Duration) -> String {
    let s = duration.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn humanized(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..=59 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        _ => format!(
            "{} minute{}, {} seconds",
            s / 60,
            if s / 60 == 1 { "" } else { "s" },
            s % 60
        ),
    }
}
