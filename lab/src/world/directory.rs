//! Active Directory as the lab models it: users, groups and containers with the attributes
//! that the controller and its peers read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fixture::{GroupKind, MailboxLocation};

/// `userAccountControl` flags that the lab interprets.
///
/// See <https://learn.microsoft.com/troubleshoot/windows-server/active-directory/useraccountcontrol-manipulate-account-properties>.
pub mod uac {
    /// ACCOUNTDISABLE.
    pub const ACCOUNT_DISABLE: u32 = 0x0002;
    /// PASSWD_NOTREQD.
    pub const PASSWORD_NOT_REQUIRED: u32 = 0x0020;
    /// NORMAL_ACCOUNT.
    pub const NORMAL_ACCOUNT: u32 = 0x0200;
    /// DONT_EXPIRE_PASSWORD.
    pub const DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;
}

/// RID of the Domain Users group, every user's primary group.
pub const DOMAIN_USERS_RID: u32 = 513;
/// RID of the Domain Admins group.
pub const DOMAIN_ADMINS_RID: u32 = 512;

/// A user object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// objectGUID, also the Entra object ID of the synchronized user.
    pub id: Uuid,
    /// sAMAccountName.
    pub sam: String,
    /// userPrincipalName.
    pub upn: String,
    /// Common name, the first RDN of `dn`.
    pub cn: String,
    /// distinguishedName.
    pub dn: String,
    /// displayName.
    pub display_name: String,
    /// title: the job title, which signatures show.
    #[serde(default)]
    pub title: Option<String>,
    /// Primary SMTP address (`mail`).
    pub mail: Option<String>,
    /// proxyAddresses: `SMTP:` for the primary address, `smtp:` for the others.
    pub proxy_addresses: Vec<String>,
    /// userAccountControl.
    pub uac: u32,
    /// The password in clear, kept so that the lab can check Basic and NTLM logons.
    pub password: Option<String>,
    /// pwdLastSet as a Windows FILETIME; 0 means the user must change the password.
    pub pwd_last_set: i64,
    /// Relative ID, the last part of objectSid.
    pub rid: u32,
    /// primaryGroupID.
    pub primary_group_rid: u32,
    /// Where the mailbox lives.
    pub mailbox: MailboxLocation,
    /// whenCreated.
    pub created: DateTime<Utc>,
}

impl User {
    /// Whether ACCOUNTDISABLE is clear.
    pub fn enabled(&self) -> bool {
        self.uac & uac::ACCOUNT_DISABLE == 0
    }

    /// Whether a Basic or NTLM logon with a password can succeed at all.
    pub fn can_log_on(&self) -> bool {
        self.enabled() && self.password.is_some() && self.pwd_last_set != 0
    }

    /// Every SMTP address of the user, primary first, without the `smtp:` prefix.
    pub fn smtp_addresses(&self) -> impl Iterator<Item = &str> {
        self.mail.as_deref().into_iter().chain(
            self.proxy_addresses
                .iter()
                .filter_map(|p| strip_smtp_prefix(p))
                .filter(move |a| Some(*a) != self.mail.as_deref()),
        )
    }
}

/// A group object.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    /// objectGUID, also the Entra object ID of the synchronized group.
    pub id: Uuid,
    /// sAMAccountName.
    pub sam: String,
    /// Common name.
    pub cn: String,
    /// distinguishedName.
    pub dn: String,
    /// Primary SMTP address of a mail-enabled group.
    pub mail: Option<String>,
    /// Security or distribution.
    pub kind: GroupKind,
    /// Relative ID.
    pub rid: u32,
    /// Direct members (`member`), users or groups, by object ID.
    pub members: Vec<Uuid>,
    /// whenCreated.
    pub created: DateTime<Utc>,
}

impl Group {
    /// The `groupType` attribute: global scope, with the security bit for security groups.
    pub fn group_type(&self) -> i32 {
        const GLOBAL: i32 = 0x2;
        const SECURITY: i32 = i32::MIN; // 0x80000000
        match self.kind {
            GroupKind::Security => GLOBAL | SECURITY,
            GroupKind::Distribution => GLOBAL,
        }
    }
}

/// A contact: a mail recipient without an account, which groups can list as a member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    /// objectGUID.
    pub id: Uuid,
    /// Common name, the first RDN of `dn`.
    pub cn: String,
    /// distinguishedName.
    pub dn: String,
    /// displayName.
    pub display_name: Option<String>,
    /// The external address (`mail`).
    pub mail: Option<String>,
    /// proxyAddresses, as written.
    pub proxy_addresses: Vec<String>,
    /// whenCreated.
    pub created: DateTime<Utc>,
}

/// What a directory object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A user.
    User,
    /// A group.
    Group,
    /// A contact.
    Contact,
}

/// The domain's directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Directory {
    /// DNS name of the domain.
    pub domain: String,
    /// Further mail domains.
    pub extra_domains: Vec<String>,
    /// NetBIOS name of the domain.
    pub netbios: String,
    /// defaultNamingContext, `DC=lab,DC=example`.
    pub base_dn: String,
    /// The domain SID, `S-1-5-21-x-y-z`.
    pub domain_sid: String,
    /// The next free RID.
    pub next_rid: u32,
    /// Containers and organizational units by DN, including the domain head.
    pub containers: BTreeSet<String>,
    /// Users by object ID.
    pub users: HashMap<Uuid, User>,
    /// Groups by object ID.
    pub groups: HashMap<Uuid, Group>,
    /// Contacts by object ID.
    #[serde(default)]
    pub contacts: HashMap<Uuid, Contact>,
    /// The domain that remote mailboxes' `targetAddress` points at, the tenant's
    /// `<name>.mail.onmicrosoft.com`; empty when the organization has no tenant.
    #[serde(default)]
    pub cloud_routing_domain: String,
    /// Attributes without a field of their own (`description`, `givenName`, a group's
    /// `groupType`), by normalized DN (see [`normalize_dn`]) and attribute name, with the
    /// values as clients wrote them.
    #[serde(default)]
    pub extra_attributes: HashMap<String, BTreeMap<String, Vec<String>>>,
    #[serde(skip)]
    index: Index,
}

/// Lookup tables, rebuilt after loading and kept current by every mutation.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Lowercased DN to object.
    by_dn: HashMap<String, Uuid>,
    /// Lowercased sAMAccountName to object.
    by_sam: HashMap<String, Uuid>,
    /// Lowercased UPN to user.
    by_upn: HashMap<String, Uuid>,
    /// Lowercased SMTP address (primary or proxy) to user or group.
    by_smtp: HashMap<String, Uuid>,
    /// Object to the groups that list it as a direct member.
    member_of: HashMap<Uuid, Vec<Uuid>>,
}

/// Strips `smtp:` or `SMTP:` from a proxy address.
pub fn strip_smtp_prefix(proxy: &str) -> Option<&str> {
    proxy
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("smtp:"))
        .map(|_| &proxy[5..])
}

impl Directory {
    /// An empty domain with its head, the default containers and the built-in groups.
    pub fn new(domain: &str, netbios: &str, domain_sid: String) -> Self {
        let base_dn = domain
            .split('.')
            .map(|label| format!("DC={label}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut directory = Self {
            domain: domain.to_ascii_lowercase(),
            extra_domains: Vec::new(),
            netbios: netbios.to_ascii_uppercase(),
            base_dn: base_dn.clone(),
            domain_sid,
            next_rid: 1100,
            containers: BTreeSet::new(),
            users: HashMap::new(),
            groups: HashMap::new(),
            contacts: HashMap::new(),
            cloud_routing_domain: String::new(),
            extra_attributes: HashMap::new(),
            index: Index::default(),
        };
        directory.containers.insert(base_dn.clone());
        for container in ["CN=Users", "OU=Staff", "OU=Groups", "OU=Service Accounts"] {
            directory
                .containers
                .insert(format!("{container},{base_dn}"));
        }
        for (sam, rid) in [
            ("Domain Users", DOMAIN_USERS_RID),
            ("Domain Admins", DOMAIN_ADMINS_RID),
        ] {
            let group = Group {
                id: Uuid::new_v4(),
                sam: sam.to_string(),
                cn: sam.to_string(),
                dn: format!("CN={sam},CN=Users,{base_dn}"),
                mail: None,
                kind: GroupKind::Security,
                rid,
                members: Vec::new(),
                created: Utc::now(),
            };
            directory.insert_group(group);
        }
        directory
    }

    /// Rebuilds the lookup tables; call after deserializing.
    pub fn reindex(&mut self) {
        self.index = Index::default();
        let users: Vec<Uuid> = self.users.keys().copied().collect();
        for id in users {
            self.index_user(id);
        }
        let groups: Vec<Uuid> = self.groups.keys().copied().collect();
        for id in groups {
            self.index_group(id);
        }
        let contacts: Vec<Uuid> = self.contacts.keys().copied().collect();
        for id in contacts {
            self.index_contact(id);
        }
    }

    fn index_user(&mut self, id: Uuid) {
        let user = &self.users[&id];
        self.index.by_dn.insert(user.dn.to_ascii_lowercase(), id);
        self.index.by_sam.insert(user.sam.to_ascii_lowercase(), id);
        self.index.by_upn.insert(user.upn.to_ascii_lowercase(), id);
        let addresses: Vec<String> = user.smtp_addresses().map(str::to_ascii_lowercase).collect();
        for address in addresses {
            self.index.by_smtp.insert(address, id);
        }
    }

    fn index_group(&mut self, id: Uuid) {
        let group = &self.groups[&id];
        self.index.by_dn.insert(group.dn.to_ascii_lowercase(), id);
        self.index.by_sam.insert(group.sam.to_ascii_lowercase(), id);
        if let Some(mail) = &group.mail {
            self.index.by_smtp.insert(mail.to_ascii_lowercase(), id);
        }
        let members = group.members.clone();
        for member in members {
            self.index.member_of.entry(member).or_default().push(id);
        }
    }

    fn index_contact(&mut self, id: Uuid) {
        let dn = normalize_dn(&self.contacts[&id].dn);
        self.index.by_dn.insert(dn, id);
    }

    /// Removes the name and address entries of an object from the lookup tables, leaving its
    /// memberships alone.
    fn unindex_names(&mut self, id: Uuid) {
        let mut keys: Vec<(u8, String)> = Vec::new();
        if let Some(user) = self.users.get(&id) {
            keys.push((0, normalize_dn(&user.dn)));
            keys.push((1, user.sam.to_ascii_lowercase()));
            keys.push((2, user.upn.to_ascii_lowercase()));
            keys.extend(user.smtp_addresses().map(|a| (3, a.to_ascii_lowercase())));
        } else if let Some(group) = self.groups.get(&id) {
            keys.push((0, normalize_dn(&group.dn)));
            keys.push((1, group.sam.to_ascii_lowercase()));
            keys.extend(group.mail.iter().map(|m| (3, m.to_ascii_lowercase())));
        } else if let Some(contact) = self.contacts.get(&id) {
            keys.push((0, normalize_dn(&contact.dn)));
        }
        for (table, key) in keys {
            let table = match table {
                0 => &mut self.index.by_dn,
                1 => &mut self.index.by_sam,
                2 => &mut self.index.by_upn,
                _ => &mut self.index.by_smtp,
            };
            if table.get(&key) == Some(&id) {
                table.remove(&key);
            }
        }
    }

    /// Adds a contact; the caller has checked that its DN is free.
    pub fn insert_contact(&mut self, contact: Contact) {
        let id = contact.id;
        self.contacts.insert(id, contact);
        self.index_contact(id);
    }

    /// Changes a user and keeps the lookup tables current. Returns `None` when there is no
    /// such user.
    pub fn edit_user<R>(&mut self, id: Uuid, edit: impl FnOnce(&mut User) -> R) -> Option<R> {
        if !self.users.contains_key(&id) {
            return None;
        }
        self.unindex_names(id);
        let result = edit(self.users.get_mut(&id).expect("checked above"));
        self.index_user(id);
        Some(result)
    }

    /// Changes a group's own attributes (not its members) and keeps the lookup tables
    /// current. Returns `None` when there is no such group.
    pub fn edit_group<R>(&mut self, id: Uuid, edit: impl FnOnce(&mut Group) -> R) -> Option<R> {
        if !self.groups.contains_key(&id) {
            return None;
        }
        self.unindex_names(id);
        let result = edit(self.groups.get_mut(&id).expect("checked above"));
        let group = &self.groups[&id];
        let (dn, sam, mail) = (
            normalize_dn(&group.dn),
            group.sam.to_ascii_lowercase(),
            group.mail.as_ref().map(|m| m.to_ascii_lowercase()),
        );
        self.index.by_dn.insert(dn, id);
        self.index.by_sam.insert(sam, id);
        if let Some(mail) = mail {
            self.index.by_smtp.insert(mail, id);
        }
        Some(result)
    }

    /// Changes a contact and keeps the lookup tables current. Returns `None` when there is
    /// no such contact.
    pub fn edit_contact<R>(&mut self, id: Uuid, edit: impl FnOnce(&mut Contact) -> R) -> Option<R> {
        if !self.contacts.contains_key(&id) {
            return None;
        }
        self.unindex_names(id);
        let result = edit(self.contacts.get_mut(&id).expect("checked above"));
        self.index_contact(id);
        Some(result)
    }

    /// Deletes a user, group or contact, with its memberships in both directions and its
    /// extra attributes, as AD removes the links of a deleted object. Returns whether it
    /// existed.
    pub fn remove(&mut self, id: Uuid) -> bool {
        let Some(dn) = self.dn_of(id).map(normalize_dn) else {
            return false;
        };
        self.unindex_names(id);
        for group in self.member_of(id).to_vec() {
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.retain(|m| *m != id);
            }
        }
        self.index.member_of.remove(&id);
        if let Some(group) = self.groups.remove(&id) {
            for member in group.members {
                if let Some(list) = self.index.member_of.get_mut(&member) {
                    list.retain(|g| *g != id);
                }
            }
        }
        self.users.remove(&id);
        self.contacts.remove(&id);
        self.extra_attributes.remove(&dn);
        true
    }

    /// Allocates the next RID.
    pub fn allocate_rid(&mut self) -> u32 {
        let rid = self.next_rid;
        self.next_rid += 1;
        rid
    }

    /// The objectSid string of a RID in this domain.
    pub fn sid_of(&self, rid: u32) -> String {
        format!("{}-{rid}", self.domain_sid)
    }

    /// Adds a user; the caller has checked that its DN, sAMAccountName and UPN are free.
    pub fn insert_user(&mut self, user: User) {
        let id = user.id;
        self.users.insert(id, user);
        self.index_user(id);
    }

    /// Adds a group; the caller has checked that its DN and sAMAccountName are free.
    pub fn insert_group(&mut self, group: Group) {
        let id = group.id;
        self.groups.insert(id, group);
        self.index_group(id);
    }

    /// Adds `member` to `group` unless it is already a direct member.
    pub fn add_member(&mut self, group: Uuid, member: Uuid) -> bool {
        let Some(g) = self.groups.get_mut(&group) else {
            return false;
        };
        if g.members.contains(&member) {
            return false;
        }
        g.members.push(member);
        self.index.member_of.entry(member).or_default().push(group);
        true
    }

    /// Removes `member` from `group`.
    pub fn remove_member(&mut self, group: Uuid, member: Uuid) -> bool {
        let Some(g) = self.groups.get_mut(&group) else {
            return false;
        };
        let before = g.members.len();
        g.members.retain(|m| *m != member);
        if let Some(list) = self.index.member_of.get_mut(&member) {
            list.retain(|g| *g != group);
        }
        before != g.members.len()
    }

    /// What kind of object `id` is.
    pub fn kind_of(&self, id: Uuid) -> Option<ObjectKind> {
        if self.users.contains_key(&id) {
            Some(ObjectKind::User)
        } else if self.groups.contains_key(&id) {
            Some(ObjectKind::Group)
        } else if self.contacts.contains_key(&id) {
            Some(ObjectKind::Contact)
        } else {
            None
        }
    }

    /// The DN of a user, group or contact.
    pub fn dn_of(&self, id: Uuid) -> Option<&str> {
        self.users
            .get(&id)
            .map(|u| u.dn.as_str())
            .or_else(|| self.groups.get(&id).map(|g| g.dn.as_str()))
            .or_else(|| self.contacts.get(&id).map(|c| c.dn.as_str()))
    }

    /// The object with this DN (case-insensitive).
    pub fn by_dn(&self, dn: &str) -> Option<Uuid> {
        self.index.by_dn.get(&normalize_dn(dn)).copied()
    }

    /// The object with this sAMAccountName.
    pub fn by_sam(&self, sam: &str) -> Option<Uuid> {
        self.index.by_sam.get(&sam.to_ascii_lowercase()).copied()
    }

    /// The user with this UPN.
    pub fn user_by_upn(&self, upn: &str) -> Option<&User> {
        self.index
            .by_upn
            .get(&upn.to_ascii_lowercase())
            .and_then(|id| self.users.get(id))
    }

    /// The user or group that owns this SMTP address (primary or proxy).
    pub fn by_smtp(&self, address: &str) -> Option<Uuid> {
        self.index
            .by_smtp
            .get(&address.to_ascii_lowercase())
            .copied()
    }

    /// The user an SMTP address or UPN names, mailbox owners first.
    pub fn user_by_address(&self, address: &str) -> Option<&User> {
        self.by_smtp(address)
            .and_then(|id| self.users.get(&id))
            .or_else(|| self.user_by_upn(address))
    }

    /// The user a logon name names: UPN, `DOMAIN\sam`, DN or bare sAMAccountName, as AD
    /// accepts them for a simple bind.
    pub fn user_by_logon(&self, name: &str) -> Option<&User> {
        if let Some((domain, sam)) = name.split_once('\\') {
            let ours = domain.eq_ignore_ascii_case(&self.netbios)
                || domain.eq_ignore_ascii_case(&self.domain);
            return ours
                .then(|| self.by_sam(sam))
                .flatten()
                .and_then(|id| self.users.get(&id));
        }
        if name.contains('@') {
            return self.user_by_upn(name);
        }
        if name.contains('=') {
            return self.by_dn(name).and_then(|id| self.users.get(&id));
        }
        self.by_sam(name).and_then(|id| self.users.get(&id))
    }

    /// Groups that list `id` as a direct member (`memberOf`), without the primary group.
    pub fn member_of(&self, id: Uuid) -> &[Uuid] {
        self.index
            .member_of
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every group that contains `id` directly or through nesting, without the primary group.
    pub fn transitive_member_of(&self, id: Uuid) -> Vec<Uuid> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<Uuid> = self.member_of(id).iter().copied().collect();
        while let Some(group) = queue.pop_front() {
            if seen.insert(group) {
                queue.extend(self.member_of(group).iter().copied());
            }
        }
        seen.into_iter().collect()
    }

    /// Every user, group and contact below `group` through nesting, cycles tolerated.
    pub fn transitive_members(&self, group: Uuid) -> Vec<Uuid> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([group]);
        while let Some(current) = queue.pop_front() {
            let Some(g) = self.groups.get(&current) else {
                continue;
            };
            for member in &g.members {
                if seen.insert(*member) {
                    order.push(*member);
                    queue.push_back(*member);
                }
            }
        }
        order
    }

    /// Whether `user` is a member of the group with `rid`, counting the primary group.
    pub fn is_member_of_rid(&self, user: Uuid, rid: u32) -> bool {
        if self.users.get(&user).map(|u| u.primary_group_rid) == Some(rid) {
            return true;
        }
        self.transitive_member_of(user)
            .iter()
            .any(|g| self.groups.get(g).map(|g| g.rid) == Some(rid))
    }

    /// The group with this RID.
    pub fn group_by_rid(&self, rid: u32) -> Option<&Group> {
        self.groups.values().find(|g| g.rid == rid)
    }

    /// Whether a DN names an existing container, user, group or contact (the parent check of
    /// an add).
    pub fn exists(&self, dn: &str) -> bool {
        let normalized = normalize_dn(dn);
        self.index.by_dn.contains_key(&normalized)
            || self
                .containers
                .iter()
                .any(|c| normalize_dn(c) == normalized)
    }

    /// Whether `domain` is one of the organization's mail domains.
    pub fn is_our_domain(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case(&self.domain)
            || self
                .extra_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Lowercases a DN and removes spaces around separators, the comparison AD applies.
/// Escaped commas (`\,`) stay inside their RDN.
pub fn normalize_dn(dn: &str) -> String {
    split_unescaped(dn, ',')
        .into_iter()
        .map(|rdn| {
            let (attr, value) = rdn.split_once('=').unwrap_or((rdn, ""));
            format!(
                "{}={}",
                attr.trim().to_ascii_lowercase(),
                value.trim().to_ascii_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits `text` at every `separator` that no backslash escapes.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(directory: &mut Directory, sam: &str) -> Uuid {
        let rid = directory.allocate_rid();
        let user = User {
            id: Uuid::new_v4(),
            sam: sam.into(),
            upn: format!("{sam}@lab.example"),
            cn: sam.into(),
            dn: format!("CN={sam},CN=Users,{}", directory.base_dn),
            display_name: sam.into(),
            title: None,
            mail: Some(format!("{sam}@lab.example")),
            proxy_addresses: vec![format!("SMTP:{sam}@lab.example")],
            uac: uac::NORMAL_ACCOUNT,
            password: Some("x".into()),
            pwd_last_set: 1,
            rid,
            primary_group_rid: DOMAIN_USERS_RID,
            mailbox: MailboxLocation::OnPremises,
            created: Utc::now(),
        };
        let id = user.id;
        directory.insert_user(user);
        id
    }

    fn group(directory: &mut Directory, sam: &str, members: Vec<Uuid>) -> Uuid {
        let rid = directory.allocate_rid();
        let group = Group {
            id: Uuid::new_v4(),
            sam: sam.into(),
            cn: sam.into(),
            dn: format!("CN={sam},OU=Groups,{}", directory.base_dn),
            mail: None,
            kind: GroupKind::Security,
            rid,
            members,
            created: Utc::now(),
        };
        let id = group.id;
        directory.insert_group(group);
        id
    }

    #[test]
    fn logon_names_resolve_to_the_same_user() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let alice = user(&mut directory, "alice");
        for name in [
            "alice@lab.example",
            "LAB\\alice",
            "lab.example\\ALICE",
            "cn=alice, cn=users, dc=lab, dc=example",
            "alice",
        ] {
            assert_eq!(
                directory.user_by_logon(name).map(|u| u.id),
                Some(alice),
                "{name}"
            );
        }
        assert!(directory.user_by_logon("OTHER\\alice").is_none());
    }

    #[test]
    fn nested_cycles_terminate() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let alice = user(&mut directory, "alice");
        let inner = group(&mut directory, "inner", vec![alice]);
        let outer = group(&mut directory, "outer", vec![inner]);
        directory.add_member(inner, outer);
        let members = directory.transitive_members(outer);
        assert!(members.contains(&alice));
        let groups = directory.transitive_member_of(alice);
        assert_eq!(groups.len(), 2);
    }

    #[test]
    fn primary_group_counts_for_domain_users() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let alice = user(&mut directory, "alice");
        assert!(directory.is_member_of_rid(alice, DOMAIN_USERS_RID));
        assert!(!directory.is_member_of_rid(alice, DOMAIN_ADMINS_RID));
    }

    #[test]
    fn removing_an_object_unlinks_its_memberships() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let alice = user(&mut directory, "alice");
        let inner = group(&mut directory, "inner", vec![alice]);
        let outer = group(&mut directory, "outer", vec![inner, alice]);
        assert!(directory.remove(inner));
        assert_eq!(directory.groups[&outer].members, [alice]);
        assert_eq!(directory.member_of(alice), [outer]);
        assert!(directory.by_sam("inner").is_none());
        assert!(directory.remove(alice));
        assert!(directory.groups[&outer].members.is_empty());
        assert!(directory.user_by_upn("alice@lab.example").is_none());
        assert!(!directory.remove(alice), "a second removal finds nothing");
    }

    #[test]
    fn edits_keep_the_lookup_tables_current() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let alice = user(&mut directory, "alice");
        directory.edit_user(alice, |user| {
            user.upn = "a.archer@lab.example".into();
            user.mail = Some("a.archer@lab.example".into());
            user.proxy_addresses = vec!["SMTP:a.archer@lab.example".into()];
        });
        assert!(directory.user_by_upn("alice@lab.example").is_none());
        assert_eq!(
            directory.user_by_upn("A.Archer@lab.example").map(|u| u.id),
            Some(alice)
        );
        assert_eq!(directory.by_smtp("a.archer@lab.example"), Some(alice));
        assert_eq!(directory.by_smtp("alice@lab.example"), None);
    }

    #[test]
    fn contact_is_found_and_nests() {
        let mut directory = Directory::new("lab.example", "LAB", "S-1-5-21-1-2-3".into());
        let contact = Contact {
            id: Uuid::new_v4(),
            cn: "Partner".into(),
            dn: "CN=Partner,OU=Staff,DC=lab,DC=example".into(),
            display_name: None,
            mail: Some("partner@example.net".into()),
            proxy_addresses: Vec::new(),
            created: Utc::now(),
        };
        let id = contact.id;
        directory.insert_contact(contact);
        let group = group(&mut directory, "partners", vec![]);
        directory.add_member(group, id);
        assert_eq!(
            directory.by_dn("cn=partner, ou=staff, dc=lab, dc=example"),
            Some(id)
        );
        assert_eq!(directory.kind_of(id), Some(ObjectKind::Contact));
        assert_eq!(directory.transitive_members(group), [id]);
    }

    #[test]
    fn escaped_commas_stay_in_their_rdn() {
        assert_eq!(
            normalize_dn("CN=Smith\\, John , OU=Staff,DC=lab"),
            "cn=smith\\, john,ou=staff,dc=lab"
        );
    }
}
