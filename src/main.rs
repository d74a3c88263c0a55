use std::process::ExitCode;

fn main() -> ExitCode {
    dbt_cloud_job_trigger::cli::main(std::env::args_os())
}
