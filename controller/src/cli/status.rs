//! `siuctl status`: shows whether the service is on and what the last apply found, from
//! the state directory, without contacting any server.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde::Serialize;

use super::exit::Exit;
use super::output::{self, OutputFormat};
use super::spec_args::load_spec;
use crate::reconcile::applied::{AppliedConfig, CloudMailPath};
use crate::reconcile::status::{ConditionStatus, StatusFile};

/// Arguments of `siuctl status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The spec file, whose state directory contains the status.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: std::path::PathBuf,

    /// Format of the status on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The status as `--output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// `on` when an applied configuration enables updating, `off` otherwise.
    status: &'static str,
    /// The reason the status is off, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    off_reason: Option<&'static str>,
    /// The path to cloud mailboxes that the last apply chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_mail_path: Option<CloudMailPath>,
    /// Everything from `status.json`, when it exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(flatten)]
    file: Option<StatusFile>,
}

/// Prints the status. Exits with 1 when nothing has been applied or a condition does not
/// hold, so that monitoring can use the exit code.
pub fn run(args: StatusArgs) -> anyhow::Result<Exit> {
    let desired = match load_spec(&args.file)? {
        Ok(desired) => desired,
        Err(exit) => return Ok(exit),
    };
    let state_dir = &desired.update_loop.state_dir;
    let applied = AppliedConfig::load(state_dir).map_err(|error| {
        // Apply rewrites a corrupt file, but not one of another format version.
        let hint = if error.kind() == std::io::ErrorKind::InvalidData {
            "; run `siuctl apply` to record it again"
        } else {
            ""
        };
        anyhow::Error::new(error).context(format!(
            "failed to read the applied configuration in {}{hint}",
            state_dir.display()
        ))
    })?;
    let status = StatusFile::load(state_dir)
        .with_context(|| format!("failed to read the status in {}", state_dir.display()))?;

    let (on, off_reason) = match &applied {
        None => (false, Some("nothing applied yet: run siuctl apply")),
        Some(config) if !config.desired.options.enabled => {
            (false, Some("options.enabled is false in the applied spec"))
        }
        Some(_) => (true, None),
    };
    let report = Report {
        status: if on { "on" } else { "off" },
        off_reason,
        cloud_mail_path: applied.as_ref().and_then(|c| c.discovered.cloud_mail_path),
        file: status,
    };

    let text = match args.output {
        OutputFormat::Text => render(&report, &desired),
        OutputFormat::Json => {
            let mut json =
                serde_json::to_string_pretty(&report).context("failed to serialize the status")?;
            json.push('\n');
            json
        }
    };
    output::print(&text).context("failed to write the status to standard output")?;

    let ready = on
        && report.file.as_ref().is_some_and(|file| {
            file.conditions
                .iter()
                .all(|condition| condition.status == ConditionStatus::True)
        });
    Ok(if ready { Exit::Success } else { Exit::Failure })
}

fn render(report: &Report, desired: &siu_specs::DesiredState) -> String {
    let mut text = String::new();
    let status = match report.off_reason {
        Some(reason) => format!("off ({reason})"),
        None => "on".to_owned(),
    };
    let _ = writeln!(text, "Status:       {status}");
    let _ = writeln!(text, "Account:      {}", desired.account.upn);
    let _ = writeln!(
        text,
        "Environment:  {}",
        match desired.environment {
            siu_specs::desired::Environment::OnPremises => "onPremises",
            siu_specs::desired::Environment::Hybrid => "hybrid",
        }
    );
    if let Some(path) = report.cloud_mail_path {
        let _ = writeln!(
            text,
            "Cloud mail:   {}",
            match path {
                CloudMailPath::Ews => "EWS",
                CloudMailPath::Graph => "Microsoft Graph",
            }
        );
    }

    let Some(file) = &report.file else {
        text.push_str("Last apply:   never\n");
        return text;
    };
    if let Some(scope) = &file.scope {
        let _ = writeln!(text, "Scope:        {scope}");
    }
    match &file.last_apply {
        Some(record) => {
            let _ = writeln!(
                text,
                "Last apply:   {} ({:?})",
                record.at.format("%Y-%m-%d %H:%M:%S UTC"),
                record.result
            );
        }
        None => text.push_str("Last apply:   never\n"),
    }
    if let Some(at) = file.last_reconcile {
        let _ = writeln!(
            text,
            "Last reconcile: {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        );
    }

    text.push_str("Conditions:\n");
    let width = file
        .conditions
        .iter()
        .map(|c| format!("{:?}", c.kind).len())
        .max()
        .unwrap_or(0);
    for condition in &file.conditions {
        let _ = writeln!(
            text,
            "  {:<width$}  {:<7}  {}  {}  {}",
            format!("{:?}", condition.kind),
            format!("{:?}", condition.status),
            condition.reason,
            condition.last_transition.format("%Y-%m-%d %H:%M:%S UTC"),
            condition.message,
        );
    }
    text
}
