//! Latency from spool arrival to the replaced item, with `siuctl run` running as a daemon
//! and a paced writer delivering messages into its spool at a fixed rate.
//!
//! The messages go through the transport simulator first, into a staging spool, so that
//! their originals are in Sent Items before the clock starts. The writer then delivers each
//! staged file as the spool contract requires (write into `tmp/`, `fsync`, rename into `new/`)
//! at its scheduled time, with `X-SIU-Received-At` set to that moment. A message's latency
//! runs from the rename to the creation time of its replacement, which the lab records.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, Utc};

use crate::clients::{Programs, tail};
use crate::lab::LabProcess;
use crate::machine::load_average;
use crate::process::{Measured, Usage};
use crate::workload::{self, Auth, Delivered, MessageSet};

/// Threads that write into the spool. Each delivery waits for two `fsync` calls, so one
/// thread alone could not keep the highest rate on a slow disk.
const WRITERS: usize = 8;

/// How long the daemon may take for the warm-up message and, after the last delivery, for the
/// rest of the messages.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// How long the daemon may take to stop after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// Parameters of the latency benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySettings {
    /// Offered loads in messages per second.
    pub rates: Vec<f64>,
    /// How long each rate is offered, in seconds.
    pub seconds: f64,
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

/// Latency at one offered load.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyFigures {
    /// The offered load in messages per second.
    pub offered_per_second: f64,
    /// The rate the writer achieved, from its first delivery to its last.
    pub delivered_per_second: f64,
    /// Messages delivered, without the warm-up message.
    pub messages: usize,
    /// Median latency in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile in milliseconds.
    pub p99_ms: f64,
    /// Maximum in milliseconds.
    pub max_ms: f64,
    /// The daemon process, from its start to its stop.
    pub daemon: Usage,
    /// CPU seconds the lab used while the messages were delivered and replaced.
    pub lab_cpu_seconds: f64,
    /// 1-minute load average before and after.
    pub load: (f64, f64),
}

/// Measures the latency at every rate of `settings`, with a new daemon for each.
pub async fn measure(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    settings: &LatencySettings,
) -> anyhow::Result<Vec<LatencyFigures>> {
    let senders = workload::on_premises_senders(lab, settings.senders).await?;
    let mut figures = Vec::new();
    for rate in settings.rates.iter().copied() {
        let count = ((rate * settings.seconds).round() as usize).max(1);
        let set = MessageSet {
            senders: senders.clone(),
            // One more for the warm-up.
            count: count + 1,
            size: settings.message_size,
        };
        let result = at_rate(lab, programs, work, settings, rate, &set).await?;
        eprintln!(
            "latency at {rate:>5} msg/s offered ({:.1} delivered): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} messages",
            result.delivered_per_second,
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.messages
        );
        figures.push(result);
    }
    Ok(figures)
}

async fn at_rate(
    lab: &LabProcess,
    programs: &Programs,
    work: &Path,
    settings: &LatencySettings,
    rate: f64,
    set: &MessageSet,
) -> anyhow::Result<LatencyFigures> {
    let label = format!("latency-{rate}");
    let dir = work.join(&label);
    let staging = dir.join("staging");
    let spool = dir.join("spool");
    for folder in ["tmp", "new"] {
        std::fs::create_dir_all(spool.join(folder))
            .with_context(|| format!("failed to create {}", spool.display()))?;
    }
    // The transport simulator writes only into a spool directory that exists.
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("failed to create {}", staging.display()))?;

    // 1. The originals in Sent Items and the processed copies in staging.
    let delivered = workload::deliver(lab, &staging, set, &label).await?;

    // 2. The daemon, warmed up with the first message so that its start-up is not measured.
    let spec =
        workload::write_siuctl_config(lab, &dir, &spool, settings.concurrency, settings.auth)?;
    let log_path = dir.join("client.log");
    let mut command = programs.siuctl_command(&label, settings.siuctl_verbosity);
    command
        .args(["run", "--rescan-interval", "1s", "-f"])
        .arg(&spec)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).context("failed to create the daemon log")?);
    let daemon = Measured::spawn(&mut command)?;
    let (first, rest) = delivered
        .split_first()
        .context("the set has a warm-up message")?;
    write_into_spool(&first.spool_file, &spool)?;
    wait_for_drain(&spool, &log_path).await?;

    // 3. The paced deliveries, then the wait until the daemon has replaced them all.
    let lab_cpu_before = lab.cpu_seconds()?;
    let load_before = load_average();
    let files: Vec<PathBuf> = rest
        .iter()
        .map(|message| message.spool_file.clone())
        .collect();
    let target = spool.clone();
    let arrivals =
        tokio::task::spawn_blocking(move || deliver_paced(&files, &target, rate)).await??;
    wait_for_drain(&spool, &log_path).await?;
    let lab_cpu_seconds = lab.cpu_seconds()? - lab_cpu_before;
    let load_after = load_average();
    daemon.terminate()?;
    let usage = tokio::task::spawn_blocking(move || daemon.wait(STOP_LIMIT)).await??;

    // 4. Latencies from the lab's creation times.
    let replaced = workload::check_replaced(lab, rest).await?;
    replaced.ensure_complete("siuctl run")?;
    let mut latencies: Vec<f64> = rest
        .iter()
        .zip(&arrivals)
        .map(|(message, arrival)| latency_ms(message, arrival, &replaced.created))
        .collect::<anyhow::Result<_>>()?;
    latencies.sort_by(f64::total_cmp);
    let first_arrival = arrivals.iter().min().copied().unwrap_or_else(Utc::now);
    let last_arrival = arrivals.iter().max().copied().unwrap_or(first_arrival);
    let span = (last_arrival - first_arrival).as_seconds_f64();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(LatencyFigures {
        offered_per_second: rate,
        delivered_per_second: if span > 0.0 {
            (arrivals.len() - 1) as f64 / span
        } else {
            rate
        },
        messages: latencies.len(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
        daemon: usage,
        lab_cpu_seconds,
        load: (load_before, load_after),
    })
}

fn latency_ms(
    message: &Delivered,
    arrival: &DateTime<Utc>,
    created: &std::collections::HashMap<String, DateTime<Utc>>,
) -> anyhow::Result<f64> {
    let created = created
        .get(&message.message_id)
        .with_context(|| format!("{} has no replacement", message.message_id))?;
    Ok((*created - *arrival).as_seconds_f64() * 1000.0)
}

/// Returns the nearest-rank percentile `p` (0 to 1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Delivers `files` into `spool` at `rate` per second with [`WRITERS`] threads and returns
/// the arrival time of each, in the order of `files`.
fn deliver_paced(files: &[PathBuf], spool: &Path, rate: f64) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let start = Instant::now() + Duration::from_millis(100);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut arrivals = vec![None; files.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|writer| {
                scope.spawn(move || -> anyhow::Result<Vec<(usize, DateTime<Utc>)>> {
                    let mut written = Vec::new();
                    for index in (writer..files.len()).step_by(WRITERS) {
                        let due = start + interval.mul_f64(index as f64);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        written.push((index, write_into_spool(&files[index], spool)?));
                    }
                    Ok(written)
                })
            })
            .collect();
        for handle in handles {
            let written = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a spool writer thread panicked"))??;
            for (index, arrival) in written {
                arrivals[index] = Some(arrival);
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    arrivals
        .into_iter()
        .map(|arrival| arrival.context("a message was not delivered"))
        .collect()
}

/// Delivers a staged spool file into `spool` as the spool contract requires, with
/// `X-SIU-Received-At` set to now, and returns the time of the rename into `new/`.
fn write_into_spool(staged: &Path, spool: &Path) -> anyhow::Result<DateTime<Utc>> {
    let name = staged.file_name().context("a staged file has a name")?;
    let contents =
        std::fs::read(staged).with_context(|| format!("failed to read {}", staged.display()))?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let contents = set_received_at(&contents, &now);

    let temporary = spool.join("tmp").join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .with_context(|| format!("failed to create {}", temporary.display()))?;
    file.write_all(&contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", temporary.display()))?;
    let arrival = Utc::now();
    std::fs::rename(&temporary, spool.join("new").join(name))
        .with_context(|| format!("failed to deliver {}", temporary.display()))?;
    std::fs::File::open(spool.join("new"))
        .and_then(|directory| directory.sync_all())
        .context("failed to sync the spool's new/ folder")?;
    Ok(arrival)
}

/// Replaces the value of the `X-SIU-Received-At` field, which the transport simulator
/// writes into every spool file, keeping every other byte.
fn set_received_at(contents: &[u8], value: &str) -> Vec<u8> {
    let name = b"X-SIU-Received-At:";
    let Some(start) = contents
        .windows(name.len())
        .position(|window| window == name)
    else {
        return contents.to_vec();
    };
    let value_start = start + name.len();
    let line_end = contents[value_start..]
        .iter()
        .position(|&byte| byte == b'\r' || byte == b'\n')
        .map_or(contents.len(), |offset| value_start + offset);
    let mut replaced = contents[..value_start].to_vec();
    replaced.push(b' ');
    replaced.extend_from_slice(value.as_bytes());
    replaced.extend_from_slice(&contents[line_end..]);
    replaced
}

/// Waits until the daemon has finished every file in the spool: `new/` and `cur/` are empty.
async fn wait_for_drain(spool: &Path, log: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if workload::files_in(spool, "new") == 0 && workload::files_in(spool, "cur") == 0 {
            break;
        }
        if started.elapsed() > DRAIN_LIMIT {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!(
                "siuctl run did not drain the spool within {DRAIN_LIMIT:?}; the end of its log:\n{}",
                tail(&text, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = workload::files_in(spool, "failed");
    if failed > 0 {
        bail!("siuctl run moved {} messages to failed/", failed / 2);
    }
    Ok(())
}
