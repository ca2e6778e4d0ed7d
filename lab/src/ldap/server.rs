//! Listeners and connections: LDAP with StartTLS and LDAPS, one task per connection, the
//! codec, injected faults, the journal, and the dispatch of each request to its operation.
//!
//! A connection processes its requests in order. A message that does not decode, or one
//! larger than MaxReceiveBuffer, ends the connection with a notice of disconnection
//! (RFC 4511 section 4.4.1) instead of a response, and so does stopping the lab. A
//! connection idle for MaxConnIdleTime is closed, as AD closes it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use ldap3_proto::DisconnectionNotice;
use ldap3_proto::proto::{
    LdapBindResponse, LdapExtendedResponse, LdapMsg, LdapOp, LdapResult, LdapResultCode,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

use super::codec::{CodecError, LdapServerCodec, Request};
use super::controls::RequestControls;
use super::diagnostics::{self, Failure};
use super::filter::Filter;
use super::rootdse::{START_TLS, WHO_AM_I};
use super::session::Session;
use super::{
    MAX_CONNECTION_IDLE, MAX_CONNECTIONS, MAX_RECEIVE_BUFFER, add, bind, compare, delete, modify,
    search,
};
use crate::faults::{FaultKind, Service};
use crate::{LabError, LabState};

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection closed after an invalid request keeps reading what the client
/// still sends.
const LINGER: Duration = Duration::from_secs(1);

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A connection's byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Stream = Box<dyn Io>;

/// Binds LDAP (`ldap`) and LDAPS (`ldaps`), port 0 picking a free port, serves both until
/// `shutdown` turns true, and returns the bound addresses.
pub async fn spawn(
    state: Arc<LabState>,
    ldap: SocketAddr,
    ldaps: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, SocketAddr), LabError> {
    let bind = |service: &'static str, addr: SocketAddr| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| LabError::Bind {
                service,
                addr,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| LabError::Bind {
            service,
            addr,
            source,
        })?;
        Ok::<_, LabError>((listener, local))
    };
    let (plain, plain_addr) = bind("ldap", ldap).await?;
    let (secure, secure_addr) = bind("ldaps", ldaps).await?;
    let acceptor = TlsAcceptor::from(tls);
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    for (listener, local, encrypted) in [(plain, plain_addr, false), (secure, secure_addr, true)] {
        tokio::spawn(accept_loop(
            listener,
            local,
            encrypted,
            state.clone(),
            acceptor.clone(),
            connections.clone(),
            shutdown.clone(),
        ));
    }
    Ok((plain_addr, secure_addr))
}

async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    encrypted: bool,
    state: Arc<LabState>,
    acceptor: TlsAcceptor,
    connections: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = if encrypted { "ldaps" } else { "ldap" };
    tracing::debug!(service, %local, "listening");
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    crate::serve::pause_after_accept_error(service, &error).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(service, connection = id, %peer, limit = MAX_CONNECTIONS, "rejected a connection over MaxConnections");
            continue;
        };
        tokio::spawn(async move {
            let _permit = permit;
            let stream: Stream = if encrypted {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => Box::new(tls),
                    Ok(Err(error)) => {
                        tracing::debug!(service, connection = id, %peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(service, connection = id, %peer, "TLS handshake timed out");
                        return;
                    }
                }
            } else {
                Box::new(tcp)
            };
            let session = Session::new(id, peer, encrypted);
            serve(state, stream, session, acceptor, shutdown).await;
        });
    }
    tracing::debug!(service, %local, "stopped listening");
}

/// The next step for a connection after a request.
enum Flow {
    /// Read the next request.
    Continue,
    /// Send the response, then start TLS on the connection.
    StartTls,
    /// Close the connection after sending the response (unbind).
    Close,
    /// Close without sending anything (an injected fault).
    Drop,
}

async fn serve(
    state: Arc<LabState>,
    stream: Stream,
    mut session: Session,
    acceptor: TlsAcceptor,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut framed = Framed::new(stream, LdapServerCodec::new(MAX_RECEIVE_BUFFER));
    tracing::trace!(connection = session.id, peer = %session.peer, encrypted = session.encrypted, "connection opened");
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(MAX_CONNECTION_IDLE, framed.next()) => next,
            _ = shutdown.changed() => {
                let notice = DisconnectionNotice::gen_response(
                    LdapResultCode::Unavailable,
                    &diagnostics::unavailable().message,
                );
                let _ = framed.send(notice).await;
                break;
            }
        };
        let request = match next {
            Err(_) => {
                tracing::debug!(connection = session.id, peer = %session.peer, "closing an idle connection");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(CodecError::Io(error)))) => {
                tracing::debug!(connection = session.id, peer = %session.peer, %error, "connection failed");
                break;
            }
            Ok(Some(Err(error))) => {
                tracing::warn!(connection = session.id, peer = %session.peer, %error, "closing the connection after an invalid request");
                let notice = DisconnectionNotice::gen_response(LdapResultCode::ProtocolError, "");
                if framed.send(notice).await.is_ok() {
                    linger(framed.into_inner()).await;
                }
                return;
            }
            Ok(Some(Ok(request))) => request,
        };

        let (messages, flow) = dispatch(&state, &mut session, request).await;
        for message in messages {
            if framed.feed(message).await.is_err() {
                return;
            }
        }
        if framed.flush().await.is_err() {
            return;
        }
        match flow {
            Flow::Continue => {}
            Flow::Close => break,
            Flow::Drop => return,
            Flow::StartTls => {
                let parts = framed.into_parts();
                if !parts.read_buf.is_empty() {
                    // RFC 4511 section 4.14.1: the client must wait for the StartTLS response
                    // before sending anything else.
                    tracing::warn!(connection = session.id, peer = %session.peer, "closing the connection: data sent before the TLS handshake");
                    return;
                }
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(parts.io)).await {
                    Ok(Ok(tls)) => {
                        let stream: Stream = Box::new(tls);
                        framed = Framed::new(stream, LdapServerCodec::new(MAX_RECEIVE_BUFFER));
                        session.encrypted = true;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(connection = session.id, peer = %session.peer, %error, "StartTLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(connection = session.id, peer = %session.peer, "StartTLS handshake timed out");
                        return;
                    }
                }
            }
        }
    }
    // Shutting down sends a TLS close_notify before the FIN, as Active Directory does after an
    // unbind, so that clients see a clean end of stream rather than a truncation.
    let mut stream = framed.into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    tracing::trace!(connection = session.id, peer = %session.peer, "connection closed");
}

/// Closes a connection whose client may still be sending: stops writing, then reads and
/// discards for up to a second. Closing with unread data would make the kernel reset the
/// connection, and the client could lose the notice of disconnection sent just before.
async fn linger(mut stream: Stream) {
    use tokio::io::AsyncReadExt;
    let _ = stream.shutdown().await;
    let mut scratch = vec![0u8; 64 * 1024];
    let drain = async { while matches!(stream.read(&mut scratch).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Runs one request with the faults the lab injects for it, records it in the journal and
/// returns the messages to send.
async fn dispatch(
    state: &LabState,
    session: &mut Session,
    request: Request,
) -> (Vec<LdapMsg>, Flow) {
    let started = Instant::now();
    let Request { msg, filter } = request;
    let operation = operation_name(&msg.op);
    let msgid = msg.msgid;
    match &msg.op {
        LdapOp::UnbindRequest => {
            state.journal.record(
                Service::Ldap,
                operation,
                0,
                started.elapsed(),
                session.actor(),
            );
            return (Vec::new(), Flow::Close);
        }
        // Every request gets its response before the next one is read, so there is never one
        // in progress to abandon.
        LdapOp::AbandonRequest(_) => return (Vec::new(), Flow::Continue),
        _ => {}
    }
    // The bind name is the actor of a bind, whatever the outcome.
    let bind_name = match &msg.op {
        LdapOp::BindRequest(bind) => Some(bind.dn.clone()),
        _ => None,
    };

    let decision = state.faults.decide(Service::Ldap, operation);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let (messages, flow) = match decision.fault {
        Some(FaultKind::Drop) => (Vec::new(), Flow::Drop),
        Some(fault) => {
            let failure = fault_failure(&fault);
            (
                vec![response_for(&msg.op, msgid, failure.into_result())],
                Flow::Continue,
            )
        }
        None => execute(state, session, msg, filter),
    };

    // A dropped request has no result; the journal counts it as `unavailable`.
    let status = messages
        .last()
        .and_then(result_code)
        .unwrap_or(LdapResultCode::Unavailable);
    let status = status as i64 as u16;
    let latency = started.elapsed();
    let actor = bind_name.as_deref().or(session.actor());
    state
        .journal
        .record(Service::Ldap, operation, status, latency, actor);
    tracing::debug!(
        service = "ldap",
        connection = session.id,
        operation,
        status,
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        actor,
        "request"
    );
    (messages, flow)
}

/// Maps an injected fault to its LDAP failure: `busy` for throttling faults and a `Status`
/// of 51 or 429, `unavailable` for any other `Status`.
fn fault_failure(fault: &FaultKind) -> Failure {
    match fault {
        FaultKind::Status { code: 51 | 429 }
        | FaultKind::ServerBusy { .. }
        | FaultKind::ExceededConnectionCount
        | FaultKind::TooManyRequests { .. } => diagnostics::busy(),
        FaultKind::Status { .. } | FaultKind::Drop | FaultKind::Latency { .. } => {
            diagnostics::unavailable()
        }
    }
}

/// Runs a request and returns its response messages.
fn execute(
    state: &LabState,
    session: &mut Session,
    msg: LdapMsg,
    filter: Option<Filter>,
) -> (Vec<LdapMsg>, Flow) {
    let msgid = msg.msgid;
    let controls = match RequestControls::parse(&msg.ctrl) {
        Ok(controls) => controls,
        Err(failure) => {
            return (
                vec![response_for(&msg.op, msgid, failure.into_result())],
                Flow::Continue,
            );
        }
    };
    let reply = |op: LdapOp| (vec![LdapMsg::new(msgid, op)], Flow::Continue);
    match &msg.op {
        LdapOp::BindRequest(request) => reply(LdapOp::BindResponse(LdapBindResponse {
            res: bind::handle(state, session, request),
            saslcreds: None,
        })),
        LdapOp::SearchRequest(request) => {
            // The codec decodes every search filter, so the fallback never applies.
            let filter = filter.unwrap_or_else(|| Filter::Present("objectClass".into()));
            let outcome = search::handle(state, session, request, &filter, &controls);
            let mut messages: Vec<LdapMsg> = outcome
                .entries
                .into_iter()
                .map(|entry| LdapMsg::new(msgid, LdapOp::SearchResultEntry(entry)))
                .collect();
            messages.push(LdapMsg::new_with_ctrls(
                msgid,
                LdapOp::SearchResultDone(outcome.result),
                outcome.controls,
            ));
            (messages, Flow::Continue)
        }
        LdapOp::AddRequest(request) => {
            reply(LdapOp::AddResponse(add::handle(state, session, request)))
        }
        LdapOp::ModifyRequest(request) => reply(LdapOp::ModifyResponse(modify::handle(
            state, session, request, &controls,
        ))),
        LdapOp::DelRequest(dn) => reply(LdapOp::DelResponse(delete::handle(
            state, session, dn, &controls,
        ))),
        LdapOp::CompareRequest(request) => reply(LdapOp::CompareResult(compare::handle(
            state, session, request,
        ))),
        // TODO: renames and moves (modify DN) are not modelled; AD performs them.
        LdapOp::ModifyDNRequest(_) => reply(LdapOp::ModifyDNResponse(
            diagnostics::unwilling().into_result(),
        )),
        LdapOp::ExtendedRequest(request) => match request.name.as_str() {
            START_TLS if session.encrypted => {
                reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                    res: diagnostics::operations_error().into_result(),
                    name: None,
                    value: None,
                }))
            }
            START_TLS => (
                vec![LdapMsg::new(
                    msgid,
                    LdapOp::ExtendedResponse(LdapExtendedResponse {
                        res: diagnostics::success(),
                        name: Some(START_TLS.to_string()),
                        value: None,
                    }),
                )],
                Flow::StartTls,
            ),
            WHO_AM_I => reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                res: diagnostics::success(),
                name: None,
                value: Some(who_am_i(state, session).into_bytes()),
            })),
            _ => reply(LdapOp::ExtendedResponse(LdapExtendedResponse {
                res: diagnostics::unknown_extended_operation().into_result(),
                name: None,
                value: None,
            })),
        },
        // Responses and other messages a server never receives from a client.
        _ => {
            tracing::warn!(connection = session.id, peer = %session.peer, operation = operation_name(&msg.op), "closing the connection after a message only servers send");
            let notice = DisconnectionNotice::gen_response(LdapResultCode::ProtocolError, "");
            (vec![notice], Flow::Close)
        }
    }
}

/// Builds AD's response to "Who am I?": `u:DOMAIN\user`, or nothing for an anonymous
/// connection.
fn who_am_i(state: &LabState, session: &Session) -> String {
    let Some(principal) = &session.principal else {
        return String::new();
    };
    let world = state.read();
    world
        .directory
        .users
        .get(&principal.user)
        .map(|user| format!("u:{}\\{}", world.directory.netbios, user.sam))
        .unwrap_or_default()
}

/// Returns the operation name used for faults, the journal and logs.
fn operation_name(op: &LdapOp) -> &'static str {
    match op {
        LdapOp::BindRequest(_) => "bind",
        LdapOp::UnbindRequest => "unbind",
        LdapOp::SearchRequest(_) => "search",
        LdapOp::ModifyRequest(_) => "modify",
        LdapOp::AddRequest(_) => "add",
        LdapOp::DelRequest(_) => "delete",
        LdapOp::ModifyDNRequest(_) => "modifyDN",
        LdapOp::CompareRequest(_) => "compare",
        LdapOp::AbandonRequest(_) => "abandon",
        LdapOp::ExtendedRequest(_) => "extended",
        _ => "response",
    }
}

/// Builds the response of `op`'s kind carrying `result`.
fn response_for(op: &LdapOp, msgid: i32, result: LdapResult) -> LdapMsg {
    let response = match op {
        LdapOp::BindRequest(_) => LdapOp::BindResponse(LdapBindResponse {
            res: result,
            saslcreds: None,
        }),
        LdapOp::SearchRequest(_) => LdapOp::SearchResultDone(result),
        LdapOp::ModifyRequest(_) => LdapOp::ModifyResponse(result),
        LdapOp::AddRequest(_) => LdapOp::AddResponse(result),
        LdapOp::DelRequest(_) => LdapOp::DelResponse(result),
        LdapOp::ModifyDNRequest(_) => LdapOp::ModifyDNResponse(result),
        LdapOp::CompareRequest(_) => LdapOp::CompareResult(result),
        _ => LdapOp::ExtendedResponse(LdapExtendedResponse {
            res: result,
            name: None,
            value: None,
        }),
    };
    LdapMsg::new(msgid, response)
}

/// Returns the result code of a response message.
fn result_code(msg: &LdapMsg) -> Option<LdapResultCode> {
    match &msg.op {
        LdapOp::BindResponse(response) => Some(response.res.code.clone()),
        LdapOp::ExtendedResponse(response) => Some(response.res.code.clone()),
        LdapOp::SearchResultDone(result)
        | LdapOp::ModifyResponse(result)
        | LdapOp::AddResponse(result)
        | LdapOp::DelResponse(result)
        | LdapOp::ModifyDNResponse(result)
        | LdapOp::CompareResult(result) => Some(result.code.clone()),
        _ => None,
    }
}
