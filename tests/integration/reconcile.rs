//! `siuctl plan`, `apply`, `status`, `export` and `test-impersonation` against an in-process
//! lab, through the real binary and the specs the lab writes.
//!
//! Each test starts its own lab in a temporary directory, so tests never share state. The
//! specs call `siuctl lab exchange-shell` for the management shell, which reaches the
//! in-process lab through its control API. Every output of every command is checked for
//! the secrets of the lab directory.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use siu_lab::fixture::ScopeFixture;
use siu_lab::world::directory::uac;
use siu_lab::{FaultKind, FaultRule, Fixture, Lab, LabConfig, Service};

/// The golden file of the first plan of `onprem.yaml`, with the lab's paths, ports and IDs
/// replaced by placeholders. `SIU_UPDATE_GOLDEN=1` rewrites it.
const PLAN_GOLDEN: &str = "tests/integration/golden/plan-onprem.txt";

/// A lab with its directory, and every output of the commands run against it.
struct LabRun {
    lab: Lab,
    dir: tempfile::TempDir,
    outputs: Vec<String>,
}

impl LabRun {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(configure: impl FnOnce(&mut LabConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = LabConfig::new(Fixture::default_org());
        config.dir = Some(dir.path().to_path_buf());
        config.siuctl = Some(PathBuf::from(env!("CARGO_BIN_EXE_siuctl")));
        configure(&mut config);
        let lab = Lab::start(config).await.expect("the lab starts");
        Self {
            lab,
            dir,
            outputs: Vec::new(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn spec(&self, name: &str) -> PathBuf {
        self.path("specs").join(name)
    }

    /// Writes `specs/<name>`: the lab's spec `from` with each `(old, new)` replaced once.
    fn edited_spec(&self, from: &str, name: &str, edits: &[(&str, &str)]) -> PathBuf {
        let mut text = std::fs::read_to_string(self.spec(from)).expect("the lab wrote the spec");
        for (old, new) in edits {
            assert!(text.contains(old), "{from} should contain {old:?}");
            text = text.replacen(old, new, 1);
        }
        let path = self.spec(name);
        std::fs::write(&path, text).expect("the edited spec is written");
        path
    }

    /// Runs siuctl with `args` and no input, and keeps its output.
    async fn siuctl(&mut self, args: &[&str]) -> Output {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_siuctl"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("siuctl runs");
        self.outputs.push(text(&output));
        output
    }

    async fn plan(&mut self, spec: &Path) -> Output {
        self.siuctl(&["plan", "-f", arg(spec), "--detailed-exitcode"])
            .await
    }

    async fn apply(&mut self, spec: &Path) -> Output {
        self.siuctl(&[
            "apply",
            "-f",
            arg(spec),
            "--auto-approve",
            "--replication-timeout",
            "5s",
        ])
        .await
    }

    /// Runs PowerShell cmdlets as an administrator would, through the lab's stand-in.
    async fn exchange_shell(&mut self, script: &str, online: bool) -> Output {
        let dir = self.dir.path().to_str().expect("UTF-8 path").to_owned();
        let mut args = vec!["lab", "exchange-shell", "--dir", dir.as_str()];
        if online {
            args.push("--online");
        }
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_siuctl"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("siuctl runs");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(script.as_bytes())
                .await
                .expect("the script is written");
        }
        let output = child.wait_with_output().await.expect("siuctl finishes");
        self.outputs.push(text(&output));
        output
    }

    fn set_enabled(&self, sam: &str, enabled: bool) {
        let mut world = self.lab.state().write();
        let id = world.directory.by_sam(sam).expect("the user exists");
        let user = world.directory.users.get_mut(&id).expect("the user exists");
        if enabled {
            user.uac &= !uac::ACCOUNT_DISABLE;
        } else {
            user.uac |= uac::ACCOUNT_DISABLE;
        }
    }

    fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.path("secrets").join(name))
            .unwrap_or_else(|_| panic!("secret {name} exists"))
            .trim()
            .to_owned()
    }

    /// Asserts that no output so far contains a password, client secret or private key of
    /// the lab directory, including the ones that apply generated.
    fn assert_no_secret_in_outputs(&self) {
        let mut secrets = Vec::new();
        for entry in std::fs::read_dir(self.path("secrets")).expect("secrets folder") {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.ends_with(".client-id") {
                continue;
            }
            let Ok(contents) = std::fs::read_to_string(&path) else {
                continue;
            };
            if name.ends_with(".pem") || name.ends_with(".pem.pending") {
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
            } else {
                secrets.push(contents.trim().to_owned());
            }
        }
        assert!(!secrets.is_empty(), "the lab directory has secrets");
        for output in &self.outputs {
            for secret in &secrets {
                assert!(
                    !output.contains(secret.as_str()),
                    "an output contains a secret:\n{output}"
                );
            }
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[track_caller]
fn assert_exit(output: &Output, expected: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(expected),
        "{what}:\n{}",
        text(output)
    );
}

#[track_caller]
fn assert_says(output: &Output, expected: &str) {
    let text = text(output);
    assert!(
        text.contains(expected),
        "output should contain {expected:?}:\n{text}"
    );
}

fn rule(service: Service, operation: &str, fault: FaultKind, remaining: Option<u64>) -> FaultRule {
    FaultRule {
        service,
        operation: Some(operation.to_owned()),
        fault,
        probability: 1.0,
        remaining,
    }
}

/// Replaces the lab's paths, ports and generated IDs in a plan, so that it can be compared
/// with a golden file.
fn normalize(text: &str, dir: &Path) -> String {
    let text = text.replace(arg(dir), "<LAB>");
    let mut normalized = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(index) = rest.find("127.0.0.1:") {
        normalized.push_str(&rest[..index + "127.0.0.1:".len()]);
        rest = &rest[index + "127.0.0.1:".len()..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        normalized.push_str("<PORT>");
        rest = &rest[digits..];
    }
    normalized.push_str(rest);
    normalized
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_spec_converges_and_exports() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("hybrid.yaml");

    let first = lab.plan(&spec).await;
    assert_exit(&first, 2, "the first plan has changes");
    let applied = lab.apply(&spec).await;
    assert_exit(&applied, 0, "apply succeeds");
    assert_says(&applied, "Apply complete");
    let assignments = lab.lab.state().read().exchange.role_assignments.len();
    lab.lab.journal().reset();
    let second = lab.plan(&spec).await;
    assert_exit(&second, 0, "the second plan has no changes");
    let writes: Vec<String> = lab
        .lab
        .journal()
        .counters()
        .into_keys()
        .filter(|counter| {
            let operation = counter
                .split_once('/')
                .map_or(counter.as_str(), |(_, op)| op);
            ["add", "modify", "delete"].contains(&operation)
                || ["POST ", "PATCH ", "DELETE "]
                    .iter()
                    .any(|method| operation.starts_with(method))
        })
        .collect();
    assert!(writes.is_empty(), "a steady-state plan wrote: {writes:?}");
    assert_eq!(
        lab.lab.state().read().exchange.role_assignments.len(),
        assignments,
        "a steady-state plan grants no role"
    );

    let json = lab
        .siuctl(&["plan", "-f", arg(&spec), "--output", "json"])
        .await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan prints JSON");
    assert_eq!(json["actions"].as_array().map(Vec::len), Some(8));
    assert!(
        json["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|action| action["kind"] == "noChange"),
        "{json}"
    );

    let status = lab.siuctl(&["status", "-f", arg(&spec)]).await;
    assert_exit(&status, 0, "status reports a ready service");
    assert_says(&status, "Status:       on");
    assert_says(&status, "MailAccessReady");
    let json = lab
        .siuctl(&["status", "-f", arg(&spec), "--output", "json"])
        .await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status prints JSON");
    assert_eq!(json["status"], "on");
    assert_eq!(json["conditions"].as_array().map(Vec::len), Some(6));

    let export = lab.siuctl(&["export", "-f", arg(&spec)]).await;
    assert_exit(&export, 0, "export reads everything");
    let exported = lab.spec("exported.yaml");
    std::fs::write(&exported, &export.stdout).expect("the export is saved");
    let validated = lab.siuctl(&["validate", "-f", arg(&exported)]).await;
    assert_exit(&validated, 0, "the export is a valid spec");
    let exported_plan = lab.plan(&exported).await;
    assert_exit(&exported_plan, 0, "the export plans no change");

    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_registration_converges() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("hybrid-manual.yaml");

    let first = lab.plan(&spec).await;
    assert_exit(&first, 2, "the first plan has changes");
    assert_says(&first, "= application");
    assert_says(&first, "the application's tokens carry every app role");
    let applied = lab.apply(&spec).await;
    assert_exit(&applied, 0, "apply succeeds");
    assert_says(&applied, "ok       AppAuthenticates");
    let second = lab.plan(&spec).await;
    assert_exit(&second, 0, "the second plan has no changes");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_premises_spec_converges() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");

    let first = lab.plan(&spec).await;
    assert_exit(&first, 2, "the first plan has changes");
    let golden = normalize(&String::from_utf8_lossy(&first.stdout), lab.dir.path());
    let golden_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(PLAN_GOLDEN);
    if std::env::var_os("SIU_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &golden).expect("the golden file is written");
    }
    let expected = std::fs::read_to_string(&golden_path).expect("the golden file exists");
    assert_eq!(golden, expected, "the plan differs from {PLAN_GOLDEN}");

    let applied = lab.apply(&spec).await;
    assert_exit(&applied, 0, "apply succeeds");
    let second = lab.plan(&spec).await;
    assert_exit(&second, 0, "the second plan has no changes");

    assert!(lab.secret("siu-agent.password").len() >= 32);
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_plan_applies_until_live_state_changes() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    let saved = lab.path("plan.json");

    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--out", arg(&saved)])
        .await;
    assert_exit(&planned, 0, "plan saves the plan");
    let applied = lab.siuctl(&["apply", arg(&saved), "--auto-approve"]).await;
    assert_exit(&applied, 0, "the saved plan applies");

    let stale = lab.path("stale.json");
    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--out", arg(&stale)])
        .await;
    assert_exit(&planned, 0, "plan saves the plan");
    lab.set_enabled("siu-agent", false);
    let refused = lab.siuctl(&["apply", arg(&stale), "--auto-approve"]).await;
    assert_exit(&refused, 1, "a stale plan is refused without a terminal");
    assert_says(&refused, "no longer matches: the live state changed");
    assert_says(&refused, "refusing to apply without confirmation");

    let unconfirmed = lab.siuctl(&["apply", "-f", arg(&spec)]).await;
    assert_exit(&unconfirmed, 1, "apply asks before changing anything");
    assert_says(&unconfirmed, "refusing to apply without confirmation");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_saved_plan_names_what_changed() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("hybrid.yaml");
    let saved = lab.path("plan.json");

    // Applying the plan registers the application, whose client ID then appears in the
    // desired settings, so the same plan is stale through live state alone.
    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--out", arg(&saved)])
        .await;
    assert_exit(&planned, 0, "plan saves the plan");
    let applied = lab.siuctl(&["apply", arg(&saved), "--auto-approve"]).await;
    assert_exit(&applied, 0, "the saved plan applies");
    let again = lab.siuctl(&["apply", arg(&saved), "--auto-approve"]).await;
    assert_exit(&again, 1, "a stale plan is refused without a terminal");
    assert_says(&again, "no longer matches: the live state changed");

    let current = lab.path("current.json");
    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--out", arg(&current)])
        .await;
    assert_exit(&planned, 0, "plan saves the plan");
    lab.edited_spec("hybrid.yaml", "hybrid.yaml", &[("delay: 0s", "delay: 5s")]);
    let edited = lab
        .siuctl(&["apply", arg(&current), "--auto-approve"])
        .await;
    assert_exit(&edited, 1, "a stale plan is refused without a terminal");
    assert_says(&edited, "no longer matches: the spec changed");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_saved_plan_is_not_applied() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    assert_exit(&lab.apply(&spec).await, 0, "the first apply succeeds");
    let password = lab.secret("siu-agent.password");

    // A converged plan, edited to reset the account's password.
    let saved = lab.path("plan.json");
    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--out", arg(&saved)])
        .await;
    assert_exit(&planned, 0, "plan saves the plan");
    let mut plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("the plan is saved"))
            .expect("the plan is JSON");
    let account = plan["actions"]
        .as_array_mut()
        .expect("the plan has actions")
        .iter_mut()
        .find(|action| action["resource"] == "account")
        .expect("the plan has the account");
    account["kind"] = "update".into();
    account["steps"] = serde_json::json!([{ "step": "resetAccountPassword" }]);
    std::fs::write(&saved, plan.to_string()).expect("the edited plan is written");

    let applied = lab.siuctl(&["apply", arg(&saved), "--auto-approve"]).await;
    assert_exit(&applied, 1, "the edited plan is refused without a terminal");
    assert_says(
        &applied,
        "no longer matches: the saved plan's steps changed",
    );
    assert_eq!(
        lab.secret("siu-agent.password"),
        password,
        "the password is unchanged"
    );
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_directory_fails_account_creation() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    lab.lab
        .faults()
        .add(rule(Service::Ldap, "add", FaultKind::Drop, None));

    let failed = lab.apply(&spec).await;
    assert_exit(&failed, 1, "apply fails without the directory");
    assert_says(
        &failed,
        "account siu-agent@lab.example not created: directory server",
    );
    assert_says(&failed, "did not respond");
    assert_says(&failed, "check onPremises.directory.url");

    lab.lab.faults().set_rules(Vec::new());
    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "a second apply finishes");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_user_without_rights_fails_account_creation() {
    let mut lab = LabRun::start().await;
    let weak = lab.edited_spec(
        "onprem.yaml",
        "onprem-weak.yaml",
        &[
            (
                "bindUser: Administrator@lab.example",
                "bindUser: svc-siu@lab.example",
            ),
            (
                "../secrets/Administrator.password",
                "../secrets/svc-siu.password",
            ),
        ],
    );

    let failed = lab.apply(&weak).await;
    assert_exit(&failed, 1, "apply fails without the right to create users");
    assert_says(
        &failed,
        "svc-siu@lab.example may not create users in OU=Service Accounts",
    );
    assert_says(&failed, "delegate");

    let finished = lab.apply(&lab.spec("onprem.yaml")).await;
    assert_exit(&finished, 0, "apply with a privileged bind user finishes");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_grant_prints_the_command_and_degrades() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    // On a fresh lab, the grant is the first cmdlet the apply runs.
    lab.lab.faults().add(rule(
        Service::Management,
        "invoke",
        FaultKind::Status { code: 503 },
        Some(1),
    ));

    let degraded = lab.apply(&spec).await;
    assert_exit(&degraded, 1, "apply ends degraded");
    assert_says(&degraded, "done     account siu-agent@lab.example");
    assert_says(
        &degraded,
        "New-ManagementRoleAssignment -Name 'ApplicationImpersonation-siu-agent' -Role ApplicationImpersonation -User 'siu-agent@lab.example'",
    );
    assert_says(&degraded, "Apply degraded");

    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "a second apply grants the role");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_only_role_is_granted_by_hand() {
    let mut lab = LabRun::start().await;
    let spec = lab.edited_spec(
        "hybrid.yaml",
        "hybrid-verify.yaml",
        &[("impersonation: grant", "impersonation: verifyOnly")],
    );

    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 1, "a missing role blocks the plan");
    let command = "New-ManagementRoleAssignment -Name 'ApplicationImpersonation-svc-siu' -Role ApplicationImpersonation -User 'svc-siu@lab.example'";
    assert_says(&planned, command);
    let blocked = lab.apply(&spec).await;
    assert_exit(&blocked, 1, "apply cannot grant the role");

    let granted = lab.exchange_shell(command, false).await;
    assert_exit(&granted, 0, "the administrator's command works");
    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "apply finishes once the role is granted");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_outside_the_scope_does_not_work() {
    let mut lab = LabRun::start().await;
    let scoped = lab.edited_spec(
        "onprem.yaml",
        "onprem-scoped.yaml",
        &[
            (
                "  impersonation: grant\n",
                "  impersonation: grant\n  managementScope: SIU Pilot mailboxes\n",
            ),
            (
                "scope:\n  mode: all\n",
                "scope:\n  mode: only\n  users: [erin@lab.example]\n",
            ),
        ],
    );

    let failed = lab.apply(&scoped).await;
    assert_exit(
        &failed,
        1,
        "impersonation of a mailbox outside the scope fails",
    );
    assert_says(&failed, "could not impersonate erin@lab.example");
    assert_says(
        &failed,
        &format!(
            "siuctl test-impersonation -f {} --mailbox erin@lab.example",
            arg(&scoped)
        ),
    );
    let tested = lab
        .siuctl(&[
            "test-impersonation",
            "-f",
            arg(&scoped),
            "--mailbox",
            "erin@lab.example",
        ])
        .await;
    assert_exit(&tested, 1, "the manual test fails too");
    let inside = lab
        .siuctl(&[
            "test-impersonation",
            "-f",
            arg(&scoped),
            "--mailbox",
            "alice@lab.example",
        ])
        .await;
    assert_exit(&inside, 0, "a mailbox inside the scope works");

    let unscoped = lab.edited_spec(
        "onprem.yaml",
        "onprem-unscoped.yaml",
        &[(
            "scope:\n  mode: all\n",
            "scope:\n  mode: only\n  users: [erin@lab.example]\n",
        )],
    );
    let finished = lab.apply(&unscoped).await;
    assert_exit(&finished, 0, "an unscoped role works for every mailbox");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_action_gives_its_condition_reason() {
    let mut lab = LabRun::start().await;
    let spec = lab.edited_spec(
        "hybrid-manual.yaml",
        "hybrid-missing-scope.yaml",
        &[(
            "  impersonation: grant\n",
            "  impersonation: grant\n  managementScope: No Such Scope\n",
        )],
    );

    let planned = lab
        .siuctl(&["plan", "-f", arg(&spec), "--output", "json"])
        .await;
    assert_exit(&planned, 1, "a missing management scope blocks the plan");
    let plan: serde_json::Value =
        serde_json::from_slice(&planned.stdout).expect("plan prints JSON");
    let impersonation = plan["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|action| action["resource"] == "impersonation")
        .expect("the plan has an impersonation action");
    assert_eq!(impersonation["kind"], "blocked", "{impersonation}");
    assert_eq!(
        impersonation["failure"], "ManagementScopeMissing",
        "{impersonation}"
    );

    let degraded = lab.apply(&spec).await;
    assert_exit(&degraded, 1, "apply cannot grant the role");
    let status = lab
        .siuctl(&["status", "-f", arg(&spec), "--output", "json"])
        .await;
    let status: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status prints JSON");
    let granted = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|condition| condition["type"] == "ImpersonationGranted")
        .expect("status has the ImpersonationGranted condition");
    assert_eq!(granted["status"], "False", "{granted}");
    assert_eq!(granted["reason"], "ManagementScopeMissing", "{granted}");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_role_names_the_account_failure() {
    let mut lab = LabRun::start().await;
    let spec = lab.edited_spec(
        "hybrid-manual.yaml",
        "hybrid-no-bind-password.yaml",
        &[(
            "../secrets/Administrator.password",
            "../secrets/missing.password",
        )],
    );

    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 1, "an unreadable bind password blocks the plan");
    assert_says(
        &planned,
        "blocked: not read, because the account could not be read: failed to read the directory bind password",
    );
    assert!(
        !text(&planned).contains("because the account is missing"),
        "the plan should not call an unread account missing:\n{}",
        text(&planned)
    );
    assert_says(
        &planned,
        "-impersonation.assigned: (unknown: failed to read the directory bind password",
    );
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioner_without_rights_cannot_register() {
    let mut lab = LabRun::start().await;
    let provisioner = lab.secret("provisioner.client-id");
    let no_rights = lab.secret("no-rights.client-id");
    let weak = lab.edited_spec(
        "hybrid.yaml",
        "hybrid-no-rights.yaml",
        &[
            (provisioner.as_str(), no_rights.as_str()),
            (
                "../secrets/provisioner.secret",
                "../secrets/no-rights.secret",
            ),
        ],
    );

    let planned = lab.plan(&weak).await;
    assert_exit(&planned, 1, "the plan is blocked");
    assert_says(
        &planned,
        "Application.ReadWrite.All and AppRoleAssignment.ReadWrite.All",
    );
    assert_says(
        &planned,
        "Global Administrator or Privileged Role Administrator",
    );
    let blocked = lab.apply(&weak).await;
    assert_exit(&blocked, 1, "apply cannot register the application");

    let finished = lab.apply(&lab.spec("hybrid.yaml")).await;
    assert_exit(&finished, 0, "a provisioner with the rights registers it");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_client_secret_cannot_authenticate() {
    let mut lab = LabRun::start().await;
    let wrong = "Wr0ng~secret-value-that-Entra-never-issued";
    std::fs::write(lab.path("secrets/wrong.secret"), format!("{wrong}\n")).expect("secret file");
    let spec = lab.edited_spec(
        "hybrid.yaml",
        "hybrid-wrong-secret.yaml",
        &[("../secrets/provisioner.secret", "../secrets/wrong.secret")],
    );

    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 1, "the plan is blocked");
    assert_says(&planned, "rejected the client secret");
    assert_says(&planned, "AADSTS7000215");
    let blocked = lab.apply(&spec).await;
    assert_exit(&blocked, 1, "apply cannot sign in");
    for output in &lab.outputs {
        assert!(
            !output.contains(wrong),
            "an output contains the secret:\n{output}"
        );
    }

    let finished = lab.apply(&lab.spec("hybrid.yaml")).await;
    assert_exit(&finished, 0, "the right secret works");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_account_blocks_until_enabled() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("hybrid.yaml");
    lab.set_enabled("svc-siu", false);

    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 1, "a disabled existing account blocks the plan");
    assert_says(&planned, "account svc-siu@lab.example is disabled in AD");
    assert_says(&planned, "Enable-ADAccount -Identity 'CN=");
    let blocked = lab.apply(&spec).await;
    assert_exit(
        &blocked,
        1,
        "apply does not enable an account it does not manage",
    );

    lab.set_enabled("svc-siu", true);
    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "apply finishes once the account is enabled");

    // An account that siuctl created is enabled again by apply.
    let onprem = lab.spec("onprem.yaml");
    assert_exit(&lab.apply(&onprem).await, 0, "the created account is ready");
    lab.set_enabled("siu-agent", false);
    let planned = lab.plan(&onprem).await;
    assert_exit(&planned, 2, "the plan enables the created account");
    assert_says(&planned, "account disabled in AD: enable it");
    assert_exit(&lab.apply(&onprem).await, 0, "apply enables it");
    assert_exit(&lab.plan(&onprem).await, 0, "nothing is left to change");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_ews_needs_the_allow_list() {
    let mut lab = LabRun::start().await;
    let spec = lab.edited_spec(
        "hybrid.yaml",
        "hybrid-ews.yaml",
        &[("mailAccess: auto", "mailAccess: ews")],
    );

    let blocked = lab.apply(&spec).await;
    assert_exit(&blocked, 1, "EWS of Exchange Online is blocked");
    assert_says(
        &blocked,
        "Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{Add='",
    );
    assert_says(&blocked, "mailAccess: graph");
    let applied: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.path("state/hybrid/applied.json"))
            .expect("the rest is applied"),
    )
    .expect("applied.json is JSON");
    let client_id = applied["discovered"]["clientId"]
        .as_str()
        .expect("the client ID is recorded")
        .to_owned();

    let allowed = lab
        .exchange_shell(
            &format!(
                "Set-OrganizationConfig -EwsEnabled $true -EwsAllowedAppIDs @{{Add='{client_id}'}}"
            ),
            true,
        )
        .await;
    assert_exit(&allowed, 0, "the administrator allows EWS");
    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "apply finishes over EWS");
    assert_says(&finished, "EWS of Exchange Online opened Sent Items");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_delay_is_waited_out() {
    let mut lab = LabRun::start_with(|config| {
        config.replication_delay = std::time::Duration::from_secs(3600);
    })
    .await;
    let spec = lab.spec("hybrid.yaml");

    let waited = lab.apply(&spec).await;
    assert_exit(&waited, 1, "the new application does not replicate in time");
    assert_says(&waited, "waiting for replication");

    lab.lab
        .faults()
        .set_replication_delay(std::time::Duration::ZERO);
    let finished = lab.apply(&spec).await;
    assert_exit(&finished, 0, "a second apply finishes once replicated");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_password_write_is_finished() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    assert_exit(&lab.apply(&spec).await, 0, "the account is created");
    let file = lab.path("secrets/siu-agent.password");
    let staged = lab.path("secrets/siu-agent.password.pending");

    // A crash after the directory took a new password, before the file was renamed.
    std::fs::rename(&file, &staged).expect("the password file moves");
    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 2, "the plan finishes the write");
    assert_says(&planned, "an interrupted apply set a password");
    assert_exit(
        &lab.apply(&spec).await,
        0,
        "apply keeps the staged password",
    );
    assert!(file.exists(), "the password file is back");
    assert!(!staged.exists(), "the staged password is gone");
    assert_exit(&lab.plan(&spec).await, 0, "nothing is left to change");

    // A lost password file is replaced by a new password.
    std::fs::remove_file(&file).expect("the password file is removed");
    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 2, "the plan sets a new password");
    assert_says(&planned, "set a new password on the service account");
    assert_exit(
        &lab.apply(&spec).await,
        0,
        "apply sets and writes a new password",
    );
    assert_exit(&lab.plan(&spec).await, 0, "nothing is left to change");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_reach_servers_intact() {
    // Quotes, `$(...)`, backticks and LDAP and DN specials, which must arrive as written.
    let scope = "Pilot 'A'; $(whoami) `\"";
    let upn = "#svc+ops=1*'$x`y@lab.example";
    let mut lab = LabRun::start_with(|config| {
        config.fixture.management_scopes.push(ScopeFixture {
            name: scope.to_owned(),
            member_of_group: "SIU-Pilot".to_owned(),
        });
    })
    .await;
    let spec = lab.edited_spec(
        "onprem.yaml",
        "hostile.yaml",
        &[
            (
                "upn: siu-agent@lab.example",
                "upn: \"#svc+ops=1*'$x`y@lab.example\"",
            ),
            (
                "  impersonation: grant",
                "  impersonation: grant\n  managementScope: \"Pilot 'A'; $(whoami) `\\\"\"",
            ),
        ],
    );

    let applied = lab.apply(&spec).await;
    assert_exit(&applied, 0, "apply succeeds");
    assert_says(&applied, "ok       AccountReady");
    assert_says(&applied, "ok       ImpersonationWorks");
    {
        let world = lab.lab.state().read();
        let user = world
            .directory
            .user_by_upn(upn)
            .expect("the account exists under its exact UPN");
        assert_eq!(user.upn, upn);
        let assignment = world
            .exchange
            .role_assignments
            .iter()
            .find(|assignment| assignment.assignee == user.id)
            .expect("the account has a role assignment");
        assert_eq!(assignment.recipient_scope.as_deref(), Some(scope));
    }
    assert_exit(&lab.plan(&spec).await, 0, "nothing is left to change");

    // A scope that does not exist blocks the grant before the account is created.
    let missing = lab.edited_spec(
        "onprem.yaml",
        "missing-scope.yaml",
        &[(
            "  impersonation: grant",
            "  impersonation: grant\n  managementScope: No such scope",
        )],
    );
    let planned = lab.plan(&missing).await;
    assert_exit(&planned, 1, "the plan is blocked");
    assert_says(
        &planned,
        "management scope 'No such scope' not found in Exchange",
    );
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_scope_name_is_granted() {
    let scope = "Sent Items Update pilot mailboxes in the EMEA sales offices";
    let mut lab = LabRun::start_with(|config| {
        config.fixture.management_scopes.push(ScopeFixture {
            name: scope.to_owned(),
            member_of_group: "SIU-Pilot".to_owned(),
        });
    })
    .await;
    let spec = lab.edited_spec(
        "onprem.yaml",
        "long-scope.yaml",
        &[(
            "  impersonation: grant",
            "  impersonation: grant\n  managementScope: Sent Items Update pilot mailboxes in the EMEA sales offices",
        )],
    );

    let applied = lab.apply(&spec).await;
    assert_exit(&applied, 0, "apply succeeds");
    assert_says(&applied, "ok       ImpersonationWorks");
    {
        let world = lab.lab.state().read();
        let assignment = world
            .exchange
            .role_assignments
            .iter()
            .find(|assignment| assignment.recipient_scope.as_deref() == Some(scope))
            .expect("the role is assigned with the scope");
        assert!(
            assignment.name.chars().count() <= 64,
            "{} is longer than Exchange allows",
            assignment.name
        );
    }
    assert_exit(&lab.plan(&spec).await, 0, "nothing is left to change");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_apply_stops_while_first_runs() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("hybrid.yaml");
    let registered = |lab: &LabRun| {
        lab.lab
            .state()
            .read()
            .tenant
            .applications
            .iter()
            .filter(|app| app.display_name == "Sent Items Update (lab)")
            .count()
    };

    // An apply in progress holds the lock on its state directory.
    let state_dir = lab.path("state/hybrid");
    std::fs::create_dir_all(&state_dir).expect("the state directory is created");
    let lock = std::fs::File::create(state_dir.join("apply.lock")).expect("the lock file opens");
    lock.try_lock().expect("the lock is free");
    let blocked = lab.apply(&spec).await;
    assert_exit(&blocked, 1, "apply stops while another one runs");
    assert_says(&blocked, "another siuctl apply is running");
    assert_eq!(registered(&lab), 0, "no application is registered");

    drop(lock);
    assert_exit(
        &lab.apply(&spec).await,
        0,
        "apply succeeds once the lock is free",
    );
    assert_eq!(registered(&lab), 1, "one application is registered");
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_applied_file_is_rewritten() {
    let mut lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");
    assert_exit(&lab.apply(&spec).await, 0, "the first apply succeeds");
    let file = lab.path("state/onprem/applied.json");
    let complete = std::fs::read(&file).expect("apply wrote applied.json");

    // A file cut short, as a full disk or an editor leaves it.
    std::fs::write(&file, &complete[..complete.len() / 2]).expect("the file is cut short");
    let status = lab.siuctl(&["status", "-f", arg(&spec)]).await;
    assert_exit(&status, 1, "status cannot read the file");
    assert_says(&status, "run `siuctl apply` to record it again");
    let planned = lab.plan(&spec).await;
    assert_exit(&planned, 2, "the plan records the settings again");
    assert_says(&planned, "is not a siuctl applied configuration");

    assert_exit(&lab.apply(&spec).await, 0, "apply rewrites the file");
    let rewritten: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("applied.json exists"))
            .expect("applied.json is JSON again");
    assert_eq!(
        rewritten["desired"]["account"]["upn"],
        "siu-agent@lab.example"
    );
    assert_exit(&lab.plan(&spec).await, 0, "nothing is left to change");
    assert_exit(
        &lab.siuctl(&["status", "-f", arg(&spec)]).await,
        0,
        "status reads the file",
    );
    lab.assert_no_secret_in_outputs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_counts_nested_group_members() {
    let mut lab = LabRun::start().await;
    let only = lab.edited_spec(
        "onprem.yaml",
        "onprem-only.yaml",
        &[(
            "scope:\n  mode: all\n",
            "scope:\n  mode: only\n  users: [grace@lab.example]\n  groups: [sales@lab.example, Finance]\n",
        )],
    );
    let except = lab.edited_spec(
        "onprem.yaml",
        "onprem-except.yaml",
        &[(
            "scope:\n  mode: all\n",
            "scope:\n  mode: allExcept\n  users: [grace@lab.example]\n  groups: [sales@lab.example, Finance]\n",
        )],
    );
    let missing = lab.edited_spec(
        "onprem.yaml",
        "onprem-missing.yaml",
        &[(
            "scope:\n  mode: all\n",
            "scope:\n  mode: only\n  groups: [No-Such-Group]\n",
        )],
    );

    // Sales contains alice and Sales-EMEA (bob, carol, hhill); Finance contains dave and erin.
    let planned = lab.plan(&only).await;
    assert_says(
        &planned,
        "Scope: only 1 user and 2 groups (7 mailboxes in scope)",
    );
    // The default organization has 1,608 users with a mailbox.
    let planned = lab.plan(&except).await;
    assert_says(
        &planned,
        "Scope: allExcept 1 user and 2 groups (1601 mailboxes in scope)",
    );
    let planned = lab.plan(&missing).await;
    assert_exit(&planned, 1, "a missing scope group blocks the plan");
    assert_says(
        &planned,
        "scope.groups entry \"No-Such-Group\" not found in AD",
    );
}
