//! The messages that `siuctl demo` sends, compiled into the binary so that the demo runs from
//! any directory.
//!
//! They are real messages from the test fixtures of the Ruby `mail` library, copied byte for
//! byte into `examples/messages/` under their MIT license (`LICENSE-mail-fixtures` there).
//! Each one gets a lab sender that puts it on a different path through the update loop.

/// The path of a bundled message into the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Through the lab's transport simulator from this lab address, which replaces the
    /// address in From: the original goes to the sender's Sent Items and the processed copy,
    /// with the signature, to the spool.
    Transport {
        /// The sender address.
        from: &'static str,
    },
    /// Written into the spool unchanged, as a connector that passes on whatever it receives
    /// would write it.
    AsIs,
}

/// One bundled message.
#[derive(Debug, Clone, Copy)]
pub struct BundledMessage {
    /// The file name in `examples/messages/`.
    pub file: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// Its path into the spool.
    pub delivery: Delivery,
    /// The case the message covers, in a few words.
    pub case: &'static str,
}

macro_rules! bundled {
    ($file:literal, $delivery:expr, $case:literal) => {
        BundledMessage {
            file: $file,
            bytes: include_bytes!(concat!("../../../examples/messages/", $file)),
            delivery: $delivery,
            case: $case,
        }
    };
}

const fn from(address: &'static str) -> Delivery {
    Delivery::Transport { from: address }
}

/// The messages, in the order the demo sends them.
pub const MESSAGES: &[BundledMessage] = &[
    bundled!(
        "apple-mail-plain.eml",
        from("alice@lab.example"),
        "on-premises mailbox, over EWS"
    ),
    bundled!(
        "signed-with-attachment.eml",
        from("robert.baker@lab.example"),
        "on-premises mailbox, sent from an alias of bob@lab.example"
    ),
    bundled!(
        "iso-2022-jp.eml",
        from("grace@lab.example"),
        "on-premises mailbox with a German Sent Items folder name"
    ),
    bundled!(
        "pdf-attachment.eml",
        from("carol@lab.example"),
        "Exchange Online mailbox, over Microsoft Graph"
    ),
    bundled!(
        "html-inline-image.eml",
        from("heidi.hill@lab.example"),
        "Exchange Online mailbox whose UPN differs from its address"
    ),
    bundled!(
        "thunderbird-reply.eml",
        from("erin@lab.example"),
        "member of the Finance group, which the scope leaves out"
    ),
    bundled!(
        "gmail-forward.eml",
        from("newsletter@lab.example"),
        "distribution group, which has no mailbox"
    ),
    bundled!(
        "pgp-signed.eml",
        from("ivan@lab.example"),
        "user without a mailbox"
    ),
    bundled!(
        "outside-sender.eml",
        Delivery::AsIs,
        "sender outside the organization"
    ),
    bundled!(
        "no-message-id.eml",
        Delivery::AsIs,
        "does not parse: no Message-ID and no sender"
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_file_names_are_unique() {
        let mut names: Vec<&str> = MESSAGES.iter().map(|message| message.file).collect();
        names.sort_unstable();
        names.dedup();

        assert_eq!(names.len(), MESSAGES.len());
    }

    #[test]
    fn every_transport_sender_is_a_lab_address() {
        for message in MESSAGES {
            if let Delivery::Transport { from } = message.delivery {
                assert!(from.ends_with("@lab.example"), "{}: {from}", message.file);
            }
        }
    }
}
