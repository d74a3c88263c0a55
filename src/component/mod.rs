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
use crate::chain::{self, Chain};
use crate::config::{Config, JobRef, OnStop, Wait, WaitSettings};
use crate::dbt_cloud::{
    Budget, DbtCloud, JobBound, JobId, Phase, RefusalKind, Run, RunId, RunStatus,
};
use crate::digest::{self, Digest};
use crate::error::user_error;
use crate::findings::Findings;
use crate::keboola::JobLimit;
use crate::retry::is_deadline;
use crate::steps;
use crate::tables::{Table, Writer};
use crate::termination::{is_terminated, Terminated, Termination};
use crate::text::{counted, elapsed, minutes};
use crate::timing::Timing;
use crate::wait::{self, Bounds, Polling, WaitBound, WaitOutcome};
use start::{Decision, Origin};
use verdict::{link, Artifacts, ChainTimedOut, Ending, Strictness};

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
        chain: None,
        our_files: Vec::new(),
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

/// The wait's deadline and what set it: the chain is waited for within the same.
struct Bounded {
    deadline: Instant,
    bound: WaitBound,
}

/// How following the chain ended: at the bound or not, and what the steps of its runs that
/// ended found.
#[derive(Debug, Default)]
struct ChainEnd {
    timed_out: Option<ChainTimedOut>,
    findings: Vec<(RunId, Findings)>,
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
    /// The runs dbt Cloud started when ours ended, once they are waited for.
    chain: Option<Chain>,
    /// The files our run's steps left, read again beside the chain's.
    our_files: Vec<steps::StepFiles>,
}

impl Job<'_> {
    /// Everything after the trigger table.
    fn follow(&mut self, since: Instant, job_start: Instant) -> Result<()> {
        self.client.termination().check()?;
        let Wait::UpTo(settings) = self.config.wait else {
            self.run = self.client.get_run(self.run.id, Budget::Standard)?;
            self.record()?;
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
                self.finished(
                    since,
                    &settings,
                    Bounded {
                        deadline: bounds.deadline,
                        bound,
                    },
                )
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
                self.run = run;
                self.record()?;
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

    fn finished(&mut self, since: Instant, wait: &WaitSettings, bounded: Bounded) -> Result<()> {
        let _after = phase(self.client, self.config, "after the run ended");
        let settings = &self.config.artifacts;
        // The final run is recorded before anything else can stop the job.
        self.record()?;
        // Also when artifacts are not wanted: the results tables read the steps' files.
        let run = artifacts::wait_until_saved(self.client, self.run.clone())?;
        let saved_changed = run.artifacts_saved != self.run.artifacts_saved;
        self.run = run.clone();
        if saved_changed {
            self.record()?;
        }
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
            let chain = self.the_chain(wait, &bounded)?;
            return self.conclude(
                &run,
                none,
                since,
                digest.as_ref(),
                &findings,
                chain.as_ref(),
            );
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
        let chain = self.the_chain(wait, &bounded)?;
        self.conclude(
            &run,
            downloaded,
            since,
            digest.as_ref(),
            &findings,
            chain.as_ref(),
        )
    }

    /// With `wait_for_chained_jobs`, how the chain ended.
    fn the_chain(&mut self, wait: &WaitSettings, bounded: &Bounded) -> Result<Option<ChainEnd>> {
        match wait.chain {
            true => self.follow_the_chain(wait, bounded).map(Some),
            false => Ok(None),
        }
    }

    /// The runs dbt Cloud starts when ours ends, followed until the whole chain has ended or
    /// the wait's bound passes; how it ended.
    fn follow_the_chain(&mut self, wait: &WaitSettings, bounded: &Bounded) -> Result<ChainEnd> {
        let (jobs, incomplete) = self
            .client
            .list_jobs(resolve::LIST_BUDGET)
            .map_err(|error| {
                error.context(
                    "the jobs chained to this one could not be listed (wait_for_chained_jobs)",
                )
            })?;
        if let Some(note) = incomplete {
            warn!("The jobs chained to this one may be incomplete: {note}");
        }
        let chain = Chain::new(
            chain::Jobs::of(&jobs),
            &self.run,
            self.job_id,
            wait.poll_interval,
            self.client.timing(),
        );
        if chain.links.is_empty() {
            info!(
                "No job is chained to run {}'s end: nothing more to wait for",
                self.run.id
            );
            return Ok(ChainEnd::default());
        }
        self.chain = Some(chain);
        self.record()?;
        let deadline = bounded.deadline;
        while let Some(next) = self.chain.as_ref().and_then(Chain::next_look) {
            if next >= deadline {
                return self.chain_timed_out(wait, bounded);
            }
            self.client
                .termination()
                .sleep(next.saturating_duration_since(Instant::now()))?;
            let Some(chain) = self.chain.as_mut() else {
                break;
            };
            match chain.look(self.client, deadline) {
                Ok(true) => self.record()?,
                Ok(false) => {}
                Err(error) if is_deadline(&error) => return self.chain_timed_out(wait, bounded),
                Err(error) => {
                    self.record()?;
                    return Err(error);
                }
            }
        }
        Ok(ChainEnd {
            findings: self.read_the_chains_steps()?,
            ..ChainEnd::default()
        })
    }

    /// The results of the chain's runs that ended, beside ours in the same tables (written
    /// again whole, ours first); what each run's steps found, by run. A failure is a warning.
    fn read_the_chains_steps(&self) -> Result<Vec<(RunId, Findings)>> {
        let Some(chain) = &self.chain else {
            return Ok(Vec::new());
        };
        let sources = steps::Sources {
            client: self.client,
            folder: self.tables.folder(),
            downloaded: None,
            unlisted: None,
            max_size: self.config.artifacts.max_size,
            concurrency: self.config.artifacts.concurrency,
        };
        let mut gathered = Vec::new();
        for run in chain.runs().filter(|run| run.status.is_final()) {
            // As for ours: a run that just ended may not have saved its artifacts yet.
            let run = artifacts::wait_until_saved(self.client, run.clone())?;
            if !run.has_started || !run.artifacts_saved {
                continue;
            }
            match sources.gather(&run) {
                Ok(files) => gathered.push((run, files)),
                Err(error) => {
                    self.client.termination().check()?;
                    warn!(
                        "The steps' results of chained run {} could not be read: {error:#}",
                        run.id
                    );
                }
            }
        }
        if gathered.is_empty() {
            return Ok(Vec::new());
        }
        let runs: Vec<steps::RunFiles> = std::iter::once(steps::RunFiles {
            run: &self.run,
            files: &self.our_files,
        })
        .chain(
            gathered
                .iter()
                .map(|(run, files)| steps::RunFiles { run, files }),
        )
        .collect();
        match steps::read_runs(&runs, self.tables) {
            Ok(findings) => Ok(gathered
                .iter()
                .map(|(run, _)| run.id)
                .zip(findings.into_iter().skip(1))
                .collect()),
            Err(error) => {
                self.client.termination().check()?;
                warn!("The steps' results of the chain's runs could not be read: {error:#}");
                Ok(Vec::new())
            }
        }
    }

    /// The wait's bound passed with runs of the chain unfinished: cancelled with
    /// `cancel_on_timeout`, recorded, and named.
    fn chain_timed_out(&mut self, wait: &WaitSettings, bounded: &Bounded) -> Result<ChainEnd> {
        let unfinished = self
            .chain
            .iter()
            .flat_map(Chain::unfinished)
            .map(verdict::unfinished)
            .collect();
        let fate = if wait.cancel_on_timeout {
            self.cancel_the_chain(self.client.after_deadline())
        } else {
            "They go on in dbt Cloud".to_owned()
        };
        self.record()?;
        Ok(ChainEnd {
            findings: self.read_the_chains_steps()?,
            timed_out: Some(ChainTimedOut {
                within: bounded.bound.describe(),
                fate,
                unfinished,
            }),
        })
    }

    /// Cancels the chain's runs in progress; a sentence saying what happened.
    fn cancel_the_chain(&mut self, budget: Budget) -> String {
        let Some(chain) = self.chain.as_mut() else {
            return String::new();
        };
        let mut failed = Vec::new();
        let mut cancelled = 0usize;
        for link in &mut chain.links {
            let Some(run) = link.run().filter(|run| !run.status.is_final()) else {
                continue;
            };
            let id = run.id;
            info!("Cancelling chained run {id} of {}", link.job_words());
            match self.client.cancel_run(id, budget) {
                Ok(cancelled_run) => {
                    let last = self.client.get_run(id, budget).unwrap_or(cancelled_run);
                    link.seen(last);
                    cancelled += 1;
                }
                Err(error) => failed.push(format!("run {id}: {error:#}")),
            }
        }
        match (cancelled, failed.as_slice()) {
            (0, []) => "None of them had a run in progress to cancel".to_owned(),
            (_, []) => "Their runs in progress were cancelled".to_owned(),
            (_, failed) => format!(
                "Cancelling them failed ({}); they may go on in dbt Cloud",
                failed.join("; ")
            ),
        }
    }

    /// The run tables, from the run as last seen and its chain: written after each change.
    fn record(&self) -> Result<()> {
        self.tables.run_tables(&self.run, self.chain.as_ref())
    }

    /// Every dbt step's run_results.json and sources.json into their tables, and what they say.
    /// A failure here is a warning: the run and its artifacts are what the job is for.
    fn read_steps(&mut self, run: &Run, downloaded: &Artifacts) -> Result<Findings> {
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
        let read = sources.gather(run).and_then(|files| {
            let findings = steps::read(run, self.tables, &files);
            // Kept for the chain's runs, whose results join ours in the same tables.
            self.our_files = files;
            findings
        });
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
        chain: Option<&ChainEnd>,
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
        let chained = verdict::chain_verdict(
            chain.and(self.chain.as_ref()),
            chain.and_then(|end| end.timed_out.as_ref()),
            chain.map_or(&[], |end| end.findings.as_slice()),
            self.config.fail_on_run_error,
        );
        for warning in verdict.warnings.iter().chain(&chained.warnings) {
            warn!("{warning}");
        }
        let outcome = match (verdict.outcome, chained.error) {
            (Ok(summary), None) => {
                match (summary, chained.summary) {
                    (Some(summary), Some(chain)) => info!("{summary}; {chain}"),
                    (Some(summary), None) => info!("{summary}"),
                    (None, Some(chain)) => info!("The chain: {chain}"),
                    (None, None) => {}
                }
                return Ok(());
            }
            (Ok(_), Some(error)) => error,
            (Err(error), None) => error,
            // Ours failed first: the chain's failure is said, the exit is ours.
            (Err(error), Some(chain_error)) => {
                warn!("{chain_error:#}");
                for line in crate::error::details(&chain_error) {
                    warn!("{line}");
                }
                error
            }
        };
        // The digest goes to the log too: stderr becomes one event at the end.
        for line in crate::error::details(&outcome) {
            warn!("{line}");
        }
        Err(outcome)
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
        self.record()?;
        let last = &self.run;
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
        if self.run.status.is_final() {
            let chain = self.stop_the_chain();
            self.record()?;
            let run = &self.run;
            return user_error(format!(
                "Stopped by {signal} after dbt Cloud run {} ended ({}); its tables are written, its \
                 artifacts may be incomplete: {}.{chain}",
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
        self.record()?;
        let last = &self.run;
        user_error(format!(
            "Stopped by {signal} while waiting for dbt Cloud run {} ({}). {fate}: {}.",
            last.id,
            last.status,
            link(last)
        ))
    }

    /// A signal while the chain goes on: its runs are not ours, so they are cancelled only
    /// when `cancel_on_terminate` is set; a sentence for the message (empty without a chain).
    fn stop_the_chain(&mut self) -> String {
        let Some(chain) = &self.chain else {
            return String::new();
        };
        let going = chain
            .unfinished()
            .filter(|link| link.run().is_some())
            .count();
        if going == 0 {
            return String::new();
        }
        match self.config.on_stop {
            OnStop::Cancel => format!(
                " The chain's runs: {}.",
                self.cancel_the_chain(Budget::AfterSignal)
            ),
            OnStop::CancelOwnRuns | OnStop::Leave => format!(
                " {going} chained {} {} on in dbt Cloud (set cancel_on_terminate to cancel them).",
                if going == 1 { "run" } else { "runs" },
                if going == 1 { "goes" } else { "go" }
            ),
        }
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
