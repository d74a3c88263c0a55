//! The command line, logging set-up, and the one place that turns an outcome into an exit code:
//! 0 success, 1 the user's to fix (shown to them by Keboola), 2 our own fault.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::component;
use crate::config::{self, Config, DataTypeSupport, Request, Wait};
use crate::data_folder::{DataFolder, Place};
use crate::dbt_cloud::{Connection, DbtCloud};
use crate::error::{details, exit_code};
use crate::keboola::KeboolaJob;
use crate::sync_actions;
use crate::tables::{self, Writer};
use crate::termination::Termination;
use crate::text::printable;
use crate::timing::Timing;

/// A synchronous action makes a handful of requests; the ceiling only has to exist.
const MAX_SYNC_REQUESTS_PER_MINUTE: u32 = 600;

/// Everything the environment gives, read once: the command line and Keboola's variables.
#[derive(Parser)]
#[command(
    version,
    about = "Trigger a dbt Cloud job, wait for it, and save its run and artifacts"
)]
struct Args {
    /// The Keboola data folder holding config.json; outputs go below it.
    #[arg(long, env = "KBC_DATADIR", default_value = "/data/")]
    data_dir: PathBuf,
    /// The configuration's id, which names the tables' bucket.
    #[arg(long, env = "KBC_CONFIGID", hide = true)]
    config_id: Option<String>,
    /// The Keboola job running this component, for the run's cause.
    #[arg(long, env = "KBC_RUNID", hide = true)]
    keboola_job: Option<String>,
    #[arg(long, env = "KBC_PROJECTID", hide = true)]
    project_id: Option<String>,
    #[arg(long, env = "KBC_PROJECTNAME", hide = true)]
    project_name: Option<String>,
    /// The Keboola stack's host, e.g. `connection.keboola.com`.
    #[arg(long, env = "KBC_STACKID", hide = true)]
    stack: Option<String>,
    /// The project's native data types: `authoritative`, `hints` or none.
    #[arg(long, env = "KBC_DATA_TYPE_SUPPORT", hide = true)]
    data_type_support: Option<String>,
    /// `fast` shrinks every timeout and retry, for the tests.
    #[arg(long, env = "DBT_CLOUD_TRIGGER_TEST_TIMING", hide = true)]
    test_timing: Option<String>,
}

impl Args {
    fn keboola_job(&self) -> KeboolaJob {
        KeboolaJob {
            job_id: self.keboola_job.clone(),
            project_id: self.project_id.clone(),
            project_name: self.project_name.clone(),
            config_id: self.config_id.clone(),
            stack: self.stack.clone(),
        }
    }

    fn timing(&self) -> Timing {
        match self.test_timing.as_deref() {
            Some("fast") => Timing::fast(),
            _ => Timing::standard(),
        }
    }
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
    let folder = DataFolder::new(args.data_dir.clone());
    let timing = args.timing();
    let result = config::load(&folder.config_file()).and_then(|request| match request {
        Request::Run(config) => run(&config, &args, &folder),
        Request::TestConnection(connection, job) => answer(&connection, timing, |client| {
            let retiring = config::retiring_url(&connection);
            sync_actions::test_connection(client, connection.account_id, job.as_ref(), retiring)
        }),
        Request::ListJobs(connection) => answer(&connection, timing, sync_actions::list_jobs),
        Request::ListRecentRuns(connection, job) => answer(&connection, timing, |client| {
            sync_actions::list_recent_runs(client, &job)
        }),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if exit_code(&error) == 1 => {
            // The message is one paragraph; each detail line (the failure digest) is its own,
            // every one escaped so that server text cannot add lines of its own.
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{}", printable(&format!("{error:#}")));
            for line in details(&error) {
                let _ = writeln!(stderr, "{}", printable(line));
            }
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

fn run(config: &Config, args: &Args, folder: &DataFolder) -> anyhow::Result<()> {
    init_logging(config.debug);
    let scratch = folder.scratch_dir().to_owned();
    let termination = Termination::install(move || {
        let _ = std::fs::remove_dir_all(scratch);
    })?;
    // config.json's storage.output.data_type_support overrides the project's setting.
    let types = config.data_type_support.unwrap_or_else(|| {
        DataTypeSupport::from_name(args.data_type_support.as_deref().unwrap_or_default())
    });
    let mut places = vec![("its tables", Place::Folder(folder.tables_dir()))];
    places.extend(
        tables::files(folder)
            .into_iter()
            .map(|file| ("a table", Place::File(file))),
    );
    if config.artifacts.download && config.wait != Wait::No {
        places.push(("the artifacts", Place::Folder(folder.artifacts_dir())));
        places.push((
            "the other steps' files",
            Place::Folders(folder.artifacts_dir().join(crate::artifacts::STEPS)),
        ));
    }
    if config.artifacts.zip {
        places.push(("the artifacts' zip", Place::Folder(folder.files_dir())));
    }
    folder.check_writable(&places)?;
    let tables = Writer::new(
        folder,
        tables::bucket_for(args.config_id.as_deref()),
        types.typed(),
    );
    let cause = args.keboola_job().cause(config.start.cause.as_deref());
    component::run(config, &cause, &tables, args.timing(), &termination)
}

/// A synchronous action: no logs, so that stdout holds exactly the one JSON document.
fn answer(
    connection: &Connection,
    timing: Timing,
    action: impl FnOnce(&DbtCloud) -> anyhow::Result<serde_json::Value>,
) -> anyhow::Result<()> {
    let timing = timing.for_sync_action();
    let client = DbtCloud::new(
        connection,
        Some(MAX_SYNC_REQUESTS_PER_MINUTE),
        timing,
        Termination::none(),
    )?;
    // dbt Cloud may echo the token in any string it sends (a job's name, a run's link or
    // cause): every string of every action's document is masked here, as the job's log and
    // tables are.
    let document = crate::secret::mask_json(action(&client)?);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{document}").context("could not write the answer to stdout")?;
    Ok(())
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
