//! Graph's error responses: `{"error": {"code", "message", "innerError": {...}}}` with the
//! status Graph uses for each code.
//!
//! Handlers return a [`GraphError`], and the request layer in `mod.rs` turns it into the
//! body, because only that layer has the `request-id` and `client-request-id` that
//! `innerError` carries. See <https://learn.microsoft.com/graph/errors>.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// An error response of Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `code` property.
    pub code: &'static str,
    /// The `message` property.
    pub message: String,
}

impl GraphError {
    /// Creates an error with any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 `Request_ResourceNotFound`, Graph's response for a directory object that does not
    /// exist (or has not replicated yet).
    pub fn for_directory_object_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        )
    }

    /// 403 `Authorization_RequestDenied`: the token lacks every application permission the
    /// directory operation accepts.
    pub fn for_directory_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    /// 400 `Request_BadRequest`, a directory request with an invalid value.
    pub fn for_directory_bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// 400 `BadRequest`, a malformed query option or body outside the directory.
    pub fn for_bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401 `InvalidAuthenticationToken`.
    pub fn for_invalid_token(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    /// 403 `ErrorAccessDenied`, Exchange's response when the token lacks the mail permission.
    pub fn for_mail_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    /// 404 `MailboxNotEnabledForRESTAPI`: the user has no Exchange Online mailbox, because it
    /// has none at all or because it lives on the on-premises server.
    pub fn for_mailbox_not_enabled() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        )
    }

    /// 404 `ErrorInvalidUser`: the user in a mail path does not exist.
    pub fn for_invalid_user(user: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            format!("The requested user '{user}' is invalid."),
        )
    }

    /// 404 `ErrorItemNotFound`: the message is not in the mailbox.
    pub fn for_item_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// 400 `ErrorInvalidIdMalformed`: a message ID that the lab did not issue.
    pub fn for_malformed_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidIdMalformed",
            "Id is malformed.",
        )
    }

    /// 400 `BadRequest` for a path segment that names no resource.
    pub fn for_unknown_segment(segment: &str) -> Self {
        Self::for_bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    /// 429 `TooManyRequests`, Graph's throttling response. The caller adds `Retry-After`.
    pub fn for_throttled() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Retry after the number of seconds in the Retry-After header.",
        )
    }

    /// Any other status, with the code Graph uses for it.
    pub fn for_status(status: StatusCode) -> Self {
        let code = match status.as_u16() {
            503 => "serviceNotAvailable",
            504 => "UnknownError",
            429 => "TooManyRequests",
            400 => "BadRequest",
            401 => "InvalidAuthenticationToken",
            403 => "accessDenied",
            404 => "itemNotFound",
            _ => "generalException",
        };
        Self::new(
            status,
            code,
            format!(
                "The lab injected a fault: HTTP {} {}.",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
        )
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for GraphError {}

/// Converts the error into the status now and the body later, once the request layer adds
/// the request IDs.
impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// Renders the body of an error with the IDs of its request.
pub fn error_body(
    error: &GraphError,
    request_id: &str,
    client_request_id: &str,
    date: &str,
) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": date,
                "request-id": request_id,
                "client-request-id": client_request_id,
            }
        }
    })
}

/// Result of a Graph handler.
pub type GraphResult<T = Response> = Result<T, GraphError>;
