//! Sent Items as the update loop uses them, whichever protocol reaches the mailbox.
//!
//! [`SentItemsStore`] has the three operations a rewrite needs: find the items that belong
//! to one original, create the replacement, and delete the original. [`ews::EwsStore`]
//! implements them for on-premises Exchange and for Exchange Online over EWS, and
//! [`graph::GraphStore`] for Exchange Online over Microsoft Graph. Errors are
//! sorted into an [`ErrorClass`] that tells the loop whether to wait for the server, retry,
//! switch paths or give up on the message.

pub mod ews;
pub mod graph;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::{Uuid, uuid};

use crate::providers::entra::graph::GraphError;
use crate::providers::entra::mail::MimeError;
use crate::providers::exchange::ews::EwsError;

/// The property set of the named properties that mark the items the update loop creates.
/// The GUID belongs to siuctl alone, so no other application writes these properties.
pub const MARKER_PROPERTY_SET: Uuid = uuid!("2f388e93-d37f-42f9-b720-43205acd0c39");

/// The marker: a string property whose value is the source key of the spool message that
/// the item replaces (the original's Message-ID, plus the split index of a split copy). An
/// item with this property was written by siuctl, and the value names the message.
pub const SOURCE_PROPERTY: &str = "siuctl-source";

/// The original's Message-ID, stored on every replacement so that the copies of one split
/// message find each other after the original is gone.
pub const ORIGINAL_MESSAGE_ID_PROPERTY: &str = "siuctl-original-message-id";

/// The store ID of the original that a replacement replaces, so that a replay after a crash
/// between creating the replacement and deleting the original deletes that item and no other.
pub const REPLACED_ITEM_PROPERTY: &str = "siuctl-replaced-item";

/// An item in Sent Items that belongs to one original: the original itself, or a
/// replacement that carries the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundItem {
    /// The store's ID of the item (an EWS `ItemId`, a Graph message ID).
    pub id: String,
    /// `PR_INTERNET_MESSAGE_ID`.
    pub internet_message_id: Option<String>,
    /// When the message was sent (`PR_CLIENT_SUBMIT_TIME`).
    pub sent: Option<DateTime<Utc>>,
    /// When the item was delivered to the folder (`PR_MESSAGE_DELIVERY_TIME`).
    pub delivered: Option<DateTime<Utc>>,
    /// The size in bytes.
    pub size: Option<u64>,
    /// The value of [`SOURCE_PROPERTY`]; `None` on items siuctl did not write.
    pub source_key: Option<String>,
    /// The value of [`ORIGINAL_MESSAGE_ID_PROPERTY`].
    pub marked_original: Option<String>,
    /// The value of [`REPLACED_ITEM_PROPERTY`].
    pub replaced_item: Option<String>,
}

impl FoundItem {
    /// Tells whether siuctl wrote the item.
    pub fn is_marked(&self) -> bool {
        self.source_key.is_some()
    }
}

/// The content and properties of a new replacement.
#[derive(Debug, Clone, Copy)]
pub struct Replacement<'a> {
    /// The processed message, without the spool's `X-SIU-` fields.
    pub mime: &'a [u8],
    /// The original's send time, which becomes the replacement's.
    pub sent: DateTime<Utc>,
    /// The original's delivery time, when the store reported one.
    pub delivered: Option<DateTime<Utc>>,
    /// The value of [`SOURCE_PROPERTY`].
    pub source_key: &'a str,
    /// The value of [`ORIGINAL_MESSAGE_ID_PROPERTY`].
    pub original_message_id: &'a str,
    /// The value of [`REPLACED_ITEM_PROPERTY`]; `None` for a split copy whose original
    /// another copy replaced.
    pub replaced_item: Option<&'a str>,
}

/// The outcome of a deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The item was deleted now.
    Now,
    /// The item did not exist any more.
    AlreadyGone,
}

/// The operations on a mailbox's Sent Items that a rewrite uses.
#[async_trait]
pub trait SentItemsStore: Send + Sync + fmt::Debug {
    /// Returns the path's name for logs and metrics: `ews`, `exchangeOnline` or `graph`.
    fn service(&self) -> &'static str;

    /// Returns the key that throttling from this store is shared under, such as the EWS URL.
    fn server_key(&self) -> &str;

    /// Finds the items in `mailbox`'s Sent Items whose `PR_INTERNET_MESSAGE_ID` is
    /// `original_message_id`, and the replacements marked with that original.
    async fn find(
        &self,
        mailbox: &str,
        original_message_id: &str,
    ) -> Result<Vec<FoundItem>, StoreError>;

    /// Creates a replacement in `mailbox`'s Sent Items: read, not a draft, with the given
    /// times and markers, and returns its ID.
    async fn create(
        &self,
        mailbox: &str,
        replacement: &Replacement<'_>,
    ) -> Result<String, StoreError>;

    /// Deletes an item from `mailbox`.
    async fn delete(&self, mailbox: &str, item_id: &str) -> Result<Deleted, StoreError>;
}

/// The callers that a throttling response slows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// Every request to the server (the service account's budget, the connection count).
    Server,
    /// Requests for this mailbox (Graph's limits are per application and mailbox).
    Mailbox,
}

/// The update loop's treatment of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The server throttles: wait at least `retry_after`, slowing every caller in `scope`.
    /// Throttled attempts do not count towards giving up.
    Throttled {
        /// The wait the server asked for.
        retry_after: Option<Duration>,
        /// Who waits.
        scope: ThrottleScope,
    },
    /// A network or server failure that a later attempt may not meet.
    Transient,
    /// The mailbox is not on this server: on-premises, a mailbox moved to Exchange Online.
    MailboxNotFound,
    /// Exchange Online refuses EWS for the application.
    Blocked,
    /// The credentials or rights are wrong; every message fails the same way until an
    /// administrator fixes them, so the loop retries slowly instead of failing messages.
    Denied,
    /// The server rejected this message for good, for example MIME it cannot convert.
    Rejected,
}

/// An error of a store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An EWS request failed.
    #[error(transparent)]
    Ews(#[from] EwsError),
    /// A Microsoft Graph request failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The message cannot be converted into Graph's JSON form.
    #[error("failed to convert the message for mailbox {mailbox} into Graph's message form")]
    Mime {
        /// The mailbox.
        mailbox: String,
        /// The conversion error.
        #[source]
        source: MimeError,
    },
}

/// EWS response codes that reject the message itself, so retrying cannot help.
const REJECTING_CODES: &[&str] = &[
    "ErrorMimeContentConversionFailed",
    "ErrorMimeContentInvalid",
    "ErrorMimeContentInvalidBase64String",
    "ErrorMessageSizeExceeded",
    "ErrorInvalidExtendedPropertyValue",
    "ErrorInvalidPropertySet",
    "ErrorCorruptData",
    "ErrorItemCorrupt",
    "ErrorInvalidRecipients",
];

impl StoreError {
    /// Sorts the error for the loop.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Ews(error) => classify_ews(error),
            Self::Graph(error) => classify_graph(error),
            Self::Mime { .. } => ErrorClass::Rejected,
        }
    }

    /// Returns a short, stable name of the error for metrics and the summary: the EWS
    /// response code, or the kind of failure.
    pub fn code(&self) -> String {
        match self {
            Self::Ews(error) => match error.response_code() {
                Some(code) => code.to_owned(),
                None => match error {
                    EwsError::Unauthorized { .. } => "http_401".to_owned(),
                    EwsError::Forbidden { .. } => "http_403".to_owned(),
                    EwsError::NotFound { .. } => "http_404".to_owned(),
                    EwsError::ServerError { status, .. } => format!("http_{status}"),
                    EwsError::UnexpectedStatus { status, .. } => format!("http_{status}"),
                    EwsError::Connect { .. } => "connect".to_owned(),
                    EwsError::Tls { .. } => "tls".to_owned(),
                    EwsError::Timeout { .. } => "timeout".to_owned(),
                    EwsError::Transport { .. } => "transport".to_owned(),
                    EwsError::Token { .. } => "token".to_owned(),
                    EwsError::Ntlm { .. } | EwsError::NtlmNotOffered { .. } => "ntlm".to_owned(),
                    EwsError::Encode { .. } => "encode".to_owned(),
                    EwsError::Decode { .. } | EwsError::MissingResponseMessage { .. } => {
                        "decode".to_owned()
                    }
                    _ => "ews".to_owned(),
                },
            },
            Self::Graph(error) => match (error.status(), error.code()) {
                (Some(status), Some(code)) => format!("graph_{status}_{code}"),
                _ => match error {
                    GraphError::Token { .. } => "token".to_owned(),
                    GraphError::Connect { .. } => "connect".to_owned(),
                    GraphError::Timeout { .. } => "timeout".to_owned(),
                    GraphError::Transport { .. } => "transport".to_owned(),
                    GraphError::RequestTooLarge { .. } => "graph_request_too_large".to_owned(),
                    _ => "graph".to_owned(),
                },
            },
            Self::Mime { .. } => "mime".to_owned(),
        }
    }
}

/// Graph error codes of a mailbox that Exchange Online does not host.
const MISSING_MAILBOX_CODES: &[&str] = &["MailboxNotEnabledForRESTAPI", "ErrorInvalidUser"];

fn classify_graph(error: &GraphError) -> ErrorClass {
    match error {
        // Outlook resources are throttled per application and mailbox.
        GraphError::Throttled { failure, .. } => ErrorClass::Throttled {
            retry_after: failure.retry_after,
            scope: ThrottleScope::Mailbox,
        },
        GraphError::Token { .. } | GraphError::AuthorizationDenied { .. } => ErrorClass::Denied,
        GraphError::RequestTooLarge { .. } => ErrorClass::Rejected,
        GraphError::NotFound { failure, .. }
            if MISSING_MAILBOX_CODES.contains(&failure.code.as_str()) =>
        {
            ErrorClass::MailboxNotFound
        }
        GraphError::Api { failure, .. } => match failure.status {
            401 | 403 => ErrorClass::Denied,
            429 | 503 => ErrorClass::Throttled {
                retry_after: failure.retry_after,
                scope: ThrottleScope::Mailbox,
            },
            400 | 413 | 422 => ErrorClass::Rejected,
            _ => ErrorClass::Transient,
        },
        GraphError::InvalidEndpoint { .. } | GraphError::Http(_) => ErrorClass::Denied,
        _ => ErrorClass::Transient,
    }
}

fn classify_ews(error: &EwsError) -> ErrorClass {
    if error.is_throttling() {
        // EWS throttling is charged to the service account's budget (or to the server's
        // connection limit), so one response slows every mailbox on that server.
        return ErrorClass::Throttled {
            retry_after: error.retry_after(),
            scope: ThrottleScope::Server,
        };
    }
    match error {
        EwsError::NonExistentMailbox { .. } => ErrorClass::MailboxNotFound,
        EwsError::Forbidden { .. } => ErrorClass::Blocked,
        EwsError::Unauthorized { .. }
        | EwsError::NotFound { .. }
        | EwsError::Tls { .. }
        | EwsError::Token { .. }
        | EwsError::Ntlm { .. }
        | EwsError::NtlmNotOffered { .. }
        | EwsError::ImpersonateUserDenied { .. }
        | EwsError::AccessDenied { .. }
        | EwsError::UnexpectedStatus { .. } => ErrorClass::Denied,
        EwsError::Encode { .. } => ErrorClass::Rejected,
        EwsError::Response { code, .. } if REJECTING_CODES.contains(&code.as_str()) => {
            ErrorClass::Rejected
        }
        _ => ErrorClass::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::Target;

    fn target() -> Target {
        Target {
            operation: "CreateItem",
            mailbox: Some("alice@lab.example".to_owned()),
        }
    }

    #[test]
    fn ews_errors_sort_into_classes() {
        let cases = [
            (
                EwsError::ServerBusy {
                    target: target(),
                    back_off: Some(Duration::from_millis(250)),
                },
                ErrorClass::Throttled {
                    retry_after: Some(Duration::from_millis(250)),
                    scope: ThrottleScope::Server,
                },
            ),
            (
                EwsError::ServerError {
                    target: target(),
                    status: 503,
                    retry_after: None,
                },
                ErrorClass::Throttled {
                    retry_after: None,
                    scope: ThrottleScope::Server,
                },
            ),
            (
                EwsError::ServerError {
                    target: target(),
                    status: 500,
                    retry_after: None,
                },
                ErrorClass::Transient,
            ),
            (
                EwsError::NonExistentMailbox { target: target() },
                ErrorClass::MailboxNotFound,
            ),
            (
                EwsError::Forbidden { target: target() },
                ErrorClass::Blocked,
            ),
            (
                EwsError::ImpersonateUserDenied { target: target() },
                ErrorClass::Denied,
            ),
            (
                EwsError::Response {
                    target: target(),
                    code: "ErrorMimeContentConversionFailed".into(),
                    message: String::new(),
                },
                ErrorClass::Rejected,
            ),
            (
                EwsError::Response {
                    target: target(),
                    code: "ErrorInternalServerTransientError".into(),
                    message: String::new(),
                },
                ErrorClass::Transient,
            ),
        ];
        for (error, class) in cases {
            let code = StoreError::from(error);
            assert_eq!(code.class(), class, "{code}");
        }
    }

    #[test]
    fn codes_name_the_response_code_or_the_status() {
        let busy = StoreError::from(EwsError::ServerBusy {
            target: target(),
            back_off: None,
        });
        let unavailable = StoreError::from(EwsError::ServerError {
            target: target(),
            status: 503,
            retry_after: None,
        });

        assert_eq!(busy.code(), "ErrorServerBusy");
        assert_eq!(unavailable.code(), "http_503");
    }
}
