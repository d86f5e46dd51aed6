//! The aggregates the dashboard reads besides the issue rows — events per issue and hour, each
//! issue's tag values, and the three endpoint aggregates — summed per batch and written in
//! one statement.
//!
//! At low load a batch upserts them in its own transaction ([`add_now`]). Under load those
//! upserts were half of PostgreSQL's work per event (issue 13), so a batch then only appends
//! its totals to `aggregate_deltas` ([`defer`]), and [`flush`] later folds every waiting delta
//! in at once: one upsert per key for many batches. A delta commits with its events, and the
//! next flush of any instance (at the latest, the one at start-up) folds it in, so nothing
//! counted is lost in between; each delta is folded exactly once, by the flush that deletes it.
//!
//! Locks: both paths run the same upserts, in key order, so they queue behind each other but
//! never deadlock; a flush never waits for an issue row (a batch holds its issues from its
//! start), it carries the users of a locked issue to the next flush instead.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::endpoints::{self, EndpointTotals};
use super::events::NewEvent;

/// The advisory lock that lets one flush at a time run, across instances.
const FLUSH_LOCK: i64 = 7_261_201_003;

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

/// A batch's aggregates, summed per key, as the arrays the statements take.
pub(super) struct BatchTotals<'a> {
    hour_issue_ids: Vec<i64>,
    hours: Vec<DateTime<Utc>>,
    hour_counts: Vec<i64>,
    tag_issue_ids: Vec<i64>,
    tag_keys: Vec<&'a str>,
    tag_values: Vec<&'a str>,
    tag_counts: Vec<i64>,
    tag_first_seen: Vec<DateTime<Utc>>,
    tag_last_seen: Vec<DateTime<Utc>>,
    endpoints: EndpointTotals<'a>,
}

/// Sums the stored events (each with its issue's id) per key of every aggregate.
pub(super) fn totals<'a>(events: &[(&'a NewEvent, i64)]) -> BatchTotals<'a> {
    let mut hourly: BTreeMap<(i64, DateTime<Utc>), i64> = BTreeMap::new();
    let mut tags: BTreeMap<(i64, &str, &str), TagCount> = BTreeMap::new();
    for (event, issue_id) in events {
        *hourly.entry((*issue_id, event.hour())).or_default() += 1;
        let t = event.occurred_at;
        for (key, value) in &event.tags {
            tags.entry((*issue_id, key.as_str(), value.as_str()))
                .or_insert_with(|| TagCount::new(t))
                .add(t);
        }
    }
    let mut totals = BatchTotals {
        hour_issue_ids: Vec::with_capacity(hourly.len()),
        hours: Vec::with_capacity(hourly.len()),
        hour_counts: Vec::with_capacity(hourly.len()),
        tag_issue_ids: Vec::with_capacity(tags.len()),
        tag_keys: Vec::with_capacity(tags.len()),
        tag_values: Vec::with_capacity(tags.len()),
        tag_counts: Vec::with_capacity(tags.len()),
        tag_first_seen: Vec::with_capacity(tags.len()),
        tag_last_seen: Vec::with_capacity(tags.len()),
        endpoints: endpoints::totals(&endpoints::hits_of(events)),
    };
    for ((issue_id, hour), count) in hourly {
        totals.hour_issue_ids.push(issue_id);
        totals.hours.push(hour);
        totals.hour_counts.push(count);
    }
    for ((issue_id, key, value), tag) in tags {
        totals.tag_issue_ids.push(issue_id);
        totals.tag_keys.push(key);
        totals.tag_values.push(value);
        totals.tag_counts.push(tag.count);
        totals.tag_first_seen.push(tag.first_seen);
        totals.tag_last_seen.push(tag.last_seen);
    }
    totals
}

/// The columns of `aggregate_deltas` that hold totals, in the order [`bind_totals`] binds them.
const DELTA_COLUMNS: &str = "hour_issue_ids, hours, hour_counts,
    tag_issue_ids, tag_keys, tag_values, tag_counts, tag_first_seen, tag_last_seen,
    eh_projects, eh_endpoints, eh_environments, eh_hours, eh_counts, eh_last_seen,
    ei_projects, ei_endpoints, ei_environments, ei_issue_ids, ei_counts, ei_last_seen,
    eu_projects, eu_endpoints, eu_environments, eu_user_keys, eu_last_seen";

/// The totals as parameters `$1`..`$26`, typed, in [`DELTA_COLUMNS`]' order.
const TOTALS_PARAMETERS: &str = "$1::int8[], $2::timestamptz[], $3::int8[],
    $4::int8[], $5::text[], $6::text[], $7::int8[], $8::timestamptz[], $9::timestamptz[],
    $10::int8[], $11::text[], $12::text[], $13::timestamptz[], $14::int8[], $15::timestamptz[],
    $16::int8[], $17::text[], $18::text[], $19::int8[], $20::int8[], $21::timestamptz[],
    $22::int8[], $23::text[], $24::text[], $25::text[], $26::timestamptz[]";

/// The upserts of every aggregate, rows in key order, with each aggregate's rows taken from a
/// placeholder (`{hourly}`, `{endpoint_hours}`, `{endpoint_issues}`, `{endpoint_users}`,
/// `{tags}`: a query giving that table's columns) and `{carried}` (more `(issue_id, n)` rows of
/// new users, or none). Returns, per issue, how many distinct users are new to it: its new
/// `user` tag values (`xmax = 0` marks a row the upsert inserted) and any carried ones.
const UPSERTS: &str = "
hourly AS (
    INSERT INTO issue_hourly_counts (issue_id, hour, count)
    {hourly} ORDER BY 1, 2
    ON CONFLICT (issue_id, hour) DO UPDATE SET count = issue_hourly_counts.count + EXCLUDED.count
), endpoint_hours AS (
    INSERT INTO endpoint_hourly_counts (project_id, endpoint, environment, hour, count, last_seen)
    {endpoint_hours} ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, endpoint, environment, hour) DO UPDATE
       SET count = endpoint_hourly_counts.count + EXCLUDED.count,
           last_seen = GREATEST(endpoint_hourly_counts.last_seen, EXCLUDED.last_seen)
), endpoint_issue_rows AS (
    INSERT INTO endpoint_issues (project_id, endpoint, environment, issue_id, count, last_seen)
    {endpoint_issues} ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, endpoint, environment, issue_id) DO UPDATE
       SET count = endpoint_issues.count + EXCLUDED.count,
           last_seen = GREATEST(endpoint_issues.last_seen, EXCLUDED.last_seen)
), endpoint_user_rows AS (
    INSERT INTO endpoint_users (project_id, endpoint, environment, user_key, last_seen)
    {endpoint_users} ORDER BY 1, 2, 3, 4
    ON CONFLICT (project_id, endpoint, environment, user_key) DO UPDATE
       SET last_seen = GREATEST(endpoint_users.last_seen, EXCLUDED.last_seen)
), tags AS (
    INSERT INTO issue_tag_values (issue_id, key, value, count, first_seen, last_seen)
    {tags} ORDER BY 1, 2, 3
    ON CONFLICT (issue_id, key, value) DO UPDATE
       SET count = issue_tag_values.count + EXCLUDED.count,
           first_seen = LEAST(issue_tag_values.first_seen, EXCLUDED.first_seen),
           last_seen = GREATEST(issue_tag_values.last_seen, EXCLUDED.last_seen)
    RETURNING issue_id, (key = 'user' AND xmax = 0) AS new_user
)
SELECT issue_id, sum(n)::int8 FROM (
    SELECT issue_id, 1 AS n FROM tags WHERE new_user
    {carried}
) users GROUP BY issue_id";

/// [`UPSERTS`] with each aggregate's rows taken from the batch's totals, bound as `$1`..`$26`
/// (summed per key already).
fn upserts_of_parameters() -> String {
    UPSERTS
        .replace(
            "{hourly}",
            "SELECT * FROM UNNEST($1::int8[], $2::timestamptz[], $3::int8[])",
        )
        .replace(
            "{endpoint_hours}",
            "SELECT * FROM UNNEST($10::int8[], $11::text[], $12::text[], $13::timestamptz[],
                                  $14::int8[], $15::timestamptz[])",
        )
        .replace(
            "{endpoint_issues}",
            "SELECT * FROM UNNEST($16::int8[], $17::text[], $18::text[], $19::int8[],
                                  $20::int8[], $21::timestamptz[])",
        )
        .replace(
            "{endpoint_users}",
            "SELECT * FROM UNNEST($22::int8[], $23::text[], $24::text[], $25::text[],
                                  $26::timestamptz[])",
        )
        .replace(
            "{tags}",
            "SELECT * FROM UNNEST($4::int8[], $5::text[], $6::text[], $7::int8[],
                                  $8::timestamptz[], $9::timestamptz[])",
        )
        .replace("{carried}", "")
}

/// [`UPSERTS`] with each aggregate's rows summed over every row of a CTE named `taken` (the
/// columns of `aggregate_deltas`).
fn upserts_of_taken_deltas() -> String {
    UPSERTS
        .replace(
            "{hourly}",
            "SELECT u.issue_id, u.hour, sum(u.count)::int8
               FROM taken, UNNEST(taken.hour_issue_ids, taken.hours, taken.hour_counts)
                    AS u(issue_id, hour, count)
              GROUP BY 1, 2",
        )
        .replace(
            "{endpoint_hours}",
            "SELECT u.p, u.e, u.v, u.k, sum(u.n)::int8, max(u.l)
               FROM taken, UNNEST(taken.eh_projects, taken.eh_endpoints, taken.eh_environments,
                                  taken.eh_hours, taken.eh_counts, taken.eh_last_seen)
                    AS u(p, e, v, k, n, l)
              GROUP BY 1, 2, 3, 4",
        )
        .replace(
            "{endpoint_issues}",
            "SELECT u.p, u.e, u.v, u.k, sum(u.n)::int8, max(u.l)
               FROM taken, UNNEST(taken.ei_projects, taken.ei_endpoints, taken.ei_environments,
                                  taken.ei_issue_ids, taken.ei_counts, taken.ei_last_seen)
                    AS u(p, e, v, k, n, l)
              GROUP BY 1, 2, 3, 4",
        )
        .replace(
            "{endpoint_users}",
            "SELECT u.p, u.e, u.v, u.k, max(u.l)
               FROM taken, UNNEST(taken.eu_projects, taken.eu_endpoints, taken.eu_environments,
                                  taken.eu_user_keys, taken.eu_last_seen) AS u(p, e, v, k, l)
              GROUP BY 1, 2, 3, 4",
        )
        .replace(
            "{tags}",
            "SELECT u.issue_id, u.key, u.value, sum(u.count)::int8, min(u.first_seen), max(u.last_seen)
               FROM taken, UNNEST(taken.tag_issue_ids, taken.tag_keys, taken.tag_values,
                                  taken.tag_counts, taken.tag_first_seen, taken.tag_last_seen)
                    AS u(issue_id, key, value, count, first_seen, last_seen)
              GROUP BY 1, 2, 3",
        )
        .replace(
            "{carried}",
            "UNION ALL
             SELECT u.issue_id, u.n
               FROM taken, UNNEST(taken.user_issue_ids, taken.user_counts) AS u(issue_id, n)",
        )
}

fn bind_totals<'q>(
    query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    totals: &'q BatchTotals<'_>,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    let endpoints = &totals.endpoints;
    query
        .bind(&totals.hour_issue_ids)
        .bind(&totals.hours)
        .bind(&totals.hour_counts)
        .bind(&totals.tag_issue_ids)
        .bind(&totals.tag_keys)
        .bind(&totals.tag_values)
        .bind(&totals.tag_counts)
        .bind(&totals.tag_first_seen)
        .bind(&totals.tag_last_seen)
        .bind(&endpoints.hourly.projects)
        .bind(&endpoints.hourly.endpoints)
        .bind(&endpoints.hourly.environments)
        .bind(&endpoints.hourly.keys)
        .bind(&endpoints.hourly.counts)
        .bind(&endpoints.hourly.last_seen)
        .bind(&endpoints.issues.projects)
        .bind(&endpoints.issues.endpoints)
        .bind(&endpoints.issues.environments)
        .bind(&endpoints.issues.keys)
        .bind(&endpoints.issues.counts)
        .bind(&endpoints.issues.last_seen)
        .bind(&endpoints.users.projects)
        .bind(&endpoints.users.endpoints)
        .bind(&endpoints.users.environments)
        .bind(&endpoints.users.keys)
        .bind(&endpoints.users.last_seen)
}

/// Adds the batch's totals to the aggregates now; returns, per issue, how many `user` values
/// were new to it.
pub(super) async fn add_now(
    tx: &mut Transaction<'_, Postgres>,
    totals: &BatchTotals<'_>,
) -> sqlx::Result<HashMap<i64, i64>> {
    static ADD_NOW: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("WITH {}", upserts_of_parameters()));
    let rows: Vec<(i64, i64)> = bind_totals(sqlx::query(&ADD_NOW), totals)
        .try_map(|row| sqlx::FromRow::from_row(&row))
        .fetch_all(&mut **tx)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Appends the batch's totals to `aggregate_deltas`, for a later [`flush`].
pub(super) async fn defer(
    tx: &mut Transaction<'_, Postgres>,
    totals: &BatchTotals<'_>,
) -> sqlx::Result<()> {
    static DEFER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("INSERT INTO aggregate_deltas ({DELTA_COLUMNS}) VALUES ({TOTALS_PARAMETERS})")
    });
    bind_totals(sqlx::query(&DEFER), totals)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// How many deltas wait to be folded in (a number that keeps growing means flushes fail).
pub async fn waiting(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM aggregate_deltas")
        .fetch_one(pool)
        .await
}

/// What a [`flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Folded in every delta committed when it started.
    Folded,
    /// Found none waiting.
    Nothing,
    /// Did nothing: another flush (of this instance or another) was at work. It takes the
    /// deltas committed when it started; later ones wait for the next.
    Busy,
}

/// Folds every committed delta into the aggregates and the issues' user counts, in one
/// transaction. One flush at a time, across instances.
pub async fn flush(pool: &PgPool) -> sqlx::Result<Flushed> {
    static FLUSH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH taken AS (
                 DELETE FROM aggregate_deltas RETURNING {DELTA_COLUMNS}, user_issue_ids, user_counts
             ), {}",
            upserts_of_taken_deltas()
        )
    });
    let mut tx = pool.begin().await?;
    let alone: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(FLUSH_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !alone {
        return Ok(Flushed::Busy);
    }
    let waiting: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM aggregate_deltas)")
        .fetch_one(&mut *tx)
        .await?;
    if !waiting {
        return Ok(Flushed::Nothing);
    }
    let new_users: Vec<(i64, i64)> = sqlx::query_as(&FLUSH).fetch_all(&mut *tx).await?;
    add_new_users(&mut tx, &new_users).await?;
    tx.commit().await?;
    Ok(Flushed::Folded)
}

/// Adds new distinct users to their issues' counts. An issue a batch holds is skipped, not
/// waited for (the batch may hold it for a while, and would then wait for the aggregate rows
/// this flush holds): its users go back into `aggregate_deltas` for the next flush.
async fn add_new_users(
    tx: &mut Transaction<'_, Postgres>,
    new_users: &[(i64, i64)],
) -> sqlx::Result<()> {
    if new_users.is_empty() {
        return Ok(());
    }
    let (ids, counts): (Vec<i64>, Vec<i64>) = new_users.iter().copied().unzip();
    sqlx::query(
        "WITH users AS (
             SELECT * FROM UNNEST($1::int8[], $2::int8[]) AS u(id, n)
         ), locked AS MATERIALIZED (
             SELECT i.id FROM issues i WHERE i.id = ANY($1)
              ORDER BY i.project_id, i.hash FOR UPDATE OF i SKIP LOCKED
         ), added AS (
             UPDATE issues SET user_count = issues.user_count + users.n
               FROM locked JOIN users ON users.id = locked.id
              WHERE issues.id = locked.id
         )
         INSERT INTO aggregate_deltas (user_issue_ids, user_counts)
         SELECT array_agg(users.id), array_agg(users.n) FROM users
          WHERE users.id NOT IN (SELECT id FROM locked)
            AND EXISTS (SELECT FROM issues i WHERE i.id = users.id)
         HAVING count(*) > 0",
    )
    .bind(&ids)
    .bind(&counts)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
