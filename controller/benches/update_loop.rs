//! Benchmarks of `siuctl run` against the lab, built with the bench profile:
//!
//! - `throughput`: messages per second while `--once` drains a backlog;
//! - `latency`: time from delivery into the spool to the replacement in Sent Items, while
//!   messages arrive at a steady 50 per second;
//! - `backlog`: peak resident memory while `--once` works through 100,000 spool files.
//!
//! The lab runs in this process and `siuctl` in a child process, so both share the machine's
//! cores. Run one with `SIU_BENCH=latency cargo bench -p siuctl --bench update_loop`; without
//! `SIU_BENCH` all three run. Results go to standard output as Markdown table rows.
//!
//! `cargo test --all-targets` runs this file too, without the `--bench` argument that
//! `cargo bench` passes: then each part runs once on a few messages, as a check that the
//! benchmark still works, and its figures mean nothing.

#[path = "../../tests/integration/update_lab.rs"]
#[allow(dead_code)]
mod update_lab;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use siu_lab::transport::{Message, SendReport};
use siuctl::update::store::{MARKER_PROPERTY_SET, SOURCE_PROPERTY};
use update_lab::{Setup, UpdateLab};

/// The sizes of the three parts.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Messages in the throughput backlog.
    throughput_messages: usize,
    /// Arrival rate of the latency run, per second.
    latency_rate: u64,
    /// Length of the latency run, in seconds.
    latency_seconds: u64,
    /// Files in the memory backlog.
    backlog_files: usize,
    /// How long the memory run works on its backlog before it is stopped.
    backlog_run: Duration,
}

/// The sizes of `cargo bench`.
const BENCH: Sizes = Sizes {
    throughput_messages: 10_000,
    latency_rate: 50,
    latency_seconds: 60,
    backlog_files: 100_000,
    backlog_run: Duration::from_secs(120),
};

/// The sizes of the check that `cargo test` runs.
const CHECK: Sizes = Sizes {
    throughput_messages: 20,
    latency_rate: 10,
    latency_seconds: 2,
    backlog_files: 200,
    backlog_run: Duration::from_secs(3),
};

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let sizes = if benchmarking { BENCH } else { CHECK };
    let which = std::env::var("SIU_BENCH").unwrap_or_default();
    let wanted = |name: &str| which.is_empty() || which.split(',').any(|w| w == name);
    println!(
        "siuctl {} on {} cores{}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if benchmarking {
            ""
        } else {
            " (a check with a few messages; run `cargo bench` for figures)"
        }
    );
    if wanted("throughput") {
        throughput(sizes);
    }
    if wanted("latency") {
        latency(sizes);
    }
    if wanted("backlog") {
        backlog(sizes);
    }
}

fn setup() -> Setup {
    Setup {
        hybrid: true,
        concurrency: 16,
        ..Setup::default()
    }
}

/// Bulk users with a mailbox, on premises and in the cloud in turn.
fn senders(lab: &UpdateLab, count: usize) -> Vec<String> {
    let world = lab.lab.state().read();
    let mut senders: Vec<String> = world
        .directory
        .users
        .values()
        .filter(|user| {
            user.sam.starts_with("staff") && world.exchange.mailboxes.contains_key(&user.id)
        })
        .filter_map(|user| user.mail.clone())
        .collect();
    senders.sort();
    senders.truncate(count);
    senders
}

fn send(lab: &UpdateLab, from: &str, index: usize) -> SendReport {
    lab.send(Message {
        from: Some(from.to_owned()),
        subject: Some(format!("benchmark message {index}")),
        ..Message::default()
    })
}

/// Threads that fill a backlog. The transport syncs each spool file to disk, and syncs from
/// several threads overlap: 100,000 files took 20 s with 16 threads and 462 s with one on
/// a shared 2-core virtual machine.
const FILL_THREADS: usize = 16;

/// Sends `count` messages from `senders` in turn, on [`FILL_THREADS`] threads.
fn fill(lab: &UpdateLab, senders: &[String], count: usize) {
    std::thread::scope(|scope| {
        for thread in 0..FILL_THREADS {
            scope.spawn(move || {
                for index in (thread..count).step_by(FILL_THREADS) {
                    send(lab, &senders[index % senders.len()], index);
                }
            });
        }
    });
}

/// Counts the replacements in every mailbox and returns, per source key, when each was
/// created.
fn replacements(lab: &UpdateLab) -> std::collections::HashMap<String, DateTime<Utc>> {
    let set = MARKER_PROPERTY_SET.to_string();
    let world = lab.lab.state().read();
    let mut found = std::collections::HashMap::new();
    for mailbox in world.exchange.mailboxes.values() {
        for folder in &mailbox.folders {
            for item in &folder.items {
                if let Some(key) = item.named_property(&set, SOURCE_PROPERTY) {
                    found.insert(key.to_owned(), item.created);
                }
            }
        }
    }
    found
}

/// Peak resident memory and CPU time of a child process, read from `/proc` while it runs.
#[derive(Debug, Default, Clone, Copy)]
struct ProcessStats {
    peak_rss_kib: u64,
    cpu_seconds: f64,
}

/// Polls `/proc/PID` every 50 ms until `stop` is set, and returns the last values.
fn watch_process(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<ProcessStats> {
    std::thread::spawn(move || {
        let mut stats = ProcessStats::default();
        while !stop.load(Ordering::Relaxed) {
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                for line in status.lines() {
                    if let Some(value) = line.strip_prefix("VmHWM:") {
                        let kib = value
                            .trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse()
                            .unwrap_or(0);
                        stats.peak_rss_kib = stats.peak_rss_kib.max(kib);
                    }
                }
            }
            if let Some(seconds) = cpu_seconds(&pid.to_string()) {
                stats.cpu_seconds = seconds;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stats
    })
}

/// Returns the user and system CPU time of process `pid` (or `self`), from `/proc/PID/stat`.
fn cpu_seconds(pid: &str) -> Option<f64> {
    // Clock ticks per second of /proc/PID/stat; 100 on Linux on x86-64 and arm64.
    const TICKS_PER_SECOND: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses: utime is the 14th field and
    // stime the 15th of the whole line.
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> Option<f64> { fields.get(index)?.parse().ok() };
    Some((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

fn wait_with_stats(mut child: Child) -> (std::process::ExitStatus, ProcessStats) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_process(child.id(), stop.clone());
    let status = child.wait().expect("siuctl finishes");
    stop.store(true, Ordering::Relaxed);
    (status, watcher.join().expect("the watcher ends"))
}

/// Waits for `child`, sending it SIGTERM once `run` has passed, and returns whether it had
/// to be stopped. On SIGTERM the loop finishes the messages in flight and exits.
fn stop_after(mut child: Child, run: Duration) -> (bool, ProcessStats) {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_process(child.id(), stop.clone());
    let started = Instant::now();
    let mut stopped = false;
    // The child is only signalled while it has not been waited for, so its PID cannot
    // belong to another process yet.
    while child.try_wait().expect("siuctl can be polled").is_none() {
        if !stopped && started.elapsed() >= run {
            let pid = libc::pid_t::try_from(child.id()).expect("PIDs fit in pid_t");
            // SAFETY: kill(2) takes no pointers, and the PID is that of our unreaped child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            stopped = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    (stopped, watcher.join().expect("the watcher ends"))
}

fn throughput(sizes: Sizes) {
    let messages = sizes.throughput_messages;
    let lab = UpdateLab::start(setup());
    let senders = senders(&lab, 400);
    fill(&lab, &senders, messages);

    let started = Instant::now();
    let lab_cpu_before = cpu_seconds("self").unwrap_or_default();
    let child = lab
        .siuctl()
        .args(["--once", "--output", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("siuctl starts");
    let (status, stats) = wait_with_stats(child);
    let elapsed = started.elapsed();
    // This process is the lab while siuctl runs, apart from the watcher's reads of /proc.
    let lab_cpu = cpu_seconds("self").unwrap_or_default() - lab_cpu_before;
    let done = replacements(&lab).len();

    assert!(status.success(), "siuctl run --once failed with {status}");
    assert_eq!(done, messages, "every message is replaced");
    println!(
        "| throughput | {messages} messages drained in {:.1} s | {:.0} messages/s | siuctl used {:.1} CPU-s ({:.2} ms per message), peak RSS {} MiB; the lab used {:.1} CPU-s |",
        elapsed.as_secs_f64(),
        messages as f64 / elapsed.as_secs_f64(),
        stats.cpu_seconds,
        stats.cpu_seconds * 1000.0 / messages as f64,
        stats.peak_rss_kib / 1024,
        lab_cpu
    );
}

fn latency(sizes: Sizes) {
    let rate = sizes.latency_rate;
    let lab = UpdateLab::start(setup());
    let senders = senders(&lab, 400);
    let log = lab.dir.path().join("latency.log");
    let mut daemon = lab.spawn_daemon(&log);
    // The daemon is ready once it has claimed a first message.
    let warmup = send(&lab, &senders[0], 0);
    let ready = Instant::now();
    while !replacements(&lab).contains_key(&warmup.message_id) {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "the daemon did not start; log:\n{}",
            update_lab::tail(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Messages at a steady rate, each with the time its spool file was delivered.
    let total = (rate * sizes.latency_seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let started = Instant::now();
    let mut delivered: Vec<(String, DateTime<Utc>)> = Vec::with_capacity(total);
    for index in 0..total {
        let due = started + interval * index as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let report = send(&lab, &senders[(index + 1) % senders.len()], index + 1);
        delivered.push((report.message_id, Utc::now()));
    }
    let sending = started.elapsed();

    let deadline = Instant::now() + Duration::from_secs(300);
    let created = loop {
        let created = replacements(&lab);
        if delivered.iter().all(|(id, _)| created.contains_key(id)) || Instant::now() > deadline {
            break created;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();

    let mut latencies: Vec<f64> = delivered
        .iter()
        .filter_map(|(id, at)| {
            created
                .get(id)
                .map(|done| (*done - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    assert_eq!(latencies.len(), total, "every message is replaced");
    println!(
        "| latency | {total} messages at {rate}/s (sent in {:.1} s) | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms | |",
        sending.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
        latencies.last().copied().unwrap_or(0.0)
    );
}

fn backlog(sizes: Sizes) {
    let files = sizes.backlog_files;
    let run = sizes.backlog_run;
    let lab = UpdateLab::start(Setup {
        concurrency: 16,
        ..Setup::default()
    });
    let senders: Vec<String> = senders(&lab, 1_600)
        .into_iter()
        .filter(|address| {
            let world = lab.lab.state().read();
            world
                .directory
                .user_by_address(address)
                .is_some_and(|user| user.mailbox == siu_lab::fixture::MailboxLocation::OnPremises)
        })
        .collect();
    let filling = Instant::now();
    fill(&lab, &senders, files);
    let filled = filling.elapsed();

    let started = Instant::now();
    let child = lab
        .siuctl()
        .args(["--once", "--output", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("siuctl starts");
    let (stopped, stats) = stop_after(child, run);
    let done = replacements(&lab).len();

    println!(
        "| backlog | {files} files (written in {:.0} s), {} after {:.0} s | peak RSS {} MiB | {done} messages replaced, {:.1} CPU-s |",
        filled.as_secs_f64(),
        if stopped { "stopped" } else { "finished" },
        started.elapsed().as_secs_f64(),
        stats.peak_rss_kib / 1024,
        stats.cpu_seconds
    );
}
