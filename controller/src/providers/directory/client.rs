//! The connection: URL checks, TLS, the simple bind, the root DSE and paged searches.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ldap3::controls::{Control, ControlType, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use super::error::{DirectoryError, LdapStatus, Operation};
use super::settings::{ConnectionSettings, TransitiveStrategy};
use super::sid::Sid;

/// OID in `supportedCapabilities` of an Active Directory domain controller (Samba
/// announces it too).
const ACTIVE_DIRECTORY_CAPABILITY: &str = "1.2.840.113556.1.4.800";

/// A bound connection to an Active Directory domain controller.
///
/// The handle can be shared: every method takes `&self` and runs its operations on a clone
/// of the underlying `ldap3` handle, multiplexed over the one connection.
pub struct DirectoryClient {
    ldap: Ldap,
    url: String,
    encrypted: bool,
    base_dn: String,
    root_dse: RootDse,
    pub(super) operation_timeout: Duration,
    pub(super) page_size: u32,
    pub(super) member_range_size: Option<u32>,
    pub(super) transitive_strategy: TransitiveStrategy,
    domain_sid: OnceCell<Sid>,
}

/// The server's description of itself, read from its root DSE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootDse {
    /// DN of the domain partition, such as `DC=example,DC=com`.
    pub default_naming_context: Option<String>,
    /// DNS name of the domain controller.
    pub dns_host_name: Option<String>,
    /// OIDs of the request controls the server supports.
    pub supported_controls: Vec<String>,
    /// OIDs of the server's capabilities.
    pub supported_capabilities: Vec<String>,
}

impl RootDse {
    /// Reports whether the server announces Active Directory (or Samba AD) capabilities.
    pub fn is_active_directory(&self) -> bool {
        self.supported_capabilities
            .iter()
            .any(|oid| oid == ACTIVE_DIRECTORY_CAPABILITY)
    }
}

impl DirectoryClient {
    /// Connects to the server, binds with the settings' identity and password, and reads
    /// the root DSE.
    pub async fn connect(settings: &ConnectionSettings) -> Result<Self, DirectoryError> {
        let url = checked_url(settings)?;
        let encrypted = url.starts_with("ldaps://") || settings.start_tls;
        let identity = settings.bind_identity.to_string();

        if settings.password.is_empty() {
            return Err(DirectoryError::MissingPassword { url, identity });
        }

        let mut ldap_settings = LdapConnSettings::new()
            .set_conn_timeout(settings.connect_timeout)
            .set_starttls(settings.start_tls);
        if encrypted {
            ldap_settings = ldap_settings.set_config(tls_config(settings)?);
        }

        debug!(url = %url, start_tls = settings.start_tls, identity = %identity, "connecting to the directory");
        let (connection, mut ldap) = LdapConnAsync::with_settings(ldap_settings, &url)
            .await
            .map_err(|error| match error {
                LdapError::Timeout { .. } => DirectoryError::TimedOut {
                    operation: Operation::Connect,
                    target: url.clone(),
                    timeout: settings.connect_timeout,
                },
                error => DirectoryError::Connect {
                    url: url.clone(),
                    error: Box::new(error),
                },
            })?;
        let drive_url = url.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                warn!(url = %drive_url, error = %error, "directory connection closed with an error");
            }
        });

        let result = ldap
            .with_timeout(settings.operation_timeout)
            .simple_bind(
                &settings.bind_identity.bind_name(),
                settings.password.expose(),
            )
            .await
            .map_err(|error| {
                map_ldap_error(
                    Operation::Bind,
                    &identity,
                    settings.operation_timeout,
                    error,
                )
            })?;
        if result.rc != 0 {
            return Err(DirectoryError::Bind {
                url,
                identity,
                status: LdapStatus::from_result(&result),
            });
        }

        let mut client = DirectoryClient {
            ldap,
            url,
            encrypted,
            base_dn: String::new(),
            root_dse: RootDse::default(),
            operation_timeout: settings.operation_timeout,
            page_size: settings.page_size.max(1),
            member_range_size: settings.member_range_size,
            transitive_strategy: settings.transitive_strategy,
            domain_sid: OnceCell::new(),
        };
        client.root_dse = client.read_root_dse().await?;
        client.base_dn = match (&settings.base_dn, &client.root_dse.default_naming_context) {
            (Some(base_dn), _) => base_dn.clone(),
            (None, Some(naming_context)) => naming_context.clone(),
            (None, None) => {
                return Err(DirectoryError::MissingAttribute {
                    dn: "the root DSE".to_owned(),
                    attribute: "defaultNamingContext",
                });
            }
        };
        debug!(url = %client.url, identity = %identity, base_dn = %client.base_dn, "bound to the directory");
        Ok(client)
    }

    /// Returns the server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reports whether the connection uses LDAPS or StartTLS.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Returns the DN under which users and groups are searched.
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// Returns the root DSE read after the bind.
    pub fn root_dse(&self) -> &RootDse {
        &self.root_dse
    }

    /// Sends an unbind request and closes the connection.
    pub async fn unbind(mut self) -> Result<(), DirectoryError> {
        self.ldap.unbind().await.map_err(|error| {
            map_ldap_error(Operation::Unbind, &self.url, self.operation_timeout, error)
        })
    }

    /// Returns the SID of the domain, read from the root DSE's `defaultNamingContext` (or
    /// the base DN when the root DSE has none) once per connection. The base DN itself may
    /// be an organizational unit, which has no SID.
    pub async fn domain_sid(&self) -> Result<Sid, DirectoryError> {
        let sid = self
            .domain_sid
            .get_or_try_init(|| async {
                let domain_dn = self
                    .root_dse
                    .default_naming_context
                    .as_deref()
                    .unwrap_or(&self.base_dn);
                let entries = self
                    .search_paged(domain_dn, Scope::Base, "(objectClass=*)", &["objectSid"])
                    .await?;
                let entry = entries
                    .first()
                    .ok_or_else(|| DirectoryError::EntryNotFound {
                        dn: domain_dn.to_owned(),
                    })?;
                required_sid(entry, "objectSid")
            })
            .await?;
        Ok(sid.clone())
    }

    async fn read_root_dse(&self) -> Result<RootDse, DirectoryError> {
        let attributes = [
            "defaultNamingContext",
            "dnsHostName",
            "supportedControl",
            "supportedCapabilities",
        ];
        let entries = self
            .search_paged("", Scope::Base, "(objectClass=*)", &attributes)
            .await?;
        let Some(entry) = entries.first() else {
            return Ok(RootDse::default());
        };
        Ok(RootDse {
            default_naming_context: first_value(entry, "defaultNamingContext").map(str::to_owned),
            dns_host_name: first_value(entry, "dnsHostName").map(str::to_owned),
            supported_controls: values(entry, "supportedControl")
                .into_iter()
                .map(str::to_owned)
                .collect(),
            supported_capabilities: values(entry, "supportedCapabilities")
                .into_iter()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Searches with the Simple Paged Results control (1.2.840.113556.1.4.319), requesting
    /// pages until the server returns an empty cookie, and returns the entries of all pages.
    /// Search references (referrals to other partitions) are skipped. A base object that
    /// does not exist yields no entries instead of an error.
    pub(super) async fn search_paged(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attributes: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let target = if base.is_empty() {
            "the root DSE".to_owned()
        } else {
            format!("{base} ({filter})")
        };
        let mut entries = Vec::new();
        let mut cookie = Vec::new();
        let mut pages = 0usize;
        loop {
            let control = PagedResults {
                size: i32::try_from(self.page_size).unwrap_or(i32::MAX),
                cookie,
            };
            let mut ldap = self.ldap.clone();
            let result = ldap
                .with_controls(control)
                .with_timeout(self.operation_timeout)
                .search(base, scope, filter, attributes.to_vec())
                .await
                .map_err(|error| {
                    map_ldap_error(Operation::Search, &target, self.operation_timeout, error)
                })?;
            let ldap3::SearchResult(page, outcome) = result;
            pages += 1;

            match outcome.rc {
                0 => {}
                32 if scope == Scope::Base => return Ok(Vec::new()),
                _ => {
                    return Err(DirectoryError::Operation {
                        operation: Operation::Search,
                        target,
                        status: LdapStatus::from_result(&outcome),
                    });
                }
            }
            entries.extend(
                page.into_iter()
                    .filter(|entry| !entry.is_ref())
                    .map(SearchEntry::construct),
            );

            cookie = paged_results_cookie(&outcome.ctrls);
            if cookie.is_empty() {
                break;
            }
        }
        debug!(target = %target, entries = entries.len(), pages, "paged search finished");
        Ok(entries)
    }

    /// Modifies an entry and checks the result code.
    pub(super) async fn modify(
        &self,
        dn: &str,
        modifications: Vec<Mod<Vec<u8>>>,
    ) -> Result<(), DirectoryError> {
        let mut ldap = self.ldap.clone();
        let result = ldap
            .with_timeout(self.operation_timeout)
            .modify(dn, modifications)
            .await
            .map_err(|error| {
                map_ldap_error(Operation::Modify, dn, self.operation_timeout, error)
            })?;
        check_result(Operation::Modify, dn, &result)
    }

    /// Adds an entry and checks the result code.
    pub(super) async fn add(
        &self,
        dn: &str,
        attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)>,
    ) -> Result<(), DirectoryError> {
        let mut ldap = self.ldap.clone();
        let result = ldap
            .with_timeout(self.operation_timeout)
            .add(dn, attributes)
            .await
            .map_err(|error| map_ldap_error(Operation::Add, dn, self.operation_timeout, error))?;
        check_result(Operation::Add, dn, &result)
    }

    /// Deletes a leaf entry and checks the result code.
    pub async fn delete(&self, dn: &str) -> Result<(), DirectoryError> {
        let mut ldap = self.ldap.clone();
        let result = ldap
            .with_timeout(self.operation_timeout)
            .delete(dn)
            .await
            .map_err(|error| {
                map_ldap_error(Operation::Delete, dn, self.operation_timeout, error)
            })?;
        check_result(Operation::Delete, dn, &result)
    }
}

fn check_result(
    operation: Operation,
    target: &str,
    result: &ldap3::LdapResult,
) -> Result<(), DirectoryError> {
    if result.rc == 0 {
        return Ok(());
    }
    Err(DirectoryError::Operation {
        operation,
        target: target.to_owned(),
        status: LdapStatus::from_result(result),
    })
}

/// Turns an `ldap3` error into the provider's error: a timeout, a server result code, or a
/// transport failure.
pub(super) fn map_ldap_error(
    operation: Operation,
    target: &str,
    timeout: Duration,
    error: LdapError,
) -> DirectoryError {
    match error {
        LdapError::Timeout { .. } => DirectoryError::TimedOut {
            operation,
            target: target.to_owned(),
            timeout,
        },
        LdapError::LdapResult { result } => DirectoryError::Operation {
            operation,
            target: target.to_owned(),
            status: LdapStatus::from_result(&result),
        },
        error => DirectoryError::Transport {
            operation,
            target: target.to_owned(),
            error: Box::new(error),
        },
    }
}

fn paged_results_cookie(controls: &[Control]) -> Vec<u8> {
    controls
        .iter()
        .find_map(|control| match control {
            Control(Some(ControlType::PagedResults), raw) => {
                Some(raw.parse::<PagedResults>().cookie)
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// Checks the URL's scheme, host and path, and that StartTLS is asked for only on
/// `ldap://`. Returns the URL without a trailing slash.
fn checked_url(settings: &ConnectionSettings) -> Result<String, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidUrl {
        url: settings.url.clone(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(&settings.url).map_err(|error| invalid(&error.to_string()))?;
    match parsed.scheme() {
        "ldap" => {}
        "ldaps" if settings.start_tls => {
            return Err(invalid("StartTLS applies only to ldap:// URLs"));
        }
        "ldaps" => {}
        _ => return Err(invalid("the scheme must be ldap or ldaps")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(invalid(
            "the URL must not have a path or query; set the base DN separately",
        ));
    }
    Ok(settings.url.trim_end_matches('/').to_owned())
}

/// Builds the rustls configuration: the CA file's certificates as the only roots, the
/// operating system's trust store without one, or no verification at all when the
/// settings ask for it.
fn tls_config(settings: &ConnectionSettings) -> Result<Arc<ClientConfig>, DirectoryError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the aws-lc-rs provider supports the default TLS versions");

    if settings.insecure_skip_tls_verify {
        warn!(
            url = %settings.url,
            "TLS certificate verification is OFF for the directory connection: anyone on the network path can read the bind password; use only against test servers"
        );
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth();
        return Ok(Arc::new(config));
    }

    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            for certificate in load_ca_file(path)? {
                roots
                    .add(certificate)
                    .map_err(|error| DirectoryError::CaFile {
                        path: path.clone(),
                        reason: format!("invalid certificate: {error}"),
                    })?;
            }
        }
        None => {
            // TODO-coverage: the system trust store path has run only in unit builds, never
            // against a server whose certificate chains to a public root.
            let native = system_ca_certificates();
            roots.add_parsable_certificates(native);
        }
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, DirectoryError> {
    let ca_error = |reason: String| DirectoryError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| ca_error(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ca_error(error.to_string()))?;
    if certificates.is_empty() {
        return Err(ca_error(
            "the file contains no PEM CERTIFICATE block".to_owned(),
        ));
    }
    Ok(certificates)
}

/// Reads the operating system's CA bundle from the places Debian, Red Hat and Alpine keep
/// it. Returns no certificates when none of them exists.
fn system_ca_certificates() -> Vec<CertificateDer<'static>> {
    const BUNDLES: [&str; 3] = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ];
    for bundle in BUNDLES {
        if let Ok(iterator) = CertificateDer::pem_file_iter(bundle) {
            let certificates: Vec<_> = iterator.filter_map(Result::ok).collect();
            if !certificates.is_empty() {
                return certificates;
            }
        }
    }
    warn!("no operating system CA bundle found; set a CA file for the directory connection");
    Vec::new()
}

/// A certificate verifier that accepts every server certificate but still checks that the
/// handshake signatures match the presented certificate.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Returns the values of an attribute, matching its name without regard to case.
pub(super) fn values<'a>(entry: &'a SearchEntry, attribute: &str) -> Vec<&'a str> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, values)| values.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Returns the first value of an attribute, matching its name without regard to case.
pub(super) fn first_value<'a>(entry: &'a SearchEntry, attribute: &str) -> Option<&'a str> {
    values(entry, attribute).into_iter().next()
}

/// Returns the first value of a binary attribute. `ldap3` files a value under `attrs` when
/// its bytes happen to be valid UTF-8 and under `bin_attrs` otherwise, so both are read.
pub(super) fn first_binary_value(entry: &SearchEntry, attribute: &str) -> Option<Vec<u8>> {
    if let Some(value) = first_value(entry, attribute) {
        return Some(value.as_bytes().to_vec());
    }
    entry
        .bin_attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .and_then(|(_, values)| values.first().cloned())
}

/// Parses a SID attribute, or returns `None` when the entry lacks it.
pub(super) fn optional_sid(
    entry: &SearchEntry,
    attribute: &'static str,
) -> Result<Option<Sid>, DirectoryError> {
    let Some(bytes) = first_binary_value(entry, attribute) else {
        return Ok(None);
    };
    Sid::from_bytes(&bytes)
        .map(Some)
        .ok_or_else(|| DirectoryError::InvalidAttribute {
            dn: entry.dn.clone(),
            attribute,
            value: bytes.iter().map(|byte| format!("{byte:02x}")).collect(),
            reason: "not a binary security identifier".to_owned(),
        })
}

fn required_sid(entry: &SearchEntry, attribute: &'static str) -> Result<Sid, DirectoryError> {
    optional_sid(entry, attribute)?.ok_or_else(|| DirectoryError::MissingAttribute {
        dn: entry.dn.clone(),
        attribute,
    })
}

/// Parses an integer attribute, or returns `None` when the entry lacks it.
pub(super) fn optional_integer<T: std::str::FromStr>(
    entry: &SearchEntry,
    attribute: &'static str,
) -> Result<Option<T>, DirectoryError> {
    let Some(value) = first_value(entry, attribute) else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<T>()
        .map(Some)
        .map_err(|_| DirectoryError::InvalidAttribute {
            dn: entry.dn.clone(),
            attribute,
            value: value.to_owned(),
            reason: "not an integer".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::directory::settings::{BindIdentity, Password};

    fn settings(url: &str) -> ConnectionSettings {
        ConnectionSettings::new(
            url,
            BindIdentity::Upn("svc@example.com".to_owned()),
            Password::new("x"),
        )
    }

    #[test]
    fn url_accepts_ldap_and_ldaps() {
        assert_eq!(
            checked_url(&settings("ldap://dc1.example.com")).expect("ldap:// is valid"),
            "ldap://dc1.example.com"
        );
        assert_eq!(
            checked_url(&settings("ldaps://127.0.0.1:636/")).expect("ldaps:// is valid"),
            "ldaps://127.0.0.1:636"
        );
    }

    #[test]
    fn url_rejects_other_forms() {
        for url in [
            "http://dc1",
            "dc1.example.com",
            "ldap://",
            "ldap://dc1/DC=example,DC=com",
            "ldapi:///run/ldap",
        ] {
            assert!(
                matches!(
                    checked_url(&settings(url)),
                    Err(DirectoryError::InvalidUrl { .. })
                ),
                "url {url:?} should be rejected"
            );
        }
    }

    #[test]
    fn url_rejects_start_tls_on_ldaps() {
        let mut settings = settings("ldaps://dc1.example.com");
        settings.start_tls = true;
        assert!(matches!(
            checked_url(&settings),
            Err(DirectoryError::InvalidUrl { .. })
        ));
    }

    #[tokio::test]
    async fn empty_password_is_rejected_before_connecting() {
        // Port 9 (discard) on loopback: the check must fail before any connection attempt.
        let settings = ConnectionSettings::new(
            "ldap://127.0.0.1:9",
            BindIdentity::Upn("svc@example.com".to_owned()),
            Password::new(""),
        );
        let error = DirectoryClient::connect(&settings)
            .await
            .err()
            .expect("an empty password should be rejected");
        assert!(
            matches!(error, DirectoryError::MissingPassword { .. }),
            "{error}"
        );
    }

    #[test]
    fn ca_file_without_certificates_is_rejected() {
        let file = tempfile::NamedTempFile::new().expect("a temporary file should be created");
        std::fs::write(file.path(), "not a certificate\n")
            .expect("the temporary file should be written");
        let error =
            load_ca_file(file.path()).expect_err("a file without PEM blocks should be rejected");
        assert!(
            error.to_string().contains("no PEM CERTIFICATE block"),
            "{error}"
        );
    }

    #[test]
    fn missing_ca_file_is_reported_with_its_path() {
        let error = load_ca_file(Path::new("/nonexistent/ca.pem"))
            .expect_err("a missing file should be rejected");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}
