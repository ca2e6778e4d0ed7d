//! `siu-bench`: benchmarks of `siuctl` against the lab, and of the update loop side by side
//! with an exchangelib script doing the same work.
//!
//! Every program under test runs in its own process, and so does the lab, so that the CPU
//! time and peak RSS of a client come from `wait4(2)` for that process alone. The
//! benchmarks, each with its own lab:
//!
//! - `compare`: `siuctl run --once` and `bench/exchangelib_update.py` over the same message
//!   set, at the same concurrency, with 0 ms and 20 ms of latency added to every EWS call;
//! - `concurrency`: the same at each concurrency level up to 27, Exchange's default
//!   `EWSMaxConcurrency`, which is also the update loop's connection limit;
//! - `latency`: p50, p99 and maximum from spool arrival to the replaced item at 10, 50 and
//!   200 messages per second offered to a running `siuctl run`;
//! - `memory`: peak RSS of `siuctl run --once` over backlogs of 1,000 to 100,000 files;
//! - `organization`: time and requests of `siuctl plan` for 1,000 to 100,000 users.
//!
//! ```text
//! cargo bench -p siuctl --bench siu-bench                        # every benchmark, in full
//! cargo bench -p siuctl --bench siu-bench -- compare latency     # some of them
//! cargo bench -p siuctl --bench siu-bench -- --out target/bench  # also write record.json and record.md
//! ```
//!
//! Without the `--bench` flag that `cargo bench` passes, as under `cargo test`, or with
//! `--smoke` or `SIU_BENCH_SMOKE=1`, every benchmark runs briefly with a few messages. The
//! smoke mode checks that each message is replaced and asserts nothing about times.

mod clients;
mod compare;
mod lab;
mod latency;
mod machine;
mod memory;
mod organization;
mod process;
mod record;
mod workload;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;

use clients::Programs;
use compare::CompareSettings;
use lab::LabProcess;
use latency::LatencySettings;
use memory::MemorySettings;
use organization::{OrganizationSettings, OrganizationSize};
use record::Record;
use workload::Auth;

/// Benchmarks of siuctl against the lab, side by side with exchangelib.
#[derive(Debug, Parser)]
#[command(name = "siu-bench")]
struct Args {
    /// Benchmarks to run; every one when none is given.
    #[arg(value_enum)]
    benchmarks: Vec<Benchmark>,

    /// Run every benchmark briefly, as `cargo test` does.
    #[arg(long, env = "SIU_BENCH_SMOKE")]
    smoke: bool,

    /// Write record.json and record.md into this directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Messages per client and latency in the comparison [default: 2000; smoke: 12].
    #[arg(long, value_name = "N")]
    messages: Option<usize>,

    /// Messages in flight in the comparison, the latency and the memory benchmarks
    /// [default: 8, the spec's default; smoke: 2].
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,

    /// On-premises mailboxes that send the messages, in turn [default: 100; smoke: 4].
    #[arg(long, value_name = "N")]
    senders: Option<usize>,

    /// Messages per run of the concurrency sweep at concurrency 1; a run at concurrency N
    /// gets N times as many [default: 200; smoke: 3].
    #[arg(long, value_name = "N")]
    sweep_messages: Option<usize>,

    /// Spool backlogs of the memory benchmark, in files, separated by commas
    /// [default: 1000,10000,100000; smoke: 100].
    #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
    backlogs: Option<Vec<usize>>,

    /// Size of each submitted message in bytes, before the signature.
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    message_size: usize,

    /// EWS authentication of both clients.
    #[arg(long, value_enum, default_value_t = Auth::Basic)]
    auth: Auth,

    /// `-v` flags passed to every `siuctl run`: 0 logs warnings and errors only, 1 adds a
    /// line per message.
    #[arg(long, value_name = "N", default_value_t = 0)]
    siuctl_verbosity: u8,

    /// Record every `siuctl` run with `perf record --call-graph dwarf` into this directory.
    /// The figures of a profiled run include the profiler's overhead.
    #[arg(long, value_name = "DIR")]
    profile: Option<PathBuf>,

    /// Directory for labs and spools. Without it, a new temporary directory.
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,

    /// Set by `cargo bench`. Without it the smoke mode runs, as under `cargo test`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Benchmark {
    /// The update loop against the exchangelib script.
    Compare,
    /// Throughput by concurrency, for both clients.
    Concurrency,
    /// Latency from spool arrival to the replaced item.
    Latency,
    /// Peak RSS over spool backlogs.
    Memory,
    /// Plan time and requests by organization size.
    Organization,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let smoke = args.smoke || !args.bench;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the controller crate has a parent directory")?
        .to_path_buf();
    let programs = Programs {
        siuctl: PathBuf::from(env!("CARGO_BIN_EXE_siuctl")),
        python: exchangelib_python(&workspace)?,
        script: workspace.join("bench").join("exchangelib_update.py"),
        profile_dir: args.profile.clone(),
    };
    if let Some(dir) = &args.profile {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    let temporary;
    let work = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("siu-bench-")
                .tempdir()
                .context("failed to create a work directory")?;
            temporary.path().to_path_buf()
        }
    };
    let selected = if args.benchmarks.is_empty() {
        vec![
            Benchmark::Compare,
            Benchmark::Concurrency,
            Benchmark::Latency,
            Benchmark::Memory,
            Benchmark::Organization,
        ]
    } else {
        args.benchmarks.clone()
    };
    if smoke {
        eprintln!(
            "siu-bench: smoke mode, a few messages per benchmark; figures are not meaningful"
        );
    }

    let mut record = Record {
        started_at: chrono::Utc::now(),
        arguments: std::env::args().skip(1).collect(),
        smoke,
        machine: machine::Machine::read(&workspace, programs.python.as_deref()),
        compare_settings: compare_settings(&args, smoke),
        comparison: None,
        sweep: None,
        latency_settings: latency_settings(&args, smoke),
        latency: None,
        memory_settings: memory_settings(&args, smoke),
        memory: None,
        organization_settings: organization_settings(smoke),
        organization: None,
    };

    for benchmark in selected {
        eprintln!("siu-bench: {benchmark:?}");
        let needed = match benchmark {
            Benchmark::Organization => "plan",
            _ => "run",
        };
        if !has_subcommand(&programs.siuctl, needed) {
            // The runner can land before the commands it measures, so a smoke run skips what
            // this siuctl cannot do yet. A full run fails instead, because it records figures.
            if smoke {
                eprintln!(
                    "siu-bench: skipped {benchmark:?}: this siuctl has no `{needed}` subcommand"
                );
                continue;
            }
            bail!(
                "this siuctl has no `{needed}` subcommand, which the {benchmark:?} benchmark runs"
            );
        }
        match benchmark {
            Benchmark::Compare => {
                let lab = start_lab(&programs, &work, "compare").await?;
                record.comparison =
                    Some(compare::compare(&lab, &programs, &work, &record.compare_settings).await?);
            }
            Benchmark::Concurrency => {
                let lab = start_lab(&programs, &work, "concurrency").await?;
                record.sweep =
                    Some(compare::sweep(&lab, &programs, &work, &record.compare_settings).await?);
            }
            Benchmark::Latency => {
                let lab = start_lab(&programs, &work, "latency").await?;
                record.latency =
                    Some(latency::measure(&lab, &programs, &work, &record.latency_settings).await?);
            }
            Benchmark::Memory => {
                let lab = start_lab(&programs, &work, "memory").await?;
                record.memory =
                    Some(memory::measure(&lab, &programs, &work, &record.memory_settings).await?);
            }
            Benchmark::Organization => {
                record.organization = Some(
                    organization::measure(&programs, &work, &record.organization_settings).await?,
                );
            }
        }
    }

    let markdown = record.to_markdown();
    println!("{markdown}");
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .with_context(|| format!("failed to create {}", out.display()))?;
        std::fs::write(out.join("record.json"), serde_json::to_vec_pretty(&record)?)
            .context("failed to write record.json")?;
        std::fs::write(out.join("record.md"), markdown).context("failed to write record.md")?;
        eprintln!("siu-bench: wrote {}", out.join("record.md").display());
    }
    Ok(())
}

/// Starts a lab for one benchmark, with impersonation granted to the service account.
async fn start_lab(programs: &Programs, work: &Path, name: &str) -> anyhow::Result<LabProcess> {
    let lab = LabProcess::start(&programs.siuctl, &work.join(format!("lab-{name}")), None).await?;
    lab.grant_impersonation().await?;
    Ok(lab)
}

/// Tells whether `siuctl` has the subcommand `name`.
fn has_subcommand(siuctl: &Path, name: &str) -> bool {
    std::process::Command::new(siuctl)
        .args([name, "--help"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Returns the exchangelib environment's interpreter, or `None` without one, which skips the
/// exchangelib runs unless `SIU_REQUIRE_PY=1`.
fn exchangelib_python(workspace: &Path) -> anyhow::Result<Option<PathBuf>> {
    let python = workspace.join(".venv").join("bin").join("python");
    if python.is_file() {
        return Ok(Some(python));
    }
    if std::env::var("SIU_REQUIRE_PY").as_deref() == Ok("1") {
        bail!(
            "SIU_REQUIRE_PY=1 but {} is missing (run bash scripts/setup.sh)",
            python.display()
        );
    }
    eprintln!(
        "siu-bench: {} is missing, so the exchangelib runs are skipped (run bash scripts/setup.sh)",
        python.display()
    );
    Ok(None)
}

fn compare_settings(args: &Args, smoke: bool) -> CompareSettings {
    CompareSettings {
        messages: args.messages.unwrap_or(if smoke { 12 } else { 2000 }),
        concurrency: args.concurrency.unwrap_or(if smoke { 2 } else { 8 }),
        senders: args.senders.unwrap_or(if smoke { 4 } else { 100 }),
        message_size: args.message_size,
        latencies_ms: vec![0, 20],
        auth: args.auth,
        siuctl_verbosity: args.siuctl_verbosity,
        sweep_levels: if smoke {
            vec![1, 4]
        } else {
            vec![1, 2, 4, 8, 16, 27]
        },
        sweep_messages_per_level: args.sweep_messages.unwrap_or(if smoke { 3 } else { 200 }),
    }
}

fn latency_settings(args: &Args, smoke: bool) -> LatencySettings {
    LatencySettings {
        rates: vec![10.0, 50.0, 200.0],
        seconds: if smoke { 0.5 } else { 30.0 },
        senders: args.senders.unwrap_or(if smoke { 4 } else { 100 }),
        message_size: args.message_size,
        concurrency: args.concurrency.unwrap_or(8),
        auth: args.auth,
        siuctl_verbosity: args.siuctl_verbosity,
    }
}

fn memory_settings(args: &Args, smoke: bool) -> MemorySettings {
    MemorySettings {
        backlogs: args.backlogs.clone().unwrap_or_else(|| {
            if smoke {
                vec![100]
            } else {
                vec![1_000, 10_000, 100_000]
            }
        }),
        senders: args.senders.unwrap_or(if smoke { 4 } else { 100 }),
        message_size: args.message_size,
        concurrency: args.concurrency.unwrap_or(8),
        auth: args.auth,
        siuctl_verbosity: args.siuctl_verbosity,
    }
}

fn organization_settings(smoke: bool) -> OrganizationSettings {
    let size = |users, groups, largest_group| OrganizationSize {
        users,
        groups,
        largest_group,
    };
    OrganizationSettings {
        sizes: if smoke {
            vec![size(1_000, 20, 500)]
        } else {
            vec![
                size(1_000, 50, 500),
                size(10_000, 500, 5_000),
                size(100_000, 5_000, 50_000),
            ]
        },
    }
}
