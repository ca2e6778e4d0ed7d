//! Writes the live configuration as a spec.
//!
//! The export keeps the spec's connection settings and secret references, which live
//! state cannot show. It takes the rest from what is live: the account's UPN as the
//! directory spells it, the management scope of its role assignment, the application's
//! display name, and the scope and options of the configuration last applied. Every path
//! is absolute, so the export can be saved anywhere; `plan` on it shows no change when the
//! live state matches the original spec.

use siu_specs::DesiredState;
use siu_specs::desired::{
    AccountProvisioning, AppRegistrationMode, ClientCredential, DirectoryTransport,
    ExchangeConnection, GeneratedCredential, ScopeMode, ShellCommand,
};
use siu_specs::spec::{
    AccountSpec, ApiVersion, AppRegistrationSpec, CertificateSpec, ConnectionMode, CredentialSpec,
    DirectorySpec, EndpointsSpec, ExchangeSpec, Kind, MetadataSpec, OnPremisesSpec, OptionsSpec,
    ProvisionerSpec, ReconcileSpec, RegistrationMode, ScopeSpec, ShellSpec, Spec, UpdateLoopSpec,
};
use siu_specs::{SecretRef, SecretSpec};

use super::observed::{AppLookup, AppState, Observed};
use super::settings::group_name;

/// The exported spec and what it could not take from live state.
#[derive(Debug, Clone)]
pub struct Export {
    /// The spec.
    pub spec: Spec,
    /// Values taken from the original spec because their live read failed.
    pub fallbacks: Vec<String>,
}

/// Builds the spec of the live configuration, starting from `desired`.
pub fn export(desired: &DesiredState, observed: &Observed) -> Export {
    let mut fallbacks = Vec::new();

    // The scope and options come from what was applied, since that is what runs.
    let applied = match &observed.applied {
        Ok(Some(config)) => &config.desired,
        Ok(None) => {
            fallbacks.push("scope and options: nothing applied yet".to_owned());
            desired
        }
        Err(failure) => {
            fallbacks.push(format!("scope and options: {failure}"));
            desired
        }
    };

    let upn = match &observed.account {
        Ok(Some(account)) => account
            .upn
            .clone()
            .unwrap_or_else(|| desired.account.upn.clone()),
        Ok(None) => {
            fallbacks.push(format!(
                "account.upn: no account {} in AD",
                desired.account.upn
            ));
            desired.account.upn.clone()
        }
        Err(failure) => {
            fallbacks.push(format!("account.upn: {failure}"));
            desired.account.upn.clone()
        }
    };
    let management_scope = match &observed.impersonation {
        Some(Ok(state)) => {
            let enabled: Vec<_> = state.assignments.iter().filter(|a| a.enabled).collect();
            match enabled.as_slice() {
                [only] => only.scope.clone(),
                _ => desired.account.management_scope.clone(),
            }
        }
        _ => {
            fallbacks.push("account.managementScope: role assignments not read".to_owned());
            desired.account.management_scope.clone()
        }
    };

    let (create, password, container) = match &desired.account.provisioning {
        AccountProvisioning::Existing { password } => (false, password.clone(), None),
        AccountProvisioning::Create {
            password_file,
            container,
        } => (
            true,
            SecretRef::FromFile(password_file.clone()),
            Some(container.clone()),
        ),
    };

    let spec = Spec {
        api_version: ApiVersion::V1,
        kind: Kind::SentItemsUpdate,
        metadata: MetadataSpec {
            name: desired.name.clone(),
        },
        environment: desired.environment,
        on_premises: OnPremisesSpec {
            exchange: exchange(desired),
            directory: directory(desired),
        },
        account: AccountSpec {
            upn,
            create: Some(create),
            password: SecretSpec::Reference(password),
            container,
            impersonation: Some(desired.account.impersonation),
            management_scope,
        },
        app_registration: app_registration(desired, observed, &mut fallbacks),
        scope: Some(ScopeSpec {
            mode: Some(applied.scope.mode),
            users: if applied.scope.mode == ScopeMode::All {
                Vec::new()
            } else {
                applied.scope.users.clone()
            },
            groups: applied.scope.groups.iter().map(group_name).collect(),
        }),
        options: Some(OptionsSpec {
            enabled: Some(applied.options.enabled),
            keep_original: Some(applied.options.keep_original),
            update_all_split_copies: Some(applied.options.update_all_split_copies),
            send_as_mailbox: Some(applied.options.send_as_mailbox),
            delay: Some(duration(applied.options.delay)),
            original_wait_timeout: Some(duration(applied.options.original_wait_timeout)),
        }),
        reconcile: Some(ReconcileSpec {
            interval: Some(duration(applied.reconcile_interval)),
        }),
        update_loop: UpdateLoopSpec {
            spool_dir: applied.update_loop.spool_dir.clone(),
            state_dir: applied.update_loop.state_dir.clone(),
            concurrency: Some(i64::from(applied.update_loop.concurrency)),
            per_mailbox_concurrency: Some(i64::from(applied.update_loop.per_mailbox_concurrency)),
        },
    };
    Export { spec, fallbacks }
}

fn exchange(desired: &DesiredState) -> ExchangeSpec {
    let exchange = &desired.exchange;
    let (connection, server, ews_url, autodiscover_address) = match &exchange.connection {
        ExchangeConnection::Autodiscover { address } => (
            ConnectionMode::Autodiscover,
            None,
            None,
            Some(address.clone()),
        ),
        ExchangeConnection::Manual { server, ews_url } => (
            ConnectionMode::Manual,
            Some(server.to_string()),
            Some(ews_url.clone()),
            None,
        ),
    };
    ExchangeSpec {
        connection,
        server,
        allow_insecure_http: ews_url
            .as_ref()
            .is_some_and(|url| url.scheme() == "http")
            .then_some(true),
        ews_url: ews_url.map(|url| url.to_string()),
        autodiscover_address,
        auth: Some(exchange.auth),
        ca_file: exchange.ca_file.clone(),
        management_shell: shell(&exchange.management_shell),
    }
}

fn directory(desired: &DesiredState) -> DirectorySpec {
    let directory = &desired.directory;
    DirectorySpec {
        url: directory.url.to_string(),
        start_tls: (directory.transport == DirectoryTransport::StartTls).then_some(true),
        allow_plaintext: (directory.transport == DirectoryTransport::Plaintext).then_some(true),
        base_dn: directory.base_dn.clone(),
        bind_user: directory.bind_user.to_string(),
        bind_password: SecretSpec::Reference(directory.bind_password.clone()),
        ca_file: directory.ca_file.clone(),
    }
}

fn app_registration(
    desired: &DesiredState,
    observed: &Observed,
    fallbacks: &mut Vec<String>,
) -> Option<AppRegistrationSpec> {
    let registration = desired.app_registration.as_ref()?;
    let (mode, display_name, client_id, credential, provisioner) = match &registration.mode {
        AppRegistrationMode::Automatic {
            display_name,
            credential,
            provisioner,
        } => {
            let live_name = observed.cloud.as_ref().and_then(|cloud| match &cloud.app {
                AppState::Automatic(app) => match &app.lookup {
                    Ok(AppLookup::Found(found)) => Some(found.display_name.clone()),
                    _ => None,
                },
                AppState::Manual(_) => None,
            });
            if live_name.is_none() {
                fallbacks.push(format!(
                    "appRegistration.displayName: no single application named {display_name:?} was read"
                ));
            }
            let credential = match credential {
                GeneratedCredential::Certificate { key_file } => CredentialSpec {
                    certificate: Some(CertificateSpec {
                        thumbprint: None,
                        key_file: key_file.clone(),
                    }),
                    client_secret: None,
                },
                GeneratedCredential::ClientSecret { secret_file } => CredentialSpec {
                    certificate: None,
                    client_secret: Some(SecretSpec::Reference(SecretRef::FromFile(
                        secret_file.clone(),
                    ))),
                },
            };
            (
                RegistrationMode::Automatic,
                Some(live_name.unwrap_or_else(|| display_name.clone())),
                None,
                credential,
                Some(ProvisionerSpec {
                    client_id: provisioner.client_id.to_string(),
                    credential: client_credential(&provisioner.credential),
                }),
            )
        }
        AppRegistrationMode::Manual {
            client_id,
            credential,
        } => (
            RegistrationMode::Manual,
            None,
            Some(client_id.to_string()),
            client_credential(credential),
            None,
        ),
    };
    Some(AppRegistrationSpec {
        mode,
        tenant_id: registration.tenant_id.to_string(),
        display_name,
        client_id,
        credential,
        provisioner,
        mail_access: Some(registration.mail_access),
        exchange_online_shell: registration.exchange_online_shell.as_ref().map(shell),
        endpoints: Some(EndpointsSpec {
            authority_host: Some(registration.endpoints.authority_host.to_string()),
            graph: Some(registration.endpoints.graph.to_string()),
            exchange_online_ews: Some(registration.endpoints.exchange_online_ews.to_string()),
            ca_file: registration.endpoints.ca_file.clone(),
        }),
    })
}

fn client_credential(credential: &ClientCredential) -> CredentialSpec {
    match credential {
        ClientCredential::Certificate {
            thumbprint,
            key_file,
        } => CredentialSpec {
            certificate: Some(CertificateSpec {
                thumbprint: Some(thumbprint.clone()),
                key_file: key_file.clone(),
            }),
            client_secret: None,
        },
        ClientCredential::ClientSecret(reference) => CredentialSpec {
            certificate: None,
            client_secret: Some(SecretSpec::Reference(reference.clone())),
        },
    }
}

// NOTE: a command runs in the directory of the spec file, so relative paths among its
// arguments resolve against wherever the export is saved. The program path is absolute.
fn shell(command: &ShellCommand) -> ShellSpec {
    let mut parts = vec![command.program.display().to_string()];
    parts.extend(command.args.iter().cloned());
    ShellSpec {
        command: parts,
        timeout: Some(duration(command.timeout)),
    }
}

fn duration(duration: std::time::Duration) -> String {
    humantime::format_duration(duration).to_string()
}
