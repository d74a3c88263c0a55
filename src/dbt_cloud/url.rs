//! The dbt Cloud host the user configured, reduced to a base that API paths are joined to.

use std::fmt;
use std::net::IpAddr;

use reqwest::Url;

/// The legacy multi-tenant host; accounts on cell-based access URLs are refused there. Kept as
/// the default of configurations saved without `dbt_cloud_url`, which are warned that it retires.
pub const DEFAULT_BASE_URL: &str = "https://cloud.getdbt.com";

/// When dbt Labs stops serving API integrations at the getdbt.com region URLs (dbt's account URL
/// migration: "getdbt.com region URL deprecation: February 3, 2027 (previously November 1,
/// 2026)").
pub const RETIREMENT_DAY: &str = "February 3, 2027";

/// [`RETIREMENT_DAY`], as a date.
pub fn retirement() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_801_612_800, 0).unwrap_or_default()
}

/// The ids a page of dbt Cloud's UI names in its path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageIds {
    pub account: Option<u64>,
    pub job: Option<u64>,
}

/// `/deploy/<account>/...` (or `/accounts/<account>/...` of the older UI), with the job after
/// `jobs/` when the page is a job's or a run's of it.
fn page_ids(route: &str) -> Option<PageIds> {
    let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
    let number = |s: &&str| s.parse::<u64>().ok().filter(|n| *n > 0);
    let account = match segments.as_slice() {
        ["deploy" | "accounts", account, ..] => number(account)?,
        _ => return None,
    };
    let job = segments
        .windows(2)
        .find(|pair| pair[0] == "jobs")
        .and_then(|pair| number(&pair[1]));
    Some(PageIds {
        account: Some(account),
        job,
    })
}

/// `scheme://host[:port]/`, https unless the host is loopback (the local emulator).
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(Url);

impl BaseUrl {
    /// The URL alone, for the tests.
    #[cfg(test)]
    pub fn parse(input: &str) -> Result<BaseUrl, String> {
        BaseUrl::parse_page(input).map(|(base, _)| base)
    }

    /// Accepts what users paste: with or without `https://`, a trailing `/` or `/api/v2`; also a
    /// page of dbt Cloud's UI, copied from the browser
    /// (`https://ab123.us1.dbt.com/deploy/1/projects/2/jobs/3`, or the older
    /// `https://cloud.getdbt.com/#/accounts/1/projects/2/jobs/3/`): its origin is kept, and the ids
    /// it names are returned. Any other path is refused, since a token may have been pasted there.
    pub fn parse_page(input: &str) -> Result<(BaseUrl, PageIds), String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("it is empty".to_owned());
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };
        let mut url =
            Url::parse(&with_scheme).map_err(|e| format!("it is not a valid URL ({e})"))?;
        // `cloud.getdbt.com.` is the same host as `cloud.getdbt.com` (a fully qualified name):
        // one spelling, so that the retiring host is warned about and origins compare alike.
        // The parser has lowered the case and dropped a default port already.
        let host = url
            .host_str()
            .map(|h| h.trim_end_matches('.').to_owned())
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "it has no host name".to_owned())?;
        if url.host_str() != Some(host.as_str()) {
            url.set_host(Some(&host))
                .map_err(|e| format!("it is not a valid URL ({e})"))?;
        }
        let host = host.as_str();
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(
                    "it must use https:// (plain http is allowed only for loopback hosts: \
                     localhost, 127.0.0.0/8 and [::1])"
                        .to_owned(),
                )
            }
            other => return Err(format!("it must use https://, not {other}://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("it must not contain a user name or password".to_owned());
        }
        if url.query().is_some() {
            return Err("it must not contain a query (?...)".to_owned());
        }
        let path = url.path().trim_end_matches('/');
        let path = path.strip_suffix("/api/v2").unwrap_or(path);
        let route = match (path, url.fragment()) {
            ("", None) => "",
            ("", Some(fragment)) => fragment,
            (path, None) => path,
            (_, Some(_)) => "?",
        };
        let ids = match route {
            "" => PageIds::default(),
            route => page_ids(route).ok_or_else(|| {
                "it must be the dbt Cloud host (like https://cloud.getdbt.com), or a page of dbt \
                 Cloud copied from the browser, like https://ab123.us1.dbt.com/deploy/1/projects/2/jobs/3"
                    .to_owned()
            })?,
        };
        let mut base = url.clone();
        base.set_path("/");
        base.set_fragment(None);
        Ok((BaseUrl(base), ids))
    }

    pub fn is_default(&self) -> bool {
        self.to_string() == DEFAULT_BASE_URL
    }

    /// A getdbt.com region URL (`cloud.getdbt.com` and the like), which dbt Labs retires on
    /// [`RETIREMENT_DAY`].
    pub fn is_retiring(&self) -> bool {
        self.0.host_str().is_some_and(|host| {
            let host = host.to_ascii_lowercase();
            host == "getdbt.com" || host.ends_with(".getdbt.com")
        })
    }

    /// The base joined with path segments; each segment is percent-encoded as needed.
    pub fn join<'a>(&self, segments: impl IntoIterator<Item = &'a str>) -> Url {
        let mut url = self.0.clone();
        // Only a cannot-be-a-base URL (`mailto:`, `data:`) has no path segments, and `parse`
        // admits http(s) alone; the base is returned unchanged rather than panic if it ever did.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// Whether `url` is on this host, whatever its scheme and port.
    pub fn same_host(&self, url: &Url) -> bool {
        self.0.host_str() == url.host_str()
    }

    /// Whether `url` is on this host (scheme, host and port): the only place the token may go.
    pub fn same_origin(&self, url: &Url) -> bool {
        self.0.origin() == url.origin()
    }
}

/// Where a download may be redirected: https anywhere, http only on loopback.
pub fn is_safe_redirect(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => url.host_str().is_some_and(is_loopback),
        _ => false,
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_users_paste() {
        for input in [
            "https://cloud.getdbt.com",
            "cloud.getdbt.com",
            "https://cloud.getdbt.com/",
            "https://cloud.getdbt.com/api/v2",
            "https://cloud.getdbt.com/api/v2/",
            " cloud.getdbt.com/api/v2 ",
            "HTTPS://Cloud.GetDbt.com",
            "cloud.getdbt.com.",
            "https://CLOUD.GETDBT.COM.:443/api/v2/",
        ] {
            let url = BaseUrl::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(url.to_string(), "https://cloud.getdbt.com", "{input}");
            assert!(url.is_default(), "{input}");
        }
        let cell = BaseUrl::parse("ab123.us1.dbt.com").unwrap();
        assert_eq!(cell.to_string(), "https://ab123.us1.dbt.com");
        assert!(!cell.is_default());
        assert!(!cell.is_retiring());
        for retiring in [
            "cloud.getdbt.com",
            "https://emea.getdbt.com",
            "GETDBT.COM",
            "getdbt.com.",
            "Emea.GetDbt.Com.:8443",
        ] {
            assert!(
                BaseUrl::parse(retiring).unwrap().is_retiring(),
                "{retiring}"
            );
        }
        for staying in [
            "emea.dbt.com",
            "https://au.dbt.com",
            "notgetdbt.com",
            "getdbt.com.evil.example",
            "http://127.0.0.1:9",
        ] {
            assert!(!BaseUrl::parse(staying).unwrap().is_retiring(), "{staying}");
        }
        assert_eq!(
            retirement().to_rfc3339(),
            "2027-02-03T00:00:00+00:00",
            "{RETIREMENT_DAY}"
        );
    }

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8089",
            "http://127.3.4.5",
            "http://localhost:1234/api/v2",
            "http://[::1]:99",
        ] {
            assert!(BaseUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://cloud.getdbt.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "ftp://cloud.getdbt.com",
        ] {
            let error = BaseUrl::parse(bad).unwrap_err();
            assert!(error.contains("https://"), "{bad}: {error}");
        }
    }

    #[test]
    fn refuses_paths_credentials_queries_and_empty() {
        for bad in [
            "",
            "https://cloud.getdbt.com/dbtc_a_token_pasted_as_a_path",
            "https://cloud.getdbt.com/settings/accounts",
            "https://cloud.getdbt.com/deploy/projects/2",
            "https://cloud.getdbt.com/deploy/1/jobs/3#x",
            "https://user:pw@cloud.getdbt.com",
            "https://cloud.getdbt.com/?a=b",
            "https://",
            "https://exa mple.com",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_page_copied_from_dbt_cloud_keeps_its_origin_and_names_its_ids() {
        let page =
            |input: &str| BaseUrl::parse_page(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        let (base, ids) = page("https://ab123.us1.dbt.com/deploy/1/projects/2/jobs/3");
        assert_eq!(base.to_string(), "https://ab123.us1.dbt.com");
        assert_eq!(
            ids,
            PageIds {
                account: Some(1),
                job: Some(3)
            }
        );
        let (_, ids) = page("ab123.us1.dbt.com/deploy/70403103922125/projects/2/runs/9/");
        assert_eq!(
            ids,
            PageIds {
                account: Some(70403103922125),
                job: None
            }
        );
        let (base, ids) = page("https://cloud.getdbt.com/#/accounts/12/projects/5/jobs/67/");
        assert_eq!(base.to_string(), "https://cloud.getdbt.com");
        assert_eq!(
            ids,
            PageIds {
                account: Some(12),
                job: Some(67)
            }
        );
        assert_eq!(page("https://emea.dbt.com").1, PageIds::default());
    }

    #[test]
    fn join_encodes_segments() {
        let url = BaseUrl::parse("http://127.0.0.1:8089").unwrap();
        let joined = url.join(["api", "v2", "runs", "a b#c.sql", ""]);
        assert_eq!(
            joined.as_str(),
            "http://127.0.0.1:8089/api/v2/runs/a%20b%23c.sql/"
        );
    }
}
