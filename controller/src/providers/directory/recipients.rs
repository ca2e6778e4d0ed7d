//! Mail recipients by address: who an address in a From or Sender field belongs to, and
//! where that recipient's mailbox is.
//!
//! Exchange records a recipient's type in `msExchRecipientTypeDetails`, a bit set whose values
//! are listed in Exchange's `RecipientTypeDetails` enumeration: 1 is a mailbox on Exchange
//! Server (`UserMailbox`), 2147483648 a mailbox in Exchange Online that the on-premises
//! directory represents as a remote mailbox (`RemoteUserMailbox`). The attribute exists only
//! where the Exchange schema extension is installed.

use ldap3::{Scope, SearchEntry};

use super::client::{DirectoryClient, first_value, values};
use super::error::DirectoryError;
use super::escape::escape_filter_value;

/// `msExchRecipientTypeDetails` values of mailboxes on Exchange Server: user, linked,
/// shared, room and equipment mailboxes.
pub const ON_PREMISES_MAILBOX_TYPES: [i64; 5] = [0x1, 0x2, 0x4, 0x10, 0x20];

/// `msExchRecipientTypeDetails` values of Exchange Online mailboxes as seen on premises:
/// remote user, room, equipment and shared mailboxes.
pub const REMOTE_MAILBOX_TYPES: [i64; 4] =
    [0x8000_0000, 0x2_0000_0000, 0x4_0000_0000, 0x8_0000_0000];

const RECIPIENT_ATTRIBUTES: [&str; 5] = [
    "objectClass",
    "userPrincipalName",
    "mail",
    "proxyAddresses",
    "msExchRecipientTypeDetails",
];

/// The kind of directory object an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    /// A user account.
    User,
    /// A group, distribution or security.
    Group,
    /// A contact: an outside address in the directory.
    Contact,
    /// Another object class, such as a public folder.
    Other,
}

/// Where a user's mailbox is, from `msExchRecipientTypeDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailboxType {
    /// A mailbox on Exchange Server.
    OnPremises,
    /// A mailbox in Exchange Online (a remote mailbox on premises).
    Remote,
    /// A recipient without a mailbox, such as a mail user.
    None,
}

/// A directory object found by one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Distinguished name.
    pub dn: String,
    /// Object kind.
    pub kind: RecipientKind,
    /// `userPrincipalName`, lowercase.
    pub user_principal_name: Option<String>,
    /// `mail`, the primary SMTP address, lowercase.
    pub mail: Option<String>,
    /// The `smtp:` addresses of `proxyAddresses`, lowercase; the first is the primary one
    /// when `proxyAddresses` marks it with `SMTP:`.
    pub smtp_addresses: Vec<String>,
    /// `msExchRecipientTypeDetails`, when the directory has the Exchange schema.
    pub recipient_type_details: Option<i64>,
}

impl Recipient {
    /// Decodes `msExchRecipientTypeDetails`; `None` when the attribute is absent.
    pub fn mailbox_type(&self) -> Option<MailboxType> {
        let details = self.recipient_type_details?;
        Some(if ON_PREMISES_MAILBOX_TYPES.contains(&details) {
            MailboxType::OnPremises
        } else if REMOTE_MAILBOX_TYPES.contains(&details) {
            MailboxType::Remote
        } else {
            MailboxType::None
        })
    }

    /// Returns the primary SMTP address: `mail`, else the `SMTP:` entry of
    /// `proxyAddresses`.
    pub fn primary_smtp_address(&self) -> Option<&str> {
        self.mail
            .as_deref()
            .or_else(|| self.smtp_addresses.first().map(String::as_str))
    }
}

impl DirectoryClient {
    /// Finds the object that has `address` as its UPN, `mail` or an SMTP entry of
    /// `proxyAddresses`. Returns `None` when no object has it. When several do, the one
    /// whose `mail` is the address wins; otherwise the match is ambiguous.
    pub async fn find_recipient(&self, address: &str) -> Result<Option<Recipient>, DirectoryError> {
        let escaped = escape_filter_value(address);
        // AD compares proxyAddresses without regard to case, so `smtp:` also finds the
        // primary `SMTP:` entry.
        let filter = format!(
            "(|(userPrincipalName={escaped})(mail={escaped})(proxyAddresses=smtp:{escaped}))"
        );
        let entries = self
            .search_paged(
                self.base_dn(),
                Scope::Subtree,
                &filter,
                &RECIPIENT_ATTRIBUTES,
            )
            .await?;
        let mut recipients: Vec<Recipient> = entries.iter().map(parse_recipient).collect();
        if recipients.len() > 1 {
            let by_mail = recipients
                .iter()
                .position(|recipient| recipient.mail.as_deref() == Some(address));
            return match by_mail {
                Some(position) => Ok(Some(recipients.swap_remove(position))),
                None => Err(DirectoryError::Ambiguous {
                    target: address.to_owned(),
                    count: recipients.len(),
                    dns: recipients
                        .into_iter()
                        .map(|recipient| recipient.dn)
                        .collect(),
                }),
            };
        }
        Ok(recipients.pop())
    }
}

fn parse_recipient(entry: &SearchEntry) -> Recipient {
    let classes: Vec<String> = values(entry, "objectClass")
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |class: &str| classes.iter().any(|value| value == class);
    let kind = if has("group") {
        RecipientKind::Group
    } else if has("contact") {
        RecipientKind::Contact
    } else if has("user") && !has("computer") {
        RecipientKind::User
    } else {
        RecipientKind::Other
    };

    // The primary address (`SMTP:`) goes first, then the others in directory order.
    let mut smtp_addresses: Vec<String> = Vec::new();
    for proxy in values(entry, "proxyAddresses") {
        let Some((prefix, address)) = proxy.split_once(':') else {
            continue;
        };
        if !prefix.eq_ignore_ascii_case("smtp") {
            continue;
        }
        let address = address.to_ascii_lowercase();
        if prefix == "SMTP" {
            smtp_addresses.insert(0, address);
        } else {
            smtp_addresses.push(address);
        }
    }
    Recipient {
        dn: entry.dn.clone(),
        kind,
        user_principal_name: first_value(entry, "userPrincipalName").map(str::to_ascii_lowercase),
        mail: first_value(entry, "mail").map(str::to_ascii_lowercase),
        smtp_addresses,
        recipient_type_details: first_value(entry, "msExchRecipientTypeDetails")
            .and_then(|value| value.trim().parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entry(attributes: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: "CN=Alice Archer,CN=Users,DC=lab,DC=example".to_owned(),
            attrs: attributes
                .iter()
                .map(|(name, values)| {
                    (
                        (*name).to_owned(),
                        values.iter().map(|v| (*v).to_owned()).collect(),
                    )
                })
                .collect::<HashMap<_, _>>(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn user_with_remote_mailbox_decodes_as_remote() {
        let recipient = parse_recipient(&entry(&[
            (
                "objectClass",
                &["top", "person", "organizationalPerson", "user"],
            ),
            ("mail", &["Carol@lab.example"]),
            ("msExchRecipientTypeDetails", &["2147483648"]),
            (
                "proxyAddresses",
                &[
                    "smtp:carol.chen@lab.example",
                    "SMTP:carol@lab.example",
                    "X500:/o=x",
                ],
            ),
        ]));

        assert_eq!(recipient.kind, RecipientKind::User);
        assert_eq!(recipient.mailbox_type(), Some(MailboxType::Remote));
        assert_eq!(recipient.primary_smtp_address(), Some("carol@lab.example"));
        assert_eq!(
            recipient.smtp_addresses,
            ["carol@lab.example", "carol.chen@lab.example"]
        );
    }

    #[test]
    fn recipient_types_decode() {
        let cases: [(&str, Option<MailboxType>); 5] = [
            ("1", Some(MailboxType::OnPremises)),
            ("4", Some(MailboxType::OnPremises)),
            ("34359738368", Some(MailboxType::Remote)),
            ("128", Some(MailboxType::None)),
            ("not a number", None),
        ];
        for (value, expected) in cases {
            let recipient = parse_recipient(&entry(&[
                ("objectClass", &["user"]),
                ("msExchRecipientTypeDetails", &[value]),
            ]));
            assert_eq!(recipient.mailbox_type(), expected, "{value}");
        }
    }

    #[test]
    fn object_classes_decode_to_kinds() {
        let cases: [(&[&str], RecipientKind); 4] = [
            (&["top", "group"], RecipientKind::Group),
            (&["top", "person", "contact"], RecipientKind::Contact),
            (&["top", "user", "computer"], RecipientKind::Other),
            (&["top", "publicFolder"], RecipientKind::Other),
        ];
        for (classes, kind) in cases {
            let recipient = parse_recipient(&entry(&[("objectClass", classes)]));
            assert_eq!(recipient.kind, kind, "{classes:?}");
        }
    }
}
