//! Problems found in a spec file, located by line and column and rendered like compiler
//! errors.
//!
//! A [`Diagnostic`] carries what a person or a CI bot needs to fix one problem: the file,
//! the 1-based line and column, the message and an optional hint. Its snippet shows the
//! offending source line with a caret under the column. Snippets mask secrets written
//! inline: the loader passes the byte ranges of such values, and the rest of any line after
//! a key such as `password:` or `clientSecret:` is masked as well unless it is a secret
//! reference. Messages show invisible characters as escapes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

/// Text shown in place of a secret value in snippets.
pub(crate) const REDACTED: &str = "[redacted]";

/// Maximum width of the part of a source line shown in a snippet, in characters.
const SNIPPET_WIDTH: usize = 100;

/// One problem in a spec file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The spec file, as given on the command line. JSON shows a path that is not UTF-8
    /// with replacement characters.
    #[serde(serialize_with = "serialize_path_lossy")]
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
        let message = message.into();
        Self {
            path: path.into(),
            line: None,
            column: None,
            field: None,
            message: escape_invisible(&message).into_owned(),
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

/// Serializes a path as a string, with replacement characters where it is not UTF-8.
fn serialize_path_lossy<S: serde::Serializer>(
    path: &std::path::Path,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", escape_invisible(&self.path.to_string_lossy()))?;
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
    /// Byte ranges of the source that may hold a secret, which every snippet masks.
    pub(crate) hidden: Vec<Range<usize>>,
}

impl Problem {
    pub(crate) fn new(span: Option<Span>, message: impl Into<String>) -> Self {
        Self {
            span,
            field: None,
            message: message.into(),
            help: None,
            hidden: Vec::new(),
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
    pub(crate) secret_ranges: Vec<Range<usize>>,
}

impl SourceText<'_> {
    /// Turns a problem into a diagnostic with a snippet of the line it points at.
    pub(crate) fn diagnostic(&self, problem: Problem) -> Diagnostic {
        self.diagnostics(vec![problem])
            .pop()
            .expect("one diagnostic per problem")
    }

    /// Turns problems into diagnostics with snippets.
    ///
    /// The ranges that a problem hides are masked in every snippet, and the masked parts
    /// of each source line are worked out once. Each snippet then costs time in
    /// proportion to its width, so thousands of problems on one long line stay cheap.
    pub(crate) fn diagnostics(&self, problems: Vec<Problem>) -> Vec<Diagnostic> {
        let mut hidden = self.secret_ranges.clone();
        hidden.extend(
            problems
                .iter()
                .flat_map(|problem| problem.hidden.iter().cloned()),
        );
        hidden.sort_unstable_by_key(|range| (range.start, range.end));
        let lines = LineIndex::new(self.text);
        let mut cuts_by_line: HashMap<usize, Vec<Range<usize>>> = HashMap::new();

        problems
            .into_iter()
            .map(|problem| {
                let snippet = problem.span.and_then(|span| {
                    let line = lines.line_of(self.text, span.start)?;
                    let cuts = cuts_by_line
                        .entry(line.start)
                        .or_insert_with(|| line_cuts(self.text, line.clone(), &hidden));
                    Some(snippet(self.text, line, cuts, span))
                });
                Diagnostic {
                    path: self.path.clone(),
                    line: problem.span.map(|span| span.start.line),
                    column: problem.span.map(|span| span.start.column),
                    field: problem
                        .field
                        .map(|field| crate::secret::shown_field_path(&field).to_owned()),
                    message: escape_invisible(&shorten_quoted(&problem.message)).into_owned(),
                    help: problem.help.map(|help| {
                        help.lines()
                            .map(escape_invisible)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }),
                    snippet,
                }
            })
            .collect()
    }
}

/// Byte offsets where the lines of a text start. A line ends at `\n`, `\r\n` or a lone
/// `\r`, as in YAML.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        for (index, &byte) in bytes.iter().enumerate() {
            let ends_line =
                byte == b'\n' || (byte == b'\r' && bytes.get(index + 1) != Some(&b'\n'));
            if ends_line {
                starts.push(index + 1);
            }
        }
        Self { starts }
    }

    /// Returns the byte range of the line that contains `position`, without its line
    /// break. Positions from the YAML parser carry a byte offset; positions built by hand
    /// may only have a valid line number.
    fn line_of(&self, text: &str, position: Position) -> Option<Range<usize>> {
        let number = if position.byte <= text.len() && text.is_char_boundary(position.byte) {
            self.starts.partition_point(|&start| start <= position.byte)
        } else {
            position.line
        };
        let start = *self.starts.get(number.checked_sub(1)?)?;
        let next = self.starts.get(number).copied().unwrap_or(text.len());
        let line = &text[start..next];
        let end = start + line.trim_end_matches(['\n', '\r']).len();
        Some(start..end)
    }
}

/// Returns the parts of `line` that snippets mask, relative to the line start: the hidden
/// ranges that overlap it and the values of keys that look like secrets. The parts are
/// sorted, disjoint and on character boundaries.
fn line_cuts(text: &str, line: Range<usize>, hidden: &[Range<usize>]) -> Vec<Range<usize>> {
    let source = &text[line.clone()];
    // `hidden` is sorted by start, so every range that overlaps the line starts before
    // its end. Ranges are short, except for one that covers a whole block.
    let overlapping = hidden.partition_point(|range| range.start < line.end);
    let mut cuts: Vec<Range<usize>> = hidden[..overlapping]
        .iter()
        .filter(|range| range.end > line.start && range.end > range.start)
        .map(|range| range.start.max(line.start) - line.start..range.end.min(line.end) - line.start)
        .collect();
    cuts.extend(secret_values_by_key(source));

    for cut in &mut cuts {
        while !source.is_char_boundary(cut.start) {
            cut.start -= 1;
        }
        while !source.is_char_boundary(cut.end) {
            cut.end += 1;
        }
    }
    cuts.sort_unstable_by_key(|cut| (cut.start, cut.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(cuts.len());
    for cut in cuts {
        match merged.last_mut() {
            Some(last) if cut.start <= last.end => last.end = last.end.max(cut.end),
            _ => merged.push(cut),
        }
    }
    merged
}

/// One unit of a masked line as shown in a snippet.
#[derive(Clone, Copy)]
enum SnippetUnit {
    Char(char),
    Redacted,
}

impl SnippetUnit {
    fn width(self) -> usize {
        match self {
            Self::Char(_) => 1,
            Self::Redacted => REDACTED.len(),
        }
    }
}

/// A source line with its masked parts, walked unit by unit.
struct MaskedLine<'l> {
    text: &'l str,
    cuts: &'l [Range<usize>],
}

impl MaskedLine<'_> {
    fn cut_containing(&self, byte: usize) -> Option<&Range<usize>> {
        let index = self.cuts.partition_point(|cut| cut.end <= byte);
        self.cuts.get(index).filter(|cut| cut.start <= byte)
    }

    /// Returns the unit that starts at `byte` and the offset just after it.
    fn next(&self, byte: usize) -> Option<(SnippetUnit, usize)> {
        if let Some(cut) = self.cut_containing(byte) {
            return Some((SnippetUnit::Redacted, cut.end));
        }
        let c = self.text.get(byte..)?.chars().next()?;
        Some((SnippetUnit::Char(c), byte + c.len_utf8()))
    }

    /// Returns the unit that ends at `byte` and the offset where it starts.
    fn previous(&self, byte: usize) -> Option<(SnippetUnit, usize)> {
        let c = self.text.get(..byte)?.chars().next_back()?;
        let start = byte - c.len_utf8();
        match self.cut_containing(start) {
            Some(cut) => Some((SnippetUnit::Redacted, cut.start)),
            None => Some((SnippetUnit::Char(c), start)),
        }
    }
}

/// Renders `line` with a gutter and carets under `span`, or under its start alone when
/// the span ends on a later line or is empty. Lines wider than [`SNIPPET_WIDTH`] are cut
/// to a window around the caret.
fn snippet(text: &str, line: Range<usize>, cuts: &[Range<usize>], span: Span) -> String {
    let source = &text[line.clone()];
    let masked = MaskedLine { text: source, cuts };

    let mut caret = if span.start.byte >= line.start && span.start.byte <= line.end {
        span.start.byte - line.start
    } else {
        source
            .char_indices()
            .nth(span.start.column.saturating_sub(1))
            .map_or(source.len(), |(offset, _)| offset)
    };
    while !source.is_char_boundary(caret) {
        caret -= 1;
    }
    let caret_on_secret = match masked.cut_containing(caret) {
        Some(cut) => {
            caret = cut.start;
            true
        }
        None => false,
    };

    // Up to half the width before the caret, then the rest after it.
    let mut before = Vec::new();
    let mut before_width = 0;
    let mut cursor = caret;
    while before_width < SNIPPET_WIDTH / 2 {
        let Some((unit, start)) = masked.previous(cursor) else {
            break;
        };
        before_width += unit.width();
        before.push(unit);
        cursor = start;
    }
    let cut_before = cursor > 0;

    let mut after = Vec::new();
    let mut width = before_width;
    let mut cursor = caret;
    while width < SNIPPET_WIDTH {
        let Some((unit, end)) = masked.next(cursor) else {
            break;
        };
        width += unit.width();
        after.push((unit, cursor));
        cursor = end;
    }
    let cut_after = cursor < source.len();

    // Carets as long as a masked secret would give away its length, so a caret on a
    // secret is as long as the marker.
    let span_end = span.end.byte.saturating_sub(line.start);
    let caret_len = if caret_on_secret {
        REDACTED.len()
    } else if span.end.line == span.start.line && span.end.byte > span.start.byte {
        after
            .iter()
            .take_while(|(_, start)| *start < span_end)
            .map(|(unit, _)| unit.width())
            .sum()
    } else {
        1
    };

    let mut shown = String::new();
    if cut_before {
        shown.push('…');
    }
    for unit in before
        .iter()
        .rev()
        .chain(after.iter().map(|(unit, _)| unit))
    {
        match unit {
            SnippetUnit::Char(c) => shown.push(printable(*c)),
            SnippetUnit::Redacted => shown.push_str(REDACTED),
        }
    }
    if cut_after {
        shown.push('…');
    }
    let caret_offset = before_width + usize::from(cut_before);

    let number = span.start.line.to_string();
    let gutter = " ".repeat(number.len());
    format!(
        "{gutter} |\n{number} | {shown}\n{gutter} | {}{}",
        " ".repeat(caret_offset),
        "^".repeat(caret_len.max(1))
    )
}

/// Returns whether `c` is invisible or moves the cursor when printed: control
/// characters, and the format characters that change text direction or have no width.
pub(crate) fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{AD}'
                | '\u{61C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Replaces invisible characters in `text` with escapes such as `\n` or `\u{200b}`, so
/// that a value in a message cannot move the cursor, change the terminal's colors or hide
/// a character.
pub fn escape_invisible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_invisible(c) {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Maximum number of characters of a value quoted in a message.
const MAX_QUOTED_CHARS: usize = 100;

/// Shortens each part of `message` between backticks that is longer than
/// [`MAX_QUOTED_CHARS`] to its start and end around `…`, so that a huge value in the spec
/// does not make a huge message. The snippet still shows where the value is.
fn shorten_quoted(message: &str) -> Cow<'_, str> {
    if message.len() <= MAX_QUOTED_CHARS {
        return Cow::Borrowed(message);
    }
    let mut shortened = String::with_capacity(message.len().min(1024));
    let mut changed = false;
    for (index, part) in message.split('`').enumerate() {
        if index > 0 {
            shortened.push('`');
        }
        let quoted = index % 2 == 1;
        let head_end = part
            .char_indices()
            .nth(MAX_QUOTED_CHARS)
            .map(|(end, _)| end);
        match head_end {
            Some(_) if quoted => {
                let head: String = part.chars().take(MAX_QUOTED_CHARS - 30).collect();
                let tail_start = part
                    .char_indices()
                    .rev()
                    .nth(19)
                    .map_or(0, |(start, _)| start);
                shortened.push_str(&head);
                shortened.push('…');
                shortened.push_str(&part[tail_start..]);
                changed = true;
            }
            _ => shortened.push_str(part),
        }
    }
    if changed {
        Cow::Owned(shortened)
    } else {
        Cow::Borrowed(message)
    }
}

/// Shows invisible characters as `�`, one column wide, so that the caret stays aligned,
/// and a tab as one space.
fn printable(c: char) -> char {
    match c {
        '\t' => ' ',
        c if is_invisible(c) => '\u{FFFD}',
        c => c,
    }
}

/// Returns whether a key name suggests that its value is a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_lowercase();
    ["pass", "pwd", "secret", "token"]
        .iter()
        .any(|word| key.contains(word))
}

/// Byte ranges of the values of keys whose names suggest a secret, for example
/// `bindPassword: hunter2` or `{ clientSecret: "s3cr3t" }`.
///
/// Everything after such a key up to the end of the line is masked, comments included,
/// unless it is a well-formed reference such as `{ fromEnv: NAME }`. This applies even when
/// the line does not parse, so it also covers the lines that the source map cannot
/// describe.
fn secret_values_by_key(line: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    // The text before this offset is already masked or is a reference.
    let mut scanned = 0;
    for (colon, _) in line.match_indices(':') {
        if colon < scanned {
            continue;
        }
        if !is_secret_key(key_before(line, colon)) {
            continue;
        }

        let rest = &line[colon + 1..];
        let value_start = colon + 1 + (rest.len() - rest.trim_start().len());
        if value_start >= line.len() {
            continue;
        }
        let mut masked_from = value_start;
        if let Some(length) = reference_length(&line[value_start..]) {
            let after = &line[value_start + length..];
            let trimmed = after.trim_start();
            if trimmed.is_empty() || trimmed.starts_with([',', '}', ']']) {
                scanned = value_start + length;
                continue;
            }
            masked_from = line.len() - trimmed.len();
        }
        ranges.push(masked_from..line.len());
        scanned = line.len();
    }
    ranges
}

/// Returns the key that ends at the `:` at byte `colon` of `line`, without quotes.
fn key_before(line: &str, colon: usize) -> &str {
    let key_end = line[..colon].trim_end_matches(['"', '\'']).len();
    let key_start = line[..key_end]
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(index, c)| index + c.len_utf8());
    &line[key_start..key_end]
}

/// Returns the byte range of the line that contains `byte` when that line may continue
/// the value of a key that names a secret.
///
/// A syntax error leaves no source map to say where a value ends, so this works on the
/// text: the line belongs to the nearest line above it that is indented less, or as much
/// when it starts with `}` or `]`, which close a flow collection opened on such a line.
/// When that line has a key such as `password:`, the whole line is hidden, as in
/// `password: abc` followed by `    hunter2: x`.
pub(crate) fn secret_continuation(text: &str, byte: usize) -> Option<Range<usize>> {
    let lines = LineIndex::new(text);
    let number = lines.starts.partition_point(|&start| start <= byte);
    let position = Position {
        line: number,
        column: 1,
        byte: lines.starts[number - 1],
    };
    let line = lines.line_of(text, position)?;
    let indent = |line: &str| line.len() - line.trim_start_matches([' ', '\t']).len();
    let error_line = &text[line.clone()];
    let error_indent = indent(error_line);
    let closes_flow = error_line.trim_start().starts_with(['}', ']']);

    for above in (1..number).rev() {
        let start = lines.starts[above - 1];
        let candidate = text[start..lines.starts[above]].trim_end_matches(['\n', '\r']);
        let content = candidate.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let candidate_indent = indent(candidate);
        if candidate_indent < error_indent || (closes_flow && candidate_indent == error_indent) {
            // `? password` is an explicit key, whose value follows on a `:` line.
            let explicit_key = content
                .strip_prefix('?')
                .is_some_and(|key| is_secret_key(key.trim()));
            let has_secret_key = explicit_key
                || candidate
                    .match_indices(':')
                    .any(|(colon, _)| is_secret_key(key_before(candidate, colon)));
            return has_secret_key.then_some(line);
        }
    }
    None
}

/// Returns the length of the well-formed secret reference at the start of `text`, such as
/// `{ fromEnv: AD_PASSWORD }` or `{fromFile: secrets/ad.password}`.
fn reference_length(text: &str) -> Option<usize> {
    let inner_end = text.strip_prefix('{')?.find('}')? + 1;
    let (key, value) = text[1..inner_end].split_once(':')?;
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .or_else(|| {
            value
                .strip_prefix('\'')
                .and_then(|value| value.strip_suffix('\''))
        })
        .unwrap_or(value);
    let valid = match key.trim() {
        "fromEnv" => crate::validate::values::check_env_name(value).is_ok(),
        "fromFile" => !value.is_empty() && !value.contains(['{', '[', ',', '#', '"', '\'']),
        _ => false,
    };
    valid.then_some(inner_end + 1)
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
    fn snippet_handles_non_ascii_before_key() {
        for (line, shown) in [
            ("éx: 1", "éx: 1"),
            ("  ключ: значение", "  ключ: значение"),
            ("  kéyPassword: hunter2", "  kéyPassword: [redacted]"),
        ] {
            let text = format!("{line}\n");
            let start = position(&text, 1, 3);

            let diagnostic = source(&text).diagnostic(Problem::new(Some(Span::at(start)), "x"));
            let snippet = diagnostic.snippet.unwrap();

            assert!(snippet.contains(shown), "{snippet}");
        }
    }

    #[test]
    fn snippet_masks_rest_of_line_after_secret_key() {
        let repeated = format!("bogus: \"{}\"\n", "password:".repeat(1000));
        for text in [
            "  password: abc #def\n",
            "  password: { fromEnv: AD_PASSWORD } hunter2\n",
            "  password: { fromEnv: AD_PASSWORD } # hunter2\n",
            "  password: [hunter2]\n",
            "  password: {hunter2}\n",
            "  password: { fromEnv: hunter2! }\n",
            &repeated,
        ] {
            let start = position(text, 1, 1);

            let diagnostic = source(text).diagnostic(Problem::new(Some(Span::at(start)), "x"));
            let snippet = diagnostic.snippet.unwrap();

            assert!(!snippet.contains("hunter2"), "{snippet}");
            assert!(!snippet.contains("def"), "{snippet}");
            assert!(!snippet.contains("password:password"), "{snippet}");
        }
    }

    #[test]
    fn snippet_shows_references_after_secret_keys() {
        for line in [
            "  password: { fromEnv: SIU_PASSWORD }",
            "  password: {fromFile: secrets/svc.password}",
            "  credential: {clientSecret: { fromEnv: APP_SECRET }, x: 1}",
        ] {
            let text = format!("{line}\n");
            let start = position(&text, 1, 3);

            let diagnostic = source(&text).diagnostic(Problem::new(Some(Span::at(start)), "x"));

            assert!(diagnostic.snippet.unwrap().contains(line), "{line}");
        }
    }

    #[test]
    fn snippet_masks_secret_that_starts_before_window() {
        let secret = "s".repeat(300);
        let text = format!("  password: {secret}\n");
        let start = position(&text, 1, 250);

        let diagnostic = source(&text).diagnostic(Problem::new(Some(Span::at(start)), "x"));
        let snippet = diagnostic.snippet.unwrap();
        let lines: Vec<&str> = snippet.lines().collect();

        assert!(!snippet.contains("sss"), "{snippet}");
        let caret = lines[2].chars().position(|c| c == '^').unwrap();
        assert_eq!(
            lines[1].chars().skip(caret).collect::<String>(),
            "[redacted]",
            "{snippet}"
        );
        assert_eq!(
            lines[2].matches('^').count(),
            "[redacted]".len(),
            "{snippet}"
        );
    }

    #[test]
    fn diagnostics_share_one_long_line() {
        let mut text = String::from("users: [");
        let mut starts = Vec::new();
        for index in 0..2000 {
            if index > 0 {
                text.push_str(", ");
            }
            starts.push(text.len());
            text.push_str(&format!("u{index}"));
        }
        text.push_str("]\n");
        let problems = starts
            .iter()
            .map(|&byte| {
                let start = Position {
                    line: 1,
                    column: byte + 1,
                    byte,
                };
                Problem::new(Some(Span::at(start)), "x")
            })
            .collect();

        let diagnostics = source(&text).diagnostics(problems);

        assert_eq!(diagnostics.len(), starts.len());
        for (index, diagnostic) in diagnostics.iter().enumerate() {
            let snippet = diagnostic.snippet.as_deref().unwrap();
            let lines: Vec<&str> = snippet.lines().collect();
            let caret = lines[2].chars().position(|c| c == '^').unwrap();
            let pointed: String = lines[1]
                .chars()
                .skip(caret)
                .take_while(|c| c.is_alphanumeric())
                .collect();
            assert_eq!(pointed, format!("u{index}"), "{snippet}");
        }
    }

    #[test]
    fn diagnostic_shortens_long_quoted_values() {
        let value = "v".repeat(10_000);
        let problem = Problem::new(None, format!("invalid `a.b`: `{value}` is not valid"));

        let diagnostic = source("").diagnostic(problem);

        assert!(diagnostic.message.len() < 200, "{}", diagnostic.message);
        assert!(
            diagnostic.message.starts_with("invalid `a.b`: `vvv"),
            "{}",
            diagnostic.message
        );
        assert!(
            diagnostic.message.ends_with("vvv` is not valid"),
            "{}",
            diagnostic.message
        );
    }

    #[test]
    fn secret_continuation_finds_lines_of_secret_values() {
        for (text, line) in [
            (
                "account:\n  password: abc\n    hunter2: x\n",
                "    hunter2: x",
            ),
            (
                "account:\n  password: |\n    a\n   hunter2: x\n",
                "   hunter2: x",
            ),
            (
                "a:\n  password: {\n    fromEnv: X\n  } hunter2\n",
                "  } hunter2",
            ),
            (
                "a:\n  password: 'abc\n\n    # c\n    hunter2' x\n",
                "    hunter2' x",
            ),
            ("a:\n? password\n  : hunter2 : x\n", "  : hunter2 : x"),
        ] {
            let byte = text.find(line).unwrap();

            let range = secret_continuation(text, byte + 2);

            assert_eq!(range, Some(byte..byte + line.len()), "{text:?}");
        }
    }

    #[test]
    fn secret_continuation_ignores_other_values() {
        for text in [
            "account:\n  upn: abc\n    def: x\n",
            "account:\n  password: { fromEnv: X }\n  upn: : x\n",
            "password: x\nupn: : x\n",
        ] {
            let byte = text.rfind(": x").unwrap();

            assert_eq!(secret_continuation(text, byte), None, "{text:?}");
        }
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
