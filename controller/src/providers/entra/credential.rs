//! App-only access tokens from Entra ID: the OAuth 2.0 client-credentials flow with a client
//! secret or a certificate assertion.
//!
//! [`AppCredential`] wraps `azure_identity` 1.0's `ClientSecretCredential` and
//! `ClientAssertionCredential` (with [`CertificateAssertion`] signing the assertion) and
//! sends their requests through [`ReqwestTransport`], our `reqwest` client, so that the CA
//! file and `--resolve` overrides of [`HttpSettings`] apply to the token endpoint too. The
//! authority host goes in through azure_core's custom cloud configuration, and
//! azure_identity rejects hosts that are not `https`.
//!
//! Token caching and refresh are azure_identity's (`src/cache.rs` in 1.0.0): each credential
//! keeps one token per scope set in memory and returns it while it is valid for more than
//! 300 seconds. The first `get_token` call inside those last 5 minutes fetches a new token
//! under a write lock, so concurrent callers wait for one request instead of sending their
//! own. There is no background refresh: a credential that is not asked for a token never
//! refreshes. A failed refresh is not cached, and the old token is not returned as a
//! fallback even though it may still be valid for up to 5 minutes.
//!
//! Failures are classified by their AADSTS code into [`TokenError`] variants that name what to
//! fix. [`AppCredential`] also implements `TokenCredential` for the EWS client; its errors
//! then carry the [`TokenError`] inside, and [`TokenError::find`] gets it back.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{
    AccessToken, Secret as AzureSecret, TokenCredential, TokenRequestOptions,
};
use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{
    AsyncRawResponse, Body, ClientOptions, ExponentialRetryOptions, HttpClient, RetryOptions,
    Transport,
};
use azure_identity::{
    ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions,
};
use tracing::{debug, warn};
use url::Url;

use super::certificate::{CertificateAssertion, CertificateKey};
use super::replication::{self, ReplicationCallback, ReplicationPolicy, ReplicationWait};
use crate::http::{HttpError, HttpSettings};
use crate::providers::exchange::ews::Secret;

/// Returns the `.default` scope of a resource, such as `https://graph.microsoft.com/.default`
/// for Microsoft Graph: the origin of its endpoint followed by `/.default`.
pub fn default_scope(resource: &Url) -> String {
    format!("{}/.default", resource.origin().ascii_serialization())
}

/// The secret an application proves its identity with.
#[derive(Clone)]
pub enum ClientSecretOrCertificate {
    /// A client secret (the secret's value, not its ID).
    Secret(Secret),
    /// A certificate whose public part is registered on the application.
    Certificate(Arc<CertificateKey>),
}

impl fmt::Debug for ClientSecretOrCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret(<redacted>)"),
            Self::Certificate(key) => f.debug_tuple("Certificate").field(key).finish(),
        }
    }
}

/// Retries of token requests that fail with 408, 429 or 5xx, or cannot connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenRetry {
    /// Retries after the first attempt; 0 turns retries off.
    pub max_retries: u32,
    /// Time after the first attempt when no more retries start.
    pub max_elapsed: Duration,
}

impl Default for TokenRetry {
    fn default() -> Self {
        // azure_core's own default is 8 retries within 60 s. Three retries within 30 s rides
        // out a brief outage while a wrong authority host fails in seconds.
        Self {
            max_retries: 3,
            max_elapsed: Duration::from_secs(30),
        }
    }
}

/// Everything needed to build an [`AppCredential`].
#[derive(Debug, Clone)]
pub struct AppCredentialConfig {
    /// The tenant (directory) ID, or a verified domain of the tenant.
    pub tenant_id: String,
    /// The application (client) ID.
    pub client_id: String,
    /// The client secret or certificate.
    pub credential: ClientSecretOrCertificate,
    /// The authority host, `https://login.microsoftonline.com` in the public cloud.
    pub authority_host: Url,
    /// TLS and name-resolution settings for the token endpoint.
    pub http: HttpSettings,
    /// Retries of failed token requests.
    pub retry: TokenRetry,
}

/// The application that a token belongs to, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppIdentity {
    /// The tenant ID or domain.
    pub tenant_id: String,
    /// The application (client) ID.
    pub client_id: String,
    /// The certificate's SHA-1 thumbprint, for certificate credentials.
    pub thumbprint: Option<String>,
}

impl fmt::Display for AppIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "application {} in tenant {}",
            self.client_id, self.tenant_id
        )
    }
}

/// An application's credential that fetches, caches and refreshes app-only tokens.
pub struct AppCredential {
    identity: AppIdentity,
    token_endpoint: Url,
    inner: Arc<dyn TokenCredential>,
    last_failure: FailureSlot,
}

impl fmt::Debug for AppCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppCredential")
            .field("identity", &self.identity)
            .field("token_endpoint", &self.token_endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl AppCredential {
    /// Creates the credential. Nothing is sent until the first token request.
    pub fn new(config: AppCredentialConfig) -> Result<Arc<Self>, CredentialError> {
        if config.authority_host.scheme() != "https" {
            return Err(CredentialError::InsecureAuthorityHost {
                url: config.authority_host.to_string(),
            });
        }
        let token_endpoint = token_endpoint(&config.authority_host, &config.tenant_id)?;

        let http = config
            .http
            .client_builder()?
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| CredentialError::Http(HttpError::Build { source }))?;
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = config.authority_host.to_string();
        let retry = if config.retry.max_retries == 0 {
            RetryOptions::none()
        } else {
            RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: config.retry.max_retries,
                max_total_elapsed: azure_core::time::Duration::try_from(config.retry.max_elapsed)
                    .unwrap_or(azure_core::time::Duration::seconds(30)),
                ..ExponentialRetryOptions::default()
            })
        };
        let transport = ReqwestTransport::new(http);
        let last_failure = Arc::clone(&transport.last_failure);
        let client_options = ClientOptions {
            transport: Some(Transport::new(Arc::new(transport))),
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            retry,
            ..ClientOptions::default()
        };

        let invalid = |source: azure_core::Error| CredentialError::Invalid {
            client_id: config.client_id.clone(),
            tenant_id: config.tenant_id.clone(),
            message: source.to_string(),
        };
        let (inner, thumbprint): (Arc<dyn TokenCredential>, _) = match &config.credential {
            ClientSecretOrCertificate::Secret(secret) => (
                ClientSecretCredential::new(
                    &config.tenant_id,
                    config.client_id.clone(),
                    AzureSecret::new(secret.expose().to_owned()),
                    Some(ClientSecretCredentialOptions { client_options }),
                )
                .map_err(invalid)?,
                None,
            ),
            ClientSecretOrCertificate::Certificate(key) => {
                let assertion = CertificateAssertion::new(
                    Arc::clone(key),
                    config.client_id.clone(),
                    token_endpoint.to_string(),
                );
                (
                    ClientAssertionCredential::new(
                        config.tenant_id.clone(),
                        config.client_id.clone(),
                        assertion,
                        Some(ClientAssertionCredentialOptions { client_options }),
                    )
                    .map_err(invalid)?,
                    Some(key.thumbprint()),
                )
            }
        };

        Ok(Arc::new(Self {
            identity: AppIdentity {
                tenant_id: config.tenant_id,
                client_id: config.client_id,
                thumbprint,
            },
            token_endpoint,
            inner,
            last_failure,
        }))
    }

    /// Returns the application this credential signs in as.
    pub fn identity(&self) -> &AppIdentity {
        &self.identity
    }

    /// Returns the token endpoint URL, `<authority>/<tenant>/oauth2/v2.0/token`.
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    /// Returns a token for `scope` (such as `https://graph.microsoft.com/.default`), from the
    /// cache while it is valid for more than 5 minutes.
    pub async fn token(&self, scope: &str) -> Result<AccessToken, TokenError> {
        self.inner
            .get_token(&[scope], None)
            .await
            .map_err(|error| self.classify(error))
    }

    /// Returns a token for `scope`, retrying under `policy` while the failure is one that a
    /// just-created application or credential shows until it has replicated: unknown
    /// application (AADSTS700016), unknown secret (AADSTS7000215) or unknown certificate
    /// (AADSTS700027).
    pub async fn token_after_registration(
        &self,
        scope: &str,
        policy: &ReplicationPolicy,
        on_wait: Option<&ReplicationCallback>,
    ) -> Result<AccessToken, TokenError> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let error = match self.token(scope).await {
                Ok(token) => return Ok(token),
                Err(error) if error.may_be_replication() => error,
                Err(error) => return Err(error),
            };
            attempt += 1;
            let waited = started.elapsed();
            let Some(delay) = policy.next_delay(attempt, waited) else {
                return Err(error);
            };
            replication::report(
                &ReplicationWait {
                    target: format!("token for {}", self.identity),
                    attempt,
                    waited,
                    delay,
                },
                on_wait,
            );
            tokio::time::sleep(delay).await;
        }
    }

    fn classify(&self, error: azure_core::Error) -> TokenError {
        let recorded = self
            .last_failure
            .lock()
            .expect("the failure slot lock is never poisoned")
            .take();
        let error = TokenError::from_azure(error, recorded, &self.identity, &self.token_endpoint);
        warn!(
            client_id = %self.identity.client_id,
            tenant_id = %self.identity.tenant_id,
            aadsts = ?error.aadsts_codes(),
            trace_id = error.failure().and_then(|failure| failure.trace_id.as_deref()),
            correlation_id = error.failure().and_then(|failure| failure.correlation_id.as_deref()),
            "token request failed: {error}"
        );
        error
    }
}

#[async_trait::async_trait]
impl TokenCredential for AppCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.inner
            .get_token(scopes, options)
            .await
            .map_err(|error| azure_core::Error::new(ErrorKind::Credential, self.classify(error)))
    }
}

fn token_endpoint(authority_host: &Url, tenant_id: &str) -> Result<Url, CredentialError> {
    // azure_identity builds the same URL with `join("/{tenant}/oauth2/v2.0/token")`, so a
    // path in the authority host is dropped there too.
    authority_host
        .join(&format!("/{tenant_id}/oauth2/v2.0/token"))
        .map_err(|error| CredentialError::InvalidTenant {
            tenant_id: tenant_id.to_owned(),
            message: error.to_string(),
        })
}

/// The last OAuth error response that a credential's transport received.
type FailureSlot = Arc<std::sync::Mutex<Option<EntraFailure>>>;

/// azure_core's `HttpClient` over our `reqwest` client, so that token requests use the same
/// CA file and `--resolve` overrides as every other request of the controller.
///
/// It also keeps the last OAuth error response. azure_identity 1.0.0 deserializes
/// `error_description` into a borrowed `&str`, which fails for every description that
/// contains an escape such as the `\r\n` before Entra ID's "Trace ID" line, and then reports
/// a JSON error without the status or the AADSTS codes.
//
// NOTE: one slot per credential is enough because azure_identity's cache sends a
// credential's token requests one at a time, under its write lock. Two callers that fail
// back to back may still read each other's response, which then has the same cause.
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
    last_failure: FailureSlot,
}

impl ReqwestTransport {
    /// Wraps a client built from [`HttpSettings`]; it should not follow redirects, as
    /// azure_core's own transport does not.
    pub fn new(client: reqwest::Client) -> Self {
        Self {
            client,
            last_failure: FailureSlot::default(),
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<AsyncRawResponse> {
        let method =
            reqwest::Method::from_bytes(request.method().as_ref().as_bytes()).map_err(|error| {
                azure_core::Error::with_error(ErrorKind::Other, error, "invalid HTTP method")
            })?;
        let url = request.url().clone();
        let mut builder = self.client.request(method, url.clone());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match request.body() {
            Body::Bytes(bytes) => builder.body(bytes.clone()),
            // azure_identity sends form bodies as bytes; only uploads stream.
            Body::SeekableStream(_) => {
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported by the controller's HTTP transport",
                ));
            }
        };

        let response = builder.send().await.map_err(|error| {
            let kind = if error.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            azure_core::Error::with_error(kind, error, format!("request to {url} failed"))
        })?;
        let status = response.status();
        let mut headers = Headers::new();
        for (name, value) in response.headers() {
            if let Ok(value) = value.to_str() {
                headers.insert(
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_owned()),
                );
            }
        }
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.contains("json"));
        let body = response.bytes().await.map_err(|error| {
            azure_core::Error::with_error(
                ErrorKind::Io,
                error,
                format!("reading the response from {url} failed"),
            )
        })?;
        debug!(%url, status = status.as_u16(), "token endpoint returned a response");
        let failure = if status.is_success() {
            None
        } else if is_json {
            EntraFailure::parse(status.as_u16(), &body)
        } else {
            warn!(%url, status = status.as_u16(), "the token endpoint returned an error without a JSON body; check the authority host");
            None
        };
        *self
            .last_failure
            .lock()
            .expect("the failure slot lock is never poisoned") = failure;
        Ok(AsyncRawResponse::from_bytes(
            status.as_u16().into(),
            headers,
            body,
        ))
    }
}

/// The OAuth error response of the token endpoint.
///
/// See <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntraFailure {
    /// The HTTP status.
    pub status: u16,
    /// The OAuth `error`, such as `invalid_client`.
    pub error: Option<String>,
    /// The AADSTS codes from `error_codes`.
    pub codes: Vec<u32>,
    /// The first line of `error_description`, which starts with `AADSTS<code>:`.
    pub description: String,
    /// `trace_id`, for Microsoft support.
    pub trace_id: Option<String>,
    /// `correlation_id`, for Microsoft support.
    pub correlation_id: Option<String>,
}

impl fmt::Display for EntraFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.description.is_empty() {
            return f.write_str(&self.description);
        }
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|code| format!("AADSTS{code}"))
            .collect();
        write!(
            f,
            "HTTP {} {} {}",
            self.status,
            self.error.as_deref().unwrap_or("error"),
            codes.join(", ")
        )
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
    error_codes: Vec<u32>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

impl EntraFailure {
    /// Parses an error body of the token endpoint.
    pub fn parse(status: u16, body: &[u8]) -> Option<Self> {
        let body: ErrorBody = serde_json::from_slice(body).ok()?;
        let description = body
            .error_description
            .as_deref()
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default();
        // Some descriptions put the trace lines on the same line.
        let description = description
            .split(" Trace ID:")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Some(Self {
            status,
            error: body.error,
            codes: body.error_codes,
            description,
            trace_id: body.trace_id,
            correlation_id: body.correlation_id,
        })
    }

    fn has_code(&self, code: u32) -> bool {
        self.codes.contains(&code) || self.description.starts_with(&format!("AADSTS{code}:"))
    }
}

/// A token request that failed, classified by what the administrator has to fix.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// AADSTS7000215: the client secret is wrong.
    #[error(
        "failed to get a token for {app}: {failure}; the client secret is wrong: use the secret's value (not its ID), or create a new secret"
    )]
    InvalidClientSecret {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS7000222: the client secret has expired.
    #[error(
        "failed to get a token for {app}: {failure}; the client secret has expired: create a new secret"
    )]
    ExpiredClientSecret {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS700027: the certificate is not registered on the application, has expired,
    /// or the assertion's signature does not verify.
    #[error(
        "failed to get a token for {app}: {failure}; Entra ID does not accept the certificate{}: upload it to the application's certificates, or replace it if it has expired",
        app.thumbprint.as_ref().map(|thumbprint| format!(" with thumbprint {thumbprint}")).unwrap_or_default()
    )]
    CertificateNotRegistered {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS700016: no application has this client ID in the tenant, or it has not
    /// replicated yet.
    #[error(
        "failed to get a token for {app}: {failure}; no application with this client ID exists in the tenant: check the client ID and tenant ID, or wait a minute if the application was just created"
    )]
    ApplicationNotFound {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS90002: the tenant does not exist.
    #[error(
        "failed to get a token for {app}: {failure}; the tenant does not exist: check the tenant ID and the authority host"
    )]
    TenantNotFound {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS700024: the client assertion is outside its validity window, usually
    /// because this machine's clock is wrong.
    #[error(
        "failed to get a token for {app}: {failure}; the client assertion is outside its valid time range: synchronise this machine's clock (NTP)"
    )]
    ClockSkew {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// AADSTS65001 or AADSTS501051: the application has no admin consent (app role
    /// assignment) for the requested resource.
    #[error(
        "failed to get a token for {app}: {failure}; the application has no admin consent for this resource: grant admin consent for its API permissions"
    )]
    ConsentMissing {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// Another error of the token endpoint.
    #[error("failed to get a token for {app}: {failure}")]
    Rejected {
        /// The application.
        app: AppIdentity,
        /// The token endpoint's error.
        failure: Box<EntraFailure>,
    },
    /// The token endpoint could not be reached.
    #[error(
        "failed to get a token for {app}: cannot reach {endpoint}; check the authority host, the network and the CA file"
    )]
    Unreachable {
        /// The application.
        app: AppIdentity,
        /// The token endpoint URL.
        endpoint: String,
        /// The transport error.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// The request failed in another way, such as a response that is not OAuth JSON.
    #[error("failed to get a token for {app} from {endpoint}")]
    Other {
        /// The application.
        app: AppIdentity,
        /// The token endpoint URL.
        endpoint: String,
        /// The credential's error.
        #[source]
        source: Box<azure_core::Error>,
    },
}

impl TokenError {
    /// Classifies an error of an azure_identity credential, using `recorded`, the error
    /// response that the transport kept, when the error itself carries none.
    pub fn from_azure(
        error: azure_core::Error,
        recorded: Option<EntraFailure>,
        app: &AppIdentity,
        endpoint: &Url,
    ) -> Self {
        let app = app.clone();
        if let Some(failure) = entra_failure(&error).or(recorded) {
            let failure = Box::new(failure);
            return if failure.has_code(7_000_215) {
                Self::InvalidClientSecret { app, failure }
            } else if failure.has_code(7_000_222) {
                Self::ExpiredClientSecret { app, failure }
            } else if failure.has_code(700_027) {
                Self::CertificateNotRegistered { app, failure }
            } else if failure.has_code(700_016) {
                Self::ApplicationNotFound { app, failure }
            } else if failure.has_code(90_002) {
                Self::TenantNotFound { app, failure }
            } else if failure.has_code(700_024) {
                Self::ClockSkew { app, failure }
            } else if failure.has_code(65_001) || failure.has_code(501_051) {
                Self::ConsentMissing { app, failure }
            } else {
                Self::Rejected { app, failure }
            };
        }

        let endpoint = endpoint.to_string();
        let source = Box::new(error);
        if chain(&source).any(|error| matches!(error.kind(), ErrorKind::Connection | ErrorKind::Io))
        {
            Self::Unreachable {
                app,
                endpoint,
                source,
            }
        } else {
            Self::Other {
                app,
                endpoint,
                source,
            }
        }
    }

    /// Finds the [`TokenError`] inside an error that [`AppCredential`]'s `TokenCredential`
    /// implementation returned, such as the source of an EWS client's token error.
    pub fn find(error: &azure_core::Error) -> Option<&TokenError> {
        chain(error).find_map(|error| error.downcast_ref::<TokenError>())
    }

    /// Returns the token endpoint's error, when it sent one.
    pub fn failure(&self) -> Option<&EntraFailure> {
        match self {
            Self::InvalidClientSecret { failure, .. }
            | Self::ExpiredClientSecret { failure, .. }
            | Self::CertificateNotRegistered { failure, .. }
            | Self::ApplicationNotFound { failure, .. }
            | Self::TenantNotFound { failure, .. }
            | Self::ClockSkew { failure, .. }
            | Self::ConsentMissing { failure, .. }
            | Self::Rejected { failure, .. } => Some(failure),
            Self::Unreachable { .. } | Self::Other { .. } => None,
        }
    }

    /// Returns the AADSTS codes of the failure, empty when the endpoint sent none.
    pub fn aadsts_codes(&self) -> &[u32] {
        self.failure()
            .map(|failure| failure.codes.as_slice())
            .unwrap_or_default()
    }

    /// Returns the application that failed to sign in.
    pub fn app(&self) -> &AppIdentity {
        match self {
            Self::InvalidClientSecret { app, .. }
            | Self::ExpiredClientSecret { app, .. }
            | Self::CertificateNotRegistered { app, .. }
            | Self::ApplicationNotFound { app, .. }
            | Self::TenantNotFound { app, .. }
            | Self::ClockSkew { app, .. }
            | Self::ConsentMissing { app, .. }
            | Self::Rejected { app, .. }
            | Self::Unreachable { app, .. }
            | Self::Other { app, .. } => app,
        }
    }

    /// Tells whether the failure is one that a new application or credential shows until
    /// it has replicated.
    pub fn may_be_replication(&self) -> bool {
        matches!(
            self,
            Self::ApplicationNotFound { .. }
                | Self::InvalidClientSecret { .. }
                | Self::CertificateNotRegistered { .. }
        )
    }
}

/// Iterates over an azure_core error and the azure_core errors nested inside it.
fn chain(error: &azure_core::Error) -> impl Iterator<Item = &azure_core::Error> {
    std::iter::successors(Some(error), |error| {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<azure_core::Error>())
    })
}

fn entra_failure(error: &azure_core::Error) -> Option<EntraFailure> {
    chain(error).find_map(|error| match error.kind() {
        ErrorKind::HttpResponse {
            status,
            raw_response: Some(response),
            ..
        } => EntraFailure::parse(u16::from(*status), response.body()),
        _ => None,
    })
}

/// A credential that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The authority host is not an https URL.
    #[error(
        "invalid authority host {url}: Entra ID token endpoints are https only (e.g. https://login.microsoftonline.com)"
    )]
    InsecureAuthorityHost {
        /// The configured URL.
        url: String,
    },
    /// The tenant ID does not fit into a URL.
    #[error(
        "invalid tenant ID {tenant_id:?}: {message}; use the tenant's GUID or a verified domain"
    )]
    InvalidTenant {
        /// The configured tenant.
        tenant_id: String,
        /// The reason it is invalid.
        message: String,
    },
    /// azure_identity rejected the tenant ID, client ID or secret.
    #[error("invalid credential for application {client_id} in tenant {tenant_id}: {message}")]
    Invalid {
        /// The application (client) ID.
        client_id: String,
        /// The tenant ID.
        tenant_id: String,
        /// azure_identity's message.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::http::ResolveOverride;
    use crate::providers::entra::certificate::tests::test_certificate;
    use crate::providers::exchange::test_server::{CannedResponse, RecordedRequest, TestServer};

    const TENANT: &str = "6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f";
    const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
    const SCOPE: &str = "https://graph.microsoft.com/.default";

    fn json(status: u16, body: serde_json::Value) -> CannedResponse {
        CannedResponse {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
        }
    }

    fn token_response(expires_in: u64) -> CannedResponse {
        json(
            200,
            serde_json::json!({
                "token_type": "Bearer",
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": "eyJ0eXAi.test.token",
            }),
        )
    }

    fn aadsts(code: u32, text: &str) -> CannedResponse {
        json(
            401,
            serde_json::json!({
                "error": "invalid_client",
                "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2025-01-01 00:00:00Z"),
                "error_codes": [code],
                "trace_id": "0000",
                "correlation_id": "1111",
            }),
        )
    }

    async fn credential(
        server: &TestServer,
        credential: ClientSecretOrCertificate,
    ) -> Arc<AppCredential> {
        let resolve: ResolveOverride = format!("login.test:{}", server.addr).parse().unwrap();
        AppCredential::new(AppCredentialConfig {
            tenant_id: TENANT.to_owned(),
            client_id: CLIENT.to_owned(),
            credential,
            authority_host: Url::parse(&format!("https://login.test:{}/", server.addr.port()))
                .unwrap(),
            http: HttpSettings {
                ca_file: server.ca_file.clone(),
                resolve: vec![resolve],
                ..HttpSettings::default()
            },
            retry: TokenRetry {
                max_retries: 0,
                max_elapsed: Duration::ZERO,
            },
        })
        .expect("the credential should build")
    }

    fn form(request: &RecordedRequest) -> std::collections::HashMap<String, String> {
        url::form_urlencoded::parse(request.body.as_bytes())
            .into_owned()
            .collect()
    }

    #[tokio::test]
    async fn secret_token_is_requested_and_cached() {
        let server = TestServer::https(&["login.test"], |_| token_response(3600)).await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t~value")),
        )
        .await;

        for _ in 0..3 {
            let token = credential.token(SCOPE).await.expect("token");
            assert_eq!(token.token.secret(), "eyJ0eXAi.test.token");
        }

        let requests = server.recorded();
        assert_eq!(requests.len(), 1, "later calls should come from the cache");
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/{TENANT}/oauth2/v2.0/token"));
        let form = form(request);
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["client_id"], CLIENT);
        assert_eq!(form["client_secret"], "s3cr3t~value");
        assert_eq!(form["scope"], SCOPE);
    }

    #[tokio::test]
    async fn token_near_expiry_is_refreshed() {
        // 240 s is inside azure_identity's 300 s refresh margin, so every call refreshes.
        let server = TestServer::https(&["login.test"], |_| token_response(240)).await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
        )
        .await;
        credential.token(SCOPE).await.unwrap();
        credential.token(SCOPE).await.unwrap();
        assert_eq!(server.recorded().len(), 2);
    }

    #[tokio::test]
    async fn certificate_assertion_is_sent_and_verifies() {
        let server = TestServer::https(&["login.test"], |_| token_response(3600)).await;
        let key = &test_certificate().key;
        let generated =
            CertificateKey::from_pem(test_certificate().pem.expose().as_bytes(), "test").unwrap();
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Certificate(Arc::new(generated)),
        )
        .await;
        credential.token(SCOPE).await.expect("token");

        let request = &server.recorded()[0];
        let form = form(request);
        assert_eq!(
            form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert!(!form.contains_key("client_secret"));
        let assertion = &form["client_assertion"];
        let header = jsonwebtoken::decode_header(assertion).unwrap();
        assert_eq!(header.x5t_s256.as_deref(), Some(key.x5t_s256().as_str()));
        let claims: serde_json::Value = {
            use base64::Engine;
            let payload = assertion.split('.').nth(1).expect("a JWT has a payload");
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        assert_eq!(
            claims["aud"],
            credential.token_endpoint().as_str(),
            "aud should be the token endpoint URL"
        );
        assert_eq!(claims["iss"], CLIENT);
        assert_eq!(claims["sub"], CLIENT);
    }

    #[tokio::test]
    async fn aadsts_codes_map_to_variants() {
        let cases = [
            (7_000_215, "InvalidClientSecret", "secret's value"),
            (7_000_222, "ExpiredClientSecret", "expired"),
            (700_027, "CertificateNotRegistered", "certificate"),
            (700_016, "ApplicationNotFound", "just created"),
            (90_002, "TenantNotFound", "tenant ID"),
            (700_024, "ClockSkew", "clock"),
            (501_051, "ConsentMissing", "admin consent"),
            (65_001, "ConsentMissing", "admin consent"),
            (50_000, "Rejected", "AADSTS50000"),
        ];
        for (code, variant, hint) in cases {
            let server =
                TestServer::https(&["login.test"], move |_| aadsts(code, "Text of the error."))
                    .await;
            let credential = credential(
                &server,
                ClientSecretOrCertificate::Secret(Secret::new("wrong-secret")),
            )
            .await;
            let error = credential.token(SCOPE).await.unwrap_err();
            assert!(
                format!("{error:?}").starts_with(variant),
                "AADSTS{code} gave {error:?}"
            );
            assert_eq!(error.aadsts_codes(), [code]);
            let message = error.to_string();
            assert!(
                message.contains(&format!("AADSTS{code}: Text of the error.")),
                "{message}"
            );
            assert!(message.contains(hint), "AADSTS{code}: {message}");
            assert!(!message.contains("Trace ID"), "{message}");
            assert!(!message.contains("wrong-secret"), "{message}");
            assert_eq!(error.failure().unwrap().trace_id.as_deref(), Some("0000"));
        }
    }

    #[tokio::test]
    async fn token_error_survives_the_credential_trait() {
        let server = TestServer::https(&["login.test"], |_| {
            aadsts(700_016, "Application not found.")
        })
        .await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
        )
        .await;
        let as_trait: Arc<dyn TokenCredential> = credential;
        let error = as_trait.get_token(&[SCOPE], None).await.unwrap_err();
        let token_error = TokenError::find(&error).expect("the TokenError should be inside");
        assert!(matches!(
            token_error,
            TokenError::ApplicationNotFound { .. }
        ));
    }

    #[tokio::test]
    async fn replication_failures_are_retried_until_the_token_arrives() {
        let calls = Arc::new(Mutex::new(0));
        let counter = Arc::clone(&calls);
        let server = TestServer::https(&["login.test"], move |_| {
            let mut calls = counter.lock().unwrap();
            *calls += 1;
            if *calls < 3 {
                aadsts(700_016, "Application not found.")
            } else {
                token_response(3600)
            }
        })
        .await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
        )
        .await;

        let waits = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&waits);
        let callback: ReplicationCallback = Arc::new(move |wait: &ReplicationWait| {
            recorded.lock().unwrap().push(wait.attempt);
        });
        let policy = ReplicationPolicy {
            timeout: Duration::from_secs(60),
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };

        credential
            .token_after_registration(SCOPE, &policy, Some(&callback))
            .await
            .expect("the third attempt should succeed");
        assert_eq!(*waits.lock().unwrap(), [1, 2]);
    }

    #[tokio::test]
    async fn wrong_tenant_is_not_retried_as_replication() {
        let server =
            TestServer::https(&["login.test"], |_| aadsts(90_002, "Tenant not found.")).await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
        )
        .await;
        let error = credential
            .token_after_registration(SCOPE, &ReplicationPolicy::default(), None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, TokenError::TenantNotFound { .. }),
            "{error:?}"
        );
        assert_eq!(server.recorded().len(), 1);
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_classified() {
        // Bind and drop a listener so that the port refuses connections.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let credential = AppCredential::new(AppCredentialConfig {
            tenant_id: TENANT.to_owned(),
            client_id: CLIENT.to_owned(),
            credential: ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
            authority_host: Url::parse(&format!("https://{addr}/")).unwrap(),
            http: HttpSettings::default(),
            retry: TokenRetry {
                max_retries: 0,
                max_elapsed: Duration::ZERO,
            },
        })
        .unwrap();
        let error = credential.token(SCOPE).await.unwrap_err();
        assert!(matches!(error, TokenError::Unreachable { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn non_json_error_is_reported_with_endpoint() {
        let server = TestServer::https(&["login.test"], |_| CannedResponse {
            status: 404,
            headers: vec![("Content-Type".to_owned(), "text/html".to_owned())],
            body: "<html>not here</html>".to_owned(),
        })
        .await;
        let credential = credential(
            &server,
            ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
        )
        .await;
        let error = credential.token(SCOPE).await.unwrap_err();
        assert!(matches!(error, TokenError::Other { .. }), "{error:?}");
        assert!(error.to_string().contains("/oauth2/v2.0/token"), "{error}");
    }

    #[test]
    fn http_authority_host_is_rejected() {
        let error = AppCredential::new(AppCredentialConfig {
            tenant_id: TENANT.to_owned(),
            client_id: CLIENT.to_owned(),
            credential: ClientSecretOrCertificate::Secret(Secret::new("s3cr3t")),
            authority_host: Url::parse("http://login.test/").unwrap(),
            http: HttpSettings::default(),
            retry: TokenRetry::default(),
        })
        .unwrap_err();
        assert!(
            matches!(error, CredentialError::InsecureAuthorityHost { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn default_scope_uses_the_origin() {
        let graph = Url::parse("https://graph.microsoft.com/v1.0/").unwrap();
        assert_eq!(
            default_scope(&graph),
            "https://graph.microsoft.com/.default"
        );
        let lab = Url::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!(default_scope(&lab), "https://127.0.0.1:8443/.default");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let credential = ClientSecretOrCertificate::Secret(Secret::new("s3cr3t-value"));
        assert!(!format!("{credential:?}").contains("s3cr3t-value"));
    }
}
