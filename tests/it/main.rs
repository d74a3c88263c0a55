//! The integration tests: the real binary against the dbt Cloud emulator on 127.0.0.1, one
//! module per concern, one helper module (`common`) through which every test starts the
//! component.

mod chain;
mod common;

mod config_schema;
mod container;
mod digest;
mod docs;
mod edges;
mod emulator_chain;
mod emulator_faults;
mod end_to_end;
mod features;
mod fusion;
mod hardening;
mod hostile;
mod job_selection;
mod keboola;
mod nightly;
mod openapi;
mod rate_and_polling;
mod real_data;
mod reliability;
mod sample_configs;
mod share;
mod signals;
mod steps;
mod sync_actions;
