//! The loop's connection to Active Directory: recipient lookups and scope groups over one
//! LDAP connection that is opened on first use and opened again after it breaks.

use std::sync::Arc;

use async_trait::async_trait;
use siu_specs::desired::GroupRef as SpecGroupRef;
use tokio::sync::Mutex;

use super::recipients::{LookupError, RecipientDirectory};
use super::scope::{GroupDirectory, Member};
use crate::providers::directory::{
    ConnectionSettings, DirectoryClient, DirectoryError, GroupRef, MemberKind, Recipient,
};

/// A shared LDAP connection that reconnects after transport failures.
pub struct DirectoryHandle {
    settings: ConnectionSettings,
    client: Mutex<Option<Arc<DirectoryClient>>>,
}

impl std::fmt::Debug for DirectoryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryHandle")
            .field("url", &self.settings.url)
            .finish_non_exhaustive()
    }
}

impl DirectoryHandle {
    /// Creates a handle that connects with `settings` on first use.
    pub fn new(settings: ConnectionSettings) -> Self {
        Self {
            settings,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Arc<DirectoryClient>, DirectoryError> {
        let mut client = self.client.lock().await;
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let connected = Arc::new(DirectoryClient::connect(&self.settings).await?);
        tracing::debug!(url = %self.settings.url, "connected to the directory");
        *client = Some(connected.clone());
        Ok(connected)
    }

    /// Drops the connection after an error that may have broken it, so that the next call
    /// opens a new one.
    async fn forget_on(&self, error: &DirectoryError) {
        if matches!(
            error,
            DirectoryError::Connect { .. }
                | DirectoryError::Transport { .. }
                | DirectoryError::TimedOut { .. }
        ) {
            tracing::warn!(url = %self.settings.url, %error, "directory connection failed; reconnecting on the next lookup");
            *self.client.lock().await = None;
        }
    }

    async fn find_group(
        &self,
        client: &DirectoryClient,
        group: &SpecGroupRef,
    ) -> Result<Option<crate::providers::directory::Group>, DirectoryError> {
        match group {
            SpecGroupRef::Address(address) => {
                client
                    .find_group(&GroupRef::SmtpAddress(address.clone()))
                    .await
            }
            SpecGroupRef::Dn(dn) => client.find_group(&GroupRef::Dn(dn.clone())).await,
            SpecGroupRef::Name(name) => {
                match client
                    .find_group(&GroupRef::SamAccountName(name.clone()))
                    .await?
                {
                    Some(group) => Ok(Some(group)),
                    None => client.find_group(&GroupRef::Name(name.clone())).await,
                }
            }
        }
    }
}

#[async_trait]
impl RecipientDirectory for DirectoryHandle {
    async fn find_recipient(&self, address: &str) -> Result<Option<Recipient>, LookupError> {
        let client = self.client().await?;
        match client.find_recipient(address).await {
            Ok(recipient) => Ok(recipient),
            Err(error) => {
                self.forget_on(&error).await;
                Err(error.into())
            }
        }
    }
}

#[async_trait]
impl GroupDirectory for DirectoryHandle {
    fn name(&self) -> &'static str {
        "Active Directory"
    }

    async fn transitive_members(
        &self,
        group: &SpecGroupRef,
    ) -> Result<Option<Vec<Member>>, LookupError> {
        let client = self.client().await?;
        let result = async {
            let Some(found) = self.find_group(&client, group).await? else {
                return Ok(None);
            };
            let members = client.transitive_members(&found.dn).await?;
            Ok(Some(
                members
                    .into_iter()
                    .filter(|member| member.kind == MemberKind::User)
                    .map(|member| Member {
                        dn: Some(member.dn.to_ascii_lowercase()),
                        addresses: member
                            .user_principal_name
                            .into_iter()
                            .chain(member.mail)
                            .map(|address| address.to_ascii_lowercase())
                            .collect(),
                    })
                    .collect(),
            ))
        }
        .await;
        if let Err(error) = &result {
            self.forget_on(error).await;
        }
        result.map_err(LookupError::from)
    }
}
