//! Loading a spec file: read with a size limit, check the encoding, map locations,
//! deserialize, validate.
//!
//! Each step stops at its first problem except validation, which reports every problem.
//! Nothing here panics on hostile input: the size limit comes before parsing, the
//! source map bounds depth and alias expansion before deserialization, and every error
//! becomes a [`Diagnostic`].

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::desired::DesiredState;
use crate::diagnostic::{Diagnostic, Position, Problem, SourceText, Span};
use crate::error::Error;
use crate::source_map::{self, NodeKind, SourceMap};

/// The largest spec file accepted, in bytes. A spec with thousands of scope entries is a
/// few hundred kilobytes.
pub const MAX_SPEC_BYTES: u64 = 8 * 1024 * 1024;

/// Names of the fields that hold secrets. Their inline values are masked in snippets.
const SECRET_FIELDS: &[&str] = &["bindPassword", "password", "clientSecret"];

/// Reads, parses and validates the spec file at `path`.
pub fn load(path: &Path) -> Result<DesiredState, Error> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > MAX_SPEC_BYTES {
        return Err(too_large(path, size));
    }

    // The size can change between the check and the read, so the read is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }

    load_bytes(&bytes, path)
}

/// Parses and validates spec text as if it had been read from `path`. Relative paths in
/// the spec resolve against the directory of `path`.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<DesiredState, Error> {
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            // The snippet shows the text decoded with replacement characters, which
            // matches the bytes up to the error.
            let lossy = String::from_utf8_lossy(bytes);
            let source = SourceText {
                path: path.to_path_buf(),
                text: &lossy,
                secret_ranges: Vec::new(),
            };
            return Err(invalid(
                path,
                vec![source.diagnostic(not_utf8_problem(bytes, &error))],
            ));
        }
    };
    load_str(text, path)
}

/// Parses and validates spec text as if it had been read from `path`.
pub fn load_str(text: &str, path: &Path) -> Result<DesiredState, Error> {
    let mut source = SourceText {
        path: path.to_path_buf(),
        text,
        secret_ranges: Vec::new(),
    };

    let map = match source_map::build(text) {
        Ok(map) => map,
        Err(problem) => return Err(invalid(path, vec![source.diagnostic(*problem)])),
    };
    source.secret_ranges = inline_secret_ranges(&map);

    let spec = match crate::parse::deserialize(text, &map) {
        Ok(spec) => spec,
        Err(problem) => return Err(invalid(path, vec![source.diagnostic(*problem)])),
    };

    let spec_path = absolute_path(path);
    match crate::validate::validate(&spec, &map, &spec_path) {
        Ok(state) => {
            tracing::debug!(spec = %path.display(), name = %state.name, "spec is valid");
            Ok(state)
        }
        Err(problems) => {
            let diagnostics = problems
                .into_iter()
                .map(|problem| source.diagnostic(problem))
                .collect();
            Err(invalid(path, diagnostics))
        }
    }
}

fn too_large(path: &Path, size: u64) -> Error {
    Error::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_SPEC_BYTES,
    }
}

fn invalid(path: &Path, diagnostics: Vec<Diagnostic>) -> Error {
    Error::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    }
}

/// Points at the first byte that is not UTF-8, by line and column of the valid prefix.
fn not_utf8_problem(bytes: &[u8], error: &std::str::Utf8Error) -> Problem {
    let valid = std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default();
    let line = valid.matches('\n').count() + 1;
    let line_start = valid.rfind('\n').map_or(0, |newline| newline + 1);
    let position = Position {
        line,
        column: valid[line_start..].chars().count() + 1,
        byte: valid.len(),
    };
    Problem::new(
        Some(Span::at(position)),
        format!(
            "the file is not valid UTF-8 (byte 0x{:02X} at offset {})",
            bytes[error.valid_up_to()],
            error.valid_up_to()
        ),
    )
    .with_help("save the spec as UTF-8 text")
}

/// Byte ranges of scalar values in secret fields, which are secrets written inline.
fn inline_secret_ranges(map: &SourceMap) -> Vec<std::ops::Range<usize>> {
    map.iter()
        .filter(|(path, node)| {
            node.kind == NodeKind::Scalar
                && path
                    .rsplit('.')
                    .next()
                    .is_some_and(|name| SECRET_FIELDS.contains(&name))
        })
        .map(|(_, node)| node.value.start.byte..node.value.end.byte)
        .collect()
}

/// Makes `path` absolute against the current directory, without touching the file
/// system, so that a relative path in the spec stays valid if the process changes
/// directory.
fn absolute_path(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
