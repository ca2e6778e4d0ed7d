//! `DeleteItem`: deletes items, here the original of a replaced sent message.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem-operation>

use serde::Serialize;

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::BaseItemIds;

/// The disposal of a deleted item.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DeleteType {
    /// Delete the item for good.
    HardDelete,
    /// Move the item to the Recoverable Items folder, where the user can still restore it.
    SoftDelete,
    /// Move the item to Deleted Items.
    MoveToDeletedItems,
}

/// A request to delete items.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitem>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:DeleteItem")]
pub struct DeleteItem {
    /// How to delete.
    #[serde(rename = "@DeleteType")]
    pub delete_type: DeleteType,

    /// Whether to send cancellations for calendar items, here always `SendToNone`;
    /// Exchange rejects a deletion of a calendar item without it.
    #[serde(rename = "@SendMeetingCancellations")]
    pub send_meeting_cancellations: &'static str,

    /// The occurrences of a recurring task to delete, here always `AllOccurrences`,
    /// because Exchange rejects a deletion of a task without it.
    #[serde(rename = "@AffectedTaskOccurrences")]
    pub affected_task_occurrences: &'static str,

    /// Whether to suppress read receipts for unread items, here always `true`.
    #[serde(rename = "@SuppressReadReceipts")]
    pub suppress_read_receipts: bool,

    /// The items to delete.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemids>
    #[serde(rename = "m:ItemIds")]
    pub item_ids: BaseItemIds,
}

impl DeleteItem {
    /// Deletes `item_ids` with the disposal `delete_type`, sending nothing to anyone.
    pub fn new(delete_type: DeleteType, item_ids: BaseItemIds) -> Self {
        Self {
            delete_type,
            send_meeting_cancellations: "SendToNone",
            affected_task_occurrences: "AllOccurrences",
            suppress_read_receipts: true,
            item_ids,
        }
    }
}

impl Operation for DeleteItem {
    const NAME: &'static str = "DeleteItem";
    type Response = DeleteItemResponse;
}

operation_response! {
    /// The response to [`DeleteItem`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitemresponse>
    pub struct DeleteItemResponse => DeleteItemResponseMessage;
}

response_message! {
    /// The result for one item of a [`DeleteItem`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/deleteitemresponsemessage>
    pub struct DeleteItemResponseMessage {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{
        ConnectingSid, deserialize_response, serialize_request,
    };
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::{ItemId, ResponseClass};

    #[test]
    fn request_serializes_for_every_delete_type() {
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        for (delete_type, name) in [
            (DeleteType::HardDelete, "HardDelete"),
            (DeleteType::SoftDelete, "SoftDelete"),
            (DeleteType::MoveToDeletedItems, "MoveToDeletedItems"),
        ] {
            let request = DeleteItem::new(
                delete_type,
                BaseItemIds {
                    item_ids: vec![ItemId {
                        id: "AAMkAD=".to_owned(),
                        change_key: Some("CQAAAB".to_owned()),
                    }],
                },
            );
            let xml = serialize_request(&request, Some(&sid)).unwrap();
            let body = minify_xml(&format!(
                r#"<s:Body>
                    <m:DeleteItem DeleteType="{name}" SendMeetingCancellations="SendToNone"
                        AffectedTaskOccurrences="AllOccurrences" SuppressReadReceipts="true">
                      <m:ItemIds><t:ItemId Id="AAMkAD=" ChangeKey="CQAAAB"/></m:ItemIds>
                    </m:DeleteItem>
                  </s:Body>"#
            ));
            assert!(minify_xml(&xml).contains(&body), "{xml}");
            assert_valid_request(&xml);
        }
    }

    #[test]
    fn response_per_item_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:DeleteItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
                <m:ResponseMessages>
                  <m:DeleteItemResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                  </m:DeleteItemResponseMessage>
                  <m:DeleteItemResponseMessage ResponseClass="Error">
                    <m:MessageText>The specified object was not found in the store.</m:MessageText>
                    <m:ResponseCode>ErrorItemNotFound</m:ResponseCode>
                    <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
                  </m:DeleteItemResponseMessage>
                </m:ResponseMessages>
              </m:DeleteItemResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<DeleteItemResponse>(xml).unwrap();
        let messages = response.body.into_messages();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].response_class(), ResponseClass::Success);
        assert_eq!(messages[1].response_class(), ResponseClass::Error);
        assert_eq!(messages[1].response_code().0, "ErrorItemNotFound");
    }
}
