//! Scrubbing the request part of an event: its URL, query string, cookies, headers and body,
//! which SDKs send in several shapes (objects, pair lists, encoded strings, raw text).

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use super::{
    is_sensitive_cookie, is_sensitive_key, scrub_entries, scrub_text, scrub_value, FILTERED,
};

/// `a=1&token=x` → `a=1&token=[Filtered]`, keeping the string form.
/// Keys are percent-decoded before judging so `api%5Fkey` is caught too.
pub(super) fn scrub_query_string(query: &str) -> String {
    let (prefix, body) = match query.strip_prefix('?') {
        Some(body) => ("?", body),
        None => ("", query),
    };
    let parts: Vec<String> = body
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if is_sensitive_key(&percent_decode(key)) => {
                format!("{key}={FILTERED}")
            }
            _ => scrub_text(part),
        })
        .collect();
    format!("{prefix}{}", parts.join("&"))
}

/// `theme=dark; sessionid=abc` → `theme=dark; sessionid=[Filtered]`,
/// preserving the original separators and spacing.
pub(super) fn scrub_cookie_string(cookies: &str) -> String {
    cookies
        .split(';')
        .map(|part| match part.split_once('=') {
            Some((name, _)) if is_sensitive_cookie(name) => format!("{name}={FILTERED}"),
            _ => scrub_text(part),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Minimal form-urlencoded decoding, only used to judge keys.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' => text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .map(|byte| (byte, 3)),
            _ => None,
        };
        let (byte, width) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += width;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Value rules on the whole URL (credentials), then the key rule on its query part (in case
/// the SDK did not split it into `query_string`) and on its fragment, which carries
/// `access_token=…` in OAuth's implicit flow (browser SDKs send `location.href`).
pub(super) fn scrub_url(url: &str) -> String {
    scrub_url_keys(&scrub_text(url))
}

/// The key rule on a URL's query and fragment only; the value rules are the caller's.
pub(super) fn scrub_url_keys(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (url, None),
    };
    let mut out = match before_fragment.split_once('?') {
        Some((base, query)) => format!("{base}?{}", scrub_query_string(query)),
        None => before_fragment.to_owned(),
    };
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&scrub_query_string(fragment));
    }
    out
}

pub(super) fn scrub_request(request: &mut Value) {
    let Some(request) = request.as_object_mut() else {
        return;
    };
    if let Some(Value::String(url)) = request.get_mut("url") {
        *url = scrub_url(url);
    }
    if let Some(headers) = request.get_mut("headers") {
        scrub_entries(headers, is_sensitive_key, scrub_text);
    }
    if let Some(query) = request.get_mut("query_string") {
        scrub_entries(query, is_sensitive_key, scrub_query_string);
    }
    if let Some(cookies) = request.get_mut("cookies") {
        scrub_entries(cookies, is_sensitive_cookie, scrub_cookie_string);
    }
    if let Some(data) = request.get_mut("data") {
        scrub_request_data(data);
    }
    if let Some(env) = request.get_mut("env") {
        scrub_value(env, 0);
    }
}

/// Bodies often arrive as raw text. A JSON document is replaced by its
/// scrubbed parsed form (so the key rule can see inside it); a form body is
/// scrubbed like a query string; anything else gets the value rules.
pub(super) fn scrub_request_data(data: &mut Value) {
    if let Value::String(text) = data {
        if let Some(mut parsed) = parse_json_body(text) {
            scrub_value(&mut parsed, 0);
            *data = parsed;
            return;
        }
        if looks_like_json(text) {
            // Cut short (SDKs truncate large bodies) or otherwise broken: the key rule still
            // applies to every `"key": value` in it.
            *text = scrub_text(&scrub_json_like(text));
            return;
        }
        if text.contains('=') {
            *text = scrub_query_string(text);
            return;
        }
    }
    scrub_value(data, 0);
}

fn looks_like_json(text: &str) -> bool {
    let trimmed = text.trim_start();
    trimmed.starts_with('{') || trimmed.starts_with('[')
}

/// `"key": value` pairs in text that may not parse, the value a string (perhaps cut off at the
/// end) or anything up to the next `,`, `}` or `]`.
static JSON_LIKE_PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#""((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*(?:"|$)|[^,}\]\s]*)"#)
        .expect("a valid pattern")
});

/// The value of every sensitive `"key": value` pair replaced by `"[Filtered]"`.
fn scrub_json_like(text: &str) -> String {
    JSON_LIKE_PAIR
        .replace_all(text, |pair: &Captures| {
            if is_sensitive_key(&pair[1]) {
                format!("\"{}\":\"{FILTERED}\"", &pair[1])
            } else {
                pair[0].to_owned()
            }
        })
        .into_owned()
}

/// Only structured documents count: a JSON string or number body gains
/// nothing from parsing and is better kept as the text the SDK sent.
pub(super) fn parse_json_body(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') && !trimmed.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|value| value.is_object() || value.is_array())
}
