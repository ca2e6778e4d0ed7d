//! Problems found in a spec file, located by line and column and rendered like compiler
//! errors.
//!
//! A [`Diagnostic`] carries what a person or a CI bot needs to fix one problem: the file,
//! the 1-based line and column, the message and an optional hint. Its snippet shows the
//! offending source line with a caret under the column. Snippets never show the value of a
//! secret written inline: the loader passes the byte ranges of such values, and anything
//! that looks like `password: value` or `secret: value` is masked as well.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Text shown in place of a secret value in snippets.
pub(crate) const REDACTED: &str = "[redacted]";

/// Maximum width of the part of a source line shown in a snippet, in characters.
const SNIPPET_WIDTH: usize = 100;

/// One problem in a spec file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The spec file, as given on the command line.
    pub path: PathBuf,
    /// The 1-based line of the problem, or `None` for a problem with the whole file.
    pub line: Option<usize>,
    /// The 1-based column of the problem in characters, or `None` with `line`.
    pub column: Option<usize>,
    /// The dotted path of the field with the problem, such as `account.upn`, when known.
    pub field: Option<String>,
    /// Description of the problem, in one lowercase sentence.
    pub message: String,
    /// Suggested fix.
    pub help: Option<String>,
    /// The source line with a caret under the column, with a line-number gutter.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// Creates a diagnostic for a problem with the whole file, such as a read failure.
    pub fn for_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
            help: None,
            snippet: None,
        }
    }

    /// Renders the diagnostic as `path:line:col: error: message`, then the snippet and the
    /// help line.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": error: {}", self.message)?;
        if let Some(snippet) = &self.snippet {
            write!(f, "\n{snippet}")?;
        }
        if let Some(help) = &self.help {
            // Multi-line help keeps its own indentation under the `help:` label.
            let mut lines = help.lines();
            if let Some(first) = lines.next() {
                write!(f, "\nhelp: {first}")?;
            }
            for line in lines {
                write!(f, "\n      {line}")?;
            }
        }
        Ok(())
    }
}

/// A position in the source: 1-based line, 1-based column counted in characters, and the
/// byte offset into the text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) byte: usize,
}

/// A range of source text; `end` is exclusive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Span {
    pub(crate) start: Position,
    pub(crate) end: Position,
}

impl Span {
    pub(crate) fn at(start: Position) -> Self {
        Self { start, end: start }
    }
}

/// A problem before it is tied to a file: the message, an optional hint, and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) span: Option<Span>,
    pub(crate) field: Option<String>,
    pub(crate) message: String,
    pub(crate) help: Option<String>,
}

impl Problem {
    pub(crate) fn new(span: Option<Span>, message: impl Into<String>) -> Self {
        Self {
            span,
            field: None,
            message: message.into(),
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

/// The text of a spec file with what the snippet renderer needs to hide.
pub(crate) struct SourceText<'a> {
    pub(crate) path: PathBuf,
    pub(crate) text: &'a str,
    /// Byte ranges of secret values written inline, which snippets mask.
    pub(crate) secret_ranges: Vec<std::ops::Range<usize>>,
}

impl SourceText<'_> {
    /// Turns a problem into a diagnostic with a snippet of the line it points at.
    pub(crate) fn diagnostic(&self, problem: Problem) -> Diagnostic {
        let snippet = problem.span.and_then(|span| self.snippet(span));
        Diagnostic {
            path: self.path.clone(),
            line: problem.span.map(|span| span.start.line),
            column: problem.span.map(|span| span.start.column),
            field: problem.field,
            message: problem.message,
            help: problem.help,
            snippet,
        }
    }

    /// Renders the line of `span.start` with a gutter and carets under the span, or under
    /// the start column alone when the span ends on a later line or is empty.
    fn snippet(&self, span: Span) -> Option<String> {
        let line_start = line_start_byte(self.text, span.start)?;
        let line_end = self.text[line_start..]
            .find('\n')
            .map_or(self.text.len(), |offset| line_start + offset);
        let raw_line = &self.text[line_start..line_end];
        let raw_line = raw_line.strip_suffix('\r').unwrap_or(raw_line);

        let caret_byte =
            if span.start.byte >= line_start && span.start.byte <= line_start + raw_line.len() {
                span.start.byte - line_start
            } else {
                raw_line
                    .char_indices()
                    .nth(span.start.column.saturating_sub(1))
                    .map_or(raw_line.len(), |(offset, _)| offset)
            };
        let (shown, caret_column, caret_on_secret) =
            self.mask_secrets(raw_line, line_start, caret_byte);
        let chars: Vec<char> = shown.chars().map(printable).collect();
        let caret_column = caret_column.min(chars.len());
        // Carets as long as a masked secret would give away its length.
        let caret_len = if caret_on_secret {
            REDACTED.len()
        } else if span.end.line == span.start.line && span.end.column > span.start.column {
            span.end.column - span.start.column
        } else {
            1
        };

        // Long lines (minified or binary input) are cut to a window around the caret.
        let window_start = caret_column.saturating_sub(SNIPPET_WIDTH / 2);
        let window_end = (window_start + SNIPPET_WIDTH).min(chars.len());
        let mut text: String = chars[window_start..window_end].iter().collect();
        let mut caret_offset = caret_column - window_start;
        if window_start > 0 {
            text.insert(0, '…');
            caret_offset += 1;
        }
        if window_end < chars.len() {
            text.push('…');
        }
        let caret_len = caret_len
            .min(SNIPPET_WIDTH.saturating_sub(caret_offset))
            .max(1);

        let number = span.start.line.to_string();
        let gutter = " ".repeat(number.len());
        Some(format!(
            "{gutter} |\n{number} | {text}\n{gutter} | {}{}",
            " ".repeat(caret_offset),
            "^".repeat(caret_len)
        ))
    }

    /// Replaces secret values on one line with [`REDACTED`]: the ranges the loader
    /// recorded, and the value after any `...password:` or `...secret:` key. Returns the
    /// masked line, the character column (0-based) that `caret_byte` moved to, and whether
    /// the caret points into a masked value.
    fn mask_secrets(
        &self,
        line: &str,
        line_start: usize,
        caret_byte: usize,
    ) -> (String, usize, bool) {
        let line_end = line_start + line.len();
        let mut cuts: Vec<(usize, usize)> = self
            .secret_ranges
            .iter()
            .filter(|range| range.start < line_end && range.end > line_start)
            .map(|range| {
                (
                    range.start.max(line_start) - line_start,
                    range.end.min(line_end) - line_start,
                )
            })
            .collect();
        cuts.extend(secret_values_by_key(line));
        cuts.sort_unstable();

        let mut masked = String::with_capacity(line.len());
        let mut caret_column = None;
        let mut caret_on_secret = false;
        let mut copied = 0;
        for (start, end) in cuts {
            if end <= copied || !line.is_char_boundary(start) || !line.is_char_boundary(end) {
                continue;
            }
            let start = start.max(copied);
            if caret_column.is_none() && caret_byte < end {
                let before_caret = &line[copied..caret_byte.clamp(copied, start)];
                caret_column = Some(masked.chars().count() + before_caret.chars().count());
                caret_on_secret = caret_byte >= start;
            }
            masked.push_str(&line[copied..start]);
            masked.push_str(REDACTED);
            copied = end;
        }
        let caret_column = caret_column.unwrap_or_else(|| {
            let before_caret = line.get(copied..caret_byte.max(copied)).unwrap_or("");
            masked.chars().count() + before_caret.chars().count()
        });
        masked.push_str(&line[copied..]);
        (masked, caret_column, caret_on_secret)
    }
}

/// Finds the byte offset where the line of `position` starts.
fn line_start_byte(text: &str, position: Position) -> Option<usize> {
    if position.byte <= text.len() && text.is_char_boundary(position.byte) {
        let before = &text[..position.byte];
        return Some(before.rfind('\n').map_or(0, |newline| newline + 1));
    }
    // Positions from the YAML parser always carry a valid byte offset, but fall back to
    // counting lines for positions built by hand.
    let mut start = 0;
    for _ in 1..position.line {
        start += text[start..].find('\n')? + 1;
    }
    Some(start)
}

/// Shows control characters, which could move the cursor or ring the terminal, as `�`,
/// and a tab as one space so that the caret stays aligned.
fn printable(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => '\u{FFFD}',
        c => c,
    }
}

/// Byte ranges of plain values that follow a key whose name contains `password` or
/// `secret`, for example `bindPassword: hunter2` or `{ clientSecret: "s3cr3t" }`.
///
/// A value that starts a mapping or a sequence (`{`, `[`) is a reference and stays visible.
fn secret_values_by_key(line: &str) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let bytes = line.as_bytes();
    for (colon, _) in line.match_indices(':') {
        let key_end = line[..colon].trim_end_matches(['"', '\'']).len();
        let key_start = line[..key_end]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        let key = line[key_start..key_end].to_ascii_lowercase();
        if !(key.contains("password") || key.contains("secret")) {
            continue;
        }

        let mut value_start = colon + 1;
        while value_start < bytes.len()
            && (bytes[value_start] == b' ' || bytes[value_start] == b'\t')
        {
            value_start += 1;
        }
        if value_start >= bytes.len() || matches!(bytes[value_start], b'{' | b'[' | b'#') {
            continue;
        }
        let value_end = line[value_start..]
            .find([',', '}', ']'])
            .or_else(|| line[value_start..].find(" #"))
            .map_or(line.len(), |offset| value_start + offset);
        ranges.push((value_start, value_end.max(value_start + 1).min(line.len())));
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> SourceText<'_> {
        SourceText {
            path: PathBuf::from("spec.yaml"),
            text,
            secret_ranges: Vec::new(),
        }
    }

    fn position(text: &str, line: usize, column: usize) -> Position {
        let line_start: usize = text
            .split_inclusive('\n')
            .take(line - 1)
            .map(str::len)
            .sum();
        let byte = line_start
            + text[line_start..]
                .chars()
                .take(column - 1)
                .map(char::len_utf8)
                .sum::<usize>();
        Position { line, column, byte }
    }

    #[test]
    fn render_places_caret_under_column() {
        let text = "options:\n  keepOrignal: true\n";
        let start = position(text, 2, 3);
        let end = position(text, 2, 14);
        let problem = Problem::new(Some(Span { start, end }), "unknown field `keepOrignal`")
            .with_help("did you mean `keepOriginal`?");

        let rendered = source(text).diagnostic(problem).render();

        assert_eq!(
            rendered,
            "spec.yaml:2:3: error: unknown field `keepOrignal`\n  |\n2 |   keepOrignal: true\n  |   ^^^^^^^^^^^\nhelp: did you mean `keepOriginal`?"
        );
    }

    #[test]
    fn render_without_location_has_no_snippet() {
        let diagnostic = Diagnostic::for_file("big.yaml", "spec file is too large");

        assert_eq!(
            diagnostic.render(),
            "big.yaml: error: spec file is too large"
        );
    }

    #[test]
    fn render_indents_multi_line_help() {
        let mut diagnostic = Diagnostic::for_file("a.yaml", "inline secret");
        diagnostic.help = Some("write one of:\n  a: b\n  c: d".to_owned());

        assert_eq!(
            diagnostic.render(),
            "a.yaml: error: inline secret\nhelp: write one of:\n        a: b\n        c: d"
        );
    }

    #[test]
    fn snippet_masks_recorded_secret_range() {
        let text = "account:\n  pass: hunter2\n";
        let mut source = source(text);
        let value = text.find("hunter2").unwrap();
        source.secret_ranges.push(value..value + "hunter2".len());
        let start = position(text, 2, 9);

        let diagnostic = source.diagnostic(Problem::new(Some(Span::at(start)), "inline"));
        let snippet = diagnostic.snippet.unwrap();

        assert!(!snippet.contains("hunter2"), "{snippet}");
        assert!(snippet.contains("pass: [redacted]"), "{snippet}");
    }

    #[test]
    fn snippet_masks_values_of_password_keys() {
        for line in [
            "  bindPassword: hunter2",
            "  password: \"hunter2\"",
            "  credential: {clientSecret: hunter2, x: 1}",
            "  'password': hunter2 # comment",
        ] {
            let text = format!("{line}\n");
            let start = position(&text, 1, 3);

            let diagnostic = source(&text).diagnostic(Problem::new(Some(Span::at(start)), "x"));
            let snippet = diagnostic.snippet.unwrap();

            assert!(!snippet.contains("hunter2"), "{snippet}");
        }
    }

    #[test]
    fn snippet_keeps_secret_references_visible() {
        let text = "  password: { fromEnv: SIU_PASSWORD }\n";
        let start = position(text, 1, 3);

        let diagnostic = source(text).diagnostic(Problem::new(Some(Span::at(start)), "x"));

        assert!(
            diagnostic
                .snippet
                .unwrap()
                .contains("fromEnv: SIU_PASSWORD")
        );
    }

    #[test]
    fn snippet_replaces_control_characters() {
        let text = "\u{1b}[31mkey: value\n";
        let start = position(text, 1, 1);

        let diagnostic = source(text).diagnostic(Problem::new(Some(Span::at(start)), "x"));

        assert!(!diagnostic.snippet.unwrap().contains('\u{1b}'));
    }

    #[test]
    fn snippet_crops_long_lines_around_column() {
        let text = format!("{}X{}\n", "a".repeat(500), "b".repeat(500));
        let start = position(&text, 1, 501);

        let diagnostic = source(&text).diagnostic(Problem::new(Some(Span::at(start)), "x"));
        let snippet = diagnostic.snippet.unwrap();
        let lines: Vec<&str> = snippet.lines().collect();

        assert!(lines[1].chars().count() < 120, "{snippet}");
        let caret = lines[2].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[1].chars().nth(caret), Some('X'), "{snippet}");
    }
}
