//! What the loop works with under one applied configuration: the options, the clients for
//! each mailbox location, the recipient resolver and the resolved scope.
//!
//! Each reconcile builds a new [`Runtime`] and hands it to the loop. The loop takes a
//! snapshot per message, so scope and option changes apply without a restart. Connections (the EWS
//! client, the LDAP connection) carry over from the previous runtime while their settings
//! stay the same; caches (recipients, scope groups) start afresh every time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use siu_specs::desired::{
    BindUser, DesiredState, DirectoryTransport, ExchangeAuth, MailAccess, ScopeMode, UpdateOptions,
};

use super::cloud::{self, CloudConnections};
use super::directory::DirectoryHandle;
use super::recipients::{Location, RecipientResolver};
use super::scope::{GroupDirectory, ScopeResolver};
use super::store::SentItemsStore;
use super::store::ews::{EwsProbe, EwsStore};
use crate::http::{CaMode, HttpError, HttpSettings};
use crate::providers::directory::{BindIdentity, ConnectionSettings, DirectoryError, Password};
use crate::providers::exchange::ews::{EwsAuth, EwsClient, EwsClientOptions, Secret};
use crate::reconcile::applied::{AppliedConfig, CloudMailPath};

/// Exchange's default `EWSMaxConcurrency` throttling budget: concurrent EWS requests per
/// account. The loop opens at most this many NTLM connections.
const EWS_MAX_CONCURRENCY: usize = 27;

/// Errors that prevent building a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A secret reference could not be read.
    #[error("failed to read the {what} from {reference}")]
    Secret {
        /// Which secret.
        what: &'static str,
        /// The reference, never the value.
        reference: String,
        /// The cause.
        #[source]
        source: siu_specs::Error,
    },
    /// The HTTP client could not be built.
    #[error("failed to set up the EWS client: {0}")]
    Http(#[from] HttpError),
    /// The directory settings are invalid.
    #[error("invalid directory settings: {0}")]
    Directory(#[from] DirectoryError),
}

/// The protocol that reaches Exchange Online mailboxes.
#[derive(Debug)]
pub struct CloudPath {
    ews: Option<Arc<dyn SentItemsStore>>,
    graph: Option<Arc<dyn SentItemsStore>>,
    use_graph: AtomicBool,
    fallback_allowed: bool,
    unavailable: Option<String>,
}

impl CloudPath {
    /// Returns the path of a configuration without Exchange Online.
    pub fn none(reason: impl Into<String>) -> Self {
        Self {
            ews: None,
            graph: None,
            use_graph: AtomicBool::new(false),
            fallback_allowed: false,
            unavailable: Some(reason.into()),
        }
    }

    /// Returns a path that uses `ews` or `graph` as `mail_access` and the path that apply
    /// chose require.
    pub fn new(
        ews: Option<Arc<dyn SentItemsStore>>,
        graph: Option<Arc<dyn SentItemsStore>>,
        mail_access: MailAccess,
        chosen: Option<CloudMailPath>,
    ) -> Self {
        let use_graph = match mail_access {
            MailAccess::Ews => false,
            MailAccess::Graph => true,
            MailAccess::Auto => chosen == Some(CloudMailPath::Graph),
        };
        Self {
            ews,
            graph,
            use_graph: AtomicBool::new(use_graph),
            fallback_allowed: mail_access == MailAccess::Auto,
            unavailable: None,
        }
    }

    /// Returns the store for cloud mailboxes, or why there is none.
    pub fn store(&self) -> Result<Arc<dyn SentItemsStore>, String> {
        if let Some(reason) = &self.unavailable {
            return Err(reason.clone());
        }
        let (store, name) = if self.use_graph.load(Ordering::Relaxed) {
            (&self.graph, "Microsoft Graph")
        } else {
            (&self.ews, "EWS")
        };
        store.clone().ok_or_else(|| {
            format!("Exchange Online access over {name} is not available in this build of siuctl")
        })
    }

    /// Tells whether the loop may switch to Graph after Exchange Online rejects EWS.
    pub fn can_fall_back(&self) -> bool {
        self.fallback_allowed && self.graph.is_some()
    }

    /// Switches from EWS to Graph after Exchange Online refused EWS, when `mailAccess: auto`
    /// allows it. Returns whether the path changed now.
    pub fn switch_to_graph(&self) -> bool {
        self.can_fall_back() && !self.use_graph.swap(true, Ordering::Relaxed)
    }
}

/// The loop's view of one applied configuration.
#[derive(Debug)]
pub struct Runtime {
    /// Counts the runtimes built by one process, for logs.
    pub generation: u64,
    /// When the configuration was applied.
    pub applied_at: DateTime<Utc>,
    /// The spec's update options.
    pub options: UpdateOptions,
    /// Messages processed at once.
    pub concurrency: usize,
    /// Messages of one mailbox processed at once.
    pub per_mailbox_concurrency: usize,
    /// Sent Items of on-premises mailboxes.
    pub on_premises: Arc<dyn SentItemsStore>,
    /// Sent Items of Exchange Online mailboxes.
    pub cloud: CloudPath,
    /// Address to mailbox lookups.
    pub recipients: Arc<RecipientResolver>,
    /// The scope, resolved on first use.
    pub scope: ScopeResolver,
}

impl Runtime {
    /// Returns the store for a mailbox location, or why there is none.
    pub fn store(&self, location: Location) -> Result<Arc<dyn SentItemsStore>, String> {
        match location {
            Location::OnPremises => Ok(self.on_premises.clone()),
            Location::Cloud => self.cloud.store(),
        }
    }
}

/// The connections a runtime uses, kept across runtimes while their settings are the same.
#[derive(Debug, Clone)]
pub struct Connections {
    fingerprint: String,
    ews: Arc<EwsClient>,
    directory: Arc<DirectoryHandle>,
    /// Exchange Online, or why it cannot be reached.
    cloud: Option<Result<CloudConnections, String>>,
}

/// Builds the runtime for `applied`, reusing `previous` connections when their settings are
/// unchanged.
pub async fn build(
    applied: &AppliedConfig,
    previous: Option<&Connections>,
    generation: u64,
) -> Result<(Runtime, Connections), RuntimeError> {
    let desired = &applied.desired;

    // 1. Connections.
    let fingerprint = connection_fingerprint(applied);
    let concurrency = usize::from(desired.update_loop.concurrency).clamp(1, EWS_MAX_CONCURRENCY);
    let connections = match previous {
        Some(previous) if previous.fingerprint == fingerprint => previous.clone(),
        _ => Connections {
            fingerprint,
            ews: Arc::new(on_premises_client(applied)?),
            directory: Arc::new(DirectoryHandle::new(directory_settings(desired)?)),
            cloud: desired.app_registration.as_ref().map(|registration| {
                cloud::connect(applied, registration, concurrency).inspect_err(|problem| {
                    tracing::error!(
                        problem,
                        "Exchange Online mailboxes cannot be updated until this is fixed"
                    );
                })
            }),
        },
    };

    // 2. Lookups and scope, fresh on every reconcile.
    let hybrid = desired.app_registration.is_some();
    let recipients = Arc::new(RecipientResolver::new(
        connections.directory.clone(),
        Arc::new(EwsProbe::new(connections.ews.clone())),
        hybrid,
    ));
    let mut directories: Vec<Arc<dyn GroupDirectory>> = vec![connections.directory.clone()];
    if let Some(Ok(cloud)) = &connections.cloud {
        directories.push(cloud.groups.clone());
    }
    let scope = ScopeResolver::new(desired.scope.clone(), directories);
    if desired.scope.mode != ScopeMode::All {
        // Resolve now, so that a wrong group name shows up at start; a failure is retried.
        let _ = scope.get().await;
    }

    // 3. Exchange Online.
    let cloud = match (&desired.app_registration, &connections.cloud) {
        (Some(registration), Some(Ok(cloud))) => CloudPath::new(
            Some(cloud.ews.clone()),
            Some(cloud.graph.clone()),
            registration.mail_access,
            applied.discovered.cloud_mail_path,
        ),
        (Some(_), Some(Err(problem))) => CloudPath::none(problem.clone()),
        _ => CloudPath::none(
            "the spec's environment is onPremises, so Exchange Online mailboxes are not updated",
        ),
    };

    let store: Arc<dyn SentItemsStore> = Arc::new(EwsStore::new(connections.ews.clone(), "ews"));
    let runtime = Runtime {
        generation,
        applied_at: applied.applied_at,
        options: desired.options.clone(),
        concurrency: usize::from(desired.update_loop.concurrency).max(1),
        per_mailbox_concurrency: usize::from(desired.update_loop.per_mailbox_concurrency).max(1),
        on_premises: store,
        cloud,
        recipients,
        scope,
    };
    Ok((runtime, connections))
}

/// Returns the settings whose change needs new connections.
fn connection_fingerprint(applied: &AppliedConfig) -> String {
    let desired = &applied.desired;
    serde_json::json!({
        "exchange": desired.exchange,
        "directory": desired.directory,
        "account": desired.account,
        "appRegistration": desired.app_registration,
        "discovered": applied.discovered,
        "concurrency": desired.update_loop.concurrency,
    })
    .to_string()
}

fn on_premises_client(applied: &AppliedConfig) -> Result<EwsClient, RuntimeError> {
    let desired = &applied.desired;
    let password_ref = desired.account.password();
    let password = password_ref
        .resolve()
        .map_err(|source| RuntimeError::Secret {
            what: "service account password",
            reference: password_ref.to_string(),
            source,
        })?;
    let username = desired.account.upn.clone();
    let password = Secret::new(password.expose());
    let auth = match desired.exchange.auth {
        ExchangeAuth::Ntlm => EwsAuth::Ntlm { username, password },
        ExchangeAuth::Basic => EwsAuth::Basic { username, password },
    };
    let options = EwsClientOptions {
        http: HttpSettings {
            ca_file: desired.exchange.ca_file.clone(),
            ca_mode: CaMode::ReplaceSystemRoots,
            ..HttpSettings::default()
        },
        max_ntlm_connections: usize::from(desired.update_loop.concurrency)
            .clamp(1, EWS_MAX_CONCURRENCY),
    };
    Ok(EwsClient::new(
        applied.discovered.ews_url.clone(),
        auth,
        &options,
    )?)
}

fn directory_settings(desired: &DesiredState) -> Result<ConnectionSettings, RuntimeError> {
    let directory = &desired.directory;
    let password = directory
        .bind_password
        .resolve()
        .map_err(|source| RuntimeError::Secret {
            what: "directory bind password",
            reference: directory.bind_password.to_string(),
            source,
        })?;
    let identity = match &directory.bind_user {
        BindUser::Upn(upn) => BindIdentity::Upn(upn.clone()),
        BindUser::Dn(dn) => BindIdentity::Dn(dn.clone()),
        BindUser::DownLevel { domain, user } => BindIdentity::DownLevel {
            domain: domain.clone(),
            user: user.clone(),
        },
    };
    let mut settings = ConnectionSettings::new(
        directory.url.to_string().trim_end_matches('/'),
        identity,
        Password::new(password.expose()),
    );
    settings.start_tls = directory.transport == DirectoryTransport::StartTls;
    settings.ca_file = directory.ca_file.clone();
    settings.base_dn = Some(directory.base_dn.clone());
    Ok(settings)
}
