//! `siuctl test-impersonation`: opens one mailbox's Sent Items the way the update loop
//! does, to check access by hand after a failed check.

use std::fmt::Write as _;

use anyhow::Context as _;

use super::exit::Exit;
use super::output;
use super::spec_args::{SpecArgs, runtime};
use crate::providers::entra::ReplicationPolicy;
use crate::providers::exchange::ews::{EwsClient, EwsClientOptions, EwsError};
use crate::reconcile::applied::AppliedConfig;
use crate::reconcile::context::{Context, Options};
use crate::reconcile::observe::ews_endpoint;
use crate::reconcile::remedies;
use crate::reconcile::verify::{
    CheckOutcome, check_cloud_mailbox, impersonation_failure, probe_impersonation,
};

/// Arguments of `siuctl test-impersonation`.
#[derive(Debug, clap::Args)]
pub struct TestImpersonationArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// The mailbox to open, by UPN or SMTP address.
    #[arg(long, value_name = "UPN")]
    pub mailbox: String,
}

/// Opens the mailbox and prints what happened.
pub fn run(args: TestImpersonationArgs) -> anyhow::Result<Exit> {
    let ctx = match args.spec.context(Options::default())? {
        Ok(ctx) => ctx,
        Err(exit) => return Ok(exit),
    };
    let (report, passed) = runtime()?.block_on(test(&ctx, &args.mailbox))?;
    output::print(&report).context("failed to write to standard output")?;
    Ok(if passed { Exit::Success } else { Exit::Failure })
}

async fn test(ctx: &Context, mailbox: &str) -> anyhow::Result<(String, bool)> {
    let mut text = String::new();

    // 1. The mailbox's primary SMTP address: impersonation by a UPN that differs from it
    // finds no mailbox.
    let address = primary_address(ctx, mailbox, &mut text).await;

    // 2. On-premises EWS as the service account, without waiting for replication.
    let endpoint = ews_endpoint(ctx)
        .await
        .map_err(|failure| anyhow::anyhow!("{failure}"))?;
    let password = ctx
        .secret(
            "the service account's password",
            &ctx.desired.account.password(),
        )
        .context("failed to read the service account's password")?;
    let client = EwsClient::new(
        endpoint.url.clone(),
        ctx.account_ews_auth(&password),
        &EwsClientOptions {
            http: ctx.exchange_http(),
            ..EwsClientOptions::default()
        },
    )?;
    let no_wait = ReplicationPolicy {
        timeout: std::time::Duration::ZERO,
        ..ctx.options.replication
    };
    let _ = writeln!(
        text,
        "Opening Sent Items of {address} as {} through {} ...",
        ctx.desired.account.upn, endpoint.url
    );
    match probe_impersonation(ctx, &client, &address, &no_wait).await {
        Ok(detail) => {
            let _ = writeln!(text, "ok: impersonation works: {detail}");
            return Ok((text, true));
        }
        Err(EwsError::NonExistentMailbox { .. }) if ctx.desired.app_registration.is_some() => {
            let _ = writeln!(
                text,
                "The on-premises server has no mailbox {address}; checking Exchange Online with the application ..."
            );
        }
        Err(error) => {
            let diagnosis = impersonation_failure(ctx, &address, &error);
            let _ = writeln!(
                text,
                "failed: {}\nremedy: {}",
                diagnosis.message, diagnosis.remedy
            );
            return Ok((text, false));
        }
    }

    // 3. A cloud mailbox, with the application of the last apply.
    let client_id = match &ctx.desired.app_registration.as_ref().map(|r| &r.mode) {
        Some(siu_specs::desired::AppRegistrationMode::Manual { client_id, .. }) => {
            Some(client_id.to_string())
        }
        _ => AppliedConfig::load(&ctx.desired.update_loop.state_dir)
            .ok()
            .flatten()
            .and_then(|config| config.discovered.client_id)
            .map(|id| id.to_string()),
    };
    let Some(client_id) = client_id else {
        let _ = writeln!(
            text,
            "failed: the application's client ID is not known yet\nremedy: run siuctl apply first"
        );
        return Ok((text, false));
    };
    let observed = crate::reconcile::observe::observe(ctx).await;
    let (outcome, path) = check_cloud_mailbox(ctx, &client_id, &observed, &address).await;
    let path = path.map(|p| format!(" over {p:?}")).unwrap_or_default();
    Ok(match outcome {
        CheckOutcome::Passed { detail } => {
            let _ = writeln!(text, "ok: the application opens it{path}: {detail}");
            (text, true)
        }
        CheckOutcome::Failed(diagnosis) => {
            let _ = writeln!(
                text,
                "failed{path}: {}\nremedy: {}",
                diagnosis.message, diagnosis.remedy
            );
            (text, false)
        }
        CheckOutcome::Unknown { reason } => {
            let _ = writeln!(text, "unknown: {reason}");
            (text, false)
        }
    })
}

/// Looks the mailbox up in the directory and returns its primary SMTP address, noting when
/// it differs from what was given.
async fn primary_address(ctx: &Context, mailbox: &str, text: &mut String) -> String {
    let lookup = async {
        let client = ctx.connect_directory().await.ok()?;
        let user = client.find_user_by_upn(mailbox).await.ok()??;
        let _ = client.unbind().await;
        user.mail
    };
    match lookup.await {
        Some(mail) if !mail.eq_ignore_ascii_case(mailbox) => {
            let note = remedies::ews_upn_differs_from_smtp(mailbox, &mail);
            let _ = writeln!(text, "note: {}; using {mail}", note.message);
            mail
        }
        Some(mail) => mail,
        None => mailbox.to_owned(),
    }
}
