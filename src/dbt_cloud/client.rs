//! The dbt Cloud Administrative API v2 endpoints this component calls, each answer checked
//! against what was asked: runs (get, cancel, list), jobs, artifact lists. The wire is
//! transport.rs; the exactly-once start of a run, trigger.rs; downloads, download.rs.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use log::warn;
use reqwest::Method;

use super::answer::{Listed, Unreadable};
use super::ids::{AccountId, JobId, RunId, WholeNumber};
use super::plan::{Budget, JobBound, Phase};
use super::rate_limit::Usage;
use super::run::{Run, RunStatus, Runs};
use super::transport::Transport;
use super::Connection;
use crate::termination::Termination;
use crate::text::truncate;
use crate::timing::Timing;

/// What an answer may include beside a run or job (`include_related`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Related {
    Trigger,
    Job,
    RunSteps,
    Environment,
}

impl Related {
    /// The `include_related` parameter: a JSON list of names.
    pub(super) fn param(related: &[Related]) -> String {
        let names: Vec<String> = related
            .iter()
            .map(|r| {
                format!(
                    "{:?}",
                    match r {
                        Related::Trigger => "trigger",
                        Related::Job => "job",
                        Related::RunSteps => "run_steps",
                        Related::Environment => "environment",
                    }
                )
            })
            .collect();
        format!("[{}]", names.join(","))
    }
}

/// What get-run asks to include: the trigger and job for the run table, the steps for the logs.
const RUN_RELATED: &[Related] = &[Related::Trigger, Related::Job, Related::RunSteps];
/// What the trigger answer carries, and so what an adopted run is listed with.
pub(super) const TRIGGERED_RELATED: &[Related] = &[Related::Trigger, Related::Job];
/// A job's or an environment's name is kept this long at most.
const NAME_CHARS: usize = 1_000;
/// How many candidate runs an ambiguous lost trigger names.
pub(super) const CANDIDATES_NAMED: usize = 5;

/// A job as the Job ID dropdown shows it and a name finds it; the rest of dbt Cloud's job is
/// skipped unread.
#[derive(Debug, serde::Deserialize)]
pub struct JobSummary {
    pub id: WholeNumber,
    pub name: Option<String>,
    #[serde(default)]
    pub project_id: Option<WholeNumber>,
    pub environment: Option<EnvironmentSummary>,
    /// "Run when another job finishes": the parent job and its end statuses, as dbt Cloud
    /// sent them (read by `chain`); null when unset.
    #[serde(default, rename = "job_completion_trigger_condition")]
    pub completion_trigger: Option<serde_json::Value>,
    /// 1 active, 2 deleted.
    #[serde(default, deserialize_with = "lenient")]
    pub state: Option<WholeNumber>,
    /// dbt Cloud deactivated the job after repeated failures: nothing starts it.
    #[serde(default, deserialize_with = "lenient")]
    pub deactivated: Option<bool>,
}

/// A field the job can do without: of another type, it is left out rather than the whole job.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = <serde_json::Value as serde::Deserialize>::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[derive(Debug, serde::Deserialize)]
pub struct EnvironmentSummary {
    pub name: Option<String>,
    /// `production`, `staging`, or null for a general deployment environment.
    #[serde(default)]
    pub deployment_type: Option<String>,
    /// `deployment` or `development`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// dbt Cloud's API for one account, as this component calls it.
pub struct DbtCloud {
    pub(super) wire: Transport,
    /// `max_requests_per_minute`, when set: the share of the account's requests, never sized.
    pub(super) configured_share: Option<u32>,
    /// What dbt Cloud sent that could only be read leniently, said once each.
    said: Mutex<HashSet<String>>,
}

impl DbtCloud {
    /// A client whose share of the account's requests is `max_requests_per_minute`, or, until
    /// [`DbtCloud::size_share`] sizes it, the share with which eight runs stay under the limit.
    pub fn new(
        connection: &Connection,
        max_requests_per_minute: Option<u32>,
        timing: Timing,
        termination: Termination,
    ) -> Result<DbtCloud> {
        let share = max_requests_per_minute.unwrap_or(super::share::CROWDED);
        Ok(DbtCloud {
            wire: Transport::new(connection, share, timing, termination)?,
            configured_share: max_requests_per_minute,
            said: Mutex::new(HashSet::new()),
        })
    }

    /// The same client, no request of which goes on past the job's deadline: it bounds every
    /// call's retries, pauses and timeouts, and every download.
    pub fn until(self, job: JobBound) -> DbtCloud {
        DbtCloud {
            wire: self.wire.until(job),
            ..self
        }
    }

    /// Until the returned guard is dropped, every call with [`Budget::Standard`] (or `Once`) and
    /// every download of a file only read ends by `until` (and its retries with it); `passed`
    /// names that bound in the error when it is reached.
    pub fn phase(&self, until: Instant, passed: String) -> Phase<'_> {
        self.wire.phase(until, passed)
    }

    /// What the job has asked of dbt Cloud so far, and what the account's rate limit cost it.
    pub fn usage(&self) -> Usage {
        self.wire.usage()
    }

    pub fn termination(&self) -> &Termination {
        self.wire.termination()
    }

    pub fn timing(&self) -> &Timing {
        self.wire.timing()
    }

    /// Now, on dbt Cloud's clock as its answers' `Date` tells it (ours when none told it), so
    /// that the age of a run does not depend on this machine's clock.
    pub fn now_on_dbt_cloud(&self) -> DateTime<Utc> {
        self.wire.now_on_dbt_cloud()
    }

    /// For the last look and the cancel once `max_wait_time` has passed: brief, bounded, and
    /// never held by the run's own share of requests.
    pub fn after_deadline(&self) -> Budget {
        Budget::Final(Instant::now() + self.wire.timing().after_deadline)
    }

    fn account(&self) -> AccountId {
        self.wire.account()
    }

    pub fn newest_run(&self, job: JobId) -> Result<Option<Run>> {
        Ok(self
            .list_runs(job, 1, &[], &[], Budget::Standard)?
            .into_iter()
            .next())
    }

    /// The job's queued, starting and running runs, newest first, with trigger and job.
    pub fn runs_in_progress(&self, job: JobId) -> Result<Vec<Run>> {
        self.list_runs(
            job,
            100,
            TRIGGERED_RELATED,
            RunStatus::IN_PROGRESS,
            Budget::Standard,
        )
    }

    /// The run with its trigger, job and steps.
    pub fn get_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let mut url = self.wire.api_url(&["runs", &run.to_string(), ""]);
        url.query_pairs_mut()
            .append_pair("include_related", &Related::param(RUN_RELATED));
        let answer = self
            .wire
            .call(Method::GET, url, &format!("run {run}"), budget)?;
        self.the_run_asked(run, answer)
    }

    pub fn cancel_run(&self, run: RunId, budget: Budget) -> Result<Run> {
        let url = self.wire.api_url(&["runs", &run.to_string(), "cancel", ""]);
        let answer = self
            .wire
            .call(Method::POST, url, &format!("run {run}"), budget)?;
        self.the_run_asked(run, answer)
    }

    /// `answer`, when it is the run asked for, of our account: another is dbt Cloud's error,
    /// which nothing may be decided on.
    fn the_run_asked(&self, asked: RunId, answer: Run) -> Result<Run> {
        self.note_oddities(&answer);
        let account = self.account().get();
        if answer.id == asked && answer.account.is_none_or(|of| of == account) {
            return Ok(answer);
        }
        Err(Unreadable(format!(
            "dbt Cloud answered for run {asked} with run {} of account {}, not the run asked for in \
             account {account}; nothing is decided on that answer. If it persists, please report \
             it to dbt Cloud support.",
            answer.id,
            answer.account.map_or("unknown".to_owned(), |of| of.to_string()),
        ))
        .into())
    }

    /// A run dbt Cloud started for `job`, when it says so: a run of another job or account is
    /// dbt Cloud's error, and nothing is followed on it.
    pub(super) fn of_the_job(&self, job: JobId, run: Run) -> Result<Run> {
        self.note_oddities(&run);
        let account = self.account().get();
        if run.job.is_none_or(|of| of == job.get()) && run.account.is_none_or(|of| of == account) {
            return Ok(run);
        }
        Err(Unreadable(format!(
            "dbt Cloud answered the start of job {job} in account {account} with run {} of job {} \
             in account {}; it is not followed. If it persists, please report it to dbt Cloud \
             support.",
            run.id,
            run.job.map_or("unknown".to_owned(), |of| of.to_string()),
            run.account
                .map_or("unknown".to_owned(), |of| of.to_string()),
        ))
        .into())
    }

    /// Says once what dbt Cloud sent that could only be read leniently.
    fn note_oddities(&self, run: &Run) {
        for oddity in run.oddities() {
            if self.say_once(oddity) {
                warn!("{oddity}");
            }
        }
    }

    /// Whether `what` is said for the first time: true once.
    pub(super) fn say_once(&self, what: &str) -> bool {
        self.said
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(what.to_owned())
    }

    /// Artifact paths relative to the run's `target/` folder; empty when there are none (yet).
    pub fn list_artifacts(&self, run: RunId) -> Result<Vec<String>> {
        let url = self
            .wire
            .api_url(&["runs", &run.to_string(), "artifacts", ""]);
        // null when the run produced none.
        let paths: Option<Vec<String>> = self.wire.call(
            Method::GET,
            url,
            &format!("artifact list of run {run}"),
            Budget::Standard,
        )?;
        Ok(paths.unwrap_or_default())
    }

    /// How long the job's last few successful runs took, from creation to finish, newest first.
    pub fn recent_durations(
        &self,
        job: JobId,
        count: usize,
        budget: Budget,
    ) -> Result<Vec<Duration>> {
        let runs = self.list_runs(job, count, &[], &[RunStatus::Success], budget)?;
        Ok(runs
            .iter()
            .filter_map(|run| {
                let finished = run.timestamp("finished_at")?;
                (finished - run.timestamp("created_at")?).to_std().ok()
            })
            .collect())
    }

    /// Every job of the account, page by page, until a page is short or empty, a page repeats
    /// one already seen (a server that ignores the offset), or `budget` has passed: then what
    /// came, and why it stopped early. `total_count` is not trusted to end the list (dbt Cloud's
    /// may be understated); a page that fails after the first keeps the pages already read.
    pub fn list_jobs(&self, budget: Duration) -> Result<(Vec<JobSummary>, Option<String>)> {
        const PAGE: usize = 100;
        let started = Instant::now();
        let mut jobs: Vec<JobSummary> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        loop {
            let page = match self.jobs_page(PAGE, jobs.len()) {
                Ok(page) => page,
                Err(error) if jobs.is_empty() || crate::termination::is_terminated(&error) => {
                    return Err(error)
                }
                Err(error) => {
                    let note = format!(
                        "dbt Cloud stopped answering after {} ({}); those are listed",
                        crate::text::counted(jobs.len(), "job", "jobs"),
                        crate::text::cut(&format!("{error:#}"))
                    );
                    return Ok((jobs, Some(note)));
                }
            };
            let short = page.len() < PAGE;
            let new: Vec<JobSummary> = page
                .into_iter()
                .filter(|job| seen.insert(job.id.0))
                .collect();
            let repeated = new.is_empty();
            jobs.extend(new);
            if short || repeated {
                let note = (repeated && !short).then(|| {
                    format!(
                        "dbt Cloud sent a page of jobs again after {}; the list may be incomplete",
                        jobs.len()
                    )
                });
                return Ok((jobs, note));
            }
            if started.elapsed() >= budget {
                let note = format!(
                    "dbt Cloud was still sending pages of jobs after {} s; the first {} are listed",
                    budget.as_secs(),
                    jobs.len()
                );
                return Ok((jobs, Some(note)));
            }
        }
    }

    /// The first `limit` jobs: the cheapest call that proves the URL, the token and the account.
    pub fn list_jobs_page(&self, limit: usize) -> Result<Vec<JobSummary>> {
        self.jobs_page(limit, 0)
    }

    /// A page of jobs. A job that cannot be read (an id that is not a number, say) is left out,
    /// with a warning.
    fn jobs_page(&self, limit: usize, offset: usize) -> Result<Vec<JobSummary>> {
        let mut url = self.wire.api_url(&["jobs", ""]);
        url.query_pairs_mut()
            .append_pair("include_related", &Related::param(&[Related::Environment]))
            .append_pair("order_by", "id")
            .append_pair("limit", &limit.to_string())
            .append_pair("offset", &offset.to_string());
        let Listed::<JobSummary> { mut items, unread } =
            self.wire.call(Method::GET, url, "jobs", Budget::Standard)?;
        // A name is a label: a long one costs memory for every job of the account, and helps no
        // one read the dropdown. Masked before the cut, which could leave part of a token that
        // the whole one's mask no longer finds.
        let shorten = |name: &mut Option<String>| {
            if let Some(name) = name {
                *name = truncate(&crate::secret::mask(name), NAME_CHARS).to_owned();
            }
        };
        for job in &mut items {
            shorten(&mut job.name);
            if let Some(environment) = &mut job.environment {
                shorten(&mut environment.name);
            }
        }
        if let Some(first) = unread.first() {
            warn!(
                "dbt Cloud listed {} job(s) that could not be read, left out (the first: {})",
                unread.len(),
                crate::text::cut(first)
            );
        }
        Ok(items)
    }

    /// When `error` is dbt Cloud refusing the token (401 or 403): whether it refuses this
    /// machine's address for the account instead (an IP allow-list), told by one request
    /// without the token. `None` for any other error, or when that request tells nothing.
    pub fn address_refused(&self, error: &anyhow::Error) -> Option<bool> {
        match super::RefusalKind::of(error) {
            Some(super::RefusalKind::TokenRefused | super::RefusalKind::Forbidden) => {
                self.wire.address_refused()
            }
            _ => None,
        }
    }

    /// Whether the job exists: an error naming it when it does not.
    pub fn check_job(&self, job: JobId) -> Result<()> {
        let url = self.wire.api_url(&["jobs", &job.to_string(), ""]);
        let _: serde::de::IgnoredAny =
            self.wire
                .call(Method::GET, url, &format!("job {job}"), Budget::Standard)?;
        Ok(())
    }

    /// The job's `count` newest runs with their triggers, within `budget`.
    pub fn triggered_runs(&self, job: JobId, count: usize, budget: Budget) -> Result<Vec<Run>> {
        self.list_runs(job, count, &[Related::Trigger], &[], budget)
    }

    /// The job's newest runs, with their triggers.
    pub fn recent_runs(&self, job: JobId, count: usize) -> Result<Vec<Run>> {
        self.list_runs(job, count, &[Related::Trigger], &[], Budget::Standard)
    }

    /// The job's newest runs, only those in `statuses` when some are given.
    pub(super) fn list_runs(
        &self,
        job: JobId,
        limit: usize,
        related: &[Related],
        statuses: &[RunStatus],
        budget: Budget,
    ) -> Result<Vec<Run>> {
        let mut url = self.wire.api_url(&["runs", ""]);
        let codes: Vec<String> = statuses
            .iter()
            .filter_map(|status| status.code())
            .map(|code| code.to_string())
            .collect();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("job_definition_id", &job.to_string());
            match codes.as_slice() {
                [] => {}
                [code] => {
                    query.append_pair("status", code);
                }
                codes => {
                    query.append_pair("status__in", &format!("[{}]", codes.join(",")));
                }
            }
            query
                .append_pair("order_by", "-id")
                .append_pair("limit", &limit.to_string());
            if !related.is_empty() {
                query.append_pair("include_related", &Related::param(related));
            }
        }
        let Runs(listed) =
            self.wire
                .call(Method::GET, url, &format!("runs of job {job}"), budget)?;
        Ok(self.only_asked(listed, job, statuses))
    }

    /// The listed runs that are what was asked for: of the job, in our account, in one of
    /// `statuses` when some were given. dbt Labs' spec does not say how `status__in` is written, and a run
    /// that slipped through one (a finished run among those in progress, another job's) must not
    /// be skipped for, waited on, cancelled or adopted: it is left out, with a warning.
    fn only_asked(&self, listed: Vec<Run>, job: JobId, statuses: &[RunStatus]) -> Vec<Run> {
        let account = self.account().get();
        let (asked, strays): (Vec<Run>, Vec<Run>) = listed.into_iter().partition(|run| {
            run.account == Some(account)
                && run.job == Some(job.get())
                && (statuses.is_empty() || statuses.contains(&run.status))
        });
        for run in &asked {
            self.note_oddities(run);
        }
        if !strays.is_empty() {
            let named: Vec<String> = strays
                .iter()
                .take(CANDIDATES_NAMED)
                .map(|run| {
                    let id = |id: Option<u64>| id.map_or("unknown".to_owned(), |id| id.to_string());
                    format!(
                        "run {} (job {}, account {}, {})",
                        run.id,
                        id(run.job),
                        id(run.account),
                        run.status
                    )
                })
                .collect();
            let wanted = match statuses {
                [] => String::new(),
                statuses => {
                    let names: Vec<String> = statuses.iter().map(ToString::to_string).collect();
                    format!(", {}", names.join(" or "))
                }
            };
            warn!(
                "dbt Cloud listed {} run(s) that are not what was asked for (runs of job {job} in \
                 account {account}{wanted}), left out: {}",
                strays.len(),
                named.join(", ")
            );
        }
        asked
    }
}

#[cfg(test)]
pub mod tests_support {
    pub use super::super::answer::tests_support::decode_answer;
    use super::super::refusal::{api_field_errors, api_user_message};

    pub fn error_details(body: &[u8]) -> (Option<String>, Option<String>) {
        (api_user_message(body), api_field_errors(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_records_are_asked_for_as_the_api_spells_them() {
        assert_eq!(
            Related::param(RUN_RELATED),
            r#"["trigger","job","run_steps"]"#
        );
        assert_eq!(
            Related::param(&[Related::Environment]),
            r#"["environment"]"#
        );
        let codes: Vec<i64> = RunStatus::IN_PROGRESS
            .iter()
            .filter_map(|s| s.code())
            .collect();
        assert_eq!(codes, [1, 2, 3]);
    }
}
