//! An external Active Directory that the lab's world follows, as Exchange follows the domain
//! it is installed in.
//!
//! With [`LabConfig::external_directory`](crate::LabConfig::external_directory) set, the lab
//! still serves EWS, the management shell and Entra itself, but accounts live in another
//! directory server, such as a Samba AD domain controller:
//!
//! - [`seed()`] writes the fixture's users and groups into the external directory below an
//!   organizational unit of their own ([`ExternalDirectory::seed_root`]). A second run with
//!   the same world changes nothing.
//! - [`lookup`] finds the accounts that EWS Basic authentication or a management cmdlet names
//!   and the world does not contain, adds them to the world without a mailbox, and checks
//!   Basic passwords with an LDAP simple bind as the account. Exchange in effect does the same
//!   when IIS has the domain controller log the user on.
//!
//! NTLM cannot be checked this way: verifying an NTLM response needs the account's NT hash,
//! which Active Directory never returns over LDAP. In this mode the on-premises server
//! therefore offers only Basic authentication and answers NTLM with a 401 that says so.
//!
//! Every connection uses TLS: `ldaps://` URLs directly, `ldap://` URLs through StartTLS,
//! trusting only [`ExternalDirectory::ca_pem`].

mod connection;
pub mod lookup;
pub mod seed;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use connection::ExternalClient;
pub use seed::{SeedReport, seed};

/// Name of the organizational unit below the base DN that seeding writes into.
pub const SEED_OU: &str = "siu-lab";

/// How long a successful Basic logon is remembered by default. The update loop then does not
/// bind once per request, and a disabled account still stops working within minutes. IIS
/// caches Basic logon tokens in the same way, for 15 minutes by default (`UserTokenTTL`, see
/// <https://learn.microsoft.com/previous-versions/windows/it-pro/windows-server-2003/cc758902(v=ws.10)>).
pub const DEFAULT_BIND_CACHE_TTL: Duration = Duration::from_secs(120);

/// How to reach the external directory.
#[derive(Clone)]
pub struct ExternalDirectory {
    /// `ldaps://HOST:PORT`, or `ldap://HOST:PORT`, which the lab upgrades with StartTLS.
    pub url: String,
    /// The account the lab binds as for lookups and seeding: a UPN, a DN or `DOMAIN\user`.
    /// Seeding needs the right to create users, groups and organizational units below the
    /// base DN and to set passwords.
    pub bind_user: String,
    /// Password of `bind_user`.
    pub bind_password: String,
    /// PEM certificates of the CAs trusted for the directory's TLS certificate.
    pub ca_pem: String,
    /// The domain's naming context, where lookups start, such as `DC=siu,DC=test`.
    pub base_dn: String,
    /// How long a successful Basic logon is remembered before the next one binds again.
    pub bind_cache_ttl: Duration,
}

impl std::fmt::Debug for ExternalDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalDirectory")
            .field("url", &self.url)
            .field("bind_user", &self.bind_user)
            .field("base_dn", &self.base_dn)
            .field("bind_cache_ttl", &self.bind_cache_ttl)
            .finish_non_exhaustive()
    }
}

impl ExternalDirectory {
    /// Describes a directory with the default bind cache lifetime.
    pub fn new(
        url: impl Into<String>,
        bind_user: impl Into<String>,
        bind_password: impl Into<String>,
        ca_pem: impl Into<String>,
        base_dn: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            bind_user: bind_user.into(),
            bind_password: bind_password.into(),
            ca_pem: ca_pem.into(),
            base_dn: base_dn.into(),
            bind_cache_ttl: DEFAULT_BIND_CACHE_TTL,
        }
    }

    /// Reads the environment file that `scripts/samba-ad.sh start` writes (`SIU_AD_*`
    /// variables in shell syntax): the LDAPS URL, the administrator's UPN and password, the
    /// CA file and the base DN.
    pub fn from_env_file(path: &Path) -> Result<Self, ExternalError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExternalError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let variables = parse_env(&text);
        let variable = |name: &'static str| {
            variables
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .filter(|value| !value.is_empty())
                .ok_or_else(|| ExternalError::Setting {
                    setting: name.to_string(),
                    message: format!(
                        "missing from `{}` (write it with `scripts/samba-ad.sh start`)",
                        path.display()
                    ),
                })
        };
        let url = variable("SIU_AD_LDAPS_URL").or_else(|_| variable("SIU_AD_URL"))?;
        let ca_file = PathBuf::from(variable("SIU_AD_CA_FILE")?);
        let ca_pem = std::fs::read_to_string(&ca_file).map_err(|source| ExternalError::Io {
            path: ca_file.clone(),
            source,
        })?;
        Ok(Self::new(
            url,
            variable("SIU_AD_BIND_UPN")?,
            variable("SIU_AD_PASSWORD")?,
            ca_pem,
            variable("SIU_AD_BASE_DN")?,
        ))
    }

    /// Returns the DN of the organizational unit that seeding writes into.
    pub fn seed_root(&self) -> String {
        format!("OU={SEED_OU},{}", self.base_dn)
    }

    /// Returns the DNS name of the domain, from the `DC=` components of the base DN.
    pub fn dns_domain(&self) -> String {
        dns_domain_of(&self.base_dn)
    }
}

/// Returns the DNS name that the `DC=` components of a DN spell (`siu.test`).
pub(crate) fn dns_domain_of(dn: &str) -> String {
    dn.split(',')
        .filter_map(|rdn| rdn.trim().split_once('='))
        .filter(|(attribute, _)| attribute.trim().eq_ignore_ascii_case("DC"))
        .map(|(_, value)| value.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

/// Errors of the external directory.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// A setting is missing or unusable.
    #[error("invalid external directory setting {setting}: {message}")]
    Setting {
        /// The setting, such as `SIU_AD_CA_FILE` or `url`.
        setting: String,
        /// The problem and its fix.
        message: String,
    },
    /// A file could not be read.
    #[error("failed to read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed, or a request got no response.
    #[error("failed to {action} at {url}: {source}")]
    Connection {
        /// The attempted action, such as `connect` or `bind as Administrator@siu.test`.
        action: String,
        /// The directory's URL.
        url: String,
        /// The underlying error, boxed because it is large.
        #[source]
        source: Box<ldap3::LdapError>,
    },
    /// The directory returned an error result for a request.
    #[error("the external directory rejected {action} `{dn}`: result code {code}, {message}")]
    Rejected {
        /// The operation, such as `adding` or `searching`.
        action: &'static str,
        /// The entry the request named.
        dn: String,
        /// The LDAP result code (RFC 4511, appendix A).
        code: u32,
        /// The server's diagnostic message.
        message: String,
    },
    /// An identity matched more than one account.
    #[error(
        "`{identity}` matches {count} accounts in the external directory; name the account by UPN"
    )]
    Ambiguous {
        /// The identity that was looked up.
        identity: String,
        /// How many accounts matched.
        count: usize,
    },
}

/// Parses `NAME=value` lines in shell syntax: `export` prefixes, comments, and values in
/// single quotes (taken literally), double quotes (with backslash escapes) or bare.
fn parse_env(text: &str) -> Vec<(String, String)> {
    let mut variables = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, raw)) = line.split_once('=') else {
            continue;
        };
        let value = if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            inner.to_string()
        } else if let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            let mut value = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    other => value.push(other),
                }
            }
            value
        } else {
            raw.trim().to_string()
        };
        variables.push((name.trim().to_string(), value));
    }
    variables
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_values_follow_shell_quoting() {
        let text = "# written by samba-ad.sh\n\
                    SIU_AD_URL='ldap://127.0.0.1:389'\n\
                    export SIU_AD_BIND_NT='SIU\\Administrator'\n\
                    QUOTED=\"a \\\"b\\\" c\"\n\
                    BARE=plain\n";
        let variables = parse_env(text);
        let get = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(get("SIU_AD_URL"), Some("ldap://127.0.0.1:389"));
        assert_eq!(get("SIU_AD_BIND_NT"), Some("SIU\\Administrator"));
        assert_eq!(get("QUOTED"), Some("a \"b\" c"));
        assert_eq!(get("BARE"), Some("plain"));
    }

    #[test]
    fn env_file_without_ca_file_is_rejected() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("samba-ad.env");
        std::fs::write(
            &path,
            "SIU_AD_LDAPS_URL='ldaps://127.0.0.1:636'\nSIU_AD_BASE_DN='DC=siu,DC=test'\n",
        )
        .expect("env file writes");
        let error = ExternalDirectory::from_env_file(&path).expect_err("settings are missing");
        assert!(error.to_string().contains("SIU_AD_CA_FILE"), "{error}");
    }

    #[test]
    fn dns_domain_comes_from_dc_components() {
        assert_eq!(dns_domain_of("OU=x,DC=Siu, dc=test"), "siu.test");
        let directory = ExternalDirectory::new("ldaps://h", "u", "", "", "DC=siu,DC=test");
        assert_eq!(directory.seed_root(), "OU=siu-lab,DC=siu,DC=test");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let directory = ExternalDirectory::new("ldaps://h", "u", "Hidden-Pass-4", "", "DC=x");
        assert!(!format!("{directory:?}").contains("Hidden-Pass-4"));
    }
}
