//! Turns the desired state and the observed live state into one action per resource.
//!
//! Each resource's function returns its [`Action`] and adds its lines to the desired and
//! live [`View`]s, so that the plan's diff and its actions come from the same comparison.
//! The rules:
//!
//! - A read that failed is [`ActionKind::Unknown`], never a change. When the failure is one
//!   the administrator must fix (it carries a [`Diagnosis`]), the action is
//!   [`ActionKind::Blocked`] with that remedy instead.
//! - What siuctl may not change is blocked, with the remedy: an account with
//!   `create: false`, impersonation with `verifyOnly`, a manual application, Exchange
//!   Online's EWS settings.
//! - A resource that depends on a missing one is created without reading it: no
//!   application means its service principal and consent are created too.

mod account;
mod cloud;
#[cfg(test)]
mod tests;

use siu_specs::DesiredState;

use super::observed::{Observed, ReadFailure, ScopeState};
use super::plan::{Action, ActionKind, Facts, Resource, ScopeSummary, Step};
use super::remedies::{self, Diagnosis};
use super::settings::settings_lines;
use super::view::{Value, View};

/// The actions and the two views of a plan.
#[derive(Debug, Clone, Default)]
pub struct Decision {
    /// One action per resource, in dependency order.
    pub actions: Vec<Action>,
    /// The desired view.
    pub desired: View,
    /// The live view.
    pub live: View,
    /// Facts outside the views.
    pub facts: Facts,
}

impl Decision {
    pub(super) fn line(&mut self, key: &str, desired: Value, live: Value) {
        self.desired.set(key, desired);
        self.live.set(key, live);
    }

    /// Returns the action planned for `resource`.
    pub fn action(&self, resource: Resource) -> Option<&Action> {
        self.actions.iter().find(|a| a.resource == resource)
    }
}

/// Compares the desired state with what was observed.
pub fn decide(desired: &DesiredState, observed: &Observed) -> Decision {
    let mut decision = Decision::default();

    let account = account::decide_account(desired, &observed.account, &mut decision);
    let impersonation = account::decide_impersonation(desired, observed, &account, &mut decision);
    decision.actions.push(account);
    decision.actions.push(impersonation);

    let client_id = match (&desired.app_registration, &observed.cloud) {
        (Some(registration), Some(state)) => {
            cloud::decide_cloud(registration, state, &mut decision)
        }
        _ => ClientId::Unknown,
    };

    let settings = decide_settings(desired, observed, client_id.as_deref(), &mut decision);
    decision.actions.push(settings);

    decision.facts = facts(desired, observed);
    decision
}

/// The application's client ID, as far as the reads found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClientId {
    /// Known.
    Known(String),
    /// The application will be created, so its ID is not known yet.
    New,
    /// The read failed.
    Unknown,
}

impl ClientId {
    pub(super) fn as_deref(&self) -> Option<&str> {
        match self {
            ClientId::Known(id) => Some(id),
            _ => None,
        }
    }
}

pub(super) fn unknown(failure: &ReadFailure) -> Value {
    Value::Unknown(failure.reason.clone())
}

/// Builds the action for a failed read: blocked when the failure has a diagnosis, else
/// unknown.
pub(super) fn failed_read(resource: Resource, target: &str, failure: &ReadFailure) -> Action {
    match &failure.diagnosis {
        Some(diagnosis) => blocked(resource, target, diagnosis.clone()),
        None => Action::new(resource, target, ActionKind::Unknown, failure.to_string())
            .with_remedy("fix the read error and plan again; nothing is changed for this resource"),
    }
}

pub(super) fn blocked(resource: Resource, target: &str, diagnosis: Diagnosis) -> Action {
    Action::new(resource, target, ActionKind::Blocked, diagnosis.message)
        .with_remedy(diagnosis.remedy)
        .with_failure(diagnosis.kind)
}

// The update loop's settings.

fn decide_settings(
    desired: &DesiredState,
    observed: &Observed,
    client_id: Option<&str>,
    decision: &mut Decision,
) -> Action {
    let target = desired.name.as_str();
    let ews_url = observed.ews.as_ref().ok().map(|endpoint| &endpoint.url);
    let wanted = settings_lines(desired, ews_url, client_id);

    let applied = match &observed.applied {
        Err(failure) => {
            for (key, value) in &wanted {
                decision.line(key, value.clone(), unknown(failure));
            }
            return failed_read(Resource::Settings, target, failure);
        }
        Ok(applied) => applied,
    };
    let live = applied.as_ref().map(|config| {
        settings_lines(
            &config.desired,
            Some(&config.discovered.ews_url),
            config
                .discovered
                .client_id
                .map(|id| id.to_string())
                .as_deref(),
        )
    });
    let mut changed = Vec::new();
    for (key, value) in &wanted {
        let live_value = live
            .as_ref()
            .and_then(|lines| lines.iter().find(|(k, _)| k == key))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Absent);
        if &live_value != value {
            changed.push(key.trim_start_matches("settings.").to_owned());
        }
        decision.line(key, value.clone(), live_value);
    }

    if let Err(failure) = &observed.ews {
        return failed_read(Resource::Settings, target, failure);
    }
    match &observed.scope {
        Err(failure) => return failed_read(Resource::Settings, target, failure),
        Ok(scope) => {
            if let Some(diagnosis) = scope_problem(scope) {
                return blocked(Resource::Settings, target, diagnosis);
            }
        }
    }

    if let (None, Some(corrupt)) = (applied, &observed.applied_corrupt) {
        return Action::new(
            Resource::Settings,
            target,
            ActionKind::Update,
            format!("{corrupt}: record the settings again"),
        )
        .with_steps(vec![Step::RecordSettings]);
    }
    match (applied, changed.is_empty()) {
        (None, _) => Action::new(
            Resource::Settings,
            target,
            ActionKind::Create,
            "nothing applied yet: record the scope, options and endpoints for the update loop",
        )
        .with_steps(vec![Step::RecordSettings]),
        (Some(_), false) => Action::new(
            Resource::Settings,
            target,
            ActionKind::Update,
            format!("changed since the last apply: {}", changed.join(", ")),
        )
        .with_steps(vec![Step::RecordSettings]),
        (Some(_), true) => Action::new(
            Resource::Settings,
            target,
            ActionKind::NoChange,
            "the update loop runs with these settings",
        ),
    }
}

fn scope_problem(scope: &ScopeState) -> Option<Diagnosis> {
    let missing_user = scope.users.iter().find(|entry| entry.dn.is_none());
    let missing_group = scope.groups.iter().find(|entry| entry.dn.is_none());
    match (missing_user, missing_group) {
        (Some(user), _) => Some(remedies::scope_entry_not_found("users", &user.reference)),
        (None, Some(group)) => Some(remedies::scope_entry_not_found("groups", &group.reference)),
        (None, None) => None,
    }
}

fn facts(desired: &DesiredState, observed: &Observed) -> Facts {
    let mode = match desired.scope.mode {
        siu_specs::desired::ScopeMode::All => "all",
        siu_specs::desired::ScopeMode::Only => "only",
        siu_specs::desired::ScopeMode::AllExcept => "allExcept",
    };
    Facts {
        ews_url: observed.ews.as_ref().ok().map(|e| e.url.to_string()),
        ews_url_source: observed.ews.as_ref().ok().map(|e| e.source.to_owned()),
        scope: Some(ScopeSummary {
            mode: mode.to_owned(),
            users: desired.scope.users.len(),
            groups: desired.scope.groups.len(),
            mailboxes: observed.scope.as_ref().ok().and_then(|s| s.mailboxes),
        }),
    }
}
