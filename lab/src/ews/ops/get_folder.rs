//! `GetFolder`: the well-known folders of a mailbox, with counts and the localized display
//! name.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/getfolder-operation>.

use std::fmt::Write as _;

use uuid::Uuid;

use super::required;
use crate::World;
use crate::ews::ids::{StoreId, folder_change_key};
use crate::ews::mailbox::Principal;
use crate::ews::props::{PathError, PropertyPath};
use crate::ews::soap::{self, Fault};
use crate::ews::xml::{Element, escape};
use crate::world::exchange::{Folder, MSGFLAG_READ, WellKnownFolder};

/// The folder properties a response carries, in the order of `BaseFolderType` and
/// `FolderType`.
const FOLDER_FIELDS: &[&str] = &[
    "folder:FolderId",
    "folder:ParentFolderId",
    "folder:FolderClass",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:EffectiveRights",
    "folder:DistinguishedFolderId",
    "folder:UnreadCount",
];

/// The folder properties of `Default`; `AllProperties` returns every field above.
const DEFAULT_FIELDS: &[&str] = &[
    "folder:FolderId",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:UnreadCount",
];

pub fn execute(world: &World, principal: &Principal, operation: &Element) -> Result<String, Fault> {
    let shape = required(operation, "FolderShape")?;
    let fields = shape_fields(shape)?;
    let ids = required(operation, "FolderIds")?;

    let mut out = String::with_capacity(2048);
    soap::open_response(&mut out, "GetFolder");
    for id in &ids.children {
        match principal.folder(world, id)? {
            Ok((owner, which)) => {
                soap::write_success_open(&mut out, "GetFolderResponseMessage");
                out.push_str("<m:Folders>");
                write_folder(&mut out, world, owner, which, &fields);
                out.push_str("</m:Folders></m:GetFolderResponseMessage>");
            }
            Err(error) => {
                error.write_open(&mut out, "GetFolderResponseMessage");
                out.push_str("<m:Folders/></m:GetFolderResponseMessage>");
            }
        }
    }
    soap::close_response(&mut out, "GetFolder");
    Ok(out)
}

fn shape_fields(shape: &Element) -> Result<Vec<&'static str>, Fault> {
    let base: &[&str] = match shape.child_text("BaseShape") {
        Some("IdOnly") => &["folder:FolderId"],
        Some("Default") => DEFAULT_FIELDS,
        Some("AllProperties") => FOLDER_FIELDS,
        other => {
            return Err(Fault::schema_violation(
                shape,
                format!(
                    "The 'BaseShape' element is invalid - The value '{}' is invalid according to its datatype 'DefaultShapeNamesType'.",
                    other.unwrap_or_default()
                ),
            ));
        }
    };
    let mut fields: Vec<&'static str> = FOLDER_FIELDS
        .iter()
        .copied()
        .filter(|f| base.contains(f))
        .collect();
    if let Some(list) = shape.child("AdditionalProperties") {
        for child in &list.children {
            match PropertyPath::parse(child) {
                Some(Ok(PropertyPath::Field(uri))) => {
                    if let Some(known) = FOLDER_FIELDS.iter().find(|f| **f == uri)
                        && !fields.contains(known)
                    {
                        fields.push(known);
                    }
                }
                Some(Err(PathError::Schema(fault))) => return Err(fault),
                // Extended and unknown folder properties have no value in the lab's folders.
                _ => {}
            }
        }
    }
    fields.sort_by_key(|f| FOLDER_FIELDS.iter().position(|k| k == f));
    Ok(fields)
}

fn write_folder(
    out: &mut String,
    world: &World,
    owner: Uuid,
    which: WellKnownFolder,
    fields: &[&str],
) {
    let mailbox = &world.exchange.mailboxes[&owner];
    let folder: &Folder = mailbox.folder(which);
    let parent = match which {
        WellKnownFolder::Root | WellKnownFolder::MsgFolderRoot => WellKnownFolder::Root,
        _ => WellKnownFolder::MsgFolderRoot,
    };
    let children = match which {
        WellKnownFolder::Root => 1,
        WellKnownFolder::MsgFolderRoot => WellKnownFolder::ALL.len() - 2,
        _ => 0,
    };
    let unread = folder
        .items
        .iter()
        .filter(|i| i.message_flags & MSGFLAG_READ == 0)
        .count();

    out.push_str("<t:Folder>");
    for field in fields {
        match *field {
            "folder:FolderId" => {
                let _ = write!(
                    out,
                    r#"<t:FolderId Id="{}" ChangeKey="{}"/>"#,
                    StoreId::folder(owner, which).encode(),
                    folder_change_key(owner, which)
                );
            }
            "folder:ParentFolderId" => {
                let _ = write!(
                    out,
                    r#"<t:ParentFolderId Id="{}" ChangeKey="{}"/>"#,
                    StoreId::folder(owner, parent).encode(),
                    folder_change_key(owner, parent)
                );
            }
            "folder:FolderClass"
                if !matches!(which, WellKnownFolder::Root | WellKnownFolder::MsgFolderRoot) =>
            {
                out.push_str("<t:FolderClass>IPF.Note</t:FolderClass>");
            }
            "folder:DisplayName" => {
                let _ = write!(out, "<t:DisplayName>{}</t:DisplayName>", escape(&folder.display_name));
            }
            "folder:TotalCount" => {
                let _ = write!(out, "<t:TotalCount>{}</t:TotalCount>", folder.items.len());
            }
            "folder:ChildFolderCount" => {
                let _ = write!(out, "<t:ChildFolderCount>{children}</t:ChildFolderCount>");
            }
            "folder:EffectiveRights" => out.push_str(
                "<t:EffectiveRights><t:CreateAssociated>true</t:CreateAssociated><t:CreateContents>true</t:CreateContents><t:CreateHierarchy>true</t:CreateHierarchy><t:Delete>true</t:Delete><t:Modify>true</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>true</t:ViewPrivateItems></t:EffectiveRights>",
            ),
            "folder:DistinguishedFolderId" => {
                let _ = write!(out, "<t:DistinguishedFolderId>{}</t:DistinguishedFolderId>", which.ews_id());
            }
            "folder:UnreadCount" => {
                let _ = write!(out, "<t:UnreadCount>{unread}</t:UnreadCount>");
            }
            _ => {}
        }
    }
    out.push_str("</t:Folder>");
}
