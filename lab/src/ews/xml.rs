//! A small XML element tree for SOAP requests, and the escaping that responses need.
//!
//! Requests are read by local names only: clients choose their own namespace prefixes
//! (`s:`/`soap:`/`soapenv:`, `m:`, `t:`), and EWS element names do not collide across its
//! namespaces. The parser rejects what WCF rejects before an operation runs: malformed XML,
//! document type declarations and entities other than the five predefined ones. Nesting and
//! the number of elements are bounded, so that a hostile request can exhaust neither the stack
//! nor memory, and the work to parse a document grows linearly with its length.

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

/// Deepest element nesting accepted; EWS requests nest about 12 levels deep.
const MAX_DEPTH: usize = 64;

/// Maximum number of elements in one document. An element takes at least 112 bytes of tree
/// plus its name, so a 64 MiB body of 16 million empty elements would need several GB.
// NOTE: this is the lab's own bound, not one Exchange documents. A CreateItem of 1,000 items
// with 50 elements each stays well below it.
const MAX_ELEMENTS: usize = 100_000;

/// One element: its local name, attributes by local name, children and text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Element {
    /// Local name, without the namespace prefix.
    pub name: String,
    /// Attributes by local name, in document order; `xmlns` declarations are left out.
    pub attributes: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// The element's text with entities resolved; whitespace between child elements included.
    pub text: String,
    /// 1-based line of the start tag, for schema validation messages.
    pub line: usize,
    /// 1-based column of the start tag.
    pub column: usize,
}

/// A well-formedness error in a request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, position {column}: {message}")]
pub struct XmlError {
    /// 1-based line where parsing stopped.
    pub line: usize,
    /// 1-based column where parsing stopped.
    pub column: usize,
    /// The description of the problem.
    pub message: String,
}

impl Element {
    /// Returns the first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Returns every child with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Returns the value of an attribute by local name.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Returns the trimmed text of the first child with this local name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// Follows a path of local names through first children.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names
            .iter()
            .try_fold(self, |element, name| element.child(name))
    }
}

/// Parses a document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    parse_with(text, &mut Positions::new(text))
}

fn parse_with(text: &str, positions: &mut Positions<'_>) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| positions.error(reader.error_position(), e.to_string()))?;
        if matches!(event, Event::Start(_) | Event::Empty(_)) {
            elements += 1;
            if elements > MAX_ELEMENTS {
                return Err(positions.error(
                    position,
                    format!("the document has more than {MAX_ELEMENTS} elements"),
                ));
            }
        }
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(positions.error(position, "content after the root element"));
                }
                if stack.len() == MAX_DEPTH {
                    return Err(positions.error(
                        position,
                        format!("elements nest deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(element_from(positions, position, &start)?);
            }
            Event::Empty(start) => {
                let element = element_from(positions, position, &start)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => {
                        return Err(positions.error(position, "content after the root element"));
                    }
                }
            }
            Event::End(_) => {
                let element = stack.pop().expect("quick-xml checks that end tags match");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(content) => {
                let content = content.xml10_content();
                push_text(positions, position, &mut stack, &content)?;
            }
            Event::CData(content) => {
                let content = content.into_inner();
                push_text(positions, position, &mut stack, &content)?;
            }
            Event::GeneralRef(reference) => {
                let resolved: Cow<'_, str> = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Cow::Owned(c.to_string()),
                    Ok(None) => match &*reference {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(positions.error(
                                position,
                                format!("reference to undeclared entity `{other}`"),
                            ));
                        }
                    },
                    Err(e) => return Err(positions.error(position, e.to_string())),
                };
                push_text(positions, position, &mut stack, &resolved)?;
            }
            Event::DocType(_) => {
                return Err(positions.error(position, "document type declarations are not allowed"));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(positions.error(text.len() as u64, "unexpected end of document"));
    }
    root.ok_or_else(|| positions.error(0, "the document has no root element"))
}

fn push_text(
    positions: &mut Positions<'_>,
    position: u64,
    stack: &mut [Element],
    content: &str,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None => Err(positions.error(position, "text outside the root element")),
    }
}

fn element_from(
    positions: &mut Positions<'_>,
    position: u64,
    start: &BytesStart<'_>,
) -> Result<Element, XmlError> {
    let name = start.local_name().as_ref().to_string();
    let (line, column) = positions.line_and_column(position);
    let mut element = Element {
        name,
        line,
        column,
        ..Element::default()
    };
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| positions.error(position, e.to_string()))?;
        let key = attribute.key;
        let is_namespace =
            key.as_ref() == "xmlns" || key.prefix().is_some_and(|p| p.as_ref() == "xmlns");
        if is_namespace {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| positions.error(position, e.to_string()))?;
        let local = key.local_name().as_ref().to_string();
        element.attributes.push((local, value.into_owned()));
    }
    Ok(element)
}

/// Converts byte offsets of a document into 1-based lines and columns (columns count bytes).
///
/// The parser requests offsets in increasing order, so the scan resumes where the last one
/// stopped and reads each byte once. An earlier offset, which only an error requests, scans
/// again from the start.
struct Positions<'a> {
    source: &'a [u8],
    /// The offset of the last lookup.
    offset: usize,
    /// The line at `offset`.
    line: usize,
    /// The offset where that line starts.
    line_start: usize,
    /// Bytes examined in total.
    scanned: usize,
}

impl<'a> Positions<'a> {
    fn new(source: &'a str) -> Self {
        Self {
            source: source.as_bytes(),
            offset: 0,
            line: 1,
            line_start: 0,
            scanned: 0,
        }
    }

    fn line_and_column(&mut self, position: u64) -> (usize, usize) {
        let target = usize::try_from(position)
            .unwrap_or(usize::MAX)
            .min(self.source.len());
        if target < self.offset {
            self.offset = 0;
            self.line = 1;
            self.line_start = 0;
        }
        for (index, byte) in self.source[self.offset..target].iter().enumerate() {
            if *byte == b'\n' {
                self.line += 1;
                self.line_start = self.offset + index + 1;
            }
        }
        self.scanned += target - self.offset;
        self.offset = target;
        (self.line, target - self.line_start + 1)
    }

    fn error(&mut self, position: u64, message: impl Into<String>) -> XmlError {
        let (line, column) = self.line_and_column(position);
        XmlError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Escapes text for an element's content or a double-quoted attribute value.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['<', '>', '&', '"', '\'']) && !text.chars().any(is_restricted) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters that XML 1.0 cannot carry at all are dropped rather than sent.
            c if is_restricted(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Returns whether XML 1.0 forbids this character in a document.
fn is_restricted(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}')
}

/// Appends `<prefix:name>text</prefix:name>` with the text escaped.
pub fn text_element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_ignore_prefixes() {
        let root = parse(
            r#"<soap:Envelope xmlns:soap="urn:s" xmlns:x="urn:x"><soap:Body><x:Op A="1" x:B="2"/></soap:Body></soap:Envelope>"#,
        )
        .expect("parses");
        let op = root.path(&["Body", "Op"]).expect("Body/Op");
        assert_eq!(op.attribute("A"), Some("1"));
        assert_eq!(op.attribute("B"), Some("2"));
    }

    #[test]
    fn entities_resolve_in_text_and_attributes() {
        let root =
            parse(r#"<a v="&lt;x&gt;">&lt;abc@lab.example&gt; &#x41;&amp;</a>"#).expect("parses");
        assert_eq!(root.attribute("v"), Some("<x>"));
        assert_eq!(root.text, "<abc@lab.example> A&");
    }

    #[test]
    fn doctype_is_rejected() {
        let error = parse(r#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#).unwrap_err();
        assert!(error.message.contains("document type"), "{error}");
    }

    #[test]
    fn undeclared_entity_is_rejected() {
        let error = parse("<a>&nbsp;</a>").unwrap_err();
        assert!(error.message.contains("nbsp"), "{error}");
    }

    #[test]
    fn mismatched_end_tag_is_rejected() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a/><b/>").is_err());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        let error = parse(&deep).unwrap_err();
        assert!(error.message.contains("deeper"), "{error}");
    }

    #[test]
    fn positions_count_lines_and_byte_columns() {
        let error = parse("<a>\n  <b>\n  </c></a>").unwrap_err();
        assert_eq!((error.line, error.column), (3, 3), "{error}");
        let root = parse("<a>\n<b/><c/>\n  <d/></a>").expect("parses");
        let columns: Vec<(usize, usize)> =
            root.children.iter().map(|c| (c.line, c.column)).collect();
        assert_eq!(columns, [(2, 1), (2, 5), (3, 3)]);
    }

    #[test]
    fn wide_document_is_scanned_once() {
        let wide = format!("<a>{}</a>", "<b/>\n".repeat(20_000));
        let mut positions = Positions::new(&wide);
        let root = parse_with(&wide, &mut positions).expect("parses");
        assert_eq!(root.children.len(), 20_000);
        assert_eq!(root.children[19_999].line, 20_000);
        assert!(
            positions.scanned <= wide.len(),
            "scanned {} bytes of a {}-byte document",
            positions.scanned,
            wide.len()
        );
    }

    #[test]
    fn element_count_is_bounded() {
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS));
        let error = parse(&wide).unwrap_err();
        assert!(error.message.contains("more than"), "{error}");
        let within = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS - 1));
        assert!(parse(&within).is_ok());
    }

    #[test]
    fn escape_covers_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(escape("x\u{1}y"), "xy");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
    }
}
