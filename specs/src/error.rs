//! The error type of the specs crate.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// Errors from loading a spec or resolving its secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be opened or read.
    #[error("failed to read spec file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The spec file is larger than the limit, so it was not parsed.
    #[error(
        "spec file {} is larger than the limit of {} MiB; a spec is a few kilobytes, so check that this is the right file",
        path.display(),
        limit / (1024 * 1024)
    )]
    TooLarge {
        path: PathBuf,
        /// The size found: the file's size, or one byte over the limit when reading
        /// stopped there, as it does for a device such as `/dev/zero`.
        size: u64,
        limit: u64,
    },

    /// The path names a directory.
    #[error("{} is a directory; give the path of a spec file", path.display())]
    IsDirectory { path: PathBuf },

    /// The path names a pipe, such as a FIFO, that delivered no data: no process had it
    /// open for writing, or the writer wrote nothing.
    #[error(
        "spec file {} is a pipe that delivered no data; start the program that writes the spec into it first, or give the path of a regular file",
        path.display()
    )]
    EmptyPipe { path: PathBuf },

    /// The spec has one or more problems, each with its location.
    #[error("spec file {} is invalid ({} {})", path.display(), diagnostics.len(), if diagnostics.len() == 1 { "problem" } else { "problems" })]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },

    /// A `fromEnv` secret names an environment variable that is not set.
    #[error(
        "environment variable `{name}` is not set; set it to the secret, or change the spec's `fromEnv` reference"
    )]
    SecretEnvMissing { name: String },

    /// A `fromEnv` secret names an environment variable whose value is not UTF-8.
    #[error("environment variable `{name}` is not valid UTF-8")]
    SecretEnvNotUnicode { name: String },

    /// A `fromFile` secret could not be read. The message carries the operating system's
    /// error, because callers print a secret error in one line without its sources.
    #[error("failed to read secret file {}: {error}", path.display())]
    SecretFileRead {
        path: PathBuf,
        error: std::io::Error,
    },

    /// A `fromFile` secret is larger than [`crate::MAX_SECRET_FILE_BYTES`].
    #[error("secret file {} is larger than {limit} bytes; check that the reference names the right file", path.display())]
    SecretFileTooLarge { path: PathBuf, limit: u64 },

    /// A `fromFile` secret is not UTF-8 text.
    #[error("secret file {} is not UTF-8 text", path.display())]
    SecretFileNotUtf8 { path: PathBuf },

    /// A secret reference resolved to an empty value.
    #[error("the secret in {reference} is empty")]
    SecretEmpty { reference: String },
}

impl Error {
    /// Returns the problems as diagnostics: the located list of an invalid spec, or one
    /// whole-file diagnostic for any other error.
    pub fn diagnostics(&self, path: &std::path::Path) -> Vec<Diagnostic> {
        match self {
            Self::Invalid { diagnostics, .. } => diagnostics.clone(),
            other => vec![Diagnostic::for_file(path, error_chain(other))],
        }
    }
}

/// Formats an error with its sources, `outer: inner: innermost`.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
