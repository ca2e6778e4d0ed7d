//! Test doubles of the update loop: an in-memory Sent Items and a directory.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::message::SpoolMessage;
use super::recipients::{EwsAnswer, LookupError, MailboxProbe, RecipientDirectory};
use super::store::{Deleted, FoundItem, Replacement, SentItemsStore, StoreError};
use crate::providers::directory::{Recipient, RecipientKind};

/// An in-memory Sent Items with a switch that fails the next delete, for crash tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    /// The items of the one mailbox, in creation order.
    pub items: Mutex<Vec<FoundItem>>,
    /// The number of the last created item.
    pub next_id: Mutex<u32>,
    /// Fails the next delete with HTTP 500 when set.
    pub fail_next_delete: Mutex<bool>,
    /// Replacements created so far.
    pub creates: Mutex<u32>,
}

impl MemoryStore {
    /// Returns a store with one original.
    pub fn with_original(id: &str, message_id: &str, sent: &str, size: u64) -> Self {
        let store = Self::default();
        store.add_original(id, message_id, sent, size);
        store
    }

    /// Adds an original sent at `sent` (RFC 3339).
    pub fn add_original(&self, id: &str, message_id: &str, sent: &str, size: u64) {
        self.items.lock().unwrap().push(FoundItem {
            id: id.to_owned(),
            internet_message_id: Some(message_id.to_owned()),
            sent: Some(sent.parse().expect("time")),
            delivered: Some(sent.parse().expect("time")),
            size: Some(size),
            source_key: None,
            marked_original: None,
            replaced_item: None,
        });
    }

    /// Returns the IDs of every item.
    pub fn ids(&self) -> Vec<String> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .map(|item| item.id.clone())
            .collect()
    }

    /// Returns the replacements.
    pub fn marked(&self) -> Vec<FoundItem> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .filter(|item| item.is_marked())
            .cloned()
            .collect()
    }
}

#[async_trait]
impl SentItemsStore for MemoryStore {
    fn service(&self) -> &'static str {
        "memory"
    }

    fn server_key(&self) -> &str {
        "memory"
    }

    async fn find(
        &self,
        _mailbox: &str,
        original_message_id: &str,
    ) -> Result<Vec<FoundItem>, StoreError> {
        Ok(self
            .items
            .lock()
            .unwrap()
            .iter()
            .filter(|item| {
                item.internet_message_id.as_deref() == Some(original_message_id)
                    || item.marked_original.as_deref() == Some(original_message_id)
            })
            .cloned()
            .collect())
    }

    async fn create(
        &self,
        _mailbox: &str,
        replacement: &Replacement<'_>,
    ) -> Result<String, StoreError> {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        *self.creates.lock().unwrap() += 1;
        let id = format!("created-{next}");
        let parsed = SpoolMessage::parse(replacement.mime).expect("replacement parses");
        self.items.lock().unwrap().push(FoundItem {
            id: id.clone(),
            internet_message_id: parsed.message_id,
            sent: Some(replacement.sent),
            delivered: replacement.delivered,
            size: Some(replacement.mime.len() as u64),
            source_key: Some(replacement.source_key.to_owned()),
            marked_original: Some(replacement.original_message_id.to_owned()),
            replaced_item: replacement.replaced_item.map(str::to_owned),
        });
        Ok(id)
    }

    async fn delete(&self, _mailbox: &str, item_id: &str) -> Result<Deleted, StoreError> {
        if std::mem::take(&mut *self.fail_next_delete.lock().unwrap()) {
            return Err(StoreError::Ews(
                crate::providers::exchange::ews::EwsError::ServerError {
                    target: crate::providers::exchange::ews::Target {
                        operation: "DeleteItem",
                        mailbox: None,
                    },
                    status: 500,
                    retry_after: None,
                },
            ));
        }
        let mut items = self.items.lock().unwrap();
        let before = items.len();
        items.retain(|item| item.id != item_id);
        Ok(if items.len() < before {
            Deleted::Now
        } else {
            Deleted::AlreadyGone
        })
    }
}

/// A directory of users with on-premises mailboxes, groups and nothing else.
#[derive(Debug, Default)]
pub struct FakeDirectory {
    /// Recipients by lowercase address.
    pub recipients: HashMap<String, Recipient>,
}

impl FakeDirectory {
    /// Adds a user with `msExchRecipientTypeDetails` set to `details`.
    pub fn user(mut self, address: &str, details: i64) -> Self {
        self.recipients.insert(
            address.to_owned(),
            Recipient {
                dn: format!("CN={address},DC=lab,DC=example"),
                kind: RecipientKind::User,
                user_principal_name: Some(address.to_owned()),
                mail: Some(address.to_owned()),
                smtp_addresses: vec![address.to_owned()],
                recipient_type_details: Some(details),
            },
        );
        self
    }

    /// Adds a mail-enabled group.
    pub fn group(mut self, address: &str) -> Self {
        self.recipients.insert(
            address.to_owned(),
            Recipient {
                dn: format!("CN={address},DC=lab,DC=example"),
                kind: RecipientKind::Group,
                user_principal_name: None,
                mail: Some(address.to_owned()),
                smtp_addresses: vec![address.to_owned()],
                recipient_type_details: None,
            },
        );
        self
    }
}

#[async_trait]
impl RecipientDirectory for FakeDirectory {
    async fn find_recipient(&self, address: &str) -> Result<Option<Recipient>, LookupError> {
        Ok(self.recipients.get(address).cloned())
    }
}

/// A probe that is never asked, because every fake user has a recipient type.
#[derive(Debug, Default)]
pub struct NoProbe;

#[async_trait]
impl MailboxProbe for NoProbe {
    async fn probe(&self, _address: &str) -> Result<EwsAnswer, LookupError> {
        Ok(EwsAnswer::NotAMailbox)
    }
}
