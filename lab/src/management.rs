//! The Exchange management shell stand-in: runs the cmdlet text the controller sends against
//! the lab's state and prints JSON as `ConvertTo-Json` would.

use crate::LabState;
use crate::control::ManagementResponse;

/// Runs a management script against the on-premises server or Exchange Online.
pub fn execute(state: &LabState, online: bool, script: &str) -> ManagementResponse {
    // TODO: no cmdlet is implemented yet.
    let _ = (state, online, script);
    ManagementResponse {
        stdout: String::new(),
        stderr: "not implemented\n".into(),
        exit_code: 1,
    }
}
