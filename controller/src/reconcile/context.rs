//! The reconcile context: the desired state and everything needed to reach the systems it
//! describes.
//!
//! A [`Context`] turns the spec's connection settings into provider clients: the LDAP
//! connection settings, the HTTP settings for Exchange and for Microsoft 365 (with the
//! command line's `--resolve` overrides), the management shells, and the Entra
//! credentials. Secrets are resolved when a client is built and never kept here.

use std::sync::Arc;
use std::time::Duration;

use siu_specs::desired::{
    AppRegistration, AppRegistrationMode, BindUser, ClientCredential, DirectoryTransport,
    ExchangeAuth, GeneratedCredential,
};
use siu_specs::{DesiredState, Secret, SecretRef};

use crate::http::{CaMode, HttpSettings, ResolveOverride};
use crate::providers::directory::{
    BindIdentity, ConnectionSettings, DirectoryClient, DirectoryError, Password,
};
use crate::providers::entra::{
    AppCredential, AppCredentialConfig, CertificateKey, ClientSecretOrCertificate, GraphClient,
    GraphClientOptions, ReplicationCallback, ReplicationPolicy, TokenRetry,
};
use crate::providers::exchange::ews::{self, EwsAuth};
use crate::providers::exchange::management::{self, ManagementShell};

/// The token scope of Microsoft Graph, by Graph's application ID.
///
/// The application ID is the same in every cloud, while the Graph endpoint is not (the lab
/// serves Graph on a loopback address), so the scope does not follow the endpoint.
// NOTE: Entra ID accepts `<application ID>/.default` for the client credentials flow, as
// Microsoft's MSAL samples use it; this has run against the lab only.
pub const GRAPH_SCOPE: &str = "00000003-0000-0000-c000-000000000000/.default";

/// The settings of a reconcile that the spec leaves out, from the command line.
#[derive(Clone)]
pub struct Options {
    /// Host names that connect to a fixed address (`--resolve HOST:ADDR`).
    pub resolve: Vec<ResolveOverride>,
    /// Turns off TLS certificate checks for every connection; for throw-away test servers.
    pub insecure_skip_tls_verify: bool,
    /// The maximum time one read of live state may take before it counts as failed.
    pub read_timeout: Duration,
    /// How long apply waits for new objects and role assignments to replicate.
    pub replication: ReplicationPolicy,
    /// Called for every wait for replication, so that the command can show it.
    pub on_replication_wait: Option<ReplicationCallback>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            resolve: Vec::new(),
            insecure_skip_tls_verify: false,
            // The slowest reads are paged LDAP searches of large groups and management
            // shell commands that open a remote session. Both finish well within a minute
            // on a healthy network, and the shell has its own timeout from the spec.
            read_timeout: Duration::from_secs(60),
            replication: ReplicationPolicy::default(),
            on_replication_wait: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("resolve", &self.resolve)
            .field("insecure_skip_tls_verify", &self.insecure_skip_tls_verify)
            .field("read_timeout", &self.read_timeout)
            .field("replication", &self.replication)
            .finish_non_exhaustive()
    }
}

/// The desired state with the options of one command.
#[derive(Debug, Clone)]
pub struct Context {
    /// The spec.
    pub desired: DesiredState,
    /// The command's options.
    pub options: Options,
}

/// A failure to build a client from the spec.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A secret reference could not be resolved.
    #[error("failed to read {what} from {reference}: {source}")]
    Secret {
        /// The secret's purpose, such as `the directory bind password`.
        what: &'static str,
        /// The reference.
        reference: String,
        /// Why.
        #[source]
        source: siu_specs::Error,
    },
    /// A certificate key file could not be used.
    #[error(transparent)]
    Certificate(#[from] crate::providers::entra::CertificateError),
    /// A credential could not be built.
    #[error(transparent)]
    Credential(#[from] crate::providers::entra::CredentialError),
    /// The Graph client could not be built.
    #[error(transparent)]
    Graph(#[from] crate::providers::entra::GraphError),
    /// An HTTP client could not be built.
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    /// The spec has no application registration.
    #[error("the spec's environment is onPremises, so it has no appRegistration")]
    NotHybrid,
    /// The spec's application is registered by hand, so there is no provisioner.
    #[error("appRegistration.mode is manual, so the spec names no provisioner")]
    NoProvisioner,
}

impl Context {
    /// Creates a context.
    pub fn new(desired: DesiredState, options: Options) -> Self {
        Self { desired, options }
    }

    /// Resolves a secret reference of the spec.
    pub fn secret(
        &self,
        what: &'static str,
        reference: &SecretRef,
    ) -> Result<Secret, ContextError> {
        reference.resolve().map_err(|source| ContextError::Secret {
            what,
            reference: reference.to_string(),
            source,
        })
    }

    /// Returns the HTTP settings for EWS and Autodiscover.
    pub fn exchange_http(&self) -> HttpSettings {
        self.http(self.desired.exchange.ca_file.clone())
    }

    /// Returns the HTTP settings for the token endpoint, Graph and Exchange Online.
    pub fn cloud_http(&self) -> HttpSettings {
        let ca_file = self
            .desired
            .app_registration
            .as_ref()
            .and_then(|registration| registration.endpoints.ca_file.clone());
        self.http(ca_file)
    }

    fn http(&self, ca_file: Option<std::path::PathBuf>) -> HttpSettings {
        HttpSettings {
            // The spec's CA file replaces the system's roots, as the spec's schema documents.
            ca_mode: CaMode::ReplaceSystemRoots,
            ca_file,
            resolve: self.options.resolve.clone(),
            danger_accept_invalid_certs: self.options.insecure_skip_tls_verify,
            ..HttpSettings::default()
        }
    }

    /// Returns the LDAP settings for binding as `identity` with `password`.
    pub fn directory_settings(
        &self,
        identity: BindIdentity,
        password: Password,
    ) -> ConnectionSettings {
        let directory = &self.desired.directory;
        let mut settings = ConnectionSettings::new(directory.url.as_str(), identity, password);
        settings.start_tls = directory.transport == DirectoryTransport::StartTls;
        settings.ca_file = directory.ca_file.clone();
        settings.insecure_skip_tls_verify = self.options.insecure_skip_tls_verify;
        settings.base_dn = Some(directory.base_dn.clone());
        // AD's default MaxPageSize; larger pages mean fewer round trips for big groups.
        settings.page_size = 1000;
        settings
    }

    /// Returns the bind identity of the spec's directory section.
    pub fn bind_identity(&self) -> BindIdentity {
        match &self.desired.directory.bind_user {
            BindUser::Upn(upn) => BindIdentity::Upn(upn.clone()),
            BindUser::Dn(dn) => BindIdentity::Dn(dn.clone()),
            BindUser::DownLevel { domain, user } => BindIdentity::DownLevel {
                domain: domain.clone(),
                user: user.clone(),
            },
        }
    }

    /// Connects to the directory as the spec's bind user.
    pub async fn connect_directory(&self) -> Result<DirectoryClient, ConnectError> {
        let password = self
            .secret(
                "the directory bind password",
                &self.desired.directory.bind_password,
            )
            .map_err(ConnectError::Secret)?;
        let settings = self.directory_settings(
            self.bind_identity(),
            Password::new(password.expose().to_owned()),
        );
        DirectoryClient::connect(&settings)
            .await
            .map_err(ConnectError::Directory)
    }

    /// Binds to the directory as the service account with `password`.
    pub async fn bind_as_account(&self, password: &Secret) -> Result<(), DirectoryError> {
        let settings = self.directory_settings(
            BindIdentity::Upn(self.desired.account.upn.clone()),
            Password::new(password.expose().to_owned()),
        );
        let client = DirectoryClient::connect(&settings).await?;
        if let Err(error) = client.unbind().await {
            tracing::debug!(%error, "unbinding the service account's test connection failed");
        }
        Ok(())
    }

    /// Returns the EWS authentication of the service account.
    pub fn account_ews_auth(&self, password: &Secret) -> EwsAuth {
        let username = self.desired.account.upn.clone();
        let password = ews::Secret::new(password.expose().to_owned());
        match self.desired.exchange.auth {
            ExchangeAuth::Ntlm => EwsAuth::Ntlm { username, password },
            ExchangeAuth::Basic => EwsAuth::Basic { username, password },
        }
    }

    /// Returns the on-premises Exchange Management Shell.
    pub fn management_shell(&self) -> ManagementShell {
        ManagementShell::new(shell_command(&self.desired.exchange.management_shell))
    }

    /// Returns the Exchange Online shell, when the spec configures one.
    pub fn online_shell(&self) -> Option<ManagementShell> {
        self.desired
            .app_registration
            .as_ref()?
            .exchange_online_shell
            .as_ref()
            .map(|command| ManagementShell::new(shell_command(command)))
    }

    /// Returns the spec's application registration.
    pub fn registration(&self) -> Result<&AppRegistration, ContextError> {
        self.desired
            .app_registration
            .as_ref()
            .ok_or(ContextError::NotHybrid)
    }

    /// Creates a credential for `client_id` that signs in with `credential`.
    pub fn app_credential(
        &self,
        client_id: &str,
        credential: ClientSecretOrCertificate,
    ) -> Result<Arc<AppCredential>, ContextError> {
        let registration = self.registration()?;
        Ok(AppCredential::new(AppCredentialConfig {
            tenant_id: registration.tenant_id.to_string(),
            client_id: client_id.to_owned(),
            credential,
            authority_host: registration.endpoints.authority_host.clone(),
            http: self.cloud_http(),
            retry: TokenRetry::default(),
        })?)
    }

    /// Resolves a client secret or loads a certificate key of the spec.
    pub fn client_credential(
        &self,
        credential: &ClientCredential,
    ) -> Result<ClientSecretOrCertificate, ContextError> {
        Ok(match credential {
            ClientCredential::ClientSecret(reference) => {
                ClientSecretOrCertificate::Secret(ews::Secret::new(
                    self.secret("the client secret", reference)?
                        .expose()
                        .to_owned(),
                ))
            }
            ClientCredential::Certificate { key_file, .. } => {
                ClientSecretOrCertificate::Certificate(Arc::new(CertificateKey::from_pem_file(
                    key_file,
                )?))
            }
        })
    }

    /// Creates the provisioner's credential of an automatic registration.
    pub fn provisioner_credential(&self) -> Result<Arc<AppCredential>, ContextError> {
        match &self.registration()?.mode {
            AppRegistrationMode::Automatic { provisioner, .. } => {
                let credential = self.client_credential(&provisioner.credential)?;
                self.app_credential(&provisioner.client_id.to_string(), credential)
            }
            AppRegistrationMode::Manual { .. } => Err(ContextError::NoProvisioner),
        }
    }

    /// Creates the credential of the application itself: the spec's for a manual
    /// registration, the generated file's for an automatic one.
    pub fn application_credential(
        &self,
        client_id: &str,
    ) -> Result<Arc<AppCredential>, ContextError> {
        let credential = match &self.registration()?.mode {
            AppRegistrationMode::Manual { credential, .. } => self.client_credential(credential)?,
            AppRegistrationMode::Automatic { credential, .. } => match credential {
                GeneratedCredential::Certificate { key_file } => {
                    ClientSecretOrCertificate::Certificate(Arc::new(CertificateKey::from_pem_file(
                        key_file,
                    )?))
                }
                GeneratedCredential::ClientSecret { secret_file } => {
                    let reference = SecretRef::FromFile(secret_file.clone());
                    ClientSecretOrCertificate::Secret(ews::Secret::new(
                        self.secret("the client secret", &reference)?
                            .expose()
                            .to_owned(),
                    ))
                }
            },
        };
        self.app_credential(client_id, credential)
    }

    /// Creates a Graph client that signs in with `credential`.
    pub fn graph(&self, credential: Arc<AppCredential>) -> Result<GraphClient, ContextError> {
        let registration = self.registration()?;
        Ok(GraphClient::new(
            &registration.endpoints.graph,
            credential,
            &self.cloud_http(),
            GraphClientOptions {
                replication: self.options.replication,
                on_replication_wait: self.options.on_replication_wait.clone(),
                scope: Some(GRAPH_SCOPE.to_owned()),
                ..GraphClientOptions::default()
            },
        )?)
    }
}

/// A failure to connect to the directory as the bind user.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The bind password could not be read.
    #[error(transparent)]
    Secret(ContextError),
    /// The connection or bind failed.
    #[error(transparent)]
    Directory(DirectoryError),
}

fn shell_command(command: &siu_specs::desired::ShellCommand) -> management::ShellCommand {
    management::ShellCommand {
        program: command.program.clone(),
        args: command.args.clone(),
        working_dir: Some(command.working_dir.clone()),
        timeout: command.timeout,
    }
}
