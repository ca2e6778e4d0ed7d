//! Autodiscover: finds the EWS URL of a mailbox from its SMTP address.
//!
//! The candidates come from the address's domain, in the order Exchange documents
//! (<https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/autodiscover-for-exchange>):
//!
//! 1. POX: a POST of the Outlook request schema to `https://DOMAIN/autodiscover/autodiscover.xml`,
//!    then to `https://autodiscover.DOMAIN/autodiscover/autodiscover.xml`, reading the
//!    `EwsUrl` of the `EXPR` or `EXCH` protocol.
//! 2. SOAP: `GetUserSettings` at the same hosts under `/autodiscover/autodiscover.svc`,
//!    reading `ExternalEwsUrl` or `InternalEwsUrl`.
//! 3. An unauthenticated GET of `http://autodiscover.DOMAIN/autodiscover/autodiscover.xml`
//!    whose 301 or 302 names an https endpoint, which then gets the POX request.
//!
//! A response can redirect to another address (restart with the new domain) or another
//! URL (resend there); redirects are followed up to a bound, only to https URLs, and never
//! twice to the same URL for the same address
//! (<https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/handling-autodiscover-error-messages>).
//! Service connection point lookup in Active Directory and DNS SRV records are not tried.

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use quick_xml::escape::escape;
use serde::Deserialize;
use tracing::{debug, info};
use url::Url;

use super::ews::auth::EwsAuth;
use super::ews::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use crate::http::{HttpError, HttpSettings};

/// The namespace of POX Autodiscover requests for Outlook settings.
const POX_REQUEST_NAMESPACE: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006";
/// The response schema that POX requests ask for.
const POX_RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// The namespace of SOAP Autodiscover.
const SOAP_AUTODISCOVER_NAMESPACE: &str = "http://schemas.microsoft.com/exchange/2010/Autodiscover";
/// The SOAP action of `GetUserSettings`.
const GET_USER_SETTINGS_ACTION: &str =
    "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings";

/// The default bound on address and URL redirects in one discovery.
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// The kind of Autodiscover request of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// A POX POST to `autodiscover.xml`.
    Pox,
    /// A SOAP `GetUserSettings` POST to `autodiscover.svc`.
    Soap,
    /// The unauthenticated GET that looks for an https redirect.
    HttpRedirect,
}

impl fmt::Display for AttemptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pox => "POX",
            Self::Soap => "SOAP",
            Self::HttpRedirect => "HTTP redirect",
        })
    }
}

/// One candidate that was tried, and why it gave no EWS URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The request kind.
    pub kind: AttemptKind,
    /// The URL tried.
    pub url: String,
    /// The address the request asked about.
    pub address: String,
    /// The failure that came instead of an EWS URL.
    pub failure: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.kind, self.url, self.address, self.failure
        )
    }
}

/// The result of a successful discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The EWS URL.
    pub ews_url: Url,
    /// The Autodiscover endpoint that returned it.
    pub endpoint: Url,
    /// The request kind that returned it.
    pub kind: AttemptKind,
    /// The address that was finally looked up, after address redirects.
    pub address: String,
    /// The candidates that failed before, in order.
    pub failed_attempts: Vec<Attempt>,
}

/// A failed discovery.
#[derive(Debug, thiserror::Error)]
pub enum AutodiscoverError {
    /// The address has no domain part.
    #[error("invalid mailbox address {address:?} for Autodiscover: expected user@domain")]
    InvalidAddress {
        /// The address as given.
        address: String,
    },
    /// No candidate returned an EWS URL.
    #[error("Autodiscover found no EWS URL for {address}; set the EWS URL in the spec instead, or fix the first failure below:{}", attempts.iter().map(|attempt| format!("\n  - {attempt}")).collect::<String>())]
    NotFound {
        /// The address as given.
        address: String,
        /// Every candidate tried, in order.
        attempts: Vec<Attempt>,
    },
    /// The HTTP client could not be built.
    #[error("failed to set up Autodiscover")]
    Settings(#[source] HttpError),
}

/// The outcome of one Autodiscover response.
enum Outcome {
    Found(Url),
    RedirectAddress(String),
    RedirectUrl(Url),
    Failed(String),
}

/// An Autodiscover client.
pub struct Autodiscover {
    transport: Transport,
    anonymous: Transport,
    max_redirects: usize,
}

impl fmt::Debug for Autodiscover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Autodiscover")
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

impl Autodiscover {
    /// Creates a client that authenticates with `auth`.
    pub fn new(settings: &HttpSettings, auth: EwsAuth) -> Result<Self, AutodiscoverError> {
        Ok(Self {
            transport: Transport::new(settings, auth, 1).map_err(AutodiscoverError::Settings)?,
            anonymous: Transport::new(settings, EwsAuth::None, 1)
                .map_err(AutodiscoverError::Settings)?,
            max_redirects: DEFAULT_MAX_REDIRECTS,
        })
    }

    /// Sets the bound on address and URL redirects.
    pub fn with_max_redirects(mut self, max_redirects: usize) -> Self {
        self.max_redirects = max_redirects;
        self
    }

    /// Finds the EWS URL for the mailbox `address`.
    pub async fn discover(&self, address: &str) -> Result<Discovery, AutodiscoverError> {
        let mut attempts = Vec::new();
        let mut redirects = 0usize;
        let mut current = address.to_owned();

        'address: loop {
            let domain = domain_of(&current).ok_or_else(|| AutodiscoverError::InvalidAddress {
                address: current.clone(),
            })?;
            info!(address = %current, domain, "starting Autodiscover");
            let mut visited = HashSet::new();

            // 1. and 2. POX, then SOAP, at the domain and at autodiscover.DOMAIN.
            let mut candidates = Vec::new();
            for kind in [AttemptKind::Pox, AttemptKind::Soap] {
                let file = match kind {
                    AttemptKind::Soap => "autodiscover.svc",
                    _ => "autodiscover.xml",
                };
                for host in [domain.to_owned(), format!("autodiscover.{domain}")] {
                    if let Ok(url) = Url::parse(&format!("https://{host}/autodiscover/{file}")) {
                        candidates.push((kind, url));
                    }
                }
            }

            for (kind, url) in candidates {
                match self
                    .try_endpoint(
                        kind,
                        url,
                        &current,
                        &mut visited,
                        &mut redirects,
                        &mut attempts,
                    )
                    .await
                {
                    Some(Ok(discovery)) => return Ok(discovery.with_attempts(attempts)),
                    Some(Err(new_address)) => {
                        current = new_address;
                        continue 'address;
                    }
                    None => {}
                }
                if redirects > self.max_redirects {
                    break 'address;
                }
            }

            // 3. The unauthenticated GET for an https redirect.
            let probe = format!("http://autodiscover.{domain}/autodiscover/autodiscover.xml");
            if let Some(target) = self.http_redirect(&probe, &current, &mut attempts).await {
                let kind = if target.path().ends_with(".svc") {
                    AttemptKind::Soap
                } else {
                    AttemptKind::Pox
                };
                redirects += 1;
                match self
                    .try_endpoint(
                        kind,
                        target,
                        &current,
                        &mut visited,
                        &mut redirects,
                        &mut attempts,
                    )
                    .await
                {
                    Some(Ok(discovery)) => return Ok(discovery.with_attempts(attempts)),
                    Some(Err(new_address)) if redirects <= self.max_redirects => {
                        current = new_address;
                        continue 'address;
                    }
                    _ => {}
                }
            }
            break;
        }

        Err(AutodiscoverError::NotFound {
            address: address.to_owned(),
            attempts,
        })
    }

    /// Tries one endpoint and follows its URL redirects. Returns the discovery, or the
    /// new address of an address redirect, or `None` when the endpoint gave nothing.
    async fn try_endpoint(
        &self,
        kind: AttemptKind,
        mut url: Url,
        address: &str,
        visited: &mut HashSet<String>,
        redirects: &mut usize,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Result<Discovery, String>> {
        loop {
            let mut record = |url: &Url, failure: String| {
                debug!(%kind, url = %url, address, failure, "Autodiscover candidate failed");
                attempts.push(Attempt {
                    kind,
                    url: url.to_string(),
                    address: address.to_owned(),
                    failure,
                });
            };

            if !visited.insert(url.to_string()) {
                record(&url, "already tried for this address".to_owned());
                return None;
            }

            let outcome = match kind {
                AttemptKind::Soap => self.soap(&url, address).await,
                _ => self.pox(&url, address).await,
            };
            match outcome {
                Outcome::Found(ews_url) => {
                    info!(%kind, endpoint = %url, %ews_url, address, "Autodiscover found the EWS URL");
                    return Some(Ok(Discovery {
                        ews_url,
                        endpoint: url,
                        kind,
                        address: address.to_owned(),
                        failed_attempts: Vec::new(),
                    }));
                }
                Outcome::Failed(failure) => {
                    record(&url, failure);
                    return None;
                }
                Outcome::RedirectAddress(new_address) => {
                    if new_address.eq_ignore_ascii_case(address) {
                        record(
                            &url,
                            format!("redirected to the same address {new_address}"),
                        );
                        return None;
                    }
                    *redirects += 1;
                    if *redirects > self.max_redirects {
                        record(
                            &url,
                            format!(
                                "redirect to {new_address} exceeds the limit of {} redirects",
                                self.max_redirects
                            ),
                        );
                        return None;
                    }
                    record(&url, format!("redirected to address {new_address}"));
                    return Some(Err(new_address));
                }
                Outcome::RedirectUrl(new_url) => {
                    if new_url.scheme() != "https" {
                        record(&url, format!("redirected to {new_url}, which is not https"));
                        return None;
                    }
                    *redirects += 1;
                    if *redirects > self.max_redirects {
                        record(
                            &url,
                            format!(
                                "redirect to {new_url} exceeds the limit of {} redirects",
                                self.max_redirects
                            ),
                        );
                        return None;
                    }
                    record(&url, format!("redirected to {new_url}"));
                    url = new_url;
                }
            }
        }
    }

    /// Sends the POX request to `url`.
    async fn pox(&self, url: &Url, address: &str) -> Outcome {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{POX_REQUEST_NAMESPACE}"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>{POX_RESPONSE_SCHEMA}</AcceptableResponseSchema></Request></Autodiscover>"#,
            escape(address)
        );
        let request = HttpRequest {
            method: Method::POST,
            url,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/xml; charset=utf-8"),
            )],
            body: Bytes::from(body),
        };
        match self.transport.send(&request).await {
            Ok(response) => match http_outcome(url, &response) {
                Some(outcome) => outcome,
                None => parse_pox(&response.body),
            },
            Err(error) => Outcome::Failed(describe_transport_error(&error)),
        }
    }

    /// Sends the SOAP `GetUserSettings` request to `url`.
    async fn soap(&self, url: &Url, address: &str) -> Outcome {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="{SOAP_AUTODISCOVER_NAMESPACE}" xmlns:wsa="http://www.w3.org/2005/08/addressing"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>{GET_USER_SETTINGS_ACTION}</wsa:Action><wsa:To>{}</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"#,
            escape(url.as_str()),
            escape(address)
        );
        let request = HttpRequest {
            method: Method::POST,
            url,
            headers: vec![
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/xml; charset=utf-8"),
                ),
                (
                    header::HeaderName::from_static("soapaction"),
                    HeaderValue::from_static(GET_USER_SETTINGS_ACTION),
                ),
            ],
            body: Bytes::from(body),
        };
        match self.transport.send(&request).await {
            Ok(response) => match http_outcome(url, &response) {
                Some(outcome) => outcome,
                None => parse_soap(&response.body),
            },
            Err(error) => Outcome::Failed(describe_transport_error(&error)),
        }
    }

    /// Sends the unauthenticated GET and returns the https URL it redirects to.
    async fn http_redirect(
        &self,
        probe: &str,
        address: &str,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Url> {
        let url = Url::parse(probe).ok()?;
        let request = HttpRequest {
            method: Method::GET,
            url: &url,
            headers: Vec::new(),
            body: Bytes::new(),
        };
        let failure = match self.anonymous.send(&request).await {
            Ok(response) => match http_outcome(&url, &response) {
                Some(Outcome::RedirectUrl(target)) if target.scheme() == "https" => {
                    attempts.push(Attempt {
                        kind: AttemptKind::HttpRedirect,
                        url: url.to_string(),
                        address: address.to_owned(),
                        failure: format!("redirected to {target}"),
                    });
                    return Some(target);
                }
                Some(Outcome::RedirectUrl(target)) => {
                    format!("redirected to {target}, which is not https")
                }
                Some(Outcome::Failed(failure)) => failure,
                _ => format!("HTTP {} instead of a redirect", response.status.as_u16()),
            },
            Err(error) => describe_transport_error(&error),
        };
        attempts.push(Attempt {
            kind: AttemptKind::HttpRedirect,
            url: url.to_string(),
            address: address.to_owned(),
            failure,
        });
        None
    }
}

impl Discovery {
    fn with_attempts(mut self, attempts: Vec<Attempt>) -> Self {
        self.failed_attempts = attempts;
        self
    }
}

fn domain_of(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(['/', ':', ' '])).then_some(domain)
}

/// Interprets the HTTP status: `None` for 200, a redirect for 301/302, else a failure.
fn http_outcome(url: &Url, response: &HttpResponse) -> Option<Outcome> {
    match response.status {
        StatusCode::OK => None,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => {
            let location = response
                .headers
                .get(header::LOCATION)
                .and_then(|value| value.to_str().ok());
            Some(match location.map(|location| url.join(location)) {
                Some(Ok(target)) => Outcome::RedirectUrl(target),
                _ => Outcome::Failed(format!(
                    "HTTP {} without a valid Location",
                    response.status.as_u16()
                )),
            })
        }
        StatusCode::UNAUTHORIZED => Some(Outcome::Failed(
            "HTTP 401: the credentials were rejected here".to_owned(),
        )),
        status => Some(Outcome::Failed(format!("HTTP {}", status.as_u16()))),
    }
}

fn describe_transport_error(error: &TransportError) -> String {
    match error {
        TransportError::Http(source) if super::ews::client::is_tls_error(source) => {
            format!("TLS handshake failed: {source}")
        }
        TransportError::Http(source) if source.is_connect() => format!("cannot connect: {source}"),
        TransportError::Http(source) if source.is_timeout() => "timed out".to_owned(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(error) = source {
                text.push_str(": ");
                text.push_str(&error.to_string());
                source = error.source();
            }
            text
        }
    }
}

#[derive(Debug, Deserialize)]
struct PoxAutodiscover {
    #[serde(rename = "Response")]
    response: PoxResponse,
}

#[derive(Debug, Deserialize)]
struct PoxResponse {
    #[serde(rename = "Error", default)]
    error: Option<PoxError>,
    #[serde(rename = "Account", default)]
    account: Option<PoxAccount>,
}

#[derive(Debug, Deserialize)]
struct PoxError {
    #[serde(rename = "ErrorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PoxAccount {
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(rename = "RedirectAddr", default)]
    redirect_addr: Option<String>,
    #[serde(rename = "RedirectUrl", default)]
    redirect_url: Option<String>,
    #[serde(rename = "Protocol", default)]
    protocols: Vec<PoxProtocol>,
}

#[derive(Debug, Deserialize)]
struct PoxProtocol {
    #[serde(rename = "Type", default)]
    kind: Option<String>,
    #[serde(rename = "EwsUrl", default)]
    ews_url: Option<String>,
}

/// Reads a POX response: the `EwsUrl` of `EXPR`, else of `EXCH`, or a redirect.
fn parse_pox(body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let parsed: PoxAutodiscover = match quick_xml::de::from_str(&text) {
        Ok(parsed) => parsed,
        Err(error) => return Outcome::Failed(format!("not a POX Autodiscover response: {error}")),
    };
    let response = parsed.response;
    if let Some(error) = response.error {
        return Outcome::Failed(format!(
            "error {}: {}",
            error.error_code.unwrap_or_default().trim(),
            error.message.unwrap_or_default().trim()
        ));
    }
    let Some(account) = response.account else {
        return Outcome::Failed("the response has no Account".to_owned());
    };
    match account.action.as_deref().map(str::trim) {
        Some("redirectAddr") => {
            return match account.redirect_addr {
                Some(address) => Outcome::RedirectAddress(address.trim().to_owned()),
                None => Outcome::Failed("redirectAddr without RedirectAddr".to_owned()),
            };
        }
        Some("redirectUrl") => {
            return match account
                .redirect_url
                .as_deref()
                .map(str::trim)
                .map(Url::parse)
            {
                Some(Ok(url)) => Outcome::RedirectUrl(url),
                _ => Outcome::Failed("redirectUrl without a valid RedirectUrl".to_owned()),
            };
        }
        _ => {}
    }
    for wanted in ["EXPR", "EXCH"] {
        let url = account
            .protocols
            .iter()
            .filter(|protocol| protocol.kind.as_deref().map(str::trim) == Some(wanted))
            .find_map(|protocol| protocol.ews_url.as_deref());
        if let Some(url) = url {
            return match Url::parse(url.trim()) {
                Ok(url) => Outcome::Found(url),
                Err(error) => Outcome::Failed(format!("invalid EwsUrl {url:?}: {error}")),
            };
        }
    }
    Outcome::Failed("no EXPR or EXCH protocol with an EwsUrl".to_owned())
}

#[derive(Debug, Deserialize)]
struct SoapEnvelope {
    #[serde(rename = "Body")]
    body: SoapBody,
}

#[derive(Debug, Deserialize)]
struct SoapBody {
    #[serde(rename = "GetUserSettingsResponseMessage")]
    message: GetUserSettingsResponseMessage,
}

#[derive(Debug, Deserialize)]
struct GetUserSettingsResponseMessage {
    #[serde(rename = "Response")]
    response: GetUserSettingsResponse,
}

#[derive(Debug, Deserialize)]
struct GetUserSettingsResponse {
    #[serde(rename = "ErrorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage", default)]
    error_message: Option<String>,
    #[serde(rename = "UserResponses", default)]
    user_responses: Option<UserResponses>,
}

#[derive(Debug, Deserialize)]
struct UserResponses {
    #[serde(rename = "UserResponse", default)]
    user_responses: Vec<UserResponse>,
}

#[derive(Debug, Deserialize)]
struct UserResponse {
    #[serde(rename = "ErrorCode", default)]
    error_code: Option<String>,
    #[serde(rename = "ErrorMessage", default)]
    error_message: Option<String>,
    #[serde(rename = "RedirectTarget", default)]
    redirect_target: Option<String>,
    #[serde(rename = "UserSettings", default)]
    user_settings: Option<UserSettings>,
}

#[derive(Debug, Deserialize)]
struct UserSettings {
    #[serde(rename = "UserSetting", default)]
    settings: Vec<UserSetting>,
}

#[derive(Debug, Deserialize)]
struct UserSetting {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

/// Reads a SOAP `GetUserSettings` response: `ExternalEwsUrl`, else `InternalEwsUrl`, or
/// a redirect.
fn parse_soap(body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let parsed: SoapEnvelope = match quick_xml::de::from_str(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            return Outcome::Failed(format!("not a GetUserSettings response: {error}"));
        }
    };
    let response = parsed.body.message.response;
    let code = response
        .error_code
        .as_deref()
        .map(str::trim)
        .unwrap_or("NoError");
    if code != "NoError" {
        return Outcome::Failed(format!(
            "error {code}: {}",
            response.error_message.unwrap_or_default().trim()
        ));
    }
    let Some(user) = response
        .user_responses
        .and_then(|responses| responses.user_responses.into_iter().next())
    else {
        return Outcome::Failed("the response has no UserResponse".to_owned());
    };
    let target = user
        .redirect_target
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    match user
        .error_code
        .as_deref()
        .map(str::trim)
        .unwrap_or("NoError")
    {
        "NoError" => {}
        "RedirectAddress" => return Outcome::RedirectAddress(target.to_owned()),
        "RedirectUrl" => {
            return match Url::parse(target) {
                Ok(url) => Outcome::RedirectUrl(url),
                Err(_) => Outcome::Failed(format!("RedirectUrl with invalid target {target:?}")),
            };
        }
        other => {
            return Outcome::Failed(format!(
                "error {other}: {}",
                user.error_message.unwrap_or_default().trim()
            ));
        }
    }
    let settings = user
        .user_settings
        .map(|settings| settings.settings)
        .unwrap_or_default();
    for wanted in ["ExternalEwsUrl", "InternalEwsUrl"] {
        let url = settings
            .iter()
            .filter(|setting| setting.name.as_deref().map(str::trim) == Some(wanted))
            .find_map(|setting| setting.value.as_deref());
        if let Some(url) = url {
            return match Url::parse(url.trim()) {
                Ok(url) => Outcome::Found(url),
                Err(error) => Outcome::Failed(format!("invalid {wanted} {url:?}: {error}")),
            };
        }
    }
    Outcome::Failed("no ExternalEwsUrl or InternalEwsUrl setting".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{CaMode, ResolveOverride};
    use crate::providers::exchange::ews::auth::Secret;
    use crate::providers::exchange::test_server::{CannedResponse, TestServer};

    fn pox_settings(ews_url: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
            <Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
              <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
                <User><DisplayName>Alice</DisplayName></User>
                <Account>
                  <AccountType>email</AccountType>
                  <Action>settings</Action>
                  <Protocol><Type>EXCH</Type><Server>MBX01.corp.lab.example</Server><EwsUrl>https://mbx01.corp.lab.example/EWS/Exchange.asmx</EwsUrl></Protocol>
                  <Protocol><Type>EXPR</Type><Server>mail.lab.example</Server><EwsUrl>{ews_url}</EwsUrl></Protocol>
                  <Protocol><Type>WEB</Type></Protocol>
                </Account>
              </Response>
            </Autodiscover>"#
        )
    }

    const SOAP_SETTINGS: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing">
          <s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action></s:Header>
          <s:Body>
            <GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover">
              <Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
                <ErrorCode>NoError</ErrorCode><ErrorMessage/>
                <UserResponses><UserResponse>
                  <ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage>
                  <RedirectTarget i:nil="true"/>
                  <UserSettingErrors/>
                  <UserSettings>
                    <UserSetting i:type="StringSetting"><Name>InternalEwsUrl</Name><Value>https://mbx01.corp.lab.example/EWS/Exchange.asmx</Value></UserSetting>
                    <UserSetting i:type="StringSetting"><Name>ExternalEwsUrl</Name><Value>https://mail.lab.example/EWS/Exchange.asmx</Value></UserSetting>
                  </UserSettings>
                </UserResponse></UserResponses>
              </Response>
            </GetUserSettingsResponseMessage>
          </s:Body>
        </s:Envelope>"#;

    const NAMES: &[&str] = &[
        "lab.example",
        "autodiscover.lab.example",
        "other.example",
        "autodiscover.other.example",
        "mail.lab.example",
    ];

    fn client(https: &TestServer, http: Option<&TestServer>) -> Autodiscover {
        let mut resolve: Vec<ResolveOverride> = NAMES
            .iter()
            .map(|name| ResolveOverride {
                host: (*name).to_owned(),
                addr: https.addr,
            })
            .collect();
        if let Some(http) = http {
            // The plain server takes autodiscover.lab.example, so the https candidates
            // there fail and the GET probe reaches it.
            resolve.retain(|entry| entry.host != "autodiscover.lab.example");
            resolve.push(ResolveOverride {
                host: "autodiscover.lab.example".to_owned(),
                addr: http.addr,
            });
        }
        let settings = HttpSettings {
            ca_file: https.ca_file.clone(),
            ca_mode: CaMode::ReplaceSystemRoots,
            resolve,
            ..HttpSettings::default()
        };
        let auth = EwsAuth::Basic {
            username: "svc-siu@lab.example".to_owned(),
            password: Secret::new("Passw0rd!"),
        };
        Autodiscover::new(&settings, auth).unwrap()
    }

    #[tokio::test]
    async fn pox_at_domain_returns_expr_url() {
        let server = TestServer::https(NAMES, |request| {
            assert!(
                request
                    .body
                    .contains("<EMailAddress>alice@lab.example</EMailAddress>")
            );
            assert!(request.body.contains(POX_REQUEST_NAMESPACE));
            CannedResponse::xml(
                200,
                pox_settings("https://mail.lab.example/EWS/Exchange.asmx"),
            )
        })
        .await;
        let discovery = client(&server, None)
            .discover("alice@lab.example")
            .await
            .unwrap();
        assert_eq!(
            discovery.ews_url.as_str(),
            "https://mail.lab.example/EWS/Exchange.asmx"
        );
        assert_eq!(discovery.kind, AttemptKind::Pox);
        assert_eq!(
            discovery.endpoint.as_str(),
            "https://lab.example/autodiscover/autodiscover.xml"
        );
        assert!(discovery.failed_attempts.is_empty());
        let request = &server.recorded()[0];
        assert_eq!(request.header("host"), Some("lab.example"));
        assert!(
            request
                .header("authorization")
                .unwrap()
                .starts_with("Basic ")
        );
    }

    #[tokio::test]
    async fn soap_is_tried_after_pox_fails() {
        let server = TestServer::https(NAMES, |request| {
            if request.path.ends_with(".svc") {
                assert!(
                    request
                        .body
                        .contains("<a:Mailbox>alice@lab.example</a:Mailbox>")
                );
                assert_eq!(request.header("soapaction"), Some(GET_USER_SETTINGS_ACTION));
                CannedResponse::xml(200, SOAP_SETTINGS)
            } else {
                CannedResponse::xml(404, "")
            }
        })
        .await;
        let discovery = client(&server, None)
            .discover("alice@lab.example")
            .await
            .unwrap();
        assert_eq!(
            discovery.ews_url.as_str(),
            "https://mail.lab.example/EWS/Exchange.asmx"
        );
        assert_eq!(discovery.kind, AttemptKind::Soap);
        assert_eq!(discovery.failed_attempts.len(), 2);
        assert!(
            discovery
                .failed_attempts
                .iter()
                .all(|attempt| attempt.kind == AttemptKind::Pox)
        );
        assert_eq!(discovery.failed_attempts[0].failure, "HTTP 404");
    }

    #[tokio::test]
    async fn address_redirect_restarts_with_new_domain() {
        let server = TestServer::https(NAMES, |request| {
            if request.body.contains("alice@lab.example") {
                CannedResponse::xml(
                    200,
                    r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
                      <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
                        <Account><Action>redirectAddr</Action><RedirectAddr>alice@other.example</RedirectAddr></Account>
                      </Response></Autodiscover>"#,
                )
            } else {
                CannedResponse::xml(200, pox_settings("https://mail.other.example/EWS/Exchange.asmx"))
            }
        })
        .await;
        let discovery = client(&server, None)
            .discover("alice@lab.example")
            .await
            .unwrap();
        assert_eq!(discovery.address, "alice@other.example");
        assert_eq!(
            discovery.ews_url.as_str(),
            "https://mail.other.example/EWS/Exchange.asmx"
        );
        assert_eq!(discovery.endpoint.host_str(), Some("other.example"));
    }

    #[tokio::test]
    async fn redirect_loop_stops_at_the_limit() {
        let server = TestServer::https(NAMES, |_| {
            CannedResponse::xml(
                200,
                r#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">
                  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">
                    <Account><Action>redirectUrl</Action><RedirectUrl>https://autodiscover.lab.example/autodiscover/autodiscover.xml</RedirectUrl></Account>
                  </Response></Autodiscover>"#,
            )
        })
        .await;
        let error = client(&server, None)
            .with_max_redirects(3)
            .discover("alice@lab.example")
            .await
            .unwrap_err();
        let AutodiscoverError::NotFound { attempts, .. } = &error else {
            panic!("expected NotFound, got {error:?}");
        };
        assert!(
            attempts
                .iter()
                .any(|attempt| attempt.failure.contains("already tried")
                    || attempt.failure.contains("exceeds the limit")),
            "{error}"
        );
        assert!(
            server.recorded().len() <= 8,
            "{} requests",
            server.recorded().len()
        );
    }

    #[tokio::test]
    async fn http_redirect_probe_finds_https_endpoint() {
        let https = TestServer::https(NAMES, |request| {
            if request.header("host") == Some("mail.lab.example") {
                CannedResponse::xml(
                    200,
                    pox_settings("https://mail.lab.example/EWS/Exchange.asmx"),
                )
            } else {
                CannedResponse::xml(500, "")
            }
        })
        .await;
        let http = TestServer::http(|request| {
            assert_eq!(request.method, "GET");
            assert_eq!(
                request.header("authorization"),
                None,
                "the probe must not send credentials"
            );
            CannedResponse::xml(302, "").with_header(
                "Location",
                "https://mail.lab.example/autodiscover/autodiscover.xml",
            )
        })
        .await;
        let discovery = client(&https, Some(&http))
            .discover("alice@lab.example")
            .await
            .unwrap();
        assert_eq!(
            discovery.ews_url.as_str(),
            "https://mail.lab.example/EWS/Exchange.asmx"
        );
        assert_eq!(
            discovery.endpoint.as_str(),
            "https://mail.lab.example/autodiscover/autodiscover.xml"
        );
        let kinds: Vec<AttemptKind> = discovery
            .failed_attempts
            .iter()
            .map(|attempt| attempt.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                AttemptKind::Pox,
                AttemptKind::Pox,
                AttemptKind::Soap,
                AttemptKind::Soap,
                AttemptKind::HttpRedirect
            ]
        );
    }

    #[tokio::test]
    async fn every_failure_is_listed_in_the_error() {
        let server = TestServer::https(NAMES, |_| CannedResponse::xml(401, "")).await;
        let error = client(&server, None)
            .discover("alice@lab.example")
            .await
            .unwrap_err();
        let message = error.to_string();
        let AutodiscoverError::NotFound { attempts, .. } = &error else {
            panic!("expected NotFound, got {error:?}");
        };
        assert_eq!(attempts.len(), 5, "{message}");
        assert!(
            message.contains("POX https://lab.example/autodiscover/autodiscover.xml"),
            "{message}"
        );
        assert!(
            message.contains("SOAP https://autodiscover.lab.example/autodiscover/autodiscover.svc"),
            "{message}"
        );
        assert!(
            message.contains(
                "HTTP redirect http://autodiscover.lab.example/autodiscover/autodiscover.xml"
            ),
            "{message}"
        );
        assert!(message.contains("HTTP 401"), "{message}");
        assert!(!message.contains("Passw0rd!"));
    }

    #[test]
    fn invalid_address_is_rejected() {
        for address in ["alice", "@lab.example", "alice@", "alice@lab example"] {
            assert_eq!(domain_of(address), None, "{address}");
        }
        assert_eq!(domain_of("alice@lab.example"), Some("lab.example"));
    }
}
