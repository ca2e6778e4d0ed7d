//! Item properties: the paths a request names (`FieldURI`, `ExtendedFieldURI`), their values
//! on a stored item, and the `t:Message` element a response carries.
//!
//! Elements are written in the order of `ItemType` and `MessageType` in the Exchange 2016
//! schema, because the schema declares them as sequences. Properties the lab does not model
//! (attachments, categories, conversation data) are left out, as Exchange leaves out
//! properties that have no value.
//!
//! See <https://learn.microsoft.com/exchange/client-developer/web-service-reference/fielduri>
//! and <https://learn.microsoft.com/exchange/client-developer/web-service-reference/extendedfielduri>.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::ids::{StoreId, folder_change_key, item_change_key};
use super::soap::{Fault, ResponseError};
use super::xml::{Element, escape};
use crate::World;
use crate::world::exchange::{ExtendedProperty, Item, MSGFLAG_READ, WellKnownFolder};

/// PR_MESSAGE_CLASS.
pub const TAG_MESSAGE_CLASS: u16 = 0x001A;
/// PR_SUBJECT.
pub const TAG_SUBJECT: u16 = 0x0037;
/// PR_CLIENT_SUBMIT_TIME: when the message was sent.
pub const TAG_CLIENT_SUBMIT_TIME: u16 = 0x0039;
/// PR_MESSAGE_DELIVERY_TIME.
pub const TAG_MESSAGE_DELIVERY_TIME: u16 = 0x0E06;
/// PR_MESSAGE_FLAGS.
pub const TAG_MESSAGE_FLAGS: u16 = 0x0E07;
/// PR_MESSAGE_SIZE.
pub const TAG_MESSAGE_SIZE: u16 = 0x0E08;
/// PR_INTERNET_MESSAGE_ID.
pub const TAG_INTERNET_MESSAGE_ID: u16 = 0x1035;
/// PR_CREATION_TIME.
pub const TAG_CREATION_TIME: u16 = 0x3007;

/// The `MapiPropertyTypeType` values of the schema.
const PROPERTY_TYPES: &[&str] = &[
    "ApplicationTime",
    "ApplicationTimeArray",
    "Binary",
    "BinaryArray",
    "Boolean",
    "CLSID",
    "CLSIDArray",
    "Currency",
    "CurrencyArray",
    "Double",
    "DoubleArray",
    "Error",
    "Float",
    "FloatArray",
    "Integer",
    "IntegerArray",
    "Long",
    "LongArray",
    "Null",
    "Object",
    "ObjectArray",
    "Short",
    "ShortArray",
    "SystemTime",
    "SystemTimeArray",
    "String",
    "StringArray",
];

/// The GUIDs of the schema's `DistinguishedPropertySetType` values.
///
/// See <https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxprops/cc9d955b-1492-47de-9dce-5bdea80a3323>.
const DISTINGUISHED_SETS: &[(&str, &str)] = &[
    ("Meeting", "6ed8da90-450b-101b-98da-00aa003f1305"),
    ("Appointment", "00062002-0000-0000-c000-000000000046"),
    ("Common", "00062008-0000-0000-c000-000000000046"),
    ("PublicStrings", "00020329-0000-0000-c000-000000000046"),
    ("Address", "00062004-0000-0000-c000-000000000046"),
    ("InternetHeaders", "00020386-0000-0000-c000-000000000046"),
    ("CalendarAssistant", "11000e07-b51b-40d6-af21-caa85edab1d0"),
    ("UnifiedMessaging", "4442858e-a9e3-4e80-b900-317a210cc15b"),
    ("Task", "00062003-0000-0000-c000-000000000046"),
    ("Sharing", "00062040-0000-0000-c000-000000000046"),
];

/// An `ExtendedFieldURI`: a property tag, or a named property in a property set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtendedPath {
    /// `PropertyTag`, for a tagged property.
    pub tag: Option<u16>,
    /// The property set GUID in lowercase, from `PropertySetId` or `DistinguishedPropertySetId`.
    pub set_id: Option<String>,
    /// `PropertyName`.
    pub name: Option<String>,
    /// `PropertyId`.
    pub id: Option<i32>,
    /// `PropertyType`.
    pub prop_type: String,
    /// The attributes as the request wrote them, echoed back in responses.
    attributes: Vec<(String, String)>,
}

impl ExtendedPath {
    /// Reads an `ExtendedFieldURI` element.
    pub fn parse(element: &Element) -> Result<Self, PathError> {
        let Some(prop_type) = element.attribute("PropertyType") else {
            return Err(PathError::Schema(Fault::schema_violation(
                element,
                "The required attribute 'PropertyType' is missing.".into(),
            )));
        };
        if !PROPERTY_TYPES.contains(&prop_type) {
            return Err(PathError::Schema(Fault::schema_violation(
                element,
                format!(
                    "The 'PropertyType' attribute is invalid - The value '{prop_type}' is invalid according to its datatype 'MapiPropertyTypeType'."
                ),
            )));
        }
        let tag = match element.attribute("PropertyTag") {
            Some(text) => Some(parse_tag(text).ok_or(PathError::Invalid)?),
            None => None,
        };
        let distinguished = match element.attribute("DistinguishedPropertySetId") {
            Some(name) => Some(
                DISTINGUISHED_SETS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, guid)| guid.to_string())
                    .ok_or_else(|| {
                        PathError::Schema(Fault::schema_violation(
                            element,
                            format!("The 'DistinguishedPropertySetId' attribute is invalid - The value '{name}' is invalid according to its datatype 'DistinguishedPropertySetType'."),
                        ))
                    })?,
            ),
            None => None,
        };
        let set_id = match element.attribute("PropertySetId") {
            Some(text) => Some(
                Uuid::parse_str(text)
                    .map_err(|_| PathError::Invalid)?
                    .to_string(),
            ),
            None => None,
        };
        let name = element.attribute("PropertyName").map(str::to_string);
        let id = match element.attribute("PropertyId") {
            Some(text) => Some(text.trim().parse().map_err(|_| PathError::Invalid)?),
            None => None,
        };

        // Exactly one way of naming the property: a tag alone, or a set with a name or an ID.
        let set = match (distinguished, set_id) {
            (Some(_), Some(_)) => return Err(PathError::Invalid),
            (a, b) => a.or(b),
        };
        let valid = matches!(
            (tag, &set, &name, id),
            (Some(_), None, None, None)
                | (None, Some(_), Some(_), None)
                | (None, Some(_), None, Some(_))
        );
        if !valid {
            return Err(PathError::Invalid);
        }
        Ok(Self {
            tag,
            set_id: set,
            name,
            id,
            prop_type: prop_type.to_string(),
            attributes: element.attributes.clone(),
        })
    }

    /// Returns whether a stored property has this path's key.
    pub fn matches(&self, property: &ExtendedProperty) -> bool {
        property.same_key(&self.to_property(String::new()))
    }

    /// Builds a stored property with this path's key and `value`.
    pub fn to_property(&self, value: String) -> ExtendedProperty {
        ExtendedProperty {
            tag: self.tag,
            set_id: self.set_id.clone(),
            name: self.name.clone(),
            id: self.id,
            prop_type: self.prop_type.clone(),
            value,
        }
    }

    /// Writes `<t:ExtendedFieldURI .../>` with the request's attributes.
    pub fn write_uri(&self, out: &mut String) {
        out.push_str("<t:ExtendedFieldURI");
        for (name, value) in &self.attributes {
            let _ = write!(out, r#" {name}="{}""#, escape(value));
        }
        out.push_str("/>");
    }
}

/// Parses a property tag written as `0x1035`, `0xe07` or decimal.
pub fn parse_tag(text: &str) -> Option<u16> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// An unusable property path in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The path breaks the schema: the request fails as a whole.
    Schema(Fault),
    /// The attribute combination is invalid (`ErrorInvalidExtendedProperty`).
    Invalid,
}

impl PathError {
    /// Converts [`PathError::Invalid`] into its per-message error and returns a fault as `Err`.
    pub fn into_result(self) -> Result<ResponseError, Fault> {
        match self {
            PathError::Schema(fault) => Err(fault),
            PathError::Invalid => Ok(ResponseError::new(
                "ErrorInvalidExtendedProperty",
                "The extended property attribute combination is invalid.",
            )),
        }
    }
}

/// A property a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyPath {
    /// `FieldURI`, such as `message:InternetMessageId`.
    Field(String),
    /// `ExtendedFieldURI`.
    Extended(ExtendedPath),
    /// `IndexedFieldURI`; the lab's messages have no indexed properties.
    Indexed(String),
}

impl PropertyPath {
    /// Reads a path element; `None` when the element is not a path.
    pub fn parse(element: &Element) -> Option<Result<Self, PathError>> {
        match element.name.as_str() {
            "FieldURI" => Some(match element.attribute("FieldURI") {
                Some(uri) if uri.contains(':') => Ok(PropertyPath::Field(uri.to_string())),
                _ => Err(PathError::Schema(Fault::schema_violation(
                    element,
                    "The 'FieldURI' attribute is invalid.".into(),
                ))),
            }),
            "ExtendedFieldURI" => Some(ExtendedPath::parse(element).map(PropertyPath::Extended)),
            "IndexedFieldURI" => Some(Ok(PropertyPath::Indexed(
                element
                    .attribute("FieldURI")
                    .unwrap_or_default()
                    .to_string(),
            ))),
            _ => None,
        }
    }
}

/// A property value, for restrictions and sorting.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// A number.
    Number(i64),
    /// A flag.
    Flag(bool),
    /// A point in time.
    Time(DateTime<Utc>),
}

impl Value {
    /// Converts a restriction constant to the type of `self`, as Exchange converts the constant
    /// to the property's type.
    pub fn same_kind(&self, constant: &str) -> Option<Value> {
        match self {
            Value::Text(_) => Some(Value::Text(constant.to_string())),
            Value::Number(_) => constant.trim().parse().ok().map(Value::Number),
            Value::Flag(_) => parse_bool(constant).map(Value::Flag),
            Value::Time(_) => parse_time(constant).map(Value::Time),
        }
    }

    /// Orders two values of the same kind; text compares without case, as Exchange does.
    pub fn compare(&self, other: &Value) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Text(a), Value::Text(b)) => Some(a.to_lowercase().cmp(&b.to_lowercase())),
            (Value::Number(a), Value::Number(b)) => Some(a.cmp(b)),
            (Value::Flag(a), Value::Flag(b)) => Some(a.cmp(b)),
            (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// Formats the value as EWS writes it.
    pub fn to_text(&self) -> String {
        match self {
            Value::Text(t) => t.clone(),
            Value::Number(n) => n.to_string(),
            Value::Flag(b) => b.to_string(),
            Value::Time(t) => format_time(t),
        }
    }
}

/// Parses `xs:boolean`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses `xs:dateTime`; a time without a zone is taken as UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// Writes a time as EWS does: UTC with a `Z`, without fractions.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Returns the value of a property on a stored item, when it has one.
pub fn value_of(item: &Item, path: &PropertyPath) -> Option<Value> {
    match path {
        PropertyPath::Field(uri) => field_value(item, uri),
        PropertyPath::Extended(extended) => extended_value(item, extended),
        PropertyPath::Indexed(_) => None,
    }
}

fn field_value(item: &Item, uri: &str) -> Option<Value> {
    Some(match uri {
        "item:Subject" | "message:ConversationTopic" => Value::Text(item.subject.clone()),
        "message:InternetMessageId" => Value::Text(item.internet_message_id.clone()?),
        "item:ItemClass" => Value::Text("IPM.Note".into()),
        "item:DateTimeSent" => Value::Time(item.sent?),
        "item:DateTimeReceived" => Value::Time(item.delivered.unwrap_or(item.created)),
        "item:DateTimeCreated" | "item:LastModifiedTime" => Value::Time(item.created),
        "item:Size" => Value::Number(item.size() as i64),
        "item:IsDraft" => Value::Flag(item.is_draft()),
        "message:IsRead" => Value::Flag(item.message_flags & MSGFLAG_READ != 0),
        "message:From" | "message:Sender" => Value::Text(item.from.clone()?),
        "item:HasAttachments" => Value::Flag(false),
        _ => return None,
    })
}

fn extended_value(item: &Item, path: &ExtendedPath) -> Option<Value> {
    match path.tag {
        Some(TAG_INTERNET_MESSAGE_ID) => {
            return item.internet_message_id.clone().map(Value::Text);
        }
        Some(TAG_MESSAGE_FLAGS) => return Some(Value::Number(i64::from(item.message_flags))),
        Some(TAG_CLIENT_SUBMIT_TIME) => return item.sent.map(Value::Time),
        Some(TAG_MESSAGE_DELIVERY_TIME) => {
            return Some(Value::Time(item.delivered.unwrap_or(item.created)));
        }
        Some(TAG_SUBJECT) => return Some(Value::Text(item.subject.clone())),
        Some(TAG_MESSAGE_CLASS) => return Some(Value::Text("IPM.Note".into())),
        Some(TAG_MESSAGE_SIZE) => return Some(Value::Number(item.size() as i64)),
        Some(TAG_CREATION_TIME) => return Some(Value::Time(item.created)),
        _ => {}
    }
    let stored = item.extended.iter().find(|p| path.matches(p))?;
    Some(match path.prop_type.as_str() {
        "Integer" | "Long" | "Short" => Value::Number(stored.value.trim().parse().ok()?),
        "Boolean" => Value::Flag(parse_bool(&stored.value)?),
        "SystemTime" => Value::Time(parse_time(&stored.value)?),
        _ => Value::Text(stored.value.clone()),
    })
}

/// Checks that `value` is valid for a property of `prop_type`, as Exchange converts it.
pub fn valid_value(prop_type: &str, value: &str) -> bool {
    match prop_type {
        "Integer" => value.trim().parse::<i32>().is_ok(),
        "Long" => value.trim().parse::<i64>().is_ok(),
        "Short" => value.trim().parse::<i16>().is_ok(),
        "Boolean" => parse_bool(value).is_some(),
        "SystemTime" => parse_time(value).is_some(),
        "Binary" => STANDARD.decode(value.trim()).is_ok(),
        "Double" | "Float" | "Currency" => value.trim().parse::<f64>().is_ok(),
        "String" => true,
        // Multi-valued and object types are not stored by the lab.
        _ => false,
    }
}

/// Sets an extended property on an item: the well-known tags change the item's own fields.
///
/// The caller has checked the value with [`valid_value`].
pub fn set_extended(item: &mut Item, path: &ExtendedPath, value: &str) {
    match path.tag {
        Some(TAG_MESSAGE_FLAGS) => {
            item.message_flags = value.trim().parse().unwrap_or(item.message_flags);
        }
        Some(TAG_CLIENT_SUBMIT_TIME) => item.sent = parse_time(value),
        Some(TAG_MESSAGE_DELIVERY_TIME) => item.delivered = parse_time(value),
        Some(TAG_INTERNET_MESSAGE_ID) => item.internet_message_id = Some(value.to_string()),
        Some(TAG_SUBJECT) => item.subject = value.to_string(),
        _ => {
            item.extended.retain(|p| !path.matches(p));
            item.extended.push(path.to_property(value.to_string()));
        }
    }
}

/// Removes an extended property from an item.
pub fn delete_extended(item: &mut Item, path: &ExtendedPath) {
    match path.tag {
        Some(TAG_CLIENT_SUBMIT_TIME) => item.sent = None,
        Some(TAG_MESSAGE_DELIVERY_TIME) => item.delivered = None,
        Some(TAG_INTERNET_MESSAGE_ID) => item.internet_message_id = None,
        _ => item.extended.retain(|p| !path.matches(p)),
    }
}

/// `BaseShape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseShape {
    /// Only the ID.
    IdOnly,
    /// The default set of properties.
    Default,
    /// Every first-class property.
    AllProperties,
}

/// An `ItemShape`: which properties a response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemShape {
    /// `BaseShape`.
    pub base: BaseShape,
    /// `IncludeMimeContent`.
    pub include_mime: bool,
    /// `AdditionalProperties`.
    pub additional: Vec<PropertyPath>,
}

impl ItemShape {
    /// Reads an `ItemShape` element.
    pub fn parse(element: &Element) -> Result<Self, PathError> {
        let base = match element.child_text("BaseShape") {
            Some("IdOnly") => BaseShape::IdOnly,
            Some("Default") => BaseShape::Default,
            Some("AllProperties") => BaseShape::AllProperties,
            other => {
                let at = element.child("BaseShape").unwrap_or(element);
                return Err(PathError::Schema(Fault::schema_violation(
                    at,
                    format!(
                        "The 'BaseShape' element is invalid - The value '{}' is invalid according to its datatype 'DefaultShapeNamesType'.",
                        other.unwrap_or_default()
                    ),
                )));
            }
        };
        let include_mime = element
            .child_text("IncludeMimeContent")
            .and_then(parse_bool)
            .unwrap_or(false);
        let mut additional = Vec::new();
        if let Some(list) = element.child("AdditionalProperties") {
            for child in &list.children {
                if let Some(path) = PropertyPath::parse(child) {
                    additional.push(path?);
                }
            }
        }
        Ok(Self {
            base,
            include_mime,
            additional,
        })
    }

    fn wants(&self, uri: &str, in_find: bool) -> bool {
        let listed = self
            .additional
            .iter()
            .any(|p| matches!(p, PropertyPath::Field(f) if f == uri));
        if uri == "item:MimeContent" {
            return !in_find && (self.include_mime || listed);
        }
        if in_find && NOT_IN_FIND.contains(&uri) {
            return false;
        }
        listed
            || match self.base {
                BaseShape::IdOnly => uri == "item:ItemId",
                BaseShape::Default => DEFAULT_FIELDS.contains(&uri),
                BaseShape::AllProperties => {
                    DEFAULT_FIELDS.contains(&uri) || ALL_PROPERTIES_EXTRA.contains(&uri)
                }
            }
    }

    /// The first property that FindItem cannot return, when the shape names one.
    pub fn find_item_unsupported(&self) -> Option<&str> {
        self.additional.iter().find_map(|p| match p {
            PropertyPath::Field(uri)
                if uri == "item:MimeContent" || NOT_IN_FIND.contains(&uri.as_str()) =>
            {
                Some(uri.as_str())
            }
            _ => None,
        })
    }
}

/// Properties that FindItem never returns.
const NOT_IN_FIND: &[&str] = &[
    "item:Body",
    "item:Attachments",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:BccRecipients",
    "item:UniqueBody",
];

/// The `Default` shape of a message.
const DEFAULT_FIELDS: &[&str] = &[
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Sensitivity",
    "item:DateTimeReceived",
    "item:Size",
    "item:Importance",
    "item:IsSubmitted",
    "item:IsDraft",
    "item:IsFromMe",
    "item:IsResend",
    "item:IsUnmodified",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:DisplayCc",
    "item:DisplayTo",
    "item:HasAttachments",
    "item:Culture",
    "message:Sender",
    "message:IsReadReceiptRequested",
    "message:ConversationTopic",
    "message:From",
    "message:IsRead",
];

/// The properties that `AllProperties` adds to `Default`.
const ALL_PROPERTIES_EXTRA: &[&str] = &[
    "item:Body",
    "item:ReminderIsSet",
    "item:ReminderMinutesBeforeStart",
    "item:EffectiveRights",
    "item:LastModifiedTime",
    "item:IsAssociated",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:IsDeliveryReceiptRequested",
    "message:InternetMessageId",
    "message:IsResponseRequested",
];

/// The headers and bodies of an item's MIME content, parsed once per rendered item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MimeSummary {
    /// `Subject`.
    pub subject: Option<String>,
    /// `Message-ID`, with angle brackets.
    pub message_id: Option<String>,
    /// The `From` address.
    pub from: Option<String>,
    /// `To` addresses with their display names.
    pub to: Vec<(Option<String>, String)>,
    /// `Cc` addresses with their display names.
    pub cc: Vec<(Option<String>, String)>,
    /// `Date`.
    pub date: Option<DateTime<Utc>>,
    /// The first text body.
    pub text: Option<String>,
    /// The first HTML body.
    pub html: Option<String>,
    /// Number of attachments.
    pub attachments: usize,
}

impl MimeSummary {
    /// Parses an RFC 5322 message; `None` when it is not one.
    pub fn parse(mime: &[u8]) -> Option<Self> {
        let message = mail_parser::MessageParser::default().parse(mime)?;
        if message.headers().is_empty() {
            return None;
        }
        let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<(Option<String>, String)> {
            list.map(|a| {
                a.iter()
                    .filter_map(|addr| {
                        let address = addr.address()?.to_string();
                        Some((addr.name().map(str::to_string), address))
                    })
                    .collect()
            })
            .unwrap_or_default()
        };
        let text = message.body_text(0).map(|t| t.into_owned());
        let html = message.body_html(0).map(|t| t.into_owned());
        Some(Self {
            subject: message.subject().map(str::to_string),
            message_id: message.message_id().map(|id| format!("<{id}>")),
            from: message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_string),
            to: addresses(message.to()),
            cc: addresses(message.cc()),
            date: message
                .date()
                .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
            // mail-parser synthesizes the other body from the one present; keep only real ones.
            text: (message.text_body_count() > 0).then_some(text).flatten(),
            html: (message.html_body_count() > 0).then_some(html).flatten(),
            attachments: message.attachment_count(),
        })
    }
}

/// Everything that rendering an item needs besides the item.
pub struct ItemContext<'a> {
    /// The world, for display names of recipients.
    pub world: &'a World,
    /// The mailbox owner.
    pub owner: Uuid,
    /// The folder the item is in.
    pub folder: WellKnownFolder,
}

/// Writes `<t:Message>` with the properties the shape requests.
pub fn write_message(
    out: &mut String,
    context: &ItemContext<'_>,
    item: &Item,
    shape: &ItemShape,
    in_find: bool,
) {
    let wants = |uri: &str| shape.wants(uri, in_find);
    let needs_mime = [
        "item:Body",
        "message:ToRecipients",
        "message:CcRecipients",
        "item:DisplayTo",
        "item:DisplayCc",
        "item:HasAttachments",
    ]
    .iter()
    .any(|uri| wants(uri));
    let mime = if needs_mime {
        MimeSummary::parse(&item.mime)
    } else {
        None
    };
    let to: Vec<(Option<String>, String)> = match &mime {
        Some(m) if !m.to.is_empty() || !m.cc.is_empty() => m.to.clone(),
        _ => item.recipients.iter().map(|r| (None, r.clone())).collect(),
    };
    let cc: Vec<(Option<String>, String)> = mime.as_ref().map(|m| m.cc.clone()).unwrap_or_default();
    let read = item.message_flags & MSGFLAG_READ != 0;

    out.push_str("<t:Message>");
    if wants("item:MimeContent") {
        let _ = write!(
            out,
            r#"<t:MimeContent CharacterSet="UTF-8">{}</t:MimeContent>"#,
            STANDARD.encode(&item.mime)
        );
    }
    if wants("item:ItemId") {
        let _ = write!(
            out,
            r#"<t:ItemId Id="{}" ChangeKey="{}"/>"#,
            StoreId::item(context.owner, item.id).encode(),
            item_change_key(item.id, item.change)
        );
    }
    if wants("item:ParentFolderId") {
        let _ = write!(
            out,
            r#"<t:ParentFolderId Id="{}" ChangeKey="{}"/>"#,
            StoreId::folder(context.owner, context.folder).encode(),
            folder_change_key(context.owner, context.folder)
        );
    }
    if wants("item:ItemClass") {
        out.push_str("<t:ItemClass>IPM.Note</t:ItemClass>");
    }
    if wants("item:Subject") {
        let _ = write!(out, "<t:Subject>{}</t:Subject>", escape(&item.subject));
    }
    if wants("item:Sensitivity") {
        out.push_str("<t:Sensitivity>Normal</t:Sensitivity>");
    }
    if wants("item:Body") {
        match mime.as_ref().and_then(|m| {
            m.html
                .as_ref()
                .map(|h| ("HTML", h))
                .or(m.text.as_ref().map(|t| ("Text", t)))
        }) {
            Some((kind, body)) => {
                let _ = write!(
                    out,
                    r#"<t:Body BodyType="{kind}" IsTruncated="false">{}</t:Body>"#,
                    escape(body)
                );
            }
            None => out.push_str(r#"<t:Body BodyType="Text" IsTruncated="false"/>"#),
        }
    }
    if wants("item:DateTimeReceived") {
        let received = item.delivered.unwrap_or(item.created);
        let _ = write!(
            out,
            "<t:DateTimeReceived>{}</t:DateTimeReceived>",
            format_time(&received)
        );
    }
    if wants("item:Size") {
        let _ = write!(out, "<t:Size>{}</t:Size>", item.size());
    }
    if wants("item:Importance") {
        out.push_str("<t:Importance>Normal</t:Importance>");
    }
    for (uri, element, value) in [
        ("item:IsSubmitted", "IsSubmitted", false),
        ("item:IsDraft", "IsDraft", item.is_draft()),
        ("item:IsFromMe", "IsFromMe", false),
        ("item:IsResend", "IsResend", false),
        ("item:IsUnmodified", "IsUnmodified", !item.is_draft()),
    ] {
        if wants(uri) {
            let _ = write!(out, "<t:{element}>{value}</t:{element}>");
        }
    }
    if wants("item:DateTimeSent")
        && let Some(sent) = &item.sent
    {
        let _ = write!(
            out,
            "<t:DateTimeSent>{}</t:DateTimeSent>",
            format_time(sent)
        );
    }
    if wants("item:DateTimeCreated") {
        let _ = write!(
            out,
            "<t:DateTimeCreated>{}</t:DateTimeCreated>",
            format_time(&item.created)
        );
    }
    if wants("item:ReminderIsSet") {
        out.push_str("<t:ReminderIsSet>false</t:ReminderIsSet>");
    }
    if wants("item:ReminderMinutesBeforeStart") {
        out.push_str("<t:ReminderMinutesBeforeStart>0</t:ReminderMinutesBeforeStart>");
    }
    if wants("item:DisplayCc") {
        let names = display_names(context.world, &cc);
        let _ = write!(out, "<t:DisplayCc>{}</t:DisplayCc>", escape(&names));
    }
    if wants("item:DisplayTo") {
        let names = display_names(context.world, &to);
        let _ = write!(out, "<t:DisplayTo>{}</t:DisplayTo>", escape(&names));
    }
    if wants("item:HasAttachments") {
        let has = mime.as_ref().is_some_and(|m| m.attachments > 0);
        let _ = write!(out, "<t:HasAttachments>{has}</t:HasAttachments>");
    }
    for path in &shape.additional {
        let PropertyPath::Extended(extended) = path else {
            continue;
        };
        if let Some(value) = extended_value(item, extended) {
            out.push_str("<t:ExtendedProperty>");
            extended.write_uri(out);
            let _ = write!(
                out,
                "<t:Value>{}</t:Value></t:ExtendedProperty>",
                escape(&value.to_text())
            );
        }
    }
    if wants("item:Culture") {
        out.push_str("<t:Culture>en-US</t:Culture>");
    }
    if wants("item:EffectiveRights") {
        out.push_str("<t:EffectiveRights><t:CreateAssociated>false</t:CreateAssociated><t:CreateContents>false</t:CreateContents><t:CreateHierarchy>false</t:CreateHierarchy><t:Delete>true</t:Delete><t:Modify>true</t:Modify><t:Read>true</t:Read><t:ViewPrivateItems>true</t:ViewPrivateItems></t:EffectiveRights>");
    }
    if wants("item:LastModifiedTime") {
        let _ = write!(
            out,
            "<t:LastModifiedTime>{}</t:LastModifiedTime>",
            format_time(&item.created)
        );
    }
    if wants("item:IsAssociated") {
        out.push_str("<t:IsAssociated>false</t:IsAssociated>");
    }

    // MessageType's own properties follow ItemType's.
    if wants("message:Sender")
        && let Some(from) = &item.from
    {
        out.push_str("<t:Sender>");
        write_mailbox(out, context.world, None, from);
        out.push_str("</t:Sender>");
    }
    for (uri, element, list) in [
        ("message:ToRecipients", "ToRecipients", &to),
        ("message:CcRecipients", "CcRecipients", &cc),
    ] {
        if wants(uri) && !list.is_empty() {
            let _ = write!(out, "<t:{element}>");
            for (name, address) in list {
                write_mailbox(out, context.world, name.as_deref(), address);
            }
            let _ = write!(out, "</t:{element}>");
        }
    }
    for (uri, element) in [
        ("message:IsReadReceiptRequested", "IsReadReceiptRequested"),
        (
            "message:IsDeliveryReceiptRequested",
            "IsDeliveryReceiptRequested",
        ),
    ] {
        if wants(uri) {
            let _ = write!(out, "<t:{element}>false</t:{element}>");
        }
    }
    if wants("message:ConversationTopic") {
        let _ = write!(
            out,
            "<t:ConversationTopic>{}</t:ConversationTopic>",
            escape(&item.subject)
        );
    }
    if wants("message:From")
        && let Some(from) = &item.from
    {
        out.push_str("<t:From>");
        write_mailbox(out, context.world, None, from);
        out.push_str("</t:From>");
    }
    if wants("message:InternetMessageId")
        && let Some(id) = &item.internet_message_id
    {
        let _ = write!(
            out,
            "<t:InternetMessageId>{}</t:InternetMessageId>",
            escape(id)
        );
    }
    if wants("message:IsRead") {
        let _ = write!(out, "<t:IsRead>{read}</t:IsRead>");
    }
    if wants("message:IsResponseRequested") {
        out.push_str("<t:IsResponseRequested>false</t:IsResponseRequested>");
    }
    out.push_str("</t:Message>");
}

fn display_names(world: &World, list: &[(Option<String>, String)]) -> String {
    list.iter()
        .map(|(name, address)| {
            name.clone()
                .or_else(|| {
                    world
                        .directory
                        .user_by_address(address)
                        .map(|u| u.display_name.clone())
                })
                .unwrap_or_else(|| address.clone())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Writes `<t:Mailbox>` for an address: a directory user is a `Mailbox`, anyone else `OneOff`.
pub fn write_mailbox(out: &mut String, world: &World, name: Option<&str>, address: &str) {
    let user = world.directory.user_by_address(address);
    let name = name
        .map(str::to_string)
        .or_else(|| user.map(|u| u.display_name.clone()))
        .unwrap_or_else(|| address.to_string());
    let kind = if user.is_some_and(|u| world.exchange.mailboxes.contains_key(&u.id)) {
        "Mailbox"
    } else {
        "OneOff"
    };
    let _ = write!(
        out,
        "<t:Mailbox><t:Name>{}</t:Name><t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>{kind}</t:MailboxType></t:Mailbox>",
        escape(&name),
        escape(address)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ews::xml::parse;

    fn path(text: &str) -> Result<ExtendedPath, PathError> {
        ExtendedPath::parse(&parse(text).expect("parses"))
    }

    #[test]
    fn tags_parse_in_every_spelling() {
        assert_eq!(parse_tag("0x1035"), Some(0x1035));
        assert_eq!(parse_tag("0xe07"), Some(0x0E07));
        assert_eq!(parse_tag("4149"), Some(0x1035));
        assert_eq!(parse_tag("0xZZ"), None);
    }

    #[test]
    fn extended_path_needs_one_naming() {
        assert!(path(r#"<ExtendedFieldURI PropertyTag="0x1035" PropertyType="String"/>"#).is_ok());
        assert!(path(r#"<ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="x" PropertyType="String"/>"#).is_ok());
        assert_eq!(
            path(
                r#"<ExtendedFieldURI PropertyTag="0x1035" PropertyName="x" PropertyType="String"/>"#
            ),
            Err(PathError::Invalid)
        );
        assert!(matches!(
            path(r#"<ExtendedFieldURI PropertyTag="0x1035" PropertyType="Text"/>"#),
            Err(PathError::Schema(_))
        ));
    }

    #[test]
    fn distinguished_set_matches_its_guid() {
        let named = path(r#"<ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="Marker" PropertyType="String"/>"#)
            .expect("valid");
        let by_guid = path(r#"<ExtendedFieldURI PropertySetId="00020329-0000-0000-C000-000000000046" PropertyName="Marker" PropertyType="String"/>"#)
            .expect("valid");
        assert!(by_guid.matches(&named.to_property("v".into())));
    }

    #[test]
    fn mime_summary_reads_headers() {
        let mime = b"From: Alice <alice@lab.example>\r\nTo: Bob <bob@lab.example>\r\nCc: carol@lab.example\r\nSubject: Hi\r\nMessage-ID: <m1@lab.example>\r\nDate: Fri, 04 Dec 2026 10:00:00 +0000\r\n\r\nbody\r\n";
        let summary = MimeSummary::parse(mime).expect("parses");
        assert_eq!(summary.subject.as_deref(), Some("Hi"));
        assert_eq!(summary.message_id.as_deref(), Some("<m1@lab.example>"));
        assert_eq!(summary.from.as_deref(), Some("alice@lab.example"));
        assert_eq!(
            summary.to,
            vec![(Some("Bob".into()), "bob@lab.example".into())]
        );
        assert_eq!(summary.cc.len(), 1);
        assert!(summary.date.is_some());
        assert_eq!(summary.text.as_deref().map(str::trim), Some("body"));
    }
}
