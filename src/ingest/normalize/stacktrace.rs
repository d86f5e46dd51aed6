//! Exceptions, threads and their stack traces: frames oldest first, bounded from the middle.

use serde_json::{Map, Value};

use super::fields::{values_list, values_object, Normalizer};
use crate::config::Limits;

impl Normalizer {
    pub(super) fn exceptions(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
        let legacy_stacktrace = event.remove("stacktrace");
        let Some(raw) = event.remove("exception") else {
            if let Some(stacktrace) = legacy_stacktrace {
                // A bare top-level stack trace (legacy SDKs) belongs to a thread.
                let mut thread = Map::new();
                thread.insert("crashed".into(), Value::Bool(true));
                thread.insert("stacktrace".into(), stacktrace);
                event.insert("threads".into(), values_object(vec![Value::Object(thread)]));
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
            event.insert("exception".into(), values_object(exceptions));
        }
    }

    pub(super) fn exception(
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

    pub(super) fn threads(&mut self, event: &mut Map<String, Value>, limits: &Limits) {
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
        event.insert("threads".into(), values_object(threads));
    }

    pub(super) fn stacktrace(&mut self, raw: Value, path: &str, limits: &Limits) -> Option<Value> {
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
                // Most frames are well-formed: their error path is built only when needed.
                Value::Object(frame) if is_well_typed_frame(&frame) => {
                    normalized.push(Value::Object(frame))
                }
                Value::Object(frame) => normalized.push(Value::Object(
                    self.frame(frame, &format!("{path}.frames.{j}")),
                )),
                other => self.invalid(&format!("{path}.frames.{j}"), &other),
            }
        }
        rest.insert("frames".into(), Value::Array(normalized));
        Some(Value::Object(rest))
    }

    pub(super) fn frame(
        &mut self,
        mut frame: Map<String, Value>,
        path: &str,
    ) -> Map<String, Value> {
        for key in FRAME_TEXT_FIELDS {
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
}

/// A frame's fields that must be text.
const FRAME_TEXT_FIELDS: [&str; 10] = [
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

/// Whether [`Normalizer::frame`] would leave `frame` as it is: one pass over its fields instead
/// of a lookup per known field.
fn is_well_typed_frame(frame: &Map<String, Value>) -> bool {
    frame.iter().all(|(key, value)| match key.as_str() {
        "lineno" | "colno" => matches!(value, Value::Number(n) if n.is_i64() || n.is_u64()),
        "in_app" => value.is_boolean(),
        "pre_context" | "post_context" => {
            matches!(value, Value::Array(lines) if lines.iter().all(Value::is_string))
        }
        "vars" => value.is_object(),
        key if FRAME_TEXT_FIELDS.contains(&key) => value.is_string(),
        _ => true,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        map
    }

    #[test]
    fn a_frame_passes_the_quick_check_exactly_when_normalising_leaves_it_as_it_is() {
        let frames = [
            json!({"function": "f", "lineno": 3, "colno": 1, "in_app": true, "vars": {"a": 1},
                   "pre_context": ["a"], "post_context": [], "filename": "x.py", "extra": [1]}),
            json!({"function": 7}),
            json!({"function": null}),
            json!({"filename": ["x"]}),
            json!({"lineno": "12"}),
            json!({"lineno": 1.5}),
            json!({"colno": -1}),
            json!({"in_app": "true"}),
            json!({"pre_context": ["a", null]}),
            json!({"post_context": [1]}),
            json!({"post_context": "a"}),
            json!({"vars": []}),
            json!({"vars": null}),
            json!({"symbol": false}),
        ];
        for frame in frames {
            let frame = object(frame);
            let normalized = Normalizer::default().frame(frame.clone(), "f");
            assert_eq!(
                is_well_typed_frame(&frame),
                normalized == frame,
                "{frame:?} became {normalized:?}"
            );
        }
    }
}
