//! The error type of the EWS client.

use std::fmt;
use std::time::Duration;

use super::auth::AuthScheme;
use super::ntlm::NtlmError;
use super::soap::SoapFault;

/// The operation and mailbox that a failed request was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The EWS operation, such as `FindItem`.
    pub operation: &'static str,
    /// The mailbox the request acted on (impersonated or anchored), if any.
    pub mailbox: Option<String>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mailbox {
            Some(mailbox) => write!(f, "EWS {} for mailbox {mailbox}", self.operation),
            None => write!(f, "EWS {}", self.operation),
        }
    }
}

/// A failed EWS request. Every variant names the operation and mailbox in `target`.
#[derive(Debug, thiserror::Error)]
pub enum EwsError {
    /// The server rejected the credentials (HTTP 401).
    #[error(
        "{target} failed: HTTP 401 for {scheme} authentication; check the account name and password, and that EWS accepts {scheme} authentication"
    )]
    Unauthorized {
        /// The operation and mailbox.
        target: Target,
        /// The scheme that was rejected.
        scheme: AuthScheme,
        /// The schemes that the server offers, from `WWW-Authenticate`.
        offered: Vec<String>,
    },

    /// The server refused access (HTTP 403), for example because EWS is blocked for the
    /// application or the account.
    #[error(
        "{target} failed: HTTP 403 forbidden; check that EWS is enabled for the account and, in Exchange Online, that the application is allowed to use EWS"
    )]
    Forbidden {
        /// The operation and mailbox.
        target: Target,
    },

    /// The URL does not exist on the server (HTTP 404).
    #[error(
        "{target} failed: HTTP 404 at {url}; check the EWS URL (usually https://SERVER/EWS/Exchange.asmx)"
    )]
    NotFound {
        /// The operation and mailbox.
        target: Target,
        /// The requested URL.
        url: String,
    },

    /// The server failed (HTTP 5xx without a SOAP fault), or is overloaded (503).
    #[error("{target} failed: HTTP {status} from the server{}", retry_after.map(|wait| format!(" (retry after {}s)", wait.as_secs())).unwrap_or_default())]
    ServerError {
        /// The operation and mailbox.
        target: Target,
        /// The HTTP status.
        status: u16,
        /// The wait that a `Retry-After` header asked for.
        retry_after: Option<Duration>,
    },

    /// The server returned a status that EWS does not use.
    #[error("{target} failed: unexpected HTTP {status}{}", location.as_ref().map(|to| format!(" redirecting to {to}")).unwrap_or_default())]
    UnexpectedStatus {
        /// The operation and mailbox.
        target: Target,
        /// The HTTP status.
        status: u16,
        /// The `Location` of a redirect, which usually points at a login page.
        location: Option<String>,
    },

    /// No TCP connection could be opened.
    #[error("{target} failed: cannot connect to {host}; check the host name, port and firewall")]
    Connect {
        /// The operation and mailbox.
        target: Target,
        /// The host from the URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The TLS handshake failed, usually because the certificate is not trusted or does
    /// not name the host.
    #[error(
        "{target} failed: TLS handshake with {host} failed; if the server uses a private CA, configure its CA file"
    )]
    Tls {
        /// The operation and mailbox.
        target: Target,
        /// The host from the URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The request timed out.
    #[error("{target} failed: timed out waiting for {host}")]
    Timeout {
        /// The operation and mailbox.
        target: Target,
        /// The host from the URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// Sending the request or reading the response failed after connecting.
    #[error("{target} failed: HTTP exchange with {host} broke off")]
    Transport {
        /// The operation and mailbox.
        target: Target,
        /// The host from the URL.
        host: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The bearer token could not be obtained.
    #[error(
        "{target} failed: cannot get an access token; check the application's tenant, client ID and secret or certificate"
    )]
    Token {
        /// The operation and mailbox.
        target: Target,
        /// The credential's error, boxed because it is large.
        #[source]
        source: Box<azure_core::Error>,
    },

    /// The NTLM handshake could not be carried out.
    #[error("{target} failed: NTLM handshake failed")]
    Ntlm {
        /// The operation and mailbox.
        target: Target,
        /// The cause.
        #[source]
        source: NtlmError,
    },

    /// The server returned 401 to the NTLM negotiate message without a challenge.
    #[error("{target} failed: the server sent no NTLM challenge (it offers {}); enable NTLM (Windows authentication) on the EWS virtual directory or use another scheme", if offered.is_empty() { "no scheme".to_owned() } else { offered.join(", ") })]
    NtlmNotOffered {
        /// The operation and mailbox.
        target: Target,
        /// The schemes that the server offers.
        offered: Vec<String>,
    },

    /// The whole request failed with a SOAP fault whose code has no variant of its own.
    #[error("{target} failed with SOAP fault {}: {}", fault.fault_code, fault.fault_string)]
    SoapFault {
        /// The operation and mailbox.
        target: Target,
        /// The fault.
        fault: Box<SoapFault>,
    },

    /// `ErrorNonExistentMailbox`: no mailbox has that address.
    #[error(
        "{target} failed: ErrorNonExistentMailbox; the address has no mailbox on this server (check the address, or whether the mailbox is in Exchange Online)"
    )]
    NonExistentMailbox {
        /// The operation and mailbox.
        target: Target,
    },

    /// `ErrorImpersonateUserDenied`: the account may not impersonate this mailbox.
    #[error(
        "{target} failed: ErrorImpersonateUserDenied; grant the ApplicationImpersonation role to the service account, or widen its management scope to this mailbox"
    )]
    ImpersonateUserDenied {
        /// The operation and mailbox.
        target: Target,
    },

    /// `ErrorItemNotFound`: the item does not exist, or no longer.
    #[error("{target} failed: ErrorItemNotFound; the item was deleted or moved")]
    ItemNotFound {
        /// The operation and mailbox.
        target: Target,
    },

    /// `ErrorServerBusy`: the server throttles the caller.
    #[error("{target} failed: ErrorServerBusy; the server throttles this account{}", back_off.map(|wait| format!(", retry after {} ms", wait.as_millis())).unwrap_or_default())]
    ServerBusy {
        /// The operation and mailbox.
        target: Target,
        /// The wait that `BackOffMilliseconds` asked for.
        back_off: Option<Duration>,
    },

    /// `ErrorExceededConnectionCount`: the account has too many requests in flight.
    #[error(
        "{target} failed: ErrorExceededConnectionCount; too many concurrent requests for this account, lower the concurrency"
    )]
    ExceededConnectionCount {
        /// The operation and mailbox.
        target: Target,
    },

    /// `ErrorAccessDenied`: the account lacks rights on the mailbox or item.
    #[error("{target} failed: ErrorAccessDenied: {message}")]
    AccessDenied {
        /// The operation and mailbox.
        target: Target,
        /// The server's text.
        message: String,
    },

    /// Another EWS response code, kept as text.
    #[error("{target} failed: {code}: {message}")]
    Response {
        /// The operation and mailbox.
        target: Target,
        /// The response code, such as `ErrorQuotaExceeded`.
        code: String,
        /// The server's text.
        message: String,
    },

    /// The response had fewer response messages than the request had items.
    #[error("{target} failed: the response has no response message")]
    MissingResponseMessage {
        /// The operation and mailbox.
        target: Target,
    },

    /// The request could not be serialized.
    #[error("{target} failed: cannot serialize the request: {message}")]
    Encode {
        /// The operation and mailbox.
        target: Target,
        /// The serializer's message.
        message: String,
    },

    /// The response does not have the expected structure.
    #[error("{target} failed: cannot decode the response at {path}: {message}")]
    Decode {
        /// The operation and mailbox.
        target: Target,
        /// The element path where decoding stopped.
        path: String,
        /// The decoder's message.
        message: String,
    },
}

impl EwsError {
    /// Maps an EWS response code, from a response message or a SOAP fault, to an error.
    pub(crate) fn from_response_code(
        target: Target,
        code: &str,
        message: Option<&str>,
        back_off: Option<Duration>,
    ) -> Self {
        let message = message.unwrap_or_default().to_owned();
        match code {
            "ErrorNonExistentMailbox" => Self::NonExistentMailbox { target },
            "ErrorImpersonateUserDenied" => Self::ImpersonateUserDenied { target },
            "ErrorItemNotFound" => Self::ItemNotFound { target },
            "ErrorServerBusy" => Self::ServerBusy { target, back_off },
            "ErrorExceededConnectionCount" => Self::ExceededConnectionCount { target },
            "ErrorAccessDenied" => Self::AccessDenied { target, message },
            _ => Self::Response {
                target,
                code: code.to_owned(),
                message,
            },
        }
    }

    /// Returns the operation and mailbox of the failed request.
    pub fn target(&self) -> &Target {
        match self {
            Self::Unauthorized { target, .. }
            | Self::Forbidden { target }
            | Self::NotFound { target, .. }
            | Self::ServerError { target, .. }
            | Self::UnexpectedStatus { target, .. }
            | Self::Connect { target, .. }
            | Self::Tls { target, .. }
            | Self::Timeout { target, .. }
            | Self::Transport { target, .. }
            | Self::Token { target, .. }
            | Self::Ntlm { target, .. }
            | Self::NtlmNotOffered { target, .. }
            | Self::SoapFault { target, .. }
            | Self::NonExistentMailbox { target }
            | Self::ImpersonateUserDenied { target }
            | Self::ItemNotFound { target }
            | Self::ServerBusy { target, .. }
            | Self::ExceededConnectionCount { target }
            | Self::AccessDenied { target, .. }
            | Self::Response { target, .. }
            | Self::MissingResponseMessage { target }
            | Self::Encode { target, .. }
            | Self::Decode { target, .. } => target,
        }
    }

    /// Returns the EWS response code behind the error, such as `ErrorItemNotFound`.
    pub fn response_code(&self) -> Option<&str> {
        match self {
            Self::NonExistentMailbox { .. } => Some("ErrorNonExistentMailbox"),
            Self::ImpersonateUserDenied { .. } => Some("ErrorImpersonateUserDenied"),
            Self::ItemNotFound { .. } => Some("ErrorItemNotFound"),
            Self::ServerBusy { .. } => Some("ErrorServerBusy"),
            Self::ExceededConnectionCount { .. } => Some("ErrorExceededConnectionCount"),
            Self::AccessDenied { .. } => Some("ErrorAccessDenied"),
            Self::Response { code, .. } => Some(code),
            Self::SoapFault { fault, .. } => fault.ews_response_code(),
            _ => None,
        }
    }

    /// Tells whether the server is throttling or overloaded, so that the caller should
    /// wait (see [`retry_after`](Self::retry_after)) before sending more requests.
    pub fn is_throttling(&self) -> bool {
        match self {
            Self::ServerBusy { .. } | Self::ExceededConnectionCount { .. } => true,
            Self::ServerError { status, .. } => *status == 503,
            _ => false,
        }
    }

    /// Returns the wait that the server asked for: `BackOffMilliseconds` with
    /// `ErrorServerBusy`, or the `Retry-After` header of an HTTP error.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::ServerBusy { back_off, .. } => *back_off,
            Self::ServerError { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            operation: "FindItem",
            mailbox: Some("alice@lab.example".to_owned()),
        }
    }

    #[test]
    fn known_codes_map_to_their_variants() {
        let cases = [
            ("ErrorNonExistentMailbox", "NonExistentMailbox"),
            ("ErrorImpersonateUserDenied", "ImpersonateUserDenied"),
            ("ErrorItemNotFound", "ItemNotFound"),
            ("ErrorServerBusy", "ServerBusy"),
            ("ErrorExceededConnectionCount", "ExceededConnectionCount"),
            ("ErrorAccessDenied", "AccessDenied"),
            ("ErrorQuotaExceeded", "Response"),
        ];
        for (code, variant) in cases {
            let error = EwsError::from_response_code(target(), code, Some("text"), None);
            assert!(
                format!("{error:?}").starts_with(variant),
                "{code} gave {error:?}"
            );
            assert_eq!(error.response_code(), Some(code));
        }
    }

    #[test]
    fn server_busy_is_throttling_with_back_off() {
        let error = EwsError::from_response_code(
            target(),
            "ErrorServerBusy",
            None,
            Some(Duration::from_millis(5000)),
        );
        assert!(error.is_throttling());
        assert_eq!(error.retry_after(), Some(Duration::from_millis(5000)));
        assert!(error.to_string().contains("retry after 5000 ms"), "{error}");
    }

    #[test]
    fn exceeded_connection_count_is_throttling() {
        let error =
            EwsError::from_response_code(target(), "ErrorExceededConnectionCount", None, None);
        assert!(error.is_throttling());
        assert_eq!(error.retry_after(), None);
    }

    #[test]
    fn http_503_is_throttling_but_500_is_not() {
        let busy = EwsError::ServerError {
            target: target(),
            status: 503,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert!(busy.is_throttling());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(30)));
        let failed = EwsError::ServerError {
            target: target(),
            status: 500,
            retry_after: None,
        };
        assert!(!failed.is_throttling());
    }

    #[test]
    fn message_names_operation_and_mailbox() {
        let error =
            EwsError::from_response_code(target(), "ErrorImpersonateUserDenied", None, None);
        let message = error.to_string();
        assert!(
            message.starts_with("EWS FindItem for mailbox alice@lab.example failed"),
            "{message}"
        );
        assert!(message.contains("ApplicationImpersonation"), "{message}");
        assert_eq!(error.target().operation, "FindItem");
    }
}
