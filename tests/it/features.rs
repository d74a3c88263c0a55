//! The options that make this trigger more than a trigger: overrides, run policies, rerun from
//! failure, results as tables, artifact selection and the zip, each against the emulator.

use std::io::Read;
use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::standard_artifacts;
use serde_json::{json, Value};

fn posts(emulator: &Emulator) -> Vec<String> {
    emulator
        .requests_to("POST", "")
        .into_iter()
        .map(|r| r.path)
        .collect()
}

/// Starts a run the way another client would.
fn trigger_elsewhere(emulator: &Emulator, cause: &str) -> u64 {
    let response = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/",
            emulator.base_url()
        ))
        .header("Authorization", format!("Token {TOKEN}"))
        .body(json!({ "cause": cause }).to_string())
        .send()
        .unwrap();
    let body: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
    body["data"]["id"].as_u64().unwrap()
}

#[test]
fn trigger_overrides_go_into_the_trigger_body() {
    let emulator = emulator_with(quick(Outcome::Success));
    let overrides = json!({
        "git_branch": "feature/orders", "threads_override": 8, "steps_override": ["dbt build -s orders+"],
        "generate_docs_override": false, "github_pull_request_id": 42
    });
    let run = run_component(parameters(
        &emulator,
        json!({"trigger_overrides": overrides.clone(), "cause": "PR 42"}),
    ));
    run.assert_code(0);
    let post = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let mut expected = overrides;
    expected["cause"] = json!("PR 42");
    assert_eq!(post.body_json().unwrap(), expected);
    let trigger: Value =
        serde_json::from_str(&run.table("dbt_cloud_trigger").1["trigger"]).unwrap();
    assert_eq!(trigger["git_branch"], "feature/orders");
    assert!(
        run.stdout().contains("Trigger overrides: "),
        "{}",
        run.stdout()
    );

    let run = run_component(parameters(
        &emulator,
        json!({"trigger_overrides": {"branch": "x"}}),
    ));
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("unknown key \"branch\"; the valid keys are git_sha, git_branch"),
        "{}",
        run.stderr()
    );
}

#[test]
fn if_running_wait_adopts_the_run_in_progress() {
    let emulator = emulator_with(job(Duration::from_secs(3), Outcome::Success));
    let running = trigger_elsewhere(&emulator, "scheduled elsewhere");
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "if_running": "wait"}),
    ));
    run.assert_code(0);
    assert_eq!(
        posts(&emulator),
        [format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/")],
        "only the other client triggered"
    );
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], running.to_string());
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
    assert!(
        run.stdout()
            .contains(&format!("Run {running} of job {JOB} is already")),
        "{}",
        run.stdout()
    );

    // With nothing in progress, it triggers.
    let run = run_component(parameters(&emulator, json!({"if_running": "wait"})));
    run.assert_code(0);
    assert_eq!(emulator.runs_created(), 2);
}

#[test]
fn if_running_replace_cancels_the_runs_in_progress_then_triggers() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    let first = trigger_elsewhere(&emulator, "one");
    let second = trigger_elsewhere(&emulator, "two");
    let run = run_component(parameters(&emulator, json!({"if_running": "replace"})));
    run.assert_code(0);
    let posts = posts(&emulator);
    assert_eq!(
        posts[2..],
        [
            format!("/api/v2/accounts/{ACCOUNT}/runs/{second}/cancel/"),
            format!("/api/v2/accounts/{ACCOUNT}/runs/{first}/cancel/"),
            format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/"),
        ]
    );
    assert_eq!(emulator.runs_created(), 3);
}

#[test]
fn retry_failed_reruns_from_the_point_of_failure_only_after_an_error() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.add_past_run(
        JOB,
        Timeline::lasting(Duration::from_secs(30)),
        Outcome::Error,
        Duration::from_secs(600),
    );
    let failed = emulator.next_run_id() - 1;
    let run = run_component(parameters(
        &emulator,
        json!({"retry_failed": true, "wait_for_result": true}),
    ));
    run.assert_code(0);
    assert_eq!(
        posts(&emulator),
        [format!("/api/v2/accounts/{ACCOUNT}/runs/{failed}/retry/")]
    );
    assert!(
        run.stdout()
            .contains(&format!("The job's newest run {failed} ended in Error "))
            && run
                .stdout()
                .contains("resuming it from the point of failure")
    );
    let trigger: Value =
        serde_json::from_str(&run.table("dbt_cloud_trigger").1["trigger"]).unwrap();
    assert_eq!(trigger["cause_category"], "rerun");

    // The newest run now succeeded: a fresh trigger.
    let run = run_component(parameters(&emulator, json!({"retry_failed": true})));
    run.assert_code(0);
    assert_eq!(
        posts(&emulator).last().unwrap(),
        &format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/")
    );
}

#[test]
fn fail_on_run_error_false_makes_a_failed_run_a_warning() {
    for outcome in [Outcome::Error, Outcome::Cancelled] {
        let emulator = emulator_with(quick(outcome));
        let run = run_component(parameters(
            &emulator,
            json!({"wait_for_result": true, "fail_on_run_error": false}),
        ));
        run.assert_code(0);
        let stdout = run.stdout();
        assert!(
            stdout.contains(" WARN ") && stdout.contains("(fail_on_run_error is false)"),
            "{stdout}"
        );
        assert!(run.stderr().is_empty());
        assert_artifacts(&run, &standard_artifacts());
    }
}

#[test]
fn run_steps_are_a_table() {
    let emulator = emulator_with(quick(Outcome::Error));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let steps = run.table_rows("dbt_cloud_run_steps");
    let summary: Vec<(String, String, String, String)> = steps
        .iter()
        .map(|s| {
            (
                s["run_id"].clone(),
                s["index"].clone(),
                s["status"].clone(),
                s["status_humanized"].clone(),
            )
        })
        .collect();
    let id = run_id.to_string();
    assert_eq!(
        summary,
        [
            (id.clone(), "1".into(), "10".into(), "Success".into()),
            (id.clone(), "2".into(), "10".into(), "Success".into()),
            (id.clone(), "3".into(), "10".into(), "Success".into()),
            (id, "4".into(), "20".into(), "Error".into()),
        ]
    );
    assert_eq!(steps[3]["name"], "Invoke dbt build");
    assert_eq!(steps[3]["logs"], "Invoke dbt build\n");
    let manifest = run.manifest("dbt_cloud_run_steps");
    assert_eq!(manifest["primary_key"], json!(["run_id", "index"]));
    assert_eq!(manifest["write_always"], true);
}

fn with_run_results(content: &[u8]) -> Vec<Artifact> {
    vec![
        Artifact::new("manifest.json", b"{}".to_vec()),
        Artifact::new("run_results.json", content.to_vec()),
    ]
}

#[test]
fn run_results_are_a_table_one_row_per_node() {
    let v5 = include_bytes!("../data/run_results/v5-failures.json");
    let emulator = emulator_with(quick(Outcome::Error).artifacts(with_run_results(v5)));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let rows = run.table_rows("dbt_cloud_run_results");
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str()).collect();
    assert_eq!(
        statuses,
        [
            "success",
            "error",
            "fail",
            "skipped",
            "runtime error",
            "success"
        ]
    );
    assert!(rows.iter().all(|r| r["run_id"] == run_id.to_string()));
    let orders = &rows[0];
    assert_eq!(orders["unique_id"], "model.jaffle_shop.orders");
    assert_eq!(orders["resource_type"], "model");
    assert_eq!(orders["rows_affected"], "12");
    assert_eq!(orders["execution_time"], "1.25");
    assert_eq!(orders["thread_id"], "Thread-2");
    assert_eq!(orders["compile_started_at"], "2024-07-03T13:59:01.100000Z");
    assert_eq!(
        orders["execute_completed_at"],
        "2024-07-03T13:59:02.550000Z"
    );
    let adapter: Value = serde_json::from_str(&orders["adapter_response"]).unwrap();
    assert_eq!(adapter["code"], "SUCCESS");
    assert!(
        rows[1]["message"].contains("column \"first_name\" does not exist"),
        "{:?}",
        rows[1]
    );
    assert_eq!(rows[2]["failures"], "3");
    assert_eq!(rows[2]["resource_type"], "test");
    assert_eq!(rows[3]["execute_started_at"], "");
    assert!(rows
        .iter()
        .all(|r| r["step_index"] == "4" && r["step_name"] == "Invoke dbt build"));
    let manifest = run.manifest("dbt_cloud_run_results");
    assert_eq!(
        manifest["primary_key"],
        json!(["run_id", "step_index", "unique_id"])
    );

    // The real v4 file of a dbt 1.4 project, with the project's native types.
    let v4 = include_bytes!("../data/run_results/v4-billiam-database.json");
    let emulator = emulator_with(quick(Outcome::Success).artifacts(with_run_results(v4)));
    let config = json!({"parameters": parameters(&emulator, json!({"wait_for_result": true}))});
    let run = run_component_with(
        Some(config.to_string()),
        &[("KBC_DATA_TYPE_SUPPORT", "authoritative")],
    );
    run.assert_code(0);
    assert_eq!(run.table_rows("dbt_cloud_run_results").len(), 37);
    let schema = run.manifest("dbt_cloud_run_results")["schema"].clone();
    let keys: Vec<&str> = schema
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["primary_key"] == true)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    // In the schema's column order: step_index came after the earlier columns.
    assert_eq!(keys, ["run_id", "unique_id", "step_index"]);
}

#[test]
fn a_run_without_run_results_gets_a_note_not_a_table() {
    let emulator = emulator_with(
        quick(Outcome::Success).artifacts(vec![Artifact::new("manifest.json", b"{}".to_vec())]),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains("has no run_results.json: no table dbt_cloud_run_results"),
        "{}",
        run.stdout()
    );
    assert!(!run
        .data()
        .join("out/tables/dbt_cloud_run_results.csv")
        .exists());
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("run_results.json"))
            .count(),
        0
    );
}

#[test]
fn artifacts_include_downloads_only_what_matches_and_reports_idle_patterns() {
    let emulator = emulator_with(quick(Outcome::Success));
    let patterns = json!(["*.json", "run/**/*.sql", "docs/**"]);
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "artifacts_include": patterns}),
    ));
    run.assert_code(0);
    assert_eq!(
        files_under(&run.artifacts_dir()),
        [
            "catalog.json",
            "manifest.json",
            "run/jaffle_shop/models/marts/orders.sql",
            "run_results.json"
        ]
    );
    let stdout = run.stdout();
    assert!(
        stdout.contains("artifacts_include pattern \"docs/**\" matched no artifact"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(3 left out by artifacts_include)"),
        "{stdout}"
    );
    let downloads = emulator
        .requests()
        .iter()
        .filter(|r| r.path.contains("/artifacts/") && !r.path.ends_with('/'))
        .count();
    assert_eq!(downloads, 4, "the left-out files were never requested");
}

#[test]
fn artifacts_zip_holds_exactly_the_artifacts_byte_for_byte() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "artifacts_zip": true}),
    ));
    run.assert_code(0);
    let zip_path = run
        .data()
        .join(format!("out/files/dbt_artifacts_{run_id}.zip"));
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&zip_path).unwrap()).unwrap();
    let mut names: Vec<String> = archive.file_names().map(str::to_owned).collect();
    names.sort();
    let mut expected: Vec<String> = standard_artifacts()
        .iter()
        .map(|a| a.path.clone())
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    for artifact in standard_artifacts() {
        let mut entry = archive.by_name(&artifact.path).unwrap();
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert!(
            bytes == artifact.bytes(),
            "{} differs in the zip",
            artifact.path
        );
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(zip_path.with_extension("zip.manifest")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["tags"],
        json!(["dbt-cloud", format!("run-{run_id}"), format!("job-{JOB}")])
    );
    assert!(run.stdout().contains(&format!(
        "Packed 7 artifacts into out/files/dbt_artifacts_{run_id}.zip"
    )));
}

#[test]
fn an_adopted_run_is_polled_from_its_creation_not_from_its_adoption() {
    let emulator = emulator_with(job(Duration::from_secs(5), Outcome::Success));
    for ago in [300, 200, 100] {
        emulator.add_past_run(
            JOB,
            Timeline::lasting(Duration::from_secs(5)),
            Outcome::Success,
            Duration::from_secs(ago),
        );
    }
    let running = trigger_elsewhere(&emulator, "scheduled elsewhere");
    std::thread::sleep(Duration::from_secs(2));
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "if_running": "wait", "ignore_artifacts": true}),
    ));
    let exited = std::time::Instant::now();
    run.assert_code(0);
    // Expected to end 5 s after its creation: the first look comes at 4.5 s, 2.5 s after
    // adoption (not 4.5 s after it), the next at 5.5 s.
    let lag = exited - emulator.run_finishes_at(running).unwrap();
    assert!(
        lag < Duration::from_millis(1200),
        "exited {lag:?} after the run finished"
    );
}
