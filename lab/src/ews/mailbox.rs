//! Whose mailbox a request opens: the caller's own, or the one `ExchangeImpersonation` names,
//! and how folder and item IDs resolve against it.
//!
//! Without impersonation an account opens only its own mailbox. Another mailbox named in a
//! `DistinguishedFolderId/Mailbox` needs delegate rights, which the lab never grants, so it
//! returns `ErrorAccessDenied` as Exchange does for a folder the caller has no rights on.

use uuid::Uuid;

use super::auth::Caller;
use super::ids::{StoreId, StoreObject};
use super::soap::{ConnectingSid, Fault, ResponseError};
use super::xml::Element;
use crate::World;
use crate::faults::Service;
use crate::fixture::MailboxLocation;
use crate::world::ImpersonationDenied;
use crate::world::exchange::WellKnownFolder;

/// The Exchange deployment that serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// The on-premises Exchange server.
    OnPremises,
    /// Exchange Online.
    Online,
}

impl Deployment {
    /// Returns the location of the mailboxes this deployment hosts.
    pub fn location(self) -> MailboxLocation {
        match self {
            Deployment::OnPremises => MailboxLocation::OnPremises,
            Deployment::Online => MailboxLocation::Cloud,
        }
    }

    /// Returns the lab service for faults, counters and captures.
    pub fn service(self) -> Service {
        match self {
            Deployment::OnPremises => Service::Ews,
            Deployment::Online => Service::ExchangeOnline,
        }
    }
}

/// The mailbox a request acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The owner of the mailbox the request may open; `None` for an account without a mailbox
    /// on this deployment.
    pub mailbox: Option<Uuid>,
    /// The deployment.
    pub deployment: Deployment,
}

impl Principal {
    /// Works out the principal of a request: impersonation is checked against the caller's
    /// rights and the target's mailbox.
    pub fn resolve(
        world: &World,
        deployment: Deployment,
        caller: &Caller,
        impersonation: Option<&ConnectingSid>,
    ) -> Result<Principal, Fault> {
        let Some(sid) = impersonation else {
            return match caller {
                Caller::User { id, .. } => Ok(Principal {
                    mailbox: hosts(world, deployment, *id).then_some(*id),
                    deployment,
                }),
                // NOTE: app-only tokens have no mailbox of their own; Exchange Online rejects
                // them without an ExchangeImpersonation header with this fault.
                Caller::Application { .. } => Err(Fault::new(
                    "ErrorInvalidExchangeImpersonationHeaderData",
                    "ExchangeImpersonation SOAP header must be present for this type of OAuth token.",
                )),
            };
        };

        // 1. The target must be a user with a mailbox on this deployment. A mailbox in the other
        // location is a mail user here, which has no mailbox, so Exchange returns
        // ErrorNonExistentMailbox for it as for an unknown address.
        let target = match sid {
            ConnectingSid::PrincipalName(upn) => world.directory.user_by_upn(upn).map(|u| u.id),
            ConnectingSid::PrimarySmtpAddress(address) | ConnectingSid::SmtpAddress(address) => {
                world
                    .directory
                    .by_smtp(address)
                    .filter(|id| world.directory.users.contains_key(id))
            }
            ConnectingSid::Sid(sid) => world
                .directory
                .users
                .values()
                .find(|u| world.directory.sid_of(u.rid).eq_ignore_ascii_case(sid))
                .map(|u| u.id),
        };
        let Some(target) = target.filter(|id| hosts(world, deployment, *id)) else {
            return Err(Fault::non_existent_mailbox(sid.value()));
        };

        // 2. The caller must hold the right to impersonate it.
        match caller {
            Caller::User { id, upn } => match world.check_impersonation(*id, target) {
                Ok(()) => {}
                Err(denied) => {
                    let reason = match denied {
                        ImpersonationDenied::NoRole => {
                            "no ApplicationImpersonation assignment".to_string()
                        }
                        ImpersonationDenied::OutOfScope(scope) => {
                            format!("outside the scope `{scope}`")
                        }
                    };
                    tracing::debug!(caller = %upn, target = sid.value(), reason, "impersonation denied");
                    return Err(Fault::impersonate_user_denied());
                }
            },
            // The token's full_access_as_app role, checked during authentication, covers every
            // mailbox of the tenant.
            Caller::Application { .. } => {}
        }
        Ok(Principal {
            mailbox: Some(target),
            deployment,
        })
    }

    /// Resolves a folder reference (`DistinguishedFolderId` or `FolderId`) to the mailbox owner
    /// and the folder. The inner error is a per-message error, and a fault fails the request.
    pub fn folder(
        &self,
        world: &World,
        element: &Element,
    ) -> Result<Result<(Uuid, WellKnownFolder), ResponseError>, Fault> {
        match element.name.as_str() {
            "DistinguishedFolderId" => {
                let Some(id) = element.attribute("Id") else {
                    return Err(Fault::schema_violation(
                        element,
                        "The required attribute 'Id' is missing.".into(),
                    ));
                };
                if !DISTINGUISHED_FOLDER_IDS.contains(&id) {
                    return Err(Fault::schema_violation(
                        element,
                        format!(
                            "The 'Id' attribute is invalid - The value '{id}' is invalid according to its datatype 'DistinguishedFolderIdNameType' - The Enumeration constraint failed."
                        ),
                    ));
                }
                let owner = match element
                    .child("Mailbox")
                    .and_then(|m| m.child_text("EmailAddress"))
                {
                    Some(address) => match self.named_mailbox(world, address) {
                        Ok(owner) => owner,
                        Err(error) => return Ok(Err(error)),
                    },
                    None => match self.mailbox {
                        Some(owner) => owner,
                        None => return Ok(Err(ResponseError::missing_email_address())),
                    },
                };
                Ok(match WellKnownFolder::parse(id) {
                    Some(folder) => Ok((owner, folder)),
                    None => Err(folder_not_found()),
                })
            }
            "FolderId" => {
                let Some(id) = element.attribute("Id") else {
                    return Err(Fault::schema_violation(
                        element,
                        "The required attribute 'Id' is missing.".into(),
                    ));
                };
                Ok(match StoreId::decode(id) {
                    Some(StoreId {
                        owner,
                        object: StoreObject::Folder(folder),
                    }) => self.check_owner(world, owner).map(|owner| (owner, folder)),
                    _ => Err(ResponseError::id_malformed()),
                })
            }
            other => Err(Fault::schema_violation(
                element,
                format!("The element '{other}' is not a folder ID."),
            )),
        }
    }

    /// Resolves an `ItemId` to the mailbox owner and the item number.
    pub fn item(
        &self,
        world: &World,
        element: &Element,
    ) -> Result<Result<(Uuid, u64), ResponseError>, Fault> {
        let Some(id) = element.attribute("Id") else {
            return Err(Fault::schema_violation(
                element,
                "The required attribute 'Id' is missing.".into(),
            ));
        };
        Ok(match StoreId::decode(id) {
            Some(StoreId {
                owner,
                object: StoreObject::Item(number),
            }) => self.check_owner(world, owner).map(|owner| (owner, number)),
            _ => Err(ResponseError::id_malformed()),
        })
    }

    fn named_mailbox(&self, world: &World, address: &str) -> Result<Uuid, ResponseError> {
        let owner = world
            .directory
            .by_smtp(address)
            .or_else(|| world.directory.user_by_upn(address).map(|u| u.id))
            .filter(|id| hosts(world, self.deployment, *id))
            .ok_or_else(|| ResponseError::non_existent_mailbox(address))?;
        if Some(owner) != self.mailbox {
            return Err(ResponseError::access_denied());
        }
        Ok(owner)
    }

    fn check_owner(&self, world: &World, owner: Uuid) -> Result<Uuid, ResponseError> {
        if !hosts(world, self.deployment, owner) {
            return Err(ResponseError::item_not_found());
        }
        if Some(owner) != self.mailbox {
            return Err(ResponseError::access_denied());
        }
        Ok(owner)
    }
}

/// Whether this deployment hosts the user's mailbox.
fn hosts(world: &World, deployment: Deployment, user: Uuid) -> bool {
    world
        .exchange
        .mailboxes
        .get(&user)
        .is_some_and(|m| m.location == deployment.location())
}

/// `ErrorFolderNotFound`, for distinguished folders the lab's mailboxes do not have.
pub fn folder_not_found() -> ResponseError {
    ResponseError::new(
        "ErrorFolderNotFound",
        "The specified folder could not be found in the store.",
    )
}

/// The schema's `DistinguishedFolderIdNameType` values.
const DISTINGUISHED_FOLDER_IDS: &[&str] = &[
    "calendar",
    "contacts",
    "deleteditems",
    "drafts",
    "inbox",
    "journal",
    "notes",
    "outbox",
    "sentitems",
    "tasks",
    "msgfolderroot",
    "publicfoldersroot",
    "root",
    "junkemail",
    "searchfolders",
    "voicemail",
    "recoverableitemsroot",
    "recoverableitemsdeletions",
    "recoverableitemsversions",
    "recoverableitemspurges",
    "recoverableitemsdiscoveryholds",
    "archiveroot",
    "archivemsgfolderroot",
    "archivedeleteditems",
    "archiveinbox",
    "archiverecoverableitemsroot",
    "archiverecoverableitemsdeletions",
    "archiverecoverableitemsversions",
    "archiverecoverableitemspurges",
    "archiverecoverableitemsdiscoveryholds",
    "syncissues",
    "conflicts",
    "localfailures",
    "serverfailures",
    "recipientcache",
    "quickcontacts",
    "conversationhistory",
    "adminauditlogs",
    "todosearch",
    "mycontacts",
    "directory",
    "imcontactlist",
    "peopleconnect",
    "favorites",
    "mecontact",
    "personmetadata",
    "teamspaceactivity",
    "teamspacemessaging",
    "teamspaceworkitems",
    "scheduled",
    "orionnotes",
    "tagitems",
    "alltaggeditems",
    "externalcontacts",
    "teamchat",
    "yammerroot",
    "yammerinbound",
    "yammeroutbound",
    "yammerfeeds",
    "onedriveroot",
    "onedriverecylebin",
    "onedrivesystem",
    "onedrivevolume",
];
