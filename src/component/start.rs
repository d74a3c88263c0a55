//! How the run comes to be: adopted when one is already going (`if_running: wait`), triggered
//! after cancelling those (`replace`), rerun from the point of failure (`retry_failed`), or
//! triggered anew.

use std::fmt;
use std::time::Instant;

use anyhow::Result;
use log::info;

use crate::config::{IfRunning, StartPolicy};
use crate::dbt_cloud::{Budget, DbtCloud, JobId, Run, RunStatus, Start};

/// How the run we follow came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Triggered,
    /// Already in progress, and waited for instead of triggering.
    Adopted,
    Rerun,
}

impl fmt::Display for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Started::Triggered => "Triggered",
            Started::Adopted => "Adopted",
            Started::Rerun => "Started rerun",
        })
    }
}

impl Started {
    /// When the run began, in our clock: an adopted run began before us, at its `created_at`
    /// (now when that is unknown or ahead); the others just now.
    pub fn since(self, run: &Run) -> Instant {
        let now = Instant::now();
        if self != Started::Adopted {
            return now;
        }
        let age = run
            .timestamp("created_at")
            .and_then(|created| (chrono::Utc::now() - created).to_std().ok())
            .unwrap_or_default();
        now.checked_sub(age).unwrap_or(now)
    }
}

pub fn start(client: &DbtCloud, job: JobId, policy: &StartPolicy) -> Result<(Run, Started)> {
    if let Some(adopted) = apply_if_running(client, job, policy.if_running)? {
        return Ok((adopted, Started::Adopted));
    }
    if policy.retry_failed {
        if let Some(newest) = client.newest_run(job)? {
            if newest.status == RunStatus::Error {
                info!(
                    "The job's newest run {} ended in Error: rerunning it from the point of failure (retry_failed)",
                    newest.id
                );
                return Ok((client.start_run(job, &Start::Rerun)?, Started::Rerun));
            }
        }
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
    Ok((client.start_run(job, &trigger)?, Started::Triggered))
}

/// The run in progress to adopt, if the policy says so; cancels them for `replace`.
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
