//! Text for people: durations, sizes, and server or user text made safe to show (cut to a length,
//! kept on one line). Every message of the component words its numbers through here.

use std::borrow::Cow;
use std::time::Duration;

/// How much of a value a message echoes: enough to recognise it, never a whole document.
const ECHO_CHARS: usize = 200;

/// `text` cut at [`ECHO_CHARS`] characters, saying how long it was.
pub fn cut(text: &str) -> String {
    match text.char_indices().nth(ECHO_CHARS) {
        Some((end, _)) => format!(
            "{}… ({} characters in all)",
            &text[..end],
            text.chars().count()
        ),
        None => text.to_owned(),
    }
}

/// The first `max_chars` characters of `text`.
pub fn truncate(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// The start of `text` in at most `max_chars` characters, a mark `…[N characters cut]…` at its end
/// included when it is cut. N counts the text as written: what was cut while it streamed in
/// ([`crate::long_strings`]) included.
pub fn head(text: &str, max_chars: usize) -> Cow<'_, str> {
    let written = crate::long_strings::as_written(text);
    let total = written.chars();
    if written.cut == 0 && total <= max_chars as u64 {
        return Cow::Borrowed(text);
    }
    let mark = |kept: usize| crate::long_strings::mark(total - kept as u64);
    // The mark's length depends on the number it states: settle both.
    let mut kept = max_chars.min(written.head.chars().count());
    while kept > 0 && mark(kept).chars().count() + kept > max_chars {
        kept -= 1;
    }
    format!("{}{}", truncate(written.head, kept), mark(kept)).into()
}

/// The end of `text` in at most `max_chars` characters, a first line `[first N characters cut]`
/// included when it is cut: where a log says what failed. The end is the text's as written, and N
/// counts that text: a text cut as it streamed in ([`crate::long_strings`]) gives only the end
/// after its cut, and N counts what that cut left out.
pub fn tail(text: &str, max_chars: usize) -> String {
    let written = crate::long_strings::as_written(text);
    let (before, end) = match written.cut {
        0 => (0, text),
        cut => (written.head.chars().count() as u64 + cut, written.end),
    };
    let count = end.chars().count();
    if before == 0 && count <= max_chars {
        return text.to_owned();
    }
    let mark = |cut: usize| {
        format!(
            "[first {} cut]\n",
            counted(before + cut as u64, "character", "characters")
        )
    };
    // The mark's length depends on the number it states: settle both.
    let mut cut = count.saturating_sub(max_chars);
    while cut < count && mark(cut).chars().count() + (count - cut) > max_chars {
        cut += 1;
    }
    let mark = mark(cut);
    if mark.chars().count() > max_chars {
        return end.chars().skip(count.saturating_sub(max_chars)).collect();
    }
    let kept: String = end.chars().skip(cut).collect();
    format!("{mark}{kept}")
}

/// A paragraph of a digest or report at most, in characters.
const PARAGRAPH_CHARS: usize = 400;

/// A paragraph on one line, control characters escaped, at most 400 characters.
pub fn paragraph(text: &str) -> String {
    let line = printable(text).into_owned();
    if line.chars().count() > PARAGRAPH_CHARS {
        format!("{}…", truncate(&line, PARAGRAPH_CHARS))
    } else {
        line
    }
}

/// Text as one line that shows what it holds, and never the token: dbt Cloud's strings (a status
/// message, a step name, a cause, an error page) reach our log and errors, and a newline or a
/// terminal escape in them must not forge a line of ours or break the one-paragraph error.
pub fn printable(text: &str) -> Cow<'_, str> {
    let masked = crate::secret::mask(text);
    if !masked.chars().any(is_unsafe) {
        return masked;
    }
    masked
        .chars()
        .map(|c| match c {
            c if is_unsafe(c) => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}

/// Characters that would let text from a server start a line of its own or reorder what a reader
/// sees: control characters, the Unicode line and paragraph separators, and the bidirectional
/// embeddings, overrides, isolates and marks.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
                | '\u{200E}' | '\u{200F}' | '\u{061C}'
        )
}

/// `95 s` as `1m 35s`: what a person reads in a log.
pub fn elapsed(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m {}s", seconds / 60, seconds % 60),
        _ => format!(
            "{}h {}m {}s",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        ),
    }
}

/// How old something is: `26h 3m 0s` within two days, whole days past them (`766 days`), as a
/// stale source's age reads best.
pub fn age(duration: Duration) -> String {
    const DAY: u64 = 86_400;
    match duration.as_secs() {
        seconds if seconds >= 2 * DAY => format!("{} days", seconds / DAY),
        _ => elapsed(duration),
    }
}

/// As the user writes `max_wait_time`: `0.5`, `60`, `1.25` (minutes, two decimals at most).
pub fn minutes(duration: Duration) -> String {
    let text = format!("{:.2}", duration.as_secs_f64() / 60.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `count` and the noun in its number: `1 artifact`, `0 artifacts`, `1.5 minutes`. The count as
/// written decides, so a number of minutes with decimals reads as many.
pub fn counted(count: impl std::fmt::Display, one: &str, many: &str) -> String {
    let count = count.to_string();
    let noun = plural(&count, one, many);
    format!("{count} {noun}")
}

/// The word that goes with `count`: `one` for exactly 1, else `many` (`is`, `are`).
pub fn plural<'a>(count: impl std::fmt::Display, one: &'a str, many: &'a str) -> &'a str {
    if count.to_string() == "1" {
        one
    } else {
        many
    }
}

/// Bytes in decimal units, as download tools show them.
pub fn size(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{:.1} KB", bytes as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

/// The first few names and how many more: a summary stays one line for a thousand files.
pub fn first_few<'a>(names: impl ExactSizeIterator<Item = &'a str>, shown: usize) -> String {
    let total = names.len();
    let mut text = names.take(shown).collect::<Vec<_>>().join(", ");
    if total > shown {
        text.push_str(&format!(" and {} more", total - shown));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_person_wrote_them() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(22_284), "22.3 KB");
        assert_eq!(size(252_000_000), "252.0 MB");
        assert_eq!(size(1_250_000_000), "1.25 GB");
        assert_eq!(elapsed(Duration::from_secs(59)), "59s");
        assert_eq!(elapsed(Duration::from_secs(95)), "1m 35s");
        assert_eq!(elapsed(Duration::from_secs(3_725)), "1h 2m 5s");
        assert_eq!(minutes(Duration::from_secs(90)), "1.5");
        assert_eq!(age(Duration::from_secs(93_600)), "26h 0m 0s");
        assert_eq!(age(Duration::from_secs(66_237_246)), "766 days");
        assert_eq!(minutes(Duration::from_secs(3_600)), "60");
        assert_eq!(minutes(Duration::from_secs(8)), "0.13");
    }

    #[test]
    fn a_count_is_followed_by_its_noun_in_its_number() {
        assert_eq!(counted(1, "artifact", "artifacts"), "1 artifact");
        assert_eq!(counted(0usize, "artifact", "artifacts"), "0 artifacts");
        assert_eq!(counted(2u64, "artifact", "artifacts"), "2 artifacts");
        assert_eq!(
            counted(minutes(Duration::from_secs(60)), "minute", "minutes"),
            "1 minute"
        );
        assert_eq!(
            counted(minutes(Duration::from_secs(90)), "minute", "minutes"),
            "1.5 minutes"
        );
        assert_eq!(plural(1, "is", "are"), "is");
        assert_eq!(plural(3, "is", "are"), "are");
    }

    #[test]
    fn elapsed_reads_like_a_person_wrote_it() {
        assert_eq!(elapsed(Duration::from_millis(4_900)), "4s");
        assert_eq!(elapsed(Duration::from_secs(95)), "1m 35s");
        assert_eq!(elapsed(Duration::from_secs(3_723)), "1h 2m 3s");
    }

    #[test]
    fn text_is_cut_and_kept_on_one_line() {
        assert_eq!(cut("short"), "short");
        let long = "x".repeat(250);
        assert_eq!(
            cut(&long),
            format!("{}… (250 characters in all)", "x".repeat(200))
        );
        assert_eq!(tail("abc", 3), "abc");
        assert_eq!(
            tail("abcdef", 3),
            "def",
            "no room for the mark: the end alone"
        );
        let cut = tail(&"x".repeat(100), 40);
        assert_eq!(
            cut,
            format!("[first 86 characters cut]\n{}", "x".repeat(14))
        );
        assert_eq!(cut.chars().count(), 40);
        for length in [10_001, 10_025, 10_026, 27_146, 1_000_000] {
            let cut = tail(&"é".repeat(length), 10_000);
            assert_eq!(cut.chars().count(), 10_000, "{length}");
            let stated: usize = cut["[first ".len()..cut.find(" characters").unwrap()]
                .parse()
                .unwrap();
            assert_eq!(
                stated + cut.chars().count() - cut.find('\n').unwrap() - 1,
                length,
                "{length}"
            );
        }
        let streamed = format!(
            "{}{}{}",
            "h".repeat(30),
            crate::long_strings::mark(5_000),
            "😀".repeat(40)
        );
        assert_eq!(
            tail(&streamed, 100),
            format!("[first 5030 characters cut]\n{}", "😀".repeat(40)),
            "the end after the cut alone, the count of the text as written"
        );
        assert_eq!(
            tail(&streamed, 40),
            format!("[first 5058 characters cut]\n{}", "😀".repeat(12))
        );
        assert_eq!(head("short", 5), "short");
        let long = "é".repeat(1_000_000);
        let cut = head(&long, 1_000);
        assert_eq!(cut.chars().count(), 1_000);
        assert!(cut.ends_with("é…[999025 characters cut]…"), "{cut}");
        let streamed = format!(
            "{}{}{}",
            "h".repeat(30),
            crate::long_strings::mark(5_000),
            "t".repeat(40)
        );
        assert_eq!(
            head(&streamed, 50),
            format!("{}…[5043 characters cut]…", "h".repeat(27)),
            "the count is of the text as written"
        );
        assert_eq!(printable("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            printable("Failed.\n2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\u{1b}[2K"),
            "Failed.\\n2026-11-26T11:02:32Z INFO  Done: run 1 succeeded\\u{1b}[2K"
        );
        assert_eq!(
            printable("a\u{2028}b\u{2029}c \u{202E}txt.exe\u{202C} \u{2066}x\u{2069}\u{200F}"),
            "a\\u{2028}b\\u{2029}c \\u{202e}txt.exe\\u{202c} \\u{2066}x\\u{2069}\\u{200f}",
            "line separators and bidirectional controls are shown, not obeyed"
        );
        assert_eq!(first_few(["a", "b", "c"].into_iter(), 2), "a, b and 1 more");
        assert_eq!(first_few(["a"].into_iter(), 2), "a");
    }
}
