//! The account's share sized by what the account is doing: before the downloads, and about once
//! a minute while they go on, one request lists the account's runs; alone, a run may use half of
//! the account's 5,000 a minute, beside one or two others a quarter, beside more 550. The line
//! that starts the downloads and the closing line say it; a list that cannot be trusted leaves
//! 550; a configured `max_requests_per_minute` is the share; the cancel and last look are never
//! held by the share; `Retry-After: 0` is no reason to probe back to back.

use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault, RateLimit, RetryAfter};
use serde_json::json;

fn small_artifacts(count: usize) -> Vec<Artifact> {
    (0..count)
        .map(|i| Artifact::new(format!("run/m{i}.sql"), format!("select {i}").into_bytes()))
        .collect()
}

/// The requests that listed the account's runs (every job: no job filter).
fn account_lists(emulator: &Emulator) -> usize {
    emulator
        .requests_to("GET", "/runs/")
        .iter()
        .filter(|r| {
            r.query
                .as_deref()
                .is_some_and(|q| !q.contains("job_definition_id"))
        })
        .count()
}

fn downloading_line(run: &Run) -> String {
    run.stdout()
        .lines()
        .find(|line| line.contains("INFO  Downloading "))
        .unwrap_or_else(|| panic!("no downloading line\n{}", run.stdout()))
        .to_owned()
}

fn done_line(run: &Run) -> String {
    run.stdout()
        .lines()
        .find(|line| line.contains("INFO  Done: "))
        .unwrap_or_else(|| panic!("no closing line\n{}", run.stdout()))
        .to_owned()
}

#[test]
fn alone_on_the_account_a_run_takes_half_of_it_and_says_so() {
    let artifacts = small_artifacts(20);
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    assert!(
        downloading_line(&run).ends_with(
            "Downloading 20 artifacts of run 70403103000, 8 at a time, at up to 2500 requests a minute (no other run of the account is busy): within a minute at that share"
        ),
        "{}",
        run.stdout()
    );
    assert_eq!(account_lists(&emulator), 1);
    // The look comes before the first download.
    let requests = emulator.requests();
    let look = requests
        .iter()
        .position(|r| {
            r.path.ends_with("/runs/")
                && r.query
                    .as_deref()
                    .is_some_and(|q| !q.contains("job_definition_id"))
        })
        .unwrap();
    let first_download = requests
        .iter()
        .position(|r| r.path.contains("/artifacts/run/"))
        .unwrap();
    assert!(look < first_download);
    let done = done_line(&run);
    let sent = emulator.requests().len();
    assert!(
        done.ends_with(&format!(
            "; {sent} requests at up to 2500 a minute, 0s waited for the share"
        )),
        "{done}"
    );
}

#[test]
fn beside_others_busy_or_lately_ended_the_share_is_smaller() {
    let cases: [(&[Duration], &[Duration], u32, &str); 4] = [
        (
            &[],
            &[Duration::from_secs(360)],
            2500,
            "no other run of the account is busy",
        ),
        (
            &[Duration::from_secs(30)],
            &[],
            1250,
            "1 other run of the account is busy or ended in the last 5 minutes",
        ),
        (
            &[],
            &[Duration::from_secs(120), Duration::from_secs(240)],
            1250,
            "2 other runs of the account are busy or ended in the last 5 minutes",
        ),
        (
            &[Duration::from_secs(30), Duration::from_secs(5)],
            &[Duration::from_secs(60)],
            550,
            "3 other runs of the account are busy or ended in the last 5 minutes",
        ),
    ];
    for (busy, ended, share, why) in cases {
        let emulator = emulator_with(quick(Outcome::Success).artifacts(small_artifacts(4)));
        // Another job's runs: every job of the account counts.
        let other = JOB + 1;
        emulator.add_job(Job::new(ACCOUNT, other));
        for ago in busy {
            emulator.add_run_by_another_client(other, "another client", *ago);
        }
        for ago in ended {
            emulator.add_past_run(
                other,
                Timeline::lasting(Duration::from_secs(60)),
                Outcome::Success,
                *ago,
            );
        }
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(0);
        assert!(
            downloading_line(&run)
                .contains(&format!(", at up to {share} requests a minute ({why}): ")),
            "{}",
            run.stdout()
        );
        assert!(
            done_line(&run).contains(&format!(" at up to {share} a minute, ")),
            "{}",
            done_line(&run)
        );
    }
}

#[test]
fn a_configured_share_is_the_share_and_nothing_is_listed() {
    let emulator = emulator_with(quick(Outcome::Success).artifacts(small_artifacts(4)));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"max_requests_per_minute": 300})),
    ));
    run.assert_code(0);
    assert!(
        downloading_line(&run)
            .contains(", at up to 300 requests a minute (max_requests_per_minute): "),
        "{}",
        run.stdout()
    );
    assert_eq!(account_lists(&emulator), 0);
}

/// A list that fails, is throttled, or lists another account's runs is not trusted: 550, with
/// one warning, and the downloads go on.
#[test]
fn a_list_that_cannot_be_trusted_leaves_the_share_of_eight() {
    let another_accounts = json!({
        "status": {"code": 200, "is_success": true},
        "data": [{"id": 1, "account_id": 99, "job_definition_id": 5, "status": 3}],
    });
    for (fault, said) in [
        (Fault::Status(503), "HTTP 503"),
        (
            Fault::TooManyRequests { retry_after: None },
            "was refused by dbt Cloud's rate limit: ",
        ),
        (
            Fault::Json(200, another_accounts),
            "dbt Cloud listed run 1 of account 99 among account",
        ),
        (
            Fault::Json(200, json!({"status": {"code": 200}, "data": "?"})),
            "is not what its API documents",
        ),
    ] {
        let artifacts = small_artifacts(4);
        let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
        emulator.inject_where(Endpoint::ListRuns, ("limit", "100"), [fault.clone()]);
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(0);
        assert_artifacts(&run, &artifacts);
        let stdout = run.stdout();
        let warned: Vec<&str> = stdout
            .lines()
            .filter(|line| line.contains("could not be listed to size this run's share"))
            .collect();
        assert_eq!(warned.len(), 1, "{fault:?}: {stdout}");
        assert!(warned[0].contains(said), "{fault:?}: {}", warned[0]);
        assert!(
            downloading_line(&run).contains(
                ", at up to 550 requests a minute (the account's runs could not be listed): "
            ),
            "{stdout}"
        );
    }
}

/// While the downloads go on, the share is sized again about once a minute (a window: two
/// seconds in the tests): the first look failed, a later one finds the account idle.
#[test]
fn while_downloads_go_on_the_share_is_sized_again_and_a_change_said() {
    let artifacts = small_artifacts(40);
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
    emulator.inject_where(Endpoint::ListRuns, ("limit", "100"), [Fault::Status(503)]);
    // Each download answers after 0.5 s: 40 at 8 at a time take at least 2.5 s.
    emulator.inject(
        Endpoint::DownloadArtifact,
        std::iter::repeat_n(Fault::Delay(Duration::from_millis(500)), 40),
    );
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    assert!(
        account_lists(&emulator) >= 2,
        "{}",
        account_lists(&emulator)
    );
    let stdout = run.stdout();
    assert_eq!(
        stdout
            .matches("INFO  The share of the account's requests is now 2500 a minute (no other run of the account is busy)")
            .count(),
        1,
        "{stdout}"
    );
}

/// `Retry-After: 0` (or a date already past) through a cooldown: the probes come at their
/// growing interval, a handful in the cooldown's 2 s, not back to back.
#[test]
fn a_retry_after_of_zero_or_past_is_no_reason_to_probe_back_to_back() {
    for says in [RetryAfter::Zero, RetryAfter::Past] {
        let artifacts = small_artifacts(80);
        let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
        emulator.rate_limit(RateLimit {
            requests: 40,
            window: Duration::from_secs(2),
            cooldown: Duration::from_secs(2),
            retry_after: says,
        });
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(0);
        assert_artifacts(&run, &artifacts);
        let throttled = emulator.throttled();
        assert!(
            (1..=25).contains(&throttled),
            "{says:?}: those in flight and a probe at a time: {throttled}\n{}",
            run.stdout()
        );
    }
}

/// The issue's own try, at its scale: the run's share (2 a minute here: the look before the
/// trigger and the trigger) is spent when the wait reaches `max_wait_time`; the look at the run
/// is held by it, and says so, but the cancel goes at once.
#[test]
fn at_the_deadline_the_cancel_is_not_held_by_the_runs_own_share() {
    let emulator = emulator_with(job(Duration::from_secs(300), Outcome::Success));
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        parameters(
            &emulator,
            waiting(
                json!({"max_wait_time": 0.1, "cancel_on_timeout": true, "max_requests_per_minute": 2, "debug": true}),
            ),
        ),
    );
    let output = component(dir.path())
        .env_remove("DBT_CLOUD_TRIGGER_TEST_TIMING")
        .output()
        .unwrap();
    let run = Run { dir, output };
    run.assert_code(1);
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("It was cancelled"), "{stderr}");
    // What held the look at the run is named: the run's own share, not dbt Cloud's limit.
    assert!(
        run.stdout()
            .contains("this run's own share of dbt Cloud's requests (2 a minute) holds requests"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("dbt Cloud's rate limit holds"));
}
