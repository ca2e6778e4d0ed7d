//! Exchange management cmdlets run through a configured command.
//!
//! The controller reads and grants the ApplicationImpersonation role, checks management
//! scopes, reads Exchange Online's EWS settings and looks up mailbox types with Exchange
//! cmdlets. It does not open a PowerShell session itself: the spec's `managementShell.command`
//! names a program and its arguments, the controller writes a short script to the program's
//! standard input, and reads the result as JSON (`ConvertTo-Json`) from standard output. A
//! non-zero exit code with standard error reports a failure, and a timeout kills the command
//! and every process it started.
//!
//! Scripts never contain a password. The command sets up the remote session on its own, with
//! Kerberos as the account that runs `siuctl`, or a certificate for Exchange Online. Every
//! value in a script is a PowerShell single-quoted string (see [`quote`]), and each script
//! starts with `$ErrorActionPreference = 'Stop'`, so a failing cmdlet ends the script with
//! an error instead of writing partial output.
//!
//! # Example commands
//!
//! On-premises, `pwsh` runs a wrapper that opens a remote session to the Exchange server and
//! runs the script from standard input (the full script is `examples/scripts/exchange-onprem-shell.ps1`):
//!
//! ```powershell
//! param([Parameter(Mandatory)] [string] $Server)
//! $script = [Console]::In.ReadToEnd()
//! $session = New-PSSession -ConfigurationName Microsoft.Exchange `
//!     -ConnectionUri "http://$Server/PowerShell/" -Authentication Kerberos
//! Import-PSSession $session -DisableNameChecking -WarningAction SilentlyContinue | Out-Null
//! . ([scriptblock]::Create($script))
//! ```
//!
//! with `onPremises.exchange.managementShell.command: [pwsh, -NoProfile, -NonInteractive, -File,
//! exchange-onprem-shell.ps1, -Server, mail.lab.example]`. For Exchange Online the wrapper
//! (`examples/scripts/exchange-online-shell.ps1`, configured as
//! `appRegistration.exchangeOnlineShell.command`) signs in with `Connect-ExchangeOnline -AppId
//! ... -CertificateThumbprint ... -Organization ...` instead. The lab's stand-in,
//! `siuctl lab exchange-shell --dir DIR [--online]`, accepts the same scripts: the cmdlets
//! below with single-quoted values, `Select-Object` and `ConvertTo-Json`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tracing::{debug, warn};

/// The largest standard output or error that is read from the command, in bytes.
const MAX_OUTPUT_BYTES: u64 = 16 * 1024 * 1024;

/// The properties read from role assignments.
const ROLE_ASSIGNMENT_FIELDS: &str = "Name,Role,RoleAssigneeName,CustomRecipientWriteScope,Enabled";

/// The command that runs Exchange cmdlets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCommand {
    /// The program: a path, or a name to look up in `PATH`.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The directory to run it in; `None` keeps the controller's.
    pub working_dir: Option<PathBuf>,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
}

/// Returns `value` as a PowerShell single-quoted string literal.
///
/// PowerShell treats U+2018, U+2019, U+201A and U+201B like the ASCII apostrophe as
/// single-quote characters, both to open and close a string and, written twice, as a quote
/// inside it. Each of them is therefore doubled. Nothing else is special inside single
/// quotes: `$`, backticks, double quotes and newlines are literal.
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for character in value.chars() {
        if is_single_quote(character) {
            quoted.push(character);
        }
        quoted.push(character);
    }
    quoted.push('\'');
    quoted
}

fn is_single_quote(character: char) -> bool {
    matches!(
        character,
        '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}'
    )
}

/// One cmdlet call with its parameters, piped to `Select-Object` and `ConvertTo-Json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    cmdlet: &'static str,
    text: String,
}

impl Script {
    /// Builds `$ErrorActionPreference = 'Stop'` followed by
    /// `<cmdlet> -Name 'value' ... | Select-Object <fields> | ConvertTo-Json`.
    pub fn new(
        cmdlet: &'static str,
        parameters: &[(&'static str, &str)],
        fields: &str,
    ) -> Result<Self, ManagementError> {
        let mut line = cmdlet.to_owned();
        for (name, value) in parameters {
            if value.contains('\0') {
                return Err(ManagementError::InvalidValue {
                    cmdlet,
                    parameter: name,
                    reason: "contains a NUL character".to_owned(),
                });
            }
            line.push_str(&format!(" -{name} {}", quote(value)));
        }
        line.push_str(&format!(" | Select-Object {fields} | ConvertTo-Json"));
        Ok(Self {
            cmdlet,
            text: format!("$ErrorActionPreference = 'Stop'\n{line}\n"),
        })
    }

    /// Returns the cmdlet name.
    pub fn cmdlet(&self) -> &'static str {
        self.cmdlet
    }

    /// Returns the script text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// An ApplicationImpersonation (or other) management role assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// The assignment's name.
    pub name: String,
    /// The role, such as `ApplicationImpersonation`.
    pub role: String,
    /// The user or group that the role is assigned to.
    pub role_assignee_name: Option<String>,
    /// The management scope that limits which mailboxes the role applies to.
    pub custom_recipient_write_scope: Option<String>,
    /// Whether the assignment is in effect.
    pub enabled: bool,
}

/// A management scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementScope {
    /// The scope's name.
    pub name: String,
    /// The recipient filter, such as `MemberOfGroup -eq '...'`.
    pub recipient_restriction_filter: Option<String>,
}

/// `EwsApplicationAccessPolicy` of the organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EwsApplicationAccessPolicy {
    /// Only applications in `EwsAllowList` may use EWS.
    EnforceAllowList,
    /// Every application except those in `EwsBlockList` may use EWS.
    EnforceBlockList,
    /// Another value, kept as text. Windows PowerShell 5.1 writes enums as numbers.
    Other(String),
}

/// The organization's EWS settings in Exchange Online (`Get-OrganizationConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsSettings {
    /// `EwsEnabled`: `None` when unset.
    pub ews_enabled: Option<bool>,
    /// `EwsAllowedAppIDs`: application IDs allowed to use EWS.
    pub ews_allowed_app_ids: Vec<String>,
    /// `EwsApplicationAccessPolicy`: `None` when unset.
    pub ews_application_access_policy: Option<EwsApplicationAccessPolicy>,
    /// `EwsAllowList`: client names allowed under `EnforceAllowList`.
    pub ews_allow_list: Vec<String>,
}

/// A mailbox and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// `RecipientTypeDetails`, such as `UserMailbox`, `SharedMailbox` or `RemoteUserMailbox`.
    pub recipient_type_details: String,
    /// The primary SMTP address.
    pub primary_smtp_address: Option<String>,
    /// The user principal name.
    pub user_principal_name: Option<String>,
}

/// Runs Exchange cmdlets through a [`ShellCommand`].
#[derive(Debug, Clone)]
pub struct ManagementShell {
    command: ShellCommand,
}

impl ManagementShell {
    /// Creates a shell that runs `command` once per cmdlet.
    pub fn new(command: ShellCommand) -> Self {
        Self { command }
    }

    /// Lists the ApplicationImpersonation assignments of a user (empty when there are none).
    pub async fn impersonation_assignments(
        &self,
        upn: &str,
    ) -> Result<Vec<RoleAssignment>, ManagementError> {
        let script = Script::new(
            "Get-ManagementRoleAssignment",
            &[("Role", "ApplicationImpersonation"), ("RoleAssignee", upn)],
            ROLE_ASSIGNMENT_FIELDS,
        )?;
        let objects = self.run_json(&script).await?;
        objects
            .iter()
            .map(|object| role_assignment(object, script.cmdlet()))
            .collect()
    }

    /// Grants ApplicationImpersonation to a user, optionally limited to a management scope.
    pub async fn grant_impersonation(
        &self,
        assignment_name: &str,
        upn: &str,
        scope: Option<&str>,
    ) -> Result<RoleAssignment, ManagementError> {
        let mut parameters = vec![
            ("Name", assignment_name),
            ("Role", "ApplicationImpersonation"),
            ("User", upn),
        ];
        if let Some(scope) = scope {
            parameters.push(("CustomRecipientWriteScope", scope));
        }
        let script = Script::new(
            "New-ManagementRoleAssignment",
            &parameters,
            ROLE_ASSIGNMENT_FIELDS,
        )?;
        let objects = self.run_json(&script).await?;
        let object = objects
            .first()
            .ok_or_else(|| ManagementError::InvalidOutput {
                cmdlet: script.cmdlet(),
                message: "no role assignment in the output".to_owned(),
            })?;
        let assignment = role_assignment(object, script.cmdlet())?;
        tracing::info!(assignment = %assignment.name, %upn, scope = scope, "granted ApplicationImpersonation");
        Ok(assignment)
    }

    /// Returns the management scope with this name, or `None` when it does not exist.
    pub async fn management_scope(
        &self,
        name: &str,
    ) -> Result<Option<ManagementScope>, ManagementError> {
        let script = Script::new(
            "Get-ManagementScope",
            &[("Identity", name)],
            "Name,RecipientRestrictionFilter",
        )?;
        let Some(objects) = self.run_json_or_not_found(&script).await? else {
            return Ok(None);
        };
        let Some(object) = objects.first() else {
            return Ok(None);
        };
        Ok(Some(ManagementScope {
            name: required_string(object, "Name", script.cmdlet())?,
            recipient_restriction_filter: ps_string(object.get("RecipientRestrictionFilter")),
        }))
    }

    /// Reads the organization's EWS settings (Exchange Online).
    pub async fn ews_settings(&self) -> Result<EwsSettings, ManagementError> {
        let script = Script::new(
            "Get-OrganizationConfig",
            &[],
            "EwsEnabled,EwsAllowedAppIDs,EwsApplicationAccessPolicy,EwsAllowList",
        )?;
        let objects = self.run_json(&script).await?;
        let object = objects
            .first()
            .ok_or_else(|| ManagementError::InvalidOutput {
                cmdlet: script.cmdlet(),
                message: "no organization configuration in the output".to_owned(),
            })?;
        let policy = match object.get("EwsApplicationAccessPolicy") {
            None | Some(Value::Null) => None,
            Some(value) => Some(match ps_string(Some(value)).as_deref() {
                Some("EnforceAllowList") => EwsApplicationAccessPolicy::EnforceAllowList,
                Some("EnforceBlockList") => EwsApplicationAccessPolicy::EnforceBlockList,
                other => EwsApplicationAccessPolicy::Other(other.unwrap_or_default().to_owned()),
            }),
        };
        Ok(EwsSettings {
            ews_enabled: ps_bool(object.get("EwsEnabled")),
            ews_allowed_app_ids: ps_list(object.get("EwsAllowedAppIDs")),
            ews_application_access_policy: policy,
            ews_allow_list: ps_list(object.get("EwsAllowList")),
        })
    }

    /// Returns a mailbox's type and addresses, or `None` when the identity has no mailbox.
    pub async fn mailbox(&self, identity: &str) -> Result<Option<MailboxInfo>, ManagementError> {
        let script = Script::new(
            "Get-Mailbox",
            &[("Identity", identity)],
            "RecipientTypeDetails,PrimarySmtpAddress,UserPrincipalName",
        )?;
        let Some(objects) = self.run_json_or_not_found(&script).await? else {
            return Ok(None);
        };
        let Some(object) = objects.first() else {
            return Ok(None);
        };
        Ok(Some(MailboxInfo {
            recipient_type_details: required_string(
                object,
                "RecipientTypeDetails",
                script.cmdlet(),
            )?,
            primary_smtp_address: ps_string(object.get("PrimarySmtpAddress")),
            user_principal_name: ps_string(object.get("UserPrincipalName")),
        }))
    }

    /// Runs a script and returns its JSON output as a list: empty for no output, one entry
    /// for a single object, every entry for an array.
    pub async fn run_json(&self, script: &Script) -> Result<Vec<Value>, ManagementError> {
        let stdout = self.run(script).await?;
        parse_objects(&stdout, script.cmdlet())
    }

    /// Like [`run_json`](Self::run_json), but returns `None` when the cmdlet failed because
    /// the object does not exist (`ManagementObjectNotFoundException`).
    async fn run_json_or_not_found(
        &self,
        script: &Script,
    ) -> Result<Option<Vec<Value>>, ManagementError> {
        match self.run_json(script).await {
            Ok(objects) => Ok(Some(objects)),
            Err(ManagementError::Failed {
                stderr_not_found: true,
                ..
            }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Runs the command with the script on standard input and returns standard output.
    pub async fn run(&self, script: &Script) -> Result<String, ManagementError> {
        let program = self.command.program.display().to_string();
        let cmdlet = script.cmdlet();
        debug!(%program, cmdlet, "running Exchange cmdlet");

        // 1. Start the command in a process group of its own, so that a timeout can kill
        // everything it started.
        let mut command = Command::new(&self.command.program);
        command
            .args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &self.command.working_dir {
            command.current_dir(dir);
        }
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ManagementError::CommandNotFound {
                program: program.clone(),
                cmdlet,
            },
            _ => ManagementError::Spawn {
                program: program.clone(),
                cmdlet,
                source,
            },
        })?;
        let process_group = child.id();

        // 2. Write the script and read both outputs at once, so that neither pipe fills up.
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let text = script.text().to_owned();
        let exchange = async {
            let write = async {
                // A command that exits without reading its input closes the pipe, so the
                // write error is ignored and the exit status reports what happened.
                let _ = stdin.write_all(text.as_bytes()).await;
                drop(stdin);
            };
            let (_, stdout, stderr, status) = tokio::join!(
                write,
                read_limited(stdout),
                read_limited(stderr),
                child.wait()
            );
            (stdout, stderr, status)
        };
        let outcome = tokio::time::timeout(self.command.timeout, exchange).await;
        kill_process_group(process_group);
        let (stdout, stderr, status) = match outcome {
            Ok(outcome) => outcome,
            Err(_) => {
                let _ = child.kill().await;
                warn!(%program, cmdlet, timeout_s = self.command.timeout.as_secs(), "Exchange cmdlet timed out; killed the command");
                return Err(ManagementError::Timeout {
                    program,
                    cmdlet,
                    timeout: self.command.timeout,
                });
            }
        };
        let io = |source| ManagementError::Io { cmdlet, source };
        let status = status.map_err(io)?;
        let stdout = stdout.map_err(io)?;
        let stderr = stderr.map_err(io)?;

        // 3. A non-zero exit is a failure, described by the first error line.
        let stderr = String::from_utf8_lossy(&stderr);
        if !status.success() {
            let message = first_error_line(&stderr)
                .unwrap_or_else(|| "the command wrote no error message".to_owned());
            let stderr_not_found = stderr.contains("ManagementObjectNotFoundException")
                || stderr.contains("couldn't be found")
                || stderr.contains("could not be found");
            debug!(%program, cmdlet, exit_code = status.code(), %message, "Exchange cmdlet failed");
            return Err(ManagementError::Failed {
                program,
                cmdlet,
                exit_code: status.code(),
                message,
                stderr_not_found,
            });
        }
        if let Some(line) = first_error_line(&stderr) {
            warn!(%program, cmdlet, stderr = %line, "Exchange cmdlet succeeded but wrote to standard error");
        }
        String::from_utf8(stdout).map_err(|_| ManagementError::InvalidOutput {
            cmdlet,
            message: "the output is not UTF-8".to_owned(),
        })
    }
}

async fn read_limited(stream: impl AsyncRead + Unpin) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::new();
    stream
        .take(MAX_OUTPUT_BYTES)
        .read_to_end(&mut buffer)
        .await?;
    Ok(buffer)
}

/// Kills every process left in the command's process group.
fn kill_process_group(process_group: Option<u32>) {
    #[cfg(unix)]
    if let Some(id) = process_group.and_then(|id| libc::pid_t::try_from(id).ok()) {
        // SAFETY: killpg only sends a signal; an empty or reaped group returns ESRCH, which
        // is the expected result after a clean exit.
        unsafe {
            libc::killpg(id, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = process_group;
}

/// Returns the first line of PowerShell error output that describes the error, without
/// colour codes and without the position and category lines that follow it.
fn first_error_line(stderr: &str) -> Option<String> {
    stderr
        .lines()
        .map(strip_ansi)
        .map(|line| line.trim().to_owned())
        .find(|line| {
            !line.is_empty()
                && !line.starts_with("At line:")
                && !line.starts_with("At ")
                && !line.starts_with('+')
                && !line.starts_with('~')
                && !line.starts_with('|')
        })
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(character) = chars.next() {
        if character == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for code in chars.by_ref() {
                if code.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(character);
        }
    }
    out
}

/// Parses `ConvertTo-Json` output: nothing, `null`, one object or an array of objects.
fn parse_objects(stdout: &str, cmdlet: &'static str) -> Result<Vec<Value>, ManagementError> {
    let trimmed = stdout.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value =
        serde_json::from_str(trimmed).map_err(|error| ManagementError::InvalidOutput {
            cmdlet,
            message: format!("expected JSON from ConvertTo-Json: {error}"),
        })?;
    Ok(match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.into_iter().filter(|item| !item.is_null()).collect(),
        object => vec![object],
    })
}

/// Reads a property as text. Deserialized Exchange objects come out of `ConvertTo-Json` as
/// strings, numbers, booleans, or objects with a `Name`; all are accepted.
fn ps_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Object(fields) => ["Name", "DisplayName", "value"]
            .iter()
            .find_map(|key| ps_string(fields.get(*key))),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(|item| ps_string(Some(item)))
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

fn ps_bool(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        Value::Number(number) => number.as_i64().map(|number| number != 0),
        _ => None,
    }
}

/// Reads a multi-valued property: an array, one string, `null`, or an object with a
/// `value` array (how some PowerShell versions write `MultiValuedProperty`).
fn ps_list(value: Option<&Value>) -> Vec<String> {
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| ps_string(Some(item)))
            .collect(),
        Some(Value::Object(fields)) if fields.contains_key("value") => ps_list(fields.get("value")),
        Some(other) => ps_string(Some(other)).into_iter().collect(),
    }
}

fn required_string(
    object: &Value,
    field: &str,
    cmdlet: &'static str,
) -> Result<String, ManagementError> {
    ps_string(object.get(field)).ok_or_else(|| ManagementError::InvalidOutput {
        cmdlet,
        message: format!("the output has no {field}"),
    })
}

fn role_assignment(
    object: &Value,
    cmdlet: &'static str,
) -> Result<RoleAssignment, ManagementError> {
    Ok(RoleAssignment {
        name: required_string(object, "Name", cmdlet)?,
        role: required_string(object, "Role", cmdlet)?,
        role_assignee_name: ps_string(object.get("RoleAssigneeName")),
        custom_recipient_write_scope: ps_string(object.get("CustomRecipientWriteScope")),
        enabled: ps_bool(object.get("Enabled")).unwrap_or(true),
    })
}

/// A failed Exchange cmdlet. Every variant names the cmdlet; none contains a password,
/// because scripts never carry one.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// The configured program does not exist.
    #[error(
        "{cmdlet} failed: the management shell command {program:?} was not found; install PowerShell (pwsh) or set managementShell.command to the program and arguments that run Exchange cmdlets"
    )]
    CommandNotFound {
        /// The configured program.
        program: String,
        /// The cmdlet.
        cmdlet: &'static str,
    },
    /// The program could not be started.
    #[error(
        "{cmdlet} failed: cannot start the management shell command {program:?}; check that it is executable"
    )]
    Spawn {
        /// The configured program.
        program: String,
        /// The cmdlet.
        cmdlet: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish in time and was killed.
    #[error(
        "{cmdlet} timed out after {} s in {program:?}; check that the command reaches the Exchange server, or raise managementShell.timeout",
        timeout.as_secs()
    )]
    Timeout {
        /// The configured program.
        program: String,
        /// The cmdlet.
        cmdlet: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// The command exited with a failure.
    #[error("{cmdlet} failed in {program:?} (exit code {}): {message}", exit_code.map(|code| code.to_string()).unwrap_or_else(|| "none, killed by a signal".to_owned()))]
    Failed {
        /// The configured program.
        program: String,
        /// The cmdlet.
        cmdlet: &'static str,
        /// The exit code, `None` when a signal ended the command.
        exit_code: Option<i32>,
        /// The first PowerShell error line.
        message: String,
        /// Whether standard error reports a missing object.
        stderr_not_found: bool,
    },
    /// Writing the script or reading the output failed.
    #[error("{cmdlet} failed: cannot exchange data with the management shell command")]
    Io {
        /// The cmdlet.
        cmdlet: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The output is not the expected JSON.
    #[error("{cmdlet} returned invalid output: {message}")]
    InvalidOutput {
        /// The cmdlet.
        cmdlet: &'static str,
        /// The problem with the output.
        message: String,
    },
    /// A value cannot be put into a script.
    #[error("invalid value for {cmdlet} -{parameter}: {reason}")]
    InvalidValue {
        /// The cmdlet.
        cmdlet: &'static str,
        /// The parameter.
        parameter: &'static str,
        /// The reason.
        reason: String,
    },
}

impl ManagementError {
    /// Returns the cmdlet that failed.
    pub fn cmdlet(&self) -> &'static str {
        match self {
            Self::CommandNotFound { cmdlet, .. }
            | Self::Spawn { cmdlet, .. }
            | Self::Timeout { cmdlet, .. }
            | Self::Failed { cmdlet, .. }
            | Self::Io { cmdlet, .. }
            | Self::InvalidOutput { cmdlet, .. }
            | Self::InvalidValue { cmdlet, .. } => cmdlet,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Splits a line of generated PowerShell into tokens the way PowerShell's tokenizer
    /// treats single-quoted strings: any of the four single-quote characters opens and
    /// closes a string, and two of them in a row inside it stand for one.
    fn tokens(line: &str) -> Vec<String> {
        let mut tokens = Vec::new();
        let mut chars = line.chars().peekable();
        while let Some(character) = chars.next() {
            if character == ' ' {
                continue;
            }
            let mut token = String::new();
            if is_single_quote(character) {
                token.push('\'');
                loop {
                    let next = chars.next().expect("the string should be closed");
                    if is_single_quote(next) {
                        if chars.peek().is_some_and(|after| is_single_quote(*after)) {
                            token.push(chars.next().unwrap());
                            continue;
                        }
                        break;
                    }
                    token.push(next);
                }
                token.push('\'');
            } else {
                token.push(character);
                while let Some(next) = chars.peek() {
                    if *next == ' ' {
                        break;
                    }
                    token.push(chars.next().unwrap());
                }
            }
            tokens.push(token);
        }
        tokens
    }

    const HOSTILE: &[&str] = &[
        "'; Remove-Mailbox -Identity *; '",
        "`$(Remove-Mailbox -Identity *)`",
        "$(Get-Process)",
        "a\"b\"c",
        "line one\nline two; Remove-Mailbox *",
        "\u{2018}; Remove-Mailbox -Identity *; \u{2019}",
        "\u{201A}\u{201B}'\u{2019}",
        "alice@lab.example",
    ];

    #[test]
    fn quote_doubles_every_single_quote_character() {
        assert_eq!(quote("O'Brien"), "'O''Brien'");
        assert_eq!(quote("\u{2019}"), "'\u{2019}\u{2019}'");
        assert_eq!(quote("$x `n"), "'$x `n'");
    }

    #[test]
    fn hostile_values_stay_one_argument() {
        for value in HOSTILE {
            let script = Script::new(
                "Get-ManagementRoleAssignment",
                &[
                    ("Role", "ApplicationImpersonation"),
                    ("RoleAssignee", value),
                ],
                ROLE_ASSIGNMENT_FIELDS,
            )
            .unwrap();
            let mut lines = script.text().splitn(2, '\n');
            assert_eq!(lines.next(), Some("$ErrorActionPreference = 'Stop'"));
            let command = lines.next().unwrap().strip_suffix('\n').unwrap();
            let tokens = tokens(command);
            assert_eq!(
                tokens,
                [
                    "Get-ManagementRoleAssignment".to_owned(),
                    "-Role".to_owned(),
                    "'ApplicationImpersonation'".to_owned(),
                    "-RoleAssignee".to_owned(),
                    format!("'{value}'"),
                    "|".to_owned(),
                    "Select-Object".to_owned(),
                    ROLE_ASSIGNMENT_FIELDS.to_owned(),
                    "|".to_owned(),
                    "ConvertTo-Json".to_owned(),
                ],
                "value {value:?}"
            );
        }
    }

    #[test]
    fn nul_is_rejected() {
        let error = Script::new("Get-Mailbox", &[("Identity", "a\0b")], "Name").unwrap_err();
        assert!(
            matches!(
                error,
                ManagementError::InvalidValue {
                    parameter: "Identity",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn grant_script_names_the_scope() {
        let script = Script::new(
            "New-ManagementRoleAssignment",
            &[
                ("Name", "siuctl-impersonation"),
                ("Role", "ApplicationImpersonation"),
                ("User", "svc-siu@lab.example"),
                ("CustomRecipientWriteScope", "SIU Mailboxes"),
            ],
            ROLE_ASSIGNMENT_FIELDS,
        )
        .unwrap();
        assert_eq!(
            script.text(),
            "$ErrorActionPreference = 'Stop'\nNew-ManagementRoleAssignment -Name 'siuctl-impersonation' -Role 'ApplicationImpersonation' -User 'svc-siu@lab.example' -CustomRecipientWriteScope 'SIU Mailboxes' | Select-Object Name,Role,RoleAssigneeName,CustomRecipientWriteScope,Enabled | ConvertTo-Json\n"
        );
    }

    #[test]
    fn json_shapes_are_normalized() {
        assert!(parse_objects("", "X").unwrap().is_empty());
        assert!(parse_objects("  \r\n", "X").unwrap().is_empty());
        assert!(parse_objects("null", "X").unwrap().is_empty());
        assert_eq!(parse_objects("{\"Name\": \"a\"}", "X").unwrap().len(), 1);
        assert_eq!(
            parse_objects("\u{feff}[{\"Name\": \"a\"}, {\"Name\": \"b\"}]", "X")
                .unwrap()
                .len(),
            2
        );
        let error = parse_objects("WARNING: something", "X").unwrap_err();
        assert!(
            matches!(error, ManagementError::InvalidOutput { cmdlet: "X", .. }),
            "{error:?}"
        );
    }

    #[test]
    fn property_shapes_are_read() {
        let object: Value = serde_json::json!({
            "Role": {"Name": "ApplicationImpersonation", "Id": 1},
            "Enabled": "True",
            "List": {"value": ["a", "b"], "Count": 2},
            "Single": "c",
            "Number": 0
        });
        assert_eq!(
            ps_string(object.get("Role")).as_deref(),
            Some("ApplicationImpersonation")
        );
        assert_eq!(ps_bool(object.get("Enabled")), Some(true));
        assert_eq!(ps_bool(object.get("Number")), Some(false));
        assert_eq!(ps_list(object.get("List")), ["a", "b"]);
        assert_eq!(ps_list(object.get("Single")), ["c"]);
        assert!(ps_list(object.get("Missing")).is_empty());
    }

    #[test]
    fn first_error_line_skips_position_lines() {
        let windows = "The operation couldn't be performed because object 'x' couldn't be found on 'dc1'.\r\n    + CategoryInfo          : NotSpecified: (:) [Get-Mailbox], ManagementObjectNotFoundException\r\n";
        assert_eq!(
            first_error_line(windows).as_deref(),
            Some(
                "The operation couldn't be performed because object 'x' couldn't be found on 'dc1'."
            )
        );
        let pwsh = "\u{1b}[31;1mGet-Mailbox: \u{1b}[31;1mObject not found\u{1b}[0m\n";
        assert_eq!(
            first_error_line(pwsh).as_deref(),
            Some("Get-Mailbox: Object not found")
        );
        assert_eq!(first_error_line("\n  \n"), None);
    }

    /// Writes an executable shell script that replaces the management command in tests.
    fn fake_shell(dir: &tempfile::TempDir, body: &str) -> ShellCommand {
        let path = dir.path().join("fake-shell.sh");
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(file, "#!/bin/sh\n{body}").unwrap();
        drop(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        ShellCommand {
            program: path,
            args: Vec::new(),
            working_dir: Some(dir.path().to_path_buf()),
            timeout: Duration::from_secs(30),
        }
    }

    #[tokio::test]
    async fn script_goes_to_stdin_and_json_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let shell = ManagementShell::new(fake_shell(
            &dir,
            "cat > script.ps1\necho '[{\"Name\":\"a1\",\"Role\":\"ApplicationImpersonation\",\"RoleAssigneeName\":\"svc-siu\",\"CustomRecipientWriteScope\":null,\"Enabled\":true}]'",
        ));
        let assignments = shell
            .impersonation_assignments("svc-siu@lab.example")
            .await
            .unwrap();
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].role, "ApplicationImpersonation");
        assert_eq!(assignments[0].custom_recipient_write_scope, None);
        assert!(assignments[0].enabled);

        let written = std::fs::read_to_string(dir.path().join("script.ps1")).unwrap();
        assert!(
            written.starts_with("$ErrorActionPreference = 'Stop'\n"),
            "{written}"
        );
        assert!(
            written.contains("-RoleAssignee 'svc-siu@lab.example'"),
            "{written}"
        );
    }

    #[tokio::test]
    async fn empty_output_means_no_assignments() {
        let dir = tempfile::tempdir().unwrap();
        let shell = ManagementShell::new(fake_shell(&dir, "cat > /dev/null"));
        assert!(
            shell
                .impersonation_assignments("svc-siu@lab.example")
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn failure_reports_exit_code_and_first_error_line() {
        let dir = tempfile::tempdir().unwrap();
        let shell = ManagementShell::new(fake_shell(
            &dir,
            "cat > /dev/null\necho 'Access is denied.' >&2\necho '    + CategoryInfo : x' >&2\nexit 3",
        ));
        let error = shell.ews_settings().await.unwrap_err();
        let ManagementError::Failed {
            exit_code,
            message,
            cmdlet,
            ..
        } = &error
        else {
            panic!("expected a failure, got {error:?}");
        };
        assert_eq!(*exit_code, Some(3));
        assert_eq!(message, "Access is denied.");
        assert_eq!(*cmdlet, "Get-OrganizationConfig");
        assert!(
            error.to_string().contains("Get-OrganizationConfig"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn not_found_mailbox_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let shell = ManagementShell::new(fake_shell(
            &dir,
            "cat > /dev/null\necho \"The operation couldn't be performed because object 'nobody' couldn't be found on 'dc1'.\" >&2\nexit 1",
        ));
        assert_eq!(shell.mailbox("nobody@lab.example").await.unwrap(), None);
    }

    #[tokio::test]
    async fn ews_settings_are_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let shell = ManagementShell::new(fake_shell(
            &dir,
            "cat > /dev/null\necho '{\"EwsEnabled\":null,\"EwsAllowedAppIDs\":[\"app-1\"],\"EwsApplicationAccessPolicy\":\"EnforceAllowList\",\"EwsAllowList\":null}'",
        ));
        let settings = shell.ews_settings().await.unwrap();
        assert_eq!(settings.ews_enabled, None);
        assert_eq!(settings.ews_allowed_app_ids, ["app-1"]);
        assert_eq!(
            settings.ews_application_access_policy,
            Some(EwsApplicationAccessPolicy::EnforceAllowList)
        );
        assert!(settings.ews_allow_list.is_empty());
    }

    #[tokio::test]
    async fn missing_program_is_named() {
        let shell = ManagementShell::new(ShellCommand {
            program: PathBuf::from("/nonexistent/pwsh"),
            args: Vec::new(),
            working_dir: None,
            timeout: Duration::from_secs(5),
        });
        let error = shell.ews_settings().await.unwrap_err();
        assert!(
            matches!(error, ManagementError::CommandNotFound { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("/nonexistent/pwsh"), "{message}");
        assert!(message.contains("managementShell.command"), "{message}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn timeout_kills_the_command_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = fake_shell(&dir, "sleep 600 &\necho $! > child.pid\nsleep 600");
        command.timeout = Duration::from_millis(300);
        let shell = ManagementShell::new(command);
        let error = shell.ews_settings().await.unwrap_err();
        assert!(
            matches!(error, ManagementError::Timeout { .. }),
            "{error:?}"
        );

        let child: u32 = std::fs::read_to_string(dir.path().join("child.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The killed grandchild is gone, or a zombie until its new parent reaps it. SIGKILL
        // takes effect when the process is next scheduled, which on a loaded machine can be
        // a moment after killpg returns.
        let process_state = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit(") ")
                        .next()
                        .and_then(|rest| rest.chars().next())
                })
        };
        let mut state = process_state();
        for _ in 0..50 {
            if matches!(state, None | Some('Z')) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            state = process_state();
        }
        assert!(
            matches!(state, None | Some('Z')),
            "grandchild {child} is still running: {state:?}"
        );
    }
}
