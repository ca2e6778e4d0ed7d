//! The raw siu/v1 model: one Rust type per YAML mapping, with the YAML's field names.
//!
//! These types accept every field of the format and reject unknown ones, but they do not
//! check values: a URL is still a string and a duration is still text.
//! Validation turns a [`crate::spec::Spec`] into a [`crate::DesiredState`]. The doc comments
//! here become the descriptions in the JSON Schema, which editors show while an
//! administrator writes a spec, so they state what a field sets, its default and its
//! unit.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::SecretSpec;

/// Patterns that the JSON Schema checks. Each accepts at least what validation accepts,
/// so that an editor never flags a valid spec; validation has the final word.
pub(crate) mod pattern {
    /// A GUID: 32 hexadecimal digits, alone or with hyphens, in braces or after
    /// `urn:uuid:`, with spaces around.
    pub(crate) const GUID: &str = r"^\s*(\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}|([Uu][Rr][Nn]:[Uu][Uu][Ii][Dd]:)?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|[0-9A-Fa-f]{32})\s*$";
    /// The nil GUID in any of those forms.
    pub(crate) const NIL_GUID: &str =
        r"^\s*\{?([Uu][Rr][Nn]:[Uu][Uu][Ii][Dd]:)?0{8}-?0{4}-?0{4}-?0{4}-?0{12}\}?\s*$";
    /// `user@domain` with a dotted domain that does not end in a dot, and without
    /// zero-width or direction characters.
    pub(crate) const ADDRESS: &str = r"^[^@\s\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]+@[^@\s\u200B-\u200F\u202A-\u202E\u2060-\u2064\uFEFF]+\.[^@\s]*[^.@\s]$";
    /// Numbers with units, such as `90s` or `1h 30m`.
    pub(crate) const DURATION: &str = r"^\s*([0-9]+(\.[0-9]+)?\s*[A-Za-zµ]+\s*)+$";
    /// 40 hexadecimal digits, with spaces and colons anywhere.
    pub(crate) const THUMBPRINT: &str = r"^[\s:]*([0-9A-Fa-f][\s:]*){40}$";
    /// An environment variable name.
    pub(crate) const ENV_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
    /// An `http` or `https` URL.
    pub(crate) const HTTP_URL: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://";
    /// An `https` URL.
    pub(crate) const HTTPS_URL: &str = r"^[Hh][Tt][Tt][Pp][Ss]://";
    /// An `ldap` or `ldaps` URL.
    pub(crate) const LDAP_URL: &str = r"^[Ll][Dd][Aa][Pp][Ss]?://";
    /// A path that is not blank, has no control characters, and does not start with `~`
    /// or look like a URL.
    pub(crate) const PATH: &str =
        r"^(?!~)(?!.*://)[^\x00-\x1F\x7F]*[^\s\x00-\x1F\x7F][^\x00-\x1F\x7F]*$";
    /// A program that is not blank and does not start with `-`.
    pub(crate) const PROGRAM: &str = r"^(\s+\S|[^-\s])";
}

/// A siu/v1 spec: how siuctl sets up and runs the Sent Items Update service for one
/// Exchange organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "siu/v1 SentItemsUpdate")]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "environment": { "const": "hybrid" } }, "required": ["environment"] },
        "then": { "required": ["appRegistration"] },
        "else": { "not": { "required": ["appRegistration"] } }
    }
]))]
pub struct Spec {
    /// Version of the spec format. Always `siu/v1`.
    pub api_version: ApiVersion,
    /// Kind of object the spec describes. Always `SentItemsUpdate`.
    pub kind: Kind,
    /// Identity of this deployment.
    pub metadata: MetadataSpec,
    /// Where the mailboxes are: `onPremises` for Exchange Server only, `hybrid` for
    /// Exchange Server together with Exchange Online.
    pub environment: Environment,
    /// The on-premises Exchange servers and Active Directory. Required in both
    /// environments.
    pub on_premises: OnPremisesSpec,
    /// The service account that opens on-premises mailboxes through EWS impersonation.
    pub account: AccountSpec,
    /// The Microsoft Entra ID application that opens Exchange Online mailboxes. Required
    /// when `environment` is `hybrid`, and rejected otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_registration: Option<AppRegistrationSpec>,
    /// Whose Sent Items are updated. Default: every mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSpec>,
    /// How sent messages are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<OptionsSpec>,
    /// The background reconciliation that keeps the live setup matching this spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileSpec>,
    /// The update loop that processes the messages dropped by the transport rules.
    pub update_loop: UpdateLoopSpec,
}

/// Version of the spec format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApiVersion {
    /// The first version of the format.
    #[serde(rename = "siu/v1")]
    V1,
}

/// Kind of object a spec describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Kind {
    /// A Sent Items Update deployment.
    SentItemsUpdate,
}

/// Identity of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetadataSpec {
    /// Name of this deployment: 1 to 63 lowercase letters, digits and hyphens, starting
    /// and ending with a letter or digit. It names siuctl's state files and the default
    /// display name of the Entra application (`siuctl <name>`).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Where the mailboxes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Environment {
    /// Exchange Server only.
    OnPremises,
    /// Exchange Server and Exchange Online.
    Hybrid,
}

/// The on-premises side of the organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OnPremisesSpec {
    /// How siuctl reaches Exchange Server: Exchange Web Services (EWS) and the Exchange
    /// Management Shell.
    pub exchange: ExchangeSpec,
    /// How siuctl reaches Active Directory over LDAP.
    pub directory: DirectorySpec,
}

/// How siuctl reaches Exchange Server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "connection": { "const": "manual" } }, "required": ["connection"] },
        "then": { "required": ["server"], "not": { "required": ["autodiscoverAddress"] } },
        "else": { "not": { "anyOf": [{ "required": ["server"] }, { "required": ["ewsUrl"] }] } }
    },
    {
        "if": { "properties": { "ewsUrl": { "pattern": "^[Hh][Tt][Tt][Pp]://" } }, "required": ["ewsUrl"] },
        "then": { "properties": { "allowInsecureHttp": { "const": true } }, "required": ["allowInsecureHttp"] }
    }
]))]
pub struct ExchangeSpec {
    /// How the EWS endpoint is found: `autodiscover` queries Autodiscover for the mailbox
    /// of `autodiscoverAddress`, `manual` uses `server` or `ewsUrl`.
    pub connection: ConnectionMode,
    /// Host name (FQDN) or IP address of the Exchange server or load balancer that
    /// serves EWS. Required when `connection` is `manual`, rejected with `autodiscover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Full EWS URL. Default: `https://<server>/EWS/Exchange.asmx`. Only with `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"https://mail.contoso.com/EWS/Exchange.asmx", regex(pattern = pattern::HTTP_URL))]
    pub ews_url: Option<String>,
    /// Email address whose domain Autodiscover is asked about. Default: `account.upn`.
    /// Only with `autodiscover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::ADDRESS))]
    pub autodiscover_address: Option<String>,
    /// How the service account signs in to EWS: `ntlm` or `basic`. Default: `ntlm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ExchangeAuth>,
    /// PEM file with the CA certificates trusted for EWS and Autodiscover, for servers
    /// whose certificate comes from an internal CA. Default: the system's trusted CAs.
    /// Relative to the spec file's directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::PATH))]
    pub ca_file: Option<PathBuf>,
    /// Allows an `http://` EWS URL, which sends credentials and mail unencrypted. Use
    /// only in a lab. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
    /// The command that runs Exchange Management Shell cmdlets. siuctl writes the script
    /// to its standard input and reads JSON from its standard output.
    pub management_shell: ShellSpec,
}

/// How the EWS endpoint is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ConnectionMode {
    /// Ask Autodiscover for the EWS URL.
    Autodiscover,
    /// Use the configured server or EWS URL.
    Manual,
}

/// How the service account signs in to EWS on-premises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExchangeAuth {
    /// NTLM with channel binding: the password never crosses the network.
    Ntlm,
    /// HTTP Basic authentication: the password is sent inside TLS on every request.
    Basic,
}

/// A command that siuctl runs, with a time limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShellSpec {
    /// The program and its arguments, for example
    /// `[pwsh, -NoProfile, -NonInteractive, -File, scripts/exchange-onprem-shell.ps1]`. A
    /// program path that contains `/` is relative to the spec file's directory; a bare
    /// name is looked up in `PATH`. The command runs in the spec file's directory.
    #[schemars(length(min = 1), extend("prefixItems" = [{ "type": "string", "pattern": pattern::PROGRAM }]))]
    pub command: Vec<String>,
    /// How long one run may take before siuctl stops it, for example `2m` or `90s`.
    /// Between 1s and 1h. Default: `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"2m", regex(pattern = pattern::DURATION))]
    pub timeout: Option<String>,
}

/// How siuctl reaches Active Directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "url": { "pattern": "^[Ll][Dd][Aa][Pp][Ss]://" } } },
        "then": { "properties": { "startTls": { "const": false } } }
    },
    {
        "if": { "properties": { "url": { "pattern": "^[Ll][Dd][Aa][Pp]://" } } },
        "then": {
            "anyOf": [
                { "properties": { "startTls": { "const": true } }, "required": ["startTls"] },
                { "properties": { "allowPlaintext": { "const": true } }, "required": ["allowPlaintext"] }
            ]
        }
    }
]))]
pub struct DirectorySpec {
    /// LDAP URL of a domain controller or the domain, `ldaps://dc1.contoso.com` or
    /// `ldap://dc1.contoso.com`. An `ldap://` URL needs `startTls: true` or
    /// `allowPlaintext: true`.
    #[schemars(example = &"ldaps://dc1.contoso.com", regex(pattern = pattern::LDAP_URL))]
    pub url: String,
    /// Upgrades an `ldap://` connection to TLS with StartTLS. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_tls: Option<bool>,
    /// Allows an unencrypted `ldap://` connection, which sends the bind password in the
    /// clear. Use only in a lab. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_plaintext: Option<bool>,
    /// Distinguished name where searches for users and groups start, usually the domain,
    /// for example `DC=contoso,DC=com`.
    pub base_dn: String,
    /// Account that siuctl binds as: a UPN (`siu-admin@contoso.com`), a distinguished
    /// name, or `DOMAIN\user`. It needs read access to users and groups, and the right to
    /// create users in `account.container` when `account.create` is `true`.
    pub bind_user: String,
    /// Password of `bindUser`, as `{ fromEnv: NAME }` or `{ fromFile: PATH }`.
    pub bind_password: SecretSpec,
    /// PEM file with the CA certificates trusted for LDAPS and StartTLS. Default: the
    /// system's trusted CAs. Relative to the spec file's directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::PATH))]
    pub ca_file: Option<PathBuf>,
}

/// The service account that opens on-premises mailboxes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "create": { "const": true } }, "required": ["create"] },
        "then": { "properties": { "password": { "required": ["fromFile"] } } },
        "else": { "not": { "required": ["container"] } }
    }
]))]
pub struct AccountSpec {
    /// User principal name of the service account, for example `svc-siu@contoso.com`.
    #[schemars(regex(pattern = pattern::ADDRESS))]
    pub upn: String,
    /// `true` lets siuctl create the account in Active Directory (this needs an encrypted
    /// directory connection) and write its generated password to `password`, which must
    /// then be a `fromFile` reference. `false` uses an existing account. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// Password of the account, as `{ fromEnv: NAME }` or `{ fromFile: PATH }`.
    pub password: SecretSpec,
    /// Distinguished name of the organizational unit or container where siuctl creates
    /// the account. Only with `create: true`. Default: `CN=Users,<baseDn>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `grant` lets siuctl assign the ApplicationImpersonation role to the account;
    /// `verifyOnly` only checks that an administrator has assigned it. Default: `grant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonation: Option<Impersonation>,
    /// Name of an existing management scope that limits which mailboxes the account may
    /// impersonate, used as the role assignment's CustomRecipientWriteScope. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_scope: Option<String>,
}

/// What siuctl does about the ApplicationImpersonation role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Impersonation {
    /// Assign the role when it is missing.
    Grant,
    /// Only check that the role is assigned.
    VerifyOnly,
}

/// The Microsoft Entra ID application for Exchange Online.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "mode": { "const": "automatic" } }, "required": ["mode"] },
        "then": {
            "required": ["provisioner"],
            "not": { "required": ["clientId"] },
            "properties": {
                "credential": {
                    "properties": {
                        "certificate": { "not": { "required": ["thumbprint"] } },
                        "clientSecret": { "required": ["fromFile"] }
                    }
                }
            }
        },
        "else": {
            "required": ["clientId"],
            "not": { "anyOf": [{ "required": ["provisioner"] }, { "required": ["displayName"] }] },
            "properties": {
                "credential": { "properties": { "certificate": { "required": ["thumbprint"] } } }
            }
        }
    }
]))]
pub struct AppRegistrationSpec {
    /// `automatic`: siuctl registers the application, grants it `full_access_as_app`
    /// on Office 365 Exchange Online and creates its credential, signing in as
    /// `provisioner`. `manual`: an administrator did this, and the spec gives
    /// `clientId` and the credential.
    pub mode: RegistrationMode,
    /// Directory (tenant) ID of the Microsoft 365 organization, a GUID.
    #[schemars(
        example = &"8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55",
        regex(pattern = pattern::GUID),
        extend("not" = { "pattern": pattern::NIL_GUID })
    )]
    pub tenant_id: String,
    /// Display name of the application that siuctl finds or creates. Only with
    /// `automatic`. Default: `siuctl <metadata.name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Application (client) ID, a GUID. Required with `manual`; rejected with
    /// `automatic`, where siuctl discovers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::GUID), extend("not" = { "pattern": pattern::NIL_GUID }))]
    pub client_id: Option<String>,
    /// How the application signs in: exactly one of `certificate` or `clientSecret`.
    pub credential: CredentialSpec,
    /// The identity that registers the application. Required with `automatic`, rejected
    /// with `manual`. It needs the Microsoft Graph application permissions
    /// Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioner: Option<ProvisionerSpec>,
    /// How cloud mailboxes are opened: `ews`, `graph` (Microsoft Graph mail API), or
    /// `auto` to use EWS while Exchange Online allows it for the application and Graph
    /// otherwise. Default: `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_access: Option<MailAccess>,
    /// Command that runs Exchange Online PowerShell, used to read the organization's EWS
    /// settings (Get-OrganizationConfig). Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange_online_shell: Option<ShellSpec>,
    /// Endpoint overrides for national clouds or the lab. Default: the worldwide
    /// Microsoft 365 endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointsSpec>,
}

/// Who registers the Entra application.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RegistrationMode {
    /// siuctl registers the application.
    Automatic,
    /// An administrator registered the application.
    Manual,
}

/// How an Entra application signs in: exactly one of the two fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["certificate"] }, { "required": ["clientSecret"] }]))]
pub struct CredentialSpec {
    /// A certificate whose private key signs the sign-in request. Recommended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateSpec>,
    /// A client secret, as `{ fromEnv: NAME }` or `{ fromFile: PATH }`. With
    /// `mode: automatic`, siuctl creates the secret and writes it, so only `fromFile`
    /// is accepted there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretSpec>,
}

/// A certificate credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSpec {
    /// SHA-1 thumbprint of the certificate: 40 hexadecimal digits. Spaces, colons and
    /// lowercase are accepted. Required for an existing certificate; rejected with
    /// `mode: automatic`, where siuctl generates the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::THUMBPRINT))]
    pub thumbprint: Option<String>,
    /// PEM file with the private key and the certificate. With `mode: automatic`, siuctl
    /// writes it. Relative to the spec file's directory unless absolute.
    #[schemars(regex(pattern = pattern::PATH))]
    pub key_file: PathBuf,
}

/// The identity that registers the application in `automatic` mode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    { "properties": { "credential": { "properties": { "certificate": { "required": ["thumbprint"] } } } } }
]))]
pub struct ProvisionerSpec {
    /// Application (client) ID of the provisioning application, a GUID.
    #[schemars(regex(pattern = pattern::GUID), extend("not" = { "pattern": pattern::NIL_GUID }))]
    pub client_id: String,
    /// How the provisioning application signs in: exactly one of `certificate` (with
    /// its thumbprint) or `clientSecret`.
    pub credential: CredentialSpec,
}

/// How cloud mailboxes are opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MailAccess {
    /// Exchange Web Services.
    Ews,
    /// The Microsoft Graph mail API.
    Graph,
    /// EWS while Exchange Online allows it for the application, Graph otherwise.
    Auto,
}

/// Endpoint overrides for Microsoft 365.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointsSpec {
    /// Microsoft Entra sign-in endpoint. Default: `https://login.microsoftonline.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::HTTPS_URL))]
    pub authority_host: Option<String>,
    /// Microsoft Graph endpoint. Default: `https://graph.microsoft.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::HTTPS_URL))]
    pub graph: Option<String>,
    /// Exchange Online EWS URL. Default:
    /// `https://outlook.office365.com/EWS/Exchange.asmx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::HTTPS_URL))]
    pub exchange_online_ews: Option<String>,
    /// PEM file with the CA certificates trusted for these endpoints. Default: the
    /// system's trusted CAs. Relative to the spec file's directory unless absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = pattern::PATH))]
    pub ca_file: Option<PathBuf>,
}

/// Whose Sent Items are updated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": { "properties": { "mode": { "enum": ["only", "allExcept"] } }, "required": ["mode"] },
        "then": {
            "anyOf": [
                { "properties": { "users": { "minItems": 1 } }, "required": ["users"] },
                { "properties": { "groups": { "minItems": 1 } }, "required": ["groups"] }
            ]
        },
        "else": { "properties": { "users": { "maxItems": 0 }, "groups": { "maxItems": 0 } } }
    }
]))]
pub struct ScopeSpec {
    /// `all` mailboxes, `only` the listed users and group members, or `allExcept` them.
    /// Default: `all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ScopeMode>,
    /// Users by UPN or primary SMTP address. Only with `only` and `allExcept`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = pattern::ADDRESS)), extend("uniqueItems" = true))]
    pub users: Vec<String>,
    /// Groups by SMTP address, distinguished name or name. Members of nested groups
    /// count. Only with `only` and `allExcept`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"\S")), extend("uniqueItems" = true))]
    pub groups: Vec<String>,
}

/// Which mailboxes a scope selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ScopeMode {
    /// Every mailbox.
    All,
    /// Only the listed users and the members of the listed groups.
    Only,
    /// Every mailbox except the listed users and the members of the listed groups.
    AllExcept,
}

/// How sent messages are updated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionsSpec {
    /// Turns updating on or off; siuctl keeps reconciling either way. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Keeps the unprocessed original in Sent Items next to the processed copy.
    /// Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_original: Option<bool>,
    /// When the transport rules split a message into copies for different recipients,
    /// saves every copy in Sent Items instead of one. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_all_split_copies: Option<bool>,
    /// Whose Sent Items receive a message sent with Send As permission: `submitter` (the
    /// mailbox that sent it) or `from` (the mailbox in the From header).
    /// Default: `submitter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_as_mailbox: Option<SendAsMailbox>,
    /// How long to wait before processing a message, so that the original reaches Sent
    /// Items first. Between 0s and 1h. Default: `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"5s", regex(pattern = pattern::DURATION))]
    pub delay: Option<String>,
    /// How long to keep looking for the original in Sent Items before giving up on a
    /// message. Between 1s and 7d. Default: `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"15m", regex(pattern = pattern::DURATION))]
    pub original_wait_timeout: Option<String>,
}

/// Whose Sent Items receive a Send As message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SendAsMailbox {
    /// The mailbox that submitted the message.
    Submitter,
    /// The mailbox in the message's From header.
    From,
}

/// The background reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReconcileSpec {
    /// Time between two reconciliations, for example `10m`. Between 30s and 24h.
    /// Default: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"10m", regex(pattern = pattern::DURATION))]
    pub interval: Option<String>,
}

/// The update loop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateLoopSpec {
    /// Directory where the transport rules drop processed messages (`tmp/` and `new/`
    /// below it). Relative to the spec file's directory unless absolute.
    #[schemars(regex(pattern = pattern::PATH))]
    pub spool_dir: PathBuf,
    /// Directory where siuctl keeps its state. Relative to the spec file's directory
    /// unless absolute.
    #[schemars(regex(pattern = pattern::PATH))]
    pub state_dir: PathBuf,
    /// How many messages are processed at once. Between 1 and 256. Default: `8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: Option<i64>,
    /// How many messages of one mailbox are processed at once. Between 1 and 16, and at
    /// most `concurrency`. Default: `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16))]
    pub per_mailbox_concurrency: Option<i64>,
}
