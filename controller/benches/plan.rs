//! Times `plan` against a large lab organization and counts the requests it makes.
//!
//! The organization has `SIU_BENCH_USERS` users (default 100,000) and `SIU_BENCH_GROUPS`
//! groups (default 5,000), one of which, `Largest-Group`, has `SIU_BENCH_LARGEST` (default
//! 50,000) members in ten nested groups. The spec's scope is `only` that group and 19 others.
//! After one apply, the benchmark plans `SIU_BENCH_RUNS` times (default 5) in this process,
//! with the lab in the same process, and prints the time of each plan and the requests of
//! the last one per service and operation. It fails when a steady-state plan writes
//! anything or has changes.
//!
//! Run with `cargo bench -p siuctl --bench plan`. `cargo test --all-targets` runs this file
//! without the `--bench` argument that `cargo bench` passes, and then it returns at once:
//! the default organization takes minutes to build and plan in a debug build.

use std::path::Path;
use std::time::{Duration, Instant};

use siu_lab::{Fixture, Lab, LabConfig};
use siuctl::reconcile::context::{Context, Options};

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("plan benchmark skipped: run it with `cargo bench -p siuctl --bench plan`");
        return;
    }
    let users = env_number("SIU_BENCH_USERS", 100_000);
    let groups = env_number("SIU_BENCH_GROUPS", 5_000);
    let largest = env_number("SIU_BENCH_LARGEST", 50_000);
    let runs = env_number("SIU_BENCH_RUNS", 5).max(1);

    // `SIU_BENCH_FIXTURE=FILE` writes the organization as a fixture for `siuctl lab up
    // --fixture FILE` instead, to run the lab and siuctl as separate processes and measure
    // each one's CPU time.
    if let Some(path) = std::env::var_os("SIU_BENCH_FIXTURE") {
        let fixture = Fixture::synthetic(users, groups, largest);
        let yaml = serde_saphyr::to_string(&fixture).expect("the fixture serializes");
        std::fs::write(&path, yaml).expect("the fixture is written");
        return;
    }

    // Logs go to standard error, filtered by RUST_LOG (warnings by default).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    runtime.block_on(bench(users, groups, largest, runs));
}

async fn bench(users: u32, groups: u32, largest: u32, runs: u32) {
    // 1. The organization and the lab.
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = LabConfig::new(Fixture::synthetic(users, groups, largest));
    config.dir = Some(dir.path().to_path_buf());
    config.siuctl = Some(env!("CARGO_BIN_EXE_siuctl").into());
    let lab = Lab::start(config).await.expect("the lab starts");
    println!(
        "lab: {users} users, {groups} groups, largest group {largest} members; started in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // 2. A spec whose scope is the largest group and 19 others.
    let spec = scoped_spec(dir.path());
    let desired = siu_specs::load(&spec).expect("the benchmark spec is valid");
    let ctx = Context::new(desired, Options::default());

    // 3. One apply, so that the plans that follow have nothing to change.
    let (plan, observed) = siuctl::reconcile::plan(&ctx).await;
    let outcome = siuctl::reconcile::apply::apply(&ctx, &plan, &observed, &mut |_| {})
        .await
        .expect("apply writes its state files");
    println!("first apply: {:?}", outcome.result);

    // 4. The timed plans.
    let mut times = Vec::new();
    let mut cpu_times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        lab.journal().reset();
        let started = Instant::now();
        let cpu_started = process_cpu_time();
        let (plan, _) = siuctl::reconcile::plan(&ctx).await;
        times.push(started.elapsed());
        cpu_times.push(process_cpu_time().saturating_sub(cpu_started));
        last = Some(plan);
    }
    let plan = last.expect("at least one run");
    let counters = lab.journal().counters();
    let recent = lab.journal().recent();

    times.sort();
    let median = times[times.len() / 2];
    cpu_times.sort();
    println!(
        "plan: {runs} runs, wall time min {:.3} s, median {:.3} s, max {:.3} s",
        secs(times[0]),
        secs(median),
        secs(times[times.len() - 1])
    );
    println!(
        "plan: CPU time of this process (plan and lab together) min {:.3} s, median {:.3} s",
        secs(cpu_times[0]),
        secs(cpu_times[cpu_times.len() / 2])
    );
    println!(
        "machine: {} CPUs, load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(scope) = &plan.facts.scope {
        println!("scope: {scope}");
    }
    println!("requests of the last plan:");
    for (operation, count) in &counters {
        println!("  {operation:<40} {count}");
    }
    let total: u64 = counters.values().sum();
    println!("  {:<40} {total}", "total");

    // The lab's own time, from its journal: the time it took to serve each request.
    let mut slowest = recent.clone();
    slowest.sort_by_key(|entry| std::cmp::Reverse(entry.latency_us));
    let server_us: u64 = recent.iter().map(|entry| entry.latency_us).sum();
    println!(
        "lab time answering the last plan's requests: {:.3} s; slowest:",
        server_us as f64 / 1e6
    );
    for entry in slowest.iter().take(5) {
        println!(
            "  {:.3} s  {}/{}",
            entry.latency_us as f64 / 1e6,
            entry.service.name(),
            entry.operation
        );
    }

    // 5. A steady state changes nothing.
    let writes: Vec<_> = counters
        .keys()
        .filter(|operation| is_write(operation))
        .collect();
    assert!(writes.is_empty(), "a steady-state plan wrote: {writes:?}");
    assert!(
        plan.is_clean() && !plan.has_changes(),
        "the steady-state plan has changes:\n{}",
        plan.render()
    );
    println!("steady state: no changes, no writes");
    drop(lab);
}

/// Returns the user and system CPU time of this process, all threads together.
fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |time: libc::timeval| {
        Duration::from_secs(time.tv_sec as u64) + Duration::from_micros(time.tv_usec as u64)
    };
    micros(usage.ru_utime) + micros(usage.ru_stime)
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Tells whether a journal counter (`service/operation`) counts a change.
fn is_write(counter: &str) -> bool {
    let operation = counter.split_once('/').map_or(counter, |(_, op)| op);
    ["add", "modify", "delete", "modifyDN"].contains(&operation)
        || operation.starts_with("POST ")
        || operation.starts_with("PATCH ")
        || operation.starts_with("DELETE ")
        || ["CreateItem", "UpdateItem", "DeleteItem"].contains(&operation)
}

fn scoped_spec(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(dir.join("specs/onprem.yaml")).expect("the lab's spec");
    let mut groups = vec!["largest@lab.example".to_owned()];
    groups.extend((1..=19).map(|n| format!("Group-{n:05}")));
    let scope = format!(
        "scope:\n  mode: only\n  groups:\n{}",
        groups
            .iter()
            .map(|group| format!("    - {group}\n"))
            .collect::<String>()
    );
    let text = text.replacen("scope:\n  mode: all\n", &scope, 1);
    let path = dir.join("specs/bench.yaml");
    std::fs::write(&path, text).expect("the benchmark spec is written");
    path
}
