//! Connection settings: server URL, TLS, bind identity, password and limits.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::DirectoryError;

/// Connection and bind settings for a directory server.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// Server URL, `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`.
    pub url: String,
    /// Upgrades an `ldap://` connection with the StartTLS extended operation before binding.
    pub start_tls: bool,
    /// PEM file with the CA certificates that verify the server's certificate. Without one,
    /// the operating system's trust store verifies it.
    pub ca_file: Option<PathBuf>,
    /// Accepts any server certificate. Only for tests against servers with throwaway
    /// certificates: it logs a warning on every connection.
    pub insecure_skip_tls_verify: bool,
    /// Account to bind as.
    pub bind_identity: BindIdentity,
    /// Password of the bind account.
    pub password: Password,
    /// DN under which users and groups are searched. Without one, the server's
    /// `defaultNamingContext` from the root DSE is used.
    pub base_dn: Option<String>,
    /// Maximum time for the TCP connection and the TLS or StartTLS handshake.
    pub connect_timeout: Duration,
    /// Maximum time for each LDAP operation, including each page of a search.
    pub operation_timeout: Duration,
    /// Entries per page of the Simple Paged Results control. Active Directory caps pages at
    /// its `MaxPageSize` policy, 1,000 by default.
    pub page_size: u32,
    /// Values per request when reading `member`, or `None` to request the plain attribute
    /// and follow ranges only where the server imposes them (AD does above 1,500 values by
    /// default, Samba does not).
    pub member_range_size: Option<u32>,
    /// The method that resolves transitive group members.
    pub transitive_strategy: TransitiveStrategy,
}

impl ConnectionSettings {
    /// Creates settings with default timeouts (10 s to connect, 30 s per operation), pages of
    /// 500 entries and no forced ranges.
    pub fn new(url: impl Into<String>, bind_identity: BindIdentity, password: Password) -> Self {
        ConnectionSettings {
            url: url.into(),
            start_tls: false,
            ca_file: None,
            insecure_skip_tls_verify: false,
            bind_identity,
            password,
            base_dn: None,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            page_size: 500,
            member_range_size: None,
            transitive_strategy: TransitiveStrategy::Auto,
        }
    }
}

/// The method that resolves transitive group members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransitiveStrategy {
    /// The in-chain matching rule when the root DSE announces Active Directory, otherwise
    /// (or when the server rejects the rule) a walk of `member`.
    #[default]
    Auto,
    /// One paged search with the LDAP_MATCHING_RULE_IN_CHAIN rule (1.2.840.113556.1.4.1941).
    InChain,
    /// A breadth-first walk of `member` with range retrieval and cycle detection.
    Walk,
}

/// The account a connection binds as, in one of the three forms that Active Directory
/// accepts as the name of a simple bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindIdentity {
    /// A user principal name, `user@example.com`.
    Upn(String),
    /// A distinguished name, `CN=svc,CN=Users,DC=example,DC=com`.
    Dn(String),
    /// A down-level logon name, `EXAMPLE\svc`.
    DownLevel { domain: String, user: String },
}

impl BindIdentity {
    /// Returns the name sent in the simple bind request.
    pub fn bind_name(&self) -> String {
        match self {
            BindIdentity::Upn(upn) => upn.clone(),
            BindIdentity::Dn(dn) => dn.clone(),
            BindIdentity::DownLevel { domain, user } => format!("{domain}\\{user}"),
        }
    }
}

impl FromStr for BindIdentity {
    type Err = DirectoryError;

    /// Parses a DN (`attribute=value,...`), then `DOMAIN\user`, then a UPN (`user@domain`).
    /// The DN test comes first because an escaped DN value may contain a backslash.
    fn from_str(identity: &str) -> Result<Self, Self::Err> {
        let invalid = || DirectoryError::InvalidBindIdentity {
            identity: identity.to_owned(),
        };

        if let Some((attribute, value)) = identity.split_once('=')
            && is_attribute_type(attribute)
            && !value.is_empty()
        {
            return Ok(BindIdentity::Dn(identity.to_owned()));
        }
        if let Some((domain, user)) = identity.split_once('\\') {
            if domain.is_empty() || user.is_empty() || user.contains('\\') {
                return Err(invalid());
            }
            return Ok(BindIdentity::DownLevel {
                domain: domain.to_owned(),
                user: user.to_owned(),
            });
        }
        match identity.rsplit_once('@') {
            Some((user, domain)) if !user.is_empty() && !domain.is_empty() => {
                Ok(BindIdentity::Upn(identity.to_owned()))
            }
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for BindIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.bind_name())
    }
}

/// Reports whether `name` is an attribute type as RFC 4512 allows it in a DN: a keyword
/// (letter, then letters, digits and hyphens) or a dotted OID.
fn is_attribute_type(name: &str) -> bool {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) if first.is_ascii_alphabetic() => {
            characters.all(|c| c.is_ascii_alphanumeric() || c == '-')
        }
        Some(first) if first.is_ascii_digit() => name
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())),
        _ => false,
    }
}

/// A password that never appears in `Debug` output, logs or error messages. It has no
/// `Display` implementation, so reading it takes an explicit [`Password::expose`].
//
// TODO-security: the bytes are not wiped from memory when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// Returns the password itself, for the bind request or a secret store.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reports whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<&str> for Password {
    fn from(password: &str) -> Self {
        Password::new(password)
    }
}

impl From<String> for Password {
    fn from(password: String) -> Self {
        Password::new(password)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_identity_parses_upn() {
        let identity: BindIdentity = "svc-siu@example.com".parse().expect("a UPN should parse");
        assert_eq!(
            identity,
            BindIdentity::Upn("svc-siu@example.com".to_owned())
        );
        assert_eq!(identity.bind_name(), "svc-siu@example.com");
    }

    #[test]
    fn bind_identity_parses_dn() {
        let dn = "CN=Smith\\, John,OU=Service Accounts,DC=example,DC=com";
        let identity: BindIdentity = dn.parse().expect("a DN should parse");
        assert_eq!(identity, BindIdentity::Dn(dn.to_owned()));
        let oid_dn = "2.5.4.3=svc,DC=example,DC=com";
        assert_eq!(
            oid_dn
                .parse::<BindIdentity>()
                .expect("an OID DN should parse"),
            BindIdentity::Dn(oid_dn.to_owned())
        );
    }

    #[test]
    fn bind_identity_parses_down_level_name() {
        let identity: BindIdentity = "EXAMPLE\\svc-siu"
            .parse()
            .expect("DOMAIN\\user should parse");
        assert_eq!(
            identity,
            BindIdentity::DownLevel {
                domain: "EXAMPLE".to_owned(),
                user: "svc-siu".to_owned()
            }
        );
        assert_eq!(identity.bind_name(), "EXAMPLE\\svc-siu");
    }

    #[test]
    fn bind_identity_rejects_malformed_names() {
        for identity in [
            "",
            "svc",
            "@example.com",
            "svc@",
            "\\svc",
            "EXAMPLE\\",
            "A\\B\\C",
            "=x",
        ] {
            assert!(
                identity.parse::<BindIdentity>().is_err(),
                "identity {identity:?} should be rejected"
            );
        }
    }

    #[test]
    fn password_debug_is_redacted() {
        let password = Password::new("Sup3r-Secret!");
        let settings = ConnectionSettings::new(
            "ldaps://dc.example.com",
            BindIdentity::Upn("svc@example.com".to_owned()),
            password.clone(),
        );
        assert_eq!(format!("{password:?}"), "Password(<redacted>)");
        assert!(!format!("{settings:?}").contains("Sup3r-Secret!"));
        assert_eq!(password.expose(), "Sup3r-Secret!");
    }
}
