//! Authenticated HTTP for EWS and Autodiscover.
//!
//! Basic and bearer requests share one `reqwest` client and its connection pool. NTLM
//! authenticates a connection rather than a request, so each NTLM connection lives in
//! its own client (one idle connection per host, HTTP/1.1 only) that serves one request
//! at a time; a small pool of such clients is checked out per request. A connection
//! stays authenticated until the server answers 401, and then the handshake runs again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};
use url::Url;

use super::auth::{AuthScheme, EwsAuth};
use super::ntlm::{
    NtlmError, NtlmHandshake, authorization_value, challenge_from_headers, tls_server_end_point,
};
use crate::http::{HttpError, HttpSettings};

/// How often an NTLM handshake whose AUTHENTICATE was rejected is repeated.
const NTLM_HANDSHAKE_RETRIES: usize = 3;

/// Pause before the first repeat of an NTLM handshake; later repeats wait a multiple of it.
const NTLM_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// A request to send: method, URL, extra headers and body.
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: Method,
    pub(crate) url: &'a Url,
    pub(crate) headers: Vec<(header::HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
}

/// A response with its body read.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A failure below the SOAP layer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// The token credential failed.
    #[error("cannot get an access token")]
    Token(#[source] azure_core::Error),
    /// The NTLM handshake failed on the client side.
    #[error("NTLM handshake failed")]
    Ntlm(#[source] NtlmError),
    /// The server returned no challenge for the NTLM negotiate message.
    #[error("the server sent no NTLM challenge")]
    NtlmNotOffered { offered: Vec<String> },
    /// The HTTP exchange failed.
    #[error("HTTP request failed")]
    Http(#[source] reqwest::Error),
}

/// Sends requests with the configured authentication.
pub(crate) struct Transport {
    auth: EwsAuth,
    shared: reqwest::Client,
    ntlm: Option<NtlmPool>,
}

impl Transport {
    /// Creates a transport; `max_ntlm_connections` bounds the concurrent NTLM requests.
    pub(crate) fn new(
        settings: &HttpSettings,
        auth: EwsAuth,
        max_ntlm_connections: usize,
    ) -> Result<Self, HttpError> {
        let shared = settings
            .client_builder()?
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|source| HttpError::Build { source })?;
        let ntlm = match &auth {
            EwsAuth::Ntlm { .. } => Some(NtlmPool::new(settings, max_ntlm_connections)?),
            _ => None,
        };
        Ok(Self { auth, shared, ntlm })
    }

    /// Returns the authentication scheme.
    pub(crate) fn scheme(&self) -> AuthScheme {
        self.auth.scheme()
    }

    /// Sends `request` and reads the whole response.
    pub(crate) async fn send(
        &self,
        request: &HttpRequest<'_>,
    ) -> Result<HttpResponse, TransportError> {
        match (&self.auth, &self.ntlm) {
            (EwsAuth::Ntlm { username, password }, Some(pool)) => {
                let mut checked_out = pool.checkout().await;
                let connection = checked_out.connection();
                let mut result = send_ntlm(connection, request, username, password).await;
                // hyper returns a connection to the client's pool from its connection task
                // after the CHALLENGE's body is read, so the AUTHENTICATE can leave on a new
                // connection that never saw the CHALLENGE, and the server rejects it with
                // 401. The handshake is repeated for that case.
                // TODO-correctness: a dedicated hyper connection per NTLM client would
                // remove the race. Until then a wrong password costs up to four failed
                // logons per request towards AD's lockout threshold.
                for attempt in 1..=NTLM_HANDSHAKE_RETRIES {
                    match &result {
                        Ok((response, false)) if response.status == StatusCode::UNAUTHORIZED => {
                            debug!(url = %request.url, attempt, "NTLM AUTHENTICATE rejected; repeating the handshake");
                            // A busy machine can be slow to hand the connection back, so
                            // each repeat waits a little longer first.
                            tokio::time::sleep(NTLM_RETRY_PAUSE * attempt as u32).await;
                            result = send_ntlm(connection, request, username, password).await;
                        }
                        _ => break,
                    }
                }
                // A connection whose exchange broke off must authenticate again.
                connection.authenticated = matches!(result, Ok((_, true)));
                result.map(|(response, _)| response)
            }
            (auth, _) => {
                let mut builder = build(&self.shared, request, request.body.clone());
                builder = match auth {
                    EwsAuth::Basic { username, password } => {
                        builder.basic_auth(username, Some(password.expose()))
                    }
                    EwsAuth::Bearer { credential, scope } => {
                        let token = credential
                            .get_token(&[scope.as_str()], None)
                            .await
                            .map_err(TransportError::Token)?;
                        builder.bearer_auth(token.token.secret())
                    }
                    EwsAuth::Ntlm { .. } | EwsAuth::None => builder,
                };
                let response = builder.send().await.map_err(TransportError::Http)?;
                read(response).await.map_err(TransportError::Http)
            }
        }
    }
}

fn build(
    client: &reqwest::Client,
    request: &HttpRequest<'_>,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let mut builder = client.request(request.method.clone(), request.url.clone());
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder.body(body)
}

async fn read(response: reqwest::Response) -> Result<HttpResponse, reqwest::Error> {
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn sensitive(value: String) -> HeaderValue {
    let mut value = HeaderValue::from_str(&value).expect("base64 tokens are valid header values");
    value.set_sensitive(true);
    value
}

/// Sends `request` on an NTLM connection, authenticating first when needed. Returns the
/// response and whether the connection is authenticated afterwards.
//
// TODO-coverage: unit tests check the tokens against a server-side NTLM context; this
// HTTP flow (three legs on one connection, the repeat after a 401, the binding to the
// certificate that TLS presented) runs only against an NTLM server such as the lab's EWS.
async fn send_ntlm(
    connection: &mut NtlmConnection,
    request: &HttpRequest<'_>,
    username: &str,
    password: &super::auth::Secret,
) -> Result<(HttpResponse, bool), TransportError> {
    // 1. On an authenticated connection, send the request as is.
    if connection.authenticated {
        let response = build(&connection.client, request, request.body.clone())
            .send()
            .await
            .map_err(TransportError::Http)?;
        let response = read(response).await.map_err(TransportError::Http)?;
        if response.status != StatusCode::UNAUTHORIZED {
            return Ok((response, true));
        }
        // The server closed the authenticated connection, or the session expired.
        warn!(url = %request.url, "NTLM connection no longer authenticated; repeating the handshake");
    }

    // 2. NEGOTIATE, with an empty body: the server returns 401 with its CHALLENGE.
    let host = request.url.host_str().unwrap_or_default();
    let (mut handshake, negotiate) =
        NtlmHandshake::start(username, password, host).map_err(TransportError::Ntlm)?;
    let challenge_response = build(&connection.client, request, Bytes::new())
        .header(
            header::AUTHORIZATION,
            sensitive(authorization_value(&negotiate)),
        )
        .send()
        .await
        .map_err(TransportError::Http)?;
    let peer_certificate = challenge_response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate().map(<[u8]>::to_vec));
    let challenge_response = read(challenge_response)
        .await
        .map_err(TransportError::Http)?;
    if challenge_response.status != StatusCode::UNAUTHORIZED {
        debug!(status = %challenge_response.status, "server returned a non-401 status for the NTLM negotiate message");
        return Ok((challenge_response, false));
    }
    let Some(challenge) = challenge_from_headers(&challenge_response.headers) else {
        return Err(TransportError::NtlmNotOffered {
            offered: offered_schemes(&challenge_response.headers),
        });
    };

    // 3. AUTHENTICATE with the request body, bound to the server certificate on https.
    let channel_binding = peer_certificate
        .as_deref()
        .map(tls_server_end_point)
        .transpose()
        .map_err(TransportError::Ntlm)?;
    let authenticate = handshake
        .respond(&challenge, channel_binding.as_deref())
        .map_err(TransportError::Ntlm)?;
    // The client's connection task returns the connection to its pool after the CHALLENGE's
    // body is read. Yielding first lets it run, so that the AUTHENTICATE usually finds that
    // connection idle instead of opening a new one.
    tokio::task::yield_now().await;
    let response = build(&connection.client, request, request.body.clone())
        .header(
            header::AUTHORIZATION,
            sensitive(authorization_value(&authenticate)),
        )
        .send()
        .await
        .map_err(TransportError::Http)?;
    let response = read(response).await.map_err(TransportError::Http)?;
    let authenticated = response.status != StatusCode::UNAUTHORIZED;
    Ok((response, authenticated))
}

/// Lists the schemes of `WWW-Authenticate` headers, for error messages.
pub(crate) fn offered_schemes(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// NTLM connections, each in a client of its own.
struct NtlmPool {
    idle: Arc<Mutex<Vec<NtlmConnection>>>,
    permits: Arc<Semaphore>,
}

struct NtlmConnection {
    client: reqwest::Client,
    authenticated: bool,
}

impl NtlmPool {
    fn new(settings: &HttpSettings, max_connections: usize) -> Result<Self, HttpError> {
        // All clients are built now, so that checking one out cannot fail. A client opens
        // its connection on first use and reopens it after the server closes it.
        let max_connections = max_connections.max(1);
        let mut idle = Vec::with_capacity(max_connections);
        for _ in 0..max_connections {
            let client = settings
                .client_builder()?
                .redirect(reqwest::redirect::Policy::none())
                .http1_only()
                .pool_max_idle_per_host(1)
                .tls_info(true)
                .build()
                .map_err(|source| HttpError::Build { source })?;
            idle.push(NtlmConnection {
                client,
                authenticated: false,
            });
        }
        Ok(Self {
            idle: Arc::new(Mutex::new(idle)),
            permits: Arc::new(Semaphore::new(max_connections)),
        })
    }

    async fn checkout(&self) -> CheckedOut {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let connection = self
            .idle
            .lock()
            .expect("the pool lock is never poisoned")
            .pop()
            .expect("a permit guarantees an idle connection");
        CheckedOut {
            connection: Some(connection),
            idle: Arc::clone(&self.idle),
            _permit: permit,
        }
    }
}

/// A connection in use; it goes back to the pool when dropped.
struct CheckedOut {
    connection: Option<NtlmConnection>,
    idle: Arc<Mutex<Vec<NtlmConnection>>>,
    _permit: OwnedSemaphorePermit,
}

impl CheckedOut {
    fn connection(&mut self) -> &mut NtlmConnection {
        self.connection
            .as_mut()
            .expect("a checked-out connection is present until dropped")
    }
}

impl Drop for CheckedOut {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.idle
                .lock()
                .expect("the pool lock is never poisoned")
                .push(connection);
        }
    }
}
