//! User accounts: lookup by UPN, account state, Domain Users membership, and creation of
//! an account with a password.

use std::collections::HashSet;

use ldap3::{Mod, Scope, SearchEntry};
use tracing::{debug, info, warn};

use super::client::{DirectoryClient, first_value, optional_integer, optional_sid, values};
use super::error::DirectoryError;
use super::escape::{escape_dn_value, escape_filter_bytes, escape_filter_value};
use super::password::{encode_unicode_pwd, generate_password};
use super::settings::Password;
use super::sid::{DOMAIN_USERS_RID, Sid};

/// `userAccountControl` and `msDS-User-Account-Control-Computed` flags.
///
/// See <https://learn.microsoft.com/en-us/archive/blogs/mempson/useraccountcontrol-flags>.
pub mod flags {
    /// The account is disabled.
    pub const ACCOUNTDISABLE: u32 = 0x0002;
    /// The account is locked out (computed attribute only on current AD versions).
    pub const LOCKOUT: u32 = 0x0010;
    /// A normal user account.
    pub const NORMAL_ACCOUNT: u32 = 0x0200;
    /// The password never expires.
    pub const DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;
    /// The password has expired (computed attribute only on current AD versions).
    pub const PASSWORD_EXPIRED: u32 = 0x80_0000;
}

/// Maximum length of a `sAMAccountName` for a user.
pub const SAM_ACCOUNT_NAME_MAX_LENGTH: usize = 20;

const USER_ATTRIBUTES: [&str; 13] = [
    "sAMAccountName",
    "userPrincipalName",
    "displayName",
    "mail",
    "proxyAddresses",
    "userAccountControl",
    // A constructed attribute: the server returns it only when it is requested by name.
    "msDS-User-Account-Control-Computed",
    "pwdLastSet",
    "lockoutTime",
    "objectSid",
    "primaryGroupID",
    "memberOf",
    "objectClass",
];

/// A user account as read from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    /// Distinguished name.
    pub dn: String,
    /// Pre-Windows 2000 logon name.
    pub sam_account_name: String,
    /// User principal name, when set.
    pub user_principal_name: Option<String>,
    /// Display name, when set.
    pub display_name: Option<String>,
    /// Primary e-mail address from `mail`, when set.
    pub mail: Option<String>,
    /// Values of `proxyAddresses`, such as `SMTP:alice@example.com`.
    pub proxy_addresses: Vec<String>,
    /// Account state decoded from `userAccountControl` and related attributes.
    pub status: AccountStatus,
    /// Security identifier.
    pub object_sid: Option<Sid>,
    /// RID of the primary group, 513 (Domain Users) for most accounts.
    pub primary_group_id: Option<u32>,
    /// DNs of the groups that list the account in `member` (not the primary group).
    //
    // NOTE: AD returns at most MaxValRange (1,500 by default) values of memberOf in one
    // response, and this read does not follow ranges, so an account in more groups shows
    // only some of them here.
    pub member_of: Vec<String>,
    /// The attribute through which the lookup found the account.
    pub matched_by: UserMatch,
}

/// The attribute through which [`DirectoryClient::find_user_by_upn`] found an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMatch {
    /// `userPrincipalName` equals the requested UPN.
    UserPrincipalName,
    /// `mail` or an `SMTP:` entry of `proxyAddresses` equals the requested UPN.
    SmtpAddress,
}

/// Account state decoded from `userAccountControl`, `msDS-User-Account-Control-Computed`,
/// `pwdLastSet` and `lockoutTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountStatus {
    /// Raw `userAccountControl` value.
    pub user_account_control: u32,
    /// ACCOUNTDISABLE is clear.
    pub enabled: bool,
    /// DONT_EXPIRE_PASSWORD is set.
    pub password_never_expires: bool,
    /// The password has expired (computed PASSWORD_EXPIRED) or must be changed before the
    /// next logon (`pwdLastSet` is 0).
    pub password_expired: bool,
    /// `pwdLastSet` is 0: the password must be changed before the next logon.
    pub must_change_password: bool,
    /// The account is locked out: the computed LOCKOUT flag, or a non-zero `lockoutTime`
    /// when the server does not return the computed attribute.
    pub locked_out: bool,
}

impl AccountStatus {
    /// Decodes the account state. `computed` is `msDS-User-Account-Control-Computed`, which
    /// AD computes from the lockout duration and the maximum password age, so it wins over
    /// the stored `lockoutTime` when both are present.
    pub fn decode(
        user_account_control: u32,
        computed: Option<u32>,
        pwd_last_set: Option<i64>,
        lockout_time: Option<i64>,
    ) -> Self {
        let must_change_password = pwd_last_set == Some(0);
        let computed_flags = computed.unwrap_or(0);
        let locked_out = match computed {
            Some(flags) => flags & flags::LOCKOUT != 0,
            None => lockout_time.is_some_and(|time| time != 0),
        };
        AccountStatus {
            user_account_control,
            enabled: user_account_control & flags::ACCOUNTDISABLE == 0,
            password_never_expires: user_account_control & flags::DONT_EXPIRE_PASSWORD != 0,
            password_expired: computed_flags & flags::PASSWORD_EXPIRED != 0 || must_change_password,
            must_change_password,
            locked_out,
        }
    }

    /// Reports whether the account can bind with its password: enabled, not locked out,
    /// and with a password that has not expired.
    pub fn is_usable(&self) -> bool {
        self.enabled && !self.locked_out && !self.password_expired
    }
}

/// The way an account belongs to the domain's Domain Users group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainUsersMembership {
    /// Domain Users is the account's primary group (`primaryGroupID` 513).
    PrimaryGroup,
    /// The Domain Users group lists the account in `member`.
    Member,
    /// Neither.
    NotMember,
}

/// A user account to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// User principal name, `user@domain`.
    pub user_principal_name: String,
    /// DN of the container or organizational unit, such as `CN=Users,DC=example,DC=com`.
    pub container_dn: String,
    /// Common name of the entry. Defaults to the part of the UPN before `@`.
    pub common_name: Option<String>,
    /// Pre-Windows 2000 logon name. Defaults to one derived from the UPN.
    pub sam_account_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
}

impl NewUser {
    /// Describes an account with the given UPN in the given container, with the other
    /// names derived from the UPN.
    pub fn new(user_principal_name: impl Into<String>, container_dn: impl Into<String>) -> Self {
        NewUser {
            user_principal_name: user_principal_name.into(),
            container_dn: container_dn.into(),
            common_name: None,
            sam_account_name: None,
            display_name: None,
            description: None,
        }
    }
}

/// An account created by [`DirectoryClient::create_user`], with the generated password.
#[derive(Debug, Clone)]
pub struct CreatedUser {
    /// Distinguished name.
    pub dn: String,
    /// Pre-Windows 2000 logon name.
    pub sam_account_name: String,
    /// User principal name.
    pub user_principal_name: String,
    /// The generated password, to be stored in the secret store that the spec names.
    pub password: Password,
}

impl DirectoryClient {
    /// Finds a person account by `userPrincipalName`, then by `mail` or an `SMTP:` entry of
    /// `proxyAddresses`, because many organizations give accounts an e-mail address that
    /// differs from the UPN. Returns `None` when neither matches.
    pub async fn find_user_by_upn(&self, upn: &str) -> Result<Option<UserAccount>, DirectoryError> {
        check_upn(upn)?;
        let escaped = escape_filter_value(upn);

        let by_upn =
            format!("(&(objectCategory=person)(objectClass=user)(userPrincipalName={escaped}))");
        if let Some(entry) = self.search_one_user(upn, &by_upn).await? {
            return parse_user(&entry, UserMatch::UserPrincipalName).map(Some);
        }

        let by_address = format!(
            "(&(objectCategory=person)(objectClass=user)(|(mail={escaped})(proxyAddresses=SMTP:{escaped})))"
        );
        match self.search_one_user(upn, &by_address).await? {
            Some(entry) => {
                debug!(upn, dn = %entry.dn, "found the account by its e-mail address, not its UPN");
                parse_user(&entry, UserMatch::SmtpAddress).map(Some)
            }
            None => Ok(None),
        }
    }

    async fn search_one_user(
        &self,
        upn: &str,
        filter: &str,
    ) -> Result<Option<SearchEntry>, DirectoryError> {
        let mut entries = self
            .search_paged(self.base_dn(), Scope::Subtree, filter, &USER_ATTRIBUTES)
            .await?;
        if entries.len() > 1 {
            return Err(DirectoryError::Ambiguous {
                target: upn.to_owned(),
                count: entries.len(),
                dns: entries.into_iter().map(|entry| entry.dn).collect(),
            });
        }
        Ok(entries.pop())
    }

    /// Reads a user account by its DN, or returns `None` when no entry has that DN.
    pub async fn read_user(&self, dn: &str) -> Result<Option<UserAccount>, DirectoryError> {
        let entries = self
            .search_paged(dn, Scope::Base, "(objectClass=user)", &USER_ATTRIBUTES)
            .await?;
        entries
            .first()
            .map(|entry| parse_user(entry, UserMatch::UserPrincipalName))
            .transpose()
    }

    /// Reports how the account belongs to Domain Users: through `primaryGroupID` 513 in
    /// the account's own domain, or through an explicit `member` value of the group whose
    /// SID is the domain SID followed by RID 513.
    pub async fn domain_users_membership(
        &self,
        user: &UserAccount,
    ) -> Result<DomainUsersMembership, DirectoryError> {
        let domain_sid = self.domain_sid().await?;
        let in_this_domain = user
            .object_sid
            .as_ref()
            .and_then(Sid::domain)
            .is_none_or(|user_domain| user_domain == domain_sid);
        if in_this_domain && user.primary_group_id == Some(DOMAIN_USERS_RID) {
            return Ok(DomainUsersMembership::PrimaryGroup);
        }

        let group_sid = domain_sid.with_rid(DOMAIN_USERS_RID);
        let filter = format!(
            "(&(objectClass=group)(objectSid={})(member={}))",
            escape_filter_bytes(&group_sid.to_bytes()),
            escape_filter_value(&user.dn)
        );
        let entries = self
            .search_paged(self.base_dn(), Scope::Subtree, &filter, &["objectSid"])
            .await?;
        Ok(if entries.is_empty() {
            DomainUsersMembership::NotMember
        } else {
            DomainUsersMembership::Member
        })
    }

    /// Creates an enabled user account with a generated password.
    ///
    /// The entry is added disabled, its password is set through `unicodePwd`, and then
    /// `userAccountControl` becomes 512 (NORMAL_ACCOUNT). Because AD accepts password
    /// writes only over LDAPS or StartTLS, an unencrypted connection is rejected before
    /// anything is written. When the password or the enabling step fails, the new entry
    /// is deleted again so that a retry starts from nothing.
    pub async fn create_user(&self, new_user: &NewUser) -> Result<CreatedUser, DirectoryError> {
        let upn = new_user.user_principal_name.as_str();
        let local_part = check_upn(upn)?;
        let common_name = new_user
            .common_name
            .clone()
            .unwrap_or_else(|| local_part.to_owned());
        let dn = format!(
            "CN={},{}",
            escape_dn_value(&common_name),
            new_user.container_dn
        );
        if !self.is_encrypted() {
            return Err(DirectoryError::PasswordRequiresTls {
                dn,
                url: self.url().to_owned(),
            });
        }
        let sam_account_name = match &new_user.sam_account_name {
            Some(name) => name.clone(),
            None => derive_sam_account_name(upn)?,
        };

        let mut attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = vec![
            attribute(
                "objectClass",
                ["top", "person", "organizationalPerson", "user"],
            ),
            attribute("cn", [common_name.as_str()]),
            attribute("sAMAccountName", [sam_account_name.as_str()]),
            attribute("userPrincipalName", [upn]),
            attribute(
                "userAccountControl",
                [(flags::NORMAL_ACCOUNT | flags::ACCOUNTDISABLE)
                    .to_string()
                    .as_str()],
            ),
        ];
        if let Some(display_name) = &new_user.display_name {
            attributes.push(attribute("displayName", [display_name.as_str()]));
        }
        if let Some(description) = &new_user.description {
            attributes.push(attribute("description", [description.as_str()]));
        }
        self.add(&dn, attributes).await?;
        info!(dn = %dn, upn, sam_account_name = %sam_account_name, "created a disabled user account");

        let mut names = vec![sam_account_name.as_str(), local_part];
        if let Some(display_name) = &new_user.display_name {
            names.push(display_name);
        }
        let password = generate_password(&names);
        let activated = async {
            self.set_password(&dn, &password).await?;
            self.replace_user_account_control(&dn, flags::NORMAL_ACCOUNT)
                .await
        };
        if let Err(error) = activated.await {
            warn!(dn = %dn, error = %error, "setting the password of the new account failed; deleting the account");
            if let Err(delete_error) = self.delete(&dn).await {
                warn!(dn = %dn, error = %delete_error, "deleting the half-created account failed; delete it by hand");
            }
            return Err(error);
        }
        info!(dn = %dn, upn, "set the password of the new account and enabled it");

        Ok(CreatedUser {
            dn,
            sam_account_name,
            user_principal_name: upn.to_owned(),
            password,
        })
    }

    /// Sets an account's password through `unicodePwd`, which AD accepts only over LDAPS
    /// or StartTLS. The password must meet the domain's password policy.
    pub async fn set_password(&self, dn: &str, password: &Password) -> Result<(), DirectoryError> {
        if !self.is_encrypted() {
            return Err(DirectoryError::PasswordRequiresTls {
                dn: dn.to_owned(),
                url: self.url().to_owned(),
            });
        }
        let value = HashSet::from([encode_unicode_pwd(password)]);
        self.modify(dn, vec![Mod::Replace(b"unicodePwd".to_vec(), value)])
            .await?;
        info!(dn, "set the account password");
        Ok(())
    }

    /// Enables an account by clearing ACCOUNTDISABLE in `userAccountControl` and keeping
    /// the other flags. Returns whether the account was disabled before.
    pub async fn enable_account(&self, dn: &str) -> Result<bool, DirectoryError> {
        let entries = self
            .search_paged(
                dn,
                Scope::Base,
                "(objectClass=user)",
                &["userAccountControl"],
            )
            .await?;
        let entry = entries
            .first()
            .ok_or_else(|| DirectoryError::EntryNotFound { dn: dn.to_owned() })?;
        let current: u32 = optional_integer(entry, "userAccountControl")?.ok_or_else(|| {
            DirectoryError::MissingAttribute {
                dn: dn.to_owned(),
                attribute: "userAccountControl",
            }
        })?;
        if current & flags::ACCOUNTDISABLE == 0 {
            debug!(dn, "account already enabled");
            return Ok(false);
        }
        self.replace_user_account_control(dn, current & !flags::ACCOUNTDISABLE)
            .await?;
        info!(dn, "enabled the account");
        Ok(true)
    }

    async fn replace_user_account_control(
        &self,
        dn: &str,
        value: u32,
    ) -> Result<(), DirectoryError> {
        let value = HashSet::from([value.to_string().into_bytes()]);
        self.modify(
            dn,
            vec![Mod::Replace(b"userAccountControl".to_vec(), value)],
        )
        .await
    }
}

fn attribute<const N: usize>(name: &str, values: [&str; N]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values
            .iter()
            .map(|value| value.as_bytes().to_vec())
            .collect(),
    )
}

/// Checks that `upn` has the form `user@domain` and returns the part before `@`.
fn check_upn(upn: &str) -> Result<&str, DirectoryError> {
    let invalid = |reason: &str| DirectoryError::InvalidUpn {
        upn: upn.to_owned(),
        reason: reason.to_owned(),
    };
    let (local_part, domain) = upn.rsplit_once('@').ok_or_else(|| invalid("it has no @"))?;
    if local_part.is_empty() || domain.is_empty() {
        return Err(invalid("the parts before and after @ must not be empty"));
    }
    if upn.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(local_part)
}

/// Derives a `sAMAccountName` from a UPN: the part before `@`, without the characters AD
/// rejects in it (`" / \ [ ] : ; | = , + * ? < > @`, spaces and control characters), cut
/// to 20 characters and without trailing dots.
pub fn derive_sam_account_name(upn: &str) -> Result<String, DirectoryError> {
    let local_part = check_upn(upn)?;
    let allowed: String = local_part
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && !"\"/\\[]:;|=,+*?<>@".contains(*c))
        .take(SAM_ACCOUNT_NAME_MAX_LENGTH)
        .collect();
    let name = allowed.trim_end_matches('.').to_owned();
    if name.is_empty() {
        return Err(DirectoryError::InvalidUpn {
            upn: upn.to_owned(),
            reason: "no valid sAMAccountName characters before @; set the account name explicitly"
                .to_owned(),
        });
    }
    Ok(name)
}

fn parse_user(entry: &SearchEntry, matched_by: UserMatch) -> Result<UserAccount, DirectoryError> {
    let sam_account_name = first_value(entry, "sAMAccountName")
        .ok_or_else(|| DirectoryError::MissingAttribute {
            dn: entry.dn.clone(),
            attribute: "sAMAccountName",
        })?
        .to_owned();
    let user_account_control: u32 =
        optional_integer(entry, "userAccountControl")?.ok_or_else(|| {
            DirectoryError::MissingAttribute {
                dn: entry.dn.clone(),
                attribute: "userAccountControl",
            }
        })?;
    // The computed attribute is a signed 32-bit integer in the schema.
    let computed = optional_integer::<i64>(entry, "msDS-User-Account-Control-Computed")?
        .map(|value| value as u32);
    let status = AccountStatus::decode(
        user_account_control,
        computed,
        optional_integer(entry, "pwdLastSet")?,
        optional_integer(entry, "lockoutTime")?,
    );

    Ok(UserAccount {
        dn: entry.dn.clone(),
        sam_account_name,
        user_principal_name: first_value(entry, "userPrincipalName").map(str::to_owned),
        display_name: first_value(entry, "displayName").map(str::to_owned),
        mail: first_value(entry, "mail").map(str::to_owned),
        proxy_addresses: values(entry, "proxyAddresses")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        status,
        object_sid: optional_sid(entry, "objectSid")?,
        primary_group_id: optional_integer(entry, "primaryGroupID")?,
        member_of: values(entry, "memberOf")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        matched_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_decodes_normal_account() {
        let status = AccountStatus::decode(0x200, Some(0), Some(134_000_000_000_000_000), Some(0));
        assert!(status.enabled);
        assert!(!status.password_never_expires);
        assert!(!status.password_expired);
        assert!(!status.locked_out);
        assert!(status.is_usable());
    }

    #[test]
    fn status_decodes_disabled_account() {
        let status = AccountStatus::decode(0x202, Some(0), Some(1), None);
        assert!(!status.enabled);
        assert!(!status.is_usable());
    }

    #[test]
    fn status_decodes_password_never_expires() {
        let status = AccountStatus::decode(0x1_0200, None, Some(1), None);
        assert!(status.password_never_expires);
        assert!(status.is_usable());
    }

    #[test]
    fn status_decodes_computed_flags() {
        let expired = AccountStatus::decode(0x200, Some(0x80_0000), Some(1), None);
        assert!(expired.password_expired);
        assert!(!expired.must_change_password);
        let locked = AccountStatus::decode(0x200, Some(0x10), Some(1), Some(0));
        assert!(locked.locked_out);
        assert!(!locked.is_usable());
    }

    #[test]
    fn status_treats_zero_pwd_last_set_as_expired() {
        let status = AccountStatus::decode(0x200, Some(0), Some(0), None);
        assert!(status.must_change_password);
        assert!(status.password_expired);
    }

    #[test]
    fn status_prefers_computed_lockout_over_lockout_time() {
        // A lockoutTime stays set after the lockout duration has passed, until the next
        // logon, so the computed flag decides when the server returns it.
        let expired_lockout =
            AccountStatus::decode(0x200, Some(0), Some(1), Some(133_000_000_000_000_000));
        assert!(!expired_lockout.locked_out);
        let without_computed =
            AccountStatus::decode(0x200, None, Some(1), Some(133_000_000_000_000_000));
        assert!(without_computed.locked_out);
    }

    #[test]
    fn sam_account_name_derives_from_upn() {
        assert_eq!(
            derive_sam_account_name("svc-siu@example.com").expect("valid UPN"),
            "svc-siu"
        );
        assert_eq!(
            derive_sam_account_name("sent.items.update.service@example.com").expect("valid UPN"),
            "sent.items.update.se"
        );
        assert_eq!(
            derive_sam_account_name("a[b]c:d;e|f=g,h+i*j?k<l>m\"n/o\\p q@x.y").expect("valid UPN"),
            "abcdefghijklmnopq"
        );
        assert_eq!(
            derive_sam_account_name("abcdefghijklmnopqrs.tu@x.y").expect("valid UPN"),
            "abcdefghijklmnopqrs"
        );
    }

    #[test]
    fn sam_account_name_rejects_unusable_upns() {
        for upn in [
            "no-at-sign",
            "@example.com",
            "user@",
            "[]:;@example.com",
            "a\nb@example.com",
        ] {
            assert!(
                derive_sam_account_name(upn).is_err(),
                "upn {upn:?} should be rejected"
            );
        }
    }
}
