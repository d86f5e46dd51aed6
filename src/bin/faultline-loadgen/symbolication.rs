//! `--symbolication`: what applying a source map adds to one JavaScript event at ingest, with
//! the map parsed and in memory, as the server's cache holds it after the first event.
//!
//! A generated bundle stands in for a real one: one minified line of `FUNCTIONS` functions
//! from `SOURCES` TypeScript files (with one character outside ASCII, the slower case), and
//! its map with the sources' content (about 1 MB). Each
//! event has `FRAMES` frames into it, all mapped (the worst case), and its debug id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use faultline::config::Limits;
use faultline::domain::minified_source::MinifiedSource;
use faultline::domain::symbolicate::{self, MapFile};
use faultline::ingest::normalize::EnvelopeContext;
use faultline::ingest::process;
use serde_json::json;
use sourcemap::{SourceMap, SourceMapBuilder};

const SOURCES: usize = 40;
const FUNCTIONS: usize = 5_000;
const FRAMES: usize = 20;
const FILE_URL: &str = "https://shop.example/static/app.min.js";
const DEBUG_ID: &str = "5b1f3e9a-2c4d-4e8f-9a1b-7c6d5e4f3a2b";

/// The minified source and its map, as JSON.
struct Bundle {
    minified: String,
    map_json: Vec<u8>,
    /// Column (1-based) of each function's `throw`, and the function's minified name.
    throws: Vec<(u32, String)>,
}

/// Times `events` events three ways; returns the report.
pub fn run(events: u64) -> String {
    let bundle = generate();
    let rss_before = rss_kib();
    let started = Instant::now();
    let map = SourceMap::from_slice(&bundle.map_json).expect("the generated map parses");
    let map = MapFile::new(map, Some(MinifiedSource::new(bundle.minified.clone())));
    let parse_time = started.elapsed();
    let weight = map.estimated_bytes();
    let rss_after = rss_kib();
    let by_file = HashMap::from([(FILE_URL.to_owned(), Arc::new(map))]);

    let limits = Limits::default();
    let context = EnvelopeContext::default();
    let (mut plain, mut mapped, mut apply_only) = (Vec::new(), Vec::new(), Vec::new());
    for seq in 0..events {
        let payload = event_payload(&bundle, seq as usize);
        let now = Utc::now();

        let started = Instant::now();
        let prepared = process::prepare(&payload, 1, &context, now, &limits);
        plain.push(started.elapsed());
        assert!(prepared.is_ok());

        let started = Instant::now();
        let mut event = process::normalize_payload(&payload, &context, now, &limits).unwrap();
        let applied_at = Instant::now();
        let frames = symbolicate::apply(&mut event.body, &by_file);
        apply_only.push(applied_at.elapsed());
        let prepared = process::finish(event, 1, now, &limits);
        mapped.push(started.elapsed());
        assert!(
            prepared.is_ok() && frames == FRAMES,
            "{frames} frames mapped"
        );
    }
    report(
        &bundle,
        parse_time,
        weight,
        rss_after - rss_before,
        [plain, mapped, apply_only],
    )
}

fn report(
    bundle: &Bundle,
    parse_time: Duration,
    weight: u64,
    rss_growth_kib: i64,
    mut timings: [Vec<Duration>; 3],
) -> String {
    let mut out = format!(
        "source map: {} bytes of JSON ({} functions in {} files), minified file {} bytes\n\
         parsed in {:.1} ms; cache weight {:.1} MiB; RSS grew {:.1} MiB\n\
         per event ({} frames, all mapped), p50 / p99:\n",
        bundle.map_json.len(),
        FUNCTIONS,
        SOURCES,
        bundle.minified.len(),
        parse_time.as_secs_f64() * 1e3,
        weight as f64 / 1048576.0,
        rss_growth_kib as f64 / 1024.0,
        FRAMES,
    );
    let labels = [
        "prepare() without maps",
        "prepare() with the map",
        "symbolicate::apply alone",
    ];
    let mut p50s = Vec::new();
    for (label, times) in labels.iter().zip(timings.iter_mut()) {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
        p50s.push(at(0.5));
        out.push_str(&format!(
            "  {label:<26} {:>8.1} µs {:>8.1} µs\n",
            at(0.5),
            at(0.99)
        ));
    }
    out.push_str(&format!(
        "  added by the map (p50)     {:>8.1} µs\n",
        p50s[1] - p50s[0]
    ));
    out
}

/// A JavaScript event with `FRAMES` frames into the bundle, a different set for each `seq`.
fn event_payload(bundle: &Bundle, seq: usize) -> Vec<u8> {
    let frames: Vec<_> = (0..FRAMES)
        .map(|i| {
            let (column, name) = &bundle.throws[(seq * 7919 + i * 251) % bundle.throws.len()];
            json!({"abs_path": FILE_URL, "filename": "app.min.js", "function": name,
                   "lineno": 1, "colno": column, "in_app": true})
        })
        .collect();
    json!({
        "platform": "javascript", "release": "shop@3.0.0", "environment": "production",
        "exception": {"values": [{"type": "TypeError",
            "value": format!("Cannot read properties of undefined (reading 'amount') #{seq}"),
            "stacktrace": {"frames": frames}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": FILE_URL, "debug_id": DEBUG_ID}]},
        "request": {"url": "https://shop.example/checkout", "headers": {"User-Agent": "Mozilla/5.0"}},
        "user": {"id": format!("user-{}", seq % 1000)},
    })
    .to_string()
    .into_bytes()
}

/// The bundle: each function of each source file becomes one minified function, with tokens
/// for its start, name, statements and `throw`.
fn generate() -> Bundle {
    let per_source = FUNCTIONS / SOURCES;
    let mut builder = SourceMapBuilder::new(Some("app.min.js"));
    let mut minified = String::new();
    let mut throws = Vec::new();
    for s in 0..SOURCES {
        let path = format!("../src/checkout/module{s}.ts");
        let source_id = builder.add_source(&path);
        let mut content = String::from("import { compute, Input, Output } from \"./shared\";\n\n");
        for f in 0..per_source {
            let line = content.lines().count() as u32;
            let original = format!("handleStep{s}x{f}");
            let short = format!("a{}", s * per_source + f);
            content.push_str(&format!(
                "export function {original}(input: Input): Output {{\n  const value = compute(input.amount, input.currency, {f});\n  if (!value) throw new Error(`{original} failed for ${{input.amount}}`);\n  return value;\n}}\n\n"
            ));
            let start = minified.len() as u32;
            minified.push_str(&format!("function {short}(b){{const c=d(b.e,b.f,{f});"));
            let throw_at = minified.len() as u32;
            minified.push_str("if(!c)throw new Error(\"x\");return c}");
            let add = |b: &mut SourceMapBuilder, col: u32, src_line: u32, src_col: u32, name| {
                b.add(0, col, src_line, src_col, Some(&path), name, false);
            };
            add(&mut builder, start, line, 0, None);
            add(&mut builder, start + 9, line, 16, Some(original.as_str()));
            add(
                &mut builder,
                start + 9 + short.len() as u32 + 4,
                line + 1,
                2,
                None,
            );
            add(&mut builder, throw_at, line + 2, 2, None);
            add(&mut builder, throw_at + 6, line + 2, 14, None);
            throws.push((throw_at + 7, short));
        }
        builder.set_source_contents(source_id, Some(&content));
    }
    // One character outside ASCII, as minifiers that keep UTF-8 leave a `©` in a string: the
    // line then takes the slower, checkpointed path to a column.
    minified.push_str("var z=\"©\";");
    let mut map_json = Vec::new();
    builder
        .into_sourcemap()
        .to_writer(&mut map_json)
        .expect("the map serialises");
    Bundle {
        minified,
        map_json,
        throws,
    }
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
