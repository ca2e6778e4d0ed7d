//! `CreateItem`: messages from MIME content or from properties, saved into a folder.
//!
//! Exchange marks a message created with `SaveOnly` as a draft (MSGFLAG_UNSENT in
//! PR_MESSAGE_FLAGS) unless PR_MESSAGE_FLAGS is set at creation; it cannot be cleared later.
//! PR_CLIENT_SUBMIT_TIME (0x0039) and PR_MESSAGE_DELIVERY_TIME (0x0E06) set at creation become
//! the sent and received times.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/createitem-operation-email-message>.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use uuid::Uuid;

use super::{enumerated, required};
use crate::World;
use crate::ews::ids::{StoreId, item_change_key};
use crate::ews::mailbox::Principal;
use crate::ews::props::{
    ExtendedPath, MimeSummary, PathError, TAG_MESSAGE_FLAGS, parse_bool, set_extended, valid_value,
};
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::Element;
use crate::world::exchange::{Item, MSGFLAG_READ, MSGFLAG_UNSENT, WellKnownFolder};

pub fn execute(
    world: &mut World,
    principal: &Principal,
    operation: &Element,
) -> Result<String, Fault> {
    let disposition = enumerated(
        operation,
        "MessageDisposition",
        &["SaveOnly", "SendOnly", "SendAndSaveCopy"],
        Some("SaveOnly"),
        "MessageDispositionType",
    )?;
    let items = required(operation, "Items")?;
    let target = match operation.child("SavedItemFolderId") {
        Some(saved) => match saved.children.first() {
            Some(folder) => principal.folder(world, folder)?,
            None => {
                return Err(Fault::schema_violation(
                    saved,
                    "The element 'SavedItemFolderId' has incomplete content.".into(),
                ));
            }
        },
        None => match principal.mailbox {
            Some(owner) => Ok((owner, default_folder(disposition))),
            None => Err(ResponseError::missing_email_address()),
        },
    };

    let mut out = String::with_capacity(1024);
    soap::open_response(&mut out, "CreateItem");
    for element in &items.children {
        let created = target.clone().and_then(|(owner, folder)| {
            if element.name != "Message" {
                return Err(ResponseError::new(
                    "ErrorInvalidOperation",
                    format!("The lab stores messages only, not '{}'.", element.name),
                ));
            }
            let item = build_message(world, owner, element, disposition)?;
            let (number, change) = (item.id, item.change);
            let stored = disposition != "SendOnly";
            if stored {
                world
                    .exchange
                    .mailboxes
                    .get_mut(&owner)
                    .expect("the principal checked the mailbox")
                    .folder_mut(folder)
                    .items
                    .push(item);
            }
            tracing::debug!(%owner, item = number, folder = folder.ews_id(), disposition, "item created");
            Ok((stored && disposition == "SaveOnly").then_some((owner, number, change)))
        });
        match created {
            Ok(id) => {
                soap::write_success_open(&mut out, "CreateItemResponseMessage");
                match id {
                    Some((owner, number, change)) => {
                        let _ = write!(
                            out,
                            r#"<m:Items><t:Message><t:ItemId Id="{}" ChangeKey="{}"/></t:Message></m:Items>"#,
                            StoreId::item(owner, number).encode(),
                            item_change_key(number, change)
                        );
                    }
                    // Exchange returns no ID for a message it sent.
                    None => out.push_str("<m:Items/>"),
                }
                out.push_str("</m:CreateItemResponseMessage>");
            }
            Err(error) => {
                error.write_open(&mut out, "CreateItemResponseMessage");
                out.push_str("<m:Items/></m:CreateItemResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "CreateItem");
    Ok(out)
}

fn default_folder(disposition: &str) -> WellKnownFolder {
    match disposition {
        "SaveOnly" => WellKnownFolder::Drafts,
        _ => WellKnownFolder::SentItems,
    }
}

fn build_message(
    world: &mut World,
    owner: Uuid,
    message: &Element,
    disposition: &str,
) -> Result<Item, ResponseError> {
    // 1. Extended properties, checked before anything is stored.
    let mut extended: Vec<(ExtendedPath, String)> = Vec::new();
    for property in message.children_named("ExtendedProperty") {
        let path = property
            .child("ExtendedFieldURI")
            .ok_or_else(invalid_value)
            .and_then(|uri| ExtendedPath::parse(uri).map_err(path_error))?;
        let Some(value) = property.child("Value").map(|v| v.text.clone()) else {
            // Multi-valued properties (`Values`) are not stored by the lab.
            return Err(invalid_value());
        };
        if !valid_value(&path.prop_type, &value) {
            return Err(invalid_value());
        }
        extended.push((path, value));
    }

    // 2. The content: MIME when given, otherwise the message's own properties.
    let owner_address = world
        .directory
        .users
        .get(&owner)
        .map(|u| u.mail.clone().unwrap_or_else(|| u.upn.clone()))
        .unwrap_or_default();
    let (mime, summary) = match message.child("MimeContent") {
        Some(content) => {
            let bytes = STANDARD
                .decode(content.text.split_whitespace().collect::<String>())
                .map_err(|_| {
                    ResponseError::new(
                        "ErrorMimeContentInvalidBase64String",
                        "Invalid base64 string for MIME content.",
                    )
                })?;
            let summary = MimeSummary::parse(&bytes).ok_or_else(|| {
                ResponseError::new(
                    "ErrorMimeContentConversionFailed",
                    "MIME conversion failed.",
                )
            })?;
            (bytes, summary)
        }
        None => {
            let bytes = compose_mime(message, &owner_address);
            let summary = MimeSummary::parse(&bytes).unwrap_or_default();
            (bytes, summary)
        }
    };
    let now = Utc::now();
    let domain = world.directory.domain.clone();
    let draft = disposition == "SaveOnly";
    let read = message
        .child_text("IsRead")
        .and_then(parse_bool)
        .unwrap_or(!draft);
    let mut recipients: Vec<String> = summary
        .to
        .iter()
        .chain(&summary.cc)
        .map(|(_, a)| a.clone())
        .collect();
    if recipients.is_empty() {
        recipients = addresses(message, "ToRecipients")
            .into_iter()
            .chain(addresses(message, "CcRecipients"))
            .collect();
    }
    let mut item = Item {
        id: world.exchange.allocate_item_id(),
        change: 1,
        internet_message_id: summary
            .message_id
            .clone()
            .or_else(|| Some(format!("<{}@{domain}>", Uuid::new_v4().simple()))),
        subject: message
            .child("Subject")
            .map(|s| s.text.clone())
            .or(summary.subject.clone())
            .unwrap_or_default(),
        from: addresses(message, "From")
            .into_iter()
            .next()
            .or(summary.from.clone())
            .or(Some(owner_address)),
        recipients,
        sent: Some(summary.date.unwrap_or(now)),
        delivered: Some(now),
        created: now,
        message_flags: if draft { MSGFLAG_UNSENT } else { 0 } | if read { MSGFLAG_READ } else { 0 },
        extended: Vec::new(),
        mime,
    };

    // 3. Extended properties last: PR_MESSAGE_FLAGS set here replaces the draft flag.
    let flags_given = extended
        .iter()
        .any(|(p, _)| p.tag == Some(TAG_MESSAGE_FLAGS));
    if flags_given {
        item.message_flags = 0;
    }
    for (path, value) in &extended {
        set_extended(&mut item, path, value);
    }
    Ok(item)
}

fn invalid_value() -> ResponseError {
    ResponseError::new(
        "ErrorInvalidExtendedPropertyValue",
        "Extended property value is invalid.",
    )
}

fn path_error(error: PathError) -> ResponseError {
    match error {
        PathError::Schema(fault) => ResponseError::new("ErrorSchemaValidation", fault.message),
        PathError::Invalid => ResponseError::new(
            "ErrorInvalidExtendedProperty",
            "The extended property attribute combination is invalid.",
        ),
    }
}

/// Collects the addresses of a recipient list element (`ToRecipients`, `From`).
fn addresses(message: &Element, list: &str) -> Vec<String> {
    message
        .child(list)
        .map(|l| {
            l.children_named("Mailbox")
                .filter_map(|m| m.child_text("EmailAddress"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Writes an RFC 5322 message for a message created from properties, as Exchange generates
/// MIME content for such items.
fn compose_mime(message: &Element, owner_address: &str) -> Vec<u8> {
    let from = addresses(message, "From")
        .into_iter()
        .next()
        .unwrap_or_else(|| owner_address.to_string());
    let to = addresses(message, "ToRecipients").join(", ");
    let subject = message
        .child("Subject")
        .map(|s| s.text.replace(['\r', '\n'], " "))
        .unwrap_or_default();
    let body = message.child("Body");
    let html = body.and_then(|b| b.attribute("BodyType")) == Some("HTML");
    let text = body.map(|b| b.text.clone()).unwrap_or_default();
    let mut mime = format!(
        "From: {from}\r\nSubject: {subject}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: {}; charset=utf-8\r\n",
        Utc::now().to_rfc2822(),
        if html { "text/html" } else { "text/plain" }
    );
    if !to.is_empty() {
        mime.push_str(&format!("To: {to}\r\n"));
    }
    mime.push_str("\r\n");
    mime.push_str(&text);
    mime.into_bytes()
}
