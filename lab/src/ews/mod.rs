//! EWS and Autodiscover of the on-premises Exchange server, and EWS of Exchange Online.
//!
//! Every EWS request goes through the same steps: read the body (at most
//! [`MAX_REQUEST_BYTES`]), authenticate, parse the SOAP envelope, apply injected faults, resolve
//! impersonation, run the operation under the world's lock, and respond with the envelope,
//! `ServerVersionInfo` and the `s:`/`m:`/`t:` prefixes Exchange uses. Paths are matched without
//! case, as IIS matches them.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/ews-operations-in-exchange>.

pub mod auth;
pub(crate) mod autodiscover;
pub mod ids;
pub mod mailbox;
mod ops;
pub mod props;
pub mod restriction;
pub mod soap;
pub mod xml;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::LabState;
use crate::faults::{FaultKind, Service};
use crate::serve::{Connection, DropConnection};
use auth::Caller;
use mailbox::{Deployment, Principal};
use soap::{Fault, ServerVersion};

/// Largest request body accepted: 64 MiB, the WCF `maxReceivedMessageSize` that Exchange
/// configures for EWS. A larger body gets HTTP 413.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Builds the on-premises Exchange router: `/EWS/Exchange.asmx` and Autodiscover.
pub fn on_premises_router(state: Arc<LabState>) -> Router {
    Router::new().fallback(on_premises).with_state(state)
}

/// Builds the Exchange Online router: `/EWS/Exchange.asmx` with Bearer tokens.
pub fn online_router(state: Arc<LabState>) -> Router {
    Router::new().fallback(online).with_state(state)
}

async fn on_premises(State(state): State<Arc<LabState>>, request: Request) -> Response {
    let path = request.uri().path().to_ascii_lowercase();
    match path.as_str() {
        "/ews/exchange.asmx" => serve(state, Deployment::OnPremises, request).await,
        "/autodiscover/autodiscover.xml" => autodiscover::pox(state, request).await,
        "/autodiscover/autodiscover.svc" => autodiscover::soap(state, request).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn online(State(state): State<Arc<LabState>>, request: Request) -> Response {
    if request
        .uri()
        .path()
        .eq_ignore_ascii_case("/EWS/Exchange.asmx")
    {
        serve(state, Deployment::Online, request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// Returns the `ServerVersionInfo` a deployment reports.
fn server_version(deployment: Deployment) -> &'static ServerVersion {
    match deployment {
        Deployment::OnPremises => &soap::ON_PREMISES_VERSION,
        Deployment::Online => &soap::ONLINE_VERSION,
    }
}

/// Reads a request body up to [`MAX_REQUEST_BYTES`], or returns the error response: 413 for a
/// larger body, as soon as its `Content-Length` shows it, and 400 for a body that stalls or
/// breaks off.
pub(crate) async fn read_body(body: Body) -> Result<bytes::Bytes, Response> {
    let declared = axum::body::HttpBody::size_hint(&body).lower();
    if declared > MAX_REQUEST_BYTES as u64 {
        tracing::debug!(declared, "request body is larger than the limit");
        return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
    }
    let mut chunks = body.into_data_stream();
    let mut collected = bytes::BytesMut::new();
    while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
        let chunk = chunk.map_err(|error| {
            tracing::debug!(%error, "failed to read the request body");
            StatusCode::BAD_REQUEST.into_response()
        })?;
        if collected.len() + chunk.len() > MAX_REQUEST_BYTES {
            tracing::debug!("request body is larger than the limit");
            return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// A parsed EWS request, kept until authentication decides whether it is served.
enum Parsed {
    Request(soap::Request),
    Fault(Fault),
}

impl Parsed {
    fn operation(&self) -> &str {
        match self {
            Parsed::Request(request) => &request.operation.name,
            Parsed::Fault(_) => "invalid",
        }
    }
}

fn parse(body: &[u8]) -> Parsed {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            return Parsed::Fault(Fault::schema_violation_at(
                1,
                error.valid_up_to() + 1,
                "The request is not valid UTF-8.".into(),
            ));
        }
    };
    match xml::parse(text) {
        Ok(root) => match soap::Request::from_envelope(root) {
            Ok(request) => Parsed::Request(request),
            Err(fault) => Parsed::Fault(fault),
        },
        Err(error) => Parsed::Fault(Fault::schema_violation_at(
            error.line,
            error.column,
            error.message,
        )),
    }
}

async fn serve(state: Arc<LabState>, deployment: Deployment, request: Request) -> Response {
    let started = Instant::now();
    let service = deployment.service();
    let version = server_version(deployment);
    let connection = request.extensions().get::<Arc<Connection>>().cloned();
    let (parts, body) = request.into_parts();

    // 1. Read the whole body first, so that a 401 keeps the connection usable for NTLM.
    let body = match read_body(body).await {
        Ok(body) => body,
        Err(response) => {
            finish(&state, service, "unknown", &response, started, None);
            return response;
        }
    };
    let parsed = parse(&body);
    let operation = parsed.operation().to_string();

    // 2. Authenticate.
    let authenticated = match deployment {
        Deployment::OnPremises => {
            auth::on_premises(&state, connection.as_ref(), &parts.headers).await
        }
        Deployment::Online => auth::online(&state, &parts.headers),
    };
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(response) => {
            finish(&state, service, &operation, &response, started, None);
            return *response;
        }
    };
    if parts.method != Method::POST {
        let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        finish(
            &state,
            service,
            &operation,
            &response,
            started,
            Some(&caller),
        );
        return response;
    }
    state.journal.capture(service, &operation, "request", &body);

    // 3. Requests that cannot run get their fault before any injected fault applies.
    let request = match parsed {
        Parsed::Request(request) if ops::is_served(&request.operation.name) => request,
        Parsed::Request(request) => {
            let fault = ops::unsupported(&request.operation.name);
            return respond_fault(&state, deployment, &operation, &fault, started, &caller);
        }
        Parsed::Fault(fault) => {
            return respond_fault(&state, deployment, &operation, &fault, started, &caller);
        }
    };

    // 4. Injected faults and latency.
    let decision = state.faults.decide(service, &operation);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = decision.fault {
        return respond_injected(&state, deployment, &operation, fault, started, &caller);
    }

    // 5. Impersonation and the operation itself, under the world's lock.
    if deployment == Deployment::Online
        && let Some(anchor) = parts
            .headers
            .get("x-anchormailbox")
            .and_then(|v| v.to_str().ok())
        && request
            .impersonation
            .as_ref()
            .is_some_and(|sid| !sid.value().eq_ignore_ascii_case(anchor))
    {
        // Exchange Online routes by X-AnchorMailbox and authorizes by ExchangeImpersonation.
        tracing::debug!(
            anchor,
            "X-AnchorMailbox names another mailbox than the impersonated one"
        );
    }
    let result = run(&state, deployment, &caller, &request);
    match result {
        Ok(body) => {
            let text = soap::envelope(version, &body);
            state
                .journal
                .capture(service, &operation, "response", text.as_bytes());
            let response = xml_response(StatusCode::OK, text);
            finish(
                &state,
                service,
                &operation,
                &response,
                started,
                Some(&caller),
            );
            response
        }
        Err(fault) => respond_fault(&state, deployment, &operation, &fault, started, &caller),
    }
}

fn run(
    state: &LabState,
    deployment: Deployment,
    caller: &Caller,
    request: &soap::Request,
) -> Result<String, Fault> {
    let operation = &request.operation;
    if ops::writes(&operation.name) {
        let mut world = state.write();
        let principal =
            Principal::resolve(&world, deployment, caller, request.impersonation.as_ref())?;
        ops::write(&mut world, &principal, operation)
    } else {
        let world = state.read();
        let principal =
            Principal::resolve(&world, deployment, caller, request.impersonation.as_ref())?;
        ops::read(&world, &principal, operation)
    }
}

fn respond_fault(
    state: &LabState,
    deployment: Deployment,
    operation: &str,
    fault: &Fault,
    started: Instant,
    caller: &Caller,
) -> Response {
    let service = deployment.service();
    tracing::debug!(
        service = service.name(),
        operation,
        code = fault.code,
        "answering with a SOAP fault"
    );
    let text = fault.to_envelope(server_version(deployment));
    state
        .journal
        .capture(service, operation, "response", text.as_bytes());
    let response = xml_response(StatusCode::INTERNAL_SERVER_ERROR, text);
    finish(state, service, operation, &response, started, Some(caller));
    response
}

/// Renders an injected fault as Exchange sends it.
fn respond_injected(
    state: &LabState,
    deployment: Deployment,
    operation: &str,
    fault: FaultKind,
    started: Instant,
    caller: &Caller,
) -> Response {
    let service = deployment.service();
    let response = match fault {
        FaultKind::ServerBusy { back_off_ms } => {
            return respond_fault(
                state,
                deployment,
                operation,
                &Fault::server_busy(back_off_ms),
                started,
                caller,
            );
        }
        FaultKind::ExceededConnectionCount => {
            return respond_fault(
                state,
                deployment,
                operation,
                &Fault::exceeded_connection_count(),
                started,
                caller,
            );
        }
        FaultKind::Status { code } => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        FaultKind::TooManyRequests { retry_after_secs } => {
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after_secs.to_string())
                    .expect("digits are a valid header value"),
            );
            response
        }
        FaultKind::Drop => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            response
        }
        // Latency is applied before the fault is rendered and never reaches here alone.
        FaultKind::Latency { .. } => StatusCode::OK.into_response(),
    };
    tracing::debug!(
        service = service.name(),
        operation,
        ?fault,
        "answering with an injected fault"
    );
    finish(state, service, operation, &response, started, Some(caller));
    response
}

fn xml_response(status: StatusCode, text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// Records a finished request in the journal and the log.
fn finish(
    state: &LabState,
    service: Service,
    operation: &str,
    response: &Response,
    started: Instant,
    caller: Option<&Caller>,
) {
    let elapsed: Duration = started.elapsed();
    let status = response.status().as_u16();
    let actor = caller.map(Caller::actor);
    state
        .journal
        .record(service, operation, status, elapsed, actor);
    tracing::debug!(
        service = service.name(),
        operation,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        actor,
        "request served"
    );
}
