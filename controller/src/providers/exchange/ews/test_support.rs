//! Test helpers: XML normalization and validation against the Exchange 2016 EWS schema.
//!
//! The schema is not part of this repository. Validation looks for it in
//! `shared/reference/ews-schema/` beside the repository and skips, with a printed message,
//! when that folder is absent. It needs `xmllint` (Debian package `libxml2-utils`).

use std::path::PathBuf;
use std::process::Command;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, Writer};

/// Rewrites `xml` without the whitespace between elements and between attributes, so
/// that an indented expected document compares equal to the serializer's one-line output.
pub(crate) fn minify_xml(xml: &str) -> String {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut writer = Writer::new(Vec::new());
    loop {
        let event = match reader.read_event().expect("test XML should be well-formed") {
            Event::Eof => break,
            Event::Start(element) => Event::Start(normalize_attributes(&element)),
            Event::Empty(element) => Event::Empty(normalize_attributes(&element)),
            event => event,
        };
        writer
            .write_event(event)
            .expect("writing to a Vec cannot fail");
    }
    String::from_utf8(writer.into_inner()).expect("the input was UTF-8")
}

fn normalize_attributes(element: &BytesStart<'_>) -> BytesStart<'static> {
    let mut normalized = BytesStart::new(element.name().into_inner().to_owned());
    for attribute in element.attributes() {
        normalized.push_attribute(attribute.expect("test XML attributes should be well-formed"));
    }
    normalized
}

fn schema_dir() -> PathBuf {
    // controller/ → the repository → its parent, where `shared/` sits.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/ews-schema")
}

/// Validates a whole SOAP envelope against the EWS schema and checks that the Body's
/// first child is an element that `messages.xsd` declares, because the envelope schema
/// accepts any element in the Body. Skips with a message when the schema is absent.
pub(crate) fn assert_valid_request(xml: &str) {
    let dir = schema_dir();
    let wrapper = dir.join("soap-ews-wrapper.xsd");
    if !wrapper.is_file() {
        println!(
            "skipping EWS schema validation: {} not found",
            wrapper.display()
        );
        return;
    }

    let file = tempfile::Builder::new()
        .suffix(".xml")
        .tempfile()
        .expect("a temporary file should be creatable");
    std::fs::write(file.path(), xml).expect("the temporary file should be writable");

    let output = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&wrapper)
        .arg(file.path())
        .output()
        .unwrap_or_else(|error| {
            panic!("failed to run xmllint ({error}): install it with `apt-get install -y libxml2-utils`")
        });
    assert!(
        output.status.success(),
        "the XML should validate against the EWS schema:\n{}\n{xml}",
        String::from_utf8_lossy(&output.stderr)
    );

    let operation = first_body_child(xml).expect("the envelope should have a Body with a child");
    let messages =
        std::fs::read_to_string(dir.join("messages.xsd")).expect("messages.xsd should be readable");
    assert!(
        messages.contains(&format!("<xs:element name=\"{operation}\"")),
        "the Body's element {operation} should be declared in messages.xsd"
    );
}

/// Returns the local name of the first element inside the SOAP Body.
fn first_body_child(xml: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    let mut in_body = false;
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) | Event::Empty(element) => {
                let name = element.local_name().into_inner().to_owned();
                if in_body {
                    return Some(name);
                }
                in_body = name == "Body";
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[test]
fn minify_removes_indentation_only() {
    let minified = minify_xml("<a>\n  <b x=\"1\">text here</b>\n  <c/>\n</a>");
    assert_eq!(minified, r#"<a><b x="1">text here</b><c/></a>"#);
}

#[test]
fn first_body_child_skips_header() {
    let xml = r#"<s:Envelope xmlns:s="x"><s:Header><t:H/></s:Header><s:Body><m:FindItem/></s:Body></s:Envelope>"#;
    assert_eq!(first_body_child(xml).as_deref(), Some("FindItem"));
}
