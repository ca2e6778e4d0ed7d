//! `GetItem`: items by ID, with MIME content and extended properties on request.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getitem-operation>.

use super::required;
use crate::World;
use crate::ews::mailbox::Principal;
use crate::ews::props::{ItemContext, ItemShape, write_message};
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::Element;

pub fn execute(world: &World, principal: &Principal, operation: &Element) -> Result<String, Fault> {
    let shape = match ItemShape::parse(required(operation, "ItemShape")?) {
        Ok(shape) => Ok(shape),
        Err(error) => Err(error.into_result()?),
    };
    let ids = required(operation, "ItemIds")?;

    let mut out = String::with_capacity(4096);
    soap::open_response(&mut out, "GetItem");
    for id in &ids.children {
        let found = match &shape {
            Err(error) => Err(error.clone()),
            Ok(_) if id.name != "ItemId" => Err(ResponseError::id_malformed()),
            Ok(shape) => principal.item(world, id)?.and_then(|(owner, number)| {
                world.exchange.mailboxes[&owner]
                    .find_item(number)
                    .map(|(folder, item)| (owner, folder, item, shape))
                    .ok_or_else(ResponseError::item_not_found)
            }),
        };
        match found {
            Ok((owner, folder, item, shape)) => {
                soap::write_success_open(&mut out, "GetItemResponseMessage");
                out.push_str("<m:Items>");
                let context = ItemContext {
                    world,
                    owner,
                    folder,
                };
                write_message(&mut out, &context, item, shape, false);
                out.push_str("</m:Items></m:GetItemResponseMessage>");
            }
            Err(error) => {
                error.write_open(&mut out, "GetItemResponseMessage");
                out.push_str("<m:Items/></m:GetItemResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "GetItem");
    Ok(out)
}
