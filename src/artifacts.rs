//! A final run's artifacts (manifest.json, run_results.json, compiled SQL, ...), downloaded into
//! `artifacts/out/current/<path>` with their folders kept and their bytes exactly as served.
//!
//! Each file is streamed to a scratch file, checked against its `Content-Length`, retried when
//! short or broken, and renamed into place only when complete. dbt Cloud uploads artifacts
//! asynchronously: right after a run finishes, `artifacts_saved` can still be false, the list
//! empty, or a listed file 404; each is waited out briefly rather than reported as missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use log::{info, warn};

use crate::data_folder::DataFolder;
use crate::dbt_cloud::{Budget, DbtCloud, Run};
use crate::retry::{retry, AttemptError};

/// How long a finished run may take to report its artifacts saved.
const SAVE_GRACE: Duration = Duration::from_secs(60);
const SAVE_POLL: Duration = Duration::from_secs(2);
/// How often a briefly empty list is asked again.
const LIST_ATTEMPTS: u32 = 4;
const LIST_PAUSE: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Downloaded {
    pub listed: usize,
    pub files: usize,
    pub bytes: u64,
    /// Paths that still failed after retries.
    pub failed: Vec<String>,
    /// Paths refused because they would leave the artifacts folder.
    pub skipped: Vec<String>,
}

/// The run once dbt Cloud says its artifacts are saved, or as it stands after a grace period.
/// A run that never started (cancelled while queued) has none, so it is not waited for.
pub fn wait_until_saved(client: &DbtCloud, run: Run) -> Result<Run> {
    if run.artifacts_saved || !run.has_started {
        return Ok(run);
    }
    info!(
        "Run {} finished; waiting for dbt Cloud to save its artifacts",
        run.id
    );
    let deadline = Instant::now() + SAVE_GRACE;
    let mut run = run;
    while !run.artifacts_saved && Instant::now() < deadline {
        client.termination().sleep(SAVE_POLL)?;
        run = client.get_run(run.id, Budget::Standard)?;
    }
    if !run.artifacts_saved {
        warn!(
            "dbt Cloud has not marked the artifacts of run {} saved after {} s; fetching what it lists",
            run.id,
            SAVE_GRACE.as_secs()
        );
    }
    Ok(run)
}

/// Downloads every artifact the run lists. An `Err` means the list itself could not be had (or
/// a signal came); files that fail are counted in [`Downloaded::failed`].
pub fn download_all(client: &DbtCloud, folder: &DataFolder, run: &Run) -> Result<Downloaded> {
    let paths = list(client, run)?;
    let target = folder.artifacts_dir();
    let mut done = Downloaded {
        listed: paths.len(),
        ..Downloaded::default()
    };
    if paths.is_empty() {
        info!("Run {} has no artifacts", run.id);
        return Ok(done);
    }
    info!(
        "Downloading {} artifacts of run {} into {}",
        paths.len(),
        run.id,
        target.display()
    );
    let mut last_progress = Instant::now();
    for path in paths {
        client.termination().check()?;
        let Some(relative) = safe_relative_path(&path) else {
            warn!("Skipped artifact {path:?}: its path would leave the artifacts folder");
            done.skipped.push(path);
            continue;
        };
        match download_one(client, folder, run, &path, &target.join(relative)) {
            Ok(bytes) => {
                done.files += 1;
                done.bytes += bytes;
            }
            Err(error) => {
                client.termination().check()?;
                warn!("Artifact {path} could not be downloaded: {error:#}");
                done.failed.push(path);
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            info!(
                "Artifacts: {} of {} files, {} bytes",
                done.files, done.listed, done.bytes
            );
            last_progress = Instant::now();
        }
    }
    Ok(done)
}

/// The list, asked again for a while when it is empty although the run says artifacts were saved.
fn list(client: &DbtCloud, run: &Run) -> Result<Vec<String>> {
    let mut attempt = 1;
    loop {
        let paths = client.list_artifacts(run.id)?;
        if !paths.is_empty() || !run.artifacts_saved || attempt == LIST_ATTEMPTS {
            return Ok(paths);
        }
        info!(
            "dbt Cloud lists no artifacts for run {} yet; asking again",
            run.id
        );
        client.termination().sleep(LIST_PAUSE)?;
        attempt += 1;
    }
}

fn download_one(
    client: &DbtCloud,
    folder: &DataFolder,
    run: &Run,
    path: &str,
    destination: &Path,
) -> Result<u64> {
    let what = format!("Downloading artifact {path}");
    retry(&what, client.retry_policy(), client.termination(), || {
        // A fresh scratch file per attempt: a broken attempt's bytes never mix with the next.
        let file = folder.scratch_file()?;
        let bytes = client.download_artifact(run.id, path, &mut file.as_file())?;
        folder
            .persist(file, destination)
            .map_err(AttemptError::Fatal)?;
        Ok(bytes)
    })
}

/// The path of an artifact below the artifacts folder, or `None` when the path from the API could
/// point anywhere else: absolute, `..`, a backslash, a NUL, a drive prefix, an empty segment.
fn safe_relative_path(path: &str) -> Option<PathBuf> {
    let forbidden = |c: char| c == '\\' || c.is_control();
    if path.is_empty() || path.starts_with('/') || path.contains(forbidden) {
        return None;
    }
    let segments: Vec<&str> = path.split('/').collect();
    let has_drive = segments[0].len() >= 2 && segments[0].as_bytes()[1] == b':';
    if has_drive
        || segments
            .iter()
            .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return None;
    }
    Some(segments.iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_paths_keep_their_folders() {
        assert_eq!(
            safe_relative_path("manifest.json"),
            Some(PathBuf::from("manifest.json"))
        );
        assert_eq!(
            safe_relative_path("compiled/proj/models/a b.sql"),
            Some(PathBuf::from("compiled/proj/models/a b.sql"))
        );
        assert_eq!(
            safe_relative_path("run/..x/y"),
            Some(PathBuf::from("run/..x/y"))
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        for path in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "..\\x",
            "C:/x",
            "c:x",
            "a\0b",
            "a\nb",
        ] {
            assert_eq!(safe_relative_path(path), None, "{path:?}");
        }
    }
}
