//! The quick start: runs the whole job (trigger, wait, tables, artifacts) against a local dbt
//! Cloud emulator, using the sample `data/config.json` with its URL pointed at the emulator.
//!
//! `cargo run --example quickstart`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dbt_cloud_emulator::Emulator;

fn main() -> ExitCode {
    let emulator = Emulator::start();
    emulator.serve_demo();
    println!("dbt Cloud emulator listening at {}", emulator.base_url());

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data_dir = repo.join("target").join("quickstart-data");
    if let Err(error) = prepare(
        &repo.join("data").join("config.json"),
        &data_dir,
        emulator.base_url(),
    ) {
        eprintln!("could not prepare {}: {error}", data_dir.display());
        return ExitCode::from(2);
    }
    println!("Data folder: {}\n", data_dir.display());

    let code = dbt_cloud_job_trigger::cli::main([
        "dbt-cloud-job-trigger".into(),
        "--data-dir".into(),
        data_dir.clone().into_os_string(),
    ]);

    println!("\nOutputs:");
    for file in files_under(&data_dir) {
        println!("  {}", file.display());
    }
    code
}

/// A fresh copy of the sample data folder's config.json, pointed at the emulator.
fn prepare(sample: &Path, data_dir: &Path, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)?;
    }
    std::fs::create_dir_all(data_dir)?;
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(sample)?)?;
    config["parameters"]["dbt_cloud_url"] = url.into();
    std::fs::write(
        data_dir.join("config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    Ok(())
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
