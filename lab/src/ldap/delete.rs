//! Delete: leaf entries, and whole subtrees with the tree-delete control. Deleting an
//! object removes it from every group, as AD removes the links of a deleted object. The
//! domain head, the default containers and the built-in groups cannot be deleted.

use ldap3_proto::proto::LdapResult;

use super::controls::RequestControls;
use super::diagnostics::{self, Failure};
use super::dn::Dn;
use super::entries::{self, Entry, ObjectId};
use super::session::Session;
use crate::LabState;
use crate::world::World;

/// Handles a delete request.
pub(super) fn handle(
    state: &LabState,
    session: &Session,
    dn: &str,
    controls: &RequestControls,
) -> LdapResult {
    match delete(state, session, dn, controls) {
        Ok(deleted) => {
            tracing::info!(
                service = "ldap",
                connection = session.id,
                dn,
                entries = deleted,
                actor = session.actor(),
                "deleted directory entries"
            );
            diagnostics::success()
        }
        Err(failure) => failure.into_result(),
    }
}

/// Deletes the entry (and with tree delete its subtree) and returns how many entries went.
fn delete(
    state: &LabState,
    session: &Session,
    text: &str,
    controls: &RequestControls,
) -> Result<usize, Failure> {
    session.require_bind()?;
    let dn = Dn::parse(text).map_err(|()| diagnostics::invalid_dn(text))?;
    let mut world = state.write();
    session.require_admin(&world)?;

    let directory = &world.directory;
    let entry = Entry::find(directory, &dn.key())
        .ok_or_else(|| diagnostics::no_such_object(&entries::best_match(directory, &dn)))?;
    if entry.is_critical() {
        return Err(diagnostics::unwilling());
    }

    // The entry and everything below it, with each entry's depth.
    let key = entry.key();
    let suffix = format!(",{key}");
    let mut subtree: Vec<(usize, ObjectId)> = entries::all(directory)
        .into_iter()
        .filter_map(|id| {
            let child = Entry::get(directory, &id)?;
            let child_key = child.key();
            (child_key == key || child_key.ends_with(&suffix))
                .then(|| (child_key.matches(',').count(), id))
        })
        .collect();
    if subtree.len() > 1 && !controls.tree_delete {
        return Err(diagnostics::not_a_leaf());
    }
    if subtree
        .iter()
        .any(|(_, id)| Entry::get(directory, id).is_some_and(|child| child.is_critical()))
    {
        return Err(diagnostics::unwilling());
    }

    // Deepest entries first, so that containers go after their children.
    subtree.sort_by_key(|(depth, _)| std::cmp::Reverse(*depth));
    let count = subtree.len();
    for (_, id) in subtree {
        remove(&mut world, &id);
    }
    Ok(count)
}

fn remove(world: &mut World, id: &ObjectId) {
    let directory = &mut world.directory;
    match id {
        ObjectId::Domain => {}
        ObjectId::Container(stored) => {
            directory.extra_attributes.remove(
                &Entry::get(directory, id)
                    .map(|e| e.key())
                    .unwrap_or_default(),
            );
            directory.containers.remove(stored);
        }
        ObjectId::Object(object) => {
            directory.remove(*object);
            // A deleted user's mailbox is disconnected, so it no longer receives or serves
            // mail.
            world.exchange.mailboxes.remove(object);
        }
    }
}
