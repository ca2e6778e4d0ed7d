//! Whose mailbox an address is, and where that mailbox lives.
//!
//! The directory is asked first: a group, a contact or an address it does not know has no
//! Sent Items. For a user, `msExchRecipientTypeDetails` tells a mailbox on Exchange Server
//! from one in Exchange Online. Where the directory lacks that attribute (no Exchange schema
//! extension, or a bind account that may not read it), EWS on premises decides: ResolveNames
//! says whether the address is a mailbox at all, and a mailbox that on-premises EWS cannot
//! open (`ErrorNonExistentMailbox`) is in Exchange Online.
//!
//! Answers are cached until the next reconcile replaces the resolver.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::providers::directory::{DirectoryError, MailboxType, Recipient, RecipientKind};
use crate::providers::exchange::ews::EwsError;

/// The maximum of cached resolutions; the cache starts afresh when full.
const CACHE_CAPACITY: usize = 100_000;

/// The deployment that hosts a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    /// Exchange Server.
    OnPremises,
    /// Exchange Online.
    Cloud,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OnPremises => "on-premises",
            Self::Cloud => "Exchange Online",
        })
    }
}

/// A mailbox whose Sent Items the loop can update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The primary SMTP address, lowercase: whom requests impersonate.
    pub address: String,
    /// Its deployment.
    pub location: Location,
    /// The directory entry of its owner.
    pub dn: Option<String>,
    /// Every address of the owner, lowercase: UPN and SMTP addresses.
    pub addresses: Vec<String>,
}

/// Reasons that an address has no Sent Items to update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMailbox {
    /// A distribution or security group.
    Group,
    /// A mail contact: an outside address in the directory.
    Contact,
    /// A user without an Exchange mailbox, such as a mail user.
    UserWithoutMailbox,
    /// The directory has no object with this address.
    NotInDirectory,
    /// Another kind of object, such as a public folder.
    OtherObject,
    /// An Exchange Online mailbox in an on-premises-only configuration.
    CloudMailboxNotConfigured,
}

impl NoMailbox {
    /// Returns a short, stable name for metrics and the summary.
    pub fn label(self) -> &'static str {
        match self {
            Self::Group => "sender_is_group",
            Self::Contact => "sender_is_contact",
            Self::UserWithoutMailbox => "sender_has_no_mailbox",
            Self::NotInDirectory => "sender_not_in_directory",
            Self::OtherObject => "sender_is_not_a_mailbox",
            Self::CloudMailboxNotConfigured => "cloud_mailbox_not_configured",
        }
    }

    /// Describes the reason for logs.
    pub fn describe(self, address: &str) -> String {
        match self {
            Self::Group => format!("{address} is a group, which has no Sent Items"),
            Self::Contact => format!("{address} is a mail contact, which has no Sent Items"),
            Self::UserWithoutMailbox => format!("{address} is a user without a mailbox"),
            Self::NotInDirectory => {
                format!("{address} is not an address of the organization's directory")
            }
            Self::OtherObject => {
                format!("{address} belongs to a directory object that is not a mailbox")
            }
            Self::CloudMailboxNotConfigured => format!(
                "{address} has its mailbox in Exchange Online, but the spec's environment is onPremises"
            ),
        }
    }
}

/// The resolution of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A mailbox.
    Mailbox(Mailbox),
    /// No mailbox, and why.
    NoMailbox(NoMailbox),
}

/// A failed lookup; the loop tries the message again later.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The directory lookup failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The EWS lookup failed.
    #[error(transparent)]
    Ews(#[from] EwsError),
    /// The Microsoft Graph lookup failed.
    #[error(transparent)]
    Graph(#[from] crate::providers::entra::GraphError),
}

/// Directory lookups by address.
#[async_trait]
pub trait RecipientDirectory: Send + Sync {
    /// Finds the object with this address, or `None`.
    async fn find_recipient(&self, address: &str) -> Result<Option<Recipient>, LookupError>;
}

/// The result of probing an address with on-premises EWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EwsAnswer {
    /// ResolveNames found no mailbox with this address.
    NotAMailbox,
    /// A mailbox that on-premises EWS opens.
    OnPremises,
    /// A mailbox that on-premises EWS cannot open: it is in Exchange Online.
    NotOnThisServer,
}

/// The EWS side of the lookup.
#[async_trait]
pub trait MailboxProbe: Send + Sync {
    /// Resolves the address and, for a mailbox, tries to open its Sent Items.
    async fn probe(&self, address: &str) -> Result<EwsAnswer, LookupError>;
}

/// Resolves addresses to mailboxes, caching the answers.
pub struct RecipientResolver {
    directory: Arc<dyn RecipientDirectory>,
    probe: Arc<dyn MailboxProbe>,
    hybrid: bool,
    cache: Mutex<HashMap<String, Resolution>>,
}

impl fmt::Debug for RecipientResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientResolver")
            .field("hybrid", &self.hybrid)
            .finish_non_exhaustive()
    }
}

impl RecipientResolver {
    /// Creates a resolver. With `hybrid`, Exchange Online mailboxes can be updated.
    pub fn new(
        directory: Arc<dyn RecipientDirectory>,
        probe: Arc<dyn MailboxProbe>,
        hybrid: bool,
    ) -> Self {
        Self {
            directory,
            probe,
            hybrid,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a lowercase address.
    pub async fn resolve(&self, address: &str) -> Result<Resolution, LookupError> {
        if let Some(cached) = self.cache.lock().expect("cache lock").get(address) {
            return Ok(cached.clone());
        }
        let resolution = self.look_up(address).await?;
        let mut cache = self.cache.lock().expect("cache lock");
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(address.to_owned(), resolution.clone());
        Ok(resolution)
    }

    /// Drops the cached resolutions to `mailbox`, after a server reported that it does not
    /// host that mailbox (it may have moved).
    pub fn forget(&self, mailbox: &str) {
        self.cache.lock().expect("cache lock").retain(|_, resolution| {
            !matches!(resolution, Resolution::Mailbox(found) if found.address == mailbox)
        });
    }

    async fn look_up(&self, address: &str) -> Result<Resolution, LookupError> {
        let Some(recipient) = self.directory.find_recipient(address).await? else {
            return Ok(Resolution::NoMailbox(NoMailbox::NotInDirectory));
        };
        match recipient.kind {
            RecipientKind::Group => return Ok(Resolution::NoMailbox(NoMailbox::Group)),
            RecipientKind::Contact => return Ok(Resolution::NoMailbox(NoMailbox::Contact)),
            RecipientKind::Other => return Ok(Resolution::NoMailbox(NoMailbox::OtherObject)),
            RecipientKind::User => {}
        }

        let primary = recipient
            .primary_smtp_address()
            .unwrap_or(address)
            .to_owned();
        let location = match recipient.mailbox_type() {
            Some(MailboxType::OnPremises) => Location::OnPremises,
            Some(MailboxType::Remote) => Location::Cloud,
            Some(MailboxType::None) => {
                return Ok(Resolution::NoMailbox(NoMailbox::UserWithoutMailbox));
            }
            None => match self.probe.probe(&primary).await? {
                EwsAnswer::OnPremises => Location::OnPremises,
                EwsAnswer::NotOnThisServer => Location::Cloud,
                EwsAnswer::NotAMailbox => {
                    return Ok(Resolution::NoMailbox(NoMailbox::UserWithoutMailbox));
                }
            },
        };
        if location == Location::Cloud && !self.hybrid {
            return Ok(Resolution::NoMailbox(NoMailbox::CloudMailboxNotConfigured));
        }
        Ok(Resolution::Mailbox(mailbox(&recipient, primary, location)))
    }
}

fn mailbox(recipient: &Recipient, primary: String, location: Location) -> Mailbox {
    let mut addresses: Vec<String> = Vec::new();
    let candidates = std::iter::once(primary.as_str())
        .chain(recipient.user_principal_name.as_deref())
        .chain(recipient.mail.as_deref())
        .chain(recipient.smtp_addresses.iter().map(String::as_str));
    for address in candidates {
        if !addresses.iter().any(|known| known == address) {
            addresses.push(address.to_owned());
        }
    }
    Mailbox {
        address: primary,
        location,
        dn: Some(recipient.dn.clone()),
        addresses,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct FakeDirectory {
        recipients: HashMap<String, Recipient>,
        lookups: AtomicUsize,
    }

    #[async_trait]
    impl RecipientDirectory for FakeDirectory {
        async fn find_recipient(&self, address: &str) -> Result<Option<Recipient>, LookupError> {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            Ok(self.recipients.get(address).cloned())
        }
    }

    struct FakeProbe(HashMap<String, EwsAnswer>);

    #[async_trait]
    impl MailboxProbe for FakeProbe {
        async fn probe(&self, address: &str) -> Result<EwsAnswer, LookupError> {
            Ok(self
                .0
                .get(address)
                .copied()
                .unwrap_or(EwsAnswer::NotAMailbox))
        }
    }

    fn user(mail: &str, details: Option<i64>) -> Recipient {
        Recipient {
            dn: format!("CN={mail},DC=lab,DC=example"),
            kind: RecipientKind::User,
            user_principal_name: Some(mail.replace("heidi.hill", "hhill")),
            mail: Some(mail.to_owned()),
            smtp_addresses: vec![mail.to_owned()],
            recipient_type_details: details,
        }
    }

    fn resolver(
        recipients: Vec<(&str, Recipient)>,
        probe: Vec<(&str, EwsAnswer)>,
        hybrid: bool,
    ) -> (RecipientResolver, Arc<FakeDirectory>) {
        let directory = Arc::new(FakeDirectory {
            recipients: recipients
                .into_iter()
                .map(|(address, recipient)| (address.to_owned(), recipient))
                .collect(),
            lookups: AtomicUsize::new(0),
        });
        let probe = Arc::new(FakeProbe(
            probe
                .into_iter()
                .map(|(address, answer)| (address.to_owned(), answer))
                .collect(),
        ));
        (
            RecipientResolver::new(directory.clone(), probe, hybrid),
            directory,
        )
    }

    #[tokio::test]
    async fn recipient_type_decides_the_location() {
        let (resolver, _) = resolver(
            vec![
                ("alice@lab.example", user("alice@lab.example", Some(1))),
                (
                    "carol@lab.example",
                    user("carol@lab.example", Some(2147483648)),
                ),
                ("ivan@lab.example", user("ivan@lab.example", Some(128))),
            ],
            vec![],
            true,
        );

        let alice = resolver
            .resolve("alice@lab.example")
            .await
            .expect("resolves");
        let carol = resolver
            .resolve("carol@lab.example")
            .await
            .expect("resolves");
        let ivan = resolver
            .resolve("ivan@lab.example")
            .await
            .expect("resolves");

        assert!(matches!(
            alice,
            Resolution::Mailbox(Mailbox {
                location: Location::OnPremises,
                ..
            })
        ));
        assert!(matches!(
            carol,
            Resolution::Mailbox(Mailbox {
                location: Location::Cloud,
                ..
            })
        ));
        assert_eq!(ivan, Resolution::NoMailbox(NoMailbox::UserWithoutMailbox));
    }

    #[tokio::test]
    async fn ews_decides_without_the_attribute() {
        let (resolver, _) = resolver(
            vec![
                ("alice@lab.example", user("alice@lab.example", None)),
                ("carol@lab.example", user("carol@lab.example", None)),
                ("ivan@lab.example", user("ivan@lab.example", None)),
            ],
            vec![
                ("alice@lab.example", EwsAnswer::OnPremises),
                ("carol@lab.example", EwsAnswer::NotOnThisServer),
            ],
            true,
        );

        let alice = resolver
            .resolve("alice@lab.example")
            .await
            .expect("resolves");
        let carol = resolver
            .resolve("carol@lab.example")
            .await
            .expect("resolves");
        let ivan = resolver
            .resolve("ivan@lab.example")
            .await
            .expect("resolves");

        assert!(matches!(
            alice,
            Resolution::Mailbox(Mailbox {
                location: Location::OnPremises,
                ..
            })
        ));
        assert!(matches!(
            carol,
            Resolution::Mailbox(Mailbox {
                location: Location::Cloud,
                ..
            })
        ));
        assert_eq!(ivan, Resolution::NoMailbox(NoMailbox::UserWithoutMailbox));
    }

    #[tokio::test]
    async fn groups_contacts_and_strangers_have_no_mailbox() {
        let mut group = user("sales@lab.example", None);
        group.kind = RecipientKind::Group;
        let mut contact = user("partner@example.net", None);
        contact.kind = RecipientKind::Contact;
        let (resolver, _) = resolver(
            vec![
                ("sales@lab.example", group),
                ("partner@example.net", contact),
            ],
            vec![],
            true,
        );

        for (address, expected) in [
            ("sales@lab.example", NoMailbox::Group),
            ("partner@example.net", NoMailbox::Contact),
            ("someone@example.org", NoMailbox::NotInDirectory),
        ] {
            assert_eq!(
                resolver.resolve(address).await.expect("resolves"),
                Resolution::NoMailbox(expected),
                "{address}"
            );
        }
    }

    #[tokio::test]
    async fn cloud_mailbox_without_hybrid_is_skipped() {
        let (resolver, _) = resolver(
            vec![(
                "carol@lab.example",
                user("carol@lab.example", Some(2147483648)),
            )],
            vec![],
            false,
        );

        assert_eq!(
            resolver
                .resolve("carol@lab.example")
                .await
                .expect("resolves"),
            Resolution::NoMailbox(NoMailbox::CloudMailboxNotConfigured)
        );
    }

    #[tokio::test]
    async fn mailbox_lists_every_address_with_the_primary_first() {
        let (resolver, _) = resolver(
            vec![(
                "hhill@lab.example",
                user("heidi.hill@lab.example", Some(2147483648)),
            )],
            vec![],
            true,
        );

        let Resolution::Mailbox(mailbox) = resolver
            .resolve("hhill@lab.example")
            .await
            .expect("resolves")
        else {
            panic!("expected a mailbox");
        };

        assert_eq!(mailbox.address, "heidi.hill@lab.example");
        assert_eq!(
            mailbox.addresses,
            ["heidi.hill@lab.example", "hhill@lab.example"]
        );
    }

    #[tokio::test]
    async fn answers_are_cached() {
        let (resolver, directory) = resolver(
            vec![("alice@lab.example", user("alice@lab.example", Some(1)))],
            vec![],
            true,
        );

        for _ in 0..3 {
            resolver
                .resolve("alice@lab.example")
                .await
                .expect("resolves");
        }

        assert_eq!(directory.lookups.load(Ordering::Relaxed), 1);
    }
}
