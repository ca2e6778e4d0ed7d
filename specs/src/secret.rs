//! Secret references in a spec and the secret values they resolve to.
//!
//! A spec never contains a password or a client secret. Fields that need one take a
//! [`SecretRef`]: `{ fromEnv: NAME }` or `{ fromFile: PATH }`. The raw model reads such a
//! field as a [`SecretSpec`], which also accepts an inline value so that validation can
//! reject it with a located error. The inline value itself is dropped while parsing, so
//! it never reaches a message. [`Secret`] contains a resolved value and prints as `[redacted]`.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::diagnostic::REDACTED;
use crate::error::Error;

/// The largest secret file read, in bytes. Passwords, client secrets and PEM keys are far
/// smaller; the limit keeps a wrong path such as `/dev/zero` from filling memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Location of a secret: an environment variable of the siuctl process, or a file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SecretRef {
    /// Name of an environment variable of the siuctl process that contains the secret,
    /// for example `AD_BIND_PASSWORD`.
    FromEnv(#[schemars(regex(pattern = crate::spec::pattern::ENV_NAME))] String),
    /// Path of a file that contains the secret, relative to the spec file's directory
    /// unless absolute. One trailing line break is ignored. Restrict the file's
    /// permissions to the account that runs siuctl.
    FromFile(#[schemars(regex(pattern = crate::spec::pattern::PATH))] PathBuf),
}

impl SecretRef {
    /// Reads the secret from its environment variable or file.
    ///
    /// A `fromFile` path is used as stored, so resolve it against the spec's directory
    /// first. The validated [`crate::DesiredState`] already contains absolute paths. Errors
    /// name the reference, never the value.
    pub fn resolve(&self) -> Result<Secret, Error> {
        let value = match self {
            Self::FromEnv(name) => match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => {
                    return Err(Error::SecretEnvMissing { name: name.clone() });
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::SecretEnvNotUnicode { name: name.clone() });
                }
            },
            Self::FromFile(path) => read_secret_file(path)?,
        };
        if value.is_empty() {
            return Err(Error::SecretEmpty {
                reference: self.to_string(),
            });
        }
        Ok(Secret::new(value))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromEnv(name) => write!(f, "environment variable `{name}`"),
            Self::FromFile(path) => write!(f, "file `{}`", path.display()),
        }
    }
}

/// Reads a secret file of at most [`MAX_SECRET_FILE_BYTES`] and drops one trailing line
/// break. A FIFO that no process writes to reads as empty instead of blocking.
fn read_secret_file(path: &Path) -> Result<String, Error> {
    let read_error = |error| Error::SecretFileRead {
        path: path.to_path_buf(),
        error,
    };
    let is_pipe = std::fs::metadata(path)
        .map(|metadata| crate::load::is_pipe(&metadata))
        .map_err(read_error)?;
    let file = crate::load::open_without_blocking(path, is_pipe).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(Error::SecretFileTooLarge {
            path: path.to_path_buf(),
            limit: MAX_SECRET_FILE_BYTES,
        });
    }
    let mut value = String::from_utf8(bytes).map_err(|_| Error::SecretFileNotUtf8 {
        path: path.to_path_buf(),
    })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    Ok(value)
}

/// A resolved secret value.
///
/// `Debug`, `Display` and `Serialize` print `[redacted]`, and only [`Secret::expose`]
/// returns the value. Dropping a `Secret` overwrites its buffer with zeros.
// NOTE: the zeroing is best effort. Copies made before the value reached `Secret`, or by
// callers of `expose`, are not cleared.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret value, for handing to the protocol that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        // Keeps the compiler from removing the writes to a buffer that is freed next.
        std::hint::black_box(&bytes);
    }
}

/// A secret field as written in the YAML: a reference, or a value written inline.
///
/// The inline value is discarded while parsing, so neither this type nor any error built
/// from it can show the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSpec {
    /// `{ fromEnv: NAME }` or `{ fromFile: PATH }`.
    Reference(SecretRef),
    /// A scalar written in place of a reference, which validation rejects.
    Inline,
}

impl Serialize for SecretSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Reference(reference) => reference.serialize(serializer),
            Self::Inline => Err(serde::ser::Error::custom(
                "an inline secret cannot be written to a spec; use `fromEnv` or `fromFile`",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for SecretSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SecretSpecVisitor)
    }
}

impl JsonSchema for SecretSpec {
    fn schema_name() -> Cow<'static, str> {
        SecretRef::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        SecretRef::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        SecretRef::json_schema(generator)
    }
}

/// The keys of a secret reference, for unknown-field errors.
const SECRET_REF_KEYS: &[&str] = &["fromEnv", "fromFile"];

/// Names of the spec fields that contain secrets.
pub(crate) const SECRET_FIELDS: &[&str] = &["bindPassword", "password", "clientSecret"];

/// Returns the part of a field path that messages may show.
///
/// Below a secret field, a key other than `fromEnv` or `fromFile` may be the secret
/// itself, as in `password: {hunter2}`, so the path ends before such a key:
/// `account.password.hunter2` becomes `account.password`.
pub(crate) fn shown_field_path(path: &str) -> &str {
    let mut below_secret = false;
    let mut shown_end = 0;
    for (offset, segment) in path.split('.').scan(0, |offset, segment| {
        let start = *offset;
        *offset += segment.len() + 1;
        Some((start, segment))
    }) {
        let name = segment.split('[').next().unwrap_or(segment);
        if below_secret && !SECRET_REF_KEYS.contains(&name) {
            return &path[..shown_end];
        }
        if SECRET_FIELDS.contains(&name) {
            below_secret = true;
        }
        shown_end = offset + segment.len();
    }
    path
}

struct SecretSpecVisitor;

impl SecretSpecVisitor {
    fn inline<E>(self) -> Result<SecretSpec, E> {
        Ok(SecretSpec::Inline)
    }
}

impl<'de> Visitor<'de> for SecretSpecVisitor {
    type Value = SecretSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a secret reference: `{ fromEnv: NAME }` or `{ fromFile: PATH }`")
    }

    // Every scalar is an inline secret. The visitor drops the value so that no error or
    // debug output can carry it.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_char<E: de::Error>(self, _: char) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<SecretSpec, E> {
        self.inline()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretSpec, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "a secret reference needs `fromEnv` or `fromFile`",
            ));
        };
        let reference = match key.as_str() {
            "fromEnv" => SecretRef::FromEnv(map.next_value()?),
            "fromFile" => SecretRef::FromFile(map.next_value()?),
            _ => return Err(unknown_reference_key(&key)),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a secret reference takes exactly one of `fromEnv` or `fromFile`",
            ));
        }
        Ok(SecretSpec::Reference(reference))
    }
}

/// Returns the error for a key other than `fromEnv` and `fromFile` in a secret reference.
///
/// The message names the key only when it is close to one of the two, as `fromenv` is.
/// Any other key may be the secret itself, as in `password: {hunter2}`, where the braces
/// turn the secret into a key.
fn unknown_reference_key<E: de::Error>(key: &str) -> E {
    let lowercase = key.to_lowercase();
    let is_typo = SECRET_REF_KEYS
        .iter()
        .any(|name| strsim::jaro_winkler(&lowercase, &name.to_lowercase()) >= 0.8);
    if is_typo {
        de::Error::unknown_field(key, SECRET_REF_KEYS)
    } else {
        de::Error::custom(
            "unknown key in a secret reference, not shown because it may be the secret itself; write `{ fromEnv: NAME }` or `{ fromFile: PATH }`",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        password: SecretSpec,
    }

    fn parse(yaml: &str) -> Result<Holder, serde_saphyr::Error> {
        serde_saphyr::from_str(yaml)
    }

    #[test]
    fn secret_spec_reads_references() {
        let env = parse("password: { fromEnv: AD_PASSWORD }\n").unwrap();
        let file = parse("password:\n  fromFile: secrets/pw\n").unwrap();

        assert_eq!(
            env.password,
            SecretSpec::Reference(SecretRef::FromEnv("AD_PASSWORD".to_owned()))
        );
        assert_eq!(
            file.password,
            SecretSpec::Reference(SecretRef::FromFile("secrets/pw".into()))
        );
    }

    #[test]
    fn secret_spec_drops_inline_values() {
        for yaml in [
            "password: hunter2\n",
            "password: \"hunter2\"\n",
            "password: 12345\n",
            "password: true\n",
            "password: 1.5\n",
        ] {
            let holder = parse(yaml).unwrap();

            assert_eq!(holder.password, SecretSpec::Inline, "{yaml}");
            assert!(!format!("{holder:?}").contains("hunter2"));
        }
    }

    #[test]
    fn secret_spec_rejects_two_sources() {
        let error = parse("password: { fromEnv: A, fromFile: b }\n").unwrap_err();

        assert!(error.to_string().contains("exactly one of"), "{error}");
    }

    #[test]
    fn secret_spec_rejects_unknown_key() {
        let error = parse("password: { fromEnvironment: A }\n").unwrap_err();

        assert!(error.to_string().contains("fromEnvironment"), "{error}");
    }

    #[test]
    fn secret_spec_hides_key_that_may_be_secret() {
        for yaml in ["password: {hunter2}\n", "password: { hunter2: x }\n"] {
            let error = parse(yaml).unwrap_err();
            // The error's own snippet quotes the input; siuctl renders its own.
            let message = error.without_snippet().to_string();

            assert!(!message.contains("hunter2"), "{message}");
            assert!(
                message.contains("unknown key in a secret reference"),
                "{message}"
            );
        }
    }

    #[test]
    fn secret_spec_refuses_to_serialize_inline() {
        let result = serde_json::to_string(&SecretSpec::Inline);

        assert!(result.is_err());
    }

    #[test]
    fn shown_field_path_stops_before_unknown_secret_keys() {
        for (path, shown) in [
            ("account.password.hunter2", "account.password"),
            ("account.password.hunter.2", "account.password"),
            ("account.password.fromEnv", "account.password.fromEnv"),
            (
                "account.password.fromEnv.hunter2",
                "account.password.fromEnv",
            ),
            ("account.password.fromEnv[0]", "account.password.fromEnv[0]"),
            ("account.password", "account.password"),
            ("account.upn", "account.upn"),
            ("", ""),
        ] {
            assert_eq!(shown_field_path(path), shown, "{path}");
        }
    }

    #[test]
    fn secret_prints_redacted() {
        let secret = Secret::new("hunter2");

        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"[redacted]\"");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn resolve_reads_file_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\r\n").unwrap();

        let secret = SecretRef::FromFile(path).resolve().unwrap();

        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn resolve_names_missing_file_not_value() {
        let reference = SecretRef::FromFile("/nonexistent/siu/secret".into());

        let error = reference.resolve().unwrap_err();

        assert!(
            error.to_string().contains("/nonexistent/siu/secret"),
            "{error}"
        );
    }

    #[test]
    fn resolve_rejects_oversized_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap();

        let error = SecretRef::FromFile(path).resolve().unwrap_err();

        assert!(matches!(error, Error::SecretFileTooLarge { .. }), "{error}");
    }

    #[test]
    fn resolve_names_directory_not_contents() {
        let dir = tempfile::tempdir().unwrap();

        let error = SecretRef::FromFile(dir.path().to_path_buf())
            .resolve()
            .unwrap_err();

        assert!(matches!(error, Error::SecretFileRead { .. }), "{error}");
        // The message itself says why, because callers print it without its sources.
        assert!(error.to_string().contains("directory"), "{error}");
    }

    #[test]
    fn resolve_stops_reading_sparse_file_at_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(2 * 1024 * 1024 * 1024).unwrap();

        let error = SecretRef::FromFile(path).resolve().unwrap_err();

        assert!(matches!(error, Error::SecretFileTooLarge { .. }), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn resolve_reports_fifo_without_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || sender.send(SecretRef::FromFile(path).resolve()));

        // Opening a FIFO without a writer blocks, so a minute without a result is a hang.
        let result = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("resolving a FIFO without a writer returns");

        assert!(
            matches!(result, Err(Error::SecretEmpty { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn resolve_rejects_unusable_variable_names() {
        for name in ["", "A=B", "A\0B", "ÄÖ"] {
            let error = SecretRef::FromEnv(name.to_owned()).resolve().unwrap_err();

            assert!(matches!(error, Error::SecretEnvMissing { .. }), "{error}");
        }
    }

    #[test]
    fn resolve_rejects_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();

        let error = SecretRef::FromFile(path).resolve().unwrap_err();

        assert!(matches!(error, Error::SecretEmpty { .. }), "{error}");
    }

    #[test]
    fn resolve_names_missing_environment_variable() {
        let reference = SecretRef::FromEnv("SIU_TEST_SURELY_UNSET_VARIABLE".to_owned());

        let error = reference.resolve().unwrap_err();

        assert!(
            error.to_string().contains("SIU_TEST_SURELY_UNSET_VARIABLE"),
            "{error}"
        );
    }
}
