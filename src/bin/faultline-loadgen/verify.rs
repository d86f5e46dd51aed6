//! After the run: is every acknowledged event stored, exactly once, in the expected issues?
//! The load generator is a separate tool, so this check reads PostgreSQL directly; all of its
//! SQL is in [`read_project_counts`] and [`read_acknowledged_counts`].

use sqlx::PgPool;
use uuid::Uuid;

/// Totals of one project, read before and after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectCounts {
    pub events: i64,
    /// The sum of the issues' `event_count`: each stored event must be counted once.
    pub counted: i64,
}

pub struct Verdict {
    pub lines: Vec<String>,
    pub ok: bool,
}

pub async fn read_project_counts(pool: &PgPool, project_id: i64) -> sqlx::Result<ProjectCounts> {
    let (events, counted): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE project_id = $1),
                (SELECT coalesce(sum(event_count), 0)::int8 FROM issues WHERE project_id = $1)",
    )
    .bind(project_id)
    .fetch_one(pool)
    .await?;
    Ok(ProjectCounts { events, counted })
}

/// How many rows hold the events `ids`, how many distinct ids those are, and in how many
/// distinct issues (a join, not `= ANY`, so 200,000 ids stay a hash join).
async fn read_acknowledged_counts(
    pool: &PgPool,
    project_id: i64,
    ids: &[Uuid],
) -> sqlx::Result<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT e.event_id), count(DISTINCT e.issue_id)
           FROM events e JOIN unnest($2::uuid[]) AS acked(id) ON e.event_id = acked.id
          WHERE e.project_id = $1",
    )
    .bind(project_id)
    .bind(ids)
    .fetch_one(pool)
    .await
}

/// Compares what the server acknowledged with what PostgreSQL holds.
pub async fn verify(
    pool: &PgPool,
    project_id: i64,
    before: ProjectCounts,
    acknowledged: &[Uuid],
    expected_issues: usize,
) -> sqlx::Result<Verdict> {
    let after = read_project_counts(pool, project_id).await?;
    let (rows, stored, issues) = read_acknowledged_counts(pool, project_id, acknowledged).await?;
    let acked = acknowledged.len() as i64;
    let new_rows = after.events - before.events;
    let new_counted = after.counted - before.counted;
    let expected_issues = expected_issues.min(acknowledged.len()) as i64;
    let mut verdict = Verdict {
        lines: Vec::new(),
        ok: true,
    };
    verdict.check(
        stored == acked,
        format!("acknowledged {acked}, of which stored {stored}"),
    );
    verdict.check(
        rows == stored,
        format!(
            "rows holding acknowledged events {rows} (duplicates: {})",
            rows - stored
        ),
    );
    verdict.check(
        new_counted == new_rows,
        format!("new event rows {new_rows}, counted in issues {new_counted}"),
    );
    verdict.check(
        new_rows >= acked,
        format!(
            "stored but not acknowledged (answer lost or timed out): {}",
            new_rows - acked
        ),
    );
    verdict.check(
        issues == expected_issues,
        format!("distinct issues of acknowledged events {issues}, expected {expected_issues}"),
    );
    Ok(verdict)
}

impl Verdict {
    fn check(&mut self, passed: bool, line: String) {
        self.ok &= passed;
        let mark = if passed { "ok  " } else { "FAIL" };
        self.lines.push(format!("{mark} {line}"));
    }
}
