//! Property tests of the ingest path's pure stages, seeded from the real SDK requests in
//! `tests/fixtures/sdk-requests` and mutated: whatever the bytes, nothing panics, a refusal is
//! always a client error (4xx), and an accepted event is stored in a form the dashboard reads
//! back and builds its event page from. The suite runs proptest's default number of cases; a long run sets PROPTEST_CASES
//! (docs/RELIABILITY.md has the command and the figure).

use std::path::Path;
use std::sync::OnceLock;

use bytes::Bytes;
use chrono::Utc;
use faultline::config::Limits;
use faultline::ingest::body::{self, ContentEncoding};
use faultline::ingest::error::IngestError;
use faultline::ingest::normalize::EnvelopeContext;
use faultline::ingest::{envelope, process};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Every captured request body, as its SDK sent it (gzip'd ones inflated).
fn seeds() -> &'static Vec<Vec<u8>> {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sdk-requests");
        let mut seeds = Vec::new();
        for sdk in std::fs::read_dir(root).unwrap() {
            let sdk = sdk.unwrap().path();
            if !sdk.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&sdk).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "body") {
                    let raw = Bytes::from(std::fs::read(&path).unwrap());
                    let plain =
                        body::decode(raw.clone(), ContentEncoding::Gzip, 1 << 24).unwrap_or(raw);
                    seeds.push(plain.to_vec());
                }
            }
        }
        assert!(seeds.len() > 10, "the fixture corpus is there");
        seeds
    })
}

/// A change to a request body: the kinds of damage and oddity clients and networks produce.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let odd = prop_oneof![
        Just(b"\\u0000".to_vec()),
        Just(b"\"\\ud800\"".to_vec()),
        Just(b"{".to_vec()),
        Just(b"]".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"null".to_vec()),
        Just(b"1e999".to_vec()),
        Just(vec![b'['; 200]),
        Just("\u{feff}ü😀".as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), odd).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut body: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = body.len().max(1);
        match m {
            Mutation::FlipBit(at, bit) if !body.is_empty() => body[at % len] ^= 1 << bit,
            Mutation::Delete(at, n) if !body.is_empty() => {
                let start = at % len;
                let end = (start + n).min(body.len());
                body.drain(start..end);
            }
            Mutation::Insert(at, bytes) => {
                let at = at % (body.len() + 1);
                body.splice(at..at, bytes.iter().copied());
            }
            Mutation::Truncate(at) => body.truncate(at % len),
            _ => {}
        }
    }
    body
}

fn is_client_error(error: &IngestError) -> bool {
    !matches!(
        error,
        IngestError::Internal(_) | IngestError::Unavailable(_) | IngestError::QueueFull
    )
}

/// An envelope's event items through the whole preparation, as the route does.
fn ingest_envelope(body: &[u8]) -> Result<(), String> {
    let Ok(parsed) = envelope::parse(body) else {
        return Ok(()); // a 400, decided before any event is looked at
    };
    for item in parsed.items.iter().filter(|i| i.item_type == "event") {
        prepare(item.payload)?;
    }
    Ok(())
}

fn prepare(payload: &[u8]) -> Result<(), String> {
    let limits = Limits::default();
    match process::prepare(payload, 1, &EnvelopeContext::default(), Utc::now(), &limits) {
        Ok(event) => {
            let stored = faultline::store::event_body::decompress(&event.body)
                .map_err(|e| format!("an accepted event's body does not read back: {e}"))?;
            if !stored.is_object() || event.title.is_empty() || event.hash.is_empty() {
                return Err(format!("accepted but not displayable: {:?}", event.title));
            }
            // What the event page shows, with and without the full stack: it must build.
            faultline::web::event_view::build(&stored, true);
            faultline::web::event_view::build(&stored, false);
            Ok(())
        }
        Err(e) if is_client_error(&e) => Ok(()),
        Err(e) => Err(format!("a server error for client input: {e:?}")),
    }
}

proptest! {
    #[test]
    fn mutated_sdk_envelopes_never_panic_or_fail_as_server_errors(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        let body = apply(seeds[seed.index(seeds.len())].clone(), &mutations);
        prop_assert_eq!(ingest_envelope(&body), Ok(()));
    }

    #[test]
    fn mutated_event_payloads_never_panic_or_fail_as_server_errors(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seeds = seeds();
        // The first event item of the seed, mutated on its own (as /store/ receives it).
        let seed = &seeds[seed.index(seeds.len())];
        let payload = envelope::parse(seed)
            .ok()
            .and_then(|e| e.items.iter().find(|i| i.item_type == "event").map(|i| i.payload.to_vec()))
            .unwrap_or_else(|| b"{}".to_vec());
        let body = apply(payload, &mutations);
        prop_assert_eq!(prepare(&body), Ok(()));
    }

    #[test]
    fn any_bytes_under_any_encoding_decode_or_are_refused_as_client_errors(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        encoding in prop::sample::select(vec!["gzip", "deflate", "br", "zstd", "identity"]),
    ) {
        let encoding = ContentEncoding::parse(Some(encoding)).unwrap();
        if let Err(e) = body::decode(Bytes::from(bytes.clone()), encoding, 1 << 16) {
            prop_assert!(is_client_error(&e), "{e:?}");
        }
        if let Err(e) = body::decode_legacy_store_body(Bytes::from(bytes), 1 << 16) {
            prop_assert!(is_client_error(&e), "{e:?}");
        }
    }
}

/// A change to an event's JSON that keeps it JSON: the values SDKs and hostile clients send
/// where a field expects something else.
#[derive(Debug, Clone)]
enum ValueMutation {
    Replace(usize, Value),
    Remove(usize),
}

fn odd_value() -> impl Strategy<Value = Value> {
    let deep = (0..40).fold(json!("bottom"), |inner, _| json!([inner]));
    prop_oneof![
        Just(json!("nul \u{0} inside")),
        Just(json!("<script>alert(1)</script>&amp;")),
        Just(json!("x".repeat(20_000))),
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(18446744073709551615u64)),
        Just(json!([])),
        Just(json!({})),
        Just(json!(true)),
        Just(deep),
        any::<String>().prop_map(Value::String),
        any::<i64>().prop_map(|n| json!(n)),
    ]
}

fn value_mutation() -> impl Strategy<Value = ValueMutation> {
    prop_oneof![
        3 => (any::<usize>(), odd_value()).prop_map(|(at, v)| ValueMutation::Replace(at, v)),
        1 => any::<usize>().prop_map(ValueMutation::Remove),
    ]
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `mutation` to the node at its index (pre-order, modulo the node count); the root
/// itself is never removed or replaced, so the payload stays an object.
fn mutate(root: &mut Value, mutation: &ValueMutation) {
    let nodes = count_nodes(root).max(2);
    let (at, replacement) = match mutation {
        ValueMutation::Replace(at, v) => (at % (nodes - 1) + 1, Some(v.clone())),
        ValueMutation::Remove(at) => (at % (nodes - 1) + 1, None),
    };
    let mut seen = 0;
    visit(root, at, &mut seen, &replacement);
}

/// Walks to the `at`-th node; returns true once it was changed.
fn visit(value: &mut Value, at: usize, seen: &mut usize, replacement: &Option<Value>) -> bool {
    let children: Vec<String> = match value {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
        _ => return false,
    };
    for key in children {
        *seen += 1;
        if *seen == at {
            match (value, replacement) {
                (Value::Object(map), Some(v)) => *map.get_mut(&key).unwrap() = v.clone(),
                (Value::Object(map), None) => drop(map.remove(&key)),
                (Value::Array(items), Some(v)) => items[key.parse::<usize>().unwrap()] = v.clone(),
                (Value::Array(items), None) => drop(items.remove(key.parse::<usize>().unwrap())),
                _ => {}
            }
            return true;
        }
        let child = match value {
            Value::Object(map) => map.get_mut(&key).unwrap(),
            Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
        if visit(child, at, seen, replacement) {
            return true;
        }
    }
    false
}

/// The seeds' event payloads as JSON.
fn event_values() -> &'static Vec<Value> {
    static VALUES: OnceLock<Vec<Value>> = OnceLock::new();
    VALUES.get_or_init(|| {
        seeds()
            .iter()
            .filter_map(|s| envelope::parse(s).ok())
            .filter_map(|e| {
                e.items
                    .iter()
                    .find(|i| i.item_type == "event")
                    .and_then(|i| serde_json::from_slice(i.payload).ok())
            })
            .collect()
    })
}

fn mutated_event(seed: prop::sample::Index, mutations: &[ValueMutation]) -> Vec<u8> {
    let values = event_values();
    let mut event = values[seed.index(values.len())].clone();
    for m in mutations {
        mutate(&mut event, m);
    }
    serde_json::to_vec(&event).unwrap()
}

proptest! {
    #[test]
    fn events_with_odd_values_anywhere_never_panic_or_fail_as_server_errors(
        seed in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(value_mutation(), 1..8),
    ) {
        prop_assert_eq!(prepare(&mutated_event(seed, &mutations)), Ok(()));
    }
}

/// The value mutations must leave most events acceptable, or the property above would only
/// test refusals: a sample of its cases is counted. (Byte mutations mostly exercise the
/// parsers' refusals, by design.)
#[test]
fn most_events_with_odd_values_still_go_through_the_whole_preparation() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (
        any::<prop::sample::Index>(),
        prop::collection::vec(value_mutation(), 1..8),
    );
    let (mut accepted, total) = (0, 2000);
    for _ in 0..total {
        let (seed, mutations) = strategy.new_tree(&mut runner).unwrap().current();
        let body = mutated_event(seed, &mutations);
        let limits = Limits::default();
        if process::prepare(&body, 1, &EnvelopeContext::default(), Utc::now(), &limits).is_ok() {
            accepted += 1;
        }
    }
    println!("{accepted} of {total} events with odd values accepted");
    assert!(accepted * 2 >= total, "only {accepted} of {total} accepted");
}
