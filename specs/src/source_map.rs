//! A first pass over the YAML event stream that checks the document's shape and records
//! where each value sits.
//!
//! serde-saphyr reports the location of the error it stops at, but semantic validation
//! needs the location of any value, so this pass maps every field path (`account.upn`,
//! `scope.users[2]`) to the span of its key and its value. The same pass enforces the
//! structural limits before any deserialization runs: one document, a mapping at the top,
//! bounded nesting and bounded alias expansion. Aliases are counted, never expanded, so
//! an alias bomb costs time proportional to its text.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{self, Event, Parser};

use crate::diagnostic::{Position, Problem, Span};

/// Maximum nesting depth of mappings and sequences. A valid spec nests six deep.
pub const MAX_DEPTH: usize = 32;

/// Maximum number of nodes in a document once every alias is expanded. A 10,000-line
/// spec has about 20,000.
pub const MAX_EXPANDED_NODES: usize = 250_000;

/// Kind of a node in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    Scalar,
    Mapping,
    Sequence,
    Alias,
}

/// Location of a value: the span of its key (absent for sequence items and the root)
/// and the span of the value itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeLocation {
    pub(crate) key: Option<Span>,
    pub(crate) value: Span,
    pub(crate) kind: NodeKind,
}

/// Field paths mapped to their locations.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    nodes: HashMap<String, NodeLocation>,
    /// Paths of mappings and sequences by the line and column where they start, to name
    /// the field that a deserializer error points at.
    containers_by_start: HashMap<(usize, usize), String>,
    /// Paths of keys and scalar values by line and column.
    scalars_by_start: HashMap<(usize, usize), String>,
}

impl SourceMap {
    /// Returns the location of the value at `path`, if the document has one.
    pub(crate) fn get(&self, path: &str) -> Option<&NodeLocation> {
        self.nodes.get(path)
    }

    /// Returns the span of the value at `path`, or of its nearest ancestor that is present,
    /// so that a problem with a missing field points at the block that should contain it.
    pub(crate) fn value_span(&self, path: &str) -> Option<Span> {
        let mut current = path;
        loop {
            if let Some(node) = self.nodes.get(current) {
                return Some(node.value);
            }
            current = parent_path(current)?;
        }
    }

    /// Returns the span of the key of `path`, falling back to its value and then to its
    /// nearest present ancestor.
    pub(crate) fn key_span(&self, path: &str) -> Option<Span> {
        match self.nodes.get(path) {
            Some(node) => Some(node.key.unwrap_or(node.value)),
            None => self.value_span(path),
        }
    }

    /// Returns the path of the mapping or sequence that starts at `line`:`column`.
    pub(crate) fn container_at(&self, line: usize, column: usize) -> Option<&str> {
        self.containers_by_start
            .get(&(line, column))
            .map(String::as_str)
    }

    /// Returns the path of the innermost mapping or sequence whose text contains
    /// `line`:`column`.
    pub(crate) fn container_containing(&self, line: usize, column: usize) -> Option<&str> {
        let position = (line, column);
        self.nodes
            .iter()
            .filter(|(_, node)| matches!(node.kind, NodeKind::Mapping | NodeKind::Sequence))
            .filter(|(_, node)| {
                let start = (node.value.start.line, node.value.start.column);
                let end = (node.value.end.line, node.value.end.column);
                start <= position && position <= end
            })
            .max_by_key(|(path, node)| (node.value.start.line, node.value.start.column, path.len()))
            .map(|(path, _)| path.as_str())
    }

    /// Returns the path of the key or scalar value that starts at `line`:`column`.
    pub(crate) fn scalar_at(&self, line: usize, column: usize) -> Option<&str> {
        self.scalars_by_start
            .get(&(line, column))
            .map(String::as_str)
    }

    /// Iterates over every recorded path with its location.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &NodeLocation)> {
        self.nodes.iter().map(|(path, node)| (path.as_str(), node))
    }
}

/// Returns the path of the value that contains `path`: `a.b` for `a.b.c` and `a.b[2]`.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Maximum number of characters of one key kept in a path. Field names are far shorter,
/// and a longer key is cut and ends in `…`.
const MAX_KEY_CHARS: usize = 64;

/// Maximum length of a recorded path in bytes. The longest field path of a spec has about
/// 60, so a node with a longer path is not a field of the format. Such nodes are not
/// recorded, which bounds the memory of the map at this many bytes per node.
pub(crate) const MAX_PATH_BYTES: usize = 256;

/// Joins a mapping key onto a path, cutting a key longer than [`MAX_KEY_CHARS`].
pub(crate) fn join_key(path: &str, key: &str) -> String {
    let key = match key.char_indices().nth(MAX_KEY_CHARS) {
        Some((cut, _)) => format!("{}…", &key[..cut]).into(),
        None => std::borrow::Cow::Borrowed(key),
    };
    if path.is_empty() {
        key.into_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a key onto a path, or returns `None` when the result is too long to record.
fn recorded_key_path(path: &str, key: &str) -> Option<String> {
    Some(join_key(path, key)).filter(|path| path.len() <= MAX_PATH_BYTES)
}

/// Joins a sequence index onto a path.
pub(crate) fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

/// An open mapping or sequence during the walk.
struct Frame {
    path: String,
    state: FrameState,
    /// Nodes in this container with aliases expanded, counting the container itself.
    expanded: usize,
    /// The anchor defined on this container, or 0.
    anchor: usize,
}

enum FrameState {
    /// A mapping waiting for a key (`None`) or for the value of the key it holds.
    Mapping {
        pending_key: Option<(String, Span)>,
    },
    Sequence {
        next_index: usize,
    },
    /// A mapping or sequence used as a mapping key, whose contents are not recorded.
    ComplexKey,
    /// A mapping or sequence whose path is too long to record, or one inside such a
    /// container or a complex key. Its contents are walked but not recorded.
    Unrecorded,
}

/// Walks the event stream of `text`, checking its structure and recording locations.
///
/// Returns the first structural problem: a syntax error, no document, more than one
/// document, a top level other than a mapping, nesting deeper than [`MAX_DEPTH`], or
/// more than [`MAX_EXPANDED_NODES`] nodes once aliases are expanded.
pub(crate) fn build(text: &str) -> Result<SourceMap, Box<Problem>> {
    let options = granit_parser::options! {
        emit_comments: false,
        block_nesting_limit: MAX_DEPTH + 1,
        flow_nesting_limit: MAX_DEPTH + 1,
    };
    let parser = Parser::new_from_str_with_options(text, options);

    let mut map = SourceMap::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchor_sizes: HashMap<usize, usize> = HashMap::new();
    let mut expanded_total: usize = 0;
    let mut documents = 0;
    let mut root_seen = false;

    for item in parser {
        let (event, raw_span) = item.map_err(|error| scan_problem(text, &error))?;
        let span = convert_span(text, &raw_span);

        let (kind, anchor, size) = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(Problem::new(
                        Some(span),
                        "the file contains more than one YAML document",
                    )
                    .with_help("keep one spec per file and remove the `---` separator")
                    .into());
                }
                continue;
            }
            Event::Scalar(_, _, anchor, _) => (NodeKind::Scalar, anchor, 1),
            Event::Alias(id) => (
                NodeKind::Alias,
                0,
                anchor_sizes.get(&id).copied().unwrap_or(1),
            ),
            Event::MappingStart(_, anchor, _) => (NodeKind::Mapping, anchor, 1),
            Event::SequenceStart(_, anchor, _) => (NodeKind::Sequence, anchor, 1),
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(frame) = stack.pop() else { continue };
                if !matches!(frame.state, FrameState::ComplexKey | FrameState::Unrecorded)
                    && let Some(node) = map.nodes.get_mut(&frame.path)
                {
                    node.value.end = span.end;
                }
                if frame.anchor != 0 {
                    anchor_sizes.insert(frame.anchor, frame.expanded);
                }
                if let Some(parent) = stack.last_mut() {
                    parent.expanded = parent.expanded.saturating_add(frame.expanded);
                    finish_child(parent, matches!(frame.state, FrameState::ComplexKey));
                }
                continue;
            }
            _ => continue,
        };

        expanded_total = expanded_total.saturating_add(size);
        if expanded_total > MAX_EXPANDED_NODES {
            return Err(Problem::new(
                Some(span),
                format!(
                    "the document has more than {MAX_EXPANDED_NODES} values once its aliases are expanded"
                ),
            )
            .with_help("write the values out instead of repeating large anchors with `*` aliases").into());
        }

        let scalar_text = match &event {
            Event::Scalar(value, ..) => Some(value.as_ref()),
            _ => None,
        };

        // The root node: only a mapping can be a spec.
        if stack.is_empty() {
            if root_seen {
                continue;
            }
            root_seen = true;
            if kind != NodeKind::Mapping {
                let found = match kind {
                    NodeKind::Sequence => "a sequence",
                    NodeKind::Alias => "an alias",
                    _ if scalar_text.is_some_and(str::is_empty) => "an empty document",
                    _ => "a scalar",
                };
                return Err(Problem::new(
                    Some(span),
                    format!("expected a mapping at the top of the spec, found {found}"),
                )
                .with_help("a spec starts with `apiVersion: siu/v1` and `kind: SentItemsUpdate`")
                .into());
            }
            map.record("", None, span, kind);
            stack.push(Frame {
                path: String::new(),
                state: FrameState::Mapping { pending_key: None },
                expanded: 1,
                anchor,
            });
            continue;
        }

        if stack.len() >= MAX_DEPTH && matches!(kind, NodeKind::Mapping | NodeKind::Sequence) {
            return Err(Problem::new(
                Some(span),
                format!("the document nests mappings and sequences more than {MAX_DEPTH} deep"),
            )
            .into());
        }

        let parent = stack.last_mut().expect("the stack is not empty");
        let child_path = match &mut parent.state {
            FrameState::ComplexKey | FrameState::Unrecorded => None,
            FrameState::Mapping { pending_key: None } => {
                // This node is a key.
                match scalar_text {
                    Some(key) => {
                        let key_path = join_key(&parent.path, key);
                        if key_path.len() <= MAX_PATH_BYTES {
                            map.scalars_by_start
                                .insert((span.start.line, span.start.column), key_path);
                        }
                        // The path keeps at most MAX_KEY_CHARS of the key, so the rest
                        // of a long key need not be kept either.
                        let kept = key
                            .char_indices()
                            .nth(MAX_KEY_CHARS + 1)
                            .map_or(key, |(cut, _)| &key[..cut]);
                        parent.state = FrameState::Mapping {
                            pending_key: Some((kept.to_owned(), span)),
                        };
                    }
                    None if kind == NodeKind::Alias => {
                        parent.state = FrameState::Mapping {
                            pending_key: Some(("*".to_owned(), span)),
                        };
                    }
                    None => {
                        stack.push(Frame {
                            path: String::new(),
                            state: FrameState::ComplexKey,
                            expanded: 1,
                            anchor,
                        });
                    }
                }
                if let Event::Scalar(..) = event
                    && anchor != 0
                {
                    anchor_sizes.insert(anchor, 1);
                }
                if let Some(frame) = stack.last_mut()
                    && !matches!(frame.state, FrameState::ComplexKey)
                {
                    frame.expanded = frame.expanded.saturating_add(size);
                }
                continue;
            }
            FrameState::Mapping {
                pending_key: Some((key, key_span)),
            } => recorded_key_path(&parent.path, key).map(|path| (path, Some(*key_span))),
            FrameState::Sequence { next_index } => Some(join_index(&parent.path, *next_index))
                .filter(|path| path.len() <= MAX_PATH_BYTES)
                .map(|path| (path, None)),
        };

        match kind {
            NodeKind::Mapping | NodeKind::Sequence => {
                let (path, state) = match child_path {
                    Some((path, key_span)) => {
                        map.record(&path, key_span, span, kind);
                        let state = if kind == NodeKind::Mapping {
                            FrameState::Mapping { pending_key: None }
                        } else {
                            FrameState::Sequence { next_index: 0 }
                        };
                        (path, state)
                    }
                    None => (String::new(), FrameState::Unrecorded),
                };
                stack.push(Frame {
                    path,
                    state,
                    expanded: 1,
                    anchor,
                });
            }
            NodeKind::Scalar | NodeKind::Alias => {
                if let Some((path, key_span)) = child_path {
                    if kind == NodeKind::Scalar {
                        map.scalars_by_start
                            .insert((span.start.line, span.start.column), path.clone());
                    }
                    map.record(&path, key_span, span, kind);
                }
                if anchor != 0 {
                    anchor_sizes.insert(anchor, 1);
                }
                let parent = stack.last_mut().expect("the stack is not empty");
                parent.expanded = parent.expanded.saturating_add(size);
                finish_child(parent, false);
            }
        }
    }

    if !root_seen {
        let end = end_position(text);
        return Err(
            Problem::new(Some(Span::at(end)), "the file contains no YAML document")
                .with_help("a spec starts with `apiVersion: siu/v1` and `kind: SentItemsUpdate`")
                .into(),
        );
    }
    Ok(map)
}

impl SourceMap {
    fn record(&mut self, path: &str, key: Option<Span>, value: Span, kind: NodeKind) {
        if matches!(kind, NodeKind::Mapping | NodeKind::Sequence) {
            self.containers_by_start
                .insert((value.start.line, value.start.column), path.to_owned());
        }
        self.nodes
            .insert(path.to_owned(), NodeLocation { key, value, kind });
    }
}

/// Moves a container on to its next child once the current one is complete.
fn finish_child(frame: &mut Frame, was_complex_key: bool) {
    match &mut frame.state {
        FrameState::Mapping { pending_key } => {
            if was_complex_key {
                // A complex key: its value follows under a placeholder name.
                *pending_key = Some(("?".to_owned(), Span::default()));
            } else {
                *pending_key = None;
            }
        }
        FrameState::Sequence { next_index } => *next_index += 1,
        FrameState::ComplexKey | FrameState::Unrecorded => {}
    }
}

/// Converts a parser span (1-based line, 0-based column) to ours (both 1-based).
fn convert_span(text: &str, span: &granit_parser::Span) -> Span {
    Span {
        start: convert_marker(text, &span.start),
        end: convert_marker(text, &span.end),
    }
}

fn convert_marker(text: &str, marker: &granit_parser::Marker) -> Position {
    let byte = marker
        .byte_offset()
        .unwrap_or_else(|| byte_of_char_index(text, marker.index()));
    Position {
        line: marker.line().max(1),
        column: marker.col() + 1,
        byte,
    }
}

fn byte_of_char_index(text: &str, index: usize) -> usize {
    text.char_indices()
        .nth(index)
        .map_or(text.len(), |(offset, _)| offset)
}

/// Returns the position just past the last character of `text`.
fn end_position(text: &str) -> Position {
    let line = text.matches('\n').count() + 1;
    let line_start = text.rfind('\n').map_or(0, |newline| newline + 1);
    Position {
        line,
        column: text[line_start..].chars().count() + 1,
        byte: text.len(),
    }
}

/// Turns a YAML syntax error into a problem at its location.
fn scan_problem(text: &str, error: &granit_parser::ScanError) -> Problem {
    let position = convert_marker(text, error.marker());
    let info = error.info();
    if info.contains("recursion limit") || info.contains("nesting limit") {
        return Problem::new(
            Some(Span::at(position)),
            format!("the document nests mappings and sequences more than {MAX_DEPTH} deep"),
        );
    }
    let message = match error.kind() {
        granit_parser::ErrorKind::UnknownAnchor => {
            let name: String = text[position.byte..]
                .trim_start_matches('*')
                .chars()
                .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                .take(100)
                .collect();
            format!("invalid YAML: the alias `*{name}` refers to no anchor `&{name}` above it")
        }
        // The scanner looks at most this far ahead for the `:` that ends a key.
        granit_parser::ErrorKind::SimpleKeyExpected => {
            "invalid YAML: expected `:` after this key, within 1024 characters of its start"
                .to_owned()
        }
        _ => format!("invalid YAML: {info}"),
    };
    let mut problem = Problem::new(Some(Span::at(position)), message);
    problem
        .hidden
        .extend(crate::diagnostic::secret_continuation(text, position.byte));
    if info.contains("did not find expected key") || info.contains("mapping values are not allowed")
    {
        problem = problem.with_help(
            "check the indentation of this line against the lines above; a value that contains `: ` or ` #` needs quotes",
        );
    }
    if info.contains("tab") {
        problem = problem.with_help("indent with spaces; YAML does not allow tabs for indentation");
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_records_keys_and_values() {
        let text = "a:\n  b: one\n  list:\n    - x\n    - y\n";

        let map = build(text).unwrap();

        let b = map.get("a.b").unwrap();
        assert_eq!((b.value.start.line, b.value.start.column), (2, 6));
        assert_eq!(
            b.key.map(|key| (key.start.line, key.start.column)),
            Some((2, 3))
        );
        let y = map.get("a.list[1]").unwrap();
        assert_eq!((y.value.start.line, y.value.start.column), (5, 7));
        assert_eq!(y.kind, NodeKind::Scalar);
        assert_eq!(map.get("a.list").unwrap().kind, NodeKind::Sequence);
    }

    #[test]
    fn build_records_flow_collections() {
        let text = "scope: {mode: only, users: [a@contoso.com, b@contoso.com]}\n";

        let map = build(text).unwrap();

        let second = map.get("scope.users[1]").unwrap();
        assert_eq!(
            (second.value.start.line, second.value.start.column),
            (1, 44)
        );
        assert_eq!(map.get("scope.mode").unwrap().value.start.column, 15);
    }

    #[test]
    fn value_span_falls_back_to_ancestor() {
        let text = "a:\n  b: one\n";

        let map = build(text).unwrap();

        let span = map.value_span("a.c.d").unwrap();
        assert_eq!(span, map.get("a").unwrap().value);
    }

    #[test]
    fn parent_path_strips_last_segment() {
        assert_eq!(parent_path("a.b.c"), Some("a.b"));
        assert_eq!(parent_path("a.b[3]"), Some("a.b"));
        assert_eq!(parent_path("a"), Some(""));
        assert_eq!(parent_path(""), None);
    }

    #[test]
    fn build_rejects_empty_and_comment_only_files() {
        for text in ["", "   \n", "# only a comment\n"] {
            let problem = build(text).unwrap_err();

            assert_eq!(
                problem.message, "the file contains no YAML document",
                "{text:?}"
            );
        }
    }

    #[test]
    fn build_rejects_sequence_and_scalar_roots() {
        let sequence = build("- a\n- b\n").unwrap_err();
        let scalar = build("hello\n").unwrap_err();

        assert!(
            sequence.message.contains("found a sequence"),
            "{}",
            sequence.message
        );
        assert!(
            scalar.message.contains("found a scalar"),
            "{}",
            scalar.message
        );
    }

    #[test]
    fn build_rejects_second_document() {
        let problem = build("a: 1\n---\nb: 2\n").unwrap_err();

        assert!(problem.message.contains("more than one YAML document"));
        assert_eq!(problem.span.unwrap().start.line, 2);
    }

    #[test]
    fn build_rejects_deep_nesting() {
        let text = format!("a: {}{}\n", "[".repeat(40), "]".repeat(40));

        let problem = build(&text).unwrap_err();

        assert!(
            problem.message.contains("more than 32 deep"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn build_rejects_alias_bomb() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
        }

        let problem = build(&text).unwrap_err();

        assert!(
            problem.message.contains("aliases are expanded"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn build_reports_syntax_error_location() {
        let problem = build("a: \"open\nb: 1\n").unwrap_err();

        assert!(
            problem.message.starts_with("invalid YAML"),
            "{}",
            problem.message
        );
        assert!(problem.span.is_some());
    }

    #[test]
    fn build_explains_overlong_key() {
        let text = format!("a: 1\n{}: 2\n", "k".repeat(1100));

        let problem = build(&text).unwrap_err();

        assert!(
            problem.message.contains("within 1024 characters"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn build_bounds_recorded_paths() {
        let key = "k".repeat(100_000);
        let children: String = (0..1000).map(|index| format!("  c{index}: 1\n")).collect();
        let text = format!("? {key}\n:\n{children}a: 1\n");

        let map = build(&text).unwrap();

        assert!(map.iter().all(|(path, _)| path.len() <= MAX_PATH_BYTES));
        assert!(map.get("a").is_some());
    }

    #[test]
    fn join_key_shortens_long_keys() {
        let key = "k".repeat(1000);

        let path = join_key("a", &key);

        assert!(path.len() < 100, "{path}");
        assert!(path.starts_with("a.kkk"), "{path}");
    }

    #[test]
    fn build_rejects_tab_indentation_with_help() {
        let problem = build("a:\n\tb: 1\n").unwrap_err();

        assert!(problem.help.unwrap().contains("spaces"));
    }

    #[test]
    fn scalar_at_finds_keys_and_values() {
        let text = "a:\n  b: one\n";

        let map = build(text).unwrap();

        assert_eq!(map.scalar_at(2, 3), Some("a.b"));
        assert_eq!(map.scalar_at(2, 6), Some("a.b"));
        assert_eq!(map.container_at(2, 3), Some("a"));
    }

    #[test]
    fn container_containing_finds_innermost_block() {
        let text = "a:\n  b: one\n  c: two\nd: three\n";

        let map = build(text).unwrap();

        assert_eq!(map.container_containing(3, 6), Some("a"));
        assert_eq!(map.container_containing(4, 4), Some(""));
    }
}
