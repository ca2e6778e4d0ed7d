//! `UpdateItem`: sets or removes properties of existing items, here the extended
//! property that marks a rewritten sent message.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation>

use serde::{Deserialize, Serialize};

use super::create_item::MessageDisposition;
use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::{
    ExtendedFieldUri, ExtendedProperty, ItemId, ResponseItems,
};

/// The handling of an item that changed since its change key was read.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConflictResolution {
    /// Fail the update.
    NeverOverwrite,
    /// Update unless the changed properties conflict.
    AutoResolve,
    /// Update regardless.
    AlwaysOverwrite,
}

/// A request to change items.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:UpdateItem")]
pub struct UpdateItem {
    /// The handling of items that changed since their change key was read.
    #[serde(rename = "@ConflictResolution")]
    pub conflict_resolution: ConflictResolution,

    /// The handling of updated messages, which EWS requires for messages.
    #[serde(rename = "@MessageDisposition")]
    pub message_disposition: MessageDisposition,

    /// The changes, one per item.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemchanges>
    #[serde(rename = "m:ItemChanges")]
    pub item_changes: ItemChanges,
}

impl Operation for UpdateItem {
    const NAME: &'static str = "UpdateItem";
    type Response = UpdateItemResponse;
}

/// The changes of an [`UpdateItem`] request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemchanges>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemChanges {
    /// The changes.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemchange>
    #[serde(rename = "t:ItemChange")]
    pub item_changes: Vec<ItemChange>,
}

/// The changes to one item.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemchange>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemChange {
    /// The item, with the change key its changes are based on.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemid>
    #[serde(rename = "t:ItemId")]
    pub item_id: ItemId,

    /// The property changes.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updates-item>
    #[serde(rename = "t:Updates")]
    pub updates: Updates,
}

/// The property changes of one item.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updates-item>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Updates {
    /// The changes in order.
    #[serde(rename = "$value")]
    pub changes: Vec<ItemFieldChange>,
}

/// One property change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ItemFieldChange {
    /// Sets an extended property.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/setitemfield>
    #[serde(rename = "t:SetItemField")]
    SetItemField(SetItemField),

    /// Removes an extended property.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitemfield>
    #[serde(rename = "t:DeleteItemField")]
    DeleteItemField(DeleteItemField),
}

impl ItemFieldChange {
    /// Sets `property` on a message.
    pub fn set_extended_property(property: ExtendedProperty) -> Self {
        Self::SetItemField(SetItemField {
            field_uri: property.field_uri.clone(),
            message: MessageWithProperty {
                extended_property: property,
            },
        })
    }

    /// Removes the extended property `field_uri`.
    pub fn delete_extended_property(field_uri: ExtendedFieldUri) -> Self {
        Self::DeleteItemField(DeleteItemField { field_uri })
    }
}

/// A change that sets one property.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/setitemfield>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetItemField {
    /// The property to set.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedfielduri>
    #[serde(rename = "t:ExtendedFieldURI")]
    pub field_uri: ExtendedFieldUri,

    /// The new value, inside an item element.
    //
    // NOTE: EWS wants the element of the item's type here. Sent Items contains messages,
    // but a meeting request there would need `t:MeetingRequest` instead of `t:Message`.
    #[serde(rename = "t:Message")]
    pub message: MessageWithProperty,
}

/// A message element that carries one property value in a [`SetItemField`].
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/message-ex15websvcsotherref>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageWithProperty {
    /// The property and its new value.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedproperty>
    #[serde(rename = "t:ExtendedProperty")]
    pub extended_property: ExtendedProperty,
}

/// A change that removes one property.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitemfield>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeleteItemField {
    /// The property to remove.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedfielduri>
    #[serde(rename = "t:ExtendedFieldURI")]
    pub field_uri: ExtendedFieldUri,
}

operation_response! {
    /// The response to [`UpdateItem`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitemresponse>
    pub struct UpdateItemResponse => UpdateItemResponseMessage;
}

response_message! {
    /// The result for one item of an [`UpdateItem`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitemresponsemessage>
    pub struct UpdateItemResponseMessage {
        /// The updated item with its new change key; absent on error.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
        #[serde(rename = "Items", default)]
        pub items: ResponseItems,

        /// How many conflicts the server resolved.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/conflictresults>
        #[serde(rename = "ConflictResults", default)]
        pub conflict_results: Option<ConflictResults>,
    }
}

/// The conflicts of an update.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/conflictresults>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ConflictResults {
    /// The number of conflicts.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/count>
    #[serde(rename = "Count", default)]
    pub count: u32,
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
    use crate::providers::exchange::ews::types::{PropertyType, ResponseClass};

    fn marker() -> ExtendedFieldUri {
        ExtendedFieldUri::named(
            Uuid::parse_str("b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11").unwrap(),
            "SiuRewritten",
            PropertyType::String,
        )
    }

    #[test]
    fn set_and_delete_request_serializes() {
        let request = UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            message_disposition: MessageDisposition::SaveOnly,
            item_changes: ItemChanges {
                item_changes: vec![ItemChange {
                    item_id: ItemId {
                        id: "AAMkAD=".to_owned(),
                        change_key: Some("CQAAAB".to_owned()),
                    },
                    updates: Updates {
                        changes: vec![
                            ItemFieldChange::set_extended_property(ExtendedProperty::string(
                                marker(),
                                "done",
                            )),
                            ItemFieldChange::delete_extended_property(
                                ExtendedFieldUri::message_delivery_time(),
                            ),
                        ],
                    },
                }],
            },
        };
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(&request, Some(&sid)).unwrap();
        let body = minify_xml(
            r#"<s:Body>
                <m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly">
                  <m:ItemChanges>
                    <t:ItemChange>
                      <t:ItemId Id="AAMkAD=" ChangeKey="CQAAAB"/>
                      <t:Updates>
                        <t:SetItemField>
                          <t:ExtendedFieldURI PropertySetId="b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11" PropertyName="SiuRewritten" PropertyType="String"/>
                          <t:Message>
                            <t:ExtendedProperty>
                              <t:ExtendedFieldURI PropertySetId="b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11" PropertyName="SiuRewritten" PropertyType="String"/>
                              <t:Value>done</t:Value>
                            </t:ExtendedProperty>
                          </t:Message>
                        </t:SetItemField>
                        <t:DeleteItemField>
                          <t:ExtendedFieldURI PropertyTag="0x0E06" PropertyType="SystemTime"/>
                        </t:DeleteItemField>
                      </t:Updates>
                    </t:ItemChange>
                  </m:ItemChanges>
                </m:UpdateItem>
              </s:Body>"#,
        );
        assert!(minify_xml(&xml).contains(&body), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_new_change_key_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:UpdateItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:UpdateItemResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                    <m:Items><t:Message><t:ItemId Id="AAMkAD=" ChangeKey="CQAAAC"/></t:Message></m:Items>
                    <m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>
                  </m:UpdateItemResponseMessage>
                </m:ResponseMessages>
              </m:UpdateItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<UpdateItemResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Success);
        let id = message.items.items[0].fields().item_id.clone().unwrap();
        assert_eq!(id.change_key.as_deref(), Some("CQAAAC"));
        assert_eq!(message.conflict_results.unwrap().count, 0);
    }
}
