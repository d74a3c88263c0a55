//! dbt's `sources.json`, written by `dbt source freshness`: one result per source table, read as
//! a stream like `run_results.json`, whose shape it shares.

use std::io::Read;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::result_fields::{self, absent_status, Field, Status};
use crate::run_results::{self, Streamed};

/// One source's freshness, as far as the table needs it. A source whose check itself failed
/// (`runtime error`) has only its id, its status and the error. Read as leniently as a node's
/// result ([`crate::run_results::NodeResult`]).
#[derive(Debug, Deserialize)]
pub struct SourceResult {
    #[serde(default)]
    pub unique_id: Field<String>,
    /// `pass`, `warn`, `error` or `runtime error` (the Fusion engine writes `Pass`, `Warn`,
    /// `Error`).
    #[serde(default = "absent_status")]
    pub status: Status,
    #[serde(default)]
    pub max_loaded_at: Field<String>,
    #[serde(default)]
    pub snapshotted_at: Field<String>,
    #[serde(default)]
    pub max_loaded_at_time_ago_in_s: Field<f64>,
    /// `warn_after`, `error_after` and `filter`, kept as dbt wrote them.
    #[serde(default)]
    pub criteria: Option<Value>,
    #[serde(default)]
    pub error: Field<String>,
    #[serde(default)]
    pub execution_time: Field<f64>,
}

impl SourceResult {
    pub fn unique_id(&self) -> String {
        self.unique_id.cell()
    }

    /// Each field dbt wrote with another type than the table expects, and what it wrote.
    pub fn oddities(&self, each: impl FnMut(&'static str, String)) {
        let fields = [
            ("max_loaded_at", self.max_loaded_at.odd()),
            ("snapshotted_at", self.snapshotted_at.odd()),
            (
                "max_loaded_at_time_ago_in_s",
                self.max_loaded_at_time_ago_in_s.odd(),
            ),
            ("error", self.error.odd()),
            ("execution_time", self.execution_time.odd()),
        ];
        result_fields::oddities(&self.status, &self.unique_id, &fields, each);
    }
}

/// Calls `each` for every source of the `results` list, in order.
pub fn for_each(
    reader: impl Read,
    each: impl FnMut(SourceResult) -> Result<()>,
) -> Result<Streamed> {
    run_results::stream(
        "sources.json",
        "dbt's source freshness results",
        reader,
        each,
    )
}
