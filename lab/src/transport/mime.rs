//! The rules engine's rewrite: a signature added to every text/plain and text/html body part.
//!
//! Each body part is decoded from its Content-Transfer-Encoding to bytes in its charset, the
//! signature is added in that charset, and the part is encoded again the same way. Only the
//! bodies of those parts change, and their charset or transfer encoding where the signature
//! forces it. Every other byte of the message is copied, attachments and inline images included.
//! A message without a text part gets one, as a rules engine adds its disclaimer: the message
//! becomes the second part of a new multipart/mixed.

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use super::encoding::{self, TransferEncoding};
use super::header::{self, Edits, HeaderBlock};

/// The signature a rules engine adds for one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signature {
    /// The sender's display name.
    pub name: String,
    /// The sender's job title, when the directory has one.
    pub title: Option<String>,
    /// The organization's name.
    pub organization: String,
}

impl Signature {
    /// The last line: `<title> | <organization>`, or the organization alone.
    fn affiliation(&self) -> String {
        match &self.title {
            Some(title) => format!("{title} | {}", self.organization),
            None => self.organization.clone(),
        }
    }

    /// The plain-text signature, `--`, the name and the affiliation on separate lines, without a
    /// line break after the last one.
    pub fn text(&self, eol: &[u8]) -> Vec<u8> {
        [
            b"--".as_slice(),
            self.name.as_bytes(),
            self.affiliation().as_bytes(),
        ]
        .join(eol)
    }

    /// The HTML signature block, without a line break after it.
    pub fn html(&self, eol: &[u8]) -> Vec<u8> {
        let lines = [
            "<div class=\"lab-signature\">".to_string(),
            "<p>--<br>".to_string(),
            format!("{}<br>", escape_html(&self.name)),
            format!("{}</p>", escape_html(&self.affiliation())),
            "</div>".to_string(),
        ];
        lines.map(String::into_bytes).join(eol)
    }

    fn is_ascii(&self) -> bool {
        self.name.is_ascii() && self.affiliation().is_ascii()
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The processed message and what the rewrite did.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    /// The message with the signature.
    pub bytes: Vec<u8>,
    /// How many body parts got the signature (1 when a text part was added).
    pub signed_parts: usize,
    /// Parts left unchanged and why, and a note when a text part was added.
    pub notes: Vec<String>,
}

/// Adds `signature` to every text body part of `raw`, or adds a text part when there is none.
pub(crate) fn add_signature(raw: &[u8], signature: &Signature) -> Signed {
    let Some(message) = MessageParser::default().parse(raw) else {
        return Signed {
            bytes: raw.to_vec(),
            signed_parts: 0,
            notes: vec!["the message has no header fields, so no signature was added".into()],
        };
    };
    let eol = header::line_ending(raw);

    // 1. The body parts: what mail-parser reports as text or HTML body, never an attachment
    //    (a .txt file, a forwarded message and everything inside one stay byte for byte).
    let mut bodies: Vec<u32> = message
        .text_body
        .iter()
        .chain(&message.html_body)
        .copied()
        .filter(|id| !message.attachments.contains(id))
        .collect();
    bodies.sort_unstable();
    bodies.dedup();
    let bodies: Vec<(u32, &MessagePart<'_>)> = bodies
        .into_iter()
        .filter_map(|id| message.parts.get(id as usize).map(|part| (id, part)))
        .filter(|(_, part)| matches!(part.body, PartType::Text(_) | PartType::Html(_)))
        .collect();

    // 2. Parts under multipart/signed or multipart/encrypted stay as they are, because a
    //    signature would invalidate the sender's cryptographic signature. A rules engine wraps
    //    such a message instead.
    let protected = protected_parts(&message.parts);
    let mut notes = Vec::new();
    let bodies: Vec<(u32, &MessagePart<'_>)> = bodies
        .into_iter()
        .filter(|(id, part)| {
            let keep = !protected.contains(id);
            if !keep {
                notes.push(format!(
                    "part {id} ({}) left without a signature: it is inside multipart/signed or \
                     multipart/encrypted, and changing it would break the sender's signature",
                    content_type_name(part)
                ));
            }
            keep
        })
        .collect();

    // 3. A message without a body part that can take the signature gets a text part.
    if bodies.is_empty() {
        notes.push(
            "added a text/plain part with the signature and wrapped the message in \
             multipart/mixed, because no text body part could take it"
                .into(),
        );
        return Signed {
            bytes: wrap_with_text_part(raw, signature, eol),
            signed_parts: 1,
            notes,
        };
    }

    // 4. Every body part that can be decoded gets the signature.
    let mut edits = Edits::default();
    let mut signed_parts = 0;
    for (id, part) in bodies {
        match sign_part(raw, part, signature, eol, &mut edits) {
            Ok(()) => signed_parts += 1,
            Err(reason) => notes.push(format!(
                "part {id} ({}) left without a signature: {reason}",
                content_type_name(part)
            )),
        }
    }
    Signed {
        bytes: edits.apply(raw),
        signed_parts,
        notes,
    }
}

/// The parts below a multipart/signed or multipart/encrypted part.
fn protected_parts(parts: &[MessagePart<'_>]) -> Vec<u32> {
    let mut protected = Vec::new();
    let mut pending: Vec<u32> = Vec::new();
    for part in parts {
        let is_protected = part.content_type().is_some_and(|c| {
            c.ctype().eq_ignore_ascii_case("multipart")
                && c.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("signed") || s.eq_ignore_ascii_case("encrypted")
                })
        });
        if let (true, PartType::Multipart(children)) = (is_protected, &part.body) {
            pending.extend(children);
        }
    }
    while let Some(id) = pending.pop() {
        if protected.contains(&id) {
            continue;
        }
        protected.push(id);
        if let Some(PartType::Multipart(children)) = parts.get(id as usize).map(|p| &p.body) {
            pending.extend(children);
        }
    }
    protected
}

/// `type/subtype` of a part, `text/plain` when it has no Content-Type.
fn content_type_name(part: &MessagePart<'_>) -> String {
    part.content_type()
        .map(|c| match c.subtype() {
            Some(subtype) => format!("{}/{subtype}", c.ctype()),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "text/plain".into())
}

/// Adds the signature to one text/plain or text/html part, as edits of `raw`. Returns why when
/// the part cannot be decoded.
fn sign_part(
    raw: &[u8],
    part: &MessagePart<'_>,
    signature: &Signature,
    message_eol: &[u8],
    edits: &mut Edits,
) -> Result<(), String> {
    if part.is_encoding_problem {
        return Err("mail-parser could not decode its body or find where it ends".into());
    }
    let header_range = part.offset_header as usize..part.offset_body as usize;
    let body_range = part.offset_body as usize..part.offset_end as usize;
    if header_range.start > header_range.end
        || body_range.start > body_range.end
        || body_range.end > raw.len()
    {
        return Err("mail-parser reported offsets outside the message".into());
    }
    let headers = HeaderBlock::parse(raw, header_range);
    let body = &raw[body_range.clone()];

    // 1. Decode the transfer encoding.
    let transfer_encoding = TransferEncoding::parse(
        headers
            .last("Content-Transfer-Encoding")
            .map(|f| f.value.as_str()),
    );
    let decoded = match &transfer_encoding {
        TransferEncoding::Identity { .. } => body.to_vec(),
        TransferEncoding::QuotedPrintable => encoding::decode_quoted_printable(body),
        TransferEncoding::Base64 => {
            encoding::decode_base64(body).ok_or("its base64 body is invalid")?
        }
        TransferEncoding::Unknown(name) => {
            return Err(format!("its Content-Transfer-Encoding `{name}` is unknown"));
        }
    };

    // 2. Add the signature in the part's charset, or convert the part to UTF-8 when the
    //    signature cannot be written in it.
    let content_type = part.content_type();
    let is_html = content_type
        .and_then(|c| c.subtype())
        .is_some_and(|s| s.eq_ignore_ascii_case("html"));
    let charset = content_type
        .and_then(|c| c.attribute("charset"))
        .unwrap_or("us-ascii")
        .to_ascii_lowercase();
    let keeps_charset =
        (signature.is_ascii() && is_ascii_compatible(&charset)) || is_utf8(&charset);
    let (text, converted) = if keeps_charset {
        (decoded, false)
    } else {
        if charset_decoder(charset.as_bytes()).is_none() && !is_ascii_name(&charset) {
            return Err(format!(
                "its charset `{charset}` cannot be converted to UTF-8 for the signature"
            ));
        }
        // mail-parser already converted the text to UTF-8 from the charset.
        let text = match &part.body {
            PartType::Text(text) | PartType::Html(text) => text.as_bytes().to_vec(),
            _ => return Err("mail-parser did not read it as text".into()),
        };
        (text, true)
    };
    let eol = line_ending_in(&text).unwrap_or(message_eol);
    let signed = if is_html {
        insert_html_signature(text, &signature.html(eol), eol)
    } else {
        append(text, &signature.text(eol), eol)
    };

    // 3. Encode it again. A 7-bit part that now contains 8-bit text becomes quoted-printable,
    //    but a 7-bit part that contained 8-bit bytes before (a broken message) stays 7-bit.
    let added_eight_bit = converted || !signature.is_ascii();
    let output_encoding = match transfer_encoding.clone() {
        TransferEncoding::Identity { seven_bit: true } if added_eight_bit && !signed.is_ascii() => {
            TransferEncoding::QuotedPrintable
        }
        other => other,
    };
    let body_eol = line_ending_in(body).unwrap_or(message_eol);
    let encoded = match &output_encoding {
        TransferEncoding::QuotedPrintable => encoding::encode_quoted_printable(&signed, body_eol),
        TransferEncoding::Base64 => {
            let mut encoded = encoding::encode_base64(&signed, body_eol);
            if body.ends_with(b"\n") {
                encoded.extend_from_slice(body_eol);
            }
            encoded
        }
        _ => signed,
    };
    edits.replace(body_range, encoded);

    // 4. Header fields that must follow the new body.
    if output_encoding != transfer_encoding {
        headers.set(
            raw,
            edits,
            "Content-Transfer-Encoding",
            Some(header::field_line(
                "Content-Transfer-Encoding",
                "quoted-printable",
                message_eol,
            )),
        );
    }
    if converted {
        match headers.last("Content-Type") {
            Some(field) => {
                let bytes = header::with_charset(&raw[field.range.clone()], "utf-8");
                edits.replace(field.range.clone(), bytes);
            }
            None => headers.append(
                raw,
                edits,
                header::field_line("Content-Type", "text/plain; charset=utf-8", message_eol),
            ),
        }
    }
    Ok(())
}

/// Appends `signature` on lines of its own. The result ends with a line break exactly when
/// `text` did, so that the part keeps its shape before the next boundary.
fn append(mut text: Vec<u8>, signature: &[u8], eol: &[u8]) -> Vec<u8> {
    let ended = text.ends_with(b"\n");
    if !text.is_empty() && !ended {
        text.extend_from_slice(eol);
    }
    text.extend_from_slice(signature);
    if ended {
        text.extend_from_slice(eol);
    }
    text
}

/// Inserts the HTML block and a line break just before the last `</body>`, or before `</html>`
/// when there is no body element. Without either, appends it as plain text is appended.
fn insert_html_signature(html: Vec<u8>, block: &[u8], eol: &[u8]) -> Vec<u8> {
    let position = header::rfind_ignore_case(&html, b"</body")
        .or_else(|| header::rfind_ignore_case(&html, b"</html"));
    let Some(position) = position else {
        return append(html, block, eol);
    };
    let mut out = Vec::with_capacity(html.len() + block.len() + eol.len());
    out.extend_from_slice(&html[..position]);
    out.extend_from_slice(block);
    out.extend_from_slice(eol);
    out.extend_from_slice(&html[position..]);
    out
}

/// The first line break in `bytes`, when there is one.
fn line_ending_in(bytes: &[u8]) -> Option<&'static [u8]> {
    bytes.contains(&b'\n').then(|| header::line_ending(bytes))
}

/// Wraps a message that has no text part in multipart/mixed, after a new text/plain part that
/// contains the signature. The message's Content-* fields move to the wrapped part with its
/// body, and every other field stays on the message.
fn wrap_with_text_part(raw: &[u8], signature: &Signature, eol: &[u8]) -> Vec<u8> {
    let headers = HeaderBlock::parse(raw, 0..raw.len());
    let body_start = raw[headers.end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| headers.end + i + 1);
    let body = &raw[body_start..];
    let boundary = format!("siu-{}", uuid::Uuid::new_v4().simple());
    let is_content_field =
        |f: &header::Field| f.name.len() > 8 && f.name[..8].eq_ignore_ascii_case("content-");

    let mut out = Vec::with_capacity(raw.len() + 512);
    for field in headers.fields.iter().filter(|f| !is_content_field(f)) {
        out.extend_from_slice(&raw[field.range.clone()]);
        if !field.ends_with_line_break(raw) {
            out.extend_from_slice(eol);
        }
    }
    if headers.last("MIME-Version").is_none() {
        out.extend_from_slice(&header::field_line("MIME-Version", "1.0", eol));
    }
    out.extend_from_slice(&header::field_line(
        "Content-Type",
        &format!("multipart/mixed; boundary=\"{boundary}\""),
        eol,
    ));
    out.extend_from_slice(eol);

    // The added text part.
    let text = signature.text(eol);
    out.extend_from_slice(format!("--{boundary}").as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&header::field_line(
        "Content-Type",
        "text/plain; charset=utf-8",
        eol,
    ));
    if text.is_ascii() {
        out.extend_from_slice(&header::field_line(
            "Content-Transfer-Encoding",
            "7bit",
            eol,
        ));
        out.extend_from_slice(eol);
        out.extend_from_slice(&text);
    } else {
        out.extend_from_slice(&header::field_line(
            "Content-Transfer-Encoding",
            "quoted-printable",
            eol,
        ));
        out.extend_from_slice(eol);
        out.extend_from_slice(&encoding::encode_quoted_printable(&text, eol));
    }
    out.extend_from_slice(eol);

    // The original content, with its own Content-* fields.
    out.extend_from_slice(format!("--{boundary}").as_bytes());
    out.extend_from_slice(eol);
    for field in headers.fields.iter().filter(|f| is_content_field(f)) {
        out.extend_from_slice(&raw[field.range.clone()]);
        if !field.ends_with_line_break(raw) {
            out.extend_from_slice(eol);
        }
    }
    out.extend_from_slice(eol);
    out.extend_from_slice(body);
    // The line break before a boundary belongs to the boundary, so the body keeps its bytes.
    out.extend_from_slice(eol);
    out.extend_from_slice(format!("--{boundary}--").as_bytes());
    out.extend_from_slice(eol);
    out
}

fn is_utf8(charset: &str) -> bool {
    matches!(charset, "utf-8" | "utf8")
}

fn is_ascii_name(charset: &str) -> bool {
    matches!(charset, "us-ascii" | "ascii" | "utf-8" | "utf8")
}

/// Whether ASCII text written into this charset keeps its bytes, so that the signature can be
/// appended without converting the part.
// NOTE: only the Unicode encodings and the common EBCDIC code pages count as incompatible. Any
// other charset is treated as ASCII-compatible, as nearly every charset used in mail is.
fn is_ascii_compatible(charset: &str) -> bool {
    const UNICODE: [&str; 6] = ["utf-16", "utf-32", "ucs-2", "ucs-4", "utf-7", "unicode"];
    const EBCDIC: [&str; 6] = ["cp037", "cp500", "cp875", "cp1026", "ibm037", "ibm500"];
    let unicode = UNICODE.iter().any(|prefix| charset.starts_with(prefix));
    let ebcdic = charset.contains("ebcdic") || EBCDIC.contains(&charset);
    !unicode && !ebcdic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(name: &str) -> Signature {
        Signature {
            name: name.into(),
            title: Some("Sales Manager".into()),
            organization: "Lab Example Ltd".into(),
        }
    }

    fn text_of(raw: &[u8], index: usize) -> String {
        let message = MessageParser::default().parse(raw).expect("parses");
        message.body_text(index).expect("text body").into_owned()
    }

    #[test]
    fn plain_message_gets_signature_lines() {
        let raw = b"From: a@x\r\nSubject: s\r\n\r\nHello\r\n";
        let signed = add_signature(raw, &signature("Alice Archer"));
        assert_eq!(signed.signed_parts, 1);
        assert_eq!(
            signed.bytes,
            b"From: a@x\r\nSubject: s\r\n\r\nHello\r\n--\r\nAlice Archer\r\nSales Manager | Lab Example Ltd\r\n"
        );
    }

    #[test]
    fn quoted_printable_part_is_reencoded() {
        let raw = b"From: a@x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
                    Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 =\r\nnoir\r\n";
        let signed = add_signature(raw, &signature("Alice Archer"));
        let text = text_of(&signed.bytes, 0);
        assert_eq!(
            text,
            "café noir\r\n--\r\nAlice Archer\r\nSales Manager | Lab Example Ltd\r\n"
        );
        assert!(signed.bytes.ends_with(b"Lab Example Ltd\r\n"));
    }

    #[test]
    fn html_signature_goes_before_body_end() {
        let raw = b"From: a@x\nContent-Type: text/html\n\n<html><body><p>Hi</p></BODY></html>\n";
        let signed = add_signature(raw, &signature("Alice & Co"));
        let html = String::from_utf8(signed.bytes).expect("ascii");
        assert!(
            html.ends_with(
                "<p>Hi</p><div class=\"lab-signature\">\n<p>--<br>\nAlice &amp; Co<br>\n\
                 Sales Manager | Lab Example Ltd</p>\n</div>\n</BODY></html>\n"
            ),
            "{html}"
        );
    }

    #[test]
    fn base64_part_keeps_its_line_structure() {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode("Hello\n");
        let raw = format!(
            "From: a@x\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {body}\r\n--b--\r\n"
        );
        let signed = add_signature(raw.as_bytes(), &signature("Alice"));
        assert_eq!(
            text_of(&signed.bytes, 0),
            "Hello\n--\nAlice\nSales Manager | Lab Example Ltd\n"
        );
        let text = String::from_utf8(signed.bytes).expect("ascii");
        assert!(text.ends_with("\r\n--b--\r\n"), "{text}");
    }

    #[test]
    fn non_ascii_signature_converts_latin1_part() {
        let raw = b"From: a@x\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n";
        let signed = add_signature(raw, &signature("Zoë Zahn"));
        let text = String::from_utf8_lossy(&signed.bytes).into_owned();
        assert!(text.contains("charset=utf-8"), "{text}");
        assert!(
            text.contains("Content-Transfer-Encoding: quoted-printable"),
            "{text}"
        );
        assert_eq!(
            text_of(&signed.bytes, 0),
            "café\r\n--\r\nZoë Zahn\r\nSales Manager | Lab Example Ltd\r\n"
        );
    }

    #[test]
    fn attachment_only_message_is_wrapped() {
        let raw = b"From: a@x\r\nSubject: s\r\nContent-Type: application/pdf\r\n\
                    Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n";
        let signed = add_signature(raw, &signature("Alice"));
        let message = MessageParser::default()
            .parse(&signed.bytes)
            .expect("parses");
        assert_eq!(
            message.body_text(0).as_deref(),
            Some("--\r\nAlice\r\nSales Manager | Lab Example Ltd")
        );
        let attachment = message.attachment(0).expect("the pdf stays an attachment");
        assert_eq!(attachment.contents(), b"%PDF-");
        assert_eq!(message.subject(), Some("s"));
    }

    #[test]
    fn signed_message_is_wrapped_not_changed() {
        let raw = b"From: a@x\r\nContent-Type: multipart/signed; boundary=s; protocol=\"application/pgp-signature\"\r\n\r\n\
                    --s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\n\
                    Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--s--\r\n";
        let signed = add_signature(raw, &signature("Alice"));
        let text = String::from_utf8(signed.bytes.clone()).expect("ascii");
        assert!(
            text.contains("\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--s\r\n"),
            "{text}"
        );
        assert_eq!(
            text_of(&signed.bytes, 0),
            "--\r\nAlice\r\nSales Manager | Lab Example Ltd"
        );
        assert!(
            signed.notes[0].contains("multipart/signed"),
            "{:?}",
            signed.notes
        );
    }

    #[test]
    fn unknown_transfer_encoding_is_reported() {
        let raw = b"From: a@x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n";
        let signed = add_signature(raw, &signature("Alice"));
        assert_eq!(signed.bytes, raw);
        assert_eq!(signed.signed_parts, 0);
        assert!(signed.notes[0].contains("x-uuencode"), "{:?}", signed.notes);
    }
}
