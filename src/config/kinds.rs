//! What a parameter holds: each [`Kind`] reads config.json's JSON into a typed value, with an
//! error naming the key, and states the choices and bounds the form must offer ([`Form`]).

use std::num::NonZeroU64;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::{Map, Value};

use crate::config::RunRef;
use crate::dbt_cloud::{BaseUrl, PageIds};
use crate::secret::ApiToken;
use crate::text::cut;

/// The form's JSON Schema type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Integer,
    Number,
    String,
    Boolean,
    Object,
    Array,
}

impl JsonType {
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Boolean => "boolean",
            JsonType::Object => "object",
            JsonType::Array => "array",
        }
    }
}

/// What a parameter holds: how its JSON becomes a typed value. The error is the whole message,
/// naming the key.
pub trait Kind {
    type Value;
    const JSON_TYPE: JsonType;
    /// What a missing required value should have been.
    const EXPECTED: &'static str;
    fn read(&self, key: &str, value: &Value) -> Result<Self::Value, String>;
    /// The choices and bounds the form's field must offer.
    fn form(&self) -> Form {
        Form::default()
    }
}

/// The choices and bounds of a parameter, as the form's JSON Schema states them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub choices: Vec<&'static str>,
    pub minimum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub max_length: Option<usize>,
}

/// A value as config.json holds it, cut for an error message; what a key starting with `#` holds
/// (a value Keboola encrypts, at any depth) as `***`.
pub fn echo(value: &Value) -> String {
    cut(&redacted(value).to_string())
}

fn redacted(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    if key.starts_with('#') {
                        (key.clone(), Value::String("***".to_owned()))
                    } else {
                        (key.clone(), redacted(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

/// `true` or `false`.
pub struct Flag;

impl Kind for Flag {
    type Value = bool;
    const JSON_TYPE: JsonType = JsonType::Boolean;
    const EXPECTED: &'static str = "true or false";
    fn read(&self, key: &str, value: &Value) -> Result<bool, String> {
        value
            .as_bool()
            .ok_or_else(|| format!("{key} must be true or false, got {}", echo(value)))
    }
}

/// A positive whole number, given as a number or a string of digits (the earlier component's
/// configs have both), at most `max`.
pub struct Count {
    pub max: u64,
}

impl Kind for Count {
    type Value = NonZeroU64;
    const JSON_TYPE: JsonType = JsonType::Integer;
    const EXPECTED: &'static str = "a positive integer";
    fn read(&self, key: &str, value: &Value) -> Result<NonZeroU64, String> {
        let parsed = match value {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => {
                let s = s.trim();
                let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                digits.then(|| s.parse().ok()).flatten()
            }
            _ => None,
        };
        let n = parsed
            .and_then(NonZeroU64::new)
            .ok_or_else(|| format!("{key} must be a positive integer, got {}", echo(value)))?;
        if n.get() > self.max {
            return Err(format!("{key} must be at most {}, got {n}", self.max));
        }
        Ok(n)
    }
    fn form(&self) -> Form {
        Form {
            minimum: Some(1.0),
            // Any id: no bound worth showing.
            maximum: (self.max < u64::MAX).then_some(self.max as f64),
            ..Form::default()
        }
    }
}

/// A number of some unit, fractions allowed, within a range; written as a number, or also as a
/// string holding one where `strings` (the earlier component's `max_wait_time` was one).
pub struct Amount {
    pub unit: &'static str,
    pub range: Range,
    pub strings: bool,
    /// Said after the range in the error, e.g. `(fractions allowed, e.g. 0.5)`.
    pub hint: &'static str,
}

/// The values an [`Amount`] accepts.
pub enum Range {
    /// Greater than 0, at most the bound.
    Positive { max: f64 },
    /// From one bound to the other, both included.
    Between { min: f64, max: f64 },
}

impl Kind for Amount {
    type Value = f64;
    const JSON_TYPE: JsonType = JsonType::Number;
    const EXPECTED: &'static str = "a number";
    fn read(&self, key: &str, value: &Value) -> Result<f64, String> {
        let number = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if self.strings => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        let (within, range) = match self.range {
            Range::Positive { max } => (
                number.filter(|n| n.is_finite() && *n > 0.0 && *n <= max),
                format!("greater than 0 and at most {max}"),
            ),
            Range::Between { min, max } => (
                number.filter(|n| (min..=max).contains(n)),
                format!("from {min} to {max}"),
            ),
        };
        within.ok_or_else(|| {
            format!(
                "{key} must be a number of {} {range}{}, got {}",
                self.unit,
                self.hint,
                echo(value)
            )
        })
    }
    fn form(&self) -> Form {
        match self.range {
            Range::Positive { max } => Form {
                exclusive_minimum: Some(0.0),
                maximum: Some(max),
                ..Form::default()
            },
            Range::Between { min, max } => Form {
                minimum: Some(min),
                maximum: Some(max),
                ..Form::default()
            },
        }
    }
}

/// A string, not blank, of at most `max_chars` characters.
pub struct Text {
    pub max_chars: usize,
}

impl Kind for Text {
    type Value = String;
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "a string";
    fn read(&self, key: &str, value: &Value) -> Result<String, String> {
        let text = string(key, value)?;
        if text.trim().is_empty() {
            return Err(format!("{key} must not be empty"));
        }
        let chars = text.chars().count();
        if chars > self.max_chars {
            return Err(format!(
                "{key} must be at most {}, got {chars}",
                crate::text::counted(self.max_chars, "character", "characters")
            ));
        }
        Ok(text.to_owned())
    }
    fn form(&self) -> Form {
        Form {
            max_length: Some(self.max_chars),
            ..Form::default()
        }
    }
}

fn string<'a>(key: &str, value: &'a Value) -> Result<&'a str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("{key} must be a string, got {}", echo(value)))
}

/// One of a few words.
pub struct Choice<T: 'static>(pub &'static [(&'static str, T)]);

impl<T: Copy> Kind for Choice<T> {
    type Value = T;
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "one of the listed words";
    fn read(&self, key: &str, value: &Value) -> Result<T, String> {
        let word = string(key, value)?;
        self.0
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| {
                let names: Vec<String> = self.0.iter().map(|(n, _)| format!("{n:?}")).collect();
                let words = match names.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("{} or {last}", rest.join(", "))
                    }
                    _ => names.concat(),
                };
                format!("{key} must be {words}, got {}", echo(value))
            })
    }
    fn form(&self) -> Form {
        Form {
            choices: self.0.iter().map(|(name, _)| *name).collect(),
            ..Form::default()
        }
    }
}

/// The dbt Cloud access URL. Only its scheme and host are ever echoed: users paste tokens into URLs.
pub struct Url;

impl Kind for Url {
    /// The origin, and the ids of a page URL pasted from dbt Cloud.
    type Value = (BaseUrl, PageIds);
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "a URL";
    fn read(&self, key: &str, value: &Value) -> Result<(BaseUrl, PageIds), String> {
        let text = string(key, value)?;
        BaseUrl::parse_page(text)
            .map_err(|why| format!("{key} ({}) is not usable: {why}", scheme_and_host(text)))
    }
}

/// `https://host` of what the user gave, or a placeholder: never a user name, password, path or
/// query, where a token may have been pasted.
fn scheme_and_host(input: &str) -> String {
    let trimmed = input.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    match reqwest::Url::parse(&with_scheme) {
        Ok(url) => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        Err(_) => "not a URL".to_owned(),
    }
}

/// The API token. Never echoed, even when mistyped.
pub struct Token;

impl Kind for Token {
    type Value = ApiToken;
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "a dbt Cloud service token or personal access token";
    fn read(&self, key: &str, value: &Value) -> Result<ApiToken, String> {
        let Value::String(token) = value else {
            return Err(format!("{key} must be a string"));
        };
        ApiToken::new(token)
            .ok_or_else(|| format!("{key} must be a non-empty token without spaces or line breaks"))
    }
}

/// Fields for the trigger body (`TriggerRunRequestRequest` of the API), each checked by kind.
pub struct Overrides;

#[derive(Debug, Clone, Copy)]
enum Override {
    /// A non-empty string.
    Text,
    /// An integer of at least `min`.
    Count {
        min: u64,
    },
    Flag,
    /// A non-empty list of non-empty dbt commands.
    Commands,
}

const OVERRIDES: &[(&str, Override)] = &[
    ("git_sha", Override::Text),
    ("git_branch", Override::Text),
    ("schema_override", Override::Text),
    ("dbt_version_override", Override::Text),
    ("threads_override", Override::Count { min: 1 }),
    ("target_name_override", Override::Text),
    ("generate_docs_override", Override::Flag),
    ("timeout_seconds_override", Override::Count { min: 0 }),
    ("steps_override", Override::Commands),
    ("azure_pull_request_id", Override::Count { min: 1 }),
    ("github_pull_request_id", Override::Count { min: 1 }),
    ("gitlab_merge_request_id", Override::Count { min: 1 }),
    ("non_native_pull_request_id", Override::Count { min: 1 }),
];

impl Override {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Override::Text => value.as_str().is_some_and(|s| !s.trim().is_empty()),
            Override::Count { min } => value.as_u64().is_some_and(|n| n >= min),
            Override::Flag => value.is_boolean(),
            Override::Commands => value.as_array().is_some_and(|commands| {
                !commands.is_empty()
                    && commands
                        .iter()
                        .all(|c| c.as_str().is_some_and(|c| !c.trim().is_empty()))
            }),
        }
    }

    fn expected(self) -> String {
        match self {
            Override::Text => "a non-empty string".to_owned(),
            Override::Count { min } => format!("an integer of at least {min}"),
            Override::Flag => "true or false".to_owned(),
            Override::Commands => {
                "a non-empty list of dbt commands, e.g. [\"dbt build -s orders+\"]".to_owned()
            }
        }
    }
}

impl Kind for Overrides {
    type Value = Map<String, Value>;
    const JSON_TYPE: JsonType = JsonType::Object;
    const EXPECTED: &'static str = "an object";
    fn read(&self, key: &str, value: &Value) -> Result<Map<String, Value>, String> {
        let Value::Object(overrides) = value else {
            return Err(format!("{key} must be an object, got {}", echo(value)));
        };
        let mut checked = Map::new();
        // A field of the form's overrides left empty is not an override.
        let given =
            |value: &&Value| !is_unset(value) && value.as_array().is_none_or(|a| !a.is_empty());
        for (name, value) in overrides.iter().filter(|(_, v)| given(v)) {
            let Some((_, kind)) = OVERRIDES.iter().find(|(known, _)| known == name) else {
                let valid: Vec<&str> = OVERRIDES.iter().map(|(known, _)| *known).collect();
                return Err(format!(
                    "{key} has an unknown key \"{}\"; the valid keys are {}",
                    cut(name),
                    valid.join(", ")
                ));
            };
            if !kind.accepts(value) {
                return Err(format!(
                    "{key}.{} must be {}, got {}",
                    cut(name),
                    kind.expected(),
                    echo(value)
                ));
            }
            checked.insert(name.clone(), value.clone());
        }
        Ok(checked)
    }
}

/// An id picked from a dropdown the UI fills (or typed into it): the form saves it as a string,
/// read as any other id.
pub struct SelectedId;

impl Kind for SelectedId {
    type Value = NonZeroU64;
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "a positive integer";
    fn read(&self, key: &str, value: &Value) -> Result<NonZeroU64, String> {
        ANY_ID.read(key, value)
    }
}

/// `run_id`: a run's id (a number or a string of digits), or `latest`, the job's newest run.
pub struct RunChoice;

impl Kind for RunChoice {
    type Value = RunRef;
    const JSON_TYPE: JsonType = JsonType::String;
    const EXPECTED: &'static str = "a run id, or \"latest\"";
    fn read(&self, key: &str, value: &Value) -> Result<RunRef, String> {
        if value.as_str().map(str::trim) == Some("latest") {
            return Ok(RunRef::Latest);
        }
        ANY_ID
            .read(key, value)
            .map(|id| RunRef::Id(id.into()))
            .map_err(|_| format!("{key} must be a run id or \"latest\", got {}", echo(value)))
    }
}

/// Which artifacts to download: glob patterns over their paths, compiled once.
#[derive(Debug, Clone)]
pub struct Selection {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Selection {
    /// The paths selected, in order, and the patterns that matched none of them.
    pub fn filter(&self, paths: Vec<String>) -> (Vec<String>, Vec<&str>) {
        let mut used = vec![false; self.patterns.len()];
        let selected = paths
            .into_iter()
            .filter(|path| {
                let matches = self.set.matches(path);
                for &i in &matches {
                    used[i] = true;
                }
                !matches.is_empty()
            })
            .collect();
        let unused = self
            .patterns
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(pattern, _)| pattern.as_str())
            .collect();
        (selected, unused)
    }
}

/// Glob patterns: `*` stays within a folder and `**` crosses folders, as in a shell: `*.json` is
/// the top-level JSON files, `run/**/*.sql` every SQL file below `run/`.
pub struct Globs;

impl Kind for Globs {
    /// `None`: every artifact (also for `[]`, which the form saves for an emptied list).
    type Value = Option<Selection>;
    const JSON_TYPE: JsonType = JsonType::Array;
    const EXPECTED: &'static str = "a list of glob patterns";
    fn read(&self, key: &str, value: &Value) -> Result<Option<Selection>, String> {
        let Value::Array(patterns) = value else {
            return Err(format!(
                "{key} must be a list of glob patterns, e.g. [\"*.json\", \"run/**/*.sql\"], got {}",
                echo(value)
            ));
        };
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut builder = GlobSetBuilder::new();
        let mut texts = Vec::new();
        for pattern in patterns {
            let Some(text) = pattern.as_str().filter(|t| !t.trim().is_empty()) else {
                return Err(format!(
                    "{key} must hold non-empty strings, got {}",
                    echo(pattern)
                ));
            };
            let glob = GlobBuilder::new(text)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("{key} has an invalid pattern {text:?}: {e}"))?;
            builder.add(glob);
            texts.push(text.to_owned());
        }
        let set = builder
            .build()
            .map_err(|e| format!("{key} cannot be compiled: {e}"))?;
        Ok(Some(Selection {
            patterns: texts,
            set,
        }))
    }
}

/// A dbt Cloud id: any positive whole number.
pub const ANY_ID: Count = Count { max: u64::MAX };

/// What the form saves for a field left empty.
pub(super) fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_at_any_depth_are_not_echoed() {
        let value =
            serde_json::json!({"a": {"#password": "hunter2", "b": [{"#key": "s3cr3t"}]}, "n": 1});
        let echoed = echo(&value);
        assert!(
            !echoed.contains("hunter2") && !echoed.contains("s3cr3t"),
            "{echoed}"
        );
        assert_eq!(
            echoed,
            r##"{"a":{"#password":"***","b":[{"#key":"***"}]},"n":1}"##
        );
    }

    /// Every optional field of the API's trigger body (dbt Labs' spec), with its JSON type, and
    /// nothing else: read from the spec, so that the two cannot drift.
    #[test]
    fn trigger_overrides_are_the_specs_optional_trigger_fields() {
        let spec: Value =
            serde_yaml_ng::from_str(include_str!("../../tests/data/dbt-cloud-openapi-v2.yaml"))
                .unwrap();
        let body = &spec["components"]["schemas"]["TriggerRunRequestRequest"];
        let mut fields: Vec<(String, String)> = body["properties"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| *name != "cause")
            .map(|(name, field)| (name.clone(), field["type"].as_str().unwrap().to_owned()))
            .collect();
        fields.sort();
        let mut ours: Vec<(String, String)> = OVERRIDES
            .iter()
            .map(|(name, kind)| {
                let json_type = match kind {
                    Override::Text => "string",
                    Override::Count { .. } => "integer",
                    Override::Flag => "boolean",
                    Override::Commands => "array",
                };
                ((*name).to_owned(), json_type.to_owned())
            })
            .collect();
        ours.sort();
        assert_eq!(ours, fields);
        let ids = Overrides
            .read(
                "trigger_overrides",
                &json!({"non_native_pull_request_id": 42}),
            )
            .unwrap();
        assert_eq!(ids["non_native_pull_request_id"], 42);
    }

    #[test]
    fn a_selection_keeps_what_its_patterns_match_and_names_the_idle_ones() {
        let selection = Globs
            .read(
                "artifacts_include",
                &json!(["*.json", "run/**/*.sql", "*.csv"]),
            )
            .unwrap();
        let paths = [
            "manifest.json",
            "run/a/b.sql",
            "compiled/x.sql",
            "run/c.json",
        ];
        let selection = selection.unwrap();
        let (selected, unused) = selection.filter(paths.map(String::from).to_vec());
        assert_eq!(selected, ["manifest.json", "run/a/b.sql"]);
        assert_eq!(unused, ["*.csv"]);
    }
}
