//! JSON as browsers actually write it. `JSON.stringify` escapes a lone UTF-16 surrogate (half
//! of an emoji cut by `substring`) as `"\ud83d"`, which is not valid Unicode and which
//! serde_json refuses. Such an event is still worth keeping: the lone half becomes U+FFFD.

use serde::de::DeserializeOwned;

/// Parses `payload`; if that fails and it holds lone surrogate escapes, parses it again with
/// each replaced by `\ufffd`. Valid JSON pays nothing extra; other errors are returned as is.
pub fn from_slice<T: DeserializeOwned>(payload: &[u8]) -> serde_json::Result<T> {
    match parse_text(payload) {
        Ok(value) => Ok(value),
        Err(error) => match replace_lone_surrogates(payload) {
            Some(repaired) => parse_text(&repaired),
            None => Err(error),
        },
    }
}

/// Checks the whole payload is UTF-8 once, then parses it as text: parsing bytes, serde_json
/// checks every string on its own, which cost ~3 % of the server's CPU under load. JSON is
/// text throughout, so both refuse the same payloads.
fn parse_text<T: DeserializeOwned>(payload: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str(text),
        Err(error) => Err(serde::de::Error::custom(format_args!(
            "invalid UTF-8 at byte {}",
            error.valid_up_to()
        ))),
    }
}

/// `payload` with every `\uXXXX` escape of an unpaired surrogate replaced by `\ufffd`, or
/// `None` when there is none. Backslashes appear only inside strings in JSON, so scanning
/// escapes needs no string tracking; `\\` is stepped over whole.
fn replace_lone_surrogates(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < payload.len() {
        if payload[i] != b'\\' {
            i += 1;
            continue;
        }
        let escape_len = match unicode_escape(payload, i) {
            Some(0xD800..=0xDBFF) => {
                let low = unicode_escape(payload, i + 6);
                if low.is_some_and(|low| (0xDC00..=0xDFFF).contains(&low)) {
                    12
                } else {
                    replace_escape(&mut out, payload, i);
                    6
                }
            }
            Some(0xDC00..=0xDFFF) => {
                replace_escape(&mut out, payload, i);
                6
            }
            Some(_) => 6,
            None => 2,
        };
        i += escape_len;
    }
    out
}

/// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
fn unicode_escape(payload: &[u8], at: usize) -> Option<u16> {
    let escape = payload.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

/// Rewrites the 6-byte escape at `at` as `\ufffd` (same length, so offsets stay valid).
fn replace_escape(out: &mut Option<Vec<u8>>, payload: &[u8], at: usize) {
    let bytes = out.get_or_insert_with(|| payload.to_vec());
    bytes[at..at + 6].copy_from_slice(b"\\ufffd");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(text: &str) -> serde_json::Result<Value> {
        from_slice(text.as_bytes())
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        assert_eq!(parse(r#""a\ud83d""#).unwrap(), "a\u{FFFD}");
        assert_eq!(parse(r#""\uDC00b""#).unwrap(), "\u{FFFD}b");
        assert_eq!(parse(r#""\ud83d\ud83d""#).unwrap(), "\u{FFFD}\u{FFFD}");
        assert_eq!(parse(r#""\ud83d\u0041""#).unwrap(), "\u{FFFD}A");
    }

    #[test]
    fn pairs_and_escaped_backslashes_are_left_alone() {
        assert_eq!(parse(r#""\ud83d\ude00 \ud800""#).unwrap(), "😀 \u{FFFD}");
        assert_eq!(parse(r#""\\ud800""#).unwrap(), r"\ud800");
        assert_eq!(replace_lone_surrogates(br#""\\ud800 \ud83d\ude00""#), None);
    }

    #[test]
    fn invalid_utf8_anywhere_is_an_error() {
        assert!(from_slice::<Value>(b"\"a\xff\"").is_err());
        assert!(from_slice::<Value>(b"{\"a\xc3\": 1}").is_err());
        assert!(from_slice::<Value>(b"[1] \xff").is_err());
        assert_eq!(from_slice::<Value>("\"é\"".as_bytes()).unwrap(), "é");
    }

    #[test]
    fn other_errors_are_still_errors() {
        assert!(parse(r#"{"a": "\ud800" "#).is_err());
        assert!(parse(r#""\u12""#).is_err());
        assert!(parse("\"\\").is_err());
    }
}
