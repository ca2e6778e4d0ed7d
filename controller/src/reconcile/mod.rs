//! The reconciler: reads live state from every provider, compares it with the spec, plans,
//! applies and reports.
//!
//! `plan` = observe → view → actions. `apply` runs the actions' steps in dependency order
//! and then verifies the result. `status` reports conditions. Reads that fail become
//! unknown values and unknown actions, never drift.

pub mod applied;
pub mod decide;
pub mod observed;
pub mod permissions;
pub mod plan;
pub mod remedies;
pub mod settings;
pub mod status;
pub mod view;
