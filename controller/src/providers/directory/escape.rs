//! Escaping of values placed into LDAP search filters (RFC 4515) and distinguished names
//! (RFC 4514).
//!
//! Every value that comes from a spec, a message or the directory itself goes through one of
//! these functions before it becomes part of a filter or a DN, so that a value such as
//! `*)(objectClass=*` matches only itself.

use std::fmt::Write;

/// Escapes a string for use as an assertion value in a search filter (RFC 4515, section 3).
///
/// `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`. Control characters
/// and every byte of a non-ASCII character are escaped as `\xx` too: RFC 4515 allows raw
/// UTF-8 there, but the escaped form reaches Active Directory and Samba byte for byte.
pub fn escape_filter_value(value: &str) -> String {
    escape_filter_bytes_where(value.as_bytes(), |byte| {
        matches!(byte, b'*' | b'(' | b')' | b'\\' | 0)
            || byte.is_ascii_control()
            || !byte.is_ascii()
    })
}

/// Escapes every byte of a binary value, such as an `objectSid`, as `\xx` for use as an
/// assertion value in a search filter.
pub fn escape_filter_bytes(value: &[u8]) -> String {
    escape_filter_bytes_where(value, |_| true)
}

fn escape_filter_bytes_where(value: &[u8], needs_escape: impl Fn(u8) -> bool) -> String {
    let mut escaped = String::with_capacity(value.len() * 3);
    for &byte in value {
        if needs_escape(byte) {
            write!(escaped, "\\{byte:02x}").expect("writing to a String cannot fail");
        } else {
            escaped.push(char::from(byte));
        }
    }
    escaped
}

/// Escapes a string for use as an attribute value in a distinguished name (RFC 4514,
/// section 2.4), such as the `CN` of a new account.
///
/// `"`, `+`, `,`, `;`, `<`, `=`, `>` and `\` get a backslash; a leading space or `#` and a
/// trailing space get one too. NUL and other control characters become `\xx`, which is also
/// how Active Directory writes a line feed in a DN. Non-ASCII characters stay as UTF-8.
pub fn escape_dn_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 8);
    let last = value.chars().count().saturating_sub(1);
    for (index, character) in value.chars().enumerate() {
        match character {
            '"' | '+' | ',' | ';' | '<' | '=' | '>' | '\\' => {
                escaped.push('\\');
                escaped.push(character);
            }
            ' ' | '#' if index == 0 => {
                escaped.push('\\');
                escaped.push(character);
            }
            ' ' if index == last => escaped.push_str("\\ "),
            _ if character.is_ascii_control() => {
                write!(escaped, "\\{:02x}", u32::from(character))
                    .expect("writing to a String cannot fail");
            }
            _ => escaped.push(character),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_value_escapes_rfc4515_specials() {
        assert_eq!(escape_filter_value("a*b"), "a\\2ab");
        assert_eq!(escape_filter_value("(x)"), "\\28x\\29");
        assert_eq!(escape_filter_value("back\\slash"), "back\\5cslash");
        assert_eq!(escape_filter_value("nul\0byte"), "nul\\00byte");
    }

    #[test]
    fn filter_value_keeps_plain_ascii() {
        assert_eq!(escape_filter_value("alice@siu.test"), "alice@siu.test");
        assert_eq!(escape_filter_value("SMTP:a.b+c@x.y"), "SMTP:a.b+c@x.y");
        assert_eq!(escape_filter_value(""), "");
    }

    #[test]
    fn filter_value_escapes_hostile_inputs() {
        // Each input tries to close the assertion and add a clause of its own.
        let cases = [
            ("*", "\\2a"),
            ("*)(objectClass=*", "\\2a\\29\\28objectClass=\\2a"),
            (
                "x)(|(userPrincipalName=*",
                "x\\29\\28|\\28userPrincipalName=\\2a",
            ),
            (
                "admin*)((|userPassword=*)",
                "admin\\2a\\29\\28\\28|userPassword=\\2a\\29",
            ),
            ("\\2a", "\\5c2a"),
            ("a\nb\r", "a\\0ab\\0d"),
        ];
        for (input, expected) in cases {
            let escaped = escape_filter_value(input);
            assert_eq!(escaped, expected, "input {input:?}");
            assert!(!escaped.contains(['*', '(', ')', '\0']), "input {input:?}");
        }
    }

    #[test]
    fn filter_value_escapes_non_ascii_as_utf8_bytes() {
        assert_eq!(escape_filter_value("Jörg"), "J\\c3\\b6rg");
        assert_eq!(escape_filter_value("日"), "\\e6\\97\\a5");
    }

    #[test]
    fn filter_bytes_escapes_every_byte() {
        assert_eq!(
            escape_filter_bytes(&[0x01, 0x05, 0x00, 0x2a, 0xff]),
            "\\01\\05\\00\\2a\\ff"
        );
    }

    #[test]
    fn dn_value_escapes_rfc4514_specials() {
        assert_eq!(escape_dn_value("Smith, John"), "Smith\\, John");
        assert_eq!(escape_dn_value("a+b=c"), "a\\+b\\=c");
        assert_eq!(escape_dn_value("\"q\";<x>\\"), "\\\"q\\\"\\;\\<x\\>\\\\");
    }

    #[test]
    fn dn_value_escapes_leading_and_trailing_characters() {
        assert_eq!(escape_dn_value(" lead"), "\\ lead");
        assert_eq!(escape_dn_value("#hash"), "\\#hash");
        assert_eq!(escape_dn_value("mid#dle"), "mid#dle");
        assert_eq!(escape_dn_value("trail "), "trail\\ ");
        assert_eq!(escape_dn_value(" "), "\\ ");
    }

    #[test]
    fn dn_value_escapes_hostile_inputs() {
        // Each input tries to add an RDN or move the entry into another container.
        let cases = [
            ("x,CN=Users,DC=evil", "x\\,CN\\=Users\\,DC\\=evil"),
            ("x+sAMAccountName=admin", "x\\+sAMAccountName\\=admin"),
            ("a\0b", "a\\00b"),
            ("line\nfeed", "line\\0afeed"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_dn_value(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn dn_value_keeps_non_ascii() {
        assert_eq!(escape_dn_value("Jörg Müller"), "Jörg Müller");
    }
}
