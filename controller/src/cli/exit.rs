//! Exit codes of `siuctl`, defined once for every subcommand.

use std::process::ExitCode;

/// Exit status of `siuctl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did what was asked, and every spec checked is valid.
    Success = 0,
    /// The command failed, a spec is invalid, or the result needs an administrator: a
    /// read failed, an action is blocked, or an apply ended degraded.
    Failure = 1,
    /// `plan --detailed-exitcode` only: the plan is complete and has changes to apply.
    Changes = 2,
    /// The command line is wrong (unknown flag, missing argument). This is sysexits.h's
    /// `EX_USAGE` rather than clap's default 2, because 2 is kept for `plan`'s "changes
    /// pending", as in `terraform plan -detailed-exitcode`.
    Usage = 64,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}
