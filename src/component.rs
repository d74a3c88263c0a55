//! The job, top to bottom: trigger, trigger table, wait, run table, artifacts, verdict.
//!
//! The run table and the artifacts are written before the verdict, whatever it is: a failed
//! run's `run_results.json` is exactly what its users need to see, and a timed-out or stopped
//! run's last state is what they need to find it.

use std::time::{Duration, Instant};

use anyhow::Result;
use log::{debug, info, warn};

use crate::artifacts::{self, Downloaded};
use crate::config::{Config, Wait};
use crate::data_folder::DataFolder;
use crate::dbt_cloud::{Budget, DbtCloud, Run, RunStatus};
use crate::error::user_error;
use crate::tables::{self, Table};
use crate::termination::Termination;
use crate::timing::Timing;
use crate::wait::{self, Polling, WaitOutcome};

/// How many of the job's last successful runs set the expected duration.
const HISTORY_RUNS: usize = 5;

/// Where the job writes: the data folder and the Storage bucket of its tables.
pub struct Output<'a> {
    pub folder: &'a DataFolder,
    pub bucket: &'a str,
    /// Native-types manifests, when the project uses them.
    pub typed: bool,
}

impl Output<'_> {
    fn table(&self, table: Table, run: &Run) -> Result<()> {
        tables::write(self.folder, table, run, self.bucket, self.typed)?;
        info!(
            "Wrote table {} (run {}, {})",
            table.name(),
            run.id,
            run.status
        );
        Ok(())
    }
}

pub fn run(
    config: &Config,
    output: &Output,
    timing: Timing,
    termination: &Termination,
) -> Result<()> {
    let client = DbtCloud::new(
        &config.connection,
        config.max_requests_per_minute,
        timing,
        termination.clone(),
    )?;
    info!(
        "Job {} of account {} at {}; {}; cause {:?}",
        config.job_id,
        config.connection.account_id,
        config.connection.dbt_cloud_url,
        match (config.wait, config.download_artifacts) {
            (Wait::No, _) => "not waiting for the result".to_owned(),
            (Wait::UpTo(max), true) =>
                format!("waiting up to {} minutes, then artifacts", minutes(max)),
            (Wait::UpTo(max), false) =>
                format!("waiting up to {} minutes, no artifacts", minutes(max)),
        },
        config.cause,
    );
    termination.check()?;
    let triggered = client.trigger_run(config.job_id, &config.cause)?;
    let since = Instant::now();
    info!("Triggered run {}: {}", triggered.id, link(&triggered));
    output.table(Table::Trigger, &triggered)?;

    let Wait::UpTo(max_wait) = config.wait else {
        let last = client.get_run(triggered.id, Budget::Standard)?;
        output.table(Table::Run, &last)?;
        info!(
            "Not waiting for the result: run {} is {}",
            last.id, last.status
        );
        return Ok(());
    };
    let polling = match config.poll_interval {
        Some(interval) => Polling::Fixed(interval),
        None => expected_duration(&client, config),
    };
    match wait::until_final(&client, triggered, polling, max_wait, since) {
        WaitOutcome::Final(run) => finished(config, &client, output, run, since),
        WaitOutcome::TimedOut { run, limit } => timed_out(config, &client, output, run, limit),
        WaitOutcome::Terminated { run, signal } => stopped(config, &client, output, run, signal),
        WaitOutcome::Failed { run, error } => {
            output.table(Table::Run, &run)?;
            Err(error)
        }
    }
}

/// The job's recent successful runs tell when this one will likely end; without them (or when
/// they cannot be had) polling falls back to a growing interval.
fn expected_duration(client: &DbtCloud, config: &Config) -> Polling {
    match client.recent_durations(config.job_id, HISTORY_RUNS) {
        Ok(durations) => {
            let polling = Polling::from_history(durations);
            if let Polling::Expecting(expected) = polling {
                info!(
                    "The job's recent runs took about {}; polling accordingly",
                    wait::elapsed(expected)
                );
            }
            polling
        }
        Err(error) => {
            debug!("The job's recent runs could not be read ({error:#}); polling without them");
            Polling::Growing
        }
    }
}

fn finished(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    run: Run,
    since: Instant,
) -> Result<()> {
    let run = match config.download_artifacts {
        true => artifacts::wait_until_saved(client, run)?,
        false => run,
    };
    output.table(Table::Run, &run)?;
    let downloaded = config
        .download_artifacts
        .then(|| artifacts::download_all(client, output.folder, &run, config.artifact_concurrency));
    verdict(config, &run, downloaded, since)
}

/// Success is exit 0 when its artifacts came too (or the user accepts some missing); a failed
/// run is reported after its artifacts, and with their failure if they also failed.
fn verdict(
    config: &Config,
    run: &Run,
    downloaded: Option<Result<Downloaded>>,
    since: Instant,
) -> Result<()> {
    let (artifacts_note, artifacts_error) = match downloaded {
        None => ("artifacts skipped (ignore_artifacts)".to_owned(), None),
        Some(Err(error)) => ("artifacts not downloaded".to_owned(), Some(error)),
        Some(Ok(done)) => {
            let note = format!("{} artifacts, {}", done.files, artifacts::size(done.bytes));
            let others_fine = done.files + done.skipped.len() > 0;
            match (
                done.failed.is_empty(),
                config.artifacts_must_succeed || !others_fine,
            ) {
                (true, _) => (note, None),
                (false, false) => {
                    warn!(
                        "{} artifacts could not be downloaded: {} (artifacts_must_succeed is false)",
                        done.failed.len(),
                        done.failed.join(", ")
                    );
                    (note, None)
                }
                (false, true) => (
                    note,
                    Some(
                        crate::error::UserError::new(format!(
                            "{} of {} artifacts of run {} could not be downloaded: {}",
                            done.failed.len(),
                            done.listed,
                            run.id,
                            done.failed.join(", ")
                        ))
                        .into(),
                    ),
                ),
            }
        }
    };
    if run.status == RunStatus::Success {
        if let Some(error) = artifacts_error {
            return Err(error);
        }
        info!(
            "Done: run {} succeeded in {}; {artifacts_note}",
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

fn timed_out(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    run: Run,
    limit: Duration,
) -> Result<()> {
    let (last, fate) = if config.cancel_on_timeout {
        cancel(client, run, Budget::Standard)
    } else {
        (run, "It goes on in dbt Cloud".to_owned())
    };
    output.table(Table::Run, &last)?;
    user_error(format!(
        "dbt Cloud run {} did not finish within max_wait_time ({} minutes). {fate}: {}. \
         dbt_cloud_run.csv holds its last state ({}).",
        last.id,
        minutes(limit),
        link(&last),
        last.status
    ))
}

/// SIGTERM or SIGINT while waiting: cancel the run unless told not to, record it, and go.
fn stopped(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    run: Run,
    signal: &str,
) -> Result<()> {
    let (last, fate) = if config.cancel_on_terminate {
        cancel(client, run, Budget::AfterSignal)
    } else {
        (
            run,
            "It goes on in dbt Cloud (cancel_on_terminate is false)".to_owned(),
        )
    };
    output.table(Table::Run, &last)?;
    user_error(format!(
        "Stopped by {signal} while waiting for dbt Cloud run {} ({}). {fate}: {}.",
        last.id,
        last.status,
        link(&last)
    ))
}

/// Cancels the run and returns its state afterwards, with a sentence saying what happened.
fn cancel(client: &DbtCloud, run: Run, budget: Budget) -> (Run, String) {
    info!("Cancelling run {}", run.id);
    match client.cancel_run(run.id, budget) {
        Ok(cancelled) => {
            let last = client.get_run(run.id, budget).unwrap_or(cancelled);
            (last, "It was cancelled".to_owned())
        }
        Err(error) => (
            run,
            format!("Cancelling it failed ({error:#}); it may go on in dbt Cloud"),
        ),
    }
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
fn minutes(duration: Duration) -> String {
    let text = format!("{:.2}", duration.as_secs_f64() / 60.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn link(run: &Run) -> &str {
    run.href.as_deref().unwrap_or("(dbt Cloud sent no link)")
}
