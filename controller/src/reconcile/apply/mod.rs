//! Applies a plan: runs its steps, checks the result, and records it.
//!
//! 1. The steps run in dependency order ([`schedule`]), each carried out by the
//!    [`Executor`](steps::Executor) and reported as it ends.
//! 2. The checks of [`verify`](super::verify) run whatever the steps did, because they
//!    also find problems that no step can fix.
//! 3. `applied.json` is written when the settings changed (or the path to cloud mailboxes
//!    did), and `status.json` always, with the conditions and how the apply ended.
//!
//! A failed step does not roll back the others: the result is degraded, and a second
//! apply picks up where the first one stopped.

pub mod schedule;
mod steps;

use std::path::PathBuf;

use chrono::Utc;
use siu_specs::desired::{AppRegistrationMode, Environment};
use tracing::{info, warn};
use uuid::Uuid;

use super::applied::{APPLIED_FORMAT, AppliedConfig, Discovered};
use super::context::Context;
use super::observed::Observed;
use super::plan::{ActionKind, Plan, Step};
use super::status::{ApplyRecord, ApplyResult, ConditionStatus, StatusFile};
use super::verify::{CheckOutcome, Verification, verify};
use schedule::{StepOutcome, StepReport, run_steps};

/// The record of one apply.
#[derive(Debug)]
pub struct ApplyOutcome {
    /// Every step and how it ended.
    pub steps: Vec<StepReport>,
    /// The checks after the steps.
    pub verification: Verification,
    /// The result.
    pub result: ApplyResult,
    /// The `applied.json` that was written, when one was.
    pub applied: Option<PathBuf>,
    /// The status file as written.
    pub status: StatusFile,
}

/// A state file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Writing `applied.json` or `status.json` failed.
    // The I/O error is the source, so `{:#}` prints it once, after this message.
    #[error(
        "failed to write {}; the changes are applied, so {} and run apply again to record them",
        path.display(),
        state_file_remedy(source)
    )]
    StateFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Returns what the administrator does about a failed write of a state file.
fn state_file_remedy(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "free space on the state directory's file system"
        }
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            "make the state directory writable for this user"
        }
        _ => "fix the state directory",
    }
}

/// Applies `plan`, which was made from `observed`, and calls `on_step` as each step ends.
pub async fn apply(
    ctx: &Context,
    plan: &Plan,
    observed: &Observed,
    on_step: &mut (dyn FnMut(&StepReport) + Send),
) -> Result<ApplyOutcome, ApplyError> {
    let desired = &ctx.desired;
    info!(name = %desired.name, steps = plan.actions.iter().map(|a| a.steps.len()).sum::<usize>(), "applying");

    // 1. The steps.
    let mut executor = steps::Executor::new(ctx, observed);
    let steps = run_steps(&plan.actions, &mut executor, on_step).await;
    let client_id = match desired.app_registration.as_ref().map(|r| &r.mode) {
        Some(AppRegistrationMode::Manual { client_id, .. }) => Some(client_id.to_string()),
        Some(AppRegistrationMode::Automatic { .. }) => executor.client_id().map(str::to_owned),
        None => None,
    };
    executor.finish().await;

    // 2. The checks.
    let ews_url = observed
        .ews
        .as_ref()
        .ok()
        .map(|endpoint| endpoint.url.clone());
    let verification = verify(
        ctx,
        observed,
        &plan.actions,
        &steps,
        ews_url.as_ref(),
        client_id.as_deref(),
    )
    .await;

    // 3. The applied configuration and the status.
    let applied = record_settings(
        ctx,
        plan,
        observed,
        &steps,
        &verification,
        ews_url,
        client_id.as_deref(),
    )?;
    let result = result(plan, &steps, &verification);
    let status = record_status(ctx, plan, result, &verification)?;
    info!(name = %desired.name, result = ?result, "apply finished");
    Ok(ApplyOutcome {
        steps,
        verification,
        result,
        applied,
        status,
    })
}

/// Writes `applied.json` when the settings step ran, or when the checks found another
/// path to cloud mailboxes than the one recorded.
fn record_settings(
    ctx: &Context,
    plan: &Plan,
    observed: &Observed,
    steps: &[StepReport],
    verification: &Verification,
    ews_url: Option<url::Url>,
    client_id: Option<&str>,
) -> Result<Option<PathBuf>, ApplyError> {
    let settings_ran = steps.iter().any(|report| {
        report.step == Step::RecordSettings && matches!(report.outcome, StepOutcome::Done { .. })
    });
    let previous = observed.applied.as_ref().ok().and_then(Option::as_ref);
    let path_changed = previous.is_some_and(|applied| {
        verification.cloud_mail_path.is_some()
            && applied.discovered.cloud_mail_path != verification.cloud_mail_path
    });
    let settings_clean = plan
        .actions
        .iter()
        .find(|action| action.resource == super::plan::Resource::Settings)
        .is_some_and(|action| action.kind == ActionKind::NoChange);
    if !(settings_ran || (path_changed && settings_clean)) {
        return Ok(None);
    }
    let Some(ews_url) = ews_url else {
        return Ok(None);
    };
    let config = AppliedConfig {
        format: APPLIED_FORMAT,
        applied_at: Utc::now(),
        desired_fingerprint: plan.desired_fingerprint.clone(),
        desired: ctx.desired.clone(),
        discovered: Discovered {
            ews_url,
            client_id: client_id.and_then(|id| id.parse::<Uuid>().ok()),
            cloud_mail_path: verification.cloud_mail_path,
        },
    };
    let path = AppliedConfig::path(&ctx.desired.update_loop.state_dir);
    config.save().map_err(|source| ApplyError::StateFile {
        path: path.clone(),
        source,
    })?;
    info!(path = %path.display(), "wrote the applied configuration");
    Ok(Some(path))
}

/// Decides how the apply ended: applied when nothing is left to fix, degraded when some
/// of it is, failed when steps were planned and none of them succeeded.
fn result(plan: &Plan, steps: &[StepReport], verification: &Verification) -> ApplyResult {
    let step_problems = steps.iter().any(|report| report.outcome.is_failure());
    let plan_problems = plan
        .actions
        .iter()
        .any(|action| matches!(action.kind, ActionKind::Blocked | ActionKind::Unknown));
    let check_problems = verification
        .checks
        .iter()
        .any(|check| !matches!(check.outcome, CheckOutcome::Passed { .. }));
    if !(step_problems || plan_problems || check_problems) {
        return ApplyResult::Applied;
    }
    let any_done = steps.iter().any(|report| {
        matches!(
            report.outcome,
            StepOutcome::Done { .. } | StepOutcome::Warning { .. }
        )
    });
    if !steps.is_empty() && !any_done {
        ApplyResult::Failed
    } else {
        ApplyResult::Degraded
    }
}

fn record_status(
    ctx: &Context,
    plan: &Plan,
    result: ApplyResult,
    verification: &Verification,
) -> Result<StatusFile, ApplyError> {
    let desired = &ctx.desired;
    let state_dir = &desired.update_loop.state_dir;
    let path = StatusFile::path(state_dir);
    let previous = StatusFile::load(state_dir).unwrap_or_else(|error| {
        warn!(path = %path.display(), %error, "ignoring the unreadable status file");
        None
    });

    let mut status = previous.unwrap_or_else(|| StatusFile {
        name: desired.name.clone(),
        environment: String::new(),
        account: String::new(),
        last_apply: None,
        last_reconcile: None,
        scope: None,
        conditions: Vec::new(),
    });
    status.name = desired.name.clone();
    status.environment = match desired.environment {
        Environment::OnPremises => "onPremises",
        Environment::Hybrid => "hybrid",
    }
    .to_owned();
    status.account = desired.account.upn.clone();
    status.scope = plan.facts.scope.clone();
    status.last_apply = Some(ApplyRecord {
        at: Utc::now(),
        result,
        desired_fingerprint: plan.desired_fingerprint.clone(),
    });

    status.update_conditions(
        verification
            .checks
            .iter()
            .map(|check| check.to_condition())
            .collect(),
    );

    status
        .save(state_dir)
        .map_err(|source| ApplyError::StateFile {
            path: path.clone(),
            source,
        })?;
    let not_ready = status
        .conditions
        .iter()
        .filter(|condition| condition.status != ConditionStatus::True)
        .count();
    info!(path = %path.display(), not_ready, "wrote the status file");
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_error_names_the_remedy_once() {
        let error = ApplyError::StateFile {
            path: PathBuf::from("/var/lib/siuctl/applied.json"),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        };

        let message = error.to_string();

        assert_eq!(
            message,
            "failed to write /var/lib/siuctl/applied.json; the changes are applied, so free space on the state directory's file system and run apply again to record them"
        );
        let source = std::error::Error::source(&error).expect("the I/O error is the source");
        assert!(!message.contains(&source.to_string()), "{message}");
    }
}
