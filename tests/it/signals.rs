//! A stop at any moment is clean: SIGTERM in each phase of the job, held there by a slow
//! emulator, with production timing. Within 5 s: the run cancelled (unless final or told not to),
//! the trigger and run tables written where a run exists, no scratch folder, exit 1.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};
use serde_json::json;

/// Starts the binary on a fresh data folder, with production timing.
fn spawn(parameters: serde_json::Value) -> (tempfile::TempDir, Child) {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), parameters);
    let child = component(dir.path())
        .env_remove("DBT_CLOUD_TRIGGER_TEST_TIMING")
        .spawn()
        .unwrap();
    (dir, child)
}

/// Sends SIGTERM to the component, as Keboola's `docker stop` does.
fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until `ready` holds (at most 15 s), then sends SIGTERM and waits for the exit.
fn signal_when(parameters: serde_json::Value, ready: impl Fn(&Path) -> bool) -> (Run, Duration) {
    let (dir, child) = spawn(parameters);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready(dir.path()) {
        assert!(Instant::now() < deadline, "the phase was never reached");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the request that `ready` saw be in flight.
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    sigterm(&child);
    let output = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    (Run { dir, output }, took)
}

fn seen(emulator: &Emulator, method: &str, path_end: &str) -> bool {
    count(emulator, method, path_end) > 0
}

/// What holds whenever the signal lands.
fn assert_clean_stop(run: &Run, took: Duration) {
    run.assert_code(1);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let left: Vec<String> = std::fs::read_dir(run.data())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".dbt-cloud-job-trigger"))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "the scratch folder is gone");
    assert!(run.stderr().contains("SIGTERM"), "{}", run.stderr());
}

/// Polling a long run: the trigger table has been there for a while.
fn polling() -> impl Fn(&Path) -> bool {
    let written = std::cell::Cell::new(None::<Instant>);
    move |data| {
        if !data.join("out/tables/dbt_cloud_trigger.csv").exists() {
            return false;
        }
        let at = written.get().unwrap_or_else(Instant::now);
        written.set(Some(at));
        at.elapsed() >= Duration::from_millis(1300)
    }
}

#[test]
fn a_signal_while_waiting_cancels_the_run_and_records_it() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    let (run, took) = signal_when(
        parameters(&emulator, json!({"wait_for_result": true})),
        polling(),
    );
    assert_clean_stop(&run, took);
    assert!(
        run.stderr()
            .contains("Stopped by SIGTERM while waiting for dbt Cloud run"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("It was cancelled"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
    assert_eq!(
        run.table("dbt_cloud_run").1["status_message"],
        "Cancelled by user."
    );
}

/// The run's own share of requests is spent (2 a minute: the look before the trigger and the
/// trigger, then every look at the run waits a minute): the cancel goes at once all the same.
#[test]
fn a_signal_cancels_at_once_whatever_the_runs_own_share_holds() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    let (run, took) = signal_when(
        parameters(
            &emulator,
            json!({"wait_for_result": true, "poll_interval": 1, "max_requests_per_minute": 2}),
        ),
        polling(),
    );
    assert_clean_stop(&run, took);
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("It was cancelled"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_signal_with_cancel_on_terminate_false_leaves_the_run_going() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    let (run, took) = signal_when(
        parameters(
            &emulator,
            json!({"wait_for_result": true, "cancel_on_terminate": false}),
        ),
        polling(),
    );
    assert_clean_stop(&run, took);
    assert!(
        run.stderr()
            .contains("It goes on in dbt Cloud (cancel_on_terminate is false)"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "POST", "/cancel/"), 0);
    assert_ne!(run.table("dbt_cloud_run").1["status"], "30");
}

/// A run adopted with `if_running: wait` is the scheduler's, like a followed one: a stop leaves
/// it going unless the config sets `cancel_on_terminate`.
#[test]
fn a_signal_leaves_an_adopted_run_going_unless_the_config_says_cancel() {
    for (setting, cancelled) in [(None, 0), (Some(true), 1)] {
        let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
        let adopted = emulator.add_scheduled_run(
            JOB,
            Timeline::lasting(Duration::from_secs(120)),
            Outcome::Success,
        );
        let mut extra = json!({"wait_for_result": true, "if_running": "wait"});
        if let Some(setting) = setting {
            extra["cancel_on_terminate"] = json!(setting);
        }
        let (run, took) = signal_when(parameters(&emulator, extra), polling());
        assert_clean_stop(&run, took);
        assert_eq!(run.table("dbt_cloud_trigger").1["id"], adopted.to_string());
        assert_eq!(
            count(&emulator, "POST", "/cancel/"),
            cancelled,
            "{setting:?}: {}",
            run.stderr()
        );
        if setting.is_none() {
            assert!(
                run.stderr()
                    .contains("It goes on in dbt Cloud: this job did not start it"),
                "{}",
                run.stderr()
            );
        }
    }
}

#[test]
fn a_signal_before_the_trigger_means_no_trigger() {
    for wait_for_result in [true, false] {
        let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
        // The list of the job's runs that precedes the trigger hangs.
        emulator.inject(Endpoint::ListRuns, [Fault::Delay(Duration::from_secs(30))]);
        let (run, took) = signal_when(
            parameters(&emulator, json!({"wait_for_result": wait_for_result})),
            |_| seen(&emulator, "GET", "/runs/"),
        );
        assert_clean_stop(&run, took);
        assert!(
            run.stderr().contains("nothing was triggered"),
            "{}",
            run.stderr()
        );
        assert_eq!(
            count(&emulator, "POST", "/run/"),
            0,
            "no POST after the signal"
        );
        assert_eq!(emulator.runs_created(), 0);
    }
}

#[test]
fn a_signal_during_the_trigger_records_and_cancels_the_run_it_created() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    let run_id = emulator.next_run_id();
    // dbt Cloud creates the run at once but answers late.
    emulator.inject(Endpoint::Trigger, [Fault::Delay(Duration::from_secs(30))]);
    let (run, took) = signal_when(
        parameters(&emulator, json!({"wait_for_result": true})),
        |_| seen(&emulator, "POST", "/run/"),
    );
    assert_clean_stop(&run, took);
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], run_id.to_string());
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
    assert!(
        run.stderr().contains("It was cancelled"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_signal_during_a_slow_get_run_abandons_it_and_cancels() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    emulator.inject(Endpoint::GetRun, [Fault::Delay(Duration::from_secs(30))]);
    let (run, took) = signal_when(
        parameters(&emulator, json!({"wait_for_result": true})),
        |_| seen(&emulator, "GET", "/runs/70403103000/"),
    );
    assert_clean_stop(&run, took);
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
    assert!(
        run.stderr()
            .contains("Stopped by SIGTERM while waiting for dbt Cloud run 70403103000"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_signal_without_waiting_still_cancels_and_records() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    // The one look after the trigger hangs.
    emulator.inject(Endpoint::GetRun, [Fault::Delay(Duration::from_secs(30))]);
    let (run, took) = signal_when(parameters(&emulator, json!({})), |_| {
        seen(&emulator, "GET", "/runs/70403103000/")
    });
    assert_clean_stop(&run, took);
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], "70403103000");
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
}

#[test]
fn a_signal_while_artifacts_are_being_saved_leaves_the_final_run_tables() {
    // The run ends after about a second, then dbt Cloud takes 30 s to mark its artifacts saved.
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success)
            .artifacts_delay(Duration::from_secs(30), Duration::ZERO),
    );
    let (run, took) = signal_when(
        parameters(&emulator, json!({"wait_for_result": true})),
        |data| {
            // Two looks after the run's end: the component is waiting for the artifacts.
            data.join("out/tables/dbt_cloud_trigger.csv").exists()
                && emulator
                    .run_finishes_at(70403103000)
                    .is_some_and(|end| Instant::now() > end + Duration::from_millis(2500))
        },
    );
    assert_clean_stop(&run, took);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
    assert_eq!(
        count(&emulator, "POST", "/cancel/"),
        0,
        "a final run is not cancelled"
    );
    assert!(
        run.stderr()
            .contains("after dbt Cloud run 70403103000 ended (Success)"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_watchdog_cleans_up_what_it_cannot_wait_for() {
    // Every request and pause gives way to a signal; what cannot is a log line that cannot be
    // written: stdout's reader stalled (its pipe full) while the downloads log at debug level.
    let artifacts: Vec<Artifact> = (0..3_000)
        .map(|i| Artifact::new(format!("run/m{i}.sql"), format!("select {i}").into_bytes()))
        .collect();
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        parameters(&emulator, json!({"wait_for_result": true, "debug": true})),
    );
    let mut child = component(dir.path())
        .env_remove("DBT_CLOUD_TRIGGER_TEST_TIMING")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nothing reads stdout: the component blocks once its pipe is full, and asks no more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = (0, Instant::now());
    loop {
        assert!(Instant::now() < deadline, "the component never blocked");
        let asked = emulator.requests().len();
        if asked != last.0 {
            last = (asked, Instant::now());
        } else if asked > 20 && last.1.elapsed() >= Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let signalled = Instant::now();
    sigterm(&child);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "the watchdog never ended it"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let output = child.wait_with_output().unwrap();
    let run = Run {
        dir,
        output: std::process::Output {
            status: exited,
            ..output
        },
    };
    assert_clean_stop(&run, took);
    assert!(
        took >= Duration::from_secs(4),
        "the watchdog ended it: {took:?}"
    );
    assert!(
        run.stderr()
            .contains("before the component could finish cleanly"),
        "{}",
        run.stderr()
    );
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
}

/// SIGTERM while the chain goes on: the tables are written with the chain as last seen, within
/// the usual grace; the chained run is not ours, so it is cancelled only with
/// `cancel_on_terminate` set.
#[test]
fn a_signal_in_the_middle_of_the_chain_records_it_and_cancels_it_only_when_asked() {
    const CHILD: u64 = 567184;
    for (setting, cancelled) in [(None, 0), (Some(true), 1)] {
        let emulator = emulator_with(quick(Outcome::Success));
        emulator.add_job(
            Job::new(ACCOUNT, CHILD)
                .timeline(Timeline::lasting(Duration::from_secs(120)))
                .chained_to(JOB, 270542, &[10]),
        );
        let mut parameters = parameters(
            &emulator,
            json!({"wait_for_result": true, "wait_for_chained_jobs": true}),
        );
        if let Some(cancel) = setting {
            parameters["cancel_on_terminate"] = json!(cancel);
        }
        let (run, took) = signal_when(parameters, |data| {
            std::fs::read_to_string(data.join("out/tables/dbt_cloud_run_chain.csv")).is_ok_and(
                |table| {
                    ["Queued", "Starting", "Running"]
                        .iter()
                        .any(|s| table.contains(s))
                },
            )
        });
        assert_clean_stop(&run, took);
        let child = emulator.runs_of_job(CHILD)[0];
        assert_eq!(
            count(&emulator, "POST", &format!("/runs/{child}/cancel/")),
            cancelled,
            "{}",
            run.stderr()
        );
        let said = match setting {
            None => "1 chained run goes on in dbt Cloud (set cancel_on_terminate to cancel them)",
            Some(_) => "The chain's runs: Their runs in progress were cancelled",
        };
        assert!(run.stderr().contains(said), "{}", run.stderr());
        let chain = run.table_rows("dbt_cloud_run_chain");
        assert_eq!(chain[0]["run_id"], child.to_string());
        assert_eq!(run.table_rows("dbt_cloud_run").len(), 2);
    }
}
