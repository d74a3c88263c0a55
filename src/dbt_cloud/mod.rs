//! dbt Cloud: its ids, its Run, its URL, and the HTTP client. Nothing else in the crate talks HTTP.

mod answer;
mod bounded;
pub(crate) mod client;
mod download;
mod ids;
mod rate_limit;
mod refusal;
mod run;
mod url;

pub use client::{Budget, DbtCloud, JobBound, JobSummary, Phase, Start};
pub use download::{ArtifactRef, Destination, DownloadLimits, IfMissing};
pub use rate_limit::Throttling;

use crate::secret::ApiToken;

/// Where dbt Cloud is and who we are there.
#[derive(Debug, Clone)]
pub struct Connection {
    pub dbt_cloud_url: BaseUrl,
    pub account_id: AccountId,
    pub api_token: ApiToken,
}
pub use ids::{AccountId, JobId, RunId};
pub use run::{Field, FieldType, Run, RunStatus, RunStep, FIELD_BUDGET, RUN_FIELDS};
pub use url::{retirement, BaseUrl, PageIds, DEFAULT_BASE_URL, RETIREMENT_DAY};
