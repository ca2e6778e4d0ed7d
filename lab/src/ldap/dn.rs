//! Distinguished names as clients send them (RFC 4514): parsing, the canonical form the lab
//! stores and returns, and the key under which two spellings of one DN compare equal.

use crate::world::directory::normalize_dn;
use crate::world::escape_rdn;

/// One relative distinguished name, with its value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rdn {
    /// Attribute type as written (`CN`, `ou`).
    pub attribute: String,
    /// The value without escapes.
    pub value: String,
}

/// A parsed DN, leaf first. The empty DN names the root DSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// Parses a DN string. Multi-valued RDNs (`CN=a+SN=b`) are rejected, because AD does not
    /// accept them either.
    pub fn parse(text: &str) -> Result<Dn, ()> {
        if text.trim().is_empty() {
            return Ok(Dn { rdns: Vec::new() });
        }
        let rdns = split_unescaped(text, ',')
            .into_iter()
            .map(parse_rdn)
            .collect::<Result<Vec<_>, ()>>()?;
        Ok(Dn { rdns })
    }

    /// Tells whether this is the empty DN.
    pub fn is_root(&self) -> bool {
        self.rdns.is_empty()
    }

    /// Returns the first RDN.
    pub fn rdn(&self) -> Option<&Rdn> {
        self.rdns.first()
    }

    /// Returns the DN without its first RDN.
    pub fn parent(&self) -> Option<Dn> {
        (!self.rdns.is_empty()).then(|| Dn {
            rdns: self.rdns[1..].to_vec(),
        })
    }

    /// The form the lab stores and returns: attribute types of the naming attributes in
    /// upper case (`CN`, `OU`, `DC`) as AD writes them, values escaped as RFC 4514 requires.
    pub fn canonical(&self) -> String {
        self.rdns
            .iter()
            .map(|rdn| {
                let attribute = if ["cn", "ou", "dc", "o", "c", "l"]
                    .iter()
                    .any(|a| rdn.attribute.eq_ignore_ascii_case(a))
                {
                    rdn.attribute.to_ascii_uppercase()
                } else {
                    rdn.attribute.clone()
                };
                format!("{attribute}={}", escape_rdn(&rdn.value))
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Returns the comparison key: the canonical form, normalized as the directory's index
    /// keys are.
    pub fn key(&self) -> String {
        normalize_dn(&self.canonical())
    }
}

/// Returns the comparison key of a DN string, or of the text itself when it does not parse.
pub(super) fn key_of(text: &str) -> String {
    Dn::parse(text)
        .map(|dn| dn.key())
        .unwrap_or_else(|()| normalize_dn(text))
}

/// Returns the key of a DN's parent, or `None` for a DN of one RDN.
pub(super) fn parent_key(key: &str) -> Option<&str> {
    let mut escaped = false;
    for (i, c) in key.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            return Some(&key[i + 1..]);
        }
    }
    None
}

fn parse_rdn(text: &str) -> Result<Rdn, ()> {
    let parts = split_unescaped(text, '=');
    let attribute = parts[0].trim();
    if parts.len() < 2 || !valid_attribute_type(attribute) {
        return Err(());
    }
    let raw = text[parts[0].len() + 1..].trim_start();
    let value = unescape_value(raw)?;
    if value.is_empty() {
        return Err(());
    }
    Ok(Rdn {
        attribute: attribute.to_string(),
        value,
    })
}

fn valid_attribute_type(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() => chars.all(|c| c.is_ascii_alphanumeric() || c == '-'),
        Some(c) if c.is_ascii_digit() => text.chars().all(|c| c.is_ascii_digit() || c == '.'),
        _ => false,
    }
}

/// Removes RFC 4514 escapes (`\,` and `\2c`) and the unescaped spaces at the end. Rejects an
/// unescaped `+` (a multi-valued RDN) and a `#` hex value, which AD does not accept either.
fn unescape_value(raw: &str) -> Result<String, ()> {
    if raw.starts_with('#') {
        return Err(());
    }
    let bytes = raw.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    // Length of `out` up to the last character that was escaped or is not a space.
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let next = *bytes.get(i + 1).ok_or(())?;
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|pair| pair.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|pair| std::str::from_utf8(pair).ok())
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(next);
                        i += 2;
                    }
                }
                kept = out.len();
            }
            b'+' => return Err(()),
            b' ' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                kept = out.len();
                i += 1;
            }
        }
    }
    out.truncate(kept);
    String::from_utf8(out).map_err(|_| ())
}

/// Splits `text` at every `separator` that no backslash escapes.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_dn_share_a_key() {
        let canonical = Dn::parse("CN=Smith\\, John,OU=Staff,DC=lab,DC=example").expect("parses");
        for spelling in [
            "cn=Smith\\2c John, ou=Staff, dc=lab, dc=example",
            "CN = Smith\\, John,OU=STAFF,DC=lab,DC=example",
        ] {
            let other = Dn::parse(spelling).expect("parses");
            assert_eq!(other.key(), canonical.key(), "{spelling}");
        }
        assert_eq!(
            canonical.canonical(),
            "CN=Smith\\, John,OU=Staff,DC=lab,DC=example"
        );
    }

    #[test]
    fn specials_round_trip_through_the_canonical_form() {
        let dn = Dn::parse("CN=New\\, User\\+ab12 \\<svc\\>,OU=siu-scratch,DC=lab,DC=example")
            .expect("parses");
        assert_eq!(
            dn.rdn().map(|r| r.value.as_str()),
            Some("New, User+ab12 <svc>")
        );
        assert_eq!(
            dn.canonical(),
            "CN=New\\, User\\+ab12 \\<svc\\>,OU=siu-scratch,DC=lab,DC=example"
        );
    }

    #[test]
    fn invalid_dns_are_rejected() {
        for text in [
            "CN",
            "CN=",
            "=x",
            "CN=a+SN=b",
            "CN=#04",
            "1x=a",
            "CN=trailing\\",
        ] {
            assert!(Dn::parse(text).is_err(), "{text}");
        }
        assert!(Dn::parse("").expect("the root parses").is_root());
    }

    #[test]
    fn parent_key_skips_escaped_commas() {
        let key = key_of("CN=a\\,b,OU=x,DC=lab");
        assert_eq!(parent_key(&key), Some("ou=x,dc=lab"));
        assert_eq!(parent_key("dc=lab"), None);
    }
}
