//! Authentication of EWS and Autodiscover requests.
//!
//! The on-premises server accepts Basic (UPN, `DOMAIN\user` or a bare account name) and NTLM,
//! as IIS does with both enabled. NTLM authenticates a connection, not a request: the handshake
//! state and then the authenticated user are kept in the connection's state, and later
//! requests on the same connection need no `Authorization` header. When the client binds its
//! AUTHENTICATE message to the TLS channel (`MsvAvChannelBindings`, RFC 5929
//! `tls-server-end-point`), the binding must match the lab's certificate.
//!
//! Exchange Online accepts only Bearer tokens for `https://outlook.office365.com` with the
//! `full_access_as_app` role, and only for applications its EWS settings allow.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sspi::{
    AuthIdentity, BufferType, DataRepresentation, Ntlm, SecurityBuffer, SecurityStatus,
    ServerRequestFlags, Sspi, SspiEx, SspiImpl,
};
use uuid::Uuid;

use crate::LabState;
use crate::access::{Resource, TokenRejected};
use crate::serve::Connection;
use crate::world::tenant::FULL_ACCESS_AS_APP;

/// The response to a request that is not authenticated: 401 with challenges, or 403.
pub type Rejection = Box<Response>;

/// The authenticated sender of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An Active Directory account, authenticated with Basic or NTLM.
    User {
        /// Object ID of the user.
        id: Uuid,
        /// The user principal name, for logs and the journal.
        upn: String,
    },
    /// An application with an app-only token.
    Application {
        /// Application (client) ID.
        app_id: String,
    },
}

impl Caller {
    /// Returns the name the journal records: a UPN or a client ID.
    pub fn actor(&self) -> &str {
        match self {
            Caller::User { upn, .. } => upn,
            Caller::Application { app_id } => app_id,
        }
    }
}

/// NTLM state of a connection whose handshake is between CHALLENGE and AUTHENTICATE.
#[derive(Clone)]
struct NtlmHandshake(Arc<Mutex<Ntlm>>);

/// The user that NTLM authenticated on a connection.
#[derive(Clone)]
struct NtlmIdentity(Uuid);

/// The `tls-server-end-point` prefix of channel binding application data (RFC 5929).
const END_POINT_PREFIX: &[u8] = b"tls-server-end-point:";

/// AV_PAIR ID of `MsvAvChannelBindings` in an NTLMv2 response (MS-NLMP 2.2.2.1).
const AV_CHANNEL_BINDINGS: u16 = 0x000A;
/// AV_PAIR ID of `MsvAvEOL`.
const AV_EOL: u16 = 0x0000;

/// Authenticates a request to the on-premises server, or returns the 401 response.
///
/// With an external directory, Basic logons are checked there and NTLM is refused (see
/// [`crate::external`]).
pub async fn on_premises(
    state: &LabState,
    connection: Option<&Arc<Connection>>,
    headers: &HeaderMap,
) -> Result<Caller, Rejection> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let realm = realm(state, headers);
    let external = state.external.as_ref();
    let deny = |note: Option<&str>| match external {
        Some(_) => basic_challenge(&realm, note),
        None => challenge(&realm, None),
    };

    let Some(authorization) = authorization else {
        // A connection that NTLM authenticated stays authenticated.
        if external.is_none()
            && let Some(user) = connection.and_then(connection_identity)
        {
            return caller_for(state, user).ok_or_else(|| deny(None));
        }
        return Err(deny(None));
    };
    let (scheme, credentials) = authorization
        .split_once(' ')
        .map(|(s, c)| (s, c.trim()))
        .unwrap_or((authorization, ""));

    if scheme.eq_ignore_ascii_case("Basic") {
        let caller = match external {
            Some(client) => basic_external(state, client, credentials).await,
            None => basic(state, credentials),
        };
        return caller.ok_or_else(|| deny(None));
    }
    if scheme.eq_ignore_ascii_case("NTLM") || scheme.eq_ignore_ascii_case("Negotiate") {
        if external.is_some() {
            tracing::debug!(
                scheme,
                "NTLM refused: passwords are checked by the external directory"
            );
            return Err(deny(Some(NTLM_UNAVAILABLE)));
        }
        let Some(connection) = connection else {
            return Err(challenge(&realm, None));
        };
        return ntlm(state, connection, scheme, credentials, &realm);
    }
    tracing::debug!(
        scheme,
        "unsupported authorization scheme on the on-premises server"
    );
    Err(deny(None))
}

/// Body of the 401 response to NTLM when the lab follows an external directory.
pub const NTLM_UNAVAILABLE: &str = "NTLM is not available: this lab checks passwords with LDAP \
     simple binds against an external directory, which cannot verify NTLM responses because \
     Active Directory never returns NT hashes over LDAP. Use Basic authentication \
     (`auth: basic` in the spec).\n";

/// Returns the realm IIS names in `Basic realm=`: the host the client requested.
fn realm(state: &LabState, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(|host| host.rsplit_once(':').map_or(host, |(h, _)| h).to_string())
        .unwrap_or_else(|| state.read().directory.domain.clone())
}

/// Builds the 401 response: every scheme IIS offers, or one NTLM challenge in a running
/// handshake.
pub fn challenge(realm: &str, ntlm: Option<(&str, &[u8])>) -> Rejection {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    match ntlm {
        Some((scheme, token)) => {
            let value = format!("{scheme} {}", STANDARD.encode(token));
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&value).expect("base64 is a valid header value"),
            );
        }
        None => {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Negotiate"),
            );
            headers.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("NTLM"));
            let basic = format!("Basic realm=\"{}\"", realm.replace('"', ""));
            if let Ok(value) = HeaderValue::from_str(&basic) {
                headers.append(header::WWW_AUTHENTICATE, value);
            }
        }
    }
    Box::new(response)
}

/// Builds the 401 of a server that offers only Basic, with an explanation in the body.
fn basic_challenge(realm: &str, note: Option<&str>) -> Rejection {
    let mut response = Response::new(Body::from(note.unwrap_or_default().to_string()));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let basic = format!("Basic realm=\"{}\"", realm.replace('"', ""));
    if let Ok(value) = HeaderValue::from_str(&basic) {
        response
            .headers_mut()
            .append(header::WWW_AUTHENTICATE, value);
    }
    if note.is_some() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Box::new(response)
}

/// Splits Basic credentials into the logon name and the password.
fn decode_basic(credentials: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(credentials).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

async fn basic_external(
    state: &LabState,
    client: &crate::external::ExternalClient,
    credentials: &str,
) -> Option<Caller> {
    let (name, password) = decode_basic(credentials)?;
    let (id, upn) = crate::external::lookup::authenticate(state, client, &name, &password).await?;
    Some(Caller::User { id, upn })
}

fn basic(state: &LabState, credentials: &str) -> Option<Caller> {
    let (name, password) = decode_basic(credentials)?;
    let (name, password) = (name.as_str(), password.as_str());
    let world = state.read();
    let Some(user) = world.directory.user_by_logon(name) else {
        tracing::debug!(logon = name, "basic logon for an unknown account");
        return None;
    };
    let matches = user.can_log_on()
        && user
            .password
            .as_deref()
            .is_some_and(|p| constant_time_eq(p.as_bytes(), password.as_bytes()));
    if !matches {
        tracing::debug!(upn = %user.upn, enabled = user.enabled(), "basic logon failed");
        return None;
    }
    Some(Caller::User {
        id: user.id,
        upn: user.upn.clone(),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn connection_identity(connection: &Arc<Connection>) -> Option<Uuid> {
    let state = connection.state.lock().unwrap_or_else(|p| p.into_inner());
    state.get::<NtlmIdentity>().map(|i| i.0)
}

fn caller_for(state: &LabState, id: Uuid) -> Option<Caller> {
    let world = state.read();
    let user = world.directory.users.get(&id)?;
    user.can_log_on().then(|| Caller::User {
        id,
        upn: user.upn.clone(),
    })
}

/// Runs one step of the NTLM handshake: NEGOTIATE gets a CHALLENGE, AUTHENTICATE is verified.
fn ntlm(
    state: &LabState,
    connection: &Arc<Connection>,
    scheme: &str,
    credentials: &str,
    realm: &str,
) -> Result<Caller, Rejection> {
    let Ok(token) = STANDARD.decode(credentials) else {
        return Err(challenge(realm, None));
    };
    if !token.starts_with(b"NTLMSSP\0") || token.len() < 12 {
        // SPNEGO-wrapped Kerberos: the lab has no KDC, so the client must fall back to NTLM.
        tracing::debug!(scheme, "rejected a Negotiate token that is not raw NTLM");
        return Err(challenge(realm, None));
    }
    let message_type = u32::from_le_bytes(token[8..12].try_into().expect("four bytes"));
    match message_type {
        1 => {
            let mut server = Ntlm::new();
            match accept(&mut server, &token) {
                Ok((_, output)) => {
                    let mut connection_state =
                        connection.state.lock().unwrap_or_else(|p| p.into_inner());
                    connection_state.remove::<NtlmIdentity>();
                    connection_state.insert(NtlmHandshake(Arc::new(Mutex::new(server))));
                    Err(challenge(realm, Some((scheme, &output))))
                }
                Err(error) => {
                    tracing::debug!(%error, "invalid NTLM NEGOTIATE message");
                    Err(challenge(realm, None))
                }
            }
        }
        3 => {
            let handshake = connection
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove::<NtlmHandshake>();
            let Some(NtlmHandshake(server)) = handshake else {
                tracing::debug!(
                    connection = connection.id,
                    "NTLM AUTHENTICATE without a challenge on this connection"
                );
                return Err(challenge(realm, None));
            };
            let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
            match verify_authenticate(state, &mut server, &token) {
                Ok(caller) => {
                    if let Caller::User { id, .. } = &caller {
                        connection
                            .state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(NtlmIdentity(*id));
                    }
                    Ok(caller)
                }
                Err(reason) => {
                    tracing::debug!(connection = connection.id, reason, "NTLM logon failed");
                    Err(challenge(realm, None))
                }
            }
        }
        other => {
            tracing::debug!(message_type = other, "unexpected NTLM message type");
            Err(challenge(realm, None))
        }
    }
}

fn accept(server: &mut Ntlm, token: &[u8]) -> Result<(SecurityStatus, Vec<u8>), sspi::Error> {
    let mut credentials = None;
    let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
    let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
    let builder = server
        .accept_security_context()
        .with_credentials_handle(&mut credentials)
        .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
        .with_target_data_representation(DataRepresentation::Native)
        .with_input(&mut input)
        .with_output(&mut output);
    let result = server
        .accept_security_context_impl(builder)?
        .resolve_to_result()?;
    Ok((result.status, std::mem::take(&mut output[0].buffer)))
}

fn verify_authenticate(
    state: &LabState,
    server: &mut Ntlm,
    token: &[u8],
) -> Result<Caller, &'static str> {
    // 1. Channel binding: checked only when the client sent a non-zero binding hash.
    match channel_binding_hash(token) {
        Some(hash) if hash != [0u8; 16] => {
            let mut data = END_POINT_PREFIX.to_vec();
            data.extend_from_slice(&state.tls.server_end_point);
            server.set_channel_bindings(&data);
        }
        _ => {}
    }

    // 2. Read the AUTHENTICATE message, which names the user before anything is verified.
    let (status, _) = accept(server, token).map_err(|error| match error.error_type {
        sspi::ErrorKind::BadBindings => "the channel binding does not match the server certificate",
        _ => "invalid AUTHENTICATE message",
    })?;
    if status != SecurityStatus::CompleteNeeded {
        return Err("the AUTHENTICATE message did not complete the handshake");
    }
    let names = server
        .query_context_names()
        .map_err(|_| "the AUTHENTICATE message names no user")?;
    let logon = names.username.inner().to_string();

    // 3. Look the user up and verify the response with the password the world keeps.
    let (caller, password) = {
        let world = state.read();
        let user = world
            .directory
            .user_by_logon(&logon)
            .ok_or("unknown account")?;
        if !user.can_log_on() {
            return Err("the account is disabled or has no usable password");
        }
        let password = user.password.clone().ok_or("the account has no password")?;
        (
            Caller::User {
                id: user.id,
                upn: user.upn.clone(),
            },
            password,
        )
    };
    server
        .custom_set_auth_identity(AuthIdentity {
            username: names.username,
            password: password.into(),
        })
        .map_err(|_| "failed to set the account's credentials")?;
    server
        .complete_auth_token(&mut [])
        .map_err(|_| "the NTLM response does not match the password")?;
    Ok(caller)
}

/// Returns the `MsvAvChannelBindings` hash of an NTLMv2 AUTHENTICATE message, when it has one.
fn channel_binding_hash(message: &[u8]) -> Option<[u8; 16]> {
    // NtChallengeResponseFields at offset 20: length (u16), maximum length (u16), offset (u32).
    let length = usize::from(u16::from_le_bytes(message.get(20..22)?.try_into().ok()?));
    let offset = usize::try_from(u32::from_le_bytes(message.get(24..28)?.try_into().ok()?)).ok()?;
    let response = message.get(offset..offset.checked_add(length)?)?;
    // NTProofStr (16 bytes), then the client challenge blob whose AV pairs start at byte 28.
    let mut pairs = response.get(16 + 28..)?;
    while pairs.len() >= 4 {
        let id = u16::from_le_bytes([pairs[0], pairs[1]]);
        let length = usize::from(u16::from_le_bytes([pairs[2], pairs[3]]));
        let value = pairs.get(4..4 + length)?;
        if id == AV_EOL {
            return None;
        }
        if id == AV_CHANNEL_BINDINGS {
            return value.try_into().ok();
        }
        pairs = &pairs[4 + length..];
    }
    None
}

/// Authenticates a request to Exchange Online, or returns the 401 or 403 response.
pub fn online(state: &LabState, headers: &HeaderMap) -> Result<Caller, Rejection> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("Bearer").then(|| token.trim())
        });
    let Some(token) = token else {
        return Err(bearer_challenge(state, None));
    };
    let claims = match state.tokens.verify(token, Resource::ExchangeOnline) {
        Ok(claims) => claims,
        Err(rejected) => {
            tracing::debug!(%rejected, "rejected an Exchange Online token");
            let diagnostics = match rejected {
                TokenRejected::Expired => {
                    r#"2000001;reason="The token has expired.";error_category="invalid_lifetime""#.to_string()
                }
                TokenRejected::Invalid => {
                    r#"2000001;reason="The token signature is invalid.";error_category="invalid_signature""#.to_string()
                }
                TokenRejected::WrongAudience(audience) => format!(
                    r#"2000003;reason="The audience claim value is invalid '{}'.";error_category="invalid_resource""#,
                    audience.replace(['"', '\r', '\n'], "")
                ),
            };
            return Err(bearer_challenge(state, Some(&diagnostics)));
        }
    };
    if !claims
        .roles
        .iter()
        .any(|r| r == "full_access_as_app" || r == FULL_ACCESS_AS_APP)
    {
        tracing::debug!(app_id = %claims.appid, "Exchange Online token without full_access_as_app");
        return Err(bearer_challenge(
            state,
            Some(
                r#"2000008;reason="The token contains no permissions, or permissions can not be understood.";error_category="invalid_grant""#,
            ),
        ));
    }
    // NOTE: Exchange Online rejects a blocked application with HTTP 403 and no SOAP body. The
    // lab does the same for every request of an application its EWS settings do not allow.
    if !state.read().exchange.online.ews_allows(&claims.appid) {
        tracing::debug!(app_id = %claims.appid, "EWS is blocked for this application");
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::FORBIDDEN;
        return Err(Box::new(response));
    }
    Ok(Caller::Application {
        app_id: claims.appid,
    })
}

/// Builds the 401 response of Exchange Online, with `x-ms-diagnostics` when a token was rejected.
fn bearer_challenge(state: &LabState, diagnostics: Option<&str>) -> Rejection {
    let authorize = state
        .endpoints
        .get()
        .map(|e| format!("{}common/oauth2/authorize", e.authority_host))
        .unwrap_or_default();
    let value = format!(
        r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="00000001-0000-0000-c000-000000000000@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="{authorize}", error="invalid_token""#
    );
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.append(header::WWW_AUTHENTICATE, value);
    }
    if let Some(diagnostics) = diagnostics.and_then(|d| HeaderValue::from_str(d).ok()) {
        headers.insert("x-ms-diagnostics", diagnostics);
    }
    Box::new(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_hash_is_found_among_av_pairs() {
        let mut blob = vec![0u8; 16 + 28];
        blob.extend_from_slice(&2u16.to_le_bytes());
        blob.extend_from_slice(&4u16.to_le_bytes());
        blob.extend_from_slice(b"LAB\0");
        blob.extend_from_slice(&AV_CHANNEL_BINDINGS.to_le_bytes());
        blob.extend_from_slice(&16u16.to_le_bytes());
        blob.extend_from_slice(&[7u8; 16]);
        blob.extend_from_slice(&[0, 0, 0, 0]);
        let mut message = vec![0u8; 64];
        message[20..22].copy_from_slice(&(blob.len() as u16).to_le_bytes());
        message[24..28].copy_from_slice(&64u32.to_le_bytes());
        message.extend_from_slice(&blob);
        assert_eq!(channel_binding_hash(&message), Some([7u8; 16]));
        assert_eq!(channel_binding_hash(&message[..40]), None);
    }
}
