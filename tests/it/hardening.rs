//! What a red team found by attacking the component as a hostile server, a degraded dbt Cloud and
//! careless input would: deadlines crossed by failing requests, runs listed that do not match
//! what was asked, phases without a bound, the token reflected in server text, server values of
//! the wrong type. Each test shows a fault that once broke a promise.

use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};
use serde_json::json;

fn timed(parameters: serde_json::Value) -> (Run, Duration) {
    let started = Instant::now();
    let run = run_component(parameters);
    (run, started.elapsed())
}

// ---- A deadline crossed by a failing request is a timeout

/// A run that never ends, get-run failing in `fault`'s way from the first poll, `max_wait_time`
/// of `seconds` and `cancel_on_timeout`: the wait runs to its deadline (never ending early
/// because of a pause), then the run is cancelled within the (fast) 2 s after it, and the message
/// names the limit that passed, not dbt Cloud's health.
fn assert_timed_out_and_cancelled(fault: Fault, seconds: u64) {
    let emulator = emulator_with(job(Duration::from_secs(600), Outcome::Success));
    emulator.inject(Endpoint::GetRun, std::iter::repeat_n(fault.clone(), 1000));
    let minutes = seconds as f64 / 60.0;
    let (run, took) = timed(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": minutes, "cancel_on_timeout": true}),
    ));
    let stderr = run.stderr();
    run.assert_code(1);
    assert!(
        stderr.contains(&format!(
            "did not finish within max_wait_time ({minutes} minutes)"
        )),
        "{fault:?}: {stderr}"
    );
    assert!(!stderr.contains("kept failing"), "{fault:?}: {stderr}");
    assert!(stderr.contains("It was cancelled"), "{fault:?}: {stderr}");
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1, "{fault:?}");
    assert!(
        took >= Duration::from_secs(seconds),
        "{fault:?}: the wait ended {took:?} after the start, before max_wait_time"
    );
    assert!(
        took < Duration::from_secs(seconds + 2 + 2),
        "{fault:?}: the last look and the cancel take the 2 s after the deadline: {took:?}"
    );
    assert!(
        run.data().join("out/tables/dbt_cloud_run.csv").exists(),
        "{fault:?}"
    );
}

#[test]
fn a_get_run_failing_across_the_deadline_is_a_timeout_with_its_cancel() {
    // A 429 goes on within the (fast) 3 s a cooldown may last: the deadline comes first.
    let faults = [
        (Fault::Delay(Duration::from_secs(30)), 6),
        (Fault::Status(503), 6),
        (Fault::Unavailable { retry_after: 300 }, 6),
        (Fault::Reset, 6),
        (
            Fault::Trickle {
                bytes: 1,
                tick: Duration::from_millis(400),
            },
            6,
        ),
        (
            Fault::TooManyRequests {
                retry_after: Some(300),
            },
            3,
        ),
        (Fault::TooManyRequests { retry_after: None }, 3),
    ];
    std::thread::scope(|scope| {
        for (fault, seconds) in faults {
            scope.spawn(move || assert_timed_out_and_cancelled(fault, seconds));
        }
    });
}

// ---- One bound for the job as a whole

/// The test timing's margin after `max_wait_time` for each phase before and after the wait
/// (30 s in production).
const PHASE_MARGIN: Duration = Duration::from_secs(2);
/// Starting the process and writing the tables, on a loaded machine.
const SLACK: Duration = Duration::from_millis(1500);

/// A waiting job whose every call to `endpoint` stalls: it must fail (exit 1); how long it took,
/// and what it said.
fn stalled(endpoint: Endpoint, max_wait_time: f64) -> (Emulator, Run, Duration, String) {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        endpoint,
        std::iter::repeat_n(Fault::Delay(Duration::from_secs(30)), 1000),
    );
    let (run, took) = timed(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": max_wait_time}),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    (emulator, run, took, stderr)
}

#[test]
fn lookups_before_the_trigger_end_within_max_wait_time_and_the_margin() {
    // The job's runs cannot be listed (the baseline before the trigger): every read stalls.
    let (emulator, _run, took, stderr) = stalled(Endpoint::ListRuns, 0.01);
    assert!(
        took < Duration::from_millis(600) + PHASE_MARGIN + SLACK,
        "took {took:?}: {stderr}"
    );
    assert!(
        stderr.contains("max_wait_time + 2 s (2.6 s) passed before the run was started"),
        "{stderr}"
    );
    assert!(
        stderr.contains("was still failing: dbt Cloud at "),
        "{stderr}"
    );
    assert_eq!(
        emulator.runs_created(),
        0,
        "nothing triggered after the bound"
    );
}

#[test]
fn artifact_lists_after_the_wait_end_within_max_wait_time_and_the_margin() {
    let (_emulator, run, took, stderr) = stalled(Endpoint::ListArtifacts, 0.02);
    // The run takes 1.2 s; the wait ends when it ends, the phase after it 3.2 s later at most.
    assert!(
        took < Duration::from_millis(1200) + Duration::from_millis(1200) + PHASE_MARGIN + SLACK,
        "took {took:?}: {stderr}"
    );
    assert!(
        stderr.contains("max_wait_time + 2 s (3.2 s) passed after the run ended"),
        "{stderr}"
    );
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
}

/// A job of dbt's own steps and `commands`, its artifacts not wanted (`ignore_artifacts`), so
/// that its steps' files are fetched for the tables alone, and every `?step=N` of its steps but
/// the last answering `fault`; `max_wait_time` of 1.2 s. The run, how long it took, the other
/// steps' indexes, and the log.
fn steps_files_failing(commands: &[&str], fault: Fault) -> (Emulator, Run, Duration, Vec<u32>) {
    let emulator = emulator_with(job_with_steps(Outcome::Success, commands));
    let last = 3 + commands.len() as u32;
    let others: Vec<u32> = (4..last).collect();
    for step in &others {
        emulator.inject_where(
            Endpoint::DownloadArtifact,
            ("step", &step.to_string()),
            std::iter::repeat_n(fault.clone(), 1000),
        );
    }
    let (run, took) = timed(parameters(
        &emulator,
        waiting(json!({"max_wait_time": 0.02, "ignore_artifacts": true})),
    ));
    (emulator, run, took, others)
}

/// Each of the other steps' files was warned about, naming its step; the last step's rows are
/// written, and the run succeeded.
fn assert_left_out(run: &Run, commands: &[&str], others: &[u32]) -> String {
    let stdout = run.stdout();
    run.assert_code(0);
    for (step, command) in others.iter().zip(commands) {
        for file in ["run_results.json", "sources.json"] {
            let warning = format!(
                "step {step} \"Invoke dbt with `dbt {command}`\": its {file} could not be \
                 fetched ("
            );
            assert!(stdout.contains(&warning), "{warning}\n{stdout}");
        }
    }
    let last = (3 + commands.len()).to_string();
    let rows = run.table_rows("dbt_cloud_run_results");
    assert!(!rows.is_empty(), "{stdout}");
    assert!(rows.iter().all(|row| row["step_index"] == last), "{stdout}");
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
    stdout
}

/// Eight steps' files answering 503 to every attempt: fetched in parallel, the phase after the
/// run ends within its bound (one after another, they took about a second each).
#[test]
fn steps_files_failing_end_within_max_wait_time_and_the_margin() {
    let commands = [
        "source freshness",
        "seed",
        "snapshot",
        "run",
        "test",
        "build",
        "run --select tag:late",
        "test --select tag:late",
        "docs generate",
    ];
    let (_emulator, run, took, others) = steps_files_failing(&commands, Fault::Status(503));
    let stdout = assert_left_out(&run, &commands, &others);
    // The run takes 1.2 s; the wait ends when it ends, the phase after it 3.2 s later at most.
    assert!(
        took < Duration::from_millis(1200) + Duration::from_millis(1200) + PHASE_MARGIN + SLACK,
        "took {took:?}: {stdout}"
    );
}

/// Two steps' files that stall: all four are asked for at once, and given up when the phase
/// after the run passes its bound, which the warnings name.
#[test]
fn steps_files_stalling_are_fetched_together_and_given_up_at_the_phases_bound() {
    let commands = ["source freshness", "build", "docs generate"];
    let (emulator, run, took, others) =
        steps_files_failing(&commands, Fault::Delay(Duration::from_secs(30)));
    let stdout = assert_left_out(&run, &commands, &others);
    assert!(
        stdout.contains("max_wait_time + 2 s (3.2 s) passed after the run ended"),
        "{stdout}"
    );
    assert!(
        took < Duration::from_millis(1200) + Duration::from_millis(1200) + PHASE_MARGIN + SLACK,
        "took {took:?}: {stdout}"
    );
    // Every file's first request came before any file's second: none waited for another.
    let asked: Vec<(String, String)> = emulator
        .requests_to("GET", "")
        .into_iter()
        .filter_map(|request| {
            let step = request.query?.strip_prefix("step=")?.to_owned();
            Some((step, request.path))
        })
        .collect();
    let files = others.len() * 2;
    let firsts: std::collections::HashSet<&(String, String)> = asked.iter().collect();
    assert_eq!(firsts.len(), files, "{asked:#?}");
    let mut seen = std::collections::HashSet::new();
    let before_any_retry: Vec<&(String, String)> =
        asked.iter().take_while(|file| seen.insert(*file)).collect();
    assert_eq!(
        before_any_retry.len(),
        files,
        "a file was asked again before every file was asked once: {asked:#?}"
    );
}

/// A local run with `runtime.process_timeout` of `limit` seconds.
fn with_limit(emulator: &Emulator, limit: u64, extra: serde_json::Value) -> (Run, Duration) {
    let root = json!({
        "parameters": parameters(emulator, extra),
        "runtime": {"process_timeout": limit},
    });
    let started = Instant::now();
    let run = run_component_with(Some(root.to_string()), &[]);
    (run, started.elapsed())
}

/// The trigger's answer is lost (the run created all the same), and every look for the run it
/// created fails until the trigger's retries give up: one more look when they have, so that the
/// run is recorded and followed rather than left behind without a row.
#[test]
fn a_lost_trigger_whose_lookups_failed_is_looked_for_once_more() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(Endpoint::Trigger, [Fault::Delay(Duration::from_secs(30))]);
    // Six answers of 503: all the attempts the lookup has (in the test timing).
    emulator.inject_where(
        Endpoint::ListRuns,
        ("limit", "20"),
        std::iter::repeat_n(Fault::Status(503), 6),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    let stderr = run.stderr();
    run.assert_code(0);
    assert_eq!(emulator.runs_created(), 1, "{stderr}");
    assert!(
        run.stdout()
            .contains("The trigger's answer was lost, but it started run 70403103000"),
        "{}",
        run.stdout()
    );
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], "70403103000");
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
}

#[test]
fn nothing_is_triggered_when_too_little_time_is_left_before_the_jobs_limit() {
    let emulator = emulator_with(quick(Outcome::Success));
    // The baseline read before the trigger stalls four times (the test timing's read timeout is
    // 1 s): about 4.5 of the job's 6 s are gone when it is answered.
    emulator.inject(
        Endpoint::ListRuns,
        std::iter::repeat_n(Fault::Delay(Duration::from_secs(30)), 4),
    );
    let (run, took) = with_limit(&emulator, 6, json!({"wait_for_result": true}));
    let stderr = run.stderr();
    run.assert_code(1);
    assert!(took < Duration::from_secs(6), "took {took:?}: {stderr}");
    assert_eq!(emulator.runs_created(), 0, "{stderr}");
    assert_eq!(count(&emulator, "POST", "/run/"), 0, "{stderr}");
    assert!(
        stderr.starts_with("Not triggering: ") && stderr.contains("nothing was sent"),
        "{stderr}"
    );
}

/// A local limit of 16 s (the test timing's margin before it is an eighth: 2 s), and every
/// artifact stalling: the downloads, and anything after them, end by the margin; no request of
/// any kind starts after it, and the tables and the message are written before the limit.
#[test]
fn no_request_starts_past_the_margin_before_the_jobs_limit() {
    let artifacts: Vec<Artifact> = (0..20)
        .map(|i| Artifact::new(format!("compiled/model_{i:02}.sql"), b"select 1\n".to_vec()))
        .collect();
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    emulator.inject(
        Endpoint::DownloadArtifact,
        std::iter::repeat_n(Fault::Delay(Duration::from_secs(30)), 1000),
    );
    let started = Instant::now();
    let (run, took) = with_limit(
        &emulator,
        16,
        json!({"wait_for_result": true, "artifact_concurrency": 1}),
    );
    let stderr = run.stderr();
    run.assert_code(1);
    let margin = started + Duration::from_secs(16 - 2);
    let late: Vec<String> = emulator
        .requests()
        .iter()
        .filter(|request| request.at > margin + SLACK)
        .map(|request| {
            format!(
                "{} {} at {:?}",
                request.method,
                request.path,
                request.at - started
            )
        })
        .collect();
    assert!(late.is_empty(), "past the margin: {late:#?}\n{stderr}");
    assert!(took < Duration::from_secs(16), "took {took:?}: {stderr}");
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
    assert!(stderr.contains("could not be downloaded"), "{stderr}");
    let stdout = run.stdout();
    assert!(
        stdout.contains("(runtime.process_timeout, 0.27 minutes) is near: not sent"),
        "{stdout}"
    );
}

// ---- Listed runs are checked, not trusted

const STRAY: u64 = 70403100111;

/// A run as the list of runs carries it.
fn listed_run(id: u64, job: u64, account: u64, status: u64) -> serde_json::Value {
    json!({
        "id": id, "account_id": account, "job_definition_id": job, "status": status,
        "href": format!("https://cloud.example/runs/{id}/"),
        "created_at": "2026-11-20 01:00:00.000000+00:00",
        "finished_at": if status >= 10 { json!("2026-11-20 01:05:00.000000+00:00") } else { json!(null) },
        "trigger": {"cause": "Triggered from Keboola"},
    })
}

/// An answer of the list of runs that holds exactly `runs`, whatever was asked.
fn list_of(runs: Vec<serde_json::Value>) -> Fault {
    let count = runs.len();
    Fault::Json(
        200,
        json!({
            "status": {"code": 200, "is_success": true},
            "data": runs,
            "extra": {"pagination": {"count": count, "total_count": count}},
        }),
    )
}

/// The list of runs in progress answers `runs` instead; `if_running` is `policy`.
fn with_runs_in_progress(policy: &str, runs: Vec<serde_json::Value>) -> (Emulator, Run) {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject_where(
        Endpoint::ListRuns,
        ("status__in", "[1,2,3]"),
        [list_of(runs)],
    );
    let run = run_component(parameters(
        &emulator,
        json!({"if_running": policy, "wait_for_result": true, "ignore_artifacts": true}),
    ));
    (emulator, run)
}

#[test]
fn a_finished_or_foreign_run_among_those_in_progress_is_left_out_whatever_if_running_says() {
    let strays = [
        ("a finished run", listed_run(STRAY, JOB, ACCOUNT, 10)),
        ("another job's run", listed_run(STRAY, 999, ACCOUNT, 3)),
        ("another account's run", listed_run(STRAY, JOB, 1, 3)),
        ("a run without a job", json!({"id": STRAY, "status": 3})),
    ];
    for (what, stray) in strays {
        for policy in ["skip", "wait", "replace", "fail"] {
            let (emulator, run) = with_runs_in_progress(policy, vec![stray.clone()]);
            run.assert_code(0);
            let stdout = run.stdout();
            assert_eq!(emulator.runs_created(), 1, "{what}, {policy}: {stdout}");
            assert_eq!(
                run.table("dbt_cloud_trigger").1["id"],
                "70403103000",
                "{what}, {policy}: the run followed is the one triggered"
            );
            assert_eq!(
                count(&emulator, "POST", &format!("/runs/{STRAY}/cancel/")),
                0,
                "{what}, {policy}: nothing cancelled on its word"
            );
            assert!(
                stdout.contains(&format!(
                    "dbt Cloud listed 1 run(s) that are not what was asked for (runs of job {JOB} \
                     in account {ACCOUNT}, Queued or Starting or Running), left out: run {STRAY}"
                )),
                "{what}, {policy}: {stdout}"
            );
        }
    }
}

/// The trigger's answer is lost, and the look for the run it created lists another job's run
/// with our cause: it is not adopted, and the run followed is one of our job.
#[test]
fn a_lost_trigger_never_adopts_another_jobs_run() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(Endpoint::Trigger, [Fault::Delay(Duration::from_secs(30))]);
    // With our cause and created after our send: only its job tells it apart.
    let mut foreign = listed_run(70403109999, 999, ACCOUNT, 3);
    foreign["created_at"] = json!("2099-01-01 00:00:00.000000+00:00");
    emulator.inject_where(
        Endpoint::ListRuns,
        ("limit", "20"),
        [list_of(vec![foreign])],
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    let trigger = run.table("dbt_cloud_trigger").1;
    assert_ne!(trigger["id"], "70403109999", "{}", run.stdout());
    assert_eq!(trigger["job_definition_id"], JOB.to_string());
    assert_eq!(
        run.table("dbt_cloud_run").1["job_definition_id"],
        JOB.to_string()
    );
}

#[test]
fn a_followed_run_must_be_the_run_asked_for_in_the_account_asked_for() {
    for (patch, expected) in [
        (
            json!({"id": 70403109999_u64}),
            "with run 70403109999 of account 43786",
        ),
        (
            json!({"account_id": 1}),
            "with run 70403103000 of account 1",
        ),
    ] {
        let emulator = emulator_with(quick(Outcome::Success));
        let id = emulator.add_scheduled_run(
            JOB,
            Timeline::lasting(Duration::from_secs(1)),
            Outcome::Success,
        );
        emulator.inject(
            Endpoint::GetRun,
            std::iter::repeat_n(Fault::Patch(patch.as_object().unwrap().clone()), 50),
        );
        let run = run_component(parameters(
            &emulator,
            json!({"run_id": id.to_string(), "wait_for_result": true, "ignore_artifacts": true}),
        ));
        run.assert_code(1);
        let stderr = run.stderr();
        assert!(
            stderr.starts_with(&format!("dbt Cloud answered for run {id} {expected}")),
            "{patch}: {stderr}"
        );
        assert!(!run.data().join("out/tables/dbt_cloud_run.csv").exists());
    }
}

// ---- The token masked in whatever the server sends back

/// Neither the log, nor the error, nor any table or file of the data folder holds the token.
fn assert_token_nowhere(run: &Run, case: &str) {
    assert!(
        !run.stdout().contains(TOKEN),
        "{case}: stdout\n{}",
        run.stdout()
    );
    assert!(
        !run.stderr().contains(TOKEN),
        "{case}: stderr\n{}",
        run.stderr()
    );
    for file in files_under(&run.data().join("out")) {
        let text = std::fs::read(run.data().join("out").join(&file)).unwrap();
        assert!(
            !String::from_utf8_lossy(&text).contains(TOKEN),
            "{case}: {file} holds the token"
        );
    }
}

fn error_envelope(code: u16, message: &str) -> serde_json::Value {
    json!({"status": {"code": code, "is_success": false, "user_message": message, "developer_message": message}, "data": null})
}

#[test]
fn a_token_the_server_reflects_is_masked_in_the_log_the_error_and_the_tables() {
    let echoed = format!("Token {TOKEN} was refused");
    let refusals = [
        (
            "a 401's text",
            Endpoint::Trigger,
            Fault::Json(401, error_envelope(401, &echoed)),
        ),
        (
            "a 404's text",
            Endpoint::Trigger,
            Fault::Json(404, error_envelope(404, &echoed)),
        ),
        (
            "a body that is not the API's",
            Endpoint::Trigger,
            Fault::Json(200, json!(echoed)),
        ),
    ];
    for (case, endpoint, fault) in refusals {
        let emulator = emulator_with(quick(Outcome::Success));
        emulator.inject(endpoint, [fault]);
        let run = run_component(parameters(&emulator, json!({})));
        run.assert_code(1);
        assert!(run.stderr().contains("***"), "{case}: {}", run.stderr());
        assert_token_nowhere(&run, case);
    }

    // 5xx texts retried, then a failed run whose message and step log quote the token.
    let emulator = emulator_with(
        quick(Outcome::Error).failed_step_log(&format!("Database Error\n  auth {TOKEN} denied\n")),
    );
    emulator.inject(
        Endpoint::GetRun,
        [Fault::Json(503, error_envelope(503, &echoed))],
    );
    emulator.inject(
        Endpoint::ListArtifacts,
        [Fault::Json(502, error_envelope(502, &echoed))],
    );
    let mut status = serde_json::Map::new();
    status.insert("status_message".into(), json!(echoed));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Patch(status), 100),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    assert!(run.stdout().contains("***"), "{}", run.stdout());
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert!(
        steps
            .iter()
            .any(|step| step["logs"].contains("auth *** denied")),
        "{steps:?}"
    );
    assert_eq!(
        run.table("dbt_cloud_run").1["status_message"],
        "Token *** was refused"
    );
    assert_token_nowhere(&run, "a failed run");
}

// ---- Server values we cannot read

#[test]
fn a_status_that_is_not_a_code_is_in_progress_with_a_warning_whatever_its_type() {
    for (status, warned) in [
        (json!("Success"), "dbt Cloud sent the run's status as \"Success\", which is not a status code; the run is taken as still in progress"),
        (json!(10.0), "dbt Cloud sent the run's status as 10.0, which is not a status code"),
        (json!(true), "dbt Cloud sent the run's status as true, which is not a status code"),
        (json!({"code": 10}), "dbt Cloud sent the run's status as {\"code\":10}, which is not a status code"),
        (json!(-20), "dbt Cloud answered with status -20 (step 4 \"Invoke dbt build\"); taking the run as still in progress"),
    ] {
        let emulator = emulator_with(quick(Outcome::Success));
        let mut patch = serde_json::Map::new();
        patch.insert("status".into(), status.clone());
        emulator.inject(Endpoint::GetRun, std::iter::repeat_n(Fault::Patch(patch), 1000));
        let run = run_component(parameters(
            &emulator,
            json!({"wait_for_result": true, "max_wait_time": 0.03, "cancel_on_timeout": true}),
        ));
        run.assert_code(1);
        let stdout = run.stdout();
        assert_eq!(stdout.matches(warned).count(), 1, "{status}: said once\n{stdout}");
        assert!(
            run.stderr().contains("did not finish within max_wait_time (0.03 minutes)"),
            "{status}: {}",
            run.stderr()
        );
        assert_eq!(count(&emulator, "POST", "/cancel/"), 1, "{status}");
    }
}

#[test]
fn steps_that_are_not_a_list_are_no_steps_with_a_warning() {
    let emulator = emulator_with(quick(Outcome::Success));
    let mut patch = serde_json::Map::new();
    patch.insert("run_steps".into(), json!({"1": {"name": "Clone"}}));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Patch(patch), 1000),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert_eq!(
        run.stdout()
            .matches("dbt Cloud sent run 70403103000's steps as an object, not a list: no steps are read")
            .count(),
        1,
        "{}",
        run.stdout()
    );
    assert_eq!(run.table_rows("dbt_cloud_run_steps").len(), 0);
}

#[test]
fn a_job_list_of_null_is_empty_and_a_job_that_cannot_be_read_is_left_out() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB).named("Nightly build", "Production"));
    emulator.inject(
        Endpoint::ListJobs,
        [Fault::Json(
            200,
            json!({"status": {"code": 200, "is_success": true}, "data": null}),
        )],
    );
    let mut parameters = parameters(&emulator, json!({"job_name": "Nightly build"}));
    parameters.as_object_mut().unwrap().remove("job_id");
    let run = run_component(parameters.clone());
    run.assert_code(1);
    assert!(run.stderr().contains("Nightly build"), "{}", run.stderr());

    let jobs = json!([
        {"id": "not a number", "name": "Broken"},
        {"id": JOB, "name": "Nightly build", "project_id": 270542,
         "environment": {"name": "Production", "deployment_type": "production", "type": "deployment"}},
    ]);
    emulator.inject(
        Endpoint::ListJobs,
        [Fault::Json(200, json!({"status": {"code": 200, "is_success": true}, "data": jobs, "extra": {"pagination": {"count": 2, "total_count": 2}}}))],
    );
    let run = run_component(parameters);
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains("dbt Cloud listed 1 job(s) that could not be read, left out (the first: invalid value: string \"not a number\""),
        "{}",
        run.stdout()
    );
    assert_eq!(
        run.table("dbt_cloud_trigger").1["job_definition_id"],
        JOB.to_string()
    );
}

// ---- Only what is read is kept, and bounded

#[test]
fn huge_fields_the_tables_write_are_cut_within_their_budget_and_say_so() {
    use dbt_cloud_emulator::Bloat;
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(
            Fault::Bloated(Bloat::Field {
                name: "job".into(),
                bytes: 3_000_000,
            }),
            100,
        ),
    );
    emulator.inject(
        Endpoint::Trigger,
        [Fault::Bloated(Bloat::Field {
            name: "trigger".into(),
            bytes: 3_000_000,
        })],
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    for (table, column) in [("dbt_cloud_run", "job"), ("dbt_cloud_trigger", "trigger")] {
        let cell = run.table(table).1[column].clone();
        assert!(
            cell.len() < 1_100_000,
            "{table}.{column}: {} bytes",
            cell.len()
        );
        let value: serde_json::Value = serde_json::from_str(&cell).expect("still JSON");
        let mark = value["…"].as_str().unwrap_or_default();
        assert!(
            mark.ends_with("more cut: too large to keep]…"),
            "{table}.{column}: {mark}"
        );
    }
}

/// A waiting job, without artifacts, whose every get-run answers `fault`: it must succeed.
fn with_every_get_run(fault: Fault) -> Run {
    let emulator = emulator_with(quick(Outcome::Success));
    // Enough for every look: on a busy machine many break off (the tests' read timeout is 1 s)
    // and are tried again, each taking one; the wait's bound keeps a machine too busy to read
    // any of them from holding the test.
    emulator.inject(Endpoint::GetRun, std::iter::repeat_n(fault, 2_000));
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true, "max_wait_time": 2}),
    ));
    run.assert_code(0);
    run
}

#[test]
fn steps_are_read_up_to_their_cap_and_long_logs_keep_their_ends() {
    use dbt_cloud_emulator::Bloat;
    // Ten times the cap, and logs far past what a cell and a string's stream keep: large enough
    // for both bounds, small enough to be read within the tests' 1 s on a busy machine.
    let run = with_every_get_run(Fault::Bloated(Bloat::Steps(2_000)));
    assert_eq!(
        run.stdout()
            .matches("dbt Cloud listed 2000 steps for run 70403103000; the first 200 are read")
            .count(),
        1,
        "{}",
        run.stdout()
    );
    assert_eq!(run.table_rows("dbt_cloud_run_steps").len(), 200);

    let run = with_every_get_run(Fault::Bloated(Bloat::StepLogs(1_000_000)));
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert_eq!(steps.len(), 4);
    for step in &steps {
        assert!(
            step["logs"].chars().count() <= 10_000,
            "{}",
            step["logs"].len()
        );
        assert!(
            step["logs"].ends_with("xxx"),
            "the end of the log is kept: …{}\n{}",
            step["logs"]
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>(),
            run.stdout()
        );
    }
}

#[test]
fn a_node_message_of_megabytes_is_cut_in_its_cell() {
    let message = format!("{}{}", "Database Error\n", "m".repeat(3_000_000));
    let results = json!({
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json", "invocation_id": "x"},
        "results": [{"unique_id": "model.p.huge", "status": "error", "message": message,
                     "execution_time": 1.0, "thread_id": "Thread-1", "timing": [], "adapter_response": {}}],
    });
    let emulator = emulator_with(quick(Outcome::Error).artifacts(vec![Artifact::new(
        "run_results.json",
        results.to_string().into_bytes(),
    )]));
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let rows = run.table_rows("dbt_cloud_run_results");
    let cell = &rows[0]["message"];
    assert!(cell.len() <= 64 * 1024 + 100, "{} bytes", cell.len());
    assert!(cell.starts_with("Database Error\n"), "its head is kept");
    assert!(cell.contains("characters cut]…"), "and says it was cut");
    assert!(
        run.artifacts_dir()
            .join("run_results.json")
            .metadata()
            .unwrap()
            .len()
            > 3_000_000,
        "the artifact itself is kept whole"
    );
}

// ---- Low: each with its test

/// dbt Cloud's clock an hour behind ours: a followed run created a moment ago is a moment old on
/// dbt Cloud's clock, not an hour, and is not cancelled as queued too long.
#[test]
fn max_queue_time_counts_on_dbt_clouds_clock() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.skew_clock(chrono::Duration::hours(-1));
    let id = emulator.add_scheduled_run(
        JOB,
        Timeline {
            queued: Duration::from_millis(1500),
            starting: Duration::from_millis(200),
            running: Duration::from_millis(500),
        },
        Outcome::Success,
    );
    let run = run_component(parameters(
        &emulator,
        json!({"run_id": id.to_string(), "wait_for_result": true, "max_queue_time": 0.5,
               "cancel_on_timeout": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert_eq!(count(&emulator, "POST", "/cancel/"), 0);
}

/// A host name that cannot resolve (here a label longer than DNS allows, which the resolver
/// refuses without asking any server) is a typo to fix, not an outage to retry.
#[test]
fn a_host_that_does_not_resolve_is_a_typo_not_an_outage() {
    let host = format!("{}.example.com", "a".repeat(70));
    let (run, took) = timed(json!({
        "account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN,
        "dbt_cloud_url": format!("https://{host}"),
    }));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "The host {host} of dbt_cloud_url could not be found"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("kept failing"), "{stderr}");
    assert!(took < Duration::from_secs(3), "not retried: {took:?}");
}

/// A failure whose message names the run (get-run refused for it) still links it.
#[test]
fn a_failure_naming_the_run_keeps_its_link() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Status(404), 10),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(stderr.contains("run 70403103000"), "{stderr}");
    assert!(
        stderr.contains("/deploy/43786/projects/270542/runs/70403103000/"),
        "{stderr}"
    );
}

/// Artifact paths come from dbt Cloud's list: a path that quotes the token is masked wherever
/// the log or the error names it (a skipped path, one listed twice, one that cannot be
/// downloaded, the download's summary).
#[test]
fn an_artifact_path_holding_the_token_is_masked_in_the_log() {
    let artifacts = vec![
        Artifact::new(format!("target/{TOKEN}/run_results.json"), b"{}".to_vec()),
        Artifact::new(format!("target/{TOKEN}/run_results.json"), b"{}".to_vec()),
        Artifact::new(format!("../{TOKEN}.txt"), b"evil".to_vec()),
        Artifact::new(format!("{TOKEN}\\x.txt"), b"odd".to_vec()),
        Artifact::missing(format!("target/{TOKEN}/manifest.json")),
    ];
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"artifacts_must_succeed": true, "debug": true})),
    ));
    run.assert_code(1);
    let log = format!("{}\n{}", run.stdout(), run.stderr());
    for said in [
        "Skipped artifact",
        "more than once",
        "could not be downloaded",
    ] {
        assert!(log.contains(said), "{said}\n{log}");
    }
    assert!(log.contains("target/***/"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

/// Python's `json` writes a byte it could not decode as a lone surrogate escape (`\udcfc`), which
/// no JSON parser of Rust takes: in a step's log or the run's status_message it is one odd
/// character (U+FFFD) with one warning for the run, not an answer that is not dbt Cloud's; a
/// whole pair stays the emoji it makes.
#[test]
fn a_lone_surrogate_escape_is_one_odd_character_not_an_unreadable_answer() {
    let mut job = quick(Outcome::Error)
        .failed_step_log("Database Error\n  bad byte LONE_LOW, LONE_HIGH and PAIR\n");
    job.error_message = "Job run failed: LONE_LOW in step 'Invoke dbt build'.".to_owned();
    let emulator = emulator_with(job);
    emulator.rewrite_answers("LONE_LOW", "\\udcfc");
    emulator.rewrite_answers("LONE_HIGH", "\\ud83d");
    emulator.rewrite_answers("PAIR", "\\ud83d\\ude00");
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("ended in Error") && !stderr.contains("not dbt Cloud's API answer"),
        "{stderr}"
    );
    assert_eq!(
        run.table("dbt_cloud_run").1["status_message"],
        "Job run failed: \u{fffd} in step 'Invoke dbt build'."
    );
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert!(
        steps
            .iter()
            .any(|step| step["logs"].contains("bad byte \u{fffd}, \u{fffd} and 😀")),
        "{steps:?}"
    );
    let stdout = run.stdout();
    assert_eq!(
        stdout.matches("lone surrogate escape").count(),
        1,
        "one warning for the run, however many answers held one\n{stdout}"
    );
    assert!(
        emulator
            .requests_to("GET", &format!("/runs/{}/", emulator.next_run_id() - 1))
            .len()
            > 1,
        "several answers held them"
    );
}

/// The job's first request refused for the token: one request without it tells an IP
/// allow-list refusing this address from a token dbt Cloud refuses, and the error says which.
#[test]
fn the_job_tells_an_ip_allow_list_from_a_refused_token() {
    let emulator = Emulator::start();
    emulator.add_account(Account::new(ACCOUNT).behind_an_ip_allow_list(), &[TOKEN]);
    emulator.add_job(quick(Outcome::Success));
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    assert!(
        run.stderr()
            .starts_with("dbt Cloud refuses this address (IP allow-list): account"),
        "{}",
        run.stderr()
    );
    assert_eq!(emulator.runs_created(), 0);

    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        json!({"#api_key": "dbtc_not_this_account_0"}),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("dbt Cloud refused the API token (HTTP 401: Invalid token.)")
            && !stderr.contains("refuses this address"),
        "{stderr}"
    );

    // A 403 from an address the account takes: the token (its permissions) is refused.
    let denied = json!({"status": {"code": 403, "is_success": false, "user_message": "Forbidden: Access denied", "developer_message": ""}, "data": null});
    emulator.inject(Endpoint::ListRuns, [Fault::Json(403, denied)]);
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("dbt Cloud denied access")
            && stderr.contains("the token is refused")
            && !stderr.contains("refuses this address"),
        "{stderr}"
    );
    assert_eq!(emulator.runs_created(), 0);
}

/// A step name of 60 KB, repeated on each of its step's results rows, made a table of hundreds of
/// megabytes: a step's name is cut like other long text wherever it is written.
#[test]
fn a_huge_step_name_is_cut_in_every_row_and_line() {
    let name = format!(
        "Invoke dbt with `dbt build {}`",
        "-s model_x ".repeat(5_400)
    );
    let emulator = emulator_with(
        quick(Outcome::Success)
            .steps(&[
                "Clone git repository",
                &name,
                "Invoke dbt with `dbt docs generate`",
            ])
            .step_artifacts(
                2,
                vec![Artifact::new(
                    "run_results.json",
                    real("run_results/v6-1.10.13-build-warn-noop-scooters.json"),
                )],
            ),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    let of_step: Vec<_> = rows.iter().filter(|row| row["step_index"] == "2").collect();
    assert_eq!(of_step.len(), 59);
    let total = name.chars().count();
    for row in &of_step {
        let cell = &row["step_name"];
        assert!(
            cell.chars().count() <= 1_000,
            "{} characters",
            cell.chars().count()
        );
        assert!(
            cell.starts_with("Invoke dbt with `dbt build -s model_x"),
            "{cell}"
        );
        let kept = cell.find('…').unwrap();
        assert!(
            cell.ends_with(&format!(
                "…[{} characters cut]…",
                total - cell[..kept].chars().count()
            )),
            "{cell}"
        );
    }
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert_eq!(
        steps[1]["name"], of_step[0]["step_name"],
        "one name everywhere"
    );
    let size = std::fs::metadata(run.data().join("out/tables/dbt_cloud_run_results.csv"))
        .unwrap()
        .len();
    assert!(size < 200_000, "{size} bytes");
    assert!(
        run.stdout().lines().all(|line| line.len() < 5_000),
        "no line of the log repeats the whole name"
    );
}

/// Runs the component on a data folder that `prepare` blocked somewhere below `out/tables` or
/// the artifacts, as `nobody` when the tests run as root; returns its exit code and stderr.
fn blocked_data_folder(prepare: impl FnOnce(&std::path::Path)) -> (Emulator, Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let emulator = emulator_with(job_with_steps(
        Outcome::Success,
        &["build", "docs generate"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    write_config(
        data,
        parameters(&emulator, json!({"wait_for_result": true})),
    );
    prepare(data);
    let mut command = component(data);
    if unsafe { libc::geteuid() } == 0 {
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    (
        emulator,
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Everything below `data` writable by everyone (the component may run as `nobody`), `sticky`
/// folders with the sticky bit: only a file's owner may replace it there.
fn open_to_all(data: &std::path::Path, sticky: &[&str]) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for folder in [
        "",
        "out",
        "out/tables",
        "out/files",
        "artifacts",
        "artifacts/out",
        "artifacts/out/current",
    ] {
        std::fs::create_dir_all(data.join(folder)).unwrap();
        mode(&data.join(folder), 0o777);
    }
    mode(&data.join("config.json"), 0o644);
    for folder in sticky {
        mode(&data.join(folder), 0o1777);
    }
}

/// The check before the trigger covers the files the job writes and the other steps' folder, not
/// only the folders: a place the job cannot write is found before anything is sent to dbt Cloud,
/// named, and nothing is triggered.
#[test]
fn a_table_file_or_steps_folder_that_cannot_be_written_is_found_before_the_trigger() {
    use std::os::unix::fs::PermissionsExt;
    type Prepare = Box<dyn FnOnce(&std::path::Path)>;
    let cases: Vec<(&str, Prepare)> = vec![
        (
            "out/tables/dbt_cloud_run.csv",
            Box::new(|data: &std::path::Path| {
                open_to_all(data, &[]);
                std::fs::create_dir(data.join("out/tables/dbt_cloud_run.csv")).unwrap();
            }),
        ),
        (
            "out/tables/dbt_cloud_run_steps.csv.manifest",
            Box::new(|data: &std::path::Path| {
                open_to_all(data, &["out/tables"]);
                let file = data.join("out/tables/dbt_cloud_run_steps.csv.manifest");
                std::fs::write(&file, "{}").unwrap();
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
                if unsafe { libc::geteuid() } != 0 {
                    // Not root: the file cannot be given away, so the folder is made read-only.
                    std::fs::set_permissions(
                        data.join("out/tables"),
                        std::fs::Permissions::from_mode(0o555),
                    )
                    .unwrap();
                }
            }),
        ),
        (
            "artifacts/out/current/steps",
            Box::new(|data: &std::path::Path| {
                open_to_all(data, &[]);
                std::fs::write(data.join("artifacts/out/current/steps"), "x").unwrap();
            }),
        ),
        (
            "artifacts/out/current/steps/4",
            Box::new(|data: &std::path::Path| {
                open_to_all(data, &[]);
                std::fs::create_dir(data.join("artifacts/out/current/steps")).unwrap();
                std::fs::write(data.join("artifacts/out/current/steps/4"), "x").unwrap();
            }),
        ),
    ];
    for (blocked, prepare) in cases {
        let (emulator, code, stderr) = blocked_data_folder(prepare);
        assert_eq!(code, Some(1), "{blocked}: {stderr}");
        assert!(stderr.contains(blocked), "{blocked}: {stderr}");
        assert!(
            stderr.contains("Nothing was triggered."),
            "{blocked}: {stderr}"
        );
        assert!(
            emulator.requests().is_empty(),
            "{blocked}: nothing sent to dbt Cloud: {:?}",
            emulator.requests()
        );
    }
}

// ---- Artifacts asked for only when they can be there

/// A failed run that dbt Cloud says saved no artifacts (`artifacts_saved` still false once the
/// grace for their upload is over): no list is asked for, nor any step's file; the failure is told
/// from the failed step's log, which comes with the run.
#[test]
fn a_run_that_saved_no_artifacts_is_not_asked_for_them() {
    let log = String::from_utf8(real("logs/dbt-core-database-error-docs-faq.log")).unwrap();
    let emulator = emulator_with(
        job_with_steps(Outcome::Error, &["source freshness", "build"]).failed_step_log(&log),
    );
    let unsaved = json!({"artifacts_saved": false});
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Patch(unsaved.as_object().unwrap().clone()), 1000),
    );
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert_eq!(
        emulator
            .requests_to("GET", "")
            .iter()
            .filter(|r| r.path.contains("/artifacts"))
            .count(),
        0,
        "{stderr}"
    );
    assert!(
        stderr.contains("- Database Error in model customers"),
        "{stderr}"
    );
    assert!(
        run.stdout()
            .contains("dbt Cloud saved no artifacts of run 70403103000"),
        "{}",
        run.stdout()
    );
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Error");
}

/// The run's artifact list is asked for once: the downloads' list serves the steps' files too.
#[test]
fn the_artifact_list_is_asked_for_once() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"artifacts_include": ["manifest.json"]})),
    ));
    run.assert_code(0);
    assert_eq!(
        count(&emulator, "GET", "/artifacts/"),
        1,
        "{}",
        run.stdout()
    );
    assert!(!run.table_rows("dbt_cloud_run_results").is_empty());
}
