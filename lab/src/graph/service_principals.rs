//! Service principals: list with `$filter` on appId, get by object ID or `appId`, create for
//! an application of the tenant.
//!
//! See <https://learn.microsoft.com/graph/api/resources/serviceprincipal>.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use chrono::Utc;
use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::odata::QueryOptions;
use super::{
    APPLICATION_READ, APPLICATION_WRITE, Caller, GraphError, GraphResult, GraphState, Shared,
    entity, is_replicating, list_directory, parse_json, parse_object_id,
};
use crate::world::tenant::{EXCHANGE_ONLINE_APP_ID, GRAPH_APP_ID, ServicePrincipal};
use crate::{LabState, World};

/// The tenant that owns Microsoft's first-party applications.
const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";

/// Renders the JSON form of a service principal.
pub(super) fn to_json(world: &World, principal: &ServicePrincipal) -> Value {
    let app_id = principal.app_id.to_string();
    let first_party = app_id == GRAPH_APP_ID || app_id == EXCHANGE_ONLINE_APP_ID;
    let owner = if first_party {
        MICROSOFT_TENANT_ID.to_string()
    } else {
        world.tenant.id.to_string()
    };
    let roles: Vec<Value> = principal
        .app_roles
        .iter()
        .map(|role| {
            json!({
                "allowedMemberTypes": ["Application"],
                "description": role.display_name,
                "displayName": role.display_name,
                "id": role.id,
                "isEnabled": true,
                "origin": "Application",
                "value": role.value,
            })
        })
        .collect();
    json!({
        "id": principal.id,
        "appId": principal.app_id,
        "displayName": principal.display_name,
        "accountEnabled": true,
        "appOwnerOrganizationId": owner,
        "servicePrincipalType": "Application",
        "servicePrincipalNames": [app_id],
        "appRoles": roles,
        "deletedDateTime": null,
        "tags": [],
    })
}

/// Finds the replicated service principal with this object ID, or returns 404.
pub(super) fn find<'w>(
    lab: &LabState,
    world: &'w World,
    id: &str,
) -> Result<&'w ServicePrincipal, GraphError> {
    let object_id = parse_object_id(id)?;
    world
        .tenant
        .service_principals
        .iter()
        .find(|p| p.id == object_id && !is_replicating(lab, p.created))
        .ok_or_else(|| GraphError::for_directory_object_not_found(id))
}

/// `GET /servicePrincipals`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(APPLICATION_READ)?;
    let lab = &shared.lab;
    list_directory(
        &shared,
        &uri,
        &options,
        "servicePrincipals",
        |world| {
            world
                .tenant
                .service_principals
                .iter()
                .filter(|p| !is_replicating(lab, p.created))
                .filter(|p| options.matches(&to_json(world, p)))
                .map(|p| p.id)
                .collect()
        },
        |world, id| {
            world
                .tenant
                .service_principals
                .iter()
                .find(|p| p.id == id)
                .map(|p| to_json(world, p))
        },
    )
}

/// `GET /servicePrincipals/{id}`.
pub(super) async fn get_by_id(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(APPLICATION_READ)?;
    let lab = &shared.lab;
    let world = lab.read();
    let principal = find(lab, &world, &id)?;
    let item = options.project(to_json(&world, principal));
    Ok(entity(
        lab,
        "servicePrincipals/$entity",
        StatusCode::OK,
        item,
    ))
}

/// `GET /servicePrincipals(appId='...')`.
pub(super) fn get_by_app_id(
    shared: &GraphState,
    caller: &Caller,
    app_id: &str,
    query: Option<&str>,
) -> GraphResult {
    let options = QueryOptions::parse(query)?;
    caller.require(APPLICATION_READ)?;
    let lab = &shared.lab;
    let world = lab.read();
    let principal = Uuid::parse_str(app_id)
        .ok()
        .and_then(|id| world.tenant.principal_by_app_id(id))
        .filter(|p| !is_replicating(lab, p.created))
        .ok_or_else(|| GraphError::for_directory_object_not_found(app_id))?;
    let item = options.project(to_json(&world, principal));
    Ok(entity(
        lab,
        "servicePrincipals/$entity",
        StatusCode::OK,
        item,
    ))
}

/// `POST /servicePrincipals` with `{"appId": "..."}`.
pub(super) async fn create(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> GraphResult {
    caller.require(APPLICATION_WRITE)?;
    let body = parse_json(&body)?;
    let app_id_text = body
        .get("appId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let lab = &shared.lab;
    let mut world = lab.write();

    // An application that has not replicated yet cannot get a principal, as in Entra ID.
    let application = Uuid::parse_str(&app_id_text)
        .ok()
        .and_then(|id| world.tenant.application_by_app_id(id))
        .filter(|a| !is_replicating(lab, a.created))
        .ok_or_else(|| {
            GraphError::for_directory_bad_request(format!(
                "The appId '{app_id_text}' of the service principal does not reference a valid application object."
            ))
        })?;
    let app_id = application.app_id;
    let display_name = application.display_name.clone();
    if world.tenant.principal_by_app_id(app_id).is_some() {
        return Err(GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "The service principal cannot be created because a service principal for appId '{app_id}' already exists."
            ),
        ));
    }
    let principal = ServicePrincipal {
        id: Uuid::new_v4(),
        app_id,
        display_name,
        app_roles: Vec::new(),
        created: Utc::now(),
    };
    let answer = to_json(&world, &principal);
    tracing::info!(%app_id, object_id = %principal.id, by = %caller.app_id, "graph created a service principal");
    world.tenant.service_principals.push(principal);
    Ok(entity(
        lab,
        "servicePrincipals/$entity",
        StatusCode::CREATED,
        answer,
    ))
}
