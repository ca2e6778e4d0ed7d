//! The Entra ID tenant as the lab models it: applications, service principals, app role
//! assignments and their credentials.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Application (client) ID of Microsoft Graph.
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Application (client) ID of Office 365 Exchange Online.
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";
/// The `full_access_as_app` app role of Office 365 Exchange Online.
pub const FULL_ACCESS_AS_APP: &str = "dc890d15-9560-4a4c-9b7f-a736ec74ec40";

/// Application permissions of Microsoft Graph that the lab knows, by value and app role ID.
///
/// See <https://learn.microsoft.com/graph/permissions-reference>.
pub const GRAPH_ROLES: &[(&str, &str)] = &[
    (
        "Application.ReadWrite.All",
        "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    ),
    (
        "Application.Read.All",
        "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    ),
    (
        "Application.ReadWrite.OwnedBy",
        "18a4783c-866b-4cc7-a460-3d5e5662c884",
    ),
    (
        "AppRoleAssignment.ReadWrite.All",
        "06b708a9-e830-4db3-a914-8e69da51d44f",
    ),
    ("User.Read.All", "df021288-bdef-4463-88db-98f22de89214"),
    (
        "GroupMember.Read.All",
        "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    ),
    ("Mail.ReadWrite", "e2a3a72e-5f79-4c64-b1b1-878b674786c9"),
    (
        "Organization.Read.All",
        "498476ce-e0fe-48b0-b801-37ba7e2685c6",
    ),
    ("Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61"),
];

/// Application permissions of Office 365 Exchange Online that the lab knows.
pub const EXCHANGE_ROLES: &[(&str, &str)] = &[
    ("full_access_as_app", FULL_ACCESS_AS_APP),
    (
        "Exchange.ManageAsApp",
        "dc50a0fb-09a3-484d-be87-e023b12c6440",
    ),
];

/// An app role that a resource service principal offers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRole {
    /// Role ID.
    pub id: Uuid,
    /// The value that appears in the `roles` claim of a token.
    pub value: String,
    /// Display name.
    pub display_name: String,
}

/// A certificate credential of an application (`keyCredential`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyCredential {
    /// keyId.
    pub key_id: Uuid,
    /// displayName.
    pub display_name: Option<String>,
    /// The certificate in DER.
    #[serde(with = "hex_bytes")]
    pub certificate: Vec<u8>,
    /// SHA-1 of the certificate, the thumbprint that the `x5t` header carries.
    #[serde(with = "hex_bytes")]
    pub sha1: Vec<u8>,
    /// SHA-256 of the certificate, the `x5t#S256` header.
    #[serde(with = "hex_bytes")]
    pub sha256: Vec<u8>,
    /// startDateTime.
    pub start: DateTime<Utc>,
    /// endDateTime.
    pub end: DateTime<Utc>,
}

/// A client secret of an application (`passwordCredential`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordCredential {
    /// keyId.
    pub key_id: Uuid,
    /// displayName.
    pub display_name: Option<String>,
    /// The first three characters, as Graph's `hint` shows them.
    pub hint: String,
    /// The secret; Graph returns it once, in the `addPassword` response.
    pub secret: String,
    /// startDateTime.
    pub start: DateTime<Utc>,
    /// endDateTime.
    pub end: DateTime<Utc>,
}

/// An application registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    /// Object ID.
    pub id: Uuid,
    /// Application (client) ID.
    pub app_id: Uuid,
    /// displayName.
    pub display_name: String,
    /// signInAudience.
    pub sign_in_audience: String,
    /// requiredResourceAccess as Graph stores it.
    pub required_resource_access: serde_json::Value,
    /// Certificates.
    pub key_credentials: Vec<KeyCredential>,
    /// Client secrets.
    pub password_credentials: Vec<PasswordCredential>,
    /// createdDateTime; also the start of the replication delay.
    pub created: DateTime<Utc>,
}

/// A service principal: the application's identity in this tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServicePrincipal {
    /// Object ID.
    pub id: Uuid,
    /// Application (client) ID.
    pub app_id: Uuid,
    /// displayName.
    pub display_name: String,
    /// App roles this principal offers as a resource.
    pub app_roles: Vec<AppRole>,
    /// When it was created; also the start of the replication delay.
    pub created: DateTime<Utc>,
}

/// An app role granted to a service principal with admin consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppRoleAssignment {
    /// Assignment ID (Graph uses an opaque string).
    pub id: String,
    /// The client service principal.
    pub principal_id: Uuid,
    /// The resource service principal.
    pub resource_id: Uuid,
    /// The role.
    pub app_role_id: Uuid,
    /// createdDateTime.
    pub created: DateTime<Utc>,
}

/// The tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tenant {
    /// Tenant ID.
    pub id: Uuid,
    /// The `*.onmicrosoft.com` domain.
    pub initial_domain: String,
    /// Organization display name.
    pub display_name: String,
    /// Application registrations.
    pub applications: Vec<Application>,
    /// Service principals, the first-party resources included.
    pub service_principals: Vec<ServicePrincipal>,
    /// App role assignments.
    pub app_role_assignments: Vec<AppRoleAssignment>,
}

impl Tenant {
    /// A tenant with the Microsoft Graph and Exchange Online resource principals.
    pub fn new(id: Uuid, initial_domain: String, display_name: String) -> Self {
        let resource = |app_id: &str, name: &str, roles: &[(&str, &str)]| ServicePrincipal {
            id: Uuid::new_v4(),
            app_id: app_id.parse().expect("well-known app IDs are GUIDs"),
            display_name: name.to_string(),
            app_roles: roles
                .iter()
                .map(|(value, id)| AppRole {
                    id: id.parse().expect("well-known role IDs are GUIDs"),
                    value: value.to_string(),
                    display_name: value.to_string(),
                })
                .collect(),
            created: DateTime::<Utc>::UNIX_EPOCH,
        };
        Self {
            id,
            initial_domain,
            display_name,
            applications: Vec::new(),
            service_principals: vec![
                resource(GRAPH_APP_ID, "Microsoft Graph", GRAPH_ROLES),
                resource(
                    EXCHANGE_ONLINE_APP_ID,
                    "Office 365 Exchange Online",
                    EXCHANGE_ROLES,
                ),
            ],
            app_role_assignments: Vec::new(),
        }
    }

    /// The application with this client ID.
    pub fn application_by_app_id(&self, app_id: Uuid) -> Option<&Application> {
        self.applications.iter().find(|a| a.app_id == app_id)
    }

    /// The service principal with this client ID.
    pub fn principal_by_app_id(&self, app_id: Uuid) -> Option<&ServicePrincipal> {
        self.service_principals.iter().find(|p| p.app_id == app_id)
    }

    /// The values of the roles granted to `client` on the resource with `resource_app_id`:
    /// what a token's `roles` claim carries.
    pub fn granted_roles(&self, client: Uuid, resource_app_id: &str) -> Vec<String> {
        let Some(resource) = resource_app_id
            .parse()
            .ok()
            .and_then(|id| self.principal_by_app_id(id))
        else {
            return Vec::new();
        };
        let Some(principal) = self.principal_by_app_id(client) else {
            return Vec::new();
        };
        self.app_role_assignments
            .iter()
            .filter(|a| a.principal_id == principal.id && a.resource_id == resource.id)
            .filter_map(|a| resource.app_roles.iter().find(|r| r.id == a.app_role_id))
            .map(|r| r.value.clone())
            .collect()
    }
}

/// Serializes bytes as lowercase hex so that the state file stays readable.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("invalid hex in the lab state"))
            })
            .collect()
    }
}
