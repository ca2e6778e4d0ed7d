//! The organization fixture: the YAML file that describes the world the lab starts with.
//!
//! A fixture names an Active Directory domain, its users and groups, where each user's mailbox
//! lives (on-premises Exchange, Exchange Online or nowhere), what their Sent Items already
//! hold, the Entra tenant with its pre-registered applications, and Exchange Online's EWS
//! settings. `examples/lab-org.yaml` is the default. Large organizations for benchmarks are
//! described by `bulk` entries instead of listing every user.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LabError;

/// The `apiVersion` of a fixture.
pub const API_VERSION: &str = "siu/v1";
/// The `kind` of a fixture.
pub const KIND: &str = "LabOrganization";

/// The default fixture, compiled in so that `siuctl lab up` and `siuctl demo` work from any
/// directory.
pub const DEFAULT_FIXTURE: &str = include_str!("../../examples/lab-org.yaml");

/// A whole organization.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixture {
    /// `siu/v1`.
    pub api_version: String,
    /// `LabOrganization`, which tells `siuctl validate` that this file is a lab fixture and
    /// not a spec.
    pub kind: String,
    /// DNS name of the Active Directory domain, also the mail domain (`lab.example`).
    pub domain: String,
    /// NetBIOS name of the domain (`LAB`), used in `LAB\user` logons.
    pub netbios_name: String,
    /// Further mail domains accepted for addresses; Autodiscover for any other domain
    /// redirects or fails as it does for a foreign domain.
    #[serde(default)]
    pub extra_domains: Vec<String>,
    /// The Entra tenant that the hybrid organization is connected to.
    pub tenant: TenantFixture,
    /// Users, in the order they are created.
    #[serde(default)]
    pub users: Vec<UserFixture>,
    /// Groups; members name users or other groups by `sam`.
    #[serde(default)]
    pub groups: Vec<GroupFixture>,
    /// Generated users, for large organizations.
    #[serde(default)]
    pub bulk: Vec<BulkFixture>,
    /// Exchange management scopes that role assignments may reference.
    #[serde(default)]
    pub management_scopes: Vec<ScopeFixture>,
    /// Exchange Online's organization-wide EWS settings.
    #[serde(default)]
    pub exchange_online: ExchangeOnlineFixture,
}

/// The Entra tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantFixture {
    /// Tenant (directory) ID.
    pub id: String,
    /// The `*.onmicrosoft.com` domain.
    pub initial_domain: String,
    /// Display name of the organization.
    pub display_name: String,
    /// Applications that exist before the controller runs.
    #[serde(default)]
    pub applications: Vec<ApplicationFixture>,
}

/// An application registered before the controller runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationFixture {
    /// Short name used for the secret files the lab writes (`secrets/<key>.secret`).
    pub key: String,
    /// Display name in Entra.
    pub display_name: String,
    /// Application (client) ID; generated when absent.
    #[serde(default)]
    pub app_id: Option<String>,
    /// Give the application a client secret (written to `secrets/<key>.secret`).
    #[serde(default)]
    pub client_secret: bool,
    /// Give the application a certificate (written to `secrets/<key>.pem`).
    #[serde(default)]
    pub certificate: bool,
    /// Microsoft Graph application permissions granted with admin consent, by value
    /// (`Application.ReadWrite.All`).
    #[serde(default)]
    pub graph_roles: Vec<String>,
    /// Office 365 Exchange Online application permissions granted with admin consent
    /// (`full_access_as_app`).
    #[serde(default)]
    pub exchange_roles: Vec<String>,
}

/// Where a user's mailbox lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum MailboxLocation {
    /// A mailbox on the on-premises Exchange server.
    #[default]
    OnPremises,
    /// A mailbox in Exchange Online (a remote mailbox on-premises).
    Cloud,
    /// No mailbox: a user that only exists in the directory.
    None,
}

/// One user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserFixture {
    /// sAMAccountName.
    pub sam: String,
    /// Display name; the common name of the DN too.
    pub name: String,
    /// Job title (`title`), shown in the signature that the transport simulator adds.
    #[serde(default)]
    pub title: Option<String>,
    /// userPrincipalName; default `sam@domain`.
    #[serde(default)]
    pub upn: Option<String>,
    /// Primary SMTP address; default the UPN when the user has a mailbox.
    #[serde(default)]
    pub mail: Option<String>,
    /// Secondary SMTP addresses (`smtp:` proxy addresses).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Where the mailbox lives.
    #[serde(default)]
    pub mailbox: MailboxLocation,
    /// `false` sets ACCOUNTDISABLE in userAccountControl.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Organizational unit below the domain, `OU=Staff`; default `CN=Users`.
    #[serde(default)]
    pub container: Option<String>,
    /// Write the password to `secrets/<sam>.password` so that specs can reference it.
    #[serde(default)]
    pub publish_password: bool,
    /// Display name of the mailbox's Sent Items folder, to show that clients must use the
    /// well-known folder ID and not a localized name.
    #[serde(default)]
    pub sent_items_name: Option<String>,
    /// Number of ordinary messages already in Sent Items.
    #[serde(default)]
    pub sent_items: u32,
    /// Member of Domain Admins.
    #[serde(default)]
    pub domain_admin: bool,
}

/// One group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupFixture {
    /// sAMAccountName, also the common name.
    pub sam: String,
    /// Security or distribution group.
    #[serde(default)]
    pub kind: GroupKind,
    /// Primary SMTP address of a mail-enabled group.
    #[serde(default)]
    pub mail: Option<String>,
    /// Members by `sam` (users or groups).
    #[serde(default)]
    pub members: Vec<String>,
    /// Organizational unit below the domain; default `OU=Groups`.
    #[serde(default)]
    pub container: Option<String>,
}

/// The kind of a group, as `groupType` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum GroupKind {
    /// A security group (can be mail-enabled).
    #[default]
    Security,
    /// A distribution group: mail only, no security identity for permissions.
    Distribution,
}

/// Generated users, `prefix0001` up to `prefix<count>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkFixture {
    /// sAMAccountName prefix.
    pub prefix: String,
    /// Number of users.
    pub count: u32,
    /// Where their mailboxes live; `alternate` puts every second one in the cloud.
    #[serde(default)]
    pub mailbox: BulkMailbox,
    /// Organizational unit below the domain; default `OU=Staff`.
    #[serde(default)]
    pub container: Option<String>,
    /// Groups (by `sam`) that all of them join.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Display name of each user before its number; default `Staff Member`. Give every bulk
    /// entry its own, because the display name is also the user's common name in its DN.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// Mailbox placement for generated users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum BulkMailbox {
    /// All on-premises.
    #[default]
    OnPremises,
    /// All in Exchange Online.
    Cloud,
    /// Every second user in Exchange Online.
    Alternate,
}

/// An Exchange management scope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeFixture {
    /// Scope name.
    pub name: String,
    /// Recipients in scope: direct members of this group (`sam`), as a
    /// `MemberOfGroup -eq '<DN>'` recipient filter selects them.
    pub member_of_group: String,
}

/// Exchange Online's organization-wide EWS settings (`Get-OrganizationConfig`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExchangeOnlineFixture {
    /// `EwsEnabled`: `true`, `false`, or absent for "not configured", which Exchange Online
    /// treats as blocked since 1 October 2026.
    #[serde(default)]
    pub ews_enabled: Option<bool>,
    /// `EwsAllowedAppIDs`: when EWS is enabled and the list is not empty, only these
    /// applications may call EWS.
    #[serde(default)]
    pub ews_allowed_app_ids: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Computes the size of share `index` when `total` is split into `parts` shares that differ by
/// at most one.
fn share(total: u32, parts: u32, index: u32) -> u32 {
    total / parts + u32::from(index < total % parts)
}

impl Fixture {
    /// Parses a fixture from YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, LabError> {
        let fixture: Fixture = serde_saphyr::from_str(text).map_err(|e| LabError::Fixture {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        fixture.check(origin)?;
        Ok(fixture)
    }

    /// Reads and parses a fixture file.
    pub fn load(path: &Path) -> Result<Self, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| LabError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The default organization.
    pub fn default_org() -> Self {
        Self::parse(DEFAULT_FIXTURE, "examples/lab-org.yaml")
            .expect("the compiled-in default fixture must be valid")
    }

    /// Builds a large organization for benchmarks. It has the default organization's named
    /// users, groups and applications, plus `users` generated users and `groups` generated
    /// groups.
    ///
    /// One of the generated groups, `Largest-Group` (`largest@<domain>`), has `largest_group`
    /// transitive user members: it nests ten part groups (fewer when `groups` is small) that
    /// hold the users, so that listing its members walks nested groups as Graph and AD do.
    /// The other generated users are spread evenly over the other generated groups. Every
    /// second generated user has a cloud mailbox.
    pub fn synthetic(users: u32, groups: u32, largest_group: u32) -> Self {
        let mut fixture = Self::default_org();
        fixture.bulk.clear();
        let largest_group = largest_group.min(users);
        let groups = groups.max(1);
        let domain = fixture.domain.clone();
        let generated_group =
            |sam: String, members: Vec<String>, mail: Option<String>| GroupFixture {
                sam,
                kind: GroupKind::Security,
                mail,
                members,
                container: None,
            };
        let bulk =
            |prefix: String, count: u32, group: Option<String>, display_name: String| BulkFixture {
                prefix,
                count,
                mailbox: BulkMailbox::Alternate,
                container: None,
                groups: group.into_iter().collect(),
                display_name: Some(display_name),
            };

        // 1. The largest group and its parts.
        let parts = (groups - 1).min(10);
        let part_names: Vec<String> = (1..=parts)
            .map(|p| format!("Largest-Group-Part-{p:02}"))
            .collect();
        fixture.groups.push(generated_group(
            "Largest-Group".into(),
            part_names.clone(),
            Some(format!("largest@{domain}")),
        ));
        if parts == 0 {
            fixture.bulk.push(bulk(
                "lg-".into(),
                largest_group,
                Some("Largest-Group".into()),
                "Largest Group Member".into(),
            ));
        }
        for (index, part) in part_names.iter().enumerate() {
            let count = share(largest_group, parts, index as u32);
            fixture
                .groups
                .push(generated_group(part.clone(), Vec::new(), None));
            fixture.bulk.push(bulk(
                format!("lg{:02}-", index + 1),
                count,
                Some(part.clone()),
                format!("Largest Part {} Member", index + 1),
            ));
        }

        // 2. The other groups, each with an even share of the other users.
        let other_groups = groups - 1 - parts;
        let other_users = users - largest_group;
        if other_groups == 0 {
            fixture.bulk.push(bulk(
                "user-".into(),
                other_users,
                None,
                "Generated User".into(),
            ));
        }
        for index in 0..other_groups {
            let sam = format!("Group-{:05}", index + 1);
            fixture
                .groups
                .push(generated_group(sam.clone(), Vec::new(), None));
            fixture.bulk.push(bulk(
                format!("g{:05}-", index + 1),
                share(other_users, other_groups, index),
                Some(sam),
                format!("Group {} Member", index + 1),
            ));
        }
        fixture.bulk.retain(|b| b.count > 0);
        fixture
    }

    /// Checks the header and the references between entries: every group member and bulk
    /// group must exist.
    fn check(&self, origin: &str) -> Result<(), LabError> {
        if self.api_version != API_VERSION || self.kind != KIND {
            return Err(LabError::Fixture {
                origin: origin.to_string(),
                message: format!(
                    "expected `apiVersion: {API_VERSION}` and `kind: {KIND}`, found `{}` and `{}`",
                    self.api_version, self.kind
                ),
            });
        }
        let known = |sam: &str| {
            self.users.iter().any(|u| u.sam.eq_ignore_ascii_case(sam))
                || self.groups.iter().any(|g| g.sam.eq_ignore_ascii_case(sam))
        };
        let fail = |message: String| LabError::Fixture {
            origin: origin.to_string(),
            message,
        };
        for group in &self.groups {
            for member in &group.members {
                if !known(member) {
                    return Err(fail(format!(
                        "group `{}` lists member `{member}`, which is neither a user nor a group",
                        group.sam
                    )));
                }
            }
        }
        for bulk in &self.bulk {
            for group in &bulk.groups {
                if !self
                    .groups
                    .iter()
                    .any(|g| g.sam.eq_ignore_ascii_case(group))
                {
                    return Err(fail(format!(
                        "bulk users `{}` join group `{group}`, which is not defined",
                        bulk.prefix
                    )));
                }
            }
        }
        for scope in &self.management_scopes {
            if !self
                .groups
                .iter()
                .any(|g| g.sam.eq_ignore_ascii_case(&scope.member_of_group))
            {
                return Err(fail(format!(
                    "management scope `{}` filters on group `{}`, which is not defined",
                    scope.name, scope.member_of_group
                )));
            }
        }
        Ok(())
    }

    /// Every DNS name the lab answers for: the domains and their `autodiscover.` hosts.
    pub fn host_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for domain in std::iter::once(&self.domain).chain(&self.extra_domains) {
            names.push(domain.clone());
            names.push(format!("autodiscover.{domain}"));
            names.push(format!("mail.{domain}"));
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fixture_parses() {
        let fixture = Fixture::default_org();
        assert_eq!(fixture.domain, "lab.example");
        assert!(
            fixture
                .users
                .iter()
                .any(|u| u.mailbox == MailboxLocation::Cloud)
        );
        assert!(
            fixture
                .users
                .iter()
                .any(|u| u.mailbox == MailboxLocation::None)
        );
        assert!(fixture.users.iter().any(|u| !u.enabled));
    }

    #[test]
    fn synthetic_fixture_has_the_requested_sizes() {
        let fixture = Fixture::synthetic(1_000, 50, 400);
        let generated: u32 = fixture.bulk.iter().map(|b| b.count).sum();
        assert_eq!(generated, 1_000);
        let default_groups = Fixture::default_org().groups.len();
        assert_eq!(fixture.groups.len(), default_groups + 50);
        let largest: u32 = fixture
            .bulk
            .iter()
            .filter(|b| b.prefix.starts_with("lg"))
            .map(|b| b.count)
            .sum();
        assert_eq!(largest, 400);
    }

    #[test]
    fn shares_add_up_to_the_total() {
        let total: u32 = (0..7).map(|i| share(100, 7, i)).sum();
        assert_eq!(total, 100);
        assert_eq!(share(100, 7, 0), 15);
        assert_eq!(share(100, 7, 6), 14);
    }

    #[test]
    fn unknown_member_is_rejected() {
        let text = "apiVersion: siu/v1\nkind: LabOrganization\ndomain: x.example\nnetbiosName: X\ntenant: {id: 00000000-0000-0000-0000-000000000001, initialDomain: x.onmicrosoft.com, displayName: X}\ngroups:\n  - sam: g\n    members: [nobody]\n";
        let err = Fixture::parse(text, "test").unwrap_err().to_string();
        assert!(err.contains("nobody"), "{err}");
    }
}
