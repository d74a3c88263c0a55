//! The UI's synchronous actions. Each answers within seconds with exactly one JSON document on
//! stdout and triggers nothing; a failure is exit 1 with the message on stderr, like the job's.

use std::time::Duration;

use anyhow::Result;
use serde_json::{json, Value};

use crate::component::resolve;
use crate::config::JobRef;
use crate::dbt_cloud::{address_allowed, address_refused, AccountId, DbtCloud, RefusalKind, Run};
use crate::error::UserError;

/// How many runs the validation button shows.
const RECENT_RUNS: usize = 10;

/// Each thing the job needs, checked in order, so that a failure names the one step that failed
/// and what to do about it: dbt_cloud_url answers as dbt Cloud's API, the token is valid, the
/// account is visible to it (these three with one request, told apart by how it is refused), and,
/// when a job is given, the job is visible and its runs can be read. Success is
/// `{"status": "success", "message": ...}` naming what was reached, and `retiring` after it: the
/// warning that `dbt_cloud_url` will stop working.
pub fn test_connection(
    client: &DbtCloud,
    account: AccountId,
    job: Option<&JobRef>,
    retiring: Option<String>,
) -> Result<Value> {
    let success = |message: String| {
        let message = match &retiring {
            Some(warning) => format!("{message} Warning: {warning}"),
            None => message,
        };
        json!({"status": "success", "message": message})
    };
    let steps = Steps(if job.is_some() { 5 } else { 3 });
    if let Err(error) = client.list_jobs_page(1) {
        return Err(steps.first_three(client, error, account));
    }
    let Some(job) = job else {
        return Ok(success(format!(
            "Connected: the token reaches account {account}. No job was given to check."
        )));
    };
    let job = resolve::job_id(client, job, LIST_JOBS_BUDGET)
        .map_err(|error| steps.failed(4, "the job", error, "."))?;
    // Advice on ids and permissions only where dbt Cloud refused: a timeout or a 503 is dbt
    // Cloud's, and its own message says so.
    client.check_job(job).map_err(|error| {
        let advice = match RefusalKind::of(&error) {
            Some(RefusalKind::Forbidden | RefusalKind::NotFound) => format!(
                ". job_id {job} is wrong, or the token's permissions do not cover the job's \
                 project."
            ),
            _ => ".".to_owned(),
        };
        steps.failed(4, "the job", error, &advice)
    })?;
    client.recent_runs(job, 1).map_err(|error| {
        let advice = match RefusalKind::of(&error) {
            Some(RefusalKind::TokenRefused | RefusalKind::Forbidden | RefusalKind::NotFound) => {
                ". Give the token a permission that can read and trigger runs (Job Runner, or \
                 Job Admin)."
            }
            _ => ".",
        };
        steps.failed(5, "reading the job's runs", error, advice)
    })?;
    Ok(success(format!(
        "Connected: the token reaches account {account}, job {job} and its runs."
    )))
}

/// The connection test's steps, of which there are this many.
struct Steps(usize);

impl Steps {
    fn failed(
        &self,
        number: usize,
        what: &str,
        error: anyhow::Error,
        advice: &str,
    ) -> anyhow::Error {
        UserError::new(format!(
            "Step {number} of {}, {what}, failed: {}{advice}",
            self.0,
            format!("{error:#}").trim_end_matches('.'),
        ))
        .into()
    }

    /// The URL, the token and the account share one request: how it was refused tells which. A
    /// refused token (401 or 403) may be an IP allow-list's refusal of this address instead: one
    /// request without the token tells them apart.
    fn first_three(
        &self,
        client: &DbtCloud,
        error: anyhow::Error,
        account: AccountId,
    ) -> anyhow::Error {
        match (RefusalKind::of(&error), client.address_refused(&error)) {
            (_, Some(true)) => UserError::new(format!(
                "Step 3 of {}, the account, failed: {}",
                self.0,
                address_refused(account)
            ))
            .into(),
            // A 401 says what is refused already (the token, or the account's plan).
            (Some(RefusalKind::Forbidden), Some(false)) => self.failed(
                2,
                "the token",
                error,
                &format!(". {}.", address_allowed(account)),
            ),
            (Some(RefusalKind::TokenRefused), _) => self.failed(2, "the token", error, "."),
            (Some(RefusalKind::Forbidden), None) => self.failed(
                3,
                "the account",
                error,
                &format!(
                    ". If account {account} restricts API access by IP address, allow Keboola's \
                 outgoing addresses in its IP allow-list."
                ),
            ),
            (Some(RefusalKind::NotFound), None) => self.failed(
                3,
                "the account",
                error,
                &format!(
                ". account_id {account} is wrong, or the token is not one of that account's: the \
                 account id is the number after /deploy/ in dbt Cloud's URLs."
            ),
            ),
            _ => self.failed(1, "dbt_cloud_url answering as dbt Cloud's API", error, "."),
        }
    }
}

/// How long the job list may page: the UI gives up on an action after about 30 s.
const LIST_JOBS_BUDGET: Duration = Duration::from_secs(20);

/// The Job ID dropdown: `[{"value": "123", "label": "Nightly build (123) · Production"}]`, by
/// label.
/// When the list stopped early, a last option says so (its empty value is not a job id).
pub fn list_jobs(client: &DbtCloud) -> Result<Value> {
    let (jobs, note) = client.list_jobs(LIST_JOBS_BUDGET)?;
    let mut options: Vec<(String, Value)> = jobs
        .iter()
        .map(|job| {
            let id = job.id.0;
            let name = job.name.as_deref().unwrap_or("(unnamed)");
            let environment = job.environment.as_ref().and_then(|e| e.name.as_deref());
            let label = match environment {
                Some(environment) => format!("{name} ({id}) · {environment}"),
                None => format!("{name} ({id})"),
            };
            // The Job ID field is a string, as Keboola's dropdowns are.
            (label, json!(id.to_string()))
        })
        .collect();
    options.sort_by(|a, b| {
        a.0.to_lowercase()
            .cmp(&b.0.to_lowercase())
            .then_with(|| a.0.cmp(&b.0))
    });
    options.extend(note.map(|note| (format!("({note})"), json!(""))));
    Ok(Value::Array(
        options
            .into_iter()
            .map(|(label, value)| json!({ "value": value, "label": label }))
            .collect(),
    ))
}

/// The job's last runs as a markdown table, for a validation button.
pub fn list_recent_runs(client: &DbtCloud, job: &JobRef) -> Result<Value> {
    let job = resolve::job_id(client, job, LIST_JOBS_BUDGET)?;
    let runs = client.recent_runs(job, RECENT_RUNS)?;
    let message = if runs.is_empty() {
        format!("Job {job} has no runs yet.")
    } else {
        let mut table =
            String::from("| Run | Status | Started | Duration | Cause |\n|---|---|---|---|---|\n");
        for run in &runs {
            table.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                run_link(run),
                run.status,
                cell(run.field("started_at")),
                cell(run.field("duration")),
                cell(run.field("trigger").and_then(|t| t.get("cause")))
            ));
        }
        table
    };
    Ok(json!({ "message": message, "type": "table", "status": "success" }))
}

/// The run's id, linked to its page when dbt Cloud sent an https link that cannot break out of
/// the markdown (a `javascript:` or `data:` link is shown as text, not as a link).
fn run_link(run: &Run) -> String {
    let safe = |href: &&String| {
        href.starts_with("https://")
            && !href
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "()<>[]\"'`".contains(c))
    };
    match run.href.as_ref().filter(safe) {
        Some(href) => format!("[{}]({href})", run.id),
        None => run.id.to_string(),
    }
}

/// A markdown table cell: text as text. Markdown's own characters are escaped, so that dbt
/// Cloud's strings cannot make links, images, HTML or new rows. A token in it is masked first:
/// escaped (`dbtc\_...`), the document's mask would no longer find it.
fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return "–".to_owned(),
        Some(Value::String(s)) => crate::secret::mask(s).into_owned(),
        Some(other) => crate::secret::mask(&other.to_string()).into_owned(),
    };
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Links and images need brackets, HTML needs angle brackets, emphasis and code
            // need these marks; a pipe would end the cell.
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c if c.is_control() => escaped.push(' '),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cells_stay_text() {
        let hostile = json!("[click](javascript:alert(1)) <img src=x> a|b\nnew row");
        assert_eq!(
            cell(Some(&hostile)),
            "\\[click\\](javascript:alert(1)) \\<img src=x\\> a\\|b new row"
        );
        assert_eq!(cell(None), "–");
    }

    #[test]
    fn only_plain_https_links_are_links() {
        let run = |href: &str| {
            serde_json::from_value::<Run>(json!({"id": 7, "status": 10, "href": href})).unwrap()
        };
        assert_eq!(
            run_link(&run("https://x.dbt.com/runs/7/")),
            "[7](https://x.dbt.com/runs/7/)"
        );
        for hostile in [
            "javascript:alert(1)",
            "https://x/a) [y](javascript:z",
            "http://x/",
        ] {
            assert_eq!(run_link(&run(hostile)), "7", "{hostile}");
        }
    }
}
