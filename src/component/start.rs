//! How the run comes to be: followed when `run_id` names it, adopted when one is already going
//! (`if_running: wait`), left alone or refused (`skip`, `fail`), triggered after cancelling those
//! (`replace`), resumed from the point of failure (`retry_failed`: the job's newest run, failed
//! within `retry_failed_within`, when dbt Cloud can), or triggered anew.
//!
//! A resume rebuilds only what failed and was skipped: every model that succeeded in the failed
//! run keeps that run's data. Resuming last night's failure tonight would serve yesterday's data,
//! so a resume is bounded in time and bound to the failed run itself (`POST /runs/R/retry/`, not
//! the job's rerun, which acts on whatever run is newest when it is called).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Result;
use log::info;

use crate::config::{IfRunning, RunRef, StartPolicy};
use crate::dbt_cloud::{
    Budget, DbtCloud, JobId, NotNew, RefusalKind, Refused, Run, RunStatus, Start,
};
use crate::error::{user_error, UserError};
use crate::text::{counted, elapsed, minutes};

/// How the run the job follows came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Triggered,
    /// Already in progress, and waited for instead of triggering.
    Adopted,
    /// A failed run resumed from its point of failure.
    Resumed,
    /// Named by `run_id`: followed, not started.
    Followed,
}

/// What the start came to: a run to follow, and how it came to be; or one already in progress
/// that `if_running: skip` leaves alone.
pub enum Decision {
    Follow(Run, Origin),
    Skip(Run),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Triggered => "Triggered",
            Origin::Adopted => "Adopted",
            Origin::Resumed => "Resumed the failed run as",
            Origin::Followed => "Following",
        })
    }
}

impl Origin {
    /// When the run began, in our clock: an adopted or followed run began before us, at its
    /// `created_at` (now when that is unknown or ahead), which is dbt Cloud's clock's, so its age
    /// is counted on that clock (`now_on_dbt_cloud`); the others just now.
    pub fn since(self, run: &Run, now_on_dbt_cloud: chrono::DateTime<chrono::Utc>) -> Instant {
        let now = Instant::now();
        if !matches!(self, Origin::Adopted | Origin::Followed) {
            return now;
        }
        let age = run
            .timestamp("created_at")
            .and_then(|created| (now_on_dbt_cloud - created).to_std().ok())
            .unwrap_or_default();
        now.checked_sub(age).unwrap_or(now)
    }
}

/// `cause` is the one to send: configured, or naming the Keboola job.
pub fn start(client: &DbtCloud, job: JobId, policy: &StartPolicy, cause: &str) -> Result<Decision> {
    if let Some(in_progress) = apply_if_running(client, job, policy.if_running)? {
        return Ok(match policy.if_running {
            IfRunning::Skip => Decision::Skip(in_progress),
            _ => Decision::Follow(in_progress, Origin::Adopted),
        });
    }
    if policy.retry_failed {
        if let Some(failed) = resumable(client, job, policy.retry_within)? {
            if let Some(run) = resume(client, job, &failed, policy, cause)? {
                return Ok(Decision::Follow(run, Origin::Resumed));
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
        cause: cause.to_owned(),
        overrides: policy.trigger_overrides.clone(),
    };
    Ok(Decision::Follow(
        client.start_run(job, &trigger)?,
        Origin::Triggered,
    ))
}

/// The run `run_id` names: that run, which must be of the job, or the job's newest.
pub fn named_run(client: &DbtCloud, job: JobId, run: RunRef) -> Result<Run> {
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

/// The run that replaced `run` when dbt Cloud's scheduler cancelled it for a newer one: a queued
/// scheduled run is cancelled when a newer scheduled run of the same job is queued (an
/// over-scheduled job; runs triggered through the API are never cancelled so). Told by its
/// status message, or by a scheduled run cancelled before it started; the newer run is the job's
/// next scheduled one.
pub fn replacement(client: &DbtCloud, job: JobId, run: &Run) -> Option<Run> {
    if run.status != RunStatus::Cancelled {
        return None;
    }
    let category = |run: &Run| {
        run.field("trigger")
            .and_then(|trigger| trigger.get("cause_category"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    let message = run
        .status_message
        .as_deref()
        .unwrap_or_default()
        .to_lowercase();
    let says_so = ["newer run", "over-scheduled", "overscheduled", "superseded"]
        .iter()
        .any(|words| message.contains(words));
    let scheduled = category(run).as_deref() == Some("scheduled");
    if !says_so && (!scheduled || run.has_started) {
        return None;
    }
    client
        .recent_runs(job, 20)
        .ok()?
        .into_iter()
        .filter(|newer| newer.id > run.id)
        .filter(|newer| category(newer).is_none_or(|c| c == "scheduled"))
        .min_by_key(|newer| newer.id)
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

/// The job's newest run when `retry_failed` may resume it: it ended in Error less than
/// `within` ago on dbt Cloud's clock, and dbt Cloud does not say it cannot be retried. Otherwise
/// `None`, and the log says why a fresh run is triggered instead.
fn resumable(client: &DbtCloud, job: JobId, within: Duration) -> Result<Option<Run>> {
    let fresh = |why: String| {
        info!("{why}: triggering a fresh run instead (retry_failed)");
        Ok(None)
    };
    let Some(newest) = client.newest_run(job)? else {
        return fresh(format!("Job {job} has no run to resume"));
    };
    if newest.status != RunStatus::Error {
        return fresh(format!(
            "The job's newest run {} did not fail ({})",
            newest.id, newest.status
        ));
    }
    if newest
        .field("can_retry")
        .and_then(serde_json::Value::as_bool)
        == Some(false)
    {
        let reason = newest
            .field("retry_not_supported_reason")
            .and_then(serde_json::Value::as_str);
        return fresh(format!(
            "The job's newest run {} ended in Error, but dbt Cloud cannot resume it from the point \
             of failure: {}",
            newest.id,
            retry_refusal(reason)
        ));
    }
    let Some(finished) = newest.timestamp("finished_at") else {
        return fresh(format!(
            "The job's newest run {} ended in Error, but dbt Cloud does not say when \
             (finished_at), so how old the failure is cannot be told",
            newest.id
        ));
    };
    // On dbt Cloud's clock: this machine's may be off by hours.
    let age = (client.now_on_dbt_cloud() - finished)
        .to_std()
        .unwrap_or_default();
    if age >= within {
        return fresh(format!(
            "The job's newest run {} ended in Error {} ago, longer ago than retry_failed_within \
             ({}): resuming it would keep the data of every model that succeeded then",
            newest.id,
            elapsed(age),
            counted(minutes(within), "minute", "minutes")
        ));
    }
    info!(
        "The job's newest run {} ended in Error {} ago: resuming it from the point of failure \
         (retry_failed)",
        newest.id,
        elapsed(age)
    );
    Ok(Some(newest))
}

/// Resumes `failed` through its own retry endpoint, or through the job's rerun endpoint where
/// that is absent (404). `None` when dbt Cloud will not resume it (another run came first, the
/// command cannot be retried, the token may not, any refusal of the resume itself) or answers
/// with no new run: the log says why, and a fresh run is triggered.
fn resume(
    client: &DbtCloud,
    job: JobId,
    failed: &Run,
    policy: &StartPolicy,
    cause: &str,
) -> Result<Option<Run>> {
    let (overrides, apply) = if policy.trigger_overrides.is_empty() {
        ("", "does")
    } else {
        (" and trigger_overrides", "do")
    };
    info!(
        "A resumed run keeps the failed run's own cause and settings: the cause {cause:?}{overrides} \
         {apply} not apply to it"
    );
    let resumed = match client.start_run(job, &Start::Retry(failed.id)) {
        Err(error) if RefusalKind::of(&error) == Some(RefusalKind::NotFound) => {
            info!(
                "dbt Cloud has no retry endpoint for run {} (HTTP 404): resuming it through the \
                 job's rerun endpoint",
                failed.id
            );
            client.start_run(job, &Start::Rerun(failed.id))
        }
        other => other,
    };
    let error = match resumed {
        Ok(run) => return Ok(Some(run)),
        Err(error) => error,
    };
    if let Some(not_new) = NotNew::of(&error) {
        info!(
            "{not_new}: run {} was not resumed; triggering a fresh run instead (retry_failed)",
            failed.id
        );
        return Ok(None);
    }
    let Some(refused) = Refused::of(&error).filter(|refused| refuses_the_resume(refused)) else {
        return Err(error);
    };
    let said = refused.api_said.as_str();
    let reason = RETRY_REASONS
        .iter()
        .find(|code| said.contains(**code))
        .map(|code| format!(": {}", retry_refusal(Some(code))))
        .unwrap_or_default();
    let status = refused.status.as_u16();
    let answer = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {said}")
    };
    info!(
        "dbt Cloud refused to resume run {}{reason} ({answer}); triggering a fresh run instead \
         (retry_failed)",
        failed.id
    );
    Ok(None)
}

/// Whether a refusal is of the resume itself, which a fresh run does not meet: any 4xx but a
/// refused token (which refuses the trigger too) and the rate limit (which the retries wait out,
/// and past them the trigger would meet). A server failing is no refusal: its answer may be lost,
/// and the resumed run may exist.
fn refuses_the_resume(refused: &Refused) -> bool {
    refused.status.is_client_error()
        && !matches!(
            refused.kind,
            RefusalKind::TokenRefused | RefusalKind::Throttled
        )
}

/// The codes of `retry_not_supported_reason` this component words.
const RETRY_REASONS: &[&str] = &[
    "RETRY_UNSUPPORTED_CMD",
    "RETRY_UNSUPPORTED_VERSION",
    "RETRY_NOT_LATEST_RUN",
    "RETRY_NOT_FAILED_RUN",
    "RETRY_NO_RUN_RESULTS",
];

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
        Some("RETRY_UNSUPPORTED_VERSION") => {
            "the run's dbt version cannot be resumed (jobs on the Fusion engine cannot)"
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
        for code in RETRY_REASONS {
            assert!(
                !retry_refusal(Some(code)).starts_with("dbt Cloud gives the reason"),
                "{code} is worded"
            );
        }
    }
}
