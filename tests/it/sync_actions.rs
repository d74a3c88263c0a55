//! The UI's synchronous actions: one JSON document on stdout, nothing triggered, exit 1 with a
//! clear message on failure.

use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};
use serde_json::{json, Value};

fn action(emulator: &Emulator, action: &str, extra: Value) -> Run {
    let config = json!({"action": action, "parameters": parameters(emulator, extra)});
    run_component_with(Some(config.to_string()), &[])
}

/// Exactly one JSON document on stdout, and nothing on stderr.
fn answer(run: &Run) -> Value {
    run.assert_code(0);
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    let stdout = run.stdout();
    assert_eq!(stdout.trim().lines().count(), 1, "one line: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn assert_nothing_triggered(emulator: &Emulator) {
    assert!(
        emulator.requests().iter().all(|r| r.method == "GET"),
        "only reads"
    );
}

#[test]
fn test_connection_checks_url_token_account_and_job() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let started = Instant::now();
    let without_job = json!({"job_id": null, "max_wait_time": ""});
    let success = answer(&action(&emulator, "testConnection", without_job));
    assert_eq!(success["status"], "success");
    assert_eq!(
        success["message"],
        format!("Connected: the token reaches account {ACCOUNT}. No job was given to check.")
    );
    let success = answer(&action(&emulator, "testConnection", json!({})));
    assert_eq!(success["status"], "success");
    assert_eq!(
        success["message"],
        format!("Connected: the token reaches account {ACCOUNT}, job {JOB} and its runs.")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(emulator
        .requests()
        .iter()
        .any(|r| r.path.ends_with(&format!("/jobs/{JOB}/"))));
    assert_nothing_triggered(&emulator);

    for (extra, expected) in [
        (
            json!({"#api_key": "dbtc_wrong"}),
            "Step 2 of 5, the token, failed: dbt Cloud refused the API token (HTTP 401: Invalid token.)",
        ),
        (
            json!({"account_id": 999}),
            "Step 3 of 5, the account, failed: dbt Cloud has no jobs in account 999",
        ),
        (
            json!({"job_id": 4242}),
            "Step 4 of 5, the job, failed: dbt Cloud has no job 4242 in account",
        ),
        (
            json!({"dbt_cloud_url": "http://example.com"}),
            "dbt_cloud_url (http://example.com) is not usable",
        ),
    ] {
        let run = action(&emulator, "testConnection", extra.clone());
        run.assert_code(1);
        assert!(run.stdout().is_empty(), "{extra}: {}", run.stdout());
        assert!(run.stderr().contains(expected), "{extra}: {}", run.stderr());
    }
    let run = action(&emulator, "testConnection", json!({"account_id": 999}));
    assert!(
        run.stderr()
            .contains("account_id 999 is wrong, or the token is not one of that account's"),
        "{}",
        run.stderr()
    );
}

#[test]
fn test_connection_names_the_step_that_failed() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let denied = json!({"status": {"code": 403, "is_success": false, "user_message": "account_access_denied", "developer_message": ""}, "data": null});
    // A 403 whose cause the request without the token cannot tell (dbt Cloud's answer to it
    // says neither): the token's permissions or the allow-list.
    emulator.inject(Endpoint::ListJobs, [Fault::Json(403, denied.clone())]);
    emulator.inject(Endpoint::GetAccount, [Fault::HtmlPage(503)]);
    let run = action(&emulator, "testConnection", json!({}));
    run.assert_code(1);
    assert!(
        run.stderr()
            .starts_with("Step 3 of 5, the account, failed: dbt Cloud denied access")
            && run.stderr().contains("HTTP 403: account_access_denied")
            && run.stderr().contains("IP allow-list"),
        "{}",
        run.stderr()
    );
    emulator.inject(Endpoint::ListRuns, [Fault::Json(403, denied)]);
    let run = action(&emulator, "testConnection", json!({}));
    run.assert_code(1);
    assert!(
        run.stderr()
            .starts_with("Step 5 of 5, reading the job's runs, failed:"),
        "{}",
        run.stderr()
    );
    // Not dbt Cloud at that URL: a web page where the API should answer.
    emulator.inject(Endpoint::ListJobs, [Fault::HtmlPage(200)]);
    let run = action(&emulator, "testConnection", json!({}));
    run.assert_code(1);
    assert!(
        run.stderr()
            .starts_with("Step 1 of 5, dbt_cloud_url answering as dbt Cloud's API, failed:"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_page_url_pasted_from_dbt_cloud_supplies_the_ids() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let page = format!(
        "{}/deploy/{ACCOUNT}/projects/270542/jobs/{JOB}",
        emulator.base_url()
    );
    let config = json!({"action": "testConnection", "parameters": {"#api_key": TOKEN, "dbt_cloud_url": page}});
    let run = run_component_with(Some(config.to_string()), &[]);
    let success = answer(&run);
    assert_eq!(
        success["message"],
        format!("Connected: the token reaches account {ACCOUNT}, job {JOB} and its runs.")
    );
    let run = run_component(json!({"#api_key": TOKEN, "dbt_cloud_url": page}));
    run.assert_code(0);
    assert!(
        run.stdout().contains(&format!(
            "INFO  account_id {ACCOUNT} is taken from dbt_cloud_url"
        )),
        "{}",
        run.stdout()
    );
    let run = run_component(json!({"#api_key": TOKEN, "dbt_cloud_url": page, "job_id": 1}));
    run.assert_code(1);
    assert!(
        run.stderr().contains(&format!(
            "job_id is 1, but dbt_cloud_url is a page of job_id {JOB}"
        )),
        "{}",
        run.stderr()
    );
}

#[test]
fn list_jobs_pages_through_every_job_sorted_by_label() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB).named("Nightly build", "Production"));
    for i in 0..140u64 {
        let environment = if i % 2 == 0 { "Production" } else { "Staging" };
        emulator.add_job(Job::new(ACCOUNT, 1000 + i).named(&format!("Job {i:03}"), environment));
    }
    emulator.add_job(Job::new(ACCOUNT + 1, 5).named("Another account's job", "Production"));
    let options = answer(&action(&emulator, "listJobs", json!({"job_id": null})));
    let options = options.as_array().unwrap();
    assert_eq!(options.len(), 141);
    assert_eq!(
        options[0],
        json!({"value": "1000", "label": "Job 000 (1000) · Production"})
    );
    assert_eq!(
        options[1],
        json!({"value": "1001", "label": "Job 001 (1001) · Staging"})
    );
    assert_eq!(
        options[140],
        json!({"value": JOB.to_string(), "label": format!("Nightly build ({JOB}) · Production")})
    );
    let labels: Vec<&str> = options
        .iter()
        .map(|o| o["label"].as_str().unwrap())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort_by_key(|l| l.to_lowercase());
    assert_eq!(labels, sorted);
    let pages: Vec<String> = emulator
        .requests()
        .iter()
        .filter_map(|r| r.query.clone())
        .collect();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[1].contains("offset=100"), "{pages:?}");
    assert_nothing_triggered(&emulator);
}

#[test]
fn list_recent_runs_shows_the_last_ten_as_a_markdown_table() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    for ago in 0..12u64 {
        emulator.add_past_run(
            JOB,
            Timeline::lasting(Duration::from_secs(65)),
            Outcome::Success,
            Duration::from_secs(3600 - ago * 60),
        );
    }
    let newest = emulator.next_run_id() - 1;
    let answer = answer(&action(&emulator, "listRecentRuns", json!({})));
    assert_eq!(answer["type"], "table");
    assert_eq!(answer["status"], "success");
    let message = answer["message"].as_str().unwrap();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines[0], "| Run | Status | Started | Duration | Cause |");
    assert_eq!(lines.len(), 2 + 10, "{message}");
    // The emulator's links are plain http, which the table shows as text: only https links are
    // links (see the unit tests of `sync_actions`).
    assert!(
        lines[2].starts_with(&format!("| {newest} | Success | ")),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].contains("| Success |")
            && lines[2].contains("| 00:01:05 |")
            && lines[2].ends_with("| scheduled |"),
        "{}",
        lines[2]
    );
    assert_nothing_triggered(&emulator);

    let run = action(&emulator, "listRecentRuns", json!({"job_id": null}));
    run.assert_code(1);
    assert!(
        run.stderr().contains("job_id is required"),
        "{}",
        run.stderr()
    );
}

#[test]
fn an_unknown_action_names_the_known_ones() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let run = action(&emulator, "getJobs", json!({}));
    run.assert_code(1);
    assert!(
        run.stderr()
            .contains("the known actions are run, testConnection, listJobs, listRecentRuns"),
        "{}",
        run.stderr()
    );
    assert!(emulator.requests().is_empty());
}

#[test]
fn list_jobs_ends_when_the_pages_never_get_shorter() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    // A server that ignores the offset: the same full page, however far one reads.
    let jobs: Vec<Value> = (1..=100u64)
        .map(|id| json!({"id": id, "name": format!("job {id}"), "environment": {"name": "Production"}}))
        .collect();
    let page = json!({
        "status": {"code": 200, "is_success": true, "user_message": "Success!"},
        "data": jobs,
        "extra": {"pagination": {"count": 100, "total_count": 1_000_000}},
    });
    emulator.inject(
        dbt_cloud_emulator::Endpoint::ListJobs,
        std::iter::repeat_n(dbt_cloud_emulator::Fault::Json(200, page), 1000),
    );
    let options = answer(&action(&emulator, "listJobs", json!({})));
    let options = options.as_array().unwrap();
    assert_eq!(options.len(), 100 + 1, "every job once, and a note");
    assert_eq!(options[100]["value"], "");
    assert!(
        options[100]["label"]
            .as_str()
            .unwrap()
            .contains("sent a page of jobs again after 100"),
        "{}",
        options[100]
    );
    assert_eq!(emulator.requests().len(), 2);
}

/// A configuration that names its job rather than giving its id: both buttons find it.
#[test]
fn the_buttons_find_a_job_by_its_name() {
    let emulator = emulator_with(quick(Outcome::Success).named("Nightly build", "Production"));
    emulator.add_run_by_another_client(JOB, "scheduled", Duration::from_secs(30));
    let by_name = |action_name: &str| {
        let mut parameters = parameters(&emulator, json!({"job_name": "Nightly build"}));
        parameters.as_object_mut().unwrap().remove("job_id");
        let config = json!({"action": action_name, "parameters": parameters});
        answer(&run_component_with(Some(config.to_string()), &[]))
    };
    assert_eq!(
        by_name("testConnection")["message"],
        format!("Connected: the token reaches account {ACCOUNT}, job {JOB} and its runs.")
    );
    let table = by_name("listRecentRuns");
    assert!(
        table["message"].as_str().unwrap().contains("| scheduled |"),
        "{table}"
    );
    assert_nothing_triggered(&emulator);
}

/// The job list keeps what it read: a page that fails after the first leaves the pages before it
/// listed with a note, and a `total_count` smaller than the account's jobs does not end the list.
#[test]
fn list_jobs_keeps_the_pages_it_read_and_reads_past_an_understated_total() {
    let accounts_jobs = |emulator: &Emulator| {
        for i in 0..140u64 {
            emulator
                .add_job(Job::new(ACCOUNT, 1000 + i).named(&format!("Job {i:03}"), "Production"));
        }
    };
    let emulator = emulator_with(Job::new(ACCOUNT, JOB).named("Nightly build", "Production"));
    accounts_jobs(&emulator);
    emulator.inject_where(
        Endpoint::ListJobs,
        ("offset", "100"),
        std::iter::repeat_n(Fault::Status(500), 100),
    );
    let options = answer(&action(&emulator, "listJobs", json!({})));
    let options = options.as_array().unwrap();
    assert_eq!(options.len(), 100 + 1, "the first page, and a note");
    let note = options[100]["label"].as_str().unwrap();
    assert!(
        note.starts_with("(dbt Cloud stopped answering after 100 jobs ("),
        "{note}"
    );

    let emulator = emulator_with(Job::new(ACCOUNT, JOB).named("Nightly build", "Production"));
    accounts_jobs(&emulator);
    let jobs: Vec<Value> = (0..100u64)
        .map(|i| json!({"id": 1000 + i, "name": format!("Job {i:03}"), "environment": {"name": "Production"}}))
        .collect();
    emulator.inject_where(
        Endpoint::ListJobs,
        ("offset", "0"),
        [Fault::Json(
            200,
            json!({"status": {"code": 200, "is_success": true}, "data": jobs,
                   "extra": {"pagination": {"count": 100, "total_count": 100}}}),
        )],
    );
    let options = answer(&action(&emulator, "listJobs", json!({})));
    assert_eq!(
        options.as_array().unwrap().len(),
        141,
        "every job: the 140 and the nightly build"
    );
}

/// dbt Cloud may echo the token in any string it sends back: every sync action's document is
/// masked as the job's tables and log are, whatever field the string is in.
#[test]
fn every_sync_action_masks_a_token_dbt_cloud_echoes() {
    let emulator = emulator_with(
        Job::new(ACCOUNT, JOB).named(&format!("Nightly {TOKEN}"), &format!("Prod {TOKEN}")),
    );
    // A name long enough to be shortened for the dropdown, the token across the cut.
    let long = format!("{}{TOKEN}", "n".repeat(1_000 - 12));
    emulator.add_job(Job::new(ACCOUNT, JOB + 1).named(&long, "Production"));
    let options = answer(&action(&emulator, "listJobs", json!({})));
    let text = options.to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains(&TOKEN[..12]),
        "{text}"
    );
    assert!(
        text.contains(&format!("Nightly *** ({JOB}) · Prod ***")),
        "{text}"
    );

    let run = json!({
        "id": 5, "account_id": ACCOUNT, "job_definition_id": JOB, "status": 10,
        "href": format!("https://ab123.us1.dbt.com/deploy/{ACCOUNT}/runs/5/{TOKEN}"),
        "trigger": {"cause": format!("Triggered by {TOKEN}")},
        "started_at": format!("{TOKEN}"), "duration": "00:01:05",
    });
    let runs = json!({
        "status": {"code": 200, "is_success": true, "user_message": "Success!"},
        "data": [run],
    });
    emulator.inject(Endpoint::ListRuns, [Fault::Json(200, runs.clone())]);
    let table = answer(&action(&emulator, "listRecentRuns", json!({})));
    let text = table.to_string();
    // Not even escaped for markdown (`dbtc\\_T0pS3cr3t...`).
    assert!(!text.contains(&TOKEN[5..14]), "{text}");
    assert!(
        text.contains("(https://ab123.us1.dbt.com/deploy/")
            && text.contains("Triggered by \\\\*\\\\*\\\\*"),
        "{text}"
    );

    emulator.inject(Endpoint::ListRuns, [Fault::Json(200, runs)]);
    let connected = answer(&action(&emulator, "testConnection", json!({})));
    assert!(
        !connected.to_string().contains(&TOKEN[5..14]),
        "{connected}"
    );
}

/// A job's name with a lone surrogate escape (`\udcfc`, Python's for an undecodable byte) is
/// one odd character in the dropdown, not a list that cannot be read.
#[test]
fn list_jobs_reads_a_lone_surrogate_escape_as_one_odd_character() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB).named("Nightly LONE_LOW", "Production"));
    emulator.add_job(Job::new(ACCOUNT, JOB + 1).named("Hourly PAIR", "Production"));
    emulator.rewrite_answers("LONE_LOW", "\\udcfc");
    emulator.rewrite_answers("PAIR", "\\ud83d\\ude00");
    let options = answer(&action(&emulator, "listJobs", json!({})));
    assert_eq!(
        options,
        json!([
            {"value": (JOB + 1).to_string(), "label": format!("Hourly 😀 ({}) · Production", JOB + 1)},
            {"value": JOB.to_string(), "label": format!("Nightly \u{fffd} ({JOB}) · Production")},
        ])
    );
}

/// dbt Labs documents that the account asked for without a token answers "Authentication
/// credentials were not provided." when the address may reach the account, and "Forbidden:
/// Access denied" when an IP allow-list blocks it: a refused token is told from a refused
/// address with that one request.
#[test]
fn test_connection_tells_an_ip_allow_list_from_a_refused_token() {
    let tokenless = |emulator: &Emulator| {
        emulator
            .requests_to("GET", &format!("/api/v2/accounts/{ACCOUNT}/"))
            .iter()
            .filter(|r| r.header("authorization").is_none())
            .count()
    };
    let emulator = Emulator::start();
    emulator.add_account(Account::new(ACCOUNT).behind_an_ip_allow_list(), &[TOKEN]);
    emulator.add_job(Job::new(ACCOUNT, JOB));
    let run = action(&emulator, "testConnection", json!({}));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with(
            "Step 3 of 5, the account, failed: dbt Cloud refuses this address (IP allow-list)"
        ) && !stderr.contains("the token is refused"),
        "{stderr}"
    );
    assert_eq!(tokenless(&emulator), 1, "one request without the token");

    // The address may reach the account: the token is what dbt Cloud refuses, be it a 401
    // (which says so) or a 403.
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let wrong = action(
        &emulator,
        "testConnection",
        json!({"#api_key": "dbtc_not_this_account_0"}),
    );
    let denied = json!({"status": {"code": 403, "is_success": false, "user_message": "Forbidden: Access denied", "developer_message": ""}, "data": null});
    emulator.inject(Endpoint::ListJobs, [Fault::Json(403, denied)]);
    let forbidden = action(&emulator, "testConnection", json!({}));
    for (run, said) in [
        (
            wrong,
            "dbt Cloud refused the API token (HTTP 401: Invalid token.)",
        ),
        (forbidden, "the token is refused"),
    ] {
        run.assert_code(1);
        let stderr = run.stderr();
        assert!(
            stderr.starts_with("Step 2 of 5, the token, failed:")
                && stderr.contains(said)
                && !stderr.contains("refuses this address"),
            "{stderr}"
        );
    }
    assert_eq!(tokenless(&emulator), 2);
}
