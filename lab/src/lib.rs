//! The lab: a loopback emulator of everything `siuctl` talks to.
//!
//! It serves an Entra token endpoint, the Microsoft Graph routes the controller uses, EWS and
//! Autodiscover of an on-premises Exchange server, EWS of Exchange Online, an Exchange
//! management shell stand-in, and an LDAP server that behaves like Active Directory, all over
//! the real protocols with TLS from a CA generated at start. Every endpoint reads and writes one
//! [`World`](world::World) built from an organization fixture, so a change made through one
//! protocol is visible through the others.
//!
//! Tests start a lab in-process with [`Lab::start`]; `siuctl lab up` starts the same lab and
//! writes a directory with `lab.env`, the CA, secrets and ready-to-use specs.

pub mod access;
pub mod control;
pub mod ews;
pub mod external;
pub mod faults;
mod files;
pub mod fixture;
pub mod graph;
pub mod journal;
pub mod ldap;
pub mod management;
mod output;
pub use output::{LabInfo, load_world};
pub mod serve;
pub mod tls;
pub mod token;
pub mod transport;
pub mod world;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use url::Url;

pub use faults::{FaultKind, FaultRule, Service};
pub use fixture::Fixture;
pub use world::{Secrets, World};

/// Errors of the lab itself (not the errors it serves to clients).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file could not be read or written.
    #[error("failed to access `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The organization fixture is invalid.
    #[error("invalid lab fixture {origin}: {message}")]
    Fixture {
        /// The fixture file or `fixture` for the compiled-in one.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A listener could not be bound.
    #[error(
        "failed to listen for {service} on {addr}: {source} (pick another port or free this one)"
    )]
    Bind {
        /// Which endpoint.
        service: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate or key generation failed.
    #[error("{0}")]
    Tls(String),
    /// The lab directory does not describe a running lab.
    #[error("no running lab in `{dir}`: {reason} (start one with `siuctl lab up --dir {dir}`)")]
    NotRunning {
        /// The lab directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// A request to a running lab's control API failed.
    #[error("the lab's control API refused the request: {0}")]
    Control(String),
    /// The external directory could not be prepared or seeded.
    #[error(transparent)]
    External(#[from] external::ExternalError),
    /// Another running lab has locked the lab directory.
    #[error(
        "another lab is running in `{dir}` (it holds `lab.lock`): stop it, or pick another directory"
    )]
    DirInUse {
        /// The lab directory.
        dir: PathBuf,
    },
    /// The lab directory cannot be used.
    #[error("invalid lab directory `{dir}`: {reason}")]
    InvalidDir {
        /// The lab directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LabError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Ports to listen on; 0 picks a free port.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    /// Entra token endpoint.
    pub token: u16,
    /// Microsoft Graph.
    pub graph: u16,
    /// On-premises Exchange: EWS and Autodiscover.
    pub exchange: u16,
    /// Exchange Online EWS.
    pub exchange_online: u16,
    /// LDAP (plain, StartTLS-capable).
    pub ldap: u16,
    /// LDAPS.
    pub ldaps: u16,
    /// The control API.
    pub control: u16,
}

/// How to start a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// The organization.
    pub fixture: Fixture,
    /// The lab directory; `None` keeps everything in memory (tests).
    pub dir: Option<PathBuf>,
    /// Ports; all ephemeral by default.
    pub ports: Ports,
    /// Serve HTTP endpoints without TLS. Only for debugging with tools that cannot trust a CA.
    pub plain_http: bool,
    /// Initial fault rules.
    pub faults: Vec<FaultRule>,
    /// How long a new application or service principal answers 404.
    pub replication_delay: Duration,
    /// Write every EWS request and response into this directory.
    pub capture_dir: Option<PathBuf>,
    /// The `siuctl` executable that generated specs call for the management shell.
    pub siuctl: Option<PathBuf>,
    /// An Active Directory that accounts live in instead of the world's own directory, as
    /// Exchange follows the domain it is installed in (see [`external`]).
    pub external_directory: Option<external::ExternalDirectory>,
    /// Write the world's users and groups into `external_directory` before serving.
    pub seed_external_directory: bool,
}

impl LabConfig {
    /// The default organization, in memory, on ephemeral ports.
    pub fn new(fixture: Fixture) -> Self {
        Self {
            fixture,
            dir: None,
            ports: Ports::default(),
            plain_http: false,
            faults: Vec::new(),
            replication_delay: Duration::ZERO,
            capture_dir: None,
            siuctl: None,
            external_directory: None,
            seed_external_directory: false,
        }
    }
}

/// Where each endpoint listens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Authority host of the token endpoint (`https://127.0.0.1:PORT/`).
    pub authority_host: Url,
    /// Graph root (`https://127.0.0.1:PORT/`); requests go to `v1.0/...` below it.
    pub graph: Url,
    /// On-premises EWS URL.
    pub ews: Url,
    /// Address of the on-premises Exchange server (EWS, Autodiscover), for `--resolve`.
    pub exchange_addr: SocketAddr,
    /// Exchange Online EWS URL.
    pub exchange_online_ews: Url,
    /// LDAP URL.
    pub ldap: Url,
    /// LDAPS URL.
    pub ldaps: Url,
    /// Control API root.
    pub control: Url,
}

/// Everything the endpoints share.
pub struct LabState {
    /// The world.
    pub world: RwLock<World>,
    /// Fault rules.
    pub faults: faults::Faults,
    /// Request counters and captured bodies.
    pub journal: journal::Journal,
    /// CA and server certificate.
    pub tls: tls::LabTls,
    /// Access token signing.
    pub tokens: access::TokenIssuer,
    /// Secrets generated for the fixture.
    pub secrets: Secrets,
    /// Endpoints, set once every listener is bound.
    pub endpoints: OnceLock<Endpoints>,
    /// The token that authorizes control API requests.
    pub control_token: String,
    /// The lab directory, when there is one.
    pub dir: Option<PathBuf>,
    /// The external directory that accounts live in, when there is one.
    pub external: Option<external::ExternalClient>,
}

impl std::fmt::Debug for LabState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LabState")
            .field("endpoints", &self.endpoints.get())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LabState {
    /// The endpoints; set before any request is served.
    pub fn endpoints(&self) -> &Endpoints {
        self.endpoints
            .get()
            .expect("endpoints are set before the lab serves requests")
    }

    /// Reads the world.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, World> {
        self.world.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the world.
    pub fn write(&self) -> std::sync::RwLockWriteGuard<'_, World> {
        self.world.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running lab. Dropping it stops every listener and releases its directory.
pub struct Lab {
    state: Arc<LabState>,
    shutdown: watch::Sender<bool>,
    seed_report: Option<external::SeedReport>,
    /// `DIR/lab.lock`, locked while the lab runs.
    _dir_lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("state", &self.state).finish()
    }
}

impl Lab {
    /// Starts a lab: builds the world, binds every endpoint on 127.0.0.1 and, with a
    /// directory, writes `lab.env`, the CA, secrets and specs into it.
    pub async fn start(config: LabConfig) -> Result<Lab, LabError> {
        // 0. The directory, before anything in it is read or written.
        let dir_lock = match config.dir.as_deref() {
            Some(dir) => Some(output::claim_dir(dir)?),
            None => None,
        };

        // 1. The world, resumed from the directory's state file when one exists.
        let (world, secrets) = match config.dir.as_deref().map(output::load_state) {
            Some(Ok(Some(resumed))) => resumed,
            Some(Err(error)) => return Err(error),
            _ => World::from_fixture(&config.fixture)?,
        };
        let tenant = world.tenant.id;

        // The external directory, seeded with the world before anything is served.
        let mut seed_report = None;
        let external = match &config.external_directory {
            Some(directory) => {
                let client = external::ExternalClient::new(directory.clone())?;
                if config.seed_external_directory {
                    seed_report = Some(external::seed(&client, &world).await?);
                }
                Some(client)
            }
            None => None,
        };

        // 2. Certificates and token keys.
        let names = config.fixture.host_names();
        let tls = match &config.dir {
            Some(dir) => tls::LabTls::load_or_generate(dir, &names)?,
            None => tls::LabTls::generate(&names)?,
        };
        let tokens = access::TokenIssuer::generate(tenant)?;
        let state = Arc::new(LabState {
            world: RwLock::new(world),
            faults: faults::Faults::new(config.faults.clone(), config.replication_delay),
            journal: journal::Journal::new(config.capture_dir.clone()),
            tls,
            tokens,
            secrets,
            endpoints: OnceLock::new(),
            control_token: world::generate_client_secret(),
            dir: config.dir.clone(),
            external,
        });

        // 3. Listeners. HTTP endpoints offer HTTP/1.1 only: NTLM cannot run over HTTP/2.
        let (shutdown, receiver) = watch::channel(false);
        let http_tls = if config.plain_http {
            tracing::warn!("serving the lab's HTTP endpoints WITHOUT TLS (--plain-http)");
            None
        } else {
            Some(state.tls.server_config(&[b"http/1.1"])?)
        };
        let scheme = if config.plain_http { "http" } else { "https" };
        let bind = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let ports = config.ports;
        let token_addr = serve::spawn(
            Service::Token,
            bind(ports.token),
            http_tls.clone(),
            token::router(state.clone()),
            receiver.clone(),
        )
        .await?;
        let graph_addr = serve::spawn(
            Service::Graph,
            bind(ports.graph),
            http_tls.clone(),
            graph::router(state.clone()),
            receiver.clone(),
        )
        .await?;
        let exchange_addr = serve::spawn(
            Service::Ews,
            bind(ports.exchange),
            http_tls.clone(),
            ews::on_premises_router(state.clone()),
            receiver.clone(),
        )
        .await?;
        let online_addr = serve::spawn(
            Service::ExchangeOnline,
            bind(ports.exchange_online),
            http_tls.clone(),
            ews::online_router(state.clone()),
            receiver.clone(),
        )
        .await?;
        let control_addr = serve::spawn(
            Service::Control,
            bind(ports.control),
            http_tls.clone(),
            control::router(state.clone()),
            receiver.clone(),
        )
        .await?;
        let ldap_tls = state.tls.server_config(&[])?;
        let (ldap_addr, ldaps_addr) = ldap::spawn(
            state.clone(),
            bind(ports.ldap),
            bind(ports.ldaps),
            ldap_tls,
            receiver.clone(),
        )
        .await?;

        let url = |text: String| Url::parse(&text).expect("lab URLs are well-formed");
        let endpoints = Endpoints {
            authority_host: url(format!("{scheme}://{token_addr}/")),
            graph: url(format!("{scheme}://{graph_addr}/")),
            ews: url(format!("{scheme}://{exchange_addr}/EWS/Exchange.asmx")),
            exchange_addr,
            exchange_online_ews: url(format!("{scheme}://{online_addr}/EWS/Exchange.asmx")),
            ldap: url(format!("ldap://{ldap_addr}")),
            ldaps: url(format!("ldaps://{ldaps_addr}")),
            control: url(format!("{scheme}://{control_addr}/")),
        };
        state
            .endpoints
            .set(endpoints)
            .expect("endpoints are set once");

        // 4. The lab directory.
        if let Some(dir) = &config.dir {
            output::write_dir(&state, dir, config.siuctl.as_deref())?;
        }
        tracing::info!(control = %state.endpoints().control, "lab started");
        Ok(Lab {
            state,
            shutdown,
            seed_report,
            _dir_lock: dir_lock,
        })
    }

    /// The shared state, for tests that inspect or change the world directly.
    pub fn state(&self) -> &Arc<LabState> {
        &self.state
    }

    /// Where each endpoint listens.
    pub fn endpoints(&self) -> &Endpoints {
        self.state.endpoints()
    }

    /// The CA certificate in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.state.tls.ca_pem
    }

    /// The secrets generated for the fixture.
    pub fn secrets(&self) -> &Secrets {
        &self.state.secrets
    }

    /// Returns the changes that seeding the external directory made at start, when the lab
    /// seeded it.
    pub fn seed_report(&self) -> Option<&external::SeedReport> {
        self.seed_report.as_ref()
    }

    /// Fault rules, changeable while the lab runs.
    pub fn faults(&self) -> &faults::Faults {
        &self.state.faults
    }

    /// Request counters.
    pub fn journal(&self) -> &journal::Journal {
        &self.state.journal
    }

    /// Writes the world to the lab directory's state file, when there is a directory.
    pub fn save(&self) -> Result<(), LabError> {
        match &self.state.dir {
            Some(dir) => output::save_state(&self.state, dir),
            None => Ok(()),
        }
    }

    /// Stops every listener and saves the world.
    pub async fn stop(self) -> Result<(), LabError> {
        let _ = self.shutdown.send(true);
        let saved = self.save();
        tracing::info!("lab stopped");
        saved
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
