//! The EWS client: sends operations to one EWS endpoint and turns HTTP statuses, SOAP
//! faults and per-item response codes into [`EwsError`]s.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderValue, Method, StatusCode, header};
use tracing::{debug, trace, warn};
use url::Url;

use super::auth::EwsAuth;
use super::error::{EwsError, Target};
use super::ops::convert_id::ConvertId;
use super::ops::create_item::{CreateItem, MessageDisposition, NewItems, NewMessage};
use super::ops::delete_item::{DeleteItem, DeleteType};
use super::ops::find_item::{FindItem, Traversal};
use super::ops::get_folder::{FolderFields, GetFolder};
use super::ops::get_item::GetItem;
use super::ops::resolve_names::{ResolveNames, SearchScope};
use super::ops::update_item::{
    ConflictResolution, ItemChange, ItemChanges, ItemFieldChange, UpdateItem, Updates,
};
use super::ops::{Operation, OperationResponse, ResponseMessage};
use super::soap::{
    ConnectingSid, ServerVersionInfo, SoapResponse, back_off, deserialize_fault,
    deserialize_response, serialize_request,
};
use super::transport::{HttpRequest, Transport, TransportError, offered_schemes};
use super::types::{
    AdditionalProperties, BaseFolderIds, BaseItemIds, BasePoint, BaseShape,
    DistinguishedFolderName, EmailAddress, ExtendedFieldUri, ExtendedProperty,
    ExtendedPropertyValue, IndexedPageItemView, ItemId, PropertyPath, ResponseClass, Restriction,
    SearchExpression, Shape,
};
use crate::http::{HttpError, HttpSettings};

/// The items per `FindItem` page.
const FIND_PAGE_SIZE: u32 = 100;

/// The pages that [`EwsClient::find_sent_items`] reads at most. One Message-ID matches a
/// handful of items (resends, mail to self); more means something else is wrong, and
/// reading further would only load the server.
const FIND_MAX_PAGES: u32 = 10;

/// The `X-AnchorMailbox` header, which routes a request to the server that stores the
/// mailbox (HTTP/1.1 sends header names in lower case; they are case-insensitive).
const X_ANCHOR_MAILBOX: header::HeaderName = header::HeaderName::from_static("x-anchormailbox");

/// Whose mailbox a request acts on, and how the server finds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallContext {
    /// The account to impersonate (the `ExchangeImpersonation` header).
    pub impersonation: Option<ConnectingSid>,
    /// The SMTP address for the `X-AnchorMailbox` header.
    pub anchor_mailbox: Option<String>,
}

impl CallContext {
    /// Acts as the authenticated account itself, without routing hints.
    pub fn own() -> Self {
        Self::default()
    }

    /// Impersonates the mailbox with primary SMTP address `smtp_address`, anchoring the
    /// request on the same address.
    pub fn impersonate(smtp_address: &str) -> Self {
        Self {
            impersonation: Some(ConnectingSid::PrimarySmtpAddress(smtp_address.to_owned())),
            anchor_mailbox: Some(smtp_address.to_owned()),
        }
    }

    /// Impersonates `sid`, anchoring the request on its address or name.
    pub fn impersonate_as(sid: ConnectingSid) -> Self {
        let anchor = sid.value().to_owned();
        Self {
            impersonation: Some(sid),
            anchor_mailbox: Some(anchor),
        }
    }

    /// Acts as the authenticated account on a mailbox it has rights to (delegate access),
    /// anchoring the request on that mailbox.
    pub fn anchored(smtp_address: &str) -> Self {
        Self {
            impersonation: None,
            anchor_mailbox: Some(smtp_address.to_owned()),
        }
    }

    /// Returns the mailbox for logs and errors.
    pub fn mailbox(&self) -> Option<&str> {
        self.impersonation
            .as_ref()
            .map(ConnectingSid::value)
            .or(self.anchor_mailbox.as_deref())
    }
}

/// An item found in Sent Items, with the properties the update loop compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentItem {
    /// The item's identifier and change key.
    pub item_id: ItemId,
    /// When the message was sent.
    pub date_time_sent: Option<DateTime<Utc>>,
    /// When the item was created in the mailbox.
    pub date_time_created: Option<DateTime<Utc>>,
    /// The item's size in bytes.
    pub size: Option<u64>,
    /// The requested extended properties that the item has.
    pub extended_properties: Vec<ExtendedPropertyValue>,
}

impl SentItem {
    /// Returns the value of the extended property `field_uri`, if the item has it.
    pub fn extended_property(&self, field_uri: &ExtendedFieldUri) -> Option<&str> {
        self.extended_properties
            .iter()
            .find(|property| property.field_uri.same_property(field_uri))
            .and_then(|property| property.value.as_deref())
    }
}

/// Options of an [`EwsClient`].
#[derive(Debug, Clone)]
pub struct EwsClientOptions {
    /// The HTTP settings shared with the other providers.
    pub http: HttpSettings,
    /// The maximum of concurrent NTLM requests, each on its own connection.
    pub max_ntlm_connections: usize,
}

impl Default for EwsClientOptions {
    fn default() -> Self {
        Self {
            http: HttpSettings::default(),
            // Exchange's default EWSMaxConcurrency throttling budget is 27 connections per
            // account; a few connections leave room for other clients of the account.
            max_ntlm_connections: 4,
        }
    }
}

/// A client of one EWS endpoint, such as `https://mail.example.com/EWS/Exchange.asmx`.
pub struct EwsClient {
    endpoint: Url,
    transport: Transport,
}

impl std::fmt::Debug for EwsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EwsClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl EwsClient {
    /// Creates a client for `endpoint` that authenticates with `auth`.
    pub fn new(
        endpoint: Url,
        auth: EwsAuth,
        options: &EwsClientOptions,
    ) -> Result<Self, HttpError> {
        let transport = Transport::new(&options.http, auth, options.max_ntlm_connections)?;
        Ok(Self {
            endpoint,
            transport,
        })
    }

    /// Returns the EWS URL.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Sends `operation` in `context` and returns the decoded response. HTTP errors and
    /// SOAP faults become errors; per-item response codes are left to the caller.
    pub async fn execute<O: Operation>(
        &self,
        operation: &O,
        context: &CallContext,
    ) -> Result<SoapResponse<O::Response>, EwsError> {
        let target = Target {
            operation: O::NAME,
            mailbox: context.mailbox().map(str::to_owned),
        };

        let xml =
            serialize_request(operation, context.impersonation.as_ref()).map_err(|error| {
                EwsError::Encode {
                    target: target.clone(),
                    message: error.to_string(),
                }
            })?;

        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )];
        if let Some(anchor) = &context.anchor_mailbox {
            let value = HeaderValue::from_str(anchor).map_err(|_| EwsError::Encode {
                target: target.clone(),
                message: format!("mailbox {anchor:?} is not a valid header value"),
            })?;
            headers.push((X_ANCHOR_MAILBOX, value));
        }

        trace!(operation = O::NAME, mailbox = ?target.mailbox, "sending EWS request");
        let request = HttpRequest {
            method: Method::POST,
            url: &self.endpoint,
            headers,
            body: Bytes::from(xml),
        };
        let response = self
            .transport
            .send(&request)
            .await
            .map_err(|error| self.transport_error(target.clone(), error))?;
        debug!(operation = O::NAME, mailbox = ?target.mailbox, status = %response.status, "EWS response");

        let body = String::from_utf8_lossy(&response.body);
        match response.status {
            StatusCode::OK => {
                deserialize_response::<O::Response>(&body).map_err(|error| EwsError::Decode {
                    target,
                    path: error.path,
                    message: error.message,
                })
            }
            StatusCode::UNAUTHORIZED => Err(EwsError::Unauthorized {
                target,
                scheme: self.transport_scheme(),
                offered: offered_schemes(&response.headers),
            }),
            StatusCode::FORBIDDEN => Err(EwsError::Forbidden { target }),
            StatusCode::NOT_FOUND => Err(EwsError::NotFound {
                target,
                url: self.endpoint.to_string(),
            }),
            status if status.is_server_error() => {
                // EWS reports request-wide errors (no mailbox, no impersonation right,
                // throttling) as SOAP faults with HTTP 500.
                if let Some(fault) = deserialize_fault(&body) {
                    return Err(match fault.ews_response_code() {
                        Some(code) => EwsError::from_response_code(
                            target,
                            code,
                            fault.message.as_deref().or(Some(&fault.fault_string)),
                            fault.back_off(),
                        ),
                        None => EwsError::SoapFault {
                            target,
                            fault: Box::new(fault),
                        },
                    });
                }
                Err(EwsError::ServerError {
                    target,
                    status: status.as_u16(),
                    retry_after: retry_after(&response.headers),
                })
            }
            status => Err(EwsError::UnexpectedStatus {
                target,
                status: status.as_u16(),
                location: response
                    .headers
                    .get(header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            }),
        }
    }

    /// Sends `operation` for one item or folder and returns its response message, or the
    /// error its response code names. Warnings count as success.
    pub async fn execute_single<O: Operation>(
        &self,
        operation: &O,
        context: &CallContext,
    ) -> Result<<O::Response as OperationResponse>::Message, EwsError> {
        let target = Target {
            operation: O::NAME,
            mailbox: context.mailbox().map(str::to_owned),
        };
        let response = self.execute(operation, context).await?;
        let message = response
            .body
            .into_messages()
            .into_iter()
            .next()
            .ok_or_else(|| EwsError::MissingResponseMessage {
                target: target.clone(),
            })?;
        check(target, message)
    }

    /// Probes the endpoint with a `ConvertId` request that every server accepts, and returns
    /// the server version; this checks the URL, TLS and credentials.
    pub async fn probe_version(&self) -> Result<ServerVersionInfo, EwsError> {
        let response = self
            .execute(&ConvertId::version_probe(), &CallContext::own())
            .await?;
        // The placeholder identifier always fails; only the header matters.
        response.server_version.ok_or_else(|| EwsError::Decode {
            target: Target {
                operation: ConvertId::NAME,
                mailbox: None,
            },
            path: "Header.ServerVersionInfo".to_owned(),
            message: "the response has no ServerVersionInfo header".to_owned(),
        })
    }

    /// Reads the Sent Items folder of `mailbox` while impersonating it, which checks that
    /// impersonation works for that mailbox.
    pub async fn get_sent_items_folder(&self, mailbox: &str) -> Result<FolderFields, EwsError> {
        let operation = GetFolder {
            folder_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties {
                    paths: vec![
                        PropertyPath::field("folder:DisplayName"),
                        PropertyPath::field("folder:TotalCount"),
                    ],
                },
            },
            folder_ids: BaseFolderIds::distinguished(DistinguishedFolderName::SentItems, mailbox),
        };
        let context = CallContext::impersonate(mailbox);
        let message = self.execute_single(&operation, &context).await?;
        message
            .folders
            .folders
            .into_iter()
            .next()
            .map(|folder| folder.fields().clone())
            .ok_or_else(|| EwsError::MissingResponseMessage {
                target: Target {
                    operation: GetFolder::NAME,
                    mailbox: Some(mailbox.to_owned()),
                },
            })
    }

    /// Resolves an SMTP address in the directory and returns the matches, each with its
    /// `MailboxType` (`Mailbox`, `PublicDL`, `Contact`, …); no match returns an empty list.
    pub async fn resolve_smtp_address(&self, address: &str) -> Result<Vec<EmailAddress>, EwsError> {
        let operation = ResolveNames {
            return_full_contact_data: false,
            search_scope: SearchScope::ActiveDirectory,
            unresolved_entry: format!("smtp:{address}"),
        };
        let context = CallContext::own();
        let target = Target {
            operation: ResolveNames::NAME,
            mailbox: Some(address.to_owned()),
        };
        let response = self.execute(&operation, &context).await?;
        let Some(message) = response.body.into_messages().into_iter().next() else {
            return Err(EwsError::MissingResponseMessage { target });
        };
        if message.response_code().0 == "ErrorNameResolutionNoResults" {
            return Ok(Vec::new());
        }
        let message = check(target, message)?;
        Ok(message
            .resolution_set
            .map(|set| {
                set.resolutions
                    .into_iter()
                    .map(|resolution| resolution.mailbox)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Finds the items in `mailbox`'s Sent Items whose `PR_INTERNET_MESSAGE_ID` is
    /// `internet_message_id` (with its angle brackets), impersonating the mailbox. Each
    /// item comes with its send and creation times, size, and the extended properties in
    /// `properties` that it has.
    pub async fn find_sent_items_by_message_id(
        &self,
        mailbox: &str,
        internet_message_id: &str,
        properties: &[ExtendedFieldUri],
    ) -> Result<Vec<SentItem>, EwsError> {
        let restriction = SearchExpression::is_equal_to(
            PropertyPath::Extended(ExtendedFieldUri::internet_message_id()),
            internet_message_id,
        );
        self.find_sent_items(mailbox, restriction, properties).await
    }

    /// Finds the items in `mailbox`'s Sent Items that match `restriction`, impersonating the
    /// mailbox, with the same properties as
    /// [`find_sent_items_by_message_id`](Self::find_sent_items_by_message_id).
    pub async fn find_sent_items(
        &self,
        mailbox: &str,
        restriction: SearchExpression,
        properties: &[ExtendedFieldUri],
    ) -> Result<Vec<SentItem>, EwsError> {
        let mut paths = vec![
            PropertyPath::field("item:DateTimeSent"),
            PropertyPath::field("item:DateTimeCreated"),
            PropertyPath::field("item:Size"),
        ];
        paths.extend(properties.iter().cloned().map(PropertyPath::Extended));
        let mut operation = FindItem {
            traversal: Traversal::Shallow,
            item_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties { paths },
            },
            indexed_page_item_view: IndexedPageItemView {
                max_entries_returned: FIND_PAGE_SIZE,
                offset: 0,
                base_point: BasePoint::Beginning,
            },
            restriction: Some(Restriction {
                expression: restriction,
            }),
            parent_folder_ids: BaseFolderIds::distinguished(
                DistinguishedFolderName::SentItems,
                mailbox,
            ),
        };
        let context = CallContext::impersonate(mailbox);

        let mut found = Vec::new();
        for _ in 0..FIND_MAX_PAGES {
            let message = self.execute_single(&operation, &context).await?;
            let Some(root) = message.root_folder else {
                break;
            };
            let page_len = root.items.items.len();
            found.extend(root.items.items.into_iter().filter_map(|item| {
                let fields = item.into_fields();
                Some(SentItem {
                    item_id: fields.item_id?,
                    date_time_sent: fields.date_time_sent,
                    date_time_created: fields.date_time_created,
                    size: fields.size,
                    extended_properties: fields.extended_properties,
                })
            }));
            if root.includes_last_item_in_range != Some(false) || page_len == 0 {
                return Ok(found);
            }
            operation.indexed_page_item_view.offset = root
                .indexed_paging_offset
                .unwrap_or(operation.indexed_page_item_view.offset + page_len as u32);
        }
        warn!(
            mailbox,
            items = found.len(),
            "more Sent Items match the search than it reads; using the first pages"
        );
        Ok(found)
    }

    /// Creates a message from the RFC 5322 bytes `mime` in `mailbox`'s Sent Items without
    /// sending it, with `properties` set at creation, and returns its identifier.
    ///
    /// Pass `PR_MESSAGE_FLAGS` with [`MSGFLAG_READ`](super::types::MSGFLAG_READ) so that the
    /// item is a read, sent message and not a draft: the flag cannot change after creation.
    pub async fn create_sent_item(
        &self,
        mailbox: &str,
        mime: &[u8],
        properties: Vec<ExtendedProperty>,
    ) -> Result<ItemId, EwsError> {
        let operation = CreateItem {
            message_disposition: MessageDisposition::SaveOnly,
            saved_item_folder_id: BaseFolderIds::distinguished(
                DistinguishedFolderName::SentItems,
                mailbox,
            ),
            items: NewItems {
                messages: vec![NewMessage {
                    mime_content: BASE64.encode(mime),
                    extended_properties: properties,
                }],
            },
        };
        let message = self
            .execute_single(&operation, &CallContext::impersonate(mailbox))
            .await?;
        first_item_id(message.items.items, CreateItem::NAME, mailbox)
    }

    /// Reads the MIME content of `item` in `mailbox` and returns the decoded bytes.
    pub async fn get_mime_content(
        &self,
        mailbox: &str,
        item: &ItemId,
    ) -> Result<Vec<u8>, EwsError> {
        let operation = GetItem {
            item_shape: Shape {
                base_shape: BaseShape::IdOnly,
                additional_properties: AdditionalProperties {
                    paths: vec![PropertyPath::field("item:MimeContent")],
                },
            },
            item_ids: BaseItemIds {
                item_ids: vec![item.clone()],
            },
        };
        let target = Target {
            operation: GetItem::NAME,
            mailbox: Some(mailbox.to_owned()),
        };
        let message = self
            .execute_single(&operation, &CallContext::impersonate(mailbox))
            .await?;
        let content = message
            .items
            .items
            .into_iter()
            .next()
            .and_then(|item| item.into_fields().mime_content)
            .ok_or_else(|| EwsError::Decode {
                target: target.clone(),
                path: "Body.GetItemResponse.ResponseMessages.GetItemResponseMessage.Items.Message.MimeContent".to_owned(),
                message: "the item has no MimeContent".to_owned(),
            })?;
        // Servers may wrap the base64 text; the decoder does not skip whitespace.
        let compact: String = content.base64.split_whitespace().collect();
        BASE64.decode(compact).map_err(|error| EwsError::Decode {
            target,
            path: "MimeContent".to_owned(),
            message: format!("invalid base64: {error}"),
        })
    }

    /// Deletes `item` from `mailbox` with the disposal that `delete_type` names.
    pub async fn delete_item(
        &self,
        mailbox: &str,
        item: &ItemId,
        delete_type: DeleteType,
    ) -> Result<(), EwsError> {
        let operation = DeleteItem::new(
            delete_type,
            BaseItemIds {
                item_ids: vec![item.clone()],
            },
        );
        self.execute_single(&operation, &CallContext::impersonate(mailbox))
            .await
            .map(drop)
    }

    /// Sets `properties` on `item` in `mailbox`, overwriting concurrent changes, and
    /// returns the item's identifier with its new change key.
    pub async fn set_extended_properties(
        &self,
        mailbox: &str,
        item: &ItemId,
        properties: Vec<ExtendedProperty>,
    ) -> Result<ItemId, EwsError> {
        let operation = UpdateItem {
            conflict_resolution: ConflictResolution::AlwaysOverwrite,
            message_disposition: MessageDisposition::SaveOnly,
            item_changes: ItemChanges {
                item_changes: vec![ItemChange {
                    item_id: item.clone(),
                    updates: Updates {
                        changes: properties
                            .into_iter()
                            .map(ItemFieldChange::set_extended_property)
                            .collect(),
                    },
                }],
            },
        };
        let message = self
            .execute_single(&operation, &CallContext::impersonate(mailbox))
            .await?;
        first_item_id(message.items.items, UpdateItem::NAME, mailbox)
    }

    fn transport_scheme(&self) -> super::auth::AuthScheme {
        self.transport.scheme()
    }

    fn transport_error(&self, target: Target, error: TransportError) -> EwsError {
        let host = self.endpoint.host_str().unwrap_or_default().to_owned();
        match error {
            TransportError::Token(source) => EwsError::Token {
                target,
                source: Box::new(source),
            },
            TransportError::Ntlm(source) => EwsError::Ntlm { target, source },
            TransportError::NtlmNotOffered { offered } => {
                EwsError::NtlmNotOffered { target, offered }
            }
            TransportError::Http(source) => {
                if source.is_timeout() {
                    EwsError::Timeout {
                        target,
                        host,
                        source,
                    }
                } else if is_tls_error(&source) {
                    EwsError::Tls {
                        target,
                        host,
                        source,
                    }
                } else if source.is_connect() {
                    EwsError::Connect {
                        target,
                        host,
                        source,
                    }
                } else {
                    EwsError::Transport {
                        target,
                        host,
                        source,
                    }
                }
            }
        }
    }
}

/// Returns the message, or the error its response code names.
fn check<M: ResponseMessage>(target: Target, message: M) -> Result<M, EwsError> {
    if message.response_class() != ResponseClass::Error {
        return Ok(message);
    }
    Err(EwsError::from_response_code(
        target,
        &message.response_code().0,
        message.message_text(),
        back_off(message.message_xml()),
    ))
}

fn first_item_id(
    items: Vec<super::types::ResponseItem>,
    operation: &'static str,
    mailbox: &str,
) -> Result<ItemId, EwsError> {
    items
        .into_iter()
        .next()
        .and_then(|item| item.into_fields().item_id)
        .ok_or_else(|| EwsError::Decode {
            target: Target {
                operation,
                mailbox: Some(mailbox.to_owned()),
            },
            path: "Items".to_owned(),
            message: "the response names no item".to_owned(),
        })
}

/// Reads a `Retry-After` header in seconds; the HTTP-date form is not used by Exchange.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Tells whether a `reqwest` error comes from the TLS layer. `std::io::Error::source`
/// skips the error that an I/O error wraps, so the walk steps into the wrapped error
/// instead (rustls failures arrive as I/O errors inside I/O errors).
pub(crate) fn is_tls_error(error: &reqwest::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        current = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};

    use super::*;
    use crate::http::ResolveOverride;
    use crate::providers::exchange::ews::auth::Secret;
    use crate::providers::exchange::test_server::{CannedResponse, TestServer};

    const FIND_ITEM_RESPONSE: &str = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
        <m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
            xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
          <m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success">
            <m:ResponseCode>NoError</m:ResponseCode>
            <m:RootFolder IndexedPagingOffset="1" TotalItemsInView="1" IncludesLastItemInRange="true">
              <t:Items><t:Message>
                <t:ItemId Id="AAMkAD1=" ChangeKey="CQAAABY1"/>
                <t:Size>2048</t:Size>
                <t:DateTimeSent>2025-03-04T10:00:05Z</t:DateTimeSent>
              </t:Message></t:Items>
            </m:RootFolder>
          </m:FindItemResponseMessage></m:ResponseMessages>
        </m:FindItemResponse></s:Body></s:Envelope>"#;

    fn basic() -> EwsAuth {
        EwsAuth::Basic {
            username: "svc-siu@lab.example".to_owned(),
            password: Secret::new("Passw0rd!"),
        }
    }

    fn client(server: &TestServer, auth: EwsAuth) -> EwsClient {
        let url = Url::parse(&format!("http://{}/EWS/Exchange.asmx", server.addr)).unwrap();
        EwsClient::new(url, auth, &EwsClientOptions::default()).unwrap()
    }

    #[tokio::test]
    async fn find_sends_impersonation_anchor_and_basic_auth() {
        let server = TestServer::http(|_| CannedResponse::xml(200, FIND_ITEM_RESPONSE)).await;
        let items = client(&server, basic())
            .find_sent_items_by_message_id("alice@lab.example", "<abc@lab.example>", &[])
            .await
            .expect("the canned response should decode");

        assert_eq!(items.len(), 1);
        assert_eq!(items[0].item_id.id, "AAMkAD1=");
        assert_eq!(items[0].size, Some(2048));

        let request = &server.recorded()[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/EWS/Exchange.asmx");
        assert_eq!(request.header("x-anchormailbox"), Some("alice@lab.example"));
        assert_eq!(
            request.header("content-type"),
            Some("text/xml; charset=utf-8")
        );
        let expected = format!("Basic {}", BASE64.encode("svc-siu@lab.example:Passw0rd!"));
        assert_eq!(request.header("authorization"), Some(expected.as_str()));
        assert!(request.header("user-agent").unwrap().starts_with("siuctl/"));
        assert!(
            request
                .body
                .contains("<t:PrimarySmtpAddress>alice@lab.example</t:PrimarySmtpAddress>")
        );
        assert!(request.body.contains(r#"Value="&lt;abc@lab.example&gt;""#));
    }

    #[tokio::test]
    async fn anchored_context_sends_anchor_without_impersonation() {
        let server = TestServer::http(|_| CannedResponse::xml(200, FIND_ITEM_RESPONSE)).await;
        let operation = ConvertId::version_probe();
        let _ = client(&server, basic())
            .execute(&operation, &CallContext::anchored("bob@lab.example"))
            .await;
        let request = &server.recorded()[0];
        assert_eq!(request.header("x-anchormailbox"), Some("bob@lab.example"));
        assert!(!request.body.contains("ExchangeImpersonation"));
    }

    #[tokio::test]
    async fn impersonation_fault_maps_to_its_variant() {
        let fault = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
            <faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorImpersonateUserDenied</faultcode>
            <faultstring>The account does not have permission to impersonate the requested user.</faultstring>
            <detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorImpersonateUserDenied</e:ResponseCode></detail>
            </s:Fault></s:Body></s:Envelope>"#;
        let server = TestServer::http(move |_| CannedResponse::xml(500, fault)).await;
        let error = client(&server, basic())
            .get_sent_items_folder("alice@lab.example")
            .await
            .unwrap_err();
        assert!(
            matches!(error, EwsError::ImpersonateUserDenied { .. }),
            "{error:?}"
        );
        assert_eq!(error.target().operation, "GetFolder");
        assert_eq!(error.target().mailbox.as_deref(), Some("alice@lab.example"));
    }

    #[tokio::test]
    async fn server_busy_message_carries_back_off() {
        let body = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
            <m:DeleteItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
                xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
              <m:ResponseMessages><m:DeleteItemResponseMessage ResponseClass="Error">
                <m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText>
                <m:ResponseCode>ErrorServerBusy</m:ResponseCode>
                <m:MessageXml><t:Value Name="BackOffMilliseconds">1500</t:Value></m:MessageXml>
              </m:DeleteItemResponseMessage></m:ResponseMessages>
            </m:DeleteItemResponse></s:Body></s:Envelope>"#;
        let server = TestServer::http(move |_| CannedResponse::xml(200, body)).await;
        let error = client(&server, basic())
            .delete_item(
                "alice@lab.example",
                &ItemId::new("AAMkAD1="),
                DeleteType::HardDelete,
            )
            .await
            .unwrap_err();
        assert!(error.is_throttling(), "{error:?}");
        assert_eq!(error.retry_after(), Some(Duration::from_millis(1500)));
    }

    #[tokio::test]
    async fn http_statuses_map_to_variants() {
        let cases: Vec<(CannedResponse, &str)> = vec![
            (
                CannedResponse::xml(401, "")
                    .with_header("WWW-Authenticate", "NTLM")
                    .with_header("WWW-Authenticate", "Negotiate"),
                "Unauthorized",
            ),
            (CannedResponse::xml(403, ""), "Forbidden"),
            (CannedResponse::xml(404, ""), "NotFound"),
            (
                CannedResponse::xml(503, "").with_header("Retry-After", "30"),
                "ServerError",
            ),
            (CannedResponse::xml(500, "<html>oops</html>"), "ServerError"),
            (
                CannedResponse::xml(302, "").with_header("Location", "https://login.lab.example/"),
                "UnexpectedStatus",
            ),
            (CannedResponse::xml(200, "<html>not soap</html>"), "Decode"),
        ];
        for (response, variant) in cases {
            let status = response.status;
            let server = TestServer::http(move |_| response.clone()).await;
            let error = client(&server, basic()).probe_version().await.unwrap_err();
            assert!(
                format!("{error:?}").starts_with(variant),
                "HTTP {status} should give {variant}, got {error:?}"
            );
            if let EwsError::Unauthorized {
                scheme, offered, ..
            } = &error
            {
                assert_eq!(*scheme, super::super::auth::AuthScheme::Basic);
                assert_eq!(offered, &["NTLM".to_owned(), "Negotiate".to_owned()]);
            }
            if status == 503 {
                assert!(error.is_throttling());
                assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
            }
        }
    }

    #[derive(Debug)]
    struct FixedToken;

    #[async_trait::async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            assert_eq!(scopes, [super::super::auth::EXCHANGE_ONLINE_SCOPE]);
            Ok(AccessToken::new(
                "eyJ0eXAiOiJKV1QiLCJhbGciOi.test.token",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn bearer_token_is_sent_per_request() {
        let server = TestServer::http(|_| CannedResponse::xml(200, FIND_ITEM_RESPONSE)).await;
        let client = client(&server, EwsAuth::exchange_online(Arc::new(FixedToken)));
        for _ in 0..2 {
            client
                .find_sent_items_by_message_id("alice@lab.example", "<abc@lab.example>", &[])
                .await
                .unwrap();
        }
        let requests = server.recorded();
        assert_eq!(requests.len(), 2);
        for request in requests {
            assert_eq!(
                request.header("authorization"),
                Some("Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.test.token")
            );
        }
    }

    #[tokio::test]
    async fn untrusted_certificate_is_tls_error_with_host() {
        let server = TestServer::https(&["mail.lab.example"], |_| {
            CannedResponse::xml(200, FIND_ITEM_RESPONSE)
        })
        .await;
        let options = EwsClientOptions {
            http: HttpSettings {
                resolve: vec![ResolveOverride {
                    host: "mail.lab.example".to_owned(),
                    addr: server.addr,
                }],
                ..HttpSettings::default()
            },
            ..EwsClientOptions::default()
        };
        let url = Url::parse("https://mail.lab.example/EWS/Exchange.asmx").unwrap();
        let client = EwsClient::new(url, basic(), &options).unwrap();
        let error = client.probe_version().await.unwrap_err();
        assert!(matches!(error, EwsError::Tls { .. }), "{error:?}");
        assert!(error.to_string().contains("mail.lab.example"), "{error}");
    }

    #[tokio::test]
    async fn ca_file_and_resolve_override_reach_https_server() {
        let probe_response = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
            <s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"
                MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11"/></s:Header>
            <s:Body><m:ConvertIdResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
              <m:ResponseMessages><m:ConvertIdResponseMessage ResponseClass="Error">
                <m:MessageText>Id is malformed.</m:MessageText><m:ResponseCode>ErrorInvalidIdMalformed</m:ResponseCode>
              </m:ConvertIdResponseMessage></m:ResponseMessages>
            </m:ConvertIdResponse></s:Body></s:Envelope>"#;
        let server = TestServer::https(&["mail.lab.example"], move |_| {
            CannedResponse::xml(200, probe_response)
        })
        .await;
        let options = EwsClientOptions {
            http: HttpSettings {
                ca_file: server.ca_file.clone(),
                ca_mode: crate::http::CaMode::ReplaceSystemRoots,
                // The override's port replaces 443 because the URL names no port.
                resolve: vec![format!("mail.lab.example:{}", server.addr).parse().unwrap()],
                ..HttpSettings::default()
            },
            ..EwsClientOptions::default()
        };
        let url = Url::parse("https://mail.lab.example/EWS/Exchange.asmx").unwrap();
        let client = EwsClient::new(url, basic(), &options).unwrap();
        let version = client
            .probe_version()
            .await
            .expect("the probe should pass TLS");
        assert_eq!(version.major_version, Some(15));
        assert_eq!(version.minor_version, Some(2));
    }
}
