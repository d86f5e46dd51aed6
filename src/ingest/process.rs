//! From an event payload to a row ready for the writer: parse, normalise, scrub, bound, group,
//! and compress. Pure: no I/O, so every step is unit-tested in place.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::error::IngestError;
use super::normalize::{apply_limits, normalize, EnvelopeContext, NormalizedEvent};
use super::{facets, grouping, lenient_json, scrub, search_terms};
use crate::config::Limits;
use crate::domain::event_shape;
use crate::store::event_body;
use crate::store::events::NewEvent;

/// Parses, normalises and prepares one event payload.
pub fn prepare(
    payload: &[u8],
    project_id: i64,
    context: &EnvelopeContext,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<NewEvent, IngestError> {
    let event = normalize_payload(payload, context, received_at, limits)?;
    finish(event, project_id, received_at, limits)
}

/// The first half of [`prepare`]: parsed, normalised and scrubbed. Source maps are applied
/// to it (`source_maps`) before [`finish`] groups it.
pub fn normalize_payload(
    payload: &[u8],
    context: &EnvelopeContext,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<NormalizedEvent, IngestError> {
    let raw = parse_payload(payload, limits)?;
    Ok(normalize_parsed(raw, context, received_at, limits))
}

/// The payload as a JSON object, within the size limit.
pub fn parse_payload(payload: &[u8], limits: &Limits) -> Result<Map<String, Value>, IngestError> {
    if payload.len() > limits.max_event_bytes {
        return Err(IngestError::too_large(format!(
            "event is larger than the limit of {} bytes",
            limits.max_event_bytes
        )));
    }
    match lenient_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(IngestError::malformed(
            "event payload must be a JSON object",
        )),
        Err(e) => Err(IngestError::malformed(format!(
            "event payload is not valid JSON: {e}"
        ))),
    }
}

/// Whether a parsed `/store/` payload is a transaction (legacy SDKs), which Faultline drops.
pub fn is_transaction(raw: &Map<String, Value>) -> bool {
    raw.get("type").and_then(Value::as_str) == Some("transaction")
}

/// [`normalize_payload`] for a payload already parsed by [`parse_payload`].
pub fn normalize_parsed(
    raw: Map<String, Value>,
    context: &EnvelopeContext,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> NormalizedEvent {
    let mut event = normalize(raw, context, received_at, limits);
    scrub::scrub_event(&mut event.body);
    event
}

/// The second half of [`prepare`]: bounded, grouped, titled, compressed.
pub fn finish(
    mut event: NormalizedEvent,
    project_id: i64,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<NewEvent, IngestError> {
    apply_limits(&mut event.body, limits);

    let grouping = grouping::compute_grouping(&event.body);
    let title = grouping::title(&event.body);
    let culprit = grouping::culprit(&event.body);
    let metadata = metadata(&event.body, &title);
    let text = |key: &str| {
        event
            .body
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let search_terms = search_terms::search_terms(&event.body);
    let body = event_body::compress(&event.body).map_err(IngestError::Internal)?;
    Ok(NewEvent {
        project_id,
        event_id: event.event_id,
        hash: grouping.hash,
        grouping: grouping.components,
        title,
        culprit,
        metadata,
        level: event.level,
        occurred_at: event.timestamp,
        received_at,
        environment: text("environment"),
        release: text("release"),
        user_key: facets::user_key(&event.body),
        tags: facets::tag_values(&event.body),
        search_terms,
        body,
    })
}

/// Sentry's issue metadata: the raised exception's type and value and where it happened, or
/// the title for message events.
fn metadata(event: &Value, title: &str) -> Value {
    let mut metadata = exception_metadata(event).unwrap_or_else(|| json!({ "title": title }));
    // The API's issue `platform` reads it from here.
    if let Some(platform) = event.get("platform") {
        metadata["platform"] = platform.clone();
    }
    metadata
}

fn exception_metadata(event: &Value) -> Option<Value> {
    let raised = event_shape::raised_exception(event)?;
    let mut metadata = json!({
        "type": raised.get("type").and_then(Value::as_str).unwrap_or("Error"),
        "value": raised.get("value").and_then(Value::as_str).unwrap_or(""),
    });
    let top = event_shape::top_frame(event_shape::frames(raised));
    if let Some(frame) = top {
        for key in ["filename", "function"] {
            if let Some(v) = frame.get(key) {
                metadata[key] = v.clone();
            }
        }
    }
    metadata["unhandled"] = json!(event_shape::is_unhandled(raised));
    Some(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare_json(event: Value) -> Result<NewEvent, IngestError> {
        let payload = serde_json::to_vec(&event).unwrap();
        prepare(
            &payload,
            1,
            &EnvelopeContext::default(),
            Utc::now(),
            &Limits::default(),
        )
    }

    #[test]
    fn stored_body_round_trips_and_is_scrubbed() {
        let event = prepare_json(json!({
            "exception": {"values": [{"type": "ValueError", "value": "bad", "stacktrace": {"frames": [
                {"function": "login", "module": "app.auth", "in_app": true, "vars": {"password": "hunter2"}}
            ]}}]},
            "request": {"headers": {"Authorization": "Bearer abc"}}
        }))
        .unwrap();
        let body = event_body::decompress(&event.body).unwrap();
        let text = body.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("Bearer abc"), "{text}");
        assert_eq!(event.title, "ValueError: bad");
        assert_eq!(event.metadata["function"], "login");
    }

    #[test]
    fn payloads_that_are_not_objects_are_bad_requests() {
        for payload in [&b"[1,2]"[..], b"nope", b"\xff\xfe", b"{\"a\":"] {
            let err = prepare(
                payload,
                1,
                &EnvelopeContext::default(),
                Utc::now(),
                &Limits::default(),
            )
            .unwrap_err();
            assert!(matches!(err, IngestError::Malformed(_)), "{err:?}");
        }
    }

    #[test]
    fn json_nested_100000_deep_is_a_bad_request_not_a_crash() {
        let payload = format!(
            "{{\"extra\":{}{}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let err = prepare(
            payload.as_bytes(),
            1,
            &EnvelopeContext::default(),
            Utc::now(),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn an_event_over_the_size_limit_is_too_large() {
        let limits = Limits {
            max_event_bytes: 10,
            ..Limits::default()
        };
        let err = prepare(
            b"{\"message\":\"0123456789\"}",
            1,
            &EnvelopeContext::default(),
            Utc::now(),
            &limits,
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::TooLarge(_)));
    }
}
