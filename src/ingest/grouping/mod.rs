//! Issue grouping, title and culprit for normalised events.
//!
//! Follows PROTOCOL.md §9 and DESIGN.md §Grouping. Everything here is pure and reads an
//! untrusted `serde_json::Value`, so every field access tolerates missing or wrong-typed data.

mod parameterize;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::domain::event_shape::{self, exceptions, frames, is_in_app, top_frame};
use crate::domain::text::cut_chars;
pub use parameterize::parameterize;

const MAX_TITLE_CHARS: usize = 200;
const MAX_MESSAGE_TITLE_CHARS: usize = 100;
const MAX_CULPRIT_CHARS: usize = 200;
const UNLABELED_TITLE: &str = "<unlabeled event>";

/// What produced an issue's hash, stored as `kind` in its grouping components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupingKind {
    /// The event's own `fingerprint`.
    Fingerprint,
    /// The exception chain's types and frames.
    Exception,
    /// The log message.
    Message,
    /// Nothing to group by: one issue per project.
    Fallback,
}

impl GroupingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupingKind::Fingerprint => "fingerprint",
            GroupingKind::Exception => "exception",
            GroupingKind::Message => "message",
            GroupingKind::Fallback => "fallback",
        }
    }
}

/// The issue key of an event and the components it was derived from, which are stored with
/// the issue so the dashboard can explain why events were grouped together.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// 32 lowercase hex characters.
    pub hash: String,
    pub components: Value,
}

/// Groups by fingerprint, else exception chain, else log message, else a fixed fallback.
pub fn compute_grouping(event: &Value) -> Grouping {
    let components = fingerprint_components(event).unwrap_or_else(|| default_components(event));
    Grouping {
        hash: hash_components(&components),
        components,
    }
}

/// `"{type}: {first line of value}"` for errors, the message for message events.
pub fn title(event: &Value) -> String {
    let title = match exceptions(event).last() {
        // JS SDKs attach a typeless, synthetic exception to captured messages only to carry
        // the stack trace: the message is the better title then.
        Some(main) if is_message_carrier(main) && has_message(event) => message_title(event),
        Some(main) => exception_title(main),
        None => message_title(event),
    };
    cut_chars(&title, MAX_TITLE_CHARS).to_owned()
}

fn is_message_carrier(exception: &Value) -> bool {
    non_blank_at(exception, "/type").is_none()
        && event_shape::at(exception, "/mechanism/synthetic").and_then(Value::as_bool) == Some(true)
}

fn has_message(event: &Value) -> bool {
    non_blank_at(event, "/logentry/formatted").is_some()
        || non_blank_at(event, "/logentry/message").is_some()
}

/// The `culprit` or `transaction` field, else the crashing frame, else the request URL.
pub fn culprit(event: &Value) -> String {
    let culprit = non_blank_at(event, "/culprit")
        .or_else(|| non_blank_at(event, "/transaction"))
        .map(str::to_owned)
        .or_else(|| stack_culprit(event))
        .or_else(|| non_blank_at(event, "/request/url").map(str::to_owned))
        .unwrap_or_default();
    cut_chars(culprit.trim(), MAX_CULPRIT_CHARS).to_owned()
}

// ---------------------------------------------------------------------------------------------
// Hashing and fingerprints

fn hash_components(components: &Value) -> String {
    // serde_json escapes every string and keeps our fixed key order, so this serialisation is
    // canonical and unambiguous (no two component trees produce the same text).
    // `to_vec`, not `to_string()`: the same bytes without going through `fmt::Display`.
    let text = serde_json::to_vec(components).expect("a JSON value always serialises");
    let digest = Sha256::digest(&text);
    let mut hash = hex::encode(digest);
    hash.truncate(32);
    hash
}

fn fingerprint_components(event: &Value) -> Option<Value> {
    let entries = event.get("fingerprint")?.as_array()?;
    if entries.is_empty() {
        return None;
    }
    // The default grouping and its hash, built once however many markers name it (hashing it
    // for each of thousands of markers took seconds per event).
    let mut default: Option<(Value, String)> = None;
    let mut values = Vec::with_capacity(entries.len());
    for entry in entries {
        let text = fingerprint_entry(entry);
        if is_default_marker(&text) {
            let (_, hash) = default.get_or_insert_with(|| {
                let components = default_components(event);
                let hash = hash_components(&components);
                (components, hash)
            });
            values.push(Value::String(hash.clone()));
        } else {
            values.push(Value::String(text));
        }
    }
    let mut components = Map::new();
    components.insert("kind".into(), GroupingKind::Fingerprint.as_str().into());
    components.insert("values".into(), Value::Array(values));
    if let Some((default, _)) = default {
        components.insert("default".into(), default);
    }
    Some(Value::Object(components))
}

fn fingerprint_entry(entry: &Value) -> String {
    match entry {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_default_marker(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    compact == "{{default}}"
}

fn default_components(event: &Value) -> Value {
    exception_components(event)
        .or_else(|| message_components(event))
        .unwrap_or_else(|| json!({"kind": GroupingKind::Fallback.as_str(), "values": []}))
}

// ---------------------------------------------------------------------------------------------
// Exception grouping

fn exception_components(event: &Value) -> Option<Value> {
    let chain = exceptions(event);
    if chain.is_empty() {
        return None;
    }
    // One in-app frame anywhere means the SDK knows which code is the app's; library frames
    // then only add noise (and change with dependency upgrades).
    let in_app_only = chain.iter().flat_map(|e| frames(e)).any(is_in_app);
    let values: Vec<Value> = chain
        .iter()
        .map(|exception| exception_component(exception, in_app_only))
        .collect();
    Some(json!({"kind": GroupingKind::Exception.as_str(), "values": values}))
}

fn exception_component(exception: &Value, in_app_only: bool) -> Value {
    let frame_keys = grouping_frames(exception, in_app_only);
    let mut component = Map::new();
    // A synthetic exception's type and value were made up by the SDK (e.g. from a signal),
    // so they say nothing about which bug this is.
    if !is_synthetic(exception) {
        component.insert("type".into(), exception_type(exception).into());
    }
    if frame_keys.is_empty() {
        let value = non_blank(exception, "value").map_or("", first_line);
        component.insert("value".into(), parameterize(value).into());
    } else {
        component.insert("frames".into(), frame_keys.into());
    }
    Value::Object(component)
}

fn grouping_frames(exception: &Value, in_app_only: bool) -> Vec<String> {
    let mut keys: Vec<String> = frames(exception)
        .iter()
        .filter(|frame| !in_app_only || is_in_app(frame))
        .filter_map(frame_key)
        .collect();
    // Recursion depth varies between occurrences of the same bug.
    keys.dedup();
    keys
}

/// `"module|file :: function"`; line and column numbers are left out on purpose so that a
/// deploy which shifts code keeps the group.
fn frame_key(frame: &Value) -> Option<String> {
    let filename = non_blank(frame, "filename").or_else(|| non_blank(frame, "abs_path"));
    let function = non_blank(frame, "function")
        .map(|f| f.strip_prefix("Object.").unwrap_or(f))
        .filter(|f| !f.is_empty());
    if function == Some("<anonymous>") || filename == Some("[native code]") {
        return None;
    }
    let origin = non_blank(frame, "module")
        .map(str::to_owned)
        .or_else(|| filename.map(normalize_filename))
        .filter(|o| !o.is_empty());
    if origin.is_none() && function.is_none() {
        return None;
    }
    Some(format!(
        "{} :: {}",
        origin.unwrap_or_default(),
        function.unwrap_or_default()
    ))
}

/// Basename, lowercased, without `?query`/`#hash` (cache busters change on every deploy).
fn normalize_filename(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    base.to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Message grouping

fn message_components(event: &Value) -> Option<Value> {
    let template = non_blank_at(event, "/logentry/message");
    let values: Vec<Value> = match template {
        // With explicit params the template is already free of variable parts.
        Some(template) if has_params(event) => vec![template.into()],
        _ => {
            let text = non_blank_at(event, "/logentry/formatted").or(template)?;
            non_blank_lines(text)
                .take(2)
                .map(|line| parameterize(line).into())
                .collect()
        }
    };
    if values.is_empty() {
        return None;
    }
    Some(json!({"kind": GroupingKind::Message.as_str(), "values": values}))
}

fn has_params(event: &Value) -> bool {
    match event_shape::at(event, "/logentry/params") {
        Some(Value::Array(params)) => !params.is_empty(),
        Some(Value::Object(params)) => !params.is_empty(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Title and culprit

fn exception_title(exception: &Value) -> String {
    let kind = synthetic_function(exception)
        .map(str::to_owned)
        .unwrap_or_else(|| exception_type(exception));
    match non_blank(exception, "value").map(first_line) {
        Some(value) if !value.is_empty() => format!("{kind}: {value}"),
        _ => kind,
    }
}

/// For synthetic exceptions the crashing function is a better name than the made-up type.
fn synthetic_function(exception: &Value) -> Option<&str> {
    if !is_synthetic(exception) {
        return None;
    }
    non_blank(top_frame(frames(exception))?, "function")
}

fn message_title(event: &Value) -> String {
    non_blank_at(event, "/logentry/formatted")
        .or_else(|| non_blank_at(event, "/logentry/message"))
        .and_then(|text| non_blank_lines(text).next())
        .map(|line| cut_chars(line, MAX_MESSAGE_TITLE_CHARS).to_owned())
        .unwrap_or_else(|| UNLABELED_TITLE.to_owned())
}

fn stack_culprit(event: &Value) -> Option<String> {
    let chain = exceptions(event);
    let stack = chain
        .iter()
        .rev()
        .map(|exception| frames(exception))
        .find(|frames| !frames.is_empty())?;
    let platform = non_blank(event, "platform").unwrap_or_default();
    format_culprit_frame(top_frame(stack)?, platform)
}

fn format_culprit_frame(frame: &Value, platform: &str) -> Option<String> {
    let origin = non_blank(frame, "module")
        .or_else(|| non_blank(frame, "filename"))
        .or_else(|| non_blank(frame, "abs_path"));
    let function = non_blank(frame, "function");
    match platform {
        "native" | "cocoa" => function.or(origin).map(str::to_owned),
        "javascript" | "node" => match (function, origin) {
            (None, None) => None,
            (function, Some(origin)) => Some(format!("{}({origin})", function.unwrap_or("?"))),
            (Some(function), None) => Some(function.to_owned()),
        },
        _ => match (origin, function) {
            (None, None) => None,
            (Some(origin), function) => Some(format!("{origin} in {}", function.unwrap_or("?"))),
            (None, Some(function)) => Some(function.to_owned()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Tolerant field access

fn exception_type(exception: &Value) -> String {
    non_blank(exception, "type")
        .unwrap_or("Error")
        .trim()
        .to_owned()
}

fn is_synthetic(exception: &Value) -> bool {
    event_shape::at(exception, "/mechanism/synthetic").and_then(Value::as_bool) == Some(true)
}

/// A string field that is present and not just whitespace.
fn non_blank<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn non_blank_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    event_shape::at(value, pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn non_blank_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, function: &str, lineno: u64, in_app: bool) -> Value {
        json!({"module": module, "function": function, "lineno": lineno, "in_app": in_app})
    }

    fn exception_event(ty: &str, value: &str, frames: Vec<Value>) -> Value {
        json!({
            "platform": "python",
            "exception": {"values": [
                {"type": ty, "value": value, "stacktrace": {"frames": frames}}
            ]}
        })
    }

    fn message_event(formatted: &str) -> Value {
        json!({"logentry": {"formatted": formatted}})
    }

    fn hash(event: &Value) -> String {
        compute_grouping(event).hash
    }

    fn app_frames(first_line: u64) -> Vec<Value> {
        vec![
            frame("django.core.handlers", "inner", 40, false),
            frame("shop.views", "checkout", first_line, true),
            frame("shop.payments", "charge", first_line + 10, true),
        ]
    }

    #[test]
    fn hash_is_32_lowercase_hex_characters() {
        let h = hash(&exception_event("ValueError", "bad", app_frames(1)));
        assert_eq!(h.len(), 32);
        assert!(h
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn shifted_line_numbers_keep_the_same_hash() {
        let before = exception_event("ValueError", "bad", app_frames(10));
        let after = exception_event("ValueError", "bad", app_frames(57));
        assert_eq!(hash(&before), hash(&after));
    }

    #[test]
    fn a_different_exception_type_gives_a_different_hash() {
        let a = exception_event("ValueError", "bad", app_frames(10));
        let b = exception_event("KeyError", "bad", app_frames(10));
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn the_exception_value_is_ignored_when_frames_contribute() {
        let a = exception_event("ValueError", "user 1 missing", app_frames(10));
        let b = exception_event("ValueError", "totally different", app_frames(10));
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn only_in_app_frames_count_when_any_frame_is_in_app() {
        let mut frames = app_frames(10);
        let base = exception_event("ValueError", "bad", frames.clone());
        frames[0] = frame("flask.app", "dispatch", 1, false);
        let other_library = exception_event("ValueError", "bad", frames);
        assert_eq!(hash(&base), hash(&other_library));

        let components = compute_grouping(&base).components;
        assert_eq!(
            components["values"][0]["frames"],
            json!(["shop.views :: checkout", "shop.payments :: charge"])
        );
    }

    #[test]
    fn all_frames_count_when_no_frame_is_in_app() {
        let frames = vec![frame("lib.a", "f", 1, false), frame("lib.b", "g", 2, false)];
        let components = compute_grouping(&exception_event("E", "v", frames)).components;
        assert_eq!(
            components["values"][0]["frames"],
            json!(["lib.a :: f", "lib.b :: g"])
        );
    }

    #[test]
    fn recursive_frames_are_collapsed() {
        let once = vec![frame("m", "walk", 1, true)];
        let deep = vec![frame("m", "walk", 1, true); 5];
        assert_eq!(
            hash(&exception_event("E", "v", once)),
            hash(&exception_event("E", "v", deep))
        );
    }

    #[test]
    fn javascript_noise_is_removed_from_frames() {
        let frames = json!([
            {"filename": "[native code]", "function": "forEach"},
            {"abs_path": "https://cdn.example.com/static/App.JS?v=123#x", "function": "Object.render"},
            {"filename": "app.js", "function": "<anonymous>"},
            {"lineno": 3}
        ]);
        let event = json!({"exception": {"values": [{"type": "TypeError", "stacktrace": {"frames": frames}}]}});
        let components = compute_grouping(&event).components;
        assert_eq!(
            components["values"][0]["frames"],
            json!(["app.js :: render"])
        );
    }

    #[test]
    fn an_exception_without_frames_groups_by_type_and_parameterised_value() {
        let a = exception_event("Timeout", "after 30 retries\nsecond line", vec![]);
        let b = exception_event("Timeout", "after 12 retries", vec![]);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(
            compute_grouping(&a).components["values"][0],
            json!({"type": "Timeout", "value": "after <int> retries"})
        );
    }

    #[test]
    fn a_chained_exception_hashes_differently_from_the_single_exception() {
        let single = exception_event("ValueError", "bad", app_frames(1));
        let mut chained = single.clone();
        let cause =
            json!({"type": "KeyError", "value": "id", "stacktrace": {"frames": app_frames(1)}});
        if let Some(values) = chained["exception"]["values"].as_array_mut() {
            values.insert(0, cause);
        }
        assert_ne!(hash(&single), hash(&chained));
    }

    #[test]
    fn a_custom_fingerprint_replaces_the_default_grouping() {
        let mut a = exception_event("ValueError", "bad", app_frames(1));
        a["fingerprint"] = json!(["payments", 42, true]);
        let mut b = exception_event("KeyError", "other", vec![]);
        b["fingerprint"] = json!(["payments", "42", "true"]);
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(
            compute_grouping(&a).components,
            json!({"kind": "fingerprint", "values": ["payments", "42", "true"]})
        );
    }

    #[test]
    fn an_empty_fingerprint_uses_the_default_grouping() {
        let plain = exception_event("ValueError", "bad", app_frames(1));
        let mut empty = plain.clone();
        empty["fingerprint"] = json!([]);
        assert_eq!(hash(&plain), hash(&empty));
    }

    #[test]
    fn default_placeholder_in_a_fingerprint_expands_and_differs_from_plain_default() {
        let plain = exception_event("ValueError", "bad", app_frames(1));
        let mut spaced = plain.clone();
        spaced["fingerprint"] = json!(["{{ default }}", "tenant-a"]);
        let mut compact = plain.clone();
        compact["fingerprint"] = json!(["{{default}}", "tenant-a"]);
        let mut other_type = exception_event("KeyError", "bad", app_frames(1));
        other_type["fingerprint"] = json!(["{{ default }}", "tenant-a"]);

        assert_ne!(hash(&plain), hash(&spaced));
        assert_eq!(hash(&spaced), hash(&spaced.clone()));
        assert_eq!(hash(&spaced), hash(&compact));
        assert_ne!(hash(&spaced), hash(&other_type));

        let components = compute_grouping(&spaced).components;
        assert_eq!(components["kind"], "fingerprint");
        assert_eq!(components["default"]["kind"], "exception");
        assert_eq!(components["values"][0], json!(hash(&plain)));
    }

    #[test]
    fn messages_differing_only_in_variable_parts_share_a_hash() {
        let pairs = [
            (
                "Payment declined for order 17",
                "Payment declined for order 42",
            ),
            (
                "job 550e8400-e29b-41d4-a716-446655440000 failed",
                "job 123e4567-e89b-12d3-a456-426614174000 failed",
            ),
            (
                "object d41d8cd98f00b204e9800998ecf8427e gone",
                "object 0cc175b9c0f1b6a831c399e269772661 gone",
            ),
            ("bad pointer 0x7ffe1234", "bad pointer 0xdeadbeef"),
            (
                "mail to alice@example.com bounced",
                "mail to bob.smith@corp.io bounced",
            ),
            (
                "connect to 10.0.0.1 refused",
                "connect to 192.168.1.20 refused",
            ),
            (
                "connect to 2001:db8::1 refused",
                "connect to fe80::1ff:fe23:4567:890a refused",
            ),
            (
                "at 2024-01-02T10:00:00Z retry",
                "at 2025-12-31T23:59:59.123+01:00 retry",
            ),
            ("took 120ms", "took 1.5s"),
        ];
        for (a, b) in pairs {
            assert_eq!(
                hash(&message_event(a)),
                hash(&message_event(b)),
                "{a} vs {b}"
            );
        }
        assert_ne!(
            hash(&message_event("Payment declined for order 17")),
            hash(&message_event("Payment accepted for order 17"))
        );
    }

    #[test]
    fn only_the_first_two_message_lines_count() {
        let a = message_event("first\n\nsecond\nthird 1");
        let b = message_event("first\nsecond\nsomething else");
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn a_template_with_params_is_used_verbatim() {
        let event = json!({"logentry": {
            "message": "User %s failed login 3 times",
            "formatted": "User bob failed login 3 times",
            "params": ["bob"]
        }});
        assert_eq!(
            compute_grouping(&event).components,
            json!({"kind": "message", "values": ["User %s failed login 3 times"]})
        );
    }

    #[test]
    fn a_template_without_params_is_parameterised() {
        let event = json!({"logentry": {"message": "retry 3 of 5", "params": []}});
        assert_eq!(
            compute_grouping(&event).components["values"],
            json!(["retry <int> of <int>"])
        );
    }

    #[test]
    fn an_event_without_exception_or_message_falls_back() {
        let grouping = compute_grouping(&json!({"platform": "python"}));
        assert_eq!(
            grouping.components,
            json!({"kind": "fallback", "values": []})
        );
        assert_eq!(grouping.hash, hash(&json!({})));
    }

    #[test]
    fn a_synthetic_mechanism_ignores_type_and_value_for_grouping() {
        let mut a = exception_event("SIGSEGV", "Segfault at 0x0", app_frames(1));
        a["exception"]["values"][0]["mechanism"] = json!({"type": "signal", "synthetic": true});
        let mut b = exception_event("SIGABRT", "Abort", app_frames(1));
        b["exception"]["values"][0]["mechanism"] = json!({"type": "signal", "synthetic": true});
        assert_eq!(hash(&a), hash(&b));
        assert!(compute_grouping(&a).components["values"][0]
            .get("type")
            .is_none());
    }

    #[test]
    fn a_synthetic_mechanism_titles_with_the_crashing_function() {
        let mut event = exception_event("SIGSEGV", "Segfault", app_frames(1));
        event["exception"]["values"][0]["mechanism"] = json!({"synthetic": true});
        assert_eq!(title(&event), "charge: Segfault");
    }

    #[test]
    fn title_for_a_python_exception_uses_type_and_first_value_line() {
        let event = exception_event("ValueError", "bad input\ntraceback…", app_frames(1));
        assert_eq!(title(&event), "ValueError: bad input");
        assert_eq!(
            title(&exception_event("ValueError", "", vec![])),
            "ValueError"
        );
    }

    #[test]
    fn title_for_a_javascript_exception_uses_the_last_exception() {
        let event = json!({"platform": "javascript", "exception": {"values": [
            {"type": "Error", "value": "cause"},
            {"type": "TypeError", "value": "x is undefined"}
        ]}});
        assert_eq!(title(&event), "TypeError: x is undefined");
    }

    #[test]
    fn title_for_a_message_event_is_its_first_line_up_to_100_chars() {
        assert_eq!(
            title(&message_event("\nDisk almost full\nmore")),
            "Disk almost full"
        );
        let long = "é".repeat(150);
        assert_eq!(title(&message_event(&long)).chars().count(), 100);
        assert_eq!(title(&json!({})), "<unlabeled event>");
    }

    #[test]
    fn titles_are_truncated_to_200_chars_on_a_char_boundary() {
        let event = exception_event("E", &"ü".repeat(500), vec![]);
        assert_eq!(title(&event).chars().count(), 200);
    }

    #[test]
    fn culprit_for_python_is_module_in_function_of_the_top_in_app_frame() {
        let event = exception_event("ValueError", "bad", app_frames(1));
        assert_eq!(culprit(&event), "shop.payments in charge");
    }

    #[test]
    fn culprit_for_javascript_is_function_with_file_in_parentheses() {
        let event = json!({"platform": "javascript", "exception": {"values": [{
            "type": "TypeError",
            "stacktrace": {"frames": [
                {"filename": "app.js", "function": "main", "in_app": true},
                {"filename": "vendor.js", "function": "lib", "in_app": false}
            ]}
        }]}});
        assert_eq!(culprit(&event), "main(app.js)");
    }

    #[test]
    fn culprit_for_native_is_the_newest_function_without_in_app_frames() {
        let event = json!({"platform": "cocoa", "exception": {"values": [{
            "stacktrace": {"frames": [{"function": "main"}, {"function": "objc_throw"}]}
        }]}});
        assert_eq!(culprit(&event), "objc_throw");
    }

    #[test]
    fn culprit_prefers_explicit_fields_then_falls_back_to_the_request_url() {
        let mut event = exception_event("E", "v", app_frames(1));
        event["transaction"] = json!("/checkout");
        assert_eq!(culprit(&event), "/checkout");
        event["culprit"] = json!("custom");
        assert_eq!(culprit(&event), "custom");
        let message =
            json!({"logentry": {"formatted": "x"}, "request": {"url": "https://a.test/x"}});
        assert_eq!(culprit(&message), "https://a.test/x");
        assert_eq!(culprit(&message_event("x")), "");
    }

    #[test]
    fn wrong_typed_fields_never_panic() {
        let events = [
            json!(null),
            json!("event"),
            json!({"exception": "boom"}),
            json!({"exception": {"values": "abc"}}),
            json!({"exception": {"values": [5, null, {"type": 5, "value": [1],
                "mechanism": "x", "stacktrace": {"frames": "abc"}}]}}),
            json!({"exception": {"values": [{"stacktrace": {"frames": [1, "x", null,
                {"module": 3, "function": {}, "in_app": "yes", "lineno": "x"}]}}]}}),
            json!({"fingerprint": [null, {"a": 1}, [1]], "logentry": 7}),
            json!({"logentry": {"message": 1, "formatted": [], "params": "p"}, "culprit": 3,
                "transaction": false, "request": {"url": 9}, "platform": 1}),
        ];
        for event in &events {
            let grouping = compute_grouping(event);
            assert_eq!(grouping.hash.len(), 32);
            let _ = title(event);
            let _ = culprit(event);
        }
        let typed = json!({"exception": {"values": [{"type": 5}]}});
        assert_eq!(title(&typed), "Error");
    }

    #[test]
    fn parameterize_masks_each_kind_with_its_placeholder() {
        let cases = [
            ("Error with order #1231", "Error with order #<int>"),
            ("mail alice@example.com now", "mail <email> now"),
            (
                "GET https://api.example.com/v1?id=3. Done",
                "GET <url>. Done",
            ),
            ("resolve db.example.com failed", "resolve <hostname> failed"),
            ("from 127.0.0.1 and ::1", "from <ip> and <ip>"),
            (
                "trace 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 end",
                "trace <traceparent> end",
            ),
            ("id 550e8400-e29b-41d4-a716-446655440000", "id <uuid>"),
            (
                "commit da39a3ee5e6b4b0d3255bfef95601890afd80709",
                "commit <sha1>",
            ),
            ("blob d41d8cd98f00b204e9800998ecf8427e", "blob <md5>"),
            ("on 2024-01-02 at 10:11:12", "on <date> at <date>"),
            ("sent Tue, 3 Jun 2008 11:05:30 GMT ok", "sent <date> ok"),
            ("slow: 250ms and 1.5s", "slow: <duration> and <duration>"),
            (
                "addr 0x7fff5fbff8c8 token 1a2b3c4d5e",
                "addr <hex> token <hex>",
            ),
            ("ratio 0.75 of -3", "ratio <float> of <int>"),
            (
                "name='bob' ok=true x=\"y\"",
                "name=<quoted_str> ok=<bool> x=<quoted_str>",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parameterize(input), expected, "input: {input}");
        }
    }

    #[test]
    fn parameterize_leaves_prose_and_code_names_alone() {
        let cases = [
            "deadbeef accepted",
            "java.io.IOException in std::io::Error",
            "order-17 v2",
            "héllo wörld",
        ];
        let expected = [
            "deadbeef accepted",
            "java.io.IOException in std::io::Error",
            "order-<int> v2",
            "héllo wörld",
        ];
        for (input, expected) in cases.iter().zip(expected) {
            assert_eq!(parameterize(input), expected, "input: {input}");
        }
    }
    #[test]
    fn parameterize_reads_a_long_run_of_labels_sixteen_labels_at_a_time() {
        // Each rejected candidate used to run to the string's end, and the search restarted
        // one character later: quadratic in the run's length. Now a candidate spans at most
        // sixteen labels; the run stays as it was.
        let run = "a.".repeat(4000) + "com.x";
        assert_eq!(parameterize(&run), run);
        assert_eq!(
            parameterize("see api.example.com now"),
            "see <hostname> now"
        );
        let deep = "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.l11.l12.l13.l14.l15.l16.l17.example.com";
        assert_eq!(
            parameterize(deep),
            "l1.l2.<hostname>",
            "sixteen labels and the TLD"
        );
    }

    #[test]
    fn many_default_markers_hash_the_default_grouping_once() {
        let mut event = json!({"message": "boom", "fingerprint": ["{{ default }}", "x"]});
        let once = fingerprint_components(&event).unwrap();
        event["fingerprint"] = json!(vec!["{{default}}"; 5000]);
        let many = fingerprint_components(&event).unwrap();
        let values = many["values"].as_array().unwrap();
        assert_eq!(values.len(), 5000);
        assert!(values.iter().all(|v| *v == once["values"][0]));
    }
}
