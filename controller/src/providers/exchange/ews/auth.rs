//! Credentials for EWS and Autodiscover requests.

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;

/// The OAuth scope of Exchange Online's EWS for app-only tokens.
pub const EXCHANGE_ONLINE_SCOPE: &str = "https://outlook.office365.com/.default";

/// A password that never appears in `Debug` or `Display` output.
//
// NOTE: this stays local to the Exchange provider until the spec crate publishes its own
// secret type, so that this module does not depend on the spec model.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The authentication of the client to EWS and Autodiscover.
#[derive(Clone)]
pub enum EwsAuth {
    /// HTTP Basic with a user name (`DOMAIN\user` or a UPN) and password.
    Basic {
        /// The account name.
        username: String,
        /// The account's password.
        password: Secret,
    },
    /// NTLM over HTTP, bound to the TLS channel (`tls-server-end-point`) on https URLs.
    Ntlm {
        /// The account name, `DOMAIN\user` or a UPN.
        username: String,
        /// The account's password.
        password: Secret,
    },
    /// OAuth bearer tokens from a credential that caches and refreshes them.
    Bearer {
        /// The token source, asked for a token on every request.
        credential: Arc<dyn TokenCredential>,
        /// The scope to request, [`EXCHANGE_ONLINE_SCOPE`] for Exchange Online.
        scope: String,
    },
    /// No `Authorization` header, for the unauthenticated Autodiscover redirect check.
    None,
}

impl EwsAuth {
    /// Creates bearer authentication with the Exchange Online scope.
    pub fn exchange_online(credential: Arc<dyn TokenCredential>) -> Self {
        Self::Bearer {
            credential,
            scope: EXCHANGE_ONLINE_SCOPE.to_owned(),
        }
    }

    /// Returns the HTTP authentication scheme, for error messages.
    pub fn scheme(&self) -> AuthScheme {
        match self {
            Self::Basic { .. } => AuthScheme::Basic,
            Self::Ntlm { .. } => AuthScheme::Ntlm,
            Self::Bearer { .. } => AuthScheme::Bearer,
            Self::None => AuthScheme::None,
        }
    }

    /// Returns the account name that authenticates, or `None` for bearer tokens.
    pub fn username(&self) -> Option<&str> {
        match self {
            Self::Basic { username, .. } | Self::Ntlm { username, .. } => Some(username),
            Self::Bearer { .. } | Self::None => None,
        }
    }
}

impl fmt::Debug for EwsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Ntlm { username, .. } => f
                .debug_struct("Ntlm")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Bearer { scope, .. } => f
                .debug_struct("Bearer")
                .field("scope", scope)
                .finish_non_exhaustive(),
            Self::None => f.write_str("None"),
        }
    }
}

/// An HTTP authentication scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic.
    Basic,
    /// NTLM.
    Ntlm,
    /// OAuth bearer token.
    Bearer,
    /// No authentication.
    None,
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Basic => "Basic",
            Self::Ntlm => "NTLM",
            Self::Bearer => "Bearer",
            Self::None => "no",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_display() {
        let secret = Secret::new("Passw0rd!");
        assert!(!format!("{secret:?}").contains("Passw0rd!"));
        assert!(!secret.to_string().contains("Passw0rd!"));
        assert_eq!(secret.expose(), "Passw0rd!");
    }

    #[test]
    fn auth_debug_hides_password() {
        let auth = EwsAuth::Ntlm {
            username: r"LAB\svc-siu".to_owned(),
            password: Secret::new("Passw0rd!"),
        };
        let debug = format!("{auth:?}");
        assert!(debug.contains(r"LAB\\svc-siu"), "{debug}");
        assert!(!debug.contains("Passw0rd!"), "{debug}");
    }
}
