//! siuctl: the declarative Sent Items Update controller.

/// The command-line interface.
pub mod cli;
