//! The event's fields, each brought to its one canonical shape; what cannot be is dropped and
//! noted in the event's `errors`.

use serde_json::{json, Map, Value};

use super::limits::{truncate_chars, MAX_TAG_CHARS};
use super::{format_time, parse_timestamp};
use crate::config::Limits;

/// `{values: [...]}`, a bare list, or a single object: always a list. A value of another shape
/// is handed back untouched, to be reported.
pub(super) fn values_list(value: Value) -> Result<Vec<Value>, Value> {
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

/// `{"values": items}`, built by moving `items` in: `json!` would serialise them into a deep
/// copy (it takes interpolated values by reference), which cost more than all the rest of
/// normalising the exceptions and breadcrumbs.
pub(super) fn values_object(items: Vec<Value>) -> Value {
    let mut object = Map::new();
    object.insert("values".into(), Value::Array(items));
    Value::Object(object)
}

/// `exception.values.0` + `type` → `exception.values.0.type`, built only to report an error.
pub(super) fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

/// Processing errors listed per event; past it they are only counted (an event of half a
/// million invalid entries made as many error objects).
const MAX_ERRORS: usize = 100;

/// Tags kept per event: each becomes a row of its issue's tag values, on every event.
pub(super) const MAX_TAGS: usize = 200;

#[derive(Default)]
pub(super) struct Normalizer {
    errors: Vec<Value>,
    /// Errors past [`MAX_ERRORS`], counted only.
    unlisted: usize,
}

impl Normalizer {
    pub(super) fn invalid(&mut self, path: &str, value: &Value) {
        if self.errors.len() >= MAX_ERRORS {
            self.unlisted += 1;
            return;
        }
        let mut shown = value.to_string();
        if shown.len() > 200 {
            shown = shown.chars().take(200).collect::<String>() + "…";
        }
        self.errors
            .push(json!({ "type": "invalid_data", "name": path, "value": shown }));
    }

    pub(super) fn record_errors(&mut self, event: &mut Map<String, Value>) {
        if self.errors.is_empty() {
            return;
        }
        if self.unlisted > 0 {
            self.errors.push(json!({
                "type": "invalid_data",
                "name": "",
                "value": format!("{} more not listed", self.unlisted),
            }));
        }
        let mut errors = match event.remove("errors") {
            Some(Value::Array(existing)) => existing,
            _ => Vec::new(),
        };
        errors.append(&mut self.errors);
        event.insert("errors".into(), Value::Array(errors));
    }

    /// Keeps strings, stringifies numbers and booleans, drops anything else.
    pub(super) fn string_field(&mut self, map: &mut Map<String, Value>, key: &str) {
        self.coerce_string(map, key, "");
    }

    /// Fields are checked in place: most are fine, and a well-formed event should cost no
    /// allocation or reordering. `base` is the parent's path, joined only to report an error.
    pub(super) fn coerce_string(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        let Some(value) = map.get_mut(key) else {
            return;
        };
        match value {
            Value::String(_) => {}
            Value::Number(_) | Value::Bool(_) => *value = Value::String(value.to_string()),
            _ => self.drop_field(map, key, base),
        }
    }

    pub(super) fn object_field(&mut self, map: &mut Map<String, Value>, key: &str) {
        if !matches!(map.get(key), None | Some(Value::Object(_))) {
            self.drop_field(map, key, "");
        }
    }

    /// Removes a field of the wrong type; a `null` is simply absent, anything else is noted.
    pub(super) fn drop_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        match map.remove(key) {
            None | Some(Value::Null) => {}
            Some(bad) => self.invalid(&join(base, key), &bad),
        }
    }

    /// `message` (string or object) and `logentry` become one `logentry` object.
    pub(super) fn logentry(&mut self, event: &mut Map<String, Value>) {
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

    pub(super) fn logentry_value(
        &mut self,
        value: Value,
        path: &str,
    ) -> Option<Map<String, Value>> {
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
}

impl Normalizer {
    /// Integers stay; numeric strings become integers; anything else is dropped and noted.
    pub(super) fn integer_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
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

    pub(super) fn bool_field(&mut self, map: &mut Map<String, Value>, key: &str, base: &str) {
        let Some(value) = map.get_mut(key) else {
            return;
        };
        match value {
            Value::Bool(_) => {}
            Value::String(s) if s == "true" || s == "false" => *value = Value::Bool(s == "true"),
            _ => self.drop_field(map, key, base),
        }
    }

    pub(super) fn breadcrumbs(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
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
            if let Some(ts) = crumb.get_mut("timestamp") {
                match parse_timestamp(ts) {
                    Some(t) => *ts = Value::String(format_time(t)),
                    None => {
                        self.drop_field(&mut crumb, "timestamp", &format!("breadcrumbs.values.{i}"))
                    }
                }
            }
            // Most breadcrumbs are well-formed: their error path is built only when needed.
            if !is_well_typed_crumb(&crumb) {
                let base = format!("breadcrumbs.values.{i}");
                for key in CRUMB_TEXT_FIELDS {
                    self.coerce_string(&mut crumb, key, &base);
                }
                self.object_field(&mut crumb, "data");
            }
            crumbs.push(Value::Object(crumb));
        }
        event.insert("breadcrumbs".into(), values_object(crumbs));
    }

    /// Tags as an object or a list of pairs become an object of strings of at most 200 chars.
    pub(super) fn tags(&mut self, event: &mut Map<String, Value>) {
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
        let mut dropped = 0;
        for (key, value) in pairs {
            let Some(value) = tag_text(&value) else {
                continue;
            };
            let key = truncate_chars(key.trim(), MAX_TAG_CHARS);
            if key.is_empty() {
                continue;
            }
            if tags.len() < MAX_TAGS || tags.contains_key(&key) {
                tags.insert(key, Value::String(truncate_chars(&value, MAX_TAG_CHARS)));
            } else {
                dropped += 1;
            }
        }
        if dropped > 0 {
            let note = format!("{dropped} tags past the first {MAX_TAGS} dropped");
            self.invalid("tags", &Value::String(note));
        }
        event.insert("tags".into(), Value::Object(tags));
    }

    pub(super) fn fingerprint(&mut self, event: &mut Map<String, Value>) {
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
    pub(super) fn contexts(&mut self, event: &mut Map<String, Value>) {
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

pub(super) fn tag_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// A breadcrumb's fields that must be text.
const CRUMB_TEXT_FIELDS: [&str; 4] = ["type", "category", "message", "level"];

/// Whether a breadcrumb's text fields are text (or absent) and its `data` an object (or absent).
fn is_well_typed_crumb(crumb: &Map<String, Value>) -> bool {
    CRUMB_TEXT_FIELDS
        .iter()
        .all(|key| matches!(crumb.get(*key), None | Some(Value::String(_))))
        && matches!(crumb.get("data"), None | Some(Value::Object(_)))
}
