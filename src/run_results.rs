//! dbt's `run_results.json` (schema versions v4 to v6), read as a stream: one node at a time,
//! so that a project of thousands of nodes costs the memory of one.

use std::fmt;
use std::io::Read;

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::long_strings::CutLongStrings;

/// One node's result, as far as the table needs it. Fields that newer schemas add are ignored;
/// fields that older ones lack are empty.
#[derive(Debug, Deserialize)]
pub struct NodeResult {
    pub unique_id: String,
    pub status: String,
    #[serde(default)]
    pub execution_time: Option<f64>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub failures: Option<i64>,
    #[serde(default)]
    pub adapter_response: Option<Value>,
    /// The node's table or view, when it has one (schema v5 and later).
    #[serde(default)]
    pub relation_name: Option<String>,
    #[serde(default)]
    pub timing: Vec<Phase>,
}

#[derive(Debug, Deserialize)]
pub struct Phase {
    pub name: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
}

impl NodeResult {
    /// `model`, `test`, `seed`, ...: the first part of the unique id, which every schema has.
    pub fn resource_type(&self) -> &str {
        self.unique_id.split('.').next().unwrap_or_default()
    }

    pub fn rows_affected(&self) -> Option<i64> {
        self.adapter_response
            .as_ref()?
            .get("rows_affected")?
            .as_i64()
    }

    /// When the `compile` or `execute` phase started and completed.
    pub fn phase(&self, name: &str) -> (Option<&str>, Option<&str>) {
        match self.timing.iter().find(|t| t.name == name) {
            Some(t) => (t.started_at.as_deref(), t.completed_at.as_deref()),
            None => (None, None),
        }
    }
}

/// What a streamed file says of itself: how many results it held, and which dbt invocation
/// wrote it (`metadata.invocation_id`, else `generated_at`). dbt Cloud keeps `target/` across a
/// run's steps, so a step that writes no file of its own shows an earlier step's: the same
/// invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamed {
    pub count: usize,
    pub invocation: Option<String>,
}

/// Calls `each` for every node of the `results` list, in order.
pub fn for_each(reader: impl Read, each: impl FnMut(NodeResult) -> Result<()>) -> Result<Streamed> {
    stream("run_results.json", "dbt's run results", reader, each)
}

/// Streams the `results` list of one of dbt's artifacts that share run_results.json's shape
/// (`metadata`, then `results`): `file` and `what` name it in errors.
pub fn stream<T: DeserializeOwned>(
    file: &str,
    what: &str,
    reader: impl Read,
    each: impl FnMut(T) -> Result<()>,
) -> Result<Streamed> {
    // A node's message may be hundreds of megabytes (a compiled query in an error): cut.
    let reader = std::io::BufReader::new(CutLongStrings::new(reader));
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut artifact = Artifact {
        each,
        count: 0,
        failure: None,
        saw_results: false,
        metadata: None,
        node: std::marker::PhantomData,
    };
    let outcome = (&mut artifact)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    if let Some(failure) = artifact.failure {
        return Err(failure);
    }
    outcome.map_err(|e| anyhow!("{file} is not {what}: {e}"))?;
    if !artifact.saw_results {
        return Err(anyhow!("{file} is not {what}: it has no \"results\""));
    }
    let metadata = artifact.metadata.unwrap_or_default();
    Ok(Streamed {
        count: artifact.count,
        invocation: metadata.invocation_id.or(metadata.generated_at),
    })
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    invocation_id: Option<String>,
    #[serde(default)]
    generated_at: Option<String>,
}

/// The top-level object: `results` is streamed, `metadata` read, everything else skipped.
struct Artifact<F, T> {
    each: F,
    count: usize,
    /// An error of `each`, kept whole (serde errors carry only text).
    failure: Option<anyhow::Error>,
    saw_results: bool,
    metadata: Option<Metadata>,
    node: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned, F: FnMut(T) -> Result<()>> DeserializeSeed<'de>
    for &mut Artifact<F, T>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T) -> Result<()>> Visitor<'de> for &mut Artifact<F, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object with results")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "results" => {
                    self.saw_results = true;
                    map.next_value_seed(Results(&mut *self))?;
                }
                "metadata" => self.metadata = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct Results<'a, F, T>(&'a mut Artifact<F, T>);

impl<'de, T: DeserializeOwned, F: FnMut(T) -> Result<()>> DeserializeSeed<'de>
    for Results<'_, F, T>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: DeserializeOwned, F: FnMut(T) -> Result<()>> Visitor<'de> for Results<'_, F, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of results")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(node) = seq.next_element::<T>()? {
            self.0.count += 1;
            if let Err(error) = (self.0.each)(node) {
                self.0.failure = Some(error);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(text: &str) -> Vec<NodeResult> {
        let mut nodes = Vec::new();
        let streamed = for_each(text.as_bytes(), |node| {
            nodes.push(node);
            Ok(())
        })
        .unwrap();
        assert_eq!(streamed.count, nodes.len());
        nodes
    }

    #[test]
    fn a_real_v4_file_from_dbt_1_4() {
        let nodes = nodes(include_str!(
            "../tests/data/run_results/v4-billiam-database.json"
        ));
        assert_eq!(
            nodes.len(),
            37,
            "30 models, seeds and tests, and the on-run hooks"
        );
        assert!(nodes
            .iter()
            .all(|n| n.status == "success" || n.status == "pass"));
        let first = &nodes[0];
        assert_eq!(
            first.unique_id,
            "operation.billiam_database.billiam_database-on-run-end-0"
        );
        assert_eq!(first.resource_type(), "operation");
        assert_eq!(
            first.phase("compile"),
            (
                Some("2023-04-23T18:39:23.068333Z"),
                Some("2023-04-23T18:39:23.071345Z")
            )
        );
    }

    #[test]
    fn v5_and_v6_with_error_fail_skipped_and_runtime_error_nodes() {
        for text in [
            include_str!("../tests/data/run_results/v5-failures.json"),
            include_str!("../tests/data/run_results/v6-failures.json"),
        ] {
            let nodes = nodes(text);
            let statuses: Vec<&str> = nodes.iter().map(|n| n.status.as_str()).collect();
            assert_eq!(
                statuses,
                [
                    "success",
                    "error",
                    "fail",
                    "skipped",
                    "runtime error",
                    "success"
                ]
            );
            assert_eq!(nodes[0].rows_affected(), Some(12));
            assert!(nodes[1]
                .message
                .as_deref()
                .unwrap()
                .contains("column \"first_name\" does not exist"));
            assert_eq!(nodes[2].failures, Some(3));
            assert_eq!(nodes[2].resource_type(), "test");
            assert_eq!(nodes[3].phase("execute"), (None, None));
            assert_eq!(nodes[5].resource_type(), "seed");
        }
    }

    #[test]
    fn what_is_not_run_results_is_refused() {
        for (text, expected) in [
            ("{}", "it has no \"results\""),
            ("[]", "is not dbt's run results"),
            (
                "{\"results\": [{\"status\": \"success\"}]}",
                "missing field `unique_id`",
            ),
            ("{\"results\": [", "is not dbt's run results"),
            ("{\"results\": []} trailing", "is not dbt's run results"),
        ] {
            let error = for_each(text.as_bytes(), |_| Ok(()))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn an_error_of_the_callback_stops_the_stream_and_is_kept() {
        let text = include_str!("../tests/data/run_results/v5-failures.json");
        let mut seen = 0;
        let error = for_each(text.as_bytes(), |_| {
            seen += 1;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert_eq!((seen, error.to_string()), (1, "disk full".to_owned()));
    }
}
