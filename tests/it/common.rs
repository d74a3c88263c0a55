//! Helpers that let each test read as a scenario: an emulator with one account and job, a data
//! folder with a config.json, the real binary run against them, and readers for its outputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub use dbt_cloud_emulator::{Account, Artifact, Emulator, Job, Outcome, Timeline};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ACCOUNT: u64 = 43786;
pub const JOB: u64 = 567183;
pub const TOKEN: &str = "dbtc_T0pS3cr3t_t0ken_value_9f8e7d";

/// An emulator with the test account, its token, and `job`.
pub fn emulator_with(job: Job) -> Emulator {
    let emulator = Emulator::start();
    emulator.add_account(Account::new(ACCOUNT), &[TOKEN]);
    emulator.add_job(job);
    emulator
}

/// A job of the test account whose runs last `total` and end with `outcome`.
pub fn job(total: Duration, outcome: Outcome) -> Job {
    Job::new(ACCOUNT, JOB)
        .timeline(Timeline::lasting(total))
        .outcome(outcome)
}

/// A job of the test account whose runs take 1.2 s.
pub fn quick(outcome: Outcome) -> Job {
    job(Duration::from_millis(1200), outcome)
}

/// dbt Cloud's own steps, then the job's commands, as dbt Cloud names them today.
pub fn steps(commands: &[&str]) -> Vec<String> {
    let mut names = vec![
        "Clone git repository".to_owned(),
        "Create profile from connection Postgres".to_owned(),
        "Invoke dbt with `dbt deps`".to_owned(),
    ];
    names.extend(
        commands
            .iter()
            .map(|command| format!("Invoke dbt with `dbt {command}`")),
    );
    names
}

/// A quick job whose steps are dbt Cloud's own, then `commands` (`"build"`, ...).
pub fn job_with_steps(outcome: Outcome, commands: &[&str]) -> Job {
    let names = steps(commands);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    quick(outcome).steps(&names)
}

/// A file of `tests/data/real/` (`SOURCES.md` says where each comes from).
pub fn real(path: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/real/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The parameters that reach `emulator`, with `extra` merged over them.
pub fn parameters(emulator: &Emulator, extra: Value) -> Value {
    let mut parameters = json!({
        "account_id": ACCOUNT,
        "job_id": JOB,
        "#api_key": TOKEN,
        "dbt_cloud_url": emulator.base_url(),
    });
    for (key, value) in extra.as_object().expect("extra parameters are an object") {
        parameters[key] = value.clone();
    }
    parameters
}

/// Parameters that wait for the run, with `extra` merged over them.
pub fn waiting(extra: Value) -> Value {
    let mut parameters = json!({"wait_for_result": true});
    for (key, value) in extra.as_object().expect("extra parameters are an object") {
        parameters[key] = value.clone();
    }
    parameters
}

pub struct Run {
    pub dir: TempDir,
    pub output: Output,
}

impl Run {
    pub fn data(&self) -> &Path {
        self.dir.path()
    }

    pub fn code(&self) -> i32 {
        self.output
            .status
            .code()
            .expect("the component exited, not killed")
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Fails the test with everything needed to see why, when the exit code is not `expected`.
    pub fn assert_code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.code(),
            expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}\n--- files\n{:#?}",
            self.stdout(),
            self.stderr(),
            files_under(self.data())
        );
        self
    }

    /// The one row of an output table, column → cell, and the header in order.
    pub fn table(&self, name: &str) -> (Vec<String>, BTreeMap<String, String>) {
        let (header, mut rows) = self.read_table(name);
        assert_eq!(rows.len(), 1, "{name} has one row");
        (header, rows.remove(0))
    }

    /// Every row of a table, column → cell.
    pub fn table_rows(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.read_table(name).1
    }

    fn read_table(&self, name: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
        let path = self.data().join("out/tables").join(format!("{name}.csv"));
        let mut reader =
            csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|record| {
                header
                    .iter()
                    .cloned()
                    .zip(record.unwrap().iter().map(str::to_owned))
                    .collect()
            })
            .collect();
        (header, rows)
    }

    pub fn manifest(&self, name: &str) -> Value {
        let path = self
            .data()
            .join("out/tables")
            .join(format!("{name}.csv.manifest"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.data().join("artifacts/out/current")
    }
}

/// Runs the real binary on a fresh data folder holding `config.json` = `{"parameters": ...}`.
pub fn run_component(parameters: Value) -> Run {
    run_component_with(
        Some(json!({"parameters": parameters, "action": "run"}).to_string()),
        &[],
    )
}

/// Runs the real binary; `config` is config.json's text (none when `None`), `env` extra variables.
pub fn run_component_with(config: Option<String>, env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    if let Some(config) = config {
        std::fs::write(dir.path().join("config.json"), config).unwrap();
    }
    let mut command = component(dir.path());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("the binary runs");
    Run { dir, output }
}

/// Runs the real binary on `dir`, prepared by the test, after writing `parameters` into it.
pub fn run_component_in(dir: TempDir, parameters: Value) -> Run {
    write_config(dir.path(), parameters);
    let output = component(dir.path()).output().expect("the binary runs");
    Run { dir, output }
}

pub fn write_config(data: &Path, parameters: Value) {
    std::fs::write(
        data.join("config.json"),
        json!({"parameters": parameters}).to_string(),
    )
    .unwrap();
}

/// The one way tests start the component: the binary with the fast test timing and no inherited
/// settings, its output piped. The data folder is the test's to give (see [`component`]).
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbt-cloud-job-trigger"));
    command
        .env_remove("KBC_DATADIR")
        .env_remove("KBC_CONFIGID")
        .env_remove("KBC_DATA_TYPE_SUPPORT")
        .env_remove("KBC_RUNID")
        .env_remove("KBC_PROJECTID")
        .env_remove("KBC_PROJECTNAME")
        .env_remove("KBC_STACKID")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("SSL_CERT_FILE")
        .env_remove("RUST_LOG")
        // Retries and timeouts in milliseconds, so that fault tests take seconds.
        .env("DBT_CLOUD_TRIGGER_TEST_TIMING", "fast")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// The binary on the data folder `data`.
pub fn component(data: &Path) -> Command {
    let mut command = binary();
    command.arg("--data-dir").arg(data);
    command
}

/// How many `method` requests to a path ending in `path_end` the emulator saw.
pub fn count(emulator: &Emulator, method: &str, path_end: &str) -> usize {
    emulator.requests_to(method, path_end).len()
}

/// Each artifact is in the run's artifacts folder with exactly the bytes the emulator served.
pub fn assert_artifacts(run: &Run, artifacts: &[Artifact]) {
    for artifact in artifacts {
        let path = run.artifacts_dir().join(&artifact.path);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes == artifact.bytes(),
            "{} differs from what was served",
            artifact.path
        );
    }
}

/// Every file below `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    files.sort();
    files
}

/// A TLS server's configuration with the test certificate of `tests/data/tls/<folder>` (the
/// untrusted one at the top, `getdbt` for the local cloud.getdbt.com).
pub fn tls_server_config(folder: &str) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(folder);
    let certs = vec![CertificateDer::from_pem_file(data.join("cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(data.join("key.pem")).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    )
}
