//! Reading a run while it streams in: the fields the tables write kept within their budget,
//! the steps read into typed values, everything else skipped unread, and what cannot be read as
//! the API documents read leniently, with an oddity to say so.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{
    Run, RunStatus, RunStep, FIELD_BUDGET, MAX_STEPS, RUN_BUDGET, RUN_FIELDS, STEP_TEXT_CHARS,
};
use crate::dbt_cloud::bounded::Bounded;
use crate::dbt_cloud::ids::{RunId, WholeNumber};

impl<'de> Deserialize<'de> for Run {
    /// Streams the run in, keeping [`RUN_FIELDS`] within their budget, reading the steps, and
    /// skipping the rest unread.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Run, D::Error> {
        let left = Cell::new(RUN_BUDGET);
        RunSeed { left: &left }.deserialize(deserializer)
    }
}

/// A list of runs, which share one budget: a list of a hundred runs costs no more than
/// [`LIST_BUDGET`], whatever each holds.
pub struct Runs(pub Vec<Run>);

/// The most all the runs of a list may take together.
const LIST_BUDGET: usize = 16_000_000;

impl<'de> Deserialize<'de> for Runs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Runs, D::Error> {
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Runs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of runs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Runs, A::Error> {
                let left = Cell::new(LIST_BUDGET);
                let mut runs = Vec::new();
                while let Some(run) = seq.next_element_seed(RunSeed { left: &left })? {
                    runs.push(run);
                }
                Ok(Runs(runs))
            }
        }
        deserializer.deserialize_seq(List)
    }
}

/// Reads one run, spending what it keeps (its fields, its steps' logs) from `left`.
struct RunSeed<'a> {
    left: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_> {
    type Value = Run;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Run, D::Error> {
        let read = deserializer.deserialize_map(self)?;
        Run::from_read(read).map_err(serde::de::Error::custom)
    }
}

/// What a run's answer held, before it is typed.
#[derive(Default)]
struct Read {
    fields: Map<String, Value>,
    steps: Option<Steps>,
}

impl<'de> Visitor<'de> for RunSeed<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a run: a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut read = Read::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "run_steps" {
                read.steps = Some(map.next_value_seed(StepsSeed { left: self.left })?);
            } else if RUN_FIELDS.iter().any(|field| field.name == key) {
                let budget = FIELD_BUDGET.min(self.left.get());
                let field = Cell::new(budget);
                let value = map.next_value_seed(Bounded { left: &field })?;
                self.left.set(self.left.get() - (budget - field.get()));
                read.fields.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(read)
    }
}

/// The steps of a run as sent: the first [`MAX_STEPS`] read, and how many there were; `None` in
/// `read` when `run_steps` was not a list (what it was instead).
struct Steps {
    read: Result<Vec<RunStep>, &'static str>,
    sent: usize,
}

/// Reads the steps, spending their logs from `left`.
struct StepsSeed<'a> {
    left: &'a Cell<usize>,
}

impl<'de> DeserializeSeed<'de> for StepsSeed<'_> {
    type Value = Steps;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Steps, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StepsSeed<'_> {
    type Value = Steps;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of steps")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Steps, A::Error> {
        let mut steps = Vec::new();
        let mut sent = 0;
        while sent < MAX_STEPS {
            match seq.next_element::<StepHead>()? {
                Some(step) => {
                    sent += 1;
                    steps.extend(step.typed(self.left));
                }
                None => break,
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            sent += 1;
        }
        Ok(Steps {
            read: Ok(steps),
            sent,
        })
    }

    fn visit_unit<E>(self) -> Result<Steps, E> {
        Ok(Steps {
            read: Ok(Vec::new()),
            sent: 0,
        })
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Steps, E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Steps, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Steps {
            read: Err("an object"),
            sent: 0,
        })
    }

    fn visit_str<E>(self, _: &str) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("a string"),
            sent: 0,
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("true or false"),
            sent: 0,
        })
    }

    fn visit_i64<E>(self, _: i64) -> Result<Steps, E> {
        Ok(Steps {
            read: Err("a number"),
            sent: 0,
        })
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Steps, E> {
        self.visit_i64(0)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Steps, E> {
        self.visit_i64(0)
    }
}

/// A step as sent: whatever each field holds, read as leniently as it can be; `debug_logs` and
/// everything else skipped unread.
#[derive(Deserialize)]
struct StepHead {
    #[serde(default)]
    index: Lenient,
    #[serde(default)]
    name: Lenient,
    #[serde(default)]
    status: Lenient,
    #[serde(default)]
    status_humanized: Lenient,
    #[serde(default)]
    started_at: Lenient,
    #[serde(default)]
    finished_at: Lenient,
    #[serde(default)]
    duration: Lenient,
    #[serde(default)]
    logs: Lenient,
}

/// The steps table's key is the run and the step's index, and `?step=N` names one step: a step
/// listed under an index already listed is left out (returned apart), the first of each kept.
fn first_of_each_index(steps: Vec<RunStep>) -> (Vec<RunStep>, Vec<RunStep>) {
    let mut seen = std::collections::HashSet::new();
    steps.into_iter().partition(|step| seen.insert(step.index))
}

/// What every step's log keeps of its end, the run's budget spent or not: where dbt says what
/// failed. At most [`MAX_STEPS`] times this past the budget.
const LOG_END: usize = 4 * 1024;

impl StepHead {
    /// The step, its log spent from `left`: past it, the log is cut to what is left, but never
    /// to less than its last [`LOG_END`] bytes.
    fn typed(self, left: &Cell<usize>) -> Option<RunStep> {
        let status_code = self.status.code();
        let logs = self.logs.text().map(|log| {
            let budget = left.get().max(LOG_END);
            left.set(left.get().saturating_sub(log.len()));
            if log.len() <= budget {
                return log;
            }
            // Its end, where dbt says what failed, from the end of the log as dbt wrote it; the
            // mark counts what is gone of that log, a cut as it streamed in included.
            let written = crate::long_strings::as_written(&log);
            let (before, end) = match written.cut {
                0 => (0, log.as_str()),
                cut => (written.head.chars().count() as u64 + cut, written.end),
            };
            let mut start = end.len().saturating_sub(budget);
            while !end.is_char_boundary(start) {
                start += 1;
            }
            let cut = before + end[..start].chars().count() as u64;
            format!("{}{}", crate::long_strings::mark(cut), &end[start..])
        });
        // A name is a line and a timestamp less: past that they are cut here, once, as every
        // table row and log line that names the step repeats them.
        let short = |field: Lenient| {
            field
                .text()
                .map(|text| crate::text::head(&text, STEP_TEXT_CHARS).into_owned())
        };
        Some(RunStep {
            index: self.index.code().unwrap_or_default(),
            name: short(self.name).unwrap_or_default(),
            status: status_code.map_or(RunStatus::Unknown, RunStatus::from_code),
            status_code,
            status_humanized: short(self.status_humanized),
            started_at: short(self.started_at),
            finished_at: short(self.finished_at),
            duration: short(self.duration),
            logs,
        })
    }
}

/// A scalar read whatever its type; lists and objects skipped.
#[derive(Debug, Default)]
enum Lenient {
    #[default]
    Absent,
    Text(String),
    Integer(i64),
    Other,
}

impl Lenient {
    fn text(self) -> Option<String> {
        match self {
            Lenient::Text(text) => Some(text),
            Lenient::Integer(n) => Some(n.to_string()),
            Lenient::Absent | Lenient::Other => None,
        }
    }

    /// A whole number, or a string of digits.
    fn code(&self) -> Option<i64> {
        match self {
            Lenient::Integer(n) => Some(*n),
            Lenient::Text(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
                text.parse().ok()
            }
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Lenient, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E>(self, text: &str) -> Result<Lenient, E> {
                Ok(Lenient::Text(text.to_owned()))
            }
            fn visit_string<E>(self, text: String) -> Result<Lenient, E> {
                Ok(Lenient::Text(text))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Lenient, E> {
                Ok(Lenient::Integer(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Lenient, E> {
                Ok(i64::try_from(n).map_or(Lenient::Other, Lenient::Integer))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient::Other)
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient::Absent)
            }
            fn visit_none<E>(self) -> Result<Lenient, E> {
                Ok(Lenient::Absent)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lenient, D::Error> {
                Lenient::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_seq(seq)?;
                Ok(Lenient::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient, A::Error> {
                IgnoredAny.visit_map(map)?;
                Ok(Lenient::Other)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A whole number among the fields, as dbt Cloud sends ids: a number or a string of digits.
fn whole(fields: &Map<String, Value>, name: &str) -> Option<u64> {
    match fields.get(name)? {
        Value::Number(n) => n.as_u64(),
        Value::String(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().ok()
        }
        _ => None,
    }
}

/// The run's status from what was sent: a code (a number or a string of digits) is read as one;
/// anything else (a name, a fraction, an object) is unknown, taken as still in progress.
fn status_of(sent: Option<&Value>) -> (RunStatus, Option<String>) {
    let code = match sent {
        None | Some(Value::Null) => {
            return (
                RunStatus::Unknown,
                Some(
                    "dbt Cloud sent no status for the run; it is taken as still in progress"
                        .to_owned(),
                ),
            )
        }
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_u64().map(|_| i64::MAX)),
        Some(Value::String(text))
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            Some(text.parse().unwrap_or(i64::MAX))
        }
        Some(_) => None,
    };
    match code {
        Some(code) => (RunStatus::from_code(code), None),
        None => {
            let shown = crate::text::truncate(&sent.map(Value::to_string).unwrap_or_default(), 40)
                .to_owned();
            (
                RunStatus::Unknown,
                Some(format!(
                    "dbt Cloud sent the run's status as {shown}, which is not a status code; \
                     the run is taken as still in progress"
                )),
            )
        }
    }
}

impl Run {
    fn from_read(read: Read) -> Result<Run, String> {
        let Read { fields, steps } = read;
        let id = match fields.get("id") {
            Some(id) => WholeNumber::deserialize(id).map_err(|e| e.to_string())?,
            None => return Err("missing field `id`".to_owned()),
        };
        let id = RunId::new(id.0).ok_or("the run has id 0")?;
        let (status, odd_status) = status_of(fields.get("status"));
        let mut oddities: Vec<String> = odd_status.into_iter().collect();
        let steps_sent = steps.is_some();
        let steps = match steps {
            None => Vec::new(),
            Some(Steps {
                read: Ok(read),
                sent,
            }) => {
                if sent > read.len() {
                    oddities.push(format!(
                        "dbt Cloud listed {sent} steps for run {id}; the first {} are read",
                        read.len()
                    ));
                }
                let (kept, left_out) = first_of_each_index(read);
                // Worded by the first step left out alone, which stays the same while the run
                // goes on and steps are added, so that it is said once.
                if let Some(first) = left_out.first() {
                    oddities.push(format!(
                        "dbt Cloud lists steps of run {id} under an index already listed (the \
                         first: {} {:?}); the first step of each index is kept, the others are \
                         left out",
                        first.index, first.name
                    ));
                }
                kept
            }
            Some(Steps {
                read: Err(what), ..
            }) => {
                oddities.push(format!(
                    "dbt Cloud sent run {id}'s steps as {what}, not a list: no steps are read"
                ));
                Vec::new()
            }
        };
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned)
        };
        Ok(Run {
            id,
            status,
            status_message: text("status_message"),
            href: text("href"),
            artifacts_saved: fields.get("artifacts_saved").and_then(Value::as_bool) == Some(true),
            has_started: fields.get("started_at").is_some_and(|v| !v.is_null()),
            account: whole(&fields, "account_id"),
            job: whole(&fields, "job_definition_id").or_else(|| whole(&fields, "job_id")),
            steps: steps.into(),
            steps_sent,
            oddities: oddities.into(),
            fields: Arc::new(fields),
        })
    }
}
