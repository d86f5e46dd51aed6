//! What `faultline-loadgen` reads to check a run: is every acknowledged event stored, exactly
//! once, in the expected issues?

use sqlx::PgPool;
use uuid::Uuid;

/// Totals of one project, read before and after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectCounts {
    pub events: i64,
    /// The sum of the issues' `event_count`: each stored event must be counted once.
    pub counted: i64,
}

pub async fn project_counts(pool: &PgPool, project_id: i64) -> sqlx::Result<ProjectCounts> {
    let (events, counted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE project_id = $1),
                (SELECT coalesce(sum(event_count), 0)::int8 FROM issues WHERE project_id = $1)",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await?;
    Ok(ProjectCounts { events, counted })
}

/// Where the events `ids` ended up.
pub struct StoredCounts {
    /// Rows holding any of them.
    pub rows: i64,
    /// Distinct ids among those rows.
    pub events: i64,
    /// Distinct issues among those rows.
    pub issues: i64,
}

/// A join, not `= ANY`, so 200,000 ids stay a hash join.
pub async fn stored_counts(
    pool: &PgPool,
    project_id: i64,
    ids: &[Uuid],
) -> sqlx::Result<StoredCounts> {
    let (rows, events, issues) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT e.event_id), count(DISTINCT e.issue_id)
           FROM events e JOIN unnest($2::uuid[]) AS acked(id) ON e.event_id = acked.id
          WHERE e.project_id = $1",
    )
    .bind(project_id)
    .bind(ids)
    .fetch_one(pool)
    .await?;
    Ok(StoredCounts {
        rows,
        events,
        issues,
    })
}
