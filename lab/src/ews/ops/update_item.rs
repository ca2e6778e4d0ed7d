//! `UpdateItem`: setting and deleting extended properties and a few first-class properties,
//! with change-key conflict detection.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/updateitem-operation>.

use std::fmt::Write as _;

use super::{enumerated, required};
use crate::World;
use crate::ews::ids::{StoreId, change_from_key, item_change_key};
use crate::ews::mailbox::Principal;
use crate::ews::props::{
    ExtendedPath, PathError, PropertyPath, TAG_MESSAGE_FLAGS, delete_extended, parse_bool,
    set_extended, valid_value,
};
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::Element;
use crate::world::exchange::{Item, MSGFLAG_READ, MSGFLAG_UNSENT};

/// One change of an `ItemChange`.
enum Change {
    Set(PropertyPath, String),
    Delete(PropertyPath),
}

pub fn execute(
    world: &mut World,
    principal: &Principal,
    operation: &Element,
) -> Result<String, Fault> {
    let resolution = enumerated(
        operation,
        "ConflictResolution",
        &["NeverOverwrite", "AutoResolve", "AlwaysOverwrite"],
        Some("AutoResolve"),
        "ConflictResolutionType",
    )?;
    let changes = required(operation, "ItemChanges")?;

    let mut out = String::with_capacity(1024);
    soap::open_response(&mut out, "UpdateItem");
    for change in changes.children_named("ItemChange") {
        let result = match change.child("ItemId") {
            Some(id) => match principal.item(world, id)? {
                Ok((owner, number)) => {
                    let updates = parse_updates(required(change, "Updates")?)?;
                    apply(
                        world,
                        owner,
                        number,
                        id.attribute("ChangeKey"),
                        resolution,
                        updates,
                    )
                    .map(|change| (owner, number, change))
                }
                Err(error) => Err(error),
            },
            None => Err(ResponseError::id_malformed()),
        };
        match result {
            Ok((owner, number, change)) => {
                soap::write_success_open(&mut out, "UpdateItemResponseMessage");
                let _ = write!(
                    out,
                    r#"<m:Items><t:Message><t:ItemId Id="{}" ChangeKey="{}"/></t:Message></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults></m:UpdateItemResponseMessage>"#,
                    StoreId::item(owner, number).encode(),
                    item_change_key(number, change)
                );
            }
            Err(error) => {
                error.write_open(&mut out, "UpdateItemResponseMessage");
                out.push_str("<m:Items/></m:UpdateItemResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "UpdateItem");
    Ok(out)
}

/// Reads `Updates`; a per-item problem is an `Err` inside the `Ok`.
fn parse_updates(updates: &Element) -> Result<Result<Vec<Change>, ResponseError>, Fault> {
    let mut parsed = Vec::new();
    for update in &updates.children {
        let Some(path) = update.children.first().and_then(PropertyPath::parse) else {
            return Err(Fault::schema_violation(
                update,
                format!("The element '{}' has no property path.", update.name),
            ));
        };
        let path = match path {
            Ok(path) => path,
            Err(PathError::Schema(fault)) => return Err(fault),
            Err(error) => return Ok(Err(error.into_result()?)),
        };
        match update.name.as_str() {
            "DeleteItemField" => parsed.push(Change::Delete(path)),
            "SetItemField" | "AppendToItemField" => {
                let Some(holder) = update.children.get(1) else {
                    return Err(Fault::schema_violation(
                        update,
                        "The element has no item with the new value.".into(),
                    ));
                };
                let value = match &path {
                    PropertyPath::Extended(extended) => holder
                        .children_named("ExtendedProperty")
                        .find(|p| {
                            p.child("ExtendedFieldURI")
                                .and_then(|u| ExtendedPath::parse(u).ok())
                                .is_some_and(|p| {
                                    p.tag == extended.tag
                                        && p.set_id == extended.set_id
                                        && p.name == extended.name
                                        && p.id == extended.id
                                })
                        })
                        .and_then(|p| p.child("Value"))
                        .map(|v| v.text.clone()),
                    PropertyPath::Field(uri) => {
                        let element = uri.split_once(':').map_or(uri.as_str(), |(_, name)| name);
                        holder.child(element).map(|e| e.text.clone())
                    }
                    PropertyPath::Indexed(_) => None,
                };
                let Some(value) = value else {
                    return Ok(Err(ResponseError::new(
                        "ErrorInvalidPropertySet",
                        "Set action is invalid for property.",
                    )));
                };
                parsed.push(Change::Set(path, value));
            }
            other => {
                return Err(Fault::schema_violation(
                    update,
                    format!("The element '{other}' is not an item change."),
                ));
            }
        }
    }
    Ok(Ok(parsed))
}

fn apply(
    world: &mut World,
    owner: uuid::Uuid,
    number: u64,
    change_key: Option<&str>,
    resolution: &str,
    updates: Result<Vec<Change>, ResponseError>,
) -> Result<u32, ResponseError> {
    let updates = updates?;
    let mailbox = world
        .exchange
        .mailboxes
        .get_mut(&owner)
        .expect("the principal checked the mailbox");
    let item: &mut Item = mailbox
        .folders
        .iter_mut()
        .find_map(|f| f.items.iter_mut().find(|i| i.id == number))
        .ok_or_else(ResponseError::item_not_found)?;
    if let Some(key) = change_key
        && resolution != "AlwaysOverwrite"
    {
        let current = change_from_key(key).is_some_and(|(n, c)| n == number && c == item.change);
        if !current {
            return Err(ResponseError::new(
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
            ));
        }
    }

    // Check every change before applying any, so that a rejected request changes nothing.
    for change in &updates {
        let valid = match change {
            Change::Set(PropertyPath::Extended(path), value) => valid_value(&path.prop_type, value),
            Change::Set(PropertyPath::Field(uri), value) => match uri.as_str() {
                "item:Subject" => true,
                "message:IsRead" => parse_bool(value).is_some(),
                _ => false,
            },
            Change::Delete(PropertyPath::Extended(_)) => true,
            _ => false,
        };
        if !valid {
            return Err(match change {
                Change::Set(PropertyPath::Extended(_), _) => ResponseError::new(
                    "ErrorInvalidExtendedPropertyValue",
                    "Extended property value is invalid.",
                ),
                _ => ResponseError::new(
                    "ErrorInvalidPropertySet",
                    "Set action is invalid for property.",
                ),
            });
        }
    }
    for change in updates {
        match change {
            Change::Set(PropertyPath::Extended(path), value) => {
                let unsent = item.message_flags & MSGFLAG_UNSENT;
                set_extended(item, &path, &value);
                // MSGFLAG_UNSENT can be set only when a message is created.
                if path.tag == Some(TAG_MESSAGE_FLAGS) {
                    item.message_flags = (item.message_flags & !MSGFLAG_UNSENT) | unsent;
                }
            }
            Change::Set(PropertyPath::Field(uri), value) => match uri.as_str() {
                "item:Subject" => item.subject = value,
                _ => {
                    if parse_bool(&value) == Some(true) {
                        item.message_flags |= MSGFLAG_READ;
                    } else {
                        item.message_flags &= !MSGFLAG_READ;
                    }
                }
            },
            Change::Delete(PropertyPath::Extended(path)) => delete_extended(item, &path),
            _ => {}
        }
    }
    item.change += 1;
    tracing::debug!(%owner, item = number, change = item.change, "item updated");
    Ok(item.change)
}
