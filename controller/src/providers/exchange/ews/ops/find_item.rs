//! `FindItem`: searches a folder with a restriction, here Sent Items by Internet Message-ID.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation>

use serde::{Deserialize, Serialize};

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::{
    BaseFolderIds, IndexedPageItemView, ResponseItems, Restriction, Shape,
};

/// The depth of a search in a folder.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Traversal {
    /// The folder's items only.
    Shallow,
    /// The folder's soft-deleted items, which a restriction cannot filter.
    SoftDeleted,
    /// The folder's associated (hidden) items.
    Associated,
}

/// A request to search items in folders.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:FindItem")]
pub struct FindItem {
    /// The search depth.
    #[serde(rename = "@Traversal")]
    pub traversal: Traversal,

    /// The properties to return for each item.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemshape>
    #[serde(rename = "m:ItemShape")]
    pub item_shape: Shape,

    /// The page of results to return.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/indexedpageitemview>
    #[serde(rename = "m:IndexedPageItemView")]
    pub indexed_page_item_view: IndexedPageItemView,

    /// The filter; without one every item matches.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/restriction>
    #[serde(rename = "m:Restriction", skip_serializing_if = "Option::is_none")]
    pub restriction: Option<Restriction>,

    /// The folders to search.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/parentfolderids>
    #[serde(rename = "m:ParentFolderIds")]
    pub parent_folder_ids: BaseFolderIds,
}

impl Operation for FindItem {
    const NAME: &'static str = "FindItem";
    type Response = FindItemResponse;
}

operation_response! {
    /// The response to [`FindItem`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditemresponse>
    pub struct FindItemResponse => FindItemResponseMessage;
}

response_message! {
    /// The result of a [`FindItem`] request for one folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditemresponsemessage>
    pub struct FindItemResponseMessage {
        /// The matching items and paging information; absent on error.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/rootfolder-finditemresponsemessage>
        #[serde(rename = "RootFolder", default)]
        pub root_folder: Option<RootFolder>,
    }
}

/// One page of search results.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/rootfolder-finditemresponsemessage>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootFolder {
    /// The offset to request for the next page.
    #[serde(rename = "@IndexedPagingOffset", default)]
    pub indexed_paging_offset: Option<u32>,

    /// The number of matching items in the whole view, across pages.
    #[serde(rename = "@TotalItemsInView", default)]
    pub total_items_in_view: Option<u32>,

    /// Whether this page contains the last matching item.
    #[serde(rename = "@IncludesLastItemInRange", default)]
    pub includes_last_item_in_range: Option<bool>,

    /// The items of this page.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
    #[serde(rename = "Items", default)]
    pub items: ResponseItems,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{
        ConnectingSid, deserialize_response, serialize_request,
    };
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::{
        AdditionalProperties, BasePoint, BaseShape, DistinguishedFolderName, ExtendedFieldUri,
        PropertyPath, PropertyType, ResponseClass, ResponseItem, SearchExpression,
    };

    fn by_message_id(additional: Vec<PropertyPath>) -> FindItem {
        FindItem {
            traversal: Traversal::Shallow,
            item_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties { paths: additional },
            },
            indexed_page_item_view: IndexedPageItemView {
                max_entries_returned: 100,
                offset: 0,
                base_point: BasePoint::Beginning,
            },
            restriction: Some(Restriction {
                expression: SearchExpression::is_equal_to(
                    PropertyPath::Extended(ExtendedFieldUri::internet_message_id()),
                    "<abc@lab.example>",
                ),
            }),
            parent_folder_ids: BaseFolderIds::distinguished(
                DistinguishedFolderName::SentItems,
                "alice@lab.example",
            ),
        }
    }

    #[test]
    fn request_by_message_id_serializes() {
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(&by_message_id(Vec::new()), Some(&sid)).unwrap();
        let expected = minify_xml(
            r#"<?xml version="1.0" encoding="utf-8"?>
            <s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
                xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
              <s:Header>
                <t:RequestServerVersion Version="Exchange2016"/>
                <t:ExchangeImpersonation><t:ConnectingSID>
                  <t:PrimarySmtpAddress>alice@lab.example</t:PrimarySmtpAddress>
                </t:ConnectingSID></t:ExchangeImpersonation>
                <t:TimeZoneContext><t:TimeZoneDefinition Id="UTC"/></t:TimeZoneContext>
              </s:Header>
              <s:Body>
                <m:FindItem Traversal="Shallow">
                  <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>
                  <m:IndexedPageItemView MaxEntriesReturned="100" Offset="0" BasePoint="Beginning"/>
                  <m:Restriction>
                    <t:IsEqualTo>
                      <t:ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/>
                      <t:FieldURIOrConstant><t:Constant Value="&lt;abc@lab.example&gt;"/></t:FieldURIOrConstant>
                    </t:IsEqualTo>
                  </m:Restriction>
                  <m:ParentFolderIds>
                    <t:DistinguishedFolderId Id="sentitems">
                      <t:Mailbox><t:EmailAddress>alice@lab.example</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox>
                    </t:DistinguishedFolderId>
                  </m:ParentFolderIds>
                </m:FindItem>
              </s:Body>
            </s:Envelope>"#,
        );
        assert_eq!(minify_xml(&xml), expected);
        assert_valid_request(&xml);
    }

    #[test]
    fn request_with_properties_and_nested_restriction_validates() {
        let marker = ExtendedFieldUri::named(
            Uuid::parse_str("b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11").unwrap(),
            "SiuRewritten",
            PropertyType::String,
        );
        let mut request = by_message_id(vec![
            PropertyPath::field("item:DateTimeSent"),
            PropertyPath::field("item:DateTimeCreated"),
            PropertyPath::field("item:Size"),
            PropertyPath::Extended(marker.clone()),
        ]);
        request.restriction = Some(Restriction {
            expression: SearchExpression::and(vec![
                SearchExpression::is_equal_to(
                    PropertyPath::Extended(ExtendedFieldUri::internet_message_id()),
                    "<abc@lab.example>",
                ),
                SearchExpression::or(vec![
                    SearchExpression::exists(PropertyPath::Extended(marker)),
                    SearchExpression::exists(PropertyPath::field("item:DateTimeSent")),
                ]),
            ]),
        });
        let xml = serialize_request(&request, None).unwrap();
        assert!(
            xml.contains(r#"<t:FieldURI FieldURI="item:Size"/><t:ExtendedFieldURI PropertySetId="b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11" PropertyName="SiuRewritten" PropertyType="String"/></t:AdditionalProperties>"#),
            "{xml}"
        );
        assert!(xml.contains("<t:And><t:IsEqualTo>"), "{xml}");
        assert!(xml.contains("<t:Or><t:Exists><t:ExtendedFieldURI"), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_two_matches_decodes() {
        // Shaped on the FindItem response example of the EWS reference, with the
        // properties that the update loop requests; this server uses default namespaces.
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
            <soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
              <soap:Header>
                <ServerVersionInfo xmlns="http://schemas.microsoft.com/exchange/services/2006/types"
                    MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4"/>
              </soap:Header>
              <soap:Body>
                <FindItemResponse xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">
                  <ResponseMessages>
                    <FindItemResponseMessage ResponseClass="Success">
                      <ResponseCode>NoError</ResponseCode>
                      <RootFolder IndexedPagingOffset="2" TotalItemsInView="2" IncludesLastItemInRange="true">
                        <Items xmlns="http://schemas.microsoft.com/exchange/services/2006/types">
                          <Message>
                            <ItemId Id="AAMkAD1=" ChangeKey="CQAAABY1"/>
                            <Size>2048</Size>
                            <DateTimeSent>2025-03-04T10:00:05Z</DateTimeSent>
                            <DateTimeCreated>2025-03-04T10:00:07Z</DateTimeCreated>
                            <ExtendedProperty>
                              <ExtendedFieldURI PropertySetId="B0E3B3A5-4F5E-4D0C-9F64-3B2B5A0F2A11" PropertyName="SiuRewritten" PropertyType="String"/>
                              <Value>2025-03-04T10:00:09Z</Value>
                            </ExtendedProperty>
                          </Message>
                          <MeetingRequest>
                            <ItemId Id="AAMkAD2=" ChangeKey="CQAAABY2"/>
                            <Size>4096</Size>
                            <DateTimeSent>2025-03-04T09:00:00Z</DateTimeSent>
                          </MeetingRequest>
                        </Items>
                      </RootFolder>
                    </FindItemResponseMessage>
                  </ResponseMessages>
                </FindItemResponse>
              </soap:Body>
            </soap:Envelope>"#;
        let response = deserialize_response::<FindItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Success);
        assert!(message.response_code().is_no_error());

        let root = message
            .root_folder
            .expect("a success should carry RootFolder");
        assert_eq!(root.total_items_in_view, Some(2));
        assert_eq!(root.includes_last_item_in_range, Some(true));
        assert_eq!(root.items.items.len(), 2);

        let ResponseItem::Message(first) = &root.items.items[0] else {
            panic!(
                "the first item should be a Message: {:?}",
                root.items.items[0]
            );
        };
        assert_eq!(first.item_id.as_ref().unwrap().id, "AAMkAD1=");
        assert_eq!(
            first.item_id.as_ref().unwrap().change_key.as_deref(),
            Some("CQAAABY1")
        );
        assert_eq!(first.size, Some(2048));
        assert_eq!(
            first.date_time_sent.unwrap().to_rfc3339(),
            "2025-03-04T10:00:05+00:00"
        );
        assert_eq!(
            first.date_time_created.unwrap().to_rfc3339(),
            "2025-03-04T10:00:07+00:00"
        );
        let marker = ExtendedFieldUri::named(
            Uuid::parse_str("b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11").unwrap(),
            "SiuRewritten",
            PropertyType::String,
        );
        assert_eq!(
            first.extended_property(&marker),
            Some("2025-03-04T10:00:09Z")
        );

        let second = root.items.items[1].fields();
        assert_eq!(second.item_id.as_ref().unwrap().id, "AAMkAD2=");
        assert_eq!(second.extended_property(&marker), None);
    }

    #[test]
    fn response_without_matches_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:FindItemResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                    <m:RootFolder IndexedPagingOffset="0" TotalItemsInView="0" IncludesLastItemInRange="true">
                      <t:Items/>
                    </m:RootFolder>
                  </m:FindItemResponseMessage>
                </m:ResponseMessages>
              </m:FindItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<FindItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        let root = message.root_folder.unwrap();
        assert_eq!(root.total_items_in_view, Some(0));
        assert!(root.items.items.is_empty());
    }

    #[test]
    fn error_response_keeps_code_and_back_off() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:FindItemResponseMessage ResponseClass="Error">
                    <m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText>
                    <m:ResponseCode>ErrorServerBusy</m:ResponseCode>
                    <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
                    <m:MessageXml><t:Value Name="BackOffMilliseconds">5000</t:Value></m:MessageXml>
                  </m:FindItemResponseMessage>
                </m:ResponseMessages>
              </m:FindItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<FindItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Error);
        assert_eq!(message.response_code().0, "ErrorServerBusy");
        assert_eq!(
            message
                .message_xml()
                .and_then(|xml| xml.value("BackOffMilliseconds")),
            Some("5000")
        );
        assert_eq!(message.root_folder, None);
    }
}
