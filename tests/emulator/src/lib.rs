//! A local stand-in for the dbt Cloud Administrative API v2, faithful to the real API's paths,
//! envelope, field names and error answers (checked against dbt Labs' OpenAPI spec by the
//! component's tests). Tests start it in-process on port 0; `dbt-cloud-emulator` runs it alone.
//!
//! Runs move Queued → Starting → Running → final on the job's [`Timeline`]; a run's end
//! enqueues runs of the jobs chained to its job ([`Job::chained_to`], `chain.rs`); every request
//! is recorded for assertions.

// A Run has more fields than `json!` expands by default.
#![recursion_limit = "256"]

mod chain;
mod fault;
mod fusion;
mod record;
mod scenario;
mod server;
mod state;

use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use fault::{Bloat, Fault};
pub use record::RecordedRequest;
pub use scenario::{
    generated_byte, standard_artifacts, Account, Artifact, CompletionTrigger, Content, Demo, Job,
    JobState, Outcome, RateLimit, RetryAfter, Timeline,
};
pub use server::Endpoint;

use server::Shared;
use state::State;

pub struct Emulator {
    base_url: String,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Emulator {
    /// Starts on a free port of 127.0.0.1, with no accounts.
    pub fn start() -> Emulator {
        Emulator::start_on("127.0.0.1:0").expect("the emulator could not bind a port on 127.0.0.1")
    }

    pub fn start_on(address: &str) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                base_url: base_url.clone(),
                chain_delay: chain::DEFAULT_DELAY,
                ..State::default()
            }),
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(Default::default()),
            files: Mutex::new(Default::default()),
            faults_where: Mutex::new(Vec::new()),
            limit: Mutex::new(Default::default()),
            clock: Mutex::new(Default::default()),
            rewrites: Mutex::new(Vec::new()),
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let serving = shared.clone();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .expect("a bound std listener converts to tokio");
                tokio::select! {
                    _ = accept_loop(listener, serving) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Emulator {
            base_url,
            shared,
            shutdown: Some(shutdown),
        })
    }

    /// The state, with every chained run due by now created: what a request would see.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.shared.state.lock().unwrap();
        state.enqueue_chained(Instant::now());
        state
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Adds an account and tokens that may see it (a token may see several accounts).
    pub fn add_account(&self, account: Account, tokens: &[&str]) {
        let mut state = self.shared.state.lock().unwrap();
        for token in tokens {
            state
                .tokens
                .entry((*token).to_owned())
                .or_default()
                .push(account.id);
        }
        state.accounts.insert(account.id, account);
    }

    /// Adds a job; one on the Fusion engine (`latest-fusion`) leaves Fusion's files.
    pub fn add_job(&self, job: Job) {
        let job = match fusion::is_fusion(&job) {
            true => fusion::as_fusion(job),
            false => job,
        };
        // The runs that ended before the job existed have enqueued what they enqueue first.
        self.state().jobs.insert(job.id, job);
    }

    /// A chained run is created this long after its parent run ends (200 ms unless set; at
    /// least 1 ms). Runs already enqueued keep their moment.
    pub fn chain_delay(&self, delay: Duration) {
        self.state().chain_delay = delay;
    }

    /// What the standalone emulator and the quick start serve: the demo account and token, the
    /// demo job and the job chained to it, enqueued [`Demo::CHAIN_DELAY`] after it.
    pub fn serve_demo(&self) {
        self.add_account(Demo::account(), &[Demo::TOKEN]);
        self.add_job(Demo::job());
        self.add_job(Demo::chained_job());
        self.chain_delay(Demo::CHAIN_DELAY);
    }

    /// Queues faults for the next requests to `endpoint`, in order.
    pub fn inject(&self, endpoint: Endpoint, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .entry(endpoint)
            .or_default()
            .extend(faults);
    }

    /// Queues faults for the next requests to `endpoint` whose query has `key=value` (the list
    /// of runs with `limit=1`, say), in order; they come before the endpoint's other faults.
    pub fn inject_where(
        &self,
        endpoint: Endpoint,
        (key, value): (&str, &str),
        faults: impl IntoIterator<Item = Fault>,
    ) {
        self.shared
            .faults_where
            .lock()
            .unwrap()
            .push(server::QueryFaults {
                endpoint,
                key: key.to_owned(),
                value: value.to_owned(),
                faults: faults.into_iter().collect(),
            });
    }

    /// Serves `content` without a token at `<base_url>/files/<path>`.
    pub fn serve_file(&self, path: &str, content: impl Into<Vec<u8>>) {
        self.shared
            .files
            .lock()
            .unwrap()
            .insert(path.to_owned(), content.into());
    }

    /// From now on, the account-wide rate limit of dbt Cloud, with its cooldown.
    pub fn rate_limit(&self, rule: RateLimit) {
        self.shared.limit.lock().unwrap().rule = Some(rule);
    }

    /// How many requests the rate limit answered 429.
    pub fn throttled(&self) -> usize {
        self.shared.limit.lock().unwrap().throttled
    }

    /// dbt Cloud's clock runs `skew` ahead of ours (behind when negative): in `created_at` and `Date`.
    pub fn skew_clock(&self, skew: chrono::Duration) {
        self.shared.clock.lock().unwrap().skew = skew;
    }

    /// From now on, every API answer's JSON text has `from` replaced by `to`, raw: a test's
    /// marker in a name or a log becomes what no JSON library writes (`\udcfc`, a lone
    /// surrogate escape, as Python's `json` writes a byte it could not decode).
    pub fn rewrite_answers(&self, from: &str, to: &str) {
        self.shared
            .rewrites
            .lock()
            .unwrap()
            .push((from.to_owned(), to.to_owned()));
    }

    /// Answers carry no `Date` header, so a client cannot read dbt Cloud's clock.
    pub fn without_date_header(&self) {
        self.shared.clock.lock().unwrap().date_header = false;
    }

    /// A run of `job_id` that another client triggered with `cause`, `ago`, still in progress.
    pub fn add_run_by_another_client(&self, job_id: u64, cause: &str, ago: Duration) {
        let timeline = Timeline::lasting(ago + Duration::from_secs(3600));
        self.add_run(job_id, cause, ago, timeline, Outcome::Success);
    }

    /// A run of `job_id` from a dbt Cloud schedule, begun just now: it goes through `timeline`
    /// and ends with `outcome`. Its id is the emulator's next one.
    pub fn add_scheduled_run(&self, job_id: u64, timeline: Timeline, outcome: Outcome) -> u64 {
        self.add_run(job_id, "scheduled", Duration::ZERO, timeline, outcome)
    }

    /// dbt Cloud's scheduler at work on an over-scheduled job: a newer scheduled run of the job
    /// is queued, and `queued`, a scheduled run still waiting, is cancelled for it. Returns the
    /// newer run's id. (dbt's docs show the status message only as an image; this one is ours.)
    pub fn replace_queued_scheduled_run(&self, queued: u64, timeline: Timeline) -> u64 {
        let job_id = {
            let mut state = self.state();
            let age = state
                .view(queued, Instant::now())
                .expect("the run exists")
                .age;
            let run = state.runs.get_mut(&queued).expect("the run exists");
            run.cancelled_after = Some(age);
            run.cancelled_because = Some(
                "This run was cancelled because a newer run of this job was queued by the \
                 scheduler (over-scheduled job)."
                    .to_owned(),
            );
            run.job_id
        };
        self.add_scheduled_run(job_id, timeline, Outcome::Success)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The `method` requests (any method for `""`) to paths ending in `path_end`, in order.
    pub fn requests_to(&self, method: &str, path_end: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| (method.is_empty() || r.method == method) && r.path.ends_with(path_end))
            .collect()
    }

    /// A finished run of `job_id` in the job's history: it lasted `timeline` and ended `ago`.
    pub fn add_past_run(&self, job_id: u64, timeline: Timeline, outcome: Outcome, ago: Duration) {
        self.add_run(
            job_id,
            "scheduled",
            timeline.total() + ago,
            timeline,
            outcome,
        );
    }

    /// A run of `job_id` with `cause`, created `age` ago (on dbt Cloud's clock too); its id.
    fn add_run(
        &self,
        job_id: u64,
        cause: &str,
        age: Duration,
        timeline: Timeline,
        outcome: Outcome,
    ) -> u64 {
        let skew = self.shared.clock.lock().unwrap().skew;
        let mut state = self.state();
        let job = state.jobs.get(&job_id).expect("add the job first").clone();
        let id = state.next_run_id();
        let mut trigger = state::trigger_json(
            &job,
            &serde_json::Map::from_iter([("cause".to_owned(), cause.into())]),
        );
        if cause == "scheduled" {
            trigger["cause_category"] = "scheduled".into();
        }
        state.runs.insert(
            id,
            state::RunRecord {
                id,
                job_id,
                account_id: job.account_id,
                trigger,
                created: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                created_at: chrono::Utc::now() + skew
                    - chrono::Duration::from_std(age).unwrap_or_default(),
                cancelled_after: None,
                cancelled_because: None,
                timeline,
                outcome,
                children_enqueued: false,
            },
        );
        id
    }

    /// When a run became (or will become) final, in this process's clock.
    pub fn run_finishes_at(&self, run_id: u64) -> Option<Instant> {
        let state = self.state();
        let run = state.runs.get(&run_id)?;
        Some(run.created + run.ending().0)
    }

    /// The run as get-run answers it with its trigger, job and steps: the trigger of a chained
    /// run, say.
    pub fn run_json(&self, run_id: u64) -> serde_json::Value {
        let state = self.state();
        let related = ["trigger", "job", "run_steps"].map(str::to_owned);
        state
            .view(run_id, Instant::now())
            .unwrap_or_else(|| panic!("no run {run_id} in the emulator"))
            .to_json(&state.base_url, &related)
    }

    /// Someone cancels the run in dbt Cloud's UI now ("Cancelled by user."; nothing changes
    /// once it is final).
    pub fn cancel_run(&self, run_id: u64) {
        self.state().cancel(run_id, Instant::now());
    }

    /// The ids of the runs of `job_id`, oldest first (chained runs included).
    pub fn runs_of_job(&self, job_id: u64) -> Vec<u64> {
        let state = self.state();
        state
            .runs
            .values()
            .filter(|run| run.job_id == job_id)
            .map(|run| run.id)
            .collect()
    }

    /// How many runs were created, by any means.
    pub fn runs_created(&self) -> usize {
        self.state().runs.len()
    }

    /// The id the next triggered run will get (unless a chained run is enqueued before it).
    pub fn next_run_id(&self) -> u64 {
        self.state().next_run_id()
    }
}

/// Serves each connection on its own task, with a [`server::Killer`] that lets a fault close
/// that connection without answering (hyper alone always answers).
async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let (kill, killed) = tokio::sync::oneshot::channel::<()>();
            let killer = server::Killer(Arc::new(Mutex::new(Some(kill))));
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(killer.clone());
                    let shared = shared.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(server::handle(shared, request).await)
                    }
                },
            );
            // The emulator writes `Date` itself, so that a test can skew it or leave it out.
            let connection = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                // Dropping the connection closes the socket with nothing written.
                _ = killed => {}
            }
        });
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
