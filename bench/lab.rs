//! The lab in its own process (`siuctl lab up`), and the control API calls the benchmarks
//! make: impersonation, fault rules, counters, the transport simulator and Sent Items.
//!
//! The lab runs as a child so that the CPU time of a client under test never includes the
//! server's, and so that the lab's own CPU time can be read from `/proc` for comparison.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use siu_lab::LabInfo;
use siu_lab::control::{FolderListing, ManagementRequest, ManagementResponse, SendRequest};
use siu_lab::faults::{FaultKind, FaultRule, Service};
use siu_lab::transport::SendReport;

/// How long `lab up` may take to build its world and listen; a 100,000-user organization
/// takes the longest.
const START_LIMIT: Duration = Duration::from_secs(300);

/// A lab served by a `siuctl lab up` child process.
pub struct LabProcess {
    child: Child,
    // Kept open so that the lab can still write to its standard output.
    _stdout: BufReader<ChildStdout>,
    dir: PathBuf,
    info: LabInfo,
    http: reqwest::Client,
    control_token: String,
}

impl LabProcess {
    /// Starts a lab in `dir` with the default organization, or with `fixture` (YAML or JSON),
    /// and waits until it serves.
    pub async fn start(siuctl: &Path, dir: &Path, fixture: Option<&Path>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let log_path = dir.with_extension("log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("failed to create {}", log_path.display()))?;
        let mut command = Command::new(siuctl);
        command.args(["lab", "up", "--dir"]).arg(dir);
        if let Some(fixture) = fixture {
            command.arg("--fixture").arg(fixture);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("failed to start {} lab up", siuctl.display()))?;

        // `lab up` prints its summary once every listener is bound and the directory written.
        let stdout = child
            .stdout
            .take()
            .context("the lab's standard output is piped")?;
        let waited = tokio::time::timeout(
            START_LIMIT,
            tokio::task::spawn_blocking(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok::<_, std::io::Error>(None);
                    }
                    if line.starts_with("lab running") {
                        return Ok(Some(reader));
                    }
                }
            }),
        )
        .await;
        let stdout = match waited {
            Ok(Ok(Ok(Some(reader)))) => reader,
            Ok(Ok(Ok(None))) => {
                let _ = child.wait();
                bail!(
                    "the lab exited before it served; see {}",
                    log_path.display()
                );
            }
            Ok(Ok(Err(error))) => return Err(error).context("failed to read the lab's output"),
            Ok(Err(error)) => return Err(error).context("the lab output reader failed"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the lab did not serve within {START_LIMIT:?}; see {}",
                    log_path.display()
                );
            }
        };

        let info = LabInfo::load(dir)?;
        let ca_pem = std::fs::read(&info.ca_file)
            .with_context(|| format!("failed to read {}", info.ca_file.display()))?;
        let control_token = std::fs::read_to_string(&info.control_token_file)
            .with_context(|| format!("failed to read {}", info.control_token_file.display()))?
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .tls_certs_only([
                reqwest::Certificate::from_pem(&ca_pem).context("failed to parse the lab CA")?
            ])
            .timeout(Duration::from_secs(600))
            .build()
            .context("failed to build the control API client")?;
        Ok(Self {
            child,
            _stdout: stdout,
            dir: dir.to_path_buf(),
            info,
            http,
            control_token,
        })
    }

    /// Returns the lab directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the endpoints and files of the running lab.
    pub fn info(&self) -> &LabInfo {
        &self.info
    }

    /// Returns the CPU seconds the lab process has used so far.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        crate::process::cpu_seconds_so_far(self.child.id())
    }

    /// Reads a generated secret, such as `svc-siu.password`.
    pub fn secret(&self, name: &str) -> anyhow::Result<String> {
        let path = self.dir.join("secrets").join(name);
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read {}", path.display()))?
            .trim()
            .to_owned())
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<Option<T>> {
        let url = self.info.endpoints.control.join(path)?;
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(&self.control_token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path} on the lab's control API failed"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {path} on the lab's control API returned {status}: {text}");
        }
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        Ok(Some(response.json().await.with_context(|| {
            format!("{method} {path} returned a body that does not decode")
        })?))
    }

    /// Grants the service account `svc-siu` ApplicationImpersonation on every mailbox, as
    /// `siuctl apply` would.
    pub async fn grant_impersonation(&self) -> anyhow::Result<()> {
        let request = ManagementRequest {
            online: false,
            script: "New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc-siu"
                .into(),
        };
        let response: Option<ManagementResponse> = self
            .call(reqwest::Method::POST, "v1/management", Some(&request))
            .await?;
        match response {
            Some(response) if response.exit_code == 0 => Ok(()),
            Some(response) => bail!(
                "failed to grant impersonation to svc-siu: {}",
                response.stderr
            ),
            None => {
                bail!("the management stand-in returned no response to the impersonation grant")
            }
        }
    }

    /// Adds `ms` of latency to every on-premises EWS request, or removes every fault rule
    /// for 0.
    pub async fn set_ews_latency(&self, ms: u64) -> anyhow::Result<()> {
        let mut rules = Vec::new();
        if ms > 0 {
            rules.push(FaultRule {
                service: Service::Ews,
                operation: None,
                fault: FaultKind::Latency { ms },
                probability: 1.0,
                remaining: None,
            });
        }
        self.call::<serde_json::Value>(reqwest::Method::PUT, "v1/faults", Some(&rules))
            .await?;
        Ok(())
    }

    /// Sets every request counter to zero.
    pub async fn reset_counters(&self) -> anyhow::Result<()> {
        self.call::<serde_json::Value>(reqwest::Method::POST, "v1/counters/reset", None::<&()>)
            .await?;
        Ok(())
    }

    /// Returns the request counters, as `service/operation` to count.
    pub async fn counters(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self
            .call(reqwest::Method::GET, "v1/counters", None::<&()>)
            .await?
            .unwrap_or_default())
    }

    /// Sends one message through the transport simulator.
    pub async fn send(&self, request: &SendRequest) -> anyhow::Result<SendReport> {
        self.call(reqwest::Method::POST, "v1/transport/send", Some(request))
            .await?
            .context("the transport simulator returned no report")
    }

    /// Lists a mailbox's Sent Items.
    pub async fn sent_items(&self, address: &str) -> anyhow::Result<FolderListing> {
        self.call(
            reqwest::Method::GET,
            &format!("v1/mailboxes/{address}/sentitems"),
            None::<&()>,
        )
        .await?
        .with_context(|| format!("the lab returned no listing for {address}"))
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        // The lab directory is thrown away, so the lab need not save its world on a SIGTERM.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
