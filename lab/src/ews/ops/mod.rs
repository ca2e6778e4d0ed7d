//! The EWS operations the lab serves, one module per operation.
//!
//! Each operation reads its request element, works on the world under the lock the caller
//! holds, and returns the body of its response (the `m:<Operation>Response` element). A
//! [`Fault`] fails the request as a whole; errors of one folder or item travel in that item's
//! response message, as Exchange sends them.

mod convert_id;
mod create_item;
mod delete_item;
mod find_item;
mod get_folder;
mod get_item;
mod resolve_names;
mod update_item;

use super::mailbox::Principal;
use super::soap::Fault;
use super::xml::Element;
use crate::World;

/// Returns whether an operation changes the world and so needs the write lock.
pub fn writes(operation: &str) -> bool {
    matches!(operation, "CreateItem" | "UpdateItem" | "DeleteItem")
}

/// Runs an operation that only reads.
pub fn read(world: &World, principal: &Principal, operation: &Element) -> Result<String, Fault> {
    match operation.name.as_str() {
        "ConvertId" => convert_id::execute(world, principal, operation),
        "ResolveNames" => resolve_names::execute(world, principal, operation),
        "GetFolder" => get_folder::execute(world, principal, operation),
        "FindItem" => find_item::execute(world, principal, operation),
        "GetItem" => get_item::execute(world, principal, operation),
        other => Err(unsupported(other)),
    }
}

/// Runs an operation that changes the world.
pub fn write(
    world: &mut World,
    principal: &Principal,
    operation: &Element,
) -> Result<String, Fault> {
    match operation.name.as_str() {
        "CreateItem" => create_item::execute(world, principal, operation),
        "UpdateItem" => update_item::execute(world, principal, operation),
        "DeleteItem" => delete_item::execute(world, principal, operation),
        other => Err(unsupported(other)),
    }
}

/// Returns whether the lab serves an operation.
pub fn is_served(operation: &str) -> bool {
    writes(operation)
        || matches!(
            operation,
            "ConvertId" | "ResolveNames" | "GetFolder" | "FindItem" | "GetItem"
        )
}

/// Builds the fault for an operation the lab does not serve.
pub fn unsupported(operation: &str) -> Fault {
    // TODO-coverage: Exchange serves many more operations (FindFolder, SyncFolderItems, ...);
    // the lab rejects them as it rejects an unknown one.
    Fault::invalid_request(&format!("The operation '{operation}' is not supported."))
}

/// Returns the attribute `name` of `element`, checked against the schema's enumeration.
fn enumerated<'a>(
    element: &'a Element,
    name: &str,
    allowed: &[&str],
    default: Option<&'a str>,
    datatype: &str,
) -> Result<&'a str, Fault> {
    match element.attribute(name).or(default) {
        Some(value) if allowed.contains(&value) => Ok(value),
        Some(value) => Err(Fault::schema_violation(
            element,
            format!(
                "The '{name}' attribute is invalid - The value '{value}' is invalid according to its datatype '{datatype}' - The Enumeration constraint failed."
            ),
        )),
        None => Err(Fault::schema_violation(
            element,
            format!("The required attribute '{name}' is missing."),
        )),
    }
}

/// Returns a required child element, or the schema fault for its absence.
fn required<'a>(element: &'a Element, name: &str) -> Result<&'a Element, Fault> {
    element.child(name).ok_or_else(|| {
        Fault::schema_violation(
            element,
            format!("The element '{}' has incomplete content. List of possible elements expected: '{name}'.", element.name),
        )
    })
}
