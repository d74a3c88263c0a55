//! A field of dbt Cloud's answer kept as JSON, but never more of it than a budget: a run's
//! `trigger` or `job` is a few kilobytes, and one of 100 MB must not cost 100 MB (or three times
//! that as a `serde_json::Value`). What is past the budget is skipped as it streams by, and a
//! mark in its place says how much was left out, so that the cell stays JSON that says it is cut.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

/// What a value is charged beside its text: about what a `Value` costs in memory.
const NODE: usize = 32;

/// The key of the mark that ends an object cut short.
pub const CUT_KEY: &str = "…";

/// Reads a value, spending `left` bytes at most.
pub struct Bounded<'a> {
    pub left: &'a Cell<usize>,
}

impl Bounded<'_> {
    fn spend(&self, bytes: usize) -> bool {
        let left = self.left.get();
        self.left.set(left.saturating_sub(bytes));
        bytes <= left
    }

    fn text(&self, text: &str) -> String {
        let left = self.left.get();
        if self.spend(text.len() + NODE) {
            return text.to_owned();
        }
        let mut end = left.saturating_sub(NODE).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        // The mark of a long string, so that what reads cut text counts this cut too.
        format!(
            "{}{}",
            &text[..end],
            crate::long_strings::mark(text[end..].chars().count() as u64)
        )
    }
}

fn cut_mark(items: usize) -> Value {
    Value::String(format!("…[{items} more cut: too large to keep]…"))
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        self.spend(NODE);
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        self.spend(NODE);
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        self.spend(NODE);
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        self.spend(NODE);
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(self.text(value)))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while self.left.get() > 0 {
            match seq.next_element_seed(Bounded { left: self.left })? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
        let mut skipped = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            skipped += 1;
        }
        if skipped > 0 {
            items.push(cut_mark(skipped));
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while self.left.get() > 0 {
            let Some(key) = map.next_key::<String>()? else {
                return Ok(Value::Object(fields));
            };
            let key = self.text(&key);
            let value = map.next_value_seed(Bounded { left: self.left })?;
            fields.insert(key, value);
        }
        let mut skipped = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value::<IgnoredAny>()?;
            skipped += 1;
        }
        if skipped > 0 {
            fields.insert(CUT_KEY.to_owned(), cut_mark(skipped));
        }
        Ok(Value::Object(fields))
    }
}

/// `text` as JSON, for a value kept within `budget` bytes.
#[cfg(test)]
pub fn read(text: &str, budget: usize) -> Value {
    let left = Cell::new(budget);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Bounded { left: &left }
        .deserialize(&mut deserializer)
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_within_its_budget_is_kept_whole() {
        let value =
            json!({"cause": "Triggered from Keboola", "steps": [1, 2.5, true, null], "o": {}});
        assert_eq!(read(&value.to_string(), 10_000), value);
    }

    #[test]
    fn past_its_budget_a_value_is_cut_and_says_so() {
        let long = "x".repeat(10_000);
        let cut = read(&json!({"a": long}).to_string(), 1_000);
        let text = cut["a"].as_str().unwrap();
        assert!(text.len() < 1_100, "{}", text.len());
        assert!(text.ends_with("characters cut]…"), "{text}");

        // "ids" costs 35 of 3,200, each number 32: 99 numbers, the last one past the budget.
        let many: Vec<String> = (0..100_000).map(|n| n.to_string()).collect();
        let text = format!("{{\"ids\": [{}], \"after\": 1}}", many.join(","));
        let cut = read(&text, 3_200);
        let ids = cut["ids"].as_array().unwrap();
        assert_eq!(ids.len(), 100, "99 kept and the mark");
        assert_eq!(ids[99], "…[99901 more cut: too large to keep]…");
        assert_eq!(cut[CUT_KEY], "…[1 more cut: too large to keep]…");
    }
}
