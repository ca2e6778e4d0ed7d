//! Microsoft Graph v1.0, the routes the controller uses.
//!
//! Every route goes through one request layer ([`handle_request`]). In order, it names the
//! operation after its route template (`POST /applications`), applies the fault rules for
//! [`Service::Graph`], checks the bearer token for [`Resource::Graph`] and runs the handler.
//! Then it turns a [`GraphError`] into Graph's error body with the `request-id` and
//! `client-request-id` that it also sends as headers, and counts the request in the journal.
//! Handlers check the application permissions (`roles`) each operation needs through
//! [`Caller`].
//!
//! Resources live in one module each, and `odata.rs` contains the query options and paging
//! that all collections share.

mod app_role_assignments;
mod applications;
pub mod errors;
mod groups;
mod messages;
pub mod odata;
mod organization;
mod service_principals;
mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, OriginalUri, Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, StatusCode};
use uuid::Uuid;

use crate::LabState;
use crate::access::{Resource, TokenRejected};
use crate::faults::{FaultKind, Service};
use crate::serve::DropConnection;
pub use errors::{GraphError, GraphResult};

/// State shared by every Graph handler: the lab and the paging snapshots.
#[derive(Debug)]
pub struct GraphState {
    /// The lab.
    pub lab: Arc<LabState>,
    /// Snapshots of collections being paged.
    pub cursors: odata::Cursors,
}

type Shared = Arc<GraphState>;

/// Builds the Graph router.
pub fn router(state: Arc<LabState>) -> Router {
    let shared: Shared = Arc::new(GraphState {
        lab: state,
        cursors: odata::Cursors::default(),
    });
    Router::new()
        // Applications.
        .route(
            "/v1.0/applications",
            get(applications::list).post(applications::create),
        )
        .route(
            "/v1.0/applications/{id}",
            get(applications::get_by_id)
                .patch(applications::update)
                .delete(applications::delete),
        )
        .route(
            "/v1.0/applications/{id}/addPassword",
            post(applications::add_password),
        )
        .route(
            "/v1.0/applications/{id}/removePassword",
            post(applications::remove_password),
        )
        // Service principals and app role assignments.
        .route(
            "/v1.0/servicePrincipals",
            get(service_principals::list).post(service_principals::create),
        )
        .route(
            "/v1.0/servicePrincipals/{id}",
            get(service_principals::get_by_id),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
            get(app_role_assignments::list_assigned_to).post(app_role_assignments::create),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignedTo/{assignment}",
            axum::routing::delete(app_role_assignments::delete),
        )
        .route(
            "/v1.0/servicePrincipals/{id}/appRoleAssignments",
            get(app_role_assignments::list_assignments)
                .post(app_role_assignments::create_for_principal),
        )
        // Alternate keys: `applications(appId='...')` and `servicePrincipals(appId='...')`.
        .route("/v1.0/{segment}", get(get_by_alternate_key))
        // Users, groups and the organization.
        .route("/v1.0/users", get(users::list))
        .route("/v1.0/users/{id}", get(users::get_by_id))
        .route("/v1.0/groups", get(groups::list))
        .route("/v1.0/groups/{id}", get(groups::get_by_id))
        .route(
            "/v1.0/groups/{id}/transitiveMembers",
            get(groups::transitive_members),
        )
        .route(
            "/v1.0/groups/{id}/transitiveMembers/microsoft.graph.user",
            get(groups::transitive_member_users),
        )
        .route("/v1.0/organization", get(organization::list))
        // Messages of cloud mailboxes.
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages",
            get(messages::list).post(messages::create),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/{message}",
            get(messages::get_by_id)
                .patch(messages::update)
                .delete(messages::delete),
        )
        .route(
            "/v1.0/users/{user}/messages/{message}",
            get(messages::get_by_id)
                .patch(messages::update)
                .delete(messages::delete_without_folder),
        )
        .route(
            "/v1.0/users/{user}/mailFolders/{folder}/messages/{message}/$value",
            get(messages::get_mime),
        )
        .route(
            "/v1.0/users/{user}/messages/{message}/$value",
            get(messages::get_mime_without_folder),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            handle_request,
        ))
        .fallback(unknown_route)
        .with_state(shared)
}

/// The application that a request's bearer token names, with its permissions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Client (application) ID.
    pub app_id: String,
    /// Object ID of the client's service principal.
    pub principal_id: String,
    /// Application permissions in the token's `roles` claim.
    pub roles: Vec<String>,
}

impl Caller {
    /// Checks whether the token carries any of `roles`.
    pub fn has_any(&self, roles: &[&str]) -> bool {
        self.roles
            .iter()
            .any(|held| roles.iter().any(|r| r.eq_ignore_ascii_case(held)))
    }

    /// Checks a directory permission: 403 `Authorization_RequestDenied` without any of `roles`.
    pub fn require(&self, roles: &[&str]) -> Result<(), GraphError> {
        if self.has_any(roles) {
            Ok(())
        } else {
            tracing::debug!(app_id = %self.app_id, needed = ?roles, "graph request lacks a permission");
            Err(GraphError::for_directory_denied())
        }
    }
}

/// Application permissions that let a caller read applications and service principals.
pub(crate) const APPLICATION_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Application permissions that let a caller create and change applications.
pub(crate) const APPLICATION_WRITE: &[&str] =
    &["Application.ReadWrite.All", "Directory.ReadWrite.All"];

/// The operation name of a request: its method and route template below `/v1.0`, with the
/// alternate-key forms named by their key (`GET /applications(appId='{appId}')`).
fn operation_name(method: &http::Method, template: &str, path: &str) -> String {
    let template = template.strip_prefix("/v1.0").unwrap_or(template);
    if template == "/{segment}" {
        let segment = path.rsplit('/').next().unwrap_or_default();
        for entity in ["applications", "servicePrincipals"] {
            if segment.starts_with(&format!("{entity}(")) {
                return format!("{method} /{entity}(appId='{{appId}}')");
            }
        }
    }
    format!("{method} {template}")
}

/// Runs one Graph request through faults, authentication, the handler and the journal, as
/// the module documentation describes.
async fn handle_request(
    State(shared): State<Shared>,
    matched: MatchedPath,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let lab = &shared.lab;
    let operation = operation_name(request.method(), matched.as_str(), request.uri().path());
    let request_id = Uuid::new_v4().to_string();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());

    // 1. Faults: latency first, then the fault in Graph's shape instead of the response.
    let decision = lab.faults.decide(Service::Graph, &operation);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let mut actor = None;
    let mut response = match decision.fault {
        Some(fault) => render_fault(&fault),
        None => match authenticate(lab, request.headers()) {
            Ok(caller) => {
                actor = Some(caller.app_id.clone());
                request.extensions_mut().insert(caller);
                next.run(request).await
            }
            Err(error) => error.into_response(),
        },
    };

    // 2. Error bodies and the IDs every response carries.
    let now = Utc::now();
    let mut error_code = None;
    if let Some(error) = response.extensions_mut().remove::<GraphError>() {
        error_code = Some(error.code);
        let body = errors::error_body(
            &error,
            &request_id,
            &client_request_id,
            &now.format("%Y-%m-%dT%H:%M:%S").to_string(),
        );
        let retry_after = response.headers().get(http::header::RETRY_AFTER).cloned();
        let drop_connection = response.extensions().get::<DropConnection>().copied();
        response = (error.status, axum::Json(body)).into_response();
        if let Some(value) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, value);
        }
        if let Some(marker) = drop_connection {
            response.extensions_mut().insert(marker);
        }
    }
    insert_ids(response.headers_mut(), &request_id, &client_request_id, now);

    // 3. The journal and the log.
    let dropped = response.extensions().get::<DropConnection>().is_some();
    // A dropped connection has no status; the journal records it as 0.
    let status = if dropped {
        0
    } else {
        response.status().as_u16()
    };
    let elapsed = started.elapsed();
    lab.journal.record(
        Service::Graph,
        &operation,
        status,
        elapsed,
        actor.as_deref(),
    );
    tracing::debug!(
        service = "graph",
        %operation,
        status,
        latency_ms = elapsed.as_millis() as u64,
        request_id = %request_id,
        actor = actor.as_deref().unwrap_or("-"),
        error_code = error_code.unwrap_or("-"),
        "graph request"
    );
    response
}

fn insert_ids(
    headers: &mut HeaderMap,
    request_id: &str,
    client_request_id: &str,
    now: DateTime<Utc>,
) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(client_request_id) {
        headers.insert("client-request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&now.to_rfc2822().replace("+0000", "GMT")) {
        headers.insert(http::header::DATE, value);
    }
}

/// Renders an injected fault in Graph's shape.
fn render_fault(fault: &FaultKind) -> Response {
    let with_retry_after = |error: GraphError, seconds: u64| {
        let mut response = error.into_response();
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        response
    };
    match fault {
        FaultKind::TooManyRequests { retry_after_secs } => {
            with_retry_after(GraphError::for_throttled(), *retry_after_secs)
        }
        FaultKind::ServerBusy { back_off_ms } => with_retry_after(
            GraphError::for_status(StatusCode::SERVICE_UNAVAILABLE),
            back_off_ms.div_ceil(1000),
        ),
        FaultKind::ExceededConnectionCount => {
            with_retry_after(GraphError::for_status(StatusCode::SERVICE_UNAVAILABLE), 1)
        }
        FaultKind::Status { code } => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            GraphError::for_status(status).into_response()
        }
        FaultKind::Drop => {
            let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            response.extensions_mut().insert(DropConnection);
            response
        }
        // Latency never becomes the fault itself: `Faults::decide` adds it to the latency.
        FaultKind::Latency { .. } => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks the bearer token: 401 `InvalidAuthenticationToken` unless it is a lab token for
/// Graph that has not expired.
fn authenticate(lab: &LabState, headers: &HeaderMap) -> Result<Caller, GraphError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(GraphError::for_invalid_token("Access token is empty."));
    }
    let claims = lab
        .tokens
        .verify(token, Resource::Graph)
        .map_err(|rejected| {
            tracing::debug!(reason = %rejected, "graph rejected a bearer token");
            GraphError::for_invalid_token(match rejected {
                TokenRejected::Expired => "Lifetime validation failed, the token is expired.",
                TokenRejected::WrongAudience(_) => {
                    "Access token validation failure. Invalid audience."
                }
                TokenRejected::Invalid => "Access token validation failure.",
            })
        })?;
    Ok(Caller {
        app_id: claims.appid,
        principal_id: claims.oid,
        roles: claims.roles,
    })
}

/// Rejects a path that no route matches, as Graph does for an unknown segment.
async fn unknown_route(State(shared): State<Shared>, request: Request) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let segment = path
        .trim_start_matches("/v1.0")
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let error = GraphError::for_unknown_segment(&segment);
    let request_id = Uuid::new_v4().to_string();
    let now = Utc::now();
    let body = errors::error_body(
        &error,
        &request_id,
        &request_id,
        &now.format("%Y-%m-%dT%H:%M:%S").to_string(),
    );
    let mut response = (error.status, axum::Json(body)).into_response();
    insert_ids(response.headers_mut(), &request_id, &request_id, now);
    let operation = format!("{} (no route)", request.method());
    shared.lab.journal.record(
        Service::Graph,
        &operation,
        error.status.as_u16(),
        started.elapsed(),
        None,
    );
    tracing::debug!(service = "graph", %path, status = error.status.as_u16(), "graph request for an unknown route");
    response
}

/// `GET /applications(appId='...')` and `GET /servicePrincipals(appId='...')`.
async fn get_by_alternate_key(
    State(shared): State<Shared>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(segment): Path<String>,
    uri: OriginalUri,
) -> GraphResult {
    let Some((entity, key)) = parse_alternate_key(&segment) else {
        return Err(GraphError::for_unknown_segment(&segment));
    };
    let query = uri.query();
    match entity {
        "applications" => applications::get_by_app_id(&shared, &caller, &key, query),
        "servicePrincipals" => service_principals::get_by_app_id(&shared, &caller, &key, query),
        _ => Err(GraphError::for_unknown_segment(&segment)),
    }
}

/// Splits `applications(appId='abc')` into the entity set and the key value.
fn parse_alternate_key(segment: &str) -> Option<(&str, String)> {
    let (entity, rest) = segment.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let (name, value) = inner.split_once('=')?;
    if !name.trim().eq_ignore_ascii_case("appId") {
        return None;
    }
    let value = value.trim();
    let value = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value)
        .replace("''", "'");
    Some((entity, value))
}

/// Checks whether an object created at `created` is still invisible because of the
/// replication delay.
pub(crate) fn is_replicating(lab: &LabState, created: DateTime<Utc>) -> bool {
    let delay = lab.faults.replication_delay();
    if delay.is_zero() {
        return false;
    }
    let age = Utc::now().signed_duration_since(created);
    age.to_std().unwrap_or(Duration::ZERO) < delay
}

/// Renders a collection: `@odata.context`, `value` and `@odata.nextLink` when there is more.
pub(crate) fn collection(
    lab: &LabState,
    context: &str,
    items: Vec<serde_json::Value>,
    next_link: Option<String>,
) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}v1.0/$metadata#{context}", lab.endpoints().graph).into(),
    );
    if let Some(link) = next_link {
        body.insert("@odata.nextLink".into(), link.into());
    }
    body.insert("value".into(), items.into());
    axum::Json(serde_json::Value::Object(body)).into_response()
}

/// Renders a single entity with its `@odata.context`.
pub(crate) fn entity(
    lab: &LabState,
    context: &str,
    status: StatusCode,
    item: serde_json::Value,
) -> Response {
    let mut body = serde_json::Map::new();
    body.insert(
        "@odata.context".into(),
        format!("{}v1.0/$metadata#{context}", lab.endpoints().graph).into(),
    );
    if let serde_json::Value::Object(map) = item {
        body.extend(map);
    }
    (status, axum::Json(serde_json::Value::Object(body))).into_response()
}

/// Renders one page of a directory collection.
///
/// `ids` lists the IDs that pass the filter, in the collection's order. It runs only for the
/// first page, because later pages read the snapshot that their skip token names. `render`
/// builds the full JSON of one object, or `None` when the object no longer exists.
pub(crate) fn list_directory(
    shared: &GraphState,
    uri: &OriginalUri,
    options: &odata::QueryOptions,
    context: &str,
    ids: impl FnOnce(&crate::World) -> Vec<Uuid>,
    render: impl Fn(&crate::World, Uuid) -> Option<serde_json::Value>,
) -> GraphResult {
    let lab = &shared.lab;
    let page = odata::page_of(&shared.cursors, options, || ids(&lab.read()))?;
    let items: Vec<serde_json::Value> = {
        let world = lab.read();
        page.ids
            .iter()
            .filter_map(|id| render(&world, *id))
            .map(|item| options.project(item))
            .collect()
    };
    let next = page.next.map(|token| next_link(lab, uri, &token.encode()));
    Ok(collection(lab, context, items, next))
}

/// Builds the absolute `@odata.nextLink` for the same request with another `$skiptoken`.
pub(crate) fn next_link(lab: &LabState, uri: &OriginalUri, skip_token: &str) -> String {
    let query = odata::with_query_option(uri.query(), "$skiptoken", skip_token);
    let path = uri.path().trim_start_matches('/');
    format!("{}{path}?{query}", lab.endpoints().graph)
}

/// Reads a JSON body, returning 400 `BadRequest` for anything else.
pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, GraphError> {
    if body.is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        GraphError::for_bad_request(format!("Unable to read JSON request payload: {e}."))
    })
}

/// Parses an object ID from a path, answering 404 as Graph does for an ID that is no GUID.
pub(crate) fn parse_object_id(text: &str) -> Result<Uuid, GraphError> {
    Uuid::parse_str(text).map_err(|_| GraphError::for_directory_object_not_found(text))
}

/// Formats a time as Graph does (`2026-01-31T12:00:00Z`).
pub(crate) fn graph_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_use_the_template() {
        let get = http::Method::GET;
        assert_eq!(
            operation_name(
                &get,
                "/v1.0/groups/{id}/transitiveMembers",
                "/v1.0/groups/x/transitiveMembers"
            ),
            "GET /groups/{id}/transitiveMembers"
        );
        assert_eq!(
            operation_name(&get, "/v1.0/{segment}", "/v1.0/applications(appId='x')"),
            "GET /applications(appId='{appId}')"
        );
    }

    #[test]
    fn alternate_key_unescapes_quotes() {
        assert_eq!(
            parse_alternate_key("applications(appId='a''b')"),
            Some(("applications", "a'b".to_string()))
        );
        assert_eq!(parse_alternate_key("applications(displayName='a')"), None);
        assert_eq!(parse_alternate_key("users"), None);
    }
}
