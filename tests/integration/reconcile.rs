//! `siuctl plan`, `apply`, `status`, `export` and `test-impersonation` against an in-process
//! lab, through the real binary and the specs the lab writes.
//!
//! Each test starts its own lab in a temporary directory, so tests never share state. The
//! specs call `siuctl lab exchange-shell` for the management shell, which reaches the
//! in-process lab through its control API.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use siu_lab::{FaultKind, FaultRule, Fixture, Lab, LabConfig, Service};

/// A lab with its directory.
struct LabRun {
    lab: Lab,
    dir: tempfile::TempDir,
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
        Self { lab, dir }
    }

    fn spec(&self, name: &str) -> PathBuf {
        self.dir.path().join("specs").join(name)
    }

    /// Every secret file of the lab directory, to check that no output repeats one.
    fn secret_values(&self) -> Vec<String> {
        let mut values = Vec::new();
        for entry in std::fs::read_dir(self.dir.path().join("secrets")).expect("secrets folder") {
            let path = entry.expect("directory entry").path();
            if let Ok(text) = std::fs::read_to_string(&path) {
                for line in text.lines() {
                    let line = line.trim();
                    if line.len() >= 12 && !line.starts_with("-----") {
                        values.push(line.to_owned());
                    }
                }
            }
        }
        values
    }
}

/// Runs siuctl with `args` and no input.
async fn siuctl(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("siuctl runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("siuctl exits with a code")
}

async fn plan(spec: &Path) -> Output {
    siuctl(&["plan", "-f", path(spec), "--detailed-exitcode"]).await
}

async fn apply(spec: &Path) -> Output {
    siuctl(&["apply", "-f", path(spec), "--auto-approve", "--replication-timeout", "30s"]).await
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn assert_code(output: &Output, expected: i32, what: &str) {
    assert_eq!(code(output), expected, "{what}:\n{}", text(output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_spec_converges() {
    let lab = LabRun::start().await;
    let spec = lab.spec("hybrid.yaml");

    let first = plan(&spec).await;
    assert_code(&first, 2, "the first plan has changes");
    let applied = apply(&spec).await;
    assert_code(&applied, 0, "apply succeeds");
    let second = plan(&spec).await;
    assert_code(&second, 0, "the second plan has no changes");

    for output in [&first, &applied, &second] {
        let output = text(output);
        for secret in lab.secret_values() {
            assert!(!output.contains(&secret), "output contains a secret:\n{output}");
        }
    }
    let _ = &lab.lab;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_premises_spec_converges() {
    let lab = LabRun::start().await;
    let spec = lab.spec("onprem.yaml");

    let first = plan(&spec).await;
    assert_code(&first, 2, "the first plan has changes");
    let applied = apply(&spec).await;
    assert_code(&applied, 0, "apply succeeds");
    let second = plan(&spec).await;
    assert_code(&second, 0, "the second plan has no changes");

    let password = std::fs::read_to_string(lab.dir.path().join("secrets/siu-agent.password"))
        .expect("apply wrote the created account's password");
    for output in [&first, &applied, &second] {
        assert!(!text(output).contains(password.trim()));
    }
}

#[allow(dead_code)]
fn fault(service: Service, operation: &str, fault: FaultKind) -> FaultRule {
    FaultRule {
        service,
        operation: Some(operation.to_owned()),
        fault,
        probability: 1.0,
        remaining: None,
    }
}

#[allow(dead_code)]
const PATIENCE: Duration = Duration::from_secs(60);
