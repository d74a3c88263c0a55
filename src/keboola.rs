//! What Keboola's runner tells the component about the job it runs, through its environment
//! (`KBC_RUNID` the job, `KBC_PROJECTID`, `KBC_CONFIGID`, `KBC_STACKID` the stack's host, and
//! `KBC_PROJECTNAME` when token details are forwarded), and the trigger cause that names that job:
//! a dbt Cloud user looking at a run can then find the Keboola job, flow and project behind it.

use std::time::Duration;

use crate::text::{counted, minutes, printable, truncate};

/// The component's `processTimeout`, in seconds, as this repository deploys it to the Developer
/// Portal (`component_config/processTimeout`): when Keboola's runner kills the job with SIGKILL,
/// counted from its start. Read when the binary is built, so that the two cannot disagree; a file
/// that is not a number of seconds fails the build.
const DEPLOYED_TIMEOUT: Duration =
    Duration::from_secs(seconds(include_str!("../component_config/processTimeout")));

/// Decimal seconds, then at most a line break.
const fn seconds(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut value: u64 = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        value = value * 10 + (bytes[i] - b'0') as u64;
        i += 1;
    }
    assert!(
        i > 0,
        "component_config/processTimeout is not a number of seconds"
    );
    while i < bytes.len() {
        assert!(
            bytes[i] == b'\n' || bytes[i] == b'\r',
            "component_config/processTimeout is not a number of seconds"
        );
        i += 1;
    }
    value
}

/// When Keboola kills the job, counted from its start: SIGKILL, with no warning, so the job must
/// be done before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLimit {
    /// The component's `processTimeout`, which this repository deploys: the limit in Keboola. A
    /// configuration's own timeout (`runtime.process_timeout`) is never passed to the container.
    Deployed(Duration),
    /// config.json's `runtime.process_timeout`: only a local run passes one.
    Local(Duration),
}

impl JobLimit {
    /// config.json's `runtime.process_timeout` when it gives one (a local run), else the
    /// deployed limit.
    pub fn of(local: Option<Duration>) -> JobLimit {
        match local {
            Some(limit) => JobLimit::Local(limit),
            None => JobLimit::Deployed(DEPLOYED_TIMEOUT),
        }
    }

    pub fn duration(self) -> Duration {
        match self {
            JobLimit::Deployed(limit) | JobLimit::Local(limit) => limit,
        }
    }
}

impl std::fmt::Display for JobLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobLimit::Deployed(limit) => write!(
                f,
                "Keboola's time limit on the job (the component's processTimeout, {})",
                counted(minutes(*limit), "minute", "minutes")
            ),
            JobLimit::Local(limit) => write!(
                f,
                "the job's time limit config.json gives (runtime.process_timeout, {})",
                counted(minutes(*limit), "minute", "minutes")
            ),
        }
    }
}

/// dbt Cloud keeps at most this many characters of a cause.
const MAX_CAUSE_CHARS: usize = 255;
/// The cause outside Keboola, and of a job Keboola says nothing about.
const PLAIN_CAUSE: &str = "Triggered from Keboola";
/// A variable is echoed at most this long: ids are short, a name may not be.
const ECHOED_CHARS: usize = 100;

/// The Keboola job running this component, as far as its environment says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeboolaJob {
    pub job_id: Option<String>,
    pub project_id: Option<String>,
    pub project_name: Option<String>,
    pub config_id: Option<String>,
    /// The stack's host, e.g. `connection.keboola.com`.
    pub stack: Option<String>,
}

impl KeboolaJob {
    /// The cause to send: the configured one as it is, else one naming this job, its project,
    /// its configuration and its page, within dbt Cloud's 255 characters (the link goes first,
    /// then the project's name). Outside Keboola: `Triggered from Keboola`.
    pub fn cause(&self, configured: Option<&str>) -> String {
        if let Some(cause) = configured {
            return cause.to_owned();
        }
        let Some(job) = clean(self.job_id.as_deref()) else {
            return PLAIN_CAUSE.to_owned();
        };
        let project = clean(self.project_id.as_deref());
        let name = clean(self.project_name.as_deref());
        let config = clean(self.config_id.as_deref());
        let link = self.link();
        let cause = |name: Option<&str>, link: Option<&str>| {
            let mut cause = format!("Triggered from Keboola: job {job}");
            match (&project, name) {
                (Some(project), Some(name)) => {
                    cause.push_str(&format!(" of project {project} ({name})"))
                }
                (Some(project), None) => cause.push_str(&format!(" of project {project}")),
                (None, Some(name)) => cause.push_str(&format!(" of project {name}")),
                (None, None) => {}
            }
            if let Some(config) = &config {
                cause.push_str(&format!(", configuration {config}"));
            }
            if let Some(link) = link {
                cause.push_str(&format!(": {link}"));
            }
            cause
        };
        [
            cause(name.as_deref(), link.as_deref()),
            cause(name.as_deref(), None),
            cause(None, None),
        ]
        .into_iter()
        .find(|cause| cause.chars().count() <= MAX_CAUSE_CHARS)
        .unwrap_or_else(|| truncate(&cause(None, None), MAX_CAUSE_CHARS).to_owned())
    }

    /// `https://<stack>/admin/projects/<project>/queue/<job>`, when every part is what it should
    /// be: a host name, and ids of digits.
    fn link(&self) -> Option<String> {
        let stack = self.stack.as_deref()?.trim();
        let host = !stack.is_empty()
            && stack
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        let digits = |id: Option<&str>| {
            id.map(str::trim)
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                .map(str::to_owned)
        };
        let (project, job) = (
            digits(self.project_id.as_deref())?,
            digits(self.job_id.as_deref())?,
        );
        host.then(|| format!("https://{stack}/admin/projects/{project}/queue/{job}"))
    }
}

/// A variable as the cause shows it: trimmed, on one line, not too long; `None` when empty.
fn clean(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    if value.is_empty() {
        return None;
    }
    let shown = printable(value);
    Some(if shown.chars().count() > ECHOED_CHARS {
        format!("{}…", truncate(&shown, ECHOED_CHARS))
    } else {
        shown.into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> KeboolaJob {
        KeboolaJob {
            job_id: Some("1234567890".into()),
            project_id: Some("4567".into()),
            project_name: Some("Analytics".into()),
            config_id: Some("998877".into()),
            stack: Some("connection.keboola.com".into()),
        }
    }

    #[test]
    fn the_deployed_limit_is_the_portal_files_and_a_local_one_wins() {
        let file = include_str!("../component_config/processTimeout");
        assert_eq!(
            JobLimit::of(None).duration().as_secs(),
            file.trim().parse::<u64>().unwrap()
        );
        assert_eq!(JobLimit::of(None).duration(), Duration::from_secs(86_400));
        assert_eq!(
            JobLimit::of(Some(Duration::from_secs(600))),
            JobLimit::Local(Duration::from_secs(600))
        );
        assert_eq!(
            JobLimit::of(None).to_string(),
            "Keboola's time limit on the job (the component's processTimeout, 1440 minutes)"
        );
        assert_eq!(seconds("3600\n"), 3600);
    }

    #[test]
    fn the_cause_names_the_job_its_project_configuration_and_page() {
        assert_eq!(
            job().cause(None),
            "Triggered from Keboola: job 1234567890 of project 4567 (Analytics), configuration 998877: https://connection.keboola.com/admin/projects/4567/queue/1234567890"
        );
        let no_stack = KeboolaJob {
            stack: None,
            project_name: None,
            ..job()
        };
        assert_eq!(
            no_stack.cause(None),
            "Triggered from Keboola: job 1234567890 of project 4567, configuration 998877"
        );
        assert_eq!(
            job().cause(Some("nightly")),
            "nightly",
            "a configured cause as is"
        );
        assert_eq!(
            KeboolaJob::default().cause(None),
            "Triggered from Keboola",
            "outside Keboola"
        );
    }

    #[test]
    fn long_or_hostile_variables_keep_the_cause_printable_and_within_255() {
        let long = KeboolaJob {
            project_name: Some("N".repeat(1_000)),
            config_id: Some("1234567890123".into()),
            ..job()
        };
        let cause = long.cause(None);
        assert!(cause.chars().count() <= 255, "{cause}");
        assert!(
            cause.contains("(NNN"),
            "the name, cut, before the link is dropped: {cause}"
        );
        assert!(!cause.contains("https://"), "the link goes first: {cause}");
        let hostile = KeboolaJob {
            project_name: Some("Evil\nINFO  Done\u{1b}[2K".into()),
            stack: Some("evil.com/x?y".into()),
            ..job()
        };
        let cause = hostile.cause(None);
        assert!(!cause.chars().any(char::is_control), "{cause}");
        assert!(
            !cause.contains("https://"),
            "no link to a host that is not one: {cause}"
        );
        let everything = KeboolaJob {
            job_id: Some("9".repeat(1_000)),
            project_id: Some("8".repeat(1_000)),
            project_name: Some("N".repeat(1_000)),
            config_id: Some("7".repeat(1_000)),
            stack: Some("s".repeat(1_000)),
        };
        let cause = everything.cause(None);
        assert!(cause.chars().count() <= 255, "{}", cause.chars().count());
        assert!(
            cause.starts_with("Triggered from Keboola: job 999"),
            "{cause}"
        );
    }
}
