//! The lab with Samba AD as its directory, as the Samba variant of the end-to-end path runs
//! it: the lab seeds its organization into Samba, an account created in Samba as
//! `siuctl apply` creates it gets ApplicationImpersonation through the management stand-in
//! (`siuctl lab exchange-shell`), and opens a seeded mailbox over EWS with Basic.
//!
//! The Samba checks run on the Samba that the directory checks start when `SIU_SAMBA=1` is
//! set, and skip with a message otherwise. One lab follows Samba for the whole test binary,
//! because seeding writes the lab's generated passwords into Samba and a second lab would
//! overwrite them. The generated spec is checked in every run, with a second lab's LDAP
//! server as the directory.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use siu_lab::LabState;
use siu_lab::external::{ExternalClient, ExternalDirectory, SeedReport};
use siuctl::http::{CaMode, HttpSettings};
use siuctl::providers::directory::{CreatedUser, DirectoryClient, NewUser};
use siuctl::providers::exchange::ews::{EwsAuth, EwsClient, EwsClientOptions, EwsError, Secret};
use siuctl::providers::exchange::management::{ManagementShell, ShellCommand};

use crate::directory::{DirectoryTarget, samba_target};

/// Prints a line to the process's standard error, past the harness's capture.
macro_rules! report {
    ($($argument:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}

/// A seeded mailbox owner on the lab's on-premises server.
const MAILBOX: &str = "alice@lab.example";

/// The lab that follows Samba.
struct FollowingLab {
    state: Arc<LabState>,
    /// The lab directory, for `siuctl lab exchange-shell --dir`.
    dir: PathBuf,
    ews: url::Url,
    ca_file: PathBuf,
    /// What seeding changed at start.
    seed_report: SeedReport,
    samba: &'static DirectoryTarget,
}

/// Describes Samba as the lab's external directory.
fn external_directory(target: &DirectoryTarget) -> ExternalDirectory {
    let ca_pem = std::fs::read_to_string(&target.ca_file).unwrap_or_else(|error| {
        panic!(
            "reading {} should succeed: {error}",
            target.ca_file.display()
        )
    });
    ExternalDirectory::new(
        target.ldaps_url.clone(),
        target.admin_upn.clone(),
        target.admin_password.expose(),
        ca_pem,
        target.base_dn.clone(),
    )
}

/// Starts the lab that follows Samba on a thread of its own, whose runtime keeps serving for
/// the rest of the test binary. Returns `None` when the Samba checks are skipped.
fn following_lab() -> Option<&'static FollowingLab> {
    static LAB: OnceLock<Option<FollowingLab>> = OnceLock::new();
    LAB.get_or_init(|| {
        let Some(samba) = samba_target() else {
            report!("skipping the lab-with-Samba checks: set SIU_SAMBA=1 (as root) to run them");
            return None;
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime should start");
            runtime.block_on(async move {
                let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                    .join(format!("external-directory-lab-{}", std::process::id()));
                let mut config = siu_lab::LabConfig::new(siu_lab::Fixture::default_org());
                config.dir = Some(dir.clone());
                config.siuctl = Some(PathBuf::from(env!("CARGO_BIN_EXE_siuctl")));
                config.external_directory = Some(external_directory(samba));
                config.seed_external_directory = true;
                let lab = siu_lab::Lab::start(config)
                    .await
                    .expect("the lab should start and seed Samba");
                let seed_report = lab.seed_report().cloned().expect("the lab seeded Samba");
                report!("samba: the lab seeded its organization: {seed_report}");
                let following = FollowingLab {
                    state: lab.state().clone(),
                    ews: lab.endpoints().ews.clone(),
                    ca_file: dir.join("ca.pem"),
                    dir,
                    seed_report,
                    samba,
                };
                sender
                    .send(following)
                    .expect("the test thread waits for the lab");
                // The lab serves as long as this runtime runs: until the test binary exits.
                std::future::pending::<()>().await;
                drop(lab);
            });
        });
        Some(
            receiver
                .recv()
                .expect("the lab following Samba should start (see the panic above)"),
        )
    })
    .as_ref()
}

/// Connects to Samba as its administrator over LDAPS, as `siuctl apply` does.
async fn samba_admin(lab: &FollowingLab) -> DirectoryClient {
    lab.samba.admin_over_ldaps().await
}

/// Creates an enabled account in the seeded `OU=Service Accounts`, as `siuctl apply` creates
/// the service account, with a name of its own for each run.
async fn create_account(lab: &FollowingLab, prefix: &str) -> CreatedUser {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let upn = format!("{prefix}-{}@{}", &suffix[..8], lab.samba.dns_domain);
    let container = format!("OU=Service Accounts,OU=siu-lab,{}", lab.samba.base_dn);
    samba_admin(lab)
        .await
        .create_user(&NewUser::new(upn, container))
        .await
        .expect("creating the account in Samba should succeed")
}

async fn delete_account(lab: &FollowingLab, account: &CreatedUser) {
    if let Err(error) = samba_admin(lab).await.delete(&account.dn).await {
        report!("samba: deleting {} failed: {error}", account.dn);
    }
}

/// Sets `userAccountControl` or `pwdLastSet` of an account in Samba.
async fn replace_attribute(lab: &FollowingLab, dn: &str, attribute: &str, value: &str) {
    let ca = std::fs::read(&lab.samba.ca_file).expect("the Samba CA should be readable");
    let (connection, mut ldap) = ldap3::LdapConnAsync::with_settings(
        ldap3::LdapConnSettings::new().set_config(Arc::new(tls_config(&ca))),
        &lab.samba.ldaps_url,
    )
    .await
    .expect("the LDAPS connection should open");
    ldap3::drive!(connection);
    ldap.simple_bind(&lab.samba.admin_upn, lab.samba.admin_password.expose())
        .await
        .expect("the bind request should be sent")
        .success()
        .expect("the admin bind should succeed");
    ldap.modify(
        dn,
        vec![ldap3::Mod::Replace(attribute, HashSet::from([value]))],
    )
    .await
    .expect("the modify request should be sent")
    .success()
    .unwrap_or_else(|error| panic!("setting {attribute} of {dn} should succeed: {error}"));
}

fn tls_config(ca_pem: &[u8]) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(certificate.expect("the Samba CA should parse"))
            .expect("the Samba CA should load");
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions should be available")
    .with_root_certificates(roots)
    .with_no_client_auth()
}

/// Builds an EWS client of the lab's on-premises server that signs in with Basic.
fn ews(lab: &FollowingLab, username: &str, password: &str) -> EwsClient {
    let options = EwsClientOptions {
        http: HttpSettings {
            ca_file: Some(lab.ca_file.clone()),
            ca_mode: CaMode::ReplaceSystemRoots,
            ..HttpSettings::default()
        },
        ..EwsClientOptions::default()
    };
    let auth = EwsAuth::Basic {
        username: username.to_owned(),
        password: Secret::new(password),
    };
    EwsClient::new(lab.ews.clone(), auth, &options).expect("the EWS client should build")
}

/// Builds the management shell as a spec for this lab configures it.
fn management_shell(lab: &FollowingLab) -> ManagementShell {
    ManagementShell::new(ShellCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_siuctl")),
        args: vec![
            "lab".to_owned(),
            "exchange-shell".to_owned(),
            "--dir".to_owned(),
            lab.dir.display().to_string(),
        ],
        working_dir: None,
        timeout: Duration::from_secs(60),
    })
}

#[tokio::test]
async fn seeding_samba_again_changes_nothing() {
    let Some(lab) = following_lab() else { return };
    assert_eq!(
        lab.seed_report.skipped.len(),
        1,
        "only the fixture's Administrator collides with Samba's: {:?}",
        lab.seed_report.skipped
    );

    let client = ExternalClient::new(external_directory(lab.samba)).expect("the client builds");
    let world = lab.state.read().clone();
    let again = siu_lab::external::seed(&client, &world)
        .await
        .expect("seeding again should succeed");
    report!("samba: seeding again: {again}");
    assert_eq!(again.changes(), 0, "{again}");

    let directory = samba_admin(lab).await;
    let alice = directory
        .find_user_by_upn(MAILBOX)
        .await
        .expect("the search should succeed")
        .expect("alice is seeded");
    assert_eq!(alice.mail.as_deref(), Some(MAILBOX));
    assert!(alice.status.is_usable(), "{:?}", alice.status);
    let frank = directory
        .find_user_by_upn("frank@lab.example")
        .await
        .expect("the search should succeed")
        .expect("frank is seeded");
    assert!(
        !frank.status.is_usable(),
        "frank is disabled: {:?}",
        frank.status
    );
}

#[tokio::test]
async fn samba_account_opens_a_seeded_mailbox() {
    let Some(lab) = following_lab() else { return };
    let account = create_account(lab, "siu-e2e").await;
    let upn = account.user_principal_name.clone();

    // 1. The management stand-in finds the new account in Samba and grants impersonation.
    let shell = management_shell(lab);
    let name = format!("ApplicationImpersonation-{}", account.sam_account_name);
    shell
        .grant_impersonation(&name, &upn, None)
        .await
        .expect("granting impersonation should succeed");
    let assignments = shell
        .impersonation_assignments(&upn)
        .await
        .expect("listing the assignments should succeed");
    assert_eq!(assignments.len(), 1, "{assignments:?}");

    // 2. EWS checks the password against Samba and lets the account impersonate alice.
    let folder = ews(lab, &upn, account.password.expose())
        .get_sent_items_folder(MAILBOX)
        .await;
    let down_level = format!("{}\\{}", lab.samba.netbios_domain, account.sam_account_name);
    let folder_as_down_level = ews(lab, &down_level, account.password.expose())
        .get_sent_items_folder(MAILBOX)
        .await;
    delete_account(lab, &account).await;
    let folder = folder.expect("opening alice's Sent Items should succeed");
    assert!(
        folder.total_count.is_some_and(|count| count > 0),
        "{folder:?}"
    );
    folder_as_down_level.expect("a DOMAIN\\user logon should work too");
}

#[tokio::test]
async fn wrong_samba_password_gets_401() {
    let Some(lab) = following_lab() else { return };
    let account = create_account(lab, "siu-wrong").await;

    let result = ews(lab, &account.user_principal_name, "Not-The-Password-1")
        .get_sent_items_folder(MAILBOX)
        .await;
    delete_account(lab, &account).await;
    assert!(
        matches!(result, Err(EwsError::Unauthorized { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn disabled_samba_account_gets_401() {
    let Some(lab) = following_lab() else { return };
    let disabled = create_account(lab, "siu-off").await;
    let must_change = create_account(lab, "siu-reset").await;
    // ACCOUNTDISABLE | NORMAL_ACCOUNT, and a password that must change at the next logon.
    replace_attribute(lab, &disabled.dn, "userAccountControl", "514").await;
    replace_attribute(lab, &must_change.dn, "pwdLastSet", "0").await;

    let disabled_result = ews(
        lab,
        &disabled.user_principal_name,
        disabled.password.expose(),
    )
    .get_sent_items_folder(MAILBOX)
    .await;
    let must_change_result = ews(
        lab,
        &must_change.user_principal_name,
        must_change.password.expose(),
    )
    .get_sent_items_folder(MAILBOX)
    .await;
    delete_account(lab, &disabled).await;
    delete_account(lab, &must_change).await;
    assert!(
        matches!(disabled_result, Err(EwsError::Unauthorized { .. })),
        "{disabled_result:?}"
    );
    assert!(
        matches!(must_change_result, Err(EwsError::Unauthorized { .. })),
        "{must_change_result:?}"
    );
}

#[tokio::test]
async fn generated_spec_validates() {
    // A second lab's LDAP server stands in for the directory, so that this runs without Samba.
    let directory = siu_lab::Lab::start(siu_lab::LabConfig::new(siu_lab::Fixture::default_org()))
        .await
        .expect("the directory lab should start");
    let settings = ExternalDirectory::new(
        directory.endpoints().ldaps.to_string(),
        "Administrator@lab.example",
        directory
            .secrets()
            .get("Administrator.password")
            .expect("the lab publishes the administrator's password"),
        directory.ca_pem(),
        "DC=lab,DC=example",
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = siu_lab::LabConfig::new(siu_lab::Fixture::default_org());
    config.dir = Some(dir.path().to_path_buf());
    config.external_directory = Some(settings);
    let _lab = siu_lab::Lab::start(config)
        .await
        .expect("the following lab should start");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_siuctl"))
        .args(["validate", "-f", "onprem-external.yaml"])
        .current_dir(dir.path().join("specs"))
        .output()
        .expect("siuctl should run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("onprem-external.yaml: valid"), "{stdout}");
}
