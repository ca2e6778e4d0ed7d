//! Output for the person or program that ran `siuctl`, kept apart from the `tracing`
//! logs on standard error.

use std::io::{self, Write};

use siu_specs::Diagnostic;

/// Format of a command's result on standard output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Text for people: compiler-style diagnostics.
    #[default]
    Text,
    /// One JSON document, for CI bots and scripts.
    Json,
}

/// Writes `text` to standard output. A closed pipe (`siuctl ... | head`) ends the output
/// without an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// Renders diagnostics as text, separated by blank lines.
pub fn render_diagnostics(diagnostics: &[Diagnostic]) -> String {
    let mut text = String::new();
    for diagnostic in diagnostics {
        text.push_str(&diagnostic.render());
        text.push_str("\n\n");
    }
    text
}
