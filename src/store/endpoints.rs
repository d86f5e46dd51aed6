//! The failing requests of each project by endpoint (method + route, and the response status
//! when known: the `request` tag's value), kept by the writer as events arrive and read by the
//! Endpoints page. Three aggregates: events per hour, issues per endpoint, users per endpoint.
//! Each hit counts twice: under its environment and under [`ALL_ENVIRONMENTS`], so the page's
//! usual view (every environment) reads one row per key instead of summing environments.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::events::NewEvent;
use crate::domain::event_shape::tag;

/// One stored event that failed on an endpoint.
pub struct EndpointHit<'a> {
    pub project_id: i64,
    pub endpoint: &'a str,
    /// `""` when the event has none.
    pub environment: &'a str,
    pub issue_id: i64,
    pub hour: DateTime<Utc>,
    pub occurred_at: DateTime<Utc>,
    pub user_key: Option<&'a str>,
}

type Scope<'a> = (i64, &'a str, &'a str);

/// The environment of the rows that count every environment.
pub const ALL_ENVIRONMENTS: &str = "*";
/// What an event's own environment named `*` is counted under.
const LITERAL_STAR: &str = "(*)";

/// The environment a filter reads: one, or all of them.
fn environment_scope(environment: Option<&str>) -> &str {
    match environment {
        None => ALL_ENVIRONMENTS,
        Some(ALL_ENVIRONMENTS) => LITERAL_STAR,
        Some(environment) => environment,
    }
}

/// `(count, last seen)`, summed over a batch.
#[derive(Clone, Copy)]
struct Tally {
    count: i64,
    last_seen: DateTime<Utc>,
}

fn tally<K: Ord>(map: &mut BTreeMap<K, Tally>, key: K, at: DateTime<Utc>) {
    let entry = map.entry(key).or_insert(Tally {
        count: 0,
        last_seen: at,
    });
    entry.count += 1;
    entry.last_seen = entry.last_seen.max(at);
}

/// The events that failed on a request, by the endpoint their `request` tag names.
pub fn hits_of<'a>(events: &[(&'a NewEvent, i64)]) -> Vec<EndpointHit<'a>> {
    events
        .iter()
        .filter_map(|(event, issue_id)| {
            let endpoint = event
                .tags
                .iter()
                .find(|(key, _)| key == tag::REQUEST)
                .map(|(_, value)| value.as_str())?;
            Some(EndpointHit {
                project_id: event.project_id,
                endpoint,
                environment: event.environment.as_deref().unwrap_or(""),
                issue_id: *issue_id,
                hour: event.hour(),
                occurred_at: event.occurred_at,
                user_key: event.user_key.as_deref(),
            })
        })
        .collect()
}

/// A batch's hits summed per key of the three aggregates, rows in key order; written by
/// `store::aggregates`, with the issues' own aggregates.
pub(super) struct EndpointTotals<'a> {
    pub(super) hourly: Columns<'a, DateTime<Utc>>,
    pub(super) issues: Columns<'a, i64>,
    pub(super) users: Columns<'a, &'a str>,
}

/// Sums the hits per key: each under its own environment and under [`ALL_ENVIRONMENTS`].
pub(super) fn totals<'a>(hits: &[EndpointHit<'a>]) -> EndpointTotals<'a> {
    let mut hourly: BTreeMap<(Scope, DateTime<Utc>), Tally> = BTreeMap::new();
    let mut issues: BTreeMap<(Scope, i64), Tally> = BTreeMap::new();
    let mut users: BTreeMap<(Scope, &str), Tally> = BTreeMap::new();
    for hit in hits {
        let own = environment_scope(Some(hit.environment));
        for environment in [own, ALL_ENVIRONMENTS] {
            let scope = (hit.project_id, hit.endpoint, environment);
            tally(&mut hourly, (scope, hit.hour), hit.occurred_at);
            tally(&mut issues, (scope, hit.issue_id), hit.occurred_at);
            if let Some(user) = hit.user_key {
                tally(&mut users, (scope, user), hit.occurred_at);
            }
        }
    }
    EndpointTotals {
        hourly: Columns::from(hourly.into_iter().map(|((s, hour), t)| (s, hour, t))),
        issues: Columns::from(issues.into_iter().map(|((s, issue), t)| (s, issue, t))),
        users: Columns::from(users.into_iter().map(|((s, user), t)| (s, user, t))),
    }
}

/// One aggregate's rows as the arrays `UNNEST` takes; `K` is the hour, issue or user.
pub(super) struct Columns<'a, K> {
    pub(super) projects: Vec<i64>,
    pub(super) endpoints: Vec<&'a str>,
    pub(super) environments: Vec<&'a str>,
    pub(super) keys: Vec<K>,
    pub(super) counts: Vec<i64>,
    pub(super) last_seen: Vec<DateTime<Utc>>,
}

impl<'a, K> Columns<'a, K> {
    fn from(rows: impl Iterator<Item = (Scope<'a>, K, Tally)>) -> Self {
        let mut columns = Columns {
            projects: Vec::new(),
            endpoints: Vec::new(),
            environments: Vec::new(),
            keys: Vec::new(),
            counts: Vec::new(),
            last_seen: Vec::new(),
        };
        for ((project, endpoint, environment), key, tally) in rows {
            columns.projects.push(project);
            columns.endpoints.push(endpoint);
            columns.environments.push(environment);
            columns.keys.push(key);
            columns.counts.push(tally.count);
            columns.last_seen.push(tally.last_seen);
        }
        columns
    }
}

/// What the Endpoints page shows.
#[derive(Debug, Clone)]
pub struct EndpointFilter<'a> {
    pub project_id: Option<i64>,
    pub environment: Option<&'a str>,
    pub since: DateTime<Utc>,
    pub limit: i64,
}

/// One endpoint's totals over the period.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointRow {
    pub project_id: i64,
    pub project_name: String,
    pub endpoint: String,
    pub events: i64,
    pub last_seen: DateTime<Utc>,
}

/// The endpoints with the most events in the period.
pub async fn busiest(pool: &PgPool, filter: &EndpointFilter<'_>) -> sqlx::Result<Vec<EndpointRow>> {
    sqlx::query_as(
        "SELECT h.project_id, p.name AS project_name, h.endpoint, sum(h.count)::int8 AS events,
                max(h.last_seen) AS last_seen
           FROM endpoint_hourly_counts h JOIN projects p ON p.id = h.project_id
          WHERE h.hour >= $1 AND ($2::int8 IS NULL OR h.project_id = $2)
            AND h.environment = $3
          GROUP BY h.project_id, p.name, h.endpoint
          ORDER BY events DESC, h.endpoint, h.project_id
          LIMIT $4",
    )
    .bind(filter.since)
    .bind(filter.project_id)
    .bind(environment_scope(filter.environment))
    .bind(filter.limit)
    .fetch_all(pool)
    .await
}

/// `(project id, endpoint)` of each listed row, as the detail queries take them.
pub type EndpointKey = (i64, String);

fn key_columns(keys: &[EndpointKey]) -> (Vec<i64>, Vec<&str>) {
    keys.iter().map(|(p, e)| (*p, e.as_str())).unzip()
}

/// One of an endpoint's top issues, with its events there and how many issues the endpoint
/// has in all.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EndpointIssue {
    pub project_id: i64,
    pub endpoint: String,
    pub issue_id: i64,
    pub events: i64,
    pub issues: i64,
}

/// Per endpoint, its `top` issues of the period (most events first) and its issue count.
/// Titles come separately ([`titles`]): joining them here would hash every issue.
pub async fn top_issues(
    pool: &PgPool,
    keys: &[EndpointKey],
    filter: &EndpointFilter<'_>,
    top: i64,
) -> sqlx::Result<Vec<EndpointIssue>> {
    let (projects, endpoints) = key_columns(keys);
    sqlx::query_as(
        "SELECT project_id, endpoint, issue_id, events, issues FROM (
             SELECT e.project_id, e.endpoint, e.issue_id, e.count AS events,
                    count(*) OVER w AS issues,
                    row_number() OVER (w ORDER BY e.count DESC, e.issue_id) AS rank
               FROM endpoint_issues e
              WHERE (e.project_id, e.endpoint) IN (SELECT * FROM UNNEST($1::int8[], $2::text[]))
                AND e.environment = $4 AND e.last_seen >= $3
             WINDOW w AS (PARTITION BY e.project_id, e.endpoint)
         ) ranked
         WHERE rank <= $5
         ORDER BY rank",
    )
    .bind(&projects)
    .bind(&endpoints)
    .bind(filter.since)
    .bind(environment_scope(filter.environment))
    .bind(top)
    .fetch_all(pool)
    .await
}

/// The titles of a few issues.
pub async fn titles(pool: &PgPool, issue_ids: &[i64]) -> sqlx::Result<HashMap<i64, String>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, title FROM issues WHERE id = ANY($1)")
            .bind(issue_ids)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Per endpoint, how many distinct users it failed for in the period.
pub async fn users(
    pool: &PgPool,
    keys: &[EndpointKey],
    filter: &EndpointFilter<'_>,
) -> sqlx::Result<HashMap<EndpointKey, i64>> {
    let (projects, endpoints) = key_columns(keys);
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT project_id, endpoint, count(*)
           FROM endpoint_users
          WHERE (project_id, endpoint) IN (SELECT * FROM UNNEST($1::int8[], $2::text[]))
            AND environment = $4 AND last_seen >= $3
          GROUP BY project_id, endpoint",
    )
    .bind(&projects)
    .bind(&endpoints)
    .bind(filter.since)
    .bind(environment_scope(filter.environment))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(p, e, n)| ((p, e), n)).collect())
}

/// Per endpoint, its events per hour since `since` (the sparkline).
pub async fn hourly(
    pool: &PgPool,
    keys: &[EndpointKey],
    environment: Option<&str>,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, String, DateTime<Utc>, i64)>> {
    let (projects, endpoints) = key_columns(keys);
    sqlx::query_as(
        "SELECT project_id, endpoint, hour, count
           FROM endpoint_hourly_counts
          WHERE (project_id, endpoint) IN (SELECT * FROM UNNEST($1::int8[], $2::text[]))
            AND environment = $4 AND hour >= $3",
    )
    .bind(&projects)
    .bind(&endpoints)
    .bind(since)
    .bind(environment_scope(environment))
    .fetch_all(pool)
    .await
}

/// Removes what is older than the retention period.
pub async fn delete_before(pool: &PgPool, cutoff: DateTime<Utc>) -> sqlx::Result<u64> {
    let mut deleted = 0;
    for statement in [
        "DELETE FROM endpoint_hourly_counts WHERE hour < $1",
        "DELETE FROM endpoint_issues WHERE last_seen < $1",
        "DELETE FROM endpoint_users WHERE last_seen < $1",
    ] {
        deleted += sqlx::query(statement)
            .bind(cutoff)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(deleted)
}
