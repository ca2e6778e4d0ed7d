//! The SOAP 1.1 envelope around EWS requests and responses: the request headers
//! (`RequestServerVersion`, `ExchangeImpersonation`, `TimeZoneContext`), the
//! `ServerVersionInfo` header of responses, and SOAP faults.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::MessageXml;

/// The SOAP 1.1 envelope namespace.
pub const SOAP_NAMESPACE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The EWS messages namespace, bound to the `m:` prefix in requests.
pub const MESSAGES_NAMESPACE: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// The EWS types namespace, bound to the `t:` prefix in requests.
pub const TYPES_NAMESPACE: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// The schema version that every request names; Exchange 2016 and 2019 and Exchange
/// Online accept it.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/requestserverversion>
pub const REQUEST_SERVER_VERSION: &str = "Exchange2016";

/// The account whose mailbox a request acts on, with the rights of the caller.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/connectingsid>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ConnectingSid {
    /// The mailbox's primary SMTP address.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/primarysmtpaddress>
    #[serde(rename = "t:PrimarySmtpAddress")]
    PrimarySmtpAddress(String),

    /// Any SMTP address of the mailbox.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/smtpaddress>
    #[serde(rename = "t:SmtpAddress")]
    SmtpAddress(String),

    /// The user principal name of the mailbox's account.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/principalname>
    #[serde(rename = "t:PrincipalName")]
    PrincipalName(String),
}

impl ConnectingSid {
    /// Returns the address or name, for logs, errors and the `X-AnchorMailbox` header.
    pub fn value(&self) -> &str {
        match self {
            Self::PrimarySmtpAddress(value)
            | Self::SmtpAddress(value)
            | Self::PrincipalName(value) => value,
        }
    }
}

/// The `ExchangeImpersonation` SOAP header.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exchangeimpersonation>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ExchangeImpersonation<'a> {
    /// The impersonated account.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/connectingsid>
    #[serde(rename = "t:ConnectingSID")]
    connecting_sid: ConnectingSidElement<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ConnectingSidElement<'a> {
    #[serde(rename = "$value")]
    sid: &'a ConnectingSid,
}

/// The `RequestServerVersion` SOAP header.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/requestserverversion>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct RequestServerVersion {
    /// The schema version.
    #[serde(rename = "@Version")]
    version: &'static str,
}

/// The `TimeZoneContext` SOAP header, here always UTC so that times need no conversion.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timezonecontext>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TimeZoneContext {
    /// The time zone.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/timezonedefinition>
    #[serde(rename = "t:TimeZoneDefinition")]
    definition: TimeZoneDefinition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct TimeZoneDefinition {
    #[serde(rename = "@Id")]
    id: &'static str,
}

#[derive(Serialize)]
struct RequestHeader<'a> {
    #[serde(rename = "t:RequestServerVersion")]
    request_server_version: RequestServerVersion,

    #[serde(
        rename = "t:ExchangeImpersonation",
        skip_serializing_if = "Option::is_none"
    )]
    impersonation: Option<ExchangeImpersonation<'a>>,

    #[serde(rename = "t:TimeZoneContext")]
    time_zone_context: TimeZoneContext,
}

#[derive(Serialize)]
struct RequestBody<'a, B> {
    #[serde(rename = "$value")]
    operation: &'a B,
}

#[derive(Serialize)]
#[serde(rename = "s:Envelope")]
struct RequestEnvelope<'a, B> {
    #[serde(rename = "@xmlns:s")]
    soap_namespace: &'static str,
    #[serde(rename = "@xmlns:m")]
    messages_namespace: &'static str,
    #[serde(rename = "@xmlns:t")]
    types_namespace: &'static str,
    #[serde(rename = "s:Header")]
    header: RequestHeader<'a>,
    #[serde(rename = "s:Body")]
    body: RequestBody<'a, B>,
}

/// Serializes `operation` into a whole SOAP request, impersonating `impersonation` when given.
pub(crate) fn serialize_request<B: Serialize>(
    operation: &B,
    impersonation: Option<&ConnectingSid>,
) -> Result<String, quick_xml::SeError> {
    let envelope = RequestEnvelope {
        soap_namespace: SOAP_NAMESPACE,
        messages_namespace: MESSAGES_NAMESPACE,
        types_namespace: TYPES_NAMESPACE,
        header: RequestHeader {
            request_server_version: RequestServerVersion {
                version: REQUEST_SERVER_VERSION,
            },
            impersonation: impersonation.map(|sid| ExchangeImpersonation {
                connecting_sid: ConnectingSidElement { sid },
            }),
            time_zone_context: TimeZoneContext {
                definition: TimeZoneDefinition { id: "UTC" },
            },
        },
        body: RequestBody { operation },
    };

    let mut xml = String::from(r#"<?xml version="1.0" encoding="utf-8"?>"#);
    quick_xml::se::to_writer(&mut xml, &envelope)?;
    Ok(xml)
}

/// The version of the server that sent the response, from its SOAP header.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/serverversioninfo>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ServerVersionInfo {
    /// The major version: 15 for Exchange 2013 and later.
    #[serde(rename = "@MajorVersion", default)]
    pub major_version: Option<u32>,

    /// The minor version: 1 for Exchange 2016, 2 for Exchange 2019.
    #[serde(rename = "@MinorVersion", default)]
    pub minor_version: Option<u32>,

    /// The major build number.
    #[serde(rename = "@MajorBuildNumber", default)]
    pub major_build_number: Option<u32>,

    /// The minor build number.
    #[serde(rename = "@MinorBuildNumber", default)]
    pub minor_build_number: Option<u32>,

    /// The newest schema version that the server speaks, such as `Exchange2016` or
    /// `V2018_01_08`.
    #[serde(rename = "@Version", default)]
    pub version: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponseHeader {
    #[serde(rename = "ServerVersionInfo", default)]
    server_version_info: Option<ServerVersionInfo>,
}

#[derive(Debug, Deserialize)]
struct ResponseBody<B> {
    #[serde(rename = "$value")]
    content: B,
}

#[derive(Debug, Deserialize)]
struct ResponseEnvelope<B> {
    #[serde(rename = "Header", default)]
    header: Option<ResponseHeader>,
    #[serde(rename = "Body")]
    body: ResponseBody<B>,
}

/// A response whose body decoded, with the server version from its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapResponse<B> {
    /// The version of the responding server, when the header carried it.
    pub server_version: Option<ServerVersionInfo>,
    /// The operation's response element.
    pub body: B,
}

/// A response body that does not match the expected element structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {message}")]
pub struct DecodeError {
    /// The element path where decoding stopped, such as `Body.$value.ResponseMessages`.
    pub path: String,
    /// The decoder's message.
    pub message: String,
}

/// Decodes a SOAP response whose body contains the element `B`.
pub(crate) fn deserialize_response<B: DeserializeOwned>(
    xml: &str,
) -> Result<SoapResponse<B>, DecodeError> {
    // Tracking the element path costs about a third of the decoding time, so only a
    // response that fails to decode is decoded a second time to find the path.
    let envelope: ResponseEnvelope<B> = match quick_xml::de::from_str(xml) {
        Ok(envelope) => envelope,
        Err(_) => {
            let mut deserializer = quick_xml::de::Deserializer::from_str(xml);
            serde_path_to_error::deserialize::<_, ResponseEnvelope<B>>(&mut deserializer).map_err(
                |error| DecodeError {
                    path: error.path().to_string(),
                    message: error.inner().to_string(),
                },
            )?
        }
    };
    Ok(SoapResponse {
        server_version: envelope
            .header
            .and_then(|header| header.server_version_info),
        body: envelope.body.content,
    })
}

/// A SOAP fault: the whole request failed, for example because the impersonated mailbox
/// does not exist or the server is too busy.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode>
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SoapFault {
    /// The SOAP fault code, such as `a:ErrorNonExistentMailbox` or `s:Client`.
    pub fault_code: String,
    /// The fault's text.
    pub fault_string: String,
    /// The EWS response code from the fault's detail, such as `ErrorServerBusy`.
    pub response_code: Option<String>,
    /// The EWS message from the fault's detail.
    pub message: Option<String>,
    /// Extra details, such as `BackOffMilliseconds`.
    pub message_xml: Option<MessageXml>,
}

impl SoapFault {
    /// Returns the EWS response code: the detail's code, or else the fault code without
    /// its prefix when it names an EWS error (Exchange puts `a:ErrorServerBusy` there).
    pub fn ews_response_code(&self) -> Option<&str> {
        if let Some(code) = &self.response_code {
            return Some(code);
        }
        let local = self
            .fault_code
            .rsplit_once(':')
            .map_or(self.fault_code.as_str(), |(_, local)| local);
        local.starts_with("Error").then_some(local)
    }

    /// Returns the wait that the server asked for with `BackOffMilliseconds`.
    pub fn back_off(&self) -> Option<Duration> {
        back_off(self.message_xml.as_ref())
    }
}

/// Reads `BackOffMilliseconds` from the details of an error.
pub(crate) fn back_off(message_xml: Option<&MessageXml>) -> Option<Duration> {
    message_xml?
        .value("BackOffMilliseconds")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

#[derive(Debug, Deserialize)]
struct FaultEnvelope {
    #[serde(rename = "Body")]
    body: FaultBody,
}

#[derive(Debug, Deserialize)]
struct FaultBody {
    #[serde(rename = "Fault")]
    fault: FaultElement,
}

#[derive(Debug, Deserialize)]
struct FaultElement {
    #[serde(rename = "faultcode", default)]
    fault_code: String,
    #[serde(rename = "faultstring", default)]
    fault_string: String,
    #[serde(rename = "detail", default)]
    detail: Option<FaultDetail>,
}

#[derive(Debug, Deserialize)]
struct FaultDetail {
    #[serde(rename = "ResponseCode", default)]
    response_code: Option<String>,
    #[serde(rename = "Message", default)]
    message: Option<String>,
    #[serde(rename = "MessageXml", default)]
    message_xml: Option<MessageXml>,
}

/// Decodes a SOAP fault, or returns `None` when the body is not one.
pub(crate) fn deserialize_fault(xml: &str) -> Option<SoapFault> {
    let envelope: FaultEnvelope = quick_xml::de::from_str(xml).ok()?;
    let fault = envelope.body.fault;
    let detail = fault.detail;
    Some(SoapFault {
        fault_code: fault.fault_code.trim().to_owned(),
        fault_string: fault.fault_string.trim().to_owned(),
        response_code: detail
            .as_ref()
            .and_then(|detail| detail.response_code.as_deref())
            .map(|code| code.trim().to_owned()),
        message: detail
            .as_ref()
            .and_then(|detail| detail.message.as_deref())
            .map(|message| message.trim().to_owned()),
        message_xml: detail.and_then(|detail| detail.message_xml),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};

    #[derive(Serialize)]
    #[serde(rename = "m:ConvertId")]
    struct Probe {
        #[serde(rename = "@DestinationFormat")]
        destination_format: &'static str,
    }

    #[test]
    fn envelope_with_impersonation_serializes() {
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(
            &Probe {
                destination_format: "EntryId",
            },
            Some(&sid),
        )
        .unwrap();
        let expected = minify_xml(
            r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
                xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
              <s:Header>
                <t:RequestServerVersion Version="Exchange2016"/>
                <t:ExchangeImpersonation>
                  <t:ConnectingSID>
                    <t:PrimarySmtpAddress>alice@lab.example</t:PrimarySmtpAddress>
                  </t:ConnectingSID>
                </t:ExchangeImpersonation>
                <t:TimeZoneContext><t:TimeZoneDefinition Id="UTC"/></t:TimeZoneContext>
              </s:Header>
              <s:Body><m:ConvertId DestinationFormat="EntryId"/></s:Body>
            </s:Envelope>"#,
        );
        assert_eq!(minify_xml(&xml), expected);
    }

    #[test]
    fn every_connecting_sid_form_validates() {
        for sid in [
            ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned()),
            ConnectingSid::SmtpAddress("alice.alias@lab.example".to_owned()),
            ConnectingSid::PrincipalName("alice@corp.lab.example".to_owned()),
        ] {
            let operation =
                crate::providers::exchange::ews::ops::convert_id::ConvertId::version_probe();
            let xml = serialize_request(&operation, Some(&sid)).unwrap();
            assert!(xml.contains(sid.value()), "{xml}");
            assert_valid_request(&xml);
        }
    }

    #[test]
    fn fault_with_back_off_decodes() {
        // The shape of an EWS throttling fault (HTTP 500), with the prefixes that
        // Exchange Online uses.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
              <s:Body>
                <s:Fault>
                  <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode>
                  <faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>
                  <detail>
                    <e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>
                    <e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>
                    <t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                      <t:Value Name="BackOffMilliseconds">297749</t:Value>
                    </t:MessageXml>
                  </detail>
                </s:Fault>
              </s:Body>
            </s:Envelope>"#;
        let fault = deserialize_fault(xml).expect("the body should decode as a fault");
        assert_eq!(fault.fault_code, "a:ErrorServerBusy");
        assert_eq!(fault.ews_response_code(), Some("ErrorServerBusy"));
        assert_eq!(fault.back_off(), Some(Duration::from_millis(297_749)));
        assert!(fault.fault_string.starts_with("The server cannot service"));
    }

    #[test]
    fn fault_code_names_ews_error_without_detail() {
        let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
              <soap:Body><soap:Fault>
                <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorNonExistentMailbox</faultcode>
                <faultstring>The SMTP address has no mailbox associated with it.</faultstring>
              </soap:Fault></soap:Body></soap:Envelope>"#;
        let fault = deserialize_fault(xml).unwrap();
        assert_eq!(fault.ews_response_code(), Some("ErrorNonExistentMailbox"));
        assert_eq!(fault.back_off(), None);
    }

    #[test]
    fn plain_soap_client_fault_has_no_ews_code() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
              <faultcode>s:Client</faultcode><faultstring>The request failed schema validation.</faultstring>
            </s:Fault></s:Body></s:Envelope>"#;
        let fault = deserialize_fault(xml).unwrap();
        assert_eq!(fault.ews_response_code(), None);
    }

    #[test]
    fn non_fault_body_is_not_a_fault() {
        assert_eq!(
            deserialize_fault("<html><body>Server Error</body></html>"),
            None
        );
    }

    #[test]
    fn undecodable_response_names_the_element_path() {
        #[derive(Debug, Deserialize)]
        struct Counted {
            #[serde(rename = "Count")]
            _count: u32,
        }
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:Counted xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:Count>many</m:Count></m:Counted>
            </s:Body></s:Envelope>"#;

        let error = deserialize_response::<Counted>(xml).expect_err("Count is not a number");

        assert!(error.path.ends_with("Count"), "path: {}", error.path);
        assert!(!error.message.is_empty());
    }
}
