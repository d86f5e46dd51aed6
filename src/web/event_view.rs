//! Turns a stored event (hostile JSON) into plain display data for the event template. Only
//! text comes out of here; the template escapes all of it.

use serde_json::{Map, Value};

use crate::domain::event_shape;

pub struct EventView {
    pub message: Option<String>,
    /// The raised exception first, then what caused it, as Sentry shows a chain.
    pub exceptions: Vec<ExceptionView>,
    pub breadcrumbs: Vec<CrumbView>,
    pub request: Option<RequestView>,
    pub user: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub contexts: Vec<ContextView>,
    /// Release, environment, server, SDK, logger, transaction…
    pub facts: Vec<(String, String)>,
    pub extra: Vec<(String, String)>,
    pub processing_errors: Vec<String>,
}

pub struct ExceptionView {
    pub exception_type: String,
    pub value: String,
    pub module: String,
    pub mechanism: String,
    pub unhandled: bool,
    pub caused: bool,
    pub frame_groups: Vec<FrameGroup>,
    pub frame_count: usize,
}

/// Consecutive frames shown together: in-app frames one by one, runs of system frames
/// folded into one collapsible group unless the full stack is asked for.
pub struct FrameGroup {
    pub system: bool,
    pub frames: Vec<FrameView>,
}

pub struct FrameView {
    pub in_app: bool,
    pub location: String,
    pub function: String,
    pub line: String,
    pub context: Vec<ContextLine>,
    pub vars: Vec<(String, String)>,
    /// Where the SDK said the frame was, when a source map moved it: `app.min.js:1:15 in a`.
    pub minified: Option<String>,
}

pub struct ContextLine {
    pub number: String,
    pub text: String,
    pub current: bool,
}

pub struct CrumbView {
    pub time: String,
    pub category: String,
    pub level: String,
    pub message: String,
    pub data: String,
}

pub struct RequestView {
    pub method: String,
    pub url: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub cookies: String,
    pub body: String,
    pub env: Vec<(String, String)>,
}

pub struct ContextView {
    pub name: String,
    pub entries: Vec<(String, String)>,
}

pub fn build(event: &Value, full_stack: bool) -> EventView {
    EventView {
        message: message(event),
        exceptions: exceptions(event, full_stack),
        breadcrumbs: breadcrumbs(event),
        request: request(event),
        user: entries(event.get("user")),
        tags: entries(event.get("tags")),
        contexts: contexts(event),
        facts: facts(event),
        extra: entries(event.get("extra")),
        processing_errors: processing_errors(event),
    }
}

/// A JSON value as one readable line of text: strings bare, the rest as compact JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn pretty(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn entries(value: Option<&Value>) -> Vec<(String, String)> {
    match value {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), pretty(v))).collect(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| Some((text(p.get(0)?), pretty(p.get(1)?))))
            .collect(),
        _ => Vec::new(),
    }
}

fn message(event: &Value) -> Option<String> {
    let formatted = str_at(event, "/logentry/formatted");
    let template = str_at(event, "/logentry/message");
    let text = if formatted.is_empty() {
        template
    } else {
        formatted
    };
    (!text.is_empty()).then(|| text.to_owned())
}

fn exceptions(event: &Value, full_stack: bool) -> Vec<ExceptionView> {
    let values = event_shape::exceptions(event);
    let count = values.len();
    values
        .iter()
        .rev()
        .enumerate()
        .map(|(i, e)| exception(e, i > 0 && count > 1, full_stack))
        .collect()
}

fn exception(e: &Value, caused: bool, full_stack: bool) -> ExceptionView {
    let frames: Vec<&Value> = event_shape::frames(e).iter().rev().collect();
    let any_in_app = frames.iter().any(|f| event_shape::is_in_app(f));
    let views: Vec<FrameView> = frames.iter().map(|f| frame(f)).collect();
    ExceptionView {
        exception_type: non_empty(str_at(e, "/type"), "Error"),
        value: str_at(e, "/value").to_owned(),
        module: str_at(e, "/module").to_owned(),
        mechanism: str_at(e, "/mechanism/type").to_owned(),
        unhandled: event_shape::is_unhandled(e),
        caused,
        frame_count: views.len(),
        frame_groups: group_frames(views, full_stack || !any_in_app),
    }
}

fn non_empty(text: &str, fallback: &str) -> String {
    if text.trim().is_empty() {
        fallback.to_owned()
    } else {
        text.to_owned()
    }
}

fn group_frames(frames: Vec<FrameView>, show_all: bool) -> Vec<FrameGroup> {
    let mut groups: Vec<FrameGroup> = Vec::new();
    for frame in frames {
        let system = !frame.in_app && !show_all;
        match groups.last_mut() {
            Some(group) if system && group.system => group.frames.push(frame),
            _ => groups.push(FrameGroup {
                system,
                frames: vec![frame],
            }),
        }
    }
    groups
}

fn frame(f: &Value) -> FrameView {
    let filename = str_at(f, "/filename");
    let location = if filename.is_empty() {
        str_at(f, "/module")
    } else {
        filename
    };
    FrameView {
        in_app: event_shape::is_in_app(f),
        location: non_empty(location, "<unknown>"),
        function: non_empty(str_at(f, "/function"), "?"),
        line: position(f),
        context: context_lines(f),
        vars: entries(f.get("vars")),
        minified: f.get("minified").map(|m| {
            format!(
                "{}:{} in {}",
                non_empty(str_at(m, "/filename"), "<unknown>"),
                position(m),
                non_empty(str_at(m, "/function"), "?")
            )
        }),
    }
}

/// `line:column`, the line alone, or nothing.
fn position(f: &Value) -> String {
    match (
        f.get("lineno").and_then(Value::as_i64),
        f.get("colno").and_then(Value::as_i64),
    ) {
        (Some(l), Some(c)) => format!("{l}:{c}"),
        (Some(l), None) => l.to_string(),
        _ => String::new(),
    }
}

fn context_lines(f: &Value) -> Vec<ContextLine> {
    let Some(current) = f.get("context_line").and_then(Value::as_str) else {
        return Vec::new();
    };
    let lines = |key: &str| -> Vec<String> {
        f.get(key)
            .and_then(Value::as_array)
            .map(|l| l.iter().map(text).collect())
            .unwrap_or_default()
    };
    let (pre, post) = (lines("pre_context"), lines("post_context"));
    let lineno = f.get("lineno").and_then(Value::as_i64);
    // Event data: a line number near i64's ends must not overflow (a panic in debug builds).
    let number = |offset: i64| {
        lineno
            .and_then(|n| n.checked_add(offset))
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(pre.len() + post.len() + 1);
    for (i, text) in pre.iter().enumerate() {
        out.push(ContextLine {
            number: number(i as i64 - pre.len() as i64),
            text: text.clone(),
            current: false,
        });
    }
    out.push(ContextLine {
        number: number(0),
        text: current.to_owned(),
        current: true,
    });
    for (i, text) in post.iter().enumerate() {
        out.push(ContextLine {
            number: number(i as i64 + 1),
            text: text.clone(),
            current: false,
        });
    }
    out
}

fn breadcrumbs(event: &Value) -> Vec<CrumbView> {
    let Some(values) = event
        .pointer("/breadcrumbs/values")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    values
        .iter()
        .map(|c| CrumbView {
            time: str_at(c, "/timestamp")
                .replace('T', " ")
                .chars()
                .take(23)
                .collect(),
            category: non_empty(str_at(c, "/category"), str_at(c, "/type")),
            level: str_at(c, "/level").to_owned(),
            message: str_at(c, "/message").to_owned(),
            data: c.get("data").map(text).unwrap_or_default(),
        })
        .collect()
}

fn request(event: &Value) -> Option<RequestView> {
    let r = event.get("request")?.as_object()?;
    let field = |key: &str| r.get(key).map(pretty).unwrap_or_default();
    Some(RequestView {
        method: field("method"),
        url: field("url"),
        query: r.get("query_string").map(query_text).unwrap_or_default(),
        headers: entries(r.get("headers")),
        cookies: r.get("cookies").map(pretty).unwrap_or_default(),
        body: field("data"),
        env: entries(r.get("env")),
    })
}

fn query_text(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => entries(Some(value))
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&"),
        other => text(other),
    }
}

fn contexts(event: &Value) -> Vec<ContextView> {
    let Some(Value::Object(map)) = event.get("contexts") else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, ctx)| ContextView {
            name: name.clone(),
            entries: match ctx {
                Value::Object(fields) => fields
                    .iter()
                    .filter(|(k, _)| *k != "type")
                    .map(|(k, v)| (k.clone(), pretty(v)))
                    .collect(),
                other => vec![(String::new(), pretty(other))],
            },
        })
        .collect()
}

fn facts(event: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |label: &str, value: String| {
        if !value.is_empty() {
            out.push((label.to_owned(), value));
        }
    };
    add("Event ID", str_at(event, "/event_id").to_owned());
    add("Occurred", str_at(event, "/timestamp").to_owned());
    add("Received", str_at(event, "/received").to_owned());
    add("Level", str_at(event, "/level").to_owned());
    add("Platform", str_at(event, "/platform").to_owned());
    add("Release", str_at(event, "/release").to_owned());
    add("Environment", str_at(event, "/environment").to_owned());
    add("Server", str_at(event, "/server_name").to_owned());
    add("Transaction", str_at(event, "/transaction").to_owned());
    add("Logger", str_at(event, "/logger").to_owned());
    let sdk = format!(
        "{} {}",
        str_at(event, "/sdk/name"),
        str_at(event, "/sdk/version")
    );
    add("SDK", sdk.trim().to_owned());
    if let Some(Value::Array(fingerprint)) = event.get("fingerprint") {
        add(
            "Fingerprint",
            fingerprint.iter().map(text).collect::<Vec<_>>().join(", "),
        );
    }
    out
}

fn processing_errors(event: &Value) -> Vec<String> {
    let Some(errors) = event.get("errors").and_then(Value::as_array) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| match e {
            Value::Object(m) => describe_error(m),
            other => text(other),
        })
        .collect()
}

fn describe_error(error: &Map<String, Value>) -> String {
    let field = |k: &str| error.get(k).map(text).unwrap_or_default();
    format!("{}: {} = {}", field("type"), field("name"), field("value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event() -> Value {
        json!({
            "exception": {"values": [
                {"type": "KeyError", "value": "'card'", "stacktrace": {"frames": [
                    {"function": "charge", "module": "app", "in_app": true, "lineno": 10,
                     "pre_context": ["a", "b"], "context_line": "c", "post_context": ["d"], "vars": {"x": 1}}]}},
                {"type": "RuntimeError", "value": "failed", "mechanism": {"type": "generic", "handled": false},
                 "stacktrace": {"frames": [
                    {"function": "main", "filename": "lib/boot.py", "in_app": false},
                    {"function": "run", "filename": "lib/runner.py", "in_app": false},
                    {"function": "view", "filename": "app/views.py", "in_app": true, "lineno": 3}]}}
            ]},
            "request": {"method": "GET", "url": "/x", "headers": [["Accept", "*/*"]], "query_string": [["a", "1"]]}
        })
    }

    #[test]
    fn the_raised_exception_comes_first_with_its_frames_newest_first() {
        let view = build(&event(), false);
        assert_eq!(view.exceptions[0].exception_type, "RuntimeError");
        assert!(view.exceptions[0].unhandled);
        assert!(view.exceptions[1].caused);
        let groups = &view.exceptions[0].frame_groups;
        assert_eq!(groups[0].frames[0].function, "view");
        assert!(groups[1].system, "system frames are folded together");
        assert_eq!(groups[1].frames.len(), 2);
    }

    #[test]
    fn full_stack_unfolds_system_frames() {
        let view = build(&event(), true);
        assert!(view.exceptions[0].frame_groups.iter().all(|g| !g.system));
    }

    #[test]
    fn context_lines_are_numbered_around_the_failing_line() {
        let view = build(&event(), false);
        let context = &view.exceptions[1].frame_groups[0].frames[0].context;
        let numbers: Vec<&str> = context.iter().map(|l| l.number.as_str()).collect();
        assert_eq!(numbers, vec!["8", "9", "10", "11"]);
        assert!(context[2].current);
    }

    #[test]
    fn a_line_number_at_the_edge_of_i64_shows_no_number_where_it_would_overflow() {
        let frame = json!({"lineno": i64::MAX, "context_line": "x", "pre_context": ["a"],
                           "post_context": ["b"]});
        let numbers: Vec<String> = context_lines(&frame)
            .into_iter()
            .map(|l| l.number)
            .collect();
        assert_eq!(
            numbers,
            [
                (i64::MAX - 1).to_string(),
                i64::MAX.to_string(),
                String::new()
            ]
        );
    }

    #[test]
    fn request_pairs_are_shown_as_text() {
        let view = build(&event(), false);
        let request = view.request.unwrap();
        assert_eq!(
            request.headers,
            vec![("Accept".to_owned(), "*/*".to_owned())]
        );
        assert_eq!(request.query, "a=1");
    }
}
