//! This run's share of the account's 5,000 requests a minute, sized by what the account is
//! doing. Most runs are alone on their account, and a share built for eight at once makes a
//! large project's artifacts take minutes instead of seconds; so before the downloads, and about
//! once a minute while they go on, one request lists the account's newest runs, and the share
//! follows how many others are busy or ended lately:
//!
//! - none besides ours: half of the account ([`ALONE`]), leaving the other half to whatever
//!   starts meanwhile and to the account's other integrations;
//! - one or two: a quarter ([`BESIDE_A_FEW`]), so that three such runs stay under the limit;
//! - more: [`CROWDED`], with which eight runs at once stay under it.
//!
//! A run counts while it is in progress and for [`RECENT`] after it ended: a run that ended may
//! still be downloading its artifacts, and the common large project (2,400 files) takes under
//! five minutes to download at the smallest share. A run downloading for longer than that is
//! never left alone with a newcomer's half: it looks again within a minute, sees the newcomer and
//! keeps to a quarter, so that the two stay under the limit (2,500 + 1,250). A longer window
//! would slow a flow's configurations that run one after another for nothing. A configured
//! `max_requests_per_minute` is the share, and nothing is listed; an answer that cannot be
//! trusted (a failure, a 429, garbage, runs of another account) leaves the share at
//! [`CROWDED`], with one warning.

use std::time::Duration;

use anyhow::Result;
use log::warn;
use reqwest::Method;

use super::client::DbtCloud;
use super::ids::RunId;
use super::plan::Budget;
use super::run::Runs;

/// Half of the account's 5,000 a minute.
const ALONE: u32 = 2_500;
/// A quarter of it.
const BESIDE_A_FEW: u32 = 1_250;
/// Eight runs at once stay under the account's limit at this, with 600 to spare.
pub const CROWDED: u32 = 550;
/// A run that ended this recently may still be downloading its artifacts.
const RECENT: Duration = Duration::from_secs(5 * 60);
/// The newest runs listed: more than two busy besides ours is all that matters.
const LISTED: usize = 100;

/// The share of the account's requests a minute, and why, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub per_minute: u32,
    pub why: String,
}

impl DbtCloud {
    /// The share sized by the account's other runs busy now or lately (or as configured), set
    /// on the client's rate limiter.
    pub fn size_share(&self, ours: RunId) -> Share {
        let share = match self.configured_share {
            Some(per_minute) => Share {
                per_minute,
                why: "max_requests_per_minute".to_owned(),
            },
            None => match self.others_busy(ours) {
                Ok(others) => by_others(others),
                Err(error) => {
                    if self.say_once("share") {
                        warn!(
                            "The account's runs could not be listed to size this run's share of \
                             its requests ({error:#}); keeping to {CROWDED} a minute"
                        );
                    }
                    Share {
                        per_minute: CROWDED,
                        why: "the account's runs could not be listed".to_owned(),
                    }
                }
            },
        };
        self.wire.set_share(share.per_minute);
        share
    }

    /// How many of the account's newest runs, ours aside, are in progress or ended within
    /// [`RECENT`] (on dbt Cloud's clock); an answer listing another account's runs is not
    /// trusted.
    fn others_busy(&self, ours: RunId) -> Result<usize> {
        let mut url = self.wire.api_url(&["runs", ""]);
        url.query_pairs_mut()
            .append_pair("order_by", "-id")
            .append_pair("limit", &LISTED.to_string());
        let Runs(runs) = self
            .wire
            .call(Method::GET, url, "the account's runs", Budget::Once)?;
        let account = self.wire.account().get();
        if let Some(stray) = runs.iter().find(|run| run.account != Some(account)) {
            anyhow::bail!(
                "dbt Cloud listed run {} of account {} among account {account}'s",
                stray.id,
                stray
                    .account
                    .map_or("unknown".to_owned(), |of| of.to_string())
            );
        }
        let now = self.now_on_dbt_cloud();
        let recent = chrono::Duration::from_std(RECENT).unwrap_or_default();
        Ok(runs
            .iter()
            .filter(|run| run.id != ours)
            .filter(|run| {
                !run.status.is_final()
                    || run
                        .timestamp("finished_at")
                        .is_none_or(|finished| now - finished < recent)
            })
            .count())
    }
}

fn by_others(others: usize) -> Share {
    let minutes = RECENT.as_secs() / 60;
    match others {
        0 => Share {
            per_minute: ALONE,
            why: "no other run of the account is busy".to_owned(),
        },
        1 => Share {
            per_minute: BESIDE_A_FEW,
            why: format!(
                "1 other run of the account is busy or ended in the last {minutes} minutes"
            ),
        },
        2 => Share {
            per_minute: BESIDE_A_FEW,
            why: format!(
                "2 other runs of the account are busy or ended in the last {minutes} minutes"
            ),
        },
        more => Share {
            per_minute: CROWDED,
            why: format!(
                "{more} other runs of the account are busy or ended in the last {minutes} minutes"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alone_half_beside_one_or_two_a_quarter_beside_more_the_share_of_eight() {
        let shares: Vec<u32> = (0..5).map(|others| by_others(others).per_minute).collect();
        assert_eq!(shares, [2_500, 1_250, 1_250, 550, 550]);
        assert_eq!(by_others(0).why, "no other run of the account is busy");
        assert_eq!(
            by_others(3).why,
            "3 other runs of the account are busy or ended in the last 5 minutes"
        );
    }
}
