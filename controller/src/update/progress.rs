//! Progress of `siuctl run --once` on a backlog: a bar on a terminal, a plain line every few
//! seconds otherwise (CI logs, files), and nothing for an empty spool.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::outcome::Summary;

/// The time between two plain progress lines.
const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// Progress display.
#[derive(Debug)]
pub enum Progress {
    /// No progress output.
    Quiet,
    /// A progress bar on standard error.
    Bar(ProgressBar),
    /// A line on standard error every [`LINE_INTERVAL`].
    Lines {
        /// When the last line was written.
        last: Instant,
        /// Messages in the backlog when the run started.
        total: u64,
    },
}

impl Progress {
    /// Picks the display for a backlog of `total` messages: a bar when standard error is a
    /// terminal, lines otherwise.
    pub fn for_backlog(total: u64, terminal: bool) -> Self {
        if total == 0 {
            return Self::Quiet;
        }
        if terminal {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} messages, {per_sec}, {eta} left  {msg}",
                )
                .expect("the progress template is valid"),
            );
            Self::Bar(bar)
        } else {
            Self::Lines {
                last: Instant::now(),
                total,
            }
        }
    }

    /// Shows the state after a message finished; `finished` counts this run's messages.
    pub fn update(&mut self, finished: u64, summary: &Summary) {
        match self {
            Self::Quiet => {}
            Self::Bar(bar) => {
                bar.set_position(finished);
                bar.set_message(summary.render_line());
            }
            Self::Lines { last, total } => {
                if last.elapsed() >= LINE_INTERVAL {
                    *last = Instant::now();
                    let _ = writeln!(
                        std::io::stderr(),
                        "progress: {finished}/{total} messages: {}",
                        summary.render_line()
                    );
                }
            }
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&mut self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
