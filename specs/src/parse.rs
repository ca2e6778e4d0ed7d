//! Deserialization of the YAML into the raw [`Spec`] with serde-saphyr, and translation
//! of its errors into located problems with hints.
//!
//! serde-saphyr reports the first error with its line and column. This module rewords
//! the common ones for an administrator (naming the field from the [`SourceMap`]) and
//! adds the nearest valid name to unknown fields and values.

use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{
    DuplicateKeyPolicy, Error as YamlError, MergeKeyPolicy, MessageFormatter, NonFiniteFloatPolicy,
};

use crate::diagnostic::{Position, Problem, Span};
use crate::source_map::{MAX_DEPTH, MAX_EXPANDED_NODES, SourceMap, parent_path};
use crate::spec::Spec;

/// Maximum number of bytes of scalar text in a document once every alias is expanded,
/// twice the largest spec file, so that a large anchor repeated through aliases cannot
/// fill memory.
const MAX_EXPANDED_TEXT_BYTES: usize = 2 * crate::load::MAX_SPEC_BYTES as usize;

/// Parses `text` into the raw model.
///
/// The source map was built from the same text and already enforced the structural
/// limits. The budget here repeats those bounds inside the deserializer and also bounds
/// the text that aliases repeat.
///
/// Merge keys (`<<`) are rejected: a merged field may be overridden by a field of the
/// same name, which would hide what is in effect, and a spec has no repeated blocks to
/// merge. Tags that serde-saphyr does not know, such as `!vault`, are rejected because
/// siuctl does not resolve them.
pub(crate) fn deserialize(text: &str, map: &SourceMap) -> Result<Spec, Box<Problem>> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        emit_comments: false,
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::Error,
        reject_unsupported_tags: true,
        strict_booleans: true,
        non_finite_float_policy: NonFiniteFloatPolicy::AsString,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: MAX_EXPANDED_NODES,
            max_documents: 1,
            max_total_scalar_bytes: MAX_EXPANDED_TEXT_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_EXPANDED_NODES,
        },
    };
    serde_saphyr::from_str_with_options(text, options)
        .map_err(|error| Box::new(translate(text, map, &error)))
}

/// Turns a serde-saphyr error into a problem at its location.
fn translate(text: &str, map: &SourceMap, error: &YamlError) -> Problem {
    let error = innermost(error);
    let span = error
        .location()
        .filter(|location| location.line() > 0)
        .map(|location| {
            Span::at(position_of(
                text,
                location.line() as usize,
                location.column() as usize,
            ))
        });
    let (line, column) = span.map_or((0, 0), |span| (span.start.line, span.start.column));
    let scalar_field = map.scalar_at(line, column).map(str::to_owned);

    let mut problem = match error {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut problem = Problem::new(span, format!("unknown field `{field}`"));
            if let Some(path) = &scalar_field {
                let parent = parent_path(path).unwrap_or("");
                if !parent.is_empty() {
                    problem.message = format!("unknown field `{field}` in `{parent}`");
                }
            }
            problem.help = Some(suggest(field, expected));
            // The value of a misspelled field such as `pasword: hunter2` may be a secret,
            // and the message is about the key alone.
            if let Some(node) = scalar_field.as_deref().and_then(|path| map.get(path)) {
                problem
                    .hidden
                    .push(node.value.start.byte..node.value.end.byte);
            }
            problem
        }
        YamlError::SerdeMissingField { field, .. } => {
            // serde-saphyr points at the start or the end of the mapping that lacks the
            // field; the problem points at that mapping's key.
            let parent = map
                .container_at(line, column)
                .or_else(|| map.container_containing(line, column))
                .unwrap_or("");
            let (message, path, span) = if parent.is_empty() {
                (
                    format!("missing required field `{field}`"),
                    (*field).to_owned(),
                    span,
                )
            } else {
                (
                    format!("missing required field `{field}` in `{parent}`"),
                    format!("{parent}.{field}"),
                    map.key_span(parent).or(span),
                )
            };
            Problem::new(span, message)
                .with_field(path)
                .with_help("add the field; the JSON Schema from `siuctl schema` lists every field")
        }
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let message = match &scalar_field {
                Some(path) => format!("invalid value `{variant}` for `{path}`"),
                None => format!("invalid value `{variant}`"),
            };
            Problem::new(span, message).with_help(suggest(variant, expected))
        }
        YamlError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        } => {
            let subject =
                field_or_value(scalar_field.as_deref().or(map.container_at(line, column)));
            Problem::new(
                span,
                format!("invalid type for {subject}: found {unexpected}, expected {expected}"),
            )
        }
        YamlError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => {
            let subject = field_or_value(scalar_field.as_deref());
            Problem::new(
                span,
                format!("invalid value for {subject}: found {unexpected}, expected {expected}"),
            )
        }
        YamlError::InvalidScalar { ty, .. } => {
            let subject = field_or_value(scalar_field.as_deref());
            let token = span.map_or("", |span| scalar_token(&text[span.start.byte..]));
            Problem::new(
                span,
                format!(
                    "invalid value for {subject}: {}",
                    describe_invalid_scalar(ty, token)
                ),
            )
        }
        YamlError::BinaryNotUtf8 { .. } | YamlError::InvalidBinaryBase64 { .. } => {
            let subject = field_or_value(scalar_field.as_deref());
            Problem::new(
                span,
                format!("invalid value for {subject}: the `!!binary` value does not decode to UTF-8 text"),
            )
            .with_help("write the value as text, without `!!binary`")
        }
        YamlError::InvalidBooleanStrict { .. } => {
            let subject = field_or_value(scalar_field.as_deref());
            Problem::new(
                span,
                format!("invalid value for {subject}: expected `true` or `false`"),
            )
        }
        YamlError::NullIntoString { .. } => {
            let subject = field_or_value(scalar_field.as_deref());
            Problem::new(span, format!("missing value for {subject}"))
                .with_help("write a value after the colon, or remove the line")
        }
        YamlError::DuplicateMappingKey { key, .. } => {
            let key = key.as_deref().unwrap_or("?");
            Problem::new(span, format!("duplicate key `{key}`")).with_help(
                "a key may appear once in each mapping; remove or merge the repeated entry",
            )
        }
        YamlError::Unexpected { expected, .. } => {
            let subject =
                field_or_value(scalar_field.as_deref().or(map.container_at(line, column)));
            let expected = expected
                .replace("mapping start", "a mapping")
                .replace("sequence start", "a sequence")
                .replace("string scalar", "a single value");
            Problem::new(
                span,
                format!("invalid type for {subject}: expected {expected}"),
            )
        }
        YamlError::MergeKeyNotAllowed { .. } => Problem::new(
            span,
            "merge keys (`<<`) are not supported, because a field written next to one silently overrides the merged field",
        )
        .with_help("write the fields out in this mapping"),
        YamlError::UnsupportedTag { tag, .. } => Problem::new(
            span,
            format!("unsupported tag `{tag}`; siuctl reads values as written and resolves no tags"),
        )
        .with_help("remove the tag; reference secrets with `{ fromEnv: NAME }` or `{ fromFile: PATH }`"),
        YamlError::TaggedScalarCannotDeserializeIntoString { .. } => {
            let subject = field_or_value(scalar_field.as_deref());
            Problem::new(
                span,
                format!("invalid value for {subject}: the tag makes it something other than text"),
            )
            .with_help("remove the tag, such as `!!int`, before the value")
        }
        YamlError::Budget { breach, .. } => Problem::new(span, budget_message(breach))
            .with_help("write the values out instead of repeating large anchors with `*` aliases"),
        YamlError::AliasReplayLimitExceeded { .. }
        | YamlError::AliasExpansionLimitExceeded { .. }
        | YamlError::AliasReplayStackDepthExceeded { .. } => Problem::new(
            span,
            format!(
                "the document has more than {MAX_EXPANDED_NODES} values once its aliases are expanded"
            ),
        ),
        other => Problem::new(
            span,
            serde_saphyr::UserMessageFormatter
                .format_message(other)
                .into_owned(),
        ),
    };
    if problem.field.is_none() {
        problem.field = scalar_field;
    }
    problem
}

/// Describes a breached parser budget. The structural limits are checked before
/// deserialization, so in practice this is the text that aliases repeat or the ratio of
/// aliases to anchors.
fn budget_message(breach: &BudgetBreach) -> String {
    match breach {
        BudgetBreach::ScalarBytes { .. } => format!(
            "the document has more than {} MiB of text once its aliases are expanded",
            MAX_EXPANDED_TEXT_BYTES / (1024 * 1024)
        ),
        BudgetBreach::AliasAnchorRatio { aliases, anchors } => format!(
            "the document has {aliases} aliases for {anchors} anchors, more than 10 aliases per anchor"
        ),
        other => format!("the document is too large or too complex to check ({other:?})"),
    }
}

/// Unwraps snippet and alias wrappers down to the error that describes the problem.
fn innermost(error: &YamlError) -> &YamlError {
    let error = error.without_snippet();
    match error {
        YamlError::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

fn field_or_value(path: Option<&str>) -> String {
    match path {
        Some(path) if !path.is_empty() => format!("`{path}`"),
        _ => "this value".to_owned(),
    }
}

/// Returns the plain scalar at the start of `text`, up to the characters that end one.
fn scalar_token(text: &str) -> &str {
    let end = text
        .find(|c: char| c.is_whitespace() || ",]}#".contains(c))
        .unwrap_or(text.len());
    &text[..end]
}

/// Says why `token` is not a value of type `ty`, naming the two integer mistakes that
/// "expected a whole number" would not explain.
fn describe_invalid_scalar(ty: &str, token: &str) -> String {
    let expected = describe_type(ty);
    if expected != "a whole number" {
        return format!("expected {expected}");
    }
    let digits = token.trim_start_matches(['+', '-']);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return format!("expected {expected}");
    }
    let token = token.chars().take(40).collect::<String>();
    if digits.len() > 1 && digits.starts_with('0') {
        format!("`{token}` has a leading zero; write the number without it")
    } else {
        format!("`{token}` is too large")
    }
}

fn describe_type(ty: &str) -> String {
    match ty {
        "bool" | "boolean" => "`true` or `false`".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "u8" | "u16" | "u32" | "u64" | "u128" => {
            "a whole number".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        other => other.to_owned(),
    }
}

/// Suggests the expected name closest to `found`, or lists them all when none is close.
pub(crate) fn suggest(found: &str, expected: &[&str]) -> String {
    let closest = expected
        .iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(&found.to_lowercase(), &candidate.to_lowercase()),
                candidate,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((score, candidate)) if score >= 0.8 => format!("did you mean `{candidate}`?"),
        _ if expected.is_empty() => "remove it".to_owned(),
        _ => {
            let names: Vec<String> = expected.iter().map(|name| format!("`{name}`")).collect();
            format!("expected one of {}", names.join(", "))
        }
    }
}

/// Finds the position of a 1-based line and character column in `text`.
pub(crate) fn position_of(text: &str, line: usize, column: usize) -> Position {
    let mut line_start = 0;
    for _ in 1..line {
        match text[line_start..].find('\n') {
            Some(offset) => line_start += offset + 1,
            None => break,
        }
    }
    let byte = text[line_start..]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(text.len(), |(offset, _)| line_start + offset);
    Position { line, column, byte }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggest_finds_close_name() {
        assert_eq!(
            suggest("keepOrignal", &["enabled", "keepOriginal"]),
            "did you mean `keepOriginal`?"
        );
        assert_eq!(
            suggest("onPremise", &["onPremises", "hybrid"]),
            "did you mean `onPremises`?"
        );
    }

    #[test]
    fn suggest_lists_names_when_none_is_close() {
        assert_eq!(
            suggest("zzz", &["ntlm", "basic"]),
            "expected one of `ntlm`, `basic`"
        );
    }

    #[test]
    fn deserialize_bounds_text_of_expanded_aliases() {
        let text = format!(
            "metadata:\n  name: &big \"{}\"\nscope:\n  users: [*big, *big, *big, *big, *big]\n",
            "x".repeat(4 * 1024 * 1024)
        );
        let map = crate::source_map::build(&text).unwrap();

        let problem = deserialize(&text, &map).unwrap_err();

        assert_eq!(
            problem.message,
            "the document has more than 16 MiB of text once its aliases are expanded"
        );
    }

    #[test]
    fn position_of_counts_characters() {
        let text = "a: 1\nbé: x\n";

        let position = position_of(text, 2, 5);

        assert_eq!(position.byte, text.find('x').unwrap());
    }
}
