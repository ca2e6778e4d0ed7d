//! The result of a demo run, message by message: the JSON report for scripts and the table
//! for people.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use super::messages::{BundledMessage, Delivery};
use crate::update::{Finished, Outcome, Summary};

/// A bundled message on its way into the spool, before the update loop ran.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The message.
    pub message: BundledMessage,
    /// The Message-ID of the original, for messages sent through the transport.
    pub message_id: Option<String>,
    /// The mailbox whose Sent Items received the original, when the sender has one.
    pub original_mailbox: Option<String>,
    /// The name of the file in the spool.
    pub spool_file: String,
}

/// The whole run, as `siuctl demo --output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The lab directory.
    pub dir: PathBuf,
    /// The spec that the demo applied.
    pub spec: PathBuf,
    /// The LDAP URL of the directory that accounts live in.
    pub directory: String,
    /// One entry per bundled message, in the order they were sent.
    pub messages: Vec<MessageResult>,
    /// The update loop's tally.
    pub summary: Summary,
}

/// One bundled message and how it ended.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageResult {
    /// The file name in `examples/messages/`.
    pub file: String,
    /// The case the message covers.
    pub case: String,
    /// The lab address it was sent from; absent for files written into the spool as they are.
    pub from: Option<String>,
    /// The Message-ID of the original in Sent Items.
    pub message_id: Option<String>,
    /// The mailbox whose Sent Items received the original.
    pub original_mailbox: Option<String>,
    /// The name of its spool file.
    pub spool_file: String,
    /// The mailbox the update loop resolved the sender to.
    pub mailbox: Option<String>,
    /// The update loop's outcome.
    pub outcome: MessageOutcome,
}

/// The outcome of a message in the update loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum MessageOutcome {
    /// The processed message replaced the original.
    Updated {
        /// An earlier attempt had already created the replacement.
        replay: bool,
    },
    /// The processed message was saved next to the kept original.
    KeptAsCopy {
        /// An earlier attempt had already created the copy.
        replay: bool,
    },
    /// The message was left alone.
    Skipped {
        /// The stable name of the reason, such as `out_of_scope`.
        reason: String,
        /// The reason in words.
        detail: String,
    },
    /// The spool file moved to `failed/`.
    Failed {
        /// The stable name of the reason, such as `not_a_message`.
        reason: String,
        /// The reason in words, as in the `.reason` file.
        detail: String,
    },
    /// The update loop stopped before it finished the message.
    Unfinished,
}

impl From<&Outcome> for MessageOutcome {
    fn from(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Updated {
                kept_original: false,
                replay,
            } => Self::Updated { replay: *replay },
            Outcome::Updated {
                kept_original: true,
                replay,
            } => Self::KeptAsCopy { replay: *replay },
            Outcome::Skipped { reason, detail } => Self::Skipped {
                reason: (*reason).to_owned(),
                detail: detail.clone(),
            },
            Outcome::Failed { reason, detail } => Self::Failed {
                reason: reason.clone(),
                detail: detail.clone(),
            },
        }
    }
}

impl Report {
    /// Matches the loop's finished messages to the sent ones by spool file name.
    pub fn new(
        dir: PathBuf,
        spec: PathBuf,
        directory: String,
        sent: &[Sent],
        finished: Vec<Finished>,
        summary: Summary,
    ) -> Self {
        let mut by_file: HashMap<String, Finished> = finished
            .into_iter()
            .map(|message| (message.spool_file.clone(), message))
            .collect();
        let messages = sent
            .iter()
            .map(|sent| {
                let finished = by_file.remove(&sent.spool_file);
                MessageResult {
                    file: sent.message.file.to_owned(),
                    case: sent.message.case.to_owned(),
                    from: match sent.message.delivery {
                        Delivery::Transport { from } => Some(from.to_owned()),
                        Delivery::AsIs => None,
                    },
                    message_id: sent.message_id.clone(),
                    original_mailbox: sent.original_mailbox.clone(),
                    spool_file: sent.spool_file.clone(),
                    mailbox: finished.as_ref().and_then(|f| f.mailbox.clone()),
                    outcome: finished
                        .as_ref()
                        .map_or(MessageOutcome::Unfinished, |f| (&f.outcome).into()),
                }
            })
            .collect();
        Self {
            dir,
            spec,
            directory,
            messages,
            summary,
        }
    }

    /// Returns how many bundled messages the update loop did not finish.
    pub fn unfinished(&self) -> usize {
        self.messages
            .iter()
            .filter(|message| message.outcome == MessageOutcome::Unfinished)
            .count()
    }

    /// Renders one line per message: its file, its sender and how it ended.
    pub fn render_messages(&self) -> String {
        let rows: Vec<[String; 3]> = self
            .messages
            .iter()
            .map(|message| {
                [
                    message.file.clone(),
                    message
                        .from
                        .clone()
                        .unwrap_or_else(|| "(written as is)".to_owned()),
                    message.describe_outcome(),
                ]
            })
            .collect();
        let header = [
            "MESSAGE".to_owned(),
            "FROM".to_owned(),
            "OUTCOME".to_owned(),
        ];
        let file_width = column_width(&header, &rows, 0);
        let from_width = column_width(&header, &rows, 1);
        let mut text = String::new();
        for [file, from, outcome] in std::iter::once(&header).chain(&rows) {
            let _ = writeln!(
                text,
                "  {file:<file_width$}  {from:<from_width$}  {outcome}"
            );
        }
        text
    }
}

impl MessageResult {
    /// Describes the outcome in one line, with the reason for skips and failures.
    pub fn describe_outcome(&self) -> String {
        let mailbox = self.mailbox.as_deref().unwrap_or("an unknown mailbox");
        let replay = |replay: bool| if replay { " (replay)" } else { "" };
        match &self.outcome {
            MessageOutcome::Updated { replay: again } => {
                format!("updated in the Sent Items of {mailbox}{}", replay(*again))
            }
            MessageOutcome::KeptAsCopy { replay: again } => format!(
                "saved next to the original in the Sent Items of {mailbox}{}",
                replay(*again)
            ),
            MessageOutcome::Skipped { reason, detail } => format!("skipped ({reason}): {detail}"),
            MessageOutcome::Failed { reason, detail } => format!("failed ({reason}): {detail}"),
            MessageOutcome::Unfinished => "not finished when the update loop stopped".to_owned(),
        }
    }
}

fn column_width(header: &[String; 3], rows: &[[String; 3]], column: usize) -> usize {
    rows.iter()
        .map(|row| row[column].len())
        .chain([header[column].len()])
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::messages::MESSAGES;

    fn sent(index: usize, spool_file: &str) -> Sent {
        Sent {
            message: MESSAGES[index],
            message_id: Some(format!("<{index}@lab.example>")),
            original_mailbox: None,
            spool_file: spool_file.to_owned(),
        }
    }

    #[test]
    fn outcomes_match_by_spool_file() {
        let sent = [sent(0, "1.1_0.host"), sent(1, "1.1_1.host")];
        let finished = vec![Finished {
            spool_file: "1.1_1.host".to_owned(),
            outcome: Outcome::Skipped {
                reason: "out_of_scope",
                detail: "left out".to_owned(),
            },
            mailbox: Some("bob@lab.example".to_owned()),
        }];

        let report = Report::new(
            PathBuf::from("/lab"),
            PathBuf::from("/lab/specs/demo.yaml"),
            "ldaps://127.0.0.1:636".to_owned(),
            &sent,
            finished,
            Summary::default(),
        );

        assert_eq!(report.messages[0].outcome, MessageOutcome::Unfinished);
        assert_eq!(
            report.messages[1].outcome,
            MessageOutcome::Skipped {
                reason: "out_of_scope".to_owned(),
                detail: "left out".to_owned()
            }
        );
        assert_eq!(
            report.messages[1].mailbox.as_deref(),
            Some("bob@lab.example")
        );
        assert_eq!(report.unfinished(), 1);
    }

    #[test]
    fn outcome_serializes_with_its_kind() {
        let json = serde_json::to_value(MessageOutcome::KeptAsCopy { replay: false })
            .expect("the outcome serializes");

        assert_eq!(
            json,
            serde_json::json!({"kind": "keptAsCopy", "replay": false})
        );
    }
}
