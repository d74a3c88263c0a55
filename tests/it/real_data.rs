//! Real data and real quirks, replayed through the emulator: every number in the tables is
//! exactly the number in the artifact, and answers shaped as dbt Cloud really shapes them are read.

use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};
use serde_json::json;

/// Every cell of `dbt_cloud_run_results` against the node it came from, numbers compared as the
/// exact doubles their text names.
fn assert_results_table_is(artifact: &str) {
    let bytes = std::fs::read(format!(
        "{}/tests/data/{artifact}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let source: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let nodes = source["results"].as_array().unwrap();
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success)
            .artifacts(vec![Artifact::new("run_results.json", bytes.clone())]),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows.len(), nodes.len(), "{artifact}");
    let text = |value: &serde_json::Value| expected_cell(Some(value));
    for (row, node) in rows.iter().zip(nodes) {
        let unique_id = node["unique_id"].as_str().unwrap();
        let at = format!("{artifact}: {unique_id}");
        assert_eq!(row["run_id"], "70403103000", "{at}");
        assert_eq!(
            (row["step_index"].as_str(), row["step_name"].as_str()),
            ("4", "Invoke dbt build"),
            "{at}"
        );
        assert_eq!(row["unique_id"], unique_id, "{at}");
        assert_eq!(
            row["resource_type"],
            unique_id.split('.').next().unwrap(),
            "{at}"
        );
        assert_eq!(row["status"], text(&node["status"]), "{at}");
        let written: f64 = row["execution_time"].parse().unwrap();
        let exact = node["execution_time"].as_f64().unwrap();
        assert_eq!(
            written.to_bits(),
            exact.to_bits(),
            "{at}: {written} for {exact}"
        );
        assert_eq!(row["failures"], text(&node["failures"]), "{at}");
        assert_eq!(row["message"], text(&node["message"]), "{at}");
        assert_eq!(row["thread_id"], text(&node["thread_id"]), "{at}");
        assert_eq!(
            row["rows_affected"],
            text(&node["adapter_response"]["rows_affected"]),
            "{at}"
        );
        for phase in node["timing"].as_array().unwrap() {
            let name = phase["name"].as_str().unwrap();
            assert_eq!(
                row[&format!("{name}_started_at")],
                text(&phase["started_at"]),
                "{at}"
            );
            assert_eq!(
                row[&format!("{name}_completed_at")],
                text(&phase["completed_at"]),
                "{at}"
            );
        }
        let adapter_response: serde_json::Value =
            serde_json::from_str(&row["adapter_response"]).unwrap();
        assert_eq!(adapter_response, node["adapter_response"], "{at}");
    }
}

#[test]
fn real_run_results_land_in_the_table_cell_for_cell() {
    // Schemas v1 to v6, dbt 0.19 to dbt 1.11 and dbt Fusion 2.0; Snowflake, Postgres, DuckDB,
    // BigQuery and SQL Server; successes, errors without timings, a `rows_affected` of -1, no
    // nodes at all, warned tests, `no-op`, and the compile-only results of `dbt docs generate`. (5 of the v4 file's 37 execution times came out one ulp off before
    // float_roundtrip.)
    for artifact in [
        "real/run_results/v1-snowflake-dbt-learn.json",
        "real/run_results/v2-jaffle-shop-dbt-0.20.json",
        "real/run_results/v3-dbt-0.21-tutorial.json",
        "run_results/v4-billiam-database.json",
        "real/run_results/v4-postgres-errors-datavault.json",
        "real/run_results/v5-empty-3fid-hackathon.json",
        "real/run_results/v6-duckdb-adamatito.json",
        "real/run_results/v6-bigquery-sales-analytics.json",
        "real/run_results/v6-sqlserver-jaffle.json",
        "real/run_results/v6-fusion-2.0-preview-databricks-project.json",
        "real/run_results/v6-1.10.13-build-warn-noop-scooters.json",
        "real/run_results/v6-1.10.3-docs-generate-shopverse.json",
        "real/run_results/v6-1.11.6-run-error-swans.json",
        "real/run_results/v5-1.7.2-build-fail-warn-skipped-customer-case.json",
        "real/run_results/v6-1.11.5-test-errors-spotify.json",
    ] {
        assert_results_table_is(artifact);
    }
}

// ---- Decoding that bends where dbt Cloud does

fn patch(fields: serde_json::Value) -> Fault {
    Fault::Patch(fields.as_object().unwrap().clone())
}

#[test]
fn ids_as_strings_and_a_missing_or_unknown_status_are_survived() {
    let emulator = emulator_with(job(Duration::from_millis(2500), Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        [
            patch(json!({"id": "70403103000", "status": null})),
            patch(json!({"status": 99})),
            patch(json!({"status": "3"})),
        ],
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "poll_interval": 1}),
    ));
    run.assert_code(0);
    let stdout = run.stdout();
    for warned in [
        "WARN  dbt Cloud sent no status for the run; it is taken as still in progress",
        "dbt Cloud answered with status 99 (step 4 \"Invoke dbt build\"); taking the run as still in progress",
    ] {
        assert!(stdout.contains(warned), "{stdout}");
    }
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
}

#[test]
fn a_run_cancelled_before_it_started_is_not_asked_for_artifacts() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    let never_started = patch(json!({
        "status": 30, "status_humanized": "Cancelled", "started_at": null, "has_started": false,
        "artifacts_saved": false, "in_progress": false, "is_complete": true, "is_cancelled": true,
    }));
    emulator.inject(Endpoint::GetRun, std::iter::repeat_n(never_started, 20));
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("dbt Cloud run 70403103000 was cancelled before it started"),
        "{stderr}"
    );
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.path.contains("/artifacts/"))
            .count(),
        0
    );
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
}

#[test]
fn a_404_on_the_artifact_list_of_a_failed_run_means_no_artifacts() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Error));
    emulator.inject(
        Endpoint::ListArtifacts,
        std::iter::repeat_n(Fault::Status(404), 5),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("dbt Cloud run 70403103000 ended in Error"),
        "{stderr}"
    );
    assert!(stderr.contains("0 artifacts"), "{stderr}");
    assert!(!stderr.contains("Check account_id"), "{stderr}");
    assert!(!stderr.contains(".."), "{stderr}");
}

#[test]
fn the_run_table_comes_from_get_run_even_when_the_trigger_answer_is_final() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(Endpoint::Trigger, [patch(json!({"status": 10}))]);
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let row = run.table("dbt_cloud_run").1;
    assert!(
        row["trigger"].starts_with('{') && row["job"].starts_with('{'),
        "{row:?}"
    );
    assert_eq!(run.table_rows("dbt_cloud_run_steps").len(), 4);
}

// ---- Text from the server is data; our own messages hold no secrets and no floods

#[test]
fn server_text_cannot_forge_a_log_line_or_break_the_error() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Error));
    let forged = "Failed.\n2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\u{1b}[2K";
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(patch(json!({"status_message": forged})), 30),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stdout = run.stdout();
    assert!(
        stdout
            .lines()
            .all(|line| !line.starts_with("2026-11-26T11:02:32Z")),
        "{stdout}"
    );
    // One paragraph for the message; the lines after it are the digest's, each its own.
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    assert!(
        lines[0].contains("Failed.\\n2026-11-26T11:02:32Z"),
        "{stderr}"
    );
    assert_eq!(
        lines.len(),
        2,
        "one paragraph, then the queue line: {stderr}"
    );
    assert!(lines[1].starts_with("queued "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    assert!(
        stderr.contains("Failed.\\n2026-11-26T11:02:32Z"),
        "{stderr}"
    );
}

#[test]
fn a_url_holding_a_token_is_refused_without_echoing_it() {
    for url in [
        "https://user:dbtc_SECRET123@ab123.us1.dbt.com",
        "https://ab123.us1.dbt.com/?token=dbtc_SECRET123",
        "https://ab123.us1.dbt.com/dbtc_SECRET123",
    ] {
        let run = run_component(json!({
            "account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN, "dbt_cloud_url": url,
        }));
        run.assert_code(1);
        let stderr = run.stderr();
        assert!(!stderr.contains("SECRET123"), "{url}: {stderr}");
        assert!(
            stderr.starts_with("dbt_cloud_url (https://ab123.us1.dbt.com) is not usable"),
            "{stderr}"
        );
    }
}

#[test]
fn a_huge_wrong_value_is_echoed_cut() {
    let huge: Vec<u32> = (0..200_000).collect();
    let run = run_component(json!({
        "account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN, "max_wait_time": huge,
    }));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(stderr.len() < 1_000, "{} bytes", stderr.len());
    assert!(stderr.contains("characters in all)"), "{stderr}");
}

// ---- Exit 2 is for our bugs alone

#[test]
fn json_that_is_not_dbt_clouds_answer_is_exit_1_naming_the_url() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(Endpoint::ListRuns, [Fault::Json(200, json!([1, 2, 3]))]);
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "{} answered /api/v2/accounts/{ACCOUNT}/runs/ with something that is not dbt Cloud's API answer (it starts \"[1,2,3]\")",
            emulator.base_url()
        )),
        "{stderr}"
    );
    assert_eq!(emulator.runs_created(), 0);
}

#[test]
fn an_unexpected_conflict_or_redirect_is_exit_1() {
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(Endpoint::Trigger, [Fault::Status(409)]);
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    assert!(
        run.stderr().contains("unexpectedly with HTTP 409"),
        "{}",
        run.stderr()
    );

    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        [Fault::Redirect("https://login.example.com/sso".into())],
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("unexpectedly with HTTP 302, redirecting to login.example.com"),
        "{stderr}"
    );
}

#[test]
fn a_path_listed_twice_is_downloaded_and_zipped_once() {
    let manifest = Artifact::new("manifest.json", b"{}".to_vec());
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success)
            .artifacts(vec![manifest.clone(), manifest.clone()]),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "artifacts_zip": true}),
    ));
    run.assert_code(0);
    assert_eq!(count(&emulator, "GET", "/artifacts/manifest.json"), 1);
    assert!(
        run.stdout().contains("more than once; downloading it once"),
        "{}",
        run.stdout()
    );
    let zip =
        std::fs::File::open(run.data().join("out/files/dbt_artifacts_70403103000.zip")).unwrap();
    assert_eq!(zip::ZipArchive::new(zip).unwrap().len(), 1);
}

// ---- Memory bounded by us, not by the server

#[test]
fn a_huge_field_nothing_reads_is_skipped_and_an_answer_past_the_ceiling_refused() {
    // The fast timing's ceiling on an answer is 8 MB.
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Padded { bytes: 6_000_000 }, 3),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let row = run.table("dbt_cloud_run").1;
    assert_eq!(row["status"], "10");
    assert!(!row.values().any(|cell| cell.contains("0,0,0")), "{row:?}");

    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    // More than one: on a busy machine an attempt may break off before the ceiling, and be
    // retried.
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Padded { bytes: 20_000_000 }, 3),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "dbt Cloud's answer to GET /api/v2/accounts/{ACCOUNT}/runs/70403103000/ is larger than 8.0 MB"
        )),
        "{stderr}"
    );
    assert_eq!(
        run.table("dbt_cloud_run").1["status"],
        "1",
        "the last state seen"
    );
}

// ---- Real dbt Cloud answers (tests/data/real/SOURCES.md), replayed

fn real(name: &str) -> serde_json::Value {
    let path = format!("{}/tests/data/real/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// A cell as the tables write a value: null or absent empty, strings as they are, the rest as JSON.
fn expected_cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// An emulator serving the account and job that `run`, a real answer's run, belongs to, and the
/// parameters that reach it: the component checks that a run is the one it asked for, in the
/// account it asked for.
fn replaying(run: &serde_json::Value) -> (Emulator, serde_json::Value) {
    let account = run["account_id"].as_u64().unwrap();
    let job_id = run["job_definition_id"].as_u64().unwrap();
    let emulator = Emulator::start();
    emulator.add_account(Account::new(account), &[TOKEN]);
    emulator.add_job(
        Job::new(account, job_id).timeline(Timeline::lasting(Duration::from_millis(1200))),
    );
    let parameters = json!({
        "account_id": account, "job_id": job_id, "#api_key": TOKEN,
        "dbt_cloud_url": emulator.base_url(),
    });
    (emulator, parameters)
}

/// `answer` as the answer about run `id`: a real answer's run replayed as the run asked for.
fn as_run(mut answer: serde_json::Value, id: &serde_json::Value) -> serde_json::Value {
    answer["data"]["id"] = id.clone();
    answer
}

fn with(mut parameters: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    parameters
}

fn assert_row_is(run: &Run, table: &str, source: &serde_json::Value) {
    let (header, row) = run.table(table);
    for column in header {
        assert_eq!(
            row[&column],
            expected_cell(source.get(&column)),
            "{table}.{column}"
        );
    }
}

#[test]
fn real_trigger_and_get_run_answers_land_in_the_tables_cell_for_cell() {
    let trigger = real("dbt-cloud-cli/job_run_response.json");
    // Another run of the same job in the recording: replayed as the run triggered.
    let get_run = as_run(
        real("dbt-cloud-cli/run_get_response.json"),
        &trigger["data"]["id"],
    );
    let listed = real("dbt-cloud-cli/run_list_artifacts_response.json");
    let (emulator, parameters) = replaying(&trigger["data"]);
    emulator.inject(Endpoint::Trigger, [Fault::Json(200, trigger.clone())]);
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Json(200, get_run.clone()), 5),
    );
    emulator.inject(
        Endpoint::ListArtifacts,
        std::iter::repeat_n(Fault::Json(200, listed), 5),
    );
    let run = run_component(with(
        parameters,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert_row_is(&run, "dbt_cloud_trigger", &trigger["data"]);
    assert_row_is(&run, "dbt_cloud_run", &get_run["data"]);
    assert_eq!(
        run.table_rows("dbt_cloud_run_steps").len(),
        0,
        "run_steps is []"
    );
    assert!(
        emulator.requests().iter().any(|r| r
            .path
            .ends_with("/runs/34929305/artifacts/run_results.json")),
        "the listed run_results.json was asked for"
    );
}

#[test]
fn a_real_run_cancelled_before_it_started() {
    let cancelled = real("dbt-cloud-cli/run_cancel_response.json");
    let (emulator, parameters) = replaying(&cancelled["data"]);
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Json(200, cancelled.clone()), 10),
    );
    let run = run_component(with(
        parameters,
        json!({"wait_for_result": true, "run_id": "36053848"}),
    ));
    run.assert_code(1);
    assert!(
        run.stderr().starts_with(
            "dbt Cloud run 36053848 was cancelled before it started: Cancelled by user"
        ),
        "{}",
        run.stderr()
    );
    assert_row_is(&run, "dbt_cloud_run", &cancelled["data"]);
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.path.contains("/artifacts"))
            .count(),
        0
    );
}

#[test]
fn a_real_list_of_jobs_fills_the_dropdown() {
    let jobs = real("dbt-cloud-cli/job_list_response.json");
    let emulator = emulator_with(job(Duration::from_millis(1200), Outcome::Success));
    emulator.inject(Endpoint::ListJobs, [Fault::Json(200, jobs)]);
    let config = json!({"action": "listJobs", "parameters": parameters(&emulator, json!({}))});
    let run = run_component_with(Some(config.to_string()), &[]);
    run.assert_code(0);
    let answer: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(
        answer,
        json!([{"value": "43167", "label": "Do nothing! (43167)"}])
    );
}

/// One run of a real list-runs answer, in the envelope get-run and trigger answer with.
fn enveloped(list: &serde_json::Value, index: usize) -> serde_json::Value {
    json!({"status": list["status"], "data": list["data"][index]})
}

#[test]
fn a_real_list_of_runs_fills_the_recent_runs_table() {
    let runs = real("metamart/list_runs_response.json");
    let (emulator, parameters) = replaying(&runs["data"][0]);
    emulator.inject(Endpoint::ListRuns, [Fault::Json(200, runs)]);
    let config = json!({"action": "listRecentRuns", "parameters": parameters});
    let run = run_component_with(Some(config.to_string()), &[]);
    run.assert_code(0);
    let answer: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    let base = "https://abc12.us1.dbt.com/deploy/70403103922125/projects/70403103926818/runs";
    assert_eq!(
        answer["message"]
            .as_str()
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        [
            "| Run | Status | Started | Duration | Cause |",
            "|---|---|---|---|---|",
            &format!(
                "| [70403110257794]({base}/70403110257794/) | Cancelled | \
                 2024-05-27 10:42:20.621788+00:00 | 24:00:36 | – |"
            ),
            &format!("| [70403111615088]({base}/70403111615088/) | Queued | – | 00:56:48 | – |"),
        ]
    );
}

#[test]
fn a_real_queued_run_is_waited_for_until_max_wait_time() {
    let runs = real("metamart/list_runs_response.json");
    let queued = enveloped(&runs, 1);
    let (emulator, parameters) = replaying(&queued["data"]);
    emulator.inject(Endpoint::Trigger, [Fault::Json(200, queued.clone())]);
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Json(200, queued.clone()), 100),
    );
    let run = run_component(with(
        parameters,
        json!({"wait_for_result": true, "max_wait_time": 0.01}),
    ));
    run.assert_code(1);
    assert!(
        run.stderr().contains("70403111615088") && run.stderr().contains("Queued"),
        "{}",
        run.stderr()
    );
    assert_row_is(&run, "dbt_cloud_trigger", &queued["data"]);
    assert_row_is(&run, "dbt_cloud_run", &queued["data"]);
    assert_eq!(
        count(&emulator, "POST", "/cancel/"),
        0,
        "not asked to cancel"
    );
}

#[test]
fn a_real_run_that_dbt_cloud_cancelled_for_its_timeout() {
    let runs = real("metamart/list_runs_response.json");
    let queued = enveloped(&runs, 1);
    // The recording's other run, which dbt Cloud cancelled for its timeout: replayed as this one.
    let cancelled = as_run(enveloped(&runs, 0), &queued["data"]["id"]);
    let (emulator, parameters) = replaying(&queued["data"]);
    emulator.inject(Endpoint::Trigger, [Fault::Json(200, queued.clone())]);
    emulator.inject(
        Endpoint::GetRun,
        [
            Fault::Json(200, queued.clone()),
            Fault::Json(200, cancelled.clone()),
            Fault::Json(200, cancelled.clone()),
            Fault::Json(200, cancelled.clone()),
        ],
    );
    let run = run_component(with(parameters, json!({"wait_for_result": true})));
    run.assert_code(1);
    assert!(
        run.stderr().contains("cancelled")
            && run
                .stderr()
                .contains("This run timed out after running for 1 day"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("permissions"), "{}", run.stderr());
    assert_row_is(&run, "dbt_cloud_trigger", &queued["data"]);
    assert_row_is(&run, "dbt_cloud_run", &cancelled["data"]);
}
