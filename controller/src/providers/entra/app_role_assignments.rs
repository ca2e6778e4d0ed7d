//! App role assignments: admin consent to application permissions, granted by assigning a
//! resource's app role to the application's service principal.
//!
//! See <https://learn.microsoft.com/graph/api/resources/approleassignment>.

use chrono::{DateTime, Utc};
use http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::graph::{Call, GraphClient, GraphError, GraphTarget, RequestBody};
use super::odata::{Query, path_segment};

/// An app role granted to a service principal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRoleAssignment {
    /// The assignment's ID.
    pub id: String,
    /// The service principal that the role is granted to.
    pub principal_id: Uuid,
    /// The resource's service principal.
    pub resource_id: Uuid,
    /// The granted app role.
    pub app_role_id: Uuid,
    /// The display name of the principal.
    #[serde(default)]
    pub principal_display_name: Option<String>,
    /// The display name of the resource.
    #[serde(default)]
    pub resource_display_name: Option<String>,
    /// When the role was granted.
    #[serde(default)]
    pub created_date_time: Option<DateTime<Utc>>,
}

impl GraphClient {
    /// Lists the app roles granted to a service principal (paged).
    pub async fn list_app_role_assignments(
        &self,
        principal_id: &str,
    ) -> Result<Vec<AppRoleAssignment>, GraphError> {
        use futures::TryStreamExt;

        let target = GraphTarget::new(
            "list app role assignments",
            format!("service principal {principal_id}"),
        );
        let url = self.url(
            &format!(
                "servicePrincipals/{}/appRoleAssignments",
                path_segment(principal_id)
            ),
            &Query::new(),
        );
        self.paged(target, url).try_collect().await
    }

    /// Grants `app_role_id` of the resource service principal `resource_id` to the service
    /// principal `principal_id` (admin consent for one application permission).
    pub async fn create_app_role_assignment(
        &self,
        principal_id: &str,
        resource_id: &str,
        app_role_id: Uuid,
    ) -> Result<AppRoleAssignment, GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct NewAssignment<'a> {
            principal_id: &'a str,
            resource_id: &'a str,
            app_role_id: Uuid,
        }
        let target = GraphTarget::new(
            "grant app role",
            format!("app role {app_role_id} of {resource_id} to service principal {principal_id}"),
        );
        let url = self.url(
            &format!(
                "servicePrincipals/{}/appRoleAssignments",
                path_segment(principal_id)
            ),
            &Query::new(),
        );
        let body = NewAssignment {
            principal_id,
            resource_id,
            app_role_id,
        };
        let call = Call::get(target, url)
            .with_body(Method::POST, RequestBody::json(&body))
            .after_write_of(&[principal_id]);
        let created: AppRoleAssignment = self.json(call).await?;
        tracing::info!(
            principal_id = %principal_id,
            resource_id = %resource_id,
            app_role_id = %app_role_id,
            "granted app role"
        );
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use crate::providers::entra::applications::FULL_ACCESS_AS_APP_ROLE_ID;
    use crate::providers::entra::graph::tests::{client, fast_options, json_response, path_of};
    use crate::providers::exchange::test_server::TestServer;

    const PRINCIPAL: &str = "0a0a0a0a-0000-0000-0000-000000000001";
    const RESOURCE: &str = "0b0b0b0b-0000-0000-0000-000000000002";

    fn assignment() -> serde_json::Value {
        serde_json::json!({
            "id": "assignment-1",
            "principalId": PRINCIPAL,
            "resourceId": RESOURCE,
            "appRoleId": FULL_ACCESS_AS_APP_ROLE_ID,
            "resourceDisplayName": "Office 365 Exchange Online"
        })
    }

    #[tokio::test]
    async fn grant_posts_the_three_ids() {
        let server = TestServer::http(|_| json_response(201, assignment())).await;
        let client = client(&server, fast_options());
        let created = client
            .create_app_role_assignment(PRINCIPAL, RESOURCE, FULL_ACCESS_AS_APP_ROLE_ID)
            .await
            .unwrap();
        assert_eq!(created.app_role_id, FULL_ACCESS_AS_APP_ROLE_ID);

        let request = &server.recorded()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(
            path_of(request),
            format!("/v1.0/servicePrincipals/{PRINCIPAL}/appRoleAssignments")
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["principalId"], PRINCIPAL);
        assert_eq!(body["resourceId"], RESOURCE);
        assert_eq!(body["appRoleId"], FULL_ACCESS_AS_APP_ROLE_ID.to_string());
    }

    #[tokio::test]
    async fn list_reads_every_page() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [assignment(), assignment()]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let assignments = client.list_app_role_assignments(PRINCIPAL).await.unwrap();
        assert_eq!(assignments.len(), 2);
        assert_eq!(
            assignments[0].resource_display_name.as_deref(),
            Some("Office 365 Exchange Online")
        );
    }
}
