//! A flaky network and a hostile server: one test per fault kind, each asserting the exit code,
//! the tables, the artifact bytes, and what the emulator saw (runs created, tokens, cancels).

use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{standard_artifacts, Artifact, Endpoint, Fault};
use serde_json::json;

fn waiting() -> serde_json::Value {
    json!({"wait_for_result": true})
}

fn assert_token_on_every_request(emulator: &Emulator) {
    for request in emulator.requests() {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Token {TOKEN}").as_str()),
            "{}",
            request.path
        );
    }
}

#[test]
fn a_burst_of_5xx_html_and_429_on_get_run_is_survived() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        [
            Fault::Status(500),
            Fault::Status(502),
            Fault::HtmlPage(502),
            Fault::Status(503),
            Fault::TooManyRequests {
                retry_after: Some(1),
            },
            Fault::Status(504),
            Fault::TooManyRequests { retry_after: None },
            Fault::Delay(Duration::from_millis(1500)),
            Fault::Reset,
        ],
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
    assert_artifacts(&run, &standard_artifacts());
    let stdout = run.stdout();
    assert!(stdout.contains("HTTP 502: Bad gateway."), "{stdout}");
    assert!(stdout.contains("rate limit"), "{stdout}");
    assert!(
        stdout.contains("did not answer in time"),
        "the delay past the timeout: {stdout}"
    );
    assert!(
        count(&emulator, "GET", "/runs/70403103000/") >= 10,
        "every fault was met and retried"
    );
    assert_eq!(emulator.runs_created(), 1);
    assert_token_on_every_request(&emulator);
}

#[test]
fn retry_after_is_honoured() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        [Fault::TooManyRequests {
            retry_after: Some(2),
        }],
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert!(
        run.stdout().contains("(HTTP 429, Retry-After 2 s)"),
        "{}",
        run.stdout()
    );
    let polls: Vec<_> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/runs/70403103000/"))
        .collect();
    assert!(
        polls[1].at - polls[0].at >= Duration::from_millis(1950),
        "the next look waited for Retry-After"
    );
}

#[test]
fn a_cut_body_and_a_500_on_an_artifact_leave_byte_identical_files() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::DownloadArtifact,
        [Fault::CutBody, Fault::Status(500), Fault::Reset],
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert_artifacts(&run, &standard_artifacts());
    assert!(
        run.stdout().contains("of run 70403103000 broke off"),
        "the short body was noticed: {}",
        run.stdout()
    );
    let downloads = emulator
        .requests()
        .iter()
        .filter(|r| r.path.contains("/artifacts/") && !r.path.ends_with('/'))
        .count();
    assert_eq!(downloads, standard_artifacts().len() + 3);
}

/// dbt Cloud stores the cause trimmed: a lost answer's run is still found by it, and the job
/// is not started twice.
#[test]
fn a_lost_trigger_answer_of_a_cause_stored_trimmed_creates_exactly_one_run() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run_id = emulator.next_run_id();
    emulator.inject(Endpoint::Trigger, [Fault::CreateThenDrop]);
    let run = run_component(parameters(&emulator, json!({"cause": " nightly  "})));
    run.assert_code(0);
    assert_eq!(emulator.runs_created(), 1, "{}", run.stdout());
    assert_eq!(count(&emulator, "POST", "/run/"), 1, "not sent again");
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], run_id.to_string());
}

#[test]
fn a_lost_trigger_answer_creates_exactly_one_run() {
    for fault in [
        Fault::CreateThenDrop,
        Fault::Delay(Duration::from_millis(1500)),
    ] {
        let emulator = emulator_with(quick(Outcome::Success));
        let run_id = emulator.next_run_id();
        emulator.inject(Endpoint::Trigger, [fault.clone()]);
        let run = run_component(parameters(
            &emulator,
            json!({"wait_for_result": true, "cause": "lost answer"}),
        ));
        run.assert_code(0);
        assert_eq!(emulator.runs_created(), 1, "{fault:?}");
        assert_eq!(
            count(&emulator, "POST", "/run/"),
            1,
            "not sent again: {fault:?}"
        );
        assert_eq!(run.table("dbt_cloud_trigger").1["id"], run_id.to_string());
        assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
        assert!(
            run.stdout()
                .contains(&format!("it started run {run_id}: adopting it")),
            "{}",
            run.stdout()
        );
    }
}

#[test]
fn a_trigger_refused_with_5xx_or_reset_is_sent_again_once_no_run_exists() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::Trigger,
        [Fault::Status(503), Fault::Reset, Fault::HtmlPage(502)],
    );
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(0);
    assert_eq!(emulator.runs_created(), 1);
    assert_eq!(count(&emulator, "POST", "/run/"), 4);
    let lookups = emulator
        .requests()
        .iter()
        .filter(|r| {
            r.path.ends_with("/runs/") && r.query.as_deref().is_some_and(|q| q.contains("limit=20"))
        })
        .count();
    assert_eq!(
        lookups, 3,
        "before each resend, the job's runs were searched"
    );
}

#[test]
fn a_run_of_someone_else_is_not_adopted() {
    let emulator = emulator_with(quick(Outcome::Success));
    // Another client triggers the job with another cause; our trigger's answer is then lost
    // before the run is created.
    let other = reqwest::blocking::Client::new()
        .post(format!(
            "{}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/",
            emulator.base_url()
        ))
        .header("Authorization", format!("Token {TOKEN}"))
        .body(r#"{"cause": "someone else"}"#)
        .send()
        .unwrap();
    assert!(other.status().is_success());
    emulator.inject(Endpoint::Trigger, [Fault::Reset]);
    let run = run_component(parameters(&emulator, json!({"cause": "ours"})));
    run.assert_code(0);
    assert_eq!(emulator.runs_created(), 2);
    let trigger = run.table("dbt_cloud_trigger").1;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&trigger["trigger"]).unwrap()["cause"],
        "ours"
    );
}

#[test]
fn hostile_artifact_paths_are_refused_and_nothing_is_written_outside() {
    let marker = format!("dbt-trigger-evil-{}", std::process::id());
    let absolute = format!("/tmp/{marker}");
    let hostile = [
        absolute.as_str(),
        "../outside.txt",
        "a/../../escaped.txt",
        "..\\windows.txt",
        "C:/drive.txt",
        "a//b.txt",
        "x/\0/nul.txt",
    ];
    let mut artifacts: Vec<Artifact> = hostile
        .iter()
        .map(|p| Artifact::new(*p, b"evil".to_vec()))
        .collect();
    artifacts.push(Artifact::new("run_results.json", b"{}".to_vec()));
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert!(!std::path::Path::new(&absolute).exists());
    let parent = run.data().parent().unwrap();
    for escaped in ["outside.txt", "escaped.txt"] {
        assert!(!parent.join(escaped).exists() && !run.data().join(escaped).exists());
    }
    let artifact_files = files_under(&run.artifacts_dir());
    assert_eq!(artifact_files, ["run_results.json"]);
    assert!(files_under(run.data())
        .iter()
        .all(|f| f.starts_with("artifacts/out/current/")
            || f.starts_with("out/tables/")
            || f == "config.json"));
    let stdout = run.stdout();
    assert_eq!(
        stdout.matches("Skipped artifact").count(),
        hostile.len(),
        "{stdout}"
    );
    assert!(
        emulator
            .requests()
            .iter()
            .all(|r| !r.path.contains("evil") && !r.path.contains("outside")),
        "never even requested"
    );
}

#[test]
fn a_redirected_download_gets_no_token_on_the_other_host() {
    let manifest = Artifact::new(
        "manifest.json",
        (0..=255u8).cycle().take(10_000).collect::<Vec<u8>>(),
    );
    let emulator = emulator_with(quick(Outcome::Success).artifacts(vec![manifest.clone()]));
    let storage = Emulator::start();
    storage.serve_file("bucket/manifest.json", manifest.bytes());
    // Another host: `localhost` rather than `127.0.0.1`, and another port.
    let location = format!(
        "{}/files/bucket/manifest.json",
        storage.base_url().replace("127.0.0.1", "localhost")
    );
    emulator.inject(Endpoint::DownloadArtifact, [Fault::Redirect(location)]);
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert_artifacts(&run, &[manifest]);
    let redirected = storage.requests();
    assert_eq!(redirected.len(), 1);
    assert_eq!(
        redirected[0].header("authorization"),
        None,
        "the token stayed home"
    );
    assert_token_on_every_request(&emulator);
}

/// Two artifacts; the first meets `faults` on every attempt. With `artifacts_must_succeed` the
/// job fails naming it; without, it is a warning. The other artifact is saved either way, and
/// no partial file of the first is left.
fn assert_failing_artifact_is_handled(faults: Vec<Fault>, expected_reason: &str) {
    let artifacts = vec![
        Artifact::new("manifest.json", b"{}".to_vec()),
        Artifact::new("catalog.json", b"{}".to_vec()),
    ];
    for (must_succeed, code) in [(true, 1), (false, 0)] {
        let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
        emulator.inject(Endpoint::DownloadArtifact, faults.clone());
        let run = run_component(parameters(
            &emulator,
            json!({
                // One at a time, so that the queued faults meet the first artifact only.
                "wait_for_result": true, "artifacts_must_succeed": must_succeed, "artifact_concurrency": 1
            }),
        ));
        run.assert_code(code);
        assert!(
            !run.artifacts_dir().join("manifest.json").exists(),
            "no partial file"
        );
        assert_eq!(
            std::fs::read(run.artifacts_dir().join("catalog.json")).unwrap(),
            b"{}"
        );
        let output = format!("{}{}", run.stdout(), run.stderr());
        assert!(output.contains(expected_reason), "{output}");
        if must_succeed {
            let expected =
                "1 of 2 artifacts of run 70403103000 could not be downloaded: manifest.json";
            assert!(run.stderr().contains(expected), "{}", run.stderr());
        } else {
            assert!(
                run.stdout().contains("(artifacts_must_succeed is false)"),
                "{}",
                run.stdout()
            );
        }
    }
}

#[test]
fn a_redirect_to_plain_http_elsewhere_is_refused_and_fails_the_artifact() {
    let redirect = Fault::Redirect("http://example.com/manifest.json".into());
    assert_failing_artifact_is_handled(vec![redirect], "which is not https; refused");
}

#[test]
fn an_artifact_that_keeps_failing_fails_the_job_naming_it_unless_allowed() {
    let faults = std::iter::repeat_n(Fault::Status(500), 6).collect();
    assert_failing_artifact_is_handled(faults, "HTTP 500: There was a server error.");
}

#[test]
fn client_errors_are_not_retried() {
    let emulator = emulator_with(job(Duration::from_secs(30), Outcome::Success));
    emulator.inject(Endpoint::GetRun, [Fault::Status(403)]);
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(1);
    assert!(
        run.stderr().contains("dbt Cloud denied access to run"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(&emulator, "GET", "/runs/70403103000/"), 1);
    assert_eq!(
        run.table("dbt_cloud_run").1["status"],
        "1",
        "the last state seen is recorded"
    );
}

#[test]
fn a_spent_retry_budget_is_a_clear_exit_1_not_a_hang() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::Trigger,
        std::iter::repeat_n(Fault::Status(503), 50),
    );
    let started = Instant::now();
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    assert!(started.elapsed() < Duration::from_secs(20));
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!(
            "POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/ kept failing: 6 attempts"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("HTTP 503: Service temporarily unavailable."),
        "{stderr}"
    );
    assert!(
        run.stdout().contains("(attempt 2 of 6, within 5 s)"),
        "the budget is logged when used: {}",
        run.stdout()
    );
    assert_eq!(emulator.runs_created(), 0);

    // While waiting, the budget runs to max_wait_time: a timeout that says what kept failing;
    // then the last state is recorded.
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Status(502), 500),
    );
    let run = run_component(parameters(
        &emulator,
        json!({"wait_for_result": true, "max_wait_time": 0.05}),
    ));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains(
            "did not finish within max_wait_time (0.05 minutes), and the last looks at it failed \
             (GET /api/v2/accounts/43786/runs/70403103000/ was still failing: dbt Cloud failed to \
             answer the request for run 70403103000 (HTTP 502"
        ),
        "{stderr}"
    );
    assert_eq!(run.table("dbt_cloud_run").1["status"], "1");
}

/// A 60 s run, `max_wait_time` of 1.8 s and `cancel_on_timeout`, with `cancel_faults` queued on
/// cancel: the run is cancelled all the same, after one attempt per fault and one more.
fn assert_cancelled_on_timeout(emulator: &Emulator, cancel_faults: Vec<Fault>) {
    let attempts = cancel_faults.len() + 1;
    emulator.inject(Endpoint::Cancel, cancel_faults);
    let run = run_component(parameters(
        emulator,
        json!({"wait_for_result": true, "max_wait_time": 0.03, "cancel_on_timeout": true}),
    ));
    run.assert_code(1);
    assert!(
        run.stderr().contains("It was cancelled"),
        "{}",
        run.stderr()
    );
    assert_eq!(count(emulator, "POST", "/cancel/"), attempts);
    assert_eq!(run.table("dbt_cloud_run").1["status"], "30");
}

#[test]
fn cancel_on_timeout_cancels_and_says_so() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    assert_cancelled_on_timeout(&emulator, vec![]);
}

#[test]
fn faults_on_the_other_endpoints_are_survived_too() {
    let emulator = emulator_with(job(Duration::from_secs(60), Outcome::Success));
    emulator.inject(Endpoint::ListRuns, [Fault::Status(500), Fault::Reset]);
    assert_cancelled_on_timeout(&emulator, vec![Fault::Status(503), Fault::HtmlPage(502)]);

    let emulator = emulator_with(quick(Outcome::Success));
    emulator.inject(
        Endpoint::ListArtifacts,
        [
            Fault::Status(502),
            Fault::HtmlPage(504),
            Fault::Delay(Duration::from_millis(1500)),
        ],
    );
    let run = run_component(parameters(&emulator, waiting()));
    run.assert_code(0);
    assert_artifacts(&run, &standard_artifacts());
}

/// dbt Cloud's envelope with a `data` unlike the API's is dbt Cloud's fault, which the user must
/// see: exit 1 naming the call and what was unexpected, and asking for a report (exit 2 would show
/// it to nobody but the component's authors).
#[test]
fn an_answer_we_cannot_read_is_told_to_the_user_exit_1() {
    let emulator = emulator_with(quick(Outcome::Success));
    let not_a_run = json!({"status": {"code": 200, "is_success": true}, "data": {"run": "?"}});
    emulator.inject(Endpoint::Trigger, [Fault::Json(200, not_a_run)]);
    let run = run_component(parameters(&emulator, json!({})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with(
            "dbt Cloud's answer to POST /api/v2/accounts/43786/jobs/567183/run/ is not what its API documents: "
        ),
        "{stderr}"
    );
    assert!(stderr.contains("missing field `id`"), "{stderr}");
    assert!(
        stderr.contains("please report it to this component's authors"),
        "{stderr}"
    );
}
