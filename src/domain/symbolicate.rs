//! JavaScript frames in their original source (PROTOCOL.md §14.7): a frame whose file has a
//! source map (found through the event's `debug_meta.images` of type `sourcemap`) gets the
//! original file, line, column, function and context lines; what the SDK sent stays in the
//! frame's `minified` object. Pure: the maps are given. A missing or broken map leaves the
//! frame as it was.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sourcemap::SourceMap;
use uuid::Uuid;

use super::event_shape;
use super::minified_source::{self, MinifiedSource};

/// Context lines shown around the frame's line, each side.
const CONTEXT_LINES: u32 = 5;
/// Longest context line kept, in characters.
const MAX_LINE_CHARS: usize = 300;

/// A file's map, and its minified source when uploaded (for original function names).
pub struct MapFile {
    pub map: SourceMap,
    pub minified: Option<MinifiedSource>,
    /// Where each line of each original source starts (by source id), for context lines.
    line_starts: Vec<Vec<u32>>,
}

impl MapFile {
    pub fn new(map: SourceMap, minified: Option<MinifiedSource>) -> Self {
        let line_starts = (0..map.get_source_count())
            .map(|id| {
                map.get_source_contents(id)
                    .map(line_starts)
                    .unwrap_or_default()
            })
            .collect();
        MapFile {
            map,
            minified,
            line_starts,
        }
    }

    /// Roughly what the parsed map, its minified source and the index hold in memory, for
    /// the cache's bound.
    pub fn estimated_bytes(&self) -> u64 {
        let map = &self.map;
        let tokens = u64::from(map.get_token_count()) * BYTES_PER_TOKEN;
        let contents: usize = map.source_contents().flatten().map(str::len).sum();
        let names: usize = map.names().map(str::len).sum();
        let sources: usize = map.sources().map(str::len).sum();
        let minified = self
            .minified
            .as_ref()
            .map_or(0, MinifiedSource::size_in_memory);
        let line_index: usize = self.line_starts.iter().map(|l| l.len() * 4).sum();
        tokens + (contents + names + sources + minified + line_index) as u64
    }

    /// Lines `from..to` (0-based) of a source, those that exist.
    fn source_lines(&self, source_id: u32, from: usize, to: usize) -> Vec<&str> {
        let (Some(contents), Some(starts)) = (
            self.map.get_source_contents(source_id),
            self.line_starts.get(source_id as usize),
        ) else {
            return Vec::new();
        };
        (from..to.min(starts.len()))
            .map(|i| {
                let end = starts.get(i + 1).map_or(contents.len(), |&e| e as usize);
                contents[starts[i] as usize..end].trim_end_matches(['\n', '\r'])
            })
            .collect()
    }
}

fn line_starts(contents: &str) -> Vec<u32> {
    std::iter::once(0)
        .chain(contents.match_indices('\n').map(|(i, _)| i as u32 + 1))
        .filter(|&start| (start as usize) < contents.len())
        .collect()
}

/// Bytes of memory one parsed position takes (a `RawToken` and its index).
const BYTES_PER_TOKEN: u64 = 28;

/// Whether any exception frame not mapped yet could have a map: its file is one the SDK
/// reported a debug id for, or a URL in an event with a release. Cheap: events of other
/// platforms stop here.
pub fn may_have_maps(event: &Value) -> bool {
    let images = sourcemap_images(event);
    let has_release = event.get("release").and_then(Value::as_str).is_some();
    unmapped_frames(event).any(|frame| {
        let file = frame_file(frame);
        images.iter().any(|(image, _)| Some(image.as_str()) == file)
            || (has_release && frame_url(frame).is_some())
    })
}

/// `(code_file, debug id)` of each source map the event's SDK reported for a file that has
/// frames not mapped yet.
pub fn sourcemap_images(event: &Value) -> Vec<(String, Uuid)> {
    let Some(images) = event_shape::at(event, "/debug_meta/images").and_then(Value::as_array)
    else {
        return Vec::new();
    };
    images
        .iter()
        .filter(|image| image.get("type").and_then(Value::as_str) == Some("sourcemap"))
        .filter_map(|image| {
            let file = image.get("code_file")?.as_str()?;
            let id = Uuid::try_parse(image.get("debug_id")?.as_str()?).ok()?;
            Some((file, id))
        })
        .filter(|(file, _)| unmapped_frames(event).any(|frame| frame_file(frame) == Some(file)))
        .map(|(file, id)| (file.to_owned(), id))
        .collect()
}

/// The distinct URLs (`abs_path`) of the exception frames not mapped yet, at most `max`: the
/// files to look up by URL when the SDK reported no debug ids.
pub fn frame_urls(event: &Value, max: usize) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for url in unmapped_frames(event).filter_map(frame_url) {
        if !urls.iter().any(|u| u == url) && urls.len() < max {
            urls.push(url.to_owned());
        }
    }
    urls
}

/// Exception frames that carry no `minified` copy yet (maps are applied once).
fn unmapped_frames(event: &Value) -> impl Iterator<Item = &Value> {
    crate::domain::event_shape::exceptions(event)
        .into_iter()
        .flat_map(crate::domain::event_shape::frames)
        .filter(|frame| frame.get("minified").is_none())
}

/// The file a frame names: `abs_path`, else `filename`.
fn frame_file(frame: &Value) -> Option<&str> {
    ["abs_path", "filename"]
        .iter()
        .find_map(|key| frame.get(*key).and_then(Value::as_str))
}

fn frame_url(frame: &Value) -> Option<&str> {
    frame
        .get("abs_path")
        .and_then(Value::as_str)
        .filter(|path| path.contains("://"))
}

/// `~/static/app.js` from `https://shop.example/static/app.js?v=3`: how bundles name a file
/// served from any host.
pub fn tilde_url(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    Some(format!("~{path}"))
}

/// Where a minified file's map is: its `sourcemap` header, relative to the file's URL, else
/// the file's URL with `.map`.
pub fn map_url(file_url: &str, sourcemap_header: Option<&str>) -> String {
    match sourcemap_header {
        Some(header) if header.contains("://") || header.starts_with('~') => header.to_owned(),
        Some(header) if header.starts_with('/') => format!("~{header}"),
        Some(header) => {
            let base = file_url.rsplit_once('/').map_or("", |(base, _)| base);
            format!("{base}/{header}")
        }
        None => format!("{file_url}.map"),
    }
}

/// Maps every exception frame not mapped yet whose file (`abs_path`, else `filename`) has a
/// map in `by_file`; returns how many were mapped.
pub fn apply(event: &mut Value, by_file: &HashMap<String, Arc<MapFile>>) -> usize {
    if by_file.is_empty() {
        return 0;
    }
    let mut mapped = 0;
    let Some(exceptions) = event
        .pointer_mut("/exception/values")
        .and_then(Value::as_array_mut)
    else {
        return 0;
    };
    for exception in exceptions {
        let Some(frames) = exception
            .pointer_mut("/stacktrace/frames")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for frame in frames.iter_mut().filter_map(Value::as_object_mut) {
            if frame.contains_key("minified") {
                continue;
            }
            let file = ["abs_path", "filename"]
                .iter()
                .find_map(|key| frame.get(*key).and_then(Value::as_str))
                .and_then(|file| by_file.get(file));
            if let Some(map_file) = file {
                mapped += usize::from(map_frame(frame, map_file));
            }
        }
    }
    mapped
}

/// One frame through its map; false when the map has nothing for its position.
fn map_frame(frame: &mut Map<String, Value>, map_file: &MapFile) -> bool {
    let number = |key: &str| frame.get(key).and_then(Value::as_u64).map(|n| n as u32);
    let (Some(line), Some(column)) = (number("lineno"), number("colno")) else {
        return false;
    };
    if line == 0 || column == 0 {
        return false;
    }
    let Some(token) = map_file.map.lookup_token(line - 1, column - 1) else {
        return false;
    };
    let Some(source) = token.get_source() else {
        return false;
    };
    let minified_function = frame.get("function").and_then(Value::as_str).unwrap_or("");
    let function = map_file
        .minified
        .as_ref()
        .filter(|_| !minified_function.is_empty())
        .and_then(|source| {
            let index = minified_source::token_index_at(&map_file.map, line - 1, column - 1)?;
            minified_source::original_function_name(&map_file.map, source, index, minified_function)
        })
        .map(str::to_owned);
    let mut original: Map<String, Value> = ["filename", "abs_path", "function"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), frame.get(key)?.clone())))
        .collect();
    original.insert("lineno".into(), json!(line));
    original.insert("colno".into(), json!(column));
    let path = clean_source_path(source);
    frame.insert("in_app".into(), json!(!path.contains("node_modules/")));
    frame.insert("filename".into(), json!(path));
    frame.insert("abs_path".into(), json!(source));
    frame.insert("lineno".into(), json!(token.get_src_line() + 1));
    frame.insert("colno".into(), json!(token.get_src_col() + 1));
    if let Some(function) = function {
        frame.insert("function".into(), json!(function));
    }
    add_context(frame, map_file, token.get_src_id(), token.get_src_line());
    frame.insert("minified".into(), Value::Object(original));
    true
}

/// `src/checkout.ts` from `webpack://shop/./src/checkout.ts` or `../src/checkout.ts`.
fn clean_source_path(source: &str) -> String {
    let without_scheme = source.split_once("://").map_or(source, |(_, rest)| {
        rest.split_once('/').map_or(rest, |(_, p)| p)
    });
    without_scheme
        .trim_start_matches("./")
        .split('/')
        .filter(|part| *part != ".." && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn add_context(frame: &mut Map<String, Value>, map_file: &MapFile, source_id: u32, line: u32) {
    let at = line as usize;
    let from = at.saturating_sub(CONTEXT_LINES as usize);
    let lines = map_file.source_lines(source_id, from, at + 1 + CONTEXT_LINES as usize);
    let Some(current) = lines.get(at - from) else {
        return;
    };
    let cut =
        |l: &&str| Value::String(crate::domain::text::cut_chars(l, MAX_LINE_CHARS).to_owned());
    frame.insert(
        "pre_context".into(),
        lines[..at - from].iter().map(cut).collect(),
    );
    frame.insert("context_line".into(), cut(current));
    frame.insert(
        "post_context".into(),
        lines[at - from + 1..].iter().map(cut).collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2f9b1d2e-6c1b-4c3e-9d1a-3b8f0c7e5a11";
    const FILE: &str = "https://shop.example/app.min.js";
    const MINIFIED: &str = "function a(b){throw new Error(\"NaN: \"+b)}a(1);";

    fn map_file() -> Arc<MapFile> {
        // col 0 → line 1 col 0 ("export"), col 9 → `applyCoupon` (line 1 col 16), col 15 →
        // the throw (line 2 col 2).
        let map = json!({
            "version": 3, "file": "app.min.js", "sources": ["webpack://shop/./src/checkout.ts"],
            "sourcesContent": ["export function applyCoupon(total: number) {\n  throw new Error(`NaN: ${total}`);\n}\n"],
            "names": ["applyCoupon"], "mappings": "AAAA,SAAgBA,MACd"
        });
        Arc::new(MapFile::new(
            SourceMap::from_slice(map.to_string().as_bytes()).unwrap(),
            Some(MinifiedSource::new(MINIFIED.into())),
        ))
    }

    fn event(colno: u64) -> Value {
        json!({
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "https://shop.example/app.min.js", "debug_id": ID}]},
            "exception": {"values": [{"type": "Error", "stacktrace": {"frames": [
                {"abs_path": "https://shop.example/app.min.js", "filename": "app.min.js", "function": "a",
                 "lineno": 1, "colno": colno, "in_app": true},
                {"abs_path": "https://cdn.example/other.js", "function": "x", "lineno": 1, "colno": 1}
            ]}}]}
        })
    }

    #[test]
    fn a_frame_gets_its_original_file_line_function_and_context() {
        let maps = HashMap::from([(FILE.to_owned(), map_file())]);
        let mut event = event(16);
        assert_eq!(apply(&mut event, &maps), 1);
        let frame = &event["exception"]["values"][0]["stacktrace"]["frames"][0];
        assert_eq!(frame["filename"], "src/checkout.ts");
        assert_eq!(frame["lineno"], 2);
        assert_eq!(frame["context_line"], "  throw new Error(`NaN: ${total}`);");
        assert_eq!(
            frame["pre_context"],
            json!(["export function applyCoupon(total: number) {"])
        );
        assert_eq!(frame["minified"]["function"], "a");
        assert_eq!(frame["minified"]["lineno"], 1);
        let other = &event["exception"]["values"][0]["stacktrace"]["frames"][1];
        assert!(other.get("minified").is_none(), "no map for that file");
    }

    #[test]
    fn a_mapped_frame_is_not_mapped_again() {
        let maps = HashMap::from([(FILE.to_owned(), map_file())]);
        let mut event = event(16);
        assert!(may_have_maps(&event));
        assert_eq!(apply(&mut event, &maps), 1);
        let once = event.clone();
        // Its file is now the original one, and its `minified` copy marks it done.
        assert!(sourcemap_images(&event).is_empty());
        assert_eq!(frame_urls(&event, 10), ["https://cdn.example/other.js"]);
        assert_eq!(apply(&mut event, &maps), 0);
        assert_eq!(event, once);
    }

    #[test]
    fn only_frames_with_a_reported_map_or_a_url_and_release_may_have_maps() {
        let python = json!({"release": "1.0", "exception": {"values": [{"stacktrace": {"frames": [
            {"filename": "app.py", "abs_path": "/srv/app.py", "function": "f", "lineno": 3}]}}]}});
        assert!(!may_have_maps(&python));
        let mut browser = event(16);
        browser.as_object_mut().unwrap().remove("debug_meta");
        assert!(!may_have_maps(&browser), "a URL without a release");
        browser["release"] = json!("shop@1.0");
        assert!(may_have_maps(&browser));
    }

    #[test]
    fn no_map_or_no_position_leaves_frames_alone() {
        let mut without = event(16);
        assert_eq!(apply(&mut without, &HashMap::new()), 0);
        let maps = HashMap::from([(FILE.to_owned(), map_file())]);
        let mut no_column = event(16);
        no_column["exception"]["values"][0]["stacktrace"]["frames"][0]
            .as_object_mut()
            .unwrap()
            .remove("colno");
        assert_eq!(apply(&mut no_column, &maps), 0);
        assert_eq!(apply(&mut json!({"debug_meta": "x"}), &maps), 0);
    }

    #[test]
    fn images_urls_and_map_locations() {
        assert_eq!(
            sourcemap_images(&event(1)),
            [(FILE.to_owned(), Uuid::try_parse(ID).unwrap())]
        );
        assert_eq!(
            frame_urls(&event(1), 10),
            [FILE, "https://cdn.example/other.js"]
        );
        assert_eq!(frame_urls(&event(1), 1), [FILE]);
        assert_eq!(
            tilde_url("https://shop.example/static/app.js?v=3").as_deref(),
            Some("~/static/app.js")
        );
        assert_eq!(tilde_url("app.js"), None);
        assert_eq!(
            map_url("~/static/app.js", Some("app.js.map")),
            "~/static/app.js.map"
        );
        assert_eq!(
            map_url("~/static/app.js", Some("/maps/app.js.map")),
            "~/maps/app.js.map"
        );
        assert_eq!(map_url("~/static/app.js", None), "~/static/app.js.map");
    }

    #[test]
    fn context_lines_come_from_the_source_index() {
        assert_eq!(line_starts("a\nbb\n\nc"), [0, 2, 5, 6]);
        assert_eq!(line_starts("a\n"), [0]);
        let map = json!({"version": 3, "sources": ["a.ts"], "names": [], "mappings": "AAAA",
                         "sourcesContent": ["one\r\ntwo\nthree"]});
        let file = MapFile::new(
            SourceMap::from_slice(map.to_string().as_bytes()).unwrap(),
            None,
        );
        assert_eq!(file.source_lines(0, 0, 9), ["one", "two", "three"]);
        assert_eq!(file.source_lines(0, 2, 3), ["three"]);
        assert!(file.source_lines(0, 5, 9).is_empty());
        assert!(file.source_lines(7, 0, 1).is_empty(), "no such source");
        assert!(file.estimated_bytes() > 13);
    }

    #[test]
    fn source_paths_read_as_project_paths() {
        assert_eq!(clean_source_path("webpack://shop/./src/a.ts"), "src/a.ts");
        assert_eq!(clean_source_path("../src/a.ts"), "src/a.ts");
        assert_eq!(
            clean_source_path("node_modules/x/y.js"),
            "node_modules/x/y.js"
        );
    }
}
