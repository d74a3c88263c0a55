//! The runs dbt Cloud starts when ours ends (`wait_for_chained_jobs`): jobs set to "Run when
//! another job finishes" carry a `job_completion_trigger_condition` naming the parent job and
//! the parent's end statuses that start them. No field of a run names the run that started it;
//! a chained run's trigger only says `cause_category: "job completion"` (and its cause text
//! usually names the parent run). So the chain is found from the account's jobs, once, and each
//! chained run is the chained job's first run of that category created after its parent ended.
//!
//! The chain is followed as one set: every run found is polled on its own schedule, so the runs
//! of a fan-out are waited for at once, and each run's end may add the jobs chained to it (to
//! [`MAX_DEPTH`] levels, each job once, so a cycle ends).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use log::{info, warn};
use serde_json::Value;

use crate::dbt_cloud::{Budget, DbtCloud, JobId, JobSummary, Run, RunId, RunStatus};
use crate::timing::Timing;
use crate::wait::{Narrator, Polling};

/// Levels of chained jobs followed below our run's job.
pub const MAX_DEPTH: usize = 10;
/// A chained run is created after its parent ended, but the two times may come from different
/// parts of dbt Cloud: a run created up to this long before the parent's end still counts.
const CLOCK_ALLOWANCE: Duration = Duration::from_secs(60);
/// The chained job's newest runs looked through for its chained run.
const RUNS_LOOKED_AT: usize = 10;

/// A job that runs when another job's run ends, and on which of its end statuses.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedJob {
    pub id: JobId,
    pub name: String,
    /// dbt Cloud's end codes (10 success, 20 error, 30 cancelled).
    on: Vec<u64>,
    /// Why dbt Cloud will not start it, when it will not.
    idle: Option<&'static str>,
}

/// Every chained job of the account, by the job whose end starts it.
#[derive(Debug, Default)]
pub struct Jobs {
    by_parent: HashMap<JobId, Vec<ChainedJob>>,
}

impl Jobs {
    /// The chains among the account's jobs; a job without a readable condition starts no chain.
    pub fn of(jobs: &[JobSummary]) -> Jobs {
        let mut by_parent: HashMap<JobId, Vec<ChainedJob>> = HashMap::new();
        for job in jobs {
            let Some((parent, on)) = job.completion_trigger.as_ref().and_then(condition) else {
                continue;
            };
            let Some(id) = JobId::new(job.id.0) else {
                continue;
            };
            let idle = if job.state.is_some_and(|state| state.0 == 2) {
                Some("it is deleted")
            } else if job.deactivated == Some(true) {
                Some("dbt Cloud deactivated it")
            } else {
                None
            };
            by_parent.entry(parent).or_default().push(ChainedJob {
                id,
                name: job.name.clone().unwrap_or_default(),
                on,
                idle,
            });
        }
        Jobs { by_parent }
    }

    /// The jobs dbt Cloud starts when a run of `parent` ends with `status`.
    fn started_by(&self, parent: JobId, status: RunStatus) -> Vec<&ChainedJob> {
        let Some(code) = status.code().and_then(|code| u64::try_from(code).ok()) else {
            return Vec::new();
        };
        self.by_parent
            .get(&parent)
            .map(|jobs| jobs.iter().filter(|job| job.on.contains(&code)).collect())
            .unwrap_or_default()
    }
}

/// `{"condition": {"job_id": 1, "project_id": 1, "statuses": [10, 20]}}`: the parent job and the
/// codes; `None` for null or anything else.
fn condition(trigger: &Value) -> Option<(JobId, Vec<u64>)> {
    let condition = trigger.get("condition")?;
    let number = |value: &Value| {
        value
            .as_u64()
            .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
    };
    let parent = JobId::new(number(condition.get("job_id")?)?)?;
    let on = condition
        .get("statuses")?
        .as_array()?
        .iter()
        .filter_map(number)
        .collect();
    Some((parent, on))
}

/// One chained job of the chain, and its run when it has one.
#[derive(Debug)]
pub struct Link {
    pub job: JobId,
    pub job_name: String,
    /// The run whose end started it, and that run's job.
    pub parent_run: RunId,
    pub parent_job: JobId,
    pub parent_status: RunStatus,
    /// 1 for a job chained to ours, 2 for one chained to that, ...
    pub depth: usize,
    pub state: LinkState,
}

#[derive(Debug)]
pub enum LinkState {
    /// Its run has not appeared yet: looked for until `until`.
    Awaited {
        parent_ended: Option<DateTime<Utc>>,
        until: Instant,
        next: Instant,
    },
    /// Its run, in progress, as last seen.
    Running {
        run: Run,
        since: Instant,
        next: Instant,
        narrator: Narrator,
    },
    Ended(Run),
    /// No run of it appeared in time.
    NeverCame,
}

impl Link {
    pub fn run(&self) -> Option<&Run> {
        match &self.state {
            LinkState::Running { run, .. } | LinkState::Ended(run) => Some(run),
            LinkState::Awaited { .. } | LinkState::NeverCame => None,
        }
    }

    /// A look at its run after a cancel.
    pub fn seen(&mut self, run: Run) {
        if let LinkState::Running { run: last, .. } = &mut self.state {
            if run.status.is_final() {
                self.state = LinkState::Ended(run);
            } else {
                *last = run;
            }
        }
    }

    /// `job 456 "Downstream marts"`.
    pub fn job_words(&self) -> String {
        format!("job {} {:?}", self.job, self.job_name)
    }

    /// What became of it, for its table row and the closing line.
    pub fn outcome(&self) -> String {
        match &self.state {
            LinkState::Awaited { .. } => "not appeared".to_owned(),
            LinkState::NeverCame => "never appeared".to_owned(),
            LinkState::Running { run, .. } | LinkState::Ended(run) => run.status.to_string(),
        }
    }

    fn next_look(&self) -> Option<Instant> {
        match &self.state {
            LinkState::Awaited { next, .. } | LinkState::Running { next, .. } => Some(*next),
            LinkState::Ended(_) | LinkState::NeverCame => None,
        }
    }
}

/// The chain below our run: the jobs met, and a link for each chained job followed.
#[derive(Debug)]
pub struct Chain {
    jobs: Jobs,
    /// Our run's job and every chained job already followed: each job once.
    met: HashSet<JobId>,
    pub links: Vec<Link>,
    /// A fixed `poll_interval`, when set.
    fixed: Option<Duration>,
    /// How long a chained run may take to appear, and how often it is looked for.
    appear: Duration,
    look: Duration,
}

impl Chain {
    /// The chain as it starts: the jobs our run's end starts. Our run cancelled starts none
    /// that we wait for.
    pub fn new(
        jobs: Jobs,
        ours: &Run,
        our_job: JobId,
        fixed: Option<Duration>,
        timing: &Timing,
    ) -> Chain {
        let mut chain = Chain {
            jobs,
            met: HashSet::from([our_job]),
            links: Vec::new(),
            fixed,
            appear: timing.chain_appear,
            look: timing.chain_look,
        };
        if ours.status == RunStatus::Cancelled {
            info!(
                "Run {} was cancelled: the jobs chained to it are not waited for",
                ours.id
            );
        } else {
            chain.ended(ours, our_job, 0);
        }
        chain
    }

    /// `run` of `job` ended: the jobs it starts are awaited, each once, within the depth.
    fn ended(&mut self, run: &Run, job: JobId, depth: usize) {
        let now = Instant::now();
        let started: Vec<ChainedJob> = self
            .jobs
            .started_by(job, run.status)
            .into_iter()
            .cloned()
            .collect();
        for chained in started {
            let what = format!(
                "Run {} {}; job {} {:?} runs on its {}",
                run.id,
                ended_words(run.status),
                chained.id,
                chained.name,
                end_word(run.status)
            );
            if let Some(why) = chained.idle {
                info!("{what}, but {why}: not waited for");
                continue;
            }
            if depth + 1 > MAX_DEPTH {
                warn!("{what}, {MAX_DEPTH} levels below this job's run: not waited for");
                continue;
            }
            if !self.met.insert(chained.id) {
                info!("{what}, and is already in the chain: followed once");
                continue;
            }
            self.links.push(Link {
                job: chained.id,
                job_name: chained.name,
                parent_run: run.id,
                parent_job: job,
                parent_status: run.status,
                depth: depth + 1,
                state: LinkState::Awaited {
                    parent_ended: run.timestamp("finished_at"),
                    until: now.checked_add(self.appear).unwrap_or(now),
                    next: now,
                },
            });
        }
    }

    /// When something of the chain is next to be looked at; `None` when it has ended.
    pub fn next_look(&self) -> Option<Instant> {
        self.links.iter().filter_map(Link::next_look).min()
    }

    /// Looks at every link due by now, before `deadline`; whether anything changed that the
    /// tables should record.
    pub fn look(&mut self, client: &DbtCloud, deadline: Instant) -> Result<bool> {
        let mut changed = false;
        let mut ended = Vec::new();
        for index in 0..self.links.len() {
            let now = Instant::now();
            let link = &mut self.links[index];
            if link.next_look().is_none_or(|next| next > now) {
                continue;
            }
            let polling = self.fixed.map_or(Polling::Growing, Polling::Fixed);
            let (look, appear) = (self.look, self.appear);
            let words = link.job_words();
            let (parent_run, parent_status) = (link.parent_run, link.parent_status);
            let next_state = match &mut link.state {
                LinkState::Awaited {
                    parent_ended,
                    until,
                    next,
                } => {
                    let budget = Budget::Until(deadline.min(*until));
                    match find(client, link.job, parent_run, *parent_ended, budget) {
                        Ok(Some(run)) => {
                            info!(
                                "Run {parent_run} {}; {words} runs on its {}: run {}, {}",
                                ended_words(parent_status),
                                end_word(parent_status),
                                run.id,
                                run.status
                            );
                            let since = Instant::now();
                            Some(LinkState::Running {
                                narrator: Narrator::new(&run, since),
                                next: since,
                                run,
                                since,
                            })
                        }
                        Ok(None) | Err(_) if Instant::now() >= *until => {
                            warn!(
                                "Run {parent_run} {}; {words} runs on its {}, but no run of it \
                                 appeared within {} s: it is not waited for",
                                ended_words(parent_status),
                                end_word(parent_status),
                                appear.as_secs(),
                            );
                            Some(LinkState::NeverCame)
                        }
                        Ok(None) => {
                            *next = Instant::now() + look;
                            None
                        }
                        Err(error) => {
                            client.termination().check()?;
                            log::debug!("The runs of {words} could not be listed ({error:#})");
                            *next = Instant::now() + look;
                            None
                        }
                    }
                }
                LinkState::Running {
                    run,
                    since,
                    next,
                    narrator,
                } => {
                    let seen = client.get_run(run.id, Budget::Until(deadline))?;
                    let step = |run: &Run| run.current_step().map(|step| (step.index, step.status));
                    changed |= seen.status != run.status || step(&seen) != step(run);
                    *run = seen;
                    narrator.saw(run);
                    if run.status.is_final() {
                        ended.push(index);
                        Some(LinkState::Ended(run.clone()))
                    } else {
                        *next = Instant::now() + polling.interval(since.elapsed());
                        None
                    }
                }
                LinkState::Ended(_) | LinkState::NeverCame => None,
            };
            if let Some(state) = next_state {
                link.state = state;
                changed = true;
            }
        }
        for index in ended {
            let link = &self.links[index];
            if let LinkState::Ended(run) = &link.state {
                let (run, job, depth) = (run.clone(), link.job, link.depth);
                self.ended(&run, job, depth);
            }
        }
        Ok(changed)
    }

    /// The runs of the chain, as last seen.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.links.iter().filter_map(Link::run)
    }

    /// The links not ended: their runs in progress, or not appeared yet.
    pub fn unfinished(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|link| link.next_look().is_some())
    }
}

/// The chained job's run that `parent`'s end started: among its newest, the first created after
/// the parent ended (within [`CLOCK_ALLOWANCE`]) whose trigger is a job completion and, when its
/// cause names a run, names the parent.
fn find(
    client: &DbtCloud,
    job: JobId,
    parent: RunId,
    parent_ended: Option<DateTime<Utc>>,
    budget: Budget,
) -> Result<Option<Run>> {
    let allowance = chrono::Duration::from_std(CLOCK_ALLOWANCE).unwrap_or_default();
    let after = parent_ended.and_then(|ended| ended.checked_sub_signed(allowance));
    let mut runs = client.triggered_runs(job, RUNS_LOOKED_AT, budget)?;
    runs.sort_by_key(|run| run.id);
    Ok(runs.into_iter().find(|run| {
        let trigger = run.field("trigger");
        let text = |key: &str| {
            trigger
                .and_then(|trigger| trigger.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let completion = text("cause_category").is_some_and(|category| {
            category
                .trim()
                .replace('_', " ")
                .eq_ignore_ascii_case("job completion")
        });
        let names_another = text("cause")
            .and_then(|cause| run_named(&cause))
            .is_some_and(|named| named != parent.get());
        let created_after = match (after, run.timestamp("created_at")) {
            (Some(after), Some(created)) => created >= after,
            _ => run.id > parent,
        };
        completion && !names_another && created_after
    }))
}

/// The run a cause names: `Triggered by completion of run 70437497968840`.
fn run_named(cause: &str) -> Option<u64> {
    let (_, after) = cause.rsplit_once("run ")?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn ended_words(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Success => "succeeded",
        RunStatus::Error => "ended in error",
        RunStatus::Cancelled => "was cancelled",
        _ => "ended",
    }
}

fn end_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Success => "success",
        RunStatus::Error => "error",
        RunStatus::Cancelled => "cancellation",
        _ => "end",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(id: u64, name: &str, condition: Value, more: Value) -> JobSummary {
        let mut job = json!({
            "id": id, "name": name, "job_completion_trigger_condition": condition,
        });
        for (key, value) in more.as_object().unwrap() {
            job[key] = value.clone();
        }
        serde_json::from_value(job).unwrap()
    }

    fn on(parent: u64, statuses: &[u64]) -> Value {
        json!({"condition": {"job_id": parent, "project_id": 9, "statuses": statuses}})
    }

    fn run(id: u64, status: u64) -> Run {
        serde_json::from_value(json!({
            "id": id, "status": status, "finished_at": "2026-12-07 10:00:00+00:00",
        }))
        .unwrap()
    }

    fn id(n: u64) -> JobId {
        JobId::new(n).unwrap()
    }

    fn chained_ids(chain: &Chain) -> Vec<(u64, u64, usize)> {
        chain
            .links
            .iter()
            .map(|link| (link.job.get(), link.parent_run.get(), link.depth))
            .collect()
    }

    #[test]
    fn the_jobs_a_run_starts_are_those_its_end_status_names() {
        let jobs = Jobs::of(&[
            job(2, "on success", on(1, &[10]), json!({})),
            job(3, "on anything", on(1, &[10, 20, 30]), json!({})),
            job(4, "on error", on(1, &[20]), json!({})),
            job(5, "another parent", on(7, &[10]), json!({})),
            job(6, "no chain", Value::Null, json!({})),
            // Ids as strings, as dbt Cloud sends some.
            job(
                8,
                "strings",
                json!({"condition": {"job_id": "1", "statuses": ["10"]}}),
                json!({}),
            ),
            job(9, "unreadable", json!({"condition": "?"}), json!({})),
        ]);
        let names = |status| -> Vec<String> {
            jobs.started_by(id(1), status)
                .iter()
                .map(|job| job.name.clone())
                .collect()
        };
        assert_eq!(
            names(RunStatus::Success),
            ["on success", "on anything", "strings"]
        );
        assert_eq!(names(RunStatus::Error), ["on anything", "on error"]);
        assert_eq!(names(RunStatus::Cancelled), ["on anything"]);
    }

    #[test]
    fn deleted_and_deactivated_jobs_are_not_waited_for_nor_a_cancelled_runs() {
        let jobs = || {
            Jobs::of(&[
                job(2, "deleted", on(1, &[10, 30]), json!({"state": 2})),
                job(
                    3,
                    "deactivated",
                    on(1, &[10, 30]),
                    json!({"deactivated": true}),
                ),
                // A field of another type leaves the job readable.
                job(
                    4,
                    "paused",
                    on(1, &[10, 30]),
                    json!({"deactivated": "?", "state": 1}),
                ),
            ])
        };
        let chain = Chain::new(jobs(), &run(100, 10), id(1), None, &Timing::fast());
        assert_eq!(chained_ids(&chain), [(4, 100, 1)]);
        let cancelled = Chain::new(jobs(), &run(100, 30), id(1), None, &Timing::fast());
        assert!(cancelled.links.is_empty());
    }

    #[test]
    fn each_job_is_followed_once_whatever_the_cycle_and_the_depth_is_bounded() {
        // 1 → 2 → 1 (a cycle) and 2 → 3 → 4 → ... → 14 (deeper than the bound).
        let mut jobs = vec![
            job(2, "b", on(1, &[10]), json!({})),
            job(1, "a", on(2, &[10]), json!({})),
        ];
        for n in 3..=14 {
            jobs.push(job(n, "deep", on(n - 1, &[10]), json!({})));
        }
        let mut chain = Chain::new(Jobs::of(&jobs), &run(100, 10), id(1), None, &Timing::fast());
        assert_eq!(chained_ids(&chain), [(2, 100, 1)]);
        // Each run's end as if it had been followed.
        let mut run_id = 100;
        while let Some(index) = chain
            .links
            .iter()
            .position(|link| matches!(link.state, LinkState::Awaited { .. }))
        {
            run_id += 1;
            chain.links[index].state = LinkState::Ended(run(run_id, 10));
            let (job, depth) = (chain.links[index].job, chain.links[index].depth);
            chain.ended(&run(run_id, 10), job, depth);
        }
        let jobs: Vec<u64> = chain.links.iter().map(|link| link.job.get()).collect();
        assert_eq!(
            jobs,
            (2..=11).collect::<Vec<u64>>(),
            "job 1 not again; 10 levels"
        );
        assert_eq!(chain.links.last().unwrap().depth, MAX_DEPTH);
    }

    #[test]
    fn a_cause_names_the_run_that_started_it() {
        assert_eq!(
            run_named("Triggered by completion of run 70437497968840"),
            Some(70437497968840)
        );
        assert_eq!(run_named("Kicked off from UI by someone"), None);
    }
}
