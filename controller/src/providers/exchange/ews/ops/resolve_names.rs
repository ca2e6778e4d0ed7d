//! `ResolveNames`: looks up a name or address in the directory, here to tell a mailbox
//! from a distribution group or a contact.
//!
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenames-operation>

use serde::{Deserialize, Serialize};

use super::{Operation, operation_response, response_message};
use crate::providers::exchange::ews::types::EmailAddress;

/// The scope of a name lookup.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenames>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SearchScope {
    /// The directory only.
    ActiveDirectory,
    /// The directory, then the caller's contacts.
    ActiveDirectoryContacts,
    /// The caller's contacts only.
    Contacts,
    /// The caller's contacts, then the directory.
    ContactsActiveDirectory,
}

/// A request to resolve a name or address.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenames>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename = "m:ResolveNames")]
pub struct ResolveNames {
    /// Whether to return the whole contact record of each match.
    #[serde(rename = "@ReturnFullContactData")]
    pub return_full_contact_data: bool,

    /// The lookup scope.
    #[serde(rename = "@SearchScope")]
    pub search_scope: SearchScope,

    /// The name or address to resolve; `smtp:` in front restricts the match to addresses.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/unresolvedentry>
    #[serde(rename = "m:UnresolvedEntry")]
    pub unresolved_entry: String,
}

impl Operation for ResolveNames {
    const NAME: &'static str = "ResolveNames";
    type Response = ResolveNamesResponse;
}

operation_response! {
    /// The response to [`ResolveNames`].
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenamesresponse>
    pub struct ResolveNamesResponse => ResolveNamesResponseMessage;
}

response_message! {
    /// The matches of a [`ResolveNames`] request; several matches come with the warning
    /// `ErrorNameResolutionMultipleResults`, none with the error `ErrorNameResolutionNoResults`.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolvenamesresponsemessage>
    pub struct ResolveNamesResponseMessage {
        /// The matches.
        ///
        /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolutionset>
        #[serde(rename = "ResolutionSet", default)]
        pub resolution_set: Option<ResolutionSet>,
    }
}

/// The matches of a name.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolutionset>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ResolutionSet {
    /// The number of matches.
    #[serde(rename = "@TotalItemsInView", default)]
    pub total_items_in_view: Option<u32>,

    /// The matches, at most 100.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolution>
    #[serde(rename = "Resolution", default)]
    pub resolutions: Vec<Resolution>,
}

/// One match of a name.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/resolution>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Resolution {
    /// The matching recipient; `mailbox_type` distinguishes a mailbox from a group or contact.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mailbox>
    #[serde(rename = "Mailbox")]
    pub mailbox: EmailAddress,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::exchange::ews::ops::{OperationResponse, ResponseMessage};
    use crate::providers::exchange::ews::soap::{deserialize_response, serialize_request};
    use crate::providers::exchange::ews::test_support::{assert_valid_request, minify_xml};
    use crate::providers::exchange::ews::types::ResponseClass;

    #[test]
    fn request_serializes() {
        let request = ResolveNames {
            return_full_contact_data: false,
            search_scope: SearchScope::ActiveDirectory,
            unresolved_entry: "smtp:alice@lab.example".to_owned(),
        };
        let xml = serialize_request(&request, None).unwrap();
        let body = minify_xml(
            r#"<s:Body>
                <m:ResolveNames ReturnFullContactData="false" SearchScope="ActiveDirectory">
                  <m:UnresolvedEntry>smtp:alice@lab.example</m:UnresolvedEntry>
                </m:ResolveNames>
              </s:Body>"#,
        );
        assert!(minify_xml(&xml).contains(&body), "{xml}");
        assert_valid_request(&xml);
    }

    #[test]
    fn response_with_mailbox_and_group_decodes() {
        let xml = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
              <m:ResolveNamesResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
                <m:ResponseMessages>
                  <m:ResolveNamesResponseMessage ResponseClass="Warning">
                    <m:MessageText>Multiple results were found.</m:MessageText>
                    <m:ResponseCode>ErrorNameResolutionMultipleResults</m:ResponseCode>
                    <m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>
                    <m:ResolutionSet TotalItemsInView="2" IncludesLastItemInRange="true">
                      <t:Resolution>
                        <t:Mailbox>
                          <t:Name>Alice Smith</t:Name>
                          <t:EmailAddress>alice@lab.example</t:EmailAddress>
                          <t:RoutingType>SMTP</t:RoutingType>
                          <t:MailboxType>Mailbox</t:MailboxType>
                        </t:Mailbox>
                      </t:Resolution>
                      <t:Resolution>
                        <t:Mailbox>
                          <t:Name>All Sales</t:Name>
                          <t:EmailAddress>sales@lab.example</t:EmailAddress>
                          <t:RoutingType>SMTP</t:RoutingType>
                          <t:MailboxType>PublicDL</t:MailboxType>
                        </t:Mailbox>
                      </t:Resolution>
                    </m:ResolutionSet>
                  </m:ResolveNamesResponseMessage>
                </m:ResponseMessages>
              </m:ResolveNamesResponse>
            </s:Body></s:Envelope>"#;
        let response = deserialize_response::<ResolveNamesResponse>(xml).unwrap();
        let message = response.body.into_messages().remove(0);
        assert_eq!(message.response_class(), ResponseClass::Warning);
        let set = message.resolution_set.unwrap();
        assert_eq!(set.total_items_in_view, Some(2));
        assert_eq!(set.resolutions.len(), 2);
        assert_eq!(
            set.resolutions[0].mailbox.mailbox_type.as_deref(),
            Some("Mailbox")
        );
        assert_eq!(
            set.resolutions[1].mailbox.email_address.as_deref(),
            Some("sales@lab.example")
        );
        assert_eq!(
            set.resolutions[1].mailbox.mailbox_type.as_deref(),
            Some("PublicDL")
        );
    }
}
