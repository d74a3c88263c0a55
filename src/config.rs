//! config.json, turned into typed values once. Nothing past this module sees raw JSON.
//!
//! The rules follow the earlier Python component's configs, so that they keep working: ids may be
//! numbers or strings of digits, `max_wait_time` a number of minutes or a string holding one.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde_json::{Map, Value};

use crate::dbt_cloud::{AccountId, BaseUrl, JobId, DEFAULT_BASE_URL};
use crate::error::{user_error, UserError};
use crate::secret::ApiToken;

pub const DEFAULT_CAUSE: &str = "Triggered from Keboola";
pub const DEFAULT_MAX_WAIT_MINUTES: f64 = 60.0;
/// dbt Cloud clients cut the cause at 255 characters; we refuse rather than change what was asked.
const MAX_CAUSE_CHARS: usize = 255;
/// A wait longer than a year is a typo, and would overflow `Duration` arithmetic further on.
const MAX_WAIT_MINUTES_LIMIT: f64 = 525_600.0;

/// Every key `parameters` may hold. Anything else is refused: a typo such as `max_wait_tme`
/// would otherwise silently fall back to a default.
pub const PARAMETER_KEYS: &[&str] = &[
    "account_id",
    "job_id",
    "#api_key",
    "cause",
    "wait_for_result",
    "max_wait_time",
    "dbt_cloud_url",
    "ignore_artifacts",
    "artifacts_must_succeed",
    "cancel_on_terminate",
    "cancel_on_timeout",
    "poll_interval",
    "artifact_concurrency",
    "max_requests_per_minute",
    "debug",
];

pub const DEFAULT_ARTIFACT_CONCURRENCY: usize = 8;
const MAX_ARTIFACT_CONCURRENCY: u64 = 32;
/// A fifth of dbt Cloud's 5,000 requests a minute per account, which every other client of the
/// account (schedulers, the IDE, other pipelines) shares.
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = 1_000;
const MAX_REQUESTS_PER_MINUTE_LIMIT: u64 = 1_000_000;
const MAX_POLL_INTERVAL_SECONDS: f64 = 3_600.0;

#[derive(Debug, Clone)]
pub struct Config {
    pub account_id: AccountId,
    pub job_id: JobId,
    pub api_token: ApiToken,
    pub cause: String,
    pub wait: Wait,
    pub dbt_cloud_url: BaseUrl,
    pub download_artifacts: bool,
    /// When false, a failed artifact is a warning as long as the others came.
    pub artifacts_must_succeed: bool,
    /// Cancel the dbt run when SIGTERM or SIGINT comes while waiting.
    pub cancel_on_terminate: bool,
    /// Cancel the dbt run when `max_wait_time` passes.
    pub cancel_on_timeout: bool,
    /// A fixed interval between polls, instead of the adaptive schedule.
    pub poll_interval: Option<Duration>,
    /// Downloads in flight at once.
    pub artifact_concurrency: usize,
    /// The ceiling on this component's requests to dbt Cloud.
    pub max_requests_per_minute: u32,
    pub debug: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Trigger and return at once.
    No,
    /// Poll until the run is final, but no longer than this.
    UpTo(Duration),
}

/// Reads and parses `config.json`. Every failure is the user's to fix.
pub fn load(path: &Path) -> Result<Config> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return user_error(format!(
                "config.json not found at {}: pass the data folder with --data-dir or KBC_DATADIR",
                path.display()
            ))
        }
        Err(e) => {
            return user_error(format!(
                "config.json at {} cannot be read: {e}",
                path.display()
            ))
        }
    };
    parse(&text)
}

pub fn parse(text: &[u8]) -> Result<Config> {
    let root: Value = serde_json::from_slice(text)
        .map_err(|e| UserError::new(format!("config.json is not valid JSON: {e}")))?;
    let Value::Object(mut root) = root else {
        return user_error("config.json must be a JSON object");
    };
    let parameters =
        match root.remove("parameters") {
            Some(Value::Object(parameters)) => parameters,
            None | Some(Value::Null) => return user_error(
                "config.json has no \"parameters\": account_id, job_id and #api_key are required",
            ),
            Some(_) => return user_error("config.json's \"parameters\" must be a JSON object"),
        };
    from_parameters(&parameters).map_err(|message| UserError::new(message).into())
}

fn from_parameters(parameters: &Map<String, Value>) -> Result<Config, String> {
    if let Some(unknown) = parameters
        .keys()
        .find(|key| !PARAMETER_KEYS.contains(&key.as_str()))
    {
        return Err(format!(
            "parameters has an unknown key \"{unknown}\"; the known keys are {}",
            PARAMETER_KEYS.join(", ")
        ));
    }
    let get = |key: &str| parameters.get(key).filter(|v| !v.is_null());

    let account_id = AccountId::new(positive_integer("account_id", get("account_id"))?)
        .expect("positive_integer returns a positive integer");
    let job_id = JobId::new(positive_integer("job_id", get("job_id"))?)
        .expect("positive_integer returns a positive integer");
    let api_token = match get("#api_key") {
        None => {
            return Err(
                "#api_key is required: a dbt Cloud service token or personal access token".into(),
            )
        }
        Some(Value::String(token)) => ApiToken::new(token)
            .ok_or("#api_key must be a non-empty token without spaces or line breaks")?,
        // Never echo the value: it is a secret even when mistyped.
        Some(_) => return Err("#api_key must be a string".into()),
    };
    let cause = match get("cause") {
        None => DEFAULT_CAUSE.to_owned(),
        Some(Value::String(cause)) if cause.trim().is_empty() => {
            return Err("cause must not be empty".into())
        }
        Some(Value::String(cause)) if cause.chars().count() > MAX_CAUSE_CHARS => {
            return Err(format!(
                "cause must be at most {MAX_CAUSE_CHARS} characters, got {}",
                cause.chars().count()
            ))
        }
        Some(Value::String(cause)) => cause.clone(),
        Some(other) => return Err(format!("cause must be a string, got {other}")),
    };
    let wait_for_result = boolean("wait_for_result", get("wait_for_result"), false)?;
    let max_wait = max_wait_time(get("max_wait_time"))?;
    let dbt_cloud_url = match get("dbt_cloud_url") {
        None => BaseUrl::parse(DEFAULT_BASE_URL).expect("the default URL is valid"),
        Some(Value::String(url)) => BaseUrl::parse(url)
            .map_err(|why| format!("dbt_cloud_url {url:?} is not usable: {why}"))?,
        Some(other) => return Err(format!("dbt_cloud_url must be a string, got {other}")),
    };
    Ok(Config {
        account_id,
        job_id,
        api_token,
        cause,
        wait: if wait_for_result {
            Wait::UpTo(max_wait)
        } else {
            Wait::No
        },
        dbt_cloud_url,
        download_artifacts: !boolean("ignore_artifacts", get("ignore_artifacts"), false)?,
        artifacts_must_succeed: boolean(
            "artifacts_must_succeed",
            get("artifacts_must_succeed"),
            true,
        )?,
        cancel_on_terminate: boolean("cancel_on_terminate", get("cancel_on_terminate"), true)?,
        cancel_on_timeout: boolean("cancel_on_timeout", get("cancel_on_timeout"), false)?,
        poll_interval: poll_interval(get("poll_interval"))?,
        artifact_concurrency: match get("artifact_concurrency") {
            None => DEFAULT_ARTIFACT_CONCURRENCY,
            value => {
                bounded_integer("artifact_concurrency", value, MAX_ARTIFACT_CONCURRENCY)? as usize
            }
        },
        max_requests_per_minute: match get("max_requests_per_minute") {
            None => DEFAULT_MAX_REQUESTS_PER_MINUTE,
            value => bounded_integer(
                "max_requests_per_minute",
                value,
                MAX_REQUESTS_PER_MINUTE_LIMIT,
            )? as u32,
        },
        debug: boolean("debug", get("debug"), false)?,
    })
}

fn positive_integer(key: &str, value: Option<&Value>) -> Result<u64, String> {
    let parsed = match value {
        None => return Err(format!("{key} is required: a positive integer")),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => {
            let s = s.trim();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse::<u64>().ok()
            } else {
                None
            }
        }
        Some(_) => None,
    };
    match parsed {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{key} must be a positive integer, got {}",
            value.expect("None returned above")
        )),
    }
}

fn bounded_integer(key: &str, value: Option<&Value>, max: u64) -> Result<u64, String> {
    let n = positive_integer(key, value)?;
    if n > max {
        return Err(format!("{key} must be at most {max}, got {n}"));
    }
    Ok(n)
}

fn poll_interval(value: Option<&Value>) -> Result<Option<Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_f64() {
        Some(seconds) if (1.0..=MAX_POLL_INTERVAL_SECONDS).contains(&seconds) => {
            Ok(Some(Duration::from_secs_f64(seconds)))
        }
        _ => Err(format!(
            "poll_interval must be a number of seconds from 1 to {MAX_POLL_INTERVAL_SECONDS}, got {value}"
        )),
    }
}

fn boolean(key: &str, value: Option<&Value>, default: bool) -> Result<bool, String> {
    match value {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("{key} must be true or false, got {other}")),
    }
}

fn max_wait_time(value: Option<&Value>) -> Result<Duration, String> {
    let minutes = match value {
        None => Some(DEFAULT_MAX_WAIT_MINUTES),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match minutes {
        Some(m) if m.is_finite() && m > 0.0 && m <= MAX_WAIT_MINUTES_LIMIT => {
            Ok(Duration::from_secs_f64(m * 60.0))
        }
        _ => Err(format!(
            "max_wait_time must be a number of minutes greater than 0 and at most {MAX_WAIT_MINUTES_LIMIT} \
             (fractions allowed, e.g. 0.5), got {}",
            value.expect("the default is valid")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::is_user_error;
    use serde_json::json;

    fn parse_parameters(parameters: Value) -> Result<Config> {
        parse(
            json!({ "parameters": parameters, "action": "run", "storage": {} })
                .to_string()
                .as_bytes(),
        )
    }

    fn minimal() -> Value {
        json!({"account_id": 1, "job_id": 2, "#api_key": "dbtc_token"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut parameters = minimal();
        parameters[key] = value;
        parameters
    }

    #[test]
    fn defaults() {
        let config = parse_parameters(minimal()).unwrap();
        assert_eq!(config.account_id.get(), 1);
        assert_eq!(config.job_id.get(), 2);
        assert_eq!(config.cause, "Triggered from Keboola");
        assert_eq!(config.wait, Wait::No);
        assert_eq!(config.dbt_cloud_url.to_string(), "https://cloud.getdbt.com");
        assert!(config.download_artifacts);
        assert!(config.artifacts_must_succeed);
        assert!(config.cancel_on_terminate);
        assert!(!config.cancel_on_timeout);
        assert_eq!(config.poll_interval, None);
        assert_eq!(config.artifact_concurrency, 8);
        assert_eq!(config.max_requests_per_minute, 1_000);
        assert!(!config.debug);
    }

    #[test]
    fn python_component_config_still_parses() {
        let config = parse_parameters(json!({
            "account_id": "12345", "job_id": " 678 ", "#api_key": "dbtc_x",
            "cause": "nightly", "wait_for_result": true, "max_wait_time": "1.5",
            "dbt_cloud_url": "emea.dbt.com/", "ignore_artifacts": true, "debug": true
        }))
        .unwrap();
        assert_eq!(config.account_id.get(), 12345);
        assert_eq!(config.job_id.get(), 678);
        assert_eq!(config.wait, Wait::UpTo(Duration::from_secs(90)));
        assert_eq!(config.dbt_cloud_url.to_string(), "https://emea.dbt.com");
        assert!(!config.download_artifacts);
        assert!(config.debug);
    }

    #[test]
    fn unknown_root_keys_are_ignored_and_nulls_mean_default() {
        let text = json!({
            "parameters": with("cause", Value::Null), "image_parameters": {}, "authorization": {},
            "shared_code_row_ids": [], "variables_id": "5"
        });
        let config = parse(text.to_string().as_bytes()).unwrap();
        assert_eq!(config.cause, DEFAULT_CAUSE);
    }

    #[test]
    fn each_invalid_value_is_named() {
        let cases = [
            (
                with("account_id", json!("abc")),
                r#"account_id must be a positive integer, got "abc""#,
            ),
            (
                with("account_id", json!(0)),
                "account_id must be a positive integer, got 0",
            ),
            (
                with("account_id", json!(-3)),
                "account_id must be a positive integer, got -3",
            ),
            (
                with("account_id", json!(1.5)),
                "account_id must be a positive integer, got 1.5",
            ),
            (
                with("job_id", json!("12a")),
                r#"job_id must be a positive integer, got "12a""#,
            ),
            (
                with("job_id", json!(true)),
                "job_id must be a positive integer, got true",
            ),
            (
                with("job_id", json!("")),
                r#"job_id must be a positive integer, got """#,
            ),
            (
                with("#api_key", json!("")),
                "#api_key must be a non-empty token",
            ),
            (with("#api_key", json!(42)), "#api_key must be a string"),
            (with("cause", json!("")), "cause must not be empty"),
            (with("cause", json!(7)), "cause must be a string, got 7"),
            (
                with("cause", json!("x".repeat(256))),
                "cause must be at most 255 characters, got 256",
            ),
            (
                with("wait_for_result", json!("yes")),
                r#"wait_for_result must be true or false, got "yes""#,
            ),
            (
                with("max_wait_time", json!(0)),
                "max_wait_time must be a number of minutes greater than 0",
            ),
            (with("max_wait_time", json!(-1)), "got -1"),
            (with("max_wait_time", json!("soon")), r#"got "soon""#),
            (with("max_wait_time", json!(1e300)), "max_wait_time must be"),
            (
                with("dbt_cloud_url", json!("http://cloud.getdbt.com")),
                "must use https://",
            ),
            (
                with("dbt_cloud_url", json!(5)),
                "dbt_cloud_url must be a string, got 5",
            ),
            (
                with("ignore_artifacts", json!("false")),
                "ignore_artifacts must be true or false",
            ),
            (
                with("debug", json!(1)),
                "debug must be true or false, got 1",
            ),
            (
                with("max_wait_tme", json!(5)),
                "unknown key \"max_wait_tme\"",
            ),
        ];
        for (parameters, expected) in cases {
            let error = parse_parameters(parameters.clone()).unwrap_err();
            assert!(is_user_error(&error), "{parameters}");
            let message = error.to_string();
            assert!(message.contains(expected), "{parameters}: {message}");
        }
    }

    #[test]
    fn required_keys() {
        for key in ["account_id", "job_id", "#api_key"] {
            let mut parameters = minimal();
            parameters.as_object_mut().unwrap().remove(key);
            let message = parse_parameters(parameters).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("{key} is required")),
                "{message}"
            );
        }
    }

    #[test]
    fn malformed_files() {
        for (text, expected) in [
            ("", "config.json is not valid JSON"),
            ("{\"parameters\": ", "config.json is not valid JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "has no \"parameters\""),
            (
                "{\"parameters\": []}",
                "\"parameters\" must be a JSON object",
            ),
        ] {
            let error = parse(text.as_bytes()).unwrap_err();
            assert!(is_user_error(&error));
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_token_never_appears_in_errors_or_debug() {
        let secret = "dbtc_do_not_print_me";
        let config = parse_parameters(with("#api_key", json!(secret))).unwrap();
        assert!(!format!("{config:?}").contains(secret));
        let error = parse_parameters(with("#api_key", json!([secret]))).unwrap_err();
        assert!(!format!("{error:?} {error}").contains(secret));
    }
}
