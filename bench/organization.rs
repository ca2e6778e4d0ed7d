//! Plan time and request count by organization size: `siuctl plan` of the lab's hybrid spec
//! against generated organizations of 1,000 to 100,000 users.
//!
//! Each size runs twice: with `scope.mode: all`, which counts every mailbox, and with
//! `scope.mode: only` on the largest group, whose members the plan reads at every depth from
//! Active Directory and Entra ID.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::clients::{Programs, tail};
use crate::lab::LabProcess;
use crate::process::{Measured, Usage};

/// How long one plan may take.
const PLAN_LIMIT: Duration = Duration::from_secs(1800);

/// One generated organization.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSize {
    /// Generated users.
    pub users: u32,
    /// Generated groups.
    pub groups: u32,
    /// Transitive user members of the largest group.
    pub largest_group: u32,
}

/// Parameters of the organization benchmark.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationSettings {
    /// The organizations.
    pub sizes: Vec<OrganizationSize>,
}

/// One plan.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganizationFigures {
    /// Generated users.
    pub users: u32,
    /// Generated groups.
    pub groups: u32,
    /// Transitive user members of the largest group.
    pub largest_group: u32,
    /// `all`, or `only` for the largest group.
    pub scope: &'static str,
    /// The `siuctl plan` process.
    pub usage: Usage,
    /// Requests the lab served during the plan, by `service/operation`.
    pub requests: BTreeMap<String, u64>,
    /// CPU seconds the lab used during the plan.
    pub lab_cpu_seconds: f64,
}

impl OrganizationFigures {
    /// Returns the requests to one service, such as `ldap`.
    pub fn requests_of(&self, service: &str) -> u64 {
        let prefix = format!("{service}/");
        self.requests
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, count)| count)
            .sum()
    }
}

/// The scope blocks that each organization is planned with.
const SCOPES: [(&str, &str); 2] = [
    ("all", "scope:\n  mode: all\n"),
    ("only", "scope:\n  mode: only\n  groups: [Largest-Group]\n"),
];

/// Plans every organization of `settings` with each scope.
pub async fn measure(
    programs: &Programs,
    work: &Path,
    settings: &OrganizationSettings,
) -> anyhow::Result<Vec<OrganizationFigures>> {
    let mut figures = Vec::new();
    for size in &settings.sizes {
        let dir = work.join(format!("organization-{}", size.users));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let fixture = dir.join("fixture.json");
        let generated = siu_lab::Fixture::synthetic(size.users, size.groups, size.largest_group);
        std::fs::write(&fixture, serde_json::to_vec(&generated)?)
            .context("failed to write the organization fixture")?;
        let lab = LabProcess::start(&programs.siuctl, &dir.join("lab"), Some(&fixture)).await?;
        lab.grant_impersonation().await?;

        let generated_spec = lab.dir().join("specs").join("hybrid-manual.yaml");
        let spec_text = std::fs::read_to_string(&generated_spec)
            .with_context(|| format!("failed to read {}", generated_spec.display()))?;
        for (scope, block) in SCOPES {
            let spec = lab.dir().join("specs").join(format!("bench-{scope}.yaml"));
            std::fs::write(&spec, spec_text.replace(SCOPES[0].1, block))
                .context("failed to write the benchmark spec")?;
            let result = plan(&lab, programs, &spec).await?;
            let figures_now = OrganizationFigures {
                users: size.users,
                groups: size.groups,
                largest_group: size.largest_group,
                scope,
                usage: result.0,
                requests: result.1,
                lab_cpu_seconds: result.2,
            };
            eprintln!(
                "plan: {} users, scope {scope}: {:.2} s, {} LDAP and {} Graph requests",
                size.users,
                figures_now.usage.wall_seconds,
                figures_now.requests_of("ldap"),
                figures_now.requests_of("graph"),
            );
            figures.push(figures_now);
        }
        drop(lab);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(figures)
}

/// Runs one `siuctl plan` and returns its usage, the lab's request counters and CPU time.
async fn plan(
    lab: &LabProcess,
    programs: &Programs,
    spec: &Path,
) -> anyhow::Result<(Usage, BTreeMap<String, u64>, f64)> {
    let log_path = spec.with_extension("log");
    let mut command = Command::new(&programs.siuctl);
    command
        .args(["plan", "--output", "json", "-f"])
        .arg(spec)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).context("failed to create the plan log")?);
    lab.reset_counters().await?;
    let lab_cpu_before = lab.cpu_seconds()?;
    let child = Measured::spawn(&mut command)?;
    let usage = tokio::task::spawn_blocking(move || child.wait(PLAN_LIMIT)).await??;
    let lab_cpu = lab.cpu_seconds()? - lab_cpu_before;
    if usage.exit_code != Some(0) {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        bail!(
            "siuctl plan exited with {:?}; the end of its log:\n{}",
            usage.exit_code,
            tail(&log, 30)
        );
    }
    Ok((usage, lab.counters().await?, lab_cpu))
}
