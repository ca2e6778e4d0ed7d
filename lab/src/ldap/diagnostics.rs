//! The result codes and diagnostic messages that Active Directory sends with a failed
//! operation. Clients parse them (the Win32 error before the first colon, the `data 52e` of
//! a bind), so the lab sends the same text a domain controller sends.
//!
//! AD's diagnostic text has a fixed shape: the Win32 error in hex, the component
//! (`LdapErr`, `SvcErr`, `AtrErr`, `NameErr`, `UpdErr`, `SecErr`), an internal source
//! location (`DSID-...`), the X.511 problem and the data word. AD ends each message with a NUL
//! byte, and the component messages with a line feed before it; the lab does the same.
//!
//! NOTE: the DSID values and the `v4563` version suffix are representative of Windows Server
//! 2016 to 2022 and differ between builds. Clients match on the Win32 error and the data
//! word instead.

use ldap3_proto::proto::{LdapResult, LdapResultCode};

/// `LdapErr` version suffix of Windows Server 2016 and later.
const VERSION: &str = "v4563";

/// A failed operation as the client receives it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Failure {
    /// The LDAP result code.
    pub code: LdapResultCode,
    /// AD's diagnostic message.
    pub message: String,
    /// The closest existing ancestor, for `noSuchObject`.
    pub matched_dn: String,
}

impl Failure {
    fn new(code: LdapResultCode, message: String) -> Self {
        Self {
            code,
            message,
            matched_dn: String::new(),
        }
    }

    /// Converts the failure into the result of a response.
    pub fn into_result(self) -> LdapResult {
        LdapResult {
            code: self.code,
            matcheddn: self.matched_dn,
            message: self.message,
            referral: Vec::new(),
        }
    }
}

/// Returns a successful result without a message.
pub(super) fn success() -> LdapResult {
    LdapResult {
        code: LdapResultCode::Success,
        matcheddn: String::new(),
        message: String::new(),
        referral: Vec::new(),
    }
}

/// The reason a simple bind failed, as the `data` word of AD's bind diagnostic names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BindRejection {
    /// Unknown account or wrong password (`data 52e`).
    InvalidCredentials,
    /// The account is disabled (`data 533`).
    AccountDisabled,
    /// The password must be changed before the next logon (`data 773`).
    MustChangePassword,
}

/// `invalidCredentials` with AD's diagnostic for the reason. The data word is the Win32
/// error of the logon: ERROR_LOGON_FAILURE (`52e`), ERROR_ACCOUNT_DISABLED (`533`) or
/// ERROR_PASSWORD_MUST_CHANGE (`773`).
pub(super) fn bind_rejected(reason: BindRejection) -> Failure {
    let data = match reason {
        BindRejection::InvalidCredentials => "52e",
        BindRejection::AccountDisabled => "533",
        BindRejection::MustChangePassword => "773",
    };
    Failure::new(
        LdapResultCode::InvalidCredentials,
        format!(
            "80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data {data}, {VERSION}\0"
        ),
    )
}

/// `operationsError` for an anonymous connection that requests anything but the root DSE.
pub(super) fn bind_required() -> Failure {
    Failure::new(
        LdapResultCode::OperationsError,
        format!(
            "000004DC: LdapErr: DSID-0C090A5C, comment: In order to perform this operation a successful bind must be completed on the connection., data 0, {VERSION}\0"
        ),
    )
}

/// `insufficientAccessRights` for a write by an account that is not a Domain Admin.
pub(super) fn insufficient_access() -> Failure {
    Failure::new(
        LdapResultCode::InsufficentAccessRights,
        "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS), data 0\n\0".into(),
    )
}

/// `unwillingToPerform` for a password write over a connection without TLS.
pub(super) fn password_needs_encryption() -> Failure {
    Failure::new(
        LdapResultCode::UnwillingToPerform,
        "0000001F: SvcErr: DSID-031A126C, problem 5003 (WILL_NOT_PERFORM), data 0\n\0".into(),
    )
}

/// `noSuchObject` with the closest existing ancestor.
pub(super) fn no_such_object(best_match: &str) -> Failure {
    Failure {
        code: LdapResultCode::NoSuchObject,
        message: format!(
            "0000208D: NameErr: DSID-0310028D, problem 2001 (NO_OBJECT), data 0, best match of:\n\t'{best_match}'\n\0"
        ),
        matched_dn: best_match.to_string(),
    }
}

/// `invalidDNSyntax` for a DN that does not parse.
pub(super) fn invalid_dn(text: &str) -> Failure {
    Failure::new(
        LdapResultCode::InvalidDNSyntax,
        format!(
            "0000208F: NameErr: DSID-03100225, problem 2006 (BAD_NAME_SYNTAX), data 8350, best match of:\n\t'{text}'\n\0"
        ),
    )
}

/// `entryAlreadyExists` for a DN in use.
pub(super) fn entry_exists() -> Failure {
    Failure::new(
        LdapResultCode::EntryAlreadyExists,
        "00002071: UpdErr: DSID-030503CF, problem 6005 (ENTRY_EXISTS), data 0\n\0".into(),
    )
}

/// `entryAlreadyExists` for a sAMAccountName in use (ERROR_USER_EXISTS).
pub(super) fn account_exists() -> Failure {
    Failure::new(
        LdapResultCode::EntryAlreadyExists,
        "00000524: UpdErr: DSID-031A11FA, problem 6005 (ENTRY_EXISTS), data 0\n\0".into(),
    )
}

/// `entryAlreadyExists` for a member that the group lists already (ERROR_MEMBER_IN_ALIAS).
pub(super) fn already_a_member() -> Failure {
    Failure::new(
        LdapResultCode::EntryAlreadyExists,
        "00000562: UpdErr: DSID-031A11C4, problem 6005 (ENTRY_EXISTS), data 0\n\0".into(),
    )
}

/// `unwillingToPerform` for removing a member that the group does not list
/// (ERROR_MEMBER_NOT_IN_ALIAS).
pub(super) fn not_a_member() -> Failure {
    Failure::new(
        LdapResultCode::UnwillingToPerform,
        "00000561: SvcErr: DSID-031A1021, problem 5003 (WILL_NOT_PERFORM), data 0\n\0".into(),
    )
}

/// `constraintViolation` for a UPN that another account has
/// (ERROR_DS_UPN_VALUE_NOT_UNIQUE_IN_FOREST).
pub(super) fn duplicate_upn() -> Failure {
    attribute_problem(
        LdapResultCode::ConstraintViolation,
        "000021C8",
        "1005 (CONSTRAINT_ATT_TYPE)",
        "90290 (userPrincipalName)",
    )
}

/// `constraintViolation` for a password that fails the domain's password policy.
pub(super) fn password_policy() -> Failure {
    attribute_problem(
        LdapResultCode::ConstraintViolation,
        "0000052D",
        "1005 (CONSTRAINT_ATT_TYPE)",
        "9005a (unicodePwd)",
    )
}

/// `constraintViolation` for a `unicodePwd` value that is not a quoted UTF-16LE string, or a
/// password change whose old password is wrong (ERROR_INVALID_PASSWORD).
pub(super) fn invalid_password_value() -> Failure {
    attribute_problem(
        LdapResultCode::ConstraintViolation,
        "00000056",
        "1005 (CONSTRAINT_ATT_TYPE)",
        "9005a (unicodePwd)",
    )
}

/// `unwillingToPerform` for enabling an account that has no password and may not go
/// without one (ERROR_PASSWORD_RESTRICTION).
pub(super) fn password_required() -> Failure {
    Failure::new(
        LdapResultCode::UnwillingToPerform,
        "0000052D: SvcErr: DSID-031A12D2, problem 5003 (WILL_NOT_PERFORM), data 0\n\0".into(),
    )
}

/// `attributeOrValueExists` for adding a value an attribute has already.
pub(super) fn value_exists(attribute: &str) -> Failure {
    attribute_problem(
        LdapResultCode::AttributeOrValueExists,
        "00002083",
        "1006 (ATT_OR_VALUE_EXISTS)",
        &format!("0 ({attribute})"),
    )
}

/// `noSuchAttribute` for deleting a value that an attribute does not have.
pub(super) fn no_such_value(attribute: &str) -> Failure {
    attribute_problem(
        LdapResultCode::NoSuchAttribute,
        "00002085",
        "1001 (NO_ATTRIBUTE_OR_VAL)",
        &format!("0 ({attribute})"),
    )
}

/// `noSuchAttribute` for an attribute name that is not in the schema.
pub(super) fn undefined_attribute() -> Failure {
    Failure::new(
        LdapResultCode::NoSuchAttribute,
        format!(
            "00000057: LdapErr: DSID-0C090D8A, comment: Error in attribute conversion operation, data 0, {VERSION}\0"
        ),
    )
}

/// `invalidAttributeSyntax` for a value that does not convert to the attribute's syntax.
pub(super) fn invalid_syntax() -> Failure {
    Failure::new(
        LdapResultCode::InvalidAttributeSyntax,
        format!(
            "00000057: LdapErr: DSID-0C090D8A, comment: Error in attribute conversion operation, data 0, {VERSION}\0"
        ),
    )
}

/// `constraintViolation` for a second value of a single-valued attribute
/// (ERROR_DS_SINGLE_VALUE_CONSTRAINT).
pub(super) fn single_value(attribute: &str) -> Failure {
    attribute_problem(
        LdapResultCode::ConstraintViolation,
        "00002081",
        "1005 (CONSTRAINT_ATT_TYPE)",
        &format!("0 ({attribute})"),
    )
}

/// `objectClassViolation` for an attribute the object's class does not allow, a missing
/// object class, or an object class the lab does not model.
pub(super) fn object_class_violation() -> Failure {
    Failure::new(
        LdapResultCode::ObjectClassViolation,
        "00002014: UpdErr: DSID-030F22B2, problem 6002 (OBJ_CLASS_VIOLATION), data 0\n\0".into(),
    )
}

/// `namingViolation` for an RDN attribute that does not fit the object class, or a parent
/// that cannot hold children.
pub(super) fn naming_violation() -> Failure {
    Failure::new(
        LdapResultCode::NamingViolation,
        "00002099: UpdErr: DSID-03050B4D, problem 6001 (NAMING_VIOLATION), data 0\n\0".into(),
    )
}

/// `notAllowedOnNonLeaf` for deleting an entry that has children.
pub(super) fn not_a_leaf() -> Failure {
    Failure::new(
        LdapResultCode::NotAllowedOnNonLeaf,
        "00002015: UpdErr: DSID-031A1240, problem 6003 (CANT_ON_NON_LEAF), data 0\n\0".into(),
    )
}

/// `unwillingToPerform` for a change AD refuses (ERROR_DS_UNWILLING_TO_PERFORM), such as
/// writing a system attribute or deleting a critical system object.
pub(super) fn unwilling() -> Failure {
    Failure::new(
        LdapResultCode::UnwillingToPerform,
        "00002035: SvcErr: DSID-031A1254, problem 5003 (WILL_NOT_PERFORM), data 0\n\0".into(),
    )
}

/// `busy` (ERROR_DS_BUSY), the response to an injected throttling fault.
pub(super) fn busy() -> Failure {
    Failure::new(
        LdapResultCode::Busy,
        "0000200E: SvcErr: DSID-031A0E6A, problem 5001 (BUSY), data 0\n\0".into(),
    )
}

/// `unavailable` (ERROR_DS_UNAVAILABLE), the response to an injected error fault.
pub(super) fn unavailable() -> Failure {
    Failure::new(
        LdapResultCode::Unavailable,
        "0000200F: SvcErr: DSID-031A0E6B, problem 5002 (UNAVAILABLE), data 0\n\0".into(),
    )
}

/// `protocolError` for a control whose value does not decode or a paged-results cookie the
/// connection did not issue.
pub(super) fn control_error() -> Failure {
    Failure::new(
        LdapResultCode::ProtocolError,
        format!(
            "00000057: LdapErr: DSID-0C0909AF, comment: Error processing control, data 0, {VERSION}\0"
        ),
    )
}

/// `unavailableCriticalExtension` for a critical control the lab does not support.
pub(super) fn unsupported_critical_control() -> Failure {
    Failure::new(
        LdapResultCode::UnavailableCriticalExtension,
        format!(
            "00000057: LdapErr: DSID-0C090A4C, comment: Error processing control, data 0, {VERSION}\0"
        ),
    )
}

/// `protocolError` for an extended operation the server does not know.
pub(super) fn unknown_extended_operation() -> Failure {
    Failure::new(
        LdapResultCode::ProtocolError,
        format!(
            "0000203D: LdapErr: DSID-0C090D30, comment: Unknown extended request OID, data 0, {VERSION}\0"
        ),
    )
}

/// `operationsError` without a diagnostic, for a StartTLS on a connection that is encrypted
/// already, or a range retrieval that starts past the last value of a linked attribute.
pub(super) fn operations_error() -> Failure {
    Failure::new(LdapResultCode::OperationsError, String::new())
}

/// `authMethodNotSupported` for a SASL bind.
pub(super) fn auth_method_not_supported() -> Failure {
    Failure::new(
        LdapResultCode::AuthMethodNotSupported,
        format!(
            "00002027: LdapErr: DSID-0C09058A, comment: The server does not support the requested authentication mechanism, data 0, {VERSION}\0"
        ),
    )
}

/// `protocolError` for a bind with an LDAP version other than 2 or 3.
pub(super) fn unsupported_version() -> Failure {
    Failure::new(
        LdapResultCode::ProtocolError,
        format!(
            "00000057: LdapErr: DSID-0C090CF4, comment: Unsupported version, data 0, {VERSION}\0"
        ),
    )
}

/// `sizeLimitExceeded` after the maximum number of entries; AD sends no diagnostic.
pub(super) fn size_limit_exceeded() -> Failure {
    Failure::new(LdapResultCode::SizeLimitExceeded, String::new())
}

/// Builds an attribute-level error:
/// `<win32>: AtrErr: ..., #1:\n\t0: <win32>: ..., problem ..., Att ...`.
fn attribute_problem(code: LdapResultCode, win32: &str, problem: &str, attribute: &str) -> Failure {
    Failure::new(
        code,
        format!(
            "{win32}: AtrErr: DSID-03191083, #1:\n\t0: {win32}: DSID-03191083, problem {problem}, data 0, Att {attribute}\n\0"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_diagnostics_carry_the_data_word() {
        let cases = [
            (BindRejection::InvalidCredentials, "data 52e"),
            (BindRejection::AccountDisabled, "data 533"),
            (BindRejection::MustChangePassword, "data 773"),
        ];
        for (reason, data) in cases {
            let failure = bind_rejected(reason);
            assert_eq!(failure.code, LdapResultCode::InvalidCredentials);
            assert!(
                failure
                    .message
                    .starts_with("80090308: LdapErr: DSID-0C09044E")
            );
            assert!(failure.message.contains(data), "{reason:?}");
            assert!(failure.message.ends_with(", v4563\0"), "{reason:?}");
        }
    }

    #[test]
    fn no_such_object_names_the_best_match() {
        let failure = no_such_object("DC=lab,DC=example");
        assert_eq!(failure.matched_dn, "DC=lab,DC=example");
        assert!(failure.message.contains("'DC=lab,DC=example'"));
    }
}
