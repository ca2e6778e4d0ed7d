//! Exchange reads: the account's role assignments, the on-premises EWS endpoint and
//! Exchange Online's EWS settings.

use siu_specs::desired::{BindUser, ExchangeAuth, ExchangeConnection};

use super::bounded;
use crate::providers::exchange::autodiscover::Autodiscover;
use crate::providers::exchange::ews::EwsAuth;
use crate::providers::exchange::management::ManagementError;
use crate::reconcile::classify;
use crate::reconcile::context::Context;
use crate::reconcile::observed::{
    EwsEndpoint, EwsSettings, ImpersonationState, Provider, Read, ReadFailure, RoleAssignment,
};

fn failure(
    provider: Provider,
    target: &str,
    setting: &str,
    error: &ManagementError,
) -> ReadFailure {
    classify::read_failure(
        provider,
        target,
        error,
        classify::management(error, setting),
    )
}

/// Reads the account's ApplicationImpersonation assignments.
pub(super) async fn impersonation(ctx: &Context) -> Read<ImpersonationState> {
    let upn = ctx.desired.account.upn.as_str();
    let setting = "onPremises.exchange.managementShell";
    let provider = Provider::ExchangeManagement;
    bounded(ctx, provider, upn, async {
        let assignments = ctx
            .management_shell()
            .impersonation_assignments(upn)
            .await
            .map_err(|error| failure(provider, upn, setting, &error))?
            .into_iter()
            .map(|assignment| RoleAssignment {
                name: assignment.name,
                scope: assignment.custom_recipient_write_scope,
                enabled: assignment.enabled,
            })
            .collect();
        Ok(ImpersonationState { assignments })
    })
    .await
}

/// Reads whether the spec's management scope exists; `None` when the spec names none.
pub(super) async fn management_scope(ctx: &Context) -> Option<Read<bool>> {
    let scope = ctx.desired.account.management_scope.as_deref()?;
    let setting = "onPremises.exchange.managementShell";
    let provider = Provider::ExchangeManagement;
    let read = bounded(ctx, provider, scope, async {
        ctx.management_shell()
            .management_scope(scope)
            .await
            .map(|found| found.is_some())
            .map_err(|error| failure(provider, scope, setting, &error))
    })
    .await;
    Some(read)
}

/// Finds the on-premises EWS URL: the spec's, or the one Autodiscover returns for the spec's
/// address, asked as the service account (or as the bind user while the account's password
/// is not readable).
pub async fn ews_endpoint(ctx: &Context) -> Read<EwsEndpoint> {
    let address = match &ctx.desired.exchange.connection {
        ExchangeConnection::Manual { ews_url, .. } => {
            return Ok(EwsEndpoint {
                url: ews_url.clone(),
                source: "spec",
            });
        }
        ExchangeConnection::Autodiscover { address } => address.as_str(),
    };
    let provider = Provider::Autodiscover;
    bounded(ctx, provider, address, async {
        let auth =
            autodiscover_auth(ctx).map_err(|reason| ReadFailure::new(provider, address, reason))?;
        let client = Autodiscover::new(&ctx.exchange_http(), auth)
            .map_err(|error| ReadFailure::new(provider, address, error.to_string()))?;
        let discovery = client
            .discover(address)
            .await
            .map_err(|error| ReadFailure::new(provider, address, error.to_string()))?;
        Ok(EwsEndpoint {
            url: discovery.ews_url,
            source: "Autodiscover",
        })
    })
    .await
}

fn autodiscover_auth(ctx: &Context) -> Result<EwsAuth, String> {
    if let Ok(password) = ctx.desired.account.password().resolve() {
        return Ok(ctx.account_ews_auth(&password));
    }
    let password = ctx
        .desired
        .directory
        .bind_password
        .resolve()
        .map_err(|error| format!("no credentials to ask Autodiscover with: {error}"))?;
    let username = ctx.desired.directory.bind_user.to_string();
    if matches!(ctx.desired.directory.bind_user, BindUser::Dn(_)) {
        return Err(
            "no credentials to ask Autodiscover with: the account's password is not readable yet and the bind user is a DN".to_owned(),
        );
    }
    let password = crate::providers::exchange::ews::Secret::new(password.expose().to_owned());
    Ok(match ctx.desired.exchange.auth {
        ExchangeAuth::Ntlm => EwsAuth::Ntlm { username, password },
        ExchangeAuth::Basic => EwsAuth::Basic { username, password },
    })
}

/// Reads Exchange Online's EWS settings, when the spec configures a shell for it.
pub(super) async fn online_settings(ctx: &Context) -> Option<Read<EwsSettings>> {
    let shell = ctx.online_shell()?;
    let provider = Provider::ExchangeOnlineManagement;
    let target = "the organization's EWS settings";
    Some(
        bounded(ctx, provider, target, async {
            let settings = shell.ews_settings().await.map_err(|error| {
                failure(
                    provider,
                    target,
                    "appRegistration.exchangeOnlineShell",
                    &error,
                )
            })?;
            Ok(EwsSettings {
                ews_enabled: settings.ews_enabled,
                allowed_app_ids: settings.ews_allowed_app_ids,
            })
        })
        .await,
    )
}
