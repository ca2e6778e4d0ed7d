//! Applications: list with `$filter`, get by object ID or `appId`, create, update (key
//! credentials and requiredResourceAccess), delete, `addPassword` and `removePassword`.
//!
//! See <https://learn.microsoft.com/graph/api/resources/application>.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use http::StatusCode;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::odata::QueryOptions;
use super::{
    APPLICATION_READ, APPLICATION_WRITE, Caller, GraphError, GraphResult, GraphState, Shared,
    entity, graph_time, is_replicating, list_directory, parse_json, parse_object_id,
};
use crate::world::tenant::{Application, KeyCredential, PasswordCredential};
use crate::{LabState, World};

/// The smallest RSA key Entra ID stores in a key credential, in bits.
pub const MIN_KEY_BITS: usize = 2048;

/// Application permission that lets an application manage the applications it owns; the lab
/// treats every application as the owner of itself.
const OWNED_BY: &str = "Application.ReadWrite.OwnedBy";

/// Renders the JSON form of an application, without secrets or private keys.
pub(super) fn to_json(app: &Application) -> Value {
    let keys: Vec<Value> = app
        .key_credentials
        .iter()
        .map(|k| {
            json!({
                "customKeyIdentifier": STANDARD.encode(&k.sha1),
                "displayName": k.display_name,
                "endDateTime": graph_time(k.end),
                "key": null,
                "keyId": k.key_id,
                "startDateTime": graph_time(k.start),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
            })
        })
        .collect();
    let passwords: Vec<Value> = app
        .password_credentials
        .iter()
        .map(|p| password_json(p, false))
        .collect();
    json!({
        "id": app.id,
        "appId": app.app_id,
        "displayName": app.display_name,
        "signInAudience": app.sign_in_audience,
        "createdDateTime": graph_time(app.created),
        "deletedDateTime": null,
        "identifierUris": [],
        "tags": [],
        "requiredResourceAccess": app.required_resource_access,
        "keyCredentials": keys,
        "passwordCredentials": passwords,
    })
}

/// Renders a password credential, with `secretText` only for the `addPassword` response.
fn password_json(p: &PasswordCredential, with_secret: bool) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": graph_time(p.end),
        "hint": p.hint,
        "keyId": p.key_id,
        "secretText": if with_secret { Some(p.secret.as_str()) } else { None },
        "startDateTime": graph_time(p.start),
    })
}

fn can_read(caller: &Caller, app: &Application) -> bool {
    caller.has_any(APPLICATION_READ) || is_own(caller, app)
}

fn can_write(caller: &Caller, app: &Application) -> bool {
    caller.has_any(APPLICATION_WRITE) || is_own(caller, app)
}

fn is_own(caller: &Caller, app: &Application) -> bool {
    caller.has_any(&[OWNED_BY]) && caller.app_id.eq_ignore_ascii_case(&app.app_id.to_string())
}

/// Finds the position of a replicated application by object ID, or returns 404.
fn find(lab: &LabState, world: &World, id: &str) -> Result<usize, GraphError> {
    let object_id = parse_object_id(id)?;
    world
        .tenant
        .applications
        .iter()
        .position(|a| a.id == object_id && !is_replicating(lab, a.created))
        .ok_or_else(|| GraphError::for_directory_object_not_found(id))
}

/// `GET /applications`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    if !caller.has_any(APPLICATION_READ) && !caller.has_any(&[OWNED_BY]) {
        return Err(GraphError::for_directory_denied());
    }
    let lab = &shared.lab;
    list_directory(
        &shared,
        &uri,
        &options,
        "applications",
        |world| {
            world
                .tenant
                .applications
                .iter()
                .filter(|a| !is_replicating(lab, a.created) && can_read(&caller, a))
                .filter(|a| options.matches(&to_json(a)))
                .map(|a| a.id)
                .collect()
        },
        |world, id| {
            world
                .tenant
                .applications
                .iter()
                .find(|a| a.id == id)
                .map(to_json)
        },
    )
}

/// `GET /applications/{id}`.
pub(super) async fn get_by_id(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    let lab = &shared.lab;
    let world = lab.read();
    let app = &world.tenant.applications[find(lab, &world, &id)?];
    if !can_read(&caller, app) {
        return Err(GraphError::for_directory_denied());
    }
    Ok(entity(
        lab,
        "applications/$entity",
        StatusCode::OK,
        options.project(to_json(app)),
    ))
}

/// `GET /applications(appId='...')`.
pub(super) fn get_by_app_id(
    shared: &GraphState,
    caller: &Caller,
    app_id: &str,
    query: Option<&str>,
) -> GraphResult {
    let options = QueryOptions::parse(query)?;
    let lab = &shared.lab;
    let world = lab.read();
    let app = Uuid::parse_str(app_id)
        .ok()
        .and_then(|id| world.tenant.application_by_app_id(id))
        .filter(|a| !is_replicating(lab, a.created))
        .ok_or_else(|| GraphError::for_directory_object_not_found(app_id))?;
    if !can_read(caller, app) {
        return Err(GraphError::for_directory_denied());
    }
    Ok(entity(
        lab,
        "applications/$entity",
        StatusCode::OK,
        options.project(to_json(app)),
    ))
}

/// `POST /applications`.
pub(super) async fn create(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> GraphResult {
    caller.require(APPLICATION_WRITE)?;
    let body = parse_json(&body)?;
    let display_name = body
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            GraphError::for_directory_bad_request(
                "Property 'displayName' is required to create an application.",
            )
        })?
        .to_string();
    let now = Utc::now();
    let key_credentials = match body.get("keyCredentials") {
        Some(value) => parse_key_credentials(value, &[])?,
        None => Vec::new(),
    };
    let application = Application {
        id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        display_name,
        sign_in_audience: body
            .get("signInAudience")
            .and_then(Value::as_str)
            .unwrap_or("AzureADMyOrg")
            .to_string(),
        required_resource_access: body
            .get("requiredResourceAccess")
            .cloned()
            .unwrap_or_else(|| json!([])),
        key_credentials,
        password_credentials: Vec::new(),
        created: now,
    };
    let answer = to_json(&application);
    tracing::info!(
        app_id = %application.app_id,
        object_id = %application.id,
        by = %caller.app_id,
        "graph created an application"
    );
    shared.lab.write().tenant.applications.push(application);
    Ok(entity(
        &shared.lab,
        "applications/$entity",
        StatusCode::CREATED,
        answer,
    ))
}

/// `PATCH /applications/{id}`: displayName, signInAudience, requiredResourceAccess and
/// keyCredentials (the whole collection, as Graph replaces it).
pub(super) async fn update(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let lab = &shared.lab;
    let mut world = lab.write();
    let index = find(lab, &world, &id)?;
    let app = &mut world.tenant.applications[index];
    if !can_write(&caller, app) {
        return Err(GraphError::for_directory_denied());
    }

    // Check everything before changing anything, so a rejected request changes nothing.
    let keys = match body.get("keyCredentials") {
        Some(value) => Some(parse_key_credentials(value, &app.key_credentials)?),
        None => None,
    };
    if let Some(name) = body.get("displayName") {
        let name = name
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                GraphError::for_directory_bad_request(
                    "Property 'displayName' must be a non-empty string.",
                )
            })?;
        app.display_name = name.to_string();
    }
    if let Some(audience) = body.get("signInAudience").and_then(Value::as_str) {
        app.sign_in_audience = audience.to_string();
    }
    if let Some(access) = body.get("requiredResourceAccess") {
        app.required_resource_access = access.clone();
    }
    if let Some(keys) = keys {
        app.key_credentials = keys;
    }
    tracing::info!(app_id = %app.app_id, by = %caller.app_id, "graph updated an application");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /applications/{id}`.
pub(super) async fn delete(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let lab = &shared.lab;
    let mut world = lab.write();
    let index = find(lab, &world, &id)?;
    if !can_write(&caller, &world.tenant.applications[index]) {
        return Err(GraphError::for_directory_denied());
    }
    let removed = world.tenant.applications.remove(index);
    tracing::info!(app_id = %removed.app_id, by = %caller.app_id, "graph deleted an application");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /applications/{id}/addPassword`, the only response that ever carries `secretText`.
pub(super) async fn add_password(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult {
    let body = parse_json(&body)?;
    let request = body.get("passwordCredential").cloned().unwrap_or(json!({}));
    let now = Utc::now();
    let end = match request.get("endDateTime").and_then(Value::as_str) {
        Some(text) => parse_time(text, "endDateTime")?,
        None => now + ChronoDuration::days(730),
    };
    let start = match request.get("startDateTime").and_then(Value::as_str) {
        Some(text) => parse_time(text, "startDateTime")?,
        None => now,
    };
    let secret = crate::world::generate_client_secret();
    let credential = PasswordCredential {
        key_id: Uuid::new_v4(),
        display_name: request
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_string),
        hint: secret.chars().take(3).collect(),
        secret,
        start,
        end,
    };

    let lab = &shared.lab;
    let mut world = lab.write();
    let index = find(lab, &world, &id)?;
    let app = &mut world.tenant.applications[index];
    if !can_write(&caller, app) {
        return Err(GraphError::for_directory_denied());
    }
    let answer = password_json(&credential, true);
    tracing::info!(app_id = %app.app_id, key_id = %credential.key_id, by = %caller.app_id, "graph added a client secret");
    app.password_credentials.push(credential);
    Ok(entity(
        lab,
        "microsoft.graph.passwordCredential",
        StatusCode::OK,
        answer,
    ))
}

/// `POST /applications/{id}/removePassword`.
pub(super) async fn remove_password(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let key_id = body
        .get("keyId")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| GraphError::for_directory_bad_request("Property 'keyId' must be a GUID."))?;
    let lab = &shared.lab;
    let mut world = lab.write();
    let index = find(lab, &world, &id)?;
    let app = &mut world.tenant.applications[index];
    if !can_write(&caller, app) {
        return Err(GraphError::for_directory_denied());
    }
    let before = app.password_credentials.len();
    app.password_credentials.retain(|p| p.key_id != key_id);
    if app.password_credentials.len() == before {
        return Err(GraphError::for_directory_bad_request(format!(
            "No password credential found with keyId '{key_id}'."
        )));
    }
    tracing::info!(app_id = %app.app_id, %key_id, by = %caller.app_id, "graph removed a client secret");
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn parse_time(text: &str, property: &str) -> Result<DateTime<Utc>, GraphError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            GraphError::for_directory_bad_request(format!(
                "Property '{property}' has an invalid date-time value '{text}'."
            ))
        })
}

/// Parses the `keyCredentials` collection of a create or update.
///
/// An entry with `key` (a base64 DER certificate) adds that certificate; an entry with only
/// the `keyId` of a credential in `existing` keeps it. Certificates must have an RSA key of at
/// least [`MIN_KEY_BITS`] bits.
pub(super) fn parse_key_credentials(
    value: &Value,
    existing: &[KeyCredential],
) -> Result<Vec<KeyCredential>, GraphError> {
    let entries = value.as_array().ok_or_else(|| {
        GraphError::for_directory_bad_request("Property 'keyCredentials' must be a collection.")
    })?;
    let mut credentials = Vec::with_capacity(entries.len());
    for entry in entries {
        let key_id = entry
            .get("keyId")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok());
        let key = entry.get("key").and_then(Value::as_str);
        let Some(key) = key else {
            let kept = key_id
                .and_then(|id| existing.iter().find(|k| k.key_id == id))
                .ok_or_else(|| {
                    GraphError::for_directory_bad_request(
                        "Each key credential needs 'key' (a base64 certificate) or the 'keyId' of an existing credential.",
                    )
                })?;
            credentials.push(kept.clone());
            continue;
        };
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let usage = entry
            .get("usage")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !kind.eq_ignore_ascii_case("AsymmetricX509Cert") || !usage.eq_ignore_ascii_case("Verify")
        {
            return Err(GraphError::for_directory_bad_request(format!(
                "Key credential type '{kind}' with usage '{usage}' is not supported; use type 'AsymmetricX509Cert' and usage 'Verify'."
            )));
        }
        let der = STANDARD.decode(key.trim()).map_err(|_| {
            GraphError::for_directory_bad_request("Key credential 'key' is not valid base64.")
        })?;
        let certificate = inspect_certificate(&der)?;
        if certificate.rsa_bits < MIN_KEY_BITS {
            // TODO-correctness: the code and message Graph returns for a short key were not
            // checked against a real tenant. The status (400) and the rejection are.
            return Err(GraphError::for_directory_bad_request(format!(
                "Key credential key size is invalid: the certificate has a {}-bit RSA key and at least {MIN_KEY_BITS} bits are required.",
                certificate.rsa_bits
            )));
        }
        let start = match entry.get("startDateTime").and_then(Value::as_str) {
            Some(text) => parse_time(text, "startDateTime")?,
            None => certificate.not_before,
        };
        let end = match entry.get("endDateTime").and_then(Value::as_str) {
            Some(text) => parse_time(text, "endDateTime")?,
            None => certificate.not_after,
        };
        credentials.push(KeyCredential {
            key_id: key_id.unwrap_or_else(Uuid::new_v4),
            display_name: entry
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(Some(certificate.subject)),
            sha1: Sha1::digest(&der).to_vec(),
            sha256: Sha256::digest(&der).to_vec(),
            certificate: der,
            start,
            end,
        });
    }
    Ok(credentials)
}

/// Facts the lab reads from an uploaded certificate.
struct CertificateFacts {
    subject: String,
    rsa_bits: usize,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

fn inspect_certificate(der: &[u8]) -> Result<CertificateFacts, GraphError> {
    let invalid = |reason: String| {
        GraphError::for_directory_bad_request(format!(
            "Key credential 'key' is not a valid X.509 certificate: {reason}."
        ))
    };
    let (_, certificate) =
        x509_parser::parse_x509_certificate(der).map_err(|e| invalid(e.to_string()))?;
    let public_key = certificate
        .public_key()
        .parsed()
        .map_err(|e| invalid(e.to_string()))?;
    let rsa_bits = match public_key {
        x509_parser::public_key::PublicKey::RSA(rsa) => rsa_modulus_bits(rsa.modulus),
        _ => return Err(invalid("the key is not an RSA key".into())),
    };
    let time = |t: x509_parser::time::ASN1Time| {
        DateTime::<Utc>::from_timestamp(t.timestamp(), 0).unwrap_or_else(Utc::now)
    };
    Ok(CertificateFacts {
        subject: certificate.subject().to_string(),
        rsa_bits,
        not_before: time(certificate.validity().not_before),
        not_after: time(certificate.validity().not_after),
    })
}

/// Counts the bits of an RSA modulus, ignoring leading zero bytes of its DER integer.
pub(crate) fn rsa_modulus_bits(modulus: &[u8]) -> usize {
    let trimmed: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(first) => &modulus[first..],
        None => return 0,
    };
    trimmed.len() * 8 - trimmed[0].leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignore_the_sign_byte() {
        let mut modulus = vec![0x00, 0x80];
        modulus.extend(std::iter::repeat_n(0xff, 255));
        assert_eq!(rsa_modulus_bits(&modulus), 2048);
        assert_eq!(rsa_modulus_bits(&[0x01, 0x00]), 9);
        assert_eq!(rsa_modulus_bits(&[]), 0);
    }

    #[test]
    fn generated_certificate_is_accepted() {
        let (_, credential) =
            crate::world::generate_app_certificate("unit", 2048).expect("certificate");
        let value = json!([{
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": STANDARD.encode(&credential.certificate),
        }]);
        let parsed = parse_key_credentials(&value, &[]).expect("accepted");
        assert_eq!(parsed[0].sha1, credential.sha1);
    }

    #[test]
    fn credential_without_key_keeps_an_existing_one() {
        let (_, credential) =
            crate::world::generate_app_certificate("unit", 2048).expect("certificate");
        let value = json!([{ "keyId": credential.key_id.to_string() }]);
        let parsed =
            parse_key_credentials(&value, std::slice::from_ref(&credential)).expect("kept");
        assert_eq!(parsed[0].key_id, credential.key_id);
        assert!(parse_key_credentials(&value, &[]).is_err());
    }
}
