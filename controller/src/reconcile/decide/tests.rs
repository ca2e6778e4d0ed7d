//! Decisions for observed states built by hand, one case per rule.

use std::path::{Path, PathBuf};

use chrono::Utc;
use siu_specs::DesiredState;
use siu_specs::desired::MailAccess;
use url::Url;

use super::*;
use crate::reconcile::applied::{APPLIED_FORMAT, AppliedConfig, Discovered};
use crate::reconcile::observed::{
    AccountState, AppLookup, AppState, ApplicationObject, AutomaticApp, ClientSecretInfo,
    CloudState, CredentialFile, EwsEndpoint, EwsSettings, GrantedRole, ImpersonationState,
    KeyFileState, ManualApp, PasswordState, PrincipalState, Provider, RoleAssignment, ScopeEntry,
    TokenClaims,
};
use crate::reconcile::permissions::REQUIRED_ROLES;

const APP_ID: &str = "5d3b9f0e-7c21-4a8b-b6d4-2e1f0a9c8b7d";
const THUMBPRINT: &str = "3A1F9C440B7E2D5A61C8930FE24B7D18A65C309E";

/// Loads an example spec with its paths under `/srv/siu`.
fn spec(name: &str) -> DesiredState {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name),
    )
    .expect("the example spec is readable");
    siu_specs::load_str(&text, Path::new("/srv/siu/spec.yaml")).expect("the example is valid")
}

fn on_premises() -> DesiredState {
    spec("onprem.yaml")
}

fn hybrid() -> DesiredState {
    spec("hybrid-automatic.yaml")
}

fn manual() -> DesiredState {
    spec("hybrid-manual-certificate.yaml")
}

fn ews_url() -> Url {
    Url::parse("https://mail.contoso.com/EWS/Exchange.asmx").expect("valid URL")
}

fn ready_account(desired: &DesiredState) -> AccountState {
    AccountState {
        dn: "CN=svc-siu,OU=Service Accounts,DC=contoso,DC=com".into(),
        upn: Some(desired.account.upn.clone()),
        found_by_address: false,
        enabled: true,
        locked_out: false,
        domain_users: Ok(true),
        password: PasswordState::Usable,
    }
}

fn applied(desired: &DesiredState, client_id: Option<&str>) -> AppliedConfig {
    AppliedConfig {
        format: APPLIED_FORMAT,
        applied_at: Utc::now(),
        desired_fingerprint: String::new(),
        desired: desired.clone(),
        discovered: Discovered {
            ews_url: ews_url(),
            client_id: client_id.map(|id| id.parse().expect("a GUID")),
            cloud_mail_path: None,
        },
    }
}

fn registered_app(desired: &DesiredState) -> ApplicationObject {
    let display_name = match &desired
        .app_registration
        .as_ref()
        .expect("a hybrid spec")
        .mode
    {
        siu_specs::desired::AppRegistrationMode::Automatic { display_name, .. } => {
            display_name.clone()
        }
        _ => "manual".into(),
    };
    ApplicationObject {
        id: "11111111-1111-1111-1111-111111111111".into(),
        app_id: APP_ID.into(),
        display_name,
        required_roles: REQUIRED_ROLES
            .iter()
            .map(|r| (r.resource_app_id.to_owned(), r.id.to_owned()))
            .collect(),
        certificate_thumbprints: vec![THUMBPRINT.into()],
        client_secrets: Vec::new(),
    }
}

fn key_file() -> KeyFileState {
    KeyFileState::Present {
        thumbprint: THUMBPRINT.into(),
        expired: false,
    }
}

fn converged_automatic(desired: &DesiredState) -> AutomaticApp {
    AutomaticApp {
        lookup: Ok(AppLookup::Found(registered_app(desired))),
        credential_file: CredentialFile::Certificate {
            path: "/srv/siu/secrets/siu-app.pem".into(),
            current: key_file(),
            staged: None,
        },
        service_principal: Some(Ok(Some(PrincipalState { id: "sp".into() }))),
        granted_roles: Some(Ok(REQUIRED_ROLES
            .iter()
            .map(|r| GrantedRole {
                resource_app_id: r.resource_app_id.to_owned(),
                role_id: r.id.to_owned(),
            })
            .collect())),
    }
}

/// What a converged setup of `desired` looks like.
fn converged(desired: &DesiredState) -> Observed {
    let cloud = desired.app_registration.as_ref().map(|registration| {
        let app = match &registration.mode {
            siu_specs::desired::AppRegistrationMode::Automatic { .. } => {
                AppState::Automatic(converged_automatic(desired))
            }
            siu_specs::desired::AppRegistrationMode::Manual { .. } => {
                let roles = TokenClaims {
                    roles: REQUIRED_ROLES.iter().map(|r| r.value.to_owned()).collect(),
                };
                AppState::Manual(ManualApp {
                    key_file: Some(key_file()),
                    exchange_token: Ok(roles.clone()),
                    graph_token: Ok(roles),
                })
            }
        };
        CloudState {
            app,
            exchange_online: None,
        }
    });
    let client_id = desired.app_registration.as_ref().map(|_| APP_ID);
    Observed {
        account: Ok(Some(ready_account(desired))),
        impersonation: Some(Ok(ImpersonationState {
            assignments: vec![RoleAssignment {
                name: "ApplicationImpersonation-svc-siu".into(),
                scope: desired.account.management_scope.clone(),
                enabled: true,
            }],
        })),
        management_scope: desired.account.management_scope.as_ref().map(|_| Ok(true)),
        ews: Ok(EwsEndpoint {
            url: ews_url(),
            source: "spec",
        }),
        scope: Ok(ScopeState::default()),
        cloud,
        applied: Ok(Some(applied(desired, client_id))),
        applied_corrupt: None,
    }
}

fn automatic_mut(observed: &mut Observed) -> &mut AutomaticApp {
    match &mut observed.cloud.as_mut().expect("hybrid").app {
        AppState::Automatic(app) => app,
        AppState::Manual(_) => panic!("expected an automatic registration"),
    }
}

fn manual_mut(observed: &mut Observed) -> &mut ManualApp {
    match &mut observed.cloud.as_mut().expect("hybrid").app {
        AppState::Manual(app) => app,
        AppState::Automatic(_) => panic!("expected a manual registration"),
    }
}

fn action(decision: &Decision, resource: Resource) -> &Action {
    decision
        .action(resource)
        .unwrap_or_else(|| panic!("the plan should have an action for {resource:?}"))
}

fn timeout(provider: Provider) -> ReadFailure {
    ReadFailure::new(provider, "target", "timed out after 1m")
}

#[test]
fn converged_setups_plan_no_change() {
    for desired in [on_premises(), hybrid(), manual()] {
        let decision = decide(&desired, &converged(&desired));

        for action in &decision.actions {
            assert_eq!(
                action.kind,
                ActionKind::NoChange,
                "{} in {}: {}",
                action.resource.name(),
                desired.name,
                action.reason
            );
        }
        assert_eq!(View::diff(&decision.live, &decision.desired), "");
    }
}

#[test]
fn missing_created_account_is_created_with_its_role() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    observed.account = Ok(None);
    observed.impersonation = None;

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Create);
    assert_eq!(account.steps, [Step::CreateAccount]);
    assert!(
        account
            .reason
            .contains("create it in OU=Service Accounts,DC=contoso,DC=com"),
        "{}",
        account.reason
    );
    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Create);
    assert_eq!(impersonation.steps, [Step::GrantImpersonation]);
}

#[test]
fn missing_existing_account_is_blocked() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    observed.account = Ok(None);
    observed.impersonation = None;

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Blocked);
    assert!(account.steps.is_empty());
    assert!(
        account
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("account.create: true")),
        "{account:?}"
    );
    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Blocked);
    assert_eq!(
        impersonation.reason,
        "not read, because the account is missing"
    );
    assert_eq!(
        impersonation.failure,
        Some(remedies::FailureKind::AccountMissing)
    );
}

#[test]
fn unreadable_account_names_why_role_is_unread() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    observed.account = Err(ReadFailure::new(
        Provider::Directory,
        "ldaps://dc1.contoso.com",
        "failed to read the directory bind password",
    )
    .with_diagnosis(Diagnosis {
        kind: remedies::FailureKind::Configuration,
        message: "failed to read the directory bind password".into(),
        remedy: "put the bind user's password where onPremises.directory.bindPassword points"
            .into(),
    }));
    observed.impersonation = None;

    let decision = decide(&desired, &observed);

    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Blocked);
    assert_eq!(
        impersonation.reason,
        "not read, because the account could not be read: failed to read the directory bind password"
    );
    assert_eq!(
        impersonation.failure,
        Some(remedies::FailureKind::Configuration)
    );
    assert!(
        impersonation
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("onPremises.directory.bindPassword")),
        "{impersonation:?}"
    );
    assert!(
        matches!(
            decision.live.get("impersonation.assigned"),
            Some(Value::Unknown(_))
        ),
        "{:?}",
        decision.live.get("impersonation.assigned")
    );

    observed.account = Err(timeout(Provider::Directory));
    let decision = decide(&desired, &observed);

    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Unknown);
    assert!(
        impersonation.reason.contains("timed out after 1m"),
        "{impersonation:?}"
    );
}

#[test]
fn disabled_created_account_is_enabled() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    if let Ok(Some(account)) = &mut observed.account {
        account.enabled = false;
        account.password = PasswordState::Rejected {
            reason: "account disabled (AD code 533)".into(),
            account_disabled: true,
        };
    }

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Update);
    assert_eq!(account.reason, "account disabled in AD: enable it");
    assert_eq!(account.steps, [Step::EnableAccount]);
}

#[test]
fn disabled_existing_account_is_blocked_with_command() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    if let Ok(Some(account)) = &mut observed.account {
        account.enabled = false;
    }

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Blocked);
    assert!(
        account
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("Enable-ADAccount -Identity 'CN=svc-siu")),
        "{account:?}"
    );
}

#[test]
fn rejected_password_resets_only_created_accounts() {
    for (desired, kind) in [
        (hybrid(), ActionKind::Update),
        (on_premises(), ActionKind::Blocked),
    ] {
        let mut observed = converged(&desired);
        if let Ok(Some(account)) = &mut observed.account {
            account.password = PasswordState::Rejected {
                reason: "invalid credentials (AD code 52e)".into(),
                account_disabled: false,
            };
        }

        let decision = decide(&desired, &observed);

        let account = action(&decision, Resource::Account);
        assert_eq!(account.kind, kind, "{}: {account:?}", desired.name);
        if kind == ActionKind::Update {
            assert_eq!(account.steps, [Step::ResetAccountPassword]);
        }
    }
}

#[test]
fn staged_password_finishes_the_write() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    if let Ok(Some(account)) = &mut observed.account {
        account.password = PasswordState::Staged;
    }

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Update);
    assert_eq!(
        account.steps,
        [Step::FinishSecretWrite {
            file: PathBuf::from("/srv/siu/secrets/svc-siu.password")
        }]
    );
}

#[test]
fn failed_account_read_is_unknown_not_a_change() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    observed.account = Err(timeout(Provider::Directory));
    observed.impersonation = None;

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Unknown);
    assert!(account.steps.is_empty());
    assert_eq!(
        action(&decision, Resource::Impersonation).kind,
        ActionKind::Unknown
    );
    assert_eq!(
        decision.live.get("account.enabled"),
        Some(&Value::Unknown("timed out after 1m".into()))
    );
}

#[test]
fn account_found_by_mail_address_is_blocked() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    if let Ok(Some(account)) = &mut observed.account {
        account.found_by_address = true;
        account.upn = Some("s.siu@contoso.com".into());
    }

    let decision = decide(&desired, &observed);

    let account = action(&decision, Resource::Account);
    assert_eq!(account.kind, ActionKind::Blocked);
    assert!(
        account
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("account.upn to s.siu@contoso.com")),
        "{account:?}"
    );
}

#[test]
fn missing_assignment_is_granted_with_the_scope() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    observed.impersonation = Some(Ok(ImpersonationState {
        assignments: Vec::new(),
    }));

    let decision = decide(&desired, &observed);

    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Create);
    assert_eq!(impersonation.steps, [Step::GrantImpersonation]);
    assert_eq!(
        decision.desired.get("impersonation.scope"),
        Some(&Value::of("SIU mailboxes"))
    );
}

#[test]
fn verify_only_without_assignment_prints_the_command() {
    let desired = manual();
    let mut observed = converged(&desired);
    observed.impersonation = Some(Ok(ImpersonationState {
        assignments: Vec::new(),
    }));

    let decision = decide(&desired, &observed);

    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Blocked);
    assert!(impersonation.steps.is_empty());
    assert_eq!(
        impersonation.failure,
        Some(remedies::FailureKind::ImpersonationNotGranted)
    );
    assert_eq!(
        impersonation.remedy.as_deref(),
        Some(
            "an Exchange administrator runs in the Exchange Management Shell: New-ManagementRoleAssignment -Name 'ApplicationImpersonation-svc-siu' -Role ApplicationImpersonation -User 'svc-siu@contoso.com'"
        )
    );
}

#[test]
fn missing_management_scope_is_blocked() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    observed.impersonation = Some(Ok(ImpersonationState {
        assignments: Vec::new(),
    }));
    observed.management_scope = Some(Ok(false));

    let decision = decide(&desired, &observed);

    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Blocked);
    assert!(impersonation.reason.contains("'SIU mailboxes'"));
    assert_eq!(
        impersonation.failure,
        Some(remedies::FailureKind::ManagementScopeMissing)
    );
}

#[test]
fn missing_scope_blocks_new_account_grant() {
    // The hybrid example creates its account and limits the role to `SIU mailboxes`.
    let desired = hybrid();
    let mut observed = converged(&desired);
    observed.account = Ok(None);
    observed.impersonation = None;
    observed.management_scope = Some(Ok(false));

    let decision = decide(&desired, &observed);

    assert_eq!(
        action(&decision, Resource::Account).kind,
        ActionKind::Create
    );
    let impersonation = action(&decision, Resource::Impersonation);
    assert_eq!(impersonation.kind, ActionKind::Blocked);
    assert!(impersonation.steps.is_empty());
    assert_eq!(
        impersonation.failure,
        Some(remedies::FailureKind::ManagementScopeMissing)
    );
}

#[test]
fn missing_application_creates_everything_without_reads() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    let app = automatic_mut(&mut observed);
    app.lookup = Ok(AppLookup::Missing);
    app.service_principal = None;
    app.granted_roles = None;

    let decision = decide(&desired, &observed);

    assert_eq!(
        action(&decision, Resource::Application).steps,
        [Step::CreateApplication]
    );
    assert_eq!(
        action(&decision, Resource::AppCredential).steps,
        [Step::AddCertificate]
    );
    assert_eq!(
        action(&decision, Resource::ServicePrincipal).steps,
        [Step::CreateServicePrincipal]
    );
    let consent = action(&decision, Resource::Consent);
    assert_eq!(consent.kind, ActionKind::Create);
    assert_eq!(consent.steps.len(), REQUIRED_ROLES.len());
    assert_eq!(
        action(&decision, Resource::Settings).kind,
        ActionKind::Update,
        "the client ID of the new application changes the settings"
    );
}

#[test]
fn refused_provisioner_blocks_with_the_roles_to_grant() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    let failure = ReadFailure::new(
        Provider::Graph,
        "applications",
        "403 Authorization_RequestDenied",
    )
    .with_diagnosis(remedies::application_not_registered(
        "Sent Items Update",
        "1c2d3e4f",
        "403 Authorization_RequestDenied",
    ));
    let app = automatic_mut(&mut observed);
    app.lookup = Err(failure);
    app.service_principal = None;
    app.granted_roles = None;

    let decision = decide(&desired, &observed);

    let application = action(&decision, Resource::Application);
    assert_eq!(application.kind, ActionKind::Blocked);
    assert!(
        application
            .remedy
            .as_deref()
            .is_some_and(|r| r.contains("Application.ReadWrite.All")),
        "{application:?}"
    );
    for resource in [
        Resource::AppCredential,
        Resource::ServicePrincipal,
        Resource::Consent,
    ] {
        assert!(action(&decision, resource).steps.is_empty());
    }
}

#[test]
fn unregistered_certificate_is_replaced() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    automatic_mut(&mut observed).credential_file = CredentialFile::Certificate {
        path: "/srv/siu/secrets/siu-app.pem".into(),
        current: KeyFileState::Present {
            thumbprint: "00".repeat(20),
            expired: false,
        },
        staged: None,
    };

    let decision = decide(&desired, &observed);

    let credential = action(&decision, Resource::AppCredential);
    assert_eq!(credential.kind, ActionKind::Update);
    assert_eq!(credential.steps, [Step::AddCertificate]);
}

#[test]
fn staged_registered_certificate_finishes_the_write() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    automatic_mut(&mut observed).credential_file = CredentialFile::Certificate {
        path: "/srv/siu/secrets/siu-app.pem".into(),
        current: KeyFileState::Missing,
        staged: Some(key_file()),
    };

    let decision = decide(&desired, &observed);

    assert_eq!(
        action(&decision, Resource::AppCredential).steps,
        [Step::FinishSecretWrite {
            file: "/srv/siu/secrets/siu-app.pem".into()
        }]
    );
}

#[test]
fn client_secret_is_matched_by_its_hint() {
    let mut desired = hybrid();
    if let Some(registration) = &mut desired.app_registration
        && let siu_specs::desired::AppRegistrationMode::Automatic { credential, .. } =
            &mut registration.mode
    {
        *credential = siu_specs::desired::GeneratedCredential::ClientSecret {
            secret_file: "/srv/siu/secrets/app.secret".into(),
        };
    }
    let mut observed = converged(&desired);
    let app = automatic_mut(&mut observed);
    if let Ok(AppLookup::Found(found)) = &mut app.lookup {
        found.client_secrets = vec![ClientSecretInfo {
            key_id: "k".into(),
            hint: Some("abc".into()),
            valid: true,
        }];
    }
    for (hint, kind) in [
        (Ok("abc".to_owned()), ActionKind::NoChange),
        (Ok("xyz".to_owned()), ActionKind::Update),
        (Err("no such file".to_owned()), ActionKind::Create),
    ] {
        automatic_mut(&mut observed).credential_file = CredentialFile::ClientSecret {
            path: "/srv/siu/secrets/app.secret".into(),
            hint: hint.clone(),
            staged_hint: None,
        };

        let decision = decide(&desired, &observed);

        assert_eq!(
            action(&decision, Resource::AppCredential).kind,
            kind,
            "hint {hint:?}"
        );
    }
}

#[test]
fn missing_consent_grants_only_the_missing_roles() {
    let desired = hybrid();
    let mut observed = converged(&desired);
    automatic_mut(&mut observed).granted_roles = Some(Ok(vec![GrantedRole {
        resource_app_id: REQUIRED_ROLES[0].resource_app_id.into(),
        role_id: REQUIRED_ROLES[0].id.into(),
    }]));

    let decision = decide(&desired, &observed);

    let consent = action(&decision, Resource::Consent);
    assert_eq!(consent.kind, ActionKind::Update);
    assert_eq!(consent.steps.len(), REQUIRED_ROLES.len() - 1);
    assert!(!consent.reason.contains("full_access_as_app"));
}

#[test]
fn ews_blocked_depends_on_mail_access() {
    let mut desired = hybrid();
    let blocked_settings = EwsSettings::default();
    for (mail_access, kind, path) in [
        (MailAccess::Auto, ActionKind::NoChange, "graph"),
        (MailAccess::Graph, ActionKind::NoChange, "graph"),
        (MailAccess::Ews, ActionKind::Blocked, "ews blocked"),
    ] {
        desired
            .app_registration
            .as_mut()
            .expect("hybrid")
            .mail_access = mail_access;
        let mut observed = converged(&desired);
        observed.cloud.as_mut().expect("hybrid").exchange_online =
            Some(Ok(blocked_settings.clone()));

        let decision = decide(&desired, &observed);

        let ews = action(&decision, Resource::ExchangeOnlineEws);
        assert_eq!(ews.kind, kind, "{mail_access:?}: {ews:?}");
        assert_eq!(
            decision.live.get("exchangeOnline.mailPath"),
            Some(&Value::of(path))
        );
        if kind == ActionKind::Blocked {
            assert!(
                ews.remedy.as_deref().is_some_and(|r| r.contains(&format!(
                    "Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{{Add='{APP_ID}'}}"
                ))),
                "{ews:?}"
            );
        }
    }
}

#[test]
fn manual_app_with_rejected_secret_is_blocked() {
    let desired = manual();
    let mut observed = converged(&desired);
    let failure = ReadFailure::new(Provider::TokenEndpoint, APP_ID, "AADSTS700027").with_diagnosis(
        remedies::app_certificate_not_registered(APP_ID, THUMBPRINT, "AADSTS700027"),
    );
    let app = manual_mut(&mut observed);
    app.exchange_token = Err(failure.clone());
    app.graph_token = Err(failure);

    let decision = decide(&desired, &observed);

    let application = action(&decision, Resource::Application);
    assert_eq!(application.kind, ActionKind::Blocked);
    assert!(application.reason.contains(THUMBPRINT));
    assert_eq!(
        action(&decision, Resource::Consent).kind,
        ActionKind::Blocked
    );
}

#[test]
fn manual_app_without_full_access_is_blocked() {
    let desired = manual();
    let mut observed = converged(&desired);
    manual_mut(&mut observed).exchange_token = Ok(TokenClaims::default());

    let decision = decide(&desired, &observed);

    let consent = action(&decision, Resource::Consent);
    assert_eq!(consent.kind, ActionKind::Blocked);
    assert!(consent.reason.contains("full_access_as_app"), "{consent:?}");
    assert_eq!(
        consent
            .remedy
            .as_deref()
            .map(|r| r.contains("admin consent")),
        Some(true)
    );
}

#[test]
fn manual_key_file_with_other_certificate_is_blocked() {
    let desired = manual();
    let mut observed = converged(&desired);
    manual_mut(&mut observed).key_file = Some(KeyFileState::Present {
        thumbprint: "AB".repeat(20),
        expired: false,
    });

    let decision = decide(&desired, &observed);

    let credential = action(&decision, Resource::AppCredential);
    assert_eq!(credential.kind, ActionKind::Blocked);
    assert!(credential.reason.contains(&"AB".repeat(20)));
}

#[test]
fn settings_follow_the_applied_file() {
    let desired = on_premises();
    let mut observed = converged(&desired);

    observed.applied = Ok(None);
    let decision = decide(&desired, &observed);
    assert_eq!(
        action(&decision, Resource::Settings).kind,
        ActionKind::Create
    );

    let mut older = desired.clone();
    older.options.keep_original = true;
    observed.applied = Ok(Some(applied(&older, None)));
    let decision = decide(&desired, &observed);
    let settings = action(&decision, Resource::Settings);
    assert_eq!(settings.kind, ActionKind::Update);
    assert_eq!(
        settings.reason,
        "changed since the last apply: options.keepOriginal"
    );
    assert_eq!(settings.steps, [Step::RecordSettings]);
}

#[test]
fn corrupt_applied_file_is_recorded_again() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    observed.applied = Ok(None);
    observed.applied_corrupt =
        Some("/state/applied.json is not a siuctl applied configuration (EOF)".into());

    let decision = decide(&desired, &observed);

    let settings = action(&decision, Resource::Settings);
    assert_eq!(settings.kind, ActionKind::Update);
    assert_eq!(
        settings.reason,
        "/state/applied.json is not a siuctl applied configuration (EOF): record the settings again"
    );
    assert_eq!(settings.steps, [Step::RecordSettings]);
}

#[test]
fn settings_ignore_the_spec_location() {
    let desired = on_premises();
    let mut moved = desired.clone();
    moved.spec_path = "/elsewhere/export.yaml".into();
    moved.exchange.management_shell.working_dir = "/elsewhere".into();
    let observed = converged(&desired);

    let decision = decide(&moved, &observed);

    assert_eq!(
        action(&decision, Resource::Settings).kind,
        ActionKind::NoChange
    );
}

#[test]
fn missing_scope_group_blocks_the_settings() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    observed.scope = Ok(ScopeState {
        groups: vec![ScopeEntry {
            reference: "Pilot".into(),
            dn: None,
        }],
        ..ScopeState::default()
    });

    let decision = decide(&desired, &observed);

    let settings = action(&decision, Resource::Settings);
    assert_eq!(settings.kind, ActionKind::Blocked);
    assert_eq!(
        settings.reason,
        "scope.groups entry \"Pilot\" not found in AD"
    );
}

#[test]
fn every_blocked_action_has_a_remedy() {
    let desired = on_premises();
    let mut observed = converged(&desired);
    observed.account = Ok(None);
    observed.impersonation = None;
    observed.applied = Err(timeout(Provider::Files));

    let decision = decide(&desired, &observed);

    for action in &decision.actions {
        if matches!(action.kind, ActionKind::Blocked | ActionKind::Unknown) {
            assert!(action.remedy.is_some(), "{action:?}");
        }
    }
    assert_eq!(
        decision
            .actions
            .iter()
            .filter(|a| a.kind == ActionKind::Unknown)
            .count(),
        1
    );
}
