//! The emulator must be faithful to dbt Cloud, not to our client. dbt Labs' official OpenAPI
//! spec (`tests/data/dbt-cloud-openapi-v2.yaml`) is the judge: each kind of answer the emulator
//! gives is checked against the schema of its operation, and the client's trigger body against
//! `TriggerRunRequestRequest`.

use std::time::Duration;

use crate::common::*;
use reqwest::blocking::Client;
use serde_json::{json, Value};

/// Fields real answers carry that the spec does not list, each documented in docs/dbt-cloud-api.md.
const DOCUMENTED_EXTRAS: &[(&str, &str)] = &[
    ("RunResponse", "scribe_enabled"),
    ("HumanReadableJobDefinitionResponse", "deactivated"),
    ("HumanReadableJobDefinitionResponse", "deactivation_reason"),
];

struct Spec(Value);

impl Spec {
    fn load() -> Spec {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dbt-cloud-openapi-v2.yaml"
        ))
        .unwrap();
        Spec(serde_yaml_ng::from_str(&text).unwrap())
    }

    fn schema(&self, name: &str) -> &Value {
        &self.0["components"]["schemas"][name]
    }

    /// The schema of an operation's 200 JSON answer.
    fn answer_schema(&self, path: &str, method: &str) -> &Value {
        let schema = &self.0["paths"][path][method]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "the spec has no JSON answer for {method} {path}"
        );
        schema
    }

    /// Every violation of `schema` by `value`, each with its JSON path. Null is accepted for any
    /// field: the spec marks nothing nullable, although real answers carry many nulls.
    fn violations(&self, value: &Value, schema: &Value) -> Vec<String> {
        let mut found = Vec::new();
        self.check(value, schema, None, "$", &mut found);
        found
    }

    fn check(
        &self,
        value: &Value,
        schema: &Value,
        name: Option<&str>,
        at: &str,
        found: &mut Vec<String>,
    ) {
        if value.is_null() {
            return;
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap();
            return self.check(value, self.schema(name), Some(name), at, found);
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.check(value, part, name, at, found);
            }
            return;
        }
        if let Some(any) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            if !any
                .iter()
                .any(|option| self.violations(value, option).is_empty())
            {
                found.push(format!(
                    "{at}: {value} matches none of the spec's alternatives"
                ));
            }
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                found.push(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let type_ok = match schema.get("type").and_then(Value::as_str) {
            None => true,
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("array") => value.is_array(),
            Some("object") => value.is_object(),
            Some(other) => panic!("unknown type {other} in the spec"),
        };
        if !type_ok {
            found.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let (Some(min), Some(text)) = (
            schema.get("minLength").and_then(Value::as_u64),
            value.as_str(),
        ) {
            if (text.chars().count() as u64) < min {
                found.push(format!("{at}: {text:?} is shorter than {min}"));
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check(item, items, None, &format!("{at}[{i}]"), found);
            }
        }
        if let Some(object) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            let open = schema.get("additionalProperties").is_some() || properties.is_none();
            for (key, field) in object {
                let documented_extra = DOCUMENTED_EXTRAS
                    .iter()
                    .any(|(s, f)| Some(*s) == name && f == key);
                match properties.and_then(|p| p.get(key)) {
                    Some(field_schema) => {
                        self.check(field, field_schema, None, &format!("{at}.{key}"), found)
                    }
                    None if open || documented_extra => {}
                    None => found.push(format!(
                        "{at}.{key}: not a field of {}",
                        name.unwrap_or("this schema")
                    )),
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let required = required.as_str().unwrap();
                if !object.contains_key(required) {
                    found.push(format!(
                        "{at}.{required}: required by {} but missing",
                        name.unwrap_or("the spec")
                    ));
                }
            }
        }
    }
}

struct Api<'a> {
    emulator: &'a Emulator,
    http: Client,
}

impl Api<'_> {
    fn call(&self, method: &str, path: &str) -> (u16, Value) {
        let url = format!(
            "{}/api/v2/accounts/{ACCOUNT}/{path}",
            self.emulator.base_url()
        );
        let request = match method {
            "get" => self.http.get(url),
            _ => self
                .http
                .post(url)
                .header("Content-Type", "application/json")
                .body(json!({"cause": "spec check"}).to_string()),
        };
        let response = request
            .header("Authorization", format!("Token {TOKEN}"))
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (
            status,
            serde_json::from_slice(&response.bytes().unwrap()).unwrap(),
        )
    }
}

#[test]
fn every_kind_of_emulator_answer_matches_the_official_spec() {
    let spec = Spec::load();
    let emulator = Emulator::start();
    emulator.add_account(Account::new(ACCOUNT), &[TOKEN]);
    let timeline = Timeline {
        queued: Duration::from_millis(300),
        starting: Duration::from_millis(300),
        running: Duration::from_millis(800),
    };
    emulator.add_job(Job::new(ACCOUNT, JOB).timeline(timeline));
    emulator.add_job(
        Job::new(ACCOUNT, JOB + 1)
            .timeline(timeline)
            .outcome(Outcome::Error),
    );
    // Enqueued by the end of each run of JOB: its runs say `job completion`.
    let chained = JOB + 2;
    emulator.add_job(Job::new(ACCOUNT, chained).timeline(timeline).chained_to(
        JOB,
        Job::new(ACCOUNT, JOB).project_id,
        &[10, 20, 30],
    ));
    let api = Api {
        emulator: &emulator,
        http: Client::new(),
    };
    let related =
        "include_related=%5B%22trigger%22%2C%22job%22%2C%22run_steps%22%2C%22environment%22%5D";

    let mut answers: Vec<(String, &str, &str, Value)> = Vec::new();
    let mut record =
        |label: String, path: &'static str, method: &'static str, (status, body): (u16, Value)| {
            assert_eq!(status, 200, "{label}: {body}");
            answers.push((label, path, method, body));
        };
    let trigger = "/api/v2/accounts/{account_id}/jobs/{job_id}/run/";
    let get_run = "/api/v2/accounts/{account_id}/runs/{id}/";
    let (_, first) = api.call("post", &format!("jobs/{JOB}/run/"));
    let (_, second) = api.call("post", &format!("jobs/{}/run/", JOB + 1));
    let (_, third) = api.call("post", &format!("jobs/{JOB}/run/"));
    let ids = [&first, &second, &third].map(|answer| answer["data"]["id"].as_u64().unwrap());
    record("trigger".into(), trigger, "post", (200, first.clone()));
    record(
        "account".into(),
        "/api/v2/accounts/{account_id}/",
        "get",
        api.call("get", ""),
    );
    record(
        "cancel".into(),
        "/api/v2/accounts/{account_id}/runs/{run_id}/cancel/",
        "post",
        api.call("post", &format!("runs/{}/cancel/", ids[2])),
    );
    let triggered_at = std::time::Instant::now();
    // The timeline: queued until 300 ms, starting until 600 ms, running until 1400 ms.
    for (moment, at_ms) in [
        ("queued", 0),
        ("starting", 450),
        ("running", 1000),
        ("final", 1700),
    ] {
        let at = triggered_at + Duration::from_millis(at_ms);
        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
        for id in ids {
            record(
                format!("get-run {id} {moment}"),
                get_run,
                "get",
                api.call("get", &format!("runs/{id}/?{related}")),
            );
        }
    }
    for id in ids {
        record(
            format!("artifacts of {id}"),
            "/api/v2/accounts/{account_id}/runs/{run_id}/artifacts/",
            "get",
            api.call("get", &format!("runs/{id}/artifacts/")),
        );
    }
    record(
        "list runs".into(),
        "/api/v2/accounts/{account_id}/runs/",
        "get",
        api.call(
            "get",
            &format!("runs/?job_definition_id={JOB}&order_by=-id&limit=10&{related}"),
        ),
    );
    let chained_runs = emulator.runs_of_job(chained);
    assert!(!chained_runs.is_empty(), "the cancelled run enqueued one");
    for id in chained_runs {
        record(
            format!("get-run {id} chained"),
            get_run,
            "get",
            api.call("get", &format!("runs/{id}/?{related}")),
        );
    }
    record(
        "get chained job".into(),
        "/api/v2/accounts/{account_id}/jobs/{id}/",
        "get",
        api.call("get", &format!("jobs/{chained}/")),
    );
    record(
        "get job".into(),
        "/api/v2/accounts/{account_id}/jobs/{id}/",
        "get",
        api.call("get", &format!("jobs/{JOB}/")),
    );
    record(
        "list jobs".into(),
        "/api/v2/accounts/{account_id}/jobs/",
        "get",
        api.call(
            "get",
            "jobs/?limit=1&offset=0&include_related=%5B%22environment%22%5D",
        ),
    );

    let run_fields: Vec<&str> = spec.schema("RunResponse")["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut problems = Vec::new();
    let mut statuses_seen = std::collections::BTreeSet::new();
    for (label, path, method, body) in &answers {
        for problem in spec.violations(body, spec.answer_schema(path, method)) {
            problems.push(format!("{label}: {problem}"));
        }
        let runs: Vec<&Value> = match &body["data"] {
            Value::Array(items) if *path == "/api/v2/accounts/{account_id}/runs/" => {
                items.iter().collect()
            }
            data if data.get("job_definition_id").is_some() => vec![data],
            _ => vec![],
        };
        for run in runs {
            statuses_seen.insert(run["status"].as_u64().unwrap());
            for field in &run_fields {
                if run.get(*field).is_none() {
                    problems.push(format!("{label}: the run lacks the spec's field {field}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        statuses_seen.into_iter().collect::<Vec<_>>(),
        [1, 2, 3, 10, 20, 30],
        "every status was checked"
    );
}

#[test]
fn the_checker_catches_what_the_spec_forbids() {
    let spec = Spec::load();
    let run = spec.schema("RunResponseEnveloped");
    let ok = json!({"status": {"code": 200, "is_success": true, "user_message": "", "developer_message": ""}, "data": {"id": 1, "created_at": "x", "updated_at": "y", "scribe_enabled": true}});
    assert_eq!(spec.violations(&ok, run), Vec::<String>::new());
    for (bad, expected) in [
        (
            json!({"id": "1", "created_at": "x", "updated_at": "y"}),
            "$.data.id: \"1\" is not of type \"integer\"",
        ),
        (
            json!({"id": 1, "created_at": "x", "updated_at": "y", "invented": 1}),
            "$.data.invented: not a field of RunResponse",
        ),
        (
            json!({"id": 1, "updated_at": "y"}),
            "$.data.created_at: required by RunResponse but missing",
        ),
        (
            json!({"id": 1, "created_at": "x", "updated_at": "y", "retry_not_supported_reason": "NOPE"}),
            "is not one of",
        ),
        (
            json!({"id": 1, "created_at": "x", "updated_at": "y", "trigger": {"cause": "c"}}),
            "$.data.trigger.job_definition_id: required by RunTrigger",
        ),
    ] {
        let mut answer = ok.clone();
        answer["data"] = bad;
        let violations = spec.violations(&answer, run);
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{expected}: {violations:?}"
        );
    }
}

#[test]
fn error_answers_carry_the_envelope_status_of_the_spec() {
    let spec = Spec::load();
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let http = Client::new();
    let base = emulator.base_url();
    let cases = [
        (
            http.get(format!("{base}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/")),
            401,
            "Authentication credentials were not provided.",
        ),
        (
            http.get(format!("{base}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/"))
                .header("Authorization", "Token nope"),
            401,
            "Invalid token.",
        ),
        (
            http.get(format!("{base}/api/v2/accounts/{ACCOUNT}/jobs/1/"))
                .header("Authorization", format!("Bearer {TOKEN}")),
            404,
            "The requested resource was not found.",
        ),
        (
            http.post(format!("{base}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/run/"))
                .header("Authorization", format!("Token {TOKEN}"))
                .body("{}"),
            400,
            "The request was invalid.",
        ),
    ];
    for (request, code, message) in cases {
        let response = request.send().unwrap();
        assert_eq!(response.status().as_u16(), code);
        let body: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap();
        assert_eq!(body["status"]["code"], code);
        assert_eq!(body["status"]["is_success"], false);
        assert!(
            body["status"]["user_message"]
                .as_str()
                .unwrap()
                .starts_with(message),
            "{body}"
        );
        assert_eq!(
            spec.violations(&body["status"], spec.schema("ResponseStatus")),
            Vec::<String>::new()
        );
    }
    // A path without its final slash is redirected, as dbt Cloud does.
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{base}/api/v2/accounts/{ACCOUNT}/jobs/{JOB}"))
        .header("Authorization", format!("Token {TOKEN}"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 301);
    assert_eq!(
        response.headers()["location"],
        format!("/api/v2/accounts/{ACCOUNT}/jobs/{JOB}/")
    );
}

#[test]
fn include_related_is_read_in_every_encoding_clients_use() {
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let api = Api {
        emulator: &emulator,
        http: Client::new(),
    };
    let (_, triggered) = api.call("post", &format!("jobs/{JOB}/run/"));
    let id = triggered["data"]["id"].as_u64().unwrap();
    for query in [
        "include_related=%5B%22trigger%22%2C%22job%22%5D",
        "include_related=trigger,job",
        "include_related=trigger&include_related=job",
        "include_related=%5B%27trigger%27%2C%20%27job%27%5D",
    ] {
        let (status, body) = api.call("get", &format!("runs/{id}/?{query}"));
        assert_eq!(status, 200);
        assert_eq!(body["data"]["trigger"]["cause"], "spec check", "{query}");
        assert_eq!(body["data"]["job"]["name"], "Nightly build", "{query}");
        assert!(body["data"]["environment"].is_null(), "{query}");
    }
    let (_, plain) = api.call("get", &format!("runs/{id}/"));
    assert!(plain["data"]["trigger"].is_null());
}

#[test]
fn the_client_trigger_body_matches_trigger_run_request_request() {
    let spec = Spec::load();
    let emulator = emulator_with(Job::new(ACCOUNT, JOB));
    let cause = "Nightly load, ünïcode and \"quotes\"";
    let overrides = json!({
        "git_sha": "8d6f1f2", "git_branch": "main", "schema_override": "dbt_pr_42",
        "dbt_version_override": "1.8.2", "threads_override": 4, "target_name_override": "ci",
        "generate_docs_override": true, "timeout_seconds_override": 3600,
        "steps_override": ["dbt build -s state:modified+"], "azure_pull_request_id": 1,
        "github_pull_request_id": 2, "gitlab_merge_request_id": 3
    });
    run_component(parameters(
        &emulator,
        json!({"cause": cause, "trigger_overrides": overrides}),
    ))
    .assert_code(0);
    let post = emulator
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(post.header("content-type"), Some("application/json"));
    let body = post.body_json().unwrap();
    assert_eq!(body["cause"], cause);
    assert_eq!(
        body.as_object().unwrap().len(),
        13,
        "the cause and every override"
    );
    assert_eq!(
        spec.violations(&body, spec.schema("TriggerRunRequestRequest")),
        Vec::<String>::new()
    );
}
