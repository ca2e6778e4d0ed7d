//! The application permissions the Entra application needs, with Microsoft's fixed IDs.
//!
//! The IDs are the same in every tenant: each resource's application ID and each app
//! role's ID are published by Microsoft and listed in the resource's service principal.
//! See <https://learn.microsoft.com/en-us/graph/permissions-reference> for Microsoft Graph.

/// An application permission (app role) of a resource application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredRole {
    /// The resource's display name.
    pub resource: &'static str,
    /// The resource's application ID.
    pub resource_app_id: &'static str,
    /// The role's value, as in tokens' `roles` claim.
    pub value: &'static str,
    /// The role's ID.
    pub id: &'static str,
}

/// Office 365 Exchange Online's application ID.
pub const EXCHANGE_ONLINE_APP_ID: &str = "00000002-0000-0ff1-ce00-000000000000";

/// Microsoft Graph's application ID.
pub const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// Every app role the application needs, whatever the spec's `mailAccess`, because `auto` moves
/// between EWS and Graph without another apply: `full_access_as_app` for EWS, Mail.ReadWrite
/// for Graph mail, and User.Read.All with GroupMember.Read.All to resolve cloud users and
/// groups of the scope.
pub const REQUIRED_ROLES: [RequiredRole; 4] = [
    RequiredRole {
        resource: "Office 365 Exchange Online",
        resource_app_id: EXCHANGE_ONLINE_APP_ID,
        value: "full_access_as_app",
        id: "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
    },
    RequiredRole {
        resource: "Microsoft Graph",
        resource_app_id: MICROSOFT_GRAPH_APP_ID,
        value: "Mail.ReadWrite",
        id: "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
    },
    RequiredRole {
        resource: "Microsoft Graph",
        resource_app_id: MICROSOFT_GRAPH_APP_ID,
        value: "User.Read.All",
        id: "df021288-bdef-4463-88db-98f22de89214",
    },
    RequiredRole {
        resource: "Microsoft Graph",
        resource_app_id: MICROSOFT_GRAPH_APP_ID,
        value: "GroupMember.Read.All",
        id: "98830695-27a2-44f7-8c18-0c3ebc9698f6",
    },
];

impl RequiredRole {
    /// Tells whether the pair of resource application ID and role ID names this role.
    pub fn matches(&self, resource_app_id: &str, role_id: &str) -> bool {
        self.resource_app_id.eq_ignore_ascii_case(resource_app_id)
            && self.id.eq_ignore_ascii_case(role_id)
    }

    /// Tells whether the role belongs to Office 365 Exchange Online, whose tokens carry it.
    /// Microsoft Graph tokens carry the others.
    pub fn is_exchange_online(&self) -> bool {
        self.resource_app_id == EXCHANGE_ONLINE_APP_ID
    }
}
