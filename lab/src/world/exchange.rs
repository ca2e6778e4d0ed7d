//! Exchange as the lab models it: mailboxes with folders and items, management role
//! assignments and scopes, and Exchange Online's organization settings.
//!
//! One store serves both protocols: EWS and Graph read and write the same items, so an item
//! created through one is visible through the other, as in a real cloud mailbox.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fixture::MailboxLocation;

/// The distinguished (well-known) folders that the lab creates in every mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WellKnownFolder {
    /// The root of the mailbox (`root`).
    Root,
    /// The top of the information store (`msgfolderroot`).
    MsgFolderRoot,
    /// Inbox (`inbox`).
    Inbox,
    /// Drafts (`drafts`).
    Drafts,
    /// Sent Items (`sentitems`).
    SentItems,
    /// Deleted Items (`deleteditems`).
    DeletedItems,
}

impl WellKnownFolder {
    /// Every well-known folder, in creation order.
    pub const ALL: [WellKnownFolder; 6] = [
        WellKnownFolder::Root,
        WellKnownFolder::MsgFolderRoot,
        WellKnownFolder::Inbox,
        WellKnownFolder::Drafts,
        WellKnownFolder::SentItems,
        WellKnownFolder::DeletedItems,
    ];

    /// The EWS `DistinguishedFolderId` value (`sentitems`), also Graph's well-known name
    /// except for `msgfolderroot`.
    pub fn ews_id(self) -> &'static str {
        match self {
            WellKnownFolder::Root => "root",
            WellKnownFolder::MsgFolderRoot => "msgfolderroot",
            WellKnownFolder::Inbox => "inbox",
            WellKnownFolder::Drafts => "drafts",
            WellKnownFolder::SentItems => "sentitems",
            WellKnownFolder::DeletedItems => "deleteditems",
        }
    }

    /// Parses an EWS `DistinguishedFolderId` or Graph well-known folder name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|f| f.ews_id().eq_ignore_ascii_case(name))
    }

    /// The English display name that a new mailbox gets.
    pub fn default_display_name(self) -> &'static str {
        match self {
            WellKnownFolder::Root => "",
            WellKnownFolder::MsgFolderRoot => "Top of Information Store",
            WellKnownFolder::Inbox => "Inbox",
            WellKnownFolder::Drafts => "Drafts",
            WellKnownFolder::SentItems => "Sent Items",
            WellKnownFolder::DeletedItems => "Deleted Items",
        }
    }
}

/// A MAPI extended property in EWS's string form.
///
/// The key is either a property tag (`0x1035`) or a named property (property set GUID and a
/// name or numeric ID); the value is the string EWS puts in `<t:Value>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedProperty {
    /// Property tag for a tagged property.
    pub tag: Option<u16>,
    /// Property set GUID (lowercase) of a named property.
    pub set_id: Option<String>,
    /// Name of a string-named property.
    pub name: Option<String>,
    /// Numeric ID of an ID-named property.
    pub id: Option<i32>,
    /// EWS `PropertyType`: `String`, `Integer`, `SystemTime`, `Boolean`, `Binary` ...
    pub prop_type: String,
    /// Value in EWS's string form.
    pub value: String,
}

impl ExtendedProperty {
    /// Whether this property has the same key as `other` (tag, or set and name/ID).
    pub fn same_key(&self, other: &ExtendedProperty) -> bool {
        match (self.tag, other.tag) {
            (Some(a), Some(b)) => a == b,
            (None, None) => {
                let same_set = match (&self.set_id, &other.set_id) {
                    (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                    _ => false,
                };
                same_set && self.name == other.name && self.id == other.id
            }
            _ => false,
        }
    }
}

/// PR_MESSAGE_FLAGS bit MSGFLAG_READ.
pub const MSGFLAG_READ: i32 = 0x01;
/// PR_MESSAGE_FLAGS bit MSGFLAG_UNSENT: the item is a draft.
pub const MSGFLAG_UNSENT: i32 = 0x08;

/// A message in a folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    /// Store-wide item number; protocols encode it into their own opaque IDs.
    pub id: u64,
    /// Incremented on every change; EWS reports it in the ChangeKey.
    pub change: u32,
    /// The RFC 5322 message as stored.
    #[serde(with = "base64_bytes")]
    pub mime: Vec<u8>,
    /// PR_INTERNET_MESSAGE_ID (0x1035), with angle brackets as in the header.
    pub internet_message_id: Option<String>,
    /// Subject.
    pub subject: String,
    /// From address.
    pub from: Option<String>,
    /// To and Cc addresses.
    pub recipients: Vec<String>,
    /// PR_CLIENT_SUBMIT_TIME (0x0039): when the message was sent.
    pub sent: Option<DateTime<Utc>>,
    /// PR_MESSAGE_DELIVERY_TIME (0x0E06).
    pub delivered: Option<DateTime<Utc>>,
    /// When the item was created in this folder.
    pub created: DateTime<Utc>,
    /// PR_MESSAGE_FLAGS (0x0E07).
    pub message_flags: i32,
    /// Further extended properties set on the item, without the ones above.
    pub extended: Vec<ExtendedProperty>,
}

impl Item {
    /// PR_MESSAGE_SIZE: the size of the stored message in bytes.
    pub fn size(&self) -> usize {
        self.mime.len()
    }

    /// Whether Outlook shows the item as a draft.
    pub fn is_draft(&self) -> bool {
        self.message_flags & MSGFLAG_UNSENT != 0
    }

    /// The named string property with this set and name.
    pub fn named_property(&self, set_id: &str, name: &str) -> Option<&str> {
        self.extended
            .iter()
            .find(|p| {
                p.set_id
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(set_id))
                    && p.name.as_deref() == Some(name)
            })
            .map(|p| p.value.as_str())
    }
}

/// A mail folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Folder {
    /// Which well-known folder this is.
    pub well_known: WellKnownFolder,
    /// Display name, localized for some mailboxes.
    pub display_name: String,
    /// Items in creation order.
    pub items: Vec<Item>,
}

/// A user's mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mailbox {
    /// The owning user's object ID.
    pub owner: Uuid,
    /// On-premises or cloud.
    pub location: MailboxLocation,
    /// Folders.
    pub folders: Vec<Folder>,
}

impl Mailbox {
    /// A mailbox with every well-known folder, Sent Items named `sent_items_name`.
    pub fn new(owner: Uuid, location: MailboxLocation, sent_items_name: Option<&str>) -> Self {
        let folders = WellKnownFolder::ALL
            .into_iter()
            .map(|well_known| Folder {
                well_known,
                display_name: match (well_known, sent_items_name) {
                    (WellKnownFolder::SentItems, Some(name)) => name.to_string(),
                    _ => well_known.default_display_name().to_string(),
                },
                items: Vec::new(),
            })
            .collect();
        Self {
            owner,
            location,
            folders,
        }
    }

    /// A folder by its well-known name.
    pub fn folder(&self, which: WellKnownFolder) -> &Folder {
        self.folders
            .iter()
            .find(|f| f.well_known == which)
            .expect("every mailbox has every well-known folder")
    }

    /// A folder by its well-known name, for changes.
    pub fn folder_mut(&mut self, which: WellKnownFolder) -> &mut Folder {
        self.folders
            .iter_mut()
            .find(|f| f.well_known == which)
            .expect("every mailbox has every well-known folder")
    }

    /// The folder and position of an item.
    pub fn find_item(&self, id: u64) -> Option<(WellKnownFolder, &Item)> {
        self.folders.iter().find_map(|f| {
            f.items
                .iter()
                .find(|i| i.id == id)
                .map(|item| (f.well_known, item))
        })
    }

    /// Removes an item from whichever folder holds it.
    pub fn take_item(&mut self, id: u64) -> Option<(WellKnownFolder, Item)> {
        for folder in &mut self.folders {
            if let Some(position) = folder.items.iter().position(|i| i.id == id) {
                return Some((folder.well_known, folder.items.remove(position)));
            }
        }
        None
    }
}

/// A management role assignment (`New-ManagementRoleAssignment`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// Object GUID of the assignment.
    pub id: Uuid,
    /// Assignment name, `ApplicationImpersonation-svc-siu` by default.
    pub name: String,
    /// Role name: `ApplicationImpersonation`.
    pub role: String,
    /// The user the role is assigned to.
    pub assignee: Uuid,
    /// `CustomRecipientWriteScope`: the management scope that limits the mailboxes.
    pub recipient_scope: Option<String>,
    /// Whether the assignment is enabled.
    pub enabled: bool,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// A management scope (`New-ManagementScope`) that selects recipients by direct group
/// membership, the `MemberOfGroup -eq '<DN>'` filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagementScope {
    /// Scope name.
    pub name: String,
    /// Object ID of the group whose direct members are in scope.
    pub member_of_group: Uuid,
}

/// Exchange Online's organization-wide EWS settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OnlineSettings {
    /// `EwsEnabled`; `None` is "not configured", blocked since 1 October 2026.
    pub ews_enabled: Option<bool>,
    /// `EwsAllowedAppIDs`.
    pub ews_allowed_app_ids: Vec<String>,
}

impl OnlineSettings {
    /// Whether Exchange Online accepts EWS calls from this application (client) ID.
    pub fn ews_allows(&self, app_id: &str) -> bool {
        match self.ews_enabled {
            Some(true) => {
                self.ews_allowed_app_ids.is_empty()
                    || self
                        .ews_allowed_app_ids
                        .iter()
                        .any(|a| a.eq_ignore_ascii_case(app_id))
            }
            Some(false) | None => false,
        }
    }
}

/// Exchange, on-premises and online.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exchange {
    /// Mailboxes by owner.
    pub mailboxes: HashMap<Uuid, Mailbox>,
    /// Role assignments.
    pub role_assignments: Vec<RoleAssignment>,
    /// Management scopes.
    pub management_scopes: Vec<ManagementScope>,
    /// Exchange Online's EWS settings.
    pub online: OnlineSettings,
    /// The next item number.
    pub next_item: u64,
}

impl Exchange {
    /// Allocates an item number.
    pub fn allocate_item_id(&mut self) -> u64 {
        self.next_item += 1;
        self.next_item
    }

    /// The enabled ApplicationImpersonation assignments of a user.
    pub fn impersonation_assignments(&self, user: Uuid) -> impl Iterator<Item = &RoleAssignment> {
        self.role_assignments.iter().filter(move |a| {
            a.enabled && a.assignee == user && a.role.eq_ignore_ascii_case(IMPERSONATION_ROLE)
        })
    }
}

/// The management role that lets a service account open other users' mailboxes.
pub const IMPERSONATION_ROLE: &str = "ApplicationImpersonation";

/// Serializes bytes as base64 text so that the state file stays JSON.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_ews_setting_blocks_every_app() {
        let settings = OnlineSettings::default();
        assert!(!settings.ews_allows("5d3b0000-0000-0000-0000-000000000000"));
    }

    #[test]
    fn allow_list_limits_enabled_ews() {
        let settings = OnlineSettings {
            ews_enabled: Some(true),
            ews_allowed_app_ids: vec!["AAA".into()],
        };
        assert!(settings.ews_allows("aaa"));
        assert!(!settings.ews_allows("bbb"));
    }

    #[test]
    fn localized_sent_items_keeps_its_well_known_id() {
        let mailbox = Mailbox::new(
            Uuid::new_v4(),
            MailboxLocation::OnPremises,
            Some("Gesendete Elemente"),
        );
        let folder = mailbox.folder(WellKnownFolder::SentItems);
        assert_eq!(folder.display_name, "Gesendete Elemente");
        assert_eq!(
            WellKnownFolder::parse("SentItems"),
            Some(WellKnownFolder::SentItems)
        );
    }
}
