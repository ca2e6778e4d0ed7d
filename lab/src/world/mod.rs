//! The lab's world: the directory, Exchange and the Entra tenant, built from a fixture and
//! shared by every endpoint behind one lock.
//!
//! Endpoints never keep their own copy of anything an administrator could see elsewhere: an
//! account created over LDAP can sign in to EWS at once, and an application registered over
//! Graph gets tokens from the token endpoint once its replication delay has passed.

pub mod directory;
pub mod exchange;
pub mod tenant;

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::LabError;
use crate::fixture::{BulkMailbox, Fixture, MailboxLocation};
use directory::{DOMAIN_ADMINS_RID, DOMAIN_USERS_RID, Directory, Group, User, uac};
use exchange::{Exchange, Item, MSGFLAG_READ, Mailbox, ManagementScope, WellKnownFolder};
use tenant::{
    AppRoleAssignment, Application, EXCHANGE_ONLINE_APP_ID, GRAPH_APP_ID, KeyCredential,
    PasswordCredential, ServicePrincipal, Tenant,
};

/// Everything the lab serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    /// Active Directory.
    pub directory: Directory,
    /// Exchange on-premises and online.
    pub exchange: Exchange,
    /// The Entra tenant.
    pub tenant: Tenant,
}

/// Secrets generated while building a world, by file name under the lab's `secrets/`
/// directory: user passwords (`<sam>.password`), client secrets (`<key>.secret`) and
/// certificates with their keys (`<key>.pem`).
#[derive(Default, Clone)]
pub struct Secrets {
    /// File name to contents.
    pub files: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secrets {
    /// The contents of one secret file, without its trailing newline.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(|s| s.trim_end())
    }
}

/// Why an impersonation request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImpersonationDenied {
    /// The acting account holds no enabled ApplicationImpersonation assignment.
    NoRole,
    /// The assignment's management scope does not include the target mailbox.
    OutOfScope(String),
}

impl World {
    /// Builds the world a fixture describes and the secrets it generated.
    pub fn from_fixture(fixture: &Fixture) -> Result<(Self, Secrets), LabError> {
        let mut secrets = Secrets::default();
        let mut rng = rand::rng();
        let domain_sid = format!(
            "S-1-5-21-{}-{}-{}",
            rng.random_range(100_000_000u32..999_999_999),
            rng.random_range(100_000_000u32..999_999_999),
            rng.random_range(100_000_000u32..999_999_999)
        );
        let mut directory = Directory::new(&fixture.domain, &fixture.netbios_name, domain_sid);
        directory.extra_domains = fixture.extra_domains.clone();
        directory.cloud_routing_domain = fixture
            .tenant
            .initial_domain
            .strip_suffix(".onmicrosoft.com")
            .map(|name| format!("{name}.mail.onmicrosoft.com"))
            .unwrap_or_default();
        let tenant_id = fixture.tenant.id.parse().map_err(|_| LabError::Fixture {
            origin: "fixture".into(),
            message: format!("tenant id `{}` is not a GUID", fixture.tenant.id),
        })?;
        let mut world = World {
            directory,
            exchange: Exchange::default(),
            tenant: Tenant::new(
                tenant_id,
                fixture.tenant.initial_domain.clone(),
                fixture.tenant.display_name.clone(),
            ),
        };

        // 1. Users from the fixture, then the generated bulk users.
        for user in &fixture.users {
            let password = generate_password(&mut rng);
            if user.publish_password {
                secrets
                    .files
                    .insert(format!("{}.password", user.sam), format!("{password}\n"));
            }
            let id = world.add_user(NewUser {
                sam: &user.sam,
                name: &user.name,
                upn: user.upn.as_deref(),
                mail: user.mail.as_deref(),
                aliases: &user.aliases,
                mailbox: user.mailbox,
                enabled: user.enabled,
                container: user.container.as_deref().unwrap_or("CN=Users"),
                password: Some(password),
            })?;
            if let Some(created) = world.directory.users.get_mut(&id) {
                created.title = user.title.clone();
            }
            if user.domain_admin {
                let admins = world
                    .directory
                    .group_by_rid(DOMAIN_ADMINS_RID)
                    .map(|g| g.id)
                    .expect("the directory always has Domain Admins");
                world.directory.add_member(admins, id);
            }
            if let (Some(mailbox), Some(name)) =
                (world.exchange.mailboxes.get_mut(&id), &user.sent_items_name)
            {
                mailbox.folder_mut(WellKnownFolder::SentItems).display_name = name.clone();
            }
            for n in 0..user.sent_items {
                world.seed_sent_item(id, n);
            }
        }
        let mut bulk_members: Vec<(String, Uuid)> = Vec::new();
        for bulk in &fixture.bulk {
            let width = bulk.count.to_string().len().max(4);
            for n in 1..=bulk.count {
                let sam = format!("{}{n:0width$}", bulk.prefix);
                let mailbox = match bulk.mailbox {
                    BulkMailbox::OnPremises => MailboxLocation::OnPremises,
                    BulkMailbox::Cloud => MailboxLocation::Cloud,
                    BulkMailbox::Alternate if n % 2 == 0 => MailboxLocation::Cloud,
                    BulkMailbox::Alternate => MailboxLocation::OnPremises,
                };
                let name = format!(
                    "{} {n}",
                    bulk.display_name.as_deref().unwrap_or("Staff Member")
                );
                let id = world.add_user(NewUser {
                    sam: &sam,
                    name: &name,
                    upn: None,
                    mail: None,
                    aliases: &[],
                    mailbox,
                    enabled: true,
                    container: bulk.container.as_deref().unwrap_or("OU=Staff"),
                    password: None,
                })?;
                for group in &bulk.groups {
                    bulk_members.push((group.clone(), id));
                }
            }
        }

        // 2. Groups, created before any membership so that groups can nest in any order.
        for group in &fixture.groups {
            world.add_group(
                &group.sam,
                group.kind,
                group.mail.as_deref(),
                group.container.as_deref().unwrap_or("OU=Groups"),
            )?;
        }
        for group in &fixture.groups {
            let group_id = world
                .directory
                .by_sam(&group.sam)
                .expect("groups were just created");
            for member in &group.members {
                let member_id = world
                    .directory
                    .by_sam(member)
                    .expect("the fixture check resolved every member");
                world.directory.add_member(group_id, member_id);
            }
        }
        for (group, member) in bulk_members {
            let group_id = world
                .directory
                .by_sam(&group)
                .expect("the fixture check resolved every bulk group");
            world.directory.add_member(group_id, member);
        }
        for scope in &fixture.management_scopes {
            let group = world
                .directory
                .by_sam(&scope.member_of_group)
                .expect("the fixture check resolved every scope group");
            world.exchange.management_scopes.push(ManagementScope {
                name: scope.name.clone(),
                member_of_group: group,
            });
        }

        // 3. The tenant's pre-registered applications and Exchange Online's settings.
        for app in &fixture.tenant.applications {
            world.add_fixture_application(app, &mut secrets)?;
        }
        world.exchange.online.ews_enabled = fixture.exchange_online.ews_enabled;
        world.exchange.online.ews_allowed_app_ids =
            fixture.exchange_online.ews_allowed_app_ids.clone();

        Ok((world, secrets))
    }

    /// Rebuilds lookup tables after deserializing.
    pub fn reindex(&mut self) {
        self.directory.reindex();
    }

    /// Creates a user, its mailbox when it has one, and returns its object ID.
    pub fn add_user(&mut self, new: NewUser<'_>) -> Result<Uuid, LabError> {
        let domain = self.directory.domain.clone();
        let upn = new
            .upn
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}@{domain}", new.sam.to_ascii_lowercase()));
        if self.directory.by_sam(new.sam).is_some() || self.directory.user_by_upn(&upn).is_some() {
            return Err(LabError::Fixture {
                origin: "fixture".into(),
                message: format!("user `{}` ({upn}) is defined twice", new.sam),
            });
        }
        let has_mailbox = new.mailbox != MailboxLocation::None;
        let mail = new
            .mail
            .map(str::to_string)
            .or_else(|| has_mailbox.then(|| upn.clone()));
        let mut proxy_addresses: Vec<String> = mail.iter().map(|m| format!("SMTP:{m}")).collect();
        proxy_addresses.extend(new.aliases.iter().map(|a| format!("smtp:{a}")));
        let rid = self.directory.allocate_rid();
        let mut flags = uac::NORMAL_ACCOUNT | uac::DONT_EXPIRE_PASSWORD;
        if !new.enabled {
            flags |= uac::ACCOUNT_DISABLE;
        }
        let user = User {
            id: Uuid::new_v4(),
            sam: new.sam.to_string(),
            upn,
            cn: new.name.to_string(),
            dn: format!(
                "CN={},{},{}",
                escape_rdn(new.name),
                new.container,
                self.directory.base_dn
            ),
            display_name: new.name.to_string(),
            title: None,
            mail,
            proxy_addresses,
            uac: flags,
            password: new.password,
            pwd_last_set: filetime_now(),
            rid,
            primary_group_rid: DOMAIN_USERS_RID,
            mailbox: new.mailbox,
            created: Utc::now(),
        };
        let id = user.id;
        self.directory.insert_user(user);
        if has_mailbox {
            self.exchange
                .mailboxes
                .insert(id, Mailbox::new(id, new.mailbox, None));
        }
        Ok(id)
    }

    /// Creates a group and returns its object ID.
    pub fn add_group(
        &mut self,
        sam: &str,
        kind: crate::fixture::GroupKind,
        mail: Option<&str>,
        container: &str,
    ) -> Result<Uuid, LabError> {
        if self.directory.by_sam(sam).is_some() {
            return Err(LabError::Fixture {
                origin: "fixture".into(),
                message: format!("`{sam}` is defined twice"),
            });
        }
        let rid = self.directory.allocate_rid();
        let group = Group {
            id: Uuid::new_v4(),
            sam: sam.to_string(),
            cn: sam.to_string(),
            dn: format!(
                "CN={},{container},{}",
                escape_rdn(sam),
                self.directory.base_dn
            ),
            mail: mail.map(str::to_string),
            kind,
            rid,
            members: Vec::new(),
            created: Utc::now(),
        };
        let id = group.id;
        self.directory.insert_group(group);
        Ok(id)
    }

    /// Stores an ordinary sent message in a user's Sent Items, as a mail client would have.
    fn seed_sent_item(&mut self, owner: Uuid, n: u32) {
        let Some(user) = self.directory.users.get(&owner) else {
            return;
        };
        let from = user.mail.clone().unwrap_or_else(|| user.upn.clone());
        let sent = Utc::now() - ChronoDuration::days(i64::from(n) + 1);
        let message_id = format!("<seed-{}-{n}@{}>", user.sam, self.directory.domain);
        let mime = format!(
            "From: {name} <{from}>\r\nTo: partner@example.net\r\nSubject: Earlier message {n}\r\n\
             Date: {date}\r\nMessage-ID: {message_id}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nSent before the controller ran.\r\n",
            name = user.display_name,
            date = sent.to_rfc2822(),
        );
        let id = self.exchange.allocate_item_id();
        let item = Item {
            id,
            change: 1,
            mime: mime.into_bytes(),
            internet_message_id: Some(message_id),
            subject: format!("Earlier message {n}"),
            from: Some(from),
            recipients: vec!["partner@example.net".into()],
            sent: Some(sent),
            delivered: Some(sent),
            created: sent,
            message_flags: MSGFLAG_READ,
            extended: Vec::new(),
        };
        if let Some(mailbox) = self.exchange.mailboxes.get_mut(&owner) {
            mailbox
                .folder_mut(WellKnownFolder::SentItems)
                .items
                .push(item);
        }
    }

    fn add_fixture_application(
        &mut self,
        app: &crate::fixture::ApplicationFixture,
        secrets: &mut Secrets,
    ) -> Result<(), LabError> {
        let app_id = match &app.app_id {
            Some(text) => text.parse().map_err(|_| LabError::Fixture {
                origin: "fixture".into(),
                message: format!("application `{}` has app ID `{text}`, not a GUID", app.key),
            })?,
            None => Uuid::new_v4(),
        };
        // Pre-registered applications exist long enough to be fully replicated.
        let created = Utc::now() - ChronoDuration::days(30);
        let mut application = Application {
            id: Uuid::new_v4(),
            app_id,
            display_name: app.display_name.clone(),
            sign_in_audience: "AzureADMyOrg".into(),
            required_resource_access: serde_json::json!([]),
            key_credentials: Vec::new(),
            password_credentials: Vec::new(),
            created,
        };
        if app.client_secret {
            let secret = generate_client_secret();
            application.password_credentials.push(PasswordCredential {
                key_id: Uuid::new_v4(),
                display_name: Some("lab".into()),
                hint: secret.chars().take(3).collect(),
                secret: secret.clone(),
                start: created,
                end: created + ChronoDuration::days(730),
            });
            secrets
                .files
                .insert(format!("{}.secret", app.key), format!("{secret}\n"));
        }
        if app.certificate {
            let (pem, credential) = generate_app_certificate(&app.display_name, 2048)?;
            secrets.files.insert(format!("{}.pem", app.key), pem);
            application.key_credentials.push(credential);
        }
        secrets.files.insert(
            format!("{}.client-id", app.key),
            format!("{}\n", application.app_id),
        );
        let principal = ServicePrincipal {
            id: Uuid::new_v4(),
            app_id,
            display_name: app.display_name.clone(),
            app_roles: Vec::new(),
            created,
        };
        let principal_id = principal.id;
        self.tenant.applications.push(application);
        self.tenant.service_principals.push(principal);
        for (resource, roles) in [
            (GRAPH_APP_ID, &app.graph_roles),
            (EXCHANGE_ONLINE_APP_ID, &app.exchange_roles),
        ] {
            for role in roles {
                self.grant_app_role(principal_id, resource, role)
                    .map_err(|message| LabError::Fixture {
                        origin: "fixture".into(),
                        message,
                    })?;
            }
        }
        Ok(())
    }

    /// Grants `role` (by value) of the resource application to a client principal, as admin
    /// consent does.
    pub fn grant_app_role(
        &mut self,
        principal_id: Uuid,
        resource_app_id: &str,
        role: &str,
    ) -> Result<(), String> {
        let resource_app_id: Uuid = resource_app_id
            .parse()
            .map_err(|_| format!("`{resource_app_id}` is not an application ID"))?;
        let resource = self
            .tenant
            .principal_by_app_id(resource_app_id)
            .ok_or_else(|| format!("no resource service principal for {resource_app_id}"))?;
        let app_role = resource
            .app_roles
            .iter()
            .find(|r| r.value == role)
            .ok_or_else(|| format!("resource {resource_app_id} has no app role `{role}`"))?;
        let assignment = AppRoleAssignment {
            id: opaque_assignment_id(),
            principal_id,
            resource_id: resource.id,
            app_role_id: app_role.id,
            created: Utc::now() - ChronoDuration::days(30),
        };
        self.tenant.app_role_assignments.push(assignment);
        Ok(())
    }

    /// Checks whether `actor` may impersonate the owner of `target`'s mailbox.
    pub fn check_impersonation(
        &self,
        actor: Uuid,
        target: Uuid,
    ) -> Result<(), ImpersonationDenied> {
        let mut scoped_out = None;
        for assignment in self.exchange.impersonation_assignments(actor) {
            let Some(scope_name) = &assignment.recipient_scope else {
                return Ok(());
            };
            let in_scope = self
                .exchange
                .management_scopes
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(scope_name))
                .is_some_and(|scope| {
                    self.directory
                        .member_of(target)
                        .contains(&scope.member_of_group)
                });
            if in_scope {
                return Ok(());
            }
            scoped_out = Some(scope_name.clone());
        }
        Err(match scoped_out {
            Some(scope) => ImpersonationDenied::OutOfScope(scope),
            None => ImpersonationDenied::NoRole,
        })
    }
}

/// The fields of a new user.
pub struct NewUser<'a> {
    /// sAMAccountName.
    pub sam: &'a str,
    /// Display name and common name.
    pub name: &'a str,
    /// userPrincipalName; default `sam@domain`.
    pub upn: Option<&'a str>,
    /// Primary SMTP address; default the UPN when there is a mailbox.
    pub mail: Option<&'a str>,
    /// Secondary SMTP addresses.
    pub aliases: &'a [String],
    /// Where the mailbox lives.
    pub mailbox: MailboxLocation,
    /// Whether the account is enabled.
    pub enabled: bool,
    /// Container below the domain head, `CN=Users`.
    pub container: &'a str,
    /// Password, or `None` for an account nobody signs in with.
    pub password: Option<String>,
}

/// Escapes the characters RFC 4514 reserves in an RDN value.
pub fn escape_rdn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let reserved = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == value.chars().count() - 1 && c == ' ');
        if reserved {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The current time as a Windows FILETIME (100 ns ticks since 1601-01-01).
pub fn filetime_now() -> i64 {
    const EPOCH_DIFFERENCE_SECONDS: i64 = 11_644_473_600;
    let now = Utc::now();
    (now.timestamp() + EPOCH_DIFFERENCE_SECONDS) * 10_000_000
        + i64::from(now.timestamp_subsec_nanos() / 100)
}

/// A password that meets AD's complexity rules.
pub fn generate_password(rng: &mut impl Rng) -> String {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-.=?_";
    let mut chars: Vec<u8> = Vec::with_capacity(20);
    for set in [LOWER, UPPER, DIGITS, SYMBOLS] {
        chars.push(set[rng.random_range(0..set.len())]);
    }
    let all: Vec<u8> = [LOWER, UPPER, DIGITS, SYMBOLS].concat();
    while chars.len() < 20 {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(chars).expect("password characters are ASCII")
}

/// A client secret in the shape Entra issues: 40 characters with a `~` in it.
pub fn generate_client_secret() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
    let mut rng = rand::rng();
    let mut secret: String = (0..3)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect();
    secret.push_str("8Q~");
    secret.extend((0..34).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char));
    secret
}

/// An ID in the shape of Graph's appRoleAssignment IDs (base64url of 32 bytes).
fn opaque_assignment_id() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Generates a self-signed RSA certificate for an application: the PEM file (private key,
/// then certificate) and the key credential Graph stores for it.
pub fn generate_app_certificate(
    subject: &str,
    bits: usize,
) -> Result<(String, KeyCredential), LabError> {
    let size = match bits {
        2048 => rcgen::RsaKeySize::_2048,
        3072 => rcgen::RsaKeySize::_3072,
        _ => rcgen::RsaKeySize::_4096,
    };
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
        .map_err(|e| LabError::Tls(format!("failed to generate an RSA key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    let start = Utc::now() - ChronoDuration::days(1);
    let end = start + ChronoDuration::days(730);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
    let cert = params
        .self_signed(&key)
        .map_err(|e| LabError::Tls(format!("failed to sign an application certificate: {e}")))?;
    let der = cert.der().to_vec();
    let pem = format!("{}{}", key.serialize_pem(), cert.pem());
    let credential = KeyCredential {
        key_id: Uuid::new_v4(),
        display_name: Some(format!("CN={subject}")),
        sha1: Sha1::digest(&der).to_vec(),
        sha256: Sha256::digest(&der).to_vec(),
        certificate: der,
        start,
        end,
    };
    Ok((pem, credential))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_world_has_a_large_group_and_mailboxes() {
        let (world, secrets) = World::from_fixture(&Fixture::default_org()).expect("world");
        let all_staff = world
            .directory
            .by_sam("All-Staff")
            .expect("All-Staff exists");
        assert!(world.directory.groups[&all_staff].members.len() > 1500);
        let alice = world
            .directory
            .user_by_upn("alice@lab.example")
            .expect("alice exists");
        let mailbox = &world.exchange.mailboxes[&alice.id];
        assert_eq!(mailbox.folder(WellKnownFolder::SentItems).items.len(), 3);
        assert!(secrets.get("Administrator.password").is_some());
        assert!(secrets.get("provisioner.secret").is_some());
        assert!(secrets.get("manual-app.pem").is_some());
    }

    #[test]
    fn impersonation_needs_the_role_and_the_scope() {
        let (mut world, _) = World::from_fixture(&Fixture::default_org()).expect("world");
        let svc = world.directory.by_sam("svc-siu").expect("svc-siu");
        let alice = world.directory.by_sam("alice").expect("alice");
        let erin = world.directory.by_sam("erin").expect("erin");
        assert_eq!(
            world.check_impersonation(svc, alice),
            Err(ImpersonationDenied::NoRole)
        );
        world
            .exchange
            .role_assignments
            .push(exchange::RoleAssignment {
                id: Uuid::new_v4(),
                name: "ApplicationImpersonation-svc-siu".into(),
                role: exchange::IMPERSONATION_ROLE.into(),
                assignee: svc,
                recipient_scope: Some("SIU Pilot mailboxes".into()),
                enabled: true,
                created: Utc::now(),
            });
        assert_eq!(world.check_impersonation(svc, alice), Ok(()));
        assert!(matches!(
            world.check_impersonation(svc, erin),
            Err(ImpersonationDenied::OutOfScope(_))
        ));
    }

    #[test]
    fn rdn_escaping_covers_reserved_characters() {
        assert_eq!(escape_rdn("Smith, John"), "Smith\\, John");
        assert_eq!(escape_rdn("#lead"), "\\#lead");
        assert_eq!(escape_rdn("a=b+c"), "a\\=b\\+c");
    }

    #[test]
    fn generated_password_meets_complexity() {
        let password = generate_password(&mut rand::rng());
        assert_eq!(password.len(), 20);
        assert!(password.chars().any(|c| c.is_ascii_lowercase()));
        assert!(password.chars().any(|c| c.is_ascii_uppercase()));
        assert!(password.chars().any(|c| c.is_ascii_digit()));
    }
}
