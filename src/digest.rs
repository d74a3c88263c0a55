//! Why a run failed, in a few lines for the exit-1 message and the log: from `run_results.json`
//! when the run left one (how many nodes failed, then each failed node, most severe first), else
//! from dbt's own error block in the failed step's log (dbt Core's and the Fusion engine's).
//!
//! Each paragraph is one line with control characters escaped, and the whole digest is capped:
//! Keboola events are not a log file.

use std::io::Read;

use anyhow::Result;

use crate::run_results::{self, NodeResult};
use crate::text::{printable, truncate};

/// Failed nodes named; the rest are counted.
const SHOWN: usize = 10;
/// One node's paragraph at most, in characters.
const PARAGRAPH_CHARS: usize = 400;
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

/// How bad a node's status is: errors first, then failed tests; `None` for the others.
fn severity(status: &str) -> Option<u8> {
    match status {
        "error" | "runtime error" => Some(0),
        "fail" => Some(1),
        _ => None,
    }
}

/// The digest of a `run_results.json`, read as it streams; `None` when no node failed.
pub fn from_run_results(reader: impl Read) -> Result<Option<Digest>> {
    let (mut total, mut warned, mut failed) = (0usize, 0usize, 0usize);
    // The first few of each severity, in the order dbt wrote them.
    let mut kept: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    run_results::for_each(reader, |node| {
        total += 1;
        warned += usize::from(node.status == "warn");
        if let Some(severity) = severity(&node.status) {
            failed += 1;
            let kept = &mut kept[usize::from(severity)];
            if kept.len() < SHOWN {
                kept.push(node_paragraph(&node));
            }
        }
        Ok(())
    })?;
    if failed == 0 {
        return Ok(None);
    }
    let mut paragraphs: Vec<String> = kept.into_iter().flatten().take(SHOWN).collect();
    if failed > paragraphs.len() {
        paragraphs.push(format!("- and {} more", failed - paragraphs.len()));
    }
    let mut summary = format!("{failed} of {total} nodes failed");
    if warned > 0 {
        summary.push_str(&format!(", {warned} warned"));
    }
    Ok(Some(Digest {
        summary,
        paragraphs,
    }))
}

/// `- model.shop.orders (error, relation analytics.orders): relation "raw.orders" does not exist`
fn node_paragraph(node: &NodeResult) -> String {
    let mut about = vec![node.status.clone()];
    if let Some(failures) = node.failures.filter(|_| node.status == "fail") {
        about.push(format!("{failures} failing rows"));
    }
    if let Some(relation) = &node.relation_name {
        about.push(format!("relation {relation}"));
    }
    let message = node.message.as_deref().map(essence).unwrap_or_default();
    let text = match message.is_empty() {
        true => format!("- {} ({})", node.unique_id, about.join(", ")),
        false => format!("- {} ({}): {message}", node.unique_id, about.join(", ")),
    };
    one_line(&text)
}

/// The first lines of dbt's message that say what went wrong: for a database error, the
/// database's own error under dbt's header; never the pointer to the compiled code.
fn essence(message: &str) -> String {
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
fn is_compiled_pointer(line: &str) -> bool {
    let line = line.to_lowercase();
    line.starts_with("compiled code at") || line.starts_with("compiled sql at")
}

/// A paragraph on one line, control characters escaped, at most [`PARAGRAPH_CHARS`].
fn one_line(text: &str) -> String {
    let line = printable(text).into_owned();
    match line.chars().count() > PARAGRAPH_CHARS {
        true => format!("{}…", truncate(&line, PARAGRAPH_CHARS)),
        false => line,
    }
}

/// dbt Core's headers of an error block, and the Fusion engine's error lines.
fn is_error_header(line: &str) -> bool {
    const HEADERS: &[&str] = &[
        "Compilation Error",
        "Database Error",
        "Runtime Error",
        "Dependency Error",
        "Parsing Error",
        "Failure in test",
        "Failure in unit_test",
        "Encountered an error",
    ];
    HEADERS.iter().any(|header| line.starts_with(header))
        || line.starts_with("error: dbt")
        || line.starts_with("Failed [")
}

/// Lines that sum up a run: dbt Core's `Completed with ...` and `Done. PASS=...`, the Fusion
/// engine's `Finished '...' with ...` and `Summary: ...`.
fn is_summary(line: &str) -> bool {
    line.starts_with("Completed with")
        || line.starts_with("Done. PASS=")
        || (line.starts_with("Finished '") && line.contains(" with "))
        || line.starts_with("Summary: ")
}

/// A log line without its terminal colours and the timestamp dbt puts before it
/// (`12:21:50  `, or the Fusion engine's `19:53:01.099293 [info ]: `), keeping its indent.
fn content(line: &str) -> String {
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
    strip_timestamp(&plain).to_owned()
}

fn strip_timestamp(line: &str) -> &str {
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
        return line;
    }
    let mut rest = &line[8..];
    if let Some(fraction) = rest.strip_prefix('.') {
        rest = fraction.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    if let Some(level) = rest.strip_prefix(" [") {
        if let Some(end) = level.find("]: ") {
            return &level[end + 3..];
        }
    }
    // dbt before 1.0: `14:04:12 | `.
    if let Some(piped) = rest.strip_prefix(" |") {
        return piped.strip_prefix(' ').unwrap_or(piped);
    }
    // dbt Core puts two spaces after the clock; what is indented beyond them stays indented.
    rest.strip_prefix("  ").unwrap_or(rest)
}

/// The digest of a step's log: dbt's error blocks (a header and the indented lines under it) and
/// its summary line; `None` when the log shows neither.
pub fn from_log(log: &str) -> Option<Digest> {
    let mut blocks: Vec<String> = Vec::new();
    let mut summary: Option<String> = None;
    // The block being read, and how far its header was indented.
    let mut block: Option<Vec<String>> = None;
    let mut indent = 0;
    for line in log.lines().map(content) {
        let trimmed = line.trim();
        let depth = line.len() - line.trim_start().len();
        let after_encountered = block
            .as_ref()
            .is_some_and(|b| b.len() == 1 && b[0] == "Encountered an error");
        if is_summary(trimmed) {
            summary = Some(trimmed.to_owned());
            close(&mut block, &mut blocks);
        } else if after_encountered && !trimmed.is_empty() {
            // `Encountered an error:` names the error on the next line, not indented.
            if let Some(lines) = block.as_mut() {
                lines.push(trimmed.to_owned());
            }
        } else if is_error_header(trimmed) {
            close(&mut block, &mut blocks);
            block = Some(vec![trimmed.trim_end_matches(':').to_owned()]);
            indent = depth;
        } else if let Some(lines) = block.as_mut() {
            match !trimmed.is_empty() && depth > indent {
                true => lines.push(trimmed.to_owned()),
                false => close(&mut block, &mut blocks),
            }
        }
    }
    close(&mut block, &mut blocks);
    if blocks.is_empty() && summary.is_none() {
        return None;
    }
    let failed = blocks.len();
    let mut paragraphs: Vec<String> = blocks
        .into_iter()
        .take(SHOWN)
        .map(|block| one_line(&format!("- {block}")))
        .collect();
    if failed > SHOWN {
        paragraphs.push(format!("- and {} more", failed - SHOWN));
    }
    Some(Digest {
        summary: one_line(
            &summary.unwrap_or_else(|| "dbt's log of the failed step says".to_owned()),
        ),
        paragraphs,
    })
}

/// Ends the block being read, keeping it once (dbt repeats its errors in the summary).
fn close(block: &mut Option<Vec<String>>, blocks: &mut Vec<String>) {
    if let Some(lines) = block.take() {
        let text = lines
            .into_iter()
            .filter(|line| !is_compiled_pointer(line))
            .collect::<Vec<_>>()
            .join(" | ");
        if !blocks.contains(&text) {
            blocks.push(text);
        }
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
                summary: "dbt's log of the failed step says".into(),
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

    #[test]
    fn failed_nodes_of_real_run_results_most_severe_first() {
        let datavault =
            include_bytes!("../tests/data/real/run_results/v4-postgres-errors-datavault.json");
        let digest = from_run_results(&datavault[..]).unwrap().unwrap();
        assert!(
            digest.summary.ends_with("nodes failed"),
            "{}",
            digest.summary
        );
        assert!(digest.summary.starts_with("2 of "), "{}", digest.summary);
        assert_eq!(digest.paragraphs.len(), 2);
        for paragraph in &digest.paragraphs {
            assert!(paragraph.starts_with("- model."), "{paragraph}");
            assert!(paragraph.contains(" (error"), "{paragraph}");
            assert!(!paragraph.contains('\n'), "{paragraph}");
        }
        let passing = include_bytes!("../tests/data/real/run_results/v6-duckdb-adamatito.json");
        assert_eq!(from_run_results(&passing[..]).unwrap(), None);
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
        let digest = from_run_results(json.as_bytes()).unwrap().unwrap();
        assert_eq!(digest.summary, "31 of 32 nodes failed, 1 warned");
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
            paragraphs: vec!["x".repeat(PARAGRAPH_CHARS); 20],
        };
        let lines = long.lines();
        assert!(lines.iter().map(|l| l.chars().count()).sum::<usize>() <= DIGEST_CHARS + 100);
        assert!(lines.last().unwrap().starts_with("- and "), "{lines:?}");
    }
}
