//! The job, top to bottom: start the run, trigger table, wait, run tables, artifacts, results
//! table, zip, verdict.
//!
//! The run tables and the artifacts are written before the verdict, whatever it is: a failed
//! run's `run_results.json` is exactly what its users need to see, and a timed-out or stopped
//! run's last state is what they need to find it. A signal at any moment after a run exists ends
//! in [`Job::stopped`]: the run cancelled unless it is final or the user said not to, its tables
//! written, exit 1.

pub(crate) mod resolve;
mod start;
mod verdict;

use std::time::{Duration, Instant};

use anyhow::Result;
use log::{debug, info, warn};

use crate::artifacts::{self, Downloaded};
use crate::config::{Config, JobRef, OnStop, Wait, WaitSettings};
use crate::dbt_cloud::{Budget, DbtCloud, JobBound, JobId, Phase, RefusalKind, Run, RunStatus};
use crate::digest::{self, Digest};
use crate::error::user_error;
use crate::findings::Findings;
use crate::keboola::JobLimit;
use crate::steps;
use crate::tables::{Table, Writer};
use crate::termination::{is_terminated, Terminated, Termination};
use crate::text::{counted, elapsed, minutes};
use crate::timing::Timing;
use crate::wait::{self, Bounds, Polling, WaitBound, WaitOutcome};
use start::{Decision, Origin};
use verdict::{link, Artifacts, Ending, Strictness};

/// How many of the job's last successful runs set the expected duration.
const HISTORY_RUNS: usize = 5;
/// Requests end this long before the job's limit (an eighth of a short one): the tables and
/// the verdict are written after them.
const JOB_MARGIN: Duration = Duration::from_secs(30);

/// `cause`: the one to send, configured or naming the Keboola job.
pub fn run(
    config: &Config,
    cause: &str,
    tables: &Writer,
    timing: Timing,
    termination: &Termination,
) -> Result<()> {
    let job_start = Instant::now();
    for warning in &config.warnings {
        warn!("{warning}");
    }
    for note in &config.notes {
        info!("{note}");
    }
    // No request goes on past the job's limit, less the time to record what the job has.
    let limit = JobLimit::of(config.process_timeout);
    let margin = JOB_MARGIN.min(limit.duration() / 8);
    let deadline = job_start
        .checked_add(limit.duration().saturating_sub(margin))
        .unwrap_or(job_start);
    let client = DbtCloud::new(
        &config.connection,
        config.max_requests_per_minute,
        timing,
        termination.clone(),
    )?
    .until(JobBound { deadline, limit });
    announce(config, cause);
    let before = phase(&client, config, "before the run was started");
    let Some((job_id, run, origin)) = start_the_run(&client, config, cause, termination)? else {
        return Ok(());
    };
    drop(before);
    // Polling and the log count from when the run began.
    let since = origin.since(&run, client.now_on_dbt_cloud());
    info!("{origin} run {}: {}", run.id, link(&run));
    let mut job = Job {
        config,
        job_id,
        client: &client,
        tables,
        origin,
        run,
    };
    let result = tables
        .run(Table::Trigger, &job.run)
        .and_then(|()| job.follow(since, job_start));
    match result {
        Err(error) if is_terminated(&error) => job.stopped(signal_of(termination)),
        Err(error) => Err(name_the_run(error, &job.run)),
        Ok(()) => Ok(()),
    }
}

/// The job, and the run it follows with how that run came to be: the one `run_id` names, or
/// one started as `if_running` and `retry_failed` say; `None` when `if_running: skip` found one
/// in progress and left it alone.
fn start_the_run(
    client: &DbtCloud,
    config: &Config,
    cause: &str,
    termination: &Termination,
) -> Result<Option<(JobId, Run, Origin)>> {
    let decided = termination
        .check()
        .map_err(Into::into)
        .and_then(|()| resolve::job_id(client, &config.job, resolve::LIST_BUDGET))
        .and_then(|job| {
            let decision = match config.follow {
                Some(run) => {
                    Decision::Follow(start::named_run(client, job, run)?, Origin::Followed)
                }
                None => start::start(client, job, &config.start, cause)?,
            };
            Ok((job, decision))
        });
    match decided {
        Ok((_, Decision::Skip(run))) => {
            info!(
                "Run {} of the job is already {}: nothing was triggered (if_running: skip). {}",
                run.id,
                run.status,
                link(&run)
            );
            Ok(None)
        }
        Ok((job, Decision::Follow(run, origin))) => Ok(Some((job, run, origin))),
        Err(error) if is_terminated(&error) => user_error(format!(
            "Stopped by {} before a dbt Cloud run was started: nothing was triggered.",
            signal_of(termination)
        )),
        // A refused token may be an IP allow-list refusing this address: the message says which.
        Err(error) => {
            let account = config.connection.account_id;
            match client.address_refused(&error) {
                Some(true) => user_error(crate::dbt_cloud::address_refused(account)),
                // A 401 says what is refused already (the token, or the account's plan).
                Some(false) if RefusalKind::of(&error) == Some(RefusalKind::Forbidden) => {
                    user_error(format!(
                        "{}. {}.",
                        format!("{error:#}").trim_end_matches('.'),
                        crate::dbt_cloud::address_allowed(account)
                    ))
                }
                _ => Err(error),
            }
        }
    }
}

/// The first line of the log: what the job will do, and the cause it sends.
fn announce(config: &Config, cause: &str) {
    let plan = match (config.wait, config.artifacts.download) {
        (Wait::No, _) => "not waiting for the result".to_owned(),
        (Wait::UpTo(wait), true) => format!(
            "waiting up to {}, then artifacts",
            counted(minutes(wait.max), "minute", "minutes")
        ),
        (Wait::UpTo(wait), false) => format!(
            "waiting up to {}, no artifacts",
            counted(minutes(wait.max), "minute", "minutes")
        ),
    };
    let job = match &config.job {
        JobRef::Id(id) => id.to_string(),
        JobRef::Name(name) => format!("{:?}", name.name),
    };
    info!(
        "Job {job} of account {} at {}; {plan}; cause {cause:?}",
        config.connection.account_id, config.connection.dbt_cloud_url,
    );
}

/// Each phase of the job before and after the wait ends within `max_wait_time` and a margin, so
/// that the job as a whole is bounded by what the user set, not by dbt Cloud's retries; the
/// downloads of artifacts kept aside, which have their throughput floor (the steps' files fetched
/// only for the tables keep to it). Without a wait there is no such bound.
fn phase<'a>(client: &'a DbtCloud, config: &Config, when: &str) -> Option<Phase<'a>> {
    let Wait::UpTo(settings) = config.wait else {
        return None;
    };
    let margin = client.timing().phase_margin;
    let length = settings.max.saturating_add(margin);
    let until = Instant::now().checked_add(length)?;
    Some(client.phase(
        until,
        format!(
            "max_wait_time + {} ({}) passed {when}",
            span(margin),
            span(length)
        ),
    ))
}

/// Seconds while they read well, minutes beyond.
fn span(duration: Duration) -> String {
    match duration.as_secs_f64() {
        seconds if seconds < 120.0 => {
            let text = format!("{seconds:.1}");
            format!("{} s", text.trim_end_matches(".0"))
        }
        _ => format!("{} minutes", minutes(duration)),
    }
}

fn signal_of(termination: &Termination) -> &'static str {
    termination.check().err().map_or("a signal", |t| t.signal)
}

/// Every failure after the trigger names the run and links it, so that the user can find it: a
/// full disk after a successful run still leaves a run to look at. A message that names the run
/// but has no link to it gets the link all the same.
fn name_the_run(error: anyhow::Error, run: &Run) -> anyhow::Error {
    let said = format!("{error:#}");
    let found = match &run.href {
        Some(href) => said.contains(href.as_str()),
        None => said.contains(&run.id.to_string()),
    };
    if found {
        return error;
    }
    error.context(format!(
        "dbt Cloud run {} ({}) was started, but the job could not finish",
        run.id,
        link(run)
    ))
}

/// What every step after the start uses, and the run as last seen, which only the job updates.
struct Job<'a> {
    config: &'a Config,
    /// The job's id, resolved from its name when the config gave one.
    job_id: JobId,
    client: &'a DbtCloud,
    tables: &'a Writer<'a>,
    /// How the run came to be: a run we did not start may be cancelled by dbt Cloud's scheduler.
    origin: Origin,
    /// The run as last seen: what the tables record and the error names, however the job ends.
    run: Run,
}

impl Job<'_> {
    /// Everything after the trigger table.
    fn follow(&mut self, since: Instant, job_start: Instant) -> Result<()> {
        self.client.termination().check()?;
        let Wait::UpTo(settings) = self.config.wait else {
            self.run = self.client.get_run(self.run.id, Budget::Standard)?;
            self.tables.run_and_steps(&self.run)?;
            info!(
                "Not waiting for the result: run {} is {}",
                self.run.id, self.run.status
            );
            return Ok(());
        };
        let limit = JobLimit::of(self.config.process_timeout);
        let bound = WaitBound::new(settings.max, limit, job_start.elapsed());
        bound.announce(settings.max);
        let now = Instant::now();
        let bounds = Bounds {
            deadline: now.checked_add(bound.wait()).unwrap_or(now),
            max_queue: settings.max_queue,
        };
        let polling = self.polling(&settings, bounds.deadline);
        match wait::until_final(self.client, self.run.clone(), polling, bounds, since) {
            WaitOutcome::Final(run) => {
                self.run = run;
                self.finished(since)
            }
            WaitOutcome::TimedOut { run, failing } => {
                self.run = run;
                let within = match failing {
                    None => bound.describe(),
                    Some(failing) => format!(
                        "{}, and the last looks at it failed ({failing})",
                        bound.describe()
                    ),
                };
                self.timed_out(&settings, within)
            }
            WaitOutcome::QueuedTooLong { run } => {
                self.run = run;
                let within = format!(
                    "leave the queue within max_queue_time ({}): it was queued for {}",
                    counted(
                        settings.max_queue.map(minutes).unwrap_or_default(),
                        "minute",
                        "minutes"
                    ),
                    elapsed(since.elapsed())
                );
                self.timed_out(&settings, within)
            }
            WaitOutcome::Terminated { run, signal } => {
                self.run = run;
                Err(Terminated { signal }.into())
            }
            WaitOutcome::Failed { run, error } => {
                self.tables.run_and_steps(&run)?;
                self.run = run;
                Err(error)
            }
        }
    }

    /// `poll_interval`, or the job's recent successful runs, which tell when this one will
    /// likely end; without them (or when they cannot be had before the wait's `deadline`) a
    /// growing interval.
    fn polling(&self, settings: &WaitSettings, deadline: Instant) -> Polling {
        if let Some(interval) = settings.poll_interval {
            return Polling::Fixed(interval);
        }
        match self
            .client
            .recent_durations(self.job_id, HISTORY_RUNS, Budget::Until(deadline))
        {
            Ok(durations) => {
                let polling = Polling::from_history(durations);
                if let Polling::Expecting(expected) = polling {
                    info!(
                        "The job's recent runs took about {}; polling accordingly",
                        elapsed(expected)
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

    fn finished(&mut self, since: Instant) -> Result<()> {
        let _after = phase(self.client, self.config, "after the run ended");
        let settings = &self.config.artifacts;
        // The final run is recorded before anything else can stop the job.
        self.tables.run_and_steps(&self.run)?;
        // Also when artifacts are not wanted: the results tables read the steps' files.
        let run = artifacts::wait_until_saved(self.client, self.run.clone())?;
        if run.artifacts_saved != self.run.artifacts_saved {
            self.tables.run_and_steps(&run)?;
        }
        self.run = run.clone();
        if !run.has_started || !run.artifacts_saved {
            // Cancelled while queued, dbt never ran; or dbt Cloud saved nothing of the run (still
            // not saved after the grace for uploads): nothing to list or fetch, not even the
            // steps' files. The steps' logs come with the run.
            match run.has_started {
                false => info!(
                    "Run {} never started: it has no artifacts and no {}",
                    run.id,
                    steps::RUN_RESULTS
                ),
                true => info!(
                    "dbt Cloud saved no artifacts of run {} (artifacts_saved is still false after \
                     {}): none to list, and no {}",
                    run.id,
                    elapsed(self.client.timing().save_grace),
                    steps::RUN_RESULTS
                ),
            }
            let none = if settings.download {
                Artifacts::Downloaded(Downloaded::default())
            } else {
                Artifacts::Skipped
            };
            let findings = Findings::default();
            let digest = match run.status {
                RunStatus::Success => None,
                _ => digest::of_failure(&run, &findings),
            };
            return self.conclude(&run, none, since, digest.as_ref(), &findings);
        }
        let downloaded = if settings.download {
            let other_steps = steps::other_steps_files(&run);
            match artifacts::download_all(
                self.client,
                self.tables.folder(),
                &run,
                settings,
                &other_steps,
            ) {
                Ok(done) => Artifacts::Downloaded(done),
                Err(error) => {
                    self.client.termination().check()?;
                    Artifacts::NotDownloaded(error)
                }
            }
        } else {
            Artifacts::Skipped
        };
        let findings = self.read_steps(&run, &downloaded)?;
        if let (true, Artifacts::Downloaded(done)) = (settings.zip, &downloaded) {
            zip(self.tables, &run, self.job_id, done)?;
        }
        let digest = match run.status {
            RunStatus::Success => None,
            _ => digest::of_failure(&run, &findings),
        };
        self.conclude(&run, downloaded, since, digest.as_ref(), &findings)
    }

    /// Every dbt step's run_results.json and sources.json into their tables, and what they say.
    /// A failure here is a warning: the run and its artifacts are what the job is for.
    fn read_steps(&self, run: &Run, downloaded: &Artifacts) -> Result<Findings> {
        let sources = steps::Sources {
            client: self.client,
            folder: self.tables.folder(),
            downloaded: match downloaded {
                Artifacts::Downloaded(done) => Some(done),
                _ => None,
            },
            unlisted: match downloaded {
                Artifacts::NotDownloaded(error) => Some(error),
                _ => None,
            },
            concurrency: self.config.artifacts.concurrency,
            max_size: self.config.artifacts.max_size,
        };
        let read = sources
            .gather(run)
            .and_then(|files| steps::read(run, self.tables, &files));
        match read {
            Ok(findings) => Ok(findings),
            Err(error) => {
                self.client.termination().check()?;
                warn!("The steps' results could not be read: {error:#}");
                Ok(Findings::default())
            }
        }
    }

    fn conclude(
        &self,
        run: &Run,
        downloaded: Artifacts,
        since: Instant,
        digest: Option<&Digest>,
        findings: &Findings,
    ) -> Result<()> {
        let report = findings.warnings();
        let replaced_by = match self.origin {
            Origin::Adopted | Origin::Followed => start::replacement(self.client, self.job_id, run),
            Origin::Triggered | Origin::Resumed => None,
        };
        let ending = Ending {
            run,
            took: since.elapsed(),
            digest,
            counts: findings.summary(),
            warnings: &report,
            replaced_by: replaced_by.as_ref(),
            usage: self.client.usage(),
        };
        let settings = &self.config.artifacts;
        let verdict = verdict::verdict(
            &ending,
            downloaded,
            settings.must_succeed,
            Strictness {
                fail_on_run_error: self.config.fail_on_run_error,
                fail_on_warnings: self.config.fail_on_warnings,
            },
        );
        for warning in &verdict.warnings {
            warn!("{warning}");
        }
        match verdict.outcome {
            Ok(summary) => {
                if let Some(summary) = summary {
                    info!("{summary}");
                }
                Ok(())
            }
            Err(error) => {
                // The digest goes to the log too: stderr becomes one event at the end.
                for line in crate::error::details(&error) {
                    warn!("{line}");
                }
                Err(error)
            }
        }
    }

    /// The wait ended before the run did: `within` says which bound passed.
    fn timed_out(&mut self, settings: &WaitSettings, within: String) -> Result<()> {
        // Past max_wait_time only a brief budget is left for the cancel and the look after it.
        let budget = self.client.after_deadline();
        let fate = if settings.cancel_on_timeout {
            self.cancel(budget)
        } else {
            "It goes on in dbt Cloud".to_owned()
        };
        let last = &self.run;
        self.tables.run_and_steps(last)?;
        user_error(format!(
            "dbt Cloud run {} did not {within}. {fate}: {}. \
             dbt_cloud_run.csv holds its last state ({}).",
            last.id,
            link(last),
            last.status
        ))
    }

    /// SIGTERM or SIGINT once a run exists: cancel it unless it is final or the user said not
    /// to, record it, and go.
    fn stopped(mut self, signal: &str) -> Result<()> {
        let run = &self.run;
        if run.status.is_final() {
            self.tables.run_and_steps(run)?;
            return user_error(format!(
                "Stopped by {signal} after dbt Cloud run {} ended ({}); its tables are written, its \
                 artifacts may be incomplete: {}.",
                run.id,
                run.status,
                link(run)
            ));
        }
        let ours = matches!(self.origin, Origin::Triggered | Origin::Resumed);
        let fate = match (self.config.on_stop, ours) {
            (OnStop::Cancel, _) | (OnStop::CancelOwnRuns, true) => self.cancel(Budget::AfterSignal),
            (OnStop::Leave, _) => {
                "It goes on in dbt Cloud (cancel_on_terminate is false)".to_owned()
            }
            (OnStop::CancelOwnRuns, false) => "It goes on in dbt Cloud: this job did not start it \
                 (set cancel_on_terminate to cancel it all the same)"
                .to_owned(),
        };
        let last = &self.run;
        self.tables.run_and_steps(last)?;
        user_error(format!(
            "Stopped by {signal} while waiting for dbt Cloud run {} ({}). {fate}: {}.",
            last.id,
            last.status,
            link(last)
        ))
    }

    /// Cancels the run and keeps its state afterwards; a sentence saying what happened.
    fn cancel(&mut self, budget: Budget) -> String {
        info!("Cancelling run {}", self.run.id);
        match self.client.cancel_run(self.run.id, budget) {
            Ok(cancelled) => {
                self.run = self
                    .client
                    .get_run(self.run.id, budget)
                    .unwrap_or(cancelled);
                "It was cancelled".to_owned()
            }
            Err(error) => format!("Cancelling it failed ({error:#}); it may go on in dbt Cloud"),
        }
    }
}

fn zip(tables: &Writer, run: &Run, job: JobId, done: &Downloaded) -> Result<()> {
    let name = artifacts::zip(tables.folder(), run, job, &done.paths)?;
    info!(
        "Packed {} into out/files/{name}",
        counted(done.paths.len(), "artifact", "artifacts")
    );
    Ok(())
}
