//! Exchange Online for the loop: the application's credential, the EWS and Graph stores, and
//! cloud-only scope groups through Graph.
//!
//! Tokens come from [`AppCredential`]. azure_identity 1.0 caches them per scope and renews a
//! token on the first request within five minutes of its expiry, so each request starts
//! with a token that is valid for at least five more minutes.

use std::sync::Arc;

use async_trait::async_trait;
use siu_specs::SecretRef;
use siu_specs::desired::{
    AppRegistration, AppRegistrationMode, ClientCredential, GeneratedCredential,
    GroupRef as SpecGroupRef,
};

use super::recipients::LookupError;
use super::scope::{GroupDirectory, Member};
use super::store::SentItemsStore;
use super::store::ews::EwsStore;
use super::store::graph::GraphStore;
use crate::http::{CaMode, HttpSettings};
use crate::providers::entra::graph::{GraphClient, GraphClientOptions, GraphRetry};
use crate::providers::entra::groups::GroupLookup;
use crate::providers::entra::{
    AppCredential, AppCredentialConfig, CertificateKey, ClientSecretOrCertificate, TokenRetry,
};
use crate::providers::exchange::ews::{EwsAuth, EwsClient, EwsClientOptions, Secret};
use crate::reconcile::applied::AppliedConfig;

/// The clients of Exchange Online under one application.
#[derive(Debug, Clone)]
pub struct CloudConnections {
    /// EWS of Exchange Online with a Bearer token.
    pub ews: Arc<dyn SentItemsStore>,
    /// Microsoft Graph mail.
    pub graph: Arc<dyn SentItemsStore>,
    /// Graph groups, for the scope.
    pub groups: Arc<GraphGroups>,
}

/// Connects to Exchange Online with the application of `registration`. Returns a message
/// naming what is missing when that is not possible.
pub fn connect(
    applied: &AppliedConfig,
    registration: &AppRegistration,
    concurrency: usize,
) -> Result<CloudConnections, String> {
    // 1. The application's identity and secret.
    let (client_id, credential) = match &registration.mode {
        AppRegistrationMode::Manual {
            client_id,
            credential,
        } => (client_id.to_string(), existing_credential(credential)?),
        AppRegistrationMode::Automatic { credential, .. } => {
            let client_id = applied.discovered.client_id.ok_or_else(|| {
                "the application is not registered yet; run `siuctl apply`".to_owned()
            })?;
            (client_id.to_string(), generated_credential(credential)?)
        }
    };
    let endpoints = &registration.endpoints;
    let http = HttpSettings {
        ca_file: endpoints.ca_file.clone(),
        ca_mode: CaMode::ReplaceSystemRoots,
        ..HttpSettings::default()
    };
    let credential = AppCredential::new(AppCredentialConfig {
        tenant_id: registration.tenant_id.to_string(),
        client_id,
        credential,
        authority_host: endpoints.authority_host.clone(),
        http: http.clone(),
        retry: TokenRetry::default(),
    })
    .map_err(|error| format!("failed to set up the application's credential: {error}"))?;

    // 2. EWS with app-only Bearer tokens; impersonation and X-AnchorMailbox name the mailbox.
    let ews = EwsClient::new(
        endpoints.exchange_online_ews.clone(),
        EwsAuth::exchange_online(credential.clone()),
        &EwsClientOptions {
            http: http.clone(),
            max_ntlm_connections: concurrency,
        },
    )
    .map_err(|error| format!("failed to set up the Exchange Online EWS client: {error}"))?;

    // 3. Graph, without its own retries of throttled requests: the loop's shared gates wait
    //    instead, so that one 429 slows every request for that mailbox.
    let graph = GraphClient::new(
        &endpoints.graph,
        credential,
        &http,
        GraphClientOptions {
            retry: GraphRetry {
                max_retries: 0,
                ..GraphRetry::default()
            },
            ..GraphClientOptions::default()
        },
    )
    .map_err(|error| format!("failed to set up the Microsoft Graph client: {error}"))?;
    let graph = Arc::new(graph);

    Ok(CloudConnections {
        ews: Arc::new(EwsStore::new(Arc::new(ews), "exchangeOnline")),
        graph: Arc::new(GraphStore::new(graph.clone())),
        groups: Arc::new(GraphGroups { client: graph }),
    })
}

fn existing_credential(credential: &ClientCredential) -> Result<ClientSecretOrCertificate, String> {
    match credential {
        ClientCredential::Certificate {
            thumbprint,
            key_file,
        } => {
            let key = CertificateKey::from_pem_file(key_file).map_err(|error| error.to_string())?;
            key.check_thumbprint(thumbprint)
                .map_err(|error| error.to_string())?;
            Ok(ClientSecretOrCertificate::Certificate(Arc::new(key)))
        }
        ClientCredential::ClientSecret(reference) => secret(reference),
    }
}

fn generated_credential(
    credential: &GeneratedCredential,
) -> Result<ClientSecretOrCertificate, String> {
    match credential {
        GeneratedCredential::Certificate { key_file } => CertificateKey::from_pem_file(key_file)
            .map(|key| ClientSecretOrCertificate::Certificate(Arc::new(key)))
            .map_err(|error| error.to_string()),
        GeneratedCredential::ClientSecret { secret_file } => {
            secret(&SecretRef::FromFile(secret_file.clone()))
        }
    }
}

fn secret(reference: &SecretRef) -> Result<ClientSecretOrCertificate, String> {
    reference
        .resolve()
        .map(|value| ClientSecretOrCertificate::Secret(Secret::new(value.expose())))
        .map_err(|error| format!("failed to read the client secret from {reference}: {error}"))
}

/// Scope groups in Entra ID, for groups that exist only in the cloud.
#[derive(Debug)]
pub struct GraphGroups {
    client: Arc<GraphClient>,
}

#[async_trait]
impl GroupDirectory for GraphGroups {
    fn name(&self) -> &'static str {
        "Entra ID"
    }

    async fn transitive_members(
        &self,
        group: &SpecGroupRef,
    ) -> Result<Option<Vec<Member>>, LookupError> {
        let lookup = match group {
            SpecGroupRef::Address(address) => GroupLookup::Mail(address.clone()),
            SpecGroupRef::Name(name) => GroupLookup::DisplayName(name.clone()),
            // Entra ID has no distinguished names; the directory resolves those.
            SpecGroupRef::Dn(_) => return Ok(None),
        };
        let groups = self.client.find_groups(&lookup).await?;
        if groups.is_empty() {
            return Ok(None);
        }
        if groups.len() > 1 {
            tracing::warn!(group = ?group, count = groups.len(), "several Entra groups have this name; the scope counts the members of all of them");
        }
        let mut members = Vec::new();
        for found in groups {
            for user in self
                .client
                .collect_transitive_user_members(&found.id)
                .await?
            {
                let addresses = user
                    .user_principal_name
                    .into_iter()
                    .chain(user.mail)
                    .chain(user.proxy_addresses.into_iter().filter_map(|proxy| {
                        proxy
                            .split_once(':')
                            .filter(|(prefix, _)| prefix.eq_ignore_ascii_case("smtp"))
                            .map(|(_, address)| address.to_owned())
                    }))
                    .map(|address| address.to_ascii_lowercase())
                    .collect();
                members.push(Member {
                    dn: None,
                    addresses,
                });
            }
        }
        Ok(Some(members))
    }
}
