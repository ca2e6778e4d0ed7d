//! Entra reads: the application as Graph shows it to the provisioner (automatic
//! registration), or as the application's own tokens show it (manual registration), and
//! the local credential files.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use sha1::{Digest, Sha1};
use siu_specs::desired::{AppRegistrationMode, ClientCredential, GeneratedCredential};

use super::{bounded, exchange};
use crate::providers::entra::applications::KeyCredential;
use crate::providers::entra::{CertificateError, CertificateKey, GraphClient, GraphError};
use crate::providers::exchange::ews::EXCHANGE_ONLINE_SCOPE;
use crate::reconcile::classify;
use crate::reconcile::context::{Context, GRAPH_SCOPE};
use crate::reconcile::observed::{
    AppLookup, AppState, ApplicationObject, AutomaticApp, ClientSecretInfo, CloudState,
    CredentialFile, GrantedRole, KeyFileState, ManualApp, PrincipalState, Provider, Read,
    ReadFailure, TokenClaims,
};
use crate::reconcile::permissions::{EXCHANGE_ONLINE_APP_ID, MICROSOFT_GRAPH_APP_ID};
use crate::reconcile::secrets;

/// Reads the Entra side, for a hybrid spec.
pub(super) async fn observe(ctx: &Context) -> Option<CloudState> {
    let registration = ctx.desired.app_registration.as_ref()?;
    let app = match &registration.mode {
        AppRegistrationMode::Automatic {
            display_name,
            credential,
            ..
        } => AppState::Automatic(automatic(ctx, display_name, credential).await),
        AppRegistrationMode::Manual {
            client_id,
            credential,
        } => AppState::Manual(manual(ctx, &client_id.to_string(), credential).await),
    };
    let exchange_online = exchange::online_settings(ctx).await;
    Some(CloudState {
        app,
        exchange_online,
    })
}

async fn automatic(
    ctx: &Context,
    display_name: &str,
    credential: &GeneratedCredential,
) -> AutomaticApp {
    let credential_file = credential_file(credential);
    let graph = match ctx.provisioner_credential().and_then(|c| ctx.graph(c)) {
        Ok(graph) => graph,
        Err(error) => {
            let failure = classify::read_failure(
                Provider::TokenEndpoint,
                "the provisioner",
                &error,
                classify::credential(&error),
            );
            return AutomaticApp {
                lookup: Err(failure),
                credential_file,
                service_principal: None,
                granted_roles: None,
            };
        }
    };
    let graph_failure = |target: &str, error: &GraphError| {
        classify::read_failure(
            Provider::Graph,
            target,
            error,
            classify::provisioner_graph(ctx, error),
        )
    };

    // 1. The application by display name, with its certificates.
    let lookup = bounded(ctx, Provider::Graph, display_name, async {
        let mut found = graph
            .find_applications_by_display_name(display_name)
            .await
            .map_err(|error| graph_failure(display_name, &error))?;
        if found.len() > 1 {
            return Ok(AppLookup::Ambiguous(
                found.into_iter().map(|app| app.app_id).collect(),
            ));
        }
        let Some(app) = found.pop() else {
            return Ok(AppLookup::Missing);
        };
        let keys = graph
            .application_key_credentials(&app.id)
            .await
            .map_err(|error| graph_failure(display_name, &error))?;
        let now = Utc::now();
        Ok(AppLookup::Found(ApplicationObject {
            required_roles: app
                .required_resource_access
                .iter()
                .flat_map(|resource| {
                    resource
                        .resource_access
                        .iter()
                        .filter(|access| access.kind == "Role")
                        .map(|access| (resource.resource_app_id.clone(), access.id.to_string()))
                })
                .collect(),
            certificate_thumbprints: keys.iter().filter_map(key_thumbprint).collect(),
            client_secrets: app
                .password_credentials
                .iter()
                .map(|secret| ClientSecretInfo {
                    key_id: secret.key_id.to_string(),
                    hint: secret.hint.clone(),
                    valid: secret.end_date_time.is_none_or(|end| end > now),
                })
                .collect(),
            id: app.id,
            app_id: app.app_id,
            display_name: app.display_name.unwrap_or_default(),
        }))
    })
    .await;

    // 2. Its service principal and the app roles granted to it.
    let Ok(AppLookup::Found(app)) = &lookup else {
        return AutomaticApp {
            lookup,
            credential_file,
            service_principal: None,
            granted_roles: None,
        };
    };
    let service_principal = bounded(ctx, Provider::Graph, display_name, async {
        graph
            .find_service_principal_by_app_id(&app.app_id)
            .await
            .map(|found| found.map(|principal| PrincipalState { id: principal.id }))
            .map_err(|error| graph_failure(display_name, &error))
    })
    .await;
    let granted_roles = match &service_principal {
        Ok(Some(principal)) => Some(granted_roles(ctx, &graph, &principal.id, display_name).await),
        _ => None,
    };
    AutomaticApp {
        lookup,
        credential_file,
        service_principal: Some(service_principal),
        granted_roles,
    }
}

/// Lists the app roles granted to the principal, naming each resource by its application
/// ID, which assignments do not carry: they name the resource's service principal.
async fn granted_roles(
    ctx: &Context,
    graph: &GraphClient,
    principal_id: &str,
    display_name: &str,
) -> Read<Vec<GrantedRole>> {
    bounded(ctx, Provider::Graph, display_name, async {
        let failure = |error: GraphError| {
            classify::read_failure(
                Provider::Graph,
                display_name,
                &error,
                classify::provisioner_graph(ctx, &error),
            )
        };
        let (assignments, exchange, graph_principal) = tokio::join!(
            graph.list_app_role_assignments(principal_id),
            graph.find_service_principal_by_app_id(EXCHANGE_ONLINE_APP_ID),
            graph.find_service_principal_by_app_id(MICROSOFT_GRAPH_APP_ID),
        );
        let resources = [
            (exchange.map_err(failure)?, EXCHANGE_ONLINE_APP_ID),
            (graph_principal.map_err(failure)?, MICROSOFT_GRAPH_APP_ID),
        ];
        Ok(assignments
            .map_err(failure)?
            .into_iter()
            .filter_map(|assignment| {
                let resource_id = assignment.resource_id.to_string();
                resources
                    .iter()
                    .find(|(principal, _)| {
                        principal
                            .as_ref()
                            .is_some_and(|p| p.id.eq_ignore_ascii_case(&resource_id))
                    })
                    .map(|(_, app_id)| GrantedRole {
                        resource_app_id: (*app_id).to_owned(),
                        role_id: assignment.app_role_id.to_string(),
                    })
            })
            .collect())
    })
    .await
}

fn credential_file(credential: &GeneratedCredential) -> CredentialFile {
    match credential {
        GeneratedCredential::Certificate { key_file } => CredentialFile::Certificate {
            path: key_file.clone(),
            current: key_file_state(key_file),
            staged: match key_file_state(&secrets::staged_path(key_file)) {
                KeyFileState::Missing => None,
                state => Some(state),
            },
        },
        GeneratedCredential::ClientSecret { secret_file } => {
            let hint = |path: &Path| {
                siu_specs::SecretRef::FromFile(path.to_path_buf())
                    .resolve()
                    .map(|secret| secret.expose().chars().take(3).collect::<String>())
                    .map_err(|error| error.to_string())
            };
            CredentialFile::ClientSecret {
                path: secret_file.clone(),
                hint: hint(secret_file),
                staged_hint: hint(&secrets::staged_path(secret_file)).ok(),
            }
        }
    }
}

/// Reads a PEM file with a certificate and its key.
pub(crate) fn key_file_state(path: &Path) -> KeyFileState {
    match CertificateKey::from_pem_file(path) {
        Ok(key) => KeyFileState::Present {
            thumbprint: key.thumbprint(),
            expired: key.not_after() < Utc::now(),
        },
        Err(CertificateError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            KeyFileState::Missing
        }
        Err(CertificateError::KeyTooSmall { bits, .. }) => KeyFileState::KeyTooSmall { bits },
        Err(error) => KeyFileState::Invalid(error.to_string()),
    }
}

async fn manual(ctx: &Context, client_id: &str, credential: &ClientCredential) -> ManualApp {
    let key_file = match credential {
        ClientCredential::Certificate { key_file, .. } => Some(key_file_state(key_file)),
        ClientCredential::ClientSecret(_) => None,
    };
    let reference = match credential {
        ClientCredential::ClientSecret(reference) => reference.to_string(),
        ClientCredential::Certificate { key_file, .. } => format!("file `{}`", key_file.display()),
    };
    let signed_in = ctx.application_credential(client_id);
    let token = |scope: &'static str| {
        let signed_in = &signed_in;
        let reference = &reference;
        bounded(ctx, Provider::TokenEndpoint, client_id, async move {
            let credential = signed_in.as_ref().map_err(|error| {
                classify::read_failure(
                    Provider::TokenEndpoint,
                    client_id,
                    error,
                    classify::credential(error),
                )
            })?;
            let token = credential.token(scope).await.map_err(|error| {
                classify::read_failure(
                    Provider::TokenEndpoint,
                    client_id,
                    &error,
                    classify::token(&error, reference),
                )
            })?;
            token_claims(token.token.secret())
                .map_err(|reason| ReadFailure::new(Provider::TokenEndpoint, client_id, reason))
        })
    };
    let (exchange_token, graph_token) =
        tokio::join!(token(EXCHANGE_ONLINE_SCOPE), token(GRAPH_SCOPE));
    ManualApp {
        key_file,
        exchange_token,
        graph_token,
    }
}

/// Reads the `roles` claim of an access token.
///
/// The signature is not verified. The token came straight from the token endpoint over a
/// TLS connection that verified the endpoint's certificate, and the claims are read only
/// to report which app roles the application was granted, never to grant access.
pub fn token_claims(token: &str) -> Result<TokenClaims, String> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or("the access token is not a JWT")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|error| format!("the access token's payload is not base64url: {error}"))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|error| format!("the access token's payload is not JSON: {error}"))?;
    let roles = claims
        .get("roles")
        .and_then(|roles| roles.as_array())
        .map(|roles| {
            roles
                .iter()
                .filter_map(|role| role.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(TokenClaims { roles })
}

/// Returns the SHA-1 thumbprint of a registered certificate: computed from the certificate
/// when Graph returns it, otherwise read from `customKeyIdentifier`. For certificates that
/// field contains the thumbprint, as its 20 bytes or as 40 hexadecimal characters when a
/// tool wrote the text form.
fn key_thumbprint(key: &KeyCredential) -> Option<String> {
    if let Some(der) = key.key.as_deref().and_then(|key| STANDARD.decode(key).ok()) {
        return Some(hex_upper(&Sha1::digest(&der)));
    }
    let bytes = STANDARD
        .decode(key.custom_key_identifier.as_deref()?)
        .ok()?;
    match bytes.len() {
        20 => Some(hex_upper(&bytes)),
        40 if bytes.iter().all(u8::is_ascii_hexdigit) => {
            Some(String::from_utf8_lossy(&bytes).to_ascii_uppercase())
        }
        _ => None,
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_claims_reads_roles() {
        let payload = URL_SAFE_NO_PAD
            .encode(br#"{"appid":"x","roles":["full_access_as_app","Mail.ReadWrite"]}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln");

        let claims = token_claims(&token).expect("claims");

        assert_eq!(claims.roles, ["full_access_as_app", "Mail.ReadWrite"]);
    }

    #[test]
    fn token_claims_without_roles_is_empty() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"appid":"x"}"#);

        let claims = token_claims(&format!("h.{payload}.s")).expect("claims");

        assert!(claims.roles.is_empty());
    }

    #[test]
    fn thumbprint_comes_from_the_custom_key_identifier() {
        let thumbprint = [0xAB_u8; 20];
        let key = KeyCredential {
            key_id: None,
            display_name: None,
            custom_key_identifier: Some(STANDARD.encode(thumbprint)),
            start_date_time: None,
            end_date_time: None,
            kind: Some("AsymmetricX509Cert".into()),
            usage: Some("Verify".into()),
            key: None,
        };
        let text = KeyCredential {
            custom_key_identifier: Some(STANDARD.encode("ab".repeat(20))),
            ..key.clone()
        };

        assert_eq!(key_thumbprint(&key), Some("AB".repeat(20)));
        assert_eq!(key_thumbprint(&text), Some("AB".repeat(20)));
    }

    #[test]
    fn token_claims_rejects_opaque_tokens() {
        assert!(token_claims("opaque").is_err());
    }
}
