//! The emulator's faults, seen from a raw socket: what each one puts on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;
use dbt_cloud_emulator::{Endpoint, Fault};

fn raw_get(emulator: &Emulator, path: &str) -> Vec<u8> {
    let address = emulator.base_url().trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Token {TOKEN}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

fn job_path() -> String {
    format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/")
}

#[test]
fn each_fault_puts_what_it_says_on_the_wire_then_the_endpoint_recovers() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    emulator.inject(
        Endpoint::GetJob,
        [
            Fault::Status(502),
            Fault::TooManyRequests {
                retry_after: Some(7),
            },
            Fault::TooManyRequests { retry_after: None },
            Fault::HtmlPage(503),
            Fault::Reset,
            Fault::CutBody,
            Fault::Redirect("http://localhost:1/files/x".into()),
            Fault::Delay(Duration::from_millis(600)),
        ],
    );
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();

    let answer = text(raw_get(&emulator, &job_path()));
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains(r#""code":502"#) && answer.contains(r#""is_success":false"#),
        "{answer}"
    );
    let answer = text(raw_get(&emulator, &job_path())).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 429") && answer.contains("retry-after: 7"),
        "{answer}"
    );
    let answer = text(raw_get(&emulator, &job_path())).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 429") && !answer.contains("retry-after"),
        "{answer}"
    );
    let answer = text(raw_get(&emulator, &job_path()));
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("<html>"),
        "{answer}"
    );
    assert!(
        raw_get(&emulator, &job_path()).is_empty(),
        "reset: not a byte"
    );

    let answer = text(raw_get(&emulator, &job_path()));
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a content-length");
    assert!(
        body.len() < length && !body.is_empty(),
        "{} of {length}",
        body.len()
    );

    let answer = text(raw_get(&emulator, &job_path())).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 302")
            && answer.contains("location: http://localhost:1/files/x"),
        "{answer}"
    );
    let started = Instant::now();
    let answer = text(raw_get(&emulator, &job_path()));
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        text(raw_get(&emulator, &job_path())).starts_with("HTTP/1.1 200"),
        "the queue is empty again"
    );
}

#[test]
fn create_then_drop_creates_the_run_and_answers_nothing() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    emulator.inject(Endpoint::Trigger, [Fault::CreateThenDrop]);
    let address = emulator.base_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    let body = r#"{"cause": "x"}"#;
    write!(stream, "POST /api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/ HTTP/1.1\r\nHost: {address}\r\nAuthorization: Token {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(emulator.runs_created(), 1);
}

#[test]
fn served_files_need_no_token() {
    let emulator = Emulator::start();
    emulator.serve_file("a/b.json", b"{}".to_vec());
    let address = emulator.base_url().trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /files/a/b.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("{}"),
        "{answer}"
    );
}

#[test]
fn unavailable_sends_its_retry_after_and_bloated_answers_grow_what_they_say() {
    use dbt_cloud_emulator::Bloat;
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    emulator.inject(
        Endpoint::GetJob,
        [
            Fault::Unavailable { retry_after: 300 },
            Fault::Bloated(Bloat::Steps(3)),
            Fault::Bloated(Bloat::StepLogs(8_000)),
            Fault::Bloated(Bloat::Field {
                name: "job".into(),
                bytes: 5_000,
            }),
        ],
    );
    let answer = String::from_utf8_lossy(&raw_get(&emulator, &job_path())).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 503") && answer.contains("retry-after: 300"),
        "{answer}"
    );
    let data = |bytes: Vec<u8>| -> serde_json::Value {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(body).unwrap()["data"].clone()
    };
    let steps = data(raw_get(&emulator, &job_path()));
    assert_eq!(steps["run_steps"].as_array().unwrap().len(), 3);
    let logs = data(raw_get(&emulator, &job_path()));
    let logs = logs["run_steps"].as_array().unwrap();
    assert_eq!(logs.len(), 4);
    assert_eq!(logs[0]["logs"].as_str().unwrap().len(), 1_000);
    assert_eq!(logs[0]["debug_logs"].as_str().unwrap().len(), 1_000);
    let job = data(raw_get(&emulator, &job_path()));
    assert_eq!(
        job["job"].as_object().unwrap().len(),
        6,
        "the cause and five strings of 1 KB"
    );
}
