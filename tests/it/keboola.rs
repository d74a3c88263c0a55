//! What Keboola's platform asks beyond the data folder: live logs on stdout, a job timeout that
//! kills without warning, keys the form saves that the parser does not need, and the files the
//! Developer Portal reads.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run_with_root(root: Value) -> Run {
    run_component_with(Some(root.to_string()), &[])
}

#[test]
fn the_log_streams_on_stdout_while_the_job_runs_and_the_error_comes_on_stderr() {
    let emulator = emulator_with(job(Duration::from_secs(4), Outcome::Error));
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        parameters(
            &emulator,
            json!({"wait_for_result": true, "ignore_artifacts": true}),
        ),
    );
    let began = Instant::now();
    let mut child = component(dir.path()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first_seen = began.elapsed();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first line came only when the job ended: {first}"
    );
    assert!(first.contains("INFO"), "{first}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        first_seen < Duration::from_secs(3),
        "the first line took {first_seen:?}"
    );
    // Keboola shows stdout as info events as they come, and stderr as one error event at the
    // end: the log never goes to stderr, the verdict always does.
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("dbt Cloud run "), "{stderr}");
    assert!(!stderr.contains(" INFO "), "{stderr}");
    assert!(rest.contains("Wrote table dbt_cloud_run"), "{rest}");
}

#[test]
fn the_wait_ends_before_keboolas_job_timeout_with_the_run_cancelled_and_recorded() {
    let emulator = emulator_with(job(Duration::from_secs(3600), Outcome::Success));
    let began = Instant::now();
    // Eight seconds of job timeout: the wait ends after six (a quarter is kept back).
    let run = run_with_root(json!({
        "parameters": parameters(
            &emulator,
            json!({"wait_for_result": true, "max_wait_time": 60, "cancel_on_timeout": true}),
        ),
        "runtime": {"process_timeout": 8},
    }));
    let took = began.elapsed();
    run.assert_code(1);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(took >= Duration::from_secs(5), "took {took:?}");
    assert!(
        run.stdout().contains(
            "Keboola ends this job at its process_timeout of 0.13 minutes: the wait ends after 0."
        ),
        "{}",
        run.stdout()
    );
    for expected in [
        "did not finish in the 0.",
        " minutes left before Keboola's job timeout (process_timeout, 0.13 minutes). It was cancelled",
    ] {
        assert!(run.stderr().contains(expected), "{}", run.stderr());
    }
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(
        run.table("dbt_cloud_run").1["status_humanized"],
        "Cancelled"
    );
}

#[test]
fn a_wait_past_the_default_job_timeout_is_warned_about() {
    let emulator = emulator_with(job(Duration::from_millis(300), Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": 90, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert!(
        run.stdout().contains(
            "WARN  max_wait_time (90 minutes) may outlast Keboola's default job timeout of 60 minutes, which kills the job before the run is cancelled or recorded: keep it under 58"
        ),
        "{}",
        run.stdout()
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": 30, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert!(!run.stdout().contains("WARN"), "{}", run.stdout());
}

#[test]
fn keys_the_form_saves_are_ignored_and_a_typo_is_warned_about_not_fatal() {
    let emulator = emulator_with(job(Duration::from_millis(300), Outcome::Success));
    // The form's buttons save null (or whatever an old form version saved): not a word.
    let run = run_component(parameters(
        &emulator,
        json!({"test_connection": null, "recent_runs": {}}),
    ));
    run.assert_code(0);
    assert!(!run.stdout().contains("WARN"), "{}", run.stdout());
    assert_eq!(count(&emulator, "POST", "/run/"), 1);
    // A typo: the job runs with the default, and the log says what was meant.
    let run = run_component(parameters(&emulator, json!({"max_wait_tme": 5})));
    run.assert_code(0);
    assert!(
        run.stdout().contains(
            "WARN  parameters has an unknown key \"max_wait_tme\", which is ignored: did you mean max_wait_time?"
        ),
        "{}",
        run.stdout()
    );
    assert_eq!(count(&emulator, "POST", "/run/"), 2);
}

// ---- The Developer Portal's files

fn component_config(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join("component_config").join(name))
        .unwrap_or_else(|e| panic!("component_config/{name}: {e}"))
}

/// `update_property APP PROPERTY FILE` lines of the properties script, as (property, file).
fn properties_set() -> Vec<(String, String)> {
    let script =
        std::fs::read_to_string(Path::new(ROOT).join("scripts/update_dev_portal_properties.sh"))
            .unwrap();
    script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("update_property "))
        .map(|rest| {
            let words: Vec<&str> = rest.split('"').filter(|w| !w.trim().is_empty()).collect();
            assert_eq!(words.len(), 2, "update_property PROPERTY FILE: {rest}");
            (words[0].to_owned(), words[1].to_owned())
        })
        .collect()
}

#[test]
fn every_property_the_deploy_sets_has_its_file_and_every_file_its_property() {
    let set = properties_set();
    let properties: Vec<&str> = set.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "shortDescription",
        "longDescription",
        "configurationDescription",
        "configurationSchema",
        "documentationUrl",
        "sourceCodeUrl",
        "licenseUrl",
        "logger",
        "stackParameters",
        "actions",
    ] {
        assert!(properties.contains(&expected), "{expected} is not set");
    }
    for (property, file) in &set {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file))
            .unwrap_or_else(|e| panic!("{property} reads {file}: {e}"));
        assert!(!text.trim().is_empty(), "{file} is empty");
        if file.ends_with(".json") || property == "actions" {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    let files: Vec<&str> = set.iter().map(|(_, f)| f.as_str()).collect();
    for entry in std::fs::read_dir(Path::new(ROOT).join("component_config")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            continue; // sample-config
        }
        let file = format!("component_config/{}", entry.file_name().to_string_lossy());
        assert!(files.contains(&file.as_str()), "{file} is never deployed");
    }
    // The deploy runs the properties script, and the workflow runs the deploy on a tag.
    let deploy = std::fs::read_to_string(Path::new(ROOT).join("deploy.sh")).unwrap();
    assert!(deploy.contains("update-app-repository"), "{deploy}");
    assert!(
        deploy.contains("scripts/update_dev_portal_properties.sh"),
        "{deploy}"
    );
    assert!(
        !deploy.contains("KBC_DEVELOPERPORTAL_PASSWORD="),
        "no credentials in the repository"
    );
    let workflow =
        std::fs::read_to_string(Path::new(ROOT).join(".github/workflows/deploy.yml")).unwrap();
    assert!(workflow.contains("tags:"), "{workflow}");
    assert!(workflow.contains("./deploy.sh"), "{workflow}");
    assert!(
        workflow.contains("${{ secrets.KBC_DEVELOPERPORTAL_PASSWORD }}"),
        "{workflow}"
    );
    for script in ["deploy.sh", "scripts/update_dev_portal_properties.sh"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(Path::new(ROOT).join(script))
                .unwrap()
                .permissions(),
        );
        assert!(mode & 0o111 != 0, "{script} is not executable");
    }
}

#[test]
fn the_portal_registers_every_sync_action_the_binary_answers() {
    let registered: Vec<String> = serde_json::from_str(&component_config("actions.md")).unwrap();
    let answered: Vec<&str> = dbt_cloud_job_trigger::config::ACTIONS
        .iter()
        .copied()
        .filter(|action| *action != "run")
        .collect();
    assert_eq!(registered, answered);
    // And the form calls only registered ones.
    let schema: Value = serde_json::from_str(&component_config("configSchema.json")).unwrap();
    let mut called: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|field| field["options"]["async"]["action"].as_str())
        .collect();
    called.sort();
    called.dedup();
    for action in called {
        assert!(
            registered.iter().any(|r| r == action),
            "{action} is not registered"
        );
    }
}

#[test]
fn the_logger_is_the_standard_one_and_the_descriptions_keep_keboolas_rules() {
    assert_eq!(component_config("logger").trim(), "standard");
    for line in component_config("configuration_description.md").lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("### ") || line.starts_with("#### "),
                "only ### and #### headers: {line}"
            );
        }
    }
    let short = component_config("component_short_description.md");
    assert!(short.trim().lines().count() == 1, "{short}");
    assert!(short.contains("dbt"), "{short}");
    for url in ["documentationUrl.md", "sourceCodeUrl.md", "licenseUrl.md"] {
        let text = component_config(url);
        assert!(text.trim().starts_with("https://"), "{url}: {text}");
        assert_eq!(text.trim().lines().count(), 1, "{url}");
    }
    // The three links follow Cargo.toml's repository, and the licence is there.
    let cargo = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let repository = cargo
        .lines()
        .find_map(|line| line.strip_prefix("repository = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(component_config("sourceCodeUrl.md").trim(), repository);
    assert_eq!(
        component_config("documentationUrl.md").trim(),
        format!("{repository}/blob/main/README.md")
    );
    assert_eq!(
        component_config("licenseUrl.md").trim(),
        format!("{repository}/blob/main/LICENSE")
    );
    assert!(std::fs::read_to_string(Path::new(ROOT).join("LICENSE"))
        .unwrap()
        .starts_with("MIT License"));
    let long = component_config("component_long_description.md");
    assert!(!long.contains("also when the run failed"), "{long}");
}
