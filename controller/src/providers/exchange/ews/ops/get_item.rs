//! `GetItem`: reads properties of items, here the MIME content of a sent message.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation>

use serde::Serialize;

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::{BaseItemIds, ResponseItems, Shape};

/// A request to read items.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:GetItem")]
pub struct GetItem {
    /// The properties to return.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemshape>
    #[serde(rename = "m:ItemShape")]
    pub item_shape: Shape,

    /// The items to read.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemids>
    #[serde(rename = "m:ItemIds")]
    pub item_ids: BaseItemIds,
}

impl Operation for GetItem {
    const NAME: &'static str = "GetItem";
    type Response = GetItemResponse;
}

operation_response! {
    /// The response to [`GetItem`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitemresponse>
    pub struct GetItemResponse => GetItemResponseMessage;
}

response_message! {
    /// The result for one item of a [`GetItem`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitemresponsemessage>
    pub struct GetItemResponseMessage {
        /// The item; absent on error.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
        #[serde(rename = "Items", default)]
        pub items: ResponseItems,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{
        ConnectingSid, deserialize_response, serialize_request,
    };
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::{
        AdditionalProperties, BaseShape, ItemId, PropertyPath, ResponseClass,
    };

    fn mime_request() -> GetItem {
        GetItem {
            item_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties {
                    paths: vec![PropertyPath::field("item:MimeContent")],
                },
            },
            item_ids: BaseItemIds {
                item_ids: vec![ItemId {
                    id: "AAMkAD=".to_owned(),
                    change_key: Some("CQAAAB".to_owned()),
                }],
            },
        }
    }

    #[test]
    fn mime_request_serializes() {
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(&mime_request(), Some(&sid)).unwrap();
        let body = minify_xml(
            r#"<s:Body>
                <m:GetItem>
                  <m:ItemShape>
                    <t:BaseShape>IdOnly</t:BaseShape>
                    <t:AdditionalProperties><t:FieldURI FieldURI="item:MimeContent"/></t:AdditionalProperties>
                  </m:ItemShape>
                  <m:ItemIds><t:ItemId Id="AAMkAD=" ChangeKey="CQAAAB"/></m:ItemIds>
                </m:GetItem>
              </s:Body>"#,
        );
        assert!(minify_xml(&xml).contains(&body), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_mime_content_decodes() {
        let mime = "From: alice@lab.example\r\nSubject: x\r\n\r\nbody\r\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(mime);
        let xml = format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:GetItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:GetItemResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                    <m:Items>
                      <t:Message>
                        <t:MimeContent CharacterSet="UTF-8">{encoded}</t:MimeContent>
                        <t:ItemId Id="AAMkAD=" ChangeKey="CQAAAB"/>
                      </t:Message>
                    </m:Items>
                  </m:GetItemResponseMessage>
                </m:ResponseMessages>
              </m:GetItemResponse>
            </s:Body></s:Envelope>"#
        );
        let response = deserialize_response::<GetItemResponse>(&xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Success);
        let item = message.items.items[0].fields();
        let content = item
            .mime_content
            .as_ref()
            .expect("MimeContent should decode");
        assert_eq!(content.character_set.as_deref(), Some("UTF-8"));
        assert_eq!(content.base64, encoded);
    }

    #[test]
    fn item_not_found_decodes_without_items() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:GetItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
                <m:ResponseMessages>
                  <m:GetItemResponseMessage ResponseClass="Error">
                    <m:MessageText>The specified object was not found in the store.</m:MessageText>
                    <m:ResponseCode>ErrorItemNotFound</m:ResponseCode>
                    <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
                    <m:Items/>
                  </m:GetItemResponseMessage>
                </m:ResponseMessages>
              </m:GetItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<GetItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_code().0, "ErrorItemNotFound");
        assert!(message.items.items.is_empty());
    }
}
