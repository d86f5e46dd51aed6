//! Checking the DSN key of an ingest request, with a short-lived in-memory cache so a busy
//! project costs no query per event. Entries live a few seconds, so a revoked key stops
//! working on every instance within that time; a cached answer also keeps ingest going for
//! known keys while the database is briefly away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::auth::PublicKey;
use super::error::IngestError;
use crate::spool::Spool;
use crate::store::keys::{lookup, KeyLookup};

const FRESH_FOR: Duration = Duration::from_secs(5);
/// How long a cached answer may stand in for the database when it cannot be reached.
const STALE_UP_TO: Duration = Duration::from_secs(600);
const MAX_ENTRIES: usize = 10_000;
/// After a failed lookup, cached answers stand in without asking the database for this long:
/// during an outage each request would otherwise wait for a connection that never comes.
const RETRY_LOOKUPS_AFTER: Duration = Duration::from_secs(2);
/// The longest a lookup may take before the cached answer is used instead.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

pub struct KeyCache {
    pool: PgPool,
    /// Knows when the database is down (the writers found it so): cached answers are then
    /// used without asking.
    spool: Arc<Spool>,
    entries: Mutex<HashMap<(i64, String), (KeyLookup, Instant)>>,
    last_failure: Mutex<Option<Instant>>,
}

impl KeyCache {
    pub fn new(pool: PgPool, spool: Arc<Spool>) -> Self {
        KeyCache {
            pool,
            spool,
            entries: Mutex::new(HashMap::new()),
            last_failure: Mutex::new(None),
        }
    }

    /// Ok when `key` may send events to `project_id`; otherwise the 401/403/404 that says why.
    pub async fn authorize(&self, project_id: i64, key: &PublicKey) -> Result<(), IngestError> {
        let cache_key = (project_id, key.as_str().to_owned());
        let cached = self.cached(&cache_key);
        let stale = cached.filter(|(_, at)| at.elapsed() < STALE_UP_TO);
        let found = match (cached, stale) {
            (Some((found, at)), _) if at.elapsed() < FRESH_FOR => found,
            // The database is known to be away: the cached answer stands in without asking.
            (_, Some((found, _))) if self.spool.is_database_down() || self.failed_recently() => {
                found
            }
            _ => match self.look_up(project_id, key).await {
                Ok(found) => {
                    self.remember(cache_key, found);
                    found
                }
                Err(e) => match stale {
                    Some((found, _)) => found,
                    None => {
                        return Err(IngestError::Unavailable(e.context("DSN key lookup failed")))
                    }
                },
            },
        };
        verdict(project_id, found)
    }

    async fn look_up(&self, project_id: i64, key: &PublicKey) -> anyhow::Result<KeyLookup> {
        let looked_up =
            tokio::time::timeout(LOOKUP_TIMEOUT, lookup(&self.pool, project_id, key.as_str()))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|found| found.map_err(anyhow::Error::from));
        if looked_up.is_err() {
            if let Ok(mut last) = self.last_failure.lock() {
                *last = Some(Instant::now());
            }
        }
        looked_up
    }

    fn failed_recently(&self) -> bool {
        self.last_failure
            .lock()
            .ok()
            .and_then(|last| *last)
            .is_some_and(|at| at.elapsed() < RETRY_LOOKUPS_AFTER)
    }

    /// Drops every cached answer: a key revoked here is refused by this instance at once
    /// (other instances follow within a few seconds).
    pub fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    fn cached(&self, key: &(i64, String)) -> Option<(KeyLookup, Instant)> {
        self.entries.lock().ok()?.get(key).copied()
    }

    fn remember(&self, key: (i64, String), found: KeyLookup) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (found, Instant::now()));
        }
    }
}

fn verdict(project_id: i64, found: KeyLookup) -> Result<(), IngestError> {
    if !found.project_exists {
        return Err(IngestError::UnknownProject(format!(
            "project {project_id} does not exist"
        )));
    }
    match found.key_project_id {
        None => Err(IngestError::Unauthorized("unknown DSN key".into())),
        Some(owner) if owner != project_id => Err(IngestError::Forbidden(format!(
            "this DSN key does not belong to project {project_id}"
        ))),
        Some(_) if found.revoked => Err(IngestError::Forbidden(
            "this DSN key has been revoked".into(),
        )),
        Some(_) => Ok(()),
    }
}
