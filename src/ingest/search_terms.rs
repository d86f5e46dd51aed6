//! What the issue list's free text can find inside an event besides its title and culprit:
//! exception types, values and modules, the message, and each frame's function, module and
//! file. The writer keeps these per issue (`issue_search_terms`, trigram-indexed), so a search
//! never reads events. Pure.

use std::collections::HashSet;

use serde_json::Value;

use crate::domain::event_shape;
use crate::domain::text::cut_chars;

/// Shorter terms could never be found (shorter search text looks at titles only).
const MIN_TERM_CHARS: usize = crate::domain::search::MIN_STACK_SEARCH_CHARS;
/// Long values are kept by their start: that is what people paste.
const MAX_TERM_CHARS: usize = 200;
/// An event with a thousand frames still adds a bounded number of terms.
const MAX_TERMS_PER_EVENT: usize = 64;

/// The event's distinct search terms, in the order met (exceptions, newest frames first,
/// then the message), at most [`MAX_TERMS_PER_EVENT`].
pub fn search_terms(event: &Value) -> Vec<String> {
    let mut terms = Terms {
        list: Vec::with_capacity(MAX_TERMS_PER_EVENT),
        seen: HashSet::with_capacity_and_hasher(MAX_TERMS_PER_EVENT, Default::default()),
    };
    let exceptions = event_shape::exceptions(event);
    // The raised exception first: it is what the issue is about.
    for exception in exceptions.iter().rev() {
        for key in ["type", "value", "module"] {
            terms.add(exception.get(key));
        }
    }
    for exception in exceptions.iter().rev() {
        terms.add_frames(event_shape::frames(exception));
    }
    if let Some(frames) = event_shape::at(event, "/stacktrace/frames").and_then(Value::as_array) {
        terms.add_frames(frames);
    }
    terms.add(event_shape::at(event, "/logentry/formatted"));
    terms.add(event_shape::at(event, "/logentry/message"));
    terms.list.into_iter().map(str::to_owned).collect()
}

/// The terms met so far, borrowed from the event: one copy each, at the end.
struct Terms<'a> {
    list: Vec<&'a str>,
    /// foldhash rather than SipHash: only this event's own strings, dropped at once.
    seen: HashSet<&'a str, foldhash::fast::RandomState>,
}

impl<'a> Terms<'a> {
    fn add_frames(&mut self, frames: &'a [Value]) {
        // Newest first: the frames near the crash matter most when the cap is reached.
        for frame in frames.iter().rev() {
            for key in ["function", "module", "filename"] {
                self.add(frame.get(key));
            }
        }
    }

    fn add(&mut self, value: Option<&'a Value>) {
        let Some(text) = value.and_then(Value::as_str).map(str::trim) else {
            return;
        };
        if self.list.len() >= MAX_TERMS_PER_EVENT || text.chars().count() < MIN_TERM_CHARS {
            return;
        }
        let term = cut_chars(text, MAX_TERM_CHARS);
        if self.seen.insert(term) {
            self.list.push(term);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_exceptions_frames_and_the_message_once_each() {
        let event = json!({
            "exception": {"values": [
                {"type": "KeyError", "value": "'card'", "stacktrace": {"frames": [
                    {"function": "charge", "module": "shop.payments", "filename": "shop/payments.py"}
                ]}},
                {"type": "RuntimeError", "value": "charge failed", "module": "builtins",
                 "stacktrace": {"frames": [
                    {"function": "main", "module": "shop.main", "filename": "shop/main.py"},
                    {"function": "charge", "module": "shop.payments", "filename": "shop/payments.py"}
                 ]}}
            ]},
            "logentry": {"formatted": "Payment failed for order 1001"}
        });
        assert_eq!(
            search_terms(&event),
            [
                "RuntimeError",
                "charge failed",
                "builtins",
                "KeyError",
                "'card'",
                "charge",
                "shop.payments",
                "shop/payments.py",
                "main",
                "shop.main",
                "shop/main.py",
                "Payment failed for order 1001",
            ]
        );
    }

    #[test]
    fn short_long_and_many_terms_are_bounded() {
        let frames: Vec<Value> = (0..500)
            .map(|n| json!({"function": format!("step_{n}"), "filename": "x"}))
            .collect();
        let event = json!({
            "exception": {"values": [{"type": "E", "value": "v".repeat(1000),
                                      "stacktrace": {"frames": frames}}]}
        });
        let terms = search_terms(&event);
        assert_eq!(terms.len(), MAX_TERMS_PER_EVENT);
        assert!(!terms.iter().any(|t| t == "E" || t == "x"), "too short");
        assert_eq!(terms[0].chars().count(), MAX_TERM_CHARS);
        assert_eq!(terms[1], "step_499", "newest frames first");
    }

    #[test]
    fn hostile_shapes_give_no_terms_and_no_panic() {
        for event in [
            json!({}),
            json!({"exception": {"values": "nope"}}),
            json!({"exception": {"values": [{"type": 7, "stacktrace": {"frames": [null, 1, "x"]}}]}}),
            json!({"stacktrace": {"frames": {"function": "f"}}}),
        ] {
            assert!(search_terms(&event).is_empty(), "{event}");
        }
    }
}
