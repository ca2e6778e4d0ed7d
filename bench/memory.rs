//! Peak resident set size of `siuctl run --once` over a backlog of spool files.
//!
//! Each backlog is delivered in full before the loop starts, as after an outage of the
//! update service, and the loop drains it at the spec's default concurrency.

use std::path::Path;

use crate::clients::{self, Client, Programs, RunFigures, RunSpec};
use crate::lab::LabProcess;
use crate::workload::{self, Auth, MessageSet};

/// Parameters of the memory benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemorySettings {
    /// Backlog sizes in spool files.
    pub backlogs: Vec<usize>,
    /// On-premises senders.
    pub senders: usize,
    /// Size of each submitted message in bytes.
    pub message_size: usize,
    /// `updateLoop.concurrency`.
    pub concurrency: usize,
    /// EWS authentication.
    pub auth: Auth,
    /// `-v` flags for `siuctl`.
    pub siuctl_verbosity: u8,
}

/// Drains each backlog with a new `siuctl run --once` and returns the figures of each run;
/// the peak RSS is in their `usage`.
pub async fn measure(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    settings: &MemorySettings,
) -> anyhow::Result<Vec<RunFigures>> {
    let senders = workload::on_premises_senders(lab, settings.senders).await?;
    let mut runs = Vec::new();
    for backlog in settings.backlogs.iter().copied() {
        let run = RunSpec {
            client: Client::Siuctl,
            set: MessageSet {
                senders: senders.clone(),
                count: backlog,
                size: settings.message_size,
            },
            concurrency: settings.concurrency,
            latency_ms: 0,
            auth: settings.auth,
            siuctl_verbosity: settings.siuctl_verbosity,
            // Listing a hundred thousand replacements with their MIME content would cost more
            // than the run; the summary's count and the empty spool are checked instead.
            check_items: false,
        };
        let figures =
            clients::run_once(lab, programs, work, &format!("memory-{backlog}"), &run).await?;
        eprintln!(
            "memory: backlog {backlog:>6}: peak RSS {:.1} MiB, {:.1} msg/s",
            figures.usage.max_rss_kib as f64 / 1024.0,
            figures.messages_per_second
        );
        runs.push(figures);
    }
    Ok(runs)
}
