//! `ResolveNames`: mail recipients of the directory by name or address.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/resolvenames-operation>.

use std::fmt::Write as _;

use super::{enumerated, required};
use crate::World;
use crate::ews::mailbox::Principal;
use crate::ews::props::parse_bool;
use crate::ews::soap::{self, Fault, ResponseError};
use crate::ews::xml::{Element, escape};

/// Most resolutions one response carries, as Exchange limits them.
const MAX_RESOLUTIONS: usize = 100;

/// A recipient that matched.
struct Resolution {
    name: String,
    address: String,
    mailbox_type: &'static str,
}

pub fn execute(
    world: &World,
    _principal: &Principal,
    operation: &Element,
) -> Result<String, Fault> {
    let entry = required(operation, "UnresolvedEntry")?
        .text
        .trim()
        .to_string();
    let full = parse_bool(
        operation
            .attribute("ReturnFullContactData")
            .unwrap_or("false"),
    )
    .unwrap_or(false);
    enumerated(
        operation,
        "SearchScope",
        &[
            "ActiveDirectory",
            "ActiveDirectoryContacts",
            "Contacts",
            "ContactsActiveDirectory",
        ],
        Some("ActiveDirectoryContacts"),
        "ResolveNamesSearchScopeType",
    )?;

    let found = resolve(world, &entry);
    let mut out = String::with_capacity(1024);
    soap::open_response(&mut out, "ResolveNames");
    if found.is_empty() {
        ResponseError::new("ErrorNameResolutionNoResults", "No results were found.")
            .write_open(&mut out, "ResolveNamesResponseMessage");
        out.push_str("</m:ResolveNamesResponseMessage>");
    } else {
        let total = found.len();
        let shown = total.min(MAX_RESOLUTIONS);
        if total > 1 {
            let _ = write!(
                out,
                r#"<m:ResolveNamesResponseMessage ResponseClass="Warning"><m:MessageText>Multiple results were found.</m:MessageText><m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>"#
            );
        } else {
            soap::write_success_open(&mut out, "ResolveNamesResponseMessage");
        }
        let _ = write!(
            out,
            r#"<m:ResolutionSet TotalItemsInView="{total}" IncludesLastItemInRange="{}">"#,
            shown == total
        );
        for resolution in found.iter().take(shown) {
            let _ = write!(
                out,
                "<t:Resolution><t:Mailbox><t:Name>{name}</t:Name><t:EmailAddress>{address}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>{kind}</t:MailboxType></t:Mailbox>",
                name = escape(&resolution.name),
                address = escape(&resolution.address),
                kind = resolution.mailbox_type,
            );
            if full {
                let _ = write!(
                    out,
                    r#"<t:Contact><t:DisplayName>{name}</t:DisplayName><t:EmailAddresses><t:Entry Key="EmailAddress1">SMTP:{address}</t:Entry></t:EmailAddresses><t:ContactSource>ActiveDirectory</t:ContactSource></t:Contact>"#,
                    name = escape(&resolution.name),
                    address = escape(&resolution.address),
                );
            }
            out.push_str("</t:Resolution>");
        }
        out.push_str("</m:ResolutionSet></m:ResolveNamesResponseMessage>");
    }
    soap::close_response(&mut out, "ResolveNames");
    Ok(out)
}

/// Mail-enabled users and groups whose address equals the entry, or whose name, account name
/// or address starts with it, in display-name order.
fn resolve(world: &World, entry: &str) -> Vec<Resolution> {
    let wanted = entry
        .strip_prefix("smtp:")
        .or_else(|| entry.strip_prefix("SMTP:"))
        .unwrap_or(entry)
        .to_lowercase();
    if wanted.is_empty() {
        return Vec::new();
    }
    let matches = |texts: &[&str]| texts.iter().any(|t| t.to_lowercase().starts_with(&wanted));
    let mut found: Vec<Resolution> = Vec::new();
    for user in world.directory.users.values() {
        let Some(mail) = &user.mail else { continue };
        let addresses: Vec<&str> = user.smtp_addresses().collect();
        let exact = addresses.iter().any(|a| a.eq_ignore_ascii_case(&wanted));
        if exact || matches(&[&user.display_name, &user.sam]) || matches(&addresses) {
            found.push(Resolution {
                name: user.display_name.clone(),
                address: mail.clone(),
                mailbox_type: "Mailbox",
            });
        }
    }
    for group in world.directory.groups.values() {
        let Some(mail) = &group.mail else { continue };
        if matches(&[&group.sam, mail]) {
            found.push(Resolution {
                name: group.sam.clone(),
                address: mail.clone(),
                mailbox_type: "PublicDL",
            });
        }
    }
    // An exact address match wins over prefix matches.
    if let Some(position) = found
        .iter()
        .position(|r| r.address.eq_ignore_ascii_case(&wanted))
    {
        return vec![found.swap_remove(position)];
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.address.cmp(&b.address)));
    found
}
