//! `siuctl export`: writes the live configuration as a spec to standard output.

use anyhow::Context as _;

use super::exit::Exit;
use super::output;
use super::spec_args::{SpecArgs, runtime};
use crate::reconcile::context::Options;
use crate::reconcile::export::export;

/// Arguments of `siuctl export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The spec whose connection settings and secret references the export uses.
    #[command(flatten)]
    pub spec: SpecArgs,
}

/// Reads the live state and prints it as a spec.
pub fn run(args: ExportArgs) -> anyhow::Result<Exit> {
    let ctx = match args.spec.context(Options::default())? {
        Ok(ctx) => ctx,
        Err(exit) => return Ok(exit),
    };
    let observed = runtime()?.block_on(crate::reconcile::observe::observe(&ctx));
    let exported = export(&ctx.desired, &observed);
    let yaml =
        serde_saphyr::to_string(&exported.spec).context("failed to write the spec as YAML")?;

    let mut text = format!(
        "# The live configuration of {}, exported by siuctl {} at {}.\n# Connection settings and secret references come from {}.\n",
        ctx.desired.name,
        env!("CARGO_PKG_VERSION"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC"),
        ctx.desired.spec_path.display(),
    );
    for fallback in &exported.fallbacks {
        text.push_str(&format!("# Taken from the spec because {fallback}\n"));
        tracing::warn!(%fallback, "exported a value from the spec, not from live state");
    }
    text.push_str(&yaml);
    output::print(&text).context("failed to write the spec to standard output")?;
    Ok(if exported.fallbacks.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}
