//! Wire types that several EWS operations share.
//!
//! Request types serialize with the `t:` prefix of the types namespace, which the
//! envelope declares. Response types match on local element names only, so a server that
//! declares other prefixes, or none, still parses. Types with attributes only (such as
//! [`ItemId`]) serve both directions, because attribute names carry no prefix.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identifier and change key of an item in a mailbox.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemid>
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemId {
    /// The item's EWS identifier.
    #[serde(rename = "@Id")]
    pub id: String,

    /// The version of the item; a write with an outdated change key fails.
    #[serde(
        rename = "@ChangeKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub change_key: Option<String>,
}

impl ItemId {
    /// Creates an item identifier without a change key.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            change_key: None,
        }
    }
}

/// The identifier and change key of a folder.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folderid>
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FolderId {
    /// The folder's EWS identifier.
    #[serde(rename = "@Id")]
    pub id: String,

    /// The version of the folder.
    #[serde(
        rename = "@ChangeKey",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub change_key: Option<String>,
}

/// The well-known folders that the controller uses, by their language-independent name.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/distinguishedfolderid>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DistinguishedFolderName {
    /// The Sent Items folder.
    #[serde(rename = "sentitems")]
    SentItems,
    /// The Deleted Items folder.
    #[serde(rename = "deleteditems")]
    DeletedItems,
    /// The Inbox.
    #[serde(rename = "inbox")]
    Inbox,
    /// The root of the mailbox's visible folders.
    #[serde(rename = "msgfolderroot")]
    MsgFolderRoot,
    /// The root of the mailbox.
    #[serde(rename = "root")]
    Root,
}

impl DistinguishedFolderName {
    /// Returns the name as EWS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SentItems => "sentitems",
            Self::DeletedItems => "deleteditems",
            Self::Inbox => "inbox",
            Self::MsgFolderRoot => "msgfolderroot",
            Self::Root => "root",
        }
    }
}

/// A well-known folder, in the mailbox named by `mailbox` or else in the caller's own.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/distinguishedfolderid>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistinguishedFolderId {
    /// The folder's well-known name.
    #[serde(rename = "@Id")]
    pub id: DistinguishedFolderName,

    /// The mailbox that contains the folder.
    #[serde(rename = "t:Mailbox", skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<Mailbox>,
}

impl DistinguishedFolderId {
    /// Names a well-known folder of the mailbox with SMTP address `smtp_address`.
    pub fn in_mailbox(id: DistinguishedFolderName, smtp_address: &str) -> Self {
        Self {
            id,
            mailbox: Some(Mailbox::smtp(smtp_address)),
        }
    }
}

/// A mailbox, named by SMTP address, in a request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mailbox>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    /// The mailbox's SMTP address.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/emailaddress-nonemptystringtype>
    #[serde(rename = "t:EmailAddress")]
    pub email_address: String,

    /// The routing type of `email_address`, always `SMTP` here.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/routingtype-emailaddress>
    #[serde(rename = "t:RoutingType")]
    pub routing_type: &'static str,
}

impl Mailbox {
    /// Names a mailbox by SMTP address.
    pub fn smtp(address: &str) -> Self {
        Self {
            email_address: address.to_owned(),
            routing_type: "SMTP",
        }
    }
}

/// A folder in a request: by identifier or by well-known name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum BaseFolderId {
    /// A folder by its EWS identifier.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/folderid>
    #[serde(rename = "t:FolderId")]
    FolderId(FolderId),

    /// A well-known folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/distinguishedfolderid>
    #[serde(rename = "t:DistinguishedFolderId")]
    DistinguishedFolderId(DistinguishedFolderId),
}

/// A list of folders in a request, such as `ParentFolderIds` or `FolderIds`.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/parentfolderids>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseFolderIds {
    /// The folders.
    #[serde(rename = "$value")]
    pub folder_ids: Vec<BaseFolderId>,
}

impl BaseFolderIds {
    /// Lists one well-known folder of the mailbox with SMTP address `smtp_address`.
    pub fn distinguished(id: DistinguishedFolderName, smtp_address: &str) -> Self {
        Self {
            folder_ids: vec![BaseFolderId::DistinguishedFolderId(
                DistinguishedFolderId::in_mailbox(id, smtp_address),
            )],
        }
    }
}

/// A list of items in a request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemids>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseItemIds {
    /// The items.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemid>
    #[serde(rename = "t:ItemId")]
    pub item_ids: Vec<ItemId>,
}

/// The MAPI type of an extended property.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedfielduri>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PropertyType {
    /// A Unicode string (`PT_UNICODE`).
    String,
    /// A 32-bit integer (`PT_LONG`).
    Integer,
    /// A 64-bit integer (`PT_I8`).
    Long,
    /// A 16-bit integer (`PT_SHORT`).
    Short,
    /// A boolean (`PT_BOOLEAN`).
    Boolean,
    /// A UTC time (`PT_SYSTIME`), written in ISO 8601.
    SystemTime,
    /// Bytes, written in base64 (`PT_BINARY`).
    Binary,
    /// A double-precision float (`PT_DOUBLE`).
    Double,
}

/// A MAPI property addressed by tag, or a named property addressed by property set GUID
/// and name.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedfielduri>
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExtendedFieldUri {
    /// The GUID of the property set of a named property.
    #[serde(
        rename = "@PropertySetId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub property_set_id: Option<String>,

    /// The property tag without its type part, in hex (`0x1035`) or decimal.
    #[serde(
        rename = "@PropertyTag",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub property_tag: Option<String>,

    /// The name of a named property in its property set.
    #[serde(
        rename = "@PropertyName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub property_name: Option<String>,

    /// The property's MAPI type.
    #[serde(rename = "@PropertyType")]
    pub property_type: PropertyType,
}

impl ExtendedFieldUri {
    /// Addresses a MAPI property by tag, which must be below the named range `0x8000`.
    pub fn tag(tag: u16, property_type: PropertyType) -> Self {
        Self {
            property_set_id: None,
            property_tag: Some(format!("0x{tag:04X}")),
            property_name: None,
            property_type,
        }
    }

    /// Addresses a named property by property set and name.
    pub fn named(property_set_id: Uuid, name: &str, property_type: PropertyType) -> Self {
        Self {
            property_set_id: Some(property_set_id.hyphenated().to_string()),
            property_tag: None,
            property_name: Some(name.to_owned()),
            property_type,
        }
    }

    /// `PR_INTERNET_MESSAGE_ID` (0x1035), the `Message-ID` header of a message.
    pub fn internet_message_id() -> Self {
        Self::tag(0x1035, PropertyType::String)
    }

    /// `PR_MESSAGE_FLAGS` (0x0E07); see [`MSGFLAG_READ`] and [`MSGFLAG_UNSENT`].
    pub fn message_flags() -> Self {
        Self::tag(0x0E07, PropertyType::Integer)
    }

    /// `PR_CLIENT_SUBMIT_TIME` (0x0039), when the sender's client submitted the message.
    pub fn client_submit_time() -> Self {
        Self::tag(0x0039, PropertyType::SystemTime)
    }

    /// `PR_MESSAGE_DELIVERY_TIME` (0x0E06), when the message reached the mailbox.
    pub fn message_delivery_time() -> Self {
        Self::tag(0x0E06, PropertyType::SystemTime)
    }

    /// Tells whether `other` addresses the same property, comparing tags by value (`0xe07`
    /// equals `0x0E07` and `3591`) and property set GUIDs without regard to case.
    pub fn same_property(&self, other: &Self) -> bool {
        let tag = |uri: &Self| uri.property_tag.as_deref().and_then(parse_property_tag);
        let set = |uri: &Self| uri.property_set_id.as_deref().map(str::to_ascii_lowercase);
        self.property_type == other.property_type
            && tag(self) == tag(other)
            && set(self) == set(other)
            && self.property_name == other.property_name
    }
}

/// The `PR_MESSAGE_FLAGS` bit for a message that has been read.
pub const MSGFLAG_READ: i64 = 0x0001;

/// The `PR_MESSAGE_FLAGS` bit for a message not yet sent; Outlook shows such items as drafts.
pub const MSGFLAG_UNSENT: i64 = 0x0008;

fn parse_property_tag(value: &str) -> Option<u16> {
    match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// An extended property and its value in a request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedproperty>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendedProperty {
    /// The property.
    #[serde(rename = "t:ExtendedFieldURI")]
    pub field_uri: ExtendedFieldUri,

    /// The value as text, in the form that [`PropertyType`] prescribes.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/value-extendedpropertytype>
    #[serde(rename = "t:Value")]
    pub value: String,
}

impl ExtendedProperty {
    /// Pairs a property with a string value.
    pub fn string(field_uri: ExtendedFieldUri, value: impl Into<String>) -> Self {
        Self {
            field_uri,
            value: value.into(),
        }
    }

    /// Pairs a property with an integer value.
    pub fn integer(field_uri: ExtendedFieldUri, value: i64) -> Self {
        Self {
            field_uri,
            value: value.to_string(),
        }
    }

    /// Pairs a property with a UTC time, written in ISO 8601 with a `Z` suffix.
    pub fn system_time(field_uri: ExtendedFieldUri, value: DateTime<Utc>) -> Self {
        Self {
            field_uri,
            value: value.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// An extended property and its value in a response.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedproperty>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ExtendedPropertyValue {
    /// The property.
    #[serde(rename = "ExtendedFieldURI")]
    pub field_uri: ExtendedFieldUri,

    /// The value as text, or `None` for multi-valued properties, which this client does not read.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/value-extendedpropertytype>
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
}

/// A property by its EWS field URI, such as `item:DateTimeSent`.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/fielduri>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldUri {
    /// The field URI.
    #[serde(rename = "@FieldURI")]
    pub uri: &'static str,
}

/// A property path in a request: a field URI or an extended property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum PropertyPath {
    /// A property by field URI.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/fielduri>
    #[serde(rename = "t:FieldURI")]
    Field(FieldUri),

    /// An extended MAPI property.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedfielduri>
    #[serde(rename = "t:ExtendedFieldURI")]
    Extended(ExtendedFieldUri),
}

impl PropertyPath {
    /// Addresses a property by field URI.
    pub fn field(uri: &'static str) -> Self {
        Self::Field(FieldUri { uri })
    }
}

/// The set of properties that a response returns before any additional ones.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/baseshape>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BaseShape {
    /// Only identifiers.
    IdOnly,
    /// The default set of the item or folder type.
    Default,
    /// Every property that EWS defines for the type.
    AllProperties,
}

/// The properties to return for items or folders.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemshape>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shape {
    /// The base set of properties.
    #[serde(rename = "t:BaseShape")]
    pub base_shape: BaseShape,

    /// Properties on top of the base set.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/additionalproperties>
    #[serde(
        rename = "t:AdditionalProperties",
        skip_serializing_if = "AdditionalProperties::is_empty"
    )]
    pub additional_properties: AdditionalProperties,
}

/// The list of additional properties of a [`Shape`].
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/additionalproperties>
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct AdditionalProperties {
    /// The property paths.
    #[serde(rename = "$value")]
    pub paths: Vec<PropertyPath>,
}

impl AdditionalProperties {
    fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// A search condition of a restriction.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/restriction>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SearchExpression {
    /// The property equals a constant.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/isequalto>
    #[serde(rename = "t:IsEqualTo")]
    IsEqualTo(IsEqualTo),

    /// The property has a value.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exists>
    #[serde(rename = "t:Exists")]
    Exists(Exists),

    /// Every condition holds.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/and>
    #[serde(rename = "t:And")]
    And(Conditions),

    /// At least one condition holds.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/or>
    #[serde(rename = "t:Or")]
    Or(Conditions),
}

impl SearchExpression {
    /// Matches items whose `path` equals `value`.
    pub fn is_equal_to(path: PropertyPath, value: impl Into<String>) -> Self {
        Self::IsEqualTo(IsEqualTo {
            path,
            constant: FieldUriOrConstant {
                constant: Constant {
                    value: value.into(),
                },
            },
        })
    }

    /// Matches items that have a value for `path`.
    pub fn exists(path: PropertyPath) -> Self {
        Self::Exists(Exists { path })
    }

    /// Matches items that satisfy every expression.
    pub fn and(expressions: Vec<SearchExpression>) -> Self {
        Self::And(Conditions { expressions })
    }

    /// Matches items that satisfy at least one expression.
    pub fn or(expressions: Vec<SearchExpression>) -> Self {
        Self::Or(Conditions { expressions })
    }
}

/// A comparison of a property with a constant.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/isequalto>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IsEqualTo {
    /// The property to compare.
    #[serde(rename = "$value")]
    pub path: PropertyPath,

    /// The constant to compare with.
    #[serde(rename = "t:FieldURIOrConstant")]
    pub constant: FieldUriOrConstant,
}

/// The right-hand side of a comparison, here always a constant.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/fielduriorconstant>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldUriOrConstant {
    /// The constant.
    #[serde(rename = "t:Constant")]
    pub constant: Constant,
}

/// A constant value in a restriction.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/constant>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constant {
    /// The value as text.
    #[serde(rename = "@Value")]
    pub value: String,
}

/// A test that a property is set.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/exists>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exists {
    /// The property to test.
    #[serde(rename = "$value")]
    pub path: PropertyPath,
}

/// The operands of [`SearchExpression::And`] and [`SearchExpression::Or`].
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/and>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// The operands.
    #[serde(rename = "$value")]
    pub expressions: Vec<SearchExpression>,
}

/// A restriction: the filter of a `FindItem` request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/restriction>
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restriction {
    /// The condition.
    #[serde(rename = "$value")]
    pub expression: SearchExpression,
}

/// The end of the result list that an [`IndexedPageItemView`] counts its offset from.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/indexedpageitemview>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BasePoint {
    /// Count from the first item.
    Beginning,
    /// Count from the last item.
    End,
}

/// A page of a `FindItem` result by offset.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/indexedpageitemview>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexedPageItemView {
    /// The maximum number of items in the page.
    #[serde(rename = "@MaxEntriesReturned")]
    pub max_entries_returned: u32,

    /// The position of the page's first item, counted from `base_point`.
    #[serde(rename = "@Offset")]
    pub offset: u32,

    /// The end that `offset` counts from.
    #[serde(rename = "@BasePoint")]
    pub base_point: BasePoint,
}

/// Whether a response message reports success.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsemessage>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ResponseClass {
    /// The request succeeded.
    Success,
    /// The request succeeded only in part, for example with several name matches.
    Warning,
    /// The request failed, and `ResponseCode` names the reason.
    Error,
}

/// The code of a response message, such as `NoError` or `ErrorItemNotFound`.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsecode>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct ResponseCode(pub String);

impl ResponseCode {
    /// Tells whether this is `NoError`.
    pub fn is_no_error(&self) -> bool {
        self.0.is_empty() || self.0 == "NoError"
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extra details of an error, such as `BackOffMilliseconds` with `ErrorServerBusy`.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/messagexml>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct MessageXml {
    /// The named values.
    #[serde(rename = "Value", default)]
    pub values: Vec<MessageXmlValue>,
}

impl MessageXml {
    /// Returns the value named `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|value| value.name == name)
            .map(|value| value.value.as_str())
    }
}

/// One named value of a [`MessageXml`].
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/messagexml>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MessageXmlValue {
    /// The value's name.
    #[serde(rename = "@Name", default)]
    pub name: String,

    /// The value as text.
    #[serde(rename = "$text", default)]
    pub value: String,
}

/// The list of response messages of an operation, one per item or folder in the request.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/responsemessages>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResponseMessages<M> {
    /// The messages in request order.
    #[serde(rename = "$value", default = "Vec::new")]
    pub messages: Vec<M>,
}

/// An email address as a response returns it.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mailbox>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct EmailAddress {
    /// The display name.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/name-emailaddresstype>
    #[serde(rename = "Name", default)]
    pub name: Option<String>,

    /// The address, SMTP or another routing type.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/emailaddress-nonemptystringtype>
    #[serde(rename = "EmailAddress", default)]
    pub email_address: Option<String>,

    /// The routing type of `email_address`, such as `SMTP` or `EX`.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/routingtype-emailaddress>
    #[serde(rename = "RoutingType", default)]
    pub routing_type: Option<String>,

    /// The kind of recipient: `Mailbox`, `PublicDL`, `PrivateDL`, `Contact`, and others.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mailboxtype>
    #[serde(rename = "MailboxType", default)]
    pub mailbox_type: Option<String>,
}

/// The item properties that the controller reads back from `FindItem` and `GetItem`.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/message-ex15websvcsotherref>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ItemFields {
    /// The item's identifier.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemid>
    #[serde(rename = "ItemId", default)]
    pub item_id: Option<ItemId>,

    /// The item's MIME content, base64 encoded, when requested.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mimecontent>
    #[serde(rename = "MimeContent", default)]
    pub mime_content: Option<MimeContentValue>,

    /// The message class, such as `IPM.Note`.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/itemclass>
    #[serde(rename = "ItemClass", default)]
    pub item_class: Option<String>,

    /// The subject.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/subject>
    #[serde(rename = "Subject", default)]
    pub subject: Option<String>,

    /// The item's size in bytes.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/size>
    #[serde(rename = "Size", default)]
    pub size: Option<u64>,

    /// When the message was sent.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/datetimesent>
    #[serde(rename = "DateTimeSent", default)]
    pub date_time_sent: Option<DateTime<Utc>>,

    /// When the item was created in the mailbox.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/datetimecreated>
    #[serde(rename = "DateTimeCreated", default)]
    pub date_time_created: Option<DateTime<Utc>>,

    /// The extended properties that the request asked for and the item has.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/extendedproperty>
    #[serde(rename = "ExtendedProperty", default)]
    pub extended_properties: Vec<ExtendedPropertyValue>,

    /// The `Message-ID` header of a message.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/internetmessageid>
    #[serde(rename = "InternetMessageId", default)]
    pub internet_message_id: Option<String>,
}

impl ItemFields {
    /// Returns the value of the extended property `field_uri`, if the item has it.
    pub fn extended_property(&self, field_uri: &ExtendedFieldUri) -> Option<&str> {
        self.extended_properties
            .iter()
            .find(|property| property.field_uri.same_property(field_uri))
            .and_then(|property| property.value.as_deref())
    }
}

/// The MIME content of an item in a response, base64 encoded.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/mimecontent>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct MimeContentValue {
    /// The character set of the content, when the server names one.
    #[serde(rename = "@CharacterSet", default)]
    pub character_set: Option<String>,

    /// The base64 text.
    #[serde(rename = "$text", default)]
    pub base64: String,
}

/// An item of any type in a response; items in Sent Items are messages, but meeting
/// requests and responses sit there too.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub enum ResponseItem {
    /// An email message.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/message-ex15websvcsotherref>
    Message(ItemFields),
    /// A generic item.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/item>
    Item(ItemFields),
    /// A meeting request.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/meetingrequest>
    MeetingRequest(ItemFields),
    /// A meeting response.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/meetingresponse>
    MeetingResponse(ItemFields),
    /// A meeting cancellation.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/meetingcancellation>
    MeetingCancellation(ItemFields),
    /// A calendar item.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/calendaritem>
    CalendarItem(ItemFields),
    /// A contact.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/contact>
    Contact(ItemFields),
    /// A task.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/task>
    Task(ItemFields),
    /// A post in a public folder.
    ///
    /// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/postitem>
    PostItem(ItemFields),
}

impl ResponseItem {
    /// Returns the properties, whatever the item type.
    pub fn fields(&self) -> &ItemFields {
        match self {
            Self::Message(fields)
            | Self::Item(fields)
            | Self::MeetingRequest(fields)
            | Self::MeetingResponse(fields)
            | Self::MeetingCancellation(fields)
            | Self::CalendarItem(fields)
            | Self::Contact(fields)
            | Self::Task(fields)
            | Self::PostItem(fields) => fields,
        }
    }

    /// Returns the properties, whatever the item type.
    pub fn into_fields(self) -> ItemFields {
        match self {
            Self::Message(fields)
            | Self::Item(fields)
            | Self::MeetingRequest(fields)
            | Self::MeetingResponse(fields)
            | Self::MeetingCancellation(fields)
            | Self::CalendarItem(fields)
            | Self::Contact(fields)
            | Self::Task(fields)
            | Self::PostItem(fields) => fields,
        }
    }
}

/// The items of a response.
///
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/items>
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ResponseItems {
    /// The items in server order.
    #[serde(rename = "$value", default)]
    pub items: Vec<ResponseItem>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_tag_is_written_in_hex() {
        assert_eq!(
            ExtendedFieldUri::message_flags().property_tag.as_deref(),
            Some("0x0E07")
        );
        assert_eq!(
            ExtendedFieldUri::client_submit_time()
                .property_tag
                .as_deref(),
            Some("0x0039")
        );
    }

    #[test]
    fn same_property_compares_tags_by_value() {
        let canonical = ExtendedFieldUri::message_flags();
        for spelling in ["0xe07", "0x0E07", "0X0e07", "3591"] {
            let other = ExtendedFieldUri {
                property_tag: Some(spelling.to_owned()),
                ..canonical.clone()
            };
            assert!(
                canonical.same_property(&other),
                "{spelling} should match 0x0E07"
            );
        }
        let other_type = ExtendedFieldUri::tag(0x0E07, PropertyType::Long);
        assert!(!canonical.same_property(&other_type));
    }

    #[test]
    fn same_property_ignores_guid_case() {
        let set = Uuid::parse_str("b0e3b3a5-4f5e-4d0c-9f64-3b2b5a0f2a11").unwrap();
        let ours = ExtendedFieldUri::named(set, "SiuRewritten", PropertyType::String);
        let theirs = ExtendedFieldUri {
            property_set_id: Some("B0E3B3A5-4F5E-4D0C-9F64-3B2B5A0F2A11".to_owned()),
            ..ours.clone()
        };
        assert!(ours.same_property(&theirs));
    }

    #[test]
    fn system_time_value_is_utc_iso8601() {
        let time = DateTime::parse_from_rfc3339("2025-03-04T05:06:07+01:00")
            .unwrap()
            .with_timezone(&Utc);
        let property = ExtendedProperty::system_time(ExtendedFieldUri::client_submit_time(), time);
        assert_eq!(property.value, "2025-03-04T04:06:07Z");
    }
}
