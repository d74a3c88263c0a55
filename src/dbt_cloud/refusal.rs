//! dbt Cloud's answers other than 2xx: what kind of refusal each is (read once from the status
//! and the body, and unit-tested without HTTP), whether another attempt may help, and how to
//! say it to the user.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::Value;

use super::ids::AccountId;
use super::url::{BaseUrl, RETIREMENT_DAY};
use crate::text::truncate;

/// The kinds of refusal, each with its own advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// 401: the token, or the URL for the account.
    TokenRefused,
    /// 403: permissions or an IP allow-list.
    Forbidden,
    /// 404: no such thing, or the token may not see it.
    NotFound,
    /// 400: the request, with the API's field errors.
    Invalid,
    /// 429: the account's rate limit.
    Throttled,
    /// 5xx: worth another attempt.
    ServerFailed,
    /// A redirect, a conflict, a teapot: not dbt Cloud's API as documented, so most likely not
    /// dbt Cloud at all (a proxy, a login page, another service).
    Unexpected,
}

impl RefusalKind {
    /// How dbt Cloud refused the request that `error` reports, when it did.
    pub fn of(error: &anyhow::Error) -> Option<RefusalKind> {
        Refused::of(error).map(|refused| refused.kind)
    }
}

/// A request dbt Cloud refused, as the error travels up to whoever expects some refusals (an
/// artifact not there yet, a resume dbt Cloud will not make, the connection test's steps): how
/// dbt Cloud answered. Its text is the message for the user, which names what was asked and where.
#[derive(Debug)]
pub struct Refused {
    pub kind: RefusalKind,
    pub status: StatusCode,
    /// The API's own words (its message and a 400's field errors); empty when it gave none.
    pub api_said: String,
    message: String,
}

impl Refused {
    /// The refusal in `error`'s chain, when dbt Cloud refused the request.
    pub fn of(error: &anyhow::Error) -> Option<&Refused> {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<Refused>())
    }

    /// A 404 for what was asked: an artifact listed but not (yet) there.
    pub fn not_found(message: String) -> Refused {
        Refused {
            kind: RefusalKind::NotFound,
            status: StatusCode::NOT_FOUND,
            api_said: String::new(),
            message,
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refused {}

/// One refused request, as far as its answer tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    /// The API's own message (`status.user_message`, or `detail`).
    api_message: Option<String>,
    /// A 400's field errors.
    field_errors: Option<String>,
    /// `Retry-After`, already capped.
    pub retry_after: Option<Duration>,
    /// Where a redirect pointed.
    location: Option<Url>,
}

/// What the message names: the thing asked for, and where.
pub struct Asked<'a> {
    /// E.g. `run 70403103000`, `artifact manifest.json of run 7`.
    pub subject: &'a str,
    pub account: AccountId,
    pub base: &'a BaseUrl,
    pub path: &'a str,
    /// `base` is a getdbt.com region URL, and dbt Cloud's clock is past the day it retired.
    pub retired: bool,
}

impl Refusal {
    pub fn new(
        status: StatusCode,
        body: &[u8],
        retry_after: Option<Duration>,
        location: Option<Url>,
    ) -> Refusal {
        Refusal {
            status,
            api_message: api_user_message(body),
            field_errors: api_field_errors(body),
            retry_after,
            location,
        }
    }

    pub fn kind(&self) -> RefusalKind {
        match self.status {
            StatusCode::UNAUTHORIZED => RefusalKind::TokenRefused,
            StatusCode::FORBIDDEN => RefusalKind::Forbidden,
            StatusCode::NOT_FOUND => RefusalKind::NotFound,
            StatusCode::BAD_REQUEST => RefusalKind::Invalid,
            StatusCode::TOO_MANY_REQUESTS => RefusalKind::Throttled,
            s if s.is_server_error() => RefusalKind::ServerFailed,
            _ => RefusalKind::Unexpected,
        }
    }

    /// Whether the same request may succeed later: a busy or failing server, not a refusal.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind(),
            RefusalKind::Throttled | RefusalKind::ServerFailed
        )
    }

    /// `HTTP 401: Invalid token.`
    fn detail(&self) -> String {
        match &self.api_message {
            Some(message) => format!("HTTP {}: {message}", self.status.as_u16()),
            None => format!("HTTP {}", self.status.as_u16()),
        }
    }

    pub fn message(&self, asked: &Asked) -> String {
        let message = self.said(asked);
        if asked.retired && self.may_be_retirement(asked.base) {
            return format!(
                "{message} Most likely cause: dbt_cloud_url {} is a getdbt.com region URL, which \
                 dbt Labs retired on {RETIREMENT_DAY}; it no longer serves API requests. Set \
                 dbt_cloud_url to your account's own access URL (in dbt Cloud: Account settings → \
                 Access URLs, e.g. https://ab123.us1.dbt.com).",
                asked.base
            );
        }
        message
    }

    /// The error that says it, naming what was asked.
    pub fn refused(&self, asked: &Asked) -> Refused {
        let said = [self.api_message.as_deref(), self.field_errors.as_deref()];
        Refused {
            kind: self.kind(),
            status: self.status,
            api_said: said.into_iter().flatten().collect::<Vec<_>>().join("; "),
            message: self.message(asked),
        }
    }

    /// How a retired host answers: a refused token, no such thing, gone, or away to another host.
    fn may_be_retirement(&self, base: &BaseUrl) -> bool {
        let elsewhere = self.location.as_ref().is_some_and(|to| !base.same_host(to));
        matches!(
            self.kind(),
            RefusalKind::TokenRefused | RefusalKind::NotFound
        ) || self.status == StatusCode::GONE
            || (self.status.is_redirection() && elsewhere)
    }

    fn said(&self, asked: &Asked) -> String {
        let detail = self.detail();
        let Asked {
            subject,
            account,
            base,
            path,
            retired,
        } = asked;
        match self.kind() {
            RefusalKind::TokenRefused => token_refused(&detail, *account, base, *retired),
            RefusalKind::Forbidden => format!(
                "dbt Cloud denied access to {subject} of account {account} ({detail}). Check the \
                 token's permissions and the account's IP allow-list."
            ),
            RefusalKind::NotFound => format!(
                "dbt Cloud has no {subject} in account {account}, or the token may not see it \
                 ({detail}). Check account_id, job_id and the token's permissions."
            ),
            RefusalKind::Invalid => format!(
                "dbt Cloud refused the request for {subject} as invalid ({detail}{})",
                self.field_errors
                    .as_ref()
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            ),
            RefusalKind::Throttled => format!(
                "dbt Cloud's rate limit for account {account} was reached ({detail}); it allows \
                 5,000 requests a minute and then cools down for five minutes"
            ),
            RefusalKind::ServerFailed => {
                format!("dbt Cloud failed to answer the request for {subject} ({detail})")
            }
            RefusalKind::Unexpected => {
                let moved = self
                    .location
                    .as_ref()
                    .map(|to| format!(", redirecting to {}", to.host_str().unwrap_or_default()))
                    .unwrap_or_default();
                format!(
                    "{base} answered {path} unexpectedly with {}{moved}. Check dbt_cloud_url: it \
                     must be your dbt Cloud account's access URL.",
                    detail.trim_end_matches('.')
                )
            }
        }
    }
}

/// What dbt Cloud's answer to the account without the token says: this address is refused.
pub fn address_refused(account: AccountId) -> String {
    format!(
        "dbt Cloud refuses this address (IP allow-list): account {account} takes API requests only \
         from the addresses its IP allow-list holds, and this one is not among them (asked \
         without the token, dbt Cloud answered \"Forbidden: Access denied\"). Add Keboola's \
         outgoing addresses to the account's IP allow-list (in dbt Cloud: Account settings → IP \
         restrictions)."
    )
}

/// What dbt Cloud's answer to the account without the token says: this address may reach the
/// account, so the token is what it refuses.
pub fn address_allowed(account: AccountId) -> String {
    format!(
        "This address may reach account {account} (asked without the token, dbt Cloud said only \
         that no credentials were given, where an IP allow-list would have refused): the token \
         is refused"
    )
}

fn token_refused(detail: &str, account: AccountId, base: &BaseUrl, retired: bool) -> String {
    let mut message = format!(
        "dbt Cloud refused the API token ({detail}). Check #api_key: it must be a service token \
         or personal access token of account {account} (the API needs a Team or Enterprise plan)."
    );
    if base.is_default() && !retired {
        message.push_str(
            " Accounts on cell-based access URLs must use their own URL: set dbt_cloud_url to it \
             (Account settings → Access URLs, e.g. https://ab123.us1.dbt.com); cloud.getdbt.com \
             refuses their tokens.",
        );
    }
    message
}

pub fn api_user_message(body: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    let message = envelope
        .pointer("/status/user_message")
        .or_else(|| envelope.pointer("/detail"))?
        .as_str()?;
    Some(truncate(message.trim(), 500).to_owned())
}

/// The 400 envelope's `data` maps each bad field to its errors.
pub fn api_field_errors(body: &[u8]) -> Option<String> {
    let envelope: Value = serde_json::from_slice(body).ok()?;
    let data = envelope.get("data")?.as_object()?;
    let parts: Vec<String> = data
        .iter()
        .map(|(field, errors)| format!("{field}: {errors}"))
        .collect();
    (!parts.is_empty()).then(|| truncate(&parts.join("; "), 500).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(base: &BaseUrl) -> Asked<'_> {
        Asked {
            subject: "run 9",
            account: AccountId::new(7).unwrap(),
            base,
            path: "/api/v2/accounts/7/runs/9/",
            retired: false,
        }
    }

    #[test]
    fn a_refused_token_on_the_default_url_suggests_the_access_url() {
        let account = AccountId::new(7).unwrap();
        let default = token_refused(
            "HTTP 401: Invalid token.",
            account,
            &BaseUrl::parse(crate::dbt_cloud::DEFAULT_BASE_URL).unwrap(),
            false,
        );
        assert!(default.starts_with("dbt Cloud refused the API token (HTTP 401: Invalid token.)"));
        assert!(default.contains("set dbt_cloud_url to it"), "{default}");
        let cell = BaseUrl::parse("ab123.us1.dbt.com").unwrap();
        let other = token_refused("HTTP 401: Invalid token.", account, &cell, false);
        assert!(!other.contains("dbt_cloud_url"), "{other}");
    }

    #[test]
    fn api_messages_are_read_from_the_envelope_or_detail_and_never_assumed_json() {
        let envelope = br#"{"status": {"code": 401, "is_success": false, "user_message": "Invalid token.", "developer_message": null}, "data": null}"#;
        assert_eq!(
            api_user_message(envelope).as_deref(),
            Some("Invalid token.")
        );
        assert_eq!(
            api_user_message(br#"{"detail": "Method \"GET\" not allowed."}"#).as_deref(),
            Some("Method \"GET\" not allowed.")
        );
        assert_eq!(api_user_message(b"<html>502 Bad Gateway</html>"), None);
        let invalid = br#"{"status": {"user_message": "The request was invalid."}, "data": {"cause": ["This field is required."]}}"#;
        assert_eq!(
            api_field_errors(invalid).as_deref(),
            Some(r#"cause: ["This field is required."]"#)
        );
    }

    /// After February 3, 2027, a getdbt.com URL answering as a retired host would is named as the
    /// likely cause; other refusals, other hosts and earlier days are not.
    #[test]
    fn a_retired_url_is_named_as_the_likely_cause_of_how_it_refuses() {
        let retiring = BaseUrl::parse("https://cloud.getdbt.com").unwrap();
        let cell = BaseUrl::parse("ab123.us1.dbt.com").unwrap();
        let asked = |base, retired| Asked {
            retired,
            ..asked(base)
        };
        let moved = |to: &str| {
            Refusal::new(
                StatusCode::MOVED_PERMANENTLY,
                b"",
                None,
                Some(Url::parse(to).unwrap()),
            )
        };
        let refusals = [
            (
                Refusal::new(StatusCode::UNAUTHORIZED, b"", None, None),
                true,
            ),
            (Refusal::new(StatusCode::NOT_FOUND, b"", None, None), true),
            (Refusal::new(StatusCode::GONE, b"", None, None), true),
            (moved("https://www.getdbt.com/"), true),
            (moved("https://cloud.getdbt.com/api/v2/x/"), false),
            (
                Refusal::new(StatusCode::BAD_GATEWAY, b"", None, None),
                false,
            ),
            (Refusal::new(StatusCode::FORBIDDEN, b"", None, None), false),
        ];
        for (refusal, named) in refusals {
            let after = refusal.message(&asked(&retiring, true));
            assert_eq!(
                after.contains("Most likely cause: dbt_cloud_url https://cloud.getdbt.com is a getdbt.com region URL, which dbt Labs retired on February 3, 2027"),
                named,
                "{}: {after}",
                refusal.status
            );
            for not_retired in [
                refusal.message(&asked(&retiring, false)),
                refusal.message(&asked(&cell, false)),
            ] {
                assert!(!not_retired.contains("Most likely cause"), "{not_retired}");
            }
        }
        let after = Refusal::new(StatusCode::UNAUTHORIZED, b"", None, None)
            .message(&asked(&retiring, true));
        assert!(
            !after.contains("cell-based"),
            "the retirement, not cell-based accounts: {after}"
        );
    }

    /// Each status: its kind, whether it is worth another attempt, and the start of what the
    /// user reads.
    #[test]
    fn each_refusal_is_classified_and_worded() {
        let base = BaseUrl::parse("ab123.us1.dbt.com").unwrap();
        let body = br#"{"status": {"user_message": "Nope."}, "data": {"cause": ["required"]}}"#;
        let cases = [
            (401, RefusalKind::TokenRefused, false, "dbt Cloud refused the API token (HTTP 401: Nope.)"),
            (403, RefusalKind::Forbidden, false, "dbt Cloud denied access to run 9 of account 7 (HTTP 403: Nope.)"),
            (404, RefusalKind::NotFound, false, "dbt Cloud has no run 9 in account 7, or the token may not see it (HTTP 404: Nope.)"),
            (400, RefusalKind::Invalid, false, "dbt Cloud refused the request for run 9 as invalid (HTTP 400: Nope.; cause: [\"required\"])"),
            (429, RefusalKind::Throttled, true, "dbt Cloud's rate limit for account 7 was reached (HTTP 429: Nope.)"),
            (503, RefusalKind::ServerFailed, true, "dbt Cloud failed to answer the request for run 9 (HTTP 503: Nope.)"),
            (409, RefusalKind::Unexpected, false, "https://ab123.us1.dbt.com answered /api/v2/accounts/7/runs/9/ unexpectedly with HTTP 409: Nope. Check"),
        ];
        for (status, kind, retryable, message) in cases {
            let refusal = Refusal::new(StatusCode::from_u16(status).unwrap(), body, None, None);
            assert_eq!(refusal.kind(), kind, "{status}");
            assert_eq!(refusal.retryable(), retryable, "{status}");
            let said = refusal.message(&asked(&base));
            assert!(said.starts_with(message), "{status}: {said}");
        }
        let moved = Refusal::new(
            StatusCode::FOUND,
            b"",
            None,
            Some(Url::parse("https://login.example.com/sso").unwrap()),
        );
        assert!(moved
            .message(&asked(&base))
            .contains("with HTTP 302, redirecting to login.example.com. Check dbt_cloud_url"));
    }
}
