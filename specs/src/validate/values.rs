//! Checks and normalization of single values: names, addresses, identifiers and
//! durations. Each function returns the normalized value or a message saying what is
//! wrong, without the field path, which the caller adds.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use uuid::Uuid;

use crate::desired::{BindUser, Host};
use crate::diagnostic::is_invisible;

/// Checks `metadata.name`: 1 to 63 of `a-z`, `0-9` and `-`, starting and ending with a
/// letter or digit, like a DNS label (RFC 1123).
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "must be 1 to 63 characters long, not {}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "contains `{}`; use only lowercase letters, digits and `-`",
            bad.escape_default()
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// Checks a host name given as a fully qualified domain name and returns it lowercase.
pub(crate) fn normalize_domain(name: &str) -> Result<String, String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return Err("is empty".to_owned());
    }
    if name.len() > 253 {
        return Err("is longer than 253 characters".to_owned());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "`{name}` is not a fully qualified domain name; add the domain, for example `{name}.contoso.com`"
        ));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`{name}` has an empty label or one longer than 63 characters"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(bad_domain_character(&name, bad));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("`{name}` has a label that starts or ends with `-`"));
        }
    }
    if labels
        .last()
        .is_some_and(|top| top.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!(
            "`{name}` is neither a valid IP address nor a host name"
        ));
    }
    Ok(name)
}

/// Describes a character that a host name cannot contain. An internationalized domain
/// name gets its ASCII form (Punycode), which is what DNS and siuctl use.
fn bad_domain_character(name: &str, bad: char) -> String {
    let character = if is_invisible(bad) {
        bad.escape_default().to_string()
    } else {
        bad.to_string()
    };
    let message = format!("`{name}` contains `{character}`, which is not allowed in a host name");
    if bad.is_ascii() || !bad.is_alphanumeric() {
        return message;
    }
    match url::Host::parse(name) {
        Ok(url::Host::Domain(ascii)) if ascii.is_ascii() => {
            format!("{message}; write the domain in its ASCII form, `{ascii}`")
        }
        _ => format!("{message}; write the domain in its ASCII form (`xn--...`)"),
    }
}

/// Parses a server given as a fully qualified domain name or an IPv4 or IPv6 address
/// (brackets around IPv6 are accepted).
pub(crate) fn parse_host(text: &str) -> Result<Host, String> {
    let unbracketed = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(address) = unbracketed.parse::<IpAddr>() {
        return Ok(Host::Ip(address));
    }
    if let Some((address, _)) = unbracketed.split_once('%')
        && address.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return Err(format!(
            "`{text}` has an IPv6 zone (`%...`), which siuctl does not support; give a global IPv6 address or a host name"
        ));
    }
    if text.starts_with('[') && !text.contains(']') {
        return Err(format!("`{text}` has an unmatched `[`"));
    }
    if text.contains("://") || text.contains('/') {
        return Err(format!(
            "`{text}` is a URL; give the host name alone, or set the full URL in `ewsUrl`"
        ));
    }
    if text.contains(':') {
        return Err(format!(
            "`{text}` contains a port; give the host name alone, and set a URL with a port in `ewsUrl`"
        ));
    }
    normalize_domain(text).map(Host::Name)
}

/// Checks an email address or UPN, `local@domain` with a dotted domain, and returns it
/// with the domain lowercased.
pub(crate) fn normalize_address(text: &str) -> Result<String, String> {
    let Some((local, domain)) = text.split_once('@') else {
        return Err(format!("`{text}` is not of the form `user@domain`"));
    };
    if let Some(bad) = text.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "`{text}` contains the invisible character `{}`; retype the address",
            bad.escape_default()
        ));
    }
    if domain.contains('@') {
        return Err(format!("`{text}` contains more than one `@`"));
    }

    if local.is_empty() {
        return Err(format!("`{text}` has nothing before `@`"));
    }
    if local.len() > 64 {
        return Err(format!("`{text}` has more than 64 characters before `@`"));
    }
    if let Some(bad) = local
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "()<>[]\\,;:\"@".contains(*c))
    {
        return Err(format!(
            "`{text}` contains `{}` before `@`, which an address cannot contain",
            bad.escape_default()
        ));
    }

    if domain.is_empty() {
        return Err(format!("`{text}` has nothing after `@`"));
    }
    // A user principal name is matched as written, so `contoso.com.` would not match
    // `contoso.com`.
    if domain.ends_with('.') {
        return Err(format!("`{text}` ends with `.`; remove the trailing dot"));
    }
    if domain.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err(format!(
            "`{text}` ends in an IP address; an address ends in a domain name such as `contoso.com`"
        ));
    }
    if !domain.contains('.') {
        return Err(format!(
            "`{text}` does not end in a full domain name such as `contoso.com`"
        ));
    }
    let domain = normalize_domain(domain).map_err(|message| {
        format!("`{text}` does not end in a valid domain such as `contoso.com` ({message})")
    })?;
    Ok(format!("{local}@{domain}"))
}

/// Checks a file or directory path from the spec for mistakes that make it unusable.
pub(crate) fn check_path(path: &Path) -> Result<(), String> {
    let text = path.to_string_lossy();
    if text.trim().is_empty() {
        return Err("is empty; give a file or directory path".to_owned());
    }
    if text.contains('\0') {
        return Err("contains a NUL character, which a path cannot contain".to_owned());
    }
    if let Some(bad) = text.chars().find(|c| c.is_control()) {
        return Err(format!(
            "contains the control character `{}`; remove it",
            bad.escape_default()
        ));
    }
    if text.starts_with('~') {
        return Err(
            "starts with `~`, but siuctl does not expand `~`; write the full path, such as `/home/siu/spool`"
                .to_owned(),
        );
    }
    if text.contains("://") {
        return Err(format!("`{text}` is a URL; give a file or directory path"));
    }
    Ok(())
}

/// Checks the syntax of a distinguished name: comma-separated `attribute=value` parts,
/// with `\` escaping a comma inside a value.
pub(crate) fn check_dn(text: &str) -> Result<(), String> {
    let parts = split_dn(text);
    if parts.iter().all(|part| part.trim().is_empty()) {
        return Err("is empty".to_owned());
    }
    for part in parts {
        let Some((attribute, value)) = part.split_once('=') else {
            return Err(format!(
                "`{text}` is not a distinguished name: `{}` has no `=`; write it like `OU=Service Accounts,DC=contoso,DC=com`",
                part.trim()
            ));
        };
        let attribute = attribute.trim();
        if attribute.is_empty()
            || !attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(format!(
                "`{text}` is not a distinguished name: `{attribute}` is not an attribute name"
            ));
        }
        if value.trim().is_empty() {
            return Err(format!(
                "`{text}` is not a distinguished name: `{attribute}=` has no value"
            ));
        }
    }
    Ok(())
}

/// Splits a distinguished name at commas that are not escaped.
fn split_dn(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Returns the parts of a distinguished name, trimmed and lowercased, for comparisons.
fn dn_parts(text: &str) -> Vec<String> {
    split_dn(text)
        .into_iter()
        .map(|part| {
            part.split_once('=')
                .map(|(attribute, value)| format!("{}={}", attribute.trim(), value.trim()))
                .unwrap_or_else(|| part.trim().to_owned())
                .to_lowercase()
        })
        .collect()
}

/// Returns whether `dn` lies strictly below `base`, comparing parts without case.
pub(crate) fn dn_is_below(dn: &str, base: &str) -> bool {
    let dn = dn_parts(dn);
    let base = dn_parts(base);
    dn.len() > base.len() && dn.ends_with(&base)
}

/// Parses `bindUser`: `DOMAIN\user`, a distinguished name, or a UPN.
pub(crate) fn parse_bind_user(text: &str) -> Result<BindUser, String> {
    if let Some((domain, user)) = text.split_once('\\') {
        if domain.is_empty()
            || user.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            || user.contains('\\')
        {
            return Err(format!(
                "`{text}` is not of the form `DOMAIN\\user`, for example `CONTOSO\\siu-admin`"
            ));
        }
        return Ok(BindUser::DownLevel {
            domain: domain.to_owned(),
            user: user.to_owned(),
        });
    }
    if text.contains('=') {
        check_dn(text)?;
        return Ok(BindUser::Dn(text.to_owned()));
    }
    if text.contains('@') {
        return normalize_address(text).map(BindUser::Upn);
    }
    Err(format!(
        "`{text}` is not a UPN (`siu-admin@contoso.com`), a distinguished name or `DOMAIN\\user`"
    ))
}

/// Parses a GUID such as `8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55`; the nil GUID is
/// rejected because no tenant or application has it.
pub(crate) fn parse_guid(text: &str) -> Result<Uuid, String> {
    let guid = Uuid::try_parse(text.trim()).map_err(|_| {
        format!(
            "`{text}` is not a GUID; copy it from the Microsoft Entra admin center, it looks like `8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55`"
        )
    })?;
    if guid.is_nil() {
        return Err(
            "is the nil GUID; copy the real ID from the Microsoft Entra admin center".to_owned(),
        );
    }
    Ok(guid)
}

/// Normalizes a SHA-1 certificate thumbprint to 40 uppercase hexadecimal digits,
/// dropping spaces and colons.
pub(crate) fn normalize_thumbprint(text: &str) -> Result<String, String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "contains `{}`; a thumbprint has only hexadecimal digits",
            bad.escape_default()
        ));
    }
    if digits.len() == 64 {
        return Err(
            "has 64 hexadecimal digits, so it is a SHA-256 thumbprint; give the SHA-1 thumbprint, which has 40"
                .to_owned(),
        );
    }
    if digits.len() != 40 {
        return Err(format!(
            "has {} hexadecimal digits; a SHA-1 thumbprint has 40",
            digits.len()
        ));
    }
    Ok(digits.to_ascii_uppercase())
}

/// Checks the name of an environment variable: a letter or `_`, then letters, digits and
/// `_`. The message leaves the name out, because a name that fails this check may be a
/// secret written in its place.
pub(crate) fn check_env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err("not an environment variable name; use letters, digits and `_`".to_owned())
    }
}

/// Returns the byte range of the user name and password in a URL such as
/// `https://user:password@host/`, including the `@`.
pub(crate) fn userinfo_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let authority_end = url[start..]
        .find(['/', '\\', '?', '#'])
        .map_or(url.len(), |offset| start + offset);
    let at = url[start..authority_end].rfind('@')? + start;
    Some(start..at + 1)
}

/// Returns `url` with its user name and password replaced by `[redacted]`, for messages.
pub(crate) fn redact_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    match userinfo_range(url) {
        Some(range) => format!("{}[redacted]@{}", &url[..range.start], &url[range.end..]).into(),
        None => url.into(),
    }
}

/// Parses a duration such as `90s`, `15m` or `1h 30m` and checks it against a range.
pub(crate) fn parse_duration(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err(format!(
            "`{text}` is negative; write a duration of zero or more"
        ));
    }
    if trimmed.starts_with(['P', 'p']) && trimmed.contains(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`{text}` is an ISO 8601 duration, which siuctl does not read; write a number and a unit, for example `1d` for `P1D` or `15m` for `PT15M`"
        ));
    }
    let duration = humantime::parse_duration(trimmed).map_err(|error| {
        format!("`{text}` is not a duration ({error}); write a number and a unit, for example `90s`, `15m` or `1h 30m`")
    })?;
    if duration < min || duration > max {
        return Err(format!(
            "is {}, outside the allowed range {} to {}",
            humantime::format_duration(duration),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_name_accepts_dns_labels() {
        for name in ["contoso", "a", "siu-1", &"a".repeat(63)] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn check_name_rejects_bad_names() {
        for name in ["", "Contoso", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn parse_host_accepts_names_and_addresses() {
        assert_eq!(
            parse_host("Mail.Contoso.com"),
            Ok(Host::Name("mail.contoso.com".to_owned()))
        );
        assert_eq!(
            parse_host("192.0.2.10"),
            Ok(Host::Ip("192.0.2.10".parse().unwrap()))
        );
        assert_eq!(
            parse_host("[2001:db8::1]"),
            Ok(Host::Ip("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(parse_host("::1"), Ok(Host::Ip("::1".parse().unwrap())));
    }

    #[test]
    fn parse_host_rejects_urls_ports_and_short_names() {
        for text in [
            "https://mail.contoso.com",
            "mail.contoso.com:443",
            "mail",
            "999.1.1.1",
            "mail_1.contoso.com",
            "",
        ] {
            assert!(parse_host(text).is_err(), "{text}");
        }
    }

    #[test]
    fn normalize_address_lowercases_domain() {
        assert_eq!(
            normalize_address("Alice@Contoso.COM"),
            Ok("Alice@contoso.com".to_owned())
        );
    }

    #[test]
    fn normalize_address_rejects_bad_addresses() {
        for text in [
            "alice",
            "@contoso.com",
            "alice@",
            "alice@contoso",
            "a b@contoso.com",
            "a@b@contoso.com",
        ] {
            assert!(normalize_address(text).is_err(), "{text}");
        }
    }

    #[test]
    fn normalize_address_rejects_invisible_characters() {
        for text in [
            "svc\u{200b}@contoso.com",
            "svc\u{202e}@contoso.com",
            "\u{feff}svc@contoso.com",
        ] {
            let message = normalize_address(text).unwrap_err();

            assert!(message.contains("invisible character"), "{message}");
        }
    }

    #[test]
    fn normalize_address_explains_domain_problems() {
        let cases = [
            ("svc@contoso.com.", "ends with `.`"),
            ("user@@contoso.com", "more than one `@`"),
            ("svc@bücher.de", "ASCII form"),
            ("svc@con_toso.com", "contains `_`"),
            ("svc@contoso", "full domain name"),
            ("svc@192.168.1.1", "IP address"),
        ];
        for (text, expected) in cases {
            let message = normalize_address(text).unwrap_err();

            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn check_path_rejects_unusable_paths() {
        let cases = [
            ("spo\0ol", "NUL character"),
            ("spo\nol", "control character"),
            ("   ", "empty"),
            ("~/spool", "does not expand `~`"),
            ("file:///var/spool", "URL"),
        ];
        for (text, expected) in cases {
            let message = check_path(Path::new(text)).unwrap_err();

            assert!(message.contains(expected), "{text:?}: {message}");
        }
    }

    #[test]
    fn check_path_accepts_ordinary_paths() {
        for text in [
            "spool",
            "/var/spool/siuctl",
            "../state",
            "my dir/spool",
            "a~b",
        ] {
            assert_eq!(check_path(Path::new(text)), Ok(()), "{text}");
        }
    }

    #[test]
    fn parse_host_names_zone_and_bracket_problems() {
        let cases = [
            ("fe80::1%eth0", "zone"),
            ("[fe80::1%25eth0]", "zone"),
            ("[2001:db8::1", "`[`"),
            ("[2001:db8::1]:443", "port"),
            ("mail.bücher.de", "ASCII form"),
        ];
        for (text, expected) in cases {
            let message = parse_host(text).unwrap_err();

            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn check_dn_accepts_escaped_commas() {
        assert_eq!(
            check_dn("CN=Smith\\, John,OU=Users,DC=contoso,DC=com"),
            Ok(())
        );
        assert_eq!(check_dn("OU=Service Accounts, DC=contoso, DC=com"), Ok(()));
    }

    #[test]
    fn check_dn_rejects_malformed_names() {
        for text in ["", "contoso.com", "DC=contoso,", "DC=,DC=com", "D C=x"] {
            assert!(check_dn(text).is_err(), "{text}");
        }
    }

    #[test]
    fn dn_is_below_ignores_case_and_spaces() {
        assert!(dn_is_below(
            "OU=Svc,DC=Contoso, DC=com",
            "dc=contoso,dc=com"
        ));
        assert!(!dn_is_below("DC=contoso,DC=com", "DC=contoso,DC=com"));
        assert!(!dn_is_below(
            "OU=Svc,DC=fabrikam,DC=com",
            "DC=contoso,DC=com"
        ));
    }

    #[test]
    fn parse_bind_user_reads_each_form() {
        assert_eq!(
            parse_bind_user("CONTOSO\\siu-admin"),
            Ok(BindUser::DownLevel {
                domain: "CONTOSO".to_owned(),
                user: "siu-admin".to_owned()
            })
        );
        assert!(matches!(
            parse_bind_user("CN=siu,CN=Users,DC=contoso,DC=com"),
            Ok(BindUser::Dn(_))
        ));
        assert!(matches!(
            parse_bind_user("siu@contoso.com"),
            Ok(BindUser::Upn(_))
        ));
        assert!(parse_bind_user("siu-admin").is_err());
        assert!(parse_bind_user("CONTOSO\\").is_err());
    }

    #[test]
    fn parse_guid_rejects_nil_and_garbage() {
        assert!(parse_guid("8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55").is_ok());
        assert!(parse_guid("00000000-0000-0000-0000-000000000000").is_err());
        assert!(parse_guid("5d3b...").is_err());
    }

    #[test]
    fn normalize_thumbprint_strips_separators() {
        let spaced = "3a 1f 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 00 11";
        let coloned = "3A:1F:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11";

        assert_eq!(
            normalize_thumbprint(spaced),
            Ok("3A1F00112233445566778899AABBCCDDEEFF0011".to_owned())
        );
        assert_eq!(normalize_thumbprint(coloned), normalize_thumbprint(spaced));
    }

    #[test]
    fn normalize_thumbprint_rejects_wrong_length_and_digits() {
        assert!(normalize_thumbprint("3A1F").unwrap_err().contains("has 4"));
        assert!(
            normalize_thumbprint(&"G".repeat(40))
                .unwrap_err()
                .contains("`G`")
        );
    }

    #[test]
    fn normalize_thumbprint_recognizes_sha256() {
        let message = normalize_thumbprint(&"A".repeat(64)).unwrap_err();

        assert!(message.contains("SHA-256"), "{message}");
    }

    #[test]
    fn parse_duration_explains_common_mistakes() {
        let min = Duration::ZERO;
        let max = Duration::from_secs(3600);

        for (text, expected) in [
            ("P1D", "ISO 8601"),
            ("PT15M", "ISO 8601"),
            ("-5s", "negative"),
            (" -1h", "negative"),
        ] {
            let message = parse_duration(text, min, max).unwrap_err();

            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn check_env_name_rejects_invalid_names() {
        assert_eq!(check_env_name("AD_BIND_PASSWORD"), Ok(()));
        assert_eq!(check_env_name("_x1"), Ok(()));
        for name in ["", "1A", "A-B", "A B", "$A"] {
            assert!(check_env_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn check_env_name_hides_rejected_name() {
        let message = check_env_name("hunter2!").unwrap_err();

        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn redact_userinfo_hides_credentials() {
        assert_eq!(
            redact_userinfo("https://siu:hunter2@mail.contoso.com/EWS/Exchange.asmx"),
            "https://[redacted]@mail.contoso.com/EWS/Exchange.asmx"
        );
        assert_eq!(
            redact_userinfo("ldaps://a@b:c@dc1.contoso.com"),
            "ldaps://[redacted]@dc1.contoso.com"
        );
        assert_eq!(
            redact_userinfo("https://mail.contoso.com/EWS/user@contoso.com"),
            "https://mail.contoso.com/EWS/user@contoso.com"
        );
        assert_eq!(redact_userinfo("mail.contoso.com"), "mail.contoso.com");
    }

    #[test]
    fn parse_duration_checks_range() {
        let min = Duration::from_secs(1);
        let max = Duration::from_secs(3600);

        assert_eq!(
            parse_duration("1h 30m", min, Duration::MAX),
            Ok(Duration::from_secs(5400))
        );
        assert_eq!(parse_duration("90s", min, max), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("2h", min, max)
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            parse_duration("0s", min, max)
                .unwrap_err()
                .contains("outside")
        );
        assert!(
            parse_duration("5", min, max)
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
