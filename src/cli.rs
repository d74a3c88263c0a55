//! The command line, logging set-up, and the one place that turns an outcome into an exit code:
//! 0 success, 1 the user's to fix (shown to them by Keboola), 2 our own fault.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::component::{self, Output};
use crate::config::{self, Config, DataTypeSupport, Request};
use crate::data_folder::DataFolder;
use crate::dbt_cloud::{Connection, DbtCloud};
use crate::error::is_user_error;
use crate::termination::Termination;
use crate::timing::Timing;
use crate::{sync_actions, tables};

/// A synchronous action makes a handful of requests; the ceiling only has to exist.
const MAX_SYNC_REQUESTS_PER_MINUTE: u32 = 600;

#[derive(Parser)]
#[command(
    version,
    about = "Trigger a dbt Cloud job, wait for it, and save its run and artifacts"
)]
struct Args {
    /// The Keboola data folder holding config.json; outputs go below it.
    #[arg(long, env = "KBC_DATADIR", default_value = "/data/")]
    data_dir: PathBuf,
}

/// A panic is a bug of ours: exit 2 with one paragraph on stderr, and the destructors still run
/// (the scratch folder goes) because the panic is caught here rather than aborting.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        let _ = writeln!(
            std::io::stderr(),
            "Internal error of dbt-cloud-job-trigger: it panicked ({message}){place}. This is a bug; \
             please report it with the job's log. Outputs already written are whole; nothing \
             half-written was left."
        );
    }));
    guarded(|| run_main(args))
}

fn guarded(job: impl FnOnce() -> ExitCode) -> ExitCode {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(ExitCode::from(2))
}

fn run_main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let folder = DataFolder::new(args.data_dir);
    let result = config::load(&folder.config_file()).and_then(|request| match request {
        Request::Run(config) => run(&config, &folder),
        Request::TestConnection(connection, job) => answer(&connection, |client| {
            sync_actions::test_connection(client, job)
        }),
        Request::ListJobs(connection) => answer(&connection, sync_actions::list_jobs),
        Request::ListRecentRuns(connection, job) => answer(&connection, |client| {
            sync_actions::list_recent_runs(client, job)
        }),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_user_error(&error) => {
            let _ = writeln!(std::io::stderr(), "{}", printable(&format!("{error:#}")));
            ExitCode::from(1)
        }
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "Internal error of dbt-cloud-job-trigger: {}",
                printable(&format!("{error:#}"))
            );
            ExitCode::from(2)
        }
    }
}

fn run(config: &Config, folder: &DataFolder) -> anyhow::Result<()> {
    init_logging(config.debug);
    let scratch = folder.scratch_dir().to_owned();
    let termination = Termination::install(move || {
        let _ = std::fs::remove_dir_all(scratch);
    })?;
    let bucket = tables::bucket_for(std::env::var("KBC_CONFIGID").ok().as_deref());
    // config.json's storage.output.data_type_support overrides the project's setting.
    let types = config.data_type_support.unwrap_or_else(|| {
        DataTypeSupport::from_name(&std::env::var("KBC_DATA_TYPE_SUPPORT").unwrap_or_default())
    });
    let output = Output {
        folder,
        bucket: &bucket,
        typed: types.typed(),
    };
    component::run(config, &output, Timing::from_env(), &termination)
}

/// A synchronous action: no logs, so that stdout holds exactly the one JSON document.
fn answer(
    connection: &Connection,
    action: impl FnOnce(&DbtCloud) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<()> {
    let timing = Timing::from_env().for_sync_action();
    let client = DbtCloud::new(
        connection,
        MAX_SYNC_REQUESTS_PER_MINUTE,
        timing,
        Termination::none(),
    )?;
    let document = action(&client)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{document}").context("could not write the answer to stdout")?;
    Ok(())
}

/// Text as one line that shows what it holds: dbt Cloud's strings (a status message, a step
/// name, a cause) reach our log and errors, and a newline or a terminal escape in them must not
/// forge a line of ours or break the one-paragraph error.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// Logs go to stdout, which Keboola streams live into the job's events; errors go to stderr.
/// `RUST_LOG`, when set, overrides the `debug` parameter.
fn init_logging(debug: bool) {
    let default = if debug {
        "warn,dbt_cloud_job_trigger=debug"
    } else {
        "warn,dbt_cloud_job_trigger=info"
    };
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .target(env_logger::Target::Stdout)
        .format(|buf, record| {
            writeln!(
                buf,
                "{} {:<5} {}",
                buf.timestamp_seconds(),
                record.level(),
                printable(&record.args().to_string())
            )
        })
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            printable("Failed.\n2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\u{1b}[2K"),
            "Failed.\\n2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\\u{1b}[2K"
        );
    }

    #[test]
    fn a_panic_anywhere_in_the_job_is_exit_2_and_unwinds() {
        struct Dropped<'a>(&'a std::cell::Cell<bool>);
        impl Drop for Dropped<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = std::cell::Cell::new(false);
        let code = guarded(|| {
            let _scratch = Dropped(&dropped);
            std::thread::scope(|scope| {
                scope.spawn(|| panic!("a bug in a download thread"));
            });
            ExitCode::SUCCESS
        });
        assert_eq!(code, ExitCode::from(2));
        assert!(dropped.get(), "destructors ran: the scratch folder goes");
        assert_eq!(guarded(|| ExitCode::from(1)), ExitCode::from(1));
    }
}
