//! The spec's scope, resolved: whose Sent Items the loop updates.
//!
//! `all` updates every mailbox. `only` updates the listed users and the members of the listed
//! groups, and `allExcept` every mailbox but those. Groups count their members at any depth.
//! Each reconcile resolves the groups again, through every directory the loop has: Active
//! Directory always, and Microsoft Graph for cloud-only groups when the configuration is
//! hybrid. A group that no directory finds, or a failed lookup, makes the scope unresolved.
//! Messages that need a scope decision then wait, instead of being updated or skipped
//! wrongly, and [`ScopeResolver`] tries again after [`RESOLVE_RETRY`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use siu_specs::desired::{GroupRef, Scope, ScopeMode};
use tokio::time::Instant;

use super::recipients::{LookupError, Mailbox};

/// The time after a failed resolution before the next message tries again.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(30);

/// A user member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's distinguished name, lowercase, when the directory has one.
    pub dn: Option<String>,
    /// The member's addresses, lowercase: UPN and SMTP addresses.
    pub addresses: Vec<String>,
}

/// A directory that expands groups.
#[async_trait]
pub trait GroupDirectory: Send + Sync {
    /// Names the directory in messages, such as `Active Directory`.
    fn name(&self) -> &'static str;

    /// Returns the transitive user members of a group, or `None` when no group matches.
    async fn transitive_members(
        &self,
        group: &GroupRef,
    ) -> Result<Option<Vec<Member>>, LookupError>;
}

/// Why the scope could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// No directory has the group.
    #[error(
        "scope group {group} was not found in {directories}; check the name in the spec's scope.groups"
    )]
    GroupNotFound {
        /// The group as the spec names it.
        group: String,
        /// The directories searched.
        directories: String,
    },
    /// A directory lookup failed.
    #[error("failed to expand scope group {group}")]
    Lookup {
        /// The group as the spec names it.
        group: String,
        /// The failure.
        #[source]
        source: LookupError,
    },
}

/// The scope with its groups expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedScope {
    mode: ScopeMode,
    users: Vec<String>,
    groups: Vec<ExpandedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ExpandedGroup {
    name: String,
    dns: HashSet<String>,
    addresses: HashSet<String>,
}

/// The scope's verdict on a mailbox, with the reason that is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The mailbox is in scope.
    In(String),
    /// The mailbox is out of scope.
    Out(String),
}

impl ResolvedScope {
    /// Returns the scope that updates every mailbox.
    pub fn all() -> Self {
        Self {
            mode: ScopeMode::All,
            users: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Expands the scope's groups through `directories`.
    pub async fn resolve(
        scope: &Scope,
        directories: &[&dyn GroupDirectory],
    ) -> Result<Self, ScopeError> {
        let mut groups = Vec::with_capacity(scope.groups.len());
        for group in &scope.groups {
            let name = group_name(group);
            let mut expanded = ExpandedGroup {
                name: name.clone(),
                dns: HashSet::new(),
                addresses: HashSet::new(),
            };
            let mut found = false;
            for directory in directories {
                let members = directory
                    .transitive_members(group)
                    .await
                    .map_err(|source| ScopeError::Lookup {
                        group: name.clone(),
                        source,
                    })?;
                let Some(members) = members else { continue };
                found = true;
                for member in members {
                    expanded.dns.extend(member.dn);
                    expanded.addresses.extend(member.addresses);
                }
            }
            if !found {
                return Err(ScopeError::GroupNotFound {
                    group: name,
                    directories: directories
                        .iter()
                        .map(|directory| directory.name())
                        .collect::<Vec<_>>()
                        .join(" or "),
                });
            }
            tracing::debug!(group = %expanded.name, members = expanded.dns.len().max(expanded.addresses.len()), "expanded a scope group");
            groups.push(expanded);
        }
        Ok(Self {
            mode: scope.mode,
            users: scope.users.clone(),
            groups,
        })
    }

    /// Decides whether the loop updates `mailbox`.
    pub fn decide(&self, mailbox: &Mailbox) -> Decision {
        if self.mode == ScopeMode::All {
            return Decision::In("scope is all mailboxes".to_owned());
        }
        let listed = self.match_reason(mailbox);
        match (self.mode, listed) {
            (ScopeMode::Only, Some(reason)) => Decision::In(reason),
            (ScopeMode::Only, None) => {
                Decision::Out("not listed in scope.users or scope.groups".to_owned())
            }
            (ScopeMode::AllExcept, Some(reason)) => Decision::Out(format!("excluded: {reason}")),
            (ScopeMode::AllExcept, None) => {
                Decision::In("not excluded by scope.users or scope.groups".to_owned())
            }
            (ScopeMode::All, _) => unreachable!("handled above"),
        }
    }

    fn match_reason(&self, mailbox: &Mailbox) -> Option<String> {
        let has_address = |address: &String| mailbox.addresses.iter().any(|a| a == address);
        if let Some(user) = self.users.iter().find(|user| has_address(user)) {
            return Some(format!("listed in scope.users as {user}"));
        }
        let dn = mailbox.dn.as_deref().map(str::to_ascii_lowercase);
        self.groups
            .iter()
            .find(|group| {
                dn.as_ref().is_some_and(|dn| group.dns.contains(dn))
                    || mailbox
                        .addresses
                        .iter()
                        .any(|address| group.addresses.contains(address))
            })
            .map(|group| format!("member of scope group {}", group.name))
    }
}

impl fmt::Display for ResolvedScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            ScopeMode::All => "all",
            ScopeMode::Only => "only",
            ScopeMode::AllExcept => "allExcept",
        };
        write!(
            f,
            "{mode} ({} users, {} groups)",
            self.users.len(),
            self.groups.len()
        )
    }
}

/// The scope of one configuration, resolved on first use and again after a failure.
pub struct ScopeResolver {
    scope: Scope,
    directories: Vec<Arc<dyn GroupDirectory>>,
    state: tokio::sync::Mutex<Resolution>,
}

enum Resolution {
    Pending,
    Resolved(Arc<ResolvedScope>),
    Failed { problem: String, at: Instant },
}

impl fmt::Debug for ScopeResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeResolver")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ScopeResolver {
    /// Resolves `scope` through `directories` when a message first needs it.
    pub fn new(scope: Scope, directories: Vec<Arc<dyn GroupDirectory>>) -> Self {
        Self {
            scope,
            directories,
            state: tokio::sync::Mutex::new(Resolution::Pending),
        }
    }

    /// Returns the resolved scope, resolving it now unless the last failure is more recent
    /// than [`RESOLVE_RETRY`], in which case that failure's description is returned.
    pub async fn get(&self) -> Result<Arc<ResolvedScope>, String> {
        let mut state = self.state.lock().await;
        match &*state {
            Resolution::Resolved(scope) => return Ok(scope.clone()),
            Resolution::Failed { problem, at } if at.elapsed() < RESOLVE_RETRY => {
                return Err(problem.clone());
            }
            _ => {}
        }
        let resolved = if self.scope.mode == ScopeMode::All {
            Ok(ResolvedScope::all())
        } else {
            let directories: Vec<&dyn GroupDirectory> =
                self.directories.iter().map(Arc::as_ref).collect();
            ResolvedScope::resolve(&self.scope, &directories).await
        };
        match resolved {
            Ok(scope) => {
                tracing::info!(%scope, "resolved the scope");
                let scope = Arc::new(scope);
                *state = Resolution::Resolved(scope.clone());
                Ok(scope)
            }
            Err(error) => {
                let problem = super::error_chain(&error);
                tracing::error!(error = problem, retry_in = ?RESOLVE_RETRY, "failed to resolve the scope; messages that need it wait");
                *state = Resolution::Failed {
                    problem: problem.clone(),
                    at: Instant::now(),
                };
                Err(problem)
            }
        }
    }
}

fn group_name(group: &GroupRef) -> String {
    match group {
        GroupRef::Address(value) | GroupRef::Dn(value) | GroupRef::Name(value) => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::update::recipients::Location;

    struct FakeGroups(HashMap<String, Vec<Member>>);

    #[async_trait]
    impl GroupDirectory for FakeGroups {
        fn name(&self) -> &'static str {
            "the test directory"
        }

        async fn transitive_members(
            &self,
            group: &GroupRef,
        ) -> Result<Option<Vec<Member>>, LookupError> {
            Ok(self.0.get(&group_name(group)).cloned())
        }
    }

    fn mailbox(address: &str) -> Mailbox {
        Mailbox {
            address: address.to_owned(),
            location: Location::OnPremises,
            dn: Some(format!("CN={address},DC=lab,DC=example")),
            addresses: vec![address.to_owned()],
        }
    }

    fn pilot() -> FakeGroups {
        FakeGroups(HashMap::from([(
            "SIU-Pilot".to_owned(),
            vec![Member {
                dn: Some("cn=bob@lab.example,dc=lab,dc=example".to_owned()),
                addresses: vec![],
            }],
        )]))
    }

    fn scope(mode: ScopeMode) -> Scope {
        Scope {
            mode,
            users: vec!["alice@lab.example".to_owned()],
            groups: vec![GroupRef::Name("SIU-Pilot".to_owned())],
        }
    }

    #[tokio::test]
    async fn only_admits_listed_users_and_group_members() {
        let groups = pilot();
        let resolved = ResolvedScope::resolve(&scope(ScopeMode::Only), &[&groups])
            .await
            .expect("resolves");

        assert_eq!(
            resolved.decide(&mailbox("alice@lab.example")),
            Decision::In("listed in scope.users as alice@lab.example".to_owned())
        );
        assert_eq!(
            resolved.decide(&mailbox("bob@lab.example")),
            Decision::In("member of scope group SIU-Pilot".to_owned())
        );
        assert!(matches!(
            resolved.decide(&mailbox("erin@lab.example")),
            Decision::Out(_)
        ));
    }

    #[tokio::test]
    async fn all_except_turns_the_verdicts_around() {
        let groups = pilot();
        let resolved = ResolvedScope::resolve(&scope(ScopeMode::AllExcept), &[&groups])
            .await
            .expect("resolves");

        assert_eq!(
            resolved.decide(&mailbox("bob@lab.example")),
            Decision::Out("excluded: member of scope group SIU-Pilot".to_owned())
        );
        assert!(matches!(
            resolved.decide(&mailbox("erin@lab.example")),
            Decision::In(_)
        ));
    }

    #[tokio::test]
    async fn missing_group_leaves_the_scope_unresolved() {
        let groups = FakeGroups(HashMap::new());

        let error = ResolvedScope::resolve(&scope(ScopeMode::Only), &[&groups])
            .await
            .expect_err("the group is missing");

        assert_eq!(
            error.to_string(),
            "scope group SIU-Pilot was not found in the test directory; check the name in the spec's scope.groups"
        );
    }

    #[test]
    fn all_admits_everyone() {
        assert!(matches!(
            ResolvedScope::all().decide(&mailbox("anyone@lab.example")),
            Decision::In(_)
        ));
    }
}
