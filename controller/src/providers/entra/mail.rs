//! Exchange Online mail through Microsoft Graph, for the update loop. The client finds an
//! original in a mailbox's Sent Items by its Internet Message-ID, saves the processed copy
//! there as a sent (not draft) message, deletes the original, and marks items with a named
//! property.
//!
//! # Which route creates the copy
//!
//! Graph creates a message from MIME with `POST /users/{id}/messages` or
//! `POST /users/{id}/mailFolders/{folder}/messages`, `Content-Type: text/plain` and the MIME
//! base64-encoded as the body, so the MIME route can target `sentitems` directly without a
//! move (see <https://learn.microsoft.com/graph/api/user-post-messages>). Every message it
//! creates is a draft: `isDraft` is `true` because `PR_MESSAGE_FLAGS` (`0x0E07`) has
//! `MSGFLAG_UNSENT` set, and the body is base64 text, so no extended property can go with it.
//! Exchange makes `PR_MESSAGE_FLAGS` read-only once the message is first saved ([MS-OXCMSG]
//! 2.2.1.6, `PidTagMessageFlags`), so the draft flag cannot be cleared afterwards.
//! [`GraphClient::create_draft_from_mime`] is kept for callers that want the draft anyway.
//!
//! The copy in Sent Items is therefore created with the JSON form instead, by
//! [`GraphClient::create_sent_item`]. The message properties come from the MIME, parsed by
//! [`SentItem::from_mime`]. At creation, `singleValueExtendedProperties` set
//! `PR_MESSAGE_FLAGS` to `MSGFLAG_READ` without `MSGFLAG_UNSENT`, and carry the original's
//! sent time (`PR_CLIENT_SUBMIT_TIME`, `PR_MESSAGE_DELIVERY_TIME`) and Internet Message-ID
//! (`PR_INTERNET_MESSAGE_ID`, `0x1035`). The JSON form loses what Graph's message resource
//! cannot express: S/MIME structure, most Internet headers, and the exact MIME layout.
//!
//! # Limits
//!
//! - A request body is limited to 4 MB, the MIME route included (HTTP 413 above it), and
//!   base64 makes attachments a third larger. Larger attachments need upload sessions, which
//!   this client does not implement: [`create_sent_item`](GraphClient::create_sent_item)
//!   rejects larger messages before sending them.
//! - Outlook resources are throttled per application and mailbox: 10,000 requests in
//!   10 minutes, and 4 concurrent requests (see
//!   <https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits>). The update
//!   loop keeps its per-mailbox concurrency at 4 or below; 429 responses are retried by
//!   [`GraphClient`] after `Retry-After`.
//!
//! [MS-OXCMSG]: https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcmsg/a0c52fe2-3014-43a7-942d-f43f6f91c366

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use http::Method;
use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::graph::{Call, GraphClient, GraphError, GraphTarget, RequestBody};
use super::odata::{Query, eq, path_segment, string_literal};

/// The largest request body Graph accepts for a message, in bytes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The well-known name of the Sent Items folder; never its localized display name.
pub const SENT_ITEMS: &str = "sentitems";

/// `PR_MESSAGE_FLAGS` bit: the message has been read.
pub const MSGFLAG_READ: i32 = 0x0001;
/// `PR_MESSAGE_FLAGS` bit: the message is a draft.
pub const MSGFLAG_UNSENT: i32 = 0x0008;

/// Extended property ID of `PR_MESSAGE_FLAGS`.
const MESSAGE_FLAGS: &str = "Integer 0x0E07";
/// Extended property ID of `PR_MESSAGE_SIZE`.
const MESSAGE_SIZE: &str = "Integer 0x0E08";
/// Extended property ID of `PR_CLIENT_SUBMIT_TIME`, the time the sender sent the message.
const CLIENT_SUBMIT_TIME: &str = "SystemTime 0x0039";
/// Extended property ID of `PR_MESSAGE_DELIVERY_TIME`.
const MESSAGE_DELIVERY_TIME: &str = "SystemTime 0x0E06";
/// Extended property ID of `PR_INTERNET_MESSAGE_ID`.
const INTERNET_MESSAGE_ID: &str = "String 0x1035";

const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "internetMessageId",
    "subject",
    "sentDateTime",
    "createdDateTime",
    "receivedDateTime",
    "isDraft",
    "parentFolderId",
];

/// A named string property in the public-strings space of a custom property set, such as
/// the marker that the update loop puts on rewritten items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedProperty {
    /// The property set GUID.
    pub set: Uuid,
    /// The property name, such as `siuctl-rewritten`.
    pub name: String,
}

impl NamedProperty {
    /// Returns the Graph extended property ID, `String {GUID} Name <name>`.
    pub fn id(&self) -> String {
        format!("String {{{}}} Name {}", self.set, self.name)
    }
}

/// A message as the update loop reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMessage {
    /// The item ID.
    pub id: String,
    /// The Internet Message-ID, with angle brackets.
    pub internet_message_id: Option<String>,
    /// The subject.
    pub subject: Option<String>,
    /// When the message was sent.
    pub sent_date_time: Option<DateTime<Utc>>,
    /// When the item was created in the mailbox.
    pub created_date_time: Option<DateTime<Utc>>,
    /// When the message arrived.
    pub received_date_time: Option<DateTime<Utc>>,
    /// Whether the item is a draft.
    pub is_draft: bool,
    /// The folder's ID.
    pub parent_folder_id: Option<String>,
    /// `PR_MESSAGE_SIZE` in bytes, when Graph returned it.
    pub size: Option<u64>,
    /// The value of the requested named property, when the item has it.
    pub marker: Option<String>,
    /// Every extended property that the request expanded and the item has.
    pub properties: Vec<ExtendedProperty>,
}

impl MailMessage {
    /// Returns the value of the expanded extended property `id`, such as
    /// `SystemTime 0x0E06` or a [`NamedProperty::id`].
    pub fn property(&self, id: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|property| same_property(&property.id, id))
            .map(|property| property.value.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire {
    id: String,
    #[serde(default)]
    internet_message_id: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    sent_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    created_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    received_date_time: Option<DateTime<Utc>>,
    #[serde(default)]
    is_draft: Option<bool>,
    #[serde(default)]
    parent_folder_id: Option<String>,
    #[serde(default)]
    single_value_extended_properties: Vec<ExtendedProperty>,
}

/// One single-value extended property.
///
/// See <https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedProperty {
    /// The property ID, such as `Integer 0x0E07`.
    pub id: String,
    /// The value as a string.
    pub value: String,
}

/// Compares property IDs the way Exchange does: case-insensitively, and with `0x0E08` equal
/// to `0xe08`, because Graph returns tags without leading zeros.
fn same_property(left: &str, right: &str) -> bool {
    fn normalize(id: &str) -> String {
        id.split(' ')
            .map(
                |part| match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                    Some(hex) => format!("0x{}", hex.trim_start_matches('0').to_ascii_lowercase()),
                    None => part.to_ascii_lowercase(),
                },
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
    normalize(left) == normalize(right)
}

impl MessageWire {
    fn into_message(self, marker: Option<&NamedProperty>) -> MailMessage {
        let property = |id: &str| {
            self.single_value_extended_properties
                .iter()
                .find(|property| same_property(&property.id, id))
                .map(|property| property.value.clone())
        };
        let size = property(MESSAGE_SIZE).and_then(|value| value.parse().ok());
        let marker = marker.and_then(|marker| property(&marker.id()));
        MailMessage {
            id: self.id,
            internet_message_id: self.internet_message_id,
            subject: self.subject,
            sent_date_time: self.sent_date_time,
            created_date_time: self.created_date_time,
            received_date_time: self.received_date_time,
            is_draft: self.is_draft.unwrap_or(false),
            parent_folder_id: self.parent_folder_id,
            size,
            marker,
            properties: self.single_value_extended_properties,
        }
    }
}

/// An email address with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    /// The address and name.
    #[serde(rename = "emailAddress")]
    pub email_address: EmailAddress,
}

/// The address part of a [`Recipient`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailAddress {
    /// The SMTP address.
    pub address: String,
    /// The display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// `html` or `text`.
    pub content_type: String,
    /// The body.
    pub content: String,
}

/// A file attachment, inline (referenced by `cid:` from the HTML body) or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileAttachment {
    #[serde(rename = "@odata.type")]
    odata_type: &'static str,
    /// The file name.
    pub name: String,
    /// The MIME type.
    pub content_type: String,
    /// The contents in base64.
    pub content_bytes: String,
    /// Whether the HTML body shows it inline.
    pub is_inline: bool,
    /// The `Content-ID` without angle brackets, for inline parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// The JSON form of a sent message to save in Sent Items.
///
/// See <https://learn.microsoft.com/graph/api/resources/message>.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentItem {
    /// The subject.
    pub subject: String,
    /// The body, HTML when the MIME has an HTML part.
    pub body: ItemBody,
    /// The author (`From`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    /// The sending mailbox (`Sender`), when it differs from `From`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Recipient>,
    /// `To` recipients.
    pub to_recipients: Vec<Recipient>,
    /// `Cc` recipients.
    pub cc_recipients: Vec<Recipient>,
    /// `Bcc` recipients.
    pub bcc_recipients: Vec<Recipient>,
    /// `Reply-To` addresses.
    pub reply_to: Vec<Recipient>,
    /// Always `true`: the sender has seen their own message.
    pub is_read: bool,
    /// File attachments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<FileAttachment>,
    /// MAPI properties set at creation: flags, sent time, Message-ID and markers.
    pub single_value_extended_properties: Vec<ExtendedProperty>,
}

impl SentItem {
    /// Builds the JSON form of a sent message from its MIME, with `PR_MESSAGE_FLAGS` set to
    /// read and not a draft, the sent time from `sent` (or the `Date` header), and the
    /// `Message-ID` in `PR_INTERNET_MESSAGE_ID`.
    pub fn from_mime(mime: &[u8], sent: Option<DateTime<Utc>>) -> Result<Self, MimeError> {
        let message = MessageParser::default()
            .parse(mime)
            .ok_or(MimeError::Unparseable)?;
        let recipients = |address: Option<&mail_parser::Address<'_>>| -> Vec<Recipient> {
            address
                .map(|address| {
                    address
                        .iter()
                        .filter_map(|addr| {
                            Some(Recipient {
                                email_address: EmailAddress {
                                    address: addr.address()?.to_owned(),
                                    name: addr.name().map(str::to_owned),
                                },
                            })
                        })
                        .collect()
                })
                .unwrap_or_default()
        };

        // 1. Body: HTML when there is an HTML part, else text.
        let body = match message.body_html(0) {
            Some(html) if message.html_body_count() > 0 => ItemBody {
                content_type: "html".to_owned(),
                content: html.into_owned(),
            },
            _ => ItemBody {
                content_type: "text".to_owned(),
                content: message
                    .body_text(0)
                    .map(|text| text.into_owned())
                    .unwrap_or_default(),
            },
        };

        // 2. Attachments, inline images included.
        let attachments = message
            .attachments()
            .map(|part| {
                let content_type = part
                    .content_type()
                    .map(|ctype| match ctype.subtype() {
                        Some(subtype) => format!("{}/{}", ctype.ctype(), subtype),
                        None => ctype.ctype().to_owned(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".to_owned());
                let is_inline = part
                    .content_disposition()
                    .is_some_and(|disposition| disposition.is_inline());
                FileAttachment {
                    odata_type: "#microsoft.graph.fileAttachment",
                    name: part.attachment_name().unwrap_or("attachment").to_owned(),
                    content_type,
                    content_bytes: STANDARD.encode(part.contents()),
                    is_inline,
                    content_id: part.content_id().map(str::to_owned),
                }
            })
            .collect();

        // 3. MAPI properties that make the item a sent message.
        let sent = sent
            .or_else(|| {
                message
                    .date()
                    .and_then(|date| DateTime::from_timestamp(date.to_timestamp(), 0))
            })
            .ok_or(MimeError::MissingDate)?;
        let sent = sent.to_rfc3339_opts(SecondsFormat::Secs, true);
        let mut properties = vec![
            ExtendedProperty {
                id: MESSAGE_FLAGS.to_owned(),
                value: MSGFLAG_READ.to_string(),
            },
            ExtendedProperty {
                id: CLIENT_SUBMIT_TIME.to_owned(),
                value: sent.clone(),
            },
            ExtendedProperty {
                id: MESSAGE_DELIVERY_TIME.to_owned(),
                value: sent,
            },
        ];
        if let Some(message_id) = message.message_id() {
            properties.push(ExtendedProperty {
                id: INTERNET_MESSAGE_ID.to_owned(),
                value: format!("<{message_id}>"),
            });
        }

        let from = recipients(message.from()).into_iter().next();
        let sender = recipients(message.sender())
            .into_iter()
            .next()
            .filter(|sender| Some(sender) != from.as_ref());
        Ok(Self {
            subject: message.subject().unwrap_or_default().to_owned(),
            body,
            from,
            sender,
            to_recipients: recipients(message.to()),
            cc_recipients: recipients(message.cc()),
            bcc_recipients: recipients(message.bcc()),
            reply_to: recipients(message.reply_to()),
            is_read: true,
            attachments,
            single_value_extended_properties: properties,
        })
    }

    /// Sets `PR_MESSAGE_DELIVERY_TIME`, which [`from_mime`](Self::from_mime) sets to the sent
    /// time.
    pub fn with_delivery_time(mut self, delivered: DateTime<Utc>) -> Self {
        let value = delivered.to_rfc3339_opts(SecondsFormat::Secs, true);
        self.single_value_extended_properties
            .retain(|property| !same_property(&property.id, MESSAGE_DELIVERY_TIME));
        self.single_value_extended_properties
            .push(ExtendedProperty {
                id: MESSAGE_DELIVERY_TIME.to_owned(),
                value,
            });
        self
    }

    /// Adds a named property, such as the update loop's rewrite marker.
    pub fn with_property(mut self, property: &NamedProperty, value: &str) -> Self {
        self.single_value_extended_properties
            .push(ExtendedProperty {
                id: property.id(),
                value: value.to_owned(),
            });
        self
    }
}

/// A MIME message that cannot be turned into a sent item.
#[derive(Debug, thiserror::Error)]
pub enum MimeError {
    /// The bytes are not an RFC 5322 message.
    #[error("invalid MIME message: no RFC 5322 header section found")]
    Unparseable,
    /// There is no sent time: no `Date` header and none given.
    #[error("the MIME message has no Date header and no sent time was given")]
    MissingDate,
}

fn mailbox_path(mailbox: &str) -> String {
    format!("users/{}", path_segment(mailbox))
}

impl GraphClient {
    /// Finds the messages in a mailbox's Sent Items with this Internet Message-ID (angle
    /// brackets included), with `PR_MESSAGE_SIZE` and, when given, the named property
    /// `marker` expanded. Split copies can share one Message-ID, so there can be several.
    pub async fn find_sent_items_by_internet_message_id(
        &self,
        mailbox: &str,
        internet_message_id: &str,
        marker: Option<&NamedProperty>,
    ) -> Result<Vec<MailMessage>, GraphError> {
        let mut properties = vec![MESSAGE_SIZE.to_owned()];
        properties.extend(marker.map(NamedProperty::id));
        let mut messages = self
            .find_sent_items(
                mailbox,
                &eq("internetMessageId", internet_message_id),
                &properties,
            )
            .await?;
        for message in &mut messages {
            message.marker =
                marker.and_then(|marker| message.property(&marker.id()).map(str::to_owned));
        }
        Ok(messages)
    }

    /// Finds up to 100 messages in a mailbox's Sent Items that match the OData `filter`, with
    /// the extended properties whose IDs are in `properties` expanded (`PR_MESSAGE_SIZE` also
    /// fills [`MailMessage::size`]).
    pub async fn find_sent_items(
        &self,
        mailbox: &str,
        filter: &str,
        properties: &[String],
    ) -> Result<Vec<MailMessage>, GraphError> {
        #[derive(Deserialize)]
        struct Collection {
            value: Vec<MessageWire>,
        }
        let target = GraphTarget::new(
            "find sent item",
            format!("mailbox {mailbox}, filter {filter}"),
        );
        let mut query = Query::new().filter(filter).select(MESSAGE_FIELDS).top(100);
        if !properties.is_empty() {
            let wanted: Vec<String> = properties
                .iter()
                .map(|id| format!("id eq {}", string_literal(id)))
                .collect();
            query = query.expand(format!(
                "singleValueExtendedProperties($filter={})",
                wanted.join(" or ")
            ));
        }
        let url = self.url(
            &format!(
                "{}/mailFolders/{SENT_ITEMS}/messages",
                mailbox_path(mailbox)
            ),
            &query,
        );
        let page: Collection = self.json(Call::get(target, url)).await?;
        Ok(page
            .value
            .into_iter()
            .map(|message| message.into_message(None))
            .collect())
    }

    /// Creates a sent (not draft) message in the mailbox's Sent Items from its JSON form.
    ///
    /// `PR_MESSAGE_FLAGS` can only be set when the message is created, so this uses the JSON
    /// form. The module documentation explains why the MIME route cannot.
    //
    // TODO-correctness: the flags, times and Message-ID set through extended properties at
    // creation are checked against the lab only, not against Exchange Online.
    pub async fn create_sent_item(
        &self,
        mailbox: &str,
        item: &SentItem,
    ) -> Result<MailMessage, GraphError> {
        let target = GraphTarget::new("create sent item", format!("mailbox {mailbox}"));
        let body = RequestBody::json(item);
        if body.bytes.len() > MAX_REQUEST_BYTES {
            return Err(GraphError::RequestTooLarge {
                target,
                size: body.bytes.len(),
                limit: MAX_REQUEST_BYTES,
            });
        }
        let url = self.url(
            &format!(
                "{}/mailFolders/{SENT_ITEMS}/messages",
                mailbox_path(mailbox)
            ),
            &Query::new(),
        );
        let call = Call::get(target, url).with_body(Method::POST, body);
        let created: MessageWire = self.json(call).await?;
        Ok(created.into_message(None))
    }

    /// Creates a message from MIME in `folder` (an ID or well-known name) with
    /// `POST /users/{id}/mailFolders/{folder}/messages` and a base64 `text/plain` body.
    ///
    /// The result is always a draft: Graph sets `MSGFLAG_UNSENT`, and `PR_MESSAGE_FLAGS`
    /// cannot be changed after creation. Use [`create_sent_item`](Self::create_sent_item)
    /// for a copy that must look sent. The base64 body must fit in 4 MB.
    pub async fn create_draft_from_mime(
        &self,
        mailbox: &str,
        folder: &str,
        mime: &[u8],
    ) -> Result<MailMessage, GraphError> {
        let target = GraphTarget::new("create message from MIME", format!("mailbox {mailbox}"));
        let encoded = STANDARD.encode(mime);
        if encoded.len() > MAX_REQUEST_BYTES {
            return Err(GraphError::RequestTooLarge {
                target,
                size: encoded.len(),
                limit: MAX_REQUEST_BYTES,
            });
        }
        let url = self.url(
            &format!(
                "{}/mailFolders/{}/messages",
                mailbox_path(mailbox),
                path_segment(folder)
            ),
            &Query::new(),
        );
        let body = RequestBody {
            content_type: "text/plain",
            bytes: encoded.into_bytes().into(),
        };
        let created: MessageWire = self
            .json(Call::get(target, url).with_body(Method::POST, body))
            .await?;
        Ok(created.into_message(None))
    }

    /// Deletes a message (it moves to Deleted Items, as a delete in Outlook does).
    pub async fn delete_message(&self, mailbox: &str, message_id: &str) -> Result<(), GraphError> {
        let target = GraphTarget::new(
            "delete message",
            format!("mailbox {mailbox}, item {message_id}"),
        );
        let url = self.url(
            &format!(
                "{}/messages/{}",
                mailbox_path(mailbox),
                path_segment(message_id)
            ),
            &Query::new(),
        );
        let mut call = Call::get(target, url);
        call.method = Method::DELETE;
        self.send(call).await
    }

    /// Sets a named string property on an existing message.
    pub async fn set_extended_property(
        &self,
        mailbox: &str,
        message_id: &str,
        property: &NamedProperty,
        value: &str,
    ) -> Result<(), GraphError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Update {
            single_value_extended_properties: Vec<ExtendedProperty>,
        }
        let target = GraphTarget::new(
            "set message property",
            format!(
                "mailbox {mailbox}, item {message_id}, property {}",
                property.name
            ),
        );
        let url = self.url(
            &format!(
                "{}/messages/{}",
                mailbox_path(mailbox),
                path_segment(message_id)
            ),
            &Query::new(),
        );
        let body = Update {
            single_value_extended_properties: vec![ExtendedProperty {
                id: property.id(),
                value: value.to_owned(),
            }],
        };
        self.send(Call::get(target, url).with_body(Method::PATCH, RequestBody::json(&body)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::entra::graph::tests::{
        client, fast_options, json_response, path_of, query_pairs,
    };
    use crate::providers::exchange::test_server::TestServer;

    const MIME: &str = "From: Alice Archer <alice@lab.example>\r\n\
        To: Bob Baker <bob@lab.example>, carol@lab.example\r\n\
        Cc: dave@lab.example\r\n\
        Subject: Quarterly figures\r\n\
        Date: Tue, 04 Mar 2025 10:00:05 +0000\r\n\
        Message-ID: <abc.123@lab.example>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
        \r\n\
        --b1\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        \r\n\
        <p>Figures attached.</p><p>-- Signature</p>\r\n\
        --b1\r\n\
        Content-Type: application/pdf; name=\"q1.pdf\"\r\n\
        Content-Disposition: attachment; filename=\"q1.pdf\"\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        JVBERi0xLjQK\r\n\
        --b1--\r\n";

    fn marker() -> NamedProperty {
        NamedProperty {
            set: uuid::uuid!("1b2c3d4e-0000-4000-8000-000000000001"),
            name: "siuctl-rewritten".to_owned(),
        }
    }

    #[test]
    fn sent_item_from_mime_is_not_a_draft() {
        let item = SentItem::from_mime(MIME.as_bytes(), None).unwrap();
        assert_eq!(item.subject, "Quarterly figures");
        assert_eq!(item.body.content_type, "html");
        assert!(item.body.content.contains("-- Signature"));
        assert_eq!(
            item.from.as_ref().unwrap().email_address.address,
            "alice@lab.example"
        );
        assert_eq!(
            item.from.as_ref().unwrap().email_address.name.as_deref(),
            Some("Alice Archer")
        );
        assert_eq!(item.sender, None, "Sender equal to From is left out");
        assert_eq!(item.to_recipients.len(), 2);
        assert_eq!(item.cc_recipients.len(), 1);
        assert_eq!(item.attachments.len(), 1);
        assert_eq!(item.attachments[0].name, "q1.pdf");
        assert_eq!(item.attachments[0].content_type, "application/pdf");
        assert_eq!(
            STANDARD.decode(&item.attachments[0].content_bytes).unwrap(),
            b"%PDF-1.4\n"
        );

        let property = |id: &str| {
            item.single_value_extended_properties
                .iter()
                .find(|property| property.id == id)
                .map(|property| property.value.as_str())
        };
        let flags: i32 = property("Integer 0x0E07").unwrap().parse().unwrap();
        assert_eq!(flags & MSGFLAG_UNSENT, 0, "the draft bit must be clear");
        assert_eq!(flags & MSGFLAG_READ, MSGFLAG_READ);
        assert_eq!(property("SystemTime 0x0039"), Some("2025-03-04T10:00:05Z"));
        assert_eq!(property("SystemTime 0x0E06"), Some("2025-03-04T10:00:05Z"));
        assert_eq!(property("String 0x1035"), Some("<abc.123@lab.example>"));
    }

    #[test]
    fn sent_time_argument_wins_over_date() {
        let sent = DateTime::parse_from_rfc3339("2025-03-04T11:00:00Z")
            .unwrap()
            .to_utc();
        let item = SentItem::from_mime(MIME.as_bytes(), Some(sent)).unwrap();
        let submit = item
            .single_value_extended_properties
            .iter()
            .find(|property| property.id == "SystemTime 0x0039")
            .unwrap();
        assert_eq!(submit.value, "2025-03-04T11:00:00Z");
    }

    #[test]
    fn mime_without_date_needs_a_sent_time() {
        let mime = "From: a@lab.example\r\nSubject: x\r\n\r\nbody\r\n";
        let error = SentItem::from_mime(mime.as_bytes(), None).unwrap_err();
        assert!(matches!(error, MimeError::MissingDate), "{error:?}");
    }

    #[test]
    fn property_ids_compare_like_exchange() {
        assert!(same_property("Integer 0x0E08", "Integer 0xe08"));
        assert!(same_property(
            "String {1B2C3D4E-0000-4000-8000-000000000001} Name siuctl-rewritten",
            &marker().id()
        ));
        assert!(!same_property("Integer 0x0E08", "Integer 0x0E07"));
    }

    #[tokio::test]
    async fn find_filters_sent_items_and_expands_properties() {
        let server = TestServer::http(|_| {
            json_response(
                200,
                serde_json::json!({"value": [{
                    "id": "AAMkAD1=",
                    "internetMessageId": "<it's@lab.example>",
                    "sentDateTime": "2025-03-04T10:00:05Z",
                    "createdDateTime": "2025-03-04T10:00:06Z",
                    "isDraft": false,
                    "singleValueExtendedProperties": [
                        {"id": "Integer 0xe08", "value": "2048"},
                        {"id": "String {1b2c3d4e-0000-4000-8000-000000000001} Name siuctl-rewritten", "value": "v1"}
                    ]
                }]}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let found = client
            .find_sent_items_by_internet_message_id(
                "alice@lab.example",
                "<it's@lab.example>",
                Some(&marker()),
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].size, Some(2048));
        assert_eq!(found[0].marker.as_deref(), Some("v1"));
        assert!(!found[0].is_draft);

        let request = &server.recorded()[0];
        assert_eq!(
            path_of(request),
            "/v1.0/users/alice%40lab.example/mailFolders/sentitems/messages"
        );
        let pairs = query_pairs(request);
        assert_eq!(
            pairs[0],
            (
                "$filter".to_owned(),
                "internetMessageId eq '<it''s@lab.example>'".to_owned()
            )
        );
        let expand = &pairs.iter().find(|(name, _)| name == "$expand").unwrap().1;
        assert_eq!(
            expand,
            &format!(
                "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08' or id eq '{}')",
                marker().id()
            )
        );
    }

    #[tokio::test]
    async fn create_sent_item_posts_json_to_sent_items() {
        let server = TestServer::http(|_| {
            json_response(201, serde_json::json!({"id": "AAMkNEW=", "isDraft": false}))
        })
        .await;
        let client = client(&server, fast_options());
        let item = SentItem::from_mime(MIME.as_bytes(), None)
            .unwrap()
            .with_property(&marker(), "v1");
        let created = client
            .create_sent_item("alice@lab.example", &item)
            .await
            .unwrap();
        assert_eq!(created.id, "AAMkNEW=");

        let request = &server.recorded()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(
            path_of(request),
            "/v1.0/users/alice%40lab.example/mailFolders/sentitems/messages"
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["isRead"], true);
        assert_eq!(
            body["attachments"][0]["@odata.type"],
            "#microsoft.graph.fileAttachment"
        );
        let properties = body["singleValueExtendedProperties"].as_array().unwrap();
        assert!(
            properties
                .iter()
                .any(|property| property["id"] == "Integer 0x0E07" && property["value"] == "1")
        );
        assert!(
            properties
                .iter()
                .any(|property| property["id"] == marker().id().as_str())
        );
    }

    #[tokio::test]
    async fn oversized_sent_item_is_rejected_before_sending() {
        let server = TestServer::http(|_| json_response(201, serde_json::json!({"id": "x"}))).await;
        let client = client(&server, fast_options());
        let mut item = SentItem::from_mime(MIME.as_bytes(), None).unwrap();
        item.body.content = "x".repeat(MAX_REQUEST_BYTES);
        let error = client
            .create_sent_item("alice@lab.example", &item)
            .await
            .unwrap_err();
        assert!(
            matches!(error, GraphError::RequestTooLarge { .. }),
            "{error:?}"
        );
        assert!(server.recorded().is_empty());
    }

    #[tokio::test]
    async fn mime_draft_is_base64_text() {
        let server = TestServer::http(|_| {
            json_response(
                201,
                serde_json::json!({"id": "AAMkDRAFT=", "isDraft": true}),
            )
        })
        .await;
        let client = client(&server, fast_options());
        let created = client
            .create_draft_from_mime("alice@lab.example", SENT_ITEMS, MIME.as_bytes())
            .await
            .unwrap();
        assert!(created.is_draft);

        let request = &server.recorded()[0];
        assert_eq!(request.header("content-type"), Some("text/plain"));
        assert_eq!(
            STANDARD.decode(request.body.trim()).unwrap(),
            MIME.as_bytes()
        );
    }

    #[tokio::test]
    async fn delete_and_set_property_address_the_item() {
        let server = TestServer::http(|_| json_response(204, serde_json::json!({}))).await;
        let client = client(&server, fast_options());
        client
            .delete_message("alice@lab.example", "AAMk/1=")
            .await
            .unwrap();
        client
            .set_extended_property("alice@lab.example", "AAMk/1=", &marker(), "v1")
            .await
            .unwrap();

        let requests = server.recorded();
        assert_eq!(requests[0].method, "DELETE");
        assert_eq!(
            path_of(&requests[0]),
            "/v1.0/users/alice%40lab.example/messages/AAMk%2F1%3D"
        );
        assert_eq!(requests[1].method, "PATCH");
        let body: serde_json::Value = serde_json::from_str(&requests[1].body).unwrap();
        assert_eq!(
            body["singleValueExtendedProperties"][0]["id"],
            marker().id().as_str()
        );
    }
}
