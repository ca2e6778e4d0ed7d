//! The `siuctl` command line: global flags, logging set-up and dispatch to one module per
//! subcommand.
//!
//! Each subcommand lives in its own file with an `Args` struct and a `run` function that
//! returns an [`Exit`](crate::cli::exit::Exit). `lab` returns an `ExitCode` instead, because
//! `lab exchange-shell` exits with the code of the script it ran. To add one, add a variant to
//! [`Command`](crate::cli::Command) and a match arm in [`main`](crate::cli::main). Results
//! for the user go to standard output through [`output`](crate::cli::output), and logs go
//! to standard error through `tracing`.

pub mod apply;
pub mod exit;
pub mod export;
pub mod lab;
pub mod output;
pub mod plan;
pub mod run;
pub mod schema;
pub mod spec_args;
pub mod status;
pub mod test_impersonation;
pub mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use self::exit::Exit;

/// Declarative Sent Items Update controller for Exchange.
#[derive(Debug, Parser)]
#[command(name = "siuctl", version, about, propagate_version = true)]
pub struct Cli {
    /// Log more: `-v` for info, `-vv` for debug, `-vvv` for trace. `RUST_LOG`, when set,
    /// takes precedence.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Format of the logs on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Format of the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check spec files without contacting any server.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of a siu/v1 spec.
    Schema(schema::SchemaArgs),
    /// Run the update loop with the applied configuration, reconciling in the background.
    Run(run::RunArgs),
    /// Read the live state and show what apply would change, and why.
    Plan(plan::PlanArgs),
    /// Make the changes of a plan, check the result and record it.
    Apply(apply::ApplyArgs),
    /// Show whether the service is on and what the last apply found.
    Status(status::StatusArgs),
    /// Write the live configuration as a spec to standard output.
    Export(export::ExportArgs),
    /// Open one mailbox's Sent Items as the update loop does, to check access.
    TestImpersonation(test_impersonation::TestImpersonationArgs),
    /// Run the lab, a loopback emulator of the servers siuctl talks to, and drive it.
    #[command(subcommand)]
    Lab(lab::LabCommand),
}

/// Runs `siuctl` with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // `--help` and `--version` arrive here too, as errors that print to stdout.
            let _ = error.print();
            return if error.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    init_logging(cli.verbose, cli.log_format);

    let result = match cli.command {
        Command::Validate(args) => validate::run(args).map(ExitCode::from),
        Command::Schema(args) => schema::run(args).map(ExitCode::from),
        Command::Run(args) => run::run(args).map(ExitCode::from),
        Command::Plan(args) => plan::run(args).map(ExitCode::from),
        Command::Apply(args) => apply::run(args).map(ExitCode::from),
        Command::Status(args) => status::run(args).map(ExitCode::from),
        Command::Export(args) => export::run(args).map(ExitCode::from),
        Command::TestImpersonation(args) => test_impersonation::run(args).map(ExitCode::from),
        Command::Lab(command) => lab::run_blocking(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            tracing::debug!(error = format!("{error:#}"), "command failed");
            eprintln!("error: {error:#}");
            Exit::Failure.into()
        }
    }
}

/// Sends `tracing` events to standard error, filtered by `RUST_LOG` or else by the
/// number of `-v` flags.
fn init_logging(verbose: u8, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = match verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        EnvFilter::new(level)
    });
    // Colors only for a terminal, so that logs captured by CI or a file stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(error) = result {
        eprintln!("warning: failed to set up logging: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn validate_accepts_repeated_and_listed_files() {
        let repeated =
            Cli::try_parse_from(["siuctl", "validate", "-f", "a.yaml", "-f", "b.yaml"]).unwrap();
        let listed = Cli::try_parse_from(["siuctl", "validate", "-f", "a.yaml", "b.yaml"]).unwrap();

        for cli in [repeated, listed] {
            let Command::Validate(args) = cli.command else {
                panic!("expected the validate subcommand");
            };
            assert_eq!(
                args.files,
                [std::path::PathBuf::from("a.yaml"), "b.yaml".into()]
            );
        }
    }

    #[test]
    fn verbose_counts_repeats_after_subcommand() {
        let cli = Cli::try_parse_from(["siuctl", "validate", "-f", "a.yaml", "-vv"]).unwrap();

        assert_eq!(cli.verbose, 2);
    }

    #[test]
    fn validate_requires_a_file() {
        let error = Cli::try_parse_from(["siuctl", "validate"]).unwrap_err();

        assert!(error.use_stderr());
    }
}
