//! Sent Items over EWS, impersonating each mailbox: on-premises with NTLM or Basic, Exchange
//! Online with an app-only Bearer token.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Deleted, FoundItem, MARKER_PROPERTY_SET, ORIGINAL_MESSAGE_ID_PROPERTY, REPLACED_ITEM_PROPERTY,
    Replacement, SOURCE_PROPERTY, SentItemsStore, StoreError,
};
use crate::providers::exchange::ews::types::{
    ExtendedFieldUri, ExtendedProperty, ItemId, MSGFLAG_READ, PropertyPath, PropertyType,
    SearchExpression,
};
use crate::providers::exchange::ews::{DeleteType, EwsClient, EwsError, SentItem};
use crate::update::recipients::{EwsAnswer, LookupError, MailboxProbe};

/// The disposal of replaced originals.
///
/// `SoftDelete` moves the original into the mailbox's Recoverable Items, where the user or an
/// administrator can restore it for the deleted item retention period (14 days by default)
/// and where holds still keep it. `MoveToDeletedItems` would put a near copy of every sent
/// message into Deleted Items, in front of the user. `HardDelete` would purge it, so a wrong
/// pick could never be undone.
pub const ORIGINAL_DELETE_TYPE: DeleteType = DeleteType::SoftDelete;

/// [`SentItemsStore`] over an [`EwsClient`].
#[derive(Debug, Clone)]
pub struct EwsStore {
    client: Arc<EwsClient>,
    service: &'static str,
    server_key: String,
}

impl EwsStore {
    /// Wraps a client. `service` names the path in logs and metrics: `ews` for Exchange
    /// Server, `exchangeOnline` for Exchange Online.
    pub fn new(client: Arc<EwsClient>, service: &'static str) -> Self {
        let server_key = client.endpoint().to_string();
        Self {
            client,
            service,
            server_key,
        }
    }
}

fn source_property() -> ExtendedFieldUri {
    ExtendedFieldUri::named(MARKER_PROPERTY_SET, SOURCE_PROPERTY, PropertyType::String)
}

fn original_property() -> ExtendedFieldUri {
    ExtendedFieldUri::named(
        MARKER_PROPERTY_SET,
        ORIGINAL_MESSAGE_ID_PROPERTY,
        PropertyType::String,
    )
}

fn replaced_item_property() -> ExtendedFieldUri {
    ExtendedFieldUri::named(
        MARKER_PROPERTY_SET,
        REPLACED_ITEM_PROPERTY,
        PropertyType::String,
    )
}

#[async_trait]
impl SentItemsStore for EwsStore {
    fn service(&self) -> &'static str {
        self.service
    }

    fn server_key(&self) -> &str {
        &self.server_key
    }

    async fn find(
        &self,
        mailbox: &str,
        original_message_id: &str,
    ) -> Result<Vec<FoundItem>, StoreError> {
        // One search finds the original and every replacement of it: a replacement of a
        // split copy has the copy's own Message-ID, so only the marker ties it to the
        // original.
        let restriction = SearchExpression::or(vec![
            SearchExpression::is_equal_to(
                PropertyPath::Extended(ExtendedFieldUri::internet_message_id()),
                original_message_id,
            ),
            SearchExpression::is_equal_to(
                PropertyPath::Extended(original_property()),
                original_message_id,
            ),
        ]);
        let properties = [
            ExtendedFieldUri::internet_message_id(),
            ExtendedFieldUri::message_delivery_time(),
            source_property(),
            original_property(),
            replaced_item_property(),
        ];
        let items = self
            .client
            .find_sent_items(mailbox, restriction, &properties)
            .await?;
        Ok(items.into_iter().map(found_item).collect())
    }

    async fn create(
        &self,
        mailbox: &str,
        replacement: &Replacement<'_>,
    ) -> Result<String, StoreError> {
        // PR_MESSAGE_FLAGS must be set at creation. Exchange marks an item saved with
        // SaveOnly as unsent (a draft) unless the flags are given, and the flag cannot change
        // afterwards.
        let mut properties = vec![
            ExtendedProperty::integer(ExtendedFieldUri::message_flags(), MSGFLAG_READ),
            ExtendedProperty::system_time(ExtendedFieldUri::client_submit_time(), replacement.sent),
            ExtendedProperty::system_time(
                ExtendedFieldUri::message_delivery_time(),
                replacement.delivered.unwrap_or(replacement.sent),
            ),
            ExtendedProperty::string(source_property(), replacement.source_key),
            ExtendedProperty::string(original_property(), replacement.original_message_id),
        ];
        if let Some(replaced) = replacement.replaced_item {
            properties.push(ExtendedProperty::string(replaced_item_property(), replaced));
        }
        let item = self
            .client
            .create_sent_item(mailbox, replacement.mime, properties)
            .await?;
        Ok(item.id)
    }

    async fn delete(&self, mailbox: &str, item_id: &str) -> Result<Deleted, StoreError> {
        match self
            .client
            .delete_item(mailbox, &ItemId::new(item_id), ORIGINAL_DELETE_TYPE)
            .await
        {
            Ok(()) => Ok(Deleted::Now),
            Err(EwsError::ItemNotFound { .. }) => Ok(Deleted::AlreadyGone),
            Err(error) => Err(error.into()),
        }
    }
}

fn found_item(item: SentItem) -> FoundItem {
    let text = |uri: &ExtendedFieldUri| item.extended_property(uri).map(str::to_owned);
    let delivered = item
        .extended_property(&ExtendedFieldUri::message_delivery_time())
        .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
        .map(|time| time.with_timezone(&Utc));
    FoundItem {
        internet_message_id: text(&ExtendedFieldUri::internet_message_id()),
        source_key: text(&source_property()),
        marked_original: text(&original_property()),
        replaced_item: text(&replaced_item_property()),
        sent: item.date_time_sent,
        delivered,
        size: item.size,
        id: item.item_id.id,
    }
}

/// The EWS side of recipient lookups: ResolveNames, then opening the mailbox's Sent Items
/// while impersonating it.
#[derive(Debug, Clone)]
pub struct EwsProbe {
    client: Arc<EwsClient>,
}

impl EwsProbe {
    /// Probes mailboxes through the on-premises client.
    pub fn new(client: Arc<EwsClient>) -> Self {
        Self { client }
    }
}

#[async_trait]
impl MailboxProbe for EwsProbe {
    async fn probe(&self, address: &str) -> Result<EwsAnswer, LookupError> {
        let matches = self.client.resolve_smtp_address(address).await?;
        let is_mailbox = matches.iter().any(|found| {
            found.mailbox_type.as_deref() == Some("Mailbox")
                && found
                    .email_address
                    .as_deref()
                    .is_some_and(|found| found.eq_ignore_ascii_case(address))
        });
        if !is_mailbox {
            return Ok(EwsAnswer::NotAMailbox);
        }
        match self.client.get_sent_items_folder(address).await {
            Ok(_) => Ok(EwsAnswer::OnPremises),
            Err(EwsError::NonExistentMailbox { .. }) => Ok(EwsAnswer::NotOnThisServer),
            Err(error) => Err(error.into()),
        }
    }
}
