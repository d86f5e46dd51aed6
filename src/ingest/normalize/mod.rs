//! Turns an event as an SDK sent it into Faultline's canonical form (PROTOCOL.md §8): the many
//! accepted shapes of each field become one, wrong-typed fields are dropped or stringified and
//! noted in `errors` (never the whole event refused), and every string and list is bounded.

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Timelike, Utc};
use serde_json::{json, Map, Value};
use uuid::Uuid;

mod fields;
mod limits;
mod stacktrace;

use crate::config::Limits;
use crate::domain::level::Level;
use fields::Normalizer;
pub use limits::{apply_limits, truncate_chars};

/// Timestamps further in the future than this are taken as a wrong clock.
const MAX_CLOCK_SKEW_SECONDS: i64 = 60;

/// An event ready for grouping and storage.
#[derive(Debug, Clone)]
pub struct NormalizedEvent {
    pub event_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub level: Level,
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
    let mut normalizer = Normalizer::default();
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
        .unwrap_or(Level::Error);

    event.insert(
        "event_id".into(),
        Value::String(event_id.simple().to_string()),
    );
    event.insert("timestamp".into(), Value::String(format_time(timestamp)));
    event.insert("received".into(), Value::String(format_time(received_at)));
    event.insert("level".into(), json!(level.as_str()));
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
    limits::bound_environment(&mut event);
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

/// RFC 3339 in UTC with microseconds, e.g. `2026-12-01T02:00:00.123456Z`: how every time in a
/// stored event is written. Written by hand for the usual four-digit years: chrono's formatter
/// goes through `fmt`, which cost several µs per event (one call per breadcrumb).
pub fn format_time(time: DateTime<Utc>) -> String {
    // One conversion to calendar fields: each of `DateTime`'s own accessors converts again.
    let utc = time.naive_utc();
    let nanos = utc.nanosecond();
    // Leap seconds (nanos past 1e9) and years outside 0..=9999 are chrono's to write.
    if !(0..=9999).contains(&utc.year()) || nanos >= 1_000_000_000 {
        return time.to_rfc3339_opts(SecondsFormat::Micros, true);
    }
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let fields = [
        (0..4, utc.year().unsigned_abs()),
        (5..7, utc.month()),
        (8..10, utc.day()),
        (11..13, utc.hour()),
        (14..16, utc.minute()),
        (17..19, utc.second()),
        (20..26, nanos / 1_000),
    ];
    for (digits, value) in fields {
        write_digits(&mut text[digits], value);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// `value`'s last decimal digits into `slot`, zero-padded.
fn write_digits(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// RFC 3339 strings (with or without zone), or seconds since the epoch as a number or string.
/// Only times from the epoch up to year ~5000 are read: `%Y` also takes signed years of five
/// or more digits, such as `-5000`, which PostgreSQL cannot store (it refused the whole event).
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    let time = match value {
        Value::Number(n) => from_epoch_seconds(n.as_f64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                Some(t.with_timezone(&Utc))
            } else if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
                Some(Utc.from_utc_datetime(&t))
            } else {
                s.parse::<f64>().ok().and_then(from_epoch_seconds)
            }
        }
        _ => None,
    }?;
    EPOCH_SECONDS_READ
        .contains(&(time.timestamp() as f64))
        .then_some(time)
}

/// The seconds since the epoch a timestamp may have.
const EPOCH_SECONDS_READ: std::ops::Range<f64> = 0.0..1e11;

fn from_epoch_seconds(seconds: f64) -> Option<DateTime<Utc>> {
    if !seconds.is_finite() || !EPOCH_SECONDS_READ.contains(&seconds) {
        return None;
    }
    let micros = (seconds * 1_000_000.0).round() as i64;
    DateTime::from_timestamp_micros(micros)
}

/// Sentry's level names, plus the aliases and numeric levels Relay accepts.
fn normalize_level(value: &Value) -> Option<Level> {
    let level = match value {
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "fatal" | "critical" => Level::Fatal,
            "error" => Level::Error,
            "warning" | "warn" => Level::Warning,
            "info" | "log" => Level::Info,
            "debug" | "trace" => Level::Debug,
            _ => return None,
        },
        Value::Number(n) => match n.as_i64()? {
            50 => Level::Fatal,
            40 => Level::Error,
            30 => Level::Warning,
            20 => Level::Info,
            10 => Level::Debug,
            _ => return None,
        },
        _ => return None,
    };
    Some(level)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn format_time_writes_what_chrono_writes(
            // Years 1 to 9999, and beyond on both sides (chrono's own path).
            micros in -70_000_000_000_000_000i64..260_000_000_000_000_000i64
        ) {
            let time = DateTime::from_timestamp_micros(micros).unwrap();
            prop_assert_eq!(format_time(time), time.to_rfc3339_opts(SecondsFormat::Micros, true));
        }
    }

    #[test]
    fn format_time_truncates_to_microseconds() {
        let time = DateTime::from_timestamp(1_764_554_400, 123_456_789).unwrap();
        assert_eq!(format_time(time), "2025-12-01T02:00:00.123456Z");
        let early = DateTime::from_timestamp(-62_135_596_800, 0).unwrap();
        assert_eq!(format_time(early), "0001-01-01T00:00:00.000000Z");
    }

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
    fn timestamps_postgresql_cannot_store_fall_back_to_the_receipt_time() {
        for timestamp in [
            json!("-5000-01-01T00:00:00"),
            json!("+300000-01-01T00:00:00"),
            json!("1969-12-31T23:59:59Z"),
            json!(-1),
        ] {
            let event = run(json!({ "timestamp": timestamp }));
            assert_eq!(
                event.body["timestamp"], event.body["received"],
                "{timestamp}"
            );
        }
        let epoch = run(json!({"timestamp": "1970-01-01T00:00:00Z"}));
        assert_eq!(epoch.body["timestamp"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn an_environment_is_cut_to_sentrys_64_characters() {
        let long = run(json!({"environment": "é".repeat(3000)}));
        let environment = long.body["environment"].as_str().unwrap();
        assert_eq!(environment, format!("{}…", "é".repeat(64)));
        let exact = run(json!({"environment": "p".repeat(64)}));
        assert_eq!(exact.body["environment"], "p".repeat(64));
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
    fn an_event_keeps_two_hundred_tags_and_says_so() {
        let tags: serde_json::Map<String, Value> =
            (0..300).map(|n| (format!("t{n:03}"), json!("x"))).collect();
        let event = run(json!({"message": "m", "tags": tags}));
        assert_eq!(
            event.body["tags"].as_object().unwrap().len(),
            fields::MAX_TAGS
        );
        let errors = event.body["errors"].as_array().unwrap();
        assert!(
            errors[0]["value"]
                .as_str()
                .unwrap()
                .contains("100 tags past"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_hundred_processing_errors_are_listed_and_the_rest_counted() {
        let event = run(json!({"exception": vec![0; 500]}));
        let errors = event.body["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 101);
        assert!(
            errors[100]["value"].as_str().unwrap().contains("400 more"),
            "{errors:?}"
        );
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
        assert_eq!(event.level, Level::Error);
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
        assert_eq!(run(json!({"level": "warn"})).level, Level::Warning);
        assert_eq!(run(json!({"level": 50})).level, Level::Fatal);
        assert_eq!(run(json!({"level": "critical"})).level, Level::Fatal);
    }
}
