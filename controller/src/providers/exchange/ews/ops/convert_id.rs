//! `ConvertId`, sent with a placeholder identifier as a cheap probe. Every server accepts
//! it, returns an error for the placeholder and reports its version in the response
//! header, so the probe checks the URL, TLS and credentials without touching a mailbox.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid-operation>

use serde::Serialize;

use super::{Operation, operation_response, response_message};

/// A request to convert item or folder identifiers between formats.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertid>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:ConvertId")]
pub struct ConvertId {
    /// The format to convert to, such as `EntryId` or `EwsId`.
    #[serde(rename = "@DestinationFormat")]
    pub destination_format: &'static str,

    /// The identifiers to convert.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/sourceids>
    #[serde(rename = "m:SourceIds")]
    pub source_ids: SourceIds,
}

impl ConvertId {
    /// Builds the version probe: one placeholder identifier, which the server rejects
    /// after authenticating the caller.
    pub fn version_probe() -> Self {
        Self {
            destination_format: "EntryId",
            source_ids: SourceIds {
                alternate_ids: vec![AlternateId {
                    id: "DUMMY".to_owned(),
                    format: "EwsId",
                    mailbox: "DUMMY".to_owned(),
                }],
            },
        }
    }
}

impl Operation for ConvertId {
    const NAME: &'static str = "ConvertId";
    type Response = ConvertIdResponse;
}

/// The identifiers of a [`ConvertId`] request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/sourceids>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceIds {
    /// The identifiers.
    #[serde(rename = "t:AlternateId")]
    pub alternate_ids: Vec<AlternateId>,
}

/// An identifier in a given format, with the mailbox it belongs to.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/alternateid>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlternateId {
    /// The identifier.
    #[serde(rename = "@Id")]
    pub id: String,

    /// The identifier's format, such as `EwsId`.
    #[serde(rename = "@Format")]
    pub format: &'static str,

    /// The SMTP address of the mailbox that contains the item or folder.
    #[serde(rename = "@Mailbox")]
    pub mailbox: String,
}

operation_response! {
    /// The response to [`ConvertId`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertidresponse>
    pub struct ConvertIdResponse => ConvertIdResponseMessage;
}

response_message! {
    /// The outcome for one identifier of a [`ConvertId`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/convertidresponsemessage>
    pub struct ConvertIdResponseMessage {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{deserialize_response, serialize_request};
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::ResponseClass;

    #[test]
    fn version_probe_serializes_like_other_clients() {
        let xml = serialize_request(&ConvertId::version_probe(), None).unwrap();
        let expected = minify_xml(
            r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
                xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
              <s:Header>
                <t:RequestServerVersion Version="Exchange2016"/>
                <t:TimeZoneContext><t:TimeZoneDefinition Id="UTC"/></t:TimeZoneContext>
              </s:Header>
              <s:Body>
                <m:ConvertId DestinationFormat="EntryId">
                  <m:SourceIds><t:AlternateId Id="DUMMY" Format="EwsId" Mailbox="DUMMY"/></m:SourceIds>
                </m:ConvertId>
              </s:Body>
            </s:Envelope>"#,
        );
        assert_eq!(minify_xml(&xml), expected);
        assert_valid_request(&xml);
    }

    #[test]
    fn probe_error_response_carries_server_version() {
        // The response of an Exchange 2016 CU server to the placeholder identifier.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
              <s:Header>
                <h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"
                    xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"
                    xmlns="http://schemas.microsoft.com/exchange/services/2006/types"
                    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>
              </s:Header>
              <s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
                <m:ConvertIdResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                    xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                  <m:ResponseMessages>
                    <m:ConvertIdResponseMessage ResponseClass="Error">
                      <m:MessageText>Id is malformed.</m:MessageText>
                      <m:ResponseCode>ErrorInvalidIdMalformed</m:ResponseCode>
                      <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
                    </m:ConvertIdResponseMessage>
                  </m:ResponseMessages>
                </m:ConvertIdResponse>
              </s:Body>
            </s:Envelope>"#;
        let response = deserialize_response::<ConvertIdResponse>(xml).unwrap();
        let version = response
            .server_version
            .expect("the header should carry ServerVersionInfo");
        assert_eq!(version.major_version, Some(15));
        assert_eq!(version.minor_version, Some(1));
        assert_eq!(version.major_build_number, Some(2507));
        assert_eq!(version.version.as_deref(), Some("V2017_07_11"));

        let messages = response.body.into_messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].response_class(), ResponseClass::Error);
        assert_eq!(messages[0].response_code().0, "ErrorInvalidIdMalformed");
        assert_eq!(messages[0].message_text(), Some("Id is malformed."));
    }
}
