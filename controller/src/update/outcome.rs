//! Message outcomes, and the tally of a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// The end of a finished message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The processed message replaced the original in Sent Items.
    Updated {
        /// The original stays next to the replacement (`keepOriginal`).
        kept_original: bool,
        /// An earlier run or a duplicate spool file had already created the replacement.
        replay: bool,
    },
    /// The message was left alone, for a reason that is logged.
    Skipped {
        /// A short, stable name such as `out_of_scope`.
        reason: &'static str,
        /// The reason in words.
        detail: String,
    },
    /// The message moved to `failed/`.
    Failed {
        /// A short, stable name such as `original_not_found`.
        reason: String,
        /// The reason in words, as written to `NAME.reason`.
        detail: String,
    },
}

/// Counts of outcomes by kind and reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Messages whose original was replaced.
    pub updated: u64,
    /// Messages saved next to the kept original.
    pub kept_as_copy: u64,
    /// Of `updated` and `kept_as_copy`, those an earlier run had already written.
    pub replayed: u64,
    /// Skipped messages by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Failed messages by reason.
    pub failed: BTreeMap<String, u64>,
}

impl Summary {
    /// Counts one outcome.
    pub fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Updated {
                kept_original,
                replay,
            } => {
                if *kept_original {
                    self.kept_as_copy += 1;
                } else {
                    self.updated += 1;
                }
                if *replay {
                    self.replayed += 1;
                }
            }
            Outcome::Skipped { reason, .. } => {
                *self.skipped.entry((*reason).to_owned()).or_default() += 1;
            }
            Outcome::Failed { reason, .. } => {
                *self.failed.entry(reason.clone()).or_default() += 1;
            }
        }
    }

    /// Returns how many messages ended.
    pub fn total(&self) -> u64 {
        self.updated
            + self.kept_as_copy
            + self.skipped.values().sum::<u64>()
            + self.failed.values().sum::<u64>()
    }

    /// Returns how many messages failed.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Renders the summary as a two-column table.
    pub fn render_table(&self) -> String {
        let mut rows: Vec<(String, u64)> = vec![
            ("updated".to_owned(), self.updated),
            ("kept as copy".to_owned(), self.kept_as_copy),
        ];
        if self.replayed > 0 {
            rows.push(("  of these, finished a replay".to_owned(), self.replayed));
        }
        rows.push(("skipped".to_owned(), self.skipped.values().sum::<u64>()));
        rows.extend(
            self.skipped
                .iter()
                .map(|(reason, count)| (format!("  {reason}"), *count)),
        );
        rows.push(("failed".to_owned(), self.failed_total()));
        rows.extend(
            self.failed
                .iter()
                .map(|(reason, count)| (format!("  {reason}"), *count)),
        );
        rows.push(("total".to_owned(), self.total()));

        let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        let mut table = String::new();
        for (label, count) in rows {
            let _ = writeln!(table, "{label:<width$}  {count:>8}");
        }
        table
    }

    /// Renders the summary as one line, for periodic progress on a pipe.
    pub fn render_line(&self) -> String {
        format!(
            "updated {}, kept as copy {}, skipped {}, failed {}",
            self.updated,
            self.kept_as_copy,
            self.skipped.values().sum::<u64>(),
            self.failed_total()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_reasons_under_their_kind() {
        let mut summary = Summary::default();
        for outcome in [
            Outcome::Updated {
                kept_original: false,
                replay: false,
            },
            Outcome::Updated {
                kept_original: true,
                replay: true,
            },
            Outcome::Skipped {
                reason: "out_of_scope",
                detail: String::new(),
            },
            Outcome::Failed {
                reason: "not_a_message".into(),
                detail: String::new(),
            },
        ] {
            summary.record(&outcome);
        }

        let expected = [
            "updated                               1",
            "kept as copy                          1",
            "  of these, finished a replay         1",
            "skipped                               1",
            "  out_of_scope                        1",
            "failed                                1",
            "  not_a_message                       1",
            "total                                 4",
        ];
        assert_eq!(summary.render_table(), format!("{}\n", expected.join("\n")));
        assert_eq!(summary.total(), 4);
    }
}
