//! The batch writer's transaction: issues, events and the aggregates the dashboard reads, for
//! many events at once. Rows are touched in a fixed order (issues by project and hash, then
//! aggregates by key) so that concurrent writers — in one process or several — never deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::alerts;
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

type IssueKey<'a> = (i64, &'a str);

/// The batch's issues: every one's id, the ids of those it created, how many search terms
/// each has, and the newest event of each (it sets the issue's title, culprit, level and
/// metadata when the counts are added).
struct BatchIssues<'a> {
    ids: HashMap<IssueKey<'a>, i64>,
    created: HashSet<i64>,
    term_counts: HashMap<i64, i32>,
    newest: HashMap<i64, &'a NewEvent>,
}

/// Locks the batch's existing issues and creates the missing ones, each in `(project_id,
/// hash)` order. An existing issue is only locked here and rewritten once, with its counts:
/// rewriting it here too cost PostgreSQL a second row version (and its index entries) per
/// issue per batch.
async fn upsert_issues<'a>(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&'a NewEvent],
) -> sqlx::Result<BatchIssues<'a>> {
    let mut newest: BTreeMap<IssueKey<'a>, &'a NewEvent> = BTreeMap::new();
    for event in events {
        let entry = newest
            .entry((event.project_id, event.hash.as_str()))
            .or_insert(event);
        if event.occurred_at >= entry.occurred_at {
            *entry = event;
        }
    }
    let (projects, hashes): (Vec<i64>, Vec<&str>) = newest.keys().copied().unzip();
    let existing: Vec<(i64, i64, String, i32)> = sqlx::query_as(
        "SELECT i.id, i.project_id, i.hash, i.search_terms
           FROM issues i
           JOIN UNNEST($1::int8[], $2::text[]) AS k(p, h) ON i.project_id = k.p AND i.hash = k.h
          ORDER BY i.project_id, i.hash
            FOR UPDATE OF i",
    )
    .bind(&projects)
    .bind(&hashes)
    .fetch_all(&mut **tx)
    .await?;
    let mut by_key: HashMap<(i64, String), (i64, i32)> = existing
        .into_iter()
        .map(|(id, project, hash, terms)| ((project, hash), (id, terms)))
        .collect();
    let missing: Vec<&NewEvent> = newest
        .iter()
        .filter(|(key, _)| !by_key.contains_key(&(key.0, key.1.to_owned())))
        .map(|(_, event)| *event)
        .collect();
    let mut created = HashSet::new();
    for (id, project, hash, is_new, terms) in create_issues(tx, &missing).await? {
        if is_new {
            created.insert(id);
        }
        by_key.insert((project, hash), (id, terms));
    }
    let mut batch = BatchIssues {
        ids: HashMap::with_capacity(newest.len()),
        created,
        term_counts: HashMap::with_capacity(newest.len()),
        newest: HashMap::with_capacity(newest.len()),
    };
    for (key, event) in newest {
        if let Some(&(id, terms)) = by_key.get(&(key.0, key.1.to_owned())) {
            batch.ids.insert(key, id);
            batch.term_counts.insert(id, terms);
            batch.newest.insert(id, event);
        }
    }
    Ok(batch)
}

/// Inserts the issues of `events` (the newest event of each), in key order. Another writer
/// may have created one since the lock: that one is updated instead, which locks it too.
/// Returns each issue's id, project, hash, whether this statement created it, and its search
/// term count.
async fn create_issues(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
) -> sqlx::Result<Vec<(i64, i64, String, bool, i32)>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = IssueColumns::default();
    for event in events {
        columns.push(event);
    }
    // `xmax = 0` marks a row this statement inserted rather than updated: a new issue.
    sqlx::query_as(
        "INSERT INTO issues (project_id, hash, title, culprit, level, first_seen, last_seen, grouping, metadata)
         SELECT p, h, t, c, l, s, s, g::jsonb, m::jsonb
           FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
                       $7::text[], $8::text[]) AS u(p, h, t, c, l, s, g, m)
          ORDER BY p, h
         ON CONFLICT (project_id, hash) DO UPDATE
            SET title = EXCLUDED.title, culprit = EXCLUDED.culprit,
                level = EXCLUDED.level, metadata = EXCLUDED.metadata
         RETURNING id, project_id, hash, xmax = 0, search_terms",
    )
    .bind(&columns.project_ids)
    .bind(&columns.hashes)
    .bind(&columns.titles)
    .bind(&columns.culprits)
    .bind(&columns.levels)
    .bind(&columns.seen)
    .bind(&columns.groupings)
    .bind(&columns.metadata)
    .fetch_all(&mut **tx)
    .await
}

#[derive(Default)]
struct IssueColumns {
    project_ids: Vec<i64>,
    hashes: Vec<String>,
    titles: Vec<String>,
    culprits: Vec<String>,
    levels: Vec<String>,
    seen: Vec<DateTime<Utc>>,
    groupings: Vec<String>,
    metadata: Vec<String>,
}

impl IssueColumns {
    fn push(&mut self, event: &NewEvent) {
        self.project_ids.push(event.project_id);
        self.hashes.push(event.hash.clone());
        self.titles.push(event.title.clone());
        self.culprits.push(event.culprit.clone());
        self.levels.push(event.level.as_str().to_owned());
        self.seen.push(event.occurred_at);
        self.groupings.push(event.grouping.to_string());
        self.metadata.push(event.metadata.to_string());
    }
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
struct TagCount {
    count: i64,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
}

impl TagCount {
    fn new(t: DateTime<Utc>) -> Self {
        TagCount {
            count: 0,
            first_seen: t,
            last_seen: t,
        }
    }

    fn add(&mut self, t: DateTime<Utc>) {
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

/// What a batch added to each issue besides events: new distinct users and search terms.
struct Added {
    users: HashMap<i64, i64>,
    search_terms: HashMap<i64, i64>,
}

/// Adds the new events to their issues' totals, and sets each issue's title, culprit, level
/// and metadata from its newest event in the batch. A resolved issue that receives an event is
/// open again, marked as a regression; returns the ids of those.
async fn update_issues(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&NewEvent, i64)],
    newest: &HashMap<i64, &NewEvent>,
    added: &Added,
) -> sqlx::Result<HashSet<i64>> {
    let mut per_issue: BTreeMap<i64, TagCount> = BTreeMap::new();
    for (event, issue_id) in events {
        let t = event.occurred_at;
        per_issue
            .entry(*issue_id)
            .or_insert_with(|| TagCount::new(t))
            .add(t);
    }
    let ids: Vec<i64> = per_issue.keys().copied().collect();
    let counts: Vec<i64> = per_issue.values().map(|t| t.count).collect();
    let added_to = |counts: &HashMap<i64, i64>| -> Vec<i64> {
        ids.iter()
            .map(|id| counts.get(id).copied().unwrap_or(0))
            .collect()
    };
    let users = added_to(&added.users);
    let terms = added_to(&added.search_terms);
    let firsts: Vec<DateTime<Utc>> = per_issue.values().map(|t| t.first_seen).collect();
    let lasts: Vec<DateTime<Utc>> = per_issue.values().map(|t| t.last_seen).collect();
    let describing: Vec<&NewEvent> = ids.iter().map(|id| newest[id]).collect();
    let titles: Vec<&str> = describing.iter().map(|e| e.title.as_str()).collect();
    let culprits: Vec<&str> = describing.iter().map(|e| e.culprit.as_str()).collect();
    let levels: Vec<&str> = describing.iter().map(|e| e.level.as_str()).collect();
    let metadata: Vec<String> = describing.iter().map(|e| e.metadata.to_string()).collect();
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "UPDATE issues
            SET event_count = issues.event_count + u.n,
                user_count = issues.user_count + u.new_users,
                search_terms = issues.search_terms + u.new_terms,
                first_seen = LEAST(issues.first_seen, u.first_seen),
                last_seen = GREATEST(issues.last_seen, u.last_seen),
                title = u.title, culprit = u.culprit, level = u.level, metadata = u.metadata::jsonb,
                regressed_at = CASE WHEN issues.status = 'resolved' THEN now() ELSE issues.regressed_at END,
                status = CASE WHEN issues.status = 'resolved' THEN 'unresolved'::issue_status ELSE issues.status END
           FROM UNNEST($1::int8[], $2::int8[], $3::int8[], $4::timestamptz[], $5::timestamptz[],
                       $6::int8[], $7::text[], $8::text[], $9::text[], $10::text[])
                AS u(id, n, new_users, first_seen, last_seen, new_terms, title, culprit, level, metadata)
          WHERE issues.id = u.id
         RETURNING issues.id, issues.regressed_at IS NOT DISTINCT FROM now()",
    )
    .bind(&ids)
    .bind(&counts)
    .bind(&users)
    .bind(&firsts)
    .bind(&lasts)
    .bind(&terms)
    .bind(&titles)
    .bind(&culprits)
    .bind(&levels)
    .bind(&metadata)
    .fetch_all(&mut **tx)
    .await?;
    // `now()` is the transaction's start: only this statement can have set it.
    Ok(rows
        .into_iter()
        .filter(|(_, regressed)| *regressed)
        .map(|(id, _)| id)
        .collect())
}
