//! The options every command that reaches live systems takes: the spec and the name
//! resolution overrides, and the set-up they share.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::exit::Exit;
use super::output;
use crate::http::ResolveOverride;
use crate::reconcile::context::{Context, Options};

/// The spec and how to reach the hosts it names.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: PathBuf,

    /// Connects to HOST at ADDR instead of the address DNS returns, as curl's `--resolve`
    /// does. ADDR is an IP address or IP:PORT (`[::1]:8443` for IPv6 with a port). Repeat
    /// for several hosts.
    #[arg(long, value_name = "HOST:ADDR")]
    pub resolve: Vec<ResolveOverride>,
}

/// Loads and checks a spec, printing its problems the way `siuctl validate` does.
/// Returns `Err(Exit::Failure)` after printing when the spec is invalid.
pub fn load_spec(path: &Path) -> anyhow::Result<Result<siu_specs::DesiredState, Exit>> {
    match siu_specs::load(path) {
        Ok(desired) => Ok(Ok(desired)),
        Err(error) => {
            let diagnostics = error.diagnostics(path);
            output::print(&output::render_diagnostics(&diagnostics))
                .context("failed to write to standard output")?;
            Ok(Err(Exit::Failure))
        }
    }
}

impl SpecArgs {
    /// Loads the spec and builds the context with these options, or prints why the spec is
    /// invalid.
    pub fn context(&self, options: Options) -> anyhow::Result<Result<Context, Exit>> {
        let desired = match load_spec(&self.file)? {
            Ok(desired) => desired,
            Err(exit) => return Ok(Err(exit)),
        };
        let options = Options {
            resolve: self.resolve.clone(),
            ..options
        };
        Ok(Ok(Context::new(desired, options)))
    }
}

/// Builds the runtime that an asynchronous command runs on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}
