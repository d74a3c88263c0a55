//! What a run's dbt steps found, tallied while their files stream into the tables: nodes and
//! sources per status exactly as dbt named them, and the first few that failed, warned or are
//! stale, each worded as one paragraph. The closing summary, the warnings report and the failure
//! digest read it; nothing reads a file twice.

use crate::freshness::SourceResult;
use crate::run_results::NodeResult;
use crate::text::{age, counted, paragraph, plural};

/// Nodes or sources named per kind; the rest are counted.
pub const SHOWN: usize = 10;

/// A step of the run, as tables and messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLabel {
    /// From `run_steps`; 0 when dbt Cloud listed no steps (the artifacts are then the last
    /// step's, whichever it was).
    pub index: u32,
    pub name: String,
}

impl std::fmt::Display for StepLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            0 => f.write_str("the run's last step"),
            index => write!(f, "step {index} {:?}", self.name),
        }
    }
}

/// What deserves a line of its own, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Notable {
    /// A node in `error` or `runtime error`, or a source whose check failed.
    Error,
    /// A test that failed.
    Fail,
    /// A source past its `error_after`: it fails `dbt source freshness`.
    StaleError,
    /// A node that warned (a test past its warn threshold, a model with a warning).
    Warned,
    /// A source past its `warn_after`.
    StaleWarn,
}

impl Notable {
    pub fn is_failure(self) -> bool {
        matches!(self, Notable::Error | Notable::Fail | Notable::StaleError)
    }
}

/// One file of one step: its results per status, and the first few of each notable kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Status → how many, in the order each status was first seen.
    counts: Vec<(String, usize)>,
    total: usize,
    /// Per kind: how many, and the first [`SHOWN`] worded.
    notable: Vec<(Notable, usize, Vec<String>)>,
    /// The first [`FAILED_KEPT`] failed nodes, by which the failure digest tells apart the
    /// failures a step's log names besides them.
    failed: Vec<FailedNode>,
}

/// A node that failed, and whether dbt said why in its result (the Fusion engine does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedNode {
    pub unique_id: String,
    pub has_message: bool,
}

/// Failed nodes a tally keeps.
const FAILED_KEPT: usize = 1_000;

impl Tally {
    pub fn node(&mut self, node: &NodeResult) {
        self.count(&node.status.to_string());
        let kind = match node.status.as_str() {
            "error" | "runtime error" => Notable::Error,
            "fail" => Notable::Fail,
            "warn" => Notable::Warned,
            _ => return,
        };
        if kind.is_failure() && self.failed.len() < FAILED_KEPT {
            let message = node.message.shown().unwrap_or_default();
            self.failed.push(FailedNode {
                unique_id: node.unique_id(),
                has_message: !message.trim().is_empty(),
            });
        }
        self.note(kind, || node_paragraph(node));
    }

    pub fn source(&mut self, source: &SourceResult) {
        self.count(&source.status.to_string());
        let kind = match source.status.as_str() {
            "error" => Notable::StaleError,
            "warn" => Notable::StaleWarn,
            "runtime error" => Notable::Error,
            _ => return,
        };
        self.note(kind, || source_paragraph(source));
    }

    fn count(&mut self, status: &str) {
        self.total += 1;
        match self.counts.iter_mut().find(|(seen, _)| seen == status) {
            Some((_, count)) => *count += 1,
            None => self.counts.push((status.to_owned(), 1)),
        }
    }

    fn note(&mut self, kind: Notable, words: impl FnOnce() -> String) {
        let index = match self.notable.iter().position(|(seen, ..)| *seen == kind) {
            Some(index) => index,
            None => {
                self.notable.push((kind, 0, Vec::new()));
                self.notable.len() - 1
            }
        };
        let (_, count, shown) = &mut self.notable[index];
        *count += 1;
        if shown.len() < SHOWN {
            shown.push(words());
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn failed(&self) -> &[FailedNode] {
        &self.failed
    }

    /// How many of the kinds `which` picks.
    pub fn count_of(&self, which: impl Fn(Notable) -> bool) -> usize {
        self.notable
            .iter()
            .filter(|(kind, ..)| which(*kind))
            .map(|(_, count, _)| count)
            .sum()
    }

    /// The worded ones of the kinds `which` picks, most severe first.
    pub fn worded(&self, which: impl Fn(Notable) -> bool) -> Vec<&str> {
        let mut kinds: Vec<&(Notable, usize, Vec<String>)> = self
            .notable
            .iter()
            .filter(|(kind, ..)| which(*kind))
            .collect();
        kinds.sort_by_key(|(kind, ..)| *kind);
        kinds
            .into_iter()
            .flat_map(|(_, _, shown)| shown.iter().map(String::as_str))
            .collect()
    }

    /// `40 success, 2 reused, 1 warn`: the most frequent first, ties as first seen.
    pub fn counts(&self) -> String {
        let mut counts: Vec<&(String, usize)> = self.counts.iter().collect();
        counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        counts
            .iter()
            .map(|(status, count)| format!("{count} {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What one step's files said: its `run_results.json` and its `sources.json`, when it left them
/// and they could be read, and why those it left could not be (`its run_results.json could not
/// be read (...)`).
#[derive(Debug, Clone)]
pub struct StepFindings {
    pub step: StepLabel,
    pub results: Option<Tally>,
    pub freshness: Option<Tally>,
    pub unreadable: Vec<String>,
}

impl StepFindings {
    fn tallies(&self) -> impl Iterator<Item = &Tally> {
        self.results.iter().chain(self.freshness.iter())
    }
}

/// Every step's findings, in the order of the steps.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub steps: Vec<StepFindings>,
}

impl Findings {
    pub fn of_step(&self, index: u32) -> Option<&StepFindings> {
        self.steps.iter().find(|found| found.step.index == index)
    }

    /// `step 5 "Invoke dbt build": 40 success, 2 reused, 1 warn; step 6 ...`, for the closing
    /// line; `None` when no step left results.
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = self
            .steps
            .iter()
            .filter_map(|found| {
                let counts: Vec<String> = found
                    .tallies()
                    .filter(|tally| tally.total() > 0)
                    .map(Tally::counts)
                    .collect();
                (!counts.is_empty()).then(|| format!("{}: {}", found.step, counts.join(", ")))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// The warnings report: warned nodes and stale sources of every step, up to [`SHOWN`] of
    /// each, then how many more. Empty when nothing warned.
    pub fn warnings(&self) -> Vec<String> {
        let warned = self.gather(
            |found| found.results.as_ref(),
            |kind| kind == Notable::Warned,
        );
        let stale = self.gather(
            |found| found.freshness.as_ref(),
            |kind| matches!(kind, Notable::StaleWarn | Notable::StaleError),
        );
        let mut heads = Vec::new();
        if warned.0 > 0 {
            heads.push(format!("{} warned", counted(warned.0, "node", "nodes")));
        }
        if stale.0 > 0 {
            heads.push(format!(
                "{} {} stale",
                counted(stale.0, "source", "sources"),
                plural(stale.0, "is", "are")
            ));
        }
        if heads.is_empty() {
            return Vec::new();
        }
        let mut report = vec![format!("Warnings: {}", heads.join("; "))];
        for (count, worded) in [warned, stale] {
            let shown = worded.len();
            report.extend(worded);
            if count > shown {
                report.push(format!("- and {} more", count - shown));
            }
        }
        report
    }

    /// Across the steps, how many of the kinds `which` picks their `tally` holds, and the first
    /// [`SHOWN`] worded, each naming its step.
    fn gather(
        &self,
        tally: impl Fn(&StepFindings) -> Option<&Tally>,
        which: impl Fn(Notable) -> bool + Copy,
    ) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut worded = Vec::new();
        for found in &self.steps {
            let Some(tally) = tally(found) else {
                continue;
            };
            count += tally.count_of(which);
            let room = SHOWN - worded.len();
            worded.extend(
                tally
                    .worded(which)
                    .into_iter()
                    .take(room)
                    .map(|line| format!("{line} [{}]", found.step)),
            );
        }
        (count, worded)
    }
}

/// `- model.shop.orders (error, relation analytics.orders): relation "raw.orders" does not exist`
pub fn node_paragraph(node: &NodeResult) -> String {
    let mut about = vec![node.status.to_string()];
    if let Some(failures) = node
        .failures
        .expected()
        .filter(|_| matches!(node.status.as_str(), "fail" | "warn"))
    {
        about.push(format!("{failures} failing rows"));
    }
    if let Some(relation) = node.relation_name.shown() {
        about.push(format!("relation {relation}"));
    }
    let message = node
        .message
        .shown()
        .map(|message| essence(&message))
        .unwrap_or_default();
    let id = node.unique_id();
    let text = if message.is_empty() {
        format!("- {id} ({})", about.join(", "))
    } else {
        format!("- {id} ({}): {message}", about.join(", "))
    };
    paragraph(&text)
}

/// `- source.shop.raw.orders (warn): last loaded 26h 0m 0s ago (2026-11-27T00:00:00Z); warn
/// after 12 hours, error after 1 day`, or the error of a check that failed.
pub fn source_paragraph(source: &SourceResult) -> String {
    let id = source.unique_id();
    if let Some(error) = source.error.shown().filter(|e| !e.trim().is_empty()) {
        return paragraph(&format!("- {id} ({}): {}", source.status, essence(&error)));
    }
    let mut text = format!("- {id} ({})", source.status);
    let age = source
        .max_loaded_at_time_ago_in_s
        .expected()
        .filter(|seconds| seconds.is_finite() && **seconds >= 0.0 && **seconds < 1e12)
        .map(|seconds| age(std::time::Duration::from_secs_f64(*seconds)));
    match (age, source.max_loaded_at.shown()) {
        (Some(age), Some(at)) => text.push_str(&format!(": last loaded {age} ago ({at})")),
        (Some(age), None) => text.push_str(&format!(": last loaded {age} ago")),
        (None, Some(at)) => text.push_str(&format!(": last loaded at {at}")),
        (None, None) => {}
    }
    let thresholds: Vec<String> = ["warn_after", "error_after"]
        .into_iter()
        .filter_map(|name| {
            let after = source.criteria.as_ref()?.get(name)?;
            let count = after.get("count")?.as_u64()?;
            let period = after.get("period")?.as_str()?;
            Some(format!(
                "{} {}",
                name.replace('_', " "),
                counted(count, period, &format!("{period}s"))
            ))
        })
        .collect();
    if !thresholds.is_empty() {
        text.push_str(&format!("; {}", thresholds.join(", ")));
    }
    paragraph(&text)
}

/// The first lines of dbt's message that say what went wrong: for a database error, the
/// database's own error under dbt's header; never the pointer to the compiled code.
pub fn essence(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !is_compiled_pointer(line))
        .collect();
    let body = match lines.first() {
        Some(first) if is_error_header(first) && lines.len() > 1 => &lines[1..],
        _ => &lines[..],
    };
    body.iter().take(2).copied().collect::<Vec<_>>().join(" | ")
}

/// `compiled code at target/...` (`compiled SQL at` before dbt 1.3): where to look, not what
/// went wrong.
pub fn is_compiled_pointer(line: &str) -> bool {
    let line = line.to_lowercase();
    line.starts_with("compiled code at") || line.starts_with("compiled sql at")
}

/// dbt Core's headers of an error block, and the Fusion engine's error lines.
pub fn is_error_header(line: &str) -> bool {
    const HEADERS: &[&str] = &[
        "Compilation Error",
        "Database Error",
        "Runtime Error",
        "Dependency Error",
        "Parsing Error",
        // `Failure in test x`; from dbt 1.10 also `Failure in model x`, `... in snapshot x`.
        "Failure in ",
        "Encountered an error",
    ];
    HEADERS.iter().any(|header| line.starts_with(header))
        || line.starts_with("error: dbt")
        || line.starts_with("Failed [")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(unique_id: &str, status: &str, message: &str) -> NodeResult {
        serde_json::from_value(json!({
            "unique_id": unique_id, "status": status, "message": message, "failures": 3
        }))
        .unwrap()
    }

    #[test]
    fn counts_name_every_status_as_dbt_wrote_it() {
        let mut tally = Tally::default();
        for (status, times) in [
            ("success", 40),
            ("reused", 2),
            ("no-op", 1),
            ("warn", 1),
            ("partial success", 1),
        ] {
            for i in 0..times {
                tally.node(&node(&format!("model.p.m{i}"), status, ""));
            }
        }
        assert_eq!(
            tally.counts(),
            "40 success, 2 reused, 1 no-op, 1 warn, 1 partial success"
        );
        assert_eq!(tally.total(), 45);
        assert_eq!(tally.count_of(|kind| kind == Notable::Warned), 1);
        assert_eq!(tally.count_of(Notable::is_failure), 0);
    }

    #[test]
    fn the_report_names_warned_nodes_and_stale_sources_ten_each_then_counts() {
        let mut results = Tally::default();
        for i in 0..12 {
            results.node(&node(
                &format!("test.p.t{i}"),
                "warn",
                "Got 3 results, configured to warn if != 0",
            ));
        }
        let mut freshness = Tally::default();
        let source: SourceResult = serde_json::from_value(json!({
            "unique_id": "source.p.raw.orders", "status": "error",
            "max_loaded_at": "2026-11-26T00:00:00+00:00", "max_loaded_at_time_ago_in_s": 93600.0,
            "criteria": {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 1, "period": "day"}, "filter": null}
        }))
        .unwrap();
        freshness.source(&source);
        let findings = Findings {
            steps: vec![
                StepFindings {
                    step: StepLabel {
                        index: 4,
                        name: "Invoke dbt source freshness".into(),
                    },
                    results: None,
                    freshness: Some(freshness),
                    unreadable: Vec::new(),
                },
                StepFindings {
                    step: StepLabel {
                        index: 5,
                        name: "Invoke dbt build".into(),
                    },
                    results: Some(results),
                    freshness: None,
                    unreadable: Vec::new(),
                },
            ],
        };
        let report = findings.warnings();
        assert_eq!(report[0], "Warnings: 12 nodes warned; 1 source is stale");
        assert_eq!(
            report[1],
            "- test.p.t0 (warn, 3 failing rows): Got 3 results, configured to warn if != 0 [step 5 \"Invoke dbt build\"]"
        );
        assert_eq!(report[11], "- and 2 more");
        assert_eq!(
            report[12],
            "- source.p.raw.orders (error): last loaded 26h 0m 0s ago (2026-11-26T00:00:00+00:00); warn after 12 hours, error after 1 day [step 4 \"Invoke dbt source freshness\"]"
        );
        assert_eq!(report.len(), 13);
        assert_eq!(
            findings.summary().unwrap(),
            "step 4 \"Invoke dbt source freshness\": 1 error; step 5 \"Invoke dbt build\": 12 warn"
        );
        assert!(Findings::default().warnings().is_empty());
    }
}
