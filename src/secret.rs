//! The dbt Cloud API token, kept out of every log line, error and `{:?}`.
//!
//! The only way to read the token is [`ApiToken::authorization_header`], which marks the header
//! sensitive so that reqwest and hyper print `Sensitive` instead of its value even at trace level.

use std::fmt;

use reqwest::header::HeaderValue;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// `None` for a token that is empty or cannot travel in an HTTP header.
    pub fn new(token: &str) -> Option<ApiToken> {
        let token = token.trim();
        let printable = token.bytes().all(|b| b.is_ascii_graphic());
        if token.is_empty() || !printable {
            return None;
        }
        Some(ApiToken(token.to_owned()))
    }

    pub fn authorization_header(&self) -> HeaderValue {
        // Justified expect: `ApiToken::new` admits only visible ASCII, always a valid header value.
        let mut value = HeaderValue::from_str(&format!("Token {}", self.0))
            .expect("ApiToken::new admits only visible ASCII, which is a valid header value");
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_header_debug_hide_the_token() {
        let token = ApiToken::new("dbtc_secret123").unwrap();
        assert_eq!(format!("{token:?}"), "***");
        assert_eq!(format!("{token}"), "***");
        let header = token.authorization_header();
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("secret123"));
        assert_eq!(header.to_str().unwrap(), "Token dbtc_secret123");
    }

    #[test]
    fn refuses_empty_and_unprintable_tokens() {
        assert!(ApiToken::new("").is_none());
        assert!(ApiToken::new("   ").is_none());
        assert!(ApiToken::new("abc\ndef").is_none());
        assert!(ApiToken::new("abc déf").is_none());
    }
}
