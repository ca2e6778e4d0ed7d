//! The Exchange management shell stand-in: runs the cmdlet text the controller sends to
//! Exchange PowerShell against the lab's state and prints JSON as `ConvertTo-Json` would.
//!
//! The script is parsed completely before anything runs (see [`parse`]), so a script with a
//! syntax error changes nothing. Cmdlets bind parameters as PowerShell does: names without
//! case, unique prefixes, positional values, switches with `-Name:$false`, and the errors
//! PowerShell prints for unknown commands, unknown or missing parameters. Output objects
//! carry the property names of the real cmdlets, in their order, and `ConvertTo-Json`
//! writes them in the layout of PowerShell 7 (two-space indentation, one object without an
//! enclosing array).
//!
//! Supported cmdlets: `Get-`, `New-` and `Remove-ManagementRoleAssignment`,
//! `Get-ManagementScope`, `Get-` and `Set-OrganizationConfig`, `Get-Mailbox`,
//! `Get-RemoteMailbox` (on-premises), `Get-Recipient`, `Select-Object` and `ConvertTo-Json`.

mod cmdlets;
pub mod parse;

use std::fmt::Write as _;

use serde_json::Value as Json;

use crate::LabState;
use crate::control::ManagementResponse;
use parse::{Argument, Statement, Value};

/// An output object: property names and values in the cmdlet's order.
pub type Object = Vec<(String, Json)>;

/// An item flowing through a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An object with properties.
    Object(Object),
    /// A plain value, such as a string from `ConvertTo-Json` or `-ExpandProperty`.
    Scalar(Json),
}

/// A PowerShell error record: the message PowerShell prints after the command name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellError {
    /// The message.
    pub message: String,
}

impl ShellError {
    /// Creates an error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Adds to the world the users that a management script's role assignment cmdlets name and
/// that only the external directory contains, when there is one (see [`crate::external`]).
/// Exchange resolves `-User` and `-RoleAssignee` in Active Directory in the same way.
pub async fn import_named_users(state: &LabState, online: bool, script: &str) {
    if let (Some(client), false) = (state.external.as_ref(), online)
        && let Ok(statements) = parse::parse(script)
    {
        let named: Vec<String> = statements
            .iter()
            .filter_map(|statement| match statement {
                Statement::Pipeline(commands) => Some(commands),
                Statement::Assignment { .. } => None,
            })
            .flatten()
            .filter_map(cmdlets::named_user)
            .collect();
        for identity in named {
            let known = cmdlets::knows_user(&state.read(), &identity);
            if !known {
                crate::external::lookup::import_identity(
                    state,
                    client,
                    &identity,
                    crate::external::lookup::IdentityKind::Recipient,
                )
                .await;
            }
        }
    }
}

/// Runs a management script after [`import_named_users`].
pub async fn execute_following_directory(
    state: &LabState,
    online: bool,
    script: &str,
) -> ManagementResponse {
    import_named_users(state, online, script).await;
    execute(state, online, script)
}

/// Runs a management script against the on-premises server or Exchange Online.
pub fn execute(state: &LabState, online: bool, script: &str) -> ManagementResponse {
    let statements = match parse::parse(script) {
        Ok(statements) => statements,
        Err(error) => {
            tracing::debug!(%error, "management script does not parse");
            return ManagementResponse {
                stdout: String::new(),
                stderr: format!("{error}\n"),
                exit_code: 1,
            };
        }
    };
    let mut shell = Shell {
        state,
        online,
        stop: false,
        silent: false,
        stdout: String::new(),
        stderr: String::new(),
        failed: false,
    };
    for statement in statements {
        let stopped = match statement {
            Statement::Assignment { variable, value } => shell.assign(&variable, &value),
            Statement::Pipeline(commands) => shell.pipeline(commands),
        };
        if stopped {
            break;
        }
    }
    ManagementResponse {
        stdout: shell.stdout,
        stderr: shell.stderr,
        exit_code: i32::from(shell.failed),
    }
}

/// The state of one script run.
struct Shell<'a> {
    state: &'a LabState,
    online: bool,
    /// `$ErrorActionPreference = 'Stop'`.
    stop: bool,
    /// `$ErrorActionPreference = 'SilentlyContinue'`.
    silent: bool,
    stdout: String,
    stderr: String,
    failed: bool,
}

impl Shell<'_> {
    /// Runs an assignment; returns whether the script stops.
    fn assign(&mut self, variable: &str, value: &Value) -> bool {
        if !variable.eq_ignore_ascii_case("ErrorActionPreference") {
            return self.fail(
                &format!("${variable}"),
                ShellError::new(format!(
                    "the lab's shell supports assigning only $ErrorActionPreference, not ${variable}"
                )),
                false,
            );
        }
        let text = match value {
            Value::Text(text) => text.to_ascii_lowercase(),
            _ => String::new(),
        };
        match text.as_str() {
            "stop" => (self.stop, self.silent) = (true, false),
            "continue" => (self.stop, self.silent) = (false, false),
            "silentlycontinue" => (self.stop, self.silent) = (false, true),
            _ => {
                return self.fail(
                    "$ErrorActionPreference",
                    ShellError::new(format!(
                        "Cannot convert value \"{}\" to type \"System.Management.Automation.ActionPreference\". Specify one of: Stop, Continue, SilentlyContinue.",
                        describe(value)
                    )),
                    false,
                );
            }
        }
        false
    }

    /// Runs a pipeline; returns whether the script stops.
    fn pipeline(&mut self, commands: Vec<parse::Command>) -> bool {
        let mut items: Vec<Item> = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            let stop_here = command_stops(command);
            let result = cmdlets::run(
                self.state,
                self.online,
                command,
                index,
                std::mem::take(&mut items),
            );
            match result {
                Ok(cmdlets::Outcome {
                    items: produced,
                    text,
                }) => {
                    items = produced;
                    self.stdout.push_str(&text);
                }
                Err(error) => return self.fail(&command.name, error, stop_here),
            }
        }
        write_items(&mut self.stdout, &items);
        false
    }

    /// Reports an error; returns whether the script stops.
    fn fail(&mut self, command: &str, error: ShellError, stop_here: bool) -> bool {
        self.failed = true;
        tracing::debug!(command, error = %error.message, "management cmdlet failed");
        if !self.silent {
            let _ = writeln!(self.stderr, "{command}: {}", error.message);
        }
        self.stop || stop_here
    }
}

/// Returns whether a command's own `-ErrorAction Stop` makes its failure end the script.
fn command_stops(command: &parse::Command) -> bool {
    command.arguments.windows(2).any(|pair| {
        matches!(&pair[0], Argument::Parameter { name, inline: None } if name.eq_ignore_ascii_case("ErrorAction"))
            && matches!(&pair[1], Argument::Value(Value::Text(v)) if v.eq_ignore_ascii_case("Stop"))
    })
}

/// Formats a value as PowerShell error messages show it.
fn describe(value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        Value::List(items) => items.iter().map(describe).collect::<Vec<_>>().join(" "),
        Value::Table(_) => "System.Collections.Hashtable".into(),
    }
}

/// Writes what reaches the end of a pipeline: strings as they are, objects as a list of
/// `Name : Value` lines, as `Format-List` shows them.
fn write_items(out: &mut String, items: &[Item]) {
    for item in items {
        match item {
            Item::Scalar(Json::String(text)) => {
                out.push_str(text);
                out.push('\n');
            }
            Item::Scalar(value) => {
                let _ = writeln!(out, "{}", plain(value));
            }
            Item::Object(properties) => {
                let width = properties.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
                out.push('\n');
                for (name, value) in properties {
                    let _ = writeln!(out, "{name:width$} : {}", plain(value));
                }
                out.push('\n');
            }
        }
    }
}

/// Formats a value as PowerShell prints it outside JSON.
fn plain(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::String(text) => text.clone(),
        Json::Array(items) => format!(
            "{{{}}}",
            items.iter().map(plain).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// Writes items as `ConvertTo-Json` does: one item alone, several as an array.
pub fn to_json(items: &[Item], depth: usize, compress: bool, as_array: bool) -> Option<String> {
    let mut out = String::new();
    match items {
        [] if !as_array => return None,
        [single] if !as_array => write_item(&mut out, single, 0, depth, compress),
        _ => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(&mut out, 1, compress);
                write_item(&mut out, item, 1, depth, compress);
            }
            if !items.is_empty() {
                newline(&mut out, 0, compress);
            }
            out.push(']');
        }
    }
    Some(out)
}

fn newline(out: &mut String, level: usize, compress: bool) {
    if !compress {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    }
}

fn write_item(out: &mut String, item: &Item, level: usize, depth: usize, compress: bool) {
    match item {
        Item::Scalar(value) => write_value(out, value, level, compress),
        Item::Object(properties) if depth == 0 => {
            // Beyond -Depth, PowerShell writes an object's string form.
            let text = properties
                .iter()
                .map(|(n, v)| format!("{n}={}", plain(v)))
                .collect::<Vec<_>>()
                .join("; ");
            out.push_str(&Json::String(format!("@{{{text}}}")).to_string());
        }
        Item::Object(properties) => {
            out.push('{');
            for (i, (name, value)) in properties.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1, compress);
                out.push_str(&Json::String(name.clone()).to_string());
                out.push(':');
                if !compress {
                    out.push(' ');
                }
                write_value(out, value, level + 1, compress);
            }
            if !properties.is_empty() {
                newline(out, level, compress);
            }
            out.push('}');
        }
    }
}

/// Writes a property value; the lab's properties hold scalars and lists of scalars only, so
/// `-Depth` never cuts them.
fn write_value(out: &mut String, value: &Json, level: usize, compress: bool) {
    match value {
        Json::Array(items) if items.is_empty() => out.push_str("[]"),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, level + 1, compress);
                write_value(out, item, level + 1, compress);
            }
            newline(out, level, compress);
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(pairs: &[(&str, Json)]) -> Item {
        Item::Object(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn single_object_is_not_wrapped() {
        let json = to_json(
            &[object(&[("Name", "a".into()), ("Enabled", true.into())])],
            2,
            false,
            false,
        )
        .expect("output");
        assert_eq!(json, "{\n  \"Name\": \"a\",\n  \"Enabled\": true\n}");
    }

    #[test]
    fn several_objects_form_an_array() {
        let items = [
            object(&[("Name", "a".into())]),
            object(&[("Name", "b".into())]),
        ];
        assert_eq!(
            to_json(&items, 2, true, false).expect("output"),
            r#"[{"Name":"a"},{"Name":"b"}]"#
        );
        assert_eq!(to_json(&[], 2, true, false), None);
        assert_eq!(to_json(&[], 2, true, true).as_deref(), Some("[]"));
    }

    #[test]
    fn nested_arrays_indent() {
        let json = to_json(
            &[object(&[
                ("Ids", serde_json::json!(["x", "y"])),
                ("None", serde_json::json!([])),
            ])],
            2,
            false,
            false,
        )
        .expect("output");
        assert_eq!(
            json,
            "{\n  \"Ids\": [\n    \"x\",\n    \"y\"\n  ],\n  \"None\": []\n}"
        );
    }
}
