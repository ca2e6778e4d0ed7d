//! App role assignments: the roles a resource service principal granted
//! (`appRoleAssignedTo`) and the roles a client principal was granted (`appRoleAssignments`).
//! Granting and revoking one is admin consent to an application permission.
//!
//! See <https://learn.microsoft.com/graph/api/resources/approleassignment>.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use super::odata::QueryOptions;
use super::{
    Caller, GraphError, GraphResult, Shared, entity, graph_time, parse_json, service_principals,
};
use crate::World;
use crate::world::tenant::AppRoleAssignment;

/// The permission that lets an application grant and revoke app roles.
const ASSIGNMENT_WRITE: &[&str] = &["AppRoleAssignment.ReadWrite.All"];

/// Permissions that let an application read assignments.
const ASSIGNMENT_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
];

fn to_json(world: &World, assignment: &AppRoleAssignment) -> Value {
    let name_of = |id: Uuid| {
        world
            .tenant
            .service_principals
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.display_name.clone())
    };
    json!({
        "id": assignment.id,
        "appRoleId": assignment.app_role_id,
        "createdDateTime": graph_time(assignment.created),
        "deletedDateTime": null,
        "principalDisplayName": name_of(assignment.principal_id),
        "principalId": assignment.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": name_of(assignment.resource_id),
        "resourceId": assignment.resource_id,
    })
}

/// Lists the assignments where the principal `id` is the resource (`by_resource`) or the
/// client.
async fn list_for(
    shared: Shared,
    caller: Caller,
    id: String,
    uri: OriginalUri,
    by_resource: bool,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(ASSIGNMENT_READ)?;
    let lab = &shared.lab;
    let principal = {
        let world = lab.read();
        service_principals::find(lab, &world, &id)?.id
    };
    let context = if by_resource {
        format!("servicePrincipals('{principal}')/appRoleAssignedTo")
    } else {
        format!("servicePrincipals('{principal}')/appRoleAssignments")
    };
    // Assignment IDs are opaque strings, so the directory's GUID snapshots cannot page them.
    // TODO-coverage: a principal with more assignments than one page gets no nextLink.
    let world = lab.read();
    let items: Vec<Value> = world
        .tenant
        .app_role_assignments
        .iter()
        .filter(|a| {
            if by_resource {
                a.resource_id == principal
            } else {
                a.principal_id == principal
            }
        })
        .map(|a| to_json(&world, a))
        .filter(|item| options.matches(item))
        .take(options.directory_page_size()?)
        .map(|item| options.project(item))
        .collect();
    Ok(super::collection(lab, &context, items, None))
}

/// `GET /servicePrincipals/{id}/appRoleAssignedTo`.
pub(super) async fn list_assigned_to(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    list_for(shared, caller, id, uri, true).await
}

/// `GET /servicePrincipals/{id}/appRoleAssignments`.
pub(super) async fn list_assignments(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    list_for(shared, caller, id, uri, false).await
}

/// `POST /servicePrincipals/{id}/appRoleAssignedTo` with `principalId`, `resourceId` and
/// `appRoleId`: the resource in the path grants one of its roles.
pub(super) async fn create(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult {
    grant(shared, caller, id, body, true).await
}

/// `POST /servicePrincipals/{id}/appRoleAssignments`: the same grant, addressed through the
/// client principal in the path.
pub(super) async fn create_for_principal(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult {
    grant(shared, caller, id, body, false).await
}

/// Grants an app role; the principal in the path is the resource (`by_resource`) or the
/// client, and must match the body.
async fn grant(
    shared: Shared,
    caller: Caller,
    id: String,
    body: Bytes,
    by_resource: bool,
) -> GraphResult {
    caller.require(ASSIGNMENT_WRITE)?;
    let body = parse_json(&body)?;
    let guid = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| {
                GraphError::for_directory_bad_request(format!("Property '{name}' must be a GUID."))
            })
    };
    let principal_id = guid("principalId")?;
    let resource_id = guid("resourceId")?;
    let app_role_id = guid("appRoleId")?;

    let lab = &shared.lab;
    let mut world = lab.write();
    let in_path = service_principals::find(lab, &world, &id)?.id;
    let (property, expected) = if by_resource {
        ("resourceId", resource_id)
    } else {
        ("principalId", principal_id)
    };
    if in_path != expected {
        return Err(GraphError::for_directory_bad_request(format!(
            "Property '{property}' ({expected}) must be the service principal in the path ({id})."
        )));
    }
    let resource = service_principals::find(lab, &world, &resource_id.to_string())?;
    if !resource.app_roles.iter().any(|r| r.id == app_role_id) {
        return Err(GraphError::for_directory_bad_request(
            "Permission being assigned was not found on application",
        ));
    }
    service_principals::find(lab, &world, &principal_id.to_string())?;
    let duplicate = world.tenant.app_role_assignments.iter().any(|a| {
        a.principal_id == principal_id
            && a.resource_id == resource_id
            && a.app_role_id == app_role_id
    });
    if duplicate {
        return Err(GraphError::new(
            StatusCode::CONFLICT,
            "Request_BadRequest",
            "Permission being assigned already exists on the object",
        ));
    }
    let assignment = AppRoleAssignment {
        id: opaque_id(),
        principal_id,
        resource_id,
        app_role_id,
        created: Utc::now(),
    };
    let answer = to_json(&world, &assignment);
    tracing::info!(%principal_id, %resource_id, %app_role_id, by = %caller.app_id, "graph granted an app role");
    world.tenant.app_role_assignments.push(assignment);
    let context = format!("servicePrincipals('{resource_id}')/appRoleAssignedTo/$entity");
    Ok(entity(lab, &context, StatusCode::CREATED, answer))
}

/// `DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignment}`.
pub(super) async fn delete(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((id, assignment)): Path<(String, String)>,
) -> GraphResult<Response> {
    caller.require(ASSIGNMENT_WRITE)?;
    let lab = &shared.lab;
    let mut world = lab.write();
    let resource = service_principals::find(lab, &world, &id)?.id;
    let position = world
        .tenant
        .app_role_assignments
        .iter()
        .position(|a| a.id == assignment && a.resource_id == resource)
        .ok_or_else(|| GraphError::for_directory_object_not_found(&assignment))?;
    let removed = world.tenant.app_role_assignments.remove(position);
    tracing::info!(principal_id = %removed.principal_id, app_role_id = %removed.app_role_id, by = %caller.app_id, "graph revoked an app role");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Generates an ID in the shape of Graph's assignment IDs: base64url of 32 random bytes.
fn opaque_id() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
