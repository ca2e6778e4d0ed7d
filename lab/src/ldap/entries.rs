//! World objects as LDAP entries: the domain head, containers and organizational units,
//! users, groups and contacts, with the attributes AD gives each class.
//!
//! Values are computed when asked for, so a filter that reads two attributes of 3,000
//! objects never builds the `member` list of a large group. Binary attributes carry AD's
//! encodings: `objectGUID` is the GUID in its little-endian field layout and `objectSid` the
//! binary SID (revision, count, authority, little-endian sub-authorities).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use super::dn;
use super::schema;
use crate::fixture::{GroupKind, MailboxLocation};
use crate::world::directory::{Contact, Directory, Group, User, normalize_dn};

/// `msExchRecipientTypeDetails` of a mailbox on the on-premises server (UserMailbox).
///
/// The values are listed in <https://blog.cpolydorou.net/2016/11/exchange-server-recipient-type-values.html>;
/// RemoteUserMailbox (0x80000000) is the one a hybrid server sets on a user moved online.
const RECIPIENT_USER_MAILBOX: i64 = 0x1;
/// `msExchRecipientTypeDetails` of a mailbox in Exchange Online (RemoteUserMailbox).
const RECIPIENT_REMOTE_USER_MAILBOX: i64 = 0x8000_0000;
/// `msExchRecipientTypeDetails` of a mail-enabled distribution group.
const RECIPIENT_MAIL_UNIVERSAL_DISTRIBUTION_GROUP: i64 = 0x100;
/// `msExchRecipientTypeDetails` of a mail-enabled security group.
const RECIPIENT_MAIL_UNIVERSAL_SECURITY_GROUP: i64 = 0x400;

/// The Win32 `sAMAccountType` of a normal user account (SAM_NORMAL_USER_ACCOUNT).
const SAM_NORMAL_USER_ACCOUNT: i64 = 0x3000_0000;
/// `groupType` flag of a domain-local group.
const GROUP_TYPE_DOMAIN_LOCAL: i64 = 0x4;
/// `groupType` flag of a security group (the sign bit).
const GROUP_TYPE_SECURITY: i64 = 0x8000_0000;
/// `msDS-User-Account-Control-Computed` flag of an expired password (UF_PASSWORD_EXPIRED).
const UF_PASSWORD_EXPIRED: u32 = 0x80_0000;
/// `accountExpires` of an account that never expires.
const NEVER: &str = "9223372036854775807";

/// Identifies an entry across requests, for paged results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ObjectId {
    /// The domain head, `DC=lab,DC=example`.
    Domain,
    /// A container or organizational unit, by its stored DN.
    Container(String),
    /// A user, group or contact.
    Object(Uuid),
}

#[derive(Debug, Clone, Copy)]
enum Object<'w> {
    Domain,
    Container(&'w str),
    User(&'w User),
    Group(&'w Group),
    Contact(&'w Contact),
}

/// One entry of the directory, borrowed from the world.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry<'w> {
    directory: &'w Directory,
    object: Object<'w>,
}

impl<'w> Entry<'w> {
    /// Looks up the entry with this ID, if it still exists.
    pub fn get(directory: &'w Directory, id: &ObjectId) -> Option<Self> {
        let object = match id {
            ObjectId::Domain => Object::Domain,
            ObjectId::Container(stored) => Object::Container(
                directory
                    .containers
                    .get(stored)
                    .map(String::as_str)
                    .filter(|c| **c != directory.base_dn)?,
            ),
            ObjectId::Object(id) => {
                if let Some(user) = directory.users.get(id) {
                    Object::User(user)
                } else if let Some(group) = directory.groups.get(id) {
                    Object::Group(group)
                } else {
                    Object::Contact(directory.contacts.get(id)?)
                }
            }
        };
        Some(Entry { directory, object })
    }

    /// Finds the entry whose DN has this comparison key (see [`dn::key_of`]).
    pub fn find(directory: &'w Directory, key: &str) -> Option<Self> {
        if key == normalize_dn(&directory.base_dn) {
            return Some(Entry {
                directory,
                object: Object::Domain,
            });
        }
        if let Some(id) = directory.by_dn(key) {
            return Entry::get(directory, &ObjectId::Object(id));
        }
        directory
            .containers
            .iter()
            .find(|c| normalize_dn(c) == key)
            .and_then(|c| Entry::get(directory, &ObjectId::Container(c.clone())))
    }

    /// Returns the entry's ID.
    pub fn id(&self) -> ObjectId {
        match self.object {
            Object::Domain => ObjectId::Domain,
            Object::Container(dn) => ObjectId::Container(dn.to_string()),
            Object::User(user) => ObjectId::Object(user.id),
            Object::Group(group) => ObjectId::Object(group.id),
            Object::Contact(contact) => ObjectId::Object(contact.id),
        }
    }

    /// Returns the object ID of a user, group or contact.
    pub fn object_id(&self) -> Option<Uuid> {
        match self.id() {
            ObjectId::Object(id) => Some(id),
            _ => None,
        }
    }

    /// Returns the user behind the entry.
    pub fn user(&self) -> Option<&'w User> {
        match self.object {
            Object::User(user) => Some(user),
            _ => None,
        }
    }

    /// Returns the group behind the entry.
    pub fn group(&self) -> Option<&'w Group> {
        match self.object {
            Object::Group(group) => Some(group),
            _ => None,
        }
    }

    /// distinguishedName as stored.
    pub fn dn(&self) -> &'w str {
        match self.object {
            Object::Domain => &self.directory.base_dn,
            Object::Container(dn) => dn,
            Object::User(user) => &user.dn,
            Object::Group(group) => &group.dn,
            Object::Contact(contact) => &contact.dn,
        }
    }

    /// whenCreated, for the order of search results; `None` for the domain head and
    /// containers, which sort first.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        match self.object {
            Object::Domain | Object::Container(_) => None,
            Object::User(user) => Some(user.created),
            Object::Group(group) => Some(group.created),
            Object::Contact(contact) => Some(contact.created),
        }
    }

    /// Returns the comparison key of the DN.
    pub fn key(&self) -> String {
        normalize_dn(self.dn())
    }

    /// Tells whether the entry can contain child entries: the domain head, containers and
    /// organizational units.
    pub fn is_container(&self) -> bool {
        matches!(self.object, Object::Domain | Object::Container(_))
    }

    /// Tells whether AD marks the entry `isCriticalSystemObject`, so that it cannot be deleted: the
    /// domain head, the default containers and the built-in groups.
    pub fn is_critical(&self) -> bool {
        match self.object {
            Object::Domain => true,
            Object::Container(dn) => dn::key_of(dn).starts_with("cn="),
            Object::Group(group) => group.rid < 1000,
            Object::User(_) | Object::Contact(_) => false,
        }
    }

    /// objectClass values, most general first.
    pub fn object_classes(&self) -> &'static [&'static str] {
        match self.object {
            Object::Domain => &["top", "domain", "domainDNS"],
            Object::Container(_) if self.is_organizational_unit() => &["top", "organizationalUnit"],
            Object::Container(_) => &["top", "container"],
            Object::User(_) => &["top", "person", "organizationalPerson", "user"],
            Object::Group(_) => &["top", "group"],
            Object::Contact(_) => &["top", "person", "organizationalPerson", "contact"],
        }
    }

    fn is_organizational_unit(&self) -> bool {
        matches!(self.object, Object::Container(dn) if dn::key_of(dn).starts_with("ou="))
    }

    /// Returns the CN of the entry's `objectCategory` below the schema container.
    pub fn category(&self) -> &'static str {
        match self.object {
            Object::Domain => "Domain-DNS",
            Object::Container(_) if self.is_organizational_unit() => "Organizational-Unit",
            Object::Container(_) => "Container",
            Object::User(_) | Object::Contact(_) => "Person",
            Object::Group(_) => "Group",
        }
    }

    /// Builds the DN of a category in this directory's schema container.
    pub fn category_dn(directory: &Directory, category: &str) -> String {
        format!(
            "CN={category},CN=Schema,CN=Configuration,{}",
            directory.base_dn
        )
    }

    /// Names of the attributes a `*` request returns, in AD's order, then the extra
    /// attributes. Constructed attributes are left out, as AD leaves them out.
    pub fn attribute_names(&self) -> Vec<String> {
        let fixed: &[&str] = match self.object {
            Object::Domain => &[
                "objectClass",
                "distinguishedName",
                "instanceType",
                "whenCreated",
                "whenChanged",
                "maxPwdAge",
                "minPwdAge",
                "minPwdLength",
                "pwdProperties",
                "lockoutThreshold",
                "name",
                "objectGUID",
                "objectSid",
                "objectCategory",
                "msDS-Behavior-Version",
                "dc",
            ],
            Object::Container(_) if self.is_organizational_unit() => &[
                "objectClass",
                "ou",
                "distinguishedName",
                "instanceType",
                "name",
                "objectGUID",
                "objectCategory",
            ],
            Object::Container(_) => &[
                "objectClass",
                "cn",
                "distinguishedName",
                "instanceType",
                "name",
                "objectGUID",
                "objectCategory",
            ],
            Object::User(_) => &[
                "objectClass",
                "cn",
                "displayName",
                "distinguishedName",
                "instanceType",
                "whenCreated",
                "whenChanged",
                "memberOf",
                "name",
                "objectGUID",
                "userAccountControl",
                "badPwdCount",
                "codePage",
                "countryCode",
                "badPasswordTime",
                "lastLogoff",
                "lastLogon",
                "pwdLastSet",
                "primaryGroupID",
                "objectSid",
                "accountExpires",
                "logonCount",
                "sAMAccountName",
                "sAMAccountType",
                "userPrincipalName",
                "objectCategory",
                "mail",
                "proxyAddresses",
                "mailNickname",
                "msExchRecipientTypeDetails",
                "targetAddress",
            ],
            Object::Group(_) => &[
                "objectClass",
                "cn",
                "member",
                "distinguishedName",
                "instanceType",
                "whenCreated",
                "whenChanged",
                "memberOf",
                "name",
                "objectGUID",
                "objectSid",
                "sAMAccountName",
                "sAMAccountType",
                "groupType",
                "objectCategory",
                "isCriticalSystemObject",
                "mail",
                "proxyAddresses",
            ],
            Object::Contact(_) => &[
                "objectClass",
                "cn",
                "displayName",
                "distinguishedName",
                "instanceType",
                "whenCreated",
                "whenChanged",
                "memberOf",
                "name",
                "objectGUID",
                "objectCategory",
                "mail",
                "proxyAddresses",
            ],
        };
        let mut names: Vec<String> = fixed.iter().map(|n| n.to_string()).collect();
        if let Some(extra) = self.extra() {
            names.extend(
                extra
                    .keys()
                    .filter(|name| !fixed.iter().any(|f| f.eq_ignore_ascii_case(name)))
                    .cloned(),
            );
        }
        names
    }

    /// Names of the constructed attributes, which `+` returns.
    pub fn constructed_names(&self) -> &'static [&'static str] {
        match self.object {
            Object::User(_) => &[
                "createTimestamp",
                "modifyTimestamp",
                "msDS-User-Account-Control-Computed",
                "tokenGroups",
            ],
            Object::Group(_) => &["createTimestamp", "modifyTimestamp", "tokenGroups"],
            Object::Contact(_) | Object::Domain => &["createTimestamp", "modifyTimestamp"],
            Object::Container(_) => &[],
        }
    }

    /// Attributes clients wrote that have no field of their own.
    pub fn extra(&self) -> Option<&'w BTreeMap<String, Vec<String>>> {
        self.directory.extra_attributes.get(&self.key())
    }

    /// Computes the values of an attribute, matched without regard to case, or none when the
    /// entry lacks it. Constructed attributes are included, so callers decide when to return them.
    pub fn values(&self, attribute: &str) -> Vec<Vec<u8>> {
        let name = schema::canonical_name(attribute);
        if let Some(values) = self.fixed_values(name) {
            return values;
        }
        self.extra()
            .and_then(|extra| {
                extra
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.iter().map(|s| s.clone().into_bytes()).collect())
            })
            .unwrap_or_default()
    }

    /// Values of the attributes each class defines itself; `None` for the others.
    fn fixed_values(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        let directory = self.directory;
        let text = |value: &str| vec![value.as_bytes().to_vec()];
        let number = |value: i64| vec![value.to_string().into_bytes()];
        let common = match name {
            "objectClass" => Some(
                self.object_classes()
                    .iter()
                    .map(|c| c.as_bytes().to_vec())
                    .collect(),
            ),
            "distinguishedName" => Some(text(self.dn())),
            "objectCategory" => Some(text(&Entry::category_dn(directory, self.category()))),
            "instanceType" => Some(number(if matches!(self.object, Object::Domain) {
                5
            } else {
                4
            })),
            "objectGUID" => Some(vec![self.guid().to_bytes_le().to_vec()]),
            "name" => Some(text(&self.rdn_value())),
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match self.object {
            Object::Domain => domain_values(directory, name),
            Object::Container(_) => match name {
                "cn" if !self.is_organizational_unit() => Some(text(&self.rdn_value())),
                "ou" if self.is_organizational_unit() => Some(text(&self.rdn_value())),
                _ => None,
            },
            Object::User(user) => self.user_values(user, name),
            Object::Group(group) => self.group_values(group, name),
            Object::Contact(contact) => self.contact_values(contact, name),
        }
    }

    fn user_values(&self, user: &User, name: &str) -> Option<Vec<Vec<u8>>> {
        let directory = self.directory;
        let text = |value: &str| vec![value.as_bytes().to_vec()];
        let number = |value: i64| vec![value.to_string().into_bytes()];
        let optional =
            |value: &Option<String>| value.iter().map(|v| v.as_bytes().to_vec()).collect();
        // An account added over LDAP without a UPN or display name has none, and the world
        // keeps an empty string for it.
        let unless_empty = |value: &str| {
            (!value.is_empty())
                .then(|| value.as_bytes().to_vec())
                .into_iter()
                .collect()
        };
        Some(match name {
            "cn" => text(&user.cn),
            "displayName" => unless_empty(&user.display_name),
            "sAMAccountName" => text(&user.sam),
            "sAMAccountType" => number(SAM_NORMAL_USER_ACCOUNT),
            "userPrincipalName" => unless_empty(&user.upn),
            "mail" => optional(&user.mail),
            "title" => optional(&user.title),
            "proxyAddresses" => strings(&user.proxy_addresses),
            "userAccountControl" => number(i64::from(user.uac)),
            "pwdLastSet" => number(user.pwd_last_set),
            "primaryGroupID" => number(i64::from(user.primary_group_rid)),
            "objectSid" => vec![sid_bytes(&directory.sid_of(user.rid))?],
            "memberOf" => self.member_of(user.id),
            "whenCreated" | "whenChanged" | "createTimestamp" | "modifyTimestamp" => {
                text(&generalized_time(user.created))
            }
            "accountExpires" => text(NEVER),
            "badPwdCount" | "codePage" | "countryCode" | "badPasswordTime" | "lastLogoff"
            | "lastLogon" | "logonCount" => number(0),
            "msDS-User-Account-Control-Computed" => {
                let expired = if user.pwd_last_set == 0 {
                    UF_PASSWORD_EXPIRED
                } else {
                    0
                };
                number(i64::from(expired))
            }
            "tokenGroups" => self.token_groups(user.id, Some(user.primary_group_rid)),
            // Exchange's attributes: what a hybrid organization's AD says about each mailbox.
            "msExchRecipientTypeDetails" => match user.mailbox {
                MailboxLocation::OnPremises => number(RECIPIENT_USER_MAILBOX),
                MailboxLocation::Cloud => number(RECIPIENT_REMOTE_USER_MAILBOX),
                MailboxLocation::None => Vec::new(),
            },
            "mailNickname" if user.mailbox != MailboxLocation::None => text(&user.sam),
            "targetAddress"
                if user.mailbox == MailboxLocation::Cloud
                    && !directory.cloud_routing_domain.is_empty() =>
            {
                text(&format!(
                    "SMTP:{}@{}",
                    user.sam.to_ascii_lowercase(),
                    directory.cloud_routing_domain
                ))
            }
            _ => return None,
        })
    }

    fn group_values(&self, group: &Group, name: &str) -> Option<Vec<Vec<u8>>> {
        let directory = self.directory;
        let text = |value: &str| vec![value.as_bytes().to_vec()];
        let number = |value: i64| vec![value.to_string().into_bytes()];
        Some(match name {
            "cn" => text(&group.cn),
            "sAMAccountName" => text(&group.sam),
            "sAMAccountType" => number(sam_account_type(self.group_type())),
            "groupType" => number(self.group_type()),
            "objectSid" => vec![sid_bytes(&directory.sid_of(group.rid))?],
            "member" => group
                .members
                .iter()
                .filter_map(|id| directory.dn_of(*id))
                .map(|dn| dn.as_bytes().to_vec())
                .collect(),
            "memberOf" => self.member_of(group.id),
            "mail" => group.mail.iter().map(|m| m.as_bytes().to_vec()).collect(),
            "msExchRecipientTypeDetails" if group.mail.is_some() => match group.kind {
                GroupKind::Distribution => number(RECIPIENT_MAIL_UNIVERSAL_DISTRIBUTION_GROUP),
                GroupKind::Security => number(RECIPIENT_MAIL_UNIVERSAL_SECURITY_GROUP),
            },
            "proxyAddresses" => match self.extra_values("proxyAddresses") {
                Some(values) => values,
                None => group
                    .mail
                    .iter()
                    .map(|m| format!("SMTP:{m}").into_bytes())
                    .collect(),
            },
            "isCriticalSystemObject" if group.rid < 1000 => text("TRUE"),
            "whenCreated" | "whenChanged" | "createTimestamp" | "modifyTimestamp" => {
                text(&generalized_time(group.created))
            }
            "tokenGroups" => self.token_groups(group.id, None),
            _ => return None,
        })
    }

    fn contact_values(&self, contact: &Contact, name: &str) -> Option<Vec<Vec<u8>>> {
        let text = |value: &str| vec![value.as_bytes().to_vec()];
        let optional =
            |value: &Option<String>| value.iter().map(|v| v.as_bytes().to_vec()).collect();
        Some(match name {
            "cn" => text(&contact.cn),
            "displayName" => optional(&contact.display_name),
            "mail" => optional(&contact.mail),
            "proxyAddresses" => strings(&contact.proxy_addresses),
            "memberOf" => self.member_of(contact.id),
            "whenCreated" | "whenChanged" | "createTimestamp" | "modifyTimestamp" => {
                text(&generalized_time(contact.created))
            }
            _ => return None,
        })
    }

    /// `groupType`: the value a client wrote, or the one the group's kind implies.
    pub fn group_type(&self) -> i64 {
        let written = self
            .extra_values("groupType")
            .and_then(|values| values.into_iter().next())
            .and_then(|value| String::from_utf8(value).ok())
            .and_then(|value| value.trim().parse::<i64>().ok());
        match (written, self.object) {
            (Some(value), _) => value,
            (None, Object::Group(group)) => i64::from(group.group_type()),
            (None, _) => 0,
        }
    }

    fn extra_values(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        self.extra()?
            .get(name)
            .map(|values| values.iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    fn member_of(&self, id: Uuid) -> Vec<Vec<u8>> {
        self.directory
            .member_of(id)
            .iter()
            .filter_map(|group| self.directory.dn_of(*group))
            .map(|dn| dn.as_bytes().to_vec())
            .collect()
    }

    /// SIDs of every security group the object belongs to, directly, through nesting or as
    /// its primary group: AD's `tokenGroups`.
    fn token_groups(&self, id: Uuid, primary_group_rid: Option<u32>) -> Vec<Vec<u8>> {
        let directory = self.directory;
        let mut groups = directory.transitive_member_of(id);
        if let Some(primary) = primary_group_rid.and_then(|rid| directory.group_by_rid(rid)) {
            groups.push(primary.id);
            groups.extend(directory.transitive_member_of(primary.id));
        }
        groups.sort();
        groups.dedup();
        groups
            .iter()
            .filter_map(|g| directory.groups.get(g))
            .filter(|g| g.kind == GroupKind::Security)
            .filter_map(|g| sid_bytes(&directory.sid_of(g.rid)))
            .collect()
    }

    /// Returns the GUID: the object ID of users, groups and contacts, or one derived from the
    /// DN for the domain head and containers, which have no ID in the world.
    fn guid(&self) -> Uuid {
        match self.object {
            Object::User(user) => user.id,
            Object::Group(group) => group.id,
            Object::Contact(contact) => contact.id,
            Object::Domain | Object::Container(_) => {
                let digest = Sha1::digest(self.key().as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest[..16]);
                uuid::Builder::from_random_bytes(bytes).into_uuid()
            }
        }
    }

    /// The value of the entry's RDN, which AD also returns as `name`.
    fn rdn_value(&self) -> String {
        dn::Dn::parse(self.dn())
            .ok()
            .and_then(|dn| dn.rdn().map(|rdn| rdn.value.clone()))
            .unwrap_or_default()
    }
}

fn domain_values(directory: &Directory, name: &str) -> Option<Vec<Vec<u8>>> {
    let text = |value: &str| vec![value.as_bytes().to_vec()];
    Some(match name {
        "dc" => text(directory.domain.split('.').next().unwrap_or_default()),
        "objectSid" => vec![sid_bytes(&directory.domain_sid)?],
        // The defaults of a new domain: 42 days, 1 day, 7 characters, complexity on, no
        // lockout, functional level Windows Server 2016.
        "maxPwdAge" => text("-36288000000000"),
        "minPwdAge" => text("-864000000000"),
        "minPwdLength" => text("7"),
        "pwdProperties" => text("1"),
        "lockoutThreshold" => text("0"),
        "msDS-Behavior-Version" => text("7"),
        _ => return None,
    })
}

fn strings(values: &[String]) -> Vec<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

/// `sAMAccountType` of a group with this `groupType`.
fn sam_account_type(group_type: i64) -> i64 {
    const SAM_GROUP_OBJECT: i64 = 0x1000_0000;
    const SAM_NON_SECURITY_GROUP_OBJECT: i64 = 0x1000_0001;
    const SAM_ALIAS_OBJECT: i64 = 0x2000_0000;
    const SAM_NON_SECURITY_ALIAS_OBJECT: i64 = 0x2000_0001;
    let security = group_type & GROUP_TYPE_SECURITY != 0;
    match (group_type & GROUP_TYPE_DOMAIN_LOCAL != 0, security) {
        (true, true) => SAM_ALIAS_OBJECT,
        (true, false) => SAM_NON_SECURITY_ALIAS_OBJECT,
        (false, true) => SAM_GROUP_OBJECT,
        (false, false) => SAM_NON_SECURITY_GROUP_OBJECT,
    }
}

/// Every entry of the directory: the domain head, the containers, then users, groups and
/// contacts in the order they were created, as AD returns them.
pub(super) fn all(directory: &Directory) -> Vec<ObjectId> {
    let mut ids = vec![ObjectId::Domain];
    ids.extend(
        directory
            .containers
            .iter()
            .filter(|c| **c != directory.base_dn)
            .map(|c| ObjectId::Container(c.clone())),
    );
    let mut objects: Vec<(DateTime<Utc>, Uuid)> = directory
        .users
        .values()
        .map(|u| (u.created, u.id))
        .chain(directory.groups.values().map(|g| (g.created, g.id)))
        .chain(directory.contacts.values().map(|c| (c.created, c.id)))
        .collect();
    objects.sort();
    ids.extend(objects.into_iter().map(|(_, id)| ObjectId::Object(id)));
    ids
}

/// Finds the DN of the closest existing ancestor of `dn` for `noSuchObject`, or returns the
/// empty string.
pub(super) fn best_match(directory: &Directory, dn: &dn::Dn) -> String {
    let mut current = dn.parent();
    while let Some(candidate) = current {
        if candidate.is_root() {
            break;
        }
        if let Some(entry) = Entry::find(directory, &candidate.key()) {
            return entry.dn().to_string();
        }
        current = candidate.parent();
    }
    String::new()
}

/// Encodes a SID string (`S-1-5-21-...`) in AD's binary form.
pub(super) fn sid_bytes(text: &str) -> Option<Vec<u8>> {
    let mut parts = text.strip_prefix("S-")?.split('-');
    let revision: u8 = parts.next()?.parse().ok()?;
    let authority: u64 = parts.next()?.parse().ok()?;
    let sub_authorities: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if sub_authorities.len() > 15 || authority >= 1 << 48 {
        return None;
    }
    let mut bytes = vec![revision, u8::try_from(sub_authorities.len()).ok()?];
    bytes.extend_from_slice(&authority.to_be_bytes()[2..]);
    for sub in sub_authorities {
        bytes.extend_from_slice(&sub.to_le_bytes());
    }
    Some(bytes)
}

/// GeneralizedTime as AD writes it, `20240131120000.0Z`.
pub(super) fn generalized_time(time: DateTime<Utc>) -> String {
    time.format("%Y%m%d%H%M%S.0Z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Fixture;
    use crate::world::World;

    fn world() -> World {
        World::from_fixture(&Fixture::default_org())
            .expect("world")
            .0
    }

    #[test]
    fn sid_encodes_as_ad_does() {
        let bytes = sid_bytes("S-1-5-21-1-2-3-513").expect("valid SID");
        assert_eq!(
            bytes,
            [
                1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 2, 0, 0
            ]
        );
        assert!(sid_bytes("S-1-x").is_none());
    }

    #[test]
    fn user_entry_has_ad_attributes() {
        let world = world();
        let alice = world
            .directory
            .user_by_upn("alice@lab.example")
            .expect("alice");
        let entry = Entry::get(&world.directory, &ObjectId::Object(alice.id)).expect("entry");
        assert_eq!(entry.values("SAMACCOUNTNAME"), vec![b"alice".to_vec()]);
        assert_eq!(entry.values("primaryGroupID"), vec![b"513".to_vec()]);
        assert_eq!(
            entry.values("objectGUID"),
            vec![alice.id.to_bytes_le().to_vec()]
        );
        let sid = entry.values("objectSid");
        assert_eq!(
            sid[0].len(),
            28,
            "a domain account SID has five sub-authorities"
        );
        let member_of = entry.values("memberOf");
        assert!(
            member_of
                .iter()
                .any(|dn| dn.starts_with(b"CN=Sales,OU=Groups,")),
            "{member_of:?}"
        );
        assert!(
            entry.values("objectCategory")[0].starts_with(b"CN=Person,CN=Schema,CN=Configuration,")
        );
    }

    #[test]
    fn containers_and_the_domain_head_are_entries() {
        let world = world();
        let head = Entry::find(&world.directory, "dc=lab,dc=example").expect("domain head");
        assert_eq!(head.object_classes(), ["top", "domain", "domainDNS"]);
        assert_eq!(head.values("dc"), vec![b"lab".to_vec()]);
        let users = Entry::find(&world.directory, "cn=users,dc=lab,dc=example").expect("CN=Users");
        assert!(users.is_container());
        assert!(users.is_critical());
        let staff = Entry::find(&world.directory, "ou=staff,dc=lab,dc=example").expect("OU=Staff");
        assert_eq!(staff.values("ou"), vec![b"Staff".to_vec()]);
        assert_eq!(
            staff.guid(),
            Entry::find(&world.directory, "ou=staff,dc=lab,dc=example")
                .expect("OU=Staff")
                .guid(),
            "a derived GUID is stable"
        );
    }

    #[test]
    fn best_match_walks_up_to_an_existing_entry() {
        let world = world();
        let dn = dn::Dn::parse("CN=nobody,OU=missing,OU=Staff,DC=lab,DC=example").expect("DN");
        assert_eq!(
            best_match(&world.directory, &dn),
            "OU=Staff,DC=lab,DC=example"
        );
    }
}
