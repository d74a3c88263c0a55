//! dbt's `sources.json`, written by `dbt source freshness`: one result per source table, read as
//! a stream like `run_results.json`, whose shape it shares.

use std::io::Read;

use anyhow::Result;
use serde::Deserialize;
use serde_json::Value;

use crate::run_results::{self, Streamed};

/// One source's freshness, as far as the table needs it. A source whose check itself failed
/// (`runtime error`) has only its id, its status and the error.
#[derive(Debug, Deserialize)]
pub struct SourceResult {
    pub unique_id: String,
    /// `pass`, `warn`, `error` or `runtime error`, as dbt wrote it.
    pub status: String,
    #[serde(default)]
    pub max_loaded_at: Option<String>,
    #[serde(default)]
    pub snapshotted_at: Option<String>,
    #[serde(default)]
    pub max_loaded_at_time_ago_in_s: Option<f64>,
    /// `warn_after`, `error_after` and `filter`, kept as dbt wrote them.
    #[serde(default)]
    pub criteria: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub execution_time: Option<f64>,
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
