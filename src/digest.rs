//! Why a run failed, in a few lines for the exit-1 message and the log, from the step that
//! failed: its `run_results.json` when it left one (how many nodes failed, then each failed node,
//! most severe first), its `sources.json` for a freshness step, and dbt's own error blocks in its
//! log for what they do not name ([`crate::dbt_log`]: dbt Core's console and file logs from 1.0
//! on, and the Fusion engine's, which leaves failed nodes out of its results).
//!
//! Each paragraph is one line with control characters escaped, and the whole digest is capped:
//! Keboola events are not a log file.

use crate::dbt_cloud::Run;
use crate::dbt_log::LogFindings;
use crate::findings::{FailedNode, Findings, Notable, StepFindings, StepLabel, Tally};
use crate::text::paragraph;

/// Failed nodes named; the rest are counted.
const SHOWN: usize = crate::findings::SHOWN;
/// The whole digest at most, in characters.
const DIGEST_CHARS: usize = 4_000;

/// The digest: a summary line, then a paragraph per failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub summary: String,
    pub paragraphs: Vec<String>,
}

impl Digest {
    /// The summary and the paragraphs, each a line, within [`DIGEST_CHARS`].
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.summary.clone()];
        let mut total = self.summary.chars().count();
        for (shown, paragraph) in self.paragraphs.iter().enumerate() {
            total += paragraph.chars().count();
            if total > DIGEST_CHARS {
                let left = self.paragraphs.len() - shown;
                lines.push(format!("- and {left} more (the digest is cut here)"));
                break;
            }
            lines.push(paragraph.clone());
        }
        lines
    }
}

/// Why `run` failed, from the step that failed (the first in Error): the failures its results
/// (or, for a freshness step, its sources) name, then those only its log names (the Fusion
/// engine leaves failed nodes out of `run_results.json`), each once; its log alone when its
/// results name none or could not be read. Without a failed step, the last step's results.
/// `None` when nothing says more than the failure message already does.
pub fn of_failure(run: &Run, findings: &Findings) -> Option<Digest> {
    let Some(step) = run.failed_step() else {
        return findings
            .steps
            .iter()
            .rev()
            .find_map(|found| from_tallies(&found.step, found.results.as_ref(), None))
            .map(|(digest, _)| digest);
    };
    let label = StepLabel {
        index: u32::try_from(step.index).unwrap_or_default(),
        name: step.name.clone(),
    };
    let found = findings.of_step(label.index);
    let from_files = found
        .and_then(|found| from_tallies(&label, found.results.as_ref(), found.freshness.as_ref()));
    let log = run
        .step_log(step.index)
        .filter(|log| !log.trim().is_empty())
        .map(LogFindings::read);
    match (from_files, log) {
        (Some((digest, failed)), Some(log)) => Some(with_the_log(digest, &failed, log)),
        (Some((digest, _)), None) => Some(digest),
        (None, log) => from_log_alone(&label, found, log),
    }
}

/// The results' digest told with what the step's log adds: a failed node the results name
/// without dbt's message (the Fusion engine writes none) takes its entry from the log, where the
/// log names it; the failures only the log names follow, each once.
fn with_the_log(mut digest: Digest, failed: &[FailedNode], log: LogFindings) -> Digest {
    let told: Vec<String> = failed
        .iter()
        .filter(|node| node.has_message)
        .map(|node| node.unique_id.clone())
        .collect();
    let mut log = log.without(&told);
    for paragraph in &mut digest.paragraphs {
        let node = failed.iter().find(|node| {
            !node.has_message && paragraph.starts_with(&format!("- {} (", node.unique_id))
        });
        if let Some(words) = node.and_then(|node| log.take_block_of(&node.unique_id)) {
            *paragraph = words;
        }
    }
    let more = log.failures();
    if more > 0 {
        digest.summary.push_str(&format!(
            "; its log names {more} more {}",
            crate::text::plural(more, "failure", "failures")
        ));
        digest.paragraphs.extend(log.paragraphs());
    }
    digest
}

/// The digest of a failed step whose results (or sources) name no failure: from its log, saying
/// first why its files told nothing when they could not be read.
fn from_log_alone(
    label: &StepLabel,
    found: Option<&StepFindings>,
    log: Option<LogFindings>,
) -> Option<Digest> {
    let unreadable = found.map_or(&[][..], |found| &found.unreadable[..]);
    let why = (!unreadable.is_empty()).then(|| unreadable.join("; "));
    let log = log.filter(|log| !log.is_empty());
    match (why, log) {
        (why, Some(log)) => {
            let head = match why {
                Some(why) => format!("{label}: {why}. Its log:"),
                None => format!("Log of {label}:"),
            };
            let summary = match log.summary() {
                Some(line) => format!("{head} {}", paragraph(line)),
                None => head,
            };
            Some(Digest {
                summary,
                paragraphs: log.paragraphs(),
            })
        }
        (Some(why), None) => Some(Digest {
            summary: paragraph(&format!(
                "{label} ended in Error: {why}, and its log names no error"
            )),
            paragraphs: Vec::new(),
        }),
        (None, None) if found.is_none() => Some(Digest {
            summary: format!(
                "{label} ended in Error, and dbt Cloud has neither results nor a log of it"
            ),
            paragraphs: Vec::new(),
        }),
        (None, None) => None,
    }
}

/// The failures a step's results (or, for a freshness step, its sources) show, and the failed
/// nodes they name; `None` when they show none.
fn from_tallies(
    label: &StepLabel,
    results: Option<&Tally>,
    sources: Option<&Tally>,
) -> Option<(Digest, Vec<FailedNode>)> {
    let (tally, what) = [(results, "nodes"), (sources, "sources")]
        .into_iter()
        .find_map(|(tally, what)| {
            tally
                .filter(|tally| tally.count_of(Notable::is_failure) > 0)
                .map(|tally| (tally, what))
        })?;
    let failed = tally.count_of(Notable::is_failure);
    let mut paragraphs: Vec<String> = tally
        .worded(Notable::is_failure)
        .into_iter()
        .take(SHOWN)
        .map(str::to_owned)
        .collect();
    if failed > paragraphs.len() {
        paragraphs.push(format!("- and {} more", failed - paragraphs.len()));
    }
    let mut summary = format!("{label}: {failed} of {} {what} failed", tally.total());
    let warned = tally.count_of(|kind| kind == Notable::Warned);
    if warned > 0 {
        summary.push_str(&format!(", {warned} warned"));
    }
    let digest = Digest {
        summary,
        paragraphs,
    };
    Some((digest, tally.failed().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_of(run_results: &[u8]) -> Tally {
        let mut tally = Tally::default();
        crate::run_results::for_each(run_results, |node| {
            tally.node(&node);
            Ok(())
        })
        .unwrap();
        tally
    }

    fn build_step() -> StepLabel {
        StepLabel {
            index: 5,
            name: "Invoke dbt build".into(),
        }
    }

    #[test]
    fn failed_nodes_of_real_run_results_most_severe_first() {
        let datavault =
            include_bytes!("../tests/data/real/run_results/v4-postgres-errors-datavault.json");
        let digest = from_tallies(&build_step(), Some(&tally_of(datavault)), None)
            .unwrap()
            .0;
        assert!(
            digest
                .summary
                .starts_with("step 5 \"Invoke dbt build\": 2 of "),
            "{}",
            digest.summary
        );
        assert!(
            digest.summary.ends_with("nodes failed"),
            "{}",
            digest.summary
        );
        assert_eq!(digest.paragraphs.len(), 2);
        for paragraph in &digest.paragraphs {
            assert!(paragraph.starts_with("- model."), "{paragraph}");
            assert!(paragraph.contains(" (error"), "{paragraph}");
            assert!(!paragraph.contains('\n'), "{paragraph}");
        }
        let passing = include_bytes!("../tests/data/real/run_results/v6-duckdb-adamatito.json");
        assert_eq!(
            from_tallies(&build_step(), Some(&tally_of(passing)), None).map(|(d, _)| d),
            None
        );
    }

    #[test]
    fn many_failures_are_counted_and_the_digest_is_capped() {
        let node = |i: usize, status: &str| {
            format!(
                r#"{{"unique_id": "test.p.t{i}", "status": "{status}", "failures": 3, "message": "Got 3 results, configured to fail if != 0"}}"#
            )
        };
        let mut nodes: Vec<String> = (0..30).map(|i| node(i, "fail")).collect();
        nodes.push(node(99, "error"));
        nodes.push(node(100, "warn"));
        let json = format!(
            r#"{{"metadata": {{}}, "results": [{}], "elapsed_time": 1.0}}"#,
            nodes.join(",")
        );
        let digest = from_tallies(&build_step(), Some(&tally_of(json.as_bytes())), None)
            .unwrap()
            .0;
        assert_eq!(
            digest.summary,
            "step 5 \"Invoke dbt build\": 31 of 32 nodes failed, 1 warned"
        );
        assert_eq!(digest.paragraphs.len(), 11);
        assert!(
            digest.paragraphs[0].starts_with("- test.p.t99 (error)"),
            "errors first: {:?}",
            digest.paragraphs
        );
        assert_eq!(
            digest.paragraphs[1],
            "- test.p.t0 (fail, 3 failing rows): Got 3 results, configured to fail if != 0"
        );
        assert_eq!(digest.paragraphs[10], "- and 21 more");
        let long = Digest {
            summary: "s".into(),
            paragraphs: vec!["x".repeat(400); 20],
        };
        let lines = long.lines();
        assert!(lines.iter().map(|l| l.chars().count()).sum::<usize>() <= DIGEST_CHARS + 100);
        assert!(lines.last().unwrap().starts_with("- and "), "{lines:?}");
    }
}
