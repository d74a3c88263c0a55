//! The keys of config.json's `parameters`, each defined once: its key, what it holds (a [`Kind`],
//! which reads the JSON into a typed value), and its default as the form would save it. The parser
//! reads every value through these definitions, and a test walks [`PARAMETERS`] against the UI
//! form (`configSchema.json`), so that the two cannot disagree.

use std::num::NonZeroU64;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::{json, Map, Value};

use crate::config::{EnvironmentType, IfRunning, RunRef};
use crate::dbt_cloud::{BaseUrl, PageIds, DEFAULT_BASE_URL};
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
                .map(|(key, value)| match key.starts_with('#') {
                    true => (key.clone(), Value::String("***".to_owned())),
                    false => (key.clone(), redacted(value)),
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
                "{key} must be at most {} characters, got {chars}",
                self.max_chars
            ));
        }
        Ok(text.to_owned())
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
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

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

/// `parameters`, where null and an empty string mean absent: the form saves a text field the
/// user emptied as `""`, and that must never fail a job.
pub struct Parameters<'a>(pub &'a Map<String, Value>);

impl Parameters<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|value| !is_unset(value))
    }

    /// Whether config.json sets the key (null and `""` are not setting it).
    pub fn given(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// What the form saves for a field left empty.
fn is_unset(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

/// A parameter that must be given.
pub struct Required<K> {
    pub key: &'static str,
    pub kind: K,
}

impl<K: Kind> Required<K> {
    pub fn read(&self, p: &Parameters) -> Result<K::Value, String> {
        match p.get(self.key) {
            Some(value) => self.kind.read(self.key, value),
            None => Err(format!("{} is required: {}", self.key, K::EXPECTED)),
        }
    }

    /// For the sync actions, which run on a half-filled form.
    pub fn read_if_given(&self, p: &Parameters) -> Result<Option<K::Value>, String> {
        p.get(self.key)
            .map(|value| self.kind.read(self.key, value))
            .transpose()
    }
}

/// A parameter with a default, given as the JSON the form saves, and read like a user's value.
pub struct Defaulted<K> {
    pub key: &'static str,
    pub kind: K,
    pub default: fn() -> Value,
    /// Whether the form offers the default too; when not, only configurations saved without the
    /// key get it (a default kept for them, that new configurations should not start from).
    pub offered: bool,
}

impl<K: Kind> Defaulted<K> {
    pub fn read(&self, p: &Parameters) -> Result<K::Value, String> {
        match p.get(self.key) {
            Some(value) => self.kind.read(self.key, value),
            // A unit test reads every default: this cannot fail in a build that passed it.
            None => self.kind.read(self.key, &(self.default)()),
        }
    }
}

/// A parameter whose absence means something of its own (e.g. the adaptive poll schedule).
pub struct Optional<K> {
    pub key: &'static str,
    pub kind: K,
}

impl<K: Kind> Optional<K> {
    pub fn read(&self, p: &Parameters) -> Result<Option<K::Value>, String> {
        p.get(self.key)
            .map(|value| self.kind.read(self.key, value))
            .transpose()
    }
}

/// What the form-parity test and the unknown-key warning see of a parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub key: &'static str,
    pub json_type: JsonType,
    /// The JSON the form saves when the user leaves the field alone; `None` for no default (also
    /// when the parser keeps one for configurations saved without the key).
    pub default: Option<Value>,
    pub required: bool,
    /// Whether the default reads as a value (a unit test holds every definition to it).
    pub default_reads: bool,
}

pub trait Definition: Sync {
    fn describe(&self) -> Described;
}

impl<K: Kind + Sync> Definition for Required<K> {
    fn describe(&self) -> Described {
        Described {
            key: self.key,
            json_type: K::JSON_TYPE,
            default: None,
            required: true,
            default_reads: true,
        }
    }
}

impl<K: Kind + Sync> Definition for Defaulted<K> {
    fn describe(&self) -> Described {
        let default = (self.default)();
        Described {
            key: self.key,
            json_type: K::JSON_TYPE,
            default_reads: self.kind.read(self.key, &default).is_ok(),
            default: self.offered.then_some(default),
            required: false,
        }
    }
}

impl<K: Kind + Sync> Definition for Optional<K> {
    fn describe(&self) -> Described {
        Described {
            key: self.key,
            json_type: K::JSON_TYPE,
            default: None,
            required: false,
            default_reads: true,
        }
    }
}

/// dbt Cloud clients cut the cause at 255 characters; we refuse rather than change what was asked.
const MAX_CAUSE_CHARS: usize = 255;
/// A wait longer than a year is a typo, and would overflow `Duration` arithmetic further on.
pub const MAX_WAIT_MINUTES: f64 = 525_600.0;
/// Thirty days: a resume is for a run that failed recently; past a month, run the job afresh.
const MAX_RETRY_WINDOW_MINUTES: f64 = 43_200.0;
/// A terabyte: past any artifact dbt writes, and within `u64` bytes.
const MAX_ARTIFACT_SIZE_MB: f64 = 1_000_000.0;

/// A dbt Cloud id: any positive whole number.
const ANY_ID: Count = Count { max: u64::MAX };

pub const DBT_CLOUD_URL: Defaulted<Url> = Defaulted {
    key: "dbt_cloud_url",
    kind: Url,
    default: || json!(DEFAULT_BASE_URL),
    // Retiring on February 3, 2027: kept for configurations saved without the key, who
    // are warned; the form offers no default, so that new ones set their access URL.
    offered: false,
};
pub const ACCOUNT_ID: Required<Count> = Required {
    key: "account_id",
    kind: ANY_ID,
};
pub const API_KEY: Required<Token> = Required {
    key: "#api_key",
    kind: Token,
};
/// One of `job_id` and `job_name` names the job.
pub const JOB_ID: Optional<SelectedId> = Optional {
    key: "job_id",
    kind: SelectedId,
};
pub const JOB_NAME: Optional<Text> = Optional {
    key: "job_name",
    kind: Text { max_chars: 1_000 },
};
pub const ENVIRONMENT_NAME: Optional<Text> = Optional {
    key: "environment_name",
    kind: Text { max_chars: 1_000 },
};
pub const ENVIRONMENT_TYPE: Optional<Choice<EnvironmentType>> = Optional {
    key: "environment_type",
    kind: Choice(&[
        ("production", EnvironmentType::Production),
        ("staging", EnvironmentType::Staging),
        ("development", EnvironmentType::Development),
    ]),
};
pub const PROJECT_ID: Optional<Count> = Optional {
    key: "project_id",
    kind: ANY_ID,
};
/// A run to follow instead of triggering one.
pub const RUN_ID: Optional<RunChoice> = Optional {
    key: "run_id",
    kind: RunChoice,
};
/// The reason dbt Cloud shows for the run; without it, one naming the Keboola job.
pub const CAUSE: Optional<Text> = Optional {
    key: "cause",
    kind: Text {
        max_chars: MAX_CAUSE_CHARS,
    },
};
/// What the form saved as `cause` when the user left it alone, before the cause named the
/// Keboola job: such a configuration gets the cause naming its job too.
pub const FORMER_DEFAULT_CAUSE: &str = "Triggered from Keboola";
pub const WAIT_FOR_RESULT: Defaulted<Flag> = flag("wait_for_result", false);
pub const MAX_WAIT_TIME: Defaulted<Amount> = Defaulted {
    key: "max_wait_time",
    kind: Amount {
        unit: "minutes",
        range: Range::Positive {
            max: MAX_WAIT_MINUTES,
        },
        strings: true,
        hint: " (fractions allowed, e.g. 0.5)",
    },
    default: || json!(60),
    offered: true,
};
pub const IGNORE_ARTIFACTS: Defaulted<Flag> = flag("ignore_artifacts", false);
pub const ARTIFACTS_MUST_SUCCEED: Defaulted<Flag> = flag("artifacts_must_succeed", true);
pub const CANCEL_ON_TERMINATE: Defaulted<Flag> = flag("cancel_on_terminate", true);
pub const CANCEL_ON_TIMEOUT: Defaulted<Flag> = flag("cancel_on_timeout", false);
pub const POLL_INTERVAL: Optional<Amount> = Optional {
    key: "poll_interval",
    kind: Amount {
        unit: "seconds",
        range: Range::Between {
            min: 1.0,
            max: 3_600.0,
        },
        strings: false,
        hint: "",
    },
};
/// How long a run may sit in Queued or Starting, apart from `max_wait_time`.
pub const MAX_QUEUE_TIME: Optional<Amount> = Optional {
    key: "max_queue_time",
    kind: Amount {
        unit: "minutes",
        range: Range::Positive {
            max: MAX_WAIT_MINUTES,
        },
        strings: true,
        hint: " (fractions allowed, e.g. 0.5)",
    },
};
pub const ARTIFACT_CONCURRENCY: Defaulted<Count> = Defaulted {
    key: "artifact_concurrency",
    kind: Count { max: 32 },
    default: || json!(8),
    offered: true,
};
pub const MAX_ARTIFACT_SIZE: Defaulted<Amount> = Defaulted {
    key: "max_artifact_size",
    kind: Amount {
        unit: "megabytes",
        range: Range::Positive {
            max: MAX_ARTIFACT_SIZE_MB,
        },
        strings: true,
        hint: " (fractions allowed)",
    },
    // Ten times the largest manifest.json we have seen, so that only a runaway answer meets it.
    default: || json!(10_000),
    offered: true,
};
/// dbt Cloud's limit on an account's API requests, shared by everything that uses the account.
pub const ACCOUNT_REQUESTS_PER_MINUTE: u64 = 5_000;
pub const MAX_REQUESTS_PER_MINUTE: Defaulted<Count> = Defaulted {
    key: "max_requests_per_minute",
    kind: Count { max: 1_000_000 },
    // This configuration's share of the account's 5,000 a minute: eight runs of the component at
    // once (a flow's phase triggering a job per domain) stay under it at 4,400, leaving 600 for
    // the account's other clients; and 1,500 artifacts still take three minutes' shares.
    default: || json!(550),
    offered: true,
};
pub const TRIGGER_OVERRIDES: Optional<Overrides> = Optional {
    key: "trigger_overrides",
    kind: Overrides,
};
pub const IF_RUNNING: Defaulted<Choice<IfRunning>> = Defaulted {
    key: "if_running",
    kind: Choice(&[
        ("trigger", IfRunning::Trigger),
        ("wait", IfRunning::Wait),
        ("replace", IfRunning::Replace),
        ("skip", IfRunning::Skip),
        ("fail", IfRunning::Fail),
    ]),
    default: || json!("trigger"),
    offered: true,
};
pub const RETRY_FAILED: Defaulted<Flag> = flag("retry_failed", false);
/// How recently the failed run must have ended for `retry_failed` to resume it.
pub const RETRY_FAILED_WITHIN: Defaulted<Amount> = Defaulted {
    key: "retry_failed_within",
    kind: Amount {
        unit: "minutes",
        range: Range::Positive {
            max: MAX_RETRY_WINDOW_MINUTES,
        },
        strings: false,
        hint: " (e.g. 60: only a run that failed within the last hour is resumed)",
    },
    default: || json!(60),
    offered: true,
};
pub const FAIL_ON_RUN_ERROR: Defaulted<Flag> = flag("fail_on_run_error", true);
pub const FAIL_ON_WARNINGS: Defaulted<Flag> = flag("fail_on_warnings", false);
pub const ARTIFACTS_INCLUDE: Optional<Globs> = Optional {
    key: "artifacts_include",
    kind: Globs,
};
pub const ARTIFACTS_ZIP: Defaulted<Flag> = flag("artifacts_zip", false);
pub const DEBUG: Defaulted<Flag> = flag("debug", false);

const fn flag(key: &'static str, default: bool) -> Defaulted<Flag> {
    Defaulted {
        key,
        kind: Flag,
        default: if default {
            || json!(true)
        } else {
            || json!(false)
        },
        offered: true,
    }
}

/// Every key `parameters` may hold, in the form's order. Any other key is ignored with a warning
/// that names the closest of these: a typo such as `max_wait_tme` would otherwise silently fall
/// back to a default, but failing the job for a key the form no longer shows would punish the user.
pub const PARAMETERS: &[&dyn Definition] = &[
    &DBT_CLOUD_URL,
    &ACCOUNT_ID,
    &API_KEY,
    &JOB_ID,
    &JOB_NAME,
    &ENVIRONMENT_NAME,
    &ENVIRONMENT_TYPE,
    &PROJECT_ID,
    &RUN_ID,
    &CAUSE,
    &WAIT_FOR_RESULT,
    &MAX_WAIT_TIME,
    &IGNORE_ARTIFACTS,
    &ARTIFACTS_MUST_SUCCEED,
    &CANCEL_ON_TERMINATE,
    &CANCEL_ON_TIMEOUT,
    &MAX_QUEUE_TIME,
    &POLL_INTERVAL,
    &ARTIFACT_CONCURRENCY,
    &MAX_ARTIFACT_SIZE,
    &MAX_REQUESTS_PER_MINUTE,
    &TRIGGER_OVERRIDES,
    &IF_RUNNING,
    &RETRY_FAILED,
    &RETRY_FAILED_WITHIN,
    &FAIL_ON_RUN_ERROR,
    &FAIL_ON_WARNINGS,
    &ARTIFACTS_INCLUDE,
    &ARTIFACTS_ZIP,
    &DEBUG,
];

/// Keys the form itself saves without the parser needing them: its buttons. Ignored silently.
pub const FORM_ONLY_KEYS: &[&str] = &["test_connection", "recent_runs"];

/// A warning for each key of `parameters` nobody reads, with the known key it most likely meant.
pub fn unknown_keys(p: &Parameters) -> Vec<String> {
    let unknown: Vec<&String> =
        p.0.keys()
            .filter(|key| {
                !PARAMETERS
                    .iter()
                    .any(|known| known.describe().key == key.as_str())
                    && !FORM_ONLY_KEYS.contains(&key.as_str())
            })
            .collect();
    let mut warnings: Vec<String> = unknown
        .iter()
        .take(UNKNOWN_KEYS_NAMED)
        .map(|key| unknown_key(key))
        .collect();
    if unknown.len() > UNKNOWN_KEYS_NAMED {
        warnings.push(format!(
            "parameters has {} more unknown keys, which are ignored",
            unknown.len() - UNKNOWN_KEYS_NAMED
        ));
    }
    warnings
}

/// Unknown keys named one by one; past these, a count.
const UNKNOWN_KEYS_NAMED: usize = 10;

fn unknown_key(key: &str) -> String {
    let closest = PARAMETERS
        .iter()
        .map(|known| known.describe().key)
        .map(|known| (strsim::jaro_winkler(key, known), known))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(similarity, _)| *similarity >= 0.85);
    match closest {
        Some((_, known)) => format!(
            "parameters has an unknown key \"{}\", which is ignored: did you mean {known}?",
            cut(key)
        ),
        None => format!(
            "parameters has an unknown key \"{}\", which is ignored; the known keys are {}",
            cut(key),
            PARAMETERS
                .iter()
                .map(|p| p.describe().key)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn every_default_reads_as_a_value() {
        for parameter in PARAMETERS {
            let described = parameter.describe();
            assert!(described.default_reads, "{}", described.key);
        }
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
