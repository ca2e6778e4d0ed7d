//! `siuctl validate`: checks spec files without contacting any server.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use siu_specs::Diagnostic;

use super::exit::Exit;
use super::output::{self, OutputFormat};

/// Arguments of `siuctl validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Spec files to check. Repeat the flag or list several files after it.
    #[arg(short = 'f', long = "file", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,

    /// Format of the result on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// The result for one file, as printed by `--output json`.
#[derive(Debug, Serialize)]
struct FileReport<'a> {
    path: &'a std::path::Path,
    valid: bool,
    diagnostics: Vec<Diagnostic>,
}

/// The whole result, as printed by `--output json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    valid: bool,
    files: Vec<FileReport<'a>>,
}

/// Checks every file and prints the problems. Exits with [`Exit::Failure`] when any file
/// is invalid or unreadable.
pub fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let diagnostics = if is_lab_fixture(path) {
            match siu_lab::Fixture::load(path) {
                Ok(_) => Vec::new(),
                Err(error) => vec![Diagnostic::for_file(path, error.to_string())],
            }
        } else {
            match siu_specs::load(path) {
                Ok(_) => Vec::new(),
                Err(error) => error.diagnostics(path),
            }
        };
        files.push(FileReport {
            path,
            valid: diagnostics.is_empty(),
            diagnostics,
        });
    }
    let report = Report {
        valid: files.iter().all(|file| file.valid),
        files,
    };

    let text = match args.output {
        OutputFormat::Text => render_text(&report),
        OutputFormat::Json => {
            let mut json =
                serde_json::to_string_pretty(&report).context("failed to serialize the report")?;
            json.push('\n');
            json
        }
    };
    output::print(&text).context("failed to write the report to standard output")?;

    Ok(if report.valid {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Whether a file declares `kind: LabOrganization` at the top level: an organization fixture
/// for `siuctl lab up`, checked with the lab's own parser.
fn is_lab_fixture(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let readable = std::fs::File::open(path)
        .and_then(|file| file.take(64 * 1024).read_to_end(&mut head))
        .is_ok();
    readable
        && String::from_utf8_lossy(&head)
            .lines()
            .any(|line| line.trim_end() == format!("kind: {}", siu_lab::fixture::KIND))
}

fn render_text(report: &Report<'_>) -> String {
    let mut text = String::new();
    let mut problems = 0;
    for file in &report.files {
        if file.valid {
            text.push_str(&format!("{}: valid\n", file.path.display()));
        } else {
            problems += file.diagnostics.len();
            text.push_str(&output::render_diagnostics(&file.diagnostics));
        }
    }

    let invalid = report.files.iter().filter(|file| !file.valid).count();
    if invalid > 0 {
        text.push_str(&format!(
            "{invalid} of {} {} invalid, {problems} {}\n",
            report.files.len(),
            if report.files.len() == 1 {
                "file"
            } else {
                "files"
            },
            if problems == 1 { "problem" } else { "problems" },
        ));
    }
    text
}
