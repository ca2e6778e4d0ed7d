//! An LDAP server that behaves like Active Directory.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::{LabError, LabState};

/// Binds LDAP and LDAPS and serves them until `shutdown` turns true.
pub async fn spawn(
    state: Arc<LabState>,
    ldap: SocketAddr,
    ldaps: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, SocketAddr), LabError> {
    // TODO: LDAP is not served yet; the listeners only reserve ports.
    let _ = (state, tls, shutdown);
    let plain = tokio::net::TcpListener::bind(ldap)
        .await
        .map_err(|e| LabError::Bind {
            service: "ldap",
            addr: ldap,
            source: e,
        })?;
    let secure = tokio::net::TcpListener::bind(ldaps)
        .await
        .map_err(|e| LabError::Bind {
            service: "ldaps",
            addr: ldaps,
            source: e,
        })?;
    let addrs = (
        plain
            .local_addr()
            .map_err(|e| LabError::io(std::path::Path::new("ldap"), e))?,
        secure
            .local_addr()
            .map_err(|e| LabError::io(std::path::Path::new("ldaps"), e))?,
    );
    tokio::spawn(async move {
        let _keep = (plain, secure);
        std::future::pending::<()>().await
    });
    Ok(addrs)
}
