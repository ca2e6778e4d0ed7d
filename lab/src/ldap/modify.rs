//! Modify: account control, passwords, names and addresses of users, group membership,
//! and the attributes without a field of their own, applied all or nothing as AD applies
//! one modify request.
//!
//! Passwords follow AD's two forms: an administrator's reset replaces `unicodePwd`, and a
//! user's own change deletes the old value and adds the new one in one request. Both need
//! LDAPS or StartTLS. Changing `primaryGroupID` moves the account the way AD does: the new
//! primary group must list it as a member and stops listing it, and the old primary group
//! lists it from then on.

use std::collections::BTreeMap;

use ldap3_proto::proto::{LdapModify, LdapModifyRequest, LdapModifyType, LdapResult};
use uuid::Uuid;

use super::add::kind_of_group_type;
use super::controls::RequestControls;
use super::diagnostics::{self, Failure};
use super::dn::Dn;
use super::entries::{self, Entry};
use super::schema::{self, Access};
use super::session::Session;
use super::write::{self, Class};
use crate::LabState;
use crate::world::directory::{Contact, Directory, Group, User, uac};
use crate::world::{World, filetime_now};

/// Handles a modify request.
pub(super) fn handle(
    state: &LabState,
    session: &Session,
    request: &LdapModifyRequest,
    controls: &RequestControls,
) -> LdapResult {
    match modify(state, session, request, controls) {
        Ok(()) => diagnostics::success(),
        Err(failure) => failure.into_result(),
    }
}

/// The changes of one request, gathered before any of them is applied.
struct Plan {
    key: String,
    extras: BTreeMap<String, Vec<String>>,
    object: Option<Changed>,
}

enum Changed {
    User {
        user: Box<User>,
        /// The group that becomes the primary group, and the previous primary group.
        primary_group_move: Option<(Uuid, Option<Uuid>)>,
    },
    Group {
        group: Box<Group>,
        members: Vec<Uuid>,
    },
    Contact(Box<Contact>),
}

fn modify(
    state: &LabState,
    session: &Session,
    request: &LdapModifyRequest,
    controls: &RequestControls,
) -> Result<(), Failure> {
    let principal = session.require_bind()?.clone();
    let dn = Dn::parse(&request.dn).map_err(|()| diagnostics::invalid_dn(&request.dn))?;
    let mut world = state.write();
    let entry = Entry::find(&world.directory, &dn.key())
        .ok_or_else(|| diagnostics::no_such_object(&entries::best_match(&world.directory, &dn)))?;
    // AD lets an account change its own password without further rights; every other
    // change needs Domain Admins in the lab.
    let own_password_change =
        entry.object_id() == Some(principal.user) && is_password_change(&request.changes);
    if !own_password_change {
        session.require_admin(&world)?;
    }
    let class = Class::of(&entry).ok_or_else(diagnostics::unwilling)?;
    let plan = plan(&world, session, &entry, class, &request.changes, controls)?;
    let target = entry.dn().to_string();
    commit(&mut world, plan);
    tracing::info!(
        service = "ldap",
        connection = session.id,
        dn = %target,
        attributes = ?request.changes.iter().map(|c| c.modification.atype.as_str()).collect::<Vec<_>>(),
        actor = session.actor(),
        "modified a directory object"
    );
    Ok(())
}

/// Tells whether the changes are exactly a password change: delete the old `unicodePwd`
/// value, add the new one.
fn is_password_change(changes: &[LdapModify]) -> bool {
    matches!(changes, [delete, add]
        if delete.operation == LdapModifyType::Delete
            && add.operation == LdapModifyType::Add
            && delete.modification.atype.eq_ignore_ascii_case("unicodePwd")
            && add.modification.atype.eq_ignore_ascii_case("unicodePwd"))
}

fn plan(
    world: &World,
    session: &Session,
    entry: &Entry<'_>,
    class: Class,
    changes: &[LdapModify],
    controls: &RequestControls,
) -> Result<Plan, Failure> {
    let directory = &world.directory;
    let mut plan = Plan {
        key: entry.key(),
        extras: entry.extra().cloned().unwrap_or_default(),
        object: match class {
            Class::User => entry.user().map(|user| Changed::User {
                user: Box::new(user.clone()),
                primary_group_move: None,
            }),
            Class::Group => entry.group().map(|group| Changed::Group {
                group: Box::new(group.clone()),
                members: group.members.clone(),
            }),
            Class::Contact => entry
                .object_id()
                .and_then(|id| directory.contacts.get(&id))
                .map(|contact| Changed::Contact(Box::new(contact.clone()))),
            Class::OrganizationalUnit | Class::Container => None,
        },
    };
    // A verified old password, waiting for the new one.
    let mut old_password_verified = false;

    for change in changes {
        let definition = schema::lookup(&change.modification.atype)
            .ok_or_else(diagnostics::undefined_attribute)?;
        let name = definition.name;
        if definition.access != Access::Write {
            return Err(diagnostics::unwilling());
        }
        if !class.allows(name) {
            return Err(diagnostics::object_class_violation());
        }
        let raw = &change.modification.vals;
        let op = &change.operation;
        let permissive = controls.permissive_modify;

        match plan.object.as_mut() {
            Some(Changed::User {
                user,
                primary_group_move,
            }) => match name {
                "unicodePwd" => {
                    password_change(user, session, op, raw, &mut old_password_verified)?
                }
                "sAMAccountName" => {
                    let values = write::apply_values(
                        name,
                        std::slice::from_ref(&user.sam),
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                    let sam = values
                        .into_iter()
                        .next()
                        .ok_or_else(diagnostics::unwilling)?;
                    write::check_sam_free(directory, &sam, Some(user.id))?;
                    user.sam = sam;
                }
                "userPrincipalName" => {
                    let current: Vec<String> = (!user.upn.is_empty())
                        .then(|| user.upn.clone())
                        .into_iter()
                        .collect();
                    let values =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?;
                    let upn = values.into_iter().next().unwrap_or_default();
                    if !upn.is_empty() {
                        write::check_upn_free(directory, &upn, Some(user.id))?;
                    }
                    user.upn = upn;
                }
                "displayName" => {
                    let current: Vec<String> = (!user.display_name.is_empty())
                        .then(|| user.display_name.clone())
                        .into_iter()
                        .collect();
                    user.display_name =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next()
                            .unwrap_or_default();
                }
                "mail" => {
                    let current: Vec<String> = user.mail.iter().cloned().collect();
                    user.mail =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next();
                }
                "title" => {
                    let current: Vec<String> = user.title.iter().cloned().collect();
                    user.title =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next();
                }
                "proxyAddresses" => {
                    user.proxy_addresses = write::apply_values(
                        name,
                        &user.proxy_addresses,
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                }
                "userAccountControl" => {
                    let values = write::apply_values(
                        name,
                        &[user.uac.to_string()],
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                    user.uac = u32::try_from(write::single_integer(name, &values)?)
                        .map_err(|_| diagnostics::invalid_syntax())?;
                }
                "pwdLastSet" => {
                    let values = write::texts(raw)?;
                    // AD accepts only 0 (must change at next logon) and -1 (now).
                    user.pwd_last_set = match write::single(name, &values)?.trim() {
                        "0" => 0,
                        "-1" => filetime_now(),
                        _ => return Err(diagnostics::unwilling()),
                    };
                }
                "primaryGroupID" => {
                    let values = write::texts(raw)?;
                    let rid = u32::try_from(write::single_integer(name, &values)?)
                        .map_err(|_| diagnostics::invalid_syntax())?;
                    if rid != user.primary_group_rid {
                        let group = directory
                            .group_by_rid(rid)
                            .ok_or_else(diagnostics::unwilling)?;
                        if !group.members.contains(&user.id) {
                            return Err(diagnostics::unwilling());
                        }
                        let previous = directory.group_by_rid(user.primary_group_rid).map(|g| g.id);
                        *primary_group_move = Some((group.id, previous));
                        user.primary_group_rid = rid;
                    }
                }
                _ => modify_extra(&mut plan.extras, name, op, raw, permissive)?,
            },
            Some(Changed::Group { group, members }) => match name {
                "member" => {
                    modify_members(directory, members, op, &write::texts(raw)?, permissive)?
                }
                "sAMAccountName" => {
                    let values = write::apply_values(
                        name,
                        std::slice::from_ref(&group.sam),
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                    let sam = values
                        .into_iter()
                        .next()
                        .ok_or_else(diagnostics::unwilling)?;
                    write::check_sam_free(directory, &sam, Some(group.id))?;
                    group.sam = sam;
                }
                "groupType" => {
                    let values = write::apply_values(
                        name,
                        &[entry.group_type().to_string()],
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                    let group_type = write::single_integer(name, &values)?;
                    group.kind = kind_of_group_type(group_type);
                    plan.extras
                        .insert(name.to_string(), vec![group_type.to_string()]);
                }
                "mail" => {
                    let current: Vec<String> = group.mail.iter().cloned().collect();
                    group.mail =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next();
                }
                "proxyAddresses" => {
                    if !plan.extras.contains_key(name) {
                        let derived = write::texts(&entry.values(name))?;
                        plan.extras.insert(name.to_string(), derived);
                    }
                    modify_extra(&mut plan.extras, name, op, raw, permissive)?;
                }
                _ => modify_extra(&mut plan.extras, name, op, raw, permissive)?,
            },
            Some(Changed::Contact(contact)) => match name {
                "displayName" => {
                    let current: Vec<String> = contact.display_name.iter().cloned().collect();
                    contact.display_name =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next();
                }
                "mail" => {
                    let current: Vec<String> = contact.mail.iter().cloned().collect();
                    contact.mail =
                        write::apply_values(name, &current, op, &write::texts(raw)?, permissive)?
                            .into_iter()
                            .next();
                }
                "proxyAddresses" => {
                    contact.proxy_addresses = write::apply_values(
                        name,
                        &contact.proxy_addresses,
                        op,
                        &write::texts(raw)?,
                        permissive,
                    )?;
                }
                _ => modify_extra(&mut plan.extras, name, op, raw, permissive)?,
            },
            None => modify_extra(&mut plan.extras, name, op, raw, permissive)?,
        }
    }

    if old_password_verified {
        // A deleted old password without a new one.
        return Err(diagnostics::unwilling());
    }
    if let Some(Changed::User { user, .. }) = &plan.object
        && user.password.is_none()
        && user.uac & (uac::ACCOUNT_DISABLE | uac::PASSWORD_NOT_REQUIRED) == 0
    {
        return Err(diagnostics::password_required());
    }
    Ok(plan)
}

/// Applies one `unicodePwd` modification: a reset (replace) or one half of a change (delete
/// the old value, then add the new one).
fn password_change(
    user: &mut User,
    session: &Session,
    operation: &LdapModifyType,
    values: &[Vec<u8>],
    old_password_verified: &mut bool,
) -> Result<(), Failure> {
    if !session.encrypted {
        return Err(diagnostics::password_needs_encryption());
    }
    let [value] = values else {
        return Err(diagnostics::unwilling());
    };
    match operation {
        LdapModifyType::Replace => {
            let password = write::new_password(value, true, &user.sam, &user.display_name)?;
            user.password = Some(password);
            user.pwd_last_set = filetime_now();
        }
        LdapModifyType::Delete => {
            let old = super::password::decode_unicode_pwd(value)
                .ok_or_else(diagnostics::invalid_password_value)?;
            if user.password.as_deref() != Some(old.as_str()) {
                return Err(diagnostics::invalid_password_value());
            }
            *old_password_verified = true;
        }
        LdapModifyType::Add if *old_password_verified => {
            let password = write::new_password(value, true, &user.sam, &user.display_name)?;
            user.password = Some(password);
            user.pwd_last_set = filetime_now();
            *old_password_verified = false;
        }
        _ => return Err(diagnostics::unwilling()),
    }
    Ok(())
}

/// Applies one modification of `member`, with AD's errors for a member that is there
/// already (`entryAlreadyExists`) or not there (`unwillingToPerform`).
fn modify_members(
    directory: &Directory,
    members: &mut Vec<Uuid>,
    operation: &LdapModifyType,
    values: &[String],
    permissive: bool,
) -> Result<(), Failure> {
    let resolved = values
        .iter()
        .map(|value| write::resolve_member(directory, value))
        .collect::<Result<Vec<Uuid>, Failure>>()?;
    match operation {
        LdapModifyType::Add => {
            for id in resolved {
                if members.contains(&id) {
                    if permissive {
                        continue;
                    }
                    return Err(diagnostics::already_a_member());
                }
                members.push(id);
            }
        }
        LdapModifyType::Delete if resolved.is_empty() => members.clear(),
        LdapModifyType::Delete => {
            for id in resolved {
                if !members.contains(&id) {
                    if permissive {
                        continue;
                    }
                    return Err(diagnostics::not_a_member());
                }
                members.retain(|m| *m != id);
            }
        }
        LdapModifyType::Replace => {
            members.clear();
            for id in resolved {
                if !members.contains(&id) {
                    members.push(id);
                }
            }
        }
        LdapModifyType::Increment => return Err(diagnostics::unwilling()),
    }
    Ok(())
}

/// Applies one modification to an attribute kept among the extra attributes.
fn modify_extra(
    extras: &mut BTreeMap<String, Vec<String>>,
    name: &str,
    operation: &LdapModifyType,
    values: &[Vec<u8>],
    permissive: bool,
) -> Result<(), Failure> {
    let current = extras.get(name).cloned().unwrap_or_default();
    let values = write::apply_values(
        name,
        &current,
        operation,
        &write::texts(values)?,
        permissive,
    )?;
    if values.is_empty() {
        extras.remove(name);
    } else {
        extras.insert(name.to_string(), values);
    }
    Ok(())
}

fn commit(world: &mut World, plan: Plan) {
    let directory = &mut world.directory;
    match plan.object {
        Some(Changed::User {
            user,
            primary_group_move,
        }) => {
            let id = user.id;
            directory.edit_user(id, |current| *current = *user);
            if let Some((new_primary, previous)) = primary_group_move {
                directory.remove_member(new_primary, id);
                if let Some(previous) = previous {
                    directory.add_member(previous, id);
                }
            }
        }
        Some(Changed::Group { group, members }) => {
            let id = group.id;
            let before = directory
                .groups
                .get(&id)
                .map(|g| g.members.clone())
                .unwrap_or_default();
            directory.edit_group(id, |current| {
                current.sam = group.sam.clone();
                current.mail = group.mail.clone();
                current.kind = group.kind;
            });
            for removed in before.iter().filter(|m| !members.contains(m)) {
                directory.remove_member(id, *removed);
            }
            for added in members.iter().filter(|m| !before.contains(m)) {
                directory.add_member(id, *added);
            }
        }
        Some(Changed::Contact(contact)) => {
            let id = contact.id;
            directory.edit_contact(id, |current| *current = *contact);
        }
        None => {}
    }
    if plan.extras.is_empty() {
        directory.extra_attributes.remove(&plan.key);
    } else {
        directory.extra_attributes.insert(plan.key, plan.extras);
    }
}
