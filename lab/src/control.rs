//! The control API: how `siuctl lab ...` commands in another shell, and tests, inspect and
//! steer a running lab.
//!
//! Every route needs `Authorization: Bearer <DIR/control.token>`. Routes:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /v1/info` | endpoints and organization summary |
//! | `GET /v1/counters`, `POST /v1/counters/reset` | request counters per service and operation |
//! | `GET /v1/requests` | the most recent requests |
//! | `GET /v1/faults`, `PUT /v1/faults`, `POST /v1/faults` | read, replace or add fault rules |
//! | `PUT /v1/replication-delay` | set the replication delay (`{"seconds": 20}`) |
//! | `POST /v1/management` | run Exchange management cmdlets (`{"online": false, "script": "..."}`) |
//! | `POST /v1/transport/send` | send a message through the transport simulator |
//! | `POST /v1/transport/deliver-original` | store an original that a send held back |
//! | `GET /v1/mailboxes/{address}/{folder}` | list a mailbox folder (`sentitems`) |
//! | `POST /v1/save` | write `state.json` now |

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::LabState;
use crate::faults::{FaultRule, Service};
use crate::world::exchange::{ExtendedProperty, WellKnownFolder};

/// Builds the control API router.
pub fn router(state: Arc<LabState>) -> Router {
    Router::new()
        .route("/v1/info", get(info))
        .route("/v1/counters", get(counters))
        .route("/v1/counters/reset", post(reset_counters))
        .route("/v1/requests", get(requests))
        .route(
            "/v1/faults",
            get(get_faults).put(put_faults).post(add_fault),
        )
        .route("/v1/replication-delay", put(put_replication_delay))
        .route("/v1/management", post(management))
        .route("/v1/transport/send", post(send))
        .route("/v1/transport/deliver-original", post(deliver_original))
        .route("/v1/mailboxes/{address}/{folder}", get(folder))
        .route("/v1/save", post(save))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ))
        .with_state(state)
}

/// An error answer of the control API: `{"error": "..."}`.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// Rejects requests without the control token.
async fn require_token(
    State(state): State<Arc<LabState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let expected = format!("Bearer {}", state.control_token);
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong control token (read it from DIR/control.token)",
        );
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What `GET /v1/info` returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    /// Endpoints.
    pub endpoints: crate::Endpoints,
    /// Mail domain.
    pub domain: String,
    /// Tenant ID.
    pub tenant_id: String,
    /// Number of users.
    pub users: usize,
    /// Number of groups.
    pub groups: usize,
    /// Number of mailboxes.
    pub mailboxes: usize,
}

async fn info(State(state): State<Arc<LabState>>) -> Response {
    let world = state.read();
    Json(InfoResponse {
        endpoints: state.endpoints().clone(),
        domain: world.directory.domain.clone(),
        tenant_id: world.tenant.id.to_string(),
        users: world.directory.users.len(),
        groups: world.directory.groups.len(),
        mailboxes: world.exchange.mailboxes.len(),
    })
    .into_response()
}

async fn counters(State(state): State<Arc<LabState>>) -> Response {
    Json(state.journal.counters()).into_response()
}

async fn reset_counters(State(state): State<Arc<LabState>>) -> Response {
    state.journal.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn requests(State(state): State<Arc<LabState>>) -> Response {
    Json(state.journal.recent()).into_response()
}

async fn get_faults(State(state): State<Arc<LabState>>) -> Response {
    Json(state.faults.rules()).into_response()
}

async fn put_faults(
    State(state): State<Arc<LabState>>,
    Json(rules): Json<Vec<FaultRule>>,
) -> Response {
    tracing::info!(rules = rules.len(), "fault rules replaced");
    state.faults.set_rules(rules);
    StatusCode::NO_CONTENT.into_response()
}

async fn add_fault(State(state): State<Arc<LabState>>, Json(rule): Json<FaultRule>) -> Response {
    tracing::info!(service = rule.service.name(), operation = ?rule.operation, "fault rule added");
    state.faults.add(rule);
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `PUT /v1/replication-delay`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicationDelay {
    /// Seconds a new application or service principal stays invisible.
    pub seconds: f64,
}

async fn put_replication_delay(
    State(state): State<Arc<LabState>>,
    Json(delay): Json<ReplicationDelay>,
) -> Response {
    if !(0.0..=86_400.0).contains(&delay.seconds) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("replication delay {} s is outside 0..86400", delay.seconds),
        );
    }
    state
        .faults
        .set_replication_delay(std::time::Duration::from_secs_f64(delay.seconds));
    StatusCode::NO_CONTENT.into_response()
}

/// Body of `POST /v1/management`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagementRequest {
    /// Run against Exchange Online instead of the on-premises server.
    #[serde(default)]
    pub online: bool,
    /// The PowerShell text the controller sent to its management shell.
    pub script: String,
}

/// Answer of `POST /v1/management`: what the shell printed and its exit code.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagementResponse {
    /// Standard output (JSON as `ConvertTo-Json` writes it).
    pub stdout: String,
    /// Standard error (PowerShell error records as text).
    pub stderr: String,
    /// Process exit code: 0 on success, 1 when a cmdlet failed.
    pub exit_code: i32,
}

async fn management(
    State(state): State<Arc<LabState>>,
    Json(request): Json<ManagementRequest>,
) -> Response {
    let started = std::time::Instant::now();
    let decision = state.faults.decide(Service::Management, "invoke");
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let response = match decision.fault {
        Some(fault) => ManagementResponse {
            stdout: String::new(),
            stderr: format!(
                "Connecting to remote server failed: the server is not available ({fault:?})\n"
            ),
            exit_code: 1,
        },
        None => {
            crate::management::import_named_users(&state, request.online, &request.script).await;
            // A long script runs for seconds, so it runs off the async workers that serve
            // every other endpoint.
            let shell_state = state.clone();
            let online = request.online;
            let executed = tokio::task::spawn_blocking(move || {
                crate::management::execute(&shell_state, online, &request.script)
            })
            .await;
            match executed {
                Ok(response) => response,
                Err(e) => {
                    tracing::error!(error = %e, "the management script task failed");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the management shell failed; see the lab's log",
                    );
                }
            }
        }
    };
    state.journal.record(
        Service::Management,
        if request.online {
            "online"
        } else {
            "onPremises"
        },
        if response.exit_code == 0 { 200 } else { 500 },
        started.elapsed(),
        None,
    );
    Json(response).into_response()
}

/// Body of `POST /v1/transport/send`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    /// The message in base64; generated content when absent.
    #[serde(default)]
    pub eml_base64: Option<String>,
    /// Sender address; replaces the message's From.
    #[serde(default)]
    pub from: Option<String>,
    /// The delegate of a Send on Behalf message, written to the Sender field.
    #[serde(default)]
    pub sender: Option<String>,
    /// Recipients; replace the message's To.
    #[serde(default)]
    pub to: Vec<String>,
    /// Subject of generated content.
    #[serde(default)]
    pub subject: Option<String>,
    /// Put an inline image into generated content.
    #[serde(default)]
    pub inline_image: bool,
    /// Write one processed copy per recipient (message splitting).
    #[serde(default)]
    pub split: bool,
    /// Submitting mailbox for Send As, written to the spool's submitter header.
    #[serde(default)]
    pub submitter: Option<String>,
    /// Skip storing the original in Sent Items, as when Outlook in cached mode has not
    /// uploaded it yet; the answer's `held` goes to `POST /v1/transport/deliver-original`.
    #[serde(default)]
    pub hold_original: bool,
    /// Spool directory, an absolute path to an existing directory; the lab directory's
    /// `spool/` when absent.
    #[serde(default)]
    pub spool_dir: Option<std::path::PathBuf>,
}

async fn send(State(state): State<Arc<LabState>>, Json(request): Json<SendRequest>) -> Response {
    let eml = match request
        .eml_base64
        .as_deref()
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
    {
        Ok(eml) => eml,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("emlBase64 is not base64: {e}"),
            );
        }
    };
    let spool = match (&request.spool_dir, &state.dir) {
        (Some(spool), _) => {
            if let Err(reason) = check_spool_dir(spool) {
                tracing::warn!(spool = %spool.display(), reason, "rejected a spoolDir");
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("invalid spoolDir `{}`: {reason}", spool.display()),
                );
            }
            spool.clone()
        }
        (None, Some(dir)) => dir.join("spool"),
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "this lab has no directory; give spoolDir",
            );
        }
    };
    let message = crate::transport::Message {
        eml,
        from: request.from,
        sender: request.sender,
        to: request.to,
        subject: request.subject,
        inline_image: request.inline_image,
        split: request.split,
        submitter: request.submitter,
        hold_original: request.hold_original,
    };
    // Writing the spool flushes files to disk, so it runs off the async workers.
    let sent =
        tokio::task::spawn_blocking(move || crate::transport::send(&state, &spool, message)).await;
    match sent {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(e)) => transport_error(e),
        Err(e) => {
            tracing::error!(error = %e, "the transport simulator task failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the transport simulator failed; see the lab's log",
            )
        }
    }
}

/// Checks a `spoolDir` from a request. The lab writes only into a spool that its caller
/// already created, as an absolute path, so that a request cannot make it create directories
/// anywhere or write relative to its own working directory. Inside the spool it creates
/// `tmp/` and `new/` as any maildir writer does.
fn check_spool_dir(spool: &std::path::Path) -> Result<(), &'static str> {
    if !spool.is_absolute() {
        return Err("the path must be absolute");
    }
    match std::fs::metadata(spool) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err("the path is not a directory"),
        Err(_) => Err("the directory does not exist; create it first"),
    }
}

/// Response body of `POST /v1/transport/deliver-original`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverOriginalResponse {
    /// Store item number of the stored original.
    pub item: u64,
}

async fn deliver_original(
    State(state): State<Arc<LabState>>,
    Json(held): Json<crate::transport::HeldOriginal>,
) -> Response {
    match crate::transport::deliver_original(&state, held) {
        Ok(item) => Json(DeliverOriginalResponse { item }).into_response(),
        Err(e) => transport_error(e),
    }
}

/// Renders a transport error: 500 when the lab could not write its spool, 422 when the
/// request cannot be sent as given.
fn transport_error(e: crate::transport::TransportError) -> Response {
    tracing::warn!(error = %e, "transport request failed");
    let status = match e {
        crate::transport::TransportError::Spool { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.to_string())
}

/// One item in a folder listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemSummary {
    /// Store item number.
    pub id: u64,
    /// Subject.
    pub subject: String,
    /// Internet Message-ID.
    pub internet_message_id: Option<String>,
    /// PR_CLIENT_SUBMIT_TIME.
    pub sent: Option<chrono::DateTime<chrono::Utc>>,
    /// When the item was created.
    pub created: chrono::DateTime<chrono::Utc>,
    /// Whether Outlook would show it as a draft.
    pub draft: bool,
    /// PR_MESSAGE_FLAGS.
    pub message_flags: i32,
    /// Size in bytes.
    pub size: usize,
    /// Extended properties other than the well-known ones.
    pub extended: Vec<ExtendedProperty>,
    /// The message, base64.
    pub mime_base64: String,
}

/// Answer of `GET /v1/mailboxes/{address}/{folder}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderListing {
    /// The mailbox owner's UPN.
    pub owner: String,
    /// Where the mailbox lives.
    pub location: crate::fixture::MailboxLocation,
    /// The folder's display name.
    pub display_name: String,
    /// Items, oldest first.
    pub items: Vec<ItemSummary>,
}

async fn folder(
    State(state): State<Arc<LabState>>,
    Path((address, folder)): Path<(String, String)>,
) -> Response {
    let Some(which) = WellKnownFolder::parse(&folder) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("`{folder}` is not a well-known folder (try sentitems)"),
        );
    };
    let world = state.read();
    let Some(user) = world.directory.user_by_address(&address) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no user has the address `{address}`"),
        );
    };
    let Some(mailbox) = world.exchange.mailboxes.get(&user.id) else {
        return error(StatusCode::NOT_FOUND, format!("`{address}` has no mailbox"));
    };
    let folder = mailbox.folder(which);
    let items = folder
        .items
        .iter()
        .map(|item| ItemSummary {
            id: item.id,
            subject: item.subject.clone(),
            internet_message_id: item.internet_message_id.clone(),
            sent: item.sent,
            created: item.created,
            draft: item.is_draft(),
            message_flags: item.message_flags,
            size: item.size(),
            extended: item.extended.clone(),
            mime_base64: base64::engine::general_purpose::STANDARD.encode(&item.mime),
        })
        .collect();
    Json(FolderListing {
        owner: user.upn.clone(),
        location: mailbox.location,
        display_name: folder.display_name.clone(),
        items,
    })
    .into_response()
}

async fn save(State(state): State<Arc<LabState>>) -> Response {
    let Some(dir) = state.dir.clone() else {
        return error(StatusCode::BAD_REQUEST, "this lab has no directory");
    };
    match crate::output::save_state(&state, &dir) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
