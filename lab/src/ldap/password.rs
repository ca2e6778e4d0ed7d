//! `unicodePwd` values and AD's password complexity rule.

/// Minimum password length of a new domain's default policy.
const MIN_PASSWORD_LENGTH: usize = 7;

/// Decodes a `unicodePwd` value: the password in double quotes, as UTF-16LE. `None` for
/// anything else, which AD rejects.
///
/// See <https://learn.microsoft.com/openspecs/windows_protocols/ms-adts/6e803168-f140-4d23-b2d3-c3a8ab5917d2>.
pub(super) fn decode_unicode_pwd(value: &[u8]) -> Option<String> {
    if !value.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = value
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    let text = String::from_utf16(&units).ok()?;
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.to_string())
}

/// Checks a password against the default domain policy with complexity on. The password
/// needs at least seven characters, from three of uppercase, lowercase, digits, symbols and
/// other letters. It must contain neither the sAMAccountName nor any display name token of
/// three or more characters (split at `,.-_#`, tab and space), compared without case.
///
/// See <https://learn.microsoft.com/windows/win32/secmgmt/strong-password-enforcement-and-passfilt-dll>.
pub(super) fn meets_complexity(password: &str, sam: &str, display_name: &str) -> bool {
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return false;
    }
    let categories = [
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password
            .chars()
            .any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
        password
            .chars()
            .any(|c| c.is_alphabetic() && !c.is_uppercase() && !c.is_lowercase()),
    ];
    if categories.iter().filter(|present| **present).count() < 3 {
        return false;
    }
    let lower = password.to_lowercase();
    if sam.chars().count() >= 3 && lower.contains(&sam.to_lowercase()) {
        return false;
    }
    !display_name
        .split([',', '.', '-', '_', '#', '\t', ' '])
        .filter(|token| token.chars().count() >= 3)
        .any(|token| lower.contains(&token.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> Vec<u8> {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn unicode_pwd_needs_quotes_and_utf16() {
        assert_eq!(
            decode_unicode_pwd(&encode("\"Pässword-1\"")).as_deref(),
            Some("Pässword-1")
        );
        assert_eq!(decode_unicode_pwd(&encode("Password-1")), None);
        assert_eq!(decode_unicode_pwd(b"\"Password-1\""), None);
        assert_eq!(decode_unicode_pwd(&[0x22]), None);
    }

    #[test]
    fn complexity_follows_the_default_policy() {
        assert!(meets_complexity("Conformance-Fixture-7q", "siu-alice", ""));
        assert!(
            meets_complexity("Short1a", "x", ""),
            "seven characters suffice"
        );
        assert!(!meets_complexity("Ab1-", "x", ""), "too short");
        assert!(!meets_complexity("alllowercase", "x", ""), "one category");
        assert!(
            !meets_complexity("Secret-alice-1", "alice", ""),
            "contains the account"
        );
        assert!(
            !meets_complexity("Archer-Secret-1", "x", "Alice Archer"),
            "contains a name token"
        );
        assert!(
            meets_complexity("Ab-Cd-1234", "ab", "Al Bo"),
            "short tokens are allowed"
        );
    }
}
