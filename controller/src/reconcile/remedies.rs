//! The catalogue of failures that `plan` and `apply` explain to the administrator.
//!
//! Each known way the setup can fail has one function here that returns a [`Diagnosis`]:
//! what failed, on which value, and the remedy, in the administrator's terms. Plans show
//! the remedy of blocked actions, `apply` prints it under a failed step or check, and the
//! status file keeps the kind as the condition's reason. Provider errors are mapped to
//! these kinds where they are caught, so the wording lives in one place.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::providers::exchange::management::quote as powershell_quote;

/// The known kinds of failure. The name doubles as a condition's reason in `status.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The directory server did not respond while the account was being created.
    AccountServerNotFound,
    /// The bind account may not create users in the container.
    AccountInsufficientRights,
    /// Active Directory sets passwords only over LDAPS or StartTLS.
    AccountLdapsRequired,
    /// The container for the new account does not exist.
    AccountContainerNotFound,
    /// The domain's password policy rejected the generated password.
    AccountPasswordPolicy,
    /// The account exists but is disabled, and siuctl does not manage it.
    AccountDisabled,
    /// The account is locked out.
    AccountLockedOut,
    /// The account's password from the spec does not work.
    AccountPasswordRejected,
    /// The account does not exist, and siuctl may not create it.
    AccountMissing,
    /// The spec's UPN is a mail address of an account with another UPN.
    AccountUpnMismatch,
    /// ApplicationImpersonation is not assigned and siuctl may not or could not assign it.
    ImpersonationNotGranted,
    /// The management scope the spec names does not exist.
    ManagementScopeMissing,
    /// ApplicationImpersonation is assigned, but EWS refuses to impersonate a mailbox.
    ImpersonationNotWorking,
    /// The provisioner may not register applications or grant app roles.
    ApplicationNotRegistered,
    /// Several applications have the display name the spec names.
    ApplicationAmbiguous,
    /// The token endpoint rejected the client secret.
    AppWrongSecret,
    /// The token endpoint does not know the certificate's thumbprint.
    AppCertificateNotRegistered,
    /// The certificate's RSA key is shorter than Entra ID accepts.
    AppKeyTooSmall,
    /// The client assertion's time window was rejected: the clocks disagree.
    AppClockSkew,
    /// The token endpoint does not know the application, or the tenant.
    AppNotFound,
    /// The application's key file is missing or unusable.
    AppKeyFileUnusable,
    /// Admin consent for an app role is missing.
    ConsentMissing,
    /// Exchange Online refuses EWS: the token lacks `full_access_as_app`.
    EwsMissingFullAccess,
    /// The mailbox address used is a UPN that differs from the primary SMTP address.
    EwsUpnDiffersFromSmtp,
    /// A change has not reached every server yet, and the wait ran out.
    NotReplicated,
    /// Exchange Online allows EWS only for listed applications, and this one is not listed.
    EwsNotAllowListed,
    /// Microsoft Graph refuses the application access to the mailbox.
    GraphMailRefused,
    /// No mailbox was found to check access with.
    NoSampleMailbox,
    /// A group or user in the scope does not exist in the directory.
    ScopeEntryNotFound,
    /// A configured command or file could not be used.
    Configuration,
    /// A failure without a kind of its own, described by its message.
    Other,
}

impl FailureKind {
    /// Returns the kind's name, as written in `status.json`.
    pub fn name(self) -> String {
        format!("{self:?}")
    }
}

/// A failure explained: the message names what failed and on which value, and the remedy
/// gives the administrator's next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The kind of failure.
    pub kind: FailureKind,
    /// The failure and the value it concerns.
    pub message: String,
    /// The next step for the administrator.
    pub remedy: String,
}

impl Diagnosis {
    fn new(kind: FailureKind, message: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            remedy: remedy.into(),
        }
    }

    /// Creates a diagnosis for a failure without a kind of its own.
    pub fn other(message: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::new(FailureKind::Other, message, remedy)
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message, self.remedy)
    }
}

/// Returns the name siuctl gives the ApplicationImpersonation role assignment of an
/// account: `ApplicationImpersonation-<user>` as Exchange names assignments by default, with
/// the management scope appended when there is one, because assignment names are unique
/// and one account can hold assignments with different scopes.
///
/// Exchange rejects names over 64 characters, so a longer name is cut and ends in 8
/// hexadecimal digits of the SHA-256 of the full name, which keeps cut names distinct.
pub fn impersonation_assignment_name(upn: &str, scope: Option<&str>) -> String {
    const MAX: usize = 64;
    const DIGEST_LEN: usize = 8;

    let user = upn.split('@').next().unwrap_or(upn);
    let full = match scope {
        Some(scope) => format!("ApplicationImpersonation-{user}-{scope}"),
        None => format!("ApplicationImpersonation-{user}"),
    };
    if full.chars().count() <= MAX {
        return full;
    }

    let digest = Sha256::digest(full.as_bytes());
    let suffix: String = digest[..DIGEST_LEN / 2]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let kept: String = full.chars().take(MAX - DIGEST_LEN - 1).collect();
    format!("{}-{suffix}", kept.trim_end())
}

/// Builds the `New-ManagementRoleAssignment` command that assigns ApplicationImpersonation to
/// `upn`, limited to `scope` when given, with every value quoted.
pub fn grant_impersonation_command(upn: &str, scope: Option<&str>) -> String {
    let mut command = format!(
        "New-ManagementRoleAssignment -Name {} -Role ApplicationImpersonation -User {}",
        powershell_quote(&impersonation_assignment_name(upn, scope)),
        powershell_quote(upn)
    );
    if let Some(scope) = scope {
        command.push_str(" -CustomRecipientWriteScope ");
        command.push_str(&powershell_quote(scope));
    }
    command
}

/// Builds the `Set-OrganizationConfig` command that adds `client_id` to Exchange Online's EWS allow
/// list.
pub fn allow_ews_command(client_id: &str) -> String {
    format!(
        "Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{{Add={}}}",
        powershell_quote(client_id)
    )
}

// Account creation.

/// Explains that the directory server did not respond while creating the account.
pub fn account_server_not_found(upn: &str, url: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountServerNotFound,
        format!("account {upn} not created: directory server {url} did not respond ({detail})"),
        "check onPremises.directory.url (host name, port, firewall) and that the domain controller is running, then run apply again",
    )
}

/// Explains that the bind account lacks the rights to create the account.
pub fn account_insufficient_rights(
    upn: &str,
    bind_user: &str,
    container: &str,
    detail: &str,
) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountInsufficientRights,
        format!(
            "account {upn} not created: {bind_user} may not create users in {container} ({detail})"
        ),
        format!(
            "delegate \"Create, delete and manage user accounts\" and \"Reset user passwords\" on {container} to {bind_user}, or create the account by hand and set account.create: false"
        ),
    )
}

/// Explains that the account's password was to be set over an unencrypted connection.
pub fn account_ldaps_required(upn: &str, url: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountLdapsRequired,
        format!(
            "account {upn} not created: Active Directory sets passwords only over an encrypted connection, and {url} is not encrypted"
        ),
        "use an ldaps:// URL or startTls: true in onPremises.directory; the domain controller needs a certificate for either",
    )
}

/// Explains that the container for the new account does not exist.
pub fn account_container_not_found(upn: &str, container: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountContainerNotFound,
        format!("account {upn} not created: container {container} not found in AD"),
        "create the organizational unit, or set account.container to an existing one",
    )
}

/// Explains that the domain's password policy rejected the generated password.
pub fn account_password_policy(upn: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountPasswordPolicy,
        format!(
            "password of account {upn} not set: the domain's password policy rejected it ({detail})"
        ),
        "siuctl generates 32-character passwords with all character classes; check for a fine-grained password policy that applies to the container, or set the password by hand",
    )
}

/// Explains that the account is disabled and siuctl does not manage it.
pub fn account_disabled(upn: &str, dn: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountDisabled,
        format!("account {upn} is disabled in AD"),
        format!(
            "enable it (Enable-ADAccount -Identity {}), or set account.create: true to let siuctl manage the account",
            powershell_quote(dn)
        ),
    )
}

/// Explains that the account is locked out.
pub fn account_locked_out(upn: &str, dn: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountLockedOut,
        format!("account {upn} is locked out in AD"),
        format!(
            "unlock it (Unlock-ADAccount -Identity {}) or wait for the lockout duration, and check what used a wrong password",
            powershell_quote(dn)
        ),
    )
}

/// Explains that the password from the spec's reference does not work.
pub fn account_password_rejected(upn: &str, reference: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountPasswordRejected,
        format!("AD rejected the password of {upn} from {reference}: {detail}"),
        format!(
            "put the account's current password in {reference}, or reset it in AD and update {reference}"
        ),
    )
}

/// Explains that EWS answered HTTP 401 to the account's sign-in. The directory may still accept
/// the password, because EWS also rejects a sign-in whose authentication scheme its virtual
/// directory does not enable.
pub fn account_ews_sign_in_rejected(upn: &str, reference: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountPasswordRejected,
        format!("EWS rejected the sign-in of {upn} with the password from {reference}: {detail}"),
        format!(
            "put the account's current password in {reference}, or reset it in AD and update {reference}; if the password is current, enable the spec's onPremises.exchange.auth scheme on the EWS virtual directory"
        ),
    )
}

/// Explains that the password reference cannot be read.
pub fn account_password_unreadable(upn: &str, reference: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountPasswordRejected,
        format!("password of {upn} not readable from {reference}: {detail}"),
        format!("put the account's password in {reference}"),
    )
}

/// Explains that the account does not exist and siuctl may not create it.
pub fn account_missing(upn: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AccountMissing,
        format!("no account {upn} in AD"),
        "create the account, or set account.create: true to let siuctl create it",
    )
}

/// Explains that the spec's UPN matched an account through its mail address.
pub fn account_upn_mismatch(spec_upn: &str, actual_upn: Option<&str>, dn: &str) -> Diagnosis {
    let actual = actual_upn.unwrap_or("(none)");
    Diagnosis::new(
        FailureKind::AccountUpnMismatch,
        format!(
            "{spec_upn} is a mail address of {dn}, whose UPN is {actual}; EWS and LDAP sign in with the UPN"
        ),
        format!("set account.upn to {actual}"),
    )
}

// Impersonation.

/// Explains that ApplicationImpersonation is not assigned, with the command to assign it
/// by hand.
pub fn impersonation_not_granted(upn: &str, scope: Option<&str>, detail: &str) -> Diagnosis {
    let command = grant_impersonation_command(upn, scope);
    Diagnosis::new(
        FailureKind::ImpersonationNotGranted,
        format!("ApplicationImpersonation not assigned to {upn}: {detail}"),
        format!(
            "an Exchange administrator (Organization Management) runs in the Exchange Management Shell: {command}"
        ),
    )
}

/// Explains that the management scope the spec names does not exist.
pub fn management_scope_missing(scope: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ManagementScopeMissing,
        format!(
            "management scope {} not found in Exchange",
            powershell_quote(scope)
        ),
        "create it (New-ManagementScope -Name ... -RecipientRestrictionFilter ...), or fix or remove account.managementScope",
    )
}

/// Explains that ApplicationImpersonation is assigned but EWS refused to impersonate a
/// mailbox.
pub fn impersonation_not_working(upn: &str, mailbox: &str, spec: &Path, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ImpersonationNotWorking,
        format!("{upn} could not impersonate {mailbox} through EWS: {detail}"),
        format!(
            "a new role assignment can take a while to reach every Exchange server; check again with `siuctl test-impersonation -f {} --mailbox {mailbox}`, and check that the mailbox is inside account.managementScope",
            spec.display()
        ),
    )
}

// Application registration.

/// Explains that the provisioner may not register the application or grant its roles.
pub fn application_not_registered(
    display_name: &str,
    provisioner_client_id: &str,
    detail: &str,
) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ApplicationNotRegistered,
        format!(
            "application {display_name:?} not registered: the provisioner {provisioner_client_id} was refused ({detail})"
        ),
        "the provisioner lacks the Microsoft Graph application permissions Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All: a Global Administrator or Privileged Role Administrator must grant them with admin consent, or register the application by hand and use appRegistration.mode: manual",
    )
}

/// Explains that several applications have the spec's display name.
pub fn application_ambiguous(display_name: &str, app_ids: &[String]) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ApplicationAmbiguous,
        format!(
            "{} applications are named {display_name:?}: {}",
            app_ids.len(),
            app_ids.join(", ")
        ),
        "delete or rename the extra applications so that one remains, or set appRegistration.displayName to a unique name",
    )
}

/// Explains that the token endpoint rejected the client secret.
pub fn app_wrong_secret(client_id: &str, reference: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppWrongSecret,
        format!(
            "application {client_id} cannot authenticate: Entra ID rejected the client secret from {reference} ({detail})"
        ),
        format!(
            "create a new client secret for the application and put its value (not its ID) in {reference}; secrets also expire"
        ),
    )
}

/// Explains that the token endpoint does not know the certificate.
pub fn app_certificate_not_registered(
    client_id: &str,
    thumbprint: &str,
    detail: &str,
) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppCertificateNotRegistered,
        format!(
            "application {client_id} cannot authenticate: certificate {thumbprint} is not registered on it ({detail})"
        ),
        "upload the certificate under Certificates & secrets of the application, or fix the thumbprint and key file in the spec",
    )
}

/// Explains that the certificate's key is too short for Entra ID.
pub fn app_key_too_small(client_id: &str, key_file: &Path, bits: usize) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppKeyTooSmall,
        format!(
            "application {client_id} cannot authenticate: the RSA key in {} has {bits} bits, and Entra ID requires at least 2048",
            key_file.display()
        ),
        "create a certificate with an RSA key of 2048 bits or more and register it on the application",
    )
}

/// Explains that the token endpoint rejected the assertion's time window.
pub fn app_clock_skew(client_id: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppClockSkew,
        format!(
            "application {client_id} cannot authenticate: Entra ID rejected the time of the sign-in request ({detail})"
        ),
        "synchronize this machine's clock (for example with chrony or systemd-timesyncd); Entra ID accepts only a few minutes of difference",
    )
}

/// Explains that the token endpoint does not know the application or the tenant.
pub fn app_not_found(client_id: &str, tenant_id: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppNotFound,
        format!("application {client_id} not found in tenant {tenant_id} ({detail})"),
        "check appRegistration.tenantId and the client ID; an application created a moment ago can take a few minutes to replicate, so run apply again later",
    )
}

/// Explains that the application's key file is missing or unusable.
pub fn app_key_file_unusable(key_file: &Path, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::AppKeyFileUnusable,
        format!("key file {} is not usable: {detail}", key_file.display()),
        "put the PEM file with the certificate and its private key there, and check the thumbprint in the spec",
    )
}

/// Explains that admin consent for an app role is missing.
pub fn consent_missing(client_id: &str, role: &str, resource: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ConsentMissing,
        format!("application {client_id} has no admin consent for {role} on {resource}"),
        format!(
            "a Global Administrator or Privileged Role Administrator adds the application permission {role} of {resource} under API permissions of the application and grants admin consent"
        ),
    )
}

// Mail access.

/// Explains that Exchange Online refused EWS because the token lacks `full_access_as_app`.
pub fn ews_missing_full_access(client_id: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::EwsMissingFullAccess,
        format!(
            "EWS of Exchange Online refused application {client_id}: its token has no full_access_as_app role ({detail})"
        ),
        "grant admin consent for the application permission full_access_as_app of Office 365 Exchange Online; consent can take a few minutes to reach Exchange Online",
    )
}

/// Explains that the mailbox was addressed by a UPN that differs from its primary SMTP
/// address.
pub fn ews_upn_differs_from_smtp(upn: &str, smtp: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::EwsUpnDiffersFromSmtp,
        format!("no mailbox answers to {upn}: its primary SMTP address is {smtp}"),
        format!(
            "address the mailbox by its primary SMTP address {smtp}; in scope lists, either form works because siuctl looks both up"
        ),
    )
}

/// Explains that a change had not replicated when the wait ran out.
pub fn not_replicated(what: &str, waited: Duration, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::NotReplicated,
        format!(
            "waiting for replication: {what} still failed after {} ({detail})",
            humantime::format_duration(Duration::from_secs(waited.as_secs()))
        ),
        "Entra ID and Exchange Online can take several minutes to see a new application or consent; run apply again later, or raise --replication-timeout",
    )
}

/// Explains that Exchange Online allows EWS only for listed applications.
pub fn ews_not_allow_listed(client_id: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::EwsNotAllowListed,
        format!(
            "EWS of Exchange Online is blocked for application {client_id}: EWS is off or the application is not on the allow list"
        ),
        format!(
            "an Exchange Online administrator runs: {}, or set appRegistration.mailAccess: graph (or auto) to use Microsoft Graph",
            allow_ews_command(client_id)
        ),
    )
}

/// Explains that Microsoft Graph refused mail access for a cloud mailbox.
pub fn graph_mail_refused(client_id: &str, mailbox: &str, detail: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::GraphMailRefused,
        format!(
            "Microsoft Graph refused application {client_id} access to the mail of {mailbox}: {detail}"
        ),
        "grant admin consent for the Microsoft Graph application permission Mail.ReadWrite; an application access policy of Exchange Online can also exclude the mailbox",
    )
}

/// Explains that no mailbox was found for a check.
pub fn no_sample_mailbox(location: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::NoSampleMailbox,
        format!("no {location} mailbox found to check access with"),
        "add a user with a mailbox to the scope, or check access to one with `siuctl test-impersonation --mailbox ADDRESS`",
    )
}

/// Explains that a group or user in the scope does not exist.
pub fn scope_entry_not_found(field: &str, reference: &str) -> Diagnosis {
    Diagnosis::new(
        FailureKind::ScopeEntryNotFound,
        format!("scope.{field} entry {reference:?} not found in AD"),
        format!("fix or remove the entry in scope.{field}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_assignment_name_is_cut_to_64() {
        let long_scope = "Sent Items Update pilot mailboxes in the EMEA sales offices";
        let name = impersonation_assignment_name("svc-sent-items@contoso.com", Some(long_scope));
        let other = impersonation_assignment_name(
            "svc-sent-items@contoso.com",
            Some("Sent Items Update pilot mailboxes in the EMEA sales offices 2"),
        );

        assert_eq!(name.chars().count(), 64, "{name}");
        assert!(name.starts_with("ApplicationImpersonation-svc-sent-items-Sent Items"));
        assert_ne!(name, other, "cut names stay distinct");
        assert_eq!(
            impersonation_assignment_name("svc-siu@contoso.com", Some("SIU mailboxes")),
            "ApplicationImpersonation-svc-siu-SIU mailboxes"
        );
    }

    /// Asserts that the message names every value and the remedy contains the fix.
    fn assert_names(diagnosis: &Diagnosis, values: &[&str], remedy_words: &[&str]) {
        for value in values {
            assert!(
                diagnosis.message.contains(value),
                "message should name {value:?}: {}",
                diagnosis.message
            );
        }
        for word in remedy_words {
            assert!(
                diagnosis.remedy.contains(word),
                "remedy should contain {word:?}: {}",
                diagnosis.remedy
            );
        }
        // A message starts in lowercase unless its first word is a name such as "AD",
        // "ApplicationImpersonation" or "Microsoft Graph".
        let first_word = diagnosis.message.split(' ').next().unwrap_or_default();
        let is_name = first_word.chars().skip(1).any(char::is_uppercase)
            || ["Microsoft", "Exchange", "Entra"].contains(&first_word);
        assert!(
            is_name || !first_word.starts_with(char::is_uppercase),
            "messages start in lowercase: {}",
            diagnosis.message
        );
    }

    #[test]
    fn account_creation_failures_name_server_rights_and_tls() {
        assert_names(
            &account_server_not_found("svc@x.example", "ldaps://dc1:636", "connection refused"),
            &["svc@x.example", "ldaps://dc1:636", "connection refused"],
            &["onPremises.directory.url"],
        );
        assert_names(
            &account_insufficient_rights(
                "svc@x.example",
                "admin@x.example",
                "OU=Svc,DC=x",
                "insufficientAccessRights (50)",
            ),
            &["svc@x.example", "admin@x.example", "OU=Svc,DC=x"],
            &["delegate", "OU=Svc,DC=x", "account.create: false"],
        );
        assert_names(
            &account_ldaps_required("svc@x.example", "ldap://dc1:389"),
            &["svc@x.example", "ldap://dc1:389"],
            &["ldaps://", "startTls"],
        );
        assert_names(
            &account_container_not_found("svc@x.example", "OU=Nope,DC=x"),
            &["OU=Nope,DC=x"],
            &["account.container"],
        );
    }

    #[test]
    fn account_state_failures_give_commands() {
        assert_names(
            &account_disabled("svc@x.example", "CN=svc,DC=x"),
            &["svc@x.example", "disabled"],
            &["Enable-ADAccount -Identity 'CN=svc,DC=x'"],
        );
        assert_names(
            &account_locked_out("svc@x.example", "CN=svc,DC=x"),
            &["svc@x.example", "locked out"],
            &["Unlock-ADAccount"],
        );
        assert_names(
            &account_password_rejected("svc@x.example", "file `/s/pw`", "wrong password"),
            &["svc@x.example", "file `/s/pw`"],
            &["file `/s/pw`"],
        );
        assert_names(
            &account_ews_sign_in_rejected("svc@x.example", "file `/s/pw`", "HTTP 401"),
            &["EWS rejected", "svc@x.example", "file `/s/pw`", "HTTP 401"],
            &["file `/s/pw`", "onPremises.exchange.auth"],
        );
        assert_names(
            &account_missing("svc@x.example"),
            &["svc@x.example"],
            &["account.create: true"],
        );
        assert_names(
            &account_upn_mismatch("mail@x.example", Some("svc@x.example"), "CN=svc,DC=x"),
            &["mail@x.example", "svc@x.example", "CN=svc,DC=x"],
            &["account.upn to svc@x.example"],
        );
    }

    #[test]
    fn impersonation_failures_print_the_command() {
        let diagnosis = impersonation_not_granted(
            "svc@x.example",
            Some("SIU mailboxes"),
            "New-ManagementRoleAssignment failed",
        );
        assert_names(
            &diagnosis,
            &["svc@x.example"],
            &[
                "New-ManagementRoleAssignment -Name 'ApplicationImpersonation-svc-SIU mailboxes' -Role ApplicationImpersonation -User 'svc@x.example' -CustomRecipientWriteScope 'SIU mailboxes'",
            ],
        );
        assert_names(
            &impersonation_not_working(
                "svc@x.example",
                "alice@x.example",
                Path::new("/etc/siu.yaml"),
                "ErrorImpersonateUserDenied",
            ),
            &[
                "svc@x.example",
                "alice@x.example",
                "ErrorImpersonateUserDenied",
            ],
            &[
                "siuctl test-impersonation -f /etc/siu.yaml --mailbox alice@x.example",
                "reach every Exchange server",
            ],
        );
        assert_names(
            &management_scope_missing("Pilot"),
            &["'Pilot'"],
            &["New-ManagementScope", "account.managementScope"],
        );
    }

    #[test]
    fn application_failures_name_roles_and_credentials() {
        assert_names(
            &application_not_registered("SIU", "1c2d", "Authorization_RequestDenied"),
            &["\"SIU\"", "1c2d", "Authorization_RequestDenied"],
            &[
                "Application.ReadWrite.All",
                "AppRoleAssignment.ReadWrite.All",
                "Global Administrator or Privileged Role Administrator",
            ],
        );
        assert_names(
            &application_ambiguous("SIU", &["a1".into(), "a2".into()]),
            &["SIU", "a1", "a2"],
            &["appRegistration.displayName"],
        );
        assert_names(
            &app_wrong_secret("5d3b", "file `/s/secret`", "AADSTS7000215"),
            &["5d3b", "file `/s/secret`", "AADSTS7000215"],
            &["new client secret", "file `/s/secret`"],
        );
        assert_names(
            &app_certificate_not_registered("5d3b", "3A1F", "AADSTS700027"),
            &["5d3b", "3A1F", "AADSTS700027"],
            &["upload the certificate"],
        );
        assert_names(
            &app_key_too_small("5d3b", Path::new("/s/app.pem"), 1024),
            &["5d3b", "/s/app.pem", "1024"],
            &["2048"],
        );
        assert_names(
            &app_clock_skew("5d3b", "AADSTS700024"),
            &["5d3b", "AADSTS700024"],
            &["clock"],
        );
        assert_names(
            &consent_missing("5d3b", "full_access_as_app", "Office 365 Exchange Online"),
            &["5d3b", "full_access_as_app", "Office 365 Exchange Online"],
            &["admin consent"],
        );
    }

    #[test]
    fn mail_access_failures_name_the_fix() {
        assert_names(
            &ews_missing_full_access("5d3b", "2000008"),
            &["5d3b", "full_access_as_app"],
            &["admin consent"],
        );
        assert_names(
            &ews_upn_differs_from_smtp("hhill@x.example", "heidi.hill@x.example"),
            &["hhill@x.example", "heidi.hill@x.example"],
            &["primary SMTP address heidi.hill@x.example"],
        );
        assert_names(
            &not_replicated("token for 5d3b", Duration::from_secs(90), "AADSTS700016"),
            &["waiting for replication", "token for 5d3b", "1m 30s"],
            &["run apply again later", "--replication-timeout"],
        );
        assert_names(
            &ews_not_allow_listed("5d3b"),
            &["5d3b"],
            &[
                "Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{Add='5d3b'}",
                "mailAccess: graph",
            ],
        );
        assert_names(
            &graph_mail_refused("5d3b", "carol@x.example", "403 ErrorAccessDenied"),
            &["5d3b", "carol@x.example"],
            &["Mail.ReadWrite"],
        );
    }

    #[test]
    fn failure_kind_names_are_camel_case() {
        assert_eq!(
            FailureKind::ImpersonationNotGranted.name(),
            "ImpersonationNotGranted"
        );
    }
}
