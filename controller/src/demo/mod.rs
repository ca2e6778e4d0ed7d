//! The parts of `siuctl demo` that are not command-line output: the bundled messages, the
//! spec the demo applies, sending, and the per-message report.
//!
//! The demo runs the product end to end on one machine. It starts the lab and applies a hybrid
//! spec wired to it. Then it sends real messages from several kinds of senders through the lab's
//! transport and runs the update loop until the spool is empty. The steps and their output live
//! in [`crate::cli::demo`].

pub mod messages;
pub mod report;
pub mod spec;

use std::path::Path;

use siu_lab::LabState;
use siu_lab::transport::{self, TransportError};

use self::messages::{BundledMessage, Delivery, MESSAGES};
use self::report::Sent;

/// Errors of sending a bundled message.
#[derive(Debug, thiserror::Error)]
#[error("failed to send the bundled message {file}")]
pub struct SendError {
    /// The file name of the message.
    pub file: &'static str,
    /// The cause.
    #[source]
    pub source: TransportError,
}

/// Sends every bundled message into `spool` and calls `on_sent` after each one, with the
/// transport's notes on what it changed.
pub fn send_all(
    state: &LabState,
    spool: &Path,
    on_sent: &mut dyn FnMut(&Sent, &[String]),
) -> Result<Vec<Sent>, SendError> {
    let mut sent = Vec::with_capacity(MESSAGES.len());
    for message in MESSAGES {
        let (one, notes) = send(state, spool, message).map_err(|source| SendError {
            file: message.file,
            source,
        })?;
        on_sent(&one, &notes);
        sent.push(one);
    }
    Ok(sent)
}

fn send(
    state: &LabState,
    spool: &Path,
    message: &BundledMessage,
) -> Result<(Sent, Vec<String>), TransportError> {
    match message.delivery {
        Delivery::Transport { from } => {
            let report = transport::send(
                state,
                spool,
                transport::Message {
                    eml: Some(message.bytes.to_vec()),
                    from: Some(from.to_owned()),
                    ..transport::Message::default()
                },
            )?;
            // Without split mode the transport writes exactly one processed copy.
            let spool_file = report
                .spool_files
                .first()
                .map(|path| file_name(path))
                .unwrap_or_default();
            let sent = Sent {
                message: *message,
                message_id: Some(report.message_id),
                original_mailbox: report.mailbox,
                spool_file,
            };
            Ok((sent, report.notes))
        }
        Delivery::AsIs => {
            let path = transport::deliver_as_is(spool, message.bytes)?;
            let sent = Sent {
                message: *message,
                message_id: None,
                original_mailbox: None,
                spool_file: file_name(&path),
            };
            Ok((sent, Vec::new()))
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
