//! The spec that `siuctl demo` applies: the lab's generated `specs/hybrid.yaml` with a scope
//! that leaves out one group, so that one of the bundled senders is out of scope.
//!
//! With an external directory, the lab also writes `specs/onprem-external.yaml`, whose
//! `onPremises` and `account` blocks point at that directory. The demo spec then takes those
//! two blocks from it and keeps the Exchange Online part of `hybrid.yaml`. The edits replace
//! top-level blocks of the generated text, so the lab's comments and key order stay. The demo
//! loads and checks the result like any other spec before it uses it.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// The file name of the demo spec in the lab's `specs/` directory.
pub const FILE_NAME: &str = "demo.yaml";

/// The group whose members the demo's scope leaves out.
pub const EXCLUDED_GROUP: &str = "finance@lab.example";

/// Errors of writing the demo spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A generated spec could not be read, or the demo spec could not be written.
    #[error("failed to access the spec `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A generated spec lacks a block or line that the demo edits.
    #[error(
        "the lab's spec `{path}` has no {what}; the lab and `siuctl demo` disagree on its layout"
    )]
    Layout {
        /// The generated spec.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
}

/// Writes `SPECS/demo.yaml` from the specs that the lab wrote into `specs` and returns its
/// path. `external` takes the directory and account from `onprem-external.yaml`.
pub fn write(specs: &Path, external: bool) -> Result<PathBuf, SpecError> {
    let hybrid_path = specs.join("hybrid.yaml");
    let mut text = read(&hybrid_path)?;

    // 1. The directory and the service account, when they live in the external directory.
    if external {
        let external_path = specs.join("onprem-external.yaml");
        let external_text = read(&external_path)?;
        for key in ["onPremises", "account"] {
            let range = top_level_block(&external_text, key).ok_or_else(|| SpecError::Layout {
                path: external_path.clone(),
                what: format!("top-level `{key}` block"),
            })?;
            text = replace_block(&text, &hybrid_path, key, &external_text[range])?;
        }
    }

    // 2. The name, the scope and a state directory of its own.
    text = replace_block(
        &text,
        &hybrid_path,
        "metadata",
        "metadata:\n  name: lab-demo\n",
    )?;
    text = replace_block(
        &text,
        &hybrid_path,
        "scope",
        &format!("scope:\n  mode: allExcept\n  groups: [{EXCLUDED_GROUP}]\n"),
    )?;
    text = replace_line(
        &text,
        &hybrid_path,
        "  stateDir: ../state/hybrid\n",
        "  stateDir: ../state/demo\n",
    )?;

    // 3. A header that says where the file comes from.
    let body_start = top_level_block(&text, "apiVersion")
        .map(|range| range.start)
        .ok_or_else(|| SpecError::Layout {
            path: hybrid_path.clone(),
            what: "`apiVersion` line".into(),
        })?;
    let origin = if external {
        "the lab's hybrid.yaml, with the directory and account of onprem-external.yaml"
    } else {
        "the lab's hybrid.yaml"
    };
    let header = format!(
        "# yaml-language-server: $schema=siu-v1.schema.json\n\
         # Written by `siuctl demo`: {origin}, for every mailbox except the members of\n\
         # {EXCLUDED_GROUP}.\n"
    );
    let text = format!("{header}{}", &text[body_start..]);

    let path = specs.join(FILE_NAME);
    std::fs::write(&path, text).map_err(|source| SpecError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn read(path: &Path) -> Result<String, SpecError> {
    std::fs::read_to_string(path).map_err(|source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Returns the byte range of the top-level block `key:`: its first line and every following
/// line up to the next line that starts a top-level key. Blank lines and comments at the end
/// of the block stay outside the range.
fn top_level_block(text: &str, key: &str) -> Option<Range<usize>> {
    let mut start = None;
    let mut end = text.len();
    let mut content_end = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let starts_key = line
            .chars()
            .next()
            .is_some_and(|first| !first.is_whitespace() && first != '#');
        match start {
            None if starts_key
                && line
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(':')) =>
            {
                start = Some(offset);
                content_end = offset + line.len();
            }
            None => {}
            Some(_) if starts_key => {
                end = offset;
                break;
            }
            Some(_) => {
                let blank_or_comment = line.trim().is_empty() || line.starts_with('#');
                if !blank_or_comment {
                    content_end = offset + line.len();
                }
            }
        }
        offset += line.len();
    }
    let start = start?;
    Some(start..content_end.min(end))
}

/// Replaces the top-level block `key` of `text` with `block`, which ends with a line break.
fn replace_block(text: &str, path: &Path, key: &str, block: &str) -> Result<String, SpecError> {
    let range = top_level_block(text, key).ok_or_else(|| SpecError::Layout {
        path: path.to_path_buf(),
        what: format!("top-level `{key}` block"),
    })?;
    Ok(format!(
        "{}{block}{}",
        &text[..range.start],
        &text[range.end..]
    ))
}

/// Replaces the one line `old` of `text` with `new`.
fn replace_line(text: &str, path: &Path, old: &str, new: &str) -> Result<String, SpecError> {
    if text.matches(old).count() != 1 {
        return Err(SpecError::Layout {
            path: path.to_path_buf(),
            what: format!("single line `{}`", old.trim()),
        });
    }
    Ok(text.replacen(old, new, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "# comment\napiVersion: siu/v1\nmetadata:\n  name: lab-hybrid\n\n\
                        scope:\n  mode: all\n\n# trailing comment\noptions:\n  enabled: true\n";

    #[test]
    fn block_ends_before_blank_lines_and_next_key() {
        let range = top_level_block(SPEC, "scope").expect("the scope block exists");

        assert_eq!(&SPEC[range], "scope:\n  mode: all\n");
    }

    #[test]
    fn block_at_end_of_text_is_found() {
        let range = top_level_block(SPEC, "options").expect("the options block exists");

        assert_eq!(&SPEC[range], "options:\n  enabled: true\n");
    }

    #[test]
    fn key_prefix_is_not_a_match() {
        assert_eq!(top_level_block(SPEC, "scop"), None);
        assert_eq!(top_level_block(SPEC, "comment"), None);
    }

    #[test]
    fn replaced_block_keeps_its_neighbours() {
        let text = replace_block(SPEC, Path::new("spec.yaml"), "scope", "scope:\n  mode: x\n")
            .expect("the scope block is replaced");

        assert_eq!(
            text,
            "# comment\napiVersion: siu/v1\nmetadata:\n  name: lab-hybrid\n\n\
             scope:\n  mode: x\n\n# trailing comment\noptions:\n  enabled: true\n"
        );
    }

    #[test]
    fn missing_block_names_the_file() {
        let error = replace_block(SPEC, Path::new("spec.yaml"), "account", "account: {}\n")
            .expect_err("the spec has no account block");

        assert!(
            error
                .to_string()
                .contains("`spec.yaml` has no top-level `account` block"),
            "{error}"
        );
    }
}
