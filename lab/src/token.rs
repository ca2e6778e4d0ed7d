//! The Entra token endpoint: `POST /{tenant}/oauth2/v2.0/token` with the client credentials
//! grant, and the discovery documents that let anyone verify the tokens it issues.
//!
//! A client proves itself with a client secret (in the form, or as HTTP Basic credentials) or
//! with a client assertion. The assertion is a JWT signed (RS256 or PS256) with the key of a
//! certificate registered on the application, which its `x5t` (SHA-1) or `x5t#S256` header
//! names by thumbprint. Its `aud` must be this endpoint (the v1 form `/{tenant}/oauth2/token`
//! is accepted too), its `iss` and `sub` the client ID, and the clock must be inside its
//! `nbf`..`exp` window give or take [`CLOCK_SKEW`]. See
//! <https://learn.microsoft.com/entra/identity-platform/certificate-credentials>.
//!
//! Refusals carry Entra's error shape (`error`, `error_description` starting with
//! `AADSTSnnnnn:`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`).
//! The codes come from Entra's published list,
//! <https://learn.microsoft.com/entra/identity-platform/reference-error-codes>, except where a
//! comment at the variant names another source.
//!
//! An application or service principal younger than the lab's replication delay is unknown
//! here, as a new registration is in Entra ID for a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::access::Resource;
use crate::faults::{FaultKind, Service};
use crate::serve::DropConnection;
use crate::world::tenant::{Application, KeyCredential};
use crate::{LabState, World};

/// How far outside an assertion's `nbf`..`exp` window the clock may be.
// NOTE: Entra does not publish its allowance; five minutes is the default clock skew of
// Microsoft's token validation libraries, used here as an estimate.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// `expires_in` of issued tokens, in seconds.
const TOKEN_LIFETIME_SECS: u64 = 3599;

/// The `client_assertion_type` of a JWT client assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Builds the token endpoint's router.
pub fn router(state: Arc<LabState>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token).get(token_by_get))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys))
        .with_state(state)
}

/// A refusal of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// HTTP status: 401 for `invalid_client`, 400 otherwise.
    pub status: StatusCode,
    /// OAuth 2.0 `error`.
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u32,
    /// Description of the failure, without the `AADSTSnnnnn:` prefix.
    pub description: String,
}

impl TokenError {
    fn new(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    /// AADSTS900144: a required parameter is missing.
    fn missing(name: &str) -> Self {
        Self::new(
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    /// AADSTS90002: the tenant in the path is not this lab's.
    fn unknown_tenant(tenant: &str) -> Self {
        Self::new(
            "invalid_request",
            90_002,
            format!(
                "Tenant '{tenant}' not found. Check the tenant ID or domain in the authority URL."
            ),
        )
    }

    /// AADSTS700016: no such application in the tenant, or it has not replicated yet.
    fn unknown_client(client_id: &str, tenant_name: &str) -> Self {
        Self::new(
            "unauthorized_client",
            700_016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. \
                 The application may not be registered in this tenant, may not be replicated yet, \
                 or the request went to the wrong tenant."
            ),
        )
    }

    /// AADSTS700027: the assertion's key is not registered, expired or does not verify.
    fn bad_signature(reason: &str, thumbprint: &str, client_id: &str) -> Self {
        Self::new(
            "invalid_client",
            700_027,
            format!(
                "Client assertion failed signature validation. [Reason - {reason}, \
                 Thumbprint of key used by client: '{thumbprint}'. The keys registered for \
                 application '{client_id}' are its keyCredentials in Microsoft Graph.]"
            ),
        )
    }

    /// AADSTS50027: the assertion is malformed or has an unexpected audience or claim.
    fn invalid_assertion(reason: impl Into<String>) -> Self {
        Self::new(
            "invalid_client",
            50_027,
            format!("Invalid JWT token. {}", reason.into()),
        )
    }
}

/// A successful grant.
struct Grant {
    access_token: String,
}

/// The form of a token request after merging HTTP Basic credentials.
#[derive(Debug, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

impl TokenRequest {
    fn parse(body: &[u8], headers: &HeaderMap) -> Self {
        let mut request = TokenRequest::default();
        for (name, value) in url::form_urlencoded::parse(body) {
            let value = Some(value.into_owned()).filter(|v| !v.is_empty());
            let slot = match name.as_ref() {
                "grant_type" => &mut request.grant_type,
                "client_id" => &mut request.client_id,
                "client_secret" => &mut request.client_secret,
                "client_assertion_type" => &mut request.client_assertion_type,
                "client_assertion" => &mut request.client_assertion,
                "scope" => &mut request.scope,
                _ => continue,
            };
            if slot.is_none() {
                *slot = value;
            }
        }

        // client_secret_basic: `Basic base64(form-encoded id ":" form-encoded secret)`.
        let basic = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((id, secret)) = basic.as_deref().and_then(|text| text.split_once(':')) {
            request.client_id.get_or_insert_with(|| form_decode(id));
            request
                .client_secret
                .get_or_insert_with(|| form_decode(secret));
        }
        request
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
async fn token(
    State(state): State<Arc<LabState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let operation = "token";
    let decision = state.faults.decide(Service::Token, operation);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let request = TokenRequest::parse(&body, &headers);
    let client_id = request.client_id.clone();
    let correlation_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4);

    let (response, outcome) = match decision.fault {
        Some(fault) => {
            let response = render_fault(&state, &fault, correlation_id);
            (response, "fault")
        }
        None => match grant(&state, &tenant, &request) {
            Ok(grant) => (token_response(&grant), "issued"),
            Err(error) => {
                tracing::info!(
                    client_id = client_id.as_deref().unwrap_or("-"),
                    %tenant,
                    code = error.code,
                    error = error.error,
                    "token request refused"
                );
                (error_response(&state, &error, correlation_id), "refused")
            }
        },
    };

    let dropped = response.extensions().get::<DropConnection>().is_some();
    // A dropped connection has no status; the journal records it as 0.
    let status = if dropped {
        0
    } else {
        response.status().as_u16()
    };
    let elapsed = started.elapsed();
    state.journal.record(
        Service::Token,
        operation,
        status,
        elapsed,
        client_id.as_deref(),
    );
    tracing::debug!(
        service = "token",
        operation,
        status,
        latency_ms = elapsed.as_millis() as u64,
        client_id = client_id.as_deref().unwrap_or("-"),
        outcome,
        "token request"
    );
    response
}

/// `GET /{tenant}/oauth2/v2.0/token`: AADSTS900561, because the endpoint takes only POST.
async fn token_by_get(State(state): State<Arc<LabState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let correlation_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4);
    let error = TokenError::new(
        "invalid_request",
        900_561,
        "The endpoint only accepts POST requests. Received a GET request.",
    );
    let response = error_response(&state, &error, correlation_id);
    record_unfaulted(&state, "token (GET)", &response, started);
    response
}

fn token_response(grant: &Grant) -> Response {
    let body = serde_json::json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": grant.access_token,
    });
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Renders a refusal in Entra's JSON shape.
fn error_response(state: &LabState, error: &TokenError, correlation_id: Uuid) -> Response {
    let trace_id = Uuid::new_v4();
    let timestamp = Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let body = serde_json::json!({
        "error": error.error,
        "error_description": format!(
            "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
            error.code, error.description
        ),
        "error_codes": [error.code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("{}error?code={}", state.endpoints().authority_host, error.code),
    });
    let mut response = (error.status, axum::Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// Renders an injected fault in the shape Entra uses for overload and failure.
fn render_fault(state: &LabState, fault: &FaultKind, correlation_id: Uuid) -> Response {
    let with_retry_after = |status: StatusCode, code: u32, seconds: u64| {
        let error = TokenError {
            status,
            error: "temporarily_unavailable",
            code,
            description: "The service is temporarily unavailable. Retry after the number of seconds in the Retry-After header.".into(),
        };
        let mut response = error_response(state, &error, correlation_id);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        response
    };
    match fault {
        // AADSTS90055 TenantThrottlingError.
        FaultKind::TooManyRequests { retry_after_secs } => {
            with_retry_after(StatusCode::TOO_MANY_REQUESTS, 90_055, *retry_after_secs)
        }
        // AADSTS90006 ExternalServerRetryableError.
        FaultKind::ServerBusy { back_off_ms } => with_retry_after(
            StatusCode::SERVICE_UNAVAILABLE,
            90_006,
            back_off_ms.div_ceil(1000),
        ),
        FaultKind::ExceededConnectionCount => {
            with_retry_after(StatusCode::SERVICE_UNAVAILABLE, 90_006, 1)
        }
        // AADSTS50000 TokenIssuanceError.
        FaultKind::Status { code } => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error = TokenError {
                status,
                error: "server_error",
                code: 50_000,
                description: format!("The lab injected a fault: HTTP {}.", status.as_u16()),
            };
            error_response(state, &error, correlation_id)
        }
        FaultKind::Drop => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            response
        }
        // Latency never becomes the fault itself: `Faults::decide` adds it to the latency.
        FaultKind::Latency { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks whether `tenant` (an ID or a verified domain) names this lab's tenant.
fn is_our_tenant(world: &World, tenant: &str) -> bool {
    Uuid::parse_str(tenant).is_ok_and(|id| id == world.tenant.id)
        || tenant.eq_ignore_ascii_case(&world.tenant.initial_domain)
        || world.directory.is_our_domain(tenant)
}

/// Checks a token request and issues the token.
fn grant(state: &LabState, tenant: &str, request: &TokenRequest) -> Result<Grant, TokenError> {
    // 1. The tenant and the parameters every client credentials request needs.
    let world = state.read();
    if !is_our_tenant(&world, tenant) {
        return Err(TokenError::unknown_tenant(tenant));
    }
    let grant_type = request
        .grant_type
        .as_deref()
        .ok_or_else(|| TokenError::missing("grant_type"))?;
    if grant_type != "client_credentials" {
        return Err(TokenError::new(
            "unsupported_grant_type",
            70_003,
            format!(
                "The grant type '{grant_type}' is not supported by the lab; use 'client_credentials'."
            ),
        ));
    }
    let client_id = request
        .client_id
        .as_deref()
        .ok_or_else(|| TokenError::missing("client_id"))?;
    let scope = request
        .scope
        .as_deref()
        .ok_or_else(|| TokenError::missing("scope"))?;
    if request.client_secret.is_none() && request.client_assertion.is_none() {
        return Err(TokenError::new(
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }

    // 2. The application and its service principal, both past the replication delay.
    let unknown = || TokenError::unknown_client(client_id, &world.tenant.display_name);
    let app_id = Uuid::parse_str(client_id).map_err(|_| unknown())?;
    let application = world
        .tenant
        .application_by_app_id(app_id)
        .filter(|a| !crate::graph::is_replicating(state, a.created))
        .ok_or_else(unknown)?;
    let principal = world
        .tenant
        .principal_by_app_id(app_id)
        .filter(|p| !crate::graph::is_replicating(state, p.created))
        .ok_or_else(unknown)?;

    // 3. The client's credential.
    let now = Utc::now();
    match (&request.client_secret, &request.client_assertion) {
        (Some(secret), _) => check_secret(application, secret, now)?,
        (None, Some(assertion)) => {
            let assertion_type = request.client_assertion_type.as_deref().unwrap_or_default();
            if assertion_type != JWT_BEARER {
                return Err(if assertion_type.is_empty() {
                    TokenError::missing("client_assertion_type")
                } else {
                    TokenError::new(
                        "invalid_request",
                        90_023,
                        format!(
                            "The client_assertion_type '{assertion_type}' is not supported; use '{JWT_BEARER}'."
                        ),
                    )
                });
            }
            let audiences = accepted_audiences(state, &world, tenant);
            check_assertion(application, assertion, &audiences, now)?;
        }
        (None, None) => unreachable!("checked above"),
    }

    // 4. The scope: exactly one known resource with `/.default`.
    let resource = resource_of(scope, &world)
        .or_else(|error| lab_resource_of(scope, state.endpoints()).ok_or(error))?;
    let roles = world.tenant.granted_roles(app_id, resource.app_id());
    let access_token = state
        .tokens
        .issue(
            resource,
            app_id,
            principal.id,
            roles,
            Duration::from_secs(TOKEN_LIFETIME_SECS),
        )
        .map_err(|error| {
            tracing::error!(%error, %client_id, "failed to sign an access token");
            TokenError::new(
                "server_error",
                50_000,
                "The lab failed to sign the access token.",
            )
        })?;
    Ok(Grant { access_token })
}

/// Compares a client secret with every unexpired secret of the application.
fn check_secret(
    application: &Application,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    let matching = application
        .password_credentials
        .iter()
        .find(|p| constant_time_eq(p.secret.as_bytes(), secret.as_bytes()));
    match matching {
        Some(credential) if credential.end < now => Err(TokenError::new(
            "invalid_client",
            7_000_222,
            format!(
                "The provided client secret keys for app '{}' are expired. Create a new secret for the application.",
                application.app_id
            ),
        )),
        Some(_) => Ok(()),
        None => Err(TokenError::new(
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Send the secret's value, not its ID, for a secret added to app '{}'.",
                application.app_id
            ),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lists the `aud` values an assertion may carry: the v2 and v1 token URLs of this authority,
/// with the tenant as the request named it, as its ID or as its initial domain.
fn accepted_audiences(state: &LabState, world: &World, tenant: &str) -> Vec<String> {
    let authority = state
        .endpoints()
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let mut tenants = vec![
        tenant.to_string(),
        world.tenant.id.to_string(),
        world.tenant.initial_domain.clone(),
    ];
    tenants.dedup();
    tenants
        .iter()
        .flat_map(|t| {
            [
                format!("{authority}/{t}/oauth2/v2.0/token"),
                format!("{authority}/{t}/oauth2/token"),
            ]
        })
        .collect()
}

/// The claims the lab reads from a client assertion.
#[derive(Debug, Deserialize)]
struct AssertionClaims {
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// `aud` is a string or an array of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Verifies a client assertion: thumbprint, signature, audience, issuer and subject, time
/// window and `jti`, in that order.
fn check_assertion(
    application: &Application,
    assertion: &str,
    audiences: &[String],
    now: DateTime<Utc>,
) -> Result<(), TokenError> {
    let client_id = application.app_id.to_string();
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| {
        TokenError::invalid_assertion("The client assertion is not a well-formed JWT.")
    })?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(TokenError::invalid_assertion(format!(
            "The client assertion is signed with {:?}; use RS256 or PS256.",
            header.alg
        )));
    }

    // 1. The certificate, by SHA-256 thumbprint when given, else by SHA-1.
    let (thumbprint, key) = match (&header.x5t_s256, &header.x5t) {
        (Some(s256), _) => (s256.clone(), find_key(application, s256, |k| &k.sha256)),
        (None, Some(sha1)) => (sha1.clone(), find_key(application, sha1, |k| &k.sha1)),
        (None, None) => {
            return Err(TokenError::bad_signature(
                "The client assertion has neither an x5t nor an x5t#S256 header",
                "",
                &client_id,
            ));
        }
    };
    let Some(key) = key else {
        return Err(TokenError::bad_signature(
            "The key was not found",
            &thumbprint,
            &client_id,
        ));
    };
    if key.end < now || key.start > now + CLOCK_SKEW {
        return Err(TokenError::bad_signature(
            "The key used is expired or not yet valid",
            &thumbprint,
            &client_id,
        ));
    }

    // 2. The signature, with every registered claim checked by hand below.
    let decoding = decoding_key(&key.certificate).ok_or_else(|| {
        TokenError::bad_signature(
            "The registered certificate has no usable RSA key",
            &thumbprint,
            &client_id,
        )
    })?;
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::bad_signature(
                "The signature does not verify with the key",
                &thumbprint,
                &client_id,
            ),
            _ => TokenError::invalid_assertion(format!(
                "The client assertion could not be read: {error}."
            )),
        })?
        .claims;

    // 3. Audience, issuer and subject.
    let audience_ok = match &claims.aud {
        Some(Audience::One(aud)) => audience_matches(aud, audiences),
        Some(Audience::Many(list)) => list.iter().any(|aud| audience_matches(aud, audiences)),
        None => false,
    };
    if !audience_ok {
        let sent = match &claims.aud {
            Some(Audience::One(aud)) => aud.clone(),
            Some(Audience::Many(list)) => list.join(", "),
            None => String::new(),
        };
        return Err(TokenError::invalid_assertion(format!(
            "The client assertion has audience '{sent}'; it must be the token endpoint URL '{}'.",
            audiences.first().map(String::as_str).unwrap_or_default()
        )));
    }
    let iss = claims.iss.as_deref().unwrap_or_default();
    let sub = claims.sub.as_deref().unwrap_or_default();
    if iss != sub {
        return Err(TokenError::new(
            "invalid_client",
            50_048,
            format!(
                "Subject '{sub}' does not match the issuer claim '{iss}' in the client assertion."
            ),
        ));
    }
    if !iss.eq_ignore_ascii_case(&client_id) {
        // NOTE: AADSTS700021 is the code Entra sends for this case in responses seen in
        // public bug reports, but the published code list does not include it.
        return Err(TokenError::new(
            "invalid_client",
            700_021,
            format!(
                "Client assertion application identifier '{iss}' does not match the client_id parameter '{client_id}'."
            ),
        ));
    }

    // 4. The time window, then the JWT ID.
    let (Some(exp), nbf) = (claims.exp, claims.nbf) else {
        return Err(TokenError::invalid_assertion(
            "The client assertion has no exp claim.",
        ));
    };
    let skew = CLOCK_SKEW.num_seconds();
    let current = now.timestamp();
    let too_late = current > exp + skew;
    let too_early = nbf.is_some_and(|nbf| current + skew < nbf);
    if too_late || too_early {
        let show = |t: i64| {
            DateTime::<Utc>::from_timestamp(t, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        return Err(TokenError::new(
            "invalid_client",
            700_024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}.",
                show(current),
                nbf.map(show).unwrap_or_else(|| "-".into()),
                show(exp)
            ),
        ));
    }
    if claims.jti.as_deref().is_none_or(str::is_empty) {
        return Err(TokenError::invalid_assertion(
            "The client assertion has no jti claim.",
        ));
    }
    Ok(())
}

fn audience_matches(aud: &str, accepted: &[String]) -> bool {
    let aud = aud.trim_end_matches('/');
    accepted.iter().any(|a| a.eq_ignore_ascii_case(aud))
}

/// Finds the key credential whose thumbprint (`select`ed hash) the header names. The JWS
/// specification makes thumbprints base64url, and standard base64 and hex are accepted too.
fn find_key<'a>(
    application: &'a Application,
    thumbprint: &str,
    select: impl Fn(&KeyCredential) -> &Vec<u8>,
) -> Option<&'a KeyCredential> {
    let wanted = URL_SAFE_NO_PAD
        .decode(thumbprint.trim_end_matches('='))
        .ok()
        .or_else(|| STANDARD.decode(thumbprint).ok())
        .or_else(|| decode_hex(thumbprint))?;
    application
        .key_credentials
        .iter()
        .find(|k| select(k).as_slice() == wanted.as_slice())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Extracts the RSA modulus and exponent of a DER certificate, without leading zero bytes.
fn rsa_components(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    rsa_components_of(certificate.public_key())
}

fn rsa_components_of(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Option<(Vec<u8>, Vec<u8>)> {
    match spki.parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => {
            let strip = |bytes: &[u8]| {
                let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
                bytes[first..].to_vec()
            };
            Some((strip(rsa.modulus), strip(rsa.exponent)))
        }
        _ => None,
    }
}

fn decoding_key(der: &[u8]) -> Option<DecodingKey> {
    let (modulus, exponent) = rsa_components(der)?;
    Some(DecodingKey::from_rsa_raw_components(&modulus, &exponent))
}

/// Finds the resource that a client credentials `scope` names.
fn resource_of(scope: &str, world: &World) -> Result<Resource, TokenError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if scopes.len() != 1 {
        return Err(TokenError::new(
            "invalid_scope",
            70_011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' names more than one resource."
            ),
        ));
    }
    let scope = scopes[0];
    if !scope.ends_with("/.default") {
        return Err(TokenError::new(
            "invalid_scope",
            1_002_012,
            format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        ));
    }
    Resource::from_scope(scope).ok_or_else(|| {
        let resource = scope.trim_end_matches("/.default");
        TokenError::new(
            "invalid_resource",
            500_011,
            format!(
                "The resource principal named {resource} was not found in the tenant named {}. \
                 The resource may not be installed in this tenant or the scope may be misspelled.",
                world.tenant.display_name
            ),
        )
    })
}

/// Finds the resource that a scope names by one of the lab's own endpoints.
///
/// A client configured for a cloud whose Graph or Exchange Online lives at another address
/// (a national cloud, or this lab) asks for `<that origin>/.default`, as it would for
/// `https://graph.microsoft.us/.default`. The lab serves its resources under the origins of
/// its endpoints as well as under the public names.
fn lab_resource_of(scope: &str, endpoints: &crate::Endpoints) -> Option<Resource> {
    let resource = scope
        .trim()
        .strip_suffix("/.default")?
        .trim_end_matches('/');
    let origin = |url: &url::Url| url.origin().ascii_serialization();
    if resource.eq_ignore_ascii_case(&origin(&endpoints.graph)) {
        Some(Resource::Graph)
    } else if resource.eq_ignore_ascii_case(&origin(&endpoints.exchange_online_ews)) {
        Some(Resource::ExchangeOnline)
    } else {
        None
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
async fn openid_configuration(
    State(state): State<Arc<LabState>>,
    Path(tenant): Path<String>,
) -> Response {
    let started = Instant::now();
    let known = is_our_tenant(&state.read(), &tenant);
    let response = if known {
        let authority = state
            .endpoints()
            .authority_host
            .as_str()
            .trim_end_matches('/');
        let tenant_id = state.read().tenant.id;
        // NOTE: `issuer` is the issuer of the tokens the lab signs, the v1 form that Entra uses
        // for tokens of Graph and Exchange Online, so that a validator reading it accepts
        // them. Entra's own v2.0 document names the v2 issuer instead.
        axum::Json(serde_json::json!({
            "issuer": state.tokens.issuer(),
            "token_endpoint": format!("{authority}/{tenant_id}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{authority}/{tenant_id}/discovery/v2.0/keys"),
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": ["client_credentials"],
            "tenant_region_scope": null,
        }))
        .into_response()
    } else {
        error_response(&state, &TokenError::unknown_tenant(&tenant), Uuid::new_v4())
    };
    record_unfaulted(&state, "openid-configuration", &response, started);
    response
}

/// `GET /{tenant}/discovery/v2.0/keys`: the lab's signing key as a JWKS.
async fn keys(State(state): State<Arc<LabState>>, Path(tenant): Path<String>) -> Response {
    let started = Instant::now();
    let response = if !is_our_tenant(&state.read(), &tenant) {
        error_response(&state, &TokenError::unknown_tenant(&tenant), Uuid::new_v4())
    } else {
        match jwk(&state) {
            Some(key) => axum::Json(serde_json::json!({ "keys": [key] })).into_response(),
            None => {
                tracing::error!("failed to read the lab's token signing key for the JWKS");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    };
    record_unfaulted(&state, "keys", &response, started);
    response
}

/// Counts and logs a request of a route that fault rules do not apply to.
fn record_unfaulted(state: &LabState, operation: &str, response: &Response, started: Instant) {
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .journal
        .record(Service::Token, operation, status, elapsed, None);
    tracing::debug!(
        service = "token",
        operation,
        status,
        latency_ms = elapsed.as_millis() as u64,
        "token endpoint request"
    );
}

/// Renders the token signing key as a JSON Web Key.
fn jwk(state: &LabState) -> Option<serde_json::Value> {
    let pem = state.tokens.public_key_pem();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).ok()?;
    let (_, spki) = <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
        x509_parser::error::X509Error,
    >>::from_der(&der)
    .ok()?;
    let (modulus, exponent) = rsa_components_of(&spki)?;
    Some(serde_json::json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": state.tokens.key_id(),
        "n": URL_SAFE_NO_PAD.encode(modulus),
        "e": URL_SAFE_NO_PAD.encode(exponent),
        "issuer": state.tokens.issuer(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20client:se%3Acret%2B");
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        let request = TokenRequest::parse(b"grant_type=client_credentials", &headers);
        assert_eq!(request.client_id.as_deref(), Some("my client"));
        assert_eq!(request.client_secret.as_deref(), Some("se:cret+"));
    }

    #[test]
    fn scope_needs_one_default_resource() {
        let (world, _) = World::from_fixture(&crate::Fixture::default_org()).expect("world");
        assert_eq!(
            resource_of("https://graph.microsoft.com/.default", &world),
            Ok(Resource::Graph)
        );
        assert_eq!(
            resource_of("https://graph.microsoft.com/Mail.Read", &world).map_err(|e| e.code),
            Err(1_002_012)
        );
        assert_eq!(
            resource_of("https://unknown.example/.default", &world).map_err(|e| e.code),
            Err(500_011)
        );
        assert_eq!(
            resource_of("a/.default b/.default", &world).map_err(|e| e.code),
            Err(70_011)
        );
    }

    #[test]
    fn hex_thumbprints_decode() {
        assert_eq!(decode_hex("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode_hex("0af"), None);
    }
}
