//! A lab prepared for `siuctl run`, shared by the update loop's tests and benchmarks: the
//! lab runs in this process, `siuctl` in a child process.
//!
//! [`UpdateLab::start`] starts a fresh lab and runs `siuctl apply` on the test's spec, so
//! that the loop runs with what apply granted and recorded: the ApplicationImpersonation
//! role of the service account and `STATE_DIR/applied.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use siu_lab::transport::{self, Message, SendReport};
use siu_lab::world::exchange::{Item, WellKnownFolder};
use siu_lab::{Fixture, Lab, LabConfig};

/// How long one `siuctl run --once` may take before the test gives up: a bound for a hung
/// child, not a speed requirement.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// What a test lab is configured with.
pub struct Setup {
    /// `onPremises` or `hybrid`.
    pub hybrid: bool,
    /// The spec's `scope:` block.
    pub scope: &'static str,
    /// `options.updateAllSplitCopies`.
    pub update_all_split_copies: bool,
    /// `options.keepOriginal`.
    pub keep_original: bool,
    /// `options.originalWaitTimeout`.
    pub original_wait_timeout: &'static str,
    /// `updateLoop.concurrency`.
    pub concurrency: u16,
    /// `onPremises.exchange.auth`.
    pub auth: &'static str,
    /// `appRegistration.mailAccess`.
    pub mail_access: &'static str,
    /// Whether Exchange Online rejects EWS for the application once apply has finished.
    pub ews_blocked: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            hybrid: false,
            scope: "scope:\n  mode: all\n",
            update_all_split_copies: false,
            keep_original: false,
            original_wait_timeout: "30s",
            concurrency: 8,
            auth: "ntlm",
            mail_access: "ews",
            ews_blocked: false,
        }
    }
}

/// A lab, a spec wired to it, and the applied configuration that `siuctl run` needs.
pub struct UpdateLab {
    pub lab: Lab,
    // Declared after the lab so that the lab's servers stop before their runtime.
    pub runtime: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
    pub spool: PathBuf,
}

impl UpdateLab {
    pub fn start(setup: Setup) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the lab's runtime starts");
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path();
        // The lab writes its CA, secrets and control endpoint into the directory, where the
        // spec and `siuctl lab exchange-shell` find them.
        let mut config = LabConfig::new(Fixture::default_org());
        config.dir = Some(root.to_path_buf());
        config.siuctl = Some(PathBuf::from(env!("CARGO_BIN_EXE_siuctl")));
        let lab = runtime.block_on(Lab::start(config)).expect("lab starts");

        // 1. What an administrator does by hand: allow EWS in Exchange Online, which apply
        //    checks but does not change.
        lab.state().write().exchange.online.ews_enabled = Some(true);

        // 2. The spec, applied as an administrator would apply it.
        let spec = root.join("spec.yaml");
        std::fs::write(&spec, spec_text(&lab, root, &setup)).expect("spec file");
        let applied = Command::new(env!("CARGO_BIN_EXE_siuctl"))
            .arg("apply")
            .arg("-f")
            .arg(&spec)
            .args(["--auto-approve", "--replication-timeout", "5s"])
            .stdin(Stdio::null())
            .output()
            .expect("siuctl apply runs");
        assert!(
            applied.status.success(),
            "siuctl apply failed with {}:\n{}{}\nspec:\n{}",
            applied.status,
            String::from_utf8_lossy(&applied.stdout),
            String::from_utf8_lossy(&applied.stderr),
            spec_text(&lab, root, &setup)
        );

        // 3. Exchange Online blocks EWS after the apply, for the loop to notice.
        if setup.ews_blocked {
            lab.state().write().exchange.online.ews_enabled = Some(false);
        }

        let spool = root.join("spool");
        Self {
            lab,
            runtime,
            dir,
            spec,
            spool,
        }
    }

    /// Sends a message through the transport simulator.
    pub fn send(&self, message: Message) -> SendReport {
        transport::send(self.lab.state(), &self.spool, message).expect("the transport sends")
    }

    /// Sends a generated message from `from`.
    pub fn send_from(&self, from: &str) -> SendReport {
        self.send(Message {
            from: Some(from.to_owned()),
            ..Message::default()
        })
    }

    pub fn siuctl(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_siuctl"));
        command
            .arg("run")
            .arg("-f")
            .arg(&self.spec)
            .env("RUST_LOG", "warn,siuctl=info")
            .stdin(Stdio::null());
        command
    }

    /// Runs `siuctl run --once` and returns its JSON summary.
    pub fn run_once(&self) -> (serde_json::Value, Output) {
        let log = self.dir.path().join(format!(
            "run-{}.log",
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let mut child = self
            .siuctl()
            .args(["--once", "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("siuctl starts");
        let started = Instant::now();
        while child.try_wait().expect("siuctl can be polled").is_none() {
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!(
                    "siuctl run --once did not finish within {PATIENCE:?}; log:\n{}",
                    tail(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().expect("siuctl finishes");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = serde_json::from_str(&stdout).unwrap_or_else(|error| {
            panic!(
                "siuctl printed no JSON summary ({error}), status {}:\n{stdout}\nlog:\n{}",
                output.status,
                tail(&log)
            )
        });
        (summary, output)
    }

    /// Starts `siuctl run` as a daemon, logging into `log`.
    pub fn spawn_daemon(&self, log: &Path) -> Child {
        self.siuctl()
            .args(["--rescan-interval", "1s"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("siuctl starts")
    }

    /// Returns the Sent Items of the mailbox with this address.
    pub fn sent_items(&self, address: &str) -> Vec<Item> {
        let world = self.lab.state().read();
        let owner = world
            .directory
            .user_by_address(address)
            .unwrap_or_else(|| panic!("{address} is a lab user"))
            .id;
        world.exchange.mailboxes[&owner]
            .folder(WellKnownFolder::SentItems)
            .items
            .clone()
    }

    /// Returns the original item that a send stored.
    pub fn original(&self, report: &SendReport) -> Item {
        let address = report.mailbox.as_deref().expect("the sender has a mailbox");
        let number = report.original_item.expect("the original was stored");
        self.sent_items(address)
            .into_iter()
            .find(|item| item.id == number)
            .expect("the original is in Sent Items")
    }

    pub fn names_in(&self, folder: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.spool.join(folder))
            .map(|entries| {
                entries
                    .map(|entry| {
                        entry
                            .expect("entry")
                            .file_name()
                            .into_string()
                            .expect("UTF-8")
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Returns the spec of `setup`, for a lab whose directory is `root`.
pub fn spec_text(lab: &Lab, root: &Path, setup: &Setup) -> String {
    let endpoints = lab.endpoints();
    // The lab's stand-in for the Exchange Management Shell, which reaches this lab through
    // the control endpoint recorded in `root`.
    let shell = |online: bool| {
        let mut parts = vec![
            serde_json::to_string(env!("CARGO_BIN_EXE_siuctl")).expect("strings serialize"),
            "lab".into(),
            "exchange-shell".into(),
            "--dir".into(),
            serde_json::to_string(&root.display().to_string()).expect("strings serialize"),
        ];
        if online {
            parts.push("--online".into());
        }
        format!("[{}]", parts.join(", "))
    };
    let environment = if setup.hybrid { "hybrid" } else { "onPremises" };
    let app_registration = if setup.hybrid {
        let pem = lab.secrets().get("manual-app.pem").expect("manual-app.pem");
        let key =
            siuctl::providers::entra::CertificateKey::from_pem(pem.as_bytes(), "manual-app.pem")
                .expect("the lab's certificate loads");
        format!(
            "appRegistration:
  mode: manual
  tenantId: {tenant}
  clientId: {client}
  credential:
    certificate:
      thumbprint: \"{thumbprint}\"
      keyFile: secrets/manual-app.pem
  mailAccess: {mail_access}
  exchangeOnlineShell:
    command: {online_shell}
  endpoints:
    authorityHost: {authority}
    graph: {graph}
    exchangeOnlineEws: {exo}
    caFile: ca.pem
",
            tenant = lab.state().read().tenant.id,
            client = lab
                .secrets()
                .get("manual-app.client-id")
                .expect("client ID"),
            thumbprint = key.thumbprint(),
            authority = endpoints.authority_host,
            graph = endpoints.graph,
            exo = endpoints.exchange_online_ews,
            mail_access = setup.mail_access,
            online_shell = shell(true),
        )
    } else {
        String::new()
    };
    format!(
        "apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: update-test
environment: {environment}
onPremises:
  exchange:
    connection: manual
    server: 127.0.0.1
    ewsUrl: {ews}
    auth: {auth}
    caFile: ca.pem
    managementShell:
      command: {shell}
  directory:
    url: {ldaps}
    baseDn: DC=lab,DC=example
    bindUser: Administrator@lab.example
    bindPassword: {{ fromFile: secrets/Administrator.password }}
    caFile: ca.pem
account:
  upn: svc-siu@lab.example
  create: false
  password: {{ fromFile: secrets/svc-siu.password }}
  impersonation: grant
{app_registration}{scope}options:
  enabled: true
  keepOriginal: {keep}
  updateAllSplitCopies: {split}
  delay: 0s
  originalWaitTimeout: {wait}
reconcile:
  interval: 10m
updateLoop:
  spoolDir: spool
  stateDir: state
  concurrency: {concurrency}
  perMailboxConcurrency: 1
",
        ews = endpoints.ews,
        shell = shell(false),
        auth = setup.auth,
        ldaps = endpoints.ldaps,
        scope = setup.scope,
        keep = setup.keep_original,
        split = setup.update_all_split_copies,
        wait = setup.original_wait_timeout,
        concurrency = setup.concurrency,
    )
}
