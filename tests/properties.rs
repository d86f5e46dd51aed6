//! Property tests of the ingest path's pure stages, seeded from the real SDK requests in
//! `tests/fixtures/sdk-requests` and mutated: whatever the bytes, nothing panics, a refusal is
//! always a client error (4xx), and an accepted event is stored in a form the dashboard reads
//! back. The suite runs proptest's default number of cases; a long run sets PROPTEST_CASES
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
