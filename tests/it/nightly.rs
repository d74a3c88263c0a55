//! What a nightly configuration meets on real nights: a resume bounded to a recent failure and
//! bound to that run, the cause that names the Keboola job, the getdbt.com URL dbt Labs retires,
//! every field of the trigger body, and a followed run that dbt Cloud's scheduler replaced.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault, Timeline};
use serde_json::{json, Value};

fn posts(emulator: &Emulator, path_end: &str) -> usize {
    count(emulator, "POST", path_end)
}

/// A job whose newest run failed `ago` (on dbt Cloud's clock), and which has no other run.
fn failed_ago(ago: Duration) -> (Emulator, u64) {
    let emulator = emulator_with(quick(Outcome::Error));
    let id = emulator.next_run_id();
    emulator.add_past_run(
        JOB,
        Timeline::lasting(Duration::from_secs(60)),
        Outcome::Error,
        ago,
    );
    (emulator, id)
}

fn resuming(extra: Value) -> Value {
    let mut parameters = json!({"retry_failed": true});
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    parameters
}

#[test]
fn a_failure_of_the_last_hour_is_resumed_through_its_own_retry_endpoint() {
    let (emulator, failed) = failed_ago(Duration::from_secs(10 * 60));
    let run = run_component(parameters(
        &emulator,
        resuming(json!({"cause": "nightly", "trigger_overrides": {"threads_override": 8}})),
    ));
    run.assert_code(0);
    assert_eq!(posts(&emulator, &format!("/runs/{failed}/retry/")), 1);
    assert_eq!(posts(&emulator, "/rerun/"), 0, "never the job-level rerun");
    assert_eq!(posts(&emulator, "/run/"), 0, "no fresh run");
    let stdout = run.stdout();
    assert!(
        stdout.contains(&format!("The job's newest run {failed} ended in Error "))
            && stdout.contains(" ago: resuming it from the point of failure (retry_failed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("A resumed run keeps the failed run's own cause and settings: the cause \"nightly\" and trigger_overrides do not apply to it"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Resumed the failed run as run "),
        "{stdout}"
    );
}

#[test]
fn last_nights_failure_gets_a_fresh_full_run_and_the_log_says_why() {
    let (emulator, failed) = failed_ago(Duration::from_secs(9 * 3600));
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert_eq!(posts(&emulator, "/retry/") + posts(&emulator, "/rerun/"), 0);
    assert_eq!(posts(&emulator, "/run/"), 1);
    assert!(
        run.stdout().contains(&format!(
            "The job's newest run {failed} ended in Error "
        )) && run.stdout().contains(" ago, longer ago than retry_failed_within (60 minutes): resuming it would keep the data of every model that succeeded then: triggering a fresh run instead (retry_failed)"),
        "{}",
        run.stdout()
    );
    // A window wider than its age resumes it.
    let (emulator, failed) = failed_ago(Duration::from_secs(9 * 3600));
    let run = run_component(parameters(
        &emulator,
        resuming(json!({"retry_failed_within": 600})),
    ));
    run.assert_code(0);
    assert_eq!(posts(&emulator, &format!("/runs/{failed}/retry/")), 1);
    assert_eq!(posts(&emulator, "/run/"), 0);
    // A window of one minute, in words.
    let (emulator, _) = failed_ago(Duration::from_secs(9 * 3600));
    let run = run_component(parameters(
        &emulator,
        resuming(json!({"retry_failed_within": 1})),
    ));
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains(" ago, longer ago than retry_failed_within (1 minute): "),
        "{}",
        run.stdout()
    );
}

#[test]
fn the_age_of_a_failure_is_told_by_dbt_clouds_clock() {
    // dbt Cloud's clock is three hours behind ours: on it, the run failed 10 minutes ago.
    let emulator = emulator_with(quick(Outcome::Error));
    emulator.skew_clock(chrono::Duration::hours(-3));
    let failed = emulator.next_run_id();
    emulator.add_past_run(
        JOB,
        Timeline::lasting(Duration::from_secs(60)),
        Outcome::Error,
        Duration::from_secs(600),
    );
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert_eq!(
        posts(&emulator, &format!("/runs/{failed}/retry/")),
        1,
        "{}",
        run.stdout()
    );
    assert!(
        run.stdout()
            .contains("the cause \"Triggered from Keboola\" does not apply to it"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_failure_of_unknown_age_gets_a_fresh_run() {
    let (emulator, failed) = failed_ago(Duration::from_secs(60));
    let list = json!({
        "status": {"code": 200, "is_success": true, "user_message": "Success!", "developer_message": ""},
        "data": [{"id": failed, "status": 20, "finished_at": null, "can_retry": null, "job_definition_id": JOB, "account_id": ACCOUNT}],
    });
    emulator.inject_where(Endpoint::ListRuns, ("limit", "1"), [Fault::Json(200, list)]);
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert_eq!(posts(&emulator, "/retry/"), 0);
    assert!(
        run.stdout().contains("but dbt Cloud does not say when (finished_at), so how old the failure is cannot be told: triggering a fresh run instead"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_resume_dbt_cloud_refuses_becomes_a_fresh_run_with_the_reason() {
    // A newer run came between the look and the resume (RETRY_NOT_LATEST_RUN), with can_retry
    // not given at all.
    let (emulator, failed) = failed_ago(Duration::from_secs(60));
    emulator.inject(
        Endpoint::Retry,
        [Fault::Json(
            400,
            json!({"status": {"code": 400, "is_success": false, "user_message": "This run cannot be retried.", "developer_message": null}, "data": {"run": ["RETRY_NOT_LATEST_RUN"]}}),
        )],
    );
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert_eq!(posts(&emulator, "/run/"), 1);
    assert!(
        run.stdout().contains(&format!(
            "dbt Cloud refused to resume run {failed}: a newer run of the job exists (RETRY_NOT_LATEST_RUN)"
        )),
        "{}",
        run.stdout()
    );
    // The Fusion engine's jobs cannot be resumed: said in words, and a fresh run.
    let emulator = emulator_with(quick(Outcome::Error).retry_refused("RETRY_UNSUPPORTED_VERSION"));
    run_component(parameters(&emulator, json!({"wait_for_result": true}))).assert_code(1);
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert!(
        run.stdout()
            .contains("jobs on the Fusion engine cannot) (RETRY_UNSUPPORTED_VERSION)"),
        "{}",
        run.stdout()
    );
}

#[test]
fn where_a_runs_retry_endpoint_is_absent_the_jobs_rerun_resumes_it() {
    let (emulator, failed) = failed_ago(Duration::from_secs(60));
    emulator.inject(Endpoint::Retry, [Fault::Status(404)]);
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    assert_eq!(posts(&emulator, &format!("/runs/{failed}/retry/")), 1);
    assert_eq!(posts(&emulator, "/rerun/"), 1);
    assert_eq!(posts(&emulator, "/run/"), 0);
}

/// dbt Cloud's answer of `status` with its own words, as its API refuses.
fn refusal(status: u16, message: &str) -> Fault {
    Fault::Json(
        status,
        json!({"status": {"code": status, "is_success": false, "user_message": message, "developer_message": null}, "data": null}),
    )
}

#[test]
fn a_resume_refused_in_any_way_of_its_own_becomes_a_fresh_run_with_the_reason() {
    for status in [403, 409, 410, 422] {
        let (emulator, failed) = failed_ago(Duration::from_secs(60));
        emulator.inject(Endpoint::Retry, [refusal(status, "Not this run.")]);
        let run = run_component(parameters(&emulator, resuming(json!({}))));
        run.assert_code(0);
        assert_eq!(posts(&emulator, "/run/"), 1, "{status}: {}", run.stdout());
        assert!(
            run.stdout().contains(&format!(
                "dbt Cloud refused to resume run {failed} (HTTP {status}: Not this run.); triggering a fresh run instead (retry_failed)"
            )),
            "{status}: {}",
            run.stdout()
        );
    }
    // Without a retry endpoint, the job's rerun refused.
    for status in [403, 404, 409] {
        let (emulator, failed) = failed_ago(Duration::from_secs(60));
        emulator.inject(Endpoint::Retry, [Fault::Status(404)]);
        emulator.inject(Endpoint::Rerun, [refusal(status, "No rerun.")]);
        let run = run_component(parameters(&emulator, resuming(json!({}))));
        run.assert_code(0);
        assert_eq!(posts(&emulator, "/rerun/"), 1);
        assert_eq!(posts(&emulator, "/run/"), 1, "{status}: {}", run.stdout());
        assert!(
            run.stdout().contains(&format!(
                "dbt Cloud refused to resume run {failed} (HTTP {status}: No rerun.); triggering a fresh run instead (retry_failed)"
            )),
            "{status}: {}",
            run.stdout()
        );
    }
}

/// A run of the job as dbt Cloud lists or answers it, created now on its clock.
fn run_json(id: u64, status: u64, cause_category: &str) -> Value {
    json!({
        "id": id, "status": status, "job_definition_id": JOB, "account_id": ACCOUNT,
        "created_at": chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string(),
        "trigger": {"cause": "Scheduled", "job_definition_id": JOB, "cause_category": cause_category},
    })
}

fn envelope(data: Value) -> Value {
    json!({"status": {"code": 200, "is_success": true, "user_message": "Success!", "developer_message": ""}, "data": data})
}

#[test]
fn a_resume_answered_with_the_failed_run_itself_is_no_resumed_run() {
    let (emulator, failed) = failed_ago(Duration::from_secs(60));
    emulator.inject(
        Endpoint::Retry,
        [Fault::Json(200, envelope(run_json(failed, 20, "api")))],
    );
    let fresh = emulator.next_run_id();
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(!stdout.contains("Resumed the failed run as"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "dbt Cloud answered with run {failed}, which is not a new run"
        )),
        "{stdout}"
    );
    assert_eq!(posts(&emulator, "/run/"), 1, "{stdout}");
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], fresh.to_string());
}

#[test]
fn a_run_the_scheduler_started_as_a_resumes_answer_was_lost_is_not_taken_for_it() {
    let (emulator, failed) = failed_ago(Duration::from_secs(60));
    let scheduled = failed + 500;
    emulator.inject(Endpoint::Retry, [Fault::Reset]);
    emulator.inject_where(
        Endpoint::ListRuns,
        ("limit", "20"),
        [Fault::Json(
            200,
            envelope(json!([run_json(scheduled, 1, "scheduled")])),
        )],
    );
    let resumed = emulator.next_run_id();
    let run = run_component(parameters(&emulator, resuming(json!({}))));
    run.assert_code(0);
    let stdout = run.stdout();
    assert!(
        !stdout.contains(&format!("started run {scheduled}")),
        "{stdout}"
    );
    assert_eq!(
        posts(&emulator, &format!("/runs/{failed}/retry/")),
        2,
        "{stdout}"
    );
    assert_eq!(run.table("dbt_cloud_trigger").1["id"], resumed.to_string());
    assert!(
        stdout.contains(&format!("Resumed the failed run as run {resumed}")),
        "{stdout}"
    );
}

// ---- The cause

fn trigger_cause(emulator: &Emulator) -> String {
    let trigger = &emulator.requests_to("POST", "/run/")[0];
    trigger.body_json().unwrap()["cause"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn without_a_cause_the_run_names_its_keboola_job_project_and_page() {
    let emulator = emulator_with(quick(Outcome::Success));
    let config = json!({"parameters": parameters(&emulator, json!({}))}).to_string();
    let run = run_component_with(
        Some(config),
        &[
            ("KBC_RUNID", "1234567890"),
            ("KBC_PROJECTID", "4567"),
            ("KBC_PROJECTNAME", "Analytics"),
            ("KBC_CONFIGID", "998877"),
            ("KBC_STACKID", "connection.keboola.com"),
        ],
    );
    run.assert_code(0);
    let expected = "Triggered from Keboola: job 1234567890 of project 4567 (Analytics), configuration 998877: https://connection.keboola.com/admin/projects/4567/queue/1234567890";
    assert_eq!(trigger_cause(&emulator), expected);
    assert!(
        run.stdout().contains(&format!("cause {expected:?}")),
        "the log shows the cause sent: {}",
        run.stdout()
    );
    let (_, row) = run.table("dbt_cloud_trigger");
    let trigger: Value = serde_json::from_str(&row["trigger"]).unwrap();
    assert_eq!(trigger["cause"], expected, "the trigger table shows it too");
    // The form's former default is no cause of the user's.
    let emulator = emulator_with(quick(Outcome::Success));
    let config =
        json!({"parameters": parameters(&emulator, json!({"cause": "Triggered from Keboola"}))});
    run_component_with(Some(config.to_string()), &[("KBC_RUNID", "42")]).assert_code(0);
    assert_eq!(trigger_cause(&emulator), "Triggered from Keboola: job 42");
}

#[test]
fn a_configured_cause_is_sent_as_is_and_outside_keboola_the_cause_stays_plain() {
    let emulator = emulator_with(quick(Outcome::Success));
    let config = json!({"parameters": parameters(&emulator, json!({"cause": "nightly"}))});
    run_component_with(Some(config.to_string()), &[("KBC_RUNID", "42")]).assert_code(0);
    assert_eq!(trigger_cause(&emulator), "nightly");
    let emulator = emulator_with(quick(Outcome::Success));
    run_component(parameters(&emulator, json!({}))).assert_code(0);
    assert_eq!(trigger_cause(&emulator), "Triggered from Keboola");
}

#[test]
fn every_optional_field_of_the_trigger_body_is_sent() {
    let emulator = emulator_with(quick(Outcome::Success));
    let overrides = json!({"non_native_pull_request_id": 4242, "git_branch": "feature/x"});
    run_component(parameters(
        &emulator,
        json!({"trigger_overrides": overrides}),
    ))
    .assert_code(0);
    let body = emulator.requests_to("POST", "/run/")[0]
        .body_json()
        .unwrap();
    assert_eq!(body["non_native_pull_request_id"], 4242);
    assert_eq!(body["git_branch"], "feature/x");
}

// ---- The getdbt.com URL that dbt Labs retires

/// `https://cloud.getdbt.com` served on this machine: a CONNECT proxy on 127.0.0.1 ends
/// cloud.getdbt.com's TLS with a test certificate (its CA given to the component through
/// `SSL_CERT_FILE`) and hands each request to the emulator. Nothing leaves the machine. Returns
/// the variables that point the component at it.
fn local_getdbt_com(emulator: &Emulator) -> Vec<(&'static str, String)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls/getdbt");
    let config = tls_server_config("getdbt");
    let upstream = emulator.base_url().trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, upstream) = (config.clone(), upstream.clone());
            std::thread::spawn(move || {
                let _ = tunnel(stream, config, &upstream);
            });
        }
    });
    vec![
        ("HTTPS_PROXY", proxy),
        (
            "SSL_CERT_FILE",
            data.join("ca.pem").to_string_lossy().into_owned(),
        ),
    ]
}

/// One CONNECT to cloud.getdbt.com:443: TLS ended here, each request passed to the emulator
/// whole, its answer passed back.
fn tunnel(
    mut stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    upstream: &str,
) -> std::io::Result<()> {
    let connect = read_head(&mut BufReader::new(stream.try_clone()?))?;
    assert!(
        connect.starts_with("CONNECT cloud.getdbt.com:443 "),
        "{connect}"
    );
    stream.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
    let connection = rustls::ServerConnection::new(config).unwrap();
    // One reader for the whole connection: what it reads ahead is the next request's.
    let mut tls = BufReader::new(rustls::StreamOwned::new(connection, stream));
    loop {
        let head = read_head(&mut tls)?;
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0; length];
        tls.read_exact(&mut body)?;
        let head: String = head
            .lines()
            .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
            .map(|line| format!("{line}\r\n"))
            .collect();
        let mut emulator = TcpStream::connect(upstream)?;
        emulator.write_all(head.trim_end().as_bytes())?;
        emulator.write_all(b"\r\nConnection: close\r\n\r\n")?;
        emulator.write_all(&body)?;
        let mut answer = Vec::new();
        emulator.read_to_end(&mut answer)?;
        tls.get_mut().write_all(&answer)?;
        tls.get_mut().flush()?;
    }
}

/// An HTTP head, up to its blank line. (The CONNECT's reader reads no further: the client waits
/// for the answer before it starts TLS.)
fn read_head(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            return Ok(head);
        }
        head.push_str(&line);
    }
}

/// Parameters for `emulator` at the default URL (no `dbt_cloud_url`, as configurations saved
/// before the form stopped offering it).
fn at_the_default_url(extra: Value) -> Value {
    let mut parameters = json!({"account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN});
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    parameters
}

fn run_at_getdbt_com(emulator: &Emulator, parameters: Value) -> Run {
    let env = local_getdbt_com(emulator);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_component_with(Some(json!({"parameters": parameters}).to_string()), &env)
}

/// From today to a day after dbt Cloud retires its getdbt.com URLs, on its clock.
fn past_the_retirement() -> chrono::Duration {
    let after = chrono::DateTime::parse_from_rfc3339("2027-02-04T12:00:00Z").unwrap();
    after.with_timezone(&chrono::Utc) - chrono::Utc::now()
}

#[test]
fn the_default_url_still_works_and_is_warned_about_before_the_first_request() {
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_at_getdbt_com(&emulator, at_the_default_url(json!({})));
    run.assert_code(0);
    let stdout = run.stdout();
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("WARN  dbt_cloud_url https://cloud.getdbt.com is a getdbt.com region URL, which dbt Labs retires on February 3, 2027: from then on it no longer serves API requests. Set dbt_cloud_url to your account's own access URL (in dbt Cloud: Account settings → Access URLs, e.g. https://ab123.us1.dbt.com)."),
        "{stdout}"
    );
    assert!(stdout.contains("INFO  Triggered run "), "{stdout}");
    assert_eq!(posts(&emulator, "/run/"), 1, "through cloud.getdbt.com");
}

#[test]
fn after_the_retirement_a_refusal_names_the_retired_url_as_its_likely_cause() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.skew_clock(past_the_retirement());
    let parameters = at_the_default_url(json!({"#api_key": "dbtc_not_this_accounts"}));
    let run = run_at_getdbt_com(&emulator, parameters.clone());
    run.assert_code(1);
    assert!(
        run.stderr().contains("Most likely cause: dbt_cloud_url https://cloud.getdbt.com is a getdbt.com region URL, which dbt Labs retired on February 3, 2027"),
        "{}",
        run.stderr()
    );
    // Sent away to another host instead of answered.
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.skew_clock(past_the_retirement());
    emulator.inject(
        Endpoint::ListRuns,
        [Fault::Redirect("https://www.getdbt.com/product".to_owned())],
    );
    let run = run_at_getdbt_com(&emulator, at_the_default_url(json!({})));
    run.assert_code(1);
    assert!(
        run.stderr().contains("redirecting to www.getdbt.com")
            && run
                .stderr()
                .contains("Most likely cause: dbt_cloud_url https://cloud.getdbt.com"),
        "{}",
        run.stderr()
    );
    // Before that day, a refused token is told as before.
    let emulator = emulator_with(quick(Outcome::Success));
    let run = run_at_getdbt_com(&emulator, parameters);
    run.assert_code(1);
    assert!(
        !run.stderr().contains("Most likely cause"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("cell-based"), "{}", run.stderr());
}

#[test]
fn the_connection_test_says_the_url_retires() {
    let emulator = emulator_with(quick(Outcome::Success));
    let env = local_getdbt_com(&emulator);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = json!({"action": "testConnection", "parameters": at_the_default_url(json!({}))});
    let run = run_component_with(Some(config.to_string()), &env);
    run.assert_code(0);
    let answer: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(answer["status"], "success");
    let message = answer["message"].as_str().unwrap();
    assert!(
        message.starts_with("Connected: the token reaches account 43786, job 567183 and its runs. Warning: dbt_cloud_url https://cloud.getdbt.com is a getdbt.com region URL, which dbt Labs retires on February 3, 2027"),
        "{message}"
    );
}

// ---- A followed run replaced by dbt Cloud's scheduler

#[test]
fn a_waited_for_run_the_scheduler_replaced_is_told_as_such_naming_the_newer_run() {
    let slow = Timeline {
        queued: Duration::from_secs(60),
        starting: Duration::ZERO,
        running: Duration::from_secs(1),
    };
    let emulator = emulator_with(quick(Outcome::Success));
    let queued = emulator.add_scheduled_run(JOB, slow, Outcome::Success);
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        parameters(
            &emulator,
            json!({"if_running": "wait", "wait_for_result": true, "poll_interval": 1}),
        ),
    );
    let child = component(dir.path()).spawn().unwrap();
    // The component adopts the queued scheduled run; then the scheduler queues a newer one.
    std::thread::sleep(Duration::from_millis(1500));
    let newer = emulator.replace_queued_scheduled_run(queued, slow);
    let run = Run {
        output: child.wait_with_output().unwrap(),
        dir,
    };
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with(&format!(
            "dbt Cloud run {queued} was cancelled before it started by dbt Cloud's scheduler, which replaced it with a newer scheduled run of the job, run {newer} ("
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("the job is scheduled more often than its runs finish"),
        "{stderr}"
    );
    // A run we triggered and a user cancelled is not told so.
    let emulator = emulator_with(quick(Outcome::Cancelled));
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(1);
    assert!(!run.stderr().contains("scheduler"), "{}", run.stderr());
}
