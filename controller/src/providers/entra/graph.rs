//! The Microsoft Graph v1.0 client: authenticated JSON requests with throttling retries,
//! `@odata.nextLink` paging, replication waits and typed errors.
//!
//! Each request gets a bearer token from the credential (which caches it), a fresh
//! `client-request-id`, and is retried on 429 and 503 after the `Retry-After` wait, up to
//! [`GraphRetry::max_retries`] times and [`GraphRetry::max_wait`] per wait. Requests are not
//! retried after transport errors, because a POST may have taken effect.
//!
//! Reads right after this client's own writes (a new application, service principal or
//! credential) that fail with 404 are retried under the [`ReplicationPolicy`] instead of
//! failing: the client remembers the IDs it created and treats a 404 on them as replication
//! delay until the policy's timeout has passed.
//!
//! The resource operations live in the sibling modules (`applications`, `users`, ...) as
//! methods of [`GraphClient`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use http::{HeaderMap, Method, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use url::Url;

use super::credential::default_scope;
use super::odata::Query;
use super::replication::{self, ReplicationCallback, ReplicationPolicy, ReplicationWait};
use crate::http::{HttpError, HttpSettings};

/// Retries of throttled requests (HTTP 429 and 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphRetry {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The maximum wait before one retry; a longer `Retry-After` is cut to it.
    pub max_wait: Duration,
    /// The first wait when the response has no `Retry-After`; it doubles per retry.
    pub initial_backoff: Duration,
}

impl Default for GraphRetry {
    fn default() -> Self {
        // Graph's throttling guidance is to wait for the Retry-After interval. Five waits of
        // up to a minute each ride out a short limit without stalling a reconcile for long.
        Self {
            max_retries: 5,
            max_wait: Duration::from_secs(60),
            initial_backoff: Duration::from_secs(2),
        }
    }
}

/// Options of a [`GraphClient`].
#[derive(Clone, Default)]
pub struct GraphClientOptions {
    /// Throttling retries.
    pub retry: GraphRetry,
    /// Waits for replication after this client's writes.
    pub replication: ReplicationPolicy,
    /// Called for every wait for replication, in addition to the `tracing::info!` line.
    pub on_replication_wait: Option<ReplicationCallback>,
    /// The token scope; `None` uses `<graph origin>/.default`.
    pub scope: Option<String>,
}

impl fmt::Debug for GraphClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClientOptions")
            .field("retry", &self.retry)
            .field("replication", &self.replication)
            .field("on_replication_wait", &self.on_replication_wait.is_some())
            .field("scope", &self.scope)
            .finish()
    }
}

/// The operation and object that a Graph request was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTarget {
    /// The operation, such as `create application`.
    pub operation: &'static str,
    /// The object, such as `application 'Sent Items Update'` or `user alice@lab.example`.
    pub object: Option<String>,
}

impl GraphTarget {
    /// Creates a target for `operation` on `object`.
    pub fn new(operation: &'static str, object: impl Into<String>) -> Self {
        Self {
            operation,
            object: Some(object.into()),
        }
    }

    /// Creates a target for an operation without a single object.
    pub fn operation(operation: &'static str) -> Self {
        Self {
            operation,
            object: None,
        }
    }
}

impl fmt::Display for GraphTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "Graph {} for {object}", self.operation),
            None => write!(f, "Graph {}", self.operation),
        }
    }
}

/// The error response of a failed Graph request.
///
/// See <https://learn.microsoft.com/graph/errors>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The HTTP status.
    pub status: u16,
    /// The Graph error code, such as `Request_ResourceNotFound`.
    pub code: String,
    /// The error message.
    pub message: String,
    /// The `request-id` that Graph assigned, for Microsoft support.
    pub request_id: Option<String>,
    /// The `client-request-id` that this client sent.
    pub client_request_id: String,
    /// The `Retry-After` wait of a throttled response.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} {}", self.status, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        write!(f, " (")?;
        if let Some(request_id) = &self.request_id {
            write!(f, "request-id {request_id}, ")?;
        }
        write!(f, "client-request-id {})", self.client_request_id)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    code: String,
    message: String,
    #[serde(rename = "innerError")]
    inner_error: InnerError,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct InnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
}

impl ApiFailure {
    fn parse(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        client_request_id: &str,
    ) -> Self {
        let envelope: ErrorEnvelope = serde_json::from_slice(body).unwrap_or_default();
        let header_request_id = headers
            .get("request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let code = if envelope.error.code.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("Unknown")
                .replace(' ', "")
        } else {
            envelope.error.code
        };
        Self {
            status: status.as_u16(),
            code,
            message: envelope.error.message,
            request_id: header_request_id.or(envelope.error.inner_error.request_id),
            client_request_id: client_request_id.to_owned(),
            retry_after: retry_after(headers),
        }
    }
}

/// Parses `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A failed Graph request. Every variant names the operation and object in `target`.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The credential could not get a token.
    #[error("{target} failed: cannot get an access token")]
    Token {
        /// The operation and object.
        target: GraphTarget,
        /// The credential's error; for an `AppCredential` it contains a `TokenError`.
        #[source]
        source: Box<azure_core::Error>,
    },
    /// `Authorization_RequestDenied` (HTTP 403): the signed-in application lacks the Graph
    /// permission for this operation.
    #[error(
        "{target} failed: {failure}; the application that signs in lacks the Microsoft Graph permission for this operation: grant it and give admin consent"
    )]
    AuthorizationDenied {
        /// The operation and object.
        target: GraphTarget,
        /// The error response.
        failure: Box<ApiFailure>,
    },
    /// The object does not exist (HTTP 404).
    #[error("{target} failed: {failure}")]
    NotFound {
        /// The operation and object.
        target: GraphTarget,
        /// The error response.
        failure: Box<ApiFailure>,
    },
    /// The object this client created a moment ago still returned 404 when the replication
    /// policy's timeout ran out.
    #[error(
        "{target} failed: {failure}; the object was created {} s ago and has still not replicated: run again later",
        waited.as_secs()
    )]
    ReplicationTimeout {
        /// The operation and object.
        target: GraphTarget,
        /// The last error response.
        failure: Box<ApiFailure>,
        /// Time spent waiting.
        waited: Duration,
    },
    /// Graph kept throttling the request (HTTP 429 or 503) after every retry.
    #[error(
        "{target} failed: {failure}; Graph throttled the request {attempts} times: lower the request rate or try again later"
    )]
    Throttled {
        /// The operation and object.
        target: GraphTarget,
        /// The last error response.
        failure: Box<ApiFailure>,
        /// Requests sent, the first one included.
        attempts: u32,
    },
    /// Another error response.
    #[error("{target} failed: {failure}")]
    Api {
        /// The operation and object.
        target: GraphTarget,
        /// The error response.
        failure: Box<ApiFailure>,
    },
    /// No TCP connection or TLS session could be opened.
    #[error(
        "{target} failed: cannot connect to {host}; check the Graph endpoint, the network and the CA file"
    )]
    Connect {
        /// The operation and object.
        target: GraphTarget,
        /// The host of the request URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The request timed out.
    #[error("{target} failed: timed out waiting for {host}")]
    Timeout {
        /// The operation and object.
        target: GraphTarget,
        /// The host of the request URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Sending the request or reading the response broke off.
    #[error(
        "{target} failed: the HTTP exchange with {host} broke off (client-request-id {client_request_id})"
    )]
    Transport {
        /// The operation and object.
        target: GraphTarget,
        /// The host of the request URL.
        host: String,
        /// The `client-request-id` of the request.
        client_request_id: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The response does not have the expected structure.
    #[error(
        "{target} failed: cannot decode the response at {path}: {message} (client-request-id {client_request_id})"
    )]
    Decode {
        /// The operation and object.
        target: GraphTarget,
        /// The JSON path where decoding stopped.
        path: String,
        /// The decoder's message.
        message: String,
        /// The `client-request-id` of the request.
        client_request_id: String,
    },
    /// An `@odata.nextLink` points away from the Graph endpoint; following it would send the
    /// token to another host.
    #[error("{target} failed: the next page link {link} is not on the Graph endpoint {endpoint}")]
    ForeignNextLink {
        /// The operation and object.
        target: GraphTarget,
        /// The link.
        link: String,
        /// The configured endpoint.
        endpoint: String,
    },
    /// The request is larger than Graph accepts.
    #[error(
        "{target} failed: the request body has {size} bytes, more than the {limit} bytes Graph accepts"
    )]
    RequestTooLarge {
        /// The operation and object.
        target: GraphTarget,
        /// The body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The Graph endpoint is not a URL this client can use.
    #[error("invalid Graph endpoint {endpoint}: {reason}")]
    InvalidEndpoint {
        /// The configured endpoint.
        endpoint: String,
        /// The reason it is invalid.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl GraphError {
    /// Returns the operation and object of the failed request, when there was one.
    pub fn target(&self) -> Option<&GraphTarget> {
        match self {
            Self::Token { target, .. }
            | Self::AuthorizationDenied { target, .. }
            | Self::NotFound { target, .. }
            | Self::ReplicationTimeout { target, .. }
            | Self::Throttled { target, .. }
            | Self::Api { target, .. }
            | Self::Connect { target, .. }
            | Self::Timeout { target, .. }
            | Self::Transport { target, .. }
            | Self::Decode { target, .. }
            | Self::ForeignNextLink { target, .. }
            | Self::RequestTooLarge { target, .. } => Some(target),
            Self::InvalidEndpoint { .. } | Self::Http(_) => None,
        }
    }

    /// Returns the error response, when Graph sent one.
    pub fn failure(&self) -> Option<&ApiFailure> {
        match self {
            Self::AuthorizationDenied { failure, .. }
            | Self::NotFound { failure, .. }
            | Self::ReplicationTimeout { failure, .. }
            | Self::Throttled { failure, .. }
            | Self::Api { failure, .. } => Some(failure),
            _ => None,
        }
    }

    /// Returns the HTTP status of the error response.
    pub fn status(&self) -> Option<u16> {
        self.failure().map(|failure| failure.status)
    }

    /// Returns the Graph error code, such as `Authorization_RequestDenied`.
    pub fn code(&self) -> Option<&str> {
        self.failure().map(|failure| failure.code.as_str())
    }

    /// Returns the `request-id` that Graph assigned to the failed request.
    pub fn request_id(&self) -> Option<&str> {
        self.failure()
            .and_then(|failure| failure.request_id.as_deref())
    }

    /// Tells whether Graph denied the operation for lack of permissions.
    pub fn is_authorization_denied(&self) -> bool {
        matches!(self, Self::AuthorizationDenied { .. })
    }

    /// Tells whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Tells whether the failure is one that an object created a moment ago shows until it
    /// has replicated: 404, or the 400 that creating a service principal for a new
    /// application's `appId` returns.
    fn is_replication_symptom(&self) -> bool {
        match self {
            Self::NotFound { .. } => true,
            Self::Api { failure, .. } => {
                failure.status == 400
                    && (failure.code == "Request_ResourceNotFound"
                        || failure
                            .message
                            .contains("does not reference a valid application object"))
            }
            _ => false,
        }
    }
}

/// A request body with its content type.
pub(crate) struct RequestBody {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: Bytes,
}

impl RequestBody {
    pub(crate) fn json(value: &impl serde::Serialize) -> Self {
        Self {
            content_type: "application/json",
            bytes: Bytes::from(serde_json::to_vec(value).expect("request types serialize")),
        }
    }
}

/// One Graph request.
pub(crate) struct Call {
    pub(crate) target: GraphTarget,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) body: Option<RequestBody>,
    /// IDs of objects the request reads; a 404 on an ID this client created recently is
    /// waited out as replication.
    pub(crate) replication_keys: Vec<String>,
}

impl Call {
    pub(crate) fn get(target: GraphTarget, url: Url) -> Self {
        Self {
            target,
            method: Method::GET,
            url,
            body: None,
            replication_keys: Vec::new(),
        }
    }

    pub(crate) fn with_body(mut self, method: Method, body: RequestBody) -> Self {
        self.method = method;
        self.body = Some(body);
        self
    }

    pub(crate) fn after_write_of(mut self, ids: &[&str]) -> Self {
        self.replication_keys = ids.iter().map(|id| id.to_ascii_lowercase()).collect();
        self
    }
}

/// A successful response.
pub(crate) struct GraphResponse {
    pub(crate) body: Bytes,
    pub(crate) client_request_id: String,
}

/// A page of a collection.
#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A Microsoft Graph v1.0 client for one application's credential.
pub struct GraphClient {
    http: reqwest::Client,
    root: Url,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    options: GraphClientOptions,
    recent_writes: Mutex<HashMap<String, Instant>>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.root.as_str())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// Creates a client for the Graph endpoint (`https://graph.microsoft.com` in the public
    /// cloud); requests go to `v1.0/` below it.
    pub fn new(
        endpoint: &Url,
        credential: Arc<dyn TokenCredential>,
        http: &HttpSettings,
        options: GraphClientOptions,
    ) -> Result<Self, GraphError> {
        let invalid = |reason: &str| GraphError::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason: reason.to_owned(),
        };
        if !matches!(endpoint.scheme(), "https" | "http") || endpoint.host_str().is_none() {
            return Err(invalid(
                "expected an https URL such as https://graph.microsoft.com",
            ));
        }
        let mut base = endpoint.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let root = base
            .join("v1.0/")
            .map_err(|error| invalid(&error.to_string()))?;
        let scope = options
            .scope
            .clone()
            .unwrap_or_else(|| default_scope(endpoint));
        Ok(Self {
            http: http.build()?,
            root,
            credential,
            scope,
            options,
            recent_writes: Mutex::new(HashMap::new()),
        })
    }

    /// Returns the URL that request paths are relative to, `<endpoint>/v1.0/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// Records that this client, or another one, just created or changed the object `id`, so
    /// that 404s on it are waited out as replication.
    pub fn note_write(&self, id: &str) {
        let mut writes = self
            .recent_writes
            .lock()
            .expect("the write log lock is never poisoned");
        let timeout = self.options.replication.timeout;
        writes.retain(|_, at| at.elapsed() < timeout);
        writes.insert(id.to_ascii_lowercase(), Instant::now());
    }

    fn written_recently(&self, keys: &[String]) -> bool {
        let writes = self
            .recent_writes
            .lock()
            .expect("the write log lock is never poisoned");
        keys.iter().any(|key| {
            writes
                .get(key)
                .is_some_and(|at| at.elapsed() < self.options.replication.timeout)
        })
    }

    /// Builds the URL of `path` (already percent-encoded) below the v1.0 root.
    pub(crate) fn url(&self, path: &str, query: &Query) -> Url {
        let mut url = self
            .root
            .join(path)
            .expect("paths built from encoded segments are valid");
        url.set_query(query.encode().as_deref());
        url
    }

    /// Sends a request and decodes the JSON response.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T, GraphError> {
        let target = call.target.clone();
        let response = self.execute(call).await?;
        decode(&target, &response)
    }

    /// Sends a request whose response has no body that matters.
    pub(crate) async fn send(&self, call: Call) -> Result<(), GraphError> {
        self.execute(call).await.map(|_| ())
    }

    /// Sends a request, waiting out replication delays for recently written objects.
    pub(crate) async fn execute(&self, call: Call) -> Result<GraphResponse, GraphError> {
        let started = Instant::now();
        let mut attempt = 0;
        // Whether the object counted as recently written at the first failure; the policy's
        // timeout bounds the wait from then on.
        let mut waiting = false;
        loop {
            let error = match self.send_with_retries(&call).await {
                Ok(response) => return Ok(response),
                Err(error)
                    if error.is_replication_symptom()
                        && (waiting || self.written_recently(&call.replication_keys)) =>
                {
                    waiting = true;
                    error
                }
                Err(error) => return Err(error),
            };

            attempt += 1;
            let waited = started.elapsed();
            let Some(delay) = self.options.replication.next_delay(attempt, waited) else {
                let failure = match error {
                    GraphError::NotFound { failure, .. } | GraphError::Api { failure, .. } => {
                        failure
                    }
                    other => return Err(other),
                };
                return Err(GraphError::ReplicationTimeout {
                    target: call.target.clone(),
                    failure,
                    waited,
                });
            };
            replication::report(
                &ReplicationWait {
                    target: call.target.to_string(),
                    attempt,
                    waited,
                    delay,
                },
                self.options.on_replication_wait.as_ref(),
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_with_retries(&self, call: &Call) -> Result<GraphResponse, GraphError> {
        let host = call.url.host_str().unwrap_or_default().to_owned();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;

            // 1. A token from the credential's cache, and a fresh client-request-id.
            let token = self
                .credential
                .get_token(&[self.scope.as_str()], None)
                .await
                .map_err(|source| GraphError::Token {
                    target: call.target.clone(),
                    source: Box::new(source),
                })?;
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let mut authorization =
                http::HeaderValue::from_str(&format!("Bearer {}", token.token.secret()))
                    .expect("access tokens are valid header values");
            authorization.set_sensitive(true);

            // 2. The request.
            let mut builder = self
                .http
                .request(call.method.clone(), call.url.clone())
                .header(header::AUTHORIZATION, authorization)
                .header(header::ACCEPT, "application/json")
                .header("client-request-id", &client_request_id);
            if let Some(body) = &call.body {
                builder = builder
                    .header(header::CONTENT_TYPE, body.content_type)
                    .body(body.bytes.clone());
            }
            debug!(
                method = %call.method,
                path = call.url.path(),
                %client_request_id,
                attempt,
                "sending Graph request"
            );
            let response = builder.send().await.map_err(|source| {
                transport_error(&call.target, &host, &client_request_id, source)
            })?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|source| {
                transport_error(&call.target, &host, &client_request_id, source)
            })?;
            if status.is_success() {
                return Ok(GraphResponse {
                    body,
                    client_request_id,
                });
            }

            // 3. Throttling: wait for the Retry-After interval, within the bound, and send again.
            let failure = ApiFailure::parse(status, &headers, &body, &client_request_id);
            let throttled = matches!(status.as_u16(), 429 | 503);
            if throttled && attempt <= self.options.retry.max_retries {
                let backoff = self
                    .options
                    .retry
                    .initial_backoff
                    .saturating_mul(2u32.saturating_pow(attempt - 1));
                let wait = failure
                    .retry_after
                    .unwrap_or(backoff)
                    .min(self.options.retry.max_wait);
                warn!(
                    operation = call.target.operation,
                    object = call.target.object.as_deref(),
                    status = failure.status,
                    code = %failure.code,
                    request_id = failure.request_id.as_deref(),
                    %client_request_id,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "Graph throttled the request; retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }

            // 4. Anything else is an error for the caller.
            let target = call.target.clone();
            let failure = Box::new(failure);
            debug!(
                operation = target.operation,
                object = target.object.as_deref(),
                status = failure.status,
                code = %failure.code,
                request_id = failure.request_id.as_deref(),
                %client_request_id,
                "Graph request failed"
            );
            return Err(match failure.status {
                403 if failure.code == "Authorization_RequestDenied" => {
                    GraphError::AuthorizationDenied { target, failure }
                }
                404 => GraphError::NotFound { target, failure },
                429 | 503 => GraphError::Throttled {
                    target,
                    failure,
                    attempts: attempt,
                },
                _ => GraphError::Api { target, failure },
            });
        }
    }

    /// Streams every item of a collection, following `@odata.nextLink` page by page.
    pub(crate) fn paged<T>(
        &self,
        target: GraphTarget,
        first: Url,
    ) -> BoxStream<'_, Result<T, GraphError>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        stream::try_unfold(Some(first), move |next| {
            let target = target.clone();
            async move {
                let Some(url) = next else {
                    return Ok::<_, GraphError>(None);
                };
                let page: Page<T> = self.json(Call::get(target.clone(), url)).await?;
                let next = match page.next_link {
                    Some(link) => Some(self.check_next_link(&target, &link)?),
                    None => None,
                };
                Ok(Some((stream::iter(page.value.into_iter().map(Ok)), next)))
            }
        })
        .try_flatten()
        .boxed()
    }

    fn check_next_link(&self, target: &GraphTarget, link: &str) -> Result<Url, GraphError> {
        let foreign = || GraphError::ForeignNextLink {
            target: target.clone(),
            link: link.to_owned(),
            endpoint: self.root.to_string(),
        };
        let url = Url::parse(link).map_err(|_| foreign())?;
        if url.origin() != self.root.origin() {
            return Err(foreign());
        }
        Ok(url)
    }
}

fn transport_error(
    target: &GraphTarget,
    host: &str,
    client_request_id: &str,
    source: reqwest::Error,
) -> GraphError {
    let target = target.clone();
    let host = host.to_owned();
    if source.is_connect() {
        GraphError::Connect {
            target,
            host,
            source,
        }
    } else if source.is_timeout() {
        GraphError::Timeout {
            target,
            host,
            source,
        }
    } else {
        GraphError::Transport {
            target,
            host,
            client_request_id: client_request_id.to_owned(),
            source,
        }
    }
}

fn decode<T: DeserializeOwned>(
    target: &GraphTarget,
    response: &GraphResponse,
) -> Result<T, GraphError> {
    let mut deserializer = serde_json::Deserializer::from_slice(&response.body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| GraphError::Decode {
        target: target.clone(),
        path: error.path().to_string(),
        message: error.inner().to_string(),
        client_request_id: response.client_request_id.clone(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use azure_core::credentials::{AccessToken, TokenRequestOptions};

    use super::*;
    use crate::providers::exchange::test_server::{CannedResponse, RecordedRequest, TestServer};

    /// A credential that returns a fixed token and counts its calls.
    #[derive(Debug, Default)]
    pub(crate) struct FixedToken {
        pub(crate) calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(AccessToken::new(
                "graph-test-token",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    pub(crate) fn json_response(status: u16, body: serde_json::Value) -> CannedResponse {
        CannedResponse {
            status,
            headers: vec![("Content-Type".to_owned(), "application/json".to_owned())],
            body: body.to_string(),
        }
    }

    pub(crate) fn graph_error(status: u16, code: &str, message: &str) -> CannedResponse {
        json_response(
            status,
            serde_json::json!({
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {"request-id": "req-1", "date": "2025-01-01T00:00:00"}
                }
            }),
        )
    }

    /// Options for tests: immediate retries and replication waits.
    pub(crate) fn fast_options() -> GraphClientOptions {
        GraphClientOptions {
            retry: GraphRetry {
                max_retries: 2,
                max_wait: Duration::from_millis(5),
                initial_backoff: Duration::from_millis(1),
            },
            replication: ReplicationPolicy {
                timeout: Duration::from_secs(30),
                initial_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
            on_replication_wait: None,
            scope: None,
        }
    }

    pub(crate) fn client(server: &TestServer, options: GraphClientOptions) -> GraphClient {
        let endpoint = Url::parse(&format!("http://{}", server.addr)).unwrap();
        GraphClient::new(
            &endpoint,
            Arc::new(FixedToken::default()),
            &HttpSettings::default(),
            options,
        )
        .unwrap()
    }

    /// Decodes the query of a recorded request into (name, value) pairs.
    pub(crate) fn query_pairs(request: &RecordedRequest) -> Vec<(String, String)> {
        let query = request
            .path
            .split_once('?')
            .map(|(_, query)| query)
            .unwrap_or("");
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let value = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .unwrap()
                    .into_owned();
                (name.to_owned(), value)
            })
            .collect()
    }

    pub(crate) fn path_of(request: &RecordedRequest) -> &str {
        request.path.split('?').next().unwrap()
    }

    #[derive(Deserialize, Debug)]
    struct Item {
        id: String,
    }

    #[tokio::test]
    async fn request_carries_token_and_client_request_id() {
        let server = TestServer::http(|_| json_response(200, serde_json::json!({"id": "1"}))).await;
        let client = client(&server, fast_options());
        let url = client.url("organization/1", &Query::new());
        let item: Item = client
            .json(Call::get(GraphTarget::operation("get organization"), url))
            .await
            .unwrap();
        assert_eq!(item.id, "1");

        let request = &server.recorded()[0];
        assert_eq!(request.path, "/v1.0/organization/1");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer graph-test-token")
        );
        let client_request_id = request.header("client-request-id").unwrap();
        assert!(
            uuid::Uuid::parse_str(client_request_id).is_ok(),
            "{client_request_id}"
        );
    }

    #[tokio::test]
    async fn throttled_request_is_retried_after_retry_after() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let server = TestServer::http(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                graph_error(429, "TooManyRequests", "slow down").with_header("Retry-After", "0")
            } else {
                json_response(200, serde_json::json!({"id": "1"}))
            }
        })
        .await;
        let client = client(&server, fast_options());
        let url = client.url("organization/1", &Query::new());
        client
            .json::<Item>(Call::get(GraphTarget::operation("get organization"), url))
            .await
            .expect("the retry should succeed");

        let requests = server.recorded();
        assert_eq!(requests.len(), 2);
        assert_ne!(
            requests[0].header("client-request-id"),
            requests[1].header("client-request-id"),
            "each attempt gets its own client-request-id"
        );
    }

    #[tokio::test]
    async fn throttling_gives_up_after_the_bound() {
        let server = TestServer::http(|_| {
            graph_error(503, "ServiceUnavailable", "busy").with_header("Retry-After", "3600")
        })
        .await;
        let client = client(&server, fast_options());
        let url = client.url("organization/1", &Query::new());
        let error = client
            .json::<Item>(Call::get(GraphTarget::operation("get organization"), url))
            .await
            .unwrap_err();
        assert!(
            matches!(error, GraphError::Throttled { attempts: 3, .. }),
            "{error:?}"
        );
        assert_eq!(server.recorded().len(), 3);
        assert_eq!(
            error.failure().unwrap().retry_after,
            Some(Duration::from_secs(3600))
        );
    }

    #[tokio::test]
    async fn authorization_denied_has_its_own_variant() {
        let server = TestServer::http(|_| {
            graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
            .with_header("request-id", "req-header")
        })
        .await;
        let client = client(&server, fast_options());

        let url = client.url("applications", &Query::new());
        let error = client
            .send(Call::get(
                GraphTarget::new("create application", "application 'SIU'"),
                url,
            ))
            .await
            .unwrap_err();
        assert!(error.is_authorization_denied(), "{error:?}");
        assert_eq!(error.status(), Some(403));
        assert_eq!(error.code(), Some("Authorization_RequestDenied"));
        assert_eq!(
            error.request_id(),
            Some("req-header"),
            "the header wins over innerError"
        );
        let message = error.to_string();
        assert!(message.contains("application 'SIU'"), "{message}");
        assert!(message.contains("client-request-id"), "{message}");
        assert!(!message.contains("graph-test-token"), "{message}");
    }

    #[tokio::test]
    async fn not_found_after_own_write_waits_for_replication() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let server = TestServer::http(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                graph_error(404, "Request_ResourceNotFound", "Resource does not exist.")
            } else {
                json_response(200, serde_json::json!({"id": "new-app"}))
            }
        })
        .await;
        let waits = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&waits);
        let mut options = fast_options();
        options.on_replication_wait = Some(Arc::new(move |wait: &ReplicationWait| {
            recorded.lock().unwrap().push(wait.target.clone());
        }));
        let client = client(&server, options);
        client.note_write("NEW-APP");

        let url = client.url("applications/new-app", &Query::new());
        let call = Call::get(GraphTarget::new("get application", "new-app"), url)
            .after_write_of(&["new-app"]);
        client
            .json::<Item>(call)
            .await
            .expect("the third read should succeed");
        assert_eq!(waits.lock().unwrap().len(), 2);
        assert!(waits.lock().unwrap()[0].contains("get application"));
    }

    #[tokio::test]
    async fn not_found_without_write_fails_at_once() {
        let server =
            TestServer::http(|_| graph_error(404, "Request_ResourceNotFound", "gone")).await;
        let client = client(&server, fast_options());
        let url = client.url("applications/other", &Query::new());
        let call =
            Call::get(GraphTarget::new("get application", "other"), url).after_write_of(&["other"]);
        let error = client.json::<Item>(call).await.unwrap_err();
        assert!(error.is_not_found(), "{error:?}");
        assert_eq!(server.recorded().len(), 1);
    }

    #[tokio::test]
    async fn replication_wait_is_bounded() {
        let server =
            TestServer::http(|_| graph_error(404, "Request_ResourceNotFound", "gone")).await;
        let mut options = fast_options();
        options.replication.timeout = Duration::from_millis(20);
        let client = client(&server, options);
        client.note_write("slow-app");
        let url = client.url("applications/slow-app", &Query::new());
        let call = Call::get(GraphTarget::new("get application", "slow-app"), url)
            .after_write_of(&["slow-app"]);
        let error = client.json::<Item>(call).await.unwrap_err();
        assert!(
            matches!(error, GraphError::ReplicationTimeout { .. }),
            "{error:?}"
        );
        assert!(server.recorded().len() >= 2);
    }

    #[tokio::test]
    async fn paging_follows_next_links() {
        let server = TestServer::http(|request| {
            if request.path.contains("skiptoken=2") {
                json_response(200, serde_json::json!({"value": [{"id": "c"}]}))
            } else {
                let next = format!("http://{}/v1.0/items?$skiptoken=2", request.header("host").unwrap());
                json_response(
                    200,
                    serde_json::json!({"value": [{"id": "a"}, {"id": "b"}], "@odata.nextLink": next}),
                )
            }
        })
        .await;
        let client = client(&server, fast_options());
        let url = client.url("items", &Query::new().top(999));
        let items: Vec<Item> = client
            .paged(GraphTarget::operation("list items"), url)
            .try_collect()
            .await
            .unwrap();
        let ids: Vec<&str> = items.iter().map(|item| item.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(server.recorded().len(), 2);
    }

    #[tokio::test]
    async fn foreign_next_link_is_rejected() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [], "@odata.nextLink": "https://attacker.example/v1.0/items"}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let url = client.url("items", &Query::new());
        let result: Result<Vec<Item>, _> = client
            .paged(GraphTarget::operation("list items"), url)
            .try_collect()
            .await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, GraphError::ForeignNextLink { .. }),
            "{error:?}"
        );
        assert_eq!(server.recorded().len(), 1);
    }

    #[tokio::test]
    async fn decode_error_names_the_field() {
        let server = TestServer::http(|_| json_response(200, serde_json::json!({"id": 5}))).await;
        let client = client(&server, fast_options());
        let url = client.url("organization/1", &Query::new());
        let error = client
            .json::<Item>(Call::get(GraphTarget::operation("get organization"), url))
            .await
            .unwrap_err();
        let GraphError::Decode { path, .. } = &error else {
            panic!("expected a decode error, got {error:?}");
        };
        assert_eq!(path, "id");
    }

    #[test]
    fn root_is_below_the_endpoint() {
        let cases = [
            (
                "https://graph.microsoft.com",
                "https://graph.microsoft.com/v1.0/",
            ),
            (
                "https://graph.microsoft.com/",
                "https://graph.microsoft.com/v1.0/",
            ),
            ("https://127.0.0.1:8443/", "https://127.0.0.1:8443/v1.0/"),
        ];
        for (endpoint, root) in cases {
            let client = GraphClient::new(
                &Url::parse(endpoint).unwrap(),
                Arc::new(FixedToken::default()),
                &HttpSettings::default(),
                GraphClientOptions::default(),
            )
            .unwrap();
            assert_eq!(client.root().as_str(), root, "root of {endpoint}");
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a past date means no wait"
        );
    }
}
