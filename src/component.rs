//! The job, top to bottom: trigger, trigger table, wait, run table, artifacts, verdict.
//!
//! The run table and the artifacts are written before the verdict, whatever it is: a failed
//! run's `run_results.json` is exactly what its users need to see, and a timed-out or stopped
//! run's last state is what they need to find it. A signal at any moment after a run exists ends
//! in [`stopped`]: the run cancelled unless it is final or the user said not to, its tables
//! written, exit 1.

use std::time::{Duration, Instant};

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, Result};
use log::{debug, info, warn};

use crate::artifacts::{self, Downloaded, Selection};
use crate::config::{Config, IfRunning, Wait};
use crate::data_folder::DataFolder;
use crate::dbt_cloud::{Budget, DbtCloud, Run, RunStatus, Start};
use crate::error::{user_error, UserError};
use crate::run_results;
use crate::tables::{self, Table};
use crate::termination::{is_terminated, Terminated, Termination};
use crate::timing::Timing;
use crate::wait::{self, Polling, WaitOutcome};

/// How many of the job's last successful runs set the expected duration.
const HISTORY_RUNS: usize = 5;

/// Keboola kills a job at its `process_timeout` with SIGKILL: nothing cancelled, no run row.
/// The wait ends this long before (a quarter of a short timeout), which leaves time to cancel
/// the run and write the tables.
const BEFORE_KILL: Duration = Duration::from_secs(120);
/// Keboola's job timeout when the configuration sets none.
const DEFAULT_PROCESS_TIMEOUT: Duration = Duration::from_secs(3600);

/// What bounds the wait: the user's `max_wait_time`, or, when it would end later, Keboola's
/// `process_timeout` less [`BEFORE_KILL`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum WaitBound {
    MaxWaitTime(Duration),
    ProcessTimeout { wait: Duration, timeout: Duration },
}

impl WaitBound {
    /// The bound on a wait that starts `elapsed` after the job began.
    fn new(max_wait: Duration, process_timeout: Option<Duration>, elapsed: Duration) -> Self {
        let Some(timeout) = process_timeout else {
            return Self::MaxWaitTime(max_wait);
        };
        let left = timeout
            .saturating_sub(elapsed)
            .saturating_sub(BEFORE_KILL.min(timeout / 4));
        if left < max_wait {
            Self::ProcessTimeout {
                wait: left,
                timeout,
            }
        } else {
            Self::MaxWaitTime(max_wait)
        }
    }

    fn wait(self) -> Duration {
        match self {
            Self::MaxWaitTime(wait) | Self::ProcessTimeout { wait, .. } => wait,
        }
    }

    /// Said in the log before the wait: why it may end early, or that the platform may end it
    /// without a word.
    fn announce(self, max_wait: Duration, process_timeout_known: bool) {
        match self {
            Self::ProcessTimeout { wait, timeout } => info!(
                "Keboola ends this job at its process_timeout of {} minutes: the wait ends after \
                 {} minutes instead of max_wait_time's {}, leaving time to write the tables (and \
                 to cancel the run when cancel_on_timeout is true)",
                minutes(timeout),
                minutes(wait),
                minutes(max_wait),
            ),
            Self::MaxWaitTime(_)
                if !process_timeout_known && max_wait + BEFORE_KILL > DEFAULT_PROCESS_TIMEOUT =>
            {
                warn!(
                    "max_wait_time ({} minutes) may outlast Keboola's default job timeout of {} \
                     minutes, which kills the job before the run is cancelled or recorded: keep \
                     it under {}",
                    minutes(max_wait),
                    minutes(DEFAULT_PROCESS_TIMEOUT),
                    minutes(DEFAULT_PROCESS_TIMEOUT - BEFORE_KILL)
                )
            }
            Self::MaxWaitTime(_) => {}
        }
    }
}

/// Where the job writes: the data folder and the Storage bucket of its tables.
pub struct Output<'a> {
    pub folder: &'a DataFolder,
    pub bucket: &'a str,
    /// Native-types manifests, when the project uses them.
    pub typed: bool,
}

impl Output<'_> {
    fn table(&self, table: Table, run: &Run) -> Result<()> {
        tables::write_run(self.folder, table, run, self.bucket, self.typed)?;
        info!(
            "Wrote table {} (run {}, {})",
            table.name(),
            run.id,
            run.status
        );
        Ok(())
    }

    /// The run as last seen, and its steps.
    fn run_tables(&self, run: &Run) -> Result<()> {
        self.table(Table::Run, run)?;
        let steps = tables::write_run_steps(self.folder, run, self.bucket, self.typed)?;
        info!("Wrote table {} ({steps} steps)", Table::RunSteps.name());
        Ok(())
    }
}

pub fn run(
    config: &Config,
    output: &Output,
    timing: Timing,
    termination: &Termination,
) -> Result<()> {
    let began = Instant::now();
    for warning in &config.warnings {
        warn!("{warning}");
    }
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
    let (started, how) = match termination
        .check()
        .map_err(Into::into)
        .and_then(|()| start(&client, config))
    {
        Ok(started) => started,
        Err(error) if is_terminated(&error) => {
            return user_error(format!(
                "Stopped by {} before a dbt Cloud run was started: nothing was triggered.",
                signal_of(termination)
            ))
        }
        Err(error) => return Err(error),
    };
    // An adopted run began before us: polling from the history counts from its creation.
    let since = match how {
        ADOPTED => run_began(&started),
        _ => Instant::now(),
    };
    info!("{how} run {}: {}", started.id, link(&started));
    let mut last = started;
    let result = output
        .table(Table::Trigger, &last)
        .and_then(|()| follow(config, &client, output, &mut last, since, began));
    match result {
        Err(error) if is_terminated(&error) => {
            stopped(config, &client, output, last, signal_of(termination))
        }
        Err(error) => Err(name_the_run(error, &last)),
        Ok(()) => Ok(()),
    }
}

/// Everything after the trigger table; `last` follows the run as it is seen.
fn follow(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    last: &mut Run,
    since: Instant,
    began: Instant,
) -> Result<()> {
    client.termination().check()?;
    let Wait::UpTo(max_wait) = config.wait else {
        *last = client.get_run(last.id, Budget::Standard)?;
        output.run_tables(last)?;
        info!(
            "Not waiting for the result: run {} is {}",
            last.id, last.status
        );
        return Ok(());
    };
    let polling = match config.poll_interval {
        Some(interval) => Polling::Fixed(interval),
        None => expected_duration(client, config),
    };
    let bound = WaitBound::new(max_wait, config.process_timeout, began.elapsed());
    bound.announce(max_wait, config.process_timeout.is_some());
    match wait::until_final(client, last.clone(), polling, bound.wait(), since) {
        WaitOutcome::Final(run) => {
            *last = run;
            finished(config, client, output, last, since)
        }
        WaitOutcome::TimedOut { run } => {
            *last = run.clone();
            timed_out(config, client, output, run, bound)
        }
        WaitOutcome::Terminated { run, signal } => {
            *last = run;
            Err(Terminated { signal }.into())
        }
        WaitOutcome::Failed { run, error } => {
            output.run_tables(&run)?;
            *last = run;
            Err(error)
        }
    }
}

fn signal_of(termination: &Termination) -> &'static str {
    termination.check().err().map_or("a signal", |t| t.signal)
}

/// Every failure after the trigger names the run, so that the user can find it: a full disk
/// after a successful run still leaves a run to look at.
fn name_the_run(error: anyhow::Error, run: &Run) -> anyhow::Error {
    if format!("{error:#}").contains(&run.id.to_string()) {
        return error;
    }
    error.context(format!(
        "dbt Cloud run {} ({}) was started, but the job could not finish",
        run.id,
        link(run)
    ))
}

/// Starts the run as the config asks: adopting one already in progress (`if_running: wait`),
/// after cancelling those (`replace`), from the point of failure (`retry_failed`), or anew.
/// Returns the run and how it came, for the log.
fn start(client: &DbtCloud, config: &Config) -> Result<(Run, &'static str)> {
    let job = config.job_id;
    if config.if_running != IfRunning::Trigger {
        let in_progress = client.runs_in_progress(job)?;
        match (config.if_running, in_progress.first()) {
            (IfRunning::Wait, Some(newest)) => {
                info!(
                    "Run {} of job {job} is already {}: waiting for it instead of triggering (if_running: wait)",
                    newest.id, newest.status
                );
                return Ok((newest.clone(), ADOPTED));
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
    }
    if config.retry_failed {
        if let Some(newest) = client.newest_run(job)? {
            if newest.status == RunStatus::Error {
                info!(
                    "The job's newest run {} ended in Error: rerunning it from the point of failure (retry_failed)",
                    newest.id
                );
                return Ok((client.start_run(job, &Start::Rerun)?, "Started rerun"));
            }
        }
    }
    if !config.trigger_overrides.is_empty() {
        let keys: Vec<&str> = config
            .trigger_overrides
            .keys()
            .map(String::as_str)
            .collect();
        info!("Trigger overrides: {}", keys.join(", "));
    }
    let trigger = Start::Trigger {
        cause: config.cause.clone(),
        overrides: config.trigger_overrides.clone(),
    };
    Ok((client.start_run(job, &trigger)?, "Triggered"))
}

const ADOPTED: &str = "Adopted";

/// When a run began, in our clock, from its `created_at`; now when that is unknown or ahead.
fn run_began(run: &Run) -> Instant {
    let now = Instant::now();
    let age = run
        .timestamp("created_at")
        .and_then(|created| (chrono::Utc::now() - created).to_std().ok())
        .unwrap_or_default();
    now.checked_sub(age).unwrap_or(now)
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
    last: &mut Run,
    since: Instant,
) -> Result<()> {
    // The final run is recorded before anything else can stop the job.
    output.run_tables(last)?;
    // Also when artifacts are not wanted: the run results table reads run_results.json.
    let run = artifacts::wait_until_saved(client, last.clone())?;
    if run.artifacts_saved != last.artifacts_saved {
        output.run_tables(&run)?;
    }
    *last = run.clone();
    if !run.has_started {
        // Cancelled while queued: dbt never ran, so there is nothing to list or fetch.
        info!(
            "Run {} never started: it has no artifacts and no {RUN_RESULTS}",
            run.id
        );
        let downloaded = config.download_artifacts.then(|| Ok(Downloaded::default()));
        return verdict(config, &run, downloaded, since);
    }
    let downloaded = config.download_artifacts.then(|| {
        let selection = Selection::new(config.artifacts_include.as_deref())?;
        artifacts::download_all(
            client,
            output.folder,
            &run,
            config.artifact_concurrency,
            &selection,
            config.max_artifact_size,
        )
    });
    let local_results = match &downloaded {
        Some(Ok(done)) if done.paths.iter().any(|p| p == RUN_RESULTS) => {
            Some(output.folder.artifacts_dir().join(RUN_RESULTS))
        }
        _ => None,
    };
    let results = run_results_table(
        client,
        output,
        &run,
        local_results.as_deref(),
        config.max_artifact_size,
    );
    if let Err(error) = results {
        client.termination().check()?;
        warn!(
            "The table {} could not be written: {error:#}",
            Table::RunResults.name()
        );
    }
    if let (true, Some(Ok(done))) = (config.artifacts_zip, &downloaded) {
        let name = artifacts::zip(output.folder, &run, config.job_id, &done.paths)?;
        info!(
            "Packed {} artifacts into out/files/{name}",
            done.paths.len()
        );
    }
    verdict(config, &run, downloaded, since)
}

const RUN_RESULTS: &str = "run_results.json";

/// One row per dbt node, read from run_results.json as it streams: the downloaded copy, or one
/// fetched for the purpose when the artifacts are not wanted. Skipped, with a note, when the run
/// has none.
fn run_results_table(
    client: &DbtCloud,
    output: &Output,
    run: &Run,
    local: Option<&Path>,
    max_size: u64,
) -> Result<()> {
    let fetched;
    let path = match local {
        Some(path) => path,
        None => match artifacts::fetch(client, output.folder, run, RUN_RESULTS, max_size)? {
            Some(file) => {
                fetched = file;
                fetched.path()
            }
            None => {
                info!(
                    "Run {} has no {RUN_RESULTS}: no table {}",
                    run.id,
                    Table::RunResults.name()
                );
                return Ok(());
            }
        },
    };
    let file = File::open(path).with_context(|| format!("could not read {}", path.display()))?;
    let run_id = run.id.to_string();
    let count = tables::write(
        output.folder,
        Table::RunResults,
        output.bucket,
        output.typed,
        |rows| {
            run_results::for_each(BufReader::new(file), |node| {
                let (compile_started, compile_completed) = node.phase("compile");
                let (execute_started, execute_completed) = node.phase("execute");
                let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
                let number = |value: Option<String>| value.unwrap_or_default();
                rows.row([
                    run_id.clone(),
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
                    tables::cell(node.adapter_response.as_ref()),
                ])
            })?;
            Ok(())
        },
    )?;
    info!("Wrote table {} ({count} nodes)", Table::RunResults.name());
    Ok(())
}

/// Success is exit 0 when its artifacts came too (or the user accepts some missing). A failed
/// run is exit 1, reported after its tables and artifacts and with their failure if they also
/// failed, unless `fail_on_run_error` is false: then it is a warning.
fn verdict(
    config: &Config,
    run: &Run,
    downloaded: Option<Result<Downloaded>>,
    since: Instant,
) -> Result<()> {
    // Keboola uploads the artifacts folder and out/files only after exit 0 (the tables are
    // `write_always`): a failing job says so when it has downloaded artifacts.
    let downloaded_some = matches!(&downloaded, Some(Ok(done)) if done.files > 0);
    let (artifacts_note, artifacts_error) = match downloaded {
        None => ("artifacts skipped (ignore_artifacts)".to_owned(), None),
        Some(Err(error)) => ("artifacts not downloaded".to_owned(), Some(error)),
        Some(Ok(done)) => {
            let mut note = format!("{} artifacts, {}", done.files, artifacts::size(done.bytes));
            if done.excluded > 0 {
                note.push_str(&format!(
                    " ({} left out by artifacts_include)",
                    done.excluded
                ));
            }
            let others_came = done.files + done.skipped.len() > 0;
            let error = match (
                done.failed.is_empty(),
                config.artifacts_must_succeed || !others_came,
            ) {
                (true, _) => None,
                (false, false) => {
                    warn!(
                        "{} artifacts could not be downloaded: {} (artifacts_must_succeed is false)",
                        done.failed.len(),
                        artifacts::first_few(&done.failed)
                    );
                    None
                }
                (false, true) => Some(
                    UserError::new(format!(
                        "{} of {} artifacts of run {} could not be downloaded: {}",
                        done.failed.len(),
                        done.listed,
                        run.id,
                        artifacts::first_few(&done.failed)
                    ))
                    .into(),
                ),
            };
            (note, error)
        }
    };
    let run_failed = run.status != RunStatus::Success;
    match (run_failed, config.fail_on_run_error, artifacts_error) {
        (false, _, None) => {
            info!(
                "Done: run {} succeeded in {}; {artifacts_note}",
                run.id,
                wait::elapsed(since.elapsed())
            );
            Ok(())
        }
        (false, _, Some(error)) => Err(error),
        (true, false, None) => {
            warn!(
                "{} The tables are written; {artifacts_note}. (fail_on_run_error is false)",
                failure_message(run)
            );
            Ok(())
        }
        (true, false, Some(error)) => {
            warn!("{} (fail_on_run_error is false)", failure_message(run));
            Err(error)
        }
        (true, true, Some(error)) => {
            let also = format!("{error:#}");
            user_error(format!(
                "{} Also, {}.",
                failure_message(run),
                also.trim_end_matches('.')
            ))
        }
        (true, true, None) => user_error(format!(
            "{} The tables are written; {artifacts_note}{}.",
            failure_message(run),
            match downloaded_some {
                true =>
                    ", which Keboola keeps only when the job succeeds \
                         (fail_on_run_error: false keeps them)",
                false => "",
            }
        )),
    }
}

fn timed_out(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    run: Run,
    bound: WaitBound,
) -> Result<()> {
    // Past max_wait_time only a brief budget is left for the cancel and the look after it.
    let budget = client.after_deadline();
    let (last, fate) = if config.cancel_on_timeout {
        cancel(client, run, budget)
    } else {
        (run, "It goes on in dbt Cloud".to_owned())
    };
    output.run_tables(&last)?;
    let within = match bound {
        WaitBound::MaxWaitTime(limit) => {
            format!("within max_wait_time ({} minutes)", minutes(limit))
        }
        WaitBound::ProcessTimeout { wait, timeout } => format!(
            "in the {} minutes left before Keboola's job timeout (process_timeout, {} minutes)",
            minutes(wait),
            minutes(timeout)
        ),
    };
    user_error(format!(
        "dbt Cloud run {} did not finish {within}. {fate}: {}. \
         dbt_cloud_run.csv holds its last state ({}).",
        last.id,
        link(&last),
        last.status
    ))
}

/// SIGTERM or SIGINT once a run exists: cancel it unless it is final or the user said not to,
/// record it, and go.
fn stopped(
    config: &Config,
    client: &DbtCloud,
    output: &Output,
    run: Run,
    signal: &str,
) -> Result<()> {
    if run.status.is_final() {
        output.run_tables(&run)?;
        return user_error(format!(
            "Stopped by {signal} after dbt Cloud run {} ended ({}); its tables are written, its \
             artifacts may be incomplete: {}.",
            run.id,
            run.status,
            link(&run)
        ));
    }
    let (last, fate) = if config.cancel_on_terminate {
        cancel(client, run, Budget::AfterSignal)
    } else {
        (
            run,
            "It goes on in dbt Cloud (cancel_on_terminate is false)".to_owned(),
        )
    };
    output.run_tables(&last)?;
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
        RunStatus::Cancelled if !run.has_started => "was cancelled before it started",
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_wait_ends_before_keboola_kills_the_job() {
        // No timeout known: max_wait_time alone.
        assert_eq!(
            WaitBound::new(90 * MINUTE, None, MINUTE),
            WaitBound::MaxWaitTime(90 * MINUTE)
        );
        // A wait that ends well before the kill is the user's.
        assert_eq!(
            WaitBound::new(30 * MINUTE, Some(60 * MINUTE), MINUTE),
            WaitBound::MaxWaitTime(30 * MINUTE)
        );
        // One that would not: cut to leave two minutes, counted from the job's start.
        assert_eq!(
            WaitBound::new(60 * MINUTE, Some(60 * MINUTE), MINUTE),
            WaitBound::ProcessTimeout {
                wait: 57 * MINUTE,
                timeout: 60 * MINUTE
            }
        );
        // A short timeout keeps a quarter of itself.
        assert_eq!(
            WaitBound::new(10 * MINUTE, Some(4 * MINUTE), Duration::ZERO),
            WaitBound::ProcessTimeout {
                wait: 3 * MINUTE,
                timeout: 4 * MINUTE
            }
        );
        // Past the point already: no wait at all, rather than an overflow.
        assert_eq!(
            WaitBound::new(10 * MINUTE, Some(MINUTE), 2 * MINUTE).wait(),
            Duration::ZERO
        );
    }
}
