//! `--breakdown`: where the server's CPU goes for one event, without a network or a database.
//! Runs the server's own ingest steps on the generated bodies, one after the other on one
//! thread, and reports the average time of each.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use faultline::config::Limits;
use faultline::ingest::normalize::{self, EnvelopeContext};
use faultline::ingest::{body, envelope, facets, grouping, process, scrub};
use faultline::store::event_body;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::template::{Encoding, SlotValues, Template};

const STEPS: [&str; 11] = [
    "decompress body",
    "parse envelope",
    "parse event JSON",
    "normalise",
    "scrub",
    "apply limits",
    "group, title, culprit",
    "tags and user",
    "serialise + zstd body",
    "whole prepare()",
    "(gzip as SDKs send it)",
];

/// Runs every step `events` times over the templates; returns one line per step.
pub fn run(templates: &[Template], encoding: Encoding, events: u64) -> String {
    let mut totals = [Duration::ZERO; STEPS.len()];
    let limits = Limits::default();
    let (mut request, mut scratch) = (Vec::new(), Vec::new());
    for seq in 0..events {
        let template = &templates[seq as usize % templates.len()];
        let id = format!("{:032x}", u128::from(seq as u32) << 64 | 0xabc);
        let values = SlotValues {
            event_id: id.as_bytes().try_into().expect("32 digits"),
            timestamp: b"2026-01-01T00:00:00.000Z",
            number: b"004217",
        };
        template.render(&values, &mut request, &mut scratch);
        time_one(&request, encoding, &limits, &mut totals);
    }
    let mut out = String::from("server CPU per event, by step (one thread, no I/O):\n");
    // The generator's gzip bodies are spliced from separately compressed pieces (so each event
    // costs it no compression); SDKs send one deflate stream, which inflates faster.
    for (step, total) in STEPS.iter().zip(totals) {
        if total.is_zero() {
            continue; // a step of another encoding
        }
        let micros = total.as_secs_f64() * 1e6 / events as f64;
        out.push_str(&format!("  {step:<24} {micros:>8.1} µs\n"));
    }
    out
}

fn time_one(request: &[u8], encoding: Encoding, limits: &Limits, totals: &mut [Duration]) {
    let mut clock = Clock(Instant::now());
    let encoding = match encoding {
        Encoding::Identity => body::ContentEncoding::Identity,
        Encoding::Gzip => body::ContentEncoding::Gzip,
        Encoding::Zstd => body::ContentEncoding::Zstd,
    };
    let plain = body::decode(Bytes::copy_from_slice(request), encoding, 50 << 20).expect("decodes");
    totals[0] += clock.lap();
    let parsed = envelope::parse(&plain).expect("an envelope");
    let payload = parsed.items[0].payload;
    totals[1] += clock.lap();
    let raw = process::parse_payload(payload, limits).expect("the event is a JSON object");
    totals[2] += clock.lap();
    let mut event = normalize::normalize(raw, &EnvelopeContext::default(), Utc::now(), limits);
    totals[3] += clock.lap();
    scrub::scrub_event(&mut event.body);
    totals[4] += clock.lap();
    normalize::apply_limits(&mut event.body, limits);
    totals[5] += clock.lap();
    let hash = grouping::compute_grouping(&event.body).hash;
    let title = grouping::title(&event.body);
    let culprit = grouping::culprit(&event.body);
    totals[6] += clock.lap();
    let tags = facets::tag_values(&event.body);
    let user = facets::user_key(&event.body);
    totals[7] += clock.lap();
    let stored = event_body::compress(&event.body);
    totals[8] += clock.lap();
    let prepared = process::prepare(payload, 1, &EnvelopeContext::default(), Utc::now(), limits);
    totals[9] += clock.lap();
    if encoding == body::ContentEncoding::Gzip {
        let one_stream = Bytes::from(gzip_one_stream(&plain));
        clock.lap();
        let inflated = body::decode(one_stream, encoding, 50 << 20).expect("decodes");
        totals[10] += clock.lap();
        assert_eq!(inflated, plain, "the same body");
    }
    std::hint::black_box((
        hash,
        title,
        culprit,
        tags,
        user,
        stored.ok(),
        prepared.is_ok(),
    ));
}

/// `plain` gzip'd in one go, as an SDK's HTTP client does.
fn gzip_one_stream(plain: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(plain).expect("writes to memory");
    encoder.finish().expect("writes to memory")
}

struct Clock(Instant);

impl Clock {
    fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let lap = now - self.0;
        self.0 = now;
        lap
    }
}
