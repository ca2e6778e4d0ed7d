//! `CreateItem`: saves a message built from MIME content into a folder without sending it.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem-operation>

use serde::Serialize;

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::{BaseFolderIds, ExtendedProperty, ResponseItems};

/// The handling of a created message.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MessageDisposition {
    /// Save the message in the target folder and send nothing.
    SaveOnly,
    /// Send the message and keep no copy.
    SendOnly,
    /// Send the message and save a copy.
    SendAndSaveCopy,
}

/// A request to create items.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitem>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:CreateItem")]
pub struct CreateItem {
    /// The handling of created messages.
    #[serde(rename = "@MessageDisposition")]
    pub message_disposition: MessageDisposition,

    /// The folder to save the items in.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/saveditemfolderid>
    #[serde(rename = "m:SavedItemFolderId")]
    pub saved_item_folder_id: BaseFolderIds,

    /// The items to create.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
    #[serde(rename = "m:Items")]
    pub items: NewItems,
}

impl Operation for CreateItem {
    const NAME: &'static str = "CreateItem";
    type Response = CreateItemResponse;
}

/// The items of a [`CreateItem`] request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewItems {
    /// The messages.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/message-ex15websvcsotherref>
    #[serde(rename = "t:Message")]
    pub messages: Vec<NewMessage>,
}

/// A message to create from MIME content, with extended properties set at creation.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/message-ex15websvcsotherref>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewMessage {
    /// The RFC 5322 message, base64 encoded.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mimecontent>
    #[serde(rename = "t:MimeContent")]
    pub mime_content: String,

    /// Properties to set when the item is created, such as `PR_MESSAGE_FLAGS`; some of
    /// them, like the flags that make a message a draft, cannot change later.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedproperty>
    #[serde(rename = "t:ExtendedProperty")]
    pub extended_properties: Vec<ExtendedProperty>,
}

operation_response! {
    /// The response to [`CreateItem`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitemresponse>
    pub struct CreateItemResponse => CreateItemResponseMessage;
}

response_message! {
    /// The result for one item of a [`CreateItem`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/createitemresponsemessage>
    pub struct CreateItemResponseMessage {
        /// The created item with its new identifier; absent on error.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
        #[serde(rename = "Items", default)]
        pub items: ResponseItems,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{
        ConnectingSid, deserialize_response, serialize_request,
    };
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::{
        DistinguishedFolderName, ExtendedFieldUri, MSGFLAG_READ, PropertyType, ResponseClass,
    };

    fn sent_item_request() -> CreateItem {
        let sent: DateTime<Utc> = "2025-03-04T10:00:05Z".parse().unwrap();
        let marker = ExtendedFieldUri::named(
            Uuid::parse_str("b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11").unwrap(),
            "SiuRewritten",
            PropertyType::String,
        );
        CreateItem {
            message_disposition: MessageDisposition::SaveOnly,
            saved_item_folder_id: BaseFolderIds::distinguished(
                DistinguishedFolderName::SentItems,
                "alice@lab.example",
            ),
            items: NewItems {
                messages: vec![NewMessage {
                    mime_content: "RnJvbTogYWxpY2VAbGFiLmV4YW1wbGUNCg0KYm9keQ0K".to_owned(),
                    extended_properties: vec![
                        ExtendedProperty::integer(ExtendedFieldUri::message_flags(), MSGFLAG_READ),
                        ExtendedProperty::system_time(ExtendedFieldUri::client_submit_time(), sent),
                        ExtendedProperty::system_time(
                            ExtendedFieldUri::message_delivery_time(),
                            sent,
                        ),
                        ExtendedProperty::string(marker, "2025-03-04T10:00:09Z"),
                    ],
                }],
            },
        }
    }

    #[test]
    fn sent_item_request_serializes() {
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(&sent_item_request(), Some(&sid)).unwrap();
        let body = minify_xml(
            r#"<s:Body>
                <m:CreateItem MessageDisposition="SaveOnly">
                  <m:SavedItemFolderId>
                    <t:DistinguishedFolderId Id="sentitems">
                      <t:Mailbox><t:EmailAddress>alice@lab.example</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox>
                    </t:DistinguishedFolderId>
                  </m:SavedItemFolderId>
                  <m:Items>
                    <t:Message>
                      <t:MimeContent>RnJvbTogYWxpY2VAbGFiLmV4YW1wbGUNCg0KYm9keQ0K</t:MimeContent>
                      <t:ExtendedProperty>
                        <t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/>
                        <t:Value>1</t:Value>
                      </t:ExtendedProperty>
                      <t:ExtendedProperty>
                        <t:ExtendedFieldURI PropertyTag="0x0039" PropertyType="SystemTime"/>
                        <t:Value>2025-03-04T10:00:05Z</t:Value>
                      </t:ExtendedProperty>
                      <t:ExtendedProperty>
                        <t:ExtendedFieldURI PropertyTag="0x0E06" PropertyType="SystemTime"/>
                        <t:Value>2025-03-04T10:00:05Z</t:Value>
                      </t:ExtendedProperty>
                      <t:ExtendedProperty>
                        <t:ExtendedFieldURI PropertySetId="b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11" PropertyName="SiuRewritten" PropertyType="String"/>
                        <t:Value>2025-03-04T10:00:09Z</t:Value>
                      </t:ExtendedProperty>
                    </t:Message>
                  </m:Items>
                </m:CreateItem>
              </s:Body>"#,
        );
        assert!(minify_xml(&xml).contains(&body), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_new_item_id_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:CreateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:CreateItemResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                    <m:Items><t:Message><t:ItemId Id="AAMkNEW=" ChangeKey="CQAAANEW"/></t:Message></m:Items>
                  </m:CreateItemResponseMessage>
                </m:ResponseMessages>
              </m:CreateItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<CreateItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Success);
        let id = message.items.items[0].fields().item_id.clone().unwrap();
        assert_eq!(id.id, "AAMkNEW=");
        assert_eq!(id.change_key.as_deref(), Some("CQAAANEW"));
    }
}
