//! Spool files as the update loop reads them.
//!
//! A spool file is the processed message preceded by `X-SIU-` header fields. They carry
//! what the message cannot: the submitting mailbox of a Send As message, the Message-ID of
//! the original in Sent Items, and the index of a split copy. [`SpoolMessage::parse`] reads those
//! fields, removes every field whose name starts with `X-SIU-` (known or not) from the top-level
//! header block, and keeps every other byte of the file, so the item saved in Sent Items is
//! the message exactly as the rules engine processed it.

use std::fmt;

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

/// The prefix that the spool contract reserves for its own header fields.
pub const FIELD_PREFIX: &str = "X-SIU-";
/// The mailbox that submitted a Send As message.
pub const SUBMITTER_FIELD: &str = "X-SIU-Submitter";
/// The Message-ID of the original as it sits in Sent Items, angle brackets included.
pub const ORIGINAL_MESSAGE_ID_FIELD: &str = "X-SIU-Original-Message-ID";
/// `<index>/<count>` of a split copy.
pub const SPLIT_FIELD: &str = "X-SIU-Split";
/// When the rules engine processed the message, in RFC 3339.
pub const RECEIVED_AT_FIELD: &str = "X-SIU-Received-At";

/// The largest spool file read, in bytes: 150 MiB, Exchange Online's maximum message size.
/// A larger file cannot be saved in any mailbox, and reading it would only use memory.
pub const MAX_SPOOL_FILE_BYTES: u64 = 150 * 1024 * 1024;

/// Errors of a spool file that the update loop cannot process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file has no header fields, so it is not an RFC 5322 message.
    #[error("the file is not an RFC 5322 message: it has no header fields")]
    NotAMessage,

    /// A field of the spool contract has a value it does not allow.
    #[error("invalid {field} field `{value}`: {expected}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// The value as written, without line breaks.
        value: String,
        /// The form the contract expects.
        expected: &'static str,
    },

    /// A field of the spool contract appears more than once.
    #[error("the {field} field appears {count} times; the spool contract allows it once")]
    RepeatedField {
        /// The field name.
        field: &'static str,
        /// How often it appears.
        count: usize,
    },

    /// Neither the contract's field nor the message names the original's Message-ID.
    #[error(
        "the message has no Message-ID and no {ORIGINAL_MESSAGE_ID_FIELD} field, so its original cannot be found"
    )]
    MissingMessageId,

    /// The message names no sender: no From, no Sender and no submitter.
    #[error(
        "the message has no From or Sender address and no {SUBMITTER_FIELD} field, so it has no mailbox"
    )]
    MissingSender,
}

impl ParseError {
    /// Returns a short, stable name for metrics and the summary.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotAMessage => "not_a_message",
            Self::InvalidField { .. } | Self::RepeatedField { .. } => "invalid_spool_field",
            Self::MissingMessageId => "missing_message_id",
            Self::MissingSender => "missing_sender",
        }
    }
}

/// Index and count of one split copy, counting from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// The copy's position, from 1 to `count`.
    pub index: u32,
    /// How many copies the rules engine made.
    pub count: u32,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A parsed spool file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolMessage {
    /// The message without the `X-SIU-` fields: what is saved in Sent Items.
    pub mime: Vec<u8>,
    /// The Message-ID of the original in Sent Items, angle brackets included.
    pub original_message_id: String,
    /// The file's own Message-ID, angle brackets included; differs from the original's on
    /// split copies.
    pub message_id: Option<String>,
    /// Present on split copies.
    pub split: Option<Split>,
    /// The Send As submitter, lowercase.
    pub submitter: Option<String>,
    /// The first From address, lowercase.
    pub from: Option<String>,
    /// The Sender address, lowercase.
    pub sender: Option<String>,
    /// The Date field.
    pub date: Option<DateTime<Utc>>,
    /// When the rules engine processed the message.
    pub received_at: Option<DateTime<Utc>>,
    /// Names of `X-SIU-` fields that the contract does not define; they were removed too.
    pub unknown_fields: Vec<String>,
}

impl SpoolMessage {
    /// Parses a spool file.
    pub fn parse(file: &[u8]) -> Result<Self, ParseError> {
        // 1. The top-level header block, and the contract's fields in it.
        let fields = header_fields(file);
        if fields.is_empty() {
            return Err(ParseError::NotAMessage);
        }
        let contract = |name: &'static str| -> Result<Option<String>, ParseError> {
            let values: Vec<String> = fields
                .iter()
                .filter(|field| field.name.eq_ignore_ascii_case(name))
                .map(|field| field.unfolded_value(file))
                .collect();
            match values.len() {
                0 => Ok(None),
                1 => Ok(values.into_iter().next()),
                count => Err(ParseError::RepeatedField { field: name, count }),
            }
        };
        let submitter = contract(SUBMITTER_FIELD)?
            .map(|value| parse_address(SUBMITTER_FIELD, &value))
            .transpose()?;
        let original_message_id = contract(ORIGINAL_MESSAGE_ID_FIELD)?
            .map(|value| parse_message_id(ORIGINAL_MESSAGE_ID_FIELD, &value))
            .transpose()?;
        let split = contract(SPLIT_FIELD)?
            .map(|value| parse_split(&value))
            .transpose()?;
        let received_at = contract(RECEIVED_AT_FIELD)?
            .map(|value| parse_received_at(&value))
            .transpose()?;
        let unknown_fields = fields
            .iter()
            .filter(|field| field.is_contract_field() && !field.is_known_contract_field())
            .map(|field| field.name.clone())
            .collect();

        // 2. The message without them, byte for byte otherwise.
        let mut mime = Vec::with_capacity(file.len());
        let mut kept_from = 0;
        for field in fields.iter().filter(|field| field.is_contract_field()) {
            mime.extend_from_slice(&file[kept_from..field.start]);
            kept_from = field.end;
        }
        mime.extend_from_slice(&file[kept_from..]);

        // 3. The header fields that decide where the original is.
        let parsed = MessageParser::default()
            .parse_headers(&mime)
            .ok_or(ParseError::NotAMessage)?;
        let first_address = |address: Option<&mail_parser::Address<'_>>| {
            address
                .and_then(|address| address.first())
                .and_then(|addr| addr.address())
                .map(|address| address.trim().to_ascii_lowercase())
                .filter(|address| !address.is_empty())
        };
        let from = first_address(parsed.from());
        let sender = first_address(parsed.sender());
        let message_id = header_fields(&mime)
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("Message-ID"))
            .and_then(|field| bracketed_id(&field.unfolded_value(&mime)))
            .or_else(|| parsed.message_id().map(|id| format!("<{id}>")));
        let date = parsed
            .date()
            .filter(|date| date.is_valid())
            .and_then(|date| DateTime::from_timestamp(date.to_timestamp(), 0));

        let original_message_id = original_message_id
            .or_else(|| message_id.clone())
            .ok_or(ParseError::MissingMessageId)?;
        if from.is_none() && sender.is_none() && submitter.is_none() {
            return Err(ParseError::MissingSender);
        }
        Ok(Self {
            mime,
            original_message_id,
            message_id,
            split,
            submitter,
            from,
            sender,
            date,
            received_at,
            unknown_fields,
        })
    }

    /// Returns the key that identifies this message's rewrite in Sent Items: the original's
    /// Message-ID, and for a split copy its index and count. Two spool files with one key are
    /// the same message delivered twice.
    pub fn source_key(&self) -> String {
        match self.split {
            Some(split) => format!("{} {split}", self.original_message_id),
            None => self.original_message_id.clone(),
        }
    }
}

/// One header field: its name and the byte range of the whole field, from the first byte of
/// the name to the end of the line break of its last continuation line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderField {
    name: String,
    start: usize,
    end: usize,
    value_start: usize,
}

impl HeaderField {
    fn is_contract_field(&self) -> bool {
        self.name.len() >= FIELD_PREFIX.len()
            && self.name[..FIELD_PREFIX.len()].eq_ignore_ascii_case(FIELD_PREFIX)
    }

    fn is_known_contract_field(&self) -> bool {
        [
            SUBMITTER_FIELD,
            ORIGINAL_MESSAGE_ID_FIELD,
            SPLIT_FIELD,
            RECEIVED_AT_FIELD,
        ]
        .iter()
        .any(|known| self.name.eq_ignore_ascii_case(known))
    }

    /// Returns the value with folding removed (RFC 5322 section 2.2.3) and surrounding white
    /// space trimmed. Bytes that are not UTF-8 become U+FFFD.
    fn unfolded_value(&self, file: &[u8]) -> String {
        let raw = String::from_utf8_lossy(&file[self.value_start..self.end]);
        let unfolded: String = raw.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        unfolded.trim().to_owned()
    }
}

/// Splits the top-level header block into fields. The block ends at the first empty line or
/// at the end of the file. A line without a colon that is not a continuation line ends the
/// block too, as it cannot start a field.
fn header_fields(file: &[u8]) -> Vec<HeaderField> {
    let mut fields: Vec<HeaderField> = Vec::new();
    let mut position = 0;
    while position < file.len() {
        let line_end = file[position..]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(file.len(), |offset| position + offset + 1);
        let line = &file[position..line_end];
        let content = line
            .strip_suffix(b"\n")
            .map(|rest| rest.strip_suffix(b"\r").unwrap_or(rest))
            .unwrap_or(line);
        if content.is_empty() {
            break;
        }
        if matches!(content[0], b' ' | b'\t') {
            match fields.last_mut() {
                Some(field) => field.end = line_end,
                None => break,
            }
        } else {
            let Some(colon) = content.iter().position(|&byte| byte == b':') else {
                break;
            };
            let name = String::from_utf8_lossy(&content[..colon]).trim().to_owned();
            if name.is_empty() {
                break;
            }
            fields.push(HeaderField {
                name,
                start: position,
                end: line_end,
                value_start: position + colon + 1,
            });
        }
        position = line_end;
    }
    fields
}

/// Reads an addr-spec such as `bob@lab.example`, lowercased.
fn parse_address(field: &'static str, value: &str) -> Result<String, ParseError> {
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c))
    });
    if valid {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(ParseError::InvalidField {
            field,
            value: value.to_owned(),
            expected: "a plain address such as bob@example.com, without angle brackets",
        })
    }
}

/// Reads the original's Message-ID as it sits in Sent Items. That is usually `<id@domain>`,
/// but mail clients keep the obsolete forms of RFC 5322 section 3.6.4 as they are (no angle
/// brackets, comments and spaces inside), so any value without control characters is taken.
fn parse_message_id(field: &'static str, value: &str) -> Result<String, ParseError> {
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(ParseError::InvalidField {
            field,
            value: value.escape_debug().to_string(),
            expected: "the original's Message-ID, such as <id@example.com>",
        });
    }
    Ok(value.to_owned())
}

/// Reads `<index>/<count>` with `1 <= index <= count`.
fn parse_split(value: &str) -> Result<Split, ParseError> {
    let invalid = || ParseError::InvalidField {
        field: SPLIT_FIELD,
        value: value.to_owned(),
        expected: "INDEX/COUNT with 1 <= INDEX <= COUNT, such as 2/3",
    };
    let (index, count) = value.split_once('/').ok_or_else(invalid)?;
    let index: u32 = index.trim().parse().map_err(|_| invalid())?;
    let count: u32 = count.trim().parse().map_err(|_| invalid())?;
    if index == 0 || index > count {
        return Err(invalid());
    }
    Ok(Split { index, count })
}

fn parse_received_at(value: &str) -> Result<DateTime<Utc>, ParseError> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| ParseError::InvalidField {
            field: RECEIVED_AT_FIELD,
            value: value.to_owned(),
            expected: "an RFC 3339 time such as 2026-03-01T10:00:00Z",
        })
}

/// Returns the first `<...>` of a Message-ID field's value, which drops comments and white
/// space that some writers put around it.
fn bracketed_id(value: &str) -> Option<String> {
    let open = value.find('<')?;
    let close = open + value[open..].find('>')?;
    let id = &value[open..=close];
    (id.len() > 2).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "From: Alice Archer <Alice@lab.example>\r\n\
        To: partner@example.net\r\n\
        Subject: Quarterly numbers\r\n\
        Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\
        Message-ID: <m1@lab.example>\r\n\
        \r\n\
        Hello\r\n";

    fn spool_file(prefix: &str) -> Vec<u8> {
        format!("{prefix}{MESSAGE}").into_bytes()
    }

    #[test]
    fn plain_message_uses_its_own_message_id() {
        let message = SpoolMessage::parse(MESSAGE.as_bytes()).expect("parses");

        assert_eq!(message.original_message_id, "<m1@lab.example>");
        assert_eq!(message.message_id.as_deref(), Some("<m1@lab.example>"));
        assert_eq!(message.from.as_deref(), Some("alice@lab.example"));
        assert_eq!(message.sender, None);
        assert_eq!(message.split, None);
        assert_eq!(message.mime, MESSAGE.as_bytes());
        assert_eq!(
            message.date,
            Some("2026-12-01T10:00:00Z".parse().expect("time"))
        );
        assert_eq!(message.source_key(), "<m1@lab.example>");
    }

    #[test]
    fn contract_fields_are_read_and_removed() {
        let file = spool_file(
            "X-SIU-Submitter: Bob@lab.example\r\n\
             X-SIU-Original-Message-ID: <orig@lab.example>\r\n\
             X-SIU-Split: 2/3\r\n\
             X-SIU-Received-At: 2026-03-01T10:00:00.000Z\r\n",
        );

        let message = SpoolMessage::parse(&file).expect("parses");

        assert_eq!(message.mime, MESSAGE.as_bytes());
        assert_eq!(message.submitter.as_deref(), Some("bob@lab.example"));
        assert_eq!(message.original_message_id, "<orig@lab.example>");
        assert_eq!(message.split, Some(Split { index: 2, count: 3 }));
        assert_eq!(
            message.received_at,
            Some("2026-03-01T10:00:00Z".parse().expect("time"))
        );
        assert_eq!(message.source_key(), "<orig@lab.example> 2/3");
    }

    #[test]
    fn unknown_contract_fields_are_removed() {
        let file = b"From: alice@lab.example\n\
            x-siu-future: one\n  folded two\n\
            Message-ID: <m2@lab.example>\n\
            X-Other: stays\n\
            \n\
            X-SIU-Split: 1/2 is body text\n";

        let message = SpoolMessage::parse(file).expect("parses");

        assert_eq!(
            message.mime,
            b"From: alice@lab.example\n\
              Message-ID: <m2@lab.example>\n\
              X-Other: stays\n\
              \n\
              X-SIU-Split: 1/2 is body text\n"
        );
        assert_eq!(message.unknown_fields, ["x-siu-future"]);
        assert_eq!(message.split, None);
    }

    #[test]
    fn folded_contract_value_is_unfolded() {
        let file = spool_file("X-SIU-Original-Message-ID:\r\n <folded@lab.example>\r\n");

        let message = SpoolMessage::parse(&file).expect("parses");

        assert_eq!(message.original_message_id, "<folded@lab.example>");
        assert_eq!(message.mime, MESSAGE.as_bytes());
    }

    #[test]
    fn non_utf8_body_bytes_are_kept() {
        let mut file =
            b"X-SIU-Split: 1/1\r\nFrom: a@lab.example\r\nMessage-ID: <b@x>\r\n\r\n".to_vec();
        file.extend_from_slice(&[0xff, 0xfe, 0x00, b'\r', b'\n']);

        let message = SpoolMessage::parse(&file).expect("parses");

        assert!(message.mime.ends_with(&[0xff, 0xfe, 0x00, b'\r', b'\n']));
        assert!(message.mime.starts_with(b"From: a@lab.example\r\n"));
    }

    #[test]
    fn invalid_contract_values_are_rejected() {
        let cases = [
            ("X-SIU-Split: 0/3\r\n", "invalid_spool_field"),
            ("X-SIU-Split: 4/3\r\n", "invalid_spool_field"),
            ("X-SIU-Split: two\r\n", "invalid_spool_field"),
            (
                "X-SIU-Submitter: <bob@lab.example>\r\n",
                "invalid_spool_field",
            ),
            ("X-SIU-Submitter: Bob Baker\r\n", "invalid_spool_field"),
            ("X-SIU-Received-At: yesterday\r\n", "invalid_spool_field"),
            (
                "X-SIU-Split: 1/2\r\nX-SIU-Split: 2/2\r\n",
                "invalid_spool_field",
            ),
        ];
        for (prefix, label) in cases {
            let error = SpoolMessage::parse(&spool_file(prefix)).expect_err(prefix);
            assert_eq!(error.label(), label, "{prefix:?}: {error}");
        }
    }

    #[test]
    fn repeated_field_error_names_the_count() {
        let file = spool_file("X-SIU-Split: 1/2\r\nX-SIU-Split: 2/2\r\n");

        let error = SpoolMessage::parse(&file).expect_err("two split fields");

        assert_eq!(
            error.to_string(),
            "the X-SIU-Split field appears 2 times; the spool contract allows it once"
        );
    }

    #[test]
    fn obsolete_message_ids_are_taken_as_they_are() {
        for id in [
            "201002191008.30117.foo.bar@company.com",
            "<1234   @   local(blah)  .machine .example>",
        ] {
            let file = spool_file(&format!("X-SIU-Original-Message-ID: {id}\r\n"));

            let message = SpoolMessage::parse(&file).expect("parses");

            assert_eq!(message.original_message_id, id);
        }
    }

    #[test]
    fn file_without_header_is_not_a_message() {
        for file in [&b""[..], b"\r\nbody only\r\n", b"no colon on this line\r\n"] {
            assert_eq!(SpoolMessage::parse(file), Err(ParseError::NotAMessage));
        }
    }

    #[test]
    fn message_without_any_message_id_is_rejected() {
        let file = b"From: alice@lab.example\r\nSubject: no id\r\n\r\nbody\r\n";

        assert_eq!(SpoolMessage::parse(file), Err(ParseError::MissingMessageId));
    }

    #[test]
    fn message_without_sender_is_rejected() {
        let file = b"To: bob@lab.example\r\nMessage-ID: <x@lab.example>\r\n\r\nbody\r\n";

        assert_eq!(SpoolMessage::parse(file), Err(ParseError::MissingSender));
    }

    #[test]
    fn submitter_alone_names_a_sender() {
        let file = b"X-SIU-Submitter: bob@lab.example\r\nTo: x@example.net\r\nMessage-ID: <x@lab.example>\r\n\r\n";

        let message = SpoolMessage::parse(file).expect("parses");

        assert_eq!(message.submitter.as_deref(), Some("bob@lab.example"));
        assert_eq!(message.from, None);
    }

    #[test]
    fn message_id_comment_is_dropped() {
        let file = b"From: a@lab.example\r\nMessage-ID: (added by relay) <c@lab.example>\r\n\r\n";

        let message = SpoolMessage::parse(file).expect("parses");

        assert_eq!(message.original_message_id, "<c@lab.example>");
    }

    #[test]
    fn sender_is_read_for_send_on_behalf() {
        let file = b"From: Sales <sales@lab.example>\r\nSender: Bob <BOB@lab.example>\r\nMessage-ID: <d@lab.example>\r\n\r\n";

        let message = SpoolMessage::parse(file).expect("parses");

        assert_eq!(message.from.as_deref(), Some("sales@lab.example"));
        assert_eq!(message.sender.as_deref(), Some("bob@lab.example"));
    }
}
