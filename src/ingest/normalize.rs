//! Turns an event as an SDK sent it into Faultline's canonical form (PROTOCOL.md §8): the many
//! accepted shapes of each field become one, wrong-typed fields are dropped or stringified and
//! noted in `errors` (never the whole event refused), and every string and list is bounded.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::config::Limits;

/// Levels of free-form nesting above the event's own structure
/// (event → exception → values → [i] → stacktrace → frames → [j] → vars).
const STRUCTURAL_DEPTH: usize = 8;
/// Sentry's limit for tag keys and values.
const MAX_TAG_CHARS: usize = 200;
/// Timestamps further in the future than this are taken as a wrong clock.
const MAX_CLOCK_SKEW_SECONDS: i64 = 60;

/// An event ready for grouping and storage.
#[derive(Debug, Clone)]
pub struct NormalizedEvent {
    pub event_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub level: String,
    /// The canonical event, as stored and shown.
    pub body: Value,
}

/// What the envelope around the event says about it.
#[derive(Debug, Default, Clone)]
pub struct EnvelopeContext {
    pub event_id: Option<String>,
    pub sdk: Option<Value>,
    pub client_ip: Option<String>,
}

pub fn normalize(
    raw: Map<String, Value>,
    context: &EnvelopeContext,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> NormalizedEvent {
    let mut normalizer = Normalizer { errors: Vec::new() };
    let mut event = raw;

    let event_id = pick_event_id(context.event_id.as_deref(), event.get("event_id"));
    let timestamp = event
        .get("timestamp")
        .and_then(parse_timestamp)
        .filter(|t| (*t - received_at).num_seconds() <= MAX_CLOCK_SKEW_SECONDS)
        .unwrap_or(received_at);
    let level = event
        .get("level")
        .and_then(normalize_level)
        .unwrap_or("error")
        .to_owned();

    event.insert("event_id".into(), json!(event_id.simple().to_string()));
    event.insert("timestamp".into(), json!(format_time(timestamp)));
    event.insert("received".into(), json!(format_time(received_at)));
    event.insert("level".into(), json!(level));
    normalizer.string_field(&mut event, "platform");
    if !event.contains_key("platform") {
        event.insert("platform".into(), json!("other"));
    }
    for key in [
        "logger",
        "transaction",
        "server_name",
        "release",
        "dist",
        "environment",
        "culprit",
        "type",
    ] {
        normalizer.string_field(&mut event, key);
    }
    normalizer.logentry(&mut event);
    normalizer.exceptions(&mut event, limits);
    normalizer.threads(&mut event, limits);
    normalizer.breadcrumbs(&mut event, limits);
    normalizer.tags(&mut event);
    normalizer.fingerprint(&mut event);
    for key in ["user", "request", "contexts", "extra", "sdk", "modules"] {
        normalizer.object_field(&mut event, key);
    }
    normalizer.contexts(&mut event);
    fill_user_ip(&mut event, context.client_ip.as_deref());
    if !event.contains_key("sdk") {
        if let Some(sdk) = context.sdk.clone().filter(Value::is_object) {
            event.insert("sdk".into(), sdk);
        }
    }
    normalizer.record_errors(&mut event);

    NormalizedEvent {
        event_id,
        timestamp,
        level,
        body: Value::Object(event),
    }
}

/// Cuts long strings and deep nesting. Runs after scrubbing, so a secret is never cut in half
/// where the scrubber could no longer recognise it.
pub fn apply_limits(body: &mut Value, limits: &Limits) {
    bound(
        body,
        STRUCTURAL_DEPTH + limits.max_json_depth,
        limits.max_string_chars,
    );
}

/// The envelope header's id wins over the payload's; a missing or invalid one is generated.
fn pick_event_id(header: Option<&str>, payload: Option<&Value>) -> Uuid {
    header
        .and_then(|s| Uuid::try_parse(s).ok())
        .or_else(|| {
            payload
                .and_then(Value::as_str)
                .and_then(|s| Uuid::try_parse(s).ok())
        })
        .unwrap_or_else(Uuid::new_v4)
}

pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// RFC 3339 strings (with or without zone), or seconds since the epoch as a number or string.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => from_epoch_seconds(n.as_f64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                return Some(Utc.from_utc_datetime(&t));
            }
            s.parse::<f64>().ok().and_then(from_epoch_seconds)
        }
        _ => None,
    }
}

fn from_epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || !(0.0..1e11).contains(&seconds) {
        return None;
    }
    let micros = (seconds * 1_000_000.0).round() as i64;
    DateTime::from_timestamp_micros(micros)
}

/// Sentry's level names, plus the aliases and numeric levels Relay accepts.
fn normalize_level(value: &Value) -> Option<&'static str> {
    let level = match value {
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "fatal" | "critical" => "fatal",
            "error" => "error",
            "warning" | "warn" => "warning",
            "info" | "log" => "info",
            "debug" | "trace" => "debug",
            _ => return None,
        },
        Value::Number(n) => match n.as_i64()? {
            50 => "fatal",
            40 => "error",
            30 => "warning",
            20 => "info",
            10 => "debug",
            _ => return None,
        },
        _ => return None,
    };
    Some(level)
}

/// `{values: [...]}`, a bare list, or a single object: always a list. A value of another shape
/// is handed back untouched, to be reported.
fn values_list(value: Value) -> Result<Vec<Value>, Value> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(mut map) => match map.remove("values") {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => {
                map.insert("values".into(), other);
                Err(Value::Object(map))
            }
            None if !map.is_empty() => Ok(vec![Value::Object(map)]),
            None => Ok(Vec::new()),
        },
        other => Err(other),
    }
}

/// `exception.values.0` + `type` → `exception.values.0.type`, built only to report an error.
fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

struct Normalizer {
    errors: Vec<Value>,
}

impl Normalizer {
    fn invalid(&mut self, path: &str, value: &Value) {
        let mut shown = value.to_string();
        if shown.len() > 200 {
            shown = shown.chars().take(200).collect::<String>() + "…";
        }
        self.errors
            .push(json!({ "type": "invalid_data", "name": path, "value": shown }));
    }

    fn record_errors(&mut self, event: &mut Map<String, Value>) {
        if self.errors.is_empty() {
            return;
        }
        let mut errors = match event.remove("errors") {
            Some(Value::Array(existing)) => existing,
            _ => Vec::new(),
        };
        errors.append(&mut self.errors);
        event.insert("errors".into(), Value::Array(errors));
    }

    /// Keeps strings, stringifies numbers and booleans, drops anything else.
    fn string_field(&mut self, map: &mut Map<String, Value>, key: &str) {
        self.coerce_string(map, key, "");
    }

    /// Fields are checked in place: most are fine, and a well-formed event should cost no
    /// allocation or reordering. `base` is the parent's path, joined only to report an error.
    fn coerce_string(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        let Some(value) = map.get_mut(key) else {
            return;
        };
        match value {
            Value::String(_) => {}
            Value::Number(_) | Value::Bool(_) => *value = Value::String(value.to_string()),
            _ => self.drop_field(map, key, base),
        }
    }

    fn object_field(&mut self, map: &mut Map<String, Value>, key: &str) {
        if !matches!(map.get(key), None | Some(Value::Object(_))) {
            self.drop_field(map, key, "");
        }
    }

    /// Removes a field of the wrong type; a `null` is simply absent, anything else is noted.
    fn drop_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        match map.remove(key) {
            None | Some(Value::Null) => {}
            Some(bad) => self.invalid(&join(base, key), &bad),
        }
    }

    /// `message` (string or object) and `logentry` become one `logentry` object.
    fn logentry(&mut self, event: &mut Map<String, Value>) {
        let logentry = event
            .remove("logentry")
            .and_then(|v| self.logentry_value(v, "logentry"));
        let message = event
            .remove("message")
            .and_then(|v| self.logentry_value(v, "message"));
        if let Some(entry) = logentry.or(message) {
            event.insert("logentry".into(), Value::Object(entry));
        }
    }

    fn logentry_value(&mut self, value: Value, path: &str) -> Option<Map<String, Value>> {
        let mut entry = match value {
            Value::String(s) if !s.is_empty() => {
                let mut m = Map::new();
                m.insert("formatted".into(), Value::String(s));
                m
            }
            Value::Object(m) => m,
            Value::Null => return None,
            Value::String(_) => return None,
            other => {
                self.invalid(path, &other);
                return None;
            }
        };
        self.coerce_string(&mut entry, "message", path);
        self.coerce_string(&mut entry, "formatted", path);
        if let Some(params) = entry.get("params") {
            if !(params.is_array() || params.is_object()) {
                let bad = entry.remove("params").unwrap_or_default();
                self.invalid(&format!("{path}.params"), &bad);
            }
        }
        if !entry.contains_key("formatted") {
            let template = entry.get("message").cloned()?;
            entry.insert("formatted".into(), template);
        }
        Some(entry)
    }

    fn exceptions(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
        let legacy_stacktrace = event.remove("stacktrace");
        let Some(raw) = event.remove("exception") else {
            if let Some(stacktrace) = legacy_stacktrace {
                // A bare top-level stack trace (legacy SDKs) belongs to a thread.
                let thread = json!({ "crashed": true, "stacktrace": stacktrace });
                event.insert("threads".into(), json!({ "values": [thread] }));
            }
            return;
        };
        let values = match values_list(raw) {
            Ok(values) => values,
            Err(raw) => {
                self.invalid("exception", &raw);
                return;
            }
        };
        let mut exceptions: Vec<Value> = Vec::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            match value {
                Value::Object(exception) => {
                    let path = format!("exception.values.{i}");
                    exceptions.push(Value::Object(self.exception(exception, &path, limits)));
                }
                other => self.invalid(&format!("exception.values.{i}"), &other),
            }
        }
        if let (Some(stacktrace), Some(Value::Object(last))) =
            (legacy_stacktrace, exceptions.last_mut())
        {
            if !last.contains_key("stacktrace") {
                if let Some(st) = self.stacktrace(stacktrace, "stacktrace", limits) {
                    last.insert("stacktrace".into(), st);
                }
            }
        }
        if !exceptions.is_empty() {
            event.insert("exception".into(), json!({ "values": exceptions }));
        }
    }

    fn exception(
        &mut self,
        mut exception: Map<String, Value>,
        path: &str,
        limits: &Limits,
    ) -> Map<String, Value> {
        for key in ["type", "value", "module"] {
            self.coerce_string(&mut exception, key, path);
        }
        if let Some(mechanism) = exception.remove("mechanism") {
            match mechanism {
                Value::Object(mut m) => {
                    let mechanism_path = format!("{path}.mechanism");
                    self.coerce_string(&mut m, "type", &mechanism_path);
                    for flag in ["handled", "synthetic"] {
                        self.bool_field(&mut m, flag, &mechanism_path);
                    }
                    exception.insert("mechanism".into(), Value::Object(m));
                }
                Value::Null => {}
                other => self.invalid(&format!("{path}.mechanism"), &other),
            }
        }
        if let Some(raw) = exception.remove("stacktrace") {
            if let Some(st) = self.stacktrace(raw, &format!("{path}.stacktrace"), limits) {
                exception.insert("stacktrace".into(), st);
            }
        }
        exception
    }

    fn threads(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
        let Some(raw) = event.remove("threads") else {
            return;
        };
        let values = match values_list(raw) {
            Ok(values) => values,
            Err(raw) => {
                self.invalid("threads", &raw);
                return;
            }
        };
        let mut threads = Vec::with_capacity(values.len());
        for (i, value) in values.into_iter().enumerate() {
            let Value::Object(mut thread) = value else {
                self.invalid(&format!("threads.values.{i}"), &value);
                continue;
            };
            let base = format!("threads.values.{i}");
            self.coerce_string(&mut thread, "name", &base);
            for flag in ["crashed", "current", "main"] {
                self.bool_field(&mut thread, flag, &base);
            }
            if let Some(raw) = thread.remove("stacktrace") {
                if let Some(st) =
                    self.stacktrace(raw, &format!("threads.values.{i}.stacktrace"), limits)
                {
                    thread.insert("stacktrace".into(), st);
                }
            }
            threads.push(Value::Object(thread));
        }
        event.insert("threads".into(), json!({ "values": threads }));
    }

    fn stacktrace(&mut self, raw: Value, path: &str, limits: &Limits) -> Option<Value> {
        let (frames, mut rest) = match raw {
            Value::Object(mut m) => (m.remove("frames"), m),
            Value::Array(frames) => (Some(Value::Array(frames)), Map::new()),
            Value::Null => return None,
            other => {
                self.invalid(path, &other);
                return None;
            }
        };
        let frames = match frames {
            Some(Value::Array(frames)) => frames,
            None | Some(Value::Null) => Vec::new(),
            Some(other) => {
                self.invalid(&format!("{path}.frames"), &other);
                Vec::new()
            }
        };
        let mut normalized = Vec::with_capacity(frames.len().min(limits.max_frames));
        for (j, frame) in trim_middle(frames, limits.max_frames)
            .into_iter()
            .enumerate()
        {
            match frame {
                Value::Object(frame) => normalized.push(Value::Object(
                    self.frame(frame, &format!("{path}.frames.{j}")),
                )),
                other => self.invalid(&format!("{path}.frames.{j}"), &other),
            }
        }
        rest.insert("frames".into(), Value::Array(normalized));
        Some(Value::Object(rest))
    }

    fn frame(&mut self, mut frame: Map<String, Value>, path: &str) -> Map<String, Value> {
        const STRINGS: [&str; 10] = [
            "filename",
            "abs_path",
            "function",
            "raw_function",
            "module",
            "package",
            "platform",
            "context_line",
            "instruction_addr",
            "symbol",
        ];
        for key in STRINGS {
            self.coerce_string(&mut frame, key, path);
        }
        for key in ["lineno", "colno"] {
            self.integer_field(&mut frame, key, path);
        }
        self.bool_field(&mut frame, "in_app", path);
        for key in ["pre_context", "post_context"] {
            match frame.remove(key) {
                None | Some(Value::Null) => {}
                Some(Value::Array(lines)) => {
                    let lines: Vec<Value> = lines
                        .into_iter()
                        .map(|line| match line {
                            Value::String(s) => Value::String(s),
                            Value::Null => Value::String(String::new()),
                            other => Value::String(other.to_string()),
                        })
                        .collect();
                    frame.insert(key.into(), Value::Array(lines));
                }
                Some(other) => self.invalid(&format!("{path}.{key}"), &other),
            }
        }
        self.object_field(&mut frame, "vars");
        frame
    }

    /// Integers stay; numeric strings become integers; anything else is dropped and noted.
    fn integer_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        let Some(value) = map.get_mut(key) else {
            return;
        };
        match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => {}
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                *value = json!(s.trim().parse::<i64>().unwrap_or_default());
            }
            _ => self.drop_field(map, key, base),
        }
    }

    fn bool_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        let Some(value) = map.get_mut(key) else {
            return;
        };
        match value {
            Value::Bool(_) => {}
            Value::String(s) if s == "true" || s == "false" => *value = Value::Bool(s == "true"),
            _ => self.drop_field(map, key, base),
        }
    }

    fn breadcrumbs(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
        let Some(raw) = event.remove("breadcrumbs") else {
            return;
        };
        let values = match values_list(raw) {
            Ok(values) => values,
            Err(raw) => {
                self.invalid("breadcrumbs", &raw);
                return;
            }
        };
        // The newest breadcrumbs are the ones that explain the error.
        let skip = values.len().saturating_sub(limits.max_breadcrumbs);
        let mut crumbs = Vec::with_capacity(values.len() - skip);
        for (i, value) in values.into_iter().enumerate().skip(skip) {
            let Value::Object(mut crumb) = value else {
                self.invalid(&format!("breadcrumbs.values.{i}"), &value);
                continue;
            };
            let base = format!("breadcrumbs.values.{i}");
            if let Some(ts) = crumb.get_mut("timestamp") {
                match parse_timestamp(ts) {
                    Some(t) => *ts = json!(format_time(t)),
                    None => self.drop_field(&mut crumb, "timestamp", &base),
                }
            }
            for key in ["type", "category", "message", "level"] {
                self.coerce_string(&mut crumb, key, &base);
            }
            self.object_field(&mut crumb, "data");
            crumbs.push(Value::Object(crumb));
        }
        event.insert("breadcrumbs".into(), json!({ "values": crumbs }));
    }

    /// Tags as an object or a list of pairs become an object of strings of at most 200 chars.
    fn tags(&mut self, event: &mut Map<String, Value>) {
        let Some(raw) = event.remove("tags") else {
            return;
        };
        let pairs: Vec<(String, Value)> = match raw {
            Value::Object(map) => map.into_iter().collect(),
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| match item {
                    Value::Array(mut pair) if pair.len() == 2 => {
                        let value = pair.pop()?;
                        let key = tag_text(&pair.pop()?)?;
                        Some((key, value))
                    }
                    _ => None,
                })
                .collect(),
            Value::Null => return,
            other => {
                self.invalid("tags", &other);
                return;
            }
        };
        let mut tags = Map::new();
        for (key, value) in pairs {
            let Some(value) = tag_text(&value) else {
                continue;
            };
            let key = truncate_chars(key.trim(), MAX_TAG_CHARS);
            if !key.is_empty() {
                tags.insert(key, Value::String(truncate_chars(&value, MAX_TAG_CHARS)));
            }
        }
        event.insert("tags".into(), Value::Object(tags));
    }

    fn fingerprint(&mut self, event: &mut Map<String, Value>) {
        let Some(raw) = event.remove("fingerprint") else {
            return;
        };
        match raw {
            Value::Array(parts) => {
                let parts: Vec<Value> = parts
                    .iter()
                    .filter_map(tag_text)
                    .map(Value::String)
                    .collect();
                if !parts.is_empty() {
                    event.insert("fingerprint".into(), Value::Array(parts));
                }
            }
            Value::String(s) if !s.is_empty() => {
                event.insert("fingerprint".into(), json!([s]));
            }
            Value::Null => {}
            other => self.invalid("fingerprint", &other),
        }
    }

    /// Every context is an object with a `type` (defaulting to its key, as Sentry does).
    fn contexts(&mut self, event: &mut Map<String, Value>) {
        let Some(Value::Object(contexts)) = event.get_mut("contexts") else {
            return;
        };
        let mut dropped = Vec::new();
        for (key, context) in contexts.iter_mut() {
            match context {
                Value::Object(c) => {
                    if !c.get("type").is_some_and(Value::is_string) {
                        c.insert("type".into(), Value::String(key.clone()));
                    }
                }
                _ => dropped.push(key.clone()),
            }
        }
        for key in dropped {
            if let Some(bad) = contexts.remove(&key) {
                self.invalid(&format!("contexts.{key}"), &bad);
            }
        }
    }
}

/// Browser SDKs ask the server to fill in the sender's address.
fn fill_user_ip(event: &mut Map<String, Value>, client_ip: Option<&str>) {
    let Some(Value::Object(user)) = event.get_mut("user") else {
        return;
    };
    if user.get("ip_address").and_then(Value::as_str) == Some("{{auto}}") {
        match client_ip {
            Some(ip) => user.insert("ip_address".into(), json!(ip)),
            None => user.remove("ip_address"),
        };
    }
}

fn tag_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// Keeps the outermost frames (where the program started and where it crashed), as Sentry
/// trims long stacks from the middle.
fn trim_middle(mut frames: Vec<Value>, max: usize) -> Vec<Value> {
    if frames.len() <= max {
        return frames;
    }
    let head = max / 2;
    let tail = max - head;
    let cut = frames.len() - tail;
    frames.drain(head..cut);
    frames
}

pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((byte, _)) => format!("{}…", &s[..byte]),
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

    fn run(event: Value) -> NormalizedEvent {
        let Value::Object(map) = event else {
            panic!("test events are objects")
        };
        normalize(
            map,
            &EnvelopeContext::default(),
            Utc::now(),
            &Limits::default(),
        )
    }

    #[test]
    fn timestamps_are_read_as_strings_and_numbers() {
        let as_string = run(json!({"timestamp": "2026-01-01T12:00:00.100000Z"}));
        let as_number = run(json!({"timestamp": 1767268800.1}));
        let naive = run(json!({"timestamp": "2026-01-01T12:00:00.1"}));
        assert_eq!(as_string.timestamp, as_number.timestamp);
        assert_eq!(as_string.timestamp, naive.timestamp);
    }

    #[test]
    fn message_string_and_object_become_logentry() {
        let plain = run(json!({"message": "hello"}));
        assert_eq!(plain.body["logentry"]["formatted"], "hello");
        let object = run(json!({"message": {"message": "User %s", "params": ["bob"]}}));
        assert_eq!(object.body["logentry"]["message"], "User %s");
        assert_eq!(object.body["logentry"]["formatted"], "User %s");
        assert!(object.body.get("message").is_none());
    }

    #[test]
    fn bare_lists_and_values_wrappers_are_both_accepted() {
        let bare = run(json!({"exception": [{"type": "E"}], "breadcrumbs": [{"message": "m"}]}));
        assert_eq!(bare.body["exception"]["values"][0]["type"], "E");
        assert_eq!(bare.body["breadcrumbs"]["values"][0]["message"], "m");
    }

    #[test]
    fn tags_as_pairs_become_an_object_of_strings() {
        let event = run(json!({"tags": [["a", "1"], ["b", 2], ["bad"]]}));
        assert_eq!(event.body["tags"], json!({"a": "1", "b": "2"}));
    }

    #[test]
    fn a_bad_lineno_is_dropped_and_noted_but_the_frame_kept() {
        let event = run(
            json!({"exception": {"values": [{"type": "E", "stacktrace": {"frames": [
                {"function": "f", "lineno": "abc"}, {"function": "g", "lineno": "12"}
            ]}}]}}),
        );
        let frames = &event.body["exception"]["values"][0]["stacktrace"]["frames"];
        assert_eq!(frames[0]["function"], "f");
        assert!(frames[0].get("lineno").is_none());
        assert_eq!(frames[1]["lineno"], 12);
        assert_eq!(
            event.body["errors"][0]["name"],
            "exception.values.0.stacktrace.frames.0.lineno"
        );
    }

    #[test]
    fn every_field_of_the_wrong_type_still_gives_an_event() {
        let event = run(json!({
            "event_id": 5, "timestamp": {}, "level": [], "platform": {}, "message": 3,
            "exception": "boom", "breadcrumbs": 7, "tags": "x", "user": [], "request": 1,
            "contexts": {"os": 5}, "extra": "e", "fingerprint": {}, "threads": false, "sdk": 1
        }));
        assert_eq!(event.level, "error");
        assert_eq!(event.body["platform"], "other");
        assert!(event.body["errors"].as_array().unwrap().len() >= 10);
    }

    #[test]
    fn long_stacks_are_trimmed_from_the_middle_and_breadcrumbs_keep_the_newest() {
        let frames: Vec<Value> = (0..10_000)
            .map(|i| json!({"function": format!("f{i}")}))
            .collect();
        let crumbs: Vec<Value> = (0..500)
            .map(|i| json!({"message": format!("c{i}")}))
            .collect();
        let event = run(
            json!({"exception": [{"type": "E", "stacktrace": {"frames": frames}}], "breadcrumbs": crumbs}),
        );
        let kept = event.body["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .unwrap();
        assert_eq!(kept.len(), 250);
        assert_eq!(kept[0]["function"], "f0");
        assert_eq!(kept[249]["function"], "f9999");
        let crumbs = event.body["breadcrumbs"]["values"].as_array().unwrap();
        assert_eq!(crumbs.len(), 100);
        assert_eq!(crumbs[99]["message"], "c499");
    }

    #[test]
    fn long_strings_are_cut_and_deep_values_replaced() {
        let mut deep = json!("bottom");
        for _ in 0..100 {
            deep = json!({ "d": deep });
        }
        let mut event = run(json!({"extra": {"big": "x".repeat(1_000_000), "deep": deep}}));
        apply_limits(&mut event.body, &Limits::default());
        let big = event.body["extra"]["big"].as_str().unwrap();
        assert_eq!(big.chars().count(), 8193);
        assert!(event.body.to_string().contains("nested too deeply"));
    }

    #[test]
    fn envelope_event_id_wins_and_invalid_ids_are_replaced() {
        let context = EnvelopeContext {
            event_id: Some("9ec79c33ec9942ab8353589fcb2e04dc".into()),
            ..Default::default()
        };
        let Value::Object(map) = json!({"event_id": "00000000000000000000000000000001"}) else {
            unreachable!()
        };
        let event = normalize(map, &context, Utc::now(), &Limits::default());
        assert_eq!(
            event.event_id.simple().to_string(),
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        assert_ne!(run(json!({"event_id": "nope"})).event_id, Uuid::nil());
    }

    #[test]
    fn numeric_levels_and_aliases_are_mapped() {
        assert_eq!(run(json!({"level": "warn"})).level, "warning");
        assert_eq!(run(json!({"level": 50})).level, "fatal");
        assert_eq!(run(json!({"level": "critical"})).level, "fatal");
    }
}
