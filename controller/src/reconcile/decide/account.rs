//! The service account and its ApplicationImpersonation role.

use siu_specs::DesiredState;
use siu_specs::desired::{AccountProvisioning, Impersonation};

use super::{Decision, blocked, failed_read, unknown};
use crate::reconcile::observed::{AccountState, ImpersonationState, Observed, PasswordState, Read};
use crate::reconcile::plan::{Action, ActionKind, Resource, Step};
use crate::reconcile::remedies::{self, Diagnosis, FailureKind};
use crate::reconcile::view::Value;

pub(super) fn decide_account(
    desired: &DesiredState,
    account: &Read<Option<AccountState>>,
    decision: &mut Decision,
) -> Action {
    let upn = desired.account.upn.as_str();
    let managed = matches!(
        desired.account.provisioning,
        AccountProvisioning::Create { .. }
    );
    let yes = || Value::flag(true);

    let state = match account {
        Err(failure) => {
            for key in ["exists", "enabled", "domainUsers"] {
                decision.line(&format!("account.{key}"), yes(), unknown(failure));
            }
            decision.line("account.password", Value::of("usable"), unknown(failure));
            return failed_read(Resource::Account, upn, failure);
        }
        Ok(None) => {
            decision.line("account.exists", yes(), Value::flag(false));
            decision.line("account.enabled", yes(), Value::Absent);
            decision.line("account.domainUsers", yes(), Value::Absent);
            decision.line("account.password", Value::of("usable"), Value::Absent);
            return match &desired.account.provisioning {
                AccountProvisioning::Create { container, .. } => Action::new(
                    Resource::Account,
                    upn,
                    ActionKind::Create,
                    format!("no account {upn} in AD: create it in {container}"),
                )
                .with_steps(vec![Step::CreateAccount]),
                AccountProvisioning::Existing { .. } => {
                    blocked(Resource::Account, upn, remedies::account_missing(upn))
                }
            };
        }
        Ok(Some(state)) => state,
    };

    decision.line("account.exists", yes(), yes());
    decision.line("account.enabled", yes(), Value::flag(state.enabled));
    let domain_users = match &state.domain_users {
        Ok(member) => Value::flag(*member),
        Err(failure) => unknown(failure),
    };
    decision.line("account.domainUsers", yes(), domain_users);
    decision.line(
        "account.password",
        Value::of("usable"),
        password_value(&state.password),
    );

    if state.found_by_address {
        return blocked(
            Resource::Account,
            upn,
            remedies::account_upn_mismatch(upn, state.upn.as_deref(), &state.dn),
        );
    }
    if let Err(failure) = &state.domain_users {
        return failed_read(Resource::Account, upn, failure);
    }
    if let PasswordState::Unknown(failure) = &state.password {
        return failed_read(Resource::Account, upn, failure);
    }
    if state.locked_out {
        return blocked(
            Resource::Account,
            upn,
            remedies::account_locked_out(upn, &state.dn),
        );
    }

    // Each problem, with the step that fixes it when siuctl manages the account.
    let reference = desired.account.password().to_string();
    let mut reasons = Vec::new();
    let mut steps = Vec::new();
    if !state.enabled {
        if !managed {
            return blocked(
                Resource::Account,
                upn,
                remedies::account_disabled(upn, &state.dn),
            );
        }
        reasons.push("account disabled in AD: enable it".to_owned());
        steps.push(Step::EnableAccount);
    }
    if state.domain_users == Ok(false) {
        if !managed {
            return blocked(
                Resource::Account,
                upn,
                Diagnosis::other(
                    format!("account {upn} is not a member of Domain Users"),
                    "add it to Domain Users, or set account.create: true to let siuctl manage the account",
                ),
            );
        }
        reasons.push("not a member of Domain Users: add it".to_owned());
        steps.push(Step::AddToDomainUsers);
    }
    match &state.password {
        PasswordState::Usable | PasswordState::Unknown(_) => {}
        PasswordState::Staged => {
            if let AccountProvisioning::Create { password_file, .. } = &desired.account.provisioning
            {
                reasons.push(format!(
                    "an interrupted apply set a password and staged it next to {}: keep it",
                    password_file.display()
                ));
                steps.push(Step::FinishSecretWrite {
                    file: password_file.clone(),
                });
            }
        }
        // A disabled account refuses every bind, so its password stays unchecked until it
        // is enabled, and the next plan checks it.
        PasswordState::Rejected {
            account_disabled: true,
            ..
        } => {}
        PasswordState::Rejected { reason, .. } if managed => {
            reasons.push(format!(
                "AD rejects the password in {reference} ({reason}): set a new one"
            ));
            steps.push(Step::ResetAccountPassword);
        }
        PasswordState::Rejected { reason, .. } => {
            return blocked(
                Resource::Account,
                upn,
                remedies::account_password_rejected(upn, &reference, reason),
            );
        }
        PasswordState::Unreadable { reason } if managed => {
            reasons.push(format!(
                "password file unreadable ({reason}): set a new password and write it"
            ));
            steps.push(Step::ResetAccountPassword);
        }
        PasswordState::Unreadable { reason } => {
            return blocked(
                Resource::Account,
                upn,
                remedies::account_password_unreadable(upn, &reference, reason),
            );
        }
    }

    if steps.is_empty() {
        Action::new(
            Resource::Account,
            upn,
            ActionKind::NoChange,
            "account exists, is enabled, is in Domain Users and its password works",
        )
    } else {
        Action::new(
            Resource::Account,
            upn,
            ActionKind::Update,
            reasons.join("; "),
        )
        .with_steps(steps)
    }
}

fn password_value(password: &PasswordState) -> Value {
    match password {
        PasswordState::Usable => Value::of("usable"),
        PasswordState::Staged => Value::of("staged by an interrupted apply"),
        PasswordState::Unreadable { .. } => Value::of("unreadable"),
        PasswordState::Rejected {
            account_disabled: true,
            ..
        } => Value::of("unchecked (account disabled)"),
        PasswordState::Rejected { .. } => Value::of("rejected"),
        PasswordState::Unknown(failure) => unknown(failure),
    }
}

/// Returns the action for a management scope that is missing or unread, which blocks the
/// role assignment whether or not the account exists yet.
fn management_scope_problem(observed: &Observed, upn: &str, scope: Option<&str>) -> Option<Action> {
    match (&observed.management_scope, scope) {
        (Some(Err(failure)), _) => Some(failed_read(Resource::Impersonation, upn, failure)),
        (Some(Ok(false)), Some(scope)) => Some(blocked(
            Resource::Impersonation,
            upn,
            remedies::management_scope_missing(scope),
        )),
        _ => None,
    }
}

pub(super) fn decide_impersonation(
    desired: &DesiredState,
    observed: &Observed,
    account: &Action,
    decision: &mut Decision,
) -> Action {
    let upn = desired.account.upn.as_str();
    let scope = desired.account.management_scope.as_deref();
    let grant = desired.account.impersonation == Impersonation::Grant;
    let desired_scope = Value::of(scope.unwrap_or("(none)"));
    let command = remedies::grant_impersonation_command(upn, scope);

    let state: &ImpersonationState = match &observed.impersonation {
        None => {
            // The role assignments are read only for an account that exists, so a failed
            // account read is why they were not read.
            if let Err(failure) = &observed.account {
                decision.line(
                    "impersonation.assigned",
                    Value::flag(true),
                    unknown(failure),
                );
                decision.line("impersonation.scope", desired_scope, unknown(failure));
                let mut action = failed_read(Resource::Impersonation, upn, failure);
                action.reason = format!(
                    "not read, because the account could not be read: {}",
                    action.reason
                );
                return action;
            }
            decision.line("impersonation.assigned", Value::flag(true), Value::Absent);
            decision.line("impersonation.scope", desired_scope, Value::Absent);
            if account.kind == ActionKind::Create
                && let Some(problem) = management_scope_problem(observed, upn, scope)
            {
                return problem;
            }
            return match account.kind {
                ActionKind::Create if grant => Action::new(
                    Resource::Impersonation,
                    upn,
                    ActionKind::Create,
                    "the new account needs ApplicationImpersonation: assign it",
                )
                .with_steps(vec![Step::GrantImpersonation]),
                ActionKind::Create => blocked(
                    Resource::Impersonation,
                    upn,
                    remedies::impersonation_not_granted(
                        upn,
                        scope,
                        "impersonation: verifyOnly, and the account does not exist yet",
                    ),
                ),
                _ => Action::new(
                    Resource::Impersonation,
                    upn,
                    ActionKind::Blocked,
                    "not read, because the account is missing",
                )
                .with_remedy("fix the account first")
                .with_failure(FailureKind::AccountMissing),
            };
        }
        Some(Err(failure)) => {
            decision.line(
                "impersonation.assigned",
                Value::flag(true),
                unknown(failure),
            );
            decision.line("impersonation.scope", desired_scope, unknown(failure));
            return failed_read(Resource::Impersonation, upn, failure);
        }
        Some(Ok(state)) => state,
    };

    let matching = state.assignments.iter().find(|assignment| {
        assignment.enabled
            && match (&assignment.scope, scope) {
                (None, None) => true,
                (Some(live), Some(wanted)) => live.eq_ignore_ascii_case(wanted),
                _ => false,
            }
    });
    let live_scopes: Vec<&str> = state
        .assignments
        .iter()
        .filter(|a| a.enabled)
        .map(|a| a.scope.as_deref().unwrap_or("(none)"))
        .collect();
    decision.line(
        "impersonation.assigned",
        Value::flag(true),
        Value::flag(matching.is_some()),
    );
    decision.line(
        "impersonation.scope",
        desired_scope,
        match matching {
            Some(assignment) => Value::of(assignment.scope.as_deref().unwrap_or("(none)")),
            None if live_scopes.is_empty() => Value::Absent,
            None => Value::of(live_scopes.join(", ")),
        },
    );

    if let Some(problem) = management_scope_problem(observed, upn, scope) {
        return problem;
    }

    if let Some(assignment) = matching {
        return Action::new(
            Resource::Impersonation,
            upn,
            ActionKind::NoChange,
            format!(
                "ApplicationImpersonation assigned ({}{})",
                assignment.name,
                assignment
                    .scope
                    .as_deref()
                    .map(|s| format!(", scope {s}"))
                    .unwrap_or_default()
            ),
        );
    }

    let missing = match (scope, live_scopes.is_empty()) {
        (_, true) => format!("no ApplicationImpersonation assignment for {upn}"),
        (Some(scope), false) => format!(
            "ApplicationImpersonation is assigned with scope {}, not {scope}",
            live_scopes.join(", ")
        ),
        (None, false) => format!(
            "ApplicationImpersonation is assigned only with scope {}, the spec asks for none",
            live_scopes.join(", ")
        ),
    };
    if grant {
        Action::new(
            Resource::Impersonation,
            upn,
            ActionKind::Create,
            format!("{missing}: assign it"),
        )
        .with_steps(vec![Step::GrantImpersonation])
    } else {
        Action::new(
            Resource::Impersonation,
            upn,
            ActionKind::Blocked,
            format!("{missing}, and impersonation is verifyOnly"),
        )
        .with_remedy(format!(
            "an Exchange administrator runs in the Exchange Management Shell: {command}"
        ))
        .with_failure(FailureKind::ImpersonationNotGranted)
    }
}
