//! Where things are in a normalised event, known in one place: the exception chain, its frames,
//! which frames are the application's own, and the tags Faultline writes itself. Every accessor
//! tolerates missing or wrong-typed data (events are hostile input).

use serde_json::Value;

/// Tag keys Faultline derives from each event (besides the event's own tags), used by ingest
/// to write them, by the store's queries and by the pages that show them.
pub mod tag {
    pub const ENVIRONMENT: &str = "environment";
    pub const RELEASE: &str = "release";
    pub const SERVER_NAME: &str = "server_name";
    pub const LEVEL: &str = "level";
    pub const BROWSER: &str = "browser";
    pub const OS: &str = "os";
    pub const URL: &str = "url";
    /// Who was affected: `id:…`, `email:…`, `username:…` or `ip:…`.
    pub const USER: &str = "user";
    /// `no` when any exception of the chain was unhandled.
    pub const HANDLED: &str = "handled";
    /// The request it failed on, e.g. `POST /orders/{id} → 500`.
    pub const REQUEST: &str = "request";
}

/// The value at `path`, a `/`-separated chain of object keys such as `"/exception/values"`.
/// Like `Value::pointer` for keys without `~` or `/` in them, but without the two `String`s
/// `pointer` allocates per key to undo its escapes (~2 % of the server's CPU under load).
pub fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.strip_prefix('/')?
        .split('/')
        .try_fold(value, |value, key| value.as_object()?.get(key))
}

/// The exception chain, oldest (the cause) first, as SDKs send it; non-objects left out.
pub fn exceptions(event: &Value) -> Vec<&Value> {
    at(event, "/exception/values")
        .and_then(Value::as_array)
        .map(|values| values.iter().filter(|v| v.is_object()).collect())
        .unwrap_or_default()
}

/// The exception that was raised last: the one the program actually died of.
pub fn raised_exception(event: &Value) -> Option<&Value> {
    exceptions(event).pop()
}

/// An exception's frames, oldest first (the crashing frame last).
pub fn frames(exception: &Value) -> &[Value] {
    at(exception, "/stacktrace/frames")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Whether the SDK marked the frame as the application's own code.
pub fn is_in_app(frame: &Value) -> bool {
    frame.get("in_app").and_then(Value::as_bool) == Some(true)
}

/// Whether the exception's mechanism says nothing caught it.
pub fn is_unhandled(exception: &Value) -> bool {
    at(exception, "/mechanism/handled").and_then(Value::as_bool) == Some(false)
}

/// Where it broke: the newest in-app frame, else the newest frame.
pub fn top_frame(frames: &[Value]) -> Option<&Value> {
    frames
        .iter()
        .rev()
        .find(|frame| is_in_app(frame))
        .or_else(|| frames.last())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_raised_exception_and_its_top_in_app_frame() {
        let event = json!({"exception": {"values": [
            {"type": "Cause"},
            7,
            {"type": "Raised", "mechanism": {"handled": false}, "stacktrace": {"frames": [
                {"function": "main", "in_app": true},
                {"function": "view", "in_app": true},
                {"function": "library", "in_app": false}
            ]}}
        ]}});
        assert_eq!(exceptions(&event).len(), 2);
        let raised = raised_exception(&event).unwrap();
        assert!(is_unhandled(raised));
        assert_eq!(top_frame(frames(raised)).unwrap()["function"], "view");
        let no_app = json!([{"function": "a"}, {"function": "b"}]);
        assert_eq!(
            top_frame(no_app.as_array().unwrap()).unwrap()["function"],
            "b"
        );
        assert!(raised_exception(&json!({"exception": "x"})).is_none());
    }

    #[test]
    fn at_follows_object_keys_only() {
        let event = json!({"a": {"b": [1], "c": {"d": "x"}}, "e/f": 2});
        assert_eq!(at(&event, "/a/c/d").unwrap(), "x");
        assert_eq!(at(&event, "/a/b").unwrap(), &json!([1]));
        assert!(at(&event, "/a/b/0").is_none());
        assert!(at(&event, "/a/missing").is_none());
        assert!(at(&event, "/a/c/d/deeper").is_none());
        assert!(at(&event, "a/c").is_none(), "a path starts with /");
    }
}
