//! dbt-cloud-job-trigger: triggers a dbt Cloud job, optionally waits for it, and saves the run and
//! its artifacts into a Keboola data folder. See ARCHITECTURE.md for the map.

mod artifacts;
mod chain;
pub mod cli;
mod component;
pub mod config;
mod data_folder;
mod dbt_cloud;
mod dbt_log;
mod digest;
mod error;
mod findings;
mod freshness;
mod keboola;
mod long_strings;
mod result_fields;
mod retry;
mod run_results;
mod secret;
mod steps;
mod sync_actions;
mod tables;
mod termination;
mod text;
mod timing;
mod wait;

#[cfg(test)]
mod no_panic_tests;
