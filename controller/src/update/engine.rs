//! The loop: watches the spool, claims files, runs each message through the rewrite and
//! decides what happens to it afterwards.
//!
//! One dispatcher task owns the queues: names seen in `new/` (from `notify` events and a
//! periodic rescan, because events can be lost), and claimed messages waiting for a retry.
//! It starts a worker per message while fewer than `updateLoop.concurrency` run. A worker
//! finishes its message itself: it deletes the spool file after an update or a skip, or
//! moves it to `failed/`, or saves the state with the time of the next attempt and hands
//! the message back.
//!
//! Retries follow the error. Throttling closes the shared gate of the server or mailbox and
//! does not count towards giving up. A missing original is looked for again with a growing
//! delay until `options.originalWaitTimeout` has passed since the first attempt. Other
//! failures count, and after [`MAX_ATTEMPTS`] the message fails with its last error.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::error_chain;
use super::message::{MAX_SPOOL_FILE_BYTES, SpoolMessage};
use super::metrics::Metrics;
use super::outcome::{Outcome, Summary};
use super::progress::Progress;
use super::recipients::Resolution;
use super::replace::{ReplaceContext, ReplaceError, ReplaceOutcome, replace};
use super::routing;
use super::runtime::Runtime;
use super::scope::Decision;
use super::spool::{ClaimedFile, ReadResult, Spool, SpoolError};
use super::state::{MessageState, Phase, StateError, StateStore};
use super::store::{ErrorClass, StoreError, ThrottleScope};
use super::throttle::{Backoff, Gates};

/// Failed attempts after which a message fails for good. Throttled attempts and the wait
/// for the original do not count. With [`RETRY_BACKOFF`] the attempts span about 13
/// minutes.
pub const MAX_ATTEMPTS: u32 = 10;

/// Delays between failed attempts.
const RETRY_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    cap: Duration::from_secs(300),
};

/// Gate closings after a throttling response that named no wait.
const THROTTLE_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(60),
};

/// Delays between searches for an original that has not arrived; a client in cached mode
/// usually uploads it within a minute.
const ORIGINAL_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(2),
    cap: Duration::from_secs(60),
};

/// How long a message waits when updating is switched off while it is in flight.
const DISABLED_RECHECK: Duration = Duration::from_secs(30);

/// Errors that stop the loop.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The spool could not be read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The state directory could not be used.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Settings of one run of the loop.
#[derive(Debug, Clone)]
pub struct LoopOptions {
    /// Process what the spool holds, then return, instead of running until shut down.
    pub once: bool,
    /// The time between two full scans of `new/`.
    pub rescan_interval: Duration,
    /// Show progress on standard error in `once` mode.
    pub show_progress: bool,
    /// Receives each message that ends, for callers that report message by message. The
    /// loop never waits for the receiver, and a dropped receiver changes nothing.
    pub finished: Option<mpsc::UnboundedSender<Finished>>,
}

impl Default for LoopOptions {
    fn default() -> Self {
        Self {
            once: false,
            rescan_interval: Duration::from_secs(30),
            show_progress: false,
            finished: None,
        }
    }
}

/// A message that ended during a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The name of its spool file.
    pub spool_file: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// The primary SMTP address of the mailbox it was resolved to: whose Sent Items an
    /// update changed, or whose scope or path decided a skip or failure. `None` when the
    /// message ended before its sender was resolved to a mailbox.
    pub mailbox: Option<String>,
}

/// State that every worker uses.
#[derive(Debug)]
struct Shared {
    spool: Spool,
    states: StateStore,
    metrics: Arc<Metrics>,
    gates: Gates,
    mailboxes: MailboxLimits,
    keys: KeyLocks,
}

/// The update loop over one spool and state directory.
#[derive(Debug)]
pub struct UpdateLoop {
    shared: Arc<Shared>,
    runtime: watch::Receiver<Arc<Runtime>>,
}

/// The result a worker returns to the dispatcher.
#[derive(Debug)]
enum Step {
    /// The message ended and its spool file is gone from `cur/`.
    Done {
        outcome: Outcome,
        /// The mailbox it was resolved to, when it got that far.
        mailbox: Option<String>,
    },
    /// The message waits in `cur/` until `at`.
    Retry(Instant),
    /// The spool file disappeared from `cur/` while the message waited.
    Gone,
}

impl UpdateLoop {
    /// Opens the spool and the state directory.
    pub fn new(
        spool_dir: &Path,
        state_dir: &Path,
        runtime: watch::Receiver<Arc<Runtime>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LoopError> {
        let shared = Shared {
            spool: Spool::open(spool_dir)?,
            states: StateStore::open(state_dir)?,
            metrics,
            gates: Gates::new(),
            mailboxes: MailboxLimits::default(),
            keys: KeyLocks::default(),
        };
        Ok(Self {
            shared: Arc::new(shared),
            runtime,
        })
    }

    /// Runs until `shutdown` turns true, or in `once` mode until the spool is empty, and
    /// returns the tally. In-flight messages always finish before this returns.
    pub async fn run(
        mut self,
        options: LoopOptions,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Summary, LoopError> {
        let shared = self.shared.clone();
        let spool = &shared.spool;

        // 1. What the spool holds: files an earlier run claimed, and delivered files.
        let claimed = spool.list_claimed()?;
        let orphans = shared
            .states
            .remove_orphans(&claimed.iter().cloned().collect())?;
        if orphans > 0 {
            debug!(
                orphans,
                "removed states of messages finished before a crash"
            );
        }
        let mut waiting: BinaryHeap<Reverse<(Instant, String)>> = BinaryHeap::new();
        for name in &claimed {
            let due = match shared.states.load(name)? {
                Some(state) => instant_of(state.next_attempt_at),
                None => Instant::now(),
            };
            waiting.push(Reverse((due, name.clone())));
        }
        let mut ready: BTreeSet<String> = spool.list_new()?.into_iter().collect();
        info!(
            spool = %spool.root().display(),
            new = ready.len(),
            claimed = claimed.len(),
            once = options.once,
            "update loop started"
        );

        // 2. New files as they arrive.
        let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
        let _watcher = if options.once {
            None
        } else {
            watch_new_files(&spool.new_dir(), events_tx)
        };
        let mut rescan = tokio::time::interval(options.rescan_interval);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rescan.tick().await;

        let mut summary = Summary::default();
        let mut finished = 0u64;
        let mut progress = if options.show_progress && options.once {
            Progress::for_backlog(
                (ready.len() + waiting.len()) as u64,
                std::io::stderr().is_terminal(),
            )
        } else {
            Progress::Quiet
        };
        let mut workers: JoinSet<(String, Step)> = JoinSet::new();
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut stopping = false;
        let mut reported_disabled = false;

        // 3. Dispatch until shutdown, or until the spool is empty in `once` mode.
        loop {
            let runtime = self.runtime.borrow().clone();
            let enabled = runtime.options.enabled;
            if !enabled && !reported_disabled {
                info!("updating is off (options.enabled: false); spool files stay where they are");
            }
            reported_disabled = !enabled;

            while !stopping && enabled && workers.len() < runtime.concurrency {
                let now = Instant::now();
                let next = match waiting.peek() {
                    Some(Reverse((due, _))) if *due <= now => {
                        waiting.pop().map(|Reverse((_, name))| name)
                    }
                    _ => None,
                };
                let file = match next {
                    Some(name) if in_flight.contains(&name) => continue,
                    Some(name) => match spool.claimed(&name) {
                        Ok(file) => file,
                        Err(error) => {
                            warn!(spool.file = %name, %error, "a claimed spool file disappeared; dropping it");
                            let _ = shared.states.remove(&name);
                            continue;
                        }
                    },
                    None => {
                        let Some(name) = ready.pop_first() else { break };
                        match spool.claim(&name) {
                            Ok(Some(file)) => {
                                let due = due_after_delay(&file, &runtime);
                                if due > Instant::now() {
                                    waiting.push(Reverse((due, file.name)));
                                    continue;
                                }
                                file
                            }
                            Ok(None) => continue,
                            Err(error) => {
                                error!(%error, "failed to claim a spool file; trying again at the next scan");
                                continue;
                            }
                        }
                    }
                };
                in_flight.insert(file.name.clone());
                let worker_shared = shared.clone();
                let worker_runtime = runtime.clone();
                workers.spawn(async move {
                    let name = file.name.clone();
                    let step = process(&worker_shared, &worker_runtime, file).await;
                    (name, step)
                });
            }
            shared
                .metrics
                .set_queue(ready.len(), waiting.len(), workers.len());

            if workers.is_empty()
                && (stopping
                    || (options.once && (ready.is_empty() && waiting.is_empty() || !enabled)))
            {
                if options.once && !stopping && enabled {
                    // Files delivered during the run are part of the backlog too.
                    ready.extend(spool.list_new()?);
                    if !ready.is_empty() {
                        continue;
                    }
                }
                break;
            }

            let next_due = waiting.peek().map(|Reverse((due, _))| *due);
            tokio::select! {
                Some(joined) = workers.join_next(), if !workers.is_empty() => {
                    let (name, step) = match joined {
                        Ok(result) => result,
                        Err(join_error) => {
                            error!(error = %join_error, "a message worker panicked; its spool file stays in cur/ for the next start");
                            continue;
                        }
                    };
                    in_flight.remove(&name);
                    match step {
                        Step::Done { outcome, mailbox } => {
                            summary.record(&outcome);
                            finished += 1;
                            progress.update(finished, &summary);
                            if let Some(report) = &options.finished {
                                let _ = report.send(Finished {
                                    spool_file: name,
                                    outcome,
                                    mailbox,
                                });
                            }
                        }
                        Step::Retry(at) => waiting.push(Reverse((at, name))),
                        Step::Gone => {}
                    }
                }
                Some(name) = events.recv() => {
                    if !in_flight.contains(&name) {
                        ready.insert(name);
                    }
                }
                _ = rescan.tick() => {
                    match spool.list_new() {
                        Ok(names) => ready.extend(names),
                        Err(error) => error!(%error, "failed to scan the spool"),
                    }
                }
                _ = sleep_until_due(next_due) => {}
                changed = self.runtime.changed() => {
                    if changed.is_err() {
                        debug!("the configuration source closed; keeping the last configuration");
                        // Without a sender, `changed` would return at once forever.
                        self.runtime = watch::channel(runtime.clone()).1;
                    }
                }
                _ = shutdown.changed(), if !stopping => {
                    if *shutdown.borrow() {
                        info!(in_flight = workers.len(), "stopping: finishing the messages in flight");
                        stopping = true;
                    }
                }
            }
        }

        progress.finish();
        info!(
            updated = summary.updated,
            kept_as_copy = summary.kept_as_copy,
            skipped = summary.skipped.values().sum::<u64>(),
            failed = summary.failed_total(),
            waiting = waiting.len(),
            "update loop stopped"
        );
        Ok(summary)
    }
}

/// When a newly claimed file may be processed: `options.delay` after its delivery.
fn due_after_delay(file: &ClaimedFile, runtime: &Runtime) -> Instant {
    let age = (Utc::now() - file.delivered_at)
        .to_std()
        .unwrap_or_default();
    Instant::now() + runtime.options.delay.saturating_sub(age)
}

fn instant_of(time: Option<chrono::DateTime<Utc>>) -> Instant {
    let wait = time
        .and_then(|time| (time - Utc::now()).to_std().ok())
        .unwrap_or_default();
    Instant::now() + wait
}

async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Watches `new/` and sends the name of every file that appears. Returns `None` when the
/// watcher cannot start; the periodic rescan then finds the files.
fn watch_new_files(
    dir: &Path,
    names: mpsc::UnboundedSender<String>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};

    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(event) if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_)) => {
            for path in event.paths {
                if let Some(name) = path.file_name().and_then(|name| name.to_str())
                    && !name.starts_with('.')
                {
                    let _ = names.send(name.to_owned());
                }
            }
        }
        Ok(_) => {}
        Err(error) => {
            warn!(%error, "spool watcher error; the periodic rescan still finds new files")
        }
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watcher {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!(dir = %dir.display(), %error, "failed to watch the spool; relying on the periodic rescan");
            None
        }
    }
}

/// Processes one claimed message and finishes, fails or reschedules it.
async fn process(shared: &Shared, runtime: &Runtime, file: ClaimedFile) -> Step {
    let span = info_span!(
        "message",
        spool.file = %file.name,
        message.id = tracing::field::Empty,
        mailbox = tracing::field::Empty,
    );
    async {
        let mut state = match shared.states.load(&file.name) {
            Ok(Some(state)) => state,
            Ok(None) => MessageState::new(&file.name, Utc::now()),
            Err(error) => {
                error!(%error, "failed to read the message state; starting afresh");
                MessageState::new(&file.name, Utc::now())
            }
        };
        if state.first_attempt_at.is_none() {
            state.first_attempt_at = Some(Utc::now());
        }
        let step = attempt(shared, runtime, &file, &mut state).await;
        settle(shared, &file, state, step)
    }
    .instrument(span)
    .await
}

/// The decision of one attempt, before the spool and state are updated.
#[derive(Debug)]
enum Verdict {
    /// The message ended; updates carry the time since delivery.
    Finished(Outcome, Option<Duration>),
    Retry {
        delay: Duration,
        reason: String,
    },
    Gone,
}

/// Runs one attempt of one message.
async fn attempt(
    shared: &Shared,
    runtime: &Runtime,
    file: &ClaimedFile,
    state: &mut MessageState,
) -> Verdict {
    // 1. The file.
    let bytes = match shared.spool.read_claimed(&file.name, MAX_SPOOL_FILE_BYTES) {
        Ok(ReadResult::Bytes(bytes)) => bytes,
        Ok(ReadResult::TooLarge { size }) => {
            return fail(
                "too_large",
                format!(
                    "the file has {size} bytes, more than the {MAX_SPOOL_FILE_BYTES} bytes a mailbox accepts"
                ),
            );
        }
        Ok(ReadResult::NotRegular { kind }) => {
            return fail(
                "not_a_regular_file",
                format!(
                    "the spool entry is a {kind}, not a regular file; writers deliver messages as files"
                ),
            );
        }
        Err(error) if error.source.kind() == std::io::ErrorKind::NotFound => {
            warn!("the spool file was removed from cur/ by someone else; dropping it");
            return Verdict::Gone;
        }
        Err(error) => return count_failure(state, "spool", error.to_string()),
    };
    let message = match SpoolMessage::parse(&bytes) {
        Ok(message) => message,
        Err(error) => return fail(error.label(), error.to_string()),
    };
    drop(bytes);
    let span = tracing::Span::current();
    span.record("message.id", message.original_message_id.as_str());
    state.source_key = Some(message.source_key());
    if !message.unknown_fields.is_empty() {
        debug!(fields = ?message.unknown_fields, "removed X-SIU- fields that the spool contract does not define");
    }
    if !runtime.options.enabled {
        return Verdict::Retry {
            delay: DISABLED_RECHECK,
            reason: "updating is off (options.enabled: false)".to_owned(),
        };
    }

    // 2. Split copies: one per message unless every copy is to be saved.
    if let Some(split) = message.split
        && split.index != 1
        && !runtime.options.update_all_split_copies
    {
        return skip(
            "split_copy_not_saved",
            format!(
                "split copy {split} is not saved: options.updateAllSplitCopies is false, so only copy 1 replaces the original"
            ),
        );
    }

    // 3. Whose Sent Items, and whether that mailbox is in scope.
    let Some(owner) = routing::owner(&message, runtime.options.send_as_mailbox) else {
        return fail(
            "missing_sender",
            "the message names no sender address".to_owned(),
        );
    };
    let mailbox = match runtime.recipients.resolve(&owner.address).await {
        Ok(Resolution::Mailbox(mailbox)) => mailbox,
        Ok(Resolution::NoMailbox(reason)) => {
            return skip(reason.label(), reason.describe(&owner.address));
        }
        Err(error) => {
            return count_failure(
                state,
                "lookup",
                format!(
                    "failed to look up {}: {}",
                    owner.address,
                    error_chain(&error)
                ),
            );
        }
    };
    span.record("mailbox", mailbox.address.as_str());
    state.mailbox = Some(mailbox.address.clone());
    let scope = match runtime.scope.get().await {
        Ok(scope) => scope,
        Err(problem) => {
            return count_failure(
                state,
                "scope",
                format!("the scope is unresolved: {problem}"),
            );
        }
    };
    match scope.decide(&mailbox) {
        Decision::In(reason) => {
            debug!(send_mode = %owner.mode, location = %mailbox.location, reason, "in scope");
        }
        Decision::Out(reason) => return skip("out_of_scope", reason),
    }

    // 4. The rewrite, one message per source key and a bounded number per mailbox.
    let store = match runtime.store(mailbox.location) {
        Ok(store) => store,
        Err(problem) => return count_failure(state, "no_path", problem),
    };
    let server_key = format!("server:{}", store.server_key());
    let mailbox_key = format!("mailbox:{}:{}", store.service(), mailbox.address);
    let _mailbox_permit = shared
        .mailboxes
        .acquire(&mailbox.address, runtime.per_mailbox_concurrency)
        .await;
    let _key_guard = shared.keys.lock(message.source_key()).await;
    let context = ReplaceContext {
        store: store.as_ref(),
        gates: &shared.gates,
        gate_keys: [&server_key, &mailbox_key],
        mailbox: &mailbox.address,
        keep_original: runtime.options.keep_original,
    };
    let result = replace(&context, &message, state).await;

    // 5. What the result means for the message.
    match result {
        Ok(ReplaceOutcome::Replaced) => {
            info!(send_mode = %owner.mode, "replaced the original with the processed message");
            updated(&message, file, false, false)
        }
        Ok(ReplaceOutcome::KeptOriginal) => {
            info!(send_mode = %owner.mode, "saved the processed message next to the kept original");
            updated(&message, file, true, false)
        }
        Ok(ReplaceOutcome::AlreadyReplaced { cleaned_up }) => {
            info!(
                cleaned_up,
                "the processed message was already in Sent Items"
            );
            updated(&message, file, runtime.options.keep_original, true)
        }
        Ok(ReplaceOutcome::OriginalMissing) => {
            state.phase = Phase::WaitingForOriginal;
            let waited = (Utc::now() - state.first_attempt_at.unwrap_or_else(Utc::now))
                .to_std()
                .unwrap_or_default();
            let timeout = runtime.options.original_wait_timeout;
            if waited >= timeout {
                return fail(
                    "original_not_found",
                    format!(
                        "the original {} did not reach the Sent Items of {} within {} (options.originalWaitTimeout)",
                        message.original_message_id,
                        mailbox.address,
                        humantime::format_duration(timeout)
                    ),
                );
            }
            let delay = ORIGINAL_BACKOFF
                .delay(state.original_searches.min(16))
                .min(timeout.saturating_sub(waited) + Duration::from_millis(100));
            state.original_searches = state.original_searches.saturating_add(1);
            debug!(
                ?delay,
                "the original is not in Sent Items yet; looking again later"
            );
            Verdict::Retry {
                delay,
                reason: "waiting for the original".to_owned(),
            }
        }
        Err(ReplaceError::Store(error)) => store_failure(
            shared,
            runtime,
            state,
            store.service(),
            &server_key,
            &mailbox_key,
            &mailbox.address,
            error,
        ),
    }
}

/// Decides how to go on after a failed request.
#[allow(clippy::too_many_arguments)]
fn store_failure(
    shared: &Shared,
    runtime: &Runtime,
    state: &mut MessageState,
    service: &'static str,
    server_key: &str,
    mailbox_key: &str,
    mailbox: &str,
    error: StoreError,
) -> Verdict {
    let code = error.code();
    let detail = error_chain(&error);
    match error.class() {
        ErrorClass::Throttled { retry_after, scope } => {
            state.throttled_attempts = state.throttled_attempts.saturating_add(1);
            let wait = retry_after
                .unwrap_or_else(|| THROTTLE_BACKOFF.delay(state.throttled_attempts.min(16)));
            let key = match scope {
                ThrottleScope::Server => server_key,
                ThrottleScope::Mailbox => mailbox_key,
            };
            if shared.gates.close(key, wait) {
                warn!(service, %code, ?wait, gate = key, "the server throttles; holding requests back");
            }
            shared.metrics.record_throttling(service);
            shared.metrics.record_retry("throttled");
            let until = shared.gates.opens_at(&[key]).unwrap_or_else(Instant::now);
            Verdict::Retry {
                delay: until.saturating_duration_since(Instant::now()),
                reason: detail,
            }
        }
        ErrorClass::Blocked if runtime.cloud.can_fall_back() => {
            if runtime.cloud.switch_to_graph() {
                warn!(
                    error = detail,
                    "Exchange Online rejected EWS for the application; switching cloud mailboxes to Microsoft Graph (mailAccess: auto)"
                );
            }
            Verdict::Retry {
                delay: Duration::ZERO,
                reason: detail,
            }
        }
        ErrorClass::MailboxNotFound => {
            // The mailbox may have moved since it was looked up; look it up afresh.
            runtime.recipients.forget(mailbox);
            count_failure(state, "mailbox_not_found", detail)
        }
        ErrorClass::Rejected => fail(&format!("rejected:{code}"), detail),
        ErrorClass::Blocked if service == "exchangeOnline" => {
            error!(
                error = detail,
                "Exchange Online rejected EWS for the application; add its client ID to EWSAllowedAppIDs, or set appRegistration.mailAccess to graph or auto and run siuctl apply"
            );
            count_failure(state, "ews_blocked", detail)
        }
        ErrorClass::Blocked => {
            error!(
                error = detail,
                "the EWS server returned HTTP 403; check that EWS is enabled for the service account (Get-CASMailbox) and on the server"
            );
            count_failure(state, "forbidden", detail)
        }
        ErrorClass::Denied => {
            error!(
                error = detail,
                "the server rejected the service account; check its credentials and its ApplicationImpersonation role"
            );
            count_failure(state, "denied", detail)
        }
        ErrorClass::Transient => count_failure(state, "transient", detail),
    }
}

/// Counts a failed attempt: retries with back-off, or fails after [`MAX_ATTEMPTS`].
fn count_failure(state: &mut MessageState, class: &'static str, detail: String) -> Verdict {
    state.attempts = state.attempts.saturating_add(1);
    if state.attempts >= MAX_ATTEMPTS {
        return fail(
            &format!("retries_exhausted:{class}"),
            format!(
                "gave up after {} attempts; last error: {detail}",
                state.attempts
            ),
        );
    }
    Verdict::Retry {
        delay: RETRY_BACKOFF.delay(state.attempts - 1),
        reason: detail,
    }
}

fn fail(reason: &str, detail: String) -> Verdict {
    Verdict::Finished(
        Outcome::Failed {
            reason: reason.to_owned(),
            detail,
        },
        None,
    )
}

fn skip(reason: &'static str, detail: String) -> Verdict {
    info!(reason, detail, "skipped");
    Verdict::Finished(Outcome::Skipped { reason, detail }, None)
}

fn updated(
    message: &SpoolMessage,
    file: &ClaimedFile,
    kept_original: bool,
    replay: bool,
) -> Verdict {
    let outcome = Outcome::Updated {
        kept_original,
        replay,
    };
    let since = message.received_at.unwrap_or(file.delivered_at);
    Verdict::Finished(outcome, (Utc::now() - since).to_std().ok())
}

/// Applies a verdict to the spool and the state, and turns it into a step for the
/// dispatcher.
fn settle(shared: &Shared, file: &ClaimedFile, mut state: MessageState, verdict: Verdict) -> Step {
    match verdict {
        Verdict::Finished(outcome, latency) => {
            let finished = match &outcome {
                Outcome::Failed { reason, detail } => {
                    error!(reason, detail, "failed; moving the spool file to failed/");
                    shared.spool.fail(&file.name, detail).map(drop)
                }
                _ => shared.spool.finish(&file.name),
            };
            if let Err(error) = finished {
                error!(%error, "failed to finish the spool file; retrying");
                return reschedule(shared, state, RETRY_BACKOFF.delay(0), error.to_string());
            }
            if let Err(error) = shared.states.remove(&file.name) {
                warn!(%error, "failed to delete the message state; the next start removes it");
            }
            shared.metrics.record(&outcome, latency);
            Step::Done {
                outcome,
                mailbox: state.mailbox,
            }
        }
        Verdict::Retry { delay, reason } => {
            state.last_error = Some(reason.clone());
            reschedule(shared, state, delay, reason)
        }
        Verdict::Gone => {
            let _ = shared.states.remove(&file.name);
            Step::Gone
        }
    }
}

fn reschedule(shared: &Shared, mut state: MessageState, delay: Duration, reason: String) -> Step {
    state.next_attempt_at =
        Some(Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default());
    if state.phase != Phase::WaitingForOriginal {
        warn!(
            attempts = state.attempts,
            throttled = state.throttled_attempts,
            ?delay,
            error = reason,
            "attempt failed; retrying"
        );
        shared.metrics.record_retry("error");
    }
    if let Err(error) = shared.states.save(&state, false) {
        warn!(%error, "failed to save the message state; the retry count starts over after a restart");
    }
    Step::Retry(Instant::now() + delay)
}

/// Semaphores that bound the messages processed at once per mailbox.
#[derive(Debug, Default)]
struct MailboxLimits {
    semaphores: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
}

impl MailboxLimits {
    async fn acquire(&self, mailbox: &str, limit: usize) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut semaphores = self.semaphores.lock().expect("mailbox limits lock");
            // Forget idle mailboxes so that the map does not grow with every sender.
            if semaphores.len() > 4096 {
                semaphores.retain(|_, (limit, semaphore)| {
                    Arc::strong_count(semaphore) > 1 || semaphore.available_permits() < *limit
                });
            }
            let entry = semaphores
                .entry(mailbox.to_owned())
                .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
            if entry.0 != limit {
                // A reconcile changed the limit; messages in flight keep their permits on
                // the old semaphore.
                *entry = (limit, Arc::new(Semaphore::new(limit)));
            }
            entry.1.clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("mailbox semaphores are never closed")
    }
}

/// One message per source key at a time, so that two spool files of one message (a
/// duplicate delivery) cannot both create a replacement.
#[derive(Debug, Default)]
struct KeyLocks {
    held: Mutex<HashSet<String>>,
    released: Notify,
}

impl KeyLocks {
    async fn lock(&self, key: String) -> KeyGuard<'_> {
        loop {
            let released = self.released.notified();
            if self
                .held
                .lock()
                .expect("key locks lock")
                .insert(key.clone())
            {
                return KeyGuard { locks: self, key };
            }
            released.await;
        }
    }
}

struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: String,
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        self.locks
            .held
            .lock()
            .expect("key locks lock")
            .remove(&self.key);
        self.locks.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use siu_specs::desired::{SendAsMailbox, UpdateOptions};

    use super::*;
    use crate::update::recipients::RecipientResolver;
    use crate::update::runtime::CloudPath;
    use crate::update::scope::ScopeResolver;
    use crate::update::state::MessageState;
    use crate::update::test_support::{FakeDirectory, MemoryStore, NoProbe};

    struct Fixture {
        _dir: tempfile::TempDir,
        spool: PathBuf,
        state: PathBuf,
        store: Arc<MemoryStore>,
    }

    impl Fixture {
        fn new(store: MemoryStore) -> Self {
            let dir = tempfile::tempdir().expect("temporary directory");
            let spool = dir.path().join("spool");
            let state = dir.path().join("state");
            Spool::open(&spool).expect("spool opens");
            Self {
                _dir: dir,
                spool,
                state,
                store: Arc::new(store),
            }
        }

        fn deliver(&self, name: &str, contents: &str) {
            std::fs::write(self.spool.join("new").join(name), contents).expect("delivers");
        }

        fn names(&self, folder: &str) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(self.spool.join(folder))
                .expect("lists")
                .map(|entry| {
                    entry
                        .expect("entry")
                        .file_name()
                        .into_string()
                        .expect("name")
                })
                .collect();
            names.sort();
            names
        }

        async fn run_once(&self, options: UpdateOptions) -> Summary {
            self.run_once_reporting(options, None).await
        }

        async fn run_once_reporting(
            &self,
            options: UpdateOptions,
            finished: Option<mpsc::UnboundedSender<Finished>>,
        ) -> Summary {
            let directory = FakeDirectory::default()
                .user("alice@lab.example", 1)
                .group("sales@lab.example");
            let runtime = Runtime {
                generation: 1,
                applied_at: Utc::now(),
                options,
                concurrency: 4,
                per_mailbox_concurrency: 1,
                on_premises: self.store.clone(),
                cloud: CloudPath::none("not in this test"),
                recipients: Arc::new(RecipientResolver::new(
                    Arc::new(directory),
                    Arc::new(NoProbe),
                    false,
                )),
                scope: ScopeResolver::new(
                    siu_specs::desired::Scope {
                        mode: siu_specs::desired::ScopeMode::All,
                        users: Vec::new(),
                        groups: Vec::new(),
                    },
                    Vec::new(),
                ),
            };
            let (_runtime_tx, runtime_rx) = watch::channel(Arc::new(runtime));
            let (_shutdown_tx, shutdown_rx) = watch::channel(false);
            let update_loop = UpdateLoop::new(
                &self.spool,
                &self.state,
                runtime_rx,
                Arc::new(Metrics::new()),
            )
            .expect("loop opens");
            let options = LoopOptions {
                once: true,
                finished,
                ..LoopOptions::default()
            };
            update_loop
                .run(options, shutdown_rx)
                .await
                .expect("loop runs")
        }
    }

    fn options() -> UpdateOptions {
        UpdateOptions {
            enabled: true,
            keep_original: false,
            update_all_split_copies: false,
            send_as_mailbox: SendAsMailbox::Submitter,
            delay: Duration::ZERO,
            original_wait_timeout: Duration::from_secs(60),
        }
    }

    fn message(from: &str, message_id: &str) -> String {
        format!(
            "X-SIU-Original-Message-ID: {message_id}\r\nFrom: {from}\r\nMessage-ID: {message_id}\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nbody and signature\r\n"
        )
    }

    #[tokio::test]
    async fn once_drains_every_kind_of_file() {
        let fixture = Fixture::new(MemoryStore::with_original(
            "orig",
            "<a@lab>",
            "2026-12-01T10:00:00Z",
            10,
        ));
        fixture.deliver("1.1_1.host", &message("alice@lab.example", "<a@lab>"));
        fixture.deliver("2.1_1.host", &message("sales@lab.example", "<b@lab>"));
        fixture.deliver("3.1_1.host", "not a message at all\r\n");
        fixture.deliver("4.1_1.host", &message("partner@example.net", "<d@lab>"));

        let summary = fixture.run_once(options()).await;

        assert_eq!(summary.updated, 1);
        assert_eq!(summary.skipped.get("sender_is_group"), Some(&1));
        assert_eq!(summary.skipped.get("sender_not_in_directory"), Some(&1));
        assert_eq!(summary.failed.get("not_a_message"), Some(&1));
        assert_eq!(fixture.store.ids(), ["created-1"]);
        assert!(fixture.names("new").is_empty());
        assert!(fixture.names("cur").is_empty());
        assert_eq!(fixture.names("failed"), ["3.1_1.host", "3.1_1.host.reason"]);
        let reason = std::fs::read_to_string(fixture.spool.join("failed/3.1_1.host.reason"))
            .expect("reason file");
        assert!(reason.contains("not an RFC 5322 message"), "{reason}");
        assert!(
            std::fs::read_dir(fixture.state.join("messages"))
                .expect("state folder")
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn finished_messages_are_reported_by_file() {
        let fixture = Fixture::new(MemoryStore::with_original(
            "orig",
            "<a@lab>",
            "2026-12-01T10:00:00Z",
            10,
        ));
        fixture.deliver("1.1_1.host", &message("alice@lab.example", "<a@lab>"));
        fixture.deliver("2.1_1.host", &message("sales@lab.example", "<b@lab>"));
        fixture.deliver("3.1_1.host", "not a message at all\r\n");
        let (sender, mut receiver) = mpsc::unbounded_channel();

        let summary = fixture.run_once_reporting(options(), Some(sender)).await;

        let mut finished = Vec::new();
        while let Ok(message) = receiver.try_recv() {
            finished.push(message);
        }
        finished.sort_by(|a, b| a.spool_file.cmp(&b.spool_file));
        assert_eq!(finished.len() as u64, summary.total());
        assert_eq!(finished[0].spool_file, "1.1_1.host");
        assert_eq!(finished[0].mailbox.as_deref(), Some("alice@lab.example"));
        assert_eq!(
            finished[0].outcome,
            Outcome::Updated {
                kept_original: false,
                replay: false
            }
        );
        assert_eq!(finished[1].spool_file, "2.1_1.host");
        assert!(
            matches!(
                finished[1].outcome,
                Outcome::Skipped {
                    reason: "sender_is_group",
                    ..
                }
            ),
            "{:?}",
            finished[1].outcome
        );
        assert_eq!(finished[1].mailbox, None);
        assert_eq!(finished[2].spool_file, "3.1_1.host");
        assert!(
            matches!(&finished[2].outcome, Outcome::Failed { reason, .. } if reason == "not_a_message"),
            "{:?}",
            finished[2].outcome
        );
    }

    #[tokio::test]
    async fn claimed_file_of_a_crash_is_finished() {
        // A crash after the replacement was created and before the original was deleted.
        let store = MemoryStore::with_original("orig", "<c@lab>", "2026-12-01T10:00:00Z", 10);
        store
            .items
            .lock()
            .unwrap()
            .push(crate::update::store::FoundItem {
                id: "replacement".into(),
                internet_message_id: Some("<c@lab>".into()),
                sent: Some("2026-12-01T10:00:00Z".parse().expect("time")),
                delivered: None,
                size: Some(20),
                source_key: Some("<c@lab>".into()),
                marked_original: Some("<c@lab>".into()),
                replaced_item: None,
            });
        let fixture = Fixture::new(store);
        std::fs::write(
            fixture.spool.join("cur/5.1_1.host"),
            message("alice@lab.example", "<c@lab>"),
        )
        .expect("writes");
        let mut state = MessageState::new("5.1_1.host", Utc::now());
        state.phase = Phase::Creating;
        state.original_item = Some("orig".into());
        StateStore::open(&fixture.state)
            .expect("state opens")
            .save(&state, true)
            .expect("state saves");

        let summary = fixture.run_once(options()).await;

        assert_eq!(summary.updated, 1);
        assert_eq!(summary.replayed, 1);
        assert_eq!(fixture.store.ids(), ["replacement"]);
        assert_eq!(*fixture.store.creates.lock().unwrap(), 0);
        assert!(fixture.names("cur").is_empty());
    }

    #[tokio::test]
    async fn disabled_updating_leaves_the_spool_alone() {
        let fixture = Fixture::new(MemoryStore::default());
        fixture.deliver("6.1_1.host", &message("alice@lab.example", "<e@lab>"));

        let summary = fixture
            .run_once(UpdateOptions {
                enabled: false,
                ..options()
            })
            .await;

        assert_eq!(summary.total(), 0);
        assert_eq!(fixture.names("new"), ["6.1_1.host"]);
        assert!(fixture.names("cur").is_empty());
    }

    #[tokio::test]
    async fn missing_original_fails_after_the_wait() {
        let fixture = Fixture::new(MemoryStore::default());
        fixture.deliver("7.1_1.host", &message("alice@lab.example", "<never@lab>"));

        let summary = fixture
            .run_once(UpdateOptions {
                original_wait_timeout: Duration::ZERO,
                ..options()
            })
            .await;

        assert_eq!(summary.failed.get("original_not_found"), Some(&1));
        let reason = std::fs::read_to_string(fixture.spool.join("failed/7.1_1.host.reason"))
            .expect("reason file");
        assert!(
            reason.contains("<never@lab> did not reach the Sent Items of alice@lab.example"),
            "{reason}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn late_original_is_replaced_when_it_arrives() {
        let fixture = Fixture::new(MemoryStore::default());
        fixture.deliver("8.1_1.host", &message("alice@lab.example", "<late@lab>"));
        let store = fixture.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            store.add_original("late-orig", "<late@lab>", "2026-12-01T10:00:00Z", 10);
        });

        let summary = fixture.run_once(options()).await;

        assert_eq!(summary.updated, 1);
        assert_eq!(fixture.store.ids(), ["created-1"]);
    }

    #[tokio::test]
    async fn duplicate_spool_files_rewrite_once() {
        let fixture = Fixture::new(MemoryStore::with_original(
            "orig",
            "<dup@lab>",
            "2026-12-01T10:00:00Z",
            10,
        ));
        for name in ["9.1_1.host", "9.1_2.host", "9.1_3.host"] {
            fixture.deliver(name, &message("alice@lab.example", "<dup@lab>"));
        }

        let summary = fixture.run_once(options()).await;

        assert_eq!(summary.updated, 3);
        assert_eq!(summary.replayed, 2);
        assert_eq!(*fixture.store.creates.lock().unwrap(), 1);
        assert_eq!(fixture.store.ids(), ["created-1"]);
    }
}
