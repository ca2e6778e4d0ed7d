//! The slice of AD's schema that the lab serves: attribute names in their canonical spelling
//! (`ldapDisplayName`), how their values compare, and which ones clients may write.
//!
//! MS-ADA1, MS-ADA2 and MS-ADA3 define the full schema.

/// The comparison rule of an attribute's values in filters and sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Syntax {
    /// Unicode text, compared without regard to case.
    Text,
    /// A DN, compared on its normalized form.
    Dn,
    /// A decimal integer.
    Integer,
    /// Octets, compared byte for byte (`objectGUID`).
    Octets,
    /// A binary SID; filters may also give the `S-1-5-...` string form.
    Sid,
    /// GeneralizedTime (`20240131120000.0Z`).
    Time,
    /// `objectCategory`: a DN, or in filters the name of a class whose default category it
    /// is (`person`).
    Category,
}

/// The writers an attribute allows over LDAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Clients may write it; the lab keeps it in the object's fields or extra attributes.
    Write,
    /// Only the directory sets it (`objectSid`, `memberOf`, `whenCreated`).
    System,
    /// Computed when read and returned only when requested by name or with `+`.
    Constructed,
}

/// One attribute of the schema slice.
#[derive(Debug, Clone, Copy)]
pub(super) struct Attribute {
    /// ldapDisplayName.
    pub name: &'static str,
    /// The comparison rule.
    pub syntax: Syntax,
    /// The writers it allows.
    pub access: Access,
    /// Whether the attribute has at most one value.
    pub single: bool,
}

const fn attribute(name: &'static str, syntax: Syntax, access: Access, single: bool) -> Attribute {
    Attribute {
        name,
        syntax,
        access,
        single,
    }
}

use Access::{Constructed, System, Write};
use Syntax::{Category, Dn, Integer, Octets, Sid, Text, Time};

/// The attributes of the slice, sorted by lowercase name for binary search.
const ATTRIBUTES: &[Attribute] = &[
    attribute("accountExpires", Integer, Write, true),
    attribute("badPasswordTime", Integer, System, true),
    attribute("badPwdCount", Integer, System, true),
    attribute("c", Text, Write, true),
    attribute("cn", Text, System, true),
    attribute("co", Text, Write, true),
    attribute("codePage", Integer, System, true),
    attribute("comment", Text, Write, true),
    attribute("company", Text, Write, true),
    attribute("countryCode", Integer, System, true),
    attribute("createTimestamp", Time, Constructed, true),
    attribute("dc", Text, System, true),
    attribute("department", Text, Write, true),
    attribute("description", Text, Write, false),
    attribute("displayName", Text, Write, true),
    attribute("distinguishedName", Dn, System, true),
    attribute("division", Text, Write, true),
    attribute("employeeID", Text, Write, true),
    attribute("employeeNumber", Text, Write, true),
    attribute("employeeType", Text, Write, true),
    attribute("extensionAttribute1", Text, Write, true),
    attribute("extensionAttribute10", Text, Write, true),
    attribute("extensionAttribute11", Text, Write, true),
    attribute("extensionAttribute12", Text, Write, true),
    attribute("extensionAttribute13", Text, Write, true),
    attribute("extensionAttribute14", Text, Write, true),
    attribute("extensionAttribute15", Text, Write, true),
    attribute("extensionAttribute2", Text, Write, true),
    attribute("extensionAttribute3", Text, Write, true),
    attribute("extensionAttribute4", Text, Write, true),
    attribute("extensionAttribute5", Text, Write, true),
    attribute("extensionAttribute6", Text, Write, true),
    attribute("extensionAttribute7", Text, Write, true),
    attribute("extensionAttribute8", Text, Write, true),
    attribute("extensionAttribute9", Text, Write, true),
    attribute("facsimileTelephoneNumber", Text, Write, true),
    attribute("givenName", Text, Write, true),
    attribute("groupType", Integer, Write, true),
    attribute("homePhone", Text, Write, true),
    attribute("info", Text, Write, true),
    attribute("initials", Text, Write, true),
    attribute("instanceType", Integer, System, true),
    attribute("isCriticalSystemObject", Text, System, true),
    attribute("l", Text, Write, true),
    attribute("lastLogoff", Integer, System, true),
    attribute("lastLogon", Integer, System, true),
    attribute("lockoutThreshold", Integer, System, true),
    attribute("lockoutTime", Integer, System, true),
    attribute("logonCount", Integer, System, true),
    attribute("mail", Text, Write, true),
    attribute("mailNickname", Text, Write, true),
    attribute("managedBy", Dn, Write, true),
    attribute("manager", Dn, Write, true),
    attribute("maxPwdAge", Integer, System, true),
    attribute("member", Dn, Write, false),
    attribute("memberOf", Dn, System, false),
    attribute("middleName", Text, Write, true),
    attribute("minPwdAge", Integer, System, true),
    attribute("minPwdLength", Integer, System, true),
    attribute("mobile", Text, Write, true),
    attribute("modifyTimestamp", Time, Constructed, true),
    attribute("msDS-Behavior-Version", Integer, System, true),
    attribute(
        "msDS-User-Account-Control-Computed",
        Integer,
        Constructed,
        true,
    ),
    attribute("msExchRecipientTypeDetails", Integer, System, true),
    attribute("name", Text, System, true),
    attribute("objectCategory", Category, System, true),
    attribute("objectClass", Text, System, false),
    attribute("objectGUID", Octets, System, true),
    attribute("objectSid", Sid, System, true),
    attribute("ou", Text, System, true),
    attribute("physicalDeliveryOfficeName", Text, Write, true),
    attribute("postalCode", Text, Write, true),
    attribute("primaryGroupID", Integer, Write, true),
    attribute("proxyAddresses", Text, Write, false),
    attribute("pwdLastSet", Integer, Write, true),
    attribute("pwdProperties", Integer, System, true),
    attribute("sAMAccountName", Text, Write, true),
    attribute("sAMAccountType", Integer, System, true),
    attribute("sn", Text, Write, true),
    attribute("st", Text, Write, true),
    attribute("streetAddress", Text, Write, true),
    attribute("targetAddress", Text, Write, true),
    attribute("telephoneNumber", Text, Write, true),
    attribute("title", Text, Write, true),
    attribute("tokenGroups", Sid, Constructed, false),
    attribute("unicodePwd", Octets, Write, true),
    attribute("userAccountControl", Integer, Write, true),
    attribute("userPrincipalName", Text, Write, true),
    attribute("whenChanged", Time, System, true),
    attribute("whenCreated", Time, System, true),
    attribute("wWWHomePage", Text, Write, true),
];

/// Looks up an attribute by name, without regard to case. `None` for names outside the
/// schema slice.
pub(super) fn lookup(name: &str) -> Option<&'static Attribute> {
    let lower = name.to_ascii_lowercase();
    ATTRIBUTES
        .binary_search_by(|a| a.name.to_ascii_lowercase().cmp(&lower))
        .ok()
        .map(|i| &ATTRIBUTES[i])
}

/// Returns the canonical spelling of a known attribute name, or the name as given.
pub(super) fn canonical_name(name: &str) -> &str {
    lookup(name).map_or(name, |a| a.name)
}

/// Returns the syntax of an attribute; unknown attributes compare as text.
pub(super) fn syntax_of(name: &str) -> Syntax {
    lookup(name).map_or(Syntax::Text, |a| a.syntax)
}

/// Maps a class name to its `objectCategory` CN as AD does in filters (`user` and `contact` to
/// `Person`), or `None` for names the lab does not serve.
pub(super) fn category_of_class(class: &str) -> Option<&'static str> {
    const CLASSES: &[(&str, &str)] = &[
        ("contact", "Person"),
        ("container", "Container"),
        ("domain", "Domain-DNS"),
        ("domaindns", "Domain-DNS"),
        ("group", "Group"),
        ("organizationalperson", "Person"),
        ("organizationalunit", "Organizational-Unit"),
        ("person", "Person"),
        ("user", "Person"),
    ];
    let lower = class.to_ascii_lowercase();
    CLASSES
        .iter()
        .find(|(name, _)| *name == lower)
        .map(|(_, category)| *category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_table_is_sorted_for_lookup() {
        for pair in ATTRIBUTES.windows(2) {
            assert!(
                pair[0].name.to_ascii_lowercase() < pair[1].name.to_ascii_lowercase(),
                "{} sorts before {}",
                pair[1].name,
                pair[0].name
            );
        }
    }

    #[test]
    fn lookup_ignores_case_and_returns_the_canonical_name() {
        assert_eq!(canonical_name("SAMACCOUNTNAME"), "sAMAccountName");
        assert_eq!(canonical_name("memberof"), "memberOf");
        assert_eq!(canonical_name("x-lab-unknown"), "x-lab-unknown");
        assert_eq!(syntax_of("OBJECTSID"), Syntax::Sid);
    }
}
