//! A job on dbt's Fusion engine (`dbt_version` `latest-fusion`): its runs leave the files the
//! Fusion engine writes, not dbt Core's. The job's artifacts, given as dbt Core wrote them, are
//! rewritten as Fusion writes them when the job is added (a composite: Fusion's shape, the
//! test's content), and the Parquet files a Fusion step leaves are added, real ones
//! (`tests/data/real/SOURCES.md`):
//!
//! - `sources.json`: statuses capitalized (`Pass`, `Warn`, `Error`; Fusion has no `runtime
//!   error`, so such a source is left out), compact JSON;
//! - `run_results.json`: no `message` (but on skipped nodes), `compiled`, `compiled_code` or
//!   `batch_results`, `failures` only on tests, and the nodes in `error` left out (dbt-fusion
//!   #1130, #1437);
//! - the failed step's log in the Fusion engine's console format (`Failed [...]`, `error:
//!   dbtNNNN: ...`, `Summary: ...`), unless the test gives one;
//! - `metadata/telemetry-<step>-otel.parquet` in each dbt step's `target/`, and the docs index
//!   (`index/<table>/v1_0.parquet`) in the last step's.

use serde_json::{Map, Value};

use crate::scenario::{Artifact, Content, Job};

/// What the job's `dbt_version` says a Fusion job is.
pub fn is_fusion(job: &Job) -> bool {
    job.dbt_version.contains("fusion")
}

const OTEL: &[u8] = include_bytes!("../../data/real/parquet/metadata/otel.parquet");
const INDEX: [(&str, &[u8]); 3] = [
    (
        "index/nodes/v1_0.parquet",
        include_bytes!("../../data/real/parquet/index/nodes/v1_0.parquet"),
    ),
    (
        "index/run_results/v1_0.parquet",
        include_bytes!("../../data/real/parquet/index/run_results/v1_0.parquet"),
    ),
    (
        "index/source_freshness/v1_0.parquet",
        include_bytes!("../../data/real/parquet/index/source_freshness/v1_0.parquet"),
    ),
];

/// The job as the Fusion engine runs it.
pub fn as_fusion(mut job: Job) -> Job {
    if job.failed_step_log.is_none() {
        job.failed_step_log = Some(failed_step_log(&job));
    }
    let last = job.steps.len();
    for (index, artifacts) in job.step_artifacts.iter_mut() {
        rewrite(artifacts, *index);
    }
    rewrite(&mut job.artifacts, last);
    for (path, bytes) in INDEX {
        job.artifacts.push(Artifact::new(path, bytes.to_vec()));
    }
    job
}

/// A step's files as Fusion writes them, and its telemetry.
fn rewrite(artifacts: &mut Vec<Artifact>, step: usize) {
    for artifact in artifacts.iter_mut() {
        let Content::Bytes(bytes) = &artifact.content else {
            continue;
        };
        let Ok(mut json) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        let file = artifact.path.rsplit('/').next().unwrap_or_default();
        match file {
            "sources.json" => sources(&mut json),
            "run_results.json" => run_results(&mut json),
            _ => continue,
        }
        artifact.content = Content::Bytes(json.to_string().into_bytes());
    }
    artifacts.push(Artifact::new(
        format!("metadata/telemetry-{step}-otel.parquet"),
        OTEL.to_vec(),
    ));
}

fn results(json: &mut Value) -> Option<&mut Vec<Value>> {
    json.get_mut("results")?.as_array_mut()
}

fn sources(json: &mut Value) {
    let Some(results) = results(json) else {
        return;
    };
    results.retain(|result| result["status"] != "runtime error");
    for result in results {
        let status = result["status"].as_str().unwrap_or_default();
        let mut capitalized = status.chars();
        let status = match capitalized.next() {
            Some(first) => format!("{}{}", first.to_uppercase(), capitalized.as_str()),
            None => String::new(),
        };
        result["status"] = Value::String(status);
        if let Some(criteria) = result["criteria"].as_object_mut() {
            criteria.remove("filter");
        }
    }
}

fn run_results(json: &mut Value) {
    let Some(results) = results(json) else {
        return;
    };
    results.retain(|result| !matches!(result["status"].as_str(), Some("error" | "runtime error")));
    for result in results {
        let Some(fields) = result.as_object_mut() else {
            continue;
        };
        for field in ["compiled", "compiled_code", "batch_results"] {
            fields.remove(field);
        }
        if fields.get("status") != Some(&Value::from("skipped")) {
            fields.remove("message");
        }
        let is_test = fields
            .get("unique_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("test."));
        if !is_test {
            fields.remove("failures");
        }
    }
}

/// The failing step's console log as the Fusion engine writes it: a `Failed` line and an
/// `error:` block for each node in error of the step's results as dbt Core wrote them, then the
/// summary.
fn failed_step_log(job: &Job) -> String {
    let failing = job.failing_step.unwrap_or(job.steps.len());
    let results = job
        .artifacts_of_step(Some(failing))
        .and_then(|artifacts| artifacts.iter().find(|a| a.path == "run_results.json"))
        .and_then(|artifact| match &artifact.content {
            Content::Bytes(bytes) => serde_json::from_slice::<Value>(bytes).ok(),
            _ => None,
        });
    let nodes: Vec<Map<String, Value>> = results
        .as_ref()
        .and_then(|json| json["results"].as_array())
        .map(|results| {
            results
                .iter()
                .filter_map(|result| result.as_object().cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut log = String::from("dbt-fusion 2.0.0-preview.149\n");
    let mut counts = [0usize; 3];
    for node in &nodes {
        let id = node
            .get("unique_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut parts = id.split('.');
        let kind = parts.next().unwrap_or_default();
        let name = id.rsplit('.').next().unwrap_or_default();
        match node.get("status").and_then(Value::as_str) {
            Some("error" | "runtime error") => {
                counts[1] += 1;
                let message = node
                    .get("message")
                    .and_then(Value::as_str)
                    .and_then(|message| message.lines().find(|line| !line.trim().is_empty()))
                    .unwrap_or("failed");
                log.push_str(&format!(
                    "    Failed [  1.00s] {kind} analytics.{name} (table)\n\
                     error: dbt1501: {message}\n  --> models/{name}.sql:1:1\n"
                ));
            }
            Some("skipped") => {
                counts[2] += 1;
                log.push_str(&format!(
                    "   Skipped [-------] {kind} analytics.{name} (table)\n"
                ));
            }
            _ => {
                counts[0] += 1;
                log.push_str(&format!(
                    " Succeeded [  0.50s] {kind} analytics.{name} (table)\n"
                ));
            }
        }
    }
    let [success, error, skipped] = counts;
    log.push_str(&format!(
        "  Finished 'build' target 'prod' with {error} errors in 3s 120ms\n\
         ==================== Execution Summary ====================\n\
         Summary: {} total | {success} success | {error} error | {skipped} skipped\n",
        nodes.len()
    ));
    log
}
