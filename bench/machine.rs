//! The machine a run is recorded on, read from `/proc` at run time, and its load.

use std::path::Path;
use std::process::Command;

/// The machine and the software versions of one run.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    /// `model name` of the first processor in `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Processors this process may run on.
    pub cores: usize,
    /// `MemTotal` of `/proc/meminfo`, in MiB.
    pub memory_mib: u64,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `python --version` of the exchangelib environment, when there is one.
    pub python: Option<String>,
    /// The installed exchangelib, when there is one.
    pub exchangelib: Option<String>,
    /// The commit of the working tree, with `-dirty` when it has changes.
    pub commit: String,
}

impl Machine {
    /// Reads the machine. `python` is the exchangelib environment's interpreter.
    pub fn read(workspace: &Path, python: Option<&Path>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, name)| name.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |text| text.trim().to_owned());
        let dirty = output(
            Command::new("git")
                .arg("-C")
                .arg(workspace)
                .args(["status", "--porcelain"]),
        )
        .is_some_and(|text| !text.is_empty());
        let commit = output(Command::new("git").arg("-C").arg(workspace).args([
            "rev-parse",
            "--short=12",
            "HEAD",
        ]))
        .map_or_else(
            || "unknown".to_owned(),
            |hash| if dirty { format!("{hash}-dirty") } else { hash },
        );
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            kernel,
            rustc: output(Command::new("rustc").arg("--version"))
                .unwrap_or_else(|| "unknown".into()),
            python: python.and_then(|python| output(Command::new(python).arg("--version"))),
            exchangelib: python.and_then(|python| {
                output(
                    Command::new(python)
                        .args(["-c", "import exchangelib; print(exchangelib.__version__)"]),
                )
            }),
            commit,
        }
    }
}

/// Returns the trimmed standard output of a command that succeeded.
fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Returns the 1-minute load average: runnable and waiting tasks, which shows whether other
/// work shared the machine during a measurement.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
