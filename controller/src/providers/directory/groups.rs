//! Groups: lookup by address, DN or name, direct members with range retrieval, and
//! transitive members through the in-chain matching rule or a walk of `member`.

use std::collections::{HashMap, HashSet, VecDeque};

use ldap3::{Mod, Scope, SearchEntry};
use tracing::{debug, info, warn};

use super::client::{DirectoryClient, first_value, optional_integer, optional_sid, values};
use super::error::DirectoryError;
use super::escape::escape_filter_value;
use super::settings::TransitiveStrategy;
use super::sid::Sid;

/// OID of LDAP_MATCHING_RULE_IN_CHAIN, which makes a filter on a DN-valued attribute follow
/// the chain of links to any depth.
pub const IN_CHAIN_MATCHING_RULE: &str = "1.2.840.113556.1.4.1941";

/// DNs per search when reading the objects behind `member` values. A filter with 100 DNs
/// is about 10 KB, well below AD's default MaxReceiveBuffer of 10 MB.
const RESOLVE_BATCH_SIZE: usize = 100;

/// RIDs per search when looking for accounts whose primary group is one of the groups.
const PRIMARY_GROUP_BATCH_SIZE: usize = 100;

const GROUP_ATTRIBUTES: [&str; 7] = [
    "sAMAccountName",
    "name",
    "mail",
    "objectSid",
    "groupType",
    "objectClass",
    "cn",
];

const OBJECT_ATTRIBUTES: [&str; 6] = [
    "objectClass",
    "sAMAccountName",
    "userPrincipalName",
    "mail",
    "objectSid",
    "name",
];

/// A reference to a group, in one of the forms a spec can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRef {
    /// An SMTP address in `mail` or `proxyAddresses`.
    SmtpAddress(String),
    /// A distinguished name.
    Dn(String),
    /// A pre-Windows 2000 name.
    SamAccountName(String),
    /// The relative name (`name`, the value of the entry's RDN).
    Name(String),
}

/// A group as read from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Distinguished name.
    pub dn: String,
    /// Pre-Windows 2000 name.
    pub sam_account_name: Option<String>,
    /// Relative name.
    pub name: Option<String>,
    /// Primary e-mail address, set on mail-enabled groups.
    pub mail: Option<String>,
    /// Security identifier.
    pub object_sid: Option<Sid>,
    /// `groupType` flags; the sign bit marks a security group.
    pub group_type: Option<i32>,
}

impl Group {
    /// Reports whether the group is a security group (sign bit of `groupType` set), as
    /// opposed to a distribution group.
    pub fn is_security_group(&self) -> bool {
        self.group_type.is_some_and(|group_type| group_type < 0)
    }
}

/// The object class of a group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    User,
    Computer,
    Group,
    Contact,
    ForeignSecurityPrincipal,
    /// Another object class, or a `member` value whose entry was not found under the base DN.
    Other,
}

/// A member of a group, direct or transitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryObject {
    /// Distinguished name.
    pub dn: String,
    /// Object class.
    pub kind: MemberKind,
    /// Pre-Windows 2000 name.
    pub sam_account_name: Option<String>,
    /// User principal name.
    pub user_principal_name: Option<String>,
    /// Primary e-mail address.
    pub mail: Option<String>,
    /// Security identifier.
    pub object_sid: Option<Sid>,
}

impl DirectoryClient {
    /// Finds a group by the given reference, or returns `None` when none matches. An
    /// address, name or sAMAccountName that matches several groups is an error.
    pub async fn find_group(&self, group: &GroupRef) -> Result<Option<Group>, DirectoryError> {
        let (base, scope, filter, target) = match group {
            GroupRef::Dn(dn) => (
                dn.as_str(),
                Scope::Base,
                "(objectClass=group)".to_owned(),
                dn.clone(),
            ),
            GroupRef::SmtpAddress(address) => {
                let escaped = escape_filter_value(address);
                let filter = format!(
                    "(&(objectClass=group)(|(mail={escaped})(proxyAddresses=SMTP:{escaped})))"
                );
                (self.base_dn(), Scope::Subtree, filter, address.clone())
            }
            GroupRef::SamAccountName(name) => {
                let filter = format!(
                    "(&(objectClass=group)(sAMAccountName={}))",
                    escape_filter_value(name)
                );
                (self.base_dn(), Scope::Subtree, filter, name.clone())
            }
            GroupRef::Name(name) => {
                let filter = format!("(&(objectClass=group)(name={}))", escape_filter_value(name));
                (self.base_dn(), Scope::Subtree, filter, name.clone())
            }
        };

        let mut entries = self
            .search_paged(base, scope, &filter, &GROUP_ATTRIBUTES)
            .await?;
        if entries.len() > 1 {
            return Err(DirectoryError::Ambiguous {
                target,
                count: entries.len(),
                dns: entries.into_iter().map(|entry| entry.dn).collect(),
            });
        }
        entries.pop().map(|entry| parse_group(&entry)).transpose()
    }

    /// Reads all values of a group's `member` attribute.
    ///
    /// With `member_range_size` unset, the plain attribute is requested and ranges are
    /// followed only when the server returns one, as AD does above its MaxValRange (1,500
    /// by default). With it set, the first request is `member;range=0-(size-1)`. Either
    /// way, each ranged response `member;range=LOW-HIGH` is followed by a request for
    /// `member;range=(HIGH+1)-*` until a response ends in `*`.
    ///
    /// See <https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-adts/e27b48db-6f82-44cd-9038-2e54f790cc1f>.
    pub async fn read_members(&self, group_dn: &str) -> Result<Vec<String>, DirectoryError> {
        let mut cursor = RangeCursor::new("member", self.member_range_size);
        let mut requests = 0usize;
        while let Some(requested) = cursor.next_request() {
            let entries = self
                .search_paged(
                    group_dn,
                    Scope::Base,
                    "(objectClass=*)",
                    &[requested.as_str()],
                )
                .await?;
            requests += 1;
            let entry = entries
                .first()
                .ok_or_else(|| DirectoryError::EntryNotFound {
                    dn: group_dn.to_owned(),
                })?;
            cursor.accept(group_dn, &entry.attrs)?;
        }
        let members = cursor.into_values();
        debug!(
            group = group_dn,
            members = members.len(),
            requests,
            "read group members"
        );
        Ok(members)
    }

    /// Resolves every object that is a member of the group at any depth, including nested
    /// groups and the accounts whose primary group is the group or a nested group. The
    /// group itself is left out even when a cycle leads back to it. Objects are sorted by
    /// DN.
    ///
    /// The settings' [`TransitiveStrategy`] picks the method. With `Auto`, a server that
    /// announces Active Directory gets the in-chain rule and any other server the walk. A
    /// rejected in-chain search falls back to the walk.
    pub async fn transitive_members(
        &self,
        group_dn: &str,
    ) -> Result<Vec<DirectoryObject>, DirectoryError> {
        let (mut found, group_sids) = self.linked_members(group_dn).await?;
        self.add_primary_group_members(&group_sids, &mut found)
            .await?;
        Ok(found.into_sorted())
    }

    /// Resolves the transitive members of each group of `group_dns` as
    /// [`transitive_members`](Self::transitive_members) does for one, and returns them in the
    /// order of `group_dns`. The groups are expanded concurrently over this connection, and
    /// the accounts whose primary group is one of them or of their nested groups are found
    /// with one search for all groups together instead of one per group, because that
    /// attribute search scans every account where the server does not index it.
    pub async fn transitive_members_of_groups(
        &self,
        group_dns: &[String],
    ) -> Result<Vec<Vec<DirectoryObject>>, DirectoryError> {
        // 1. Each group's members through `member` links, with the SIDs of the groups in it.
        let linked = futures::future::join_all(
            group_dns
                .iter()
                .map(|group_dn| self.linked_members(group_dn)),
        )
        .await;
        let mut expansions = Vec::with_capacity(linked.len());
        for result in linked {
            expansions.push(result?);
        }

        // 2. One lookup of the accounts whose primary group is any of those groups.
        let domain_sid = self.domain_sid().await?;
        let rids_of = |sids: &[Sid]| -> HashSet<u32> {
            sids.iter()
                .filter(|sid| sid.domain().as_ref() == Some(&domain_sid))
                .filter_map(Sid::rid)
                .collect()
        };
        let mut all_rids: Vec<u32> = expansions
            .iter()
            .flat_map(|(_, sids)| rids_of(sids))
            .collect();
        all_rids.sort_unstable();
        all_rids.dedup();
        let primary = self.primary_group_accounts(&all_rids).await?;

        // 3. Each account joins the groups that contain its primary group.
        Ok(expansions
            .into_iter()
            .map(|(mut found, sids)| {
                let rids = rids_of(&sids);
                for (rid, object) in &primary {
                    if rids.contains(rid) {
                        found.insert(object.clone());
                    }
                }
                found.into_sorted()
            })
            .collect())
    }

    /// Resolves the members of a group through `member` links at any depth, with the
    /// settings' [`TransitiveStrategy`], and returns them with the SIDs of the group and of
    /// every nested group. With `Auto`, a server that announces Active Directory gets the
    /// in-chain rule and any other server the walk. A rejected in-chain search falls back
    /// to the walk.
    async fn linked_members(
        &self,
        group_dn: &str,
    ) -> Result<(MemberSet, Vec<Sid>), DirectoryError> {
        match self.transitive_strategy {
            TransitiveStrategy::InChain => self.linked_members_in_chain(group_dn).await,
            TransitiveStrategy::Walk => self.linked_members_by_walk(group_dn).await,
            TransitiveStrategy::Auto if !self.root_dse().is_active_directory() => {
                self.linked_members_by_walk(group_dn).await
            }
            TransitiveStrategy::Auto => match self.linked_members_in_chain(group_dn).await {
                Err(DirectoryError::Operation { status, .. })
                    if matches!(status.code, 2 | 18 | 53) =>
                {
                    warn!(
                        group = group_dn,
                        %status,
                        "the server rejected the in-chain matching rule; walking the member attribute instead"
                    );
                    self.linked_members_by_walk(group_dn).await
                }
                result => result,
            },
        }
    }

    /// Resolves transitive members with one paged search for
    /// `memberOf:1.2.840.113556.1.4.1941:=GROUP`, plus the primary-group lookup.
    pub async fn transitive_members_in_chain(
        &self,
        group_dn: &str,
    ) -> Result<Vec<DirectoryObject>, DirectoryError> {
        let (mut found, group_sids) = self.linked_members_in_chain(group_dn).await?;
        self.add_primary_group_members(&group_sids, &mut found)
            .await?;
        Ok(found.into_sorted())
    }

    async fn linked_members_in_chain(
        &self,
        group_dn: &str,
    ) -> Result<(MemberSet, Vec<Sid>), DirectoryError> {
        let top = self.read_group_by_dn(group_dn).await?;
        let filter = format!(
            "(memberOf:{IN_CHAIN_MATCHING_RULE}:={})",
            escape_filter_value(&top.dn)
        );
        let entries = self
            .search_paged(self.base_dn(), Scope::Subtree, &filter, &OBJECT_ATTRIBUTES)
            .await?;

        let mut found = MemberSet::new(&top.dn);
        let mut group_sids: Vec<Sid> = top.object_sid.iter().cloned().collect();
        for entry in &entries {
            let object = parse_object(entry)?;
            if object.kind == MemberKind::Group {
                group_sids.extend(object.object_sid.clone());
            }
            found.insert(object);
        }
        Ok((found, group_sids))
    }

    /// Resolves transitive members breadth-first: reads each group's `member` values with
    /// range retrieval, reads the objects behind them in batches, and queues every group
    /// not seen before, so cycles end the walk instead of looping. Primary-group members
    /// are added at the end.
    pub async fn transitive_members_by_walk(
        &self,
        group_dn: &str,
    ) -> Result<Vec<DirectoryObject>, DirectoryError> {
        let (mut found, group_sids) = self.linked_members_by_walk(group_dn).await?;
        self.add_primary_group_members(&group_sids, &mut found)
            .await?;
        Ok(found.into_sorted())
    }

    async fn linked_members_by_walk(
        &self,
        group_dn: &str,
    ) -> Result<(MemberSet, Vec<Sid>), DirectoryError> {
        let top = self.read_group_by_dn(group_dn).await?;
        let mut found = MemberSet::new(&top.dn);
        let mut group_sids: Vec<Sid> = top.object_sid.iter().cloned().collect();
        let mut visited_groups: HashSet<String> = HashSet::from([dn_key(&top.dn)]);
        let mut queue = VecDeque::from([top.dn.clone()]);

        while let Some(group) = queue.pop_front() {
            let member_dns = self.read_members(&group).await?;
            let unseen: Vec<String> = member_dns
                .into_iter()
                .filter(|dn| !found.contains_or_is_top(dn))
                .collect();
            for object in self.resolve_objects(&unseen).await? {
                if object.kind == MemberKind::Group && visited_groups.insert(dn_key(&object.dn)) {
                    group_sids.extend(object.object_sid.clone());
                    queue.push_back(object.dn.clone());
                }
                found.insert(object);
            }
        }
        debug!(
            group = group_dn,
            groups = visited_groups.len(),
            "walked nested groups"
        );
        Ok((found, group_sids))
    }

    /// Adds an object to a group's `member`. Returns `false` when it was a member already.
    pub async fn add_group_member(
        &self,
        group_dn: &str,
        member_dn: &str,
    ) -> Result<bool, DirectoryError> {
        let values = HashSet::from([member_dn.as_bytes().to_vec()]);
        match self
            .modify(group_dn, vec![Mod::Add(b"member".to_vec(), values)])
            .await
        {
            Ok(()) => {
                info!(
                    group = group_dn,
                    member = member_dn,
                    "added the member to the group"
                );
                Ok(true)
            }
            // Samba 4.17 (like AD) returns entryAlreadyExists for a member that the group
            // lists already, and RFC 4511 servers return attributeOrValueExists.
            Err(DirectoryError::Operation { status, .. }) if matches!(status.code, 20 | 68) => {
                debug!(
                    group = group_dn,
                    member = member_dn,
                    "already a member of the group"
                );
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Lists the person accounts under the base DN that have a `mail` address, sorted by
    /// DN. These are the accounts that can have a mailbox; the reconciler counts them for
    /// a scope of every mailbox and picks sample mailboxes from them.
    pub async fn users_with_mail(&self) -> Result<Vec<DirectoryObject>, DirectoryError> {
        let entries = self
            .search_paged(
                self.base_dn(),
                Scope::Subtree,
                "(&(objectCategory=person)(objectClass=user)(mail=*))",
                &OBJECT_ATTRIBUTES,
            )
            .await?;
        let mut objects = entries
            .iter()
            .map(parse_object)
            .collect::<Result<Vec<_>, _>>()?;
        objects.sort_by_key(|object| dn_key(&object.dn));
        Ok(objects)
    }

    async fn read_group_by_dn(&self, group_dn: &str) -> Result<Group, DirectoryError> {
        self.find_group(&GroupRef::Dn(group_dn.to_owned()))
            .await?
            .ok_or_else(|| DirectoryError::EntryNotFound {
                dn: group_dn.to_owned(),
            })
    }

    /// Reads the objects with the given DNs in batches. A DN without an entry under the base
    /// DN (a member in another domain, for example) comes back as [`MemberKind::Other`]
    /// with no attributes.
    async fn resolve_objects(
        &self,
        dns: &[String],
    ) -> Result<Vec<DirectoryObject>, DirectoryError> {
        let mut objects = Vec::with_capacity(dns.len());
        for batch in dns.chunks(RESOLVE_BATCH_SIZE) {
            let clauses: String = batch
                .iter()
                .map(|dn| format!("(distinguishedName={})", escape_filter_value(dn)))
                .collect();
            let filter = format!("(|{clauses})");
            let entries = self
                .search_paged(self.base_dn(), Scope::Subtree, &filter, &OBJECT_ATTRIBUTES)
                .await?;

            let mut by_dn: HashMap<String, DirectoryObject> = HashMap::with_capacity(entries.len());
            for entry in &entries {
                let object = parse_object(entry)?;
                by_dn.insert(dn_key(&object.dn), object);
            }
            for dn in batch {
                match by_dn.remove(&dn_key(dn)) {
                    Some(object) => objects.push(object),
                    None => {
                        debug!(dn = %dn, "member not found under the base DN");
                        objects.push(DirectoryObject {
                            dn: dn.clone(),
                            kind: MemberKind::Other,
                            sam_account_name: None,
                            user_principal_name: None,
                            mail: None,
                            object_sid: None,
                        });
                    }
                }
            }
        }
        Ok(objects)
    }

    /// Adds the accounts whose `primaryGroupID` is the RID of one of the groups. AD does not
    /// list those accounts in the group's `member`, so neither the walk nor the in-chain
    /// rule finds them. RIDs count only for groups of the base DN's domain.
    async fn add_primary_group_members(
        &self,
        group_sids: &[Sid],
        found: &mut MemberSet,
    ) -> Result<(), DirectoryError> {
        let domain_sid = self.domain_sid().await?;
        let rids: Vec<u32> = group_sids
            .iter()
            .filter(|sid| sid.domain().as_ref() == Some(&domain_sid))
            .filter_map(Sid::rid)
            .collect();
        for (_, object) in self.primary_group_accounts(&rids).await? {
            found.insert(object);
        }
        Ok(())
    }

    /// Finds the accounts whose `primaryGroupID` is one of `rids`, each with that RID.
    async fn primary_group_accounts(
        &self,
        rids: &[u32],
    ) -> Result<Vec<(u32, DirectoryObject)>, DirectoryError> {
        let mut attributes = OBJECT_ATTRIBUTES.to_vec();
        attributes.push("primaryGroupID");
        let mut accounts = Vec::new();
        for batch in rids.chunks(PRIMARY_GROUP_BATCH_SIZE) {
            let clauses: String = batch
                .iter()
                .map(|rid| format!("(primaryGroupID={rid})"))
                .collect();
            let filter = format!("(|{clauses})");
            let entries = self
                .search_paged(self.base_dn(), Scope::Subtree, &filter, &attributes)
                .await?;
            for entry in &entries {
                let Some(rid) = optional_integer::<u32>(entry, "primaryGroupID")? else {
                    continue;
                };
                accounts.push((rid, parse_object(entry)?));
            }
        }
        Ok(accounts)
    }
}

/// Transitive members keyed by lowercase DN, without the group whose members they are.
struct MemberSet {
    top_key: String,
    objects: HashMap<String, DirectoryObject>,
}

impl MemberSet {
    fn new(top_dn: &str) -> Self {
        MemberSet {
            top_key: dn_key(top_dn),
            objects: HashMap::new(),
        }
    }

    fn contains_or_is_top(&self, dn: &str) -> bool {
        let key = dn_key(dn);
        key == self.top_key || self.objects.contains_key(&key)
    }

    fn insert(&mut self, object: DirectoryObject) {
        let key = dn_key(&object.dn);
        if key != self.top_key {
            self.objects.entry(key).or_insert(object);
        }
    }

    fn into_sorted(self) -> Vec<DirectoryObject> {
        let mut objects: Vec<(String, DirectoryObject)> = self.objects.into_iter().collect();
        objects.sort_by(|left, right| left.0.cmp(&right.0));
        objects.into_iter().map(|(_, object)| object).collect()
    }
}

/// Returns the key under which a DN is compared. AD compares DNs without regard to case.
//
// TODO-correctness: DNs that differ only in escaping (`\2c` against `\,`) compare unequal.
fn dn_key(dn: &str) -> String {
    dn.to_lowercase()
}

/// Collects the values of a multi-valued attribute across ranged reads and returns the
/// attribute description to request next.
#[derive(Debug)]
pub(super) struct RangeCursor {
    attribute: String,
    next_request: Option<String>,
    values: Vec<String>,
}

impl RangeCursor {
    pub(super) fn new(attribute: &str, range_size: Option<u32>) -> Self {
        let first = match range_size {
            Some(size) => format!("{attribute};range=0-{}", size.max(1) - 1),
            None => attribute.to_owned(),
        };
        RangeCursor {
            attribute: attribute.to_owned(),
            next_request: Some(first),
            values: Vec::new(),
        }
    }

    /// Returns the attribute description to request next, or `None` when all values are in.
    pub(super) fn next_request(&self) -> Option<String> {
        self.next_request.clone()
    }

    /// Takes the attributes of one response and decides the next request.
    pub(super) fn accept(
        &mut self,
        dn: &str,
        attributes: &HashMap<String, Vec<String>>,
    ) -> Result<(), DirectoryError> {
        let invalid = |reason: String| DirectoryError::InvalidRange {
            dn: dn.to_owned(),
            attribute: self.attribute.clone(),
            reason,
        };

        let mut matched = None;
        for (name, values) in attributes {
            if name.eq_ignore_ascii_case(&self.attribute) {
                matched = Some((None, values));
            } else if let Some(range) = parse_range_option(name, &self.attribute) {
                matched = Some((Some(range.map_err(&invalid)?), values));
            }
        }

        self.next_request = None;
        match matched {
            // No values, or the previous range was the last one with no values left.
            None => Ok(()),
            Some((None, _)) if !self.values.is_empty() => Err(invalid(format!(
                "the server returned the whole attribute after {} ranged values",
                self.values.len()
            ))),
            Some((None, values)) => {
                self.values.extend(values.iter().cloned());
                Ok(())
            }
            Some((Some((low, high)), values)) => {
                if low != self.values.len() {
                    return Err(invalid(format!(
                        "the answer starts at value {low}, but {} values were read so far",
                        self.values.len()
                    )));
                }
                self.values.extend(values.iter().cloned());
                if let Some(high) = high {
                    if values.is_empty() || high < low {
                        return Err(invalid(format!(
                            "the range {low}-{high} returned {} values",
                            values.len()
                        )));
                    }
                    self.next_request =
                        Some(format!("{};range={}-*", self.attribute, self.values.len()));
                }
                Ok(())
            }
        }
    }

    pub(super) fn into_values(self) -> Vec<String> {
        self.values
    }
}

/// Parses `ATTRIBUTE;range=LOW-HIGH` or `ATTRIBUTE;range=LOW-*` into `(LOW, Some(HIGH))` or
/// `(LOW, None)`. Returns `None` when `name` is not a ranged form of `attribute`.
fn parse_range_option(
    name: &str,
    attribute: &str,
) -> Option<Result<(usize, Option<usize>), String>> {
    let (base, option) = name.split_once(';')?;
    if !base.eq_ignore_ascii_case(attribute) {
        return None;
    }
    let bounds = option
        .get(..6)
        .filter(|prefix| prefix.eq_ignore_ascii_case("range="))?;
    let bounds = &option[bounds.len()..];
    let parsed = (|| {
        let (low, high) = bounds.split_once('-')?;
        let low = low.parse().ok()?;
        let high = if high == "*" {
            None
        } else {
            Some(high.parse().ok()?)
        };
        Some((low, high))
    })();
    Some(parsed.ok_or_else(|| format!("unparsable range option {name:?}")))
}

fn parse_group(entry: &SearchEntry) -> Result<Group, DirectoryError> {
    Ok(Group {
        dn: entry.dn.clone(),
        sam_account_name: first_value(entry, "sAMAccountName").map(str::to_owned),
        name: first_value(entry, "name")
            .or_else(|| first_value(entry, "cn"))
            .map(str::to_owned),
        mail: first_value(entry, "mail").map(str::to_owned),
        object_sid: optional_sid(entry, "objectSid")?,
        group_type: optional_integer(entry, "groupType")?,
    })
}

fn parse_object(entry: &SearchEntry) -> Result<DirectoryObject, DirectoryError> {
    let classes = values(entry, "objectClass");
    let has_class = |class: &str| {
        classes
            .iter()
            .any(|value| value.eq_ignore_ascii_case(class))
    };
    // computer derives from user, so it is tested first.
    let kind = if has_class("computer") {
        MemberKind::Computer
    } else if has_class("user") {
        MemberKind::User
    } else if has_class("group") {
        MemberKind::Group
    } else if has_class("contact") {
        MemberKind::Contact
    } else if has_class("foreignSecurityPrincipal") {
        MemberKind::ForeignSecurityPrincipal
    } else {
        MemberKind::Other
    };
    Ok(DirectoryObject {
        dn: entry.dn.clone(),
        kind,
        sam_account_name: first_value(entry, "sAMAccountName").map(str::to_owned),
        user_principal_name: first_value(entry, "userPrincipalName").map(str::to_owned),
        mail: first_value(entry, "mail").map(str::to_owned),
        object_sid: optional_sid(entry, "objectSid")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(name: &str, values: std::ops::Range<usize>) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            name.to_owned(),
            values.map(|index| format!("CN=m{index}")).collect(),
        )])
    }

    #[test]
    fn range_cursor_takes_plain_answer() {
        let mut cursor = RangeCursor::new("member", None);
        assert_eq!(cursor.next_request().as_deref(), Some("member"));
        cursor
            .accept("CN=g", &answer("member", 0..2000))
            .expect("a plain answer is complete");
        assert_eq!(cursor.next_request(), None);
        assert_eq!(cursor.into_values().len(), 2000);
    }

    #[test]
    fn range_cursor_follows_server_imposed_ranges() {
        let mut cursor = RangeCursor::new("member", None);
        cursor
            .accept("CN=g", &answer("member;range=0-1499", 0..1500))
            .expect("first range");
        assert_eq!(
            cursor.next_request().as_deref(),
            Some("member;range=1500-*")
        );
        cursor
            .accept("CN=g", &answer("member;range=1500-2999", 1500..3000))
            .expect("second range");
        assert_eq!(
            cursor.next_request().as_deref(),
            Some("member;range=3000-*")
        );
        cursor
            .accept("CN=g", &answer("member;range=3000-*", 3000..3200))
            .expect("last range");
        assert_eq!(cursor.next_request(), None);
        let values = cursor.into_values();
        assert_eq!(values.len(), 3200);
        assert_eq!(values[3199], "CN=m3199");
    }

    #[test]
    fn range_cursor_requests_explicit_first_range() {
        let mut cursor = RangeCursor::new("member", Some(1500));
        assert_eq!(
            cursor.next_request().as_deref(),
            Some("member;range=0-1499")
        );
        cursor
            .accept("CN=g", &answer("Member;Range=0-*", 0..10))
            .expect("a short group ends at once");
        assert_eq!(cursor.next_request(), None);
        assert_eq!(cursor.into_values().len(), 10);
    }

    #[test]
    fn range_cursor_ends_on_empty_answer() {
        let mut cursor = RangeCursor::new("member", None);
        cursor
            .accept("CN=g", &HashMap::new())
            .expect("a group without members is valid");
        assert_eq!(cursor.next_request(), None);
        assert!(cursor.into_values().is_empty());
    }

    #[test]
    fn range_cursor_rejects_gaps_and_stalls() {
        let mut gap = RangeCursor::new("member", None);
        gap.accept("CN=g", &answer("member;range=0-1499", 0..1500))
            .expect("first range");
        let error = gap
            .accept("CN=g", &answer("member;range=1600-*", 1600..1700))
            .expect_err("a gap is an error");
        assert!(
            matches!(error, DirectoryError::InvalidRange { .. }),
            "{error}"
        );

        let mut stall = RangeCursor::new("member", None);
        let error = stall
            .accept("CN=g", &answer("member;range=0-1499", 0..0))
            .expect_err("an empty range is an error");
        assert!(
            matches!(error, DirectoryError::InvalidRange { .. }),
            "{error}"
        );

        let mut garbage = RangeCursor::new("member", None);
        let error = garbage
            .accept("CN=g", &answer("member;range=a-b", 0..1))
            .expect_err("garbage is an error");
        assert!(
            matches!(error, DirectoryError::InvalidRange { .. }),
            "{error}"
        );
    }

    #[test]
    fn range_cursor_rejects_whole_attribute_after_ranges() {
        let mut cursor = RangeCursor::new("member", None);
        cursor
            .accept("CN=g", &answer("member;range=0-1499", 0..1500))
            .expect("first range");
        let error = cursor
            .accept("CN=g", &answer("member", 0..2000))
            .expect_err("a whole attribute after ranges would repeat values");
        assert!(
            matches!(error, DirectoryError::InvalidRange { .. }),
            "{error}"
        );
    }

    #[test]
    fn range_option_ignores_other_attributes() {
        assert!(parse_range_option("memberOf;range=0-1", "member").is_none());
        assert!(parse_range_option("member;binary", "member").is_none());
        assert_eq!(
            parse_range_option("member;range=5-*", "member"),
            Some(Ok((5, None)))
        );
    }

    #[test]
    fn group_type_sign_bit_marks_security_group() {
        let mut group = Group {
            dn: "CN=g".to_owned(),
            sam_account_name: None,
            name: None,
            mail: None,
            object_sid: None,
            group_type: Some(-2_147_483_646),
        };
        assert!(group.is_security_group());
        group.group_type = Some(2);
        assert!(!group.is_security_group());
    }
}
