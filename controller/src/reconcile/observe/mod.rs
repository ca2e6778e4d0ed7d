//! Reads the live state of everything a spec describes.
//!
//! Reads that do not depend on each other run concurrently: the account with its role
//! assignments, the scope, the EWS endpoint, the Entra application and the applied
//! configuration. Each read is bounded by the context's read timeout, and each failure
//! becomes a [`ReadFailure`] in the [`Observed`] result and one `warn!` line with the
//! provider, the target and the error. Nothing here changes anything.

mod cloud;
mod directory;
mod exchange;

use std::future::Future;
use std::sync::Arc;

use tracing::warn;

use super::applied::AppliedConfig;
use super::classify;
use super::context::Context;
use super::observed::{Observed, Provider, Read, ReadFailure};

pub use directory::password_state;
pub use exchange::ews_endpoint;

/// Reads the live state for `ctx`'s spec.
pub async fn observe(ctx: &Context) -> Observed {
    let desired = &ctx.desired;

    // 1. One directory connection as the bind user, shared by the directory reads.
    let url = desired.directory.url.to_string();
    let connection = bounded(ctx, Provider::Directory, &url, async {
        ctx.connect_directory()
            .await
            .map(Arc::new)
            .map_err(|error| {
                classify::read_failure(
                    Provider::Directory,
                    &url,
                    &error,
                    classify::directory_connect(ctx, &error),
                )
            })
    })
    .await;

    // 2. The independent reads. The role assignments depend on the account: a missing
    // account has none to read.
    let account_and_roles = async {
        let account = directory::account(ctx, &connection).await;
        let roles = match &account {
            Ok(Some(_)) => Some(exchange::impersonation(ctx).await),
            _ => None,
        };
        (account, roles)
    };
    let ((account, impersonation), management_scope, scope, ews, cloud, (applied, applied_corrupt)) = tokio::join!(
        account_and_roles,
        exchange::management_scope(ctx),
        directory::scope(ctx, &connection),
        exchange::ews_endpoint(ctx),
        cloud::observe(ctx),
        applied(ctx),
    );

    if let Ok(client) = connection
        && let Ok(client) = Arc::try_unwrap(client)
        && let Err(error) = client.unbind().await
    {
        tracing::debug!(%error, "unbinding from the directory failed");
    }

    Observed {
        account,
        impersonation,
        management_scope,
        ews,
        scope,
        cloud,
        applied,
        applied_corrupt,
    }
}

/// Runs a read under the context's read timeout and logs its failure.
pub(super) async fn bounded<T>(
    ctx: &Context,
    provider: Provider,
    target: &str,
    read: impl Future<Output = Read<T>>,
) -> Read<T> {
    let timeout = ctx.options.read_timeout;
    let result = match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(ReadFailure::new(
            provider,
            target,
            format!("timed out after {}", humantime::format_duration(timeout)),
        )),
    };
    if let Err(failure) = &result {
        warn!(
            provider = %failure.provider,
            target = %failure.target,
            error = %failure.reason,
            "read of live state failed"
        );
    }
    result
}

/// Reads `applied.json`. A corrupt file counts as absent, with the reason beside it, so that
/// apply records the settings again. Rewriting loses nothing, because the file is siuctl's
/// own record of a spec that is still at hand.
async fn applied(ctx: &Context) -> (Read<Option<AppliedConfig>>, Option<String>) {
    let state_dir = &ctx.desired.update_loop.state_dir;
    let target = AppliedConfig::path(state_dir).display().to_string();
    let mut corrupt = None;
    let read = bounded(ctx, Provider::Files, &target, async {
        match AppliedConfig::load(state_dir) {
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                tracing::warn!(path = %target, %error, "the applied configuration is corrupt, so apply records it again");
                corrupt = Some(error.to_string());
                Ok(None)
            }
            result => {
                result.map_err(|error| ReadFailure::new(Provider::Files, &target, error.to_string()))
            }
        }
    })
    .await;
    (read, corrupt)
}
