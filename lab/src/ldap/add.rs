//! Add: users, groups, contacts, organizational units and containers, with AD's defaults
//! and checks.
//!
//! A new user without `userAccountControl` starts disabled with 546 (NORMAL_ACCOUNT,
//! PASSWD_NOTREQD, ACCOUNTDISABLE). Without `sAMAccountName` it gets a generated one. An
//! enabled account needs a password unless PASSWD_NOTREQD is set, and `unicodePwd` is
//! accepted only over LDAPS or after StartTLS.

use std::collections::BTreeMap;

use chrono::Utc;
use ldap3_proto::proto::{LdapAddRequest, LdapResult};
use uuid::Uuid;

use super::diagnostics::{self, Failure};
use super::dn::Dn;
use super::entries::{self, Entry};
use super::schema::{self, Access};
use super::session::Session;
use super::write::{self, Class, DEFAULT_USER_ACCOUNT_CONTROL};
use crate::LabState;
use crate::fixture::{GroupKind, MailboxLocation};
use crate::world::directory::{Contact, DOMAIN_USERS_RID, Directory, Group, User, uac};
use crate::world::filetime_now;

/// `groupType` of a group added without one: a global security group.
const DEFAULT_GROUP_TYPE: i64 = -2_147_483_646;

/// Handles an add request.
pub(super) fn handle(state: &LabState, session: &Session, request: &LdapAddRequest) -> LdapResult {
    match add(state, session, request) {
        Ok(()) => diagnostics::success(),
        Err(failure) => failure.into_result(),
    }
}

fn add(state: &LabState, session: &Session, request: &LdapAddRequest) -> Result<(), Failure> {
    session.require_bind()?;
    let dn = Dn::parse(&request.dn).map_err(|()| diagnostics::invalid_dn(&request.dn))?;
    let rdn = dn
        .rdn()
        .ok_or_else(|| diagnostics::invalid_dn(&request.dn))?;

    // Attribute names to canonical spelling, values merged when a name repeats.
    let mut attributes: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for attribute in &request.attributes {
        let definition =
            schema::lookup(&attribute.atype).ok_or_else(diagnostics::undefined_attribute)?;
        attributes
            .entry(definition.name.to_string())
            .or_default()
            .extend(attribute.vals.iter().cloned());
    }
    let object_classes = write::texts(&attributes.remove("objectClass").unwrap_or_default())?;
    let class = Class::from_object_classes(&object_classes)?;

    let mut world = state.write();
    session.require_admin(&world)?;
    let directory = &world.directory;
    let key = dn.key();
    if Entry::find(directory, &key).is_some() {
        return Err(diagnostics::entry_exists());
    }
    let parent = dn
        .parent()
        .filter(|p| !p.is_root())
        .ok_or_else(diagnostics::naming_violation)?;
    let parent_entry = Entry::find(directory, &parent.key())
        .ok_or_else(|| diagnostics::no_such_object(&entries::best_match(directory, &dn)))?;
    if !parent_entry.is_container() {
        return Err(diagnostics::naming_violation());
    }
    if !rdn.attribute.eq_ignore_ascii_case(class.naming_attribute()) {
        return Err(diagnostics::naming_violation());
    }

    // The naming attribute must agree with the RDN. A few system attributes that LDIF
    // exports carry are accepted and ignored, and every other attribute must be writable
    // for the class.
    let mut fields = BTreeMap::new();
    for (name, values) in attributes {
        let texts = write::texts(&values);
        match name.as_str() {
            "cn" | "ou" | "name" => {
                let value = write::single(&name, &texts?)?;
                if !value.eq_ignore_ascii_case(&rdn.value) {
                    return Err(diagnostics::naming_violation());
                }
            }
            "distinguishedName" | "instanceType" | "objectCategory" => {}
            _ if schema::lookup(&name).is_some_and(|a| a.access != Access::Write) => {
                return Err(diagnostics::unwilling());
            }
            _ if !class.allows(&name) => return Err(diagnostics::object_class_violation()),
            "unicodePwd" => {
                fields.insert(name, Value::Binary(values));
            }
            _ => {
                fields.insert(name, Value::Text(texts?));
            }
        }
    }

    let canonical = dn.canonical();
    let common_name = rdn.value.clone();
    let world = &mut *world;
    let id = match class {
        Class::User => add_user(
            &mut world.directory,
            session,
            canonical.clone(),
            common_name,
            &mut fields,
        )?,
        Class::Group => add_group(
            &mut world.directory,
            canonical.clone(),
            common_name,
            &mut fields,
        )?,
        Class::Contact => add_contact(
            &mut world.directory,
            canonical.clone(),
            common_name,
            &mut fields,
        )?,
        Class::OrganizationalUnit | Class::Container => {
            world.directory.containers.insert(canonical.clone());
            None
        }
    };

    // What is left has no field of its own.
    let extra: BTreeMap<String, Vec<String>> = fields
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::Text(values) if !values.is_empty() => Some((name, values)),
            _ => None,
        })
        .collect();
    if !extra.is_empty() {
        world.directory.extra_attributes.insert(key, extra);
    }
    tracing::info!(
        service = "ldap",
        connection = session.id,
        dn = %canonical,
        object = ?id,
        actor = session.actor(),
        "added a directory object"
    );
    Ok(())
}

/// An attribute's values on their way into the new object.
enum Value {
    Text(Vec<String>),
    Binary(Vec<Vec<u8>>),
}

fn take_text(fields: &mut BTreeMap<String, Value>, name: &str) -> Option<Vec<String>> {
    match fields.remove(name)? {
        Value::Text(values) => Some(values),
        Value::Binary(_) => None,
    }
}

fn take_single(
    fields: &mut BTreeMap<String, Value>,
    name: &str,
) -> Result<Option<String>, Failure> {
    take_text(fields, name)
        .map(|values| write::single(name, &values))
        .transpose()
}

fn add_user(
    directory: &mut Directory,
    session: &Session,
    dn: String,
    cn: String,
    fields: &mut BTreeMap<String, Value>,
) -> Result<Option<Uuid>, Failure> {
    let sam =
        take_single(fields, "sAMAccountName")?.unwrap_or_else(write::generated_sam_account_name);
    write::check_sam_free(directory, &sam, None)?;
    let upn = take_single(fields, "userPrincipalName")?;
    if let Some(upn) = &upn {
        write::check_upn_free(directory, upn, None)?;
    }
    let display_name = take_single(fields, "displayName")?;
    let title = take_single(fields, "title")?;
    let mail = take_single(fields, "mail")?;
    let proxy_addresses = take_text(fields, "proxyAddresses").unwrap_or_default();
    let flags = match take_text(fields, "userAccountControl") {
        Some(values) => u32::try_from(write::single_integer("userAccountControl", &values)?)
            .map_err(|_| diagnostics::invalid_syntax())?,
        None => DEFAULT_USER_ACCOUNT_CONTROL,
    };
    if take_single(fields, "primaryGroupID")?
        .is_some_and(|rid| rid.trim() != DOMAIN_USERS_RID.to_string())
    {
        // A new account belongs to no group yet, so Domain Users is the only primary group
        // AD accepts.
        return Err(diagnostics::unwilling());
    }
    let password = match fields.remove("unicodePwd") {
        Some(Value::Binary(values)) => {
            let [value] = values.as_slice() else {
                return Err(diagnostics::single_value("unicodePwd"));
            };
            Some(write::new_password(
                value,
                session.encrypted,
                &sam,
                display_name.as_deref().unwrap_or_default(),
            )?)
        }
        _ => None,
    };
    if password.is_none() && flags & (uac::ACCOUNT_DISABLE | uac::PASSWORD_NOT_REQUIRED) == 0 {
        return Err(diagnostics::password_required());
    }
    let pwd_last_set = match take_single(fields, "pwdLastSet")?.as_deref().map(str::trim) {
        Some("0") => 0,
        Some("-1") => filetime_now(),
        Some(_) => return Err(diagnostics::unwilling()),
        None if password.is_some() => filetime_now(),
        None => 0,
    };

    let id = Uuid::new_v4();
    let rid = directory.allocate_rid();
    directory.insert_user(User {
        id,
        sam,
        upn: upn.unwrap_or_default(),
        cn,
        dn,
        display_name: display_name.unwrap_or_default(),
        title,
        mail,
        proxy_addresses,
        uac: flags,
        password,
        pwd_last_set,
        rid,
        primary_group_rid: DOMAIN_USERS_RID,
        mailbox: MailboxLocation::None,
        created: Utc::now(),
    });
    Ok(Some(id))
}

fn add_group(
    directory: &mut Directory,
    dn: String,
    cn: String,
    fields: &mut BTreeMap<String, Value>,
) -> Result<Option<Uuid>, Failure> {
    let sam =
        take_single(fields, "sAMAccountName")?.unwrap_or_else(write::generated_sam_account_name);
    write::check_sam_free(directory, &sam, None)?;
    let group_type = match take_text(fields, "groupType") {
        Some(values) => write::single_integer("groupType", &values)?,
        None => DEFAULT_GROUP_TYPE,
    };
    let members = take_text(fields, "member")
        .unwrap_or_default()
        .iter()
        .map(|value| write::resolve_member(directory, value))
        .collect::<Result<Vec<Uuid>, Failure>>()?;
    let mail = take_single(fields, "mail")?;

    let id = Uuid::new_v4();
    let rid = directory.allocate_rid();
    directory.insert_group(Group {
        id,
        sam,
        cn,
        dn,
        mail,
        kind: kind_of_group_type(group_type),
        rid,
        members: Vec::new(),
        created: Utc::now(),
    });
    for member in members {
        directory.add_member(id, member);
    }
    // The world models only the security bit; the written value keeps the scope bits.
    fields.insert(
        "groupType".into(),
        Value::Text(vec![group_type.to_string()]),
    );
    Ok(Some(id))
}

fn add_contact(
    directory: &mut Directory,
    dn: String,
    cn: String,
    fields: &mut BTreeMap<String, Value>,
) -> Result<Option<Uuid>, Failure> {
    let id = Uuid::new_v4();
    directory.insert_contact(Contact {
        id,
        cn,
        dn,
        display_name: take_single(fields, "displayName")?,
        mail: take_single(fields, "mail")?,
        proxy_addresses: take_text(fields, "proxyAddresses").unwrap_or_default(),
        created: Utc::now(),
    });
    Ok(Some(id))
}

/// Maps a `groupType` to the world's group kind: the sign bit marks a security group.
pub(super) fn kind_of_group_type(group_type: i64) -> GroupKind {
    if group_type & 0x8000_0000 != 0 {
        GroupKind::Security
    } else {
        GroupKind::Distribution
    }
}
