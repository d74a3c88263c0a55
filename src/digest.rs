//! Why a run failed, in a few lines for the exit-1 message and the log, from the step that
//! failed: its `run_results.json` when it left one (how many nodes failed, then each failed node,
//! most severe first), its `sources.json` for a freshness step, else dbt's own error blocks in
//! its log (dbt Core's console and file logs from 1.0 on, and the Fusion engine's).
//!
//! Each paragraph is one line with control characters escaped, and the whole digest is capped:
//! Keboola events are not a log file.

use crate::dbt_cloud::Run;
use crate::findings::{is_compiled_pointer, is_error_header, Findings, Notable, StepLabel, Tally};
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

/// Why `run` failed, from the step that failed (the first in Error): its results, else its
/// sources, else its log. Without a failed step, the last step's results. `None` when nothing
/// says more than the failure message already does.
pub fn of_failure(run: &Run, findings: &Findings) -> Option<Digest> {
    let Some(step) = run.failed_step() else {
        return findings
            .steps
            .iter()
            .rev()
            .find_map(|found| from_tallies(&found.step, found.results.as_ref(), None));
    };
    let label = StepLabel {
        index: u32::try_from(step.index).unwrap_or_default(),
        name: step.name.clone(),
    };
    let found = findings.of_step(label.index);
    let files = found.map(|found| (found.results.as_ref(), found.freshness.as_ref()));
    if let Some(digest) =
        files.and_then(|(results, sources)| from_tallies(&label, results, sources))
    {
        return Some(digest);
    }
    match run
        .step_log(step.index)
        .filter(|log| !log.trim().is_empty())
    {
        Some(log) => read_log(log).map(|(summary, paragraphs)| Digest {
            summary: match summary {
                Some(summary) => format!("Log of {label}: {summary}"),
                None => format!("Log of {label}:"),
            },
            paragraphs,
        }),
        None if files.is_none() => Some(Digest {
            summary: format!(
                "{label} ended in Error, and dbt Cloud has neither results nor a log of it"
            ),
            paragraphs: Vec::new(),
        }),
        None => None,
    }
}

/// The failures a step's results (or, for a freshness step, its sources) show; `None` when
/// they show none.
fn from_tallies(
    label: &StepLabel,
    results: Option<&Tally>,
    sources: Option<&Tally>,
) -> Option<Digest> {
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
    Some(Digest {
        summary,
        paragraphs,
    })
}

/// Lines that sum up a run: dbt Core's `Completed with ...` and `Done. PASS=...`, the Fusion
/// engine's `Finished '...' with ...` and `Summary: ...`.
fn is_summary(line: &str) -> bool {
    line.starts_with("Completed with")
        || line.starts_with("Done. PASS=")
        || (line.starts_with("Finished '") && line.contains(" with "))
        || line.starts_with("Summary: ")
}

/// One line of a log: whether dbt put its clock before it, the level a file log gives it, and
/// what follows, without terminal colours, its indent kept.
struct LogLine {
    stamped: bool,
    /// `error` of the file log's `[error]`.
    level: Option<String>,
    content: String,
}

impl LogLine {
    fn read(line: &str) -> LogLine {
        let plain = without_colours(line);
        match strip_timestamp(&plain) {
            Some((level, content)) => LogLine {
                stamped: true,
                level: level.map(str::to_owned),
                content: content.to_owned(),
            },
            None => LogLine {
                stamped: false,
                level: None,
                content: plain.clone(),
            },
        }
    }

    fn depth(&self) -> usize {
        self.content.len() - self.content.trim_start().len()
    }

    /// dbt Core's error headers, and the Fusion engine's errors: `error: dbt1501: ...` on the
    /// console, `[error]: dbt1001: ...` in its file log (given back as the console says it).
    fn header(&self) -> Option<String> {
        let trimmed = self.content.trim();
        if is_error_header(trimmed) {
            return Some(trimmed.trim_end_matches(':').to_owned());
        }
        let coded = trimmed.len() > 8
            && trimmed.starts_with("dbt")
            && trimmed[3..7].bytes().all(|b| b.is_ascii_digit())
            && trimmed[7..].starts_with(':');
        (coded && self.level.as_deref() == Some("error")).then(|| format!("error: {trimmed}"))
    }
}

fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI escape: ESC [ ... letter.
            if chars.peek() == Some(&'[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
}

/// The line after dbt's clock (`12:21:50  `, the file log's `19:53:01.099293 [error]
/// [MainThread]: ` with its level, or `14:04:12 | ` before dbt 1.0), its indent beyond the clock
/// kept; `None` when the line has no clock.
fn strip_timestamp(line: &str) -> Option<(Option<&str>, &str)> {
    let bytes = line.as_bytes();
    let clock = bytes.len() >= 8
        && bytes[..8].iter().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                *b == b':'
            } else {
                b.is_ascii_digit()
            }
        });
    if !clock {
        return None;
    }
    let mut rest = &line[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if let Some(bracketed) = rest.strip_prefix(" [") {
        if let Some(end) = bracketed.find("]: ") {
            let level = bracketed.split(']').next().map(str::trim);
            return Some((level, &bracketed[end + 3..]));
        }
    }
    if let Some(piped) = rest.strip_prefix(" |") {
        return Some((None, piped.strip_prefix(' ').unwrap_or(piped)));
    }
    // dbt Core puts two spaces after the clock; what is indented beyond them stays indented.
    Some((None, rest.strip_prefix("  ").unwrap_or(rest)))
}

/// The node an error header names: `model fct_payments` of `Database Error in model
/// fct_payments (models/...)`, `model main.downstream_model` of the Fusion engine's `Failed [
/// 1.00s] model main.downstream_model (table)`.
fn node_of(header: &str) -> Option<String> {
    if header.starts_with("error:") {
        return None;
    }
    let after = match header.strip_prefix("Failed [") {
        Some(rest) => rest.split_once(']')?.1,
        None => header.split_once(" in ")?.1,
    };
    let mut words = after.split_whitespace();
    let kind = words.next()?;
    let name = words.next()?.trim_end_matches(':');
    Some(format!("{kind} {name}"))
}

/// An error block being read: the node it is about, its lines, and how its header stood.
struct Block {
    node: Option<String>,
    lines: Vec<String>,
    indent: usize,
    stamped: bool,
}

impl Block {
    /// `Encountered an error:` names the error on the lines after it, not indented.
    fn is_bare_encounter(&self) -> bool {
        self.lines.len() == 1 && self.lines[0] == "Encountered an error"
    }

    /// A detail line, once: where to look (`compiled code at`, a macro trace, the caret under
    /// a SQL line) is left out.
    fn add(&mut self, line: &str) {
        let pointer = is_compiled_pointer(line)
            || line.starts_with("> ")
            || line.chars().all(|c| c == '^' || c.is_whitespace());
        if !pointer && !self.lines.iter().any(|kept| kept == line) {
            self.lines.push(line.to_owned());
        }
    }

    /// Whether `line` (not a header, not blank) is one of this block's details. From dbt 1.6 on
    /// only the header has a clock and its details follow without one; before, each detail has
    /// a clock and is indented further than the header. Without a clock at all (dbt before 1.0,
    /// a plain log), a detail is indented further than its header. A Fusion error's place
    /// (`(in models/x.sql:3:5)`, `--> models/x.sql:3:5`) follows it at any indent.
    fn holds(&self, line: &LogLine) -> bool {
        if self.stamped && !line.stamped {
            return true;
        }
        let trimmed = line.content.trim();
        let place = trimmed.starts_with("--> ") || trimmed.starts_with("(in ");
        line.depth() > self.indent || self.is_bare_encounter() || (self.is_fusion_error() && place)
    }

    fn is_fusion_error(&self) -> bool {
        self.lines
            .first()
            .is_some_and(|header| header.starts_with("error: dbt"))
    }

    /// The file a Fusion error points at (`--> models/example_model.sql:9:6`), by its stem.
    fn fusion_file_stem(&self) -> Option<&str> {
        let place = self
            .lines
            .iter()
            .find_map(|line| line.strip_prefix("--> "))?;
        let path = place.split(':').next()?;
        let file = path.rsplit(['/', '\\']).next()?;
        Some(file.split('.').next().unwrap_or(file))
    }
}

/// The digest of a step's log: dbt's error blocks (a header and its detail lines), one per
/// failing node, and its summary line; `None` when the log shows neither.
#[cfg(test)]
fn from_log(log: &str) -> Option<Digest> {
    read_log(log).map(|(summary, paragraphs)| Digest {
        summary: summary.unwrap_or_else(|| "dbt's log of the step says".to_owned()),
        paragraphs,
    })
}

/// dbt's summary line of a step's log, and a paragraph per error block (a header and its detail
/// lines), one per failing node; `None` when the log shows neither.
fn read_log(log: &str) -> Option<(Option<String>, Vec<String>)> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut summary: Option<String> = None;
    let mut open: Option<Block> = None;
    for line in log.lines().map(LogLine::read) {
        let trimmed = line.content.trim();
        if trimmed.is_empty() {
            continue;
        }
        if is_summary(trimmed) {
            summary = Some(trimmed.to_owned());
            close(&mut open, &mut blocks);
            continue;
        }
        // The Fusion engine's section rules (`==== Execution Summary ====`) end a block.
        if trimmed.starts_with("====") {
            close(&mut open, &mut blocks);
            continue;
        }
        if let Some(text) = line.header() {
            let node = node_of(&text);
            match open.as_mut() {
                // `Failure in test x` then `Database Error in test x`: one node, one entry.
                Some(block) if node.is_some() && block.node == node => {
                    // The node is named already: the kind of error is what this adds, unless
                    // the block says it (dbt repeats a block whole).
                    let kind = text.split(" in ").next().unwrap_or(&text);
                    if !block.lines[0].starts_with(kind) {
                        block.add(kind);
                    }
                    continue;
                }
                Some(block) if block.is_bare_encounter() => {
                    block.node = node;
                    block.lines.push(text);
                    continue;
                }
                _ => {}
            }
            close(&mut open, &mut blocks);
            open = Some(Block {
                node,
                lines: vec![text],
                indent: line.depth(),
                stamped: line.stamped,
            });
            continue;
        }
        match open.as_mut() {
            Some(block) if block.holds(&line) => block.add(trimmed),
            Some(_) => close(&mut open, &mut blocks),
            None => {}
        }
    }
    close(&mut open, &mut blocks);
    worded(with_fusion_errors_on_their_nodes(blocks), summary)
}

/// The log's summary line and its first [`SHOWN`] error blocks, one paragraph each; `None` when
/// the log had neither.
fn worded(blocks: Vec<Block>, summary: Option<String>) -> Option<(Option<String>, Vec<String>)> {
    if blocks.is_empty() && summary.is_none() {
        return None;
    }
    let failed = blocks.len();
    let mut paragraphs: Vec<String> = blocks
        .into_iter()
        .take(SHOWN)
        .map(|block| paragraph(&format!("- {}", block.lines.join(" | "))))
        .collect();
    if failed > SHOWN {
        paragraphs.push(format!("- and {} more", failed - SHOWN));
    }
    Some((summary.as_deref().map(paragraph), paragraphs))
}

/// The Fusion engine lists its failed nodes (`Failed [...] model schema.orders (table)`) apart
/// from its errors (`error: dbt0214: ...` and `--> models/orders.sql:9:6`): an error that points
/// at a failed node's file joins that node's entry, so that each node is told once, with why.
fn with_fusion_errors_on_their_nodes(blocks: Vec<Block>) -> Vec<Block> {
    let mut kept: Vec<Block> = Vec::with_capacity(blocks.len());
    let mut errors: Vec<Block> = Vec::new();
    for block in blocks {
        if block.is_fusion_error() {
            errors.push(block)
        } else {
            kept.push(block)
        }
    }
    for error in errors {
        let node = error.fusion_file_stem().and_then(|stem| {
            kept.iter_mut().find(|block| {
                block.lines[0].starts_with("Failed [")
                    && block
                        .node
                        .as_deref()
                        .is_some_and(|node| node.rsplit(['.', ' ']).next() == Some(stem))
            })
        });
        match node {
            Some(block) => {
                for line in &error.lines {
                    block.add(line);
                }
            }
            None => kept.push(error),
        }
    }
    kept
}

/// Ends the block being read, keeping it once: dbt repeats its errors in the summary, so a
/// node already seen, or the same text, is not kept again.
fn close(open: &mut Option<Block>, blocks: &mut Vec<Block>) {
    let Some(block) = open.take() else {
        return;
    };
    let seen = blocks.iter().any(|kept| match (&kept.node, &block.node) {
        (Some(a), Some(b)) => a == b,
        _ => kept.lines == block.lines,
    });
    if !seen {
        blocks.push(block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_log(name: &str) -> &'static str {
        match name {
            "faq" => include_str!("../tests/data/real/logs/dbt-core-database-error-docs-faq.log"),
            "clickhouse" => {
                include_str!(
                    "../tests/data/real/logs/dbt-1.1-compilation-error-clickhouse-docs-206.log"
                )
            }
            "datavault" => {
                include_str!(
                    "../tests/data/real/logs/dbt-cloud-compilation-error-datavault4dbt-35.log"
                )
            }
            _ => include_str!(
                "../tests/data/real/logs/dbt-fusion-2.0-failed-model-dbt-fusion-1539.log"
            ),
        }
    }

    #[test]
    fn dbt_cores_error_blocks_and_summary_from_real_logs() {
        assert_eq!(
            from_log(real_log("faq")),
            Some(Digest {
                summary: "Done. PASS=0 WARN=0 ERROR=1 SKIP=0 TOTAL=1".into(),
                paragraphs: vec![
                    "- Database Error in model customers (models/customers.sql) | Syntax error: Expected \")\" but got identifier `your-info-12345` at [13:15]".into()
                ],
            })
        );
        assert_eq!(
            from_log(real_log("clickhouse")),
            Some(Digest {
                summary: "dbt's log of the step says".into(),
                paragraphs: vec![
                    "- Encountered an error | Compilation Error in model actor_summary (models/actors/actor_summary.sql) | Model 'model.imdb.actor_summary' (models/actors/actor_summary.sql) depends on a source named 'imdb.genres' which was not found".into()
                ],
            })
        );
        // dbt Cloud's summary repeats the error: it is said once.
        let datavault = from_log(real_log("datavault")).unwrap();
        assert_eq!(
            datavault.paragraphs,
            ["- Compilation Error in model stg_order (models/staging/datavaultdemo/stg_order.sql) | The name argument to ref() must be a string, got <class 'dbt.clients.jinja.create_undefined.<locals>.Undefined'>"]
        );
    }

    fn log(name: &str) -> String {
        let path = format!("{}/tests/data/real/logs/{name}", env!("CARGO_MANIFEST_DIR"));
        String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
    }

    /// dbt 1.6 and later: only the header has a clock; `Failure in model x` and `Database Error
    /// in model x` are one node; `compiled code at` lines are left out.
    #[test]
    fn the_console_of_dbt_1_10_keeps_the_databases_words_one_entry_per_node() {
        let digest = from_log(&log(
            "dbt-1.10-console-snowflake-9-errors-coalesce-upgrading-to-fusion.log",
        ))
        .unwrap();
        assert_eq!(
            digest.summary,
            "Done. PASS=84 WARN=0 ERROR=9 SKIP=4 NO-OP=5 TOTAL=102"
        );
        assert_eq!(digest.paragraphs.len(), 9, "{:#?}", digest.paragraphs);
        assert_eq!(
            digest.paragraphs[0],
            "- Failure in model stg_orders_with_custom_config (models/staging/jaffle_shop/stg_orders_with_custom_config.sql) | Database Error | 000904 (42000): SQL compilation error: error line 7 at position 2 | invalid identifier 'USER_ID'"
        );
        assert_eq!(
            digest.paragraphs[1],
            "- Failure in snapshot orders_snapshot (snapshots/orders_snapshot.yml) | Database Error | 000904 (42000): SQL compilation error: error line 7 at position 33 | invalid identifier 'ORDER_DATE'"
        );
        assert!(digest
            .paragraphs
            .iter()
            .all(|p| !p.contains("compiled code")));
    }

    /// File logs (`logs/dbt.log`): a clock and a level on every line dbt writes, detail lines
    /// without; the error told during the run and again in the summary is one entry.
    #[test]
    fn file_logs_of_dbt_1_7_and_1_11_name_each_failing_node_once() {
        let swans = from_log(&log(
            "dbt-1.11.6-file-log-postgres-database-error-swans.log",
        ))
        .unwrap();
        assert_eq!(
            swans.summary,
            "Done. PASS=3 WARN=0 ERROR=0 SKIP=0 NO-OP=0 TOTAL=3"
        );
        assert_eq!(
            swans.paragraphs,
            ["- Database Error in model stg_ca_crashes (models\\stg\\stg_ca_crashes.sql) | relation \"raw.ca_crashes_json_only\" does not exist | LINE 20:     from \"swans_demo\".\"raw\".\"ca_crashes_json_only\""]
        );
        let hackathon = from_log(&log(
            "dbt-1.7.14-file-log-snowflake-2-errors-3fid-hackathon.log",
        ))
        .unwrap();
        // The file holds several invocations: the failed build's two tests are among them.
        let tests: Vec<&String> = hackathon
            .paragraphs
            .iter()
            .filter(|p| p.contains("Error in test "))
            .collect();
        assert_eq!(tests.len(), 2, "{:#?}", hackathon.paragraphs);
        assert!(
            tests.iter().all(|p| p.contains("000606 (57P03)")),
            "{tests:#?}"
        );
        // A file log holds every invocation; a step's log is one: the failed `dbt build`'s.
        let whole = log("dbt-1.11.5-file-log-bigquery-8-errors-spotify.log");
        let completed = whole.find("Completed with 8 errors").unwrap();
        let start = whole[..completed].rfind("\n=====").unwrap();
        let end = completed
            + whole[completed..]
                .find("\n=====")
                .unwrap_or(whole.len() - completed);
        let spotify = from_log(&whole[start..end]).unwrap();
        assert_eq!(
            spotify.summary,
            "Done. PASS=5 WARN=0 ERROR=8 SKIP=0 NO-OP=0 TOTAL=13"
        );
        assert_eq!(spotify.paragraphs.len(), 8, "{:#?}", spotify.paragraphs);
        assert!(
            spotify
                .paragraphs
                .iter()
                .any(|p| p.contains("unique_fact_tracks_track_id")
                    && p.contains("Got 16641 results, configured to fail if != 0")),
            "{:#?}",
            spotify.paragraphs
        );
    }

    #[test]
    fn a_unit_tests_difference_is_kept_under_its_header() {
        let digest = from_log(&log(
            "dbt-1.8-console-unit-test-failure-docs-unit-tests.log",
        ))
        .unwrap();
        assert_eq!(digest.summary, "Done. PASS=0 WARN=0 ERROR=1 SKIP=0 TOTAL=1");
        assert_eq!(digest.paragraphs.len(), 1);
        assert!(
            digest.paragraphs[0].starts_with(
                "- Failure in unit_test test_is_valid_email_address (models/marts/unit_tests.yml) | actual differs from expected: | @@ ,email"
            ),
            "{}",
            digest.paragraphs[0]
        );
    }

    /// The Fusion engine lists failed nodes apart from its errors; an error pointing at the
    /// node's file joins it.
    #[test]
    fn the_fusion_engines_errors_join_the_node_they_point_at() {
        let digest =
            from_log(&log("dbt-fusion-2.0-failed-model-dbt0214-agent-skills.log")).unwrap();
        assert_eq!(digest.summary, "Summary: 1 total | 1 error");
        assert_eq!(
            digest.paragraphs,
            ["- Failed [  4.65s] model fusion_tests_schema.example_model (view) | error: dbt0214: Table 'PROD.RAW.ORDERS' is missing in remote | --> models/example_model.sql:9:6 (target/compiled/models/example_model.sql:9:6)"]
        );
        let digest = from_log(&log(
            "dbt-fusion-2.0-compile-error-dbt1501-agent-skills.log",
        ))
        .unwrap();
        assert_eq!(
            digest.paragraphs,
            ["- Failed [-------] model fusion_tests_schema.example_model (table) | error: dbt1501: Failed to render SQL invalid operation: Required config key 'owner' not found in config | (in models/example_model.sql:11:22) | --> models/example_model.sql:11:22"]
        );
        let file_log = from_log(&log("dbt-fusion-2.0-file-log-dbt1001-agent-skills.log")).unwrap();
        assert!(
            file_log
                .paragraphs
                .iter()
                .any(|p| p == "- error: dbt1001: Profile 'default' not found in profiles.yml"),
            "{:#?}",
            file_log.paragraphs
        );
    }

    #[test]
    fn ten_failed_tests_are_ten_entries() {
        let mut log = String::from(
            "02:00:00  Completed with 10 errors, 0 partial successes, and 0 warnings:\n",
        );
        for i in 0..10 {
            log.push_str(&format!(
                "02:00:09  Failure in test t{i} (models/schema.yml)\n02:00:09    Database Error in test t{i} (models/schema.yml)\n  002003 (42S02): SQL compilation error:\n  Object 'RAW.T{i}' does not exist or not authorized.\n02:00:09  \n"
            ));
        }
        log.push_str("02:00:10  Done. PASS=0 WARN=0 ERROR=10 SKIP=0 NO-OP=0 TOTAL=10\n");
        let digest = from_log(&log).unwrap();
        assert_eq!(digest.paragraphs.len(), 10);
        assert_eq!(
            digest.paragraphs[9],
            "- Failure in test t9 (models/schema.yml) | Database Error | 002003 (42S02): SQL compilation error: | Object 'RAW.T9' does not exist or not authorized."
        );
    }

    #[test]
    fn the_fusion_engines_failed_nodes_and_summary_from_a_real_log() {
        assert_eq!(
            from_log(real_log("fusion")),
            Some(Digest {
                summary: "Summary: 3 total | 1 success | 1 error | 1 skipped".into(),
                paragraphs: vec!["- Failed [  1.00s] model main.downstream_model (table)".into()],
            })
        );
    }

    #[test]
    fn a_log_without_an_error_block_has_no_digest_and_escapes_are_shown_not_obeyed() {
        assert_eq!(
            from_log("12:00:00  Running with dbt=1.8.0\n12:00:01  Cloning\n"),
            None
        );
        let hostile =
            "\u{1b}[31m12:00:00  Database Error in model x (x.sql)\n12:00:00    boom\u{7}\n";
        let digest = from_log(hostile).unwrap();
        assert_eq!(
            digest.paragraphs,
            ["- Database Error in model x (x.sql) | boom\\u{7}"]
        );
    }

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
        let digest = from_tallies(&build_step(), Some(&tally_of(datavault)), None).unwrap();
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
            from_tallies(&build_step(), Some(&tally_of(passing)), None),
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
        let digest = from_tallies(&build_step(), Some(&tally_of(json.as_bytes())), None).unwrap();
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
