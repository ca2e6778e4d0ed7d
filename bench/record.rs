//! The record of one run: every figure as JSON, and the same as Markdown tables for
//! `docs/benchmarks.md`.

use std::fmt::Write as _;

use crate::clients::{Client, RunFigures};
use crate::compare::{CompareSettings, Comparison};
use crate::latency::{LatencyFigures, LatencySettings};
use crate::machine::Machine;
use crate::memory::MemorySettings;
use crate::organization::{OrganizationFigures, OrganizationSettings};

/// Everything one invocation measured.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the run started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The command line after the program name.
    pub arguments: Vec<String>,
    /// Whether this was the short smoke mode.
    pub smoke: bool,
    /// The machine.
    pub machine: Machine,
    /// Settings of the comparison and the sweep.
    pub compare_settings: CompareSettings,
    /// The update loop against exchangelib.
    pub comparison: Option<Comparison>,
    /// Throughput by concurrency.
    pub sweep: Option<Vec<RunFigures>>,
    /// Settings of the latency benchmark.
    pub latency_settings: LatencySettings,
    /// Latency by offered load.
    pub latency: Option<Vec<LatencyFigures>>,
    /// Settings of the memory benchmark.
    pub memory_settings: MemorySettings,
    /// Peak RSS by backlog.
    pub memory: Option<Vec<RunFigures>>,
    /// Settings of the organization benchmark.
    pub organization_settings: OrganizationSettings,
    /// Plan time and requests by organization size.
    pub organization: Option<Vec<OrganizationFigures>>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
}

/// Returns `numerator / denominator` with two decimals, or `-` without a denominator.
fn ratio(numerator: f64, denominator: f64) -> String {
    if denominator > 0.0 {
        format!("{:.2}", numerator / denominator)
    } else {
        "-".to_owned()
    }
}

impl Record {
    /// Renders the record as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "Run of {} (`{}`), commit `{}`.\n",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            self.arguments.join(" "),
            m.commit
        );
        let _ = writeln!(out, "| Machine | |\n|---|---|");
        let _ = writeln!(out, "| CPU | {} |", m.cpu_model);
        let _ = writeln!(out, "| Cores | {} |", m.cores);
        let _ = writeln!(out, "| RAM | {:.1} GiB |", m.memory_mib as f64 / 1024.0);
        let _ = writeln!(out, "| Kernel | {} |", m.kernel);
        let _ = writeln!(out, "| Rust | {} |", m.rustc);
        let _ = writeln!(out, "| Python | {} |", m.python.as_deref().unwrap_or("-"));
        let _ = writeln!(
            out,
            "| exchangelib | {} |\n",
            m.exchangelib.as_deref().unwrap_or("-")
        );

        if let Some(comparison) = &self.comparison {
            self.comparison_markdown(&mut out, comparison);
        }
        if let Some(sweep) = &self.sweep {
            sweep_markdown(&mut out, sweep);
        }
        if let Some(latency) = &self.latency {
            self.latency_markdown(&mut out, latency);
        }
        if let Some(memory) = &self.memory {
            memory_markdown(&mut out, memory);
        }
        if let Some(organization) = &self.organization {
            organization_markdown(&mut out, organization);
        }
        out
    }

    fn comparison_markdown(&self, out: &mut String, comparison: &Comparison) {
        let s = &self.compare_settings;
        let _ = writeln!(
            out,
            "### Update loop and exchangelib\n\n{} messages of {} bytes from {} on-premises senders, concurrency {}, {} authentication.\n",
            s.messages,
            s.message_size,
            s.senders,
            s.concurrency,
            serde_json::to_value(s.auth)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "Start and stop over an empty spool:\n");
        let _ = writeln!(
            out,
            "| Client | Wall s | CPU s | Peak RSS MiB |\n|---|---:|---:|---:|"
        );
        for startup in &comparison.startup {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.2} | {:.1} |",
                startup.client.name(),
                startup.usage.wall_seconds,
                startup.usage.cpu_seconds(),
                mib(startup.usage.max_rss_kib)
            );
        }
        let _ = writeln!(out);
        runs_markdown(out, &comparison.runs);
        let _ = writeln!(
            out,
            "Ratios (exchangelib CPU over siuctl CPU; siuctl throughput over exchangelib throughput):\n"
        );
        let _ = writeln!(
            out,
            "| EWS latency | CPU per message | Throughput | Steady throughput |\n|---:|---:|---:|---:|"
        );
        for latency in &s.latencies_ms {
            let find = |client| {
                comparison
                    .runs
                    .iter()
                    .find(|run| run.client == client && run.latency_ms == *latency)
            };
            if let (Some(rust), Some(python)) = (find(Client::Siuctl), find(Client::Exchangelib)) {
                let _ = writeln!(
                    out,
                    "| {latency} ms | {} | {} | {} |",
                    ratio(python.cpu_seconds_per_1000, rust.cpu_seconds_per_1000),
                    ratio(rust.messages_per_second, python.messages_per_second),
                    ratio(
                        rust.steady_messages_per_second.unwrap_or(0.0),
                        python.steady_messages_per_second.unwrap_or(0.0)
                    ),
                );
            }
        }
        let _ = writeln!(out);
    }

    fn latency_markdown(&self, out: &mut String, latency: &[LatencyFigures]) {
        let s = &self.latency_settings;
        let _ = writeln!(
            out,
            "### Latency\n\n`siuctl run` as a daemon, concurrency {}, {} s per rate, messages of {} bytes from {} senders, no injected latency.\n",
            s.concurrency, s.seconds, s.message_size, s.senders
        );
        let _ = writeln!(
            out,
            "| Offered msg/s | Delivered msg/s | Messages | p50 ms | p99 ms | Max ms | Daemon CPU s | Lab CPU s | Load before, after |\n|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for figures in latency {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1}, {:.1} |",
                figures.offered_per_second,
                figures.delivered_per_second,
                figures.messages,
                figures.p50_ms,
                figures.p99_ms,
                figures.max_ms,
                figures.daemon.cpu_seconds(),
                figures.lab_cpu_seconds,
                figures.load.0,
                figures.load.1
            );
        }
        let _ = writeln!(out);
    }
}

fn runs_markdown(out: &mut String, runs: &[RunFigures]) {
    let _ = writeln!(
        out,
        "| Client | EWS latency | Concurrency | Messages | Wall s | msg/s | Steady msg/s | CPU s | CPU s per 1,000 | Peak RSS MiB | EWS requests per message | Lab CPU s | Load before, after |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} ms | {} | {} | {:.2} | {:.1} | {} | {:.2} | {:.3} | {:.1} | {:.2} | {:.2} | {:.1}, {:.1} |",
            run.client.name(),
            run.latency_ms,
            run.concurrency,
            run.messages,
            run.usage.wall_seconds,
            run.messages_per_second,
            optional(run.steady_messages_per_second, 1),
            run.usage.cpu_seconds(),
            run.cpu_seconds_per_1000,
            mib(run.usage.max_rss_kib),
            run.requests_per_message("ews"),
            run.lab_cpu_seconds,
            run.load.0,
            run.load.1
        );
    }
    let _ = writeln!(out);
}

fn sweep_markdown(out: &mut String, sweep: &[RunFigures]) {
    let _ = writeln!(out, "### Throughput by concurrency\n");
    runs_markdown(out, sweep);
    let _ = writeln!(
        out,
        "| EWS latency | Concurrency | siuctl msg/s | exchangelib msg/s | Throughput ratio | siuctl CPU s per 1,000 | exchangelib CPU s per 1,000 | CPU ratio |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for rust in sweep.iter().filter(|run| run.client == Client::Siuctl) {
        let python = sweep.iter().find(|run| {
            run.client == Client::Exchangelib
                && run.latency_ms == rust.latency_ms
                && run.concurrency == rust.concurrency
        });
        let _ = writeln!(
            out,
            "| {} ms | {} | {:.1} | {} | {} | {:.3} | {} | {} |",
            rust.latency_ms,
            rust.concurrency,
            rust.messages_per_second,
            optional(python.map(|p| p.messages_per_second), 1),
            python.map_or_else(
                || "-".into(),
                |p| ratio(rust.messages_per_second, p.messages_per_second)
            ),
            rust.cpu_seconds_per_1000,
            optional(python.map(|p| p.cpu_seconds_per_1000), 3),
            python.map_or_else(
                || "-".into(),
                |p| ratio(p.cpu_seconds_per_1000, rust.cpu_seconds_per_1000)
            ),
        );
    }
    let _ = writeln!(out);
}

fn memory_markdown(out: &mut String, memory: &[RunFigures]) {
    let _ = writeln!(
        out,
        "### Memory\n\n`siuctl run --once` over a backlog, concurrency {}, no injected latency.\n",
        memory.first().map_or(0, |run| run.concurrency)
    );
    let _ = writeln!(
        out,
        "| Backlog | Peak RSS MiB | Wall s | msg/s | CPU s per 1,000 | Load before, after |\n|---:|---:|---:|---:|---:|---|"
    );
    for run in memory {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.3} | {:.1}, {:.1} |",
            run.messages,
            mib(run.usage.max_rss_kib),
            run.usage.wall_seconds,
            run.messages_per_second,
            run.cpu_seconds_per_1000,
            run.load.0,
            run.load.1
        );
    }
    let _ = writeln!(out);
}

fn organization_markdown(out: &mut String, organization: &[OrganizationFigures]) {
    let _ = writeln!(out, "### Plan by organization size\n");
    let _ = writeln!(
        out,
        "| Users | Groups | Largest group | Scope | Wall s | CPU s | Peak RSS MiB | LDAP requests | Graph requests | Token requests | Management calls | Lab CPU s |\n|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for figures in organization {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} | {:.2} |",
            figures.users,
            figures.groups,
            figures.largest_group,
            figures.scope,
            figures.usage.wall_seconds,
            figures.usage.cpu_seconds(),
            mib(figures.usage.max_rss_kib),
            figures.requests_of("ldap"),
            figures.requests_of("graph"),
            figures.requests_of("token"),
            figures.requests_of("management"),
            figures.lab_cpu_seconds,
        );
    }
    let _ = writeln!(out);
}
