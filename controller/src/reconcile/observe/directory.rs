//! Directory reads: the service account, its password, and the scope's users and groups.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;
use siu_specs::desired::{AccountProvisioning, GroupRef, ScopeMode};

use super::bounded;
use crate::providers::directory::{
    self, AdDiagnostic, DirectoryClient, DirectoryError, DomainUsersMembership, MemberKind,
    UserMatch,
};
use crate::reconcile::context::Context;
use crate::reconcile::observed::{
    AccountState, PasswordState, Provider, Read, ReadFailure, ScopeEntry, ScopeState,
};
use crate::reconcile::secrets;
use crate::reconcile::settings::group_name;

/// How many in-scope mail addresses the scope read keeps for checks after apply.
const SAMPLES: usize = 10;

type Connection = Read<Arc<DirectoryClient>>;

fn failure(target: &str, error: &DirectoryError) -> ReadFailure {
    ReadFailure::new(Provider::Directory, target, error.to_string())
}

/// Reads the service account: whether it exists, its state and whether its password works.
pub(super) async fn account(ctx: &Context, connection: &Connection) -> Read<Option<AccountState>> {
    let upn = ctx.desired.account.upn.as_str();
    let client = connection.as_ref().map_err(Clone::clone)?;
    bounded(ctx, Provider::Directory, upn, async {
        let Some(user) = client
            .find_user_by_upn(upn)
            .await
            .map_err(|error| failure(upn, &error))?
        else {
            return Ok(None);
        };

        let (domain_users, password) =
            tokio::join!(client.domain_users_membership(&user), password_state(ctx),);
        let domain_users = domain_users
            .map(|membership| membership != DomainUsersMembership::NotMember)
            .map_err(|error| failure(upn, &error));
        Ok(Some(AccountState {
            dn: user.dn.clone(),
            upn: user.user_principal_name.clone(),
            found_by_address: user.matched_by == UserMatch::SmtpAddress,
            enabled: user.status.enabled,
            locked_out: user.status.locked_out,
            domain_users,
            password,
        }))
    })
    .await
}

/// Checks whether the spec's password of the service account signs in, and for a created
/// account whether a password staged by an interrupted apply does.
//
// NOTE: every check of a wrong password counts towards AD's lockout threshold, so an
// account whose password file is wrong can end up locked out after repeated plans.
pub async fn password_state(ctx: &Context) -> PasswordState {
    let upn = ctx.desired.account.upn.as_str();
    let state = match ctx.desired.account.password().resolve() {
        Err(error) => PasswordState::Unreadable {
            reason: error.to_string(),
        },
        Ok(password) => match ctx.bind_as_account(&password).await {
            Ok(()) => return PasswordState::Usable,
            Err(DirectoryError::Bind { status, .. }) => PasswordState::Rejected {
                reason: status.to_string(),
                account_disabled: status.diagnostic == Some(AdDiagnostic::AccountDisabled),
            },
            Err(error) => return PasswordState::Unknown(failure(upn, &error)),
        },
    };

    // A created account may have a staged password that the interrupted apply had
    // already set in the directory.
    if let AccountProvisioning::Create { password_file, .. } = &ctx.desired.account.provisioning
        && !matches!(
            state,
            PasswordState::Rejected {
                account_disabled: true,
                ..
            }
        )
    {
        let staged = siu_specs::SecretRef::FromFile(secrets::staged_path(password_file));
        if let Ok(password) = staged.resolve()
            && ctx.bind_as_account(&password).await.is_ok()
        {
            return PasswordState::Staged;
        }
    }
    state
}

/// Resolves the scope's users and groups, counts the mailboxes it selects and keeps a few
/// of their addresses. Groups are expanded together over the shared connection.
pub(super) async fn scope(ctx: &Context, connection: &Connection) -> Read<ScopeState> {
    let scope = &ctx.desired.scope;
    let client = connection.as_ref().map_err(Clone::clone)?;
    bounded(ctx, Provider::Directory, "the scope", async {
        // 1. The listed users and the listed groups' members.
        let users = join_all(scope.users.iter().map(|reference| async move {
            client
                .find_user_by_upn(reference)
                .await
                .map(|user| (reference, user))
                .map_err(|error| failure(reference, &error))
        }))
        .await;
        let found_groups =
            join_all(scope.groups.iter().map(|group| find_group(client, group))).await;
        let mut groups = Vec::with_capacity(found_groups.len());
        for result in found_groups {
            groups.push(result?);
        }
        let group_dns: Vec<String> = groups.iter().filter_map(|entry| entry.dn.clone()).collect();
        let members = client
            .transitive_members_of_groups(&group_dns)
            .await
            .map_err(|error| failure("the scope's groups", &error))?;

        let mut state = ScopeState::default();
        let mut listed: BTreeSet<String> = BTreeSet::new();
        for result in users {
            let (reference, user) = result?;
            if let Some(mail) = user.as_ref().and_then(|u| u.mail.as_deref()) {
                listed.insert(mail.to_ascii_lowercase());
            }
            state.users.push(ScopeEntry {
                reference: reference.clone(),
                dn: user.map(|u| u.dn),
            });
        }
        for member in members.into_iter().flatten() {
            if member.kind == MemberKind::User
                && let Some(mail) = member.mail
            {
                listed.insert(mail.to_ascii_lowercase());
            }
        }
        state.groups = groups;

        // 2. The mailboxes in scope: the listed ones, or every mailbox with or without them.
        let selected: Vec<String> = match scope.mode {
            ScopeMode::Only => listed.into_iter().collect(),
            ScopeMode::All | ScopeMode::AllExcept => {
                let everyone = client
                    .users_with_mail()
                    .await
                    .map_err(|error| failure("users with a mail address", &error))?;
                everyone
                    .into_iter()
                    .filter_map(|object| object.mail.map(|mail| mail.to_ascii_lowercase()))
                    .filter(|mail| scope.mode == ScopeMode::All || !listed.contains(mail))
                    .collect()
            }
        };
        state.mailboxes = Some(selected.len());
        state.samples = selected.into_iter().take(SAMPLES).collect();
        Ok(state)
    })
    .await
}

/// Finds a scope group by the reference the spec gives.
async fn find_group(client: &DirectoryClient, group: &GroupRef) -> Read<ScopeEntry> {
    let reference = group_name(group);
    let found = match group {
        GroupRef::Address(address) => {
            client
                .find_group(&directory::GroupRef::SmtpAddress(address.clone()))
                .await
        }
        GroupRef::Dn(dn) => {
            client
                .find_group(&directory::GroupRef::Dn(dn.clone()))
                .await
        }
        // A name is a sAMAccountName or the group's relative name.
        GroupRef::Name(name) => {
            match client
                .find_group(&directory::GroupRef::SamAccountName(name.clone()))
                .await
            {
                Ok(None) => {
                    client
                        .find_group(&directory::GroupRef::Name(name.clone()))
                        .await
                }
                other => other,
            }
        }
    }
    .map_err(|error| failure(&reference, &error))?;
    Ok(ScopeEntry {
        reference,
        dn: found.map(|group| group.dn),
    })
}
