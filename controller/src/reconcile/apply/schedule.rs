//! Runs the steps of a plan in dependency order, skipping what depends on a failure.
//!
//! Actions come in the plan's order, which is dependency order. The steps of one action run
//! one after the other. A failure marks its resource as failed and skips the action's
//! remaining steps, unless the failed step is independent of them (one app role grant of
//! several). An action whose resource depends on a failed one is skipped with the
//! reason. Nothing is rolled back: what succeeded stays applied.

use std::collections::HashSet;

use serde::Serialize;
use tracing::{Instrument, info_span};

use crate::reconcile::plan::{Action, Resource, Step};
use crate::reconcile::remedies::Diagnosis;

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum StepOutcome {
    /// The change was made.
    Done {
        /// The change, such as the new object's ID.
        detail: String,
    },
    /// The change was made, with something the administrator should know.
    Warning {
        /// The thing to know.
        detail: String,
    },
    /// The change failed.
    Failed(Diagnosis),
    /// The step did not run.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl StepOutcome {
    /// Tells whether the step counts as failed for the steps that depend on it.
    pub fn is_failure(&self) -> bool {
        matches!(self, StepOutcome::Failed(_) | StepOutcome::Skipped { .. })
    }
}

/// One step and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// The resource the step belongs to.
    pub resource: Resource,
    /// The resource's name in the live system.
    pub target: String,
    /// The step.
    pub step: Step,
    /// The result.
    pub outcome: StepOutcome,
}

/// Carries out single steps.
#[async_trait::async_trait]
pub trait StepRunner {
    /// Carries out `step` of `resource` and returns the result.
    async fn run(&mut self, resource: Resource, step: &Step) -> StepOutcome;
}

/// Returns the resources whose failure keeps `resource`'s steps from running.
pub fn dependencies(resource: Resource) -> &'static [Resource] {
    match resource {
        Resource::Account | Resource::Application | Resource::ExchangeOnlineEws => &[],
        Resource::Impersonation => &[Resource::Account],
        Resource::AppCredential | Resource::ServicePrincipal => &[Resource::Application],
        Resource::Consent => &[Resource::Application, Resource::ServicePrincipal],
        Resource::Settings => &[Resource::Account, Resource::Application],
    }
}

/// Runs every step of `actions` and calls `report` after each one.
pub async fn run_steps(
    actions: &[Action],
    runner: &mut (dyn StepRunner + Send),
    report: &mut (dyn FnMut(&StepReport) + Send),
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    let mut failed: HashSet<Resource> = HashSet::new();

    for action in actions {
        let blocking_dependency = dependencies(action.resource)
            .iter()
            .find(|dependency| failed.contains(dependency));
        let mut skip_reason = blocking_dependency
            .map(|dependency| format!("skipped because a step of {} failed", dependency.name()));

        for step in &action.steps {
            let outcome = match &skip_reason {
                Some(reason) => StepOutcome::Skipped {
                    reason: reason.clone(),
                },
                None => {
                    let span = info_span!(
                        "step",
                        resource = action.resource.name(),
                        target = %action.target,
                        step = %step.describe()
                    );
                    runner.run(action.resource, step).instrument(span).await
                }
            };
            if let StepOutcome::Failed(_) = &outcome
                && !step.is_independent()
            {
                skip_reason = Some(format!("skipped because \"{}\" failed", step.describe()));
            }
            if outcome.is_failure() {
                failed.insert(action.resource);
            }
            let step_report = StepReport {
                resource: action.resource,
                target: action.target.clone(),
                step: step.clone(),
                outcome,
            };
            report(&step_report);
            reports.push(step_report);
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::plan::ActionKind;

    /// Fails the listed steps and records the order of every step it runs.
    struct Scripted {
        failing: Vec<Step>,
        ran: Vec<Step>,
    }

    #[async_trait::async_trait]
    impl StepRunner for Scripted {
        async fn run(&mut self, _resource: Resource, step: &Step) -> StepOutcome {
            self.ran.push(step.clone());
            if self.failing.contains(step) {
                StepOutcome::Failed(Diagnosis::other("it failed", "fix it"))
            } else {
                StepOutcome::Done {
                    detail: String::new(),
                }
            }
        }
    }

    fn action(resource: Resource, steps: Vec<Step>) -> Action {
        Action::new(resource, "target", ActionKind::Create, "reason").with_steps(steps)
    }

    fn plan() -> Vec<Action> {
        vec![
            action(Resource::Account, vec![Step::CreateAccount]),
            action(Resource::Impersonation, vec![Step::GrantImpersonation]),
            action(Resource::Application, vec![Step::CreateApplication]),
            action(Resource::AppCredential, vec![Step::AddCertificate]),
            action(
                Resource::ServicePrincipal,
                vec![Step::CreateServicePrincipal],
            ),
            action(Resource::Settings, vec![Step::RecordSettings]),
        ]
    }

    async fn run(failing: Vec<Step>) -> (Vec<StepReport>, Vec<Step>) {
        let mut runner = Scripted {
            failing,
            ran: Vec::new(),
        };
        let mut seen = 0;
        let reports = run_steps(&plan(), &mut runner, &mut |_| seen += 1).await;
        assert_eq!(seen, reports.len(), "every step is reported as it ends");
        (reports, runner.ran)
    }

    fn outcome_of<'a>(reports: &'a [StepReport], step: &Step) -> &'a StepOutcome {
        &reports
            .iter()
            .find(|r| &r.step == step)
            .expect("the step is reported")
            .outcome
    }

    #[tokio::test]
    async fn steps_run_in_plan_order() {
        let (reports, ran) = run(Vec::new()).await;

        assert_eq!(ran.len(), 6);
        assert_eq!(ran[0], Step::CreateAccount);
        assert_eq!(ran[5], Step::RecordSettings);
        assert!(reports.iter().all(|r| !r.outcome.is_failure()));
    }

    #[tokio::test]
    async fn failed_grant_leaves_the_rest_applied() {
        let (reports, ran) = run(vec![Step::GrantImpersonation]).await;

        assert!(matches!(
            outcome_of(&reports, &Step::GrantImpersonation),
            StepOutcome::Failed(_)
        ));
        assert!(ran.contains(&Step::CreateApplication));
        assert!(ran.contains(&Step::RecordSettings));
    }

    #[tokio::test]
    async fn failed_application_skips_its_dependents() {
        let (reports, ran) = run(vec![Step::CreateApplication]).await;

        for step in [
            Step::AddCertificate,
            Step::CreateServicePrincipal,
            Step::RecordSettings,
        ] {
            assert!(!ran.contains(&step), "{step:?} should not run");
            assert!(
                matches!(outcome_of(&reports, &step), StepOutcome::Skipped { reason } if reason.contains("application")),
                "{step:?}"
            );
        }
        assert!(ran.contains(&Step::GrantImpersonation));
    }

    #[tokio::test]
    async fn failed_grant_leaves_the_other_grants_running() {
        let grant = |role: &str| Step::GrantAppRole {
            resource: "Microsoft Graph".into(),
            resource_app_id: "00000003-0000-0000-c000-000000000000".into(),
            role: role.into(),
            role_id: "00000000-0000-0000-0000-000000000000".into(),
        };
        let actions = vec![
            action(Resource::Consent, vec![grant("A"), grant("B")]),
            action(Resource::Settings, vec![Step::RecordSettings]),
        ];
        let mut runner = Scripted {
            failing: vec![grant("A")],
            ran: Vec::new(),
        };

        let reports = run_steps(&actions, &mut runner, &mut |_| {}).await;

        assert_eq!(runner.ran, [grant("A"), grant("B"), Step::RecordSettings]);
        assert!(matches!(reports[1].outcome, StepOutcome::Done { .. }));
    }

    #[tokio::test]
    async fn failed_step_skips_the_rest_of_its_action() {
        let actions = vec![action(
            Resource::Account,
            vec![Step::EnableAccount, Step::AddToDomainUsers],
        )];
        let mut runner = Scripted {
            failing: vec![Step::EnableAccount],
            ran: Vec::new(),
        };

        let reports = run_steps(&actions, &mut runner, &mut |_| {}).await;

        assert_eq!(runner.ran, [Step::EnableAccount]);
        assert!(matches!(
            &reports[1].outcome,
            StepOutcome::Skipped { reason } if reason.contains("enable the service account")
        ));
    }
}
