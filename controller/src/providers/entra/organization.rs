//! The tenant's organization object: its name and verified domains.
//!
//! See <https://learn.microsoft.com/graph/api/resources/organization>.

use serde::Deserialize;

use super::graph::{Call, GraphClient, GraphError, GraphTarget};
use super::odata::Query;

/// The organization (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The tenant ID.
    pub id: String,
    /// The organization's name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The domains the tenant has verified.
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
}

/// A verified domain of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    /// The domain name.
    pub name: String,
    /// Whether new users get this domain by default.
    #[serde(default)]
    pub is_default: bool,
    /// Whether this is the `*.onmicrosoft.com` domain.
    #[serde(default)]
    pub is_initial: bool,
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

impl GraphClient {
    /// Reads the organization of the signed-in tenant; `None` when Graph returns none.
    pub async fn organization(&self) -> Result<Option<Organization>, GraphError> {
        let target = GraphTarget::operation("get organization");
        let url = self.url(
            "organization",
            &Query::new().select(&["id", "displayName", "verifiedDomains"]),
        );
        let page: Collection<Organization> = self.json(Call::get(target, url)).await?;
        Ok(page.value.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::entra::graph::tests::{client, fast_options, json_response};
    use crate::providers::exchange::test_server::TestServer;

    #[tokio::test]
    async fn organization_is_read_with_domains() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [{
                    "id": "6f1c0a3e-2b7d-4e59-9c0f-1a2b3c4d5e6f",
                    "displayName": "Lab Example Ltd",
                    "verifiedDomains": [
                        {"name": "lab.example", "isDefault": true, "isInitial": false},
                        {"name": "labexample.onmicrosoft.com", "isDefault": false, "isInitial": true}
                    ]
                }]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let organization = client.organization().await.unwrap().expect("organization");
        assert_eq!(
            organization.display_name.as_deref(),
            Some("Lab Example Ltd")
        );
        assert!(
            organization
                .verified_domains
                .iter()
                .any(|domain| domain.is_initial)
        );
    }
}
