//! The validated desired state: what the controller reconciles towards.
//!
//! Every value here has passed validation and is normalized. Defaults are filled in,
//! paths are absolute, URLs are parsed and GUIDs are [`uuid::Uuid`]s. Thumbprints are 40
//! uppercase hexadecimal digits and durations are [`std::time::Duration`]s. Mode-dependent fields are
//! enum variants, so a combination that the spec rejects cannot be represented.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;
use uuid::Uuid;

use crate::secret::SecretRef;
pub use crate::spec::{
    Environment, ExchangeAuth, Impersonation, MailAccess, ScopeMode, SendAsMailbox,
};

/// A validated siu/v1 spec.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredState {
    /// Absolute path of the spec file.
    pub spec_path: PathBuf,
    /// `metadata.name`.
    pub name: String,
    pub environment: Environment,
    pub exchange: Exchange,
    pub directory: Directory,
    pub account: Account,
    /// Present exactly when `environment` is [`Environment::Hybrid`].
    pub app_registration: Option<AppRegistration>,
    pub scope: Scope,
    pub options: UpdateOptions,
    /// Time between two background reconciliations.
    pub reconcile_interval: Duration,
    pub update_loop: UpdateLoop,
}

/// Connection settings for Exchange Server.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    pub connection: ExchangeConnection,
    pub auth: ExchangeAuth,
    /// CA bundle trusted for EWS and Autodiscover, in place of the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Runs Exchange Management Shell scripts.
    pub management_shell: ShellCommand,
}

/// Discovery of the EWS endpoint.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExchangeConnection {
    /// Autodiscover for the domain of `address`.
    Autodiscover { address: String },
    /// A fixed endpoint. `ews_url` is https unless `allowInsecureHttp` was set.
    Manual { server: Host, ews_url: Url },
}

/// A server given by name or by address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Host {
    /// A fully qualified domain name, lowercase.
    Name(String),
    Ip(IpAddr),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Ip(address) => write!(f, "{address}"),
        }
    }
}

/// A command the controller runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellCommand {
    /// The program: an absolute path when the spec gave a path, otherwise a name to look
    /// up in `PATH`.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The spec file's directory, where the command runs so that relative arguments
    /// resolve like the spec's own paths.
    pub working_dir: PathBuf,
    /// How long one run may take.
    pub timeout: Duration,
}

/// Connection settings for Active Directory.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub url: Url,
    pub transport: DirectoryTransport,
    pub base_dn: String,
    pub bind_user: BindUser,
    pub bind_password: SecretRef,
    /// CA bundle trusted for LDAPS and StartTLS, in place of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Protection of the LDAP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DirectoryTransport {
    /// TLS from the start (`ldaps://`).
    Ldaps,
    /// `ldap://` upgraded with StartTLS.
    StartTls,
    /// `ldap://` without encryption, allowed by `allowPlaintext`.
    Plaintext,
}

impl DirectoryTransport {
    /// Returns whether passwords may be set over this connection. Active Directory accepts
    /// a `unicodePwd` change only over an encrypted connection.
    pub fn is_encrypted(self) -> bool {
        !matches!(self, Self::Plaintext)
    }
}

/// The account the controller binds to Active Directory as.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BindUser {
    /// `user@domain`.
    Upn(String),
    /// A distinguished name, `CN=...,DC=...`.
    Dn(String),
    /// `DOMAIN\user`.
    DownLevel { domain: String, user: String },
}

impl std::fmt::Display for BindUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Upn(name) | Self::Dn(name) => f.write_str(name),
            Self::DownLevel { domain, user } => write!(f, "{domain}\\{user}"),
        }
    }
}

/// The service account.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub upn: String,
    pub provisioning: AccountProvisioning,
    pub impersonation: Impersonation,
    /// Management scope that limits the impersonation role assignment.
    pub management_scope: Option<String>,
}

impl Account {
    /// Returns where the account's password is read from (and, for a created account,
    /// written to).
    pub fn password(&self) -> SecretRef {
        match &self.provisioning {
            AccountProvisioning::Existing { password } => password.clone(),
            AccountProvisioning::Create { password_file, .. } => {
                SecretRef::FromFile(password_file.clone())
            }
        }
    }
}

/// Whether the service account exists or is created by the controller.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccountProvisioning {
    /// An existing account and its password.
    Existing { password: SecretRef },
    /// The controller creates the account in `container` and writes its generated
    /// password to `password_file`.
    Create {
        password_file: PathBuf,
        container: String,
    },
}

/// The Entra application for Exchange Online.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRegistration {
    pub tenant_id: Uuid,
    pub mode: AppRegistrationMode,
    pub mail_access: MailAccess,
    pub exchange_online_shell: Option<ShellCommand>,
    pub endpoints: CloudEndpoints,
}

/// Registration mode of the application, with what each mode needs.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppRegistrationMode {
    /// The controller finds or creates the application named `display_name`, signing
    /// in as `provisioner`, and writes the generated credential.
    Automatic {
        display_name: String,
        credential: GeneratedCredential,
        provisioner: Provisioner,
    },
    /// An administrator registered the application.
    Manual {
        client_id: Uuid,
        credential: ClientCredential,
    },
}

/// The credential the controller generates for an automatic registration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GeneratedCredential {
    /// A self-signed certificate, written with its private key to `key_file`.
    Certificate { key_file: PathBuf },
    /// A client secret, written to `secret_file`.
    ClientSecret { secret_file: PathBuf },
}

/// The identity that registers the application.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provisioner {
    pub client_id: Uuid,
    pub credential: ClientCredential,
}

/// An existing application credential.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientCredential {
    /// A certificate: `thumbprint` is 40 uppercase hexadecimal digits, and `key_file`
    /// is a PEM file with the private key and the certificate.
    Certificate {
        thumbprint: String,
        key_file: PathBuf,
    },
    ClientSecret(SecretRef),
}

/// Microsoft 365 endpoints.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudEndpoints {
    pub authority_host: Url,
    pub graph: Url,
    pub exchange_online_ews: Url,
    /// CA bundle trusted for these endpoints, in place of the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// Whose Sent Items are updated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    pub mode: ScopeMode,
    /// UPNs or SMTP addresses, lowercase. Empty with [`ScopeMode::All`].
    pub users: Vec<String>,
    /// Empty with [`ScopeMode::All`].
    pub groups: Vec<GroupRef>,
}

/// Reference to a group in the scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupRef {
    /// An SMTP address, lowercase.
    Address(String),
    /// A distinguished name.
    Dn(String),
    /// A display name or sAMAccountName.
    Name(String),
}

/// Settings for updating sent messages.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOptions {
    pub enabled: bool,
    pub keep_original: bool,
    pub update_all_split_copies: bool,
    pub send_as_mailbox: SendAsMailbox,
    pub delay: Duration,
    pub original_wait_timeout: Duration,
}

/// The update loop's directories and parallelism.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLoop {
    pub spool_dir: PathBuf,
    pub state_dir: PathBuf,
    pub concurrency: u16,
    pub per_mailbox_concurrency: u16,
}
