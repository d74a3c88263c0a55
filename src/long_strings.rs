//! JSON read with its long strings cut while it streams in, so that no string of an answer or a
//! file costs more memory than [`KEPT`], however long it is: a step's log of 250 MB, a node's
//! message of 200 MB. A string longer than that keeps its first [`HEAD`] and its last [`TAIL`]
//! bytes (where dbt says what failed), joined by a mark that says how many characters were cut,
//! and, after the mark, the lines of dbt's errors and its summary found anywhere in the string
//! (at most [`ERRORS`] bytes, [`crate::dbt_log`]): a failure in the middle of a long log is not
//! lost with the middle.
//!
//! serde_json reads a whole string into memory before anyone sees it, so the cut has to come
//! before it, on the JSON text: [`CutLongStrings`] is a reader that passes JSON through and
//! rewrites only the strings that are too long. It never splits a character, an escape or a
//! surrogate pair, so what it gives is JSON whenever what it reads is; a secret of the process
//! cut in two at the mark is masked on both sides ([`crate::secret::mask_partial`]).
//!
//! It also rewrites, in strings of any length, a lone surrogate escape (`\udcfc`: half of a
//! UTF-16 pair, which Python's `json` writes for a byte it could not decode) to `\ufffd`, the
//! replacement character: serde_json refuses the whole document for one, and a step's log or a
//! job's name holding one is still dbt Cloud's answer. A whole pair stays the character it
//! makes. How many were rewritten is counted ([`CutLongStrings::lone_surrogates`]) for the one
//! warning ([`warn_lone_surrogates`]).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dbt_log::{LogReader, MAX_LINE_CHARS};

/// The bytes of a string kept from its start...
pub const HEAD: usize = 16 * 1024;
/// ...and from its end.
pub const TAIL: usize = 48 * 1024;
/// A string at most this long (in bytes of JSON text) passes whole.
pub const KEPT: usize = HEAD + TAIL;
/// The lines of dbt's errors a cut string keeps, at most, in bytes.
pub const ERRORS: usize = 16 * 1024;

/// The mark in place of what was cut.
pub fn mark(cut: u64) -> String {
    format!("…[{cut} characters cut]…")
}

/// The mark of a cut string that keeps dbt's errors, which follow it, one a line.
fn mark_with_errors(cut: u64) -> String {
    format!("…[{cut} characters cut; the lines of dbt's errors and summary in the whole text follow]…\\n")
}

/// What ends the lines of dbt's errors after the mark, before the tail.
const END_OF_ERRORS: &str = "…[end of those lines]…";

/// A string as read, told apart into what it kept of the text as written: what is cut again for a
/// table (a step's log to its end, a step's name to its start) says how much of the text as
/// written is gone, not how much of what was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written<'a> {
    /// The text's start as written: all of it when it was not cut.
    pub head: &'a str,
    /// Characters cut after the head.
    pub cut: u64,
    /// The text's end as written, after the cut (after the lines of dbt's errors the mark
    /// brings, which are not the text's end); empty when it was not cut.
    pub end: &'a str,
}

impl Written<'_> {
    /// The length of the text as written, in characters.
    pub fn chars(&self) -> u64 {
        (self.head.chars().count() + self.end.chars().count()) as u64 + self.cut
    }
}

/// `text` told apart by the mark of its cut, when it has one: the first mark [`mark`] or
/// [`mark_with_errors`] wrote, which follows at most [`HEAD`] bytes of head.
pub fn as_written(text: &str) -> Written<'_> {
    let whole = Written {
        head: text,
        cut: 0,
        end: "",
    };
    let mut from = 0;
    while let Some(found) = text[from..].find("…[") {
        let start = from + found;
        if start > HEAD {
            break;
        }
        let after = &text[start + "…[".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &after[digits..];
        let cut = after[..digits].parse::<u64>().ok();
        let end = match cut {
            Some(_) if rest.starts_with(" characters cut]…") => {
                Some(&rest[" characters cut]…".len()..])
            }
            Some(_) => {
                // The mark as it reads once its JSON escape is read: one line.
                let with_errors = mark_with_errors(0).replace("\\n", "\n");
                let tail = &with_errors["…[0".len()..];
                rest.strip_prefix(tail).and_then(|errors| {
                    errors
                        .find(END_OF_ERRORS)
                        .map(|at| &errors[at + END_OF_ERRORS.len()..])
                })
            }
            None => None,
        };
        if let (Some(cut), Some(end)) = (cut, end) {
            return Written {
                head: &text[..start],
                cut,
                end,
            };
        }
        from = start + "…[".len();
    }
    whole
}

/// `text` as the inside of a JSON string.
fn json_text(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// A reader of JSON that cuts every string longer than [`KEPT`] bytes to its head and tail.
pub struct CutLongStrings<R> {
    inner: R,
    state: State,
    /// Ready to be read.
    out: VecDeque<u8>,
    /// The string being read, while it may still pass whole: at most [`KEPT`] bytes.
    string: Vec<u8>,
    /// The units of `string`'s end, once it is too long; each unit's length beside.
    tail: VecDeque<u8>,
    tail_units: VecDeque<u8>,
    /// The escape or character being read, which is never split.
    unit: Vec<u8>,
    /// Characters dropped from the string being read.
    cut: u64,
    /// The first half of a surrogate pair (its `\uXXXX` escape), until the next unit says
    /// whether it is whole.
    high: Option<Vec<u8>>,
    /// Lone surrogate escapes rewritten to `\ufffd`.
    lone: u64,
    /// The whole of the long string being read, line by line, for dbt's errors in it.
    middle: Option<Middle>,
    done: bool,
}

/// A long string's text as it streams by, read for dbt's errors: its escapes decoded, cut into
/// lines, each line at most [`MAX_LINE_CHARS`] characters.
#[derive(Default)]
struct Middle {
    log: LogReader,
    line: Vec<u8>,
    /// The first half of a surrogate pair, waiting for its second.
    high: Option<u16>,
}

impl Middle {
    fn unit(&mut self, unit: &[u8]) {
        let code = match unit {
            [b'\\', b'u', hex @ ..] => std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u16::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        if let Some(high) = self.high.take() {
            match code {
                Some(low) if LOW.contains(&low) => {
                    let code =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                    return self.char(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                _ => self.char(char::REPLACEMENT_CHARACTER),
            }
        }
        match (unit, code) {
            (_, Some(high)) if HIGH.contains(&high) => self.high = Some(high),
            (_, Some(code)) => {
                self.char(char::from_u32(code.into()).unwrap_or(char::REPLACEMENT_CHARACTER))
            }
            ([b'\\', b'n'], _) => self.end_line(),
            ([b'\\', b't'], _) => self.char('\t'),
            ([b'\\', b'r'], _) => self.char('\r'),
            ([b'\\', b'b' | b'f'], _) => self.char(' '),
            ([b'\\', escaped], _) => self.char(char::from(*escaped)),
            (bytes, _) => self.bytes(bytes),
        }
    }

    fn char(&mut self, c: char) {
        self.bytes(c.encode_utf8(&mut [0; 4]).as_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if self.line.len() < MAX_LINE_CHARS * 4 {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        self.log.line(line.trim_end_matches('\r'));
        self.line.clear();
    }

    /// dbt's error lines of the whole string, as dbt wrote them, to follow the mark; those the
    /// `head` and `tail` kept (as JSON text) hold already are not repeated.
    fn finish(mut self, head: &str, tail: &str) -> String {
        if self.high.take().is_some() {
            self.char(char::REPLACEMENT_CHARACTER);
        }
        self.end_line();
        let found = self.log.finish();
        let known = |line: &str| {
            let line = json_text(line);
            head.contains(&line) || tail.contains(&line)
        };
        let lines = found.lines_as_written(ERRORS, known);
        match lines.is_empty() {
            true => String::new(),
            false => format!("{}\n", lines.join("\n")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Outside,
    /// Inside a string; `long` once it passed [`KEPT`] and is being cut.
    Inside {
        long: bool,
    },
}

impl<R: Read> CutLongStrings<R> {
    pub fn new(inner: R) -> CutLongStrings<R> {
        CutLongStrings {
            inner,
            state: State::Outside,
            out: VecDeque::new(),
            string: Vec::new(),
            tail: VecDeque::new(),
            tail_units: VecDeque::new(),
            unit: Vec::new(),
            cut: 0,
            high: None,
            lone: 0,
            middle: None,
            done: false,
        }
    }

    /// How many lone surrogate escapes were read as U+FFFD so far.
    pub fn lone_surrogates(&self) -> u64 {
        self.lone
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(&byte) = bytes.first() {
            match self.state {
                State::Outside => match bytes.iter().position(|&b| b == b'"') {
                    Some(quote) => {
                        self.out.extend(&bytes[..=quote]);
                        self.state = State::Inside { long: false };
                        bytes = &bytes[quote + 1..];
                    }
                    None => {
                        self.out.extend(bytes);
                        return;
                    }
                },
                // Plain ASCII while the string may pass whole: taken in one go (not after the
                // first half of a pair, which the next unit completes or leaves alone).
                State::Inside { long: false } if self.unit.is_empty() && self.high.is_none() => {
                    let plain = bytes
                        .iter()
                        .position(|&b| b == b'"' || b == b'\\' || b >= 0x80)
                        .unwrap_or(bytes.len())
                        .min(KEPT - self.string.len());
                    if plain > 0 {
                        self.string.extend_from_slice(&bytes[..plain]);
                        bytes = &bytes[plain..];
                    } else {
                        self.in_string(byte);
                        bytes = &bytes[1..];
                    }
                }
                State::Inside { .. } => {
                    self.in_string(byte);
                    bytes = &bytes[1..];
                }
            }
        }
    }

    fn in_string(&mut self, byte: u8) {
        if self.unit.is_empty() && byte == b'"' {
            self.end_string();
            return;
        }
        self.unit.push(byte);
        if unit_complete(&self.unit) {
            let unit = std::mem::take(&mut self.unit);
            self.pair_unit(unit);
        }
    }

    /// A unit, with the first half of a pair held back until the next one shows it whole; a
    /// half alone becomes `\ufffd`.
    fn pair_unit(&mut self, unit: Vec<u8>) {
        if let Some(high) = self.high.take() {
            if is_surrogate(&unit, LOW) {
                self.push_unit(&high);
                self.push_unit(&unit);
                return;
            }
            self.replace_lone();
        }
        if is_surrogate(&unit, HIGH) {
            self.high = Some(unit);
        } else if is_surrogate(&unit, LOW) {
            self.replace_lone();
        } else {
            self.push_unit(&unit);
        }
    }

    fn replace_lone(&mut self) {
        self.lone += 1;
        self.push_unit(REPLACEMENT);
    }

    fn push_unit(&mut self, unit: &[u8]) {
        let State::Inside { long } = self.state else {
            return;
        };
        if !long {
            if self.string.len() + unit.len() <= KEPT {
                self.string.extend_from_slice(unit);
                return;
            }
            // Too long: the head stays, the rest of what was read becomes the tail. A head that
            // would end between the two halves of a surrogate pair ends before it. The whole
            // string is read for dbt's errors, from its start.
            self.state = State::Inside { long: true };
            let mut middle = Middle::default();
            let mut at = 0;
            while at < self.string.len() {
                let len = unit_len(&self.string[at..]);
                middle.unit(&self.string[at..at + len]);
                at += len;
            }
            self.middle = Some(middle);
            let (mut split, mut last) = (0, 0);
            let mut at = 0;
            while at < self.string.len() {
                let len = unit_len(&self.string[at..]);
                if at + len > HEAD {
                    break;
                }
                (last, split) = (at, at + len);
                at += len;
            }
            if split > 0 && is_surrogate(&self.string[last..split], HIGH) {
                split = last;
            }
            let rest: Vec<u8> = self.string.drain(split..).collect();
            let mut at = 0;
            while at < rest.len() {
                let len = unit_len(&rest[at..]);
                self.tail_units.push_back(len as u8);
                at += len;
            }
            self.tail.extend(rest);
        }
        if let Some(middle) = &mut self.middle {
            middle.unit(unit);
        }
        self.tail.extend(unit.iter().copied());
        self.tail_units.push_back(unit.len() as u8);
        while self.tail.len() > TAIL {
            self.drop_front();
            self.cut += 1;
            // The second half of a pair goes with the first.
            while self.front_is(LOW) {
                self.drop_front();
            }
        }
    }

    fn drop_front(&mut self) {
        let len = usize::from(self.tail_units.pop_front().unwrap_or(1));
        self.tail.drain(..len.min(self.tail.len()));
    }

    fn front_is(&self, half: std::ops::Range<u16>) -> bool {
        let len = usize::from(self.tail_units.front().copied().unwrap_or(0));
        len == 6 && {
            let unit: Vec<u8> = self.tail.iter().take(6).copied().collect();
            is_surrogate(&unit, half)
        }
    }

    fn end_string(&mut self) {
        if self.high.take().is_some() {
            self.replace_lone();
        }
        // An unfinished unit at the end (a malformed escape) goes as it is: serde_json says what
        // is wrong with it.
        let unit = std::mem::take(&mut self.unit);
        match self.state {
            State::Inside { long: false } => {
                self.out.extend(self.string.drain(..));
                self.out.extend(unit);
            }
            _ => {
                let head = String::from_utf8_lossy(&self.string).into_owned();
                let tail = String::from_utf8_lossy(self.tail.make_contiguous()).into_owned();
                let errors = match self.middle.take() {
                    Some(middle) => middle.finish(&head, &tail),
                    None => String::new(),
                };
                let (head, tail) = crate::secret::mask_partial(&head, &tail);
                self.out.extend(head.as_bytes());
                match errors.is_empty() {
                    true => self.out.extend(mark(self.cut).as_bytes()),
                    false => {
                        self.out.extend(mark_with_errors(self.cut).as_bytes());
                        self.out
                            .extend(json_text(&crate::secret::mask(&errors)).as_bytes());
                        self.out.extend(END_OF_ERRORS.as_bytes());
                    }
                }
                self.out.extend(tail.as_bytes());
                self.out.extend(unit);
                self.string.clear();
                self.tail.clear();
                self.tail_units.clear();
                self.cut = 0;
            }
        }
        self.out.push_back(b'"');
        self.state = State::Outside;
    }
}

/// The first halves of surrogate pairs, and the second.
const HIGH: std::ops::Range<u16> = 0xD800..0xDC00;
const LOW: std::ops::Range<u16> = 0xDC00..0xE000;
/// What a lone half becomes: U+FFFD, the replacement character, as an escape of the same length.
const REPLACEMENT: &[u8] = b"\\ufffd";

/// Says, once in the process, that `place` (dbt Cloud's answer to a request, a step's file)
/// held `count` lone surrogate escapes, read as U+FFFD: one warning for the run, however many
/// answers and files hold them.
pub fn warn_lone_surrogates(count: u64, place: &str) {
    static SAID: AtomicBool = AtomicBool::new(false);
    if count == 0 || SAID.swap(true, Ordering::Relaxed) {
        return;
    }
    let escapes = match count {
        1 => "a lone surrogate escape".to_owned(),
        count => format!("{count} lone surrogate escapes"),
    };
    log::warn!(
        "{place} held {escapes} (half of a UTF-16 pair, like \\udcfc, which is how Python \
         writes a byte it could not decode), each read as the replacement character \u{fffd}; \
         any more in this run's answers and files are read the same way, not said again"
    );
}

/// Whether `unit` is a whole character or escape: an ASCII byte, a UTF-8 sequence, `\x` or
/// `\uXXXX`.
fn unit_complete(unit: &[u8]) -> bool {
    unit.len() >= unit_len_of(unit[0], unit.get(1).copied())
}

/// The length of the unit at the start of `bytes`, which holds whole units only.
fn unit_len(bytes: &[u8]) -> usize {
    unit_len_of(bytes[0], bytes.get(1).copied()).min(bytes.len())
}

fn unit_len_of(first: u8, second: Option<u8>) -> usize {
    match (first, second) {
        (b'\\', Some(b'u')) => 6,
        (b'\\', _) => 2,
        (0xF0..=0xFF, _) => 4,
        (0xE0..=0xEF, _) => 3,
        (0xC0..=0xDF, _) => 2,
        _ => 1,
    }
}

/// Whether `unit` is a `\uXXXX` escape in `half`.
fn is_surrogate(unit: &[u8], half: std::ops::Range<u16>) -> bool {
    unit.len() == 6
        && unit.starts_with(b"\\u")
        && std::str::from_utf8(&unit[2..])
            .ok()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            .is_some_and(|code| half.contains(&code))
}

impl<R: Read> Read for CutLongStrings<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut chunk = [0u8; 8 * 1024];
        while self.out.is_empty() && !self.done {
            let read = self.inner.read(&mut chunk)?;
            if read == 0 {
                self.done = true;
                // Whatever is left of an unfinished string: the JSON is cut short, as it came.
                self.out.extend(self.string.drain(..));
                self.out.extend(self.tail.drain(..));
                self.out.extend(self.high.take().unwrap_or_default());
                self.out.extend(self.unit.drain(..));
            } else {
                self.feed(&chunk[..read]);
            }
        }
        let (front, _) = self.out.as_slices();
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        self.out.drain(..n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn through(json: &str) -> String {
        let mut out = String::new();
        CutLongStrings::new(json.as_bytes())
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    /// Reads through a reader that gives one byte at a time, as a slow network would.
    fn trickled(json: &str) -> Value {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.split_first() {
                    Some((first, rest)) if !buf.is_empty() => {
                        buf[0] = *first;
                        self.0 = rest;
                        Ok(1)
                    }
                    _ => Ok(0),
                }
            }
        }
        serde_json::from_reader(CutLongStrings::new(OneByte(json.as_bytes()))).unwrap()
    }

    #[test]
    fn short_strings_and_everything_else_pass_unchanged() {
        let text = r#"{"a": "x\"y\\z\u00e9é😀", "b": [1, 2.5e3, true, null, {"c": ""}], "\ud83d\ude00": 7}"#;
        assert_eq!(through(text), text);
        let at_most = format!("[\"{}\"]", "y".repeat(KEPT));
        assert_eq!(through(&at_most), at_most, "exactly KEPT bytes pass whole");
    }

    #[test]
    fn a_long_string_keeps_its_head_and_tail_with_a_mark() {
        let long = format!(
            "{}{}{}",
            "h".repeat(HEAD),
            "m".repeat(1_000_000),
            "t".repeat(TAIL)
        );
        let value: Value =
            serde_json::from_str(&through(&json!({"log": long, "n": 1}).to_string())).unwrap();
        let log = value["log"].as_str().unwrap();
        assert_eq!(
            log,
            format!(
                "{}{}{}",
                "h".repeat(HEAD),
                mark(1_000_000),
                "t".repeat(TAIL)
            )
        );
        assert_eq!(value["n"], 1, "the JSON after it is read as usual");
    }

    #[test]
    fn the_cut_never_splits_a_character_an_escape_or_a_surrogate_pair() {
        for unit in ["é", "😀", "\\n", "\\u00e9", "\\ud83d\\ude00", "\\\""] {
            for shift in 0..3 {
                let body = format!("{}{}", "x".repeat(shift), unit.repeat(40_000));
                let value = trickled(&format!("[\"{body}\", \"after\"]"));
                let text = value[0].as_str().unwrap();
                assert!(text.contains("characters cut]…"), "{unit}");
                assert_eq!(value[1], "after", "{unit}");
            }
        }
    }

    #[test]
    fn keys_are_strings_too_and_a_cut_short_answer_stays_cut_short() {
        let key = "k".repeat(KEPT + 10);
        let value: Value = serde_json::from_str(&through(&format!("{{\"{key}\": 1}}"))).unwrap();
        let (only, _) = value.as_object().unwrap().iter().next().unwrap();
        assert!(only.ends_with(&format!("{}{}", mark(10), "k".repeat(TAIL))));
        let broken = format!("{{\"log\": \"{}", "x".repeat(KEPT * 2));
        assert!(serde_json::from_str::<Value>(&through(&broken)).is_err());
    }

    /// A failure in the middle of a log of any length is kept with the cut: its lines follow the
    /// mark as dbt wrote them, so that what reads the log finds it.
    #[test]
    fn a_long_log_keeps_dbts_errors_from_its_middle() {
        let filler =
            "12:00:01  1 of 900 OK created sql view model shop.x ........ [SUCCESS in 0.10s]\n"
                .repeat(3_000);
        let error = "12:05:00  Failure in model orders (models/orders.sql)\n\
                     12:05:00    Database Error in model orders (models/orders.sql)\n\
                     \u{20}\u{20}relation \"raw.ordérs\" 😀 does not exist\n";
        let log = format!(
            "{filler}{error}{filler}12:10:00  Done. PASS=1799 WARN=0 ERROR=1 SKIP=0 TOTAL=1800\n"
        );
        for read in [
            |json: &str| serde_json::from_str::<Value>(&through(json)).unwrap(),
            trickled,
        ] {
            let value = read(&json!({"logs": log, "n": 1}).to_string());
            let kept = value["logs"].as_str().unwrap();
            assert!(kept.len() < KEPT + ERRORS + 200, "{}", kept.len());
            assert!(kept.contains("characters cut; the lines of dbt's errors"));
            let found = crate::dbt_log::LogFindings::read(kept);
            assert_eq!(
                found.paragraphs(),
                ["- Failure in model orders (models/orders.sql) | Database Error | relation \"raw.ordérs\" 😀 does not exist"]
            );
            assert_eq!(
                found.summary(),
                Some("Done. PASS=1799 WARN=0 ERROR=1 SKIP=0 TOTAL=1800")
            );
            assert_eq!(value["n"], 1);
        }
    }

    /// Python's `json` writes a byte it could not decode as `\udcfc`; serde_json refuses it.
    #[test]
    fn a_lone_surrogate_escape_is_read_as_a_replacement_in_a_string_of_any_length() {
        let count = |json: &str| {
            let mut reader = CutLongStrings::new(json.as_bytes());
            let mut out = String::new();
            reader.read_to_string(&mut out).unwrap();
            (out, reader.lone_surrogates())
        };
        let text = r#"{"a": "x\udcfc y", "\ud800": "\ud83d\ude00 \uD83D", "b": "\udcfc\ud83dx"}"#;
        let (out, lone) = count(text);
        let value: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            value,
            json!({"a": "x\u{fffd} y", "\u{fffd}": "😀 \u{fffd}", "b": "\u{fffd}\u{fffd}x"})
        );
        assert_eq!(lone, 5);
        assert_eq!(count(r#"["\ud83d\ude00", "\u00e9"]"#).1, 0, "a whole pair");

        for read in [
            |json: &str| serde_json::from_str::<Value>(&through(json)).unwrap(),
            trickled,
        ] {
            let long = format!("{}\\udcfc{}\\ud83d", "h".repeat(HEAD), "t".repeat(KEPT));
            let value = read(&format!("[\"{long}\", \"\\udcfc\"]"));
            let kept = value[0].as_str().unwrap();
            assert!(kept.contains("characters cut]…"), "a long one is cut");
            assert!(kept.ends_with("tt\u{fffd}"), "{}", &kept[kept.len() - 20..]);
            assert_eq!(value[1], "\u{fffd}");
        }
        // A document cut short in a pair's first half stays cut short.
        assert!(serde_json::from_str::<Value>(&through(r#"["x\ud83d"#)).is_err());
    }

    /// What was cut is told from what was kept, so that a string cut again says how much of the
    /// text as written is gone: whatever its characters, escaped or not, with dbt's errors or
    /// without.
    #[test]
    fn a_cut_string_tells_the_text_as_written() {
        let errors = "12:05:00  Failure in model orders (models/orders.sql)\n\
                      12:05:00    Database Error in model orders (models/orders.sql)\n";
        for (text, escaped) in [
            ("x".repeat(27_146), false),
            ("😀é\n".repeat(30_000), false),
            ("😀é\n".repeat(30_000), true),
            (
                format!("{}{errors}{}", "ok\n".repeat(40_000), "😀".repeat(20_000)),
                false,
            ),
            (
                format!("{}{errors}{}", "ok\n".repeat(40_000), "😀".repeat(20_000)),
                true,
            ),
        ] {
            let mut json = json!([text]).to_string();
            if escaped {
                json = json.replace('😀', "\\ud83d\\ude00").replace('é', "\\u00e9");
            }
            let value: Value = serde_json::from_str(&through(&json)).unwrap();
            let kept = value[0].as_str().unwrap();
            if text.contains("Failure in model") {
                assert!(kept.contains("the lines of dbt's errors"), "{escaped}");
            }
            let written = as_written(kept);
            assert_eq!(written.chars(), text.chars().count() as u64, "{escaped}");
            assert!(text.starts_with(written.head) && text.ends_with(written.end));
            if text.len() > KEPT {
                assert!(written.cut > 0 && !written.end.is_empty());
            } else {
                assert_eq!(written.head, text);
            }
        }
        let plain = "a …[12 characters cut] b …[x characters cut]…";
        assert_eq!(as_written(plain).head, plain, "no mark of ours");
        let cut = format!("{}{}", mark(40), "end");
        assert_eq!(
            as_written(&cut),
            Written {
                head: "",
                cut: 40,
                end: "end"
            }
        );
    }

    #[test]
    fn escapes_in_the_middle_are_read_as_characters_and_a_lone_half_as_a_replacement() {
        let mut middle = Middle::default();
        for unit in [
            &b"\\ud83d"[..],
            b"\\ude00",
            b"\\udcfc",
            b"x",
            b"\\t",
            b"\\\"",
            b"\\ud83d",
            b"y",
        ] {
            middle.unit(unit);
        }
        assert_eq!(
            String::from_utf8(middle.line.clone()).unwrap(),
            "😀\u{fffd}x\t\"\u{fffd}y"
        );
    }
}
