//! The two clients under test, run once each over a delivered message set: `siuctl run
//! --once` and `bench/exchangelib_update.py`, with the figures of each run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::lab::LabProcess;
use crate::machine::load_average;
use crate::process::{Measured, Usage};
use crate::workload::{self, Auth, MessageSet};

/// How long one client run may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(3600);

/// A client under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Client {
    /// `siuctl run --once`, the update loop.
    Siuctl,
    /// `bench/exchangelib_update.py`.
    Exchangelib,
}

impl Client {
    /// Returns the name used in tables.
    pub fn name(self) -> &'static str {
        match self {
            Client::Siuctl => "siuctl",
            Client::Exchangelib => "exchangelib",
        }
    }
}

/// Paths of the programs under test.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `siuctl` executable.
    pub siuctl: PathBuf,
    /// The Python interpreter of the exchangelib environment, when there is one.
    pub python: Option<PathBuf>,
    /// `bench/exchangelib_update.py`.
    pub script: PathBuf,
    /// Record every `siuctl` run with `perf record` into this directory. The figures of such
    /// a run include the profiler's overhead.
    pub profile_dir: Option<PathBuf>,
}

impl Programs {
    /// Returns the clients that can run here: exchangelib only with its environment.
    pub fn clients(&self) -> Vec<Client> {
        let mut clients = vec![Client::Siuctl];
        if self.python.is_some() {
            clients.push(Client::Exchangelib);
        }
        clients
    }

    /// Starts a `siuctl` command line with `verbosity` `-v` flags, under `perf record` when
    /// profiling. `label` names the profile.
    pub fn siuctl_command(&self, label: &str, verbosity: u8) -> Command {
        let mut command = match &self.profile_dir {
            Some(dir) => {
                let mut command = Command::new("perf");
                command
                    .args(["record", "--call-graph", "dwarf", "-F", "997", "-o"])
                    .arg(dir.join(format!("{label}.perf.data")))
                    .arg("--")
                    .arg(&self.siuctl);
                command
            }
            None => Command::new(&self.siuctl),
        };
        if verbosity > 0 {
            command.arg(format!("-{}", "v".repeat(verbosity.into())));
        }
        command.env_remove("RUST_LOG");
        command
    }
}

/// Figures of one client run.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFigures {
    /// The client.
    pub client: Client,
    /// Latency the lab added to every EWS request, in milliseconds.
    pub latency_ms: u64,
    /// Messages in flight at once (update loop concurrency, or threads of the script).
    pub concurrency: usize,
    /// Messages in the set.
    pub messages: usize,
    /// The client process.
    pub usage: Usage,
    /// Messages per second over the whole process lifetime.
    pub messages_per_second: f64,
    /// Messages per second between the first and the last replacement the lab created.
    pub steady_messages_per_second: Option<f64>,
    /// Client CPU seconds per 1,000 messages.
    pub cpu_seconds_per_1000: f64,
    /// CPU seconds the lab used during the run.
    pub lab_cpu_seconds: f64,
    /// Requests the lab served during the run, by `service/operation`.
    pub requests: BTreeMap<String, u64>,
    /// 1-minute load average before and after the run.
    pub load: (f64, f64),
}

impl RunFigures {
    /// Returns the requests per message of one service, such as `ews`.
    pub fn requests_per_message(&self, service: &str) -> f64 {
        let prefix = format!("{service}/");
        let total: u64 = self
            .requests
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, count)| count)
            .sum();
        total as f64 / self.messages.max(1) as f64
    }
}

/// One run: a fresh message set in a fresh spool, processed by one client.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The client.
    pub client: Client,
    /// The messages.
    pub set: MessageSet,
    /// Messages in flight at once.
    pub concurrency: usize,
    /// EWS latency to inject, in milliseconds.
    pub latency_ms: u64,
    /// EWS authentication.
    pub auth: Auth,
    /// `-v` flags for `siuctl`.
    pub siuctl_verbosity: u8,
    /// Read every sender's Sent Items afterwards to check each replacement and to measure
    /// the steady throughput. Large sets skip it, because the listings carry every message.
    pub check_items: bool,
}

/// Delivers the set of `run` into a new directory under `work`, runs the client over it,
/// checks that every message was replaced and returns the figures.
pub async fn run_once(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    label: &str,
    run: &RunSpec,
) -> anyhow::Result<RunFigures> {
    let dir = work.join(label);
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool)
        .with_context(|| format!("failed to create {}", spool.display()))?;

    // 1. The work, and the client's configuration.
    let delivered = workload::deliver(lab, &spool, &run.set, label).await?;
    lab.set_ews_latency(run.latency_ms).await?;
    let mut command = client_command(lab, programs, &dir, &spool, run)?;

    // 2. The run, with the lab's counters and CPU time around it.
    lab.reset_counters().await?;
    let lab_cpu_before = lab.cpu_seconds()?;
    let load_before = load_average();
    let child = Measured::spawn(&mut command)?;
    let usage = tokio::task::spawn_blocking(move || child.wait(RUN_LIMIT)).await??;
    let load_after = load_average();
    let lab_cpu_seconds = lab.cpu_seconds()? - lab_cpu_before;
    let requests = lab.counters().await?;
    lab.set_ews_latency(0).await?;

    // 3. Did it do the work?
    let updated = check_exit(&dir, run.client, &usage)?;
    if updated != delivered.len() as u64 {
        bail!(
            "{} reported {updated} of {} messages updated",
            run.client.name(),
            delivered.len()
        );
    }
    let left: usize = ["new", "cur", "failed"]
        .iter()
        .map(|folder| workload::files_in(&spool, folder))
        .sum();
    if left > 0 {
        bail!("{} left {left} files in the spool", run.client.name());
    }
    let steady_messages_per_second = if run.check_items {
        let replaced = workload::check_replaced(lab, &delivered).await?;
        replaced.ensure_complete(run.client.name())?;
        replaced.steady_throughput()
    } else {
        None
    };

    let messages = delivered.len();
    let figures = RunFigures {
        client: run.client,
        latency_ms: run.latency_ms,
        concurrency: run.concurrency,
        messages,
        usage,
        messages_per_second: messages as f64 / usage.wall_seconds,
        steady_messages_per_second,
        cpu_seconds_per_1000: usage.cpu_seconds() * 1000.0 / messages.max(1) as f64,
        lab_cpu_seconds,
        requests,
        load: (load_before, load_after),
    };
    // The lab's Sent Items keep the replacements, so the run's directory is no longer needed.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(figures)
}

/// Runs a client over an empty spool, to measure what starting and stopping costs.
pub async fn run_empty(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    label: &str,
    run: &RunSpec,
) -> anyhow::Result<Usage> {
    let dir = work.join(label);
    let spool = dir.join("spool");
    for folder in ["tmp", "new"] {
        std::fs::create_dir_all(spool.join(folder))
            .with_context(|| format!("failed to create {}", spool.display()))?;
    }
    let mut command = client_command(lab, programs, &dir, &spool, run)?;
    let child = Measured::spawn(&mut command)?;
    let usage = tokio::task::spawn_blocking(move || child.wait(RUN_LIMIT)).await??;
    check_exit(&dir, run.client, &usage)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(usage)
}

/// Fails when the client in `dir` failed, with the end of its log, and returns the number
/// of messages it reported as updated.
fn check_exit(dir: &Path, client: Client, usage: &Usage) -> anyhow::Result<u64> {
    let log = std::fs::read_to_string(dir.join("client.log")).unwrap_or_default();
    let output = std::fs::read_to_string(dir.join("client.json")).unwrap_or_default();
    if usage.exit_code != Some(0) {
        bail!(
            "{} exited with {:?}; its output:\n{output}\nthe end of its log:\n{}",
            client.name(),
            usage.exit_code,
            tail(&log, 30)
        );
    }
    // Both clients print a JSON summary with the number of updated messages.
    let summary: serde_json::Value = serde_json::from_str(&output)
        .with_context(|| format!("{} printed no JSON summary: {output}", client.name()))?;
    summary["updated"].as_u64().with_context(|| {
        format!(
            "the summary of {} has no `updated`: {output}",
            client.name()
        )
    })
}

/// Builds the command line of a client with its summary going to `dir/client.json` and its
/// log to `dir/client.log`.
fn client_command(
    lab: &LabProcess,
    programs: &Programs,
    dir: &Path,
    spool: &Path,
    run: &RunSpec,
) -> anyhow::Result<Command> {
    let log =
        std::fs::File::create(dir.join("client.log")).context("failed to create the client log")?;
    let output = std::fs::File::create(dir.join("client.json"))
        .context("failed to create the client output file")?;
    let mut command = match run.client {
        Client::Siuctl => {
            let spec = workload::write_siuctl_config(lab, dir, spool, run.concurrency, run.auth)?;
            let label = dir
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
            let mut command = programs.siuctl_command(&label, run.siuctl_verbosity);
            command
                .args(["run", "--once", "--output", "json", "-f"])
                .arg(spec);
            command
        }
        Client::Exchangelib => {
            let python = programs
                .python
                .as_ref()
                .context("the exchangelib environment is missing (run bash scripts/setup.sh)")?;
            let mut command = Command::new(python);
            command
                .arg(&programs.script)
                .arg("--spool")
                .arg(spool)
                .arg("--workers")
                .arg(run.concurrency.to_string())
                .arg("--auth")
                .arg(match run.auth {
                    Auth::Basic => "basic",
                    Auth::Ntlm => "ntlm",
                })
                .envs(workload::exchangelib_environment(lab)?);
            command
        }
    };
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(log);
    Ok(command)
}

/// Returns the last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
