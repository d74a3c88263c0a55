//! Jobs by name, runs we did not start, and a queue that cannot hold a job hostage.

use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::Timeline;
use serde_json::json;

/// The test job is named "Nightly build" in Production; a second job has the same name in Staging.
fn two_nightly_builds() -> Emulator {
    let emulator = emulator_with(quick(Outcome::Success).named("Nightly build", "Production"));
    emulator.add_job(
        Job::new(ACCOUNT, 777)
            .named("Nightly build", "Staging")
            .environment_type("staging")
            .project(99),
    );
    emulator
}

fn by_name(emulator: &Emulator, extra: serde_json::Value) -> serde_json::Value {
    let mut parameters = parameters(emulator, extra);
    parameters.as_object_mut().unwrap().remove("job_id");
    parameters
}

#[test]
fn a_job_is_found_by_its_exact_name_narrowed_by_environment_or_project() {
    let emulator = two_nightly_builds();
    for narrowing in [
        json!({"environment_name": "Production"}),
        json!({"environment_type": "production"}),
        json!({"project_id": 270542}),
    ] {
        let mut extra = narrowing.clone();
        extra["job_name"] = json!("Nightly build");
        let run = run_component(by_name(&emulator, extra));
        run.assert_code(0);
        assert!(
            run.stdout().contains(&format!(
                "The job named \"Nightly build\" is job {JOB} (environment Production, project 270542)"
            )),
            "{narrowing}: {}",
            run.stdout()
        );
        assert_eq!(
            run.table("dbt_cloud_trigger").1["job_definition_id"],
            JOB.to_string()
        );
    }
    assert_eq!(count(&emulator, "POST", &format!("/jobs/{JOB}/run/")), 3);
    assert_eq!(count(&emulator, "POST", "/jobs/777/run/"), 0);
}

#[test]
fn an_ambiguous_or_missing_name_triggers_nothing_and_says_what_the_account_has() {
    let emulator = two_nightly_builds();
    let run = run_component(by_name(&emulator, json!({"job_name": "Nightly build"})));
    run.assert_code(1);
    assert!(
        run.stderr()
            .starts_with("2 jobs are named \"Nightly build\": ")
            && run
                .stderr()
                .contains(&format!("{JOB} (environment Production, project 270542)"))
            && run
                .stderr()
                .contains("777 (environment Staging, project 99)"),
        "{}",
        run.stderr()
    );
    let run = run_component(by_name(&emulator, json!({"job_name": "Nightly buld"})));
    run.assert_code(1);
    assert!(
        run.stderr().starts_with(
            "No job of the account is named \"Nightly buld\" (names must match exactly): the closest names are \"Nightly build\""
        ),
        "{}",
        run.stderr()
    );
    let run = run_component(by_name(
        &emulator,
        json!({"job_name": "Nightly build", "environment_type": "development"}),
    ));
    run.assert_code(1);
    // Only the narrowing differs: the jobs of that name are listed, not offered as "closest".
    assert!(
        run.stderr().starts_with(&format!(
            "No job named \"Nightly build\" is in environment type development; jobs of that \
             name are 777 (environment Staging, project 99), {JOB} (environment Production, \
             project 270542)."
        )),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("closest"), "{}", run.stderr());
    // Spaces around a name are not part of it.
    let run = run_component(by_name(
        &emulator,
        json!({"job_name": "  Nightly build ", "environment_name": "Production"}),
    ));
    run.assert_code(0);
    assert_eq!(
        run.table("dbt_cloud_trigger").1["job_definition_id"],
        JOB.to_string()
    );
    assert_eq!(
        count(&emulator, "POST", "/run/"),
        1,
        "nothing was triggered but for the one name that matched"
    );
}

#[test]
fn if_running_skip_and_fail_trigger_nothing_and_name_the_run_in_progress() {
    let emulator = emulator_with(quick(Outcome::Success));
    let in_progress = emulator.next_run_id();
    emulator.add_run_by_another_client(JOB, "scheduled", Duration::from_secs(30));
    let run = run_component(parameters(&emulator, json!({"if_running": "skip"})));
    run.assert_code(0);
    assert!(
        run.stdout().contains(&format!(
            "Run {in_progress} of the job is already Queued: nothing was triggered (if_running: skip)"
        )),
        "{}",
        run.stdout()
    );
    assert!(
        !run.data().join("out/tables/dbt_cloud_trigger.csv").exists(),
        "the trigger table records nothing new"
    );
    let run = run_component(parameters(&emulator, json!({"if_running": "fail"})));
    run.assert_code(1);
    assert!(
        run.stderr().starts_with(&format!(
            "Run {in_progress} of job {JOB} is already Queued: "
        )) && run.stderr().contains(&format!("/runs/{in_progress}/"))
            && run
                .stderr()
                .contains("Nothing was triggered (if_running: fail)"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "POST", "/run/"), 0);
    // Nothing in progress: both trigger as usual.
    for policy in ["skip", "fail"] {
        let idle = emulator_with(quick(Outcome::Success));
        run_component(parameters(&idle, json!({"if_running": policy}))).assert_code(0);
        assert_eq!(count(&idle, "POST", "/run/"), 1, "{policy}");
    }
}

#[test]
fn run_id_latest_follows_the_schedules_run_to_its_end_without_triggering() {
    let emulator = emulator_with(quick(Outcome::Success));
    let scheduled = emulator.add_scheduled_run(
        JOB,
        Timeline::lasting(Duration::from_millis(1500)),
        Outcome::Success,
    );
    let run = run_component(parameters(
        &emulator,
        json!({"run_id": "latest", "wait_for_result": true}),
    ));
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains(&format!("INFO  Following run {scheduled}: ")),
        "{}",
        run.stdout()
    );
    assert_eq!(
        run.table("dbt_cloud_trigger").1["id"],
        scheduled.to_string()
    );
    assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
    assert!(run.artifacts_dir().join("manifest.json").exists());
    assert_eq!(
        count(&emulator, "POST", "/run/"),
        0,
        "nothing was triggered"
    );
    // Finished already, with no run in progress: `latest` is that run, and so is its id.
    for run_id in [json!("latest"), json!(scheduled.to_string())] {
        let run = run_component(parameters(
            &emulator,
            json!({"run_id": run_id, "wait_for_result": true, "ignore_artifacts": true}),
        ));
        run.assert_code(0);
        assert_eq!(run.table("dbt_cloud_run").1["id"], scheduled.to_string());
        assert_eq!(run.table("dbt_cloud_run").1["status_humanized"], "Success");
    }
    assert_eq!(count(&emulator, "POST", "/run/"), 0);
}

#[test]
fn a_followed_run_of_another_job_or_none_at_all_is_an_error() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.add_job(Job::new(ACCOUNT, 777));
    let other = emulator.add_scheduled_run(
        777,
        Timeline::lasting(Duration::from_millis(300)),
        Outcome::Success,
    );
    let run = run_component(parameters(&emulator, json!({"run_id": other})));
    run.assert_code(1);
    assert!(
        run.stderr().starts_with(&format!(
            "Run {other} is a run of job 777, not of job {JOB}"
        )),
        "{}",
        run.stderr()
    );
    let run = run_component(parameters(&emulator, json!({"run_id": "latest"})));
    run.assert_code(1);
    assert!(
        run.stderr().starts_with(&format!(
            "Job {JOB} has no runs to follow (run_id: latest)."
        )),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_followed_run_is_not_cancelled_when_the_wait_ends_unless_the_config_says_so() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.add_run_by_another_client(JOB, "scheduled", Duration::from_secs(5));
    let run = run_component(parameters(
        &emulator,
        json!({"run_id": "latest", "wait_for_result": true, "max_wait_time": 0.02}),
    ));
    run.assert_code(1);
    assert!(
        run.stderr().contains("It goes on in dbt Cloud"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "POST", "/cancel/"), 0);
}

#[test]
fn max_queue_time_ends_a_wait_on_a_run_that_never_leaves_the_queue() {
    let stuck = Timeline {
        queued: Duration::from_secs(600),
        starting: Duration::ZERO,
        running: Duration::from_secs(1),
    };
    let emulator = emulator_with(quick(Outcome::Success).timeline(stuck));
    let started = std::time::Instant::now();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_queue_time": 0.03, "cancel_on_timeout": true}),
    ));
    run.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        run.stderr().contains(
            "did not leave the queue within max_queue_time (0.03 minutes): it was queued for "
        ) && run.stderr().contains("It was cancelled"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(
        run.table("dbt_cloud_run").1["status_humanized"],
        "Cancelled"
    );
}
