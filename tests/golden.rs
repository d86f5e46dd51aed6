//! What ingest makes of an event must not change when ingest is made faster (issue 13). Every
//! event of the captured SDK requests (tests/fixtures/sdk-requests) and a spread of the load
//! generator's events go through `process::prepare` at a fixed time; the prepared row —
//! grouping hash and components, title, culprit, metadata, level, times, environment,
//! release, user key, tags, search terms and the stored body — is compared with
//! tests/golden/prepared.jsonl, one event per line.
//!
//! After a change that is meant to alter them, write the file again and review its diff:
//!   FAULTLINE_UPDATE_GOLDEN=1 cargo test --test golden

#[allow(dead_code)]
#[path = "../src/bin/faultline-loadgen/event.rs"]
mod loadgen_event;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faultline::config::Limits;
use faultline::ingest::body::{self, ContentEncoding};
use faultline::ingest::normalize::EnvelopeContext;
use faultline::ingest::{envelope, process};
use faultline::store::event_body;
use faultline::store::events::NewEvent;
use serde_json::{json, Value};

use loadgen_event::{EventShape, Slot};

/// Issues × variants of the load generator's events in the corpus.
const LOADGEN_ISSUES: usize = 8;
const LOADGEN_VARIANTS: usize = 2;

fn received_at() -> DateTime<Utc> {
    "2027-01-01T00:00:05Z".parse().unwrap()
}

fn golden_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/prepared.jsonl")
}

/// `(name, payload, envelope context)` of every event in the corpus.
fn corpus() -> Vec<(String, Vec<u8>, EnvelopeContext)> {
    let mut events = fixture_events();
    for issue in 0..LOADGEN_ISSUES {
        for variant in 0..LOADGEN_VARIANTS {
            let json = loadgen_event::event_json(&EventShape { issue, variant });
            let json = json
                .replace(
                    &Slot::EventId.marker(),
                    &format!("{:032x}", issue * 100 + variant + 1),
                )
                .replace(&Slot::Timestamp.marker(), "2026-01-01T00:00:00.000Z")
                .replace(
                    &Slot::Number.marker(),
                    &format!("{:06}", issue * 37 + variant),
                );
            let context = EnvelopeContext {
                client_ip: Some("203.0.113.9".into()),
                ..Default::default()
            };
            events.push((
                format!("loadgen/{issue}-{variant}"),
                json.into_bytes(),
                context,
            ));
        }
    }
    events
}

/// The `event` items of the captured requests, with the context their envelope gives.
fn fixture_events() -> Vec<(String, Vec<u8>, EnvelopeContext)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk-requests");
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flat_map(|sdk| std::fs::read_dir(sdk.unwrap().path()).into_iter().flatten())
        .map(|file| file.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "body"))
        .collect();
    bodies.sort();
    let mut events = Vec::new();
    for path in bodies {
        let decoded = decoded_body(&path);
        let envelope = envelope::parse(&decoded).expect("a captured envelope parses");
        for item in envelope.items.iter().filter(|i| i.item_type == "event") {
            let context = EnvelopeContext {
                event_id: envelope.header_str("event_id").map(str::to_owned),
                sdk: envelope.headers.get("sdk").cloned(),
                client_ip: Some("203.0.113.9".into()),
            };
            let name = path.strip_prefix(&root).unwrap().display().to_string();
            events.push((name, item.payload.to_vec(), context));
        }
    }
    assert!(events.len() >= 10, "the captured requests hold events");
    events
}

fn decoded_body(path: &Path) -> Bytes {
    let headers = std::fs::read_to_string(path.with_extension("headers")).unwrap();
    let encoding = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-encoding")
            .then(|| value.trim().to_owned())
    });
    let encoding = ContentEncoding::parse(encoding.as_deref()).unwrap();
    let raw = Bytes::from(std::fs::read(path).unwrap());
    body::decode(raw, encoding, 50 * 1024 * 1024).expect("a captured body decodes")
}

/// Everything the writer stores of a prepared event, as one JSON object.
fn as_json(name: &str, event: &NewEvent) -> Value {
    json!({
        "name": name,
        "event_id": event.event_id,
        "hash": event.hash,
        "grouping": event.grouping,
        "title": event.title,
        "culprit": event.culprit,
        "metadata": event.metadata,
        "level": format!("{:?}", event.level),
        "occurred_at": event.occurred_at,
        "received_at": event.received_at,
        "environment": event.environment,
        "release": event.release,
        "user_key": event.user_key,
        "tags": event.tags,
        "search_terms": event.search_terms,
        "body": event_body::decompress(&event.body).unwrap(),
    })
}

fn prepared_corpus() -> Vec<Value> {
    corpus()
        .into_iter()
        .map(|(name, payload, context)| {
            let event = process::prepare(&payload, 1, &context, received_at(), &Limits::default())
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            as_json(&name, &event)
        })
        .collect()
}

#[test]
fn prepared_events_are_exactly_the_golden_ones() {
    let prepared = prepared_corpus();
    let lines: Vec<String> = prepared.iter().map(Value::to_string).collect();
    if std::env::var_os("FAULTLINE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_file().parent().unwrap()).unwrap();
        std::fs::write(golden_file(), lines.join("\n") + "\n").unwrap();
        return;
    }
    let golden = std::fs::read_to_string(golden_file())
        .expect("tests/golden/prepared.jsonl exists (FAULTLINE_UPDATE_GOLDEN=1 writes it)");
    let golden: Vec<Value> = golden
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(golden.len(), prepared.len(), "the corpus changed size");
    for (want, got) in golden.iter().zip(&prepared) {
        let name = &want["name"];
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(
                &got[key], value,
                "{name}: `{key}` differs from the golden file"
            );
        }
        assert_eq!(want, got, "{name}: a new field");
    }
}

#[test]
fn the_corpus_covers_every_sdk_and_many_issues() {
    let prepared = prepared_corpus();
    for sdk in ["sentry-python", "sentry-node", "sentry-browser", "loadgen/"] {
        assert!(
            prepared
                .iter()
                .any(|e| e["name"].as_str().unwrap().starts_with(sdk)),
            "{sdk}"
        );
    }
    let mut hashes: Vec<&str> = prepared
        .iter()
        .map(|e| e["hash"].as_str().unwrap())
        .collect();
    hashes.sort();
    hashes.dedup();
    assert!(hashes.len() >= LOADGEN_ISSUES + 4, "{hashes:?}");
}
