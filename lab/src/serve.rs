//! Serving an axum router over HTTPS (or plain HTTP behind an explicit flag) on loopback.
//!
//! The lab runs its own accept loop instead of `axum::serve` for two reasons: every request
//! must know which TCP connection it came on, because NTLM authenticates a connection and not
//! a request, and a fault may close a connection without answering, which a handler cannot do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::LabError;
use crate::faults::Service;

/// The connection a request arrived on, available to handlers as a request extension.
#[derive(Debug)]
pub struct Connection {
    /// Lab-wide connection number.
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// Per-connection state that handlers keep, such as an NTLM handshake in progress or the
    /// identity it authenticated. Keyed by type.
    pub state: std::sync::Mutex<http::Extensions>,
}

/// Put this extension on a response to close the connection instead of sending it.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Binds `addr` (port 0 picks a free port) and serves `router` until `shutdown` turns true.
/// Returns the bound address once listening.
pub async fn spawn(
    service: Service,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, LabError> {
    let listener = TcpListener::bind(addr).await.map_err(|e| LabError::Bind {
        service: service.name(),
        addr,
        source: e,
    })?;
    let local = listener.local_addr().map_err(|e| LabError::Bind {
        service: service.name(),
        addr,
        source: e,
    })?;
    let acceptor = tls.map(TlsAcceptor::from);
    tracing::debug!(service = service.name(), %local, "listening");

    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(service = service.name(), %error, "failed to accept a connection");
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            let mut conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let connection = Arc::new(Connection {
                    id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                    peer,
                    tls: acceptor.is_some(),
                    state: std::sync::Mutex::new(http::Extensions::new()),
                });
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls_stream) => {
                            serve_connection(
                                TokioIo::new(tls_stream),
                                router,
                                connection,
                                &mut conn_shutdown,
                            )
                            .await
                        }
                        Err(error) => {
                            tracing::debug!(service = service.name(), %peer, %error, "TLS handshake failed");
                            return;
                        }
                    },
                    None => {
                        serve_connection(
                            TokioIo::new(stream),
                            router,
                            connection,
                            &mut conn_shutdown,
                        )
                        .await
                    }
                };
                if let Err(error) = result {
                    tracing::trace!(service = service.name(), %peer, %error, "connection ended");
                }
            });
        }
        tracing::debug!(service = service.name(), %local, "stopped listening");
    });
    Ok(local)
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    connection: Arc<Connection>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let router = router.clone();
        let connection = connection.clone();
        async move {
            request.extensions_mut().insert(connection);
            let response: Response<Body> = router
                .oneshot(request.map(Body::new))
                .await
                .unwrap_or_else(|never| match never {});
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(DroppedByFault);
            }
            Ok(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// The error that makes hyper close a connection on purpose.
#[derive(Debug)]
struct DroppedByFault;

impl std::fmt::Display for DroppedByFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DroppedByFault {}
