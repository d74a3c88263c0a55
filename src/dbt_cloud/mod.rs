//! dbt Cloud: its ids, its Run, its URL, and the HTTP client. Nothing else in the crate talks HTTP.

mod answer;
mod bounded;
pub(crate) mod client;
mod download;
mod ids;
mod plan;
mod rate_limit;
mod refusal;
mod run;
mod share;
mod transport;
mod trigger;
mod url;

pub use client::{DbtCloud, JobSummary};
pub use download::{ArtifactRef, Destination, DownloadLimits, IfMissing};
pub use plan::{Budget, JobBound, Phase, Purpose};
pub use rate_limit::{Throttling, Usage};
pub use refusal::{address_allowed, address_refused, RefusalKind, Refused};
pub use share::Share;
pub use trigger::{NotNew, Start};

use crate::secret::ApiToken;

/// Where dbt Cloud is and who we are there.
#[derive(Debug, Clone)]
pub struct Connection {
    pub dbt_cloud_url: BaseUrl,
    pub account_id: AccountId,
    pub api_token: ApiToken,
}
pub use ids::{AccountId, JobId, RunId};
pub use run::{FieldType, Run, RunStatus, RunStep, RUN_FIELDS};
pub use url::{BaseUrl, PageIds, DEFAULT_BASE_URL, RETIREMENT_DAY};
