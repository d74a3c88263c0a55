//! Every promise at the edges: absurd answers, hard deadlines, dbt Cloud's 429 cooldown, a lost
//! trigger among other clients' runs, failures of this machine, and a data folder we share with
//! nobody. Each test shows a fault that once broke a promise.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault, RateLimit, RetryAfter};
use serde_json::json;

fn downloads_of(emulator: &Emulator, path: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/artifacts/{path}")))
        .count()
}

/// Runs the binary, timed.
fn timed(parameters: serde_json::Value) -> (Run, Duration) {
    let started = Instant::now();
    let run = run_component(parameters);
    (run, started.elapsed())
}

fn assert_no_panic(run: &Run) {
    let stderr = run.stderr();
    assert!(
        !stderr.contains("panicked") && run.code() != 101,
        "{stderr}"
    );
}

fn scratch_folders(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".dbt-cloud-job-trigger"))
        .collect()
}

// ---- Never panic

#[test]
fn an_absurd_retry_after_is_capped_not_a_panic() {
    let emulator = emulator_with(quick(Outcome::Success));
    let forever = Fault::TooManyRequests {
        retry_after: Some(u64::MAX),
    };
    emulator.inject(Endpoint::GetRun, [forever.clone()]);
    emulator.inject(Endpoint::DownloadArtifact, [forever]);
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    assert_no_panic(&run);
    run.assert_code(0);
    assert_artifacts(&run, &dbt_cloud_emulator::standard_artifacts());
    assert!(
        run.stdout().contains("Retry-After 3 s"),
        "capped at the (fast) cooldown: {}",
        run.stdout()
    );
}

#[test]
fn an_artifact_list_of_only_unsafe_paths_is_no_artifacts() {
    let artifacts = vec![
        Artifact::new("../config.json", b"{}".to_vec()),
        Artifact::new("/etc/cron.d/x", b"x".to_vec()),
    ];
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    assert_no_panic(&run);
    run.assert_code(0);
    let stdout = run.stdout();
    assert_eq!(stdout.matches("Skipped artifact").count(), 2, "{stdout}");
    assert!(stdout.contains("has no artifacts to download"), "{stdout}");
    assert_eq!(files_under(&run.artifacts_dir()), Vec::<String>::new());
}

// ---- Deadlines are deadlines

/// `max_wait_time` of 0.6 s against a run that never ends; the job must end within the wait plus
/// the (fast) 2 s left for the last look and the cancel, and a margin for starting the process.
fn assert_bounded_by_max_wait(emulator: &Emulator, extra: serde_json::Value) -> Run {
    let mut parameters = waiting(json!({"max_wait_time": 0.01}));
    for (key, value) in extra.as_object().unwrap() {
        parameters[key] = value.clone();
    }
    let (run, took) = timed(crate::common::parameters(emulator, parameters));
    run.assert_code(1);
    assert!(
        took < Duration::from_millis(600 + 2000 + 1500),
        "took {took:?}\n{}\n{}",
        run.stdout(),
        run.stderr()
    );
    assert!(run.data().join("out/tables/dbt_cloud_run.csv").exists());
    run
}

#[test]
fn max_wait_time_holds_while_get_run_answers_503() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Status(503), 500),
    );
    assert_bounded_by_max_wait(&emulator, json!({}));
}

#[test]
fn max_wait_time_holds_while_get_run_hangs() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    emulator.inject(
        Endpoint::GetRun,
        std::iter::repeat_n(Fault::Delay(Duration::from_secs(30)), 50),
    );
    assert_bounded_by_max_wait(&emulator, json!({}));
}

#[test]
fn max_wait_time_holds_while_the_cancel_after_it_hangs() {
    let emulator = emulator_with(job(Duration::from_secs(120), Outcome::Success));
    emulator.inject(
        Endpoint::Cancel,
        std::iter::repeat_n(Fault::Delay(Duration::from_secs(30)), 50),
    );
    let run = assert_bounded_by_max_wait(&emulator, json!({"cancel_on_timeout": true}));
    assert!(
        run.stderr().contains("Cancelling it failed"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_stalled_download_is_broken_off_and_tried_again() {
    let slow = Artifact::new("manifest.json", vec![b'x'; 40]);
    let emulator = emulator_with(quick(Outcome::Success).artifacts(vec![slow.clone()]));
    emulator.inject(
        Endpoint::DownloadArtifact,
        [Fault::Trickle {
            bytes: 1,
            tick: Duration::from_millis(300),
        }],
    );
    let (run, took) = timed(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_artifacts(&run, &[slow]);
    assert!(
        run.stdout()
            .contains("slower than the 10.0 KB/s a download must keep up"),
        "{}",
        run.stdout()
    );
    assert_eq!(downloads_of(&emulator, "manifest.json"), 2);
    assert!(
        took < Duration::from_secs(8),
        "40 bytes at 300 ms each take 12 s: {took:?}"
    );
}

#[test]
fn max_artifact_size_stops_a_body_with_or_without_its_length() {
    for fault in [None, Some(Fault::NoLength)] {
        let big = Artifact::new("manifest.json", vec![b'x'; 5_000]);
        let small = Artifact::new("run_results.json", b"{}".to_vec());
        let emulator = emulator_with(quick(Outcome::Success).artifacts(vec![big, small.clone()]));
        if let Some(fault) = &fault {
            emulator.inject(Endpoint::DownloadArtifact, [fault.clone()]);
        }
        let run = run_component(parameters(
            &emulator,
            waiting(json!({"max_artifact_size": 0.001, "artifact_concurrency": 1})),
        ));
        run.assert_code(1);
        let stderr = run.stderr();
        assert!(
            stderr.contains(
                "artifact manifest.json of run 70403103000 is larger than max_artifact_size"
            ),
            "{fault:?}: {stderr}"
        );
        assert!(stderr.contains("(5.0 KB > 1.0 KB)"), "{stderr}");
        assert!(!run.artifacts_dir().join("manifest.json").exists());
        assert_artifacts(&run, &[small]);
        assert_eq!(downloads_of(&emulator, "manifest.json"), 1, "not retried");
    }
}

#[test]
fn listed_artifacts_that_keep_answering_404_share_one_budget() {
    let mut artifacts: Vec<Artifact> = (0..64)
        .map(|i| Artifact::missing(format!("compiled/model_{i:02}.sql")))
        .collect();
    artifacts.push(Artifact::new("catalog.json", b"{}".to_vec()));
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    // The request ceiling lifted, so that only the 404 budget sets the pace.
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"artifacts_must_succeed": false, "max_requests_per_minute": 100000})),
    ));
    run.assert_code(0);
    assert_artifacts(&run, &[Artifact::new("catalog.json", b"{}".to_vec())]);
    let stdout = run.stdout();
    assert_eq!(
        stdout.matches("could not be downloaded: ").count(),
        5 + 1,
        "the first five one by one, and one summary: {stdout}"
    );
    assert_eq!(
        stdout
            .matches("is listed but not there (HTTP 404), within the 1 s that all missing artifacts share")
            .count(),
        5 + 1,
        "each named one's warning, and the first named in the summary: {stdout}"
    );
    assert!(
        stdout.contains(
            "64 artifacts could not be downloaded: compiled/model_00.sql, compiled/model_01.sql, \
             compiled/model_02.sql, compiled/model_03.sql, compiled/model_04.sql and 59 more \
             (the first: "
        ),
        "{stdout}"
    );
    assert!(
        !stdout.contains("WARN  Downloading artifact"),
        "retries are quiet: {stdout}"
    );
    let requests = emulator.requests();
    let downloads: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/artifacts/compiled/"))
        .collect();
    let spread = downloads.last().unwrap().at - downloads[0].at;
    assert!(
        spread < Duration::from_millis(2500),
        "one 1 s budget for all 64, not 1.2 s for each wave of 8: {spread:?}"
    );
}

/// A list of hundreds that all answer 404 (artifacts dbt Cloud lists but never saved) is not
/// asked through one request each: past the shared budget, a hundred in a row, then the rest are
/// not asked for; one warning for each of the first five, and the summary in the error.
#[test]
fn a_list_that_all_answers_404_is_not_asked_through() {
    let artifacts: Vec<Artifact> = (0..600)
        .map(|i| Artifact::missing(format!("compiled/model_{i:03}.sql")))
        .collect();
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts));
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"artifacts_must_succeed": false, "max_requests_per_minute": 100000})),
    ));
    // None came, so the job fails all the same, with its tables.
    run.assert_code(1);
    let stdout = run.stdout();
    let asked = downloads_of_prefix(&emulator, "compiled/");
    assert!(asked < 300, "{asked} of 600 asked for");
    assert_eq!(
        stdout.matches("could not be downloaded: ").count(),
        5,
        "{stdout}"
    );
    assert!(
        run.stderr().contains(
            "600 of 600 artifacts of run 70403103000 could not be downloaded: \
             compiled/model_000.sql"
        ),
        "{}",
        run.stderr()
    );
}

fn downloads_of_prefix(emulator: &Emulator, prefix: &str) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r.path.contains(&format!("/artifacts/{prefix}")))
        .count()
}

// ---- dbt Cloud's 429 cooldown

#[test]
fn a_429_with_a_long_retry_after_is_waited_out_and_the_request_retried() {
    let artifacts: Vec<Artifact> = (0..20)
        .map(|i| Artifact::new(format!("run/m{i}.sql"), format!("select {i}").into_bytes()))
        .collect();
    let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
    emulator.inject(
        Endpoint::DownloadArtifact,
        [Fault::TooManyRequests {
            retry_after: Some(300),
        }],
    );
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_artifacts(&run, &artifacts);
    assert!(
        run.stdout().contains("Downloaded 20 of 20 artifacts"),
        "{}",
        run.stdout()
    );
}

#[test]
fn a_cooldown_costs_a_handful_of_429s_with_or_without_retry_after() {
    let artifacts: Vec<Artifact> = (0..80)
        .map(|i| Artifact::new(format!("run/m{i}.sql"), format!("select {i}").into_bytes()))
        .collect();
    for (retry_after, most) in [(RetryAfter::Never, 20), (RetryAfter::SecondsLeft, 12)] {
        let emulator = emulator_with(quick(Outcome::Success).artifacts(artifacts.clone()));
        emulator.rate_limit(RateLimit {
            requests: 30,
            window: Duration::from_secs(2),
            cooldown: Duration::from_millis(2500),
            retry_after,
        });
        let run = run_component(parameters(&emulator, waiting(json!({}))));
        run.assert_code(0);
        assert_artifacts(&run, &artifacts);
        // On a busy machine the downloads outlast the climb back after the cooldown and may
        // meet the account's limit again: each cooldown is held to its handful.
        let cooldowns = run.stdout().matches("cooldown ended after").count();
        let throttled = emulator.throttled();
        assert!(
            cooldowns >= 1 && (1..=most * cooldowns).contains(&throttled),
            "Retry-After {retry_after:?}: the ones in flight and a probe at a time, not workers x \
             attempts: {throttled} in {cooldowns} cooldowns\n{}",
            run.stdout()
        );
    }
}

#[test]
fn the_cooldown_is_survived_in_every_phase() {
    // Three requests, then 429 for 1.5 s: the baseline, the trigger, the waits, the list, the
    // downloads and the cancel of `if_running: replace` each meet a cooldown.
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.add_run_by_another_client(JOB, "scheduled", Duration::from_secs(5));
    emulator.rate_limit(RateLimit {
        requests: 3,
        window: Duration::from_secs(600),
        cooldown: Duration::from_millis(1500),
        retry_after: RetryAfter::Never,
    });
    let run = run_component(parameters(
        &emulator,
        waiting(json!({"if_running": "replace"})),
    ));
    run.assert_code(0);
    assert_artifacts(&run, &dbt_cloud_emulator::standard_artifacts());
    assert!(emulator.throttled() >= 5, "{}", emulator.throttled());
    assert_eq!(count(&emulator, "POST", "/cancel/"), 1);
    assert_eq!(emulator.runs_created(), 2);
}

// ---- Adopting a lost trigger's run: never someone else's

/// Another client's run with our cause 90 s before ours; the job's newest run before the trigger
/// (`limit=1`) cannot be read, however often asked; our trigger's answer is lost.
fn lost_trigger_beside_another_clients_run(emulator: &Emulator) -> Run {
    emulator.add_run_by_another_client(JOB, "nightly", Duration::from_secs(90));
    // dbt Cloud's envelope, but no list of runs in it.
    let not_a_list = json!({"status": {"code": 200, "is_success": true}, "data": "?"});
    emulator.inject_where(
        Endpoint::ListRuns,
        ("limit", "1"),
        std::iter::repeat_n(Fault::Json(200, not_a_list), 10),
    );
    emulator.inject(Endpoint::Trigger, [Fault::CreateThenDrop]);
    run_component(parameters(emulator, json!({"cause": "nightly"})))
}

#[test]
fn a_lost_trigger_adopts_only_a_run_created_after_its_send_on_dbt_clouds_clock() {
    for skew in [0, 600, -600] {
        let emulator = emulator_with(quick(Outcome::Success));
        emulator.skew_clock(chrono::Duration::seconds(skew));
        let ours = emulator.next_run_id() + 1;
        let run = lost_trigger_beside_another_clients_run(&emulator);
        run.assert_code(0);
        assert_eq!(
            run.table("dbt_cloud_trigger").1["id"],
            ours.to_string(),
            "skew {skew} s: {}",
            run.stdout()
        );
        assert_eq!(count(&emulator, "POST", "/run/"), 1);
        assert_eq!(emulator.runs_created(), 2);
    }
}

#[test]
fn without_baseline_or_clock_a_lost_trigger_names_the_candidates_and_guesses_nothing() {
    let emulator = emulator_with(quick(Outcome::Success));
    emulator.without_date_header();
    let other = emulator.next_run_id();
    let run = lost_trigger_beside_another_clients_run(&emulator);
    run.assert_code(1);
    let stderr = run.stderr();
    for id in [other, other + 1] {
        assert!(stderr.contains(&format!("run {id} (http")), "{stderr}");
    }
    assert!(stderr.contains("Not triggering again"), "{stderr}");
    assert_eq!(count(&emulator, "POST", "/run/"), 1);
    assert!(!run.data().join("out/tables/dbt_cloud_trigger.csv").exists());
}

// ---- Local failures are named as local

/// Runs the binary with files limited to `max_file_bytes`: past it a write fails with EFBIG,
/// as a full disk fails with ENOSPC.
fn run_with_file_size_limit(parameters: serde_json::Value, max_file_bytes: u64) -> Run {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), parameters);
    let mut command = component(dir.path());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: max_file_bytes,
                rlim_max: max_file_bytes,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let output = command.output().unwrap();
    Run { dir, output }
}

#[test]
fn a_disk_that_refuses_writes_is_named_as_local_and_not_retried() {
    let big = Artifact::generated("manifest.json", 1_000_000);
    let emulator = emulator_with(quick(Outcome::Success).artifacts(vec![big]));
    let started = Instant::now();
    let run = run_with_file_size_limit(parameters(&emulator, waiting(json!({}))), 200_000);
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(
        stderr.contains("artifacts/out/current/manifest.json"),
        "{stderr}"
    );
    assert!(stderr.contains("of run 70403103000"), "{stderr}");
    assert!(!stderr.contains("broke off"), "{stderr}");
    assert_eq!(downloads_of(&emulator, "manifest.json"), 1);
    assert!(started.elapsed() < Duration::from_secs(6));
    assert!(!run.artifacts_dir().join("manifest.json").exists());
}

#[test]
fn a_tables_folder_that_is_a_file_is_named_and_nothing_is_triggered() {
    let emulator = emulator_with(quick(Outcome::Success));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("out/tables"), "not a folder").unwrap();
    let run = run_component_in(dir, parameters(&emulator, json!({})));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.starts_with("The data folder cannot be written where the job writes its tables ("),
        "{stderr}"
    );
    assert!(
        stderr.contains("out/tables: it is a file, not a folder"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was triggered."), "{stderr}");
    assert_eq!(count(&emulator, "POST", "/run/"), 0);
    assert_eq!(scratch_folders(run.data()), Vec::<String>::new());
}

#[test]
fn a_file_name_too_long_is_named_as_local() {
    let long = format!("compiled/{}.sql", "m".repeat(300));
    let emulator = emulator_with(
        quick(Outcome::Success).artifacts(vec![Artifact::new(long.clone(), b"select 1".to_vec())]),
    );
    let run = run_component(parameters(&emulator, waiting(json!({}))));
    run.assert_code(1);
    let stderr = run.stderr();
    assert_eq!(
        stderr.matches("File name too long").count(),
        1,
        "the OS's reason once: {stderr}"
    );
    assert_eq!(downloads_of(&emulator, &long), 1, "not retried");
}

/// A TLS server on 127.0.0.1 with a certificate nobody trusts; counts the connections.
fn untrusted_tls_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let config = tls_server_config("");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let mut buffer = [0u8; 1024];
                let _ = std::io::Read::read(&mut tls, &mut buffer);
            });
        }
    });
    (url, connections)
}

#[test]
fn an_untrusted_certificate_fails_at_once_naming_the_host() {
    let (url, connections) = untrusted_tls_server();
    let mut parameters = json!({
        "account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN, "dbt_cloud_url": url,
    });
    parameters["wait_for_result"] = json!(true);
    let (run, took) = timed(parameters);
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(
        stderr.contains("The secure connection to 127.0.0.1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(!stderr.contains("answer was lost"), "{stderr}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no retries"
    );
}

#[test]
fn a_refused_connection_is_not_a_lost_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = run_component(json!({
        "account_id": ACCOUNT, "job_id": JOB, "#api_key": TOKEN, "dbt_cloud_url": url,
    }));
    run.assert_code(1);
    let stderr = run.stderr();
    assert!(stderr.contains("could not be reached"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "GET /api/v2/accounts/{ACCOUNT}/runs/ kept failing"
        )),
        "the runs before the trigger are read first: {stderr}"
    );
    assert!(!stderr.contains("answer was lost"), "{stderr}");
}

// ---- The data folder is ours alone

#[test]
fn symbolic_links_under_the_data_folder_are_replaced_never_followed() {
    let emulator = emulator_with(quick(Outcome::Success));
    let outside = tempfile::tempdir().unwrap();
    for folder in ["artifacts", "tables"] {
        std::fs::create_dir(outside.path().join(folder)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("artifacts/out/current");
    std::fs::create_dir_all(&current).unwrap();
    std::os::unix::fs::symlink(outside.path().join("artifacts"), current.join("compiled")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("tables"), dir.path().join("out/tables"))
        .unwrap();
    let run = run_component_in(dir, parameters(&emulator, waiting(json!({}))));
    run.assert_code(0);
    assert_eq!(files_under(outside.path()), Vec::<String>::new());
    assert_artifacts(&run, &dbt_cloud_emulator::standard_artifacts());
    assert_eq!(run.table("dbt_cloud_run").1["status"], "10");
    assert!(
        run.stdout().contains("is a symbolic link; replacing it"),
        "{}",
        run.stdout()
    );
}

#[test]
fn two_instances_on_one_data_folder_keep_their_own_scratch() {
    // The first holds a scratch file open (a slow artifact) while the second ends, which once
    // removed the scratch folder they shared.
    let slow = Artifact::new("manifest.json", vec![b'x'; 2_000]);
    let first = emulator_with(quick(Outcome::Success).artifacts(vec![slow.clone()]));
    first.inject(
        Endpoint::DownloadArtifact,
        [Fault::Trickle {
            bytes: 100,
            tick: Duration::from_millis(300),
        }],
    );
    let other = Artifact::new("catalog.json", b"{}".to_vec());
    let second = emulator_with(quick(Outcome::Success).artifacts(vec![other.clone()]));
    let dir = tempfile::tempdir().unwrap();
    // The first with production timing, so that its slow download is not broken off.
    let spawn = |timing: &str| {
        component(dir.path())
            .env("DBT_CLOUD_TRIGGER_TEST_TIMING", timing)
            .spawn()
            .unwrap()
    };
    write_config(dir.path(), parameters(&first, waiting(json!({}))));
    let slow_one = spawn("standard");
    // Once the first has read config.json and is downloading, the second reads its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    while downloads_of(&first, "manifest.json") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    write_config(dir.path(), parameters(&second, waiting(json!({}))));
    let quick_one = spawn("fast").wait_with_output().unwrap();
    assert!(
        first
            .requests()
            .last()
            .unwrap()
            .path
            .ends_with("/manifest.json"),
        "the second ended while the first was still downloading"
    );
    let slow_one = slow_one.wait_with_output().unwrap();
    for (name, output) in [("second", &quick_one), ("first", &slow_one)] {
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join("artifacts/out/current/manifest.json")).unwrap(),
        slow.bytes()
    );
    assert_eq!(
        std::fs::read(dir.path().join("artifacts/out/current/catalog.json")).unwrap(),
        other.bytes()
    );
    assert_eq!(scratch_folders(dir.path()), Vec::<String>::new());
}
