//! dbt's logs, read line by line for what they say of a failure: its error blocks (a header and
//! its detail lines), one per failing node, and its summary line. dbt Core's console and file
//! logs from 1.0 on, and the Fusion engine's. The failure digest words what is found here; the
//! cut of a long string keeps the lines found in its middle ([`crate::long_strings`]), so that a
//! failure in the middle of a log of any length is found.
//!
//! What a reader keeps is bounded whatever the log: [`MAX_BLOCKS`] blocks of at most
//! [`MAX_BLOCK_LINES`] lines of at most [`MAX_LINE_CHARS`] characters.

use crate::findings::{is_compiled_pointer, is_error_header, SHOWN};
use crate::text::{paragraph, truncate};

/// Error blocks kept; more are counted.
const MAX_BLOCKS: usize = 100;
/// Lines a block keeps.
const MAX_BLOCK_LINES: usize = 40;
/// Characters of a line read; the rest of a longer line is not.
pub const MAX_LINE_CHARS: usize = 2_000;

/// What a log says of a failure.
#[derive(Default)]
pub struct LogFindings {
    /// dbt's summary line (`Done. PASS=...`, the Fusion engine's `Summary: ...`), as dbt wrote
    /// it and trimmed.
    summary: Option<(String, String)>,
    pub blocks: Vec<Block>,
    /// Blocks past [`MAX_BLOCKS`].
    more: usize,
}

impl LogFindings {
    pub fn read(log: &str) -> LogFindings {
        let mut reader = LogReader::default();
        for line in log.lines() {
            reader.line(line);
        }
        reader.finish()
    }

    pub fn summary(&self) -> Option<&str> {
        self.summary.as_ref().map(|(trimmed, _)| trimmed.as_str())
    }

    /// How many failures the log names.
    pub fn failures(&self) -> usize {
        self.blocks.len() + self.more
    }

    pub fn is_empty(&self) -> bool {
        self.failures() == 0 && self.summary.is_none()
    }

    /// The block about the node `unique_id`, taken out of what is left to tell; its paragraph
    /// when it says more than that the node failed (an error under its header).
    pub fn take_block_of(&mut self, unique_id: &str) -> Option<String> {
        let at = self.blocks.iter().position(|block| {
            block
                .node
                .as_deref()
                .is_some_and(|node| same_node(node, unique_id))
        })?;
        let block = self.blocks.remove(at);
        (block.lines.len() > 1).then(|| block.paragraph())
    }

    /// Without the blocks of the nodes `named` (unique ids), told already by the results.
    pub fn without(mut self, named: &[String]) -> LogFindings {
        self.blocks.retain(|block| {
            !block
                .node
                .as_deref()
                .is_some_and(|node| named.iter().any(|id| same_node(node, id)))
        });
        self
    }

    /// The first [`SHOWN`] blocks, a paragraph each, then how many more.
    pub fn paragraphs(&self) -> Vec<String> {
        let mut paragraphs: Vec<String> = self
            .blocks
            .iter()
            .take(SHOWN)
            .map(Block::paragraph)
            .collect();
        let failures = self.failures();
        if failures > paragraphs.len() {
            paragraphs.push(format!("- and {} more", failures - paragraphs.len()));
        }
        paragraphs
    }

    /// The lines as dbt wrote them that make the blocks and the summary, in order, whole blocks
    /// within `budget` bytes, but for those `known` says are known already: read again, they say
    /// what this says.
    pub fn lines_as_written(&self, budget: usize, known: impl Fn(&str) -> bool) -> Vec<&str> {
        let mut lines = Vec::new();
        let mut spent = 0;
        let blocks = self.blocks.iter().map(|block| &block.raw[..]).chain(
            self.summary
                .iter()
                .map(|(_, raw)| std::slice::from_ref(raw)),
        );
        for raw in blocks {
            if raw.iter().all(|line| known(line)) {
                continue;
            }
            let size: usize = raw.iter().map(|line| line.len() + 1).sum();
            if spent + size > budget {
                break;
            }
            spent += size;
            lines.extend(raw.iter().map(String::as_str));
        }
        lines
    }
}

/// Whether the node a log names (`model fct_payments`, the Fusion engine's `model
/// main.fct_payments`, `test unique_orders_id`) is the one of `unique_id`
/// (`model.shop.fct_payments`, `test.shop.unique_orders_id.4f2a`).
fn same_node(log_node: &str, unique_id: &str) -> bool {
    let Some((kind, name)) = log_node.split_once(' ') else {
        return false;
    };
    let name = name.rsplit('.').next().unwrap_or(name);
    let mut parts = unique_id.split('.');
    parts.next() == Some(kind) && parts.skip(1).any(|part| part == name)
}

/// Reads a log a line at a time.
#[derive(Default)]
pub struct LogReader {
    found: LogFindings,
    open: Option<Block>,
}

impl LogReader {
    pub fn line(&mut self, raw: &str) {
        let raw = truncate(raw, MAX_LINE_CHARS);
        let line = LogLine::read(raw);
        let trimmed = line.content.trim();
        if trimmed.is_empty() {
            return;
        }
        if is_summary(trimmed) {
            self.found.summary = Some((trimmed.to_owned(), raw.to_owned()));
            self.close();
            return;
        }
        // The Fusion engine's section rules (`==== Execution Summary ====`) end a block, and so
        // does a cut's mark (`…[N characters cut]…`): what follows it is elsewhere in the log.
        if trimmed.starts_with("====") || is_cut_mark(trimmed) {
            self.close();
            return;
        }
        if let Some(text) = line.header() {
            let node = node_of(&text);
            match self.open.as_mut() {
                // `Failure in test x` then `Database Error in test x`: one node, one entry.
                Some(block) if node.is_some() && block.node == node => {
                    // The node is named already: the kind of error is what this adds, unless
                    // the block says it (dbt repeats a block whole).
                    let kind = text.split(" in ").next().unwrap_or(&text);
                    if !block.lines[0].starts_with(kind) {
                        block.add(kind);
                    }
                    block.keep_raw(raw);
                    return;
                }
                Some(block) if block.is_bare_encounter() => {
                    block.node = node;
                    block.lines.push(text);
                    block.keep_raw(raw);
                    return;
                }
                _ => {}
            }
            self.close();
            self.open = Some(Block {
                node,
                lines: vec![text],
                raw: vec![raw.to_owned()],
                indent: line.depth(),
                stamped: line.stamped,
            });
            return;
        }
        // The Fusion engine's lines of progress (`Skipped [-------] model ...`, ` Succeeded [
        // 0.50s] ...`) are no block's details.
        if is_fusion_progress(trimmed) {
            self.close();
            return;
        }
        match self.open.as_mut() {
            Some(block) if block.holds(&line) => {
                block.add(trimmed);
                block.keep_raw(raw);
            }
            Some(_) => self.close(),
            None => {}
        }
    }

    pub fn finish(mut self) -> LogFindings {
        self.close();
        let mut found = self.found;
        found.blocks = with_fusion_errors_on_their_nodes(std::mem::take(&mut found.blocks));
        found
    }

    /// Ends the block being read, keeping it once: dbt repeats its errors in the summary, so a
    /// node already seen, or the same text, is not kept again.
    fn close(&mut self) {
        let Some(block) = self.open.take() else {
            return;
        };
        let blocks = &mut self.found.blocks;
        let seen = blocks.iter().any(|kept| match (&kept.node, &block.node) {
            (Some(a), Some(b)) => a == b,
            _ => kept.lines == block.lines,
        });
        match () {
            _ if seen => {}
            _ if blocks.len() < MAX_BLOCKS => blocks.push(block),
            _ => self.found.more += 1,
        }
    }
}

/// The Fusion engine's line of a node's progress: a word, then its time in brackets (`Skipped
/// [-------] model ...`, `Succeeded [  0.50s] ...`).
fn is_fusion_progress(line: &str) -> bool {
    let Some((word, rest)) = line.split_once(" [") else {
        return false;
    };
    let timed = rest.split_once(']').is_some_and(|(time, _)| {
        time.trim()
            .chars()
            .all(|c| c == '-' || c == '.' || c == 's' || c.is_ascii_digit())
    });
    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphabetic()) && timed
}

/// A line holding the mark of a long string's cut ([`crate::long_strings`]).
fn is_cut_mark(line: &str) -> bool {
    line.find("…[")
        .is_some_and(|start| line[start..].contains("]…"))
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
    /// Whether the line is the Fusion engine's file log's (`09:24:03.076930 [error]: ...`, no
    /// thread named), where every line at the error level begins an error.
    fusion_file: bool,
    content: String,
}

impl LogLine {
    fn read(line: &str) -> LogLine {
        let plain = without_colours(line);
        match strip_timestamp(&plain) {
            Some((level, content)) => LogLine {
                stamped: true,
                fusion_file: level.is_some_and(|level| !level.contains(']')),
                level: level
                    .map(|level| level.split(']').next().unwrap_or(level).trim().to_owned()),
                content: content.to_owned(),
            },
            None => LogLine {
                stamped: false,
                level: None,
                fusion_file: false,
                content: plain.clone(),
            },
        }
    }

    fn depth(&self) -> usize {
        self.content.len() - self.content.trim_start().len()
    }

    /// dbt Core's error headers, and the Fusion engine's errors: `error: dbt1501: ...` on the
    /// console, `[error]: dbt1001: ...` or `[error]: Error materializing test ...` in its file
    /// log (given back as the console says it).
    fn header(&self) -> Option<String> {
        let trimmed = self.content.trim();
        if is_error_header(trimmed) {
            return Some(trimmed.trim_end_matches(':').to_owned());
        }
        let coded = trimmed.len() > 8
            && trimmed.starts_with("dbt")
            && trimmed.is_char_boundary(7)
            && trimmed[3..7].bytes().all(|b| b.is_ascii_digit())
            && trimmed[7..].starts_with(':');
        let error = self.level.as_deref() == Some("error");
        (error && (coded || self.fusion_file)).then(|| format!("error: {trimmed}"))
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
/// [MainThread]: ` with what is bracketed (`error] [MainThread`; the Fusion engine's file log
/// brackets its level alone), or `14:04:12 | ` before dbt 1.0), its indent beyond the clock kept;
/// `None` when the line has no clock.
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
            return Some((Some(&bracketed[..end]), &bracketed[end + 3..]));
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

/// An error block: the node it is about, its lines as the digest tells them and as dbt wrote
/// them, and how its header stood.
pub struct Block {
    pub node: Option<String>,
    lines: Vec<String>,
    raw: Vec<String>,
    indent: usize,
    stamped: bool,
}

impl Block {
    /// The block as one paragraph of the digest.
    fn paragraph(&self) -> String {
        paragraph(&format!("- {}", self.lines.join(" | ")))
    }

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
        if !pointer
            && !self.lines.iter().any(|kept| kept == line)
            && self.lines.len() < MAX_BLOCK_LINES
        {
            self.lines.push(line.to_owned());
        }
    }

    fn keep_raw(&mut self, raw: &str) {
        if self.raw.len() < MAX_BLOCK_LINES {
            self.raw.push(raw.to_owned());
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

    /// The Fusion engine's `error: dbtNNNN: ...`, or an error of its file log.
    fn is_fusion_error(&self) -> bool {
        self.lines
            .first()
            .is_some_and(|header| header.starts_with("error: "))
    }

    /// The node a Fusion error names by its unique id (`Error materializing test
    /// test.shop.unique_orders_id.4f2a: ...`).
    fn fusion_unique_id(&self) -> Option<&str> {
        const KINDS: [&str; 6] = [
            "model.",
            "test.",
            "seed.",
            "snapshot.",
            "unit_test.",
            "source.",
        ];
        self.lines.first()?.split_whitespace().find_map(|word| {
            let word = word.trim_end_matches([':', ',', '.']);
            let named =
                KINDS.iter().any(|kind| word.starts_with(kind)) && word.matches('.').count() >= 2;
            named.then_some(word)
        })
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
        let by_file = |block: &&mut Block| {
            let stem = error.fusion_file_stem();
            block
                .node
                .as_deref()
                .is_some_and(|node| stem.is_some() && node.rsplit(['.', ' ']).next() == stem)
        };
        let by_id = |block: &&mut Block| {
            let id = error.fusion_unique_id();
            block
                .node
                .as_deref()
                .is_some_and(|node| id.is_some_and(|id| same_node(node, id)))
        };
        let node = kept.iter_mut().find(|block| {
            block.lines[0].starts_with("Failed [") && (by_file(block) || by_id(block))
        });
        match node {
            Some(block) => {
                for line in &error.lines {
                    block.add(line);
                }
                for raw in &error.raw {
                    block.keep_raw(raw);
                }
            }
            None => kept.push(error),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the digest says of a log alone: its summary line and a paragraph per block.
    #[derive(Debug, PartialEq, Eq)]
    struct Digest {
        summary: String,
        paragraphs: Vec<String>,
    }

    fn from_log(log: &str) -> Option<Digest> {
        let found = LogFindings::read(log);
        if found.is_empty() {
            return None;
        }
        Some(Digest {
            summary: found
                .summary()
                .map(paragraph)
                .unwrap_or_else(|| "dbt's log of the step says".to_owned()),
            paragraphs: found.paragraphs(),
        })
    }

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

    /// The Fusion engine's console: each failed model with its error, the progress lines of
    /// other nodes between them no part of it.
    #[test]
    fn the_fusion_engines_console_names_each_failed_model_with_its_error() {
        let digest = from_log(&log(
            "fusion-2.0.0-preview.3-console-build-failed-skipped-Barahow-Marketing-CRM.dbt.log",
        ))
        .unwrap();
        assert_eq!(
            digest.summary,
            "Finished 'build' target 'dev' with 2 errors and 4 warnings in 26s 965ms"
        );
        assert_eq!(digest.paragraphs.len(), 2, "{:#?}", digest.paragraphs);
        for (paragraph, model) in digest
            .paragraphs
            .iter()
            .zip(["staging_meta_ads", "staging_ga4"])
        {
            assert!(
                paragraph.starts_with(&format!(
                    "- Failed [  2.02s] model crm_analytics.{model} (view) | error: dbt1501: Error executing materialization macro"
                )) || paragraph.starts_with(&format!(
                    "- Failed [  1.69s] model crm_analytics.{model} (view) | error: dbt1501: Error executing materialization macro"
                )),
                "{paragraph}"
            );
            assert!(!paragraph.contains("Skipped ["), "{paragraph}");
        }
    }

    /// The Fusion engine's file log: an `[error]` line naming a test by its unique id joins the
    /// test's `Failed` line, with the database's words under it.
    #[test]
    fn the_fusion_engines_file_log_joins_a_tests_error_to_its_failed_line() {
        let log = "09:24:03.943246 [error]: Error materializing test test.shop.unique_orders_id.b61965c6e8: Catalog Error: Table with name orders does not exist!\n\
                   Did you mean \"information_schema.tables\"?\n\
                   09:24:03.943636 [info ]:     Failed [  1.05s] test  audit.unique_orders_id (models/schema.yml:45:17)\n\
                   09:24:03.943700 [info ]:    Skipped [-------] model  shop.orders_daily (table)\n\
                   09:24:03.943800 [error] [MainThread]: 1 of 4 ERROR not_null_x ..... [ERROR in 0.1s]\n";
        let found = LogFindings::read(log);
        assert_eq!(
            found.paragraphs(),
            ["- Failed [  1.05s] test  audit.unique_orders_id (models/schema.yml:45:17) | error: Error materializing test test.shop.unique_orders_id.b61965c6e8: Catalog Error: Table with name orders does not exist! | Did you mean \"information_schema.tables\"?"],
            "dbt Core's progress line at the error level is no error"
        );
    }

    #[test]
    fn the_mark_of_a_cut_ends_a_block_and_what_is_known_is_not_written_again() {
        let log = "12:00:00  Database Error in model orders (models/orders.sql)\n\
                   …[900 characters cut]…\n\
                   12:00:09  Done. PASS=1 WARN=0 ERROR=1 SKIP=0 TOTAL=2\n";
        let found = LogFindings::read(log);
        assert_eq!(
            found.paragraphs(),
            ["- Database Error in model orders (models/orders.sql)"]
        );
        assert_eq!(found.lines_as_written(1_000, |_| false).len(), 2);
        assert_eq!(
            found.lines_as_written(1_000, |line| line.contains("Done.")),
            ["12:00:00  Database Error in model orders (models/orders.sql)"]
        );
        assert!(
            found.lines_as_written(10, |_| false).is_empty(),
            "within the budget"
        );
    }

    #[test]
    fn a_node_in_a_log_is_the_one_of_its_unique_id() {
        assert!(same_node("model fct_payments", "model.shop.fct_payments"));
        assert!(same_node(
            "model main.fct_payments",
            "model.shop.fct_payments"
        ));
        assert!(same_node(
            "test unique_orders_id",
            "test.shop.unique_orders_id.4f2a"
        ));
        assert!(!same_node(
            "test unique_orders_id",
            "model.shop.unique_orders_id"
        ));
        assert!(!same_node("model orders", "model.shop.fct_orders"));
        assert!(!same_node("orders", "model.shop.orders"));
    }

    #[test]
    fn a_line_of_any_characters_never_panics_the_reader() {
        for line in [
            "dbt€€€€: x",
            "12:00:00.1 [error]: dbt12€: y",
            "dbt1234",
            "…[",
            "]… …[",
        ] {
            let mut reader = LogReader::default();
            reader.line(line);
            reader.finish();
        }
    }
}
