//! What Keboola's runner tells the component about the job it runs, through its environment
//! (`KBC_RUNID` the job, `KBC_PROJECTID`, `KBC_CONFIGID`, `KBC_STACKID` the stack's host, and
//! `KBC_PROJECTNAME` when token details are forwarded), and the trigger cause that names that job:
//! a dbt Cloud user looking at a run can then find the Keboola job, flow and project behind it.

use crate::text::{printable, truncate};

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
    Some(match shown.chars().count() > ECHOED_CHARS {
        true => format!("{}…", truncate(&shown, ECHOED_CHARS)),
        false => shown.into_owned(),
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
