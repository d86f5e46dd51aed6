//! Source maps for events: the uploaded maps an event's frames point to, applied to them
//! (`domain::symbolicate`). A file is found by the debug id its SDK reported
//! (`debug_meta.images`), else by its URL in the event's release (and dist).
//!
//! Ingest applies them before grouping, so issues group on the original frames. An event
//! that came before its maps stays grouped on its minified frames (its issue is not merged
//! into the later one) and is shown in its original source when viewed: views apply the
//! maps too, to frames not mapped yet.
//!
//! Parsed maps are kept in a cache bounded by memory (`FAULTLINE_SOURCE_MAP_CACHE_MB`), with
//! the answer "no map" too, so an event whose maps are known costs no query. Entries are
//! read again after a while (another Faultline may have had an upload); an upload or a
//! removal through this server drops them at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::Cache;
use quick_cache::{OptionsBuilder, Weighter};
use serde_json::Value;
use sourcemap::SourceMap;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::domain::minified_source::MinifiedSource;
use crate::domain::symbolicate::{self, MapFile};
use crate::store::artifacts::{self, ArtifactFile};

/// Most distinct files looked up for one event.
const MAX_FILES: usize = 20;
/// How long a map found stays cached before it is read again.
const FOUND_FOR: Duration = Duration::from_secs(10 * 60);
/// How long "no map" is believed: maps uploaded through another server show up this late.
const MISSING_FOR: Duration = Duration::from_secs(60);
/// How long PostgreSQL is taken to be away after a lookup failed: only cached maps are used.
const FAILED_FOR: Duration = Duration::from_secs(10);
/// Longest wait for one file's lookup: ingest never waits long for a map.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest all of one event's lookups may take together; past it the event goes on unmapped.
const EVENT_DEADLINE: Duration = Duration::from_secs(2);
/// Bytes a cache entry takes besides its map and its key's text.
const KEY_OVERHEAD: usize = 96;
/// Projects whose "has bundles" answer is kept.
const PROJECTS_KEPT: usize = 10_000;
/// Files read and parsed at once, for all events: each holds its map's bytes and parse (up to
/// half the cache) and a database connection. Events naming many maps not cached (a flood with
/// made-up or rotating debug ids) then wait for their turn, within their deadline, instead of
/// each reading and parsing at once.
const LOADS_AT_ONCE: usize = 4;

/// Parsed maps by project and file, bounded by their estimated size in memory.
pub struct SourceMapCache {
    maps: Cache<MapKey, Cached, ByEstimatedSize>,
    /// Per project (and generation): whether it has any bundle, and until when that holds.
    /// Events of projects without uploads, and events sent to them with made-up releases and
    /// URLs, then cost no query per file.
    projects: Cache<(u64, i64), (bool, Instant)>,
    /// The bound, in estimated bytes: a map heavier than most of it is never kept.
    capacity: u64,
    /// Until when PostgreSQL is taken to be away (a lookup failed): meanwhile only what is
    /// cached is used, so an outage costs one lookup's timeout, not one per file and event.
    away_until: std::sync::Mutex<Option<Instant>>,
    /// Turns for [`load`]: at most [`LOADS_AT_ONCE`] at a time.
    loads: Arc<tokio::sync::Semaphore>,
    /// Bumped by each upload or removal: entries of an older generation are never read.
    generation: AtomicU64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct MapKey {
    generation: u64,
    project_id: i64,
    lookup: Lookup,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Lookup {
    DebugId(Uuid),
    Url {
        release: String,
        dist: Option<String>,
        url: String,
    },
}

#[derive(Clone)]
struct Cached {
    map: Option<Arc<MapFile>>,
    weight: u64,
    expires_at: Instant,
}

#[derive(Clone)]
struct ByEstimatedSize;

impl Weighter<MapKey, Cached> for ByEstimatedSize {
    fn weight(&self, key: &MapKey, cached: &Cached) -> u64 {
        // The key counts too: a "no map" answer for a long URL is not free.
        let key_bytes = match &key.lookup {
            Lookup::DebugId(_) => 0,
            Lookup::Url { release, dist, url } => {
                release.len() + dist.as_ref().map_or(0, String::len) + url.len()
            }
        };
        cached.weight + (KEY_OVERHEAD + key_bytes) as u64
    }
}

impl SourceMapCache {
    pub fn new(capacity_bytes: u64) -> Self {
        let options = OptionsBuilder::new()
            .estimated_items_capacity(256)
            .weight_capacity(capacity_bytes.max(1))
            // One shard: a shard holds a share of the capacity, and a big map must fit.
            .shards(1)
            .build()
            .expect("valid cache options");
        SourceMapCache {
            maps: Cache::with_options(
                options,
                ByEstimatedSize,
                Default::default(),
                Default::default(),
            ),
            projects: Cache::new(PROJECTS_KEPT),
            capacity: capacity_bytes,
            away_until: std::sync::Mutex::new(None),
            loads: Arc::new(tokio::sync::Semaphore::new(LOADS_AT_ONCE)),
            generation: AtomicU64::new(0),
        }
    }

    /// Forgets every cached answer: a bundle was uploaded or removed.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.maps.clear();
        self.projects.clear();
    }

    /// Maps the event's frames not mapped yet through the project's uploaded source maps,
    /// in place; returns how many frames were mapped. A map that is missing or does not
    /// parse, or a database that does not answer, leaves frames as they are.
    pub async fn apply(&self, pool: &PgPool, project_id: i64, event: &mut Value) -> usize {
        if !symbolicate::may_have_maps(event) || !self.has_bundles(pool, project_id).await {
            return 0;
        }
        let lookups = self.maps_for(pool, project_id, event);
        match tokio::time::timeout(EVENT_DEADLINE, lookups).await {
            Ok(by_file) => symbolicate::apply(event, &by_file),
            Err(_) => {
                tracing::warn!("looking up an event's source maps took too long");
                0
            }
        }
    }

    /// Whether the project has any bundle (cached like a map: a minute when it has none).
    async fn has_bundles(&self, pool: &PgPool, project_id: i64) -> bool {
        let key = (self.generation.load(Ordering::Relaxed), project_id);
        loop {
            if self.database_away() {
                // Stale or not, the last answer is the best there is.
                return self.projects.get(&key).is_some_and(|(has, _)| has);
            }
            match self.projects.get_value_or_guard_async(&key).await {
                Ok((has, until)) if until > Instant::now() => return has,
                Ok(_) => {
                    self.projects.remove(&key);
                }
                Err(guard) => {
                    let Some((has, kept_for)) = has_bundles_now(pool, project_id).await else {
                        self.mark_database_away();
                        drop(guard);
                        return false;
                    };
                    let _ = guard.insert((has, Instant::now() + kept_for));
                    return has;
                }
            }
        }
    }

    /// The maps by the file (`abs_path`) they describe.
    async fn maps_for(
        &self,
        pool: &PgPool,
        project_id: i64,
        event: &Value,
    ) -> HashMap<String, Arc<MapFile>> {
        let mut by_file = HashMap::new();
        for (file, id) in symbolicate::sourcemap_images(event)
            .into_iter()
            .take(MAX_FILES)
        {
            if let Some(map) = self.get(pool, project_id, Lookup::DebugId(id)).await {
                by_file.insert(file, map);
            }
        }
        let release = event.get("release").and_then(Value::as_str);
        if let (true, Some(release)) = (by_file.is_empty(), release) {
            let dist = event.get("dist").and_then(Value::as_str);
            for file in symbolicate::frame_urls(event, MAX_FILES) {
                let Some(url) = symbolicate::tilde_url(&file) else {
                    continue;
                };
                let lookup = Lookup::Url {
                    release: release.to_owned(),
                    dist: dist.map(str::to_owned),
                    url,
                };
                if let Some(map) = self.get(pool, project_id, lookup).await {
                    by_file.insert(file, map);
                }
            }
        }
        by_file
    }

    /// The cached answer for one file, else looked up (once, however many ask at a time).
    async fn get(&self, pool: &PgPool, project_id: i64, lookup: Lookup) -> Option<Arc<MapFile>> {
        let key = MapKey {
            generation: self.generation.load(Ordering::Relaxed),
            project_id,
            lookup,
        };
        loop {
            if self.database_away() {
                let cached = self.maps.get(&key);
                return cached.filter(|c| c.expires_at > Instant::now())?.map;
            }
            match self.maps.get_value_or_guard_async(&key).await {
                Ok(cached) if cached.expires_at > Instant::now() => return cached.map,
                Ok(_) => {
                    self.maps.remove(&key);
                }
                Err(guard) => {
                    // Waiting for a turn is not the database's slowness: it is outside the
                    // lookup's timeout, and only the event's deadline bounds it.
                    let turn = self.loads.clone().acquire_owned().await.ok()?;
                    let loaded = load(pool, key.project_id, &key.lookup, self.capacity, turn);
                    let Some(cached) = loaded.await else {
                        self.mark_database_away();
                        drop(guard);
                        return None;
                    };
                    let map = cached.map.clone();
                    let _ = guard.insert(cached);
                    return map;
                }
            }
        }
    }

    fn database_away(&self) -> bool {
        let mut away = self.away_until.lock().unwrap_or_else(|e| e.into_inner());
        match *away {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                *away = None;
                false
            }
            None => false,
        }
    }

    fn mark_database_away(&self) {
        *self.away_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + FAILED_FOR);
    }
}

/// Whether the project has any bundle, and how long to believe it; `None` when the database
/// did not answer.
async fn has_bundles_now(pool: &PgPool, project_id: i64) -> Option<(bool, Duration)> {
    let lookup = artifacts::project_has_bundles(pool, project_id);
    match tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(true)) => Some((true, FOUND_FOR)),
        Ok(Ok(false)) => Some((false, MISSING_FOR)),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not tell whether a project has source maps");
            None
        }
        Err(_) => {
            tracing::warn!("telling whether a project has source maps took too long");
            None
        }
    }
}

/// Reads and parses one file's map: a missing map, a broken one and one too large for the
/// cache are each "no map", for a while; `None` when the database did not answer.
/// `turn` is held until the parse is done, even if the event stops waiting for it.
async fn load(
    pool: &PgPool,
    project_id: i64,
    lookup: &Lookup,
    capacity: u64,
    turn: tokio::sync::OwnedSemaphorePermit,
) -> Option<Cached> {
    let missing = |for_how_long| {
        Some(Cached {
            map: None,
            weight: 1,
            expires_at: Instant::now() + for_how_long,
        })
    };
    let files =
        match tokio::time::timeout(LOOKUP_TIMEOUT, read_files(pool, project_id, lookup)).await {
            Ok(Ok(files)) => files,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not read a source map");
                return None;
            }
            Err(_) => {
                tracing::warn!("reading a source map took too long");
                return None;
            }
        };
    let (Some(map), minified) = files else {
        return missing(MISSING_FOR);
    };
    // Kept or not, a map is parsed once per `FOUND_FOR`: one that could never be kept would
    // otherwise be read and parsed again for every event.
    let too_large = |bytes: u64| {
        tracing::warn!(
            bytes,
            "a source map is too large for FAULTLINE_SOURCE_MAP_CACHE_MB; its frames stay minified"
        );
        missing(FOUND_FOR)
    };
    let file_bytes = (map.content.len() + minified.as_ref().map_or(0, |m| m.content.len())) as u64;
    if file_bytes > capacity / 2 {
        return too_large(file_bytes);
    }
    let bundle_id = map.bundle_id;
    // Parsing a large map takes milliseconds: off the request threads.
    let parsed = tokio::task::spawn_blocking(move || {
        let parsed = parse(map, minified);
        drop(turn);
        parsed
    })
    .await
    .ok()
    .flatten();
    let Some((map, weight)) = parsed else {
        return missing(MISSING_FOR);
    };
    if weight > capacity / 10 * 9 {
        return too_large(weight);
    }
    // Not awaited: the events waiting for this map do not wait for the bookkeeping.
    let pool = pool.clone();
    tokio::spawn(async move {
        if let Err(e) = artifacts::touch_bundles(&pool, &[bundle_id]).await {
            tracing::warn!(error = %e, "could not mark a source map as used");
        }
    });
    Some(Cached {
        map: Some(Arc::new(map)),
        weight,
        expires_at: Instant::now() + FOUND_FOR,
    })
}

/// The map file and the minified file it describes, for one lookup.
async fn read_files(
    pool: &PgPool,
    project_id: i64,
    lookup: &Lookup,
) -> sqlx::Result<(Option<ArtifactFile>, Option<ArtifactFile>)> {
    match lookup {
        Lookup::DebugId(id) => artifacts::files_by_debug_id(pool, project_id, *id).await,
        Lookup::Url { release, dist, url } => {
            let find = |url: String, kind: &'static str| async move {
                artifacts::file_by_url(pool, project_id, release, dist.as_deref(), &url, kind).await
            };
            let minified = find(url.clone(), "minified_source").await?;
            let map_url =
                symbolicate::map_url(url, minified.as_ref().and_then(|m| m.sourcemap.as_deref()));
            Ok((find(map_url, "source_map").await?, minified))
        }
    }
}

/// The parsed map and its estimated size in memory.
fn parse(map_file: ArtifactFile, minified: Option<ArtifactFile>) -> Option<(MapFile, u64)> {
    let map = SourceMap::from_slice(&map_file.content).ok()?;
    let minified = minified
        .and_then(|file| String::from_utf8(file.content).ok())
        .map(MinifiedSource::new);
    let map = MapFile::new(map, minified);
    let weight = map.estimated_bytes();
    Some((map, weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_map_weighs_its_key() {
        let missing = Cached {
            map: None,
            weight: 1,
            expires_at: Instant::now(),
        };
        let key = |url: String| MapKey {
            generation: 0,
            project_id: 1,
            lookup: Lookup::Url {
                release: "shop@1.0".into(),
                dist: None,
                url,
            },
        };
        let short = ByEstimatedSize.weight(&key("~/a.js".into()), &missing);
        let long = ByEstimatedSize.weight(&key(format!("~/{}", "a".repeat(4000))), &missing);
        assert!(short > KEY_OVERHEAD as u64);
        assert!(long >= short + 3990, "{short} {long}");
    }
}
