//! `DeleteItem`: hard and soft deletion, and moving to Deleted Items.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/deleteitem-operation>.

use super::{enumerated, required};
use crate::World;
use crate::ews::mailbox::Principal;
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::Element;
use crate::world::exchange::WellKnownFolder;

pub fn execute(
    world: &mut World,
    principal: &Principal,
    operation: &Element,
) -> Result<String, Fault> {
    let delete_type = enumerated(
        operation,
        "DeleteType",
        &["HardDelete", "SoftDelete", "MoveToDeletedItems"],
        None,
        "DisposalType",
    )?;
    let ids = required(operation, "ItemIds")?;

    let mut out = String::with_capacity(1024);
    soap::open_response(&mut out, "DeleteItem");
    for id in &ids.children {
        let result = if id.name == "ItemId" {
            principal.item(world, id)?.and_then(|(owner, number)| {
                let mailbox = world
                    .exchange
                    .mailboxes
                    .get_mut(&owner)
                    .expect("the principal checked the mailbox");
                let (folder, mut item) = mailbox
                    .take_item(number)
                    .ok_or_else(ResponseError::item_not_found)?;
                // Soft and hard deletion both leave the folder; the lab keeps no
                // Recoverable Items, so a soft-deleted item cannot be brought back.
                if delete_type == "MoveToDeletedItems" && folder != WellKnownFolder::DeletedItems {
                    item.change += 1;
                    mailbox
                        .folder_mut(WellKnownFolder::DeletedItems)
                        .items
                        .push(item);
                }
                tracing::debug!(%owner, item = number, delete_type, "item deleted");
                Ok(())
            })
        } else {
            Err(ResponseError::id_malformed())
        };
        match result {
            Ok(()) => {
                soap::write_success_open(&mut out, "DeleteItemResponseMessage");
                out.push_str("</m:DeleteItemResponseMessage>");
            }
            Err(error) => {
                error.write_open(&mut out, "DeleteItemResponseMessage");
                out.push_str("</m:DeleteItemResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "DeleteItem");
    Ok(out)
}
