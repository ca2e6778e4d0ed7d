//! The transport simulator against a real lab: the mail corpus, split and hold modes, and the
//! senders whose original goes somewhere other than the From mailbox, or nowhere.

use std::path::{Path, PathBuf};

use mail_parser::{Message as Parsed, MessageParser, MessagePart, MimeHeaders, PartType};
use siu_lab::transport::{self, Message, SendReport, TransportError};
use siu_lab::world::exchange::{Item, WellKnownFolder};
use siu_lab::{Fixture, Lab, LabConfig};

/// The mail corpus; the corpus tests skip with a message when it is absent.
const CORPUS: &str = "/work/shared/corpus/mail";

const ALICE_SIGNATURE: &str = "--\nAlice Archer\nSales Manager | Lab Example Ltd";
const ALICE_HTML_SIGNATURE: &str = "<div class=\"lab-signature\">\n<p>--<br>\nAlice Archer<br>\n\
                                    Sales Manager | Lab Example Ltd</p>\n</div>";

async fn lab() -> Lab {
    Lab::start(LabConfig::new(Fixture::default_org()))
        .await
        .expect("lab starts")
}

fn parse(raw: &[u8]) -> Parsed<'_> {
    MessageParser::default()
        .parse(raw)
        .expect("the message parses")
}

/// The Sent Items of the mailbox with this address.
fn sent_items(lab: &Lab, address: &str) -> Vec<Item> {
    let world = lab.state().read();
    let user = world
        .directory
        .user_by_address(address)
        .expect("the address belongs to a lab user");
    world.exchange.mailboxes[&user.id]
        .folder(WellKnownFolder::SentItems)
        .items
        .clone()
}

/// The item with this store number in a Sent Items folder.
fn sent_item(lab: &Lab, address: &str, id: Option<u64>) -> Option<Item> {
    let id = id?;
    sent_items(lab, address).into_iter().find(|i| i.id == id)
}

fn items_with_message_id(lab: &Lab, address: &str, message_id: &str) -> Vec<Item> {
    sent_items(lab, address)
        .into_iter()
        .filter(|i| i.internet_message_id.as_deref() == Some(message_id))
        .collect()
}

/// Splits a spool file into its leading `X-SIU-` fields and the message after them.
fn split_spool_file(bytes: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let mut fields = Vec::new();
    let mut rest = bytes;
    while rest.starts_with(b"X-SIU-") {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("an X- field ends with a line break");
        let line = String::from_utf8(rest[..end].to_vec()).expect("X- fields are ASCII");
        let (name, value) = line.split_once(':').expect("an X- field has a colon");
        fields.push((name.to_string(), value.trim().to_string()));
        rest = &rest[end + 1..];
    }
    (fields, rest)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Removes the top-level header fields with these names (continuation lines included).
fn without_fields(raw: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut position = 0;
    let mut skipping = false;
    while position < raw.len() {
        let end = raw[position..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| position + i + 1);
        let line = &raw[position..end];
        if line == b"\r\n" || line == b"\n" {
            out.extend_from_slice(&raw[position..]);
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|i| String::from_utf8_lossy(&line[..i]).trim().to_string());
            skipping = name.is_some_and(|n| names.iter().any(|x| x.eq_ignore_ascii_case(&n)));
        }
        if !skipping {
            out.extend_from_slice(line);
        }
        position = end;
    }
    out
}

/// The text and HTML body parts of a message that are not attachments, as mail-parser reads
/// them, by part number.
fn body_parts<'a>(message: &'a Parsed<'a>) -> Vec<(u32, &'a MessagePart<'a>)> {
    let mut ids: Vec<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .filter(|id| !message.attachments.contains(id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| (id, &message.parts[id as usize]))
        .filter(|(_, p)| matches!(p.body, PartType::Text(_) | PartType::Html(_)))
        .collect()
}

fn normalized(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// Whether `processed` is `original` with the signature added as the transport adds it.
fn is_signed_text(original: &str, processed: &str, signature: &str) -> bool {
    let original = normalized(original);
    let processed = normalized(processed);
    let separator = if !original.is_empty() && !original.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    let end = if original.ends_with('\n') { "\n" } else { "" };
    processed == format!("{original}{separator}{signature}{end}")
}

fn is_signed_html(original: &str, processed: &str, block: &str) -> bool {
    let original = normalized(original);
    let processed = normalized(processed);
    let inserted = format!("{block}\n");
    (processed.contains(&inserted) && processed.replacen(&inserted, "", 1) == original)
        || is_signed_text(&original, &processed, block)
}

fn attachment_contents(message: &Parsed<'_>) -> Vec<Vec<u8>> {
    message
        .attachments()
        .map(|a| a.contents().to_vec())
        .collect()
}

fn corpus_files() -> Option<Vec<PathBuf>> {
    let root = Path::new(CORPUS);
    if !root.is_dir() {
        eprintln!("skipping: the mail corpus {CORPUS} is absent");
        return None;
    }
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("corpus directory is readable") {
            let path = entry.expect("corpus entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Some(files)
}

/// Checks one corpus message after sending it from alice; returns what is wrong.
fn check_corpus_message(lab: &Lab, eml: &[u8], report: &SendReport) -> Vec<String> {
    let mut problems = Vec::new();
    let original_eml = parse(eml);

    // 1. The original: in alice's Sent Items, not a draft, the submitted bytes.
    if report.mailbox.as_deref() != Some("alice@lab.example") {
        problems.push(format!("original went to {:?}", report.mailbox));
        return problems;
    }
    // The corpus reuses Message-IDs across files, so the item is found by its number.
    let Some(item) = sent_item(lab, "alice@lab.example", report.original_item) else {
        problems.push("the original is not in Sent Items".into());
        return problems;
    };
    if item.internet_message_id.as_deref() != Some(report.message_id.as_str()) {
        problems.push(format!(
            "the original has Message-ID {:?}",
            item.internet_message_id
        ));
    }
    if item.is_draft() {
        problems.push("the original is a draft".into());
    }
    let had_message_id = original_eml.message_id().is_some();
    let mut rewritten = vec!["From", "Sender"];
    if !had_message_id {
        rewritten.push("Message-ID");
    }
    if without_fields(&item.mime, &rewritten) != without_fields(eml, &rewritten) {
        problems
            .push("the original differs from the .eml beyond From, Sender and Message-ID".into());
    }
    let original = parse(&item.mime);
    let from = original.from().and_then(|a| a.first());
    if from.and_then(|a| a.address()) != Some("alice@lab.example") {
        problems.push(format!("the original's From is {from:?}"));
    }
    // Comments inside an address are part of the address that the transport replaces, and
    // mail-parser counts them into the display name, so only messages without them compare.
    let eml_from = original_eml.from().filter(|a| a.iter().count() == 1);
    let has_comment = original_eml
        .header_raw("From")
        .is_some_and(|raw| raw.contains('('));
    if let Some(eml_from) = eml_from.and_then(|a| a.first()).filter(|_| !has_comment)
        && eml_from.name() != from.and_then(|a| a.name())
    {
        problems.push(format!(
            "the display name changed from {:?} to {:?}",
            eml_from.name(),
            from.and_then(|a| a.name())
        ));
    }

    // 2. The spool file: the X- fields, then a message that mail-parser reads.
    let [path] = report.spool_files.as_slice() else {
        problems.push(format!("{} spool files", report.spool_files.len()));
        return problems;
    };
    let bytes = std::fs::read(path).expect("the spool file is readable");
    let (x_fields, processed_bytes) = split_spool_file(&bytes);
    if field(&x_fields, "X-SIU-Original-Message-ID") != Some(report.message_id.as_str()) {
        problems.push(format!(
            "X-SIU-Original-Message-ID is missing or wrong: {x_fields:?}"
        ));
    }
    let received = field(&x_fields, "X-SIU-Received-At").unwrap_or_default();
    if chrono::DateTime::parse_from_rfc3339(received).is_err() {
        problems.push(format!("X-SIU-Received-At `{received}` is not RFC 3339"));
    }
    let Some(processed) = MessageParser::default().parse(processed_bytes) else {
        problems.push("mail-parser cannot parse the spool file".into());
        return problems;
    };

    // 3. Attachments byte for byte.
    if attachment_contents(&processed) != attachment_contents(&original) {
        problems.push("attachments differ".into());
    }

    // 4. A wrapped message: the added text part contains the signature, the rest is unchanged.
    let wrapped = report
        .notes
        .iter()
        .any(|n| n.contains("wrapped the message"));
    if wrapped {
        let first = processed.body_text(0).map(|t| normalized(&t));
        if first.as_deref() != Some(ALICE_SIGNATURE) {
            problems.push(format!("the added text part is {first:?}"));
        }
        return problems;
    }

    // 5. Otherwise the same header fields and parts, and each body part either signed or
    //    named in the notes.
    let header_end = |m: &Parsed<'_>| m.parts[0].offset_body as usize;
    if processed_bytes[..header_end(&processed)] != item.mime[..header_end(&original)] {
        problems.push("the message's header fields changed".into());
    }
    if processed.parts.len() != original.parts.len() {
        problems.push(format!(
            "{} parts became {}",
            original.parts.len(),
            processed.parts.len()
        ));
        return problems;
    }
    for (index, (before, after)) in original
        .parts
        .iter()
        .zip(&processed.parts)
        .enumerate()
        .skip(1)
    {
        let header = |raw: &[u8], p: &MessagePart<'_>| {
            raw[p.offset_header as usize..p.offset_body as usize].to_vec()
        };
        if header(&item.mime, before) != header(processed_bytes, after) {
            problems.push(format!("the header fields of part {index} changed"));
        }
    }
    let bodies = body_parts(&original);
    if bodies.len()
        != report.signed_parts
            + report
                .notes
                .iter()
                .filter(|n| n.starts_with("part "))
                .count()
    {
        problems.push(format!(
            "{} body parts, {} signed, notes {:?}",
            bodies.len(),
            report.signed_parts,
            report.notes
        ));
    }
    for (id, part) in bodies {
        let after = &processed.parts[id as usize];
        let noted = report
            .notes
            .iter()
            .any(|n| n.starts_with(&format!("part {id} ")));
        match (&part.body, &after.body) {
            (PartType::Text(before), PartType::Text(after_text)) => {
                let signed = is_signed_text(before, after_text, ALICE_SIGNATURE);
                if noted == signed || (noted && before != after_text) {
                    problems.push(format!("text part {id}: signed {signed}, noted {noted}"));
                }
            }
            (PartType::Html(before), PartType::Html(after_html)) => {
                let signed = is_signed_html(before, after_html, ALICE_HTML_SIGNATURE);
                if noted == signed || (noted && before != after_html) {
                    problems.push(format!("HTML part {id}: signed {signed}, noted {noted}"));
                }
            }
            _ => problems.push(format!("part {id} changed its type")),
        }
    }
    problems
}

#[tokio::test]
async fn corpus_messages_keep_everything_but_gain_signature() {
    let Some(files) = corpus_files() else {
        return;
    };
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let mut failures = Vec::new();
    let mut unparseable = Vec::new();
    let mut noted = 0;

    for path in &files {
        let name = path
            .strip_prefix(CORPUS)
            .unwrap_or(path)
            .display()
            .to_string();
        let eml = std::fs::read(path).expect("corpus file is readable");
        let message = Message {
            eml: Some(eml.clone()),
            ..Message::default()
        };
        let report = match transport::send(lab.state(), spool.path(), message) {
            Ok(report) => report,
            Err(TransportError::Unparseable) => {
                assert!(
                    MessageParser::default().parse(&eml).is_none(),
                    "{name}: rejected as unparseable although mail-parser reads it"
                );
                unparseable.push(name);
                continue;
            }
            Err(error) => {
                failures.push(format!("{name}: {error}"));
                continue;
            }
        };
        if report.notes.iter().any(|n| n.starts_with("part ")) {
            noted += 1;
            eprintln!("{name}: {:?}", report.notes);
        }
        for problem in check_corpus_message(&lab, &eml, &report) {
            failures.push(format!("{name}: {problem}"));
        }
    }

    eprintln!(
        "{} corpus messages sent, {noted} with parts left unsigned, unparseable: {unparseable:?}",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn corpus_messages_convert_for_non_ascii_signature() {
    let Some(files) = corpus_files() else {
        return;
    };
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let mut failures = Vec::new();

    for path in &files {
        let name = path
            .strip_prefix(CORPUS)
            .unwrap_or(path)
            .display()
            .to_string();
        let eml = std::fs::read(path).expect("corpus file is readable");
        let message = Message {
            eml: Some(eml.clone()),
            from: Some("grace@lab.example".into()),
            ..Message::default()
        };
        let Ok(report) = transport::send(lab.state(), spool.path(), message) else {
            continue;
        };
        let bytes = std::fs::read(&report.spool_files[0]).expect("spool file");
        let (_, processed_bytes) = split_spool_file(&bytes);
        let processed = parse(processed_bytes);
        let stored = sent_item(&lab, "grace@lab.example", report.original_item)
            .expect("the original is in Sent Items");
        let original = parse(&stored.mime);
        if attachment_contents(&processed) != attachment_contents(&original) {
            failures.push(format!("{name}: attachments differ"));
        }
        let signed = body_parts(&processed)
            .iter()
            .filter(|(_, p)| {
                let text = match &p.body {
                    PartType::Text(t) | PartType::Html(t) => t,
                    _ => return false,
                };
                text.contains("Leiterin Vertrieb Österreich | Lab Example Ltd")
            })
            .count();
        if signed != report.signed_parts {
            failures.push(format!(
                "{name}: {signed} parts show the signature, the report says {}",
                report.signed_parts
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn generated_message_keeps_inline_image() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("bob@lab.example".into()),
            to: vec!["partner@example.net".into()],
            subject: Some("Price list".into()),
            inline_image: true,
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox.as_deref(), Some("bob@lab.example"));
    assert_eq!(report.signed_parts, 2);
    let original = &items_with_message_id(&lab, "bob@lab.example", &report.message_id)[0];
    assert_eq!(original.subject, "Price list");
    assert!(!original.is_draft());

    let bytes = std::fs::read(&report.spool_files[0]).expect("spool file");
    let (_, processed_bytes) = split_spool_file(&bytes);
    let processed = parse(processed_bytes);
    let text = processed.body_text(0).expect("text body");
    assert!(
        text.contains("--\r\nBob Baker\r\nAccount Executive | Lab Example Ltd"),
        "{text}"
    );
    let html = processed.body_html(0).expect("HTML body");
    assert!(html.contains("Bob Baker<br>"), "{html}");
    let image = |m: &Parsed<'_>| {
        m.parts
            .iter()
            .find(|p| p.content_type().is_some_and(|c| c.ctype() == "image"))
            .map(|p| (p.contents().to_vec(), p.content_id().map(str::to_string)))
    };
    let before = image(&parse(&original.mime)).expect("the original has the image");
    assert_eq!(image(&processed), Some(before));
}

#[tokio::test]
async fn split_mode_writes_one_copy_per_recipient() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let recipients = ["one@example.net", "two@example.net", "three@example.net"];
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("alice@lab.example".into()),
            to: recipients.iter().map(|r| r.to_string()).collect(),
            split: true,
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.spool_files.len(), 3);
    assert_eq!(
        items_with_message_id(&lab, "alice@lab.example", &report.message_id).len(),
        1
    );
    let mut message_ids = Vec::new();
    for (i, path) in report.spool_files.iter().enumerate() {
        let bytes = std::fs::read(path).expect("spool file");
        let (x_fields, processed_bytes) = split_spool_file(&bytes);
        assert_eq!(
            field(&x_fields, "X-SIU-Split"),
            Some(format!("{}/3", i + 1).as_str())
        );
        assert_eq!(
            field(&x_fields, "X-SIU-Original-Message-ID"),
            Some(report.message_id.as_str())
        );
        let processed = parse(processed_bytes);
        let to: Vec<&str> = processed
            .to()
            .expect("To")
            .iter()
            .filter_map(|a| a.address())
            .collect();
        assert_eq!(to, [recipients[i]]);
        let message_id = format!("<{}>", processed.message_id().expect("Message-ID"));
        assert_ne!(message_id, report.message_id);
        message_ids.push(message_id);
        assert!(
            processed
                .body_text(0)
                .expect("text")
                .contains("Alice Archer\r\nSales Manager | Lab Example Ltd")
        );
    }
    message_ids.sort();
    message_ids.dedup();
    assert_eq!(
        message_ids.len(),
        3,
        "each split copy has its own Message-ID"
    );
}

#[tokio::test]
async fn held_original_arrives_on_delivery() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("carol@lab.example".into()),
            hold_original: true,
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(
        report.spool_files.len(),
        1,
        "the spool gets the copy at once"
    );
    assert_eq!(report.original_item, None);
    assert!(items_with_message_id(&lab, "carol@lab.example", &report.message_id).is_empty());

    let held = report.held.expect("the report carries the held original");
    let item = transport::deliver_original(lab.state(), held).expect("delivery succeeds");
    let stored = items_with_message_id(&lab, "carol@lab.example", &report.message_id);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, item);
    assert!(!stored[0].is_draft());
}

#[tokio::test]
async fn distribution_group_sender_gets_no_original() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let before: usize = ["alice@lab.example", "bob@lab.example"]
        .iter()
        .map(|a| sent_items(&lab, a).len())
        .sum();
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("newsletter@lab.example".into()),
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox, None);
    assert!(
        report.notes.iter().any(|n| n.contains("group")),
        "{:?}",
        report.notes
    );
    let after: usize = ["alice@lab.example", "bob@lab.example"]
        .iter()
        .map(|a| sent_items(&lab, a).len())
        .sum();
    assert_eq!(after, before, "no member of the group gets the original");
    let bytes = std::fs::read(&report.spool_files[0]).expect("spool file");
    let (_, processed_bytes) = split_spool_file(&bytes);
    let text = parse(processed_bytes)
        .body_text(0)
        .expect("text")
        .into_owned();
    assert!(
        text.contains("--\r\nNewsletter\r\nLab Example Ltd"),
        "{text}"
    );
}

#[tokio::test]
async fn user_without_mailbox_gets_no_original() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("ivan@lab.example".into()),
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox, None);
    assert!(
        report.notes.iter().any(|n| n.contains("without a mailbox")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.spool_files.len(), 1);
}

#[tokio::test]
async fn send_on_behalf_stores_original_with_delegate() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let eml = b"From: Bob Baker <bob@lab.example>\r\nSender: Alice Archer <alice@lab.example>\r\n\
                To: partner@example.net\r\nSubject: On behalf\r\n\
                Date: Tue, 3 Mar 2026 09:00:00 +0000\r\nMessage-ID: <behalf-1@lab.example>\r\n\
                \r\nSent for Bob.\r\n";
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            eml: Some(eml.to_vec()),
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox.as_deref(), Some("alice@lab.example"));
    assert_eq!(report.message_id, "<behalf-1@lab.example>");
    let stored = items_with_message_id(&lab, "alice@lab.example", "<behalf-1@lab.example>");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].mime, eml, "the original is stored as submitted");
    assert_eq!(
        stored[0].sent.map(|t| t.to_rfc3339()),
        Some("2026-03-03T09:00:00+00:00".to_string())
    );
    assert!(items_with_message_id(&lab, "bob@lab.example", "<behalf-1@lab.example>").is_empty());

    let bytes = std::fs::read(&report.spool_files[0]).expect("spool file");
    let (_, processed_bytes) = split_spool_file(&bytes);
    let text = parse(processed_bytes)
        .body_text(0)
        .expect("text")
        .into_owned();
    assert_eq!(
        text, "Sent for Bob.\r\n--\r\nBob Baker\r\nAccount Executive | Lab Example Ltd\r\n",
        "the signature is the From user's"
    );
}

#[tokio::test]
async fn send_as_names_submitter_in_spool() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("sales@lab.example".into()),
            submitter: Some("bob@lab.example".into()),
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox.as_deref(), Some("bob@lab.example"));
    assert_eq!(
        items_with_message_id(&lab, "bob@lab.example", &report.message_id).len(),
        1
    );
    let bytes = std::fs::read(&report.spool_files[0]).expect("spool file");
    let (x_fields, _) = split_spool_file(&bytes);
    assert_eq!(field(&x_fields, "X-SIU-Submitter"), Some("bob@lab.example"));
    assert_eq!(x_fields[0].0, "X-SIU-Submitter", "X- fields open the file");
}

#[tokio::test]
async fn outside_sender_becomes_default_mailbox() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let eml =
        b"From: \"Doe, Jane\" <jane@example.org>\nSender: agent@example.org\nTo: x@example.net\n\
                Subject: hi\n\nbody\n";
    let report = transport::send(
        lab.state(),
        spool.path(),
        Message {
            eml: Some(eml.to_vec()),
            ..Message::default()
        },
    )
    .expect("send succeeds");

    assert_eq!(report.mailbox.as_deref(), Some("alice@lab.example"));
    let stored = &items_with_message_id(&lab, "alice@lab.example", &report.message_id)[0];
    let text = String::from_utf8(stored.mime.clone()).expect("ascii");
    assert!(
        text.starts_with("From: \"Doe, Jane\" <alice@lab.example>\nTo: x@example.net\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("\nMessage-ID: {}\n\nbody\n", report.message_id)),
        "{text}"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("removed the Sender field"))
    );
}

#[tokio::test]
async fn bytes_without_headers_are_rejected() {
    let lab = lab().await;
    let spool = tempfile::tempdir().expect("temporary spool");
    let result = transport::send(
        lab.state(),
        spool.path(),
        Message {
            eml: Some(Vec::new()),
            ..Message::default()
        },
    );
    assert!(
        matches!(result, Err(TransportError::Unparseable)),
        "{result:?}"
    );
    let result = transport::send(
        lab.state(),
        spool.path(),
        Message {
            from: Some("not an address".into()),
            ..Message::default()
        },
    );
    assert!(
        matches!(
            result,
            Err(TransportError::InvalidAddress { field: "from", .. })
        ),
        "{result:?}"
    );
}
