//! Generated account passwords and the `unicodePwd` encoding.

use rand::Rng;

use super::settings::Password;

/// Length of a generated password.
pub const GENERATED_PASSWORD_LENGTH: usize = 32;

const UPPERCASE: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWERCASE: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
// No quotes, backslashes, `$` or backticks, so the password survives shells and config files.
const SYMBOLS: &[u8] = b"!#%+-.:=?@^_~";

/// Generates a 32-character password from the thread-local CSPRNG of `rand` 0.9 (ChaCha12,
/// seeded from the operating system).
///
/// The password meets AD's complexity rule. It has an uppercase and a lowercase letter, a
/// digit and a symbol. It contains no token of three or more characters from
/// `account_names` (the sAMAccountName and the display name), split at the delimiters AD
/// uses: `,.-_#`, tab and space. Look-alike characters (`I`, `O`, `l`, `0`, `1`) are left out.
pub fn generate_password(account_names: &[&str]) -> Password {
    let alphabet: Vec<u8> = [UPPERCASE, LOWERCASE, DIGITS, SYMBOLS].concat();
    let forbidden_tokens: Vec<String> = account_names
        .iter()
        .flat_map(|name| name.split([',', '.', '-', '_', '#', '\t', ' ']))
        .filter(|token| token.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect();
    let mut rng = rand::rng();

    // Rejection sampling keeps every accepted password uniform over the valid ones. With 32
    // characters from 70 symbols, almost every draw already has all four classes.
    loop {
        let candidate: String = (0..GENERATED_PASSWORD_LENGTH)
            .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
            .collect();
        let has_all_classes = [UPPERCASE, LOWERCASE, DIGITS, SYMBOLS]
            .iter()
            .all(|class| candidate.bytes().any(|byte| class.contains(&byte)));
        let lowercase = candidate.to_lowercase();
        let contains_name = forbidden_tokens
            .iter()
            .any(|token| lowercase.contains(token.as_str()));
        if has_all_classes && !contains_name {
            return Password::new(candidate);
        }
    }
}

/// Encodes a password as AD expects it in `unicodePwd`: the password in double quotes,
/// as UTF-16LE.
///
/// See <https://learn.microsoft.com/en-us/openspecs/windows_protocols/MS-ADTS/6e803168-f140-4d23-b2d3-c3a8ab5917d2>.
pub fn encode_unicode_pwd(password: &Password) -> Vec<u8> {
    format!("\"{}\"", password.expose())
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_meets_complexity() {
        for _ in 0..200 {
            let password = generate_password(&["svc-siu", "Sent Items Update"]);
            let text = password.expose();
            assert_eq!(text.chars().count(), GENERATED_PASSWORD_LENGTH);
            assert!(
                text.bytes().any(|byte| byte.is_ascii_uppercase()),
                "no uppercase letter"
            );
            assert!(
                text.bytes().any(|byte| byte.is_ascii_lowercase()),
                "no lowercase letter"
            );
            assert!(text.bytes().any(|byte| byte.is_ascii_digit()), "no digit");
            assert!(
                text.bytes().any(|byte| SYMBOLS.contains(&byte)),
                "no symbol"
            );
            let lowercase = text.to_lowercase();
            for token in ["svc", "siu", "sent", "items", "update"] {
                assert!(
                    !lowercase.contains(token),
                    "password contains the name token {token:?}"
                );
            }
        }
    }

    #[test]
    fn generated_passwords_differ() {
        let first = generate_password(&[]);
        let second = generate_password(&[]);
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let encoded = encode_unicode_pwd(&Password::new("Aé1"));
        assert_eq!(encoded, [b'"', 0, b'A', 0, 0xe9, 0, b'1', 0, b'"', 0]);
    }
}
