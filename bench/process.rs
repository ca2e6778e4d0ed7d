//! Child processes measured on their own: wall time, CPU time and peak resident set size.
//!
//! The figures come from `wait4(2)`, which returns the `rusage` of exactly the process it
//! reaps, after it exited: the client under test, without the lab and without this harness.
//! `ru_maxrss` is the peak RSS (`VmHWM` in `/proc/PID/status`), the figure that
//! `/usr/bin/time -v` prints as "Maximum resident set size".

use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Clock ticks per second of `/proc/PID/stat`: Linux fixes USER_HZ at 100 for user space.
const USER_HZ: f64 = 100.0;

/// Resource usage of a finished child.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Seconds from spawn to exit.
    pub wall_seconds: f64,
    /// User CPU seconds.
    pub user_seconds: f64,
    /// System CPU seconds.
    pub system_seconds: f64,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
    /// The exit code, or `None` when a signal ended the process.
    pub exit_code: Option<i32>,
}

impl Usage {
    /// Returns user and system CPU seconds together.
    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// A spawned child whose usage is collected when it exits.
pub struct Measured {
    child: Child,
    started: Instant,
}

impl Measured {
    /// Spawns `command` and starts its clock.
    pub fn spawn(command: &mut Command) -> anyhow::Result<Self> {
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {:?}", command.get_program()))?;
        Ok(Self { child, started })
    }

    /// Asks the child to stop with SIGTERM, as a service manager does.
    pub fn terminate(&self) -> anyhow::Result<()> {
        signal(self.child.id(), libc::SIGTERM)
    }

    /// Waits for the child to exit and returns its usage. After `limit` the child gets
    /// SIGKILL and the wait fails, because a hung child has no meaningful figures.
    pub fn wait(self, limit: Duration) -> anyhow::Result<Usage> {
        let pid = self.child.id();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(reap(pid));
        });
        let reaped = match receiver.recv_timeout(limit) {
            Ok(reaped) => reaped,
            Err(_) => {
                signal(pid, libc::SIGKILL)?;
                let _ = receiver.recv();
                bail!("process {pid} did not exit within {limit:?} and was killed");
            }
        };
        let (status, usage) = reaped?;
        let wall_seconds = self.started.elapsed().as_secs_f64();
        // The std handle must not wait again: the process is reaped.
        std::mem::forget(self.child);
        let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
        Ok(Usage {
            wall_seconds,
            user_seconds: seconds(usage.ru_utime),
            system_seconds: seconds(usage.ru_stime),
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
            exit_code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        })
    }
}

/// Reaps `pid` with `wait4(2)` and returns its wait status and resource usage.
fn reap(pid: u32) -> anyhow::Result<(i32, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).context("process ID out of range")?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in, so zeroed is a valid initial value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers point at live locals for the duration of the call.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).with_context(|| format!("failed to wait for process {pid}"));
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid).context("process ID out of range")?;
    // SAFETY: kill(2) has no memory effects. A process that is gone yields ESRCH.
    if unsafe { libc::kill(pid, signal) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            return Err(error).with_context(|| format!("failed to signal process {pid}"));
        }
    }
    Ok(())
}

/// Returns the CPU seconds (user and system) that a running process has used so far.
pub fn cpu_seconds_so_far(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("failed to read {path}"))?;
    // The command name in field 2 may contain spaces, so fields are counted from its closing
    // parenthesis: utime (field 14) and stime (field 15) are the 12th and 13th after it.
    let rest = stat
        .rfind(')')
        .map(|end| &stat[end + 2..])
        .with_context(|| format!("{path} has no command name"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .with_context(|| format!("{path} has no field {}", index + 3))
    };
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}
