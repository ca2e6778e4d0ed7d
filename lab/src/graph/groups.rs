//! Groups: list with `$filter` (`mail eq`, `displayName eq`), get by object ID, and
//! transitive members (all, or only users through the `microsoft.graph.user` cast) with
//! `$select`, `$top` and `@odata.nextLink` paging.
//!
//! Active Directory's built-in groups (Domain Users, Domain Admins) are not synchronized to
//! Entra ID, so Graph does not list them. See
//! <https://learn.microsoft.com/graph/api/group-list-transitivemembers>.

use axum::Extension;
use axum::extract::{OriginalUri, Path, State};
use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::odata::QueryOptions;
use super::{
    Caller, GraphError, GraphResult, Shared, entity, graph_time, list_directory, parse_object_id,
    users,
};
use crate::World;
use crate::fixture::GroupKind;
use crate::world::directory::{Group, ObjectKind};

/// Permissions that let an application read groups and their members.
const GROUP_READ: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// RIDs below this are Active Directory's built-in objects.
const FIRST_ORDINARY_RID: u32 = 1000;

fn is_synchronized(group: &Group) -> bool {
    group.rid >= FIRST_ORDINARY_RID
}

/// Renders the JSON form of a group.
fn to_json(world: &World, group: &Group) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.group",
        "id": group.id,
        "createdDateTime": graph_time(group.created),
        "description": null,
        "displayName": group.cn,
        "groupTypes": [],
        "mail": group.mail,
        "mailEnabled": group.mail.is_some(),
        "mailNickname": group.sam,
        "onPremisesDomainName": world.directory.domain,
        "onPremisesSamAccountName": group.sam,
        "onPremisesSecurityIdentifier": world.directory.sid_of(group.rid),
        "onPremisesSyncEnabled": true,
        "proxyAddresses": group.mail.iter().map(|m| format!("SMTP:{m}")).collect::<Vec<_>>(),
        "securityEnabled": group.kind == GroupKind::Security,
    })
}

/// Applies `$select`; plain group reads carry no `@odata.type`.
fn shape(options: &QueryOptions, item: Value, typed: bool) -> Value {
    let mut projected = options.project(item);
    if !typed && let Value::Object(map) = &mut projected {
        map.remove("@odata.type");
    }
    projected
}

fn find<'w>(world: &'w World, id: &str) -> Result<&'w Group, GraphError> {
    let object_id = parse_object_id(id)?;
    world
        .directory
        .groups
        .get(&object_id)
        .filter(|g| is_synchronized(g))
        .ok_or_else(|| GraphError::for_directory_object_not_found(id))
}

/// `GET /groups`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(GROUP_READ)?;
    list_directory(
        &shared,
        &uri,
        &options,
        "groups",
        |world| {
            if let Some(mail) = options.filter.as_ref().and_then(|f| f.equality_on("mail")) {
                return world
                    .directory
                    .by_smtp(mail)
                    .and_then(|id| world.directory.groups.get(&id))
                    .filter(|g| is_synchronized(g))
                    .map(|g| g.id)
                    .into_iter()
                    .collect();
            }
            let mut groups: Vec<&Group> = world
                .directory
                .groups
                .values()
                .filter(|g| is_synchronized(g) && options.matches(&to_json(world, g)))
                .collect();
            groups.sort_by(|a, b| a.cn.cmp(&b.cn));
            groups.into_iter().map(|g| g.id).collect()
        },
        |world, id| {
            world
                .directory
                .groups
                .get(&id)
                .map(|g| shape(&options, to_json(world, g), false))
        },
    )
}

/// `GET /groups/{id}`.
pub(super) async fn get_by_id(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(GROUP_READ)?;
    let lab = &shared.lab;
    let world = lab.read();
    let group = find(&world, &id)?;
    let item = shape(&options, to_json(&world, group), false);
    Ok(entity(lab, "groups/$entity", StatusCode::OK, item))
}

/// `GET /groups/{id}/transitiveMembers`.
pub(super) async fn transitive_members(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    members(shared, caller, id, uri, false).await
}

/// `GET /groups/{id}/transitiveMembers/microsoft.graph.user`.
pub(super) async fn transitive_member_users(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    members(shared, caller, id, uri, true).await
}

async fn members(
    shared: Shared,
    caller: Caller,
    id: String,
    uri: OriginalUri,
    users_only: bool,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(GROUP_READ)?;
    let group = {
        let world = shared.lab.read();
        find(&world, &id)?.id
    };
    let context = if users_only {
        "users"
    } else {
        "directoryObjects"
    };
    list_directory(
        &shared,
        &uri,
        &options,
        context,
        |world| member_ids(world, group, users_only, &options),
        |world, member| render_member(world, member, &options),
    )
}

/// Lists the transitive members of `group` in breadth-first order, each once, without
/// built-in groups, filtered when the request has a `$filter`.
fn member_ids(world: &World, group: Uuid, users_only: bool, options: &QueryOptions) -> Vec<Uuid> {
    let directory = &world.directory;
    directory
        .transitive_members(group)
        .into_iter()
        .filter(|member| match directory.kind_of(*member) {
            Some(ObjectKind::User) => true,
            Some(ObjectKind::Group) => {
                !users_only && directory.groups.get(member).is_some_and(is_synchronized)
            }
            // Contacts would be orgContact objects in Entra, which the lab's Graph does not
            // serve.
            Some(ObjectKind::Contact) | None => false,
        })
        .filter(|member| {
            options.filter.is_none()
                || render_full(world, *member).is_some_and(|item| options.matches(&item))
        })
        .collect()
}

fn render_full(world: &World, member: Uuid) -> Option<Value> {
    if let Some(user) = world.directory.users.get(&member) {
        return Some(users::to_json(world, user));
    }
    world
        .directory
        .groups
        .get(&member)
        .map(|g| to_json(world, g))
}

fn render_member(world: &World, member: Uuid, options: &QueryOptions) -> Option<Value> {
    if let Some(user) = world.directory.users.get(&member) {
        return Some(users::shape(options, users::to_json(world, user), true));
    }
    world
        .directory
        .groups
        .get(&member)
        .map(|g| shape(options, to_json(world, g), true))
}
