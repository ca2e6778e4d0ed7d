//! Rules that adds and modifies share: which attributes each object class takes, value
//! syntax, uniqueness of account names, passwords, and the value-list semantics of LDAP
//! modifications.

use ldap3_proto::proto::LdapModifyType;
use rand::Rng;
use uuid::Uuid;

use super::diagnostics::{self, Failure};
use super::dn;
use super::entries::Entry;
use super::password;
use super::schema::{self, Access, Syntax};
use crate::world::directory::Directory;

/// userAccountControl of an account added without one: NORMAL_ACCOUNT, PASSWD_NOTREQD and
/// ACCOUNTDISABLE (546), as AD creates it.
pub(super) const DEFAULT_USER_ACCOUNT_CONTROL: u32 = 0x222;

/// The object classes the lab can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    User,
    Group,
    Contact,
    OrganizationalUnit,
    Container,
}

impl Class {
    /// Picks the most specific class among `objectClass` values. Other structural classes
    /// (`computer`, `inetOrgPerson`) fail with `objectClassViolation`.
    pub fn from_object_classes(values: &[String]) -> Result<Class, Failure> {
        let has = |name: &str| values.iter().any(|v| v.eq_ignore_ascii_case(name));
        if has("computer") || has("inetOrgPerson") {
            return Err(diagnostics::object_class_violation());
        }
        [
            ("user", Class::User),
            ("group", Class::Group),
            ("contact", Class::Contact),
            ("organizationalUnit", Class::OrganizationalUnit),
            ("container", Class::Container),
        ]
        .into_iter()
        .find(|(name, _)| has(name))
        .map(|(_, class)| class)
        .ok_or_else(diagnostics::object_class_violation)
    }

    /// Returns the class of an existing entry, or `None` for the domain head.
    pub fn of(entry: &Entry<'_>) -> Option<Class> {
        let classes = entry.object_classes();
        let last = *classes.last()?;
        Some(match last {
            "user" => Class::User,
            "group" => Class::Group,
            "contact" => Class::Contact,
            "organizationalUnit" => Class::OrganizationalUnit,
            "container" => Class::Container,
            _ => return None,
        })
    }

    /// Returns the RDN attribute of the class.
    pub fn naming_attribute(self) -> &'static str {
        match self {
            Class::OrganizationalUnit => "ou",
            _ => "cn",
        }
    }

    /// Tells whether clients may write `attribute` (canonical name) on objects of this class.
    pub fn allows(self, attribute: &str) -> bool {
        const ACCOUNT_ONLY: &[&str] = &[
            "sAMAccountName",
            "userPrincipalName",
            "userAccountControl",
            "unicodePwd",
            "pwdLastSet",
            "primaryGroupID",
            "accountExpires",
        ];
        const GROUP: &[&str] = &[
            "sAMAccountName",
            "groupType",
            "member",
            "mail",
            "proxyAddresses",
            "displayName",
            "description",
            "info",
            "managedBy",
        ];
        let writable = schema::lookup(attribute).is_some_and(|a| a.access == Access::Write);
        if !writable {
            return false;
        }
        match self {
            Class::User => !matches!(attribute, "groupType" | "member" | "managedBy"),
            Class::Contact => {
                !ACCOUNT_ONLY.contains(&attribute)
                    && !matches!(attribute, "groupType" | "member" | "managedBy")
            }
            Class::Group => {
                GROUP.contains(&attribute) || attribute.starts_with("extensionAttribute")
            }
            Class::OrganizationalUnit | Class::Container => {
                matches!(attribute, "description" | "managedBy")
            }
        }
    }
}

/// Converts the values to text, with AD's attribute conversion error for values that are not
/// UTF-8.
pub(super) fn texts(values: &[Vec<u8>]) -> Result<Vec<String>, Failure> {
    values
        .iter()
        .map(|v| String::from_utf8(v.clone()).map_err(|_| diagnostics::invalid_syntax()))
        .collect()
}

/// Returns the one value of a single-valued attribute.
pub(super) fn single(attribute: &str, values: &[String]) -> Result<String, Failure> {
    match values {
        [value] => Ok(value.clone()),
        [] => Err(diagnostics::no_such_value(attribute)),
        _ => Err(diagnostics::single_value(attribute)),
    }
}

/// Parses the one value of a single-valued integer attribute.
pub(super) fn single_integer(attribute: &str, values: &[String]) -> Result<i64, Failure> {
    single(attribute, values)?
        .trim()
        .parse()
        .map_err(|_| diagnostics::invalid_syntax())
}

/// Checks and decodes a new password written to `unicodePwd`: only over an encrypted
/// connection, as a quoted UTF-16LE string, meeting the complexity rule.
pub(super) fn new_password(
    value: &[u8],
    encrypted: bool,
    sam: &str,
    display_name: &str,
) -> Result<String, Failure> {
    if !encrypted {
        return Err(diagnostics::password_needs_encryption());
    }
    let password =
        password::decode_unicode_pwd(value).ok_or_else(diagnostics::invalid_password_value)?;
    if !password::meets_complexity(&password, sam, display_name) {
        return Err(diagnostics::password_policy());
    }
    Ok(password)
}

/// Finds the object a `member` value names, or fails with `noSuchObject`.
pub(super) fn resolve_member(directory: &Directory, value: &str) -> Result<Uuid, Failure> {
    let parsed = dn::Dn::parse(value).map_err(|()| diagnostics::invalid_dn(value))?;
    Entry::find(directory, &parsed.key())
        .and_then(|entry| entry.object_id())
        .ok_or_else(|| diagnostics::no_such_object(&super::entries::best_match(directory, &parsed)))
}

/// Fails with `entryAlreadyExists` when another object has this sAMAccountName.
pub(super) fn check_sam_free(
    directory: &Directory,
    sam: &str,
    except: Option<Uuid>,
) -> Result<(), Failure> {
    match directory.by_sam(sam) {
        Some(owner) if Some(owner) != except => Err(diagnostics::account_exists()),
        _ => Ok(()),
    }
}

/// Fails with AD's UPN uniqueness error when another account has this UPN.
pub(super) fn check_upn_free(
    directory: &Directory,
    upn: &str,
    except: Option<Uuid>,
) -> Result<(), Failure> {
    match directory.user_by_upn(upn) {
        Some(owner) if Some(owner.id) != except => Err(diagnostics::duplicate_upn()),
        _ => Ok(()),
    }
}

/// Generates a sAMAccountName in the form AD gives an account added without one: `$`,
/// six characters, `-` and twelve characters, such as `$K31000-H1T8VH6VIFK3`.
pub(super) fn generated_sam_account_name() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    };
    format!("${}-{}", pick(6), pick(12))
}

/// Applies one modification to the values of an attribute and returns the new values.
/// Text values compare without regard to case and DN values on their normalized form, as AD
/// compares them. With `permissive` (LDAP_SERVER_PERMISSIVE_MODIFY_OID) adding a present
/// value and deleting an absent one are not errors.
pub(super) fn apply_values(
    attribute: &str,
    current: &[String],
    operation: &LdapModifyType,
    values: &[String],
    permissive: bool,
) -> Result<Vec<String>, Failure> {
    let key = |value: &str| match schema::syntax_of(attribute) {
        Syntax::Dn => dn::key_of(value),
        _ => value.to_lowercase(),
    };
    let mut result: Vec<String> = current.to_vec();
    match operation {
        LdapModifyType::Add => {
            if values.is_empty() {
                return Err(diagnostics::invalid_syntax());
            }
            for value in values {
                if result.iter().any(|v| key(v) == key(value)) {
                    if permissive {
                        continue;
                    }
                    return Err(diagnostics::value_exists(attribute));
                }
                result.push(value.clone());
            }
        }
        LdapModifyType::Delete if values.is_empty() => {
            if result.is_empty() && !permissive {
                return Err(diagnostics::no_such_value(attribute));
            }
            result.clear();
        }
        LdapModifyType::Delete => {
            for value in values {
                let before = result.len();
                result.retain(|v| key(v) != key(value));
                if result.len() == before && !permissive {
                    return Err(diagnostics::no_such_value(attribute));
                }
            }
        }
        LdapModifyType::Replace => result = values.to_vec(),
        LdapModifyType::Increment => {
            let step: i64 = single(attribute, values)?
                .trim()
                .parse()
                .map_err(|_| diagnostics::invalid_syntax())?;
            let now: i64 = single(attribute, current)?
                .trim()
                .parse()
                .map_err(|_| diagnostics::invalid_syntax())?;
            result = vec![(now + step).to_string()];
        }
    }
    if schema::lookup(attribute).is_some_and(|a| a.single) && result.len() > 1 {
        return Err(diagnostics::single_value(attribute));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn value_lists_follow_ldap_modify_rules() {
        let current = strings(&["SMTP:a@lab.example", "smtp:b@lab.example"]);
        let added = apply_values(
            "proxyAddresses",
            &current,
            &LdapModifyType::Add,
            &strings(&["smtp:c@lab.example"]),
            false,
        )
        .expect("add");
        assert_eq!(added.len(), 3);

        let duplicate = apply_values(
            "proxyAddresses",
            &current,
            &LdapModifyType::Add,
            &strings(&["SMTP:B@LAB.EXAMPLE"]),
            false,
        );
        assert!(
            duplicate.is_err(),
            "text values compare without regard to case"
        );
        let missing = apply_values(
            "proxyAddresses",
            &current,
            &LdapModifyType::Delete,
            &strings(&["smtp:x@lab.example"]),
            false,
        );
        assert!(missing.is_err());

        let permissive = apply_values(
            "proxyAddresses",
            &current,
            &LdapModifyType::Delete,
            &strings(&["smtp:x@lab.example"]),
            true,
        )
        .expect("permissive delete");
        assert_eq!(permissive, current);

        let single = apply_values(
            "mail",
            &strings(&["a@lab.example"]),
            &LdapModifyType::Add,
            &strings(&["b@lab.example"]),
            false,
        );
        assert!(single.is_err(), "mail holds one value");
    }

    #[test]
    fn classes_limit_the_writable_attributes() {
        assert!(Class::User.allows("unicodePwd"));
        assert!(!Class::User.allows("member"));
        assert!(!Class::User.allows("objectSid"));
        assert!(Class::Group.allows("member"));
        assert!(!Class::Group.allows("unicodePwd"));
        assert!(!Class::Contact.allows("sAMAccountName"));
        assert!(Class::OrganizationalUnit.allows("description"));
        assert_eq!(
            Class::from_object_classes(&strings(&["top", "person", "user"])),
            Ok(Class::User)
        );
        assert!(Class::from_object_classes(&strings(&["computer", "user"])).is_err());
    }

    #[test]
    fn generated_account_names_have_ad_shape() {
        let name = generated_sam_account_name();
        assert_eq!(name.len(), 20);
        assert!(name.starts_with('$'));
        assert_eq!(name.as_bytes()[7], b'-');
    }
}
