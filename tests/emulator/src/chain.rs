//! Job chaining ("Run when another job finishes"): when a run of a parent job ends with one of
//! the statuses a child job's `job_completion_trigger_condition` names, dbt Cloud enqueues a run
//! of the child, whose trigger says `job completion` and names the parent run in its cause, and
//! nothing else links the two.
//!
//! Runs are derived from their age and there is no clock thread, so the chained runs are made
//! lazily: before the emulator answers a request or a test reads its runs, every run whose
//! moment has come is created, backdated to that moment, in the order dbt Cloud would have
//! created them (so that ids still grow with creation time). A job added later is not enqueued
//! by a run that ended before it was added.

use std::time::{Duration, Instant};

use serde_json::{json, Map};

use crate::scenario::JobState;
use crate::state::{trigger_json, RunRecord, State};

/// How long after its parent ends a chained run is created, unless the test says otherwise.
pub const DEFAULT_DELAY: Duration = Duration::from_millis(200);

/// A cycle of runs that take no time still moves in time, so that enqueuing ends.
pub const MIN_DELAY: Duration = Duration::from_millis(1);

impl State {
    /// Creates every chained run due by `now`, earliest first: a run created here may end
    /// before `now` too and enqueue its own children (any depth, cycles included).
    pub fn enqueue_chained(&mut self, now: Instant) {
        let delay = self.chain_delay.max(MIN_DELAY);
        if self
            .jobs
            .values()
            .all(|job| job.completion_trigger.is_none())
        {
            // Nothing is chained: the ended runs enqueue nothing, whatever the order.
            for run in self.runs.values_mut() {
                run.children_enqueued |= run.created + run.ending().0 + delay <= now;
            }
            return;
        }
        while let Some(parent) = self.next_due(now, delay) {
            self.enqueue_children_of(parent, delay);
        }
    }

    /// The run whose children are due soonest (its end plus `delay` at or before `now`), if any.
    fn next_due(&self, now: Instant, delay: Duration) -> Option<u64> {
        self.runs
            .values()
            .filter(|run| !run.children_enqueued)
            .map(|run| (run.created + run.ending().0, run.id))
            .filter(|(end, _)| *end + delay <= now)
            .min()
            .map(|(_, id)| id)
    }

    fn enqueue_children_of(&mut self, parent_id: u64, delay: Duration) {
        let Some(parent) = self.runs.get_mut(&parent_id) else {
            return;
        };
        parent.children_enqueued = true;
        let parent = parent.clone();
        let (end, status) = parent.ending();
        let Some(parent_job) = self.jobs.get(&parent.job_id) else {
            return;
        };
        let parent_project = parent_job.project_id;
        let children: Vec<_> = self
            .jobs
            .values()
            .filter(|job| {
                job.account_id == parent.account_id
                    && job.state == JobState::Active
                    && !job.deactivated
            })
            .filter(|job| {
                job.completion_trigger.as_ref().is_some_and(|trigger| {
                    trigger.job_id == parent.job_id
                        && trigger.project_id == parent_project
                        && trigger.statuses.contains(&status)
                })
            })
            .cloned()
            .collect();
        let created = parent.created + end + delay;
        let created_at =
            parent.created_at + chrono::Duration::from_std(end + delay).unwrap_or_default();
        let cause = format!("Triggered by completion of run {}", parent.id);
        for job in children {
            let mut trigger =
                trigger_json(&job, &Map::from_iter([("cause".to_owned(), json!(cause))]));
            trigger["cause_category"] = json!("job completion");
            let mut timeline = job.timeline;
            // The scheduler runs one run of a job at a time: this one waits for the job's others.
            timeline.queued += self
                .busy_until(job.id, created)
                .saturating_duration_since(created);
            let id = self.next_run_id();
            self.runs.insert(
                id,
                RunRecord {
                    id,
                    job_id: job.id,
                    account_id: job.account_id,
                    trigger,
                    created,
                    created_at,
                    cancelled_after: None,
                    cancelled_because: None,
                    timeline,
                    outcome: job.outcome,
                    children_enqueued: false,
                },
            );
        }
    }

    /// When the last run of `job_id` in progress at `at` ends (`at` when none is).
    fn busy_until(&self, job_id: u64, at: Instant) -> Instant {
        self.runs
            .values()
            .filter(|run| run.job_id == job_id && run.created <= at)
            .map(|run| run.created + run.ending().0)
            .filter(|end| *end > at)
            .max()
            .unwrap_or(at)
    }
}
