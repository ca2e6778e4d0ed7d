//! Service principals: an application's identity in the tenant, and the first-party
//! resources (Microsoft Graph, Office 365 Exchange Online) whose app roles are granted.
//!
//! See <https://learn.microsoft.com/graph/api/resources/serviceprincipal>.

use http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::graph::{Call, GraphClient, GraphError, GraphTarget, RequestBody};
use super::odata::{Query, eq, path_segment};

const SERVICE_PRINCIPAL_FIELDS: &[&str] =
    &["id", "appId", "displayName", "accountEnabled", "appRoles"];

/// A service principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The object ID, the `principalId` or `resourceId` of app role assignments.
    pub id: String,
    /// The application (client) ID.
    pub app_id: String,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether the principal can sign in.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// The app roles this principal offers as a resource.
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
}

impl ServicePrincipal {
    /// Returns the enabled app role with this value, such as `full_access_as_app`.
    pub fn app_role(&self, value: &str) -> Option<&AppRole> {
        self.app_roles
            .iter()
            .find(|role| role.value.as_deref() == Some(value) && role.is_enabled.unwrap_or(true))
    }
}

/// An app role that a resource offers.
///
/// See <https://learn.microsoft.com/graph/api/resources/approle>.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    /// The role ID, the `appRoleId` of assignments.
    pub id: Uuid,
    /// The value in the `roles` claim of tokens, such as `Mail.ReadWrite`.
    #[serde(default)]
    pub value: Option<String>,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// `Application` for application permissions.
    #[serde(default)]
    pub allowed_member_types: Vec<String>,
    /// Whether the role can be assigned.
    #[serde(default)]
    pub is_enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

impl GraphClient {
    /// Returns the service principal of an application ID in this tenant, if one exists.
    /// This finds the first-party resources too, such as Office 365 Exchange Online.
    pub async fn find_service_principal_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Option<ServicePrincipal>, GraphError> {
        let target = GraphTarget::new("find service principal", format!("appId {app_id}"));
        let query = Query::new()
            .filter(eq("appId", app_id))
            .select(SERVICE_PRINCIPAL_FIELDS);
        let page: Collection<ServicePrincipal> = self
            .json(Call::get(target, self.url("servicePrincipals", &query)))
            .await?;
        Ok(page.value.into_iter().next())
    }

    /// Reads a service principal by object ID, waiting for replication if this client
    /// created it.
    pub async fn get_service_principal(&self, id: &str) -> Result<ServicePrincipal, GraphError> {
        let target = GraphTarget::new("get service principal", format!("service principal {id}"));
        let url = self.url(
            &format!("servicePrincipals/{}", path_segment(id)),
            &Query::new().select(SERVICE_PRINCIPAL_FIELDS),
        );
        self.json(Call::get(target, url).after_write_of(&[id]))
            .await
    }

    /// Creates the service principal of an application. Right after the application was
    /// created Graph may not know its `appId` yet; that is waited out as replication.
    pub async fn create_service_principal(
        &self,
        app_id: &str,
    ) -> Result<ServicePrincipal, GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct NewServicePrincipal<'a> {
            app_id: &'a str,
        }
        let target = GraphTarget::new("create service principal", format!("appId {app_id}"));
        let call = Call::get(target, self.url("servicePrincipals", &Query::new()))
            .with_body(
                Method::POST,
                RequestBody::json(&NewServicePrincipal { app_id }),
            )
            .after_write_of(&[app_id]);
        let created: ServicePrincipal = self.json(call).await?;
        self.note_write(&created.id);
        tracing::info!(object_id = %created.id, app_id = %app_id, "created service principal");
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::providers::entra::applications::EXCHANGE_ONLINE_APP_ID;
    use crate::providers::entra::graph::tests::{
        client, fast_options, graph_error, json_response, path_of, query_pairs,
    };
    use crate::providers::exchange::test_server::TestServer;

    fn exchange_principal() -> serde_json::Value {
        serde_json::json!({
            "id": "sp-exo",
            "appId": EXCHANGE_ONLINE_APP_ID,
            "displayName": "Office 365 Exchange Online",
            "appRoles": [
                {"id": "dc890d15-9560-4a4c-9b7f-a736ec74ec40", "value": "full_access_as_app",
                 "allowedMemberTypes": ["Application"], "isEnabled": true}
            ]
        })
    }

    #[tokio::test]
    async fn resource_principal_is_found_by_app_id() {
        let server = TestServer::http(|_| {
            json_response(200, serde_json::json!({"value": [exchange_principal()]}))
        })
        .await;
        let client = client(&server, fast_options());
        let principal = client
            .find_service_principal_by_app_id(EXCHANGE_ONLINE_APP_ID)
            .await
            .unwrap()
            .expect("the principal should be found");
        let role = principal.app_role("full_access_as_app").expect("role");
        assert_eq!(role.id.to_string(), "dc890d15-9560-4a4c-9b7f-a736ec74ec40");
        assert!(principal.app_role("Exchange.ManageAsApp").is_none());

        let request = &server.recorded()[0];
        assert_eq!(path_of(request), "/v1.0/servicePrincipals");
        assert_eq!(
            query_pairs(request)[0].1,
            format!("appId eq '{EXCHANGE_ONLINE_APP_ID}'")
        );
    }

    #[tokio::test]
    async fn missing_principal_is_none() {
        let server =
            TestServer::http(|_| json_response(200, serde_json::json!({"value": []}))).await;
        let client = client(&server, fast_options());
        assert!(
            client
                .find_service_principal_by_app_id("app-1")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn create_for_new_application_waits_for_replication() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let server = TestServer::http(move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                graph_error(
                    400,
                    "Request_BadRequest",
                    "The appId 'app-1' of the service principal does not reference a valid application object.",
                )
            } else {
                json_response(201, serde_json::json!({"id": "sp-1", "appId": "app-1"}))
            }
        })
        .await;
        let client = client(&server, fast_options());
        client.note_write("app-1");
        let created = client.create_service_principal("app-1").await.unwrap();
        assert_eq!(created.id, "sp-1");

        let requests = server.recorded();
        assert_eq!(requests.len(), 2);
        let body: serde_json::Value = serde_json::from_str(&requests[1].body).unwrap();
        assert_eq!(body, serde_json::json!({"appId": "app-1"}));
    }
}
