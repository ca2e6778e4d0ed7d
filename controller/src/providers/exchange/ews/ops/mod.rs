//! One module per EWS operation. Each defines the request (named as Microsoft names the
//! operation, such as [`find_item::FindItem`]), the response element (`FindItemResponse`)
//! and the per-item response message (`FindItemResponseMessage`).

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::types::{MessageXml, ResponseClass, ResponseCode};

pub mod convert_id;
pub mod create_item;
pub mod delete_item;
pub mod find_item;
pub mod get_folder;
pub mod get_item;
pub mod resolve_names;
pub mod update_item;

/// An EWS request that serializes into the SOAP Body.
pub trait Operation: Serialize {
    /// The operation name, as in the `SOAPAction` and in messages.
    const NAME: &'static str;

    /// The response element of the operation.
    type Response: OperationResponse + DeserializeOwned;
}

/// The response element of an operation: a list of response messages.
pub trait OperationResponse {
    /// The per-item response message.
    type Message: ResponseMessage;

    /// Returns the response messages, one per item or folder of the request.
    fn into_messages(self) -> Vec<Self::Message>;
}

/// The status fields that every response message has.
pub trait ResponseMessage {
    /// Success, warning or error.
    fn response_class(&self) -> ResponseClass;
    /// The machine-readable code, `NoError` on success.
    fn response_code(&self) -> &ResponseCode;
    /// The reason for a warning or error, in English.
    fn message_text(&self) -> Option<&str>;
    /// Extra details, such as `BackOffMilliseconds`.
    fn message_xml(&self) -> Option<&MessageXml>;
}

/// Declares a response message struct with the status fields of `ResponseMessageType`
/// followed by the operation's own fields, and implements [`ResponseMessage`] for it.
macro_rules! response_message {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident: $type:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        pub struct $name {
            /// Success, warning or error.
            ///
            /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsemessage>
            #[serde(rename = "@ResponseClass")]
            pub response_class: $crate::providers::exchange::ews::types::ResponseClass,

            /// The reason for a warning or error, in English.
            ///
            /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/messagetext>
            #[serde(rename = "MessageText", default)]
            pub message_text: Option<String>,

            /// The machine-readable code, `NoError` on success.
            ///
            /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode>
            #[serde(rename = "ResponseCode", default)]
            pub response_code: $crate::providers::exchange::ews::types::ResponseCode,

            /// Extra details of an error, such as `BackOffMilliseconds`.
            ///
            /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/messagexml>
            #[serde(rename = "MessageXml", default)]
            pub message_xml: Option<$crate::providers::exchange::ews::types::MessageXml>,

            $(
                $(#[$field_meta])*
                pub $field: $type,
            )*
        }

        impl $crate::providers::exchange::ews::ops::ResponseMessage for $name {
            fn response_class(&self) -> $crate::providers::exchange::ews::types::ResponseClass {
                self.response_class
            }

            fn response_code(&self) -> &$crate::providers::exchange::ews::types::ResponseCode {
                &self.response_code
            }

            fn message_text(&self) -> Option<&str> {
                self.message_text.as_deref()
            }

            fn message_xml(&self) -> Option<&$crate::providers::exchange::ews::types::MessageXml> {
                self.message_xml.as_ref()
            }
        }
    };
}

/// Declares the response element of an operation, holding its `ResponseMessages`, and
/// implements [`OperationResponse`] for it.
macro_rules! operation_response {
    ($(#[$meta:meta])* pub struct $name:ident => $message:ty;) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
        pub struct $name {
            /// The response messages, one per item or folder of the request.
            ///
            /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsemessages>
            #[serde(rename = "ResponseMessages")]
            pub response_messages: $crate::providers::exchange::ews::types::ResponseMessages<$message>,
        }

        impl $crate::providers::exchange::ews::ops::OperationResponse for $name {
            type Message = $message;

            fn into_messages(self) -> Vec<$message> {
                self.response_messages.messages
            }
        }
    };
}

pub(crate) use operation_response;
pub(crate) use response_message;
