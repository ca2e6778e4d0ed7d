//! Opaque item and folder IDs and change keys in the shape Exchange gives them.
//!
//! Exchange's EWS IDs are base64 of a binary structure that names the mailbox and the store
//! object; clients treat them as opaque strings. The lab's IDs carry the mailbox owner's object
//! ID, the kind of object and its number, behind the same leading bytes as Exchange's
//! (`AAMkA...`), so that a client which sniffs the prefix sees what it expects. Change keys
//! (`CQAAABYAAAA...` for messages) carry the item number and its change counter, so a stale
//! change key is detected without a lookup table.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;

use crate::world::exchange::WellKnownFolder;

/// The leading bytes of an EWS ID: format version and the length byte Exchange writes.
const ID_PREFIX: [u8; 4] = [0x00, 0x03, 0x24, 0x00];
/// The leading bytes of a message's change key (item class 9 and the 0x16 length).
const MESSAGE_CHANGE_KEY_PREFIX: [u8; 8] = [0x09, 0, 0, 0, 0x16, 0, 0, 0];
/// The leading bytes of a folder's change key.
const FOLDER_CHANGE_KEY_PREFIX: [u8; 8] = [0x01, 0, 0, 0, 0x16, 0, 0, 0];

/// What an ID names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreObject {
    /// A folder of the mailbox.
    Folder(WellKnownFolder),
    /// An item, by its store-wide number.
    Item(u64),
}

/// A decoded EWS ID: the mailbox owner and the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreId {
    /// Object ID of the user who owns the mailbox.
    pub owner: Uuid,
    /// The folder or item.
    pub object: StoreObject,
}

const KIND_FOLDER: u8 = 0x01;
const KIND_ITEM: u8 = 0x46;

impl StoreId {
    /// The ID of an item.
    pub fn item(owner: Uuid, number: u64) -> Self {
        Self {
            owner,
            object: StoreObject::Item(number),
        }
    }

    /// The ID of a folder.
    pub fn folder(owner: Uuid, folder: WellKnownFolder) -> Self {
        Self {
            owner,
            object: StoreObject::Folder(folder),
        }
    }

    /// The raw bytes behind the base64 form; also the lab's `EntryId` format.
    pub fn to_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(29);
        bytes.extend_from_slice(&ID_PREFIX);
        bytes.extend_from_slice(self.owner.as_bytes());
        match self.object {
            StoreObject::Folder(folder) => {
                bytes.push(KIND_FOLDER);
                let index = WellKnownFolder::ALL
                    .iter()
                    .position(|f| *f == folder)
                    .expect("every well-known folder is in ALL");
                bytes.extend_from_slice(&(index as u64).to_be_bytes());
            }
            StoreObject::Item(number) => {
                bytes.push(KIND_ITEM);
                bytes.extend_from_slice(&number.to_be_bytes());
            }
        }
        bytes
    }

    /// Reads the raw bytes written by [`StoreId::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 29 || bytes[..4] != ID_PREFIX {
            return None;
        }
        let owner = Uuid::from_slice(&bytes[4..20]).ok()?;
        let number = u64::from_be_bytes(bytes[21..29].try_into().ok()?);
        let object = match bytes[20] {
            KIND_FOLDER => {
                StoreObject::Folder(*WellKnownFolder::ALL.get(usize::try_from(number).ok()?)?)
            }
            KIND_ITEM => StoreObject::Item(number),
            _ => return None,
        };
        Some(Self { owner, object })
    }

    /// The EWS ID string.
    pub fn encode(self) -> String {
        STANDARD.encode(self.to_bytes())
    }

    /// Decodes an EWS ID string; `None` when it is malformed (ErrorInvalidIdMalformed).
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.trim()).ok()?;
        Self::from_bytes(&bytes)
    }
}

/// The change key of a message at change `change`.
pub fn item_change_key(number: u64, change: u32) -> String {
    let mut bytes = Vec::with_capacity(20);
    bytes.extend_from_slice(&MESSAGE_CHANGE_KEY_PREFIX);
    bytes.extend_from_slice(&number.to_be_bytes());
    bytes.extend_from_slice(&change.to_be_bytes());
    STANDARD.encode(bytes)
}

/// The change counter a message change key carries, when it is one of the lab's.
pub fn change_from_key(key: &str) -> Option<(u64, u32)> {
    let bytes = STANDARD.decode(key.trim()).ok()?;
    if bytes.len() != 20 || bytes[..8] != MESSAGE_CHANGE_KEY_PREFIX {
        return None;
    }
    let number = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
    let change = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    Some((number, change))
}

/// The change key of a folder; the lab's folders do not change, so it is fixed per folder.
pub fn folder_change_key(owner: Uuid, folder: WellKnownFolder) -> String {
    let mut bytes = Vec::with_capacity(25);
    bytes.extend_from_slice(&FOLDER_CHANGE_KEY_PREFIX);
    bytes.extend_from_slice(&owner.as_bytes()[..8]);
    bytes.push(folder as u8);
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_look_like_exchange_ids() {
        let owner = Uuid::new_v4();
        for id in [
            StoreId::item(owner, 42),
            StoreId::folder(owner, WellKnownFolder::SentItems),
        ] {
            let text = id.encode();
            assert!(text.starts_with("AAMkA"), "{text}");
            assert_eq!(StoreId::decode(&text), Some(id));
        }
    }

    #[test]
    fn malformed_ids_do_not_decode() {
        for text in ["DUMMY", "AAMkAD=", "", "!!!", &STANDARD.encode([0u8; 29])] {
            assert_eq!(StoreId::decode(text), None, "{text}");
        }
    }

    #[test]
    fn change_key_carries_the_change_counter() {
        let key = item_change_key(7, 3);
        assert!(key.starts_with("CQAAABYAAAA"), "{key}");
        assert_eq!(change_from_key(&key), Some((7, 3)));
        assert_eq!(change_from_key("CQAAAB"), None);
    }
}
