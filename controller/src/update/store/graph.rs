//! Sent Items of Exchange Online mailboxes over Microsoft Graph.
//!
//! Graph cannot create a sent message from MIME: its MIME route always makes a draft, so the
//! replacement is created from the message's JSON form with `PR_MESSAGE_FLAGS`, the times and
//! the markers set at creation. `docs/graph-mail.md` lists what that form loses. Deleting an
//! original moves it to Deleted Items, which is all Graph's `DELETE` offers.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Deleted, FoundItem, MARKER_PROPERTY_SET, ORIGINAL_MESSAGE_ID_PROPERTY, REPLACED_ITEM_PROPERTY,
    Replacement, SOURCE_PROPERTY, SentItemsStore, StoreError,
};
use crate::providers::entra::graph::{GraphClient, GraphError};
use crate::providers::entra::mail::{MailMessage, NamedProperty, SentItem};
use crate::providers::entra::odata::{eq, string_literal};

/// `PR_MESSAGE_DELIVERY_TIME` as a Graph extended property ID.
const DELIVERY_TIME: &str = "SystemTime 0x0E06";
/// `PR_MESSAGE_SIZE` as a Graph extended property ID.
const MESSAGE_SIZE: &str = "Integer 0x0E08";

/// [`SentItemsStore`] over a [`GraphClient`].
#[derive(Debug, Clone)]
pub struct GraphStore {
    client: Arc<GraphClient>,
    server_key: String,
}

impl GraphStore {
    /// Wraps a client. Its retries of throttled requests should be off, so that the loop's
    /// shared gates handle throttling.
    pub fn new(client: Arc<GraphClient>) -> Self {
        let server_key = client.root().to_string();
        Self { client, server_key }
    }
}

fn source_property() -> NamedProperty {
    NamedProperty {
        set: MARKER_PROPERTY_SET,
        name: SOURCE_PROPERTY.to_owned(),
    }
}

fn original_property() -> NamedProperty {
    NamedProperty {
        set: MARKER_PROPERTY_SET,
        name: ORIGINAL_MESSAGE_ID_PROPERTY.to_owned(),
    }
}

fn replaced_item_property() -> NamedProperty {
    NamedProperty {
        set: MARKER_PROPERTY_SET,
        name: REPLACED_ITEM_PROPERTY.to_owned(),
    }
}

#[async_trait]
impl SentItemsStore for GraphStore {
    fn service(&self) -> &'static str {
        "graph"
    }

    fn server_key(&self) -> &str {
        &self.server_key
    }

    async fn find(
        &self,
        mailbox: &str,
        original_message_id: &str,
    ) -> Result<Vec<FoundItem>, StoreError> {
        let properties = [
            source_property().id(),
            original_property().id(),
            replaced_item_property().id(),
            DELIVERY_TIME.to_owned(),
            MESSAGE_SIZE.to_owned(),
        ];
        // Two searches instead of one `or`: Exchange Online rejects filters that combine
        // a property with an extended property lambda as inefficient.
        let by_message_id = eq("internetMessageId", original_message_id);
        let by_marker = format!(
            "singleValueExtendedProperties/any(ep: ep/id eq {} and ep/value eq {})",
            string_literal(&original_property().id()),
            string_literal(original_message_id)
        );
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for filter in [by_message_id, by_marker] {
            for message in self
                .client
                .find_sent_items(mailbox, &filter, &properties)
                .await?
            {
                if seen.insert(message.id.clone()) {
                    found.push(found_item(message));
                }
            }
        }
        Ok(found)
    }

    async fn create(
        &self,
        mailbox: &str,
        replacement: &Replacement<'_>,
    ) -> Result<String, StoreError> {
        let mut item = SentItem::from_mime(replacement.mime, Some(replacement.sent))
            .map_err(|source| StoreError::Mime {
                mailbox: mailbox.to_owned(),
                source,
            })?
            .with_delivery_time(replacement.delivered.unwrap_or(replacement.sent))
            .with_property(&source_property(), replacement.source_key)
            .with_property(&original_property(), replacement.original_message_id);
        if let Some(replaced) = replacement.replaced_item {
            item = item.with_property(&replaced_item_property(), replaced);
        }
        let created = self.client.create_sent_item(mailbox, &item).await?;
        Ok(created.id)
    }

    async fn delete(&self, mailbox: &str, item_id: &str) -> Result<Deleted, StoreError> {
        match self.client.delete_message(mailbox, item_id).await {
            Ok(()) => Ok(Deleted::Now),
            Err(GraphError::NotFound { .. }) => Ok(Deleted::AlreadyGone),
            Err(error) => Err(error.into()),
        }
    }
}

fn found_item(message: MailMessage) -> FoundItem {
    let text = |id: &str| message.property(id).map(str::to_owned);
    let delivered = message
        .property(DELIVERY_TIME)
        .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
        .map(|time| time.with_timezone(&Utc))
        .or(message.received_date_time);
    FoundItem {
        source_key: text(&source_property().id()),
        marked_original: text(&original_property().id()),
        replaced_item: text(&replaced_item_property().id()),
        internet_message_id: message.internet_message_id.clone(),
        sent: message.sent_date_time,
        delivered,
        size: message.size,
        id: message.id,
    }
}
