//! The reconciler: reads live state from every provider, compares it with the spec, plans,
//! applies and reports.
//!
//! `plan` = observe → view → actions. `apply` runs the actions' steps in dependency order
//! and then verifies the result. `status` reports conditions. Reads that fail become
//! unknown values and unknown actions, never drift.

pub mod applied;
pub mod apply;
pub mod classify;
pub mod context;
pub mod decide;
pub mod export;
pub mod observe;
pub mod observed;
pub mod permissions;
pub mod plan;
pub mod remedies;
pub mod secrets;
pub mod settings;
pub mod status;
pub mod verify;
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
