//! Connections to the external directory: TLS, binds, paged searches, ranged attribute values
//! and result codes.

use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{Control, ControlType, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Scope, SearchEntry};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::OnceCell;

use super::lookup::BindCache;
use super::{ExternalDirectory, ExternalError};

/// Limit for opening a connection, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit for one request. Generous, because an add with a password makes the server derive
/// several password hashes and a modify of a large group rewrites many links.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Entries per page of a paged search, below AD's default MaxPageSize of 1,000.
const PAGE_SIZE: i32 = 500;

/// LDAP result code `success`.
pub(crate) const SUCCESS: u32 = 0;
/// LDAP result code `noSuchObject`.
pub(crate) const NO_SUCH_OBJECT: u32 = 32;
/// LDAP result code `invalidCredentials`.
pub(crate) const INVALID_CREDENTIALS: u32 = 49;
/// LDAP result code `entryAlreadyExists`.
pub(crate) const ENTRY_ALREADY_EXISTS: u32 = 68;

/// A client of the external directory, with the lab's cache of successful Basic logons.
pub struct ExternalClient {
    directory: ExternalDirectory,
    tls: Arc<rustls::ClientConfig>,
    /// Successful Basic logons, so that repeated requests do not bind each time.
    pub(crate) binds: BindCache,
    /// The domain's NetBIOS name for `DOMAIN\user` logons, once read. `None` inside when the
    /// directory does not publish it.
    netbios: OnceCell<Option<String>>,
}

impl std::fmt::Debug for ExternalClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalClient")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl ExternalClient {
    /// Checks the settings and prepares TLS. Connections open only when a request needs one.
    pub fn new(directory: ExternalDirectory) -> Result<Self, ExternalError> {
        let scheme = directory.url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("ldaps" | "ldap")) {
            return Err(ExternalError::Setting {
                setting: "url".into(),
                message: format!("`{}` is not an ldaps:// or ldap:// URL", directory.url),
            });
        }
        let mut roots = rustls::RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(directory.ca_pem.as_bytes()) {
            let added = certificate
                .map_err(|e| e.to_string())
                .and_then(|c| roots.add(c).map_err(|e| e.to_string()));
            if let Err(message) = added {
                return Err(ExternalError::Setting {
                    setting: "CA certificates".into(),
                    message: format!("a CA certificate is invalid: {message}"),
                });
            }
        }
        if roots.is_empty() {
            return Err(ExternalError::Setting {
                setting: "CA certificates".into(),
                message: "no PEM certificate found; give the CA file that issued the \
                          directory's TLS certificate"
                    .into(),
            });
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ExternalError::Setting {
                setting: "TLS".into(),
                message: e.to_string(),
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            directory,
            tls: Arc::new(tls),
            binds: BindCache::new(),
            netbios: OnceCell::new(),
        })
    }

    /// Returns the settings this client was built from.
    pub fn directory(&self) -> &ExternalDirectory {
        &self.directory
    }

    /// Opens a TLS connection without binding.
    pub(crate) async fn connect(&self) -> Result<Ldap, ExternalError> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(CONNECT_TIMEOUT)
            .set_config(self.tls.clone())
            .set_starttls(self.directory.url.starts_with("ldap://"));
        let (connection, ldap) = LdapConnAsync::with_settings(settings, &self.directory.url)
            .await
            .map_err(|source| self.connection_error("connect", source))?;
        let url = self.directory.url.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(url, %error, "external directory connection closed with an error");
            }
        });
        Ok(ldap)
    }

    /// Sends a simple bind and returns the server's result, successful or not.
    pub(crate) async fn bind(
        &self,
        ldap: &mut Ldap,
        name: &str,
        password: &str,
    ) -> Result<LdapResult, ExternalError> {
        ldap.with_timeout(REQUEST_TIMEOUT)
            .simple_bind(name, password)
            .await
            .map_err(|source| self.connection_error(&format!("bind as {name}"), source))
    }

    /// Opens a connection bound as the configured account.
    pub(crate) async fn admin(&self) -> Result<Ldap, ExternalError> {
        let mut ldap = self.connect().await?;
        let user = self.directory.bind_user.clone();
        let result = self
            .bind(&mut ldap, &user, &self.directory.bind_password)
            .await?;
        check(result, "the bind as", &user)?;
        Ok(ldap)
    }

    /// Searches with the paged results control and returns every entry.
    pub(crate) async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<SearchEntry>, ExternalError> {
        let mut entries = Vec::new();
        let mut cookie = Vec::new();
        loop {
            let control = PagedResults {
                size: PAGE_SIZE,
                cookie,
            };
            let ldap3::SearchResult(page, result) = ldap
                .with_controls(control)
                .with_timeout(REQUEST_TIMEOUT)
                .search(base, scope, filter, attributes.to_vec())
                .await
                .map_err(|source| self.connection_error(&format!("search {base}"), source))?;
            let result = check(result, "searching", base)?;
            entries.extend(
                page.into_iter()
                    .filter(|entry| !entry.is_ref() && !entry.is_intermediate())
                    .map(SearchEntry::construct),
            );
            cookie = result
                .ctrls
                .into_iter()
                .find_map(|control| match control {
                    Control(Some(ControlType::PagedResults), raw) => {
                        Some(raw.parse::<PagedResults>().cookie)
                    }
                    _ => None,
                })
                .unwrap_or_default();
            if cookie.is_empty() {
                return Ok(entries);
            }
        }
    }

    /// Returns every value of a multi-valued attribute of `entry`, following range retrieval
    /// (`member;range=0-1499`), which AD uses above its MaxValRange of 1,500 values.
    pub(crate) async fn all_values(
        &self,
        ldap: &mut Ldap,
        entry: &SearchEntry,
        attribute: &str,
    ) -> Result<Vec<String>, ExternalError> {
        let mut values = Vec::new();
        let mut next = None;
        for (name, found) in &entry.attrs {
            if name.eq_ignore_ascii_case(attribute) {
                return Ok(found.clone());
            }
            if let Some(end) = range_end(name, attribute) {
                values.extend(found.iter().cloned());
                next = end;
            }
        }
        while let Some(start) = next {
            let ranged = format!("{attribute};range={start}-*");
            let found = self
                .search(
                    ldap,
                    &entry.dn,
                    Scope::Base,
                    "(objectClass=*)",
                    &[ranged.as_str()],
                )
                .await?;
            next = None;
            for (name, found) in found.iter().flat_map(|e| &e.attrs) {
                if let Some(end) = range_end(name, attribute) {
                    values.extend(found.iter().cloned());
                    next = end;
                }
            }
        }
        Ok(values)
    }

    /// Reads the domain's naming context (`defaultNamingContext` of the root DSE), for
    /// settings that leave the base DN out.
    pub async fn read_default_naming_context(&self) -> Result<String, ExternalError> {
        let mut ldap = self.admin().await?;
        let root = self
            .search(
                &mut ldap,
                "",
                Scope::Base,
                "(objectClass=*)",
                &["defaultNamingContext"],
            )
            .await?;
        let _ = ldap.unbind().await;
        root.first()
            .and_then(|entry| first_value(entry, "defaultNamingContext"))
            .ok_or_else(|| ExternalError::Setting {
                setting: "base DN".into(),
                message: format!(
                    "{} publishes no defaultNamingContext; give the base DN",
                    self.directory.url
                ),
            })
    }

    /// Returns the domain's NetBIOS name from its cross-reference object. A successful read
    /// is kept, and a failed one is logged and tried again on the next call.
    pub(crate) async fn netbios_name(&self) -> Option<String> {
        let read = self
            .netbios
            .get_or_try_init(|| async { self.read_netbios_name().await })
            .await;
        match read {
            Ok(name) => name.clone(),
            Err(error) => {
                tracing::warn!(%error, "failed to read the external domain's NetBIOS name; DOMAIN\\user logons fail until it can be read");
                None
            }
        }
    }

    async fn read_netbios_name(&self) -> Result<Option<String>, ExternalError> {
        let mut ldap = self.admin().await?;
        let root = self
            .search(
                &mut ldap,
                "",
                Scope::Base,
                "(objectClass=*)",
                &["configurationNamingContext"],
            )
            .await?;
        let Some(configuration) = root
            .first()
            .and_then(|e| first_value(e, "configurationNamingContext"))
        else {
            return Ok(None);
        };
        let filter = format!(
            "(&(objectClass=crossRef)(nCName={}))",
            ldap3::ldap_escape(&self.directory.base_dn)
        );
        let partitions = format!("CN=Partitions,{configuration}");
        let found = self
            .search(
                &mut ldap,
                &partitions,
                Scope::OneLevel,
                &filter,
                &["nETBIOSName"],
            )
            .await?;
        let _ = ldap.unbind().await;
        Ok(found.first().and_then(|e| first_value(e, "nETBIOSName")))
    }

    fn connection_error(&self, action: &str, source: ldap3::LdapError) -> ExternalError {
        ExternalError::Connection {
            action: action.to_string(),
            url: self.directory.url.clone(),
            source: Box::new(source),
        }
    }
}

/// Turns an error result into [`ExternalError::Rejected`].
pub(crate) fn check(
    result: LdapResult,
    action: &'static str,
    dn: &str,
) -> Result<LdapResult, ExternalError> {
    if result.rc == SUCCESS {
        Ok(result)
    } else {
        Err(ExternalError::Rejected {
            action,
            dn: dn.to_string(),
            code: result.rc,
            message: result.text,
        })
    }
}

/// Returns the first value of an attribute, matched without case.
pub(crate) fn first_value(entry: &SearchEntry, attribute: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .and_then(|(_, values)| values.first().cloned())
}

/// Returns every value of an attribute, matched without case.
pub(crate) fn values(entry: &SearchEntry, attribute: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, values)| values.clone())
        .unwrap_or_default()
}

/// Returns where the next range of `attribute` starts: `Some(Some(1500))` for
/// `member;range=0-1499`, `Some(None)` after the last range (`member;range=1500-*`), and
/// `None` for other attribute names.
fn range_end(name: &str, attribute: &str) -> Option<Option<u64>> {
    let (base, option) = name.split_once(';')?;
    if !base.eq_ignore_ascii_case(attribute) {
        return None;
    }
    let range = option
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("range="))
        .map(|_| &option[6..])?;
    let (_, end) = range.split_once('-')?;
    if end == "*" {
        return Some(None);
    }
    end.parse::<u64>().ok().map(|end| Some(end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_options_give_the_next_start() {
        assert_eq!(range_end("member;range=0-1499", "member"), Some(Some(1500)));
        assert_eq!(range_end("Member;Range=1500-*", "member"), Some(None));
        assert_eq!(range_end("member", "member"), None);
        assert_eq!(range_end("memberOf;range=0-9", "member"), None);
    }

    #[test]
    fn urls_other_than_ldap_are_rejected() {
        let directory = ExternalDirectory::new("https://dc1", "u", "p", "", "DC=x");
        let error = ExternalClient::new(directory).expect_err("https is not LDAP");
        assert!(error.to_string().contains("https://dc1"), "{error}");
    }

    #[test]
    fn ca_without_certificates_is_rejected() {
        let directory = ExternalDirectory::new("ldaps://dc1", "u", "p", "not a PEM", "DC=x");
        let error = ExternalClient::new(directory).expect_err("no CA certificate");
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
    }
}
