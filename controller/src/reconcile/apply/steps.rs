//! Carries out each kind of step against the providers.
//!
//! The [`Executor`] keeps what earlier steps created (the application's IDs, its service
//! principal) for the later ones, starting from what `plan` observed. Every failure is
//! turned into the catalogue's diagnosis for its kind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use siu_specs::desired::{AccountProvisioning, AppRegistrationMode, GeneratedCredential};
use tracing::{info, warn};
use uuid::Uuid;

use super::schedule::{StepOutcome, StepRunner};
use crate::providers::directory::{
    self, DirectoryClient, NewUser, Password, derive_sam_account_name, generate_password,
};
use crate::providers::entra::applications::{NewApplication, required_permissions};
use crate::providers::entra::{GraphClient, GraphError, TokenError, generate_certificate};
use crate::reconcile::classify;
use crate::reconcile::context::{ConnectError, Context};
use crate::reconcile::observed::{AppLookup, AppState, Observed};
use crate::reconcile::plan::{Resource, Step};
use crate::reconcile::remedies::{self, Diagnosis};
use crate::reconcile::secrets;

/// How long a generated certificate or client secret stays valid.
// NOTE: siuctl does not renew credentials before they expire yet; the plan replaces an
// expired certificate, so a reconcile after the end date repairs it.
const CREDENTIAL_VALIDITY: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);

/// The IDs of the application that the steps work on.
#[derive(Debug, Clone)]
struct AppIds {
    object_id: String,
    app_id: String,
}

/// Carries out steps for one apply.
pub struct Executor<'a> {
    ctx: &'a Context,
    directory: Option<Arc<DirectoryClient>>,
    graph: Option<Arc<GraphClient>>,
    app: Option<AppIds>,
    principal_id: Option<String>,
    resource_principals: HashMap<String, String>,
    account_dn: Option<String>,
}

impl<'a> Executor<'a> {
    /// Creates an executor that starts from what `observed` found.
    pub fn new(ctx: &'a Context, observed: &Observed) -> Self {
        let mut executor = Self {
            ctx,
            directory: None,
            graph: None,
            app: None,
            principal_id: None,
            resource_principals: HashMap::new(),
            account_dn: observed
                .account
                .as_ref()
                .ok()
                .and_then(Option::as_ref)
                .map(|account| account.dn.clone()),
        };
        if let Some(cloud) = &observed.cloud
            && let AppState::Automatic(app) = &cloud.app
        {
            if let Ok(AppLookup::Found(found)) = &app.lookup {
                executor.app = Some(AppIds {
                    object_id: found.id.clone(),
                    app_id: found.app_id.clone(),
                });
            }
            if let Some(Ok(Some(principal))) = &app.service_principal {
                executor.principal_id = Some(principal.id.clone());
            }
        }
        executor
    }

    /// Returns the client ID of the application, known before or created by the steps.
    pub fn client_id(&self) -> Option<&str> {
        self.app.as_ref().map(|app| app.app_id.as_str())
    }

    /// Closes the directory connection.
    pub async fn finish(self) {
        if let Some(client) = self.directory
            && let Ok(client) = Arc::try_unwrap(client)
            && let Err(error) = client.unbind().await
        {
            tracing::debug!(%error, "unbinding from the directory failed");
        }
    }

    async fn directory(&mut self) -> Result<Arc<DirectoryClient>, Diagnosis> {
        if let Some(client) = &self.directory {
            return Ok(client.clone());
        }
        let client = self
            .ctx
            .connect_directory()
            .await
            .map_err(|error| match &error {
                ConnectError::Directory(inner) => {
                    classify::account_write(self.ctx, &self.container(), inner)
                }
                ConnectError::Secret(_) => classify::directory_connect(self.ctx, &error)
                    .unwrap_or_else(|| {
                        Diagnosis::other(error.to_string(), "fix the bind password")
                    }),
            })?;
        let client = Arc::new(client);
        self.directory = Some(client.clone());
        Ok(client)
    }

    fn graph(&mut self) -> Result<Arc<GraphClient>, Diagnosis> {
        if let Some(graph) = &self.graph {
            return Ok(graph.clone());
        }
        let graph = self
            .ctx
            .provisioner_credential()
            .and_then(|credential| self.ctx.graph(credential))
            .map_err(|error| {
                classify::credential(&error).unwrap_or_else(|| {
                    Diagnosis::other(error.to_string(), "fix the provisioner in the spec")
                })
            })?;
        let graph = Arc::new(graph);
        self.graph = Some(graph.clone());
        Ok(graph)
    }

    fn container(&self) -> String {
        match &self.ctx.desired.account.provisioning {
            AccountProvisioning::Create { container, .. } => container.clone(),
            AccountProvisioning::Existing { .. } => self.ctx.desired.directory.base_dn.clone(),
        }
    }

    fn password_file(&self) -> Result<std::path::PathBuf, Diagnosis> {
        match &self.ctx.desired.account.provisioning {
            AccountProvisioning::Create { password_file, .. } => Ok(password_file.clone()),
            AccountProvisioning::Existing { .. } => Err(Diagnosis::other(
                "the account's password belongs to its administrator (account.create: false)",
                "set account.create: true to let siuctl manage the account",
            )),
        }
    }

    fn display_name(&self) -> String {
        match self.ctx.desired.app_registration.as_ref().map(|r| &r.mode) {
            Some(AppRegistrationMode::Automatic { display_name, .. }) => display_name.clone(),
            _ => format!("siuctl {}", self.ctx.desired.name),
        }
    }

    fn app_ids(&self) -> Result<AppIds, Diagnosis> {
        self.app.clone().ok_or_else(|| {
            Diagnosis::other(
                "the application's IDs are unknown",
                "run plan again, then apply",
            )
        })
    }

    async fn account_dn(&mut self) -> Result<String, Diagnosis> {
        if let Some(dn) = &self.account_dn {
            return Ok(dn.clone());
        }
        let upn = self.ctx.desired.account.upn.clone();
        let client = self.directory().await?;
        let user = client
            .find_user_by_upn(&upn)
            .await
            .map_err(|error| classify::account_write(self.ctx, &self.container(), &error))?
            .ok_or_else(|| remedies::account_missing(&upn))?;
        self.account_dn = Some(user.dn.clone());
        Ok(user.dn)
    }

    // The account.

    async fn create_account(&mut self) -> Result<String, Diagnosis> {
        let upn = self.ctx.desired.account.upn.clone();
        let container = self.container();
        let password_file = self.password_file()?;
        let client = self.directory().await?;
        let mut new_user = NewUser::new(&upn, &container);
        new_user.display_name = Some(format!("Sent Items Update ({})", self.ctx.desired.name));
        new_user.description =
            Some("Service account of the Sent Items Update service, managed by siuctl".to_owned());

        // The directory generates the password while it creates the account, so the file
        // can only be written afterwards. A crash in between leaves an account without a
        // password file, which the next plan repairs with a new password.
        let created = client
            .create_user(&new_user)
            .await
            .map_err(|error| classify::account_write(self.ctx, &container, &error))?;
        self.account_dn = Some(created.dn.clone());
        secrets::write(
            &password_file,
            format!("{}\n", created.password.expose()).as_bytes(),
        )
        .map_err(|error| {
            Diagnosis::other(
                format!(
                    "account {upn} created, but its password file {} not written: {error}",
                    password_file.display()
                ),
                "fix the directory's permissions and run apply again, which sets a new password",
            )
        })?;
        Ok(format!("created {}", created.dn))
    }

    async fn enable_account(&mut self) -> Result<String, Diagnosis> {
        let dn = self.account_dn().await?;
        let client = self.directory().await?;
        client
            .enable_account(&dn)
            .await
            .map_err(|error| classify::account_write(self.ctx, &self.container(), &error))?;
        Ok(format!("enabled {dn}"))
    }

    async fn add_to_domain_users(&mut self) -> Result<String, Diagnosis> {
        let dn = self.account_dn().await?;
        let client = self.directory().await?;
        // NOTE: the group is found by its English sAMAccountName. A domain created in
        // another language names it differently, and then the step fails with this message.
        let group = client
            .find_group(&directory::GroupRef::SamAccountName(
                "Domain Users".to_owned(),
            ))
            .await
            .map_err(|error| classify::account_write(self.ctx, &self.container(), &error))?
            .ok_or_else(|| {
                Diagnosis::other(
                    "no group named Domain Users in the directory",
                    "add the account to the domain's users group by hand",
                )
            })?;
        client
            .add_group_member(&group.dn, &dn)
            .await
            .map_err(|error| classify::account_write(self.ctx, &self.container(), &error))?;
        Ok(format!("added {dn} to {}", group.dn))
    }

    async fn reset_account_password(&mut self) -> Result<String, Diagnosis> {
        let password_file = self.password_file()?;
        let dn = self.account_dn().await?;
        let upn = self.ctx.desired.account.upn.clone();
        let client = self.directory().await?;
        let sam = derive_sam_account_name(&upn).unwrap_or_default();
        let password: Password = generate_password(&[sam.as_str()]);

        // Staged first: once the directory has the new password, the file must have it
        // too, or a crash would leave a password that no file contains.
        secrets::stage(
            &password_file,
            format!("{}\n", password.expose()).as_bytes(),
        )
        .map_err(|error| file_failure(&password_file, &error))?;
        if let Err(error) = client.set_password(&dn, &password).await {
            if let Err(discard) = secrets::discard(&password_file) {
                warn!(file = %password_file.display(), error = %discard, "removing the staged password failed");
            }
            return Err(classify::account_write(self.ctx, &self.container(), &error));
        }
        secrets::commit(&password_file).map_err(|error| file_failure(&password_file, &error))?;
        Ok(format!(
            "set a new password and wrote it to {}",
            password_file.display()
        ))
    }

    // The role.

    async fn grant_impersonation(&mut self) -> Result<String, Diagnosis> {
        let upn = &self.ctx.desired.account.upn;
        let scope = self.ctx.desired.account.management_scope.as_deref();
        let name = remedies::impersonation_assignment_name(upn, scope);
        let assignment = self
            .ctx
            .management_shell()
            .grant_impersonation(&name, upn, scope)
            .await
            .map_err(|error| remedies::impersonation_not_granted(upn, scope, &error.to_string()))?;
        Ok(format!("assigned {}", assignment.name))
    }

    // The application.

    async fn create_application(&mut self) -> Result<String, Diagnosis> {
        let display_name = self.display_name();
        let graph = self.graph()?;
        let created = graph
            .create_application(&NewApplication::sent_items_update(&display_name))
            .await
            .map_err(|error| self.graph_failure(&error))?;
        let detail = format!("registered with client ID {}", created.app_id);
        self.app = Some(AppIds {
            object_id: created.id,
            app_id: created.app_id,
        });
        Ok(detail)
    }

    async fn update_required_permissions(&mut self) -> Result<String, Diagnosis> {
        let app = self.app_ids()?;
        let graph = self.graph()?;
        graph
            .update_required_resource_access(&app.object_id, &required_permissions())
            .await
            .map_err(|error| self.graph_failure(&error))?;
        Ok("set the required permissions".to_owned())
    }

    async fn add_certificate(&mut self) -> Result<String, Diagnosis> {
        let Some(GeneratedCredential::Certificate { key_file }) = self.generated_credential()
        else {
            return Err(Diagnosis::other(
                "the spec's credential is not a generated certificate",
                "run plan again, then apply",
            ));
        };
        let app = self.app_ids()?;
        let graph = self.graph()?;
        let display_name = self.display_name();
        let generated = generate_certificate(&display_name, CREDENTIAL_VALIDITY)
            .map_err(|error| Diagnosis::other(error.to_string(), "run apply again"))?;

        // Staged first: once the application accepts the certificate, the key file must
        // hold it, or a crash would leave a registered certificate without its key.
        secrets::stage(&key_file, generated.pem.expose().as_bytes())
            .map_err(|error| file_failure(&key_file, &error))?;
        if let Err(error) = graph
            .add_certificate(
                &app.object_id,
                &generated.key,
                &format!("siuctl {}", self.ctx.desired.name),
            )
            .await
        {
            if let Err(discard) = secrets::discard(&key_file) {
                warn!(file = %key_file.display(), error = %discard, "removing the staged certificate failed");
            }
            return Err(self.graph_failure(&error));
        }
        secrets::commit(&key_file).map_err(|error| file_failure(&key_file, &error))?;
        Ok(format!(
            "registered certificate {} and wrote it to {}",
            generated.key.thumbprint(),
            key_file.display()
        ))
    }

    async fn add_client_secret(&mut self) -> Result<String, Diagnosis> {
        let Some(GeneratedCredential::ClientSecret { secret_file }) = self.generated_credential()
        else {
            return Err(Diagnosis::other(
                "the spec's credential is not a generated client secret",
                "run plan again, then apply",
            ));
        };
        let app = self.app_ids()?;
        let graph = self.graph()?;
        let end = chrono::Utc::now()
            + chrono::Duration::from_std(CREDENTIAL_VALIDITY)
                .unwrap_or(chrono::Duration::days(730));
        // Graph generates the secret, so the file can only be written afterwards.
        // TODO-correctness: a crash between the two leaves an unused client secret on the
        // application until it expires; the next apply adds another one.
        let added = graph
            .add_password(
                &app.object_id,
                &format!("siuctl {}", self.ctx.desired.name),
                Some(end),
            )
            .await
            .map_err(|error| self.graph_failure(&error))?;
        secrets::write(
            &secret_file,
            format!("{}\n", added.secret_text.expose()).as_bytes(),
        )
        .map_err(|error| file_failure(&secret_file, &error))?;
        Ok(format!(
            "added client secret {} and wrote it to {}",
            added.key_id,
            secret_file.display()
        ))
    }

    fn generated_credential(&self) -> Option<GeneratedCredential> {
        match self.ctx.desired.app_registration.as_ref().map(|r| &r.mode) {
            Some(AppRegistrationMode::Automatic { credential, .. }) => Some(credential.clone()),
            _ => None,
        }
    }

    async fn create_service_principal(&mut self) -> Result<String, Diagnosis> {
        let app = self.app_ids()?;
        let graph = self.graph()?;
        let principal = graph
            .create_service_principal(&app.app_id)
            .await
            .map_err(|error| self.graph_failure(&error))?;
        let detail = format!("created service principal {}", principal.id);
        self.principal_id = Some(principal.id);
        Ok(detail)
    }

    async fn grant_app_role(
        &mut self,
        resource: &str,
        resource_app_id: &str,
        role: &str,
        role_id: &str,
    ) -> Result<String, Diagnosis> {
        let graph = self.graph()?;
        let principal_id = self.principal_id.clone().ok_or_else(|| {
            Diagnosis::other(
                "the application's service principal is unknown",
                "run plan again, then apply",
            )
        })?;
        let role_id: Uuid = role_id.parse().map_err(|_| {
            Diagnosis::other(format!("invalid app role ID {role_id}"), "run plan again")
        })?;
        let resource_principal = match self.resource_principals.get(resource_app_id) {
            Some(id) => id.clone(),
            None => {
                let found = graph
                    .find_service_principal_by_app_id(resource_app_id)
                    .await
                    .map_err(|error| self.graph_failure(&error))?
                    .ok_or_else(|| {
                        Diagnosis::other(
                            format!("{resource} ({resource_app_id}) has no service principal in the tenant"),
                            "check that the tenant has Microsoft 365 with Exchange Online",
                        )
                    })?;
                self.resource_principals
                    .insert(resource_app_id.to_owned(), found.id.clone());
                found.id
            }
        };
        graph
            .create_app_role_assignment(&principal_id, &resource_principal, role_id)
            .await
            .map_err(|error| self.graph_failure(&error))?;
        Ok(format!("granted {role} on {resource}"))
    }

    fn graph_failure(&self, error: &GraphError) -> Diagnosis {
        if let Some(diagnosis) = classify::provisioner_graph(self.ctx, error) {
            return diagnosis;
        }
        match error {
            GraphError::ReplicationTimeout { target, waited, .. } => {
                remedies::not_replicated(&target.to_string(), *waited, &error.to_string())
            }
            // Graph's error for a service principal of an application it does not see yet.
            GraphError::Api {
                target, failure, ..
            } if failure.status == 400
                && failure
                    .message
                    .contains("does not reference a valid application object") =>
            {
                remedies::not_replicated(
                    &target.to_string(),
                    self.ctx.options.replication.timeout,
                    &error.to_string(),
                )
            }
            GraphError::Token { source, .. } if TokenError::find(source).is_none() => {
                Diagnosis::other(
                    error.to_string(),
                    "check the authority host and the network",
                )
            }
            _ => Diagnosis::other(
                error.to_string(),
                "run apply again; what succeeded stays applied",
            ),
        }
    }
}

fn file_failure(path: &std::path::Path, error: &std::io::Error) -> Diagnosis {
    Diagnosis::other(
        format!("failed to write {}: {error}", path.display()),
        "check the directory's permissions and free space, then run apply again",
    )
}

#[async_trait::async_trait]
impl StepRunner for Executor<'_> {
    async fn run(&mut self, resource: Resource, step: &Step) -> StepOutcome {
        let result = match step {
            Step::CreateAccount => self.create_account().await,
            Step::EnableAccount => self.enable_account().await,
            Step::AddToDomainUsers => self.add_to_domain_users().await,
            Step::ResetAccountPassword => self.reset_account_password().await,
            Step::FinishSecretWrite { file } => secrets::commit(file)
                .map(|()| format!("kept the staged secret as {}", file.display()))
                .map_err(|error| file_failure(file, &error)),
            Step::GrantImpersonation => self.grant_impersonation().await,
            Step::CreateApplication => self.create_application().await,
            Step::UpdateRequiredPermissions => self.update_required_permissions().await,
            Step::AddCertificate => self.add_certificate().await,
            Step::AddClientSecret => self.add_client_secret().await,
            Step::CreateServicePrincipal => self.create_service_principal().await,
            Step::GrantAppRole {
                resource: name,
                resource_app_id,
                role,
                role_id,
            } => {
                self.grant_app_role(name, resource_app_id, role, role_id)
                    .await
            }
            // The settings are written once the checks have run, because they include
            // what the checks find (the path to cloud mailboxes).
            Step::RecordSettings => Ok("recorded after the checks".to_owned()),
        };
        match result {
            Ok(detail) => {
                info!(resource = resource.name(), step = %step.describe(), %detail, "step done");
                StepOutcome::Done { detail }
            }
            Err(diagnosis) => {
                warn!(
                    resource = resource.name(),
                    step = %step.describe(),
                    kind = ?diagnosis.kind,
                    error = %diagnosis.message,
                    "step failed"
                );
                StepOutcome::Failed(diagnosis)
            }
        }
    }
}
