//! Every step of a run, told truthfully: each dbt step's run_results.json and sources.json are
//! read with `?step=N`, land in the results and freshness tables with their step, warnings are
//! reported, and a failure is told from the step that failed, not from the last one.

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};
use serde_json::{json, Value};

fn real_json(path: &str) -> Value {
    serde_json::from_slice(&real(path)).unwrap()
}

const BUILD: &str = "run_results/v6-1.10.13-build-warn-noop-scooters.json";
const DOCS: &str = "run_results/v6-1.10.3-docs-generate-shopverse.json";
const FRESHNESS: &str = "sources/v3-1.0.1-runtime-error-and-warn-jimbauserman.json";

/// `dbt build` (step 4, a warned test), then `dbt docs generate` (step 5, the last).
fn build_then_docs(outcome: Outcome) -> Job {
    job_with_steps(outcome, &["build", "docs generate"])
        .step_artifacts(4, vec![Artifact::new("run_results.json", real(BUILD))])
        .artifacts(vec![
            Artifact::new("manifest.json", b"{}".to_vec()),
            Artifact::new("catalog.json", b"{}".to_vec()),
            Artifact::new("run_results.json", real(DOCS)),
        ])
}

fn results_of(path: &str) -> Vec<Value> {
    real_json(path)["results"].as_array().unwrap().clone()
}

/// The rows of `table` for one step, by unique id.
fn rows_of_step(
    rows: &[std::collections::BTreeMap<String, String>],
    step: &str,
) -> Vec<std::collections::BTreeMap<String, String>> {
    rows.iter()
        .filter(|row| row["step_index"] == step)
        .cloned()
        .collect()
}

#[test]
fn build_then_docs_generate_keeps_the_builds_results_and_reports_its_warning() {
    let emulator = emulator_with(build_then_docs(Outcome::Success));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    let build = rows_of_step(&rows, "4");
    let docs = rows_of_step(&rows, "5");
    let build_nodes = results_of(BUILD);
    assert_eq!(build.len(), build_nodes.len());
    assert_eq!(docs.len(), results_of(DOCS).len());
    assert_eq!(rows.len(), build.len() + docs.len(), "no other step");
    for (row, node) in build.iter().zip(&build_nodes) {
        assert_eq!(row["unique_id"], node["unique_id"].as_str().unwrap());
        assert_eq!(row["status"], node["status"].as_str().unwrap());
        assert_eq!(row["step_name"], "Invoke dbt with `dbt build`");
    }
    assert!(docs
        .iter()
        .all(|row| row["step_name"] == "Invoke dbt with `dbt docs generate`"));
    // The build's warned test is news, in words.
    let warned = build_nodes.iter().find(|n| n["status"] == "warn").unwrap();
    let stdout = run.stdout();
    assert!(stdout.contains("WARN  Warnings: 1 node warned"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "WARN  - {} (warn, 216 failing rows): Got 216 results, configured to warn if != 0 [step 4 \"Invoke dbt with `dbt build`\"]",
            warned["unique_id"].as_str().unwrap()
        )),
        "{stdout}"
    );
    // Counts per step, as dbt named the statuses.
    let done = stdout.lines().find(|l| l.contains("INFO  Done: ")).unwrap();
    assert!(
        done.contains("step 4 \"Invoke dbt with `dbt build`\": 36 success, 21 pass, 1 warn, 1 no-op; step 5 \"Invoke dbt with `dbt docs generate`\": 39 success;"),
        "{done}"
    );
    // The build's run_results.json is kept beside the last step's artifacts.
    assert_eq!(
        std::fs::read(run.artifacts_dir().join("steps/4/run_results.json")).unwrap(),
        real(BUILD)
    );
    assert!(!run.artifacts_dir().join("steps/4/sources.json").exists());
    assert_eq!(
        std::fs::read(run.artifacts_dir().join("run_results.json")).unwrap(),
        real(DOCS)
    );
    // Asked for by name and step; dbt Cloud's own steps are not asked.
    let asked: Vec<String> = emulator
        .requests_to("GET", "")
        .into_iter()
        .filter_map(|r| r.query.filter(|q| q.starts_with("step=")))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(asked.iter().all(|q| q == "step=4"), "{asked:?}");
}

#[test]
fn a_build_that_fails_before_docs_generate_is_told_from_its_own_results() {
    let swans = "run_results/v6-1.11.6-run-error-swans.json";
    let job = job_with_steps(Outcome::Error, &["build", "docs generate"])
        .failing_step(4)
        .step_artifacts(4, vec![Artifact::new("run_results.json", real(swans))])
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].contains("Failed step: 4 \"Invoke dbt with `dbt build`\""),
        "{stderr}"
    );
    assert_eq!(
        lines[1], "step 4 \"Invoke dbt with `dbt build`\": 1 of 3 nodes failed",
        "{stderr}"
    );
    let failed = results_of(swans)
        .into_iter()
        .find(|node| node["status"] == "error")
        .unwrap();
    assert!(
        lines[2].starts_with(&format!(
            "- {} (error",
            failed["unique_id"].as_str().unwrap()
        )) && lines[2].contains("invalid value \"T2\" for \"HH24\""),
        "{stderr}"
    );
}

/// A job whose freshness step left `sources` (a path under tests/data/real), run to its end.
fn freshness_run(sources: &str) -> (Emulator, Run) {
    let job = job_with_steps(Outcome::Success, &["source freshness", "build"])
        .step_artifacts(4, vec![Artifact::new("sources.json", real(sources))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    (emulator, run)
}

/// Every cell of `dbt_cloud_source_freshness` against the source it came from, numbers compared
/// as the exact doubles their text names.
fn assert_freshness_table_is(path: &str, run: &Run) {
    let rows = run.table_rows("dbt_cloud_source_freshness");
    let sources = results_of(path);
    assert_eq!(rows.len(), sources.len(), "{path}");
    let cell = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    for (row, source) in rows.iter().zip(&sources) {
        let at = format!("{path}: {}", source["unique_id"].as_str().unwrap());
        assert_eq!(row["run_id"], "70403103000", "{at}");
        assert_eq!(row["step_index"], "4", "{at}");
        for column in [
            "unique_id",
            "status",
            "max_loaded_at",
            "snapshotted_at",
            "error",
        ] {
            assert_eq!(row[column], cell(&source[column]), "{at}.{column}");
        }
        for column in ["max_loaded_at_time_ago_in_s", "execution_time"] {
            match source[column].as_f64() {
                Some(exact) => {
                    let written: f64 = row[column].parse().unwrap();
                    assert_eq!(written.to_bits(), exact.to_bits(), "{at}.{column}");
                }
                None => assert_eq!(row[column], "", "{at}.{column}"),
            }
        }
        match source.get("criteria") {
            Some(criteria) => {
                let written: Value = serde_json::from_str(&row["criteria"]).unwrap();
                assert_eq!(&written, criteria, "{at}");
            }
            None => assert_eq!(row["criteria"], "", "{at}"),
        }
    }
}

#[test]
fn source_freshness_is_a_table_cell_for_cell_and_stale_sources_are_news() {
    let (_, run) = freshness_run(FRESHNESS);
    assert_freshness_table_is(FRESHNESS, &run);
    let manifest = run.manifest("dbt_cloud_source_freshness");
    assert_eq!(
        manifest["primary_key"],
        json!(["run_id", "step_index", "unique_id"])
    );
    assert_eq!(manifest["write_always"], true);
    assert_eq!(manifest["incremental"], true);
    let stdout = run.stdout();
    assert!(
        stdout.contains("WARN  Warnings: 1 source is stale"),
        "{stdout}"
    );
    assert!(
        stdout.contains("WARN  - source.jaffle_shop.jaffle_shop.orders (warn): last loaded 16h 0m 0s ago (2022-01-05T05:55:00.892260+00:00); warn after 12 hours, error after 48 hours [step 4 \"Invoke dbt with `dbt source freshness`\"]"),
        "{stdout}"
    );
    let done = stdout.lines().find(|l| l.contains("INFO  Done: ")).unwrap();
    assert!(
        done.contains(
            "step 4 \"Invoke dbt with `dbt source freshness`\": 1 runtime error, 1 warn;"
        ),
        "{done}"
    );
}

#[test]
fn real_sources_files_of_dbt_1_0_to_1_12_land_cell_for_cell() {
    // error, runtime error with its id, error and status alone, pass, warn; BigQuery, Snowflake,
    // Postgres.
    for path in [
        "sources/v3-1.0.3-error-and-runtime-error-aec-hannah.json",
        "sources/v3-1.5.0-error-and-pass-gx-demo.json",
        "sources/v3-1.10.6-warn-scooters.json",
        "sources/v3-1.12.2-error-hospital-medallion.json",
    ] {
        let (_, run) = freshness_run(path);
        assert_freshness_table_is(path, &run);
        let stale = results_of(path)
            .iter()
            .filter(|s| s["status"] == "warn" || s["status"] == "error")
            .count();
        let stdout = run.stdout();
        let said = format!(
            "Warnings: {stale} {} stale",
            if stale == 1 {
                "source is"
            } else {
                "sources are"
            }
        );
        assert!(stdout.contains(&said), "{path}: {stdout}");
    }
}

#[test]
fn fail_on_warnings_fails_the_job_after_its_tables_with_the_report() {
    let emulator = emulator_with(build_then_docs(Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"fail_on_warnings": true})),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("dbt Cloud run 70403103000 succeeded with warnings, and fail_on_warnings is true. Warnings: 1 node warned. The tables are written."),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("- test.dbt_scooters.")
            && lines[1].contains("(warn, 216 failing rows)"),
        "{stderr}"
    );
    assert_eq!(run.table_rows("dbt_cloud_run_results").len(), 59 + 39);
    assert!(run.data().join("out/tables/dbt_cloud_run.csv").exists());
    // The log has the report once.
    let stdout = run.stdout();
    assert_eq!(
        stdout.matches("WARN  Warnings: 1 node warned").count(),
        1,
        "{stdout}"
    );
    assert_eq!(stdout.matches(lines[1]).count(), 1, "{stdout}");
}

#[test]
fn a_step_file_that_is_not_what_it_should_be_leaves_out_that_step_alone() {
    for broken in [
        b"{\"results\": [".to_vec(),
        b"<html>not json</html>".to_vec(),
    ] {
        let job = job_with_steps(Outcome::Success, &["build", "docs generate"])
            .step_artifacts(4, vec![Artifact::new("run_results.json", broken.clone())])
            .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
        let emulator = emulator_with(job);
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(0);
        let stdout = run.stdout();
        assert!(
            stdout.contains("WARN  step 4 \"Invoke dbt with `dbt build`\": its run_results.json could not be read ("),
            "{stdout}"
        );
        let rows = run.table_rows("dbt_cloud_run_results");
        assert_eq!(rows.len(), results_of(DOCS).len());
        assert!(rows.iter().all(|row| row["step_index"] == "5"));
    }
    // Larger than max_artifact_size, fetched for the table alone.
    let mut padded = real(BUILD);
    padded.extend(std::iter::repeat_n(b' ', 20_000));
    let job = job_with_steps(Outcome::Success, &["build", "docs generate"])
        .step_artifacts(4, vec![Artifact::new("run_results.json", padded)])
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"ignore_artifacts": true, "max_artifact_size": 0.05})),
    ));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(
        stdout.contains("WARN  step 4 \"Invoke dbt with `dbt build`\": its run_results.json could not be fetched (")
            && stdout.contains("is larger than max_artifact_size"),
        "{stdout}"
    );
    assert!(run
        .table_rows("dbt_cloud_run_results")
        .iter()
        .all(|row| row["step_index"] == "5"));
}

#[test]
fn a_failed_step_without_results_or_log_is_named() {
    let job = job_with_steps(Outcome::Error, &["build", "docs generate"])
        .failing_step(4)
        .failed_step_log("")
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert_eq!(
        stderr.lines().nth(1),
        Some("step 4 \"Invoke dbt with `dbt build`\" ended in Error, and dbt Cloud has neither results nor a log of it"),
        "{stderr}"
    );
}

#[test]
fn without_artifacts_every_steps_results_are_still_read_and_none_kept() {
    let emulator = emulator_with(build_then_docs(Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"ignore_artifacts": true})),
    ));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows_of_step(&rows, "4").len(), 59);
    assert_eq!(rows_of_step(&rows, "5").len(), 39);
    assert!(files_under(&run.artifacts_dir()).is_empty());
    // Fetched together, so in no particular order: each once.
    let mut downloads: Vec<String> = emulator
        .requests_to("GET", "")
        .into_iter()
        .filter(|r| r.path.contains("/artifacts/") && !r.path.ends_with("/artifacts/"))
        .map(|r| {
            format!(
                "{}?{}",
                r.path.rsplit('/').next().unwrap(),
                r.query.unwrap_or_default()
            )
        })
        .collect();
    downloads.sort();
    assert_eq!(
        downloads,
        [
            "run_results.json?",
            "run_results.json?step=4",
            "sources.json?step=4"
        ]
    );
}

#[test]
fn a_step_showing_an_earlier_steps_file_is_not_read_twice() {
    // dbt Cloud keeps target/ across steps: the build's and the docs step's sources.json are the
    // freshness step's.
    let freshness = Artifact::new("sources.json", real(FRESHNESS));
    let job = job_with_steps(
        Outcome::Success,
        &["source freshness", "build", "docs generate"],
    )
    .step_artifacts(4, vec![freshness.clone()])
    .step_artifacts(
        5,
        vec![
            freshness.clone(),
            Artifact::new("run_results.json", real(BUILD)),
        ],
    )
    .artifacts(vec![
        freshness,
        Artifact::new("run_results.json", real(DOCS)),
    ]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let freshness_rows = run.table_rows("dbt_cloud_source_freshness");
    assert_eq!(freshness_rows.len(), 2);
    assert!(freshness_rows.iter().all(|row| row["step_index"] == "4"));
    let stdout = run.stdout();
    assert!(
        stdout.contains("WARN  Warnings: 1 node warned; 1 source is stale"),
        "{stdout}"
    );
    // Everything served is kept, each under its step.
    assert!(run.artifacts_dir().join("steps/5/sources.json").exists());
}

#[test]
fn the_steps_files_are_retried_like_every_download() {
    let emulator = emulator_with(build_then_docs(Outcome::Success));
    emulator.inject_where(
        Endpoint::DownloadArtifact,
        ("step", "4"),
        [Fault::Status(503), Fault::Reset],
    );
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_eq!(
        rows_of_step(&run.table_rows("dbt_cloud_run_results"), "4").len(),
        59
    );
}

#[test]
fn a_long_step_log_is_cut_to_ten_thousand_characters_its_mark_included() {
    let log = "x".repeat(27_146);
    let emulator = emulator_with(quick(Outcome::Error).failed_step_log(&log));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let steps = run.table_rows("dbt_cloud_run_steps");
    let cell = &steps[3]["logs"];
    assert_eq!(cell.chars().count(), 10_000);
    assert!(
        cell.starts_with("[first 17175 characters cut]\nxxx"),
        "{}",
        &cell[..40]
    );
}

#[test]
fn a_run_that_lists_no_steps_gives_its_results_step_zero() {
    let emulator = emulator_with(quick(Outcome::Success).steps(&[]));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows.len(), 37);
    assert!(rows
        .iter()
        .all(|row| row["step_index"] == "0" && row["step_name"].is_empty()));
}

/// A `dbt deps` among the job's commands is dbt's by what it runs, like dbt Cloud's own: the
/// steps before it are the job's commands all the same, their results read and their warnings
/// counted.
#[test]
fn a_dbt_deps_among_the_commands_hides_no_step() {
    let job = job_with_steps(Outcome::Success, &["build", "deps", "docs generate"])
        .step_artifacts(4, vec![Artifact::new("run_results.json", real(BUILD))])
        .artifacts(vec![Artifact::new("run_results.json", real(DOCS))]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"fail_on_warnings": true})),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("dbt Cloud run 70403103000 succeeded with warnings, and fail_on_warnings is true. Warnings: 1 node warned."),
        "{stderr}"
    );
    let rows = run.table_rows("dbt_cloud_run_results");
    assert_eq!(rows_of_step(&rows, "4").len(), results_of(BUILD).len());
    assert_eq!(rows_of_step(&rows, "6").len(), results_of(DOCS).len());
    assert_eq!(rows.len(), results_of(BUILD).len() + results_of(DOCS).len());
    assert!(rows_of_step(&rows, "4")
        .iter()
        .all(|row| row["step_name"] == "Invoke dbt with `dbt build`"));
    // Neither dbt Cloud's `dbt deps` nor the job's is asked for files.
    let asked: Vec<String> = emulator
        .requests_to("GET", "")
        .into_iter()
        .filter_map(|r| r.query.filter(|q| q.starts_with("step=")))
        .collect();
    assert!(asked.iter().all(|q| q == "step=4"), "{asked:?}");
    assert!(!asked.is_empty());
}

/// A log longer than an answer keeps whole (64 KB) was cut as it streamed in; the steps table's
/// mark counts the characters of the log as dbt wrote it, not of what was kept, and its end is
/// the log's, whatever its characters.
#[test]
fn a_long_log_of_emoji_keeps_its_end_and_says_exactly_how_much_is_cut() {
    for line in ["😀 model ok\n", "é\n", "x\n"] {
        let log = format!(
            "{}Done. PASS=1 WARN=0 ERROR=1 SKIP=0 TOTAL=2 🏁",
            line.repeat(20_000)
        );
        let emulator = emulator_with(quick(Outcome::Error).failed_step_log(&log));
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(1);
        let steps = run.table_rows("dbt_cloud_run_steps");
        let cell = &steps[3]["logs"];
        assert_eq!(cell.chars().count(), 10_000, "{line:?}");
        let (mark, kept) = cell.split_once('\n').unwrap();
        assert!(log.ends_with(kept), "{line:?}: the end is the log's");
        let stated: usize = mark
            .strip_prefix("[first ")
            .and_then(|rest| rest.strip_suffix(" characters cut]"))
            .unwrap_or_else(|| panic!("{mark}"))
            .parse()
            .unwrap();
        assert_eq!(
            stated + kept.chars().count(),
            log.chars().count(),
            "{line:?}: {mark}"
        );
    }
}

/// Steps sent under an index already sent would repeat the steps table's primary key (`run_id`,
/// `index`): the first step of each index is kept, and the others are left out with one warning.
#[test]
fn steps_sent_twice_under_one_index_keep_the_primary_key_unique() {
    let job = job_with_steps(Outcome::Success, &["build", "test", "docs generate"])
        .step_indexes(&[1, 2, 3, 3, 4, 4]);
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    let steps = run.table_rows("dbt_cloud_run_steps");
    let keys: Vec<(&str, &str)> = steps
        .iter()
        .map(|row| (row["index"].as_str(), row["name"].as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("1", "Clone git repository"),
            ("2", "Create profile from connection Postgres"),
            ("3", "Invoke dbt with `dbt deps`"),
            ("4", "Invoke dbt with `dbt test`"),
        ]
    );
    let stdout = run.stdout();
    let warned: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("already listed"))
        .collect();
    assert_eq!(warned.len(), 1, "{stdout}");
    assert!(
        warned[0].ends_with(
            "WARN  dbt Cloud lists steps of run 70403103000 under an index already listed (the \
             first: 3 \"Invoke dbt with `dbt build`\"); the first step of each index is kept, the \
             others are left out"
        ),
        "{stdout}"
    );
}
