//! siuctl: the declarative Sent Items Update controller.

/// The command-line interface.
pub mod cli;
/// Atomic file writes.
pub mod fsutil;
/// The HTTP client settings every provider shares.
pub mod http;
/// Clients for Active Directory, Exchange and Entra ID.
pub mod providers;
/// Observing, planning, applying and reporting.
pub mod reconcile;
/// The update loop that rewrites sent messages in Sent Items.
pub mod update;
