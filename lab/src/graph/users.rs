//! Users: get by object ID or UPN, list with `$filter` (`mail eq`, `userPrincipalName eq`,
//! `proxyAddresses/any(...)` and the rest of the filter grammar).
//!
//! Every Active Directory user appears here as Entra Connect would synchronize it, with the
//! same object ID. See <https://learn.microsoft.com/graph/api/resources/user>.

use axum::Extension;
use axum::extract::{OriginalUri, Path, State};
use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::odata::QueryOptions;
use super::{Caller, GraphError, GraphResult, Shared, entity, graph_time, list_directory};
use crate::World;
use crate::world::directory::User;

/// Permissions that let an application read users.
pub(super) const USER_READ: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// The properties Graph returns for a user when the request has no `$select`.
const DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// Renders the JSON form of a user with every property the lab models.
pub(super) fn to_json(world: &World, user: &User) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": user.id,
        "accountEnabled": user.enabled(),
        "businessPhones": [],
        "createdDateTime": graph_time(user.created),
        "displayName": user.display_name,
        "givenName": null,
        "jobTitle": null,
        "mail": user.mail,
        "mailNickname": user.sam,
        "mobilePhone": null,
        "officeLocation": null,
        "onPremisesDistinguishedName": user.dn,
        "onPremisesDomainName": world.directory.domain,
        "onPremisesSamAccountName": user.sam,
        "onPremisesSecurityIdentifier": world.directory.sid_of(user.rid),
        "onPremisesSyncEnabled": true,
        "onPremisesUserPrincipalName": user.upn,
        "preferredLanguage": null,
        "proxyAddresses": user.proxy_addresses,
        "surname": null,
        "userPrincipalName": user.upn,
        "userType": "Member",
    })
}

/// Applies `$select`, or Graph's default property set without one. `@odata.type` is kept
/// only when `typed`, because Graph types the members of a group but not a plain user read.
pub(super) fn shape(options: &QueryOptions, item: Value, typed: bool) -> Value {
    let mut projected = match &options.select {
        Some(_) => options.project(item),
        None => {
            let defaults: Vec<String> = DEFAULT_PROPERTIES.iter().map(|s| s.to_string()).collect();
            super::odata::project(item, Some(&defaults))
        }
    };
    if !typed && let Value::Object(map) = &mut projected {
        map.remove("@odata.type");
    }
    projected
}

/// Finds the user that an ID or UPN in a path names.
pub(super) fn resolve<'w>(world: &'w World, id_or_upn: &str) -> Option<&'w User> {
    match Uuid::parse_str(id_or_upn) {
        Ok(id) => world.directory.users.get(&id),
        Err(_) => world.directory.user_by_upn(id_or_upn),
    }
}

/// `GET /users/{id | userPrincipalName}`.
pub(super) async fn get_by_id(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(USER_READ)?;
    let lab = &shared.lab;
    let world = lab.read();
    let user =
        resolve(&world, &id).ok_or_else(|| GraphError::for_directory_object_not_found(&id))?;
    let item = shape(&options, to_json(&world, user), false);
    Ok(entity(lab, "users/$entity", StatusCode::OK, item))
}

/// `GET /users`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(USER_READ)?;
    list_directory(
        &shared,
        &uri,
        &options,
        "users",
        |world| matching_users(world, &options),
        |world, id| {
            world
                .directory
                .users
                .get(&id)
                .map(|u| shape(&options, to_json(world, u), false))
        },
    )
}

/// Lists the users that pass the filter, in a stable order (by UPN). Plain `mail eq` and
/// `userPrincipalName eq` filters are served from the directory's indexes.
fn matching_users(world: &World, options: &QueryOptions) -> Vec<Uuid> {
    let directory = &world.directory;
    if let Some(filter) = &options.filter {
        if let Some(upn) = filter.equality_on("userPrincipalName") {
            return directory
                .user_by_upn(upn)
                .map(|u| u.id)
                .into_iter()
                .collect();
        }
        if let Some(mail) = filter.equality_on("mail") {
            return directory
                .by_smtp(mail)
                .and_then(|id| directory.users.get(&id))
                .filter(|u| {
                    u.mail
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(mail))
                })
                .map(|u| u.id)
                .into_iter()
                .collect();
        }
    }
    let mut users: Vec<&User> = directory
        .users
        .values()
        .filter(|u| options.filter.is_none() || options.matches(&to_json(world, u)))
        .collect();
    users.sort_by(|a, b| a.upn.cmp(&b.upn));
    users.into_iter().map(|u| u.id).collect()
}
