//! Runs on dbt's Fusion engine told as truly as dbt Core's: statuses in one vocabulary whatever
//! the case, a node a row whatever its fields, the failure from the log when the results do not
//! name it (in a log of any length), and Fusion's Parquet files kept byte for byte. Real Fusion
//! files (`tests/data/real/SOURCES.md`), and the emulator's Fusion jobs (`latest-fusion`).

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{json, Value};

const FUSION_WARN_PASS: &str =
    "sources/fusion-2.0.0-preview.92-warn-pass-eluzuriaga83-dbt_fundamentals.json";
const FUSION_ERROR: &str = "sources/fusion-2.0.0-preview.154-error-angy255-dbt_fundamentals.json";
const FUSION_BUILD: &str =
    "run_results/fusion-2.0.0-preview.149-build-success-error-pass-skipped-fail-oorucelik-dbt-ravenstack.json";
const FUSION_LOG: &str =
    "logs/fusion-2.0.0-preview.149-build-failed-tests-errors-oorucelik-dbt-ravenstack.dbt.log";
const CORE_BUILD: &str = "run_results/v5-1.7.2-build-fail-warn-skipped-customer-case.json";
const CORE_RUN_ERROR: &str = "run_results/v6-1.11.6-run-error-swans.json";
const CORE_SOURCES: &str = "sources/v3-1.5.0-error-and-pass-gx-demo.json";
const DOCS: &str = "run_results/v6-1.10.3-docs-generate-shopverse.json";

fn rows_of_step(run: &Run, table: &str, step: &str) -> Vec<BTreeMap<String, String>> {
    run.table_rows(table)
        .into_iter()
        .filter(|row| row["step_index"] == step)
        .collect()
}

fn statuses(rows: &[BTreeMap<String, String>]) -> Vec<String> {
    rows.iter().map(|row| row["status"].clone()).collect()
}

/// The issue's own try: the freshness step of a successful run leaves Fusion's `sources.json`
/// (real files: `Warn` and `Pass`), and `fail_on_warnings` is on. The stale source is named and
/// the job fails; the tables say `warn`, as dbt Core would.
#[test]
fn fusions_capitalized_freshness_is_a_warning_like_dbt_cores() {
    let job = job_with_steps(Outcome::Success, &["source freshness", "build"])
        .step_artifacts(
            4,
            vec![Artifact::new("sources.json", real(FUSION_WARN_PASS))],
        )
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"fail_on_warnings": true})),
    ));
    run.assert_code(1);
    let freshness = rows_of_step(&run, "dbt_cloud_source_freshness", "4");
    assert_eq!(statuses(&freshness), ["warn", "pass"]);
    let stdout = run.stdout();
    assert!(
        stdout.contains("WARN  Warnings: 1 source is stale"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARN  - source.jaffle_shop.jaffle_shop.orders (warn): last loaded 25h 31m 3s ago (2026-01-18T20:04:10.229Z); warn after 24 hours, error after 48 hours [step 4 \"Invoke dbt with `dbt source freshness`\"]"),
        "{stdout}"
    );
    assert!(
        run.stderr().starts_with("dbt Cloud run 70403103000 succeeded with warnings, and fail_on_warnings is true. Warnings: 1 source is stale."),
        "{}",
        run.stderr()
    );
    // The file kept among the artifacts is as dbt wrote it.
    assert_eq!(
        std::fs::read(run.artifacts_dir().join("steps/4/sources.json")).unwrap(),
        real(FUSION_WARN_PASS)
    );
}

/// A freshness step that failed on Fusion's `Error`: the digest names the source.
#[test]
fn fusions_error_freshness_fails_the_step_and_names_the_source() {
    let job = job_with_steps(Outcome::Error, &["source freshness", "build"])
        .failing_step(4)
        .step_artifacts(4, vec![Artifact::new("sources.json", real(FUSION_ERROR))])
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[1], "step 4 \"Invoke dbt with `dbt source freshness`\": 1 of 1 sources failed",
        "{stderr}"
    );
    assert!(
        lines[2]
            .starts_with("- source.jaffle_shop.jaffle_shop.orders (error): last loaded 4 days ago"),
        "{stderr}"
    );
    assert_eq!(
        statuses(&rows_of_step(&run, "dbt_cloud_source_freshness", "4")),
        ["error"]
    );
}

/// The emulator's Fusion job: dbt Core's files as Fusion writes them. Every freshness status
/// is capitalized, and the tables and counts say them in dbt Core's words.
#[test]
fn a_fusion_job_s_freshness_and_results_are_counted_in_dbt_cores_words() {
    let job = job_with_steps(Outcome::Success, &["source freshness", "build"])
        .dbt_version("latest-fusion")
        .step_artifacts(4, vec![Artifact::new("sources.json", real(CORE_SOURCES))])
        .artifacts(vec![Artifact::new("run_results.json", real(CORE_BUILD))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let served: Value = serde_json::from_slice(
        &std::fs::read(run.artifacts_dir().join("steps/4/sources.json")).unwrap(),
    )
    .unwrap();
    let written: Vec<&str> = served["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert!(
        written.contains(&"Error") && written.contains(&"Pass"),
        "{written:?}"
    );
    let freshness = rows_of_step(&run, "dbt_cloud_source_freshness", "4");
    assert_eq!(freshness.len(), 16);
    assert_eq!(
        freshness.iter().filter(|r| r["status"] == "error").count(),
        12
    );
    assert_eq!(
        freshness.iter().filter(|r| r["status"] == "pass").count(),
        4
    );
    let stdout = run.stdout();
    assert!(
        stdout.contains("WARN  Warnings: 1 node warned; 12 sources are stale"),
        "{stdout}"
    );
    let done = stdout.lines().find(|l| l.contains("INFO  Done: ")).unwrap();
    assert!(done.contains(": 12 error, 4 pass;"), "{done}");
    // Fusion's run results: no message but on skipped nodes, failures only on tests.
    let results = rows_of_step(&run, "dbt_cloud_run_results", "5");
    assert_eq!(results.len(), 13);
    assert!(results
        .iter()
        .all(|r| r["message"].is_empty() || r["status"] == "skipped"));
    assert!(results
        .iter()
        .all(|r| r["failures"].is_empty() || r["resource_type"] == "test"));
}

/// A failed Fusion step whose results leave the failed node out: the digest is the log's, in
/// Fusion's words; the results' rows are written, and no "neither results nor a log".
#[test]
fn a_fusion_run_whose_results_leave_out_the_failed_node_is_told_from_its_log() {
    let job = job_with_steps(Outcome::Error, &["run"])
        .dbt_version("latest-fusion")
        .artifacts(vec![Artifact::new(
            "run_results.json",
            real(CORE_RUN_ERROR),
        )]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(
        statuses(&rows),
        ["success", "skipped"],
        "the error node is left out"
    );
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines[1],
        "Log of step 4 \"Invoke dbt with `dbt run`\": Summary: 3 total | 1 success | 1 error | 1 skipped",
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("- Failed [  1.00s] model analytics.fct_ca_crashes (table) | error: dbt1501: Database Error in model fct_ca_crashes")
            && lines[2].contains("--> models/fct_ca_crashes.sql:1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("neither results nor a log"), "{stderr}");
    let parquet: Vec<String> = files_under(&run.artifacts_dir())
        .into_iter()
        .filter(|path| path.ends_with(".parquet"))
        .collect();
    assert_eq!(
        parquet,
        [
            "index/nodes/v1_0.parquet",
            "index/run_results/v1_0.parquet",
            "index/source_freshness/v1_0.parquet",
            "metadata/telemetry-4-otel.parquet"
        ]
    );
    assert_eq!(
        std::fs::read(
            run.artifacts_dir()
                .join("metadata/telemetry-4-otel.parquet")
        )
        .unwrap(),
        real("parquet/metadata/otel.parquet"),
        "byte for byte"
    );
}

/// Real Fusion results name the failed model and test without dbt's message; the real log of
/// the step (390 KB, its failures in the middle) says why: the model's entry is the log's, and
/// the failures only the log names follow. (A composite: the files are real, from one project's
/// two commits.)
#[test]
fn a_fusion_failure_without_a_message_takes_its_words_from_a_long_real_log() {
    let log = String::from_utf8(real(FUSION_LOG)).unwrap();
    assert!(log.len() > 300_000);
    let job = job_with_steps(Outcome::Error, &["build"])
        .artifacts(vec![Artifact::new("run_results.json", real(FUSION_BUILD))])
        .failed_step_log(&log);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[1].starts_with(
            "step 4 \"Invoke dbt with `dbt build`\": 2 of 28 nodes failed; its log names "
        ) && lines[1].ends_with(" more failures"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("- Failed [  0.19s] model main_marts.dim_date (table) | error: dbt0209: Failed to resolve function generate_series"),
        "the model's words come from the middle of the log: {stderr}"
    );
    assert_eq!(
        lines[3],
        "- test.dbt_ravenstack.unique_fct_feature_usage_usage_key.e039614975 (fail, 21 failing rows)",
        "{stderr}"
    );
    assert!(
        lines.iter().any(|line| line.starts_with("- Failed [  1.05s] test  main_dbt_test__audit.source_unique_raw_ravenstack_support_tickets_ticket_id")
            && line.contains("| error: Error materializing test test.dbt_ravenstack.source_unique_raw_ravenstack_support_tickets_ticket_id.b61965c6e8")),
        "a failure only the log names, with its error: {stderr}"
    );
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows.len(), 28);
    let failed = rows.iter().find(|r| r["status"] == "fail").unwrap();
    assert_eq!(failed["failures"], "21");
}

/// dbt Core's console log of a long step, its failure in the middle, past the 64 KB that an
/// answer's string keeps whole: the digest finds it. (A composite: the real error block of
/// `dbt-1.10-console-...` among generated lines of success.)
#[test]
fn a_failure_in_the_middle_of_a_long_log_is_found() {
    let block = String::from_utf8(real(
        "logs/dbt-1.10-console-snowflake-9-errors-coalesce-upgrading-to-fusion.log",
    ))
    .unwrap();
    let filler: String = (0..2_000)
        .map(|i| format!("02:00:01  {i} of 4000 OK created sql table model analytics.m{i} ....... [SUCCESS 1 in 0.52s]\n"))
        .collect();
    let log = format!("{filler}{block}{filler}02:09:00  Finished running 4000 table models in 0 hours 9 minutes.\n");
    assert!(log.len() > 200_000);
    let job = job_with_steps(Outcome::Error, &["build"]).failed_step_log(&log);
    let emulator = emulator_with(job.artifacts(Vec::new()));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("Log of step 4 \"Invoke dbt with `dbt build`\": Done. PASS=84 WARN=0 ERROR=9 SKIP=4 NO-OP=5 TOTAL=102"),
        "{stderr}"
    );
    assert!(
        stderr.contains("- Failure in model stg_orders_with_custom_config (models/staging/jaffle_shop/stg_orders_with_custom_config.sql) | Database Error | 000904 (42000): SQL compilation error: error line 7 at position 2 | invalid identifier 'USER_ID'"),
        "{stderr}"
    );
    // The steps table keeps the log's end.
    let steps = run.table_rows("dbt_cloud_run_steps");
    assert!(steps[3]["logs"].ends_with("in 0 hours 9 minutes.\n"));
}

/// A real dbt 1.7 `dbt build` whose failing test's `failures` is the string "Test failure" (a
/// composite: as an older tool's fixture has it): every row is kept, the cell as written, one
/// warning names the field, and the digest tells the failures from the results.
#[test]
fn a_field_of_another_type_keeps_its_node_and_its_step() {
    let mut results: Value = serde_json::from_slice(&real(CORE_BUILD)).unwrap();
    results["results"][10]["failures"] = json!("Test failure");
    results["results"][0]["message"] = json!({"rows": 11});
    results["results"][1]["state_decision_id"] = json!("c0ffee-1");
    let job = job_with_steps(Outcome::Error, &["build"]).artifacts(vec![Artifact::new(
        "run_results.json",
        results.to_string().into_bytes(),
    )]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows.len(), 13);
    assert_eq!(rows[10]["failures"], "Test failure");
    assert_eq!(rows[0]["message"], r#"{"rows":11}"#);
    assert_eq!(rows[1]["state_decision_id"], "c0ffee-1");
    assert_eq!(rows[2]["state_decision_id"], "");
    let stdout = run.stdout();
    let warned: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once("Z WARN  ").map(|(_, warning)| warning))
        .filter(|warning| warning.contains("has values of unexpected types"))
        .collect();
    assert_eq!(
        warned,
        ["step 4 \"Invoke dbt with `dbt build`\": its run_results.json has values of unexpected types, kept as written in dbt_cloud_run_results: message (1 result, e.g. {\"rows\":11}), failures (1 result, e.g. \"Test failure\")"],
        "{stdout}"
    );
    let stderr = run.stderr();
    assert!(
        stderr.contains("step 4 \"Invoke dbt with `dbt build`\": 2 of 13 nodes failed, 1 warned"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "- test.customer360.not_null_contacts_joined_with_transactions_id.4b4c841311 (fail)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("neither results nor a log"), "{stderr}");
}

/// In a typed table a value of another type would make Storage refuse the whole table: the cell
/// is left empty, and a warning says so.
#[test]
fn in_typed_tables_a_value_of_another_type_is_left_empty_not_refused() {
    let mut results: Value = serde_json::from_slice(&real(CORE_BUILD)).unwrap();
    results["results"][10]["failures"] = json!("Test failure");
    results["results"][1]["execution_time"] = json!("1.5");
    let job = job_with_steps(Outcome::Success, &["build"]).artifacts(vec![Artifact::new(
        "run_results.json",
        results.to_string().into_bytes(),
    )]);
    let emulator = emulator_with(job);
    let config = json!({"parameters": parameters(&emulator, waiting(json!({})))});
    let run = run_component_with(
        Some(config.to_string()),
        &[("KBC_DATA_TYPE_SUPPORT", "authoritative")],
    );
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows.len(), 13);
    assert_eq!(rows[10]["failures"], "");
    assert_eq!(rows[11]["failures"], "9");
    assert_eq!(
        rows[1]["execution_time"], "1.5",
        "a string that is a number fits FLOAT"
    );
    assert!(
        run.stdout().contains("WARN  dbt_cloud_run_results.failures: 1 value that is not INTEGER left empty (the first: \"Test failure\"), as the table is typed and Storage would refuse it whole"),
        "{}",
        run.stdout()
    );
}

/// Statuses of one file in both cases, empty, a number, null or missing: counted as written,
/// lowercased, warned about once; never exit 2.
#[test]
fn odd_statuses_are_counted_as_written_with_one_warning() {
    let node = |id: &str, status: Value| json!({"unique_id": id, "status": status, "timing": []});
    let results = json!({"metadata": {"invocation_id": "i"}, "results": [
        node("test.p.a", json!("warn")), node("test.p.b", json!("Warn")),
        node("test.p.c", json!("")), node("test.p.d", json!(3)), node("test.p.e", Value::Null),
        {"unique_id": "model.p.f"}, node("model.p.g", json!("Success")), "not a result",
        {"status": "PASS"}
    ]});
    let job = job_with_steps(Outcome::Success, &["build"]).artifacts(vec![Artifact::new(
        "run_results.json",
        results.to_string().into_bytes(),
    )]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(
        statuses(&rows),
        ["warn", "warn", "", "3", "", "", "success", "pass"]
    );
    assert_eq!(rows[7]["unique_id"], "");
    let stdout = run.stdout();
    let done = stdout.lines().find(|l| l.contains("INFO  Done: ")).unwrap();
    assert!(
        done.contains(
            "step 4 \"Invoke dbt with `dbt build`\": 3 no status, 2 warn, 1 3, 1 success, 1 pass;"
        ),
        "{done}"
    );
    assert!(
        stdout.contains("WARN  Warnings: 2 nodes warned"),
        "{stdout}"
    );
    assert!(
        stdout.contains("its run_results.json has values of unexpected types, kept as written in dbt_cloud_run_results: status (4 results, e.g. \"\"), unique_id (1 result, e.g. nothing)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("its run_results.json lists 1 item that is no result, left out (the first: \"not a result\")"),
        "{stdout}"
    );
}

/// `artifacts_include` for the JSON artifacts alone leaves Fusion's Parquet files out, as the
/// README shows.
#[test]
fn the_json_artifacts_alone_leave_fusions_parquet_files_out() {
    let job = job_with_steps(Outcome::Success, &["build"])
        .dbt_version("latest-fusion")
        .artifacts(vec![
            Artifact::new("run_results.json", real(CORE_BUILD)),
            Artifact::new("manifest.json", b"{}".to_vec()),
        ]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"artifacts_include": ["*.json"]})),
    ));
    run.assert_code(0);
    assert_eq!(
        files_under(&run.artifacts_dir()),
        ["manifest.json", "run_results.json"]
    );
}

/// A failed step whose results are cut short: the digest says they could not be read, and
/// tells the failure from the step's log (the real console of the Fusion engine), never that
/// there is none.
#[test]
fn a_failed_step_whose_results_cannot_be_read_says_so_and_reads_its_log() {
    let log = String::from_utf8(real(
        "logs/fusion-2.0.0-preview.3-console-build-failed-skipped-Barahow-Marketing-CRM.dbt.log",
    ))
    .unwrap();
    let job = job_with_steps(Outcome::Error, &["build"])
        .artifacts(vec![Artifact::new(
            "run_results.json",
            b"{\"results\": [".to_vec(),
        )])
        .failed_step_log(&log);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[1].starts_with(
            "step 4 \"Invoke dbt with `dbt build`\": its run_results.json could not be read ("
        ) && lines[1].ends_with(
            ". Its log: Finished 'build' target 'dev' with 2 errors and 4 warnings in 26s 965ms"
        ),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with(
            "- Failed [  2.02s] model crm_analytics.staging_meta_ads (view) | error: dbt1501: "
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("neither results nor a log"), "{stderr}");
}
