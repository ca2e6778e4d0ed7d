//! `ConvertId`: conversion between ID formats, and the request clients send first to learn
//! the server's version from `ServerVersionInfo`.
//!
//! The lab's `EntryId` is the raw bytes behind its EWS ID in base64, and `HexEntryId` the same
//! bytes in hexadecimal. Exchange rejects the `DUMMY` ID of a version probe with
//! `ErrorInvalidIdMalformed`, which is what clients expect.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/convertid-operation>.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{enumerated, required};
use crate::World;
use crate::ews::ids::StoreId;
use crate::ews::mailbox::Principal;
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::{Element, escape};

const FORMATS: &[&str] = &[
    "EwsLegacyId",
    "EwsId",
    "EntryId",
    "HexEntryId",
    "StoreId",
    "OwaId",
];

pub fn execute(world: &World, principal: &Principal, operation: &Element) -> Result<String, Fault> {
    let destination = enumerated(
        operation,
        "DestinationFormat",
        FORMATS,
        None,
        "IdFormatType",
    )?;
    let sources = required(operation, "SourceIds")?;

    let mut out = String::with_capacity(1024);
    soap::open_response(&mut out, "ConvertId");
    for source in &sources.children {
        let format = enumerated(source, "Format", FORMATS, None, "IdFormatType")?;
        let converted = if source.name == "AlternateId" {
            convert(world, principal, source, format, destination)
        } else {
            // Public folder IDs: the lab has no public folders.
            Err(ResponseError::id_malformed())
        };
        match converted {
            Ok((id, mailbox)) => {
                soap::write_success_open(&mut out, "ConvertIdResponseMessage");
                let _ = write!(
                    out,
                    r#"<m:AlternateId xsi:type="t:AlternateIdType" Format="{destination}" Id="{}" Mailbox="{}"/></m:ConvertIdResponseMessage>"#,
                    escape(&id),
                    escape(&mailbox)
                );
            }
            Err(error) => {
                error.write_open(&mut out, "ConvertIdResponseMessage");
                out.push_str("</m:ConvertIdResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "ConvertId");
    Ok(out)
}

fn convert(
    world: &World,
    principal: &Principal,
    source: &Element,
    format: &str,
    destination: &str,
) -> Result<(String, String), ResponseError> {
    let text = source.attribute("Id").unwrap_or_default();
    let id = decode(text, format).ok_or_else(ResponseError::id_malformed)?;
    let owner = world
        .directory
        .users
        .get(&id.owner)
        .ok_or_else(ResponseError::item_not_found)?;
    if principal.mailbox != Some(id.owner) {
        return Err(ResponseError::access_denied());
    }
    let converted = encode(id, destination).ok_or_else(|| {
        ResponseError::new(
            "ErrorInvalidIdMalformed",
            format!("The lab cannot convert IDs to {destination}."),
        )
    })?;
    let mailbox = owner.mail.clone().unwrap_or_else(|| owner.upn.clone());
    Ok((converted, mailbox))
}

fn decode(text: &str, format: &str) -> Option<StoreId> {
    match format {
        "EwsId" => StoreId::decode(text),
        "EntryId" => StoreId::from_bytes(&STANDARD.decode(text.trim()).ok()?),
        "HexEntryId" => {
            let text = text.trim();
            let bytes = (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            StoreId::from_bytes(&bytes)
        }
        _ => None,
    }
}

fn encode(id: StoreId, format: &str) -> Option<String> {
    match format {
        "EwsId" => Some(id.encode()),
        "EntryId" => Some(STANDARD.encode(id.to_bytes())),
        "HexEntryId" => Some(id.to_bytes().iter().map(|b| format!("{b:02X}")).collect()),
        // TODO-coverage: EwsLegacyId, StoreId and OwaId are not produced by the lab.
        _ => None,
    }
}
