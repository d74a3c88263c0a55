//! Which job, when the config names it: every job of the account, matched exactly by name and
//! narrowed by environment and project. No match, or more than one, is the user's to fix, with
//! what the account has.

use std::time::Duration;

use anyhow::Result;
use log::info;

use crate::config::{EnvironmentType, JobName, JobRef};
use crate::dbt_cloud::{DbtCloud, JobId, JobSummary};
use crate::error::{user_error, UserError};

/// How long the account's jobs may page while a job is looked up by name, in a job.
pub const LIST_BUDGET: Duration = Duration::from_secs(120);
/// Names or candidates a message lists.
const LISTED: usize = 5;

/// The job's id: the one given, or the one job of the account `job`'s name and narrowing match,
/// looking through the account's jobs for at most `budget`.
pub fn job_id(client: &DbtCloud, job: &JobRef, budget: Duration) -> Result<JobId> {
    let wanted = match job {
        JobRef::Id(id) => return Ok(*id),
        JobRef::Name(wanted) => wanted,
    };
    let (jobs, incomplete) = client.list_jobs(budget)?;
    if let Some(note) = incomplete {
        return user_error(format!(
            "The job named {:?} cannot be looked up: {note}. Give job_id instead.",
            wanted.name
        ));
    }
    let found = matching(&jobs, wanted);
    match found.as_slice() {
        [job] => {
            let id = JobId::new(job.id.0).ok_or_else(|| UserError::new("dbt Cloud sent job 0"))?;
            info!(
                "The job named {:?} is job {id} ({})",
                wanted.name,
                place(job)
            );
            Ok(id)
        }
        [] => user_error(not_found(&jobs, wanted)),
        several => {
            let listed: Vec<String> = several
                .iter()
                .take(LISTED)
                .map(|job| format!("{} ({})", job.id.0, place(job)))
                .collect();
            user_error(format!(
                "{} jobs are named {:?}{}: {}. Narrow the name down with environment_name, \
                 environment_type or project_id, or give job_id; nothing was triggered.",
                several.len(),
                wanted.name,
                narrowed(wanted),
                listed.join(", ")
            ))
        }
    }
}

/// The same name, but for spaces around it, which neither a form nor the dbt Cloud UI shows.
fn named(job: &JobSummary, wanted: &JobName) -> bool {
    job.name.as_deref().map(str::trim) == Some(wanted.name.trim())
}

fn matching<'a>(jobs: &'a [JobSummary], wanted: &JobName) -> Vec<&'a JobSummary> {
    jobs.iter()
        .filter(|job| named(job, wanted))
        .filter(|job| {
            wanted.environment_name.as_deref().is_none_or(|name| {
                job.environment
                    .as_ref()
                    .and_then(|e| e.name.as_deref())
                    .map(str::trim)
                    == Some(name.trim())
            })
        })
        .filter(|job| {
            wanted
                .environment_type
                .is_none_or(|kind| environment_type(job) == Some(kind))
        })
        .filter(|job| {
            wanted
                .project_id
                .is_none_or(|project| job.project_id.map(|p| p.0) == Some(project))
        })
        .collect()
}

/// `production` or `staging` from the environment's deployment type, `development` from its type.
fn environment_type(job: &JobSummary) -> Option<EnvironmentType> {
    let environment = job.environment.as_ref()?;
    match (
        environment.kind.as_deref(),
        environment.deployment_type.as_deref(),
    ) {
        (Some("development"), _) => Some(EnvironmentType::Development),
        (_, Some("production")) => Some(EnvironmentType::Production),
        (_, Some("staging")) => Some(EnvironmentType::Staging),
        _ => None,
    }
}

/// `environment Production, project 270542`.
fn place(job: &JobSummary) -> String {
    let environment = job
        .environment
        .as_ref()
        .and_then(|e| e.name.as_deref())
        .unwrap_or("no environment");
    let project = job
        .project_id
        .map_or("no project".to_owned(), |p| format!("project {}", p.0));
    format!("environment {environment}, {project}")
}

fn narrowed(wanted: &JobName) -> String {
    let mut by = Vec::new();
    if let Some(name) = &wanted.environment_name {
        by.push(format!("environment {name:?}"));
    }
    if let Some(kind) = wanted.environment_type {
        by.push(format!("environment type {}", kind.name()));
    }
    if let Some(project) = wanted.project_id {
        by.push(format!("project {project}"));
    }
    if by.is_empty() {
        String::new()
    } else {
        format!(" in {}", by.join(", "))
    }
}

/// No job has the name (where it was looked for): the jobs of that name elsewhere, when the
/// narrowing is what left them out, else the closest names the account has.
fn not_found(jobs: &[JobSummary], wanted: &JobName) -> String {
    let elsewhere: Vec<String> = jobs
        .iter()
        .filter(|job| named(job, wanted))
        .take(LISTED)
        .map(|job| format!("{} ({})", job.id.0, place(job)))
        .collect();
    if !elsewhere.is_empty() {
        return format!(
            "No job named {:?} is{}; jobs of that name are {}. Change environment_name, \
             environment_type or project_id, or give job_id; nothing was triggered.",
            wanted.name.trim(),
            narrowed(wanted),
            elsewhere.join(", ")
        );
    }
    let mut names: Vec<(f64, &str)> = jobs
        .iter()
        .filter_map(|job| job.name.as_deref())
        .map(|name| (strsim::jaro_winkler(&wanted.name, name), name))
        .collect();
    names.sort_by(|a, b| b.0.total_cmp(&a.0));
    names.dedup_by(|a, b| a.1 == b.1);
    let closest: Vec<String> = names
        .iter()
        .take(LISTED)
        .map(|(_, name)| format!("{name:?}"))
        .collect();
    let among = if closest.is_empty() {
        "the account has no jobs".to_owned()
    } else {
        format!("the closest names are {}", closest.join(", "))
    };
    format!(
        "No job of the account is named {:?}{} (names must match exactly): {among}. Nothing was \
         triggered.",
        wanted.name,
        narrowed(wanted)
    )
}
