//! The Entra application, its credential, service principal and consent, and EWS in
//! Exchange Online.

use siu_specs::desired::{
    AppRegistration, AppRegistrationMode, ClientCredential, GeneratedCredential, MailAccess,
};

use super::{ClientId, Decision, blocked, failed_read, unknown};
use crate::reconcile::observed::{
    AppLookup, AppState, ApplicationObject, AutomaticApp, CloudState, CredentialFile, KeyFileState,
    ManualApp, Read, TokenClaims,
};
use crate::reconcile::permissions::{REQUIRED_ROLES, RequiredRole};
use crate::reconcile::plan::{Action, ActionKind, Resource, Step};
use crate::reconcile::remedies;
use crate::reconcile::view::Value;

pub(super) fn decide_cloud(
    registration: &AppRegistration,
    cloud: &CloudState,
    decision: &mut Decision,
) -> ClientId {
    let client_id = match (&registration.mode, &cloud.app) {
        (
            AppRegistrationMode::Automatic {
                display_name,
                credential,
                ..
            },
            AppState::Automatic(app),
        ) => decide_automatic(display_name, credential, app, decision),
        (
            AppRegistrationMode::Manual {
                client_id,
                credential,
            },
            AppState::Manual(app),
        ) => {
            decide_manual(client_id, credential, app, decision);
            ClientId::Known(client_id.to_string())
        }
        _ => unreachable!("observe reads the application in the spec's registration mode"),
    };

    let ews = decide_exchange_online(registration, cloud, &client_id, decision);
    decision.actions.push(ews);
    client_id
}

fn decide_automatic(
    display_name: &str,
    credential: &GeneratedCredential,
    app: &AutomaticApp,
    decision: &mut Decision,
) -> ClientId {
    let yes = || Value::flag(true);
    let credential_kind = match credential {
        GeneratedCredential::Certificate { .. } => "certificate",
        GeneratedCredential::ClientSecret { .. } => "client secret",
    };
    let create_credential = match credential {
        GeneratedCredential::Certificate { .. } => Step::AddCertificate,
        GeneratedCredential::ClientSecret { .. } => Step::AddClientSecret,
    };
    decision.line(
        "application.displayName",
        Value::of(display_name),
        match &app.lookup {
            Ok(AppLookup::Found(found)) => Value::of(&found.display_name),
            Ok(AppLookup::Ambiguous(ids)) => Value::of(format!("{} applications", ids.len())),
            Ok(AppLookup::Missing) => Value::Absent,
            Err(failure) => unknown(failure),
        },
    );

    let found = match &app.lookup {
        Err(failure) => {
            decision.line(
                "application.requiredPermissions",
                Value::of("complete"),
                unknown(failure),
            );
            decision.line("appCredential.registered", yes(), unknown(failure));
            decision.line("servicePrincipal.exists", yes(), unknown(failure));
            for role in &REQUIRED_ROLES {
                decision.line(&consent_key(role), Value::of("granted"), unknown(failure));
            }
            let action = failed_read(Resource::Application, display_name, failure);
            let kind = action.kind;
            decision.actions.push(action);
            for resource in [
                Resource::AppCredential,
                Resource::ServicePrincipal,
                Resource::Consent,
            ] {
                decision.actions.push(Action::new(
                    resource,
                    display_name,
                    kind,
                    "depends on the application, whose read failed",
                ));
            }
            return ClientId::Unknown;
        }
        Ok(AppLookup::Ambiguous(ids)) => {
            decision.actions.push(blocked(
                Resource::Application,
                display_name,
                remedies::application_ambiguous(display_name, ids),
            ));
            return ClientId::Unknown;
        }
        Ok(AppLookup::Missing) => {
            decision.line(
                "application.requiredPermissions",
                Value::of("complete"),
                Value::Absent,
            );
            decision.line("appCredential.registered", yes(), Value::Absent);
            decision.line("servicePrincipal.exists", yes(), Value::Absent);
            for role in &REQUIRED_ROLES {
                decision.line(&consent_key(role), Value::of("granted"), Value::Absent);
            }
            decision.actions.push(
                Action::new(
                    Resource::Application,
                    display_name,
                    ActionKind::Create,
                    format!("no application named {display_name:?} in Entra ID: register it"),
                )
                .with_steps(vec![Step::CreateApplication]),
            );
            decision.actions.push(
                Action::new(
                    Resource::AppCredential,
                    display_name,
                    ActionKind::Create,
                    format!("the new application needs a {credential_kind}"),
                )
                .with_steps(vec![create_credential]),
            );
            decision.actions.push(
                Action::new(
                    Resource::ServicePrincipal,
                    display_name,
                    ActionKind::Create,
                    "the new application needs a service principal in the tenant",
                )
                .with_steps(vec![Step::CreateServicePrincipal]),
            );
            decision.actions.push(
                Action::new(
                    Resource::Consent,
                    display_name,
                    ActionKind::Create,
                    "grant the new application's app roles with admin consent",
                )
                .with_steps(REQUIRED_ROLES.iter().map(grant_step).collect()),
            );
            return ClientId::New;
        }
        Ok(AppLookup::Found(found)) => found,
    };

    // The application.
    let missing_permissions: Vec<&str> = REQUIRED_ROLES
        .iter()
        .filter(|role| {
            !found
                .required_roles
                .iter()
                .any(|(resource, id)| role.matches(resource, id))
        })
        .map(|role| role.value)
        .collect();
    decision.line(
        "application.requiredPermissions",
        Value::of("complete"),
        if missing_permissions.is_empty() {
            Value::of("complete")
        } else {
            Value::of(format!("missing {}", missing_permissions.join(", ")))
        },
    );
    decision.actions.push(if missing_permissions.is_empty() {
        Action::new(
            Resource::Application,
            display_name,
            ActionKind::NoChange,
            format!("registered with client ID {}", found.app_id),
        )
    } else {
        Action::new(
            Resource::Application,
            display_name,
            ActionKind::Update,
            format!(
                "required permissions lack {}: set them",
                missing_permissions.join(", ")
            ),
        )
        .with_steps(vec![Step::UpdateRequiredPermissions])
    });

    // Its credential.
    let (credential_live, credential_action) =
        decide_generated_credential(display_name, found, &app.credential_file, create_credential);
    decision.line("appCredential.registered", yes(), credential_live);
    decision.actions.push(credential_action);

    // Its service principal.
    let principal_exists = match &app.service_principal {
        Some(Ok(Some(_))) => {
            decision.line("servicePrincipal.exists", yes(), yes());
            decision.actions.push(Action::new(
                Resource::ServicePrincipal,
                display_name,
                ActionKind::NoChange,
                "service principal exists",
            ));
            true
        }
        Some(Err(failure)) => {
            decision.line("servicePrincipal.exists", yes(), unknown(failure));
            decision.actions.push(failed_read(
                Resource::ServicePrincipal,
                display_name,
                failure,
            ));
            for role in &REQUIRED_ROLES {
                decision.line(&consent_key(role), Value::of("granted"), unknown(failure));
            }
            decision.actions.push(Action::new(
                Resource::Consent,
                display_name,
                ActionKind::Unknown,
                "depends on the service principal, whose read failed",
            ));
            return ClientId::Known(found.app_id.clone());
        }
        Some(Ok(None)) | None => {
            decision.line("servicePrincipal.exists", yes(), Value::flag(false));
            decision.actions.push(
                Action::new(
                    Resource::ServicePrincipal,
                    display_name,
                    ActionKind::Create,
                    "no service principal for the application in the tenant: create it",
                )
                .with_steps(vec![Step::CreateServicePrincipal]),
            );
            false
        }
    };

    // Admin consent.
    let granted = match (&app.granted_roles, principal_exists) {
        (Some(Err(failure)), true) => {
            for role in &REQUIRED_ROLES {
                decision.line(&consent_key(role), Value::of("granted"), unknown(failure));
            }
            decision
                .actions
                .push(failed_read(Resource::Consent, display_name, failure));
            return ClientId::Known(found.app_id.clone());
        }
        (Some(Ok(granted)), true) => granted.clone(),
        _ => Vec::new(),
    };
    let mut missing = Vec::new();
    for role in &REQUIRED_ROLES {
        let has = granted
            .iter()
            .any(|g| role.matches(&g.resource_app_id, &g.role_id));
        decision.line(
            &consent_key(role),
            Value::of("granted"),
            Value::of(if has { "granted" } else { "not granted" }),
        );
        if !has {
            missing.push(role);
        }
    }
    decision.actions.push(if missing.is_empty() {
        Action::new(
            Resource::Consent,
            display_name,
            ActionKind::NoChange,
            "every app role is granted with admin consent",
        )
    } else {
        Action::new(
            Resource::Consent,
            display_name,
            if principal_exists {
                ActionKind::Update
            } else {
                ActionKind::Create
            },
            format!(
                "no admin consent for {}: grant it",
                missing
                    .iter()
                    .map(|r| r.value)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .with_steps(missing.into_iter().map(grant_step).collect())
    });

    ClientId::Known(found.app_id.clone())
}

fn consent_key(role: &RequiredRole) -> String {
    format!("consent.{}", role.value)
}

fn grant_step(role: &RequiredRole) -> Step {
    Step::GrantAppRole {
        resource: role.resource.to_owned(),
        resource_app_id: role.resource_app_id.to_owned(),
        role: role.value.to_owned(),
        role_id: role.id.to_owned(),
    }
}

/// Compares the credential file of an automatic registration with the application and
/// returns the live value of `appCredential.registered` and the action.
fn decide_generated_credential(
    display_name: &str,
    app: &ApplicationObject,
    file: &CredentialFile,
    create: Step,
) -> (Value, Action) {
    let update = |live: &str, reason: String, step: Step| {
        (
            Value::of(live),
            Action::new(
                Resource::AppCredential,
                display_name,
                ActionKind::Update,
                reason,
            )
            .with_steps(vec![step]),
        )
    };
    let registered = |thumbprint: &str| {
        app.certificate_thumbprints
            .iter()
            .any(|t| t.eq_ignore_ascii_case(thumbprint))
    };

    match file {
        CredentialFile::Certificate {
            path,
            current,
            staged,
        } => {
            // A staged certificate that is registered finishes an interrupted apply.
            if let Some(KeyFileState::Present { thumbprint, .. }) = staged
                && registered(thumbprint)
                && !matches!(current, KeyFileState::Present { thumbprint: t, .. } if registered(t))
            {
                return update(
                    "staged by an interrupted apply",
                    format!(
                        "an interrupted apply registered certificate {thumbprint} and staged it next to {}: keep it",
                        path.display()
                    ),
                    Step::FinishSecretWrite { file: path.clone() },
                );
            }
            match current {
                KeyFileState::Missing => (
                    Value::of("no key file"),
                    Action::new(
                        Resource::AppCredential,
                        display_name,
                        ActionKind::Create,
                        format!(
                            "no certificate in {}: generate one, write it and register it",
                            path.display()
                        ),
                    )
                    .with_steps(vec![create]),
                ),
                KeyFileState::Invalid(reason) => update(
                    "unusable key file",
                    format!(
                        "{} is not a usable certificate ({reason}): replace it with a new one",
                        path.display()
                    ),
                    create,
                ),
                KeyFileState::KeyTooSmall { bits } => update(
                    "key under 2048 bits",
                    format!(
                        "the key in {} has {bits} bits, Entra ID needs 2048: replace the certificate",
                        path.display()
                    ),
                    create,
                ),
                KeyFileState::Present { expired: true, .. } => update(
                    "expired",
                    format!(
                        "the certificate in {} has expired: replace it",
                        path.display()
                    ),
                    create,
                ),
                KeyFileState::Present { thumbprint, .. } if !registered(thumbprint) => update(
                    "not registered",
                    format!(
                        "certificate {thumbprint} in {} is not registered on the application: register a new one",
                        path.display()
                    ),
                    create,
                ),
                KeyFileState::Present { thumbprint, .. } => (
                    Value::flag(true),
                    Action::new(
                        Resource::AppCredential,
                        display_name,
                        ActionKind::NoChange,
                        format!("certificate {thumbprint} is registered"),
                    ),
                ),
            }
        }
        CredentialFile::ClientSecret {
            path,
            hint,
            staged_hint,
        } => {
            let matches_hint = |hint: &str| {
                app.client_secrets
                    .iter()
                    .any(|s| s.valid && s.hint.as_deref() == Some(hint))
            };
            if let Some(staged) = staged_hint
                && matches_hint(staged)
                && !hint.as_deref().is_ok_and(&matches_hint)
            {
                return update(
                    "staged by an interrupted apply",
                    format!(
                        "an interrupted apply added a client secret and staged it next to {}: keep it",
                        path.display()
                    ),
                    Step::FinishSecretWrite { file: path.clone() },
                );
            }
            match hint {
                Err(reason) => (
                    Value::of("no secret file"),
                    Action::new(
                        Resource::AppCredential,
                        display_name,
                        ActionKind::Create,
                        format!(
                            "no client secret in {} ({reason}): add one and write it",
                            path.display()
                        ),
                    )
                    .with_steps(vec![create]),
                ),
                Ok(hint) if matches_hint(hint) => (
                    Value::flag(true),
                    Action::new(
                        Resource::AppCredential,
                        display_name,
                        ActionKind::NoChange,
                        "the client secret in the file matches a valid secret of the application",
                    ),
                ),
                Ok(_) => update(
                    "not registered",
                    format!(
                        "the client secret in {} matches no valid secret of the application: add a new one",
                        path.display()
                    ),
                    create,
                ),
            }
        }
    }
}

fn decide_manual(
    client_id: &uuid::Uuid,
    credential: &ClientCredential,
    app: &ManualApp,
    decision: &mut Decision,
) {
    let target = client_id.to_string();
    let yes = || Value::flag(true);
    decision.line(
        "application.clientId",
        Value::of(&target),
        Value::of(&target),
    );

    // The credential: the key file must hold the certificate the spec names.
    let credential_action = match (credential, &app.key_file) {
        (
            ClientCredential::Certificate {
                thumbprint,
                key_file,
            },
            Some(state),
        ) => {
            let (live, problem) = match state {
                KeyFileState::Missing => (
                    Value::of("no key file"),
                    Some(remedies::app_key_file_unusable(
                        key_file,
                        "the file does not exist",
                    )),
                ),
                KeyFileState::Invalid(reason) => (
                    Value::of("unusable key file"),
                    Some(remedies::app_key_file_unusable(key_file, reason)),
                ),
                KeyFileState::KeyTooSmall { bits } => (
                    Value::of("key under 2048 bits"),
                    Some(remedies::app_key_too_small(&target, key_file, *bits)),
                ),
                KeyFileState::Present {
                    thumbprint: found, ..
                } if !found.eq_ignore_ascii_case(thumbprint) => (
                    Value::of(format!("certificate {found}")),
                    Some(remedies::app_key_file_unusable(
                        key_file,
                        &format!("it holds certificate {found}, the spec names {thumbprint}"),
                    )),
                ),
                KeyFileState::Present { .. } => {
                    (Value::of(format!("certificate {thumbprint}")), None)
                }
            };
            decision.line(
                "appCredential.keyFile",
                Value::of(format!("certificate {thumbprint}")),
                live,
            );
            match problem {
                Some(diagnosis) => blocked(Resource::AppCredential, &target, diagnosis),
                None => Action::new(
                    Resource::AppCredential,
                    &target,
                    ActionKind::NoChange,
                    format!("key file holds certificate {thumbprint}"),
                ),
            }
        }
        _ => Action::new(
            Resource::AppCredential,
            &target,
            ActionKind::NoChange,
            "client secret is set in the spec",
        ),
    };

    // The application signs in, and its Exchange Online token shows its consent.
    let signs_in = match &app.exchange_token {
        Ok(_) => yes(),
        Err(failure) => unknown(failure),
    };
    decision.line("application.signsIn", yes(), signs_in);
    let application_action = match &app.exchange_token {
        Ok(_) => Action::new(
            Resource::Application,
            &target,
            ActionKind::NoChange,
            "the application signs in with its credential",
        ),
        Err(failure) => failed_read(Resource::Application, &target, failure),
    };
    decision.actions.push(application_action);
    decision.actions.push(credential_action);

    let mut missing = Vec::new();
    let mut failures = Vec::new();
    for role in &REQUIRED_ROLES {
        let token: &Read<TokenClaims> = if role.is_exchange_online() {
            &app.exchange_token
        } else {
            &app.graph_token
        };
        let live = match token {
            Ok(claims) if claims.roles.iter().any(|r| r == role.value) => Value::of("granted"),
            Ok(_) => {
                missing.push(role);
                Value::of("not granted")
            }
            Err(failure) => {
                failures.push(failure);
                unknown(failure)
            }
        };
        decision.line(&consent_key(role), Value::of("granted"), live);
    }
    let consent = if let Some(failure) = failures.first() {
        failed_read(Resource::Consent, &target, failure)
    } else if let Some(first) = missing.first() {
        let mut action = blocked(
            Resource::Consent,
            &target,
            remedies::consent_missing(&target, first.value, first.resource),
        );
        if missing.len() > 1 {
            action.reason = format!(
                "application {target} has no admin consent for {}",
                missing
                    .iter()
                    .map(|r| format!("{} on {}", r.value, r.resource))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        action
    } else {
        Action::new(
            Resource::Consent,
            &target,
            ActionKind::NoChange,
            "the application's tokens carry every app role",
        )
    };
    decision.actions.push(consent);
}

fn decide_exchange_online(
    registration: &AppRegistration,
    cloud: &CloudState,
    client_id: &ClientId,
    decision: &mut Decision,
) -> Action {
    let target = "Exchange Online";
    let mail_access = registration.mail_access;

    let settings = match &cloud.exchange_online {
        None => {
            let (desired_path, reason) = match mail_access {
                MailAccess::Graph => ("graph", "cloud mailboxes use Microsoft Graph"),
                MailAccess::Ews => (
                    "ews",
                    "EWS settings not read (no appRegistration.exchangeOnlineShell); apply checks EWS on a cloud mailbox",
                ),
                MailAccess::Auto => (
                    "auto",
                    "EWS settings not read (no appRegistration.exchangeOnlineShell); apply tries EWS, then Microsoft Graph",
                ),
            };
            decision.line(
                "exchangeOnline.mailPath",
                Value::of(desired_path),
                Value::of(desired_path),
            );
            return Action::new(
                Resource::ExchangeOnlineEws,
                target,
                ActionKind::NoChange,
                reason,
            );
        }
        Some(Err(failure)) => {
            decision.line(
                "exchangeOnline.mailPath",
                Value::of(mail_access_name(mail_access)),
                unknown(failure),
            );
            if mail_access == MailAccess::Graph {
                return Action::new(
                    Resource::ExchangeOnlineEws,
                    target,
                    ActionKind::NoChange,
                    "cloud mailboxes use Microsoft Graph",
                );
            }
            return failed_read(Resource::ExchangeOnlineEws, target, failure);
        }
        Some(Ok(settings)) => settings,
    };

    let allowed = settings.allows(client_id.as_deref());
    let live_path = if allowed { "ews" } else { "graph" };
    match mail_access {
        MailAccess::Graph => {
            decision.line(
                "exchangeOnline.mailPath",
                Value::of("graph"),
                Value::of("graph"),
            );
            Action::new(
                Resource::ExchangeOnlineEws,
                target,
                ActionKind::NoChange,
                "cloud mailboxes use Microsoft Graph",
            )
        }
        MailAccess::Auto => {
            decision.line(
                "exchangeOnline.mailPath",
                Value::of(live_path),
                Value::of(live_path),
            );
            Action::new(
                Resource::ExchangeOnlineEws,
                target,
                ActionKind::NoChange,
                if allowed {
                    "EWS is allowed for the application: cloud mailboxes use EWS"
                } else {
                    "EWS is blocked for the application: cloud mailboxes use Microsoft Graph"
                },
            )
        }
        MailAccess::Ews => {
            decision.line(
                "exchangeOnline.mailPath",
                Value::of("ews"),
                Value::of(if allowed { "ews" } else { "ews blocked" }),
            );
            if allowed {
                Action::new(
                    Resource::ExchangeOnlineEws,
                    target,
                    ActionKind::NoChange,
                    "EWS is allowed for the application",
                )
            } else {
                let id = match client_id {
                    ClientId::Known(id) => id.as_str(),
                    _ => "<client ID of the new application>",
                };
                blocked(
                    Resource::ExchangeOnlineEws,
                    target,
                    remedies::ews_not_allow_listed(id),
                )
            }
        }
    }
}

fn mail_access_name(mail_access: MailAccess) -> &'static str {
    match mail_access {
        MailAccess::Ews => "ews",
        MailAccess::Graph => "graph",
        MailAccess::Auto => "auto",
    }
}
