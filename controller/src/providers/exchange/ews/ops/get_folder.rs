//! `GetFolder`: reads a folder, here the impersonated mailbox's Sent Items, which checks
//! that impersonation works for that mailbox.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder-operation>

use serde::{Deserialize, Serialize};

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::{BaseFolderIds, FolderId, Shape};

/// A request to read folders.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolder>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:GetFolder")]
pub struct GetFolder {
    /// The properties to return.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/foldershape>
    #[serde(rename = "m:FolderShape")]
    pub folder_shape: Shape,

    /// The folders to read.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folderids>
    #[serde(rename = "m:FolderIds")]
    pub folder_ids: BaseFolderIds,
}

impl Operation for GetFolder {
    const NAME: &'static str = "GetFolder";
    type Response = GetFolderResponse;
}

operation_response! {
    /// The response to [`GetFolder`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolderresponse>
    pub struct GetFolderResponse => GetFolderResponseMessage;
}

response_message! {
    /// The result for one folder of a [`GetFolder`] request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getfolderresponsemessage>
    pub struct GetFolderResponseMessage {
        /// The folder; absent on error.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folders-ex15websvcsotherref>
        #[serde(rename = "Folders", default)]
        pub folders: ResponseFolders,
    }
}

/// The folders of a response.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folders-ex15websvcsotherref>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ResponseFolders {
    /// The folders, of any folder type.
    #[serde(rename = "$value", default)]
    pub folders: Vec<ResponseFolder>,
}

/// A folder of any type in a response.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ResponseFolder {
    /// A mail folder such as Sent Items.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folder>
    Folder(FolderFields),
    /// A calendar.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendarfolder>
    CalendarFolder(FolderFields),
    /// A contacts folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/contactsfolder>
    ContactsFolder(FolderFields),
    /// A search folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/searchfolder>
    SearchFolder(FolderFields),
    /// A tasks folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/tasksfolder>
    TasksFolder(FolderFields),
}

impl ResponseFolder {
    /// Returns the properties, whatever the folder type.
    pub fn fields(&self) -> &FolderFields {
        match self {
            Self::Folder(fields)
            | Self::CalendarFolder(fields)
            | Self::ContactsFolder(fields)
            | Self::SearchFolder(fields)
            | Self::TasksFolder(fields) => fields,
        }
    }
}

/// The folder properties that the controller reads.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folder>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct FolderFields {
    /// The folder's identifier.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folderid>
    #[serde(rename = "FolderId", default)]
    pub folder_id: Option<FolderId>,

    /// The folder's name in the mailbox's language; never use it to find a folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/displayname-string>
    #[serde(rename = "DisplayName", default)]
    pub display_name: Option<String>,

    /// The number of items in the folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/totalcount>
    #[serde(rename = "TotalCount", default)]
    pub total_count: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{
        ConnectingSid, deserialize_response, serialize_request,
    };
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::{
        AdditionalProperties, BaseShape, DistinguishedFolderName, PropertyPath, ResponseClass,
    };

    #[test]
    fn sent_items_request_serializes() {
        let request = GetFolder {
            folder_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties {
                    paths: vec![
                        PropertyPath::field("folder:DisplayName"),
                        PropertyPath::field("folder:TotalCount"),
                    ],
                },
            },
            folder_ids: BaseFolderIds::distinguished(
                DistinguishedFolderName::SentItems,
                "alice@lab.example",
            ),
        };
        let sid = ConnectingSid::PrimarySmtpAddress("alice@lab.example".to_owned());
        let xml = serialize_request(&request, Some(&sid)).unwrap();
        let body = minify_xml(
            r#"<s:Body>
                <m:GetFolder>
                  <m:FolderShape>
                    <t:BaseShape>IdOnly</t:BaseShape>
                    <t:AdditionalProperties>
                      <t:FieldURI FieldURI="folder:DisplayName"/>
                      <t:FieldURI FieldURI="folder:TotalCount"/>
                    </t:AdditionalProperties>
                  </m:FolderShape>
                  <m:FolderIds>
                    <t:DistinguishedFolderId Id="sentitems">
                      <t:Mailbox><t:EmailAddress>alice@lab.example</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType></t:Mailbox>
                    </t:DistinguishedFolderId>
                  </m:FolderIds>
                </m:GetFolder>
              </s:Body>"#,
        );
        assert!(minify_xml(&xml).contains(&body), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_localized_name_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:GetFolderResponseMessage ResponseClass="Success">
                    <m:ResponseCode>NoError</m:ResponseCode>
                    <m:Folders>
                      <t:Folder>
                        <t:FolderId Id="AQMkAD=" ChangeKey="AQAAAB"/>
                        <t:DisplayName>Gesendete Elemente</t:DisplayName>
                        <t:TotalCount>42</t:TotalCount>
                      </t:Folder>
                    </m:Folders>
                  </m:GetFolderResponseMessage>
                </m:ResponseMessages>
              </m:GetFolderResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<GetFolderResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Success);
        let folder = message.folders.folders[0].fields();
        assert_eq!(folder.folder_id.as_ref().unwrap().id, "AQMkAD=");
        assert_eq!(folder.display_name.as_deref(), Some("Gesendete Elemente"));
        assert_eq!(folder.total_count, Some(42));
    }
}
