//! `siuctl validate` and `siuctl schema` through the real binary.
//!
//! Each file in `tests/specs/invalid/` is a spec with known problems. Its expected
//! diagnostics come first, one `# expect: LINE:COLUMN: MESSAGE` comment per problem, or,
//! for files that cannot hold a comment (empty, binary, not UTF-8), in a sibling
//! `NAME.expect` file with one `LINE:COLUMN: MESSAGE` per line. The message may be a
//! prefix of the full message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The inline secret value used by the invalid specs; no output may contain it.
const INLINE_SECRET: &str = "hunter2";

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller package sits in the repository root")
        .to_path_buf()
}

fn siuctl(args: &[&str], current_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(args)
        .current_dir(current_dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("siuctl runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One expected diagnostic.
#[derive(Debug)]
struct Expectation {
    line: usize,
    column: usize,
    message: String,
}

/// Parses `LINE:COLUMN: MESSAGE`.
fn parse_expectation(text: &str) -> Expectation {
    let mut parts = text.splitn(3, ':');
    let line = parts.next().and_then(|part| part.trim().parse().ok());
    let column = parts.next().and_then(|part| part.trim().parse().ok());
    let message = parts.next().map(|part| part.trim().to_owned());
    match (line, column, message) {
        (Some(line), Some(column), Some(message)) if !message.is_empty() => Expectation {
            line,
            column,
            message,
        },
        _ => panic!("expectation `{text}` is not of the form LINE:COLUMN: MESSAGE"),
    }
}

/// Reads the expectations of an invalid spec from its leading comments or its `.expect`
/// file.
fn expectations(spec: &Path) -> Vec<Expectation> {
    let sibling = spec.with_extension("expect");
    let lines: Vec<String> = if sibling.exists() {
        std::fs::read_to_string(&sibling)
            .expect("the .expect file is readable")
            .lines()
            .map(str::to_owned)
            .collect()
    } else {
        let bytes = std::fs::read(spec).expect("the spec is readable");
        text(&bytes)
            .lines()
            .map_while(|line| line.strip_prefix("# expect:").map(str::to_owned))
            .collect()
    };
    lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_expectation(line))
        .collect()
}

fn invalid_specs() -> Vec<PathBuf> {
    let directory = repository_root().join("tests/specs/invalid");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/specs/invalid exists")
        .map(|entry| entry.expect("the directory is readable").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    specs.sort();
    specs
}

/// Checks one invalid spec in text and JSON output and returns what did not match.
fn check_invalid_spec(spec: &Path) -> Vec<String> {
    let name = spec
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a UTF-8 file name");
    let directory = spec.parent().expect("the spec has a directory");
    let expected = expectations(spec);
    let mut failures = Vec::new();
    if expected.is_empty() {
        failures.push(format!("{name}: no expectation"));
        return failures;
    }

    let output = siuctl(&["validate", "-f", name], directory);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    if output.status.code() != Some(1) {
        failures.push(format!(
            "{name}: exit code {:?}, expected 1",
            output.status.code()
        ));
    }
    if stderr.contains("panicked") {
        failures.push(format!("{name}: siuctl panicked: {stderr}"));
    }
    if stdout.contains(INLINE_SECRET) || stderr.contains(INLINE_SECRET) {
        failures.push(format!("{name}: the output shows the inline secret"));
    }
    let reported: Vec<&str> = stdout
        .lines()
        .filter(|line| line.contains(": error: "))
        .collect();
    if reported.len() != expected.len() {
        failures.push(format!(
            "{name}: {} problems reported, {} expected:\n{stdout}",
            reported.len(),
            expected.len()
        ));
    }
    for expectation in &expected {
        let prefix = format!(
            "{name}:{}:{}: error: {}",
            expectation.line, expectation.column, expectation.message
        );
        if !reported.iter().any(|line| line.starts_with(&prefix)) {
            failures.push(format!("{name}: expected `{prefix}`, got:\n{stdout}"));
        }
    }

    let output = siuctl(&["validate", "--output", "json", "-f", name], directory);
    let stdout = text(&output.stdout);
    if stdout.contains(INLINE_SECRET) {
        failures.push(format!("{name}: the JSON output shows the inline secret"));
    }
    match serde_json::from_str::<serde_json::Value>(&stdout) {
        Ok(report) => {
            let diagnostics = report["files"][0]["diagnostics"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if report["valid"] != serde_json::Value::Bool(false) {
                failures.push(format!("{name}: the JSON report is not marked invalid"));
            }
            for expectation in &expected {
                let found = diagnostics.iter().any(|diagnostic| {
                    diagnostic["line"] == expectation.line
                        && diagnostic["column"] == expectation.column
                        && diagnostic["message"]
                            .as_str()
                            .is_some_and(|message| message.starts_with(&expectation.message))
                });
                if !found {
                    failures.push(format!("{name}: JSON lacks {expectation:?}: {stdout}"));
                }
            }
        }
        Err(error) => failures.push(format!(
            "{name}: the JSON output does not parse ({error}): {stdout}"
        )),
    }
    failures
}

#[test]
fn invalid_specs_report_expected_problems() {
    let specs = invalid_specs();
    assert!(
        specs.len() >= 35,
        "only {} invalid specs in tests/specs/invalid",
        specs.len()
    );

    let failures: Vec<String> = specs
        .iter()
        .flat_map(|spec| check_invalid_spec(spec))
        .collect();

    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn examples_are_valid() {
    let root = repository_root();
    let mut examples: Vec<String> = std::fs::read_dir(root.join("examples"))
        .expect("examples/ exists")
        .map(|entry| entry.expect("the directory is readable").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .expect("below the root")
                .display()
                .to_string()
        })
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "examples: {examples:?}");
    let mut args = vec!["validate", "-f"];
    args.extend(examples.iter().map(String::as_str));

    let output = siuctl(&args, &root);

    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    for example in &examples {
        assert!(stdout.contains(&format!("{example}: valid")), "{stdout}");
    }
}

#[test]
fn examples_reference_stored_schema() {
    let root = repository_root();
    for entry in std::fs::read_dir(root.join("examples")).expect("examples/ exists") {
        let path = entry.expect("the directory is readable").path();
        if path.extension().is_none_or(|extension| extension != "yaml") {
            continue;
        }

        let contents = std::fs::read_to_string(&path).expect("readable");
        if contents.lines().any(|line| line == "kind: LabOrganization") {
            // The lab's organization fixture is not a spec and has no schema.
            continue;
        }
        let first_line = contents.lines().next().map(str::to_owned);

        assert_eq!(
            first_line.as_deref(),
            Some("# yaml-language-server: $schema=../specs/schema/siu-v1.schema.json"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn oversized_spec_is_rejected_before_parsing() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("big.yaml");
    let line = "# padding to make the file larger than the spec size limit\n";
    let content = line.repeat(20 * 1024 * 1024 / line.len() + 1);
    std::fs::write(&path, content).expect("the file is written");

    let output = siuctl(&["validate", "-f", "big.yaml"], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("big.yaml: error: spec file big.yaml is"),
        "{stdout}"
    );
    assert!(
        stdout.contains("larger than the limit of 8 MiB"),
        "{stdout}"
    );
}

/// Waits for `child` to exit. A child still running after a minute has hung, so it is
/// killed and the test fails.
fn wait_or_kill(mut child: std::process::Child) -> Output {
    for _ in 0..600 {
        if child.try_wait().expect("the child can be polled").is_some() {
            return child.wait_with_output().expect("the output is readable");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().expect("the hung child can be killed");
    panic!("siuctl did not exit within a minute");
}

#[test]
fn spec_from_pipe_is_read_once() {
    use std::io::Write;

    let root = repository_root();
    let spec = std::fs::read(root.join("examples/onprem.yaml")).expect("the example");
    let mut child = Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(["validate", "-f", "/dev/stdin"])
        .current_dir(&root)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("siuctl starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&spec)
        .expect("the spec is written to the pipe");

    let output = wait_or_kill(child);

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout, "/dev/stdin: valid\n");
}

#[test]
fn fifo_without_writer_is_reported() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let fifo = directory.path().join("spec.yaml");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
    let created = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(created, 0, "mkfifo failed");
    let child = Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(["validate", "-f", "spec.yaml"])
        .current_dir(directory.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("siuctl starts");

    let output = wait_or_kill(child);

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("spec.yaml: error: spec file spec.yaml is a pipe that delivered no data"),
        "{stdout}"
    );
}

#[test]
fn directory_is_reported() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(directory.path().join("specs.yaml")).expect("the directory");

    let output = siuctl(&["validate", "-f", "specs.yaml"], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .contains("specs.yaml: error: specs.yaml is a directory; give the path of a spec file"),
        "{stdout}"
    );
}

#[test]
fn oversized_lab_fixture_is_rejected_before_reading() {
    use std::io::Write;

    let directory = tempfile::tempdir().expect("a temporary directory");
    let path = directory.path().join("org.yaml");
    let mut file = std::fs::File::create(&path).expect("the file is created");
    file.write_all(b"kind: LabOrganization\n")
        .expect("the header is written");
    // A sparse file: two gigabytes that take no disk space and must not be read whole.
    file.set_len(2 * 1024 * 1024 * 1024)
        .expect("the file is extended");

    let output = siuctl(&["validate", "-f", "org.yaml"], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("larger than the limit of 8 MiB"),
        "{stdout}"
    );
}

#[test]
fn json_output_accepts_non_utf8_file_name() {
    use std::os::unix::ffi::OsStrExt;

    let root = repository_root();
    let directory = tempfile::tempdir().expect("a temporary directory");
    let name = std::ffi::OsStr::from_bytes(b"spec-\xff.yaml");
    std::fs::copy(
        root.join("examples/onprem.yaml"),
        directory.path().join(name),
    )
    .expect("the example is copied");

    let output = Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(["validate", "--output", "json", "-f"])
        .arg(name)
        .current_dir(directory.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("siuctl runs");

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["files"][0]["path"], "spec-\u{fffd}.yaml");
}

#[test]
fn text_output_escapes_control_characters_in_file_name() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let name = "spec\u{1b}[2J\nfake.yaml: valid.yaml";
    std::fs::write(directory.path().join(name), "").expect("the file is written");

    let output = siuctl(&["validate", "-f", name], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains('\u{1b}'), "{stdout:?}");
    assert!(!stdout.contains("\nfake.yaml"), "{stdout:?}");
    assert!(
        stdout.starts_with(
            "spec\\u{1b}[2J\\nfake.yaml: valid.yaml:1:1: error: the file contains no YAML document"
        ),
        "{stdout:?}"
    );
}

#[test]
fn lab_fixture_error_keeps_its_snippet() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        directory.path().join("org.yaml"),
        "kind: LabOrganization\n  name: contoso\n",
    )
    .expect("the fixture is written");

    let output = siuctl(&["validate", "-f", "org.yaml"], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("org.yaml: error: invalid lab fixture org.yaml"),
        "{stdout}"
    );
    assert!(!first.contains("\\n"), "{stdout}");
    assert!(stdout.contains("2 |   name: contoso"), "{stdout}");
}

#[test]
fn missing_file_is_reported() {
    let directory = tempfile::tempdir().expect("a temporary directory");

    let output = siuctl(&["validate", "-f", "absent.yaml"], directory.path());

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("absent.yaml: error: failed to read spec file absent.yaml"),
        "{stdout}"
    );
}

#[test]
fn mixed_files_exit_one_and_report_each() {
    let root = repository_root();

    let output = siuctl(
        &[
            "validate",
            "-f",
            "examples/onprem.yaml",
            "-f",
            "tests/specs/invalid/bad-upn.yaml",
        ],
        &root,
    );

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("examples/onprem.yaml: valid"), "{stdout}");
    assert!(
        stdout.contains("tests/specs/invalid/bad-upn.yaml:19:8: error:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 of 2 files invalid, 1 problem"),
        "{stdout}"
    );
}

#[test]
fn json_output_marks_valid_files() {
    let root = repository_root();

    let output = siuctl(
        &["validate", "--output", "json", "-f", "examples/onprem.yaml"],
        &root,
    );

    assert_eq!(output.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["valid"], true);
    assert_eq!(report["files"][0]["path"], "examples/onprem.yaml");
    assert_eq!(report["files"][0]["diagnostics"], serde_json::json!([]));
}

#[test]
fn schema_command_prints_stored_schema() {
    let root = repository_root();
    let stored = std::fs::read_to_string(root.join("specs/schema/siu-v1.schema.json"))
        .expect("the stored schema");

    let output = siuctl(&["schema"], &root);

    assert_eq!(output.status.code(), Some(0));
    assert!(
        text(&output.stdout) == stored,
        "specs/schema/siu-v1.schema.json is stale; regenerate it with `cargo run -p siuctl -- schema > specs/schema/siu-v1.schema.json`"
    );
}

#[test]
fn json_logs_go_to_stderr() {
    let root = repository_root();

    let output = siuctl(
        &[
            "-vv",
            "--log-format",
            "json",
            "validate",
            "-f",
            "examples/onprem.yaml",
        ],
        &root,
    );

    assert_eq!(output.status.code(), Some(0));
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty(), "no debug log with -vv");
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("`{line}` is not JSON: {error}"));
        assert!(event["level"].is_string(), "{line}");
    }
    assert_eq!(text(&output.stdout), "examples/onprem.yaml: valid\n");
}

#[test]
fn rust_log_overrides_verbose_flag() {
    let root = repository_root();

    let output = Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(["-vvv", "validate", "-f", "examples/onprem.yaml"])
        .current_dir(&root)
        .env("RUST_LOG", "off")
        .output()
        .expect("siuctl runs");

    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn usage_error_exits_64() {
    let output = siuctl(&["validate"], &repository_root());

    assert_eq!(output.status.code(), Some(64));
    assert!(
        text(&output.stderr).contains("--file"),
        "{}",
        text(&output.stderr)
    );
}
