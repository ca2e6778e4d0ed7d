//! Read-through of accounts: finding them in the external directory, adding them to the
//! world, and checking Basic passwords with a simple bind as the account.
//!
//! An account found here joins the world as a user without a mailbox, under its object GUID
//! and its DN in the external directory. A role assignment made through the management shell
//! and a later EWS logon therefore refer to the same world user. A later lookup of an account
//! the world already contains refreshes its `userAccountControl` and `pwdLastSet`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use ldap3::{Scope, SearchEntry};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::connection::{INVALID_CREDENTIALS, SUCCESS, first_value, values};
use super::{ExternalClient, ExternalError, dns_domain_of};
use crate::LabState;
use crate::fixture::MailboxLocation;
use crate::world::World;
use crate::world::directory::{DOMAIN_USERS_RID, User, normalize_dn};

/// The attributes read for an account.
const ACCOUNT_ATTRIBUTES: &[&str] = &[
    "objectGUID",
    "sAMAccountName",
    "userPrincipalName",
    "cn",
    "displayName",
    "title",
    "mail",
    "proxyAddresses",
    "userAccountControl",
    "pwdLastSet",
];

/// The forms of name that an identity may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityKind {
    /// A logon name, as IIS accepts it for Basic authentication: a UPN, `DOMAIN\user`, a DN
    /// or a bare sAMAccountName.
    Logon,
    /// A recipient identity, as Exchange cmdlets accept it: a logon name or an SMTP address
    /// (`mail` or one of `proxyAddresses`).
    Recipient,
}

/// A user account as the external directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAccount {
    /// objectGUID.
    pub guid: Uuid,
    /// distinguishedName.
    pub dn: String,
    /// sAMAccountName.
    pub sam: String,
    /// userPrincipalName, which AD leaves empty on some accounts.
    pub upn: Option<String>,
    /// cn.
    pub cn: String,
    /// displayName.
    pub display_name: Option<String>,
    /// title.
    pub title: Option<String>,
    /// mail.
    pub mail: Option<String>,
    /// proxyAddresses.
    pub proxy_addresses: Vec<String>,
    /// userAccountControl.
    pub uac: u32,
    /// pwdLastSet as a Windows FILETIME. 0 means that the user must change the password.
    pub pwd_last_set: i64,
}

impl ExternalAccount {
    fn from_entry(entry: &SearchEntry) -> Option<Self> {
        let guid = entry
            .bin_attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("objectGUID"))
            .and_then(|(_, values)| values.first().cloned())
            // A GUID whose 16 bytes happen to be valid UTF-8 arrives as text.
            .or_else(|| first_value(entry, "objectGUID").map(String::into_bytes))
            .and_then(|bytes| <[u8; 16]>::try_from(bytes.as_slice()).ok())
            .map(Uuid::from_bytes_le)?;
        let cn = first_value(entry, "cn").unwrap_or_else(|| {
            let rdn = entry.dn.split(',').next().unwrap_or_default();
            rdn.split_once('=').map_or(rdn, |(_, v)| v).to_string()
        });
        Some(Self {
            guid,
            dn: entry.dn.clone(),
            sam: first_value(entry, "sAMAccountName")?,
            upn: first_value(entry, "userPrincipalName"),
            cn,
            display_name: first_value(entry, "displayName"),
            title: first_value(entry, "title"),
            mail: first_value(entry, "mail"),
            proxy_addresses: values(entry, "proxyAddresses"),
            uac: first_value(entry, "userAccountControl")
                .and_then(|v| v.parse::<i64>().ok())
                // AD writes the flags as a signed 32-bit integer.
                .map_or(0, |v| v as u32),
            pwd_last_set: first_value(entry, "pwdLastSet")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// Returns the UPN, or the implicit UPN `sam@domain` that AD accepts for an account
    /// without one.
    pub fn upn_or_implicit(&self) -> String {
        self.upn
            .clone()
            .unwrap_or_else(|| format!("{}@{}", self.sam, dns_domain_of(&self.dn)))
    }
}

impl ExternalClient {
    /// Finds the user account an identity names, or `None` when there is none.
    pub async fn find_account(
        &self,
        identity: &str,
        kind: IdentityKind,
    ) -> Result<Option<ExternalAccount>, ExternalError> {
        let netbios = if identity.contains('\\') {
            self.netbios_name().await
        } else {
            None
        };
        let Some((base, scope, filter)) = account_query(
            identity,
            kind,
            &self.directory().base_dn,
            netbios.as_deref(),
        ) else {
            return Ok(None);
        };
        let mut ldap = self.admin().await?;
        let found = match self
            .search(&mut ldap, &base, scope, &filter, ACCOUNT_ATTRIBUTES)
            .await
        {
            Err(ExternalError::Rejected { code, .. })
                if code == super::connection::NO_SUCH_OBJECT =>
            {
                Vec::new()
            }
            other => other?,
        };
        let _ = ldap.unbind().await;
        let accounts: Vec<ExternalAccount> = found
            .iter()
            .filter_map(ExternalAccount::from_entry)
            .collect();
        match accounts.len() {
            0 | 1 => Ok(accounts.into_iter().next()),
            count => Err(ExternalError::Ambiguous {
                identity: identity.to_string(),
                count,
            }),
        }
    }
}

/// Builds the search for an identity: base, scope and filter. Returns `None` for a name that
/// cannot belong to this domain, such as `OTHER\user` or a DN outside the base DN.
fn account_query(
    identity: &str,
    kind: IdentityKind,
    base_dn: &str,
    netbios: Option<&str>,
) -> Option<(String, Scope, String)> {
    const ACCOUNTS: &str = "(objectCategory=person)(objectClass=user)";
    let identity = identity.trim();
    if identity.is_empty() {
        return None;
    }
    if let Some((domain, sam)) = identity.split_once('\\') {
        let ours = netbios.is_some_and(|n| n.eq_ignore_ascii_case(domain))
            || dns_domain_of(base_dn).eq_ignore_ascii_case(domain);
        if !ours || sam.is_empty() {
            return None;
        }
        let filter = format!("(&{ACCOUNTS}(sAMAccountName={}))", ldap3::ldap_escape(sam));
        return Some((base_dn.to_string(), Scope::Subtree, filter));
    }
    if identity.contains('=') && !identity.contains('@') {
        // A DN: read that entry, if it lies below the base DN.
        let normalized = normalize_dn(identity);
        if !normalized.ends_with(&normalize_dn(base_dn)) {
            return None;
        }
        return Some((identity.to_string(), Scope::Base, format!("(&{ACCOUNTS})")));
    }
    let escaped = ldap3::ldap_escape(identity);
    let filter = if identity.contains('@') {
        match kind {
            IdentityKind::Logon => format!("(&{ACCOUNTS}(userPrincipalName={escaped}))"),
            IdentityKind::Recipient => format!(
                "(&{ACCOUNTS}(|(userPrincipalName={escaped})(mail={escaped})(proxyAddresses=smtp:{escaped})))"
            ),
        }
    } else {
        format!("(&{ACCOUNTS}(sAMAccountName={escaped}))")
    };
    Some((base_dn.to_string(), Scope::Subtree, filter))
}

/// Adds an external account to the world, or refreshes the world's copy of it, and returns
/// the world's object ID. Fails with the reason when the account's sAMAccountName, DN or an
/// address already belongs to another object of the world.
pub fn import(world: &mut World, account: &ExternalAccount) -> Result<Uuid, String> {
    let upn = account.upn_or_implicit();
    let directory = &mut world.directory;
    let existing = directory.user_by_upn(&upn).map(|u| u.id).or_else(|| {
        directory
            .users
            .contains_key(&account.guid)
            .then_some(account.guid)
    });
    if let Some(id) = existing {
        if let Some(user) = directory.users.get_mut(&id) {
            if user.uac != account.uac || user.pwd_last_set != account.pwd_last_set {
                tracing::debug!(upn = %user.upn, uac = account.uac, "refreshed an account from the external directory");
            }
            user.uac = account.uac;
            user.pwd_last_set = account.pwd_last_set;
        }
        return Ok(id);
    }

    if directory.by_sam(&account.sam).is_some() {
        return Err(format!(
            "sAMAccountName `{}` already belongs to another object of the lab",
            account.sam
        ));
    }
    if directory.by_dn(&account.dn).is_some() {
        return Err(format!(
            "DN `{}` already belongs to another object of the lab",
            account.dn
        ));
    }
    let addresses = account.mail.iter().map(String::as_str).chain(
        account
            .proxy_addresses
            .iter()
            .filter_map(|p| crate::world::directory::strip_smtp_prefix(p)),
    );
    for address in addresses {
        if directory.by_smtp(address).is_some() {
            return Err(format!(
                "address `{address}` already belongs to another object of the lab"
            ));
        }
    }

    let rid = directory.allocate_rid();
    let user = User {
        id: account.guid,
        sam: account.sam.clone(),
        upn: upn.clone(),
        cn: account.cn.clone(),
        dn: account.dn.clone(),
        display_name: account
            .display_name
            .clone()
            .unwrap_or_else(|| account.cn.clone()),
        title: account.title.clone(),
        mail: account.mail.clone(),
        proxy_addresses: account.proxy_addresses.clone(),
        uac: account.uac,
        // The external directory keeps the password, and logons bind there.
        password: None,
        pwd_last_set: account.pwd_last_set,
        rid,
        primary_group_rid: DOMAIN_USERS_RID,
        mailbox: MailboxLocation::None,
        created: Utc::now(),
    };
    directory.insert_user(user);
    tracing::info!(%upn, dn = %account.dn, "added an account of the external directory to the lab");
    Ok(account.guid)
}

/// Looks an identity up in the external directory and adds the account to the world.
/// Returns `None`, with the reason logged, when there is no such account or it cannot join.
pub async fn import_identity(
    state: &LabState,
    client: &ExternalClient,
    identity: &str,
    kind: IdentityKind,
) -> Option<Uuid> {
    let account = match client.find_account(identity, kind).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            tracing::debug!(identity, "no such account in the external directory");
            return None;
        }
        Err(error) => {
            tracing::warn!(identity, %error, "failed to look an account up in the external directory");
            return None;
        }
    };
    let imported = import(&mut state.write(), &account);
    match imported {
        Ok(id) => Some(id),
        Err(reason) => {
            tracing::warn!(
                identity,
                reason,
                "cannot add an account of the external directory to the lab"
            );
            None
        }
    }
}

/// Checks a Basic logon against the external directory: finds the account, binds as it with
/// the password, and adds it to the world. Returns the world's user ID and UPN, or `None` with
/// the reason logged. Successful logons are remembered for
/// [`bind_cache_ttl`](super::ExternalDirectory::bind_cache_ttl).
pub async fn authenticate(
    state: &LabState,
    client: &ExternalClient,
    logon: &str,
    password: &str,
) -> Option<(Uuid, String)> {
    // An empty password makes a simple bind an unauthenticated bind (RFC 4513, section
    // 5.1.2), which some servers accept as anonymous without checking anything.
    if password.is_empty() {
        tracing::debug!(logon, "basic logon with an empty password");
        return None;
    }
    let now = Instant::now();
    if let Some(hit) = client.binds.get(logon, password, now) {
        return Some(hit);
    }

    let account = match client.find_account(logon, IdentityKind::Logon).await {
        Ok(Some(account)) => account,
        Ok(None) => {
            tracing::debug!(
                logon,
                "basic logon for an account the external directory does not contain"
            );
            return None;
        }
        Err(error) => {
            tracing::warn!(logon, %error, "failed to look a basic logon up in the external directory");
            return None;
        }
    };

    let mut ldap = match client.connect().await {
        Ok(ldap) => ldap,
        Err(error) => {
            tracing::warn!(logon, %error, "failed to reach the external directory for a basic logon");
            return None;
        }
    };
    let result = client.bind(&mut ldap, &account.dn, password).await;
    let _ = ldap.unbind().await;
    match result {
        Ok(result) if result.rc == SUCCESS => {}
        Ok(result) if result.rc == INVALID_CREDENTIALS => {
            tracing::debug!(
                logon,
                dn = %account.dn,
                reason = logon_failure(&result.text),
                "basic logon rejected by the external directory"
            );
            return None;
        }
        Ok(result) => {
            tracing::warn!(logon, dn = %account.dn, code = result.rc, message = %result.text, "unexpected bind result from the external directory");
            return None;
        }
        Err(error) => {
            tracing::warn!(logon, %error, "failed to bind to the external directory for a basic logon");
            return None;
        }
    }

    let imported = import(&mut state.write(), &account);
    let id = match imported {
        Ok(id) => id,
        Err(reason) => {
            tracing::warn!(
                logon,
                reason,
                "cannot add an account of the external directory to the lab"
            );
            return None;
        }
    };
    let upn = account.upn_or_implicit();
    client.binds.insert(
        logon,
        password,
        (id, upn.clone()),
        now,
        client.directory().bind_cache_ttl,
    );
    Some((id, upn))
}

/// Names the reason for an AD bind failure from the `data` field of its diagnostic message
/// (`80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1`),
/// which is a Win32 error code in hex, such as 0x52E `ERROR_LOGON_FAILURE`. Samba 4.17 sends
/// the same codes for a wrong password, a disabled account and a password that must change.
pub fn logon_failure(message: &str) -> &'static str {
    let code = message
        .split(", ")
        .find_map(|part| part.strip_prefix("data "))
        .unwrap_or_default();
    match code.to_ascii_lowercase().as_str() {
        "525" => "no such user",
        "52e" => "wrong password",
        "530" => "logon not permitted at this time",
        "531" => "logon not permitted from this workstation",
        "532" => "password expired",
        "533" => "account disabled",
        "701" => "account expired",
        "773" => "the user must change the password",
        "775" => "account locked out",
        _ => "invalid credentials",
    }
}

/// Successful Basic logons by logon name, each with a salted SHA-256 digest of the password
/// that succeeded, never the password itself.
pub(crate) struct BindCache {
    /// Random per process, so that a digest is useless outside this process.
    salt: [u8; 32],
    entries: Mutex<HashMap<String, CachedLogon>>,
}

struct CachedLogon {
    digest: [u8; 32],
    user: (Uuid, String),
    expires: Instant,
}

impl BindCache {
    pub(crate) fn new() -> Self {
        let mut salt = [0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        Self {
            salt,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(logon: &str) -> String {
        logon.trim().to_lowercase()
    }

    fn digest(&self, logon: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.salt);
        hasher.update(Self::key(logon).as_bytes());
        hasher.update([0u8]);
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    /// Returns the remembered user when `password` is the one that succeeded and the entry
    /// has not expired at `now`.
    pub(crate) fn get(&self, logon: &str, password: &str, now: Instant) -> Option<(Uuid, String)> {
        let digest = self.digest(logon, password);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&Self::key(logon))?;
        let equal = entry
            .digest
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        (equal && now < entry.expires).then(|| entry.user.clone())
    }

    /// Remembers a successful logon until `now + ttl`, and removes expired entries.
    pub(crate) fn insert(
        &self,
        logon: &str,
        password: &str,
        user: (Uuid, String),
        now: Instant,
        ttl: Duration,
    ) {
        let digest = self.digest(logon, password);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, entry| entry.expires > now);
        if ttl.is_zero() {
            entries.remove(&Self::key(logon));
            return;
        }
        entries.insert(
            Self::key(logon),
            CachedLogon {
                digest,
                user,
                expires: now + ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> (Uuid, String) {
        (Uuid::new_v4(), "svc@siu.test".to_string())
    }

    #[test]
    fn cached_logon_needs_the_same_password() {
        let cache = BindCache::new();
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        let remembered = user();
        cache.insert("SVC@siu.test", "Right-Pass-1", remembered.clone(), now, ttl);
        assert_eq!(
            cache.get("svc@SIU.test", "Right-Pass-1", now),
            Some(remembered)
        );
        assert_eq!(cache.get("svc@siu.test", "Wrong-Pass-1", now), None);
        assert_eq!(cache.get("other@siu.test", "Right-Pass-1", now), None);
    }

    #[test]
    fn cached_logon_expires() {
        let cache = BindCache::new();
        let now = Instant::now();
        let ttl = Duration::from_secs(60);
        cache.insert("svc@siu.test", "Right-Pass-1", user(), now, ttl);
        assert!(
            cache
                .get("svc@siu.test", "Right-Pass-1", now + ttl)
                .is_none()
        );
        cache.insert("svc@siu.test", "Right-Pass-1", user(), now, Duration::ZERO);
        assert!(cache.get("svc@siu.test", "Right-Pass-1", now).is_none());
    }

    #[test]
    fn cache_keeps_no_password_in_clear() {
        let cache = BindCache::new();
        let now = Instant::now();
        cache.insert(
            "svc@siu.test",
            "Right-Pass-1",
            user(),
            now,
            Duration::from_secs(60),
        );
        let entries = cache.entries.lock().expect("lock");
        let entry = entries.get("svc@siu.test").expect("entry");
        assert!(
            !entry
                .digest
                .windows(b"Right-Pass-1".len())
                .any(|w| w == b"Right-Pass-1")
        );
        assert_ne!(
            entry.digest,
            <[u8; 32]>::from(Sha256::digest(b"Right-Pass-1"))
        );
    }

    #[test]
    fn bind_failures_name_the_ad_reason() {
        let text = |code: &str| {
            format!(
                "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data {code}, v1db1"
            )
        };
        assert_eq!(logon_failure(&text("52e")), "wrong password");
        assert_eq!(logon_failure(&text("533")), "account disabled");
        assert_eq!(
            logon_failure(&text("773")),
            "the user must change the password"
        );
        assert_eq!(logon_failure("no diagnostic"), "invalid credentials");
    }

    #[test]
    fn queries_follow_the_identity_form() {
        let base = "DC=siu,DC=test";
        let (_, scope, filter) =
            account_query("svc@siu.test", IdentityKind::Logon, base, None).expect("a UPN");
        assert_eq!(scope, Scope::Subtree);
        assert!(
            filter.contains("(userPrincipalName=svc@siu.test)"),
            "{filter}"
        );
        assert!(!filter.contains("mail="), "{filter}");

        let (_, _, filter) =
            account_query("heidi@lab.example", IdentityKind::Recipient, base, None)
                .expect("an address");
        assert!(filter.contains("(mail=heidi@lab.example)"), "{filter}");
        assert!(
            filter.contains("(proxyAddresses=smtp:heidi@lab.example)"),
            "{filter}"
        );

        let (_, _, filter) =
            account_query("SIU\\svc", IdentityKind::Logon, base, Some("SIU")).expect("SIU\\svc");
        assert!(filter.contains("(sAMAccountName=svc)"), "{filter}");
        assert!(account_query("LAB\\svc", IdentityKind::Logon, base, Some("SIU")).is_none());

        let (query_base, scope, _) = account_query(
            "CN=svc,OU=siu-lab,DC=siu,DC=test",
            IdentityKind::Logon,
            base,
            None,
        )
        .expect("a DN below the base");
        assert_eq!(query_base, "CN=svc,OU=siu-lab,DC=siu,DC=test");
        assert_eq!(scope, Scope::Base);
        assert!(account_query("CN=svc,DC=other", IdentityKind::Logon, base, None).is_none());
    }

    #[test]
    fn filter_values_are_escaped() {
        let (_, _, filter) =
            account_query("a*)(x", IdentityKind::Logon, "DC=x", None).expect("a name");
        assert!(
            filter.contains("(sAMAccountName=a\\2a\\29\\28x)"),
            "{filter}"
        );
        let (_, _, filter) =
            account_query("*)(a@x", IdentityKind::Recipient, "DC=x", None).expect("an address");
        assert!(filter.contains("(mail=\\2a\\29\\28a@x)"), "{filter}");
    }

    fn account(sam: &str, upn: &str) -> ExternalAccount {
        ExternalAccount {
            guid: Uuid::new_v4(),
            dn: format!("CN={sam},OU=Service Accounts,OU=siu-lab,DC=siu,DC=test"),
            sam: sam.into(),
            upn: Some(upn.into()),
            cn: sam.into(),
            display_name: None,
            title: None,
            mail: None,
            proxy_addresses: Vec::new(),
            uac: 0x200,
            pwd_last_set: 1,
        }
    }

    #[test]
    fn import_adds_a_user_without_mailbox_once() {
        let (mut world, _) =
            World::from_fixture(&crate::Fixture::default_org()).expect("world builds");
        let new = account("siu-agent", "siu-agent@siu.test");
        let id = import(&mut world, &new).expect("the account joins");
        assert_eq!(id, new.guid);
        let user = world
            .directory
            .user_by_upn("siu-agent@siu.test")
            .expect("user");
        assert_eq!(user.dn, new.dn);
        assert!(user.password.is_none());
        assert!(!world.exchange.mailboxes.contains_key(&id));

        let mut disabled = new.clone();
        disabled.uac |= 0x2;
        assert_eq!(import(&mut world, &disabled), Ok(id));
        let user = world.directory.users.get(&id).expect("user");
        assert!(
            !user.enabled(),
            "a second import refreshes userAccountControl"
        );
    }

    #[test]
    fn import_rejects_a_taken_account_name() {
        let (mut world, _) =
            World::from_fixture(&crate::Fixture::default_org()).expect("world builds");
        let clash = account("alice", "alice@siu.test");
        let error = import(&mut world, &clash).expect_err("alice is taken");
        assert!(error.contains("alice"), "{error}");
    }
}
