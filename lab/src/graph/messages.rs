//! Messages in the folders of Exchange Online mailboxes: list with `$filter`, `$select`,
//! `$top`/`$skip` and `$expand` of single-value extended properties, get, get the MIME
//! (`$value`), create from JSON or from MIME, update and delete.
//!
//! Items live in the same store that EWS serves (`world.exchange.mailboxes`), so a message
//! created here is visible over EWS and the other way round. A message ID encodes the owner's
//! object ID and the store's item number. Only cloud mailboxes are reachable, and Graph returns
//! `MailboxNotEnabledForRESTAPI` for a mailbox on the on-premises server.
//!
//! A message created without `PR_MESSAGE_FLAGS` (`Integer 0x0E07`) is a draft, as Exchange
//! makes it. The unsent bit cannot change after the first save (MS-OXCMSG), so a later update
//! of that property only changes the read bit. See
//! <https://learn.microsoft.com/graph/api/resources/message> and
//! <https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty>.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use mail_parser::MessageParser;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::odata::{Filter, QueryOptions, with_query_option};
use super::{
    Caller, GraphError, GraphResult, Shared, collection, entity, graph_time, parse_json, users,
};
use crate::World;
use crate::fixture::MailboxLocation;
use crate::world::exchange::{
    ExtendedProperty, Item, MSGFLAG_READ, MSGFLAG_UNSENT, Mailbox, WellKnownFolder,
};

/// Permissions that let an application read mail.
const MAIL_READ: &[&str] = &["Mail.Read", "Mail.ReadWrite"];
/// Permissions that let an application write mail.
const MAIL_WRITE: &[&str] = &["Mail.ReadWrite"];

/// Outlook collections return this many messages without `$top`.
const DEFAULT_MESSAGE_PAGE: usize = 10;
/// Largest `$top` for messages.
const MAX_MESSAGE_PAGE: usize = 1000;

/// PR_CLIENT_SUBMIT_TIME.
const TAG_SENT: u16 = 0x0039;
/// PR_MESSAGE_DELIVERY_TIME.
const TAG_DELIVERED: u16 = 0x0E06;
/// PR_MESSAGE_FLAGS.
const TAG_FLAGS: u16 = 0x0E07;
/// PR_INTERNET_MESSAGE_ID.
const TAG_MESSAGE_ID: u16 = 0x1035;

/// Prefix of the lab's message IDs, in the style of Exchange's base64 entry IDs.
const ID_PREFIX: &str = "AAMkAGlhYi";

fn require(caller: &Caller, roles: &[&str]) -> Result<(), GraphError> {
    if caller.has_any(roles) {
        Ok(())
    } else {
        tracing::debug!(app_id = %caller.app_id, needed = ?roles, "graph mail request lacks a permission");
        Err(GraphError::for_mail_denied())
    }
}

/// Encodes a message ID from the mailbox owner and the item number.
pub fn encode_message_id(owner: Uuid, item: u64) -> String {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(owner.as_bytes());
    bytes.extend_from_slice(&item.to_be_bytes());
    format!("{ID_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Decodes a message ID into the mailbox owner and the item number.
pub fn decode_message_id(id: &str) -> Option<(Uuid, u64)> {
    let bytes = URL_SAFE_NO_PAD.decode(id.strip_prefix(ID_PREFIX)?).ok()?;
    if bytes.len() != 24 {
        return None;
    }
    let owner = Uuid::from_slice(&bytes[..16]).ok()?;
    let item = u64::from_be_bytes(bytes[16..].try_into().ok()?);
    Some((owner, item))
}

/// Finds the object ID of the cloud mailbox that a path's user segment names.
fn mailbox_owner(world: &World, user: &str) -> Result<Uuid, GraphError> {
    let found = users::resolve(world, user).or_else(|| world.directory.user_by_address(user));
    let Some(found) = found else {
        return Err(GraphError::for_invalid_user(user));
    };
    if found.mailbox != MailboxLocation::Cloud || !world.exchange.mailboxes.contains_key(&found.id)
    {
        return Err(GraphError::for_mailbox_not_enabled());
    }
    Ok(found.id)
}

fn folder_of(name: &str) -> Result<WellKnownFolder, GraphError> {
    WellKnownFolder::parse(name)
        .filter(|f| *f != WellKnownFolder::Root)
        .ok_or_else(GraphError::for_malformed_id)
}

/// Decodes the item number of a message ID that belongs to `owner`'s mailbox.
fn item_number(owner: Uuid, id: &str) -> Result<u64, GraphError> {
    match decode_message_id(id) {
        Some((id_owner, number)) if id_owner == owner => Ok(number),
        Some(_) => Err(GraphError::for_item_not_found()),
        None => Err(GraphError::for_malformed_id()),
    }
}

// ---------------------------------------------------------------------------------------
// Extended property IDs.

/// Parses a Graph extended property ID (`Integer 0x0E07`, `String {guid} Name X`,
/// `Integer {guid} Id 0x8005`) into a property with an empty value.
pub fn parse_property_id(text: &str) -> Option<ExtendedProperty> {
    let text = text.trim();
    let (prop_type, rest) = text.split_once(char::is_whitespace)?;
    let rest = rest.trim();
    let empty = ExtendedProperty {
        tag: None,
        set_id: None,
        name: None,
        id: None,
        prop_type: prop_type.to_string(),
        value: String::new(),
    };
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let tag = u16::from_str_radix(hex, 16).ok()?;
        return Some(ExtendedProperty {
            tag: Some(tag),
            ..empty
        });
    }
    let rest = rest.strip_prefix('{')?;
    let (guid, rest) = rest.split_once('}')?;
    let set = Uuid::parse_str(guid).ok()?.to_string();
    let rest = rest.trim_start();
    if let Some(name) = rest.strip_prefix("Name ") {
        return Some(ExtendedProperty {
            set_id: Some(set),
            name: Some(name.to_string()),
            ..empty
        });
    }
    let number = rest.strip_prefix("Id ")?.trim();
    let id = match number
        .strip_prefix("0x")
        .or_else(|| number.strip_prefix("0X"))
    {
        Some(hex) => i32::from_str_radix(hex, 16).ok()?,
        None => number.parse().ok()?,
    };
    Some(ExtendedProperty {
        set_id: Some(set),
        id: Some(id),
        ..empty
    })
}

/// The ID Graph returns for a property: lowercase hex tags without padding, lowercase GUIDs.
pub fn canonical_property_id(p: &ExtendedProperty) -> String {
    match (p.tag, &p.set_id, &p.name, p.id) {
        (Some(tag), _, _, _) => format!("{} 0x{tag:x}", p.prop_type),
        (None, Some(set), Some(name), _) => format!("{} {{{set}}} Name {name}", p.prop_type),
        (None, Some(set), None, Some(id)) => format!("{} {{{set}}} Id 0x{id:x}", p.prop_type),
        _ => p.prop_type.clone(),
    }
}

fn canonicalize(text: &str) -> String {
    parse_property_id(text)
        .map(|p| canonical_property_id(&p))
        .unwrap_or_else(|| text.to_string())
}

/// Lists every extended property of an item, the ones kept in its own fields included.
fn item_properties(item: &Item) -> Vec<ExtendedProperty> {
    let tagged = |tag: u16, prop_type: &str, value: String| ExtendedProperty {
        tag: Some(tag),
        set_id: None,
        name: None,
        id: None,
        prop_type: prop_type.into(),
        value,
    };
    let mut properties = vec![tagged(TAG_FLAGS, "Integer", item.message_flags.to_string())];
    if let Some(id) = &item.internet_message_id {
        properties.push(tagged(TAG_MESSAGE_ID, "String", id.clone()));
    }
    if let Some(sent) = item.sent {
        properties.push(tagged(TAG_SENT, "SystemTime", graph_time(sent)));
    }
    if let Some(delivered) = item.delivered {
        properties.push(tagged(TAG_DELIVERED, "SystemTime", graph_time(delivered)));
    }
    properties.extend(item.extended.iter().cloned());
    properties
}

/// Parses `$expand=singleValueExtendedProperties($filter=...)`: `None` for no expansion,
/// `Some(None)` for every property.
fn parse_expand(expand: Option<&str>) -> Result<Option<Option<Filter>>, GraphError> {
    let Some(expand) = expand else {
        return Ok(None);
    };
    let expand = expand.trim();
    let (name, options) = match expand.split_once('(') {
        Some((name, rest)) => (
            name.trim(),
            Some(rest.strip_suffix(')').ok_or_else(|| {
                GraphError::for_bad_request(format!("Invalid $expand '{expand}': missing ')'."))
            })?),
        ),
        None => (expand, None),
    };
    if !name.eq_ignore_ascii_case("singleValueExtendedProperties") {
        return Err(GraphError::for_bad_request(format!(
            "Could not find a property named '{name}' to expand on type 'microsoft.graph.message'."
        )));
    }
    let Some(options) = options else {
        return Ok(Some(None));
    };
    let mut filter = None;
    for option in options.split(';') {
        let Some((key, value)) = option.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("$filter") {
            let mut parsed = Filter::parse(value)?;
            parsed.rewrite_literals("id", &canonicalize);
            filter = Some(parsed);
        }
    }
    Ok(Some(filter))
}

// ---------------------------------------------------------------------------------------
// The JSON form of a message.

fn address_json(text: &str, name: Option<&str>) -> Value {
    json!({ "emailAddress": { "name": name.unwrap_or(text), "address": text } })
}

/// Renders the JSON form of an item, with the extended properties that `expand` selects.
fn to_json(
    owner: Uuid,
    folder: WellKnownFolder,
    item: &Item,
    expand: &Option<Option<Filter>>,
) -> Value {
    let parsed = MessageParser::default().parse(&item.mime);
    // Graph returns the HTML body when the message has one, else the plain text.
    let (content_type, content, has_attachments) = match &parsed {
        Some(message) if message.html_part(0).is_some_and(|p| p.is_text_html()) => (
            "html",
            message
                .body_html(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            message.attachment_count() > 0,
        ),
        Some(message) => (
            "text",
            message
                .body_text(0)
                .map(|t| t.into_owned())
                .unwrap_or_default(),
            message.attachment_count() > 0,
        ),
        None => ("text", String::new(), false),
    };
    let preview_source = parsed
        .as_ref()
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_else(|| content.clone());
    let preview: String = preview_source
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(255)
        .collect();
    let from_name = parsed
        .as_ref()
        .and_then(|m| m.from())
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(str::to_string);
    let from = item
        .from
        .as_deref()
        .map(|f| address_json(f, from_name.as_deref()));
    let recipients: Vec<Value> = item
        .recipients
        .iter()
        .map(|r| address_json(r, None))
        .collect();
    let mut map = Map::new();
    map.insert(
        "@odata.etag".into(),
        format!("W/\"{}\"", change_key(item)).into(),
    );
    map.insert("id".into(), encode_message_id(owner, item.id).into());
    map.insert("createdDateTime".into(), graph_time(item.created).into());
    map.insert(
        "lastModifiedDateTime".into(),
        graph_time(item.created).into(),
    );
    map.insert("changeKey".into(), change_key(item).into());
    map.insert("categories".into(), json!([]));
    map.insert(
        "receivedDateTime".into(),
        graph_time(item.delivered.unwrap_or(item.created)).into(),
    );
    map.insert("sentDateTime".into(), item.sent.map(graph_time).into());
    map.insert("hasAttachments".into(), has_attachments.into());
    map.insert(
        "internetMessageId".into(),
        item.internet_message_id.clone().into(),
    );
    map.insert("subject".into(), item.subject.clone().into());
    map.insert("bodyPreview".into(), preview.into());
    map.insert("importance".into(), "normal".into());
    map.insert("parentFolderId".into(), folder.ews_id().into());
    map.insert(
        "isRead".into(),
        (item.message_flags & MSGFLAG_READ != 0).into(),
    );
    map.insert("isDraft".into(), item.is_draft().into());
    map.insert(
        "body".into(),
        json!({ "contentType": content_type, "content": content }),
    );
    map.insert("sender".into(), from.clone().unwrap_or(Value::Null));
    map.insert("from".into(), from.unwrap_or(Value::Null));
    map.insert("toRecipients".into(), recipients.into());
    map.insert("ccRecipients".into(), json!([]));
    map.insert("bccRecipients".into(), json!([]));
    map.insert("replyTo".into(), json!([]));
    if let Some(filter) = expand {
        let properties: Vec<Value> = item_properties(item)
            .iter()
            .map(|p| json!({ "id": canonical_property_id(p), "value": p.value }))
            .filter(|p| filter.as_ref().is_none_or(|f| f.matches(p)))
            .collect();
        // Graph leaves the property out when no extended property matches.
        if !properties.is_empty() {
            map.insert("singleValueExtendedProperties".into(), properties.into());
        }
    }
    Value::Object(map)
}

fn change_key(item: &Item) -> String {
    STANDARD.encode(format!("CQAAABYAAAlab{:08}", item.change))
}

/// Applies `$select` and keeps `@odata.etag` and an expanded property, as Graph does.
fn shape(options: &QueryOptions, item: Value) -> Value {
    let Some(select) = &options.select else {
        return item;
    };
    let mut names = select.clone();
    names.extend([
        "@odata.etag".to_string(),
        "id".to_string(),
        "singleValueExtendedProperties".to_string(),
    ]);
    super::odata::project(item, Some(&names))
}

// ---------------------------------------------------------------------------------------
// Handlers.

/// `GET /users/{user}/mailFolders/{folder}/messages`.
pub(super) async fn list(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((user, folder)): Path<(String, String)>,
    uri: OriginalUri,
) -> GraphResult {
    require(&caller, MAIL_READ)?;
    let options = QueryOptions::parse(uri.query())?;
    let expand = parse_expand(options.expand.as_deref())?;
    let top = options.top.unwrap_or(DEFAULT_MESSAGE_PAGE);
    if top == 0 || top > MAX_MESSAGE_PAGE {
        return Err(GraphError::for_bad_request(format!(
            "Invalid value '{top}' for $top: it must be between 1 and {MAX_MESSAGE_PAGE}."
        )));
    }
    let skip = options.skip.unwrap_or(0);
    let which = folder_of(&folder)?;
    let lab = &shared.lab;
    let world = lab.read();
    let owner = mailbox_owner(&world, &user)?;
    let mailbox = &world.exchange.mailboxes[&owner];

    // Newest first, as Outlook lists a folder by default.
    let mut matching: Vec<Value> = mailbox
        .folder(which)
        .items
        .iter()
        .rev()
        .map(|item| to_json(owner, which, item, &expand))
        .filter(|item| options.matches(item))
        .collect();
    let total = matching.len();
    let end = skip.saturating_add(top).min(total);
    let page: Vec<Value> = matching
        .drain(skip.min(end)..end)
        .map(|item| shape(&options, item))
        .collect();
    let next = (end < total).then(|| {
        let query = with_query_option(uri.query(), "$skip", &end.to_string());
        format!(
            "{}{}?{query}",
            lab.endpoints().graph,
            uri.path().trim_start_matches('/')
        )
    });
    let context = format!("users('{user}')/mailFolders('{folder}')/messages");
    Ok(collection(lab, &context, page, next))
}

/// Finds an item of `owner`'s mailbox by its message ID.
fn find_item<'m>(
    mailbox: &'m Mailbox,
    owner: Uuid,
    id: &str,
) -> Result<(WellKnownFolder, &'m Item), GraphError> {
    let number = item_number(owner, id)?;
    mailbox
        .find_item(number)
        .ok_or_else(GraphError::for_item_not_found)
}

/// `GET /users/{user}/mailFolders/{folder}/messages/{id}` and `/users/{user}/messages/{id}`.
pub(super) async fn get_by_id(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
    uri: OriginalUri,
) -> GraphResult {
    require(&caller, MAIL_READ)?;
    let (user, message) = user_and_message(&path)?;
    let options = QueryOptions::parse(uri.query())?;
    let expand = parse_expand(options.expand.as_deref())?;
    let lab = &shared.lab;
    let world = lab.read();
    let owner = mailbox_owner(&world, &user)?;
    let (folder, item) = find_item(&world.exchange.mailboxes[&owner], owner, &message)?;
    let item = shape(&options, to_json(owner, folder, item, &expand));
    Ok(entity(
        lab,
        &format!("users('{user}')/messages/$entity"),
        StatusCode::OK,
        item,
    ))
}

/// Reads the `user` and `message` path parameters of either message route.
fn user_and_message(path: &[(String, String)]) -> Result<(String, String), GraphError> {
    let get = |name: &str| {
        path.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(GraphError::for_malformed_id)
    };
    Ok((get("user")?, get("message")?))
}

/// `GET .../messages/{id}/$value` with a folder in the path.
pub(super) async fn get_mime(
    state: State<Shared>,
    caller: Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
) -> GraphResult<Response> {
    mime_of(state, caller, path).await
}

/// `GET /users/{user}/messages/{id}/$value`.
pub(super) async fn get_mime_without_folder(
    state: State<Shared>,
    caller: Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
) -> GraphResult<Response> {
    mime_of(state, caller, path).await
}

async fn mime_of(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    path: Vec<(String, String)>,
) -> GraphResult<Response> {
    require(&caller, MAIL_READ)?;
    let (user, message) = user_and_message(&path)?;
    let world = shared.lab.read();
    let owner = mailbox_owner(&world, &user)?;
    let (_, item) = find_item(&world.exchange.mailboxes[&owner], owner, &message)?;
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok((StatusCode::OK, headers, item.mime.clone()).into_response())
}

/// `POST /users/{user}/mailFolders/{folder}/messages`: a JSON message, or with
/// `Content-Type: text/plain` a base64 MIME message.
pub(super) async fn create(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path((user, folder)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> GraphResult {
    require(&caller, MAIL_WRITE)?;
    let which = folder_of(&folder)?;
    let is_mime = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/plain")
        });
    let lab = &shared.lab;
    let mut world = lab.write();
    let owner = mailbox_owner(&world, &user)?;
    let domain = world.directory.domain.clone();
    let mut item = if is_mime {
        item_from_mime(&body)?
    } else {
        item_from_json(&parse_json(&body)?, &domain)?
    };
    item.id = world.exchange.allocate_item_id();
    let answer = to_json(owner, which, &item, &None);
    tracing::info!(
        mailbox = %owner,
        folder = which.ews_id(),
        item = item.id,
        draft = item.is_draft(),
        by = %caller.app_id,
        "graph created a message"
    );
    world
        .exchange
        .mailboxes
        .get_mut(&owner)
        .expect("mailbox_owner checked the mailbox")
        .folder_mut(which)
        .items
        .push(item);
    let context = format!("users('{user}')/mailFolders('{folder}')/messages/$entity");
    Ok(entity(lab, &context, StatusCode::CREATED, answer))
}

/// Builds an item from Graph's JSON message.
fn item_from_json(body: &Value, domain: &str) -> Result<Item, GraphError> {
    let now = Utc::now();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let address = |v: &Value| text(v.pointer("/emailAddress/address"));
    let subject = text(body.get("subject")).unwrap_or_default();
    let from = body.get("from").and_then(address);
    let mut recipients: Vec<String> = Vec::new();
    for list in ["toRecipients", "ccRecipients"] {
        if let Some(entries) = body.get(list).and_then(Value::as_array) {
            recipients.extend(entries.iter().filter_map(address));
        }
    }
    let content_type = text(body.pointer("/body/contentType")).unwrap_or_else(|| "text".into());
    let content = text(body.pointer("/body/content")).unwrap_or_default();

    let mut item = Item {
        id: 0,
        change: 1,
        mime: Vec::new(),
        internet_message_id: text(body.get("internetMessageId")),
        subject,
        from,
        recipients,
        sent: None,
        delivered: None,
        created: now,
        message_flags: MSGFLAG_UNSENT | MSGFLAG_READ,
        extended: Vec::new(),
    };
    if let Some(properties) = body.get("singleValueExtendedProperties") {
        apply_properties(&mut item, properties, true)?;
    }
    if item.internet_message_id.is_none() {
        item.internet_message_id = Some(format!("<{}@{domain}>", Uuid::new_v4().simple()));
    }
    item.mime = build_mime(&item, &content_type, &content);
    Ok(item)
}

/// Writes the RFC 5322 form of a message created from JSON.
fn build_mime(item: &Item, content_type: &str, content: &str) -> Vec<u8> {
    let date = item.sent.unwrap_or(item.created).to_rfc2822();
    let subtype = if content_type.eq_ignore_ascii_case("html") {
        "html"
    } else {
        "plain"
    };
    let mut mime = String::new();
    if let Some(from) = &item.from {
        mime.push_str(&format!("From: {from}\r\n"));
    }
    if !item.recipients.is_empty() {
        mime.push_str(&format!("To: {}\r\n", item.recipients.join(", ")));
    }
    mime.push_str(&format!("Subject: {}\r\n", item.subject));
    mime.push_str(&format!("Date: {date}\r\n"));
    if let Some(id) = &item.internet_message_id {
        mime.push_str(&format!("Message-ID: {id}\r\n"));
    }
    mime.push_str("MIME-Version: 1.0\r\n");
    mime.push_str(&format!("Content-Type: text/{subtype}; charset=utf-8\r\n"));
    mime.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    let encoded = STANDARD.encode(content.as_bytes());
    for chunk in encoded.as_bytes().chunks(76) {
        mime.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        mime.push_str("\r\n");
    }
    mime.into_bytes()
}

/// Builds an item from a base64 MIME body; Graph saves such a message as a draft.
fn item_from_mime(body: &[u8]) -> Result<Item, GraphError> {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mime = STANDARD
        .decode(&compact)
        .map_err(|_| GraphError::for_bad_request("Invalid base64 string for MIME content."))?;
    let message = MessageParser::default()
        .parse(&mime)
        .ok_or_else(|| GraphError::for_bad_request("The MIME content is not a valid message."))?;
    let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        list.map(|a| {
            a.iter()
                .filter_map(|a| a.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut recipients = addresses(message.to());
    recipients.extend(addresses(message.cc()));
    let sent = message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0));
    Ok(Item {
        id: 0,
        change: 1,
        internet_message_id: message.message_id().map(|id| format!("<{id}>")),
        subject: message.subject().unwrap_or_default().to_string(),
        from: addresses(message.from()).into_iter().next(),
        recipients,
        sent,
        delivered: None,
        created: Utc::now(),
        message_flags: MSGFLAG_UNSENT | MSGFLAG_READ,
        extended: Vec::new(),
        mime,
    })
}

/// Sets `singleValueExtendedProperties` on an item. On a new item (`creating`) every
/// PR_MESSAGE_FLAGS bit is taken; on a saved one only the read bit changes.
fn apply_properties(item: &mut Item, properties: &Value, creating: bool) -> Result<(), GraphError> {
    let entries = properties.as_array().ok_or_else(|| {
        GraphError::for_bad_request(
            "Property 'singleValueExtendedProperties' must be a collection.",
        )
    })?;
    for entry in entries {
        let id = entry.get("id").and_then(Value::as_str).unwrap_or_default();
        let value = match entry.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(other) if !other.is_null() => other.to_string(),
            _ => String::new(),
        };
        let mut property = parse_property_id(id).ok_or_else(|| {
            GraphError::for_bad_request(format!("The extended property ID '{id}' is not valid."))
        })?;
        let invalid_value = || {
            GraphError::for_bad_request(format!(
                "The value '{value}' is not valid for extended property '{id}'."
            ))
        };
        match property.tag {
            Some(TAG_FLAGS) => {
                let flags: i32 = value.trim().parse().map_err(|_| invalid_value())?;
                item.message_flags = if creating {
                    flags
                } else {
                    (item.message_flags & !MSGFLAG_READ) | (flags & MSGFLAG_READ)
                };
            }
            Some(TAG_MESSAGE_ID) => item.internet_message_id = Some(value),
            Some(TAG_SENT) => {
                item.sent = Some(parse_system_time(&value).ok_or_else(invalid_value)?);
            }
            Some(TAG_DELIVERED) => {
                item.delivered = Some(parse_system_time(&value).ok_or_else(invalid_value)?);
            }
            _ => {
                property.value = value;
                item.extended.retain(|p| !p.same_key(&property));
                item.extended.push(property);
            }
        }
    }
    Ok(())
}

fn parse_system_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `PATCH .../messages/{id}`: subject, isRead and singleValueExtendedProperties.
pub(super) async fn update(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
    body: Bytes,
) -> GraphResult {
    require(&caller, MAIL_WRITE)?;
    let (user, message) = user_and_message(&path)?;
    let body = parse_json(&body)?;
    let lab = &shared.lab;
    let mut world = lab.write();
    let owner = mailbox_owner(&world, &user)?;
    let number = item_number(owner, &message)?;
    let mailbox = world
        .exchange
        .mailboxes
        .get_mut(&owner)
        .expect("mailbox_owner checked the mailbox");
    let (folder, item) = mailbox
        .folders
        .iter_mut()
        .find_map(|f| {
            let well_known = f.well_known;
            f.items
                .iter_mut()
                .find(|i| i.id == number)
                .map(|i| (well_known, i))
        })
        .ok_or_else(GraphError::for_item_not_found)?;

    // Apply to a copy first, so that a rejected property leaves the item unchanged.
    let mut changed = item.clone();
    if let Some(subject) = body.get("subject").and_then(Value::as_str) {
        changed.subject = subject.to_string();
    }
    if let Some(read) = body.get("isRead").and_then(Value::as_bool) {
        changed.message_flags = if read {
            changed.message_flags | MSGFLAG_READ
        } else {
            changed.message_flags & !MSGFLAG_READ
        };
    }
    if let Some(properties) = body.get("singleValueExtendedProperties") {
        apply_properties(&mut changed, properties, false)?;
    }
    changed.change += 1;
    *item = changed;
    let answer = to_json(owner, folder, item, &None);
    tracing::info!(mailbox = %owner, item = number, by = %caller.app_id, "graph updated a message");
    Ok(entity(
        lab,
        &format!("users('{user}')/messages/$entity"),
        StatusCode::OK,
        answer,
    ))
}

/// `DELETE /users/{user}/mailFolders/{folder}/messages/{id}`.
pub(super) async fn delete(
    state: State<Shared>,
    caller: Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
) -> GraphResult<Response> {
    delete_message(state, caller, path).await
}

/// `DELETE /users/{user}/messages/{id}`.
pub(super) async fn delete_without_folder(
    state: State<Shared>,
    caller: Extension<Caller>,
    Path(path): Path<Vec<(String, String)>>,
) -> GraphResult<Response> {
    delete_message(state, caller, path).await
}

/// Moves the message to Deleted Items, or removes it for good when it is already there.
async fn delete_message(
    State(shared): State<Shared>,
    Extension(caller): Extension<Caller>,
    path: Vec<(String, String)>,
) -> GraphResult<Response> {
    require(&caller, MAIL_WRITE)?;
    let (user, message) = user_and_message(&path)?;
    let lab = &shared.lab;
    let mut world = lab.write();
    let owner = mailbox_owner(&world, &user)?;
    let number = item_number(owner, &message)?;
    let mailbox = world
        .exchange
        .mailboxes
        .get_mut(&owner)
        .expect("mailbox_owner checked the mailbox");
    let (folder, item) = mailbox
        .take_item(number)
        .ok_or_else(GraphError::for_item_not_found)?;
    if folder != WellKnownFolder::DeletedItems {
        mailbox
            .folder_mut(WellKnownFolder::DeletedItems)
            .items
            .push(item);
    }
    tracing::info!(mailbox = %owner, item = number, from = folder.ews_id(), by = %caller.app_id, "graph deleted a message");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_round_trips() {
        let owner = Uuid::new_v4();
        let id = encode_message_id(owner, 42);
        assert_eq!(decode_message_id(&id), Some((owner, 42)));
        assert_eq!(decode_message_id("AAMkAGother"), None);
    }

    #[test]
    fn property_ids_have_one_canonical_form() {
        assert_eq!(canonicalize("Integer 0x0E07"), "Integer 0xe07");
        assert_eq!(
            canonicalize("String {00020386-0000-0000-C000-000000000046} Name X-Siu-Rewritten"),
            "String {00020386-0000-0000-c000-000000000046} Name X-Siu-Rewritten"
        );
        assert_eq!(
            canonicalize("Integer {00062008-0000-0000-C000-000000000046} Id 0x8506"),
            "Integer {00062008-0000-0000-c000-000000000046} Id 0x8506"
        );
        assert!(parse_property_id("Integer").is_none());
        assert!(parse_property_id("String {not-a-guid} Name X").is_none());
    }

    #[test]
    fn json_message_without_flags_is_a_draft() {
        let body = json!({
            "subject": "Hello",
            "body": { "contentType": "text", "content": "Hi" },
            "toRecipients": [{ "emailAddress": { "address": "partner@example.net" } }],
        });
        let item = item_from_json(&body, "lab.example").expect("item");
        assert!(item.is_draft());
        let sent = json!({
            "subject": "Hello",
            "singleValueExtendedProperties": [{ "id": "Integer 0x0E07", "value": "1" }],
        });
        let item = item_from_json(&sent, "lab.example").expect("item");
        assert!(!item.is_draft());
    }

    #[test]
    fn update_cannot_clear_the_unsent_bit() {
        let mut item = item_from_json(&json!({"subject": "x"}), "lab.example").expect("item");
        let flags = json!([{ "id": "Integer 0x0E07", "value": "1" }]);
        apply_properties(&mut item, &flags, false).expect("applies");
        assert!(item.is_draft());
        assert_eq!(item.message_flags & MSGFLAG_READ, MSGFLAG_READ);
    }

    #[test]
    fn expand_filter_matches_any_spelling_of_the_id() {
        let expand = parse_expand(Some(
            "singleValueExtendedProperties($filter=id eq 'Integer 0x0E07')",
        ))
        .expect("parses");
        let item = item_from_json(&json!({"subject": "x"}), "lab.example").expect("item");
        let rendered = to_json(Uuid::new_v4(), WellKnownFolder::SentItems, &item, &expand);
        let properties = rendered["singleValueExtendedProperties"]
            .as_array()
            .expect("expanded");
        assert_eq!(properties.len(), 1);
        assert_eq!(properties[0]["id"], "Integer 0xe07");
    }
}
