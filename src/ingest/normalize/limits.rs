//! Bounds: every string's length, every key's, the nesting depth, and no NUL anywhere.

use serde_json::{json, Map, Value};

use crate::config::Limits;
use crate::domain::text::cut_chars;

/// Levels of free-form nesting above the event's own structure
/// (event → exception → values → [i] → stacktrace → frames → [j] → vars).
const STRUCTURAL_DEPTH: usize = 8;
/// Sentry's limit for tag keys and values.
pub(super) const MAX_TAG_CHARS: usize = 200;

/// Cuts long strings and deep nesting. Runs after scrubbing, so a secret is never cut in half
/// where the scrubber could no longer recognise it.
pub fn apply_limits(body: &mut Value, limits: &Limits) {
    bound(
        body,
        STRUCTURAL_DEPTH + limits.max_json_depth,
        limits.max_string_chars,
    );
}

/// Sentry's limit for environment names. The name is part of the endpoint aggregates' keys,
/// which PostgreSQL indexes: an 8,000-character one could not be stored there, and made every
/// later fold of deferred aggregates fail.
const MAX_ENVIRONMENT_CHARS: usize = 64;

/// Cuts the event's `environment` (already a string, if present) to Sentry's limit.
pub(super) fn bound_environment(event: &mut Map<String, Value>) {
    if let Some(Value::String(environment)) = event.get_mut("environment") {
        if environment.chars().nth(MAX_ENVIRONMENT_CHARS).is_some() {
            *environment = truncate_chars(environment, MAX_ENVIRONMENT_CHARS);
        }
    }
}

/// At most `max` characters, then "…" when something was cut (Sentry's trimming).
pub fn truncate_chars(s: &str, max: usize) -> String {
    let kept = cut_chars(s, max);
    if kept.len() == s.len() {
        s.to_owned()
    } else {
        format!("{kept}…")
    }
}

/// PostgreSQL refuses NUL in `text` and `jsonb`, so it never leaves normalisation. The
/// replacement shows where it was, as a lone surrogate does.
const NUL_REPLACEMENT: &str = "\u{FFFD}";

/// `s` without NUL characters. The check is one `memchr`: most strings pass untouched.
fn without_nul(s: &str) -> Option<String> {
    s.contains('\0').then(|| s.replace('\0', NUL_REPLACEMENT))
}

/// Bounds every string's length and the nesting depth of the whole value, and replaces NUL
/// characters in every string and key, in place.
fn bound(value: &mut Value, depth_left: usize, max_chars: usize) {
    match value {
        Value::String(s) => {
            if let Some(clean) = without_nul(s) {
                *s = clean;
            }
            // A string of at most `max_chars` bytes has at most that many characters.
            if s.len() > max_chars {
                if let Some((byte, _)) = s.char_indices().nth(max_chars) {
                    s.truncate(byte);
                    s.push('…');
                }
            }
        }
        Value::Array(items) if depth_left == 0 => {
            *value = json!(format!(
                "[{} items not shown: nested too deeply]",
                items.len()
            ));
        }
        Value::Object(map) if depth_left == 0 => {
            *value = json!(format!("[{} keys not shown: nested too deeply]", map.len()));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| bound(v, depth_left - 1, max_chars)),
        Value::Object(map) => {
            let odd_keys: Vec<String> = map
                .keys()
                .filter(|k| k.len() > MAX_TAG_CHARS || k.contains('\0'))
                .cloned()
                .collect();
            for key in odd_keys {
                if let Some(v) = map.remove(&key) {
                    let clean = without_nul(&key).unwrap_or(key);
                    map.insert(truncate_chars(&clean, MAX_TAG_CHARS), v);
                }
            }
            map.values_mut()
                .for_each(|v| bound(v, depth_left - 1, max_chars));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_keys_are_cleaned_and_their_values_bounded_like_any_other() {
        let long_key = "k".repeat(MAX_TAG_CHARS + 5);
        let mut body = json!({"extra": {
            "nul\u{0}key": "a\u{0}b",
            long_key.clone(): "x".repeat(20),
            "plain": {"deep": ["y".repeat(20)]},
        }});
        bound(&mut body, 3, 10);
        let kept_key = format!("{}…", "k".repeat(MAX_TAG_CHARS));
        assert_eq!(
            body,
            json!({"extra": {
                "nul\u{FFFD}key": "a\u{FFFD}b",
                kept_key: format!("{}…", "x".repeat(10)),
                "plain": {"deep": "[1 items not shown: nested too deeply]"},
            }})
        );
    }
}
