//! The update loop against the exchangelib script: the same message set, lab, concurrency
//! and injected EWS latency for both, and the same set again at each concurrency level.

use std::path::Path;

use crate::clients::{self, Client, Programs, RunFigures, RunSpec};
use crate::lab::LabProcess;
use crate::process::Usage;
use crate::workload::{self, Auth, MessageSet};

/// Parameters shared by the comparison and the concurrency sweep.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompareSettings {
    /// Messages per run of the comparison.
    pub messages: usize,
    /// Concurrency of the comparison.
    pub concurrency: usize,
    /// On-premises senders.
    pub senders: usize,
    /// Size of each submitted message in bytes.
    pub message_size: usize,
    /// Injected EWS latencies in milliseconds.
    pub latencies_ms: Vec<u64>,
    /// EWS authentication of both clients.
    pub auth: Auth,
    /// `-v` flags for `siuctl`.
    pub siuctl_verbosity: u8,
    /// Concurrency levels of the sweep.
    pub sweep_levels: Vec<usize>,
    /// Messages per run of the sweep at concurrency 1; higher levels get proportionally more,
    /// so that every run lasts about as long.
    pub sweep_messages_per_level: usize,
}

/// The cost of starting and stopping a client, measured over an empty spool.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Startup {
    /// The client.
    pub client: Client,
    /// Its usage.
    pub usage: Usage,
}

/// The comparison's figures.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Each client over an empty spool.
    pub startup: Vec<Startup>,
    /// Each client at each latency.
    pub runs: Vec<RunFigures>,
}

/// Runs both clients at every latency of `settings`. At each latency the client that goes
/// first alternates, so that a drift in the machine's load favours neither.
pub async fn compare(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    settings: &CompareSettings,
) -> anyhow::Result<Comparison> {
    let senders = workload::on_premises_senders(lab, settings.senders).await?;
    let set = MessageSet {
        senders,
        count: settings.messages,
        size: settings.message_size,
    };
    let spec = |client, latency_ms| RunSpec {
        client,
        set: set.clone(),
        concurrency: settings.concurrency,
        latency_ms,
        auth: settings.auth,
        siuctl_verbosity: settings.siuctl_verbosity,
        check_items: true,
    };

    let mut startup = Vec::new();
    for client in programs.clients() {
        let label = format!("startup-{}", client.name());
        let usage = clients::run_empty(lab, programs, work, &label, &spec(client, 0)).await?;
        startup.push(Startup { client, usage });
    }

    let mut runs = Vec::new();
    for (round, latency_ms) in settings.latencies_ms.iter().copied().enumerate() {
        let mut order = programs.clients();
        if round % 2 == 1 {
            order.reverse();
        }
        for client in order {
            let label = format!("compare-{}-{latency_ms}ms", client.name());
            let figures =
                clients::run_once(lab, programs, work, &label, &spec(client, latency_ms)).await?;
            eprintln!("{}", describe(&figures));
            runs.push(figures);
        }
    }
    Ok(Comparison { startup, runs })
}

/// Runs both clients at every concurrency level of the sweep and every latency.
pub async fn sweep(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    settings: &CompareSettings,
) -> anyhow::Result<Vec<RunFigures>> {
    let senders = workload::on_premises_senders(lab, settings.senders).await?;
    let mut runs = Vec::new();
    for latency_ms in settings.latencies_ms.iter().copied() {
        for concurrency in settings.sweep_levels.iter().copied() {
            for client in programs.clients() {
                let run = RunSpec {
                    client,
                    set: MessageSet {
                        senders: senders.clone(),
                        count: settings.sweep_messages_per_level * concurrency,
                        size: settings.message_size,
                    },
                    concurrency,
                    latency_ms,
                    auth: settings.auth,
                    siuctl_verbosity: settings.siuctl_verbosity,
                    check_items: true,
                };
                let label = format!("sweep-{}-{latency_ms}ms-c{concurrency}", client.name());
                let figures = clients::run_once(lab, programs, work, &label, &run).await?;
                eprintln!("{}", describe(&figures));
                runs.push(figures);
            }
        }
    }
    Ok(runs)
}

/// Returns one progress line for a finished run.
pub fn describe(figures: &RunFigures) -> String {
    format!(
        "{:<11} {:>3} ms  concurrency {:>3}  {:>6} messages  {:>8.1} msg/s  {:>7.3} CPU s per 1,000  load {:.1}",
        figures.client.name(),
        figures.latency_ms,
        figures.concurrency,
        figures.messages,
        figures.messages_per_second,
        figures.cpu_seconds_per_1000,
        figures.load.1,
    )
}
