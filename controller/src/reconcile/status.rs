//! Conditions and the status file that `apply` writes into the state directory.
//!
//! A condition is one fact about the service (the account is ready, impersonation works, the
//! application authenticates) with a status, a machine-readable reason, a message for people
//! and the time it last changed, in the style of Kubernetes conditions. `siuctl apply`
//! writes them from its checks, and `siuctl status` prints them.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The facts `status` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConditionType {
    /// The service account exists, is enabled, is in Domain Users and its password works.
    AccountReady,
    /// ApplicationImpersonation is assigned to the account.
    ImpersonationGranted,
    /// Impersonation was tested on a mailbox and works.
    ImpersonationWorks,
    /// The Entra application, its service principal and consent exist.
    AppRegistered,
    /// The application gets tokens with its credential.
    AppAuthenticates,
    /// EWS or Graph answers for a cloud mailbox with the application's token.
    MailAccessReady,
}

impl ConditionType {
    /// Every condition of an environment, in report order.
    pub fn for_environment(hybrid: bool) -> &'static [ConditionType] {
        const ON_PREMISES: &[ConditionType] = &[
            ConditionType::AccountReady,
            ConditionType::ImpersonationGranted,
            ConditionType::ImpersonationWorks,
        ];
        const HYBRID: &[ConditionType] = &[
            ConditionType::AccountReady,
            ConditionType::ImpersonationGranted,
            ConditionType::ImpersonationWorks,
            ConditionType::AppRegistered,
            ConditionType::AppAuthenticates,
            ConditionType::MailAccessReady,
        ];
        if hybrid { HYBRID } else { ON_PREMISES }
    }
}

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// It holds.
    True,
    /// It does not hold.
    False,
    /// It could not be checked.
    Unknown,
}

/// One condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Which fact.
    #[serde(rename = "type")]
    pub kind: ConditionType,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason: `Ready` when the condition holds, `NotChecked` when it could not
    /// be checked, and otherwise the kind of failure (`AccountDisabled`,
    /// `ManagementScopeMissing`).
    pub reason: String,
    /// What it means, with the remedy when it does not hold.
    pub message: String,
    /// When the status last changed.
    pub last_transition: DateTime<Utc>,
}

impl Condition {
    /// A condition observed now.
    pub fn new(
        kind: ConditionType,
        status: ConditionStatus,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            status,
            reason: reason.into(),
            message: message.into(),
            last_transition: Utc::now(),
        }
    }
}

/// How the last apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApplyResult {
    /// Every step succeeded and every check passed.
    Applied,
    /// Some steps or checks failed with warnings; the rest is applied.
    Degraded,
    /// A step failed; what follows it was not applied.
    Failed,
}

/// The record of the last apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRecord {
    /// When it finished.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub result: ApplyResult,
    /// Fingerprint of the desired view that was applied.
    pub desired_fingerprint: String,
}

/// The contents of `STATE_DIR/status.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusFile {
    /// `metadata.name`.
    pub name: String,
    /// `onPremises` or `hybrid`.
    pub environment: String,
    /// The service account's UPN.
    pub account: String,
    /// The last apply.
    pub last_apply: Option<ApplyRecord>,
    /// When a background reconcile last ran.
    // NOTE: no command sets it yet. `apply` keeps the value it finds and starts a new file
    // without one.
    pub last_reconcile: Option<DateTime<Utc>>,
    /// The scope as the last apply or reconcile resolved it.
    #[serde(default)]
    pub scope: Option<super::plan::ScopeSummary>,
    /// Conditions, in report order.
    pub conditions: Vec<Condition>,
}

impl StatusFile {
    /// The file's path in a state directory.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("status.json")
    }

    /// Reads the status file; `Ok(None)` when it does not exist yet.
    pub fn load(state_dir: &Path) -> std::io::Result<Option<Self>> {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a siuctl status file: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the status file atomically.
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("status serializes");
        crate::fsutil::write_atomic(&Self::path(state_dir), &json, false)
    }

    /// Replaces the conditions, keeping the transition time of each one whose status did not
    /// change.
    pub fn update_conditions(&mut self, observed: Vec<Condition>) {
        let previous = std::mem::take(&mut self.conditions);
        self.conditions = observed
            .into_iter()
            .map(|mut condition| {
                if let Some(old) = previous
                    .iter()
                    .find(|c| c.kind == condition.kind && c.status == condition.status)
                {
                    condition.last_transition = old.last_transition;
                }
                condition
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let then = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid time");
        let mut status = StatusFile {
            name: "contoso".into(),
            environment: "onPremises".into(),
            account: "svc@contoso.com".into(),
            last_apply: None,
            last_reconcile: None,
            scope: None,
            conditions: vec![Condition {
                last_transition: then,
                ..Condition::new(
                    ConditionType::AccountReady,
                    ConditionStatus::True,
                    "Ready",
                    "ready",
                )
            }],
        };
        status.update_conditions(vec![
            Condition::new(
                ConditionType::AccountReady,
                ConditionStatus::True,
                "Ready",
                "ready",
            ),
            Condition::new(
                ConditionType::ImpersonationGranted,
                ConditionStatus::False,
                "NotGranted",
                "not granted",
            ),
        ]);
        assert_eq!(status.conditions[0].last_transition, then);
        assert_ne!(status.conditions[1].last_transition, then);
    }
}
