//! `siuctl demo` end to end. The real binary runs the demo with `--keep-running`, and the test
//! accounts for every bundled message in the lab's mailboxes, through `siuctl lab sent-items`,
//! and in the spool. It runs once with the lab's own directory and once with Samba AD.
//!
//! The Samba variant runs when `SIU_SAMBA=1` is set (as root, because Samba listens on ports
//! 389 and 636; `scripts/samba-ad.sh` installs and starts it), and skips with a message
//! otherwise. This is a test binary of its own because the demo seeds the lab's organization
//! into the host's one Samba with new passwords. The integration tests keep a lab seeded in
//! that Samba while they run, and Cargo runs test binaries one after another.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the demo may take to print its report or to stop: a bound for a hung child, not
/// a speed requirement. Seeding an empty Samba takes about 15 s.
const PATIENCE: Duration = Duration::from_secs(300);

/// How a bundled message should end.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// Replaced in the Sent Items of `mailbox`, whose signature names `signer`.
    Updated {
        mailbox: &'static str,
        signer: &'static str,
    },
    /// Skipped for `reason`. The original stays unchanged in the Sent Items of `original`,
    /// when the sender has a mailbox.
    Skipped {
        reason: &'static str,
        original: Option<&'static str>,
    },
    /// Moved to `failed/` for `reason`.
    Failed { reason: &'static str },
}

/// Every bundled message and how it should end.
const EXPECTED: &[(&str, Expected)] = &[
    (
        "apple-mail-plain.eml",
        Expected::Updated {
            mailbox: "alice@lab.example",
            signer: "Alice Archer",
        },
    ),
    (
        "signed-with-attachment.eml",
        Expected::Updated {
            mailbox: "bob@lab.example",
            signer: "Bob Baker",
        },
    ),
    (
        "iso-2022-jp.eml",
        Expected::Updated {
            mailbox: "grace@lab.example",
            signer: "Grace Garcia",
        },
    ),
    (
        "pdf-attachment.eml",
        Expected::Updated {
            mailbox: "carol@lab.example",
            signer: "Carol Chen",
        },
    ),
    (
        "html-inline-image.eml",
        Expected::Updated {
            mailbox: "heidi.hill@lab.example",
            signer: "Heidi Hill",
        },
    ),
    (
        "thunderbird-reply.eml",
        Expected::Skipped {
            reason: "out_of_scope",
            original: Some("erin@lab.example"),
        },
    ),
    (
        "gmail-forward.eml",
        Expected::Skipped {
            reason: "sender_is_group",
            original: None,
        },
    ),
    (
        "pgp-signed.eml",
        Expected::Skipped {
            reason: "sender_has_no_mailbox",
            original: None,
        },
    ),
    (
        "outside-sender.eml",
        Expected::Skipped {
            reason: "sender_not_in_directory",
            original: None,
        },
    ),
    (
        "no-message-id.eml",
        Expected::Failed {
            reason: "missing_message_id",
        },
    ),
];

/// Prints a line to the process's standard error, past the harness's capture.
macro_rules! report {
    ($($argument:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}

#[test]
fn demo_accounts_for_every_message() {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let demo = Demo::start(&scratch.path().join("lab"), None);

    check_messages(&demo);
    demo.assert_no_secret_in_output();
    assert!(
        demo.report["directory"]
            .as_str()
            .is_some_and(|url| url.starts_with("ldaps://127.0.0.1:")),
        "the lab's own LDAPS server is the directory: {}",
        demo.report["directory"]
    );

    demo.stop();
}

#[test]
fn demo_with_samba_accounts_for_every_message() {
    let Some(env_file) = samba_env_file() else {
        report!("skipping the demo with Samba AD: set SIU_SAMBA=1 (as root) to run it");
        return;
    };
    let ldaps_url = env_variable(&env_file, "SIU_AD_LDAPS_URL");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let demo = Demo::start(&scratch.path().join("lab"), Some(&env_file));

    check_messages(&demo);
    demo.assert_no_secret_in_output();
    assert_eq!(demo.report["directory"], ldaps_url.as_str());
    let spec =
        std::fs::read_to_string(demo.dir.join("specs/demo.yaml")).expect("the demo wrote its spec");
    assert!(
        spec.contains(&format!("url: \"{ldaps_url}\"")),
        "the spec's directory is Samba:\n{spec}"
    );
    assert!(
        spec.contains("auth: basic"),
        "EWS uses Basic with Samba:\n{spec}"
    );
    let log = demo.log();
    assert!(
        log.contains("ok       AccountReady: siu-agent@siu.test"),
        "apply checks the service account in Samba:\n{log}"
    );

    demo.stop();
}

/// A running `siuctl demo --keep-running --output json`, and the report it printed.
struct Demo {
    child: Child,
    dir: PathBuf,
    log: PathBuf,
    report: Value,
}

impl Demo {
    /// Starts the demo in `dir` and waits for its JSON report.
    fn start(dir: &Path, external_directory_env: Option<&Path>) -> Self {
        let log = dir.with_extension("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_siuctl"));
        command
            .args(["demo", "--keep-running", "--output", "json", "--dir"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("the log file is created"));
        if let Some(path) = external_directory_env {
            command.arg("--external-directory-env").arg(path);
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("siuctl demo starts");

        // The report is one JSON document; the demo keeps serving after it.
        let stdout = child.stdout.take().expect("standard output is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let next = serde_json::Deserializer::from_reader(BufReader::new(stdout))
                .into_iter::<Value>()
                .next();
            let _ = sender.send(next);
        });
        let mut demo = Self {
            child,
            dir: dir.to_path_buf(),
            log,
            report: Value::Null,
        };
        demo.report = match receiver.recv_timeout(PATIENCE) {
            Ok(Some(Ok(report))) => report,
            Ok(other) => panic!(
                "siuctl demo printed no JSON report ({other:?}); its log:\n{}",
                demo.log()
            ),
            Err(_) => panic!(
                "siuctl demo printed no report within {PATIENCE:?}; its log:\n{}",
                demo.log()
            ),
        };
        report!(
            "demo{}: report after {:.1} s",
            if external_directory_env.is_some() {
                " with Samba"
            } else {
                ""
            },
            started.elapsed().as_secs_f64()
        );
        demo
    }

    /// Returns what the demo wrote to standard error: its steps and its logs.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Returns the report's entry for a bundled file.
    fn message(&self, file: &str) -> &Value {
        self.report["messages"]
            .as_array()
            .expect("the report lists messages")
            .iter()
            .find(|message| message["file"] == file)
            .unwrap_or_else(|| panic!("the report has no entry for {file}"))
    }

    /// Lists a mailbox's Sent Items through the running lab, as a user would.
    fn sent_items(&self, mailbox: &str) -> Vec<Value> {
        let output = Command::new(env!("CARGO_BIN_EXE_siuctl"))
            .args([
                "lab",
                "sent-items",
                "--output",
                "json",
                "--mailbox",
                mailbox,
            ])
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("siuctl lab sent-items runs");
        assert!(
            output.status.success(),
            "siuctl lab sent-items --mailbox {mailbox} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&output.stdout)
            .expect("siuctl lab sent-items prints a JSON list")
    }

    /// Asserts that neither the report nor the log contains a password, client secret or
    /// private key of the lab directory, the ones that apply generated included.
    fn assert_no_secret_in_output(&self) {
        let mut secrets = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("secrets")).expect("the secrets folder") {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".client-id") {
                continue;
            }
            let Ok(contents) = std::fs::read_to_string(&path) else {
                continue;
            };
            if name.ends_with(".pem") {
                // The base64 lines of the private key, not the certificate's public lines.
                let key = contents
                    .split("-----END PRIVATE KEY-----")
                    .next()
                    .unwrap_or_default();
                secrets.extend(
                    key.lines()
                        .filter(|line| line.len() >= 40 && !line.starts_with("-----"))
                        .map(str::to_owned),
                );
            } else if !contents.trim().is_empty() {
                secrets.push(contents.trim().to_owned());
            }
        }
        assert!(
            secrets.len() >= 4,
            "the lab directory has secrets: {secrets:?}"
        );
        let output = format!("{}{}", self.report, self.log());
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "the demo's output contains a secret of {}",
                self.dir.join("secrets").display()
            );
        }
    }

    /// Stops the demo with SIGTERM, as Ctrl-C would, and checks that it saved the lab.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("the demo can be polled") {
                break exit;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the demo did not stop within {PATIENCE:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = self.log();
        assert!(
            exit.success(),
            "the demo exited with {exit}; its log:\n{log}"
        );
        assert!(log.contains("stopping the lab (SIGTERM)"), "{log}");
        assert!(
            self.dir.join("state.json").exists(),
            "the demo saved the lab's state"
        );
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // A failed assertion must not leave the demo serving.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks every bundled message against [`EXPECTED`]: its outcome in the report, its item
/// in Sent Items and its spool file.
fn check_messages(demo: &Demo) {
    let messages = demo.report["messages"]
        .as_array()
        .expect("the report lists messages");
    assert_eq!(
        messages.len(),
        EXPECTED.len(),
        "the demo sends every bundled message once"
    );
    assert_eq!(demo.report["summary"]["updated"], 5);
    assert_eq!(demo.report["summary"]["keptAsCopy"], 0);

    for (file, expected) in EXPECTED {
        let message = demo.message(file);
        let outcome = &message["outcome"];
        match *expected {
            Expected::Updated { mailbox, signer } => {
                assert_eq!(outcome["kind"], "updated", "{file}: {message:#}");
                assert_eq!(outcome["replay"], false, "{file}: {message:#}");
                assert_eq!(message["mailbox"], mailbox, "{file}: {message:#}");
                check_replaced(demo, file, message, mailbox, signer);
            }
            Expected::Skipped { reason, original } => {
                assert_eq!(outcome["kind"], "skipped", "{file}: {message:#}");
                assert_eq!(outcome["reason"], reason, "{file}: {message:#}");
                if let Some(mailbox) = original {
                    check_original_kept(demo, file, message, mailbox);
                }
            }
            Expected::Failed { reason } => {
                assert_eq!(outcome["kind"], "failed", "{file}: {message:#}");
                assert_eq!(outcome["reason"], reason, "{file}: {message:#}");
                check_failed_file(demo, file, message);
            }
        }
    }

    // Nothing is left in the spool but the failed files.
    for folder in ["new", "cur"] {
        let left = std::fs::read_dir(demo.dir.join("spool").join(folder))
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert_eq!(left, 0, "spool/{folder} is empty after the demo");
    }
}

/// Returns the items of `items` whose Internet Message-ID is the message's.
fn items_of<'a>(items: &'a [Value], message: &Value) -> Vec<&'a Value> {
    let message_id = message["messageId"]
        .as_str()
        .expect("a sent message has a Message-ID");
    items
        .iter()
        .filter(|item| item["internetMessageId"] == message_id)
        .collect()
}

/// Checks that the mailbox contains the message exactly once, rewritten, sent and signed.
fn check_replaced(demo: &Demo, file: &str, message: &Value, mailbox: &str, signer: &str) {
    let items = demo.sent_items(mailbox);
    let matching = items_of(&items, message);
    assert_eq!(
        matching.len(),
        1,
        "{file}: exactly one item in the Sent Items of {mailbox}: {matching:#?}"
    );
    let item = matching[0];
    assert_eq!(item["rewritten"], true, "{file}: {item:#}");
    assert_eq!(item["draft"], false, "{file}: {item:#}");
    let text = item["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(signer),
        "{file}: the text ends with {signer}'s signature: {item:#}"
    );
}

/// Checks that the original of a skipped message is still the client's, not rewritten.
fn check_original_kept(demo: &Demo, file: &str, message: &Value, mailbox: &str) {
    let items = demo.sent_items(mailbox);
    let matching = items_of(&items, message);
    assert_eq!(
        matching.len(),
        1,
        "{file}: the original stays in the Sent Items of {mailbox}: {matching:#?}"
    );
    assert_eq!(matching[0]["rewritten"], false, "{file}: {:#}", matching[0]);
}

/// Checks that a failed message's spool file is in `failed/` next to its reason.
fn check_failed_file(demo: &Demo, file: &str, message: &Value) {
    let name = message["spoolFile"]
        .as_str()
        .expect("the report names the spool file");
    let failed = demo.dir.join("spool/failed");
    assert!(
        failed.join(name).exists(),
        "{file}: spool/failed/{name} exists"
    );
    let reason = std::fs::read_to_string(failed.join(format!("{name}.reason")))
        .unwrap_or_else(|error| panic!("{file}: spool/failed/{name}.reason is readable: {error}"));
    let detail = message["outcome"]["detail"]
        .as_str()
        .expect("a failure has a detail");
    assert!(
        reason.contains(detail),
        "{file}: the reason file states the detail: {reason}"
    );
}

/// Starts Samba AD with `scripts/samba-ad.sh` when `SIU_SAMBA=1` and returns its
/// environment file, or `None` to skip.
fn samba_env_file() -> Option<PathBuf> {
    if std::env::var("SIU_SAMBA").as_deref() != Ok("1") {
        return None;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/samba-ad.sh");
    let dir = std::env::var("SIU_SAMBA_DIR").unwrap_or_else(|_| "/tmp/siu-samba-ad".to_owned());
    let started = Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{} start {dir} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    report!("samba: ready in {:.1} s", started.elapsed().as_secs_f64());
    Some(PathBuf::from(dir).join("samba-ad.env"))
}

/// Reads one variable of a `NAME='value'` environment file.
fn env_variable(path: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("{} is readable: {error}", path.display()));
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .map(|value| value.trim_matches('\'').to_owned())
        .unwrap_or_else(|| panic!("{} defines {name}", path.display()))
}
