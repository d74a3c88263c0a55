//! Parallel downloads under one request-rate ceiling, a 429 that pauses every worker, and
//! polling that notices the end of a run at once without costing requests.

use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault, RecordedRequest};
use serde_json::json;

fn small_artifacts(count: usize) -> Vec<Artifact> {
    (0..count)
        .map(|i| {
            Artifact::new(
                format!("compiled/proj/models/m{i:03}.sql"),
                format!("select {i}").into_bytes(),
            )
        })
        .collect()
}

fn downloads(emulator: &Emulator) -> Vec<RecordedRequest> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/artifacts/") && !r.path.ends_with('/'))
        .collect()
}

/// The most requests that arrived within any window of `width`.
fn busiest(requests: &[RecordedRequest], width: Duration) -> usize {
    requests
        .iter()
        .map(|first| {
            requests
                .iter()
                .filter(|r| r.at >= first.at && r.at < first.at + width)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The share holds in every window the account's limit counts in (a minute; 2 s with the
/// tests' timing), however many downloads are in flight: a window's share at once, then as the
/// window slides.
#[test]
fn the_request_share_holds_in_every_window_across_parallel_downloads() {
    let artifacts = small_artifacts(60);
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success).artifacts(artifacts.clone()),
    );
    let started = Instant::now();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_requests_per_minute": 20, "artifact_concurrency": 8}),
    ));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    let all = emulator.requests();
    let peak = busiest(&all, Duration::from_secs(2));
    assert!(peak <= 20, "{peak} requests within one window");
    assert!(
        peak >= 15,
        "a window's share goes at once, not spread thin: {peak}"
    );
    // 70-odd requests at 20 a window: at least three windows after the first.
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// Someone else reached the account's limit before the job began: the very first request is
/// refused. The job waits the cooldown out, says once that the limit is the account's and which
/// setting lowers its share, and its closing line counts what the limit cost.
#[test]
fn the_accounts_limit_is_told_as_the_accounts_and_counted_on_the_closing_line() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::ListRuns,
        std::iter::repeat_n(Fault::TooManyRequests { retry_after: None }, 3),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let stdout = run.stdout();
    let told = "The limit is the account's, not this run's: 5,000 requests a minute for everything that uses the dbt Cloud account (the other configurations of this component, other jobs and integrations), which then all wait five minutes. This run kept to 550 requests a minute until then (max_requests_per_minute fixes a configuration's share)";
    assert_eq!(stdout.matches(told).count(), 1, "once: {stdout}");
    let done = stdout.lines().find(|l| l.contains("INFO  Done: ")).unwrap();
    assert!(
        done.contains("; dbt Cloud's account-wide rate limit refused 3 requests; ")
            && done.ends_with("waited for the account"),
        "{done}"
    );
}

#[test]
fn downloads_run_in_parallel_up_to_the_concurrency() {
    let artifacts = small_artifacts(8);
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success).artifacts(artifacts.clone()),
    );
    // Each answer takes 600 ms: one at a time would take 4.8 s.
    emulator.inject(
        Endpoint::DownloadArtifact,
        std::iter::repeat_n(Fault::Delay(Duration::from_millis(600)), 8),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "artifact_concurrency": 4}),
    ));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    let requests = downloads(&emulator);
    assert_eq!(requests.len(), 8);
    let first_wave = busiest(&requests, Duration::from_millis(300));
    assert_eq!(first_wave, 4, "four in flight at once, never more");
    let spread = requests.last().unwrap().at - requests.first().unwrap().at;
    assert!(
        spread < Duration::from_millis(1500),
        "two waves, not eight turns: {spread:?}"
    );
    assert!(
        run.stdout().contains("Downloaded 8 of 8 artifacts"),
        "{}",
        run.stdout()
    );
}

#[test]
fn one_429_pauses_every_worker_and_lowers_the_rate() {
    let artifacts = small_artifacts(40);
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success).artifacts(artifacts.clone()),
    );
    emulator.inject(
        Endpoint::DownloadArtifact,
        [Fault::TooManyRequests {
            retry_after: Some(2),
        }],
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "artifact_concurrency": 4, "max_requests_per_minute": 100000}),
    ));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    let requests = downloads(&emulator);
    let throttled_at = requests[0].at;
    // Requests already on their way when the 429 came are fine; none may start in the pause.
    let during_pause = requests
        .iter()
        .filter(|r| {
            r.at > throttled_at + Duration::from_millis(300)
                && r.at < throttled_at + Duration::from_millis(1900)
        })
        .count();
    assert_eq!(during_pause, 0, "every worker waited out the Retry-After");
    // Half of what it sent in the refused minute (a dozen), not of the lifted share: the floor.
    assert!(
        run.stdout().contains("then at most 30 requests a minute"),
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout()
            .contains("(HTTP 429, Retry-After 2 s): every request waits"),
        "{}",
        run.stdout()
    );
}

fn get_runs(emulator: &Emulator, run_id: u64) -> Vec<RecordedRequest> {
    emulator.requests_to("GET", &format!("/runs/{run_id}/"))
}

#[test]
fn with_history_the_end_is_noticed_at_once_with_few_requests() {
    let timeline = Timeline::lasting(Duration::from_secs(6));
    let emulator = emulator_with(Job::new(ACCOUNT, JOB).timeline(timeline));
    for (seconds, ago) in [(5.6, 600), (6.0, 400), (6.4, 200)] {
        emulator.add_past_run(
            JOB,
            Timeline::lasting(Duration::from_secs_f64(seconds)),
            Outcome::Success,
            Duration::from_secs(ago),
        );
    }
    emulator.add_past_run(
        JOB,
        Timeline::lasting(Duration::from_secs(60)),
        Outcome::Error,
        Duration::from_secs(100),
    );
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    let exited = Instant::now();
    run.assert_code(0);
    assert!(
        run.stdout().contains("The job's recent runs took about 6s"),
        "{}",
        run.stdout()
    );
    let lag = exited - emulator.run_finishes_at(run_id).unwrap();
    assert!(
        lag < Duration::from_millis(1500),
        "exited {lag:?} after the run finished"
    );
    let polls = get_runs(&emulator, run_id).len();
    assert!(
        polls <= 3,
        "{polls} get-run requests; a fixed 10 s poll would make 1"
    );
    let history = emulator
        .requests()
        .into_iter()
        .find(|r| r.query.as_deref().is_some_and(|q| q.contains("status=10")))
        .unwrap();
    assert!(history.query.unwrap().contains("limit=5"));
}

#[test]
fn without_history_polls_soon_and_then_less_often() {
    let emulator = emulator_with(job(Duration::from_secs(4), Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    let exited = Instant::now();
    run.assert_code(0);
    let lag = exited - emulator.run_finishes_at(run_id).unwrap();
    assert!(lag < Duration::from_millis(1500), "{lag:?}");
    let polls = get_runs(&emulator, run_id);
    for pair in polls.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(950),
            "never more than once a second"
        );
    }
}

#[test]
fn poll_interval_fixes_the_interval() {
    let emulator = emulator_with(job(Duration::from_secs(5), Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "poll_interval": 2, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    let polls = get_runs(&emulator, run_id);
    assert_eq!(polls.len(), 3, "at 2, 4 and 6 s");
    assert!(
        emulator.requests().iter().all(|r| !r
            .query
            .as_deref()
            .unwrap_or_default()
            .contains("status=10")),
        "no history asked"
    );
    for pair in polls.windows(2).take(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(1950) && gap < Duration::from_millis(2300),
            "{gap:?}"
        );
    }
}
