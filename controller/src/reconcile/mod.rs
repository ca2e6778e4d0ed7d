//! The reconciler: reads live state from every provider, compares it with the spec, plans,
//! applies and reports.
//!
//! `plan` = observe → decide → actions and views. `apply` runs the actions' steps in
//! dependency order and then verifies the result. `status` reports conditions. Reads that
//! fail become unknown values and unknown actions, never drift.

/// The configuration last applied, which the update loop runs with.
pub mod applied;
/// Runs a plan's steps, checks the result and records it.
pub mod apply;
/// Provider errors mapped to the failure catalogue.
pub mod classify;
/// The desired state with the clients that reach the systems it describes.
pub mod context;
/// Desired and observed state compared into actions and views.
pub mod decide;
/// The live configuration written as a spec.
pub mod export;
/// Reads of live state from every provider.
pub mod observe;
/// Live state, typed per resource.
pub mod observed;
/// The application permissions the Entra application needs.
pub mod permissions;
/// Plans, actions and steps.
pub mod plan;
/// The catalogue of failures with their messages and remedies.
pub mod remedies;
/// Secret files written so that an interrupted apply can be finished.
pub mod secrets;
/// The update loop's settings as view lines.
pub mod settings;
/// Conditions and the status file.
pub mod status;
/// The checks after apply.
pub mod verify;
/// Flat, comparable views of a configuration.
pub mod view;

use self::context::Context;
use self::observed::Observed;
use self::plan::Plan;

/// Reads the live state and plans the changes that bring it to the spec.
pub async fn plan(ctx: &Context) -> (Plan, Observed) {
    let observed = observe::observe(ctx).await;
    let decision = decide::decide(&ctx.desired, &observed);
    (Plan::new(&ctx.desired, decision), observed)
}
