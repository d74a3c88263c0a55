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
use crate::result_fields::{self, absent_status, Expected, Field, Status};

/// One node's result, as far as the table needs it, whatever the engine wrote: fields that newer
/// schemas add are ignored, fields that older ones (or the Fusion engine) leave out are empty,
/// and a field of another type is kept as the JSON says ([`Field`]).
#[derive(Debug, Deserialize)]
pub struct NodeResult {
    #[serde(default)]
    pub unique_id: Field<String>,
    #[serde(default = "absent_status")]
    pub status: Status,
    #[serde(default)]
    pub execution_time: Field<f64>,
    #[serde(default)]
    pub message: Field<String>,
    #[serde(default)]
    pub thread_id: Field<String>,
    #[serde(default)]
    pub failures: Field<i64>,
    #[serde(default)]
    pub adapter_response: Option<Value>,
    /// The node's table or view, when it has one (schema v5 and later).
    #[serde(default)]
    pub relation_name: Field<String>,
    #[serde(default)]
    pub timing: Field<Timing>,
    /// The decision of state-aware orchestration that built or reused the node (dbt platform,
    /// 2026).
    #[serde(default)]
    pub state_decision_id: Field<Identifier>,
}

/// The `compile` and `execute` phases of a node's `timing`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Timing(Vec<Phase>);

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Phase {
    pub name: String,
    #[serde(default)]
    pub started_at: Field<String>,
    #[serde(default)]
    pub completed_at: Field<String>,
}

impl Expected for Timing {
    fn from_json(value: Value) -> Result<Timing, Value> {
        serde_json::from_value(value.clone()).map_err(|_| value)
    }

    fn cell(&self) -> String {
        String::new()
    }
}

/// An id dbt may write as a string or a number: either is as expected, and written as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identifier(String);

impl Expected for Identifier {
    fn from_json(value: Value) -> Result<Identifier, Value> {
        match value {
            Value::String(text) => Ok(Identifier(text)),
            Value::Number(number) => Ok(Identifier(number.to_string())),
            other => Err(other),
        }
    }

    fn cell(&self) -> String {
        self.0.clone()
    }
}

impl NodeResult {
    /// The unique id as written: `model.jaffle_shop.orders`.
    pub fn unique_id(&self) -> String {
        self.unique_id.cell()
    }

    /// `model`, `test`, `seed`, ...: the first part of the unique id, which every schema has.
    pub fn resource_type(&self) -> String {
        match self.unique_id.expected() {
            Some(id) => id.split('.').next().unwrap_or_default().to_owned(),
            None => String::new(),
        }
    }

    /// Rows the node affected, as the adapter reported them: the JSON's number as written.
    pub fn rows_affected(&self) -> String {
        match self
            .adapter_response
            .as_ref()
            .and_then(|a| a.get("rows_affected"))
        {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// When the `compile` or `execute` phase started and completed.
    pub fn phase(&self, name: &str) -> (String, String) {
        let phase = self
            .timing
            .expected()
            .and_then(|timing| timing.0.iter().find(|phase| phase.name == name));
        match phase {
            Some(phase) => (phase.started_at.cell(), phase.completed_at.cell()),
            None => (String::new(), String::new()),
        }
    }

    /// Each field dbt wrote with another type than the tables expect, and what it wrote.
    pub fn oddities(&self, each: impl FnMut(&'static str, String)) {
        let mut fields: Vec<(&'static str, Option<&Value>)> = vec![
            ("execution_time", self.execution_time.odd()),
            ("message", self.message.odd()),
            ("thread_id", self.thread_id.odd()),
            ("failures", self.failures.odd()),
            ("relation_name", self.relation_name.odd()),
            ("timing", self.timing.odd()),
            ("state_decision_id", self.state_decision_id.odd()),
        ];
        for phase in self
            .timing
            .expected()
            .map_or(&[][..], |timing| &timing.0[..])
        {
            fields.push(("timing.started_at", phase.started_at.odd()));
            fields.push(("timing.completed_at", phase.completed_at.odd()));
        }
        result_fields::oddities(&self.status, &self.unique_id, &fields, each);
    }
}

/// What a streamed file says of itself: how many results it held, which dbt invocation wrote it
/// (`metadata.invocation_id`, else `generated_at`), and the items of its `results` that were no
/// result at all (not an object): how many, and the first as JSON. dbt Cloud keeps `target/`
/// across a run's steps, so a step that writes no file of its own shows an earlier step's: the
/// same invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Streamed {
    pub count: usize,
    pub invocation: Option<String>,
    pub not_results: Option<(usize, String)>,
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
    let mut cut = CutLongStrings::new(reader);
    let mut deserializer = serde_json::Deserializer::from_reader(std::io::BufReader::new(&mut cut));
    let mut artifact = Artifact {
        each,
        count: 0,
        not_results: None,
        failure: None,
        saw_results: false,
        metadata: None,
        node: std::marker::PhantomData,
    };
    let outcome = (&mut artifact)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    drop(deserializer);
    crate::long_strings::warn_lone_surrogates(cut.lone_surrogates(), file);
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
        not_results: artifact.not_results,
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
    not_results: Option<(usize, String)>,
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

    /// Each item as JSON first (one result's worth of memory), so that an item that is no
    /// result is counted and the file read on.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            let text = || crate::text::cut(&item.to_string());
            let node = match item {
                Value::Object(_) => T::deserialize(&item).map_err(|_| text()),
                _ => Err(text()),
            };
            let node = match node {
                Ok(node) => node,
                Err(written) => {
                    let (count, _) = self.0.not_results.get_or_insert((0, written));
                    *count += 1;
                    continue;
                }
            };
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
            .all(|n| n.status.as_str() == "success" || n.status.as_str() == "pass"));
        let first = &nodes[0];
        assert_eq!(
            first.unique_id(),
            "operation.billiam_database.billiam_database-on-run-end-0"
        );
        assert_eq!(first.resource_type(), "operation");
        assert_eq!(
            first.phase("compile"),
            (
                "2023-04-23T18:39:23.068333Z".to_owned(),
                "2023-04-23T18:39:23.071345Z".to_owned()
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
            assert_eq!(nodes[0].rows_affected(), "12");
            assert!(nodes[1]
                .message
                .cell()
                .contains("column \"first_name\" does not exist"));
            assert_eq!(nodes[2].failures, Field::Expected(3));
            assert_eq!(nodes[2].resource_type(), "test");
            assert_eq!(nodes[3].phase("execute"), (String::new(), String::new()));
            assert_eq!(nodes[5].resource_type(), "seed");
        }
    }

    #[test]
    fn what_is_not_run_results_is_refused() {
        for (text, expected) in [
            ("{}", "it has no \"results\""),
            ("[]", "is not dbt's run results"),
            ("{\"results\": [", "is not dbt's run results"),
            ("{\"results\": []} trailing", "is not dbt's run results"),
        ] {
            let error = for_each(text.as_bytes(), |_| Ok(()))
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    /// A node is a row whatever its fields: only a file that is not JSON leaves them all out.
    #[test]
    fn a_node_of_odd_fields_is_read_and_its_oddities_named() {
        let text = r#"{"results": [
            {"unique_id": "test.p.t", "status": "Fail", "failures": "Test failure",
             "message": {"code": 1}, "thread_id": 7, "execution_time": "1.5",
             "timing": [{"name": "execute", "started_at": 17, "completed_at": "e1"}],
             "state_decision_id": "d-1"},
            {"status": null},
            "not a result",
            {"unique_id": "model.p.m", "status": "Success", "timing": "soon",
             "adapter_response": {"rows_affected": 2.0}}
        ]}"#;
        let mut nodes = Vec::new();
        let streamed = for_each(text.as_bytes(), |node| {
            nodes.push(node);
            Ok(())
        })
        .unwrap();
        assert_eq!(streamed.count, 3);
        assert_eq!(
            streamed.not_results,
            Some((1, "\"not a result\"".to_owned()))
        );
        let odd = |node: &NodeResult| {
            let mut fields = Vec::new();
            node.oddities(|field, written| fields.push(format!("{field}={written}")));
            fields
        };
        assert_eq!(nodes[0].status.as_str(), "fail");
        assert_eq!(nodes[0].failures.cell(), "Test failure");
        assert_eq!(nodes[0].message.cell(), r#"{"code":1}"#);
        assert_eq!(nodes[0].thread_id.cell(), "7");
        assert_eq!(nodes[0].execution_time.cell(), "1.5");
        assert_eq!(
            nodes[0].phase("execute"),
            ("17".to_owned(), "e1".to_owned())
        );
        assert_eq!(nodes[0].state_decision_id.cell(), "d-1");
        assert_eq!(
            odd(&nodes[0]),
            [
                "execution_time=\"1.5\"",
                "message={\"code\":1}",
                "thread_id=7",
                "failures=\"Test failure\"",
                "timing.started_at=17"
            ]
        );
        assert_eq!(
            (nodes[1].unique_id(), nodes[1].status.as_str()),
            (String::new(), "")
        );
        assert_eq!(odd(&nodes[1]), ["status=null", "unique_id=nothing"]);
        assert_eq!(nodes[2].phase("execute"), (String::new(), String::new()));
        assert_eq!(nodes[2].rows_affected(), "2.0");
        assert_eq!(odd(&nodes[2]), ["timing=\"soon\""]);
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
