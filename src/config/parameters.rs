//! The keys of config.json's `parameters`, each defined once: its key, what it holds (a [`Kind`],
//! which reads the JSON into a typed value), and its default as the form would save it. The parser
//! reads every value through these definitions, and a test walks [`PARAMETERS`] against the UI
//! form (`configSchema.json`), so that the two cannot disagree.

use serde_json::{json, Map, Value};

pub use super::kinds::*;
use crate::config::{EnvironmentType, IfRunning};
use crate::dbt_cloud::DEFAULT_BASE_URL;
use crate::text::cut;

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

/// A parameter that must be given.
pub struct Required<K> {
    pub key: &'static str,
    /// The form's title and help for the field.
    pub title: &'static str,
    pub help: &'static str,
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
    /// The form's title and help for the field.
    pub title: &'static str,
    pub help: &'static str,
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
    /// The form's title and help for the field.
    pub title: &'static str,
    pub help: &'static str,
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
    pub title: &'static str,
    pub help: &'static str,
    pub form: Form,
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
            title: self.title,
            help: self.help,
            form: self.kind.form(),
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
            title: self.title,
            help: self.help,
            form: self.kind.form(),
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
            title: self.title,
            help: self.help,
            form: self.kind.form(),
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

pub const DBT_CLOUD_URL: Defaulted<Url> = Defaulted {
    key: "dbt_cloud_url",
    title: "dbt Cloud access URL",
    help: "Your account's access URL from Account settings → Access URLs in dbt Cloud, e.g. \
        https://ab123.us1.dbt.com or https://emea.dbt.com. Must use https://. The getdbt.com \
        region URLs (https://cloud.getdbt.com) stop serving the API on February 3, 2027.",
    kind: Url,
    default: || json!(DEFAULT_BASE_URL),
    // Retiring on February 3, 2027: kept for configurations saved without the key, who
    // are warned; the form offers no default, so that new ones set their access URL.
    offered: false,
};
pub const ACCOUNT_ID: Required<Count> = Required {
    key: "account_id",
    title: "Account ID",
    help: "The number after /accounts/ or /deploy/ in dbt Cloud URLs.",
    kind: ANY_ID,
};
pub const API_KEY: Required<Token> = Required {
    key: "#api_key",
    title: "API token",
    help: "A service token (dbtc_…) with the Job Runner permission, or a personal access token. \
        The API needs a Team or Enterprise plan.",
    kind: Token,
};
/// One of `job_id` and `job_name` names the job.
pub const JOB_ID: Optional<SelectedId> = Optional {
    key: "job_id",
    title: "Job ID",
    help: "The job to trigger: pick it from the account's jobs, or type the number after /jobs/ \
        in the job's URL. Leave it empty to name the job instead (Job name).",
    kind: SelectedId,
};
pub const JOB_NAME: Optional<Text> = Optional {
    key: "job_name",
    title: "Job name",
    help: "Instead of Job ID: the job's exact name, for teams whose job ids change between \
        environments or when jobs are recreated. Fails, naming the candidates, when no job or \
        several jobs have the name.",
    kind: Text { max_chars: 1_000 },
};
pub const ENVIRONMENT_NAME: Optional<Text> = Optional {
    key: "environment_name",
    title: "Environment name",
    help: "With Job name: only jobs of this dbt Cloud environment.",
    kind: Text { max_chars: 1_000 },
};
pub const ENVIRONMENT_TYPE: Optional<Choice<EnvironmentType>> = Optional {
    key: "environment_type",
    title: "Environment type",
    help: "With Job name: only jobs of environments of this type.",
    kind: Choice(&[
        ("production", EnvironmentType::Production),
        ("staging", EnvironmentType::Staging),
        ("development", EnvironmentType::Development),
    ]),
};
pub const PROJECT_ID: Optional<Count> = Optional {
    key: "project_id",
    title: "Project ID",
    help: "With Job name: only jobs of this dbt Cloud project.",
    kind: ANY_ID,
};
/// A run to follow instead of triggering one.
pub const RUN_ID: Optional<RunChoice> = Optional {
    key: "run_id",
    title: "Follow a run instead of triggering",
    help: "A run id, or latest for the job's newest run (finished or not): the component follows \
        that run, as it follows one it triggers (tables, wait, artifacts, results), and \
        triggers nothing. A followed run is not cancelled unless Cancel the run when the job \
        is stopped / on timeout is set in this configuration.",
    kind: RunChoice,
};
/// The reason dbt Cloud shows for the run; without it, one naming the Keboola job.
pub const CAUSE: Optional<Text> = Optional {
    key: "cause",
    title: "Cause",
    help: "Shown as the reason of the run in dbt Cloud. Leave empty to name the Keboola job, its \
        project and configuration, with a link to the job.",
    kind: Text {
        max_chars: MAX_CAUSE_CHARS,
    },
};
/// What the form saved as `cause` when the user left it alone, before the cause named the
/// Keboola job: such a configuration gets the cause naming its job too.
pub const FORMER_DEFAULT_CAUSE: &str = "Triggered from Keboola";
pub const WAIT_FOR_RESULT: Defaulted<Flag> = flag(
    "wait_for_result",
    "Wait for the run to finish",
    "When on, the component waits for the run, saves its final state and artifacts, and fails \
    when the run fails.",
    false,
);
pub const MAX_WAIT_TIME: Defaulted<Amount> = Defaulted {
    key: "max_wait_time",
    title: "Maximum wait time (minutes)",
    help: "The component fails when the run has not finished by then; the run itself goes on in \
        dbt Cloud unless 'Cancel the run on timeout' is on. The component's time limit in \
        Keboola is 24 hours, and the wait ends two minutes before it. If this configuration \
        sets a shorter job timeout of its own (Keboola does not tell the component), keep this \
        below it.",
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
pub const IGNORE_ARTIFACTS: Defaulted<Flag> = flag(
    "ignore_artifacts",
    "Do not download artifacts",
    "When off, every artifact of the finished run (manifest.json, run_results.json, compiled \
    SQL, …) is saved as a job artifact.",
    false,
);
pub const ARTIFACTS_MUST_SUCCEED: Defaulted<Flag> = flag(
    "artifacts_must_succeed",
    "Fail when an artifact cannot be downloaded",
    "When off, an artifact that still fails after retries is only a warning, as long as the \
    others were downloaded.",
    true,
);
pub const CANCEL_ON_TERMINATE: Defaulted<Flag> = flag(
    "cancel_on_terminate",
    "Cancel the dbt run when this job is stopped",
    "When the Keboola job is stopped while waiting, cancel the dbt Cloud run too. A \
    configuration without this setting cancels only a run the job started, not one it followed \
    (run_id) or adopted (if running: wait).",
    true,
);
pub const WAIT_FOR_CHAINED_JOBS: Defaulted<Flag> = flag(
    "wait_for_chained_jobs",
    "Wait for the jobs chained to this one",
    "Also wait for the runs dbt Cloud starts when this run ends (jobs set to run when another job \
    finishes, to any depth), within the same maximum wait time: the job succeeds when the whole \
    chain has. Their runs and results are written to the same tables; artifacts stay this run's.",
    false,
);
pub const CANCEL_ON_TIMEOUT: Defaulted<Flag> = flag(
    "cancel_on_timeout",
    "Cancel the dbt run when the maximum wait time passes",
    "Otherwise the run goes on in dbt Cloud after this job has failed.",
    false,
);
pub const POLL_INTERVAL: Optional<Amount> = Optional {
    key: "poll_interval",
    title: "Poll interval (seconds)",
    help: "Leave empty for the adaptive schedule, which uses the job's recent runs to notice the \
        end at once. A fixed interval otherwise.",
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
    title: "Maximum queue time (minutes)",
    help: "Optional: the component fails when the run is still Queued or Starting this long after \
        it began (cancelled with Cancel the run on timeout), whatever is left of the maximum \
        wait time.",
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
    title: "Artifact downloads in parallel",
    help: "",
    kind: Count { max: 32 },
    default: || json!(8),
    offered: true,
};
pub const MAX_ARTIFACT_SIZE: Defaulted<Amount> = Defaulted {
    key: "max_artifact_size",
    title: "Largest artifact (MB)",
    help: "An artifact larger than this fails (naming it) instead of filling the disk; a download \
        slower than 10 KB/s over a minute is broken off and tried again.",
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
pub const MAX_REQUESTS_PER_MINUTE: Optional<Count> = Optional {
    key: "max_requests_per_minute",
    title: "Maximum API requests a minute",
    help: "This configuration's share of dbt Cloud's 5,000 API requests a minute per account, \
        which everything using the account shares; past it dbt Cloud refuses all of them for \
        five minutes. Left empty, the share follows what the account is doing: half of it when \
        no other run of the account is busy, a quarter beside one or two, 550 beside more (eight \
        runs at 550 stay under the limit). Set it to fix this configuration's share.",
    kind: Count { max: 1_000_000 },
};
pub const TRIGGER_OVERRIDES: Optional<Overrides> = Optional {
    key: "trigger_overrides",
    title: "Trigger overrides",
    help: "Optional overrides of the job's settings for this run, sent in the trigger.",
    kind: Overrides,
};
pub const IF_RUNNING: Defaulted<Choice<IfRunning>> = Defaulted {
    key: "if_running",
    title: "When the job is already running",
    help: "What to do when a run of this job is already queued or running. Skip and fail name the \
        run in progress and its link.",
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
pub const RETRY_FAILED: Defaulted<Flag> = flag(
    "retry_failed",
    "Resume a recent failure from the point of failure",
    "When the job's newest run ended in Error within the window below, resume that run from its \
    failed node instead of triggering a fresh run. A resume rebuilds only what failed: models \
    that succeeded in the failed run keep that run's data, so an older failure (last night's) \
    gets a fresh run. The cause and trigger overrides do not apply to a resumed run.",
    false,
);
/// How recently the failed run must have ended for `retry_failed` to resume it.
pub const RETRY_FAILED_WITHIN: Defaulted<Amount> = Defaulted {
    key: "retry_failed_within",
    title: "Resume only failures of the last (minutes)",
    help: "How recently the failed run must have ended for it to be resumed, on dbt Cloud's \
        clock. Set it below the job's schedule interval, so that a failure is resumed within \
        the same pipeline run and never on the next night.",
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
pub const FAIL_ON_RUN_ERROR: Defaulted<Flag> = flag(
    "fail_on_run_error",
    "Fail when the dbt run fails",
    "When off, a dbt run that ends in Error or Cancelled is a warning: the tables and artifacts \
    are kept and the flow goes on.",
    true,
);
pub const FAIL_ON_WARNINGS: Defaulted<Flag> = flag(
    "fail_on_warnings",
    "Fail on warnings",
    "When on, a test or model that warned, or a source past its freshness threshold, in any \
    step of the run fails the job (after its tables are written), with the warnings as the \
    message. Off: they are only logged.",
    false,
);
pub const ARTIFACTS_INCLUDE: Optional<Globs> = Optional {
    key: "artifacts_include",
    title: "Artifacts to download",
    help: "Glob patterns over artifact paths; empty for all. * stays within a folder, ** crosses \
        folders: e.g. *.json, run/**/*.sql. Most users need manifest.json, run_results.json, \
        catalog.json and sources.json.",
    kind: Globs,
};
pub const ARTIFACTS_ZIP: Defaulted<Flag> = flag(
    "artifacts_zip",
    "Also keep the artifacts as one zip in File Storage",
    "Packs them into out/files/dbt_artifacts_<run id>.zip, tagged dbt-cloud, run-<id> and \
    job-<id>: for projects without the artifacts feature.",
    false,
);
pub const DEBUG: Defaulted<Flag> = flag(
    "debug",
    "Debug logging",
    "Logs every API request (method, path, status, time). The token is never logged.",
    false,
);

const fn flag(
    key: &'static str,
    title: &'static str,
    help: &'static str,
    default: bool,
) -> Defaulted<Flag> {
    Defaulted {
        key,
        title,
        help,
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
    &WAIT_FOR_CHAINED_JOBS,
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
        let more = unknown.len() - UNKNOWN_KEYS_NAMED;
        warnings.push(format!(
            "parameters has {more} more unknown {}, which {} ignored",
            crate::text::plural(more, "key", "keys"),
            crate::text::plural(more, "is", "are")
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
    fn every_default_reads_as_a_value() {
        for parameter in PARAMETERS {
            let described = parameter.describe();
            assert!(described.default_reads, "{}", described.key);
        }
    }
}
