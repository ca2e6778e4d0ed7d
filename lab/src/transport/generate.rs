//! Generated messages, for sends without an .eml file: a text and an HTML alternative, and
//! optionally an inline image that the HTML shows through a `cid:` reference, shaped as a
//! desktop mail client writes them.

use chrono::{DateTime, Utc};

use super::encoding;
use super::header::{self, field_line};

/// An 8x8 blue PNG, the inline image of generated messages.
const LOGO_PNG: [u8; 74] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x00, 0x00, 0x00, 0x4b, 0x6d, 0x29,
    0xdc, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x90, 0x8f, 0x5f, 0x8f,
    0x15, 0x31, 0x0c, 0x2d, 0x09, 0x00, 0x43, 0x7b, 0x4b, 0x41, 0xed, 0x3d, 0xdd, 0xdc, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The content of a generated message.
#[derive(Debug, Clone)]
pub(crate) struct Content<'a> {
    /// The From mailbox, formatted.
    pub from: &'a str,
    /// The Sender mailbox for Send on Behalf.
    pub sender: Option<&'a str>,
    /// Recipient addresses.
    pub to: &'a [String],
    /// Subject.
    pub subject: &'a str,
    /// Message-ID, angle brackets included.
    pub message_id: &'a str,
    /// Date.
    pub date: DateTime<Utc>,
    /// Whether the HTML shows an inline image.
    pub inline_image: bool,
    /// The mail domain, for the image's Content-ID.
    pub domain: &'a str,
}

/// Builds the message with CRLF line breaks.
pub(crate) fn message(content: &Content<'_>) -> Vec<u8> {
    let eol = b"\r\n";
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let alternative = format!("alt-{unique}");
    let related = format!("rel-{unique}");
    let image_id = format!("logo-{unique}@{}", content.domain);

    let mut out = Vec::new();
    out.extend_from_slice(&field_line("From", content.from, eol));
    if let Some(sender) = content.sender {
        out.extend_from_slice(&field_line("Sender", sender, eol));
    }
    out.extend_from_slice(&field_line("To", &content.to.join(", "), eol));
    out.extend_from_slice(&field_line("Subject", &subject(content.subject), eol));
    out.extend_from_slice(&field_line("Date", &content.date.to_rfc2822(), eol));
    out.extend_from_slice(&field_line("Message-ID", content.message_id, eol));
    out.extend_from_slice(&field_line("MIME-Version", "1.0", eol));
    out.extend_from_slice(&field_line(
        "Content-Type",
        &format!("multipart/alternative; boundary=\"{alternative}\""),
        eol,
    ));
    out.extend_from_slice(eol);

    // 1. The plain-text alternative.
    let text = "Hello,\r\n\r\nthis message went through the lab's transport simulator.\r\n\
                Kind regards\r\n";
    part_start(&mut out, &alternative);
    out.extend_from_slice(&field_line(
        "Content-Type",
        "text/plain; charset=utf-8",
        eol,
    ));
    out.extend_from_slice(&field_line(
        "Content-Transfer-Encoding",
        "quoted-printable",
        eol,
    ));
    out.extend_from_slice(eol);
    out.extend_from_slice(&encoding::encode_quoted_printable(text.as_bytes(), eol));

    // 2. The HTML alternative, inside multipart/related with the image when there is one.
    part_start(&mut out, &alternative);
    if content.inline_image {
        out.extend_from_slice(&field_line(
            "Content-Type",
            &format!("multipart/related; type=\"text/html\"; boundary=\"{related}\""),
            eol,
        ));
        out.extend_from_slice(eol);
        part_start(&mut out, &related);
    }
    let image = if content.inline_image {
        format!(
            "<p><img src=\"cid:{image_id}\" alt=\"Lab Example\" width=\"8\" height=\"8\"></p>\r\n"
        )
    } else {
        String::new()
    };
    let html = format!(
        "<html>\r\n<head><meta charset=\"utf-8\"></head>\r\n<body>\r\n<p>Hello,</p>\r\n\
         <p>this message went through the lab&#8217;s transport simulator.</p>\r\n{image}\
         <p>Kind regards</p>\r\n</body>\r\n</html>\r\n"
    );
    out.extend_from_slice(&field_line("Content-Type", "text/html; charset=utf-8", eol));
    out.extend_from_slice(&field_line(
        "Content-Transfer-Encoding",
        "quoted-printable",
        eol,
    ));
    out.extend_from_slice(eol);
    out.extend_from_slice(&encoding::encode_quoted_printable(html.as_bytes(), eol));
    if content.inline_image {
        part_start(&mut out, &related);
        out.extend_from_slice(&field_line(
            "Content-Type",
            "image/png; name=\"logo.png\"",
            eol,
        ));
        out.extend_from_slice(&field_line("Content-Transfer-Encoding", "base64", eol));
        out.extend_from_slice(&field_line("Content-ID", &format!("<{image_id}>"), eol));
        out.extend_from_slice(&field_line(
            "Content-Disposition",
            "inline; filename=\"logo.png\"",
            eol,
        ));
        out.extend_from_slice(eol);
        out.extend_from_slice(&encoding::encode_base64(&LOGO_PNG, eol));
        out.extend_from_slice(eol);
        part_end(&mut out, &related);
    }
    part_end(&mut out, &alternative);
    out
}

/// Formats the Subject value: as given when it is printable ASCII, else as RFC 2047 encoded
/// words.
fn subject(text: &str) -> String {
    let one_line: String = text.chars().filter(|c| !c.is_control()).collect();
    if one_line.is_ascii() {
        one_line
    } else {
        header::encoded_words(&one_line)
    }
}

fn part_start(out: &mut Vec<u8>, boundary: &str) {
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
}

fn part_end(out: &mut Vec<u8>, boundary: &str) {
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use mail_parser::{MessageParser, MimeHeaders};

    use super::*;

    #[test]
    fn generated_message_has_both_alternatives_and_image() {
        let to = vec!["partner@example.net".to_string()];
        let raw = message(&Content {
            from: "Alice Archer <alice@lab.example>",
            sender: None,
            to: &to,
            subject: "Quarterly figures",
            message_id: "<m1@lab.example>",
            date: Utc::now(),
            inline_image: true,
            domain: "lab.example",
        });
        let message = MessageParser::default().parse(&raw).expect("parses");
        assert_eq!(message.subject(), Some("Quarterly figures"));
        assert_eq!(message.message_id(), Some("m1@lab.example"));
        assert!(
            message
                .body_text(0)
                .expect("text")
                .contains("transport simulator")
        );
        let html = message.body_html(0).expect("html");
        assert!(html.contains("cid:logo-"), "{html}");
        let image = message
            .parts
            .iter()
            .find(|p| p.content_type().is_some_and(|c| c.ctype() == "image"))
            .expect("inline image part");
        assert_eq!(image.contents(), LOGO_PNG);
        assert!(image.content_id().is_some());
    }
}
