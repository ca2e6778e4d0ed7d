//! A lab that follows an external directory, with a second lab's LDAP server as that
//! directory: seeding, read-through of unknown accounts for EWS Basic logons and the
//! management shell, and NTLM refused. The same flow against Samba AD runs in the
//! workspace's integration tests when `SIU_SAMBA=1` is set.

use siu_lab::external::{ExternalDirectory, SEED_OU};
use siu_lab::faults::Service;
use siu_lab::fixture::MailboxLocation;
use siu_lab::world::NewUser;
use siu_lab::world::directory::uac;
use siu_lab::{Fixture, Lab, LabConfig};

/// The directory lab's organization: a domain with its administrator only, so that every
/// object of the default organization can be seeded into it.
const DIRECTORY_FIXTURE: &str = "\
apiVersion: siu/v1
kind: LabOrganization
domain: ad.example
netbiosName: AD
tenant:
  id: 3d9e2f4a-6b1c-4d8e-9f0a-1b2c3d4e5f60
  initialDomain: adexample.onmicrosoft.com
  displayName: AD Example
users:
  - sam: Administrator
    name: Administrator
    mailbox: none
    domainAdmin: true
    publishPassword: true
";

const BASE_DN: &str = "DC=ad,DC=example";

/// Starts the lab whose LDAP server is the external directory.
async fn start_directory() -> Lab {
    let fixture = Fixture::parse(DIRECTORY_FIXTURE, "directory fixture").expect("fixture parses");
    Lab::start(LabConfig::new(fixture))
        .await
        .expect("directory lab starts")
}

/// Describes the directory lab's LDAPS endpoint as an external directory.
fn external(directory: &Lab) -> ExternalDirectory {
    ExternalDirectory::new(
        directory.endpoints().ldaps.to_string(),
        "Administrator@ad.example",
        directory
            .secrets()
            .get("Administrator.password")
            .expect("administrator password"),
        directory.ca_pem(),
        BASE_DN,
    )
}

/// Starts the default organization following `directory`, seeded or not.
async fn start_follower(directory: &Lab, seed: bool) -> Lab {
    let mut config = LabConfig::new(Fixture::default_org());
    config.external_directory = Some(external(directory));
    config.seed_external_directory = seed;
    Lab::start(config).await.expect("following lab starts")
}

/// Adds an enabled account without a mailbox to the directory lab, as `siuctl apply` would
/// create the service account, and returns its UPN.
fn add_account(directory: &Lab, sam: &str, password: &str) -> String {
    let upn = format!("{sam}@ad.example");
    directory
        .state()
        .write()
        .add_user(NewUser {
            sam,
            name: sam,
            upn: Some(&upn),
            mail: None,
            aliases: &[],
            mailbox: MailboxLocation::None,
            enabled: true,
            container: "OU=Service Accounts",
            password: Some(password.to_string()),
        })
        .expect("account is added");
    upn
}

/// Changes an account of the directory lab.
fn edit_account(
    directory: &Lab,
    upn: &str,
    edit: impl FnOnce(&mut siu_lab::world::directory::User),
) {
    let mut world = directory.state().write();
    let id = world.directory.user_by_upn(upn).expect("account exists").id;
    edit(world.directory.users.get_mut(&id).expect("account exists"));
}

async fn management(lab: &Lab, script: &str) -> siu_lab::control::ManagementResponse {
    siu_lab::management::execute_following_directory(lab.state(), false, script).await
}

fn client(lab: &Lab) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(lab.ca_pem().as_bytes()).expect("lab CA parses");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .http1_only()
        .build()
        .expect("client builds")
}

/// Builds a GetFolder request for the Sent Items of `mailbox`, through impersonation.
fn get_sent_items(mailbox: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header><t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{mailbox}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="sentitems"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>"#
    )
}

/// Opens alice's Sent Items as `user` with Basic and returns the status and body.
async fn open_sent_items(lab: &Lab, user: &str, password: &str) -> (u16, String) {
    let response = client(lab)
        .post(lab.endpoints().ews.clone())
        .header("Content-Type", "text/xml; charset=utf-8")
        .basic_auth(user, Some(password))
        .body(get_sent_items("alice@lab.example"))
        .send()
        .await
        .expect("EWS answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body reads"))
}

#[tokio::test]
async fn seeding_writes_the_fixture_once() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, true).await;

    let report = follower.seed_report().expect("the lab seeded at start");
    let users = follower.state().read().directory.users.len();
    assert_eq!(report.users_added, users - 1, "{report}");
    assert_eq!(report.skipped.len(), 1, "{:?}", report.skipped);
    assert!(
        report.skipped[0].starts_with("CN=Administrator,"),
        "the directory's own Administrator stays: {:?}",
        report.skipped
    );
    assert_eq!(report.groups_added, 6, "{report}");

    let root = format!("OU={SEED_OU},{BASE_DN}");
    {
        let world = directory.state().read();
        let alice = world
            .directory
            .user_by_upn("alice@lab.example")
            .expect("alice is seeded");
        assert_eq!(alice.dn, format!("CN=Alice Archer,CN=Users,{root}"));
        assert_eq!(alice.mail.as_deref(), Some("alice@lab.example"));
        assert_eq!(alice.title.as_deref(), Some("Sales Manager"));
        let heidi = world
            .directory
            .user_by_upn("hhill@lab.example")
            .expect("hhill is seeded");
        assert_eq!(heidi.mail.as_deref(), Some("heidi.hill@lab.example"));
        let frank = world
            .directory
            .user_by_upn("frank@lab.example")
            .expect("frank is seeded");
        assert!(!frank.enabled(), "frank stays disabled");
        let all_staff = world.directory.by_sam("All-Staff").expect("All-Staff");
        let members = world.directory.transitive_members(all_staff);
        let users = members
            .iter()
            .filter(|id| world.directory.users.contains_key(id))
            .count();
        assert!(users > 1600, "All-Staff has {users} users");
    }

    // The second run reads the large group through ranges and finds nothing to change.
    let client = siu_lab::external::ExternalClient::new(external(&directory)).expect("client");
    let world = follower.state().read().clone();
    let again = siu_lab::external::seed(&client, &world)
        .await
        .expect("second seeding succeeds");
    assert_eq!(again.changes(), 0, "{again}");
    assert_eq!(again.unchanged, report.users_added + report.groups_added);
}

#[tokio::test]
async fn seeded_password_works_for_basic() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, true).await;
    let password = follower
        .secrets()
        .get("svc-siu.password")
        .expect("svc-siu password")
        .to_string();

    let granted = management(
        &follower,
        "New-ManagementRoleAssignment -Role ApplicationImpersonation -User svc-siu@lab.example",
    )
    .await;
    assert_eq!(granted.exit_code, 0, "{}", granted.stderr);
    let (status, body) = open_sent_items(&follower, "svc-siu@lab.example", &password).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn directory_account_opens_a_mailbox() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, false).await;
    let upn = add_account(&directory, "siu-agent", "Agent-Pass-42");
    assert!(
        follower
            .state()
            .read()
            .directory
            .user_by_upn(&upn)
            .is_none(),
        "the following lab does not know the account yet"
    );

    // 1. The management shell finds the account in the directory and grants it impersonation.
    let granted = management(
        &follower,
        &format!("New-ManagementRoleAssignment -Role ApplicationImpersonation -User {upn}"),
    )
    .await;
    assert_eq!(granted.exit_code, 0, "{}", granted.stderr);
    {
        let world = follower.state().read();
        let user = world
            .directory
            .user_by_upn(&upn)
            .expect("the grant added the account");
        assert!(user.password.is_none(), "the lab keeps no password for it");
        assert!(!world.exchange.mailboxes.contains_key(&user.id));
    }
    let listed = management(
        &follower,
        &format!("Get-ManagementRoleAssignment -RoleAssignee {upn} | ConvertTo-Json"),
    )
    .await;
    assert_eq!(listed.exit_code, 0, "{}", listed.stderr);
    assert!(
        listed
            .stdout
            .contains("\"RoleAssignee\": \"ad.example/Service Accounts/siu-agent\""),
        "{}",
        listed.stdout
    );

    // 2. EWS checks the password with a bind and lets the account impersonate alice.
    let (status, body) = open_sent_items(&follower, &upn, "Agent-Pass-42").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ResponseClass=\"Success\""), "{body}");
}

#[tokio::test]
async fn basic_logon_is_remembered() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, false).await;
    let upn = add_account(&directory, "siu-agent", "Agent-Pass-42");
    let binds = || directory.journal().count(Service::Ldap, "bind");
    let granted = management(
        &follower,
        &format!("New-ManagementRoleAssignment -Role ApplicationImpersonation -User {upn}"),
    )
    .await;
    assert_eq!(granted.exit_code, 0, "{}", granted.stderr);

    let (status, _) = open_sent_items(&follower, &upn, "Agent-Pass-42").await;
    assert_eq!(status, 200);
    let after_first = binds();
    let (status, _) = open_sent_items(&follower, &upn, "Agent-Pass-42").await;
    assert_eq!(status, 200);
    assert_eq!(binds(), after_first, "the second logon binds nowhere");

    let (status, _) = open_sent_items(&follower, &upn, "Wrong-Pass-1").await;
    assert_eq!(status, 401);
    assert!(binds() > after_first, "another password binds again");
}

#[tokio::test]
async fn failed_logons_return_401() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, false).await;
    let wrong = add_account(&directory, "siu-wrong", "Right-Pass-1");
    let disabled = add_account(&directory, "siu-disabled", "Right-Pass-1");
    let must_change = add_account(&directory, "siu-change", "Right-Pass-1");
    edit_account(&directory, &disabled, |user| {
        user.uac |= uac::ACCOUNT_DISABLE
    });
    edit_account(&directory, &must_change, |user| user.pwd_last_set = 0);

    for (user, password, case) in [
        (wrong.as_str(), "Wrong-Pass-1", "wrong password"),
        (disabled.as_str(), "Right-Pass-1", "disabled account"),
        (must_change.as_str(), "Right-Pass-1", "password must change"),
        ("nobody@ad.example", "Right-Pass-1", "unknown account"),
        (wrong.as_str(), "", "empty password"),
    ] {
        let (status, body) = open_sent_items(&follower, user, password).await;
        assert_eq!(status, 401, "{case}: {body}");
    }
}

#[tokio::test]
async fn ntlm_is_refused_with_the_reason() {
    let directory = start_directory().await;
    let follower = start_follower(&directory, false).await;
    // An NTLM NEGOTIATE message: signature, type 1, flags.
    let negotiate = "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAKAGFKAAAADw==";

    let response = client(&follower)
        .post(follower.endpoints().ews.clone())
        .header("Authorization", format!("NTLM {negotiate}"))
        .body(get_sent_items("alice@lab.example"))
        .send()
        .await
        .expect("EWS answers");
    assert_eq!(response.status().as_u16(), 401);
    let offered: Vec<String> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().expect("ASCII header").to_string())
        .collect();
    assert_eq!(offered.len(), 1, "{offered:?}");
    assert!(offered[0].starts_with("Basic realm="), "{offered:?}");
    let body = response.text().await.expect("body reads");
    assert!(body.contains("NTLM is not available"), "{body}");
    assert!(body.contains("auth: basic"), "{body}");
}

#[tokio::test]
async fn unreachable_directory_rejects_logons() {
    // A port that was free a moment ago, so that connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let directory = start_directory().await;
    let mut settings = external(&directory);
    settings.url = format!("ldaps://127.0.0.1:{port}");
    let mut config = LabConfig::new(Fixture::default_org());
    config.external_directory = Some(settings);
    let follower = Lab::start(config)
        .await
        .expect("lab starts without seeding");
    let password = follower
        .secrets()
        .get("svc-siu.password")
        .expect("svc-siu password")
        .to_string();

    let (status, body) = open_sent_items(&follower, "svc-siu@lab.example", &password).await;
    assert_eq!(status, 401, "{body}");
    let granted = management(
        &follower,
        "New-ManagementRoleAssignment -Role ApplicationImpersonation -User agent@ad.example",
    )
    .await;
    assert_eq!(granted.exit_code, 1);
    assert!(
        granted.stderr.contains("couldn't be found"),
        "{}",
        granted.stderr
    );
}

#[tokio::test]
async fn lab_directory_has_the_external_spec() {
    let directory = start_directory().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = LabConfig::new(Fixture::default_org());
    config.dir = Some(dir.path().to_path_buf());
    config.external_directory = Some(external(&directory));
    let _follower = Lab::start(config).await.expect("lab starts");

    let spec = std::fs::read_to_string(dir.path().join("specs/onprem-external.yaml"))
        .expect("the external spec exists");
    for expected in [
        "auth: basic",
        &format!("url: \"{}\"", directory.endpoints().ldaps),
        "baseDn: \"DC=ad,DC=example\"",
        "bindUser: \"Administrator@ad.example\"",
        "bindPassword: { fromFile: ../secrets/external-directory.password }",
        "caFile: ../external-directory-ca.pem",
        "upn: siu-agent@ad.example",
        "container: OU=Service Accounts,OU=siu-lab,DC=ad,DC=example",
    ] {
        assert!(spec.contains(expected), "{expected} in:\n{spec}");
    }
    let password = std::fs::read_to_string(dir.path().join("secrets/external-directory.password"))
        .expect("the bind password file exists");
    assert_eq!(
        password.trim_end(),
        directory
            .secrets()
            .get("Administrator.password")
            .expect("password")
    );
    let ca = std::fs::read_to_string(dir.path().join("external-directory-ca.pem"))
        .expect("the CA file exists");
    assert_eq!(ca, directory.ca_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets/external-directory.password"))
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the password file is private: {mode:o}");
    }
}
