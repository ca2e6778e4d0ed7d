//! Autodiscover of the on-premises server: the POX service (`autodiscover.xml`) and the SOAP
//! service's `GetUserSettings` (`autodiscover.svc`).
//!
//! A mailbox on the server gets the lab's on-premises EWS URL. A cloud mailbox is a remote
//! mailbox here, so the response is what a hybrid server sends: a redirect to its target
//! address, `alias@<tenant initial domain>`. Addresses the organization does not know,
//! in any domain, get "The email address can't be found." (POX error 500) or `InvalidUser`.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/exchange-web-services/autodiscover-for-exchange>.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::auth;
use super::xml::{self, escape};
use crate::faults::{FaultKind, Service};
use crate::fixture::MailboxLocation;
use crate::serve::{Connection, DropConnection};
use crate::world::directory::User;
use crate::{LabState, World};

/// The outer POX response schema.
const POX_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";
/// The Outlook provider's response schema.
const OUTLOOK_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// The mobile sync provider's response schema.
const MOBILESYNC_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";
/// The SOAP Autodiscover namespace.
const SOAP_AUTODISCOVER: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";

/// The result of looking up an address.
enum Lookup<'a> {
    /// A mailbox on this server.
    Local(&'a User),
    /// A mailbox in Exchange Online: redirect to this target address.
    Remote(String),
    /// No mailbox of the organization has this address.
    Unknown,
}

fn lookup<'a>(world: &'a World, address: &str) -> Lookup<'a> {
    let Some(user) = world.directory.user_by_address(address) else {
        return Lookup::Unknown;
    };
    match world.exchange.mailboxes.get(&user.id).map(|m| m.location) {
        Some(MailboxLocation::OnPremises) => Lookup::Local(user),
        Some(MailboxLocation::Cloud) => Lookup::Remote(target_address(world, user)),
        _ => Lookup::Unknown,
    }
}

/// Returns the `targetAddress` of a remote mailbox: its alias at the tenant's initial domain.
pub(crate) fn target_address(world: &World, user: &User) -> String {
    let primary = user.mail.as_deref().unwrap_or(&user.upn);
    let alias = primary.split('@').next().unwrap_or(primary);
    format!("{alias}@{}", world.tenant.initial_domain)
}

/// Returns the `legacyExchangeDN` of a mailbox.
fn legacy_dn(world: &World, user: &User) -> String {
    format!(
        "/o={}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn={}-{}",
        world.directory.netbios,
        user.id.simple(),
        user.sam.to_lowercase()
    )
}

/// Renders an injected fault for Autodiscover, or returns `None` when the request goes on.
async fn injected(state: &LabState, operation: &str) -> Option<Response> {
    let decision = state.faults.decide(Service::Autodiscover, operation);
    if let Some(latency) = decision.latency {
        tokio::time::sleep(latency).await;
    }
    let response = match decision.fault? {
        FaultKind::Status { code } => StatusCode::from_u16(code)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        FaultKind::TooManyRequests { retry_after_secs } => {
            let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        FaultKind::Drop => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            response
        }
        FaultKind::ServerBusy { .. }
        | FaultKind::ExceededConnectionCount
        | FaultKind::Latency { .. } => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    Some(response)
}

fn record(
    state: &LabState,
    operation: &str,
    response: &Response,
    started: Instant,
    actor: Option<&str>,
) {
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .journal
        .record(Service::Autodiscover, operation, status, elapsed, actor);
    tracing::debug!(
        service = Service::Autodiscover.name(),
        operation,
        status,
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        actor,
        "request served"
    );
}

fn xml_response(text: String) -> Response {
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

/// `GET` or `POST /autodiscover/autodiscover.xml`.
pub async fn pox(state: Arc<LabState>, request: Request) -> Response {
    let started = Instant::now();
    let connection = request.extensions().get::<Arc<Connection>>().cloned();
    let (parts, body) = request.into_parts();
    let body = match super::read_body(body).await {
        Ok(body) => body,
        Err(response) => {
            record(&state, "pox", &response, started, None);
            return response;
        }
    };
    let caller = match auth::on_premises(&state, connection.as_ref(), &parts.headers).await {
        Ok(caller) => caller,
        Err(response) => {
            record(&state, "pox", &response, started, None);
            return *response;
        }
    };
    if let Some(response) = injected(&state, "pox").await {
        record(&state, "pox", &response, started, Some(caller.actor()));
        return response;
    }

    let response = xml_response(if parts.method == Method::POST {
        pox_answer(&state, &body)
    } else {
        // Exchange answers an authenticated GET, which has no request body, as invalid.
        pox_error(600, "Invalid Request")
    });
    record(&state, "pox", &response, started, Some(caller.actor()));
    response
}

fn pox_answer(state: &LabState, body: &[u8]) -> String {
    let Some(root) = std::str::from_utf8(body)
        .ok()
        .and_then(|t| xml::parse(t).ok())
    else {
        return pox_error(600, "Invalid Request");
    };
    let (Some(address), Some(schema)) = (
        root.path(&["Request", "EMailAddress"])
            .map(|e| e.text.trim().to_string()),
        root.path(&["Request", "AcceptableResponseSchema"])
            .map(|e| e.text.trim().to_string()),
    ) else {
        return pox_error(600, "Invalid Request");
    };
    if root.name != "Autodiscover" {
        return pox_error(600, "Invalid Request");
    }
    let mobile = match schema.as_str() {
        OUTLOOK_SCHEMA => false,
        MOBILESYNC_SCHEMA => true,
        _ => return pox_error(601, "Provider is not available"),
    };

    let world = state.read();
    let ews = state.endpoints().ews.to_string();
    let user = match lookup(&world, &address) {
        Lookup::Local(user) => user,
        Lookup::Remote(target) => return pox_redirect(&schema, &target),
        Lookup::Unknown => return pox_error(500, "The email address can't be found."),
    };

    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{POX_RESPONSE_SCHEMA}"><Response xmlns="{schema}">"#
    );
    let display = escape(&user.display_name);
    let smtp = escape(user.mail.as_deref().unwrap_or(&user.upn));
    if mobile {
        let base = ews.trim_end_matches("/EWS/Exchange.asmx");
        let _ = write!(
            out,
            "<Culture>en:us</Culture><User><DisplayName>{display}</DisplayName><EMailAddress>{smtp}</EMailAddress></User><Action><Settings><Server><Type>MobileSync</Type><Url>{base}/Microsoft-Server-ActiveSync</Url><Name>{base}/Microsoft-Server-ActiveSync</Name></Server></Settings></Action>"
        );
    } else {
        let legacy = legacy_dn(&world, user);
        let legacy = escape(&legacy);
        let _ = write!(
            out,
            "<User><DisplayName>{display}</DisplayName><LegacyDN>{legacy}</LegacyDN><AutoDiscoverSMTPAddress>{smtp}</AutoDiscoverSMTPAddress><DeploymentId>{tenant}</DeploymentId></User><Account><AccountType>email</AccountType><Action>settings</Action><MicrosoftOnline>False</MicrosoftOnline><Protocol><Type>EXCH</Type><Server>{server}</Server><ServerVersion>73C18880</ServerVersion><ASUrl>{ews}</ASUrl><EwsUrl>{ews}</EwsUrl><EmwsUrl>{ews}</EmwsUrl><EcpUrl>{ecp}</EcpUrl></Protocol><Protocol><Type>EXPR</Type><Server>{server}</Server><ASUrl>{ews}</ASUrl><EwsUrl>{ews}</EwsUrl><EmwsUrl>{ews}</EmwsUrl></Protocol></Account>",
            tenant = world.tenant.id,
            server = escape(&format!("mail.{}", world.directory.domain)),
            ews = escape(&ews),
            ecp = escape(&ews.replace("/EWS/Exchange.asmx", "/ecp/")),
        );
    }
    out.push_str("</Response></Autodiscover>");
    out
}

fn pox_redirect(schema: &str, target: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{POX_RESPONSE_SCHEMA}"><Response xmlns="{schema}"><Account><Action>redirectAddr</Action><RedirectAddr>{}</RedirectAddr></Account></Response></Autodiscover>"#,
        escape(target)
    )
}

fn pox_error(code: u16, message: &str) -> String {
    // Exchange writes the time of day with seven fractional digits (100 ns ticks).
    let now = Utc::now();
    let time = format!(
        "{}.{:07}",
        now.format("%H:%M:%S"),
        now.timestamp_subsec_nanos() / 100
    );
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{POX_RESPONSE_SCHEMA}"><Response><Error Time="{time}" Id="{id}"><ErrorCode>{code}</ErrorCode><Message>{message}</Message><DebugData /></Error></Response></Autodiscover>"#,
        id = rand::random::<u32>(),
        message = escape(message),
    )
}

/// The user settings the lab can return.
const KNOWN_SETTINGS: &[&str] = &[
    "UserDisplayName",
    "UserDN",
    "UserDeploymentId",
    "InternalEwsUrl",
    "ExternalEwsUrl",
    "EwsSupportedSchemas",
    "CasVersion",
];

/// `POST /autodiscover/autodiscover.svc`: `GetUserSettings`.
pub async fn soap(state: Arc<LabState>, request: Request) -> Response {
    let started = Instant::now();
    let connection = request.extensions().get::<Arc<Connection>>().cloned();
    let (parts, body) = request.into_parts();
    let body = match super::read_body(body).await {
        Ok(body) => body,
        Err(response) => {
            record(&state, "GetUserSettings", &response, started, None);
            return response;
        }
    };
    let caller = match auth::on_premises(&state, connection.as_ref(), &parts.headers).await {
        Ok(caller) => caller,
        Err(response) => {
            record(&state, "GetUserSettings", &response, started, None);
            return *response;
        }
    };
    let operation = std::str::from_utf8(&body)
        .ok()
        .and_then(|t| xml::parse(t).ok())
        .filter(|root| root.name == "Envelope")
        .and_then(|root| root.child("Body").and_then(|b| b.children.first().cloned()));
    let response = match operation {
        Some(operation) if operation.name == "GetUserSettingsRequestMessage" => {
            match injected(&state, "GetUserSettings").await {
                Some(response) => response,
                None => xml_response(get_user_settings(&state, &operation)),
            }
        }
        other => {
            let action = other.map(|o| o.name).unwrap_or_default();
            tracing::debug!(action, "unsupported Autodiscover SOAP action");
            let mut response = xml_response(format!(
                r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/ws/2005/05/addressing/none">a:ActionNotSupported</faultcode><faultstring xml:lang="en-US">The message with Action '{}' cannot be processed at the receiver.</faultstring></s:Fault></s:Body></s:Envelope>"#,
                escape(&action)
            ));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    };
    record(
        &state,
        "GetUserSettings",
        &response,
        started,
        Some(caller.actor()),
    );
    response
}

fn get_user_settings(state: &LabState, operation: &xml::Element) -> String {
    let request = operation.child("Request");
    let mailboxes: Vec<String> = request
        .and_then(|r| r.child("Users"))
        .map(|users| {
            users
                .children_named("User")
                .filter_map(|u| u.child_text("Mailbox"))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let settings: Vec<String> = request
        .and_then(|r| r.child("RequestedSettings"))
        .map(|s| {
            s.children_named("Setting")
                .map(|s| s.text.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    let world = state.read();
    let ews = state.endpoints().ews.to_string();

    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">{SOAP_AUTODISCOVER}/Autodiscover/GetUserSettingsResponse</a:Action><h:ServerVersionInfo xmlns:h="{SOAP_AUTODISCOVER}" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><h:MajorVersion>15</h:MajorVersion><h:MinorVersion>2</h:MinorVersion><h:MajorBuildNumber>1544</h:MajorBuildNumber><h:MinorBuildNumber>4</h:MinorBuildNumber><h:Version>Exchange2015</h:Version></h:ServerVersionInfo></s:Header><s:Body><GetUserSettingsResponseMessage xmlns="{SOAP_AUTODISCOVER}"><Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">"#
    );
    if mailboxes.is_empty() || settings.is_empty() {
        out.push_str("<ErrorCode>InvalidRequest</ErrorCode><ErrorMessage>The request is invalid.</ErrorMessage><UserResponses/>");
    } else {
        out.push_str("<ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>");
        for mailbox in &mailboxes {
            write_user_response(&mut out, &world, &ews, mailbox, &settings);
        }
        out.push_str("</UserResponses>");
    }
    out.push_str("</Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>");
    out
}

fn write_user_response(
    out: &mut String,
    world: &World,
    ews: &str,
    mailbox: &str,
    settings: &[String],
) {
    let user = match lookup(world, mailbox) {
        Lookup::Local(user) => user,
        Lookup::Remote(target) => {
            let _ = write!(
                out,
                "<UserResponse><ErrorCode>RedirectAddress</ErrorCode><ErrorMessage>Redirection address.</ErrorMessage><RedirectTarget>{}</RedirectTarget><UserSettingErrors/><UserSettings/></UserResponse>",
                escape(&target)
            );
            return;
        }
        Lookup::Unknown => {
            let _ = write!(
                out,
                r#"<UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user: '{}'</ErrorMessage><RedirectTarget i:nil="true"/><UserSettingErrors/><UserSettings/></UserResponse>"#,
                escape(mailbox)
            );
            return;
        }
    };
    out.push_str(r#"<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage><RedirectTarget i:nil="true"/>"#);
    let unknown: Vec<&String> = settings
        .iter()
        .filter(|s| !KNOWN_SETTINGS.contains(&s.as_str()))
        .collect();
    if unknown.is_empty() {
        out.push_str("<UserSettingErrors/>");
    } else {
        out.push_str("<UserSettingErrors>");
        for name in unknown {
            let _ = write!(
                out,
                "<UserSettingError><ErrorCode>InvalidSetting</ErrorCode><ErrorMessage>The requested setting is invalid.</ErrorMessage><SettingName>{}</SettingName></UserSettingError>",
                escape(name)
            );
        }
        out.push_str("</UserSettingErrors>");
    }
    out.push_str("<UserSettings>");
    for name in settings
        .iter()
        .filter(|s| KNOWN_SETTINGS.contains(&s.as_str()))
    {
        let value = match name.as_str() {
            "UserDisplayName" => user.display_name.clone(),
            "UserDN" => legacy_dn(world, user),
            "UserDeploymentId" => world.tenant.id.to_string(),
            "InternalEwsUrl" | "ExternalEwsUrl" => ews.to_string(),
            "EwsSupportedSchemas" => "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, Exchange2013_SP1, Exchange2015, Exchange2016".into(),
            _ => "73C18880".into(),
        };
        let _ = write!(
            out,
            r#"<UserSetting i:type="StringSetting"><Name>{}</Name><Value>{}</Value></UserSetting>"#,
            escape(name),
            escape(&value)
        );
    }
    out.push_str("</UserSettings></UserResponse>");
}
