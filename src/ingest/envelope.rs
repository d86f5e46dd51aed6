//! The Sentry envelope format (PROTOCOL.md §4): a JSON header line, then items, each a JSON
//! header line and a payload that is either `length` bytes long or runs to the next newline.

use serde_json::{Map, Value};

/// Why an envelope could not be read; each becomes a specific 400.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("request body is empty")]
    Empty,
    #[error("envelope header is not a JSON object")]
    BadHeader,
    #[error("header of envelope item {0} is not a JSON object")]
    BadItemHeader(usize),
    #[error("envelope item {0} has no \"type\"")]
    MissingItemType(usize),
    #[error("envelope item {0} has an invalid \"length\"")]
    BadLength(usize),
    #[error("envelope item {0} declares a length past the end of the body")]
    LengthPastEnd(usize),
    #[error("envelope item {0} is not followed by a newline after its declared length")]
    MissingNewline(usize),
}

#[derive(Debug)]
pub struct Envelope<'a> {
    pub headers: Map<String, Value>,
    pub items: Vec<Item<'a>>,
}

#[derive(Debug)]
pub struct Item<'a> {
    pub item_type: String,
    pub payload: &'a [u8],
}

impl Envelope<'_> {
    pub fn header_str(&self, key: &str) -> Option<&str> {
        self.headers.get(key).and_then(Value::as_str)
    }
}

pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(EnvelopeError::Empty);
    }
    let (header_line, mut rest) = split_line(body);
    let headers = parse_object(header_line).ok_or(EnvelopeError::BadHeader)?;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (line, after) = split_line(rest);
        // Blank lines between items (e.g. a trailing "\n\n") carry nothing.
        if line.iter().all(u8::is_ascii_whitespace) {
            rest = after;
            continue;
        }
        let index = items.len();
        let item_headers = parse_object(line).ok_or(EnvelopeError::BadItemHeader(index))?;
        let item_type = item_headers
            .get("type")
            .and_then(Value::as_str)
            .ok_or(EnvelopeError::MissingItemType(index))?
            .to_owned();
        let (payload, next) = match item_headers.get("length") {
            None | Some(Value::Null) => split_line(after),
            Some(length) => {
                let length = length
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or(EnvelopeError::BadLength(index))?;
                take_exact(after, length, index)?
            }
        };
        items.push(Item { item_type, payload });
        rest = next;
    }
    Ok(Envelope { headers, items })
}

/// Splits at the first `\n`; the newline belongs to neither part.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fn take_exact(data: &[u8], length: usize, index: usize) -> Result<(&[u8], &[u8]), EnvelopeError> {
    if length > data.len() {
        return Err(EnvelopeError::LengthPastEnd(index));
    }
    let (payload, rest) = data.split_at(length);
    match rest.first() {
        None => Ok((payload, rest)),
        Some(b'\n') => Ok((payload, &rest[1..])),
        Some(_) => Err(EnvelopeError::MissingNewline(index)),
    }
}

fn parse_object(line: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(line).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_with_and_without_length_are_read() {
        let body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"session\"}\n{\"b\":2}\n";
        let envelope = parse(body).unwrap();
        assert_eq!(
            envelope.header_str("event_id"),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        assert_eq!(envelope.items.len(), 2);
        assert_eq!(envelope.items[0].item_type, "event");
        assert_eq!(envelope.items[0].payload, b"{\"a\":1}");
        assert_eq!(envelope.items[1].item_type, "session");
        assert_eq!(envelope.items[1].payload, b"{\"b\":2}");
    }

    #[test]
    fn length_counts_bytes_including_newlines_inside_the_payload() {
        let body = b"{}\n{\"type\":\"attachment\",\"length\":5}\na\nb\nc\n{\"type\":\"event\"}\n{}";
        let envelope = parse(body).unwrap();
        assert_eq!(envelope.items[0].payload, b"a\nb\nc");
        assert_eq!(envelope.items[1].payload, b"{}");
    }

    #[test]
    fn header_only_envelope_is_valid() {
        assert!(parse(b"{}").unwrap().items.is_empty());
        assert!(parse(b"{}\n").unwrap().items.is_empty());
    }

    #[test]
    fn length_past_the_end_is_an_error() {
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":500}\n{}").unwrap_err();
        assert_eq!(err, EnvelopeError::LengthPastEnd(0));
    }

    #[test]
    fn bad_headers_are_errors() {
        assert_eq!(parse(b"").unwrap_err(), EnvelopeError::Empty);
        assert_eq!(parse(b"nope\n").unwrap_err(), EnvelopeError::BadHeader);
        assert_eq!(
            parse(b"{}\n[1]\n{}").unwrap_err(),
            EnvelopeError::BadItemHeader(0)
        );
        assert_eq!(
            parse(b"{}\n{\"length\":2}\n{}").unwrap_err(),
            EnvelopeError::MissingItemType(0)
        );
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":-1}\n{}").unwrap_err(),
            EnvelopeError::BadLength(0)
        );
    }

    #[test]
    fn payload_followed_by_garbage_instead_of_newline_is_an_error() {
        let err = parse(b"{}\n{\"type\":\"event\",\"length\":2}\n{}xx").unwrap_err();
        assert_eq!(err, EnvelopeError::MissingNewline(0));
    }
}
