//! Masking the variable parts of a message (ids, numbers, addresses, dates…) as Sentry's
//! `parameterization.py` does, so that messages differing only in those parts share a group.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Replaces variable parts of a message (ids, numbers, addresses, dates…) with placeholders
/// so that messages differing only in those parts share a group.
pub fn parameterize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut pos = 0;
    while let Some(caps) = PARAMETER_REGEX.captures_at(message, pos) {
        let Some(whole) = caps.get(0) else { break };
        out.push_str(&message[pos..whole.start()]);
        match placeholder_for(&caps, message) {
            Some((placeholder, end)) if end > whole.start() => {
                out.push_str(placeholder);
                pos = end;
            }
            _ => {
                // A rejected candidate keeps its first character verbatim; searching again
                // from the next character lets a shorter parameter inside it still match.
                let next = next_char_boundary(message, whole.start());
                out.push_str(&message[whole.start()..next]);
                pos = next;
            }
        }
    }
    out.push_str(&message[pos..]);
    out
}

/// One placeholder kind: the named group, its replacement and its pattern.
struct ParameterKind {
    name: &'static str,
    placeholder: &'static str,
    pattern: &'static str,
}

const fn kind(
    name: &'static str,
    placeholder: &'static str,
    pattern: &'static str,
) -> ParameterKind {
    ParameterKind {
        name,
        placeholder,
        pattern,
    }
}

/// Sentry's `parameterization.py` order. The kinds are joined into one alternation; the regex
/// crate prefers earlier alternatives at the same start position, so this order is what makes
/// a UUID win over a hex id and `1.5s` win over a float.
const PARAMETER_KINDS: &[ParameterKind] = &[
    kind(
        "email",
        "<email>",
        r"\b[a-zA-Z0-9._%+\-]+@[a-zA-Z0-9.\-]+\.[a-zA-Z]{2,}\b",
    ),
    kind(
        "url",
        "<url>",
        r#"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s<>"'(){}\[\]]+"#,
    ),
    kind(
        "hostname",
        "<hostname>",
        r"\b(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?\.){1,16}(?:com|net|org|io|dev|app|co|uk|de|fr|jp|cn|ru|br|in|it|nl|es|pl|ca|au|ch|se|no|fi|dk|be|at|cz|eu|us|me|tv|info|biz|gov|edu|xyz|cloud|ai|sh)\b",
    ),
    kind(
        "ip",
        "<ip>",
        concat!(
            r"\b(?:(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\b",
            r"|\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){7}\b",
            r"|\b[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,6}::(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,5}\b)?",
            r"|::[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,6}\b",
        ),
    ),
    kind(
        "traceparent",
        "<traceparent>",
        r"\b[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\b|\b1-[0-9a-f]{8}-[0-9a-f]{24}\b",
    ),
    kind(
        "uuid",
        "<uuid>",
        r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    ),
    kind("sha1", "<sha1>", r"\b[0-9a-fA-F]{40}\b"),
    kind("md5", "<md5>", r"\b[0-9a-fA-F]{32}\b"),
    kind(
        "date",
        "<date>",
        concat!(
            // ISO 8601 date with optional time, fraction and offset.
            r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?(?:Z|[+\-][0-9]{2}:?[0-9]{2})?)?",
            r"|\b[0-9]{4}/[0-9]{2}/[0-9]{2}\b",
            // RFC 2822: `Tue, 3 Jun 2008 11:05:30 GMT`.
            r"|\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),\s*)?[0-9]{1,2}\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+[0-9]{2,4}(?:\s+[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?:\s*(?:[+\-][0-9]{4}|GMT|UTC|Z)\b)?)?",
            r"|\b[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?\b",
        ),
    ),
    kind(
        "duration",
        "<duration>",
        r"\b[0-9]+(?:\.[0-9]+)?(?:ms|µs|us|ns|s|min|h)\b",
    ),
    kind(
        "hex",
        "<hex>",
        r"\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,128}\b",
    ),
    kind("float", "<float>", r"(?:-|\b)[0-9]+\.[0-9]+\b"),
    kind("int", "<int>", r"(?:-|\b)[0-9]+\b"),
    kind("quoted_str", "=<quoted_str>", r#"='[^']*'|="[^"]*""#),
    kind("bool", "=<bool>", r"=(?i:true|false)\b"),
];

static PARAMETER_REGEX: LazyLock<Regex> = LazyLock::new(|| {
    let alternation = PARAMETER_KINDS
        .iter()
        .map(|k| format!("(?P<{}>{})", k.name, k.pattern))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&alternation).expect("parameterisation patterns are valid")
});

/// The placeholder and the end of the replaced span, or `None` when the candidate is a false
/// positive that the regex crate (which has no look-around) cannot rule out by itself.
fn placeholder_for(caps: &Captures, haystack: &str) -> Option<(&'static str, usize)> {
    let (kind, found) = PARAMETER_KINDS
        .iter()
        .find_map(|k| caps.name(k.name).map(|m| (k, m)))?;
    let text = found.as_str();
    let before = haystack[..found.start()].chars().next_back();
    let after = &haystack[found.end()..];
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    let rejected = match kind.name {
        // `java.io.File` is a class name, not a host: real hostnames end at the TLD.
        "hostname" => after.starts_with('.') && after[1..].starts_with(char::is_alphanumeric),
        // `abc::def` is a path; `Foo::1` is not an address.
        "ip" => {
            !has_digit || (text.starts_with(':') && before.is_some_and(|c| is_word(c) || c == ':'))
        }
        // An all-letter word such as `deadbeef` or `accepted` is more likely prose.
        "hex" => !has_digit,
        // The `-` in `order-17` is a separator, not a sign.
        "int" | "float" => text.starts_with('-') && before.is_some_and(is_word),
        _ => false,
    };
    if rejected {
        return None;
    }
    let end = if kind.name == "url" {
        // Sentence punctuation after a URL is not part of it.
        found.start() + text.trim_end_matches(['.', ',', ';', ':', '!', '?']).len()
    } else {
        found.end()
    };
    Some((kind.placeholder, end))
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn next_char_boundary(text: &str, index: usize) -> usize {
    text[index..]
        .chars()
        .next()
        .map_or(text.len(), |c| index + c.len_utf8())
}
