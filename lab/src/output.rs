//! The lab directory: what `siuctl lab up --dir DIR` writes and how a later start resumes it.
//!
//! ```text
//! DIR/lab.env            shell-sourceable endpoints, CA path and spool path
//! DIR/lab.json           the same for programs, with the control API
//! DIR/control.token      bearer token of the control API (0600)
//! DIR/ca.pem, ca.key     the lab CA (the key is 0600)
//! DIR/secrets/           generated passwords, client secrets and certificates (0600)
//! DIR/specs/*.yaml       specs wired to this lab
//! DIR/external-directory-ca.pem  the CA of the external directory, when there is one
//! DIR/spool/{tmp,new}    the update loop's spool
//! DIR/state.json         the world, saved on stop and resumed on the next start (0600)
//! DIR/lab.lock           locked by the running lab, so that a second one cannot share DIR
//! ```
//!
//! The directory's path must be valid UTF-8, because `lab.env`, `lab.json` and the specs name
//! it as text. Every file is replaced atomically through a temporary `.NAME.PID.tmp`, so a lab
//! killed at any point leaves each file either old or new, never half-written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::external::ExternalDirectory;
use crate::files::{write_private, write_public};
use crate::{Endpoints, LabError, LabState, Secrets, World};

/// The machine-readable description of a running lab, `DIR/lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabInfo {
    /// Where each endpoint listens.
    pub endpoints: Endpoints,
    /// The CA certificate file.
    pub ca_file: PathBuf,
    /// The control token file.
    pub control_token_file: PathBuf,
    /// The spool directory.
    pub spool_dir: PathBuf,
    /// Tenant ID.
    pub tenant_id: String,
    /// The mail domain.
    pub domain: String,
    /// Process ID of the lab.
    pub pid: u32,
}

impl LabInfo {
    /// Reads `DIR/lab.json`.
    pub fn load(dir: &Path) -> Result<Self, LabError> {
        let path = dir.join("lab.json");
        let text = std::fs::read_to_string(&path).map_err(|e| LabError::NotRunning {
            dir: dir.to_path_buf(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        serde_json::from_str(&text).map_err(|e| LabError::NotRunning {
            dir: dir.to_path_buf(),
            reason: format!("{} is not a lab description: {e}", path.display()),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    world: World,
    secrets: std::collections::BTreeMap<String, String>,
}

/// Claims `dir` for one lab: checks that its path is UTF-8, creates it, and locks
/// `DIR/lab.lock` until the returned file is closed. The operating system releases the lock
/// when the process ends, so a lab killed with SIGKILL does not keep its directory.
pub(crate) fn claim_dir(dir: &Path) -> Result<std::fs::File, LabError> {
    if dir.to_str().is_none() {
        return Err(LabError::InvalidDir {
            dir: dir.to_path_buf(),
            reason: "the path is not valid UTF-8, so lab.env and the specs cannot name it; \
                     pick a UTF-8 path"
                .into(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    let path = dir.join("lab.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| LabError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LabError::DirInUse {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(LabError::io(&path, e)),
    }
}

/// Loads `DIR/state.json` when it exists.
pub(crate) fn load_state(dir: &Path) -> Result<Option<(World, Secrets)>, LabError> {
    let path = dir.join("state.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io(&path, e)),
    };
    let saved: SavedState = serde_json::from_str(&text).map_err(|e| LabError::Fixture {
        origin: path.display().to_string(),
        message: format!("the saved lab state does not load ({e}); remove it to start afresh"),
    })?;
    let mut world = saved.world;
    world.reindex();
    tracing::info!(path = %path.display(), "resuming the saved lab state");
    Ok(Some((
        world,
        Secrets {
            files: saved.secrets,
        },
    )))
}

/// Reads the world that a lab saved in `DIR/state.json`, for tools that work on a stopped
/// lab's world, such as seeding an external directory.
pub fn load_world(dir: &Path) -> Result<World, LabError> {
    match load_state(dir)? {
        Some((world, _)) => Ok(world),
        None => Err(LabError::NotRunning {
            dir: dir.to_path_buf(),
            reason: format!("{} does not exist", dir.join("state.json").display()),
        }),
    }
}

/// Writes `DIR/state.json`.
pub(crate) fn save_state(state: &LabState, dir: &Path) -> Result<(), LabError> {
    let saved = SavedState {
        world: state.read().clone(),
        secrets: state.secrets.files.clone(),
    };
    let text = serde_json::to_vec(&saved).expect("the world serializes");
    write_private(&dir.join("state.json"), &text)
}

/// Writes the whole lab directory for a started lab.
pub(crate) fn write_dir(
    state: &LabState,
    dir: &Path,
    siuctl: Option<&Path>,
) -> Result<(), LabError> {
    let endpoints = state.endpoints();
    let (domain, tenant_id) = {
        let world = state.read();
        (world.directory.domain.clone(), world.tenant.id.to_string())
    };
    for sub in ["secrets", "specs", "spool/tmp", "spool/new", "state"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|e| LabError::io(&path, e))?;
    }
    for (name, contents) in &state.secrets.files {
        write_private(&dir.join("secrets").join(name), contents.as_bytes())?;
    }
    write_public(&dir.join("ca.pem"), state.tls.ca_pem.as_bytes())?;
    write_private(&dir.join("control.token"), state.control_token.as_bytes())?;

    let info = LabInfo {
        endpoints: endpoints.clone(),
        ca_file: dir.join("ca.pem"),
        control_token_file: dir.join("control.token"),
        spool_dir: dir.join("spool"),
        tenant_id: tenant_id.clone(),
        domain: domain.clone(),
        pid: std::process::id(),
    };
    let json = serde_json::to_vec_pretty(&info).expect("lab info serializes");
    write_public(&dir.join("lab.json"), &json)?;
    write_public(&dir.join("lab.env"), lab_env(&info, dir).as_bytes())?;

    let siuctl = siuctl
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("siuctl"));
    let specs = SpecContext {
        endpoints,
        dir,
        siuctl: &siuctl,
        domain: &domain,
        tenant_id: &tenant_id,
        manual_client_id: state
            .secrets
            .get("manual-app.client-id")
            .unwrap_or_default(),
        provisioner_client_id: state
            .secrets
            .get("provisioner.client-id")
            .unwrap_or_default(),
    };
    write_public(
        &dir.join("specs/onprem.yaml"),
        specs.on_premises().as_bytes(),
    )?;
    write_public(
        &dir.join("specs/hybrid.yaml"),
        specs.hybrid_automatic().as_bytes(),
    )?;
    write_public(
        &dir.join("specs/hybrid-manual.yaml"),
        specs.hybrid_manual().as_bytes(),
    )?;
    if let Some(client) = &state.external {
        let external = client.directory();
        write_private(
            &dir.join("secrets").join(EXTERNAL_PASSWORD_FILE),
            format!("{}\n", external.bind_password).as_bytes(),
        )?;
        write_public(&dir.join(EXTERNAL_CA_FILE), external.ca_pem.as_bytes())?;
        write_public(
            &dir.join("specs/onprem-external.yaml"),
            specs.on_premises_external(external).as_bytes(),
        )?;
    }
    Ok(())
}

/// The bind password of the external directory, below `DIR/secrets/`.
const EXTERNAL_PASSWORD_FILE: &str = "external-directory.password";
/// The CA certificates of the external directory, in `DIR`.
const EXTERNAL_CA_FILE: &str = "external-directory-ca.pem";

fn lab_env(info: &LabInfo, dir: &Path) -> String {
    let endpoints = &info.endpoints;
    let exchange = endpoints.exchange_addr;
    let resolve = format!(
        "autodiscover.{d}:{exchange},{d}:{exchange},mail.{d}:{exchange}",
        d = info.domain
    );
    let pairs: [(&str, String); 14] = [
        ("SIU_LAB_DIR", dir.display().to_string()),
        ("SIU_LAB_CA", info.ca_file.display().to_string()),
        (
            "SIU_LAB_AUTHORITY_HOST",
            endpoints.authority_host.to_string(),
        ),
        ("SIU_LAB_GRAPH_URL", endpoints.graph.to_string()),
        ("SIU_LAB_EWS_URL", endpoints.ews.to_string()),
        (
            "SIU_LAB_EXCHANGE_ONLINE_EWS_URL",
            endpoints.exchange_online_ews.to_string(),
        ),
        ("SIU_LAB_LDAP_URL", endpoints.ldap.to_string()),
        ("SIU_LAB_LDAPS_URL", endpoints.ldaps.to_string()),
        ("SIU_LAB_CONTROL_URL", endpoints.control.to_string()),
        ("SIU_LAB_SPOOL", info.spool_dir.display().to_string()),
        ("SIU_LAB_TENANT_ID", info.tenant_id.clone()),
        ("SIU_LAB_DOMAIN", info.domain.clone()),
        ("SIU_LAB_RESOLVE", resolve),
        ("SIU_LAB_PID", info.pid.to_string()),
    ];
    let mut text = String::from(
        "# Endpoints of a running siuctl lab. Load them with: . ./lab.env\n\
         # SIU_LAB_RESOLVE lists --resolve HOST:ADDR values for Autodiscover by host name.\n",
    );
    for (name, value) in pairs {
        let _ = writeln!(text, "export {name}={}", shell_quote(&value));
    }
    text
}

/// Quotes a value for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Quotes a value as a YAML double-quoted scalar.
fn yaml_quote(value: &str) -> String {
    serde_json::to_string(value).expect("strings serialize")
}

struct SpecContext<'a> {
    endpoints: &'a Endpoints,
    dir: &'a Path,
    siuctl: &'a Path,
    domain: &'a str,
    tenant_id: &'a str,
    manual_client_id: &'a str,
    provisioner_client_id: &'a str,
}

impl SpecContext<'_> {
    fn shell(&self, online: bool) -> String {
        let mut parts = vec![
            yaml_quote(&self.siuctl.display().to_string()),
            "lab".into(),
            "exchange-shell".into(),
            "--dir".into(),
            yaml_quote(&self.dir.display().to_string()),
        ];
        if online {
            parts.push("--online".into());
        }
        format!("[{}]", parts.join(", "))
    }

    fn on_premises_block(&self) -> String {
        let e = self.endpoints;
        format!(
            "onPremises:
  exchange:
    connection: manual
    server: 127.0.0.1
    ewsUrl: {ews}
    auth: ntlm
    caFile: ../ca.pem
    managementShell:
      command: {shell}
  directory:
    url: {ldaps}
    baseDn: {base_dn}
    bindUser: Administrator@{domain}
    bindPassword: {{ fromFile: ../secrets/Administrator.password }}
    caFile: ../ca.pem
",
            ews = e.ews,
            shell = self.shell(false),
            ldaps = e.ldaps,
            base_dn = base_dn(self.domain),
            domain = self.domain,
        )
    }

    fn common_tail(&self, name: &str) -> String {
        format!(
            "scope:
  mode: all

options:
  enabled: true
  keepOriginal: false
  updateAllSplitCopies: false
  delay: 0s
  originalWaitTimeout: 2m

reconcile:
  interval: 10m

updateLoop:
  spoolDir: ../spool
  stateDir: ../state/{name}
  concurrency: 8
  perMailboxConcurrency: 1
"
        )
    }

    fn cloud_endpoints(&self) -> String {
        let e = self.endpoints;
        format!(
            "  exchangeOnlineShell:
    command: {shell}
  endpoints:
    authorityHost: {authority}
    graph: {graph}
    exchangeOnlineEws: {exo}
    caFile: ../ca.pem
",
            shell = self.shell(true),
            authority = e.authority_host,
            graph = e.graph,
            exo = e.exchange_online_ews,
        )
    }

    fn on_premises(&self) -> String {
        format!(
            "# yaml-language-server: $schema=siu-v1.schema.json
# Written by `siuctl lab up`: an on-premises organization wired to this lab.
# The controller creates its own service account and grants it impersonation.
apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: lab-onprem
environment: onPremises

{on_premises}
account:
  upn: siu-agent@{domain}
  create: true
  password: {{ fromFile: ../secrets/siu-agent.password }}
  container: OU=Service Accounts,{base_dn}
  impersonation: grant

{tail}",
            on_premises = self.on_premises_block(),
            domain = self.domain,
            base_dn = base_dn(self.domain),
            tail = self.common_tail("onprem"),
        )
    }

    /// Returns the spec of an on-premises organization whose directory is the external one.
    /// The controller creates its account there over LDAPS and signs in to the lab's EWS with
    /// Basic, which the lab checks with a bind against the same directory.
    fn on_premises_external(&self, external: &ExternalDirectory) -> String {
        let domain = external.dns_domain();
        format!(
            "# yaml-language-server: $schema=siu-v1.schema.json
# Written by `siuctl lab up --external-directory-env`: an on-premises organization whose
# Exchange is this lab and whose Active Directory is {url_text}.
# The lab checks EWS passwords with LDAP binds against that directory, which cannot verify
# NTLM, so EWS uses Basic.
apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: lab-onprem-external
environment: onPremises

onPremises:
  exchange:
    connection: manual
    server: 127.0.0.1
    ewsUrl: {ews}
    auth: basic
    caFile: ../ca.pem
    managementShell:
      command: {shell}
  directory:
    url: {url}
    baseDn: {base_dn}
    bindUser: {bind_user}
    bindPassword: {{ fromFile: ../secrets/{EXTERNAL_PASSWORD_FILE} }}
    caFile: ../{EXTERNAL_CA_FILE}

account:
  upn: siu-agent@{domain}
  create: true
  password: {{ fromFile: ../secrets/siu-agent-external.password }}
  container: OU=Service Accounts,{seed_root}
  impersonation: grant

{tail}",
            url = yaml_quote(&external.url),
            url_text = external.url,
            ews = self.endpoints.ews,
            shell = self.shell(false),
            base_dn = yaml_quote(&external.base_dn),
            bind_user = yaml_quote(&external.bind_user),
            seed_root = external.seed_root(),
            tail = self.common_tail("onprem-external"),
        )
    }

    fn hybrid_automatic(&self) -> String {
        format!(
            "# yaml-language-server: $schema=siu-v1.schema.json
# Written by `siuctl lab up`: a hybrid organization wired to this lab. The controller
# registers its Entra application with the provisioner's rights and a new certificate.
apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: lab-hybrid
environment: hybrid

{on_premises}
account:
  upn: svc-siu@{domain}
  create: false
  password: {{ fromFile: ../secrets/svc-siu.password }}
  impersonation: grant

appRegistration:
  mode: automatic
  tenantId: {tenant}
  displayName: Sent Items Update (lab)
  credential:
    certificate:
      keyFile: ../secrets/siu-app.pem
  provisioner:
    clientId: {provisioner}
    credential:
      clientSecret: {{ fromFile: ../secrets/provisioner.secret }}
  mailAccess: auto
{cloud}
{tail}",
            on_premises = self.on_premises_block(),
            domain = self.domain,
            tenant = self.tenant_id,
            provisioner = self.provisioner_client_id,
            cloud = self.cloud_endpoints(),
            tail = self.common_tail("hybrid"),
        )
    }

    fn hybrid_manual(&self) -> String {
        format!(
            "# yaml-language-server: $schema=siu-v1.schema.json
# Written by `siuctl lab up`: a hybrid organization whose Entra application an
# administrator registered by hand. Fill in the thumbprint that `siuctl lab up` printed
# for secrets/manual-app.pem, or read it with:
#   openssl x509 -in ../secrets/manual-app.pem -noout -fingerprint -sha1
apiVersion: siu/v1
kind: SentItemsUpdate
metadata:
  name: lab-hybrid-manual
environment: hybrid

{on_premises}
account:
  upn: svc-siu@{domain}
  create: false
  password: {{ fromFile: ../secrets/svc-siu.password }}
  impersonation: grant

appRegistration:
  mode: manual
  tenantId: {tenant}
  clientId: {client}
  credential:
    certificate:
      thumbprint: \"{thumbprint}\"
      keyFile: ../secrets/manual-app.pem
  mailAccess: auto
{cloud}
{tail}",
            on_premises = self.on_premises_block(),
            domain = self.domain,
            tenant = self.tenant_id,
            client = self.manual_client_id,
            thumbprint = self.manual_thumbprint(),
            cloud = self.cloud_endpoints(),
            tail = self.common_tail("hybrid-manual"),
        )
    }

    fn manual_thumbprint(&self) -> String {
        let path = self.dir.join("secrets/manual-app.pem");
        let Ok(pem) = std::fs::read(&path) else {
            return String::new();
        };
        let certificate = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
            .filter_map(Result::ok)
            .find_map(|(kind, der)| {
                (kind == rustls_pki_types::pem::SectionKind::Certificate).then_some(der)
            });
        certificate
            .map(|der| {
                use sha1::Digest;
                sha1::Sha1::digest(&der)
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn base_dn(domain: &str) -> String {
    domain
        .split('.')
        .map(|label| format!("DC={label}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
