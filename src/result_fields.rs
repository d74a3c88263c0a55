//! The fields of a node's or a source's result as dbt wrote them, whatever the engine: the status
//! in one vocabulary, and every other field either of the type the tables expect or kept as the
//! JSON says.
//!
//! dbt Core and the Fusion engine write the same files in other words: Fusion capitalizes its
//! statuses (`Pass`, `Warn`, `Error`) and leaves out fields dbt Core always wrote; older and
//! newer tools have written `failures` as a string and `message` as an object. A file that is
//! JSON is read whole: a value of an unexpected type is a cell as the JSON says, and one warning
//! per step names the field ([`Oddities`]), never a reason to leave a node out.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// dbt Core's words for the statuses of nodes and sources: what the tables, counts, reports and
/// gates write, so that `WHERE status = 'warn'` serves both engines.
const WORDS: &[&str] = &[
    "success",
    "error",
    "fail",
    "warn",
    "pass",
    "skipped",
    "runtime error",
    "reused",
    "no-op",
    "partial success",
];

/// A status in dbt Core's words: read without regard to case, spaces, `-` or `_` (Fusion's
/// `Warn`, a `RuntimeError` or `no_op`), and any other word kept lowercased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    word: String,
    /// What dbt wrote when it was not a word: empty, null, absent, a number, an object.
    odd: Option<String>,
}

impl Status {
    pub fn new(written: &str) -> Status {
        let key = letters(written);
        let word = match WORDS.iter().find(|word| letters(word) == key) {
            Some(word) => (*word).to_owned(),
            None => written.trim().to_lowercase(),
        };
        let odd = word.is_empty().then(|| format!("{written:?}"));
        Status { word, odd }
    }

    fn of(value: Value) -> Status {
        match value {
            Value::String(text) => Status::new(&text),
            Value::Null => Status {
                word: String::new(),
                odd: Some("null".to_owned()),
            },
            other => {
                let written = other.to_string();
                Status {
                    word: written.to_lowercase(),
                    odd: Some(written),
                }
            }
        }
    }

    /// The status as the tables write it.
    pub fn as_str(&self) -> &str {
        &self.word
    }

    /// What dbt wrote, when it was not a status word.
    pub fn odd(&self) -> Option<&str> {
        self.odd.as_deref()
    }
}

impl fmt::Display for Status {
    /// The status as counts and reports name it: an empty one as `no status`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.word.as_str() {
            "" => f.write_str("no status"),
            word => f.write_str(word),
        }
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
        Ok(Status::of(Value::deserialize(deserializer)?))
    }
}

/// A missing status is an odd one: it is counted, and warned about.
pub fn absent_status() -> Status {
    Status {
        word: String::new(),
        odd: Some("nothing".to_owned()),
    }
}

/// Calls `each` with the name and the JSON of every field of a result that dbt wrote with
/// another type than the tables expect: its status when it is no word, its id when absent, then
/// `fields` in order.
pub fn oddities(
    status: &Status,
    unique_id: &Field<String>,
    fields: &[(&'static str, Option<&Value>)],
    mut each: impl FnMut(&'static str, String),
) {
    if let Some(odd) = status.odd() {
        each("status", odd.to_owned());
    }
    match unique_id {
        Field::Absent => each("unique_id", "nothing".to_owned()),
        Field::Odd(odd) => each("unique_id", odd.to_string()),
        Field::Expected(_) => {}
    }
    for (field, odd) in fields {
        if let Some(odd) = odd {
            each(field, odd.to_string());
        }
    }
}

/// The lowercase letters and digits of `text`: how two spellings of a status compare.
fn letters(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A field of the type the tables expect, or whatever dbt wrote instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Field<T> {
    /// Absent or null: an empty cell.
    #[default]
    Absent,
    Expected(T),
    /// Another type: the cell as the JSON says, and a warning.
    Odd(Value),
}

impl<T: Expected> Field<T> {
    pub fn expected(&self) -> Option<&T> {
        match self {
            Field::Expected(value) => Some(value),
            _ => None,
        }
    }

    /// The cell: the value as the tables write its type, or what dbt wrote (a string as it is,
    /// anything else as compact JSON).
    pub fn cell(&self) -> String {
        match self {
            Field::Absent => String::new(),
            Field::Expected(value) => value.cell(),
            Field::Odd(Value::String(text)) => text.clone(),
            Field::Odd(other) => other.to_string(),
        }
    }

    /// The text to show: what [`Field::cell`] writes, `None` when absent.
    pub fn shown(&self) -> Option<String> {
        match self {
            Field::Absent => None,
            _ => Some(self.cell()),
        }
    }

    pub fn odd(&self) -> Option<&Value> {
        match self {
            Field::Odd(value) => Some(value),
            _ => None,
        }
    }
}

impl<'de, T: Expected> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field<T>, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Field::Absent,
            value => match T::from_json(value) {
                Ok(value) => Field::Expected(value),
                Err(value) => Field::Odd(value),
            },
        })
    }
}

/// A type a field is expected to have: taken from JSON of that type, given back otherwise.
pub trait Expected: Sized {
    fn from_json(value: Value) -> Result<Self, Value>;
    fn cell(&self) -> String;
}

impl Expected for String {
    fn from_json(value: Value) -> Result<String, Value> {
        match value {
            Value::String(text) => Ok(text),
            other => Err(other),
        }
    }

    fn cell(&self) -> String {
        self.clone()
    }
}

impl Expected for i64 {
    fn from_json(value: Value) -> Result<i64, Value> {
        value.as_i64().ok_or(value)
    }

    fn cell(&self) -> String {
        self.to_string()
    }
}

impl Expected for f64 {
    fn from_json(value: Value) -> Result<f64, Value> {
        match value {
            Value::Number(ref number) => number.as_f64().ok_or(value),
            other => Err(other),
        }
    }

    fn cell(&self) -> String {
        self.to_string()
    }
}

/// The fields of one step's file that held values of unexpected types: each field once, with how
/// many results and the first value seen, for one warning per step.
#[derive(Debug, Default)]
pub struct Oddities {
    fields: Vec<(&'static str, usize, String)>,
}

impl Oddities {
    /// `written` is what dbt wrote, as JSON.
    pub fn note(&mut self, field: &'static str, written: &str) {
        match self.fields.iter_mut().find(|(name, ..)| *name == field) {
            Some((_, count, _)) => *count += 1,
            None => self
                .fields
                .push((field, 1, crate::text::cut(written).to_string())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `failures (1 result, e.g. "Test failure"), status (2 results, e.g. null)`.
    pub fn worded(&self) -> String {
        self.fields
            .iter()
            .map(|(field, count, example)| {
                let results = crate::text::counted(count, "result", "results");
                format!("{field} ({results}, e.g. {example})")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_in_dbt_cores_words_whatever_the_case_or_spelling() {
        for (written, word) in [
            ("Pass", "pass"),
            ("WARN", "warn"),
            ("Error", "error"),
            ("warn", "warn"),
            ("Runtime Error", "runtime error"),
            ("RuntimeError", "runtime error"),
            ("runtime_error", "runtime error"),
            ("NoOp", "no-op"),
            ("no-op", "no-op"),
            ("Partial Success", "partial success"),
            ("Reused", "reused"),
            ("Skipped", "skipped"),
            ("Frobnicated", "frobnicated"),
            ("  Brand New  ", "brand new"),
        ] {
            let status = Status::new(written);
            assert_eq!(status.as_str(), word, "{written}");
            assert_eq!(status.odd(), None, "{written}");
        }
    }

    #[test]
    fn an_odd_status_is_counted_as_written_and_noted() {
        let of = |value: Value| serde_json::from_value::<Status>(value).unwrap();
        assert_eq!(
            (of(json!("")).as_str(), of(json!("")).odd()),
            ("", Some("\"\""))
        );
        assert_eq!(
            (of(json!(null)).as_str(), of(json!(null)).odd()),
            ("", Some("null"))
        );
        assert_eq!(
            (of(json!(5)).as_str(), of(json!(5)).odd()),
            ("5", Some("5"))
        );
        assert_eq!(of(json!({"A": 1})).as_str(), "{\"a\":1}");
        assert_eq!(of(json!(null)).to_string(), "no status");
        assert_eq!(absent_status().to_string(), "no status");
    }

    #[test]
    fn a_field_of_another_type_is_kept_as_the_json_says() {
        let of = |value: Value| serde_json::from_value::<Field<i64>>(value).unwrap();
        assert_eq!(of(json!(3)), Field::Expected(3));
        assert_eq!(of(json!(3)).cell(), "3");
        assert_eq!(of(json!(null)), Field::Absent);
        assert_eq!(of(json!("Test failure")).cell(), "Test failure");
        assert_eq!(of(json!(3.5)).cell(), "3.5");
        assert_eq!(of(json!([1, {"a": null}])).cell(), "[1,{\"a\":null}]");
        let text = |value: Value| serde_json::from_value::<Field<String>>(value).unwrap();
        assert_eq!(text(json!({"code": 1})).cell(), "{\"code\":1}");
        assert_eq!(text(json!(7)).cell(), "7");
        assert_eq!(text(json!("x")).expected().map(String::as_str), Some("x"));
        let number = |value: Value| serde_json::from_value::<Field<f64>>(value).unwrap();
        assert_eq!(number(json!(1.25)).cell(), "1.25");
        assert_eq!(number(json!("1.25")).odd(), Some(&json!("1.25")));
    }

    #[test]
    fn oddities_name_each_field_once_with_a_count_and_an_example() {
        let mut odd = Oddities::default();
        assert!(odd.is_empty());
        odd.note("failures", "\"Test failure\"");
        odd.note("failures", "\"Other\"");
        odd.note("message", "{\"a\":1}");
        assert_eq!(
            odd.worded(),
            "failures (2 results, e.g. \"Test failure\"), message (1 result, e.g. {\"a\":1})"
        );
    }
}
