//! Application registrations: find, create, and add certificate and password credentials.
//!
//! See <https://learn.microsoft.com/graph/api/resources/application>.

use chrono::{DateTime, Utc};
use http::Method;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::certificate::CertificateKey;
use super::graph::{Call, GraphClient, GraphError, GraphTarget, RequestBody};
use super::odata::{Query, eq, path_segment};
use crate::providers::exchange::ews::Secret;

/// Application (client) ID of Office 365 Exchange Online.
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// App role ID of Exchange Online's `full_access_as_app` application permission.
pub const FULL_ACCESS_AS_APP_ROLE_ID: Uuid = uuid::uuid!("dc890d15-9560-4a4c-9b7f-a736ec74ec40");
/// Application (client) ID of Microsoft Graph.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// App role ID of Microsoft Graph's `Mail.ReadWrite` application permission.
pub const MAIL_READ_WRITE_ROLE_ID: Uuid = uuid::uuid!("e2a3a72e-5f79-4c64-b1b1-878b674786c9");
/// App role ID of Microsoft Graph's `User.Read.All` application permission.
pub const USER_READ_ALL_ROLE_ID: Uuid = uuid::uuid!("df021288-bdef-4463-88db-98f22de89214");
/// App role ID of Microsoft Graph's `GroupMember.Read.All` application permission.
pub const GROUP_MEMBER_READ_ALL_ROLE_ID: Uuid = uuid::uuid!("98830695-27a2-44f7-8c18-0c3ebc9698f6");

/// The properties that application reads select.
const APPLICATION_FIELDS: &[&str] = &[
    "id",
    "appId",
    "displayName",
    "signInAudience",
    "requiredResourceAccess",
    "keyCredentials",
    "passwordCredentials",
    "createdDateTime",
];

/// An application registration.
///
/// See <https://learn.microsoft.com/graph/api/resources/application>.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// The object ID, used in `/applications/{id}` paths.
    pub id: String,
    /// The application (client) ID.
    pub app_id: String,
    /// The display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The accounts that can sign in, such as `AzureADMyOrg`.
    #[serde(default)]
    pub sign_in_audience: Option<String>,
    /// The API permissions the application requests.
    #[serde(default)]
    pub required_resource_access: Vec<RequiredResourceAccess>,
    /// Certificate credentials.
    #[serde(default)]
    pub key_credentials: Vec<KeyCredential>,
    /// Client secrets, without their values.
    #[serde(default)]
    pub password_credentials: Vec<PasswordCredential>,
    /// When the application was created.
    #[serde(default)]
    pub created_date_time: Option<DateTime<Utc>>,
}

/// The permissions an application requests from one resource.
///
/// See <https://learn.microsoft.com/graph/api/resources/requiredresourceaccess>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredResourceAccess {
    /// The application ID of the resource, such as Microsoft Graph's.
    pub resource_app_id: String,
    /// The requested permissions.
    #[serde(default)]
    pub resource_access: Vec<ResourceAccess>,
}

/// One requested permission.
///
/// See <https://learn.microsoft.com/graph/api/resources/resourceaccess>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    /// The app role ID (for `Role`) or delegated scope ID (for `Scope`).
    pub id: Uuid,
    /// `Role` for application permissions, `Scope` for delegated ones.
    #[serde(rename = "type")]
    pub kind: String,
}

impl ResourceAccess {
    /// Creates a request for an application permission (app role).
    pub fn role(id: Uuid) -> Self {
        Self {
            id,
            kind: "Role".to_owned(),
        }
    }
}

/// A certificate credential of an application.
///
/// See <https://learn.microsoft.com/graph/api/resources/keycredential>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyCredential {
    /// The credential's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    /// A name for the credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Base64 of the certificate's SHA-1 thumbprint bytes, by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_identifier: Option<String>,
    /// Start of validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<DateTime<Utc>>,
    /// End of validity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date_time: Option<DateTime<Utc>>,
    /// `AsymmetricX509Cert` for certificates.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `Verify` for certificates that sign client assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// The certificate in base64 DER. Graph returns it only for `$select=keyCredentials` on a
    /// single application, and `null` in every other read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl KeyCredential {
    /// Creates the credential for a certificate key's public certificate.
    pub fn for_certificate(key: &CertificateKey, display_name: &str) -> Self {
        Self {
            key_id: Some(Uuid::new_v4()),
            display_name: Some(display_name.to_owned()),
            custom_key_identifier: None,
            start_date_time: Some(key.not_before()),
            end_date_time: Some(key.not_after()),
            kind: Some("AsymmetricX509Cert".to_owned()),
            usage: Some("Verify".to_owned()),
            key: Some(key.certificate_base64()),
        }
    }
}

/// A client secret of an application, without its value.
///
/// See <https://learn.microsoft.com/graph/api/resources/passwordcredential>.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordCredential {
    /// The credential's ID.
    pub key_id: Uuid,
    /// A name for the credential.
    #[serde(default)]
    pub display_name: Option<String>,
    /// The first characters of the secret.
    #[serde(default)]
    pub hint: Option<String>,
    /// Start of validity.
    #[serde(default)]
    pub start_date_time: Option<DateTime<Utc>>,
    /// End of validity.
    #[serde(default)]
    pub end_date_time: Option<DateTime<Utc>>,
}

/// A client secret that `addPassword` just created. `secret_text` exists only in this
/// response; Graph never returns it again.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedPassword {
    /// The credential's ID.
    pub key_id: Uuid,
    /// The secret's value.
    #[serde(deserialize_with = "deserialize_secret")]
    pub secret_text: Secret,
    /// The first characters of the secret.
    #[serde(default)]
    pub hint: Option<String>,
    /// End of validity.
    #[serde(default)]
    pub end_date_time: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AddedPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedPassword")
            .field("key_id", &self.key_id)
            .field("hint", &self.hint)
            .field("end_date_time", &self.end_date_time)
            .finish_non_exhaustive()
    }
}

fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Secret, D::Error> {
    String::deserialize(deserializer).map(Secret::new)
}

/// The body of `POST /applications`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewApplication {
    /// The display name.
    pub display_name: String,
    /// The accounts that can sign in: `AzureADMyOrg` for a single-tenant application.
    pub sign_in_audience: String,
    /// The API permissions to request.
    pub required_resource_access: Vec<RequiredResourceAccess>,
}

impl NewApplication {
    /// Creates the registration that Sent Items Update needs: single tenant, with Exchange
    /// Online `full_access_as_app` (EWS) and Microsoft Graph `Mail.ReadWrite`,
    /// `User.Read.All` and `GroupMember.Read.All` application permissions.
    pub fn sent_items_update(display_name: &str) -> Self {
        Self {
            display_name: display_name.to_owned(),
            sign_in_audience: "AzureADMyOrg".to_owned(),
            required_resource_access: required_permissions(),
        }
    }
}

/// Returns the API permissions of the Sent Items Update application.
pub fn required_permissions() -> Vec<RequiredResourceAccess> {
    vec![
        RequiredResourceAccess {
            resource_app_id: EXCHANGE_ONLINE_APP_ID.to_owned(),
            resource_access: vec![ResourceAccess::role(FULL_ACCESS_AS_APP_ROLE_ID)],
        },
        RequiredResourceAccess {
            resource_app_id: MICROSOFT_GRAPH_APP_ID.to_owned(),
            resource_access: vec![
                ResourceAccess::role(MAIL_READ_WRITE_ROLE_ID),
                ResourceAccess::role(USER_READ_ALL_ROLE_ID),
                ResourceAccess::role(GROUP_MEMBER_READ_ALL_ROLE_ID),
            ],
        },
    ]
}

#[derive(Deserialize)]
struct Collection<T> {
    value: Vec<T>,
}

impl GraphClient {
    /// Lists the applications with exactly this display name (there can be several).
    pub async fn find_applications_by_display_name(
        &self,
        display_name: &str,
    ) -> Result<Vec<Application>, GraphError> {
        let target = GraphTarget::new("find application", format!("display name '{display_name}'"));
        let query = Query::new()
            .filter(eq("displayName", display_name))
            .select(APPLICATION_FIELDS);
        let page: Collection<Application> = self
            .json(Call::get(target, self.url("applications", &query)))
            .await?;
        Ok(page.value)
    }

    /// Returns the application with this application (client) ID, if it exists.
    pub async fn find_application_by_app_id(
        &self,
        app_id: &str,
    ) -> Result<Option<Application>, GraphError> {
        let target = GraphTarget::new("find application", format!("appId {app_id}"));
        let query = Query::new()
            .filter(eq("appId", app_id))
            .select(APPLICATION_FIELDS);
        let page: Collection<Application> = self
            .json(Call::get(target, self.url("applications", &query)))
            .await?;
        Ok(page.value.into_iter().next())
    }

    /// Reads an application by object ID, waiting for replication if this client created it.
    pub async fn get_application(&self, id: &str) -> Result<Application, GraphError> {
        let target = GraphTarget::new("get application", format!("application {id}"));
        let url = self.url(
            &format!("applications/{}", path_segment(id)),
            &Query::new().select(APPLICATION_FIELDS),
        );
        self.json(Call::get(target, url).after_write_of(&[id]))
            .await
    }

    /// Creates an application and remembers its IDs for replication waits.
    pub async fn create_application(
        &self,
        application: &NewApplication,
    ) -> Result<Application, GraphError> {
        let target = GraphTarget::new(
            "create application",
            format!("application '{}'", application.display_name),
        );
        let call = Call::get(target, self.url("applications", &Query::new()))
            .with_body(Method::POST, RequestBody::json(application));
        let created: Application = self.json(call).await?;
        self.note_write(&created.id);
        self.note_write(&created.app_id);
        tracing::info!(
            object_id = %created.id,
            app_id = %created.app_id,
            display_name = %application.display_name,
            "created application"
        );
        Ok(created)
    }

    /// Replaces the API permissions an application requests.
    pub async fn update_required_resource_access(
        &self,
        id: &str,
        access: &[RequiredResourceAccess],
    ) -> Result<(), GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Update<'a> {
            required_resource_access: &'a [RequiredResourceAccess],
        }
        let target = GraphTarget::new(
            "update application permissions",
            format!("application {id}"),
        );
        let url = self.url(&format!("applications/{}", path_segment(id)), &Query::new());
        let call = Call::get(target, url)
            .with_body(
                Method::PATCH,
                RequestBody::json(&Update {
                    required_resource_access: access,
                }),
            )
            .after_write_of(&[id]);
        self.send(call).await
    }

    /// Returns an application's certificate credentials with their certificates (`key`),
    /// which Graph includes only for `$select=keyCredentials` on a single application.
    pub async fn application_key_credentials(
        &self,
        id: &str,
    ) -> Result<Vec<KeyCredential>, GraphError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Keys {
            #[serde(default)]
            key_credentials: Vec<KeyCredential>,
        }
        let target = GraphTarget::new("get application certificates", format!("application {id}"));
        let url = self.url(
            &format!("applications/{}", path_segment(id)),
            &Query::new().select(&["keyCredentials"]),
        );
        let keys: Keys = self
            .json(Call::get(target, url).after_write_of(&[id]))
            .await?;
        Ok(keys.key_credentials)
    }

    /// Adds a certificate to an application, keeping its other certificates.
    ///
    /// This reads the current `keyCredentials` with their certificates and writes them back
    /// with the new one, because `PATCH` replaces the whole collection. `addKey` is not used:
    /// it requires a proof signed by an existing valid certificate, which a new application
    /// does not have. A certificate that is already registered (same thumbprint) is not
    /// added twice. See
    /// <https://learn.microsoft.com/graph/api/application-addkey> and
    /// <https://learn.microsoft.com/graph/applications-how-to-add-certificate>.
    //
    // TODO-correctness: two writers that add certificates at the same moment can drop each
    // other's; Graph offers no ETag on keyCredentials to detect it.
    pub async fn add_certificate(
        &self,
        id: &str,
        key: &CertificateKey,
        display_name: &str,
    ) -> Result<KeyCredential, GraphError> {
        let mut credentials = self.application_key_credentials(id).await?;
        let new_credential = KeyCredential::for_certificate(key, display_name);
        if let Some(existing) = credentials
            .iter()
            .find(|credential| credential.key == new_credential.key)
        {
            return Ok(existing.clone());
        }
        credentials.push(new_credential.clone());

        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Update<'a> {
            key_credentials: &'a [KeyCredential],
        }
        let target = GraphTarget::new("add application certificate", format!("application {id}"));
        let url = self.url(&format!("applications/{}", path_segment(id)), &Query::new());
        let call = Call::get(target, url)
            .with_body(
                Method::PATCH,
                RequestBody::json(&Update {
                    key_credentials: &credentials,
                }),
            )
            .after_write_of(&[id]);
        self.send(call).await?;
        self.note_write(id);
        tracing::info!(object_id = %id, thumbprint = %key.thumbprint(), "added certificate to application");
        Ok(new_credential)
    }

    /// Creates a client secret. The returned `secret_text` goes only to the caller, which
    /// stores it; it is never logged.
    pub async fn add_password(
        &self,
        id: &str,
        display_name: &str,
        end: Option<DateTime<Utc>>,
    ) -> Result<AddedPassword, GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct PasswordRequest<'a> {
            display_name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_date_time: Option<DateTime<Utc>>,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct AddPassword<'a> {
            password_credential: PasswordRequest<'a>,
        }

        let target = GraphTarget::new("add application secret", format!("application {id}"));
        let url = self.url(
            &format!("applications/{}/addPassword", path_segment(id)),
            &Query::new(),
        );
        let body = AddPassword {
            password_credential: PasswordRequest {
                display_name,
                end_date_time: end,
            },
        };
        let call = Call::get(target, url)
            .with_body(Method::POST, RequestBody::json(&body))
            .after_write_of(&[id]);
        let added: AddedPassword = self.json(call).await?;
        self.note_write(id);
        tracing::info!(object_id = %id, key_id = %added.key_id, "added client secret to application");
        Ok(added)
    }

    /// Removes a client secret by its key ID.
    pub async fn remove_password(&self, id: &str, key_id: Uuid) -> Result<(), GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct RemovePassword {
            key_id: Uuid,
        }
        let target = GraphTarget::new("remove application secret", format!("application {id}"));
        let url = self.url(
            &format!("applications/{}/removePassword", path_segment(id)),
            &Query::new(),
        );
        let call = Call::get(target, url)
            .with_body(Method::POST, RequestBody::json(&RemovePassword { key_id }))
            .after_write_of(&[id]);
        self.send(call).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::providers::entra::certificate::tests::test_certificate;
    use crate::providers::entra::graph::tests::{
        client, fast_options, json_response, path_of, query_pairs,
    };
    use crate::providers::exchange::test_server::TestServer;

    fn application_json(id: &str, app_id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id,
            "appId": app_id,
            "displayName": "Sent Items Update",
            "signInAudience": "AzureADMyOrg",
            "requiredResourceAccess": [],
            "keyCredentials": [],
            "passwordCredentials": [{"keyId": "7a9f5c1e-3a0e-4f0f-9d0e-2b2c1d0e4f5a", "hint": "abc", "displayName": "old"}],
            "createdDateTime": "2025-01-01T00:00:00Z"
        })
    }

    #[tokio::test]
    async fn find_by_display_name_escapes_the_filter() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [application_json("obj-1", "app-1")]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let found = client
            .find_applications_by_display_name("O'Brien & Co #1")
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].app_id, "app-1");
        assert_eq!(
            found[0].password_credentials[0].hint.as_deref(),
            Some("abc")
        );

        let request = &server.recorded()[0];
        assert_eq!(path_of(request), "/v1.0/applications");
        let pairs = query_pairs(request);
        assert_eq!(
            pairs[0],
            (
                "$filter".to_owned(),
                "displayName eq 'O''Brien & Co #1'".to_owned()
            )
        );
        assert_eq!(pairs[1].0, "$select");
        assert!(pairs[1].1.contains("keyCredentials"));
    }

    #[tokio::test]
    async fn create_sends_the_required_permissions() {
        let server =
            TestServer::http(|_| json_response(201, application_json("obj-1", "app-1"))).await;
        let client = client(&server, fast_options());
        let created = client
            .create_application(&NewApplication::sent_items_update("Sent Items Update"))
            .await
            .unwrap();
        assert_eq!(created.id, "obj-1");

        let request = &server.recorded()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(path_of(request), "/v1.0/applications");
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["signInAudience"], "AzureADMyOrg");
        let access = body["requiredResourceAccess"].as_array().unwrap();
        let exchange = access
            .iter()
            .find(|entry| entry["resourceAppId"] == EXCHANGE_ONLINE_APP_ID)
            .expect("Exchange Online should be requested");
        assert_eq!(
            exchange["resourceAccess"][0]["id"],
            FULL_ACCESS_AS_APP_ROLE_ID.to_string()
        );
        assert_eq!(exchange["resourceAccess"][0]["type"], "Role");
        let graph = access
            .iter()
            .find(|entry| entry["resourceAppId"] == MICROSOFT_GRAPH_APP_ID)
            .expect("Microsoft Graph should be requested");
        let graph_roles: Vec<&str> = graph["resourceAccess"]
            .as_array()
            .unwrap()
            .iter()
            .map(|role| role["id"].as_str().unwrap())
            .collect();
        for role in [
            MAIL_READ_WRITE_ROLE_ID,
            USER_READ_ALL_ROLE_ID,
            GROUP_MEMBER_READ_ALL_ROLE_ID,
        ] {
            assert!(
                graph_roles.contains(&role.to_string().as_str()),
                "{role} missing"
            );
        }
    }

    #[tokio::test]
    async fn add_password_returns_secret_without_logging_it() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({
                    "keyId": "7a9f5c1e-3a0e-4f0f-9d0e-2b2c1d0e4f5a",
                    "secretText": "Qx8~generated-secret-value",
                    "hint": "Qx8",
                    "endDateTime": "2026-01-01T00:00:00Z"
                }),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let added = client.add_password("obj-1", "siuctl", None).await.unwrap();
        assert_eq!(added.secret_text.expose(), "Qx8~generated-secret-value");
        assert!(!format!("{added:?}").contains("generated-secret-value"));

        let request = &server.recorded()[0];
        assert_eq!(path_of(request), "/v1.0/applications/obj-1/addPassword");
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["passwordCredential"]["displayName"], "siuctl");
        assert!(body["passwordCredential"].get("endDateTime").is_none());
    }

    #[tokio::test]
    async fn add_certificate_keeps_existing_certificates() {
        let key = &test_certificate().key;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let server = TestServer::http(move |request| {
            seen.lock().unwrap().push(request.method.clone());
            if request.method == "GET" {
                json_response(
                    200,
                    serde_json::json!({"keyCredentials": [{
                        "keyId": "0b0b0b0b-0000-0000-0000-000000000001",
                        "type": "AsymmetricX509Cert",
                        "usage": "Verify",
                        "key": "T0xEQ0VSVA=="
                    }]}),
                )
            } else {
                json_response(204, serde_json::json!({}))
            }
        })
        .await;
        let client = client(&server, fast_options());
        let added = client
            .add_certificate("obj-1", key, "siuctl")
            .await
            .unwrap();
        assert_eq!(
            added.key.as_deref(),
            Some(key.certificate_base64().as_str())
        );

        let recorded = server.recorded();
        assert_eq!(recorded.len(), 2);
        let pairs = query_pairs(&recorded[0]);
        assert_eq!(pairs, [("$select".to_owned(), "keyCredentials".to_owned())]);
        assert_eq!(recorded[1].method, "PATCH");
        let body: serde_json::Value = serde_json::from_str(&recorded[1].body).unwrap();
        let credentials = body["keyCredentials"].as_array().unwrap();
        assert_eq!(credentials.len(), 2, "the old certificate should stay");
        assert_eq!(credentials[0]["key"], "T0xEQ0VSVA==");
        assert_eq!(credentials[1]["type"], "AsymmetricX509Cert");
        assert_eq!(credentials[1]["usage"], "Verify");
        assert_eq!(credentials[1]["key"], key.certificate_base64());
    }

    #[tokio::test]
    async fn add_certificate_skips_a_registered_certificate() {
        let key = &test_certificate().key;
        let registered = key.certificate_base64();
        let server = TestServer::http(move |_| {
            json_response(
                200,
                serde_json::json!({"keyCredentials": [{"keyId": "0b0b0b0b-0000-0000-0000-000000000001", "key": registered}]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        client
            .add_certificate("obj-1", key, "siuctl")
            .await
            .unwrap();
        assert_eq!(
            server.recorded().len(),
            1,
            "no PATCH for a registered certificate"
        );
    }
}
