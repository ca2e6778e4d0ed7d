//! The directory conformance suite: one set of checks of the directory provider that runs
//! against any server with Active Directory behaviour, described by a [`DirectoryTarget`].
//!
//! The Samba variant starts a throwaway Samba AD domain controller through
//! `scripts/samba-ad.sh` when `SIU_SAMBA=1` is set and skips with a message otherwise.
//! Samba starts once per test binary and is left running afterwards, so the next run reuses
//! it; `scripts/samba-ad.sh stop` ends it. The suite seeds its fixture over LDAP under its
//! own organizational unit and reuses a complete fixture on later runs.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use futures::StreamExt;
use ldap3::controls::RawControl;
use ldap3::{LdapConnAsync, Mod, Scope, SearchEntry};
use siuctl::providers::directory::{
    AdDiagnostic, BindIdentity, ConnectionSettings, CreatedUser, DirectoryClient, DirectoryError,
    DomainUsersMembership, GroupRef, MemberKind, NewUser, Password, TransitiveStrategy, UserMatch,
    escape_dn_value,
};

/// Prints a line to the process's standard error. The test harness captures `eprintln!`
/// of passing tests, but not direct writes, so skips and set-up timings show up in CI logs.
macro_rules! report {
    ($($argument:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}

/// A directory server the suite runs against.
#[derive(Debug, Clone)]
pub struct DirectoryTarget {
    /// Name shown in messages, such as `samba`.
    pub name: &'static str,
    /// Plain LDAP URL.
    pub ldap_url: String,
    /// LDAPS URL.
    pub ldaps_url: String,
    /// DN of the domain partition.
    pub base_dn: String,
    /// DNS name of the domain, the suffix of every fixture UPN.
    pub dns_domain: String,
    /// NetBIOS name of the domain, for `DOMAIN\user` binds.
    pub netbios_domain: String,
    /// UPN of an account that may create users and groups.
    pub admin_upn: String,
    /// DN of the same account.
    pub admin_dn: String,
    /// sAMAccountName of the same account.
    pub admin_sam_account_name: String,
    /// Password of the same account.
    pub admin_password: Password,
    /// CA certificate that issued the server's TLS certificate.
    pub ca_file: PathBuf,
    /// How the fixture gets into the server.
    pub seeding: Seeding,
}

/// How the suite's fixture gets into a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeding {
    /// The suite adds the fixture over LDAP as the admin account before the first check.
    OverLdap,
    /// The server starts with the fixture already loaded, under the same names.
    #[expect(
        dead_code,
        reason = "both targets are seeded over LDAP, which exercises the server's add path"
    )]
    Preloaded,
}

/// The fixture every target holds, under `OU=siu-conformance` below the base DN.
mod fixture {
    pub const OU: &str = "siu-conformance";
    /// Organizational unit for the accounts and groups that checks create. Seeding empties
    /// it, so objects left by a failed check never reach a later run.
    pub const SCRATCH_OU: &str = "siu-scratch";
    /// Description written on the OU once seeding has finished, so a later run can tell a
    /// complete fixture of this version from an older one or one that a crash left
    /// half-written. Change the version whenever the fixture changes.
    pub const COMPLETE_MARKER: &str = "siu conformance fixture, version 2, complete";
    /// Password of the enabled and the disabled fixture user.
    pub const USER_PASSWORD: &str = "Conformance-Fixture-7q";

    pub const ENABLED_USER: &str = "siu-alice";
    /// Mail and primary SMTP address of the enabled user, different from its UPN.
    pub const ENABLED_USER_MAIL: &str = "alice.mail";
    pub const DISABLED_USER: &str = "siu-bob";
    pub const NESTED_USER: &str = "siu-carol";

    /// Contains the enabled user and the inner group.
    pub const OUTER_GROUP: &str = "siu-outer";
    /// Mail and primary SMTP address of the outer group.
    pub const OUTER_GROUP_MAIL: &str = "siu-outer-list";
    /// Contains the nested user and, closing a cycle, the outer group.
    pub const INNER_GROUP: &str = "siu-inner";
    /// Contains `LARGE_GROUP_SIZE` contacts.
    pub const LARGE_GROUP: &str = "siu-large";
    /// Above AD's default MaxValRange of 1,500, so AD returns `member` in ranges.
    pub const LARGE_GROUP_SIZE: usize = 2000;
}

impl DirectoryTarget {
    fn ou_dn(&self) -> String {
        format!("OU={},{}", fixture::OU, self.base_dn)
    }

    fn scratch_ou_dn(&self) -> String {
        format!("OU={},{}", fixture::SCRATCH_OU, self.base_dn)
    }

    fn upn(&self, name: &str) -> String {
        format!("{name}@{}", self.dns_domain)
    }

    fn dn(&self, common_name: &str) -> String {
        format!("CN={},{}", escape_dn_value(common_name), self.ou_dn())
    }

    fn settings(&self, url: &str, identity: BindIdentity, password: &str) -> ConnectionSettings {
        let mut settings = ConnectionSettings::new(url, identity, Password::new(password));
        settings.ca_file = Some(self.ca_file.clone());
        settings
    }

    fn admin_settings(&self, url: &str) -> ConnectionSettings {
        self.settings(
            url,
            BindIdentity::Upn(self.admin_upn.clone()),
            self.admin_password.expose(),
        )
    }

    async fn admin(&self) -> DirectoryClient {
        DirectoryClient::connect(&self.admin_settings(&self.ldap_url))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{}: admin bind over LDAP should succeed: {error}",
                    self.name
                )
            })
    }

    pub(crate) async fn admin_over_ldaps(&self) -> DirectoryClient {
        DirectoryClient::connect(&self.admin_settings(&self.ldaps_url))
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{}: admin bind over LDAPS should succeed: {error}",
                    self.name
                )
            })
    }
}

/// The checks, each written against any [`DirectoryTarget`].
mod checks {
    use super::*;

    async fn assert_admin_bind(target: &DirectoryTarget, identity: BindIdentity) {
        let settings = target.settings(
            &target.ldap_url,
            identity.clone(),
            target.admin_password.expose(),
        );
        let client = DirectoryClient::connect(&settings)
            .await
            .unwrap_or_else(|error| panic!("bind as {identity} should succeed: {error}"));
        assert!(
            client.root_dse().is_active_directory(),
            "the root DSE should announce AD"
        );
        assert!(
            client.base_dn().eq_ignore_ascii_case(&target.base_dn),
            "base DN {}",
            client.base_dn()
        );
        client.unbind().await.expect("unbind should succeed");
    }

    pub async fn bind_as_upn(target: &DirectoryTarget) {
        assert_admin_bind(target, BindIdentity::Upn(target.admin_upn.clone())).await;
    }

    pub async fn bind_as_dn(target: &DirectoryTarget) {
        assert_admin_bind(target, BindIdentity::Dn(target.admin_dn.clone())).await;
    }

    pub async fn bind_as_down_level_name(target: &DirectoryTarget) {
        let identity = BindIdentity::DownLevel {
            domain: target.netbios_domain.clone(),
            user: target.admin_sam_account_name.clone(),
        };
        assert_admin_bind(target, identity).await;
    }

    pub async fn wrong_password_reports_invalid_credentials(target: &DirectoryTarget) {
        let wrong_password = "Not-The-Password-42";
        let settings = target.settings(
            &target.ldap_url,
            BindIdentity::Upn(target.admin_upn.clone()),
            wrong_password,
        );
        let error = DirectoryClient::connect(&settings)
            .await
            .err()
            .expect("a wrong password should fail the bind");

        let DirectoryError::Bind { status, .. } = &error else {
            panic!("expected a bind error, got {error}");
        };
        assert_eq!(status.code, 49, "{error}");
        assert_eq!(
            status.diagnostic,
            Some(AdDiagnostic::InvalidCredentials),
            "{error}"
        );
        assert!(
            !error.to_string().contains(wrong_password),
            "the message must not contain the password"
        );
        assert!(
            !format!("{error:?}").contains(wrong_password),
            "Debug output must not contain the password"
        );
    }

    pub async fn ldaps_and_start_tls_verify_the_ca(target: &DirectoryTarget) {
        let ldaps = target.admin_over_ldaps().await;
        assert!(ldaps.is_encrypted());

        let mut start_tls = target.admin_settings(&target.ldap_url);
        start_tls.start_tls = true;
        let client = DirectoryClient::connect(&start_tls)
            .await
            .expect("StartTLS with the CA file should succeed");
        assert!(client.is_encrypted());

        // A CA that did not issue the server's certificate must fail the handshake.
        let other_ca = tempfile::NamedTempFile::new().expect("a temporary file should be created");
        let key = rcgen::KeyPair::generate().expect("a key pair should be generated");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("CA parameters should be valid");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let certificate = params
            .self_signed(&key)
            .expect("a CA certificate should be signed");
        std::fs::write(other_ca.path(), certificate.pem()).expect("the CA file should be written");
        let mut wrong_ca = target.admin_settings(&target.ldaps_url);
        wrong_ca.ca_file = Some(other_ca.path().to_path_buf());
        let error = DirectoryClient::connect(&wrong_ca)
            .await
            .err()
            .expect("an unknown CA should fail the handshake");
        assert!(matches!(error, DirectoryError::Connect { .. }), "{error}");

        // The explicit switch accepts the certificate without any CA file.
        let mut insecure = target.admin_settings(&target.ldaps_url);
        insecure.ca_file = None;
        insecure.insecure_skip_tls_verify = true;
        let client = DirectoryClient::connect(&insecure)
            .await
            .expect("skipping verification should accept the certificate");
        assert!(client.is_encrypted());
    }

    pub async fn find_user_by_upn(target: &DirectoryTarget) {
        let client = target.admin().await;
        let upn = target.upn(fixture::ENABLED_USER);
        let user = client
            .find_user_by_upn(&upn)
            .await
            .expect("the search should succeed")
            .expect("alice exists");

        assert!(
            user.dn
                .eq_ignore_ascii_case(&target.dn(fixture::ENABLED_USER)),
            "dn {}",
            user.dn
        );
        assert_eq!(user.matched_by, UserMatch::UserPrincipalName);
        assert_eq!(user.sam_account_name, fixture::ENABLED_USER);
        assert_eq!(user.user_principal_name.as_deref(), Some(upn.as_str()));
        assert!(user.status.enabled);
        assert!(!user.status.locked_out);
        assert!(!user.status.password_expired);
        assert!(user.status.is_usable());
        assert_eq!(user.primary_group_id, Some(513));
        let sid = user.object_sid.as_ref().expect("a user has an objectSid");
        assert!(sid.to_string().starts_with("S-1-5-21-"), "sid {sid}");
        assert!(
            user.member_of
                .iter()
                .any(|dn| dn.eq_ignore_ascii_case(&target.dn(fixture::OUTER_GROUP))),
            "memberOf {:?}",
            user.member_of
        );
        let membership = client
            .domain_users_membership(&user)
            .await
            .expect("the membership check should succeed");
        assert_eq!(membership, DomainUsersMembership::PrimaryGroup);
    }

    pub async fn find_user_by_smtp_address(target: &DirectoryTarget) {
        let client = target.admin().await;
        let address = target.upn(fixture::ENABLED_USER_MAIL);
        let user = client
            .find_user_by_upn(&address)
            .await
            .expect("the search should succeed")
            .expect("alice is found by her mail address");
        assert_eq!(user.matched_by, UserMatch::SmtpAddress);
        assert_eq!(user.sam_account_name, fixture::ENABLED_USER);
        assert!(
            user.proxy_addresses
                .iter()
                .any(|value| value == &format!("SMTP:{address}"))
        );

        let unknown = client
            .find_user_by_upn(&target.upn("siu-nobody"))
            .await
            .expect("the search should succeed");
        assert_eq!(unknown, None);
    }

    pub async fn disabled_account_detected(target: &DirectoryTarget) {
        let client = target.admin().await;
        let upn = target.upn(fixture::DISABLED_USER);
        let user = client
            .find_user_by_upn(&upn)
            .await
            .expect("the search should succeed")
            .expect("bob exists");
        assert!(!user.status.enabled);
        assert!(!user.status.is_usable());
        assert_eq!(user.status.user_account_control & 0x2, 0x2);

        let settings = target.settings(
            &target.ldap_url,
            BindIdentity::Upn(upn),
            fixture::USER_PASSWORD,
        );
        let error = DirectoryClient::connect(&settings)
            .await
            .err()
            .expect("a disabled account cannot bind");
        let DirectoryError::Bind { status, .. } = &error else {
            panic!("expected a bind error, got {error}");
        };
        assert_eq!(status.code, 49, "{error}");
        assert_eq!(
            status.diagnostic,
            Some(AdDiagnostic::AccountDisabled),
            "{error}"
        );
        assert!(error.to_string().contains("account disabled"), "{error}");
    }

    pub async fn enabled_user_can_bind(target: &DirectoryTarget) {
        let settings = target.settings(
            &target.ldap_url,
            BindIdentity::Upn(target.upn(fixture::ENABLED_USER)),
            fixture::USER_PASSWORD,
        );
        DirectoryClient::connect(&settings)
            .await
            .expect("alice should bind with her password");
    }

    fn dns(objects: &[siuctl::providers::directory::DirectoryObject]) -> BTreeSet<String> {
        objects
            .iter()
            .map(|object| object.dn.to_lowercase())
            .collect()
    }

    pub async fn nested_groups_resolved(target: &DirectoryTarget) {
        let client = target.admin().await;
        let outer = client
            .find_group(&GroupRef::SamAccountName(fixture::OUTER_GROUP.to_owned()))
            .await
            .expect("the search should succeed")
            .expect("the outer group exists");
        assert!(outer.is_security_group());
        let references = [
            GroupRef::Dn(target.dn(fixture::OUTER_GROUP)),
            GroupRef::Name(fixture::OUTER_GROUP.to_owned()),
            GroupRef::SmtpAddress(target.upn(fixture::OUTER_GROUP_MAIL)),
        ];
        for reference in references {
            let found = client
                .find_group(&reference)
                .await
                .expect("the search should succeed");
            assert_eq!(found.as_ref(), Some(&outer), "lookup by {reference:?}");
        }

        let by_walk = client
            .transitive_members_by_walk(&outer.dn)
            .await
            .expect("the walk should succeed");
        let in_chain = client
            .transitive_members_in_chain(&outer.dn)
            .await
            .expect("the in-chain search should succeed");

        let expected: BTreeSet<String> = [
            fixture::ENABLED_USER,
            fixture::INNER_GROUP,
            fixture::NESTED_USER,
        ]
        .iter()
        .map(|name| target.dn(name).to_lowercase())
        .collect();
        assert_eq!(
            dns(&by_walk),
            expected,
            "the walk should find both users and the inner group"
        );
        assert_eq!(
            dns(&in_chain),
            expected,
            "the in-chain rule should agree with the walk"
        );
        let carol = by_walk
            .iter()
            .find(|object| object.sam_account_name.as_deref() == Some(fixture::NESTED_USER))
            .expect("carol is a transitive member");
        assert_eq!(carol.kind, MemberKind::User);
        assert_eq!(
            carol.user_principal_name.as_deref(),
            Some(target.upn(fixture::NESTED_USER).as_str())
        );
    }

    pub async fn large_group_read_through_ranges(target: &DirectoryTarget) {
        let group_dn = target.dn(fixture::LARGE_GROUP);

        // The plain request: Samba returns all values, AD and the lab return ranges.
        let client = target.admin().await;
        let plain = client
            .read_members(&group_dn)
            .await
            .expect("reading members should succeed");
        assert_eq!(plain.len(), fixture::LARGE_GROUP_SIZE);

        // Explicit ranges make every server return `member;range=0-1499`, then `1500-*`.
        let mut settings = target.admin_settings(&target.ldap_url);
        settings.member_range_size = Some(1500);
        let ranged_client = DirectoryClient::connect(&settings)
            .await
            .expect("admin bind should succeed");
        let ranged = ranged_client
            .read_members(&group_dn)
            .await
            .expect("ranged reads should succeed");
        assert_eq!(ranged.len(), fixture::LARGE_GROUP_SIZE);
        let plain_set: HashSet<String> = plain.iter().map(|dn| dn.to_lowercase()).collect();
        let ranged_set: HashSet<String> = ranged.iter().map(|dn| dn.to_lowercase()).collect();
        assert_eq!(
            ranged_set.len(),
            fixture::LARGE_GROUP_SIZE,
            "ranges must not repeat values"
        );
        assert_eq!(plain_set, ranged_set);

        // The ranged reads above prove something only if the server returned ranges.
        let mut ldap = raw_admin(target).await;
        let ldap3::SearchResult(entries, _) = ldap
            .search(
                &group_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["member;range=0-1499"],
            )
            .await
            .expect("the search request should be sent");
        let entry = SearchEntry::construct(entries.into_iter().next().expect("the group exists"));
        let names: Vec<&String> = entry.attrs.keys().collect();
        assert_eq!(
            names,
            [&"member;range=0-1499".to_owned()],
            "a ranged request gets a ranged answer"
        );
        assert_eq!(entry.attrs["member;range=0-1499"].len(), 1500);

        // Small ranges take several steps.
        settings.member_range_size = Some(300);
        let small_range_client = DirectoryClient::connect(&settings)
            .await
            .expect("admin bind should succeed");
        let small_ranges = small_range_client
            .read_members(&group_dn)
            .await
            .expect("ranged reads should succeed");
        assert_eq!(small_ranges.len(), fixture::LARGE_GROUP_SIZE);

        let members = ranged_client
            .transitive_members_by_walk(&group_dn)
            .await
            .expect("the walk should succeed");
        assert_eq!(members.len(), fixture::LARGE_GROUP_SIZE);
        assert!(
            members
                .iter()
                .all(|member| member.kind == MemberKind::Contact)
        );
        let in_chain = client
            .transitive_members_in_chain(&group_dn)
            .await
            .expect("the in-chain search should succeed");
        assert_eq!(dns(&members), dns(&in_chain));
    }

    /// Creates an account over LDAPS in the scratch OU, with a unique name, and an empty
    /// group.
    async fn create_scratch_user(
        target: &DirectoryTarget,
        client: &DirectoryClient,
    ) -> (CreatedUser, String) {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let upn = target.upn(&format!("siu-new-{suffix}"));
        let mut new_user = NewUser::new(&upn, target.scratch_ou_dn());
        // A common name with DN specials checks the RFC 4514 escaping of the new DN.
        new_user.common_name = Some(format!("New, User+{suffix} <svc>"));
        new_user.display_name = Some("Sent Items Update service".to_owned());
        let created = client
            .create_user(&new_user)
            .await
            .expect("creating the user over LDAPS should succeed");

        let group_dn = format!("CN=siu-group-{suffix},{}", target.scratch_ou_dn());
        let mut ldap = raw_admin(target).await;
        let group_name = format!("siu-group-{suffix}");
        add(&mut ldap, &group_dn, group_attributes(&group_name, vec![])).await;
        (created, group_dn)
    }

    pub async fn create_user_over_ldaps_then_bind(target: &DirectoryTarget) {
        let client = target.admin_over_ldaps().await;
        let (created, group_dn) = create_scratch_user(target, &client).await;
        let upn = created.user_principal_name.clone();
        assert!(created.sam_account_name.starts_with("siu-new-"));
        assert!(created.password.expose().len() >= 24);

        let user_settings = target.settings(
            &target.ldap_url,
            BindIdentity::Upn(upn.clone()),
            created.password.expose(),
        );
        DirectoryClient::connect(&user_settings)
            .await
            .expect("the new user should bind with the generated password");

        let user = client
            .find_user_by_upn(&upn)
            .await
            .expect("the search should succeed")
            .expect("the user exists");
        assert!(
            user.dn.eq_ignore_ascii_case(&created.dn),
            "dn {} against {}",
            user.dn,
            created.dn
        );
        assert_eq!(user.sam_account_name, created.sam_account_name);
        assert_eq!(
            user.display_name.as_deref(),
            Some("Sent Items Update service")
        );
        assert!(user.status.enabled);
        assert!(user.status.is_usable());

        assert!(
            client
                .add_group_member(&group_dn, &created.dn)
                .await
                .expect("adding a member should succeed")
        );
        assert!(
            !client
                .add_group_member(&group_dn, &created.dn)
                .await
                .expect("adding it again should succeed")
        );

        set_user_account_control(target, &created.dn, 0x202).await;
        assert!(
            client
                .enable_account(&created.dn)
                .await
                .expect("enabling should succeed")
        );
        assert!(
            !client
                .enable_account(&created.dn)
                .await
                .expect("enabling twice should succeed")
        );
        let settings_after_enable = target.settings(
            &target.ldap_url,
            BindIdentity::Upn(upn),
            created.password.expose(),
        );
        DirectoryClient::connect(&settings_after_enable)
            .await
            .expect("the re-enabled user should bind");

        client
            .delete(&created.dn)
            .await
            .expect("deleting the test user should succeed");
        client
            .delete(&group_dn)
            .await
            .expect("deleting the test group should succeed");
    }

    /// Walks an account through the three ways of relating to Domain Users: primary group,
    /// explicit `member` value, and neither. An account whose primary group is a group also
    /// counts among that group's transitive members.
    pub async fn domain_users_and_primary_groups(target: &DirectoryTarget) {
        let client = target.admin_over_ldaps().await;
        let (created, group_dn) = create_scratch_user(target, &client).await;
        let read_user = || async {
            client
                .read_user(&created.dn)
                .await
                .expect("reading the user should succeed")
                .expect("the user exists")
        };
        let user = read_user().await;
        assert_eq!(
            client
                .domain_users_membership(&user)
                .await
                .expect("the check should succeed"),
            DomainUsersMembership::PrimaryGroup
        );

        // AD accepts a new primary group only among the groups the account is a member of.
        client
            .add_group_member(&group_dn, &created.dn)
            .await
            .expect("adding a member should succeed");
        let group = client
            .find_group(&GroupRef::Dn(group_dn.clone()))
            .await
            .expect("the search should succeed")
            .expect("the group exists");
        let rid = group
            .object_sid
            .as_ref()
            .and_then(|sid| sid.rid())
            .expect("a group has a RID");
        let mut ldap = raw_admin(target).await;
        ldap.modify(
            &created.dn,
            vec![Mod::Replace(
                "primaryGroupID",
                HashSet::from([rid.to_string().as_str()]),
            )],
        )
        .await
        .expect("the modify request should be sent")
        .success()
        .expect("changing the primary group should succeed");

        // Changing the primary group turns the old one into an explicit membership.
        let user = read_user().await;
        assert_eq!(user.primary_group_id, Some(rid));
        let domain_users = client
            .find_group(&GroupRef::SamAccountName("Domain Users".to_owned()))
            .await
            .expect("the search should succeed")
            .expect("Domain Users exists");
        assert_eq!(
            domain_users.object_sid.as_ref().and_then(|sid| sid.rid()),
            Some(513)
        );
        let membership = client.domain_users_membership(&user).await;
        assert_eq!(
            membership.expect("the check should succeed"),
            DomainUsersMembership::Member
        );

        ldap.modify(
            &domain_users.dn,
            vec![Mod::Delete("member", HashSet::from([created.dn.as_str()]))],
        )
        .await
        .expect("the modify request should be sent")
        .success()
        .expect("removing the user from Domain Users should succeed");
        let membership = client.domain_users_membership(&user).await;
        assert_eq!(
            membership.expect("the check should succeed"),
            DomainUsersMembership::NotMember
        );

        for strategy in [TransitiveStrategy::Walk, TransitiveStrategy::InChain] {
            let members = match strategy {
                TransitiveStrategy::Walk => client.transitive_members_by_walk(&group_dn).await,
                _ => client.transitive_members_in_chain(&group_dn).await,
            }
            .expect("resolving members should succeed");
            assert!(
                members
                    .iter()
                    .any(|member| member.dn.eq_ignore_ascii_case(&created.dn)),
                "{strategy:?} should find the account through its primary group: {members:?}"
            );
        }

        client
            .delete(&created.dn)
            .await
            .expect("deleting the test user should succeed");
        client
            .delete(&group_dn)
            .await
            .expect("deleting the test group should succeed");
    }

    pub async fn create_user_over_plain_ldap_rejected(target: &DirectoryTarget) {
        let client = target.admin().await;
        let upn = target.upn("siu-plain-text");
        let error = client
            .create_user(&NewUser::new(&upn, target.scratch_ou_dn()))
            .await
            .expect_err("a password over plain LDAP must be rejected");
        assert!(
            matches!(error, DirectoryError::PasswordRequiresTls { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("LDAPS or StartTLS")
                || error.to_string().contains("ldaps://"),
            "{error}"
        );
        assert_eq!(
            client
                .find_user_by_upn(&upn)
                .await
                .expect("the search should succeed"),
            None
        );
    }

    pub async fn filter_injection_finds_nothing(target: &DirectoryTarget) {
        let client = target.admin().await;
        let domain = &target.dns_domain;
        let hostile_upns = [
            format!("*@{domain}"),
            format!("siu-*@{domain}"),
            format!("*)(objectClass=*)(userPrincipalName=*@{domain}"),
            format!("{}@{domain})(|(userPrincipalName=*", fixture::DISABLED_USER),
            format!("x@{domain}\\2a"),
            format!("siu-alice@{domain}\0"),
        ];
        for upn in hostile_upns {
            let found = client.find_user_by_upn(&upn).await;
            assert!(
                matches!(found, Ok(None) | Err(DirectoryError::InvalidUpn { .. })),
                "upn {upn:?}: {found:?}"
            );
        }

        let hostile_groups = [
            GroupRef::Name("*".to_owned()),
            GroupRef::SamAccountName("siu-*".to_owned()),
            GroupRef::SmtpAddress("*".to_owned()),
            GroupRef::Name(format!("{})(name=*", fixture::OUTER_GROUP)),
        ];
        for group in hostile_groups {
            let found = client
                .find_group(&group)
                .await
                .expect("the search should succeed");
            assert_eq!(found, None, "group {group:?}");
        }
    }

    async fn set_user_account_control(target: &DirectoryTarget, dn: &str, value: u32) {
        let mut ldap = raw_admin(target).await;
        ldap.modify(
            dn,
            vec![Mod::Replace(
                "userAccountControl",
                HashSet::from([value.to_string().as_str()]),
            )],
        )
        .await
        .expect("the modify request should be sent")
        .success()
        .expect("the modify should succeed");
    }
}

/// Opens a plain `ldap3` connection bound as the admin account, for seeding and for
/// changes the provider does not offer.
async fn raw_admin(target: &DirectoryTarget) -> ldap3::Ldap {
    let (connection, mut ldap) = LdapConnAsync::new(&target.ldap_url)
        .await
        .expect("the LDAP connection should open");
    ldap3::drive!(connection);
    ldap.simple_bind(&target.admin_upn, target.admin_password.expose())
        .await
        .expect("the bind request should be sent")
        .success()
        .expect("the admin bind should succeed");
    ldap
}

/// Makes sure the target contains the fixture.
async fn prepare_fixture(target: &DirectoryTarget) {
    match target.seeding {
        Seeding::OverLdap => seed_over_ldap(target).await,
        Seeding::Preloaded => {}
    }
}

/// Adds the fixture over LDAP unless a complete one of this version is there already. An
/// older or half-written fixture is deleted with the tree-delete control and added again,
/// which takes Samba about 25 s for the 2,000 contacts.
async fn seed_over_ldap(target: &DirectoryTarget) {
    let mut ldap = raw_admin(target).await;
    reset_scratch_ou(target, &mut ldap).await;
    let ou_dn = target.ou_dn();

    let description = match read_description(&mut ldap, &ou_dn).await {
        None => None,
        Some(description) if description == fixture::COMPLETE_MARKER => {
            report!(
                "{}: reusing the conformance fixture under {ou_dn}",
                target.name
            );
            return;
        }
        Some(description) => Some(description),
    };
    if description.is_some() {
        report!(
            "{}: deleting the outdated or incomplete fixture under {ou_dn}",
            target.name
        );
        let tree_delete = RawControl {
            ctype: "1.2.840.113556.1.4.805".to_owned(),
            crit: true,
            val: None,
        };
        ldap.with_controls(tree_delete)
            .delete(&ou_dn)
            .await
            .expect("the delete request should be sent")
            .success()
            .expect("the tree delete should succeed");
    }

    let started = std::time::Instant::now();
    add(
        &mut ldap,
        &ou_dn,
        vec![("objectClass", vec!["organizationalUnit"])],
    )
    .await;

    let mail = target.upn(fixture::ENABLED_USER_MAIL);
    let proxy = format!("SMTP:{mail}");
    for (name, user_account_control, extra) in [
        (
            fixture::ENABLED_USER,
            "512",
            vec![
                ("mail", vec![mail.as_str()]),
                ("proxyAddresses", vec![proxy.as_str()]),
            ],
        ),
        (fixture::DISABLED_USER, "514", vec![]),
        (fixture::NESTED_USER, "512", vec![]),
    ] {
        let upn = target.upn(name);
        let mut attributes = vec![
            ("objectClass", vec!["user"]),
            ("sAMAccountName", vec![name]),
            ("userPrincipalName", vec![upn.as_str()]),
        ];
        attributes.extend(extra);
        add(&mut ldap, &target.dn(name), attributes).await;
        set_fixture_password(target, &target.dn(name), user_account_control).await;
    }

    // The contacts of the large group go in concurrently over one connection, because
    // Samba then spends its time on the adds instead of on round trips.
    let contact_dns: Vec<String> = (0..fixture::LARGE_GROUP_SIZE)
        .map(|index| target.dn(&format!("siu-contact-{index:04}")))
        .collect();
    futures::stream::iter(contact_dns.iter().cloned())
        .map(|dn| {
            let mut ldap = ldap.clone();
            async move { add(&mut ldap, &dn, vec![("objectClass", vec!["contact"])]).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let member_refs: Vec<&str> = contact_dns.iter().map(String::as_str).collect();
    let large_group = target.dn(fixture::LARGE_GROUP);
    let inner_group = target.dn(fixture::INNER_GROUP);
    let outer_group = target.dn(fixture::OUTER_GROUP);
    let alice = target.dn(fixture::ENABLED_USER);
    let carol = target.dn(fixture::NESTED_USER);
    add(
        &mut ldap,
        &large_group,
        group_attributes(fixture::LARGE_GROUP, member_refs),
    )
    .await;
    add(
        &mut ldap,
        &inner_group,
        group_attributes(fixture::INNER_GROUP, vec![carol.as_str()]),
    )
    .await;
    let outer_mail = target.upn(fixture::OUTER_GROUP_MAIL);
    let outer_proxy = format!("SMTP:{outer_mail}");
    let mut outer_attributes = group_attributes(
        fixture::OUTER_GROUP,
        vec![alice.as_str(), inner_group.as_str()],
    );
    outer_attributes.push(("mail", vec![outer_mail.as_str()]));
    outer_attributes.push(("proxyAddresses", vec![outer_proxy.as_str()]));
    add(&mut ldap, &outer_group, outer_attributes).await;
    // The cycle: the inner group also contains the outer one.
    ldap.modify(
        &inner_group,
        vec![Mod::Add("member", HashSet::from([outer_group.as_str()]))],
    )
    .await
    .expect("the modify request should be sent")
    .success()
    .expect("closing the group cycle should succeed");

    ldap.modify(
        &ou_dn,
        vec![Mod::Replace(
            "description",
            HashSet::from([fixture::COMPLETE_MARKER]),
        )],
    )
    .await
    .expect("the modify request should be sent")
    .success()
    .expect("marking the fixture complete should succeed");
    report!(
        "{}: seeded the conformance fixture in {:.1} s",
        target.name,
        started.elapsed().as_secs_f64()
    );
}

fn group_attributes<'a>(name: &'a str, members: Vec<&'a str>) -> Vec<(&'a str, Vec<&'a str>)> {
    // groupType -2147483646: a global security group.
    vec![
        ("objectClass", vec!["group"]),
        ("sAMAccountName", vec![name]),
        ("groupType", vec!["-2147483646"]),
        ("member", members),
    ]
}

/// Deletes the scratch OU with everything in it and adds it again, empty.
async fn reset_scratch_ou(target: &DirectoryTarget, ldap: &mut ldap3::Ldap) {
    let scratch = target.scratch_ou_dn();
    if read_description(ldap, &scratch).await.is_some() {
        delete_tree(ldap, &scratch).await;
    }
    add(
        ldap,
        &scratch,
        vec![("objectClass", vec!["organizationalUnit"])],
    )
    .await;
}

/// Deletes an entry and its subtree with the tree-delete control (1.2.840.113556.1.4.805).
async fn delete_tree(ldap: &mut ldap3::Ldap, dn: &str) {
    let tree_delete = RawControl {
        ctype: "1.2.840.113556.1.4.805".to_owned(),
        crit: true,
        val: None,
    };
    ldap.with_controls(tree_delete)
        .delete(dn)
        .await
        .expect("the delete request should be sent")
        .success()
        .unwrap_or_else(|error| panic!("deleting {dn} with its subtree should succeed: {error}"));
}

/// Returns the entry's `description`, an empty string when it has none, or `None` when the
/// entry does not exist.
async fn read_description(ldap: &mut ldap3::Ldap, dn: &str) -> Option<String> {
    let ldap3::SearchResult(entries, result) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["description"])
        .await
        .expect("the search request should be sent");
    if result.rc == 32 {
        return None;
    }
    assert_eq!(result.rc, 0, "searching {dn} should succeed: {result}");
    let entry = SearchEntry::construct(entries.into_iter().next()?);
    let description = entry
        .attrs
        .get("description")
        .and_then(|values| values.first());
    Some(description.cloned().unwrap_or_default())
}

async fn add(ldap: &mut ldap3::Ldap, dn: &str, attributes: Vec<(&str, Vec<&str>)>) {
    let attributes: Vec<(&str, HashSet<&str>)> = attributes
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| (name, values.into_iter().collect()))
        .collect();
    ldap.add(dn, attributes)
        .await
        .expect("the add request should be sent")
        .success()
        .unwrap_or_else(|error| panic!("adding {dn} should succeed: {error}"));
}

/// Sets the fixture password through the provider over LDAPS, then the account control.
async fn set_fixture_password(target: &DirectoryTarget, dn: &str, user_account_control: &str) {
    let client = target.admin_over_ldaps().await;
    client
        .set_password(dn, &Password::new(fixture::USER_PASSWORD))
        .await
        .expect("setting the fixture password should succeed");
    let mut ldap = raw_admin(target).await;
    ldap.modify(
        dn,
        vec![Mod::Replace(
            "userAccountControl",
            HashSet::from([user_account_control]),
        )],
    )
    .await
    .expect("the modify request should be sent")
    .success()
    .expect("setting userAccountControl should succeed");
}

/// Starts Samba through the harness once per test binary, seeds the fixture, and returns the
/// target. Returns `None` and prints why when `SIU_SAMBA=1` is not set. A failed set-up fails
/// every Samba check with the same message, so it runs only once.
pub(crate) fn samba_target() -> Option<&'static DirectoryTarget> {
    static TARGET: OnceLock<Result<Option<DirectoryTarget>, String>> = OnceLock::new();
    let target = TARGET.get_or_init(|| {
        if std::env::var("SIU_SAMBA").as_deref() != Ok("1") {
            report!("skipping the Samba directory checks: set SIU_SAMBA=1 (as root) to run them");
            return Ok(None);
        }
        // The checks run inside their own runtimes, so the set-up gets a thread and a
        // runtime of its own.
        let setup = std::thread::spawn(|| {
            let target = start_samba();
            let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime should start");
            runtime.block_on(prepare_fixture(&target));
            target
        });
        setup.join().map(Some).map_err(|panic| {
            let message = panic.downcast_ref::<String>().cloned();
            let message =
                message.or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()));
            message.unwrap_or_else(|| "unknown panic".to_owned())
        })
    });
    match target {
        Ok(target) => target.as_ref(),
        Err(message) => panic!("setting up Samba failed: {message}"),
    }
}

fn start_samba() -> DirectoryTarget {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/samba-ad.sh");
    let dir = std::env::var("SIU_SAMBA_DIR").unwrap_or_else(|_| "/tmp/siu-samba-ad".to_owned());
    let started = std::time::Instant::now();
    let output = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .output()
        .expect("bash should run");
    assert!(
        output.status.success(),
        "{} start {dir} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    report!("samba: ready in {:.1} s", started.elapsed().as_secs_f64());

    let env_file = PathBuf::from(&dir).join("samba-ad.env");
    let text = std::fs::read_to_string(&env_file)
        .unwrap_or_else(|error| panic!("reading {} should succeed: {error}", env_file.display()));
    let variables: HashMap<&str, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name, value.trim_matches('\'').replace("\\\\", "\\")))
        .collect();
    let variable = |name: &str| {
        variables
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("{} should define {name}", env_file.display()))
    };

    DirectoryTarget {
        name: "samba",
        ldap_url: variable("SIU_AD_URL"),
        ldaps_url: variable("SIU_AD_LDAPS_URL"),
        base_dn: variable("SIU_AD_BASE_DN"),
        dns_domain: variable("SIU_AD_REALM").to_lowercase(),
        netbios_domain: variable("SIU_AD_DOMAIN"),
        admin_upn: variable("SIU_AD_BIND_UPN"),
        admin_dn: variable("SIU_AD_BIND_DN"),
        admin_sam_account_name: "Administrator".to_owned(),
        admin_password: Password::new(variable("SIU_AD_PASSWORD")),
        ca_file: PathBuf::from(variable("SIU_AD_CA_FILE")),
        seeding: Seeding::OverLdap,
    }
}

/// Starts a lab on a thread of its own, whose runtime keeps serving for the rest of the test
/// binary, seeds the fixture over LDAP, and returns the target.
fn lab_target() -> &'static DirectoryTarget {
    static TARGET: OnceLock<DirectoryTarget> = OnceLock::new();
    TARGET.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime should start");
            runtime.block_on(async move {
                let lab =
                    siu_lab::Lab::start(siu_lab::LabConfig::new(siu_lab::Fixture::default_org()))
                        .await
                        .expect("the lab should start");
                let ca_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("directory-lab-ca-{}.pem", std::process::id()));
                std::fs::write(&ca_file, lab.ca_pem()).expect("the lab CA should be written");
                let endpoints = lab.endpoints();
                let password = lab
                    .secrets()
                    .get("Administrator.password")
                    .expect("the lab publishes the administrator's password")
                    .to_owned();
                let target = DirectoryTarget {
                    name: "lab",
                    ldap_url: endpoints.ldap.to_string(),
                    ldaps_url: endpoints.ldaps.to_string(),
                    base_dn: "DC=lab,DC=example".to_owned(),
                    dns_domain: "lab.example".to_owned(),
                    netbios_domain: "LAB".to_owned(),
                    admin_upn: "administrator@lab.example".to_owned(),
                    admin_dn: "CN=Administrator,CN=Users,DC=lab,DC=example".to_owned(),
                    admin_sam_account_name: "Administrator".to_owned(),
                    admin_password: Password::new(password),
                    ca_file,
                    seeding: Seeding::OverLdap,
                };
                prepare_fixture(&target).await;
                sender
                    .send(target)
                    .expect("the test thread waits for the target");
                // The lab serves as long as this runtime runs: until the test binary exits.
                std::future::pending::<()>().await;
                drop(lab);
            });
        });
        receiver
            .recv()
            .expect("the lab target should be set up (see the panic above)")
    })
}

/// Generates one test per check against the lab's LDAP server.
macro_rules! lab_checks {
    ($($check:ident),* $(,)?) => {
        mod lab {
            $(
                #[tokio::test]
                async fn $check() {
                    super::checks::$check(super::lab_target()).await;
                }
            )*
        }
    };
}

lab_checks!(
    bind_as_upn,
    bind_as_dn,
    bind_as_down_level_name,
    wrong_password_reports_invalid_credentials,
    ldaps_and_start_tls_verify_the_ca,
    find_user_by_upn,
    find_user_by_smtp_address,
    disabled_account_detected,
    enabled_user_can_bind,
    nested_groups_resolved,
    large_group_read_through_ranges,
    create_user_over_ldaps_then_bind,
    domain_users_and_primary_groups,
    create_user_over_plain_ldap_rejected,
    filter_injection_finds_nothing,
);

/// Generates one test per check against the Samba target.
macro_rules! samba_checks {
    ($($check:ident),* $(,)?) => {
        mod samba {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(target) = super::samba_target() else { return };
                    super::checks::$check(target).await;
                }
            )*
        }
    };
}

samba_checks!(
    bind_as_upn,
    bind_as_dn,
    bind_as_down_level_name,
    wrong_password_reports_invalid_credentials,
    ldaps_and_start_tls_verify_the_ca,
    find_user_by_upn,
    find_user_by_smtp_address,
    disabled_account_detected,
    enabled_user_can_bind,
    nested_groups_resolved,
    large_group_read_through_ranges,
    create_user_over_ldaps_then_bind,
    domain_users_and_primary_groups,
    create_user_over_plain_ldap_rejected,
    filter_injection_finds_nothing,
);
