//! `siuctl demo`: the whole product on one machine, with nothing to set up beyond the build.
//!
//! The demo starts the lab in this process and writes a hybrid spec wired to it. It validates,
//! plans and applies the spec through the same code as `siuctl validate`, `plan` and `apply`.
//! Then it sends the bundled messages of `examples/messages/` through the lab's transport and
//! runs the update loop until the spool is empty, as `siuctl run --once` does. It ends with the
//! outcome of each message and the commands that show the mailboxes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use siu_lab::external::ExternalDirectory;
use siu_lab::{Fixture, Lab, LabConfig};
use tokio::sync::{mpsc, watch};

use super::exit::Exit;
use super::output::{self, OutputFormat};
use crate::demo::messages::{Delivery, MESSAGES};
use crate::demo::report::{MessageOutcome, Report, Sent};
use crate::providers::entra::{ReplicationPolicy, ReplicationWait};
use crate::reconcile::applied::AppliedConfig;
use crate::reconcile::apply::apply;
use crate::reconcile::apply::schedule::StepReport;
use crate::reconcile::context::{Context, Options};
use crate::reconcile::status::ApplyResult;
use crate::update::metrics::Metrics;
use crate::update::{Finished, LoopOptions, Summary, UpdateLoop, runtime};

/// The number of numbered steps the demo prints.
const STEPS: usize = 6;

/// How long apply waits for new Entra objects to replicate: the default of `siuctl apply`.
/// The demo's lab replicates at once, so the first check normally succeeds.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(180);

/// Arguments of `siuctl demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The lab directory, kept afterwards with the lab's saved state. It must be empty or
    /// absent. Without it, the demo uses a temporary directory and removes it at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Keep the lab serving after the results, until Ctrl-C or SIGTERM, so that
    /// `siuctl lab sent-items --dir DIR` can show the mailboxes from another shell.
    #[arg(long)]
    pub keep_running: bool,

    /// Keep accounts in an external Active Directory described by this file of `SIU_AD_*`
    /// variables, as `scripts/samba-ad.sh start` writes it. The lab seeds its users and
    /// groups there, and the spec's directory and service account point at it.
    #[arg(long, value_name = "FILE")]
    pub external_directory_env: Option<PathBuf>,

    /// Format of the result on standard output. With `json`, the steps go to standard error
    /// and standard output gets one JSON report.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs the demo. Exits with 0 when every step succeeded and the update loop ended every
/// bundled message (updated, skipped or failed), and with 1 otherwise.
pub fn run(args: DemoArgs) -> anyhow::Result<Exit> {
    super::spec_args::runtime()?.block_on(demo(args))
}

/// The writer of the demo's progress: standard output, or standard error when standard output
/// carries the JSON report.
#[derive(Debug, Clone, Copy)]
struct Narrator {
    to_stderr: bool,
}

impl Narrator {
    fn say(self, text: &str) {
        if self.to_stderr {
            eprint!("{text}");
        } else {
            // A closed standard output is reported when the results are printed.
            let _ = output::print(text);
        }
    }

    fn step(self, number: usize, title: &str) {
        self.say(&format!("\n[{number}/{STEPS}] {title}\n"));
    }
}

async fn demo(args: DemoArgs) -> anyhow::Result<Exit> {
    let narrator = Narrator {
        to_stderr: args.output == OutputFormat::Json,
    };
    let (dir, temporary) = lab_dir(args.dir.as_deref())?;
    tracing::info!(dir = %dir.display(), "demo started");

    // 1. The lab.
    narrator.step(1, &format!("Starting the lab in {}", dir.display()));
    let external = match &args.external_directory_env {
        Some(path) => Some(ExternalDirectory::from_env_file(path)?),
        None => None,
    };
    let lab = start_lab(&dir, external, narrator).await?;

    // 2 to 4. The spec, its plan and apply.
    let (spec, ctx) = set_up(&dir, lab.state().external.is_some(), narrator).await?;

    // 5. The messages.
    let spool = ctx.desired.update_loop.spool_dir.clone();
    narrator.step(
        5,
        &format!(
            "Sending the {} bundled messages from examples/messages/",
            MESSAGES.len()
        ),
    );
    let file_width = MESSAGES.iter().map(|m| m.file.len()).max().unwrap_or(0);
    let sent = crate::demo::send_all(lab.state(), &spool, &mut |sent, notes| {
        narrator.say(&describe_sent(sent, notes, file_width));
    })?;

    // 6. The update loop.
    narrator.step(
        6,
        &format!(
            "Running the update loop until the spool is empty: siuctl run -f {} --once",
            spec.display()
        ),
    );
    let (summary, finished) = run_update_loop(&ctx).await?;

    // The results.
    let directory = match &lab.state().external {
        Some(client) => client.directory().url.clone(),
        None => lab.endpoints().ldaps.to_string(),
    };
    let report = Report::new(dir.clone(), spec, directory, &sent, finished, summary);
    let hints = look_hints(&report, &dir, args.keep_running, temporary.is_some());
    print_results(&report, &hints, args.output, narrator)?;

    // The end: serve on request, then save the lab's state.
    if args.keep_running {
        let signal = super::lab::shutdown_signal().await?;
        narrator.say(&format!("stopping the lab ({signal})\n"));
    }
    lab.stop()
        .await
        .with_context(|| format!("failed to save the lab state in `{}`", dir.display()))?;
    drop(temporary);
    tracing::info!(
        unfinished = report.unfinished(),
        total = report.messages.len(),
        "demo finished"
    );
    Ok(if report.unfinished() == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Writes and validates the demo spec, then plans and applies it as `siuctl plan` and
/// `siuctl apply --auto-approve` do. Returns the spec's path and the context it was applied
/// with.
async fn set_up(
    dir: &Path,
    external: bool,
    narrator: Narrator,
) -> anyhow::Result<(PathBuf, Context)> {
    // 2. The spec.
    narrator.step(2, "Writing and validating the spec");
    let spec = crate::demo::spec::write(&dir.join("specs"), external)
        .context("failed to write the demo spec")?;
    let desired = match siu_specs::load(&spec) {
        Ok(desired) => desired,
        Err(error) => bail!(
            "the demo spec is invalid:\n{}",
            output::render_diagnostics(&error.diagnostics(&spec))
        ),
    };
    narrator.say(&format!(
        "  {}: valid\n  It is the lab's hybrid spec with scope allExcept {}, so that one sender \
         is out of scope.\n",
        spec.display(),
        crate::demo::spec::EXCLUDED_GROUP
    ));

    // 3. The plan.
    narrator.step(3, &format!("Planning: siuctl plan -f {}", spec.display()));
    let ctx = Context::new(
        desired,
        Options {
            replication: ReplicationPolicy {
                timeout: REPLICATION_TIMEOUT,
                ..ReplicationPolicy::default()
            },
            on_replication_wait: Some(Arc::new(move |wait: &ReplicationWait| {
                narrator.say(&format!("  {wait}\n"));
            })),
            ..Options::default()
        },
    );
    let (plan, observed) = crate::reconcile::plan(&ctx).await;
    narrator.say(&plan.render());
    if !plan.is_clean() {
        bail!("the plan has actions that apply cannot take (see above); the demo stops here");
    }

    // 4. Apply.
    narrator.step(
        4,
        &format!(
            "Applying: siuctl apply -f {} --auto-approve",
            spec.display()
        ),
    );
    let mut on_step = |report: &StepReport| narrator.say(&super::apply::render_step(report));
    let outcome = apply(&ctx, &plan, &observed, &mut on_step).await?;
    narrator.say(&super::apply::render_outcome(&plan, &outcome, &ctx));
    if outcome.result != ApplyResult::Applied {
        bail!("apply did not complete (see above); the demo stops here");
    }

    Ok((spec, ctx))
}

/// Prints the results on standard output, as text or as one JSON document, and the hints
/// where the narration goes.
fn print_results(
    report: &Report,
    hints: &str,
    format: OutputFormat,
    narrator: Narrator,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {
            let mut text = format!("\nResults:\n\n{}", report.render_messages());
            text.push_str("\nTotals:\n\n");
            for line in report.summary.render_table().lines() {
                text.push_str(&format!("  {line}\n"));
            }
            text.push_str(hints);
            output::print(&text).context("failed to write the results to standard output")?;
        }
        OutputFormat::Json => {
            let mut json = serde_json::to_string_pretty(report)
                .context("failed to encode the results as JSON")?;
            json.push('\n');
            output::print(&json).context("failed to write the results to standard output")?;
            narrator.say(hints);
        }
    }
    Ok(())
}

/// Returns the lab directory, and the temporary directory to remove at the end when none
/// was given. A given directory must be empty or absent, because the lab resumes a saved
/// state and the demo needs a fresh organization.
fn lab_dir(dir: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let Some(dir) = dir else {
        let temporary = tempfile::Builder::new()
            .prefix("siuctl-demo-")
            .tempdir()
            .context("failed to create a temporary lab directory (give one with --dir DIR)")?;
        return Ok((temporary.path().to_path_buf(), Some(temporary)));
    };
    let dir = std::path::absolute(dir)
        .with_context(|| format!("invalid lab directory `{}`", dir.display()))?;
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "the lab directory `{}` is not empty: the demo needs a fresh organization \
                     (give a new --dir, or remove this one)",
                    dir.display()
                );
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("failed to read the lab directory `{}`", dir.display()));
        }
    }
    Ok((dir, None))
}

/// Starts the lab with the default organization in `dir`, seeding `external` first when
/// given, and prints where it listens.
async fn start_lab(
    dir: &Path,
    external: Option<ExternalDirectory>,
    narrator: Narrator,
) -> anyhow::Result<Lab> {
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.to_path_buf());
    // The generated specs run `siuctl lab exchange-shell` as their management shell.
    config.siuctl = std::env::current_exe().ok();
    if let Some(directory) = external {
        narrator.say(&format!(
            "  seeding {} below {} with the lab's users and groups\n",
            directory.url,
            directory.seed_root()
        ));
        config.external_directory = Some(directory);
        config.seed_external_directory = true;
    }
    let lab = Lab::start(config)
        .await
        .with_context(|| format!("failed to start the lab in `{}`", dir.display()))?;
    let schema = dir.join("specs").join("siu-v1.schema.json");
    crate::fsutil::write_atomic(&schema, siu_specs::schema_json().as_bytes(), false)
        .with_context(|| format!("failed to write the spec schema `{}`", schema.display()))?;

    let endpoints = lab.endpoints();
    let directory = match &lab.state().external {
        Some(client) => format!(
            "{} (external; the lab's EWS checks passwords there)",
            client.directory().url
        ),
        None => format!("{} (the lab's own)", endpoints.ldaps),
    };
    let mut text = String::new();
    for (name, value) in [
        ("Entra token endpoint", endpoints.authority_host.to_string()),
        ("Microsoft Graph", endpoints.graph.to_string()),
        ("EWS, on-premises", endpoints.ews.to_string()),
        (
            "EWS, Exchange Online",
            endpoints.exchange_online_ews.to_string(),
        ),
        ("Active Directory", directory),
    ] {
        text.push_str(&format!("  {name:<22} {value}\n"));
    }
    if let Some(report) = lab.seed_report() {
        text.push_str(&format!("  {:<22} {report}\n", "seeded"));
    }
    narrator.say(&text);
    Ok(lab)
}

/// Describes one sent message in a line, with the transport's notes below it.
fn describe_sent(sent: &Sent, notes: &[String], file_width: usize) -> String {
    let file = sent.message.file;
    let mut text = match (sent.message.delivery, &sent.original_mailbox) {
        (Delivery::Transport { from }, Some(mailbox)) => format!(
            "  {file:<file_width$}  from {from}: original in the Sent Items of {mailbox}, \
             processed copy in the spool\n"
        ),
        (Delivery::Transport { from }, None) => format!(
            "  {file:<file_width$}  from {from}: no original, processed copy in the spool\n"
        ),
        (Delivery::AsIs, _) => format!(
            "  {file:<file_width$}  written to the spool as is ({})\n",
            sent.message.case
        ),
    };
    for note in notes {
        text.push_str(&format!("  {:file_width$}    note: {note}\n", ""));
    }
    text
}

/// Runs the update loop with the configuration that apply recorded until the spool is
/// empty, and returns the tally and each finished message.
async fn run_update_loop(ctx: &Context) -> anyhow::Result<(Summary, Vec<Finished>)> {
    let state_dir = &ctx.desired.update_loop.state_dir;
    let applied = AppliedConfig::load(state_dir)
        .with_context(|| {
            format!(
                "failed to read the applied configuration in {}",
                state_dir.display()
            )
        })?
        .with_context(|| format!("apply recorded no configuration in {}", state_dir.display()))?;
    let (first, _connections) = runtime::build(&applied, None, 1)
        .await
        .context("failed to set up the update loop")?;

    // The senders stay alive until the loop returns, so that it keeps this configuration
    // and runs until the spool is empty.
    let (_runtime_tx, runtime_rx) = watch::channel(Arc::new(first));
    let (_shutdown_tx, shutdown_rx) = watch::channel(false);
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel();
    let update_loop = UpdateLoop::new(
        &applied.desired.update_loop.spool_dir,
        state_dir,
        runtime_rx,
        Arc::new(Metrics::new()),
    )?;
    let options = LoopOptions {
        once: true,
        show_progress: true,
        finished: Some(finished_tx),
        ..LoopOptions::default()
    };
    let summary = update_loop.run(options, shutdown_rx).await?;

    let mut finished = Vec::new();
    while let Ok(message) = finished_rx.try_recv() {
        finished.push(message);
    }
    Ok((summary, finished))
}

/// Tells how to look at the Sent Items of the mailboxes afterwards.
fn look_hints(report: &Report, dir: &Path, keep_running: bool, temporary: bool) -> String {
    let mailbox = report
        .messages
        .iter()
        .find(|message| matches!(message.outcome, MessageOutcome::Updated { .. }))
        .and_then(|message| message.mailbox.clone())
        .unwrap_or_else(|| "alice@lab.example".to_owned());
    let dir = dir.display();
    let sent_items = format!("siuctl lab sent-items --dir {dir} --mailbox {mailbox}");
    let mut text = String::from("\n");
    if keep_running {
        text.push_str(&format!(
            "The lab keeps serving until Ctrl-C or SIGTERM. Look at a mailbox's Sent Items from \
             another shell:\n\n  {sent_items}\n"
        ));
    } else if temporary {
        text.push_str(&format!(
            "The lab directory was temporary and is removed now. To look at a mailbox's Sent \
             Items afterwards, keep the lab running:\n\n  siuctl demo --dir DIR --keep-running\n  \
             siuctl lab sent-items --dir DIR --mailbox {mailbox}   # from another shell\n"
        ));
    } else {
        text.push_str(&format!(
            "The lab stopped and saved its state in {dir}/state.json. To look at a mailbox's \
             Sent Items, start the lab again on that state:\n\n  siuctl lab up --dir {dir} &\n  \
             {sent_items}\n"
        ));
    }
    if !temporary {
        text.push_str(&format!(
            "\nItems that siuctl rewrote show `rewritten: yes` and the sender's signature. \
             Failed spool files stay in {dir}/spool/failed/, each next to its .reason file.\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_dir_rejects_a_directory_with_files() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("state.json"), "{}").expect("a file is written");

        let error = lab_dir(Some(dir.path())).expect_err("a used directory is rejected");

        assert!(format!("{error:#}").contains("is not empty"), "{error:#}");
    }

    #[test]
    fn lab_dir_accepts_an_absent_directory() {
        let parent = tempfile::tempdir().expect("a temporary directory");
        let dir = parent.path().join("lab");

        let (chosen, temporary) = lab_dir(Some(&dir)).expect("an absent directory is accepted");

        assert_eq!(chosen, dir);
        assert!(temporary.is_none());
    }
}
