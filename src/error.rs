//! Who is at fault when the job does not succeed, which decides the exit code ([`exit_code`]).
//!
//! Keboola shows the text of exit code 1 to the user and hides anything else behind a generic
//! "application error", shown to nobody but the component's authors. So exit 2 is kept for a
//! broken invariant of our own, marked as a [`Bug`] where the code knows it; everything else is
//! exit 1, whose message the user sees: a bad config, a refused token, a dbt run that failed,
//! dbt Cloud unreachable, and an answer of dbt Cloud's we cannot read (Keboola's publish checklist:
//! a misbehaving external service is a user error). Messages the user can act on are worded as a
//! [`UserError`].

use std::fmt;

use crate::termination::Terminated;

#[derive(Debug)]
pub struct UserError {
    message: String,
    /// Lines printed after the message, each on its own (the failure digest).
    details: Vec<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError {
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// The message, and lines that follow it on their own.
    pub fn with_details(message: impl Into<String>, details: Vec<String>) -> UserError {
        UserError {
            details,
            ..UserError::new(message)
        }
    }
}

/// The lines that follow the error's message, when it carries any.
pub fn details(error: &anyhow::Error) -> &[String] {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<UserError>())
        .map_or(&[], |e| e.details.as_slice())
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// Shorthand for `Err(UserError::new(..).into())`.
pub fn user_error<T>(message: impl Into<String>) -> anyhow::Result<T> {
    Err(UserError::new(message).into())
}

/// True when the error, or any error it wraps, is worded for the user, or says that the platform
/// stopped us.
pub fn is_user_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<UserError>() || cause.is::<Terminated>())
}

/// A broken invariant of our own: the one kind of failure that is exit 2.
#[derive(Debug)]
pub struct Bug(pub String);

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Bug {}

/// The exit code of a failed job: 2 for a [`Bug`] of ours (unless a signal stopped us, which is
/// the user's platform at work), 1 for everything else.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let bug = error.chain().any(|cause| cause.is::<Bug>());
    let stopped = error.chain().any(|cause| cause.is::<Terminated>());
    if bug && !stopped {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_bugs_are_exit_2() {
        let cases: [(anyhow::Error, u8); 6] = [
            (UserError::new("bad config").into(), 1),
            (anyhow::anyhow!("dbt Cloud sent something odd"), 1),
            (
                anyhow::Error::new(Bug("a row of 3 cells for 4 columns".into())),
                2,
            ),
            (
                anyhow::Error::new(Bug("x".into())).context("dbt Cloud run 7 was started"),
                2,
            ),
            (Terminated { signal: "SIGTERM" }.into(), 1),
            (
                anyhow::Error::new(Terminated { signal: "SIGTERM" }).context("waiting"),
                1,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(exit_code(&error), code, "{error:#}");
        }
    }
}
