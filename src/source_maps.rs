//! Source maps for an event being shown: the uploaded maps its SDK reported (by debug id),
//! applied to its frames (`domain::symbolicate`). Events stored before their maps were
//! uploaded are shown in their original source this way too.

use std::collections::HashMap;

use serde_json::Value;
use sourcemap::{SourceMap, SourceView};
use uuid::Uuid;

use crate::domain::symbolicate::{self, MapFile};
use crate::store::artifacts;

/// Most distinct maps read for one event.
const MAX_MAPS: usize = 20;

/// Maps the event's frames through the project's uploaded source maps, in place. A map that
/// is missing or does not parse leaves its frames as they are; a database error does too
/// (the page still shows the event, as sent).
pub async fn apply(pool: &sqlx::PgPool, project_id: i64, event: &mut Value) {
    let mut ids: Vec<Uuid> = symbolicate::sourcemap_images(event)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    ids.sort();
    ids.dedup();
    ids.truncate(MAX_MAPS);
    let mut maps = HashMap::new();
    for id in ids {
        match load(pool, project_id, id).await {
            Ok(Some(map)) => {
                maps.insert(id, map);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(debug_id = %id, error = %e, "could not read a source map"),
        }
    }
    symbolicate::apply(event, &maps);
}

async fn load(pool: &sqlx::PgPool, project_id: i64, id: Uuid) -> sqlx::Result<Option<MapFile>> {
    let Some(map) = artifacts::file_by_debug_id(pool, project_id, id, "source_map").await? else {
        return Ok(None);
    };
    let Ok(map) = SourceMap::from_slice(&map.content) else {
        return Ok(None);
    };
    let minified = artifacts::file_by_debug_id(pool, project_id, id, "minified_source")
        .await?
        .and_then(|file| String::from_utf8(file.content).ok())
        .map(|text| SourceView::new(text.into()));
    Ok(Some(MapFile { map, minified }))
}
