//! The directory provider's error type, with LDAP result codes and Active Directory's
//! diagnostic codes decoded into words.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of the directory provider. Each variant names the value it failed on: the server
/// URL, a bind identity, a UPN or a DN.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The server URL is not an `ldap://` or `ldaps://` URL with a host.
    #[error(
        "invalid directory URL {url:?}: {reason}; use ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
    )]
    InvalidUrl { url: String, reason: String },

    /// The bind identity is neither a UPN, a DN nor a down-level `DOMAIN\user` name.
    #[error(
        "invalid bind identity {identity:?}: use a UPN (user@example.com), a DN (CN=...,DC=...) or DOMAIN\\user"
    )]
    InvalidBindIdentity { identity: String },

    /// A user principal name is not of the form `user@domain`, or no account name can be
    /// derived from it.
    #[error("invalid user principal name {upn:?}: {reason}")]
    InvalidUpn { upn: String, reason: String },

    /// The CA file cannot be read or contains no usable certificate.
    #[error(
        "failed to load CA file {}: {reason}; give a PEM file with the CA certificate that issued the directory server's certificate",
        path.display()
    )]
    CaFile { path: PathBuf, reason: String },

    /// The TCP connection, the TLS handshake or StartTLS failed.
    #[error(
        "failed to connect to {url}: {error}; check that the URL is right, that the server listens there and, for TLS, that the CA file issued its certificate"
    )]
    Connect {
        url: String,
        error: Box<ldap3::LdapError>,
    },

    /// The settings have an empty password. AD treats a simple bind with an empty password
    /// as an anonymous bind that succeeds, so every later read would fail instead.
    #[error(
        "no password set for bind identity {identity} on {url}; set the bind password, because AD treats an empty one as an anonymous bind"
    )]
    MissingPassword { url: String, identity: String },

    /// The server rejected the simple bind.
    #[error("bind to {url} as {identity} failed: {status}")]
    Bind {
        url: String,
        identity: String,
        status: LdapStatus,
    },

    /// The server returned an error result code for an operation.
    #[error("{operation} of {target} failed: {status}")]
    Operation {
        operation: Operation,
        target: String,
        status: LdapStatus,
    },

    /// An operation failed below the LDAP layer, for example because the connection closed.
    #[error(
        "{operation} of {target} failed: {error}; check the connection to the directory server"
    )]
    Transport {
        operation: Operation,
        target: String,
        error: Box<ldap3::LdapError>,
    },

    /// An operation received no response within the configured timeout.
    #[error(
        "{operation} of {target} timed out after {}; check that the server is reachable and not overloaded, or raise the timeout",
        humantime::format_duration(*timeout)
    )]
    TimedOut {
        operation: Operation,
        target: String,
        timeout: Duration,
    },

    /// A lookup that must find at most one entry found several.
    #[error("{count} directory entries match {target}: {}; name the entry by its DN instead", dns.join("; "))]
    Ambiguous {
        target: String,
        count: usize,
        dns: Vec<String>,
    },

    /// A password write was requested over a connection without TLS.
    #[error(
        "refusing to set the password of {dn} over unencrypted {url}: Active Directory accepts unicodePwd writes only over an encrypted connection, so use an ldaps:// URL or enable StartTLS"
    )]
    PasswordRequiresTls { dn: String, url: String },

    /// No entry has the DN that an operation names.
    #[error("directory entry {dn} not found; check the DN and that the bind account may read it")]
    EntryNotFound { dn: String },

    /// A directory entry lacks an attribute that the provider needs.
    #[error(
        "directory entry {dn} has no {attribute} attribute; check that the bind account may read it"
    )]
    MissingAttribute { dn: String, attribute: &'static str },

    /// A directory entry contains an attribute value that the provider cannot parse.
    #[error("directory entry {dn} has an invalid {attribute} value {value:?}: {reason}")]
    InvalidAttribute {
        dn: String,
        attribute: &'static str,
        value: String,
        reason: String,
    },

    /// The server returned ranges of a multi-valued attribute that do not continue the
    /// previous one.
    #[error("range retrieval of {attribute} on {dn} failed: {reason}")]
    InvalidRange {
        dn: String,
        attribute: String,
        reason: String,
    },
}

/// LDAP operations, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Connect,
    Bind,
    Unbind,
    Search,
    Add,
    Modify,
    Delete,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Connect => "connection",
            Operation::Bind => "bind",
            Operation::Unbind => "unbind",
            Operation::Search => "search",
            Operation::Add => "add",
            Operation::Modify => "modify",
            Operation::Delete => "delete",
        })
    }
}

/// An LDAP result code with the server's diagnostic message and, for Active Directory and
/// Samba, the decoded diagnostic code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdapStatus {
    /// LDAP result code (RFC 4511, appendix A), for example 49 for invalidCredentials.
    pub code: u32,
    /// The server's diagnostic message, verbatim.
    pub message: String,
    /// Active Directory's code from the diagnostic message, when it has one.
    pub diagnostic: Option<AdDiagnostic>,
}

impl LdapStatus {
    /// Builds a status from an LDAP result, decoding AD's code from its message.
    pub fn from_result(result: &ldap3::LdapResult) -> Self {
        LdapStatus {
            code: result.rc,
            message: result.text.clone(),
            diagnostic: AdDiagnostic::parse(&result.text),
        }
    }

    /// Returns the RFC 4511 name of the result code.
    pub fn code_name(&self) -> &'static str {
        result_code_name(self.code)
    }
}

impl fmt::Display for LdapStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code_name(), self.code)?;
        match self.diagnostic {
            Some(diagnostic) => {
                write!(f, ", {diagnostic}")?;
                if let Some(remedy) = diagnostic.remedy() {
                    write!(f, "; {remedy}")?;
                }
            }
            None if !self.message.is_empty() => write!(f, ", server message {:?}", self.message)?,
            None => {}
        }
        Ok(())
    }
}

/// A diagnostic code from Active Directory's error message. Bind failures carry it as
/// `data 52e` in the message; other operations start the message with an 8-digit Win32
/// error code such as `0000052D:`. Samba 4.17 writes both the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdDiagnostic {
    /// `data 525`: no account has this name.
    UserNotFound,
    /// `data 52e`: the account exists but the password is wrong.
    InvalidCredentials,
    /// `data 530`: logon is not permitted at this time.
    LogonHoursRestricted,
    /// `data 531`: logon is not permitted from this workstation.
    WorkstationRestricted,
    /// `data 532`: the password has expired.
    PasswordExpired,
    /// `data 533`: the account is disabled.
    AccountDisabled,
    /// `data 568`: the account is in too many groups for a security token.
    TooManySecurityIds,
    /// `data 701`: the account has expired.
    AccountExpired,
    /// `data 773`: the password must be changed before the first logon.
    MustChangePassword,
    /// `data 775`: the account is locked out.
    AccountLockedOut,
    /// Win32 error 5: the bind account lacks the rights for the operation.
    AccessDenied,
    /// Win32 error 0x52D: the password does not meet the domain's password policy.
    PasswordRestriction,
    /// Win32 error 0x1F, which AD returns for a password write over an unencrypted
    /// connection, among other failures.
    GeneralFailure,
    /// A code without a description here.
    Other(u32),
}

impl AdDiagnostic {
    /// Extracts the diagnostic code from an AD error message, or returns `None` when the
    /// message has neither a leading Win32 code nor, after a bind failure's leading
    /// `80090308`, a `data XXX` part.
    pub fn parse(message: &str) -> Option<Self> {
        match leading_code(message) {
            // SEC_E_INVALID_TOKEN: the reason is in the `data` part.
            Some(0x8009_0308) | None => data_code(message).map(Self::from_data_code),
            Some(0) => None,
            Some(0x5) => Some(AdDiagnostic::AccessDenied),
            Some(0x1f) => Some(AdDiagnostic::GeneralFailure),
            Some(0x52d) => Some(AdDiagnostic::PasswordRestriction),
            Some(code) => Some(Self::from_data_code(code)),
        }
    }

    fn from_data_code(code: u32) -> Self {
        match code {
            0x525 => AdDiagnostic::UserNotFound,
            0x52e => AdDiagnostic::InvalidCredentials,
            0x530 => AdDiagnostic::LogonHoursRestricted,
            0x531 => AdDiagnostic::WorkstationRestricted,
            0x532 => AdDiagnostic::PasswordExpired,
            0x533 => AdDiagnostic::AccountDisabled,
            0x568 => AdDiagnostic::TooManySecurityIds,
            0x701 => AdDiagnostic::AccountExpired,
            0x773 => AdDiagnostic::MustChangePassword,
            0x775 => AdDiagnostic::AccountLockedOut,
            other => AdDiagnostic::Other(other),
        }
    }

    /// Returns the Win32 error code.
    pub fn code(self) -> u32 {
        match self {
            AdDiagnostic::UserNotFound => 0x525,
            AdDiagnostic::InvalidCredentials => 0x52e,
            AdDiagnostic::LogonHoursRestricted => 0x530,
            AdDiagnostic::WorkstationRestricted => 0x531,
            AdDiagnostic::PasswordExpired => 0x532,
            AdDiagnostic::AccountDisabled => 0x533,
            AdDiagnostic::TooManySecurityIds => 0x568,
            AdDiagnostic::AccountExpired => 0x701,
            AdDiagnostic::MustChangePassword => 0x773,
            AdDiagnostic::AccountLockedOut => 0x775,
            AdDiagnostic::AccessDenied => 0x5,
            AdDiagnostic::PasswordRestriction => 0x52d,
            AdDiagnostic::GeneralFailure => 0x1f,
            AdDiagnostic::Other(code) => code,
        }
    }

    /// Returns what the code means, in words.
    pub fn description(self) -> &'static str {
        match self {
            AdDiagnostic::UserNotFound => "user not found",
            AdDiagnostic::InvalidCredentials => "invalid credentials",
            AdDiagnostic::LogonHoursRestricted => "logon not permitted at this time",
            AdDiagnostic::WorkstationRestricted => "logon not permitted from this workstation",
            AdDiagnostic::PasswordExpired => "password expired",
            AdDiagnostic::AccountDisabled => "account disabled",
            AdDiagnostic::TooManySecurityIds => "account is in too many groups",
            AdDiagnostic::AccountExpired => "account expired",
            AdDiagnostic::MustChangePassword => "password must be changed",
            AdDiagnostic::AccountLockedOut => "account locked out",
            AdDiagnostic::AccessDenied => "access denied",
            AdDiagnostic::PasswordRestriction => {
                "password does not meet the domain's length, complexity or history rules"
            }
            AdDiagnostic::GeneralFailure => "operation not performed",
            AdDiagnostic::Other(_) => "unknown diagnostic code",
        }
    }

    /// Returns what an administrator can do about it, when there is one clear step.
    pub fn remedy(self) -> Option<&'static str> {
        Some(match self {
            AdDiagnostic::UserNotFound | AdDiagnostic::InvalidCredentials => {
                "check the bind identity and password"
            }
            AdDiagnostic::PasswordExpired | AdDiagnostic::MustChangePassword => {
                "set a new password for the account"
            }
            AdDiagnostic::AccountDisabled => "enable the account",
            AdDiagnostic::AccountExpired => "extend the account's expiry date",
            AdDiagnostic::AccountLockedOut => {
                "unlock the account or wait until the lockout duration has passed"
            }
            AdDiagnostic::AccessDenied => "grant the bind account the rights for this change",
            AdDiagnostic::PasswordRestriction => "use a longer or more complex password",
            _ => return None,
        })
    }
}

impl fmt::Display for AdDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (AD code {:x})", self.description(), self.code())
    }
}

/// Parses the 8-digit hexadecimal Win32 code that starts AD's error messages.
fn leading_code(message: &str) -> Option<u32> {
    let (prefix, _) = message.split_once(':')?;
    if prefix.len() != 8 {
        return None;
    }
    u32::from_str_radix(prefix, 16).ok()
}

/// Finds the hexadecimal number after `data ` in an AD bind error message, such as
/// `80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563`.
fn data_code(message: &str) -> Option<u32> {
    let (_, rest) = message.split_once("data ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    u32::from_str_radix(&digits, 16).ok()
}

/// Returns the RFC 4511 name of an LDAP result code.
pub fn result_code_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        16 => "noSuchAttribute",
        17 => "undefinedAttributeType",
        18 => "inappropriateMatching",
        19 => "constraintViolation",
        20 => "attributeOrValueExists",
        21 => "invalidAttributeSyntax",
        32 => "noSuchObject",
        34 => "invalidDNSyntax",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        54 => "loopDetect",
        64 => "namingViolation",
        65 => "objectClassViolation",
        66 => "notAllowedOnNonLeaf",
        67 => "notAllowedOnRDN",
        68 => "entryAlreadyExists",
        69 => "objectClassModsProhibited",
        71 => "affectsMultipleDSAs",
        80 => "other",
        _ => "unknown result code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_parses_bind_data_codes() {
        let cases = [
            ("data 52e", AdDiagnostic::InvalidCredentials),
            ("data 525", AdDiagnostic::UserNotFound),
            ("data 532", AdDiagnostic::PasswordExpired),
            ("data 533", AdDiagnostic::AccountDisabled),
            ("data 701", AdDiagnostic::AccountExpired),
            ("data 773", AdDiagnostic::MustChangePassword),
            ("data 775", AdDiagnostic::AccountLockedOut),
            ("data 999", AdDiagnostic::Other(0x999)),
        ];
        for (data, expected) in cases {
            let message = format!(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, {data}, v1db1"
            );
            assert_eq!(
                AdDiagnostic::parse(&message),
                Some(expected),
                "message {message:?}"
            );
        }
    }

    #[test]
    fn diagnostic_parses_leading_win32_code() {
        let message = "0000052D: Constraint violation - check_password_restrictions: the password is too short";
        assert_eq!(
            AdDiagnostic::parse(message),
            Some(AdDiagnostic::PasswordRestriction)
        );
        let message =
            "00000005: SecErr: DSID-03152857, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0";
        assert_eq!(
            AdDiagnostic::parse(message),
            Some(AdDiagnostic::AccessDenied)
        );
    }

    #[test]
    fn diagnostic_absent_from_plain_messages() {
        assert_eq!(AdDiagnostic::parse(""), None);
        assert_eq!(AdDiagnostic::parse("no such object"), None);
        assert_eq!(AdDiagnostic::parse("00000000: ok"), None);
    }

    #[test]
    fn status_display_names_code_and_meaning() {
        let status = LdapStatus {
            code: 49,
            message: "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563"
                .to_owned(),
            diagnostic: Some(AdDiagnostic::AccountDisabled),
        };
        assert_eq!(
            status.to_string(),
            "invalidCredentials (49), account disabled (AD code 533); enable the account"
        );
    }

    #[test]
    fn status_display_quotes_undecoded_message() {
        let status = LdapStatus {
            code: 32,
            message: "no such entry".to_owned(),
            diagnostic: None,
        };
        assert_eq!(
            status.to_string(),
            "noSuchObject (32), server message \"no such entry\""
        );
    }
}
