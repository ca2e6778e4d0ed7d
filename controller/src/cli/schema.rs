//! `siuctl schema`: prints the JSON Schema of a siu/v1 spec.

use anyhow::Context;

use super::exit::Exit;
use super::output;

/// Arguments of `siuctl schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// Prints the schema to standard output.
pub fn run(_args: SchemaArgs) -> anyhow::Result<Exit> {
    output::print(&siu_specs::schema_json())
        .context("failed to write the schema to standard output")?;
    Ok(Exit::Success)
}
