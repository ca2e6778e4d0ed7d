//! The transport simulator: what happens to a message on its way out of an organization whose
//! rules engine adds signatures, reproduced so that the update loop has real input.
//!
//! [`send`] does the two things that a real send does:
//!
//! 1. The mail client stores the message as submitted in the Sent Items of the mailbox that sent
//!    it: the From user, the Sender for Send on Behalf, the submitter for Send As. A sender
//!    without a mailbox (a distribution group, a user without a mailbox, an outside address)
//!    gets no original.
//! 2. The rules engine adds the organization's signature to every text body part and passes
//!    the processed copy on. Here the copy lands in the spool directory that the update loop
//!    reads, with the X- headers of the spool contract (`docs/spool.md`). Split mode writes
//!    one copy per recipient.
//!
//! Messages come from .eml files or are generated. A message whose sender is not an address of
//! the lab is sent from a default mailbox. Everything the simulator does not have to change
//! (other header fields, attachments, inline images, the bytes of broken parts) it keeps byte for
//! byte, and [`SendReport::notes`] lists what it changed beyond the signature.

mod encoding;
mod generate;
mod header;
mod mime;
mod spool;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use mail_parser::{Addr, MessageParser};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::LabState;
use crate::fixture::MailboxLocation;
use crate::world::World;
use crate::world::exchange::{Item, MSGFLAG_READ, WellKnownFolder};
use header::{Edits, HeaderBlock};
pub use spool::{ORIGINAL_MESSAGE_ID_HEADER, RECEIVED_AT_HEADER, SPLIT_HEADER, SUBMITTER_HEADER};

/// The recipient of generated messages that name none.
const DEFAULT_RECIPIENT: &str = "partner@example.net";

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// The RFC 5322 message as a client submits it; generated content when absent.
    pub eml: Option<Vec<u8>>,
    /// Sender address. It replaces the address in From and keeps the display name. Without
    /// it, a message whose From is not an address of the lab is sent from the default mailbox.
    pub from: Option<String>,
    /// The delegate of a Send on Behalf message, written to the Sender field.
    pub sender: Option<String>,
    /// Recipients; they replace the message's To.
    pub to: Vec<String>,
    /// Subject of generated content.
    pub subject: Option<String>,
    /// Put an inline image into generated content.
    pub inline_image: bool,
    /// Write one processed copy per recipient, as a rules engine that splits messages does.
    pub split: bool,
    /// Submitting mailbox of a Send As message; its Sent Items gets the original.
    pub submitter: Option<String>,
    /// Hold the original back, as Outlook in cached mode uploads it later: the report carries
    /// it and [`deliver_original`] stores it.
    pub hold_original: bool,
}

/// The outcome of a send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendReport {
    /// The Message-ID of the original, angle brackets included, as it sits in Sent Items.
    pub message_id: String,
    /// Primary SMTP address of the mailbox whose Sent Items contains the original, or `None`
    /// for a sender without a mailbox.
    pub mailbox: Option<String>,
    /// Store item number of the original, once stored.
    pub original_item: Option<u64>,
    /// The original held back by `hold_original`, for [`deliver_original`].
    pub held: Option<HeldOriginal>,
    /// The processed copies written into the spool's `new/`.
    pub spool_files: Vec<PathBuf>,
    /// How many body parts got the signature.
    pub signed_parts: usize,
    /// Changes beyond the signature, and steps the simulator could not take.
    pub notes: Vec<String>,
}

/// An original that the mail client has not uploaded to Sent Items yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldOriginal {
    /// Object ID of the mailbox owner.
    pub owner: Uuid,
    /// Primary SMTP address of the mailbox.
    pub mailbox: String,
    /// The item to store; its number is allocated on delivery.
    pub item: Item,
}

/// Errors of the transport simulator.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The bytes have no header fields, so they are not a message.
    #[error(
        "the message has no header fields, so it is not an RFC 5322 message (give an .eml file)"
    )]
    Unparseable,
    /// An address given for a field is not a plain `local@domain` address.
    #[error("invalid {field} address `{value}`: give a plain address such as alice@lab.example")]
    InvalidAddress {
        /// `from`, `sender`, `to` or `submitter`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// An outside message needs a lab mailbox to send from, and the lab has none.
    #[error(
        "the lab has no enabled user with an on-premises mailbox to send an outside message \
         from: give a `from` address"
    )]
    NoDefaultSender,
    /// The mailbox of a held original no longer exists.
    #[error("the mailbox {mailbox} of the held original no longer exists")]
    MailboxGone {
        /// Its primary SMTP address.
        mailbox: String,
    },
    /// A spool file could not be written.
    #[error(
        "failed to write the spool file `{}`: {error} (check that the spool directory is \
         writable)", path.display()
    )]
    Spool {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
}

/// Sends a message: stores the original in Sent Items (unless held or the sender has no
/// mailbox) and writes the processed copy, or one per recipient in split mode, into
/// `spool/new/`.
pub fn send(
    state: &LabState,
    spool: &Path,
    message: Message,
) -> Result<SendReport, TransportError> {
    check_addresses(&message)?;
    let mut notes = Vec::new();

    // 1. The message as the client submits it, and the facts the rest needs.
    let (submitted, facts, owner, signature) = {
        let world = state.read();
        let submitted = match &message.eml {
            Some(eml) => rewrite_submitted(&world, eml, &message, &mut notes)?,
            None => generate_submitted(&world, &message)?,
        };
        let facts = Facts::read(&submitted)?;
        let owner_address = message
            .submitter
            .clone()
            .or_else(|| facts.sender_on_behalf().map(str::to_string))
            .or_else(|| facts.from_address.clone());
        let owner = match &owner_address {
            Some(address) => resolve_owner(&world, address),
            None => Owner::Without("the message has no sender address".into()),
        };
        let signature = signature_for(&world, &facts);
        (submitted, facts, owner, signature)
    };

    // 2. The original in Sent Items.
    let mut report = SendReport {
        message_id: facts.message_id.clone(),
        mailbox: None,
        original_item: None,
        held: None,
        spool_files: Vec::new(),
        signed_parts: 0,
        notes: Vec::new(),
    };
    match owner {
        Owner::Mailbox { id, address } => {
            let item = facts.original_item(&submitted);
            report.mailbox = Some(address.clone());
            if message.hold_original {
                report.held = Some(HeldOriginal {
                    owner: id,
                    mailbox: address,
                    item,
                });
            } else {
                report.original_item = Some(store_original(state, id, &address, item)?);
            }
        }
        Owner::Without(reason) => notes.push(format!("no original stored: {reason}")),
    }

    // 3. The processed copies in the spool.
    let signed = mime::add_signature(&submitted, &signature);
    report.signed_parts = signed.signed_parts;
    notes.extend(signed.notes);
    let received_at = Utc::now();
    let copies = if message.split {
        let domain = state.read().directory.domain.clone();
        split_copies(&signed.bytes, &facts, &domain, &mut notes)
    } else {
        vec![ProcessedCopy {
            bytes: signed.bytes,
            split: None,
        }]
    };
    let eol = header::line_ending(&submitted);
    for copy in copies {
        let headers = spool::SpoolHeaders {
            submitter: message.submitter.clone(),
            original_message_id: facts.message_id.clone(),
            split: copy.split,
            received_at,
        };
        let mut file = headers.render(eol);
        file.extend_from_slice(&copy.bytes);
        let path = spool::deliver(spool, &file).inspect_err(|error| {
            tracing::warn!(message_id = %facts.message_id, %error, "failed to write a spool file");
        })?;
        report.spool_files.push(path);
    }

    report.notes = notes;
    tracing::info!(
        message_id = %report.message_id,
        mailbox = report.mailbox.as_deref().unwrap_or("-"),
        held = report.held.is_some(),
        spool_files = report.spool_files.len(),
        signed_parts = report.signed_parts,
        "message sent through the transport simulator"
    );
    for note in &report.notes {
        tracing::debug!(message_id = %report.message_id, note, "transport note");
    }
    Ok(report)
}

/// Writes `bytes` into `spool/new/` as they are and returns the new file's path, as a
/// connector that passes on whatever it receives would. Unlike [`send`], it stores no original,
/// adds no signature or X- headers and checks nothing, so the file may not be a message at all.
pub fn deliver_as_is(spool: &Path, bytes: &[u8]) -> Result<PathBuf, TransportError> {
    let path = spool::deliver(spool, bytes)?;
    tracing::info!(file = %path.display(), bytes = bytes.len(), "file written to the spool as is");
    Ok(path)
}

/// Stores an original that [`send`] held back, as the mail client uploads it late. Returns its
/// store item number.
pub fn deliver_original(state: &LabState, held: HeldOriginal) -> Result<u64, TransportError> {
    let message_id = held.item.internet_message_id.clone().unwrap_or_default();
    let id = store_original(state, held.owner, &held.mailbox, held.item)?;
    tracing::info!(%message_id, mailbox = %held.mailbox, item = id, "held original delivered");
    Ok(id)
}

fn store_original(
    state: &LabState,
    owner: Uuid,
    address: &str,
    mut item: Item,
) -> Result<u64, TransportError> {
    let mut world = state.write();
    let id = world.exchange.allocate_item_id();
    let Some(mailbox) = world.exchange.mailboxes.get_mut(&owner) else {
        return Err(TransportError::MailboxGone {
            mailbox: address.to_string(),
        });
    };
    item.id = id;
    item.created = Utc::now();
    mailbox
        .folder_mut(WellKnownFolder::SentItems)
        .items
        .push(item);
    Ok(id)
}

/// Rejects addresses that would not survive as one mailbox in a header field.
fn check_addresses(message: &Message) -> Result<(), TransportError> {
    let single = [
        ("from", message.from.as_deref()),
        ("sender", message.sender.as_deref()),
        ("submitter", message.submitter.as_deref()),
    ];
    let recipients = message.to.iter().map(|a| ("to", Some(a.as_str())));
    for (field, value) in single.into_iter().chain(recipients) {
        if let Some(value) = value
            && !is_plain_address(value)
        {
            return Err(TransportError::InvalidAddress {
                field,
                value: value.to_string(),
            });
        }
    }
    Ok(())
}

fn is_plain_address(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c))
}

/// Applies `from`, `sender` and `to` to an .eml file and gives it a Message-ID when it has
/// none; every other byte stays.
fn rewrite_submitted(
    world: &World,
    eml: &[u8],
    message: &Message,
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, TransportError> {
    let parsed = MessageParser::default()
        .parse(eml)
        .ok_or(TransportError::Unparseable)?;
    let eol = header::line_ending(eml);
    let headers = HeaderBlock::parse(eml, 0..eml.len());
    let mut edits = Edits::default();

    // 1. From: the given address, or the default mailbox for an outside sender.
    let current_from = parsed.from().and_then(|a| a.first());
    let from_count = parsed.from().map_or(0, |a| a.iter().count());
    let current_address = current_from.and_then(Addr::address);
    let new_from = match &message.from {
        Some(address) => Some(address.clone()),
        None if current_address.is_some_and(|a| is_lab_address(world, a)) => None,
        None => {
            let default = default_sender(world).ok_or(TransportError::NoDefaultSender)?;
            notes.push(format!(
                "the sender {} is not an address of the lab: sent from {default}",
                current_address.unwrap_or("(none)")
            ));
            Some(default)
        }
    };
    if let Some(address) = &new_from {
        let line = mailbox_field(
            eml,
            headers.last("From"),
            current_from,
            from_count,
            "From",
            address,
            eol,
        );
        headers.set(eml, &mut edits, "From", Some(line));
    }

    // 2. Sender: the given delegate. When From was replaced, a Sender outside the lab is
    //    removed, because the message would otherwise be sent on behalf of an outside address.
    let current_sender = parsed.sender().and_then(|a| a.first());
    match (&message.sender, current_sender.and_then(Addr::address)) {
        (Some(address), _) => {
            let count = parsed.sender().map_or(0, |a| a.iter().count());
            let line = mailbox_field(
                eml,
                headers.last("Sender"),
                current_sender,
                count,
                "Sender",
                address,
                eol,
            );
            headers.set(eml, &mut edits, "Sender", Some(line));
        }
        (None, Some(sender)) if new_from.is_some() && !is_lab_address(world, sender) => {
            headers.set(eml, &mut edits, "Sender", None);
            notes.push(format!(
                "removed the Sender field: {sender} is not an address of the lab"
            ));
        }
        _ => {}
    }

    // 3. To and Message-ID.
    if !message.to.is_empty() {
        let line = header::field_line("To", &message.to.join(", "), eol);
        headers.set(eml, &mut edits, "To", Some(line));
    }
    if headers
        .last("Message-ID")
        .is_none_or(|field| field.value.is_empty())
    {
        let id = new_message_id(&world.directory.domain);
        notes.push(format!("the message had no Message-ID: added {id}"));
        let line = header::field_line("Message-ID", &id, eol);
        headers.set(eml, &mut edits, "Message-ID", Some(line));
    }
    Ok(edits.apply(eml))
}

/// The field that names `address` in place of the current mailbox. With one mailbox written
/// as `... <address>`, only the part inside the angle brackets changes, so the display name
/// and folding keep their bytes; otherwise the field is written anew with the display name.
fn mailbox_field(
    raw: &[u8],
    field: Option<&header::Field>,
    current: Option<&Addr<'_>>,
    current_count: usize,
    name: &str,
    address: &str,
    eol: &[u8],
) -> Vec<u8> {
    if let Some(field) = field
        && current_count == 1
    {
        let bytes = &raw[field.range.clone()];
        let colon = bytes.iter().position(|&b| b == b':').unwrap_or(0);
        let open = bytes[colon..]
            .iter()
            .rposition(|&b| b == b'<')
            .map(|i| colon + i);
        let close = open.and_then(|o| bytes[o..].iter().position(|&b| b == b'>').map(|i| o + i));
        if let (Some(open), Some(close)) = (open, close) {
            let mut line = bytes[..=open].to_vec();
            line.extend_from_slice(address.as_bytes());
            line.extend_from_slice(&bytes[close..]);
            return line;
        }
    }
    let display_name = current.and_then(Addr::name);
    header::field_line(name, &header::mailbox(display_name, address), eol)
}

/// Builds a message from the lab user who sends it.
fn generate_submitted(world: &World, message: &Message) -> Result<Vec<u8>, TransportError> {
    let from_address = match &message.from {
        Some(address) => address.clone(),
        None => default_sender(world).ok_or(TransportError::NoDefaultSender)?,
    };
    let display = |address: &str| {
        let name = world
            .directory
            .user_by_address(address)
            .map(|u| u.display_name.clone());
        header::mailbox(name.as_deref(), address)
    };
    let from = display(&from_address);
    let sender = message.sender.as_deref().map(display);
    let to = if message.to.is_empty() {
        vec![DEFAULT_RECIPIENT.to_string()]
    } else {
        message.to.clone()
    };
    let now = Utc::now();
    let subject = message
        .subject
        .clone()
        .unwrap_or_else(|| format!("Lab message {}", now.format("%Y-%m-%d %H:%M:%S")));
    let message_id = new_message_id(&world.directory.domain);
    Ok(generate::message(&generate::Content {
        from: &from,
        sender: sender.as_deref(),
        to: &to,
        subject: &subject,
        message_id: &message_id,
        date: now,
        inline_image: message.inline_image,
        domain: &world.directory.domain,
    }))
}

fn new_message_id(domain: &str) -> String {
    format!("<{}@{domain}>", Uuid::new_v4().simple())
}

/// Whether an address names a user or group of the lab (an SMTP address or a UPN).
fn is_lab_address(world: &World, address: &str) -> bool {
    world.directory.by_smtp(address).is_some() || world.directory.user_by_upn(address).is_some()
}

/// The mailbox that sends outside messages: alice's when the fixture has her with an enabled
/// on-premises mailbox, else the first such user by UPN.
fn default_sender(world: &World) -> Option<String> {
    let eligible = |user: &&crate::world::directory::User| {
        user.enabled()
            && user.mailbox == MailboxLocation::OnPremises
            && world.exchange.mailboxes.contains_key(&user.id)
    };
    let alice = format!("alice@{}", world.directory.domain);
    let user = world
        .directory
        .user_by_address(&alice)
        .filter(eligible)
        .or_else(|| {
            world
                .directory
                .users
                .values()
                .filter(eligible)
                .min_by(|a, b| a.upn.cmp(&b.upn))
        })?;
    Some(user.mail.clone().unwrap_or_else(|| user.upn.clone()))
}

/// Whose Sent Items gets the original.
enum Owner {
    /// A mailbox: its owner's object ID and primary SMTP address.
    Mailbox { id: Uuid, address: String },
    /// No mailbox, and why.
    Without(String),
}

fn resolve_owner(world: &World, address: &str) -> Owner {
    if let Some(user) = world.directory.user_by_address(address) {
        return if world.exchange.mailboxes.contains_key(&user.id) {
            Owner::Mailbox {
                id: user.id,
                address: user.mail.clone().unwrap_or_else(|| user.upn.clone()),
            }
        } else {
            Owner::Without(format!("{address} is a user without a mailbox"))
        };
    }
    let group = world
        .directory
        .by_smtp(address)
        .and_then(|id| world.directory.groups.get(&id));
    match group {
        Some(_) => Owner::Without(format!("{address} is a group, which has no mailbox")),
        None => Owner::Without(format!("{address} is not an address of the lab")),
    }
}

/// The signature of the From mailbox: a user's display name and title, a group's name, or for
/// an outside sender the display name in the message.
fn signature_for(world: &World, facts: &Facts) -> mime::Signature {
    let organization = world.tenant.display_name.clone();
    let address = facts.from_address.as_deref().unwrap_or_default();
    if let Some(user) = world.directory.user_by_address(address) {
        return mime::Signature {
            name: user.display_name.clone(),
            title: user.title.clone(),
            organization,
        };
    }
    let group = world
        .directory
        .by_smtp(address)
        .and_then(|id| world.directory.groups.get(&id));
    let name = match group {
        Some(group) => group.cn.clone(),
        None => facts
            .from_name
            .clone()
            .unwrap_or_else(|| address.to_string()),
    };
    mime::Signature {
        name,
        title: None,
        organization,
    }
}

/// Facts read from the submitted message.
struct Facts {
    message_id: String,
    subject: String,
    from_address: Option<String>,
    from_name: Option<String>,
    sender_address: Option<String>,
    recipients: Vec<String>,
    sent: DateTime<Utc>,
}

impl Facts {
    fn read(raw: &[u8]) -> Result<Self, TransportError> {
        let parsed = MessageParser::default()
            .parse(raw)
            .ok_or(TransportError::Unparseable)?;
        let headers = HeaderBlock::parse(raw, 0..raw.len());
        let first = |address: Option<&mail_parser::Address<'_>>| {
            address.and_then(|a| a.first()).map(|a| {
                (
                    a.address().map(str::to_string),
                    a.name().map(str::to_string),
                )
            })
        };
        let (from_address, from_name) = first(parsed.from()).unwrap_or_default();
        let (sender_address, _) = first(parsed.sender()).unwrap_or_default();
        let mut recipients: Vec<String> = Vec::new();
        for address in parsed.to().into_iter().chain(parsed.cc()) {
            for addr in address.iter() {
                if let Some(a) = addr.address()
                    && !recipients.iter().any(|r| r.eq_ignore_ascii_case(a))
                {
                    recipients.push(a.to_string());
                }
            }
        }
        let sent = parsed
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
            .unwrap_or_else(Utc::now);
        Ok(Self {
            message_id: headers
                .last("Message-ID")
                .map(|f| f.value.clone())
                .unwrap_or_default(),
            subject: parsed.subject().unwrap_or_default().to_string(),
            from_address,
            from_name,
            sender_address,
            recipients,
            sent,
        })
    }

    /// The Sender address when it differs from From: the delegate of Send on Behalf.
    fn sender_on_behalf(&self) -> Option<&str> {
        let sender = self.sender_address.as_deref()?;
        let differs = self
            .from_address
            .as_deref()
            .is_none_or(|from| !from.eq_ignore_ascii_case(sender));
        differs.then_some(sender)
    }

    /// The Sent Items item a mail client creates: read, not a draft, sent at the Date.
    fn original_item(&self, mime: &[u8]) -> Item {
        let now = Utc::now();
        Item {
            id: 0,
            change: 1,
            mime: mime.to_vec(),
            internet_message_id: Some(self.message_id.clone()),
            subject: self.subject.clone(),
            from: self.from_address.clone(),
            recipients: self.recipients.clone(),
            sent: Some(self.sent),
            delivered: Some(now),
            created: now,
            message_flags: MSGFLAG_READ,
            extended: Vec::new(),
        }
    }
}

/// A processed message for the spool.
struct ProcessedCopy {
    bytes: Vec<u8>,
    /// Index (from 1) and count of a split copy.
    split: Option<(usize, usize)>,
}

/// One processed copy per recipient, each with only that recipient in To, no Cc, and a new
/// Message-ID, as a rules engine that splits messages sends them.
fn split_copies(
    signed: &[u8],
    facts: &Facts,
    domain: &str,
    notes: &mut Vec<String>,
) -> Vec<ProcessedCopy> {
    if facts.recipients.is_empty() {
        notes.push("split mode: the message has no To or Cc recipient, so one copy".into());
        return vec![ProcessedCopy {
            bytes: signed.to_vec(),
            split: Some((1, 1)),
        }];
    }
    let eol = header::line_ending(signed);
    let headers = HeaderBlock::parse(signed, 0..signed.len());
    let count = facts.recipients.len();
    facts
        .recipients
        .iter()
        .enumerate()
        .map(|(i, recipient)| {
            let mut edits = Edits::default();
            headers.set(
                signed,
                &mut edits,
                "To",
                Some(header::field_line("To", recipient, eol)),
            );
            headers.set(signed, &mut edits, "Cc", None);
            let message_id = new_message_id(domain);
            headers.set(
                signed,
                &mut edits,
                "Message-ID",
                Some(header::field_line("Message-ID", &message_id, eol)),
            );
            ProcessedCopy {
                bytes: edits.apply(signed),
                split: Some((i + 1, count)),
            }
        })
        .collect()
}
