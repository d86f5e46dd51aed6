//! The batch writer's transaction: issues, events and the aggregates the dashboard reads, for
//! many events at once. Rows are touched in a fixed order (issues by project and hash, then
//! aggregates by key) so that concurrent writers — in one process or several — never deadlock.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::aggregates;
use super::alerts;
use super::batch_issues::{update_issues, upsert_issues, Added, BatchIssues, IssueKey};
use super::known::Known;
use super::search_terms;
use crate::domain::level::Level;

/// Everything the writer stores for one event, prepared by ingest.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub project_id: i64,
    pub event_id: Uuid,
    pub hash: String,
    pub grouping: Value,
    pub title: String,
    pub culprit: String,
    pub metadata: Value,
    pub level: Level,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub user_key: Option<String>,
    pub tags: Vec<(String, String)>,
    /// What the issue list's free text finds in this event (`ingest::search_terms`).
    pub search_terms: Vec<String>,
    /// The normalised event as JSON, zstd-compressed.
    pub body: Vec<u8>,
}

/// What [`NewEvent::approximate_size`] allows for the parts it does not measure: the struct
/// itself, the grouping and metadata JSON (small, and bounded by the string limits) and the
/// allocator's overhead.
const UNMEASURED_BYTES: usize = 1024;

impl NewEvent {
    /// Roughly the memory this event holds while it waits for the writer: its compressed body
    /// and strings, plus [`UNMEASURED_BYTES`]. Cheap: no walk of the JSON.
    pub fn approximate_size(&self) -> usize {
        let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len()).sum();
        let terms: usize = self.search_terms.iter().map(String::len).sum();
        self.body.len()
            + self.hash.len()
            + self.title.len()
            + self.culprit.len()
            + optional(&self.environment)
            + optional(&self.release)
            + optional(&self.user_key)
            + tags
            + terms
            + UNMEASURED_BYTES
    }

    /// The hour bucket this event counts in.
    pub fn hour(&self) -> DateTime<Utc> {
        self.occurred_at
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or(self.occurred_at)
    }
}

/// When a batch adds its events to the aggregates (`store::aggregates`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregates {
    /// In its own transaction: they are current once it commits.
    Now,
    /// By a later `aggregates::flush`, which folds many batches' totals at once.
    Deferred,
}

/// How often a batch is tried in all when it meets a deadlock or a serialization failure.
const MAX_ATTEMPTS: usize = 3;

/// [`write_batch_known`], run again (up to [`MAX_ATTEMPTS`] tries in all) when it meets a
/// deadlock or a serialization failure ([`super::is_transient`]). Writers and the spool's
/// replay both write this way.
pub async fn write_batch_retrying(
    pool: &PgPool,
    events: &[&NewEvent],
    known: &Known,
    mode: Aggregates,
) -> sqlx::Result<usize> {
    let mut attempt = 1;
    loop {
        match write_batch_known(pool, events, known, mode).await {
            Err(e) if attempt < MAX_ATTEMPTS && super::is_transient(&e) => {
                tracing::warn!(attempt, error = %e, "retrying event batch");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Writes `events` in one transaction, tried once, skipping the search terms `known` says are
/// stored already and locking the issues it knows exist the quick way (the writers share one
/// such memory, across batches), and adding to the aggregates as `mode` says. Events whose
/// `(project_id, event_id)` is already stored (SDK retries) are skipped and counted nowhere.
/// Returns how many events were new.
pub async fn write_batch_known(
    pool: &PgPool,
    events: &[&NewEvent],
    known: &Known,
    mode: Aggregates,
) -> sqlx::Result<usize> {
    let events = unique_events(events);
    let mut tx = pool.begin().await?;
    let mut remember = Vec::new();
    let mut issues = upsert_issues(&mut tx, &events, &known.issues).await?;
    let inserted = insert_events(&mut tx, &events, &issues.ids).await?;
    let new_events: Vec<(&NewEvent, i64)> = events
        .iter()
        .filter(|e| inserted.contains(&(e.project_id, e.event_id)))
        .map(|e| (*e, issues.ids[&(e.project_id, e.hash.as_str())]))
        .collect();
    remove_empty_new_issues(&mut tx, &mut issues, &new_events).await?;
    if !new_events.is_empty() {
        let totals = aggregates::totals(&new_events);
        let new_users = match mode {
            Aggregates::Now => aggregates::add_now(&mut tx, &totals).await?,
            Aggregates::Deferred => {
                aggregates::defer(&mut tx, &totals).await?;
                HashMap::new()
            }
        };
        let (new_terms, stored_terms) =
            search_terms::add(&mut tx, &new_events, &issues.term_counts, &known.terms).await?;
        remember = stored_terms;
        let added = Added {
            users: new_users,
            search_terms: new_terms,
        };
        let regressed = update_issues(&mut tx, &new_events, &issues.newest, &added).await?;
        let triggers = alerts::triggers_of(&new_events, &issues.created, &regressed);
        if !triggers.is_empty() {
            alerts::record_triggers(&mut tx, &triggers).await?;
        }
    }
    tx.commit().await?;
    // Only once committed: a rolled-back batch stored none of them.
    known.terms.remember(remember);
    known.issues.remember(issues.ids.keys().copied());
    Ok(new_events.len())
}

/// Deletes the issues this batch created for events that turned out to be stored already (an
/// SDK's retry that groups differently, say after a source map's upload): they would stay
/// listed with no event. Usually none: one look through the batch.
async fn remove_empty_new_issues(
    tx: &mut Transaction<'_, Postgres>,
    issues: &mut BatchIssues<'_>,
    new_events: &[(&NewEvent, i64)],
) -> sqlx::Result<()> {
    let with_events: HashSet<i64> = new_events.iter().map(|(_, id)| *id).collect();
    let empty: Vec<i64> = issues
        .created
        .iter()
        .copied()
        .filter(|id| !with_events.contains(id))
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM issues WHERE id = ANY($1)")
        .bind(&empty)
        .execute(&mut **tx)
        .await?;
    issues.ids.retain(|_, id| !empty.contains(id));
    issues.created.retain(|id| !empty.contains(id));
    Ok(())
}

/// The first of each `(project_id, event_id)`: a retry inside one batch counts once.
fn unique_events<'a>(events: &[&'a NewEvent]) -> Vec<&'a NewEvent> {
    let mut seen = HashSet::new();
    events
        .iter()
        .copied()
        .filter(|e| seen.insert((e.project_id, e.event_id)))
        .collect()
}

/// Inserts the events, skipping ones already stored; returns the keys of those inserted.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
    issue_ids: &HashMap<IssueKey<'_>, i64>,
) -> sqlx::Result<HashSet<(i64, Uuid)>> {
    let project_ids: Vec<i64> = events.iter().map(|e| e.project_id).collect();
    let event_ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let issues: Vec<i64> = events
        .iter()
        .map(|e| issue_ids[&(e.project_id, e.hash.as_str())])
        .collect();
    let received: Vec<DateTime<Utc>> = events.iter().map(|e| e.received_at).collect();
    let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let levels: Vec<&str> = events.iter().map(|e| e.level.as_str()).collect();
    let environments: Vec<Option<&str>> = events.iter().map(|e| e.environment.as_deref()).collect();
    let releases: Vec<Option<&str>> = events.iter().map(|e| e.release.as_deref()).collect();
    let users: Vec<Option<&str>> = events.iter().map(|e| e.user_key.as_deref()).collect();
    let bodies: Vec<&[u8]> = events.iter().map(|e| e.body.as_slice()).collect();
    let rows: Vec<(i64, Uuid)> = sqlx::query_as(
        // `event_ids` is the de-duplication ledger (a partitioned table cannot be unique on
        // the event id alone): only the events it newly accepts are stored.
        "WITH batch AS (
             SELECT * FROM UNNEST($1::int8[], $2::uuid[], $3::int8[], $4::timestamptz[], $5::timestamptz[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])
                 AS u(project_id, event_id, issue_id, received_at, occurred_at, level,
                      environment, release, user_key, body)
         ), accepted AS (
             INSERT INTO event_ids (project_id, event_id, issue_id, received_at)
             SELECT project_id, event_id, issue_id, received_at FROM batch ORDER BY 1, 2
             ON CONFLICT (project_id, event_id) DO NOTHING
             RETURNING project_id, event_id, issue_id
         ), linked_feedback AS (
             -- User feedback that arrived before its event (usually none: one probe of an
             -- empty partial index per event).
             UPDATE user_feedback f SET issue_id = a.issue_id
               FROM accepted a
              WHERE f.issue_id IS NULL AND f.project_id = a.project_id AND f.event_id = a.event_id
         )
         INSERT INTO events (project_id, event_id, issue_id, received_at, occurred_at, level,
                             environment, release, user_key, body)
         SELECT b.* FROM batch b JOIN accepted a USING (project_id, event_id)
         RETURNING project_id, event_id",
    )
    .bind(&project_ids)
    .bind(&event_ids)
    .bind(&issues)
    .bind(&received)
    .bind(&occurred)
    .bind(&levels)
    .bind(&environments)
    .bind(&releases)
    .bind(&users)
    .bind(&bodies)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}
