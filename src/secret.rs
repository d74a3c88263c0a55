//! The dbt Cloud API token, kept out of every log line, error, table and `{:?}`.
//!
//! The only way to read the token is [`ApiToken::authorization_header`], which marks the header
//! sensitive so that reqwest and hyper print `Sensitive` instead of its value even at trace level.
//! A server may still echo it back (an error page that quotes the request, a step's log): every
//! token the process holds is noted when it is made, and [`mask`] hides it in any text before
//! that text is logged, printed or written to a table.

use std::borrow::Cow;
use std::fmt;
use std::sync::RwLock;

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
        if token.len() >= MIN_MASKED {
            let mut held = HELD
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !held.iter().any(|known| known == token) {
                held.push(token.to_owned());
            }
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

/// Every token this process holds.
static HELD: RwLock<Vec<String>> = RwLock::new(Vec::new());
/// What a token becomes in text.
const MASK: &str = "***";
/// dbt Cloud's tokens are dozens of characters; a shorter one (a test's `t`) is not looked for
/// in text, which it would mangle wherever its letters appear.
const MIN_MASKED: usize = 8;
/// A piece of a token shorter than this, at a cut, is not told from ordinary text.
const MIN_PIECE: usize = 6;

fn held() -> std::sync::RwLockReadGuard<'static, Vec<String>> {
    HELD.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `text` with every token the process holds replaced by `***`.
pub fn mask(text: &str) -> Cow<'_, str> {
    let held = held();
    if !held.iter().any(|token| text.contains(token.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut masked = text.to_owned();
    for token in held.iter() {
        masked = masked.replace(token.as_str(), MASK);
    }
    Cow::Owned(masked)
}

/// `value` with every string in it (keys too) masked: a document made of dbt Cloud's strings,
/// whatever fields it holds.
pub fn mask_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(mask(&text).into_owned()),
        Value::Array(items) => Value::Array(items.into_iter().map(mask_json).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (mask(&key).into_owned(), mask_json(value)))
                .collect(),
        ),
        other => other,
    }
}

/// A text cut in two (`head`, then `tail`, with what was between them gone): a token whose start
/// ends `head` or whose end starts `tail` is masked too, as are whole ones.
pub fn mask_partial(head: &str, tail: &str) -> (String, String) {
    let mut head = mask(head).into_owned();
    let mut tail = mask(tail).into_owned();
    for token in held().iter() {
        let pieces = || {
            (MIN_PIECE..token.len())
                .rev()
                .filter(|&at| token.is_char_boundary(at))
        };
        if let Some(at) = pieces().find(|&at| head.ends_with(&token[..at])) {
            head.truncate(head.len() - at);
            head.push_str(MASK);
        }
        if let Some(at) = pieces().find(|&at| tail.starts_with(&token[token.len() - at..])) {
            tail.replace_range(..at, MASK);
        }
    }
    (head, tail)
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
    fn a_token_the_process_holds_is_masked_in_any_text_whole_or_cut() {
        let token = ApiToken::new("dbtc_M4sk3d_t0ken_XYZ").unwrap();
        let echoed = "401: token dbtc_M4sk3d_t0ken_XYZ is not valid (dbtc_M4sk3d_t0ken_XYZ)";
        assert_eq!(mask(echoed), "401: token *** is not valid (***)");
        assert!(matches!(mask("nothing to hide"), Cow::Borrowed(_)));
        let (head, tail) = mask_partial("log ... dbtc_M4sk3d", "3d_t0ken_XYZ ... end");
        assert_eq!(
            (head.as_str(), tail.as_str()),
            ("log ... ***", "*** ... end")
        );
        let (head, tail) = mask_partial("ends with dbt", "XYZ begins");
        assert_eq!(
            (head.as_str(), tail.as_str()),
            ("ends with dbt", "XYZ begins"),
            "pieces too short to tell from text"
        );
        drop(token);
    }

    #[test]
    fn every_string_of_a_document_is_masked() {
        let token = ApiToken::new("dbtc_J50n_t0ken_ABC").unwrap();
        let document = serde_json::json!({
            "dbtc_J50n_t0ken_ABC": [{"label": "job dbtc_J50n_t0ken_ABC", "value": 7}, null, true],
            "message": "| [1](https://x/dbtc_J50n_t0ken_ABC) |",
        });
        assert_eq!(
            mask_json(document),
            serde_json::json!({
                "***": [{"label": "job ***", "value": 7}, null, true],
                "message": "| [1](https://x/***) |",
            })
        );
        drop(token);
    }

    #[test]
    fn refuses_empty_and_unprintable_tokens() {
        assert!(ApiToken::new("").is_none());
        assert!(ApiToken::new("   ").is_none());
        assert!(ApiToken::new("abc\ndef").is_none());
        assert!(ApiToken::new("abc déf").is_none());
    }
}
