//! The checks after apply: the account signs in, impersonation works on a mailbox, the
//! application gets tokens, and EWS or Graph opens a cloud mailbox.
//!
//! Each check becomes one condition of the status file. Checks that can fail only because
//! a change has not reached every server yet (a new role assignment, new consent) retry
//! under the context's replication policy and report each wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use siu_specs::desired::MailAccess;
use tracing::{info, warn};
use url::Url;

use super::applied::CloudMailPath;
use super::apply::schedule::{StepOutcome, StepReport};
use super::classify;
use super::context::Context;
use super::observed::Observed;
use super::plan::{Action, ActionKind, Resource};
use super::remedies::{self, Diagnosis, FailureKind};
use super::status::{Condition, ConditionStatus, ConditionType};
use crate::providers::entra::{AppCredential, ReplicationPolicy, ReplicationWait, TokenError};
use crate::providers::exchange::ews::{
    EXCHANGE_ONLINE_SCOPE, EwsAuth, EwsClient, EwsClientOptions, EwsError,
};

/// How many sample mailboxes a check tries before it gives up.
const MAX_SAMPLES: usize = 10;

/// The Internet Message-ID the Graph check looks for; no message has it.
const PROBE_MESSAGE_ID: &str = "<siuctl-access-check@siuctl.invalid>";

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The check passed.
    Passed {
        /// The object checked, such as the mailbox, and what was seen.
        detail: String,
    },
    /// The check failed.
    Failed(Diagnosis),
    /// The check could not run.
    Unknown {
        /// Why.
        reason: String,
    },
}

/// One check and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The condition the check decides.
    pub condition: ConditionType,
    /// The result.
    pub outcome: CheckOutcome,
}

impl Check {
    /// Converts the check into a condition of the status file.
    pub fn to_condition(&self) -> Condition {
        match &self.outcome {
            CheckOutcome::Passed { detail } => Condition::new(
                self.condition,
                ConditionStatus::True,
                "Ready",
                detail.clone(),
            ),
            CheckOutcome::Failed(diagnosis) => Condition::new(
                self.condition,
                ConditionStatus::False,
                diagnosis.kind.name(),
                diagnosis.to_string(),
            ),
            CheckOutcome::Unknown { reason } => Condition::new(
                self.condition,
                ConditionStatus::Unknown,
                "NotChecked",
                reason.clone(),
            ),
        }
    }
}

/// The findings of the checks.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// The checks, in report order.
    pub checks: Vec<Check>,
    /// The path that works for cloud mailboxes.
    pub cloud_mail_path: Option<CloudMailPath>,
}

/// Runs every check of the spec's environment.
pub async fn verify(
    ctx: &Context,
    observed: &Observed,
    actions: &[Action],
    steps: &[StepReport],
    ews_url: Option<&Url>,
    client_id: Option<&str>,
) -> Verification {
    let mut verification = Verification::default();
    let role_policy = wait_policy(ctx, steps, &[Resource::Impersonation]);
    let cloud_policy = wait_policy(
        ctx,
        steps,
        &[
            Resource::Application,
            Resource::AppCredential,
            Resource::ServicePrincipal,
            Resource::Consent,
        ],
    );
    let samples: Vec<String> = observed
        .scope
        .as_ref()
        .map(|scope| scope.samples.iter().take(MAX_SAMPLES).cloned().collect())
        .unwrap_or_default();

    // 1. The account and its role.
    let account = check_account(ctx, actions, steps).await;
    let account_ready = matches!(account, CheckOutcome::Passed { .. });
    verification.checks.push(Check {
        condition: ConditionType::AccountReady,
        outcome: account,
    });
    verification.checks.push(Check {
        condition: ConditionType::ImpersonationGranted,
        outcome: outcome_of_resource(actions, steps, Resource::Impersonation),
    });

    // 2. Impersonation on an on-premises mailbox. Mailboxes that on-premises EWS does not
    // know are cloud mailboxes in a hybrid organization, the candidates for step 4.
    let mut cloud_candidates = Vec::new();
    let works = match (account_ready, ews_url) {
        (false, _) => CheckOutcome::Unknown {
            reason: "not checked, because the account is not ready".to_owned(),
        },
        (true, None) => CheckOutcome::Unknown {
            reason: "not checked, because the EWS URL is unknown".to_owned(),
        },
        (true, Some(url)) => {
            check_impersonation(ctx, url, &samples, &role_policy, &mut cloud_candidates).await
        }
    };
    verification.checks.push(Check {
        condition: ConditionType::ImpersonationWorks,
        outcome: works,
    });

    // 3. The application and the path to cloud mailboxes.
    if let Some(registration) = &ctx.desired.app_registration {
        verification.checks.push(Check {
            condition: ConditionType::AppRegistered,
            outcome: app_registered(actions, steps),
        });
        let credential = match client_id {
            Some(client_id) => ctx.application_credential(client_id).map_err(|error| {
                classify::credential(&error)
                    .unwrap_or_else(|| Diagnosis::other(error.to_string(), "fix the spec"))
            }),
            None => Err(Diagnosis::other(
                "the application's client ID is unknown",
                "fix the application first",
            )),
        };
        let credential_step = outcome_of_resource(actions, steps, Resource::AppCredential);
        let authenticates = match (&credential, credential_step) {
            (_, CheckOutcome::Failed(_) | CheckOutcome::Unknown { .. }) => CheckOutcome::Unknown {
                reason: "not checked, because the application's credential is not in place"
                    .to_owned(),
            },
            (Ok(credential), _) => check_token(ctx, credential, &cloud_policy).await,
            (Err(diagnosis), _) => CheckOutcome::Failed(diagnosis.clone()),
        };
        let app_ready = matches!(authenticates, CheckOutcome::Passed { .. });
        verification.checks.push(Check {
            condition: ConditionType::AppAuthenticates,
            outcome: authenticates,
        });

        if cloud_candidates.is_empty() {
            cloud_candidates = samples.clone();
        }
        let (mail, path) = match (&credential, app_ready) {
            (Ok(credential), true) => {
                check_cloud_mail(
                    ctx,
                    credential.clone(),
                    registration.mail_access,
                    observed,
                    &cloud_candidates,
                    &cloud_policy,
                )
                .await
            }
            _ => (
                CheckOutcome::Unknown {
                    reason: "not checked, because the application does not authenticate".to_owned(),
                },
                None,
            ),
        };
        verification.cloud_mail_path = path;
        verification.checks.push(Check {
            condition: ConditionType::MailAccessReady,
            outcome: mail,
        });
    }
    verification
}

/// Returns the replication policy for checks of `resources`: the context's when this apply
/// changed one of them, and no waiting otherwise, because then a failure is not a change
/// still on its way.
fn wait_policy(ctx: &Context, steps: &[StepReport], resources: &[Resource]) -> ReplicationPolicy {
    let changed = steps.iter().any(|report| {
        resources.contains(&report.resource) && matches!(report.outcome, StepOutcome::Done { .. })
    });
    if changed {
        ctx.options.replication
    } else {
        ReplicationPolicy {
            timeout: std::time::Duration::ZERO,
            ..ctx.options.replication
        }
    }
}

/// Turns the outcome of a resource's action and steps into a check.
fn outcome_of_resource(
    actions: &[Action],
    steps: &[StepReport],
    resource: Resource,
) -> CheckOutcome {
    let Some(action) = actions.iter().find(|action| action.resource == resource) else {
        return CheckOutcome::Unknown {
            reason: format!("the plan has no {} action", resource.name()),
        };
    };
    let mut done = Vec::new();
    for report in steps.iter().filter(|report| report.resource == resource) {
        match &report.outcome {
            StepOutcome::Failed(diagnosis) => return CheckOutcome::Failed(diagnosis.clone()),
            StepOutcome::Skipped { reason } => {
                return CheckOutcome::Unknown {
                    reason: reason.clone(),
                };
            }
            StepOutcome::Done { detail } | StepOutcome::Warning { detail } => {
                done.push(detail.as_str());
            }
        }
    }
    match action.kind {
        ActionKind::Blocked => CheckOutcome::Failed(Diagnosis {
            kind: action.failure.unwrap_or(FailureKind::Other),
            message: action.reason.clone(),
            remedy: action.remedy.clone().unwrap_or_default(),
        }),
        ActionKind::Unknown => CheckOutcome::Unknown {
            reason: action.reason.clone(),
        },
        _ if !done.is_empty() => CheckOutcome::Passed {
            detail: done.join("; "),
        },
        _ => CheckOutcome::Passed {
            detail: action.reason.clone(),
        },
    }
}

async fn check_account(ctx: &Context, actions: &[Action], steps: &[StepReport]) -> CheckOutcome {
    match outcome_of_resource(actions, steps, Resource::Account) {
        CheckOutcome::Passed { .. } => {}
        other => return other,
    }
    let upn = &ctx.desired.account.upn;
    let reference = ctx.desired.account.password();
    let password = match reference.resolve() {
        Ok(password) => password,
        Err(error) => {
            return CheckOutcome::Failed(remedies::account_password_unreadable(
                upn,
                &reference.to_string(),
                &error.to_string(),
            ));
        }
    };
    match ctx.bind_as_account(&password).await {
        Ok(()) => CheckOutcome::Passed {
            detail: format!("{upn} signs in to the directory"),
        },
        Err(crate::providers::directory::DirectoryError::Bind { status, .. }) => {
            CheckOutcome::Failed(remedies::account_password_rejected(
                upn,
                &reference.to_string(),
                &status.to_string(),
            ))
        }
        Err(error) => CheckOutcome::Unknown {
            reason: error.to_string(),
        },
    }
}

/// Calls the context's replication callback for one wait.
fn report_wait(
    ctx: &Context,
    target: &str,
    attempt: u32,
    started: Instant,
    delay: std::time::Duration,
) {
    let wait = ReplicationWait {
        target: target.to_owned(),
        attempt,
        waited: started.elapsed(),
        delay,
    };
    info!(target_object = %wait.target, attempt, "waiting for replication");
    if let Some(callback) = &ctx.options.on_replication_wait {
        callback(&wait);
    }
}

/// Opens the Sent Items of sample mailboxes as the service account until one works.
async fn check_impersonation(
    ctx: &Context,
    ews_url: &Url,
    samples: &[String],
    policy: &ReplicationPolicy,
    cloud_candidates: &mut Vec<String>,
) -> CheckOutcome {
    if samples.is_empty() {
        return CheckOutcome::Unknown {
            reason: remedies::no_sample_mailbox("on-premises").to_string(),
        };
    }
    let password = match ctx.desired.account.password().resolve() {
        Ok(password) => password,
        Err(error) => {
            return CheckOutcome::Unknown {
                reason: error.to_string(),
            };
        }
    };
    let client = match EwsClient::new(
        ews_url.clone(),
        ctx.account_ews_auth(&password),
        &EwsClientOptions {
            http: ctx.exchange_http(),
            ..EwsClientOptions::default()
        },
    ) {
        Ok(client) => client,
        Err(error) => {
            return CheckOutcome::Unknown {
                reason: error.to_string(),
            };
        }
    };

    for (index, mailbox) in samples.iter().enumerate() {
        match probe_impersonation(ctx, &client, mailbox, policy).await {
            Ok(detail) => {
                // The untried samples may be cloud mailboxes; this one is not.
                cloud_candidates.extend(samples[index + 1..].iter().cloned());
                return CheckOutcome::Passed { detail };
            }
            Err(EwsError::NonExistentMailbox { .. }) => cloud_candidates.push(mailbox.clone()),
            Err(error) => return CheckOutcome::Failed(impersonation_failure(ctx, mailbox, &error)),
        }
    }
    CheckOutcome::Unknown {
        reason: remedies::no_sample_mailbox("on-premises").to_string(),
    }
}

/// Opens the Sent Items of `mailbox` as the service account, waiting while EWS refuses
/// impersonation, because a new role assignment takes a while to reach every server.
pub async fn probe_impersonation(
    ctx: &Context,
    client: &EwsClient,
    mailbox: &str,
    policy: &ReplicationPolicy,
) -> Result<String, EwsError> {
    let started = Instant::now();
    let mut attempt = 0;
    let mut rejected_logons = 0;
    loop {
        match client.get_sent_items_folder(mailbox).await {
            Ok(folder) => {
                return Ok(format!(
                    "opened Sent Items of {mailbox} ({})",
                    item_count(folder.total_count.unwrap_or_default())
                ));
            }
            Err(error @ EwsError::ImpersonateUserDenied { .. }) => {
                attempt += 1;
                let Some(delay) = policy.next_delay(attempt, started.elapsed()) else {
                    return Err(error);
                };
                report_wait(
                    ctx,
                    &format!("impersonation of {mailbox}"),
                    attempt,
                    started,
                    delay,
                );
                tokio::time::sleep(delay).await;
            }
            // A password that apply has just set can take a moment to reach the domain
            // controller that Exchange checks logons with. Each repeat is one more failed
            // logon towards the lockout threshold when the password is wrong, so there are
            // only a few.
            Err(error @ EwsError::Unauthorized { .. })
                if rejected_logons < UNAUTHORIZED_REPEATS =>
            {
                rejected_logons += 1;
                let delay = UNAUTHORIZED_PAUSE * rejected_logons;
                report_wait(
                    ctx,
                    &format!("the service account's logon to EWS ({error})"),
                    rejected_logons,
                    started,
                    delay,
                );
                tokio::time::sleep(delay).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Repeats of an EWS request that was rejected with HTTP 401 during the checks.
const UNAUTHORIZED_REPEATS: u32 = 2;

/// Pause before the first repeat after HTTP 401; the second waits twice as long.
const UNAUTHORIZED_PAUSE: Duration = Duration::from_secs(1);

/// Diagnoses a failed impersonation of `mailbox`.
pub fn impersonation_failure(ctx: &Context, mailbox: &str, error: &EwsError) -> Diagnosis {
    let upn = &ctx.desired.account.upn;
    match error {
        EwsError::ImpersonateUserDenied { .. } => remedies::impersonation_not_working(
            upn,
            mailbox,
            &ctx.desired.spec_path,
            "ErrorImpersonateUserDenied",
        ),
        EwsError::Unauthorized { .. } => remedies::account_ews_sign_in_rejected(
            upn,
            &ctx.desired.account.password().to_string(),
            &error.to_string(),
        ),
        _ => Diagnosis::other(
            error.to_string(),
            "check the EWS URL and the server, then run apply again",
        ),
    }
}

async fn check_token(
    ctx: &Context,
    credential: &Arc<AppCredential>,
    policy: &ReplicationPolicy,
) -> CheckOutcome {
    let client_id = credential.identity().client_id.clone();
    match credential
        .token_after_registration(
            EXCHANGE_ONLINE_SCOPE,
            policy,
            ctx.options.on_replication_wait.as_ref(),
        )
        .await
    {
        Ok(_) => CheckOutcome::Passed {
            detail: format!("application {client_id} gets tokens"),
        },
        Err(error) => match classify::token(&error, "the credential file") {
            Some(diagnosis) if error.may_be_replication() && !policy.timeout.is_zero() => {
                CheckOutcome::Failed(remedies::not_replicated(
                    &format!("a token for application {client_id}"),
                    policy.timeout,
                    &diagnosis.message,
                ))
            }
            Some(diagnosis) => CheckOutcome::Failed(diagnosis),
            None => CheckOutcome::Unknown {
                reason: error.to_string(),
            },
        },
    }
}

fn app_registered(actions: &[Action], steps: &[StepReport]) -> CheckOutcome {
    // A manual registration has no service principal action: its tokens prove it exists.
    for resource in [
        Resource::Application,
        Resource::AppCredential,
        Resource::ServicePrincipal,
        Resource::Consent,
    ] {
        if !actions.iter().any(|action| action.resource == resource) {
            continue;
        }
        match outcome_of_resource(actions, steps, resource) {
            CheckOutcome::Passed { .. } => {}
            other => return other,
        }
    }
    CheckOutcome::Passed {
        detail: "the application, its service principal and its consent exist".to_owned(),
    }
}

/// Checks that the application opens the cloud mailbox `mailbox`, over the path the
/// spec's `mailAccess` names (EWS first for `auto`), without waiting for replication.
pub async fn check_cloud_mailbox(
    ctx: &Context,
    client_id: &str,
    observed: &Observed,
    mailbox: &str,
) -> (CheckOutcome, Option<CloudMailPath>) {
    let Some(registration) = &ctx.desired.app_registration else {
        return (
            CheckOutcome::Unknown {
                reason: "the spec's environment is onPremises".to_owned(),
            },
            None,
        );
    };
    let credential = match ctx.application_credential(client_id) {
        Ok(credential) => credential,
        Err(error) => {
            return (
                CheckOutcome::Failed(classify::credential(&error).unwrap_or_else(|| {
                    Diagnosis::other(error.to_string(), "fix the spec's credential")
                })),
                None,
            );
        }
    };
    let no_wait = ReplicationPolicy {
        timeout: std::time::Duration::ZERO,
        ..ctx.options.replication
    };
    check_cloud_mail(
        ctx,
        credential,
        registration.mail_access,
        observed,
        &[mailbox.to_owned()],
        &no_wait,
    )
    .await
}

/// Checks EWS or Graph for a cloud mailbox, by the spec's `mailAccess`. `auto` tries EWS
/// when Exchange Online is not known to block it, and Graph otherwise.
async fn check_cloud_mail(
    ctx: &Context,
    credential: Arc<AppCredential>,
    mail_access: MailAccess,
    observed: &Observed,
    candidates: &[String],
    policy: &ReplicationPolicy,
) -> (CheckOutcome, Option<CloudMailPath>) {
    if candidates.is_empty() {
        return (
            CheckOutcome::Unknown {
                reason: remedies::no_sample_mailbox("cloud").to_string(),
            },
            None,
        );
    }
    let client_id = credential.identity().client_id.clone();
    let ews_blocked = observed
        .cloud
        .as_ref()
        .and_then(|cloud| cloud.exchange_online.as_ref())
        .and_then(|settings| settings.as_ref().ok())
        .is_some_and(|settings| !settings.allows(Some(&client_id)));

    match mail_access {
        MailAccess::Graph => (
            check_graph_mail(ctx, credential, candidates, policy).await,
            Some(CloudMailPath::Graph),
        ),
        MailAccess::Ews => (
            check_ews_mail(ctx, credential, candidates, policy).await,
            Some(CloudMailPath::Ews),
        ),
        MailAccess::Auto if ews_blocked => (
            check_graph_mail(ctx, credential, candidates, policy).await,
            Some(CloudMailPath::Graph),
        ),
        MailAccess::Auto => match check_ews_mail(ctx, credential.clone(), candidates, policy).await
        {
            CheckOutcome::Failed(diagnosis)
                if diagnosis.kind == remedies::FailureKind::EwsNotAllowListed =>
            {
                info!(%client_id, "EWS is blocked for the application; checking Microsoft Graph");
                (
                    check_graph_mail(ctx, credential, candidates, policy).await,
                    Some(CloudMailPath::Graph),
                )
            }
            outcome => (outcome, Some(CloudMailPath::Ews)),
        },
    }
}

async fn check_ews_mail(
    ctx: &Context,
    credential: Arc<AppCredential>,
    candidates: &[String],
    policy: &ReplicationPolicy,
) -> CheckOutcome {
    let Some(registration) = &ctx.desired.app_registration else {
        return CheckOutcome::Unknown {
            reason: "no appRegistration".to_owned(),
        };
    };
    let client_id = credential.identity().client_id.clone();
    let client = match EwsClient::new(
        registration.endpoints.exchange_online_ews.clone(),
        EwsAuth::Bearer {
            credential,
            scope: EXCHANGE_ONLINE_SCOPE.to_owned(),
        },
        &EwsClientOptions {
            http: ctx.cloud_http(),
            ..EwsClientOptions::default()
        },
    ) {
        Ok(client) => client,
        Err(error) => {
            return CheckOutcome::Unknown {
                reason: error.to_string(),
            };
        }
    };

    for mailbox in candidates {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match client.get_sent_items_folder(mailbox).await {
                Ok(folder) => {
                    return CheckOutcome::Passed {
                        detail: format!(
                            "EWS of Exchange Online opened Sent Items of {mailbox} ({})",
                            item_count(folder.total_count.unwrap_or_default())
                        ),
                    };
                }
                Err(EwsError::NonExistentMailbox { .. }) => break,
                Err(EwsError::Forbidden { .. }) => {
                    return CheckOutcome::Failed(remedies::ews_not_allow_listed(&client_id));
                }
                // A token without `full_access_as_app` is what new consent looks like until
                // it reaches Exchange Online.
                Err(error @ EwsError::Unauthorized { .. }) => {
                    attempt += 1;
                    let Some(delay) = policy.next_delay(attempt, started.elapsed()) else {
                        return CheckOutcome::Failed(remedies::ews_missing_full_access(
                            &client_id,
                            &error.to_string(),
                        ));
                    };
                    report_wait(
                        ctx,
                        &format!("EWS access of application {client_id}"),
                        attempt,
                        started,
                        delay,
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(EwsError::Token { source, .. }) => {
                    return match TokenError::find(&source)
                        .and_then(|error| classify::token(error, "the credential file"))
                    {
                        Some(diagnosis) => CheckOutcome::Failed(diagnosis),
                        None => CheckOutcome::Unknown {
                            reason: source.to_string(),
                        },
                    };
                }
                Err(error) => {
                    warn!(%mailbox, %error, "EWS check of a cloud mailbox failed");
                    return CheckOutcome::Failed(Diagnosis::other(
                        error.to_string(),
                        "check appRegistration.endpoints.exchangeOnlineEws and run apply again",
                    ));
                }
            }
        }
    }
    CheckOutcome::Unknown {
        reason: remedies::no_sample_mailbox("cloud").to_string(),
    }
}

async fn check_graph_mail(
    ctx: &Context,
    credential: Arc<AppCredential>,
    candidates: &[String],
    policy: &ReplicationPolicy,
) -> CheckOutcome {
    let client_id = credential.identity().client_id.clone();
    let graph = match ctx.graph(credential) {
        Ok(graph) => graph,
        Err(error) => {
            return CheckOutcome::Unknown {
                reason: error.to_string(),
            };
        }
    };
    for mailbox in candidates {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match graph
                .find_sent_items_by_internet_message_id(mailbox, PROBE_MESSAGE_ID, None)
                .await
            {
                Ok(_) => {
                    return CheckOutcome::Passed {
                        detail: format!("Microsoft Graph read Sent Items of {mailbox}"),
                    };
                }
                // A mailbox that Exchange Online does not host returns 404
                // (MailboxNotEnabledForRESTAPI or ResourceNotFound).
                Err(error) if error.is_not_found() || error.status() == Some(404) => break,
                // New consent takes a while to reach Exchange Online.
                Err(error) if error.is_authorization_denied() || error.status() == Some(403) => {
                    attempt += 1;
                    let Some(delay) = policy.next_delay(attempt, started.elapsed()) else {
                        return CheckOutcome::Failed(remedies::graph_mail_refused(
                            &client_id,
                            mailbox,
                            &error.to_string(),
                        ));
                    };
                    report_wait(
                        ctx,
                        &format!("Graph mail access of application {client_id}"),
                        attempt,
                        started,
                        delay,
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    warn!(%mailbox, %error, "Graph check of a cloud mailbox failed");
                    return CheckOutcome::Failed(Diagnosis::other(
                        error.to_string(),
                        "check appRegistration.endpoints.graph and run apply again",
                    ));
                }
            }
        }
    }
    CheckOutcome::Unknown {
        reason: remedies::no_sample_mailbox("cloud").to_string(),
    }
}

/// Formats a folder's item count with the noun in the right number: "1 item", "3 items".
fn item_count(count: u32) -> String {
    if count == 1 {
        "1 item".to_owned()
    } else {
        format!("{count} items")
    }
}
