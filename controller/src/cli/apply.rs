//! `siuctl apply`: plans (or loads a saved plan), requests confirmation, makes the changes,
//! checks the result and records it in the state directory.

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};

use super::exit::Exit;
use super::output;
use super::spec_args::{load_spec, runtime};
use crate::http::ResolveOverride;
use crate::providers::entra::{ReplicationPolicy, ReplicationWait};
use crate::reconcile::apply::schedule::{StepOutcome, StepReport};
use crate::reconcile::apply::{ApplyOutcome, apply};
use crate::reconcile::context::{Context, Options};
use crate::reconcile::plan::{ActionKind, PLAN_FORMAT, Plan};
use crate::reconcile::status::ApplyResult;
use crate::reconcile::verify::CheckOutcome;

/// Arguments of `siuctl apply`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["file", "plan"]))]
pub struct ApplyArgs {
    /// The spec file: plan afresh and apply.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: Option<PathBuf>,

    /// A plan saved with `siuctl plan --out FILE`: apply exactly it, if the spec and the
    /// live state are still what it was made from.
    #[arg(value_name = "PLANFILE")]
    pub plan: Option<PathBuf>,

    /// Applies without asking for confirmation.
    #[arg(long)]
    pub auto_approve: bool,

    /// Connects to HOST at ADDR instead of the address DNS returns. Repeat for several
    /// hosts.
    #[arg(long, value_name = "HOST:ADDR")]
    pub resolve: Vec<ResolveOverride>,

    /// How long to wait for a new application, consent or role assignment to reach every
    /// server before the check fails, for example `3m` or `90s`.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime::parse_duration)]
    pub replication_timeout: Duration,
}

/// Applies and prints what happened.
pub fn run(args: ApplyArgs) -> anyhow::Result<Exit> {
    // 1. The spec, and the saved plan when there is one.
    let saved = match &args.plan {
        Some(path) => Some(read_plan(path)?),
        None => None,
    };
    let spec_path = match (&saved, &args.file) {
        (Some(saved), _) => saved.spec_path.clone(),
        (None, Some(file)) => file.clone(),
        (None, None) => bail!("give a spec with -f SPEC or a saved plan"),
    };
    let desired = match load_spec(&spec_path)? {
        Ok(desired) => desired,
        Err(exit) => return Ok(exit),
    };
    let ctx = Context::new(
        desired,
        Options {
            resolve: args.resolve.clone(),
            replication: ReplicationPolicy {
                timeout: args.replication_timeout,
                ..ReplicationPolicy::default()
            },
            on_replication_wait: Some(Arc::new(|wait: &ReplicationWait| {
                let _ = output::print(&format!("  {wait}\n"));
            })),
            ..Options::default()
        },
    );

    // 2. The lock on the state directory, held until apply ends, so that a second apply of
    // this spec cannot plan the same creations, such as a second Entra application.
    let state_dir = &ctx.desired.update_loop.state_dir;
    let lock_path = state_dir.join("apply.lock");
    let _lock = crate::fsutil::try_lock(&lock_path)
        .with_context(|| format!("failed to lock {}", lock_path.display()))?
        .with_context(|| {
            format!(
                "another siuctl apply is running for the state directory {}; wait for it to finish and run apply again",
                state_dir.display()
            )
        })?;

    // 3. The plan: afresh, or the saved one while it still matches.
    let runtime = runtime()?;
    let (fresh, observed) = runtime.block_on(crate::reconcile::plan(&ctx));
    let mut approved = args.auto_approve;
    let plan = match saved {
        Some(saved) if is_current(&saved, &fresh) => {
            output::print(&saved.render()).context("failed to write to standard output")?;
            saved
        }
        Some(saved) => {
            let mut text = format!(
                "The saved plan {} no longer matches: {} changed since it was made at {}. This is a fresh plan:\n\n",
                args.plan
                    .as_deref()
                    .unwrap_or(spec_path.as_path())
                    .display(),
                saved.stale_reason(&fresh),
                saved.created.format("%Y-%m-%d %H:%M:%S UTC"),
            );
            text.push_str(&fresh.render());
            output::print(&text).context("failed to write to standard output")?;
            // The approval on the command line was for the saved plan, not this one.
            if !confirm("Apply the fresh plan instead?")? {
                output::print(
                    "Not applied. Run `siuctl plan --out FILE` again and review the new plan.\n",
                )?;
                return Ok(Exit::Failure);
            }
            approved = true;
            fresh
        }
        None => {
            output::print(&fresh.render()).context("failed to write to standard output")?;
            fresh
        }
    };

    // 4. Confirmation, for changes.
    if plan.has_changes() && !approved && !confirm("Apply these changes?")? {
        output::print("Not applied.\n")?;
        return Ok(Exit::Failure);
    }

    // 5. The steps, the checks and the state files.
    output::print("\nApplying:\n")?;
    let mut on_step = |report: &StepReport| {
        let _ = output::print(&render_step(report));
    };
    let outcome = runtime.block_on(apply(&ctx, &plan, &observed, &mut on_step))?;
    output::print(&render_outcome(&plan, &outcome, &ctx))
        .context("failed to write to standard output")?;
    Ok(match outcome.result {
        ApplyResult::Applied => Exit::Success,
        ApplyResult::Degraded | ApplyResult::Failed => Exit::Failure,
    })
}

fn read_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the saved plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan saved by `siuctl plan --out`",
            path.display()
        )
    })?;
    if plan.format != PLAN_FORMAT {
        bail!(
            "the saved plan {} has format {}, this siuctl reads format {PLAN_FORMAT}; plan again with this siuctl",
            path.display(),
            plan.format
        );
    }
    Ok(plan)
}

/// Tells whether a saved plan still describes the spec and the live state, and makes the
/// changes that siuctl plans for them. Apply runs the saved plan's steps as written, so a
/// plan file edited by hand must not pass.
fn is_current(saved: &Plan, fresh: &Plan) -> bool {
    saved.desired_fingerprint == fresh.desired_fingerprint
        && saved.live_fingerprint == fresh.live_fingerprint
        && saved.same_changes(fresh)
}

/// Asks on the terminal; without one, refuses with the reason.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "refusing to apply without confirmation: standard input is not a terminal; review the plan and run again with --auto-approve"
        );
    }
    output::print(&format!("\n{question} Only 'yes' is accepted: "))?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("failed to read the confirmation from standard input")?;
    Ok(answer.trim() == "yes")
}

pub(crate) fn render_step(report: &StepReport) -> String {
    let label = format!("{} {}", report.resource.name(), report.target);
    let step = report.step.describe();
    match &report.outcome {
        StepOutcome::Done { detail } => format!("  done     {label}: {step} ({detail})\n"),
        StepOutcome::Warning { detail } => format!("  warning  {label}: {step}: {detail}\n"),
        StepOutcome::Failed(diagnosis) => format!(
            "  failed   {label}: {step}\n           {}\n           remedy: {}\n",
            diagnosis.message, diagnosis.remedy
        ),
        StepOutcome::Skipped { reason } => format!("  skipped  {label}: {step}: {reason}\n"),
    }
}

pub(crate) fn render_outcome(plan: &Plan, outcome: &ApplyOutcome, ctx: &Context) -> String {
    let mut text = String::new();
    if outcome.steps.is_empty() {
        text.push_str("  nothing to change\n");
    }

    let not_applied: Vec<_> = plan
        .actions
        .iter()
        .filter(|action| matches!(action.kind, ActionKind::Blocked | ActionKind::Unknown))
        .collect();
    if !not_applied.is_empty() {
        text.push_str("\nNot applied:\n");
        for action in not_applied {
            let _ = writeln!(
                text,
                "  {}  {} {}: {}",
                action.kind.word(),
                action.resource.name(),
                action.target,
                action.reason
            );
            if let Some(remedy) = &action.remedy {
                let _ = writeln!(text, "           remedy: {remedy}");
            }
        }
    }

    text.push_str("\nChecks:\n");
    for check in &outcome.verification.checks {
        let name = format!("{:?}", check.condition);
        match &check.outcome {
            CheckOutcome::Passed { detail } => {
                let _ = writeln!(text, "  ok       {name}: {detail}");
            }
            CheckOutcome::Failed(diagnosis) => {
                let _ = writeln!(
                    text,
                    "  failed   {name}: {}\n           remedy: {}",
                    diagnosis.message, diagnosis.remedy
                );
            }
            CheckOutcome::Unknown { reason } => {
                let _ = writeln!(text, "  unknown  {name}: {reason}");
            }
        }
    }

    let state_dir = &ctx.desired.update_loop.state_dir;
    let _ = writeln!(
        text,
        "\nApply {}. Status written to {}.",
        match outcome.result {
            ApplyResult::Applied => "complete: every step and check succeeded",
            ApplyResult::Degraded =>
                "degraded: the rest is applied, fix what is listed above and run apply again",
            ApplyResult::Failed =>
                "failed: nothing could be applied, fix what is listed above and run apply again",
        },
        crate::reconcile::status::StatusFile::path(state_dir).display()
    );
    if let Some(path) = &outcome.applied {
        let _ = writeln!(
            text,
            "The update loop's configuration is written to {}.",
            path.display()
        );
    }
    text
}
