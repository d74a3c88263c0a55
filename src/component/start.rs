//! How the run comes to be: followed when `run_id` names it, adopted when one is already going
//! (`if_running: wait`), left alone or refused (`skip`, `fail`), triggered after cancelling those
//! (`replace`), rerun from the point of failure (`retry_failed`, when dbt Cloud can), or triggered
//! anew.

use std::fmt;
use std::time::Instant;

use anyhow::Result;
use log::info;

use crate::config::{IfRunning, RunRef, StartPolicy};
use crate::dbt_cloud::{Budget, DbtCloud, JobId, Run, RunStatus, Start};
use crate::error::{user_error, UserError};

/// How the run we follow came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Triggered,
    /// Already in progress, and waited for instead of triggering.
    Adopted,
    Rerun,
    /// Named by `run_id`: followed, not started.
    Followed,
}

/// What the start came to: a run to follow, or one already in progress that `if_running: skip`
/// leaves alone.
pub enum Begun {
    Run(Run, Started),
    Skipped(Run),
}

impl fmt::Display for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Started::Triggered => "Triggered",
            Started::Adopted => "Adopted",
            Started::Rerun => "Started rerun",
            Started::Followed => "Following",
        })
    }
}

impl Started {
    /// When the run began, in our clock: an adopted or followed run began before us, at its
    /// `created_at` (now when that is unknown or ahead); the others just now.
    pub fn since(self, run: &Run) -> Instant {
        let now = Instant::now();
        if !matches!(self, Started::Adopted | Started::Followed) {
            return now;
        }
        let age = run
            .timestamp("created_at")
            .and_then(|created| (chrono::Utc::now() - created).to_std().ok())
            .unwrap_or_default();
        now.checked_sub(age).unwrap_or(now)
    }
}

pub fn start(client: &DbtCloud, job: JobId, policy: &StartPolicy) -> Result<Begun> {
    if let Some(in_progress) = apply_if_running(client, job, policy.if_running)? {
        return Ok(match policy.if_running {
            IfRunning::Skip => Begun::Skipped(in_progress),
            _ => Begun::Run(in_progress, Started::Adopted),
        });
    }
    if policy.retry_failed && may_rerun(client, job)? {
        let run = client.start_run(job, &Start::Rerun)?;
        return Ok(Begun::Run(run, Started::Rerun));
    }
    if !policy.trigger_overrides.is_empty() {
        let keys: Vec<&str> = policy
            .trigger_overrides
            .keys()
            .map(String::as_str)
            .collect();
        info!("Trigger overrides: {}", keys.join(", "));
    }
    let trigger = Start::Trigger {
        cause: policy.cause.clone(),
        overrides: policy.trigger_overrides.clone(),
    };
    Ok(Begun::Run(
        client.start_run(job, &trigger)?,
        Started::Triggered,
    ))
}

/// The run `run_id` names: that run, which must be of the job, or the job's newest.
pub fn follow(client: &DbtCloud, job: JobId, run: RunRef) -> Result<Run> {
    let found = match run {
        RunRef::Latest => client.newest_run(job)?.ok_or_else(|| {
            UserError::new(format!("Job {job} has no runs to follow (run_id: latest)."))
        })?,
        RunRef::Id(id) => client.get_run(id, Budget::Standard)?,
    };
    let of_job = found
        .field("job_definition_id")
        .or_else(|| found.field("job_id"))
        .and_then(serde_json::Value::as_u64);
    if of_job.is_some_and(|of| of != job.get()) {
        return user_error(format!(
            "Run {} is a run of job {}, not of job {job}: check run_id and the job.",
            found.id,
            of_job.unwrap_or_default()
        ));
    }
    Ok(found)
}

/// The run in progress to adopt (`wait`) or leave alone (`skip`), if the policy says so; cancels
/// them for `replace`, and fails for `fail`.
fn apply_if_running(client: &DbtCloud, job: JobId, policy: IfRunning) -> Result<Option<Run>> {
    if policy == IfRunning::Trigger {
        return Ok(None);
    }
    let in_progress = client.runs_in_progress(job)?;
    match (policy, in_progress.first()) {
        (IfRunning::Wait, Some(newest)) => {
            info!(
                "Run {} of job {job} is already {}: waiting for it instead of triggering (if_running: wait)",
                newest.id, newest.status
            );
            return Ok(Some(newest.clone()));
        }
        (IfRunning::Skip, Some(newest)) => return Ok(Some(newest.clone())),
        (IfRunning::Fail, Some(newest)) => {
            return user_error(format!(
                "Run {} of job {job} is already {}: {}. Nothing was triggered (if_running: fail).",
                newest.id,
                newest.status,
                newest.href.as_deref().unwrap_or("(dbt Cloud sent no link)")
            ))
        }
        (IfRunning::Replace, _) => {
            for run in &in_progress {
                info!(
                    "Cancelling run {} ({}) of job {job} (if_running: replace)",
                    run.id, run.status
                );
                client.cancel_run(run.id, Budget::Standard)?;
            }
        }
        _ => {}
    }
    Ok(None)
}

/// Whether the job's newest run ended in Error and dbt Cloud says it can be retried; when it
/// cannot, the log says why and a fresh run is triggered instead.
fn may_rerun(client: &DbtCloud, job: JobId) -> Result<bool> {
    let Some(newest) = client.newest_run(job)? else {
        return Ok(false);
    };
    if newest.status != RunStatus::Error {
        return Ok(false);
    }
    let can_retry = newest
        .field("can_retry")
        .and_then(serde_json::Value::as_bool);
    if can_retry == Some(false) {
        let reason = newest
            .field("retry_not_supported_reason")
            .and_then(serde_json::Value::as_str);
        info!(
            "The job's newest run {} ended in Error, but dbt Cloud cannot rerun it from the point \
             of failure: {}. Triggering a fresh run instead (retry_failed)",
            newest.id,
            retry_refusal(reason)
        );
        return Ok(false);
    }
    info!(
        "The job's newest run {} ended in Error: rerunning it from the point of failure (retry_failed)",
        newest.id
    );
    Ok(true)
}

/// dbt Cloud's `retry_not_supported_reason`, in words.
fn retry_refusal(reason: Option<&str>) -> String {
    let words = match reason {
        Some("RETRY_UNSUPPORTED_CMD") => {
            "the job runs a command dbt cannot retry (only build, run, test, seed, snapshot and \
             compile can be)"
        }
        Some("RETRY_NOT_LATEST_RUN") => "a newer run of the job exists",
        Some("RETRY_NOT_FAILED_RUN") => "the run did not fail",
        Some("RETRY_NO_RUN_RESULTS") => {
            "the run left no run_results.json to resume from (it failed before dbt ran, e.g. in \
             dbt deps or while cloning)"
        }
        Some(other) => return format!("dbt Cloud gives the reason {other}"),
        None => "dbt Cloud gives no reason",
    };
    format!("{words} ({})", reason.unwrap_or("no code"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_refusals_read_as_words_with_their_code() {
        assert_eq!(
            retry_refusal(Some("RETRY_NOT_LATEST_RUN")),
            "a newer run of the job exists (RETRY_NOT_LATEST_RUN)"
        );
        assert!(retry_refusal(Some("RETRY_UNSUPPORTED_CMD")).ends_with("(RETRY_UNSUPPORTED_CMD)"));
        assert!(retry_refusal(Some("RETRY_NO_RUN_RESULTS"))
            .starts_with("the run left no run_results.json"));
        assert_eq!(
            retry_refusal(Some("RETRY_SOMETHING_NEW")),
            "dbt Cloud gives the reason RETRY_SOMETHING_NEW"
        );
        assert_eq!(retry_refusal(None), "dbt Cloud gives no reason (no code)");
    }
}
