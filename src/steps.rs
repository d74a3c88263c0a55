//! A run's dbt steps and the files each left. A dbt Cloud job is a chain of steps (dbt Cloud's
//! own, then the job's commands: often `dbt source freshness`, `dbt build`, `dbt docs generate`),
//! and the artifact endpoints answer for the last step unless `?step=N` names another. So the
//! last step's artifacts are listed and downloaded as they are, and each other command step's
//! `run_results.json` and `sources.json` are asked for by name (a 404: the step wrote none) and
//! kept as `steps/<N>/<file>` beside them. Then every step's files stream into the results and
//! freshness tables, tallied on the way ([`Findings`]).
//!
//! dbt Cloud keeps `target/` across a run's steps, so a step that writes no file of its own shows
//! an earlier step's: a file of an invocation already read is not read again.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Context, Result};
use log::{debug, info, warn};
use tempfile::NamedTempFile;

use crate::artifacts::{self, Downloaded, StepArtifact};
use crate::data_folder::DataFolder;
use crate::dbt_cloud::{ArtifactRef, DbtCloud, Run};
use crate::findings::{Findings, StepFindings, StepLabel, Tally};
use crate::freshness;
use crate::result_fields::Oddities;
use crate::run_results::{self, Streamed};
use crate::tables::{freshness_row, result_row, StepCells, Table, Writer};
use crate::termination::is_terminated;
use crate::text::counted;

pub const RUN_RESULTS: &str = "run_results.json";
pub const SOURCES: &str = "sources.json";
const STEP_FILES: [&str; 2] = [RUN_RESULTS, SOURCES];

/// The files of the run's command steps other than the last, asked for by name beside the last
/// step's listed artifacts.
pub fn other_steps_files(run: &Run) -> Vec<StepArtifact> {
    let last = run.last_step().map(|step| step.index);
    run.command_steps()
        .into_iter()
        .filter(|step| Some(step.index) != last)
        .filter_map(|step| u32::try_from(step.index).ok().filter(|index| *index > 0))
        .flat_map(|step| STEP_FILES.map(|name| StepArtifact { step, name }))
        .collect()
}

/// A step's file on disk.
pub enum Located {
    /// Among the downloaded artifacts.
    Kept(PathBuf),
    /// Fetched for the tables alone, gone with the value.
    Fetched(NamedTempFile),
}

impl Located {
    fn open(&self) -> Result<BufReader<File>> {
        let path = match self {
            Located::Kept(path) => path.as_path(),
            Located::Fetched(file) => file.path(),
        };
        let file =
            File::open(path).with_context(|| format!("could not read {}", path.display()))?;
        Ok(BufReader::new(file))
    }
}

/// What one step left: its `run_results.json` and `sources.json`, when it wrote them.
pub struct StepFiles {
    pub step: StepLabel,
    pub run_results: Option<Located>,
    pub sources: Option<Located>,
}

/// Where the step files come from: the downloaded artifacts, or dbt Cloud for those not
/// downloaded (not wanted, or left out by `artifacts_include`).
pub struct Sources<'a> {
    pub client: &'a DbtCloud,
    pub folder: &'a DataFolder,
    pub downloaded: Option<&'a Downloaded>,
    /// Why the downloads could not list the run's artifacts, when they asked: not asked again.
    pub unlisted: Option<&'a anyhow::Error>,
    /// Files fetched at once, as the artifacts are downloaded.
    pub concurrency: usize,
    pub max_size: u64,
}

/// Where one step's file is to be had.
enum Source {
    /// On disk already, or known not to be had.
    Settled(Option<Located>),
    /// From dbt Cloud.
    Fetch(ArtifactRef<'static>),
}

impl Sources<'_> {
    /// Every command step's files in order, the last step's last. Those not downloaded are
    /// fetched together, within the phase under way; a file that cannot be had is a warning
    /// naming its step. Only a signal ends this early.
    pub fn gather(&self, run: &Run) -> Result<Vec<StepFiles>> {
        let mut steps: Vec<(StepLabel, [Source; 2])> = Vec::new();
        let other: Vec<StepArtifact> = other_steps_files(run);
        for step in run.command_steps() {
            let Some(index) = u32::try_from(step.index).ok() else {
                continue;
            };
            if !other.iter().any(|file| file.step == index) {
                continue;
            }
            let label = StepLabel {
                index,
                name: step.name.clone(),
            };
            let files = STEP_FILES.map(|name| self.other_step_file(&label, name));
            steps.push((label, files));
        }
        let last = StepLabel {
            index: run
                .last_step()
                .and_then(|step| u32::try_from(step.index).ok())
                .unwrap_or(0),
            name: run
                .last_step()
                .map(|step| step.name.clone())
                .unwrap_or_default(),
        };
        let files = self.last_step_files(run, &last)?;
        steps.push((last, files));
        self.fetch(run, steps)
    }

    /// Another step's file: among the downloaded artifacts, known absent or failed there, or
    /// to fetch with `?step=N`.
    fn other_step_file(&self, step: &StepLabel, name: &'static str) -> Source {
        let local = StepArtifact {
            step: step.index,
            name,
        }
        .local_path();
        if let Some(downloaded) = self.downloaded {
            if downloaded.paths.contains(&local) {
                return Source::Settled(Some(Located::Kept(
                    self.folder.artifacts_dir().join(local),
                )));
            }
            if downloaded.absent.contains(&local) {
                return Source::Settled(None);
            }
            if let Some((_, why)) = downloaded.failed.iter().find(|(path, _)| *path == local) {
                warn!("{step}: its {name} could not be downloaded ({why}); its rows are left out");
                return Source::Settled(None);
            }
        }
        Source::Fetch(ArtifactRef {
            path: name,
            step: Some(step.index),
        })
    }

    /// The last step's files: among the downloaded artifacts, or fetched when it lists them.
    fn last_step_files(&self, run: &Run, step: &StepLabel) -> Result<[Source; 2]> {
        let kept = |name: &str| {
            self.downloaded
                .filter(|downloaded| downloaded.paths.iter().any(|path| path == name))
                .map(|_| Located::Kept(self.folder.artifacts_dir().join(name)))
        };
        let [run_results, sources] = STEP_FILES.map(kept);
        if run_results.is_some() && sources.is_some() {
            return Ok([Source::Settled(run_results), Source::Settled(sources)]);
        }
        // The downloads' list when they asked for it: the list is asked for once.
        let asked = match (self.downloaded, self.unlisted) {
            (Some(downloaded), _) => Ok(downloaded.list.clone()),
            (None, Some(error)) => Err(anyhow::anyhow!("{error:#}")),
            (None, None) => artifacts::list(self.client, run),
        };
        let listed = match asked {
            Ok(listed) => listed,
            Err(error) if is_terminated(&error) => return Err(error),
            Err(error) => {
                warn!("{step}: the run's artifacts could not be listed ({error:#}); its rows are left out");
                return Ok([Source::Settled(run_results), Source::Settled(sources)]);
            }
        };
        let source = |kept: Option<Located>, name: &'static str| match kept {
            Some(kept) => Source::Settled(Some(kept)),
            None if listed.iter().any(|path| path == name) => Source::Fetch(ArtifactRef {
                path: name,
                step: None,
            }),
            None => Source::Settled(None),
        };
        Ok([source(run_results, RUN_RESULTS), source(sources, SOURCES)])
    }

    /// Fetches every step's files still to be had, together, into scratch files; each that did
    /// not come is a warning naming its step.
    fn fetch(&self, run: &Run, steps: Vec<(StepLabel, [Source; 2])>) -> Result<Vec<StepFiles>> {
        let wanted: Vec<ArtifactRef> = steps
            .iter()
            .flat_map(|(_, files)| files)
            .filter_map(|file| match file {
                Source::Fetch(artifact) => Some(*artifact),
                Source::Settled(_) => None,
            })
            .collect();
        let mut fetched = artifacts::fetch_all(
            self.client,
            self.folder,
            run,
            &wanted,
            self.concurrency,
            self.max_size,
        )?
        .into_iter();
        let mut gathered = Vec::new();
        for (step, files) in steps {
            let [run_results, sources] = files.map(|file| match file {
                Source::Settled(located) => located,
                Source::Fetch(artifact) => match fetched.next() {
                    Some(Ok(file)) => file.map(Located::Fetched),
                    Some(Err(error)) => {
                        warn!(
                            "{step}: its {} could not be fetched ({error:#}); its rows are left out",
                            artifact.path
                        );
                        None
                    }
                    // Not reached: `fetch_all` answers each file asked for, in order.
                    None => None,
                },
            });
            gathered.push(StepFiles {
                step,
                run_results,
                sources,
            });
        }
        Ok(gathered)
    }
}

/// Streams every step's `run_results.json` into `dbt_cloud_run_results` and its `sources.json`
/// into `dbt_cloud_source_freshness`, tallying both. A file that is not what it should be
/// leaves out its step's rows, with a warning naming the step; the others are written.
pub fn read(run: &Run, tables: &Writer, files: &[StepFiles]) -> Result<Findings> {
    let mut findings = read_runs(&[RunFiles { run, files }], tables)?;
    Ok(findings.pop().unwrap_or_default())
}

/// A run and the files its steps left.
pub struct RunFiles<'a> {
    pub run: &'a Run,
    pub files: &'a [StepFiles],
}

/// [`read`] for several runs into the same tables (a run and the runs of its chain): what each
/// run's steps found, in the order given.
pub fn read_runs(runs: &[RunFiles], tables: &Writer) -> Result<Vec<Findings>> {
    let results = read_table(runs, tables, ResultsTable)?;
    let sources = read_table(runs, tables, FreshnessTable)?;
    let mut findings = Vec::with_capacity(runs.len());
    for (at, RunFiles { run, files }) in runs.iter().enumerate() {
        if files.iter().all(|file| file.run_results.is_none()) {
            let what = match runs.len() {
                1 => "no table",
                _ => "no rows of it in",
            };
            info!(
                "Run {} has no {RUN_RESULTS}: {what} {}",
                run.id,
                Table::RunResults.name()
            );
        }
        let steps = files
            .iter()
            .map(|file| {
                let (results, unreadable_results) =
                    outcome_of::<ResultsTable>(&results, at, &file.step);
                let (freshness, unreadable_sources) =
                    outcome_of::<FreshnessTable>(&sources, at, &file.step);
                StepFindings {
                    step: file.step.clone(),
                    results,
                    freshness,
                    unreadable: unreadable_results
                        .into_iter()
                        .chain(unreadable_sources)
                        .collect(),
                }
            })
            .filter(|found| {
                found.results.is_some() || found.freshness.is_some() || !found.unreadable.is_empty()
            })
            .collect();
        findings.push(Findings { steps });
    }
    Ok(findings)
}

/// A step's tally of one table, or why its file could not be read.
fn outcome_of<T: StepTable>(
    outcomes: &[Outcome],
    run: usize,
    step: &StepLabel,
) -> (Option<Tally>, Option<String>) {
    match outcomes
        .iter()
        .find(|(of, label, _)| *of == run && label == step)
    {
        Some((_, _, Ok(tally))) => (Some(tally.clone()), None),
        Some((_, _, Err(why))) => (
            None,
            Some(format!("its {} could not be read ({why})", T::FILE)),
        ),
        None => (None, None),
    }
}

/// One of the two tables read from step files: which file, and how a row is made of it.
trait StepTable {
    const FILE: &'static str;
    const TABLE: Table;
    /// What the log calls one row, and many.
    const ROWS: [&'static str; 2];
    fn file(files: &StepFiles) -> Option<&Located>;
    /// Streams `file`, writing a row and tallying each result, noting its odd fields.
    fn stream(
        file: BufReader<File>,
        cells: StepCells,
        rows: &mut crate::tables::Rows,
        read: &mut Reading,
    ) -> Result<Streamed>;
}

/// What reading one step's file gathers besides its rows.
#[derive(Default)]
struct Reading {
    tally: Tally,
    odd: Oddities,
}

struct ResultsTable;

impl StepTable for ResultsTable {
    const FILE: &'static str = RUN_RESULTS;
    const TABLE: Table = Table::RunResults;
    const ROWS: [&'static str; 2] = ["node", "nodes"];
    fn file(files: &StepFiles) -> Option<&Located> {
        files.run_results.as_ref()
    }
    fn stream(
        file: BufReader<File>,
        cells: StepCells,
        rows: &mut crate::tables::Rows,
        read: &mut Reading,
    ) -> Result<Streamed> {
        run_results::for_each(file, |node| {
            rows.row(result_row(&cells, &node))?;
            read.tally.node(&node);
            node.oddities(|field, written| read.odd.note(field, &written));
            Ok(())
        })
    }
}

struct FreshnessTable;

impl StepTable for FreshnessTable {
    const FILE: &'static str = SOURCES;
    const TABLE: Table = Table::SourceFreshness;
    const ROWS: [&'static str; 2] = ["source", "sources"];
    fn file(files: &StepFiles) -> Option<&Located> {
        files.sources.as_ref()
    }
    fn stream(
        file: BufReader<File>,
        cells: StepCells,
        rows: &mut crate::tables::Rows,
        read: &mut Reading,
    ) -> Result<Streamed> {
        freshness::for_each(file, |source| {
            rows.row(freshness_row(&cells, &source))?;
            read.tally.source(&source);
            source.oddities(|field, written| read.odd.note(field, &written));
            Ok(())
        })
    }
}

/// One table from every step's file of its kind; each step's tally, or why its file could not
/// be read.
/// A step's tally of one table, or why its file could not be read: by the run's place in the
/// runs read, and the step.
type Outcome = (usize, StepLabel, Result<Tally, String>);

/// One of a step's files to read: the run's place and id, the step, the file.
type Part<'a> = (usize, String, &'a StepLabel, &'a Located);

fn read_table<T: StepTable>(runs: &[RunFiles], tables: &Writer, _table: T) -> Result<Vec<Outcome>> {
    let parts: Vec<Part> = runs
        .iter()
        .enumerate()
        .flat_map(|(at, RunFiles { run, files })| {
            files.iter().filter_map(move |files| {
                Some((at, run.id.to_string(), &files.step, T::file(files)?))
            })
        })
        .collect();
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    // By run: another run's file may be a copy of one of this run's (dbt Cloud keeps target/).
    let mut seen: Vec<(usize, String)> = Vec::new();
    let written = tables.parts(T::TABLE, &parts, |(at, run_id, step, file), rows| {
        let cells = StepCells {
            run_id,
            index: step.index,
            name: &step.name,
        };
        let mut read = Reading::default();
        let streamed = T::stream(file.open()?, cells, rows, &mut read)?;
        match streamed.invocation.map(|invocation| (*at, invocation)) {
            Some(invocation) if seen.contains(&invocation) => {
                debug!(
                    "{step}: its {} is an earlier step's (dbt Cloud keeps target/ across steps); \
                     not read twice",
                    T::FILE
                );
                Ok(None)
            }
            invocation => {
                seen.extend(invocation);
                warn_of_oddities::<T>(step, &read.odd, streamed.not_results);
                Ok(Some(read.tally))
            }
        }
    });
    let (count, outcomes) = match written {
        Ok(written) => written,
        Err(error) if is_terminated(&error) => return Err(error),
        Err(error) => {
            warn!(
                "The table {} could not be written: {error:#}",
                T::TABLE.name()
            );
            return Ok(Vec::new());
        }
    };
    Ok(tallies::<T>(&parts, outcomes, count, runs.len() > 1))
}

/// One warning for a step's file whose results held values of unexpected types (kept as
/// written), or items that are no result (left out).
fn warn_of_oddities<T: StepTable>(
    step: &StepLabel,
    odd: &Oddities,
    not_results: Option<(usize, String)>,
) {
    if !odd.is_empty() {
        warn!(
            "{step}: its {} has values of unexpected types, kept as written in {}: {}",
            T::FILE,
            T::TABLE.name(),
            odd.worded()
        );
    }
    if let Some((count, first)) = not_results {
        warn!(
            "{step}: its {} lists {} that {} no result, left out (the first: {first})",
            T::FILE,
            crate::text::counted(count, "item", "items"),
            crate::text::plural(count, "is", "are")
        );
    }
}

/// Each step's tally, of the parts kept, or why its file could not be read (warned about).
fn tallies<T: StepTable>(
    parts: &[Part],
    outcomes: Vec<Result<Option<Tally>>>,
    count: usize,
    several_runs: bool,
) -> Vec<Outcome> {
    let mut tallies = Vec::new();
    for ((at, run_id, step, _), outcome) in parts.iter().zip(outcomes) {
        match outcome {
            Ok(Some(tally)) => tallies.push((*at, (*step).clone(), Ok(tally))),
            Ok(None) => {}
            Err(error) => {
                let of_run = match several_runs {
                    true => format!(" of run {run_id}"),
                    false => String::new(),
                };
                warn!(
                    "{step}{of_run}: its {} could not be read ({error:#}); its rows are left out of {}",
                    T::FILE,
                    T::TABLE.name()
                );
                tallies.push((*at, (*step).clone(), Err(format!("{error:#}"))));
            }
        }
    }
    let read = tallies.iter().filter(|(_, _, tally)| tally.is_ok()).count();
    if read > 0 {
        let one = |count: usize, [one, many]: [&'static str; 2]| match count {
            1 => one,
            _ => many,
        };
        let runs = match several_runs {
            true => {
                let mut runs: Vec<usize> = tallies.iter().map(|(at, _, _)| *at).collect();
                runs.dedup();
                format!(" of {}", counted(runs.len(), "run", "runs"))
            }
            false => String::new(),
        };
        info!(
            "Wrote table {} ({count} {} of {read} {}{runs})",
            T::TABLE.name(),
            one(count, T::ROWS),
            one(read, ["step", "steps"])
        );
    }
    tallies
}
