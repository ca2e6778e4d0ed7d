//! The update loop: replaces each sent message in its sender's Sent Items with the version
//! the rules engine processed, exactly once, without losing a message.
//!
//! Input is the spool directory of `docs/spool.md`. For each file the loop decides whose
//! Sent Items holds the original ([`routing`], [`recipients`]), whether that mailbox is in
//! scope ([`scope`]), and rewrites it ([`replace`]) through the path for the mailbox's
//! location ([`store`]). [`engine`] schedules the files, retries with back-off
//! ([`throttle`]) and keeps per-message state on disk ([`state`]), and [`runtime`] builds
//! what it works with from the applied configuration.

pub mod cloud;
pub mod directory;
pub mod engine;
pub mod message;
pub mod metrics;
pub mod outcome;
pub mod progress;
pub mod recipients;
pub mod replace;
pub mod routing;
pub mod runtime;
pub mod scope;
pub mod spool;
pub mod state;
pub mod store;
#[cfg(test)]
pub(crate) mod test_support;
pub mod throttle;

pub use engine::{LoopError, LoopOptions, UpdateLoop};
pub use outcome::{Outcome, Summary};
pub use runtime::Runtime;

/// Returns an error with its sources, separated by `: `, as `{:#}` prints an
/// `anyhow::Error`, so that logs and reason files show the cause at the bottom.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their source's text in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
