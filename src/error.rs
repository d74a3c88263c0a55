//! Who is at fault when the job does not succeed, which decides the exit code.
//!
//! Keboola shows the text of exit code 1 to the user and hides anything else behind a generic
//! "application error". So every failure the user can act on (a bad config, a refused token, a
//! dbt run that failed, dbt Cloud being unreachable) is a [`UserError`]; anything else travels as a
//! plain `anyhow::Error` and means a fault of ours (exit 2).

use std::fmt;

use crate::termination::Terminated;

#[derive(Debug)]
pub struct UserError {
    message: String,
    /// The HTTP status dbt Cloud refused with, when it did: some callers expect a 404 (a failed
    /// run may have no artifacts), and the connection test names the step that failed by it.
    status: Option<u16>,
    /// Lines printed after the message, each on its own (the failure digest).
    details: Vec<String>,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> UserError {
        UserError {
            message: message.into(),
            status: None,
            details: Vec::new(),
        }
    }

    /// dbt Cloud refused the request with `status`.
    pub fn refused(status: u16, message: impl Into<String>) -> UserError {
        UserError {
            status: Some(status),
            ..UserError::new(message)
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

/// The HTTP status dbt Cloud refused with, when the error is such a refusal.
pub fn refused_status(error: &anyhow::Error) -> Option<u16> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<UserError>()?.status)
}

/// True when dbt Cloud answered that the thing asked for does not exist (HTTP 404).
pub fn is_not_found(error: &anyhow::Error) -> bool {
    refused_status(error) == Some(404)
}

/// True when dbt Cloud refused the request as invalid (HTTP 400), with its reasons.
pub fn is_refused_as_invalid(error: &anyhow::Error) -> bool {
    refused_status(error) == Some(400)
}

/// True when the error, or any error it wraps, is the user's to fix, or says that the platform
/// stopped us: both are exit 1, whose message Keboola shows.
pub fn is_user_error(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.is::<UserError>() || cause.is::<Terminated>())
}
