//! A plan: what the controller would change, resource by resource, and why.
//!
//! The plan is computed from the desired [`View`] and the live one. Each resource gets one
//! [`Action`]: create, update, no change, unknown (a read failed, so nothing is claimed) or
//! blocked (the controller cannot fix it and says who can). Actions carry the [`Step`]s that
//! `apply` runs, in dependency order.
//!
//! A saved plan (`plan --out FILE`) holds no secret: only the views, the actions and the
//! fingerprints that `apply` compares to refuse a plan whose live state has since changed.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use siu_specs::DesiredState;
use siu_specs::desired::Environment;

use super::decide::Decision;
use super::remedies::FailureKind;
use super::view::View;

/// The format version of saved plan files.
pub const PLAN_FORMAT: u32 = 1;

/// The things the controller manages, in dependency order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// The service account in Active Directory.
    Account,
    /// The ApplicationImpersonation role assignment on Exchange Server.
    Impersonation,
    /// The Entra application registration.
    Application,
    /// The application's certificate or client secret.
    AppCredential,
    /// The application's service principal in the tenant.
    ServicePrincipal,
    /// Admin consent: the app role assignments (`full_access_as_app` and Graph permissions).
    Consent,
    /// Exchange Online's EWS settings for the application.
    ExchangeOnlineEws,
    /// The update loop's configuration: scope and options.
    Settings,
}

impl Resource {
    /// The name shown in plans and status.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Account => "account",
            Resource::Impersonation => "impersonation",
            Resource::Application => "application",
            Resource::AppCredential => "appCredential",
            Resource::ServicePrincipal => "servicePrincipal",
            Resource::Consent => "consent",
            Resource::ExchangeOnlineEws => "exchangeOnlineEws",
            Resource::Settings => "settings",
        }
    }
}

/// What the plan does with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionKind {
    /// The resource does not exist and will be created.
    Create,
    /// The resource exists and will be changed.
    Update,
    /// Live state matches the spec.
    NoChange,
    /// A read failed, so the plan claims nothing about this resource.
    Unknown,
    /// The resource differs from the spec in a way the controller cannot change.
    Blocked,
}

impl ActionKind {
    /// The one-character mark in the plan's text.
    pub fn symbol(self) -> char {
        match self {
            ActionKind::Create => '+',
            ActionKind::Update => '~',
            ActionKind::NoChange => '=',
            ActionKind::Unknown => '?',
            ActionKind::Blocked => '!',
        }
    }

    /// The word in the plan's text.
    pub fn word(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Update => "update",
            ActionKind::NoChange => "no change",
            ActionKind::Unknown => "unknown",
            ActionKind::Blocked => "blocked",
        }
    }

    /// Whether applying would change something.
    pub fn is_change(self) -> bool {
        matches!(self, ActionKind::Create | ActionKind::Update)
    }
}

/// One change that `apply` performs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Step {
    /// Create the service account and write its generated password to the spec's file.
    CreateAccount,
    /// Clear ACCOUNTDISABLE on the service account.
    EnableAccount,
    /// Add the service account to Domain Users.
    AddToDomainUsers,
    /// Set a new generated password on the service account and write it to the spec's file.
    ResetAccountPassword,
    /// Move a secret that an interrupted apply staged next to `file` into place. The remote
    /// change that made it valid had succeeded, so only the file write is left.
    FinishSecretWrite {
        /// The secret file the spec names.
        file: PathBuf,
    },
    /// Grant ApplicationImpersonation (with the spec's management scope).
    GrantImpersonation,
    /// Register the Entra application.
    CreateApplication,
    /// Set the application's required permissions.
    UpdateRequiredPermissions,
    /// Generate a certificate, write it with its key, and register it on the application.
    AddCertificate,
    /// Generate a client secret and write it to the spec's file.
    AddClientSecret,
    /// Create the application's service principal.
    CreateServicePrincipal,
    /// Grant one app role with admin consent.
    GrantAppRole {
        /// The resource application (`Microsoft Graph`, `Office 365 Exchange Online`).
        resource: String,
        /// The resource's application ID.
        resource_app_id: String,
        /// The role's value (`full_access_as_app`).
        role: String,
        /// The role's ID.
        role_id: String,
    },
    /// Record the scope and options for the update loop.
    RecordSettings,
}

impl Step {
    /// Tells whether the step is independent of the next steps of its action, so that its
    /// failure leaves them to run. Each app role grant is independent of the others.
    pub fn is_independent(&self) -> bool {
        matches!(self, Step::GrantAppRole { .. })
    }

    /// What the step does, for the apply report.
    pub fn describe(&self) -> String {
        match self {
            Step::CreateAccount => "create the service account".into(),
            Step::EnableAccount => "enable the service account".into(),
            Step::AddToDomainUsers => "add the service account to Domain Users".into(),
            Step::ResetAccountPassword => {
                "set a new password on the service account and write it to the password file".into()
            }
            Step::FinishSecretWrite { file } => format!(
                "keep the secret that an interrupted apply staged for {}",
                file.display()
            ),
            Step::GrantImpersonation => "grant ApplicationImpersonation".into(),
            Step::CreateApplication => "register the application".into(),
            Step::UpdateRequiredPermissions => "set the application's required permissions".into(),
            Step::AddCertificate => "add a certificate to the application".into(),
            Step::AddClientSecret => "add a client secret to the application".into(),
            Step::CreateServicePrincipal => "create the service principal".into(),
            Step::GrantAppRole { resource, role, .. } => {
                format!("grant {role} on {resource} (admin consent)")
            }
            Step::RecordSettings => "record the update loop's scope and options".into(),
        }
    }
}

/// What the plan does with one resource, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The resource.
    pub resource: Resource,
    /// What it is called in the live system (a UPN, an application name).
    pub target: String,
    /// Create, update, no change, unknown or blocked.
    pub kind: ActionKind,
    /// Why, in the administrator's terms ("account disabled in AD: enable it").
    pub reason: String,
    /// What the administrator should do when the action is blocked or unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
    /// The kind of failure that blocks the action, which `apply` records as the reason of
    /// the condition the action decides. `None` for a blocked action reads as `Other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// The changes `apply` makes, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

impl Action {
    /// An action with no steps.
    pub fn new(
        resource: Resource,
        target: impl Into<String>,
        kind: ActionKind,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            resource,
            target: target.into(),
            kind,
            reason: reason.into(),
            remedy: None,
            failure: None,
            steps: Vec::new(),
        }
    }

    /// Adds the steps that carry out the action.
    pub fn with_steps(mut self, steps: Vec<Step>) -> Self {
        self.steps = steps;
        self
    }

    /// Adds the administrator's remedy.
    pub fn with_remedy(mut self, remedy: impl Into<String>) -> Self {
        self.remedy = Some(remedy.into());
        self
    }

    /// Adds the kind of failure that blocks the action.
    pub fn with_failure(mut self, kind: FailureKind) -> Self {
        self.failure = Some(kind);
        self
    }
}

/// A complete plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Saved plan format version.
    pub format: u32,
    /// The spec file.
    pub spec_path: PathBuf,
    /// `metadata.name`.
    pub name: String,
    /// `onPremises` or `hybrid`.
    pub environment: String,
    /// When the plan was made.
    pub created: DateTime<Utc>,
    /// Fingerprint of the desired view and the spec: a changed spec invalidates a saved plan.
    /// The desired view also contains values read from live systems (the client ID of an
    /// application that apply registered, an EWS URL from Autodiscover), so a change of
    /// those changes it too.
    pub desired_fingerprint: String,
    /// Fingerprint of the spec alone, so that a stale saved plan can name what changed.
    /// Plans saved by a siuctl without it have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    /// Fingerprint of the live view: changed live state invalidates a saved plan.
    pub live_fingerprint: String,
    /// The desired view.
    pub desired: View,
    /// The live view.
    pub live: View,
    /// One action per resource, in dependency order.
    pub actions: Vec<Action>,
    /// Findings of the reads that the views leave out, because they change without anyone
    /// changing the setup, such as the number of mailboxes in scope.
    #[serde(default)]
    pub facts: Facts,
}

/// Facts a plan reports beside its actions. They are not part of the live fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    /// The on-premises EWS URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews_url: Option<String>,
    /// The source of the EWS URL: `spec` or `Autodiscover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ews_url_source: Option<String>,
    /// The scope and how many mailboxes it selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSummary>,
}

/// The scope as the directory resolved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSummary {
    /// `all`, `only` or `allExcept`.
    pub mode: String,
    /// Users listed in the spec.
    pub users: usize,
    /// Groups listed in the spec.
    pub groups: usize,
    /// Users with a mail address that the scope selects, when the directory could count
    /// them.
    pub mailboxes: Option<usize>,
}

impl std::fmt::Display for ScopeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.mode.as_str() {
            "all" => f.write_str("all mailboxes")?,
            mode => write!(
                f,
                "{mode} {} {} and {} {}",
                self.users,
                if self.users == 1 { "user" } else { "users" },
                self.groups,
                if self.groups == 1 { "group" } else { "groups" },
            )?,
        }
        if let Some(count) = self.mailboxes {
            write!(
                f,
                " ({count} {} in scope)",
                if count == 1 { "mailbox" } else { "mailboxes" }
            )?;
        }
        Ok(())
    }
}

/// Counts of actions by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Resources to create.
    pub create: usize,
    /// Resources to update.
    pub update: usize,
    /// Resources without change.
    pub no_change: usize,
    /// Resources whose state could not be read.
    pub unknown: usize,
    /// Resources the controller cannot fix.
    pub blocked: usize,
}

impl Plan {
    /// Counts the actions by kind.
    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for action in &self.actions {
            match action.kind {
                ActionKind::Create => summary.create += 1,
                ActionKind::Update => summary.update += 1,
                ActionKind::NoChange => summary.no_change += 1,
                ActionKind::Unknown => summary.unknown += 1,
                ActionKind::Blocked => summary.blocked += 1,
            }
        }
        summary
    }

    /// Whether applying the plan would change anything.
    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| a.kind.is_change())
    }

    /// Whether the plan is complete and applicable: no read failed and nothing is blocked.
    pub fn is_clean(&self) -> bool {
        self.actions
            .iter()
            .all(|a| !matches!(a.kind, ActionKind::Unknown | ActionKind::Blocked))
    }

    /// Returns whether this plan makes the same changes as `fresh`: the same resources,
    /// kinds and steps, in the same order. The fingerprints cover the spec and the live
    /// state but not the steps, so a saved plan whose steps were edited fails only this check.
    pub fn same_changes(&self, fresh: &Plan) -> bool {
        self.actions.len() == fresh.actions.len()
            && self
                .actions
                .iter()
                .zip(&fresh.actions)
                .all(|(saved, fresh)| {
                    saved.resource == fresh.resource
                        && saved.target == fresh.target
                        && saved.kind == fresh.kind
                        && saved.steps == fresh.steps
                })
    }

    /// Names what changed since this saved plan was made, by comparing it with the `fresh`
    /// plan: "the spec", "the live state", both, or the saved plan's own steps.
    pub fn stale_reason(&self, fresh: &Plan) -> &'static str {
        let live_changed = self.live_fingerprint != fresh.live_fingerprint;
        let desired_changed = self.desired_fingerprint != fresh.desired_fingerprint;
        if !live_changed && !desired_changed && !self.same_changes(fresh) {
            return "the saved plan's steps";
        }
        let spec_changed = self
            .spec_fingerprint
            .as_ref()
            .map(|saved| Some(saved) != fresh.spec_fingerprint.as_ref());

        // The desired view contains values read from live systems, so a changed desired
        // view with an unchanged spec is changed live state.
        match spec_changed {
            Some(true) if live_changed => "the spec and the live state",
            Some(true) => "the spec",
            Some(false) => "the live state",
            None if desired_changed => "the spec or the live state",
            None => "the live state",
        }
    }

    /// The plan for people: one line per resource, the diff, the remedies and a summary.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "Plan for `{}` ({}) from {}\n",
            self.name,
            self.environment,
            self.spec_path.display()
        );
        let width = self
            .actions
            .iter()
            .map(|a| a.resource.name().len() + a.target.len() + 1)
            .max()
            .unwrap_or(0);
        for action in &self.actions {
            let label = if action.target.is_empty() {
                action.resource.name().to_string()
            } else {
                format!("{} {}", action.resource.name(), action.target)
            };
            let _ = writeln!(
                text,
                "  {} {label:<width$}  {}: {}",
                action.kind.symbol(),
                action.kind.word(),
                action.reason,
            );
            for step in &action.steps {
                let _ = writeln!(text, "      - {}", step.describe());
            }
            if let Some(remedy) = &action.remedy {
                let _ = writeln!(text, "      remedy: {remedy}");
            }
        }
        if let Some(url) = &self.facts.ews_url {
            let source = self.facts.ews_url_source.as_deref().unwrap_or("spec");
            let _ = writeln!(text, "\nEWS on-premises: {url} (from {source})");
        }
        if let Some(scope) = &self.facts.scope {
            let _ = writeln!(text, "Scope: {scope}");
        }
        let diff = View::diff(&self.live, &self.desired);
        if !diff.is_empty() {
            let _ = write!(text, "\nDesired compared with live:\n{diff}");
        }
        let s = self.summary();
        let _ = writeln!(
            text,
            "\nPlan: {} to create, {} to update, {} unchanged, {} unknown, {} blocked.",
            s.create, s.update, s.no_change, s.unknown, s.blocked
        );
        if !self.has_changes() && self.is_clean() {
            text.push_str("No changes: live state matches the spec.\n");
        }
        text
    }
}

/// The fingerprint of a view: SHA-256 of its rendering.
pub fn fingerprint(view: &View) -> String {
    hex(&Sha256::digest(view.render().as_bytes()))
}

/// Computes the fingerprint of a spec: SHA-256 of its desired view and of every normalized
/// value, so that a change a view leaves out (a URL, a timeout) invalidates a saved plan too.
pub fn desired_fingerprint(desired: &DesiredState, view: &View) -> String {
    let mut hasher = Sha256::new();
    hasher.update(view.render().as_bytes());
    hasher.update(serde_json::to_vec(desired).expect("the desired state serializes"));
    hex(&hasher.finalize())
}

/// Computes the fingerprint of a spec alone: SHA-256 of its normalized values.
pub fn spec_fingerprint(desired: &DesiredState) -> String {
    let json = serde_json::to_vec(desired).expect("the desired state serializes");
    hex(&Sha256::digest(&json))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Plan {
    /// Builds the plan of a decision about `desired`.
    pub fn new(desired: &DesiredState, decision: Decision) -> Self {
        Plan {
            format: PLAN_FORMAT,
            spec_path: desired.spec_path.clone(),
            name: desired.name.clone(),
            environment: match desired.environment {
                Environment::OnPremises => "onPremises",
                Environment::Hybrid => "hybrid",
            }
            .to_owned(),
            created: Utc::now(),
            desired_fingerprint: desired_fingerprint(desired, &decision.desired),
            spec_fingerprint: Some(spec_fingerprint(desired)),
            live_fingerprint: fingerprint(&decision.live),
            desired: decision.desired,
            live: decision.live,
            actions: decision.actions,
            facts: decision.facts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::view::Value;

    fn plan(actions: Vec<Action>) -> Plan {
        let mut desired = View::default();
        desired.set("account.enabled", Value::flag(true));
        let mut live = View::default();
        live.set("account.enabled", Value::flag(false));
        Plan {
            format: PLAN_FORMAT,
            spec_path: "spec.yaml".into(),
            name: "contoso".into(),
            environment: "onPremises".into(),
            created: Utc::now(),
            desired_fingerprint: fingerprint(&desired),
            spec_fingerprint: None,
            live_fingerprint: fingerprint(&live),
            desired,
            live,
            actions,
            facts: Facts::default(),
        }
    }

    #[test]
    fn rendering_names_reason_steps_and_summary() {
        let plan = plan(vec![
            Action::new(
                Resource::Account,
                "svc@contoso.com",
                ActionKind::Update,
                "account disabled in AD: enable it",
            )
            .with_steps(vec![Step::EnableAccount]),
        ]);
        let text = plan.render();
        assert!(text.contains("~ account svc@contoso.com"), "{text}");
        assert!(text.contains("enable the service account"), "{text}");
        assert!(text.contains("-account.enabled: no"), "{text}");
        assert!(text.contains("Plan: 0 to create, 1 to update"), "{text}");
    }

    #[test]
    fn unknown_is_neither_change_nor_clean() {
        let plan = plan(vec![Action::new(
            Resource::Impersonation,
            "svc@contoso.com",
            ActionKind::Unknown,
            "Get-ManagementRoleAssignment failed",
        )]);
        assert!(!plan.has_changes());
        assert!(!plan.is_clean());
    }

    #[test]
    fn stale_reason_tells_spec_from_live_state() {
        let mut saved = plan(Vec::new());
        saved.spec_fingerprint = Some("spec".into());
        let base = saved.clone();
        let fresh_with = |spec: &str, desired: &str, live: &str| Plan {
            spec_fingerprint: Some(spec.into()),
            desired_fingerprint: desired.into(),
            live_fingerprint: live.into(),
            ..base.clone()
        };
        let desired = saved.desired_fingerprint.clone();
        let live = saved.live_fingerprint.clone();

        // A registered application changes the live view and, through its client ID, the
        // desired view, but not the spec.
        let registered = fresh_with("spec", "other view", "other live");
        assert_eq!(saved.stale_reason(&registered), "the live state");
        // Another EWS URL from Autodiscover changes only the desired view.
        let only_view = fresh_with("spec", "other view", &live);
        assert_eq!(saved.stale_reason(&only_view), "the live state");
        let edited = fresh_with("other spec", "other view", &live);
        assert_eq!(saved.stale_reason(&edited), "the spec");
        let both = fresh_with("other spec", "other view", "other live");
        assert_eq!(saved.stale_reason(&both), "the spec and the live state");

        saved.spec_fingerprint = None;
        let view = fresh_with("spec", "other view", &live);
        assert_eq!(saved.stale_reason(&view), "the spec or the live state");
        let live_only = fresh_with("spec", &desired, "other live");
        assert_eq!(saved.stale_reason(&live_only), "the live state");
    }

    #[test]
    fn saved_plan_round_trips() {
        let plan = plan(vec![
            Action::new(
                Resource::Consent,
                "app",
                ActionKind::Create,
                "not consented",
            )
            .with_steps(vec![Step::GrantAppRole {
                resource: "Office 365 Exchange Online".into(),
                resource_app_id: "00000002-0000-0ff1-ce00-000000000000".into(),
                role: "full_access_as_app".into(),
                role_id: "dc890d15-9560-4a4c-9b7f-a736ec74ec40".into(),
            }]),
        ]);
        let json = serde_json::to_string(&plan).expect("plan serializes");
        let back: Plan = serde_json::from_str(&json).expect("plan deserializes");
        assert_eq!(back, plan);
    }
}
