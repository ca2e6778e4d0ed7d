//! `siuctl run`: the daemon. Runs the update loop with the configuration last applied,
//! reconciles on the spec's interval and whenever the spec file changes, and hands each new
//! configuration to the loop without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::exit::Exit;
use super::output::{self, OutputFormat};
use crate::reconcile::applied::AppliedConfig;
use crate::update::metrics::{self, Metrics};
use crate::update::runtime::{self, Connections, Runtime};
use crate::update::spool::Spool;
use crate::update::{LoopOptions, Summary, UpdateLoop};

/// How long the spec file must stay quiet before a change triggers a reconcile; editors
/// write a file in several steps.
const SPEC_DEBOUNCE: Duration = Duration::from_millis(500);

/// Arguments of `siuctl run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The spec file. `run` uses the configuration that was last applied from it.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// Process the messages in the spool, print a summary and exit: 0 when no message
    /// failed, 1 when one failed or a signal stopped the run with messages left in the
    /// spool. Messages waiting for their original keep the run going until
    /// options.originalWaitTimeout, and a message that keeps failing keeps it going for up
    /// to 10 attempts, about 7 to 14 minutes.
    #[arg(long)]
    pub once: bool,

    /// Serve Prometheus metrics on /metrics and a health check on /healthz at this address,
    /// such as 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Time between two full scans of the spool's new/ folder, such as 30s. File system
    /// events find most files sooner; the scan finds those whose event was lost.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,

    /// Format of the summary that --once prints on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs the daemon, or one pass with `--once`.
pub fn run(args: RunArgs) -> anyhow::Result<Exit> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    tokio.block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<Exit> {
    let spec = std::path::absolute(&args.file)
        .with_context(|| format!("failed to resolve the path {}", args.file.display()))?;

    // 1. The configuration and what the loop works with.
    let applied = reconcile(&spec).await?;
    let update_loop_dirs = applied.desired.update_loop.clone();
    let (first, connections) = runtime::build(&applied, None, 1)
        .await
        .context("failed to set up the update loop")?;
    let reconcile_interval = applied.desired.reconcile_interval;
    let (runtime_tx, runtime_rx) = watch::channel(Arc::new(first));

    // 2. Metrics, and the signals that stop the loop.
    let metrics = Arc::new(Metrics::new());
    metrics.set_health(None);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(addr) = args.metrics_addr {
        let mut stopped = shutdown_rx.clone();
        metrics::serve(addr, metrics.clone(), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
        .await
        .with_context(|| format!("failed to listen on {addr} for metrics"))?;
    }
    tokio::spawn(stop_on_signals(shutdown_tx));

    // 3. Reconciles in the background, unless this is a single pass.
    if !args.once {
        tokio::spawn(reconcile_forever(
            spec.clone(),
            reconcile_interval,
            connections,
            runtime_tx,
            metrics.clone(),
            shutdown_rx.clone(),
        ));
    }

    // 4. The loop.
    let update_loop = UpdateLoop::new(
        &update_loop_dirs.spool_dir,
        &update_loop_dirs.state_dir,
        runtime_rx,
        metrics.clone(),
    )?;
    let options = LoopOptions {
        once: args.once,
        rescan_interval: args.rescan_interval,
        show_progress: args.once,
        finished: None,
    };
    let stop_requested = shutdown_rx.clone();
    let summary = update_loop.run(options, shutdown_rx).await?;

    if !args.once {
        return Ok(Exit::Success);
    }
    print_summary(&summary, args.output)?;
    let mut exit = if summary.failed_total() > 0 {
        Exit::Failure
    } else {
        Exit::Success
    };

    // A signal ends the pass early: messages waiting for a retry stay in the spool, and the
    // summary counts only the messages that finished.
    if *stop_requested.borrow() {
        let left = count_left_in_spool(&update_loop_dirs.spool_dir)?;
        if left > 0 {
            let noun = if left == 1 { "message" } else { "messages" };
            eprintln!(
                "warning: stopped by a signal with {left} {noun} left in the spool {}; the next run processes them",
                update_loop_dirs.spool_dir.display()
            );
            exit = Exit::Failure;
        }
    }
    Ok(exit)
}

/// Counts the spool's unfinished files: delivered ones in `new/` and claimed ones in `cur/`.
fn count_left_in_spool(spool_dir: &Path) -> anyhow::Result<usize> {
    let spool = Spool::open(spool_dir)?;
    Ok(spool.list_new()?.len() + spool.list_claimed()?.len())
}

/// Reconciles the spec and returns the configuration the loop runs with.
//
// TODO: plan and apply the spec here, as `siuctl apply --auto-approve` does, so that run
// keeps the directory and the tenant converged. Until then this returns the configuration
// that the last `siuctl apply` wrote.
async fn reconcile(spec: &Path) -> anyhow::Result<AppliedConfig> {
    let desired =
        siu_specs::load(spec).with_context(|| format!("invalid spec {}", spec.display()))?;
    let state_dir = desired.update_loop.state_dir.clone();
    let applied = AppliedConfig::load(&state_dir)
        .with_context(|| {
            format!(
                "failed to read the applied configuration in {}",
                state_dir.display()
            )
        })?
        .with_context(|| {
            format!(
                "nothing was applied from {} yet; run `siuctl apply -f {}` first",
                spec.display(),
                spec.display()
            )
        })?;
    if applied.desired != desired {
        warn!(spec = %spec.display(), applied_at = %applied.applied_at, "the spec differs from the applied configuration; the loop runs with the applied one until `siuctl apply` runs");
    }
    Ok(applied)
}

/// Reconciles every `interval` and whenever the spec file changes, and hands each new
/// configuration to the loop.
async fn reconcile_forever(
    spec: PathBuf,
    mut interval: Duration,
    mut connections: Connections,
    runtime_tx: watch::Sender<Arc<Runtime>>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (changes_tx, mut changes) = mpsc::unbounded_channel();
    let _watcher = watch_spec(&spec, changes_tx);
    let mut generation = 1;
    let mut last_applied_at = runtime_tx.borrow().applied_at;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            Some(()) = changes.recv() => {
                info!(spec = %spec.display(), "the spec file changed; reconciling");
            }
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let applied = match reconcile(&spec).await {
            Ok(applied) => applied,
            Err(error) => {
                error!(
                    error = format!("{error:#}"),
                    "reconcile failed; the loop keeps the last configuration"
                );
                metrics.set_health(Some(format!("reconcile failed: {error:#}")));
                continue;
            }
        };
        interval = applied.desired.reconcile_interval;
        generation += 1;
        match runtime::build(&applied, Some(&connections), generation).await {
            Ok((runtime, kept)) => {
                if applied.applied_at != last_applied_at {
                    info!(generation, applied_at = %applied.applied_at, "running with a newly applied configuration");
                    last_applied_at = applied.applied_at;
                }
                connections = kept;
                metrics.set_health(None);
                let _ = runtime_tx.send(Arc::new(runtime));
            }
            Err(error) => {
                let error = crate::update::error_chain(&error);
                error!(
                    error,
                    "failed to set up the new configuration; the loop keeps the last one"
                );
                metrics.set_health(Some(error));
            }
        }
    }
}

/// Watches the spec's directory, so that editors that save by writing a new file and
/// renaming it over the old one are seen too.
fn watch_spec(
    spec: &Path,
    changes: mpsc::UnboundedSender<()>,
) -> Option<
    notify_debouncer_full::Debouncer<
        notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
> {
    let dir = spec.parent()?.to_path_buf();
    let name = spec.file_name()?.to_owned();
    let handler = move |result: notify_debouncer_full::DebounceEventResult| match result {
        Ok(events) => {
            let touches_spec = events.iter().any(|event| {
                changes_content(&event.kind)
                    && event
                        .paths
                        .iter()
                        .any(|path| path.file_name() == Some(name.as_os_str()))
            });
            if touches_spec {
                let _ = changes.send(());
            }
        }
        Err(errors) => {
            for error in errors {
                warn!(%error, "spec watcher error");
            }
        }
    };
    let debouncer = notify_debouncer_full::new_debouncer(SPEC_DEBOUNCE, None, handler).and_then(
        |mut debouncer| {
            debouncer.watch(&dir, notify::RecursiveMode::NonRecursive)?;
            Ok(debouncer)
        },
    );
    match debouncer {
        Ok(debouncer) => Some(debouncer),
        Err(error) => {
            warn!(dir = %dir.display(), %error, "failed to watch the spec; it is reconciled on the interval only");
            None
        }
    }
}

/// Tells whether a file event can change what the spec file contains. Opening and reading
/// the file, which every reload does, and metadata changes such as the access time do not;
/// reacting to them would reload the spec over and over.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};

    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
    }
}

/// Turns the first SIGINT or SIGTERM into a graceful stop, and a second one into an exit.
async fn stop_on_signals(shutdown: watch::Sender<bool>) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => Some(signal),
            Err(error) => {
                warn!(%error, "failed to listen for SIGTERM");
                None
            }
        };
    let mut received = 0;
    loop {
        tokio::select! {
            result = tokio::signal::ctrl_c() => {
                if let Err(error) = result {
                    warn!(%error, "failed to listen for SIGINT");
                    return;
                }
            }
            Some(()) = async {
                match terminate.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        received += 1;
        if received == 1 {
            info!("stopping after the messages in flight; signal again to exit at once");
            let _ = shutdown.send(true);
        } else {
            warn!("exiting at once; claimed messages are processed again on the next start");
            std::process::exit(130);
        }
    }
}

fn print_summary(summary: &Summary, format: OutputFormat) -> anyhow::Result<()> {
    let text = match format {
        OutputFormat::Text => summary.render_table(),
        OutputFormat::Json => {
            let mut json =
                serde_json::to_string_pretty(summary).context("failed to encode the summary")?;
            json.push('\n');
            json
        }
    };
    output::print(&text).context("failed to write the summary")?;
    Ok(())
}
