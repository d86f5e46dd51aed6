//! Reading issues for the dashboard and the API, and changing their status.

use crate::domain::search;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};

pub use super::issue_filter::{CursorValue, IssueCursor, IssueFilter, IssueSort, UnknownStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "issue_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    Unresolved,
    Resolved,
    Ignored,
}

impl IssueStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unresolved" => Some(IssueStatus::Unresolved),
            "resolved" => Some(IssueStatus::Resolved),
            "ignored" | "muted" | "archived" => Some(IssueStatus::Ignored),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IssueRow {
    pub id: i64,
    pub project_id: i64,
    pub project_name: String,
    pub hash: String,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: IssueStatus,
    pub event_count: i64,
    pub user_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub regressed_at: Option<DateTime<Utc>>,
    pub grouping: Value,
    pub metadata: Value,
    /// The event count under the list's tag filters (environment, release, tag).
    pub shown_count: i64,
    pub unhandled: bool,
    pub top_request: Option<String>,
}

const ISSUE_COLUMNS: &str =
    "i.id, i.project_id, p.name AS project_name, i.hash, i.title, i.culprit, i.level,
       i.status, i.event_count, i.user_count, i.first_seen, i.last_seen, i.regressed_at,
       i.grouping, i.metadata,
       -- A scalar subquery with LIMIT runs per listed issue through the primary key; an EXISTS
       -- here could be planned as a hash over every issue's tags.
       COALESCE((SELECT true FROM issue_tag_values h
                  WHERE h.issue_id = i.id AND h.key = 'handled' AND h.value = 'no' LIMIT 1), false) AS unhandled,
       (SELECT r.value FROM issue_tag_values r WHERE r.issue_id = i.id AND r.key = 'request'
         ORDER BY r.count DESC, r.value LIMIT 1) AS top_request";

/// One page of issues, newest (or most frequent…) first, after the cursor.
pub async fn list(pool: &PgPool, filter: &IssueFilter) -> sqlx::Result<Vec<IssueRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new("SELECT ");
    q.push(ISSUE_COLUMNS);
    q.push(", ");
    push_shown_count(&mut q, filter);
    q.push(" FROM issues i JOIN projects p ON p.id = i.project_id WHERE true");
    push_conditions(&mut q, filter);
    let column = filter.sort.column();
    if let Some((value, id)) = filter.after {
        q.push(format!(" AND ({column}, i.id) < ("));
        match value {
            CursorValue::Time(t) => q.push_bind(t),
            CursorValue::Count(n) => q.push_bind(n),
        };
        q.push(", ").push_bind(id).push(")");
    }
    q.push(format!(" ORDER BY {column} DESC, i.id DESC LIMIT "))
        .push_bind(filter.limit);
    q.build_query_as().fetch_all(pool).await
}

/// How many issues match the filter (for the list's heading), counting no further than
/// `up_to + 1`: past that the exact number is not worth walking every issue for.
pub async fn count(pool: &PgPool, filter: &IssueFilter, up_to: i64) -> sqlx::Result<i64> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM issues i WHERE true");
    push_conditions(&mut q, filter);
    q.push(" LIMIT ").push_bind(up_to + 1).push(") AS matching");
    q.build_query_scalar().fetch_one(pool).await
}

fn push_shown_count(q: &mut QueryBuilder<Postgres>, filter: &IssueFilter) {
    let tag = filter
        .environment
        .as_ref()
        .map(|v| ("environment".to_owned(), v.clone()))
        .or_else(|| {
            filter
                .release
                .as_ref()
                .map(|v| ("release".to_owned(), v.clone()))
        })
        .or_else(|| filter.tag.clone());
    match tag {
        Some((key, value)) => {
            q.push("COALESCE((SELECT s.count FROM issue_tag_values s WHERE s.issue_id = i.id AND s.key = ");
            q.push_bind(key)
                .push(" AND s.value = ")
                .push_bind(value)
                .push("), 0) AS shown_count");
        }
        None => {
            q.push("i.event_count AS shown_count");
        }
    }
}

/// Checked per issue through `issue_tag_values`' primary key, as the issues are walked in the
/// list's order. (An EXISTS would let the planner scan every issue's tags for the value
/// instead: 60 ms at 10,000 issues where this takes a few.)
fn push_tag_condition(q: &mut QueryBuilder<Postgres>, key: &str, value: &str) {
    q.push(
        " AND COALESCE((SELECT true FROM issue_tag_values t WHERE t.issue_id = i.id AND t.key = ",
    );
    q.push_bind(key.to_owned())
        .push(" AND t.value = ")
        .push_bind(value.to_owned())
        .push(" LIMIT 1), false)");
}

fn push_conditions(q: &mut QueryBuilder<Postgres>, filter: &IssueFilter) {
    if let Some(project_id) = filter.project_id {
        q.push(" AND i.project_id = ").push_bind(project_id);
    }
    if let Some(status) = filter.status {
        q.push(" AND i.status = ").push_bind(status);
    }
    if let Some(level) = &filter.level {
        q.push(" AND i.level = ").push_bind(level.clone());
    }
    if let Some(environment) = &filter.environment {
        push_tag_condition(q, "environment", environment);
    }
    if let Some(release) = &filter.release {
        push_tag_condition(q, "release", release);
    }
    if let Some((key, value)) = &filter.tag {
        push_tag_condition(q, key, value);
    }
    if filter.unhandled_only {
        push_tag_condition(q, "handled", "no");
    }
    if let Some(text) = filter.text.as_deref().filter(|t| !t.trim().is_empty()) {
        let pattern = format!("%{}%", escape_like(text.trim()));
        q.push(" AND (i.title ILIKE ").push_bind(pattern.clone());
        q.push(" OR i.culprit ILIKE ").push_bind(pattern.clone());
        if search::searches_stack_traces(text) {
            // The matching issues come from the trigram index of their terms, once, and are
            // then checked per listed issue from a hash of their ids.
            q.push(" OR i.id IN (SELECT t.issue_id FROM issue_search_terms t WHERE t.term ILIKE ")
                .push_bind(pattern)
                .push(")");
        }
        q.push(")");
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub async fn get(pool: &PgPool, issue_id: i64) -> sqlx::Result<Option<IssueRow>> {
    let sql = format!(
        "SELECT {ISSUE_COLUMNS}, i.event_count AS shown_count
           FROM issues i JOIN projects p ON p.id = i.project_id WHERE i.id = $1"
    );
    sqlx::query_as(&sql)
        .bind(issue_id)
        .fetch_optional(pool)
        .await
}

/// Sets the status; reopening clears the regression mark's meaning by keeping its time.
/// Rows are locked in the writers' order (`store::batch_issues`), so a change of many issues
/// under ingest never deadlocks with a batch.
pub async fn set_status(
    pool: &PgPool,
    issue_ids: &[i64],
    status: IssueStatus,
) -> sqlx::Result<u64> {
    let result = sqlx::query(
        "WITH locked AS (
             SELECT id FROM issues WHERE id = ANY($1) ORDER BY project_id, hash FOR UPDATE
         )
         UPDATE issues SET status = $2,
                regressed_at = CASE WHEN $2 = 'unresolved'::issue_status THEN regressed_at ELSE NULL END
           FROM locked
          WHERE issues.id = locked.id",
    )
    .bind(issue_ids)
    .bind(status)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Which issues of a project a bulk change applies to.
pub enum Selection<'a> {
    /// These ids (ids of other projects are left alone).
    Ids(&'a [i64]),
    /// Every issue, or every issue with this status.
    All { status: Option<IssueStatus> },
}

/// Sets the status of the selected issues of one project, however many, in one statement;
/// locked in the writers' order, as [`set_status`] does.
pub async fn set_status_in_project(
    pool: &PgPool,
    project_id: i64,
    selection: Selection<'_>,
    status: IssueStatus,
) -> sqlx::Result<u64> {
    let (ids, only_status) = match selection {
        Selection::Ids(ids) => (Some(ids), None),
        Selection::All { status } => (None, status),
    };
    let result = sqlx::query(
        "WITH locked AS (
             SELECT id FROM issues
              WHERE project_id = $1
                AND ($2::int8[] IS NULL OR id = ANY($2))
                AND ($3::issue_status IS NULL OR status = $3)
              ORDER BY project_id, hash
                FOR UPDATE
         )
         UPDATE issues SET status = $4,
                regressed_at = CASE WHEN $4 = 'unresolved'::issue_status THEN regressed_at ELSE NULL END
           FROM locked
          WHERE issues.id = locked.id",
    )
    .bind(project_id)
    .bind(ids)
    .bind(only_status)
    .bind(status)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Occurrences per hour since `since`, for the given issues: `(issue_id, hour, count)`.
pub async fn hourly_counts(
    pool: &PgPool,
    issue_ids: &[i64],
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(i64, DateTime<Utc>, i64)>> {
    sqlx::query_as(
        "SELECT issue_id, hour, count FROM issue_hourly_counts
          WHERE issue_id = ANY($1) AND hour >= $2 ORDER BY issue_id, hour",
    )
    .bind(issue_ids)
    .bind(since)
    .fetch_all(pool)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TagValueRow {
    pub key: String,
    pub value: String,
    pub count: i64,
    /// All occurrences with this key, for the share.
    pub key_total: i64,
    pub distinct_values: i64,
}

/// The top `per_key` values of each tag key of an issue.
pub async fn top_tag_values(
    pool: &PgPool,
    issue_id: i64,
    per_key: i64,
) -> sqlx::Result<Vec<TagValueRow>> {
    sqlx::query_as(
        "SELECT key, value, count, key_total, distinct_values FROM (
            SELECT key, value, count,
                   sum(count) OVER (PARTITION BY key)::int8 AS key_total,
                   count(*) OVER (PARTITION BY key) AS distinct_values,
                   row_number() OVER (PARTITION BY key ORDER BY count DESC, value) AS rank
              FROM issue_tag_values WHERE issue_id = $1) ranked
          WHERE rank <= $2 ORDER BY key, count DESC, value",
    )
    .bind(issue_id)
    .bind(per_key)
    .fetch_all(pool)
    .await
}

/// The releases an issue was first and last seen in.
pub async fn first_and_last_release(
    pool: &PgPool,
    issue_id: i64,
) -> sqlx::Result<(Option<String>, Option<String>)> {
    let first: Option<String> = sqlx::query_scalar(
        "SELECT value FROM issue_tag_values WHERE issue_id = $1 AND key = 'release' ORDER BY first_seen, value LIMIT 1",
    )
    .bind(issue_id)
    .fetch_optional(pool)
    .await?;
    let last: Option<String> = sqlx::query_scalar(
        "SELECT value FROM issue_tag_values WHERE issue_id = $1 AND key = 'release' ORDER BY last_seen DESC, value LIMIT 1",
    )
    .bind(issue_id)
    .fetch_optional(pool)
    .await?;
    Ok((first, last))
}

/// The tags whose values fill the issue list's drop-downs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterKey {
    Environment,
    Release,
}

/// Distinct values of a filter tag across all issues, most frequent first. The key is written
/// into the SQL as a literal so the planner can use the matching partial index.
pub async fn known_values(pool: &PgPool, key: FilterKey, limit: i64) -> sqlx::Result<Vec<String>> {
    let sql = match key {
        FilterKey::Environment => {
            "SELECT value FROM issue_tag_values WHERE key = 'environment'
              GROUP BY value ORDER BY sum(count) DESC, value LIMIT $1"
        }
        FilterKey::Release => {
            "SELECT value FROM issue_tag_values WHERE key = 'release'
              GROUP BY value ORDER BY sum(count) DESC, value LIMIT $1"
        }
    };
    sqlx::query_scalar(sql).bind(limit).fetch_all(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_spells_faultlines_own_tag_keys_as_the_constants() {
        use crate::domain::event_shape::tag;
        // Literals, not parameters, so the planner keeps its per-issue index plans.
        assert!(ISSUE_COLUMNS.contains(&format!("h.key = '{}'", tag::HANDLED)));
        assert!(ISSUE_COLUMNS.contains(&format!("r.key = '{}'", tag::REQUEST)));
    }
}
