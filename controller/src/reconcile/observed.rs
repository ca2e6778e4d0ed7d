//! Live state as the providers read it, typed per resource.
//!
//! [`observe`](super::observe) fills an [`Observed`]; [`decide`](super::decide) compares it
//! with the desired state. Every read that can fail is a [`Read`]: either the value, or a
//! [`ReadFailure`] with the reason it is unknown. A failure that carries a [`Diagnosis`] is
//! one the administrator must fix (the provisioner was refused, a secret was rejected),
//! and the plan shows it as blocked. A failure without one (a timeout, a refused
//! connection) leaves the resource unknown, never changed.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use super::applied::AppliedConfig;
use super::remedies::Diagnosis;

/// A value read from a provider, or why the read failed.
pub type Read<T> = Result<T, ReadFailure>;

/// The system a read goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Active Directory over LDAP.
    Directory,
    /// The Exchange Management Shell command.
    ExchangeManagement,
    /// The Exchange Online PowerShell command.
    ExchangeOnlineManagement,
    /// The Entra ID token endpoint.
    TokenEndpoint,
    /// Microsoft Graph.
    Graph,
    /// Exchange Web Services.
    Ews,
    /// Autodiscover.
    Autodiscover,
    /// Files in the state directory or the spec's secret files.
    Files,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Directory => "directory",
            Provider::ExchangeManagement => "Exchange management shell",
            Provider::ExchangeOnlineManagement => "Exchange Online shell",
            Provider::TokenEndpoint => "token endpoint",
            Provider::Graph => "Microsoft Graph",
            Provider::Ews => "EWS",
            Provider::Autodiscover => "Autodiscover",
            Provider::Files => "files",
        })
    }
}

/// A read that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFailure {
    /// The system the read went to.
    pub provider: Provider,
    /// The object that was read (a UPN, an application name).
    pub target: String,
    /// The error, without secrets.
    pub reason: String,
    /// Set when the failure is one the administrator must fix, rather than a passing one.
    pub diagnosis: Option<Diagnosis>,
}

impl ReadFailure {
    /// Creates a failure that leaves the value unknown.
    pub fn new(provider: Provider, target: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            provider,
            target: target.into(),
            reason: reason.into(),
            diagnosis: None,
        }
    }

    /// Adds the diagnosis of a failure the administrator must fix.
    pub fn with_diagnosis(mut self, diagnosis: Diagnosis) -> Self {
        self.diagnosis = Some(diagnosis);
        self
    }
}

impl fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} read of {} failed: {}",
            self.provider, self.target, self.reason
        )
    }
}

/// Everything `plan` read.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The service account; `Ok(None)` when no account has the UPN.
    pub account: Read<Option<AccountState>>,
    /// Role assignments of the account; `None` when the account is absent or unread.
    pub impersonation: Option<Read<ImpersonationState>>,
    /// Whether the spec's management scope exists; `None` when the spec names none. It is
    /// read whether or not the account exists, because a new account is granted the role
    /// with this scope too.
    pub management_scope: Option<Read<bool>>,
    /// The on-premises EWS endpoint.
    pub ews: Read<EwsEndpoint>,
    /// The scope as the directory resolves it.
    pub scope: Read<ScopeState>,
    /// The Entra application and Exchange Online, in a hybrid environment.
    pub cloud: Option<CloudState>,
    /// The configuration last applied; `Ok(None)` before the first apply, and when the
    /// file is corrupt.
    pub applied: Read<Option<AppliedConfig>>,
    /// Why `applied.json` was set aside: it exists, but is not valid JSON of the applied
    /// configuration, such as a file cut short by a full disk.
    pub applied_corrupt: Option<String>,
}

/// The service account in Active Directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Distinguished name.
    pub dn: String,
    /// `userPrincipalName`, when set.
    pub upn: Option<String>,
    /// The spec's UPN matched `mail` or `proxyAddresses`, not `userPrincipalName`.
    pub found_by_address: bool,
    /// ACCOUNTDISABLE is clear.
    pub enabled: bool,
    /// The account is locked out.
    pub locked_out: bool,
    /// Domain Users is the primary group or lists the account.
    pub domain_users: Read<bool>,
    /// Whether the spec's password signs in.
    pub password: PasswordState,
}

/// Whether the service account's password from the spec works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordState {
    /// A bind with it succeeded.
    Usable,
    /// An interrupted apply staged a password that works, next to the password file.
    Staged,
    /// The secret reference could not be resolved, such as a missing file.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The directory rejected a bind with it.
    Rejected {
        /// The directory's result code and message.
        reason: String,
        /// Set when AD reported the account as disabled, so the password itself is unchecked.
        account_disabled: bool,
    },
    /// The bind could not be tried.
    Unknown(ReadFailure),
}

/// The account's ApplicationImpersonation assignments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImpersonationState {
    /// Every assignment of the role to the account.
    pub assignments: Vec<RoleAssignment>,
}

/// One management role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment's name.
    pub name: String,
    /// `CustomRecipientWriteScope`, when set.
    pub scope: Option<String>,
    /// Whether the assignment is enabled.
    pub enabled: bool,
}

/// The on-premises EWS URL and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsEndpoint {
    /// The URL.
    pub url: Url,
    /// `spec` or `Autodiscover`.
    pub source: &'static str,
}

/// The scope resolved against the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeState {
    /// The listed users, in spec order.
    pub users: Vec<ScopeEntry>,
    /// The listed groups, in spec order.
    pub groups: Vec<ScopeEntry>,
    /// Users with a mail address that the scope selects, when counted.
    pub mailboxes: Option<usize>,
    /// A few mail addresses in scope, for checks after apply.
    pub samples: Vec<String>,
}

/// A user or group of the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeEntry {
    /// As the spec wrote it.
    pub reference: String,
    /// The entry's DN, or `None` when the directory has no such object.
    pub dn: Option<String>,
}

/// The Entra side of a hybrid environment.
#[derive(Debug, Clone)]
pub struct CloudState {
    /// The application and its parts.
    pub app: AppState,
    /// Exchange Online's EWS settings; `None` without `exchangeOnlineShell`.
    pub exchange_online: Option<Read<EwsSettings>>,
}

/// The application, by registration mode.
#[derive(Debug, Clone)]
pub enum AppState {
    /// siuctl manages the application.
    Automatic(AutomaticApp),
    /// An administrator registered it.
    Manual(ManualApp),
}

/// An application that siuctl registers, as Graph shows it to the provisioner.
#[derive(Debug, Clone)]
pub struct AutomaticApp {
    /// Applications with the spec's display name.
    pub lookup: Read<AppLookup>,
    /// The credential file the spec names.
    pub credential_file: CredentialFile,
    /// The service principal; `None` when the application is absent or unread.
    pub service_principal: Option<Read<Option<PrincipalState>>>,
    /// The app roles granted to the service principal; `None` when it is absent or unread.
    pub granted_roles: Option<Read<Vec<GrantedRole>>>,
}

/// The result of looking an application up by display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppLookup {
    /// No application has the name.
    Missing,
    /// Exactly one has it.
    Found(ApplicationObject),
    /// Several have it; their application IDs.
    Ambiguous(Vec<String>),
}

/// An application registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationObject {
    /// Object ID.
    pub id: String,
    /// Application (client) ID.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// `requiredResourceAccess` as (resource application ID, app role ID) pairs.
    pub required_roles: Vec<(String, String)>,
    /// SHA-1 thumbprints of the registered certificates, 40 uppercase hexadecimal digits.
    pub certificate_thumbprints: Vec<String>,
    /// Registered client secrets.
    pub client_secrets: Vec<ClientSecretInfo>,
}

/// A registered client secret, as Graph shows it (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSecretInfo {
    /// The credential's ID.
    pub key_id: String,
    /// The first characters of the secret.
    pub hint: Option<String>,
    /// Whether it is still valid.
    pub valid: bool,
}

/// The state of the credential file of an automatic registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialFile {
    /// A certificate file.
    Certificate {
        /// The file.
        path: PathBuf,
        /// The certificate in it.
        current: KeyFileState,
        /// A certificate staged by an interrupted apply, when one is there.
        staged: Option<KeyFileState>,
    },
    /// A client secret file.
    ClientSecret {
        /// The file.
        path: PathBuf,
        /// The secret's first three characters, or why it is unreadable.
        hint: Result<String, String>,
        /// The first three characters of a staged secret, when one is there.
        staged_hint: Option<String>,
    },
}

/// A PEM file with a certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFileState {
    /// The file does not exist.
    Missing,
    /// The file contains a certificate and key.
    Present {
        /// SHA-1 thumbprint, 40 uppercase hexadecimal digits.
        thumbprint: String,
        /// The certificate has expired.
        expired: bool,
    },
    /// The file contains an RSA key shorter than Entra ID accepts.
    KeyTooSmall {
        /// The key's size.
        bits: usize,
    },
    /// The file exists but is not a usable certificate and key.
    Invalid(String),
}

/// A service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalState {
    /// Object ID.
    pub id: String,
}

/// An app role granted to the application's service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRole {
    /// The resource's application ID.
    pub resource_app_id: String,
    /// The app role's ID.
    pub role_id: String,
}

/// An application that an administrator registered, as its own tokens show it.
#[derive(Debug, Clone)]
pub struct ManualApp {
    /// The certificate file, for certificate credentials.
    pub key_file: Option<KeyFileState>,
    /// A token for Exchange Online.
    pub exchange_token: Read<TokenClaims>,
    /// A token for Microsoft Graph.
    pub graph_token: Read<TokenClaims>,
}

/// The claims of an access token about the application.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenClaims {
    /// The `roles` claim: the app roles granted with admin consent.
    pub roles: Vec<String>,
}

/// Exchange Online's organization-wide EWS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EwsSettings {
    /// `EwsEnabled`; `None` when not configured.
    pub ews_enabled: Option<bool>,
    /// `EwsAllowedAppIDs`.
    pub allowed_app_ids: Vec<String>,
}

impl EwsSettings {
    /// Tells whether Exchange Online lets `client_id` use EWS. Since 1 October 2026 it
    /// treats an unset `EwsEnabled` as off, and a non-empty allow list admits only the
    /// listed applications.
    pub fn allows(&self, client_id: Option<&str>) -> bool {
        if self.ews_enabled != Some(true) {
            return false;
        }
        if self.allowed_app_ids.is_empty() {
            return true;
        }
        client_id.is_some_and(|id| {
            self.allowed_app_ids
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ews_settings_follow_enabled_and_allow_list() {
        let unset = EwsSettings::default();
        assert!(!unset.allows(Some("a")));

        let open = EwsSettings {
            ews_enabled: Some(true),
            allowed_app_ids: Vec::new(),
        };
        assert!(open.allows(Some("a")));
        assert!(open.allows(None));

        let listed = EwsSettings {
            ews_enabled: Some(true),
            allowed_app_ids: vec!["AAA".into()],
        };
        assert!(listed.allows(Some("aaa")));
        assert!(!listed.allows(Some("bbb")));
        assert!(!listed.allows(None));
    }
}
