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
use crate::secret::SECRET_FIELDS;
use crate::source_map::{self, NodeKind, SourceMap};
use crate::validate::values::check_env_name;

/// The largest spec file accepted, in bytes. A spec with thousands of scope entries is a
/// few hundred kilobytes.
pub const MAX_SPEC_BYTES: u64 = 8 * 1024 * 1024;

/// The maximum number of problems reported for one file. A spec with more is usually
/// wrong in one systematic way, such as a wrong domain on every scope entry, and rendering
/// every problem of an 8 MiB file would cost hundreds of megabytes.
pub const MAX_DIAGNOSTICS: usize = 1000;

/// Reads, parses and validates the spec file at `path`.
pub fn load(path: &Path) -> Result<DesiredState, Error> {
    let bytes = read(path)?;
    load_bytes(&bytes, path)
}

/// Reads a spec file of at most [`MAX_SPEC_BYTES`].
///
/// The file is read once, so a pipe such as `/dev/stdin` or the `<(...)` of a shell works.
/// A FIFO that no process writes to reads as empty rather than blocking, and gives
/// [`Error::EmptyPipe`].
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    let read_error = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if metadata.is_dir() {
        return Err(Error::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let is_pipe = is_pipe(&metadata);
    if metadata.len() > MAX_SPEC_BYTES {
        return Err(too_large(path, metadata.len()));
    }

    let file = open_without_blocking(path, is_pipe).map_err(read_error)?;
    // The size can change between the check and the read, and a device has no size, so
    // the read is bounded too.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    if is_pipe && bytes.is_empty() {
        return Err(Error::EmptyPipe {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Returns whether a file is a pipe, such as a FIFO or `/dev/stdin` in a pipeline.
#[cfg(unix)]
pub(crate) fn is_pipe(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    metadata.file_type().is_fifo()
}

#[cfg(not(unix))]
pub(crate) fn is_pipe(_metadata: &std::fs::Metadata) -> bool {
    false
}

/// Opens a file for reading. Opening a FIFO blocks until a process opens it for writing,
/// so a FIFO is opened without blocking and then switched back to blocking reads. A read
/// then waits for data while a writer has the FIFO open, and returns end of file when
/// none has.
// NOTE: a writer that opens a named FIFO only after siuctl has read it is missed, and the
// FIFO reads as empty.
#[cfg(unix)]
pub(crate) fn open_without_blocking(path: &Path, is_pipe: bool) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;

    if !is_pipe {
        return std::fs::File::open(path);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let descriptor = file.as_raw_fd();
    // SAFETY: `descriptor` belongs to `file`, which is open for the duration of both calls.
    let flags = unsafe { libc::fcntl(descriptor, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(descriptor, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    Ok(file)
}

#[cfg(not(unix))]
pub(crate) fn open_without_blocking(path: &Path, _is_pipe: bool) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Parses and validates spec text as if it had been read from `path`. Relative paths in
/// the spec resolve against the directory of `path`.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<DesiredState, Error> {
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    let unreadable = |problem| {
        let source = SourceText {
            path: path.to_path_buf(),
            text: "",
            secret_ranges: Vec::new(),
        };
        // The text cannot be shown as UTF-8, so the diagnostic has no snippet.
        let mut diagnostic = source.diagnostic(problem);
        diagnostic.snippet = None;
        invalid(path, vec![diagnostic])
    };
    if let Some(problem) = byte_order_mark_problem(bytes) {
        return Err(unreadable(problem));
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
            let mut problem = not_utf8_problem(bytes, &error);
            problem
                .hidden
                .extend(crate::diagnostic::secret_continuation(
                    &lossy,
                    error.valid_up_to(),
                ));
            return Err(invalid(path, vec![source.diagnostic(problem)]));
        }
    };
    if let Some(problem) = nul_problem(text) {
        return Err(unreadable(problem));
    }
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
        Err(problem) => {
            tracing::debug!(spec = %path.display(), error = %problem.message, "spec is not a valid YAML document");
            return Err(invalid(path, vec![source.diagnostic(*problem)]));
        }
    };
    source.secret_ranges = inline_secret_ranges(&map, text);

    let spec = match crate::parse::deserialize(text, &map) {
        Ok(spec) => spec,
        Err(problem) => {
            tracing::debug!(spec = %path.display(), error = %problem.message, "spec does not match the siu/v1 format");
            return Err(invalid(path, vec![source.diagnostic(*problem)]));
        }
    };

    let spec_path = absolute_path(path);
    match crate::validate::validate(&spec, &map, &spec_path) {
        Ok(state) => {
            tracing::debug!(spec = %path.display(), name = %state.name, "spec is valid");
            Ok(state)
        }
        Err(mut problems) => {
            tracing::debug!(spec = %path.display(), problems = problems.len(), "spec is invalid");
            let omitted = problems.len().saturating_sub(MAX_DIAGNOSTICS);
            problems.truncate(MAX_DIAGNOSTICS);
            let mut diagnostics = source.diagnostics(problems);
            if omitted > 0 {
                diagnostics.push(Diagnostic::for_file(
                    path,
                    format!("{omitted} more problems are not shown; fix the ones above and check the spec again"),
                ));
            }
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

/// Recognizes a file saved as UTF-16 or UTF-32 by its byte order mark.
fn byte_order_mark_problem(bytes: &[u8]) -> Option<Problem> {
    let encoding =
        if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) || bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
            "UTF-32"
        } else if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            "UTF-16"
        } else {
            return None;
        };
    let start = Position {
        line: 1,
        column: 1,
        byte: 0,
    };
    Some(
        Problem::new(
            Some(Span::at(start)),
            format!("the file is {encoding} text (it starts with a {encoding} byte order mark)"),
        )
        .with_help("save the spec as UTF-8"),
    )
}

/// Points at the first NUL character, which YAML does not allow. UTF-16 text without a
/// byte order mark is valid UTF-8 with a NUL next to every ASCII character.
fn nul_problem(text: &str) -> Option<Problem> {
    let nul = text.find('\0')?;
    let before = &text[..nul];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let position = Position {
        line,
        column: before[line_start..].chars().count() + 1,
        byte: nul,
    };
    Some(
        Problem::new(
            Some(Span::at(position)),
            format!("the file contains a NUL byte at offset {nul}, which YAML does not allow"),
        )
        .with_help("save the spec as UTF-8 text; a NUL byte next to every character means the file is UTF-16"),
    )
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

/// Byte ranges inside secret fields that may contain a secret.
///
/// These are every scalar except a `fromFile` path and a `fromEnv` value that is a
/// variable name, and every key below the field except `fromEnv` and `fromFile`. They
/// cover secrets written inline, also in a malformed reference such as
/// `password: { value: hunter2 }`, or `password: {hunter2}`, where the secret is a key.
fn inline_secret_ranges(map: &SourceMap, text: &str) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    for (path, node) in map.iter() {
        let segments: Vec<&str> = path.split(['.', '[']).collect();
        let Some(field) = segments
            .iter()
            .position(|segment| SECRET_FIELDS.contains(segment))
        else {
            continue;
        };
        let last = segments[field + 1..].last().copied();

        if let (Some(key), Some(name)) = (node.key, last)
            && !matches!(name, "fromEnv" | "fromFile")
        {
            ranges.push(key.start.byte..key.end.byte);
        }
        if node.kind != NodeKind::Scalar {
            continue;
        }
        let value = node.value.start.byte..node.value.end.byte;
        let shown = match last {
            Some("fromFile") => true,
            Some("fromEnv") => text
                .get(value.clone())
                .is_some_and(|raw| check_env_name(unquote(raw)).is_ok()),
            _ => false,
        };
        if !shown {
            ranges.push(value);
        }
    }
    ranges
}

/// Strips one pair of matching quotes from scalar source text.
fn unquote(raw: &str) -> &str {
    ['"', '\'']
        .iter()
        .find_map(|quote| raw.strip_prefix(*quote)?.strip_suffix(*quote))
        .unwrap_or(raw)
}

/// Makes `path` absolute against the current directory, without touching the file
/// system, so that a relative path in the spec stays valid if the process changes
/// directory.
fn absolute_path(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::SecretRef;
    use crate::desired::{
        AccountProvisioning, AppRegistrationMode, BindUser, ClientCredential, DirectoryTransport,
        ExchangeConnection, GeneratedCredential, GroupRef, Host,
    };
    use crate::spec::{Environment, ExchangeAuth, Impersonation, MailAccess, ScopeMode};

    const MINIMAL: &str = "\
apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: contoso
environment: onPremises
onPremises:
  exchange:
    connection: manual
    server: Mail.Contoso.com
    managementShell:
      command: [scripts/run.sh, -x]
  directory:
    url: ldaps://dc1.contoso.com
    baseDn: DC=contoso,DC=com
    bindUser: CONTOSO\\siu-reader
    bindPassword: { fromFile: secrets/ad.password }
account:
  upn: svc-siu@contoso.com
  password: { fromEnv: SIU_ACCOUNT_PASSWORD }
updateLoop:
  spoolDir: spool
  stateDir: /var/lib/siuctl
";

    fn load_minimal(text: &str) -> Result<DesiredState, Error> {
        load_str(text, Path::new("/etc/siuctl/contoso.yaml"))
    }

    fn messages(error: Error) -> Vec<String> {
        match error {
            Error::Invalid { diagnostics, .. } => diagnostics
                .into_iter()
                .map(|diagnostic| diagnostic.message)
                .collect(),
            other => panic!("expected an invalid spec, got {other}"),
        }
    }

    #[test]
    fn load_str_fills_defaults() {
        let state = load_minimal(MINIMAL).unwrap();

        assert_eq!(state.environment, Environment::OnPremises);
        assert_eq!(state.exchange.auth, ExchangeAuth::Ntlm);
        assert_eq!(
            state.exchange.management_shell.timeout,
            Duration::from_secs(120)
        );
        assert_eq!(state.account.impersonation, Impersonation::Grant);
        assert_eq!(state.scope.mode, ScopeMode::All);
        assert!(state.options.enabled);
        assert!(!state.options.keep_original);
        assert_eq!(state.options.delay, Duration::from_secs(5));
        assert_eq!(
            state.options.original_wait_timeout,
            Duration::from_secs(900)
        );
        assert_eq!(state.reconcile_interval, Duration::from_secs(600));
        assert_eq!(state.update_loop.concurrency, 8);
        assert_eq!(state.update_loop.per_mailbox_concurrency, 1);
        assert_eq!(state.app_registration, None);
    }

    #[test]
    fn load_str_derives_ews_url_from_server() {
        let state = load_minimal(MINIMAL).unwrap();

        let ExchangeConnection::Manual { server, ews_url } = &state.exchange.connection else {
            panic!("expected a manual connection");
        };
        assert_eq!(server, &Host::Name("mail.contoso.com".to_owned()));
        assert_eq!(
            ews_url.as_str(),
            "https://mail.contoso.com/EWS/Exchange.asmx"
        );
    }

    #[test]
    fn load_str_resolves_paths_against_spec_directory() {
        let state = load_minimal(MINIMAL).unwrap();

        assert_eq!(state.update_loop.spool_dir, Path::new("/etc/siuctl/spool"));
        assert_eq!(state.update_loop.state_dir, Path::new("/var/lib/siuctl"));
        assert_eq!(
            state.directory.bind_password,
            SecretRef::FromFile("/etc/siuctl/secrets/ad.password".into())
        );
        let shell = &state.exchange.management_shell;
        assert_eq!(shell.program, Path::new("/etc/siuctl/scripts/run.sh"));
        assert_eq!(shell.args, ["-x"]);
        assert_eq!(shell.working_dir, Path::new("/etc/siuctl"));
    }

    #[test]
    fn load_str_keeps_bare_program_name() {
        let text = MINIMAL.replace("[scripts/run.sh, -x]", "[pwsh, -File, x.ps1]");

        let state = load_minimal(&text).unwrap();

        assert_eq!(state.exchange.management_shell.program, Path::new("pwsh"));
    }

    #[test]
    fn load_str_reads_directory_settings() {
        let text = MINIMAL.replace(
            "url: ldaps://dc1.contoso.com",
            "url: ldap://dc1.contoso.com:389\n    startTls: true",
        );

        let state = load_minimal(&text).unwrap();

        assert_eq!(state.directory.transport, DirectoryTransport::StartTls);
        assert_eq!(state.directory.url.port(), Some(389));
        assert_eq!(
            state.directory.bind_user,
            BindUser::DownLevel {
                domain: "CONTOSO".to_owned(),
                user: "siu-reader".to_owned()
            }
        );
    }

    #[test]
    fn load_str_defaults_autodiscover_address_to_upn() {
        let text = MINIMAL.replace(
            "connection: manual\n    server: Mail.Contoso.com",
            "connection: autodiscover",
        );

        let state = load_minimal(&text).unwrap();

        assert_eq!(
            state.exchange.connection,
            ExchangeConnection::Autodiscover {
                address: "svc-siu@contoso.com".to_owned()
            }
        );
    }

    #[test]
    fn load_str_defaults_created_account_container() {
        let text = MINIMAL.replace(
            "  password: { fromEnv: SIU_ACCOUNT_PASSWORD }",
            "  create: true\n  password: { fromFile: secrets/svc-siu.password }",
        );

        let state = load_minimal(&text).unwrap();

        assert_eq!(
            state.account.provisioning,
            AccountProvisioning::Create {
                password_file: "/etc/siuctl/secrets/svc-siu.password".into(),
                container: "CN=Users,DC=contoso,DC=com".to_owned(),
            }
        );
        assert_eq!(
            state.account.password(),
            SecretRef::FromFile("/etc/siuctl/secrets/svc-siu.password".into())
        );
    }

    #[test]
    fn load_str_normalizes_manual_registration() {
        let text = MINIMAL.replace("environment: onPremises", "environment: hybrid")
            + "\
appRegistration:
  mode: manual
  tenantId: 8A7E6C2E-3C1A-4B9E-9B52-3F0E2C1D4A55
  clientId: 5d3b9f0e-7c21-4a8b-b6d4-2e1f0a9c8b7d
  credential:
    certificate:
      thumbprint: \"3a 1f 9c 44 0b 7e 2d 5a 61 c8 93 0f e2 4b 7d 18 a6 5c 30 9e\"
      keyFile: secrets/app.pem
";

        let state = load_minimal(&text).unwrap();

        let registration = state.app_registration.unwrap();
        assert_eq!(
            registration.tenant_id.to_string(),
            "8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55"
        );
        assert_eq!(registration.mail_access, MailAccess::Auto);
        assert_eq!(
            registration.endpoints.graph.as_str(),
            "https://graph.microsoft.com/"
        );
        let AppRegistrationMode::Manual { credential, .. } = registration.mode else {
            panic!("expected a manual registration");
        };
        assert_eq!(
            credential,
            ClientCredential::Certificate {
                thumbprint: "3A1F9C440B7E2D5A61C8930FE24B7D18A65C309E".to_owned(),
                key_file: "/etc/siuctl/secrets/app.pem".into(),
            }
        );
    }

    #[test]
    fn load_str_builds_automatic_registration() {
        let text = MINIMAL.replace("environment: onPremises", "environment: hybrid")
            + "\
appRegistration:
  mode: automatic
  tenantId: 8a7e6c2e-3c1a-4b9e-9b52-3f0e2c1d4a55
  credential:
    clientSecret: { fromFile: secrets/app.secret }
  provisioner:
    clientId: 1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f
    credential:
      clientSecret: { fromEnv: SIU_PROVISIONER_SECRET }
";

        let state = load_minimal(&text).unwrap();

        let AppRegistrationMode::Automatic {
            display_name,
            credential,
            provisioner,
        } = state.app_registration.unwrap().mode
        else {
            panic!("expected an automatic registration");
        };
        assert_eq!(display_name, "siuctl contoso");
        assert_eq!(
            credential,
            GeneratedCredential::ClientSecret {
                secret_file: "/etc/siuctl/secrets/app.secret".into()
            }
        );
        assert_eq!(
            provisioner.credential,
            ClientCredential::ClientSecret(SecretRef::FromEnv("SIU_PROVISIONER_SECRET".to_owned()))
        );
    }

    #[test]
    fn load_str_parses_scope_entries() {
        let text = format!(
            "{MINIMAL}scope:\n  mode: allExcept\n  users: [Alice@Contoso.com]\n  groups: [Sales@contoso.com, \"CN=Finance,DC=contoso,DC=com\", Board]\n"
        );

        let state = load_minimal(&text).unwrap();

        assert_eq!(state.scope.mode, ScopeMode::AllExcept);
        assert_eq!(state.scope.users, ["alice@contoso.com"]);
        assert_eq!(
            state.scope.groups,
            [
                GroupRef::Address("sales@contoso.com".to_owned()),
                GroupRef::Dn("CN=Finance,DC=contoso,DC=com".to_owned()),
                GroupRef::Name("Board".to_owned()),
            ]
        );
    }

    #[test]
    fn load_str_reports_every_problem() {
        let text = MINIMAL
            .replace("name: contoso", "name: Contoso")
            .replace("upn: svc-siu@contoso.com", "upn: svc-siu")
            .replace(
                "stateDir: /var/lib/siuctl",
                "stateDir: /var/lib/siuctl\n  concurrency: 0",
            );

        let messages = messages(load_minimal(&text).unwrap_err());

        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].contains("metadata.name"), "{messages:?}");
        assert!(messages[1].contains("account.upn"), "{messages:?}");
        assert!(
            messages[2].contains("updateLoop.concurrency"),
            "{messages:?}"
        );
    }

    #[test]
    fn load_str_reports_inline_secret_without_value() {
        let text = MINIMAL.replace("{ fromEnv: SIU_ACCOUNT_PASSWORD }", "\"s3cr3t-value\"");

        let error = load_minimal(&text).unwrap_err();
        let Error::Invalid { diagnostics, .. } = error else {
            panic!("expected an invalid spec");
        };

        let rendered = diagnostics[0].render();
        let json = serde_json::to_string(&diagnostics).unwrap();
        assert!(!rendered.contains("s3cr3t-value"), "{rendered}");
        assert!(!json.contains("s3cr3t-value"), "{json}");
        assert!(
            rendered.contains("password: { fromEnv: SIU_ACCOUNT_PASSWORD }"),
            "{rendered}"
        );
        assert!(
            rendered.contains("password: { fromFile: secrets/svc-siu.password }"),
            "{rendered}"
        );
    }

    #[test]
    fn load_str_masks_secret_in_malformed_reference() {
        let text = MINIMAL.replace(
            "{ fromEnv: SIU_ACCOUNT_PASSWORD }",
            "{ value: s3cr3t-value }",
        );

        let error = load_minimal(&text).unwrap_err();
        let Error::Invalid { diagnostics, .. } = error else {
            panic!("expected an invalid spec");
        };

        let rendered = diagnostics[0].render();
        assert!(
            rendered.contains("unknown key in a secret reference"),
            "{rendered}"
        );
        assert!(!rendered.contains("s3cr3t-value"), "{rendered}");
    }

    #[test]
    fn load_str_rejects_unusable_ews_urls() {
        let cases = [
            ("https:///EWS/Exchange.asmx", "has no host"),
            ("https://mail.contoso.com:0/EWS/Exchange.asmx", "has port 0"),
            (
                "\"https://mail.contoso.com/EWS\\t/Exchange.asmx\"",
                "control character",
            ),
            (
                "https://siu:pw@mail.contoso.com/EWS/Exchange.asmx",
                "user name or password",
            ),
        ];
        for (url, expected) in cases {
            let text = MINIMAL.replace(
                "server: Mail.Contoso.com",
                &format!("server: Mail.Contoso.com\n    ewsUrl: {url}"),
            );

            let messages = messages(load_minimal(&text).unwrap_err());

            assert_eq!(messages.len(), 1, "{url}: {messages:?}");
            assert!(messages[0].contains(expected), "{url}: {messages:?}");
        }
    }

    #[test]
    fn load_str_explains_numbers_and_types() {
        let cases = [
            ("  concurrency: 99999999999999999999", "too large"),
            ("  concurrency: 08", "leading zero"),
            ("  concurrency: [8]", "expected a single value"),
            ("  stateDir: [a]", "expected a single value"),
        ];
        for (line, expected) in cases {
            // A `stateDir` line replaces the one in MINIMAL.
            let text = format!("{MINIMAL}{line}\n")
                .replace("  stateDir: /var/lib/siuctl\n  stateDir", "  stateDir");

            let messages = messages(load_minimal(&text).unwrap_err());

            assert_eq!(messages.len(), 1, "{line}: {messages:?}");
            assert!(messages[0].contains(expected), "{line}: {messages:?}");
        }
    }

    #[test]
    fn load_str_helps_with_indentation_errors() {
        let text = MINIMAL.replace(
            "  upn: svc-siu@contoso.com",
            "  upn: svc-siu@contoso.com\n upn: x",
        );

        let error = load_minimal(&text).unwrap_err();
        let Error::Invalid { diagnostics, .. } = error else {
            panic!("expected an invalid spec");
        };

        let help = diagnostics[0].help.as_deref().unwrap_or_default();
        assert!(help.contains("indent"), "{}", diagnostics[0]);
    }

    #[test]
    fn load_str_caps_reported_problems() {
        let users: String = (0..MAX_DIAGNOSTICS + 500)
            .map(|index| format!("    - user{index}\n"))
            .collect();
        let text = format!("{MINIMAL}scope:\n  mode: only\n  users:\n{users}");

        let messages = messages(load_minimal(&text).unwrap_err());

        assert_eq!(messages.len(), MAX_DIAGNOSTICS + 1);
        assert!(messages[0].contains("scope.users[0]"), "{}", messages[0]);
        assert_eq!(
            messages[MAX_DIAGNOSTICS],
            "500 more problems are not shown; fix the ones above and check the spec again"
        );
    }

    #[test]
    fn load_bytes_locates_invalid_utf8() {
        let mut bytes = b"apiVersion: siu/v1\nkind: x\xff\n".to_vec();
        bytes.extend_from_slice(b"more: 1\n");

        let error = load_bytes(&bytes, Path::new("spec.yaml")).unwrap_err();
        let Error::Invalid { diagnostics, .. } = error else {
            panic!("expected an invalid spec");
        };

        assert_eq!(
            (diagnostics[0].line, diagnostics[0].column),
            (Some(2), Some(8))
        );
    }

    #[test]
    fn load_bytes_recognizes_utf16_and_utf32() {
        let text = "apiVersion: siu/v1\n";
        let utf16_le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let utf16_be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let utf32_le: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let cases = [
            ([&[0xFF, 0xFE][..], &utf16_le].concat(), "UTF-16"),
            ([&[0xFE, 0xFF][..], &utf16_be].concat(), "UTF-16"),
            ([&[0xFF, 0xFE, 0, 0][..], &utf32_le].concat(), "UTF-32"),
            (utf16_le.clone(), "NUL byte at offset 1"),
        ];
        for (bytes, expected) in cases {
            let error = load_bytes(&bytes, Path::new("spec.yaml")).unwrap_err();
            let messages = messages(error);

            assert_eq!(messages.len(), 1, "{messages:?}");
            assert!(messages[0].contains(expected), "{messages:?}");
        }
    }

    #[test]
    fn load_rejects_oversized_file_before_reading() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("big.yaml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_SPEC_BYTES + 1).unwrap();

        let error = load(&path).unwrap_err();

        assert!(matches!(error, Error::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("8 MiB"), "{error}");
    }
}
