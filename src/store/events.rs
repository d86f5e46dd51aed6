//! The batch writer's transaction: issues, events and the aggregates the dashboard reads, for
//! many events at once. Rows are touched in a fixed order (issues by project and hash, then
//! aggregates by key) so that concurrent writers — in one process or several — never deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::alerts;
use super::batch_issues::{update_issues, upsert_issues, Added, IssueKey};
use super::endpoints;
use super::search_terms::{self, KnownTerms};
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

impl NewEvent {
    /// The hour bucket this event counts in.
    pub fn hour(&self) -> DateTime<Utc> {
        self.occurred_at
            .duration_trunc(TimeDelta::hours(1))
            .unwrap_or(self.occurred_at)
    }
}

/// Writes `events` in one transaction. Events whose `(project_id, event_id)` is already stored
/// (SDK retries) are skipped and counted nowhere. Returns how many events were new.
pub async fn write_batch(pool: &PgPool, events: &[&NewEvent]) -> sqlx::Result<usize> {
    write_batch_known(pool, events, &KnownTerms::default()).await
}

/// [`write_batch`], skipping the search terms `known` says are stored already (the writers
/// keep one such memory each, across batches).
pub async fn write_batch_known(
    pool: &PgPool,
    events: &[&NewEvent],
    known: &KnownTerms,
) -> sqlx::Result<usize> {
    let events = unique_events(events);
    let mut tx = pool.begin().await?;
    let mut remember = Vec::new();
    let issues = upsert_issues(&mut tx, &events).await?;
    let inserted = insert_events(&mut tx, &events, &issues.ids).await?;
    let new_events: Vec<(&NewEvent, i64)> = events
        .iter()
        .filter(|e| inserted.contains(&(e.project_id, e.event_id)))
        .map(|e| (*e, issues.ids[&(e.project_id, e.hash.as_str())]))
        .collect();
    if !new_events.is_empty() {
        add_hourly_counts(&mut tx, &new_events).await?;
        let new_users = add_tag_values(&mut tx, &new_events).await?;
        let (new_terms, stored_terms) =
            search_terms::add(&mut tx, &new_events, &issues.term_counts, known).await?;
        remember = stored_terms;
        endpoints::add_hits(&mut tx, &endpoints::hits_of(&new_events)).await?;
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
    known.remember(remember);
    Ok(new_events.len())
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

async fn add_hourly_counts(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
) -> sqlx::Result<()> {
    let mut counts: BTreeMap<(i64, DateTime<Utc>), i64> = BTreeMap::new();
    for (event, issue_id) in events {
        *counts.entry((*issue_id, event.hour())).or_default() += 1;
    }
    let (keys, values): (Vec<_>, Vec<i64>) = counts.into_iter().unzip();
    let (issue_ids, hours): (Vec<i64>, Vec<DateTime<Utc>>) = keys.into_iter().unzip();
    sqlx::query(
        "INSERT INTO issue_hourly_counts (issue_id, hour, count)
         SELECT * FROM UNNEST($1::int8[], $2::timestamptz[], $3::int8[]) ORDER BY 1, 2
         ON CONFLICT (issue_id, hour) DO UPDATE SET count = issue_hourly_counts.count + EXCLUDED.count",
    )
    .bind(&issue_ids)
    .bind(&hours)
    .bind(&values)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many events, and the first and last time among them.
pub(super) struct TagCount {
    pub(super) count: i64,
    pub(super) first_seen: DateTime<Utc>,
    pub(super) last_seen: DateTime<Utc>,
}

impl TagCount {
    pub(super) fn new(t: DateTime<Utc>) -> Self {
        TagCount {
            count: 0,
            first_seen: t,
            last_seen: t,
        }
    }

    pub(super) fn add(&mut self, t: DateTime<Utc>) {
        self.count += 1;
        self.first_seen = self.first_seen.min(t);
        self.last_seen = self.last_seen.max(t);
    }
}

/// Adds the events' tag values; returns, per issue, how many `user` values were new to it.
async fn add_tag_values(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
) -> sqlx::Result<HashMap<i64, i64>> {
    let mut counts: BTreeMap<(i64, &str, &str), TagCount> = BTreeMap::new();
    for (event, issue_id) in events {
        for (key, value) in &event.tags {
            let t = event.occurred_at;
            counts
                .entry((*issue_id, key.as_str(), value.as_str()))
                .or_insert_with(|| TagCount::new(t))
                .add(t);
        }
    }
    if counts.is_empty() {
        return Ok(HashMap::new());
    }
    let mut issue_ids = Vec::with_capacity(counts.len());
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    let (mut totals, mut firsts, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
    for ((issue_id, key, value), tag) in counts {
        issue_ids.push(issue_id);
        keys.push(key);
        values.push(value);
        totals.push(tag.count);
        firsts.push(tag.first_seen);
        lasts.push(tag.last_seen);
    }
    // `xmax = 0` marks a row this statement inserted rather than updated: a new distinct value.
    // Counted in the statement: returning every upserted row (~12 per event) cost the writer
    // more to decode than the few issues with new users are worth.
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "WITH upserted AS (
             INSERT INTO issue_tag_values (issue_id, key, value, count, first_seen, last_seen)
             SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[], $5::timestamptz[], $6::timestamptz[])
              ORDER BY 1, 2, 3
             ON CONFLICT (issue_id, key, value) DO UPDATE
                SET count = issue_tag_values.count + EXCLUDED.count,
                    first_seen = LEAST(issue_tag_values.first_seen, EXCLUDED.first_seen),
                    last_seen = GREATEST(issue_tag_values.last_seen, EXCLUDED.last_seen)
             RETURNING issue_id, (key = 'user' AND xmax = 0) AS new_user
         )
         SELECT issue_id, count(*) FROM upserted WHERE new_user GROUP BY issue_id",
    )
    .bind(&issue_ids)
    .bind(&keys)
    .bind(&values)
    .bind(&totals)
    .bind(&firsts)
    .bind(&lasts)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}
