//! dbt Cloud: its ids, its Run, its URL, and the HTTP client. Nothing else in the crate talks HTTP.

pub(crate) mod client;
mod ids;
mod rate_limit;
mod run;
mod url;

pub use client::{Budget, DbtCloud};
pub use ids::{AccountId, JobId, RunId};
pub use run::{Run, RunStatus, RunStep};
pub use url::{BaseUrl, DEFAULT_BASE_URL};
