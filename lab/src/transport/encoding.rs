//! Content-Transfer-Encoding (RFC 2045 section 6): decoding a text part's body to bytes in its
//! charset and encoding it back after the signature is added.
//!
//! Decoding is as lenient as mail-parser's, so that what the transport reads from a broken part
//! is what the update loop and the tests read from it later.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The transfer encoding of a part's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TransferEncoding {
    /// No field, an empty one, `7bit`, `8bit` or `binary`: the body is its own bytes.
    Identity {
        /// Whether the field allows only 7-bit data (no field, empty, or `7bit`).
        seven_bit: bool,
    },
    /// `quoted-printable`.
    QuotedPrintable,
    /// `base64`.
    Base64,
    /// Any other value, such as `x-uuencode` or a misspelling; the body cannot be decoded.
    Unknown(String),
}

impl TransferEncoding {
    /// Reads the value of a Content-Transfer-Encoding field; `None` when the part has none.
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value.map(str::trim) else {
            return TransferEncoding::Identity { seven_bit: true };
        };
        match value.to_ascii_lowercase().as_str() {
            "" | "7bit" => TransferEncoding::Identity { seven_bit: true },
            "8bit" | "binary" => TransferEncoding::Identity { seven_bit: false },
            "quoted-printable" => TransferEncoding::QuotedPrintable,
            "base64" => TransferEncoding::Base64,
            _ => TransferEncoding::Unknown(value.to_string()),
        }
    }
}

/// Decodes quoted-printable text. Trailing whitespace on a line is dropped and `=` at the end
/// of a line joins it to the next, as RFC 2045 requires. An `=` that starts no valid escape is
/// kept as it is. Each hard line break keeps its own form (`\r\n` or `\n`).
pub(crate) fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        let (line, line_break, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && rest[i - 1] == b'\r' => {
                (&rest[..i - 1], &b"\r\n"[..], &rest[i + 1..])
            }
            Some(i) => (&rest[..i], &b"\n"[..], &rest[i + 1..]),
            None => (rest, &b""[..], &b""[..]),
        };
        let trimmed_len = line
            .iter()
            .rposition(|&b| b != b' ' && b != b'\t')
            .map_or(0, |i| i + 1);
        let line = &line[..trimmed_len];
        match line.strip_suffix(b"=") {
            Some(soft) => decode_quoted_printable_line(soft, &mut out),
            None => {
                decode_quoted_printable_line(line, &mut out);
                out.extend_from_slice(line_break);
            }
        }
        rest = next;
    }
    out
}

fn decode_quoted_printable_line(line: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < line.len() {
        if line[i] == b'='
            && let (Some(high), Some(low)) = (
                line.get(i + 1).and_then(|&b| hex_value(b)),
                line.get(i + 2).and_then(|&b| hex_value(b)),
            )
        {
            out.push((high << 4) | low);
            i += 3;
            continue;
        }
        out.push(line[i]);
        i += 1;
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Encodes bytes as quoted-printable with lines of at most 76 characters. `\r\n` and `\n` in
/// the input are hard line breaks and come out as `eol`; a lone `\r` is escaped.
pub(crate) fn encode_quoted_printable(input: &[u8], eol: &[u8]) -> Vec<u8> {
    const MAX_LINE: usize = 76;
    let mut out = Vec::with_capacity(input.len() + input.len() / 8);
    let mut rest = input;
    loop {
        let (line, has_break, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i > 0 && rest[i - 1] == b'\r' => (&rest[..i - 1], true, &rest[i + 1..]),
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &b""[..]),
        };
        let mut width = 0;
        for (i, &b) in line.iter().enumerate() {
            let at_end = i + 1 == line.len();
            let literal = match b {
                b'=' => false,
                b' ' | b'\t' => !at_end,
                33..=126 => true,
                _ => false,
            };
            let token_len = if literal { 1 } else { 3 };
            // Keep room for the `=` of a soft line break, unless this is the line's last token.
            let limit = if at_end { MAX_LINE } else { MAX_LINE - 1 };
            if width + token_len > limit {
                out.push(b'=');
                out.extend_from_slice(eol);
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(format!("={b:02X}").as_bytes());
            }
            width += token_len;
        }
        if has_break {
            out.extend_from_slice(eol);
        }
        rest = next;
        if rest.is_empty() {
            break;
        }
    }
    out
}

/// Decodes base64 that may contain line breaks and other whitespace, with or without padding.
/// Returns `None` for anything else that is not base64.
pub(crate) fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    lenient.decode(compact).ok()
}

/// Encodes bytes as base64 in lines of 76 characters separated by `eol`, without a line break
/// after the last line.
pub(crate) fn encode_base64(input: &[u8], eol: &[u8]) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(input);
    let mut out = Vec::with_capacity(text.len() + text.len() / 76 * eol.len());
    for (i, line) in text.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_encoding_names_are_case_insensitive() {
        assert_eq!(
            TransferEncoding::parse(Some("Quoted-Printable")),
            TransferEncoding::QuotedPrintable
        );
        assert_eq!(
            TransferEncoding::parse(Some(" ")),
            TransferEncoding::Identity { seven_bit: true }
        );
        assert_eq!(
            TransferEncoding::parse(Some("quoted printable")),
            TransferEncoding::Unknown("quoted printable".into())
        );
    }

    #[test]
    fn quoted_printable_decodes_soft_breaks_and_escapes() {
        let decoded = decode_quoted_printable(b"caf=C3=A9 =\r\nau lait  \r\n=3D=zz\r\n");
        assert_eq!(decoded, "café au lait\r\n==zz\r\n".as_bytes());
    }

    #[test]
    fn quoted_printable_round_trips_edge_lines() {
        let text = format!(
            "{} \r\n\tindented\r\n={}\nlast ",
            "x".repeat(200),
            "é".repeat(40)
        );
        let encoded = encode_quoted_printable(text.as_bytes(), b"\r\n");
        for line in encoded.split(|&b| b == b'\n') {
            assert!(
                line.len() <= 77,
                "line too long: {}",
                String::from_utf8_lossy(line)
            );
        }
        let expected = text.replace("\r\n", "\n").replace('\n', "\r\n");
        assert_eq!(decode_quoted_printable(&encoded), expected.as_bytes());
    }

    #[test]
    fn base64_decodes_wrapped_and_unpadded_input() {
        assert_eq!(
            decode_base64(b"aGVs\r\nbG8").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(decode_base64(b"aGVsbG8=\n").as_deref(), Some(&b"hello"[..]));
        assert_eq!(decode_base64(b"a*b"), None);
    }

    #[test]
    fn base64_lines_are_76_characters() {
        let encoded = encode_base64(&[7u8; 200], b"\n");
        let lines: Vec<&[u8]> = encoded.split(|&b| b == b'\n').collect();
        assert_eq!(lines[0].len(), 76);
        assert_eq!(decode_base64(&encoded).as_deref(), Some(&[7u8; 200][..]));
    }
}
