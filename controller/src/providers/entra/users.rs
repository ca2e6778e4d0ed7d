//! Users, read by UPN or object ID.
//!
//! See <https://learn.microsoft.com/graph/api/resources/user>.

use serde::Deserialize;

use super::graph::{Call, GraphClient, GraphError, GraphTarget};
use super::odata::{Query, path_segment};

/// The properties that user reads select.
pub(crate) const USER_FIELDS: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "accountEnabled",
    "proxyAddresses",
];

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The object ID.
    pub id: String,
    /// The user principal name.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// The primary SMTP address.
    #[serde(default)]
    pub mail: Option<String>,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the account can sign in.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// All addresses, such as `SMTP:alice@lab.example` (primary) and `smtp:` aliases.
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
}

impl GraphClient {
    /// Returns the user with this UPN or object ID, or `None` when none exists.
    pub async fn get_user(&self, upn_or_id: &str) -> Result<Option<User>, GraphError> {
        let target = GraphTarget::new("get user", format!("user {upn_or_id}"));
        let url = self.url(
            &format!("users/{}", path_segment(upn_or_id)),
            &Query::new().select(USER_FIELDS),
        );
        match self.json(Call::get(target, url)).await {
            Ok(user) => Ok(Some(user)),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::entra::graph::tests::{
        client, fast_options, graph_error, json_response, path_of,
    };
    use crate::providers::exchange::test_server::TestServer;

    #[tokio::test]
    async fn user_is_read_by_upn() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({
                    "id": "u-1",
                    "userPrincipalName": "alice@lab.example",
                    "mail": "alice@lab.example",
                    "accountEnabled": true,
                    "proxyAddresses": ["SMTP:alice@lab.example", "smtp:a.archer@lab.example"]
                }),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let user = client
            .get_user("alice@lab.example")
            .await
            .unwrap()
            .expect("user");
        assert_eq!(user.id, "u-1");
        assert_eq!(user.proxy_addresses.len(), 2);
        assert_eq!(
            path_of(&server.recorded()[0]),
            "/v1.0/users/alice%40lab.example"
        );
    }

    #[tokio::test]
    async fn missing_user_is_none() {
        let server =
            TestServer::http(|_| graph_error(404, "Request_ResourceNotFound", "gone")).await;
        let client = client(&server, fast_options());
        assert_eq!(client.get_user("nobody@lab.example").await.unwrap(), None);
    }
}
