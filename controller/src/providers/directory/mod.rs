//! The directory provider: Active Directory over LDAP.
//!
//! It reads what the controller needs to know about the service account and the scope:
//! users by UPN, account state, Domain Users membership, and groups with their transitive
//! members, including groups so large that AD returns `member` in ranges. It also makes the
//! few changes the controller applies: creating an account with a generated password,
//! enabling an account and adding a group member.
//!
//! Every search uses the Simple Paged Results control, every value placed in a filter is
//! escaped per RFC 4515, and every value placed in a DN per RFC 4514. Passwords are written
//! only over LDAPS or StartTLS, which AD requires, and never appear in logs or errors.
//!
//! Tested against Samba 4.17 as an AD domain controller; see `scripts/samba-ad.sh`.

mod client;
mod error;
mod escape;
mod groups;
mod password;
mod recipients;
mod settings;
mod sid;
mod users;

pub use client::{DirectoryClient, RootDse};
pub use error::{AdDiagnostic, DirectoryError, LdapStatus, Operation, result_code_name};
pub use escape::{escape_dn_value, escape_filter_bytes, escape_filter_value};
pub use groups::{DirectoryObject, Group, GroupRef, IN_CHAIN_MATCHING_RULE, MemberKind};
pub use password::{GENERATED_PASSWORD_LENGTH, encode_unicode_pwd, generate_password};
pub use recipients::{
    MailboxType, ON_PREMISES_MAILBOX_TYPES, REMOTE_MAILBOX_TYPES, Recipient, RecipientKind,
};
pub use settings::{BindIdentity, ConnectionSettings, Password, TransitiveStrategy};
pub use sid::{DOMAIN_USERS_RID, Sid};
pub use users::{
    AccountStatus, CreatedUser, DomainUsersMembership, NewUser, SAM_ACCOUNT_NAME_MAX_LENGTH,
    UserAccount, UserMatch, derive_sam_account_name, flags,
};
