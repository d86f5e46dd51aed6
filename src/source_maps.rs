//! Source maps for an event being shown: the uploaded maps its frames point to, applied to
//! them (`domain::symbolicate`). A file is found by the debug id its SDK reported
//! (`debug_meta.images`), else by its URL in the event's release (and dist). Events stored
//! before their maps were uploaded are shown in their original source this way too.

use std::collections::HashMap;

use serde_json::Value;
use sourcemap::{SourceMap, SourceView};
use sqlx::PgPool;

use crate::domain::symbolicate::{self, MapFile};
use crate::store::artifacts::{self, ArtifactFile};

/// Most distinct files looked up for one event.
const MAX_FILES: usize = 20;

/// Maps the event's frames through the project's uploaded source maps, in place. A map that
/// is missing or does not parse leaves its frames as they are; a database error does too
/// (the page still shows the event, as sent).
pub async fn apply(pool: &PgPool, project_id: i64, event: &mut Value) {
    match load_for(pool, project_id, event).await {
        Ok((by_file, bundles)) => {
            symbolicate::apply(event, &by_file);
            if !bundles.is_empty() {
                if let Err(e) = artifacts::touch_bundles(pool, &bundles).await {
                    tracing::warn!(error = %e, "could not mark source maps as used");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the event's source maps"),
    }
}

/// The maps by the file (`abs_path`) they describe, and the bundles they came from.
async fn load_for(
    pool: &PgPool,
    project_id: i64,
    event: &Value,
) -> sqlx::Result<(HashMap<String, MapFile>, Vec<i64>)> {
    let mut by_file = HashMap::new();
    let mut bundles = Vec::new();
    let images = symbolicate::sourcemap_images(event);
    for (file, id) in images.into_iter().take(MAX_FILES) {
        let map = artifacts::file_by_debug_id(pool, project_id, id, "source_map").await?;
        let minified = artifacts::file_by_debug_id(pool, project_id, id, "minified_source").await?;
        if let Some(loaded) = parse(map, minified, &mut bundles) {
            by_file.insert(file, loaded);
        }
    }
    let release = event.get("release").and_then(Value::as_str);
    if let (true, Some(release)) = (by_file.is_empty(), release) {
        let dist = event.get("dist").and_then(Value::as_str);
        for file in symbolicate::frame_urls(event, MAX_FILES) {
            let Some(url) = symbolicate::tilde_url(&file) else {
                continue;
            };
            let find = |url: String, kind: &'static str| async move {
                artifacts::file_by_url(pool, project_id, release, dist, &url, kind).await
            };
            let minified = find(url.clone(), "minified_source").await?;
            let map_url =
                symbolicate::map_url(&url, minified.as_ref().and_then(|m| m.sourcemap.as_deref()));
            let map = find(map_url, "source_map").await?;
            if let Some(loaded) = parse(map, minified, &mut bundles) {
                by_file.insert(file, loaded);
            }
        }
    }
    Ok((by_file, bundles))
}

fn parse(
    map: Option<ArtifactFile>,
    minified: Option<ArtifactFile>,
    bundles: &mut Vec<i64>,
) -> Option<MapFile> {
    let map_file = map?;
    let map = SourceMap::from_slice(&map_file.content).ok()?;
    bundles.push(map_file.bundle_id);
    let minified = minified
        .and_then(|file| String::from_utf8(file.content).ok())
        .map(|text| SourceView::new(text.into()));
    Some(MapFile { map, minified })
}
