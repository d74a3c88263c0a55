//! The real binary against the emulator: one scenario per test, asserting the exit code, the
//! messages, the tables and manifests, the artifact bytes, and what the emulator was asked.

use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::standard_artifacts;
use serde_json::json;

const TRIGGER_COLUMNS: &str = "id,trigger_id,account_id,environment_id,project_id,job_definition_id,status,dbt_version,git_branch,git_sha,status_message,owner_thread_id,executed_by_thread_id,deferring_run_id,artifacts_saved,artifact_s3_path,has_docs_generated,has_sources_generated,notifications_sent,blocked_by,created_at,updated_at,dequeued_at,started_at,finished_at,last_checked_at,last_heartbeat_at,should_start_at,trigger,job,environment,run_steps,status_humanized,in_progress,is_complete,is_success,is_error,is_cancelled,duration,queued_duration,run_duration,duration_humanized,queued_duration_humanized,run_duration_humanized,created_at_humanized,finished_at_humanized,retrying_run_id,can_retry,retry_not_supported_reason,job_id,is_running,href,used_repo_cache,scribe_enabled";
const RUN_COLUMNS: &str = "id,trigger_id,account_id,project_id,job_definition_id,status,git_branch,git_sha,status_message,created_at,updated_at,dequeued_at,started_at,finished_at,last_checked_at,last_heartbeat_at,owner_thread_id,executed_by_thread_id,artifacts_saved,artifact_s3_path,has_docs_generated,trigger,job,duration,queued_duration,run_duration,duration_humanized,queued_duration_humanized,run_duration_humanized,finished_at_humanized,status_humanized,created_at_humanized";

#[test]
fn success_with_waiting_writes_tables_and_byte_identical_artifacts() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "cause": "nightly load"}),
    ));
    run.assert_code(0);

    let (header, trigger) = run.table("dbt_cloud_trigger");
    assert_eq!(header.join(","), TRIGGER_COLUMNS);
    assert_eq!(trigger["id"], run_id.to_string());
    assert_eq!(trigger["status"], "1");
    assert_eq!(trigger["job_definition_id"], JOB.to_string());
    assert_eq!(trigger["status_message"], "");
    assert_eq!(trigger["in_progress"], "true");
    let trigger_object: serde_json::Value = serde_json::from_str(&trigger["trigger"]).unwrap();
    assert_eq!(trigger_object["cause"], "nightly load");

    let (header, last) = run.table("dbt_cloud_run");
    assert!(header.join(",").starts_with(RUN_COLUMNS), "{header:?}");
    assert_eq!(last["id"], run_id.to_string());
    assert_eq!(last["status"], "10");
    assert_eq!(last["status_humanized"], "Success");
    assert_eq!(last["artifacts_saved"], "true");
    assert!(!last["finished_at"].is_empty());
    let job_object: serde_json::Value = serde_json::from_str(&last["job"]).unwrap();
    assert_eq!(job_object["name"], "Nightly build");

    for table in ["dbt_cloud_trigger", "dbt_cloud_run"] {
        assert_legacy_manifest(&run, table, "000000000");
    }
    assert_artifacts(&run, &standard_artifacts());
    let mut expected: Vec<String> = standard_artifacts()
        .iter()
        .map(|a| format!("artifacts/out/current/{}", a.path))
        .chain(
            [
                "dbt_cloud_run.csv",
                "dbt_cloud_run.csv.manifest",
                "dbt_cloud_trigger.csv",
                "dbt_cloud_trigger.csv.manifest",
                "dbt_cloud_run_steps.csv",
                "dbt_cloud_run_steps.csv.manifest",
                "dbt_cloud_run_results.csv",
                "dbt_cloud_run_results.csv.manifest",
            ]
            .map(|f| format!("out/tables/{f}")),
        )
        .chain(["config.json".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(
        files_under(run.data()),
        expected,
        "nothing else, no scratch files"
    );

    let requests = emulator.requests();
    let trigger_requests = emulator.requests_to("POST", "");
    assert_eq!(trigger_requests.len(), 1);
    assert_eq!(
        trigger_requests[0].path,
        format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/")
    );
    assert_eq!(
        trigger_requests[0].body_json(),
        Some(json!({"cause": "nightly load"}))
    );
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Token {TOKEN}").as_str()),
            "{}",
            request.path
        );
    }
    let get_run = requests
        .iter()
        .find(|r| r.path.ends_with(&format!("/runs/{run_id}/")))
        .unwrap();
    assert_eq!(
        get_run.query.as_deref(),
        Some("include_related=%5B%22trigger%22%2C%22job%22%2C%22run_steps%22%5D")
    );
    assert_eq!(emulator.runs_created(), 1);

    let stdout = run.stdout();
    assert!(
        stdout.contains(&format!(
            "Triggered run {run_id}: {}/deploy/",
            emulator.base_url()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("Success"), "{stdout}");
    assert!(run.stderr().is_empty(), "{}", run.stderr());
}

/// Storage's base types (docs/keboola-interface.md).
const BASE_TYPES: [&str; 7] = [
    "STRING",
    "INTEGER",
    "NUMERIC",
    "FLOAT",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
];

/// The legacy manifest's field rules (docs/keboola-interface.md): no `schema`, base types as
/// column metadata for every column of the CSV's header.
fn assert_legacy_manifest(run: &Run, table: &str, config_id: &str) {
    let manifest = run.manifest(table);
    let object = manifest.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "column_metadata",
            "delimiter",
            "destination",
            "enclosure",
            "incremental",
            "metadata",
            "primary_key",
            "write_always"
        ]
    );
    assert_eq!(
        manifest["destination"],
        format!("in.c-dbt-cloud-job-trigger-{config_id}.{table}")
    );
    assert_eq!(manifest["incremental"], true);
    assert_eq!(manifest["write_always"], true);
    assert_eq!(manifest["primary_key"], json!(["id"]));
    let (header, _) = run.table(table);
    let columns = manifest["column_metadata"].as_object().unwrap();
    assert_eq!(columns.len(), header.len());
    for column in &header {
        let base = columns[column]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["key"] == "KBC.datatype.basetype")
            .unwrap();
        assert!(BASE_TYPES.contains(&base["value"].as_str().unwrap()));
    }
    let id_type = columns["id"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "KBC.datatype.basetype")
        .unwrap();
    assert_eq!(id_type["value"], "INTEGER");
}

/// The native-types manifest's field rules: `manifest_type`, `has_header`, a `schema` with a base
/// type per column, and none of `columns`, `metadata`, `column_metadata`, `primary_key`.
fn assert_typed_manifest(run: &Run, table: &str) {
    let manifest = run.manifest(table);
    for absent in ["columns", "metadata", "column_metadata", "primary_key"] {
        assert!(
            manifest.get(absent).is_none(),
            "{table}: {absent} must not be in a typed manifest"
        );
    }
    assert_eq!(manifest["manifest_type"], "output");
    assert_eq!(manifest["has_header"], true);
    assert_eq!(manifest["incremental"], true);
    assert_eq!(manifest["write_always"], true);
    assert!(manifest["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    let (header, _) = run.table(table);
    let schema = manifest["schema"].as_array().unwrap();
    let names: Vec<&str> = schema.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(
        names, header,
        "{table}: one schema entry per column, in order"
    );
    for column in schema {
        let base = column["data_type"]["base"]["type"].as_str().unwrap();
        assert!(BASE_TYPES.contains(&base));
        assert!(column["nullable"].is_boolean() && column["primary_key"].is_boolean());
        assert!(column["description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
        let is_id = column["name"] == "id";
        assert_eq!(column["primary_key"], is_id);
    }
    let types: std::collections::BTreeMap<&str, &str> = schema
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["data_type"]["base"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(types["id"], "INTEGER");
    assert_eq!(types["is_success"], "BOOLEAN");
    assert_eq!(types["finished_at"], "TIMESTAMP");
    assert_eq!(types["status_message"], "STRING");
}

#[test]
fn typed_manifests_when_the_project_uses_native_types() {
    let emulator = emulator_with(quick(Outcome::Success));
    for (env, storage) in [
        (Some("authoritative"), None),
        (Some("hints"), None),
        (None, Some("authoritative")),
        (Some("none"), Some("hints")),
    ] {
        let mut config = json!({"parameters": parameters(&emulator, json!({}))});
        if let Some(storage) = storage {
            config["storage"] = json!({"output": {"data_type_support": storage}});
        }
        let env: Vec<(&str, &str)> = env
            .map(|v| ("KBC_DATA_TYPE_SUPPORT", v))
            .into_iter()
            .collect();
        let run = run_component_with(Some(config.to_string()), &env);
        run.assert_code(0);
        for table in ["dbt_cloud_trigger", "dbt_cloud_run"] {
            assert_typed_manifest(&run, table);
        }
    }
    // config.json's storage setting overrides the project's.
    let config = json!({"parameters": parameters(&emulator, json!({})), "storage": {"output": {"data_type_support": "none"}}});
    let run = run_component_with(
        Some(config.to_string()),
        &[
            ("KBC_DATA_TYPE_SUPPORT", "authoritative"),
            ("KBC_CONFIGID", "42"),
        ],
    );
    run.assert_code(0);
    assert_legacy_manifest(&run, "dbt_cloud_run", "42");
}

#[test]
fn no_waiting_writes_both_tables_and_fetches_no_artifacts() {
    let emulator = emulator_with(job(Duration::from_secs(30), Outcome::Success));
    let run = run_component(parameters(&emulator, json!({"wait_for_result": false})));
    run.assert_code(0);
    assert_eq!(run.table("dbt_cloud_trigger").1["status"], "1");
    assert_eq!(run.table("dbt_cloud_run").1["finished_at"], "");
    assert!(!run.artifacts_dir().exists());
    let requests = emulator.requests();
    assert!(
        requests.iter().all(|r| !r.path.contains("/artifacts/")),
        "{requests:#?}"
    );
    let calls: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            format!("GET /api/v2/accounts/{ACCOUNT}/runs/"),
            format!("POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/"),
            format!(
                "GET /api/v2/accounts/{ACCOUNT}/runs/{}/",
                emulator.next_run_id() - 1
            ),
        ],
        "the newest run before triggering, the trigger, one get-run"
    );
}

#[test]
fn run_error_is_exit_1_naming_run_message_step_and_url_after_writing_everything() {
    let emulator = emulator_with(quick(Outcome::Error));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    let stderr = run.stderr();
    for expected in [
        format!("dbt Cloud run {run_id} ended in Error"),
        "Job run failed: 1 error in step 'Invoke dbt build'.".to_owned(),
        "Failed step: 4 \"Invoke dbt build\"".to_owned(),
        format!(
            "{}/deploy/{ACCOUNT}/projects/270542/runs/{run_id}/",
            emulator.base_url()
        ),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} not in {stderr}");
    }
    // One clear message, then the digest's lines (here only how long it queued and ran).
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 2, "one clear message: {stderr}");
    assert!(lines[1].starts_with("queued "), "{stderr}");
    assert_eq!(run.table("dbt_cloud_run").1["status"], "20");
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], run_id.to_string());
    assert_artifacts(&run, &standard_artifacts());
}

#[test]
fn run_cancelled_is_exit_1() {
    let emulator = emulator_with(quick(Outcome::Cancelled));
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    assert!(
        run.stderr().contains("was cancelled: Cancelled by user."),
        "{}",
        run.stderr()
    );
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
}

#[test]
fn max_wait_time_passed_is_exit_1_with_the_run_url_and_its_last_state() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    let run_id = emulator.next_run_id();
    // 0.03 minutes = 1.8 s.
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": 0.03}),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "dbt Cloud run {run_id} did not finish within max_wait_time (0.03 minutes)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("/runs/{run_id}/")), "{stderr}");
    let last = run.table("dbt_cloud_run").1;
    assert_eq!(last["finished_at"], "");
    assert!(
        ["1", "2", "3"].contains(&last["status"].as_str()),
        "{last:?}"
    );
    assert!(emulator
        .requests()
        .iter()
        .all(|r| !r.path.contains("/artifacts/")));
}

#[test]
fn delayed_artifacts_are_waited_for() {
    let job = quick(Outcome::Success)
        .artifacts_delay(Duration::from_millis(2500), Duration::from_millis(5000));
    let emulator = emulator_with(job);
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    assert_artifacts(&run, &standard_artifacts());
    assert_eq!(run.table("dbt_cloud_run").1["artifacts_saved"], "true");
    let lists = emulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/artifacts/"))
        .count();
    assert!(lists >= 2, "the empty list was asked again ({lists} lists)");
}

#[test]
fn ignore_artifacts_keeps_none_and_fetches_only_run_results() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert!(!run.artifacts_dir().exists());
    let fetched: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/artifacts/"))
        .map(|r| r.path.rsplit("/artifacts/").next().unwrap().to_owned())
        .collect();
    assert_eq!(
        fetched,
        ["", "run_results.json"],
        "the list, then run_results.json alone"
    );
    assert_eq!(run.table_rows("dbt_cloud_run_results").len(), 37);
    assert!(files_under(run.data())
        .iter()
        .all(|f| f.starts_with("out/tables/") || f == "config.json"));
}

#[test]
fn a_refused_token_passes_the_api_message_through() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_component(parameters(&emulator, json!({"#api_key": "dbtc_wrong"})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("dbt Cloud refused the API token (HTTP 401: Invalid token.)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cell-based"),
        "the hint is only for the default URL: {stderr}"
    );
    // The output folders were checked writable before the first request: empty, as Keboola
    // makes them.
    assert!(
        files_under(&run.data().join("out")).is_empty(),
        "nothing written"
    );
    assert_eq!(emulator.runs_created(), 0);
}

#[test]
fn an_account_without_api_access_is_told_so() {
    let emulator = Emulator::start();
    emulator.add_account(Account::new(ACCOUNT).without_api_access(), &[TOKEN]);
    emulator.add_job(quick(Outcome::Success));
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("The API is not accessible to unpaid accounts."),
        "{}",
        run.stderr()
    );
}

#[test]
fn an_unknown_job_or_account_is_exit_1_naming_it() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_component(parameters(&emulator, json!({"job_id": 999})));
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains(&format!("dbt Cloud has no job 999 in account {ACCOUNT}")),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr()
            .contains("The requested resource was not found."),
        "{}",
        run.stderr()
    );

    let run = run_component(parameters(&emulator, json!({"account_id": "777"})));
    run.assert_code(1);
    assert!(run.stderr().contains("in account 777"), "{}", run.stderr());
    assert_eq!(emulator.runs_created(), 0);
}

#[test]
fn an_unreachable_host_is_exit_1() {
    let emulator = emulator_with(quick(Outcome::Success));
    let url = emulator.base_url().to_owned();
    drop(emulator);
    std::thread::sleep(Duration::from_millis(200));
    let run = run_component(
        json!({"account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN, "dbt_cloud_url": url}),
    );
    run.assert_code(1);
    assert!(
        run.stderr().contains("could not be reached"),
        "{}",
        run.stderr()
    );
}

#[test]
fn each_invalid_config_value_is_refused_before_any_request() {
    let emulator = emulator_with(quick(Outcome::Success));
    let cases = [
        (
            json!({"account_id": "abc"}),
            r#"account_id must be a positive integer, got "abc""#,
        ),
        (
            json!({"account_id": 0}),
            "account_id must be a positive integer, got 0",
        ),
        (
            json!({"job_id": -1}),
            "job_id must be a positive integer, got -1",
        ),
        (json!({"job_id": null}), "job_id is required"),
        (
            json!({"#api_key": " "}),
            "#api_key must be a non-empty token",
        ),
        (json!({"#api_key": null}), "#api_key is required"),
        (json!({"cause": " "}), "cause must not be empty"),
        (
            json!({"retry_failed": true, "retry_failed_within": 0}),
            "retry_failed_within must be a number of minutes greater than 0 and at most 43200",
        ),
        (
            json!({"retry_failed": true, "retry_failed_within": -60}),
            "retry_failed_within must be a number of minutes",
        ),
        (
            json!({"retry_failed": true, "retry_failed_within": 1e12}),
            "retry_failed_within must be a number of minutes",
        ),
        (
            json!({"retry_failed": true, "retry_failed_within": "60"}),
            r#"retry_failed_within must be a number of minutes greater than 0 and at most 43200 (e.g. 60: only a run that failed within the last hour is resumed), got "60""#,
        ),
        (
            json!({"wait_for_result": "true"}),
            r#"wait_for_result must be true or false, got "true""#,
        ),
        (
            json!({"max_wait_time": 0}),
            "max_wait_time must be a number of minutes greater than 0",
        ),
        (json!({"max_wait_time": "an hour"}), r#"got "an hour""#),
        (
            json!({"dbt_cloud_url": "http://cloud.getdbt.com"}),
            "must use https://",
        ),
        (
            json!({"dbt_cloud_url": "https://cloud.getdbt.com/deploy/1"}),
            "dbt_cloud_url",
        ),
        (
            json!({"ignore_artifacts": 1}),
            "ignore_artifacts must be true or false, got 1",
        ),
        (json!({"debug": "no"}), "debug must be true or false"),
    ];
    for (extra, expected) in cases {
        let run = run_component(parameters(&emulator, extra.clone()));
        run.assert_code(1);
        assert!(run.stderr().contains(expected), "{extra}: {}", run.stderr());
        assert!(run.stdout().is_empty(), "{extra}: {}", run.stdout());
    }
    assert!(emulator.requests().is_empty(), "no request was made");
}

#[test]
fn missing_and_malformed_config_json_are_user_errors() {
    let run = run_component_with(None, &[]);
    run.assert_code(1);
    assert!(
        run.stderr().contains("config.json not found at"),
        "{}",
        run.stderr()
    );

    for (text, expected) in [
        ("{\"parameters\": {", "config.json is not valid JSON"),
        ("[1]", "config.json must be a JSON object"),
        ("{\"action\": \"run\"}", "config.json has no \"parameters\""),
    ] {
        let run = run_component_with(Some(text.to_owned()), &[]);
        run.assert_code(1);
        assert!(run.stderr().contains(expected), "{text}: {}", run.stderr());
    }
}

#[test]
fn the_token_appears_nowhere_even_at_trace_level() {
    for (outcome, code, extra) in [
        (
            Outcome::Success,
            0,
            json!({"wait_for_result": true, "debug": true}),
        ),
        (Outcome::Error, 1, json!({"wait_for_result": true})),
    ] {
        let emulator = emulator_with(quick(outcome));
        let config =
            json!({"parameters": parameters(&emulator, extra), "action": "run"}).to_string();
        let run = run_component_with(Some(config), &[("RUST_LOG", "trace")]);
        run.assert_code(code);
        let everything = format!("{}{}", run.stdout(), run.stderr());
        assert!(everything.contains("TRACE"), "trace logging was on");
        assert!(!everything.contains(TOKEN), "the token leaked");
        assert!(
            !everything.contains("T0pS3cr3t"),
            "part of the token leaked"
        );
        for table in ["dbt_cloud_trigger", "dbt_cloud_run"] {
            let csv = std::fs::read_to_string(run.data().join(format!("out/tables/{table}.csv")))
                .unwrap();
            assert!(!csv.contains("T0pS3cr3t"));
        }
    }
}

#[test]
fn kbc_datadir_and_kbc_configid_are_honoured() {
    let emulator = emulator_with(quick(Outcome::Success));
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"parameters": parameters(&emulator, json!({"dbt_cloud_url": format!("{}/api/v2/", emulator.base_url())}))});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let output = binary()
        .env("KBC_DATADIR", dir.path())
        .env("KBC_CONFIGID", "1234567")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("out/tables/dbt_cloud_trigger.csv.manifest")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["destination"],
        "in.c-dbt-cloud-job-trigger-1234567.dbt_cloud_trigger"
    );
}

#[test]
fn the_log_is_one_short_line_per_event_in_order() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    for line in &lines {
        // The closing line sums the whole job up: the steps' counts, artifacts, requests.
        let most = if line.contains(" Done: ") { 300 } else { 200 };
        assert!(line.len() <= most, "too long: {line}");
        assert!(!line.contains("{\""), "no API answer at info level: {line}");
        assert!(
            !line.contains(" DEBUG "),
            "no debug lines by default: {line}"
        );
    }
    let expected = [
        format!("Job {JOB} of account {ACCOUNT} at {}; waiting up to 60 minutes, then artifacts; cause \"Triggered from Keboola\"", emulator.base_url()),
        format!("Triggered run {run_id}: {}/deploy/", emulator.base_url()),
        format!("Wrote table dbt_cloud_trigger (run {run_id}, Queued)"),
        format!("Run {run_id}: "),
        format!("Wrote table dbt_cloud_run (run {run_id}, Success)"),
        format!("Downloading 7 artifacts of run {run_id}, 8 at a time"),
        "Downloaded 7 of 7 artifacts, 22.3 KB in".to_owned(),
        format!("Done: run {run_id} succeeded in "),
    ];
    let mut position = 0;
    for event in &expected {
        let found = lines[position..]
            .iter()
            .position(|l| l.contains(event.as_str()));
        let Some(offset) = found else {
            panic!("{event:?} not found in order in:\n{stdout}");
        };
        position += offset + 1;
    }
    assert!(stdout.contains("; 7 artifacts, 22.3 KB"), "{stdout}");
}

#[test]
fn debug_adds_request_lines_without_secrets() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run_id = emulator.next_run_id();
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "debug": true}),
    ));
    run.assert_code(0);
    let stdout = run.stdout();
    let request_line = stdout
        .lines()
        .find(|l| {
            l.contains(" DEBUG ")
                && l.contains(&format!(
                    "GET /api/v2/accounts/{ACCOUNT}/runs/{run_id}/ -> 200 in "
                ))
        })
        .unwrap_or_else(|| panic!("no request line in:\n{stdout}"));
    assert!(request_line.ends_with(" ms"), "{request_line}");
    assert!(stdout.contains(&format!(
        "POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/ -> 200 in "
    )));
    assert!(!stdout.contains(TOKEN));
}
