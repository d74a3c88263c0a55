//! A final run's artifacts (manifest.json, run_results.json, compiled SQL, ...), downloaded into
//! `artifacts/out/current/<path>` with their folders kept and their bytes exactly as served.
//!
//! Each file is streamed to a scratch file, checked against its `Content-Length`, retried when
//! short, broken or stalled, and renamed into place only when complete. dbt Cloud uploads
//! artifacts asynchronously: right after a run finishes, `artifacts_saved` can still be false, the
//! list empty, or a listed file 404; each is waited out briefly rather than reported as missing,
//! and the 404s of all files share one budget.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use log::{info, warn};
use tempfile::NamedTempFile;

use crate::config::{ArtifactSettings, Selection};
use crate::data_folder::{DataFolder, Labelled};
use crate::dbt_cloud::{
    ArtifactRef, Budget, DbtCloud, Destination, DownloadLimits, IfMissing, JobId, Purpose,
    RefusalKind, Run, RunStatus, Share,
};
use crate::error::Bug;
use crate::retry::SharedBudget;
use crate::text::{counted, first_few, plural, size};

const SAVE_POLL: Duration = Duration::from_secs(2);
/// How often a briefly empty list is asked again.
const LIST_ATTEMPTS: u32 = 4;
const LIST_PAUSE: Duration = Duration::from_secs(2);
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Per download in flight: memory stays flat however large the artifact.
const WRITE_BUFFER: usize = 256 * 1024;
/// A summary names this many paths, and how many more.
const NAMED: usize = 5;

#[derive(Debug, Default)]
pub struct Downloaded {
    /// The last step's listed artifacts, and the other steps' files asked for on the chance.
    pub listed: usize,
    pub files: usize,
    pub bytes: u64,
    /// The paths downloaded, relative to the artifacts folder.
    pub paths: Vec<String>,
    /// Listed but left out by `artifacts_include`.
    pub excluded: usize,
    /// Paths that still failed after retries, in order, each with why.
    pub failed: Vec<(String, String)>,
    /// The last step's artifacts as dbt Cloud lists them, all of them: the steps' files are
    /// looked for in it rather than in a second list.
    pub list: Vec<String>,
    /// Paths refused because they would leave the artifacts folder.
    pub skipped: Vec<String>,
    /// Other steps' files that dbt Cloud does not have: the step wrote none.
    pub absent: Vec<String>,
}

/// A file of a step other than the last, asked for by name with `?step=N` (the list endpoint
/// documents no step), and kept as `steps/<N>/<name>` beside the last step's artifacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepArtifact {
    pub step: u32,
    pub name: &'static str,
}

/// The folder of the other steps' files, in the artifacts folder.
pub const STEPS: &str = "steps";

impl StepArtifact {
    /// Where it goes, relative to the artifacts folder.
    pub fn local_path(self) -> String {
        format!("{STEPS}/{}/{}", self.step, self.name)
    }
}

/// One file to download: where it goes, relative to the artifacts folder, and what dbt Cloud
/// calls it.
struct Item {
    local: String,
    remote: String,
    step: Option<u32>,
}

/// The run once dbt Cloud says its artifacts are saved, or as it stands after a grace period
/// (`Timing::save_grace`): a run still not saved then saved none, and is not asked for them.
/// A run that never started (cancelled while queued) has none, so it is not waited for.
pub fn wait_until_saved(client: &DbtCloud, run: Run) -> Result<Run> {
    if run.artifacts_saved || !run.has_started {
        return Ok(run);
    }
    info!(
        "Run {} finished; waiting for dbt Cloud to save its artifacts",
        run.id
    );
    let deadline = Instant::now() + client.timing().save_grace;
    let mut run = run;
    while !run.artifacts_saved && Instant::now() < deadline {
        client.termination().sleep(SAVE_POLL)?;
        run = client.get_run(run.id, Budget::Standard)?;
    }
    Ok(run)
}

/// Downloads every artifact the run lists (the last step's), and `steps`' files (other steps'),
/// `concurrency` at a time over the client's reused connections. An `Err` means the list itself
/// could not be had (or a signal came); files that fail are counted in [`Downloaded::failed`].
pub fn download_all(
    client: &DbtCloud,
    folder: &DataFolder,
    run: &Run,
    settings: &ArtifactSettings,
    steps: &[StepArtifact],
) -> Result<Downloaded> {
    let listed = list(client, run)?;
    let (items, mut done) = wanted(listed.clone(), steps, settings);
    done.list = listed;
    let queue = destinations(folder, items, &mut done.skipped);
    if queue.is_empty() {
        info!("Run {} has no artifacts to download", run.id);
        return Ok(done);
    }
    let of_other_steps = queue.iter().filter(|(_, item)| item.step.is_some()).count();
    let share = client.size_share(run.id);
    info!(
        "Downloading {} of run {}{}, {} at a time, at up to {} a minute ({}): {}",
        counted(queue.len() - of_other_steps, "artifact", "artifacts"),
        run.id,
        match of_other_steps {
            0 => String::new(),
            files => format!(
                " and {} of its other steps, if {}",
                counted(files, "file", "files"),
                plural(files, "it exists", "they exist")
            ),
        },
        settings.concurrency,
        counted(share.per_minute, "request", "requests"),
        share.why,
        how_long(queue.len(), share.per_minute)
    );
    let missing = SharedBudget::new(client.timing().missing_artifacts);
    let started = Instant::now();
    let pool = Pool {
        client,
        folder,
        run,
        max_size: settings.max_size,
        purpose: Purpose::Keep,
        missing: &missing,
        absent_in_a_row: AtomicUsize::new(0),
    };
    let total = queue.len();
    let progress = Mutex::new(Progress {
        done,
        last_log: started,
    });
    pool.download(
        &queue,
        settings.concurrency,
        Some(share),
        |_, (destination, item), got| {
            let result = got.and_then(|got| match got {
                Some((file, bytes)) => {
                    folder.persist(file, destination)?;
                    Ok(Some(bytes))
                }
                None => Ok(None),
            });
            lock(&progress).record(&item.local, result, total, started);
        },
    );
    let mut done = progress
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .done;
    client.termination().check()?;
    done.failed.sort();
    summarize(&done, started);
    Ok(done)
}

/// What to download: the listed artifacts and the other steps' files, as `artifacts_include`
/// selects them; the counts so far. A project's own `target/steps/...` is listed, and wins over
/// our copies of other steps.
fn wanted(
    listed: Vec<String>,
    steps: &[StepArtifact],
    settings: &ArtifactSettings,
) -> (Vec<Item>, Downloaded) {
    let listed_set: std::collections::HashSet<&String> = listed.iter().collect();
    let steps: Vec<StepArtifact> = steps
        .iter()
        .copied()
        .filter(|file| !listed_set.contains(&file.local_path()))
        .collect();
    let count = listed.len() + steps.len();
    let mut wanted = listed;
    wanted.extend(steps.iter().map(|file| file.local_path()));
    let chosen = select(wanted, settings.selection.as_ref());
    let done = Downloaded {
        listed: count,
        excluded: count - chosen.len(),
        ..Downloaded::default()
    };
    let items = chosen
        .into_iter()
        .map(
            |path| match steps.iter().find(|file| file.local_path() == path) {
                Some(file) => Item {
                    local: path,
                    remote: file.name.to_owned(),
                    step: Some(file.step),
                },
                None => Item {
                    remote: path.clone(),
                    local: path,
                    step: None,
                },
            },
        )
        .collect();
    (items, done)
}

/// How long `requests` take at `per_minute`: a run spends its minute's share at once, then the
/// next as the minute slides.
fn how_long(requests: usize, per_minute: u32) -> String {
    match requests.saturating_sub(1) / (per_minute.max(1) as usize) {
        0 => "within a minute at that share".to_owned(),
        1 => "about a minute at that share".to_owned(),
        minutes => format!("about {minutes} minutes at that share"),
    }
}

/// The closing line of the downloads, and a warning past what Keboola keeps.
fn summarize(done: &Downloaded, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    info!(
        "Downloaded {} of {}, {} in {seconds:.1} s ({}/s){}",
        done.files,
        counted(done.listed - done.absent.len(), "artifact", "artifacts"),
        size(done.bytes),
        size((done.bytes as f64 / seconds.max(0.001)) as u64),
        match done.absent.len() {
            0 => String::new(),
            absent => format!(
                "; {} of other steps {} not exist",
                counted(absent, "file", "files"),
                plural(absent, "does", "do")
            ),
        }
    );
    if let Some(warning) = past_keboolas_limit(done.bytes) {
        warn!("{warning}");
    }
}

/// The listed paths `artifacts_include` selects (all without it); a pattern that matched none is
/// said, since it is likely a typo.
fn select(listed: Vec<String>, selection: Option<&Selection>) -> Vec<String> {
    let Some(selection) = selection else {
        return listed;
    };
    let (selected, unused) = selection.filter(listed);
    for pattern in unused {
        warn!("artifacts_include pattern {pattern:?} matched no artifact");
    }
    selected
}

/// Where each file goes below the artifacts folder; a path that would leave it is skipped.
fn destinations(
    folder: &DataFolder,
    items: impl IntoIterator<Item = Item>,
    skipped: &mut Vec<String>,
) -> Vec<(PathBuf, Item)> {
    let target = folder.artifacts_dir();
    let mut queue = Vec::new();
    for item in items {
        match safe_relative_path(&item.local) {
            Some(relative) => queue.push((target.join(relative), item)),
            None => {
                warn!(
                    "Skipped artifact {:?}: its path would leave the artifacts folder",
                    item.local
                );
                skipped.push(item.local);
            }
        }
    }
    queue
}

/// What each download worker shares.
struct Pool<'a> {
    client: &'a DbtCloud,
    folder: &'a DataFolder,
    run: &'a Run,
    max_size: u64,
    /// Artifacts kept, or files only read (bounded by the phase under way).
    purpose: Purpose,
    /// The listed artifacts' 404s share this.
    missing: &'a SharedBudget,
    /// Listed artifacts answered 404 in a row once the budget above was spent.
    absent_in_a_row: AtomicUsize,
}

/// The download workers still at work, and word when the last is gone.
struct Working {
    left: Mutex<usize>,
    gone: Condvar,
}

/// A download worker: when it leaves, one fewer is at work.
struct Leaving<'a>(&'a Working);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        let mut left = self.0.left.lock().unwrap_or_else(|p| p.into_inner());
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.0.gone.notify_all();
        }
    }
}

/// Past its budget, a listed artifact that answers 404 costs one request; a list of thousands
/// that all answer 404 (artifacts dbt Cloud lists but never saved) is not asked through: after
/// this many in a row, the rest are not asked for.
const ABSENT_IN_A_ROW: usize = 100;

impl Pool<'_> {
    /// Downloads the queue (each file's destination, or the path its errors name, and the file)
    /// with `concurrency` workers, each taking the next file until none is left or a signal
    /// came, and handing its complete scratch file (`None`: another step's file that does not
    /// exist), or why it did not come, to `land` with the file's place in the queue, on the
    /// worker's thread.
    /// With `share` (its last size), the share of the account's requests is sized again about
    /// once a minute while they go on.
    fn download(
        &self,
        queue: &[(PathBuf, Item)],
        concurrency: usize,
        share: Option<Share>,
        land: impl Fn(usize, &(PathBuf, Item), Result<Option<(NamedTempFile, u64)>>) + Sync,
    ) {
        let next = AtomicUsize::new(0);
        let workers = concurrency.clamp(1, queue.len().max(1));
        let working = Working {
            left: Mutex::new(workers),
            gone: Condvar::new(),
        };
        std::thread::scope(|scope| {
            if let Some(share) = share {
                scope.spawn(|| self.resize_share(&working, share));
            }
            for _ in 0..workers {
                scope.spawn(|| {
                    let _done = Leaving(&working);
                    loop {
                        let at = next.fetch_add(1, Ordering::Relaxed);
                        let Some(queued) = queue.get(at) else {
                            return;
                        };
                        if self.client.termination().check().is_err() {
                            return;
                        }
                        land(at, queued, self.one(queued));
                    }
                });
            }
        });
    }

    /// Sizes the share again once a window (a minute) while some worker is still at work, and
    /// says when it changes; gone as soon as the last worker is.
    fn resize_share(&self, working: &Working, mut share: Share) {
        let every = self.client.timing().cooldown.window;
        loop {
            let left = working.left.lock().unwrap_or_else(|p| p.into_inner());
            let (left, _) = working
                .gone
                .wait_timeout_while(left, every, |left| *left > 0)
                .unwrap_or_else(|p| p.into_inner());
            if *left == 0 {
                return;
            }
            drop(left);
            let now = self.client.size_share(self.run.id);
            if now != share {
                info!(
                    "The share of the account's requests is now {} a minute ({})",
                    now.per_minute, now.why
                );
            }
            share = now;
        }
    }

    /// One file into a complete scratch file, and its size; `None` for another step's file
    /// that does not exist. Past the budget of the listed files' 404s, a run of them ends the
    /// asking (see [`ABSENT_IN_A_ROW`]).
    fn one(&self, (label, item): &(PathBuf, Item)) -> Result<Option<(NamedTempFile, u64)>> {
        if self.absent_in_a_row.load(Ordering::Relaxed) >= ABSENT_IN_A_ROW {
            return Err(anyhow::anyhow!(
                "not asked for: the last {ABSENT_IN_A_ROW} artifacts asked for answered 404 \
                 after the {:.0} s that all missing artifacts share",
                self.missing.length().as_secs_f64()
            ));
        }
        let missing = match item.step {
            None => IfMissing::Wait(self.missing),
            Some(_) => IfMissing::Absent,
        };
        let artifact = ArtifactRef {
            path: &item.remote,
            step: item.step,
        };
        let limits = DownloadLimits {
            max_size: self.max_size,
            missing,
            purpose: self.purpose,
        };
        let got = download_one(self.client, self.folder, self.run, artifact, &limits, label);
        match &got {
            Err(error)
                if RefusalKind::of(error) == Some(RefusalKind::NotFound)
                    && self.missing.has_ended() =>
            {
                self.absent_in_a_row.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some(_)) => self.absent_in_a_row.store(0, Ordering::Relaxed),
            _ => {}
        }
        got
    }
}

/// The lock, whoever panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keboola packs the artifacts folder into one archive per job, meant to stay under a gigabyte.
const KEBOOLA_ARTIFACTS_LIMIT: u64 = 1_000_000_000;

fn past_keboolas_limit(bytes: u64) -> Option<String> {
    (bytes > KEBOOLA_ARTIFACTS_LIMIT).then(|| {
        format!(
            "The artifacts come to {}, past the 1 GB Keboola's job artifacts should stay under: \
             artifacts_include can keep only what you read (e.g. [\"*.json\"])",
            size(bytes)
        )
    })
}

struct Progress {
    done: Downloaded,
    last_log: Instant,
}

impl Progress {
    fn record(&mut self, path: &str, result: Result<Option<u64>>, total: usize, started: Instant) {
        match result {
            Ok(Some(bytes)) => {
                self.done.files += 1;
                self.done.bytes += bytes;
                self.done.paths.push(path.to_owned());
            }
            Ok(None) => self.done.absent.push(path.to_owned()),
            Err(error) => {
                // The first few one by one; all of them in the closing summary.
                if self.done.failed.len() < NAMED {
                    warn!("Artifact {path} could not be downloaded: {error:#}");
                }
                self.done
                    .failed
                    .push((path.to_owned(), format!("{error:#}")));
            }
        }
        if self.last_log.elapsed() >= PROGRESS_EVERY {
            let seconds = started.elapsed().as_secs_f64();
            info!(
                "Artifacts: {} of {}, {}, {}/s",
                self.done.files + self.done.failed.len() + self.done.absent.len(),
                counted(total, "file", "files"),
                size(self.done.bytes),
                size((self.done.bytes as f64 / seconds.max(0.001)) as u64)
            );
            self.last_log = Instant::now();
        }
    }
}

/// The failed paths, the first few named, and why the first failed: one line for a thousand.
pub fn failures(failed: &[(String, String)]) -> String {
    let mut text = first_few(failed.iter().map(|(path, _)| path.as_str()), NAMED);
    if let Some((_, why)) = failed.first() {
        text.push_str(&format!(" (the first: {why})"));
    }
    text
}

/// Files only read, never kept (the steps' results when they are not among the downloaded
/// artifacts), downloaded `concurrency` at a time like the artifacts, each into a scratch file
/// of its own that is gone with it: nothing lands in the artifacts folder, which Keboola
/// uploads. Each ends by the bound of the phase under way ([`Purpose::Read`]). In `files`'
/// order, each file, `None` when another step's answers 404 (the step wrote none), or why it
/// did not come; an `Err` only for a signal. A file of the last step must be listed.
pub fn fetch_all(
    client: &DbtCloud,
    folder: &DataFolder,
    run: &Run,
    files: &[ArtifactRef],
    concurrency: usize,
    max_size: u64,
) -> Result<Vec<Result<Option<NamedTempFile>>>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    info!(
        "Fetching {} of run {}'s steps for the tables, {concurrency} at a time",
        counted(files.len(), "file", "files"),
        run.id
    );
    let queue: Vec<(PathBuf, Item)> = files
        .iter()
        .map(|file| {
            let local = match file.step {
                Some(step) => format!("{STEPS}/{step}/{}", file.path),
                None => file.path.to_owned(),
            };
            let item = Item {
                remote: file.path.to_owned(),
                step: file.step,
                local,
            };
            (folder.artifacts_dir().join(&item.local), item)
        })
        .collect();
    let missing = SharedBudget::new(client.timing().missing_artifacts);
    let pool = Pool {
        client,
        folder,
        run,
        max_size,
        purpose: Purpose::Read,
        missing: &missing,
        absent_in_a_row: AtomicUsize::new(0),
    };
    let landed: Vec<Mutex<Option<Result<Option<NamedTempFile>>>>> =
        queue.iter().map(|_| Mutex::new(None)).collect();
    // The steps' files are a few requests: the share stands as it was sized, or as set.
    pool.download(&queue, concurrency, None, |at, _, got| {
        if let Some(slot) = landed.get(at) {
            *lock(slot) = Some(got.map(|got| got.map(|(file, _)| file)));
        }
    });
    client.termination().check()?;
    landed
        .into_iter()
        .zip(&queue)
        .map(|(slot, (_, item))| {
            slot.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .ok_or_else(|| {
                    Bug(format!(
                        "{} was left in the queue without a signal",
                        item.local
                    ))
                    .into()
                })
        })
        .collect()
}

/// Packs the downloaded artifacts into `out/files/dbt_artifacts_<run_id>.zip` (deflate, one file
/// at a time from disk), with a file manifest tagging it, so that any Keboola project can keep
/// them in File Storage.
pub fn zip(folder: &DataFolder, run: &Run, job: JobId, paths: &[String]) -> Result<String> {
    let name = format!("dbt_artifacts_{}.zip", run.id);
    let destination = folder.files_dir().join(&name);
    let source = folder.artifacts_dir();
    // The zip format wants to seek back over each entry's header, so it writes to the scratch
    // file itself rather than through `write_atomically`'s stream.
    let scratch = folder.scratch_file()?;
    {
        let mut archive =
            zip::ZipWriter::new(BufWriter::with_capacity(WRITE_BUFFER, scratch.as_file()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for path in paths {
            archive.start_file(path.as_str(), options)?;
            let mut file = std::fs::File::open(source.join(path))
                .with_context(|| format!("could not read artifact {path}"))?;
            std::io::copy(&mut file, &mut archive)?;
        }
        archive.finish()?.flush()?;
    }
    folder.persist(scratch, &destination)?;
    let manifest = serde_json::json!({
        "tags": ["dbt-cloud", format!("run-{}", run.id), format!("job-{job}")],
        "is_public": false,
        "is_permanent": false,
        "is_encrypted": true,
        "notify": false,
    });
    folder.write_atomically(
        &folder.files_dir().join(format!("{name}.manifest")),
        |out| {
            serde_json::to_writer_pretty(&mut *out, &manifest)?;
            Ok(out.write_all(b"\n")?)
        },
    )?;
    Ok(name)
}

/// The list, asked again for a while when it is empty although the run says artifacts were saved.
/// A run that failed or was cancelled may have no list at all (404): no artifacts.
pub fn list(client: &DbtCloud, run: &Run) -> Result<Vec<String>> {
    let mut attempt = 1;
    loop {
        let paths = match client.list_artifacts(run.id) {
            Err(error)
                if RefusalKind::of(&error) == Some(RefusalKind::NotFound)
                    && matches!(run.status, RunStatus::Error | RunStatus::Cancelled) =>
            {
                info!(
                    "dbt Cloud has no artifact list for run {} ({})",
                    run.id, run.status
                );
                return Ok(Vec::new());
            }
            other => other?,
        };
        if !paths.is_empty() || !run.artifacts_saved || attempt == LIST_ATTEMPTS {
            return Ok(once_each(paths));
        }
        info!(
            "dbt Cloud lists no artifacts for run {} yet; asking again",
            run.id
        );
        client.termination().sleep(LIST_PAUSE)?;
        attempt += 1;
    }
}

/// The paths in order, each once: a path listed twice is one file (and one zip entry).
fn once_each(paths: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    paths
        .into_iter()
        .filter(|path| {
            let first = seen.insert(path.clone());
            if !first {
                warn!("dbt Cloud lists artifact {path:?} more than once; downloading it once");
            }
            first
        })
        .collect()
}

/// One artifact into a complete scratch file (the client retries it, with a fresh one per
/// attempt). Errors writing it name `label`.
fn download_one(
    client: &DbtCloud,
    folder: &DataFolder,
    run: &Run,
    artifact: ArtifactRef,
    limits: &DownloadLimits,
    label: &Path,
) -> Result<Option<(NamedTempFile, u64)>> {
    client.download_artifact(run.id, artifact, limits, &ScratchFile { folder, label })
}

/// A scratch file in the data folder, buffered, its write errors naming where it is headed.
struct ScratchFile<'a> {
    folder: &'a DataFolder,
    label: &'a Path,
}

impl<'a> Destination for ScratchFile<'a> {
    type Sink = BufWriter<Labelled<'a, NamedTempFile>>;
    type Done = NamedTempFile;

    fn open(&self) -> Result<Self::Sink> {
        let file = self.folder.scratch_file()?;
        Ok(BufWriter::with_capacity(
            WRITE_BUFFER,
            Labelled::new(file, self.label),
        ))
    }

    fn finish(&self, sink: Self::Sink) -> std::io::Result<NamedTempFile> {
        let labelled = sink.into_inner().map_err(|e| e.into_error())?;
        Ok(labelled.into_inner())
    }
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
    fn artifacts_past_a_gigabyte_are_warned_about() {
        assert_eq!(past_keboolas_limit(1_000_000_000), None);
        assert_eq!(
            past_keboolas_limit(1_500_000_000).as_deref(),
            Some(
                "The artifacts come to 1.50 GB, past the 1 GB Keboola's job artifacts should stay \
                 under: artifacts_include can keep only what you read (e.g. [\"*.json\"])"
            )
        );
    }

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
