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
        run.stdout().contains("The wait ends after 0.1 minutes instead of max_wait_time's 60: the job's time limit config.json gives (runtime.process_timeout, 0.13 minutes) comes first"),
        "{}",
        run.stdout()
    );
    for expected in [
        "did not finish in the 0.",
        " minutes left before the job's time limit config.json gives (runtime.process_timeout, 0.13 minutes). It was cancelled",
    ] {
        assert!(run.stderr().contains(expected), "{}", run.stderr());
    }
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(
        run.table("dbt_cloud_run").1["status_humanized"],
        "Cancelled"
    );
}

/// Keboola's runner never passes a configuration's timeout to the container: the limit the
/// component keeps to is the one this repository deploys (a day), so a wait of 90 minutes is not
/// cut, and not warned about as if the limit were Keboola's default hour.
#[test]
fn the_deployed_limit_bounds_the_wait_not_keboolas_default_hour() {
    let emulator = emulator_with(job(Duration::from_millis(300), Outcome::Success));
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": 90, "ignore_artifacts": true}),
    ));
    run.assert_code(0);
    assert!(!run.stdout().contains("WARN"), "{}", run.stdout());
    assert!(
        !run.stdout().contains("instead of max_wait_time"),
        "{}",
        run.stdout()
    );
    let deployed =
        std::fs::read_to_string(Path::new(ROOT).join("component_config/processTimeout")).unwrap();
    assert_eq!(deployed.trim(), "86400");
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
    assert_eq!(
        properties,
        [
            "processTimeout",
            "shortDescription",
            "longDescription",
            "configurationDescription",
            "configurationSchema",
            "documentationUrl",
            "sourceCodeUrl",
            "licenseUrl",
            "logger",
            "uiOptions",
            "dataTypesConfiguration",
            "actions",
        ]
    );
    for (property, file) in &set {
        let text = std::fs::read_to_string(Path::new(ROOT).join(file))
            .unwrap_or_else(|e| panic!("{property} reads {file}: {e}"));
        assert!(!text.trim().is_empty(), "{file} is empty");
        if file.ends_with(".json") || ["actions", "uiOptions"].contains(&property.as_str()) {
            serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }
    assert!(component_config("processTimeout")
        .trim()
        .bytes()
        .all(|b| b.is_ascii_digit()));
    assert_eq!(
        serde_json::from_str::<Value>(&component_config("uiOptions.md")).unwrap(),
        serde_json::json!(["genericDockerUI"])
    );
    // The manifests carry every column's type: typed tables where the project has native types.
    assert_eq!(
        serde_json::from_str::<Value>(&component_config("dataTypesConfiguration.json")).unwrap(),
        serde_json::json!({"dataTypesSupport": "authoritative"})
    );
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

/// The properties script as Keboola's template has it: a missing or empty file is skipped, not
/// sent (an empty value would clear the portal's); with names, only those are set. Run against a
/// stand-in `docker` that records what it was asked.
#[test]
fn the_properties_script_skips_missing_and_empty_files_and_sets_what_it_is_asked() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = work.path().join("calls.txt");
    let docker = bin.join("docker");
    std::fs::write(
        &docker,
        // `docker run --rm -e U -e P IMAGE update-app-property VENDOR APP PROPERTY --value=..`
        format!(
            "#!/bin/sh\n[ \"$8\" = update-app-property ] && echo \"${{11}}\" >> {}\ntrue\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The repository's files, with one emptied and one missing.
    let config = work.path().join("component_config");
    std::fs::create_dir(&config).unwrap();
    for entry in std::fs::read_dir(Path::new(ROOT).join("component_config")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), config.join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(config.join("uiOptions.md"), "").unwrap();
    std::fs::remove_file(config.join("licenseUrl.md")).unwrap();
    let run = |args: &[&str]| {
        let _ = std::fs::remove_file(&calls);
        let output = std::process::Command::new(
            Path::new(ROOT).join("scripts/update_dev_portal_properties.sh"),
        )
        .args(args)
        .current_dir(work.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("KBC_DEVELOPERPORTAL_VENDOR", "kds-team")
        .env(
            "KBC_DEVELOPERPORTAL_APP",
            "kds-team.app-dbt-cloud-job-trigger",
        )
        .env("KBC_DEVELOPERPORTAL_USERNAME", "user")
        .env("KBC_DEVELOPERPORTAL_PASSWORD", "secret")
        .output()
        .unwrap();
        assert!(output.status.success(), "{output:?}");
        let set: Vec<String> = std::fs::read_to_string(&calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        (set, String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (set, said) = run(&[]);
    assert!(!set.contains(&"uiOptions".to_owned()), "{set:?}");
    assert!(!set.contains(&"licenseUrl".to_owned()), "{set:?}");
    assert!(
        said.contains("component_config/uiOptions.md is empty: uiOptions left as it is"),
        "{said}"
    );
    assert!(
        said.contains("component_config/licenseUrl.md not found: licenseUrl left as it is"),
        "{said}"
    );
    assert_eq!(set.len(), properties_set().len() - 2, "{set:?}");
    let (set, _) = run(&["processTimeout"]);
    assert_eq!(set, ["processTimeout"]);
}

/// A release tag is a version, with or without a leading `v`, as Keboola's deployment docs have
/// it; anything else is pushed but not released.
#[test]
fn the_deploy_releases_version_tags_with_or_without_v() {
    let deploy = std::fs::read_to_string(Path::new(ROOT).join("deploy.sh")).unwrap();
    let pattern = deploy
        .lines()
        .find_map(|line| line.strip_prefix("VERSION="))
        .unwrap()
        .trim_matches('\'');
    let released = |tag: &str| {
        std::process::Command::new("sh")
            .args(["-c", "echo \"$1\" | grep -q \"$2\"", "sh", tag, pattern])
            .status()
            .unwrap()
            .success()
    };
    for tag in ["1.2.3", "v1.2.3", "10.0.12"] {
        assert!(released(tag), "{tag}");
    }
    for tag in ["1.2", "latest", "v1.2.3-rc1", "main", "x1.2.3"] {
        assert!(!released(tag), "{tag}");
    }
    // The limit goes first: a release whose limit the portal refuses does not happen.
    let limit = deploy
        .find("update_dev_portal_properties.sh processTimeout")
        .unwrap();
    let release = deploy.find("portal update-app-repository").unwrap();
    assert!(limit < release);
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

/// The image run as the README once showed it: a data folder the container's user cannot
/// write. Nothing may be sent to dbt Cloud before the outputs are known to be writable, or the run
/// it starts is an orphan. (As root here, the component runs as `nobody`, for whom root's folders
/// are read-only; as another user, the folder is made read-only.)
#[test]
fn a_data_folder_the_container_cannot_write_is_exit_1_before_anything_is_triggered() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let emulator = emulator_with(quick(Outcome::Success));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    write_config(
        data,
        parameters(&emulator, json!({"wait_for_result": true})),
    );
    std::fs::create_dir_all(data.join("out/tables")).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(&data.join("config.json"), 0o644);
    let read_only = if root { 0o755 } else { 0o555 };
    for folder in [data.to_owned(), data.join("out"), data.join("out/tables")] {
        mode(&folder, read_only);
    }
    let mut command = component(data);
    if root {
        command.uid(65534).gid(65534);
    }
    let output = command.output().unwrap();
    for folder in [data.to_owned(), data.join("out"), data.join("out/tables")] {
        mode(&folder, 0o755);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "The data folder cannot be written where the job writes its scratch files ("
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(stderr.contains("Nothing was triggered."), "{stderr}");
    assert!(stderr.contains("docker run --user"), "{stderr}");
    assert!(
        emulator.requests().is_empty(),
        "nothing sent to dbt Cloud: {:?}",
        emulator.requests()
    );
}

/// What the form saves for each field left empty or emptied: `""` for text, `null` or `""` for
/// numbers, `[]` for lists, `{}` (or emptied fields) for objects. None of it may fail a job: an
/// optional key left empty is a key not set. (The URL is left out here: empty, it is the retiring
/// default, which `nightly.rs` serves locally.)
#[test]
fn every_form_field_left_empty_runs_the_job() {
    let schema: Value = serde_json::from_str(&component_config("configSchema.json")).unwrap();
    let properties = schema["properties"].as_object().unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let empties = |field: &Value| -> Vec<Value> {
        match field["type"].as_str().unwrap() {
            "string" => vec![json!("")],
            "integer" | "number" => vec![Value::Null, json!("")],
            "boolean" => vec![json!(false)],
            "array" => vec![json!([])],
            "object" => {
                let emptied: serde_json::Map<String, Value> = field["properties"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(key, inner)| {
                        let empty = match inner["type"].as_str().unwrap() {
                            "array" => json!([]),
                            "boolean" => Value::Null,
                            "string" => json!(""),
                            _ => Value::Null,
                        };
                        (key.clone(), empty)
                    })
                    .collect();
                vec![json!({}), Value::Object(emptied)]
            }
            _ => vec![Value::Null], // buttons
        }
    };
    let emulator = emulator_with(job(Duration::from_millis(300), Outcome::Success));
    let mut all_empty = json!({});
    for (key, field) in properties {
        if required.contains(&key.as_str()) || key == "dbt_cloud_url" {
            continue;
        }
        for empty in empties(field) {
            all_empty[key] = empty.clone();
            // Emptying the job id leaves the job to its name.
            let mut extra = json!({ key.as_str(): empty.clone() });
            if key == "job_id" {
                extra["job_name"] = json!("Nightly build");
            }
            let mut parameters = parameters(&emulator, extra);
            if key == "job_id" {
                parameters["job_id"] = empty.clone();
            }
            let run = run_component(parameters);
            assert_eq!(
                run.code(),
                0,
                "{key}: {empty}\n{}\n{}",
                run.stdout(),
                run.stderr()
            );
        }
    }
    // Everything empty at once, the job named.
    all_empty["job_name"] = json!("Nightly build");
    let mut parameters = parameters(&emulator, all_empty);
    parameters["job_id"] = json!("");
    run_component(parameters).assert_code(0);
    // A required field left empty is named, and nothing is sent.
    let before = emulator.requests().len();
    for key in required {
        let run = run_component(parameters_with_empty(&emulator, key));
        run.assert_code(1);
        assert!(
            run.stderr().starts_with(&format!("{key} is required")),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(emulator.requests().len(), before);
}

fn parameters_with_empty(emulator: &Emulator, key: &str) -> Value {
    let mut parameters = parameters(emulator, json!({}));
    parameters[key] = json!("");
    parameters
}
