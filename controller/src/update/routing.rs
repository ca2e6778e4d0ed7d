//! The mailbox whose Sent Items contains the original of a message.
//!
//! Mail clients save a sent message in the Sent Items of the mailbox that sent it:
//!
//! - Send As (the submitter sent as another mailbox, `X-SIU-Submitter` in the spool file):
//!   the submitter's, unless `options.sendAsMailbox: from` configures the From mailbox's.
//! - Send on Behalf (a Sender that differs from From): the delegate's, the Sender.
//! - Otherwise the From mailbox's.

use std::fmt;

use siu_specs::desired::SendAsMailbox;

use super::message::SpoolMessage;

/// The way a message was sent, which decides whose Sent Items contains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMode {
    /// The From mailbox sent its own message.
    Own,
    /// A delegate sent on behalf of the From mailbox.
    OnBehalf,
    /// A submitter sent as the From mailbox.
    SendAs,
}

impl fmt::Display for SendMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Own => "own",
            Self::OnBehalf => "send on behalf",
            Self::SendAs => "send as",
        })
    }
}

/// The address whose mailbox contains the original, and the send mode behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The address, lowercase.
    pub address: String,
    /// The send mode.
    pub mode: SendMode,
}

/// Decides whose Sent Items contains the original of `message`. Returns `None` when the
/// message names no address at all, which parsing already rejects.
pub fn owner(message: &SpoolMessage, send_as: SendAsMailbox) -> Option<Owner> {
    let from = message.from.as_deref();
    let differs_from_from = |address: &str| from.is_none_or(|from| from != address);

    if let Some(submitter) = message
        .submitter
        .as_deref()
        .filter(|s| differs_from_from(s))
    {
        let address = match (send_as, from) {
            (SendAsMailbox::From, Some(from)) => from,
            _ => submitter,
        };
        return Some(Owner {
            address: address.to_owned(),
            mode: SendMode::SendAs,
        });
    }
    if let Some(sender) = message.sender.as_deref().filter(|s| differs_from_from(s)) {
        return Some(Owner {
            address: sender.to_owned(),
            mode: SendMode::OnBehalf,
        });
    }
    from.map(|from| Owner {
        address: from.to_owned(),
        mode: SendMode::Own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &str) -> SpoolMessage {
        let file = format!("{headers}Message-ID: <x@lab.example>\r\n\r\nbody\r\n");
        SpoolMessage::parse(file.as_bytes()).expect("parses")
    }

    #[test]
    fn owners_follow_the_send_mode() {
        let cases = [
            (
                "From: alice@lab.example\r\n",
                SendAsMailbox::Submitter,
                "alice@lab.example",
                SendMode::Own,
            ),
            (
                "From: sales@lab.example\r\nSender: bob@lab.example\r\n",
                SendAsMailbox::Submitter,
                "bob@lab.example",
                SendMode::OnBehalf,
            ),
            (
                "From: alice@lab.example\r\nSender: Alice@lab.example\r\n",
                SendAsMailbox::Submitter,
                "alice@lab.example",
                SendMode::Own,
            ),
            (
                "X-SIU-Submitter: bob@lab.example\r\nFrom: sales@lab.example\r\n",
                SendAsMailbox::Submitter,
                "bob@lab.example",
                SendMode::SendAs,
            ),
            (
                "X-SIU-Submitter: bob@lab.example\r\nFrom: alice@lab.example\r\n",
                SendAsMailbox::From,
                "alice@lab.example",
                SendMode::SendAs,
            ),
            (
                "X-SIU-Submitter: bob@lab.example\r\nFrom: sales@lab.example\r\nSender: carol@lab.example\r\n",
                SendAsMailbox::Submitter,
                "bob@lab.example",
                SendMode::SendAs,
            ),
            (
                "X-SIU-Submitter: alice@lab.example\r\nFrom: alice@lab.example\r\n",
                SendAsMailbox::Submitter,
                "alice@lab.example",
                SendMode::Own,
            ),
        ];
        for (headers, send_as, address, mode) in cases {
            let owner = owner(&message(headers), send_as).expect("has an owner");
            assert_eq!(owner.address, address, "{headers:?}");
            assert_eq!(owner.mode, mode, "{headers:?}");
        }
    }
}
