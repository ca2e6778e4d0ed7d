//! Serving an axum router over HTTPS (or plain HTTP behind an explicit flag) on loopback.
//!
//! The lab runs its own accept loop instead of `axum::serve` for two reasons: every request
//! must know which TCP connection it came on, because NTLM authenticates a connection and not
//! a request, and a fault may close a connection without answering, which a handler cannot do.
//!
//! Each listener bounds what one client can hold (see [`Limits`]): open connections, the time
//! to finish a TLS handshake and the time to send a request's headers, which also closes
//! keep-alive connections left idle. A response to a request whose body the handler did not
//! read to the end carries `Connection: close`, because the connection cannot carry another
//! request and the client must not try.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
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

/// Bounds on what clients may hold of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections; a connection over the limit is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Time from accepting a connection to the end of its TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send the headers of a request, counted from the end of the
    /// previous response on a keep-alive connection.
    pub header_timeout: Duration,
    /// Time a client may leave between two parts of a request body. A handler reading a body
    /// that stalls longer gets a [`BodyTimedOut`] error.
    pub body_timeout: Duration,
}

impl Default for Limits {
    /// 1,024 connections per listener, 30 s for the TLS handshake, and 120 s for the headers
    /// and for each part of a body, the `connectionTimeout` that IIS applies by default.
    fn default() -> Self {
        Self {
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(120),
            body_timeout: Duration::from_secs(120),
        }
    }
}

/// The error a request body returns when the client stops sending it for longer than
/// [`Limits::body_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the client sent no part of the request body for {0:?}")]
pub struct BodyTimedOut(pub Duration);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Binds `addr` (port 0 picks a free port) and serves `router` until `shutdown` turns true,
/// with the default [`Limits`]. Returns the bound address once listening.
pub async fn spawn(
    service: Service,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: watch::Receiver<bool>,
) -> Result<SocketAddr, LabError> {
    spawn_with_limits(service, addr, tls, router, shutdown, Limits::default()).await
}

/// Binds `addr` and serves `router` as [`spawn`] does, within `limits`.
pub async fn spawn_with_limits(
    service: Service,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
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
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let rejected = AtomicU64::new(0);
    tracing::debug!(service = service.name(), %local, "listening");

    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        pause_after_accept_error(service.name(), &error).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let Ok(permit) = connections.clone().try_acquire_owned() else {
                // Dropping the stream closes it. Repeats are logged at 1, 2, 4, 8, ...
                let count = rejected.fetch_add(1, Ordering::Relaxed) + 1;
                if count.is_power_of_two() {
                    tracing::warn!(
                        service = service.name(),
                        %peer,
                        limit = limits.max_connections,
                        rejected = count,
                        "closed a connection over the connection limit"
                    );
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let acceptor = acceptor.clone();
            let mut conn_shutdown = shutdown.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let connection = Arc::new(Connection {
                    id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                    peer,
                    tls: acceptor.is_some(),
                    state: std::sync::Mutex::new(http::Extensions::new()),
                });
                let result = match acceptor {
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                                .await;
                        match handshake {
                            Ok(Ok(tls_stream)) => {
                                serve_connection(
                                    TokioIo::new(tls_stream),
                                    router,
                                    connection,
                                    &mut conn_shutdown,
                                    limits,
                                )
                                .await
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(service = service.name(), %peer, %error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(service = service.name(), %peer, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        serve_connection(
                            TokioIo::new(stream),
                            router,
                            connection,
                            &mut conn_shutdown,
                            limits,
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

/// Handles a failed `accept`. A connection that the client gave up on before it was accepted
/// is skipped. Anything else, such as running out of file descriptors, would fail again at
/// once, so it is logged and the listener pauses for a second instead of spinning.
pub(crate) async fn pause_after_accept_error(service: &'static str, error: &std::io::Error) {
    use std::io::ErrorKind;

    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        tracing::debug!(service, %error, "a connection closed before it was accepted");
        return;
    }
    tracing::warn!(service, %error, "failed to accept a connection; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn serve_connection<I>(
    io: I,
    router: Router,
    connection: Arc<Connection>,
    shutdown: &mut watch::Receiver<bool>,
    limits: Limits,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let router = router.clone();
        let connection = connection.clone();
        async move {
            request.extensions_mut().insert(connection);
            let finished = Arc::new(AtomicBool::new(false));
            let empty = hyper::body::Body::is_end_stream(request.body());
            let request = request.map(|inner| {
                Body::new(TrackedBody {
                    inner,
                    finished: finished.clone(),
                    timeout: limits.body_timeout,
                    deadline: None,
                })
            });
            let mut response: Response<Body> = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            if response.extensions().get::<DropConnection>().is_some() {
                return Err(DroppedByFault);
            }
            if !empty && !finished.load(Ordering::Relaxed) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
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

/// A request body that records when it has been read to its end, and fails when the client
/// stalls between two of its parts for longer than the body timeout.
struct TrackedBody {
    inner: Incoming,
    finished: Arc<AtomicBool>,
    timeout: Duration,
    /// When the part being waited for is due; set while a read is pending.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match polled {
            Poll::Pending => {
                let timeout = self.timeout;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(context).is_ready() {
                    self.deadline = None;
                    return Poll::Ready(Some(Err(Box::new(BodyTimedOut(timeout)))));
                }
                Poll::Pending
            }
            Poll::Ready(frame) => {
                self.deadline = None;
                if frame.is_none() || self.inner.is_end_stream() {
                    self.finished.store(true, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|result| result.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A router whose one route reads the whole body and returns its length, or 400 when the
    /// body cannot be read.
    fn router() -> Router {
        Router::new().route(
            "/",
            axum::routing::post(|body: Body| async move {
                match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(bytes) => (http::StatusCode::OK, bytes.len().to_string()),
                    Err(error) => (http::StatusCode::BAD_REQUEST, error.to_string()),
                }
            }),
        )
    }

    async fn start(limits: Limits, tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        // The sender lives for the whole test process, so the listener keeps serving.
        let (sender, receiver) = watch::channel(false);
        std::mem::forget(sender);
        let addr = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        spawn_with_limits(Service::Control, addr, tls, router(), receiver, limits)
            .await
            .expect("listener starts")
    }

    /// Reads until the server closes the connection. The guard only keeps a broken server
    /// from hanging the test.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "the server should close the connection");
        String::from_utf8_lossy(&answer).into_owned()
    }

    const POST_ONE_BYTE: &[u8] =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx";

    #[tokio::test]
    async fn connection_over_limit_is_closed() {
        let limits = Limits {
            max_connections: 1,
            ..Limits::default()
        };
        let addr = start(limits, None).await;
        let mut first = TcpStream::connect(addr).await.expect("connects");
        let mut second = TcpStream::connect(addr).await.expect("connects");
        assert_eq!(read_to_close(&mut second).await, "");

        first.write_all(POST_ONE_BYTE).await.expect("sends");
        let answer = read_to_close(&mut first).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn stalled_headers_close_connection() {
        let limits = Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let addr = start(limits, None).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("sends");
        let answer = read_to_close(&mut stream).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn stalled_body_fails_the_read() {
        let limits = Limits {
            body_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let addr = start(limits, None).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            .await
            .expect("sends");
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }

    #[tokio::test]
    async fn unread_body_closes_connection() {
        let addr = start(Limits::default(), None).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        // The route does not exist, so nothing reads the body.
        stream
            .write_all(b"POST /missing HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
            .await
            .expect("sends");
        let answer = read_to_close(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
    }

    #[tokio::test]
    async fn read_body_keeps_connection() {
        let addr = start(Limits::default(), None).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
            .await
            .expect("sends");
        stream.write_all(POST_ONE_BYTE).await.expect("sends");
        let answer = read_to_close(&mut stream).await;
        assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
        let first = answer.split("HTTP/1.1 200").nth(1).expect("first response");
        assert!(!first.contains("connection: close"), "{answer}");
    }

    #[tokio::test]
    async fn stalled_tls_handshake_is_dropped() {
        let tls = crate::tls::LabTls::generate(&[]).expect("certificates");
        let limits = Limits {
            handshake_timeout: Duration::from_millis(200),
            ..Limits::default()
        };
        let config = tls.server_config(&[b"http/1.1"]).expect("server config");
        let addr = start(limits, Some(config)).await;
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        assert_eq!(read_to_close(&mut stream).await, "");
    }
}
