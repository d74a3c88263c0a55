//! What a test tells the emulator: accounts, tokens, and jobs with the timeline, outcome and
//! artifacts their runs will have.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub name: String,
    /// False for plans without API access: every call answers 401.
    pub api_access: bool,
    /// False when the account's IP allow-list does not hold the caller's address: every request
    /// to the account, with a token or without, answers 403 `Forbidden: Access denied`.
    pub allows_this_address: bool,
}

impl Account {
    pub fn new(id: u64) -> Account {
        Account {
            id,
            name: format!("Account {id}"),
            api_access: true,
            allows_this_address: true,
        }
    }

    /// An account whose IP allow-list leaves the caller's address out.
    pub fn behind_an_ip_allow_list(mut self) -> Account {
        self.allows_this_address = false;
        self
    }

    pub fn without_api_access(mut self) -> Account {
        self.api_access = false;
        self
    }
}

/// How a run ends when nobody cancels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The last step fails.
    Error,
    Cancelled,
}

/// How long a run spends in each state before it is final.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub queued: Duration,
    pub starting: Duration,
    pub running: Duration,
}

impl Timeline {
    pub fn total(&self) -> Duration {
        self.queued + self.starting + self.running
    }

    /// A run that takes `total`, most of it running.
    pub fn lasting(total: Duration) -> Timeline {
        Timeline {
            queued: total / 10,
            starting: total / 10,
            running: total - total / 10 * 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: String,
    pub content: Content,
}

/// What an artifact holds: given bytes, or `size` bytes generated while they are sent, so that a
/// gigabyte manifest costs the emulator no memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    Generated {
        size: u64,
    },
    /// Listed, but every download answers 404.
    Missing,
}

impl Artifact {
    pub fn new(path: impl Into<String>, content: impl Into<Vec<u8>>) -> Artifact {
        Artifact {
            path: path.into(),
            content: Content::Bytes(content.into()),
        }
    }

    pub fn generated(path: impl Into<String>, size: u64) -> Artifact {
        Artifact {
            path: path.into(),
            content: Content::Generated { size },
        }
    }

    /// Listed, but never there to download.
    pub fn missing(path: impl Into<String>) -> Artifact {
        Artifact {
            path: path.into(),
            content: Content::Missing,
        }
    }

    pub fn size(&self) -> u64 {
        match &self.content {
            Content::Bytes(bytes) => bytes.len() as u64,
            Content::Generated { size } => *size,
            Content::Missing => 0,
        }
    }

    /// Every byte, in memory: for checking small artifacts in tests.
    pub fn bytes(&self) -> Vec<u8> {
        match &self.content {
            Content::Bytes(bytes) => bytes.clone(),
            Content::Generated { size } => (0..*size).map(generated_byte).collect(),
            Content::Missing => Vec::new(),
        }
    }
}

/// The byte at `offset` of a generated artifact: a pattern that never lines up with buffer sizes.
pub fn generated_byte(offset: u64) -> u8 {
    (offset % 251) as u8
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub account_id: u64,
    pub project_id: u64,
    pub environment_id: u64,
    pub environment_name: String,
    /// `production`, `staging` or `development` (a development environment).
    pub environment_type: String,
    pub name: String,
    pub steps: Vec<String>,
    pub timeline: Timeline,
    pub outcome: Outcome,
    /// With [`Outcome::Error`], the step (1-based) that fails; `None`: the last. The steps after
    /// it still run and succeed, as dbt Cloud's "Generate docs on run" step does.
    pub failing_step: Option<usize>,
    /// The run's `status_message` when it ends in Error.
    pub error_message: String,
    /// The last step's artifacts: what the artifact endpoints serve without `step`.
    pub artifacts: Vec<Artifact>,
    /// Other steps' artifacts, by step index (1-based), served with `?step=N`; a step without
    /// an entry has none (its downloads answer 404).
    pub step_artifacts: BTreeMap<usize, Vec<Artifact>>,
    /// After the run is final, `artifacts_saved` stays false this long...
    pub artifacts_saved_after: Duration,
    /// ...and the artifact list stays empty (and downloads 404) this long.
    pub artifacts_listed_after: Duration,
    /// The failing step's log when the run ends in Error (else the step's name).
    pub failed_step_log: Option<String>,
    /// `retry_not_supported_reason` of a run that ended in Error: `None` means it can be retried.
    pub retry_refused: Option<String>,
    /// The job's dbt version: `versionless`, or `latest-fusion` for dbt's Fusion engine, whose
    /// runs leave the files Fusion writes (`crate::fusion`).
    pub dbt_version: String,
    /// The index each step is sent with, in order, when not its place (1-based): an answer whose
    /// indexes repeat, as a broken or hostile server's may.
    pub step_indexes: Option<Vec<i64>>,
    /// "Run when another job finishes": a run of this job is enqueued when a run of the parent
    /// job ends with one of the statuses (`crate::chain`).
    pub completion_trigger: Option<CompletionTrigger>,
    /// Deleted jobs are left out of the jobs list unless asked for.
    pub state: JobState,
    /// dbt Cloud deactivated the job after repeated failures: none of its triggers enqueue runs.
    pub deactivated: bool,
}

/// A child job's `job_completion_trigger_condition`: the parent job, the parent's project, and
/// the parent run's final statuses (10, 20, 30) that enqueue a run of the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionTrigger {
    pub job_id: u64,
    pub project_id: u64,
    pub statuses: Vec<u64>,
}

/// A job's `state`: dbt Cloud deletes softly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Active,
    Deleted,
}

impl JobState {
    /// As the API writes it.
    pub fn code(self) -> u64 {
        match self {
            JobState::Active => 1,
            JobState::Deleted => 2,
        }
    }
}

impl Job {
    /// A job whose runs take about a second and succeed, with a few artifacts.
    pub fn new(account_id: u64, id: u64) -> Job {
        Job {
            id,
            account_id,
            project_id: 270542,
            environment_id: 218762,
            environment_name: "Production".to_owned(),
            environment_type: "production".to_owned(),
            name: "Nightly build".to_owned(),
            steps: [
                "Clone git repository",
                "Create profile from connection Snowflake",
                "Invoke dbt deps",
                "Invoke dbt build",
            ]
            .map(str::to_owned)
            .to_vec(),
            timeline: Timeline::lasting(Duration::from_millis(1200)),
            outcome: Outcome::Success,
            failing_step: None,
            error_message: "Job run failed: 1 error in step 'Invoke dbt build'.".to_owned(),
            artifacts: standard_artifacts(),
            step_artifacts: BTreeMap::new(),
            artifacts_saved_after: Duration::ZERO,
            artifacts_listed_after: Duration::ZERO,
            failed_step_log: None,
            retry_refused: None,
            dbt_version: "versionless".to_owned(),
            step_indexes: None,
            completion_trigger: None,
            state: JobState::Active,
            deactivated: false,
        }
    }

    /// Runs when a run of `parent_job_id` (of project `parent_project_id`) ends with one of
    /// `statuses` (10 success, 20 error, 30 cancelled).
    pub fn chained_to(
        mut self,
        parent_job_id: u64,
        parent_project_id: u64,
        statuses: &[u64],
    ) -> Job {
        self.completion_trigger = Some(CompletionTrigger {
            job_id: parent_job_id,
            project_id: parent_project_id,
            statuses: statuses.to_vec(),
        });
        self
    }

    /// Deleted (`state` 2): out of the jobs list by default, and never enqueued by a completion.
    pub fn deleted(mut self) -> Job {
        self.state = JobState::Deleted;
        self
    }

    /// Deactivated by dbt Cloud after repeated failures: never enqueued by a completion.
    pub fn deactivated(mut self) -> Job {
        self.deactivated = true;
        self
    }

    /// The job runs on this dbt version; `latest-fusion` makes its runs leave the Fusion
    /// engine's files, rewritten from the artifacts given (`crate::fusion`), when the job is
    /// added to the emulator.
    pub fn dbt_version(mut self, version: &str) -> Job {
        self.dbt_version = version.to_owned();
        self
    }

    /// The log of the step that fails, as dbt wrote it.
    pub fn failed_step_log(mut self, log: &str) -> Job {
        self.failed_step_log = Some(log.to_owned());
        self
    }

    /// A failed run of this job cannot be retried, for `reason` (e.g. `RETRY_UNSUPPORTED_CMD`).
    pub fn retry_refused(mut self, reason: &str) -> Job {
        self.retry_refused = Some(reason.to_owned());
        self
    }

    pub fn named(mut self, name: &str, environment_name: &str) -> Job {
        self.name = name.to_owned();
        self.environment_name = environment_name.to_owned();
        self
    }

    /// The job's environment is of this type: `production`, `staging` or `development`.
    pub fn environment_type(mut self, kind: &str) -> Job {
        self.environment_type = kind.to_owned();
        self
    }

    /// The job belongs to this project.
    pub fn project(mut self, project_id: u64) -> Job {
        self.project_id = project_id;
        self
    }

    pub fn timeline(mut self, timeline: Timeline) -> Job {
        self.timeline = timeline;
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Job {
        self.outcome = outcome;
        self
    }

    pub fn artifacts(mut self, artifacts: Vec<Artifact>) -> Job {
        self.artifacts = artifacts;
        self
    }

    /// The run's steps, by name, in order (dbt Cloud's own first).
    pub fn steps(mut self, names: &[&str]) -> Job {
        self.steps = names.iter().map(|name| (*name).to_owned()).collect();
        self
    }

    /// The steps are sent with these indexes, in order, instead of their places.
    pub fn step_indexes(mut self, indexes: &[i64]) -> Job {
        self.step_indexes = Some(indexes.to_vec());
        self
    }

    /// What step `index` (1-based, not the last) leaves in its `target/` folder.
    pub fn step_artifacts(mut self, index: usize, artifacts: Vec<Artifact>) -> Job {
        self.step_artifacts.insert(index, artifacts);
        self
    }

    /// With [`Outcome::Error`], step `index` (1-based) fails and the later ones still run.
    pub fn failing_step(mut self, index: usize) -> Job {
        self.failing_step = Some(index);
        self
    }

    /// The artifacts of step `index` (1-based): the last step's for `None` or the last index.
    pub fn artifacts_of_step(&self, index: Option<usize>) -> Option<&[Artifact]> {
        match index {
            None => Some(&self.artifacts),
            Some(index) if index == self.steps.len() => Some(&self.artifacts),
            Some(index) => self.step_artifacts.get(&index).map(Vec::as_slice),
        }
    }

    pub fn artifacts_delay(mut self, saved_after: Duration, listed_after: Duration) -> Job {
        self.artifacts_saved_after = saved_after;
        self.artifacts_listed_after = listed_after;
        self
    }
}

/// A small but real-looking set: a real run_results.json (dbt 1.4), JSON, nested SQL and binary files.
pub fn standard_artifacts() -> Vec<Artifact> {
    let binary: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    vec![
        Artifact::new("manifest.json", br#"{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v8.json"}, "nodes": {}}"#.to_vec()),
        Artifact::new("run_results.json", include_bytes!("../data/run_results.json").to_vec()),
        Artifact::new("catalog.json", br#"{"nodes": {}, "sources": {}, "errors": null}"#.to_vec()),
        Artifact::new("compiled/jaffle_shop/models/staging/stg_orders.sql", b"select\n    id as order_id\nfrom raw.jaffle_shop.orders\n".to_vec()),
        Artifact::new("run/jaffle_shop/models/marts/orders.sql", b"create or replace table analytics.orders as (\n  select 1 as id\n);\n".to_vec()),
        Artifact::new("graph.gpickle", binary),
        Artifact::new("partial_parse.msgpack", vec![0x80, 0x00, 0xff, 0x0a, 0x0d, 0x00, 0x1f]),
    ]
}

/// dbt Cloud's account-wide rate limit: past `requests` within `window`, every request of the
/// account answers 429 for `cooldown` (5,000 a minute and five minutes on dbt Cloud).
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub requests: usize,
    pub window: Duration,
    pub cooldown: Duration,
    /// What the 429s say of how long is left; dbt Cloud's Admin API does not document it.
    pub retry_after: RetryAfter,
}

/// The `Retry-After` of the account's 429s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// None is sent.
    Never,
    /// The seconds left of the cooldown, rounded up.
    SecondsLeft,
    /// `0`, however long is left.
    Zero,
    /// A date a minute past.
    Past,
}

/// What the standalone emulator and the quick start serve: one account, one token, one job and
/// the job chained to it.
pub struct Demo;

impl Demo {
    pub const ACCOUNT_ID: u64 = 12345;
    pub const JOB_ID: u64 = 67890;
    /// The job that runs when a run of [`Demo::JOB_ID`] succeeds.
    pub const CHAINED_JOB_ID: u64 = 67891;
    /// How long after a run of the demo job ends its chained run is enqueued (dbt Cloud
    /// documents no delay): long enough that a component looking at the account's runs as its
    /// run ends, as the quick start's does, sees no other run busy, however slow the machine.
    pub const CHAIN_DELAY: Duration = Duration::from_secs(5);
    pub const TOKEN: &'static str = "dbtc_local_emulator_token";

    pub fn account() -> Account {
        Account {
            name: "Local emulator".to_owned(),
            ..Account::new(Demo::ACCOUNT_ID)
        }
    }

    /// A job as dbt Cloud runs one today: its own three steps, then `dbt source freshness`
    /// (a stale source), `dbt build` (a warned test) and `dbt docs generate`, each with real
    /// artifacts of dbt 1.10 (`tests/data/real/SOURCES.md`).
    pub fn job() -> Job {
        let mut last_step: Vec<Artifact> = standard_artifacts()
            .into_iter()
            .filter(|artifact| artifact.path != "run_results.json")
            .collect();
        last_step.push(Artifact::new(
            "run_results.json",
            include_bytes!("../../data/real/run_results/v6-1.10.3-docs-generate-shopverse.json")
                .to_vec(),
        ));
        Job::new(Demo::ACCOUNT_ID, Demo::JOB_ID)
            .steps(&[
                "Clone git repository",
                "Create profile from connection Snowflake",
                "Invoke dbt with `dbt deps`",
                "Invoke dbt with `dbt source freshness`",
                "Invoke dbt with `dbt build`",
                "Invoke dbt with `dbt docs generate`",
            ])
            .step_artifacts(
                4,
                vec![Artifact::new(
                    "sources.json",
                    include_bytes!("../../data/real/sources/v3-1.10.6-warn-scooters.json").to_vec(),
                )],
            )
            .step_artifacts(
                5,
                vec![Artifact::new(
                    "run_results.json",
                    include_bytes!(
                        "../../data/real/run_results/v6-1.10.13-build-warn-noop-scooters.json"
                    )
                    .to_vec(),
                )],
            )
            .artifacts(last_step)
            .timeline(Timeline {
                queued: Duration::from_millis(500),
                starting: Duration::from_millis(500),
                running: Duration::from_secs(3),
            })
    }

    /// "Downstream marts": run by dbt Cloud when a run of [`Demo::job`] succeeds ("Run when
    /// another job finishes"), in about two seconds, with a real `run_results.json` of dbt 1.10
    /// (`tests/data/real/SOURCES.md`).
    pub fn chained_job() -> Job {
        let parent = Demo::job();
        let mut artifacts: Vec<Artifact> = standard_artifacts()
            .into_iter()
            .filter(|artifact| artifact.path != "run_results.json")
            .collect();
        artifacts.push(Artifact::new(
            "run_results.json",
            include_bytes!("../../data/real/run_results/v6-duckdb-adamatito.json").to_vec(),
        ));
        Job::new(Demo::ACCOUNT_ID, Demo::CHAINED_JOB_ID)
            .project(parent.project_id)
            .named("Downstream marts", &parent.environment_name)
            .chained_to(Demo::JOB_ID, parent.project_id, &[10])
            // The file is a `dbt run`'s: the step says so.
            .steps(&["Clone git repository", "Invoke dbt with `dbt run`"])
            .artifacts(artifacts)
            .timeline(Timeline {
                queued: Duration::from_millis(300),
                starting: Duration::from_millis(300),
                running: Duration::from_millis(1400),
            })
    }
}
