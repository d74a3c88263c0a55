//! The job, top to bottom: trigger, trigger table, wait, run table, artifacts, verdict.
//!
//! Tables and artifacts are written before the verdict, whatever it is: a failed run's
//! `run_results.json` is exactly what its users need to see.

use std::time::Instant;

use anyhow::Result;
use log::info;

use crate::artifacts;
use crate::config::{Config, Wait};
use crate::data_folder::DataFolder;
use crate::dbt_cloud::{DbtCloud, Run, RunStatus};
use crate::error::user_error;
use crate::tables::{self, Table};
use crate::wait::{self, WaitOutcome};

pub fn run(config: &Config, folder: &DataFolder, bucket: &str) -> Result<()> {
    let client = DbtCloud::new(
        config.dbt_cloud_url.clone(),
        config.api_token.clone(),
        config.account_id,
    )?;
    info!(
        "Triggering dbt Cloud job {} of account {} at {} (cause {:?}, {})",
        config.job_id,
        config.account_id,
        config.dbt_cloud_url,
        config.cause,
        match config.wait {
            Wait::No => "not waiting".to_owned(),
            Wait::UpTo(max) => format!("waiting up to {}", wait::elapsed(max)),
        }
    );
    let triggered = client.trigger_run(config.job_id, &config.cause)?;
    let since = Instant::now();
    info!("Triggered run {}: {}", triggered.id, link(&triggered));
    write_table(folder, Table::Trigger, &triggered, bucket)?;

    let outcome = match config.wait {
        Wait::No => None,
        Wait::UpTo(max_wait) => Some(wait::until_final(
            &client,
            triggered.clone(),
            max_wait,
            since,
        )?),
    };
    let last = match &outcome {
        None => client.get_run(triggered.id)?,
        Some(WaitOutcome::Final(run)) if config.download_artifacts => {
            artifacts::wait_until_saved(&client, run.clone())?
        }
        Some(WaitOutcome::Final(run) | WaitOutcome::TimedOut { run, .. }) => run.clone(),
    };
    write_table(folder, Table::Run, &last, bucket)?;

    match outcome {
        None => {
            info!(
                "Not waiting for the result: run {} is {}",
                last.id, last.status
            );
            Ok(())
        }
        Some(WaitOutcome::TimedOut { limit, .. }) => user_error(format!(
            "dbt Cloud run {} did not finish within max_wait_time ({} minutes); it was still {}. \
             It goes on in dbt Cloud: {}. dbt_cloud_run.csv holds its last state.",
            last.id,
            minutes(limit),
            last.status,
            link(&last)
        )),
        Some(WaitOutcome::Final(_)) => {
            let downloaded = config
                .download_artifacts
                .then(|| artifacts::download_all(&client, folder, &last));
            verdict(&last, downloaded, since, folder)
        }
    }
}

/// Success is exit 0 only when the artifacts came too; a failed run is reported after its
/// artifacts, and with their failure if they also failed.
fn verdict(
    run: &Run,
    downloaded: Option<Result<artifacts::Downloaded>>,
    since: Instant,
    folder: &DataFolder,
) -> Result<()> {
    let (artifacts_note, artifacts_error) = match downloaded {
        None => ("artifacts skipped (ignore_artifacts)".to_owned(), None),
        Some(Ok(done)) => (
            format!(
                "{} artifacts ({} bytes) in {}",
                done.files,
                done.bytes,
                folder.artifacts_dir().display()
            ),
            None,
        ),
        Some(Err(error)) => ("artifacts incomplete".to_owned(), Some(error)),
    };
    if run.status == RunStatus::Success {
        if let Some(error) = artifacts_error {
            return Err(error);
        }
        info!(
            "Run {} succeeded after {}; {artifacts_note}",
            run.id,
            wait::elapsed(since.elapsed())
        );
        return Ok(());
    }
    let mut message = failure_message(run);
    match artifacts_error {
        Some(error) => message.push_str(&format!(" Also, {error:#}.")),
        None => message.push_str(&format!(" The tables are written; {artifacts_note}.")),
    }
    user_error(message)
}

fn write_table(folder: &DataFolder, table: Table, run: &Run, bucket: &str) -> Result<()> {
    let path = tables::write(folder, table, run, bucket)?;
    info!("Wrote {} (run {}, {})", path.display(), run.id, run.status);
    Ok(())
}

/// Names the run, its status message, the failed step and where to look.
fn failure_message(run: &Run) -> String {
    let verdict = match run.status {
        RunStatus::Cancelled => "was cancelled",
        _ => "ended in Error",
    };
    let mut message = format!("dbt Cloud run {} {verdict}", run.id);
    if let Some(status_message) = &run.status_message {
        message.push_str(&format!(
            ": {}",
            status_message.trim().trim_end_matches('.')
        ));
    }
    if let Some(step) = run.failed_step() {
        message.push_str(&format!(". Failed step: {} {:?}", step.index, step.name));
    }
    message.push_str(&format!(". See {}.", link(run)));
    message
}

/// As the user wrote it in `max_wait_time`: `0.5`, `60`, `1.25`.
fn minutes(duration: std::time::Duration) -> String {
    let text = format!("{:.2}", duration.as_secs_f64() / 60.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn link(run: &Run) -> &str {
    run.href.as_deref().unwrap_or("(dbt Cloud sent no link)")
}
