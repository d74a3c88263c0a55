//! Why the run failed, said where the user looks: the exit-1 message and the log carry a digest
//! from the run's run_results.json, or from dbt's error block in the failed step's log; dbt
//! Cloud's refusal to retry a run is said in words; queue and run times are told apart.

use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::Timeline;
use serde_json::json;

/// The emulator's standard artifacts with `run_results` in place of theirs, or without one.
fn artifacts_with(run_results: Option<Vec<u8>>) -> Vec<Artifact> {
    let mut artifacts: Vec<Artifact> = dbt_cloud_emulator::standard_artifacts()
        .into_iter()
        .filter(|a| a.path != "run_results.json")
        .collect();
    if let Some(bytes) = run_results {
        artifacts.push(Artifact::new("run_results.json", bytes));
    }
    artifacts
}

fn waiting() -> serde_json::Value {
    json!({"wait_for_result": true})
}

#[test]
fn a_failed_run_says_which_nodes_failed_from_its_real_run_results() {
    let results = real("run_results/v4-postgres-errors-datavault.json");
    let emulator = emulator_with(quick(Outcome::Error).artifacts(artifacts_with(Some(results))));
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("dbt Cloud run "), "{stderr}");
    assert!(lines[0].contains("ended in Error"), "{stderr}");
    assert!(
        lines[1].starts_with("step 4 \"Invoke dbt build\": 2 of ")
            && lines[1].ends_with(" nodes failed"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("- model.") && lines[2].contains(" (error"),
        "{stderr}"
    );
    assert!(
        lines[3].starts_with("- model.") && lines[3].contains(" (error"),
        "{stderr}"
    );
    assert!(lines[4].starts_with("queued "), "{stderr}");
    // The log carries the same digest, line for line.
    for line in &lines[1..] {
        assert!(
            run.stdout().contains(&format!("WARN  {line}")),
            "{line}\n{}",
            run.stdout()
        );
    }
}

#[test]
fn without_run_results_the_digest_comes_from_dbts_error_block_in_the_step_log() {
    let log = String::from_utf8(real("logs/dbt-core-database-error-docs-faq.log")).unwrap();
    let emulator = emulator_with(
        quick(Outcome::Error)
            .artifacts(artifacts_with(None))
            .failed_step_log(&log),
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[1], "Log of step 4 \"Invoke dbt build\": Done. PASS=0 WARN=0 ERROR=1 SKIP=0 TOTAL=1",
        "{stderr}"
    );
    assert_eq!(
        lines[2],
        "- Database Error in model customers (models/customers.sql) | Syntax error: Expected \")\" but got identifier `your-info-12345` at [13:15]",
        "{stderr}"
    );
}

#[test]
fn a_step_log_cannot_forge_lines_of_the_message() {
    let hostile = "Database Error in model x (models/x.sql)\n  boom\u{7}\u{1b}[2K\r\n\
                   2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\n";
    let emulator = emulator_with(
        quick(Outcome::Error)
            .artifacts(artifacts_with(None))
            .failed_step_log(hostile),
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(1);
    let stderr = run.stderr();
    // Terminal escapes are dropped, other control characters shown, and a line of the log that
    // is no part of dbt's error block never reaches the message.
    assert!(
        stderr.contains("\n- Database Error in model x (models/x.sql) | boom\\u{7}\n"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
        "{stderr}"
    );
    assert!(!stderr.contains("INFO  Done"), "{stderr}");
}

#[test]
fn with_fail_on_run_error_false_the_digest_is_a_warning_and_the_job_succeeds() {
    let results = real("run_results/v4-postgres-errors-datavault.json");
    let emulator = emulator_with(quick(Outcome::Error).artifacts(artifacts_with(Some(results))));
    let mut extra = waiting();
    extra["fail_on_run_error"] = json!(false);
    let run = run_component(parameters(&emulator, extra));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(stdout.contains("(fail_on_run_error is false)"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("WARN  step 4 \"Invoke dbt build\": 2 of ")
                && l.ends_with(" nodes failed")),
        "{stdout}"
    );
}

#[test]
fn a_run_that_waited_longer_than_it_ran_gets_a_note() {
    let timeline = Timeline {
        queued: Duration::from_secs(3),
        starting: Duration::ZERO,
        running: Duration::from_secs(1),
    };
    let emulator = emulator_with(quick(Outcome::Success).timeline(timeline));
    let mut extra = waiting();
    extra["ignore_artifacts"] = json!(true);
    let run = run_component(parameters(&emulator, extra));
    run.assert_code(0);
    let done = run
        .stdout()
        .lines()
        .find(|l| l.contains("INFO  Done: run "))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        done.contains("(queued 3s, ran 1s: it waited longer than it ran; the account's run slots may be busy, or another run of the job was in progress)"),
        "{done}"
    );
}

#[test]
fn retry_failed_reruns_only_what_dbt_cloud_can_retry_and_says_why_not() {
    // The job's newest run failed, and dbt Cloud says it cannot be retried.
    let emulator = emulator_with(quick(Outcome::Error).retry_refused("RETRY_UNSUPPORTED_CMD"));
    let failed = run_component(parameters(&emulator, waiting()));
    failed.assert_code(1);
    let run = run_component(parameters(&emulator, json!({"retry_failed": true})));
    run.assert_code(0);
    assert!(
        run.stdout().contains(
            "but dbt Cloud cannot resume it from the point of failure: the job runs a command dbt cannot retry"
        ) && run.stdout().contains("(RETRY_UNSUPPORTED_CMD): triggering a fresh run instead"),
        "{}",
        run.stdout()
    );
    assert_eq!(count(&emulator, "POST", "/retry/"), 0);
    assert_eq!(count(&emulator, "POST", "/run/"), 2);
    // One that can be retried is resumed.
    let emulator = emulator_with(quick(Outcome::Error));
    run_component(parameters(&emulator, waiting())).assert_code(1);
    let run = run_component(parameters(&emulator, json!({"retry_failed": true})));
    run.assert_code(0);
    assert_eq!(count(&emulator, "POST", "/retry/"), 1, "{}", run.stdout());
}
