//! `wait_for_chained_jobs`: the runs dbt Cloud starts when ours ends (jobs set to "Run when
//! another job finishes"), followed to any depth within the one `max_wait_time`, each written to
//! the run tables with which run started which, and failing the job when they fail.

use std::time::Duration;

use crate::common::*;
use serde_json::json;

const PROJECT: u64 = 270542;
const CHILD: u64 = 567184;
const GRANDCHILD: u64 = 567185;

/// A job of the test account chained to `parent` on `statuses`, its runs lasting `total`.
fn chained(id: u64, name: &str, parent: u64, statuses: &[u64], total: Duration) -> Job {
    Job::new(ACCOUNT, id)
        .named(name, "Production")
        .timeline(Timeline::lasting(total))
        .chained_to(parent, PROJECT, statuses)
}

/// Our job, whose runs succeed, and `jobs` beside it.
fn ours_and(jobs: impl IntoIterator<Item = Job>) -> Emulator {
    let emulator = emulator_with(quick(Outcome::Success));
    for job in jobs {
        emulator.add_job(job);
    }
    emulator
}

fn chain_waiting(extra: serde_json::Value) -> serde_json::Value {
    let mut parameters = waiting(json!({"wait_for_chained_jobs": true}));
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    parameters
}

fn line_with<'a>(stdout: &'a str, needle: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}\n{stdout}"))
}

/// The runs of `job` the emulator holds, oldest first.
fn runs_of(emulator: &Emulator, job: u64) -> Vec<u64> {
    let mut runs = emulator.runs_of_job(job);
    runs.sort();
    runs
}

#[test]
fn a_chained_run_is_waited_for_and_written_beside_ours() {
    // Its artifacts saved a moment after it ends, as dbt Cloud's are.
    let marts = chained(
        CHILD,
        "Downstream marts",
        JOB,
        &[10],
        Duration::from_millis(1500),
    )
    .artifacts_delay(Duration::from_millis(800), Duration::ZERO);
    let emulator = ours_and([marts]);
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let ours = runs_of(&emulator, JOB)[0];
    let theirs = runs_of(&emulator, CHILD);
    assert_eq!(theirs.len(), 1, "{}", run.stdout());
    let child = theirs[0];
    let stdout = run.stdout();
    assert!(
        line_with(&stdout, "runs on its success").contains(&format!(
            "Run {ours} succeeded; job {CHILD} \"Downstream marts\" runs on its success: run {child}, "
        )),
        "{stdout}"
    );
    assert!(
        line_with(&stdout, "INFO  Done: ").ends_with("; 1 chained run: 1 succeeded"),
        "{stdout}"
    );
    // Ours and the chained run, final, with their steps; which started which.
    let runs = run.table_rows("dbt_cloud_run");
    let ids: Vec<(&str, &str)> = runs
        .iter()
        .map(|row| (row["id"].as_str(), row["status"].as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (ours.to_string().as_str(), "10"),
            (child.to_string().as_str(), "10")
        ]
    );
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert!(steps.iter().any(|row| row["run_id"] == child.to_string()));
    let chain = run.table_rows("dbt_cloud_run_chain");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0]["started_by_run_id"], ours.to_string());
    assert_eq!(chain[0]["job_id"], CHILD.to_string());
    assert_eq!(chain[0]["job_name"], "Downstream marts");
    assert_eq!(chain[0]["run_id"], child.to_string());
    assert_eq!(chain[0]["depth"], "1");
    assert_eq!(chain[0]["outcome"], "Success");
    assert_eq!(
        run.manifest("dbt_cloud_run_chain")["primary_key"],
        json!(["started_by_run_id", "job_id"])
    );
    // The chained run's results are read like ours.
    let results = run.table_rows("dbt_cloud_run_results");
    assert!(
        results.iter().any(|row| row["run_id"] == child.to_string()),
        "{stdout}"
    );
    // Artifacts stay ours: of the chained run, only its list and its steps' results are asked.
    let of_the_chained_run: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|request| request.path.contains(&format!("/runs/{child}/artifacts/")))
        .map(|request| request.path)
        .collect();
    assert!(!of_the_chained_run.is_empty());
    assert!(
        of_the_chained_run
            .iter()
            .all(|path| path.ends_with("/artifacts/")
                || path.ends_with("/run_results.json")
                || path.ends_with("/sources.json")),
        "{of_the_chained_run:?}"
    );
    let standard = dbt_cloud_emulator::standard_artifacts();
    let mut ours: Vec<String> = standard.iter().map(|a| a.path.clone()).collect();
    ours.sort();
    assert_eq!(files_under(&run.artifacts_dir()), ours);
}

#[test]
fn without_the_setting_the_chain_is_not_waited_for() {
    let emulator = ours_and([chained(
        CHILD,
        "Downstream marts",
        JOB,
        &[10],
        Duration::from_secs(30),
    )]);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_eq!(run.table_rows("dbt_cloud_run").len(), 1);
    assert!(!run
        .data()
        .join("out/tables/dbt_cloud_run_chain.csv")
        .exists());
    assert!(!run.stdout().contains("chained"), "{}", run.stdout());
}

#[test]
fn a_fan_out_is_followed_at_once_and_a_second_level_after_its_parent() {
    let long = Duration::from_secs(4);
    let emulator = ours_and([
        chained(CHILD, "Marts", JOB, &[10, 20], long),
        chained(CHILD + 10, "Exports", JOB, &[10], long),
        chained(
            GRANDCHILD,
            "Reports",
            CHILD,
            &[10],
            Duration::from_millis(800),
        ),
    ]);
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let (marts, exports, reports) = (
        runs_of(&emulator, CHILD)[0],
        runs_of(&emulator, CHILD + 10)[0],
        runs_of(&emulator, GRANDCHILD)[0],
    );
    // At once: each fan-out run is looked at again before the other has ended.
    let looks = |run: u64| -> Vec<usize> {
        emulator
            .requests()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method == "GET" && r.path.ends_with(&format!("/runs/{run}/")))
            .map(|(at, _)| at)
            .collect()
    };
    let (of_marts, of_exports) = (looks(marts), looks(exports));
    assert!(
        of_marts.first() < of_exports.last() && of_exports.first() < of_marts.last(),
        "the two runs' looks interleave: {of_marts:?} {of_exports:?}"
    );
    let chain = run.table_rows("dbt_cloud_run_chain");
    let rows: Vec<(String, String, String)> = chain
        .iter()
        .map(|row| {
            (
                row["job_id"].clone(),
                row["started_by_run_id"].clone(),
                row["depth"].clone(),
            )
        })
        .collect();
    let ours = runs_of(&emulator, JOB)[0].to_string();
    assert_eq!(
        rows,
        [
            (CHILD.to_string(), ours.clone(), "1".to_owned()),
            ((CHILD + 10).to_string(), ours, "1".to_owned()),
            (GRANDCHILD.to_string(), marts.to_string(), "2".to_owned()),
        ]
    );
    assert_eq!(run.table_rows("dbt_cloud_run").len(), 4);
    assert!(run.stdout().contains(&format!(
        "Run {marts} succeeded; job {GRANDCHILD} \"Reports\" runs on its success: run {reports}, "
    )));
    assert!(run.stdout().contains("3 chained runs: 3 succeeded"));
}

#[test]
fn a_chained_run_that_fails_fails_the_job_unless_fail_on_run_error_is_false() {
    for fail_on_run_error in [true, false] {
        let marts = chained(
            CHILD,
            "Downstream marts",
            JOB,
            &[10],
            Duration::from_millis(1200),
        );
        let emulator = ours_and([marts.outcome(Outcome::Error)]);
        let run = run_component(parameters(
            &emulator,
            chain_waiting(json!({"fail_on_run_error": fail_on_run_error})),
        ));
        let child = runs_of(&emulator, CHILD)[0];
        let said = format!(
            "Chained run {child} of job {CHILD} \"Downstream marts\" (started by run {}'s end) ended Error",
            runs_of(&emulator, JOB)[0]
        );
        if fail_on_run_error {
            run.assert_code(1);
            let stderr = run.stderr();
            assert!(stderr.contains(&said), "{stderr}");
            assert!(
                stderr.contains(&format!("/runs/{child}/")),
                "the link: {stderr}"
            );
            // The digest of its failed step.
            assert!(stderr.contains("Invoke dbt build"), "{stderr}");
        } else {
            run.assert_code(0);
            assert!(run.stdout().contains(&said), "{}", run.stdout());
            assert!(run.stdout().contains("(fail_on_run_error is false)"));
        }
        assert_eq!(run.table_rows("dbt_cloud_run_chain")[0]["outcome"], "Error");
    }
}

#[test]
fn jobs_that_will_not_run_now_are_not_waited_for() {
    let forever = Duration::from_secs(600);
    let emulator = ours_and([
        chained(CHILD, "On error only", JOB, &[20], forever),
        chained(CHILD + 1, "Deleted", JOB, &[10], forever).deleted(),
        chained(CHILD + 2, "Deactivated", JOB, &[10], forever).deactivated(),
    ]);
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains(&format!(
            "job {} \"Deactivated\" runs on its success, but dbt Cloud deactivated it: not waited for",
            CHILD + 2
        )),
        "{stdout}"
    );
    assert!(stdout.contains("No job is chained to run"), "{stdout}");
    assert!(!run
        .data()
        .join("out/tables/dbt_cloud_run_chain.csv")
        .exists());
}

#[test]
fn a_cycle_follows_each_job_once() {
    // Our job runs again when its chained job ends, which runs again when ours ends, ...
    let emulator = emulator_with(quick(Outcome::Success).chained_to(CHILD, PROJECT, &[10]));
    emulator.add_job(chained(
        CHILD,
        "Back",
        JOB,
        &[10],
        Duration::from_millis(800),
    ));
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let chain = run.table_rows("dbt_cloud_run_chain");
    assert_eq!(chain.len(), 1, "{}", run.stdout());
    assert!(
        run.stdout()
            .contains("and is already in the chain: followed once"),
        "{}",
        run.stdout()
    );
}

#[test]
fn our_run_cancelled_starts_no_chain_we_wait_for() {
    let emulator = emulator_with(quick(Outcome::Cancelled));
    emulator.add_job(chained(
        CHILD,
        "On anything",
        JOB,
        &[10, 20, 30],
        Duration::from_secs(600),
    ));
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(1);
    assert!(
        run.stdout()
            .contains("was cancelled: the jobs chained to it are not waited for"),
        "{}",
        run.stdout()
    );
    assert!(!run
        .data()
        .join("out/tables/dbt_cloud_run_chain.csv")
        .exists());
}

/// The chained job busy with a run of its own (scheduled, in progress when ours ends): its
/// chained run waits Queued, is waited for, and is the one our end started, not the other.
#[test]
fn a_busy_chained_job_keeps_its_run_queued_and_that_is_waited_for() {
    let emulator = ours_and([chained(
        CHILD,
        "Busy",
        JOB,
        &[10],
        Duration::from_millis(800),
    )]);
    let busy = emulator.add_scheduled_run(
        CHILD,
        Timeline::lasting(Duration::from_secs(4)),
        Outcome::Success,
    );
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let runs = runs_of(&emulator, CHILD);
    let chained_run = *runs.iter().find(|id| **id != busy).unwrap();
    assert!(
        run.stdout()
            .contains(&format!(": run {chained_run}, Queued")),
        "{}",
        run.stdout()
    );
    let chain = run.table_rows("dbt_cloud_run_chain");
    assert_eq!(chain[0]["outcome"], "Success");
    assert_eq!(chain[0]["run_id"], chained_run.to_string());
    let trigger = emulator.run_json(chained_run)["trigger"].clone();
    assert_eq!(trigger["cause_category"], "job completion");
}

#[test]
fn at_the_bound_the_unfinished_chain_fails_the_job_and_is_cancelled_only_when_asked() {
    for cancel_on_timeout in [false, true] {
        let emulator = ours_and([chained(
            CHILD,
            "Slow marts",
            JOB,
            &[10],
            Duration::from_secs(600),
        )]);
        let run = run_component(parameters(
            &emulator,
            chain_waiting(json!({"max_wait_time": 0.1, "cancel_on_timeout": cancel_on_timeout})),
        ));
        run.assert_code(1);
        let child = runs_of(&emulator, CHILD)[0];
        let stderr = run.stderr();
        assert!(
            stderr.contains(&format!(
                "did not finish within max_wait_time (0.1 minutes): run {child} of job {CHILD} \"Slow marts\" ("
            )),
            "{stderr}"
        );
        let cancels = emulator.requests_to("POST", &format!("/runs/{child}/cancel/"));
        if cancel_on_timeout {
            assert_eq!(cancels.len(), 1, "{stderr}");
            assert!(
                stderr.contains("Their runs in progress were cancelled"),
                "{stderr}"
            );
            assert_eq!(
                run.table_rows("dbt_cloud_run_chain")[0]["outcome"],
                "Cancelled"
            );
        } else {
            assert!(cancels.is_empty());
            assert!(stderr.contains("They go on in dbt Cloud"), "{stderr}");
        }
    }
}

#[test]
fn a_chained_run_that_never_appears_is_said_and_not_waited_for() {
    let emulator = emulator_with(quick(Outcome::Success));
    // dbt Cloud enqueues it far too late for the look (10 s in the tests' timing).
    emulator.chain_delay(Duration::from_secs(3600));
    emulator.add_job(chained(CHILD, "Late", JOB, &[10], Duration::from_secs(1)));
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains(&format!(
            "job {CHILD} \"Late\" runs on its success, but no run of it appeared within 10 s: it is not waited for"
        )),
        "{stdout}"
    );
    let chain = run.table_rows("dbt_cloud_run_chain");
    assert_eq!(chain[0]["run_id"], "");
    assert_eq!(chain[0]["outcome"], "never appeared");
    assert!(
        stdout.contains("1 chained run: 1 never appeared"),
        "{stdout}"
    );
}

#[test]
fn jobs_that_cannot_be_listed_fail_the_job_rather_than_pass_an_unknown_chain() {
    let emulator = ours_and([chained(
        CHILD,
        "Downstream marts",
        JOB,
        &[10],
        Duration::from_millis(800),
    )]);
    emulator.inject(
        dbt_cloud_emulator::Endpoint::ListJobs,
        std::iter::repeat_n(dbt_cloud_emulator::Fault::Status(500), 50),
    );
    let run = run_component(parameters(&emulator, chain_waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("the jobs chained to this one could not be listed (wait_for_chained_jobs)"),
        "{stderr}"
    );
    // Our run's tables are written all the same.
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
}
