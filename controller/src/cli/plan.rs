//! `siuctl plan`: reads the live state and shows what `apply` would change, and why.

use std::path::PathBuf;

use anyhow::Context as _;

use super::exit::Exit;
use super::output::{self, OutputFormat};
use super::spec_args::{SpecArgs, runtime};
use crate::reconcile::context::Options;
use crate::reconcile::plan::Plan;

/// Arguments of `siuctl plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub spec: SpecArgs,

    /// Format of the plan on standard output.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Also saves the plan to FILE, for `siuctl apply FILE`. The file contains no secret.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Exits with 0 when there is nothing to change, 2 when the plan has changes, and 1
    /// when a read failed, an action is blocked or the command failed. Without it, the exit
    /// code is 0 unless a read failed or an action is blocked.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// Plans and prints the plan.
pub fn run(args: PlanArgs) -> anyhow::Result<Exit> {
    let ctx = match args.spec.context(Options::default())? {
        Ok(ctx) => ctx,
        Err(exit) => return Ok(exit),
    };
    let (plan, _) = runtime()?.block_on(crate::reconcile::plan(&ctx));

    if let Some(path) = &args.out {
        save_plan(&plan, path)?;
    }
    let text = match args.output {
        OutputFormat::Text => {
            let mut text = plan.render();
            if let Some(path) = &args.out {
                text.push_str(&format!(
                    "\nSaved the plan to {}. Apply exactly this plan with: siuctl apply {}\n",
                    path.display(),
                    path.display()
                ));
            }
            text
        }
        OutputFormat::Json => plan_json(&plan)?,
    };
    output::print(&text).context("failed to write the plan to standard output")?;
    Ok(exit_code(&plan, args.detailed_exitcode))
}

/// Serializes the plan as pretty JSON with a final line break.
pub fn plan_json(plan: &Plan) -> anyhow::Result<String> {
    let mut json = serde_json::to_string_pretty(plan).context("failed to serialize the plan")?;
    json.push('\n');
    Ok(json)
}

fn save_plan(plan: &Plan, path: &std::path::Path) -> anyhow::Result<()> {
    let json = plan_json(plan)?;
    crate::fsutil::write_atomic(path, json.as_bytes(), false)
        .with_context(|| format!("failed to save the plan to {}", path.display()))
}

/// Returns the exit code of a plan, as `--detailed-exitcode` documents it.
pub fn exit_code(plan: &Plan, detailed: bool) -> Exit {
    if !plan.is_clean() {
        Exit::Failure
    } else if detailed && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    }
}
