//! Header blocks of messages and MIME parts, read and edited as bytes.
//!
//! The transport changes a handful of fields (From, To, Message-ID, the X- headers of the spool
//! contract, a part's Content-Type charset or Content-Transfer-Encoding). Editing byte ranges
//! instead of re-serializing a parsed message keeps every other field with its exact spelling,
//! folding, order and line endings, including fields that no parser would reproduce.

use std::ops::Range;

/// One header field as it sits in the message.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    /// Byte range in the message: the name, the value, continuation lines and the line break.
    pub range: Range<usize>,
    /// Field name as written, without the colon; empty for a line that has no colon.
    pub name: String,
    /// Unfolded value without surrounding whitespace, decoded lossily as UTF-8.
    pub value: String,
}

impl Field {
    /// Whether the field has this name, compared case-insensitively as RFC 5322 requires.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether the field's bytes end with a line break.
    pub fn ends_with_line_break(&self, raw: &[u8]) -> bool {
        raw[self.range.clone()].last() == Some(&b'\n')
    }
}

/// The fields of a header block and where the block ends.
#[derive(Debug, Clone)]
pub(crate) struct HeaderBlock {
    /// Fields in message order.
    pub fields: Vec<Field>,
    /// Offset just after the last field, where the empty line (if any) starts.
    pub end: usize,
}

impl HeaderBlock {
    /// Splits the header block that starts at `range.start` into fields. The block ends at the
    /// first empty line or at `range.end`, whichever comes first.
    pub fn parse(raw: &[u8], range: Range<usize>) -> Self {
        let mut fields: Vec<Field> = Vec::new();
        let mut position = range.start;
        while position < range.end {
            let line_end = raw[position..range.end]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(range.end, |i| position + i + 1);
            let line = &raw[position..line_end];
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            let continues = matches!(line.first(), Some(b' ' | b'\t'));
            match fields.last_mut() {
                Some(field) if continues => field.range.end = line_end,
                _ => fields.push(Field {
                    range: position..line_end,
                    name: String::new(),
                    value: String::new(),
                }),
            }
            position = line_end;
        }
        for field in &mut fields {
            let bytes = &raw[field.range.clone()];
            match bytes.iter().position(|&b| b == b':') {
                Some(colon) => {
                    field.name = String::from_utf8_lossy(&bytes[..colon]).trim().to_string();
                    field.value = unfold(&bytes[colon + 1..]);
                }
                None => field.value = unfold(bytes),
            }
        }
        Self {
            fields,
            end: position,
        }
    }

    /// The fields with this name, in message order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Field> + 'a {
        self.fields.iter().filter(move |f| f.is(name))
    }

    /// The last field with this name: the one mail-parser reports when a field repeats.
    pub fn last(&self, name: &str) -> Option<&Field> {
        self.fields.iter().rev().find(|f| f.is(name))
    }

    /// Sets a field: the first field with this name becomes `line`, any repeats are removed, and
    /// without such a field `line` is added at the end of the block. `line` includes its line
    /// break. `None` removes every field with this name.
    pub fn set(&self, raw: &[u8], edits: &mut Edits, name: &str, line: Option<Vec<u8>>) {
        let mut existing = self.all(name);
        match (existing.next(), line) {
            (Some(first), Some(line)) => edits.replace(first.range.clone(), line),
            (Some(first), None) => edits.replace(first.range.clone(), Vec::new()),
            (None, Some(line)) => self.append(raw, edits, line),
            (None, None) => {}
        }
        for repeat in existing {
            edits.replace(repeat.range.clone(), Vec::new());
        }
    }

    /// Adds a field at the end of the block.
    pub fn append(&self, raw: &[u8], edits: &mut Edits, line: Vec<u8>) {
        let mut bytes = Vec::new();
        // A block that ends without a line break (a message of header fields only) needs one
        // before the new field.
        if self
            .fields
            .last()
            .is_some_and(|f| !f.ends_with_line_break(raw))
        {
            bytes.extend_from_slice(line_ending(raw));
        }
        bytes.extend_from_slice(&line);
        edits.insert(self.end, bytes);
    }
}

/// Joins continuation lines and trims the value.
fn unfold(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let unfolded: String = text.chars().filter(|&c| c != '\r' && c != '\n').collect();
    unfolded.trim().to_string()
}

/// The line break the message uses, taken from its first line: `\r\n`, or `\n` for messages
/// stored with bare line feeds. A message without any line break gets `\r\n`.
pub(crate) fn line_ending(raw: &[u8]) -> &'static [u8] {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i == 0 || raw[i - 1] != b'\r' => b"\n",
        _ => b"\r\n",
    }
}

/// Renders one header field with its line break. Address lists longer than a line are folded
/// after their commas, so that no line grows past 78 characters where that is possible.
pub(crate) fn field_line(name: &str, value: &str, eol: &[u8]) -> Vec<u8> {
    let mut line = format!("{name}: ").into_bytes();
    let mut width = line.len();
    let items: Vec<&str> = value.split(", ").collect();
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let piece = if last {
            item.to_string()
        } else {
            format!("{item},")
        };
        if i > 0 {
            if width + 1 + piece.len() > 78 {
                line.extend_from_slice(eol);
                line.push(b' ');
                width = 1;
            } else {
                line.push(b' ');
                width += 1;
            }
        }
        line.extend_from_slice(piece.as_bytes());
        width += piece.len();
    }
    line.extend_from_slice(eol);
    line
}

/// Formats a mailbox (`Name <address>`), quoting or RFC 2047-encoding the display name as
/// needed. Without a display name, the bare address.
pub(crate) fn mailbox(name: Option<&str>, address: &str) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => address.to_string(),
        Some(name) => format!("{} <{address}>", display_name(name)),
    }
}

/// A display name as an atom sequence, a quoted string, or encoded words for non-ASCII text.
pub(crate) fn display_name(name: &str) -> String {
    let is_atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~ ".contains(c);
    if name.chars().all(is_atext) {
        name.to_string()
    } else if name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        encoded_words(name)
    }
}

/// Encodes text as RFC 2047 `B` encoded words of UTF-8, each at most 75 characters long.
pub(crate) fn encoded_words(text: &str) -> String {
    use base64::Engine;
    // 45 bytes of UTF-8 encode to 60 base64 characters, plus 12 for `=?utf-8?B?` and `?=`.
    const MAX_CHUNK: usize = 45;
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > MAX_CHUNK {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Byte-range replacements on one buffer, applied together.
#[derive(Debug, Default)]
pub(crate) struct Edits {
    edits: Vec<(Range<usize>, Vec<u8>)>,
}

impl Edits {
    /// Replaces a range.
    pub fn replace(&mut self, range: Range<usize>, bytes: Vec<u8>) {
        self.edits.push((range, bytes));
    }

    /// Inserts bytes at an offset. Insertions at the same offset keep their order.
    pub fn insert(&mut self, at: usize, bytes: Vec<u8>) {
        self.edits.push((at..at, bytes));
    }

    /// Applies every edit to `raw`. Edits must not overlap, because each one was computed
    /// against the original bytes.
    pub fn apply(mut self, raw: &[u8]) -> Vec<u8> {
        self.edits
            .sort_by_key(|(range, _)| (range.start, range.end));
        let mut out = Vec::with_capacity(raw.len() + 512);
        let mut cursor = 0;
        for (range, bytes) in self.edits {
            debug_assert!(range.start >= cursor, "overlapping edits at {range:?}");
            let start = range.start.max(cursor);
            out.extend_from_slice(&raw[cursor..start]);
            out.extend_from_slice(&bytes);
            cursor = range.end.max(cursor);
        }
        out.extend_from_slice(&raw[cursor..]);
        out
    }
}

/// Sets the `charset` parameter of a Content-Type field to `charset`, keeping every other
/// parameter and the field's folding. Returns the new field bytes.
pub(crate) fn with_charset(field: &[u8], charset: &str) -> Vec<u8> {
    let lower = field.to_ascii_lowercase();
    let mut search = 0;
    while let Some(found) = find(&lower[search..], b"charset") {
        let start = search + found;
        let before = lower[..start]
            .iter()
            .rev()
            .find(|b| !b.is_ascii_whitespace());
        let mut position = start + b"charset".len();
        while lower.get(position).is_some_and(u8::is_ascii_whitespace) {
            position += 1;
        }
        if before == Some(&b';') && lower.get(position) == Some(&b'=') {
            position += 1;
            while matches!(lower.get(position), Some(b' ' | b'\t')) {
                position += 1;
            }
            let value_end = if lower.get(position) == Some(&b'"') {
                lower[position + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .map_or(lower.len(), |i| position + 1 + i + 1)
            } else {
                lower[position..]
                    .iter()
                    .position(|&b| b == b';' || b.is_ascii_whitespace())
                    .map_or(lower.len(), |i| position + i)
            };
            let mut out = field[..position].to_vec();
            out.extend_from_slice(charset.as_bytes());
            out.extend_from_slice(&field[value_end..]);
            return out;
        }
        search = start + 1;
    }
    // No charset parameter: add one before the line break.
    let content_end = field
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let mut out = field[..content_end].to_vec();
    out.extend_from_slice(format!("; charset={charset}").as_bytes());
    out.extend_from_slice(&field[content_end..]);
    out
}

/// The position of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The position of the last `needle` in `haystack`, compared ASCII case-insensitively.
pub(crate) fn rfind_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_keep_their_continuation_lines() {
        let raw =
            b"From: a@b\r\nContent-Type: text/plain;\r\n\tcharset=us-ascii\r\nX: 1\r\n\r\nbody";
        let block = HeaderBlock::parse(raw, 0..raw.len());
        let names: Vec<&str> = block.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["From", "Content-Type", "X"]);
        assert_eq!(block.fields[1].value, "text/plain;\tcharset=us-ascii");
        assert_eq!(&raw[block.end..block.end + 2], b"\r\n");
    }

    #[test]
    fn set_replaces_first_and_removes_repeats() {
        let raw = b"To: a@x\nFrom: f@x\nTo: b@x\n\nbody\n";
        let block = HeaderBlock::parse(raw, 0..raw.len());
        let mut edits = Edits::default();
        block.set(raw, &mut edits, "to", Some(b"To: c@x\n".to_vec()));
        assert_eq!(edits.apply(raw), b"To: c@x\nFrom: f@x\n\nbody\n");
    }

    #[test]
    fn append_adds_line_break_to_unterminated_block() {
        let raw = b"Subject: only headers";
        let block = HeaderBlock::parse(raw, 0..raw.len());
        let mut edits = Edits::default();
        block.append(raw, &mut edits, b"Message-ID: <1@x>\r\n".to_vec());
        assert_eq!(
            edits.apply(raw),
            b"Subject: only headers\r\nMessage-ID: <1@x>\r\n"
        );
    }

    #[test]
    fn line_ending_follows_first_line() {
        assert_eq!(line_ending(b"A: b\nC: d\r\n"), b"\n");
        assert_eq!(line_ending(b"A: b\r\n"), b"\r\n");
        assert_eq!(line_ending(b"A: b"), b"\r\n");
    }

    #[test]
    fn display_names_are_quoted_or_encoded() {
        assert_eq!(mailbox(Some("Alice Archer"), "a@x"), "Alice Archer <a@x>");
        assert_eq!(
            mailbox(Some("Archer, Alice"), "a@x"),
            "\"Archer, Alice\" <a@x>"
        );
        assert_eq!(mailbox(Some("Zoë"), "z@x"), "=?utf-8?B?Wm/Dqw==?= <z@x>");
        assert_eq!(mailbox(None, "a@x"), "a@x");
    }

    #[test]
    fn long_address_lists_fold_after_commas() {
        let value = (0..6)
            .map(|i| format!("recipient-number-{i}@example.net"))
            .collect::<Vec<_>>()
            .join(", ");
        let line = field_line("To", &value, b"\r\n");
        let text = String::from_utf8(line).expect("ascii");
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
        assert_eq!(
            text.replace("\r\n ", " ").trim_end(),
            format!("To: {value}")
        );
    }

    #[test]
    fn charset_parameter_is_replaced_in_place() {
        assert_eq!(
            with_charset(
                b"Content-Type: text/plain;\r\n\tcharset=\"iso-8859-1\"; format=flowed\r\n",
                "utf-8"
            ),
            b"Content-Type: text/plain;\r\n\tcharset=utf-8; format=flowed\r\n"
        );
        assert_eq!(
            with_charset(b"Content-Type: text/html; CHARSET=big5\n", "utf-8"),
            b"Content-Type: text/html; CHARSET=utf-8\n"
        );
        assert_eq!(
            with_charset(b"Content-Type: text/plain\r\n", "utf-8"),
            b"Content-Type: text/plain; charset=utf-8\r\n"
        );
    }
}
