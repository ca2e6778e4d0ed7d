//! The transport simulator: "sends" a message the way the rules engine sees it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::LabState;

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The RFC 5322 message; generated content when absent.
    pub eml: Option<Vec<u8>>,
    /// Sender address; replaces the message's From.
    pub from: Option<String>,
    /// Recipients; replace the message's To.
    pub to: Vec<String>,
    /// Subject of generated content.
    pub subject: Option<String>,
    /// Write one processed copy per recipient.
    pub split: bool,
    /// Submitting mailbox for Send As.
    pub submitter: Option<String>,
    /// Do not store the original yet.
    pub hold_original: bool,
}

/// What a send did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendReport {
    /// The Message-ID of the original.
    pub message_id: String,
    /// The mailbox whose Sent Items holds the original, when there is one.
    pub mailbox: Option<String>,
    /// The processed copies written into the spool's `new/`.
    pub spool_files: Vec<PathBuf>,
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Not implemented yet.
    #[error("the transport simulator is not implemented yet")]
    NotImplemented,
}

/// Sends a message: stores the original in the sender's Sent Items and writes the processed
/// copy into `spool/new`.
pub fn send(
    state: &LabState,
    spool: &Path,
    message: Message,
) -> Result<SendReport, TransportError> {
    // TODO: the transport simulator is not implemented yet.
    let _ = (state, spool, message);
    Err(TransportError::NotImplemented)
}
