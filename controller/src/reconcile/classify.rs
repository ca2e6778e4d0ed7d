//! Maps provider errors to the failure catalogue: which errors the administrator must fix,
//! and with which remedy.
//!
//! Errors that pass on their own (timeouts, refused connections, throttling) get no
//! diagnosis, so a failed read stays unknown and a failed step shows the provider's own
//! message. Errors with a known cause get the catalogue's [`Diagnosis`].

use siu_specs::desired::DirectoryTransport;

use super::context::{ConnectError, Context, ContextError};
use super::observed::{Provider, ReadFailure};
use super::remedies::{self, Diagnosis, FailureKind};
use crate::providers::directory::{AdDiagnostic, DirectoryError};
use crate::providers::entra::{GraphError, TokenError};
use crate::providers::exchange::management::ManagementError;

/// Builds a read failure from an error, with its diagnosis when it has one.
pub fn read_failure(
    provider: Provider,
    target: &str,
    error: &dyn std::fmt::Display,
    diagnosis: Option<Diagnosis>,
) -> ReadFailure {
    let failure = ReadFailure::new(provider, target, error.to_string());
    match diagnosis {
        Some(diagnosis) => failure.with_diagnosis(diagnosis),
        None => failure,
    }
}

/// Diagnoses a failed connection or bind as the spec's bind user.
pub fn directory_connect(ctx: &Context, error: &ConnectError) -> Option<Diagnosis> {
    let directory = &ctx.desired.directory;
    match error {
        ConnectError::Secret(error) => Some(configuration(
            error.to_string(),
            "put the bind user's password where onPremises.directory.bindPassword points",
        )),
        ConnectError::Directory(DirectoryError::Bind { status, .. }) => Some(configuration(
            format!(
                "the directory rejected the bind as {} on {}: {status}",
                directory.bind_user, directory.url
            ),
            "fix onPremises.directory.bindUser and bindPassword",
        )),
        ConnectError::Directory(
            error @ (DirectoryError::CaFile { .. }
            | DirectoryError::InvalidUrl { .. }
            | DirectoryError::InvalidBindIdentity { .. }),
        ) => Some(configuration(
            error.to_string(),
            "fix onPremises.directory in the spec",
        )),
        ConnectError::Directory(_) => None,
    }
}

/// Diagnoses a failed account creation or password write.
pub fn account_write(ctx: &Context, container: &str, error: &DirectoryError) -> Diagnosis {
    let upn = ctx.desired.account.upn.as_str();
    let url = ctx.desired.directory.url.as_str();
    let bind_user = ctx.desired.directory.bind_user.to_string();
    match error {
        DirectoryError::Connect { .. }
        | DirectoryError::TimedOut { .. }
        | DirectoryError::Transport { .. } => {
            remedies::account_server_not_found(upn, url, &error.to_string())
        }
        DirectoryError::PasswordRequiresTls { .. } => remedies::account_ldaps_required(upn, url),
        DirectoryError::Operation { status, .. } => match (status.code, status.diagnostic) {
            (50, _) | (_, Some(AdDiagnostic::AccessDenied)) => {
                remedies::account_insufficient_rights(
                    upn,
                    &bind_user,
                    container,
                    &status.to_string(),
                )
            }
            (32, _) => remedies::account_container_not_found(upn, container),
            // busy and unavailable: the server is up but does not process requests now.
            (51 | 52, _) => remedies::account_server_not_found(upn, url, &status.to_string()),
            (_, Some(AdDiagnostic::PasswordRestriction)) => {
                remedies::account_password_policy(upn, &status.to_string())
            }
            // AD rejects a password write over a plain connection with unwillingToPerform
            // and Win32 error 0x1F.
            (53, Some(AdDiagnostic::GeneralFailure))
                if ctx.desired.directory.transport == DirectoryTransport::Plaintext =>
            {
                remedies::account_ldaps_required(upn, url)
            }
            _ => Diagnosis::other(
                format!("account {upn} not created or changed: {error}"),
                "check the directory's message above, then run apply again",
            ),
        },
        _ => Diagnosis::other(
            format!("account {upn} not created or changed: {error}"),
            "check the directory's message above, then run apply again",
        ),
    }
}

/// Diagnoses a failed management cmdlet, when the cause is the configured command itself.
pub fn management(error: &ManagementError, setting: &str) -> Option<Diagnosis> {
    match error {
        ManagementError::CommandNotFound { .. } | ManagementError::Spawn { .. } => {
            Some(configuration(
                error.to_string(),
                &format!("fix {setting}.command in the spec"),
            ))
        }
        _ => None,
    }
}

/// Diagnoses a failed Graph request of the provisioner.
pub fn provisioner_graph(ctx: &Context, error: &GraphError) -> Option<Diagnosis> {
    let (display_name, provisioner, reference) = provisioner_names(ctx);
    match error {
        GraphError::AuthorizationDenied { failure, .. } => Some(
            remedies::application_not_registered(&display_name, &provisioner, &failure.to_string()),
        ),
        GraphError::Token { source, .. } => {
            TokenError::find(source).and_then(|error| token(error, &reference))
        }
        _ => None,
    }
}

/// Diagnoses a failure to build the provisioner's or the application's credential.
pub fn credential(error: &ContextError) -> Option<Diagnosis> {
    match error {
        ContextError::Secret { .. } => Some(configuration(
            error.to_string(),
            "put the secret where the spec's reference points",
        )),
        ContextError::Certificate(crate::providers::entra::CertificateError::KeyTooSmall {
            origin,
            bits,
        }) => Some(remedies::app_key_too_small(
            "(the application)",
            std::path::Path::new(origin),
            *bits,
        )),
        ContextError::Certificate(error) => Some(configuration(
            error.to_string(),
            "put the PEM file with the private key and the certificate where the spec points",
        )),
        _ => None,
    }
}

/// Diagnoses a token request that the token endpoint rejected; `reference` names where the
/// client secret comes from.
pub fn token(error: &TokenError, reference: &str) -> Option<Diagnosis> {
    let app = error.app();
    let client_id = app.client_id.as_str();
    let detail = error
        .failure()
        .map(|failure| failure.to_string())
        .unwrap_or_default();
    Some(match error {
        TokenError::InvalidClientSecret { .. } | TokenError::ExpiredClientSecret { .. } => {
            remedies::app_wrong_secret(client_id, reference, &detail)
        }
        TokenError::CertificateNotRegistered { .. } => remedies::app_certificate_not_registered(
            client_id,
            app.thumbprint.as_deref().unwrap_or("(unknown thumbprint)"),
            &detail,
        ),
        TokenError::ApplicationNotFound { .. } | TokenError::TenantNotFound { .. } => {
            remedies::app_not_found(client_id, &app.tenant_id, &detail)
        }
        TokenError::ClockSkew { .. } => remedies::app_clock_skew(client_id, &detail),
        TokenError::ConsentMissing { .. } => Diagnosis {
            kind: FailureKind::ConsentMissing,
            message: format!("application {client_id} has no admin consent: {detail}"),
            remedy: "a Global Administrator or Privileged Role Administrator grants admin consent for the application's API permissions".to_owned(),
        },
        TokenError::Rejected { .. } => Diagnosis::other(
            format!("Entra ID rejected the sign-in of application {client_id}: {detail}"),
            "check the tenant ID, the client ID and the credential in the spec",
        ),
        TokenError::Unreachable { .. } | TokenError::Other { .. } => return None,
    })
}

/// Returns the display name, the provisioner's client ID and the reference of its secret.
fn provisioner_names(ctx: &Context) -> (String, String, String) {
    use siu_specs::desired::{AppRegistrationMode, ClientCredential};
    match ctx.desired.app_registration.as_ref().map(|r| &r.mode) {
        Some(AppRegistrationMode::Automatic {
            display_name,
            provisioner,
            ..
        }) => (
            display_name.clone(),
            provisioner.client_id.to_string(),
            match &provisioner.credential {
                ClientCredential::ClientSecret(reference) => reference.to_string(),
                ClientCredential::Certificate { key_file, .. } => {
                    format!("file `{}`", key_file.display())
                }
            },
        ),
        _ => Default::default(),
    }
}

fn configuration(message: String, remedy: &str) -> Diagnosis {
    Diagnosis {
        kind: FailureKind::Configuration,
        message,
        remedy: remedy.to_owned(),
    }
}
