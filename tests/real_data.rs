//! Real data, replayed through the emulator: every number in the tables is exactly the number
//! in the artifact.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

/// Each `"key": <number>` of `text`, in order, as written.
fn numbers_after(text: &str, key: &str) -> Vec<String> {
    let pattern = format!("\"{key}\": ");
    text.match_indices(&pattern)
        .map(|(at, _)| {
            text[at + pattern.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || "+-.eE".contains(*c))
                .collect()
        })
        .collect()
}

#[test]
fn every_execution_time_is_exactly_the_artifacts_number() {
    let real = include_str!("data/run_results/v4-billiam-database.json");
    let emulator = emulator_with(
        job(Duration::from_millis(1200), Outcome::Success).artifacts(vec![Artifact::new(
            "run_results.json",
            real.as_bytes().to_vec(),
        )]),
    );
    let run = run_component(parameters(&emulator, json!({"wait_for_result": true})));
    run.assert_code(0);
    let rows = run.table_rows("dbt_cloud_run_results");
    let written = numbers_after(real, "execution_time");
    assert_eq!(rows.len(), written.len());
    let differing: Vec<String> = rows
        .iter()
        .zip(&written)
        .filter(|(row, source)| {
            let cell: f64 = row["execution_time"].parse().unwrap();
            let exact: f64 = source.parse().unwrap();
            cell.to_bits() != exact.to_bits()
        })
        .map(|(row, source)| format!("{source} became {}", row["execution_time"]))
        .collect();
    assert_eq!(differing, Vec::<String>::new());
}
