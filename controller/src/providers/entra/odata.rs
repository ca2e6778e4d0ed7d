//! OData query options for Microsoft Graph: `$filter` string literals and the percent-encoded
//! query string.
//!
//! A string literal in `$filter` is enclosed in single quotes, and a single quote inside it is
//! written twice, as OData defines. The whole query value is then percent-encoded, so `&`,
//! `#`, `+`, `%` and `?` in a display name reach Graph as data instead of splitting or ending
//! the query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters that are sent as they are: the unreserved set of RFC 3986.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Returns `value` as an OData string literal: in single quotes, with each quote doubled.
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Returns the filter expression `<property> eq '<value>'`.
pub fn eq(property: &str, value: &str) -> String {
    format!("{property} eq {}", string_literal(value))
}

/// Percent-encodes one path segment, such as an object ID or a UPN.
pub fn path_segment(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// The system query options of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    options: Vec<(&'static str, String)>,
}

impl Query {
    /// Creates an empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `$filter`; build the expression with [`eq`] or [`string_literal`].
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.options.push(("$filter", expression.into()));
        self
    }

    /// Adds `$select` with the listed properties.
    pub fn select(mut self, properties: &[&str]) -> Self {
        self.options.push(("$select", properties.join(",")));
        self
    }

    /// Adds `$expand`.
    pub fn expand(mut self, expression: impl Into<String>) -> Self {
        self.options.push(("$expand", expression.into()));
        self
    }

    /// Adds `$top`, the page size.
    pub fn top(mut self, count: u32) -> Self {
        self.options.push(("$top", count.to_string()));
        self
    }

    /// Returns the encoded query string without the leading `?`, or `None` when empty.
    pub fn encode(&self) -> Option<String> {
        if self.options.is_empty() {
            return None;
        }
        let pairs: Vec<String> = self
            .options
            .iter()
            .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, QUERY_VALUE)))
            .collect();
        Some(pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a query string the way a server does: split on `&`, then on the first `=`,
    /// then percent-decode. `+` stays a plus sign, because it was encoded.
    fn decode(query: &str) -> Vec<(String, String)> {
        query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').expect("name=value");
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .expect("UTF-8")
                    .into_owned();
                (name.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn string_literal_doubles_quotes() {
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
        assert_eq!(string_literal("''"), "''''''");
        assert_eq!(string_literal(""), "''");
    }

    #[test]
    fn hostile_display_names_round_trip() {
        let names = [
            "O'Brien & Sons",
            "50% off #1 + more?",
            "a=b&$filter=id eq 'x'",
            "slash/back\\slash",
            "Zoë ✉ «quotes» ‘curly’",
            "') or (displayName eq '",
            "line\nbreak",
        ];
        for name in names {
            let query = Query::new()
                .filter(eq("displayName", name))
                .select(&["id", "appId"])
                .top(999);
            let encoded = query.encode().unwrap();
            for forbidden in [' ', '\'', '&', '#', '+', '?', '\n'] {
                let in_values = encoded
                    .split('&')
                    .filter_map(|pair| pair.split_once('='))
                    .any(|(_, value)| value.contains(forbidden));
                assert!(!in_values, "{forbidden:?} should be encoded in {encoded}");
            }
            let decoded = decode(&encoded);
            assert_eq!(decoded.len(), 3, "{encoded}");
            assert_eq!(decoded[0].0, "$filter");
            assert_eq!(
                decoded[0].1,
                format!("displayName eq {}", string_literal(name))
            );
            assert_eq!(decoded[1], ("$select".to_owned(), "id,appId".to_owned()));
            assert_eq!(decoded[2], ("$top".to_owned(), "999".to_owned()));
        }
    }

    #[test]
    fn injection_stays_inside_the_literal() {
        let expression = eq("displayName", "x' or appId eq 'y");
        assert_eq!(expression, "displayName eq 'x'' or appId eq ''y'");
    }

    #[test]
    fn path_segment_encodes_reserved_characters() {
        assert_eq!(path_segment("alice@lab.example"), "alice%40lab.example");
        assert_eq!(path_segment("a/b?c#d"), "a%2Fb%3Fc%23d");
        assert_eq!(
            path_segment("6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f"),
            "6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f"
        );
    }

    #[test]
    fn empty_query_encodes_to_none() {
        assert_eq!(Query::new().encode(), None);
    }
}
