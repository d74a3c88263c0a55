//! How the job ends, decided from the final run and what came of its artifacts alone: pure, so
//! that the exit matrix is tested without a server.
//!
//! Success is exit 0 when its artifacts came too (or the user accepts some missing). A failed run
//! is exit 1, reported after its tables and artifacts and with their failure if they also failed,
//! unless `fail_on_run_error` is false: then it is a warning.

use std::time::Duration;

use anyhow::Result;

use crate::artifacts::{self, Downloaded};
use crate::chain::{Chain, Link};
use crate::dbt_cloud::{Run, RunId, RunStatus, Throttling, Usage};
use crate::digest::Digest;
use crate::error::UserError;
use crate::findings::Findings;
use crate::text::{counted, elapsed, size};

/// What came of the artifacts.
pub enum Artifacts {
    /// `ignore_artifacts`.
    Skipped,
    /// The list itself could not be had.
    NotDownloaded(anyhow::Error),
    Downloaded(Downloaded),
}

/// The end of the job: warnings to log, then exit 0 (with a summary for the log when the run
/// succeeded), or the error.
pub struct Verdict {
    pub warnings: Vec<String>,
    pub outcome: Result<Option<String>>,
}

/// What the artifacts add to the verdict.
struct Weighed {
    /// `7 artifacts, 22.3 KB`, for the summary.
    note: String,
    /// A failure the user tolerates (`artifacts_must_succeed: false`).
    warning: Option<String>,
    /// A failure that fails the job.
    error: Option<anyhow::Error>,
    /// Files were downloaded: Keboola keeps them only when the job succeeds.
    some_came: bool,
}

fn weigh(artifacts: Artifacts, must_succeed: bool, run: &Run) -> Weighed {
    let done = match artifacts {
        Artifacts::Skipped => return weighed("artifacts skipped (ignore_artifacts)".into(), None),
        Artifacts::NotDownloaded(error) => {
            return weighed("artifacts not downloaded".into(), Some(error))
        }
        Artifacts::Downloaded(done) => done,
    };
    let mut note = format!(
        "{}, {}",
        counted(done.files, "artifact", "artifacts"),
        size(done.bytes)
    );
    if done.excluded > 0 {
        note.push_str(&format!(
            " ({} left out by artifacts_include)",
            done.excluded
        ));
    }
    let others_came = done.files + done.skipped.len() > 0;
    let failed = artifacts::failures(&done.failed);
    let (warning, error) = match (done.failed.is_empty(), must_succeed || !others_came) {
        (true, _) => (None, None),
        (false, false) => (
            Some(format!(
                "{} could not be downloaded: {failed} (artifacts_must_succeed is false)",
                counted(done.failed.len(), "artifact", "artifacts")
            )),
            None,
        ),
        (false, true) => {
            // A failed run fails the job whatever became of its artifacts.
            let keeps_them = (run.status == RunStatus::Success)
                .then_some("artifacts_must_succeed: false keeps them");
            let message = format!(
                "{} of {} of run {} could not be downloaded: {failed}.",
                done.failed.len(),
                counted(done.listed, "artifact", "artifacts"),
                run.id
            );
            let message = keboola_keeps(message, done.files > 0, keeps_them);
            (None, Some(UserError::new(message).into()))
        }
    };
    Weighed {
        note,
        warning,
        error,
        some_came: done.files > 0,
    }
}

fn weighed(note: String, error: Option<anyhow::Error>) -> Weighed {
    Weighed {
        note,
        warning: None,
        error,
        some_came: false,
    }
}

/// What the job knows of the run's end: the run, how long the job followed it, what its steps'
/// results count, what warned, and why it failed when it did.
pub struct Ending<'a> {
    pub run: &'a Run,
    pub took: Duration,
    pub digest: Option<&'a Digest>,
    /// Results per status, per step: `step 5 "Invoke dbt build": 40 success, 1 warn`.
    pub counts: Option<String>,
    /// The warnings report (its first line sums it up); empty when nothing warned.
    pub warnings: &'a [String],
    /// The newer run for which dbt Cloud's scheduler cancelled this one.
    pub replaced_by: Option<&'a Run>,
    /// What the job asked of dbt Cloud, and what the account-wide rate limit cost it.
    pub usage: Usage,
}

/// What fails the job beside its artifacts.
#[derive(Debug, Clone, Copy)]
pub struct Strictness {
    /// A run that ended in Error or was cancelled.
    pub fail_on_run_error: bool,
    /// Any warned node or stale source.
    pub fail_on_warnings: bool,
}

pub fn verdict(
    ending: &Ending,
    artifacts: Artifacts,
    must_succeed: bool,
    strictness: Strictness,
) -> Verdict {
    let run = ending.run;
    let weighed = weigh(artifacts, must_succeed, run);
    let some_came = weighed.some_came;
    let warnings: Vec<String> = weighed.warning.clone().into_iter().collect();
    if run.status != RunStatus::Success {
        let verdict = failed(ending, weighed, warnings, strictness.fail_on_run_error);
        return with_warnings_failing(verdict, ending, strictness, some_came);
    }
    let outcome = match weighed.error {
        None => Ok(Some(format!(
            "Done: run {} succeeded in {}{}; {}{}{}",
            run.id,
            elapsed(ending.took),
            queue_note(run)
                .map(|n| format!(" ({n})"))
                .unwrap_or_default(),
            ending
                .counts
                .as_ref()
                .map(|counts| format!("{counts}; "))
                .unwrap_or_default(),
            weighed.note,
            usage_note(ending.usage)
                .into_iter()
                .chain(throttle_note(ending.usage.throttling))
                .map(|n| format!("; {n}"))
                .collect::<String>()
        ))),
        Some(error) => Err(error),
    };
    with_warnings_failing(Verdict { warnings, outcome }, ending, strictness, some_came)
}

/// The warnings report, in the log once: with `fail_on_warnings`, a job that would succeed fails
/// when anything warned, with the report as its message and details (which the log shows after
/// the report's first line); otherwise the report leads the warnings.
fn with_warnings_failing(
    verdict: Verdict,
    ending: &Ending,
    strictness: Strictness,
    some_came: bool,
) -> Verdict {
    let Some((head, lines)) = ending.warnings.split_first() else {
        return verdict;
    };
    if !strictness.fail_on_warnings || verdict.outcome.is_err() {
        return Verdict {
            warnings: ending
                .warnings
                .iter()
                .cloned()
                .chain(verdict.warnings)
                .collect(),
            outcome: verdict.outcome,
        };
    }
    let run = ending.run;
    let how = match run.status {
        RunStatus::Success => "succeeded with warnings, and fail_on_warnings is true".to_owned(),
        _ => format!(
            "{}, which fail_on_run_error: false lets pass, and it warned, which \
             fail_on_warnings: true does not",
            ended(run)
        ),
    };
    let message = format!(
        "dbt Cloud run {} {how}. {head}. The tables are written. See {}.",
        run.id,
        link(run)
    );
    let message = keboola_keeps(
        message,
        some_came,
        Some("fail_on_warnings: false keeps them"),
    );
    Verdict {
        warnings: std::iter::once(head.clone())
            .chain(verdict.warnings)
            .collect(),
        outcome: Err(UserError::with_details(message, lines.to_vec()).into()),
    }
}

/// A run that ended in Error or was cancelled: exit 1 with why, after the message, a line each
/// (the digest, how long it queued and ran), or a warning when `fail_on_run_error` is false.
fn failed(
    ending: &Ending,
    weighed: Weighed,
    mut warnings: Vec<String>,
    fail_on_run_error: bool,
) -> Verdict {
    let run = ending.run;
    let Weighed {
        note,
        error,
        some_came,
        ..
    } = weighed;
    let digest = ending.digest.map(Digest::lines).unwrap_or_default();
    let details: Vec<String> = digest
        .into_iter()
        .chain(queue_note(run))
        .chain(throttle_note(ending.usage.throttling))
        .collect();
    if !fail_on_run_error {
        warnings.push(match error {
            None => format!(
                "{} The tables are written; {note}. (fail_on_run_error is false)",
                failure_message(run, ending.replaced_by)
            ),
            Some(_) => format!(
                "{} (fail_on_run_error is false)",
                failure_message(run, ending.replaced_by)
            ),
        });
        warnings.extend(details);
        let outcome = error.map_or(Ok(None), Err);
        return Verdict { warnings, outcome };
    }
    let message = match error {
        Some(error) => {
            let also = format!("{error:#}");
            format!(
                "{} Also, {}.",
                failure_message(run, ending.replaced_by),
                also.trim_end_matches('.')
            )
        }
        None => keboola_keeps(
            format!(
                "{} The tables are written; {note}.",
                failure_message(run, ending.replaced_by)
            ),
            some_came,
            Some("fail_on_run_error: false keeps them"),
        ),
    };
    let outcome = Err(UserError::with_details(message, details).into());
    Verdict { warnings, outcome }
}

/// An exit-1 message, and when artifacts were downloaded, that Keboola keeps them only when the
/// job succeeds (and what would keep them, when one setting would): said on every exit 1 that
/// follows downloaded artifacts, since the user may look for them in vain.
fn keboola_keeps(message: String, some_came: bool, keeps_them: Option<&str>) -> String {
    if !some_came {
        return message;
    }
    let hint = keeps_them
        .map(|hint| format!(" ({hint})"))
        .unwrap_or_default();
    format!("{message} Keboola keeps the job's artifacts only when the job succeeds{hint}.")
}

/// `2,050 requests at up to 2,500 a minute, 0s waited for the share`: what the job asked of dbt
/// Cloud, its share of the account's requests (the last), and how long the share held some
/// request back.
fn usage_note(usage: Usage) -> Option<String> {
    (usage.sent > 0).then(|| {
        format!(
            "{} at up to {} a minute, {} waited for the share",
            counted(usage.sent, "request", "requests"),
            usage.share,
            elapsed(usage.held)
        )
    })
}

/// `dbt Cloud's account-wide rate limit refused 12 requests; 5m 30s waited for the account`.
fn throttle_note(throttling: Throttling) -> Option<String> {
    (throttling.refused > 0).then(|| {
        format!(
            "dbt Cloud's account-wide rate limit refused {}; {} waited for the account",
            counted(throttling.refused, "request", "requests"),
            elapsed(throttling.waited)
        )
    })
}

/// `queued 12m 3s, ran 5s`, and why a run may wait longer than it runs.
fn queue_note(run: &Run) -> Option<String> {
    let (queued, ran) = run.queued_and_ran()?;
    let mut note = format!("queued {}, ran {}", elapsed(queued), elapsed(ran));
    if queued > ran {
        note.push_str(
            ": it waited longer than it ran; the account's run slots may be busy, or another \
             run of the job was in progress",
        );
    }
    Some(note)
}

/// Names the run, its status message, the failed step and where to look; for a run dbt Cloud's
/// scheduler cancelled for a newer one, that one.
fn failure_message(run: &Run, replaced_by: Option<&Run>) -> String {
    let mut message = format!("dbt Cloud run {} {}", run.id, ended(run));
    if let Some(newer) = replaced_by {
        message.push_str(&format!(
            " by dbt Cloud's scheduler, which replaced it with a newer scheduled run of the job, \
             run {} ({}): the job is scheduled more often than its runs finish",
            newer.id,
            link(newer)
        ));
    }
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

/// How a run that did not succeed ended, in words.
fn ended(run: &Run) -> &'static str {
    match run.status {
        RunStatus::Cancelled if !run.has_started => "was cancelled before it started",
        RunStatus::Cancelled => "was cancelled",
        _ => "ended in Error",
    }
}

pub fn link(run: &Run) -> &str {
    run.href.as_deref().unwrap_or("(dbt Cloud sent no link)")
}

/// What the chain adds to the verdict (`wait_for_chained_jobs`).
pub struct ChainVerdict {
    /// `2 chained runs: 1 succeeded, 1 ended in Error`, for the closing line.
    pub summary: Option<String>,
    pub warnings: Vec<String>,
    pub error: Option<anyhow::Error>,
}

/// The wait's bound passed with the chain unfinished.
#[derive(Debug)]
pub struct ChainTimedOut {
    /// Which bound: `finish within max_wait_time (60 minutes)`.
    pub within: String,
    /// What became of the runs still going: `They go on in dbt Cloud`.
    pub fate: String,
    /// The chained runs not finished at the bound, as then.
    pub unfinished: Vec<String>,
}

/// A chained run not finished, or a chained job whose run had not appeared, in words.
pub fn unfinished(chained: &Link) -> String {
    match chained.run() {
        Some(run) => format!(
            "run {} of {} ({}): {}",
            run.id,
            chained.job_words(),
            run.status,
            link(run)
        ),
        None => format!("{} (its run had not appeared)", chained.job_words()),
    }
}

/// A chained run that ended in Error or Cancelled fails the job like ours (a warning with
/// `fail_on_run_error: false`); runs still going at the bound fail it whatever.
pub fn chain_verdict(
    chain: Option<&Chain>,
    timed_out: Option<&ChainTimedOut>,
    findings: &[(RunId, Findings)],
    fail_on_run_error: bool,
) -> ChainVerdict {
    let Some(chain) = chain.filter(|chain| !chain.links.is_empty()) else {
        return ChainVerdict {
            summary: None,
            warnings: Vec::new(),
            error: None,
        };
    };
    let mut counts: Vec<(String, usize)> = Vec::new();
    for chained in &chain.links {
        let said = match chained.run() {
            Some(run) if run.status == RunStatus::Success => "succeeded".to_owned(),
            Some(run) if run.status.is_final() => format!("ended {}", run.status),
            Some(_) => "not finished".to_owned(),
            None => "never appeared".to_owned(),
        };
        match counts.iter_mut().find(|(words, _)| *words == said) {
            Some((_, count)) => *count += 1,
            None => counts.push((said, 1)),
        }
    }
    let summary = format!(
        "{} chained {}: {}",
        chain.links.len(),
        plural(chain.links.len(), "run", "runs"),
        counts
            .iter()
            .map(|(words, count)| format!("{count} {words}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut failures = Vec::new();
    let mut details = Vec::new();
    for chained in &chain.links {
        let Some(run) = chained
            .run()
            .filter(|run| matches!(run.status, RunStatus::Error | RunStatus::Cancelled))
        else {
            continue;
        };
        let message = format!(
            "Chained run {} of {} (started by run {}'s end) ended {}{}: {}.",
            run.id,
            chained.job_words(),
            chained.parent_run,
            run.status,
            run.status_message
                .as_deref()
                .map(|said| format!(" ({})", said.trim_end_matches('.')))
                .unwrap_or_default(),
            link(run)
        );
        details.push(message.clone());
        let found = findings
            .iter()
            .find(|(id, _)| *id == run.id)
            .map(|(_, found)| found.clone())
            .unwrap_or_default();
        if let Some(digest) = crate::digest::of_failure(run, &found) {
            details.extend(digest.lines());
        }
        failures.push(message);
    }
    let mut warnings = Vec::new();
    let error = match (timed_out, failures.first()) {
        (Some(timed_out), _) => Some(
            UserError::with_details(
                format!(
                    "The chain of jobs that run {}'s end started did not {}: {}. {}. \
                     dbt_cloud_run_chain.csv holds their last state.",
                    chain.links[0].parent_run,
                    timed_out.within,
                    timed_out.unfinished.join("; "),
                    timed_out.fate
                ),
                details,
            )
            .into(),
        ),
        (_, Some(first)) if fail_on_run_error => {
            let more = match failures.len() {
                1 => String::new(),
                more => format!(" {} more chained runs failed too.", more - 1),
            };
            Some(UserError::with_details(format!("{first}{more}"), details[1..].to_vec()).into())
        }
        (_, Some(_)) => {
            warnings.extend(
                failures
                    .iter()
                    .map(|failure| format!("{failure} (fail_on_run_error is false)")),
            );
            None
        }
        _ => None,
    };
    ChainVerdict {
        summary: Some(summary),
        warnings,
        error,
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_user_error;
    use serde_json::json;

    fn run(status: u64) -> Run {
        serde_json::from_value(json!({
            "id": 7, "status": status, "started_at": "2026-11-26 10:00:00+00:00",
            "status_message": "Failed.", "href": "https://x.dbt.com/runs/7/"
        }))
        .unwrap()
    }

    fn downloaded(files: usize, failed: usize) -> Artifacts {
        Artifacts::Downloaded(Downloaded {
            listed: files + failed,
            files,
            bytes: 22_300 * files as u64,
            paths: (0..files).map(|i| format!("f{i}.json")).collect(),
            failed: (0..failed)
                .map(|i| (format!("g{i}.json"), "HTTP 500".to_owned()))
                .collect(),
            ..Downloaded::default()
        })
    }

    #[test]
    fn warnings_fail_the_job_only_when_asked_and_never_hide_a_failure() {
        let report = [
            "Warnings: 1 node warned".to_owned(),
            "- test.p.t (warn): Got 3 results".to_owned(),
        ];
        fn ending<'a>(run: &'a Run, report: &'a [String]) -> Ending<'a> {
            Ending {
                run,
                took: Duration::from_secs(95),
                digest: None,
                counts: Some("step 4 \"Invoke dbt build\": 36 success, 1 warn".into()),
                warnings: report,
                replaced_by: None,
                usage: Usage::default(),
            }
        }
        let strict = Strictness {
            fail_on_run_error: true,
            fail_on_warnings: true,
        };
        let lenient = Strictness {
            fail_on_warnings: false,
            ..strict
        };
        let success = run(10);
        let summary = verdict(
            &ending(&success, &report),
            Artifacts::Skipped,
            true,
            lenient,
        )
        .outcome
        .unwrap()
        .unwrap();
        assert_eq!(
            summary,
            "Done: run 7 succeeded in 1m 35s; step 4 \"Invoke dbt build\": 36 success, 1 warn; artifacts skipped (ignore_artifacts)"
        );
        let error = verdict(&ending(&success, &report), Artifacts::Skipped, true, strict)
            .outcome
            .unwrap_err();
        assert!(is_user_error(&error));
        assert_eq!(
            error.to_string(),
            "dbt Cloud run 7 succeeded with warnings, and fail_on_warnings is true. Warnings: 1 node warned. The tables are written. See https://x.dbt.com/runs/7/."
        );
        assert_eq!(
            crate::error::details(&error),
            ["- test.p.t (warn): Got 3 results"]
        );
        let failed = run(20);
        let error = verdict(&ending(&failed, &report), Artifacts::Skipped, true, strict)
            .outcome
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("dbt Cloud run 7 ended in Error"),
            "{error}"
        );
        let tolerated = Strictness {
            fail_on_run_error: false,
            fail_on_warnings: true,
        };
        let error = verdict(
            &ending(&failed, &report),
            Artifacts::Skipped,
            true,
            tolerated,
        )
        .outcome
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "dbt Cloud run 7 ended in Error, which fail_on_run_error: false lets pass, and it warned, which fail_on_warnings: true does not. Warnings: 1 node warned. The tables are written. See https://x.dbt.com/runs/7/.",
        );
        // The report is in the verdict once: its warnings when it fails nothing, the error's
        // message and details when it fails the job.
        let reported = verdict(
            &ending(&success, &report),
            Artifacts::Skipped,
            true,
            lenient,
        );
        assert_eq!(reported.warnings, report);
        let failing = verdict(&ending(&success, &report), Artifacts::Skipped, true, strict);
        assert_eq!(
            failing.warnings,
            ["Warnings: 1 node warned"],
            "its lines are details"
        );
        let failed_too = verdict(&ending(&failed, &report), Artifacts::Skipped, true, strict);
        assert_eq!(
            failed_too.warnings, report,
            "a failed run's error is its failure"
        );
    }

    /// Keboola keeps a job's artifacts only when it succeeds: every exit 1 that follows
    /// downloaded artifacts says so, whatever made it fail, and none says so when none came.
    #[test]
    fn every_failure_after_downloaded_artifacts_says_keboola_keeps_them_only_on_success() {
        const KEPT: &str = "Keboola keeps the job's artifacts only when the job succeeds";
        let report = ["Warnings: 1 node warned".to_owned()];
        let strict = Strictness {
            fail_on_run_error: true,
            fail_on_warnings: true,
        };
        let tolerant = Strictness {
            fail_on_run_error: false,
            ..strict
        };
        // (run status, artifacts, artifacts_must_succeed, strictness, warned, said)
        let cases: Vec<(u64, Artifacts, bool, Strictness, bool, bool)> = vec![
            (10, downloaded(2, 0), true, strict, true, true),
            (10, downloaded(1, 1), true, strict, false, true),
            (20, downloaded(2, 0), true, strict, false, true),
            (20, downloaded(1, 1), true, strict, false, true),
            (20, downloaded(1, 1), true, tolerant, false, true),
            (20, downloaded(2, 0), true, tolerant, true, true),
            (10, downloaded(0, 2), true, strict, false, false),
            (20, downloaded(0, 0), true, strict, false, false),
            (20, Artifacts::Skipped, true, strict, true, false),
            (10, Artifacts::Skipped, true, strict, true, false),
        ];
        for (status, artifacts, must_succeed, strictness, warned, said) in cases {
            let case = format!("status {status}, {strictness:?}, warned {warned}");
            let run = run(status);
            let ending = Ending {
                run: &run,
                took: Duration::from_secs(95),
                digest: None,
                counts: None,
                warnings: if warned { &report } else { &[] },
                replaced_by: None,
                usage: Usage::default(),
            };
            let error = verdict(&ending, artifacts, must_succeed, strictness)
                .outcome
                .expect_err(&case);
            let message = format!("{error:#}");
            assert_eq!(message.contains(KEPT), said, "{case}: {message}");
            assert!(is_user_error(&error), "{case}: {message}");
        }
    }

    /// Every way the job can end: (run status, artifacts, artifacts_must_succeed,
    /// fail_on_run_error) → exit code, the start of the message, and how many warnings.
    #[test]
    fn the_exit_matrix() {
        let listing_failed = || Artifacts::NotDownloaded(UserError::new("no list").into());
        let cases: Vec<(u64, Artifacts, bool, bool, u8, &str, usize)> = vec![
            (10, downloaded(2, 0), true, true, 0, "Done: run 7 succeeded in 1m 35s; 2 artifacts, 44.6 KB", 0),
            (10, Artifacts::Skipped, true, true, 0, "Done: run 7 succeeded in 1m 35s; artifacts skipped (ignore_artifacts)", 0),
            (10, downloaded(1, 0), true, true, 0, "Done: run 7 succeeded in 1m 35s; 1 artifact, 22.3 KB", 0),
            (10, downloaded(0, 1), false, true, 1, "1 of 1 artifact of run 7 could not be downloaded", 0),
            (10, downloaded(1, 1), true, true, 1, "1 of 2 artifacts of run 7 could not be downloaded: g0.json (the first: HTTP 500)", 0),
            (10, downloaded(1, 1), false, true, 0, "Done: run 7 succeeded", 1),
            (10, downloaded(0, 2), false, true, 1, "2 of 2 artifacts of run 7 could not be downloaded", 0),
            (10, listing_failed(), true, true, 1, "no list", 0),
            (20, downloaded(2, 0), true, true, 1, "dbt Cloud run 7 ended in Error: Failed. See https://x.dbt.com/runs/7/. The tables are written; 2 artifacts, 44.6 KB. Keboola keeps the job's artifacts only when the job succeeds (fail_on_run_error: false keeps them).", 0),
            (20, Artifacts::Skipped, true, true, 1, "dbt Cloud run 7 ended in Error: Failed. See https://x.dbt.com/runs/7/. The tables are written; artifacts skipped (ignore_artifacts).", 0),
            (20, downloaded(1, 1), true, true, 1, "dbt Cloud run 7 ended in Error: Failed. See https://x.dbt.com/runs/7/. Also, 1 of 2 artifacts", 0),
            (20, downloaded(2, 0), true, false, 0, "", 1),
            (20, downloaded(1, 1), true, false, 1, "1 of 2 artifacts", 1),
            (30, downloaded(0, 0), true, true, 1, "dbt Cloud run 7 was cancelled: Failed", 0),
        ];
        for (status, artifacts, must_succeed, fail_on_run_error, exit, message, warnings) in cases {
            let case = format!("status {status}, must_succeed {must_succeed}, fail_on_run_error {fail_on_run_error}");
            let run = run(status);
            let ending = Ending {
                run: &run,
                took: Duration::from_secs(95),
                digest: None,
                counts: None,
                warnings: &[],
                replaced_by: None,
                usage: Usage::default(),
            };
            let strictness = Strictness {
                fail_on_run_error,
                fail_on_warnings: false,
            };
            let verdict = verdict(&ending, artifacts, must_succeed, strictness);
            assert_eq!(
                verdict.warnings.len(),
                warnings,
                "{case}: {:?}",
                verdict.warnings
            );
            match (verdict.outcome, exit) {
                (Ok(summary), 0) => {
                    let summary = summary.unwrap_or_default();
                    assert!(summary.starts_with(message), "{case}: {summary}");
                }
                (Err(error), 1) => {
                    assert!(is_user_error(&error), "{case}: {error:#}");
                    assert!(
                        format!("{error:#}").starts_with(message),
                        "{case}: {error:#}"
                    );
                }
                (outcome, _) => panic!(
                    "{case}: expected exit {exit}, got {:?}",
                    outcome.map_err(|e| format!("{e:#}"))
                ),
            }
        }
    }
}
