//! `siuctl validate`: checks spec files without contacting any server.

use std::path::{Path, PathBuf};

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
struct FileReport {
    /// The path as given, with replacement characters where it is not UTF-8.
    path: String,
    valid: bool,
    diagnostics: Vec<Diagnostic>,
}

/// The whole result, as printed by `--output json`.
#[derive(Debug, Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
}

/// Checks every file and prints the problems. Exits with [`Exit::Failure`] when any file
/// is invalid or unreadable.
pub fn run(args: ValidateArgs) -> anyhow::Result<Exit> {
    let mut files = Vec::with_capacity(args.files.len());
    for path in &args.files {
        let diagnostics = check_file(path);
        files.push(FileReport {
            path: path.to_string_lossy().into_owned(),
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

/// Checks one file and returns its problems. The file is read once, with the size limit
/// of a spec, so that a pipe can be checked and a huge file is not read whole.
fn check_file(path: &Path) -> Vec<Diagnostic> {
    let bytes = match siu_specs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => return error.diagnostics(path),
    };
    if !is_lab_fixture(&bytes) {
        return match siu_specs::load_bytes(&bytes, path) {
            Ok(_) => Vec::new(),
            Err(error) => error.diagnostics(path),
        };
    }

    let origin = path.display().to_string();
    let result = std::str::from_utf8(&bytes)
        .map_err(|error| format!("lab fixture {origin} is not UTF-8 text: {error}"))
        .and_then(|text| siu_lab::Fixture::parse(text, &origin).map_err(|error| error.to_string()));
    match result {
        Ok(_) => Vec::new(),
        Err(message) => vec![lab_diagnostic(path, &message)],
    }
}

/// Turns a lab fixture error into a diagnostic. The lab's parser renders its own snippet
/// after the first line, which becomes the diagnostic's snippet.
fn lab_diagnostic(path: &Path, message: &str) -> Diagnostic {
    let (first, rest) = message.split_once('\n').unwrap_or((message, ""));
    let mut diagnostic = Diagnostic::for_file(path, first);
    let snippet: Vec<String> = rest
        .lines()
        .map(|line| siu_specs::escape_invisible(line).into_owned())
        .collect();
    if !snippet.is_empty() {
        diagnostic.snippet = Some(snippet.join("\n"));
    }
    diagnostic
}

/// Whether a file declares `kind: LabOrganization` at the top level in its first 64 KiB:
/// an organization fixture for `siuctl lab up`, checked with the lab's own parser.
fn is_lab_fixture(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64 * 1024)];
    String::from_utf8_lossy(head)
        .lines()
        .any(|line| line.trim_end() == format!("kind: {}", siu_lab::fixture::KIND))
}

fn render_text(report: &Report) -> String {
    let mut text = String::new();
    let mut problems = 0;
    for file in &report.files {
        if file.valid {
            text.push_str(&format!(
                "{}: valid\n",
                siu_specs::escape_invisible(&file.path)
            ));
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
