//! The organization (tenant) object: `GET /organization`.
//!
//! See <https://learn.microsoft.com/graph/api/organization-list>.

use axum::Extension;
use axum::extract::{OriginalUri, State};
use serde_json::{Value, json};

use super::odata::QueryOptions;
use super::{Caller, GraphResult, Shared, collection};

/// Permissions that let an application read the organization.
const ORGANIZATION_READ: &[&str] = &[
    "Organization.Read.All",
    "Organization.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// `GET /organization`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    uri: OriginalUri,
) -> GraphResult {
    let options = QueryOptions::parse(uri.query())?;
    caller.require(ORGANIZATION_READ)?;
    let lab = &shared.lab;
    let world = lab.read();
    let directory = &world.directory;
    let domain = |name: &str, is_default: bool, is_initial: bool| {
        json!({
            "capabilities": "Email, OfficeCommunicationsOnline",
            "isDefault": is_default,
            "isInitial": is_initial,
            "name": name,
            "type": "Managed",
        })
    };
    let mut domains = vec![
        domain(&directory.domain, true, false),
        domain(&world.tenant.initial_domain, false, true),
    ];
    domains.extend(
        directory
            .extra_domains
            .iter()
            .map(|d| domain(d, false, false)),
    );
    let organization: Value = json!({
        "id": world.tenant.id,
        "displayName": world.tenant.display_name,
        "onPremisesSyncEnabled": true,
        "tenantType": "AAD",
        "verifiedDomains": domains,
    });
    let items = std::iter::once(organization)
        .filter(|item| options.matches(item))
        .map(|item| options.project(item))
        .collect();
    Ok(collection(lab, "organization", items, None))
}
